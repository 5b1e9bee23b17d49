//! `cargo xtask test [FILTER]`: every test of the project, counted into one summary.
//!
//! 1. Host unit tests: `cargo test --no-fail-fast` at the workspace root, which tests the
//!    workspace's default members (the host crates: klib, libchan, acpi-tables, xtask,
//!    axolotl-tests; the kernel is not among them). Each `test result:` line is added up;
//!    ignored tests count as skipped. A non-zero exit of cargo with no failed test counted (a
//!    build error, a crashed test binary) counts as one failure.
//! 2. The kernel is built once, with the release profile: the tests then run the optimised code
//!    that `bench` measures, and emulation under TCG is faster.
//! 3. The in-kernel suite: one BIOS boot with `-smp 2` and `test=kernel`. Each
//!    `ktest NAME ... ok|FAILED` line is one test, `kernel::NAME`; one more test,
//!    `kernel::suite_completed`, checks that the suite ran to its end: the final
//!    `ktest: N passed, M failed` line was printed, agrees with the lines, and the QEMU verdict
//!    agrees with it (pass exactly when M is 0).
//! 4. The QEMU scenarios of the `axolotl-tests` crate, two at a time at most, the exclusive ones
//!    alone at the end. Every QEMU run has a timeout and is killed at it. A scenario that boots
//!    processes names its manifest (none, the system manifest, or a test manifest); the harness
//!    validates it and builds the user programs it names the first time it is needed (a failure
//!    fails the scenarios that need it, with the reason). Scenarios that share a boot (see
//!    `Scenario::shares_boot`) are answered from one QEMU run, each counted as its own test. A
//!    scenario that fails after QEMU itself died (`qemu::emulator_death`) runs once more, and
//!    its verdict names the first try.
//!
//! Every test prints `test NAME ... ok` (`ok (NOTE)` when it measured something) or
//! `test NAME ... FAILED` (with the reason and the tail of the guest's transcript); a QEMU
//! scenario's line ends with how long it took, ` [T s]`. Before the last line, `time: ...` says
//! how long each phase took and names the slowest scenarios. The last line is
//! `N passed, M failed` (`, K skipped` when some were skipped), and the exit status is 0 only
//! when nothing failed.
//!
//! FILTER selects tests whose name contains it: it is passed to `cargo test` for the host tests,
//! selects scenarios by name, and selects the in-kernel suite (one boot for all of its tests)
//! when it is a prefix of `kernel::` or starts with it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axolotl_tests::{
    BootResult, BootSpec, Harness, ManifestSource, Outcome, Scenario, XtaskRun, transcript,
};

use crate::args::{Accel, Firmware, Net, Nic, TestArgs};
use crate::counts::{self, CargoCounts};
use crate::host::{self, Ovmf, Tools};
use crate::qemu::{self, Boot, Console, Echo, Machine, RunOptions};
use crate::{Error, exec, images};

/// Lines of transcript shown under a failed test.
const TAIL_LINES: usize = 25;
/// Limit of the in-kernel suite's boot.
const KERNEL_SUITE_TIMEOUT: Duration = Duration::from_secs(180);
/// Name prefix of the in-kernel tests.
const KERNEL_PREFIX: &str = "kernel::";

/// The verdict on one test.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Passed, with an optional note (a measurement) printed after `ok`.
    Ok(Option<String>),
    Failed(String),
    Skipped(String),
}

/// Running totals and the names of the failures.
#[derive(Debug, Default)]
struct Tally {
    passed: u32,
    failed: u32,
    skipped: u32,
    failures: Vec<String>,
    /// How long each timed test took (the QEMU scenarios), in the order they ended.
    took: Vec<(String, Duration)>,
    /// How long each phase of the run took.
    phases: Vec<(&'static str, Duration)>,
}

/// How many of the slowest scenarios the last lines name.
const SLOWEST_SHOWN: usize = 5;

impl Tally {
    /// Prints `test NAME ... RESULT` (with the reason indented below a failure) in one piece,
    /// and counts it.
    fn report(&mut self, name: &str, verdict: &Verdict) {
        self.report_took(name, verdict, None);
    }

    /// [`Tally::report`], with ` [T s]` at the end of the test's line when `took` is known.
    fn report_took(&mut self, name: &str, verdict: &Verdict, took: Option<Duration>) {
        match verdict {
            Verdict::Ok(_) => self.passed += 1,
            Verdict::Skipped(_) => self.skipped += 1,
            Verdict::Failed(_) => {
                self.failed += 1;
                self.failures.push(name.to_string());
            }
        }
        if let Some(t) = took {
            self.took.push((name.to_string(), t));
        }
        print!("{}", verdict_text(name, verdict, took));
        let _ = std::io::stdout().flush();
    }

    /// Where the time went: each phase, then the slowest timed tests (None when nothing was
    /// timed).
    fn time_line(&self) -> Option<String> {
        if self.phases.is_empty() {
            return None;
        }
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(what, t)| format!("{what} {} s", t.as_secs()))
            .collect();
        let mut line = format!("time: {}", phases.join(", "));
        let mut slowest: Vec<&(String, Duration)> = self.took.iter().collect();
        slowest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if !slowest.is_empty() {
            let named: Vec<String> = slowest
                .iter()
                .take(SLOWEST_SHOWN)
                .map(|(name, t)| format!("{name} {:.0} s", t.as_secs_f64()))
                .collect();
            line.push_str(&format!("; slowest: {}", named.join(", ")));
        }
        Some(line)
    }

    fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        s
    }
}

/// A test's report: `test NAME ... RESULT`, then ` [T s]` when `took` is known, then the reason
/// of a failure indented below.
fn verdict_text(name: &str, verdict: &Verdict, took: Option<Duration>) -> String {
    let time = took.map_or(String::new(), |t| format!(" [{:.1} s]", t.as_secs_f64()));
    match verdict {
        Verdict::Ok(None) => format!("test {name} ... ok{time}\n"),
        Verdict::Ok(Some(note)) => format!("test {name} ... ok ({note}){time}\n"),
        Verdict::Skipped(why) => format!("test {name} ... skipped ({why}){time}\n"),
        Verdict::Failed(why) => format!("test {name} ... FAILED{time}\n{}", indent(why)),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// `cargo xtask test`.
pub fn test(args: &TestArgs) -> Result<u8, Error> {
    let filter = args.filter.as_deref().unwrap_or("");
    let selected: Vec<Scenario> = axolotl_tests::scenarios()
        .into_iter()
        .filter(|s| s.name.contains(filter))
        .collect();
    let kernel_suite = KERNEL_PREFIX.starts_with(filter) || filter.starts_with(KERNEL_PREFIX);
    let need_qemu = kernel_suite || !selected.is_empty();
    // Fail before the long host build when the guest cannot run at all.
    let tools = if need_qemu {
        Some(host::ensure_tools(true)?)
    } else {
        None
    };

    let mut tally = Tally::default();
    println!("== host unit tests (cargo test) ==");
    let start = Instant::now();
    host_tests(args.filter.as_deref(), &mut tally)?;
    tally.phases.push(("host tests", start.elapsed()));
    println!(
        "== fuzz targets ({} s each) ==",
        crate::fuzz::SECONDS_PER_TARGET
    );
    let start = Instant::now();
    fuzz_pass(filter, &mut tally);
    tally.phases.push(("fuzz targets", start.elapsed()));

    if let Some(tools) = tools {
        println!("== QEMU tests ==");
        let start = Instant::now();
        let kernel = images::build_kernel(true);
        let shared = Mutex::new(&mut tally);
        let report = |name: &str, v: &Verdict, took: Option<Duration>| {
            shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .report_took(name, v, took)
        };
        match kernel {
            Ok(kernel) => {
                let harness = QemuHarness {
                    kernel,
                    tools,
                    verbose: args.verbose,
                    system_manifest: args
                        .manifest
                        .clone()
                        .unwrap_or_else(images::default_manifest),
                    payloads: Mutex::default(),
                    boots: Mutex::default(),
                    died: Mutex::default(),
                };
                run_qemu_tests(
                    &harness,
                    kernel_suite,
                    &selected,
                    filter,
                    args.jobs,
                    &report,
                );
            }
            Err(e) => {
                let why = Verdict::Failed(format!("not run: {e}"));
                if kernel_suite {
                    report("kernel::suite_completed", &why, None);
                }
                for s in &selected {
                    report(s.name, &why, None);
                }
            }
        }
        tally.phases.push(("QEMU tests", start.elapsed()));
    }

    if !tally.failures.is_empty() {
        println!("\nfailures:");
        for f in &tally.failures {
            println!("    {f}");
        }
    }
    if let Some(line) = tally.time_line() {
        println!("\n{line}");
    }
    println!("\n{}", tally.summary());
    Ok(if tally.failed == 0 { 0 } else { 1 })
}

/// The host-testable libraries of user programs: not default members (their binaries build only
/// for the guest), so they are tested with `--lib`.
const USER_LIBS: [&str; 13] = [
    "libsys",
    "shell",
    "chanbench",
    "ipcbench",
    "rs",
    "ipd",
    "pfd",
    "udpd",
    "libnet",
    "tcpd",
    "iperf3",
    "nc",
    "netstack",
];

/// Runs `cargo test` over the default members, then over the user programs' libraries, then
/// libchan's heavy tests: the stress tests in release with the 300-million-message run, and the
/// loom models (built with `--cfg loom` in a target directory of their own, so the normal build
/// is not invalidated).
fn host_tests(filter: Option<&str>, tally: &mut Tally) -> Result<(), Error> {
    cargo_test(&[], &[], filter, tally)?;
    let mut user: Vec<&str> = vec!["--lib"];
    for lib in USER_LIBS {
        user.extend(["-p", lib]);
    }
    cargo_test(&user, &[], filter, tally)?;
    println!("libchan stress tests in release, including the 300-million-message run");
    cargo_test(
        &["-p", "libchan", "--release", "--test", "stress"],
        &[],
        filter,
        tally,
    )?;
    println!("libchan loom models (--cfg loom)");
    let loom_dir = images::target_dir().join("loom");
    let loom_dir = loom_dir.to_string_lossy().into_owned();
    cargo_test(
        &["-p", "libchan", "--release", "--test", "loom"],
        &[
            ("RUSTFLAGS", "--cfg loom"),
            ("CARGO_TARGET_DIR", loom_dir.as_str()),
        ],
        filter,
        tally,
    )
}

/// Every cargo-fuzz target for a bounded time, one test each (`fuzz::TARGET`).
fn fuzz_pass(filter: &str, tally: &mut Tally) {
    let mut jobs = Vec::new();
    for dir in crate::fuzz::FUZZ_CRATES {
        let root = images::workspace_root().join(dir);
        let Ok(manifest) = std::fs::read_to_string(root.join("fuzz/Cargo.toml")) else {
            tally.report(
                &format!("fuzz::{dir}"),
                &Verdict::Failed("no fuzz/Cargo.toml".into()),
            );
            continue;
        };
        for t in crate::fuzz::targets(&manifest) {
            let name = format!("fuzz::{t}");
            if name.contains(filter) {
                jobs.push((root.clone(), t, name));
            }
        }
    }
    if jobs.is_empty() {
        return;
    }
    if let Err(why) = crate::fuzz::ensure_cargo_fuzz() {
        for (_, _, name) in &jobs {
            tally.report(name, &Verdict::Skipped(why.clone()));
        }
        return;
    }
    for (root, target, name) in jobs {
        let verdict = match crate::fuzz::run_target(&root, &target, crate::fuzz::SECONDS_PER_TARGET)
        {
            Ok(note) => Verdict::Ok(Some(note)),
            Err(tail) => Verdict::Failed(format!("cargo fuzz run {target} failed:\n{tail}")),
        };
        tally.report(&name, &verdict);
    }
}

/// Runs one `cargo test` invocation, streaming its output and counting its results.
fn cargo_test(
    extra: &[&str],
    envs: &[(&str, &str)],
    filter: Option<&str>,
    tally: &mut Tally,
) -> Result<(), Error> {
    let mut cmd = images::cargo();
    cmd.args(["test", "--no-fail-fast"]);
    cmd.args(extra);
    cmd.envs(envs.iter().copied());
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Failed(format!("could not run cargo test: {e}")))?;
    let mut counts = CargoCounts::default();
    let mut failed_names = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            if let Some(c) = counts::parse_cargo_result(&line) {
                counts += c;
            } else if let Some(name) = line
                .strip_prefix("test ")
                .and_then(|l| l.strip_suffix(" ... FAILED"))
            {
                failed_names.push(format!("host: {name}"));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::Failed(format!("cargo test: {e}")))?;
    tally.passed += counts.passed;
    tally.failed += counts.failed;
    tally.skipped += counts.ignored;
    tally.failures.extend(failed_names);
    println!(
        "host unit tests: {} passed, {} failed, {} ignored",
        counts.passed, counts.failed, counts.ignored
    );
    if !status.success() && counts.failed == 0 {
        tally.report(
            "host::cargo_test",
            &Verdict::Failed(format!(
                "cargo test failed ({status}) without a failing test: a build error or a crashed \
                 test binary (see above)"
            )),
        );
    }
    Ok(())
}

/// Reports one test's verdict, with how long it took when that was measured.
type Report<'a> = dyn Fn(&str, &Verdict, Option<Duration>) + Sync + 'a;

/// One unit of QEMU work.
enum Job<'a> {
    KernelSuite,
    Scenario(&'a Scenario),
}

fn run_qemu_tests(
    harness: &QemuHarness,
    kernel_suite: bool,
    scenarios: &[Scenario],
    filter: &str,
    jobs: usize,
    report: &Report,
) {
    let mut shared: Vec<Job> = Vec::new();
    if kernel_suite {
        shared.push(Job::KernelSuite);
    }
    shared.extend(scenarios.iter().filter(|s| !s.exclusive).map(Job::Scenario));
    let alone: Vec<Job> = scenarios
        .iter()
        .filter(|s| s.exclusive)
        .map(Job::Scenario)
        .collect();
    let run = |job: &Job| match job {
        Job::KernelSuite => run_kernel_suite(harness, filter, report),
        Job::Scenario(s) => {
            if let Some(Err(why)) = s.requires.map(|check| check()) {
                return report(s.name, &Verdict::Skipped(why), None);
            }
            let start = Instant::now();
            let once = || match (s.run)(harness) {
                Ok(note) => Verdict::Ok(note),
                Err(why) => Verdict::Failed(why),
            };
            let mut verdict = once();
            if matches!(verdict, Verdict::Failed(_))
                && let Some(died) = harness.forget_if_died(s.boot_name())
            {
                println!("note: {}: {died}; running it once more", s.name);
                verdict = second_try(&died, once());
            }
            let took = Some(start.elapsed());
            if s.host_only {
                report(s.name, &verdict, took);
            } else {
                let verdict = attach_transcript(harness, s.boot_name(), verdict);
                report(s.name, &verdict, took);
            }
        }
    };
    run_pool(shared, jobs, &run);
    run_pool(alone, 1, &run);
}

/// The verdict of a scenario run again because QEMU died under its first try (`died` says how):
/// the second try's, with the first named.
fn second_try(died: &str, verdict: Verdict) -> Verdict {
    let first = format!("the first try ended when {died}");
    match verdict {
        Verdict::Ok(Some(note)) => Verdict::Ok(Some(format!("{note}; {first}"))),
        Verdict::Ok(None) => Verdict::Ok(Some(first)),
        Verdict::Failed(why) => Verdict::Failed(format!("{why} (on a second try; {first})")),
        skipped => skipped,
    }
}

/// Runs `jobs` on `workers` threads, each taking the next job when it is done.
fn run_pool<'a>(jobs: Vec<Job<'a>>, workers: usize, run: &(dyn Fn(&Job<'a>) + Sync)) {
    let queue = Mutex::new(jobs.into_iter());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                    match next {
                        Some(job) => run(&job),
                        None => break,
                    }
                }
            });
        }
    });
}

/// Adds the tail of the scenario's last transcript to a failure.
fn attach_transcript(h: &QemuHarness, name: &str, verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Failed(why) => {
            let text = std::fs::read_to_string(h.transcript_path(name)).unwrap_or_default();
            Verdict::Failed(format!(
                "{why}\ntranscript (last {TAIL_LINES} lines; all of it in {}):\n{}",
                h.transcript_path(name).display(),
                transcript::tail(&text, TAIL_LINES)
            ))
        }
        v => v,
    }
}

fn run_kernel_suite(h: &QemuHarness, filter: &str, report: &Report) {
    let spec = BootSpec::bios(2, "test=kernel").timeout(KERNEL_SUITE_TIMEOUT);
    let start = Instant::now();
    let r = h.boot("kernel", &spec);
    let took = start.elapsed();
    let ktests = counts::parse_ktests(&r.transcript);
    for t in &ktests.tests {
        let name = format!("{KERNEL_PREFIX}{}", t.name);
        if name.contains(filter) {
            let v = if t.passed {
                Verdict::Ok(None)
            } else {
                Verdict::Failed(t.detail.clone())
            };
            report(&name, &attach_transcript(h, "kernel", v), None);
        }
    }
    let verdict = match kernel_suite_verdict(&r, &ktests) {
        Ok(()) => Verdict::Ok(None),
        Err(why) => Verdict::Failed(why),
    };
    report(
        "kernel::suite_completed",
        &attach_transcript(h, "kernel", verdict),
        Some(took),
    );
}

/// Whether the in-kernel suite ran to its end and its three reports agree: the lines, the
/// summary line and the QEMU verdict.
fn kernel_suite_verdict(r: &BootResult, k: &counts::KtestReport) -> Result<(), String> {
    let ok = k.tests.iter().filter(|t| t.passed).count() as u32;
    let failed = k.tests.len() as u32 - ok;
    let Some((n, m)) = k.summary else {
        return Err(format!(
            "no final 'ktest: N passed, M failed' line ({} after {:.1} s)",
            r.outcome.describe(),
            r.elapsed.as_secs_f64()
        ));
    };
    if (n, m) != (ok, failed) {
        return Err(format!(
            "the kernel says {n} passed, {m} failed, but printed {ok} ok and {failed} FAILED lines"
        ));
    }
    let want = if m == 0 {
        Outcome::Passed
    } else {
        Outcome::GuestFailed
    };
    if r.outcome != want {
        return Err(format!(
            "with {m} failed the verdict should be '{}', got '{}'",
            want.describe(),
            r.outcome.describe()
        ));
    }
    Ok(())
}

/// The QEMU runner behind the scenarios: every run gets its own folder `target/axolotl/NAME/`
/// with its ramdisk, image, UEFI variable store and `transcript.txt`.
struct QemuHarness {
    kernel: PathBuf,
    tools: Tools,
    verbose: bool,
    /// What [`ManifestSource::System`] means: `system.toml` or `test --manifest PATH`.
    system_manifest: PathBuf,
    /// Validated manifests with their programs built, or why that failed, by file; made once.
    payloads: Mutex<HashMap<PathBuf, Result<Arc<images::Payload>, String>>>,
    /// Every boot by name: the first boot of a name runs, later ones get its result.
    boots: Mutex<HashMap<String, Arc<BootOnce>>>,
    /// The boots, by name, whose QEMU died (`qemu::emulator_death`), with how.
    died: Mutex<HashMap<String, String>>,
}

/// One named boot, run once: its spec and result.
type BootOnce = OnceLock<(BootSpec, BootResult)>;

impl QemuHarness {
    fn dir(&self, name: &str) -> PathBuf {
        images::out_dir().join(name)
    }

    fn transcript_path(&self, name: &str) -> PathBuf {
        self.dir(name).join("transcript.txt")
    }

    /// The file behind `source`.
    fn manifest_path(&self, source: &ManifestSource) -> Option<PathBuf> {
        match source {
            ManifestSource::None => None,
            ManifestSource::System => Some(self.system_manifest.clone()),
            ManifestSource::File(path) => Some(images::workspace_root().join(path)),
        }
    }

    /// The payload of the manifest at `path`, made on first use (building user programs takes
    /// the lock, so concurrent scenarios wait for one build instead of racing).
    fn payload(&self, path: PathBuf) -> Result<Arc<images::Payload>, Error> {
        let mut cache = self.payloads.lock().unwrap_or_else(|p| p.into_inner());
        let made = cache.entry(path).or_insert_with_key(|path| {
            images::payload(path)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        made.clone().map_err(Error::Failed)
    }

    fn prepare(
        &self,
        name: &str,
        spec: &BootSpec,
    ) -> Result<(Machine, Option<Arc<images::Payload>>), Error> {
        let dir = self.dir(name);
        let payload = match self.manifest_path(&spec.manifest) {
            Some(path) => Some(self.payload(path)?),
            None => None,
        };
        if !spec.exec.is_empty()
            && !payload
                .as_ref()
                .is_some_and(|p| p.manifest.started_with_grant("console"))
        {
            return Err(Error::Failed(
                "exec needs a manifest that starts a process with the 'console' grant".into(),
            ));
        }
        let fw = if spec.uefi {
            Firmware::Uefi
        } else {
            Firmware::Bios
        };
        let modules = images::ramdisk_modules(&spec.cmdline, payload.as_deref());
        let image = images::make_images(&self.kernel, &dir, &modules, &[fw])?.remove(0);
        let machine = self.machine(&dir, image, spec)?;
        Ok((machine, payload))
    }

    /// The machine that boots `image` as `spec` asks (firmware, CPUs, memory, network card);
    /// a UEFI boot gets its own copy of the variable store in `dir`.
    fn machine(&self, dir: &Path, image: PathBuf, spec: &BootSpec) -> Result<Machine, Error> {
        let boot = if spec.uefi {
            let ovmf = self
                .tools
                .ovmf
                .clone()
                .ok_or_else(|| Error::Failed("no OVMF".into()))?;
            let vars = dir.join("OVMF_VARS.fd");
            if let Ovmf::Pflash { vars: template, .. } = &ovmf {
                std::fs::copy(template, &vars).map_err(|e| {
                    Error::Failed(format!("cannot copy {}: {e}", template.display()))
                })?;
            }
            Boot::Uefi { ovmf, vars }
        } else {
            Boot::Bios
        };
        let machine = Machine {
            image,
            smp: spec.smp,
            mem_mib: spec.mem_mib,
            boot,
            accel: Accel::Tcg,
            net: match (spec.nic, spec.tap) {
                (_, true) => Net::Tap,
                (Some(_), false) => Net::User,
                (None, false) => Net::None,
            },
            nic: match spec.nic {
                Some(axolotl_tests::NicModel::E1000e) => Nic::E1000e,
                _ => Nic::E1000,
            },
            console: Console::Stdio,
            fwd: spec
                .forwards
                .iter()
                .map(|f| crate::args::Forward {
                    proto: if f.tcp {
                        crate::args::Proto::Tcp
                    } else {
                        crate::args::Proto::Udp
                    },
                    host_port: f.host_port,
                    guest_port: f.guest_port,
                })
                .collect(),
            qmp: None,
        };
        Ok(machine)
    }

    /// Boots for real.
    fn boot_now(&self, name: &str, spec: &BootSpec) -> BootResult {
        let (machine, payload) = match self.prepare(name, spec) {
            Ok(m) => m,
            Err(e) => {
                let r = BootResult::not_run(Outcome::SetupFailed(e.to_string()));
                let _ = std::fs::create_dir_all(self.dir(name));
                let _ = std::fs::write(self.transcript_path(name), "");
                return r;
            }
        };
        let mut r = self.run_machine(name, &machine, spec);
        r.manifest = payload.map(|p| p.table.clone());
        let _ = std::fs::write(self.transcript_path(name), &r.transcript);
        r
    }

    /// If the boot `name` ended with QEMU's death, forgets it (the next boot of that name runs
    /// anew) and says how QEMU died.
    fn forget_if_died(&self, name: &str) -> Option<String> {
        let died = self
            .died
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)?;
        self.boots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Some(died)
    }

    /// Runs QEMU on `machine` with `spec`'s timeout and commands, and notes if QEMU died.
    fn run_machine(&self, name: &str, machine: &Machine, spec: &BootSpec) -> BootResult {
        let r = self.run_qemu(name, machine, spec);
        if let Some(death) = qemu::emulator_death(&r.outcome) {
            self.died
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), death.to_string());
        }
        r
    }

    /// The QEMU run of [`QemuHarness::run_machine`] (in the boot's network namespace with
    /// `--net tap`).
    fn run_qemu(&self, name: &str, machine: &Machine, spec: &BootSpec) -> BootResult {
        let mut machine = machine.clone();
        let screendump = spec.screendump.then(|| {
            // A unix socket path may not exceed 107 bytes: fall back to the temp directory.
            let mut sock = self.dir(name).join("qmp.sock");
            if sock.as_os_str().len() > 100 {
                sock =
                    std::env::temp_dir().join(format!("axolotl-{}-{name}.qmp", std::process::id()));
            }
            let _ = std::fs::remove_file(&sock);
            machine.qmp = Some(sock.clone());
            (sock, self.dir(name).join("screen.ppm"))
        });
        let machine = &machine;
        let opts = RunOptions {
            screendump,
            host_samples: None,
            timeout: Some(spec.timeout),
            inherit_stdin: false,
            echo: if self.verbose {
                Echo::Prefixed(name.to_string())
            } else {
                Echo::Off
            },
            exec: (!spec.exec.is_empty()).then(|| exec::Plan {
                commands: spec.exec.clone(),
                step_timeout: spec.timeout,
            }),
        };
        let args = qemu::qemu_args(machine);
        if machine.net != Net::Tap {
            return qemu::run(&self.tools.qemu, &args, &opts);
        }
        // QEMU runs inside a network namespace of this boot, removed when `ns` drops (or by
        // the signal watcher), whatever the outcome.
        let ns = match crate::netns::Namespace::create("a boot with --net tap") {
            Ok(ns) => ns,
            Err(e) => return BootResult::not_run(Outcome::SetupFailed(e.to_string())),
        };
        let (ip, args) = ns.wrap(&self.tools.qemu, &args);
        let r = qemu::run(&ip, &args, &opts);
        drop(ns);
        r
    }
}

impl Harness for QemuHarness {
    fn boot(&self, name: &str, spec: &BootSpec) -> BootResult {
        let cell = self
            .boots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let (first, result) = cell.get_or_init(|| (spec.clone(), self.boot_now(name, spec)));
        if first != spec {
            return BootResult::not_run(Outcome::SetupFailed(format!(
                "two different boots are named '{name}'"
            )));
        }
        result.clone()
    }

    fn boot_image(&self, name: &str, image: &Path, spec: &BootSpec) -> BootResult {
        let dir = self.dir(name);
        let machine = std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))
            .and_then(|()| self.machine(&dir, image.to_path_buf(), spec));
        let r = match machine {
            Ok(m) => self.run_machine(name, &m, spec),
            Err(e) => BootResult::not_run(Outcome::SetupFailed(e.to_string())),
        };
        let _ = std::fs::write(self.transcript_path(name), &r.transcript);
        r
    }

    fn xtask(&self, args: &[&str], timeout: Duration) -> XtaskRun {
        run_xtask(args, timeout)
    }

    fn folder(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.dir(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir)
    }
}

/// Runs this xtask again as `cargo xtask ARGS` would: the very binary that runs now
/// (`/proc/self/exe`, so a rebuilt xtask on disk does not matter), in the workspace root, with
/// an empty stdin and no terminal. Its process group is killed at `timeout` and when we die.
fn run_xtask(args: &[&str], timeout: Duration) -> XtaskRun {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.args(args)
        .current_dir(images::workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::detach_and_tie_to_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return XtaskRun {
                stderr: format!("could not start xtask: {e}\n"),
                ..XtaskRun::default()
            };
        }
    };
    let pid = child.id();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let mut text = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    };
    std::thread::scope(|s| {
        let stdout = s.spawn(|| drain(out.map(|p| Box::new(p) as _)));
        let stderr = s.spawn(|| drain(err.map(|p| Box::new(p) as _)));
        let deadline = std::time::Instant::now() + timeout;
        let (status, why) = loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    let why = st
                        .code()
                        .is_none()
                        .then(|| format!("xtask ended by {st}\n"));
                    break (st.code(), why);
                }
                Ok(None) if std::time::Instant::now() >= deadline => {
                    crate::sys::kill_process_group(pid);
                    let _ = child.wait();
                    break (
                        None,
                        Some(format!("killed after {} s\n", timeout.as_secs())),
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    crate::sys::kill_process_group(pid);
                    let _ = child.wait();
                    break (None, Some(format!("lost track of xtask: {e}\n")));
                }
            }
        };
        let mut stderr = stderr.join().unwrap_or_default();
        stderr.push_str(&why.unwrap_or_default());
        XtaskRun {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_try_names_the_first() {
        let died = "QEMU was killed by signal 11";
        assert_eq!(
            second_try(died, Verdict::Ok(None)),
            Verdict::Ok(Some(
                "the first try ended when QEMU was killed by signal 11".into()
            ))
        );
        assert_eq!(
            second_try(died, Verdict::Ok(Some("rtt 1 ms".into()))),
            Verdict::Ok(Some(
                "rtt 1 ms; the first try ended when QEMU was killed by signal 11".into()
            ))
        );
        assert_eq!(
            second_try(died, Verdict::Failed("no prompt".into())),
            Verdict::Failed(
                "no prompt (on a second try; the first try ended when QEMU was killed by \
                 signal 11)"
                    .into()
            )
        );
    }
    use counts::parse_ktests;

    fn result(outcome: Outcome) -> BootResult {
        BootResult {
            elapsed: Duration::from_secs(1),
            ..BootResult::not_run(outcome)
        }
    }

    #[test]
    fn suite_verdict_needs_agreement() {
        let good = parse_ktests("ktest a ... ok\nktest b ... ok\nktest: 2 passed, 0 failed\n");
        assert_eq!(
            kernel_suite_verdict(&result(Outcome::Passed), &good),
            Ok(())
        );
        let e = kernel_suite_verdict(&result(Outcome::GuestFailed), &good).unwrap_err();
        assert!(e.contains("should be 'guest reported success'"), "{e}");

        let one_failed =
            parse_ktests("ktest a ... ok\nktest b ... FAILED\nktest: 1 passed, 1 failed\n");
        assert_eq!(
            kernel_suite_verdict(&result(Outcome::GuestFailed), &one_failed),
            Ok(())
        );
        assert!(kernel_suite_verdict(&result(Outcome::Passed), &one_failed).is_err());

        let crashed = parse_ktests("ktest a ... ok\nktest b ... \nKERNEL PANIC\n");
        let e = kernel_suite_verdict(&result(Outcome::GuestFailed), &crashed).unwrap_err();
        assert!(
            e.contains("no final 'ktest: N passed, M failed' line (guest reported failure"),
            "{e}"
        );

        let liar = parse_ktests("ktest a ... ok\nktest: 2 passed, 0 failed\n");
        assert!(
            kernel_suite_verdict(&result(Outcome::Passed), &liar)
                .unwrap_err()
                .contains("printed 1 ok")
        );
    }

    #[test]
    fn tally_summary_line() {
        let mut t = Tally::default();
        t.report("a", &Verdict::Ok(None));
        t.report("b", &Verdict::Failed("why\nmore".into()));
        assert_eq!(t.summary(), "1 passed, 1 failed");
        t.report("c", &Verdict::Skipped("no tap".into()));
        assert_eq!(t.summary(), "1 passed, 1 failed, 1 skipped");
        assert_eq!(t.failures, ["b"]);
        assert_eq!(indent("x\ny"), "    x\n    y\n");
    }

    #[test]
    fn time_line_names_the_phases_and_the_slowest() {
        let mut t = Tally::default();
        assert_eq!(t.time_line(), None, "nothing measured");
        t.phases.push(("host tests", Duration::from_millis(95_400)));
        assert_eq!(t.time_line().as_deref(), Some("time: host tests 95 s"));
        for (i, secs) in [3, 120, 7, 45, 7, 60, 1].into_iter().enumerate() {
            let name = format!("s{i}");
            t.report_took(&name, &Verdict::Ok(None), Some(Duration::from_secs(secs)));
        }
        t.report_took(
            "f",
            &Verdict::Failed("why".into()),
            Some(Duration::from_secs(2)),
        );
        t.report("untimed", &Verdict::Ok(None));
        t.phases.push(("QEMU tests", Duration::from_secs(250)));
        assert_eq!(
            t.time_line().as_deref(),
            Some(
                "time: host tests 95 s, QEMU tests 250 s; slowest: s1 120 s, s5 60 s, s3 45 s, \
                 s2 7 s, s4 7 s"
            )
        );
        assert_eq!(t.summary(), "8 passed, 1 failed");
        assert_eq!(t.took.len(), 8);
    }

    #[test]
    fn a_timed_line_ends_with_its_time() {
        let t = Some(Duration::from_millis(12_345));
        assert_eq!(
            verdict_text("a", &Verdict::Ok(None), t),
            "test a ... ok [12.3 s]\n"
        );
        assert_eq!(
            verdict_text("a", &Verdict::Ok(Some("3 MiB".into())), t),
            "test a ... ok (3 MiB) [12.3 s]\n"
        );
        assert_eq!(
            verdict_text("a", &Verdict::Failed("x\ny".into()), t),
            "test a ... FAILED [12.3 s]\n    x\n    y\n"
        );
        assert_eq!(
            verdict_text("a", &Verdict::Skipped("no tap".into()), None),
            "test a ... skipped (no tap)\n"
        );
    }

    #[test]
    fn pool_runs_every_job_once() {
        let scenarios = axolotl_tests::scenarios();
        let jobs: Vec<Job> = scenarios.iter().map(Job::Scenario).collect();
        let seen = Mutex::new(Vec::new());
        let run = |j: &Job| {
            if let Job::Scenario(s) = j {
                seen.lock().unwrap().push(s.name);
            }
        };
        run_pool(jobs, 2, &run);
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        let mut want: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
    }
}
