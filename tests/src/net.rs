//! The network stack's end-to-end scenarios with host programs as the peer (DESIGN.md §6,
//! docs/netpath.md): 50 MiB echoed over TCP and over UDP by `echo-server` in the guest, and
//! 50 MiB sent by the guest's `nc` to a host server — every byte checked by SHA-256 (TCP) or
//! datagram by datagram (UDP). Traffic goes only to 127.0.0.1 (QEMU forwards it into the guest;
//! the guest's 10.0.2.2 is the host's loopback).
//!
//! The guest's script ends with `nc -l DONE_PORT`: the shell waits in it until the host client,
//! finished, connects there — so a boot lasts as long as the transfer, not a fixed sleep.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::ports::host_ports;
use crate::{BootSpec, Harness, ManifestSource, NET_MANIFEST, NicModel, ScenarioResult};

/// Bytes each transfer carries.
pub const TRANSFER_BYTES: u64 = 50 << 20;
/// Guest port the host connects to when it is done.
const DONE_PORT: u16 = 9;

/// xorshift64 bytes: the host side's test data.
struct Pattern(u64);

impl Pattern {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// Connects to `port` until the guest answers a 4-byte probe with the same bytes (QEMU accepts
/// on the host at once and resets when nothing listens in the guest yet), for up to `limit`.
fn connect_echo(port: u16, limit: Duration, stop: &AtomicBool) -> Result<TcpStream, String> {
    let start = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || start.elapsed() > limit {
            return Err(format!("no TCP echo from the guest within {limit:?}"));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut probe = [0u8; 4];
            if s.write_all(b"ping").is_ok() && s.read_exact(&mut probe).is_ok() && &probe == b"ping"
            {
                return Ok(s);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Tells the guest's `nc -l` behind host port `port` that the host is done, retrying while
/// the guest has not started it yet (QEMU then resets the connection), for up to `limit` or
/// until `stop` (the boot is over).
pub(crate) fn say_done(port: u16, limit: Duration, stop: &AtomicBool) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port))
            && s.write_all(b"host: done\n").is_ok()
        {
            let _ = s.shutdown(std::net::Shutdown::Write);
            // The guest's close says the bytes arrived.
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut b = [0u8; 16];
            if matches!(s.read(&mut b), Ok(0)) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "the guest's nc -l {DONE_PORT} never took the host's word"
    ))
}

/// What a TCP echo run saw.
struct TcpEcho {
    sent: u64,
    echoed: u64,
    identical: bool,
    secs: f64,
}

/// Sends `bytes` of the pattern through the echo at `port` and reads the echo back, hashing
/// both streams as they go.
fn tcp_echo(port: u16, bytes: u64, stop: &AtomicBool) -> Result<TcpEcho, String> {
    let stream = connect_echo(port, Duration::from_secs(60), stop)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let echo = std::thread::spawn(move || {
        let (mut hash, mut got) = (Sha256::new(), 0u64);
        let mut buf = vec![0u8; 1 << 16];
        while got < bytes {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    hash.update(&buf[..n]);
                    got += n as u64;
                }
            }
        }
        (got, hash.finalize())
    });
    let mut writer = stream;
    let (mut pattern, mut hash) = (Pattern(0x9E37_79B9_7F4A_7C15), Sha256::new());
    let mut buf = vec![0u8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        pattern.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|e| format!("sending, {} bytes in: {e}", bytes - left))?;
        left -= n as u64;
    }
    let (echoed, echo_hash) = echo.join().map_err(|_| "the reader panicked".to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let _ = writer.shutdown(std::net::Shutdown::Both);
    Ok(TcpEcho {
        sent: bytes,
        echoed,
        identical: echoed == bytes && echo_hash == hash.finalize(),
        secs,
    })
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs.max(1e-9)
}

/// The boot of an echo scenario: `echo-server PROTO 7` in the background, then `nc -l 9` until
/// the host is done, then `ps` and `stat`.
/// The network stack's layout a scenario boots (DESIGN.md §8; `layout=` on the kernel command
/// line): the same scenario passes in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// pf, ip, udp and tcp, each a process on a CPU of its own.
    Split,
    /// The four linked into one `netstack` process on one CPU.
    Single,
    /// The split layout with the kernel-IPC baseline (`ipc=kernel`): the kernel moves every
    /// message between the processes, one trap each.
    KernelIpc,
    /// The split layout with servers that poll through idle gaps (`idle=poll`).
    IdlePoll,
}

impl Layout {
    /// The kernel command-line word that chooses it.
    pub fn cmdline(self) -> &'static str {
        match self {
            Self::Split => "",
            Self::Single => "layout=single",
            Self::KernelIpc => "ipc=kernel",
            Self::IdlePoll => "idle=poll",
        }
    }

    /// The scenario `base`'s name in this layout (`_single` added for the single layout).
    pub fn name(self, base: &str) -> String {
        match self {
            Self::Split => base.to_string(),
            Self::Single => format!("{base}_single"),
            Self::KernelIpc => format!("{base}_kernel_ipc"),
            Self::IdlePoll => format!("{base}_idle_poll"),
        }
    }

    /// The processes that must be alone on their CPUs when the stack's `servers` carry the
    /// traffic: the driver and those servers, or the driver and the netstack that is them all.
    fn alone<'a>(self, servers: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["e1000"];
        match self {
            Self::Split | Self::KernelIpc | Self::IdlePoll => v.extend_from_slice(servers),
            Self::Single => v.push("netstack"),
        }
        v
    }

    /// What pf's CPU shows of the transport, from its system calls against the data frames
    /// `bytes` took each way (a note for the scenario's line, or why it is wrong):
    /// - with kernel IPC, the proof that the kernel moved the messages: at least two per frame
    ///   (pf takes and passes on every frame and its buffer's return: four traps each; over
    ///   channels it makes a fraction of one);
    /// - with `idle=poll`, that pf polled through the gaps: fewer than one per 100 frames (a
    ///   sleep and its wake-up only at gaps over 20 ms; sleeping after a few thousand empty
    ///   rounds, as by default, it made one per 25 in `tcp_echo_50mib`).
    fn check_traps(self, r: &crate::BootResult, bytes: u64) -> Result<String, String> {
        if !matches!(self, Self::KernelIpc | Self::IdlePoll) {
            return Ok(String::new());
        }
        let rows = crate::ps_rows(r, "ps")?;
        let cpu = crate::ps_row(&rows, "pf")?.cpu;
        let stat = r.output_of("stat")?;
        let syscalls = stat_syscalls(stat, cpu)
            .ok_or_else(|| format!("stat has no row for cpu{cpu}:\n{stat}"))?;
        let frames = 2 * bytes / 1460;
        let per_1k = syscalls as f64 * 1000.0 / frames as f64;
        let note = format!("; pf's cpu{cpu}: {syscalls} system calls, {per_1k:.1} per 1k frames");
        match self {
            Self::KernelIpc if syscalls < 2 * frames => Err(format!(
                "pf's cpu{cpu} made {syscalls} system calls for at least {frames} data frames: \
                 the kernel did not move the messages"
            )),
            Self::IdlePoll if syscalls * 100 >= frames => Err(format!(
                "pf's cpu{cpu} made {syscalls} system calls for at least {frames} data frames \
                 under idle=poll: it slept through the transfer rather than polled"
            )),
            _ => Ok(note),
        }
    }
}

/// The system calls column of `stat`'s row for CPU `cpu`.
fn stat_syscalls(stat: &str, cpu: u32) -> Option<u64> {
    let rows = crate::shell::parse_stat(stat)?;
    Some(rows.iter().find(|r| r.cpu == cpu)?.syscalls)
}

fn echo_spec(proto: &str, echo_port: u16, done_port: u16, layout: Layout) -> BootSpec {
    let start = format!("echo-server {proto} 7 &");
    let done = format!("nc -l {DONE_PORT}");
    BootSpec::bios(8, layout.cmdline())
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(proto == "tcp", echo_port, 7)
        .forward(true, done_port, DONE_PORT)
        .exec(&[&start, &done, "netstat", "ps", "stat"])
        .timeout(Duration::from_secs(400))
}

/// Runs `client` in a thread while the guest boots with `spec`; `stop` is set when the boot
/// is over (every wait of the client's must watch it).
pub(crate) fn with_client<T: Send + 'static>(
    h: &dyn Harness,
    name: &str,
    spec: &BootSpec,
    client: impl FnOnce(&AtomicBool) -> Result<T, String> + Send + 'static,
) -> (crate::BootResult, Result<T, String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_client = stop.clone();
    let thread = std::thread::spawn(move || client(&stop_client));
    let boot = h.boot(name, spec);
    stop.store(true, Ordering::Relaxed);
    let result = thread
        .join()
        .unwrap_or_else(|_| Err("the client thread panicked".into()));
    (boot, result)
}

/// Runs `client`, then tells the guest's `nc -l` behind `done` that the host is done.
fn then_done<T>(
    done: u16,
    client: impl FnOnce(&AtomicBool) -> Result<T, String>,
) -> impl FnOnce(&AtomicBool) -> Result<T, String> {
    move |stop| {
        let r = client(stop);
        let _ = say_done(done, Duration::from_secs(30), stop);
        r
    }
}

/// Checks that `names` are each alone on a CPU in the boot's `ps`.
fn dedicated(r: &crate::BootResult, names: &[&str]) -> Result<(), String> {
    let rows = crate::ps_rows(r, "ps")?;
    for name in names {
        if !crate::ps_row(&rows, name)?.dedicated {
            return Err(format!("{name} is not alone on its CPU"));
        }
    }
    Ok(())
}

/// A host client streams 50 MiB through `echo-server tcp 7` in the guest (behind e1000, pf, ip
/// and tcp, each on its own CPU) and reads the echo back: same length, same SHA-256.
pub fn tcp_echo_50mib(h: &dyn Harness) -> ScenarioResult {
    tcp_echo_50mib_in(h, Layout::Split)
}

/// [`tcp_echo_50mib`] with the kernel moving every message (`ipc=kernel`).
pub fn tcp_echo_50mib_kernel_ipc(h: &dyn Harness) -> ScenarioResult {
    tcp_echo_50mib_in(h, Layout::KernelIpc)
}

/// [`tcp_echo_50mib`] with servers that poll through idle gaps (`idle=poll`).
pub fn tcp_echo_50mib_idle_poll(h: &dyn Harness) -> ScenarioResult {
    tcp_echo_50mib_in(h, Layout::IdlePoll)
}

/// [`tcp_echo_50mib`] through the single layout's netstack.
pub fn tcp_echo_50mib_single(h: &dyn Harness) -> ScenarioResult {
    tcp_echo_50mib_in(h, Layout::Single)
}

fn tcp_echo_50mib_in(h: &dyn Harness, layout: Layout) -> ScenarioResult {
    let [port, done] = host_ports()?;
    let spec = echo_spec("tcp", port, done, layout);
    let (r, result) = with_client(
        h,
        &layout.name("tcp_echo_50mib"),
        &spec,
        then_done(done, move |stop| tcp_echo(port, TRANSFER_BYTES, stop)),
    );
    r.exec_verdict()?;
    let e = result?;
    if !e.identical {
        return Err(format!(
            "{} bytes sent, {} echoed, SHA-256 equal: {}",
            e.sent,
            e.echoed,
            e.echoed == e.sent
        ));
    }
    dedicated(&r, &layout.alone(&["pf", "ip", "tcp"]))?;
    let traps = layout.check_traps(&r, TRANSFER_BYTES)?;
    let netstat = r.output_of("netstat")?;
    if !netstat.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.get(..3) == Some(&["tcp", "echo-server", "7"]) && w.get(4) == Some(&"LISTEN")
    }) {
        return Err(format!(
            "netstat does not show echo-server listening on 7:\n{netstat}"
        ));
    }
    Ok(Some(format!(
        "50 MiB echoed, SHA-256 identical, in {:.1} s ({:.1} MiB/s each way){traps}",
        e.secs,
        mib_per_s(e.sent, e.secs)
    )))
}

/// Largest UDP payload without IP fragmentation on a 1500-byte MTU.
const MAX_DATAGRAM: usize = 1472;
/// Datagrams in flight at once.
const UDP_WINDOW: u64 = 32;

/// The datagram of sequence number `seq`: the number, then pattern bytes derived from it; most
/// are full-size, every 16th has a size of its own (0..=1472 after the number).
fn datagram(seq: u64, buf: &mut Vec<u8>) {
    let len = if seq % 16 == 15 {
        8 + (seq as usize * 37) % (MAX_DATAGRAM - 7)
    } else {
        MAX_DATAGRAM
    };
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.resize(len, 0);
    Pattern(seq.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1).fill(&mut buf[8..]);
}

/// What a UDP echo run saw.
struct UdpEcho {
    datagrams: u64,
    bytes: u64,
    echoed: u64,
    lost: u64,
    corrupt: u64,
    secs: f64,
}

/// Sends datagrams of `bytes` in all through the echo at `port`, `UDP_WINDOW` at a time, and
/// checks every echo against what its sequence number says it must be.
fn udp_echo(port: u16, bytes: u64, stop: &AtomicBool) -> Result<UdpEcho, String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.connect(("127.0.0.1", port))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    // Wait for the echo server (the guest boots meanwhile).
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        let _ = sock.send(b"probe");
        if let Ok(n) = sock.recv(&mut buf)
            && &buf[..n] == b"probe"
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) || stop.load(Ordering::Relaxed) {
            return Err("no UDP echo from the guest within 60 s".into());
        }
    }
    // Late probe echoes are told apart by their length (5 bytes, no sequence number).
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let (mut seq, mut sent_bytes, mut echoed, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    let mut expect = Vec::with_capacity(MAX_DATAGRAM);
    while sent_bytes < bytes {
        if stop.load(Ordering::Relaxed) {
            return Err(format!("the guest stopped after {seq} datagrams"));
        }
        let first = seq;
        for _ in 0..UDP_WINDOW {
            datagram(seq, &mut out);
            sock.send(&out).map_err(|e| format!("send: {e}"))?;
            sent_bytes += out.len() as u64;
            seq += 1;
        }
        // Collect this window's echoes (a lost one ends the wait at the timeout).
        let mut got = 0;
        while got < UDP_WINDOW {
            let Ok(n) = sock.recv(&mut buf) else {
                break;
            };
            if n < 8 {
                continue;
            }
            let s = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
            datagram(s, &mut expect);
            if s >= seq || buf[..n] != expect[..] || !seen.insert(s) {
                corrupt += 1;
                continue;
            }
            echoed += 1;
            if s >= first {
                got += 1;
            }
        }
    }
    Ok(UdpEcho {
        datagrams: seq,
        bytes: sent_bytes,
        echoed,
        lost: seq - echoed,
        corrupt,
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// A host client sends 50 MiB in datagrams of up to 1472 bytes through `echo-server udp 7` in
/// the guest (behind e1000, pf, ip and udp), 32 in flight at a time: every echo must be the very
/// datagram sent (checked against its sequence number), losses are counted and must stay under
/// 1%.
pub fn udp_echo_50mib(h: &dyn Harness) -> ScenarioResult {
    udp_echo_50mib_in(h, Layout::Split)
}

/// [`udp_echo_50mib`] with the kernel moving every message (`ipc=kernel`).
pub fn udp_echo_50mib_kernel_ipc(h: &dyn Harness) -> ScenarioResult {
    udp_echo_50mib_in(h, Layout::KernelIpc)
}

/// [`udp_echo_50mib`] through the single layout's netstack.
pub fn udp_echo_50mib_single(h: &dyn Harness) -> ScenarioResult {
    udp_echo_50mib_in(h, Layout::Single)
}

fn udp_echo_50mib_in(h: &dyn Harness, layout: Layout) -> ScenarioResult {
    let [port, done] = host_ports()?;
    let spec = echo_spec("udp", port, done, layout);
    let (r, result) = with_client(
        h,
        &layout.name("udp_echo_50mib"),
        &spec,
        then_done(done, move |stop| udp_echo(port, TRANSFER_BYTES, stop)),
    );
    r.exec_verdict()?;
    let e = result?;
    let summary = format!(
        "{} datagrams ({} bytes), {} echoed intact, {} lost, {} wrong, in {:.1} s ({:.1} MiB/s)",
        e.datagrams,
        e.bytes,
        e.echoed,
        e.lost,
        e.corrupt,
        e.secs,
        mib_per_s(e.bytes, e.secs)
    );
    if e.corrupt > 0 || e.lost * 100 > e.datagrams {
        return Err(summary);
    }
    dedicated(&r, &layout.alone(&["pf", "ip", "udp"]))?;
    let traps = layout.check_traps(&r, TRANSFER_BYTES)?;
    Ok(Some(format!("{summary}{traps}")))
}

/// The guest's `nc 10.0.2.2 PORT --send 50M` connects out, through tcp, ip, pf and e1000, to a
/// server on the host's loopback, which hashes what arrives: the guest's printed SHA-256 of
/// what it sent must match.
pub fn nc_sends_50mib_to_a_host_server(h: &dyn Harness) -> ScenarioResult {
    nc_sends_50mib_in(h, Layout::Split)
}

/// [`nc_sends_50mib_to_a_host_server`] with the kernel moving every message (`ipc=kernel`).
pub fn nc_sends_50mib_to_a_host_server_kernel_ipc(h: &dyn Harness) -> ScenarioResult {
    nc_sends_50mib_in(h, Layout::KernelIpc)
}

/// [`nc_sends_50mib_to_a_host_server`] through the single layout's netstack.
pub fn nc_sends_50mib_to_a_host_server_single(h: &dyn Harness) -> ScenarioResult {
    nc_sends_50mib_in(h, Layout::Single)
}

fn nc_sends_50mib_in(h: &dyn Harness, layout: Layout) -> ScenarioResult {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_server = stop.clone();
    let server = std::thread::spawn(move || -> Result<(u64, String, f64), String> {
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if !stop_server.load(Ordering::Relaxed) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => return Err("the guest never connected".into()),
            }
        };
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let (mut hash, mut got, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 16]);
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hash.update(&buf[..n]);
                    got += n as u64;
                }
                Err(e) => return Err(format!("reading, {got} bytes in: {e}")),
            }
        }
        let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok((got, hex, t0.elapsed().as_secs_f64()))
    });
    let command = format!("nc 10.0.2.2 {port} --send 50M");
    let spec = BootSpec::bios(8, layout.cmdline())
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .exec(&["sleep 3", &command, "ps"])
        .timeout(Duration::from_secs(400));
    let r = h.boot(&layout.name("nc_sends_50mib_to_a_host_server"), &spec);
    stop.store(true, Ordering::Relaxed);
    let result = server
        .join()
        .unwrap_or_else(|_| Err("the server thread panicked".into()));
    r.exec_verdict()?;
    let (got, host_hash, secs) = result?;
    let out = r.output_of(&command)?;
    let line = out
        .lines()
        .find(|l| l.starts_with("nc: sent="))
        .ok_or_else(|| format!("nc printed no summary: {out}"))?;
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
            .ok_or_else(|| format!("no {k} in '{line}'"))
    };
    let (sent, guest_hash) = (field("sent=")?, field("sent_sha256=")?);
    if sent != TRANSFER_BYTES.to_string() || got != TRANSFER_BYTES || guest_hash != host_hash {
        return Err(format!(
            "the guest sent {sent} bytes (SHA-256 {guest_hash}), the host got {got} \
             (SHA-256 {host_hash})"
        ));
    }
    dedicated(&r, &layout.alone(&["pf", "ip", "tcp"]))?;
    Ok(Some(format!(
        "50 MiB from the guest, SHA-256 identical, {:.1} s at the host ({:.1} MiB/s)",
        secs,
        mib_per_s(got, secs)
    )))
}

/// A child process killed (and reaped) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stock iperf3, or why not.
fn iperf3() -> Result<&'static str, String> {
    let ok = std::process::Command::new("iperf3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok("iperf3")
    } else {
        Err("install iperf3 (apt-get install iperf3): the host side of this scenario".into())
    }
}

/// The guest's `iperf3:` summary lines in the output of `command`.
fn guest_iperf3_lines(r: &crate::BootResult, command: &str) -> Result<Vec<String>, String> {
    let out = r.output_of(command)?;
    let lines: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("iperf3: role="))
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(format!("'{command}' printed no 'iperf3:' line:\n{out}"));
    }
    for l in &lines {
        let bytes: u64 = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("bytes="))
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| format!("no bytes= in '{l}'"))?;
        if bytes == 0 {
            return Err(format!("'{command}' moved nothing: {l}"));
        }
    }
    Ok(lines)
}

/// The gbps= of an `iperf3:` line.
fn gbps(line: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("gbps="))
        .unwrap_or("?")
        .to_string()
}

/// The guest's iperf3 client runs against a stock `iperf3 -s` on the host's loopback (the
/// guest's 10.0.2.2), sending and then receiving (`-R`): both complete, the host's server
/// reports each transfer, and the guest prints its summary line with bytes moved.
pub fn iperf3_guest_client_to_host_server(h: &dyn Harness) -> ScenarioResult {
    let bin = iperf3()?;
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let log = h
        .folder("iperf3_guest_client_to_host_server")?
        .join("host-iperf3.txt");
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let server = Child(
        std::process::Command::new(bin)
            .args([
                "-s",
                "-B",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--forceflush",
            ])
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {bin}: {e}"))?,
    );
    let send = format!("iperf3 -c 10.0.2.2 -p {port} -t 3");
    let recv = format!("iperf3 -c 10.0.2.2 -p {port} -t 3 -R");
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .exec(&["sleep 3", &send, &recv])
        .timeout(Duration::from_secs(240));
    let r = h.boot("iperf3_guest_client_to_host_server", &spec);
    drop(server);
    r.exec_verdict()?;
    let up = guest_iperf3_lines(&r, &send)?;
    let down = guest_iperf3_lines(&r, &recv)?;
    let host = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let reports = host
        .lines()
        .filter(|l| l.contains("receiver") || l.contains("sender"))
        .count();
    if reports < 2 {
        return Err(format!(
            "the host's iperf3 reported no finished test:\n{host}"
        ));
    }
    Ok(Some(format!(
        "guest sends {} Gbit/s, receives {} Gbit/s (host iperf3 log: {})",
        gbps(&up[0]),
        gbps(&down[0]),
        log.display()
    )))
}

/// A stock `iperf3 -c` on the host runs against the guest's `iperf3 -s` through a forwarded
/// loopback port, sending and then receiving (`-R`): both complete with the host's iperf3
/// reporting the transfer (exit status 0, sender and receiver lines).
pub fn iperf3_host_client_to_guest_server(h: &dyn Harness) -> ScenarioResult {
    let bin = iperf3()?;
    let [port, done] = host_ports()?;
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(true, port, 5201)
        .forward(true, done, DONE_PORT)
        .exec(&["iperf3 -s &", &format!("nc -l {DONE_PORT}"), "ps"])
        .timeout(Duration::from_secs(300));
    let (r, result) = with_client(
        h,
        "iperf3_host_client_to_guest_server",
        &spec,
        then_done(done, move |stop| {
            let mut outs = Vec::new();
            for reverse in [false, true] {
                let start = Instant::now();
                let out = loop {
                    let mut c = std::process::Command::new(bin);
                    c.args(["-c", "127.0.0.1", "-p", &port.to_string(), "-t", "3"]);
                    if reverse {
                        c.arg("-R");
                    }
                    let out = c.output().map_err(|e| format!("running {bin}: {e}"))?;
                    let text = String::from_utf8_lossy(&out.stdout).to_string()
                        + &String::from_utf8_lossy(&out.stderr);
                    if out.status.success() {
                        break text;
                    }
                    // The guest is not up yet (QEMU resets the connection): try again.
                    if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(90) {
                        return Err(format!("{bin} -c never completed; last output:\n{text}"));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                };
                outs.push(out);
            }
            Ok(outs)
        }),
    );
    r.exec_verdict()?;
    let outs = result?;
    let mut rates = Vec::new();
    for out in &outs {
        let receiver = out
            .lines()
            .find(|l| l.contains("receiver"))
            .ok_or_else(|| format!("the host's iperf3 printed no receiver line:\n{out}"))?;
        if !out.contains("iperf Done.") {
            return Err(format!("the host's iperf3 did not finish:\n{out}"));
        }
        let rate = receiver
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[1].ends_with("bits/sec"))
            .map(|w| format!("{} {}", w[0], w[1]))
            .unwrap_or_default();
        rates.push(rate);
    }
    Ok(Some(format!(
        "host iperf3 -c: {} to the guest, {} back (-R)",
        rates[0], rates[1]
    )))
}

/// `cargo xtask console` drives the shell over the network: the shell of tests/manifests/net.toml
/// listens on 2323 (netconsole=2323), the host connects through a forward and runs `ps` and
/// `netstat`; their output comes back over TCP (and `netstat` shows the very session).
pub fn console_drives_the_shell_over_the_network(h: &dyn Harness) -> ScenarioResult {
    let [port, done] = host_ports()?;
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(true, port, 2323)
        .forward(true, done, DONE_PORT)
        .exec(&[&format!("nc -l {DONE_PORT}"), "ps"])
        .timeout(Duration::from_secs(240));
    let addr = format!("127.0.0.1:{port}");
    let boot_over = AtomicBool::new(false);
    let (boot, run) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let run = h.xtask(
                &["console", &addr, "--exec", "ps; netstat", "--timeout", "90"],
                Duration::from_secs(150),
            );
            let _ = say_done(done, Duration::from_secs(30), &boot_over);
            run
        });
        let boot = h.boot("console_drives_the_shell_over_the_network", &spec);
        boot_over.store(true, Ordering::Relaxed);
        (boot, client.join())
    });
    boot.exec_verdict()?;
    let run = run.map_err(|_| "the console client thread panicked".to_string())?;
    run.expect_status("cargo xtask console", 0)?;
    let out = &run.stdout;
    if !out.contains("axolotl network console") {
        return Err(format!("no banner from the shell:\n{out}"));
    }
    let listed = |name: &str| {
        out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(name))
    };
    if !listed("ip") || !listed("tcp") {
        return Err(format!(
            "`ps` over the network does not list ip and tcp:\n{out}"
        ));
    }
    let session = out.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() == Some(&"tcp")
            && w.get(1) == Some(&"shell")
            && w.get(2) == Some(&"2323")
            && w.get(4) == Some(&"ESTABLISHED")
    });
    if !session {
        return Err(format!(
            "`netstat` over the network does not show the session:\n{out}"
        ));
    }
    if !boot.transcript.contains("[net 10.0.2.2:") {
        return Err("the console does not show the commands that came over the network".into());
    }
    // rs starts tcp after the shell: the shell waits for it quietly and listens once, never
    // failing a LISTEN on the way.
    if let Some(l) = boot
        .transcript
        .lines()
        .find(|l| l.contains("network console: listening on"))
    {
        return Err(format!("the shell failed to listen on its way up: {l}"));
    }
    let listens = |l: &str| l.trim_end().ends_with("network console on tcp port 2323");
    if !boot.transcript.lines().any(listens) {
        return Err("the shell never said it listens on 2323".into());
    }
    Ok(None)
}

/// What the streaming client of the survival scenario saw.
struct Stream {
    sent: u64,
    echoed: u64,
    mismatch_at: Option<u64>,
    error: Option<String>,
    secs: f64,
}

/// Bytes the survival scenarios stream at least (DESIGN.md's 200 MiB), whatever the faults took.
pub const SURVIVAL_BYTES: u64 = 200 << 20;

/// Streams the pattern through the echo at `port` until `stop_sending` is set and at least
/// [`SURVIVAL_BYTES`] went (or `cap` bytes, or the boot ends),
/// checking every echoed byte against the pattern as it comes back; then half-closes and reads
/// the rest. A reset or a timeout is reported in `error`.
fn stream_until(
    port: u16,
    stop_sending: &AtomicBool,
    stop: &AtomicBool,
    cap: u64,
) -> Result<Stream, String> {
    let stream = connect_echo(port, Duration::from_secs(60), stop)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let check = std::thread::spawn(move || {
        let (mut pattern, mut got, mut buf, mut want) = (
            Pattern(0x5851_F42D_4C95_7F2D),
            0u64,
            vec![0u8; 1 << 16],
            vec![0u8; 1 << 16],
        );
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (got, None, None),
                Ok(n) => {
                    pattern.fill(&mut want[..n]);
                    if let Some(k) = (0..n).find(|&k| buf[k] != want[k]) {
                        return (got, Some(got + k as u64), None);
                    }
                    got += n as u64;
                }
                Err(e) => return (got, None, Some(format!("reading after {got} bytes: {e}"))),
            }
        }
    });
    let mut writer = stream;
    let (mut pattern, mut buf, mut sent) =
        (Pattern(0x5851_F42D_4C95_7F2D), vec![0u8; 1 << 14], 0u64);
    let mut error = None;
    while (!stop_sending.load(Ordering::Relaxed) || sent < SURVIVAL_BYTES)
        && sent < cap
        && !stop.load(Ordering::Relaxed)
    {
        pattern.fill(&mut buf);
        if let Err(e) = writer.write_all(&buf) {
            error = Some(format!("sending after {sent} bytes: {e}"));
            break;
        }
        sent += buf.len() as u64;
    }
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let (echoed, mismatch_at, read_error) = check
        .join()
        .map_err(|_| "the checker panicked".to_string())?;
    Ok(Stream {
        sent,
        echoed,
        mismatch_at,
        error: error.or(read_error),
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// The guest's crash schedule: `fault NAME` lines between sleeps, `rounds` times over the four
/// servers under the stream.
fn crash_script(fault: &str, rounds: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..rounds {
        for name in targets(fault) {
            lines.push(format!("{fault} {name}"));
            // A crash is over in milliseconds; a hang needs rs's second to be noticed.
            lines.push(
                if fault == "crash" {
                    "sleep 1"
                } else {
                    "sleep 2"
                }
                .to_string(),
            );
        }
    }
    lines
}

/// The servers `fault` goes into (udp does not take part in live update: it has no quiet-point
/// exit yet).
fn targets(fault: &str) -> &'static [&'static str] {
    if fault == "update" {
        &["ip", "pf", "e1000"]
    } else {
        &["ip", "pf", "udp", "e1000"]
    }
}

/// How long each live update took, by name: the shell's `updated NAME: pid A -> B in N ms`.
fn updates(transcript: &str) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut by = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for line in transcript.lines() {
        let Some(rest) = line.strip_prefix("updated ") else {
            continue;
        };
        let name = rest.split(':').next().unwrap_or("").to_string();
        let ms = rest
            .rsplit(" in ")
            .next()
            .and_then(|d| d.strip_suffix(" ms"))
            .and_then(|d| d.trim().parse().ok());
        if let Some(ms) = ms {
            by.entry(name).or_default().push(ms);
        }
    }
    by
}

/// The `down N ms` of every `rs: restarted NAME` line, by name.
fn recoveries(transcript: &str) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut by = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for line in transcript.lines() {
        let Some(rest) = line.split("rs: restarted ").nth(1) else {
            continue;
        };
        let name = rest.split(':').next().unwrap_or("").to_string();
        let ms = rest
            .split("down ")
            .nth(1)
            .and_then(|d| d.split(' ').next())
            .and_then(|d| d.parse().ok());
        if let Some(ms) = ms {
            by.entry(name).or_default().push(ms);
        }
    }
    by
}

/// One survival run: a host client streams through `echo-server tcp 7` while the guest injects
/// `fault` (crash or hang) into ip, pf, udp and e1000, `rounds` times each; the connection must
/// never reset and every echoed byte must be the byte sent. Prints one `recovery:` line per
/// server (p50 and max of rs's "down" times: from the fault to the new instance running).
fn survive(h: &dyn Harness, name: &str, fault: &str, rounds: usize) -> ScenarioResult {
    let [port, done] = host_ports()?;
    let stop_listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let stop_port = stop_listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let mut script = vec!["echo-server tcp 7 &".to_string(), "sleep 8".to_string()];
    script.extend(crash_script(fault, rounds));
    script.push("sleep 3".to_string());
    // Tell the host to stop sending (it drains the echo and checks it), then wait for it.
    script.push(format!("nc 10.0.2.2 {stop_port} stop"));
    script.push(format!("nc -l {DONE_PORT}"));
    script.push("ps".to_string());
    // For the record when a run fails: what tcp still holds, and the path's counters.
    script.push("netstat".to_string());
    script.push("ifconfig".to_string());
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(true, port, 7)
        .forward(true, done, DONE_PORT)
        .exec(&lines)
        .timeout(Duration::from_secs(600));
    let (r, result) = with_client(
        h,
        name,
        &spec,
        then_done(done, move |stop| {
            let stop_sending = Arc::new(AtomicBool::new(false));
            let flag = stop_sending.clone();
            stop_listener
                .set_nonblocking(true)
                .map_err(|e| e.to_string())?;
            let watcher = std::thread::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(500) && !flag.load(Ordering::Relaxed) {
                    if let Ok((mut s, _)) = stop_listener.accept() {
                        let mut b = [0u8; 16];
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = s.read(&mut b);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                flag.store(true, Ordering::Relaxed);
            });
            let r = stream_until(port, &stop_sending, stop, 4 << 30);
            stop_sending.store(true, Ordering::Relaxed);
            let _ = watcher.join();
            r
        }),
    );
    r.exec_verdict()?;
    let s = result?;
    let by = if fault == "update" {
        updates(&r.transcript)
    } else {
        recoveries(&r.transcript)
    };
    let mut report = Vec::new();
    for &server in targets(fault) {
        let mut v = by.get(server).cloned().unwrap_or_default();
        if v.len() < rounds {
            return Err(format!(
                "{fault} {server} x{rounds}: it came back {} times (expected {rounds})",
                v.len()
            ));
        }
        v.sort_unstable();
        let line = format!(
            "recovery: server={server} {}={} p50_ms={} max_ms={} resets={} bytes_lost={}",
            if fault == "update" {
                "updates"
            } else {
                "faults"
            },
            v.len(),
            v[v.len() / 2],
            v[v.len() - 1],
            u8::from(s.error.is_some()),
            s.sent.saturating_sub(s.echoed)
        );
        println!("{line}");
        report.push(line);
    }
    if let Some(e) = &s.error {
        return Err(format!("the connection broke: {e}\n{}", report.join("\n")));
    }
    if let Some(at) = s.mismatch_at {
        return Err(format!("the echo differs from what was sent at byte {at}"));
    }
    if s.echoed != s.sent {
        return Err(format!("{} bytes sent, {} echoed", s.sent, s.echoed));
    }
    Ok(Some(format!(
        "{:.1} MiB streamed and echoed intact over {:.0} s, {rounds} x {fault} into each of {}\n    {}",
        s.sent as f64 / (1 << 20) as f64,
        s.secs,
        targets(fault).join(", "),
        report.join("\n    ")
    )))
}

/// `crash` into ip, pf, udp and e1000 (20 times each, one a second, round robin) under a TCP
/// stream: no reset, no byte lost; p50 and max of the recovery times over the 20 per server.
pub fn tcp_survives_crashes(h: &dyn Harness) -> ScenarioResult {
    survive(h, "tcp_survives_crashes", "crash", 20)
}

/// `update` of ip, pf and e1000 (twice each: the server exits at a quiet point and a fresh
/// instance takes over its state) under a TCP stream: no reset, no byte lost.
pub fn tcp_survives_live_updates(h: &dyn Harness) -> ScenarioResult {
    survive(h, "tcp_survives_live_updates", "update", 2)
}

/// `hang` into ip, pf, udp and e1000 (twice each; rs sees the heartbeat stop, kills and
/// restarts) under a TCP stream: no reset, no byte lost.
pub fn tcp_survives_hangs(h: &dyn Harness) -> ScenarioResult {
    survive(h, "tcp_survives_hangs", "hang", 2)
}

/// A UDP socket bound before `crash udp` still receives afterwards: udp keeps its bindings in
/// udp-state, and the application's socket carries on over the restarted server. The host
/// echoes datagrams through `echo-server udp 7` until the guest says the crash is over, then
/// 20 more must come back.
pub fn udp_socket_survives_a_crash_of_udp(h: &dyn Harness) -> ScenarioResult {
    let [port, done] = host_ports()?;
    let crashed = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let crashed_port = crashed.local_addr().map_err(|e| e.to_string())?.port();
    let told = format!("nc 10.0.2.2 {crashed_port} crashed");
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(false, port, 7)
        .forward(true, done, DONE_PORT)
        .exec(&[
            "echo-server udp 7 &",
            "sleep 12",
            "crash udp",
            "sleep 3",
            &told,
            &format!("nc -l {DONE_PORT}"),
            "ps",
        ])
        .timeout(Duration::from_secs(300));
    let (r, result) = with_client(
        h,
        "udp_socket_survives_a_crash_of_udp",
        &spec,
        then_done(done, move |stop| {
            let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            sock.connect(("127.0.0.1", port))
                .map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 64];
            // An echo that came after its 300 ms ends up in front of the next datagram's:
            // skip such late ones until ours comes (or the timeout), or every later datagram
            // would be judged by its predecessor's echo and none would match again.
            let echo = |n: u32, buf: &mut [u8]| -> bool {
                let msg = n.to_le_bytes();
                if sock.send(&msg).is_err() {
                    return false;
                }
                loop {
                    match sock.recv(buf) {
                        Ok(4) if buf[..4] == msg => return true,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
            };
            let start = Instant::now();
            let mut n = 0u32;
            while !echo(n, &mut buf) {
                n += 1;
                if start.elapsed() > Duration::from_secs(60) || stop.load(Ordering::Relaxed) {
                    return Err("no UDP echo from the guest within 60 s".into());
                }
            }
            // Before the crash: echoes come. Wait for the guest's word that udp crashed and is back.
            crashed.set_nonblocking(true).map_err(|e| e.to_string())?;
            let before = start.elapsed();
            loop {
                if crashed.accept().is_ok() {
                    break;
                }
                if start.elapsed() > before + Duration::from_secs(120)
                    || stop.load(Ordering::Relaxed)
                {
                    return Err("the guest never said it crashed udp".into());
                }
                n += 1;
                let _ = echo(n, &mut buf);
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut after = 0;
            for _ in 0..20 {
                n += 1;
                if echo(n, &mut buf) {
                    after += 1;
                }
            }
            Ok(after)
        }),
    );
    r.exec_verdict()?;
    let after = result?;
    if !r.transcript.contains("rs: restarted udp") {
        return Err("rs never restarted udp: the crash did not happen".into());
    }
    if !r.transcript.contains("echo-server keeps port 7") {
        return Err("the restarted udp did not restore echo-server's binding".into());
    }
    if after < 18 {
        return Err(format!(
            "after the crash, {after} of 20 datagrams came back"
        ));
    }
    Ok(Some(format!(
        "{after} of 20 datagrams echoed after udp restarted"
    )))
}

/// Echoes `bytes` of the pattern (seeded `seed`) through `stream` in pieces, reading each
/// piece back before the next; true when every byte came back as sent.
fn echo_through(stream: &mut TcpStream, bytes: usize, seed: u64) -> Result<bool, String> {
    let (mut pattern, mut out, mut back) = (Pattern(seed), vec![0u8; 4096], vec![0u8; 4096]);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(out.len());
        pattern.fill(&mut out[..n]);
        stream
            .write_all(&out[..n])
            .map_err(|e| format!("sending: {e}"))?;
        stream
            .read_exact(&mut back[..n])
            .map_err(|e| format!("reading the echo, {} bytes in: {e}", bytes - left))?;
        if back[..n] != out[..n] {
            return Ok(false);
        }
        left -= n;
    }
    Ok(true)
}

/// What the host saw around `crash tcp`.
struct ListenerRun {
    before: usize,
    after: usize,
    identical: bool,
    old: String,
}

/// Bytes echoed through each connection of [`tcp_listener_survives_a_crash_of_tcp`].
const LISTENER_BYTES: usize = 256 << 10;

/// `echo-server tcp 7` keeps listening across `crash tcp`: tcp keeps its listening ports in
/// tcp-state and listens on them again when it restarts, and the application's listener carries
/// on over the new instance. The host echoes bytes through a first connection, the guest
/// crashes tcp and says so; then a new connection to the same port must echo every byte, and
/// the first one (its tcp instance dead) must be reset or closed, not left hanging.
pub fn tcp_listener_survives_a_crash_of_tcp(h: &dyn Harness) -> ScenarioResult {
    let [port, done] = host_ports()?;
    let crashed = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let crashed_port = crashed.local_addr().map_err(|e| e.to_string())?.port();
    let told = format!("nc 10.0.2.2 {crashed_port} crashed");
    let spec = BootSpec::bios(8, "")
        .manifest(ManifestSource::File(NET_MANIFEST))
        .nic(NicModel::E1000)
        .forward(true, port, 7)
        .forward(true, done, DONE_PORT)
        .exec(&[
            "echo-server tcp 7 &",
            "sleep 12",
            "crash tcp",
            "sleep 3",
            &told,
            &format!("nc -l {DONE_PORT}"),
            "netstat",
            "ps",
        ])
        .timeout(Duration::from_secs(300));
    let (r, result) = with_client(
        h,
        "tcp_listener_survives_a_crash_of_tcp",
        &spec,
        then_done(done, move |stop| {
            let mut first = connect_echo(port, Duration::from_secs(90), stop)?;
            first
                .set_read_timeout(Some(Duration::from_secs(20)))
                .map_err(|e| e.to_string())?;
            let mut identical = echo_through(&mut first, LISTENER_BYTES, 0x1234_5678_9ABC_DEF1)?;
            // The guest says when tcp has crashed and is back.
            crashed.set_nonblocking(true).map_err(|e| e.to_string())?;
            let start = Instant::now();
            while crashed.accept().is_err() {
                if start.elapsed() > Duration::from_secs(120) || stop.load(Ordering::Relaxed) {
                    return Err("the guest never said it crashed tcp".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // A new connection to the same port: the restarted tcp listens there again.
            let mut second = connect_echo(port, Duration::from_secs(60), stop)
                .map_err(|e| format!("after the crash: {e}"))?;
            second
                .set_read_timeout(Some(Duration::from_secs(20)))
                .map_err(|e| e.to_string())?;
            identical &= echo_through(&mut second, LISTENER_BYTES, 0x0F1E_2D3C_4B5A_6978)?;
            drop(second);
            // The first connection's tcp is gone: its next segment is answered with RST.
            first
                .set_read_timeout(Some(Duration::from_secs(15)))
                .map_err(|e| e.to_string())?;
            let wrote = first.write_all(b"still there?");
            let mut b = [0u8; 64];
            let old = match (wrote, first.read(&mut b)) {
                (Err(e), _) => format!("reset ({e})"),
                (_, Ok(0)) => "closed".to_string(),
                (_, Ok(n)) => return Err(format!("the old connection answered {n} bytes")),
                (_, Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("the old connection hangs (no reset, no end)".into());
                }
                (_, Err(e)) => format!("reset ({e})"),
            };
            Ok(ListenerRun {
                before: LISTENER_BYTES,
                after: LISTENER_BYTES,
                identical,
                old,
            })
        }),
    );
    r.exec_verdict()?;
    let run = result?;
    let down = recoveries(&r.transcript)
        .get("tcp")
        .cloned()
        .unwrap_or_default();
    let Some(down_ms) = down.first() else {
        return Err("rs never restarted tcp: the crash did not happen".into());
    };
    if !r
        .transcript
        .contains("echo-server keeps port 7 (from tcp-state)")
    {
        return Err("the restarted tcp did not listen on echo-server's port 7 again".into());
    }
    if !run.identical {
        return Err("an echo differs from what was sent".into());
    }
    Ok(Some(format!(
        "{} bytes echoed before crash tcp, {} through a new connection after (identical); \
         tcp down {down_ms} ms; the old connection: {}",
        run.before, run.after, run.old
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_their_number_and_have_the_promised_sizes() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for seq in [0u64, 1, 15, 31, 1000, 1_000_015] {
            datagram(seq, &mut a);
            datagram(seq, &mut b);
            assert_eq!(a, b);
            assert_eq!(u64::from_le_bytes(a[..8].try_into().unwrap()), seq);
            assert!((8..=MAX_DATAGRAM).contains(&a.len()), "{seq}: {}", a.len());
            if seq % 16 != 15 {
                assert_eq!(a.len(), MAX_DATAGRAM);
            }
        }
        datagram(1, &mut a);
        datagram(2, &mut b);
        assert_ne!(a[8..], b[8..]);
    }

    #[test]
    fn recovery_times_are_read_from_rs_and_the_shell() {
        let t = "[cpu0] rs: rs: restarted ip: pid 5 -> 9, down 23 ms\n\
                 [cpu0] rs: rs: restarted pf: pid 4 -> 10, down 7 ms\n\
                 [cpu0] rs: rs: restarted ip: pid 9 -> 12, down 41 ms\n\
                 updated ip: pid 12 -> 13 in 35 ms\n\
                 updated e1000: pid 3 -> 14 in 1200 ms\n";
        let r = recoveries(t);
        assert_eq!(r["ip"], [23, 41]);
        assert_eq!(r["pf"], [7]);
        let u = updates(t);
        assert_eq!(u["ip"], [35]);
        assert_eq!(u["e1000"], [1200]);
        assert!(!u.contains_key("pf"));
        assert_eq!(
            crash_script("update", 1),
            [
                "update ip",
                "sleep 2",
                "update pf",
                "sleep 2",
                "update e1000",
                "sleep 2"
            ]
        );
    }

    #[test]
    fn stat_rows_give_the_syscalls_of_a_cpu() {
        let stat = "CPU  APIC  OWNER      SYSCALLS  INTERRUPTS  IPIS  TICKS  SWITCHES  IDLE_MS\n\
                    0    0     shared     1200      30          2     100    40        5\n\
                    2    2     dedicated  987654    3           0     10     4         6\n\
                    uptime 20 ms\n";
        assert_eq!(stat_syscalls(stat, 2), Some(987_654));
        assert_eq!(stat_syscalls(stat, 0), Some(1200));
        assert_eq!(stat_syscalls(stat, 5), None);
        assert_eq!(stat_syscalls("2 x y zz", 2), None);
    }
}
