//! Frames as they appear on QEMU's user network (slirp: gateway and host 10.0.2.2 at
//! 52:55:0a:00:02:02, DNS 10.0.2.3, guest 10.0.2.15), through the demultiplexer and the pieces
//! of the ip server's loop: ARP, ping, TCP and UDP delivery, DHCP, and every drop reason.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use netproto::arp::{ArpCache, ArpPacket, ArpPolicy, Resolution};
use netproto::checksum;
use netproto::config::IpConfig;
use netproto::demux::{self, Counters, DropReason, Interface, Transport, Verdict};
use netproto::dhcp::{DhcpAction, DhcpClient};
use netproto::ether::{EtherHeader, EtherType, Mac};
use netproto::icmp::{self, Echo, IcmpMessage};
use netproto::ipv4::{IpProtocol, Ipv4Error, Ipv4Repr};
use netproto::{Ipv4Addr, Ipv4Cidr};

const GW_MAC: Mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
const OUR_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// `ping -c1 10.0.2.15` from the host as slirp forwards it: id 1, seq 1, 56 data bytes, IP id
/// 0x1234, DF, TTL 64. The checksums (IP 0x1065, ICMP 0x38f9) were computed independently.
const PING_FROM_HOST: [u8; 98] = [
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x10, 0x65, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00,
    0x02, 0x0f, 0x08, 0x00, 0x38, 0xf9, 0x00, 0x01, 0x00, 0x01, 0x5c, 0x3b, 0x6a, 0x67, 0x00, 0x00,
    0x00, 0x00, 0x2e, 0x8f, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
    0x36, 0x37,
];

fn iface() -> Interface {
    Interface {
        mac: OUR_MAC,
        address: Some("10.0.2.15/24".parse().unwrap()),
        dhcp_client: false,
    }
}

fn ether(dst: Mac, src: Mac, t: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len().max(46)];
    let n = EtherHeader {
        dst,
        src,
        ethertype: t,
    }
    .emit_frame(&mut f, payload)
    .unwrap();
    f.truncate(n);
    f
}

fn ip_frame(dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    Ipv4Repr::new(src, dst, proto, 0x77, 0)
        .emit_packet(&mut p, l4)
        .unwrap();
    ether(dst_mac, GW_MAC, EtherType::IPV4, &p)
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(data);
    let c = checksum::udp_checksum(src, dst, &s).unwrap();
    s[6..8].copy_from_slice(&c.to_be_bytes());
    s
}

/// A SYN 10.0.2.2:40000 -> 10.0.2.15:5201 with the MSS option, as Linux's iperf3 client sends.
fn syn() -> Vec<u8> {
    let mut s = vec![
        0x9c, 0x40, 0x14, 0x51, 0x8a, 0x3b, 0x11, 0x07, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0,
        0, 0, 0x02, 0x04, 0x05, 0xb4,
    ];
    let c = checksum::transport_checksum(GW, US, 6, &s).unwrap();
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

fn icmp_msg(t: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(rest);
    let c = checksum::internet_checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

#[test]
fn ping_from_host_is_answered_byte_for_byte() {
    let mut counters = Counters::default();
    let v = demux::demux_frame(&PING_FROM_HOST, &iface(), &mut counters);
    let Verdict::EchoRequest { ip, echo } = v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (ip.src, ip.dst, echo.ident, echo.seq, echo.data.len()),
        (GW, US, 1, 1, 56)
    );
    let mut reply = [0u8; 84];
    assert_eq!(icmp::build_echo_reply(&ip, &echo, 7, &mut reply), Ok(84));
    // Independently computed: IP checksum 0x2292, ICMP checksum 0x40f9.
    assert_eq!(
        &reply[..12],
        &[0x45, 0, 0, 0x54, 0, 7, 0x40, 0, 64, 1, 0x22, 0x92]
    );
    assert_eq!(&reply[12..20], &[10, 0, 2, 15, 10, 0, 2, 2]);
    assert_eq!(&reply[20..24], &[0, 0, 0x40, 0xf9]);
    assert_eq!(&reply[24..], &PING_FROM_HOST[38..]);
    assert_eq!((counters.rx_frames, counters.icmp_echo_requests), (1, 1));
    assert!(counters.accounted());
}

/// The ip server's send path for a packet to the Internet: route, ARP miss, request out, QEMU's
/// reply in, the packet released to the gateway's MAC.
#[test]
fn first_packet_to_the_internet_waits_for_the_gateway() {
    let cfg = IpConfig::default();
    let routes = cfg.routing_table(0).unwrap();
    let hop = routes.lookup(Ipv4Addr::new(93, 184, 216, 34)).unwrap();
    assert_eq!(hop.next_hop, GW);
    let mut cache: ArpCache<&str> = ArpCache::new(ArpPolicy::default());
    assert_eq!(
        cache.resolve(hop.next_hop, "syn", 0),
        Resolution::Queued { send_request: true }
    );
    let mut req = [0u8; 60];
    ArpPacket::request(OUR_MAC, US, GW)
        .emit_frame(&mut req)
        .unwrap();
    assert_eq!(&req[..6], &[0xff; 6]);
    // slirp answers.
    let reply = ArpPacket::request(OUR_MAC, US, GW).reply(GW_MAC);
    let mut frame = [0u8; 60];
    reply.emit_frame(&mut frame).unwrap();
    assert_eq!(
        &frame[..12],
        &[0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0, 2, 2]
    );
    let mut counters = Counters::default();
    let Verdict::Arp(arp) = demux::demux_frame(&frame, &iface(), &mut counters) else {
        panic!()
    };
    let out = cache.handle(&arp, US, OUR_MAC, 5);
    assert_eq!(
        (out.released, out.reply, out.conflict),
        (vec!["syn"], None, false)
    );
    assert_eq!(cache.lookup(GW, 6), Some(GW_MAC));
    // slirp also asks for us: we answer, unicast to it.
    let ask = ArpPacket::request(GW_MAC, GW, US)
        .emit_frame(&mut frame)
        .unwrap();
    let Verdict::Arp(arp) = demux::demux_frame(&frame[..ask], &iface(), &mut counters) else {
        panic!()
    };
    let answer = cache.handle(&arp, US, OUR_MAC, 7).reply.unwrap();
    answer.emit_frame(&mut frame).unwrap();
    assert_eq!(&frame[..6], &GW_MAC.0);
    assert_eq!(counters.arp, 2);
}

#[test]
fn tcp_and_udp_are_located_in_the_frame() {
    let mut c = Counters::default();
    let f = ip_frame(OUR_MAC, GW, US, IpProtocol::TCP, &syn());
    let Verdict::Transport(d) = demux::demux_frame(&f, &iface(), &mut c) else {
        panic!()
    };
    assert_eq!(
        (d.transport, d.src, d.dst, d.broadcast),
        (Transport::Tcp, GW, US, false)
    );
    assert_eq!(
        (d.ip_offset, d.ip_len, d.payload_offset, d.payload_len),
        (14, 44, 34, 24)
    );
    assert!(checksum::verify_transport(GW, US, 6, &f[34..58]));
    // A DNS answer from slirp's resolver.
    let dns = udp(DNS, US, 53, 33000, b"\x12\x34\x81\x80");
    let f = ip_frame(OUR_MAC, DNS, US, IpProtocol::UDP, &dns);
    let Verdict::Transport(d) = demux::demux_frame(&f, &iface(), &mut c) else {
        panic!()
    };
    assert_eq!(
        (d.transport, d.payload_offset, d.payload_len),
        (Transport::Udp, 34, 12)
    );
    // UDP to the subnet broadcast is delivered, flagged.
    let b = Ipv4Addr::new(10, 0, 2, 255);
    let f = ip_frame(
        Mac::BROADCAST,
        GW,
        b,
        IpProtocol::UDP,
        &udp(GW, b, 9, 9, b"x"),
    );
    let Verdict::Transport(d) = demux::demux_frame(&f, &iface(), &mut c) else {
        panic!()
    };
    assert!(d.broadcast);
    assert_eq!((c.tcp, c.udp, c.rx_frames), (1, 2, 3));
}

#[test]
fn dhcp_exchange_with_slirp() {
    let mut client = DhcpClient::new(OUR_MAC, 0xdead_beef);
    let Some(DhcpAction::Send(discover)) = client.poll(0) else {
        panic!()
    };
    let mut p = [0u8; 400];
    let n = discover.build_packet(&mut p, 1).unwrap();
    let out = ether(Mac::BROADCAST, OUR_MAC, EtherType::IPV4, &p[..n]);
    assert_eq!(out.len(), 14 + 328);
    // slirp's offer: 10.0.2.2:67 -> 255.255.255.255:68, chaddr ours.
    let mut bootp = vec![0u8; 236];
    bootp[..4].copy_from_slice(&[2, 1, 6, 0]);
    bootp[4..8].copy_from_slice(&discover.xid.to_be_bytes());
    bootp[16..20].copy_from_slice(&US.octets());
    bootp[28..34].copy_from_slice(&OUR_MAC.0);
    bootp.extend_from_slice(&[
        99, 130, 83, 99, 53, 1, 2, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 0x51, 0x80,
    ]);
    bootp.extend_from_slice(&[
        1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3, 255,
    ]);
    let bcast = Ipv4Addr::BROADCAST;
    let offer = ip_frame(
        Mac::BROADCAST,
        GW,
        bcast,
        IpProtocol::UDP,
        &udp(GW, bcast, 67, 68, &bootp),
    );
    let unconfigured = Interface {
        mac: OUR_MAC,
        address: None,
        dhcp_client: true,
    };
    let mut c = Counters::default();
    let Verdict::Dhcp(m) = demux::demux_frame(&offer, &unconfigured, &mut c) else {
        panic!()
    };
    let Some(DhcpAction::Send(request)) = client.handle(&m, 10) else {
        panic!()
    };
    assert_eq!(request.requested_ip, Some(US));
    bootp[242] = 5; // ACK
    let ack = ip_frame(
        Mac::BROADCAST,
        GW,
        bcast,
        IpProtocol::UDP,
        &udp(GW, bcast, 67, 68, &bootp),
    );
    let Verdict::Dhcp(m) = demux::demux_frame(&ack, &unconfigured, &mut c) else {
        panic!()
    };
    let Some(DhcpAction::Configured(lease)) = client.handle(&m, 20) else {
        panic!()
    };
    assert_eq!(lease.address, "10.0.2.15/24".parse::<Ipv4Cidr>().unwrap());
    // Once the DHCP client stops, the same frame is plain UDP to the udp server.
    assert!(matches!(
        demux::demux_frame(&ack, &iface(), &mut c),
        Verdict::Transport(_)
    ));
    // A corrupted UDP checksum on a DHCP reply is dropped.
    let mut bad = ack.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        demux::demux_frame(&bad, &unconfigured, &mut c),
        Verdict::Drop(DropReason::BadTransport)
    );
    assert_eq!((c.dhcp, c.udp, c.bad_transport), (2, 1, 1));
}

#[test]
fn every_drop_reason() {
    let i = iface();
    let mut c = Counters::default();
    let mut expect = |frame: &[u8], iface: &Interface, reason: DropReason| {
        assert_eq!(
            demux::demux_frame(frame, iface, &mut c),
            Verdict::Drop(reason)
        );
    };
    let echo = icmp_msg(8, 0, &[0, 1, 0, 1, 1, 2, 3]);
    let ping = ip_frame(OUR_MAC, GW, US, IpProtocol::ICMP, &echo);

    expect(
        &ping[..13],
        &i,
        DropReason::BadEther(netproto::ether::EtherError::Truncated),
    );
    let mut tagged = ping[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    tagged.extend_from_slice(&ping[12..]);
    expect(&tagged, &i, DropReason::ForeignVlan);
    tagged[15] = 0; // VID 0: priority tag only, accepted as untagged
    assert!(matches!(
        demux::demux_frame(&tagged, &i, &mut Counters::default()),
        Verdict::EchoRequest { .. }
    ));
    let mut other_mac = ping.clone();
    other_mac[5] = 0x57;
    expect(&other_mac, &i, DropReason::NotForUsEther);
    let mut mcast = ping.clone();
    mcast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    expect(&mcast, &i, DropReason::NotForUsEther);
    let v6 = ether(OUR_MAC, GW_MAC, EtherType::IPV6, &[0x60; 40]);
    expect(&v6, &i, DropReason::UnknownEthertype(EtherType::IPV6));
    // Padded to the Ethernet minimum, so long enough: refused for its operation.
    let arp = ether(OUR_MAC, GW_MAC, EtherType::ARP, &[0, 1, 8, 0, 6, 4, 0, 9]);
    expect(
        &arp,
        &i,
        DropReason::BadArp(netproto::arp::ArpError::UnknownOperation(9)),
    );
    let mut bad_sum = ping.clone();
    bad_sum[24] ^= 0xff;
    expect(&bad_sum, &i, DropReason::BadIpv4(Ipv4Error::BadChecksum));
    let mut frag = ping.clone();
    frag[20] = 0x20; // MF
    netproto::fuzzing::fix_checksums(&mut frag, 1);
    expect(&frag, &i, DropReason::BadIpv4(Ipv4Error::Fragment));
    let mut ttl0 = ping.clone();
    ttl0[22] = 0;
    netproto::fuzzing::fix_checksums(&mut ttl0, 1);
    expect(&ttl0, &i, DropReason::BadIpv4(Ipv4Error::ZeroTtl));
    let mut short = ping.clone();
    short[17] = 0xff; // total length past the frame
    netproto::fuzzing::fix_checksums(&mut short, 1);
    expect(&short, &i, DropReason::BadIpv4(Ipv4Error::BadTotalLength));
    let lo = Ipv4Addr::LOCALHOST;
    expect(
        &ip_frame(OUR_MAC, lo, US, IpProtocol::ICMP, &echo),
        &i,
        DropReason::BadSource,
    );
    expect(
        &ip_frame(OUR_MAC, US, US, IpProtocol::ICMP, &echo),
        &i,
        DropReason::BadSource,
    );
    let unconf = Interface { address: None, ..i };
    expect(&ping, &unconf, DropReason::Unconfigured);
    let elsewhere = Ipv4Addr::new(10, 0, 2, 99);
    expect(
        &ip_frame(OUR_MAC, GW, elsewhere, IpProtocol::ICMP, &echo),
        &i,
        DropReason::NotForUsIpv4,
    );
    expect(
        &ip_frame(Mac::BROADCAST, GW, US, IpProtocol::ICMP, &echo),
        &i,
        DropReason::LinkBroadcastUnicast,
    );
    expect(
        &ip_frame(OUR_MAC, GW, US, IpProtocol(47), &[0; 8]),
        &i,
        DropReason::UnknownProtocol(IpProtocol(47)),
    );
    let mut bad_icmp = echo.clone();
    bad_icmp[6] ^= 1;
    expect(
        &ip_frame(OUR_MAC, GW, US, IpProtocol::ICMP, &bad_icmp),
        &i,
        DropReason::BadIcmp(netproto::icmp::IcmpError::BadChecksum),
    );
    let bcast = Ipv4Addr::BROADCAST;
    expect(
        &ip_frame(Mac::BROADCAST, GW, bcast, IpProtocol::ICMP, &echo),
        &i,
        DropReason::IcmpEchoBroadcast,
    );
    let timestamp = icmp_msg(13, 0, &[0; 16]);
    expect(
        &ip_frame(OUR_MAC, GW, US, IpProtocol::ICMP, &timestamp),
        &i,
        DropReason::IcmpIgnored,
    );
    expect(
        &ip_frame(OUR_MAC, GW, US, IpProtocol::TCP, &syn()[..19]),
        &i,
        DropReason::BadTransport,
    );
    let mut bad_len = udp(GW, US, 1, 2, b"abc");
    bad_len[5] = 12;
    expect(
        &ip_frame(OUR_MAC, GW, US, IpProtocol::UDP, &bad_len),
        &i,
        DropReason::BadTransport,
    );
    expect(
        &ip_frame(Mac::BROADCAST, GW, bcast, IpProtocol::TCP, &syn()),
        &i,
        DropReason::TcpBroadcast,
    );

    // Delivered: echo reply and port unreachable.
    let reply = icmp_msg(0, 0, &[0, 1, 0, 1]);
    assert!(matches!(
        demux::demux_frame(
            &ip_frame(OUR_MAC, GW, US, IpProtocol::ICMP, &reply),
            &i,
            &mut c
        ),
        Verdict::EchoReply {
            echo: Echo {
                ident: 1,
                seq: 1,
                ..
            },
            ..
        }
    ));
    let mut quote = vec![0u8; 20];
    Ipv4Repr::new(US, GW, IpProtocol::UDP, 1, 8)
        .emit(&mut quote)
        .unwrap();
    quote.extend_from_slice(&[0x80, 0x00, 0x00, 0x35, 0, 8, 0, 0]);
    let mut rest = vec![0u8; 4];
    rest.extend_from_slice(&quote);
    let unreachable = icmp_msg(3, 3, &rest);
    let f = ip_frame(OUR_MAC, GW, US, IpProtocol::ICMP, &unreachable);
    let Verdict::Unreachable { message, .. } = demux::demux_frame(&f, &i, &mut c) else {
        panic!()
    };
    assert_eq!(message.quoted().unwrap().dst, GW);
    assert!(matches!(
        IcmpMessage::parse(&unreachable),
        Ok(IcmpMessage::DestUnreachable(_))
    ));

    let named: Vec<_> = c.fields().into_iter().filter(|&(_, n)| n != 0).collect();
    assert_eq!(c.rx_frames, 24);
    assert_eq!(c.dropped(), 22);
    assert_eq!(c.delivered(), 2);
    assert!(c.accounted());
    // Every drop counter has been hit except bad_dhcp (in dhcp_exchange_with_slirp) and
    // bad_ipv4_header (version/IHL/options, in the ipv4 unit tests).
    let zero: Vec<_> = c
        .fields()
        .into_iter()
        .filter(|&(_, n)| n == 0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        zero,
        [
            "arp",
            "icmp_echo_requests",
            "tcp",
            "udp",
            "dhcp",
            "bad_ipv4_header",
            "bad_dhcp"
        ],
        "{named:?}"
    );
}
