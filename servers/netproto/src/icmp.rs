//! ICMP (RFC 792): echo request and reply, destination unreachable; the checksum covers the
//! whole message and is always verified.
//!
//! Echo messages with a non-zero code are refused. Destination unreachable is parsed minimally:
//! the code, the next-hop MTU (RFC 1191, for "fragmentation needed"), and the quoted datagram,
//! whose IPv4 header and first 8 bytes [`DestUnreachable::quoted`] reads without trusting its
//! checksum or lengths (routers may have changed them). Other types are reported by number.

use core::fmt;
use core::net::Ipv4Addr;

use crate::BuildError;
use crate::checksum;
use crate::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire;

/// The length of the ICMP header (type, code, checksum, and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;
/// Type of an echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type of destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Type of an echo request.
pub const ECHO_REQUEST: u8 = 8;

/// Why an ICMP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Shorter than the 8-byte header.
    Truncated,
    /// The checksum is wrong.
    BadChecksum,
    /// An echo request or reply with a code other than 0 (the code found).
    BadCode(u8),
    /// The datagram quoted in an error message is shorter than an IPv4 header or not IPv4.
    BadQuote,
}

impl fmt::Display for IcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("icmp: truncated"),
            Self::BadChecksum => f.write_str("icmp: bad checksum"),
            Self::BadCode(c) => write!(f, "icmp: echo with code {c}"),
            Self::BadQuote => f.write_str("icmp: bad quoted datagram"),
        }
    }
}

/// An echo request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo<'a> {
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
    /// The data, echoed back unchanged.
    pub data: &'a [u8],
}

/// A destination unreachable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestUnreachable<'a> {
    /// The code: 0 net, 1 host, 2 protocol, 3 port, 4 fragmentation needed, ...
    pub code: u8,
    /// The next-hop MTU of a code-4 message (0 when the router does not say).
    pub next_hop_mtu: u16,
    /// The quoted datagram: its IPv4 header and at least 8 bytes of its payload.
    pub original: &'a [u8],
}

/// What [`DestUnreachable::quoted`] finds in the quoted datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Source of the datagram that could not be delivered (normally us).
    pub src: Ipv4Addr,
    /// Its destination.
    pub dst: Ipv4Addr,
    /// Its protocol.
    pub protocol: IpProtocol,
    /// The first 8 bytes of its payload (the ports of TCP or UDP), if quoted.
    pub first8: Option<[u8; 8]>,
}

impl DestUnreachable<'_> {
    /// Reads the quoted IPv4 header and the first 8 bytes after it.
    pub fn quoted(&self) -> Result<Quoted, IcmpError> {
        let h: [u8; 20] = wire::bytes(self.original, 0).ok_or(IcmpError::BadQuote)?;
        let ihl = usize::from(h[0] & 0x0F) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return Err(IcmpError::BadQuote);
        }
        Ok(Quoted {
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            protocol: IpProtocol(h[9]),
            first8: wire::bytes(self.original, ihl),
        })
    }
}

/// A parsed ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpMessage<'a> {
    /// Type 8: answer it.
    EchoRequest(Echo<'a>),
    /// Type 0: the answer to a ping.
    EchoReply(Echo<'a>),
    /// Type 3.
    DestUnreachable(DestUnreachable<'a>),
    /// Any other type, with its code; not interpreted.
    Other {
        /// The type.
        icmp_type: u8,
        /// The code.
        code: u8,
    },
}

impl<'a> IcmpMessage<'a> {
    /// Parses and checks an ICMP message (the payload of an IPv4 packet).
    pub fn parse(buf: &'a [u8]) -> Result<Self, IcmpError> {
        let h: [u8; HEADER_LEN] = wire::bytes(buf, 0).ok_or(IcmpError::Truncated)?;
        if !checksum::verify(buf) {
            return Err(IcmpError::BadChecksum);
        }
        let rest = buf.get(HEADER_LEN..).ok_or(IcmpError::Truncated)?;
        let (icmp_type, code) = (h[0], h[1]);
        let echo = || {
            if code != 0 {
                return Err(IcmpError::BadCode(code));
            }
            let ident = u16::from_be_bytes([h[4], h[5]]);
            Ok(Echo {
                ident,
                seq: u16::from_be_bytes([h[6], h[7]]),
                data: rest,
            })
        };
        Ok(match icmp_type {
            ECHO_REQUEST => Self::EchoRequest(echo()?),
            ECHO_REPLY => Self::EchoReply(echo()?),
            DEST_UNREACHABLE => Self::DestUnreachable(DestUnreachable {
                code,
                next_hop_mtu: u16::from_be_bytes([h[6], h[7]]),
                original: rest,
            }),
            _ => Self::Other { icmp_type, code },
        })
    }
}

/// Writes an echo message of type `icmp_type` ([`ECHO_REQUEST`] or [`ECHO_REPLY`]) with its
/// checksum to `buf`; returns its length.
pub fn emit_echo(buf: &mut [u8], icmp_type: u8, echo: &Echo<'_>) -> Result<usize, BuildError> {
    let len = HEADER_LEN
        .checked_add(echo.data.len())
        .ok_or(BuildError::PayloadTooLarge)?;
    let out = wire::out(buf, len)?;
    wire::put(out, 0, &[icmp_type, 0, 0, 0])?;
    wire::put16(out, 4, echo.ident)?;
    wire::put16(out, 6, echo.seq)?;
    wire::put(out, HEADER_LEN, echo.data)?;
    let c = checksum::internet_checksum(out);
    wire::put16(out, 2, c)?;
    Ok(len)
}

/// Writes the IPv4 packet answering the echo request `echo` carried by `request`: from the
/// request's destination (our address) to its source, TTL 64, identification `ip_ident`, the
/// same identifier, sequence number and data. Returns the packet's length.
pub fn build_echo_reply(
    request: &Ipv4Packet<'_>,
    echo: &Echo<'_>,
    ip_ident: u16,
    buf: &mut [u8],
) -> Result<usize, BuildError> {
    build_echo(buf, request.dst, request.src, ip_ident, ECHO_REPLY, echo)
}

/// Writes an IPv4 packet carrying an echo request (what `ping` sends); returns its length.
pub fn build_echo_request(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ip_ident: u16,
    echo: &Echo<'_>,
) -> Result<usize, BuildError> {
    build_echo(buf, src, dst, ip_ident, ECHO_REQUEST, echo)
}

fn build_echo(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ip_ident: u16,
    icmp_type: u8,
    echo: &Echo<'_>,
) -> Result<usize, BuildError> {
    let icmp_len = HEADER_LEN
        .checked_add(echo.data.len())
        .ok_or(BuildError::PayloadTooLarge)?;
    let repr = Ipv4Repr::new(src, dst, IpProtocol::ICMP, ip_ident, icmp_len);
    let hl = crate::ipv4::HEADER_LEN;
    let total = hl
        .checked_add(icmp_len)
        .ok_or(BuildError::PayloadTooLarge)?;
    let out = wire::out(buf, total)?;
    repr.emit(out)?;
    let icmp = out
        .get_mut(hl..)
        .ok_or(BuildError::BufferTooSmall { needed: total })?;
    emit_echo(icmp, icmp_type, echo)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::Ipv4Packet;

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    /// `ping -c1 10.0.2.15` from Linux: 56 data bytes, a timeval then 0x10, 0x11, ...
    pub(crate) fn linux_ping_data() -> Vec<u8> {
        let mut d = vec![
            0x5c, 0x3b, 0x6a, 0x67, 0, 0, 0, 0, 0x2e, 0x8f, 0x0b, 0, 0, 0, 0, 0,
        ];
        d.extend(0x10u8..0x38);
        d
    }

    #[test]
    fn ping_and_reply() {
        let data = linux_ping_data();
        let mut buf = [0u8; 128];
        let n = build_echo_request(
            &mut buf,
            HOST,
            US,
            0x4f2a,
            &Echo {
                ident: 0x0b1e,
                seq: 1,
                data: &data,
            },
        )
        .unwrap();
        assert_eq!(n, 84);
        let ip = Ipv4Packet::parse(&buf[..n]).unwrap();
        assert_eq!(ip.protocol, IpProtocol::ICMP);
        let IcmpMessage::EchoRequest(echo) = IcmpMessage::parse(ip.payload).unwrap() else {
            panic!("not an echo request");
        };
        assert_eq!((echo.ident, echo.seq, echo.data), (0x0b1e, 1, &data[..]));
        let mut out = [0u8; 128];
        let m = build_echo_reply(&ip, &echo, 7, &mut out).unwrap();
        assert_eq!(m, 84);
        let rip = Ipv4Packet::parse(&out[..m]).unwrap();
        assert_eq!((rip.src, rip.dst, rip.ttl, rip.ident), (US, HOST, 64, 7));
        let IcmpMessage::EchoReply(r) = IcmpMessage::parse(rip.payload).unwrap() else {
            panic!("not an echo reply");
        };
        assert_eq!(r, echo);
        // The reply's checksum is the request's updated for the type change (RFC 1624).
        let req_c = u16::from_be_bytes([ip.payload[2], ip.payload[3]]);
        let rep_c = u16::from_be_bytes([rip.payload[2], rip.payload[3]]);
        assert_eq!(checksum::update_u16(req_c, 0x0800, 0x0000), rep_c);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            IcmpMessage::parse(&[8, 0, 0xf7, 0xff, 0, 0, 0]),
            Err(IcmpError::Truncated)
        );
        let mut m = [8u8, 0, 0, 0, 0, 1, 0, 2, 0xaa];
        let c = checksum::internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(
            IcmpMessage::parse(&m),
            Ok(IcmpMessage::EchoRequest(_))
        ));
        m[8] = 0xab;
        assert_eq!(IcmpMessage::parse(&m), Err(IcmpError::BadChecksum));
        let mut m = [8u8, 1, 0, 0, 0, 0, 0, 0];
        let c = checksum::internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(IcmpMessage::parse(&m), Err(IcmpError::BadCode(1)));
        let mut m = [13u8, 0, 0, 0, 0, 0, 0, 0];
        let c = checksum::internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            IcmpMessage::parse(&m),
            Ok(IcmpMessage::Other {
                icmp_type: 13,
                code: 0
            })
        );
    }

    #[test]
    fn port_unreachable_from_host() {
        // Our UDP datagram 10.0.2.15:1234 -> 10.0.2.2:9, and the host's answer.
        let mut dgram = [0u8; 64];
        let udp = [
            0x04, 0xd2, 0x00, 0x09, 0x00, 0x0c, 0x00, 0x00, b'p', b'i', b'n', b'g',
        ];
        let n = Ipv4Repr::new(US, HOST, IpProtocol::UDP, 99, 0)
            .emit_packet(&mut dgram, &udp)
            .unwrap();
        let mut msg = vec![DEST_UNREACHABLE, 3, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&dgram[..n]);
        let c = checksum::internet_checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let IcmpMessage::DestUnreachable(du) = IcmpMessage::parse(&msg).unwrap() else {
            panic!("not unreachable");
        };
        assert_eq!(du.code, 3);
        let q = du.quoted().unwrap();
        assert_eq!((q.src, q.dst, q.protocol), (US, HOST, IpProtocol::UDP));
        assert_eq!(
            q.first8,
            Some([0x04, 0xd2, 0x00, 0x09, 0x00, 0x0c, 0x00, 0x00])
        );
        let short = DestUnreachable {
            code: 1,
            next_hop_mtu: 0,
            original: &dgram[..19],
        };
        assert_eq!(short.quoted(), Err(IcmpError::BadQuote));
        let no_ports = DestUnreachable {
            code: 1,
            next_hop_mtu: 0,
            original: &dgram[..22],
        };
        assert_eq!(no_ports.quoted().unwrap().first8, None);
    }
}
