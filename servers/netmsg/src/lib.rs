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
//!
//! Buffers going home may travel together: `RX_RETURNS` and `TX_DONES` carry up to
//! [`RETURNS_MAX`] buffer indices in one message ([`merge`] builds them, [`Kind::decode_all`]
//! reads them back as one [`Kind`] per buffer), so a hop that sends many buffers home in a round
//! sends a message per 14 buffers, not one per buffer.
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
    /// Several rx-pool buffers going back to the driver (indices only: see [`super::merge`]).
    pub const RX_RETURNS: u32 = 0x5258_0003;
    /// Several transmitted (or dropped) tx-pool buffers going back to ip.
    pub const TX_DONES: u32 = 0x5458_0003;
}

/// Most buffer indices one `RX_RETURNS` or `TX_DONES` carries: 4 bytes each, in the 56-byte
/// payload. The message's `len` is 4 × the count; the bytes past the last index are zero.
pub const RETURNS_MAX: usize = 14;

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
    /// An `RX_RETURNS` or `TX_DONES` whose `len` is not 4 × 1..=[`RETURNS_MAX`], or whose
    /// payload has bytes past its last index.
    BadCount { len: u32 },
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

    /// Reads and checks a message that may carry several buffers: an `RX_RETURNS` or
    /// `TX_DONES` yields one `RxReturn` or `TxDone` per index (each a whole-buffer descriptor
    /// with offset and length 0), any other message what [`Kind::decode`] gives. Every index is
    /// checked before any is yielded: a message with one bad index is refused whole.
    pub fn decode_all(m: &Message, rx_buffers: u32, tx_buffers: u32) -> Result<Kinds, Refused> {
        let (rx, buffers) = match m.tag {
            tag::RX_RETURNS => (true, rx_buffers),
            tag::TX_DONES => (false, tx_buffers),
            _ => return Kind::decode(m, rx_buffers, tx_buffers).map(Kinds::one),
        };
        let count = returns_count(m).ok_or(Refused::BadCount { len: m.len })?;
        let mut index = [0u32; RETURNS_MAX];
        for (i, slot) in index.iter_mut().enumerate().take(count) {
            *slot = index_at(m, i);
            if *slot >= buffers {
                return Err(Refused::BadIndex(*slot));
            }
        }
        Ok(Kinds {
            one: None,
            rx,
            index,
            count: count as u8,
            next: 0,
        })
    }
}

/// The buffers one message carries, as [`Kind`]s ([`Kind::decode_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// A message of one buffer (not yet yielded).
    one: Option<Kind>,
    /// The indices are of the rx-pool (else of the tx-pool).
    rx: bool,
    index: [u32; RETURNS_MAX],
    count: u8,
    next: u8,
}

impl Kinds {
    fn one(k: Kind) -> Kinds {
        Kinds {
            one: Some(k),
            rx: false,
            index: [0; RETURNS_MAX],
            count: 0,
            next: 0,
        }
    }

    /// True for an `RX_RETURNS` or `TX_DONES` (several buffers, indices only).
    pub fn is_several(&self) -> bool {
        self.count > 0
    }

    /// The first buffer's kind, without consuming anything.
    pub fn first(&self) -> Option<Kind> {
        let mut copy = *self;
        copy.next()
    }
}

impl Iterator for Kinds {
    type Item = Kind;

    fn next(&mut self) -> Option<Kind> {
        if let Some(k) = self.one.take() {
            return Some(k);
        }
        if self.next >= self.count {
            return None;
        }
        let index = *self.index.get(usize::from(self.next))?;
        self.next += 1;
        Some(if self.rx {
            Kind::RxReturn(whole(RX_POOL_ID, index))
        } else {
            Kind::TxDone(whole(TX_POOL_ID, index))
        })
    }
}

fn whole(pool: u16, index: u32) -> PoolDescriptor {
    PoolDescriptor {
        pool,
        index,
        offset: 0,
        len: 0,
    }
}

/// The number of indices an `RX_RETURNS` / `TX_DONES`'s `len` gives, if it is 4 × 1..=14.
fn stated_count(m: &Message) -> Option<usize> {
    let len = m.len as usize;
    let count = len / 4;
    (len.is_multiple_of(4) && (1..=RETURNS_MAX).contains(&count)).then_some(count)
}

/// The number of indices in a well-formed `RX_RETURNS` / `TX_DONES`, or `None`.
fn returns_count(m: &Message) -> Option<usize> {
    let count = stated_count(m)?;
    // Nothing but indices: the bytes past the last one are zero.
    let padding = (count..RETURNS_MAX).all(|i| index_at(m, i) == 0);
    padding.then_some(count)
}

/// Index `i` (< [`RETURNS_MAX`]) of a several-buffers message: two per payload word, low half
/// first.
fn index_at(m: &Message, i: usize) -> u32 {
    (m.payload[i / 2] >> (32 * (i % 2))) as u32
}

fn set_index(m: &mut Message, i: usize, index: u32) {
    let shift = 32 * (i % 2);
    let word = &mut m.payload[i / 2];
    *word = (*word & !(0xFFFF_FFFFu64 << shift)) | (u64::from(index) << shift);
}

/// The indices of a return message `m` of our own making, with whether they are of the rx-pool:
/// a single `RX_RETURN` / `TX_DONE` (not marked [`not_sent`]) or a several-buffers message.
/// `None` for anything else, which is never merged.
fn returned(m: &Message) -> Option<(bool, usize)> {
    match m.tag {
        tag::RX_RETURN => Some((true, 1)),
        tag::TX_DONE if m.payload[2] != NOT_SENT => Some((false, 1)),
        tag::RX_RETURNS => stated_count(m).map(|n| (true, n)),
        tag::TX_DONES => stated_count(m).map(|n| (false, n)),
        _ => None,
    }
}

fn is_several(m: &Message) -> bool {
    matches!(m.tag, tag::RX_RETURNS | tag::TX_DONES)
}

/// Folds the buffers of return message `m` into return message `into` when both send buffers
/// of the same pool home and together they number at most [`RETURNS_MAX`]: `into` becomes an
/// `RX_RETURNS` / `TX_DONES` carrying its indices and then `m`'s. True when merged (`m` need not
/// be sent); false, with `into` unchanged, otherwise (a frame, a `TX_DONE` marked not sent, a
/// different pool, no room).
///
/// Both messages are the caller's own (built from checked descriptors): indices are taken as
/// they are, and only `len` says how many there are. The cost is one store per index added.
pub fn merge(into: &mut Message, m: &Message) -> bool {
    let (Some((rx, n)), Some((m_rx, k))) = (returned(into), returned(m)) else {
        return false;
    };
    if rx != m_rx || n + k > RETURNS_MAX {
        return false;
    }
    if !is_several(into) {
        let first = into.descriptor().index;
        *into = Message::new(if rx { tag::RX_RETURNS } else { tag::TX_DONES });
        set_index(into, 0, first);
    }
    if is_several(m) {
        for i in 0..k {
            set_index(into, n + i, index_at(m, i));
        }
    } else {
        set_index(into, n, m.descriptor().index);
    }
    into.len = (4 * (n + k)) as u32;
    true
}

/// Per-hop counters of refused messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedCounters {
    pub unknown_tag: u64,
    pub wrong_pool: u64,
    pub bad_index: u64,
    pub bad_range: u64,
    pub bad_count: u64,
}

impl RefusedCounters {
    /// Counts `r`.
    pub fn count(&mut self, r: Refused) {
        match r {
            Refused::UnknownTag(_) => self.unknown_tag += 1,
            Refused::WrongPool { .. } => self.wrong_pool += 1,
            Refused::BadIndex(_) => self.bad_index += 1,
            Refused::BadRange { .. } => self.bad_range += 1,
            Refused::BadCount { .. } => self.bad_count += 1,
        }
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.unknown_tag + self.wrong_pool + self.bad_index + self.bad_range + self.bad_count
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

    fn rx(i: u32) -> Message {
        Kind::RxReturn(d(RX_POOL_ID, i, 0, 0)).message()
    }

    fn tx(i: u32) -> Message {
        Kind::TxDone(d(TX_POOL_ID, i, 0, 0)).message()
    }

    fn indices(m: &Message) -> Vec<u32> {
        Kind::decode_all(m, 256, 256)
            .unwrap()
            .map(|k| k.descriptor().index)
            .collect()
    }

    #[test]
    fn returns_merge_up_to_fourteen_per_message() {
        let mut m = rx(5);
        for i in 6..19 {
            assert!(merge(&mut m, &rx(i)), "index {i}");
        }
        assert_eq!((m.tag, m.len), (tag::RX_RETURNS, 56));
        assert_eq!(indices(&m), (5..19).collect::<Vec<_>>());
        // Full: the fifteenth goes in a message of its own.
        let before = m;
        assert!(!merge(&mut m, &rx(19)));
        assert_eq!(m, before);
        let kinds = Kind::decode_all(&m, 256, 256).unwrap();
        assert!(kinds.is_several());
        assert_eq!(kinds.first(), Some(Kind::RxReturn(d(RX_POOL_ID, 5, 0, 0))));
        assert_eq!(kinds.count(), RETURNS_MAX);
        // Two several-buffer messages merge when they fit together.
        let (mut a, mut b) = (tx(1), tx(200));
        assert!(merge(&mut a, &tx(2)));
        assert!(merge(&mut b, &tx(201)));
        assert!(merge(&mut a, &b));
        assert_eq!(a.tag, tag::TX_DONES);
        assert_eq!(indices(&a), [1, 2, 200, 201]);
        assert!(
            Kind::decode_all(&a, 256, 256)
                .unwrap()
                .all(|k| k.descriptor().pool == TX_POOL_ID)
        );
    }

    #[test]
    fn only_returns_of_one_pool_merge() {
        let frame = Kind::RxFrame(d(RX_POOL_ID, 1, 0, 60)).message();
        let send = Kind::TxFrame(d(TX_POOL_ID, 1, 0, 60)).message();
        let lost = not_sent(d(TX_POOL_ID, 3, 0, 0));
        for (mut into, m) in [
            (rx(1), tx(2)),
            (tx(1), rx(2)),
            (rx(1), frame),
            (frame, rx(1)),
            (send, tx(1)),
            (tx(1), lost),
            (lost, tx(1)),
        ] {
            let before = into;
            assert!(!merge(&mut into, &m), "{:x} <- {:x}", before.tag, m.tag);
            assert_eq!(into, before);
        }
        // A single message decodes as itself, offset and length kept.
        let one = Kind::decode_all(&Kind::TxFrame(d(TX_POOL_ID, 1, 2, 60)).message(), 8, 8);
        let one = one.unwrap();
        assert!(!one.is_several());
        assert_eq!(
            one.collect::<Vec<_>>(),
            [Kind::TxFrame(d(TX_POOL_ID, 1, 2, 60))]
        );
    }

    #[test]
    fn bad_several_buffer_messages_are_refused_whole() {
        let mut m = rx(1);
        assert!(merge(&mut m, &rx(2)));
        assert!(merge(&mut m, &rx(7)));
        assert!(Kind::decode_all(&m, 8, 8).is_ok());
        // One index past the pool refuses all three.
        assert_eq!(Kind::decode_all(&m, 7, 8), Err(Refused::BadIndex(7)));
        // The same indices read against the other pool's size.
        let mut t = m;
        t.tag = tag::TX_DONES;
        assert_eq!(Kind::decode_all(&t, 8, 7), Err(Refused::BadIndex(7)));
        for len in [0, 2, 13, 60, u32::MAX] {
            let mut bad = m;
            bad.len = len;
            assert_eq!(Kind::decode_all(&bad, 8, 8), Err(Refused::BadCount { len }));
        }
        // Bytes past the last index.
        let mut bad = m;
        bad.payload[6] = 1;
        assert_eq!(
            Kind::decode_all(&bad, 8, 8),
            Err(Refused::BadCount { len: 12 })
        );
        // `merge` takes the indices `len` states and nothing past them: what it builds is
        // well-formed even from a message with bytes past its last index.
        let mut into = rx(3);
        assert!(merge(&mut into, &bad));
        assert_eq!(indices(&into), [3, 1, 2, 7]);
        // Single decoding does not know the new tags.
        assert_eq!(
            Kind::decode(&m, 8, 8),
            Err(Refused::UnknownTag(tag::RX_RETURNS))
        );
        let mut c = RefusedCounters::default();
        c.count(Refused::BadCount { len: 0 });
        assert_eq!((c.bad_count, c.total()), (1, 1));
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
            if x & 2 == 0 {
                let tag = [tag::RX_RETURNS, tag::TX_DONES][(x >> 2) as usize & 1];
                words[0] = (words[0] & !0xFFFF_FFFF) | tag as u64;
            }
            let m = Message::from_words(words);
            let _ = Kind::decode(&m, 256, 128);
            if let Ok(kinds) = Kind::decode_all(&m, 256, 128) {
                assert!(kinds.count() <= RETURNS_MAX);
            }
            let mut into = rx(1);
            let _ = merge(&mut into, &m);
        }
    }
}
