//! The vocabulary of the network data path (docs/netpath.md): the names of the shared regions
//! and channels the manifest declares, the message tags that travel on them, and the checks every
//! hop applies to a descriptor before touching a buffer. `no_std`, host-tested.
//!
//! ```text
//!  NIC ─DMA─> rx-pool buffer ──RX_FRAME──> pf ──RX_FRAME──> ip      (descriptor only, no copy)
//!             rx-pool buffer <─RX_RETURN── pf <─RX_RETURN── ip      (back to its owner, e1000)
//!  NIC <─DMA─ tx-pool buffer <─TX_FRAME─── pf <─TX_FRAME─── ip      (built by ip)
//!             tx-pool buffer ──TX_DONE───> pf ──TX_DONE───> ip      (back to its owner, ip)
//! ```
#![cfg_attr(not(test), no_std)]

use libchan::{Message, PoolDescriptor};

pub mod netstat;

/// Buffers the NIC receives into; owned (allocated and freed) by the driver.
pub const RX_POOL: &str = "rx-pool";
/// Buffers ip builds outgoing frames in; owned by ip.
pub const TX_POOL: &str = "tx-pool";
/// Pool id of [`RX_POOL`] (in every descriptor).
pub const RX_POOL_ID: u16 = 1;
/// Pool id of [`TX_POOL`].
pub const TX_POOL_ID: u16 = 2;
/// Size of every packet buffer: one Ethernet frame without jumbo support.
pub const BUFFER_SIZE: u32 = 2048;

/// Channel names: `A-B` is the channel A produces into and B consumes from.
pub mod chan {
    /// e1000 → pf: received frames, finished transmit buffers.
    pub const DRIVER_TO_PF: &str = "e1000-pf";
    /// pf → e1000: frames to transmit, receive buffers coming home.
    pub const PF_TO_DRIVER: &str = "pf-e1000";
    /// pf → ip: received frames that passed the filter, finished transmit buffers.
    pub const PF_TO_IP: &str = "pf-ip";
    /// ip → pf: frames to transmit, receive buffers coming home.
    pub const IP_TO_PF: &str = "ip-pf";
}

/// Message tags.
pub mod tag {
    /// A received frame in an rx-pool buffer (descriptor in the payload).
    pub const RX_FRAME: u32 = 0x5258_0001;
    /// An rx-pool buffer going back to the driver.
    pub const RX_RETURN: u32 = 0x5258_0002;
    /// A frame to transmit, in a tx-pool buffer.
    pub const TX_FRAME: u32 = 0x5458_0001;
    /// A transmitted (or dropped) tx-pool buffer going back to ip.
    pub const TX_DONE: u32 = 0x5458_0002;
}

/// Word 2 of a TX_DONE whose frame was never sent: its driver restarted before it went out
/// ([`not_sent`]). 0 otherwise.
pub const NOT_SENT: u64 = 1;

/// The TX_DONE that gives ip back a frame's buffer `d` the driver never sent (it restarted).
pub fn not_sent(d: PoolDescriptor) -> Message {
    let mut m = Kind::TxDone(d).message();
    m.payload[2] = NOT_SENT;
    m
}

/// True for a TX_DONE made by [`not_sent`].
pub fn is_not_sent(m: &Message) -> bool {
    m.tag == tag::TX_DONE && m.payload[2] == NOT_SENT
}

/// What a message asks of the hop that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A received frame.
    RxFrame(PoolDescriptor),
    /// A receive buffer on its way home.
    RxReturn(PoolDescriptor),
    /// A frame to send.
    TxFrame(PoolDescriptor),
    /// A transmit buffer on its way home.
    TxDone(PoolDescriptor),
}

/// Why a message was refused (counted by the hop, never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The tag is none of [`tag`]'s.
    UnknownTag(u32),
    /// The descriptor names the wrong pool for its tag.
    WrongPool { tag: u32, pool: u16 },
    /// The buffer index is past the pool.
    BadIndex(u32),
    /// `offset + len` is past the buffer, or the length is zero for a frame.
    BadRange { offset: u32, len: u32 },
}

impl Kind {
    /// The message for this kind.
    pub fn message(self) -> Message {
        match self {
            Kind::RxFrame(d) => Message::with_descriptor(tag::RX_FRAME, d),
            Kind::RxReturn(d) => Message::with_descriptor(tag::RX_RETURN, d),
            Kind::TxFrame(d) => Message::with_descriptor(tag::TX_FRAME, d),
            Kind::TxDone(d) => Message::with_descriptor(tag::TX_DONE, d),
        }
    }

    /// The descriptor it carries.
    pub fn descriptor(self) -> PoolDescriptor {
        match self {
            Kind::RxFrame(d) | Kind::RxReturn(d) | Kind::TxFrame(d) | Kind::TxDone(d) => d,
        }
    }

    /// Reads and checks a message from a peer: its tag, and its descriptor against the pool the
    /// tag implies (`buffers` = buffers in that pool). A frame must have a length; a returned
    /// buffer may not.
    pub fn decode(m: &Message, rx_buffers: u32, tx_buffers: u32) -> Result<Kind, Refused> {
        let d = m.descriptor();
        let (kind, pool, buffers, frame) = match m.tag {
            tag::RX_FRAME => (Kind::RxFrame(d), RX_POOL_ID, rx_buffers, true),
            tag::RX_RETURN => (Kind::RxReturn(d), RX_POOL_ID, rx_buffers, false),
            tag::TX_FRAME => (Kind::TxFrame(d), TX_POOL_ID, tx_buffers, true),
            tag::TX_DONE => (Kind::TxDone(d), TX_POOL_ID, tx_buffers, false),
            other => return Err(Refused::UnknownTag(other)),
        };
        if d.pool != pool {
            return Err(Refused::WrongPool {
                tag: m.tag,
                pool: d.pool,
            });
        }
        if d.index >= buffers {
            return Err(Refused::BadIndex(d.index));
        }
        let end = d.offset as u64 + d.len as u64;
        if end > BUFFER_SIZE as u64 || (frame && d.len == 0) {
            return Err(Refused::BadRange {
                offset: d.offset,
                len: d.len,
            });
        }
        Ok(kind)
    }
}

/// Per-hop counters of refused messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedCounters {
    pub unknown_tag: u64,
    pub wrong_pool: u64,
    pub bad_index: u64,
    pub bad_range: u64,
}

impl RefusedCounters {
    /// Counts `r`.
    pub fn count(&mut self, r: Refused) {
        match r {
            Refused::UnknownTag(_) => self.unknown_tag += 1,
            Refused::WrongPool { .. } => self.wrong_pool += 1,
            Refused::BadIndex(_) => self.bad_index += 1,
            Refused::BadRange { .. } => self.bad_range += 1,
        }
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.unknown_tag + self.wrong_pool + self.bad_index + self.bad_range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pool: u16, index: u32, offset: u32, len: u32) -> PoolDescriptor {
        PoolDescriptor {
            pool,
            index,
            offset,
            len,
        }
    }

    #[test]
    fn good_messages_round_trip() {
        for k in [
            Kind::RxFrame(d(RX_POOL_ID, 3, 0, 60)),
            Kind::RxReturn(d(RX_POOL_ID, 255, 0, 0)),
            Kind::TxFrame(d(TX_POOL_ID, 0, 2, 1514)),
            Kind::TxDone(d(TX_POOL_ID, 7, 0, 0)),
        ] {
            assert_eq!(Kind::decode(&k.message(), 256, 256), Ok(k));
            assert_eq!(k.descriptor(), k.message().descriptor());
        }
    }

    #[test]
    fn a_tx_done_may_say_its_frame_was_never_sent() {
        let t = d(TX_POOL_ID, 7, 0, 0);
        let m = not_sent(t);
        assert_eq!(Kind::decode(&m, 256, 256), Ok(Kind::TxDone(t)));
        assert!(is_not_sent(&m));
        assert!(!is_not_sent(&Kind::TxDone(t).message()));
        // Only a TX_DONE carries the mark.
        let mut frame = Kind::TxFrame(d(TX_POOL_ID, 7, 0, 60)).message();
        frame.payload[2] = NOT_SENT;
        assert!(!is_not_sent(&frame));
    }

    #[test]
    fn bad_messages_are_refused() {
        let m = |t, desc| Message::with_descriptor(t, desc);
        assert_eq!(
            Kind::decode(&Message::new(9), 8, 8),
            Err(Refused::UnknownTag(9))
        );
        assert!(matches!(
            Kind::decode(&m(tag::RX_FRAME, d(TX_POOL_ID, 0, 0, 60)), 8, 8),
            Err(Refused::WrongPool { .. })
        ));
        assert_eq!(
            Kind::decode(&m(tag::TX_FRAME, d(TX_POOL_ID, 8, 0, 60)), 8, 8),
            Err(Refused::BadIndex(8))
        );
        assert!(matches!(
            Kind::decode(&m(tag::RX_FRAME, d(RX_POOL_ID, 0, 2000, 100)), 8, 8),
            Err(Refused::BadRange { .. })
        ));
        assert!(matches!(
            Kind::decode(&m(tag::RX_FRAME, d(RX_POOL_ID, 0, 0, 0)), 8, 8),
            Err(Refused::BadRange { .. })
        ));
        assert!(matches!(
            Kind::decode(
                &m(tag::RX_FRAME, d(RX_POOL_ID, 0, u32::MAX, u32::MAX)),
                8,
                8
            ),
            Err(Refused::BadRange { .. })
        ));
        let mut c = RefusedCounters::default();
        c.count(Refused::BadIndex(1));
        c.count(Refused::UnknownTag(1));
        assert_eq!(c.total(), 2);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..50_000 {
            let mut words = [0u64; 8];
            for w in &mut words {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *w = x;
            }
            // Half the time, a real tag with a random descriptor.
            if x & 1 == 0 {
                words[0] = (words[0] & !0xFFFF_FFFF) | tag::RX_FRAME as u64;
            }
            let _ = Kind::decode(&Message::from_words(words), 256, 128);
        }
    }
}
