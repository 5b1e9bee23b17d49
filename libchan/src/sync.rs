//! The only place that names the atomics: `core` normally, `loom` under `--cfg loom`.
//!
//! Everything else in the crate imports its atomics, fences and slot cells from here, so the
//! same protocol code runs on the host, on the target, and inside loom's model checker.

#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Number of 64-bit words in one slot.
pub(crate) const SLOT_WORDS: usize = 8;

/// The storage of one 64-byte ring slot.
///
/// On real memory a slot is eight `AtomicU64` accessed with `Relaxed` ordering: this compiles to
/// plain moves on x86_64, and it keeps a misbehaving peer that scribbles over a slot while we copy
/// it out from being undefined behaviour (we just copy garbage, which the caller validates). The
/// ordering between slot contents and indices comes from the Release/Acquire index accesses.
#[cfg(not(loom))]
#[repr(C, align(64))]
pub(crate) struct SlotCell {
    words: [AtomicU64; SLOT_WORDS],
}

#[cfg(not(loom))]
impl SlotCell {
    /// A zeroed slot.
    pub(crate) const fn new() -> Self {
        Self {
            words: [const { AtomicU64::new(0) }; SLOT_WORDS],
        }
    }

    /// Copies `words` into the slot.
    #[inline(always)]
    pub(crate) fn write(&self, words: &[u64; SLOT_WORDS]) {
        for (cell, word) in self.words.iter().zip(words) {
            cell.store(*word, Ordering::Relaxed);
        }
    }

    /// Copies the slot out.
    #[inline(always)]
    pub(crate) fn read(&self) -> [u64; SLOT_WORDS] {
        let mut out = [0u64; SLOT_WORDS];
        for (word, cell) in out.iter_mut().zip(&self.words) {
            *word = cell.load(Ordering::Relaxed);
        }
        out
    }
}

/// Under loom a slot is one `loom::cell::UnsafeCell`: loom then reports any slot access that is
/// not ordered by the index protocol as a data race, which is exactly what the models check.
#[cfg(loom)]
#[repr(C, align(64))]
pub(crate) struct SlotCell {
    cell: loom::cell::UnsafeCell<[u64; SLOT_WORDS]>,
}

// Safety: every access goes through loom's cell tracking, which fails the model on a racy access;
// sharing the cell between the two model threads is the point of the model.
#[cfg(loom)]
unsafe impl Sync for SlotCell {}

#[cfg(loom)]
impl SlotCell {
    /// A zeroed slot.
    pub(crate) fn new() -> Self {
        Self {
            cell: loom::cell::UnsafeCell::new([0; SLOT_WORDS]),
        }
    }

    /// Copies `words` into the slot.
    pub(crate) fn write(&self, words: &[u64; SLOT_WORDS]) {
        // Safety: loom checks that this write is ordered against every other access to the cell.
        self.cell.with_mut(|p| unsafe { *p = *words });
    }

    /// Copies the slot out.
    pub(crate) fn read(&self) -> [u64; SLOT_WORDS] {
        // Safety: loom checks that this read is ordered against every other access to the cell.
        self.cell.with(|p| unsafe { *p })
    }
}
