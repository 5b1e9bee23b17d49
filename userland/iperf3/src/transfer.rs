//! The data phase shared by client and server: the streams and their counters, one round of
//! sending or receiving over all streams, the interval report (every second unless `-i` says
//! otherwise) and the summary.

use alloc::vec::Vec;

use crate::proto::{State, TestResults};
use crate::report::{self, HEADER, SEPARATOR};
use crate::{Conn, Direction, Error, NetError, Output};

/// The data buffer's size at most: a longer block is written as several pieces of it, so a
/// 1 MiB block does not need 1 MiB of the guest's heap.
pub const MAX_CHUNK: usize = 128 * 1024;
/// How long a receiving round waits on one stream when no stream had anything.
pub const IDLE_WAIT_NS: u64 = 1_000_000;
/// Nanoseconds per second.
pub const SEC_NS: u64 = 1_000_000_000;

/// One data stream of a test.
pub struct DataStream<C> {
    /// The connection.
    pub conn: C,
    /// iperf3's id of the stream (`proto::stream_id`).
    pub id: i64,
    /// The number shown in brackets (`[  5]`).
    pub label: u32,
    /// Bytes written or read on it during the test.
    pub bytes: u64,
    /// Bytes since the last interval report.
    pub interval_bytes: u64,
    /// Not yet at the end of the stream (receiving side).
    pub open: bool,
}

impl<C> DataStream<C> {
    /// A fresh stream.
    pub fn new(conn: C, id: i64, label: u32) -> Self {
        Self {
            conn,
            id,
            label,
            bytes: 0,
            interval_bytes: 0,
            open: true,
        }
    }
}

/// The buffer blocks are written from and read into, `min(block_len, MAX_CHUNK)` bytes, filled
/// with a pattern. Allocation failure is an error, not an abort.
pub fn alloc_buffer(block_len: u32) -> Result<Vec<u8>, Error> {
    let n = (block_len as usize).clamp(1, MAX_CHUNK);
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory)?;
    v.extend((0..n).map(|i| b'a' + (i % 26) as u8));
    Ok(v)
}

/// Writes one block of `block_len` bytes from `buf` (repeated when the block is longer).
pub fn send_block<C: Conn>(conn: &mut C, buf: &[u8], block_len: u32) -> Result<(), NetError> {
    let mut left = block_len as usize;
    while left > 0 {
        let n = left.min(buf.len());
        conn.write_all(&buf[..n])?;
        left -= n;
    }
    Ok(())
}

/// Reads from every open stream what is there without waiting, up to a buffer's worth each
/// (a read may return less: libnet hands over one pool buffer per read); when no stream had
/// anything, waits up to `idle_wait_ns` on one of them (taken in turn through `turn`). Returns
/// the bytes read; a stream at its end is marked closed.
pub fn recv_round<C: Conn>(
    streams: &mut [DataStream<C>],
    buf: &mut [u8],
    idle_wait_ns: u64,
    turn: &mut usize,
) -> Result<u64, Error> {
    let during = "reading a data stream";
    let mut got = drain_now(streams, buf).map_err(|error| Error::Net { during, error })?;
    if got > 0 || idle_wait_ns == 0 || streams.is_empty() {
        return Ok(got);
    }
    for _ in 0..streams.len() {
        *turn = (*turn + 1) % streams.len();
        let s = &mut streams[*turn];
        if !s.open {
            continue;
        }
        match s.conn.read_timeout(buf, idle_wait_ns) {
            Ok(Some(0)) => s.open = false,
            Ok(Some(n)) => {
                s.bytes += n as u64;
                s.interval_bytes += n as u64;
                got += n as u64;
            }
            Ok(None) | Err(NetError::TimedOut) => {}
            Err(error) => return Err(Error::Net { during, error }),
        }
        break;
    }
    Ok(got)
}

/// Reads from every open stream what is there without waiting, up to a buffer's worth each;
/// returns the bytes read and marks a stream at its end closed.
fn drain_now<C: Conn>(streams: &mut [DataStream<C>], buf: &mut [u8]) -> Result<u64, NetError> {
    let mut got = 0u64;
    for s in streams.iter_mut().filter(|s| s.open) {
        let mut budget = buf.len();
        while budget > 0 {
            match s.conn.read_timeout(&mut buf[..budget], 0) {
                Ok(Some(0)) => {
                    s.open = false;
                    break;
                }
                Ok(Some(n)) => {
                    s.bytes += n as u64;
                    s.interval_bytes += n as u64;
                    got += n as u64;
                    budget = budget.saturating_sub(n);
                }
                Ok(None) | Err(NetError::TimedOut) => break,
                Err(error) => return Err(error),
            }
        }
    }
    Ok(got)
}

/// The control connection of a receiving side once the test is over, read while the data
/// streams are still drained: what the sender had in flight at the end keeps arriving, and
/// left unread it would fill the rx pool the streams share with the control connection (the
/// application holds at most half the pool plus libnet's copy limit unread), so the server's
/// results could not be delivered. iperf3's client keeps reading its streams the same way.
/// The bytes drained are counted in the streams.
pub struct Draining<'a, C> {
    /// The control connection.
    ctrl: &'a mut C,
    /// The data streams (closed ones are skipped).
    streams: &'a mut [DataStream<C>],
    /// Where drained bytes are read into.
    buf: &'a mut [u8],
    /// The clock, in nanoseconds.
    now: &'a dyn Fn() -> u64,
}

impl<'a, C> Draining<'a, C> {
    /// Control connection `ctrl`, read while `streams` are drained into `buf`.
    pub fn new(
        ctrl: &'a mut C,
        streams: &'a mut [DataStream<C>],
        buf: &'a mut [u8],
        now: &'a dyn Fn() -> u64,
    ) -> Self {
        Self {
            ctrl,
            streams,
            buf,
            now,
        }
    }
}

impl<C: Conn> Conn for Draining<'_, C> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        loop {
            if let Some(n) = self.read_timeout(buf, u64::MAX)? {
                return Ok(n);
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.ctrl.write_all(buf)
    }

    fn read_timeout(&mut self, buf: &mut [u8], timeout_ns: u64) -> Result<Option<usize>, NetError> {
        let start = (self.now)();
        loop {
            let drained = drain_now(self.streams, self.buf)?;
            let left = timeout_ns.saturating_sub((self.now)().saturating_sub(start));
            // Wait on the control connection only while the streams are quiet, and briefly,
            // so that what arrives on them meanwhile is read soon.
            let wait = match (drained, self.streams.iter().any(|s| s.open)) {
                (0, true) => left.min(IDLE_WAIT_NS),
                (0, false) => left,
                _ => 0,
            };
            match self.ctrl.read_timeout(buf, wait) {
                Ok(Some(n)) => return Ok(Some(n)),
                Ok(None) | Err(NetError::TimedOut) if left == 0 => return Ok(None),
                Ok(None) | Err(NetError::TimedOut) => {}
                Err(error) => return Err(error),
            }
        }
    }

    fn shutdown(&mut self) -> Result<(), NetError> {
        self.ctrl.shutdown()
    }
}

/// A byte on the control connection if one arrives within `wait_ns`; the end of the stream is
/// an error.
pub fn poll_control<C: Conn>(
    ctrl: &mut C,
    wait_ns: u64,
    during: &'static str,
) -> Result<Option<u8>, Error> {
    let mut b = [0u8; 1];
    match ctrl.read_timeout(&mut b, wait_ns) {
        Ok(Some(0)) => Err(Error::ControlClosed { during }),
        Ok(Some(_)) => Ok(Some(b[0])),
        Ok(None) | Err(NetError::TimedOut) => Ok(None),
        Err(error) => Err(Error::Net { during, error }),
    }
}

/// The error for a state byte that came when `wanted` (or nothing) was expected. For
/// SERVER_ERROR it reads the two error numbers that follow.
pub fn unexpected_state<C: Conn>(ctrl: &mut C, byte: u8, wanted: &str) -> Error {
    match State::from_byte(byte) {
        Some(State::AccessDenied) => Error::AccessDenied,
        Some(State::ServerTerminate) => Error::ServerTerminated,
        Some(State::ClientTerminate) => Error::ClientTerminated,
        Some(State::ServerError) => {
            let mut codes = [0u8; 8];
            match crate::proto::read_exact(
                ctrl,
                &mut codes,
                crate::proto::CONTROL_TIMEOUT_NS,
                "reading the server's error",
            ) {
                Ok(()) => Error::ServerError {
                    code: i32::from_be_bytes([codes[0], codes[1], codes[2], codes[3]]),
                    errno: i32::from_be_bytes([codes[4], codes[5], codes[6], codes[7]]),
                },
                Err(e) => e,
            }
        }
        Some(s) => Error::Protocol(alloc::format!("state {s:?} while waiting for {wanted}")),
        None => Error::Protocol(alloc::format!(
            "unknown state byte {} while waiting for {wanted}",
            byte as i8
        )),
    }
}

/// The interval report: one line per stream (and their sum) every interval. An interval
/// whose end passes while a write blocks (a stalled connection) is reported when the write
/// returns, with its real end: `2.00-2.87` for a 0.25 s interval that stalled.
pub struct Meter {
    start_ns: u64,
    last_ns: u64,
    next_ns: u64,
    interval_ns: u64,
    header_done: bool,
}

impl Meter {
    /// Starts the first one-second interval at `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        Self::with_interval(start_ns, SEC_NS)
    }

    /// Starts the first interval of `interval_ns` at `start_ns`; 0 reports no interval.
    pub fn with_interval(start_ns: u64, interval_ns: u64) -> Self {
        Self {
            start_ns,
            last_ns: start_ns,
            next_ns: start_ns.saturating_add(interval_ns),
            interval_ns,
            header_done: false,
        }
    }

    /// Prints the interval lines when an interval has passed since the last ones.
    pub fn tick<C>(&mut self, now_ns: u64, streams: &mut [DataStream<C>], out: Output<'_>) {
        if self.interval_ns != 0 && now_ns >= self.next_ns {
            self.report(now_ns, streams, out);
            while self.next_ns <= now_ns {
                self.next_ns += self.interval_ns;
            }
        }
    }

    /// Prints the last, partial interval if it is long enough to mean something (a tenth of an
    /// interval).
    pub fn finish<C>(&mut self, now_ns: u64, streams: &mut [DataStream<C>], out: Output<'_>) {
        if self.interval_ns != 0 && now_ns.saturating_sub(self.last_ns) >= self.interval_ns / 10 {
            self.report(now_ns, streams, out);
        }
    }

    fn report<C>(&mut self, now_ns: u64, streams: &mut [DataStream<C>], out: Output<'_>) {
        if !self.header_done {
            out(HEADER);
            self.header_done = true;
        }
        let t0 = secs(self.last_ns - self.start_ns);
        let t1 = secs(now_ns.saturating_sub(self.start_ns));
        let mut sum = 0;
        for s in streams.iter_mut() {
            out(&report::line(
                &report::label(s.label),
                t0,
                t1,
                s.interval_bytes,
                "",
            ));
            sum += s.interval_bytes;
            s.interval_bytes = 0;
        }
        if streams.len() > 1 {
            out(&report::line("SUM", t0, t1, sum, ""));
        }
        self.last_ns = now_ns;
    }
}

/// Nanoseconds as seconds.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// This side's figures for one stream in the summary.
pub struct StreamTotal {
    /// The bracketed number.
    pub label: u32,
    /// iperf3's stream id.
    pub id: i64,
    /// Bytes this side moved.
    pub bytes: u64,
}

/// Prints the summary: per stream a sender and a receiver line (this side's figures and the
/// peer's, matched by stream id), then their sums when there are several streams.
pub fn print_summary(
    out: Output<'_>,
    streams: &[StreamTotal],
    own_secs: f64,
    dir: Direction,
    peer: Option<&TestResults>,
) {
    out(SEPARATOR);
    out(HEADER);
    let (mut own_sum, mut peer_sum, mut peer_secs, mut peer_all) = (0u64, 0u64, 0f64, true);
    for s in streams {
        let own = Some((s.bytes, own_secs));
        let theirs = peer
            .and_then(|p| p.stream(s.id))
            .map(|r| (r.bytes, r.seconds()));
        own_sum += s.bytes;
        match theirs {
            Some((b, t)) => {
                peer_sum += b;
                peer_secs = peer_secs.max(t);
            }
            None => peer_all = false,
        }
        let (sender, receiver) = match dir {
            Direction::Send => (own, theirs),
            Direction::Recv => (theirs, own),
        };
        let l = report::label(s.label);
        for (figures, tag) in [(sender, "sender"), (receiver, "receiver")] {
            match figures {
                Some((b, t)) => out(&report::line(&l, 0.0, t, b, tag)),
                None => out(&alloc::format!("[{l}] ({tag} statistics not available)")),
            }
        }
    }
    if streams.len() > 1 {
        let own = Some((own_sum, own_secs));
        let theirs = peer_all.then_some((peer_sum, peer_secs));
        let (sender, receiver) = match dir {
            Direction::Send => (own, theirs),
            Direction::Recv => (theirs, own),
        };
        for (figures, tag) in [(sender, "sender"), (receiver, "receiver")] {
            match figures {
                Some((b, t)) => out(&report::line("SUM", 0.0, t, b, tag)),
                None => out(&alloc::format!("[SUM] ({tag} statistics not available)")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};

    /// Feeds `bytes` into a stream at each of `times` (ms) and ticks the meter after each.
    fn run(interval_ns: u64, steps: &[(u64, u64)], end_ms: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut out = |l: &str| lines.push(l.to_string());
        let mut streams = [DataStream::new((), 1, 5)];
        let mut m = Meter::with_interval(0, interval_ns);
        for &(ms, bytes) in steps {
            streams[0].interval_bytes += bytes;
            m.tick(ms * 1_000_000, &mut streams, &mut out);
        }
        m.finish(end_ms * 1_000_000, &mut streams, &mut out);
        lines
    }

    #[test]
    fn intervals_follow_the_asked_length_and_a_stall_shows_its_real_end() {
        let quarter = 250_000_000;
        let steps = [(100, 1000), (250, 1000), (400, 500), (500, 500), (870, 10)];
        let lines = run(quarter, &steps, 880);
        assert_eq!(lines[0], HEADER);
        let spans: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split("sec").next().unwrap_or("").trim())
            .collect();
        // 0.25 and 0.50 on time; the write that returned at 0.87 closes the stalled interval
        // there; the last 10 ms are under a tenth of 0.25 s and not printed.
        assert_eq!(
            spans,
            [
                "[  5]   0.00-0.25",
                "[  5]   0.25-0.50",
                "[  5]   0.50-0.87"
            ]
        );
        assert!(lines[1].contains("1.95 KBytes"), "{}", lines[1]);
        // A second by default.
        let lines = run(SEC_NS, &steps, 1100);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("0.00-1.10"), "{}", lines[1]);
        // 0: no interval lines at all.
        assert!(run(0, &steps, 5000).is_empty());
    }
}
