//! `cargo xtask bench`: the network stack measured against a stock iperf3 (DESIGN.md §8).
//!
//! Three boots of `tests/manifests/net.toml` (8 CPUs, release kernel), one after the other, one
//! per configuration of [`CONFIGS`]: the split layout over channels, the single layout
//! (`layout=single`: one `netstack` process) over channels, and the split layout over kernel IPC
//! (`ipc=kernel`), each with its words on the kernel command line. Each runs, through the guest
//! shell: `ps`, then `stat` and `ifconfig` around `iperf3 -c 10.0.2.2 -t S` (the guest sends)
//! and `iperf3 -c 10.0.2.2 -t S -R` (the guest receives). The peer is a stock `iperf3 -s` on
//! port 5201: inside a network namespace of the boot's own with `--net tap` (the default as root;
//! see `netns`), on the host's 127.0.0.1 with `--net user` (the fallback without root, which the
//! results carry as a WARNING). Each measurement gives the guest's own `iperf3: role=client
//! dir=send|recv bytes=N seconds=S gbps=G` line, and the differences of the kernel's per-CPU
//! counters (`stat`) and of the NIC's frame counters (`ifconfig`) give system calls and
//! interrupts per 1,000 packets on the CPUs of that layout's stack ([`Config::stack`], found in
//! `ps`). A last boot (`system.toml`, 4 CPUs) runs `chanbench` for the channel-against-kernel-IPC
//! figures.
//!
//! A configuration that fails (no boot, an iperf3 error, a timeout, a stack that did not use
//! the transport asked for) gets rows that say so with the reason, never a number, and the others
//! are still measured; the exit status is then 1. The ratios of one run ([`ratios`]: split over
//! single, channels over kernel IPC) are judged against the targets of §8, and each row against
//! fewer than one system call per 1,000 packets. Without the guest program `iperf3` in the
//! manifest the bench fails before booting anything.
//!
//! Output: a table on stdout, JSON (`--json PATH`, default `target/bench/results.json`) and a bar
//! chart, `target/bench/throughput.svg`, both written here by hand. The host's core count is
//! printed next to the guest CPUs the measurement keeps busy; with fewer host cores, emulated
//! CPUs contend, which handicaps the split layout, and the results say so.
//!
//! The split/chan boot then runs the recovery phase ([`recovery`], unless `--no-recovery`): a
//! stream to a second stock server while the shell crashes ip every 2 s; its series, crashes and
//! per-crash dips go into the table, the JSON (`"recovery"`) and `target/bench/recovery.svg`.

pub mod recovery;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axolotl_tests::shell::{CpuCounters, busy_percent, parse_stat, parse_uptime};
use axolotl_tests::{BootResult, ExecReport, PsRow, transcript};

use crate::args::{self, Accel, BenchArgs, Firmware, Idle, Ipc, Layout, Net, Nic, RunArgs};
use crate::qemu::{self, Boot, Console, Echo, Machine, RunOptions};
use crate::{Error, exec, host, hostcpu, images, netns};

/// The manifest of the measured boots, relative to the workspace root.
pub const NET_MANIFEST: &str = axolotl_tests::NET_MANIFEST;
/// The guest program that moves the traffic: a process of this name in [`NET_MANIFEST`].
pub const GUEST_IPERF3: &str = "iperf3";
/// The port of the iperf3 server (iperf3's default, which the guest uses).
pub const IPERF3_PORT: u16 = 5201;
/// The address the guest reaches the server at: the namespace's end of the TAP device, or QEMU's
/// user-networking host alias of 127.0.0.1.
pub const SERVER_ADDRESS: &str = "10.0.2.2";
/// Virtual CPUs of the measured boots: the stack's processes on dedicated CPUs, the shared ones.
pub const NET_SMP: u32 = 8;
/// Virtual CPUs of the chanbench boot (bench-a and bench-b dedicated).
pub const CHANBENCH_SMP: u32 = 4;
/// The processes of the split stack, whose CPUs' counters are charged to the packets.
pub const SPLIT_STACK: [&str; 5] = ["e1000", "pf", "ip", "udp", "tcp"];
/// The processes of the single layout's stack: the driver and the one netstack.
pub const SINGLE_STACK: [&str; 2] = ["e1000", "netstack"];
/// The targets of DESIGN.md §8, judged on the figures of one run: the split layout's throughput
/// at least this share of the single layout's, per direction.
pub const SPLIT_OVER_SINGLE_TARGET: f64 = 0.9;
/// Channels' throughput at least this many times kernel IPC's, on the split layout.
pub const CHAN_OVER_KERNEL_TARGET: f64 = 2.0;
/// Fewer system calls than this per 1,000 packets on the stack's CPUs, per row.
pub const SYSCALLS_PER_1K_TARGET: f64 = 1.0;
/// Limit of the chanbench boot's waits.
const CHANBENCH_STEP: Duration = Duration::from_secs(300);

/// One configuration the bench boots: the stack's layout and the servers' transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Every server on a CPU of its own, or one netstack.
    pub layout: Layout,
    /// Channels or kernel IPC between the servers.
    pub ipc: Ipc,
    /// Whether idle servers sleep soon or poll through the gaps (`idle=poll`).
    pub idle: Idle,
}

/// The split layout over channels: the design, and the boot the recovery phase runs in.
pub const SPLIT_CHAN: Config = Config {
    layout: Layout::Split,
    ipc: Ipc::Chan,
    idle: Idle::Sleep,
};
/// The single layout over channels.
pub const SINGLE_CHAN: Config = Config {
    layout: Layout::Single,
    ipc: Ipc::Chan,
    idle: Idle::Sleep,
};
/// The split layout over kernel IPC.
pub const SPLIT_KERNEL: Config = Config {
    layout: Layout::Split,
    ipc: Ipc::Kernel,
    idle: Idle::Sleep,
};
/// The split layout over channels with servers polling through idle gaps (`idle=poll`): the
/// row for the system-call target, which asks for no sleep at load.
pub const SPLIT_POLL: Config = Config {
    layout: Layout::Split,
    ipc: Ipc::Chan,
    idle: Idle::Poll,
};
/// The configurations booted, in this order.
pub const CONFIGS: [Config; 4] = [SPLIT_CHAN, SINGLE_CHAN, SPLIT_KERNEL, SPLIT_POLL];

impl Config {
    /// `split` or `single`, as in the table and the JSON.
    pub fn layout_word(self) -> &'static str {
        match self.layout {
            Layout::Split => "split",
            Layout::Single => "single",
        }
    }

    /// `chan` or `kernel`, as in the table and the JSON.
    pub fn ipc_word(self) -> &'static str {
        match self.ipc {
            Ipc::Chan => "chan",
            Ipc::Kernel => "kernel",
        }
    }

    /// `sleep` or `poll`, as in the table and the JSON.
    pub fn idle_word(self) -> &'static str {
        match self.idle {
            Idle::Sleep => "sleep",
            Idle::Poll => "poll",
        }
    }

    /// `layout/ipc` (`/poll` added under `idle=poll`), as in the progress lines.
    pub fn label(self) -> String {
        let poll = if self.idle == Idle::Poll { "/poll" } else { "" };
        format!("{}/{}{poll}", self.layout_word(), self.ipc_word())
    }

    /// The kernel command line of its boot: exactly what `cargo xtask run --layout L --ipc I`
    /// would give.
    pub fn cmdline(self) -> String {
        RunArgs {
            layout: self.layout,
            ipc: self.ipc,
            idle: self.idle,
            ..RunArgs::default()
        }
        .cmdline()
    }

    /// The name of its boot (`target/axolotl/NAME/`, the `[NAME]` prefix of the echo).
    pub fn boot_name(self) -> String {
        if self == SPLIT_CHAN {
            "bench-net".to_string()
        } else {
            format!("bench-net-{}", self.label().replace('/', "-"))
        }
    }

    /// The processes whose CPUs carry the stack in this layout.
    pub fn stack(self) -> &'static [&'static str] {
        match self.layout {
            Layout::Split => &SPLIT_STACK,
            Layout::Single => &SINGLE_STACK,
        }
    }

    /// Server-to-server links every TCP frame crosses whichever transport the boot chose: pf to
    /// ip and ip to tcp in the split layout (e1000 to pf left out, in case the driver kept its
    /// channels); none in the single layout, whose parts call each other.
    pub fn transport_links(self) -> u64 {
        match self.layout {
            Layout::Split => 2,
            Layout::Single => 0,
        }
    }
}

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

/// One CPU's row of `stat calls`: its index and its calls by name.
pub type CpuCallsRow = (u32, Vec<(String, u64)>);

/// The rows of the last `stat calls` table in `output` (CPU, then `name=count` words); lines
/// that are not rows (kernel log lines) are skipped.
pub fn parse_calls(output: &str) -> Option<Vec<CpuCallsRow>> {
    let lines: Vec<&str> = output.lines().collect();
    let header = lines
        .iter()
        .rposition(|l| l.split_ascii_whitespace().eq(["CPU", "CALLS"]))?;
    let row = |l: &&str| -> Option<CpuCallsRow> {
        let mut words = l.split_ascii_whitespace();
        let cpu = words.next()?.parse().ok()?;
        let rest: Vec<&str> = words.collect();
        if rest == ["-"] {
            return Some((cpu, Vec::new()));
        }
        let calls = rest
            .iter()
            .map(|w| {
                let (name, n) = w.split_once('=')?;
                Some((name.to_string(), n.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?;
        (!calls.is_empty()).then_some((cpu, calls))
    };
    Some(lines[header + 1..].iter().filter_map(row).collect())
}

/// The calls made on `cpus` between two `stat calls` tables, summed by name, most first (then
/// by name).
pub fn calls_delta(
    before: &[CpuCallsRow],
    after: &[CpuCallsRow],
    cpus: &[u32],
) -> Vec<(String, u64)> {
    let count = |t: &[CpuCallsRow], cpu: u32, name: &str| {
        t.iter()
            .filter(|(c, _)| *c == cpu)
            .flat_map(|(_, calls)| calls)
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    };
    let mut sums: std::collections::BTreeMap<String, u64> = Default::default();
    for &cpu in cpus {
        for (_, calls) in after.iter().filter(|(c, _)| *c == cpu) {
            for (name, v) in calls {
                let d = v.saturating_sub(count(before, cpu, name));
                if d > 0 {
                    *sums.entry(name.clone()).or_default() += d;
                }
            }
        }
    }
    let mut v: Vec<(String, u64)> = sums.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
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

/// Which stack process runs on which CPU.
pub type Placement = Vec<(String, u32)>;

/// The distinct CPUs of the processes `stack` in a `ps` table, and which process is on which.
pub fn stack_cpus(rows: &[PsRow], stack: &[&str]) -> Result<(Vec<u32>, Placement), String> {
    let mut placed = Vec::new();
    for &name in stack {
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
    /// The system calls on the stack's CPUs during it by name, most first (or why they could
    /// not be read).
    pub by_call: Result<Vec<(String, u64)>, String>,
    /// Each guest CPU's busy share during it, in % (or why it could not be read), with the stack
    /// processes on it.
    pub busy: Result<Vec<CpuBusy>, String>,
    /// The host CPU QEMU's threads took during it (or why it could not be read).
    pub host: Result<hostcpu::HostCpu, String>,
}

/// One guest CPU's busy share during a measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuBusy {
    /// CPU index.
    pub cpu: u32,
    /// The stack processes on it (none: a shared CPU, where the application runs).
    pub on: Vec<String>,
    /// Busy share, 0–100 %.
    pub percent: f64,
}

/// The figures of a row: measured, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum Figures {
    /// Measured in this run.
    Measured(Measured),
    /// Not measured: the boot, the session or the measurement failed (the reason says how).
    Failed(String),
}

/// One row of the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `split` or `single`.
    pub layout: &'static str,
    /// `chan` or `kernel`.
    pub ipc: &'static str,
    /// `sleep` or `poll`.
    pub idle: &'static str,
    /// Direction, from the guest's side.
    pub dir: Dir,
    /// What was found.
    pub figures: Figures,
}

impl Row {
    /// A row of `config` in direction `dir`.
    pub fn new(config: Config, dir: Dir, figures: Figures) -> Self {
        Self {
            layout: config.layout_word(),
            ipc: config.ipc_word(),
            idle: config.idle_word(),
            dir,
            figures,
        }
    }

    /// Rows in both directions that failed for `why`.
    pub fn failed_pair(config: Config, why: &str) -> Vec<Row> {
        [Dir::Send, Dir::Recv]
            .map(|dir| Row::new(config, dir, Figures::Failed(why.to_string())))
            .to_vec()
    }

    /// Whether this is the row of `config` in direction `dir`.
    pub fn is(&self, config: Config, dir: Dir) -> bool {
        self.layout == config.layout_word()
            && self.ipc == config.ipc_word()
            && self.idle == config.idle_word()
            && self.dir == dir
    }

    /// Gigabits per second, when measured.
    pub fn gbps(&self) -> Option<f64> {
        match &self.figures {
            Figures::Measured(m) => Some(m.iperf3.gbps),
            Figures::Failed(_) => None,
        }
    }

    /// System calls per 1,000 packets on the stack's CPUs, when measured and packets moved.
    pub fn syscalls_per_1k(&self) -> Option<f64> {
        match &self.figures {
            Figures::Measured(m) => per_1k(m.syscalls, m.packets),
            Figures::Failed(_) => None,
        }
    }

    /// Interrupts per 1,000 packets on the stack's CPUs, when measured and packets moved.
    pub fn interrupts_per_1k(&self) -> Option<f64> {
        match &self.figures {
            Figures::Measured(m) => per_1k(m.interrupts, m.packets),
            Figures::Failed(_) => None,
        }
    }

    /// Whether the row meets fewer than [`SYSCALLS_PER_1K_TARGET`] system calls per 1,000
    /// packets (`None` when it has no such figure).
    pub fn syscall_target_met(&self) -> Option<bool> {
        self.syscalls_per_1k().map(|s| s < SYSCALLS_PER_1K_TARGET)
    }
}

/// "target met" or "target NOT met".
pub fn verdict(met: bool) -> &'static str {
    if met { "target met" } else { "target NOT met" }
}

/// A ratio of two rows' throughput in one run, against its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// `split/single` or `chan/kernel`.
    pub name: &'static str,
    /// The layout both rows share, when they share one (`split` for chan/kernel).
    pub on: Option<&'static str>,
    /// The direction of both rows.
    pub dir: Dir,
    /// The numerator's throughput over the denominator's (the median of [`Ratio::rounds`]'
    /// values), or why there is none.
    pub value: Result<f64, String>,
    /// The value of each round, the run's first: one, unless the split/single comparison was
    /// repeated (`--rounds`).
    pub rounds: Vec<Result<f64, String>>,
    /// The least value that meets the target.
    pub target: f64,
}

impl Ratio {
    /// `Some(true)` when the value is at least the target; `None` without a value.
    pub fn met(&self) -> Option<bool> {
        self.value.as_ref().ok().map(|v| *v >= self.target)
    }
}

/// The throughput of `over` in `rows` over that of `under`, in direction `dir`.
fn ratio_of(rows: &[Row], over: Config, under: Config, dir: Dir) -> Result<f64, String> {
    let gbps = |c: Config| {
        let row = rows
            .iter()
            .find(|r| r.is(c, dir))
            .ok_or_else(|| format!("no {} {} row", c.label(), dir.word()))?;
        match &row.figures {
            Figures::Measured(m) => Ok(m.iperf3.gbps),
            Figures::Failed(_) => Err(format!("{} {} was not measured", c.label(), dir.word())),
        }
    };
    let (a, b) = (gbps(over)?, gbps(under)?);
    if b > 0.0 {
        Ok(a / b)
    } else {
        Err(format!("{} {} moved nothing", under.label(), dir.word()))
    }
}

/// Round `k`'s split/chan and single/chan throughput, from its rows.
pub fn round_line(k: usize, rows: &[Row]) -> String {
    let [a, b, c, d] = round_gbps(rows).map(|g| g.map_or("-".to_string(), |g| format!("{g:.3}")));
    format!("round {k}: split/chan {a} / {b}, single/chan {c} / {d} Gbit/s (send / recv)")
}

/// A round's split/chan send and recv, then single/chan send and recv throughput, from its rows.
fn round_gbps(rows: &[Row]) -> [Option<f64>; 4] {
    [
        (SPLIT_CHAN, Dir::Send),
        (SPLIT_CHAN, Dir::Recv),
        (SINGLE_CHAN, Dir::Send),
        (SINGLE_CHAN, Dir::Recv),
    ]
    .map(|(c, dir)| rows.iter().find(|r| r.is(c, dir)).and_then(Row::gbps))
}

/// The median of the values among `rounds`; without one, the first round's reason.
pub fn median_of(rounds: &[Result<f64, String>]) -> Result<f64, String> {
    let v: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    recovery::median(&v).ok_or_else(|| {
        rounds
            .iter()
            .find_map(|r| r.clone().err())
            .unwrap_or_else(|| "no round measured".to_string())
    })
}

/// The ratios of DESIGN.md §8 of a run's results ([`ratios_over`]).
pub fn ratios(r: &Results) -> Vec<Ratio> {
    ratios_over(&r.rows, &r.rounds)
}

/// The ratios of DESIGN.md §8 from the rows of one run, per direction: split over single
/// (both over channels; target at least [`SPLIT_OVER_SINGLE_TARGET`]) and channels over kernel
/// IPC on the split layout (target at least [`CHAN_OVER_KERNEL_TARGET`]). `more` holds the
/// split/single rows of the further rounds (`--rounds`): the split/single value is then the
/// median of every round's.
pub fn ratios_over(rows: &[Row], more: &[Vec<Row>]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for (name, on, over, under, target) in [
        (
            "split/single",
            None,
            SPLIT_CHAN,
            SINGLE_CHAN,
            SPLIT_OVER_SINGLE_TARGET,
        ),
        (
            "chan/kernel",
            Some("split"),
            SPLIT_CHAN,
            SPLIT_KERNEL,
            CHAN_OVER_KERNEL_TARGET,
        ),
    ] {
        for dir in [Dir::Send, Dir::Recv] {
            let mut rounds = vec![ratio_of(rows, over, under, dir)];
            if under == SINGLE_CHAN {
                rounds.extend(more.iter().map(|r| ratio_of(r, over, under, dir)));
            }
            out.push(Ratio {
                name,
                on,
                dir,
                value: median_of(&rounds),
                rounds,
                target,
            });
        }
    }
    out
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

/// Where one configuration's stack ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// The configuration.
    pub config: Config,
    /// The distinct CPUs of its stack.
    pub cpus: Vec<u32>,
    /// Which process ran on which CPU.
    pub placement: Placement,
}

impl Stack {
    /// The guest CPUs it kept busy: its stack's and one for the application.
    pub fn busy_cpus(&self) -> usize {
        self.cpus.len() + 1
    }
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
    /// Virtual CPUs of the measured boots.
    pub guest_cpus: u32,
    /// Where each configuration that got as far as `ps` ran its stack, in boot order.
    pub stacks: Vec<Stack>,
    /// The rows, two per configuration of [`CONFIGS`], in its order.
    pub rows: Vec<Row>,
    /// The split/chan and single/chan rows of the further rounds of their comparison (rounds
    /// 2, 3, ... of `--rounds`), in order; empty with one round.
    pub rounds: Vec<Vec<Row>>,
    /// chanbench's figures.
    pub chanbench: Chanbench,
    /// The recovery phase (`None` with `--no-recovery`).
    pub recovery: Option<recovery::Recovery>,
}

impl Results {
    /// The most guest CPUs one configuration kept busy (the split layout's).
    pub fn busy_guest_cpus(&self) -> usize {
        self.stacks.iter().map(Stack::busy_cpus).max().unwrap_or(0)
    }

    /// The plain statement about host cores against busy guest CPUs, when they contend.
    pub fn contention(&self) -> Option<String> {
        let busy = self.busy_guest_cpus();
        (self.host_cores < busy).then(|| {
            format!(
                "the host has {} cores for {busy} busy guest CPUs: emulated CPUs contend for host \
                 cores, so the split layout (a CPU per server) is handicapped here",
                self.host_cores
            )
        })
    }

    /// The rows that failed.
    pub fn failed_rows(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.figures, Figures::Failed(_)))
            .count()
    }
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

/// Where [`guest_commands`] puts each command: `ps`, then around each iperf3 run (send, then
/// receive) `ifconfig`, `stat calls`, `stat` before and the same in reverse after. Measurement
/// `i` reads `STAT[2i]`..`STAT[2i + 1]`, `CALLS` alike and `IFCONFIG[i]`..`IFCONFIG[i + 1]`:
/// only `stat`s (on the shell's CPU) sit between a run and the counters read around it, and
/// `ifconfig`'s requests to ip and the driver (system calls on the stack's CPUs) are outside.
mod at {
    pub const PS: usize = 1;
    pub const STAT: [usize; 4] = [4, 6, 10, 12];
    pub const CALLS: [usize; 4] = [3, 7, 9, 13];
    pub const IFCONFIG: [usize; 3] = [2, 8, 14];
    pub const IPERF3: [usize; 2] = [5, 11];
}

/// The commands typed into the guest shell for `seconds`-second measurements, at the places
/// [`at`] names (see [`NetOutputs::from_report`]).
pub fn guest_commands(seconds: u32) -> Vec<String> {
    let send = format!("iperf3 -c {SERVER_ADDRESS} -t {seconds}");
    let recv = format!("{send} -R");
    let mut c = vec!["sleep 2", "ps", "ifconfig"];
    for run in [&send, &recv] {
        c.extend(["stat calls", "stat", run, "stat", "stat calls", "ifconfig"]);
    }
    c.iter().map(|c| c.to_string()).collect()
}

/// The outputs of [`guest_commands`] by role; `None` for a command the session did not get to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOutputs {
    /// `ps`.
    pub ps: Option<String>,
    /// `stat` before and after the send, before and after the receive.
    pub stat: [Option<String>; 4],
    /// `stat calls` before and after the send, before and after the receive.
    pub calls: [Option<String>; 4],
    /// `ifconfig` before, after send, after receive.
    pub ifconfig: [Option<String>; 3],
    /// `iperf3` sending, receiving.
    pub iperf3: [Option<String>; 2],
    /// QEMU's threads' host CPU time just before each `stat` (when it could be read).
    pub host: [Option<hostcpu::Snapshot>; 4],
    /// Why the session stopped or failed, when it did.
    pub stopped: Option<String>,
}

/// The last line of `output` with something on it, the shell's `[exit N]` left out.
fn last_line(output: &str) -> Option<&str> {
    output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("[exit "))
}

impl NetOutputs {
    /// Takes the outputs from the exec session's report (`commands` as typed); `stopped` is the
    /// session's failure, if any.
    pub fn from_report(report: &ExecReport, commands: &[String], stopped: Option<String>) -> Self {
        let out = |i: usize| match report.commands.get(i) {
            Some(c) if c.command == commands[i] => Some(c.output.clone()),
            _ => None,
        };
        Self {
            ps: out(at::PS),
            stat: at::STAT.map(out),
            calls: at::CALLS.map(out),
            ifconfig: at::IFCONFIG.map(out),
            iperf3: at::IPERF3.map(out),
            host: [None, None, None, None],
            stopped,
        }
    }

    /// `why`, with the session's failure when there was one.
    fn because(&self, why: String) -> String {
        match &self.stopped {
            Some(s) => format!("{why} (the session: {s})"),
            None => why,
        }
    }

    /// The two rows of `config`, send then receive, and where its stack ran. A direction that
    /// cannot be measured gets a failed row with the reason; the other direction still counts.
    pub fn measure(&self, config: Config) -> Measurement {
        let stack = self
            .ps
            .as_deref()
            .ok_or("'ps' was not run".to_string())
            .and_then(|ps| {
                let ps = axolotl_tests::shell::parse_ps(ps)
                    .ok_or("no 'PID NAME CORE STATE RESTARTS' table in the output of 'ps'")?;
                stack_cpus(&ps, config.stack())
            });
        let (cpus, placement) = match stack {
            Ok(s) => s,
            Err(why) => {
                return Measurement {
                    rows: Row::failed_pair(config, &self.because(why)),
                    stack: None,
                };
            }
        };
        let rows = [Dir::Send, Dir::Recv]
            .into_iter()
            .enumerate()
            .map(|(i, dir)| {
                let figures = match self.direction(config, i, dir, &cpus, &placement) {
                    Ok(m) => Figures::Measured(m),
                    Err(why) => Figures::Failed(self.because(why)),
                };
                Row::new(config, dir, figures)
            })
            .collect();
        Measurement {
            rows,
            stack: Some(Stack {
                config,
                cpus,
                placement,
            }),
        }
    }

    /// The measurement `i` (0 send, 1 receive) on the stack's `cpus` (`placement`: which
    /// process is on which).
    fn direction(
        &self,
        config: Config,
        i: usize,
        dir: Dir,
        cpus: &[u32],
        placement: &Placement,
    ) -> Result<Measured, String> {
        let w = dir.word();
        let ran = |o: &Option<String>, what: &str| {
            o.clone()
                .ok_or_else(|| format!("'{what}' was not run ({w} measurement)"))
        };
        let stat = |j: usize| {
            parse_stat(&ran(&self.stat[j], "stat")?)
                .ok_or_else(|| "no stat table in the output of 'stat'".to_string())
        };
        let frames = |j: usize| {
            parse_nic_frames(&ran(&self.ifconfig[j], "ifconfig")?).ok_or_else(|| {
                "no 'rx frames=' / 'tx frames=' in the output of 'ifconfig'".to_string()
            })
        };
        // iperf3 first: when it failed, what it said is the reason that matters.
        let output = ran(&self.iperf3[i], "iperf3")?;
        let line = parse_iperf3(&output).map_err(|e| match last_line(&output) {
            Some(last) => format!("{w} measurement: {e}; iperf3's last line: {last}"),
            None => format!("{w} measurement: {e}; iperf3 printed nothing"),
        })?;
        if line.role != "client" || line.dir != dir {
            return Err(format!(
                "the {w} measurement printed role={} dir={}, expected role=client dir={w}",
                line.role,
                line.dir.word(),
            ));
        }
        // The counters read just before and after this run (see `at`).
        let (b, a) = (2 * i, 2 * i + 1);
        let (before, after) = (stat(b)?, stat(a)?);
        let ((rx0, tx0), (rx1, tx1)) = (frames(i)?, frames(i + 1)?);
        let (syscalls, interrupts) = counter_delta(&before, &after, cpus);
        let packets = rx1.saturating_sub(rx0) + tx1.saturating_sub(tx0);
        let calls = |j: usize| {
            parse_calls(&ran(&self.calls[j], "stat calls")?)
                .ok_or_else(|| "no 'CPU CALLS' table in the output of 'stat calls'".to_string())
        };
        let by_call = calls(b).and_then(|c| Ok(calls_delta(&c, &calls(a)?, cpus)));
        let uptime = |j: usize| {
            parse_uptime(&ran(&self.stat[j], "stat")?)
                .ok_or_else(|| "no 'uptime N ms' line in the output of 'stat'".to_string())
        };
        let busy = uptime(b).and_then(|up0| {
            let shares = busy_percent(&before, &after, up0, uptime(a)?)
                .ok_or("the guest's uptime did not grow between the two 'stat's")?;
            Ok(label_busy(&shares, placement))
        });
        let host = match (&self.host[b], &self.host[a]) {
            (Some(a), Some(b)) => hostcpu::between(a, b)
                .ok_or_else(|| "no emulated CPU thread in QEMU's /proc entries".to_string()),
            _ => Err("QEMU's threads were not read from /proc".to_string()),
        };
        let m = Measured {
            iperf3: line,
            packets,
            syscalls,
            interrupts,
            by_call,
            busy,
            host,
        };
        check_transport(config, &m)?;
        Ok(m)
    }
}

/// `Err` when a boot that asked for kernel IPC shows fewer system calls on the stack's CPUs than
/// kernel IPC costs: a trap per message, and every frame is a message on each of
/// [`Config::transport_links`]. A stack that took fewer still talked over channels, and its
/// figures are not kernel IPC's.
pub fn check_transport(config: Config, m: &Measured) -> Result<(), String> {
    let links = config.transport_links();
    if config.ipc != Ipc::Kernel || links == 0 || m.syscalls >= links * m.packets {
        return Ok(());
    }
    Err(format!(
        "ipc=kernel was on the kernel command line, but the stack's CPUs took {} system calls \
         per 1,000 packets, fewer than the {} that kernel IPC (a trap per message) costs on the \
         {links} links pf-ip and ip-tcp every frame crosses: the servers did not switch to kernel \
         IPC (that boot moved {:.3} Gbps, channel figures, not counted)",
        opt(per_1k(m.syscalls, m.packets), 1),
        links * 1000,
        m.iperf3.gbps
    ))
}

/// What a measured boot gave: its rows and where its stack ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The configuration's rows, send then receive.
    pub rows: Vec<Row>,
    /// Where the stack ran (`None` when `ps` did not say).
    pub stack: Option<Stack>,
}

/// `shares` (CPU, %) with the stack processes `placement` puts on each CPU.
pub fn label_busy(shares: &[(u32, f64)], placement: &Placement) -> Vec<CpuBusy> {
    shares
        .iter()
        .map(|&(cpu, percent)| CpuBusy {
            cpu,
            on: placement
                .iter()
                .filter(|(_, c)| *c == cpu)
                .map(|(n, _)| n.clone())
                .collect(),
            percent,
        })
        .collect()
}

/// The line under a measured row: each guest CPU's busy share, its stack processes named
/// (`-` for a shared CPU, where the application runs).
pub fn busy_line(m: &Measured) -> String {
    match &m.busy {
        Ok(cpus) => {
            let shown: Vec<String> = cpus
                .iter()
                .map(|c| {
                    let on = if c.on.is_empty() {
                        "-".to_string()
                    } else {
                        c.on.join("+")
                    };
                    format!("cpu{} {on} {:.0}", c.cpu, c.percent)
                })
                .collect();
            format!("    busy %: {}", shown.join(", "))
        }
        Err(why) => format!("    busy: not read ({why})"),
    }
}

/// The line under a measured row: the share of a host core each guest CPU's thread ran, QEMU's
/// other threads, and the whole host.
pub fn host_line(m: &Measured) -> String {
    match &m.host {
        Ok(h) => {
            let shown: Vec<String> = h
                .vcpus
                .iter()
                .map(|(cpu, p)| format!("cpu{cpu} {p:.0}"))
                .collect();
            format!(
                "    host CPU %: {}, emulator {:.0}; host {:.0} of {}",
                shown.join(", "),
                h.emulator,
                h.host,
                100 * h.cores
            )
        }
        Err(why) => format!("    host CPU: not read ({why})"),
    }
}

/// Most system calls by name shown under a row.
const CALLS_SHOWN: usize = 6;

/// The line under a measured row: its system calls per 1,000 packets by name, most first.
pub fn calls_line(m: &Measured) -> String {
    match &m.by_call {
        Ok(calls) if calls.is_empty() => "    by call: none".to_string(),
        Ok(calls) => {
            let shown: Vec<String> = calls
                .iter()
                .take(CALLS_SHOWN)
                .map(|(name, n)| format!("{name} {}", opt(per_1k(*n, m.packets), 1)))
                .collect();
            let more = calls.len().saturating_sub(CALLS_SHOWN);
            let more = if more > 0 {
                format!(", {more} more")
            } else {
                String::new()
            };
            format!("    by call, per 1k pkts: {}{more}", shown.join(", "))
        }
        Err(why) => format!("    by call: not read ({why})"),
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.decimals$}"))
}

/// The busy guest CPUs per layout, as the table and the chart say it.
fn busy_text(r: &Results) -> String {
    let mut seen = Vec::new();
    let mut parts = Vec::new();
    for s in &r.stacks {
        let layout = s.config.layout_word();
        if seen.contains(&layout) {
            continue;
        }
        seen.push(layout);
        let placed: Vec<String> = s
            .placement
            .iter()
            .map(|(n, c)| format!("{n} cpu{c}"))
            .collect();
        parts.push(format!(
            "{layout} {} ({}, and one for the application)",
            s.busy_cpus(),
            placed.join(", ")
        ));
    }
    if parts.is_empty() {
        "unknown (no boot got as far as 'ps')".to_string()
    } else {
        parts.join("; ")
    }
}

/// The table printed on stdout.
pub fn table(r: &Results) -> String {
    let mut t = String::new();
    let net = if r.net == Net::Tap { "tap" } else { "user" };
    let labels: Vec<String> = CONFIGS.iter().map(|c| c.label()).collect();
    let _ = writeln!(
        t,
        "cargo xtask bench: tests/manifests/net.toml booted as {} in turn, {} guest CPUs, \
         --net {net}, {} s per measurement, peer: stock iperf3 -s at \
         {SERVER_ADDRESS}:{IPERF3_PORT}",
        labels.join(", "),
        r.guest_cpus,
        r.seconds
    );
    if let Some(w) = &r.warning {
        let _ = writeln!(t, "WARNING: {w}");
    }
    let _ = writeln!(
        t,
        "{:<7} {:<7} {:<6} {:<5} {:>8} {:>17} {:>19} {:>10}  < {SYSCALLS_PER_1K_TARGET} syscall/1k pkts",
        "layout", "ipc", "idle", "dir", "Gbps", "syscalls/1k pkts", "interrupts/1k pkts", "packets"
    );
    for row in &r.rows {
        let head = format!(
            "{:<7} {:<7} {:<6} {:<5}",
            row.layout,
            row.ipc,
            row.idle,
            row.dir.word()
        );
        match &row.figures {
            Figures::Measured(m) => {
                let _ = writeln!(
                    t,
                    "{head} {:>8.3} {:>17} {:>19} {:>10}  {}",
                    m.iperf3.gbps,
                    opt(row.syscalls_per_1k(), 1),
                    opt(row.interrupts_per_1k(), 1),
                    m.packets,
                    row.syscall_target_met().map_or("-", verdict)
                );
                let _ = writeln!(t, "{}", calls_line(m));
                let _ = writeln!(t, "{}", busy_line(m));
                let _ = writeln!(t, "{}", host_line(m));
            }
            Figures::Failed(why) => {
                let _ = writeln!(t, "{head} FAILED: {}", why.replace('\n', " "));
            }
        }
    }
    let _ = writeln!(t, "ratios of this run (DESIGN.md §8):");
    for q in ratios(r) {
        let name = match q.on {
            Some(on) => format!("{} on {on}", q.name),
            None => q.name.to_string(),
        };
        let value = match &q.value {
            Ok(v) => format!("{v:.2}x"),
            Err(_) => "-".to_string(),
        };
        let judged = match (&q.value, q.met()) {
            (_, Some(met)) => verdict(met).to_string(),
            (Err(why), None) => format!("not judged: {why}"),
            (Ok(_), None) => unreachable!("a value is always judged"),
        };
        let of_rounds = if q.rounds.len() > 1 {
            let each: Vec<String> = q
                .rounds
                .iter()
                .map(|v| v.as_ref().map_or("-".to_string(), |v| format!("{v:.2}x")))
                .collect();
            format!(
                "; the median of {} rounds: {}",
                q.rounds.len(),
                each.join(", ")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "  {name:<20} {:<5} {value:>7}  (target >= {}x: {judged}{of_rounds})",
            q.dir.word(),
            q.target
        );
    }
    if !r.rounds.is_empty() {
        for (k, round) in std::iter::once(&r.rows).chain(&r.rounds).enumerate() {
            let _ = writeln!(t, "  {}", round_line(k + 1, round));
        }
    }
    let measured: Vec<bool> = r.rows.iter().filter_map(Row::syscall_target_met).collect();
    let _ = writeln!(
        t,
        "  fewer than {SYSCALLS_PER_1K_TARGET} system call per 1,000 packets on the stack's \
         CPUs: met by {} of {} measured rows",
        measured.iter().filter(|m| **m).count(),
        measured.len()
    );
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
    let _ = writeln!(
        t,
        "host cores: {}; busy guest CPUs: {}",
        r.host_cores,
        busy_text(r)
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

/// A JSON boolean (or `null`).
fn json_bool(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "null",
    }
}

/// The results as JSON: the conditions, the warning, where each stack ran, one object per row
/// (layout, ipc, dir, gbps, syscalls_per_1k_pkts, ...), the ratios against their targets and
/// chanbench's figures.
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
    let _ = writeln!(j, "  \"busy_guest_cpus\": {},", r.busy_guest_cpus());
    let _ = writeln!(
        j,
        "  \"contention\": {},",
        r.contention().as_deref().map_or("null".into(), json_string)
    );
    let stacks: Vec<String> = r
        .stacks
        .iter()
        .map(|s| {
            let placed: Vec<String> = s
                .placement
                .iter()
                .map(|(n, c)| format!("{}: {c}", json_string(n)))
                .collect();
            format!(
                "{{\"layout\": {}, \"ipc\": {}, \"idle\": {}, \"busy_guest_cpus\": {}, \"cpus\": {{{}}}}}",
                json_string(s.config.layout_word()),
                json_string(s.config.ipc_word()),
                json_string(s.config.idle_word()),
                s.busy_cpus(),
                placed.join(", ")
            )
        })
        .collect();
    let _ = writeln!(j, "  \"stacks\": [{}],", stacks.join(", "));
    let _ = writeln!(
        j,
        "  \"syscalls_per_1k_pkts_target\": {},",
        json_number(Some(SYSCALLS_PER_1K_TARGET))
    );
    j.push_str("  \"rows\": [\n");
    for (i, row) in r.rows.iter().enumerate() {
        let mut fields = vec![
            format!("\"layout\": {}", json_string(row.layout)),
            format!("\"ipc\": {}", json_string(row.ipc)),
            format!("\"idle\": {}", json_string(row.idle)),
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
            format!(
                "\"syscalls_target_met\": {}",
                json_bool(row.syscall_target_met())
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
                if let Ok(calls) = &m.by_call {
                    let by: Vec<String> = calls
                        .iter()
                        .map(|(name, n)| {
                            format!(
                                "{}: {}",
                                json_string(name),
                                json_number(per_1k(*n, m.packets))
                            )
                        })
                        .collect();
                    fields.push(format!(
                        "\"syscalls_per_1k_pkts_by_call\": {{{}}}",
                        by.join(", ")
                    ));
                }
                if let Ok(cpus) = &m.busy {
                    let by: Vec<String> = cpus
                        .iter()
                        .map(|c| {
                            format!(
                                "{}: {}",
                                json_string(&format!("cpu{}", c.cpu)),
                                json_number(Some(c.percent))
                            )
                        })
                        .collect();
                    fields.push(format!("\"busy_percent_by_cpu\": {{{}}}", by.join(", ")));
                }
                if let Ok(h) = &m.host {
                    let by: Vec<String> = h
                        .vcpus
                        .iter()
                        .map(|(cpu, p)| {
                            format!(
                                "{}: {}",
                                json_string(&format!("cpu{cpu}")),
                                json_number(Some(*p))
                            )
                        })
                        .collect();
                    fields.push(format!(
                        "\"host_cpu_percent\": {{\"by_cpu\": {{{}}}, \"emulator\": {}, \
                         \"host\": {}, \"host_cores\": {}}}",
                        by.join(", "),
                        json_number(Some(h.emulator)),
                        json_number(Some(h.host)),
                        h.cores
                    ));
                }
            }
            Figures::Failed(why) => {
                fields.push("\"status\": \"failed\"".to_string());
                fields.push(format!("\"reason\": {}", json_string(why)));
            }
        }
        let comma = if i + 1 < r.rows.len() { "," } else { "" };
        let _ = writeln!(j, "    {{{}}}{comma}", fields.join(", "));
    }
    j.push_str("  ],\n  \"ratios\": [\n");
    let qs = ratios(r);
    for (i, q) in qs.iter().enumerate() {
        let comma = if i + 1 < qs.len() { "," } else { "" };
        let _ = writeln!(
            j,
            "    {{\"name\": {}, \"on\": {}, \"dir\": {}, \"value\": {}, \"rounds\": [{}], \
             \"target\": {}, \"met\": {}, \"reason\": {}}}{comma}",
            json_string(q.name),
            q.on.map_or("null".into(), json_string),
            json_string(q.dir.word()),
            json_number(q.value.as_ref().ok().copied()),
            q.rounds
                .iter()
                .map(|v| json_number(v.as_ref().ok().copied()))
                .collect::<Vec<_>>()
                .join(", "),
            json_number(Some(q.target)),
            json_bool(q.met()),
            q.value
                .as_ref()
                .err()
                .map_or("null".into(), |e| json_string(e))
        );
    }
    j.push_str("  ],\n");
    let rounds: Vec<String> = std::iter::once(&r.rows)
        .chain(&r.rounds)
        .enumerate()
        .map(|(k, rows)| {
            let [a, b, c, d] = round_gbps(rows).map(json_number);
            format!(
                "{{\"round\": {}, \"split_send_gbps\": {a}, \"split_recv_gbps\": {b}, \
                 \"single_send_gbps\": {c}, \"single_recv_gbps\": {d}}}",
                k + 1
            )
        })
        .collect();
    let _ = writeln!(j, "  \"split_single_rounds\": [{}],", rounds.join(", "));
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
/// largest; failed rows say so in grey instead of a bar. The ratios and their targets follow.
pub fn svg(r: &Results) -> String {
    const WIDTH: usize = 760;
    const LABEL: usize = 170;
    const BAR_MAX: usize = 400;
    const ROW_H: usize = 30;
    const LINE_H: usize = 20;
    let qs = ratios(r);
    let top = if r.warning.is_some() { 70 } else { 50 };
    let foot = top + ROW_H * r.rows.len();
    let height = foot + LINE_H * (qs.len() + 1) + 30;
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
            r.seconds,
            r.host_cores,
            r.busy_guest_cpus()
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
        let poll = if row.idle == "poll" { " / poll" } else { "" };
        let label = format!("{} / {}{poll} / {}", row.layout, row.ipc, row.dir.word());
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
            Figures::Failed(_) => {
                let _ = writeln!(
                    s,
                    "<text x=\"{LABEL}\" y=\"{}\" fill=\"#888888\" font-style=\"italic\">failed \
                     (the reason is in the table and the JSON)</text>",
                    y + 17
                );
            }
        }
    }
    for (i, q) in qs.iter().enumerate() {
        let text = match (&q.value, q.met()) {
            (Ok(v), Some(met)) => format!(
                "{}{} {}: {v:.2}x (target >= {}x: {})",
                q.name,
                q.on.map_or(String::new(), |on| format!(" on {on}")),
                q.dir.word(),
                q.target,
                verdict(met)
            ),
            _ => format!(
                "{}{} {}: not measured (target >= {}x)",
                q.name,
                q.on.map_or(String::new(), |on| format!(" on {on}")),
                q.dir.word(),
                q.target
            ),
        };
        let colour = match q.met() {
            Some(true) => "#2a7a3a",
            Some(false) => "#b00000",
            None => "#888888",
        };
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{}\" fill=\"{colour}\">{}</text>",
            foot + 18 + i * LINE_H,
            xml(&text)
        );
    }
    let c = &r.chanbench;
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"{}\" fill=\"#444444\">{}</text>",
        foot + 18 + qs.len() * LINE_H,
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

/// Makes the BIOS image of the boot `name` (in `target/axolotl/NAME/`) from `payload` (the
/// built programs of a manifest) with the kernel command line `cmdline`; returns the image.
fn prepare(
    kernel: &Path,
    name: &str,
    payload: &images::Payload,
    cmdline: &str,
) -> Result<PathBuf, Error> {
    let dir = images::out_dir().join(name);
    let modules = images::ramdisk_modules(cmdline, Some(payload));
    Ok(images::make_images(kernel, &dir, &modules, &[Firmware::Bios])?.remove(0))
}

/// Boots `image` (made by [`prepare`] for `name`) with `smp` CPUs and types the commands of
/// `plan`; QEMU runs inside `ns` when given. Returns the boot, and QEMU's threads' host CPU time
/// as read before each command.
fn boot(
    tools: &host::Tools,
    image: PathBuf,
    name: &str,
    smp: u32,
    net: Net,
    plan: exec::Plan,
    ns: Option<&netns::Namespace>,
) -> (BootResult, hostcpu::Samples) {
    let samples = hostcpu::Samples::default();
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
        host_samples: Some(samples.clone()),
    };
    let qemu_args = qemu::qemu_args(&machine);
    let (program, qemu_args) = match ns {
        Some(ns) => ns.wrap(&tools.qemu, &qemu_args),
        None => (tools.qemu.clone(), qemu_args),
    };
    eprintln!("running: {} {}", program.display(), qemu_args.join(" "));
    let r = qemu::run(&program, &qemu_args, &opts);
    let _ = std::fs::write(transcript_path(name), &r.transcript);
    (r, samples)
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

/// What the boots have in common: the tools, the network, the host's iperf3 and where the
/// servers' logs go.
struct Setup {
    tools: host::Tools,
    net: Net,
    iperf3: PathBuf,
    out_dir: PathBuf,
    seconds: u32,
    rec_seconds: u32,
}

/// What one configuration's boot gave.
struct ConfigRun {
    /// Its two rows.
    rows: Vec<Row>,
    /// Where its stack ran, when `ps` said.
    stack: Option<Stack>,
    /// The recovery phase, when this boot ran it.
    recovery: Option<recovery::Recovery>,
}

/// Where the iperf3 server's output of `config`'s boot in round `round` (from 1) goes.
fn server_log(out_dir: &Path, config: Config, round: u32) -> PathBuf {
    let base = if config == SPLIT_CHAN {
        "iperf3-server".to_string()
    } else {
        format!("iperf3-server-{}", config.label().replace('/', "-"))
    };
    if round > 1 {
        out_dir.join(format!("{base}-round{round}.log"))
    } else {
        out_dir.join(format!("{base}.log"))
    }
}

/// The name of `config`'s boot in round `round` (from 1): its transcript's directory.
fn round_boot_name(config: Config, round: u32) -> String {
    if round > 1 {
        format!("{}-round{round}", config.boot_name())
    } else {
        config.boot_name()
    }
}

/// Boots `config` from `image` in a namespace of its own (tap) with its own stock servers, and
/// measures it (round `round` of it, from 1); with `with_recovery`, the recovery phase follows
/// in the same boot. Every failure ends up in the rows (with its reason) rather than in an
/// `Err`.
fn run_config(
    s: &Setup,
    config: Config,
    image: PathBuf,
    with_recovery: bool,
    round: u32,
) -> ConfigRun {
    let name = round_boot_name(config, round);
    let rec_seconds = if with_recovery { s.rec_seconds } else { 0 };
    let failed = |why: String| ConfigRun {
        rows: Row::failed_pair(config, &why),
        stack: None,
        recovery: None,
    };
    // `ns` is declared before the servers, so they are killed first and the namespace removed
    // after them, on every return.
    let ns = match s.net {
        Net::Tap => match netns::Namespace::create("bench --net tap") {
            Ok(ns) => Some(ns),
            Err(e) => return failed(format!("no network namespace for this boot: {e}")),
        },
        _ => None,
    };
    let server_cmd = |port: u16, extra: &[&str]| match &ns {
        Some(ns) => ns.command(&s.iperf3, &Server::args_on(port, extra)),
        None => {
            let mut c = Command::new(&s.iperf3);
            c.args(Server::args_on(port, extra));
            c.args(["-B", "127.0.0.1"]);
            c
        }
    };
    if let Err(e) = std::fs::create_dir_all(images::out_dir().join(&name)) {
        return failed(format!("cannot create the directory of boot {name}: {e}"));
    }
    let log = server_log(&s.out_dir, config, round);
    let server = match Server::start(server_cmd(IPERF3_PORT, &[]), log.clone()) {
        Ok(server) => server,
        Err(e) => return failed(format!("the host's iperf3 server did not start: {e}")),
    };
    let rec_log = s.out_dir.join("iperf3-recovery-server.log");
    let rec_server = if rec_seconds > 0 {
        match Server::start(
            server_cmd(recovery::RECOVERY_PORT, &recovery::SERVER_EXTRA),
            rec_log.clone(),
        ) {
            Ok(server) => Some(server),
            Err(e) => return failed(format!("the recovery server did not start: {e}")),
        }
    } else {
        None
    };
    let mut commands = guest_commands(s.seconds);
    let measured = commands.len();
    if rec_seconds > 0 {
        commands.extend(recovery::guest_commands(rec_seconds));
    }
    // Each wait is bounded by its longest command and a margin; the boot by all of them.
    let step = Duration::from_secs(u64::from(s.seconds.max(rec_seconds)) + 60);
    let (r, samples) = boot(
        &s.tools,
        image,
        &name,
        NET_SMP,
        s.net,
        exec::Plan {
            commands: commands.clone(),
            step_timeout: step,
        },
        ns.as_ref(),
    );
    drop(server);
    drop(rec_server);
    drop(ns);
    let path = transcript_path(&name);
    let verdict = r.exec_verdict();
    let Some(report) = r.exec.as_ref() else {
        let why = verdict
            .clone()
            .err()
            .unwrap_or_else(|| "the guest shell session left no report".to_string());
        eprintln!(
            "{}",
            session_failed(
                &format!("bench: {} failed", config.label()),
                &r,
                &why,
                &path
            )
        );
        return failed(format!("{why} (transcript: {})", path.display()));
    };
    // A failure in the recovery phase leaves the measurements before it standing: it is
    // reported with the recovery figures.
    let in_recovery = rec_seconds > 0 && report.commands.len() > measured;
    let stopped = match &verdict {
        Err(why) if !in_recovery => {
            eprintln!(
                "{}",
                session_failed(
                    &format!("bench: the {} boot failed", config.label()),
                    &r,
                    &format!("{why} (the iperf3 server's output is in {})", log.display()),
                    &path
                )
            );
            Some(format!("{why}; transcript: {}", path.display()))
        }
        _ => None,
    };
    let mut outputs = NetOutputs::from_report(report, &commands, stopped);
    outputs.host = at::STAT.map(|i| samples.at(i));
    let Measurement { rows, stack } = outputs.measure(config);
    for row in &rows {
        match &row.figures {
            Figures::Measured(m) => eprintln!(
                "bench: {} {}: {:.3} Gbps, {} system calls and {} interrupts per 1,000 packets \
                 ({} packets)",
                config.label(),
                row.dir.word(),
                m.iperf3.gbps,
                opt(row.syscalls_per_1k(), 1),
                opt(row.interrupts_per_1k(), 1),
                m.packets
            ),
            Figures::Failed(why) => {
                eprintln!("bench: {} {} FAILED: {why}", config.label(), row.dir.word())
            }
        }
    }
    let recovery = (rec_seconds > 0).then(|| {
        let stream = recovery::stream_command(rec_seconds);
        let guest = r
            .transcript
            .rfind(&stream)
            .map_or("", |at| &r.transcript[at + stream.len()..]);
        let server_text = std::fs::read_to_string(&rec_log).unwrap_or_default();
        // The recovery phase's `jobs` (netstat and ifconfig come after it).
        let jobs = report
            .commands
            .iter()
            .skip(measured)
            .find(|c| c.command == "jobs")
            .map(|c| c.output.as_str());
        recovery::Recovery::assemble(
            rec_seconds,
            &server_text,
            recovery::parse_guest(guest),
            jobs,
            verdict.err(),
        )
    });
    ConfigRun {
        rows,
        stack,
        recovery,
    }
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

    // Every image first, so that a namespace and its servers live only while their QEMU does.
    let payload = images::payload(&manifest)?;
    let mut images_made = Vec::new();
    for config in CONFIGS {
        let image = prepare(&kernel, &config.boot_name(), &payload, &config.cmdline())?;
        images_made.push((config, image));
    }
    let system = images::payload(&images::default_manifest())?;
    let chan_image = prepare(&kernel, "bench-chanbench", &system, args::DEFAULT_CMDLINE)?;

    let setup = Setup {
        tools,
        net,
        iperf3,
        out_dir: out_dir.clone(),
        seconds: a.seconds,
        rec_seconds: a.recovery_seconds,
    };
    let (mut rows, mut stacks, mut recovery) = (Vec::new(), Vec::new(), None);
    let total = images_made.len();
    for (i, (config, image)) in images_made.iter().cloned().enumerate() {
        let with_recovery = config == SPLIT_CHAN && setup.rec_seconds > 0;
        let bound = Duration::from_secs(
            u64::from(
                a.seconds
                    .max(if with_recovery { a.recovery_seconds } else { 0 }),
            ) + 60,
        );
        eprintln!(
            "bench: booting {} ({}/{total}: {}, {NET_SMP} CPUs, --net {}, kernel command line \
             '{}') for two {} s measurements{}; each wait at most {} s...",
            config.label(),
            i + 1,
            config.boot_name(),
            if net == Net::Tap { "tap" } else { "user" },
            config.cmdline(),
            a.seconds,
            if with_recovery {
                format!(
                    " and a {} s stream with 'crash {}' every {} s",
                    a.recovery_seconds,
                    recovery::CRASH_TARGET,
                    recovery::CRASH_EVERY_S
                )
            } else {
                String::new()
            },
            bound.as_secs()
        );
        let run = run_config(&setup, config, image, with_recovery, 1);
        rows.extend(run.rows);
        stacks.extend(run.stack);
        if run.recovery.is_some() {
            recovery = run.recovery;
        }
    }
    // Further rounds of the split/single comparison, alternately, so that a change in the
    // host's load falls on both layouts.
    let mut rounds = Vec::new();
    for round in 2..=a.rounds {
        let mut round_rows = Vec::new();
        for config in [SPLIT_CHAN, SINGLE_CHAN] {
            let Some((_, image)) = images_made.iter().find(|(c, _)| *c == config) else {
                continue;
            };
            eprintln!(
                "bench: round {round} of {} of split/single: booting {} again ({}) for two {} s \
                 measurements...",
                a.rounds,
                config.label(),
                round_boot_name(config, round),
                a.seconds
            );
            round_rows.extend(run_config(&setup, config, image.clone(), false, round).rows);
        }
        rounds.push(round_rows);
    }

    eprintln!("bench: booting system.toml ({CHANBENCH_SMP} CPUs) for chanbench...");
    let (r, _) = boot(
        &setup.tools,
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
        seconds: a.seconds,
        host_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        guest_cpus: NET_SMP,
        stacks,
        rows,
        rounds,
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
            results
                .stacks
                .iter()
                .find(|s| s.config == SPLIT_CHAN)
                .map_or(0, Stack::busy_cpus)
        );
        images::write_atomically(&rec_svg, recovery::svg(rec, &subtitle).as_bytes())?;
        println!(
            "wrote {} (the recovery server's output is in {})",
            rec_svg.display(),
            out_dir.join("iperf3-recovery-server.log").display()
        );
    }
    let failed = results.failed_rows();
    if failed > 0 {
        eprintln!(
            "bench: {failed} of {} rows FAILED (their reasons are in the table and the JSON)",
            results.rows.len()
        );
        return Ok(1);
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
CPU  APIC  OWNER      SYSCALLS  INTERRUPTS  IPIS  TICKS  SWITCHES  IDLE_MS
  0     0  shared          100          50     2    900       300     5000
[cpu2] ip: noise in between
  1     1  dedicated        10        1000     0    900         1      400
  2     2  dedicated        20           5     1    900         2     8000
uptime 10000 ms
";

    #[test]
    fn calls_tables_parse_and_subtract() {
        let before = "CPU  CALLS\n  0  log=5\n[cpu1] ip: noise\n  1  wait=10 notify=2\n  2  -\n";
        let after =
            "stat calls\nCPU  CALLS\n  0  log=9\n  1  wait=30 notify=2 lookup=1\n  2  wait=4\n";
        let b = parse_calls(before).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[1], (1, vec![("wait".into(), 10), ("notify".into(), 2)]));
        assert_eq!(b[2], (2, vec![]));
        let a = parse_calls(after).unwrap();
        assert_eq!(
            calls_delta(&b, &a, &[1, 2]),
            [("wait".to_string(), 24), ("lookup".to_string(), 1)]
        );
        assert_eq!(calls_delta(&b, &a, &[0]), [("log".to_string(), 4)]);
        assert_eq!(parse_calls("CPU  APIC\n"), None);
        // A word that is not name=count makes the line no row.
        assert_eq!(parse_calls("CPU  CALLS\n  1  wait=x\n").unwrap(), []);
        let m = Measured {
            iperf3: parse_iperf3("iperf3: role=client dir=send bytes=1 seconds=1 gbps=1").unwrap(),
            packets: 2000,
            syscalls: 0,
            interrupts: 0,
            by_call: Ok((0..8).map(|i| (format!("c{i}"), 10 - i)).collect()),
            busy: Err("no uptime".into()),
            host: Err("not read".into()),
        };
        assert_eq!(
            calls_line(&m),
            "    by call, per 1k pkts: c0 5.0, c1 4.5, c2 4.0, c3 3.5, c4 3.0, c5 2.5, 2 more"
        );
    }

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
                idle_ms: 400,
            }
        );
        assert_eq!(parse_uptime(STAT), Some(10_000));
        assert_eq!(parse_uptime("uptime x ms\nuptime 5 s\n"), None);
        // Busy: cpu0 idle 2,500 of 5,000 ms, cpu1 none, cpu2 all (and a clock that went back
        // past the table's: clamped).
        let later = STAT
            .replace("300     5000", "300     7500")
            .replace("2     8000", "2    14000");
        let shares = busy_percent(&rows, &parse_stat(&later).unwrap(), 10_000, 15_000).unwrap();
        assert_eq!(shares, [(0, 50.0), (1, 100.0), (2, 0.0)]);
        assert_eq!(busy_percent(&rows, &rows, 10_000, 10_000), None);
        assert_eq!(busy_percent(&rows, &rows, 10_000, 9_000), None);
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

    /// `ps` in the single layout: the driver and the netstack, none of the four split servers.
    fn ps_single() -> String {
        "PID  NAME      CORE  STATE    RESTARTS\n\
         \x20 1  rs        0     blocked         0\n\
         \x20 2  shell     0     running         0\n\
         \x20 3  e1000     1*    running         0\n\
         \x20 4  netstack  2*    running         0\n"
            .to_string()
    }

    /// A report of [`guest_commands`] in which everything went right: `ps` says `ps`, cpu1's
    /// system calls are `calls` at the `stat`s before the send, after the send (and before the
    /// receive), and after the receive (interrupts 1000, 1500, 3500; idle 400, 2400 and 7400 ms
    /// at uptimes 10, 20 and 30 s: 80% busy in the send, 50% in the receive), 100,000 frames
    /// are counted during the send and 200,000 during the receive, at `gbps`.
    fn report_of(commands: &[String], ps: String, calls: [u64; 3], gbps: [f64; 2]) -> ExecReport {
        let stat = |calls: u64, irqs: u64| {
            let (idle, up) = match irqs {
                1000 => (400, 10_000),
                1500 => (2400, 20_000),
                _ => (7400, 30_000),
            };
            STAT.replace("  10        1000", &format!("  {calls}        {irqs}"))
                .replace(" 1      400\n", &format!(" 1      {idle}\n"))
                .replace("uptime 10000 ms", &format!("uptime {up} ms"))
        };
        let ifc = |frames: u64| IFCONFIG.replace("rx frames=120", &format!("rx frames={frames}"));
        // cpu1's calls are all waits but one notify; cpu0 (not the stack's) logs.
        let by_call = |calls: u64| {
            format!(
                "CPU  CALLS\n  0  log={calls}\n  1  wait={} notify=1\n  2  -\n",
                calls - 1
            )
        };
        let mut outputs = vec![String::new(); commands.len()];
        outputs[at::PS] = ps;
        let points = [
            (calls[0], 1000),
            (calls[1], 1500),
            (calls[1], 1500),
            (calls[2], 3500),
        ];
        for (j, (c, irqs)) in points.into_iter().enumerate() {
            outputs[at::STAT[j]] = stat(c, irqs);
            outputs[at::CALLS[j]] = by_call(c);
        }
        for (j, frames) in [0, 100_000, 300_000].into_iter().enumerate() {
            outputs[at::IFCONFIG[j]] = ifc(frames);
        }
        for (j, dir) in ["send", "recv"].into_iter().enumerate() {
            outputs[at::IPERF3[j]] = format!(
                "iperf3: role=client dir={dir} bytes=100 seconds=10 gbps={}\n",
                gbps[j]
            );
        }
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

    /// The split/chan report: 100 system calls in the send, 20 in the receive.
    fn report(commands: &[String]) -> ExecReport {
        report_of(commands, ps(), [10, 110, 130], [0.25, 0.5])
    }

    fn measure(report: &ExecReport, config: Config, stopped: Option<&str>) -> Measurement {
        let commands = guest_commands(10);
        NetOutputs::from_report(report, &commands, stopped.map(String::from)).measure(config)
    }

    fn failure(row: &Row) -> &str {
        match &row.figures {
            Figures::Failed(why) => why,
            Figures::Measured(m) => panic!("measured, not failed: {m:?}"),
        }
    }

    #[test]
    fn the_host_cpu_of_each_measurement_is_shown_when_read() {
        let commands = guest_commands(10);
        let snap = |t: u64| hostcpu::Snapshot {
            threads: vec![
                ("CPU 1/TCG".into(), t),
                ("CPU 5/TCG".into(), 3 * t),
                ("qemu-system-x86".into(), t / 2),
            ],
            host_busy: 7 * t,
            host_total: 1000 * t,
            host_cores: 2,
        };
        let mut outputs = NetOutputs::from_report(&report(&commands), &commands, None);
        outputs.host = [Some(snap(100)), Some(snap(200)), Some(snap(200)), None];
        let m = outputs.measure(SPLIT_CHAN);
        let Figures::Measured(send) = &m.rows[0].figures else {
            panic!("{:?}", m.rows[0])
        };
        // 100,000 ticks on 2 cores: 50,000 of wall time.
        assert_eq!(
            host_line(send),
            "    host CPU %: cpu1 0, cpu5 1, emulator 0; host 1 of 200"
        );
        let Figures::Measured(recv) = &m.rows[1].figures else {
            panic!("{:?}", m.rows[1])
        };
        assert_eq!(
            host_line(recv),
            "    host CPU: not read (QEMU's threads were not read from /proc)"
        );
        let json = json(&Results {
            rows: m.rows.clone(),
            ..results(None, 2)
        });
        assert!(
            json.contains(
                "\"host_cpu_percent\": {\"by_cpu\": {\"cpu1\": 0.2, \"cpu5\": 0.6}, \
                           \"emulator\": 0.1, \"host\": 1.4, \"host_cores\": 2}"
            ),
            "{json}"
        );
    }

    #[test]
    fn the_session_is_measured_per_direction() {
        let commands = guest_commands(10);
        assert_eq!(commands[at::IPERF3[0]], "iperf3 -c 10.0.2.2 -t 10");
        assert_eq!(commands[at::IPERF3[1]], "iperf3 -c 10.0.2.2 -t 10 -R");
        assert_eq!(at::STAT.map(|i| commands[i].as_str()), ["stat"; 4]);
        assert_eq!(at::CALLS.map(|i| commands[i].as_str()), ["stat calls"; 4]);
        // Only the shell's own `stat`s sit between a run and the counters read around it.
        assert_eq!(
            commands[at::STAT[0]..=at::STAT[1]],
            ["stat", "iperf3 -c 10.0.2.2 -t 10", "stat"]
        );
        assert_eq!(
            commands[at::CALLS[2]..=at::CALLS[3]],
            [
                "stat calls",
                "stat",
                "iperf3 -c 10.0.2.2 -t 10 -R",
                "stat",
                "stat calls"
            ]
        );
        assert_eq!(commands.len(), at::IFCONFIG[2] + 1);
        assert_eq!(at::IFCONFIG.map(|i| commands[i].as_str()), ["ifconfig"; 3]);
        assert_eq!(commands[at::PS], "ps");
        let Measurement { rows, stack } = measure(&report(&commands), SPLIT_CHAN, None);
        let stack = stack.unwrap();
        assert_eq!(stack.cpus, [1, 2, 3, 4, 5]);
        assert_eq!(stack.placement[0], ("e1000".to_string(), 1));
        assert_eq!(stack.busy_cpus(), 6);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].layout, rows[0].ipc), ("split", "chan"));
        assert_eq!((rows[0].dir, rows[0].gbps()), (Dir::Send, Some(0.25)));
        // 100 syscalls and 500 interrupts (cpu1) for 100,000 frames.
        assert_eq!(rows[0].syscalls_per_1k(), Some(1.0));
        assert_eq!(rows[0].interrupts_per_1k(), Some(5.0));
        assert_eq!(rows[0].syscall_target_met(), Some(false));
        // By call: cpu1's 100 more waits (cpu0 is not the stack's; notify did not move).
        let Figures::Measured(m) = &rows[0].figures else {
            panic!("{:?}", rows[0])
        };
        assert_eq!(m.by_call, Ok(vec![("wait".to_string(), 100)]));
        assert_eq!(calls_line(m), "    by call, per 1k pkts: wait 1.0");
        // Busy: cpu1 (e1000's) 80%; cpu0 and cpu2's idle did not grow: 100%.
        assert_eq!(
            busy_line(m),
            "    busy %: cpu0 - 100, cpu1 e1000 80, cpu2 pf 100"
        );
        let Figures::Measured(r) = &rows[1].figures else {
            panic!("{:?}", rows[1])
        };
        assert_eq!(r.busy.as_ref().unwrap()[1].percent, 50.0);
        assert_eq!((rows[1].dir, rows[1].gbps()), (Dir::Recv, Some(0.5)));
        assert_eq!(rows[1].syscalls_per_1k(), Some(0.1));
        assert_eq!(rows[1].syscall_target_met(), Some(true));

        // A measurement in the wrong direction is refused, not counted; the other one stands.
        let mut swapped = report(&commands);
        swapped.commands[at::IPERF3[0]].output =
            "iperf3: role=client dir=recv bytes=1 seconds=1 gbps=1\n".into();
        let m = measure(&swapped, SPLIT_CHAN, None);
        let e = failure(&m.rows[0]);
        assert!(e.contains("expected role=client dir=send"), "{e}");
        assert_eq!(m.rows[1].gbps(), Some(0.5));
        // An iperf3 error: the row says what iperf3 said last, and why the session stopped.
        let mut refused = report(&commands);
        refused.commands.truncate(at::IPERF3[0] + 1);
        refused.commands[at::IPERF3[0]].output =
            "iperf3: error - unable to connect to server: Connection refused\n[exit 1]\n".into();
        refused.commands[at::IPERF3[0]].status = Some(1);
        let m = measure(
            &refused,
            SPLIT_CHAN,
            Some("exec: command 'iperf3 -c 10.0.2.2 -t 10' failed ([exit 1])"),
        );
        let e = failure(&m.rows[0]);
        assert!(
            e.starts_with("send measurement: no 'iperf3: role=")
                && e.contains("iperf3's last line: iperf3: error - unable to connect")
                && e.ends_with(
                    "(the session: exec: command 'iperf3 -c 10.0.2.2 -t 10' failed ([exit 1]))"
                ),
            "{e}"
        );
        assert!(m.stack.is_some(), "ps ran, so the stack is known");
        let e = failure(&m.rows[1]);
        assert!(
            e.starts_with("'iperf3' was not run (recv measurement)"),
            "{e}"
        );
        // A session cut short during the receive: the send row stands.
        let mut cut = report(&commands);
        cut.commands.truncate(at::IPERF3[1] + 1);
        let m = measure(
            &cut,
            SPLIT_CHAN,
            Some("exec: command 'iperf3 -c 10.0.2.2 -t 10 -R' gave no prompt within 70 s"),
        );
        assert_eq!(m.rows[0].gbps(), Some(0.25));
        let e = failure(&m.rows[1]);
        assert!(
            e.contains("'stat' was not run") && e.contains("gave no prompt"),
            "{e}"
        );
        // A stack server missing from ps: both rows fail, no placement.
        let mut no_tcp = report(&commands);
        no_tcp.commands[1].output = ps().replace("tcp ", "xyz ");
        let m = measure(&no_tcp, SPLIT_CHAN, None);
        assert_eq!(m.stack, None);
        for row in &m.rows {
            assert!(failure(row).contains("stack server 'tcp'"), "{row:?}");
        }
        // Nothing typed at all.
        let empty = ExecReport {
            commands: Vec::new(),
            failure: None,
        };
        let m = measure(
            &empty,
            SPLIT_KERNEL,
            Some("exec: no shell prompt within 70 s"),
        );
        assert_eq!((m.rows[0].layout, m.rows[0].ipc), ("split", "kernel"));
        assert!(
            failure(&m.rows[1])
                == "'ps' was not run (the session: exec: no shell prompt within 70 s)"
        );
    }

    #[test]
    fn the_single_layout_is_charged_to_e1000_and_netstack() {
        let commands = guest_commands(10);
        let single = report_of(&commands, ps_single(), [10, 110, 130], [0.3, 0.4]);
        let Measurement { rows, stack } = measure(&single, SINGLE_CHAN, None);
        let stack = stack.unwrap();
        assert_eq!(stack.cpus, [1, 2]);
        assert_eq!(
            stack.placement,
            [("e1000".to_string(), 1), ("netstack".to_string(), 2)]
        );
        assert_eq!(stack.busy_cpus(), 3);
        assert_eq!((rows[0].layout, rows[0].ipc), ("single", "chan"));
        assert_eq!(rows[0].gbps(), Some(0.3));
        // A boot that ignored layout=single: the split servers run, and no netstack.
        let m = measure(&report(&commands), SINGLE_CHAN, None);
        assert!(failure(&m.rows[0]).contains("stack server 'netstack'"));
        // And the split layout measured on a single boot's ps.
        let m = measure(&single, SPLIT_CHAN, None);
        assert!(failure(&m.rows[0]).contains("stack server 'pf'"));
    }

    #[test]
    fn a_kernel_ipc_row_needs_the_system_calls_of_kernel_ipc() {
        let commands = guest_commands(10);
        // Channel figures from a boot with ipc=kernel: refused, with what was measured.
        let m = measure(&report(&commands), SPLIT_KERNEL, None);
        for row in &m.rows {
            let e = failure(row);
            assert!(
                e.contains("did not switch to kernel IPC") && e.contains("fewer than the 2000"),
                "{e}"
            );
        }
        assert!(failure(&m.rows[0]).contains("took 1.0 system calls per 1,000 packets"));
        assert!(failure(&m.rows[0]).contains("moved 0.250 Gbps"));
        assert!(m.stack.is_some());
        // Two traps per frame and more: kernel IPC's figures. 300,000 calls for 100,000 frames,
        // then exactly 2,000 per 1,000 (400,000 for 200,000).
        let kernel = report_of(&commands, ps(), [10, 300_010, 700_010], [0.1, 0.3]);
        let m = measure(&kernel, SPLIT_KERNEL, None);
        assert_eq!(m.rows[0].syscalls_per_1k(), Some(3000.0));
        assert_eq!(m.rows[1].syscalls_per_1k(), Some(2000.0));
        assert_eq!(m.rows[1].gbps(), Some(0.3));
        // The same counts one short of two per frame in the receive.
        let short = report_of(&commands, ps(), [10, 300_010, 700_009], [0.1, 0.3]);
        let m = measure(&short, SPLIT_KERNEL, None);
        assert!(m.rows[0].gbps().is_some());
        assert!(failure(&m.rows[1]).contains("did not switch"));
        // Channels are never judged by it, nor the single layout (no links between servers).
        let mm = Measured {
            iperf3: parse_iperf3("iperf3: role=client dir=send bytes=1 seconds=1 gbps=1").unwrap(),
            packets: 1000,
            syscalls: 0,
            interrupts: 0,
            by_call: Ok(Vec::new()),
            busy: Ok(Vec::new()),
            host: Err("not read".into()),
        };
        assert_eq!(check_transport(SPLIT_CHAN, &mm), Ok(()));
        let single_kernel = Config {
            layout: Layout::Single,
            ipc: Ipc::Kernel,
            idle: Idle::Sleep,
        };
        assert_eq!(check_transport(single_kernel, &mm), Ok(()));
        assert!(check_transport(SPLIT_KERNEL, &mm).is_err());
    }

    #[test]
    fn configurations_boot_with_their_command_line_words() {
        assert_eq!(CONFIGS, [SPLIT_CHAN, SINGLE_CHAN, SPLIT_KERNEL, SPLIT_POLL]);
        assert_eq!(SPLIT_POLL.cmdline(), "log=info idle=poll");
        assert_eq!(SPLIT_POLL.boot_name(), "bench-net-split-chan-poll");
        assert_eq!(SPLIT_POLL.label(), "split/chan/poll");
        assert_eq!(SPLIT_CHAN.cmdline(), "log=info");
        assert_eq!(SINGLE_CHAN.cmdline(), "log=info layout=single");
        assert_eq!(SPLIT_KERNEL.cmdline(), "log=info ipc=kernel");
        assert_eq!(SPLIT_CHAN.boot_name(), "bench-net");
        assert_eq!(SINGLE_CHAN.boot_name(), "bench-net-single-chan");
        assert_eq!(SPLIT_KERNEL.boot_name(), "bench-net-split-kernel");
        assert_eq!(SINGLE_CHAN.label(), "single/chan");
        assert_eq!(SPLIT_KERNEL.stack(), SPLIT_STACK);
        assert_eq!(SINGLE_CHAN.stack(), SINGLE_STACK);
        let out = Path::new("/o");
        assert_eq!(
            server_log(out, SPLIT_CHAN, 1),
            out.join("iperf3-server.log")
        );
        assert_eq!(
            server_log(out, SPLIT_KERNEL, 1),
            out.join("iperf3-server-split-kernel.log")
        );
        assert_eq!(
            server_log(out, SINGLE_CHAN, 3),
            out.join("iperf3-server-single-chan-round3.log")
        );
        assert_eq!(round_boot_name(SPLIT_CHAN, 1), "bench-net");
        assert_eq!(round_boot_name(SPLIT_CHAN, 2), "bench-net-round2");
    }

    /// `rows` with the split/chan and single/chan throughput set to `split` and `single`
    /// (send, recv).
    fn with_gbps(rows: &[Row], split: [f64; 2], single: [f64; 2]) -> Vec<Row> {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                let dir = usize::from(r.dir == Dir::Recv);
                let g = if r.is(SPLIT_CHAN, r.dir) {
                    Some(split[dir])
                } else if r.is(SINGLE_CHAN, r.dir) {
                    Some(single[dir])
                } else {
                    None
                };
                if let (Some(g), Figures::Measured(m)) = (g, &mut r.figures) {
                    m.iperf3.gbps = g;
                }
                r
            })
            .collect()
    }

    #[test]
    fn split_over_single_is_the_median_of_its_rounds() {
        let rows = with_gbps(&all_rows(true), [0.5, 0.8], [0.6, 0.8]);
        let round2 = with_gbps(&rows, [0.6, 0.7], [0.6, 1.0]);
        let round3 = with_gbps(&rows, [0.54, 0.9], [0.6, 0.9]);
        let qs = ratios_over(&rows, &[round2.clone(), round3]);
        let send = &qs[0];
        assert_eq!((send.name, send.dir), ("split/single", Dir::Send));
        let each: Vec<f64> = send.rounds.iter().map(|v| v.clone().unwrap()).collect();
        assert_eq!(each.len(), 3);
        assert!((each[0] - 0.5 / 0.6).abs() < 1e-9 && (each[1] - 1.0).abs() < 1e-9);
        assert!((send.value.clone().unwrap() - 0.9).abs() < 1e-9, "{send:?}");
        assert_eq!(send.met(), Some(true), "the median, not the first round");
        let recv = &qs[1];
        assert!((recv.value.clone().unwrap() - 1.0).abs() < 1e-9, "{recv:?}");
        // chan/kernel has the first round only.
        assert!(qs[2..].iter().all(|q| q.rounds.len() == 1));
        // A failed round is left out of the median and shown as such.
        let mut failed = round2.clone();
        for r in &mut failed {
            if r.is(SINGLE_CHAN, r.dir) {
                r.figures = Figures::Failed("boot failed".into());
            }
        }
        let q = &ratios_over(&rows, &[failed])[0];
        assert_eq!(q.rounds[1], Err("single/chan send was not measured".into()));
        assert!((q.value.clone().unwrap() - 0.5 / 0.6).abs() < 1e-9);
        // Medians: of an even count, the mean of the middle two; of none, the first reason.
        assert_eq!(median_of(&[Ok(1.0), Ok(0.8)]), Ok(0.9));
        assert_eq!(
            median_of(&[Err("a".into()), Err("b".into())]),
            Err("a".to_string())
        );
        // The table and the JSON show each round.
        let r = Results {
            rows: rows.clone(),
            rounds: vec![round2],
            ..results(None, 2)
        };
        let t = table(&r);
        assert!(t.contains("the median of 2 rounds: 0.83x, 1.00x"), "{t}");
        assert!(
            t.contains("round 2: split/chan 0.600 / 0.700, single/chan 0.600 / 1.000 Gbit/s"),
            "{t}"
        );
        let j = json(&r);
        assert!(
            j.contains("\"split_single_rounds\": [{\"round\": 1, "),
            "{j}"
        );
        assert!(
            j.contains("{\"round\": 2, \"split_send_gbps\": 0.6, \"split_recv_gbps\": 0.7"),
            "{j}"
        );
        assert!(j.contains("\"rounds\": [0.833333, 1]"), "{j}");
    }

    #[test]
    fn ratios_are_judged_against_their_targets() {
        let rows = all_rows(true);
        let qs = ratios_over(&rows, &[]);
        let find =
            |name: &str, dir: Dir| qs.iter().find(|q| q.name == name && q.dir == dir).unwrap();
        // split/single: 0.25 / 0.3 and 0.5 / 0.4.
        let q = find("split/single", Dir::Send);
        assert!((q.value.clone().unwrap() - 0.25 / 0.3).abs() < 1e-9);
        assert_eq!((q.target, q.met(), q.on), (0.9, Some(false), None));
        assert_eq!(find("split/single", Dir::Recv).met(), Some(true));
        // chan/kernel on split: 0.25 / 0.1 and 0.5 / 0.3.
        let q = find("chan/kernel", Dir::Send);
        assert!((q.value.clone().unwrap() - 2.5).abs() < 1e-9);
        assert_eq!((q.target, q.met(), q.on), (2.0, Some(true), Some("split")));
        assert_eq!(find("chan/kernel", Dir::Recv).met(), Some(false));
        // Exactly on the target meets it: 0.25 against 0.125.
        let mut at = rows.clone();
        at[4].figures = match &at[4].figures {
            Figures::Measured(m) => {
                let mut m = m.clone();
                m.iperf3.gbps = 0.125;
                Figures::Measured(m)
            }
            f => f.clone(),
        };
        assert_eq!(ratios_over(&at, &[])[2].value, Ok(2.0));
        assert_eq!(ratios_over(&at, &[])[2].met(), Some(true));
        // A failed row: no value, the reason instead.
        let qs = ratios_over(&all_rows(false), &[]);
        let q = qs
            .iter()
            .find(|q| q.name == "chan/kernel" && q.dir == Dir::Recv)
            .unwrap();
        assert_eq!(
            q.value,
            Err("split/kernel recv was not measured".to_string())
        );
        assert_eq!(q.met(), None);
        // A denominator that moved nothing.
        let mut zero = rows.clone();
        zero[3].figures = match &zero[3].figures {
            Figures::Measured(m) => {
                let mut m = m.clone();
                m.iperf3.gbps = 0.0;
                Figures::Measured(m)
            }
            f => f.clone(),
        };
        assert_eq!(
            ratios_over(&zero, &[])[1].value,
            Err("single/chan recv moved nothing".to_string())
        );
        assert_eq!(verdict(true), "target met");
        assert_eq!(verdict(false), "target NOT met");
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

    /// The rows and stacks of a run: split/chan 0.25 and 0.5 Gbps, single/chan 0.3 and 0.4,
    /// split/kernel 0.1 and 0.3 (or, without `kernel_works`, a kernel boot that did not come
    /// up).
    fn all_measurements(kernel_works: bool) -> (Vec<Row>, Vec<Stack>) {
        let commands = guest_commands(10);
        let mut ms = vec![
            measure(&report(&commands), SPLIT_CHAN, None),
            measure(
                &report_of(&commands, ps_single(), [10, 110, 130], [0.3, 0.4]),
                SINGLE_CHAN,
                None,
            ),
        ];
        ms.push(if kernel_works {
            measure(
                &report_of(&commands, ps(), [10, 300_010, 700_010], [0.1, 0.3]),
                SPLIT_KERNEL,
                None,
            )
        } else {
            let empty = ExecReport {
                commands: Vec::new(),
                failure: None,
            };
            measure(
                &empty,
                SPLIT_KERNEL,
                Some("exec: no shell prompt within 70 s"),
            )
        });
        let rows = ms.iter().flat_map(|m| m.rows.clone()).collect();
        let stacks = ms.into_iter().filter_map(|m| m.stack).collect();
        (rows, stacks)
    }

    fn all_rows(kernel_works: bool) -> Vec<Row> {
        all_measurements(kernel_works).0
    }

    fn results_of(warning: Option<&str>, host_cores: usize, kernel_works: bool) -> Results {
        let (rows, stacks) = all_measurements(kernel_works);
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
            stacks,
            rows,
            rounds: Vec::new(),
            chanbench: parse_chanbench(
                "chanbench: chan_msgs_per_s=8077880 kernel_msgs_per_s=3385 throughput_ratio=2386.4 \
                 chan_rtt_ns=1300 kernel_rtt_ns=81000 rtt_ratio=60.6 chan_syscalls_per_1k=0.050",
            )
            .unwrap(),
            recovery: None,
        }
    }

    /// A run whose kernel-IPC boot failed.
    fn results(warning: Option<&str>, host_cores: usize) -> Results {
        results_of(warning, host_cores, false)
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
        assert!(
            lines[0].contains(
                "booted as split/chan, single/chan, split/kernel, split/chan/poll in turn"
            ),
            "{}",
            lines[0]
        );
        assert!(!t.contains("WARNING"));
        let row = |layout: &str, ipc: &str, dir: &str| {
            lines
                .iter()
                .find(|l| {
                    l.split_ascii_whitespace()
                        .take(4)
                        .eq([layout, ipc, "sleep", dir])
                })
                .unwrap_or_else(|| panic!("no row {layout} {ipc} {dir} in\n{t}"))
                .to_string()
        };
        let send = row("split", "chan", "send");
        assert!(
            send.contains("0.250")
                && send.contains("1.0")
                && send.contains("5.0")
                && send.ends_with("  target NOT met"),
            "{send}"
        );
        assert!(row("split", "chan", "recv").ends_with("  target met"));
        let single = row("single", "chan", "recv");
        assert!(single.contains("0.400"), "{single}");
        for dir in ["send", "recv"] {
            let r = row("split", "kernel", dir);
            assert!(
                r.contains("FAILED: 'ps' was not run (the session: exec: no shell prompt"),
                "{r}"
            );
            // Nothing between the row's name and the reason: no figure.
            let before = r.split("FAILED").next().unwrap();
            assert!(
                before
                    .split_ascii_whitespace()
                    .eq(["split", "kernel", "sleep", dir]),
                "{r}"
            );
        }
        assert!(t.contains("ratios of this run (DESIGN.md §8):"));
        let ratio = |name: &str, dir: &str| {
            lines
                .iter()
                .find(|l| l.trim_start().starts_with(name) && l.contains(&format!(" {dir} ")))
                .unwrap_or_else(|| panic!("no ratio {name} {dir} in\n{t}"))
                .to_string()
        };
        let q = ratio("split/single", "send");
        assert!(
            q.contains("0.83x") && q.ends_with("(target >= 0.9x: target NOT met)"),
            "{q}"
        );
        assert!(ratio("split/single", "recv").contains("1.25x  (target >= 0.9x: target met)"));
        let q = ratio("chan/kernel on split", "recv");
        assert!(
            q.ends_with("(target >= 2x: not judged: split/kernel recv was not measured)"),
            "{q}"
        );
        assert!(t.contains(
            "fewer than 1 system call per 1,000 packets on the stack's CPUs: met by 2 of 4 \
             measured rows"
        ));
        let measured = table(&results_of(None, 2, true));
        assert!(
            measured.contains("2.50x  (target >= 2x: target met)"),
            "{measured}"
        );
        assert!(!measured.contains("FAILED"));
        assert!(t.contains("chanbench (system.toml, 4 CPUs)") && t.contains("(2386.4x)"));
        assert!(
            t.contains(
                "host cores: 2; busy guest CPUs: split 6 (e1000 cpu1, pf cpu2, ip cpu3, udp cpu4, \
                 tcp cpu5, and one for the application); single 3 (e1000 cpu1, netstack cpu2, \
                 and one for the application)"
            ),
            "{t}"
        );
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
        // No boot got as far as ps.
        let mut none = results(None, 2);
        none.stacks.clear();
        assert!(table(&none).contains("busy guest CPUs: unknown (no boot got as far as 'ps')"));
        assert_eq!(none.contention(), None);
        assert_eq!(results(None, 2).failed_rows(), 2);
        assert_eq!(results_of(None, 2, true).failed_rows(), 0);
    }

    #[test]
    fn json_rows_carry_the_contract_keys() {
        let j = json(&results(Some("slirp \"limits\"\n"), 2));
        assert!(
            j.contains("\"warning\": \"slirp \\\"limits\\\"\\n\""),
            "{j}"
        );
        assert!(j.contains("\"net\": \"user\""));
        let rows: Vec<&str> = j
            .lines()
            .filter(|l| l.starts_with("    {\"layout\""))
            .collect();
        assert_eq!(rows.len(), 6);
        for key in [
            "layout",
            "ipc",
            "idle",
            "dir",
            "gbps",
            "syscalls_per_1k_pkts",
        ] {
            assert!(
                rows.iter().all(|r| r.contains(&format!("\"{key}\": "))),
                "{key}"
            );
        }
        assert!(
            rows[0].contains(
                "\"layout\": \"split\", \"ipc\": \"chan\", \"idle\": \"sleep\", \"dir\": \"send\", \"gbps\": 0.25, \
             \"syscalls_per_1k_pkts\": 1, \"interrupts_per_1k_pkts\": 5, \"syscalls_target_met\": \
             false, \"status\": \"measured\""
            ),
            "{}",
            rows[0]
        );
        assert!(rows[1].contains("\"syscalls_target_met\": true"));
        assert!(rows[2].contains("\"layout\": \"single\"") && rows[2].contains("\"gbps\": 0.3"));
        assert!(rows[4].contains("\"ipc\": \"kernel\"") && rows[4].contains("\"gbps\": null"));
        assert!(
            rows[4].contains(
                "\"syscalls_target_met\": null, \"status\": \"failed\", \"reason\": \"'ps' was \
                 not run"
            ),
            "{}",
            rows[4]
        );
        assert!(rows[5].ends_with('}') && rows[4].ends_with("},"));
        assert!(j.contains(
            "  \"stacks\": [{\"layout\": \"split\", \"ipc\": \"chan\", \"idle\": \"sleep\", \"busy_guest_cpus\": 6, \
             \"cpus\": {\"e1000\": 1, \"pf\": 2, \"ip\": 3, \"udp\": 4, \"tcp\": 5}}, \
             {\"layout\": \"single\", \"ipc\": \"chan\", \"idle\": \"sleep\", \"busy_guest_cpus\": 3, \"cpus\": \
             {\"e1000\": 1, \"netstack\": 2}}],"
        ));
        assert!(j.contains("\"busy_guest_cpus\": 6,\n"));
        assert!(j.contains("\"syscalls_per_1k_pkts_target\": 1,"));
        assert!(
            j.contains(
                "{\"name\": \"split/single\", \"on\": null, \"dir\": \"recv\", \"value\": 1.25, \
                 \"rounds\": [1.25], \"target\": 0.9, \"met\": true, \"reason\": null},"
            ),
            "{j}"
        );
        assert!(
            j.contains(
                "{\"name\": \"chan/kernel\", \"on\": \"split\", \"dir\": \"recv\", \"value\": \
                 null, \"rounds\": [null], \"target\": 2, \"met\": null, \"reason\": \
                 \"split/kernel recv was not measured\"}\n  ],"
            ),
            "{j}"
        );
        assert!(j.contains("\"chanbench\": {\"chan_msgs_per_s\": 8077880, "));
        assert!(j.contains("\"contention\": \"the host has 2 cores"));
        // Balanced braces and brackets outside strings: a cheap well-formedness check.
        for j in [j, json(&results_of(None, 2, true))] {
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
        }
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
        // The fastest row (0.5) gets the full bar, the others their share of it.
        for (w, colour) in [
            (200, "#2f6db5"),
            (400, "#3a9b5c"),
            (240, "#2f6db5"),
            (320, "#3a9b5c"),
        ] {
            assert!(
                s.contains(&format!("width=\"{w}\" height=\"20\" fill=\"{colour}\"")),
                "{w} {colour}: {s}"
            );
        }
        assert_eq!(s.matches("failed (the reason is in the table").count(), 2);
        assert_eq!(s.matches("<rect ").count(), 5, "background and four bars");
        assert!(s.contains("split/single send: 0.83x (target &gt;= 0.9x: target NOT met)"));
        assert!(s.contains("chan/kernel on split recv: not measured (target &gt;= 2x)"));
        assert_eq!(s.matches('<').count(), s.matches('>').count());
        let all = svg(&results_of(None, 2, true));
        assert_eq!(all.matches("<rect ").count(), 7, "background and six bars");
        assert!(all.contains("chan/kernel on split send: 2.50x (target &gt;= 2x: target met)"));
        assert!(!all.contains("failed"));
    }
}
