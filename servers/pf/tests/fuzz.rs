//! Deterministic fuzz loops (xorshift, fixed seeds) over the three untrusted inputs of pf: rule
//! text from the shell, packet bytes from the wire, and the state region. Nothing may panic,
//! and what parses must keep the invariants the crate documents. The libFuzzer targets in
//! `fuzz/` explore the same properties without a fixed budget.

use pf::state::{self, REGION_LEN, Restored};
use pf::{
    Command, Direction, PacketMeta, ParseErrorKind, Reason, RuleSet, Verdict, parse_command,
    parse_rule,
};

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "pf",
    "list",
    "add",
    "del",
    "allow",
    "deny",
    "in",
    "out",
    "any",
    "tcp",
    "udp",
    "icmp",
    "from",
    "to",
    "port",
    "0",
    "1",
    "7",
    "64",
    "65",
    "65535",
    "65536",
    "1000-2000",
    "2000-1000",
    "0-65535",
    "-",
    "1-",
    "-1",
    "10.0.2.15",
    "10.0.2.15/32",
    "10.0.2.0/24",
    "10.0.2.15/24",
    "0.0.0.0/0",
    "0.0.0.0/33",
    "255.255.255.255/32",
    "256.0.0.1",
    "1.2.3",
    "01.2.3.4",
    "/",
    "//",
    "x",
    "",
    "4294967295",
    "4294967296",
    "ANY",
    "é",
    "\u{0}",
    "10.0.2.0/",
    "1.2.3.4/0",
];

const VALID: &[&str] = &[
    "pf add deny in tcp from any to 10.0.2.15/32 port 7",
    "pf add allow out udp from 10.0.2.0/24 port 1000-2000 to any",
    "pf add 1 allow icmp from 10.0.2.2 to any",
    "pf del 3",
    "pf list",
    "add deny udp from any port 0 to 255.255.255.255/32 port 65535",
];

/// A line: random bytes, a soup of grammar words, or a valid line with a few characters changed.
fn line(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => {
            let len = rng.below(80);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(4) {
                    0 => b' ',
                    1 => b"0123456789./-"[rng.below(13)],
                    2 => b"adefilnoprtuwyx"[rng.below(15)],
                    _ => rng.next() as u8,
                })
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 => {
            let n = rng.below(14);
            let seps = [" ", "  ", "\t", "\n", " \r "];
            (0..n)
                .map(|_| format!("{}{}", rng.pick(WORDS), seps[rng.below(seps.len())]))
                .collect()
        }
        _ => {
            let mut chars: Vec<char> = rng.pick(VALID).chars().collect();
            for _ in 0..=rng.below(3) {
                let at = rng.below(chars.len() + 1);
                let c = b" 0123456789./-anyportx"[rng.below(22)] as char;
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = c,
                    _ => chars.insert(at, c),
                }
            }
            chars.into_iter().collect()
        }
    }
}

#[test]
fn rule_text_never_panics_and_round_trips() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut set = RuleSet::new();
    let mut region = vec![0u8; REGION_LEN];
    let (mut ok, mut errors) = (0, 0);
    for _ in 0..100_000 {
        let text = line(&mut rng);
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        match parse_command(&text) {
            Ok(command) => {
                ok += 1;
                let printed = command.to_string();
                assert_eq!(
                    parse_command(&printed),
                    Ok(command),
                    "{text:?} printed as {printed:?}"
                );
                if let Command::Add { rule, .. } = command {
                    assert_eq!(parse_rule(&rule.to_string()), Ok(rule));
                    assert_eq!(rule.check(), Ok(()));
                }
                let before = set.clone();
                match set.apply(&command) {
                    Ok(Some(_)) => {
                        state::save(&mut region, &set).unwrap();
                        match state::load(&region) {
                            Ok(Restored::Loaded {
                                rules,
                                discarded: None,
                                ..
                            }) => {
                                assert_eq!(rules.rules(), set.rules())
                            }
                            other => panic!("after {text:?}: {other:?}"),
                        }
                    }
                    Ok(None) => assert_eq!(set, before),
                    Err(_) => assert_eq!(set, before, "a refused command changed the set"),
                }
                assert!(set.len() <= pf::MAX_RULES);
            }
            Err(e) => {
                errors += 1;
                // The error names the word that is wrong.
                if let ParseErrorKind::Missing(_) = e.kind {
                    assert_eq!(
                        (e.position, e.word),
                        (words.len() + 1, ""),
                        "{text:?}: {e:?}"
                    );
                } else {
                    assert_eq!(words.get(e.position - 1), Some(&e.word), "{text:?}: {e:?}");
                }
                let _ = e.to_string();
            }
        }
        // A rule alone, from the same text with its command words cut.
        if let Some(i) = words.iter().position(|w| *w == "allow" || *w == "deny") {
            let rest = words[i..].join(" ");
            if let Ok(rule) = parse_rule(&rest) {
                assert_eq!(parse_rule(&rule.to_string()), Ok(rule));
            }
        }
    }
    // The generator must reach both sides.
    assert!(ok > 1_000 && errors > 10_000, "ok={ok} errors={errors}");
}

/// A packet: random bytes, or a valid IPv4 header with random fields and a few bytes changed.
fn packet(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(80);
    let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    if rng.below(4) != 0 && p.len() >= 20 {
        let ihl = if rng.below(4) == 0 {
            rng.below(16) as u8
        } else {
            5
        };
        p[0] = if rng.below(8) == 0 { p[0] } else { 0x40 | ihl };
        let total = match rng.below(4) {
            0 => rng.next() as u16,
            _ => (len - rng.below(len.min(8) + 1)) as u16,
        };
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[9] = [1, 6, 17, p[9]][rng.below(4)];
        if rng.below(2) == 0 {
            p[6] &= 0xe0; // fragment offset 0
            p[7] = 0;
        }
        if rng.below(2) == 0 {
            p[12..16].copy_from_slice(&[10, 0, 2, rng.below(4) as u8]);
        }
    }
    p
}

#[test]
fn packet_bytes_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut set = RuleSet::new();
    for text in [
        "deny in tcp from any to any port 7",
        "allow out udp from 10.0.2.0/24 port 1000-2000 to any",
        "deny in icmp from 10.0.2.2 to any",
        "deny in udp from 10.0.2.0/30 port 0-1023 to any",
        "allow in tcp from 10.0.2.1 to any",
        "deny in from 10.0.2.3 to any",
    ] {
        set.push(parse_rule(text).unwrap()).unwrap();
    }
    let (mut parsed, mut with_ports) = (0u64, 0u64);
    let packets = 200_000u64;
    for _ in 0..packets {
        let bytes = packet(&mut rng);
        let dir = if rng.below(2) == 0 {
            Direction::In
        } else {
            Direction::Out
        };
        if let Ok(meta) = PacketMeta::from_ipv4(&bytes, dir) {
            parsed += 1;
            assert_eq!(meta.sport.is_some(), meta.dport.is_some());
            assert!(meta.sport.is_none() || meta.proto == 6 || meta.proto == 17);
            with_ports += u64::from(meta.sport.is_some());
            assert_eq!(meta.dir, dir);
        }
        let decision = set.filter_ipv4(dir, &bytes);
        match decision.reason {
            Reason::Rule(n) => assert_eq!(
                Some(decision.verdict),
                set.rules().get(n - 1).map(|r| r.verdict)
            ),
            Reason::Default => assert_eq!(decision.verdict, Verdict::Allow),
            Reason::Malformed(_) => assert_eq!(decision.verdict, Verdict::Deny),
        }
        let _ = pf::packet::ipv4_in_ethernet(&bytes);
    }
    let c = set.counters();
    assert_eq!(c.allowed + c.denied, packets);
    assert_eq!(c.malformed, packets - parsed);
    assert_eq!(
        set.hits().iter().sum::<u64>() + c.unmatched + c.malformed,
        packets
    );
    assert!(
        parsed > 20_000 && with_ports > 5_000,
        "parsed={parsed} with_ports={with_ports}"
    );
}

#[test]
fn state_region_never_panics() {
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let mut set = RuleSet::new();
    for text in VALID {
        if let Ok(Command::Add { rule, .. }) = parse_command(text) {
            set.push(rule).unwrap();
        }
    }
    let mut good = vec![0u8; REGION_LEN];
    state::save(&mut good, &set).unwrap();
    state::save(&mut good, &set).unwrap();
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut region = good.clone();
        match rng.below(3) {
            0 => region.iter_mut().for_each(|b| *b = rng.next() as u8),
            _ => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(REGION_LEN);
                    region[i] ^= 1 << rng.below(8);
                }
            }
        }
        let cut = if rng.below(8) == 0 {
            rng.below(REGION_LEN + 1)
        } else {
            REGION_LEN
        };
        match state::load(&region[..cut]) {
            Ok(Restored::Loaded { rules, .. }) => {
                loaded += 1;
                // Whatever loads is what was saved: random damage never forges a rule set.
                assert_eq!(rules.rules(), set.rules());
            }
            Ok(Restored::Fresh) => panic!("damaged region taken for a fresh one"),
            Err(_) => refused += 1,
        }
    }
    assert!(
        loaded > 1_000 && refused > 1_000,
        "loaded={loaded} refused={refused}"
    );
}
