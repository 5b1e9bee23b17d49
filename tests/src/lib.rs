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
//! `klib::cmdline::BootMode`), the `isa-debug-exit` verdict (0x10 pass, 0x11 fail), the
//! machine-readable boot line `boot: N cpus online boot_ms=T`, the boot module table
//! (`klib::manifest`) that says which processes run, and the guest shell (see [`shell`]) into
//! which a boot may type commands.

pub mod disk;
pub mod net;
pub mod netmore;
pub mod ports;
pub mod screen;
pub mod shell;
pub mod transcript;

use std::path::{Path, PathBuf};
use std::time::Duration;

use klib::manifest::{Manifest, Placement};

pub use shell::{CommandOutput, ExecFailure, ExecReport, PsRow};
pub use transcript::BootLine;

/// Where the boot module table (`manifest` module of the ramdisk) of a boot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// No manifest (and no program): the kernel starts no process. For scenarios that test the
    /// kernel alone.
    None,
    /// The system manifest: `system.toml` at the workspace root, or the file given to
    /// `cargo xtask test --manifest PATH`.
    System,
    /// A test manifest, by its path relative to the workspace root (`tests/manifests/...`).
    File(&'static str),
}

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
    /// Wall-clock limit after which the harness kills QEMU; with [`BootSpec::exec`], also the
    /// limit for the first prompt and for each command.
    pub timeout: Duration,
    /// The processes to start.
    pub manifest: ManifestSource,
    /// Commands to type into the guest shell, one at a time, each after the prompt; `poweroff`
    /// is typed after the last. Empty: type nothing.
    pub exec: Vec<String>,
    /// A network card on QEMU's user networking (None: no card at all).
    pub nic: Option<NicModel>,
    /// Host loopback ports forwarded into the guest (with a card only).
    pub forwards: Vec<Forward>,
    /// The card is on a TAP device inside a network namespace the harness makes for this boot
    /// and removes after it (needs root; see [`tap`]), not on QEMU's user networking.
    pub tap: bool,
    /// Take a screendump when the exec session's last prompt is back (before `poweroff`).
    pub screendump: bool,
}

/// The emulated network card of a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicModel {
    /// Intel 82540EM (`-device e1000`).
    E1000,
    /// Intel 82574L (`-device e1000e`).
    E1000e,
}

/// A host loopback port forwarded into the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// TCP (true) or UDP.
    pub tcp: bool,
    /// Port on 127.0.0.1 of the host.
    pub host_port: u16,
    /// Port in the guest.
    pub guest_port: u16,
}

impl BootSpec {
    /// A BIOS boot with `smp` CPUs, 256 MiB, the given command line, a 60 s timeout, no manifest
    /// and no commands.
    pub fn bios(smp: u32, cmdline: &str) -> Self {
        Self {
            smp,
            mem_mib: 256,
            uefi: false,
            cmdline: cmdline.to_string(),
            timeout: Duration::from_secs(60),
            manifest: ManifestSource::None,
            exec: Vec::new(),
            nic: None,
            forwards: Vec::new(),
            tap: false,
            screendump: false,
        }
    }

    /// The same boot, with a screendump of the framebuffer at the end of the exec session.
    pub fn screendump(mut self) -> Self {
        self.screendump = true;
        self
    }

    /// The same boot with a network card of `model` on QEMU's user networking.
    pub fn nic(mut self, model: NicModel) -> Self {
        self.nic = Some(model);
        self
    }

    /// The same boot with its network card (an e1000 unless [`BootSpec::nic`] chose another)
    /// on a TAP device inside a network namespace of its own, at 10.0.2.2/24 (see [`tap`]).
    pub fn tap(mut self) -> Self {
        self.nic = self.nic.or(Some(NicModel::E1000));
        self.tap = true;
        self
    }

    /// The same boot forwarding host port `host_port` (127.0.0.1) to guest port `guest_port`.
    pub fn forward(mut self, tcp: bool, host_port: u16, guest_port: u16) -> Self {
        self.forwards.push(Forward {
            tcp,
            host_port,
            guest_port,
        });
        self
    }

    /// The same boot with the processes of `manifest`.
    pub fn manifest(mut self, manifest: ManifestSource) -> Self {
        self.manifest = manifest;
        self
    }

    /// The same boot, typing `commands` into the guest shell (then `poweroff`).
    pub fn exec(mut self, commands: &[&str]) -> Self {
        self.exec = commands.iter().map(|c| c.to_string()).collect();
        self
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
    /// The harness stopped QEMU because the `exec` session had failed (see
    /// [`BootResult::exec`]).
    Stopped,
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
            Self::Stopped => "stopped by the harness after the exec session failed".to_string(),
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
    /// The boot module table packed into the ramdisk (`klib::manifest` text), if there was one.
    pub manifest: Option<String>,
    /// What the `exec` session did, when commands were typed.
    pub exec: Option<ExecReport>,
    /// The screendump, when the spec asked for one.
    pub screen: Option<Result<screen::Image, String>>,
}

impl BootResult {
    /// A run that never started: `outcome` says why.
    pub fn not_run(outcome: Outcome) -> Self {
        Self {
            outcome,
            transcript: String::new(),
            elapsed: Duration::ZERO,
            qemu_pid: None,
            manifest: None,
            exec: None,
            screen: None,
        }
    }

    /// The verdict on an `exec` boot, as `cargo xtask run --exec` gives it: every command
    /// succeeded (no `[exit N]`), QEMU exited with the success code (the shell's `poweroff`),
    /// and the kernel did not panic. `Err` is the one-line reason.
    pub fn exec_verdict(&self) -> Result<(), String> {
        let panicked = self.transcript.contains("KERNEL PANIC");
        let Some(report) = &self.exec else {
            return Err(format!(
                "exec: no command was typed ({})",
                self.outcome.describe()
            ));
        };
        if let Some(failure) = &report.failure {
            let mut why = failure.to_string();
            if matches!(
                failure,
                ExecFailure::EndedBeforePrompt | ExecFailure::EndedDuringCommand { .. }
            ) {
                why.push_str(&format!(" ({})", self.outcome.describe()));
            }
            if panicked {
                why.push_str("; the kernel panicked");
            }
            return Err(why);
        }
        if panicked {
            return Err("exec: the kernel panicked".to_string());
        }
        if self.outcome != Outcome::Passed {
            return Err(format!(
                "exec: QEMU did not exit with the success code after 'poweroff': {}",
                self.outcome.describe()
            ));
        }
        Ok(())
    }

    /// The output of `command` in the exec session; `Err` when it was not run.
    pub fn output_of(&self, command: &str) -> Result<&str, String> {
        self.exec
            .as_ref()
            .and_then(|e| e.output_of(command))
            .ok_or_else(|| format!("command '{command}' was not run"))
    }
}

/// What a `cargo xtask` command run through [`Harness::xtask`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XtaskRun {
    /// Its exit status; `None` when it did not start, died of a signal or was killed at its
    /// timeout (`stderr` then ends with a line that says which).
    pub status: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl XtaskRun {
    /// `Ok` when it exited with `status`; otherwise why not, with the end of its output.
    pub fn expect_status(&self, what: &str, status: i32) -> Result<(), String> {
        if self.status == Some(status) {
            return Ok(());
        }
        let got = self
            .status
            .map_or("no exit status".to_string(), |s| format!("exit status {s}"));
        Err(format!(
            "'cargo xtask {what}' ended with {got}, expected {status}\nstdout:\n{}stderr:\n{}",
            transcript::tail(&self.stdout, 10),
            transcript::tail(&self.stderr, 15)
        ))
    }

    /// Whether stdout or stderr holds `needle`.
    pub fn says(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }
}

/// Boots the guest; implemented by xtask's QEMU runner (and by fakes in unit tests).
pub trait Harness: Sync {
    /// Boots once with `spec`. `name` identifies the run: xtask uses it for the folder of the
    /// run's images and transcript, and boots once per name: a second boot with the same name
    /// and spec (a scenario that shares another's boot, see [`Scenario::shares_boot`]) waits for
    /// and gets the first one's result. Never panics: every failure is an [`Outcome`].
    fn boot(&self, name: &str, spec: &BootSpec) -> BootResult;

    /// Boots the disk image file `image` exactly as it is (`-drive format=raw,file=IMAGE`): of
    /// `spec` only the machine (`smp`, `mem_mib`, `uefi`, the network card), `timeout` and
    /// `exec` are used; the kernel command line and the processes are what the image holds. The
    /// transcript is kept under `name`. Never panics.
    fn boot_image(&self, name: &str, image: &Path, spec: &BootSpec) -> BootResult;

    /// Runs `cargo xtask ARGS` (this very xtask) with no terminal and an empty stdin, and kills
    /// it (and what it started) after `timeout`. Never panics.
    fn xtask(&self, args: &[&str], timeout: Duration) -> XtaskRun;

    /// The folder of the run `name` (`target/axolotl/NAME/` for xtask), created: where a
    /// scenario keeps its files.
    fn folder(&self, name: &str) -> Result<PathBuf, String>;
}

/// What a scenario found: `Ok(None)` passed; `Ok(Some(note))` passed, with a note printed after
/// `ok` (a measurement); `Err(reason)` failed.
pub type ScenarioResult = Result<Option<String>, String>;

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
    /// The name of the boot it shares with other scenarios (each judges the same run); `None`:
    /// its boot is its own, named after it.
    pub shared_boot: Option<&'static str>,
    /// Boots nothing: it works on the host through [`Harness::xtask`] (so it has no
    /// transcript).
    pub host_only: bool,
    /// Boots through the harness and judges the result.
    pub run: fn(&dyn Harness) -> ScenarioResult,
}

impl Scenario {
    /// A scenario that shares the machine and needs nothing of the host.
    pub const fn new(name: &'static str, run: fn(&dyn Harness) -> ScenarioResult) -> Self {
        Self {
            name,
            exclusive: false,
            requires: None,
            shared_boot: None,
            host_only: false,
            run,
        }
    }

    /// The same scenario, marked as booting nothing (see [`Scenario::host_only`]).
    pub const fn host_only(mut self) -> Self {
        self.host_only = true;
        self
    }

    /// The same scenario, judging the boot named `boot` that other scenarios judge too.
    pub const fn shares_boot(mut self, boot: &'static str) -> Self {
        self.shared_boot = Some(boot);
        self
    }

    /// The name of the run this scenario boots (its transcript is kept under that name).
    pub fn boot_name(&self) -> &'static str {
        self.shared_boot.unwrap_or(self.name)
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
        Scenario::new(
            "isolation_faults_stop_only_the_faulter",
            isolation_faults_stop_only_the_faulter,
        )
        .shares_boot(ISOLATION_BOOT),
        Scenario::new("dedicated_fallback_smp2", dedicated_fallback_smp2),
        // Judges the isolation boot: listed after another scenario so that it usually finds the
        // boot done instead of waiting for it.
        Scenario::new("map_not_granted_is_refused", map_not_granted_is_refused)
            .shares_boot(ISOLATION_BOOT),
        Scenario::new("ps_lists_the_manifest_smp8", ps_lists_the_manifest_smp8).alone(),
        Scenario::new("kernel_ipc_pingpong", kernel_ipc_pingpong).alone(),
        Scenario::new(
            "chanbench_both_transports_smp4",
            chanbench_both_transports_smp4,
        )
        .alone(),
        Scenario::new("scribbled_channel_is_refused", scribbled_channel_is_refused),
        Scenario::new("preemption_shares_one_cpu", preemption_shares_one_cpu),
        Scenario::new(
            "image_boots_as_written_bios",
            disk::image_boots_as_written_bios,
        ),
        Scenario::new(
            "image_boots_as_written_uefi",
            disk::image_boots_as_written_uefi,
        ),
        Scenario::new("flash_to_loop_device", disk::flash_to_loop_device)
            .host_only()
            .requires(disk::loop_devices_available),
        Scenario::new("e1000_link_and_arp_82540em", e1000_link_and_arp_82540em),
        Scenario::new(
            "e1000e_link_and_arp_82574l_msi",
            e1000e_link_and_arp_82574l_msi,
        ),
        Scenario::new(
            "e1000_restart_brings_the_link_back",
            e1000_restart_brings_the_link_back,
        ),
        Scenario::new(
            "e1000_flood_takes_few_interrupts",
            e1000_flood_takes_few_interrupts,
        )
        .alone(),
        Scenario::new("e1000_zero_copy_path", e1000_zero_copy_path),
        Scenario::new(
            "ping_through_e1000_pf_ip_smp8",
            ping_through_e1000_pf_ip_smp8,
        )
        .alone(),
        Scenario::new(
            "ping_through_e1000_pf_ip_smp8_kernel_ipc",
            ping_through_e1000_pf_ip_smp8_kernel_ipc,
        )
        .alone(),
        Scenario::new(
            "pf_rule_drops_and_survives_a_crash",
            pf_rule_drops_and_survives_a_crash,
        ),
        Scenario::new(
            "screen_shows_the_console_bios",
            screen_shows_the_console_bios,
        ),
        Scenario::new(
            "screen_shows_the_console_uefi",
            screen_shows_the_console_uefi,
        ),
        Scenario::new("udp_echo_50mib", net::udp_echo_50mib).alone(),
        Scenario::new("tcp_echo_50mib", net::tcp_echo_50mib).alone(),
        Scenario::new("udp_echo_50mib_single", net::udp_echo_50mib_single).alone(),
        Scenario::new("tcp_echo_50mib_single", net::tcp_echo_50mib_single).alone(),
        Scenario::new("udp_echo_50mib_kernel_ipc", net::udp_echo_50mib_kernel_ipc).alone(),
        Scenario::new("tcp_echo_50mib_kernel_ipc", net::tcp_echo_50mib_kernel_ipc).alone(),
        Scenario::new("tcp_echo_50mib_idle_poll", net::tcp_echo_50mib_idle_poll).alone(),
        Scenario::new(
            "nc_sends_50mib_to_a_host_server_kernel_ipc",
            net::nc_sends_50mib_to_a_host_server_kernel_ipc,
        )
        .alone(),
        Scenario::new(
            "nc_sends_50mib_to_a_host_server",
            net::nc_sends_50mib_to_a_host_server,
        )
        .alone(),
        Scenario::new(
            "nc_sends_50mib_to_a_host_server_single",
            net::nc_sends_50mib_to_a_host_server_single,
        )
        .alone(),
        Scenario::new(
            "single_netstack_stands_in_for_the_four_servers",
            netmore::single_netstack_stands_in_for_the_four_servers,
        )
        .alone(),
        Scenario::new(
            "iperf3_guest_client_to_host_server",
            net::iperf3_guest_client_to_host_server,
        )
        .alone(),
        Scenario::new(
            "iperf3_host_client_to_guest_server",
            net::iperf3_host_client_to_guest_server,
        )
        .alone(),
        Scenario::new(
            "console_drives_the_shell_over_the_network",
            net::console_drives_the_shell_over_the_network,
        )
        .alone(),
        Scenario::new(
            "dhcp_configures_ip_and_survives_its_crash",
            netmore::dhcp_configures_ip_and_survives_its_crash,
        )
        .alone(),
        Scenario::new(
            "dhcp_configures_ip_and_survives_its_crash_single",
            netmore::dhcp_configures_ip_and_survives_its_crash_single,
        )
        .alone(),
        Scenario::new(
            "pf_drops_tcp_to_port_7_until_the_rule_goes",
            netmore::pf_drops_tcp_to_port_7_until_the_rule_goes,
        )
        .alone(),
        Scenario::new(
            "pf_drops_tcp_to_port_7_until_the_rule_goes_single",
            netmore::pf_drops_tcp_to_port_7_until_the_rule_goes_single,
        )
        .alone(),
        Scenario::new(
            "pf_drops_tcp_to_port_7_until_the_rule_goes_kernel_ipc",
            netmore::pf_drops_tcp_to_port_7_until_the_rule_goes_kernel_ipc,
        )
        .alone(),
        Scenario::new("tcp_survives_crashes", net::tcp_survives_crashes).alone(),
        Scenario::new("tcp_survives_hangs", net::tcp_survives_hangs).alone(),
        Scenario::new("tcp_survives_live_updates", net::tcp_survives_live_updates).alone(),
        Scenario::new(
            "udp_socket_survives_a_crash_of_udp",
            net::udp_socket_survives_a_crash_of_udp,
        )
        .alone(),
        Scenario::new(
            "tcp_listener_survives_a_crash_of_tcp",
            net::tcp_listener_survives_a_crash_of_tcp,
        )
        .alone(),
        Scenario::new("crash_and_hang_are_real", crash_and_hang_are_real),
        Scenario::new(
            "rs_restarts_crashed_and_hung_workers",
            rs_restarts_crashed_and_hung_workers,
        )
        .shares_boot(RS_BOOT),
        Scenario::new("rs_gives_up_on_a_crash_loop", rs_gives_up_on_a_crash_loop)
            .shares_boot(RS_BOOT),
        Scenario::new("kernel_restarts_rs", kernel_restarts_rs).shares_boot(RS_BOOT),
        Scenario::new(
            "ondemand_programs_run_from_the_shell",
            ondemand::programs_run_from_the_shell,
        )
        .shares_boot(ondemand::BOOT),
        Scenario::new(
            "ondemand_clean_exit_is_not_restarted",
            ondemand::clean_exit_is_not_restarted,
        )
        .shares_boot(ondemand::BOOT),
        Scenario::new(
            "ping_over_tap_in_a_namespace",
            tap::ping_over_tap_in_a_namespace,
        )
        .alone(),
        Scenario::new(
            "clock_hpet_calibrates_the_tsc",
            clock::hpet_calibrates_the_tsc,
        ),
        Scenario::new(
            "clock_pit_calibrates_the_tsc",
            clock::pit_calibrates_the_tsc,
        ),
    ]
}

/// Limit on the kernel's own boot time measure for an 8-CPU BIOS boot (guest milliseconds).
pub const SMP8_BOOT_MS_LIMIT: u64 = 3000;

fn boot_bios_smp1(h: &dyn Harness) -> ScenarioResult {
    boots_with_cpus(h, "boot_bios_smp1", exit_after_boot(1)).map(|_| None)
}

fn boot_bios_smp2(h: &dyn Harness) -> ScenarioResult {
    boots_with_cpus(h, "boot_bios_smp2", exit_after_boot(2)).map(|_| None)
}

fn boot_bios_smp4(h: &dyn Harness) -> ScenarioResult {
    boots_with_cpus(h, "boot_bios_smp4", exit_after_boot(4)).map(|_| None)
}

fn boot_bios_smp8(h: &dyn Harness) -> ScenarioResult {
    let spec = exit_after_boot(8).timeout(Duration::from_secs(90));
    let line = boots_with_cpus(h, "boot_bios_smp8", spec)?;
    if line.boot_ms >= SMP8_BOOT_MS_LIMIT {
        return Err(format!(
            "boot took boot_ms={} (guest time), limit is {SMP8_BOOT_MS_LIMIT}",
            line.boot_ms
        ));
    }
    Ok(None)
}

fn boot_uefi_smp4(h: &dyn Harness) -> ScenarioResult {
    let spec = exit_after_boot(4).uefi().timeout(Duration::from_secs(90));
    boots_with_cpus(h, "boot_uefi_smp4", spec).map(|_| None)
}

/// A BIOS boot with `smp` CPUs that reports success right after its boot line.
fn exit_after_boot(smp: u32) -> BootSpec {
    BootSpec::bios(smp, "test=exit-after-boot")
}

/// Boots with `test=exit-after-boot` and checks the verdict and the CPU count of the boot line.
fn boots_with_cpus(h: &dyn Harness, name: &str, spec: BootSpec) -> Result<BootLine, String> {
    let r = h.boot(name, &spec);
    exited_after_boot(&r, spec.smp)
}

/// Judges a `test=exit-after-boot` run: the success verdict and a boot line with `smp` CPUs.
fn exited_after_boot(r: &BootResult, smp: u32) -> Result<BootLine, String> {
    expect_outcome(r, &Outcome::Passed)?;
    let line = transcript::boot_line(&r.transcript)
        .ok_or("no 'boot: N cpus online boot_ms=T' line in the transcript")?;
    if line.cpus != smp {
        return Err(format!(
            "boot line says {} cpus online, expected {smp}",
            line.cpus
        ));
    }
    Ok(line)
}

fn panic_reports_failure(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot("panic_reports_failure", &BootSpec::bios(1, "test=panic"));
    expect_outcome(&r, &Outcome::GuestFailed)?;
    for needle in ["KERNEL PANIC", "deliberate panic (test=panic)"] {
        if !r.transcript.contains(needle) {
            return Err(format!("transcript lacks '{needle}'"));
        }
    }
    Ok(None)
}

fn triple_fault_is_caught(h: &dyn Harness) -> ScenarioResult {
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
    Ok(None)
}

fn hang_is_killed_by_timeout(h: &dyn Harness) -> ScenarioResult {
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
    Ok(None)
}

/// The test manifest of the isolation scenarios.
pub const ISOLATION_MANIFEST: &str = "tests/manifests/isolation.toml";
/// The boot the isolation scenarios share.
const ISOLATION_BOOT: &str = "isolation";
/// The processes of [`ISOLATION_MANIFEST`] that must fault, and the vector of their fault.
const ISOLATION_FAULTERS: [(&str, u8); 3] =
    [("bad-pointer", 14), ("bad-opcode", 6), ("kernel-write", 14)];
/// What the heartbeat process logs, every 200 ms.
const HEARTBEAT_LINE: &str = "heartbeat: heartbeat ";

/// Four CPUs, the isolation manifest; the shell waits two seconds (the faulters have long
/// faulted by then, the heartbeat keeps beating) and lists the processes.
fn isolation_spec() -> BootSpec {
    BootSpec::bios(4, "")
        .manifest(ManifestSource::File(ISOLATION_MANIFEST))
        .exec(&["sleep 2", "ps"])
        .timeout(Duration::from_secs(120))
}

fn isolation_faults_stop_only_the_faulter(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(ISOLATION_BOOT, &isolation_spec());
    r.exec_verdict()?;
    let faults = shell::fault_lines(&r.transcript);
    for (name, vector) in ISOLATION_FAULTERS {
        let f = faults
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("no kernel 'fault: {name} ...' line"))?;
        if f.mnemonic != shell::mnemonic(vector) {
            return Err(format!(
                "{name} took {} but should have taken {} (vector {vector}): {}",
                f.mnemonic,
                shell::mnemonic(vector),
                r.transcript.lines().nth(f.line).unwrap_or("").trim()
            ));
        }
    }
    if let Some(f) = faults
        .iter()
        .find(|f| !ISOLATION_FAULTERS.iter().any(|(n, _)| *n == f.name))
    {
        return Err(format!(
            "{} (pid {}) faulted too ({}): a fault must stop only the faulter",
            f.name, f.pid, f.mnemonic
        ));
    }
    let rows = ps_rows(&r, "ps")?;
    for (name, _) in ISOLATION_FAULTERS {
        let row = ps_row(&rows, name)?;
        if row.state != "faulted" {
            return Err(format!(
                "ps shows {name} '{}', expected 'faulted'",
                row.state
            ));
        }
    }
    let heartbeat = ps_row(&rows, "heartbeat")?;
    if !matches!(heartbeat.state.as_str(), "running" | "ready" | "blocked") {
        return Err(format!(
            "ps shows heartbeat '{}', expected it alive (running, ready or blocked)",
            heartbeat.state
        ));
    }
    let last_fault = faults.iter().map(|f| f.line).max().unwrap_or(0);
    let beats_after = r
        .transcript
        .lines()
        .skip(last_fault + 1)
        .filter(|l| l.contains(HEARTBEAT_LINE))
        .count();
    if beats_after == 0 {
        return Err("no 'heartbeat: heartbeat N' line after the last fault line".to_string());
    }
    Ok(None)
}

fn map_not_granted_is_refused(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(ISOLATION_BOOT, &isolation_spec());
    let has = |needle: &str| r.transcript.lines().any(|l| l.contains(needle));
    let missing = |what: &str| {
        format!(
            "transcript lacks {what} ({} after {:.1} s)",
            r.outcome.describe(),
            r.elapsed.as_secs_f64()
        )
    };
    if !has("denied map of 'secret' to map-denied") {
        return Err(missing(
            "the kernel's \"denied map of 'secret' to map-denied\" line",
        ));
    }
    if !has("map-denied: refused") {
        return Err(missing("testproc's 'map-denied: refused' line"));
    }
    let mapped = r
        .transcript
        .lines()
        .any(|l| l.contains("map-ok: shared-page") && l.trim_end().ends_with(" ok"));
    if !mapped {
        return Err(missing("testproc's 'map-ok: shared-page ... ok' line"));
    }
    for bad in ["map-denied: FAILED", "map-ok: FAILED"] {
        if let Some(l) = r.transcript.lines().find(|l| l.contains(bad)) {
            return Err(format!("testproc reports a failure: {l}"));
        }
    }
    Ok(None)
}

fn ps_lists_the_manifest_smp8(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::System)
        .exec(&["ps"])
        .timeout(Duration::from_secs(150));
    let r = h.boot("ps_lists_the_manifest_smp8", &spec);
    r.exec_verdict()?;
    let table = r
        .manifest
        .as_deref()
        .ok_or("the harness packed no manifest")?;
    let manifest =
        Manifest::parse(table).map_err(|e| format!("the packed manifest is refused: {e}"))?;
    let rows = ps_rows(&r, "ps")?;
    every_process_listed(&manifest, &rows, true)?;
    Ok(None)
}

/// Each CPU's busy share (%) between the first and the last `stat` of a boot's session.
pub fn busy_between_stats(r: &BootResult) -> Result<Vec<(u32, f64)>, String> {
    let outputs: Vec<&str> = r
        .exec
        .as_ref()
        .map(|e| {
            e.commands
                .iter()
                .filter(|c| c.command == "stat")
                .map(|c| c.output.as_str())
                .collect()
        })
        .unwrap_or_default();
    let (Some(first), Some(last)) = (outputs.first(), outputs.last()) else {
        return Err("'stat' was not run".to_string());
    };
    if outputs.len() < 2 {
        return Err("'stat' ran once; a busy share needs two readings".to_string());
    }
    let table = |out: &str| {
        shell::parse_stat(out)
            .ok_or_else(|| format!("no stat table in the output of 'stat':\n{out}"))
    };
    let uptime = |out: &str| {
        shell::parse_uptime(out)
            .ok_or_else(|| format!("no 'uptime N ms' line under 'stat':\n{out}"))
    };
    shell::busy_percent(&table(first)?, &table(last)?, uptime(first)?, uptime(last)?)
        .ok_or_else(|| "the uptime did not grow between the two 'stat's".to_string())
}

/// Two CPUs for system.toml: the dedicated processes share, and `stat` shows both CPUs mostly
/// idle over a second and a half (nothing runs but rs's heartbeats and the shell).
fn dedicated_fallback_smp2(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(2, "")
        .manifest(ManifestSource::System)
        .exec(&["ps", "stat", "sleep 2", "stat"])
        .timeout(Duration::from_secs(120));
    let r = h.boot("dedicated_fallback_smp2", &spec);
    r.exec_verdict()?;
    if !r.transcript.contains("too few CPUs") {
        return Err("the boot log does not say 'too few CPUs'".to_string());
    }
    let table = r
        .manifest
        .as_deref()
        .ok_or("the harness packed no manifest")?;
    let manifest =
        Manifest::parse(table).map_err(|e| format!("the packed manifest is refused: {e}"))?;
    every_process_listed(&manifest, &ps_rows(&r, "ps")?, false)?;
    let busy = busy_between_stats(&r)?;
    if busy.len() != 2 || busy.iter().any(|&(_, b)| b > 50.0) {
        return Err(format!(
            "stat's IDLE_MS says the idle CPUs were busy (cpu, %): {busy:?}"
        ));
    }
    let shown: Vec<String> = busy
        .iter()
        .map(|(c, b)| format!("cpu{c} {b:.0}%"))
        .collect();
    Ok(Some(format!("busy {}", shown.join(", "))))
}

/// Round trips of the kernel-IPC scenario.
const PINGPONG_ROUND_TRIPS: u64 = 100_000;

fn kernel_ipc_pingpong(h: &dyn Harness) -> ScenarioResult {
    let command = format!("ipcbench {PINGPONG_ROUND_TRIPS}");
    let spec = BootSpec::bios(4, "")
        .manifest(ManifestSource::System)
        .exec(&[&command])
        .timeout(Duration::from_secs(300));
    let r = h.boot("kernel_ipc_pingpong", &spec);
    r.exec_verdict()?;
    let out = r.output_of(&command)?;
    let value = |key: &str| {
        transcript::summary_value(out, "ipcbench:", key)
            .ok_or_else(|| format!("no 'ipcbench: ... {key}=N' in the output of '{command}'"))?
            .parse::<u64>()
            .map_err(|_| format!("'{key}' of the ipcbench line is not a number"))
    };
    let (round_trips, rtt_ns, errors) = (value("round_trips")?, value("rtt_ns")?, value("errors")?);
    if round_trips != PINGPONG_ROUND_TRIPS || errors != 0 {
        return Err(format!(
            "ipcbench: round_trips={round_trips} errors={errors}, expected \
             round_trips={PINGPONG_ROUND_TRIPS} errors=0"
        ));
    }
    Ok(Some(format!("rtt {rtt_ns} ns")))
}

/// Messages of the pipelined channel phase of the chanbench scenario.
pub const CHANBENCH_MSGS: u64 = 100_000;

/// `chanbench` between two dedicated CPUs: both transports measured, every message checked, and
/// the channel path under load makes fewer than one syscall per 1,000 messages. The speeds and
/// their ratios are reported, not judged (a shared machine is noisy): see `cargo xtask bench`.
fn chanbench_both_transports_smp4(h: &dyn Harness) -> ScenarioResult {
    let command = format!("chanbench {CHANBENCH_MSGS}");
    let spec = BootSpec::bios(4, "")
        .manifest(ManifestSource::System)
        .exec(&[&command])
        .timeout(Duration::from_secs(300));
    let r = h.boot("chanbench_both_transports_smp4", &spec);
    r.exec_verdict()?;
    let out = r.output_of(&command)?;
    let value = |key: &str| {
        transcript::summary_value(out, "chanbench:", key)
            .ok_or_else(|| format!("no 'chanbench: ... {key}=..' in the output of '{command}'"))?
            .parse::<f64>()
            .map_err(|_| format!("'{key}' of the chanbench line is not a number"))
    };
    let chan = value("chan_msgs_per_s")?;
    let kernel = value("kernel_msgs_per_s")?;
    let per_1k = value("chan_syscalls_per_1k")?;
    let (tr, rr) = (value("throughput_ratio")?, value("rtt_ratio")?);
    if chan <= 0.0 || kernel <= 0.0 {
        return Err(format!(
            "a transport measured nothing: chan {chan} msgs/s, kernel {kernel} msgs/s"
        ));
    }
    if per_1k >= 1.0 {
        return Err(format!(
            "the channel path made {per_1k} syscalls per 1,000 messages (limit: fewer than 1)"
        ));
    }
    Ok(Some(format!(
        "throughput {tr:.1}x, rtt {rr:.1}x, {per_1k:.3} syscalls/1k"
    )))
}

/// Test manifest of the preemption scenario.
pub const PREEMPTION_MANIFEST: &str = "tests/manifests/preemption.toml";

/// One CPU, two processes that never yield and the shell: the timer preempts them, so both
/// report progress and the shell still answers; `stat` shows the CPU busy all along.
fn preemption_shares_one_cpu(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(1, "")
        .manifest(ManifestSource::File(PREEMPTION_MANIFEST))
        .exec(&["stat", "sleep 5", "ps", "stat"])
        .timeout(Duration::from_secs(120));
    let r = h.boot("preemption_shares_one_cpu", &spec);
    r.exec_verdict()?;
    for name in ["spin-a", "spin-b"] {
        let rounds = r
            .transcript
            .lines()
            .filter(|l| l.contains(&format!("{name}: spin: round")))
            .count();
        if rounds < 2 {
            return Err(format!(
                "{name} reported {rounds} rounds of work; preemption should let it run"
            ));
        }
    }
    let rows = ps_rows(&r, "ps")?;
    for name in ["spin-a", "spin-b", "shell"] {
        let row = ps_row(&rows, name)?;
        if row.cpu != 0 {
            return Err(format!(
                "{name} runs on cpu{}, expected the only CPU",
                row.cpu
            ));
        }
    }
    let busy = busy_between_stats(&r)?;
    match busy[..] {
        [(0, b)] if b >= 90.0 => Ok(Some(format!("cpu0 busy {b:.0}%"))),
        _ => Err(format!(
            "stat's IDLE_MS says the CPU two spinners share was idle (cpu, busy %): {busy:?}"
        )),
    }
}

/// Test manifest of the driver scenarios.
pub const E1000_MANIFEST: &str = "tests/manifests/e1000.toml";

fn e1000_spec(model: NicModel, exec: &[&str]) -> BootSpec {
    BootSpec::bios(4, "")
        .manifest(ManifestSource::File(E1000_MANIFEST))
        .nic(model)
        .exec(exec)
        .timeout(Duration::from_secs(120))
}

/// The driver's log shows the model and link up, the gateway answered its ARP request, and
/// `ifconfig` (asking the driver over IPC) reports link up.
fn link_and_arp(r: &BootResult, model: &str) -> Result<(), String> {
    r.exec_verdict()?;
    let t = &r.transcript;
    if !t
        .lines()
        .any(|l| l.contains(&format!("e1000: {model} mac")) && l.contains("link up"))
    {
        return Err(format!("no 'e1000: {model} mac .. link up' line"));
    }
    if !t.contains("e1000: arp reply from 10.0.2.2 is-at") {
        return Err("QEMU's gateway 10.0.2.2 never answered the driver's ARP request".into());
    }
    let out = r.output_of("ifconfig")?;
    if !out.contains("link up") {
        return Err(format!("ifconfig does not say 'link up':\n{out}"));
    }
    Ok(())
}

fn e1000_link_and_arp_82540em(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(
        "e1000_link_and_arp_82540em",
        &e1000_spec(NicModel::E1000, &["sleep 3", "ifconfig"]),
    );
    link_and_arp(&r, "82540EM").map(|_| None)
}

fn e1000e_link_and_arp_82574l_msi(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(
        "e1000e_link_and_arp_82574l_msi",
        &e1000_spec(NicModel::E1000e, &["sleep 3", "ifconfig"]),
    );
    link_and_arp(&r, "82574L")?;
    if !r.transcript.contains("irq MSI") {
        return Err("the kernel did not give the 82574L its MSI interrupt".into());
    }
    Ok(None)
}

/// Killing the driver and starting a new instance re-initialises the NIC: link and ARP again.
fn e1000_restart_brings_the_link_back(h: &dyn Harness) -> ScenarioResult {
    let spec = e1000_spec(
        NicModel::E1000,
        &[
            "sleep 3",
            "kill e1000",
            "restart e1000",
            "sleep 4",
            "ifconfig",
        ],
    );
    let r = h.boot("e1000_restart_brings_the_link_back", &spec);
    link_and_arp(&r, "82540EM")?;
    let replies = r
        .transcript
        .matches("e1000: arp reply from 10.0.2.2")
        .count();
    let ups = r
        .transcript
        .lines()
        .filter(|l| l.contains("e1000: 82540EM mac") && l.contains("link up"))
        .count();
    if replies < 2 || ups < 2 {
        return Err(format!(
            "after the restart: {ups} 'link up' and {replies} ARP replies in all (expected 2 of each)"
        ));
    }
    Ok(None)
}

/// The driver on the data path: a stand-in for pf sends an ARP request from a tx-pool buffer and
/// gets the reply in an rx-pool buffer the NIC wrote by DMA; every buffer goes home, none refused.
fn e1000_zero_copy_path(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(4, "")
        .manifest(ManifestSource::File("tests/manifests/netpath-driver.toml"))
        .nic(NicModel::E1000)
        .exec(&["sleep 4", "ifconfig"])
        .timeout(Duration::from_secs(120));
    let r = h.boot("e1000_zero_copy_path", &spec);
    r.exec_verdict()?;
    let t = &r.transcript;
    for needle in [
        "pathprobe: tx done",
        "pathprobe: arp reply from 10.0.2.2 is-at",
        "e1000: data path:",
    ] {
        if !t.contains(needle) {
            return Err(format!("no '{needle}' in the log"));
        }
    }
    let last = t
        .lines()
        .rev()
        .find(|l| l.contains("driver path rx_to_pf="))
        .ok_or("pathprobe never reported the driver's path counters")?;
    if !last.contains("refused=0") {
        return Err(format!("the driver refused messages: {last}"));
    }
    Ok(None)
}

/// Test manifest of the split network stack.
pub const NET_MANIFEST: &str = "tests/manifests/net.toml";

/// The split stack's first light: `ping -c 3 10.0.2.2` from the guest shell through ip, pf and
/// the e1000 driver, each alone on its CPU, to QEMU's gateway and back.
fn ping_through_e1000_pf_ip_smp8(h: &dyn Harness) -> ScenarioResult {
    ping_through_the_stack(h, net::Layout::Split)
}

/// The same ping with the kernel moving every message between the processes (`ipc=kernel`).
fn ping_through_e1000_pf_ip_smp8_kernel_ipc(h: &dyn Harness) -> ScenarioResult {
    ping_through_the_stack(h, net::Layout::KernelIpc)
}

fn ping_through_the_stack(h: &dyn Harness, layout: net::Layout) -> ScenarioResult {
    let spec = BootSpec::bios(8, layout.cmdline())
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .exec(&["sleep 2", "ping -c 3 10.0.2.2", "ps"])
        .timeout(Duration::from_secs(120));
    let r = h.boot(&layout.name("ping_through_e1000_pf_ip_smp8"), &spec);
    r.exec_verdict()?;
    let out = r.output_of("ping -c 3 10.0.2.2")?;
    if !out.contains("3 packets transmitted, 3 received") {
        return Err(format!("ping did not get 3 of 3 replies:\n{out}"));
    }
    let rows = ps_rows(&r, "ps")?;
    let mut cpus = Vec::new();
    for name in ["e1000", "pf", "ip"] {
        let row = ps_row(&rows, name)?;
        if !row.dedicated {
            return Err(format!(
                "{name} is not alone on its CPU (ps CORE {})",
                row.cpu
            ));
        }
        if let Some(other) = rows.iter().find(|o| o.cpu == row.cpu && o.pid != row.pid) {
            return Err(format!("{name} shares cpu{} with {}", row.cpu, other.name));
        }
        cpus.push(row.cpu);
    }
    let rtt = out
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .unwrap_or("?");
    Ok(Some(format!("rtt min/avg/max/mdev {rtt}")))
}

/// A pf rule that denies ICMP in drops the echo replies (its hit counter grows, the stand-in ip
/// logs missing replies); deleting it restores them; after `crash pf` (rs restarts it) a rule
/// added before the crash is still listed.
fn pf_rule_drops_and_survives_a_crash(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(4, "")
        .manifest(ManifestSource::File("tests/manifests/pf.toml"))
        .nic(NicModel::E1000)
        .exec(&[
            "sleep 3",
            "pf add deny in icmp from any to any",
            "sleep 3",
            "pf list",
            "pf del 1",
            "sleep 3",
            "pf add deny in udp from any to any port 7",
            "crash pf",
            "sleep 3",
            "pf list",
        ])
        .timeout(Duration::from_secs(150));
    let r = h.boot("pf_rule_drops_and_survives_a_crash", &spec);
    r.exec_verdict()?;
    let t = &r.transcript;
    let added = t
        .find("added rule 1: deny in icmp")
        .ok_or("pf did not add the ICMP rule")?;
    let deleted = t
        .find("deleted rule 1: deny in icmp")
        .ok_or("pf did not delete the ICMP rule")?;
    let during = &t[added..deleted];
    if !during.contains("no echo reply for seq") {
        return Err("with the deny rule in place, echo replies still arrived".into());
    }
    let hits = r
        .output_of("pf list")?
        .lines()
        .find(|l| l.contains("deny in icmp"))
        .and_then(|l| l.split("hits=").nth(1))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or("pf list shows no hit count for the ICMP rule")?;
    if hits == 0 {
        return Err("the ICMP rule has no hits".into());
    }
    if !t[deleted..].contains("echo reply from 10.0.2.2") {
        return Err("after deleting the rule no echo reply came back".into());
    }
    if !t.contains("rs: restarted pf") {
        return Err("rs did not restart pf after the crash".into());
    }
    let last_list = t.rfind("axolotl> pf list").ok_or("no second pf list")?;
    if !t[last_list..].contains("deny in udp from any to any port 7") {
        return Err("the rule added before the crash is gone after it".into());
    }
    Ok(Some(format!("{hits} replies dropped by the rule")))
}

fn screen_shows_the_console_bios(h: &dyn Harness) -> ScenarioResult {
    screen_shows_the_console(h, "screen_shows_the_console_bios", false)
}

fn screen_shows_the_console_uefi(h: &dyn Harness) -> ScenarioResult {
    screen_shows_the_console(h, "screen_shows_the_console_uefi", true)
}

/// The framebuffer console: a screendump taken at the end of a shell session reads back (cell
/// by cell, against the font) as the boot log and the session — not just "not blank".
fn screen_shows_the_console(h: &dyn Harness, name: &str, uefi: bool) -> ScenarioResult {
    let mut spec = BootSpec::bios(2, "")
        .manifest(ManifestSource::System)
        .exec(&["echo fbcon-ok"])
        .screendump()
        .timeout(Duration::from_secs(90));
    spec.uefi = uefi;
    let r = h.boot(name, &spec);
    r.exec_verdict()?;
    let image = r.screen.clone().ok_or("no screendump was taken")??;
    screen::check_console(
        &image,
        &["boot: 2 cpus online", "echo fbcon-ok", "axolotl>"],
    )
    .map(Some)
}

/// `crash NAME` makes the kernel inject a genuine CPU fault (the process jumps to an unmapped
/// address: a page fault there); `hang NAME` takes it off the CPU (ps says `stopped`) until
/// `resume NAME`. Checked on the driver, which then is restarted and works again.
fn crash_and_hang_are_real(h: &dyn Harness) -> ScenarioResult {
    let spec = e1000_spec(
        NicModel::E1000,
        &[
            "sleep 3",
            "hang e1000",
            "ps",
            "resume e1000",
            "crash e1000",
            "restart e1000",
            "sleep 4",
            "ifconfig",
        ],
    );
    let r = h.boot("crash_and_hang_are_real", &spec);
    r.exec_verdict()?;
    let rows = ps_rows(&r, "ps")?;
    let driver = ps_row(&rows, "e1000")?;
    if driver.state != "stopped" {
        return Err(format!(
            "after 'hang e1000' ps shows it '{}', expected 'stopped'",
            driver.state
        ));
    }
    let fault = shell::fault_lines(&r.transcript)
        .into_iter()
        .find(|f| f.name == "e1000")
        .ok_or("no kernel fault line for e1000 after 'crash e1000'")?;
    if fault.mnemonic != shell::mnemonic(14) {
        return Err(format!(
            "the injected fault was {}, expected a page fault",
            fault.mnemonic
        ));
    }
    if !r.transcript.contains("address=0x1000") {
        return Err("the page fault was not at the injected address 0x1000".into());
    }
    if !r.output_of("ifconfig")?.contains("link up") {
        return Err("after the restart ifconfig does not say 'link up'".into());
    }
    Ok(None)
}

/// Test manifest of the reincarnation scenarios.
pub const RS_MANIFEST: &str = "tests/manifests/rs.toml";
/// The boot the reincarnation scenarios share.
const RS_BOOT: &str = "reincarnation";

fn rs_spec() -> BootSpec {
    BootSpec::bios(4, "")
        .manifest(ManifestSource::File(RS_MANIFEST))
        .exec(&[
            "sleep 2",
            "crash worker",
            "sleep 1",
            "hang worker",
            "sleep 3",
            "crash rs",
            "sleep 1",
            "ps",
        ])
        .timeout(Duration::from_secs(120))
}

/// A worker that crashes is restarted by rs; one that hangs (its heartbeat stops) is killed and
/// restarted; ps counts both restarts and shows the worker running.
fn rs_restarts_crashed_and_hung_workers(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(RS_BOOT, &rs_spec());
    r.exec_verdict()?;
    let t = &r.transcript;
    if !t.contains("rs: worker (pid") || !t.contains("crashed") {
        return Err("rs did not report the worker's crash".into());
    }
    if !t
        .lines()
        .any(|l| l.contains("rs: worker (pid") && l.contains("hung"))
    {
        return Err("rs did not notice the hung worker".into());
    }
    let restarts = t
        .lines()
        .filter(|l| l.contains("rs: restarted worker"))
        .count();
    if restarts < 2 {
        return Err(format!(
            "rs restarted the worker {restarts} times, expected 2 (crash, hang)"
        ));
    }
    let rows = ps_rows(&r, "ps")?;
    let worker = ps_row(&rows, "worker")?;
    if worker.restarts < 2 || !matches!(worker.state.as_str(), "running" | "blocked" | "ready") {
        return Err(format!(
            "ps shows worker {} with {} restarts",
            worker.state, worker.restarts
        ));
    }
    let down: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("rs: restarted worker"))
        .filter_map(|l| l.split(", down ").nth(1))
        .collect();
    Ok(Some(format!("down {}", down.join(", "))))
}

/// A process that faults at every start is restarted up to its policy's limit (3), then rs
/// gives up loudly, and the rest keeps working (the shell answers).
fn rs_gives_up_on_a_crash_loop(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(RS_BOOT, &rs_spec());
    r.exec_verdict()?;
    if !r.transcript.contains("rs: GIVING UP on crasher") {
        return Err("rs never gave up on the crash loop".into());
    }
    let restarts = r
        .transcript
        .lines()
        .filter(|l| l.contains("rs: restarted crasher"))
        .count();
    if restarts != 3 {
        return Err(format!(
            "rs restarted the crasher {restarts} times; its policy allows 3"
        ));
    }
    let rows = ps_rows(&r, "ps")?;
    let crasher = ps_row(&rows, "crasher")?;
    if crasher.state != "faulted" {
        return Err(format!(
            "ps shows the crasher '{}', expected it left 'faulted'",
            crasher.state
        ));
    }
    Ok(None)
}

/// rs itself crashes: the kernel restarts it.
fn kernel_restarts_rs(h: &dyn Harness) -> ScenarioResult {
    let r = h.boot(RS_BOOT, &rs_spec());
    r.exec_verdict()?;
    if !r
        .transcript
        .contains("the reincarnation server died: the kernel restarts it")
    {
        return Err("the kernel did not restart rs".into());
    }
    let rows = ps_rows(&r, "ps")?;
    let rs = ps_row(&rows, "rs")?;
    if rs.restarts != 1 || rs.state == "faulted" {
        return Err(format!(
            "ps shows rs '{}' with {} restarts, expected running with 1",
            rs.state, rs.restarts
        ));
    }
    Ok(None)
}

/// Programs started on demand (`start = "on-demand"`): the shell starts `demo` (testproc running a
/// job) in the foreground and in the background, refuses a second start while it runs, starts it
/// again after it ended, and rs leaves it down after a clean exit.
pub mod ondemand {
    use super::*;

    /// Test manifest of the on-demand scenarios.
    pub const MANIFEST: &str = "tests/manifests/ondemand.toml";
    /// The boot the on-demand scenarios share.
    pub const BOOT: &str = "ondemand";
    /// The last command: a background start, a second start while it runs (busy: `[exit 1]`),
    /// `&` on a built-in (refused: `[exit 2]`), and a run that exits with 3 (`[exit 3]`). The
    /// session stops after it, on its first `[exit 1]`.
    pub const LAST: &str = "demo sleep 2 &; demo say twice; sleep 1 &; sleep 4; demo exit 3";
    /// The commands typed.
    pub const EXEC: [&str; 6] = [
        "ps",
        "demo say hello-fg",
        "demo say hello-bg sleep 3 &; ps",
        "sleep 4; ps; jobs",
        "demo say again",
        LAST,
    ];

    fn spec() -> BootSpec {
        BootSpec::bios(2, "")
            .manifest(ManifestSource::File(MANIFEST))
            .exec(&EXEC)
            .timeout(Duration::from_secs(90))
    }

    /// The boot, checked to have run every command and to have stopped on [`LAST`]'s busy
    /// start, as it must.
    fn boot(h: &dyn Harness) -> Result<BootResult, String> {
        let r = h.boot(BOOT, &spec());
        if r.transcript.contains("KERNEL PANIC") {
            return Err("the kernel panicked".into());
        }
        let failure = r.exec.as_ref().and_then(|e| e.failure.as_ref());
        match failure {
            Some(ExecFailure::CommandFailed { command, status: 1 }) if command == LAST => Ok(r),
            Some(_) => Err(r.exec_verdict().err().unwrap_or_default()),
            None if r.exec.is_none() => Err(r.exec_verdict().err().unwrap_or_default()),
            None => Err(format!(
                "'{LAST}' did not fail: a second start of a running program must give [exit 1]"
            )),
        }
    }

    /// The whitespace-separated cells of each line of `output` whose second cell is `name`.
    fn rows_of<'o>(output: &'o str, name: &str) -> Vec<Vec<&'o str>> {
        output
            .lines()
            .map(|l| l.split_ascii_whitespace().collect::<Vec<_>>())
            .filter(|c| c.get(1) == Some(&name))
            .collect()
    }

    /// The pid in `started demo (pid P) in the background`.
    fn background_pid(output: &str) -> Result<u32, String> {
        output
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("started demo (pid ")?
                    .strip_suffix(") in the background")?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| format!("no 'started demo (pid P) in the background' in:\n{output}"))
    }

    /// Foreground, background with ps, busy, restart after the end, `&` refused on a built-in,
    /// and an exit code passed through as the command's status.
    pub fn programs_run_from_the_shell(h: &dyn Harness) -> ScenarioResult {
        let r = boot(h)?;
        let ps = r.output_of("ps")?;
        if !rows_of(ps, "demo")
            .iter()
            .any(|c| c.len() == 5 && c[0] == "-" && c[3] == "unstarted")
        {
            return Err(format!(
                "before its first start ps does not show demo 'unstarted' with pid '-':\n{ps}"
            ));
        }
        let fg = r.output_of("demo say hello-fg")?;
        if !fg.contains("demo: say: hello-fg") || !fg.contains("exited with code 0") {
            return Err(format!(
                "the foreground run did not print its line and exit 0 before the prompt:\n{fg}"
            ));
        }
        if fg.contains("[exit") {
            return Err(format!("a clean exit printed a status line:\n{fg}"));
        }
        let bg = r.output_of("demo say hello-bg sleep 3 &; ps")?;
        let pid = background_pid(bg)?;
        let rows = shell::parse_ps(bg).ok_or("no ps table after the background start")?;
        let demo = ps_row(&rows, "demo")?;
        if demo.pid != pid || !matches!(demo.state.as_str(), "running" | "blocked" | "ready") {
            return Err(format!(
                "while in the background ps shows demo pid {} '{}', expected pid {pid} alive",
                demo.pid, demo.state
            ));
        }
        let again = r.output_of("demo say again")?;
        if !again.contains("demo: say: again") || again.contains("[exit") {
            return Err(format!("demo did not run again after its end:\n{again}"));
        }
        let last = r.output_of(LAST)?;
        let statuses: Vec<i32> = last
            .lines()
            .filter_map(shell::exit_status_of_line)
            .collect();
        for (needle, what) in [
            ("started demo (pid", "the background start"),
            (
                "demo: already running (pid",
                "the refusal of a second start while it runs",
            ),
            (
                "sleep: built-in commands run in the foreground only",
                "the refusal of '&' on a built-in",
            ),
            ("demo: pid", "the report of the exit code"),
            ("exited with code 3", "the exit code 3"),
        ] {
            if !last.contains(needle) {
                return Err(format!("'{LAST}' lacks {what} ('{needle}'):\n{last}"));
            }
        }
        if statuses != [1, 2, 3] {
            return Err(format!(
                "'{LAST}' gave statuses {statuses:?}, expected [1, 2, 3] (busy, '&' refused, \
                 exit 3):\n{last}"
            ));
        }
        Ok(None)
    }

    /// A run that exits with 0 stays `exited` with no restart, though its policy would restart
    /// it after a crash; `jobs` shows its exit code.
    pub fn clean_exit_is_not_restarted(h: &dyn Harness) -> ScenarioResult {
        let r = boot(h)?;
        let pid = background_pid(r.output_of("demo say hello-bg sleep 3 &; ps")?)?;
        let after = r.output_of("sleep 4; ps; jobs")?;
        let rows = shell::parse_ps(after).ok_or("no ps table after the background run")?;
        let demo = ps_row(&rows, "demo")?;
        if (demo.pid, demo.state.as_str(), demo.restarts) != (pid, "exited", 0) {
            return Err(format!(
                "after its end ps shows demo pid {} '{}' with {} restarts, expected pid {pid} \
                 'exited' with 0",
                demo.pid, demo.state, demo.restarts
            ));
        }
        let pid_cell = pid.to_string();
        if !rows_of(after, "demo")
            .iter()
            .any(|c| c[..] == [pid_cell.as_str(), "demo", "exited", "0", "0"])
        {
            return Err(format!(
                "jobs does not show demo (pid {pid}) exited with code 0:\n{after}"
            ));
        }
        let t = &r.transcript;
        if !t.contains(&format!("demo (pid {pid}) exited with code 0")) {
            return Err(format!(
                "the kernel did not log the exit of demo (pid {pid})"
            ));
        }
        if !t.contains("1 of them started on demand") {
            return Err("rs did not count demo among the components it watches".into());
        }
        if let Some(line) = t
            .lines()
            .find(|l| l.contains("rs: restarting demo") || l.contains("rs: restarted demo"))
        {
            return Err(format!("rs restarted demo after a clean exit: {line}"));
        }
        Ok(None)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const PS_BEFORE: &str = "\
PID  NAME   CORE  STATE      RESTARTS
  1  rs     0     blocked           0
  2  shell  1     running           0
  -  demo   0     unstarted         0
";
        const FG: &str = "\
[cpu1] shell (pid 2) starts demo with args 'say hello-fg'
[cpu0] demo: say: hello-fg
[cpu0] demo (pid 3) exited with code 0
";
        const BG: &str = "\
started demo (pid 4) in the background
[cpu0] demo: say: hello-bg
PID  NAME   CORE  STATE    RESTARTS
  1  rs     0     blocked         0
  2  shell  1     running         0
  4  demo   0     blocked         0
";
        const AFTER: &str = "\
[cpu0] demo (pid 4) exited with code 0
PID  NAME   CORE  STATE    RESTARTS
  1  rs     0     blocked         0
  2  shell  1     running         0
  4  demo   0     exited          0
PID  NAME  STATE   EXIT  RESTARTS
  4  demo  exited     0         0
";
        const AGAIN: &str = "[cpu0] demo: say: again\n[cpu0] demo (pid 5) exited with code 0\n";
        const LAST_OUT: &str = "\
started demo (pid 6) in the background
demo: already running (pid 6); wait for it to end, or kill it
[exit 1]
sleep: built-in commands run in the foreground only; '&' is for on-demand programs
[exit 2]
demo: pid 7 exited with code 3
[exit 3]
";
        const LOG: &str = "\
[cpu0] rs: watching 2 components, 1 of them started on demand (faults ...)
[cpu0] demo (pid 4) exited with code 0
";

        fn canned(outputs: [&str; 6], log: &str, failure: Option<ExecFailure>) -> BootResult {
            BootResult {
                transcript: log.to_string(),
                exec: Some(ExecReport {
                    commands: EXEC
                        .iter()
                        .zip(outputs)
                        .map(|(c, o)| CommandOutput {
                            command: c.to_string(),
                            output: o.to_string(),
                            status: shell::exit_status(o),
                        })
                        .collect(),
                    failure,
                }),
                ..BootResult::not_run(Outcome::Stopped)
            }
        }

        fn busy() -> Option<ExecFailure> {
            Some(ExecFailure::CommandFailed {
                command: LAST.to_string(),
                status: 1,
            })
        }

        fn judge(
            outputs: [&str; 6],
            log: &str,
            failure: Option<ExecFailure>,
        ) -> [ScenarioResult; 2] {
            let r = canned(outputs, log, failure);
            let h = crate::tests::Fake::new(move |_| r.clone());
            [
                programs_run_from_the_shell(&h),
                clean_exit_is_not_restarted(&h),
            ]
        }

        const GOOD: [&str; 6] = [PS_BEFORE, FG, BG, AFTER, AGAIN, LAST_OUT];

        #[test]
        fn a_good_run_passes_both() {
            assert_eq!(judge(GOOD, LOG, busy()), [Ok(None), Ok(None)]);
            let s = crate::tests::find("ondemand_programs_run_from_the_shell");
            let t = crate::tests::find("ondemand_clean_exit_is_not_restarted");
            assert_eq!((s.boot_name(), t.boot_name()), (BOOT, BOOT));
        }

        #[test]
        fn the_session_must_stop_on_the_busy_start() {
            for failure in [
                None,
                Some(ExecFailure::CommandFailed {
                    command: "demo say again".into(),
                    status: 1,
                }),
                Some(ExecFailure::CommandFailed {
                    command: LAST.into(),
                    status: 3,
                }),
            ] {
                for verdict in judge(GOOD, LOG, failure.clone()) {
                    assert!(verdict.is_err(), "{failure:?}");
                }
            }
        }

        #[test]
        fn what_each_scenario_catches() {
            // Why scenario `which` (0: programs run, 1: clean exit) fails on `outputs` and `log`.
            let why = |outputs: [&str; 6], log: &str, which: usize| {
                let [a, b] = judge(outputs, log, busy());
                [a, b][which].clone().unwrap_err()
            };
            let mut o = GOOD;
            o[0] = "PID  NAME   CORE  STATE    RESTARTS\n  2  shell  1     running  0\n";
            assert!(why(o, LOG, 0).contains("unstarted"));
            let mut o = GOOD;
            o[1] = "[cpu0] demo: say: hello-fg\ndemo: pid 3 exited with code 1\n[exit 1]\n";
            assert!(why(o, LOG, 0).contains("foreground"));
            let mut o = GOOD;
            let no_busy = LAST_OUT.replace("[exit 1]\n", "");
            o[5] = &no_busy;
            assert!(why(o, LOG, 0).contains("statuses [2, 3]"));
            // rs restarting it after a clean exit, or ps counting a restart, or no jobs row.
            let restarted = format!("{LOG}[cpu0] rs: restarting demo in 10 ms\n");
            assert!(why(GOOD, &restarted, 1).contains("rs restarted demo"));
            let mut o = GOOD;
            let counted = AFTER.replace("exited          0", "exited          1");
            o[3] = &counted;
            assert!(why(o, LOG, 1).contains("1 restarts"));
            let mut o = GOOD;
            let no_jobs = AFTER.replace("  4  demo  exited     0         0\n", "");
            o[3] = &no_jobs;
            assert!(why(o, LOG, 1).contains("jobs"));
        }
    }
}

/// The host floods the guest with UDP datagrams through a forwarded loopback port while the
/// driver counts: it must take far fewer interrupts than frames (it polls under load). The
/// flood lasts until the boot is over, bounded (count and time), and goes only to 127.0.0.1.
fn e1000_flood_takes_few_interrupts(h: &dyn Harness) -> ScenarioResult {
    let [port] = ports::host_ports()?;
    let spec = e1000_spec(NicModel::E1000, &["sleep 12", "ifconfig"]).forward(false, port, 9);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || -> u64 {
            let Ok(sock) = std::net::UdpSocket::bind("127.0.0.1:0") else {
                return 0;
            };
            // Give the guest time to boot and resolve its gateway (which teaches QEMU its MAC).
            for _ in 0..60 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return 0;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // Until the boot is over (the guest sleeps 12 s after its prompt), at most 30 s: a
            // flood on a fixed window from the test's start, or of a fixed count (a million
            // datagrams went in about 6 s), could end before a slow boot's driver got going. A
            // millisecond's pause every 64 datagrams keeps the host's share of the work small.
            let payload = [0x5Au8; 1024];
            let start = std::time::Instant::now();
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(30)
            {
                if sock.send_to(&payload, ("127.0.0.1", port)).is_ok() {
                    sent += 1;
                }
                if sent.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            sent
        })
    };
    let r = h.boot("e1000_flood_takes_few_interrupts", &spec);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flooder.join().unwrap_or(0);
    r.exec_verdict()?;
    let out = r.output_of("ifconfig")?;
    let number = |key: &str| -> Result<u64, String> {
        out.split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no '{key}=N' in ifconfig:\n{out}"))
    };
    let frames = number("frames")?;
    let interrupts = number("interrupts")?;
    if frames < 1000 {
        return Err(format!(
            "the driver received {frames} frames of {sent} datagrams sent: no flood arrived"
        ));
    }
    if interrupts * 4 > frames {
        return Err(format!(
            "{interrupts} interrupts for {frames} frames: the driver should poll under load"
        ));
    }
    Ok(Some(format!(
        "{frames} frames, {interrupts} interrupts, {sent} datagrams sent"
    )))
}

/// Test manifest of the scribbling scenario.
pub const SCRIBBLE_MANIFEST: &str = "tests/manifests/scribble.toml";

/// A process writes garbage over the channel region it shares: its peer refuses the garbage
/// descriptors, then the ruined ring (bad magic), logs both and keeps running.
fn scribbled_channel_is_refused(h: &dyn Harness) -> ScenarioResult {
    let spec = BootSpec::bios(4, "")
        .manifest(ManifestSource::File(SCRIBBLE_MANIFEST))
        .exec(&["sleep 4", "ps"])
        .timeout(Duration::from_secs(120));
    let r = h.boot("scribbled_channel_is_refused", &spec);
    r.exec_verdict()?;
    let t = &r.transcript;
    if !t.contains("chan-victim: refused descriptor") {
        return Err("the victim logged no refused descriptor".into());
    }
    let vandal_at = t
        .find("scribble: writing garbage")
        .ok_or("the scribbler never started writing garbage")?;
    let after = &t[vandal_at..];
    let refused_ring = after
        .lines()
        .filter(|l| l.contains("chan-victim: alive;"))
        .any(|l| l.contains("bad magic") && !l.contains("bad magic 0,"));
    if !refused_ring {
        return Err(
            "after the scribbling began, the victim never reported refusing the ring".into(),
        );
    }
    let rows = ps_rows(&r, "ps")?;
    let victim = ps_row(&rows, "chan-victim")?;
    if victim.state == "faulted" || victim.state == "killed" {
        return Err(format!(
            "ps shows chan-victim '{}': it must survive",
            victim.state
        ));
    }
    Ok(None)
}

/// The `ps` table printed by `command` of the exec session.
fn ps_rows(r: &BootResult, command: &str) -> Result<Vec<PsRow>, String> {
    shell::parse_ps(r.output_of(command)?).ok_or_else(|| {
        format!("no 'PID NAME CORE STATE RESTARTS' table in the output of '{command}'")
    })
}

fn ps_row<'r>(rows: &'r [PsRow], name: &str) -> Result<&'r PsRow, String> {
    rows.iter()
        .find(|r| r.name == name)
        .ok_or_else(|| format!("ps does not list '{name}'"))
}

/// Every process of `manifest` started at boot is in `rows` and has not faulted; with
/// `dedicated`, each process the manifest places on a dedicated CPU shows `*`, on a CPU of its
/// own that no other process shares.
fn every_process_listed(
    manifest: &Manifest,
    rows: &[PsRow],
    dedicated: bool,
) -> Result<(), String> {
    for p in manifest.processes().filter(|p| p.start) {
        let row = ps_row(rows, p.name)?;
        if row.state == "faulted" {
            return Err(format!("ps shows '{}' faulted", p.name));
        }
        if dedicated && p.placement == Placement::Dedicated {
            if !row.dedicated {
                return Err(format!(
                    "'{}' is dedicated in the manifest, but ps shows CORE {} without '*'",
                    p.name, row.cpu
                ));
            }
            if let Some(other) = rows.iter().find(|o| o.cpu == row.cpu && o.pid != row.pid) {
                return Err(format!(
                    "'{}' should have cpu{} to itself, but ps shows '{}' there too",
                    p.name, row.cpu, other.name
                ));
            }
        }
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
    /// `cargo xtask image --out PATH` writes a small file at PATH and says so; any other xtask
    /// command fails.
    pub(crate) struct Fake {
        answer: Box<dyn Fn(&BootSpec) -> BootResult + Sync>,
        pub(crate) seen: Mutex<Vec<(String, BootSpec)>>,
        /// The images booted with `boot_image`.
        pub(crate) images: Mutex<Vec<PathBuf>>,
        /// The xtask command lines run.
        pub(crate) commands: Mutex<Vec<String>>,
        root: PathBuf,
    }

    impl Fake {
        pub(crate) fn new(answer: impl Fn(&BootSpec) -> BootResult + Sync + 'static) -> Self {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self {
                answer: Box::new(answer),
                seen: Mutex::new(Vec::new()),
                images: Mutex::new(Vec::new()),
                commands: Mutex::new(Vec::new()),
                root: std::env::temp_dir().join(format!("axolotl-fake-{}-{n}", std::process::id())),
            }
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
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

        fn boot_image(&self, name: &str, image: &Path, spec: &BootSpec) -> BootResult {
            self.images.lock().unwrap().push(image.to_path_buf());
            self.boot(name, spec)
        }

        fn xtask(&self, args: &[&str], _timeout: Duration) -> XtaskRun {
            self.commands.lock().unwrap().push(args.join(" "));
            let out = args.iter().position(|a| *a == "--out").map(|i| args[i + 1]);
            match (args.first(), out) {
                (Some(&"image"), Some(out)) => {
                    std::fs::write(out, [0u8; 1000]).unwrap();
                    XtaskRun {
                        status: Some(0),
                        stdout: format!("{out}: 1000 bytes (1000 B), BIOS image\n"),
                        stderr: String::new(),
                    }
                }
                _ => XtaskRun {
                    status: Some(1),
                    stdout: String::new(),
                    stderr: "error: the fake harness runs no xtask command\n".into(),
                },
            }
        }

        fn folder(&self, name: &str) -> Result<PathBuf, String> {
            let dir = self.root.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            Ok(dir)
        }
    }

    pub(crate) fn result(outcome: Outcome, transcript: &str, secs: u64) -> BootResult {
        BootResult {
            transcript: transcript.to_string(),
            elapsed: Duration::from_secs(secs),
            ..BootResult::not_run(outcome)
        }
    }

    pub(crate) fn find(name: &str) -> Scenario {
        scenarios().into_iter().find(|s| s.name == name).unwrap()
    }

    /// A guest that boots with the requested CPU count in `ms` guest milliseconds.
    pub(crate) fn good_boot(ms: u64) -> Fake {
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
        // Host-only scenarios boot nothing (and would touch the host: they are not run here).
        for s in all.iter().filter(|s| !s.host_only) {
            let h = good_boot(10);
            let _ = (s.run)(&h);
            let seen = h.seen.lock().unwrap();
            assert_eq!(seen.len(), 1, "{} boots once", s.name);
            assert_eq!(
                seen[0].0,
                s.boot_name(),
                "runs are named after their scenario or the boot it shares"
            );
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
            assert_eq!((find(name).run)(&h), Ok(None), "{name}");
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
        assert_eq!((s.run)(&good_boot(2999)), Ok(None));
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
            Ok(None)
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
            Ok(None)
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
        assert_eq!((s.run)(&timed_out(Some(u32::MAX - 7))), Ok(None));
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
        let s = Scenario::new("x", |_| Ok(None));
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

    /// A passed exec boot: `transcript`, the packed `table`, and each command's output.
    fn exec_boot(transcript: &str, table: &str, outputs: &[(&str, &str)]) -> BootResult {
        BootResult {
            transcript: transcript.to_string(),
            elapsed: Duration::from_secs(20),
            manifest: Some(table.to_string()),
            exec: Some(ExecReport {
                commands: outputs
                    .iter()
                    .map(|(c, o)| CommandOutput {
                        command: c.to_string(),
                        output: o.to_string(),
                        status: shell::exit_status(o),
                    })
                    .collect(),
                failure: None,
            }),
            ..BootResult::not_run(Outcome::Passed)
        }
    }

    fn answering(r: BootResult) -> Fake {
        Fake::new(move |_| r.clone())
    }

    const SYSTEM_TABLE: &str = "\
process shell binary=shell placement=shared grants=console,power,control regions= ipc=ipc-ping args= restart=5/10000/10 start=1
process ipc-ping binary=ipcbench placement=dedicated grants= regions= ipc=ipc-pong,shell args=ping restart=5/10000/10 start=1
process ipc-pong binary=ipcbench placement=dedicated grants= regions= ipc=ipc-ping args=pong restart=5/10000/10 start=1
process spare binary=ipcbench placement=dedicated grants= regions= ipc= args= restart=0/0/0 start=0
";

    const GOOD_PS: &str = "PID  NAME      CORE  STATE    RESTARTS\n\
                           \x20 1  shell     0     running         0\n\
                           [cpu1] ipc-ping: noise\n\
                           \x20 2  ipc-ping  1*    blocked         0\n\
                           \x20 3  ipc-pong  2*    blocked         0\n";

    #[test]
    fn exec_verdicts() {
        let good = exec_boot("axolotl> ps\n", SYSTEM_TABLE, &[("ps", "")]);
        assert_eq!(good.exec_verdict(), Ok(()));
        let panicked = BootResult {
            transcript: "KERNEL PANIC on cpu1: x".into(),
            ..good.clone()
        };
        assert_eq!(
            panicked.exec_verdict().unwrap_err(),
            "exec: the kernel panicked"
        );
        let reset = BootResult {
            outcome: Outcome::Reset,
            ..good.clone()
        };
        assert!(reset.exec_verdict().unwrap_err().contains("success code"));
        let mut failed = good.clone();
        failed.outcome = Outcome::Stopped;
        failed.exec.as_mut().unwrap().failure = Some(ExecFailure::CommandFailed {
            command: "ps".into(),
            status: 1,
        });
        assert_eq!(
            failed.exec_verdict().unwrap_err(),
            "exec: command 'ps' failed ([exit 1])"
        );
        let mut cut = good.clone();
        cut.outcome = Outcome::Timeout;
        cut.exec.as_mut().unwrap().failure = Some(ExecFailure::EndedDuringCommand {
            command: "ps".into(),
        });
        assert_eq!(
            cut.exec_verdict().unwrap_err(),
            "exec: QEMU ended while command 'ps' ran (timeout: QEMU was killed)"
        );
        let none = BootResult::not_run(Outcome::SetupFailed("no kernel".into()));
        assert!(none.exec_verdict().unwrap_err().contains("no kernel"));
        assert!(good.output_of("stat").is_err());
    }

    #[test]
    fn ps_scenario_checks_every_process_and_dedicated_cpus() {
        let s = find("ps_lists_the_manifest_smp8");
        assert!(s.exclusive);
        let h = answering(exec_boot("", SYSTEM_TABLE, &[("ps", GOOD_PS)]));
        assert_eq!((s.run)(&h), Ok(None));
        let spec = h.seen.lock().unwrap()[0].1.clone();
        assert_eq!(
            (spec.smp, spec.manifest, spec.exec),
            (8, ManifestSource::System, vec!["ps".to_string()])
        );
        let judge = |ps: &str| (s.run)(&answering(exec_boot("", SYSTEM_TABLE, &[("ps", ps)])));
        let missing = GOOD_PS.replace("  3  ipc-pong  2*    blocked         0\n", "");
        assert!(
            judge(&missing)
                .unwrap_err()
                .contains("does not list 'ipc-pong'")
        );
        let no_star = GOOD_PS.replace("2*", "2 ");
        assert!(judge(&no_star).unwrap_err().contains("without '*'"));
        let sharing = GOOD_PS.replace("1  shell     0 ", "1  shell     2 ");
        assert!(judge(&sharing).unwrap_err().contains("'shell' there too"));
        let faulted = GOOD_PS.replace("1*    blocked", "1*    faulted");
        assert!(judge(&faulted).unwrap_err().contains("'ipc-ping' faulted"));
        assert!(judge("no table").unwrap_err().contains("no 'PID NAME"));
        let failed = Fake::new(|_| result(Outcome::Timeout, "", 150));
        assert!((s.run)(&failed).unwrap_err().contains("exec:"));
    }

    #[test]
    fn fallback_scenario_needs_the_log_line() {
        let s = find("dedicated_fallback_smp2");
        let shared_ps = GOOD_PS.replace("1*", "0 ").replace("2*", "1 ");
        let log = "[cpu0] WARN: too few CPUs (2 for 2 dedicated processes + shared work): ipc-ping shares cpu0\n";
        // Two seconds and a half between the stats: cpu0 idle 2,250 ms of them, cpu1 2,500.
        let stat = |idle0: u64, idle1: u64, up: u64| {
            format!(
                "CPU  APIC  OWNER   SYSCALLS  INTERRUPTS  IPIS  TICKS  SWITCHES  IDLE_MS\n\
                 \x20 0     0  shared        10           5     0      9         1  {idle0}\n\
                 \x20 1     1  shared         7           3     0      9         1  {idle1}\n\
                 uptime {up} ms\n"
            )
        };
        let (before, idle, busy) = (
            stat(100, 100, 8000),
            stat(2350, 2600, 10_500),
            stat(350, 2600, 10_500),
        );
        let session = |after: &str| {
            answering(exec_boot(
                log,
                SYSTEM_TABLE,
                &[
                    ("ps", &shared_ps),
                    ("stat", &before),
                    ("sleep 2", ""),
                    ("stat", after),
                ],
            ))
        };
        let h = session(&idle);
        assert_eq!((s.run)(&h), Ok(Some("busy cpu0 10%, cpu1 0%".to_string())));
        assert_eq!(h.seen.lock().unwrap()[0].1.smp, 2);
        let e = (s.run)(&session(&busy)).unwrap_err();
        assert!(e.contains("were busy") && e.contains("(0, 90.0)"), "{e}");
        let once = answering(exec_boot(
            log,
            SYSTEM_TABLE,
            &[("ps", &shared_ps), ("stat", &before)],
        ));
        assert!((s.run)(&once).unwrap_err().contains("'stat' ran once"));
        let quiet = answering(exec_boot("", SYSTEM_TABLE, &[("ps", &shared_ps)]));
        assert!((s.run)(&quiet).unwrap_err().contains("too few CPUs"));
    }

    #[test]
    fn pingpong_scenario_reports_the_rtt() {
        let s = find("kernel_ipc_pingpong");
        let run = |out: &str| {
            let h = answering(exec_boot("", SYSTEM_TABLE, &[("ipcbench 100000", out)]));
            let verdict = (s.run)(&h);
            let spec = h.seen.lock().unwrap()[0].1.clone();
            assert_eq!(spec.timeout, Duration::from_secs(300));
            assert_eq!(spec.exec, ["ipcbench 100000"]);
            verdict
        };
        let line = "[cpu1] ipc-ping: ipcbench: round_trips=100000 rtt_ns=9 errors=0\n\
                    ipcbench: round_trips=100000 rtt_ns=12345 errors=0\n";
        assert_eq!(run(line), Ok(Some("rtt 12345 ns".to_string())));
        let bad = "ipcbench: round_trips=100000 rtt_ns=5 errors=2\n";
        assert!(run(bad).unwrap_err().contains("errors=2"));
        assert!(run("nothing\n").unwrap_err().contains("round_trips"));
    }

    const ISOLATION_TABLE: &str = "\
process shell binary=shell placement=shared grants=console,power,control regions= ipc= args= restart=0/0/0 start=1
process heartbeat binary=testproc placement=dedicated grants= regions=secret ipc= args=heartbeat restart=0/0/0 start=1
";

    /// A transcript of the isolation boot in which everything went right.
    const ISOLATION_LOG: &str = "\
[cpu0] started heartbeat (pid 2) on cpu1, dedicated
[cpu1] heartbeat: heartbeat 0
[cpu2] WARN: fault: bad-pointer (pid 3) #PF page fault at rip=0x1 address=0x5ead0000 error=0x4: process stopped
[cpu3] WARN: fault: bad-opcode (pid 4) #UD invalid opcode at rip=0x2 address=0x0 error=0x0: process stopped
[cpu2] WARN: denied map of 'secret' to map-denied (pid 6): not granted in system.toml
[cpu2] map-denied: map-denied: refused secret (not granted by the manifest) and nic0 (not granted by the manifest)
[cpu3] map-ok: map-ok: shared-page len=8192 phys=0x165000 ok
[cpu0] WARN: fault: kernel-write (pid 5) #PF page fault at rip=0x3 address=0xffff800000100000 error=0x6: process stopped
[cpu1] heartbeat: heartbeat 1
";

    const ISOLATION_PS: &str = "\
PID  NAME          CORE  STATE    RESTARTS
  1  shell         0     running         0
  2  heartbeat     1*    blocked         0
  3  bad-pointer   2     faulted         0
  4  bad-opcode    3     faulted         0
  5  kernel-write  0     faulted         0
  6  map-denied    2     exited          0
  7  map-ok        3     exited          0
";

    fn isolation(transcript: &str, ps: &str) -> BootResult {
        exec_boot(transcript, ISOLATION_TABLE, &[("sleep 2", ""), ("ps", ps)])
    }

    #[test]
    fn isolation_scenarios_share_one_boot() {
        let a = find("isolation_faults_stop_only_the_faulter");
        let b = find("map_not_granted_is_refused");
        assert_eq!(a.boot_name(), b.boot_name());
        let h = answering(isolation(ISOLATION_LOG, ISOLATION_PS));
        assert_eq!((a.run)(&h), Ok(None));
        assert_eq!((b.run)(&h), Ok(None));
        let seen = h.seen.lock().unwrap();
        assert_eq!(
            seen[0], seen[1],
            "same name and spec, so the harness boots once"
        );
        assert_eq!(
            seen[0].1.manifest,
            ManifestSource::File("tests/manifests/isolation.toml")
        );
        assert_eq!((seen[0].1.smp, seen[0].1.exec.len()), (4, 2));
    }

    #[test]
    fn isolation_failures() {
        let s = find("isolation_faults_stop_only_the_faulter");
        let judge = |t: &str, ps: &str| (s.run)(&answering(isolation(t, ps)));
        let gp = ISOLATION_LOG.replace(
            "bad-pointer (pid 3) #PF page fault",
            "bad-pointer (pid 3) #GP general protection",
        );
        let e = judge(&gp, ISOLATION_PS).unwrap_err();
        assert!(
            e.contains("bad-pointer took #GP but should have taken #PF (vector 14)"),
            "{e}"
        );
        let no_fault = ISOLATION_LOG.replace("fault: bad-opcode", "nothing: bad-opcode");
        assert!(
            judge(&no_fault, ISOLATION_PS)
                .unwrap_err()
                .contains("'fault: bad-opcode")
        );
        let extra = format!(
            "{ISOLATION_LOG}[cpu1] WARN: fault: heartbeat (pid 2) #PF page fault at rip=0x1 \
             address=0x0 error=0x4: process stopped\n[cpu1] heartbeat: heartbeat 2\n"
        );
        assert!(
            judge(&extra, ISOLATION_PS)
                .unwrap_err()
                .contains("heartbeat (pid 2) faulted too")
        );
        let still = ISOLATION_PS.replace("2     faulted", "2     running");
        assert!(
            judge(ISOLATION_LOG, &still)
                .unwrap_err()
                .contains("bad-pointer 'running'")
        );
        let dead = ISOLATION_PS.replace("1*    blocked", "1*    exited ");
        assert!(
            judge(ISOLATION_LOG, &dead)
                .unwrap_err()
                .contains("heartbeat 'exited'")
        );
        let silent = ISOLATION_LOG.replace("[cpu1] heartbeat: heartbeat 1\n", "");
        assert!(
            judge(&silent, ISOLATION_PS)
                .unwrap_err()
                .contains("after the last fault")
        );
    }

    #[test]
    fn map_scenario_needs_all_three_lines() {
        let s = find("map_not_granted_is_refused");
        let judge = |t: &str| (s.run)(&answering(isolation(t, ISOLATION_PS)));
        assert_eq!(judge(ISOLATION_LOG), Ok(None));
        for (line, why) in [
            ("denied map of 'secret'", "denied map"),
            ("map-denied: refused", "map-denied: refused"),
            (
                "shared-page len=8192 phys=0x165000 ok",
                "map-ok: shared-page",
            ),
        ] {
            let without = ISOLATION_LOG.replace(line, "");
            assert!(judge(&without).unwrap_err().contains(why), "{line}");
        }
        let failed = format!("{ISOLATION_LOG}[cpu2] map-ok: map-ok: FAILED shared-page: x\n");
        assert!(judge(&failed).unwrap_err().contains("reports a failure"));
    }
}

/// `--net tap`: the guest's network card on a TAP device inside a network namespace that xtask
/// makes for one boot and removes after it. The names and addresses are shared with xtask, which
/// makes the namespace, and the scenario, which checks that it existed while the guest ran and is
/// gone afterwards. The only traffic goes between the guest and the namespace's own address.
pub mod tap {
    use super::*;

    /// Every namespace xtask makes is called `axolotl-PID-N`.
    pub const NETNS_PREFIX: &str = "axolotl-";
    /// The TAP device inside the namespace (the namespace is the run's own, so the name never
    /// collides).
    pub const TAP_DEVICE: &str = "axolotl0";
    /// The namespace side of the link: the gateway of the guest's static configuration
    /// (10.0.2.15/24), so the guest runs unchanged.
    pub const HOST_CIDR: &str = "10.0.2.2/24";
    /// The address the guest pings.
    pub const HOST_ADDRESS: &str = "10.0.2.2";

    /// The namespace made by xtask process `pid` as its `seq`-th.
    pub fn namespace_name(pid: u32, seq: u32) -> String {
        format!("{NETNS_PREFIX}{pid}-{seq}")
    }

    /// The xtask pid in a namespace name `axolotl-PID-N`; `None` for any other name.
    pub fn owner_pid(name: &str) -> Option<u32> {
        let (pid, seq) = name.strip_prefix(NETNS_PREFIX)?.split_once('-')?;
        seq.parse::<u32>().ok()?;
        pid.parse().ok()
    }

    /// The names in the output of `ip netns list` (`NAME` or `NAME (id: N)` per line).
    pub fn parse_netns_list(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_ascii_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// The received-packets counter of `ip -s link show dev DEV`: the second number on the line
    /// after the `RX:` header. On a TAP device these are the frames the guest sent.
    pub fn parse_rx_packets(text: &str) -> Option<u64> {
        let mut lines = text.lines();
        lines.find(|l| l.trim_start().starts_with("RX:"))?;
        lines.next()?.split_ascii_whitespace().nth(1)?.parse().ok()
    }

    /// Whether this process runs as root (effective uid 0, from `/proc/self/status`).
    pub fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Uid:"))?;
                line["Uid:".len()..]
                    .split_ascii_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            })
            == Some(0)
    }

    /// Runs `ip ARGS`; its stdout when it succeeded.
    fn ip(args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The namespaces of this process (xtask's test harness) that exist now.
    fn our_namespaces() -> Vec<String> {
        let prefix = format!("{NETNS_PREFIX}{}-", std::process::id());
        parse_netns_list(&ip(&["netns", "list"]).unwrap_or_default())
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// The boot of [`ping_over_tap_in_a_namespace`].
    pub fn tap_ping_spec() -> BootSpec {
        BootSpec::bios(8, "")
            .manifest(ManifestSource::File(NET_MANIFEST))
            .tap()
            .exec(&["sleep 2", "ping -c 3 10.0.2.2"])
            .timeout(Duration::from_secs(120))
    }

    /// The split stack over `--net tap`: the guest pings 10.0.2.2, which is the namespace's end
    /// of the TAP device (the host's kernel answers inside the namespace), 3 of 3 replies. While
    /// the guest runs, the namespace `axolotl-PID-N` exists and its TAP device receives the
    /// guest's frames; afterwards `ip netns list` no longer shows it. Needs root: without it the
    /// scenario fails and says so (CI runs as root).
    pub fn ping_over_tap_in_a_namespace(h: &dyn Harness) -> ScenarioResult {
        let root = is_root();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut seen, mut rx) = (Vec::<String>::new(), 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for ns in our_namespaces() {
                        let link = ip(&["-n", &ns, "-s", "link", "show", "dev", TAP_DEVICE]);
                        if let Some(n) = link.as_deref().and_then(parse_rx_packets) {
                            rx = rx.max(n);
                        }
                        if !seen.contains(&ns) {
                            seen.push(ns);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                (seen, rx)
            })
        };
        let r = h.boot("ping_over_tap_in_a_namespace", &tap_ping_spec());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (seen, rx) = watcher
            .join()
            .map_err(|_| "the namespace watcher panicked".to_string())?;
        if !root {
            return Err(format!(
                "needs root: --net tap creates a network namespace and a TAP device, which only \
                 root may do; run the suite as root (CI does). The boot: {}",
                r.outcome.describe()
            ));
        }
        r.exec_verdict()?;
        let out = r.output_of("ping -c 3 10.0.2.2")?;
        if !out.contains("3 packets transmitted, 3 received") {
            return Err(format!("ping did not get 3 of 3 replies over tap:\n{out}"));
        }
        if seen.is_empty() {
            return Err(format!(
                "no network namespace {NETNS_PREFIX}{}-N appeared while the guest ran: the boot \
                 did not use a TAP device",
                std::process::id()
            ));
        }
        if rx == 0 {
            return Err(format!(
                "the TAP device {TAP_DEVICE} in {} received no frame from the guest",
                seen.join(", ")
            ));
        }
        // The harness removes the namespace when QEMU is gone; give `ip` a moment to agree.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<String> = parse_netns_list(&ip(&["netns", "list"]).unwrap_or_default())
                .into_iter()
                .filter(|n| seen.contains(n))
                .collect();
            if left.is_empty() {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "network namespace {} is still listed by 'ip netns list' after the run",
                    left.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let rtt = out
            .lines()
            .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
            .unwrap_or("?");
        Ok(Some(format!(
            "3 of 3 replies over {TAP_DEVICE} in {}, {rx} frames from the guest, rtt {rtt}; \
             namespace removed",
            seen.join(", ")
        )))
    }

    #[cfg(test)]
    mod tap_tests {
        use super::*;

        #[test]
        fn names_lists_and_counters_parse() {
            let name = namespace_name(4242, 3);
            assert_eq!(name, "axolotl-4242-3");
            assert_eq!(owner_pid(&name), Some(4242));
            for other in [
                "axolotl-4242",
                "axolotl-x-1",
                "axolotl-1-y",
                "other-1-2",
                "",
            ] {
                assert_eq!(owner_pid(other), None, "{other}");
            }
            assert_eq!(
                parse_netns_list("axolotl-1-0 (id: 2)\n\nblue\n"),
                ["axolotl-1-0", "blue"]
            );
            let link = "\
5: axolotl0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP mode DEFAULT
    link/ether f2:0d:d4:9c:4a:a3 brd ff:ff:ff:ff:ff:ff
    RX:  bytes packets errors dropped  missed   mcast
          1234      10      0       0       0       0
    TX:  bytes packets errors dropped carrier collsns
           980       7      0       0       0       0
";
            assert_eq!(parse_rx_packets(link), Some(10));
            assert_eq!(parse_rx_packets("RX: bytes packets\n"), None);
            assert!(HOST_CIDR.starts_with(HOST_ADDRESS));
        }

        #[test]
        fn the_scenario_boots_the_net_stack_on_tap_and_judges_the_ping() {
            let spec = tap_ping_spec();
            assert!(spec.tap && spec.forwards.is_empty());
            assert_eq!(spec.nic, Some(NicModel::E1000));
            assert_eq!(spec.manifest, ManifestSource::File(NET_MANIFEST));
            assert_eq!(spec.exec, ["sleep 2", "ping -c 3 10.0.2.2"]);
            let s = scenarios()
                .into_iter()
                .find(|s| s.name == "ping_over_tap_in_a_namespace")
                .unwrap();
            assert!(s.exclusive);
            // A fake boot makes no namespace: the scenario must notice (as root), or say that
            // it needs root.
            let h = crate::tests::Fake::new(|_| BootResult {
                exec: Some(ExecReport {
                    commands: vec![CommandOutput {
                        command: "ping -c 3 10.0.2.2".into(),
                        output: "3 packets transmitted, 3 received, 0% packet loss\n".into(),
                        status: None,
                    }],
                    failure: None,
                }),
                ..BootResult::not_run(Outcome::Passed)
            });
            let e = (s.run)(&h).unwrap_err();
            if is_root() {
                assert!(e.contains("no network namespace"), "{e}");
            } else {
                assert!(e.starts_with("needs root"), "{e}");
            }
        }
    }
}

/// The calibration references of the TSC and the local APIC timer (docs/kernel.md, "Clocks"):
/// boots that force the HPET or the PIT with `clock=` and compare the TSC frequency each gives
/// with the ACPI PM timer's, which the same boot measures as its cross-check.
pub mod clock {
    use super::*;

    /// The TSC frequency of a forced source may differ from the PM timer's by this many percent.
    pub const AGREEMENT_PERCENT: u64 = 10;
    /// TSC frequencies a real x86-64 machine (or QEMU on one) can have, in MHz.
    pub const PLAUSIBLE_MHZ: std::ops::RangeInclusive<u64> = 100..=10_000;

    /// What a `timers calibrated against the SOURCE: TSC N MHz, ...` or `timer cross-check
    /// against the SOURCE: TSC N MHz, ...` line says.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Measure {
        /// The reference, as the kernel names it (`ACPI PM timer`, `HPET`, `PIT`).
        pub source: String,
        /// The TSC frequency it gave, in MHz.
        pub tsc_mhz: u64,
    }

    fn parse(line: &str, prefix: &str) -> Option<Measure> {
        let rest = &line[line.find(prefix)? + prefix.len()..];
        let (source, rest) = rest.split_once(": TSC ")?;
        let (mhz, _) = rest.split_once(" MHz")?;
        Some(Measure {
            source: source.to_string(),
            tsc_mhz: mhz.trim().parse().ok()?,
        })
    }

    /// The source the kernel calibrated against (the last such line of the transcript).
    pub fn calibrated(transcript: &str) -> Option<Measure> {
        transcript
            .lines()
            .rev()
            .find_map(|l| parse(l, "timers calibrated against the "))
    }

    /// The cross-check measure against `source`, when the boot forced another.
    pub fn cross_check(transcript: &str, source: &str) -> Option<Measure> {
        transcript
            .lines()
            .filter_map(|l| parse(l, "timer cross-check against the "))
            .find(|m| m.source == source)
    }

    /// The boot of a scenario: one CPU, `clock=CLOCK`, success right after the boot line.
    pub fn spec(clock: &str) -> BootSpec {
        BootSpec::bios(1, &format!("test=exit-after-boot clock={clock}"))
    }

    /// Boots with `clock=CLOCK` and checks that the kernel calibrated against `source`, that
    /// the TSC frequency is plausible, and that it is within [`AGREEMENT_PERCENT`] of what the
    /// ACPI PM timer gives in the same boot. The note names both frequencies.
    fn forced(h: &dyn Harness, name: &str, clock: &str, source: &str) -> ScenarioResult {
        let r = h.boot(name, &spec(clock));
        exited_after_boot(&r, 1)?;
        let used = calibrated(&r.transcript)
            .ok_or("no 'timers calibrated against the ...: TSC N MHz' line in the transcript")?;
        if used.source != source {
            return Err(format!(
                "clock={clock}: the kernel calibrated against the {} instead of the {source}{}",
                used.source,
                r.transcript
                    .lines()
                    .find(|l| l.contains(&format!("the {source} is unusable")))
                    .map_or(String::new(), |l| format!(" ({})", l.trim()))
            ));
        }
        if !PLAUSIBLE_MHZ.contains(&used.tsc_mhz) {
            return Err(format!(
                "the {source} gives a TSC of {} MHz, outside {}..={} MHz",
                used.tsc_mhz,
                PLAUSIBLE_MHZ.start(),
                PLAUSIBLE_MHZ.end()
            ));
        }
        let pm = cross_check(&r.transcript, "ACPI PM timer").ok_or(
            "no 'timer cross-check against the ACPI PM timer: TSC N MHz' line (q35 has a PM timer)",
        )?;
        let diff = used.tsc_mhz.abs_diff(pm.tsc_mhz);
        if pm.tsc_mhz == 0 || diff * 100 > pm.tsc_mhz * AGREEMENT_PERCENT {
            return Err(format!(
                "the {source} gives a TSC of {} MHz, the ACPI PM timer {} MHz: more than \
                 {AGREEMENT_PERCENT}% apart",
                used.tsc_mhz, pm.tsc_mhz
            ));
        }
        Ok(Some(format!(
            "TSC {} MHz against the {source}, {} MHz against the ACPI PM timer",
            used.tsc_mhz, pm.tsc_mhz
        )))
    }

    /// `clock=hpet`: q35's HPET (enabled by the kernel, as firmware leaves it stopped).
    pub fn hpet_calibrates_the_tsc(h: &dyn Harness) -> ScenarioResult {
        forced(h, "clock_hpet_calibrates_the_tsc", "hpet", "HPET")
    }

    /// `clock=pit`: PIT channel 2.
    pub fn pit_calibrates_the_tsc(h: &dyn Harness) -> ScenarioResult {
        forced(h, "clock_pit_calibrates_the_tsc", "pit", "PIT")
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::tests::{Fake, find, result};

        fn transcript(source: &str, mhz: u64, pm_mhz: Option<u64>) -> String {
            let mut t = format!(
                "[cpu0] ACPI rev 0: 1 CPUs (1 enabled), 1 I/O APIC(s), PCIe ECAM yes\n\
                 [cpu0] timers calibrated against the {source}: TSC {mhz} MHz, APIC timer \
                 62512 kHz (/16)\n"
            );
            if let Some(pm) = pm_mhz {
                t.push_str(&format!(
                    "[cpu0] timer cross-check against the ACPI PM timer: TSC {pm} MHz, APIC \
                     timer 62500 kHz (/16), +120 ppm from the {source}\n"
                ));
            }
            t.push_str(
                "[cpu0] timer cross-check against the PIT: unusable (whatever)\n\
                 [cpu0] boot: 1 cpus online boot_ms=20\n",
            );
            t
        }

        fn fake(source: &'static str, mhz: u64, pm: Option<u64>) -> Fake {
            Fake::new(move |_| result(Outcome::Passed, &transcript(source, mhz, pm), 2))
        }

        #[test]
        fn lines_are_parsed() {
            let t = transcript("HPET", 2601, Some(2600));
            assert_eq!(
                calibrated(&t),
                Some(Measure {
                    source: "HPET".into(),
                    tsc_mhz: 2601
                })
            );
            assert_eq!(cross_check(&t, "ACPI PM timer").unwrap().tsc_mhz, 2600);
            assert_eq!(cross_check(&t, "PIT"), None);
            assert_eq!(
                calibrated("timers calibrated against the PIT: TSC x MHz"),
                None
            );
        }

        #[test]
        fn forced_sources_pass_when_they_agree() {
            for (name, cmdline, source) in [
                ("clock_hpet_calibrates_the_tsc", "clock=hpet", "HPET"),
                ("clock_pit_calibrates_the_tsc", "clock=pit", "PIT"),
            ] {
                let s = find(name);
                let h = fake(source, 2700, Some(2601));
                let note = (s.run)(&h).unwrap().unwrap();
                assert!(
                    note.contains("2700 MHz") && note.contains("2601 MHz"),
                    "{note}"
                );
                let seen = h.seen.lock().unwrap();
                assert_eq!(seen.len(), 1);
                assert_eq!(seen[0].0, name);
                assert_eq!(seen[0].1.cmdline, format!("test=exit-after-boot {cmdline}"));
            }
        }

        #[test]
        fn forced_sources_fail_on_disagreement_wrong_source_or_nonsense() {
            let s = find("clock_hpet_calibrates_the_tsc");
            let e = (s.run)(&fake("HPET", 2900, Some(2600))).unwrap_err();
            assert!(e.contains("more than 10% apart"), "{e}");
            let e = (s.run)(&fake("ACPI PM timer", 2600, None)).unwrap_err();
            assert!(e.contains("instead of the HPET"), "{e}");
            let e = (s.run)(&fake("HPET", 50, Some(50))).unwrap_err();
            assert!(e.contains("outside 100..=10000 MHz"), "{e}");
            let e = (s.run)(&fake("HPET", 2600, None)).unwrap_err();
            assert!(e.contains("no 'timer cross-check"), "{e}");
            let silent = Fake::new(|_| result(Outcome::Passed, "boot: 1 cpus online\n", 1));
            assert!((s.run)(&silent).is_err());
        }
    }
}
