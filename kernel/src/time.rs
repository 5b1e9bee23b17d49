//! Time: the TSC, and the local APIC timer, calibrated at boot in one window measured with a
//! fixed-frequency reference. The references are tried in the order ACPI PM timer, HPET, PIT
//! (channel 2), and the first that works is used; `clock=pmtimer|hpet|pit` on the kernel command
//! line puts one first and then also measures the TSC against the others and logs how far they
//! agree (a check for tests and for new machines). A reference that is absent, does not count,
//! never closes its window or gives an implausible TSC frequency is skipped with a log line; a
//! machine with none left panics naming all three.

use acpi_tables::hpet::{self, Capabilities};
use acpi_tables::{AcpiInfo, Hpet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use klib::cmdline::ClockSource;
use x86_64::instructions::port::Port;

/// Length of the calibration window.
const WINDOW_NS: u64 = 10_000_000;
const NS_PER_S: u64 = 1_000_000_000;
const PM_TIMER_HZ: u64 = 3_579_545;
const PIT_HZ: u64 = 1_193_182;
/// TSC frequencies outside this range mean the reference lied (or the window was cut short).
const TSC_MIN_HZ: u64 = 100_000_000;
const TSC_MAX_HZ: u64 = 10_000_000_000;
/// TSC ticks after which a window that has not closed is abandoned: ten windows at the fastest
/// plausible TSC (0.1 s at 10 GHz, 1 s at 1 GHz, 10 s at the slowest plausible 100 MHz).
const GIVE_UP_TSC_TICKS: u64 = 10 * WINDOW_NS * (TSC_MAX_HZ / NS_PER_S);
/// Identical reads of a reference counter in a row after which it is declared stopped (the
/// slowest reference, the PM timer, ticks every 280 ns; one read takes longer than that).
const STUCK_READS: u32 = 1_000_000;

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

/// A fixed-frequency reference to calibrate against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    PmTimer,
    Hpet,
    Pit,
}

impl Source {
    /// The automatic order of preference.
    const AUTO: [Source; 3] = [Source::PmTimer, Source::Hpet, Source::Pit];

    /// The source `clock=` names, if it names one.
    fn forced(clock: ClockSource) -> Option<Source> {
        match clock {
            ClockSource::Auto => None,
            ClockSource::PmTimer => Some(Source::PmTimer),
            ClockSource::Hpet => Some(Source::Hpet),
            ClockSource::Pit => Some(Source::Pit),
        }
    }

    /// The name the log uses.
    fn name(self) -> &'static str {
        match self {
            Source::PmTimer => "ACPI PM timer",
            Source::Hpet => "HPET",
            Source::Pit => "PIT",
        }
    }
}

/// Why a reference cannot be used.
enum Unusable {
    /// The firmware does not describe one.
    Absent(&'static str),
    /// It is there but failed.
    Broken(String),
}

impl core::fmt::Display for Unusable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Unusable::Absent(why) => f.write_str(why),
            Unusable::Broken(why) => f.write_str(why),
        }
    }
}

/// One calibration window: TSC ticks and local APIC timer counts while the reference measured
/// `ns` nanoseconds.
#[derive(Clone, Copy, Default)]
struct Window {
    tsc: u64,
    apic: u32,
    ns: u64,
}

/// Frequencies derived from a window.
#[derive(Clone, Copy)]
struct Rates {
    tsc_hz: u64,
    apic_hz: u64,
}

impl Window {
    /// The frequencies, if they are plausible.
    fn rates(&self) -> Result<Rates, Unusable> {
        if self.ns == 0 {
            return Err(Unusable::Broken(String::from("the window measured 0 ns")));
        }
        let per_s = |count: u64| u128::from(count) * u128::from(NS_PER_S) / u128::from(self.ns);
        let tsc_hz = u64::try_from(per_s(self.tsc)).unwrap_or(u64::MAX);
        let apic_hz = u64::try_from(per_s(u64::from(self.apic))).unwrap_or(u64::MAX);
        if !(TSC_MIN_HZ..=TSC_MAX_HZ).contains(&tsc_hz) {
            return Err(Unusable::Broken(format!(
                "it makes the TSC run at {} MHz ({} TSC ticks in {} ns), outside the plausible \
                 {} MHz..{} MHz",
                tsc_hz / 1_000_000,
                self.tsc,
                self.ns,
                TSC_MIN_HZ / 1_000_000,
                TSC_MAX_HZ / 1_000_000
            )));
        }
        if self.apic == 0 {
            return Err(Unusable::Broken(String::from(
                "the local APIC timer did not count during the window",
            )));
        }
        Ok(Rates { tsc_hz, apic_hz })
    }
}

/// Measures the TSC and the local APIC timer against the first reference that works, in the
/// order `clock` asks for (see the module documentation).
pub fn calibrate(acpi: &AcpiInfo, clock: ClockSource) {
    let forced = Source::forced(clock);
    let mut order: Vec<Source> = forced.into_iter().collect();
    order.extend(Source::AUTO.into_iter().filter(|s| Some(*s) != forced));
    let mut failures: Vec<(Source, Unusable)> = Vec::new();
    for source in order {
        match measure(source, acpi).and_then(|w| w.rates()) {
            Ok(rates) => {
                if let Some(wanted) = forced.filter(|w| *w != source) {
                    log::warn!(
                        "clock={}: the {} cannot be used; calibrating against the {} instead",
                        clock.name(),
                        wanted.name(),
                        source.name()
                    );
                }
                TSC_HZ.store(rates.tsc_hz, Ordering::Relaxed);
                crate::apic::set_timer_hz(rates.apic_hz);
                log::info!(
                    "timers calibrated against the {}: TSC {} MHz, APIC timer {} kHz (/16)",
                    source.name(),
                    rates.tsc_hz / 1_000_000,
                    rates.apic_hz / 1_000
                );
                if forced.is_some() {
                    cross_check(acpi, source, rates, &failures);
                }
                return;
            }
            Err(why) => {
                match &why {
                    Unusable::Absent(_) => {
                        log::info!("clock calibration: no {}: {why}", source.name())
                    }
                    Unusable::Broken(_) => {
                        log::warn!(
                            "clock calibration: the {} is unusable: {why}",
                            source.name()
                        )
                    }
                }
                failures.push((source, why));
            }
        }
    }
    let mut reasons = String::new();
    for source in Source::AUTO {
        if let Some((_, why)) = failures.iter().find(|(s, _)| *s == source) {
            if !reasons.is_empty() {
                reasons.push_str("; ");
            }
            reasons.push_str(&format!("{}: {why}", source.name()));
        }
    }
    panic!("no clock to calibrate the TSC and the local APIC timer against ({reasons})");
}

/// With `clock=` given: measures the TSC against every other reference (those that already
/// `failed` are not tried again) and logs how far each lands from the one calibrated against.
fn cross_check(acpi: &AcpiInfo, used: Source, calibrated: Rates, failed: &[(Source, Unusable)]) {
    for other in Source::AUTO.into_iter().filter(|s| *s != used) {
        if let Some((_, why)) = failed.iter().find(|(s, _)| *s == other) {
            log::info!(
                "timer cross-check against the {}: unusable ({why})",
                other.name()
            );
            continue;
        }
        match measure(other, acpi).and_then(|w| w.rates()) {
            Ok(r) => {
                let ppm = (i128::from(r.tsc_hz) - i128::from(calibrated.tsc_hz)) * 1_000_000
                    / i128::from(calibrated.tsc_hz);
                log::info!(
                    "timer cross-check against the {}: TSC {} MHz, APIC timer {} kHz (/16), \
                     {ppm:+} ppm from the {}",
                    other.name(),
                    r.tsc_hz / 1_000_000,
                    r.apic_hz / 1_000,
                    used.name()
                );
            }
            Err(why) => log::info!(
                "timer cross-check against the {}: unusable ({why})",
                other.name()
            ),
        }
    }
}

/// One window against `source`, with the APIC timer counting down from the start.
/// Windows measured per source; the median one counts.
const WINDOWS: usize = 3;

/// The median of [`WINDOWS`] windows against `source` (by TSC rate): one window disturbed by
/// an SMI or, in a VM, by the host taking the CPU away (seen: a PIT window under a loaded TCG
/// host giving 3.7 GHz for a 2.6 GHz TSC) does not decide the clock.
fn measure(source: Source, acpi: &AcpiInfo) -> Result<Window, Unusable> {
    let mut windows = [Window::default(); WINDOWS];
    for w in &mut windows {
        *w = measure_once(source, acpi)?;
    }
    windows.sort_unstable_by_key(|w| u128::from(w.tsc) * 1_000_000_000 / u128::from(w.ns.max(1)));
    Ok(windows[WINDOWS / 2])
}

fn measure_once(source: Source, acpi: &AcpiInfo) -> Result<Window, Unusable> {
    crate::apic::start_calibration_count();
    match source {
        Source::PmTimer => {
            let pm = acpi
                .pm_timer
                .ok_or(Unusable::Absent("the FADT describes no PM timer"))?;
            window_pm_timer(pm.port, pm.is_32bit)
        }
        Source::Hpet => {
            let h = acpi
                .hpet
                .as_ref()
                .ok_or(Unusable::Absent("no usable ACPI HPET table"))?;
            window_hpet(h)
        }
        Source::Pit => window_pit(),
    }
}

/// Counts TSC ticks and APIC timer counts while a free-running counter (read by `read`, `mask`
/// wide) advances by at least `want` ticks. The window opens on a tick edge, so that a partial
/// first tick does not count; `to_ns` turns the ticks that really passed into nanoseconds.
fn counter_window(
    mut read: impl FnMut() -> u32,
    mask: u32,
    want: u32,
    to_ns: impl Fn(u64) -> u64,
) -> Result<Window, String> {
    let began = rdtsc();
    let first = read() & mask;
    let mut same = 0u32;
    let start = loop {
        let now = read() & mask;
        if now != first {
            break now;
        }
        same += 1;
        if same >= STUCK_READS || rdtsc().wrapping_sub(began) > GIVE_UP_TSC_TICKS {
            return Err(format!("the counter does not count (stuck at {first:#x})"));
        }
    };
    let tsc0 = rdtsc();
    let apic0 = crate::apic::calibration_elapsed();
    let (mut last, mut same) = (start, 0u32);
    loop {
        let now = read() & mask;
        let elapsed = now.wrapping_sub(start) & mask;
        if elapsed >= want {
            let tsc = rdtsc().wrapping_sub(tsc0);
            let apic = crate::apic::calibration_elapsed().wrapping_sub(apic0);
            return Ok(Window {
                tsc,
                apic,
                ns: to_ns(u64::from(elapsed)),
            });
        }
        if now == last {
            same += 1;
        } else {
            (last, same) = (now, 0);
        }
        if same >= STUCK_READS {
            return Err(format!("the counter stopped at {now:#x} within the window"));
        }
        if rdtsc().wrapping_sub(tsc0) > GIVE_UP_TSC_TICKS {
            return Err(format!(
                "the counter advanced only {elapsed} of {want} ticks in {GIVE_UP_TSC_TICKS} TSC \
                 ticks"
            ));
        }
    }
}

fn window_pm_timer(port: u16, is_32bit: bool) -> Result<Window, Unusable> {
    let mask: u32 = if is_32bit { u32::MAX } else { 0x00FF_FFFF };
    let mut p = Port::<u32>::new(port);
    let want = (PM_TIMER_HZ * WINDOW_NS / NS_PER_S) as u32;
    // Safety: reading the PM timer port named by the FADT has no side effects.
    let read = || unsafe { p.read() };
    counter_window(read, mask, want, |ticks| ticks * NS_PER_S / PM_TIMER_HZ)
        .map_err(|why| Unusable::Broken(format!("port {port:#x}: {why}")))
}

fn window_hpet(h: &Hpet) -> Result<Window, Unusable> {
    let broken = |why: String| Unusable::Broken(format!("at {:#x}: {why}", h.base));
    // The parser only reports an aligned block below the 52-bit physical limit, which is what
    // mapping it needs; check again rather than trust that from afar.
    let fits = h.base.is_multiple_of(8)
        && h.base
            .checked_add(hpet::REGISTER_BLOCK_LEN)
            .is_some_and(|end| end <= acpi_tables::MAX_PHYS_ADDR);
    if !fits {
        return Err(broken(String::from(
            "the register block is not addressable",
        )));
    }
    let regs = crate::memory::map_mmio(h.base, hpet::REGISTER_BLOCK_LEN)
        .map_err(|e| broken(format!("cannot map the registers: {e:?}")))?
        .as_u64();
    // Safety: `regs` maps the HPET's 1 KiB register block uncached (just above); the offsets
    // used are registers of that block, 4-byte aligned, and reading them has no side effects.
    let read = |off: usize| unsafe { core::ptr::read_volatile((regs + off as u64) as *const u32) };
    let caps = Capabilities::decode(read(hpet::CAPABILITIES), read(hpet::PERIOD))
        .map_err(|e| broken(format!("{e}")))?;
    log::info!(
        "HPET at {:#x}: {} kHz (period {} fs), {}-bit main counter, {} comparators, vendor {:04x}",
        h.base,
        caps.frequency_hz() / 1_000,
        caps.period_fs,
        if caps.counter_64bit { 64 } else { 32 },
        caps.comparators,
        caps.vendor_id
    );
    let config = read(hpet::CONFIGURATION);
    let started = config & hpet::ENABLE == 0;
    let set_config = |value: u32| {
        // Safety: the configuration register of the block mapped above; only ENABLE_CNF changes
        // (the other bits are written back as read), and no comparator is armed by the kernel,
        // so starting the counter raises no interrupt.
        unsafe { core::ptr::write_volatile((regs + hpet::CONFIGURATION as u64) as *mut u32, value) }
    };
    if started {
        set_config(config | hpet::ENABLE);
        log::info!("HPET: the main counter was stopped; started it");
    }
    // At most 2^31 ticks, so the 32-bit difference cannot wrap (a window that short is still
    // measured exactly: its length comes from the ticks that passed).
    let want = u32::try_from(caps.ticks_in_ns(WINDOW_NS).min(1 << 31)).unwrap_or(1 << 31);
    counter_window(
        || read(hpet::MAIN_COUNTER),
        u32::MAX,
        want,
        |ticks| caps.ns_in_ticks(ticks),
    )
    .map_err(|why| {
        if started {
            // Leave a device that does not behave as it was found.
            set_config(config);
        }
        broken(format!("main counter: {why}"))
    })
}

fn window_pit() -> Result<Window, Unusable> {
    let count = (PIT_HZ * WINDOW_NS / NS_PER_S) as u16;
    let ns = u64::from(count) * NS_PER_S / PIT_HZ;
    // Safety: PIT channel 2 and port 0x61 are used only here, during boot, with interrupts off:
    // channel 2 in mode 0 counts down once and raises its output (port 0x61 bit 5) at zero.
    unsafe {
        let mut ctl = Port::<u8>::new(0x61);
        // Gate on and speaker off before the channel is programmed, so the count starts when it
        // is written. (Raising the gate afterwards, as the 8254 also allows, makes QEMU under
        // KVM move the channel's start time and end the window early.)
        let idle = ctl.read() & 0x0C;
        ctl.write(idle | 0x01);
        Port::<u8>::new(0x43).write(0xB0); // channel 2, lo/hi byte, mode 0
        let mut ch2 = Port::<u8>::new(0x42);
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        let tsc0 = rdtsc();
        let apic0 = crate::apic::calibration_elapsed();
        // Mode 0 drives the output low until the count runs out: high now means no PIT answers.
        if ctl.read() & 0x20 != 0 {
            ctl.write(idle);
            return Err(Unusable::Broken(String::from(
                "channel 2's output is high as it starts counting (no PIT behind ports 0x42/0x61?)",
            )));
        }
        while ctl.read() & 0x20 == 0 {
            if rdtsc().wrapping_sub(tsc0) > GIVE_UP_TSC_TICKS {
                ctl.write(idle);
                return Err(Unusable::Broken(format!(
                    "channel 2 never counted down {count} ticks (gave up after \
                     {GIVE_UP_TSC_TICKS} TSC ticks)"
                )));
            }
        }
        let tsc = rdtsc().wrapping_sub(tsc0);
        let apic = crate::apic::calibration_elapsed().wrapping_sub(apic0);
        ctl.write(idle);
        Ok(Window { tsc, apic, ns })
    }
}
