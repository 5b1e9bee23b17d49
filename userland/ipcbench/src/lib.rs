//! The protocol of the shell's `ipcbench` command: it asks `bench-a` (the `chanbench` program,
//! which also serves `chanbench`) to time N kernel-IPC round trips with `bench-b`. Host-tested.
//!
//! Shell → ipc-ping ([`Request`]): word 0 = round trips to run.
//! ipc-ping → shell ([`Report`]): word 0 = round trips done, word 1 = their total nanoseconds,
//! word 2 = errors. ipc-ping → ipc-pong ([`probe`]): word 0 = a counter, bytes 8..64 = a pattern
//! derived from it; the reply must carry counter + 1 and the pattern unchanged ([`reply_ok`]).
#![cfg_attr(not(test), no_std)]

use core::fmt;

use libsys::Message;
use libsys::msg::{from_words, set_word, word};

/// Process name of the timing side.
pub const PING: &str = "bench-a";
/// Process name of the echoing side.
pub const PONG: &str = "bench-b";
/// Round trips the shell asks for by default.
pub const DEFAULT_ROUND_TRIPS: u64 = 100_000;

/// What the shell asks ipc-ping to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Round trips to run.
    pub round_trips: u64,
}

impl Request {
    /// The request as a message.
    pub fn encode(&self) -> Message {
        from_words(&[self.round_trips])
    }

    /// The request in a message.
    pub fn decode(msg: &Message) -> Self {
        Self {
            round_trips: word(msg, 0),
        }
    }
}

/// What ipc-ping answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Round trips completed (the call returned a reply).
    pub round_trips: u64,
    /// Nanoseconds the whole run took.
    pub total_ns: u64,
    /// Failed calls plus replies that were not the expected answer.
    pub errors: u64,
}

impl Report {
    /// The report as a message.
    pub fn encode(&self) -> Message {
        from_words(&[self.round_trips, self.total_ns, self.errors])
    }

    /// The report in a message.
    pub fn decode(msg: &Message) -> Self {
        Self {
            round_trips: word(msg, 0),
            total_ns: word(msg, 1),
            errors: word(msg, 2),
        }
    }

    /// Mean nanoseconds per round trip (0 when none was done).
    pub fn rtt_ns(&self) -> u64 {
        self.total_ns.checked_div(self.round_trips).unwrap_or(0)
    }
}

/// The summary line both ipc-ping (in the log) and the shell print.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ipcbench: round_trips={} rtt_ns={} errors={}",
            self.round_trips,
            self.rtt_ns(),
            self.errors
        )
    }
}

/// Byte `i` (8..64) of the pattern that goes with `counter`: changes with the counter, so a stale
/// or misdelivered reply is caught.
fn pattern_byte(counter: u64, i: usize) -> u8 {
    (i as u8).wrapping_mul(37) ^ (counter as u8) ^ 0x5a
}

/// The message ipc-ping sends for round trip `counter`.
pub fn probe(counter: u64) -> Message {
    let mut m = [0u8; libsys::abi::IPC_MSG_LEN];
    set_word(&mut m, 0, counter);
    for (i, b) in m.iter_mut().enumerate().skip(8) {
        *b = pattern_byte(counter, i);
    }
    m
}

/// What ipc-pong answers to `msg`: the same message with word 0 incremented.
pub fn pong_reply(msg: &Message) -> Message {
    let mut r = *msg;
    set_word(&mut r, 0, word(msg, 0).wrapping_add(1));
    r
}

/// True when `reply` is the right answer to [`probe`]`(counter)`.
pub fn reply_ok(counter: u64, reply: &Message) -> bool {
    word(reply, 0) == counter.wrapping_add(1)
        && reply
            .iter()
            .enumerate()
            .skip(8)
            .all(|(i, &b)| b == pattern_byte(counter, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_report_round_trip() {
        let r = Request {
            round_trips: 100_000,
        };
        assert_eq!(Request::decode(&r.encode()), r);
        let rep = Report {
            round_trips: 10,
            total_ns: 12_345,
            errors: 0,
        };
        assert_eq!(Report::decode(&rep.encode()), rep);
        assert_eq!(rep.rtt_ns(), 1234);
        assert_eq!(
            rep.to_string(),
            "ipcbench: round_trips=10 rtt_ns=1234 errors=0"
        );
        assert_eq!(
            Report {
                round_trips: 0,
                total_ns: 5,
                errors: 1
            }
            .rtt_ns(),
            0
        );
    }

    #[test]
    fn pong_reply_passes_the_check_and_others_do_not() {
        for counter in [0, 1, 255, 256, u64::MAX] {
            let p = probe(counter);
            assert!(reply_ok(counter, &pong_reply(&p)));
            assert!(!reply_ok(counter, &p), "an unanswered probe is not a reply");
            let mut bad = pong_reply(&p);
            bad[40] ^= 1;
            assert!(!reply_ok(counter, &bad), "a changed pattern is caught");
        }
        // A stale reply (to the previous probe) is caught by its pattern even when its counter
        // happens to be the expected one.
        let mut stale = pong_reply(&probe(1));
        set_word(&mut stale, 0, 3);
        assert!(!reply_ok(2, &stale));
    }
}
