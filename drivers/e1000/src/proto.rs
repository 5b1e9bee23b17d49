//! The driver's statistics protocol over kernel IPC, shared by the driver and the shell's
//! `ifconfig`.
//!
//! A request is a 64-byte message whose first byte selects what is asked and whose second byte
//! is [`REPLY_BY_SEND`]: the requester sends it with `ipc_send` and then waits for the answer in
//! `ipc_recv` (filtering on the driver's pid), and the driver answers with `ipc_send`. (The
//! kernel has no non-blocking reply yet — `ipc_reply_recv` would block the driver in a receive —
//! so `ipc_call` cannot be used; a request without the flag is not answered.)
//!
//! What is asked:
//! - [`REQUEST_COUNTERS`] (1): the reply is [`Counters`], eight `u64` little-endian words:
//!   rx_frames, rx_bytes, tx_frames, tx_bytes, rx_drops, rx_too_long, interrupts, polls.
//! - [`REQUEST_STATUS`] (2): the reply is [`Status`]: link_up (0/1), MAC (low 48 bits, first
//!   byte lowest), PCI ids (vendor << 16 | device), link_changes, rx_errors, tx_drops.
//! - [`REQUEST_PATH`] (3): the reply is [`PathCounters`], eight `u64` words: mode (0 =
//!   self-contained, 1 = data path), rx_to_pf, rx_returned, tx_from_pf, tx_done, refused,
//!   rx_starved, epoch_changes (all 0 in self-contained mode). A driver from before this
//!   request answers it with [`UNKNOWN_REQUEST`], like any request it does not know.
//!
//! Anything else is answered with word 0 = [`UNKNOWN_REQUEST`]. (All the counters do not fit
//! in one 64-byte message, hence several requests.)

use axolotl_abi::IPC_MSG_LEN;

use crate::arp::Mac;

/// The process name the driver runs under in the manifests.
pub const SERVICE: &str = "e1000";
/// Request: the traffic counters.
pub const REQUEST_COUNTERS: u8 = 1;
/// Request: link, address and error counters.
pub const REQUEST_STATUS: u8 = 2;
/// Request: the data path's counters.
pub const REQUEST_PATH: u8 = 3;
/// Byte 1 of every request: "I wait for the answer in `ipc_recv`; answer with `ipc_send`".
pub const REPLY_BY_SEND: u8 = 1;
/// Word 0 of the reply to a request the driver does not know.
pub const UNKNOWN_REQUEST: u64 = u64::MAX;

/// A kernel IPC message.
pub type Message = [u8; IPC_MSG_LEN];

fn word(m: &Message, i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&m[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

fn from_words(words: &[u64]) -> Message {
    let mut m = [0u8; IPC_MSG_LEN];
    for (i, w) in words.iter().enumerate().take(IPC_MSG_LEN / 8) {
        m[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    m
}

/// The request message for `kind` ([`REQUEST_COUNTERS`] or [`REQUEST_STATUS`]).
pub fn request(kind: u8) -> Message {
    let mut m = [0u8; IPC_MSG_LEN];
    m[0] = kind;
    m[1] = REPLY_BY_SEND;
    m
}

/// True when `request` asks to be answered with `ipc_send` ([`REPLY_BY_SEND`]).
pub fn replies_by_send(request: &Message) -> bool {
    request[1] == REPLY_BY_SEND
}

/// Traffic counters since the driver started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Good frames received.
    pub rx_frames: u64,
    /// Bytes of good frames received (without CRC).
    pub rx_bytes: u64,
    /// Frames the device finished sending.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames the device dropped for want of receive descriptors (missed packets, overruns).
    pub rx_drops: u64,
    /// Frames dropped for being longer than a buffer or than the device accepts.
    pub rx_too_long: u64,
    /// Interrupts taken.
    pub interrupts: u64,
    /// Polls of the rings made with interrupts masked.
    pub polls: u64,
}

impl Counters {
    /// The reply message.
    pub fn encode(&self) -> Message {
        from_words(&[
            self.rx_frames,
            self.rx_bytes,
            self.tx_frames,
            self.tx_bytes,
            self.rx_drops,
            self.rx_too_long,
            self.interrupts,
            self.polls,
        ])
    }

    /// The counters in a reply message.
    pub fn decode(m: &Message) -> Self {
        Self {
            rx_frames: word(m, 0),
            rx_bytes: word(m, 1),
            tx_frames: word(m, 2),
            tx_bytes: word(m, 3),
            rx_drops: word(m, 4),
            rx_too_long: word(m, 5),
            interrupts: word(m, 6),
            polls: word(m, 7),
        }
    }
}

/// Link, identity and error counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// The device reports link up.
    pub link_up: bool,
    /// The station address.
    pub mac: Mac,
    /// PCI vendor id.
    pub vendor: u16,
    /// PCI device id.
    pub device: u16,
    /// Link state changes seen.
    pub link_changes: u64,
    /// Frames the device flagged as damaged.
    pub rx_errors: u64,
    /// Frames not sent because the transmit ring was full.
    pub tx_drops: u64,
}

impl Status {
    /// The reply message.
    pub fn encode(&self) -> Message {
        from_words(&[
            u64::from(self.link_up),
            self.mac.to_u64(),
            u64::from(self.vendor) << 16 | u64::from(self.device),
            self.link_changes,
            self.rx_errors,
            self.tx_drops,
        ])
    }

    /// The status in a reply message.
    pub fn decode(m: &Message) -> Self {
        let ids = word(m, 2);
        Self {
            link_up: word(m, 0) != 0,
            mac: Mac::from_u64(word(m, 1)),
            vendor: (ids >> 16) as u16,
            device: ids as u16,
            link_changes: word(m, 3),
            rx_errors: word(m, 4),
            tx_drops: word(m, 5),
        }
    }
}

/// How the driver runs, and the counters of its end of the data path (docs/netpath.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// The driver runs on the data path (false: self-contained, every counter 0).
    pub data_path: bool,
    /// Received frames passed to pf (RX_FRAME sent).
    pub rx_to_pf: u64,
    /// Receive buffers pf gave back (RX_RETURN accepted).
    pub rx_returned: u64,
    /// Frames pf asked to send (TX_FRAME accepted).
    pub tx_from_pf: u64,
    /// Transmit buffers sent home (TX_DONE sent), sent or dropped.
    pub tx_done: u64,
    /// Messages from pf refused: malformed, not for the driver, or returning a buffer pf does
    /// not hold.
    pub refused: u64,
    /// Receive descriptors left without a buffer because the whole rx-pool was lent out.
    pub rx_starved: u64,
    /// Epoch changes seen on the two channels (pf restarted).
    pub epoch_changes: u64,
}

impl PathCounters {
    /// The reply message.
    pub fn encode(&self) -> Message {
        from_words(&[
            u64::from(self.data_path),
            self.rx_to_pf,
            self.rx_returned,
            self.tx_from_pf,
            self.tx_done,
            self.refused,
            self.rx_starved,
            self.epoch_changes,
        ])
    }

    /// The counters in a reply message.
    pub fn decode(m: &Message) -> Self {
        Self {
            data_path: word(m, 0) == 1,
            rx_to_pf: word(m, 1),
            rx_returned: word(m, 2),
            tx_from_pf: word(m, 3),
            tx_done: word(m, 4),
            refused: word(m, 5),
            rx_starved: word(m, 6),
            epoch_changes: word(m, 7),
        }
    }
}

/// True when a reply says the request was not understood.
pub fn is_unknown(reply: &Message) -> bool {
    word(reply, 0) == UNKNOWN_REQUEST
}

/// The answer to `request` of a driver that knows only [`REQUEST_COUNTERS`] and
/// [`REQUEST_STATUS`] (as the shell's tests model it).
pub fn answer(request: &Message, counters: &Counters, status: &Status) -> Message {
    match request[0] {
        REQUEST_COUNTERS => counters.encode(),
        REQUEST_STATUS => status.encode(),
        _ => from_words(&[UNKNOWN_REQUEST]),
    }
}

/// The driver's answer to `request`, [`REQUEST_PATH`] included.
pub fn answer_all(
    request: &Message,
    counters: &Counters,
    status: &Status,
    path: &PathCounters,
) -> Message {
    match request[0] {
        REQUEST_PATH => path.encode(),
        _ => answer(request, counters, status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_eight_le_words() {
        let c = Counters {
            rx_frames: 1,
            rx_bytes: 2,
            tx_frames: 3,
            tx_bytes: 4,
            rx_drops: 5,
            rx_too_long: 6,
            interrupts: 7,
            polls: u64::MAX,
        };
        let m = c.encode();
        assert_eq!(m[0..8], [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(m[40..48], [6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(m[56..64], [0xFF; 8]);
        assert_eq!(Counters::decode(&m), c);
    }

    #[test]
    fn status_round_trips() {
        let s = Status {
            link_up: true,
            mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            vendor: 0x8086,
            device: 0x100E,
            link_changes: 2,
            rx_errors: 3,
            tx_drops: 4,
        };
        let m = s.encode();
        assert_eq!(m[8..16], [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0]);
        assert_eq!(Status::decode(&m), s);
        assert!(!Status::decode(&Status::default().encode()).link_up);
    }

    #[test]
    fn requests_are_answered_by_their_first_byte() {
        let c = Counters {
            rx_frames: 9,
            ..Counters::default()
        };
        let s = Status {
            link_up: true,
            ..Status::default()
        };
        assert_eq!(answer(&request(REQUEST_COUNTERS), &c, &s), c.encode());
        assert_eq!(answer(&request(REQUEST_STATUS), &c, &s), s.encode());
        let unknown = answer(&request(77), &c, &s);
        assert!(is_unknown(&unknown));
        assert!(!is_unknown(&c.encode()));
        assert_eq!(request(1)[..2], [1, REPLY_BY_SEND]);
        assert!(request(1)[2..].iter().all(|&b| b == 0));
        assert!(replies_by_send(&request(2)));
        assert!(!replies_by_send(&[0; 64]));
    }

    #[test]
    fn path_counters_are_a_third_request() {
        let p = PathCounters {
            data_path: true,
            rx_to_pf: 1,
            rx_returned: 2,
            tx_from_pf: 3,
            tx_done: 4,
            refused: 5,
            rx_starved: 6,
            epoch_changes: 7,
        };
        let (c, s) = (Counters::default(), Status::default());
        let m = answer_all(&request(REQUEST_PATH), &c, &s, &p);
        assert_eq!(m[0..8], [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(m[56..64], [7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(PathCounters::decode(&m), p);
        assert!(!is_unknown(&m));
        let alone = answer_all(&request(REQUEST_PATH), &c, &s, &PathCounters::default());
        assert_eq!(PathCounters::decode(&alone), PathCounters::default());
        // The older requests are answered as before; the shell's model of a driver from before
        // the path does not know the third.
        assert_eq!(answer_all(&request(REQUEST_STATUS), &c, &s, &p), s.encode());
        assert!(is_unknown(&answer_all(&request(9), &c, &s, &p)));
        assert!(is_unknown(&answer(&request(REQUEST_PATH), &c, &s)));
    }
}
