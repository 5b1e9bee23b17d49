//! Per-CPU data, reached through the GS base: each CPU's index, APIC id, descriptor tables and
//! event counters. CPUs are numbered 0 (the bootstrap CPU) to N-1 in the order they came online.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use x86_64::registers::model_specific::GsBase;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

/// Most CPUs the kernel will bring up.
pub const MAX_CPUS: usize = 64;

/// Event counters of one CPU, read by `stat` and the tests.
#[derive(Default)]
pub struct Counters {
    /// Timer interrupts taken.
    pub ticks: AtomicU64,
    /// All interrupts taken (timer, devices, IPIs).
    pub interrupts: AtomicU64,
}

#[repr(C)]
pub struct PerCpu {
    /// Points at this structure; read with `gs:[0]`. Must stay the first field.
    self_ptr: *const PerCpu,
    pub index: u32,
    pub apic_id: u32,
    pub counters: Counters,
    pub gdt: &'static crate::gdt::CpuGdt,
    pub idt: &'static InterruptDescriptorTable,
}

// Safety: `self_ptr` is only ever read; every other field is immutable after creation or atomic.
unsafe impl Sync for PerCpu {}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Builds the per-CPU block for CPU `index` (descriptor tables, IST stacks). Runs on the BSP for
/// every CPU, before that CPU starts.
pub fn create(index: u32, apic_id: u32) -> &'static PerCpu {
    let gdt = crate::gdt::CpuGdt::new();
    let idt = Box::leak(Box::new(crate::interrupts::new_idt()));
    let cpu = Box::leak(Box::new(PerCpu {
        self_ptr: core::ptr::null(),
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
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags)) };
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

/// Halts this CPU forever, waking only for interrupts.
pub fn idle() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}
