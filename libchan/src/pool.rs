//! Buffer pools: regions of fixed-size buffers shared along the packet path and named by
//! [`PoolDescriptor`]s. Every descriptor that came through shared memory is validated here
//! before it is followed; a bad one is refused, counted and never touched.

use crate::counters::Counters;
use crate::error::{PoolError, PoolSetupError};
use crate::message::PoolDescriptor;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// Most buffers a [`BufferPool`] tracks (its lent-out bitmap is inline: no allocation).
pub const MAX_POOL_BUFFERS: usize = 8192;
const BITMAP_WORDS: usize = MAX_POOL_BUFFERS / 64;

/// One side's view of a pool: where it is mapped and its geometry, both from trusted local
/// configuration (never from shared memory). Any process that maps the pool can validate
/// descriptors with it; only the owner allocates and frees (see [`BufferPool`]).
pub struct PoolView<'a> {
    id: u16,
    base: NonNull<u8>,
    buffer_size: u32,
    count: u32,
    counters: Counters,
    _memory: PhantomData<&'a UnsafeCell<[u8]>>,
}

// Safety: a `PoolView` only holds the address of memory that stays mapped for `'a` (the
// contract of `PoolView::new`); nothing in it is tied to the creating thread.
unsafe impl Send for PoolView<'_> {}

impl<'a> PoolView<'a> {
    /// A view of pool `id`: `len / buffer_size` buffers of `buffer_size` bytes from `base`
    /// (a trailing partial buffer is ignored).
    ///
    /// # Safety
    /// `base..base + len` must stay valid for reads and writes for `'a`. The peer may write
    /// the buffers at any time; the bytes read are then garbage but never out of bounds.
    pub unsafe fn new(
        id: u16,
        base: *mut u8,
        len: usize,
        buffer_size: u32,
    ) -> Result<Self, PoolSetupError> {
        let base = NonNull::new(base).ok_or(PoolSetupError::Null)?;
        if buffer_size == 0 {
            return Err(PoolSetupError::ZeroBufferSize);
        }
        let count = len / buffer_size as usize;
        if count == 0 {
            return Err(PoolSetupError::Empty);
        }
        let count = u32::try_from(count).map_err(|_| PoolSetupError::TooManyBuffers { count })?;
        Ok(Self {
            id,
            base,
            buffer_size,
            count,
            counters: Counters::default(),
            _memory: PhantomData,
        })
    }

    /// Validates `desc` and returns the bytes it names. A refusal is counted in
    /// [`PoolView::counters`].
    pub fn check(&mut self, desc: PoolDescriptor) -> Result<BufferRef<'a>, PoolError> {
        match self.validate(desc) {
            Ok(()) => {}
            Err(e) => {
                self.count_error(&e);
                return Err(e);
            }
        }
        let start = desc.index as usize * self.buffer_size as usize + desc.offset as usize;
        // Safety: `validate` checked `index < count` and `offset + len <= buffer_size`, so
        // `start + len <= count * buffer_size <= len` of the range given to `new`, which is
        // valid for `'a`; `start` is in bounds, so the pointer is non-null.
        let ptr = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(start)) };
        Ok(BufferRef {
            ptr,
            len: desc.len as usize,
            _memory: PhantomData,
        })
    }

    /// The checks of [`PoolView::check`], without counting.
    pub fn validate(&self, desc: PoolDescriptor) -> Result<(), PoolError> {
        if desc.pool != self.id {
            return Err(PoolError::WrongPool {
                expected: self.id,
                found: desc.pool,
            });
        }
        if desc.index >= self.count {
            return Err(PoolError::IndexOutOfRange {
                index: desc.index,
                count: self.count,
            });
        }
        if desc.offset as u64 + desc.len as u64 > self.buffer_size as u64 {
            return Err(PoolError::RangeOutOfBounds {
                offset: desc.offset,
                len: desc.len,
                buffer_size: self.buffer_size,
            });
        }
        Ok(())
    }

    fn count_error(&mut self, e: &PoolError) {
        let c = &mut self.counters;
        match e {
            PoolError::WrongPool { .. } => c.wrong_pool += 1,
            PoolError::IndexOutOfRange { .. } => c.bad_index += 1,
            PoolError::RangeOutOfBounds { .. } => c.bad_range += 1,
            PoolError::NotAllocated { .. } => c.double_free += 1,
        }
    }

    /// The descriptor of all of buffer `index`, or `None` if there is no such buffer.
    pub fn whole(&self, index: u32) -> Option<PoolDescriptor> {
        (index < self.count).then_some(PoolDescriptor {
            pool: self.id,
            index,
            offset: 0,
            len: self.buffer_size,
        })
    }

    /// Pool id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Size of every buffer.
    pub fn buffer_size(&self) -> u32 {
        self.buffer_size
    }

    /// Number of buffers.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// This view's counters (descriptors refused).
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

/// Bytes of a pool buffer named by a validated descriptor, alive as long as the mapping (`'a`).
///
/// The copy helpers are safe: the range is in bounds, and a peer that breaks the ownership
/// protocol by writing the buffer concurrently can only make us copy garbage (it is another
/// process, outside our memory model, and the memory is never unmapped while `'a` lasts).
#[derive(Debug)]
pub struct BufferRef<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _memory: PhantomData<&'a UnsafeCell<[u8]>>,
}

impl<'a> BufferRef<'a> {
    /// Start of the bytes.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the first `min(len, dst.len())` bytes into `dst`; returns how many.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = self.len.min(dst.len());
        // Safety: `n` bytes from `ptr` are in the validated buffer, valid for `'a`; `dst` is a
        // distinct local slice of at least `n` bytes, so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), dst.as_mut_ptr(), n) };
        n
    }

    /// Copies `min(len, src.len())` bytes from `src` into the buffer; returns how many.
    pub fn copy_from(&self, src: &[u8]) -> usize {
        let n = self.len.min(src.len());
        // Safety: as in `copy_to`, with the roles of the two ranges swapped.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr(), n) };
        n
    }

    /// The bytes as a slice.
    ///
    /// # Safety
    /// Nobody (in particular not the peer) may write these bytes while the slice is alive: the
    /// caller must currently own the buffer under the pool's protocol.
    pub unsafe fn as_slice(&self) -> &'a [u8] {
        // Safety: in bounds and valid for `'a` (validated); no writer by our caller's contract.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes as a mutable slice.
    ///
    /// # Safety
    /// Nobody else (in particular not the peer) may read or write these bytes while the slice
    /// is alive, and no other slice of them may exist: the caller must own the buffer.
    pub unsafe fn as_mut_slice(&mut self) -> &'a mut [u8] {
        // Safety: in bounds and valid for `'a` (validated); exclusive by our caller's contract.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// The owner's side of a pool: allocates buffers, lends them out by descriptor, and takes them
/// back, refusing (and counting) any descriptor for a buffer that is not lent out.
///
/// The lent-out bitmap is private memory of the owner, never shared: the peer cannot forge it.
pub struct BufferPool<'a> {
    view: PoolView<'a>,
    lent: [u64; BITMAP_WORDS],
    in_use: u32,
    /// Bitmap word where the next search starts.
    hint: usize,
}

impl<'a> BufferPool<'a> {
    /// Takes ownership of `view`; every buffer starts free.
    pub fn new(view: PoolView<'a>) -> Result<Self, PoolSetupError> {
        if view.count as usize > MAX_POOL_BUFFERS {
            return Err(PoolSetupError::TooManyBuffers {
                count: view.count as usize,
            });
        }
        Ok(Self {
            view,
            lent: [0; BITMAP_WORDS],
            in_use: 0,
            hint: 0,
        })
    }

    /// Takes a free buffer and marks it lent out; returns a descriptor of the whole buffer
    /// (narrow `offset`/`len` to the data before sending it), or `None` if all are in use.
    pub fn alloc(&mut self) -> Option<PoolDescriptor> {
        let words = (self.view.count as usize).div_ceil(64);
        for step in 0..words {
            let w = (self.hint + step) % words;
            let valid = if w == words - 1 && !self.view.count.is_multiple_of(64) {
                (1u64 << (self.view.count % 64)) - 1
            } else {
                u64::MAX
            };
            let free = !self.lent[w] & valid;
            if free != 0 {
                let bit = free.trailing_zeros();
                self.lent[w] |= 1 << bit;
                self.in_use += 1;
                self.hint = w;
                return self.view.whole(w as u32 * 64 + bit);
            }
        }
        None
    }

    /// Takes back the buffer `desc` names (typically read from the reverse ring). Validates it
    /// like [`PoolView::check`], then refuses it with [`PoolError::NotAllocated`] if the buffer is
    /// not lent out (double free or forgery). Every refusal is counted.
    pub fn free(&mut self, desc: PoolDescriptor) -> Result<(), PoolError> {
        self.view.check(desc)?;
        let (w, bit) = (desc.index as usize / 64, desc.index % 64);
        if self.lent[w] & (1 << bit) == 0 {
            let e = PoolError::NotAllocated { index: desc.index };
            self.view.count_error(&e);
            return Err(e);
        }
        self.lent[w] &= !(1 << bit);
        self.in_use -= 1;
        Ok(())
    }

    /// Validates `desc` and returns its bytes (to fill a buffer before lending it).
    pub fn buffer(&mut self, desc: PoolDescriptor) -> Result<BufferRef<'a>, PoolError> {
        self.view.check(desc)
    }

    /// Whether buffer `index` is lent out.
    pub fn is_lent(&self, index: u32) -> bool {
        index < self.view.count && self.lent[index as usize / 64] & (1 << (index % 64)) != 0
    }

    /// Number of buffers lent out.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// The underlying view.
    pub fn view(&self) -> &PoolView<'a> {
        &self.view
    }

    /// This pool's counters (descriptors refused, double frees).
    pub fn counters(&self) -> Counters {
        self.view.counters
    }
}
