//! Time: the TSC, calibrated at boot against the ACPI PM timer (or the PIT when the firmware has
//! no PM timer), and the local APIC timer calibrated in the same window.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// Length of the calibration window.
const WINDOW_NS: u64 = 10_000_000;
const PM_TIMER_HZ: u64 = 3_579_545;
const PIT_HZ: u64 = 1_193_182;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);

pub fn rdtsc() -> u64 {
    // Safety: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds in `ticks` TSC ticks (0 before calibration).
pub fn tsc_to_ns(ticks: u64) -> u64 {
    let hz = tsc_hz();
    if hz == 0 {
        return 0;
    }
    (ticks as u128 * 1_000_000_000 / hz as u128) as u64
}

/// TSC ticks in `ns` nanoseconds.
pub fn ns_to_tsc(ns: u64) -> u64 {
    (ns as u128 * tsc_hz() as u128 / 1_000_000_000) as u64
}

/// Nanoseconds since the TSC started counting.
pub fn now_ns() -> u64 {
    tsc_to_ns(rdtsc())
}

/// Busy-waits `ns` nanoseconds.
pub fn spin_ns(ns: u64) {
    let start = rdtsc();
    let ticks = (ns as u128 * tsc_hz() as u128 / 1_000_000_000) as u64;
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Measures the TSC and the local APIC timer against a fixed-frequency reference.
pub fn calibrate(acpi: &acpi_tables::AcpiInfo) {
    crate::apic::start_calibration_count();
    let (source, tsc_ticks, apic_ticks) = match &acpi.pm_timer {
        Some(pm) => {
            let (t, a) = window_pm_timer(pm.port, pm.is_32bit);
            ("ACPI PM timer", t, a)
        }
        None => {
            let (t, a) = window_pit();
            ("PIT", t, a)
        }
    };
    let tsc_hz = tsc_ticks * (1_000_000_000 / WINDOW_NS);
    let apic_hz = apic_ticks as u64 * (1_000_000_000 / WINDOW_NS);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    crate::apic::set_timer_hz(apic_hz);
    log::info!(
        "timers calibrated against the {source}: TSC {} MHz, APIC timer {} kHz (/16)",
        tsc_hz / 1_000_000,
        apic_hz / 1_000
    );
}

fn window_pm_timer(port: u16, is_32bit: bool) -> (u64, u32) {
    let mask: u32 = if is_32bit { u32::MAX } else { 0x00FF_FFFF };
    let mut p = Port::<u32>::new(port);
    let want = (PM_TIMER_HZ * WINDOW_NS / 1_000_000_000) as u32;
    // Safety: reading the PM timer port named by the FADT has no side effects.
    let start = unsafe { p.read() } & mask;
    let tsc0 = rdtsc();
    let apic0 = crate::apic::calibration_elapsed();
    loop {
        // Safety: as above.
        let now = unsafe { p.read() } & mask;
        if now.wrapping_sub(start) & mask >= want {
            break;
        }
    }
    (rdtsc() - tsc0, crate::apic::calibration_elapsed() - apic0)
}

fn window_pit() -> (u64, u32) {
    let count = (PIT_HZ * WINDOW_NS / 1_000_000_000) as u16;
    // Safety: PIT channel 2 and port 0x61 are used only here, during boot, with interrupts off:
    // channel 2 in mode 0 counts down once and raises its output (port 0x61 bit 5) at zero.
    unsafe {
        let mut ctl = Port::<u8>::new(0x61);
        let gate = ctl.read() & !0x02; // speaker off
        ctl.write(gate & !0x01);
        Port::<u8>::new(0x43).write(0xB0); // channel 2, lo/hi byte, mode 0
        let mut ch2 = Port::<u8>::new(0x42);
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        let tsc0 = rdtsc();
        let apic0 = crate::apic::calibration_elapsed();
        ctl.write(gate | 0x01);
        let mut spins = 0u64;
        while ctl.read() & 0x20 == 0 {
            spins += 1;
            if spins > 100_000_000 {
                panic!("PIT channel 2 never fired: no timer to calibrate against");
            }
        }
        (rdtsc() - tsc0, crate::apic::calibration_elapsed() - apic0)
    }
}
