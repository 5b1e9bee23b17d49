//! The commands, over a [`Sys`] trait so the host tests can run them against a fake kernel.
//!
//! Every command returns `Ok(())` or a [`Failure`]; [`run`] prints a failure as
//! `CMD: REASON` and `[exit N]`. Statuses: 1 the command failed, 2 it was used wrongly, 127 no
//! such command; a program started on demand ([`crate::jobs`]) gives its own exit code.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use axolotl_abi::{CpuCalls, CpuInfo, Error, PciInfo, ProcInfo, ProcOp, ProcState, RestartPolicy};
use ipcbench::{DEFAULT_ROUND_TRIPS, PING, Report, Request};
use libsys::Message;

use crate::parse::{self, Command};
use crate::table;
use crate::{jobs, net, pfctl, ping, procctl};

/// What the commands need from the kernel.
pub trait Sys {
    /// `PROC_INFO` of slot `slot`.
    fn proc_info(&mut self, slot: u32) -> Result<ProcInfo, Error>;
    /// `CPU_INFO` of CPU `cpu`.
    fn cpu_info(&mut self, cpu: u32) -> Result<CpuInfo, Error>;
    /// `CPU_CALLS`: CPU `cpu`'s system calls by number.
    fn cpu_calls(&mut self, cpu: u32) -> Result<CpuCalls, Error>;
    /// `LOOKUP` of a process name.
    fn lookup(&mut self, name: &str) -> Result<u32, Error>;
    /// `IPC_CALL`: sends `msg` to `pid`, stores its answer in `reply`.
    fn ipc_call(&mut self, pid: u32, msg: &Message, reply: &mut Message) -> Result<(), Error>;
    /// `TIME`: nanoseconds since boot.
    fn time_ns(&mut self) -> u64;
    /// `WAIT` with a timeout; may return early (a notification, console input).
    fn wait(&mut self, timeout_ns: u64);
    /// `POWEROFF`; returns only when it failed.
    fn poweroff(&mut self, code: i32) -> Error;
    /// `IPC_SEND`: blocks until `pid` takes `msg`.
    fn ipc_send(&mut self, pid: u32, msg: &Message) -> Result<(), Error>;
    /// `IPC_RECV` for at most `timeout_ns`; returns the sender's pid.
    fn ipc_recv(&mut self, msg: &mut Message, timeout_ns: u64) -> Result<u32, Error>;
    /// `PCI_INFO` of PCI function `index`.
    fn pci_info(&mut self, index: u32) -> Result<PciInfo, Error>;
    /// `PROC_CTL` of `pid`; returns the call's value (the new pid for [`ProcOp::Restart`]).
    fn proc_ctl(&mut self, pid: u32, op: ProcOp) -> Result<u64, Error>;
    /// `IPC_CALL_TIMEOUT`: [`Sys::ipc_call`] that gives up with [`Error::TimedOut`] after
    /// `timeout_ns`.
    fn ipc_call_timeout(
        &mut self,
        pid: u32,
        msg: &Message,
        reply: &mut Message,
        timeout_ns: u64,
    ) -> Result<(), Error>;
    /// `PROC_POLICY` of slot `slot`: the manifest's restart policy and whether the process starts
    /// at boot.
    fn proc_policy(&mut self, slot: u32) -> Result<RestartPolicy, Error>;
    /// `PROC_START`: a fresh instance of the manifest process `name` with `args` (empty: the
    /// manifest's); returns its pid.
    fn proc_start(&mut self, name: &str, args: &str) -> Result<u32, Error>;
    /// True when Ctrl-C was typed since the last call (checked while a program runs in the
    /// foreground). Other bytes typed meanwhile are kept for the next line.
    fn interrupted(&mut self) -> bool;
}

/// Status of a command that failed.
pub const STATUS_FAILED: i32 = 1;
/// Status of a command used wrongly.
pub const STATUS_USAGE: i32 = 2;
/// Status of an unknown command.
pub const STATUS_UNKNOWN: i32 = 127;

/// Most process slots `ps` reads, in case a kernel never says `NotFound`.
const MAX_SLOTS: u32 = 4096;
/// Most CPUs `stat` reads.
const MAX_CPUS: u32 = 1024;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status, not 0.
    pub status: i32,
    /// One line saying why.
    pub reason: String,
}

impl Failure {
    /// A failure of the command itself (status 1).
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            status: STATUS_FAILED,
            reason: reason.into(),
        }
    }

    /// A wrong use (status 2).
    pub fn usage(reason: impl Into<String>) -> Self {
        Self {
            status: STATUS_USAGE,
            reason: reason.into(),
        }
    }
}

impl From<fmt::Error> for Failure {
    fn from(_: fmt::Error) -> Self {
        Self::failed("could not write the output")
    }
}

/// The outcome of one command.
pub type Outcome = Result<(), Failure>;

/// The commands `help` lists: usage and what it does.
pub const COMMANDS: &[(&str, &str)] = &[
    ("help", "list the commands"),
    (
        "ps",
        "list processes: PID NAME CORE (* = has the CPU to itself) STATE RESTARTS",
    ),
    (
        "stat [calls]",
        "per-CPU counters: owner, system calls, interrupts, IPIs, ticks, switches; with \
         'calls', each CPU's system calls by name",
    ),
    (
        "ipcbench [N]",
        "time N (default 100000) kernel-IPC round trips of bench-a with bench-b",
    ),
    (
        "chanbench [N]",
        "channels vs kernel IPC between bench-a and bench-b: N (default 200000) messages",
    ),
    (
        "ifconfig",
        "nic0: model, MAC, link and counters (e1000 driver); address and counters (ip server)",
    ),
    (
        "netstat",
        "the tcp and udp servers' sockets: listening ports, connections, bound ports",
    ),
    (
        "ping [-c N] [-W S] ADDR",
        "send N (default 4) ICMP echo requests to ADDR through the ip server, 1 s apart",
    ),
    (
        "lspci",
        "list PCI functions: address, ids, class, device name",
    ),
    ("kill NAME", "kill process NAME and wait until it is dead"),
    (
        "restart NAME",
        "start a fresh instance of the dead process NAME",
    ),
    (
        "crash NAME",
        "make the kernel inject a real CPU fault into NAME",
    ),
    ("hang NAME", "stop scheduling NAME, so that it looks hung"),
    ("resume NAME", "let a hung NAME run again"),
    (
        "update NAME",
        "live update: NAME exits at a quiet point and a fresh instance takes over its state",
    ),
    (
        "NAME [ARGS] [&]",
        "start the on-demand program NAME with ARGS (none: its manifest args) and wait for its end; \
         with '&' in the background; Ctrl-C kills it",
    ),
    (
        "jobs",
        "the on-demand programs: PID NAME STATE EXIT (the last run's exit code) RESTARTS",
    ),
    (
        "pf list|add [N] RULE|del N",
        "packet filter: rules and counters; add a rule (as number N); delete rule N",
    ),
    ("sleep S", "wait S seconds (decimals allowed: sleep 0.5)"),
    ("echo WORDS...", "print the words"),
    ("poweroff", "turn the machine off"),
];

/// Runs every command of `line` in order (separated by `;`, or by `&`, which puts the command
/// before it in the background); returns the status of the last one (0 for an empty line).
pub fn run_line(sys: &mut impl Sys, out: &mut impl Write, line: &str) -> i32 {
    let mut status = 0;
    for command in parse::commands(line) {
        status = run(sys, out, command);
    }
    status
}

/// Runs one command in the foreground; see [`run`].
pub fn run_command(sys: &mut impl Sys, out: &mut impl Write, command: &str) -> i32 {
    run(
        sys,
        out,
        Command {
            text: command,
            background: false,
        },
    )
}

/// True for the name of a built-in command.
pub fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        "help"
            | "ps"
            | "stat"
            | "ipcbench"
            | "ifconfig"
            | "netstat"
            | "lspci"
            | "kill"
            | "restart"
            | "crash"
            | "update"
            | "hang"
            | "resume"
            | "jobs"
            | "chanbench"
            | "pf"
            | "ping"
            | "sleep"
            | "echo"
            | "poweroff"
    )
}

/// Runs one command — a built-in, or an on-demand program of the manifest ([`jobs`]) — and
/// prints how it failed, if it did; returns its status.
pub fn run(sys: &mut impl Sys, out: &mut impl Write, command: Command<'_>) -> i32 {
    let words: Vec<&str> = parse::words(command.text).collect();
    let Some((&name, args)) = words.split_first() else {
        if command.background {
            let _ = writeln!(out, "shell: '&' must follow a command");
            let _ = writeln!(out, "[exit {STATUS_USAGE}]");
            return STATUS_USAGE;
        }
        return 0;
    };
    let outcome = if command.background && is_builtin(name) {
        Err(Failure::usage(
            "built-in commands run in the foreground only; '&' is for on-demand programs \
             (the shell runs one command at a time)",
        ))
    } else {
        match builtin_or_program(sys, out, name, args, command) {
            Ran::Done(outcome) => outcome,
            Ran::Unknown(note) => {
                let _ = writeln!(out, "unknown command: {name}{note}");
                let _ = writeln!(out, "[exit {STATUS_UNKNOWN}]");
                return STATUS_UNKNOWN;
            }
        }
    };
    match outcome {
        Ok(()) => 0,
        Err(f) => {
            let _ = writeln!(out, "{name}: {}", f.reason);
            let _ = writeln!(out, "[exit {}]", f.status);
            f.status
        }
    }
}

/// What [`builtin_or_program`] did.
enum Ran {
    /// Ran the command.
    Done(Outcome),
    /// No such command; the note says more.
    Unknown(&'static str),
}

/// Runs the built-in `name`, or starts the on-demand program `name`.
fn builtin_or_program(
    sys: &mut impl Sys,
    out: &mut impl Write,
    name: &str,
    args: &[&str],
    command: Command<'_>,
) -> Ran {
    Ran::Done(match name {
        "help" => no_args(args).and_then(|()| help(out)),
        "ps" => no_args(args).and_then(|()| ps(sys, out)),
        "stat" => match args {
            [] => stat(sys, out),
            ["calls"] => stat_calls(sys, out),
            [a, ..] => Err(Failure::usage(format!(
                "unexpected argument '{a}' (expected none or 'calls')"
            ))),
        },
        "ipcbench" => ipcbench(sys, out, args),
        "ifconfig" => no_args(args).and_then(|()| net::ifconfig(sys, out)),
        "netstat" => no_args(args).and_then(|()| net::netstat(sys, out)),
        "lspci" => no_args(args).and_then(|()| net::lspci(sys, out)),
        "kill" => procctl::kill(sys, out, args),
        "restart" => procctl::restart(sys, out, args),
        "crash" => procctl::crash(sys, out, args),
        "hang" => procctl::hang(sys, out, args, true),
        "resume" => procctl::hang(sys, out, args, false),
        "update" => procctl::update(sys, out, args),
        "chanbench" => chanbench(sys, out, args),
        "pf" => pfctl::pf(sys, out, args),
        "ping" => ping::ping(sys, out, args),
        "sleep" => sleep(sys, args),
        "echo" => echo(out, args),
        "jobs" => no_args(args).and_then(|()| jobs::jobs(sys, out)),
        "poweroff" => {
            no_args(args).and_then(|()| Err(Failure::failed(format!("{}", sys.poweroff(0)))))
        }
        _ => match jobs::find_program(sys, name) {
            Ok(Some(program)) if program.on_demand => {
                // The rest of the command, as typed, is the program's argument string.
                let rest = command.text.get(name.len()..).unwrap_or("").trim();
                jobs::start(sys, out, &program, name, rest, command.background)
            }
            Ok(Some(_)) => {
                return Ran::Unknown(" (a process started at boot, not on demand; try help)");
            }
            Ok(None) => return Ran::Unknown(" (try help)"),
            Err(f) => Err(f),
        },
    })
}

fn no_args(args: &[&str]) -> Outcome {
    match args.first() {
        None => Ok(()),
        Some(a) => Err(Failure::usage(format!("unexpected argument '{a}'"))),
    }
}

fn help(out: &mut impl Write) -> Outcome {
    let width = COMMANDS
        .iter()
        .map(|(usage, _)| usage.len())
        .max()
        .unwrap_or(0);
    for (usage, what) in COMMANDS {
        writeln!(out, "  {usage:<width$}  {what}")?;
    }
    // Never the literal status line here: the test runner scans the transcript for it.
    writeln!(
        out,
        "Separate commands with ';'; end one with '&' to run an on-demand program in the \
         background. A command that fails says why and prints its exit status."
    )?;
    Ok(())
}

fn ps(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let mut procs = Vec::new();
    for slot in 0..MAX_SLOTS {
        match sys.proc_info(slot) {
            // A process of the other network-stack layout does not exist in this boot.
            Ok(p) if ProcState::from_u8(p.state) == Some(ProcState::OtherLayout) => {}
            Ok(p) => procs.push(p),
            Err(Error::NotFound) => break,
            Err(e) => return Err(Failure::failed(format!("process slot {slot}: {e}"))),
        }
    }
    table::write_ps(out, &procs)?;
    Ok(())
}

/// `get(cpu)` for every CPU, up to the first the kernel does not know.
fn per_cpu<S: Sys, T>(
    sys: &mut S,
    get: impl Fn(&mut S, u32) -> Result<T, Error>,
) -> Result<Vec<T>, Failure> {
    let mut cpus = Vec::new();
    for cpu in 0..MAX_CPUS {
        match get(sys, cpu) {
            Ok(c) => cpus.push(c),
            Err(Error::NotFound) => break,
            Err(e) => return Err(Failure::failed(format!("cpu {cpu}: {e}"))),
        }
    }
    Ok(cpus)
}

fn stat(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    let cpus = per_cpu(sys, |s, c| s.cpu_info(c))?;
    let uptime = sys.time_ns();
    table::write_stat(out, &cpus, uptime)?;
    Ok(())
}

fn stat_calls(sys: &mut impl Sys, out: &mut impl Write) -> Outcome {
    table::write_calls(out, &per_cpu(sys, |s, c| s.cpu_calls(c))?)?;
    Ok(())
}

fn ipcbench(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    let n = match args {
        [] => DEFAULT_ROUND_TRIPS,
        [count] => parse::parse_count(count)
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Failure::usage(format!(
                    "bad count '{count}' (expected a number of round trips > 0)"
                ))
            })?,
        [_, extra, ..] => return Err(Failure::usage(format!("unexpected argument '{extra}'"))),
    };
    let ping = sys
        .lookup(PING)
        .map_err(|e| Failure::failed(format!("no process {PING}: {e}")))?;
    let mut answer: Message = [0; axolotl_abi::IPC_MSG_LEN];
    sys.ipc_call(ping, &Request { round_trips: n }.encode(), &mut answer)
        .map_err(|e| Failure::failed(format!("call to {PING} failed: {e}")))?;
    let report = Report::decode(&answer);
    writeln!(out, "{report}")?;
    if report.errors > 0 {
        return Err(Failure::failed(format!("{} errors", report.errors)));
    }
    if report.round_trips != n {
        return Err(Failure::failed(format!(
            "{} of {n} round trips done",
            report.round_trips
        )));
    }
    Ok(())
}

/// Messages of the pipelined channel phase when `chanbench` gets no N.
pub const CHANBENCH_DEFAULT: u64 = 200_000;

fn chanbench(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    use chanbench::{BENCH_A, FULL_RUN, Plan, Report};
    let n = match args {
        [] => CHANBENCH_DEFAULT,
        [count] => parse::parse_count(count)
            .filter(|&n| n >= 1000)
            .ok_or_else(|| {
                Failure::usage(format!(
                    "bad count '{count}' (expected a number of messages >= 1000)"
                ))
            })?,
        [_, extra, ..] => return Err(Failure::usage(format!("unexpected argument '{extra}'"))),
    };
    let a = sys
        .lookup(BENCH_A)
        .map_err(|e| Failure::failed(format!("no process {BENCH_A}: {e}")))?;
    let mut answer: Message = [0; axolotl_abi::IPC_MSG_LEN];
    sys.ipc_call(a, &chanbench::words(&[n, FULL_RUN]), &mut answer)
        .map_err(|e| Failure::failed(format!("call to {BENCH_A} failed: {e}")))?;
    let r = Report::decode(&answer);
    let plan = Plan::for_n(n);
    let per_msg = |calls: u64, msgs: u64| {
        if msgs == 0 {
            0.0
        } else {
            calls as f64 / msgs as f64
        }
    };
    writeln!(
        out,
        "chanbench: bench-a -> bench-b on two dedicated CPUs; channel {} msgs pipelined, {} round trips; kernel IPC {} msgs, {} round trips",
        plan.chan_msgs, plan.chan_round_trips, plan.kernel_msgs, plan.kernel_round_trips
    )?;
    writeln!(out, "transport      msgs/s    rtt_ns  syscalls/msg")?;
    writeln!(
        out,
        "channel   {:>10}  {:>8}  {:>12.5}",
        r.chan_msgs_per_s,
        r.chan_rtt_ns,
        per_msg(r.chan_syscalls, plan.chan_msgs)
    )?;
    writeln!(
        out,
        "kernel    {:>10}  {:>8}  {:>12.5}",
        r.kernel_msgs_per_s,
        r.kernel_rtt_ns,
        per_msg(r.kernel_syscalls, plan.kernel_msgs)
    )?;
    writeln!(
        out,
        "ratio     {:>9.1}x  {:>7.1}x",
        r.throughput_ratio(),
        r.rtt_ratio()
    )?;
    writeln!(
        out,
        "chanbench: chan_msgs_per_s={} kernel_msgs_per_s={} throughput_ratio={:.1} chan_rtt_ns={} kernel_rtt_ns={} rtt_ratio={:.1} chan_syscalls_per_1k={:.3}",
        r.chan_msgs_per_s,
        r.kernel_msgs_per_s,
        r.throughput_ratio(),
        r.chan_rtt_ns,
        r.kernel_rtt_ns,
        r.rtt_ratio(),
        r.chan_syscalls_per_1k()
    )?;
    if r.errors > 0 {
        return Err(Failure::failed(format!(
            "{} messages arrived wrong or not at all",
            r.errors
        )));
    }
    if r.chan_msgs_per_s == 0 || r.kernel_msgs_per_s == 0 {
        return Err(Failure::failed("a phase did not run (see the kernel log)"));
    }
    Ok(())
}

fn sleep(sys: &mut impl Sys, args: &[&str]) -> Outcome {
    let [seconds] = args else {
        return Err(Failure::usage("usage: sleep SECONDS"));
    };
    let ns = parse::parse_seconds(seconds).ok_or_else(|| {
        Failure::usage(format!(
            "bad duration '{seconds}' (expected seconds, e.g. 0.5)"
        ))
    })?;
    let deadline = sys.time_ns().saturating_add(ns);
    loop {
        let now = sys.time_ns();
        if now >= deadline {
            return Ok(());
        }
        sys.wait(deadline - now);
    }
}

fn echo(out: &mut impl Write, args: &[&str]) -> Outcome {
    for (i, word) in args.iter().enumerate() {
        if i > 0 {
            out.write_char(' ')?;
        }
        out.write_str(word)?;
    }
    out.write_char('\n')?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axolotl_abi::ProcState;
    use e1000::proto::{self, Counters, Status};
    use ipcbench::{pong_reply, probe, reply_ok};
    use libsys::msg::word;

    /// A kernel in a box: a process table, CPUs, a clock that `wait` advances, an ipc-ping
    /// that answers from a script, an e1000 driver that answers statistics requests, PCI
    /// functions, and process control.
    pub(crate) struct Fake {
        procs: Vec<Result<ProcInfo, Error>>,
        cpus: Vec<CpuInfo>,
        now: u64,
        pub(crate) waits: Vec<u64>,
        ping: Option<u32>,
        report: fn(u64) -> Report,
        powered_off: Option<i32>,
        /// The e1000 driver's pid, if it runs.
        pub(crate) e1000: Option<u32>,
        pub(crate) e1000_status: Status,
        pub(crate) e1000_counters: Counters,
        /// The driver takes requests but never answers.
        pub(crate) e1000_silent: bool,
        pub(crate) e1000_send_error: Option<Error>,
        /// Messages from another process that arrive before the driver's answer.
        pub(crate) stray_messages: u32,
        /// Every `ipc_send`: (pid, message).
        pub(crate) sent: Vec<(u32, Message)>,
        pending_reply: Option<Message>,
        pub(crate) pci: Vec<PciInfo>,
        /// Every `proc_ctl`.
        pub(crate) ctl: Vec<(u32, ProcOp)>,
        pub(crate) ctl_error: Option<Error>,
        /// `wait`s after a kill before the process is dead (`u32::MAX`: never).
        pub(crate) dies_after_polls: u32,
        killing: Option<u32>,
        /// A process asked to update: it exits with EXIT_UPDATE after `dies_after_polls` waits
        /// (never when `dies_after_polls` is `u32::MAX`).
        updating: Option<u32>,
        /// The packet filter, if it runs.
        pub(crate) pf: Option<crate::pfctl::tests::FakePf>,
        /// The timeout of every `ipc_call_timeout`.
        pub(crate) pf_timeouts: Vec<u64>,
        /// The ip server, if it runs.
        pub(crate) ip: Option<crate::ping::tests::FakeIp>,
        /// Slots of the processes started on demand.
        on_demand: Vec<usize>,
        /// Every `proc_start`: (name, args).
        pub(crate) started: Vec<(String, String)>,
        /// `proc_start` fails with this.
        pub(crate) start_error: Option<Error>,
        /// `wait`s after a `proc_start` before the program ends (`u32::MAX`: never).
        pub(crate) run_polls: u32,
        /// How a started program ends: its state and exit code.
        pub(crate) run_end: (ProcState, i64),
        /// The program running: (pid, `wait`s left).
        running: Option<(u32, u32)>,
        next_pid: u32,
        /// Calls of `interrupted` answered `false` before one answers `true` (Ctrl-C).
        pub(crate) interrupt_after: Option<u32>,
    }

    impl Fake {
        pub(crate) fn new() -> Self {
            let mut shell = ProcInfo::empty();
            shell.pid = 1;
            shell.name[..5].copy_from_slice(b"shell");
            shell.state = ProcState::Running as u8;
            Self {
                procs: vec![Ok(shell)],
                cpus: vec![
                    CpuInfo::default(),
                    CpuInfo {
                        apic_id: 1,
                        dedicated: 1,
                        ..CpuInfo::default()
                    },
                ],
                now: 1_000,
                waits: Vec::new(),
                ping: Some(9),
                report: |n| Report {
                    round_trips: n,
                    total_ns: n * 2_000,
                    errors: 0,
                },
                powered_off: None,
                e1000: None,
                e1000_status: Status::default(),
                e1000_counters: Counters::default(),
                e1000_silent: false,
                e1000_send_error: None,
                stray_messages: 0,
                sent: Vec::new(),
                pending_reply: None,
                pci: Vec::new(),
                ctl: Vec::new(),
                ctl_error: None,
                dies_after_polls: 0,
                killing: None,
                updating: None,
                pf: None,
                pf_timeouts: Vec::new(),
                ip: None,
                on_demand: Vec::new(),
                started: Vec::new(),
                start_error: None,
                run_polls: 1,
                run_end: (ProcState::Exited, 0),
                running: None,
                next_pid: 200,
                interrupt_after: None,
            }
        }

        /// Declares an on-demand program `name`, not started yet.
        pub(crate) fn add_program(&mut self, name: &str) {
            let mut p = ProcInfo::empty();
            p.name[..name.len()].copy_from_slice(name.as_bytes());
            p.state = ProcState::NotStarted as u8;
            self.on_demand.push(self.procs.len());
            self.procs.push(Ok(p));
        }

        pub(crate) fn add_proc(&mut self, pid: u32, name: &str, state: ProcState) {
            let mut p = ProcInfo::empty();
            p.pid = pid;
            p.name[..name.len()].copy_from_slice(name.as_bytes());
            p.state = state as u8;
            self.procs.push(Ok(p));
        }

        fn proc_mut(&mut self, pid: u32) -> Option<&mut ProcInfo> {
            self.procs.iter_mut().flatten().find(|p| p.pid == pid)
        }

        /// The fake clock.
        pub(crate) fn time_ns_now(&self) -> u64 {
            self.now
        }
    }

    impl Sys for Fake {
        fn proc_info(&mut self, slot: u32) -> Result<ProcInfo, Error> {
            self.procs
                .get(slot as usize)
                .copied()
                .unwrap_or(Err(Error::NotFound))
        }
        fn cpu_info(&mut self, cpu: u32) -> Result<CpuInfo, Error> {
            self.cpus.get(cpu as usize).copied().ok_or(Error::NotFound)
        }
        fn cpu_calls(&mut self, cpu: u32) -> Result<CpuCalls, Error> {
            let info = self.cpus.get(cpu as usize).ok_or(Error::NotFound)?;
            // Every call the fake CPU took was a wait.
            let mut calls = CpuCalls::default();
            calls.counts[axolotl_abi::nr::WAIT as usize] = info.syscalls;
            Ok(calls)
        }
        fn lookup(&mut self, name: &str) -> Result<u32, Error> {
            if let (crate::pfctl::SERVICE, Some(pf)) = (name, &self.pf) {
                return Ok(pf.pid);
            }
            if let (ipd::SERVICE, Some(ip)) = (name, &self.ip) {
                return Ok(ip.pid);
            }
            match (name, self.ping, self.e1000) {
                (PING, Some(pid), _) => Ok(pid),
                (proto::SERVICE, _, Some(pid)) => Ok(pid),
                _ => self
                    .procs
                    .iter()
                    .flatten()
                    .find(|p| {
                        p.pid != 0
                            && p.name() == name
                            && matches!(
                                ProcState::from_u8(p.state),
                                Some(ProcState::Running | ProcState::Ready | ProcState::Blocked)
                            )
                    })
                    .map(|p| p.pid)
                    .ok_or(Error::NotFound),
            }
        }
        fn ipc_call(&mut self, pid: u32, msg: &Message, reply: &mut Message) -> Result<(), Error> {
            assert_eq!(Some(pid), self.ping);
            *reply = (self.report)(word(msg, 0)).encode();
            Ok(())
        }
        fn time_ns(&mut self) -> u64 {
            self.now
        }
        fn wait(&mut self, timeout_ns: u64) {
            self.waits.push(timeout_ns);
            if let Some((pid, left)) = self.running {
                let left = if left == u32::MAX { left } else { left - 1 };
                self.running = Some((pid, left));
                if left == 0 {
                    let (state, code) = self.run_end;
                    if let Some(p) = self.proc_mut(pid) {
                        p.state = state as u8;
                        p.exit_code = code;
                    }
                    self.running = None;
                }
            }
            if let Some(pid) = self.updating
                && self.dies_after_polls != u32::MAX
            {
                self.dies_after_polls = self.dies_after_polls.saturating_sub(1);
                if self.dies_after_polls == 0
                    && let Some(p) = self.proc_mut(pid)
                {
                    p.state = ProcState::Exited as u8;
                    p.exit_code = i64::from(axolotl_abi::EXIT_UPDATE);
                    self.updating = None;
                }
            }
            if let Some(pid) = self.killing {
                if self.dies_after_polls != u32::MAX {
                    self.dies_after_polls = self.dies_after_polls.saturating_sub(1);
                }
                if self.dies_after_polls == 0
                    && let Some(p) = self.proc_mut(pid)
                {
                    p.state = ProcState::Killed as u8;
                    self.killing = None;
                }
            }
            // Woken early by a notification now and then, as console input does.
            self.now += if self.waits.len() % 2 == 1 {
                timeout_ns / 3
            } else {
                timeout_ns
            };
        }
        fn poweroff(&mut self, code: i32) -> Error {
            self.powered_off = Some(code);
            Error::Denied
        }
        fn ipc_send(&mut self, pid: u32, msg: &Message) -> Result<(), Error> {
            if let Some(e) = self.e1000_send_error {
                return Err(e);
            }
            self.sent.push((pid, *msg));
            if Some(pid) == self.e1000 && !self.e1000_silent && proto::replies_by_send(msg) {
                self.pending_reply =
                    Some(proto::answer(msg, &self.e1000_counters, &self.e1000_status));
            }
            Ok(())
        }
        fn ipc_recv(&mut self, msg: &mut Message, timeout_ns: u64) -> Result<u32, Error> {
            if self.stray_messages > 0 {
                self.stray_messages -= 1;
                *msg = [7; axolotl_abi::IPC_MSG_LEN];
                return Ok(99);
            }
            match (self.pending_reply.take(), self.e1000) {
                (Some(reply), Some(pid)) => {
                    *msg = reply;
                    Ok(pid)
                }
                _ => {
                    self.now += timeout_ns;
                    Err(Error::TimedOut)
                }
            }
        }
        fn pci_info(&mut self, index: u32) -> Result<PciInfo, Error> {
            self.pci.get(index as usize).copied().ok_or(Error::NotFound)
        }
        fn proc_ctl(&mut self, pid: u32, op: ProcOp) -> Result<u64, Error> {
            if let Some(e) = self.ctl_error {
                return Err(e);
            }
            self.ctl.push((pid, op));
            match op {
                ProcOp::Kill => {
                    self.killing = Some(pid);
                    if self.running.is_some_and(|(p, _)| p == pid) {
                        self.running = None;
                    }
                    Ok(0)
                }
                ProcOp::RequestUpdate => {
                    self.updating = Some(pid);
                    Ok(0)
                }
                ProcOp::Restart => {
                    let p = self.proc_mut(pid).ok_or(Error::NotFound)?;
                    p.pid = 100;
                    p.state = ProcState::Running as u8;
                    p.restarts += 1;
                    Ok(100)
                }
                _ => Ok(0),
            }
        }
        fn ipc_call_timeout(
            &mut self,
            pid: u32,
            msg: &Message,
            reply: &mut Message,
            timeout_ns: u64,
        ) -> Result<(), Error> {
            if let Some(ip) = self.ip.as_mut().filter(|ip| ip.pid == pid) {
                return ip.call(msg, reply, timeout_ns, &mut self.now);
            }
            self.pf_timeouts.push(timeout_ns);
            let Some(pf) = self.pf.as_mut().filter(|p| p.pid == pid) else {
                return Err(Error::NotFound);
            };
            if pf.silent {
                pf.calls.push(*msg);
                self.now += timeout_ns;
                return Err(Error::TimedOut);
            }
            *reply = pf.answer(msg);
            Ok(())
        }
        fn proc_policy(&mut self, slot: u32) -> Result<RestartPolicy, Error> {
            let slot = slot as usize;
            if slot >= self.procs.len() {
                return Err(Error::NotFound);
            }
            Ok(RestartPolicy {
                start: u32::from(!self.on_demand.contains(&slot)),
                ..RestartPolicy::default()
            })
        }
        fn proc_start(&mut self, name: &str, args: &str) -> Result<u32, Error> {
            if let Some(e) = self.start_error {
                return Err(e);
            }
            let pid = self.next_pid;
            let p = self
                .procs
                .iter_mut()
                .flatten()
                .find(|p| p.name() == name)
                .ok_or(Error::NotFound)?;
            if !ProcState::from_u8(p.state).is_some_and(ProcState::is_down) {
                return Err(Error::Busy);
            }
            p.pid = pid;
            p.state = ProcState::Running as u8;
            p.exit_code = 0;
            self.next_pid += 1;
            self.started.push((name.to_string(), args.to_string()));
            self.running = Some((pid, self.run_polls));
            Ok(pid)
        }
        fn interrupted(&mut self) -> bool {
            match self.interrupt_after {
                Some(0) => {
                    self.interrupt_after = None;
                    true
                }
                Some(n) => {
                    self.interrupt_after = Some(n - 1);
                    false
                }
                None => false,
            }
        }
    }

    pub(crate) fn run(sys: &mut Fake, line: &str) -> (i32, String) {
        let mut out = String::new();
        let status = run_line(sys, &mut out, line);
        (status, out)
    }

    #[test]
    fn unknown_commands_and_empty_lines() {
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "frobnicate now"),
            (
                127,
                "unknown command: frobnicate (try help)\n[exit 127]\n".into()
            )
        );
        assert_eq!(run(&mut k, ""), (0, String::new()));
        assert_eq!(run(&mut k, " ; ;"), (0, String::new()));
    }

    #[test]
    fn semicolons_run_in_order_and_failures_do_not_stop_the_line() {
        let mut k = Fake::new();
        let (status, out) = run(&mut k, "echo a  b; nope; echo c");
        assert_eq!(
            out,
            "a b\nunknown command: nope (try help)\n[exit 127]\nc\n"
        );
        assert_eq!(status, 0, "the status of the last command");
    }

    #[test]
    fn help_lists_every_command() {
        let mut k = Fake::new();
        let (status, out) = run(&mut k, "help");
        assert_eq!(status, 0);
        for cmd in [
            "help",
            "ps",
            "stat [calls]",
            "ipcbench [N]",
            "ifconfig",
            "netstat",
            "ping [-c N]",
            "lspci",
            "kill NAME",
            "restart NAME",
            "sleep S",
            "echo WORDS...",
            "poweroff",
            "jobs",
            "NAME [ARGS] [&]",
        ] {
            assert!(
                out.lines().any(|l| l.trim_start().starts_with(cmd)),
                "{cmd} missing from:\n{out}"
            );
        }
        assert!(!out.contains("[exit"));
    }

    #[test]
    fn every_listed_command_is_a_builtin() {
        for (usage, _) in COMMANDS {
            let name = usage.split(' ').next().unwrap();
            assert_eq!(is_builtin(name), name != "NAME", "{usage}");
        }
        assert!(!is_builtin("demo") && !is_builtin(""));
    }

    #[test]
    fn ps_lists_processes_until_not_found() {
        let mut k = Fake::new();
        let mut hole = ProcInfo::empty();
        hole.pid = 0;
        k.procs.push(Ok(hole));
        let mut ping = ProcInfo::empty();
        ping.pid = 9;
        ping.name[..7].copy_from_slice(b"bench-a");
        ping.cpu = 1;
        ping.dedicated = 1;
        ping.state = ProcState::Blocked as u8;
        ping.restarts = 2;
        k.procs.push(Ok(ping));
        let (status, out) = run(&mut k, "ps");
        assert_eq!(status, 0);
        assert_eq!(
            out,
            "PID  NAME     CORE  STATE    RESTARTS\n  1  shell    0     running         0\n  9  bench-a  1*    blocked         2\n"
        );
    }

    #[test]
    fn ps_reports_a_kernel_error() {
        let mut k = Fake::new();
        k.procs.push(Err(Error::BadAddress));
        let (status, out) = run(&mut k, "ps");
        assert_eq!(status, 1);
        assert_eq!(out, "ps: process slot 1: bad address\n[exit 1]\n");
        assert_eq!(
            run(&mut k, "ps -a").1,
            "ps: unexpected argument '-a'\n[exit 2]\n"
        );
    }

    #[test]
    fn stat_lists_cpus() {
        let mut k = Fake::new();
        k.now = 2_500_000_000;
        let (status, out) = run(&mut k, "stat");
        assert_eq!(status, 0);
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            table::STAT_HEADER
        );
        assert!(lines[1].contains("shared") && lines[2].contains("dedicated"));
        assert_eq!(lines[3], "uptime 2500 ms");
    }

    #[test]
    fn stat_calls_lists_each_cpus_calls() {
        let mut k = Fake::new();
        k.cpus[1].syscalls = 12;
        let (status, out) = run(&mut k, "stat calls");
        assert_eq!(status, 0);
        assert_eq!(out, "CPU  CALLS\n  0  -\n  1  wait=12\n");
        let (status, out) = run(&mut k, "stat frob");
        assert_eq!(status, 2, "{out}");
        assert!(out.contains("unexpected argument 'frob'"), "{out}");
    }

    #[test]
    fn sleep_waits_until_the_time_passed() {
        let mut k = Fake::new();
        assert_eq!(run(&mut k, "sleep 0.5"), (0, String::new()));
        assert!(k.now >= 1_000 + 500_000_000, "woke early: {}", k.now);
        assert!(
            k.waits.len() >= 2,
            "an early wake-up is followed by another wait"
        );
        assert_eq!(k.waits[0], 500_000_000);
        let before = k.now;
        assert_eq!(run(&mut k, "sleep 0"), (0, String::new()));
        assert_eq!(k.now, before);
    }

    #[test]
    fn sleep_rejects_bad_durations() {
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "sleep"),
            (2, "sleep: usage: sleep SECONDS\n[exit 2]\n".into())
        );
        assert_eq!(
            run(&mut k, "sleep -1"),
            (
                2,
                "sleep: bad duration '-1' (expected seconds, e.g. 0.5)\n[exit 2]\n".into()
            )
        );
        assert_eq!(run(&mut k, "sleep 1 2").0, 2);
        assert!(k.waits.is_empty());
    }

    #[test]
    fn ipcbench_prints_the_summary() {
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "ipcbench"),
            (
                0,
                "ipcbench: round_trips=100000 rtt_ns=2000 errors=0\n".into()
            )
        );
        assert_eq!(
            run(&mut k, "ipcbench 10"),
            (0, "ipcbench: round_trips=10 rtt_ns=2000 errors=0\n".into())
        );
    }

    #[test]
    fn ipcbench_fails_on_errors_short_runs_and_missing_peers() {
        let mut k = Fake::new();
        k.report = |n| Report {
            round_trips: n,
            total_ns: n,
            errors: 3,
        };
        assert_eq!(
            run(&mut k, "ipcbench 5"),
            (
                1,
                "ipcbench: round_trips=5 rtt_ns=1 errors=3\nipcbench: 3 errors\n[exit 1]\n".into()
            )
        );
        k.report = |n| Report {
            round_trips: n - 1,
            total_ns: 10,
            errors: 0,
        };
        assert_eq!(
            run(&mut k, "ipcbench 5").1.lines().nth(1),
            Some("ipcbench: 4 of 5 round trips done")
        );
        k.ping = None;
        assert_eq!(
            run(&mut k, "ipcbench"),
            (
                1,
                "ipcbench: no process bench-a: not found\n[exit 1]\n".into()
            )
        );
        for bad in ["ipcbench 0", "ipcbench x", "ipcbench 1 2"] {
            assert_eq!(run(&mut k, bad).0, 2, "{bad}");
        }
    }

    #[test]
    fn poweroff_reports_a_refusal() {
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "poweroff"),
            (
                1,
                "poweroff: not granted by the manifest\n[exit 1]\n".into()
            )
        );
        assert_eq!(k.powered_off, Some(0));
    }

    #[test]
    fn the_ping_pong_protocol_is_what_ipcbench_checks() {
        // The shell and ipc-ping share `ipcbench`'s protocol; a quick end-to-end of its pieces.
        let p = probe(41);
        assert!(reply_ok(41, &pong_reply(&p)));
    }
}
