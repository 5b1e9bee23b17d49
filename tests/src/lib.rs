//! The QEMU scenario tests of Axolotl, as plain data: each [`Scenario`] is a name and a function
//! that boots the system through a [`Harness`] and judges what came back.
//!
//! This crate knows nothing about QEMU's command line, images or processes: `cargo xtask test`
//! implements [`Harness`] with its QEMU runner, runs [`scenarios`] (at most two at a time, the
//! [`Scenario::exclusive`] ones alone) and prints `test NAME ... ok|FAILED` for each. Keeping the
//! scenarios here, separate from the runner, lets their judgement be unit-tested on the host with
//! a fake harness (see the tests at the bottom) and keeps the list of what is tested in one place.
//!
//! The guest's side of the contract is the kernel command line key `test=` (see
//! `klib::cmdline::BootMode`), the `isa-debug-exit` verdict (0x10 pass, 0x11 fail) and the
//! machine-readable boot line `boot: N cpus online boot_ms=T`.

pub mod transcript;

use std::time::Duration;

pub use transcript::BootLine;

/// How to boot the guest for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    /// Number of virtual CPUs (`-smp`).
    pub smp: u32,
    /// Guest memory in MiB (`-m`).
    pub mem_mib: u32,
    /// Boot through UEFI firmware (OVMF) instead of the legacy BIOS.
    pub uefi: bool,
    /// The kernel command line, packed into the ramdisk module `cmdline`.
    pub cmdline: String,
    /// Wall-clock limit after which the harness kills QEMU.
    pub timeout: Duration,
}

impl BootSpec {
    /// A BIOS boot with `smp` CPUs, 256 MiB, the given command line and a 60 s timeout.
    pub fn bios(smp: u32, cmdline: &str) -> Self {
        Self {
            smp,
            mem_mib: 256,
            uefi: false,
            cmdline: cmdline.to_string(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The same boot through UEFI firmware.
    pub fn uefi(mut self) -> Self {
        self.uefi = true;
        self
    }

    /// The same boot with another timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest wrote the success verdict (0x10) to the debug-exit port: QEMU exited 33.
    Passed,
    /// The guest wrote the failure verdict (0x11) to the debug-exit port: QEMU exited 35.
    GuestFailed,
    /// QEMU exited 0 without a verdict: the guest reset (a triple fault, under `-no-reboot`) or
    /// powered off.
    Reset,
    /// The run outlived its timeout and the harness killed QEMU.
    Timeout,
    /// QEMU did not start, or ended in a way the guest cannot cause (bad option, signal, unknown
    /// status); the text says how, with QEMU's stderr.
    QemuError(String),
    /// The harness could not prepare the run (kernel missing, image not written ...).
    SetupFailed(String),
}

impl Outcome {
    /// A short human description, as used in failure messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Passed => "guest reported success".to_string(),
            Self::GuestFailed => "guest reported failure".to_string(),
            Self::Reset => {
                "guest reset or powered off without reporting a result (triple fault?)".to_string()
            }
            Self::Timeout => "timeout: QEMU was killed".to_string(),
            Self::QemuError(e) => format!("QEMU error: {e}"),
            Self::SetupFailed(e) => format!("could not prepare the run: {e}"),
        }
    }
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootResult {
    /// How it ended.
    pub outcome: Outcome,
    /// Everything the guest wrote to its serial port, with `\r` and terminal escapes removed.
    pub transcript: String,
    /// Wall-clock time from starting QEMU to its end.
    pub elapsed: Duration,
    /// Process id of the QEMU that ran (also its process group id in non-interactive runs), so a
    /// scenario can check that it is gone. `None` when QEMU never started.
    pub qemu_pid: Option<u32>,
}

/// Boots the guest; implemented by xtask's QEMU runner (and by fakes in unit tests).
pub trait Harness: Sync {
    /// Boots once with `spec`. `name` identifies the run (xtask uses it for the folder of the
    /// run's images, so concurrent runs must use different names). Never panics: every failure
    /// is an [`Outcome`].
    fn boot(&self, name: &str, spec: &BootSpec) -> BootResult;
}

/// One QEMU scenario.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Unique name, printed as `test NAME ... ok`; `cargo xtask test FILTER` matches on it.
    pub name: &'static str,
    /// Run alone, with no other QEMU beside it: for scenarios that measure time or use many
    /// virtual CPUs (the development machine has two cores).
    pub exclusive: bool,
    /// What the host must offer (root, a TAP device ...): `Err(reason)` skips the scenario, and
    /// the reason is printed. `None`: no requirement.
    pub requires: Option<fn() -> Result<(), String>>,
    /// Boots through the harness and judges the result: `Err` holds the reason of a failure.
    pub run: fn(&dyn Harness) -> Result<(), String>,
}

impl Scenario {
    /// A scenario that shares the machine and needs nothing of the host.
    pub const fn new(name: &'static str, run: fn(&dyn Harness) -> Result<(), String>) -> Self {
        Self {
            name,
            exclusive: false,
            requires: None,
            run,
        }
    }

    /// The same scenario, run with no other QEMU beside it.
    pub const fn alone(mut self) -> Self {
        self.exclusive = true;
        self
    }

    /// The same scenario, skipped when `check` fails.
    pub const fn requires(mut self, check: fn() -> Result<(), String>) -> Self {
        self.requires = Some(check);
        self
    }
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

/// Every QEMU scenario, in the order they are reported.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("boot_bios_smp1", boot_bios_smp1),
        Scenario::new("boot_bios_smp2", boot_bios_smp2),
        Scenario::new("boot_bios_smp4", boot_bios_smp4),
        Scenario::new("boot_bios_smp8", boot_bios_smp8).alone(),
        Scenario::new("boot_uefi_smp4", boot_uefi_smp4),
        Scenario::new("panic_reports_failure", panic_reports_failure),
        Scenario::new("triple_fault_is_caught", triple_fault_is_caught),
        Scenario::new("hang_is_killed_by_timeout", hang_is_killed_by_timeout),
    ]
}

/// Limit on the kernel's own boot time measure for an 8-CPU BIOS boot (guest milliseconds).
pub const SMP8_BOOT_MS_LIMIT: u64 = 3000;

fn boot_bios_smp1(h: &dyn Harness) -> Result<(), String> {
    boots_with_cpus(h, "boot_bios_smp1", exit_after_boot(1)).map(drop)
}

fn boot_bios_smp2(h: &dyn Harness) -> Result<(), String> {
    boots_with_cpus(h, "boot_bios_smp2", exit_after_boot(2)).map(drop)
}

fn boot_bios_smp4(h: &dyn Harness) -> Result<(), String> {
    boots_with_cpus(h, "boot_bios_smp4", exit_after_boot(4)).map(drop)
}

fn boot_bios_smp8(h: &dyn Harness) -> Result<(), String> {
    let spec = exit_after_boot(8).timeout(Duration::from_secs(90));
    let line = boots_with_cpus(h, "boot_bios_smp8", spec)?;
    if line.boot_ms >= SMP8_BOOT_MS_LIMIT {
        return Err(format!(
            "boot took boot_ms={} (guest time), limit is {SMP8_BOOT_MS_LIMIT}",
            line.boot_ms
        ));
    }
    Ok(())
}

fn boot_uefi_smp4(h: &dyn Harness) -> Result<(), String> {
    let spec = exit_after_boot(4).uefi().timeout(Duration::from_secs(90));
    boots_with_cpus(h, "boot_uefi_smp4", spec).map(drop)
}

/// A BIOS boot with `smp` CPUs that reports success right after its boot line.
fn exit_after_boot(smp: u32) -> BootSpec {
    BootSpec::bios(smp, "test=exit-after-boot")
}

/// Boots with `test=exit-after-boot` and checks the verdict and the CPU count of the boot line.
fn boots_with_cpus(h: &dyn Harness, name: &str, spec: BootSpec) -> Result<BootLine, String> {
    let r = h.boot(name, &spec);
    expect_outcome(&r, &Outcome::Passed)?;
    let line = transcript::boot_line(&r.transcript)
        .ok_or("no 'boot: N cpus online boot_ms=T' line in the transcript")?;
    if line.cpus != spec.smp {
        return Err(format!(
            "boot line says {} cpus online, expected {}",
            line.cpus, spec.smp
        ));
    }
    Ok(line)
}

fn panic_reports_failure(h: &dyn Harness) -> Result<(), String> {
    let r = h.boot("panic_reports_failure", &BootSpec::bios(1, "test=panic"));
    expect_outcome(&r, &Outcome::GuestFailed)?;
    for needle in ["KERNEL PANIC", "deliberate panic (test=panic)"] {
        if !r.transcript.contains(needle) {
            return Err(format!("transcript lacks '{needle}'"));
        }
    }
    Ok(())
}

fn triple_fault_is_caught(h: &dyn Harness) -> Result<(), String> {
    let spec = BootSpec::bios(1, "test=triple-fault");
    let r = h.boot("triple_fault_is_caught", &spec);
    expect_outcome(&r, &Outcome::Reset)?;
    if r.elapsed >= spec.timeout / 2 {
        return Err(format!(
            "the reset came only after {:.1} s, too close to the {} s timeout",
            r.elapsed.as_secs_f64(),
            spec.timeout.as_secs()
        ));
    }
    Ok(())
}

fn hang_is_killed_by_timeout(h: &dyn Harness) -> Result<(), String> {
    let spec = BootSpec::bios(1, "test=hang").timeout(Duration::from_secs(15));
    let r = h.boot("hang_is_killed_by_timeout", &spec);
    expect_outcome(&r, &Outcome::Timeout)?;
    if r.elapsed < spec.timeout {
        return Err(format!(
            "reported a timeout after {:.1} s, before the {} s limit",
            r.elapsed.as_secs_f64(),
            spec.timeout.as_secs()
        ));
    }
    let pid = r.qemu_pid.ok_or("the harness did not report QEMU's pid")?;
    let alive = host::wait_gone(pid, Duration::from_secs(2));
    if !alive.is_empty() {
        return Err(format!(
            "QEMU (pid {pid}) or its process group is still alive: {alive:?}"
        ));
    }
    if !r.transcript.contains("boot:") {
        return Err("the guest never finished booting, so the hang was not tested".to_string());
    }
    Ok(())
}

/// Checks the outcome, explaining a mismatch.
fn expect_outcome(r: &BootResult, want: &Outcome) -> Result<(), String> {
    if &r.outcome == want {
        Ok(())
    } else {
        Err(format!(
            "expected: {}; got: {} (after {:.1} s)",
            want.describe(),
            r.outcome.describe(),
            r.elapsed.as_secs_f64()
        ))
    }
}

/// Looking at host processes through `/proc` (Linux).
pub mod host {
    use std::time::{Duration, Instant};

    /// Live (not zombie) processes whose pid or process group id is `pid`, with their names.
    pub fn live_processes_of(pid: u32) -> Vec<(u32, String)> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                let (name, state, pgrp) = parse_stat(&stat)?;
                let dead = matches!(state, 'Z' | 'X' | 'x');
                (!dead && (p == pid || pgrp == pid)).then(|| (p, name.to_string()))
            })
            .collect()
    }

    /// Waits up to `limit` for [`live_processes_of`] `pid` to be empty (a killed process takes a
    /// moment to go); returns what is still alive then.
    pub fn wait_gone(pid: u32, limit: Duration) -> Vec<(u32, String)> {
        let end = Instant::now() + limit;
        loop {
            let alive = live_processes_of(pid);
            if alive.is_empty() || Instant::now() >= end {
                return alive;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The command name, state letter and process group of a `/proc/PID/stat` line:
    /// `PID (NAME) STATE PPID PGRP ...`, where NAME may itself hold spaces and parentheses.
    pub fn parse_stat(stat: &str) -> Option<(&str, char, u32)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat.get(open + 1..close)?;
        let mut rest = stat.get(close + 1..)?.split_ascii_whitespace();
        let state = rest.next()?.chars().next()?;
        let _ppid = rest.next()?;
        let pgrp = rest.next()?.parse().ok()?;
        Some((name, state, pgrp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A harness that answers every boot with a canned result and records the specs it saw.
    struct Fake {
        answer: Box<dyn Fn(&BootSpec) -> BootResult + Sync>,
        seen: Mutex<Vec<(String, BootSpec)>>,
    }

    impl Fake {
        fn new(answer: impl Fn(&BootSpec) -> BootResult + Sync + 'static) -> Self {
            Self {
                answer: Box::new(answer),
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    impl Harness for Fake {
        fn boot(&self, name: &str, spec: &BootSpec) -> BootResult {
            self.seen
                .lock()
                .unwrap()
                .push((name.to_string(), spec.clone()));
            (self.answer)(spec)
        }
    }

    fn result(outcome: Outcome, transcript: &str, secs: u64) -> BootResult {
        BootResult {
            outcome,
            transcript: transcript.to_string(),
            elapsed: Duration::from_secs(secs),
            qemu_pid: None,
        }
    }

    fn find(name: &str) -> Scenario {
        scenarios().into_iter().find(|s| s.name == name).unwrap()
    }

    /// A guest that boots with the requested CPU count in `ms` guest milliseconds.
    fn good_boot(ms: u64) -> Fake {
        Fake::new(move |s| {
            let line = format!("[INFO] boot: {} cpus online boot_ms={ms}\n", s.smp);
            result(Outcome::Passed, &line, 2)
        })
    }

    #[test]
    fn names_are_unique_and_boot_names_match_specs() {
        let all = scenarios();
        for (i, s) in all.iter().enumerate() {
            assert!(
                all[..i].iter().all(|o| o.name != s.name),
                "duplicate {}",
                s.name
            );
        }
        for s in &all {
            let h = good_boot(10);
            let _ = (s.run)(&h);
            let seen = h.seen.lock().unwrap();
            assert_eq!(seen.len(), 1, "{} boots once", s.name);
            assert_eq!(seen[0].0, s.name, "runs are named after their scenario");
        }
    }

    #[test]
    fn boot_scenarios_pass_on_good_boots_with_the_right_cpus() {
        for (name, smp, uefi) in [
            ("boot_bios_smp1", 1, false),
            ("boot_bios_smp2", 2, false),
            ("boot_bios_smp4", 4, false),
            ("boot_bios_smp8", 8, false),
            ("boot_uefi_smp4", 4, true),
        ] {
            let h = good_boot(100);
            assert_eq!((find(name).run)(&h), Ok(()), "{name}");
            let seen = h.seen.lock().unwrap();
            assert_eq!((seen[0].1.smp, seen[0].1.uefi), (smp, uefi), "{name}");
            assert_eq!(seen[0].1.cmdline, "test=exit-after-boot");
        }
    }

    #[test]
    fn boot_scenarios_fail_on_wrong_cpus_missing_line_or_bad_outcome() {
        let s = find("boot_bios_smp4");
        let wrong = Fake::new(|_| result(Outcome::Passed, "boot: 1 cpus online boot_ms=5\n", 1));
        assert!(
            (s.run)(&wrong)
                .unwrap_err()
                .contains("1 cpus online, expected 4")
        );
        let silent = Fake::new(|_| result(Outcome::Passed, "hello\n", 1));
        assert!((s.run)(&silent).unwrap_err().contains("no 'boot:"));
        let failed = Fake::new(|_| result(Outcome::GuestFailed, "boot: 4 cpus online\n", 1));
        assert!(
            (s.run)(&failed)
                .unwrap_err()
                .contains("got: guest reported failure")
        );
    }

    #[test]
    fn smp8_enforces_the_boot_time_limit() {
        let s = find("boot_bios_smp8");
        assert!(s.exclusive);
        assert_eq!((s.run)(&good_boot(2999)), Ok(()));
        let err = (s.run)(&good_boot(3000)).unwrap_err();
        assert!(err.contains("boot_ms=3000"), "{err}");
    }

    #[test]
    fn panic_scenario_needs_failure_verdict_and_message() {
        let s = find("panic_reports_failure");
        let text = "boot: 1 cpus online boot_ms=3\n\nKERNEL PANIC on cpu0: src/main.rs:1:1: \
                    deliberate panic (test=panic)\n";
        assert_eq!(
            (s.run)(&Fake::new(move |_| result(Outcome::GuestFailed, text, 1))),
            Ok(())
        );
        let no_msg = Fake::new(|_| result(Outcome::GuestFailed, "KERNEL PANIC on cpu0: x\n", 1));
        assert!((s.run)(&no_msg).unwrap_err().contains("deliberate panic"));
        let passed = Fake::new(move |_| result(Outcome::Passed, text, 1));
        assert!((s.run)(&passed).is_err());
    }

    #[test]
    fn triple_fault_must_reset_well_before_the_timeout() {
        let s = find("triple_fault_is_caught");
        assert_eq!(
            (s.run)(&Fake::new(|_| result(Outcome::Reset, "", 3))),
            Ok(())
        );
        let slow = Fake::new(|spec| result(Outcome::Reset, "", spec.timeout.as_secs() - 1));
        assert!((s.run)(&slow).unwrap_err().contains("too close"));
        assert!((s.run)(&Fake::new(|_| result(Outcome::Timeout, "", 60))).is_err());
    }

    #[test]
    fn hang_must_time_out_and_leave_no_process() {
        let s = find("hang_is_killed_by_timeout");
        let timed_out = |pid: Option<u32>| {
            Fake::new(move |spec| BootResult {
                qemu_pid: pid,
                ..result(
                    Outcome::Timeout,
                    "boot: 1 cpus online boot_ms=1\n",
                    spec.timeout.as_secs(),
                )
            })
        };
        // A pid that cannot exist (above the kernel's limit of 2^22).
        assert_eq!((s.run)(&timed_out(Some(u32::MAX - 7))), Ok(()));
        // Our own pid is certainly alive.
        let err = (s.run)(&timed_out(Some(std::process::id()))).unwrap_err();
        assert!(err.contains("still alive"), "{err}");
        assert!((s.run)(&timed_out(None)).is_err());
        let h = timed_out(Some(u32::MAX - 7));
        let _ = (s.run)(&h);
        assert_eq!(h.seen.lock().unwrap()[0].1.timeout, Duration::from_secs(15));
    }

    #[test]
    fn scenario_builders() {
        let s = Scenario::new("x", |_| Ok(()));
        assert!(!s.exclusive && s.requires.is_none());
        let s = s.alone().requires(|| Err("no TAP device".into()));
        assert!(s.exclusive);
        assert_eq!(
            s.requires.map(|r| r()),
            Some(Err("no TAP device".to_string()))
        );
        assert!(format!("{s:?}").contains("\"x\""));
    }

    #[test]
    fn stat_lines_parse_with_odd_names() {
        assert_eq!(
            host::parse_stat("42 (qemu-system-x86) S 1 42 42 0"),
            Some(("qemu-system-x86", 'S', 42))
        );
        assert_eq!(
            host::parse_stat("7 (a) b (c)) Z 1 99 7"),
            Some(("a) b (c)", 'Z', 99))
        );
        assert_eq!(host::parse_stat("garbage"), None);
    }
}
