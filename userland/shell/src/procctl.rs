//! `kill NAME`, `restart NAME`, `crash NAME`, `hang NAME`, `resume NAME` and `update NAME`: the
//! kernel's
//! `proc_ctl` by process name (needs the `control` grant). `crash` makes the kernel inject a
//! genuine CPU fault into the process (it jumps to an unmapped address and takes a page fault);
//! `hang` stops scheduling it, so it looks hung; `resume` undoes `hang`.
//!
//! `kill` waits until the process is dead (the kernel stops it asynchronously, at its next
//! return to user mode), so that `kill X; restart X` works; `restart` starts a fresh instance of
//! a dead process and prints its pid.

use alloc::format;
use core::fmt::Write;

use axolotl_abi::{Error, ProcInfo, ProcOp, ProcState};

use crate::commands::{Failure, Outcome, Sys};

/// How long `kill` waits for the process to die.
pub const KILL_WAIT_NS: u64 = 2_000_000_000;
/// Poll interval while waiting.
const POLL_NS: u64 = 10_000_000;
/// Most process slots scanned.
const MAX_SLOTS: u32 = 4096;

fn is_dead(state: u8) -> bool {
    matches!(
        ProcState::from_u8(state),
        Some(ProcState::Exited | ProcState::Faulted | ProcState::Killed)
    )
}

/// The newest process record called `name` (the highest pid: a restart gets a new one).
pub fn find(sys: &mut impl Sys, name: &str) -> Result<Option<ProcInfo>, Failure> {
    let mut best: Option<ProcInfo> = None;
    for slot in 0..MAX_SLOTS {
        match sys.proc_info(slot) {
            Ok(p) if p.pid != 0 && p.name() == name => {
                if best.is_none_or(|b| p.pid > b.pid) {
                    best = Some(p);
                }
            }
            Ok(_) => {}
            Err(Error::NotFound) => break,
            Err(e) => return Err(Failure::failed(format!("process slot {slot}: {e}"))),
        }
    }
    Ok(best)
}

fn one_name<'a>(args: &[&'a str], usage: &str) -> Result<&'a str, Failure> {
    match args {
        [name] => Ok(name),
        _ => Err(Failure::usage(format!("usage: {usage}"))),
    }
}

/// `kill NAME`.
pub fn kill(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    let name = one_name(args, "kill NAME")?;
    let pid = sys
        .lookup(name)
        .map_err(|e| Failure::failed(format!("no running process {name} ({e})")))?;
    sys.proc_ctl(pid, ProcOp::Kill)
        .map_err(|e| Failure::failed(format!("{name} (pid {pid}): {e}")))?;
    let deadline = sys.time_ns().saturating_add(KILL_WAIT_NS);
    loop {
        let p = find(sys, name)?;
        match p {
            Some(p) if p.pid == pid && !is_dead(p.state) => {}
            // Dead, or its slot already holds another instance (restarted meanwhile).
            _ => break,
        }
        let now = sys.time_ns();
        if now >= deadline {
            return Err(Failure::failed(format!(
                "{name} (pid {pid}) still not dead after 2 s"
            )));
        }
        sys.wait(POLL_NS.min(deadline - now));
    }
    writeln!(out, "killed {name} (pid {pid})")?;
    Ok(())
}

/// `crash NAME`: a real fault, injected by the kernel; waits until the process has faulted.
pub fn crash(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    let name = one_name(args, "crash NAME")?;
    let pid = sys
        .lookup(name)
        .map_err(|e| Failure::failed(format!("no running process {name} ({e})")))?;
    sys.proc_ctl(pid, ProcOp::InjectFault)
        .map_err(|e| Failure::failed(format!("{name} (pid {pid}): {e}")))?;
    let deadline = sys.time_ns().saturating_add(KILL_WAIT_NS);
    loop {
        match find(sys, name)? {
            Some(p) if p.pid == pid && !is_dead(p.state) => {}
            _ => break,
        }
        let now = sys.time_ns();
        if now >= deadline {
            return Err(Failure::failed(format!(
                "{name} (pid {pid}) has not faulted after 2 s"
            )));
        }
        sys.wait(POLL_NS.min(deadline - now));
    }
    writeln!(out, "crashed {name} (pid {pid})")?;
    Ok(())
}

/// `hang NAME` (`stop` = true) and `resume NAME`.
pub fn hang(sys: &mut impl Sys, out: &mut impl Write, args: &[&str], stop: bool) -> Outcome {
    let usage = if stop { "hang NAME" } else { "resume NAME" };
    let name = one_name(args, usage)?;
    let pid = sys
        .lookup(name)
        .map_err(|e| Failure::failed(format!("no running process {name} ({e})")))?;
    let op = if stop { ProcOp::Hang } else { ProcOp::Resume };
    sys.proc_ctl(pid, op)
        .map_err(|e| Failure::failed(format!("{name} (pid {pid}): {e}")))?;
    writeln!(
        out,
        "{} {name} (pid {pid})",
        if stop { "hung" } else { "resumed" }
    )?;
    Ok(())
}

/// `restart NAME`.
pub fn restart(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    let name = one_name(args, "restart NAME")?;
    let p = find(sys, name)?.ok_or_else(|| Failure::failed(format!("no process {name}")))?;
    if !is_dead(p.state) {
        return Err(Failure::failed(format!(
            "{name} (pid {}) is running; kill it first",
            p.pid
        )));
    }
    let new = sys
        .proc_ctl(p.pid, ProcOp::Restart)
        .map_err(|e| Failure::failed(format!("{name} (pid {}): {e}", p.pid)))?;
    writeln!(out, "restarted {name}: pid {new}")?;
    Ok(())
}

/// How long `update` waits for the process to reach a quiet point and exit.
pub const UPDATE_WAIT_NS: u64 = 2_000_000_000;

/// `update NAME`: live update. The kernel asks NAME to exit at its next quiet point (with
/// `EXIT_UPDATE`, its state kept in its regions); once it has, a fresh instance of the binary
/// in the ramdisk takes over the same slot, CPU, regions and state, and the peers recover as
/// after any restart. A process that does not take part (it never reads the request) is left
/// running after 2 s, with a message.
pub fn update(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    let name = one_name(args, "update NAME")?;
    let pid = sys
        .lookup(name)
        .map_err(|e| Failure::failed(format!("no running process {name} ({e})")))?;
    let start = sys.time_ns();
    sys.proc_ctl(pid, ProcOp::RequestUpdate)
        .map_err(|e| Failure::failed(format!("{name} (pid {pid}): {e}")))?;
    let deadline = start.saturating_add(UPDATE_WAIT_NS);
    let p = loop {
        match find(sys, name)? {
            Some(p) if p.pid == pid && is_dead(p.state) => break p,
            Some(p) if p.pid != pid => {
                return Err(Failure::failed(format!(
                    "{name} was restarted by someone else meanwhile (now pid {})",
                    p.pid
                )));
            }
            _ => {}
        }
        let now = sys.time_ns();
        if now >= deadline {
            return Err(Failure::failed(format!(
                "{name} (pid {pid}) did not reach a quiet point within 2 s (does it take part in \
                 live update?); it keeps running"
            )));
        }
        sys.wait(POLL_NS.min(deadline - now));
    };
    if ProcState::from_u8(p.state) != Some(ProcState::Exited)
        || p.exit_code != i64::from(axolotl_abi::EXIT_UPDATE)
    {
        return Err(Failure::failed(format!(
            "{name} (pid {pid}) ended otherwise (state {}, code {}); 'restart {name}' starts it",
            p.state, p.exit_code
        )));
    }
    let new = sys
        .proc_ctl(pid, ProcOp::Restart)
        .map_err(|e| Failure::failed(format!("{name} (pid {pid}): restart: {e}")))?;
    let ms = (sys.time_ns().saturating_sub(start)) / 1_000_000;
    writeln!(out, "updated {name}: pid {pid} -> {new} in {ms} ms")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::run_command;
    use crate::commands::tests::Fake;
    use alloc::string::String;

    fn run(k: &mut Fake, line: &str) -> (i32, String) {
        let mut out = String::new();
        let status = run_command(k, &mut out, line);
        (status, out)
    }

    #[test]
    fn kill_then_restart() {
        let mut k = Fake::new();
        k.add_proc(4, "e1000", ProcState::Blocked);
        k.dies_after_polls = 3;
        let (status, out) = run(&mut k, "kill e1000");
        assert_eq!((status, out.as_str()), (0, "killed e1000 (pid 4)\n"));
        assert_eq!(k.ctl, [(4, ProcOp::Kill)]);
        assert!(k.waits.len() >= 3, "waited for the death");
        let (status, out) = run(&mut k, "restart e1000");
        assert_eq!((status, out.as_str()), (0, "restarted e1000: pid 100\n"));
        assert_eq!(k.ctl[1], (4, ProcOp::Restart));
        // The new instance runs: restarting it again is refused.
        assert_eq!(
            run(&mut k, "restart e1000"),
            (
                1,
                "restart: e1000 (pid 100) is running; kill it first\n[exit 1]\n".into()
            )
        );
    }

    #[test]
    fn update_waits_for_the_quiet_exit_then_restarts() {
        let mut k = Fake::new();
        k.add_proc(5, "ip", ProcState::Blocked);
        k.dies_after_polls = 3;
        let (status, out) = run(&mut k, "update ip");
        assert_eq!(status, 0, "{out}");
        assert!(out.starts_with("updated ip: pid 5 -> 100 in "), "{out}");
        assert_eq!(k.ctl, [(5, ProcOp::RequestUpdate), (5, ProcOp::Restart)]);
        // A process that never exits for the update is left running, with a message.
        let mut k = Fake::new();
        k.add_proc(6, "tcp", ProcState::Blocked);
        k.dies_after_polls = u32::MAX;
        let (status, out) = run(&mut k, "update tcp");
        assert_eq!(status, 1);
        assert!(
            out.contains("did not reach a quiet point within 2 s"),
            "{out}"
        );
        assert_eq!(k.ctl, [(6, ProcOp::RequestUpdate)]);
        assert_eq!(run(&mut k, "update").0, 2);
    }

    #[test]
    fn kill_and_restart_report_failures() {
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "kill nobody"),
            (
                1,
                "kill: no running process nobody (not found)\n[exit 1]\n".into()
            )
        );
        assert_eq!(
            run(&mut k, "restart nobody"),
            (1, "restart: no process nobody\n[exit 1]\n".into())
        );
        assert_eq!(
            run(&mut k, "kill"),
            (2, "kill: usage: kill NAME\n[exit 2]\n".into())
        );
        assert_eq!(run(&mut k, "restart a b").0, 2);
        k.add_proc(4, "e1000", ProcState::Blocked);
        k.ctl_error = Some(Error::Denied);
        assert_eq!(
            run(&mut k, "kill e1000"),
            (
                1,
                "kill: e1000 (pid 4): not granted by the manifest\n[exit 1]\n".into()
            )
        );
        // A process that never dies.
        k.ctl_error = None;
        k.dies_after_polls = u32::MAX;
        let (status, out) = run(&mut k, "kill e1000");
        assert_eq!(
            (status, out.as_str()),
            (
                1,
                "kill: e1000 (pid 4) still not dead after 2 s\n[exit 1]\n"
            )
        );
        // Restart picks the newest record of the name and refuses a live one.
        assert_eq!(run(&mut k, "restart e1000").0, 1);
    }
}
