//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run by `cargo fuzz`) and of the
//! deterministic fuzz loop in `tests/fuzz_loop.rs`: each feeds arbitrary bytes to the parsers
//! and checks invariants that must hold for every input — a parsed packet builds back to the
//! same bytes, every frame is counted exactly once, every packet handed to the ARP cache comes
//! back exactly once. A failed invariant panics: that is a bug found, which is what a fuzz
//! harness is for; the parsers themselves never panic.

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use crate::arp::{ArpCache, ArpEvent, ArpPacket, ArpPolicy, Resolution};
use crate::checksum::{self, Checksum};
use crate::config::IpConfig;
use crate::demux::{self, Counters, Interface, Verdict};
use crate::dhcp::{DhcpClient, DhcpMessage};
use crate::ether::{self, EtherFrame, EtherHeader, Mac};
use crate::icmp::{self, IcmpMessage};
use crate::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::route::Ipv4Cidr;
use crate::wire;

/// The MAC address the harness's interface has.
pub const OUR_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
/// The address the harness's interface has.
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// Ethernet and ARP: the frame parser, the ARP parser (on the frame's payload and on the raw
/// bytes), emit-back equality, and the ARP cache driven by the bytes as a list of operations.
pub fn ether_arp(data: &[u8]) {
    if let Ok(f) = EtherFrame::parse(data) {
        assert!(f.header_len + f.payload.len() == data.len());
        if f.vlan.is_none() {
            let mut h = [0u8; ether::HEADER_LEN];
            let hdr = EtherHeader {
                dst: f.dst,
                src: f.src,
                ethertype: f.ethertype,
            };
            assert_eq!(hdr.emit(&mut h), Ok(ether::HEADER_LEN));
            assert_eq!(Some(&h[..]), data.get(..ether::HEADER_LEN));
        }
        arp_round_trip(f.payload);
    }
    arp_round_trip(data);
    arp_cache_ops(data);
}

fn arp_round_trip(data: &[u8]) {
    if let Ok(a) = ArpPacket::parse(data) {
        let mut out = [0u8; crate::arp::PACKET_LEN];
        assert_eq!(a.emit(&mut out), Ok(crate::arp::PACKET_LEN));
        assert_eq!(Some(&out[..]), data.get(..crate::arp::PACKET_LEN));
        let mut frame = [0u8; 64];
        let n = a.emit_frame(&mut frame).unwrap_or(0);
        let back = frame.get(..n).and_then(|f| EtherFrame::parse(f).ok());
        assert_eq!(back.and_then(|f| ArpPacket::parse(f.payload).ok()), Some(a));
    }
}

/// Drives an [`ArpCache`] with operations read from `data` (3 bytes each: op, address, time
/// step) and checks its bounds and that every packet handed in comes back exactly once.
pub fn arp_cache_ops(data: &[u8]) {
    let policy = ArpPolicy {
        capacity: 4,
        entry_ttl_ms: 50,
        max_pending_destinations: 3,
        max_pending_per_destination: 2,
        retry_interval_ms: 10,
        max_requests: 2,
    };
    let mut cache: ArpCache<u32> = ArpCache::new(policy);
    let mut now = 0u64;
    let mut next_packet = 0u32;
    let mut returned: Vec<u32> = Vec::new();
    for &[kind, host, step] in data.as_chunks::<3>().0 {
        now += u64::from(step % 32);
        let ip = Ipv4Addr::new(10, 0, 2, host % 8);
        let mac = Mac([2, 0, 0, 0, 0, host % 8]);
        match kind % 5 {
            0 | 1 => {
                let p = next_packet;
                next_packet += 1;
                match cache.resolve(ip, p, now) {
                    Resolution::Ready { mac: m, packet } => {
                        assert_eq!(m, mac);
                        returned.push(packet);
                    }
                    Resolution::Queued { .. } => {}
                    Resolution::Refused { packet, .. } => returned.push(packet),
                }
            }
            2 => returned.extend(cache.insert(ip, mac, now)),
            3 => {
                let arp = ArpPacket::request(mac, ip, if host & 0x80 != 0 { OUR_IP } else { ip });
                let out = cache.handle(&arp, OUR_IP, OUR_MAC, now);
                returned.extend(out.released);
            }
            _ => cache.poll(now, |e| {
                if let ArpEvent::Unreachable { packets, .. } = e {
                    returned.extend(packets);
                }
            }),
        }
        let (dests, queued) = cache.pending();
        assert!(dests <= policy.max_pending_destinations);
        assert!(queued <= dests * policy.max_pending_per_destination);
        assert!(cache.len() <= policy.capacity);
        assert_eq!(returned.len() + queued, next_packet as usize);
    }
    returned.sort_unstable();
    returned.dedup();
    assert_eq!(returned.len() + cache.pending().1, next_packet as usize);
}

/// IPv4 and ICMP: the IPv4 parser with its invariants and build-back equality, the ICMP parser,
/// the echo reply builder, and the checksum in pieces.
pub fn ipv4_icmp(data: &[u8]) {
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (a, b) = data.split_at(split);
    let mut c = Checksum::new();
    c.add_bytes(a);
    c.add_bytes(b);
    assert_eq!(c.sum(), checksum::ones_complement_sum(data));

    if let Ok(ip) = Ipv4Packet::parse(data) {
        let total = usize::from(ip.total_len);
        assert!(ip.header_len >= 20 && ip.header_len <= total && total <= data.len());
        assert_eq!(ip.payload.len(), total - ip.header_len);
        assert!(data.get(..ip.header_len).is_some_and(checksum::verify));
        let reserved = wire::u8_at(data, 6).is_some_and(|f| f & 0x80 != 0);
        if ip.options.is_empty() && !reserved {
            let repr = Ipv4Repr {
                src: ip.src,
                dst: ip.dst,
                protocol: ip.protocol,
                ttl: ip.ttl,
                ident: ip.ident,
                dont_fragment: ip.dont_fragment,
                dscp_ecn: ip.dscp_ecn,
                payload_len: ip.payload.len(),
            };
            let mut out = alloc::vec![0u8; total];
            assert_eq!(repr.emit_packet(&mut out, ip.payload), Ok(total));
            assert_eq!(Some(&out[..]), data.get(..total));
        }
        icmp_checks(&ip);
        error_checks(data, &ip);
    }
    if let Ok(IcmpMessage::DestUnreachable(d)) = IcmpMessage::parse(data) {
        let _ = d.quoted();
    }
    let _ = icmp::error_quote(
        data,
        data.len().is_multiple_of(2),
        Some(Ipv4Addr::BROADCAST),
    );
}

/// An ICMP error about a parsed packet, when the rules allow one: it quotes the header and at
/// most 8 bytes more, goes back to the packet's source, and parses as what was built.
fn error_checks(data: &[u8], ip: &Ipv4Packet<'_>) {
    let subnet = Some(Ipv4Addr::new(10, 0, 2, 255));
    let Ok(q) = icmp::error_quote(data, false, subnet) else {
        return;
    };
    let quoted = q.bytes().len();
    assert!(quoted >= ip.header_len && quoted <= ip.header_len + icmp::QUOTED_PAYLOAD);
    assert_eq!(q.to, ip.src);
    let mut out = alloc::vec![0u8; 20 + icmp::HEADER_LEN + quoted];
    let n = icmp::build_dest_unreachable(&mut out, OUR_IP, icmp::CODE_PORT_UNREACHABLE, &q, 1);
    assert_eq!(n, Ok(out.len()));
    let back = Ipv4Packet::parse(&out);
    assert!(back.is_ok());
    if let Ok(back) = back {
        assert_eq!((back.src, back.dst), (OUR_IP, ip.src));
        let m = IcmpMessage::parse(back.payload);
        assert!(matches!(m, Ok(IcmpMessage::DestUnreachable(d))
            if d.code == icmp::CODE_PORT_UNREACHABLE && d.original == q.bytes()));
    }
}

fn icmp_checks(ip: &Ipv4Packet<'_>) {
    match IcmpMessage::parse(ip.payload) {
        Ok(IcmpMessage::EchoRequest(echo)) => {
            let mut out = alloc::vec![0u8; 20 + ip.payload.len()];
            let n = icmp::build_echo_reply(ip, &echo, 1, &mut out);
            assert_eq!(n, Ok(out.len()));
            let reply = Ipv4Packet::parse(&out);
            assert!(reply.is_ok());
            if let Ok(r) = reply {
                assert_eq!((r.src, r.dst), (ip.dst, ip.src));
                assert_eq!(
                    IcmpMessage::parse(r.payload),
                    Ok(IcmpMessage::EchoReply(echo))
                );
            }
        }
        Ok(IcmpMessage::DestUnreachable(d)) => {
            let _ = d.quoted();
        }
        _ => {}
    }
}

/// The interfaces the demultiplexer is tried with: configured, unconfigured running DHCP, and
/// configured on a /31.
fn interfaces() -> [Interface; 3] {
    let cidr = |len| Ipv4Cidr::new(OUR_IP, len).ok();
    [
        Interface {
            mac: OUR_MAC,
            address: cidr(24),
            dhcp_client: false,
        },
        Interface {
            mac: OUR_MAC,
            address: None,
            dhcp_client: true,
        },
        Interface {
            mac: OUR_MAC,
            address: cidr(31),
            dhcp_client: true,
        },
    ]
}

/// The demultiplexer on one frame, with every interface of the harness: every frame counted
/// exactly once, every delivery within the frame. Also the DHCP, configuration and prefix
/// parsers on the same bytes.
pub fn demux_all(frame: &[u8], counters: &mut [Counters; 3]) {
    for (iface, counters) in interfaces().iter().zip(counters.iter_mut()) {
        let before = counters.rx_frames;
        let v = demux::demux_frame(frame, iface, counters);
        assert_eq!(counters.rx_frames, before + 1);
        assert!(counters.accounted());
        match v {
            Verdict::Transport(d) => {
                assert!(d.ip_offset + d.ip_len <= frame.len());
                assert!(d.payload_offset + d.payload_len == d.ip_offset + d.ip_len);
            }
            Verdict::Dhcp(m) => {
                let mut client = DhcpClient::new(OUR_MAC, m.xid);
                let _ = client.poll(0);
                let _ = client.handle(&m, 1);
            }
            _ => {}
        }
    }
}

/// The `demux` target: the first byte chooses which checksums to repair before the rest of the
/// input is used as a frame (so that mutations get past the checksums), then [`demux_all`].
pub fn demux(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut frame = rest.to_vec();
    fix_checksums(&mut frame, mode);
    let mut counters = [Counters::default(); 3];
    demux_all(&frame, &mut counters);
    others(rest);
}

/// The parsers the frame targets do not reach: DHCP messages, the state region, prefixes.
pub fn others(data: &[u8]) {
    let _ = DhcpMessage::parse(data);
    if let Ok(c) = IpConfig::load(data) {
        assert_eq!(Some(&c.store()[..]), data.get(..crate::config::STATE_LEN));
    }
    if let Ok(s) = core::str::from_utf8(data)
        && let Ok(c) = s.parse::<Ipv4Cidr>()
    {
        let mut text = alloc::string::String::new();
        let _ = core::fmt::write(&mut text, format_args!("{c}"));
        assert_eq!(text.parse::<Ipv4Cidr>(), Ok(c));
    }
}

/// The `ipv4_icmp` target: the first byte chooses which checksums to repair in the IPv4 packet
/// that the rest of the input is, then [`ipv4_icmp`].
pub fn ipv4_icmp_target(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut packet = rest.to_vec();
    fix_ipv4_checksums(&mut packet, mode);
    ipv4_icmp(&packet);
}

/// Repairs the checksums of an Ethernet frame carrying IPv4 in place: see
/// [`fix_ipv4_checksums`].
pub fn fix_checksums(frame: &mut [u8], mode: u8) {
    if wire::be16(frame, 12) != Some(0x0800) {
        return;
    }
    if let Some(ip) = frame.get_mut(ether::HEADER_LEN..) {
        fix_ipv4_checksums(ip, mode);
    }
}

/// Repairs the checksums of an IPv4 packet in place: bit 0 of `mode` the header checksum, bit 1
/// the ICMP, UDP or TCP checksum. Best effort on any bytes; never panics.
pub fn fix_ipv4_checksums(ip: &mut [u8], mode: u8) {
    let ihl = usize::from(wire::u8_at(ip, 0).unwrap_or(0) & 0x0F) * 4;
    let total = wire::be16(ip, 2).map_or(0, usize::from).min(ip.len());
    if mode & 2 != 0 && ihl >= 20 && ihl <= total {
        let src = wire::bytes::<4>(ip, 12).map(Ipv4Addr::from);
        let dst = wire::bytes::<4>(ip, 16).map(Ipv4Addr::from);
        let proto = wire::u8_at(ip, 9);
        if let (Some(src), Some(dst), Some(proto), Some(l4)) =
            (src, dst, proto, ip.get_mut(ihl..total))
        {
            let at = match proto {
                1 => Some(2),
                17 => Some(6),
                6 => Some(16),
                _ => None,
            };
            if let Some(at) = at
                && let Some(c) = l4.get_mut(at..at + 2)
            {
                c.fill(0);
                let sum = if proto == 1 {
                    Some(checksum::internet_checksum(l4))
                } else {
                    checksum::transport_checksum(src, dst, proto, l4)
                };
                if let (Some(sum), Some(c)) = (sum, l4.get_mut(at..at + 2)) {
                    c.copy_from_slice(&sum.to_be_bytes());
                }
            }
        }
    }
    if mode & 1 != 0
        && ihl >= 20
        && let Some(h) = ip.get_mut(..ihl)
    {
        if let Some(c) = h.get_mut(10..12) {
            c.fill(0);
        }
        let sum = checksum::internet_checksum(h);
        if let Some(c) = h.get_mut(10..12) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
    }
}
