//! The guest shell as a test runner sees it: its prompt, its failure lines, its `ps` table, the
//! kernel's fault lines, and the report of an `--exec` session (commands typed into the shell,
//! each with its output and status).
//!
//! The shell's contract (DESIGN.md §9, `userland/shell`): the prompt is `axolotl> ` with no
//! newline after it; typed characters are echoed; a command that fails prints one line
//! `CMD: REASON` and then `[exit N]` (N non-zero) on a line of its own; a success prints no status
//! line. Kernel log lines (`[cpuK] ...`) may appear between any two lines of a command's output.

use std::fmt;

/// The shell's prompt, printed with no newline after it.
pub const PROMPT: &str = "axolotl> ";

/// The status N of a line `[exit N]`. The line may carry text before the marker (a kernel log
/// line that was cut into the shell's output), not after it.
pub fn exit_status_of_line(line: &str) -> Option<i32> {
    let line = line.trim_end();
    let at = line.rfind("[exit ")?;
    let n = line[at + "[exit ".len()..].strip_suffix(']')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    n.parse().ok()
}

/// The first `[exit N]` status in a command's output, if any.
pub fn exit_status(output: &str) -> Option<i32> {
    output.lines().find_map(exit_status_of_line)
}

/// One command typed into the shell by an `--exec` session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The command as typed.
    pub command: String,
    /// What the guest printed between the command's echo and the next prompt (cleaned like the
    /// transcript: no `\r`, no escapes), kernel log lines included.
    pub output: String,
    /// `Some(N)` when the output holds an `[exit N]` line: the command failed.
    pub status: Option<i32>,
}

/// Why an `--exec` session failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFailure {
    /// No shell prompt within the per-command limit after QEMU started.
    NoPrompt {
        /// The limit, in seconds.
        secs: u64,
    },
    /// QEMU ended before the shell printed its first prompt.
    EndedBeforePrompt,
    /// A command printed `[exit N]`.
    CommandFailed {
        /// The command.
        command: String,
        /// Its status N.
        status: i32,
    },
    /// A command did not give the prompt back within the per-command limit.
    CommandTimedOut {
        /// The command.
        command: String,
        /// The limit, in seconds.
        secs: u64,
    },
    /// QEMU ended while a command ran (a panic, a reset, the run's timeout).
    EndedDuringCommand {
        /// The command.
        command: String,
    },
    /// `poweroff` gave the prompt back instead of powering off.
    PoweroffReturned,
    /// `poweroff` was typed but the guest was still running after the per-command limit.
    NoPoweroff {
        /// The limit, in seconds.
        secs: u64,
    },
}

impl fmt::Display for ExecFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPrompt { secs } => write!(f, "exec: no shell prompt within {secs} s"),
            Self::EndedBeforePrompt => write!(f, "exec: QEMU ended before the shell prompt"),
            Self::CommandFailed { command, status } => {
                write!(f, "exec: command '{command}' failed ([exit {status}])")
            }
            Self::CommandTimedOut { command, secs } => {
                write!(
                    f,
                    "exec: command '{command}' gave no prompt within {secs} s"
                )
            }
            Self::EndedDuringCommand { command } => {
                write!(f, "exec: QEMU ended while command '{command}' ran")
            }
            Self::PoweroffReturned => {
                write!(
                    f,
                    "exec: 'poweroff' gave the prompt back instead of powering off"
                )
            }
            Self::NoPoweroff { secs } => {
                write!(
                    f,
                    "exec: the guest did not power off within {secs} s of 'poweroff'"
                )
            }
        }
    }
}

/// What an `--exec` session did: every command typed (the final `poweroff` included, when it
/// was reached), and the first failure. The session stops at the first failure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecReport {
    /// The commands typed, in order, each with its output.
    pub commands: Vec<CommandOutput>,
    /// The first failure, if any.
    pub failure: Option<ExecFailure>,
}

impl ExecReport {
    /// The output of the first command typed as exactly `command`.
    pub fn output_of(&self, command: &str) -> Option<&str> {
        self.commands
            .iter()
            .find(|c| c.command == command)
            .map(|c| c.output.as_str())
    }
}

/// Splits `--exec "cmd; cmd; ..."` into its commands, trimmed, empty ones dropped.
pub fn split_commands(exec: &str) -> Vec<String> {
    exec.split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// One row of the `ps` table (`PID NAME CORE STATE RESTARTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsRow {
    /// Process id.
    pub pid: u32,
    /// Name from the manifest.
    pub name: String,
    /// The CPU it runs on.
    pub cpu: u32,
    /// `*` after the CPU: it has the CPU to itself.
    pub dedicated: bool,
    /// `running`, `ready`, `blocked`, `faulted`, `exited`, `stopped`, `killed` ...
    pub state: String,
    /// Times it was restarted.
    pub restarts: u32,
}

/// Where a kernel log line (`[cpuK] `, K one or more digits) starts in `line`, if it does.
fn log_start(line: &str) -> Option<usize> {
    line.match_indices("[cpu").map(|(i, _)| i).find(|&i| {
        let rest = &line[i + "[cpu".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with("] ")
    })
}

/// `output` with the lines a kernel log line cut in two mended. The kernel and the shell share
/// the serial line, so a log line (`[cpuK] ...`, with its newline) can begin in the middle of a
/// line of the shell's, whose rest then comes on the next line that is not a log line:
/// `  5  ip  3*  blocked[cpu4] udp: ...` then `           0`. The log line goes on a line of its
/// own, before the mended one. An output with no cut line comes back as it was. The exec session
/// mends every command's output ([`crate::CommandOutput::output`]): every reader gets whole
/// lines.
pub fn mend_cut_lines(output: &str) -> String {
    if !output
        .lines()
        .any(|l| log_start(l).is_some_and(|at| at > 0))
    {
        return output.to_string();
    }
    let mut out = String::with_capacity(output.len());
    // The start of a shell line that a log line cut off, waiting for its rest.
    let mut cut = String::new();
    for line in output.lines() {
        match log_start(line) {
            Some(0) => {}
            Some(at) if cut.is_empty() => {
                cut.push_str(&line[..at]);
                out.push_str(&line[at..]);
                out.push('\n');
                continue;
            }
            _ if !cut.is_empty() => {
                out.push_str(&cut);
                cut.clear();
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    if !cut.is_empty() {
        out.push_str(&cut);
        out.push('\n');
    }
    out
}

/// The rows of the last `ps` table in `output`: the lines after its header line that split into
/// five well-formed cells. Other lines (kernel log lines printed in between) are skipped; a row
/// a log line cut in two is whole again in a command's output ([`mend_cut_lines`]).
pub fn parse_ps(output: &str) -> Option<Vec<PsRow>> {
    let lines: Vec<&str> = output.lines().collect();
    let header = lines.iter().rposition(|l| {
        l.split_ascii_whitespace()
            .eq(["PID", "NAME", "CORE", "STATE", "RESTARTS"])
    })?;
    Some(
        lines[header + 1..]
            .iter()
            .filter_map(|l| ps_row(l))
            .collect(),
    )
}

fn ps_row(line: &str) -> Option<PsRow> {
    let cells: Vec<&str> = line.split_ascii_whitespace().collect();
    let [pid, name, core, state, restarts] = cells[..] else {
        return None;
    };
    let (cpu, dedicated) = match core.strip_suffix('*') {
        Some(cpu) => (cpu, true),
        None => (core, false),
    };
    if !state.bytes().all(|b| b.is_ascii_lowercase() || b == b'?') {
        return None;
    }
    Some(PsRow {
        pid: pid.parse().ok()?,
        name: name.to_string(),
        cpu: cpu.parse().ok()?,
        dedicated,
        state: state.to_string(),
        restarts: restarts.parse().ok()?,
    })
}

/// Header of the guest's `stat` table.
pub const STAT_HEADER: [&str; 9] = [
    "CPU",
    "APIC",
    "OWNER",
    "SYSCALLS",
    "INTERRUPTS",
    "IPIS",
    "TICKS",
    "SWITCHES",
    "IDLE_MS",
];

/// One row of the guest's `stat` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuCounters {
    /// CPU index.
    pub cpu: u32,
    /// `dedicated` or `shared`.
    pub owner: String,
    /// System calls taken on it.
    pub syscalls: u64,
    /// Interrupts taken on it.
    pub interrupts: u64,
    /// Inter-processor interrupts.
    pub ipis: u64,
    /// Timer ticks.
    pub ticks: u64,
    /// Context switches.
    pub switches: u64,
    /// Milliseconds spent idle since boot (in the kernel's idle loop).
    pub idle_ms: u64,
}

/// The rows of the last `stat` table in `output`; kernel log lines between rows are skipped (a
/// command's output has its cut rows mended: [`mend_cut_lines`]).
pub fn parse_stat(output: &str) -> Option<Vec<CpuCounters>> {
    let lines: Vec<&str> = output.lines().collect();
    let header = lines
        .iter()
        .rposition(|l| l.split_ascii_whitespace().eq(STAT_HEADER))?;
    let row = |l: &&str| -> Option<CpuCounters> {
        let c: Vec<&str> = l.split_ascii_whitespace().collect();
        let [
            cpu,
            apic,
            owner,
            syscalls,
            interrupts,
            ipis,
            ticks,
            switches,
            idle_ms,
        ] = c[..]
        else {
            return None;
        };
        apic.parse::<u32>().ok()?;
        if owner != "dedicated" && owner != "shared" {
            return None;
        }
        Some(CpuCounters {
            cpu: cpu.parse().ok()?,
            owner: owner.to_string(),
            syscalls: syscalls.parse().ok()?,
            interrupts: interrupts.parse().ok()?,
            ipis: ipis.parse().ok()?,
            ticks: ticks.parse().ok()?,
            switches: switches.parse().ok()?,
            idle_ms: idle_ms.parse().ok()?,
        })
    };
    Some(lines[header + 1..].iter().filter_map(row).collect())
}

/// The guest's uptime in milliseconds from the last `uptime N ms` line of `output` (`stat`
/// prints it under its table).
pub fn parse_uptime(output: &str) -> Option<u64> {
    output.lines().rev().find_map(|l| {
        let mut w = l.split_ascii_whitespace();
        match (w.next(), w.next(), w.next(), w.next()) {
            (Some("uptime"), Some(ms), Some("ms"), None) => ms.parse().ok(),
            _ => None,
        }
    })
}

/// The busy share (0–100 %) of each CPU in both tables between two `stat` readings taken at
/// uptimes `up0` and `up1` (ms): one minus the growth of its idle time over the time that
/// passed. `None` when no time passed.
pub fn busy_percent(
    before: &[CpuCounters],
    after: &[CpuCounters],
    up0: u64,
    up1: u64,
) -> Option<Vec<(u32, f64)>> {
    let span = up1.checked_sub(up0).filter(|&d| d > 0)? as f64;
    let busy = after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.cpu == a.cpu)?;
            let idle = a.idle_ms.saturating_sub(b.idle_ms) as f64;
            Some((a.cpu, (100.0 * (1.0 - idle / span)).clamp(0.0, 100.0)))
        })
        .collect();
    Some(busy)
}

/// A kernel fault line: `fault: NAME (pid P) #PF page fault at rip=...: process stopped`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultLine {
    /// The process that faulted.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// The exception's mnemonic, e.g. `#PF` (vector 14) or `#UD` (vector 6).
    pub mnemonic: String,
    /// Index of the line in the transcript.
    pub line: usize,
}

/// Every kernel fault line of `transcript`, in order.
pub fn fault_lines(transcript: &str) -> Vec<FaultLine> {
    transcript
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = &l[l.find("fault: ")? + "fault: ".len()..];
            let (name, rest) = rest.split_once(" (pid ")?;
            let (pid, rest) = rest.split_once(") ")?;
            let mnemonic = rest.split_ascii_whitespace().next()?;
            rest.contains("process stopped").then_some(())?;
            Some(FaultLine {
                name: name.to_string(),
                pid: pid.parse().ok()?,
                mnemonic: mnemonic.to_string(),
                line: i,
            })
        })
        .collect()
}

/// The exception mnemonic the kernel prints for `vector` (the ones the scenarios expect).
pub fn mnemonic(vector: u8) -> &'static str {
    match vector {
        0 => "#DE",
        6 => "#UD",
        13 => "#GP",
        14 => "#PF",
        _ => "#?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_lines() {
        assert_eq!(exit_status_of_line("[exit 1]"), Some(1));
        assert_eq!(exit_status_of_line("[exit 127]  "), Some(127));
        assert_eq!(exit_status_of_line("[cpu0] heartbeat: 3[exit 2]"), Some(2));
        assert_eq!(exit_status_of_line("[exit ]"), None);
        assert_eq!(exit_status_of_line("[exit 1] trailing"), None);
        assert_eq!(exit_status_of_line("[exit one]"), None);
        assert_eq!(exit_status_of_line("exit 1"), None);
        assert_eq!(exit_status("a\nps: no\n[exit 1]\n[exit 3]\n"), Some(1));
        assert_eq!(exit_status("all fine\n"), None);
    }

    #[test]
    fn exec_splitting() {
        assert_eq!(split_commands("sleep 2; ps"), ["sleep 2", "ps"]);
        assert_eq!(split_commands(" ps ;; ; help "), ["ps", "help"]);
        assert!(split_commands(" ; ").is_empty());
    }

    #[test]
    fn failure_messages() {
        let f = ExecFailure::CommandFailed {
            command: "ps".into(),
            status: 1,
        };
        assert_eq!(f.to_string(), "exec: command 'ps' failed ([exit 1])");
        assert_eq!(
            ExecFailure::NoPrompt { secs: 30 }.to_string(),
            "exec: no shell prompt within 30 s"
        );
    }

    #[test]
    fn ps_tables() {
        let out = "ps\nPID  NAME      CORE  STATE    RESTARTS\n  1  shell     0     running         0\n\
                   [cpu1] heartbeat: heartbeat 4\n  9  ipc-ping  1*    blocked         2\n";
        let rows = parse_ps(out).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            PsRow {
                pid: 9,
                name: "ipc-ping".into(),
                cpu: 1,
                dedicated: true,
                state: "blocked".into(),
                restarts: 2
            }
        );
        assert!(!rows[0].dedicated);
        assert_eq!(parse_ps("no table here"), None);
        assert_eq!(parse_ps("PID NAME CORE STATE RESTARTS\n"), Some(vec![]));
    }

    /// A bench run's `ps` (2026-11-28): udp's log line began in the middle of ip's row.
    #[test]
    fn a_row_cut_by_a_log_line_is_mended() {
        let out = "PID  NAME         CORE  STATE      RESTARTS\n\
                   \x20 4  pf           2*    blocked           0\n\
                   \x20 5  ip           3*    blocked[cpu4] udp: udp counters: tx_lent=16\n\
                   \x20          0\n\
                   \x20 6  udp          4*    blocked           0\n";
        let rows = parse_ps(&mend_cut_lines(out)).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["pf", "ip", "udp"]);
        assert_eq!(
            (rows[1].cpu, rows[1].dedicated, rows[1].restarts),
            (3, true, 0)
        );
        assert_eq!(
            mend_cut_lines("a[cpu1] x: y\n[cpu2] z: w\nb\nc\n"),
            "[cpu1] x: y\n[cpu2] z: w\nab\nc\n"
        );
        // A cut line with no rest before the end, and text that only looks like a marker.
        assert_eq!(mend_cut_lines("ab[cpu3] log\n"), "[cpu3] log\nab\n");
        assert_eq!(
            mend_cut_lines("a [cpu] b\n[cpux] c\n"),
            "a [cpu] b\n[cpux] c\n"
        );
        let stat = "CPU  APIC  OWNER  SYSCALLS  INTERRUPTS  IPIS  TICKS  SWITCHES  IDLE_MS\n\
                    \x20 0     0  shared      10[cpu1] e1000: link up\n\
                    \x20       2     0     5         1        7\n";
        let rows = parse_stat(&mend_cut_lines(stat)).unwrap();
        assert_eq!((rows.len(), rows[0].syscalls, rows[0].idle_ms), (1, 10, 7));
    }

    #[test]
    fn fault_line_parsing() {
        let t = "[cpu0] testproc: x\n[cpu2] WARN: fault: bad-pointer (pid 3) #PF page fault at \
                 rip=0x1 address=0xdead error=0x4: process stopped\n[cpu0] WARN: fault: \
                 bad-opcode (pid 4) #UD invalid opcode at rip=0x2 address=0x0 error=0x0: process \
                 stopped\n";
        let f = fault_lines(t);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (
                f[0].name.as_str(),
                f[0].pid,
                f[0].mnemonic.as_str(),
                f[0].line
            ),
            ("bad-pointer", 3, "#PF", 1)
        );
        assert_eq!(f[1].mnemonic, mnemonic(6));
        assert!(fault_lines("fault: nonsense").is_empty());
    }
}
