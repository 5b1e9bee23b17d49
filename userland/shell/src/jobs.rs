//! Programs started on demand. A manifest process declared with `start = "on-demand"` is not
//! started at boot; the command `NAME [ARGS]` starts it (the kernel's `proc_start`, which needs
//! the `control` grant) with ARGS, the rest of the command, for its argument string (with no
//! ARGS, the manifest's `args`), then waits until it ends. `NAME [ARGS] &` starts it and returns
//! at once; `jobs` lists the on-demand programs, running or not.
//!
//! A program that ends by exiting with 0 gives status 0 and prints nothing. Any other end is a
//! failure, reported like a built-in's (`NAME: REASON`, then `[exit N]`): exiting with code N
//! gives status N; a crash or a kill gives 1. While the shell waits, Ctrl-C kills the program
//! (status 130). The program's own output goes to the kernel log (`[cpuN] NAME: ...`), which the
//! console shows as it comes, or, when the manifest grants it `console`, to the console itself.
//! Console input stays the shell's: while it waits it reads what is typed, for Ctrl-C, and keeps
//! the rest for its next line.
//!
//! The shell runs one command at a time, so `&` is refused on its built-in commands.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use axolotl_abi::{Error, ProcInfo, ProcOp, ProcState};

use crate::commands::{Failure, Outcome, Sys};
use crate::table::{self, Align};

/// How often a foreground program is looked at.
pub const POLL_NS: u64 = 10_000_000;
/// How long Ctrl-C waits for the killed program to be gone.
pub const KILL_WAIT_NS: u64 = 2_000_000_000;
/// Status of a command interrupted with Ctrl-C.
pub const STATUS_INTERRUPTED: i32 = 130;
/// Most process slots scanned.
const MAX_SLOTS: u32 = 4096;

/// A process of the manifest, started or not.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// Its slot in the kernel's process table.
    pub slot: u32,
    /// The slot's record: its current or last instance (pid 0 when it never ran).
    pub info: ProcInfo,
    /// Declared `start = "on-demand"`.
    pub on_demand: bool,
}

/// The manifest process called `name`, if there is one.
pub fn find_program(sys: &mut impl Sys, name: &str) -> Result<Option<Program>, Failure> {
    for slot in 0..MAX_SLOTS {
        match sys.proc_info(slot) {
            Ok(info) if info.name() == name => {
                let policy = sys
                    .proc_policy(slot)
                    .map_err(|e| Failure::failed(format!("manifest entry of {name}: {e}")))?;
                return Ok(Some(Program {
                    slot,
                    info,
                    on_demand: policy.start == 0,
                }));
            }
            Ok(_) => {}
            Err(Error::NotFound) => break,
            Err(e) => return Err(Failure::failed(format!("process slot {slot}: {e}"))),
        }
    }
    Ok(None)
}

/// True for a state in which the process is not alive.
fn is_down(state: u8) -> bool {
    ProcState::from_u8(state).is_some_and(ProcState::is_down)
}

/// Starts `program` (called `name`) with `args`, and unless `background` waits for its end.
pub fn start(
    sys: &mut impl Sys,
    out: &mut impl Write,
    program: &Program,
    name: &str,
    args: &str,
    background: bool,
) -> Outcome {
    let pid = sys.proc_start(name, args).map_err(|e| match e {
        Error::Busy => {
            let pid = sys
                .proc_info(program.slot)
                .map_or(program.info.pid, |i| i.pid);
            Failure::failed(format!(
                "already running (pid {pid}); wait for it to end, or kill it"
            ))
        }
        Error::Denied => {
            Failure::failed("not granted by the manifest: starting a program needs 'control'")
        }
        Error::Invalid if args.len() > axolotl_abi::ARGS_MAX => Failure::usage(format!(
            "arguments too long: {} bytes, at most {}",
            args.len(),
            axolotl_abi::ARGS_MAX
        )),
        e => Failure::failed(format!("cannot start it: {e}")),
    })?;
    if background {
        writeln!(out, "started {name} (pid {pid}) in the background")?;
        return Ok(());
    }
    wait(sys, out, program.slot, pid)
}

/// What a CPU exception vector is.
fn exception(vector: i64) -> &'static str {
    match vector {
        0 => "divide error",
        6 => "invalid opcode",
        13 => "general protection fault",
        14 => "page fault",
        _ => "CPU exception",
    }
}

/// How the run recorded in `info` ended, if it has.
pub fn ended(info: &ProcInfo) -> Option<Outcome> {
    let pid = info.pid;
    let code = info.exit_code;
    Some(match ProcState::from_u8(info.state)? {
        ProcState::Exited if code == 0 => Ok(()),
        ProcState::Exited => Err(Failure {
            status: i32::try_from(code).unwrap_or(crate::commands::STATUS_FAILED),
            reason: format!("pid {pid} exited with code {code}"),
        }),
        ProcState::Faulted => Err(Failure::failed(format!(
            "pid {pid} crashed: {} (vector {code})",
            exception(code)
        ))),
        ProcState::Killed => Err(Failure::failed(format!("pid {pid} was killed"))),
        ProcState::NotStarted => Err(Failure::failed("it never started")),
        ProcState::OtherLayout => Err(Failure::failed(
            "it belongs to the other network-stack layout than this boot's",
        )),
        ProcState::Running | ProcState::Ready | ProcState::Blocked | ProcState::Stopped => {
            return None;
        }
    })
}

/// Waits until `pid`, the instance in `slot`, ends; Ctrl-C kills it.
fn wait(sys: &mut impl Sys, out: &mut impl Write, slot: u32, pid: u32) -> Outcome {
    loop {
        let info = sys
            .proc_info(slot)
            .map_err(|e| Failure::failed(format!("process slot {slot}: {e}")))?;
        if info.pid != pid {
            return Err(Failure::failed(format!(
                "pid {pid} ended unseen: pid {} runs in its place",
                info.pid
            )));
        }
        if let Some(outcome) = ended(&info) {
            return outcome;
        }
        if sys.interrupted() {
            writeln!(out, "^C")?;
            return interrupt(sys, slot, pid);
        }
        sys.wait(POLL_NS);
    }
}

/// Ctrl-C: kills `pid` and waits until it is gone.
fn interrupt(sys: &mut impl Sys, slot: u32, pid: u32) -> Outcome {
    let interrupted = |reason: String| {
        Err(Failure {
            status: STATUS_INTERRUPTED,
            reason,
        })
    };
    if let Err(e) = sys.proc_ctl(pid, ProcOp::Kill) {
        return interrupted(format!("interrupted; could not kill pid {pid}: {e}"));
    }
    let deadline = sys.time_ns().saturating_add(KILL_WAIT_NS);
    loop {
        match sys.proc_info(slot) {
            Ok(i) if i.pid == pid && !is_down(i.state) => {}
            _ => return interrupted(format!("interrupted; pid {pid} killed")),
        }
        let now = sys.time_ns();
        if now >= deadline {
            return interrupted(format!("interrupted; pid {pid} still not dead after 2 s"));
        }
        sys.wait(POLL_NS.min(deadline - now));
    }
}

/// Header of `jobs`.
pub const JOBS_HEADER: [&str; 5] = ["PID", "NAME", "STATE", "EXIT", "RESTARTS"];

/// `jobs`: every on-demand program, with the state of its current or last run and, when that
/// run exited, its exit code.
pub fn jobs(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for slot in 0..MAX_SLOTS {
        let info = match sys.proc_info(slot) {
            Ok(info) => info,
            Err(Error::NotFound) => break,
            Err(e) => return Err(Failure::failed(format!("process slot {slot}: {e}"))),
        };
        if info.name().is_empty() {
            continue;
        }
        match sys.proc_policy(slot) {
            Ok(policy) if policy.start == 0 => {}
            Ok(_) => continue,
            Err(e) => return Err(Failure::failed(format!("process slot {slot}: {e}"))),
        }
        let exited = ProcState::from_u8(info.state) == Some(ProcState::Exited);
        rows.push([
            pid_cell(&info),
            info.name().to_string(),
            table::state_cell(info.state),
            if exited {
                info.exit_code.to_string()
            } else {
                "-".to_string()
            },
            info.restarts.to_string(),
        ]);
    }
    if rows.is_empty() {
        writeln!(out, "no on-demand programs in the manifest")?;
        return Ok(());
    }
    use Align::{Left, Right};
    table::write_table(out, JOBS_HEADER, [Right, Left, Left, Right, Right], &rows)?;
    Ok(())
}

/// The `PID` cell: the pid, or `-` for a slot that never ran.
pub fn pid_cell(info: &ProcInfo) -> String {
    if info.pid == 0 {
        "-".to_string()
    } else {
        info.pid.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{Fake, run};

    /// A fake with an on-demand program `demo` (slot 1) and the boot process `e1000` (slot 2).
    fn with_demo() -> Fake {
        let mut k = Fake::new();
        k.add_program("demo");
        k.add_proc(4, "e1000", ProcState::Blocked);
        k
    }

    #[test]
    fn foreground_waits_for_a_clean_exit() {
        let mut k = with_demo();
        k.run_polls = 3;
        let (status, out) = run(&mut k, "demo say  hello");
        assert_eq!((status, out.as_str()), (0, ""));
        assert_eq!(k.started, [("demo".to_string(), "say  hello".to_string())]);
        assert!(k.waits.len() >= 3, "waited for the end: {:?}", k.waits);
        assert!(k.waits.iter().all(|&w| w == POLL_NS));
        // No arguments: the kernel uses the manifest's.
        assert_eq!(run(&mut k, "demo").0, 0);
        assert_eq!(k.started[1], ("demo".to_string(), String::new()));
    }

    #[test]
    fn foreground_reports_how_a_run_ended() {
        let mut k = with_demo();
        k.run_end = (ProcState::Exited, 3);
        assert_eq!(
            run(&mut k, "demo exit 3"),
            (3, "demo: pid 200 exited with code 3\n[exit 3]\n".into())
        );
        k.run_end = (ProcState::Faulted, 14);
        assert_eq!(
            run(&mut k, "demo"),
            (
                1,
                "demo: pid 201 crashed: page fault (vector 14)\n[exit 1]\n".into()
            )
        );
        k.run_end = (ProcState::Killed, -9);
        assert_eq!(
            run(&mut k, "demo"),
            (1, "demo: pid 202 was killed\n[exit 1]\n".into())
        );
        k.run_end = (ProcState::Exited, -1);
        assert_eq!(run(&mut k, "demo").0, -1);
    }

    #[test]
    fn background_returns_at_once_and_a_second_start_is_busy() {
        let mut k = with_demo();
        // It ends during the `sleep 1` below (which waits twice).
        k.run_polls = 2;
        assert_eq!(
            run(&mut k, "demo sleep 3 &"),
            (0, "started demo (pid 200) in the background\n".into())
        );
        assert!(k.waits.is_empty(), "did not wait");
        assert_eq!(k.started[0].1, "sleep 3");
        assert_eq!(
            run(&mut k, "demo again"),
            (
                1,
                "demo: already running (pid 200); wait for it to end, or kill it\n[exit 1]\n"
                    .into()
            )
        );
        // `;` and `&` combine; once it ended, it starts again.
        let (status, out) = run(&mut k, "sleep 1; ps; demo again &");
        assert_eq!(status, 0, "{out}");
        assert!(out.contains("exited"), "{out}");
        assert!(out.ends_with("started demo (pid 201) in the background\n"));
    }

    #[test]
    fn ctrl_c_kills_the_foreground_program() {
        let mut k = with_demo();
        k.run_polls = u32::MAX;
        k.interrupt_after = Some(2);
        k.dies_after_polls = 1;
        assert_eq!(
            run(&mut k, "demo"),
            (
                130,
                "^C\ndemo: interrupted; pid 200 killed\n[exit 130]\n".into()
            )
        );
        assert_eq!(k.ctl, [(200, ProcOp::Kill)]);
    }

    #[test]
    fn refusals() {
        let mut k = with_demo();
        assert_eq!(
            run(&mut k, "sleep 1 &"),
            (
                2,
                "sleep: built-in commands run in the foreground only; '&' is for on-demand \
                 programs (the shell runs one command at a time)\n[exit 2]\n"
                    .into()
            )
        );
        assert!(k.waits.is_empty(), "the built-in did not run");
        assert_eq!(
            run(&mut k, "e1000"),
            (
                127,
                "unknown command: e1000 (a process started at boot, not on demand; try help)\n\
                 [exit 127]\n"
                    .into()
            )
        );
        assert_eq!(
            run(&mut k, "nothing &"),
            (
                127,
                "unknown command: nothing (try help)\n[exit 127]\n".into()
            )
        );
        for line in ["&", "demo && ps", " ; &"] {
            let (status, out) = run(&mut k, line);
            assert!(
                out.contains("shell: '&' must follow a command\n[exit 2]\n"),
                "{line}: {out}"
            );
            assert_eq!(status, if line.ends_with("ps") { 0 } else { 2 }, "{line}");
        }
        k.start_error = Some(Error::Denied);
        assert_eq!(
            run(&mut k, "demo"),
            (
                1,
                "demo: not granted by the manifest: starting a program needs 'control'\n\
                 [exit 1]\n"
                    .into()
            )
        );
    }

    #[test]
    fn jobs_lists_the_on_demand_programs() {
        let mut k = with_demo();
        k.add_program("idle");
        assert_eq!(
            run(&mut k, "jobs"),
            (
                0,
                "PID  NAME  STATE      EXIT  RESTARTS\n\
                 \x20 -  demo  unstarted     -         0\n\
                 \x20 -  idle  unstarted     -         0\n"
                    .into()
            )
        );
        k.run_end = (ProcState::Exited, 7);
        assert_eq!(run(&mut k, "demo").0, 7);
        let out = run(&mut k, "jobs").1;
        assert!(
            out.contains("200  demo  exited        7         0\n"),
            "{out}"
        );
        let mut none = Fake::new();
        assert_eq!(
            run(&mut none, "jobs"),
            (0, "no on-demand programs in the manifest\n".into())
        );
        assert_eq!(run(&mut none, "jobs x").0, 2);
    }
}
