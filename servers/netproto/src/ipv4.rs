//! IPv4 headers (RFC 791): full validation of received ones and building of sent ones.
//!
//! [`Ipv4Packet::parse`] checks, in this order: at least 20 bytes; version 4; IHL at least 5 and
//! the header within the buffer; total length at least the header and at most the buffer (bytes
//! past the total length — Ethernet padding — are cut off); the header checksum; the options
//! well-formed (each within the header, lengths at least 2); TTL not zero (RFC 1122 §3.2.1.7:
//! no host may send it; this host does not forward, so it never decrements one); not a fragment.
//!
//! **Fragments are refused** ([`Ipv4Error::Fragment`]): there is no reassembly. TCP peers send
//! segments within the MSS the tcp server announces, UDP users keep datagrams under the MTU, and
//! QEMU's user networking does not fragment towards the guest. The reserved flag bit is ignored.
//!
//! The builder ([`Ipv4Repr`]) writes 20-byte headers (no options) with the checksum filled in.

use core::fmt;
use core::net::Ipv4Addr;

use crate::BuildError;
use crate::checksum;
use crate::wire;

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;
/// The default TTL of sent packets (RFC 1700's recommendation, as Linux).
pub const DEFAULT_TTL: u8 = 64;

/// The protocol field of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMP.
    pub const ICMP: Self = Self(1);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ICMP => f.write_str("icmp"),
            Self::TCP => f.write_str("tcp"),
            Self::UDP => f.write_str("udp"),
            Self(p) => write!(f, "proto {p}"),
        }
    }
}

/// Why an IPv4 packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Shorter than the 20-byte minimum header.
    Truncated,
    /// The version field is not 4 (the value found).
    BadVersion(u8),
    /// IHL below 5 (a header shorter than 20 bytes).
    BadHeaderLength,
    /// The header (IHL) runs past the buffer or past the total length.
    HeaderPastEnd,
    /// The total length field is below the header length or above the bytes received.
    BadTotalLength,
    /// The header checksum is wrong.
    BadChecksum,
    /// An option runs past the header or has a length below 2.
    BadOptions,
    /// TTL is zero.
    ZeroTtl,
    /// A fragment (more-fragments set or a non-zero offset): no reassembly.
    Fragment,
}

impl fmt::Display for Ipv4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Truncated => "truncated header",
            Self::BadVersion(_) => "not version 4",
            Self::BadHeaderLength => "IHL below 5",
            Self::HeaderPastEnd => "header past the end of the packet",
            Self::BadTotalLength => "bad total length",
            Self::BadChecksum => "bad header checksum",
            Self::BadOptions => "malformed options",
            Self::ZeroTtl => "TTL zero",
            Self::Fragment => "fragment",
        };
        write!(f, "ipv4: {s}")
    }
}

/// A validated IPv4 packet: a view into the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    /// DSCP (high 6 bits) and ECN (low 2 bits).
    pub dscp_ecn: u8,
    /// The total length field: header and payload.
    pub total_len: u16,
    /// Identification.
    pub ident: u16,
    /// The don't-fragment flag.
    pub dont_fragment: bool,
    /// Time to live (never zero in a parsed packet).
    pub ttl: u8,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// The header checksum as received (already verified).
    pub checksum: u16,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Header length in bytes (IHL × 4); the payload starts here.
    pub header_len: usize,
    /// The options (empty without); well-formed.
    pub options: &'a [u8],
    /// The payload: `total_len - header_len` bytes, padding cut off.
    pub payload: &'a [u8],
}

/// Walks the option list: each option is EOL (0, ends the list), NOP (1), or type, length
/// (at least 2, within the header), data.
fn options_ok(mut opts: &[u8]) -> bool {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return true,
            1 => opts = rest,
            _ => {
                let Some(&len) = rest.first() else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 {
                    return false;
                }
                match opts.get(len..) {
                    Some(after) => opts = after,
                    None => return false,
                }
            }
        }
    }
    true
}

impl<'a> Ipv4Packet<'a> {
    /// Validates `buf` as an IPv4 packet (see the module documentation for what is checked).
    pub fn parse(buf: &'a [u8]) -> Result<Self, Ipv4Error> {
        let h: [u8; HEADER_LEN] = wire::bytes(buf, 0).ok_or(Ipv4Error::Truncated)?;
        let version = h[0] >> 4;
        if version != 4 {
            return Err(Ipv4Error::BadVersion(version));
        }
        let header_len = usize::from(h[0] & 0x0F) * 4;
        if header_len < HEADER_LEN {
            return Err(Ipv4Error::BadHeaderLength);
        }
        let total_len = u16::from_be_bytes([h[2], h[3]]);
        let total = usize::from(total_len);
        if header_len > buf.len() || header_len > total {
            return Err(Ipv4Error::HeaderPastEnd);
        }
        if total > buf.len() {
            return Err(Ipv4Error::BadTotalLength);
        }
        let header = buf.get(..header_len).ok_or(Ipv4Error::HeaderPastEnd)?;
        if !checksum::verify(header) {
            return Err(Ipv4Error::BadChecksum);
        }
        let options = header.get(HEADER_LEN..).ok_or(Ipv4Error::HeaderPastEnd)?;
        if !options_ok(options) {
            return Err(Ipv4Error::BadOptions);
        }
        let ttl = h[8];
        if ttl == 0 {
            return Err(Ipv4Error::ZeroTtl);
        }
        let flags_frag = u16::from_be_bytes([h[6], h[7]]);
        let more_fragments = flags_frag & 0x2000 != 0;
        let fragment_offset = flags_frag & 0x1FFF;
        if more_fragments || fragment_offset != 0 {
            return Err(Ipv4Error::Fragment);
        }
        let payload = buf
            .get(header_len..total)
            .ok_or(Ipv4Error::BadTotalLength)?;
        Ok(Self {
            dscp_ecn: h[1],
            total_len,
            ident: u16::from_be_bytes([h[4], h[5]]),
            dont_fragment: flags_frag & 0x4000 != 0,
            ttl,
            protocol: IpProtocol(h[9]),
            checksum: u16::from_be_bytes([h[10], h[11]]),
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            header_len,
            options,
            payload,
        })
    }
}

/// An IPv4 header to write (20 bytes, no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Set the don't-fragment flag.
    pub dont_fragment: bool,
    /// DSCP and ECN.
    pub dscp_ecn: u8,
    /// Length of the payload that follows the header.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// A header with the default TTL, no DSCP, DF set, for `payload_len` bytes.
    pub fn new(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        ident: u16,
        payload_len: usize,
    ) -> Self {
        Self {
            src,
            dst,
            protocol,
            ttl: DEFAULT_TTL,
            ident,
            dont_fragment: true,
            dscp_ecn: 0,
            payload_len,
        }
    }

    /// Writes the header with its checksum to the first [`HEADER_LEN`] bytes of `buf`; returns
    /// [`HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let total = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|t| u16::try_from(t).ok())
            .ok_or(BuildError::PayloadTooLarge)?;
        let out = wire::out(buf, HEADER_LEN)?;
        let flags: u16 = if self.dont_fragment { 0x4000 } else { 0 };
        wire::put(out, 0, &[0x45, self.dscp_ecn])?;
        wire::put16(out, 2, total)?;
        wire::put16(out, 4, self.ident)?;
        wire::put16(out, 6, flags)?;
        wire::put(out, 8, &[self.ttl, self.protocol.0, 0, 0])?;
        wire::put(out, 12, &self.src.octets())?;
        wire::put(out, 16, &self.dst.octets())?;
        let c = checksum::internet_checksum(out);
        wire::put16(out, 10, c)?;
        Ok(HEADER_LEN)
    }

    /// Writes the header and `payload` (whose length replaces `payload_len`); returns the
    /// packet's length.
    pub fn emit_packet(&self, buf: &mut [u8], payload: &[u8]) -> Result<usize, BuildError> {
        let repr = Self {
            payload_len: payload.len(),
            ..*self
        };
        let total = HEADER_LEN
            .checked_add(payload.len())
            .ok_or(BuildError::PayloadTooLarge)?;
        if total > usize::from(u16::MAX) {
            return Err(BuildError::PayloadTooLarge);
        }
        let out = wire::out(buf, total)?;
        repr.emit(out)?;
        wire::put(out, HEADER_LEN, payload)?;
        Ok(total)
    }
}

/// True for 255.255.255.255, multicast (224/4) or reserved (240/4), loopback (127/8) and
/// 0.0.0.0: addresses that may never be the source of a packet received from the wire.
pub fn is_martian_source(a: Ipv4Addr) -> bool {
    a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.octets()[0] >= 240
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 1600];
        let n = Ipv4Repr::new(HOST, GUEST, IpProtocol::UDP, 0x1c46, 0)
            .emit_packet(&mut buf, payload)
            .unwrap();
        buf.truncate(n);
        buf
    }

    fn refix(p: &mut [u8]) {
        let hl = usize::from(p[0] & 0xF) * 4;
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::internet_checksum(&p[..hl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn round_trip() {
        let p = packet(b"hello");
        assert_eq!(p.len(), 25);
        let v = Ipv4Packet::parse(&p).unwrap();
        assert_eq!(
            (v.src, v.dst, v.protocol, v.ttl),
            (HOST, GUEST, IpProtocol::UDP, 64)
        );
        assert_eq!(
            (v.ident, v.dont_fragment, v.total_len, v.header_len),
            (0x1c46, true, 25, 20)
        );
        assert_eq!(v.payload, b"hello");
        assert!(v.options.is_empty());
        // Ethernet padding after the packet is cut off.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 21]);
        assert_eq!(Ipv4Packet::parse(&padded).unwrap().payload, b"hello");
    }

    #[test]
    fn each_refusal() {
        let good = packet(b"abcdefgh");
        for n in 0..HEADER_LEN {
            assert_eq!(Ipv4Packet::parse(&good[..n]), Err(Ipv4Error::Truncated));
        }
        let mut p = good.clone();
        p[0] = 0x65;
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::BadVersion(6)));
        let mut p = good.clone();
        p[0] = 0x44;
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::BadHeaderLength));
        let mut p = good.clone();
        p[0] = 0x4f; // 60-byte header in a 28-byte packet
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::HeaderPastEnd));
        let mut p = good.clone();
        p[2..4].copy_from_slice(&29u16.to_be_bytes());
        refix(&mut p);
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::BadTotalLength));
        let mut p = good.clone();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        refix(&mut p);
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::HeaderPastEnd));
        let mut p = good.clone();
        p[15] ^= 1;
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::BadChecksum));
        let mut p = good.clone();
        p[8] = 0;
        refix(&mut p);
        assert_eq!(Ipv4Packet::parse(&p), Err(Ipv4Error::ZeroTtl));
        for flags in [0x2000u16, 0x0001, 0x6000, 0x1fff] {
            let mut p = good.clone();
            p[6..8].copy_from_slice(&flags.to_be_bytes());
            refix(&mut p);
            assert_eq!(
                Ipv4Packet::parse(&p),
                Err(Ipv4Error::Fragment),
                "{flags:#x}"
            );
        }
        // DF alone and the reserved bit are fine.
        let mut p = good.clone();
        p[6..8].copy_from_slice(&0xC000u16.to_be_bytes());
        refix(&mut p);
        assert!(Ipv4Packet::parse(&p).is_ok());
    }

    fn with_options(opts: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut p = packet(b"xy");
        p.splice(20..20, opts.iter().copied());
        p[0] = 0x40 | ((20 + opts.len()) / 4) as u8;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        refix(&mut p);
        p
    }

    #[test]
    fn options() {
        // Router alert (RFC 2113), then EOL padding.
        let p = with_options(&[0x94, 0x04, 0x00, 0x00]);
        let v = Ipv4Packet::parse(&p).unwrap();
        assert_eq!(
            (v.header_len, v.options, v.payload),
            (24, &[0x94, 4, 0, 0][..], &b"xy"[..])
        );
        assert!(Ipv4Packet::parse(&with_options(&[1, 1, 1, 0])).is_ok());
        assert!(Ipv4Packet::parse(&with_options(&[0, 0xff, 0xff, 0xff])).is_ok());
        for bad in [[0x94, 0x05, 0, 0], [0x94, 0x01, 0, 0], [1, 1, 1, 0x83]] {
            assert_eq!(
                Ipv4Packet::parse(&with_options(&bad)),
                Err(Ipv4Error::BadOptions)
            );
        }
    }

    #[test]
    fn builder_limits() {
        let r = Ipv4Repr::new(HOST, GUEST, IpProtocol::TCP, 1, 0);
        assert_eq!(
            r.emit(&mut [0u8; 19]),
            Err(BuildError::BufferTooSmall { needed: 20 })
        );
        assert_eq!(
            Ipv4Repr {
                payload_len: 65_516,
                ..r
            }
            .emit(&mut [0u8; 20]),
            Err(BuildError::PayloadTooLarge)
        );
        assert!(
            Ipv4Repr {
                payload_len: 65_515,
                ..r
            }
            .emit(&mut [0u8; 20])
            .is_ok()
        );
        assert_eq!(
            r.emit_packet(&mut [0u8; 30], &[0u8; 11]),
            Err(BuildError::BufferTooSmall { needed: 31 })
        );
    }

    #[test]
    fn martians() {
        for a in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
            [240, 1, 2, 3],
        ] {
            assert!(is_martian_source(Ipv4Addr::from(a)), "{a:?}");
        }
        assert!(!is_martian_source(HOST));
    }
}
