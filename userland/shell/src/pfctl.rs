//! `pf list`, `pf add [N] RULE` and `pf del N`: the packet filter's rules and counters, read and
//! changed over kernel IPC. The command line is parsed by the `pf` library
//! ([`pf::parse_command`], whose errors name the wrong word); rules travel as the 24-byte records
//! of [`pf::state::encode_rule`].
//!
//! This is the client's half of pf's control protocol; the server's half, and the byte tables
//! both follow, are in `servers/pfd/src/ctl.rs`. In short: a 64-byte request (`PFCT`, version 1,
//! an operation, a 32-bit argument, for `add` the rule record at byte 16) answered by a 64-byte
//! reply (`PFCT`, version 1, the operation, a status, flags, the number of rules, a generation
//! that moves with every change, then six counters or a rule record with its hits and number).
//! Each request is one `ipc_call_timeout` of at most 2 s, so a hung pf cannot hang the shell.
//!
//! `pf list` asks for the first counter page (which tells the number of rules and the
//! generation), then for each rule, then for the two other pages. If the generation moves
//! meanwhile (someone else changed the rules) it starts over, up to three times. It prints what
//! the `pf` library's listing prints, one line per rule, and then one `key=value` line:
//!
//! ```text
//!  1: deny in icmp from any to any  hits=3
//! pf: rules=1 allowed=40 denied=3 unmatched=40 malformed=0 not_ipv4=12 refused=0 rx_in=31 ...
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use axolotl_abi::{Error, IPC_MSG_LEN};
use libsys::Message;
use pf::state::{RECORD_LEN, decode_rule, encode_rule};
use pf::{Command, MAX_RULES, Rule, parse_command};

use crate::commands::{Failure, Outcome, Sys};

/// The packet filter's process name.
pub const SERVICE: &str = "pf";
/// How long one request may take.
pub const CALL_TIMEOUT_NS: u64 = 2_000_000_000;
/// How often `pf list` starts over when the rules change under it.
pub const LIST_ATTEMPTS: u32 = 3;

/// The protocol's constants (servers/pfd/src/ctl.rs is the specification).
pub mod wire {
    /// First four bytes of every request and reply.
    pub const MAGIC: [u8; 4] = *b"PFCT";
    /// Protocol version.
    pub const VERSION: u8 = 1;
    /// Operation: a page of counters.
    pub const OP_COUNTERS: u8 = 1;
    /// Operation: one rule.
    pub const OP_RULE: u8 = 2;
    /// Operation: add a rule.
    pub const OP_ADD: u8 = 3;
    /// Operation: delete a rule.
    pub const OP_DEL: u8 = 4;
    /// Status: done.
    pub const OK: u8 = 0;
    /// Status: not a request pf understands.
    pub const BAD_REQUEST: u8 = 1;
    /// Status: the rule record is invalid.
    pub const BAD_RULE: u8 = 2;
    /// Status: no rule with that number (or no such position).
    pub const NO_SUCH_RULE: u8 = 3;
    /// Status: the rule set is full.
    pub const FULL: u8 = 4;
    /// Reply flag: the change is made but not saved.
    pub const FLAG_NOT_SAVED: u8 = 1;
    /// The counter pages' keys, page by page, as `pf list` prints them.
    pub const KEYS: [[&str; 6]; 3] = [
        [
            "allowed",
            "denied",
            "unmatched",
            "malformed",
            "not_ipv4",
            "refused",
        ],
        [
            "rx_in",
            "rx_out",
            "tx_in",
            "tx_out",
            "rx_returned",
            "tx_done",
        ],
        [
            "held_high_e1000",
            "held_high_ip",
            "stalls",
            "epoch_changes",
            "epoch_in_flight",
            "channel_errors",
        ],
    ];
}

/// A request: operation `op`, argument `arg`, and for `add` the rule.
pub fn request(op: u8, arg: u32, rule: Option<&Rule>) -> Message {
    let mut m = [0u8; IPC_MSG_LEN];
    m[0..4].copy_from_slice(&wire::MAGIC);
    m[4] = wire::VERSION;
    m[5] = op;
    m[8..12].copy_from_slice(&arg.to_le_bytes());
    if let Some(rule) = rule {
        m[16..16 + RECORD_LEN].copy_from_slice(&encode_rule(rule));
    }
    m
}

/// A reply, as far as the shell reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The operation answered.
    pub op: u8,
    /// The status.
    pub status: u8,
    /// Flags ([`wire::FLAG_NOT_SAVED`]).
    pub flags: u8,
    /// Rules in the set.
    pub rules: u32,
    /// Rule changes since pf started.
    pub generation: u32,
    /// A counter page's six counters.
    pub counters: [u64; 6],
    /// A rule's record.
    pub record: [u8; RECORD_LEN],
    /// The rule's hits.
    pub hits: u64,
    /// The rule's number.
    pub number: u32,
}

fn u32_at(m: &Message, at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&m[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(m: &Message, at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[at..at + 8]);
    u64::from_le_bytes(b)
}

impl Reply {
    /// Reads a reply; `None` when it is not one of this protocol and version.
    pub fn decode(m: &Message) -> Option<Reply> {
        if m[0..4] != wire::MAGIC || m[4] != wire::VERSION {
            return None;
        }
        let mut record = [0u8; RECORD_LEN];
        record.copy_from_slice(&m[16..16 + RECORD_LEN]);
        Some(Reply {
            op: m[5],
            status: m[6],
            flags: m[7],
            rules: u32_at(m, 8),
            generation: u32_at(m, 12),
            counters: core::array::from_fn(|i| u64_at(m, 16 + 8 * i)),
            record,
            hits: u64_at(m, 40),
            number: u32_at(m, 48),
        })
    }
}

/// `pf ARGS...`.
pub fn pf(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    // Parsed as the whole line, so word numbers in errors count `pf` as word 1.
    let mut line = String::from("pf");
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let command = parse_command(&line).map_err(|e| Failure::usage(format!("{e}")))?;
    let pid = sys
        .lookup(SERVICE)
        .map_err(|e| Failure::failed(format!("no running process {SERVICE} ({e})")))?;
    let mut client = Client { sys, pid };
    match command {
        Command::List => list(&mut client, out),
        Command::Add { at, rule } => add(&mut client, out, at, &rule),
        Command::Del { number } => del(&mut client, out, number),
    }
}

struct Client<'a, S: Sys> {
    sys: &'a mut S,
    pid: u32,
}

impl<S: Sys> Client<'_, S> {
    /// One request and its reply; a transport failure, a foreign answer or a refused request
    /// is a [`Failure`]; other statuses are for the caller.
    fn call(&mut self, op: u8, arg: u32, rule: Option<&Rule>) -> Result<Reply, Failure> {
        let pid = self.pid;
        let mut answer: Message = [0; IPC_MSG_LEN];
        match self
            .sys
            .ipc_call_timeout(pid, &request(op, arg, rule), &mut answer, CALL_TIMEOUT_NS)
        {
            Ok(()) => {}
            Err(Error::TimedOut) => {
                return Err(Failure::failed(format!(
                    "no answer from {SERVICE} (pid {pid}) within 2 s"
                )));
            }
            Err(e) => {
                return Err(Failure::failed(format!(
                    "call to {SERVICE} (pid {pid}) failed: {e}"
                )));
            }
        }
        let reply = Reply::decode(&answer)
            .filter(|r| r.op == op)
            .ok_or_else(|| Failure::failed(format!("{SERVICE} answered in another protocol")))?;
        match reply.status {
            wire::BAD_REQUEST => Err(Failure::failed(format!(
                "{SERVICE} did not understand the request (protocol version {})",
                wire::VERSION
            ))),
            wire::BAD_RULE => Err(Failure::failed(format!(
                "{SERVICE} refused the rule record"
            ))),
            _ => Ok(reply),
        }
    }

    fn counters(&mut self, page: u32) -> Result<Reply, Failure> {
        let r = self.call(wire::OP_COUNTERS, page, None)?;
        expect_ok(&r)?;
        Ok(r)
    }
}

fn expect_ok(r: &Reply) -> Result<(), Failure> {
    match r.status {
        wire::OK => Ok(()),
        other => Err(Failure::failed(format!(
            "{SERVICE} answered with unknown status {other}"
        ))),
    }
}

fn rule_of(r: &Reply) -> Result<Rule, Failure> {
    decode_rule(&r.record).map_err(|e| {
        Failure::failed(format!(
            "{SERVICE} sent an invalid record for rule {}: {e}",
            r.number
        ))
    })
}

fn list<S: Sys>(c: &mut Client<'_, S>, out: &mut impl Write) -> Outcome {
    for _ in 0..LIST_ATTEMPTS {
        let filter = c.counters(0)?;
        let n = filter.rules;
        if n as usize > MAX_RULES {
            return Err(Failure::failed(format!(
                "{SERVICE} reports {n} rules, more than {MAX_RULES}"
            )));
        }
        let mut rules: Vec<(Rule, u64)> = Vec::new();
        for number in 1..=n {
            let r = c.call(wire::OP_RULE, number, None)?;
            if r.generation != filter.generation || r.status == wire::NO_SUCH_RULE {
                break;
            }
            expect_ok(&r)?;
            rules.push((rule_of(&r)?, r.hits));
        }
        if rules.len() != n as usize {
            continue;
        }
        let pages = [filter, c.counters(1)?, c.counters(2)?];
        for (i, (rule, hits)) in rules.iter().enumerate() {
            writeln!(out, "{:>2}: {rule}  hits={hits}", i + 1)?;
        }
        write!(out, "pf: rules={n}")?;
        for (page, keys) in pages.iter().zip(wire::KEYS) {
            for (key, value) in keys.iter().zip(page.counters) {
                write!(out, " {key}={value}")?;
            }
        }
        writeln!(out)?;
        return Ok(());
    }
    Err(Failure::failed(format!(
        "the rules changed {LIST_ATTEMPTS} times while listing them; try again"
    )))
}

fn warn_unsaved(out: &mut impl Write, r: &Reply) -> Outcome {
    if r.flags & wire::FLAG_NOT_SAVED != 0 {
        writeln!(
            out,
            "warning: {SERVICE} could not save its rules: the change is lost if {SERVICE} restarts"
        )?;
    }
    Ok(())
}

fn add<S: Sys>(
    c: &mut Client<'_, S>,
    out: &mut impl Write,
    at: Option<u32>,
    rule: &Rule,
) -> Outcome {
    let r = c.call(wire::OP_ADD, at.unwrap_or(0), Some(rule))?;
    match r.status {
        wire::OK => {}
        wire::FULL => {
            return Err(Failure::failed(format!(
                "rule set full ({} rules)",
                r.rules
            )));
        }
        wire::NO_SUCH_RULE => {
            return Err(Failure::failed(format!(
                "no position {}: {SERVICE} has {} rules, so a new one goes at 1 to {}",
                r.number,
                r.rules,
                r.rules + 1
            )));
        }
        _ => expect_ok(&r)?,
    }
    writeln!(out, "added rule {}: {}", r.number, rule_of(&r)?)?;
    warn_unsaved(out, &r)
}

fn del<S: Sys>(c: &mut Client<'_, S>, out: &mut impl Write, number: u32) -> Outcome {
    let r = c.call(wire::OP_DEL, number, None)?;
    if r.status == wire::NO_SUCH_RULE {
        return Err(Failure::failed(format!(
            "no rule number {number} ({SERVICE} has {} rules)",
            r.rules
        )));
    }
    expect_ok(&r)?;
    writeln!(
        out,
        "deleted rule {}: {}  hits={}",
        r.number,
        rule_of(&r)?,
        r.hits
    )?;
    warn_unsaved(out, &r)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::commands::tests::{Fake, run};
    use pf::{RuleSet, parse_rule};

    /// pf in the fake kernel: the server's half of the protocol as the table in
    /// servers/pfd/src/ctl.rs says, over a real `pf::RuleSet`.
    pub(crate) struct FakePf {
        pub(crate) pid: u32,
        pub(crate) rules: RuleSet,
        pub(crate) generation: u32,
        pub(crate) pages: [[u64; 6]; 3],
        /// Takes requests but never answers.
        pub(crate) silent: bool,
        /// Saving fails.
        pub(crate) unsaved: bool,
        /// After this many rule requests, someone else appends a rule (once).
        pub(crate) change_after_rule_calls: Option<u32>,
        /// Answers with another magic.
        pub(crate) foreign: bool,
        pub(crate) calls: Vec<Message>,
    }

    impl FakePf {
        pub(crate) fn new(pid: u32) -> Self {
            FakePf {
                pid,
                rules: RuleSet::new(),
                generation: 0,
                pages: [[0; 6]; 3],
                silent: false,
                unsaved: false,
                change_after_rule_calls: None,
                foreign: false,
                calls: Vec::new(),
            }
        }

        /// The answer to `m`.
        pub(crate) fn answer(&mut self, m: &Message) -> Message {
            self.calls.push(*m);
            let mut r = [0u8; IPC_MSG_LEN];
            r[0..4].copy_from_slice(if self.foreign { b"XXXX" } else { &wire::MAGIC });
            r[4] = wire::VERSION;
            r[5] = m[5];
            let arg = u32_at(m, 8);
            let mut record = [0u8; RECORD_LEN];
            record.copy_from_slice(&m[16..40]);
            let mut body: Option<(Rule, u64, u32)> = None;
            let status = if m[0..5] != *b"PFCT\x01" {
                wire::BAD_REQUEST
            } else {
                match m[5] {
                    wire::OP_COUNTERS if arg < 3 => {
                        for (i, v) in self.pages[arg as usize].iter().enumerate() {
                            r[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
                        }
                        wire::OK
                    }
                    wire::OP_RULE => {
                        if let Some(n) = self.change_after_rule_calls.as_mut() {
                            if *n == 0 {
                                self.change_after_rule_calls = None;
                                self.rules
                                    .push(parse_rule("allow from any to any").unwrap())
                                    .unwrap();
                                self.generation += 1;
                            } else {
                                *n -= 1;
                            }
                        }
                        match self.rules.get(arg as usize) {
                            Some((rule, hits)) => {
                                body = Some((*rule, hits, arg));
                                wire::OK
                            }
                            None => wire::NO_SUCH_RULE,
                        }
                    }
                    wire::OP_ADD => match decode_rule(&record) {
                        Err(_) => wire::BAD_RULE,
                        Ok(rule) => {
                            let result = match arg {
                                0 => self.rules.push(rule),
                                n => self.rules.insert(n as usize, rule).map(|()| n as usize),
                            };
                            match result {
                                Ok(n) => {
                                    body = Some((rule, 0, n as u32));
                                    self.generation += 1;
                                    wire::OK
                                }
                                Err(pf::RuleSetError::Full) => wire::FULL,
                                Err(_) => wire::NO_SUCH_RULE,
                            }
                        }
                    },
                    wire::OP_DEL => {
                        let hits = self.rules.get(arg as usize).map_or(0, |(_, h)| h);
                        match self.rules.remove(arg as usize) {
                            Ok(rule) => {
                                body = Some((rule, hits, arg));
                                self.generation += 1;
                                wire::OK
                            }
                            Err(_) => wire::NO_SUCH_RULE,
                        }
                    }
                    _ => wire::BAD_REQUEST,
                }
            };
            if status == wire::NO_SUCH_RULE {
                r[48..52].copy_from_slice(&arg.to_le_bytes());
            }
            if let Some((rule, hits, number)) = body {
                r[16..40].copy_from_slice(&encode_rule(&rule));
                r[40..48].copy_from_slice(&hits.to_le_bytes());
                r[48..52].copy_from_slice(&number.to_le_bytes());
                if self.unsaved && matches!(m[5], wire::OP_ADD | wire::OP_DEL) {
                    r[7] = wire::FLAG_NOT_SAVED;
                }
            }
            r[6] = status;
            r[8..12].copy_from_slice(&(self.rules.len() as u32).to_le_bytes());
            r[12..16].copy_from_slice(&self.generation.to_le_bytes());
            r
        }
    }

    fn with_pf() -> Fake {
        let mut k = Fake::new();
        k.pf = Some(FakePf::new(6));
        k
    }

    fn fake_pf(k: &mut Fake) -> &mut FakePf {
        k.pf.as_mut().unwrap()
    }

    /// The same bytes as `wire_layout` in servers/pfd/src/ctl.rs.
    #[test]
    fn wire_layout() {
        let rule = parse_rule("deny in icmp from 10.0.2.2 to any").unwrap();
        let add = request(wire::OP_ADD, 2, Some(&rule));
        let mut expect = [0u8; 64];
        expect[..12].copy_from_slice(b"PFCT\x01\x03\x00\x00\x02\x00\x00\x00");
        expect[16..40].copy_from_slice(&[
            1, 1, 1, 0, 10, 0, 2, 2, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(add, expect);
        let counters = request(wire::OP_COUNTERS, 1, None);
        assert_eq!(&counters[..12], b"PFCT\x01\x01\x00\x00\x01\x00\x00\x00");
        assert!(counters[12..].iter().all(|&b| b == 0));
        assert_eq!(&request(wire::OP_RULE, 7, None)[5..9], &[2, 0, 0, 7]);
        assert_eq!(
            &request(wire::OP_DEL, 258, None)[5..12],
            &[4, 0, 0, 2, 1, 0, 0]
        );
        // pf's answer to adding that rule to an empty set, as pf's test writes it out.
        let mut reply = [0u8; 64];
        reply[..16].copy_from_slice(b"PFCT\x01\x03\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00");
        reply[16..40].copy_from_slice(&add[16..40]);
        reply[48] = 1;
        let r = Reply::decode(&reply).unwrap();
        assert_eq!(
            (
                r.op,
                r.status,
                r.flags,
                r.rules,
                r.generation,
                r.hits,
                r.number
            ),
            (wire::OP_ADD, wire::OK, 0, 1, 1, 0, 1)
        );
        assert_eq!(decode_rule(&r.record), Ok(rule));
        assert_eq!(Reply::decode(&[0; 64]), None);
    }

    #[test]
    fn add_list_del() {
        let mut k = with_pf();
        assert_eq!(
            run(&mut k, "pf add deny in icmp from any to any"),
            (0, "added rule 1: deny in icmp from any to any\n".into())
        );
        assert_eq!(
            run(&mut k, "pf add 1 allow in tcp from 10.0.2.2 to any port 22"),
            (
                0,
                "added rule 1: allow in tcp from 10.0.2.2/32 to any port 22\n".into()
            )
        );
        let p = fake_pf(&mut k);
        p.pages = [[10, 2, 9, 0, 4, 1], [7, 6, 5, 5, 6, 5], [0, 3, 0, 0, 0, 0]];
        let mut meta = pf::PacketMeta {
            dir: pf::Direction::In,
            proto: 1,
            src: core::net::Ipv4Addr::new(10, 0, 2, 2),
            dst: core::net::Ipv4Addr::new(10, 0, 2, 15),
            sport: None,
            dport: None,
        };
        p.rules.classify(&meta);
        p.rules.classify(&meta);
        meta.proto = 6;
        meta.sport = Some(1);
        meta.dport = Some(22);
        p.rules.classify(&meta);
        let (status, out) = run(&mut k, "pf list");
        assert_eq!(status, 0, "{out}");
        assert_eq!(
            out,
            " 1: allow in tcp from 10.0.2.2/32 to any port 22  hits=1\n \
             2: deny in icmp from any to any  hits=2\n\
             pf: rules=2 allowed=10 denied=2 unmatched=9 malformed=0 not_ipv4=4 refused=1 \
             rx_in=7 rx_out=6 tx_in=5 tx_out=5 rx_returned=6 tx_done=5 held_high_e1000=0 \
             held_high_ip=3 stalls=0 epoch_changes=0 epoch_in_flight=0 channel_errors=0\n"
        );
        assert_eq!(
            run(&mut k, "pf del 2"),
            (
                0,
                "deleted rule 2: deny in icmp from any to any  hits=2\n".into()
            )
        );
        assert_eq!(fake_pf(&mut k).rules.len(), 1);
        // Every call had the 2 s timeout.
        assert!(k.pf_timeouts.iter().all(|&t| t == CALL_TIMEOUT_NS));
    }

    #[test]
    fn an_empty_list_is_the_counters_line() {
        let mut k = with_pf();
        let (status, out) = run(&mut k, "pf list");
        assert_eq!(status, 0);
        assert!(out.starts_with("pf: rules=0 allowed=0 "), "{out}");
        assert_eq!(out.lines().count(), 1);
        // One call per page, none for rules.
        assert_eq!(fake_pf(&mut k).calls.len(), 3);
    }

    #[test]
    fn syntax_errors_name_the_word() {
        let mut k = with_pf();
        assert_eq!(
            run(&mut k, "pf add deny in icmp from 10.0.2.15/24 to any"),
            (
                2,
                "pf: word 7 \"10.0.2.15/24\": address has bits set past the prefix length (write the network)\n[exit 2]\n"
                    .into()
            )
        );
        assert_eq!(
            run(&mut k, "pf"),
            (
                2,
                "pf: missing word 2: expected `list`, `add` or `del`\n[exit 2]\n".into()
            )
        );
        assert_eq!(
            run(&mut k, "pf del 0"),
            (
                2,
                "pf: word 3 \"0\": not a rule number (1, 2, ...)\n[exit 2]\n".into()
            )
        );
        assert_eq!(
            run(&mut k, "pf list all"),
            (
                2,
                "pf: word 3 \"all\": expected the end of the line\n[exit 2]\n".into()
            )
        );
        assert!(fake_pf(&mut k).calls.is_empty(), "nothing was sent");
    }

    #[test]
    fn refusals_from_pf() {
        let mut k = with_pf();
        assert_eq!(
            run(&mut k, "pf del 1"),
            (
                1,
                "pf: no rule number 1 (pf has 0 rules)\n[exit 1]\n".into()
            )
        );
        assert_eq!(
            run(&mut k, "pf add 3 deny from any to any"),
            (
                1,
                "pf: no position 3: pf has 0 rules, so a new one goes at 1 to 1\n[exit 1]\n".into()
            )
        );
        for _ in 0..MAX_RULES {
            assert_eq!(run(&mut k, "pf add deny from any to any").0, 0);
        }
        assert_eq!(
            run(&mut k, "pf add deny from any to any"),
            (1, "pf: rule set full (64 rules)\n[exit 1]\n".into())
        );
        fake_pf(&mut k).unsaved = true;
        assert_eq!(
            run(&mut k, "pf del 64"),
            (
                0,
                "deleted rule 64: deny from any to any  hits=0\n\
                 warning: pf could not save its rules: the change is lost if pf restarts\n"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_hung_or_foreign_pf() {
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "pf list"),
            (
                1,
                "pf: no running process pf (not found)\n[exit 1]\n".into()
            )
        );
        let mut k = with_pf();
        fake_pf(&mut k).silent = true;
        let before = k.time_ns_now();
        assert_eq!(
            run(&mut k, "pf add deny from any to any"),
            (
                1,
                "pf: no answer from pf (pid 6) within 2 s\n[exit 1]\n".into()
            )
        );
        assert_eq!(k.time_ns_now() - before, CALL_TIMEOUT_NS);
        let mut k = with_pf();
        fake_pf(&mut k).foreign = true;
        assert_eq!(
            run(&mut k, "pf list"),
            (1, "pf: pf answered in another protocol\n[exit 1]\n".into())
        );
    }

    #[test]
    fn a_listing_starts_over_when_the_rules_change() {
        let mut k = with_pf();
        for _ in 0..3 {
            run(&mut k, "pf add deny in udp from any to any");
        }
        fake_pf(&mut k).change_after_rule_calls = Some(1);
        let (status, out) = run(&mut k, "pf list");
        assert_eq!(status, 0, "{out}");
        assert_eq!(
            out.lines().count(),
            5,
            "four rules and the counters:\n{out}"
        );
        assert!(out.contains(" 4: allow from any to any  hits=0\n"));
        assert!(out.ends_with("channel_errors=0\n") && out.contains("pf: rules=4 "));
    }
}
