//! The kernel heap: a `linked_list_allocator` over a physically contiguous block, addressed
//! through the physical-memory mapping (so it needs no page-table changes of its own).

use linked_list_allocator::LockedHeap;

/// Size of the kernel heap.
pub const HEAP_BYTES: u64 = 16 * 1024 * 1024;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

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
            .lock()
            .init(virt.as_mut_ptr(), HEAP_BYTES as usize)
    };
}

/// Bytes of heap in use and free.
pub fn stats() -> (usize, usize) {
    let heap = ALLOCATOR.lock();
    (heap.used(), heap.free())
}
