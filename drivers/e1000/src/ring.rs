//! The receive and transmit descriptor rings, over DMA memory.
//!
//! Each ring is an array of descriptors with one fixed buffer per descriptor. The driver and
//! the device pass descriptors back and forth through two indices: the device advances the head
//! (`RDH`/`TDH`), the driver the tail (`RDT`/`TDT`). Everything the device writes is untrusted:
//! lengths are checked against the buffer size, a head value read from a register must lie
//! inside the ring and inside the window the driver gave the device ([`RxRing::check_head`],
//! [`TxRing::check_head`]), and no index read from the device is ever used to address memory.
//!
//! Tail writes are batched: the rings only record the new tail, and [`RxRing::tail_update`] /
//! [`TxRing::tail_update`] hand it to the caller to write once per batch.

use core::sync::atomic::{Ordering, fence};

use crate::desc::{DESC_LEN, RxDesc, TxDesc, rx_errors, rx_status, tx_cmd, tx_status};
use crate::dma::{DmaError, DmaSlice};

/// Fewest descriptors in a ring (the ring length must be a multiple of 128 bytes).
pub const MIN_DESCRIPTORS: usize = 8;
/// Most descriptors in a ring.
pub const MAX_DESCRIPTORS: usize = 4096;

/// Why a ring cannot be built, or what is wrong with a value the device reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The descriptor count is not a multiple of 8 in 8..=4096.
    BadCount(usize),
    /// The buffer size is not one the device supports for this ring.
    BadBufferSize(usize),
    /// The DMA memory given does not fit the ring.
    Memory(DmaError),
    /// A head index read from the device is not inside the ring.
    HeadOutOfRange {
        /// The value read.
        head: u32,
        /// The ring's size.
        size: usize,
    },
    /// A head index read from the device is inside the ring but outside the descriptors the
    /// driver gave it.
    HeadOutsideWindow {
        /// The value read.
        head: u32,
        /// First descriptor the device may be working on.
        from: usize,
        /// Last position the head may reach (the tail).
        to: usize,
    },
}

impl From<DmaError> for RingError {
    fn from(e: DmaError) -> Self {
        Self::Memory(e)
    }
}

/// Steps from `from` forward to `to` in a ring of `n`.
fn distance(from: usize, to: usize, n: usize) -> usize {
    (to + n - from) % n
}

/// Checks the count, the descriptor memory and the buffer memory of a ring.
fn check_geometry(
    desc: &DmaSlice,
    bufs: &DmaSlice,
    count: usize,
    buf_size: usize,
) -> Result<(), RingError> {
    if !(MIN_DESCRIPTORS..=MAX_DESCRIPTORS).contains(&count)
        || !count.is_multiple_of(MIN_DESCRIPTORS)
    {
        return Err(RingError::BadCount(count));
    }
    // The device needs the ring on a 16-byte boundary; we read descriptors as `u64`s.
    desc.check_align(16, core::mem::align_of::<RxDesc>())?;
    let desc_bytes = count * DESC_LEN;
    if desc.len() < desc_bytes {
        return Err(RingError::Memory(DmaError::TooSmall {
            needed: desc_bytes,
            have: desc.len(),
        }));
    }
    let buf_bytes = count
        .checked_mul(buf_size)
        .ok_or(RingError::BadBufferSize(buf_size))?;
    if bufs.len() < buf_bytes {
        return Err(RingError::Memory(DmaError::TooSmall {
            needed: buf_bytes,
            have: bufs.len(),
        }));
    }
    Ok(())
}

/// Checks a head value read from the device: inside a ring of `count`, and between `from` and
/// `to` going forward (both included).
fn check_window(head: u32, count: usize, from: usize, to: usize) -> Result<usize, RingError> {
    let h = head as usize;
    if h >= count {
        return Err(RingError::HeadOutOfRange { head, size: count });
    }
    if distance(from, h, count) > distance(from, to, count) {
        return Err(RingError::HeadOutsideWindow { head, from, to });
    }
    Ok(h)
}

/// What is wrong with a received descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxError {
    /// The frame does not fit in one buffer: the device split it (no end-of-packet bit) or
    /// claims more bytes than the buffer holds. Counted once per frame.
    TooLong {
        /// The length the descriptor gave.
        len: usize,
    },
    /// A later piece of a frame already dropped as [`RxError::TooLong`]; not counted again.
    Fragment,
    /// The device flagged the frame as damaged ([`rx_errors::FRAME`] bits).
    Damaged {
        /// The descriptor's error bits.
        errors: u8,
    },
    /// A descriptor marked done with no bytes.
    Empty,
}

/// A received descriptor the driver holds until it gives it back with [`RxRing::release`].
#[derive(Debug, PartialEq, Eq)]
pub struct RxToken {
    index: usize,
    len: usize,
    eop: bool,
    outcome: Result<(), RxError>,
}

impl RxToken {
    /// The descriptor's index in the ring.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the descriptor holds a whole good frame, or what is wrong with it.
    pub fn outcome(&self) -> Result<(), RxError> {
        self.outcome
    }
}

/// The receive ring.
#[derive(Debug)]
pub struct RxRing {
    desc: DmaSlice,
    bufs: DmaSlice,
    count: usize,
    buf_size: usize,
    /// Next descriptor to look at.
    next: usize,
    /// The tail to give the device: it may fill descriptors up to, not including, this one.
    tail: usize,
    /// The tail last handed out by `tail_update` (None: never, or since `reset`).
    written_tail: Option<usize>,
    /// Dropping the pieces of a frame that did not fit in one buffer.
    discarding: bool,
}

impl RxRing {
    /// A ring of `count` descriptors in `desc`, with `buf_size`-byte buffers in `bufs`
    /// (256, 512, 1024 or 2048 bytes: the sizes `RCTL.BSIZE` offers without `BSEX`). Call
    /// [`RxRing::reset`] before giving it to the device.
    pub fn new(
        desc: DmaSlice,
        bufs: DmaSlice,
        count: usize,
        buf_size: usize,
    ) -> Result<Self, RingError> {
        if Self::bsize_bits(buf_size).is_none() {
            return Err(RingError::BadBufferSize(buf_size));
        }
        check_geometry(&desc, &bufs, count, buf_size)?;
        Ok(Self {
            desc,
            bufs,
            count,
            buf_size,
            next: 0,
            tail: count - 1,
            written_tail: None,
            discarding: false,
        })
    }

    /// The `RCTL` bits selecting `buf_size`, if the device supports it.
    pub fn bsize_bits(buf_size: usize) -> Option<u32> {
        Some(match buf_size {
            2048 => 0b00 << 16,
            1024 => 0b01 << 16,
            512 => 0b10 << 16,
            256 => 0b11 << 16,
            _ => return None,
        })
    }

    /// The `RCTL` bits selecting this ring's buffer size.
    pub fn rctl_bsize(&self) -> u32 {
        Self::bsize_bits(self.buf_size).unwrap_or(0)
    }

    /// Number of descriptors.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Physical address of the descriptor ring (for `RDBAL`/`RDBAH`).
    pub fn phys(&self) -> u64 {
        self.desc.phys()
    }

    /// Length of the descriptor ring in bytes (for `RDLEN`).
    pub fn ring_bytes(&self) -> u32 {
        (self.count * DESC_LEN) as u32
    }

    /// The tail the device should have now (for `RDT`).
    pub fn tail(&self) -> u32 {
        self.tail as u32
    }

    /// The next descriptor the driver will look at.
    pub fn next_index(&self) -> usize {
        self.next
    }

    fn desc_ptr(&self, i: usize) -> *mut RxDesc {
        debug_assert!(i < self.count);
        // `check_geometry` made sure `count` descriptors fit in `desc`, aligned.
        self.desc.virt().cast::<RxDesc>().wrapping_add(i)
    }

    fn buf_phys(&self, i: usize) -> u64 {
        self.bufs.phys() + (i * self.buf_size) as u64
    }

    /// Writes every descriptor afresh (buffer address, nothing received) and rewinds: the
    /// device gets all descriptors but one, starting at 0. Call with the receiver off.
    pub fn reset(&mut self) {
        for i in 0..self.count {
            let d = RxDesc {
                addr: self.buf_phys(i),
                ..RxDesc::default()
            };
            // Safety: `i < count`, so the descriptor lies in our DMA memory (checked in `new`).
            unsafe { core::ptr::write_volatile(self.desc_ptr(i), d) };
        }
        self.next = 0;
        self.tail = self.count - 1;
        self.written_tail = None;
        self.discarding = false;
        fence(Ordering::SeqCst);
    }

    /// The next descriptor the device has finished, if there is one. It stays the driver's
    /// until it is given back with [`RxRing::release`]; calling `next` again before that returns
    /// the same descriptor.
    pub fn next(&self) -> Option<RxToken> {
        let p = self.desc_ptr(self.next);
        // Safety: `next < count`: the descriptor lies in our DMA memory. The status byte is
        // read alone first: the device writes it last.
        let status = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).status)) };
        if status & rx_status::DD == 0 {
            return None;
        }
        fence(Ordering::Acquire);
        // Safety: as above; the device is done with this descriptor (DD).
        let d = unsafe { core::ptr::read_volatile(p) };
        let len = d.length as usize;
        let eop = d.status & rx_status::EOP != 0;
        let outcome = if self.discarding {
            Err(RxError::Fragment)
        } else if !eop || len > self.buf_size {
            Err(RxError::TooLong { len })
        } else if d.errors & rx_errors::FRAME != 0 {
            Err(RxError::Damaged { errors: d.errors })
        } else if len == 0 {
            Err(RxError::Empty)
        } else {
            Ok(())
        };
        Some(RxToken {
            index: self.next,
            len,
            eop,
            outcome,
        })
    }

    /// The bytes of a good frame, or why there are none.
    pub fn frame(&self, token: &RxToken) -> Result<&[u8], RxError> {
        token.outcome?;
        if token.index >= self.count || token.len > self.buf_size {
            return Err(RxError::TooLong { len: token.len });
        }
        // Safety: the buffer of descriptor `index` lies in our DMA memory (`count * buf_size`
        // bytes checked in `new`), `len <= buf_size`, and the device does not write it while
        // the driver holds the descriptor (DD set, not yet given back).
        Ok(unsafe {
            core::slice::from_raw_parts(
                self.bufs.virt().add(token.index * self.buf_size),
                token.len,
            )
        })
    }

    /// Gives the descriptor of `token` back to the device (the new tail is written by the
    /// caller after the batch: [`RxRing::tail_update`]). A token that is not the current one
    /// (a second token for the same descriptor) is ignored.
    pub fn release(&mut self, token: RxToken) {
        if token.index != self.next {
            return;
        }
        let i = self.next;
        let d = RxDesc {
            addr: self.buf_phys(i),
            ..RxDesc::default()
        };
        // Safety: `i < count`: the descriptor lies in our DMA memory, and the device does not
        // use it until the tail passes it.
        unsafe { core::ptr::write_volatile(self.desc_ptr(i), d) };
        // A frame too long for one buffer continues in the next descriptors up to the one with
        // end-of-packet: drop those too.
        self.discarding = !token.eop;
        self.tail = i;
        self.next = (i + 1) % self.count;
    }

    /// The tail to write to `RDT`, if it changed since the last call (or since `reset`).
    pub fn tail_update(&mut self) -> Option<u32> {
        if self.written_tail == Some(self.tail) {
            return None;
        }
        self.written_tail = Some(self.tail);
        // The descriptors we gave back must be in memory before the device sees the tail.
        fence(Ordering::SeqCst);
        Some(self.tail as u32)
    }

    /// Checks a head value read from `RDH`: inside the ring, and between the next descriptor
    /// the driver will look at and the tail.
    pub fn check_head(&self, head: u32) -> Result<usize, RingError> {
        check_window(head, self.count, self.next, self.tail)
    }
}

/// Why a frame could not be queued for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// Every descriptor is in flight.
    Full,
    /// The frame is longer than a buffer.
    TooLong {
        /// The frame's length.
        len: usize,
        /// The buffer size.
        max: usize,
    },
    /// The frame has no bytes.
    Empty,
}

/// Frames and bytes the device finished sending, from [`TxRing::reclaim`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (without the CRC the device adds).
    pub bytes: u64,
}

/// The transmit ring.
#[derive(Debug)]
pub struct TxRing {
    desc: DmaSlice,
    bufs: DmaSlice,
    count: usize,
    buf_size: usize,
    /// Next descriptor to fill.
    tail: usize,
    /// Oldest descriptor in flight.
    clean: usize,
    /// The tail last handed out by `tail_update`, or 0 after `reset`.
    written_tail: Option<usize>,
}

impl TxRing {
    /// A ring of `count` descriptors in `desc`, with `buf_size`-byte buffers in `bufs`. Call
    /// [`TxRing::reset`] before giving it to the device.
    pub fn new(
        desc: DmaSlice,
        bufs: DmaSlice,
        count: usize,
        buf_size: usize,
    ) -> Result<Self, RingError> {
        if buf_size == 0 || buf_size > u16::MAX as usize {
            return Err(RingError::BadBufferSize(buf_size));
        }
        check_geometry(&desc, &bufs, count, buf_size)?;
        Ok(Self {
            desc,
            bufs,
            count,
            buf_size,
            tail: 0,
            clean: 0,
            written_tail: None,
        })
    }

    /// Number of descriptors.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Physical address of the descriptor ring (for `TDBAL`/`TDBAH`).
    pub fn phys(&self) -> u64 {
        self.desc.phys()
    }

    /// Length of the descriptor ring in bytes (for `TDLEN`).
    pub fn ring_bytes(&self) -> u32 {
        (self.count * DESC_LEN) as u32
    }

    /// The tail the device should have now (for `TDT`).
    pub fn tail(&self) -> u32 {
        self.tail as u32
    }

    /// Descriptors queued and not yet reclaimed.
    pub fn in_flight(&self) -> usize {
        distance(self.clean, self.tail, self.count)
    }

    /// Frames that can be queued now.
    pub fn free(&self) -> usize {
        self.count - 1 - self.in_flight()
    }

    fn desc_ptr(&self, i: usize) -> *mut TxDesc {
        debug_assert!(i < self.count);
        self.desc.virt().cast::<TxDesc>().wrapping_add(i)
    }

    /// Clears every descriptor and rewinds. Call with the transmitter off.
    pub fn reset(&mut self) {
        for i in 0..self.count {
            // Safety: `i < count`: the descriptor lies in our DMA memory (checked in `new`).
            unsafe { core::ptr::write_volatile(self.desc_ptr(i), TxDesc::default()) };
        }
        self.tail = 0;
        self.clean = 0;
        // Device init writes TDT = 0 together with the other ring registers.
        self.written_tail = Some(0);
        fence(Ordering::SeqCst);
    }

    /// Queues the frame `fill` writes into a buffer; `fill` returns its length. Nothing is
    /// queued if `fill` returns 0 or more than the buffer. Returns the length.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, TxError> {
        if self.free() == 0 {
            return Err(TxError::Full);
        }
        let i = self.tail;
        // Safety: descriptor `i` is not in flight (free() > 0), so neither it nor its buffer is
        // read by the device; the buffer lies in our DMA memory (checked in `new`), and `&mut
        // self` makes this the only reference to it.
        let buf = unsafe {
            core::slice::from_raw_parts_mut(self.bufs.virt().add(i * self.buf_size), self.buf_size)
        };
        let len = fill(buf);
        if len == 0 {
            return Err(TxError::Empty);
        }
        if len > self.buf_size {
            return Err(TxError::TooLong {
                len,
                max: self.buf_size,
            });
        }
        let d = TxDesc {
            addr: self.bufs.phys() + (i * self.buf_size) as u64,
            length: len as u16,
            cmd: tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS,
            ..TxDesc::default()
        };
        // Safety: as above.
        unsafe { core::ptr::write_volatile(self.desc_ptr(i), d) };
        self.tail = (i + 1) % self.count;
        Ok(len)
    }

    /// Queues a copy of `frame`.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if frame.is_empty() {
            return Err(TxError::Empty);
        }
        if frame.len() > self.buf_size {
            return Err(TxError::TooLong {
                len: frame.len(),
                max: self.buf_size,
            });
        }
        self.push_with(|buf| {
            buf[..frame.len()].copy_from_slice(frame);
            frame.len()
        })
        .map(drop)
    }

    /// The tail to write to `TDT`, if frames were queued since the last call.
    pub fn tail_update(&mut self) -> Option<u32> {
        if self.written_tail == Some(self.tail) {
            return None;
        }
        self.written_tail = Some(self.tail);
        fence(Ordering::SeqCst);
        Some(self.tail as u32)
    }

    /// Takes back the descriptors the device finished (DD set), oldest first, and counts them.
    pub fn reclaim(&mut self) -> Sent {
        let mut sent = Sent::default();
        while self.clean != self.tail {
            let p = self.desc_ptr(self.clean);
            // Safety: `clean < count`: the descriptor lies in our DMA memory.
            let status = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).status)) };
            if status & tx_status::DD == 0 {
                break;
            }
            fence(Ordering::Acquire);
            // Safety: as above. The length is what we wrote; the device only writes status.
            let len = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).length)) };
            sent.frames += 1;
            sent.bytes += u64::from(len);
            self.clean = (self.clean + 1) % self.count;
        }
        sent
    }

    /// Checks a head value read from `TDH`: inside the ring, and between the oldest descriptor
    /// in flight and the tail the device was given.
    pub fn check_head(&self, head: u32) -> Result<usize, RingError> {
        let to = self.written_tail.unwrap_or(0);
        check_window(head, self.count, self.clean, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr::NonNull;

    const PHYS: u64 = 0x4000_0000;

    /// DMA memory on the heap, and a device's view of it.
    struct Mem {
        words: Vec<u64>,
    }

    impl Mem {
        fn new(bytes: usize) -> Self {
            Self {
                words: vec![0; bytes.div_ceil(8)],
            }
        }
        fn slice(&mut self) -> DmaSlice {
            let len = self.words.len() * 8;
            // Safety: the memory outlives the rings of each test.
            unsafe {
                DmaSlice::new(
                    NonNull::new(self.words.as_mut_ptr().cast()).unwrap(),
                    PHYS,
                    len,
                )
                .unwrap()
            }
        }
        fn rx_desc(&self, i: usize) -> RxDesc {
            // Safety: the test reads descriptors within the vector.
            unsafe { core::ptr::read_volatile(self.words.as_ptr().cast::<RxDesc>().add(i)) }
        }
        /// The device writes back RX descriptor `i` and fills its buffer.
        fn rx_complete(&mut self, i: usize, data: &[u8], status: u8, errors: u8, len: u16) {
            let d = self.rx_desc(i);
            let off = (d.addr - PHYS) as usize;
            let bytes: &mut [u8] =
                // Safety: the test's own memory.
                unsafe { core::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.words.len() * 8) };
            bytes[off..off + data.len()].copy_from_slice(data);
            let w = RxDesc {
                length: len,
                status,
                errors,
                ..d
            };
            // Safety: as above.
            unsafe {
                core::ptr::write_volatile(self.words.as_mut_ptr().cast::<RxDesc>().add(i), w)
            };
        }
        fn tx_desc(&self, base: usize, i: usize) -> TxDesc {
            // Safety: the test reads descriptors within the vector.
            unsafe {
                core::ptr::read_volatile(
                    self.words
                        .as_ptr()
                        .cast::<u8>()
                        .add(base)
                        .cast::<TxDesc>()
                        .add(i),
                )
            }
        }
        fn tx_done(&mut self, base: usize, i: usize) {
            let mut d = self.tx_desc(base, i);
            d.status |= tx_status::DD;
            // Safety: as above.
            unsafe {
                core::ptr::write_volatile(
                    self.words
                        .as_mut_ptr()
                        .cast::<u8>()
                        .add(base)
                        .cast::<TxDesc>()
                        .add(i),
                    d,
                )
            };
        }
        fn bytes(&self, phys: u64, len: usize) -> Vec<u8> {
            // Safety: the test's own memory.
            let all = unsafe {
                core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.words.len() * 8)
            };
            let off = (phys - PHYS) as usize;
            all[off..off + len].to_vec()
        }
    }

    fn rx_ring(mem: &mut Mem, count: usize) -> RxRing {
        let s = mem.slice();
        let mut r = RxRing::new(
            s.piece(0, count * 16).unwrap(),
            s.piece(4096, count * 2048).unwrap(),
            count,
            2048,
        )
        .unwrap();
        r.reset();
        r
    }

    const DONE: u8 = rx_status::DD | rx_status::EOP;

    #[test]
    fn ring_geometry_is_checked() {
        let mut mem = Mem::new(4096 + 16 * 2048);
        let s = mem.slice();
        let d = s.piece(0, 256).unwrap();
        let b = s.piece(4096, 16 * 2048).unwrap();
        for bad in [0, 4, 12, 8192] {
            assert_eq!(
                RxRing::new(d, b, bad, 2048).unwrap_err(),
                RingError::BadCount(bad)
            );
        }
        assert_eq!(
            RxRing::new(d, b, 16, 1500).unwrap_err(),
            RingError::BadBufferSize(1500)
        );
        assert!(matches!(
            RxRing::new(d, b, 24, 2048),
            Err(RingError::Memory(DmaError::TooSmall { .. }))
        ));
        assert!(matches!(
            RxRing::new(d, s.piece(4096, 100).unwrap(), 16, 2048),
            Err(RingError::Memory(DmaError::TooSmall { .. }))
        ));
        let misaligned = s.piece(8, 256).unwrap();
        assert_eq!(
            RxRing::new(misaligned, b, 16, 2048).unwrap_err(),
            RingError::Memory(DmaError::Misaligned)
        );
        assert!(TxRing::new(d, b, 16, 0).is_err());
        assert!(TxRing::new(d, b, 16, 2048).is_ok());
        let r = RxRing::new(d, b, 16, 2048).unwrap();
        assert_eq!(
            (r.phys(), r.ring_bytes(), r.tail(), r.count()),
            (PHYS, 256, 15, 16)
        );
        assert_eq!(RxRing::bsize_bits(256), Some(3 << 16));
    }

    #[test]
    fn rx_reset_gives_every_descriptor_its_buffer() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut r = rx_ring(&mut mem, 8);
        for i in 0..8 {
            assert_eq!(
                mem.rx_desc(i),
                RxDesc {
                    addr: PHYS + 4096 + i as u64 * 2048,
                    ..RxDesc::default()
                }
            );
        }
        assert_eq!(r.tail_update(), Some(7));
        assert_eq!(r.tail_update(), None);
        assert!(r.next().is_none());
    }

    #[test]
    fn rx_receives_and_wraps_around() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut r = rx_ring(&mut mem, 8);
        r.tail_update();
        // Three laps of the ring, one frame at a time, each with its own contents.
        for n in 0..24usize {
            let i = n % 8;
            let data = [n as u8; 60];
            mem.rx_complete(i, &data, DONE, 0, 60);
            let t = r.next().expect("a frame");
            assert_eq!(t.index(), i);
            assert_eq!(r.frame(&t).unwrap(), &data[..]);
            // Asking again before releasing gives the same descriptor.
            let again = r.next().unwrap();
            assert_eq!(again.index(), i);
            r.release(t);
            r.release(again); // a stale token: ignored
            assert_eq!(r.next_index(), (i + 1) % 8);
            assert_eq!(r.tail_update(), Some(i as u32));
            // The descriptor went back clean, with its buffer address.
            assert_eq!(
                mem.rx_desc(i),
                RxDesc {
                    addr: PHYS + 4096 + i as u64 * 2048,
                    ..RxDesc::default()
                }
            );
            assert!(r.next().is_none());
        }
    }

    #[test]
    fn rx_batches_tail_writes() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut r = rx_ring(&mut mem, 8);
        r.tail_update();
        for i in 0..5 {
            mem.rx_complete(i, &[i as u8; 20], DONE, 0, 20);
        }
        let mut got = 0;
        while let Some(t) = r.next() {
            assert!(r.frame(&t).is_ok());
            r.release(t);
            got += 1;
        }
        assert_eq!(got, 5);
        assert_eq!(r.tail_update(), Some(4), "one tail write for the batch");
    }

    #[test]
    fn rx_rejects_bad_descriptors() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut r = rx_ring(&mut mem, 8);
        // Claims more bytes than the buffer holds.
        mem.rx_complete(0, &[], DONE, 0, 4000);
        // Damaged (CRC error).
        mem.rx_complete(1, &[1; 64], DONE, rx_errors::CE, 64);
        // Only a checksum-offload error: the frame itself is fine.
        mem.rx_complete(2, &[2; 64], DONE, rx_errors::TCPE, 64);
        // Empty.
        mem.rx_complete(3, &[], DONE, 0, 0);
        // A frame split over three buffers (no EOP on the first two), then a good one.
        mem.rx_complete(4, &[4; 2048], rx_status::DD, 0, 2048);
        mem.rx_complete(5, &[5; 2048], rx_status::DD, 0, 2048);
        mem.rx_complete(6, &[6; 100], DONE, 0, 100);
        mem.rx_complete(7, &[7; 42], DONE, 0, 42);
        let mut outcomes = Vec::new();
        while let Some(t) = r.next() {
            outcomes.push(r.frame(&t).map(<[u8]>::len));
            r.release(t);
        }
        assert_eq!(
            outcomes,
            [
                Err(RxError::TooLong { len: 4000 }),
                Err(RxError::Damaged {
                    errors: rx_errors::CE
                }),
                Ok(64),
                Err(RxError::Empty),
                Err(RxError::TooLong { len: 2048 }),
                Err(RxError::Fragment),
                Err(RxError::Fragment),
                Ok(42),
            ]
        );
    }

    #[test]
    fn rx_head_values_are_checked() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut r = rx_ring(&mut mem, 8);
        // Fresh ring: next 0, tail 7. Any head 0..=7 is plausible; 8 and up are not.
        for h in 0..8 {
            assert_eq!(r.check_head(h), Ok(h as usize));
        }
        assert_eq!(
            r.check_head(8),
            Err(RingError::HeadOutOfRange { head: 8, size: 8 })
        );
        assert_eq!(
            r.check_head(u32::MAX),
            Err(RingError::HeadOutOfRange {
                head: u32::MAX,
                size: 8
            })
        );
        // After three frames: next 3, tail 2. The driver gives back every descriptor as soon
        // as it has handled it, so the device may be anywhere in the ring; only the range
        // check can catch a bad RX head.
        for i in 0..3 {
            mem.rx_complete(i, &[0; 60], DONE, 0, 60);
            let t = r.next().unwrap();
            r.release(t);
        }
        for h in 0..8 {
            assert_eq!(r.check_head(h), Ok(h as usize));
        }
        assert!(r.check_head(9).is_err());
        // The window check itself.
        assert_eq!(
            check_window(1, 8, 3, 6),
            Err(RingError::HeadOutsideWindow {
                head: 1,
                from: 3,
                to: 6
            })
        );
        assert_eq!(
            check_window(7, 8, 3, 6),
            Err(RingError::HeadOutsideWindow {
                head: 7,
                from: 3,
                to: 6
            })
        );
        assert_eq!(check_window(6, 8, 3, 6), Ok(6));
        assert_eq!(check_window(0, 8, 6, 1), Ok(0), "a window that wraps");
        assert!(check_window(2, 8, 6, 1).is_err());
    }

    fn tx_ring(mem: &mut Mem, count: usize) -> TxRing {
        let s = mem.slice();
        let mut t = TxRing::new(
            s.piece(0, count * 16).unwrap(),
            s.piece(4096, count * 2048).unwrap(),
            count,
            2048,
        )
        .unwrap();
        t.reset();
        t
    }

    #[test]
    fn tx_queues_fills_and_reclaims_with_wrap_around() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut t = tx_ring(&mut mem, 8);
        assert_eq!(t.tail_update(), None, "nothing queued yet");
        assert_eq!(t.free(), 7);
        for n in 0..7u8 {
            t.push(&[n; 100]).unwrap();
        }
        assert_eq!(t.push(&[9; 10]), Err(TxError::Full));
        assert_eq!(t.tail_update(), Some(7));
        assert_eq!(t.tail_update(), None);
        for i in 0..7 {
            let d = mem.tx_desc(0, i);
            assert_eq!(d.length, 100);
            assert_eq!(d.cmd, tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS);
            assert_eq!(d.status, 0);
            assert_eq!(mem.bytes(d.addr, 100), vec![i as u8; 100]);
        }
        assert_eq!(
            t.reclaim(),
            Sent::default(),
            "the device has not finished any"
        );
        for i in 0..3 {
            mem.tx_done(0, i);
        }
        // Done out of order: 4 before 3 does not free 4 until 3 is done.
        mem.tx_done(0, 4);
        assert_eq!(
            t.reclaim(),
            Sent {
                frames: 3,
                bytes: 300
            }
        );
        assert_eq!(t.free(), 3);
        for n in 0..3u8 {
            t.push(&[0xA0 + n; 60]).unwrap();
        }
        assert_eq!(t.tail_update(), Some(2), "wrapped past the end");
        assert_eq!(mem.tx_desc(0, 7).length, 60);
        assert_eq!(
            mem.tx_desc(0, 0).status,
            0,
            "a reused descriptor starts clean"
        );
        for i in [3, 5, 6, 7, 0, 1] {
            mem.tx_done(0, i);
        }
        assert_eq!(
            t.reclaim(),
            Sent {
                frames: 7,
                bytes: 4 * 100 + 3 * 60
            }
        );
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn tx_rejects_bad_frames() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut t = tx_ring(&mut mem, 8);
        assert_eq!(t.push(&[]), Err(TxError::Empty));
        assert_eq!(
            t.push(&[0; 2049]),
            Err(TxError::TooLong {
                len: 2049,
                max: 2048
            })
        );
        assert_eq!(t.push_with(|_| 0), Err(TxError::Empty));
        assert_eq!(
            t.push_with(|_| 5000),
            Err(TxError::TooLong {
                len: 5000,
                max: 2048
            })
        );
        assert_eq!(
            t.push_with(|b| {
                b[..3].copy_from_slice(b"abc");
                3
            }),
            Ok(3)
        );
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn tx_head_values_are_checked() {
        let mut mem = Mem::new(4096 + 8 * 2048);
        let mut t = tx_ring(&mut mem, 8);
        assert_eq!(t.check_head(0), Ok(0));
        assert!(
            matches!(t.check_head(1), Err(RingError::HeadOutsideWindow { .. })),
            "nothing was given yet"
        );
        t.push(&[1; 64]).unwrap();
        t.push(&[2; 64]).unwrap();
        assert!(
            t.check_head(2).is_err(),
            "queued but the tail not yet written"
        );
        t.tail_update();
        assert_eq!(t.check_head(2), Ok(2));
        assert_eq!(
            t.check_head(8),
            Err(RingError::HeadOutOfRange { head: 8, size: 8 })
        );
        assert_eq!(
            t.check_head(0xFFFF_0000),
            Err(RingError::HeadOutOfRange {
                head: 0xFFFF_0000,
                size: 8
            })
        );
        mem.tx_done(0, 0);
        t.reclaim();
        assert!(
            matches!(t.check_head(0), Err(RingError::HeadOutsideWindow { .. })),
            "behind the oldest in flight"
        );
        assert_eq!(t.check_head(1), Ok(1));
    }
}
