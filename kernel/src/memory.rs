//! Physical and virtual memory: the frame bitmap built from the boot memory map, the kernel's
//! 4-level page table (reached through the bootloader's physical-memory mapping), and a window of
//! kernel virtual space for stacks with guard pages and for device registers.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicU64, Ordering};
use klib::frames::{FRAME_SIZE, FrameBitmap, FrameError};
use spin::{Mutex, Once};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
    Translate,
};
use x86_64::{PhysAddr, VirtAddr};

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);
static FRAMES: Once<Mutex<FrameBitmap<'static>>> = Once::new();
static USABLE_BYTES: AtomicU64 = AtomicU64::new(0);
/// End of the physical range the bootloader mapped (all memory-map regions, and at least 4 GiB).
static PHYS_MAPPED_END: AtomicU64 = AtomicU64::new(0);
static KERNEL_PT: Once<Mutex<OffsetPageTable<'static>>> = Once::new();
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);
/// Next free address of the kernel window (one PML4 slot claimed at boot).
static WINDOW_NEXT: AtomicU64 = AtomicU64::new(0);
static WINDOW_END: AtomicU64 = AtomicU64::new(0);

/// The kernel virtual address at which physical address `phys` is mapped.
pub fn phys_to_virt(phys: u64) -> VirtAddr {
    VirtAddr::new(PHYS_OFFSET.load(Ordering::Relaxed) + phys)
}

pub fn phys_mapped_end() -> u64 {
    PHYS_MAPPED_END.load(Ordering::Relaxed)
}

pub fn usable_bytes() -> u64 {
    USABLE_BYTES.load(Ordering::Relaxed)
}

pub fn init(phys_offset: u64, regions: &MemoryRegions) {
    PHYS_OFFSET.store(phys_offset, Ordering::Relaxed);
    let mapped = regions
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or(0)
        .max(1 << 32);
    PHYS_MAPPED_END.store(mapped, Ordering::Relaxed);
    let top = regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .map(|r| r.end)
        .max()
        .unwrap_or_else(|| panic!("boot memory map has no usable memory"));
    let frames = top.div_ceil(FRAME_SIZE);
    let words = FrameBitmap::words_for(frames);
    let bitmap_bytes = (words * 8) as u64;
    // Place the bitmap at the start of the first usable region large enough to hold it.
    let home = regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable && r.start >= 0x10_0000)
        .find(|r| r.end - r.start >= bitmap_bytes + FRAME_SIZE)
        .unwrap_or_else(|| {
            panic!("no usable region can hold the {bitmap_bytes}-byte frame bitmap")
        });
    let start = home.start.next_multiple_of(FRAME_SIZE);
    // Safety: `start..start+bitmap_bytes` is usable RAM that nothing else owns yet (we mark it used
    // below before any allocation), mapped by the bootloader at the physical-memory offset.
    let storage =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(start).as_mut_ptr::<u64>(), words) };
    let mut bitmap = FrameBitmap::new(storage, frames);
    for r in regions.iter() {
        log::debug!("memory {:#012x}..{:#012x} {:?}", r.start, r.end, r.kind);
    }
    let mut usable = 0;
    for r in regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
    {
        let first = r.start.div_ceil(FRAME_SIZE);
        let last = r.end / FRAME_SIZE;
        if last > first {
            bitmap.mark_free(first, last);
            usable += (last - first) * FRAME_SIZE;
        }
    }
    bitmap.mark_used(
        start / FRAME_SIZE,
        (start + bitmap_bytes).div_ceil(FRAME_SIZE),
    );
    // Frame 0 holds the real-mode interrupt vectors and is never handed out.
    bitmap.mark_used(0, 1);
    // Memory below 1 MiB is scarce and needed for AP start-up: hand it out last.
    bitmap.set_floor(0x10_0000 / FRAME_SIZE);
    USABLE_BYTES.store(usable, Ordering::Relaxed);
    FRAMES.call_once(|| Mutex::new(bitmap));

    let (pml4_frame, _) = Cr3::read();
    KERNEL_PML4.store(pml4_frame.start_address().as_u64(), Ordering::Relaxed);
    // Safety: CR3 points at the active level-4 table, mapped at the physical offset; from here on
    // all changes to it go through KERNEL_PT's lock.
    let pml4 = unsafe {
        &mut *phys_to_virt(pml4_frame.start_address().as_u64()).as_mut_ptr::<PageTable>()
    };
    // Claim an unused upper-half PML4 slot for the kernel window.
    // (Slot 511 is skipped so the window end, base + 512 GiB, fits in a u64.)
    let slot = (256..511)
        .rev()
        .find(|&i| pml4[i].is_unused())
        .unwrap_or_else(|| panic!("no free upper-half PML4 slot for the kernel window"));
    let base = 0xFFFF_0000_0000_0000u64 | ((slot as u64) << 39);
    WINDOW_NEXT.store(base, Ordering::Relaxed);
    WINDOW_END.store(base + (1 << 39), Ordering::Relaxed);
    // Safety: the physical offset is the one the bootloader mapped all memory at.
    let pt = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(phys_offset)) };
    KERNEL_PT.call_once(|| Mutex::new(pt));
}

/// The kernel's own level-4 table (its upper half is shared by every address space).
pub fn kernel_pml4() -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(KERNEL_PML4.load(Ordering::Relaxed)))
}

/// Allocates one zeroed physical frame.
pub fn alloc_frame() -> Option<PhysFrame> {
    let f = FRAMES.get()?.lock().alloc()?;
    let frame = PhysFrame::containing_address(PhysAddr::new(f * FRAME_SIZE));
    zero_frame(frame);
    Some(frame)
}

/// Allocates one zeroed frame whose address is below `limit` bytes.
pub fn alloc_frame_below(limit: u64) -> Option<PhysFrame> {
    let f = FRAMES.get()?.lock().alloc_below(limit / FRAME_SIZE)?;
    let frame = PhysFrame::containing_address(PhysAddr::new(f * FRAME_SIZE));
    zero_frame(frame);
    Some(frame)
}

/// Allocates `count` physically contiguous frames (not zeroed); returns the first address.
pub fn alloc_contiguous(count: u64) -> Option<PhysAddr> {
    let f = FRAMES.get()?.lock().alloc_contiguous(count, 1)?;
    Some(PhysAddr::new(f * FRAME_SIZE))
}

pub fn free_frame(frame: PhysFrame) -> Result<(), FrameError> {
    FRAMES.get().map_or(Err(FrameError::OutOfRange(0)), |b| {
        b.lock().free(frame.start_address().as_u64() / FRAME_SIZE)
    })
}

pub fn free_frames() -> u64 {
    FRAMES.get().map_or(0, |b| b.lock().free_frames())
}

fn zero_frame(frame: PhysFrame) {
    // Safety: the frame was just allocated, so nothing else refers to it; it is mapped at the
    // physical offset.
    unsafe {
        core::ptr::write_bytes(
            phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<u8>(),
            0,
            FRAME_SIZE as usize,
        )
    };
}

/// Hands the page-table code frames from the global bitmap.
struct GlobalFrames;

// Safety: frames come from the bitmap, which never hands out a frame twice.
unsafe impl FrameAllocator<Size4KiB> for GlobalFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        alloc_frame()
    }
}

/// Why a mapping could not be made.
#[derive(Debug)]
pub enum MapError {
    /// No free frame was left for the page or its page tables.
    OutOfMemory,
    /// The kernel window has no virtual space left.
    WindowFull,
    /// The page is already mapped to another frame.
    AlreadyMapped,
}

/// Maps `page` to `frame` in the kernel page table.
pub fn map_page(page: Page, frame: PhysFrame, flags: PageTableFlags) -> Result<(), MapError> {
    let mut pt = KERNEL_PT.get().ok_or(MapError::OutOfMemory)?.lock();
    // Safety: callers pass pages in the kernel window or the trampoline's identity page, which
    // nothing else uses, so the new mapping cannot alias live Rust objects.
    match unsafe { pt.map_to(page, frame, flags, &mut GlobalFrames) } {
        Ok(flush) => {
            flush.flush();
            Ok(())
        }
        Err(MapToError::PageAlreadyMapped(existing)) if existing == frame => Ok(()),
        Err(MapToError::PageAlreadyMapped(_) | MapToError::ParentEntryHugePage) => {
            Err(MapError::AlreadyMapped)
        }
        Err(MapToError::FrameAllocationFailed) => Err(MapError::OutOfMemory),
    }
}

/// Removes the mapping of `page`, returning the frame it pointed at.
pub fn unmap_page(page: Page) -> Option<PhysFrame> {
    let mut pt = KERNEL_PT.get()?.lock();
    let (frame, flush) = pt.unmap(page).ok()?;
    flush.flush();
    Some(frame)
}

/// The physical address `addr` translates to in the kernel page table.
pub fn translate(addr: VirtAddr) -> Option<PhysAddr> {
    let pt = KERNEL_PT.get()?.lock();
    match pt.translate(addr) {
        TranslateResult::Mapped { frame, offset, .. } => Some(frame.start_address() + offset),
        _ => None,
    }
}

/// Reserves `pages` pages of kernel window space (not mapped).
pub fn reserve_window(pages: u64) -> Result<VirtAddr, MapError> {
    let size = pages * FRAME_SIZE;
    let start = WINDOW_NEXT.fetch_add(size, Ordering::Relaxed);
    if start + size > WINDOW_END.load(Ordering::Relaxed) {
        return Err(MapError::WindowFull);
    }
    Ok(VirtAddr::new(start))
}

/// Allocates a kernel stack of `pages` pages with an unmapped guard page below it; returns the
/// stack's top (16-byte aligned). An overflow hits the guard page and faults instead of
/// corrupting memory.
pub fn alloc_stack(pages: u64) -> Result<VirtAddr, MapError> {
    let base = reserve_window(pages + 1)? + FRAME_SIZE; // first page stays unmapped: the guard
    for i in 0..pages {
        let frame = alloc_frame().ok_or(MapError::OutOfMemory)?;
        let page = Page::containing_address(base + i * FRAME_SIZE);
        map_page(
            page,
            frame,
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
        )?;
    }
    Ok(base + pages * FRAME_SIZE)
}

/// Page flags of device registers: uncached, never executable.
pub const MMIO_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_CACHE)
    .union(PageTableFlags::WRITE_THROUGH)
    .union(PageTableFlags::NO_EXECUTE);

/// Maps `len` bytes of device registers at physical `phys` uncached into the kernel window.
pub fn map_mmio(phys: u64, len: u64) -> Result<VirtAddr, MapError> {
    let first = phys & !(FRAME_SIZE - 1);
    let pages = (phys + len - first).div_ceil(FRAME_SIZE);
    let base = reserve_window(pages)?;
    let flags = MMIO_FLAGS;
    for i in 0..pages {
        let frame = PhysFrame::containing_address(PhysAddr::new(first + i * FRAME_SIZE));
        map_page(
            Page::containing_address(base + i * FRAME_SIZE),
            frame,
            flags,
        )?;
    }
    Ok(base + (phys - first))
}
