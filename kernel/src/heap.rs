//! The kernel heap: a `linked_list_allocator` over a physically contiguous block, addressed
//! through the physical-memory mapping (so it needs no page-table changes of its own).

use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::LockedHeap;

/// Size of the kernel heap.
pub const HEAP_BYTES: u64 = 16 * 1024 * 1024;

/// The heap behind a lock that holds interrupts off, so an interrupt handler that allocates can
/// never spin on a lock its own CPU holds.
struct KernelHeap(LockedHeap);

// Safety: delegates to a sound allocator; only adds interrupt masking around it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Safety: forwarded with the caller's guarantees.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe { self.0.alloc(layout) })
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: forwarded with the caller's guarantees.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe {
            self.0.dealloc(ptr, layout)
        })
    }
}

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap(LockedHeap::empty());

pub fn init() {
    let phys = crate::memory::alloc_contiguous(HEAP_BYTES / 4096).unwrap_or_else(|| {
        panic!(
            "no {} MiB of contiguous memory for the kernel heap",
            HEAP_BYTES >> 20
        )
    });
    let virt = crate::memory::phys_to_virt(phys.as_u64());
    // Safety: the block was just taken from the frame allocator, so the heap owns it alone for the
    // kernel's lifetime; it is mapped writable at the physical offset.
    unsafe {
        ALLOCATOR
            .0
            .lock()
            .init(virt.as_mut_ptr(), HEAP_BYTES as usize)
    };
}

/// Bytes of heap in use and free.
pub fn stats() -> (usize, usize) {
    let heap = ALLOCATOR.0.lock();
    (heap.used(), heap.free())
}
