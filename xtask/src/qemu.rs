//! Running one guest in QEMU: the command line, the serial transcript (echoed live and
//! captured), the timeout that kills QEMU, and the mapping from QEMU's exit status to an
//! [`Outcome`] and from there to xtask's own exit status.
//!
//! The guest reports its verdict through the `isa-debug-exit` device at port 0xf4: QEMU exits
//! with `(value << 1) | 1`, so 0x10 gives 33 (pass) and 0x11 gives 35 (fail). Exit 0 means the
//! guest never reported: under `-no-reboot` a triple fault (or a plain ACPI power-off) ends QEMU
//! with 0, and that counts as a failure.
//!
//! With an exec plan (`--exec`, or a scenario's commands), QEMU's stdin is a pipe and
//! `exec::drive` types into it while following the serial output; when the session fails it
//! has QEMU killed, and the outcome is [`Outcome::Stopped`].

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use axolotl_tests::{BootResult, Outcome};

use crate::args::{Accel, Net, Nic};
use crate::exec;
use crate::host::Ovmf;

/// QEMU's exit status when the guest wrote 0x10 (success) to the debug-exit port.
pub const EXIT_PASS: i32 = 33;
/// QEMU's exit status when the guest wrote 0x11 (failure) to the debug-exit port.
pub const EXIT_FAIL: i32 = 35;
/// xtask's exit status after a timeout (as `timeout(1)`).
pub const EXIT_TIMEOUT: u8 = 124;

/// Firmware of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF; `vars` is this run's private copy of the variable store (unused for a combined
    /// image).
    Uefi {
        /// The firmware found on the host.
        ovmf: Ovmf,
        /// This run's writable copy of the variable store.
        vars: PathBuf,
    },
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// `-serial stdio`: output captured, stdin as given to QEMU.
    Stdio,
    /// A terminal user: serial console behind QEMU's multiplexer, so Ctrl-A X quits and Ctrl-C
    /// reaches the guest instead of killing QEMU.
    Terminal,
}

/// Everything QEMU needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The disk image to boot.
    pub image: PathBuf,
    /// Virtual CPUs.
    pub smp: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Firmware.
    pub boot: Boot,
    /// Accelerator.
    pub accel: Accel,
    /// Network backend (`none`: no network card at all).
    pub net: Net,
    /// Network card model.
    pub nic: Nic,
    /// Serial console wiring.
    pub console: Console,
    /// Host loopback ports forwarded into the guest (user networking only).
    pub fwd: Vec<crate::args::Forward>,
    /// A QMP socket to listen on (for screendumps).
    pub qmp: Option<PathBuf>,
}

/// The arguments of `qemu-system-x86_64` for `m`.
pub fn qemu_args(m: &Machine) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |words: &[&str]| a.extend(words.iter().map(|w| w.to_string()));
    push(&["-machine", "q35"]);
    // Each emulated CPU's thread named `CPU N/TCG` on the host (`top -H`, `cargo xtask bench`'s
    // host CPU figures).
    push(&["-name", "axolotl,debug-threads=on"]);
    push(&["-m", &m.mem_mib.to_string(), "-smp", &m.smp.to_string()]);
    match m.console {
        Console::Stdio => push(&["-serial", "stdio"]),
        Console::Terminal => push(&[
            "-chardev",
            "stdio,id=console,mux=on,signal=off",
            "-serial",
            "chardev:console",
        ]),
    }
    push(&["-display", "none", "-monitor", "none", "-no-reboot"]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if let Some(qmp) = &m.qmp {
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", qmp.display()),
        ]);
    }
    match m.accel {
        Accel::Tcg => push(&["-accel", "tcg"]),
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "qemu64"]),
    }
    if let Boot::Uefi { ovmf, vars } = &m.boot {
        match ovmf {
            Ovmf::Pflash { code, .. } => {
                let code = format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    code.display()
                );
                let vars = format!("if=pflash,format=raw,unit=1,file={}", vars.display());
                push(&["-drive", &code, "-drive", &vars]);
            }
            Ovmf::Combined(fd) => push(&["-bios", &fd.display().to_string()]),
        }
    }
    match m.net {
        // Without this, q35 would add its default e1000e card.
        Net::None => push(&["-nic", "none"]),
        Net::User => {
            let mut nic = format!("user,model={}", nic_model(m.nic));
            for f in &m.fwd {
                let proto = match f.proto {
                    crate::args::Proto::Tcp => "tcp",
                    crate::args::Proto::Udp => "udp",
                };
                // Only the host's loopback: nothing outside this machine can reach the guest.
                nic.push_str(&format!(
                    ",hostfwd={proto}:127.0.0.1:{}-:{}",
                    f.host_port, f.guest_port
                ));
            }
            push(&["-nic", &nic]);
        }
        // The TAP device exists already, made by `netns` inside the namespace QEMU runs in; QEMU
        // only attaches to it (no scripts). The card is the same model as with user networking.
        Net::Tap => push(&[
            "-netdev",
            &format!(
                "tap,id=n0,ifname={},script=no,downscript=no",
                crate::netns::TAP_DEVICE
            ),
            "-device",
            &format!("{},netdev=n0", nic_model(m.nic)),
        ]),
    }
    push(&["-drive", &format!("format=raw,file={}", m.image.display())]);
    a
}

/// QEMU's device name of a network card model.
fn nic_model(nic: Nic) -> &'static str {
    match nic {
        Nic::E1000 => "e1000",
        Nic::E1000e => "e1000e",
    }
}

/// What becomes of the guest's output while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Echo {
    /// Captured only.
    Off,
    /// Copied to our stdout (serial) and stderr (QEMU's messages) as it arrives.
    Live,
    /// Copied line by line to our stdout, each line prefixed by `[NAME] `.
    Prefixed(String),
}

/// How to run QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Kill QEMU after this long.
    pub timeout: Option<Duration>,
    /// Hand our stdin to QEMU (interactive `run`); otherwise QEMU reads nothing (or the exec
    /// session's typing).
    pub inherit_stdin: bool,
    /// Where the output goes besides the transcript.
    pub echo: Echo,
    /// Commands to type into the guest shell.
    pub exec: Option<exec::Plan>,
    /// Take a screendump (QMP socket, PPM file) when the exec session's last prompt is back.
    pub screendump: Option<(PathBuf, PathBuf)>,
    /// Snapshot QEMU's threads' host CPU time just before each command of the exec session is
    /// typed (`cargo xtask bench`).
    pub host_samples: Option<crate::hostcpu::Samples>,
}

/// Whether the guest console can be used from this terminal: stdin and stdout are terminals.
pub fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Runs QEMU to its end (or the timeout) and says how it ended. Never panics; every failure is
/// an [`Outcome`]. The calling thread must be the one that waits (see [`crate::sys`]).
pub fn run(qemu: &Path, args: &[String], opts: &RunOptions) -> BootResult {
    let mut cmd = Command::new(qemu);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let inherit_stdin = opts.inherit_stdin && opts.exec.is_none();
    // A terminal user's QEMU stays in the terminal's foreground group (it reads the keyboard);
    // every other QEMU gets a group of its own, killed as a whole on timeout.
    let own_group = !(inherit_stdin && std::io::stdin().is_terminal());
    cmd.stdin(if opts.exec.is_some() {
        Stdio::piped()
    } else if inherit_stdin {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    if own_group {
        crate::sys::detach_and_tie_to_parent(&mut cmd);
    }
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return BootResult::not_run(Outcome::QemuError(format!(
                "could not start {}: {e}",
                qemu.display()
            )));
        }
    };
    let pid = child.id();
    let (stdout, stderr, stdin) = (child.stdout.take(), child.stderr.take(), child.stdin.take());
    let stop = AtomicBool::new(false);
    let (serial, qemu_err, waited, report) = std::thread::scope(|s| {
        let (to_session, session_output) = std::sync::mpsc::channel();
        let to_session = opts.exec.as_ref().map(|_| to_session);
        let serial = s.spawn(|| pump(stdout, &opts.echo, false, to_session));
        let qemu_err = s.spawn(|| pump(stderr, &opts.echo, true, None));
        let session = match (&opts.exec, stdin) {
            (Some(plan), Some(mut stdin)) => {
                let (stop, output) = (&stop, session_output);
                // The session hands stdin back instead of closing it: a QEMU that is to be
                // killed must not see its input end first.
                let shot = opts.screendump.clone();
                let samples = opts.host_samples.clone();
                Some(s.spawn(move || {
                    let mut taken: Option<Result<(), String>> = None;
                    let mut hook = || {
                        if let Some((sock, file)) = &shot {
                            taken =
                                Some(crate::qmp::screendump(sock, file, Duration::from_secs(10)));
                        }
                    };
                    let mut sample = |i: usize| {
                        if let Some(samples) = &samples {
                            samples.take(pid, i);
                        }
                    };
                    let report =
                        exec::drive(plan, &output, &mut stdin, stop, &mut sample, &mut hook);
                    ((report, taken), stdin)
                }))
            }
            _ => None,
        };
        let waited = wait_until(
            &mut child,
            opts.timeout.map(|t| start + t),
            pid,
            own_group,
            &stop,
        );
        (
            serial.join().unwrap_or_default(),
            qemu_err.join().unwrap_or_default(),
            waited,
            session.and_then(|s| s.join().ok()),
        )
    });
    // QEMU is gone: now its input may close.
    let (report, taken) = match report.map(|(r, _stdin)| r) {
        Some((r, t)) => (Some(r), t),
        None => (None, None),
    };
    let screen = opts.screendump.as_ref().map(|(_, file)| {
        taken
            .unwrap_or_else(|| Err("the session never reached its poweroff".into()))
            .and_then(|()| axolotl_tests::screen::Image::read_ppm(file))
    });
    let elapsed = start.elapsed();
    let qemu_err = String::from_utf8_lossy(&qemu_err).into_owned();
    let outcome = match waited {
        Waited::Exited(code, signal) => classify(code, signal, &qemu_err),
        Waited::TimedOut => {
            if !own_group && std::io::stdin().is_terminal() {
                // QEMU had the terminal in raw mode and died before restoring it.
                let _ = Command::new("stty").arg("sane").status();
            }
            Outcome::Timeout
        }
        Waited::Stopped => Outcome::Stopped,
        Waited::Lost(e) => Outcome::QemuError(format!("lost track of QEMU: {e}")),
    };
    BootResult {
        outcome,
        transcript: axolotl_tests::transcript::clean(&serial),
        elapsed,
        qemu_pid: Some(pid),
        manifest: None,
        exec: report,
        screen,
    }
}

enum Waited {
    /// Exit code or terminating signal.
    Exited(Option<i32>, Option<i32>),
    TimedOut,
    /// Killed because `stop` was set (the exec session failed).
    Stopped,
    Lost(std::io::Error),
}

fn wait_until(
    child: &mut std::process::Child,
    deadline: Option<Instant>,
    pid: u32,
    own_group: bool,
    stop: &AtomicBool,
) -> Waited {
    use std::os::unix::process::ExitStatusExt;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Waited::Exited(status.code(), status.signal()),
            Ok(None) => {}
            Err(e) => return Waited::Lost(e),
        }
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        let stopped = stop.load(Ordering::SeqCst);
        if timed_out || stopped {
            if own_group {
                crate::sys::kill_process_group(pid);
            }
            let _ = child.kill();
            let _ = child.wait();
            return if timed_out {
                Waited::TimedOut
            } else {
                Waited::Stopped
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies a pipe to the end, echoing it as asked and forwarding each chunk to `forward` (the
/// exec session; ignored once it is done), and returns everything read.
fn pump(
    pipe: Option<impl Read>,
    echo: &Echo,
    is_stderr: bool,
    forward: Option<Sender<Vec<u8>>>,
) -> Vec<u8> {
    let mut all = Vec::new();
    let Some(mut pipe) = pipe else { return all };
    let mut buf = [0u8; 4096];
    let mut line_start = 0;
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        all.extend_from_slice(&buf[..n]);
        if let Some(f) = &forward {
            let _ = f.send(buf[..n].to_vec());
        }
        match echo {
            Echo::Off => {}
            Echo::Live if is_stderr => {
                let _ = std::io::stderr().write_all(&buf[..n]);
            }
            Echo::Live => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            }
            Echo::Prefixed(name) => {
                while let Some(nl) = all[line_start..].iter().position(|&b| b == b'\n') {
                    print_prefixed(name, &all[line_start..line_start + nl], is_stderr);
                    line_start += nl + 1;
                }
            }
        }
    }
    if let Echo::Prefixed(name) = echo
        && line_start < all.len()
    {
        print_prefixed(name, &all[line_start..], is_stderr);
    }
    all
}

fn print_prefixed(name: &str, line: &[u8], is_stderr: bool) {
    let text = axolotl_tests::transcript::clean(line);
    let from = if is_stderr { " qemu:" } else { "" };
    println!("[{name}]{from} {text}");
}

/// The outcome of a QEMU that ended by itself with exit `code` (or was killed by `signal`, not
/// by us); `stderr` is what QEMU printed, quoted in errors.
pub fn classify(code: Option<i32>, signal: Option<i32>, stderr: &str) -> Outcome {
    let said = || {
        let s = stderr.trim();
        if s.is_empty() {
            String::new()
        } else {
            format!(": {s}")
        }
    };
    match (code, signal) {
        (Some(EXIT_PASS), _) => Outcome::Passed,
        (Some(EXIT_FAIL), _) => Outcome::GuestFailed,
        (Some(0), _) => Outcome::Reset,
        (Some(c), _) if c > 1 && c % 2 == 1 => Outcome::QemuError(format!(
            "QEMU exited with status {c}: the guest wrote {:#x} to the debug-exit port \
             (0x10 is pass, 0x11 is fail){}",
            (c - 1) / 2,
            said()
        )),
        (Some(c), _) => Outcome::QemuError(format!("QEMU exited with status {c}{}", said())),
        (None, Some(sig)) => Outcome::QemuError(format!("{KILLED_BY_SIGNAL}{sig}{}", said())),
        (None, None) => Outcome::QemuError(format!("QEMU ended without a status{}", said())),
    }
}

/// The start of [`classify`]'s text for a QEMU that a signal killed, not we.
const KILLED_BY_SIGNAL: &str = "QEMU was killed by signal ";

/// How QEMU itself died, if it did: a signal killed it (a crash of the emulator, or the host's
/// OOM killer), rather than the guest ending or our timeout stopping it. Nothing the guest does
/// should end QEMU so; the test harness runs such a boot once more.
pub fn emulator_death(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::QemuError(e) if e.starts_with(KILLED_BY_SIGNAL) => Some(e),
        _ => None,
    }
}

/// xtask's exit status for an outcome: 0 pass, 1 guest failure, reset or failed exec session,
/// 124 timeout, 2 when QEMU or the setup failed.
pub fn exit_status(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Passed => 0,
        Outcome::GuestFailed | Outcome::Reset | Outcome::Stopped => 1,
        Outcome::Timeout => EXIT_TIMEOUT,
        Outcome::QemuError(_) | Outcome::SetupFailed(_) => 2,
    }
}

/// What `run` tells the user about an outcome (`None`: nothing to say). `timeout` is the limit
/// the run had.
pub fn outcome_message(outcome: &Outcome, timeout: Option<Duration>) -> Option<String> {
    match outcome {
        Outcome::Passed => None,
        Outcome::GuestFailed | Outcome::Reset | Outcome::Stopped => Some(outcome.describe()),
        Outcome::Timeout => Some(format!(
            "timeout: killed QEMU after {} s",
            timeout.unwrap_or_default().as_secs()
        )),
        Outcome::QemuError(e) => Some(e.clone()),
        Outcome::SetupFailed(e) => Some(e.clone()),
    }
}

/// True when the transcript ends with QEMU's own note that the user quit it with Ctrl-A X.
pub fn user_quit(transcript: &str) -> bool {
    transcript.trim_end().ends_with("QEMU: Terminated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_outcomes() {
        assert_eq!(classify(Some(33), None, ""), Outcome::Passed);
        assert_eq!(classify(Some(35), None, "noise"), Outcome::GuestFailed);
        assert_eq!(classify(Some(0), None, ""), Outcome::Reset);
        let Outcome::QemuError(e) = classify(Some(1), None, "qemu: could not open disk\n") else {
            panic!()
        };
        assert_eq!(e, "QEMU exited with status 1: qemu: could not open disk");
        let Outcome::QemuError(e) = classify(Some(37), None, "") else {
            panic!()
        };
        assert!(e.contains("wrote 0x12 to the debug-exit port"), "{e}");
        let Outcome::QemuError(e) = classify(None, Some(11), "") else {
            panic!()
        };
        assert_eq!(e, "QEMU was killed by signal 11");
    }

    #[test]
    fn only_a_signal_means_the_emulator_died() {
        let died = classify(None, Some(11), "");
        assert_eq!(emulator_death(&died), Some("QEMU was killed by signal 11"));
        assert!(emulator_death(&classify(None, Some(9), "out of memory")).is_some());
        for code in [0, 1, 33, 35, 37] {
            assert_eq!(
                emulator_death(&classify(Some(code), None, "")),
                None,
                "{code}"
            );
        }
        assert_eq!(emulator_death(&classify(None, None, "")), None);
        assert_eq!(emulator_death(&Outcome::Timeout), None);
    }

    #[test]
    fn outcomes_map_to_xtask_exit_status() {
        // The blog_os runner bug: mapping the code but exiting 0 anyway. Ours must not.
        assert_eq!(exit_status(&classify(Some(33), None, "")), 0);
        assert_eq!(exit_status(&classify(Some(35), None, "")), 1);
        assert_eq!(exit_status(&classify(Some(0), None, "")), 1);
        assert_eq!(exit_status(&Outcome::Timeout), 124);
        assert_eq!(exit_status(&classify(Some(1), None, "")), 2);
        assert_eq!(exit_status(&Outcome::SetupFailed("x".into())), 2);
    }

    #[test]
    fn messages() {
        let t = Some(Duration::from_secs(15));
        assert_eq!(outcome_message(&Outcome::Passed, t), None);
        assert_eq!(
            outcome_message(&Outcome::GuestFailed, t).unwrap(),
            "guest reported failure"
        );
        assert_eq!(
            outcome_message(&Outcome::Reset, t).unwrap(),
            "guest reset or powered off without reporting a result (triple fault?)"
        );
        assert_eq!(
            outcome_message(&Outcome::Timeout, t).unwrap(),
            "timeout: killed QEMU after 15 s"
        );
        assert!(user_quit("hello\nQEMU: Terminated\n"));
        assert!(!user_quit("QEMU: Terminated\nmore"));
    }

    fn machine() -> Machine {
        Machine {
            image: "/t/a.img".into(),
            smp: 4,
            mem_mib: 256,
            boot: Boot::Bios,
            accel: Accel::Tcg,
            net: Net::None,
            nic: Nic::E1000,
            console: Console::Stdio,
            fwd: Vec::new(),
            qmp: None,
        }
    }

    #[test]
    fn bios_command_line_follows_the_contract() {
        assert_eq!(
            qemu_args(&machine()).join(" "),
            "-machine q35 -name axolotl,debug-threads=on -m 256 -smp 4 -serial stdio \
             -display none -monitor none -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -accel tcg -nic none \
             -drive format=raw,file=/t/a.img"
        );
    }

    #[test]
    fn uefi_kvm_user_net_terminal() {
        let m = Machine {
            boot: Boot::Uefi {
                ovmf: Ovmf::Pflash {
                    code: "/o/CODE.fd".into(),
                    vars: "/o/VARS.fd".into(),
                },
                vars: "/t/vars.fd".into(),
            },
            accel: Accel::Kvm,
            net: Net::User,
            console: Console::Terminal,
            ..machine()
        };
        let line = qemu_args(&m).join(" ");
        assert!(line.contains("-accel kvm -cpu qemu64"), "{line}");
        assert!(line.contains("-drive if=pflash,format=raw,unit=0,readonly=on,file=/o/CODE.fd"));
        assert!(
            line.contains("-drive if=pflash,format=raw,unit=1,file=/t/vars.fd"),
            "{line}"
        );
        assert!(line.contains("-nic user,model=e1000"));
        assert!(
            line.contains("-chardev stdio,id=console,mux=on,signal=off -serial chardev:console")
        );
        assert!(!line.contains("-serial stdio"));
        let m = Machine {
            boot: Boot::Uefi {
                ovmf: Ovmf::Combined("/o/OVMF.fd".into()),
                vars: "/x".into(),
            },
            ..machine()
        };
        assert!(qemu_args(&m).join(" ").contains("-bios /o/OVMF.fd"));
    }

    #[test]
    fn tap_attaches_the_same_card_model_to_the_namespace_tap() {
        for (nic, model) in [(Nic::E1000, "e1000"), (Nic::E1000e, "e1000e")] {
            let m = Machine {
                net: Net::Tap,
                nic,
                ..machine()
            };
            let line = qemu_args(&m).join(" ");
            assert!(
                line.contains(&format!(
                    "-netdev tap,id=n0,ifname={},script=no,downscript=no -device {model},netdev=n0",
                    crate::netns::TAP_DEVICE
                )),
                "{line}"
            );
            assert!(!line.contains("-nic"), "{line}");
            assert!(!line.contains("hostfwd"), "{line}");
            let user = qemu_args(&Machine {
                net: Net::User,
                ..m.clone()
            })
            .join(" ");
            assert!(user.contains(&format!("-nic user,model={model}")), "{user}");
        }
    }

    #[test]
    fn runner_reports_start_failure_exit_and_timeout() {
        let opts = |t: Option<u64>| RunOptions {
            timeout: t.map(Duration::from_secs),
            inherit_stdin: false,
            echo: Echo::Off,
            exec: None,
            screendump: None,
            host_samples: None,
        };
        let r = run(Path::new("/nonexistent/qemu"), &[], &opts(None));
        assert!(matches!(r.outcome, Outcome::QemuError(ref e) if e.contains("could not start")));
        assert_eq!(r.qemu_pid, None);

        // Stand-ins for QEMU: a shell that prints and exits like a guest verdict.
        let sh = Path::new("/bin/sh");
        let args = |script: &str| vec!["-c".to_string(), script.to_string()];
        let r = run(
            sh,
            &args("printf 'boot: 1 cpus online\\r\\n'; exit 33"),
            &opts(Some(10)),
        );
        assert_eq!(r.outcome, Outcome::Passed);
        assert_eq!(r.transcript, "boot: 1 cpus online\n");
        let r = run(sh, &args("echo oops >&2; exit 1"), &opts(Some(10)));
        assert_eq!(
            r.outcome,
            Outcome::QemuError("QEMU exited with status 1: oops".into())
        );

        // A hang, with a grandchild in the same group: both must be gone after the timeout.
        let r = run(
            sh,
            &args("sleep 100 & echo started; sleep 100"),
            &opts(Some(1)),
        );
        assert_eq!(r.outcome, Outcome::Timeout);
        assert!(r.elapsed >= Duration::from_secs(1) && r.elapsed < Duration::from_secs(10));
        assert_eq!(r.transcript, "started\n");
        let pid = r.qemu_pid.unwrap();
        assert_eq!(
            axolotl_tests::host::wait_gone(pid, Duration::from_secs(2)),
            vec![]
        );
    }

    #[test]
    fn runner_drives_an_exec_session() {
        // A stand-in for QEMU and the guest shell: prompts, reads a line ended by CR, echoes it,
        // answers, and exits like a guest that powered off (33), or waits forever.
        let Some(bash) = crate::host::find_in_path("bash") else {
            return; // bash is on every development machine and in CI; nothing to drive without
        };
        let shell = |after_poweroff: &str| {
            vec![
                "-c".to_string(),
                format!(
                    "printf 'boot\r\naxolotl> '; \
                     while IFS= read -r -d $'\r' line; do \
                       printf '%s\r\n' \"$line\"; \
                       case \"$line\" in \
                         poweroff) {after_poweroff} ;; \
                         fail) printf 'fail: no\r\n[exit 1]\r\n' ;; \
                         *) printf 'did %s\r\n' \"$line\" ;; \
                       esac; \
                       printf 'axolotl> '; \
                     done"
                ),
            ]
        };
        let opts = |commands: &[&str]| RunOptions {
            timeout: Some(Duration::from_secs(20)),
            inherit_stdin: false,
            echo: Echo::Off,
            exec: Some(exec::Plan {
                commands: commands.iter().map(|c| c.to_string()).collect(),
                step_timeout: Duration::from_secs(10),
            }),
            screendump: None,
            host_samples: None,
        };
        let samples = crate::hostcpu::Samples::default();
        let mut sampled = opts(&["one", "two"]);
        sampled.host_samples = Some(samples.clone());
        let r = run(&bash, &shell("exit 33"), &sampled);
        assert_eq!(r.outcome, Outcome::Passed);
        // The stand-in's own thread was read before each command (it has no emulated CPUs).
        for i in [0, 1] {
            let s = samples.at(i).expect("a snapshot before each command");
            assert_eq!(s.threads.len(), 1, "{s:?}");
        }
        assert_eq!(samples.at(2), None, "none before poweroff");
        assert_eq!(r.exec_verdict(), Ok(()));
        let report = r.exec.unwrap();
        assert_eq!(report.output_of("two"), Some("did two\n"));
        assert_eq!(report.commands.len(), 3, "one, two and poweroff");

        let r = run(&bash, &shell("exit 33"), &opts(&["fail", "never"]));
        assert_eq!(
            r.outcome,
            Outcome::Stopped,
            "QEMU is killed after a failure"
        );
        assert!(r.elapsed < Duration::from_secs(10));
        assert_eq!(
            r.exec_verdict().unwrap_err(),
            "exec: command 'fail' failed ([exit 1])"
        );
        assert!(r.exec.unwrap().output_of("never").is_none());

        // A guest that does not power off: the session's limit ends it.
        let mut o = opts(&[]);
        if let Some(plan) = o.exec.as_mut() {
            plan.step_timeout = Duration::from_secs(1);
        }
        let r = run(&bash, &shell("sleep 100"), &o);
        assert_eq!(r.outcome, Outcome::Stopped);
        assert!(
            r.exec_verdict()
                .unwrap_err()
                .contains("did not power off within 1 s")
        );
        let pid = r.qemu_pid.unwrap();
        assert_eq!(
            axolotl_tests::host::wait_gone(pid, Duration::from_secs(2)),
            vec![]
        );
    }
}
