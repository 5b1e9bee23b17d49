//! Host-side helpers shared by the tests and the benchmark: an aligned heap region standing in
//! for memory the kernel maps into two processes, and a condition-variable `Waiter`.
#![allow(dead_code)]

use libchan::{Consumer, Message, Producer, Waiter};
use std::alloc::{Layout, alloc_zeroed, dealloc};

/// A zeroed, page-aligned heap allocation, optionally initialised as a channel.
pub struct HostRegion {
    ptr: *mut u8,
    layout: Layout,
}

// Safety: the allocation is owned by the `HostRegion` and only reached through libchan's atomics
// or the explicit raw helpers below, whose users uphold the same rules as two processes would.
unsafe impl Send for HostRegion {}
// Safety: as above; sharing `&HostRegion` between threads only shares the address.
unsafe impl Sync for HostRegion {}

impl HostRegion {
    /// `len` zeroed bytes aligned to a page, not initialised as a channel.
    pub fn zeroed(len: usize) -> Self {
        let layout =
            Layout::from_size_align(len.max(1), libchan::layout::PAGE_SIZE).expect("valid layout");
        // Safety: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        Self { ptr, layout }
    }

    /// A region initialised as a channel of `capacity` slots.
    pub fn channel(capacity: u32) -> Self {
        let len = libchan::region_size(capacity).expect("valid capacity");
        let region = Self::zeroed(len);
        // Safety: the range is ours, valid and untouched by anyone else.
        unsafe { libchan::init(region.ptr, len, capacity) }.expect("init");
        region
    }

    /// Start of the region.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length of the region.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Attaches both ends; the borrow keeps any other attach away while they live.
    pub fn split<P: Waiter, C: Waiter>(
        &mut self,
        producer_waiter: P,
        consumer_waiter: C,
    ) -> (Producer<'_, P>, Consumer<'_, C>) {
        // Safety: `&mut self` guarantees these are the only endpoints, and the allocation
        // outlives the returned handles (they borrow `self`).
        unsafe {
            (
                Producer::attach(self.ptr, self.len(), producer_waiter).expect("attach producer"),
                Consumer::attach(self.ptr, self.len(), consumer_waiter).expect("attach consumer"),
            )
        }
    }

    /// Attaches both ends through a shared borrow, so that the test can keep scribbling on the
    /// region while they live.
    ///
    /// # Safety
    /// No other endpoint of the region may be alive while these are.
    pub unsafe fn ends<P: Waiter, C: Waiter>(
        &self,
        producer_waiter: P,
        consumer_waiter: C,
    ) -> (Producer<'_, P>, Consumer<'_, C>) {
        // Safety: the allocation outlives the handles (they borrow `self`); uniqueness is our
        // caller's promise.
        unsafe {
            (
                Producer::attach(self.ptr, self.len(), producer_waiter).expect("attach producer"),
                Consumer::attach(self.ptr, self.len(), consumer_waiter).expect("attach consumer"),
            )
        }
    }

    /// Overwrites bytes at `offset` (clamped to the region), as a hostile peer would.
    pub fn scribble(&self, offset: usize, bytes: &[u8]) {
        let len = self.len();
        for (i, b) in bytes.iter().enumerate() {
            let at = offset.wrapping_add(i) % len;
            // Safety: `at < len`, inside the allocation; single-byte volatile writes may race
            // only with libchan's atomic accesses from the same thread (tests never scribble
            // while another thread runs).
            unsafe { self.ptr.add(at).write_volatile(*b) };
        }
    }

    /// Writes a native-endian `u64` at `offset` (must be in bounds).
    pub fn write_u64(&self, offset: usize, value: u64) {
        self.scribble(offset, &value.to_le_bytes());
    }

    /// Reads a `u64` at `offset` (must be in bounds).
    pub fn read_u64(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        assert!(offset + 8 <= self.len(), "read past the region");
        for (i, byte) in b.iter_mut().enumerate() {
            // Safety: in bounds (asserted above); tests read while no other thread writes.
            *byte = unsafe { self.ptr.add(offset + i).read_volatile() };
        }
        u64::from_le_bytes(b)
    }
}

impl Drop for HostRegion {
    fn drop(&mut self) {
        // Safety: allocated in `zeroed` with this layout; every handle borrowing it is gone.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// A binary semaphore: `notify` sets a flag and wakes, `wait` sleeps until the flag is set and
/// clears it. A `notify` before the `wait` is remembered, as the `Waiter` contract requires.
#[cfg(not(loom))]
#[derive(Default)]
pub struct Event {
    flag: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

#[cfg(not(loom))]
impl Waiter for Event {
    fn wait(&self, timeout_ns: Option<u64>) {
        let mut flag = self.flag.lock().unwrap_or_else(|e| e.into_inner());
        match timeout_ns {
            None => {
                while !*flag {
                    flag = self.cv.wait(flag).unwrap_or_else(|e| e.into_inner());
                }
            }
            Some(ns) => {
                if !*flag {
                    let d = std::time::Duration::from_nanos(ns);
                    flag = self
                        .cv
                        .wait_timeout(flag, d)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        *flag = false;
    }

    fn notify(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_one();
    }
}

/// A process dying with an endpoint: no destructor runs, the shared indices stay as they were.
pub fn crash<T>(end: T) {
    std::mem::forget(end);
}

/// A message whose every word derives from `id`, so the receiver can check it was not torn.
pub fn stamped(id: u64) -> Message {
    let mut m = Message::new(id as u32);
    m.len = (id >> 32) as u32;
    for (i, w) in m.payload.iter_mut().enumerate() {
        *w = id
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(i as u32 * 9)
            ^ i as u64;
    }
    m
}

/// The id of a message made by [`stamped`], or `None` if any word disagrees.
pub fn unstamp(m: &Message) -> Option<u64> {
    let id = m.tag as u64 | (m.len as u64) << 32;
    (stamped(id) == *m).then_some(id)
}
