//! Aligned text tables, and the `ps` and `stat` tables.
//!
//! Columns are as wide as their widest cell (header included) and separated by two spaces;
//! numbers are right-aligned, text left-aligned, and no line ends in spaces. So a script can
//! split any row, header included, on whitespace.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};

use axolotl_abi::{CpuCalls, CpuInfo, ProcInfo, ProcState};

/// How a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// Space between columns.
const GAP: &str = "  ";

/// Writes `header` and `rows` as an aligned table, one line each.
pub fn write_table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    align: [Align; N],
    rows: &[[String; N]],
) -> fmt::Result {
    let mut width = header.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = |cells: [&str; N]| -> fmt::Result {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.write_str(GAP)?;
            }
            let w = width[i];
            match align[i] {
                Align::Right => write!(out, "{cell:>w$}")?,
                Align::Left if i + 1 == N => out.write_str(cell)?,
                Align::Left => write!(out, "{cell:<w$}")?,
            }
        }
        out.write_char('\n')
    };
    line(header)?;
    for row in rows {
        line(core::array::from_fn(|i| row[i].as_str()))?;
    }
    Ok(())
}

/// Header of `ps`.
pub const PS_HEADER: [&str; 5] = ["PID", "NAME", "CORE", "STATE", "RESTARTS"];

/// The `CORE` cell: the CPU number, with `*` when the process has it to itself.
pub fn core_cell(p: &ProcInfo) -> String {
    if p.dedicated != 0 {
        format!("{}*", p.cpu)
    } else {
        p.cpu.to_string()
    }
}

/// The `STATE` cell: [`ProcState::name`], or `?N` for a state this build does not know.
pub fn state_cell(state: u8) -> String {
    match ProcState::from_u8(state) {
        Some(s) => s.name().to_string(),
        None => format!("?{state}"),
    }
}

/// Writes the `ps` table of `procs`, skipping empty slots (pid 0, no name). A process never
/// started (an on-demand program before its first start) shows `-` for its pid.
pub fn write_ps(out: &mut impl Write, procs: &[ProcInfo]) -> fmt::Result {
    let rows: Vec<[String; 5]> = procs
        .iter()
        .filter(|p| p.pid != 0 || !p.name().is_empty())
        .map(|p| {
            [
                crate::jobs::pid_cell(p),
                p.name().to_string(),
                core_cell(p),
                state_cell(p.state),
                p.restarts.to_string(),
            ]
        })
        .collect();
    use Align::{Left, Right};
    write_table(out, PS_HEADER, [Right, Left, Left, Left, Right], &rows)
}

/// Header of `stat`.
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

/// Writes the `stat` table of `cpus`, CPU `i` being `cpus[i]`, then the line `uptime N ms`
/// (`uptime_ns` since boot): a CPU's busy share over an interval is one minus the growth of its
/// IDLE_MS over the growth of the uptime.
pub fn write_stat(out: &mut impl Write, cpus: &[CpuInfo], uptime_ns: u64) -> fmt::Result {
    let rows: Vec<[String; 9]> = cpus
        .iter()
        .enumerate()
        .map(|(i, c)| {
            [
                i.to_string(),
                c.apic_id.to_string(),
                (if c.dedicated != 0 {
                    "dedicated"
                } else {
                    "shared"
                })
                .to_string(),
                c.syscalls.to_string(),
                c.interrupts.to_string(),
                c.ipis.to_string(),
                c.ticks.to_string(),
                c.switches.to_string(),
                (c.idle_ns / 1_000_000).to_string(),
            ]
        })
        .collect();
    use Align::{Left, Right};
    write_table(
        out,
        STAT_HEADER,
        [Right, Right, Left, Right, Right, Right, Right, Right, Right],
        &rows,
    )?;
    writeln!(out, "uptime {} ms", uptime_ns / 1_000_000)
}

/// The header of `stat calls`.
pub const CALLS_HEADER: [&str; 2] = ["CPU", "CALLS"];

/// `stat calls`: a row per CPU, its system calls since boot as `name=count` words (the calls
/// it never took left out; `-` for none at all).
pub fn write_calls(out: &mut impl Write, cpus: &[CpuCalls]) -> fmt::Result {
    let rows: Vec<[String; 2]> = cpus
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let words: Vec<String> = c
                .counts
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(nr, n)| format!("{}={n}", axolotl_abi::nr::name(nr)))
                .collect();
            let words = if words.is_empty() {
                "-".to_string()
            } else {
                words.join(" ")
            };
            [i.to_string(), words]
        })
        .collect();
    write_table(out, CALLS_HEADER, [Align::Right, Align::Left], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_abi::NAME_LEN;

    pub(crate) fn proc(
        pid: u32,
        name: &str,
        cpu: u32,
        dedicated: bool,
        state: ProcState,
        restarts: u32,
    ) -> ProcInfo {
        let mut p = ProcInfo::empty();
        p.pid = pid;
        p.name[..name.len().min(NAME_LEN)]
            .copy_from_slice(&name.as_bytes()[..name.len().min(NAME_LEN)]);
        p.cpu = cpu;
        p.dedicated = dedicated as u8;
        p.state = state as u8;
        p.restarts = restarts;
        p
    }

    #[test]
    fn ps_table_is_aligned_and_skips_holes() {
        let procs = [
            proc(1, "shell", 0, false, ProcState::Running, 0),
            ProcInfo::empty(),
            proc(12, "ipc-ping", 1, true, ProcState::Blocked, 3),
            proc(7, "a-sixteen-chars!", 0, false, ProcState::Faulted, 12),
            proc(0, "later", 2, true, ProcState::NotStarted, 0),
        ];
        let mut s = String::new();
        write_ps(&mut s, &procs).unwrap();
        assert_eq!(
            s,
            "PID  NAME              CORE  STATE      RESTARTS\n\
             \x20 1  shell             0     running           0\n\
             \x2012  ipc-ping          1*    blocked           3\n\
             \x20 7  a-sixteen-chars!  0     faulted          12\n\
             \x20 -  later             2*    unstarted         0\n"
        );
        let header: Vec<_> = s.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, PS_HEADER);
        assert!(s.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn unknown_states_show_their_number() {
        assert_eq!(state_cell(ProcState::Killed as u8), "killed");
        assert_eq!(state_cell(42), "?42");
    }

    #[test]
    fn stat_table() {
        let cpus = [
            CpuInfo {
                apic_id: 0,
                dedicated: 0,
                syscalls: 1234,
                interrupts: 5,
                ipis: 0,
                ticks: 99,
                switches: 10,
                idle_ns: 1_999_999,
            },
            CpuInfo {
                apic_id: 1,
                dedicated: 1,
                syscalls: 7,
                interrupts: 123_456,
                ipis: 2,
                ticks: 100,
                switches: 1,
                idle_ns: 750_000_000,
            },
        ];
        let mut s = String::new();
        write_stat(&mut s, &cpus, 1_000_999_999).unwrap();
        assert_eq!(
            s,
            "CPU  APIC  OWNER      SYSCALLS  INTERRUPTS  IPIS  TICKS  SWITCHES  IDLE_MS\n\
             \x20 0     0  shared         1234           5     0     99        10        1\n\
             \x20 1     1  dedicated         7      123456     2    100         1      750\n\
             uptime 1000 ms\n"
        );
    }

    #[test]
    fn calls_table_names_the_calls_taken() {
        let mut a = CpuCalls::default();
        a.counts[axolotl_abi::nr::WAIT as usize] = 340;
        a.counts[axolotl_abi::nr::NOTIFY as usize] = 2;
        a.counts[axolotl_abi::nr::CALLS - 1] = 1;
        let mut s = String::new();
        write_calls(&mut s, &[a, CpuCalls::default()]).unwrap();
        assert_eq!(
            s,
            "CPU  CALLS\n\
             \x20 0  wait=340 notify=2 other=1\n\
             \x20 1  -\n"
        );
    }

    #[test]
    fn empty_tables_have_a_header() {
        let mut s = String::new();
        write_ps(&mut s, &[]).unwrap();
        assert_eq!(s, "PID  NAME  CORE  STATE  RESTARTS\n");
    }
}
