//! `--net tap`: the guest's network card on a TAP device inside a network namespace made for one
//! run and removed after it.
//!
//! The namespace is called `axolotl-PID-N` (PID: the xtask that made it, N: its count of them),
//! the TAP device in it [`TAP_DEVICE`], with the address 10.0.2.2/24: the gateway of the guest's
//! static configuration (10.0.2.15/24), so the guest works unchanged and answers and reaches only
//! what runs inside the namespace. QEMU runs in it through `ip netns exec NS qemu-system-x86_64
//! ... -netdev tap,ifname=TAP,script=no,downscript=no` and attaches to the device; nothing is
//! routed anywhere else.
//!
//! Removal is guaranteed on every path xtask can see: [`Namespace`] removes it when dropped
//! (normal end, an error, a QEMU timeout, a panic), and the first namespace made installs a
//! handler for SIGHUP, SIGINT and SIGTERM whose watcher thread removes every live namespace
//! before xtask dies of the signal. A SIGKILL cannot be caught: the next run that makes a
//! namespace finds namespaces whose xtask is gone ([`stale`]) and removes them, saying so.
//! Removing means: kill every process left inside (QEMU, an iperf3 server), delete the TAP
//! device, delete the namespace, and check that `ip netns list` no longer shows it.
//!
//! The `ip` command lines are built by plain functions ([`setup_commands`],
//! [`teardown_commands`], [`exec_args`]) that host tests check.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use axolotl_tests::tap::{HOST_CIDR, TAP_DEVICE};

use crate::Error;
use crate::host::find_in_path;

/// The iproute2 program that makes and removes namespaces and devices.
pub const IP: &str = "ip";

/// The `ip` argument lists that make namespace `ns` with its TAP device, in order: the
/// namespace, its loopback up, the TAP device (owned by root, left for QEMU to attach to), its
/// address, and the device up.
pub fn setup_commands(ns: &str) -> Vec<Vec<String>> {
    let lines: [&[&str]; 5] = [
        &["netns", "add", ns],
        &["-n", ns, "link", "set", "lo", "up"],
        &["-n", ns, "tuntap", "add", "dev", TAP_DEVICE, "mode", "tap"],
        &["-n", ns, "addr", "add", HOST_CIDR, "dev", TAP_DEVICE],
        &["-n", ns, "link", "set", TAP_DEVICE, "up"],
    ];
    lines.iter().map(|l| words(l)).collect()
}

/// The `ip` argument lists that remove namespace `ns`: the TAP device, then the namespace.
pub fn teardown_commands(ns: &str) -> Vec<Vec<String>> {
    let lines: [&[&str]; 2] = [
        &["-n", ns, "link", "del", TAP_DEVICE],
        &["netns", "del", ns],
    ];
    lines.iter().map(|l| words(l)).collect()
}

/// The arguments of `ip` that run `program args...` inside namespace `ns`.
pub fn exec_args(ns: &str, program: &Path, args: &[String]) -> Vec<String> {
    let mut a = words(&["netns", "exec", ns]);
    a.push(program.display().to_string());
    a.extend(args.iter().cloned());
    a
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// The namespaces listed by `ip netns list` (`NAME` or `NAME (id: N)` per line).
pub fn parse_list(text: &str) -> Vec<String> {
    axolotl_tests::tap::parse_netns_list(text)
}

/// The namespaces of `names` that xtask made and whose xtask is no longer alive (`alive(pid)`
/// says whether a process runs): left behind by a run that was killed outright.
pub fn stale(names: &[String], alive: impl Fn(u32) -> bool) -> Vec<(String, u32)> {
    names
        .iter()
        .filter_map(|n| Some((n.clone(), axolotl_tests::tap::owner_pid(n)?)))
        .filter(|(_, pid)| !alive(*pid))
        .collect()
}

/// Whether process `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .as_deref()
        .and_then(axolotl_tests::host::parse_stat)
        .is_some_and(|(_, state, _)| !matches!(state, 'Z' | 'X' | 'x'))
}

/// Checks that this host can make a TAP namespace: root, `ip`, `/dev/net/tun`. Returns the path
/// of `ip`. `what` names the option that needs it in the messages (`--net tap`).
pub fn check_host(what: &str) -> Result<PathBuf, Error> {
    check_host_as(what, crate::host::is_root())
}

/// [`check_host`] for a user who is root or not.
fn check_host_as(what: &str, root: bool) -> Result<PathBuf, Error> {
    if !root {
        return Err(Error::Failed(format!(
            "{what} needs root: xtask creates a network namespace and a TAP device inside it \
             (ip netns add, ip tuntap add), which only root may do. Run it as root (for example \
             sudo -E cargo xtask ...), or use --net user"
        )));
    }
    let ip = find_in_path(IP).ok_or_else(|| {
        Error::Failed(format!(
            "{what} needs the 'ip' command of iproute2, which is not in PATH: install it with \
             apt-get install iproute2"
        ))
    })?;
    if !Path::new("/dev/net/tun").exists() {
        return Err(Error::Failed(format!(
            "{what} needs /dev/net/tun (the tun driver), which this host does not have: load it \
             with modprobe tun"
        )));
    }
    Ok(ip)
}

/// Runs `ip ARGS`; its stdout, or why it failed (with its stderr).
fn run_ip(ip: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new(ip)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run {}: {e}", ip.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "'ip {}' failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces `ip netns list` shows.
pub fn list(ip: &Path) -> Result<Vec<String>, String> {
    run_ip(ip, &words(&["netns", "list"])).map(|t| parse_list(&t))
}

/// Removes the namespaces left by killed runs, saying so for each.
pub fn clean_stale(ip: &Path) -> Result<(), Error> {
    let names = list(ip).map_err(Error::Failed)?;
    for (name, pid) in stale(&names, process_alive) {
        eprintln!(
            "removing network namespace {name}: left behind by xtask pid {pid}, which is gone \
             (it was killed before it could remove it)"
        );
        remove(ip, &name).map_err(|e| {
            Error::Failed(format!(
                "cannot remove the stale network namespace {name}: {e}"
            ))
        })?;
    }
    Ok(())
}

/// The processes inside namespace `ns` (`ip netns pids`).
fn pids_in(ip: &Path, ns: &str) -> Vec<u32> {
    run_ip(ip, &words(&["netns", "pids", ns]))
        .map(|t| {
            t.split_ascii_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes namespace `ns`: kills what runs in it, deletes its TAP device and itself, and checks
/// that it is gone. `Err` says what is left and how to remove it by hand.
fn remove(ip: &Path, ns: &str) -> Result<(), String> {
    let pids = pids_in(ip, ns);
    for &pid in &pids {
        crate::sys::kill_process(pid);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every step is tried; a device that was never made (a setup that failed early) fails its
    // step harmlessly. What counts is that the namespace is gone at the end.
    let problems: Vec<String> = teardown_commands(ns)
        .iter()
        .filter_map(|args| run_ip(ip, args).err())
        .collect();
    match list(ip) {
        Ok(names) if !names.iter().any(|n| n == ns) => Ok(()),
        Ok(_) => Err(format!(
            "network namespace {ns} is still there ({}); remove it with: ip netns del {ns}",
            if problems.is_empty() {
                "no error reported".to_string()
            } else {
                problems.join("; ")
            }
        )),
        Err(e) => Err(format!(
            "cannot check that network namespace {ns} is gone: {e}"
        )),
    }
}

/// The namespaces of this process that exist now, with the `ip` that removes them: what the
/// signal watcher removes.
static LIVE: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
/// Namespaces made by this process so far (the N of `axolotl-PID-N`).
static MADE: AtomicU32 = AtomicU32::new(0);
/// Whether the signal handler and its watcher are installed.
static WATCHING: Mutex<bool> = Mutex::new(false);

/// Installs, once, the handler of the termination signals and the thread that removes the live
/// namespaces when one arrives, then lets the signal end xtask.
fn watch_signals() -> Result<(), Error> {
    let mut watching = WATCHING.lock().unwrap_or_else(|p| p.into_inner());
    if *watching {
        return Ok(());
    }
    crate::sys::catch_termination_signals().map_err(Error::Failed)?;
    std::thread::Builder::new()
        .name("netns-signals".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let Some(sig) = crate::sys::caught_termination_signal() else {
                    continue;
                };
                // Held until the end: a namespace being removed by its guard is finished first.
                let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
                for (ns, ip) in live.drain(..) {
                    eprintln!("\nsignal {sig}: removing network namespace {ns}");
                    if let Err(e) = remove(&ip, &ns) {
                        eprintln!("error: {e}");
                    }
                }
                if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    // A killed QEMU may have left the terminal in raw mode.
                    let _ = Command::new("stty").arg("sane").status();
                }
                crate::sys::die_of_signal(sig);
            }
        })
        .map_err(|e| Error::Failed(format!("cannot start the signal watcher: {e}")))?;
    *watching = true;
    Ok(())
}

/// A network namespace with a TAP device at 10.0.2.2/24, removed when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    ip: PathBuf,
}

impl Namespace {
    /// Checks the host, removes stale namespaces of killed runs, and makes a new namespace.
    /// `what` names the option that asked for it, for the messages.
    pub fn create(what: &str) -> Result<Self, Error> {
        let ip = check_host(what)?;
        clean_stale(&ip)?;
        watch_signals()?;
        let seq = MADE.fetch_add(1, Ordering::SeqCst);
        let name = axolotl_tests::tap::namespace_name(std::process::id(), seq);
        // Registered before the first command, so a signal during the setup removes it too.
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.clone(), ip.clone()));
        let ns = Self { name, ip };
        for args in setup_commands(&ns.name) {
            run_ip(&ns.ip, &args).map_err(|e| {
                Error::Failed(format!("cannot set up network namespace {}: {e}", ns.name))
            })?;
        }
        eprintln!(
            "network namespace {}: TAP device {TAP_DEVICE} with {HOST_CIDR} (the guest is \
             10.0.2.15); removed when this run ends",
            ns.name
        );
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip` and its arguments that run `program args...` inside the namespace.
    pub fn wrap(&self, program: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
        (self.ip.clone(), exec_args(&self.name, program, args))
    }

    /// A command that runs `program args...` inside the namespace.
    pub fn command(&self, program: &Path, args: &[String]) -> Command {
        let (ip, args) = self.wrap(program, args);
        let mut cmd = Command::new(ip);
        cmd.args(args);
        cmd
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The lock is held while removing, so the signal watcher waits for this to finish.
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = live.iter().position(|(n, _)| *n == self.name) else {
            return; // the signal watcher removed it
        };
        live.remove(at);
        match remove(&self.ip, &self.name) {
            Ok(()) => eprintln!("removed network namespace {}", self.name),
            Err(e) => eprintln!("error: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(cmds: &[Vec<String>]) -> Vec<String> {
        cmds.iter().map(|c| format!("ip {}", c.join(" "))).collect()
    }

    #[test]
    fn setup_makes_the_namespace_its_tap_and_the_gateway_address() {
        assert_eq!(
            lines(&setup_commands("axolotl-7-0")),
            [
                "ip netns add axolotl-7-0",
                "ip -n axolotl-7-0 link set lo up",
                "ip -n axolotl-7-0 tuntap add dev axolotl0 mode tap",
                "ip -n axolotl-7-0 addr add 10.0.2.2/24 dev axolotl0",
                "ip -n axolotl-7-0 link set axolotl0 up",
            ]
        );
        assert_eq!(
            lines(&teardown_commands("axolotl-7-0")),
            [
                "ip -n axolotl-7-0 link del axolotl0",
                "ip netns del axolotl-7-0"
            ]
        );
        // A TAP device name must fit IFNAMSIZ (15 bytes and the NUL).
        assert!(TAP_DEVICE.len() <= 15);
    }

    #[test]
    fn qemu_runs_inside_the_namespace() {
        let args = ["-smp".to_string(), "8".to_string()];
        assert_eq!(
            exec_args(
                "axolotl-7-0",
                Path::new("/usr/bin/qemu-system-x86_64"),
                &args
            )
            .join(" "),
            "netns exec axolotl-7-0 /usr/bin/qemu-system-x86_64 -smp 8"
        );
    }

    #[test]
    fn stale_namespaces_are_those_of_dead_xtasks() {
        let names = parse_list(
            "axolotl-100-0 (id: 3)\nother\naxolotl-200-1\naxolotl-x-1\naxolotl-300-2 (id: 0)\n",
        );
        assert_eq!(
            names,
            [
                "axolotl-100-0",
                "other",
                "axolotl-200-1",
                "axolotl-x-1",
                "axolotl-300-2"
            ]
        );
        let alive = |pid: u32| pid == 200;
        assert_eq!(
            stale(&names, alive),
            [
                ("axolotl-100-0".to_string(), 100),
                ("axolotl-300-2".to_string(), 300)
            ]
        );
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 7));
    }

    /// As root: dropping the guard kills what still runs inside and removes the namespace.
    #[test]
    fn the_guard_kills_what_runs_inside_and_removes_the_namespace() {
        let Ok(ip) = check_host("a test") else {
            eprintln!("skipped: needs root, ip and /dev/net/tun (CI has them)");
            return;
        };
        let ns = Namespace::create("a test").unwrap();
        let name = ns.name().to_string();
        assert!(list(&ip).unwrap().contains(&name));
        let link = run_ip(
            &ip,
            &words(&["-n", &name, "-s", "link", "show", "dev", TAP_DEVICE]),
        )
        .unwrap();
        assert!(link.contains(TAP_DEVICE) && link.contains("UP"), "{link}");
        let addr = run_ip(
            &ip,
            &words(&["-n", &name, "addr", "show", "dev", TAP_DEVICE]),
        )
        .unwrap();
        assert!(addr.contains(&format!("inet {HOST_CIDR}")), "{addr}");
        let mut sleeper = ns
            .command(Path::new("/bin/sleep"), &["100".to_string()])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids_in(&ip, &name).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(pids_in(&ip, &name), [sleeper.id()]);
        drop(ns);
        let status = sleeper.wait().unwrap();
        assert!(!status.success(), "killed, not finished: {status}");
        assert!(!list(&ip).unwrap().contains(&name), "{name} still listed");
    }

    #[test]
    fn without_root_the_error_says_what_is_needed() {
        let e = check_host_as("--net tap", false).unwrap_err().to_string();
        assert!(
            e.contains("--net tap needs root") && e.contains("--net user"),
            "{e}"
        );
    }
}
