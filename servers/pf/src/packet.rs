//! What pf looks at in a packet: [`PacketMeta`], and its extraction from the raw bytes of an
//! IPv4 packet ([`PacketMeta::from_ipv4`]), which come from the wire and are untrusted.
//!
//! ## What is read, what is checked
//! - Version 4; header length (IHL) at least 5 words and within the bytes given; total length
//!   at least the header length and within the bytes given. Bytes past the total length (the
//!   padding of a short Ethernet frame) are ignored.
//! - Protocol, source and destination address.
//! - Ports, for TCP (6) and UDP (17) only, from the first four bytes after the IP header — and
//!   only in a packet whose fragment offset is zero (an unfragmented packet or a first
//!   fragment). A non-first fragment carries no transport header, so it has no ports: it is
//!   matched only by rules that name no ports. (Its first fragment carried the ports and met
//!   the port rules; if that one was dropped, ip cannot reassemble the rest.) A TCP or UDP
//!   packet at offset zero with fewer than four bytes of payload is refused
//!   ([`PacketError::TruncatedPorts`]): it could otherwise slip past a port rule.
//! - Not checked, because pf's decision does not depend on them and ip checks them: the header
//!   checksum, the options, the flags other than the fragment offset, TTL.
//!
//! Every read is bounds-checked; no input makes these functions panic.

use core::fmt;
use core::net::Ipv4Addr;

use crate::rule::Direction;

/// IP protocol numbers pf knows by name.
pub mod ip_proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// The fields of a packet that rules match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketMeta {
    /// The way the packet travels: [`Direction::In`] or [`Direction::Out`].
    pub dir: Direction,
    /// The IP protocol number (see [`ip_proto`]).
    pub proto: u8,
    /// The source address.
    pub src: Ipv4Addr,
    /// The destination address.
    pub dst: Ipv4Addr,
    /// The source port: `Some` exactly for TCP and UDP packets at fragment offset zero.
    pub sport: Option<u16>,
    /// The destination port: `Some` exactly when `sport` is.
    pub dport: Option<u16>,
}

/// Why the bytes given are not an IPv4 packet pf can classify. The rule set drops such packets
/// ([`RuleSet::filter_ipv4`](crate::RuleSet::filter_ipv4)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// Fewer than the 20 bytes of a minimal IPv4 header.
    TooShort,
    /// The version field is not 4.
    NotIpv4,
    /// The header length field (IHL) is below 5 words, or runs past the bytes given.
    BadHeaderLength,
    /// The total length field is below the header length or runs past the bytes given.
    BadTotalLength,
    /// A TCP or UDP packet at fragment offset zero too short to hold its two ports.
    TruncatedPorts,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketError::TooShort => "shorter than an IPv4 header",
            PacketError::NotIpv4 => "IP version is not 4",
            PacketError::BadHeaderLength => "bad IPv4 header length",
            PacketError::BadTotalLength => "bad IPv4 total length",
            PacketError::TruncatedPorts => "TCP/UDP packet too short for its ports",
        })
    }
}

/// The length of an IPv4 header without options.
pub const IPV4_MIN_HEADER: usize = 20;

/// The EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;

/// The length of an Ethernet header without VLAN tag.
pub const ETHERNET_HEADER: usize = 14;

impl PacketMeta {
    /// Reads the fields of the IPv4 packet in `bytes`, travelling `dir`. See the module
    /// documentation for what is checked.
    pub fn from_ipv4(bytes: &[u8], dir: Direction) -> Result<PacketMeta, PacketError> {
        let header: &[u8; IPV4_MIN_HEADER] = match bytes.first_chunk() {
            Some(header) => header,
            None => return Err(PacketError::TooShort),
        };
        if header[0] >> 4 != 4 {
            return Err(PacketError::NotIpv4);
        }
        let header_len = usize::from(header[0] & 0x0f) * 4;
        if header_len < IPV4_MIN_HEADER || header_len > bytes.len() {
            return Err(PacketError::BadHeaderLength);
        }
        let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if total_len < header_len || total_len > bytes.len() {
            return Err(PacketError::BadTotalLength);
        }
        let fragment_offset = u16::from_be_bytes([header[6], header[7]]) & 0x1fff;
        let proto = header[9];
        let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
        let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);

        let (mut sport, mut dport) = (None, None);
        if fragment_offset == 0 && (proto == ip_proto::TCP || proto == ip_proto::UDP) {
            // `header_len <= total_len <= bytes.len()`, so the range is in bounds whenever it
            // is not empty; `get` keeps that a checked fact rather than a proof.
            let payload = bytes.get(header_len..total_len).unwrap_or(&[]);
            let ports: &[u8; 4] = payload.first_chunk().ok_or(PacketError::TruncatedPorts)?;
            sport = Some(u16::from_be_bytes([ports[0], ports[1]]));
            dport = Some(u16::from_be_bytes([ports[2], ports[3]]));
        }
        Ok(PacketMeta {
            dir,
            proto,
            src,
            dst,
            sport,
            dport,
        })
    }
}

/// The IPv4 packet inside an Ethernet II frame (no VLAN tag), or `None` when the frame is
/// shorter than an Ethernet header or carries something else (ARP, IPv6 ...). pf filters IPv4
/// only; what this returns `None` for is the server's to pass on unfiltered.
pub fn ipv4_in_ethernet(frame: &[u8]) -> Option<&[u8]> {
    let (header, payload) = frame.split_first_chunk::<ETHERNET_HEADER>()?;
    (u16::from_be_bytes([header[12], header[13]]) == ETHERTYPE_IPV4).then_some(payload)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A test packet: IPv4 header of `ihl` words (options zero), then `payload`.
    pub(crate) fn ipv4(
        proto: u8,
        src: [u8; 4],
        dst: [u8; 4],
        frag: u16,
        ihl: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let header_len = usize::from(ihl) * 4;
        let total = header_len + payload.len();
        let mut p = vec![0u8; header_len.max(20)];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p.truncate(header_len.max(20));
        p.extend_from_slice(payload);
        p
    }

    fn ports(sport: u16, dport: u16) -> Vec<u8> {
        let mut v = sport.to_be_bytes().to_vec();
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        v
    }

    #[test]
    fn reads_tcp_packet() {
        let p = ipv4(6, [10, 0, 2, 2], [10, 0, 2, 15], 0, 5, &ports(40000, 7));
        let m = PacketMeta::from_ipv4(&p, Direction::In).unwrap();
        assert_eq!(
            m,
            PacketMeta {
                dir: Direction::In,
                proto: 6,
                src: Ipv4Addr::new(10, 0, 2, 2),
                dst: Ipv4Addr::new(10, 0, 2, 15),
                sport: Some(40000),
                dport: Some(7),
            }
        );
    }

    #[test]
    fn skips_options() {
        let mut p = ipv4(17, [1, 2, 3, 4], [5, 6, 7, 8], 0, 7, &ports(53, 65535));
        p[20..28].fill(0xee); // 8 bytes of options
        let m = PacketMeta::from_ipv4(&p, Direction::Out).unwrap();
        assert_eq!((m.sport, m.dport), (Some(53), Some(65535)));
        assert_eq!(m.dir, Direction::Out);
    }

    #[test]
    fn ignores_ethernet_padding_past_total_length() {
        let mut p = ipv4(1, [1, 1, 1, 1], [2, 2, 2, 2], 0, 5, &[8, 0, 0, 0]);
        p.extend_from_slice(&[0xff; 22]);
        let m = PacketMeta::from_ipv4(&p, Direction::In).unwrap();
        assert_eq!((m.proto, m.sport, m.dport), (1, None, None));
        // UDP whose total length ends before the ports, padding after: refused, not read.
        let mut p = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0, 5, &[0, 53]);
        p.extend_from_slice(&[0, 53, 0, 0]);
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::TruncatedPorts)
        );
    }

    #[test]
    fn non_first_fragment_has_no_ports() {
        // offset 1 (8 bytes), MF clear
        let p = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 1, 5, &ports(1, 2));
        let m = PacketMeta::from_ipv4(&p, Direction::In).unwrap();
        assert_eq!((m.sport, m.dport), (None, None));
        // The largest offset, MF set, no payload at all.
        let p = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0x2000 | 0x1fff, 5, &[]);
        let m = PacketMeta::from_ipv4(&p, Direction::In).unwrap();
        assert_eq!((m.sport, m.dport), (None, None));
        // First fragment (MF set, offset 0) does have ports.
        let p = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0x2000, 5, &ports(5, 6));
        let m = PacketMeta::from_ipv4(&p, Direction::In).unwrap();
        assert_eq!((m.sport, m.dport), (Some(5), Some(6)));
        // DF set doesn't matter.
        let p = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 0x4000, 5, &ports(5, 6));
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In).unwrap().sport,
            Some(5)
        );
    }

    #[test]
    fn first_fragment_needs_four_bytes_of_ports() {
        for n in 0..4 {
            let p = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0x2000, 5, &[0u8, 80, 0][..n]);
            assert_eq!(
                PacketMeta::from_ipv4(&p, Direction::In),
                Err(PacketError::TruncatedPorts)
            );
        }
        let p = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0, 5, &[0, 80, 0, 7]);
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In).unwrap().dport,
            Some(7)
        );
        // Other protocols need no payload.
        let p = ipv4(47, [1, 1, 1, 1], [2, 2, 2, 2], 0, 5, &[]);
        assert_eq!(PacketMeta::from_ipv4(&p, Direction::In).unwrap().proto, 47);
    }

    #[test]
    fn refuses_bad_headers() {
        let good = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0, 5, &ports(1, 2));
        for n in 0..20 {
            assert_eq!(
                PacketMeta::from_ipv4(&good[..n], Direction::In),
                Err(PacketError::TooShort)
            );
        }
        let mut p = good.clone();
        p[0] = 0x65;
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::NotIpv4)
        );
        for ihl in 0..5 {
            let mut p = good.clone();
            p[0] = 0x40 | ihl;
            assert_eq!(
                PacketMeta::from_ipv4(&p, Direction::In),
                Err(PacketError::BadHeaderLength)
            );
        }
        // IHL 15 = 60 bytes, beyond the 44 given.
        let mut p = good.clone();
        p[0] = 0x4f;
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::BadHeaderLength)
        );
        // Total length below the header, and beyond the bytes.
        let mut p = good.clone();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::BadTotalLength)
        );
        let mut p = good.clone();
        p[2..4].copy_from_slice(&(good.len() as u16 + 1).to_be_bytes());
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::BadTotalLength)
        );
        let mut p = good.clone();
        p[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::BadTotalLength)
        );
        // Total length exactly the header: TCP at offset 0 has no ports.
        let mut p = good.clone();
        p[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(
            PacketMeta::from_ipv4(&p, Direction::In),
            Err(PacketError::TruncatedPorts)
        );
    }

    #[test]
    fn ethernet_unwrapping() {
        let ip = ipv4(1, [1, 1, 1, 1], [2, 2, 2, 2], 0, 5, &[]);
        let mut frame = vec![0xff; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        assert_eq!(ipv4_in_ethernet(&frame), Some(&ip[..]));
        frame[13] = 0x06; // ARP
        assert_eq!(ipv4_in_ethernet(&frame), None);
        assert_eq!(ipv4_in_ethernet(&frame[..13]), None);
        let bare = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        assert_eq!(ipv4_in_ethernet(&bare), Some(&[][..]));
    }
}
