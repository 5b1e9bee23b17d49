//! Turning a raw memory range into a channel region: `init`, `bump_epoch`, and the validated
//! mapping every endpoint holds.

use crate::error::RegionError;
use crate::layout::{
    HEADER_SIZE, Header, INITIAL_EPOCH, MAGIC, MAGIC_VERSION, PAGE_SIZE, Slot, VERSION, region_size,
};
use crate::sync::{Ordering, fence};

/// A validated view of a region: the header and a slot slice whose length is the capacity.
/// Everything in it is atomics, so the peer writing anything at any time is not undefined
/// behaviour, just garbage for the validation to catch.
pub(crate) struct Shared<'a> {
    pub(crate) header: &'a Header,
    slots: &'a [Slot],
    mask: u32,
}

impl<'a> Shared<'a> {
    /// Checks and maps an already initialised region.
    ///
    /// # Safety
    /// `ptr..ptr + len` must be valid for reads and writes for `'a` and be accessed by other
    /// parties only through this library (or as plain memory by a hostile peer).
    pub(crate) unsafe fn map(ptr: *mut u8, len: usize) -> Result<Self, RegionError> {
        check_range(ptr, len)?;
        // Safety: `ptr` is non-null, page aligned and `len >= HEADER_SIZE` (check_range), valid
        // for `'a` (our contract); every field of `Header` is an atomic, so any bit pattern the
        // peer left there is a valid value.
        let header = unsafe { &*ptr.cast::<Header>() };
        let word = header.control.magic_version.load(Ordering::Acquire);
        if (word >> 32) as u32 != MAGIC {
            return Err(RegionError::BadMagic { found: word });
        }
        if word as u32 != VERSION {
            return Err(RegionError::BadVersion { found: word as u32 });
        }
        let capacity = header.control.capacity.load(Ordering::Relaxed);
        let needed = region_size(capacity).ok_or(RegionError::BadCapacity { capacity })?;
        if len < needed {
            return Err(RegionError::TooSmall { needed, len });
        }
        // Safety: slot 0 starts HEADER_SIZE (a multiple of the page size) after a page-aligned
        // pointer, so it is aligned for `Slot`; `needed <= len` bytes are in the range, which
        // covers `capacity` slots; slots are atomics, so every bit pattern is valid.
        let slots = unsafe {
            core::slice::from_raw_parts(ptr.add(HEADER_SIZE).cast::<Slot>(), capacity as usize)
        };
        Ok(Self {
            header,
            slots,
            mask: capacity - 1,
        })
    }

    /// Number of slots.
    #[inline(always)]
    pub(crate) fn capacity(&self) -> u32 {
        self.mask + 1
    }

    /// The slot of `position`.
    #[inline(always)]
    pub(crate) fn slot(&self, position: u32) -> &'a Slot {
        &self.slots[(position & self.mask) as usize]
    }
}

/// Null and alignment checks shared by every entry point.
fn check_range(ptr: *mut u8, len: usize) -> Result<(), RegionError> {
    if ptr.is_null() {
        return Err(RegionError::Null);
    }
    if !(ptr as usize).is_multiple_of(PAGE_SIZE) {
        return Err(RegionError::Misaligned);
    }
    if len < HEADER_SIZE {
        return Err(RegionError::TooSmall {
            needed: HEADER_SIZE,
            len,
        });
    }
    Ok(())
}

/// Creates a channel of `capacity` slots in `ptr..ptr + len`: writes the header (epoch
/// [`crate::layout::INITIAL_EPOCH`], both positions 0) and zeroed slots, and publishes the
/// magic/version word last. `capacity` must be a power of two in `1..=MAX_CAPACITY`; see
/// [`region_size`] for the bytes needed.
///
/// # Safety
/// `ptr..ptr + len` must be valid for writes, and nobody may access it during the call (the
/// creator, normally the kernel or the process that owns the channel, calls this before either
/// end attaches).
pub unsafe fn init(ptr: *mut u8, len: usize, capacity: u32) -> Result<(), RegionError> {
    check_range(ptr, len)?;
    let needed = region_size(capacity).ok_or(RegionError::BadCapacity { capacity })?;
    if len < needed {
        return Err(RegionError::TooSmall { needed, len });
    }
    // Safety: the range is ours alone for the call and holds `needed` bytes (checked above);
    // `ptr` is page aligned, which satisfies the alignment of `Header` and of `Slot` (slot 0 is
    // HEADER_SIZE, a multiple of the page size, further on).
    let header = unsafe {
        // Zero the whole header page first so reserved bytes and padding are defined.
        ptr.write_bytes(0, HEADER_SIZE);
        let header = ptr.cast::<Header>();
        header.write(Header::new(INITIAL_EPOCH, capacity));
        let slots = ptr.add(HEADER_SIZE).cast::<Slot>();
        for i in 0..capacity as usize {
            slots.add(i).write(Slot::new());
        }
        &*header
    };
    // Publish: an endpoint that sees the magic (Acquire) sees the rest of the header.
    header
        .control
        .magic_version
        .store(MAGIC_VERSION, Ordering::Release);
    Ok(())
}

/// Advances the region's epoch by one and returns the new epoch. Called when one end restarts,
/// by the restarted end (or the reincarnation server on its behalf) **before** it attaches; the
/// survivor notices on its next operation ([`crate::SendError::EpochChanged`],
/// [`crate::RecvError::EpochChanged`]). A consumer asleep in `wait` is woken by the new
/// producer's first `send` (or at once by [`crate::Producer::notify_peer`]).
///
/// # Safety
/// `ptr..ptr + len` must be valid for reads and writes during the call and initialised by
/// [`init`] (a hostile peer may have changed it: that is detected, not undefined).
pub unsafe fn bump_epoch(ptr: *mut u8, len: usize) -> Result<u32, RegionError> {
    // Safety: forwarded from our caller; the mapping does not outlive this call.
    let shared = unsafe { Shared::map(ptr, len)? };
    Ok(bump(&shared))
}

/// Advances the epoch of a mapped region; returns the new epoch.
pub(crate) fn bump(shared: &Shared<'_>) -> u32 {
    let old = shared.header.control.epoch.fetch_add(1, Ordering::AcqRel);
    // Like a publish: either a consumer going to sleep sees the new epoch when it re-checks, or
    // whoever looks at its `sleeping` flag after this (the new producer) sees the flag set.
    fence(Ordering::SeqCst);
    old.wrapping_add(1)
}
