//! Physical frame bookkeeping: one bit per 4 KiB frame, set when the frame is in use.
//!
//! The kernel places the bitmap's storage in usable memory at boot, marks the usable regions of the
//! boot memory map free, and then allocates and frees frames through this type. Frees are checked:
//! freeing a frame that is not allocated is an error, not a silent corruption.

/// Size of a frame in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// Why a frame operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The frame number is beyond the end of the bitmap.
    OutOfRange(u64),
    /// The frame was already free.
    DoubleFree(u64),
}

/// A bitmap of frames `0..frames`.
pub struct FrameBitmap<'a> {
    words: &'a mut [u64],
    frames: u64,
    free: u64,
    /// Word index where the last search ended; searches start there.
    hint: usize,
    /// First word of the preferred range: frames below it (scarce low memory) are handed out by
    /// `alloc` and `alloc_contiguous` only when nothing above is left.
    floor_word: usize,
}

impl<'a> FrameBitmap<'a> {
    /// Number of `u64` words needed to track `frames` frames.
    pub const fn words_for(frames: u64) -> usize {
        frames.div_ceil(64) as usize
    }

    /// A bitmap over `frames` frames with every frame marked used. `words` must hold at least
    /// [`Self::words_for`]`(frames)` words; extra words are ignored.
    pub fn new(words: &'a mut [u64], frames: u64) -> Self {
        let n = Self::words_for(frames);
        assert!(words.len() >= n, "frame bitmap storage too small");
        let words = &mut words[..n];
        words.fill(u64::MAX);
        Self {
            words,
            frames,
            free: 0,
            hint: 0,
            floor_word: 0,
        }
    }

    /// Keeps frames below `frame` (rounded down to a multiple of 64) for `alloc_below` and for
    /// when memory runs out, e.g. the frames under 1 MiB that AP start-up needs.
    pub fn set_floor(&mut self, frame: u64) {
        self.floor_word = ((frame / 64) as usize).min(self.words.len());
        self.hint = self.hint.max(self.floor_word);
    }

    /// Number of frames tracked.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    fn is_used(&self, f: u64) -> bool {
        self.words[(f / 64) as usize] & (1 << (f % 64)) != 0
    }

    fn set(&mut self, f: u64, used: bool) {
        let w = &mut self.words[(f / 64) as usize];
        let bit = 1u64 << (f % 64);
        if used {
            if *w & bit == 0 {
                self.free -= 1;
            }
            *w |= bit;
        } else {
            if *w & bit != 0 {
                self.free += 1;
            }
            *w &= !bit;
        }
    }

    /// Marks frames `start..end` free (clipped to the bitmap).
    pub fn mark_free(&mut self, start: u64, end: u64) {
        for f in start..end.min(self.frames) {
            self.set(f, false);
        }
    }

    /// Marks frames `start..end` used (clipped to the bitmap).
    pub fn mark_used(&mut self, start: u64, end: u64) {
        for f in start..end.min(self.frames) {
            self.set(f, true);
        }
    }

    /// True when frame `f` is tracked and free.
    pub fn is_free(&self, f: u64) -> bool {
        f < self.frames && !self.is_used(f)
    }

    /// Allocates any free frame, returning its number.
    pub fn alloc(&mut self) -> Option<u64> {
        let n = self.words.len();
        let above = n - self.floor_word;
        // Preferred range first, starting at the hint; then the reserved low words.
        let order = (0..above)
            .map(|k| {
                self.floor_word + (self.hint.saturating_sub(self.floor_word) + k) % above.max(1)
            })
            .chain(0..self.floor_word);
        for i in order {
            let w = self.words[i];
            if w != u64::MAX {
                let f = i as u64 * 64 + (!w).trailing_zeros() as u64;
                if f >= self.frames {
                    continue;
                }
                self.set(f, true);
                self.hint = i;
                return Some(f);
            }
        }
        None
    }

    /// Allocates the lowest free frame whose number is below `limit` (e.g. for memory that must
    /// sit under 1 MiB or 4 GiB).
    pub fn alloc_below(&mut self, limit: u64) -> Option<u64> {
        (0..limit.min(self.frames))
            .find(|&f| !self.is_used(f))
            .inspect(|&f| self.set(f, true))
    }

    /// Allocates `count` contiguous frames whose first frame number is a multiple of `align`
    /// (in frames, at least 1). Returns the first frame.
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 {
            return None;
        }
        let align = align.max(1);
        let floor = (self.floor_word as u64 * 64).div_ceil(align) * align;
        self.find_run(count, align, floor)
            .or_else(|| self.find_run(count, align, 0))
    }

    fn find_run(&mut self, count: u64, align: u64, from: u64) -> Option<u64> {
        let mut start = from;
        while start + count <= self.frames {
            match (start..start + count).rev().find(|&f| self.is_used(f)) {
                None => {
                    for f in start..start + count {
                        self.set(f, true);
                    }
                    return Some(start);
                }
                Some(used) => start = (used + 1).div_ceil(align) * align,
            }
        }
        None
    }

    /// Frees frame `f`.
    pub fn free(&mut self, f: u64) -> Result<(), FrameError> {
        if f >= self.frames {
            return Err(FrameError::OutOfRange(f));
        }
        if !self.is_used(f) {
            return Err(FrameError::DoubleFree(f));
        }
        self.set(f, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn starts_full_then_frees_regions() {
        let mut store = vec![0u64; FrameBitmap::words_for(1000)];
        let mut b = FrameBitmap::new(&mut store, 1000);
        assert_eq!(b.free_frames(), 0);
        assert_eq!(b.alloc(), None);
        b.mark_free(10, 20);
        b.mark_free(990, 2000); // clipped
        assert_eq!(b.free_frames(), 20);
        let mut got: Vec<u64> = (0..20).map(|_| b.alloc().unwrap()).collect();
        got.sort();
        assert_eq!(got, (10..20).chain(990..1000).collect::<Vec<_>>());
        assert_eq!(b.alloc(), None);
        assert_eq!(b.free_frames(), 0);
    }

    #[test]
    fn floor_keeps_low_frames_for_last() {
        let mut store = vec![0u64; FrameBitmap::words_for(1024)];
        let mut b = FrameBitmap::new(&mut store, 1024);
        b.mark_free(1, 1024);
        b.set_floor(256);
        for _ in 0..(1024 - 256) {
            assert!(b.alloc().unwrap() >= 256);
        }
        assert!(
            b.alloc().unwrap() < 256,
            "falls back to low frames when the rest is gone"
        );
        assert_eq!(b.alloc_below(256), Some(2));
        let mut store = vec![0u64; FrameBitmap::words_for(1024)];
        let mut b = FrameBitmap::new(&mut store, 1024);
        b.mark_free(1, 1024);
        b.set_floor(256);
        assert_eq!(b.alloc_contiguous(16, 1), Some(256));
        assert_eq!(b.alloc_contiguous(700, 1), Some(272));
        assert_eq!(
            b.alloc_contiguous(200, 1),
            Some(1),
            "falls back below the floor"
        );
    }

    #[test]
    fn free_checks() {
        let mut store = vec![0u64; 2];
        let mut b = FrameBitmap::new(&mut store, 100);
        b.mark_free(0, 100);
        let f = b.alloc().unwrap();
        assert_eq!(b.free(f), Ok(()));
        assert_eq!(b.free(f), Err(FrameError::DoubleFree(f)));
        assert_eq!(b.free(100), Err(FrameError::OutOfRange(100)));
        assert_eq!(b.free_frames(), 100);
    }

    #[test]
    fn below_and_contiguous() {
        let mut store = vec![0u64; FrameBitmap::words_for(4096)];
        let mut b = FrameBitmap::new(&mut store, 4096);
        b.mark_free(1, 4096);
        b.mark_used(300, 301);
        assert_eq!(b.alloc_below(256), Some(1));
        assert_eq!(b.alloc_below(1), None);
        let run = b.alloc_contiguous(64, 64).unwrap();
        assert_eq!(run % 64, 0);
        assert_eq!(run, 64);
        // A run of 50 cannot straddle the used frame 300.
        let run = b.alloc_contiguous(50, 1).unwrap();
        assert!(run + 50 <= 300 || run > 300, "run {run}");
        assert_eq!(b.alloc_contiguous(0, 1), None);
        assert_eq!(b.alloc_contiguous(5000, 1), None);
        for f in 64..128 {
            b.free(f).unwrap();
        }
    }

    #[test]
    fn random_alloc_free_keeps_count() {
        let mut store = vec![0u64; FrameBitmap::words_for(777)];
        let mut b = FrameBitmap::new(&mut store, 777);
        b.mark_free(0, 777);
        let mut held = Vec::new();
        let mut seed = 99u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !seed.is_multiple_of(3) {
                if let Some(f) = b.alloc() {
                    assert!(!held.contains(&f));
                    held.push(f);
                }
            } else if !held.is_empty() {
                let f = held.swap_remove((seed as usize / 3) % held.len());
                b.free(f).unwrap();
            }
            assert_eq!(b.free_frames() + held.len() as u64, 777);
        }
    }
}
