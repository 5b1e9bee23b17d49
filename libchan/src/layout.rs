//! The shared-memory layout of a channel region, fixed by `#[repr(C)]` and asserted at compile
//! time.
//!
//! ```text
//! offset  size  line            contents (all little-endian, written only with atomics)
//!      0    64  control         magic_version: u64, epoch: u32, capacity: u32
//!     64    64  producer        tail: u64  = epoch << 32 | producer position   (producer writes)
//!    128    64  consumer        head: u64  = epoch << 32 | consumer position   (consumer writes)
//!    192    64  wake            sleeping: u32  (consumer sets, producer clears)
//!    256  3840  (reserved, zero)
//!   4096  64*N  slots[N]        64-byte messages; slot of position p is p & (N - 1)
//! ```
//!
//! There are no pointers in the region, only positions (`u32`, wrapping) and the epoch tag. The
//! two index words sit on cache lines of their own so that the producer and the consumer never
//! write the same line on the fast path.

use crate::sync::{AtomicU32, AtomicU64, SlotCell};
use core::mem::size_of;

/// `"AXCH"`: the high half of the magic/version word.
pub const MAGIC: u32 = 0x4158_4348;
/// Layout version: the low half of the magic/version word. Bump on any layout change.
pub const VERSION: u32 = 1;
/// The full magic/version word found at offset 0 of an initialised region.
pub const MAGIC_VERSION: u64 = ((MAGIC as u64) << 32) | VERSION as u64;
/// Regions are page aligned.
pub const PAGE_SIZE: usize = 4096;
/// Size of one cache line, the unit of layout in the header.
pub const CACHE_LINE: usize = 64;
/// Size of one ring slot, which is also the size of a [`crate::Message`].
pub const SLOT_SIZE: usize = 64;
/// Largest capacity (in slots) a region may declare.
pub const MAX_CAPACITY: u32 = 1 << 20;
/// Epoch written by [`crate::init`].
pub const INITIAL_EPOCH: u32 = 1;

/// Byte offset of the magic/version word.
pub const MAGIC_OFFSET: usize = 0;
/// Byte offset of the epoch word (`u32`).
pub const EPOCH_OFFSET: usize = 8;
/// Byte offset of the capacity word (`u32`).
pub const CAPACITY_OFFSET: usize = 12;
/// Byte offset of the producer's tagged index (`u64`).
pub const TAIL_OFFSET: usize = 64;
/// Byte offset of the consumer's tagged index (`u64`).
pub const HEAD_OFFSET: usize = 128;
/// Byte offset of the consumer's `sleeping` flag (`u32`).
pub const SLEEPING_OFFSET: usize = 192;
/// Byte offset of slot 0.
pub const SLOTS_OFFSET: usize = HEADER_SIZE;

/// First cache line: identity and geometry of the region, written once by `init` (the epoch
/// also by `bump_epoch`).
#[repr(C, align(64))]
pub(crate) struct ControlLine {
    pub(crate) magic_version: AtomicU64,
    pub(crate) epoch: AtomicU32,
    pub(crate) capacity: AtomicU32,
}

/// A cache line holding one tagged index word.
#[repr(C, align(64))]
pub(crate) struct IndexLine {
    pub(crate) index: AtomicU64,
}

/// The cache line of the consumer's sleep flag: written rarely, read by the producer after each
/// publish, so it stays shared in both caches under load.
#[repr(C, align(64))]
pub(crate) struct WakeLine {
    pub(crate) sleeping: AtomicU32,
}

/// The first page of a region.
#[repr(C, align(4096))]
pub(crate) struct Header {
    pub(crate) control: ControlLine,
    pub(crate) producer: IndexLine,
    pub(crate) consumer: IndexLine,
    pub(crate) wake: WakeLine,
}

impl Header {
    /// A header with a zero magic word (not yet valid), the given epoch and capacity, and both
    /// positions at 0 in that epoch.
    pub(crate) fn new(epoch: u32, capacity: u32) -> Self {
        let start = tag(epoch, 0);
        Self {
            control: ControlLine {
                magic_version: AtomicU64::new(0),
                epoch: AtomicU32::new(epoch),
                capacity: AtomicU32::new(capacity),
            },
            producer: IndexLine {
                index: AtomicU64::new(start),
            },
            consumer: IndexLine {
                index: AtomicU64::new(start),
            },
            wake: WakeLine {
                sleeping: AtomicU32::new(0),
            },
        }
    }
}

/// Size of the header in bytes: one page on real memory (loom's atomics are larger, so the
/// header grows under `--cfg loom`, always by whole pages because of the alignment).
pub const HEADER_SIZE: usize = size_of::<Header>();

/// One ring slot.
pub(crate) type Slot = SlotCell;

/// Packs an epoch and a position into an index word.
#[inline(always)]
pub(crate) const fn tag(epoch: u32, position: u32) -> u64 {
    ((epoch as u64) << 32) | position as u64
}

/// Splits an index word into `(epoch, position)`.
#[inline(always)]
pub(crate) const fn untag(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// Bytes a region of `capacity` slots needs, or `None` if `capacity` is not a power of two in
/// `1..=MAX_CAPACITY`.
pub const fn region_size(capacity: u32) -> Option<usize> {
    if capacity == 0 || capacity > MAX_CAPACITY || !capacity.is_power_of_two() {
        return None;
    }
    Some(HEADER_SIZE + capacity as usize * size_of::<Slot>())
}

// The layout is the ABI between two processes: pin it down. Under loom the atomics are loom's
// own (bigger) types, so only the real layout is asserted.
#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(size_of::<Header>() == PAGE_SIZE);
    assert!(align_of::<Header>() == PAGE_SIZE);
    assert!(size_of::<ControlLine>() == CACHE_LINE);
    assert!(size_of::<IndexLine>() == CACHE_LINE);
    assert!(size_of::<WakeLine>() == CACHE_LINE);
    assert!(offset_of!(Header, control) + offset_of!(ControlLine, magic_version) == MAGIC_OFFSET);
    assert!(offset_of!(Header, control) + offset_of!(ControlLine, epoch) == EPOCH_OFFSET);
    assert!(offset_of!(Header, control) + offset_of!(ControlLine, capacity) == CAPACITY_OFFSET);
    assert!(offset_of!(Header, producer) + offset_of!(IndexLine, index) == TAIL_OFFSET);
    assert!(offset_of!(Header, consumer) + offset_of!(IndexLine, index) == HEAD_OFFSET);
    assert!(offset_of!(Header, wake) + offset_of!(WakeLine, sleeping) == SLEEPING_OFFSET);
    // Producer and consumer indices never share a cache line, nor share one with anything else.
    assert!(TAIL_OFFSET / CACHE_LINE != HEAD_OFFSET / CACHE_LINE);
    assert!(SLEEPING_OFFSET / CACHE_LINE != HEAD_OFFSET / CACHE_LINE);
    assert!(SLEEPING_OFFSET / CACHE_LINE != TAIL_OFFSET / CACHE_LINE);
    assert!(size_of::<Slot>() == SLOT_SIZE);
    assert!(align_of::<Slot>() == CACHE_LINE);
    assert!(SLOTS_OFFSET.is_multiple_of(PAGE_SIZE));
    assert!(size_of::<crate::Message>() == SLOT_SIZE);
};

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn index_words_pack_epoch_and_position() {
        assert_eq!(tag(7, 9), 0x0000_0007_0000_0009);
        assert_eq!(untag(tag(u32::MAX, 0xDEAD_BEEF)), (u32::MAX, 0xDEAD_BEEF));
    }

    #[test]
    fn region_size_accepts_only_powers_of_two() {
        assert_eq!(region_size(1), Some(PAGE_SIZE + SLOT_SIZE));
        assert_eq!(region_size(64), Some(PAGE_SIZE + 64 * SLOT_SIZE));
        assert_eq!(region_size(MAX_CAPACITY), Some(PAGE_SIZE + (1 << 26)));
        for bad in [0, 3, 100, MAX_CAPACITY * 2, u32::MAX] {
            assert_eq!(region_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn magic_spells_axch() {
        assert_eq!(&MAGIC.to_be_bytes(), b"AXCH");
        assert_eq!(MAGIC_VERSION >> 32, MAGIC as u64);
    }
}
