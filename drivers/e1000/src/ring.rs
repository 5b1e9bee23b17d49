//! The receive and transmit descriptor rings, over DMA memory.
//!
//! A ring is an array of descriptors. The driver and the device pass descriptors back and forth
//! through two indices: the device advances the head (`RDH`/`TDH`), the driver the tail
//! (`RDT`/`TDT`). Everything the device writes is untrusted: lengths are checked against the
//! buffer size, a head value read from a register must lie inside the ring and inside the window
//! the driver gave the device ([`RxRing::check_head`], [`TxRing::check_head`]), and no index
//! read from the device is ever used to address memory.
//!
//! The packet buffers come from one of two places:
//! - **own buffers** ([`RxRing::new`], [`TxRing::new`]): one fixed buffer per descriptor in the
//!   driver's DMA region; frames are read from and copied into them;
//! - **a shared pool** ([`RxRing::over_pool`], [`TxRing::over_pool`]): buffers of a region the
//!   network servers map too ([`PoolBuffers`], docs/netpath.md). The receive ring holds the
//!   buffers the driver posted ([`RxRing::post`]) and hands each back when the device filled it
//!   ([`RxRing::release`] returns its index); the transmit ring sends buffers the servers filled
//!   ([`TxRing::push_pooled`]) and reports each when the device is done
//!   ([`TxRing::reclaim_with`]). The rings never read or write a pool buffer's bytes: they only
//!   compute its physical address from a buffer index they check against the pool.
//!
//! The receive ring keeps the posted descriptors in one window: `next` (the oldest the device
//! may fill) up to, not including, the tail. Descriptors from the tail round to `next` hold no
//! buffer the device may use; one of them always stays empty, so that a full ring never looks
//! empty to the device (`RDH == RDT`). With own buffers every descriptor is refilled as soon as
//! it is released, so the window is always the whole ring but one.
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
/// Most descriptors in a ring over a shared pool (the ring remembers the buffer of each
/// descriptor in a table of this size).
pub const MAX_POOL_DESCRIPTORS: usize = 512;
/// Most buffers in a shared pool the rings post from (buffer indices are kept as `u16`).
pub const MAX_POOL_BUFFERS: u32 = 1 << 16;

/// Why a ring cannot be built, or what is wrong with a value the device reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The descriptor count is not a multiple of 8 in 8..=4096 (8..=[`MAX_POOL_DESCRIPTORS`]
    /// over a pool).
    BadCount(usize),
    /// The buffer size is not one the device supports for this ring.
    BadBufferSize(usize),
    /// The DMA memory given does not fit the ring.
    Memory(DmaError),
    /// The pool has no buffers, more than [`MAX_POOL_BUFFERS`], or reaches past the end of the
    /// physical address space.
    BadPool {
        /// Its number of buffers.
        count: u32,
    },
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

/// Buffers of a shared pool: `count` buffers of `size` bytes, physically contiguous from `phys`
/// (regions are, docs/netpath.md). Buffer `i` is at `phys + i * size` for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBuffers {
    /// Physical address of buffer 0.
    pub phys: u64,
    /// Number of buffers.
    pub count: u32,
    /// Size of every buffer in bytes.
    pub size: usize,
}

impl PoolBuffers {
    fn check(&self) -> Result<(), RingError> {
        let bytes = (self.count as u64).checked_mul(self.size as u64);
        if self.count == 0
            || self.count > MAX_POOL_BUFFERS
            || bytes.and_then(|b| self.phys.checked_add(b)).is_none()
        {
            return Err(RingError::BadPool { count: self.count });
        }
        Ok(())
    }

    /// Physical address of buffer `index`, if the pool has it.
    pub fn phys_of(&self, index: u32) -> Option<u64> {
        (index < self.count).then(|| self.phys + u64::from(index) * self.size as u64)
    }
}

/// Steps from `from` forward to `to` in a ring of `n`.
fn distance(from: usize, to: usize, n: usize) -> usize {
    (to + n - from) % n
}

/// Checks the count and the descriptor memory of a ring.
fn check_descriptors(desc: &DmaSlice, count: usize, max: usize) -> Result<(), RingError> {
    if !(MIN_DESCRIPTORS..=max).contains(&count) || !count.is_multiple_of(MIN_DESCRIPTORS) {
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
    Ok(())
}

/// Checks the count, the descriptor memory and the buffer memory of a ring with own buffers.
fn check_geometry(
    desc: &DmaSlice,
    bufs: &DmaSlice,
    count: usize,
    buf_size: usize,
) -> Result<(), RingError> {
    check_descriptors(desc, count, MAX_DESCRIPTORS)?;
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
    /// The frame is good but lies in a pool buffer, whose bytes the ring does not map: read it
    /// through the pool ([`RxRing::frame`] on a ring over a pool).
    InPool,
}

/// Why a buffer could not be posted to the receive ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    /// The ring uses its own buffers.
    NotPooled,
    /// Every descriptor but the one kept empty holds a buffer.
    Full,
    /// The pool has no buffer of that index.
    BadIndex(u32),
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

    /// The length the device wrote (meaningful when [`RxToken::outcome`] is `Ok`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the device wrote no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the descriptor holds a whole good frame, or what is wrong with it.
    pub fn outcome(&self) -> Result<(), RxError> {
        self.outcome
    }
}

/// Where a receive ring's buffers are.
// The pool variant carries its table inline: the crate does not allocate, and a ring is built
// once per driver instance.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum RxBuffers {
    /// One buffer per descriptor, in the driver's DMA region.
    Own(DmaSlice),
    /// Buffers of a shared pool; `ids[i]` is the pool index of the buffer descriptor `i` holds
    /// (meaningful for the posted descriptors only).
    Pool {
        pool: PoolBuffers,
        ids: [u16; MAX_POOL_DESCRIPTORS],
    },
}

/// The receive ring.
#[derive(Debug)]
pub struct RxRing {
    desc: DmaSlice,
    bufs: RxBuffers,
    count: usize,
    buf_size: usize,
    /// Next descriptor to look at.
    next: usize,
    /// The tail to give the device: it may fill descriptors up to, not including, this one;
    /// the next buffer posted goes here. The descriptors `next..tail` hold buffers.
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
            bufs: RxBuffers::Own(bufs),
            count,
            buf_size,
            next: 0,
            tail: count - 1,
            written_tail: None,
            discarding: false,
        })
    }

    /// A ring of `count` descriptors (at most [`MAX_POOL_DESCRIPTORS`]) in `desc` that receives
    /// into buffers of `pool` (whose size must be one `RCTL.BSIZE` offers). It starts with no
    /// buffer: post them with [`RxRing::post`] after [`RxRing::reset`].
    pub fn over_pool(desc: DmaSlice, count: usize, pool: PoolBuffers) -> Result<Self, RingError> {
        if Self::bsize_bits(pool.size).is_none() {
            return Err(RingError::BadBufferSize(pool.size));
        }
        pool.check()?;
        check_descriptors(&desc, count, MAX_POOL_DESCRIPTORS)?;
        Ok(Self {
            desc,
            bufs: RxBuffers::Pool {
                pool,
                ids: [0; MAX_POOL_DESCRIPTORS],
            },
            count,
            buf_size: pool.size,
            next: 0,
            tail: 0,
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

    /// True when the ring receives into a shared pool's buffers.
    pub fn is_pooled(&self) -> bool {
        matches!(self.bufs, RxBuffers::Pool { .. })
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

    /// Descriptors that hold a buffer (given to the device, or filled and not yet released).
    pub fn posted(&self) -> usize {
        distance(self.next, self.tail, self.count)
    }

    /// Descriptors waiting for a buffer ([`RxRing::post`]); always 0 with own buffers.
    pub fn unposted(&self) -> usize {
        self.count - 1 - self.posted()
    }

    fn desc_ptr(&self, i: usize) -> *mut RxDesc {
        debug_assert!(i < self.count);
        // `check_descriptors` made sure `count` descriptors fit in `desc`, aligned.
        self.desc.virt().cast::<RxDesc>().wrapping_add(i)
    }

    fn write_desc(&mut self, i: usize, addr: u64) {
        let d = RxDesc {
            addr,
            ..RxDesc::default()
        };
        // Safety: `i < count`, so the descriptor lies in our DMA memory (checked in the
        // constructor), and the device does not use it: it is outside the window it was given.
        unsafe { core::ptr::write_volatile(self.desc_ptr(i), d) };
    }

    /// Writes every descriptor afresh and rewinds. Call with the receiver off.
    ///
    /// With own buffers the device gets all descriptors but one, starting at 0. Over a pool the
    /// ring keeps the buffers it holds (those not released) and posts them again from
    /// descriptor 0, in the same order; a frame the device had written into one of them is
    /// dropped.
    pub fn reset(&mut self) {
        let kept = self.posted();
        let (next, count) = (self.next, self.count);
        match &mut self.bufs {
            RxBuffers::Own(bufs) => {
                let (base, size) = (bufs.phys(), self.buf_size as u64);
                for i in 0..count {
                    self.write_desc(i, base + i as u64 * size);
                }
                self.tail = count - 1;
            }
            RxBuffers::Pool { pool, ids } => {
                let pool = *pool;
                ids[..count].rotate_left(next);
                let ids = *ids;
                for (i, id) in ids.iter().enumerate().take(count) {
                    let addr = if i < kept {
                        pool.phys_of(u32::from(*id)).unwrap_or(0)
                    } else {
                        0
                    };
                    self.write_desc(i, addr);
                }
                self.tail = kept;
            }
        }
        self.next = 0;
        self.written_tail = None;
        self.discarding = false;
        fence(Ordering::SeqCst);
    }

    /// Posts buffer `index` of the pool in the descriptor at the tail (the device gets it with
    /// the next tail write, [`RxRing::tail_update`]). The caller must own the buffer and not
    /// touch it until [`RxRing::release`] hands it back.
    pub fn post(&mut self, index: u32) -> Result<(), PostError> {
        let RxBuffers::Pool { pool, .. } = &self.bufs else {
            return Err(PostError::NotPooled);
        };
        let Some(addr) = pool.phys_of(index) else {
            return Err(PostError::BadIndex(index));
        };
        if self.unposted() == 0 {
            return Err(PostError::Full);
        }
        let i = self.tail;
        self.write_desc(i, addr);
        if let RxBuffers::Pool { ids, .. } = &mut self.bufs {
            // `phys_of` checked `index < count <= MAX_POOL_BUFFERS = 2^16`.
            ids[i] = index as u16;
        }
        self.tail = (i + 1) % self.count;
        Ok(())
    }

    /// The next descriptor the device has finished, if there is one. It stays the driver's
    /// until it is given back with [`RxRing::release`]; calling `next` again before that returns
    /// the same descriptor.
    pub fn next(&self) -> Option<RxToken> {
        if self.next == self.tail {
            // No buffer posted: whatever the descriptor says is stale.
            return None;
        }
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

    /// The bytes of a good frame in the ring's own buffer, or why there are none
    /// ([`RxError::InPool`] over a pool: the caller reads the frame through the pool).
    pub fn frame(&self, token: &RxToken) -> Result<&[u8], RxError> {
        token.outcome?;
        let RxBuffers::Own(bufs) = &self.bufs else {
            return Err(RxError::InPool);
        };
        if token.index >= self.count || token.len > self.buf_size {
            return Err(RxError::TooLong { len: token.len });
        }
        // Safety: the buffer of descriptor `index` lies in our DMA memory (`count * buf_size`
        // bytes checked in `new`), `len <= buf_size`, and the device does not write it while
        // the driver holds the descriptor (DD set, not yet given back).
        Ok(unsafe {
            core::slice::from_raw_parts(bufs.virt().add(token.index * self.buf_size), token.len)
        })
    }

    /// Gives the descriptor of `token` back (the new tail is written by the caller after the
    /// batch: [`RxRing::tail_update`]). A token that is not the current one (a second token for
    /// the same descriptor) is ignored.
    ///
    /// With own buffers the descriptor is refilled with its buffer at once and `None` is
    /// returned. Over a pool the descriptor is left empty and the index of the pool buffer it
    /// held is returned: the caller owns that buffer again (with the frame in it) and posts
    /// another one in its place ([`RxRing::post`]).
    pub fn release(&mut self, token: RxToken) -> Option<u32> {
        if token.index != self.next || self.next == self.tail {
            return None;
        }
        let i = self.next;
        // A frame too long for one buffer continues in the next descriptors up to the one with
        // end-of-packet: drop those too.
        self.discarding = !token.eop;
        self.next = (i + 1) % self.count;
        match &self.bufs {
            RxBuffers::Own(bufs) => {
                let addr = bufs.phys() + (i * self.buf_size) as u64;
                self.write_desc(i, addr);
                // The descriptor kept empty moves here; the previous one goes to the device.
                self.tail = i;
                None
            }
            RxBuffers::Pool { ids, .. } => {
                let id = u32::from(ids[i]);
                self.write_desc(i, 0);
                Some(id)
            }
        }
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
    /// A frame in a pool buffer was given to a ring with own buffers, or the other way round.
    WrongBuffers,
    /// The pool has no buffer of that index.
    BadIndex(u32),
}

/// Frames and bytes the device finished sending, from [`TxRing::reclaim`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (without the CRC the device adds).
    pub bytes: u64,
}

/// A frame in a pool buffer: `len` bytes at `offset` in buffer `index`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PooledFrame {
    /// The pool buffer.
    pub index: u32,
    /// First byte of the frame in the buffer.
    pub offset: u32,
    /// Length of the frame.
    pub len: u32,
}

/// Where a transmit ring's buffers are.
// The pool variant carries its table inline: the crate does not allocate, and a ring is built
// once per driver instance.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum TxBuffers {
    /// One buffer per descriptor, in the driver's DMA region.
    Own(DmaSlice),
    /// Buffers of a shared pool; `frames[i]` is the frame descriptor `i` sends (meaningful
    /// for the descriptors in flight only).
    Pool {
        pool: PoolBuffers,
        frames: [PooledFrame; MAX_POOL_DESCRIPTORS],
    },
}

/// The transmit ring.
#[derive(Debug)]
pub struct TxRing {
    desc: DmaSlice,
    bufs: TxBuffers,
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
            bufs: TxBuffers::Own(bufs),
            count,
            buf_size,
            tail: 0,
            clean: 0,
            written_tail: None,
        })
    }

    /// A ring of `count` descriptors (at most [`MAX_POOL_DESCRIPTORS`]) in `desc` that sends
    /// frames from buffers of `pool` ([`TxRing::push_pooled`]). Call [`TxRing::reset`] before
    /// giving it to the device.
    pub fn over_pool(desc: DmaSlice, count: usize, pool: PoolBuffers) -> Result<Self, RingError> {
        if pool.size == 0 || pool.size > u16::MAX as usize {
            return Err(RingError::BadBufferSize(pool.size));
        }
        pool.check()?;
        check_descriptors(&desc, count, MAX_POOL_DESCRIPTORS)?;
        Ok(Self {
            desc,
            bufs: TxBuffers::Pool {
                pool,
                frames: [PooledFrame::default(); MAX_POOL_DESCRIPTORS],
            },
            count,
            buf_size: pool.size,
            tail: 0,
            clean: 0,
            written_tail: None,
        })
    }

    /// Number of descriptors.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when the ring sends from a shared pool's buffers.
    pub fn is_pooled(&self) -> bool {
        matches!(self.bufs, TxBuffers::Pool { .. })
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

    /// Clears every descriptor and rewinds. Call with the transmitter off. Frames in pool
    /// buffers still in flight are forgotten: take them first with [`TxRing::abandon`].
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
    /// queued if `fill` returns 0 or more than the buffer. Returns the length. Only for a ring
    /// with own buffers ([`TxError::WrongBuffers`] otherwise).
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, TxError> {
        let TxBuffers::Own(bufs) = &self.bufs else {
            return Err(TxError::WrongBuffers);
        };
        let bufs = *bufs;
        if self.free() == 0 {
            return Err(TxError::Full);
        }
        let i = self.tail;
        // Safety: descriptor `i` is not in flight (free() > 0), so neither it nor its buffer is
        // read by the device; the buffer lies in our DMA memory (checked in `new`), and `&mut
        // self` makes this the only reference to it.
        let buf = unsafe {
            core::slice::from_raw_parts_mut(bufs.virt().add(i * self.buf_size), self.buf_size)
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
        self.queue(i, bufs.phys() + (i * self.buf_size) as u64, len as u16);
        Ok(len)
    }

    /// Writes descriptor `i` for `len` bytes at `addr` and moves the tail past it.
    fn queue(&mut self, i: usize, addr: u64, len: u16) {
        let d = TxDesc {
            addr,
            length: len,
            cmd: tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS,
            ..TxDesc::default()
        };
        // Safety: `i < count` and descriptor `i` is not in flight (the callers checked
        // `free() > 0`): it lies in our DMA memory and the device does not read it.
        unsafe { core::ptr::write_volatile(self.desc_ptr(i), d) };
        self.tail = (i + 1) % self.count;
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

    /// Queues the frame in a pool buffer (the device reads it by DMA; nobody may write the
    /// buffer until [`TxRing::reclaim_with`] reports the frame). Only for a ring over a pool
    /// ([`TxError::WrongBuffers`] otherwise). The frame is checked against the pool: the
    /// buffer must exist and `offset + len` lie inside it.
    pub fn push_pooled(&mut self, frame: PooledFrame) -> Result<(), TxError> {
        let TxBuffers::Pool { pool, .. } = &self.bufs else {
            return Err(TxError::WrongBuffers);
        };
        let Some(base) = pool.phys_of(frame.index) else {
            return Err(TxError::BadIndex(frame.index));
        };
        if frame.len == 0 {
            return Err(TxError::Empty);
        }
        let end = u64::from(frame.offset) + u64::from(frame.len);
        if end > self.buf_size as u64 {
            return Err(TxError::TooLong {
                len: end as usize,
                max: self.buf_size,
            });
        }
        if self.free() == 0 {
            return Err(TxError::Full);
        }
        let i = self.tail;
        if let TxBuffers::Pool { frames, .. } = &mut self.bufs {
            frames[i] = frame;
        }
        // `offset + len <= buf_size <= u16::MAX` (checked in `over_pool`).
        self.queue(i, base + u64::from(frame.offset), frame.len as u16);
        Ok(())
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
        self.reclaim_with(usize::MAX, |_| {})
    }

    /// [`TxRing::reclaim`] for at most `max` descriptors, calling `done` with each finished
    /// frame of a pool buffer (the buffer is free again for its owner).
    pub fn reclaim_with(&mut self, max: usize, mut done: impl FnMut(PooledFrame)) -> Sent {
        let mut sent = Sent::default();
        while self.clean != self.tail && (sent.frames as usize) < max {
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
            if let TxBuffers::Pool { frames, .. } = &self.bufs {
                done(frames[self.clean]);
            }
            self.clean = (self.clean + 1) % self.count;
        }
        sent
    }

    /// True when the oldest descriptor in flight is finished (one descriptor read): a
    /// [`TxRing::reclaim_with`] would find work.
    pub fn done_pending(&self) -> bool {
        if self.clean == self.tail {
            return false;
        }
        let p = self.desc_ptr(self.clean);
        // Safety: `clean < count`: the descriptor lies in our DMA memory.
        let status = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).status)) };
        status & tx_status::DD != 0
    }

    /// Gives up every descriptor in flight, calling `dropped` with each frame of a pool buffer,
    /// and returns how many there were. Call only with the transmitter stopped (before a
    /// [`TxRing::reset`]): the device must not read those buffers any more.
    pub fn abandon(&mut self, mut dropped: impl FnMut(PooledFrame)) -> usize {
        let n = self.in_flight();
        while self.clean != self.tail {
            if let TxBuffers::Pool { frames, .. } = &self.bufs {
                dropped(frames[self.clean]);
            }
            self.clean = (self.clean + 1) % self.count;
        }
        n
    }

    /// Checks a head value read from `TDH`: inside the ring, and between the oldest descriptor
    /// in flight and the tail the device was given.
    pub fn check_head(&self, head: u32) -> Result<usize, RingError> {
        let to = self.written_tail.unwrap_or(0);
        check_window(head, self.count, self.clean, to)
    }
}

#[cfg(test)]
mod tests;
