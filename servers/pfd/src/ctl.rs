//! The control protocol of pf: how the shell's `pf list|add|del` reads and changes the rules
//! and reads the counters, over kernel IPC (`ipc_call_timeout` from the shell, `ipc_reply` from
//! pf, which polls for requests and never blocks in a receive).
//!
//! A request and its reply are one 64-byte message each; integers are little-endian. A rule
//! travels as the 24-byte record of [`pf::state::encode_rule`], the same bytes the state region
//! holds, so the protocol adds nothing to describe a rule.
//!
//! Request:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `PFCT` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | operation: 1 counters, 2 rule, 3 add, 4 del |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | argument: counters: the page (0 filter, 1 frames, 2 health); rule, del: the rule number (from 1); add: the position it takes (`1..=rules + 1`, 0: after the last) |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 24 | add: the rule record; else 0 |
//! | 40 | 24 | reserved, 0 |
//!
//! Reply:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `PFCT` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | the request's operation |
//! | 6 | 1 | status: 0 ok, 1 bad request, 2 bad rule record, 3 no such rule, 4 rule set full |
//! | 7 | 1 | flags: bit 0 — the change is made but could not be saved in the state region |
//! | 8 | 4 | the number of rules now |
//! | 12 | 4 | generation: rule changes since pf started (a listing that sees it move restarts) |
//! | 16 | 48 | counters: six `u64` of the page (below); rule, add, del: the rule record (16..40), its hit count (40..48), its number (48..52; for status 3 the number asked) |
//!
//! Counter pages ([`page`]): filter — allowed, denied, unmatched, malformed (the rule set's
//! [`pf::Counters`]), not_ipv4, refused; frames — rx_in, rx_out, tx_in, tx_out, rx_returned,
//! tx_done; health — held_high_e1000, held_high_ip, stalls, epoch_changes, epoch_in_flight,
//! channel_errors (see [`crate::path::Counters`]).
//!
//! Anything else is answered with status 1 and changes nothing: another magic or version,
//! an unknown operation or page, a reserved byte that is not zero. The shell implements the
//! client's half of this table (`userland/shell/src/pfctl.rs`); both sides test against the same
//! byte layouts.

use pf::state::{RECORD_LEN, decode_rule, encode_rule};
use pf::{Rule, RuleSet, RuleSetError};

use crate::path::Counters;

/// The process name pf runs under.
pub const SERVICE: &str = "pf";
/// Bytes in a request or a reply (a kernel IPC message).
pub const MSG_LEN: usize = 64;
/// A request or a reply.
pub type Msg = [u8; MSG_LEN];
/// The first four bytes of every request and reply.
pub const MAGIC: [u8; 4] = *b"PFCT";
/// The protocol's version.
pub const VERSION: u8 = 1;

/// Operations (byte 5).
pub mod op {
    /// A page of counters, with the number of rules.
    pub const COUNTERS: u8 = 1;
    /// One rule, with its hit count.
    pub const RULE: u8 = 2;
    /// Add a rule at a position.
    pub const ADD: u8 = 3;
    /// Delete a rule.
    pub const DEL: u8 = 4;
}

/// Reply statuses (byte 6).
pub mod status {
    /// Done.
    pub const OK: u8 = 0;
    /// Not a request of this protocol and version, or an unknown operation or page.
    pub const BAD_REQUEST: u8 = 1;
    /// The rule record of an add is not valid (`pf::state::decode_rule`).
    pub const BAD_RULE: u8 = 2;
    /// No rule has that number (for add: the position is not `1..=rules + 1`).
    pub const NO_SUCH_RULE: u8 = 3;
    /// The rule set is full (`pf::MAX_RULES`).
    pub const FULL: u8 = 4;
}

/// Counter pages (the argument of [`op::COUNTERS`]).
pub mod page {
    /// allowed, denied, unmatched, malformed, not_ipv4, refused.
    pub const FILTER: u32 = 0;
    /// rx_in, rx_out, tx_in, tx_out, rx_returned, tx_done.
    pub const FRAMES: u32 = 1;
    /// held_high_e1000, held_high_ip, stalls, epoch_changes, epoch_in_flight, channel_errors.
    pub const HEALTH: u32 = 2;
    /// The keys of each page's counters, as `pf list` prints them.
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

/// Reply flag (byte 7): the change is live, but the state region could not be written, so it
/// will not survive a restart of pf.
pub const FLAG_NOT_SAVED: u8 = 1;

/// A request, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A page of counters ([`page`]).
    Counters {
        /// Which page.
        page: u32,
    },
    /// Rule number `number` (from 1).
    Rule {
        /// The rule number.
        number: u32,
    },
    /// Add `rule` as number `at` (0: after the last).
    Add {
        /// The position, `1..=rules + 1`, or 0.
        at: u32,
        /// The rule.
        rule: Rule,
    },
    /// Delete rule number `number`.
    Del {
        /// The rule number.
        number: u32,
    },
}

fn u32_at(m: &Msg, at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&m[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(m: &Msg, at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[at..at + 8]);
    u64::from_le_bytes(b)
}

fn record_at(m: &Msg) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r.copy_from_slice(&m[16..16 + RECORD_LEN]);
    r
}

fn header(op: u8) -> Msg {
    let mut m = [0u8; MSG_LEN];
    m[0..4].copy_from_slice(&MAGIC);
    m[4] = VERSION;
    m[5] = op;
    m
}

impl Request {
    /// The request message.
    pub fn encode(&self) -> Msg {
        let (op, arg, record) = match *self {
            Request::Counters { page } => (op::COUNTERS, page, None),
            Request::Rule { number } => (op::RULE, number, None),
            Request::Add { at, rule } => (op::ADD, at, Some(encode_rule(&rule))),
            Request::Del { number } => (op::DEL, number, None),
        };
        let mut m = header(op);
        m[8..12].copy_from_slice(&arg.to_le_bytes());
        if let Some(r) = record {
            m[16..16 + RECORD_LEN].copy_from_slice(&r);
        }
        m
    }

    /// Reads and checks a request; `Err` is the status to answer with.
    pub fn decode(m: &Msg) -> Result<Request, u8> {
        let zero = |range: core::ops::Range<usize>| m[range].iter().all(|&b| b == 0);
        if m[0..4] != MAGIC || m[4] != VERSION || !zero(6..8) || !zero(12..16) || !zero(40..64) {
            return Err(status::BAD_REQUEST);
        }
        let arg = u32_at(m, 8);
        let op = m[5];
        if op != op::ADD && !zero(16..40) {
            return Err(status::BAD_REQUEST);
        }
        match op {
            op::COUNTERS if arg <= page::HEALTH => Ok(Request::Counters { page: arg }),
            op::RULE => Ok(Request::Rule { number: arg }),
            op::ADD => decode_rule(&record_at(m))
                .map(|rule| Request::Add { at: arg, rule })
                .map_err(|_| status::BAD_RULE),
            op::DEL => Ok(Request::Del { number: arg }),
            _ => Err(status::BAD_REQUEST),
        }
    }
}

/// The fixed part of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// The request's operation.
    pub op: u8,
    /// [`status`].
    pub status: u8,
    /// [`FLAG_NOT_SAVED`] or 0.
    pub flags: u8,
    /// Rules in the set now.
    pub rules: u32,
    /// Rule changes since pf started.
    pub generation: u32,
}

impl ReplyHeader {
    /// The header of reply `m`, or `None` if `m` is not a reply of this protocol and version.
    pub fn decode(m: &Msg) -> Option<ReplyHeader> {
        (m[0..4] == MAGIC && m[4] == VERSION).then(|| ReplyHeader {
            op: m[5],
            status: m[6],
            flags: m[7],
            rules: u32_at(m, 8),
            generation: u32_at(m, 12),
        })
    }
}

/// The six counters of a reply to [`op::COUNTERS`].
pub fn counters_of(m: &Msg) -> [u64; 6] {
    core::array::from_fn(|i| u64_at(m, 16 + 8 * i))
}

/// The rule part of a reply to [`op::RULE`], [`op::ADD`] or [`op::DEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleReply {
    /// The rule's record (all zero in an error reply).
    pub record: [u8; RECORD_LEN],
    /// Its hit count.
    pub hits: u64,
    /// Its number (for [`status::NO_SUCH_RULE`]: the number asked).
    pub number: u32,
}

impl RuleReply {
    /// The rule part of reply `m`.
    pub fn decode(m: &Msg) -> RuleReply {
        RuleReply {
            record: record_at(m),
            hits: u64_at(m, 40),
            number: u32_at(m, 48),
        }
    }

    fn write(&self, m: &mut Msg) {
        m[16..16 + RECORD_LEN].copy_from_slice(&self.record);
        m[40..48].copy_from_slice(&self.hits.to_le_bytes());
        m[48..52].copy_from_slice(&self.number.to_le_bytes());
    }
}

/// The counters of page `p`, in the order of [`page::KEYS`].
pub fn page_values(p: u32, rules: &RuleSet, path: &Counters) -> [u64; 6] {
    let f = rules.counters();
    match p {
        page::FILTER => [
            f.allowed,
            f.denied,
            f.unmatched,
            f.malformed,
            path.not_ipv4,
            path.refused_total(),
        ],
        page::FRAMES => [
            path.rx_in,
            path.rx_out,
            path.tx_in,
            path.tx_out,
            path.rx_returned,
            path.tx_done,
        ],
        _ => [
            path.held_high_driver,
            path.held_high_ip,
            path.stalls,
            path.epoch_changes,
            path.epoch_in_flight,
            path.channel_errors,
        ],
    }
}

/// Carries out `request` on `rules` and returns the reply. A change (add, del) bumps
/// `generation` and calls `save` with the new rule set; if that returns false the reply says so
/// ([`FLAG_NOT_SAVED`]). `path` gives the data path's counters.
pub fn serve(
    request: &Msg,
    rules: &mut RuleSet,
    generation: &mut u32,
    path: &Counters,
    save: impl FnOnce(&RuleSet) -> bool,
) -> Msg {
    let mut reply = header(request[5]);
    let (status, body) = match Request::decode(request) {
        Err(status) => (status, None),
        Ok(Request::Counters { page }) => {
            for (i, v) in page_values(page, rules, path).iter().enumerate() {
                reply[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
            }
            (status::OK, None)
        }
        Ok(Request::Rule { number }) => match rules.get(number as usize) {
            Some((rule, hits)) => (
                status::OK,
                Some(RuleReply {
                    record: encode_rule(rule),
                    hits,
                    number,
                }),
            ),
            None => (status::NO_SUCH_RULE, Some(missing(number))),
        },
        Ok(Request::Add { at, rule }) => {
            let result = match at {
                0 => rules.push(rule),
                n => rules.insert(n as usize, rule).map(|()| n as usize),
            };
            match result {
                Ok(number) => (
                    status::OK,
                    Some(RuleReply {
                        record: encode_rule(&rule),
                        hits: 0,
                        number: number as u32,
                    }),
                ),
                Err(e) => (error_status(e), Some(missing(at))),
            }
        }
        Ok(Request::Del { number }) => {
            let hits = rules.get(number as usize).map_or(0, |(_, h)| h);
            match rules.remove(number as usize) {
                Ok(rule) => (
                    status::OK,
                    Some(RuleReply {
                        record: encode_rule(&rule),
                        hits,
                        number,
                    }),
                ),
                Err(e) => (error_status(e), Some(missing(number))),
            }
        }
    };
    let changed = status == status::OK && matches!(request[5], op::ADD | op::DEL);
    if changed {
        *generation = generation.wrapping_add(1);
        if !save(rules) {
            reply[7] |= FLAG_NOT_SAVED;
        }
    }
    if let Some(body) = body {
        body.write(&mut reply);
    }
    reply[6] = status;
    // At most MAX_RULES (64): fits.
    reply[8..12].copy_from_slice(&(rules.len() as u32).to_le_bytes());
    reply[12..16].copy_from_slice(&generation.to_le_bytes());
    reply
}

fn missing(number: u32) -> RuleReply {
    RuleReply {
        record: [0; RECORD_LEN],
        hits: 0,
        number,
    }
}

fn error_status(e: RuleSetError) -> u8 {
    match e {
        RuleSetError::Full => status::FULL,
        RuleSetError::NoSuchRule(_) => status::NO_SUCH_RULE,
        RuleSetError::Invalid(_) => status::BAD_RULE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf::{MAX_RULES, parse_rule};

    fn rule(text: &str) -> Rule {
        parse_rule(text).unwrap()
    }

    /// Serves `request`, with a save that succeeds (`saved` counts the calls).
    fn ask(set: &mut RuleSet, generation: &mut u32, saved: &mut u32, request: &Request) -> Msg {
        serve(
            &request.encode(),
            set,
            generation,
            &Counters::default(),
            |_| {
                *saved += 1;
                true
            },
        )
    }

    /// The byte layouts of the module documentation, written out; the shell's tests check the
    /// same bytes (userland/shell/src/pfctl.rs).
    #[test]
    fn wire_layout() {
        let add = Request::Add {
            at: 2,
            rule: rule("deny in icmp from 10.0.2.2 to any"),
        }
        .encode();
        let mut expect = [0u8; 64];
        expect[..12].copy_from_slice(b"PFCT\x01\x03\x00\x00\x02\x00\x00\x00");
        // deny, in, icmp, no ports; 10.0.2.2/32 to 0.0.0.0/0.
        expect[16..40].copy_from_slice(&[
            1, 1, 1, 0, 10, 0, 2, 2, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(add, expect);
        let list = Request::Counters { page: 1 }.encode();
        assert_eq!(&list[..12], b"PFCT\x01\x01\x00\x00\x01\x00\x00\x00");
        assert!(list[12..].iter().all(|&b| b == 0));
        assert_eq!(&Request::Rule { number: 7 }.encode()[5..9], &[2, 0, 0, 7]);
        assert_eq!(
            &Request::Del { number: 258 }.encode()[5..12],
            &[4, 0, 0, 2, 1, 0, 0]
        );

        let mut set = RuleSet::new();
        let (mut generation, mut saved) = (0, 0);
        let r = ask(
            &mut set,
            &mut generation,
            &mut saved,
            &Request::Add {
                at: 0,
                rule: rule("deny in icmp from 10.0.2.2 to any"),
            },
        );
        let mut expect = [0u8; 64];
        // ok, no flags, 1 rule, generation 1; the record; 0 hits; number 1.
        expect[..16].copy_from_slice(b"PFCT\x01\x03\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00");
        expect[16..40].copy_from_slice(&add[16..40]);
        expect[48] = 1;
        assert_eq!(r, expect);
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Counters { page: 0 },
            Request::Counters { page: 2 },
            Request::Rule { number: 1 },
            Request::Rule { number: u32::MAX },
            Request::Add {
                at: 0,
                rule: rule("allow out udp from 10.0.2.0/24 port 1000-2000 to any"),
            },
            Request::Del { number: 3 },
        ] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        let good = Request::Counters { page: 0 }.encode();
        let mut cases = Vec::new();
        for (at, value) in [
            (0, b'X'),
            (4, 2),
            (5, 0),
            (5, 9),
            (6, 1),
            (13, 1),
            (20, 1),
            (63, 1),
        ] {
            let mut m = good;
            m[at] = value;
            cases.push(m);
        }
        let mut page = good;
        page[8] = 3;
        cases.push(page);
        for m in cases {
            assert_eq!(Request::decode(&m), Err(status::BAD_REQUEST), "{m:?}");
            let mut set = RuleSet::new();
            let reply = serve(
                &m,
                &mut set,
                &mut 0,
                &Counters::default(),
                |_| unreachable!(),
            );
            let h = ReplyHeader::decode(&reply).unwrap();
            assert_eq!(h.status, status::BAD_REQUEST);
            assert_eq!(h.op, m[5]);
        }
        // A record pf would never write.
        let mut add = Request::Add {
            at: 0,
            rule: rule("deny from any to any"),
        }
        .encode();
        add[16] = 7;
        assert_eq!(Request::decode(&add), Err(status::BAD_RULE));
        let mut set = RuleSet::new();
        let reply = serve(
            &add,
            &mut set,
            &mut 0,
            &Counters::default(),
            |_| unreachable!(),
        );
        assert_eq!(
            ReplyHeader::decode(&reply).unwrap().status,
            status::BAD_RULE
        );
        assert!(set.is_empty());
        assert_eq!(ReplyHeader::decode(&[0; 64]), None);
    }

    #[test]
    fn add_list_del() {
        let mut set = RuleSet::new();
        let (mut generation, mut saved) = (0u32, 0u32);
        let a = rule("deny in icmp from any to any");
        let b = rule("allow in tcp from any to 10.0.2.15 port 22");
        let r = ask(
            &mut set,
            &mut generation,
            &mut saved,
            &Request::Add { at: 0, rule: a },
        );
        assert_eq!(RuleReply::decode(&r).number, 1);
        // At position 1: `a` moves down.
        let r = ask(
            &mut set,
            &mut generation,
            &mut saved,
            &Request::Add { at: 1, rule: b },
        );
        let h = ReplyHeader::decode(&r).unwrap();
        assert_eq!(
            (h.status, h.rules, h.generation, h.flags),
            (status::OK, 2, 2, 0)
        );
        assert_eq!(saved, 2);
        assert_eq!(set.rules(), [b, a]);
        let r = ask(
            &mut set,
            &mut generation,
            &mut saved,
            &Request::Rule { number: 2 },
        );
        let rr = RuleReply::decode(&r);
        assert_eq!((decode_rule(&rr.record), rr.hits, rr.number), (Ok(a), 0, 2));
        // Past the end.
        for req in [
            Request::Rule { number: 3 },
            Request::Rule { number: 0 },
            Request::Del { number: 3 },
            Request::Add { at: 4, rule: a },
        ] {
            let r = ask(&mut set, &mut generation, &mut saved, &req);
            let h = ReplyHeader::decode(&r).unwrap();
            assert_eq!(
                (h.status, h.rules, h.generation),
                (status::NO_SUCH_RULE, 2, 2),
                "{req:?}"
            );
            assert_eq!(RuleReply::decode(&r).record, [0; 24]);
        }
        assert_eq!(saved, 2, "a refused change saves nothing");
        // Delete with its hits.
        let r = ask(
            &mut set,
            &mut generation,
            &mut saved,
            &Request::Del { number: 1 },
        );
        let (h, rr) = (ReplyHeader::decode(&r).unwrap(), RuleReply::decode(&r));
        assert_eq!((h.status, h.rules, h.generation), (status::OK, 1, 3));
        assert_eq!((decode_rule(&rr.record), rr.number), (Ok(b), 1));
        assert_eq!(set.rules(), [a]);
    }

    #[test]
    fn full_and_unsaved() {
        let mut set = RuleSet::new();
        let mut generation = 0;
        let r = rule("deny from any to any");
        for _ in 0..MAX_RULES {
            set.push(r).unwrap();
        }
        let reply = serve(
            &Request::Add { at: 0, rule: r }.encode(),
            &mut set,
            &mut generation,
            &Counters::default(),
            |_| unreachable!(),
        );
        assert_eq!(ReplyHeader::decode(&reply).unwrap().status, status::FULL);
        let reply = serve(
            &Request::Del { number: 64 }.encode(),
            &mut set,
            &mut generation,
            &Counters::default(),
            |s| {
                assert_eq!(s.len(), 63, "saves the new set");
                false
            },
        );
        let h = ReplyHeader::decode(&reply).unwrap();
        assert_eq!(
            (h.status, h.flags, h.generation),
            (status::OK, FLAG_NOT_SAVED, 1)
        );
    }

    #[test]
    fn counter_pages() {
        let mut set = RuleSet::new();
        set.push(rule("deny in udp from any to any")).unwrap();
        let udp = [
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 2, 2, 10, 0, 2, 15, 0, 1, 0, 2, 0, 8,
            0, 0,
        ];
        set.filter_ipv4(pf::Direction::In, &udp);
        set.filter_ipv4(pf::Direction::Out, &udp);
        set.filter_ipv4(pf::Direction::In, &udp[..10]);
        let path = Counters {
            rx_in: 1,
            rx_out: 2,
            tx_in: 3,
            tx_out: 4,
            rx_returned: 5,
            tx_done: 6,
            not_ipv4: 7,
            misdirected: 8,
            held_high_driver: 9,
            held_high_ip: 10,
            stalls: 11,
            epoch_changes: 12,
            epoch_in_flight: 13,
            channel_errors: 14,
            ..Counters::default()
        };
        let ask = |page| {
            let reply = serve(
                &Request::Counters { page }.encode(),
                &mut set.clone(),
                &mut 5,
                &path,
                |_| unreachable!(),
            );
            let h = ReplyHeader::decode(&reply).unwrap();
            assert_eq!(
                (h.op, h.status, h.rules, h.generation),
                (op::COUNTERS, 0, 1, 5)
            );
            counters_of(&reply)
        };
        assert_eq!(ask(page::FILTER), [1, 2, 1, 1, 7, 8]);
        assert_eq!(ask(page::FRAMES), [1, 2, 3, 4, 5, 6]);
        assert_eq!(ask(page::HEALTH), [9, 10, 11, 12, 13, 14]);
    }
}
