//! Per-CPU data, reached through the GS base: each CPU's index, APIC id, descriptor tables and
//! event counters. CPUs are numbered 0 (the bootstrap CPU) to N-1 in the order they came online.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

/// Most CPUs the kernel will bring up.
pub const MAX_CPUS: usize = 64;

/// Event counters of one CPU, read by `stat` and the tests.
#[derive(Default)]
pub struct Counters {
    /// Timer interrupts taken.
    pub ticks: AtomicU64,
    /// All interrupts taken (timer, devices, IPIs).
    pub interrupts: AtomicU64,
    /// Inter-processor interrupts received.
    pub ipis: AtomicU64,
    /// Context switches.
    pub switches: AtomicU64,
    /// TSC ticks spent in the idle loop (polling for work or halted), interrupts taken there
    /// included: the rest of the time the CPU ran a process or the kernel on its behalf.
    pub idle_tsc: AtomicU64,
    /// System calls made on this CPU by number (`axolotl_abi::nr::name`); their sum is the
    /// CPU's total.
    pub by_call: [AtomicU64; axolotl_abi::nr::CALLS],
}

#[repr(C)]
pub struct PerCpu {
    /// Points at this structure; read with `gs:[0]`. Must stay the first field.
    self_ptr: *const PerCpu,
    /// Top of the running process's kernel stack (`gs:[8]`, loaded by the syscall entry).
    pub kernel_rsp: AtomicU64,
    /// The user stack pointer, parked by the syscall entry (`gs:[16]`).
    pub user_rsp: AtomicU64,
    pub index: u32,
    pub apic_id: u32,
    pub counters: Counters,
    pub gdt: &'static crate::gdt::CpuGdt,
    pub idt: &'static crate::trap::Idt,
}

// Safety: `self_ptr` is only ever read; every other field is immutable after creation or atomic.
unsafe impl Sync for PerCpu {}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Offset of `kernel_rsp`, used by the syscall entry.
pub const KERNEL_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, kernel_rsp);
/// Offset of `user_rsp`, used by the syscall entry.
pub const USER_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, user_rsp);
const _: () = assert!(KERNEL_RSP_OFFSET == 8 && USER_RSP_OFFSET == 16);

/// Builds the per-CPU block for CPU `index` (descriptor tables, IST stacks). Runs on the BSP for
/// every CPU, before that CPU starts.
pub fn create(index: u32, apic_id: u32) -> &'static PerCpu {
    let gdt = crate::gdt::CpuGdt::new();
    let idt = Box::leak(Box::new(crate::trap::Idt::new(gdt.kernel_code.0)));
    let cpu = Box::leak(Box::new(PerCpu {
        self_ptr: core::ptr::null(),
        kernel_rsp: AtomicU64::new(0),
        user_rsp: AtomicU64::new(0),
        index,
        apic_id,
        counters: Counters::default(),
        gdt,
        idt,
    }));
    cpu.self_ptr = cpu as *const PerCpu;
    cpu
}

/// Loads this CPU's tables and GS base, and marks it online. Runs on the CPU itself.
pub fn activate(cpu: &'static PerCpu) {
    cpu.gdt.load();
    cpu.idt.load();
    GsBase::write(VirtAddr::from_ptr(cpu));
    // The user's GS base while in ring 3 (swapped in and out by `swapgs`).
    x86_64::registers::model_specific::KernelGsBase::write(VirtAddr::zero());
    crate::syscall::init_cpu(cpu);
    CPUS[cpu.index as usize].store(cpu as *const PerCpu as *mut PerCpu, Ordering::Release);
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

pub fn init_bsp() {
    let apic_id = crate::apic::cpuid_apic_id();
    activate(create(0, apic_id));
}

/// This CPU's block. Only valid after `activate` ran on this CPU.
pub fn current() -> &'static PerCpu {
    let p: *const PerCpu;
    // Safety: GS base points at this CPU's PerCpu, whose first field is its own address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    // Safety: the pointer was stored by `create` and the block is leaked ('static).
    unsafe { &*p }
}

/// This CPU's index, or None before its per-CPU block is loaded (early boot, AP start-up).
pub fn try_current_index() -> Option<u32> {
    if GsBase::read().as_u64() == 0 {
        return None;
    }
    Some(current().index)
}

pub fn online_count() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

/// The block of CPU `index`, if it is online.
pub fn get(index: usize) -> Option<&'static PerCpu> {
    let p = CPUS.get(index)?.load(Ordering::Acquire);
    // Safety: non-null entries point at leaked PerCpu blocks.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Sets the stack the CPU switches to when an interrupt arrives in ring 3, and the one the
/// syscall entry loads: both are the running process's kernel stack.
pub fn set_kernel_stack(cpu: &PerCpu, top: u64) {
    cpu.kernel_rsp.store(top, Ordering::Relaxed);
    let tss = cpu.gdt.tss as *const x86_64::structures::tss::TaskStateSegment
        as *mut x86_64::structures::tss::TaskStateSegment;
    // Safety: only this CPU writes its TSS, between context switches with interrupts off; the
    // CPU reads RSP0 from it on the next ring-3 interrupt. The field may be unaligned (packed).
    unsafe {
        core::ptr::addr_of_mut!((*tss).privilege_stack_table[0]).write_unaligned(VirtAddr::new(top))
    };
}
