//! Host ports for QEMU's forwards (`hostfwd=...127.0.0.1:PORT-:GUEST`).
//!
//! QEMU binds each forward when it starts and gives up if the port is taken ("Could not set up
//! host forwarding rule"). A port picked inside the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`) can be taken at any moment by the source port of an
//! outgoing connection: the suite makes many, and so does the rest of the machine. So the ports
//! come from outside that range, each at most once per run (a process-wide counter), starting at
//! a place derived from the process id so that two runs on one machine start apart, and each is
//! checked free (TCP and UDP) just before it is handed out.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: below it live well-known and registered services.
const LOWEST: u16 = 10_000;
/// The kernel's default ephemeral range, when the file cannot be read.
const DEFAULT_EPHEMERAL: (u16, u16) = (32_768, 60_999);
/// The fewest ports a range must hold to be used.
const ENOUGH: u32 = 1_000;

/// Ports handed out so far by this process (the offset of the next one from the start).
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// The ephemeral range in the text of `ip_local_port_range` ("32768\t60999"), if well formed.
pub fn parse_ephemeral(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(|w| w.parse::<u16>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// The ports `[first, last]` to hand out, given the ephemeral range: the larger of the stretch
/// between [`LOWEST`] and the range and the stretch above it. `None` if neither holds
/// [`ENOUGH`] ports.
pub fn forward_range(ephemeral: (u16, u16)) -> Option<(u16, u16)> {
    let (lo, hi) = ephemeral;
    let below = (lo > LOWEST).then(|| (LOWEST, lo - 1));
    let above = (hi < u16::MAX).then(|| (hi.max(LOWEST - 1) + 1, u16::MAX));
    let size = |r: &(u16, u16)| u32::from(r.1) - u32::from(r.0) + 1;
    [below, above]
        .into_iter()
        .flatten()
        .filter(|r| size(r) >= ENOUGH)
        .max_by_key(size)
}

/// The `n`th port of `range` from a start that depends on `seed` (wrapping round).
pub fn nth_port(range: (u16, u16), seed: u32, n: u32) -> u16 {
    let size = u32::from(range.1) - u32::from(range.0) + 1;
    let start = seed.wrapping_mul(2_654_435_761) % size;
    range.0 + ((start + n) % size) as u16
}

/// Whether nothing on this machine holds 127.0.0.1:`port`, for TCP or for UDP.
fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// `N` distinct free host ports outside the ephemeral range, none handed out before by this
/// process.
pub fn host_ports<const N: usize>() -> Result<[u16; N], String> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let ephemeral = text
        .as_deref()
        .and_then(parse_ephemeral)
        .unwrap_or(DEFAULT_EPHEMERAL);
    let range = forward_range(ephemeral).ok_or_else(|| {
        format!(
            "no room for host ports outside the ephemeral range {}-{} \
             (/proc/sys/net/ipv4/ip_local_port_range)",
            ephemeral.0, ephemeral.1
        )
    })?;
    let size = u32::from(range.1) - u32::from(range.0) + 1;
    let mut ports = [0; N];
    for slot in &mut ports {
        *slot = loop {
            let n = TAKEN.fetch_add(1, Ordering::Relaxed);
            if n >= size {
                return Err(format!(
                    "no free host port left in {}-{} (all {size} tried)",
                    range.0, range.1
                ));
            }
            let port = nth_port(range, std::process::id(), n);
            if free(port) {
                break port;
            }
        };
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_range_is_read() {
        assert_eq!(parse_ephemeral("32768\t60999\n"), Some((32_768, 60_999)));
        assert_eq!(parse_ephemeral("1024 65535"), Some((1_024, 65_535)));
        assert_eq!(parse_ephemeral("60999 32768"), None);
        assert_eq!(parse_ephemeral("32768"), None);
        assert_eq!(parse_ephemeral("32768 60999 7"), None);
        assert_eq!(parse_ephemeral("a b"), None);
        assert_eq!(parse_ephemeral("70000 80000"), None);
    }

    #[test]
    fn forwards_stay_out_of_the_ephemeral_range() {
        assert_eq!(forward_range((32_768, 60_999)), Some((10_000, 32_767)));
        assert_eq!(forward_range((10_500, 60_999)), Some((61_000, 65_535)));
        assert_eq!(forward_range((49_152, 65_535)), Some((10_000, 49_151)));
        assert_eq!(forward_range((1_024, 65_535)), None);
        assert_eq!(forward_range((5_000, 20_000)), Some((20_001, 65_535)));
        assert_eq!(forward_range((10_000, 64_999)), None);
    }

    #[test]
    fn every_port_of_the_range_comes_once() {
        let range = (10_000, 10_999);
        let all: std::collections::BTreeSet<u16> =
            (0..1_000).map(|n| nth_port(range, 4_242, n)).collect();
        assert_eq!(all.len(), 1_000);
        assert_eq!(all.first(), Some(&10_000));
        assert_eq!(all.last(), Some(&10_999));
        assert_ne!(nth_port(range, 1, 0), nth_port(range, 2, 0));
    }

    #[test]
    fn ports_handed_out_are_distinct_free_and_outside_the_ephemeral_range() {
        let a = host_ports::<2>().unwrap();
        let b = host_ports::<3>().unwrap();
        let all: std::collections::BTreeSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 5);
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
        let (lo, hi) = text
            .as_deref()
            .and_then(parse_ephemeral)
            .unwrap_or(DEFAULT_EPHEMERAL);
        for p in all {
            assert!(!(lo..=hi).contains(&p), "{p} in {lo}-{hi}");
            assert!(p >= LOWEST);
            assert!(free(p), "{p}");
        }
    }
}
