//! The ordered rule set: at most [`MAX_RULES`] rules, first match wins, default allow, a hit
//! counter per rule and counters per verdict.
//!
//! Rules are numbered from 1 in this API as in the shell (`pf list`, `pf del 3`); the slices
//! [`RuleSet::rules`] and [`RuleSet::hits`] are indexed from 0 as usual, so rule number `n` is
//! `rules()[n - 1]`.

use core::fmt;

use crate::packet::{PacketError, PacketMeta};
use crate::rule::{Direction, Rule, RuleError, Verdict};
use crate::text::Command;

/// The most rules a [`RuleSet`] holds. It bounds the per-packet work (a linear scan) and the
/// state image ([`crate::state::IMAGE_MAX`]).
pub const MAX_RULES: usize = 64;

/// Why a change to a [`RuleSet`] was refused. The set is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleSetError {
    /// The set already holds [`MAX_RULES`] rules.
    Full,
    /// No rule has this number (for `add`: the number is not `1..=len + 1`).
    NoSuchRule(usize),
    /// The rule is not one the text syntax can express ([`Rule::check`]).
    Invalid(RuleError),
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSetError::Full => write!(f, "rule set full ({MAX_RULES} rules)"),
            RuleSetError::NoSuchRule(n) => write!(f, "no rule number {n}"),
            RuleSetError::Invalid(e) => write!(f, "invalid rule: {e}"),
        }
    }
}

/// Why a packet got its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The rule with this number (from 1) was the first to match.
    Rule(usize),
    /// No rule matched: the default, allow.
    Default,
    /// The bytes are not an IPv4 packet pf can read: dropped (see
    /// [`RuleSet::filter_ipv4`]).
    Malformed(PacketError),
}

/// The rule set's decision for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Pass or drop.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
}

/// Packet counters of a rule set, since it was made (or since
/// [`RuleSet::reset_counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets passed, by a rule or by default.
    pub allowed: u64,
    /// Packets dropped, by a rule or as malformed.
    pub denied: u64,
    /// Of `allowed`: packets no rule matched (the default verdict).
    pub unmatched: u64,
    /// Of `denied`: packets that could not be read ([`Reason::Malformed`]).
    pub malformed: u64,
}

impl Counters {
    fn count(&mut self, decision: Decision) {
        let counter = match decision.verdict {
            Verdict::Allow => &mut self.allowed,
            Verdict::Deny => &mut self.denied,
        };
        *counter = counter.wrapping_add(1);
        match decision.reason {
            Reason::Rule(_) => {}
            Reason::Default => self.unmatched = self.unmatched.wrapping_add(1),
            Reason::Malformed(_) => self.malformed = self.malformed.wrapping_add(1),
        }
    }
}

/// An ordered list of up to [`MAX_RULES`] valid rules with their hit counters.
///
/// A packet gets the verdict of the first rule that matches it, and [`Verdict::Allow`] when
/// none does. Fixed size, no allocation: about 2.5 KiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    rules: [Rule; MAX_RULES],
    hits: [u64; MAX_RULES],
    len: usize,
    counters: Counters,
}

impl Default for RuleSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleSet {
    /// The empty rule set: every packet allowed.
    pub const fn new() -> RuleSet {
        RuleSet {
            rules: [Rule::everything(Verdict::Allow); MAX_RULES],
            hits: [0; MAX_RULES],
            len: 0,
            counters: Counters {
                allowed: 0,
                denied: 0,
                unmatched: 0,
                malformed: 0,
            },
        }
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rules (every packet is allowed).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rules in order; rule number `n` is at index `n - 1`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules[..self.len]
    }

    /// The hit counters, one per rule, in the order of [`RuleSet::rules`].
    pub fn hits(&self) -> &[u64] {
        &self.hits[..self.len]
    }

    /// The rule with number `number` (from 1) and its hit count.
    pub fn get(&self, number: usize) -> Option<(&Rule, u64)> {
        let i = number.checked_sub(1)?;
        Some((self.rules().get(i)?, self.hits[i]))
    }

    /// The per-verdict counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Sets every counter, per rule and per verdict, back to zero.
    pub fn reset_counters(&mut self) {
        self.hits = [0; MAX_RULES];
        self.counters = Counters::default();
    }

    /// Appends `rule` after the last rule; returns its number.
    pub fn push(&mut self, rule: Rule) -> Result<usize, RuleSetError> {
        let number = self.len + 1;
        self.insert(number, rule).map(|()| number)
    }

    /// Puts `rule` at number `number` (`1..=len + 1`); the rule that had the number and those
    /// after it move down one, with their hit counts. The new rule starts with no hits.
    pub fn insert(&mut self, number: usize, rule: Rule) -> Result<(), RuleSetError> {
        rule.check().map_err(RuleSetError::Invalid)?;
        if number == 0 || number > self.len + 1 {
            return Err(RuleSetError::NoSuchRule(number));
        }
        if self.len == MAX_RULES {
            return Err(RuleSetError::Full);
        }
        let i = number - 1;
        self.rules.copy_within(i..self.len, i + 1);
        self.hits.copy_within(i..self.len, i + 1);
        self.rules[i] = rule;
        self.hits[i] = 0;
        self.len += 1;
        Ok(())
    }

    /// Removes the rule with number `number`; those after it move up one.
    pub fn remove(&mut self, number: usize) -> Result<Rule, RuleSetError> {
        if number == 0 || number > self.len {
            return Err(RuleSetError::NoSuchRule(number));
        }
        let i = number - 1;
        let rule = self.rules[i];
        self.rules.copy_within(i + 1..self.len, i);
        self.hits.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.rules[self.len] = Rule::everything(Verdict::Allow);
        self.hits[self.len] = 0;
        Ok(rule)
    }

    /// Removes every rule (and the counters of the rules).
    pub fn clear(&mut self) {
        let counters = self.counters;
        *self = RuleSet::new();
        self.counters = counters;
    }

    /// Carries out a shell command. `add` and `del` change the set (the caller then saves
    /// it, see [`crate::state::save`]); `list` changes nothing. Returns the number of the rule
    /// added or removed, `None` for `list`.
    pub fn apply(&mut self, command: &Command) -> Result<Option<usize>, RuleSetError> {
        match *command {
            Command::List => Ok(None),
            Command::Add { at: None, rule } => self.push(rule).map(Some),
            Command::Add { at: Some(at), rule } => {
                let at = usize::try_from(at).unwrap_or(usize::MAX);
                self.insert(at, rule).map(|()| Some(at))
            }
            Command::Del { number } => {
                let number = usize::try_from(number).unwrap_or(usize::MAX);
                self.remove(number).map(|_| Some(number))
            }
        }
    }

    /// The number of the first rule matching `meta`, if any. Counts nothing.
    #[inline]
    pub fn first_match(&self, meta: &PacketMeta) -> Option<usize> {
        self.rules()
            .iter()
            .position(|rule| rule.matches(meta))
            .map(|i| i + 1)
    }

    /// Decides the fate of the packet `meta` describes, and counts it: the verdict of the
    /// first matching rule (whose hit counter goes up), or allow when none matches.
    pub fn classify(&mut self, meta: &PacketMeta) -> Decision {
        let decision = match self.first_match(meta) {
            Some(number) => {
                let hits = &mut self.hits[number - 1];
                *hits = hits.wrapping_add(1);
                Decision {
                    verdict: self.rules[number - 1].verdict,
                    reason: Reason::Rule(number),
                }
            }
            None => Decision {
                verdict: Verdict::Allow,
                reason: Reason::Default,
            },
        };
        self.counters.count(decision);
        decision
    }

    /// Decides the fate of the raw IPv4 packet `bytes` travelling `dir`, and counts it.
    ///
    /// A packet that [`PacketMeta::from_ipv4`] cannot read is denied
    /// ([`Reason::Malformed`]): no rule can be applied to it with certainty, passing it could
    /// carry a crafted packet past a deny rule, and ip would drop it anyway.
    pub fn filter_ipv4(&mut self, dir: Direction, bytes: &[u8]) -> Decision {
        match PacketMeta::from_ipv4(bytes, dir) {
            Ok(meta) => self.classify(&meta),
            Err(e) => {
                let decision = Decision {
                    verdict: Verdict::Deny,
                    reason: Reason::Malformed(e),
                };
                self.counters.count(decision);
                decision
            }
        }
    }

    /// What `pf list` prints: one line per rule, then a summary line (see [`Listing`]).
    pub fn listing(&self) -> Listing<'_> {
        Listing(self)
    }
}

/// The output of `pf list`: one line per rule, `NUMBER: RULE  hits=N`, numbers right-aligned,
/// then one `key=value` summary line, printed last:
///
/// ```text
///  1: deny in tcp from any to 10.0.2.15/32 port 7  hits=3
///  2: allow out udp from 10.0.2.0/24 port 1000-2000 to any  hits=0
/// pf: rules=2 allowed=120 denied=5 unmatched=117 malformed=2
/// ```
///
/// Every line ends with `\n`.
pub struct Listing<'a>(&'a RuleSet);

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.0;
        for (i, (rule, hits)) in set.rules().iter().zip(set.hits()).enumerate() {
            writeln!(f, "{:>2}: {rule}  hits={hits}", i + 1)?;
        }
        let c = set.counters;
        writeln!(
            f,
            "pf: rules={} allowed={} denied={} unmatched={} malformed={}",
            set.len, c.allowed, c.denied, c.unmatched, c.malformed
        )
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;
    use crate::packet::tests::ipv4;
    use crate::text::{parse_command, parse_rule};

    fn rule(text: &str) -> Rule {
        parse_rule(text).unwrap()
    }

    fn set(rules: &[&str]) -> RuleSet {
        let mut set = RuleSet::new();
        for r in rules {
            set.push(rule(r)).unwrap();
        }
        set
    }

    fn tcp(dir: Direction, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> PacketMeta {
        PacketMeta {
            dir,
            proto: 6,
            src: Ipv4Addr::from(src),
            dst: Ipv4Addr::from(dst),
            sport: Some(sport),
            dport: Some(dport),
        }
    }

    const HOST: [u8; 4] = [10, 0, 2, 2];
    const GUEST: [u8; 4] = [10, 0, 2, 15];

    #[test]
    fn empty_set_allows_everything() {
        let mut s = RuleSet::new();
        assert!(s.is_empty());
        let d = s.classify(&tcp(Direction::In, HOST, 1, GUEST, 7));
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Allow,
                reason: Reason::Default
            }
        );
        assert_eq!(
            s.counters(),
            Counters {
                allowed: 1,
                denied: 0,
                unmatched: 1,
                malformed: 0
            }
        );
    }

    #[test]
    fn first_match_wins() {
        let echo_in = tcp(Direction::In, HOST, 40000, GUEST, 7);
        let mut s = set(&[
            "deny in tcp from any to 10.0.2.15/32 port 7",
            "allow from any to any",
        ]);
        assert_eq!(
            s.classify(&echo_in),
            Decision {
                verdict: Verdict::Deny,
                reason: Reason::Rule(1)
            }
        );
        let mut s = set(&[
            "allow from any to any",
            "deny in tcp from any to 10.0.2.15/32 port 7",
        ]);
        assert_eq!(
            s.classify(&echo_in),
            Decision {
                verdict: Verdict::Allow,
                reason: Reason::Rule(1)
            }
        );
        assert_eq!(s.hits(), &[1, 0]);
        // A later, more specific rule still loses to an earlier general one; a packet the first
        // rule does not match falls through to the next.
        let mut s = set(&[
            "allow in tcp from 10.0.2.2 to any port 22",
            "deny in tcp from 10.0.2.0/24 to any",
            "allow from any to any",
        ]);
        assert_eq!(
            s.classify(&tcp(Direction::In, HOST, 5, GUEST, 22)).reason,
            Reason::Rule(1)
        );
        assert_eq!(
            s.classify(&tcp(Direction::In, HOST, 5, GUEST, 23)).reason,
            Reason::Rule(2)
        );
        assert_eq!(
            s.classify(&tcp(Direction::In, [10, 0, 3, 1], 5, GUEST, 23))
                .reason,
            Reason::Rule(3)
        );
        assert_eq!(
            s.classify(&tcp(Direction::Out, GUEST, 23, HOST, 5)).reason,
            Reason::Rule(3)
        );
        assert_eq!(s.hits(), &[1, 1, 2]);
        assert_eq!(
            s.first_match(&tcp(Direction::In, HOST, 5, GUEST, 22)),
            Some(1)
        );
        assert_eq!(s.hits(), &[1, 1, 2], "first_match counts nothing");
    }

    #[test]
    fn direction_protocol_and_address_fields() {
        let s = set(&["deny out udp from 10.0.2.0/24 port 1000-2000 to any"]);
        let mut m = PacketMeta {
            proto: 17,
            ..tcp(Direction::Out, GUEST, 1000, HOST, 53)
        };
        assert_eq!(s.first_match(&m), Some(1));
        m.sport = Some(2000);
        assert_eq!(s.first_match(&m), Some(1));
        m.sport = Some(2001);
        assert_eq!(s.first_match(&m), None);
        m.sport = Some(999);
        assert_eq!(s.first_match(&m), None);
        m.sport = Some(1500);
        m.dir = Direction::In;
        assert_eq!(s.first_match(&m), None);
        m.dir = Direction::Out;
        m.proto = 6;
        assert_eq!(s.first_match(&m), None);
        m.proto = 17;
        m.src = Ipv4Addr::new(10, 0, 3, 15);
        assert_eq!(s.first_match(&m), None);
        // A packet marked `any` (never produced by the server) meets only `any` rules.
        let s = set(&[
            "deny in from any to any",
            "allow out from any to any",
            "deny any from any to any",
        ]);
        assert_eq!(
            s.first_match(&tcp(Direction::Any, HOST, 1, GUEST, 2)),
            Some(3)
        );
    }

    #[test]
    fn port_edges() {
        let s = set(&[
            "deny tcp from any port 0 to any",
            "deny tcp from any to any port 65535",
        ]);
        assert_eq!(
            s.first_match(&tcp(Direction::In, HOST, 0, GUEST, 1)),
            Some(1)
        );
        assert_eq!(
            s.first_match(&tcp(Direction::In, HOST, 1, GUEST, 65535)),
            Some(2)
        );
        assert_eq!(
            s.first_match(&tcp(Direction::In, HOST, 1, GUEST, 65534)),
            None
        );
        let s = set(&["deny udp from any to any port 0-65535"]);
        let udp = |dport| PacketMeta {
            proto: 17,
            ..tcp(Direction::In, HOST, 9, GUEST, dport)
        };
        assert_eq!(s.first_match(&udp(0)), Some(1));
        assert_eq!(s.first_match(&udp(65535)), Some(1));
        // ... but not a UDP packet without ports (a non-first fragment).
        assert_eq!(
            s.first_match(&PacketMeta {
                sport: None,
                dport: None,
                ..udp(0)
            }),
            None
        );
    }

    #[test]
    fn prefix_edges() {
        let s = set(&[
            "deny from 0.0.0.0/0 to 10.0.2.15/32",
            "allow from 10.0.2.0/24 to any",
        ]);
        assert_eq!(
            s.first_match(&tcp(Direction::In, [255, 255, 255, 255], 1, GUEST, 1)),
            Some(1)
        );
        assert_eq!(
            s.first_match(&tcp(Direction::In, [0, 0, 0, 0], 1, GUEST, 1)),
            Some(1)
        );
        assert_eq!(
            s.first_match(&tcp(Direction::In, HOST, 1, [10, 0, 2, 16], 1)),
            Some(2)
        );
        assert_eq!(
            s.first_match(&tcp(Direction::In, [10, 0, 1, 255], 1, [10, 0, 2, 16], 1)),
            None
        );
    }

    #[test]
    fn fragments_meet_only_portless_rules() {
        let mut s = set(&[
            "deny in tcp from any to any port 7",
            "deny in tcp from 10.0.2.2 to any",
        ]);
        // First fragment: ports known, rule 1.
        let first = ipv4(6, HOST, GUEST, 0x2000, 5, &[0, 9, 0, 7, 0, 0, 0, 0]);
        assert_eq!(s.filter_ipv4(Direction::In, &first).reason, Reason::Rule(1));
        // Second fragment: no ports, only the portless rule 2 can match it.
        let second = ipv4(6, HOST, GUEST, 185, 5, &[0, 9, 0, 7, 0, 0, 0, 0]);
        assert_eq!(
            s.filter_ipv4(Direction::In, &second).reason,
            Reason::Rule(2)
        );
        let other = ipv4(6, [10, 0, 2, 3], GUEST, 185, 5, &[0, 9, 0, 7]);
        assert_eq!(s.filter_ipv4(Direction::In, &other).reason, Reason::Default);
        assert_eq!(s.hits(), &[1, 1]);
    }

    #[test]
    fn counters_per_rule_and_per_verdict() {
        let mut s = set(&[
            "deny in icmp from any to any",
            "allow in tcp from any to any",
        ]);
        let ping = ipv4(1, HOST, GUEST, 0, 5, &[8, 0, 0, 0]);
        let syn = ipv4(6, HOST, GUEST, 0, 5, &[0, 1, 0, 2]);
        let udp = ipv4(17, HOST, GUEST, 0, 5, &[0, 1, 0, 2]);
        for _ in 0..3 {
            assert_eq!(s.filter_ipv4(Direction::In, &ping).verdict, Verdict::Deny);
        }
        for _ in 0..2 {
            assert_eq!(s.filter_ipv4(Direction::In, &syn).verdict, Verdict::Allow);
        }
        assert_eq!(s.filter_ipv4(Direction::In, &udp).reason, Reason::Default);
        let d = s.filter_ipv4(Direction::In, &ping[..19]);
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Deny,
                reason: Reason::Malformed(PacketError::TooShort)
            }
        );
        assert_eq!(s.hits(), &[3, 2]);
        assert_eq!(
            s.counters(),
            Counters {
                allowed: 3,
                denied: 4,
                unmatched: 1,
                malformed: 1
            }
        );
        assert_eq!(s.get(1), Some((&rule("deny in icmp from any to any"), 3)));
        s.reset_counters();
        assert_eq!(s.hits(), &[0, 0]);
        assert_eq!(s.counters(), Counters::default());
    }

    #[test]
    fn hits_move_with_their_rules() {
        let mut s = set(&["deny tcp from any to any", "deny udp from any to any"]);
        let t = tcp(Direction::In, HOST, 1, GUEST, 2);
        let u = PacketMeta { proto: 17, ..t };
        s.classify(&t);
        s.classify(&u);
        s.classify(&u);
        assert_eq!(s.hits(), &[1, 2]);
        s.insert(1, rule("allow icmp from any to any")).unwrap();
        assert_eq!(s.hits(), &[0, 1, 2]);
        assert_eq!(s.remove(2), Ok(rule("deny tcp from any to any")));
        assert_eq!(s.hits(), &[0, 2]);
        assert_eq!(
            s.rules(),
            &[
                rule("allow icmp from any to any"),
                rule("deny udp from any to any")
            ]
        );
        assert_eq!(s.classify(&u).reason, Reason::Rule(2));
        assert_eq!(s.hits(), &[0, 3]);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.counters().denied, 4);
    }

    #[test]
    fn capacity_and_numbers() {
        let mut s = RuleSet::new();
        for n in 1..=MAX_RULES {
            assert_eq!(s.push(rule("deny tcp from any to any")), Ok(n));
        }
        let before = s.clone();
        assert_eq!(
            s.push(rule("allow from any to any")),
            Err(RuleSetError::Full)
        );
        assert_eq!(
            s.insert(1, rule("allow from any to any")),
            Err(RuleSetError::Full)
        );
        assert_eq!(s, before);
        assert_eq!(s.remove(0), Err(RuleSetError::NoSuchRule(0)));
        assert_eq!(
            s.remove(MAX_RULES + 1),
            Err(RuleSetError::NoSuchRule(MAX_RULES + 1))
        );
        assert!(s.remove(MAX_RULES).is_ok());
        assert_eq!(s.push(rule("allow from any to any")), Ok(MAX_RULES));

        let mut s = set(&["deny tcp from any to any"]);
        assert_eq!(
            s.insert(0, rule("allow from any to any")),
            Err(RuleSetError::NoSuchRule(0))
        );
        assert_eq!(
            s.insert(3, rule("allow from any to any")),
            Err(RuleSetError::NoSuchRule(3))
        );
        assert_eq!(s.insert(2, rule("allow from any to any")), Ok(()));
        assert_eq!(s.get(0), None);
        assert_eq!(s.get(3), None);
        let mut bad = rule("deny tcp from any to any port 7");
        bad.proto = crate::Proto::Icmp;
        assert_eq!(
            s.push(bad),
            Err(RuleSetError::Invalid(RuleError::PortWithoutTcpUdp))
        );
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn apply_shell_commands() {
        let mut s = RuleSet::new();
        let mut run = |line: &str| s.apply(&parse_command(line).unwrap());
        assert_eq!(
            run("pf add deny in tcp from any to 10.0.2.15/32 port 7"),
            Ok(Some(1))
        );
        assert_eq!(
            run("pf add allow out udp from 10.0.2.0/24 port 1000-2000 to any"),
            Ok(Some(2))
        );
        assert_eq!(run("pf add 1 allow icmp from any to any"), Ok(Some(1)));
        assert_eq!(run("pf list"), Ok(None));
        assert_eq!(run("pf del 4"), Err(RuleSetError::NoSuchRule(4)));
        assert_eq!(
            run("pf add 5 deny from any to any"),
            Err(RuleSetError::NoSuchRule(5))
        );
        assert_eq!(
            run("pf del 4294967295"),
            Err(RuleSetError::NoSuchRule(4294967295))
        );
        assert_eq!(run("pf del 1"), Ok(Some(1)));
        assert_eq!(
            s.rules(),
            &[
                rule("deny in tcp from any to 10.0.2.15/32 port 7"),
                rule("allow out udp from 10.0.2.0/24 port 1000-2000 to any")
            ]
        );
    }

    #[test]
    fn listing_format() {
        let mut s = set(&[
            "deny in tcp from any to 10.0.2.15/32 port 7",
            "allow out udp from 10.0.2.0/24 port 1000-2000 to any",
        ]);
        s.classify(&tcp(Direction::In, HOST, 1, GUEST, 7));
        s.classify(&tcp(Direction::In, HOST, 1, GUEST, 8));
        assert_eq!(
            s.listing().to_string(),
            concat!(
                " 1: deny in tcp from any to 10.0.2.15/32 port 7  hits=1\n",
                " 2: allow out udp from 10.0.2.0/24 port 1000-2000 to any  hits=0\n",
                "pf: rules=2 allowed=1 denied=1 unmatched=1 malformed=0\n",
            )
        );
        assert_eq!(
            RuleSet::new().listing().to_string(),
            "pf: rules=0 allowed=0 denied=0 unmatched=0 malformed=0\n"
        );
        // Each listed rule, cut from its line, parses back to itself.
        for (line, r) in s.listing().to_string().lines().zip(s.rules()) {
            let text = line
                .split_once(": ")
                .unwrap()
                .1
                .rsplit_once("  hits=")
                .unwrap()
                .0;
            assert_eq!(parse_rule(text).as_ref(), Ok(r));
        }
    }
}
