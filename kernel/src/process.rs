//! User processes: address spaces, loading static ELF binaries from the ramdisk, the process table
//! built from the manifest, shared regions, grants, and the privileged control calls.
//!
//! Each manifest process owns one slot of the table for the whole boot. A slot is empty until its
//! first instance starts: at boot (`start = "boot"`, the default), or when a process with the
//! `control` grant asks (`proc_start`: a process declared `start = "on-demand"`, or any whose
//! instance died). Every instance of a slot, however it was started, gets the same binary, CPU,
//! grants, regions and status page; only its argument string may differ.

use crate::memory::{self, MapError};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use axolotl_abi::{Error, FaultRecord, ProcOp, ProcState, layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use klib::elf::Elf;
use klib::manifest::{Manifest, Placement, ProcessEntry};
use klib::ramdisk::Ramdisk;
use spin::{Mutex, Once};
use x86_64::structures::paging::mapper::TranslateResult;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
    Translate,
};
use x86_64::{PhysAddr, VirtAddr};

/// Pages of kernel stack per process.
const KSTACK_PAGES: u64 = 8;
/// Where an injected fault sends a process: an address no program maps (instruction fetch #PF).
pub const INJECTED_FAULT_RIP: u64 = 0x1000;

/// A process's page tables and every frame they own.
pub struct AddressSpace {
    pml4: PhysFrame,
    owned: Vec<PhysFrame>,
}

struct Recording<'a>(&'a mut Vec<PhysFrame>);

// Safety: frames come from the global bitmap, which never hands one out twice.
unsafe impl FrameAllocator<Size4KiB> for Recording<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let f = memory::alloc_frame()?;
        self.0.push(f);
        Some(f)
    }
}

impl AddressSpace {
    /// An empty user half with the kernel half shared from the kernel's own table.
    pub fn new() -> Result<Self, MapError> {
        let pml4 = memory::alloc_frame().ok_or(MapError::OutOfMemory)?;
        let kernel = memory::kernel_pml4();
        // Safety: both are level-4 tables mapped at the physical offset; the new one is private.
        unsafe {
            let src = &*memory::phys_to_virt(kernel.start_address().as_u64()).as_ptr::<PageTable>();
            let dst =
                &mut *memory::phys_to_virt(pml4.start_address().as_u64()).as_mut_ptr::<PageTable>();
            for i in 256..512 {
                dst[i] = src[i].clone();
            }
        }
        Ok(Self {
            pml4,
            owned: Vec::new(),
        })
    }

    pub fn pml4(&self) -> PhysFrame {
        self.pml4
    }

    fn table(&self) -> OffsetPageTable<'static> {
        // Safety: the PML4 frame belongs to this address space and lives as long as it does; the
        // kernel only edits it with interrupts off from one CPU at a time (the process lock).
        unsafe {
            let t = &mut *memory::phys_to_virt(self.pml4.start_address().as_u64())
                .as_mut_ptr::<PageTable>();
            OffsetPageTable::new(t, VirtAddr::new(memory::phys_to_virt(0).as_u64()))
        }
    }

    /// Maps `frame` at user address `va`.
    pub fn map(
        &mut self,
        va: u64,
        frame: PhysFrame,
        flags: PageTableFlags,
    ) -> Result<(), MapError> {
        let mut t = self.table();
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        // Safety: `va` is in the user half of a table that is not the kernel's; user pages cannot
        // alias kernel objects.
        unsafe {
            t.map_to(
                page,
                frame,
                flags | PageTableFlags::USER_ACCESSIBLE,
                &mut Recording(&mut self.owned),
            )
        }
        .map(|f| f.ignore())
        .map_err(|e| match e {
            x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed => {
                MapError::OutOfMemory
            }
            _ => MapError::AlreadyMapped,
        })
    }

    /// Allocates, zeroes and maps a fresh frame at `va`; returns it.
    pub fn map_new(&mut self, va: u64, flags: PageTableFlags) -> Result<PhysFrame, MapError> {
        let frame = memory::alloc_frame().ok_or(MapError::OutOfMemory)?;
        self.owned.push(frame);
        self.map(va, frame, flags)?;
        Ok(frame)
    }

    /// True when the page at `va` is present and user accessible (and writable if `write`).
    pub fn user_accessible(&self, va: u64, write: bool) -> bool {
        match self.table().translate(VirtAddr::new(va)) {
            TranslateResult::Mapped { flags, .. } => {
                flags.contains(PageTableFlags::USER_ACCESSIBLE)
                    && (!write || flags.contains(PageTableFlags::WRITABLE))
            }
            _ => false,
        }
    }

    /// The physical address behind user address `va`.
    pub fn translate(&self, va: u64) -> Option<PhysAddr> {
        self.table().translate_addr(VirtAddr::new(va))
    }

    /// Frees every frame the space owns (shared regions are not owned and stay).
    pub fn destroy(self) {
        for f in self.owned {
            if let Err(e) = memory::free_frame(f) {
                log::error!("freeing a process frame: {e:?}");
            }
        }
        if let Err(e) = memory::free_frame(self.pml4) {
            log::error!("freeing a process page table: {e:?}");
        }
    }
}

/// IPC state of one process (guarded by the IPC lock in `ipc`).
pub struct IpcState {
    pub recv_waiting: bool,
    pub inbox: [u8; 64],
    pub inbox_from: u32,
    pub outbox: [u8; 64],
    pub call_mode: bool,
    pub send_queue: VecDeque<u32>,
    pub awaiting_reply_from: Option<u32>,
    pub reply_box: [u8; 64],
}

impl Default for IpcState {
    fn default() -> Self {
        Self {
            recv_waiting: false,
            inbox: [0; 64],
            inbox_from: 0,
            outbox: [0; 64],
            call_mode: false,
            send_queue: VecDeque::new(),
            awaiting_reply_from: None,
            reply_box: [0; 64],
        }
    }
}

pub struct Process {
    pub pid: u32,
    /// Index of the manifest entry (and of the process-table slot).
    pub slot: usize,
    pub name: String,
    /// The argument string this instance was given (the manifest's, or `proc_start`'s); a
    /// restart of the instance gets the same.
    pub args: String,
    pub cpu: u32,
    pub dedicated: bool,
    pub restarts: u32,
    pub state: AtomicU8,
    pub space: Mutex<Option<AddressSpace>>,
    pub kstack_top: u64,
    /// Kernel stack pointer while switched out; only its CPU touches it, inside `sched`.
    pub saved_rsp: UnsafeCell<u64>,
    pub wake_lock: Mutex<()>,
    /// A `notify` arrived and was not yet consumed by `wait`.
    pub pending: AtomicBool,
    /// Wake-up deadline (ns) while blocked with a timeout, else 0.
    pub deadline: AtomicU64,
    pub syscalls: AtomicU64,
    pub exit_code: AtomicI64,
    pub inject_fault: AtomicBool,
    pub hung: AtomicBool,
    pub kill: AtomicBool,
    /// Set by IPC when a message, a reply or a delivery completed (or failed) for this process.
    pub ipc_done: AtomicBool,
    pub ipc_failed: AtomicBool,
    pub ipc: Mutex<IpcState>,
    /// The kernel's channel ends for this instance (`CHAN_GATE`, the kernel-IPC baseline).
    pub gates: Mutex<crate::gate::Ends>,
}

// Safety: `saved_rsp` is only accessed by the CPU the process belongs to, with interrupts off.
unsafe impl Sync for Process {}
// Safety: as above; everything else is atomic or locked.
unsafe impl Send for Process {}

impl Process {
    pub fn state(&self) -> ProcState {
        ProcState::from_u8(self.state.load(Ordering::Acquire)).unwrap_or(ProcState::Killed)
    }
    pub fn set_state(&self, s: ProcState) {
        self.state.store(s as u8, Ordering::Release);
    }
    pub fn is_dead(&self) -> bool {
        matches!(
            self.state(),
            ProcState::Exited | ProcState::Faulted | ProcState::Killed
        )
    }
}

static RAMDISK: Once<Ramdisk<'static>> = Once::new();
static MANIFEST: Once<Manifest<'static>> = Once::new();
static TABLE: Mutex<Vec<Option<Arc<Process>>>> = Mutex::new(Vec::new());
static NEXT_PID: AtomicU32 = AtomicU32::new(1);
static FREE_KSTACKS: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// Placement decided at boot: CPU of each manifest entry.
static PLACEMENT: Mutex<Vec<(u32, bool)>> = Mutex::new(Vec::new());

struct Region {
    name: &'static str,
    phys: u64,
    pages: u64,
    /// A libchan channel (its header was written at boot).
    channel: bool,
}
static REGIONS: Once<Vec<Region>> = Once::new();

static FAULTS: Mutex<VecDeque<FaultRecord>> = Mutex::new(VecDeque::new());
/// One status page per manifest slot; it outlives the slot's instances.
static STATUS_FRAMES: Once<Vec<PhysFrame>> = Once::new();
/// Times the kernel itself restarted the reincarnation server.
const RS_RESTARTS_LIMIT: u32 = 16;
/// Process waiting in `fault_record`, if any.
static FAULT_WAITER: AtomicU32 = AtomicU32::new(0);
/// Held from the check that a slot is free until its new instance is in the table, so that two
/// starts of one slot (the shell's and rs's, say) cannot both succeed.
static STARTING: Mutex<()> = Mutex::new(());

pub fn kernel_stack() -> u64 {
    if let Some(top) = FREE_KSTACKS.lock().pop() {
        return top;
    }
    memory::alloc_stack(KSTACK_PAGES)
        .unwrap_or_else(|e| panic!("no memory for a kernel stack: {e:?}"))
        .as_u64()
}

pub fn release_kernel_stack(top: u64) {
    FREE_KSTACKS.lock().push(top);
}

pub fn manifest() -> Option<&'static Manifest<'static>> {
    MANIFEST.get()
}

fn entry(p: &Process) -> Option<&'static ProcessEntry<'static>> {
    MANIFEST.get()?.processes().nth(p.slot)
}

pub fn has_grant(p: &Process, grant: &str) -> bool {
    entry(p).is_some_and(|e| e.has_grant(grant))
}

pub fn log_denied(p: &Process, what: &str, grant: &str) {
    log::warn!(
        "denied {what} to {} (pid {}): system.toml does not grant it '{grant}'",
        p.name,
        p.pid
    );
}

/// Reads the manifest from the ramdisk, creates the regions, places and starts every process.
pub fn start_all(ramdisk: Option<Ramdisk<'static>>) {
    let Some(disk) = ramdisk else {
        log::warn!("no ramdisk: no user processes to start");
        return;
    };
    let disk = RAMDISK.call_once(|| disk);
    let Some(text) = disk.get("manifest") else {
        log::warn!("ramdisk has no manifest: no user processes to start");
        return;
    };
    let text = core::str::from_utf8(text).unwrap_or_else(|_| panic!("manifest is not UTF-8"));
    let manifest = match Manifest::parse(text) {
        Ok(m) => MANIFEST.call_once(|| m),
        Err(e) => panic!("{e}"),
    };
    let regions = manifest
        .regions()
        .map(|r| {
            let pages = r.pages as u64;
            let phys = memory::alloc_contiguous(pages)
                .unwrap_or_else(|| panic!("no {pages} contiguous pages for region {}", r.name));
            // Safety: the frames were just allocated for this region; zero them through the
            // physical mapping.
            unsafe {
                core::ptr::write_bytes(
                    memory::phys_to_virt(phys.as_u64()).as_mut_ptr::<u8>(),
                    0,
                    (pages * 4096) as usize,
                )
            };
            if let Some(slots) = r.slots {
                let ptr = memory::phys_to_virt(phys.as_u64()).as_mut_ptr::<u8>();
                // Safety: the region was just allocated, zeroed, and is mapped at the physical
                // offset; no process has it yet.
                if let Err(e) = unsafe { libchan::init(ptr, (pages * 4096) as usize, slots) } {
                    panic!("region {}: cannot hold a {slots}-slot channel: {e}", r.name);
                }
            }
            Region {
                name: r.name,
                phys: phys.as_u64(),
                pages,
                channel: r.slots.is_some(),
            }
        })
        .collect();
    REGIONS.call_once(|| regions);

    // Placement: dedicated processes take CPUs 1, 2, ...; CPU 0 and the rest are shared.
    let ncpu = crate::percpu::online_count();
    let mut next_dedicated = 1;
    let mut shared_cpus: Vec<u32> = Vec::new();
    let mut placement = Vec::new();
    let layout = boot_layout();
    let wanted = manifest
        .processes()
        .filter(|p| p.placement == Placement::Dedicated && p.in_layout(layout))
        .count() as u32;
    let dedicated_ok = ncpu > wanted; // one CPU must remain for shared work
    for p in manifest.processes() {
        if !p.in_layout(layout) {
            // Never runs in this boot: no CPU of its own, and it takes no turn below.
            placement.push((0, false));
        } else if p.placement == Placement::Dedicated && dedicated_ok {
            placement.push((next_dedicated, true));
            crate::sched::set_dedicated(next_dedicated as usize);
            next_dedicated += 1;
        } else {
            placement.push((u32::MAX, false));
        }
    }
    for c in 0..ncpu {
        if !crate::sched::is_dedicated(c as usize) {
            shared_cpus.push(c);
        }
    }
    let mut rr = 0;
    for (i, p) in manifest.processes().enumerate() {
        if placement[i].0 == u32::MAX && p.in_layout(layout) {
            placement[i].0 = shared_cpus[rr % shared_cpus.len()];
            rr += 1;
            if p.placement == Placement::Dedicated {
                log::warn!(
                    "too few CPUs ({ncpu} for {wanted} dedicated processes + shared work): {} shares cpu{}",
                    p.name,
                    placement[i].0
                );
            }
        }
    }
    *PLACEMENT.lock() = placement;
    STATUS_FRAMES.call_once(|| {
        manifest
            .processes()
            .map(|p| {
                memory::alloc_frame()
                    .unwrap_or_else(|| panic!("no memory for the status page of {}", p.name))
            })
            .collect()
    });
    let mut table = TABLE.lock();
    table.resize(manifest.processes().count(), None);
    drop(table);
    for (i, p) in manifest.processes().enumerate() {
        if !p.in_layout(layout) {
            log::info!(
                "{} belongs to the other network-stack layout (this boot: layout={}): not started",
                p.name,
                layout.name()
            );
        } else if !p.start {
            log::info!(
                "{} is started on demand (slot {i}, cpu{})",
                p.name,
                PLACEMENT.lock()[i].0
            );
        } else if let Err(e) = spawn(i, 0, p.args) {
            log::error!("cannot start {}: {e}", p.name);
        }
    }
}

/// Creates and schedules a fresh instance of manifest entry `slot` with the argument string
/// `args` (cut to [`axolotl_abi::ARGS_MAX`] bytes). When the slot had an instance before, its
/// channels get a new epoch first.
pub fn spawn(slot: usize, restarts: u32, args: &str) -> Result<Arc<Process>, &'static str> {
    let manifest = MANIFEST.get().ok_or("no manifest")?;
    let e = manifest
        .processes()
        .nth(slot)
        .ok_or("no such manifest entry")?;
    let disk = RAMDISK.get().ok_or("no ramdisk")?;
    let binary = disk
        .get(e.binary)
        .ok_or("binary missing from the ramdisk")?;
    let elf = Elf::parse(binary, layout::IMAGE_MIN, layout::MAP_BASE).map_err(|err| {
        log::error!("{}: binary '{}' refused: {err}", e.name, e.binary);
        "bad binary"
    })?;
    let mut space = AddressSpace::new().map_err(|_| "out of memory")?;
    for seg in elf.segments() {
        let mut flags = PageTableFlags::PRESENT;
        if seg.writable {
            flags |= PageTableFlags::WRITABLE;
        }
        if !seg.executable {
            flags |= PageTableFlags::NO_EXECUTE;
        }
        let first = seg.vaddr & !0xFFF;
        let end = seg.vaddr + seg.mem_size;
        let mut va = first;
        while va < end {
            let frame = space.map_new(va, flags).map_err(|_| "out of memory")?;
            // Copy the part of the segment's file bytes that falls in this page.
            let dst = memory::phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<u8>();
            let page_start = va.max(seg.vaddr);
            let file_end = seg.vaddr + seg.data.len() as u64;
            if page_start < file_end {
                let n = (va + 4096).min(file_end) - page_start;
                let src = &seg.data[(page_start - seg.vaddr) as usize..][..n as usize];
                // Safety: `dst` is a fresh frame we own; the copy stays inside its page.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        dst.add((page_start - va) as usize),
                        n as usize,
                    )
                };
            }
            va += 4096;
        }
    }
    // Stack, with the guard page below it left unmapped.
    let stack_bottom = layout::STACK_TOP - layout::STACK_PAGES * 4096;
    let mut top_frame = None;
    for i in 0..layout::STACK_PAGES {
        let f = space
            .map_new(
                stack_bottom + i * 4096,
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
            )
            .map_err(|_| "out of memory")?;
        top_frame = Some(f);
    }
    // The status page shared with the reincarnation server.
    if let Some(frame) = STATUS_FRAMES.get().and_then(|f| f.get(slot)) {
        space
            .map(
                layout::STATUS_PAGE,
                *frame,
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
            )
            .map_err(|_| "out of memory")?;
        let page = memory::phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<u64>();
        // Safety: the status page is a kernel-owned frame; word 1 is the generation, word 2 the
        // update request, which a new instance starts without.
        unsafe {
            page.add(1).write_volatile(restarts as u64);
            page.add(2).write_volatile(0);
        }
    }
    // The argument string sits in the top 256 bytes of the stack.
    let mut cut = args.len().min(axolotl_abi::ARGS_MAX);
    while !args.is_char_boundary(cut) {
        cut -= 1;
    }
    let args = &args[..cut];
    let args_va = layout::STACK_TOP - 256;
    if let Some(f) = top_frame {
        let dst = memory::phys_to_virt(f.start_address().as_u64() + 4096 - 256).as_mut_ptr::<u8>();
        // Safety: the stack's top frame is ours; 256 bytes at its end.
        unsafe { core::ptr::copy_nonoverlapping(args.as_ptr(), dst, args.len()) };
    }
    let (cpu, dedicated) = PLACEMENT.lock().get(slot).copied().ok_or("not placed")?;
    let had_instance = TABLE.lock().get(slot).is_some_and(Option::is_some);
    if had_instance {
        bump_channel_epochs(e);
    }
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    let kstack_top = kernel_stack();
    let p = Arc::new(Process {
        pid,
        slot,
        name: String::from(e.name),
        args: String::from(args),
        cpu,
        dedicated,
        restarts,
        state: AtomicU8::new(ProcState::Ready as u8),
        space: Mutex::new(Some(space)),
        kstack_top,
        saved_rsp: UnsafeCell::new(0),
        wake_lock: Mutex::new(()),
        pending: AtomicBool::new(false),
        deadline: AtomicU64::new(0),
        syscalls: AtomicU64::new(0),
        exit_code: AtomicI64::new(0),
        inject_fault: AtomicBool::new(false),
        hung: AtomicBool::new(false),
        kill: AtomicBool::new(false),
        ipc_done: AtomicBool::new(false),
        ipc_failed: AtomicBool::new(false),
        ipc: Mutex::new(IpcState::default()),
        gates: Mutex::new(crate::gate::Ends::default()),
    });
    crate::sched::prepare_first_run(
        &p,
        elf.entry,
        layout::STACK_TOP - 512,
        args_va,
        args.len() as u64,
    );
    TABLE.lock()[slot] = Some(p.clone());
    for grant in e.grants() {
        if let Some(dev) = crate::devices::by_name(grant) {
            crate::devices::bind_interrupt(dev, pid, cpu);
        }
    }
    log::info!(
        "started {} (pid {pid}) on cpu{cpu}{}",
        e.name,
        if dedicated { ", dedicated" } else { "" }
    );
    crate::sched::enqueue(p.clone());
    Ok(p)
}

/// A restarted (or re-started) process's channels get a new epoch before it runs, so each
/// surviving peer learns on its next operation that the other end restarted, and what was in
/// flight (libchan).
fn bump_channel_epochs(e: &ProcessEntry<'static>) {
    let Some(regions) = REGIONS.get() else { return };
    for r in regions.iter().filter(|r| r.channel && e.has_region(r.name)) {
        let ptr = memory::phys_to_virt(r.phys).as_mut_ptr::<u8>();
        // Safety: the region is kernel-allocated channel memory, mapped at the physical offset;
        // libchan's epoch bump is an atomic update of its header that both ends expect.
        match unsafe { libchan::bump_epoch(ptr, (r.pages * 4096) as usize) } {
            Ok(epoch) => log::debug!("channel {} of {}: epoch {epoch}", r.name, e.name),
            Err(err) => log::warn!(
                "channel {} of {}: cannot bump its epoch: {err}",
                r.name,
                e.name
            ),
        }
    }
}

/// The live process called `name`.
pub fn lookup(name: &str) -> Result<Arc<Process>, Error> {
    TABLE
        .lock()
        .iter()
        .flatten()
        .find(|p| p.name == name && !p.is_dead())
        .cloned()
        .ok_or(Error::NotFound)
}

pub fn by_pid(pid: u32) -> Option<Arc<Process>> {
    TABLE
        .lock()
        .iter()
        .flatten()
        .find(|p| p.pid == pid)
        .cloned()
}

pub fn all() -> Vec<Arc<Process>> {
    TABLE.lock().iter().flatten().cloned().collect()
}

fn info_of(p: &Process) -> axolotl_abi::ProcInfo {
    let mut info = axolotl_abi::ProcInfo::empty();
    info.pid = p.pid;
    info.cpu = p.cpu;
    let n = p.name.len().min(axolotl_abi::NAME_LEN);
    info.name[..n].copy_from_slice(&p.name.as_bytes()[..n]);
    let state = if p.hung.load(Ordering::Relaxed) && !p.is_dead() {
        ProcState::Stopped
    } else {
        p.state()
    };
    info.state = state as u8;
    // `block_until` stores the deadline before it marks the process blocked, and a wake-up
    // marks it ready before the deadline is cleared: blocked with a deadline is a timed wait.
    info.timed_wait =
        u8::from(state == ProcState::Blocked && p.deadline.load(Ordering::Relaxed) != 0);
    info.dedicated = p.dedicated as u8;
    info.restarts = p.restarts;
    info.syscalls = p.syscalls.load(Ordering::Relaxed);
    info.exit_code = p.exit_code.load(Ordering::Relaxed);
    info
}

/// The record of a slot whose first instance never started: its manifest name and CPU.
fn info_of_unstarted(slot: usize) -> axolotl_abi::ProcInfo {
    let mut info = axolotl_abi::ProcInfo::empty();
    info.state = ProcState::NotStarted as u8;
    if let Some(e) = manifest().and_then(|m| m.processes().nth(slot)) {
        let n = e.name.len().min(axolotl_abi::NAME_LEN);
        info.name[..n].copy_from_slice(&e.name.as_bytes()[..n]);
        if !e.in_layout(boot_layout()) {
            info.state = ProcState::OtherLayout as u8;
        }
    }
    if let Some(&(cpu, dedicated)) = PLACEMENT.lock().get(slot) {
        info.cpu = cpu;
        info.dedicated = dedicated as u8;
    }
    info
}

/// The network-stack layout this boot runs (the command line's `layout=`).
fn boot_layout() -> klib::cmdline::Layout {
    if crate::sysconf() & axolotl_abi::sysconf::LAYOUT_SINGLE != 0 {
        klib::cmdline::Layout::Single
    } else {
        klib::cmdline::Layout::Split
    }
}

pub fn proc_info_syscall(slot: u64, out: u64) -> Result<u64, Error> {
    let table = TABLE.lock();
    let entry = table.get(slot as usize).ok_or(Error::NotFound)?.clone();
    drop(table);
    let info = entry.map_or_else(|| info_of_unstarted(slot as usize), |p| info_of(&p));
    crate::user::write_struct(out, &info)?;
    Ok(0)
}

pub fn self_info_syscall(me: &Process, out: u64) -> Result<u64, Error> {
    crate::user::write_struct(out, &info_of(me))?;
    Ok(0)
}

/// `map(name)`: shared regions granted by the manifest.
pub fn map_syscall(
    me: &Process,
    name_ptr: u64,
    name_len: u64,
    info_ptr: u64,
) -> Result<u64, Error> {
    let name = crate::user::read_str(name_ptr, name_len)?;
    let e = entry(me).ok_or(Error::NotFound)?;
    if !e.has_region(&name) && !e.has_grant(&name) {
        log::warn!(
            "denied map of '{name}' to {} (pid {}): not granted in system.toml",
            me.name,
            me.pid
        );
        return Err(Error::Denied);
    }
    if let Some(dev) = crate::devices::by_name(&name) {
        return map_device(me, dev, info_ptr);
    }
    let regions = REGIONS.get().ok_or(Error::NotFound)?;
    let (idx, region) = regions
        .iter()
        .enumerate()
        .find(|(_, r)| r.name == name)
        .ok_or(Error::NotFound)?;
    let va = layout::MAP_BASE + idx as u64 * 0x1000_0000;
    let mut guard = me.space.lock();
    let space = guard.as_mut().ok_or(Error::Gone)?;
    // Mapping a region twice is idempotent: the second call describes the existing mapping.
    let mapped = space.translate(va).is_some();
    for i in (0..region.pages).filter(|_| !mapped) {
        let frame = PhysFrame::containing_address(PhysAddr::new(region.phys + i * 4096));
        space
            .map(
                va + i * 4096,
                frame,
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
            )
            .map_err(|_| Error::NoMemory)?;
    }
    let info = axolotl_abi::MapInfo {
        addr: va,
        len: region.pages * 4096,
        phys: region.phys,
        kind: 0,
    };
    drop(guard);
    crate::user::write_struct(info_ptr, &info)?;
    Ok(va)
}

/// Bumps the `mail` word of slot `slot`'s status page: an IPC message was queued for it.
pub fn bump_mail(slot: usize) {
    let Some(frame) = STATUS_FRAMES.get().and_then(|f| f.get(slot)) else {
        return;
    };
    let page = memory::phys_to_virt(frame.start_address().as_u64()).as_ptr::<AtomicU64>();
    // Safety: the status page is a kernel-owned frame that lives as long as the kernel, 8-byte
    // aligned; STATUS_MAIL_WORD is the mail counter, an atomic on both sides (the process only
    // reads it).
    unsafe { (*page.add(axolotl_abi::STATUS_MAIL_WORD)).fetch_add(1, Ordering::Release) };
}

/// The channel region `me` mapped at `va`, for `CHAN_GATE`: its index and where the kernel
/// reaches it. Refused unless it is a channel the manifest grants `me` and `me` mapped it.
pub fn gate_region(me: &Process, va: u64) -> Result<(usize, *mut u8, usize), Error> {
    let off = va.checked_sub(layout::MAP_BASE).ok_or(Error::Invalid)?;
    if off % 0x1000_0000 != 0 {
        return Err(Error::Invalid);
    }
    let idx = (off / 0x1000_0000) as usize;
    let region = REGIONS
        .get()
        .and_then(|r| r.get(idx))
        .ok_or(Error::NotFound)?;
    let e = entry(me).ok_or(Error::NotFound)?;
    if !region.channel || !e.has_region(region.name) {
        return Err(Error::Denied);
    }
    let mapped = me
        .space
        .lock()
        .as_ref()
        .is_some_and(|s| s.translate(va).is_some());
    if !mapped {
        return Err(Error::NotFound);
    }
    let ptr = memory::phys_to_virt(region.phys).as_mut_ptr::<u8>();
    Ok((idx, ptr, (region.pages * 4096) as usize))
}

/// Wakes the live processes that list region `idx`, other than slot `owner` (or `owner`
/// itself when it is the region's only user): the kernel's producer end has published.
pub fn notify_region_users(idx: usize, owner: usize) {
    let (Some(m), Some(region)) = (MANIFEST.get(), REGIONS.get().and_then(|r| r.get(idx))) else {
        return;
    };
    let users: Vec<Arc<Process>> = TABLE
        .lock()
        .iter()
        .flatten()
        .filter(|p| !p.is_dead())
        .filter(|p| {
            m.processes()
                .nth(p.slot)
                .is_some_and(|e| e.has_region(region.name))
        })
        .cloned()
        .collect();
    let others = users.iter().any(|p| p.slot != owner);
    for p in users.iter().filter(|p| !others || p.slot != owner) {
        crate::sched::notify(p);
    }
}

/// Maps the first memory BAR of a granted device, uncached, into the caller.
fn map_device(me: &Process, dev: &crate::devices::Device, info_ptr: u64) -> Result<u64, Error> {
    let bar = dev
        .pci
        .bars
        .iter()
        .find(|b| !b.io && b.size > 0)
        .ok_or(Error::NotFound)?;
    let index = dev.vector as u64; // distinct per device
    let va = layout::MAP_BASE + 0x40_0000_0000 + index * 0x1000_0000;
    let pages = bar.size.div_ceil(4096);
    let mut guard = me.space.lock();
    let space = guard.as_mut().ok_or(Error::Gone)?;
    // Idempotent, as for regions.
    let mapped = space.translate(va).is_some();
    let flags = memory::MMIO_FLAGS;
    for i in (0..pages).filter(|_| !mapped) {
        let frame = PhysFrame::containing_address(PhysAddr::new(bar.addr + i * 4096));
        space
            .map(va + i * 4096, frame, flags)
            .map_err(|_| Error::NoMemory)?;
    }
    drop(guard);
    crate::pci::enable_bus_master(&dev.pci);
    log::info!(
        "mapped {} registers ({} KiB at {:#x}) into {} (pid {})",
        dev.name,
        bar.size / 1024,
        bar.addr,
        me.name,
        me.pid
    );
    let info = axolotl_abi::MapInfo {
        addr: va,
        len: pages * 4096,
        phys: bar.addr,
        kind: 1,
    };
    crate::user::write_struct(info_ptr, &info)?;
    Ok(va)
}

pub fn irq_ack_syscall(me: &Process, name_ptr: u64, name_len: u64) -> Result<u64, Error> {
    let name = crate::user::read_str(name_ptr, name_len)?;
    if !has_grant(me, &name) {
        log_denied(me, "irq_ack", &name);
        return Err(Error::Denied);
    }
    let dev = crate::devices::by_name(&name).ok_or(Error::NotFound)?;
    crate::devices::ack(dev);
    Ok(0)
}

/// Records a user fault for the reincarnation server and logs it.
pub fn record_fault(p: &Process, vector: u64, address: u64, rip: u64, error: u64) {
    let mut rec = FaultRecord {
        pid: p.pid,
        vector: vector as u32,
        address,
        rip,
        error,
        name: [0; axolotl_abi::NAME_LEN],
    };
    let n = p.name.len().min(axolotl_abi::NAME_LEN);
    rec.name[..n].copy_from_slice(&p.name.as_bytes()[..n]);
    log::warn!(
        "fault: {} (pid {}) {} at rip={rip:#x} address={address:#x} error={error:#x}: process stopped",
        p.name,
        p.pid,
        crate::trap::describe(vector)
    );
    let mut q = FAULTS.lock();
    if q.len() == 64 {
        q.pop_front();
    }
    q.push_back(rec);
    drop(q);
    let waiter = FAULT_WAITER.load(Ordering::Acquire);
    if waiter != 0
        && let Some(w) = by_pid(waiter)
    {
        crate::sched::notify(&w);
    }
}

pub fn fault_record_syscall(me: &Arc<Process>, out: u64, timeout: u64) -> Result<u64, Error> {
    if !has_grant(me, "control") {
        log_denied(me, "fault_record", "control");
        return Err(Error::Denied);
    }
    loop {
        if let Some(rec) = FAULTS.lock().pop_front() {
            crate::user::write_struct(out, &rec)?;
            return Ok(0);
        }
        FAULT_WAITER.store(me.pid, Ordering::Release);
        if crate::sched::wait(me, timeout) == axolotl_abi::WAIT_TIMEOUT && FAULTS.lock().is_empty()
        {
            return Err(Error::TimedOut);
        }
    }
}

/// `status_map(slot)`: another process's status page, read-only (control grant).
pub fn status_map_syscall(me: &Process, slot: u64, info_ptr: u64) -> Result<u64, Error> {
    if !has_grant(me, "control") {
        log_denied(me, "status_map", "control");
        return Err(Error::Denied);
    }
    let frame = *STATUS_FRAMES
        .get()
        .and_then(|f| f.get(slot as usize))
        .ok_or(Error::NotFound)?;
    let va = layout::STATUS_VIEWS + slot * 4096;
    let mut guard = me.space.lock();
    let space = guard.as_mut().ok_or(Error::Gone)?;
    if space.translate(va).is_none() {
        space
            .map(
                va,
                frame,
                PageTableFlags::PRESENT | PageTableFlags::NO_EXECUTE,
            )
            .map_err(|_| Error::NoMemory)?;
    }
    drop(guard);
    let info = axolotl_abi::MapInfo {
        addr: va,
        len: 4096,
        phys: frame.start_address().as_u64(),
        kind: 0,
    };
    crate::user::write_struct(info_ptr, &info)?;
    Ok(va)
}

/// `proc_policy(slot)`: the manifest's restart policy of a slot.
pub fn proc_policy_syscall(slot: u64, out: u64) -> Result<u64, Error> {
    let e = manifest()
        .and_then(|m| m.processes().nth(slot as usize))
        .ok_or(Error::NotFound)?;
    let policy = axolotl_abi::RestartPolicy {
        max_failures: e.restart.max_failures,
        window_ms: e.restart.window_ms,
        backoff_ms: e.restart.backoff_ms,
        start: e.start as u32,
    };
    crate::user::write_struct(out, &policy)?;
    Ok(0)
}

/// The kernel restarts the reincarnation server itself (the process named `rs`), up to a limit.
pub fn after_death(p: &Process) {
    if p.name != "rs" {
        return;
    }
    if p.restarts >= RS_RESTARTS_LIMIT {
        log::error!(
            "the reincarnation server died {} times: the kernel gives up on it",
            p.restarts + 1
        );
        return;
    }
    log::warn!(
        "the reincarnation server died: the kernel restarts it (restart {})",
        p.restarts + 1
    );
    let _starting = STARTING.lock();
    if let Err(e) = spawn(p.slot, p.restarts + 1, &p.args) {
        log::error!("cannot restart the reincarnation server: {e}");
    }
}

/// The error a failed [`spawn`] gives a caller.
fn spawn_error(name: &str, why: &'static str) -> Error {
    log::warn!("cannot start {name}: {why}");
    match why {
        "out of memory" => Error::NoMemory,
        _ => Error::Invalid,
    }
}

/// `proc_start(name, args)`: a fresh instance of the manifest process `name`, which must not be
/// running (never started, or dead), with `args` for its argument string (empty: the manifest's).
pub fn proc_start_syscall(
    me: &Process,
    name_ptr: u64,
    name_len: u64,
    args_ptr: u64,
    args_len: u64,
) -> Result<u64, Error> {
    if !has_grant(me, "control") {
        log_denied(me, "proc_start", "control");
        return Err(Error::Denied);
    }
    if name_len > axolotl_abi::NAME_LEN as u64 {
        // No manifest name is that long; still refuse a pointer that is not ours first.
        crate::user::read_bytes(name_ptr, 1)?;
        return Err(Error::NotFound);
    }
    let name = crate::user::read_str(name_ptr, name_len)?;
    if args_len > axolotl_abi::ARGS_MAX as u64 {
        crate::user::read_bytes(args_ptr, 1)?;
        return Err(Error::Invalid);
    }
    let args = crate::user::read_str(args_ptr, args_len)?;
    let (slot, e) = manifest()
        .and_then(|m| m.processes().enumerate().find(|(_, e)| e.name == name))
        .ok_or(Error::NotFound)?;
    if !e.in_layout(boot_layout()) {
        log::warn!(
            "{} (pid {}) asked to start {name}, which belongs to the other network-stack layout (this boot: layout={})",
            me.name,
            me.pid,
            boot_layout().name()
        );
        return Err(Error::NotFound);
    }
    let _starting = STARTING.lock();
    let previous = TABLE.lock().get(slot).cloned().flatten();
    if let Some(p) = &previous
        && !p.is_dead()
    {
        return Err(Error::Busy);
    }
    let args: &str = if args.is_empty() { e.args } else { &args };
    log::info!(
        "{} (pid {}) starts {name} with args {args:?}",
        me.name,
        me.pid
    );
    // A start is not a restart: the count of restarts (the status page's generation) stays.
    let restarts = previous.map_or(0, |p| p.restarts);
    let p = spawn(slot, restarts, args).map_err(|why| spawn_error(&name, why))?;
    Ok(p.pid as u64)
}

pub fn proc_ctl(me: &Process, pid: u32, op: u64) -> Result<u64, Error> {
    if !has_grant(me, "control") {
        log_denied(me, "proc_ctl", "control");
        return Err(Error::Denied);
    }
    let op = ProcOp::from_u64(op).ok_or(Error::Invalid)?;
    let target = by_pid(pid).ok_or(Error::NotFound)?;
    match op {
        ProcOp::Kill => crate::sched::kill(&target),
        ProcOp::Restart => {
            let _starting = STARTING.lock();
            if !target.is_dead() {
                return Err(Error::Busy);
            }
            // Only the slot's current instance may be restarted: an older pid whose slot was
            // started again meanwhile is gone.
            if by_pid(pid).is_none() {
                return Err(Error::NotFound);
            }
            let p = spawn(target.slot, target.restarts + 1, &target.args)
                .map_err(|why| spawn_error(&target.name, why))?;
            return Ok(p.pid as u64);
        }
        ProcOp::InjectFault => crate::sched::inject_fault(&target),
        ProcOp::Hang => crate::sched::hang(&target, true),
        ProcOp::Resume => crate::sched::hang(&target, false),
        ProcOp::RequestUpdate => {
            if target.is_dead() {
                return Err(Error::Busy);
            }
            let frame = *STATUS_FRAMES
                .get()
                .and_then(|f| f.get(target.slot))
                .ok_or(Error::NotFound)?;
            let page = memory::phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<u64>();
            // Safety: the status page is a kernel-owned frame that lives as long as the kernel;
            // word 2 is the update request (the process only reads it).
            unsafe { page.add(2).write_volatile(1) };
            // A server idling in `wait` (up to a second) sees the request at once.
            crate::sched::notify(&target);
        }
    }
    Ok(0)
}
