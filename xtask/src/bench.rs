//! `cargo xtask bench`: the split network stack measured against a stock iperf3 (DESIGN.md §8).
//!
//! One boot of `tests/manifests/net.toml` (8 CPUs, release kernel) runs, through the guest shell:
//! `ps`, then `stat` and `ifconfig` around `iperf3 -c 10.0.2.2 -t S` (the guest sends) and
//! `iperf3 -c 10.0.2.2 -t S -R` (the guest receives). The peer is a stock `iperf3 -s` on port
//! 5201: inside the run's network namespace with `--net tap` (the default as root; see `netns`),
//! on the host's 127.0.0.1 with `--net user` (the fallback without root, which the results carry
//! as a WARNING). Each measurement gives the guest's own `iperf3: role=client dir=send|recv
//! bytes=N seconds=S gbps=G` line, and the differences of the kernel's per-CPU counters (`stat`)
//! and of the NIC's frame counters (`ifconfig`) give system calls and interrupts per 1,000
//! packets on the CPUs of the stack's servers. A second boot (`system.toml`, 4 CPUs) runs
//! `chanbench` for the channel-against-kernel-IPC figures.
//!
//! Rows exist for every layout of §8: `split`/`chan` measured; `--layout single` and
//! `--ipc kernel` printed as "not supported yet" with the reason, never with a number, until the
//! guest has them. Without the guest program `iperf3` in the manifest the bench fails before
//! booting anything.
//!
//! Output: a table on stdout, JSON (`--json PATH`, default `target/bench/results.json`) and a bar
//! chart, `target/bench/throughput.svg`, both written here by hand. The host's core count is
//! printed next to the guest CPUs the measurement keeps busy; with fewer host cores, emulated
//! CPUs contend, which handicaps the split layout, and the results say so.
//!
//! The same boot then runs the recovery phase ([`recovery`], unless `--no-recovery`): a stream
//! to a second stock server while the shell crashes ip every 2 s; its series, crashes and
//! per-crash dips go into the table, the JSON (`"recovery"`) and `target/bench/recovery.svg`.

pub mod recovery;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axolotl_tests::{BootResult, ExecReport, PsRow, transcript};

use crate::args::{self, Accel, BenchArgs, Firmware, Net, Nic};
use crate::qemu::{self, Boot, Console, Echo, Machine, RunOptions};
use crate::{Error, exec, host, images, netns};

/// The manifest of the measured boot, relative to the workspace root.
pub const NET_MANIFEST: &str = axolotl_tests::NET_MANIFEST;
/// The guest program that moves the traffic: a process of this name in [`NET_MANIFEST`].
pub const GUEST_IPERF3: &str = "iperf3";
/// The port of the iperf3 server (iperf3's default, which the guest uses).
pub const IPERF3_PORT: u16 = 5201;
/// The address the guest reaches the server at: the namespace's end of the TAP device, or QEMU's
/// user-networking host alias of 127.0.0.1.
pub const SERVER_ADDRESS: &str = "10.0.2.2";
/// Virtual CPUs of the measured boot: the five stack servers on dedicated CPUs, the shared ones.
pub const NET_SMP: u32 = 8;
/// Virtual CPUs of the chanbench boot (bench-a and bench-b dedicated).
pub const CHANBENCH_SMP: u32 = 4;
/// The processes of the split stack, whose CPUs' counters are charged to the packets.
pub const STACK: [&str; 5] = ["e1000", "pf", "ip", "udp", "tcp"];
/// Header of the guest's `stat` table.
pub const STAT_HEADER: [&str; 8] = [
    "CPU",
    "APIC",
    "OWNER",
    "SYSCALLS",
    "INTERRUPTS",
    "IPIS",
    "TICKS",
    "SWITCHES",
];
/// Why `--ipc kernel` has no figures.
pub const IPC_KERNEL_MISSING: &str = "--ipc kernel (the stack servers e1000, pf, ip, udp and tcp do not read ipc=kernel yet: \
     they always talk over channels)";
/// Limit of the chanbench boot's waits.
const CHANBENCH_STEP: Duration = Duration::from_secs(300);

/// The direction of a measurement, from the guest's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The guest sends (`iperf3 -c`).
    Send,
    /// The guest receives (`iperf3 -c ... -R`).
    Recv,
}

impl Dir {
    /// `send` or `recv`, as in the iperf3 line and the JSON.
    pub fn word(self) -> &'static str {
        match self {
            Dir::Send => "send",
            Dir::Recv => "recv",
        }
    }
}

/// The guest's summary line `iperf3: role=client dir=send bytes=N seconds=S gbps=G`.
#[derive(Debug, Clone, PartialEq)]
pub struct Iperf3Line {
    /// `client` or `server`.
    pub role: String,
    /// Direction from the guest's side.
    pub dir: Dir,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Gigabits per second, as the guest computed it.
    pub gbps: f64,
}

/// The last `iperf3: role=...` line of `output` (kernel-log prefixes before it are allowed).
pub fn parse_iperf3(output: &str) -> Result<Iperf3Line, String> {
    const MARK: &str = "iperf3: role=";
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.find(MARK).map(|at| &l[at + "iperf3: ".len()..]))
        .ok_or("no 'iperf3: role=... dir=... bytes=... seconds=... gbps=...' line")?;
    let value = |key: &str| {
        line.split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| format!("the iperf3 line has no '{key}=': {line}"))
    };
    let number = |key: &str| -> Result<f64, String> {
        let v = value(key)?;
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("'{key}={v}' of the iperf3 line is not a number >= 0"))
    };
    let dir = match value("dir")? {
        "send" => Dir::Send,
        "recv" => Dir::Recv,
        other => return Err(format!("'dir={other}' of the iperf3 line is not send|recv")),
    };
    let bytes = value("bytes")?;
    Ok(Iperf3Line {
        role: value("role")?.to_string(),
        dir,
        bytes: bytes
            .parse()
            .map_err(|_| format!("'bytes={bytes}' of the iperf3 line is not a whole number"))?,
        seconds: number("seconds")?,
        gbps: number("gbps")?,
    })
}

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
}

/// The rows of the last `stat` table in `output`; kernel log lines between rows are skipped.
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
        })
    };
    Some(lines[header + 1..].iter().filter_map(row).collect())
}

/// The NIC's received and sent frame counts from `ifconfig` (`rx frames=N ...`, `tx frames=N`).
pub fn parse_nic_frames(output: &str) -> Option<(u64, u64)> {
    let frames = |dir: &str| {
        output.lines().rev().find_map(|l| {
            l.trim_start()
                .strip_prefix(dir)?
                .strip_prefix(" frames=")?
                .split_ascii_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    Some((frames("rx")?, frames("tx")?))
}

/// Sums of system calls and interrupts on `cpus` between two `stat` tables.
pub fn counter_delta(before: &[CpuCounters], after: &[CpuCounters], cpus: &[u32]) -> (u64, u64) {
    let find = |t: &[CpuCounters], cpu| t.iter().find(|c| c.cpu == cpu).cloned();
    let mut sum = (0, 0);
    for &cpu in cpus {
        if let (Some(b), Some(a)) = (find(before, cpu), find(after, cpu)) {
            sum.0 += a.syscalls.saturating_sub(b.syscalls);
            sum.1 += a.interrupts.saturating_sub(b.interrupts);
        }
    }
    sum
}

/// `count` per 1,000 `packets` (`None` when no packet moved).
pub fn per_1k(count: u64, packets: u64) -> Option<f64> {
    (packets > 0).then(|| count as f64 * 1000.0 / packets as f64)
}

/// Which stack server runs on which CPU.
pub type Placement = Vec<(String, u32)>;

/// The distinct CPUs of the stack's servers in a `ps` table, and which server is on which.
pub fn stack_cpus(rows: &[PsRow]) -> Result<(Vec<u32>, Placement), String> {
    let mut placed = Vec::new();
    for name in STACK {
        let row = rows
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("ps does not list the stack server '{name}'"))?;
        placed.push((name.to_string(), row.cpu));
    }
    let mut cpus: Vec<u32> = placed.iter().map(|(_, c)| *c).collect();
    cpus.sort_unstable();
    cpus.dedup();
    Ok((cpus, placed))
}

/// What one measurement found.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The guest's iperf3 line.
    pub iperf3: Iperf3Line,
    /// Frames through the NIC (received and sent) during it.
    pub packets: u64,
    /// System calls on the stack's CPUs during it.
    pub syscalls: u64,
    /// Interrupts on the stack's CPUs during it.
    pub interrupts: u64,
}

/// The figures of a row: measured, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum Figures {
    /// Measured in this run.
    Measured(Measured),
    /// Not measured: the guest lacks what the row needs (the reason says what).
    NotSupported(String),
}

/// One row of the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `split` or `single`.
    pub layout: &'static str,
    /// `chan` or `kernel`.
    pub ipc: &'static str,
    /// Direction, from the guest's side.
    pub dir: Dir,
    /// What was found.
    pub figures: Figures,
}

impl Row {
    /// Gigabits per second, when measured.
    pub fn gbps(&self) -> Option<f64> {
        match &self.figures {
            Figures::Measured(m) => Some(m.iperf3.gbps),
            Figures::NotSupported(_) => None,
        }
    }

    /// System calls per 1,000 packets on the stack's CPUs, when measured and packets moved.
    pub fn syscalls_per_1k(&self) -> Option<f64> {
        match &self.figures {
            Figures::Measured(m) => per_1k(m.syscalls, m.packets),
            Figures::NotSupported(_) => None,
        }
    }

    /// Interrupts per 1,000 packets on the stack's CPUs, when measured and packets moved.
    pub fn interrupts_per_1k(&self) -> Option<f64> {
        match &self.figures {
            Figures::Measured(m) => per_1k(m.interrupts, m.packets),
            Figures::NotSupported(_) => None,
        }
    }
}

/// The `chanbench:` line's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Chanbench {
    /// Messages per second over a channel.
    pub chan_msgs_per_s: f64,
    /// Messages per second over kernel IPC.
    pub kernel_msgs_per_s: f64,
    /// Channel throughput over kernel IPC throughput.
    pub throughput_ratio: f64,
    /// Round trip over a channel, ns.
    pub chan_rtt_ns: f64,
    /// Round trip over kernel IPC, ns.
    pub kernel_rtt_ns: f64,
    /// Kernel IPC round trip over channel round trip.
    pub rtt_ratio: f64,
    /// System calls per 1,000 channel messages.
    pub chan_syscalls_per_1k: f64,
}

/// The keys of the `chanbench:` line, in [`Chanbench`]'s order.
const CHANBENCH_KEYS: [&str; 7] = [
    "chan_msgs_per_s",
    "kernel_msgs_per_s",
    "throughput_ratio",
    "chan_rtt_ns",
    "kernel_rtt_ns",
    "rtt_ratio",
    "chan_syscalls_per_1k",
];

/// The figures of the last `chanbench: ...` line of `output`.
pub fn parse_chanbench(output: &str) -> Result<Chanbench, String> {
    let mut v = [0.0f64; 7];
    for (slot, key) in v.iter_mut().zip(CHANBENCH_KEYS) {
        let text = transcript::summary_value(output, "chanbench:", key)
            .ok_or_else(|| format!("no 'chanbench: ... {key}=..' line"))?;
        *slot = text
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("'{key}={text}' of the chanbench line is not a number"))?;
    }
    Ok(Chanbench {
        chan_msgs_per_s: v[0],
        kernel_msgs_per_s: v[1],
        throughput_ratio: v[2],
        chan_rtt_ns: v[3],
        kernel_rtt_ns: v[4],
        rtt_ratio: v[5],
        chan_syscalls_per_1k: v[6],
    })
}

/// Everything one `bench` run found.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// How the guest reached the server.
    pub net: Net,
    /// Said in the table and the JSON when the figures are not the ones asked for (user
    /// networking instead of tap).
    pub warning: Option<String>,
    /// Seconds per measurement.
    pub seconds: u32,
    /// Cores of the host.
    pub host_cores: usize,
    /// Virtual CPUs of the measured guest.
    pub guest_cpus: u32,
    /// Guest CPUs the measurement keeps busy: the stack's and one for the application.
    pub busy_guest_cpus: usize,
    /// Which stack server ran on which CPU.
    pub placement: Placement,
    /// The rows, measured and not.
    pub rows: Vec<Row>,
    /// chanbench's figures.
    pub chanbench: Chanbench,
    /// The recovery phase (`None`: skipped with `--no-recovery`).
    pub recovery: Option<recovery::Recovery>,
}

impl Results {
    /// The plain statement about host cores against busy guest CPUs, when they contend.
    pub fn contention(&self) -> Option<String> {
        (self.host_cores < self.busy_guest_cpus).then(|| {
            format!(
                "the host has {} cores for {} busy guest CPUs: emulated CPUs contend for host \
                 cores, so the split layout (a CPU per server) is handicapped here",
                self.host_cores, self.busy_guest_cpus
            )
        })
    }
}

/// Why the single layout has no figures yet.
pub const SINGLE_NOT_MEASURED: &str = "--layout single is not booted by the bench yet (the netstack exists: cargo xtask run --layout single)";

/// The rows for the layouts the guest does not have yet: named, with the reason, no figures.
pub fn unsupported_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (layout, ipc, why) in [
        ("single", "chan", SINGLE_NOT_MEASURED),
        ("split", "kernel", IPC_KERNEL_MISSING),
    ] {
        for dir in [Dir::Send, Dir::Recv] {
            rows.push(Row {
                layout,
                ipc,
                dir,
                figures: Figures::NotSupported(why.to_string()),
            });
        }
    }
    rows
}

/// Which network to measure over, and the warning the results carry: `--net tap` needs root;
/// without `--net`, tap as root, else user networking with a warning.
pub fn choose_net(asked: Option<Net>, root: bool) -> Result<(Net, Option<String>), String> {
    match (asked, root) {
        (Some(Net::Tap), false) => Err("bench --net tap needs root: it creates a network \
             namespace and a TAP device (ip netns add, ip tuntap add). Run it as root (for \
             example sudo -E cargo xtask bench), or use --net user"
            .to_string()),
        (Some(Net::Tap), true) | (None, true) => Ok((Net::Tap, None)),
        (Some(Net::User), _) => Ok((
            Net::User,
            Some(
                "measured over QEMU user networking (--net user), not a TAP device: QEMU's \
                 slirp copies every byte and limits throughput; these figures do not compare \
                 with TAP ones"
                    .to_string(),
            ),
        )),
        (None, false) => Ok((
            Net::User,
            Some(
                "not root, so measured over QEMU user networking (--net user) instead of a TAP \
                 device: QEMU's slirp copies every byte and limits throughput; run as root for \
                 the TAP figures"
                    .to_string(),
            ),
        )),
        (Some(Net::None), _) => Err("bench needs a network: --net tap or --net user".into()),
    }
}

/// The commands typed into the guest shell for `seconds`-second measurements. The indices of
/// [`ps`, `stat` before send, ...] are fixed: see [`NetOutputs::from_report`].
pub fn guest_commands(seconds: u32) -> Vec<String> {
    let send = format!("iperf3 -c {SERVER_ADDRESS} -t {seconds}");
    let recv = format!("{send} -R");
    [
        "sleep 2", "ps", "stat", "ifconfig", &send, "stat", "ifconfig", &recv, "stat", "ifconfig",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect()
}

/// The outputs of [`guest_commands`] by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOutputs {
    /// `ps`.
    pub ps: String,
    /// `stat` before, after send, after receive.
    pub stat: [String; 3],
    /// `ifconfig` before, after send, after receive.
    pub ifconfig: [String; 3],
    /// `iperf3` sending, receiving.
    pub iperf3: [String; 2],
}

impl NetOutputs {
    /// Takes the outputs from the exec session's report; `Err` when a command did not run.
    pub fn from_report(report: &ExecReport, commands: &[String]) -> Result<Self, String> {
        let out = |i: usize| -> Result<String, String> {
            match report.commands.get(i) {
                Some(c) if c.command == commands[i] => Ok(c.output.clone()),
                _ => Err(format!("command '{}' was not run", commands[i])),
            }
        };
        Ok(Self {
            ps: out(1)?,
            stat: [out(2)?, out(5)?, out(8)?],
            ifconfig: [out(3)?, out(6)?, out(9)?],
            iperf3: [out(4)?, out(7)?],
        })
    }

    /// The two measured rows and where the stack ran.
    pub fn measure(&self) -> Result<Measurement, String> {
        let ps = axolotl_tests::shell::parse_ps(&self.ps)
            .ok_or("no 'PID NAME CORE STATE RESTARTS' table in the output of 'ps'")?;
        let (cpus, placed) = stack_cpus(&ps)?;
        let stats = self
            .stat
            .iter()
            .map(|s| parse_stat(s).ok_or_else(|| format!("no stat table in:\n{s}")))
            .collect::<Result<Vec<_>, String>>()?;
        let frames = self
            .ifconfig
            .iter()
            .map(|s| {
                parse_nic_frames(s)
                    .ok_or_else(|| format!("no 'rx frames=' / 'tx frames=' in:\n{s}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut rows = Vec::new();
        for (i, dir) in [Dir::Send, Dir::Recv].into_iter().enumerate() {
            let line = parse_iperf3(&self.iperf3[i])
                .map_err(|e| format!("{} measurement: {e}", dir.word()))?;
            if line.role != "client" || line.dir != dir {
                return Err(format!(
                    "the {} measurement printed role={} dir={}, expected role=client dir={}",
                    dir.word(),
                    line.role,
                    line.dir.word(),
                    dir.word()
                ));
            }
            let (syscalls, interrupts) = counter_delta(&stats[i], &stats[i + 1], &cpus);
            let (rx0, tx0) = frames[i];
            let (rx1, tx1) = frames[i + 1];
            let packets = rx1.saturating_sub(rx0) + tx1.saturating_sub(tx0);
            rows.push(Row {
                layout: "split",
                ipc: "chan",
                dir,
                figures: Figures::Measured(Measured {
                    iperf3: line,
                    packets,
                    syscalls,
                    interrupts,
                }),
            });
        }
        Ok(Measurement {
            rows,
            cpus,
            placement: placed,
        })
    }
}

/// What the measured boot gave: its rows and where the stack ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The `split`/`chan` rows, send then receive.
    pub rows: Vec<Row>,
    /// The distinct CPUs of the stack's servers.
    pub cpus: Vec<u32>,
    /// Which server ran on which CPU.
    pub placement: Placement,
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.decimals$}"))
}

/// The results table printed on stdout.
pub fn table(r: &Results) -> String {
    let mut t = String::new();
    let net = if r.net == Net::Tap { "tap" } else { "user" };
    let _ = writeln!(
        t,
        "cargo xtask bench: split stack (tests/manifests/net.toml), {} guest CPUs, --net {net}, \
         {} s per measurement, peer: stock iperf3 -s at {SERVER_ADDRESS}:{IPERF3_PORT}",
        r.guest_cpus, r.seconds
    );
    if let Some(w) = &r.warning {
        let _ = writeln!(t, "WARNING: {w}");
    }
    let _ = writeln!(
        t,
        "{:<7} {:<7} {:<5} {:>8} {:>17} {:>19} {:>10}",
        "layout", "ipc", "dir", "Gbps", "syscalls/1k pkts", "interrupts/1k pkts", "packets"
    );
    for row in &r.rows {
        let head = format!("{:<7} {:<7} {:<5}", row.layout, row.ipc, row.dir.word());
        match &row.figures {
            Figures::Measured(m) => {
                let _ = writeln!(
                    t,
                    "{head} {:>8.3} {:>17} {:>19} {:>10}",
                    m.iperf3.gbps,
                    opt(row.syscalls_per_1k(), 1),
                    opt(row.interrupts_per_1k(), 1),
                    m.packets
                );
            }
            Figures::NotSupported(why) => {
                let _ = writeln!(t, "{head} not supported yet: {why}");
            }
        }
    }
    let c = &r.chanbench;
    let _ = writeln!(
        t,
        "chanbench (system.toml, {CHANBENCH_SMP} CPUs): channel {:.0} msgs/s, kernel IPC {:.0} \
         msgs/s ({:.1}x); round trip {:.0} ns against {:.0} ns ({:.1}x); {:.3} syscalls per \
         1,000 channel messages",
        c.chan_msgs_per_s,
        c.kernel_msgs_per_s,
        c.throughput_ratio,
        c.chan_rtt_ns,
        c.kernel_rtt_ns,
        c.rtt_ratio,
        c.chan_syscalls_per_1k
    );
    let placed: Vec<String> = r
        .placement
        .iter()
        .map(|(n, c)| format!("{n} cpu{c}"))
        .collect();
    let _ = writeln!(
        t,
        "host cores: {}; busy guest CPUs: {} ({}, and one for the application)",
        r.host_cores,
        r.busy_guest_cpus,
        placed.join(", ")
    );
    if let Some(note) = r.contention() {
        let _ = writeln!(t, "NOTE: {note}");
    }
    match &r.recovery {
        Some(rec) => t.push_str(&recovery::table(rec)),
        None => t.push_str("recovery: not measured (--no-recovery)\n"),
    }
    t
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (or `null` when absent or not finite).
fn json_number(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            let s = format!("{x:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() || s == "-" {
                "0".to_string()
            } else {
                s.to_string()
            }
        }
        _ => "null".to_string(),
    }
}

/// The results as JSON: the conditions, the warning, one object per row (layout, ipc, dir,
/// gbps, syscalls_per_1k_pkts, ...) and chanbench's figures.
pub fn json(r: &Results) -> String {
    let mut j = String::from("{\n");
    let net = if r.net == Net::Tap { "tap" } else { "user" };
    let _ = writeln!(j, "  \"tool\": \"cargo xtask bench\",");
    let _ = writeln!(j, "  \"net\": {},", json_string(net));
    let _ = writeln!(
        j,
        "  \"warning\": {},",
        r.warning.as_deref().map_or("null".into(), json_string)
    );
    let _ = writeln!(j, "  \"seconds_per_measurement\": {},", r.seconds);
    let _ = writeln!(j, "  \"host_cores\": {},", r.host_cores);
    let _ = writeln!(j, "  \"guest_cpus\": {},", r.guest_cpus);
    let _ = writeln!(j, "  \"busy_guest_cpus\": {},", r.busy_guest_cpus);
    let _ = writeln!(
        j,
        "  \"contention\": {},",
        r.contention().as_deref().map_or("null".into(), json_string)
    );
    j.push_str("  \"rows\": [\n");
    for (i, row) in r.rows.iter().enumerate() {
        let mut fields = vec![
            format!("\"layout\": {}", json_string(row.layout)),
            format!("\"ipc\": {}", json_string(row.ipc)),
            format!("\"dir\": {}", json_string(row.dir.word())),
            format!("\"gbps\": {}", json_number(row.gbps())),
            format!(
                "\"syscalls_per_1k_pkts\": {}",
                json_number(row.syscalls_per_1k())
            ),
            format!(
                "\"interrupts_per_1k_pkts\": {}",
                json_number(row.interrupts_per_1k())
            ),
        ];
        match &row.figures {
            Figures::Measured(m) => {
                fields.push("\"status\": \"measured\"".to_string());
                fields.push(format!("\"packets\": {}", m.packets));
                fields.push(format!("\"bytes\": {}", m.iperf3.bytes));
                fields.push(format!(
                    "\"seconds\": {}",
                    json_number(Some(m.iperf3.seconds))
                ));
            }
            Figures::NotSupported(why) => {
                fields.push("\"status\": \"not supported yet\"".to_string());
                fields.push(format!("\"reason\": {}", json_string(why)));
            }
        }
        let comma = if i + 1 < r.rows.len() { "," } else { "" };
        let _ = writeln!(j, "    {{{}}}{comma}", fields.join(", "));
    }
    j.push_str("  ],\n");
    let c = &r.chanbench;
    let values = [
        c.chan_msgs_per_s,
        c.kernel_msgs_per_s,
        c.throughput_ratio,
        c.chan_rtt_ns,
        c.kernel_rtt_ns,
        c.rtt_ratio,
        c.chan_syscalls_per_1k,
    ];
    let fields: Vec<String> = CHANBENCH_KEYS
        .iter()
        .zip(values)
        .map(|(k, v)| format!("\"{k}\": {}", json_number(Some(v))))
        .collect();
    let _ = writeln!(j, "  \"chanbench\": {{{}}},", fields.join(", "));
    let _ = writeln!(
        j,
        "  \"recovery\": {}",
        r.recovery.as_ref().map_or("null".into(), recovery::json)
    );
    j.push_str("}\n");
    j
}

/// `s` escaped for SVG text.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of the rows' throughput: one bar per measured row, scaled to the
/// largest; rows not supported yet say so in grey instead of a bar.
pub fn svg(r: &Results) -> String {
    const WIDTH: usize = 760;
    const LABEL: usize = 170;
    const BAR_MAX: usize = 400;
    const ROW_H: usize = 30;
    let top = if r.warning.is_some() { 70 } else { 50 };
    let height = top + ROW_H * r.rows.len() + 40;
    let max = r.rows.iter().filter_map(Row::gbps).fold(0.0f64, f64::max);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"13\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{WIDTH}\" height=\"{height}\" fill=\"white\"/>"
    );
    let net = if r.net == Net::Tap { "tap" } else { "user" };
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        xml(&format!(
            "Axolotl TCP throughput (Gbps), --net {net}, {} s per run, host cores {} / busy \
             guest CPUs {}",
            r.seconds, r.host_cores, r.busy_guest_cpus
        ))
    );
    if let Some(w) = &r.warning {
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"46\" fill=\"#b00000\">{}</text>",
            xml(&format!("WARNING: {w}"))
        );
    }
    for (i, row) in r.rows.iter().enumerate() {
        let y = top + i * ROW_H;
        let label = format!("{} / {} / {}", row.layout, row.ipc, row.dir.word());
        let _ = writeln!(s, "<text x=\"10\" y=\"{}\">{}</text>", y + 17, xml(&label));
        match &row.figures {
            Figures::Measured(m) => {
                let w = if max > 0.0 {
                    ((m.iperf3.gbps / max) * BAR_MAX as f64).round() as usize
                } else {
                    0
                }
                .max(1);
                let colour = if row.dir == Dir::Send {
                    "#2f6db5"
                } else {
                    "#3a9b5c"
                };
                let _ = writeln!(
                    s,
                    "<rect x=\"{LABEL}\" y=\"{}\" width=\"{w}\" height=\"20\" fill=\"{colour}\"/>",
                    y + 3
                );
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\">{}</text>",
                    LABEL + w + 6,
                    y + 17,
                    xml(&format!(
                        "{:.3} Gbps, {} syscalls/1k pkts",
                        m.iperf3.gbps,
                        opt(row.syscalls_per_1k(), 1)
                    ))
                );
            }
            Figures::NotSupported(_) => {
                let _ = writeln!(
                    s,
                    "<text x=\"{LABEL}\" y=\"{}\" fill=\"#888888\" font-style=\"italic\">not \
                     supported yet</text>",
                    y + 17
                );
            }
        }
    }
    let c = &r.chanbench;
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"{}\" fill=\"#444444\">{}</text>",
        top + ROW_H * r.rows.len() + 22,
        xml(&format!(
            "chanbench: channels {:.1}x kernel IPC throughput, {:.1}x faster round trips, {:.3} \
             syscalls per 1k msgs",
            c.throughput_ratio, c.rtt_ratio, c.chan_syscalls_per_1k
        ))
    );
    s.push_str("</svg>\n");
    s
}

/// Fails unless the manifest at `path` has the guest program [`GUEST_IPERF3`].
fn require_guest_iperf3(path: &Path) -> Result<(), Error> {
    let known = crate::programs::discover(&images::workspace_root())?;
    let manifest = images::load_manifest(path, &known)?;
    if manifest
        .processes
        .iter()
        .any(|p| p.name == GUEST_IPERF3 || p.binary == GUEST_IPERF3)
    {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "bench measures nothing: the guest program '{GUEST_IPERF3}' is not in {} (the benchmark \
         needs it: the shell runs 'iperf3 -c {SERVER_ADDRESS} -t S' and '... -R' and reads its \
         'iperf3: role=client dir=send|recv bytes=N seconds=S gbps=G' line). Add it to the \
         manifest as an on-demand process first",
        images::manifest_display(path)
    )))
}

/// The host's `iperf3`, installed with apt-get when missing and root.
fn host_iperf3(root: bool) -> Result<PathBuf, Error> {
    if let Some(p) = host::find_in_path("iperf3") {
        return Ok(p);
    }
    if !root {
        return Err(Error::Failed(
            "bench needs a stock iperf3 on the host as the peer, and it is not installed: \
             install it with: sudo apt-get install iperf3"
                .into(),
        ));
    }
    if host::find_in_path("apt-get").is_none() {
        return Err(Error::Failed(
            "bench needs iperf3 on the host and apt-get is not available: install iperf3 with \
             this system's package manager"
                .into(),
        ));
    }
    for args in [&["update"][..], &["install", "-y", "iperf3"][..]] {
        eprintln!("running: apt-get {}", args.join(" "));
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| Error::Failed(format!("could not run apt-get: {e}")))?;
        if !status.success() {
            return Err(Error::Failed(format!(
                "apt-get {} failed ({status})",
                args.join(" ")
            )));
        }
    }
    host::find_in_path("iperf3").ok_or_else(|| {
        Error::Failed("iperf3 is still not in PATH after apt-get install iperf3".into())
    })
}

/// The iperf3 server, killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    /// The arguments of a server: `-s` on `port`, its output flushed line by line (so that its
    /// log says when it listens), then `extra`.
    fn args_on(port: u16, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            "-s".to_string(),
            "-p".to_string(),
            port.to_string(),
            "--forceflush".to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Starts `cmd` (an `iperf3 -s`) with its output in `log` and waits until it listens.
    fn start(mut cmd: Command, log: PathBuf) -> Result<Self, Error> {
        let cmd_line = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let file = std::fs::File::create(&log)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", log.display())))?;
        let err = file
            .try_clone()
            .map_err(|e| Error::Failed(format!("cannot use {}: {e}", log.display())))?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        crate::sys::detach_and_tie_to_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| Error::Failed(format!("could not start iperf3 -s: {e}")))?;
        let mut server = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            if text.contains("Server listening") {
                return Ok(server);
            }
            let exited = server.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                return Err(Error::Failed(format!(
                    "{} did not start listening{}: {}",
                    cmd_line,
                    exited.map_or(" within 10 s".to_string(), |s| format!(" ({s})")),
                    text.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        crate::sys::kill_process_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the programs of `manifest` and the BIOS image of the boot `name` (in
/// `target/axolotl/NAME/`); returns the image.
fn prepare(kernel: &Path, name: &str, manifest: &Path) -> Result<PathBuf, Error> {
    let payload = images::payload(manifest)?;
    let dir = images::out_dir().join(name);
    let modules = images::ramdisk_modules(args::DEFAULT_CMDLINE, Some(&payload));
    Ok(images::make_images(kernel, &dir, &modules, &[Firmware::Bios])?.remove(0))
}

/// Boots `image` (made by [`prepare`] for `name`) with `smp` CPUs and types the commands of
/// `plan`; QEMU runs inside `ns` when given. Returns the boot and where its
/// transcript is.
fn boot(
    tools: &host::Tools,
    image: PathBuf,
    name: &str,
    smp: u32,
    net: Net,
    plan: exec::Plan,
    ns: Option<&netns::Namespace>,
) -> BootResult {
    let machine = Machine {
        image,
        smp,
        mem_mib: args::DEFAULT_MEM_MIB,
        boot: Boot::Bios,
        accel: Accel::Tcg,
        net,
        nic: Nic::E1000,
        console: Console::Stdio,
        fwd: Vec::new(),
        qmp: None,
    };
    // Every wait (first prompt, each command, power-off) at its limit, and a margin.
    let steps = plan.commands.len() as u32 + 3;
    let opts = RunOptions {
        timeout: Some(plan.step_timeout * steps),
        inherit_stdin: false,
        echo: Echo::Prefixed(name.to_string()),
        exec: Some(plan),
        screendump: None,
    };
    let qemu_args = qemu::qemu_args(&machine);
    let (program, qemu_args) = match ns {
        Some(ns) => ns.wrap(&tools.qemu, &qemu_args),
        None => (tools.qemu.clone(), qemu_args),
    };
    eprintln!("running: {} {}", program.display(), qemu_args.join(" "));
    let r = qemu::run(&program, &qemu_args, &opts);
    let _ = std::fs::write(transcript_path(name), &r.transcript);
    r
}

/// Where the transcript of the boot `name` is kept.
fn transcript_path(name: &str) -> PathBuf {
    images::out_dir().join(name).join("transcript.txt")
}

/// Why a boot's session failed, with the end of its transcript.
fn session_failed(what: &str, r: &BootResult, why: &str, path: &Path) -> Error {
    Error::Failed(format!(
        "{what}: {why}\ntranscript (last 25 lines; all of it in {}):\n{}",
        path.display(),
        transcript::tail(&r.transcript, 25)
    ))
}

/// `cargo xtask bench`.
pub fn bench(a: &BenchArgs) -> Result<u8, Error> {
    let root = host::is_root();
    let (net, warning) = choose_net(a.net, root).map_err(Error::Failed)?;
    if let Some(w) = &warning {
        eprintln!("WARNING: {w}");
    }
    let manifest = images::workspace_root().join(NET_MANIFEST);
    require_guest_iperf3(&manifest)?;
    let iperf3 = host_iperf3(root)?;
    if net == Net::Tap {
        netns::check_host("bench --net tap")?;
    } else {
        let mut ports = vec![IPERF3_PORT];
        if a.recovery_seconds > 0 {
            ports.push(recovery::RECOVERY_PORT);
        }
        for port in ports {
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return Err(Error::Failed(format!(
                    "bench --net user runs iperf3 -s on 127.0.0.1:{port}, which is taken \
                     ({e}): stop what listens there"
                )));
            }
        }
    }
    let tools = host::ensure_tools(false)?;
    let kernel = images::build_kernel(true)?;
    let out_dir = images::target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| Error::Failed(format!("cannot create {}: {e}", out_dir.display())))?;

    // Both images first, so that the namespace and the server live only while QEMU does.
    let system = images::default_manifest();
    let net_image = prepare(&kernel, "bench-net", &manifest)?;
    let chan_image = prepare(&kernel, "bench-chanbench", &system)?;

    // The measured boot. `ns` is declared before the servers, so they are killed first and
    // the namespace removed after them, on every return.
    let seconds = a.seconds;
    let rec_seconds = a.recovery_seconds;
    let step = Duration::from_secs(u64::from(seconds.max(rec_seconds)) + 60);
    eprintln!(
        "bench: booting the split stack ({NET_SMP} CPUs, --net {}) for two {seconds} s \
         measurements{}...",
        if net == Net::Tap { "tap" } else { "user" },
        if rec_seconds > 0 {
            format!(
                " and a {rec_seconds} s stream with 'crash {}' every {} s",
                recovery::CRASH_TARGET,
                recovery::CRASH_EVERY_S
            )
        } else {
            String::new()
        }
    );
    let ns = match net {
        Net::Tap => Some(netns::Namespace::create("bench --net tap")?),
        _ => None,
    };
    let server_cmd = |port: u16, extra: &[&str]| match &ns {
        Some(ns) => ns.command(&iperf3, &Server::args_on(port, extra)),
        None => {
            let mut c = Command::new(&iperf3);
            c.args(Server::args_on(port, extra));
            c.args(["-B", "127.0.0.1"]);
            c
        }
    };
    let server_log = out_dir.join("iperf3-server.log");
    let server = Server::start(server_cmd(IPERF3_PORT, &[]), server_log.clone())?;
    let rec_log = out_dir.join("iperf3-recovery-server.log");
    let rec_server = if rec_seconds > 0 {
        Some(Server::start(
            server_cmd(recovery::RECOVERY_PORT, &recovery::SERVER_EXTRA),
            rec_log.clone(),
        )?)
    } else {
        None
    };
    let mut commands = guest_commands(seconds);
    let measured = commands.len();
    if rec_seconds > 0 {
        commands.extend(recovery::guest_commands(rec_seconds));
    }
    let r = boot(
        &tools,
        net_image,
        "bench-net",
        NET_SMP,
        net,
        exec::Plan {
            commands: commands.clone(),
            step_timeout: step,
        },
        ns.as_ref(),
    );
    drop(server);
    drop(rec_server);
    drop(ns);
    let path = transcript_path("bench-net");
    let verdict = r.exec_verdict();
    let report = r.exec.as_ref().ok_or_else(|| {
        session_failed("bench", &r, "the guest shell session left no report", &path)
    })?;
    // A failure in the recovery phase leaves the measurements before it standing: it is
    // reported with the recovery figures.
    let in_recovery = rec_seconds > 0 && report.commands.len() > measured;
    if let Err(why) = &verdict
        && !in_recovery
    {
        let why = format!(
            "{why} (the iperf3 server's output is in {})",
            server_log.display()
        );
        return Err(session_failed(
            "bench: the measured boot failed",
            &r,
            &why,
            &path,
        ));
    }
    let Measurement {
        mut rows,
        cpus,
        placement,
    } = NetOutputs::from_report(report, &commands)
        .and_then(|o| o.measure())
        .map_err(|why| session_failed("bench: cannot read the measurement", &r, &why, &path))?;
    rows.extend(unsupported_rows());
    let recovery = (rec_seconds > 0).then(|| {
        let stream = recovery::stream_command(rec_seconds);
        let guest = r
            .transcript
            .rfind(&stream)
            .map_or("", |at| &r.transcript[at + stream.len()..]);
        let server_text = std::fs::read_to_string(&rec_log).unwrap_or_default();
        let jobs = report
            .commands
            .get(commands.len() - 1)
            .filter(|c| c.command == "jobs")
            .map(|c| c.output.as_str());
        recovery::Recovery::assemble(
            rec_seconds,
            &server_text,
            recovery::parse_guest(guest),
            jobs,
            verdict.err(),
        )
    });

    eprintln!("bench: booting system.toml ({CHANBENCH_SMP} CPUs) for chanbench...");
    let r = boot(
        &tools,
        chan_image,
        "bench-chanbench",
        CHANBENCH_SMP,
        Net::None,
        exec::Plan {
            commands: vec!["chanbench".to_string()],
            step_timeout: CHANBENCH_STEP,
        },
        None,
    );
    let path = transcript_path("bench-chanbench");
    r.exec_verdict()
        .map_err(|why| session_failed("bench: the chanbench boot failed", &r, &why, &path))?;
    let chanbench = parse_chanbench(r.output_of("chanbench").map_err(Error::Failed)?)
        .map_err(|why| session_failed("bench: chanbench", &r, &why, &path))?;

    let results = Results {
        net,
        warning,
        seconds,
        host_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        guest_cpus: NET_SMP,
        busy_guest_cpus: cpus.len() + 1,
        placement,
        rows,
        chanbench,
        recovery,
    };
    print!("{}", table(&results));
    let json_path = a
        .json
        .clone()
        .unwrap_or_else(|| out_dir.join("results.json"));
    let svg_path = out_dir.join("throughput.svg");
    images::write_atomically(&json_path, json(&results).as_bytes())?;
    images::write_atomically(&svg_path, svg(&results).as_bytes())?;
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    if let Some(rec) = &results.recovery {
        let rec_svg = out_dir.join("recovery.svg");
        let subtitle = format!(
            "--net {}, {} s stream: guest iperf3 -c -i {} -> stock iperf3 -s -i {}; host cores \
             {}, busy guest CPUs {}",
            if net == Net::Tap { "tap" } else { "user" },
            rec.seconds,
            recovery::INTERVAL_ARG,
            recovery::INTERVAL_ARG,
            results.host_cores,
            results.busy_guest_cpus
        );
        images::write_atomically(&rec_svg, recovery::svg(rec, &subtitle).as_bytes())?;
        println!(
            "wrote {} (the recovery server's output is in {})",
            rec_svg.display(),
            rec_log.display()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_tests::{CommandOutput, ExecReport};

    #[test]
    fn iperf3_lines_parse_and_bad_ones_are_refused() {
        let out = "Connecting to host 10.0.2.2, port 5201\n\
                   [cpu3] iperf3: iperf3: role=client dir=send bytes=1000 seconds=1 gbps=0.000008\n\
                   iperf3: role=client dir=send bytes=125000000 seconds=10.00 gbps=0.100\n";
        assert_eq!(
            parse_iperf3(out),
            Ok(Iperf3Line {
                role: "client".into(),
                dir: Dir::Send,
                bytes: 125_000_000,
                seconds: 10.0,
                gbps: 0.1,
            })
        );
        let recv = parse_iperf3("iperf3: role=client dir=recv bytes=5 seconds=2 gbps=1.5").unwrap();
        assert_eq!((recv.dir, recv.gbps), (Dir::Recv, 1.5));
        assert!(
            parse_iperf3("nothing here")
                .unwrap_err()
                .contains("no 'iperf3: role=")
        );
        let e = parse_iperf3("iperf3: role=client dir=up bytes=1 seconds=1 gbps=1").unwrap_err();
        assert!(e.contains("'dir=up'"), "{e}");
        let e = parse_iperf3("iperf3: role=client dir=send bytes=1 seconds=1").unwrap_err();
        assert!(e.contains("no 'gbps='"), "{e}");
        let e = parse_iperf3("iperf3: role=client dir=send bytes=-1 seconds=1 gbps=1").unwrap_err();
        assert!(e.contains("'bytes=-1'"), "{e}");
        let e =
            parse_iperf3("iperf3: role=client dir=send bytes=1 seconds=1 gbps=NaN").unwrap_err();
        assert!(e.contains("'gbps=NaN'"), "{e}");
    }

    const STAT: &str = "\
CPU  APIC  OWNER      SYSCALLS  INTERRUPTS  IPIS  TICKS  SWITCHES
  0     0  shared          100          50     2    900       300
[cpu2] ip: noise in between
  1     1  dedicated        10        1000     0    900         1
  2     2  dedicated        20           5     1    900         2
";

    #[test]
    fn stat_tables_parse() {
        let rows = parse_stat(STAT).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            CpuCounters {
                cpu: 1,
                owner: "dedicated".into(),
                syscalls: 10,
                interrupts: 1000,
                ipis: 0,
                ticks: 900,
                switches: 1,
            }
        );
        // The last table counts.
        let two = format!("{STAT}{}", STAT.replace("  100 ", " 7000 "));
        assert_eq!(parse_stat(&two).unwrap()[0].syscalls, 7000);
        assert_eq!(parse_stat("no table"), None);
        let after = STAT
            .replace("  10        1000", "  40        1100")
            .replace("  20           5", "  25           9");
        let before = parse_stat(STAT).unwrap();
        let after = parse_stat(&after).unwrap();
        assert_eq!(counter_delta(&before, &after, &[1, 2]), (35, 104));
        assert_eq!(counter_delta(&before, &after, &[0]), (0, 0));
        assert_eq!(counter_delta(&before, &after, &[9]), (0, 0));
        assert_eq!(per_1k(35, 7000), Some(5.0));
        assert_eq!(per_1k(35, 0), None);
    }

    const IFCONFIG: &str = "\
nic0: 82540EM (8086:100e) mac 52:54:00:12:34:56 link up
  rx frames=120 bytes=9000 drops=0 too_long=0 errors=0
  tx frames=80 bytes=7000 drops=0
  interrupts=30 polls=5 link_changes=1
  inet 10.0.2.15/24 gateway 10.0.2.2 dns none mtu 1500 arp_entries=1
  ip rx_frames=120 tx_frames=80
";

    #[test]
    fn nic_frames_parse() {
        assert_eq!(parse_nic_frames(IFCONFIG), Some((120, 80)));
        assert_eq!(parse_nic_frames("  rx frames=1 bytes=2\n"), None);
    }

    fn ps() -> String {
        "PID  NAME     CORE  STATE    RESTARTS\n\
         \x20 1  rs       0     blocked         0\n\
         \x20 2  shell    0     running         0\n\
         \x20 3  e1000    1*    running         0\n\
         \x20 4  pf       2*    running         0\n\
         \x20 5  ip       3*    running         0\n\
         \x20 6  udp      4*    blocked         0\n\
         \x20 7  udpecho  0     blocked         0\n\
         \x20 8  tcp      5*    running         0\n"
            .to_string()
    }

    /// A report of [`guest_commands`] in which everything went right: 100,000 frames each way.
    fn report(commands: &[String]) -> ExecReport {
        let stat = |calls: u64, irqs: u64| {
            STAT.replace("  10        1000", &format!("  {calls}        {irqs}"))
        };
        let ifc = |frames: u64| IFCONFIG.replace("rx frames=120", &format!("rx frames={frames}"));
        let outputs = [
            String::new(),
            ps(),
            stat(10, 1000),
            ifc(0),
            "iperf3: role=client dir=send bytes=100 seconds=10 gbps=0.250\n".to_string(),
            stat(110, 1500),
            ifc(100_000),
            "iperf3: role=client dir=recv bytes=100 seconds=10 gbps=0.500\n".to_string(),
            stat(130, 3500),
            ifc(300_000),
        ];
        ExecReport {
            commands: commands
                .iter()
                .zip(outputs)
                .map(|(c, o)| CommandOutput {
                    command: c.clone(),
                    output: o,
                    status: None,
                })
                .collect(),
            failure: None,
        }
    }

    #[test]
    fn the_session_is_measured_per_direction() {
        let commands = guest_commands(10);
        assert_eq!(commands[4], "iperf3 -c 10.0.2.2 -t 10");
        assert_eq!(commands[7], "iperf3 -c 10.0.2.2 -t 10 -R");
        let outputs = NetOutputs::from_report(&report(&commands), &commands).unwrap();
        let Measurement {
            rows,
            cpus,
            placement: placed,
        } = outputs.measure().unwrap();
        assert_eq!(cpus, [1, 2, 3, 4, 5]);
        assert_eq!(placed[0], ("e1000".to_string(), 1));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].dir, rows[0].gbps()), (Dir::Send, Some(0.25)));
        // 100 syscalls and 500 interrupts (cpu1) for 100,000 frames.
        assert_eq!(rows[0].syscalls_per_1k(), Some(1.0));
        assert_eq!(rows[0].interrupts_per_1k(), Some(5.0));
        assert_eq!((rows[1].dir, rows[1].gbps()), (Dir::Recv, Some(0.5)));
        assert_eq!(rows[1].syscalls_per_1k(), Some(0.1));

        // A measurement in the wrong direction is refused, not counted.
        let mut swapped = report(&commands);
        swapped.commands[4].output =
            "iperf3: role=client dir=recv bytes=1 seconds=1 gbps=1\n".into();
        let e = NetOutputs::from_report(&swapped, &commands)
            .unwrap()
            .measure()
            .unwrap_err();
        assert!(e.contains("expected role=client dir=send"), "{e}");
        // A session cut short has no outputs to measure.
        let mut cut = report(&commands);
        cut.commands.truncate(5);
        let e = NetOutputs::from_report(&cut, &commands).unwrap_err();
        assert!(e.contains("'stat' was not run"), "{e}");
        // A stack server missing from ps.
        let mut no_tcp = report(&commands);
        no_tcp.commands[1].output = ps().replace("tcp ", "xyz ");
        let e = NetOutputs::from_report(&no_tcp, &commands)
            .unwrap()
            .measure()
            .unwrap_err();
        assert!(e.contains("stack server 'tcp'"), "{e}");
    }

    #[test]
    fn net_choice_and_its_warning() {
        assert_eq!(choose_net(None, true), Ok((Net::Tap, None)));
        assert_eq!(choose_net(Some(Net::Tap), true), Ok((Net::Tap, None)));
        let (net, warning) = choose_net(None, false).unwrap();
        assert_eq!(net, Net::User);
        assert!(
            warning
                .unwrap()
                .starts_with("not root, so measured over QEMU user networking")
        );
        assert!(choose_net(Some(Net::User), true).unwrap().1.is_some());
        let e = choose_net(Some(Net::Tap), false).unwrap_err();
        assert!(e.contains("needs root") && e.contains("--net user"), "{e}");
    }

    fn results(warning: Option<&str>, host_cores: usize) -> Results {
        let commands = guest_commands(10);
        let Measurement {
            mut rows,
            cpus,
            placement,
        } = NetOutputs::from_report(&report(&commands), &commands)
            .unwrap()
            .measure()
            .unwrap();
        rows.extend(unsupported_rows());
        Results {
            net: if warning.is_some() {
                Net::User
            } else {
                Net::Tap
            },
            warning: warning.map(String::from),
            seconds: 10,
            host_cores,
            guest_cpus: NET_SMP,
            busy_guest_cpus: cpus.len() + 1,
            placement,
            rows,
            chanbench: parse_chanbench(
                "chanbench: chan_msgs_per_s=8077880 kernel_msgs_per_s=3385 throughput_ratio=2386.4 \
                 chan_rtt_ns=1300 kernel_rtt_ns=81000 rtt_ratio=60.6 chan_syscalls_per_1k=0.050",
            )
            .unwrap(),
            recovery: None,
        }
    }

    #[test]
    fn the_recovery_phase_is_in_the_table_and_the_json_or_said_to_be_skipped() {
        let skipped = results(None, 2);
        assert!(table(&skipped).ends_with("recovery: not measured (--no-recovery)\n"));
        assert!(json(&skipped).ends_with("  \"recovery\": null\n}\n"));
        let mut with = results(None, 2);
        with.recovery = Some(recovery::Recovery::assemble(
            4,
            "[  5]   0.00-0.25   sec  2.98 MBytes  100000 Kbits/sec\n",
            recovery::parse_guest(
                "[  5]   0.00-0.25   sec  2.98 MBytes  100 Mbits/sec\n\
                 [cpu3] injecting a fault into ip (pid 5): jumping to 0x1000\n\
                 [cpu0] rs: rs: restarted ip: pid 5 -> 9, down 5 ms\n\
                 iperf3: role=client dir=send bytes=1 seconds=4 gbps=0.1\n",
            ),
            Some("12 iperf3 exited 0 0\n"),
            None,
        ));
        let t = table(&with);
        assert!(t.contains("recovery: guest iperf3 -> stock iperf3 -s (port 5202) for 4 s"));
        assert!(t.contains("survived every crash"), "{t}");
        let j = json(&with);
        assert!(
            j.contains("\"chanbench\": {") && j.contains("},\n  \"recovery\": {\"target\": \"ip\"")
        );
        assert!(j.contains("\"crashes_at_s\": [0.375]"), "{j}");
        assert!(j.ends_with("\"problems\": []}\n}\n"), "{j}");
    }

    #[test]
    fn chanbench_lines_parse() {
        let c = results(None, 2).chanbench;
        assert_eq!(c.chan_msgs_per_s, 8_077_880.0);
        assert_eq!(c.rtt_ratio, 60.6);
        let e = parse_chanbench("chanbench: chan_msgs_per_s=1").unwrap_err();
        assert!(e.contains("kernel_msgs_per_s"), "{e}");
    }

    #[test]
    fn the_table_has_every_layout_and_no_invented_figure() {
        let t = table(&results(None, 2));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("--net tap") && lines[0].contains("10 s per measurement"));
        assert!(!t.contains("WARNING"));
        let row = |layout: &str, ipc: &str, dir: &str| {
            lines
                .iter()
                .find(|l| l.split_ascii_whitespace().take(3).eq([layout, ipc, dir]))
                .unwrap_or_else(|| panic!("no row {layout} {ipc} {dir} in\n{t}"))
                .to_string()
        };
        let send = row("split", "chan", "send");
        assert!(
            send.contains("0.250") && send.contains("1.0") && send.contains("5.0"),
            "{send}"
        );
        for (layout, ipc) in [("single", "chan"), ("split", "kernel")] {
            for dir in ["send", "recv"] {
                let r = row(layout, ipc, dir);
                assert!(r.contains("not supported yet: --"), "{r}");
                // Nothing between the row's name and the reason: no figure.
                let before = r.split("not supported yet").next().unwrap();
                assert!(
                    before.split_ascii_whitespace().eq([layout, ipc, dir]),
                    "{r}"
                );
            }
        }
        assert!(t.contains("chanbench (system.toml, 4 CPUs)") && t.contains("(2386.4x)"));
        assert!(t.contains("host cores: 2; busy guest CPUs: 6 (e1000 cpu1, pf cpu2"));
        assert!(
            t.contains("NOTE: the host has 2 cores for 6 busy guest CPUs"),
            "{t}"
        );
        assert!(t.contains("split layout (a CPU per server) is handicapped"));
        let roomy = table(&results(None, 16));
        assert!(!roomy.contains("NOTE:"));
        let user = table(&results(Some("not root, so ..."), 2));
        assert!(
            user.lines()
                .nth(1)
                .unwrap()
                .starts_with("WARNING: not root"),
            "{user}"
        );
    }

    #[test]
    fn json_rows_carry_the_contract_keys() {
        let j = json(&results(Some("slirp \"limits\"\n"), 2));
        assert!(
            j.contains("\"warning\": \"slirp \\\"limits\\\"\\n\""),
            "{j}"
        );
        assert!(j.contains("\"net\": \"user\""));
        let rows: Vec<&str> = j.lines().filter(|l| l.contains("\"layout\"")).collect();
        assert_eq!(rows.len(), 6);
        for key in ["layout", "ipc", "dir", "gbps", "syscalls_per_1k_pkts"] {
            assert!(
                rows.iter().all(|r| r.contains(&format!("\"{key}\": "))),
                "{key}"
            );
        }
        assert!(
            rows[0].contains(
                "\"layout\": \"split\", \"ipc\": \"chan\", \"dir\": \"send\", \"gbps\": 0.25, \
             \"syscalls_per_1k_pkts\": 1, \"interrupts_per_1k_pkts\": 5, \"status\": \"measured\""
            ),
            "{}",
            rows[0]
        );
        assert!(rows[2].contains("\"layout\": \"single\"") && rows[2].contains("\"gbps\": null"));
        assert!(
            rows[2].contains("\"status\": \"not supported yet\", \"reason\": \"--layout single")
        );
        assert!(rows[5].ends_with('}') && rows[4].ends_with("},"));
        assert!(j.contains("\"chanbench\": {\"chan_msgs_per_s\": 8077880, "));
        assert!(j.contains("\"contention\": \"the host has 2 cores"));
        // Balanced braces and brackets outside strings: a cheap well-formedness check.
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for ch in j.chars() {
            match (in_str, esc, ch) {
                (true, true, _) => esc = false,
                (true, false, '\\') => esc = true,
                (true, false, '"') => in_str = false,
                (false, _, '"') => in_str = true,
                (false, _, '{' | '[') => depth += 1,
                (false, _, '}' | ']') => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!((depth, in_str), (0, false));
        assert_eq!(json_string("a\u{1}b"), "\"a\\u0001b\"");
        assert_eq!(json_number(Some(f64::NAN)), "null");
        assert_eq!(json_number(Some(0.0)), "0");
        assert_eq!(json_number(Some(12.5)), "12.5");
    }

    /// As root with iperf3 and ip: a server started in a namespace serves a client in the same
    /// namespace (traffic to 10.0.2.2 there only), and is gone with the namespace afterwards.
    #[test]
    fn the_server_runs_in_the_namespace_and_goes_with_it() {
        let (Some(iperf3), true) = (host::find_in_path("iperf3"), host::is_root()) else {
            eprintln!("skipped: needs root and iperf3 (CI has both)");
            return;
        };
        let ns = netns::Namespace::create("a bench test").unwrap();
        let name = ns.name().to_string();
        let log = std::env::temp_dir().join(format!("{name}-iperf3.log"));
        let port = IPERF3_PORT.to_string();
        let server = Server::start(
            ns.command(&iperf3, &Server::args_on(IPERF3_PORT, &[])),
            log.clone(),
        )
        .unwrap();
        let client = ns
            .command(
                &iperf3,
                &["-c", SERVER_ADDRESS, "-p", &port, "-t", "1"].map(String::from),
            )
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&client.stdout);
        assert!(
            client.status.success() && said.contains("receiver"),
            "{said}"
        );
        let pid = server.child.id();
        drop(server);
        drop(ns);
        assert!(
            !netns::process_alive(pid),
            "the server (pid {pid}) outlived its namespace"
        );
        let ip = host::find_in_path("ip").unwrap();
        assert!(
            !netns::list(&ip).unwrap().contains(&name),
            "{name} still listed"
        );
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn svg_draws_measured_bars_and_names_the_rest() {
        let s = svg(&results(Some("a <b> & c"), 2));
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("WARNING: a &lt;b&gt; &amp; c"));
        // The faster row gets the full bar, the other half of it.
        assert!(
            s.contains("width=\"200\" height=\"20\" fill=\"#2f6db5\""),
            "{s}"
        );
        assert!(
            s.contains("width=\"400\" height=\"20\" fill=\"#3a9b5c\""),
            "{s}"
        );
        assert_eq!(s.matches("not supported yet").count(), 4);
        assert_eq!(s.matches("<rect ").count(), 3, "background and two bars");
        assert_eq!(s.matches('<').count(), s.matches('>').count());
    }
}
