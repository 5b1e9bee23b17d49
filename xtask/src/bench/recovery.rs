//! The recovery phase of `cargo xtask bench`: throughput over time while `crash ip` is injected
//! every [`CRASH_EVERY_S`] seconds.
//!
//! In the measured boot, after the send and receive measurements, the shell starts the guest's
//! `iperf3 -c 10.0.2.2 -p 5202 -t R -i 0.25` in the background, then types `sleep 2` and
//! `crash ip` in turn, then waits for the stream's end and types `jobs`, `netstat` and
//! `ifconfig`. The peer is a second stock server, `iperf3 -s -p 5202 -1 -i 0.25 -f k`, next to
//! the first one.
//!
//! - The series is the host's: the stock server's 0.25 s interval lines (what it received, its
//!   bit rate in Kbit/s), timed by its own clock from the test's start.
//! - The crash moments come from the guest transcript: the kernel's `injecting a fault into ip`
//!   line falls between two of the guest client's own 0.25 s interval lines, so a crash happened
//!   after the end of the interval printed before it; it is placed half an interval later
//!   (within ±[`INTERVAL_S`]/2 of the truth, as long as the two iperf3s' clocks start together,
//!   which they do to within a round trip). rs's `rs: restarted ip: ..., down N ms` gives the
//!   time ip itself was down.
//! - Per crash: the lowest interval between it and the next crash (an interval the next crash
//!   falls into counts for that one), against the median of all
//!   full intervals, and how long after the crash the first interval at or above
//!   [`RECOVERED_FRACTION`] of the median began (after the lowest one); and the mean of the
//!   intervals within [`NEAR_S`] before and after it. Emulated throughput is noisy, so the
//!   lowest interval of the seconds just before the crashes (no crash for at least 1 s) is
//!   given as the yardstick a dip has to beat.

use std::fmt::Write as _;

use super::{Iperf3Line, SERVER_ADDRESS, json_number, json_string, parse_iperf3, xml};

/// The port of the recovery phase's stock server.
pub const RECOVERY_PORT: u16 = 5202;
/// The server whose process is crashed.
pub const CRASH_TARGET: &str = "ip";
/// Seconds between crashes: rs restarts a server at most 5 times in 10 s (net.toml), and a
/// crash every 2 s (plus the shell's own time) stays within that for any length of stream.
pub const CRASH_EVERY_S: u32 = 2;
/// The interval of both iperf3s' reports, as typed.
pub const INTERVAL_ARG: &str = "0.25";
/// The same in seconds.
pub const INTERVAL_S: f64 = 0.25;
/// An interval at or above this fraction of the median counts as recovered.
pub const RECOVERED_FRACTION: f64 = 0.8;
/// The span before and after a crash whose intervals are averaged (before: the intervals that
/// end by the crash and start at most this long before it; after: those that end after it and
/// start less than this long after it, the one the crash fell in included).
pub const NEAR_S: f64 = 1.0;
/// Slack for the two decimals of iperf3's interval times.
const EPS_S: f64 = 0.02;
/// Seconds the shell waits after the last crash beyond the stream's end, for the results
/// exchange and the summary.
const END_MARGIN_S: u32 = 4;

/// How many crashes a stream of `seconds` gets: one every [`CRASH_EVERY_S`], with at least that
/// long before the first and after the last.
pub fn crash_count(seconds: u32) -> u32 {
    seconds.saturating_sub(CRASH_EVERY_S) / CRASH_EVERY_S
}

/// The command that starts the guest's stream (in the background).
pub fn stream_command(seconds: u32) -> String {
    format!("iperf3 -c {SERVER_ADDRESS} -p {RECOVERY_PORT} -t {seconds} -i {INTERVAL_ARG} &")
}

/// The shell commands of the recovery phase: the stream, `sleep 2` and `crash ip` for each
/// crash, a wait for the stream's end, `jobs` (which says how iperf3 ended), and `netstat` and
/// `ifconfig` (the connection's state and queues, ip's counters: for when it did not end).
pub fn guest_commands(seconds: u32) -> Vec<String> {
    let n = crash_count(seconds);
    let mut c = vec![stream_command(seconds)];
    for _ in 0..n {
        c.push(format!("sleep {CRASH_EVERY_S}"));
        c.push(format!("crash {CRASH_TARGET}"));
    }
    c.push(format!(
        "sleep {}",
        seconds - n * CRASH_EVERY_S + END_MARGIN_S
    ));
    c.push("jobs".to_string());
    c.push("netstat".to_string());
    c.push("ifconfig".to_string());
    c
}

/// The arguments of the recovery phase's stock server (after `-s -p PORT --forceflush`): one
/// test, 0.25 s intervals, rates in Kbit/s (four or five significant digits at these rates).
pub const SERVER_EXTRA: [&str; 5] = ["-1", "-i", INTERVAL_ARG, "-f", "k"];

/// One interval of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds from the test's start.
    pub start_s: f64,
    /// End of the interval.
    pub end_s: f64,
    /// Megabits per second over it, as iperf3 reported it.
    pub mbps: f64,
}

/// The bit rate `value unit` of an iperf3 line (`96461 Kbits/sec`) in Mbit/s.
fn rate_mbps(value: &str, unit: &str) -> Option<f64> {
    let v: f64 = value
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    let scale = match unit {
        "bits/sec" => 1e-6,
        "Kbits/sec" => 1e-3,
        "Mbits/sec" => 1.0,
        "Gbits/sec" => 1e3,
        "Tbits/sec" => 1e6,
        _ => return None,
    };
    Some(v * scale)
}

/// The interval of an iperf3 interval line anywhere in `line`
/// (`[  5]   0.00-0.25   sec  2.88 MBytes  96461 Kbits/sec ...`), from a stream line, not the
/// summary (`sender`/`receiver`) or a `[SUM]` line. Text before the bracket (a prompt, the echo
/// of a typed command that the line cut into) is allowed.
pub fn parse_interval_line(line: &str) -> Option<Sample> {
    let mut from = 0;
    while let Some(open) = line[from..].find('[').map(|i| from + i) {
        from = open + 1;
        let Some(close) = line[open..].find(']').map(|i| open + i) else {
            break;
        };
        if line[open + 1..close].trim().parse::<u32>().is_err() {
            continue;
        }
        let words: Vec<&str> = line[close + 1..].split_ascii_whitespace().collect();
        let [span, "sec", _size, _size_unit, rate, rate_unit, rest @ ..] = &words[..] else {
            continue;
        };
        if rest.iter().any(|w| *w == "sender" || *w == "receiver") {
            return None;
        }
        let (a, b) = span.split_once('-')?;
        let start_s: f64 = a.parse().ok()?;
        let end_s: f64 = b.parse().ok()?;
        if !(start_s.is_finite() && end_s.is_finite() && start_s >= 0.0 && end_s > start_s) {
            return None;
        }
        return Some(Sample {
            start_s,
            end_s,
            mbps: rate_mbps(rate, rate_unit)?,
        });
    }
    None
}

/// Every interval line of `text`, in order.
pub fn parse_intervals(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_interval_line).collect()
}

/// One crash as the guest's transcript tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Crash {
    /// Seconds from the stream's start (the guest client's clock).
    pub at_s: f64,
    /// rs's `down N ms`: from the fault to the new instance running.
    pub down_ms: Option<u64>,
}

/// What the guest's side of the recovery phase printed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestSide {
    /// The guest client's own interval lines (what it wrote).
    pub samples: Vec<Sample>,
    /// The crashes, in order.
    pub crashes: Vec<Crash>,
    /// Its `iperf3: role=client ...` line, when it got that far.
    pub summary: Option<Iperf3Line>,
    /// What went wrong that the transcript says: an iperf3 error, rs giving up.
    pub problems: Vec<String>,
}

/// Reads the transcript from the stream's command on: interval lines, the kernel's fault
/// injection into [`CRASH_TARGET`], rs's restart lines, iperf3's summary and errors.
pub fn parse_guest(text: &str) -> GuestSide {
    let inject = format!("injecting a fault into {CRASH_TARGET} (pid");
    let restarted = format!("rs: restarted {CRASH_TARGET}: ");
    let gave_up = format!("rs: GIVING UP on {CRASH_TARGET}");
    let mut g = GuestSide::default();
    let mut last_end = 0.0f64;
    for line in text.lines() {
        if let Some(s) = parse_interval_line(line) {
            last_end = s.end_s;
            g.samples.push(s);
        } else if line.contains(&inject) {
            g.crashes.push(Crash {
                at_s: last_end + INTERVAL_S / 2.0,
                down_ms: None,
            });
        } else if let Some(rest) = line.split(&restarted).nth(1) {
            let ms = rest
                .split("down ")
                .nth(1)
                .and_then(|d| d.split_ascii_whitespace().next())
                .and_then(|d| d.parse().ok());
            if let Some(c) = g.crashes.iter_mut().rev().find(|c| c.down_ms.is_none()) {
                c.down_ms = ms;
            }
        } else if let Some(at) = line.find(&gave_up) {
            g.problems.push(line[at..].trim().to_string());
        } else if let Some(at) = line.find("iperf3: error") {
            g.problems.push(line[at..].trim().to_string());
        }
    }
    g.summary = parse_iperf3(text).ok();
    g
}

/// How iperf3 ended, from `jobs` (`PID NAME STATE EXIT RESTARTS`): `None` when it exited with
/// 0, else what the row says.
pub fn iperf3_job_problem(jobs: &str) -> Option<String> {
    let row = jobs.lines().find_map(|l| {
        let w: Vec<&str> = l.split_ascii_whitespace().collect();
        match w[..] {
            [_, "iperf3", state, exit, ..] => Some((state, exit)),
            _ => None,
        }
    });
    match row {
        Some(("exited", "0")) => None,
        Some((state, exit)) => Some(format!(
            "the guest's iperf3 had not ended cleanly when the shell looked (jobs: state \
             {state}, exit {exit})"
        )),
        None => Some("'jobs' does not list iperf3".to_string()),
    }
}

/// The median of `v` (`None` when empty).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One crash with what it did to the series.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashEffect {
    /// When it happened and how long ip was down.
    pub crash: Crash,
    /// The lowest interval from the crash to the next one (or the end), Mbit/s.
    pub dip_mbps: Option<f64>,
    /// Seconds from the crash to the start of the first interval, at or after the lowest, at
    /// or above [`RECOVERED_FRACTION`] of the median (0: it never fell below); `None`: not
    /// before the next crash or the end.
    pub recover_s: Option<f64>,
    /// The mean of the intervals in the [`NEAR_S`] before the crash, Mbit/s.
    pub before_mbps: Option<f64>,
    /// The mean of the intervals in the [`NEAR_S`] after it (the one it fell in included).
    pub after_mbps: Option<f64>,
}

fn full(s: &Sample) -> bool {
    s.end_s - s.start_s >= INTERVAL_S / 2.0
}

/// The full intervals of the [`NEAR_S`] before `at_s`.
fn before(samples: &[Sample], at_s: f64) -> impl Iterator<Item = &Sample> {
    samples
        .iter()
        .filter(move |s| full(s) && s.end_s <= at_s + EPS_S && s.start_s >= at_s - NEAR_S - EPS_S)
}

fn mean<'a>(it: impl Iterator<Item = &'a Sample>) -> Option<f64> {
    let (sum, n) = it.fold((0.0, 0u32), |(sum, n), s| (sum + s.mbps, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// The lowest interval in the [`NEAR_S`] before any of `crashes`: how low throughput goes
/// without a crash just before it.
pub fn control_lowest(samples: &[Sample], crashes: &[Crash]) -> Option<f64> {
    crashes
        .iter()
        .flat_map(|c| before(samples, c.at_s))
        .map(|s| s.mbps)
        .min_by(f64::total_cmp)
}

/// The median of the full intervals of `samples` (at least half an interval long).
pub fn median_mbps(samples: &[Sample]) -> Option<f64> {
    let v: Vec<f64> = samples.iter().filter(|s| full(s)).map(|s| s.mbps).collect();
    median(&v)
}

/// Each crash's dip and recovery in the full intervals of `samples` (a short last one says
/// little).
pub fn effects(samples: &[Sample], crashes: &[Crash], median: Option<f64>) -> Vec<CrashEffect> {
    crashes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let next = crashes.get(i + 1).map_or(f64::INFINITY, |n| n.at_s);
            // From the crash to the next one: an interval the next crash falls into shows that
            // crash's dip, not this one's.
            let window: Vec<&Sample> = samples
                .iter()
                .filter(|s| full(s) && s.end_s > c.at_s && s.end_s <= next + EPS_S)
                .collect();
            let lowest = window
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.mbps.total_cmp(&b.1.mbps));
            let dip_mbps = lowest.map(|(_, s)| s.mbps);
            let recover_s = match (lowest, median) {
                (Some((at, _)), Some(m)) => window[at..]
                    .iter()
                    .find(|s| s.mbps >= RECOVERED_FRACTION * m)
                    .map(|s| (s.start_s - c.at_s).max(0.0)),
                _ => None,
            };
            let after = samples
                .iter()
                .filter(|s| full(s) && s.end_s > c.at_s && s.start_s < c.at_s + NEAR_S);
            CrashEffect {
                crash: c.clone(),
                dip_mbps,
                recover_s,
                before_mbps: mean(before(samples, c.at_s)),
                after_mbps: mean(after),
            }
        })
        .collect()
}

/// What the recovery phase found.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// Seconds of the stream, as asked.
    pub seconds: u32,
    /// The host's series: what the stock server received per interval.
    pub samples: Vec<Sample>,
    /// The guest client's series: what it wrote per interval.
    pub guest_samples: Vec<Sample>,
    /// The median of the host's full intervals.
    pub median_mbps: Option<f64>,
    /// The crashes and their effect.
    pub crashes: Vec<CrashEffect>,
    /// [`control_lowest`]: the yardstick for the dips.
    pub control_lowest_mbps: Option<f64>,
    /// The guest's summary line.
    pub summary: Option<Iperf3Line>,
    /// What went wrong (a reset, a stall, rs giving up, the session cut short); empty when
    /// nothing did.
    pub problems: Vec<String>,
}

impl Recovery {
    /// Puts the host's server log and the guest's transcript together; `jobs` is the output of
    /// the last command (`None` when the session did not get there) and `session` the session's
    /// failure, if any.
    pub fn assemble(
        seconds: u32,
        server_log: &str,
        guest: GuestSide,
        jobs: Option<&str>,
        session: Option<String>,
    ) -> Self {
        let samples = parse_intervals(server_log);
        let median_mbps = median_mbps(&samples);
        let crashes = effects(&samples, &guest.crashes, median_mbps);
        let control_lowest_mbps = control_lowest(&samples, &guest.crashes);
        let mut problems = guest.problems;
        if let Some(s) = session {
            problems.push(format!("the shell session failed: {s}"));
        }
        match jobs {
            Some(j) => problems.extend(iperf3_job_problem(j)),
            None => problems.push("the session ended before 'jobs'".to_string()),
        }
        if guest.summary.is_none() {
            problems.push("the guest's iperf3 printed no 'iperf3: role=client' line".to_string());
        }
        if samples.is_empty() {
            problems.push("the host's iperf3 server reported no interval".to_string());
        }
        let expected = crash_count(seconds) as usize;
        if guest.crashes.len() != expected {
            problems.push(format!(
                "{} crashes of {CRASH_TARGET} in the transcript, {expected} typed",
                guest.crashes.len()
            ));
        }
        for (i, c) in guest.crashes.iter().enumerate() {
            if c.down_ms.is_none() {
                problems.push(format!(
                    "crash {} of {CRASH_TARGET}: no 'rs: restarted {CRASH_TARGET}' line",
                    i + 1
                ));
            }
        }
        Self {
            seconds,
            samples,
            guest_samples: guest.samples,
            median_mbps,
            crashes,
            control_lowest_mbps,
            summary: guest.summary,
            problems,
        }
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.decimals$}"))
}

/// The table section of the recovery phase.
pub fn table(r: &Recovery) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "recovery: guest iperf3 -> stock iperf3 -s (port {RECOVERY_PORT}) for {} s, 'crash \
         {CRASH_TARGET}' every {CRASH_EVERY_S} s; host-side throughput in {INTERVAL_S} s \
         intervals, median {} Mbit/s over {} intervals",
        r.seconds,
        opt(r.median_mbps, 1),
        r.samples.len()
    );
    let _ = writeln!(
        t,
        "{:>5} {:>7} {:>12} {:>11} {:>10} {:>7} {:>7} {:>22}",
        "crash",
        "at (s)",
        "rs down (ms)",
        "1 s before",
        "1 s after",
        "lowest",
        "/median",
        format!("back >= {:.0}% after (s)", RECOVERED_FRACTION * 100.0)
    );
    let pct = |v: Option<f64>| match (v, r.median_mbps) {
        (Some(d), Some(m)) if m > 0.0 => format!("{:.0}%", d / m * 100.0),
        _ => "-".to_string(),
    };
    for (i, e) in r.crashes.iter().enumerate() {
        let _ = writeln!(
            t,
            "{:>5} {:>7.2} {:>12} {:>11} {:>10} {:>7} {:>7} {:>22}",
            i + 1,
            e.crash.at_s,
            e.crash.down_ms.map_or("-".to_string(), |ms| ms.to_string()),
            opt(e.before_mbps, 1),
            opt(e.after_mbps, 1),
            opt(e.dip_mbps, 1),
            pct(e.dip_mbps),
            e.recover_s
                .map_or("not before the next".to_string(), |s| format!("{s:.2}"))
        );
    }
    let _ = writeln!(
        t,
        "(Mbit/s. 1 s before/after: the mean of the intervals there. For comparison, the \
         lowest interval in the second before a crash: {} Mbit/s, {} of the median)",
        opt(r.control_lowest_mbps, 1),
        pct(r.control_lowest_mbps)
    );
    let befores: Vec<f64> = r.crashes.iter().filter_map(|e| e.before_mbps).collect();
    let afters: Vec<f64> = r.crashes.iter().filter_map(|e| e.after_mbps).collect();
    if let (Some(b), Some(a)) = (median(&befores), median(&afters))
        && b > 0.0
    {
        let _ = writeln!(
            t,
            "recovery: median over the crashes of the second after / the second before: \
             {a:.1} / {b:.1} Mbit/s ({:.0}%)",
            a / b * 100.0
        );
    }
    if let Some(s) = &r.summary {
        let _ = writeln!(
            t,
            "recovery stream: {} bytes in {:.2} s, {:.3} Gbit/s overall (the guest's line)",
            s.bytes, s.seconds, s.gbps
        );
    }
    if r.problems.is_empty() {
        let _ = writeln!(
            t,
            "recovery: the stream survived every crash (no reset, iperf3 exited with 0)"
        );
    }
    for p in &r.problems {
        let _ = writeln!(t, "RECOVERY PROBLEM: {p}");
    }
    t
}

fn samples_json(samples: &[Sample]) -> String {
    let items: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "{{\"start_s\": {}, \"end_s\": {}, \"mbps\": {}}}",
                json_number(Some(s.start_s)),
                json_number(Some(s.end_s)),
                json_number(Some(s.mbps))
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// The `"recovery"` value of the results JSON (one line, no trailing newline).
pub fn json(r: &Recovery) -> String {
    let crashes_at: Vec<String> = r
        .crashes
        .iter()
        .map(|e| json_number(Some(e.crash.at_s)))
        .collect();
    let crashes: Vec<String> = r
        .crashes
        .iter()
        .map(|e| {
            let ratio = match (e.dip_mbps, r.median_mbps) {
                (Some(d), Some(m)) if m > 0.0 => Some(d / m),
                _ => None,
            };
            format!(
                "{{\"at_s\": {}, \"rs_down_ms\": {}, \"dip_mbps\": {}, \"dip_vs_median\": {}, \
                 \"recover_s\": {}, \"before_mbps\": {}, \"after_mbps\": {}}}",
                json_number(Some(e.crash.at_s)),
                e.crash
                    .down_ms
                    .map_or("null".to_string(), |ms| ms.to_string()),
                json_number(e.dip_mbps),
                json_number(ratio),
                json_number(e.recover_s),
                json_number(e.before_mbps),
                json_number(e.after_mbps)
            )
        })
        .collect();
    let problems: Vec<String> = r.problems.iter().map(|p| json_string(p)).collect();
    format!(
        "{{\"target\": {}, \"every_s\": {CRASH_EVERY_S}, \"seconds\": {}, \"interval_s\": {}, \
         \"series\": \"host iperf3 server, received\", \"median_mbps\": {}, \
         \"control_lowest_mbps\": {}, \"recovered_fraction\": {}, \"gbps\": {}, \"samples\": {}, \
         \"crashes_at_s\": [{}], \"crashes\": [{}], \"guest_samples\": {}, \"problems\": [{}]}}",
        json_string(CRASH_TARGET),
        r.seconds,
        json_number(Some(INTERVAL_S)),
        json_number(r.median_mbps),
        json_number(r.control_lowest_mbps),
        json_number(Some(RECOVERED_FRACTION)),
        json_number(r.summary.as_ref().map(|s| s.gbps)),
        samples_json(&r.samples),
        crashes_at.join(", "),
        crashes.join(", "),
        samples_json(&r.guest_samples),
        problems.join(", ")
    )
}

/// A round upper bound for an axis showing `max`.
fn axis_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max <= m * step {
            return m * step;
        }
    }
    10.0 * step
}

/// The line chart: the host's series as steps (each interval at its rate), the crashes as red
/// vertical lines, the median dashed; problems in red under the title.
pub fn svg(r: &Recovery, subtitle: &str) -> String {
    const W: f64 = 760.0;
    const H: f64 = 380.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 740.0;
    const TOP: f64 = 70.0;
    const BOTTOM: f64 = 320.0;
    let x_max = r
        .samples
        .iter()
        .map(|s| s.end_s)
        .fold(f64::from(r.seconds), f64::max);
    let y_max = axis_max(r.samples.iter().map(|s| s.mbps).fold(0.0, f64::max));
    let x = |t: f64| LEFT + (t / x_max).clamp(0.0, 1.0) * (RIGHT - LEFT);
    let y = |v: f64| BOTTOM - (v / y_max).clamp(0.0, 1.0) * (BOTTOM - TOP);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 \
         {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        xml(&format!(
            "Axolotl TCP throughput while {CRASH_TARGET} crashes every {CRASH_EVERY_S} s \
             (Mbit/s per {INTERVAL_S} s, host side)"
        ))
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"40\" fill=\"#444444\">{}</text>",
        xml(subtitle)
    );
    if let Some(p) = r.problems.first() {
        let more = if r.problems.len() > 1 {
            format!(" (and {} more)", r.problems.len() - 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"58\" fill=\"#b00000\">{}</text>",
            xml(&format!("PROBLEM: {p}{more}"))
        );
    }
    // Axes, grid and their labels.
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{RIGHT}\" y2=\"{0:.1}\" stroke=\"#dddddd\"/>",
            y(v)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            json_number(Some(v))
        );
    }
    let mut t = 0u32;
    while f64::from(t) <= x_max {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t}</text>",
            x(f64::from(t)),
            BOTTOM + 16.0
        );
        t += CRASH_EVERY_S;
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds from the stream's start</text>",
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 34.0
    );
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {0})\" text-anchor=\"middle\">Mbit/s</text>",
        (TOP + BOTTOM) / 2.0
    );
    let _ = writeln!(
        s,
        "<polyline points=\"{LEFT},{TOP} {LEFT},{BOTTOM} {RIGHT},{BOTTOM}\" fill=\"none\" \
         stroke=\"#333333\"/>"
    );
    if let Some(m) = r.median_mbps {
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{RIGHT}\" y2=\"{0:.1}\" stroke=\"#888888\" \
             stroke-dasharray=\"6 4\"/>",
            y(m)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#666666\">median {:.1}</text>",
            RIGHT - 2.0,
            y(m) - 4.0,
            m
        );
    }
    for e in &r.crashes {
        let cx = x(e.crash.at_s);
        let _ = writeln!(
            s,
            "<line x1=\"{cx:.1}\" y1=\"{TOP}\" x2=\"{cx:.1}\" y2=\"{BOTTOM}\" stroke=\"#c0392b\" \
             stroke-dasharray=\"3 3\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#c0392b\">crash</text>",
            TOP - 4.0
        );
    }
    let mut points = Vec::new();
    for smp in &r.samples {
        points.push(format!("{:.1},{:.1}", x(smp.start_s), y(smp.mbps)));
        points.push(format!("{:.1},{:.1}", x(smp.end_s), y(smp.mbps)));
    }
    if !points.is_empty() {
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#2f6db5\" stroke-width=\"2\"/>",
            points.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Dir;

    #[test]
    fn the_script_crashes_every_two_seconds_and_waits_for_the_end() {
        let c = guest_commands(16);
        assert_eq!(c[0], "iperf3 -c 10.0.2.2 -p 5202 -t 16 -i 0.25 &");
        assert_eq!(crash_count(16), 7);
        assert_eq!(c.iter().filter(|c| *c == "crash ip").count(), 7);
        assert_eq!(c[1..3], ["sleep 2", "crash ip"]);
        // 16 s stream, 14 s of crashes typed: 2 s more and the margin.
        assert_eq!(c[c.len() - 4], "sleep 6");
        assert_eq!(c[c.len() - 3], "jobs");
        assert_eq!(c[c.len() - 2], "netstat");
        assert_eq!(c[c.len() - 1], "ifconfig");
        assert_eq!(crash_count(4), 1);
        assert_eq!(crash_count(5), 1);
        assert_eq!(crash_count(3), 0);
        assert_eq!(guest_commands(5)[3], "sleep 7");
    }

    #[test]
    fn interval_lines_parse_from_both_iperf3s() {
        // The host's stock server with -f k.
        let host = "[  5]   0.25-0.50   sec  5.62 MBytes  188613 Kbits/sec                  ";
        assert_eq!(
            parse_interval_line(host),
            Some(Sample {
                start_s: 0.25,
                end_s: 0.5,
                mbps: 188.613
            })
        );
        // The guest's own, cut into by the echo of a typed command, and behind a prompt.
        let guest = "slaxolotl> [  5]   2.00-2.87   sec   512 KBytes  4.82 Mbits/sec";
        let g = parse_interval_line(guest).unwrap();
        assert_eq!((g.start_s, g.end_s, g.mbps), (2.0, 2.87, 4.82));
        let zero = "[  5]   3.00-3.25   sec  0.00 Bytes  0.00 Kbits/sec";
        assert_eq!(parse_interval_line(zero).unwrap().mbps, 0.0);
        let g =
            parse_interval_line("[  5]   1.00-2.00   sec  1.1 GBytes  9.42 Gbits/sec  0  1 MBytes")
                .unwrap();
        assert_eq!(g.mbps, 9420.0);
        for not_one in [
            "[  5]   0.00-16.00  sec   306 MBytes   160 Mbits/sec                  receiver",
            "[  5]   0.00-16.00  sec   306 MBytes   160 Mbits/sec    0             sender",
            "[SUM]   0.00-0.25   sec  5.62 MBytes  188613 Kbits/sec",
            "[  5] local 10.0.2.2 port 5202 connected to 10.0.2.15 port 49154",
            "[ ID] Interval           Transfer     Bitrate",
            "[cpu3] injecting a fault into ip (pid 5): jumping to 0x1000",
            "[  5]   0.50-0.25   sec  1 MBytes  1 Mbits/sec",
            "[  5]   0.00-0.25   sec  1 MBytes  NaN Mbits/sec",
            "[  5]   0.00-0.25   sec  1 MBytes  -1 Mbits/sec",
            "[  5]   0.00-0.25   sec  1 MBytes  1 Mbytes/sec",
            "[  5]   x-0.25   sec  1 MBytes  1 Mbits/sec",
            "[  5",
            "",
        ] {
            assert_eq!(parse_interval_line(not_one), None, "{not_one}");
        }
        let text = format!("{host}\nnoise\n{zero}\n");
        assert_eq!(parse_intervals(&text).len(), 2);
    }

    /// The guest's side of a stream with two crashes of ip, as the transcript shows it.
    const GUEST: &str = "\
started iperf3 (pid 12) in the background
axolotl> Connecting to host 10.0.2.2, port 5202
[  5] connected to 10.0.2.2 port 5202
[ ID] Interval           Transfer     Bitrate
[  5]   0.00-0.25   sec  4.50 MBytes   151 Mbits/sec
sleep 2
[  5]   1.75-2.00   sec  4.50 MBytes   151 Mbits/sec
axolotl> crash ip
[cpu3] injecting a fault into ip (pid 5): jumping to 0x1000
[cpu0] rs: rs: restarting ip in 1 ms (failure 1 of at most 5 per 10000 ms)
[cpu0] rs: rs: restarted ip: pid 5 -> 13, down 6 ms
crashed ip (pid 5)
[  5]   2.00-2.80   sec   512 KBytes  5.24 Mbits/sec
[  5]   3.75-4.00   sec  4.50 MBytes   151 Mbits/sec
[cpu3] injecting a fault into ip (pid 13): jumping to 0x1000
[cpu0] rs: rs: restarted ip: pid 13 -> 17, down 12 ms
[  5]   4.00-4.25   sec  4.50 MBytes   151 Mbits/sec
- - - - - - - - - - - - - - - - - - - - - - - - -
[  5]   0.00-6.00   sec   100 MBytes   140 Mbits/sec                  sender
[  5]   0.00-6.01   sec   100 MBytes   139 Mbits/sec                  receiver
iperf3: role=client dir=send bytes=104857600 seconds=6.00 gbps=0.1398
";

    #[test]
    fn the_guest_transcript_places_the_crashes_between_its_intervals() {
        let g = parse_guest(GUEST);
        assert_eq!(g.samples.len(), 5);
        assert_eq!(
            g.crashes,
            [
                Crash {
                    at_s: 2.125,
                    down_ms: Some(6)
                },
                Crash {
                    at_s: 4.125,
                    down_ms: Some(12)
                }
            ]
        );
        let s = g.summary.as_ref().unwrap();
        assert_eq!((s.dir, s.bytes), (Dir::Send, 104_857_600));
        assert!(g.problems.is_empty());
        let bad = format!(
            "{GUEST}iperf3: error - writing a data stream: connection reset by peer\n\
             [cpu0] rs: rs: GIVING UP on ip: 6 failures within 10000 ms (policy allows 5)\n"
        );
        let g = parse_guest(&bad);
        assert_eq!(g.problems.len(), 2);
        assert!(g.problems[0].starts_with("iperf3: error - writing"));
        assert!(g.problems[1].starts_with("rs: GIVING UP on ip"));
        // A restart line before any injection has no crash to go to.
        let g = parse_guest("[cpu0] rs: rs: restarted ip: pid 5 -> 9, down 5 ms\n");
        assert!(g.crashes.is_empty());
    }

    #[test]
    fn jobs_says_how_iperf3_ended() {
        let ok = "PID  NAME    STATE     EXIT  RESTARTS\n 12  iperf3  exited       0         0\n";
        assert_eq!(iperf3_job_problem(ok), None);
        let running = ok.replace("exited       0", "running      -");
        assert!(
            iperf3_job_problem(&running)
                .unwrap()
                .contains("state running, exit -")
        );
        let failed = ok.replace("exited       0", "exited       1");
        assert!(iperf3_job_problem(&failed).unwrap().contains("exit 1"));
        assert!(
            iperf3_job_problem("nothing")
                .unwrap()
                .contains("does not list")
        );
    }

    fn sample(start_s: f64, mbps: f64) -> Sample {
        Sample {
            start_s,
            end_s: start_s + INTERVAL_S,
            mbps,
        }
    }

    /// 6 s at 100 Mbit/s but for a dip after each crash: to 0 for two intervals at 2 s, to 50
    /// for one at 4 s; the last interval is short.
    fn host_log() -> String {
        let mut log = String::from("Server listening on 5202 (test #1)\n");
        for i in 0..24 {
            let t = f64::from(i) * INTERVAL_S;
            let kbps = match i {
                8 | 9 => 0,
                16 => 50_000,
                _ => 100_000,
            };
            let _ = writeln!(
                log,
                "[  5] {t:6.2}-{:<6.2} sec  2.98 MBytes  {kbps} Kbits/sec",
                t + INTERVAL_S
            );
        }
        log.push_str("[  5]   6.00-6.01   sec  1.00 KBytes  800 Kbits/sec\n");
        log.push_str("[  5]   0.00-6.01   sec  70 MBytes  93000 Kbits/sec   receiver\n");
        log
    }

    fn recovery() -> Recovery {
        Recovery::assemble(
            6,
            &host_log(),
            parse_guest(GUEST),
            Some("PID NAME STATE EXIT RESTARTS\n12 iperf3 exited 0 0\n"),
            None,
        )
    }

    #[test]
    fn dips_and_recoveries_per_crash() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let r = recovery();
        assert_eq!(r.samples.len(), 25);
        // The short last interval does not count towards the median.
        assert_eq!(r.median_mbps, Some(100.0));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let [a, b] = &r.crashes[..] else {
            panic!("{:?}", r.crashes)
        };
        assert_eq!((a.dip_mbps, a.crash.down_ms), (Some(0.0), Some(6)));
        // Crash at 2.125; 2.00-2.25 and 2.25-2.50 at 0; back from 2.50.
        assert_eq!(a.recover_s, Some(0.375));
        assert_eq!(b.dip_mbps, Some(50.0));
        assert_eq!(b.recover_s, Some(0.125));
        // A crash that changes nothing recovers at once; one that never recovers says so.
        let flat = [sample(0.0, 100.0), sample(0.25, 100.0)];
        let at = |at_s| Crash {
            at_s,
            down_ms: None,
        };
        let e = effects(&flat, &[at(0.1)], Some(100.0));
        assert_eq!(e[0].recover_s, Some(0.0));
        let low = [sample(0.0, 100.0), sample(0.25, 10.0), sample(0.5, 70.0)];
        let e = effects(&low, &[at(0.3)], Some(100.0));
        assert_eq!((e[0].dip_mbps, e[0].recover_s), (Some(10.0), None));
        // The interval the next crash falls into is that crash's dip, not the first one's.
        let two = [
            sample(0.0, 100.0),
            sample(0.25, 10.0),
            sample(0.5, 100.0),
            sample(0.75, 90.0),
            sample(1.0, 5.0),
            sample(1.25, 100.0),
        ];
        let e = effects(&two, &[at(0.3), at(1.125)], Some(100.0));
        assert_eq!((e[0].dip_mbps, e[0].recover_s), (Some(10.0), Some(0.2)));
        assert_eq!((e[1].dip_mbps, e[1].recover_s), (Some(5.0), Some(0.125)));
        let e = effects(&[], &[at(0.3)], None);
        assert_eq!((e[0].dip_mbps, e[0].recover_s), (None, None));
        assert_eq!((e[0].before_mbps, e[0].after_mbps), (None, None));
        // The yardstick: the lowest of the second before each crash (0.25-0.5 here, not the
        // 10 after the crash at 0.55).
        let noisy = [
            sample(0.0, 100.0),
            sample(0.25, 40.0),
            sample(0.5, 10.0),
            sample(0.75, 100.0),
        ];
        assert_eq!(control_lowest(&noisy, &[at(0.55)]), Some(40.0));
        assert_eq!(control_lowest(&noisy, &[]), None);
    }

    #[test]
    fn problems_are_collected_not_hidden() {
        let r = Recovery::assemble(
            16,
            "",
            parse_guest("[cpu3] injecting a fault into ip (pid 5): jumping to 0x1000\n"),
            None,
            Some("command 'crash ip' failed".into()),
        );
        let all = r.problems.join("\n");
        for part in [
            "the shell session failed: command 'crash ip' failed",
            "ended before 'jobs'",
            "no 'iperf3: role=client' line",
            "reported no interval",
            "1 crashes of ip in the transcript, 7 typed",
            "crash 1 of ip: no 'rs: restarted ip' line",
        ] {
            assert!(all.contains(part), "{part}: {all}");
        }
        let t = table(&r);
        assert!(
            t.contains("RECOVERY PROBLEM: the shell session failed"),
            "{t}"
        );
        assert!(t.contains("not before the next"), "{t}");
    }

    #[test]
    fn the_table_has_a_row_per_crash() {
        let t = table(&recovery());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("for 6 s, 'crash ip' every 2 s"), "{t}");
        assert!(
            lines[0].contains("median 100.0 Mbit/s over 25 intervals"),
            "{t}"
        );
        assert!(lines[1].contains("back >= 80% after (s)"), "{t}");
        let row: Vec<&str> = lines[2].split_ascii_whitespace().collect();
        assert_eq!(
            row,
            ["1", "2.12", "6", "100.0", "60.0", "0.0", "0%", "0.38"],
            "{t}"
        );
        let row: Vec<&str> = lines[3].split_ascii_whitespace().collect();
        assert_eq!(
            row,
            ["2", "4.12", "12", "100.0", "90.0", "50.0", "50%", "0.12"],
            "{t}"
        );
        assert!(t.contains("lowest interval in the second before a crash: 100.0 Mbit/s, 100%"));
        assert!(t.contains("the second after / the second before: 75.0 / 100.0 Mbit/s (75%)"));
        assert!(t.contains("104857600 bytes in 6.00 s, 0.140 Gbit/s overall"));
        assert!(t.contains("survived every crash"));
    }

    #[test]
    fn json_carries_the_series_and_the_crashes() {
        let j = json(&recovery());
        assert!(j.starts_with("{\"target\": \"ip\", \"every_s\": 2, \"seconds\": 6, "));
        assert!(j.contains("\"interval_s\": 0.25"));
        assert!(j.contains("\"control_lowest_mbps\": 100, "));
        assert!(j.contains(
            "\"samples\": [{\"start_s\": 0, \"end_s\": 0.25, \"mbps\": 100}, {\"start_s\": 0.25"
        ));
        assert!(j.contains("\"crashes_at_s\": [2.125, 4.125]"), "{j}");
        assert!(j.contains(
            "{\"at_s\": 2.125, \"rs_down_ms\": 6, \"dip_mbps\": 0, \"dip_vs_median\": 0, \
             \"recover_s\": 0.375, \"before_mbps\": 100, \"after_mbps\": 60}"
        ));
        assert!(j.contains("\"guest_samples\": [{\"start_s\": 0, \"end_s\": 0.25, \"mbps\": 151}"));
        assert!(j.contains("\"problems\": []}"));
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
        let bad = Recovery::assemble(16, "", GuestSide::default(), None, None);
        let j = json(&bad);
        assert!(j.contains("\"median_mbps\": null") && j.contains("\"gbps\": null"));
        assert!(j.contains("\"problems\": [\"the session ended before 'jobs'\""));
    }

    #[test]
    fn the_chart_draws_the_series_the_crashes_and_the_median() {
        let s = svg(&recovery(), "--net tap, \"a\" & <b>");
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("--net tap, &quot;a&quot; &amp; &lt;b&gt;"));
        assert_eq!(s.matches(">crash</text>").count(), 2);
        assert!(s.contains("median 100.0"));
        // y axis up to 100 (the largest rate), x axis to 6.01 s; 2 points per interval.
        let line = s
            .lines()
            .find(|l| l.contains("stroke=\"#2f6db5\""))
            .unwrap();
        assert_eq!(line.matches(',').count(), 50);
        assert!(line.contains("points=\"70.0,70.0 97.9,70.0 "), "{line}");
        assert!(!s.contains("PROBLEM"));
        assert_eq!(s.matches('<').count(), s.matches('>').count());
        let bad = Recovery::assemble(16, "", GuestSide::default(), None, None);
        let s = svg(&bad, "");
        assert!(
            s.contains("PROBLEM: the session ended before 'jobs' (and 3 more)"),
            "{s}"
        );
        assert!(!s.contains("stroke=\"#2f6db5\""));
        assert_eq!(axis_max(0.0), 1.0);
        assert_eq!(axis_max(188.6), 200.0);
        assert_eq!(axis_max(100.0), 100.0);
        assert_eq!(axis_max(101.0), 200.0);
        assert_eq!(axis_max(2.2), 2.5);
    }
}
