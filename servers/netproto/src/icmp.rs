//! ICMP (RFC 792): echo request and reply, destination unreachable; the checksum covers the
//! whole message and is always verified.
//!
//! Echo messages with a non-zero code are refused. Destination unreachable is parsed minimally:
//! the code, the next-hop MTU (RFC 1191, for "fragmentation needed"), and the quoted datagram,
//! whose IPv4 header and first 8 bytes [`DestUnreachable::quoted`] reads without trusting its
//! checksum or lengths (routers may have changed them). Other types are reported by number.
//!
//! **Errors we send** (destination unreachable, e.g. port unreachable for a UDP datagram no
//! one listens for): [`error_quote`] applies RFC 1122 §3.2.2's rules — never about an ICMP
//! error, a datagram to a broadcast or multicast address or in a link-layer broadcast, a
//! fragment other than the first, or a datagram whose source is not one host — and picks what
//! to quote: the datagram's IPv4 header, options included, and the first
//! [`QUOTED_PAYLOAD`] bytes of its payload (RFC 792). [`build_dest_unreachable`] writes the
//! message from that, and [`RateLimit`] is the token bucket that keeps a flood of datagrams
//! from becoming a flood of errors (RFC 1812 §4.3.2.8).

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
/// Destination unreachable code: the transport protocol has no listener on the port.
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Bytes of the offending datagram's payload an error quotes after its IPv4 header.
pub const QUOTED_PAYLOAD: usize = 8;

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

/// Why no ICMP error may be sent about a datagram (RFC 1122 §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoError {
    /// Not a readable IPv4 header (shorter than 20 bytes, not version 4, IHL below 5 or past
    /// the bytes, total length below the header).
    Malformed,
    /// Sent to 255.255.255.255, the subnet's broadcast address or a multicast address.
    Broadcast,
    /// Sent as a link-layer broadcast or multicast.
    LinkBroadcast,
    /// A fragment other than the first.
    Fragment,
    /// An ICMP error message itself (or an ICMP message whose type cannot be read).
    IcmpError,
    /// Its source is not one host: 0.0.0.0, loopback, broadcast, multicast, class E, or the
    /// subnet's broadcast address.
    BadSource,
}

impl fmt::Display for NoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "icmp error: malformed datagram",
            Self::Broadcast => "icmp error: datagram to a broadcast or multicast address",
            Self::LinkBroadcast => "icmp error: datagram in a link-layer broadcast",
            Self::Fragment => "icmp error: not the first fragment",
            Self::IcmpError => "icmp error: about an ICMP error",
            Self::BadSource => "icmp error: source is not one host",
        })
    }
}

/// What an ICMP error about a datagram quotes, and to whom it goes: made by [`error_quote`]
/// only, so that no error is built without the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorQuote<'a> {
    /// The datagram's source: where the error goes.
    pub to: Ipv4Addr,
    /// The datagram's IPv4 header (options included) and up to [`QUOTED_PAYLOAD`] bytes after.
    bytes: &'a [u8],
}

impl<'a> ErrorQuote<'a> {
    /// The bytes quoted.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// ICMP types that are queries (echo, timestamp, information, address mask), about which an
/// error may be sent; every other type is taken for an error.
fn is_query(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// Checks that an ICMP error may be sent about `datagram` (an IPv4 packet as received, header
/// first; bytes past its total length are ignored) and returns what to quote.
/// `link_broadcast`: the frame was sent to a group Ethernet address; `subnet_broadcast`: the
/// broadcast address of our prefix, if it has one. The header checksum is not checked (the
/// caller parsed the packet already).
pub fn error_quote(
    datagram: &[u8],
    link_broadcast: bool,
    subnet_broadcast: Option<Ipv4Addr>,
) -> Result<ErrorQuote<'_>, NoError> {
    let h: [u8; crate::ipv4::HEADER_LEN] = wire::bytes(datagram, 0).ok_or(NoError::Malformed)?;
    let ihl = usize::from(h[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]])).min(datagram.len());
    if h[0] >> 4 != 4 || ihl < crate::ipv4::HEADER_LEN || ihl > total {
        return Err(NoError::Malformed);
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    if dst.is_broadcast() || dst.is_multicast() || Some(dst) == subnet_broadcast {
        return Err(NoError::Broadcast);
    }
    if link_broadcast {
        return Err(NoError::LinkBroadcast);
    }
    if u16::from_be_bytes([h[6], h[7]]) & 0x1FFF != 0 {
        return Err(NoError::Fragment);
    }
    if IpProtocol(h[9]) == IpProtocol::ICMP && !wire::u8_at(datagram, ihl).is_some_and(is_query) {
        return Err(NoError::IcmpError);
    }
    if crate::ipv4::is_martian_source(src) || Some(src) == subnet_broadcast {
        return Err(NoError::BadSource);
    }
    let end = total.min(ihl.saturating_add(QUOTED_PAYLOAD));
    let bytes = datagram.get(..end).ok_or(NoError::Malformed)?;
    Ok(ErrorQuote { to: src, bytes })
}

/// Writes the IPv4 packet of an ICMP destination unreachable with `code` from `src` about the
/// datagram `quote` stands for (to its source), TTL 64, identification `ip_ident`; the four
/// bytes after the checksum are zero (no next-hop MTU). Returns the packet's length.
pub fn build_dest_unreachable(
    buf: &mut [u8],
    src: Ipv4Addr,
    code: u8,
    quote: &ErrorQuote<'_>,
    ip_ident: u16,
) -> Result<usize, BuildError> {
    let icmp_len = HEADER_LEN
        .checked_add(quote.bytes.len())
        .ok_or(BuildError::PayloadTooLarge)?;
    let hl = crate::ipv4::HEADER_LEN;
    let total = hl
        .checked_add(icmp_len)
        .ok_or(BuildError::PayloadTooLarge)?;
    let out = wire::out(buf, total)?;
    Ipv4Repr::new(src, quote.to, IpProtocol::ICMP, ip_ident, icmp_len).emit(out)?;
    let icmp = out
        .get_mut(hl..)
        .ok_or(BuildError::BufferTooSmall { needed: total })?;
    wire::put(icmp, 0, &[DEST_UNREACHABLE, code, 0, 0, 0, 0, 0, 0])?;
    wire::put(icmp, HEADER_LEN, quote.bytes)?;
    let c = checksum::internet_checksum(icmp);
    wire::put16(icmp, 2, c)?;
    Ok(total)
}

/// A token bucket for the ICMP errors we send: `burst` at once, then one more every
/// `1000 / per_second` ms — over any long stretch at most `per_second` a second. Times are
/// milliseconds of a monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    per_second: u32,
    burst: u32,
    tokens: u32,
    /// When `tokens` was last topped up (the time a partly earned token counts from).
    last_ms: u64,
}

impl RateLimit {
    /// A full bucket of `burst` tokens refilled at `per_second` (0: nothing is ever allowed).
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            tokens: burst,
            last_ms: 0,
        }
    }

    /// Takes a token if there is one at `now_ms`: true when the error may be sent.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        if self.per_second == 0 {
            return false;
        }
        let rate = u64::from(self.per_second);
        let earned = now_ms.saturating_sub(self.last_ms).saturating_mul(rate) / 1000;
        if earned > 0 {
            let tokens = u64::from(self.tokens).saturating_add(earned);
            if tokens >= u64::from(self.burst) {
                self.tokens = self.burst;
                self.last_ms = now_ms;
            } else {
                self.tokens = tokens as u32;
                self.last_ms = self
                    .last_ms
                    .saturating_add(earned.saturating_mul(1000) / rate);
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
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

    /// 10.0.2.2:40000 -> 10.0.2.15:9 "hello", identification 0x1c46, DF, TTL 64 (checksums
    /// computed independently of this crate).
    const DATAGRAM: [u8; 33] = [
        0x45, 0x00, 0x00, 0x21, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x06, 0x76, 0x0a, 0x00, 0x02,
        0x02, 0x0a, 0x00, 0x02, 0x0f, 0x9c, 0x40, 0x00, 0x09, 0x00, 0x0d, 0x07, 0xa8, b'h', b'e',
        b'l', b'l', b'o',
    ];

    /// Our port unreachable about [`DATAGRAM`], identification 1: the IPv4 header (checksum
    /// 0x22b4), type 3 code 3, checksum 0x58fe, four zero bytes, the datagram's header and its
    /// first 8 bytes (the UDP header) — computed independently of this crate.
    const PORT_UNREACHABLE: [u8; 56] = [
        0x45, 0x00, 0x00, 0x38, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0x22, 0xb4, 0x0a, 0x00, 0x02,
        0x0f, 0x0a, 0x00, 0x02, 0x02, 0x03, 0x03, 0x58, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00,
        0x00, 0x21, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x06, 0x76, 0x0a, 0x00, 0x02, 0x02, 0x0a,
        0x00, 0x02, 0x0f, 0x9c, 0x40, 0x00, 0x09, 0x00, 0x0d, 0x07, 0xa8,
    ];

    const SUBNET_BROADCAST: Option<Ipv4Addr> = Some(Ipv4Addr::new(10, 0, 2, 255));

    #[test]
    fn port_unreachable_byte_for_byte() {
        assert!(Ipv4Packet::parse(&DATAGRAM).is_ok());
        // Ethernet padding after the datagram is not quoted.
        let mut padded = DATAGRAM.to_vec();
        padded.resize(46, 0);
        let q = error_quote(&padded, false, SUBNET_BROADCAST).unwrap();
        assert_eq!((q.to, q.bytes()), (HOST, &DATAGRAM[..28]));
        let mut buf = [0u8; 100];
        let n = build_dest_unreachable(&mut buf, US, CODE_PORT_UNREACHABLE, &q, 1).unwrap();
        assert_eq!(&buf[..n], &PORT_UNREACHABLE[..]);
        // What the host's stack reads in it.
        let ip = Ipv4Packet::parse(&buf[..n]).unwrap();
        let IcmpMessage::DestUnreachable(du) = IcmpMessage::parse(ip.payload).unwrap() else {
            panic!("not unreachable")
        };
        let quoted = du.quoted().unwrap();
        assert_eq!(
            (du.code, quoted.src, quoted.dst, quoted.protocol),
            (3, HOST, US, IpProtocol::UDP)
        );
        assert_eq!(quoted.first8, Some(DATAGRAM[20..28].try_into().unwrap()));
        assert_eq!(
            build_dest_unreachable(&mut buf[..55], US, 3, &q, 1),
            Err(BuildError::BufferTooSmall { needed: 56 })
        );
    }

    /// [`DATAGRAM`] with `edit` applied and its header checksum fixed.
    fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut d = DATAGRAM.to_vec();
        edit(&mut d);
        let hl = usize::from(d[0] & 0xF) * 4;
        d[10..12].fill(0);
        let c = checksum::internet_checksum(&d[..hl.min(d.len())]);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        d
    }

    #[test]
    fn errors_are_never_sent_where_rfc_1122_forbids() {
        let check = |d: &[u8]| error_quote(d, false, SUBNET_BROADCAST).map(|q| q.to);
        assert_eq!(
            error_quote(&DATAGRAM, true, SUBNET_BROADCAST),
            Err(NoError::LinkBroadcast)
        );
        for dst in [[255, 255, 255, 255], [10, 0, 2, 255], [224, 0, 0, 251]] {
            let d = edited(|d| d[16..20].copy_from_slice(&dst));
            assert_eq!(check(&d), Err(NoError::Broadcast), "{dst:?}");
        }
        for src in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [10, 0, 2, 255],
            [239, 1, 1, 1],
            [250, 0, 0, 1],
        ] {
            let d = edited(|d| d[12..16].copy_from_slice(&src));
            assert_eq!(check(&d), Err(NoError::BadSource), "{src:?}");
        }
        // Not the first fragment: refused; the first one (more-fragments, offset 0) is fine.
        let d = edited(|d| d[6..8].copy_from_slice(&0x0001u16.to_be_bytes()));
        assert_eq!(check(&d), Err(NoError::Fragment));
        let d = edited(|d| d[6..8].copy_from_slice(&0x2000u16.to_be_bytes()));
        assert_eq!(check(&d), Ok(HOST));
        // ICMP: an error (or no type at all) is never answered, a query may be.
        for (t, ok) in [
            (3u8, false),
            (11, false),
            (5, false),
            (12, false),
            (8, true),
            (0, true),
        ] {
            let d = edited(|d| {
                d[9] = 1;
                d[20] = t;
            });
            assert_eq!(check(&d).is_ok(), ok, "type {t}");
        }
        let d = edited(|d| {
            d[9] = 1;
            d.truncate(20);
            d[2..4].copy_from_slice(&20u16.to_be_bytes());
        });
        assert_eq!(check(&d), Err(NoError::IcmpError));
        // Malformed: short, not version 4, a header longer than the packet.
        assert_eq!(check(&DATAGRAM[..19]), Err(NoError::Malformed));
        assert_eq!(check(&edited(|d| d[0] = 0x65)), Err(NoError::Malformed));
        assert_eq!(check(&edited(|d| d[0] = 0x4f)), Err(NoError::Malformed));
        assert_eq!(check(&edited(|d| d[0] = 0x44)), Err(NoError::Malformed));
        // /31 and /32 have no subnet broadcast.
        let d = edited(|d| d[16..20].copy_from_slice(&[10, 0, 2, 255]));
        assert!(error_quote(&d, false, None).is_ok());
    }

    #[test]
    fn options_and_short_payloads_are_quoted_as_they_are() {
        // A header with a 4-byte option (router alert) and a 3-byte payload.
        let mut d = vec![0u8; 27];
        d[..20].copy_from_slice(&DATAGRAM[..20]);
        d[0] = 0x46;
        d[2..4].copy_from_slice(&27u16.to_be_bytes());
        d[20..24].copy_from_slice(&[0x94, 0x04, 0, 0]);
        d[24..27].copy_from_slice(b"abc");
        let q = error_quote(&d, false, None).unwrap();
        assert_eq!(q.bytes(), &d[..]);
        let mut buf = [0u8; 64];
        let n = build_dest_unreachable(&mut buf, US, 1, &q, 9).unwrap();
        assert_eq!(n, 20 + 8 + 27);
        assert!(checksum::verify(&buf[20..n]));
        let mut d = DATAGRAM.to_vec();
        d[0] = 0x46;
        d.splice(20..20, [1, 1, 1, 0]);
        d[2..4].copy_from_slice(&37u16.to_be_bytes());
        assert_eq!(error_quote(&d, false, None).unwrap().bytes().len(), 24 + 8);
    }

    #[test]
    fn the_rate_limit_is_a_token_bucket() {
        let mut r = RateLimit::new(10, 10);
        let allowed =
            |r: &mut RateLimit, now: u64, n: usize| (0..n).filter(|_| r.allow(now)).count();
        assert_eq!(allowed(&mut r, 5_000, 25), 10, "a burst of 10");
        assert_eq!(allowed(&mut r, 5_099, 5), 0, "no token before 100 ms");
        assert_eq!(allowed(&mut r, 5_100, 5), 1);
        assert_eq!(
            allowed(&mut r, 5_350, 5),
            2,
            "250 ms earn 2; the 50 left count on"
        );
        assert_eq!(allowed(&mut r, 5_400, 5), 1);
        // A second of calm refills the bucket, never beyond the burst.
        assert_eq!(allowed(&mut r, 60_000, 50), 10);
        // Over 10 s of a steady flood: at most 10 a second, plus the first burst.
        let mut r = RateLimit::new(10, 10);
        let sent: usize = (0..10_000u64).map(|ms| allowed(&mut r, ms, 3)).sum();
        assert!((100..=110).contains(&sent), "{sent}");
        // A clock going backwards earns nothing; a zero rate allows nothing.
        let mut r = RateLimit::new(10, 1);
        assert!(r.allow(1_000));
        assert!(!r.allow(10));
        assert!(!RateLimit::new(0, 5).allow(99));
    }
}
