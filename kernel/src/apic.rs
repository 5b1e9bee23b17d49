//! The local APIC of each CPU, in x2APIC mode (MSRs) when the CPU has it and xAPIC mode (MMIO)
//! otherwise: enable, end-of-interrupt, the calibrated periodic timer, and inter-processor
//! interrupts (INIT, STARTUP, fixed vectors, NMI).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

// Register offsets (xAPIC MMIO offsets; x2APIC MSR = 0x800 + offset / 16).
const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xB0;
const REG_SVR: u32 = 0xF0;
const REG_ESR: u32 = 0x280;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3E0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const TIMER_DIVIDE_16: u32 = 0x3;
const ICR_PENDING: u32 = 1 << 12;

/// Timer interrupt rate of every CPU.
pub const TICK_HZ: u64 = 100;

static X2APIC: AtomicBool = AtomicBool::new(false);
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);
static READY: AtomicBool = AtomicBool::new(false);
/// Local APIC timer counts per second at divide-by-16, measured by `time::calibrate`.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // Safety: x2APIC mode is enabled on every CPU before this is called; the MSR exists.
        unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 }
    } else {
        let base = MMIO_BASE.load(Ordering::Relaxed);
        // Safety: `base` maps the local APIC page uncached; `reg` is a valid register offset.
        unsafe { core::ptr::read_volatile((base + reg as u64) as *const u32) }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // Safety: as in `read`; writing a valid value to an x2APIC register.
        unsafe { Msr::new(0x800 + (reg >> 4)).write(value as u64) }
    } else {
        let base = MMIO_BASE.load(Ordering::Relaxed);
        // Safety: as in `read`.
        unsafe { core::ptr::write_volatile((base + reg as u64) as *mut u32, value) }
    }
}

fn cpu_has_x2apic() -> bool {
    // CPUID.1:ECX bit 21.
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

/// The APIC id of the calling CPU as CPUID reports it (usable before the APIC is set up).
pub fn cpuid_apic_id() -> u32 {
    if cpu_has_x2apic() && core::arch::x86_64::__cpuid(0).eax >= 0xB {
        core::arch::x86_64::__cpuid_count(0xB, 0).edx
    } else {
        core::arch::x86_64::__cpuid(1).ebx >> 24
    }
}

/// Chooses the mode, maps the registers if needed, and enables the BSP's APIC.
pub fn init_bsp(acpi: &acpi_tables::AcpiInfo) {
    let x2 = cpu_has_x2apic();
    X2APIC.store(x2, Ordering::Relaxed);
    if !x2 {
        // Safety: reading IA32_APIC_BASE has no side effects.
        let msr_base = unsafe { Msr::new(IA32_APIC_BASE).read() } & 0x000F_FFFF_FFFF_F000;
        if msr_base != acpi.local_apic_addr {
            log::warn!(
                "APIC base MSR {msr_base:#x} differs from ACPI's {:#x}; using the MSR",
                acpi.local_apic_addr
            );
        }
        let virt = crate::memory::map_mmio(msr_base, 4096)
            .unwrap_or_else(|e| panic!("cannot map the local APIC: {e:?}"));
        MMIO_BASE.store(virt.as_u64(), Ordering::Relaxed);
    }
    init_local();
    READY.store(true, Ordering::Release);
    log::info!(
        "local APIC in {} mode, BSP APIC id {}",
        if x2 { "x2APIC" } else { "xAPIC" },
        id()
    );
}

/// Enables the calling CPU's APIC in the mode the BSP chose.
pub fn init_local() {
    let msr = Msr::new(IA32_APIC_BASE);
    // Safety: setting the enable bits of IA32_APIC_BASE (and x2APIC mode when the CPU has it) is
    // the documented way to turn the APIC on; the base address is left unchanged.
    unsafe {
        let mut m = msr;
        let mut v = m.read() | APIC_BASE_ENABLE;
        if X2APIC.load(Ordering::Relaxed) {
            v |= APIC_BASE_X2APIC;
        }
        m.write(v);
    }
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | crate::trap::SPURIOUS_VECTOR as u32);
    write(REG_ESR, 0);
    write(REG_LVT_TIMER, LVT_MASKED);
}

pub fn id() -> u32 {
    let raw = read(REG_ID);
    if X2APIC.load(Ordering::Relaxed) {
        raw
    } else {
        raw >> 24
    }
}

pub fn eoi() {
    write(REG_EOI, 0);
}

/// Starts a free-running one-shot countdown (masked) for calibration.
pub fn start_calibration_count() {
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(REG_LVT_TIMER, LVT_MASKED);
    write(REG_TIMER_INITIAL, u32::MAX);
}

/// Counts elapsed since `start_calibration_count`.
pub fn calibration_elapsed() -> u32 {
    u32::MAX - read(REG_TIMER_CURRENT)
}

pub fn set_timer_hz(hz: u64) {
    TIMER_HZ.store(hz, Ordering::Relaxed);
}

/// Starts the calling CPU's periodic timer at [`TICK_HZ`].
pub fn start_timer() {
    let count = (TIMER_HZ.load(Ordering::Relaxed) / TICK_HZ).clamp(1, u32::MAX as u64) as u32;
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(
        REG_LVT_TIMER,
        LVT_PERIODIC | crate::trap::TIMER_VECTOR as u32,
    );
    write(REG_TIMER_INITIAL, count);
}

fn send_icr(dest: u32, low: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // Safety: writing the x2APIC ICR sends the interrupt described by `low` to `dest`.
        unsafe { Msr::new(0x830).write(((dest as u64) << 32) | low as u64) }
    } else {
        write(REG_ICR_HIGH, dest << 24);
        write(REG_ICR_LOW, low);
        let mut spins = 0u32;
        while read(REG_ICR_LOW) & ICR_PENDING != 0 && spins < 1_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
    }
}

/// INIT (level assert) to `dest`.
pub fn send_init(dest: u32) {
    send_icr(dest, 0x0000_4500);
}

/// STARTUP with the trampoline at physical page `page` (address = page * 4096, below 1 MiB).
pub fn send_startup(dest: u32, page: u8) {
    send_icr(dest, 0x0000_4600 | page as u32);
}

/// A fixed-vector interrupt to `dest`.
pub fn send_ipi(dest: u32, vector: u8) {
    send_icr(dest, 0x0000_4000 | vector as u32);
}

/// An NMI to every CPU but the caller (used to stop them on panic).
pub fn nmi_all_others() {
    if READY.load(Ordering::Acquire) {
        // Shorthand "all excluding self" (bits 18-19 = 11), delivery mode NMI (100).
        send_icr(0, 0x000C_4400);
    }
}
