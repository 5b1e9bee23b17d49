//! `ping [-c N] [-W S] ADDR`: ICMP echo requests to ADDR through the ip server, printed as
//! iputils' ping prints them.
//!
//! Each echo is one `ipc_call_timeout` to the process `ip` ([`ipd::proto`], `OP_PING`): the
//! server sends the echo request and answers when the echo reply came or `-W` seconds passed
//! (default [`DEFAULT_TIMEOUT_MS`]); the round-trip time is the server's measurement. The shell
//! paces the echoes one second apart (from one send to the next; a late reply makes the next
//! one late) and sends `-c` of them (default [`DEFAULT_COUNT`] — there is no Ctrl-C to stop an
//! endless ping). Output:
//!
//! ```text
//! PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.
//! 64 bytes from 10.0.2.2: icmp_seq=1 time=0.412 ms
//! no reply from 10.0.2.2: icmp_seq=2 (timed out after 2 s)
//! From 10.0.2.15 icmp_seq=3 Destination Host Unreachable
//!
//! --- 10.0.2.2 ping statistics ---
//! 3 packets transmitted, 1 received, +1 errors, 66.6667% packet loss, time 4020ms
//! rtt min/avg/max/mdev = 0.412/0.412/0.412/0.000 ms
//! ```
//!
//! It succeeds when at least one reply came (as iputils), else fails with `ping: no reply from
//! ADDR` and status 1; no ip server, a refused request or an ip server that stops answering
//! fail the same way, with their reason.

use alloc::format;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::Ipv4Addr;

use ipd::proto::{self, PingReply, PingRequest, Request, Status};
use libsys::Message;

use crate::commands::{Failure, Outcome, Sys};
use crate::parse;

/// Echo requests sent when `-c` is not given.
pub const DEFAULT_COUNT: u64 = 4;
/// How long to wait for each reply when `-W` is not given, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 2_000;
/// Time from one echo request to the next.
pub const INTERVAL_NS: u64 = 1_000_000_000;
/// Data bytes of each echo request (as iputils' default).
pub const DATA_BYTES: u16 = proto::DEFAULT_PING_DATA;
/// Most echo requests one `ping` sends (sequence numbers are 16 bits).
pub const MAX_COUNT: u64 = u16::MAX as u64;

const USAGE: &str = "usage: ping [-c COUNT] [-W SECONDS] ADDR";

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Where to.
    pub dst: Ipv4Addr,
    /// How many echo requests.
    pub count: u64,
    /// How long to wait for each reply, in milliseconds.
    pub timeout_ms: u32,
}

/// Parses `[-c N] [-W S] ADDR` (options in any order, before or after the address).
pub fn parse_options(args: &[&str]) -> Result<Options, Failure> {
    let mut dst = None;
    let mut count = DEFAULT_COUNT;
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    let mut words = args.iter();
    while let Some(&w) = words.next() {
        match w {
            "-c" => {
                let v = words.next().ok_or_else(|| Failure::usage(USAGE))?;
                count = parse::parse_count(v)
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "bad count '{v}' (expected 1 to {MAX_COUNT} echo requests)"
                        ))
                    })?;
            }
            "-W" => {
                let v = words.next().ok_or_else(|| Failure::usage(USAGE))?;
                let max = proto::MAX_PING_TIMEOUT_MS;
                timeout_ms = parse::parse_seconds(v)
                    .map(|ns| ns / 1_000_000)
                    .and_then(|ms| u32::try_from(ms).ok())
                    .filter(|ms| (1..=max).contains(ms))
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "bad timeout '{v}' (expected 0.001 to {} seconds)",
                            max / 1000
                        ))
                    })?;
            }
            _ if w.starts_with('-') => {
                return Err(Failure::usage(format!("unknown option '{w}' ({USAGE})")));
            }
            _ if dst.is_some() => {
                return Err(Failure::usage(format!(
                    "unexpected argument '{w}' ({USAGE})"
                )));
            }
            _ => {
                dst = Some(w.parse::<Ipv4Addr>().map_err(|_| {
                    Failure::usage(format!(
                        "bad address '{w}' (expected an IPv4 address such as 10.0.2.2)"
                    ))
                })?);
            }
        }
    }
    let dst = dst.ok_or_else(|| Failure::usage(USAGE))?;
    Ok(Options {
        dst,
        count,
        timeout_ms,
    })
}

/// `ping`: see the module documentation.
pub fn ping(sys: &mut impl Sys, out: &mut impl Write, args: &[&str]) -> Outcome {
    let o = parse_options(args)?;
    let who = proto::SERVICE;
    let ip = sys
        .lookup(who)
        .map_err(|e| Failure::failed(format!("no running process {who} ({e})")))?;
    let dst = o.dst;
    // An identifier of this run, so that two pings at once (one in the background) differ.
    let ident = (sys.time_ns() >> 10) as u16;
    let mut stats = Statistics::default();
    let start = sys.time_ns();
    for seq in 1..=o.count {
        let seq = seq as u16;
        let sent_at = sys.time_ns();
        if seq == 1 {
            writeln!(
                out,
                "PING {dst} ({dst}) {DATA_BYTES}({}) bytes of data.",
                u32::from(DATA_BYTES) + 28
            )?;
        }
        let request = Request::Ping(PingRequest {
            dst,
            ident,
            seq,
            timeout_ms: o.timeout_ms,
            data_len: DATA_BYTES,
        });
        let mut answer: Message = [0; axolotl_abi::IPC_MSG_LEN];
        let called = sys.ipc_call_timeout(
            ip,
            &request.encode(),
            &mut answer,
            proto::call_timeout_ns(o.timeout_ms),
        );
        if let Err(e) = called {
            stats.write(out, dst, sys.time_ns().saturating_sub(start))?;
            return Err(Failure::failed(format!(
                "no answer from {who} (pid {ip}): {e}"
            )));
        }
        let r = PingReply::decode(&answer);
        match r.status {
            Status::Ok => {
                stats.received(r.rtt_ns);
                writeln!(
                    out,
                    "{} bytes from {}: icmp_seq={seq} time={} ms",
                    r.icmp_len,
                    r.from,
                    Millis::rtt(r.rtt_ns)
                )?;
            }
            Status::TimedOut => {
                stats.transmitted += 1;
                writeln!(
                    out,
                    "no reply from {dst}: icmp_seq={seq} (timed out after {} s)",
                    Seconds(o.timeout_ms)
                )?;
            }
            Status::Unreachable => {
                stats.transmitted += 1;
                stats.errors += 1;
                writeln!(
                    out,
                    "From {} icmp_seq={seq} {}",
                    r.from,
                    r.unreachable_text()
                )?;
            }
            Status::Busy | Status::NoBuffer => {
                stats.errors += 1;
                writeln!(out, "ping: icmp_seq={seq}: not sent: {}", r.status)?;
            }
            Status::NoRoute | Status::BadRequest => {
                return Err(Failure::failed(format!("{dst}: {}", r.status)));
            }
        }
        if u64::from(seq) < o.count {
            let next = sent_at.saturating_add(INTERVAL_NS);
            loop {
                let now = sys.time_ns();
                if now >= next {
                    break;
                }
                sys.wait(next - now);
            }
        }
    }
    stats.write(out, dst, sys.time_ns().saturating_sub(start))?;
    if stats.replies.is_empty() {
        return Err(Failure::failed(format!("no reply from {dst}")));
    }
    Ok(())
}

/// What the summary counts.
#[derive(Debug, Default)]
struct Statistics {
    transmitted: u64,
    errors: u64,
    replies: Vec<u64>,
}

impl Statistics {
    fn received(&mut self, rtt_ns: u64) {
        self.transmitted += 1;
        self.replies.push(rtt_ns);
    }

    /// The summary, as iputils prints it.
    fn write(&self, out: &mut impl Write, dst: Ipv4Addr, elapsed_ns: u64) -> core::fmt::Result {
        let received = self.replies.len() as u64;
        writeln!(out)?;
        writeln!(out, "--- {dst} ping statistics ---")?;
        write!(
            out,
            "{} packets transmitted, {received} received, ",
            self.transmitted
        )?;
        if self.errors > 0 {
            write!(out, "+{} errors, ", self.errors)?;
        }
        writeln!(
            out,
            "{}% packet loss, time {}ms",
            Percent::loss(self.transmitted, received),
            elapsed_ns / 1_000_000
        )?;
        if let (Some(&min), Some(&max)) = (self.replies.iter().min(), self.replies.iter().max()) {
            let n = u128::from(received);
            let sum: u128 = self.replies.iter().map(|&r| u128::from(r)).sum();
            let sum2: u128 = self
                .replies
                .iter()
                .map(|&r| u128::from(r) * u128::from(r))
                .sum();
            let avg = sum / n;
            let mdev = isqrt((sum2 / n).saturating_sub(avg * avg));
            writeln!(
                out,
                "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
                Millis::exact(min),
                Millis::exact(avg as u64),
                Millis::exact(max),
                Millis::exact(mdev as u64)
            )?;
        }
        Ok(())
    }
}

/// The integer square root (rounded down).
fn isqrt(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    // Newton's method from an upper bound.
    let mut x = 1u128 << (v.ilog2() / 2 + 1);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Nanoseconds shown as milliseconds, without floating point.
struct Millis {
    ns: u64,
    /// Decimals: 3, or as iputils shows a round-trip time (fewer as it grows).
    decimals: u32,
}

impl Millis {
    /// Three decimals (the summary's precision; trailing zeros kept, as iputils).
    fn exact(ns: u64) -> Self {
        Self { ns, decimals: 3 }
    }

    /// As iputils prints `time=`: 3 decimals below 1 ms, 2 below 10, 1 below 100, then none.
    fn rtt(ns: u64) -> Self {
        let decimals = match ns {
            0..1_000_000 => 3,
            1_000_000..10_000_000 => 2,
            10_000_000..100_000_000 => 1,
            _ => 0,
        };
        Self { ns, decimals }
    }
}

impl core::fmt::Display for Millis {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let us = self.ns / 1_000;
        let (whole, frac) = (us / 1_000, us % 1_000);
        match self.decimals {
            0 => write!(f, "{whole}"),
            1 => write!(f, "{whole}.{}", frac / 100),
            2 => write!(f, "{whole}.{:02}", frac / 10),
            _ => write!(f, "{whole}.{frac:03}"),
        }
    }
}

/// Milliseconds shown as seconds: `2`, `1.5`, `0.25`.
struct Seconds(u32);

impl core::fmt::Display for Seconds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (whole, mut frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let mut digits = 3;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{frac:0digits$}")
    }
}

/// A loss percentage as iputils' `%g` shows it: whole numbers bare, others with up to four
/// decimals (trailing zeros dropped).
struct Percent {
    /// The percentage in units of 1/10000 %.
    tenk: u64,
}

impl Percent {
    fn loss(transmitted: u64, received: u64) -> Self {
        if transmitted == 0 {
            return Self { tenk: 0 };
        }
        let lost = u128::from(transmitted.saturating_sub(received));
        let t = u128::from(transmitted);
        // Rounded to the nearest 1/10000 of a percent.
        let tenk = (lost * 1_000_000 + t / 2) / t;
        Self { tenk: tenk as u64 }
    }
}

impl core::fmt::Display for Percent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (whole, mut frac) = (self.tenk / 10_000, self.tenk % 10_000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let mut digits = 4;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{frac:0digits$}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::commands::tests::{Fake, run};
    use axolotl_abi::Error;
    use ipd::proto::{CountersPage, Info};
    use netproto::{Ipv4Cidr, Mac};

    /// What the fake ip server does with one echo request.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Echo {
        /// The reply comes after this many nanoseconds.
        Reply(u64),
        /// Nothing comes: the server answers "timed out" when the asked timeout passed.
        Lost,
        /// ARP for the next hop failed after this many nanoseconds.
        Unreachable(u64),
        /// The server refuses it.
        Refused(Status),
        /// The call fails (the server died or hung).
        CallFails(Error),
    }

    /// The ip server in the fake kernel: the server's half of `ipd::proto`.
    pub(crate) struct FakeIp {
        pub(crate) pid: u32,
        /// What happens to echo request N (by order of arrival); past the end, `Reply(400 µs)`.
        pub(crate) script: Vec<Echo>,
        /// Every request and the call's timeout.
        pub(crate) calls: Vec<(Message, u64)>,
        pub(crate) info: Info,
        pub(crate) counters: Vec<u64>,
        /// Takes requests but never answers.
        pub(crate) silent: bool,
        pings: usize,
    }

    impl FakeIp {
        pub(crate) fn new(pid: u32) -> Self {
            Self {
                pid,
                script: Vec::new(),
                calls: Vec::new(),
                info: Info {
                    address: "10.0.2.15/24".parse::<Ipv4Cidr>().unwrap(),
                    gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
                    dns: Some(Ipv4Addr::new(10, 0, 2, 3)),
                    mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                    mtu: 1500,
                    arp_entries: 1,
                    pings_in_flight: 0,
                },
                counters: Vec::new(),
                silent: false,
                pings: 0,
            }
        }

        /// One call: the answer, with the fake clock moved on by the time it took.
        pub(crate) fn call(
            &mut self,
            msg: &Message,
            reply: &mut Message,
            timeout_ns: u64,
            now: &mut u64,
        ) -> Result<(), Error> {
            self.calls.push((*msg, timeout_ns));
            if self.silent {
                *now += timeout_ns;
                return Err(Error::TimedOut);
            }
            let Some(req) = Request::decode(msg) else {
                *reply = proto::status_reply(Status::BadRequest);
                return Ok(());
            };
            let p = match req {
                Request::Info => {
                    *reply = self.info.encode();
                    return Ok(());
                }
                Request::Counters { first } => {
                    *reply = CountersPage::of(&self.counters, first).encode();
                    return Ok(());
                }
                Request::Ping(p) => p,
            };
            let step = self
                .script
                .get(self.pings)
                .copied()
                .unwrap_or(Echo::Reply(400_000));
            self.pings += 1;
            let us = Ipv4Addr::new(10, 0, 2, 15);
            let r = match step {
                Echo::Reply(rtt) => {
                    *now += rtt;
                    PingReply {
                        status: Status::Ok,
                        rtt_ns: rtt,
                        from: p.dst,
                        seq: p.seq,
                        icmp_len: 8 + p.data_len,
                        ttl: 255,
                        unreachable_code: 0,
                    }
                }
                Echo::Lost => {
                    *now += u64::from(p.timeout_ms) * 1_000_000;
                    PingReply::failed(Status::TimedOut, us, p.seq)
                }
                Echo::Unreachable(after) => {
                    *now += after;
                    PingReply::failed(Status::Unreachable, us, p.seq)
                }
                Echo::Refused(s) => PingReply::failed(s, p.dst, p.seq),
                Echo::CallFails(e) => {
                    *now += timeout_ns;
                    return Err(e);
                }
            };
            *reply = r.encode();
            Ok(())
        }

        /// The ping requests received.
        pub(crate) fn pings(&self) -> Vec<PingRequest> {
            self.calls
                .iter()
                .filter_map(|(m, _)| match Request::decode(m) {
                    Some(Request::Ping(p)) => Some(p),
                    _ => None,
                })
                .collect()
        }
    }

    fn with_ip(script: &[Echo]) -> Fake {
        let mut k = Fake::new();
        let mut ip = FakeIp::new(6);
        ip.script = script.to_vec();
        k.ip = Some(ip);
        k
    }

    #[test]
    fn three_replies() {
        let mut k = with_ip(&[
            Echo::Reply(412_345),
            Echo::Reply(1_234_567),
            Echo::Reply(25_000_000),
        ]);
        let (status, out) = run(&mut k, "ping -c 3 10.0.2.2");
        assert_eq!(status, 0, "{out}");
        assert_eq!(
            out,
            "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.\n\
             64 bytes from 10.0.2.2: icmp_seq=1 time=0.412 ms\n\
             64 bytes from 10.0.2.2: icmp_seq=2 time=1.23 ms\n\
             64 bytes from 10.0.2.2: icmp_seq=3 time=25.0 ms\n\
             \n\
             --- 10.0.2.2 ping statistics ---\n\
             3 packets transmitted, 3 received, 0% packet loss, time 2025ms\n\
             rtt min/avg/max/mdev = 0.412/8.882/25.000/11.401 ms\n"
        );
        let ip = k.ip.as_ref().unwrap();
        let pings = ip.pings();
        assert_eq!(pings.len(), 3);
        assert!(pings.iter().all(|p| p.dst == Ipv4Addr::new(10, 0, 2, 2)
            && p.ident == pings[0].ident
            && p.timeout_ms == DEFAULT_TIMEOUT_MS
            && p.data_len == 56));
        assert_eq!(pings.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2, 3]);
        // Each call may last the ping's timeout plus a second; the echoes are paced 1 s apart.
        assert!(ip.calls.iter().all(|&(_, t)| t == 3_000_000_000));
    }

    #[test]
    fn losses_and_unreachables_are_reported_and_counted() {
        let mut k = with_ip(&[
            Echo::Lost,
            Echo::Reply(500_000),
            Echo::Unreachable(3_000_000_000),
        ]);
        let (status, out) = run(&mut k, "ping -W 1.5 -c 3 10.0.2.2");
        assert_eq!(status, 0, "one reply is a success: {out}");
        assert_eq!(
            out,
            "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.\n\
             no reply from 10.0.2.2: icmp_seq=1 (timed out after 1.5 s)\n\
             64 bytes from 10.0.2.2: icmp_seq=2 time=0.500 ms\n\
             From 10.0.2.15 icmp_seq=3 Destination Host Unreachable\n\
             \n\
             --- 10.0.2.2 ping statistics ---\n\
             3 packets transmitted, 1 received, +1 errors, 66.6667% packet loss, time 5500ms\n\
             rtt min/avg/max/mdev = 0.500/0.500/0.500/0.000 ms\n"
        );
        assert_eq!(k.ip.as_ref().unwrap().pings()[0].timeout_ms, 1500);
    }

    #[test]
    fn no_reply_at_all_fails() {
        let mut k = with_ip(&[Echo::Lost, Echo::Lost]);
        let (status, out) = run(&mut k, "ping -c 2 -W 1 10.0.2.99");
        assert_eq!(status, 1);
        assert!(
            out.ends_with(
                "2 packets transmitted, 0 received, 100% packet loss, time 2000ms\n\
                 ping: no reply from 10.0.2.99\n[exit 1]\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn refusals_and_a_dead_server_fail_with_their_reason() {
        let mut k = with_ip(&[Echo::Refused(Status::NoRoute)]);
        assert_eq!(
            run(&mut k, "ping 10.0.2.15"),
            (
                1,
                "PING 10.0.2.15 (10.0.2.15) 56(84) bytes of data.\n\
                 ping: 10.0.2.15: no route to host\n[exit 1]\n"
                    .into()
            )
        );
        let mut k = with_ip(&[Echo::Reply(1_000), Echo::CallFails(Error::Gone)]);
        let (status, out) = run(&mut k, "ping 10.0.2.2");
        assert_eq!(status, 1);
        assert!(
            out.ends_with(
                "1 packets transmitted, 1 received, 0% packet loss, time 4000ms\n\
                 rtt min/avg/max/mdev = 0.001/0.001/0.001/0.000 ms\n\
                 ping: no answer from ip (pid 6): peer gone\n[exit 1]\n"
            ),
            "{out}"
        );
        // A buffer shortage loses one echo; the run goes on.
        let mut k = with_ip(&[Echo::Refused(Status::NoBuffer)]);
        let (status, out) = run(&mut k, "ping -c 2 10.0.2.2");
        assert_eq!(status, 0);
        assert!(
            out.contains("ping: icmp_seq=1: not sent: no transmit buffer free\n"),
            "{out}"
        );
        assert!(
            out.contains("1 packets transmitted, 1 received, +1 errors, 0% packet loss"),
            "{out}"
        );
        // No ip server at all.
        let mut k = Fake::new();
        assert_eq!(
            run(&mut k, "ping 10.0.2.2"),
            (
                1,
                "ping: no running process ip (not found)\n[exit 1]\n".into()
            )
        );
    }

    #[test]
    fn four_echoes_by_default_one_second_apart() {
        let mut k = with_ip(&[]);
        let (status, out) = run(&mut k, "ping 10.0.2.2");
        assert_eq!(status, 0);
        assert!(
            out.contains("4 packets transmitted, 4 received, 0% packet loss, time 3000ms"),
            "{out}"
        );
        assert_eq!(k.ip.as_ref().unwrap().pings().len(), 4);
    }

    #[test]
    fn bad_command_lines() {
        let mut k = with_ip(&[]);
        for (line, reason) in [
            ("ping", USAGE.to_string()),
            ("ping -c", USAGE.to_string()),
            (
                "ping -c 0 10.0.2.2",
                "bad count '0' (expected 1 to 65535 echo requests)".into(),
            ),
            (
                "ping -c x 10.0.2.2",
                "bad count 'x' (expected 1 to 65535 echo requests)".into(),
            ),
            (
                "ping -W 0 10.0.2.2",
                "bad timeout '0' (expected 0.001 to 60 seconds)".into(),
            ),
            (
                "ping -W 61 10.0.2.2",
                "bad timeout '61' (expected 0.001 to 60 seconds)".into(),
            ),
            (
                "ping -t 5 10.0.2.2",
                format!("unknown option '-t' ({USAGE})"),
            ),
            (
                "ping 10.0.2.2 10.0.2.3",
                format!("unexpected argument '10.0.2.3' ({USAGE})"),
            ),
            (
                "ping example.com",
                "bad address 'example.com' (expected an IPv4 address such as 10.0.2.2)".into(),
            ),
        ] {
            assert_eq!(
                run(&mut k, line),
                (2, format!("ping: {reason}\n[exit 2]\n")),
                "{line}"
            );
        }
        assert!(k.ip.as_ref().unwrap().calls.is_empty());
        assert_eq!(
            parse_options(&["10.0.2.2", "-c", "2"]).unwrap(),
            Options {
                dst: Ipv4Addr::new(10, 0, 2, 2),
                count: 2,
                timeout_ms: DEFAULT_TIMEOUT_MS
            }
        );
    }

    #[test]
    fn numbers_print_as_iputils_prints_them() {
        let m = |ns| format!("{}", Millis::rtt(ns));
        assert_eq!(
            [m(412_999), m(1_239_000), m(25_990_000), m(123_456_789)],
            ["0.412", "1.23", "25.9", "123"]
        );
        assert_eq!(format!("{}", Millis::exact(1_500_000_000)), "1500.000");
        let p = |t, r| format!("{}", Percent::loss(t, r));
        assert_eq!(
            [
                p(3, 1),
                p(3, 2),
                p(4, 1),
                p(7, 6),
                p(1, 1),
                p(1, 0),
                p(0, 0)
            ],
            ["66.6667", "33.3333", "75", "14.2857", "0", "100", "0"]
        );
        assert_eq!(p(8, 7), "12.5");
        let s = |ms| format!("{}", Seconds(ms));
        assert_eq!(
            [s(2000), s(1500), s(250), s(1), s(60_000)],
            ["2", "1.5", "0.25", "0.001", "60"]
        );
        for v in [0u128, 1, 2, 3, 4, 15, 16, 17, 1 << 40, u128::from(u64::MAX)] {
            let r = isqrt(v);
            assert!(r * r <= v && (r + 1) * (r + 1) > v, "{v}");
        }
    }
}
