//! The demultiplexer: one received frame in, one [`Verdict`] out, and one [`Counters`] field
//! incremented for it — so `rx_frames` always equals the sum of the outcome counters
//! ([`Counters::accounted`]).
//!
//! The order of the checks, and what each drops:
//! 1. Ethernet: malformed ([`DropReason::BadEther`]); tagged with a VLAN other than 0
//!    ([`DropReason::ForeignVlan`]); addressed to neither our MAC nor broadcast — multicast
//!    included, the ip server joins no group ([`DropReason::NotForUsEther`]); neither ARP nor
//!    IPv4 ([`DropReason::UnknownEthertype`]).
//! 2. ARP: malformed ([`DropReason::BadArp`]), else delivered to the ARP logic
//!    ([`crate::arp::ArpCache::handle`]).
//! 3. IPv4: refused by [`Ipv4Packet::parse`] ([`DropReason::BadIpv4`]). While the DHCP client
//!    runs, UDP 67 → 68 goes to it whatever the IP destination (the offer may be unicast to the
//!    address offered). Then: a martian source, or our own address or subnet broadcast as source
//!    ([`DropReason::BadSource`]); no address configured ([`DropReason::Unconfigured`]); a
//!    destination that is not our address, 255.255.255.255 or our subnet's broadcast
//!    ([`DropReason::NotForUsIpv4`]); our unicast address in a link-layer broadcast (RFC 1122
//!    §3.3.6, [`DropReason::LinkBroadcastUnicast`]).
//! 4. By protocol: ICMP echo requests to us are answered, not those to a broadcast address (no
//!    smurf amplifier); echo replies and destination unreachable are delivered (to `ping` and
//!    the transports); other ICMP types are ignored. TCP and UDP go to their servers after a
//!    minimal length check (the servers verify their own checksums); TCP to a broadcast address
//!    is dropped. Any other protocol is dropped (no ICMP protocol-unreachable is sent).

use core::net::Ipv4Addr;

use crate::arp::{ArpError, ArpPacket};
use crate::checksum;
use crate::dhcp::{self, DhcpError, DhcpMessage};
use crate::ether::{EtherError, EtherFrame, EtherType, Mac};
use crate::icmp::{DestUnreachable, Echo, IcmpError, IcmpMessage};
use crate::ipv4::{self, IpProtocol, Ipv4Error, Ipv4Packet};
use crate::route::Ipv4Cidr;
use crate::wire;

/// What the demultiplexer knows of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Our hardware address.
    pub mac: Mac,
    /// Our address and prefix, once configured.
    pub address: Option<Ipv4Cidr>,
    /// The DHCP client is running: deliver DHCP replies to it.
    pub dhcp_client: bool,
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// To the tcp server.
    Tcp,
    /// To the udp server.
    Udp,
}

/// A packet for the tcp or udp server, located within the received frame so that it can travel
/// as a buffer descriptor (offset, length) without being copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Which server.
    pub transport: Transport,
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// Offset of the IPv4 header in the frame.
    pub ip_offset: usize,
    /// Length of the IPv4 packet (its total length).
    pub ip_len: usize,
    /// Offset of the TCP/UDP header in the frame.
    pub payload_offset: usize,
    /// Length of the TCP/UDP header and data.
    pub payload_len: usize,
    /// Sent to a broadcast address (UDP only).
    pub broadcast: bool,
}

/// Why a frame was dropped; each has its [`Counters`] field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Malformed Ethernet header (`bad_ether`).
    BadEther(EtherError),
    /// A VLAN tag with a VID other than 0 (`vlan_foreign`).
    ForeignVlan,
    /// Ethernet destination neither ours nor broadcast (`not_for_us_ether`).
    NotForUsEther,
    /// Neither ARP nor IPv4 (`unknown_ethertype`).
    UnknownEthertype(EtherType),
    /// Malformed ARP (`bad_arp`).
    BadArp(ArpError),
    /// Refused IPv4 header: counted in `bad_ipv4_length`, `bad_ipv4_header`,
    /// `bad_ipv4_checksum`, `ipv4_fragments` or `ipv4_ttl_zero` by its error.
    BadIpv4(Ipv4Error),
    /// Martian source address, or our own (`bad_ipv4_source`).
    BadSource,
    /// No address configured yet (`unconfigured`).
    Unconfigured,
    /// IP destination not ours (`not_for_us_ipv4`).
    NotForUsIpv4,
    /// Our unicast address inside a link-layer broadcast (`link_broadcast_unicast`).
    LinkBroadcastUnicast,
    /// A protocol other than ICMP, TCP, UDP (`unknown_protocol`).
    UnknownProtocol(IpProtocol),
    /// Malformed ICMP (`bad_icmp`).
    BadIcmp(IcmpError),
    /// Echo request to a broadcast address: not answered (`icmp_echo_broadcast`).
    IcmpEchoBroadcast,
    /// An ICMP type we do not handle, or an echo reply to a broadcast (`icmp_ignored`).
    IcmpIgnored,
    /// TCP or UDP shorter than its header, a bad UDP length, or a bad DHCP UDP checksum
    /// (`bad_transport`).
    BadTransport,
    /// TCP to a broadcast address (`tcp_broadcast`).
    TcpBroadcast,
    /// A malformed DHCP reply (`bad_dhcp`).
    BadDhcp(DhcpError),
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// An ARP packet: give it to [`crate::arp::ArpCache::handle`] (`arp`).
    Arp(ArpPacket),
    /// An echo request to us: answer it with [`crate::icmp::build_echo_reply`]
    /// (`icmp_echo_requests`).
    EchoRequest {
        /// The IPv4 packet.
        ip: Ipv4Packet<'a>,
        /// The echo request.
        echo: Echo<'a>,
    },
    /// An echo reply: for `ping` (`icmp_echo_replies`).
    EchoReply {
        /// The IPv4 packet.
        ip: Ipv4Packet<'a>,
        /// The echo reply.
        echo: Echo<'a>,
    },
    /// Destination unreachable: for the transport that sent the quoted datagram
    /// (`icmp_unreachable`).
    Unreachable {
        /// The IPv4 packet.
        ip: Ipv4Packet<'a>,
        /// The message.
        message: DestUnreachable<'a>,
    },
    /// For the tcp or udp server (`tcp` or `udp`).
    Transport(Delivery),
    /// A reply for the DHCP client (`dhcp`).
    Dhcp(DhcpMessage),
    /// Dropped.
    Drop(DropReason),
}

/// One counter per outcome of [`demux_frame`], and the frames seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Frames given to [`demux_frame`].
    pub rx_frames: u64,
    /// Delivered: ARP packets.
    pub arp: u64,
    /// Delivered: echo requests to answer.
    pub icmp_echo_requests: u64,
    /// Delivered: echo replies.
    pub icmp_echo_replies: u64,
    /// Delivered: destination unreachable.
    pub icmp_unreachable: u64,
    /// Delivered: to the tcp server.
    pub tcp: u64,
    /// Delivered: to the udp server.
    pub udp: u64,
    /// Delivered: to the DHCP client.
    pub dhcp: u64,
    /// Dropped: [`DropReason::BadEther`].
    pub bad_ether: u64,
    /// Dropped: [`DropReason::ForeignVlan`].
    pub vlan_foreign: u64,
    /// Dropped: [`DropReason::NotForUsEther`].
    pub not_for_us_ether: u64,
    /// Dropped: [`DropReason::UnknownEthertype`].
    pub unknown_ethertype: u64,
    /// Dropped: [`DropReason::BadArp`].
    pub bad_arp: u64,
    /// Dropped: IPv4 truncated, header past the end, bad total length.
    pub bad_ipv4_length: u64,
    /// Dropped: IPv4 version, IHL or options.
    pub bad_ipv4_header: u64,
    /// Dropped: IPv4 header checksum.
    pub bad_ipv4_checksum: u64,
    /// Dropped: IPv4 fragments.
    pub ipv4_fragments: u64,
    /// Dropped: IPv4 TTL zero.
    pub ipv4_ttl_zero: u64,
    /// Dropped: [`DropReason::BadSource`].
    pub bad_ipv4_source: u64,
    /// Dropped: [`DropReason::Unconfigured`].
    pub unconfigured: u64,
    /// Dropped: [`DropReason::NotForUsIpv4`].
    pub not_for_us_ipv4: u64,
    /// Dropped: [`DropReason::LinkBroadcastUnicast`].
    pub link_broadcast_unicast: u64,
    /// Dropped: [`DropReason::UnknownProtocol`].
    pub unknown_protocol: u64,
    /// Dropped: [`DropReason::BadIcmp`].
    pub bad_icmp: u64,
    /// Dropped: [`DropReason::IcmpEchoBroadcast`].
    pub icmp_echo_broadcast: u64,
    /// Dropped: [`DropReason::IcmpIgnored`].
    pub icmp_ignored: u64,
    /// Dropped: [`DropReason::BadTransport`].
    pub bad_transport: u64,
    /// Dropped: [`DropReason::TcpBroadcast`].
    pub tcp_broadcast: u64,
    /// Dropped: [`DropReason::BadDhcp`].
    pub bad_dhcp: u64,
}

impl Counters {
    /// Increments the counter of `verdict`'s outcome (not `rx_frames`).
    pub fn record(&mut self, verdict: &Verdict<'_>) {
        let c = match verdict {
            Verdict::Arp(_) => &mut self.arp,
            Verdict::EchoRequest { .. } => &mut self.icmp_echo_requests,
            Verdict::EchoReply { .. } => &mut self.icmp_echo_replies,
            Verdict::Unreachable { .. } => &mut self.icmp_unreachable,
            Verdict::Transport(d) => match d.transport {
                Transport::Tcp => &mut self.tcp,
                Transport::Udp => &mut self.udp,
            },
            Verdict::Dhcp(_) => &mut self.dhcp,
            Verdict::Drop(r) => match r {
                DropReason::BadEther(_) => &mut self.bad_ether,
                DropReason::ForeignVlan => &mut self.vlan_foreign,
                DropReason::NotForUsEther => &mut self.not_for_us_ether,
                DropReason::UnknownEthertype(_) => &mut self.unknown_ethertype,
                DropReason::BadArp(_) => &mut self.bad_arp,
                DropReason::BadIpv4(e) => match e {
                    Ipv4Error::Truncated | Ipv4Error::HeaderPastEnd | Ipv4Error::BadTotalLength => {
                        &mut self.bad_ipv4_length
                    }
                    Ipv4Error::BadVersion(_)
                    | Ipv4Error::BadHeaderLength
                    | Ipv4Error::BadOptions => &mut self.bad_ipv4_header,
                    Ipv4Error::BadChecksum => &mut self.bad_ipv4_checksum,
                    Ipv4Error::Fragment => &mut self.ipv4_fragments,
                    Ipv4Error::ZeroTtl => &mut self.ipv4_ttl_zero,
                },
                DropReason::BadSource => &mut self.bad_ipv4_source,
                DropReason::Unconfigured => &mut self.unconfigured,
                DropReason::NotForUsIpv4 => &mut self.not_for_us_ipv4,
                DropReason::LinkBroadcastUnicast => &mut self.link_broadcast_unicast,
                DropReason::UnknownProtocol(_) => &mut self.unknown_protocol,
                DropReason::BadIcmp(_) => &mut self.bad_icmp,
                DropReason::IcmpEchoBroadcast => &mut self.icmp_echo_broadcast,
                DropReason::IcmpIgnored => &mut self.icmp_ignored,
                DropReason::BadTransport => &mut self.bad_transport,
                DropReason::TcpBroadcast => &mut self.tcp_broadcast,
                DropReason::BadDhcp(_) => &mut self.bad_dhcp,
            },
        };
        *c = c.wrapping_add(1);
    }

    /// Every counter by name, `rx_frames` first, for `stat`.
    pub fn fields(&self) -> [(&'static str, u64); 29] {
        [
            ("rx_frames", self.rx_frames),
            ("arp", self.arp),
            ("icmp_echo_requests", self.icmp_echo_requests),
            ("icmp_echo_replies", self.icmp_echo_replies),
            ("icmp_unreachable", self.icmp_unreachable),
            ("tcp", self.tcp),
            ("udp", self.udp),
            ("dhcp", self.dhcp),
            ("bad_ether", self.bad_ether),
            ("vlan_foreign", self.vlan_foreign),
            ("not_for_us_ether", self.not_for_us_ether),
            ("unknown_ethertype", self.unknown_ethertype),
            ("bad_arp", self.bad_arp),
            ("bad_ipv4_length", self.bad_ipv4_length),
            ("bad_ipv4_header", self.bad_ipv4_header),
            ("bad_ipv4_checksum", self.bad_ipv4_checksum),
            ("ipv4_fragments", self.ipv4_fragments),
            ("ipv4_ttl_zero", self.ipv4_ttl_zero),
            ("bad_ipv4_source", self.bad_ipv4_source),
            ("unconfigured", self.unconfigured),
            ("not_for_us_ipv4", self.not_for_us_ipv4),
            ("link_broadcast_unicast", self.link_broadcast_unicast),
            ("unknown_protocol", self.unknown_protocol),
            ("bad_icmp", self.bad_icmp),
            ("icmp_echo_broadcast", self.icmp_echo_broadcast),
            ("icmp_ignored", self.icmp_ignored),
            ("bad_transport", self.bad_transport),
            ("tcp_broadcast", self.tcp_broadcast),
            ("bad_dhcp", self.bad_dhcp),
        ]
    }

    /// Frames delivered somewhere.
    pub fn delivered(&self) -> u64 {
        [
            self.arp,
            self.icmp_echo_requests,
            self.icmp_echo_replies,
            self.icmp_unreachable,
            self.tcp,
            self.udp,
            self.dhcp,
        ]
        .iter()
        .fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// Frames dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.fields()
            .iter()
            .skip(8)
            .fold(0u64, |a, &(_, b)| a.wrapping_add(b))
    }

    /// True when every frame seen has exactly one outcome counted.
    pub fn accounted(&self) -> bool {
        self.delivered().wrapping_add(self.dropped()) == self.rx_frames
    }
}

/// Classifies one received frame and counts it (`rx_frames` and the outcome's counter).
pub fn demux_frame<'a>(frame: &'a [u8], iface: &Interface, counters: &mut Counters) -> Verdict<'a> {
    counters.rx_frames = counters.rx_frames.wrapping_add(1);
    let v = classify_frame(frame, iface);
    counters.record(&v);
    v
}

/// Classifies one received frame without counting it.
pub fn classify_frame<'a>(frame: &'a [u8], iface: &Interface) -> Verdict<'a> {
    let eth = match EtherFrame::parse(frame) {
        Ok(e) => e,
        Err(e) => return Verdict::Drop(DropReason::BadEther(e)),
    };
    if eth.vlan.is_some_and(|t| t.vid != 0) {
        return Verdict::Drop(DropReason::ForeignVlan);
    }
    if eth.dst != iface.mac && !eth.dst.is_broadcast() {
        return Verdict::Drop(DropReason::NotForUsEther);
    }
    match eth.ethertype {
        EtherType::ARP => match ArpPacket::parse(eth.payload) {
            Ok(a) => Verdict::Arp(a),
            Err(e) => Verdict::Drop(DropReason::BadArp(e)),
        },
        EtherType::IPV4 => match Ipv4Packet::parse(eth.payload) {
            Ok(ip) => classify_ipv4(&ip, eth.header_len, eth.dst.is_broadcast(), iface),
            Err(e) => Verdict::Drop(DropReason::BadIpv4(e)),
        },
        t => Verdict::Drop(DropReason::UnknownEthertype(t)),
    }
}

/// The DHCP reply in `ip`, if it is UDP 67 → 68: `None` when it is not DHCP at all.
fn dhcp_reply(ip: &Ipv4Packet<'_>) -> Option<Verdict<'static>> {
    if ip.protocol != IpProtocol::UDP
        || wire::be16(ip.payload, 0) != Some(dhcp::SERVER_PORT)
        || wire::be16(ip.payload, 2) != Some(dhcp::CLIENT_PORT)
    {
        return None;
    }
    let bad = Some(Verdict::Drop(DropReason::BadTransport));
    let Some(len) = wire::be16(ip.payload, 4).map(usize::from) else {
        return bad;
    };
    let Some(udp) = ip.payload.get(..len).filter(|_| len >= 8) else {
        return bad;
    };
    let sum = wire::be16(udp, 6).unwrap_or(0);
    if sum != 0 && !checksum::verify_transport(ip.src, ip.dst, IpProtocol::UDP.0, udp) {
        return bad;
    }
    Some(match DhcpMessage::parse(udp.get(8..).unwrap_or_default()) {
        Ok(m) => Verdict::Dhcp(m),
        Err(e) => Verdict::Drop(DropReason::BadDhcp(e)),
    })
}

/// Classifies a validated IPv4 packet that started at `ip_offset` in its frame;
/// `link_broadcast` says whether the frame was sent to the Ethernet broadcast address.
pub fn classify_ipv4<'a>(
    ip: &Ipv4Packet<'a>,
    ip_offset: usize,
    link_broadcast: bool,
    iface: &Interface,
) -> Verdict<'a> {
    if iface.dhcp_client
        && let Some(v) = dhcp_reply(ip)
    {
        return v;
    }
    let Some(ours) = iface.address else {
        return Verdict::Drop(DropReason::Unconfigured);
    };
    let subnet_broadcast = ours.broadcast();
    if ipv4::is_martian_source(ip.src)
        || ip.src == ours.address()
        || Some(ip.src) == subnet_broadcast
    {
        return Verdict::Drop(DropReason::BadSource);
    }
    let broadcast = ip.dst == Ipv4Addr::BROADCAST || Some(ip.dst) == subnet_broadcast;
    if !broadcast && ip.dst != ours.address() {
        return Verdict::Drop(DropReason::NotForUsIpv4);
    }
    if !broadcast && link_broadcast {
        return Verdict::Drop(DropReason::LinkBroadcastUnicast);
    }
    let ip = *ip;
    let delivery = |transport| {
        Verdict::Transport(Delivery {
            transport,
            src: ip.src,
            dst: ip.dst,
            ip_offset,
            ip_len: usize::from(ip.total_len),
            payload_offset: ip_offset.saturating_add(ip.header_len),
            payload_len: ip.payload.len(),
            broadcast,
        })
    };
    match ip.protocol {
        IpProtocol::ICMP => match IcmpMessage::parse(ip.payload) {
            Err(e) => Verdict::Drop(DropReason::BadIcmp(e)),
            Ok(IcmpMessage::EchoRequest(_)) if broadcast => {
                Verdict::Drop(DropReason::IcmpEchoBroadcast)
            }
            Ok(IcmpMessage::EchoRequest(echo)) => Verdict::EchoRequest { ip, echo },
            Ok(IcmpMessage::EchoReply(echo)) if !broadcast => Verdict::EchoReply { ip, echo },
            Ok(IcmpMessage::DestUnreachable(message)) if !broadcast => {
                Verdict::Unreachable { ip, message }
            }
            Ok(_) => Verdict::Drop(DropReason::IcmpIgnored),
        },
        IpProtocol::TCP if broadcast => Verdict::Drop(DropReason::TcpBroadcast),
        IpProtocol::TCP => {
            // The data offset must cover at least the 20-byte header and lie within the segment.
            let off = wire::u8_at(ip.payload, 12).map_or(0, |b| usize::from(b >> 4) * 4);
            if ip.payload.len() < 20 || off < 20 || off > ip.payload.len() {
                return Verdict::Drop(DropReason::BadTransport);
            }
            delivery(Transport::Tcp)
        }
        IpProtocol::UDP => {
            let len = wire::be16(ip.payload, 4).map_or(0, usize::from);
            if len < 8 || len > ip.payload.len() {
                return Verdict::Drop(DropReason::BadTransport);
            }
            delivery(Transport::Udp)
        }
        p => Verdict::Drop(DropReason::UnknownProtocol(p)),
    }
}
