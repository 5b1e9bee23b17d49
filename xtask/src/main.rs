//! `cargo xtask`: builds, runs and tests Axolotl (DESIGN.md §9).
//!
//! - `build` validates the system manifest (`manifest`), builds the user programs it names
//!   (`programs`), compiles the kernel for `x86_64-unknown-none` and makes the BIOS and UEFI
//!   disk images (`images`),
//! - `run` boots an image in QEMU with the serial console on the terminal (`qemu`), or types
//!   commands into the guest shell (`--exec`, `exec`),
//! - `test` runs the host unit tests, the in-kernel tests and the QEMU scenarios of the
//!   `axolotl-tests` crate, and sums them up (`suite`),
//! - `image` makes one BIOS or UEFI image and copies it where asked (`images`),
//! - `flash` writes that image to a block device, after checking that it is a whole disk that
//!   nothing uses, and reads it back (`flash`, `blockdev`),
//! - `bench` measures the network stack's throughput (split and single layouts, channels and
//!   kernel IPC) against a stock iperf3 in a network namespace (or over user networking without
//!   root), with the kernel's counters per packet and chanbench's figures, and writes a table,
//!   JSON and an SVG chart (`bench`).
//!
//! `--net tap` puts the guest's card on a TAP device inside a network namespace made for the run
//! and removed after it on every path, signals included (`netns`).
//!
//! Exit status: 0 success; 1 a guest, test or build failure; 2 a bad command line, a missing
//! feature, or QEMU failing; 124 a timeout. Options are parsed by hand in `args`; QEMU and OVMF
//! are found (or installed, as root) by `host`.

mod args;
mod bench;
mod blockdev;
mod console;
mod counts;
mod exec;
mod flash;
mod fuzz;
mod host;
mod hostcpu;
mod images;
mod manifest;
mod netns;
mod programs;
mod qemu;
mod qmp;
mod strip;
mod suite;
mod sys;

use std::process::ExitCode;

use args::{Command, Firmware, RunArgs};
use axolotl_tests::Outcome;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Error {
    /// The command line cannot be used (exit 2).
    Usage(String),
    /// The command asks for something that does not exist yet (exit 2).
    Unsupported(String),
    /// A step failed: a build, a file, a host tool (exit 1).
    Failed(String),
    /// Already explained to the user; exit with this status.
    Reported(u8),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(m) | Self::Unsupported(m) | Self::Failed(m) => f.write_str(m),
            Self::Reported(code) => write!(f, "failed with status {code}"),
        }
    }
}

const HELP: &str = "\
cargo xtask: build, run and test Axolotl

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    build    build the user programs, the kernel and the BIOS and UEFI disk images
    run      boot Axolotl in QEMU with the serial console on this terminal
    test     run every test: host unit tests, in-kernel tests, QEMU scenarios
    bench    measure the network stack's throughput and traps per packet
    image    write the BIOS or UEFI disk image to a file, ready for dd
    flash    write the disk image to a block device (a USB stick) and verify it
    console  drive the shell of a running Axolotl over the network (its network console)

'cargo xtask COMMAND --help' describes a command's options.
Exit status: 0 success; 1 guest, test or build failure; 2 bad usage, unsupported feature or QEMU
error; 124 timeout.
";

const HELP_BUILD: &str = "\
cargo xtask build [--release] [--manifest PATH]

Validates the system manifest, builds the user programs it names (release, for
x86_64-unknown-none, into target/user), builds the kernel (cargo build -p axolotl-kernel
--target x86_64-unknown-none) and makes target/axolotl/axolotl-bios.img and
target/axolotl/axolotl-uefi.img. Their ramdisk holds the kernel command line 'log=info', the
boot module table made from the manifest, and the programs.

OPTIONS:
    --release          build the kernel with the release profile
    --manifest PATH    the system manifest (default: system.toml at the workspace root)
";

const HELP_RUN: &str = "\
cargo xtask run [OPTIONS]

Builds the kernel and an image, then boots it in QEMU. The guest's serial console is this
terminal: Ctrl-A X quits QEMU, Ctrl-A H lists the other keys. The exit status is the guest's
verdict: 0 when it reported success, 1 on failure or reset, 124 after --timeout.

OPTIONS:
    --smp N                    virtual CPUs, 1..=64 (default 2)
    --mem MiB                  guest memory, 64..=65536 (default 256)
    --uefi                     boot through OVMF instead of the BIOS
    --accel tcg|kvm            emulate (default) or use /dev/kvm
    --nic e1000|e1000e         network card model (default e1000)
    --net user|tap|none        network backend (default none: no card); tap needs root
    --layout split|single      network stack: a process per server, or one netstack
                               process (default split; needs a manifest with a
                               layout = \"single\" process, as tests/manifests/net.toml)
    --ipc chan|kernel          transport between processes: shared-memory channels, or
                               the kernel moving every message (default chan)
    --idle sleep|poll          idle servers: sleep after a few hundred empty rounds, or,
                               on a CPU of their own, poll for 20 ms first (no system
                               call at load, a busy CPU; default sleep)
    --fwd tcp|udp:HOST:GUEST   forward a host port into the guest (repeatable)
    --exec \"CMD; CMD\"          type the commands into the guest shell one at a time, each
                               after the prompt, then 'poweroff'; exit 0 only when no
                               command printed '[exit N]', the guest powered off with
                               success and the kernel did not panic
    --timeout SECONDS          kill QEMU after this long; with --exec, the limit for the
                               first prompt and for each command instead (default 60)
    --manifest PATH            the system manifest (default: system.toml)
    --release                  release kernel
    --cmdline \"WORDS\"          extra kernel command-line words after 'log=info', e.g.
                               \"log=debug\" or \"test=kernel\"

--fwd needs --net user and forwards from the host's 127.0.0.1 only. --ipc kernel puts
ipc=kernel and --layout single layout=single on the kernel command line.
--net tap (root only) creates a network namespace axolotl-PID-N with a TAP device at
10.0.2.2/24 (the guest's gateway; the guest is 10.0.2.15) and runs QEMU inside it; the
namespace is removed when the run ends, on errors, timeouts, Ctrl-C and SIGTERM too, and a
namespace left by a killed run is removed by the next one. --fwd cannot be used with it.
";

const HELP_TEST: &str = "\
cargo xtask test [FILTER] [--jobs 1|2] [--verbose] [--manifest PATH]

Runs, in order: the host unit tests (cargo test of the host crates), the in-kernel tests (one
boot with test=kernel, each 'ktest NAME ... ok' line counting as the test kernel::NAME), and the
QEMU scenarios (tests/ crate). Prints 'test NAME ... ok|FAILED' per test (a scenario's line ends
with how long it took, '[T s]'), then a 'time:' line (each phase, the slowest scenarios), and
ends with the line 'N passed, M failed'. Exit status 0 only when nothing failed. A scenario that
fails after QEMU itself died (killed by a signal) runs once more, and says so.

FILTER runs only tests whose name contains it (the in-kernel suite runs when FILTER starts with,
or is a start of, 'kernel::').

OPTIONS:
    -j, --jobs N       QEMU instances at a time (default 2)
    -v, --verbose      echo every guest's serial output, prefixed by the test name
    --manifest PATH    the system manifest of the scenarios that boot the system (default
                       system.toml); scenarios with a test manifest (tests/manifests/) keep it
";

const HELP_BENCH: &str = "\
cargo xtask bench [--seconds S] [--json PATH] [--net tap|user] [--recovery-seconds R|--no-recovery]
                  [--rounds N]

Boots Axolotl with tests/manifests/net.toml (8 CPUs, release kernel) four times, one after the
other: the split layout over channels, the single layout (layout=single: one netstack process),
the split layout over kernel IPC (ipc=kernel) and the split layout whose idle servers poll
(idle=poll). Each boot measures TCP throughput between
the guest's iperf3 and a stock iperf3 server (port 5201) on the host side: 'iperf3 -c 10.0.2.2
-t S' (the guest sends) and the same with -R (the guest receives). Around each measurement the
shell's 'stat' and 'ifconfig' give the kernel's system calls and interrupts per 1,000 packets on
that layout's stack CPUs (e1000, pf, ip, udp, tcp; or e1000 and netstack). A last boot
(system.toml, 4 CPUs) runs 'chanbench'. The table gives the ratios of the run against their
targets: split/single throughput at least 0.9x, channels at least 2x kernel IPC, and fewer than
1 system call per 1,000 packets per row. A boot that fails (or an ipc=kernel boot whose stack
took fewer system calls than kernel IPC costs) gets rows saying FAILED with the reason, never a
made-up figure; the other boots are still measured, and the exit status is then 1.

The split and single layouts over channels are then booted and measured N - 1 more times
(--rounds N, default 3), alternately, and their ratio is the median of the N rounds' (each
shown): on a host whose load changes, one round can favour either layout.

Then, in the split/chan boot, the recovery phase: the guest's iperf3 streams for R seconds to a
second stock server (port 5202, reporting every 0.25 s) while the shell types 'crash ip' every
2 s; per crash, the lowest 0.25 s throughput against the median and the time until it is back.

Writes a table on stdout, the rows as JSON and a bar chart, target/bench/throughput.svg, and
the recovery series as a line chart, target/bench/recovery.svg.
Fails, measuring nothing, when the guest program iperf3 is not in tests/manifests/net.toml.

OPTIONS:
    --seconds S        length of each measurement, 1..=3600 (default 10)
    --json PATH        where to write the JSON (default target/bench/results.json); the chart
                       goes to target/bench/throughput.svg
    --net tap|user     tap (default when root): the guest behind a TAP device in a network
                       namespace of its own, iperf3 -s inside it; needs root. user (the
                       default without root, with a WARNING in the results): QEMU's user
                       networking, iperf3 -s on the host's 127.0.0.1
    --recovery-seconds R
                       length of the recovery stream, 4..=300 (default 16: seven crashes)
    --no-recovery      skip the recovery phase
    --rounds N         rounds of the split/single comparison, 1..=9 (default 3)
";

const HELP_IMAGE: &str = "\
cargo xtask image [--bios|--uefi] [--out PATH] [--release] [--manifest PATH] [--cmdline WORDS]

Builds the user programs, the kernel and one raw disk image, the same image 'build' makes, and
writes it to PATH. Prints the path and the size. The file can be written to a disk as it is
(dd if=PATH of=/dev/sdX bs=1M conv=fsync), or use 'cargo xtask flash'. See docs/rig.md.

OPTIONS:
    --bios             a BIOS (MBR) image, for legacy/CSM boot (the default)
    --uefi             a UEFI (GPT) image
    --out PATH         where to write it (default: target/axolotl/axolotl-bios.img or
                       target/axolotl/axolotl-uefi.img); an existing regular file is replaced
    --release          release kernel
    --manifest PATH    the system manifest (default: system.toml at the workspace root)
    --cmdline \"WORDS\"  extra kernel command-line words after 'log=info', as for 'run'; the
                       image's ramdisk holds the command line
";

const HELP_FLASH: &str = "\
cargo xtask flash DEVICE [--bios|--uefi] [--yes] [--release] [--manifest PATH] [--cmdline WORDS]

Writes the image 'cargo xtask image' would make to the block device DEVICE (a USB stick:
/dev/sdX, /dev/disk/by-id/usb-...), then reads it back and compares. Everything on DEVICE is
destroyed. See docs/rig.md.

Refuses, before building anything: a DEVICE that is not a block device, a partition (write the
whole disk), a read-only or empty one, and one that is in use: itself or any of its partitions
mounted, holding /, used as swap, or under device mapper/RAID. Refuses an image larger than
the device. Shows the device's size, model (or a loop device's file) and whether it is
removable, with a loud warning when it is not. Then asks to type 'yes', unless --yes; without
--yes and without a terminal it refuses (exit 2).

Writes in 1 MiB chunks with a progress bar, syncs, and verifies by reading the device back
(reporting the first mismatching offset). Exit status: 0 written and verified, 1 refused or
failed, 2 bad usage.

OPTIONS:
    --bios | --uefi    which image (default --bios)
    -y, --yes          do not ask for confirmation
    --release          release kernel
    --manifest PATH    the system manifest (default: system.toml)
    --cmdline \"WORDS\"  extra kernel command-line words after 'log=info', as for 'run'
";

const HELP_CONSOLE: &str = "\
cargo xtask console ADDR [--exec \"a; b\"] [--timeout S]

Drives the shell of a running Axolotl over the network (the shell's network console: its
manifest arguments say netconsole=PORT; see docs/rig.md). ADDR is HOST:PORT, or HOST for port
2323. Without --exec: lines typed go to the shell, its answers are printed; end with Ctrl-D.
With --exec: runs each command after the prompt, prints the answers, and ends after the last.

Exit status: 0 done, 1 no connection or the session broke, 2 bad usage.

OPTIONS:
    --exec \"a; b\"    commands to run, separated by ';'
    --timeout S        seconds to wait for the connection and for each answer (default 30)
";

fn help(topic: Option<&str>) -> &'static str {
    match topic {
        Some("build") => HELP_BUILD,
        Some("run") => HELP_RUN,
        Some("test") => HELP_TEST,
        Some("bench") => HELP_BENCH,
        Some("image") => HELP_IMAGE,
        Some("flash") => HELP_FLASH,
        Some("console") => HELP_CONSOLE,
        _ => HELP,
    }
}

fn main() -> ExitCode {
    let mut words = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(w) => words.push(w),
            Err(a) => {
                eprintln!("error: argument {a:?} is not UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let result = args::parse(&words)
        .map_err(|e| Error::Usage(e.0))
        .and_then(dispatch);
    ExitCode::from(match result {
        Ok(code) => code,
        Err(Error::Reported(code)) => code,
        Err(e @ Error::Usage(_)) => {
            eprintln!("error: {e}");
            2
        }
        Err(e @ Error::Unsupported(_)) => {
            eprintln!("{e}");
            2
        }
        Err(e @ Error::Failed(_)) => {
            eprintln!("error: {e}");
            1
        }
    })
}

fn dispatch(cmd: Command) -> Result<u8, Error> {
    match cmd {
        Command::Help(topic) => {
            print!("{}", help(topic));
            Ok(0)
        }
        Command::Build(b) => build(b.release, &manifest_or_default(b.manifest.as_deref())),
        Command::Run(r) => run(&r),
        Command::Test(t) => suite::test(&t),
        Command::Bench(b) => bench::bench(&b),
        Command::Image(a) => image(&a),
        Command::Flash(a) => flash::flash(&a),
        Command::Console(a) => console::console(&a),
    }
}

/// The manifest given, or `system.toml` at the workspace root.
fn manifest_or_default(given: Option<&std::path::Path>) -> std::path::PathBuf {
    given.map_or_else(images::default_manifest, |p| p.to_path_buf())
}

/// `cargo xtask build`.
fn build(release: bool, manifest: &std::path::Path) -> Result<u8, Error> {
    let payload = images::payload(manifest)?;
    let kernel = images::build_kernel(release)?;
    eprintln!("making images...");
    let out = images::out_dir();
    let modules = images::ramdisk_modules(args::DEFAULT_CMDLINE, Some(&payload));
    for image in images::make_images(&kernel, &out, &modules, &[Firmware::Bios, Firmware::Uefi])? {
        println!("{}", image.display());
    }
    Ok(0)
}

/// `cargo xtask image`: makes the image as `run` would, then copies it to `--out`.
fn image(a: &args::ImageArgs) -> Result<u8, Error> {
    let made = images::image_of(&a.source)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| images::out_dir().join(images::image_name(a.source.firmware)));
    if out != made {
        images::copy_atomically(&made, &out)?;
    }
    let len = std::fs::metadata(&out)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", out.display())))?
        .len();
    println!(
        "{}: {len} bytes ({}), {} image",
        out.display(),
        images::human_size(len),
        images::firmware_name(a.source.firmware)
    );
    Ok(0)
}

/// `cargo xtask run`.
fn run(a: &RunArgs) -> Result<u8, Error> {
    if !a.fwd.is_empty() && a.net != args::Net::User {
        return Err(Error::Usage(
            "--fwd needs --net user (QEMU's user networking forwards the host ports)".into(),
        ));
    }
    // Before the long builds: a TAP run needs root, `ip` and /dev/net/tun.
    if a.net == args::Net::Tap {
        netns::check_host("--net tap")?;
    }
    let tools = host::ensure_tools(a.uefi)?;
    if a.accel == args::Accel::Kvm {
        host::check_kvm()?;
    }
    let manifest = manifest_or_default(a.manifest.as_deref());
    let payload = images::payload(&manifest)?;
    if a.exec.is_some() && !payload.manifest.started_with_grant("console") {
        return Err(Error::Failed(format!(
            "--exec needs a shell: no process started at boot holds the 'console' grant in {}",
            images::manifest_display(&manifest)
        )));
    }
    if a.layout == args::Layout::Single && !payload.manifest.has_layout("single") {
        return Err(Error::Unsupported(format!(
            "--layout single: {} has no process of layout \"single\" (tests/manifests/net.toml has the netstack)",
            images::manifest_display(&manifest)
        )));
    }
    let kernel = images::build_kernel(a.release)?;
    let cmdline = a.cmdline();
    // The default command line and manifest use the images of `build`; any other run gets a
    // folder of its own.
    let dir = images::image_dir(&cmdline, &manifest, a.manifest.is_some());
    eprintln!("making images...");
    let fw = if a.uefi {
        Firmware::Uefi
    } else {
        Firmware::Bios
    };
    let modules = images::ramdisk_modules(&cmdline, Some(&payload));
    let image = images::make_images(&kernel, &dir, &modules, &[fw])?.remove(0);
    // With --net tap, QEMU runs inside a namespace of its own, removed when `ns` drops (every
    // return below) or by the signal watcher.
    let ns = match a.net {
        args::Net::Tap => Some(netns::Namespace::create("--net tap")?),
        _ => None,
    };
    // This run's own copy of the UEFI variable store, removed afterwards.
    let mut vars_copy = None;
    let boot = match (&tools.ovmf, a.uefi) {
        (Some(ovmf), true) => {
            let vars = dir.join(format!("OVMF_VARS-{}.fd", std::process::id()));
            if let host::Ovmf::Pflash { vars: template, .. } = ovmf {
                std::fs::copy(template, &vars).map_err(|e| {
                    Error::Failed(format!("cannot copy {}: {e}", template.display()))
                })?;
                vars_copy = Some(vars.clone());
            }
            qemu::Boot::Uefi {
                ovmf: ovmf.clone(),
                vars,
            }
        }
        _ => qemu::Boot::Bios,
    };
    let console = if qemu::on_terminal() && a.exec.is_none() {
        qemu::Console::Terminal
    } else {
        qemu::Console::Stdio
    };
    let machine = qemu::Machine {
        image,
        smp: a.smp,
        mem_mib: a.mem_mib,
        boot,
        accel: a.accel,
        net: a.net,
        nic: a.nic,
        console,
        fwd: a.fwd.clone(),
        qmp: None,
    };
    let qemu_args = qemu::qemu_args(&machine);
    let (program, qemu_args) = match &ns {
        Some(ns) => {
            eprintln!(
                "the guest is 10.0.2.15 inside the namespace: ip netns exec {} ping 10.0.2.15",
                ns.name()
            );
            ns.wrap(&tools.qemu, &qemu_args)
        }
        None => (tools.qemu.clone(), qemu_args),
    };
    eprintln!("running: {} {}", program.display(), qemu_args.join(" "));
    if console == qemu::Console::Terminal {
        eprintln!("(Ctrl-A X quits QEMU)");
    }
    // With --exec, --timeout limits each wait of the session, not the whole run.
    let plan = a.exec.as_ref().map(|commands| exec::Plan {
        commands: commands.clone(),
        step_timeout: a.timeout.unwrap_or(args::DEFAULT_EXEC_TIMEOUT),
    });
    let opts = qemu::RunOptions {
        timeout: if plan.is_some() { None } else { a.timeout },
        inherit_stdin: true,
        echo: qemu::Echo::Live,
        exec: plan,
        screendump: None,
        host_samples: None,
    };
    let result = qemu::run(&program, &qemu_args, &opts);
    drop(ns);
    if let Some(vars) = vars_copy {
        let _ = std::fs::remove_file(vars);
    }
    if opts.exec.is_some() {
        return Ok(match result.exec_verdict() {
            Ok(()) => 0,
            Err(why) => {
                if !result.transcript.is_empty() && !result.transcript.ends_with('\n') {
                    println!(); // the transcript ends in a prompt
                }
                eprintln!("{why}");
                match result.outcome {
                    Outcome::QemuError(_) | Outcome::SetupFailed(_) => 2,
                    _ => 1,
                }
            }
        });
    }
    if result.outcome == Outcome::Reset && qemu::user_quit(&result.transcript) {
        return Ok(0);
    }
    if let Some(msg) = qemu::outcome_message(&result.outcome, a.timeout) {
        eprintln!("{msg}");
    }
    Ok(qemu::exit_status(&result.outcome))
}
