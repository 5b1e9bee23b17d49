//! The wire format between the shell, `bench-a` and `bench-b`, and the arithmetic of the report.
//! Host-tested; the binary in `main.rs` runs the measurements.
#![cfg_attr(not(test), no_std)]

/// Name of the measuring process (the shell's peer).
pub const BENCH_A: &str = "bench-a";
/// Name of the echoing process.
pub const BENCH_B: &str = "bench-b";
/// Channel region bench-a produces into.
pub const REGION_AB: &str = "bench-ab";
/// Channel region bench-b produces into.
pub const REGION_BA: &str = "bench-ba";
/// Second word of a shell request that asks for the full channel-vs-kernel run (a request
/// whose second word is 0 asks for kernel round trips only, like `ipcbench`).
pub const FULL_RUN: u64 = 0xC4A2_BE9C;

/// Control operations from bench-a to bench-b (first word of a kernel-IPC message).
pub mod op {
    /// Consume N channel messages, checking each.
    pub const CHAN_SINK: u64 = 1;
    /// Echo N channel messages back on the reverse channel.
    pub const CHAN_ECHO: u64 = 2;
    /// Receive N kernel-IPC messages, checking each.
    pub const KERN_SINK: u64 = 3;
    /// Answer N kernel-IPC calls.
    pub const KERN_ECHO: u64 = 4;
    /// Reply with the last phase's errors and syscalls.
    pub const REPORT: u64 = 5;
}

/// Little-endian u64 word `i` of a 64-byte message.
pub fn word(m: &[u8; 64], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&m[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// A 64-byte message of words.
pub fn words(ws: &[u64]) -> [u8; 64] {
    let mut m = [0u8; 64];
    for (i, w) in ws.iter().take(8).enumerate() {
        m[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    m
}

/// The payload words of probe `seq`: every word depends on `seq`, so a lost, repeated or
/// corrupted message is caught.
pub fn probe_words(seq: u64) -> [u64; 7] {
    let mut w = [0u64; 7];
    for (i, x) in w.iter_mut().enumerate() {
        *x = seq
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(i as u32 * 9)
            ^ (i as u64);
    }
    w
}

/// True when `payload` is probe `seq`.
pub fn probe_ok(seq: u64, payload: &[u64; 7]) -> bool {
    *payload == probe_words(seq)
}

/// Message counts of one run, derived from the shell's N (channel pipelined messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub chan_msgs: u64,
    pub chan_round_trips: u64,
    pub kernel_msgs: u64,
    pub kernel_round_trips: u64,
}

impl Plan {
    /// Kernel IPC is one to two orders of magnitude slower, so it gets fewer messages: rates,
    /// not totals, are compared.
    pub fn for_n(n: u64) -> Self {
        let n = n.max(1000);
        Self {
            chan_msgs: n,
            chan_round_trips: (n / 20).max(100),
            kernel_msgs: (n / 10).max(100),
            kernel_round_trips: (n / 20).max(100),
        }
    }
}

/// What bench-a measured; travels back to the shell as 8 words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    pub chan_msgs_per_s: u64,
    pub kernel_msgs_per_s: u64,
    pub chan_rtt_ns: u64,
    pub kernel_rtt_ns: u64,
    /// Syscalls both ends made during the pipelined channel phase.
    pub chan_syscalls: u64,
    /// Syscalls both ends made during the pipelined kernel phase.
    pub kernel_syscalls: u64,
    pub errors: u64,
    /// Messages of the pipelined channel phase (for the per-1k figure).
    pub chan_msgs: u64,
}

impl Report {
    pub fn encode(&self) -> [u8; 64] {
        words(&[
            self.chan_msgs_per_s,
            self.kernel_msgs_per_s,
            self.chan_rtt_ns,
            self.kernel_rtt_ns,
            self.chan_syscalls,
            self.kernel_syscalls,
            self.errors,
            self.chan_msgs,
        ])
    }

    pub fn decode(m: &[u8; 64]) -> Self {
        Self {
            chan_msgs_per_s: word(m, 0),
            kernel_msgs_per_s: word(m, 1),
            chan_rtt_ns: word(m, 2),
            kernel_rtt_ns: word(m, 3),
            chan_syscalls: word(m, 4),
            kernel_syscalls: word(m, 5),
            errors: word(m, 6),
            chan_msgs: word(m, 7),
        }
    }

    /// Pipelined throughput, channels over kernel IPC.
    pub fn throughput_ratio(&self) -> f64 {
        ratio(self.chan_msgs_per_s as f64, self.kernel_msgs_per_s as f64)
    }

    /// Round-trip time, kernel IPC over channels (how many times faster channels are).
    pub fn rtt_ratio(&self) -> f64 {
        ratio(self.kernel_rtt_ns as f64, self.chan_rtt_ns as f64)
    }

    /// Channel syscalls per 1,000 messages of the pipelined phase.
    pub fn chan_syscalls_per_1k(&self) -> f64 {
        ratio(self.chan_syscalls as f64 * 1000.0, self.chan_msgs as f64)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// `count` messages in `ns` nanoseconds, per second.
pub fn per_second(count: u64, ns: u64) -> u64 {
    if ns == 0 {
        0
    } else {
        (count as u128 * 1_000_000_000 / ns as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let r = Report {
            chan_msgs_per_s: 5_000_000,
            kernel_msgs_per_s: 100_000,
            chan_rtt_ns: 2_000,
            kernel_rtt_ns: 40_000,
            chan_syscalls: 3,
            kernel_syscalls: 40_000,
            errors: 0,
            chan_msgs: 200_000,
        };
        let d = Report::decode(&r.encode());
        assert_eq!(d, r);
        assert_eq!(d.throughput_ratio(), 50.0);
        assert_eq!(d.rtt_ratio(), 20.0);
        assert_eq!(d.chan_syscalls_per_1k(), 0.015);
        assert_eq!(Report::default().throughput_ratio(), 0.0);
    }

    #[test]
    fn probes_detect_damage() {
        let p = probe_words(41);
        assert!(probe_ok(41, &p));
        assert!(!probe_ok(42, &p));
        let mut q = p;
        q[6] ^= 1;
        assert!(!probe_ok(41, &q));
        assert_ne!(probe_words(0), probe_words(1));
    }

    #[test]
    fn plan_scales_and_has_floors() {
        assert_eq!(
            Plan::for_n(200_000),
            Plan {
                chan_msgs: 200_000,
                chan_round_trips: 10_000,
                kernel_msgs: 20_000,
                kernel_round_trips: 10_000
            }
        );
        let small = Plan::for_n(5);
        assert_eq!(small.chan_msgs, 1000);
        assert!(small.kernel_msgs >= 100 && small.chan_round_trips >= 100);
        assert_eq!(per_second(1000, 1_000_000), 1_000_000);
        assert_eq!(per_second(5, 0), 0);
    }
}
