//! The stack against frames as QEMU's user network sends them (slirp: gateway 10.0.2.2 at
//! 52:55:0a:00:02:02, guest 10.0.2.15), with real pools over heap memory standing in for the
//! shared regions: the driver's side puts frames in rx-pool buffers, pf's side reads the outbox.

use super::*;
use alloc::vec;
use netmsg::{BUFFER_SIZE, RX_POOL_ID, TX_POOL_ID, tag};
use netproto::checksum;
use netproto::demux::Transport;
use netproto::icmp::IcmpMessage;
use netproto::ipv4::Ipv4Repr;

const GW_MAC: Mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
const OUR_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const SHELL: u32 = 4;
const MS: u64 = 1_000_000;

/// `ping -c1 10.0.2.15` from the host as slirp would forward it: id 1, seq 1, 56 data bytes
/// (netproto's tests/frames.rs has its checksums computed independently).
const PING_FROM_HOST: [u8; 98] = [
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x10, 0x65, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00,
    0x02, 0x0f, 0x08, 0x00, 0x38, 0xf9, 0x00, 0x01, 0x00, 0x01, 0x5c, 0x3b, 0x6a, 0x67, 0x00, 0x00,
    0x00, 0x00, 0x2e, 0x8f, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
    0x36, 0x37,
];

/// The two pools and the stack, with the driver's and pf's sides played by the test.
struct Bench {
    stack: Stack<'static>,
    /// The driver's view of the rx-pool (to write frames) and a reader's view of the tx-pool.
    rx: PoolView<'static>,
    tx: PoolView<'static>,
    next_rx: u32,
}

fn pool(id: u16, buffers: usize) -> (PoolView<'static>, PoolView<'static>) {
    let mem: &'static mut [u8] = vec![0u8; buffers * BUFFER_SIZE as usize].leak();
    let (ptr, len) = (mem.as_mut_ptr(), mem.len());
    // Safety: the memory is leaked, so it lives forever; the two views stand for two processes
    // mapping one region, and the tests follow the ownership protocol.
    unsafe {
        (
            PoolView::new(id, ptr, len, BUFFER_SIZE).unwrap(),
            PoolView::new(id, ptr, len, BUFFER_SIZE).unwrap(),
        )
    }
}

impl Bench {
    fn new() -> Self {
        Self::with_tx(8)
    }

    fn with_tx(tx_buffers: usize) -> Self {
        let (rx_stack, rx) = pool(RX_POOL_ID, 16);
        let (tx_stack, tx) = pool(TX_POOL_ID, tx_buffers);
        let stack = Stack::new(
            rx_stack,
            BufferPool::new(tx_stack).unwrap(),
            OUR_MAC,
            IpConfig::default(),
        );
        Self {
            stack,
            rx,
            tx,
            next_rx: 0,
        }
    }

    /// The driver receives `frame` into the next rx buffer and pf passes it on.
    fn receive(&mut self, frame: &[u8], now: u64) -> PoolDescriptor {
        let index = self.next_rx % self.rx.count();
        self.next_rx += 1;
        let mut d = self.rx.whole(index).unwrap();
        d.len = frame.len() as u32;
        self.rx.check(d).unwrap().copy_from(frame);
        self.stack.handle(&Kind::RxFrame(d).message(), now);
        d
    }

    /// The messages the stack sent to pf since the last call, as they were sent.
    fn sent_messages(&mut self) -> Vec<ChanMessage> {
        let mut got = Vec::new();
        self.stack.flush(|msgs| {
            got.extend_from_slice(msgs);
            msgs.len()
        });
        got
    }

    /// Everything the stack sent to pf since the last call, one `Kind` per buffer.
    fn sent(&mut self) -> Vec<Kind> {
        self.sent_messages()
            .iter()
            .flat_map(|m| Kind::decode_all(m, 16, 64).unwrap())
            .collect()
    }

    /// The bytes of a transmitted frame.
    fn frame(&mut self, d: PoolDescriptor) -> Vec<u8> {
        let mut f = vec![0u8; d.len as usize];
        self.tx.check(d).unwrap().copy_to(&mut f);
        f
    }

    /// The one frame sent, asserting that nothing else was.
    fn one_tx_frame(&mut self) -> (PoolDescriptor, Vec<u8>) {
        let sent = self.sent();
        let [Kind::TxFrame(d)] = sent[..] else {
            panic!("expected one TX_FRAME, got {sent:?}")
        };
        (d, self.frame(d))
    }

    /// pf hands the driver's TX_DONE back.
    fn tx_done(&mut self, d: PoolDescriptor) {
        self.stack.handle(&Kind::TxDone(d).message(), 0);
    }

    fn replies(&mut self) -> Vec<(u32, PingReply)> {
        self.stack
            .take_replies()
            .into_iter()
            .map(|(pid, m)| (pid, PingReply::decode(&m)))
            .collect()
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

/// The gateway's answer to `request` (an ARP frame) as slirp builds it.
fn arp_reply_from_gateway() -> Vec<u8> {
    let p = ArpPacket {
        op: netproto::arp::ArpOp::Reply,
        sender_mac: GW_MAC,
        sender_ip: GW,
        target_mac: OUR_MAC,
        target_ip: US,
    };
    let mut f = vec![0u8; 60];
    p.emit_frame(&mut f).unwrap();
    f
}

/// What the host answers to our echo request `frame`: the echo reply, TTL 255 as slirp.
fn host_answers(frame: &[u8]) -> Vec<u8> {
    try_host_answers(frame).expect("not an echo request for the host")
}

fn try_host_answers(frame: &[u8]) -> Option<Vec<u8>> {
    let host = Interface {
        mac: GW_MAC,
        address: Some("10.0.2.2/24".parse().unwrap()),
        dhcp_client: false,
    };
    let v = demux::demux_frame(frame, &host, &mut demux::Counters::default());
    let Verdict::EchoRequest { ip, echo } = v else {
        return None;
    };
    let mut packet = vec![0u8; 20 + 8 + echo.data.len()];
    let n = icmp::build_echo_reply(&ip, &echo, 0x4242, &mut packet).unwrap();
    // slirp's replies come with TTL 255: rewrite it and the header checksum.
    packet[8] = 255;
    packet[10..12].fill(0);
    let c = checksum::internet_checksum(&packet[..20]);
    packet[10..12].copy_from_slice(&c.to_be_bytes());
    Some(ether(OUR_MAC, GW_MAC, EtherType::IPV4, &packet[..n]))
}

fn ping(dst: Ipv4Addr, seq: u16, timeout_ms: u32) -> Message {
    Request::Ping(PingRequest {
        dst,
        ident: 0x77,
        seq,
        timeout_ms,
        data_len: 56,
    })
    .encode()
}

#[test]
fn an_echo_request_is_answered_from_the_buffer_it_arrived_in() {
    let mut b = Bench::new();
    let rx = b.receive(&PING_FROM_HOST, 5 * MS);
    let sent = b.sent();
    let [Kind::TxFrame(d), Kind::RxReturn(back)] = sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(back, rx, "the rx buffer goes home as it came");
    let reply = b.frame(d);
    assert_eq!(reply.len(), 98);
    assert_eq!(&reply[..6], &GW_MAC.0, "back to the neighbour it came from");
    assert_eq!(&reply[6..12], &OUR_MAC.0);
    assert_eq!(&reply[12..14], &[0x08, 0x00]);
    // The host sees an echo reply from us with the same identifier, sequence and data.
    let host = Interface {
        mac: GW_MAC,
        address: Some("10.0.2.2/24".parse().unwrap()),
        dhcp_client: false,
    };
    let v = demux::demux_frame(&reply, &host, &mut demux::Counters::default());
    let Verdict::EchoReply { ip, echo } = v else {
        panic!("{v:?}")
    };
    assert_eq!((ip.src, ip.dst, ip.ttl), (US, GW, 64));
    assert_eq!((echo.ident, echo.seq), (1, 1));
    assert_eq!(echo.data, &PING_FROM_HOST[42..]);
    let s = *b.stack.stats();
    assert_eq!((s.echo_replies_sent, s.tx_frames, s.rx_returned), (1, 1, 1));
    assert_eq!(b.stack.tx_in_use(), 1);
    b.tx_done(d);
    assert_eq!((b.stack.tx_in_use(), b.stack.stats().tx_done), (0, 1));
    // The same TX_DONE again is refused and counted.
    b.tx_done(d);
    assert_eq!(b.stack.stats().tx_double_free, 1);
    assert_eq!(b.stack.take_notices().len(), 1);
    assert!(b.stack.demux_counters().accounted());
}

#[test]
fn buffers_go_home_together_and_come_back_together() {
    let mut b = Bench::new();
    // Sixteen frames nobody wants (not Ethernet we know): their buffers go home in two
    // messages, 14 + 2.
    for _ in 0..16 {
        b.receive(&[0u8; 60], 0);
    }
    let messages = b.sent_messages();
    assert_eq!(
        messages.iter().map(|m| (m.tag, m.len)).collect::<Vec<_>>(),
        [(tag::RX_RETURNS, 56), (tag::RX_RETURNS, 8)]
    );
    let homes: Vec<u32> = messages
        .iter()
        .flat_map(|m| Kind::decode_all(m, 16, 64).unwrap())
        .map(|k| k.descriptor().index)
        .collect();
    assert_eq!(homes, (0..16).collect::<Vec<_>>());
    assert_eq!(b.stack.stats().rx_returned, 16);
    // Three echo replies go out; the driver's TX_DONEs come back in one TX_DONES.
    let mut out = Vec::new();
    for _ in 0..3 {
        b.receive(&PING_FROM_HOST, 5 * MS);
        out.extend(b.sent().into_iter().filter_map(|k| match k {
            Kind::TxFrame(d) => Some(d),
            _ => None,
        }));
    }
    assert_eq!((out.len(), b.stack.tx_in_use()), (3, 3));
    let done = |d: &PoolDescriptor| Kind::TxDone(*d).message();
    let mut dones = done(&out[0]);
    assert!(netmsg::merge(&mut dones, &done(&out[1])));
    assert!(netmsg::merge(&mut dones, &done(&out[2])));
    b.stack.handle(&dones, 0);
    assert_eq!((b.stack.tx_in_use(), b.stack.stats().tx_done), (0, 3));
    // The same again: each buffer is refused on its own, as a double free.
    b.stack.handle(&dones, 0);
    assert_eq!(b.stack.stats().tx_double_free, 3);
    // ip never takes RX_RETURNS: they are the driver's. One message, one refusal, however
    // many buffers it names.
    b.stack.take_notices();
    let refused = b.stack.stats().refused;
    b.stack.handle(&messages[1], 0);
    assert!(b.sent().is_empty());
    assert_eq!(b.stack.take_notices().len(), 1);
    assert_eq!(b.stack.stats().refused, refused + 1);
}

#[test]
fn an_echo_request_from_a_group_address_is_not_answered() {
    let mut b = Bench::new();
    let mut f = PING_FROM_HOST;
    f[6] |= 1; // multicast source
    b.receive(&f, 0);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    assert_eq!(b.stack.stats().echo_bad_source, 1);
    assert_eq!(b.stack.tx_in_use(), 0);
}

#[test]
fn arp_requests_for_us_are_answered_and_learned() {
    let mut b = Bench::new();
    let req = ArpPacket::request(GW_MAC, GW, US);
    let mut f = vec![0u8; 60];
    req.emit_frame(&mut f).unwrap();
    b.receive(&f, 0);
    let sent = b.sent();
    let [Kind::TxFrame(d), Kind::RxReturn(_)] = sent[..] else {
        panic!("{sent:?}")
    };
    let reply = b.frame(d);
    let e = EtherFrame::parse(&reply).unwrap();
    assert_eq!(
        (e.dst, e.src, e.ethertype),
        (GW_MAC, OUR_MAC, EtherType::ARP)
    );
    let a = ArpPacket::parse(e.payload).unwrap();
    assert_eq!(a, req.reply(OUR_MAC));
    assert_eq!(b.stack.stats().arp_replies_sent, 1);
    // The gateway was learned: a ping to it goes out at once, without an ARP request.
    b.stack.request(SHELL, &ping(GW, 1, 1000), MS);
    let sent = b.sent();
    let [Kind::TxFrame(p)] = sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(&b.frame(p)[..6], &GW_MAC.0);
    // A request for someone else is not answered; a claim of our address is a conflict.
    let other = ArpPacket::request(GW_MAC, GW, Ipv4Addr::new(10, 0, 2, 9));
    other.emit_frame(&mut f).unwrap();
    b.receive(&f, 0);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    let claim = ArpPacket::request(Mac([2, 0, 0, 0, 0, 9]), US, GW);
    claim.emit_frame(&mut f).unwrap();
    b.receive(&f, 0);
    assert_eq!(b.stack.stats().arp_conflicts, 1);
    assert!(b.stack.take_notices().contains(&Notice::ArpConflict {
        mac: Mac([2, 0, 0, 0, 0, 9])
    }));
}

#[test]
fn a_ping_resolves_the_gateway_then_measures_the_round_trip() {
    let mut b = Bench::new();
    b.stack.request(SHELL, &ping(GW, 1, 2000), 10 * MS);
    assert!(b.stack.take_replies().is_empty(), "the caller waits");
    assert_eq!(b.stack.pings_in_flight(), 1);
    // First an ARP request for the gateway; the echo request waits in the cache.
    let (arp_d, arp) = b.one_tx_frame();
    assert_eq!(&arp[..6], &[0xff; 6]);
    let a = ArpPacket::parse(&arp[14..]).unwrap();
    assert_eq!(a, ArpPacket::request(OUR_MAC, US, GW));
    assert_eq!(b.stack.tx_in_use(), 2);
    assert_eq!(b.stack.next_deadline(), Some(1010 * MS), "ARP retry");
    b.tx_done(arp_d);
    // The gateway answers: the echo request leaves, addressed to it.
    b.receive(&arp_reply_from_gateway(), 11 * MS);
    let sent = b.sent();
    let [Kind::TxFrame(echo_d), Kind::RxReturn(_)] = sent[..] else {
        panic!("{sent:?}")
    };
    let request = b.frame(echo_d);
    assert_eq!(&request[..6], &GW_MAC.0);
    assert_eq!(request.len(), 14 + 20 + 8 + 56);
    b.tx_done(echo_d);
    assert_eq!(
        b.stack.next_deadline(),
        Some(2010 * MS),
        "the ping's timeout"
    );
    // The host answers 0.4 ms later.
    let answer = host_answers(&request);
    b.receive(&answer, 11 * MS + 400_000);
    let replies = b.replies();
    assert_eq!(
        replies,
        [(
            SHELL,
            PingReply {
                status: Status::Ok,
                rtt_ns: 1_400_000,
                from: GW,
                seq: 1,
                icmp_len: 64,
                ttl: 255,
                unreachable_code: 0,
            }
        )]
    );
    assert_eq!(b.stack.pings_in_flight(), 0);
    assert_eq!(b.stack.tx_in_use(), 0);
    // The same reply again matches nothing.
    b.receive(&answer, 12 * MS);
    assert!(b.replies().is_empty());
    let s = *b.stack.stats();
    assert_eq!(
        (
            s.pings_sent,
            s.ping_replies,
            s.echo_replies_unmatched,
            s.arp_requests_sent
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(b.stack.next_deadline(), None);
}

#[test]
fn an_echo_reply_with_other_data_or_from_elsewhere_does_not_count() {
    let mut b = Bench::new();
    b.stack.request(SHELL, &ping(GW, 7, 1000), 0);
    let (_, arp) = b.one_tx_frame();
    assert_eq!(&arp[12..14], &[0x08, 0x06]);
    b.receive(&arp_reply_from_gateway(), MS);
    let sent = b.sent();
    let Kind::TxFrame(d) = sent[0] else {
        panic!("{sent:?}")
    };
    let request = b.frame(d);
    let mut answer = host_answers(&request);
    // One data byte changed (checksum repaired): not our echo.
    let l = answer.len();
    answer[l - 1] ^= 0xff;
    answer[36..38].fill(0);
    let c = checksum::internet_checksum(&answer[34..]);
    answer[36..38].copy_from_slice(&c.to_be_bytes());
    b.receive(&answer, 2 * MS);
    assert!(b.replies().is_empty());
    assert_eq!(b.stack.stats().echo_replies_unmatched, 1);
}

#[test]
fn a_ping_times_out_and_arp_gives_up_later() {
    let mut b = Bench::new();
    b.stack.request(SHELL, &ping(GW, 2, 1500), 0);
    let (arp_d, _) = b.one_tx_frame();
    b.tx_done(arp_d);
    b.stack.tick(1000 * MS);
    let (arp_d, _) = b.one_tx_frame(); // the second ARP request
    b.tx_done(arp_d);
    b.stack.tick(1499 * MS);
    assert!(b.replies().is_empty());
    b.stack.tick(1500 * MS);
    assert_eq!(
        b.replies(),
        [(SHELL, PingReply::failed(Status::TimedOut, US, 2))]
    );
    assert_eq!(b.stack.stats().pings_timed_out, 1);
    // The echo request still waits in the ARP cache: its buffer is lent out until ARP gives up.
    assert_eq!(b.stack.tx_in_use(), 1);
    b.stack.tick(2000 * MS);
    let (arp_d, _) = b.one_tx_frame(); // the third and last
    b.tx_done(arp_d);
    b.stack.tick(3000 * MS);
    assert!(b.sent().is_empty());
    assert_eq!(b.stack.tx_in_use(), 0, "freed when ARP gave up");
    assert_eq!(b.stack.stats().arp_unreachable, 1);
    assert!(b.replies().is_empty(), "the caller already had its answer");
    assert!(
        b.stack
            .take_notices()
            .contains(&Notice::ArpUnreachable { ip: GW, packets: 1 })
    );
}

#[test]
fn a_ping_to_a_silent_neighbour_is_unreachable() {
    let mut b = Bench::new();
    let silent = Ipv4Addr::new(10, 0, 2, 77);
    b.stack.request(SHELL, &ping(silent, 3, 10_000), 0);
    for t in [0, 1000, 2000] {
        b.stack.tick(t * MS);
        let (d, arp) = b.one_tx_frame();
        assert_eq!(ArpPacket::parse(&arp[14..]).unwrap().target_ip, silent);
        b.tx_done(d);
    }
    b.stack.tick(3000 * MS);
    let [(SHELL, r)] = b.replies()[..] else {
        panic!()
    };
    assert_eq!((r.status, r.from, r.seq), (Status::Unreachable, US, 3));
    assert_eq!(r.unreachable_text(), "Destination Host Unreachable");
    assert_eq!((b.stack.tx_in_use(), b.stack.pings_in_flight()), (0, 0));
}

#[test]
fn a_router_saying_unreachable_ends_the_ping() {
    let mut b = Bench::new();
    b.stack
        .request(SHELL, &ping(Ipv4Addr::new(192, 0, 2, 1), 4, 5000), 0);
    b.sent();
    b.receive(&arp_reply_from_gateway(), MS);
    let sent = b.sent();
    let Kind::TxFrame(d) = sent[0] else { panic!() };
    let request = b.frame(d);
    // The gateway: net unreachable (code 0), quoting our IPv4 header and 8 bytes.
    let mut icmp_msg = vec![3, 0, 0, 0, 0, 0, 0, 0];
    icmp_msg.extend_from_slice(&request[14..14 + 28]);
    let c = checksum::internet_checksum(&icmp_msg);
    icmp_msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut packet = vec![0u8; 20 + icmp_msg.len()];
    Ipv4Repr::new(GW, US, IpProtocol::ICMP, 9, 0)
        .emit_packet(&mut packet, &icmp_msg)
        .unwrap();
    b.receive(&ether(OUR_MAC, GW_MAC, EtherType::IPV4, &packet), 2 * MS);
    let [(SHELL, r)] = b.replies()[..] else {
        panic!()
    };
    assert_eq!(
        (r.status, r.from, r.unreachable_code),
        (Status::Unreachable, GW, 1)
    );
    assert_eq!(r.unreachable_text(), "Destination Net Unreachable");
    assert!(matches!(
        IcmpMessage::parse(&icmp_msg),
        Ok(IcmpMessage::DestUnreachable(_))
    ));
}

/// A TCP SYN from the gateway to us, in a frame.
fn tcp_syn_frame() -> Vec<u8> {
    let mut syn = vec![
        0x9c, 0x40, 0x14, 0x51, 0x8a, 0x3b, 0x11, 0x07, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0,
        0, 0,
    ];
    let c = checksum::transport_checksum(GW, US, 6, &syn).unwrap();
    syn[16..18].copy_from_slice(&c.to_be_bytes());
    let mut packet = vec![0u8; 40];
    Ipv4Repr::new(GW, US, IpProtocol::TCP, 1, 0)
        .emit_packet(&mut packet, &syn)
        .unwrap();
    ether(OUR_MAC, GW_MAC, EtherType::IPV4, &packet)
}

#[test]
fn tcp_and_udp_are_counted_and_dropped() {
    let mut b = Bench::new();
    let f = tcp_syn_frame();
    assert!(matches!(
        demux::classify_frame(&f, &b.stack.interface()),
        Verdict::Transport(d) if d.transport == Transport::Tcp
    ));
    b.receive(&f, 0);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    assert_eq!(b.stack.stats().no_transport_server, 1);
    assert_eq!(b.stack.demux_counters().tcp, 1);
}

#[test]
fn an_empty_tx_pool_drops_what_would_be_sent() {
    let mut b = Bench::with_tx(1);
    b.receive(&PING_FROM_HOST, 0);
    let sent = b.sent();
    let Kind::TxFrame(d) = sent[0] else { panic!() };
    // The only buffer is in flight: the next echo request is not answered, a ping cannot start.
    b.receive(&PING_FROM_HOST, 0);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    b.stack.request(SHELL, &ping(GW, 1, 1000), 0);
    assert_eq!(
        b.replies(),
        [(SHELL, PingReply::failed(Status::NoBuffer, GW, 1))]
    );
    assert_eq!(b.stack.stats().tx_pool_empty, 2);
    assert_eq!(b.stack.pings_in_flight(), 0);
    b.tx_done(d);
    b.receive(&PING_FROM_HOST, 0);
    assert!(matches!(
        b.sent()[..],
        [Kind::TxFrame(_), Kind::RxReturn(_)]
    ));
}

#[test]
fn requests_are_answered_at_once_or_refused() {
    // Enough tx buffers for every ping to wait in the ARP queue (the gateway never answers).
    let mut b = Bench::with_tx(MAX_PINGS + 4);
    b.stack.request(SHELL, &Request::Info.encode(), 0);
    let [(SHELL, m)] = b.stack.take_replies()[..] else {
        panic!()
    };
    let info = Info::decode(&m).unwrap();
    assert_eq!(info.address, "10.0.2.15/24".parse().unwrap());
    assert_eq!(
        (info.gateway, info.mac, info.mtu),
        (Some(GW), OUR_MAC, 1500)
    );
    b.receive(&PING_FROM_HOST, 0);
    // Counters, page by page, in the order of their names.
    let names: Vec<_> = proto::counter_names().collect();
    let mut values = Vec::new();
    while values.len() < names.len() {
        b.stack.request(
            SHELL,
            &Request::Counters {
                first: values.len() as u32,
            }
            .encode(),
            0,
        );
        let [(_, m)] = b.stack.take_replies()[..] else {
            panic!()
        };
        let page = CountersPage::decode(&m).unwrap();
        assert_eq!(page.total as usize, names.len());
        values.extend_from_slice(page.valid());
    }
    let named = |n: &str| values[names.iter().position(|&x| x == n).unwrap()];
    assert_eq!(
        (
            named("rx_frames"),
            named("icmp_echo_requests"),
            named("echo_replies_sent")
        ),
        (1, 1, 1)
    );
    // Refusals answered at once.
    let refused = |b: &mut Bench, m: &Message| {
        b.stack.request(SHELL, m, 0);
        let r = b.stack.take_replies();
        assert_eq!(r.len(), 1);
        proto::status(&r[0].1)
    };
    assert_eq!(refused(&mut b, &[0xAB; 64]), Status::BadRequest);
    assert_eq!(refused(&mut b, &ping(US, 1, 100)), Status::NoRoute);
    assert_eq!(
        refused(&mut b, &ping(Ipv4Addr::LOCALHOST, 1, 100)),
        Status::NoRoute
    );
    assert_eq!(
        refused(&mut b, &ping(Ipv4Addr::BROADCAST, 1, 100)),
        Status::BadRequest
    );
    assert_eq!(
        refused(&mut b, &ping(Ipv4Addr::new(10, 0, 2, 255), 1, 100)),
        Status::BadRequest
    );
    // A second ping with the same identifier and sequence while the first is in flight: busy.
    b.stack.request(SHELL, &ping(GW, 9, 100), 0);
    assert!(b.stack.take_replies().is_empty());
    assert_eq!(refused(&mut b, &ping(GW, 9, 100)), Status::Busy);
    for seq in 10..10 + MAX_PINGS as u16 - 1 {
        b.stack.request(SHELL, &ping(GW, seq, 100), 0);
    }
    assert_eq!(b.stack.pings_in_flight(), MAX_PINGS);
    assert_eq!(refused(&mut b, &ping(GW, 99, 100)), Status::Busy);
    // Every one times out at 100 ms, each caller told.
    b.stack.tick(100 * MS);
    assert_eq!(b.stack.take_replies().len(), MAX_PINGS);
}

#[test]
fn messages_pf_may_not_send_are_refused_and_nothing_is_returned() {
    let mut b = Bench::new();
    let d = b.rx.whole(0).unwrap();
    let t = b.tx.whole(0).unwrap();
    b.stack.handle(&Kind::RxReturn(d).message(), 0);
    b.stack.handle(&Kind::TxFrame(t).message(), 0);
    b.stack.handle(&ChanMessage::new(0x1234), 0);
    let mut bad = Kind::RxFrame(d).message();
    bad.payload[0] = u64::MAX; // a pool and index that do not exist
    b.stack.handle(&bad, 0);
    assert!(b.sent().is_empty());
    assert_eq!(b.stack.stats().refused, 4);
    assert_eq!(b.stack.refusals().total(), 2);
    assert_eq!(b.stack.take_notices().len(), 4);
    let _ = tag::RX_FRAME;
}

#[test]
fn the_outbox_waits_for_room_and_limits_what_is_read() {
    let mut b = Bench::new();
    for _ in 0..3 {
        b.receive(&PING_FROM_HOST, 0);
    }
    // pf's channel takes one message per flush.
    let mut got = 0;
    b.stack.flush(|m| {
        got += 1;
        m.len().min(1)
    });
    assert_eq!((got, b.stack.outbox_len()), (1, 5));
    let limit = 16 + 8 + OUTBOX_MARGIN;
    assert_eq!(b.stack.receive_budget(32), ((limit - 5) / 8).min(32));
    assert_eq!(b.stack.receive_budget(4), 4);
    assert_eq!(b.sent().len(), 5);
}

/// Random messages and random frame bytes: nothing panics, every frame handed in goes home
/// exactly once, and every tx buffer is accounted for.
#[test]
fn garbage_from_pf_never_breaks_the_stack() {
    let mut b = Bench::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut frames_in = 0u64;
    let mut returned = 0u64;
    let mut now = 0;
    for round in 0..20_000u64 {
        now += next() % (50 * MS);
        let r = next();
        match r % 8 {
            // A frame: random bytes, or a mutated echo request or ARP reply.
            0..=3 => {
                let mut f = match r % 3 {
                    0 => PING_FROM_HOST.to_vec(),
                    1 => arp_reply_from_gateway(),
                    _ => vec![0u8; (next() % 1514) as usize + 1],
                };
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % f.len();
                    f[i] = next() as u8;
                }
                b.receive(&f, now);
                frames_in += 1;
            }
            4 => {
                let mut words = [0u64; 8];
                for w in &mut words {
                    *w = next();
                }
                if r & 16 == 0 {
                    // A TX_DONE for some tx-pool buffer, lent out or not.
                    words[0] = (words[0] & !0xFFFF_FFFF) | u64::from(tag::TX_DONE);
                    words[1] = (next() % 10) << 32 | u64::from(TX_POOL_ID);
                    words[2] = 0;
                } else if r & 32 == 0 {
                    // Several tx-pool buffers at once, lent out or not, a count of 0..=15.
                    let count = next() % 16;
                    words[0] = u64::from(tag::TX_DONES) | ((4 * count) << 32);
                    for (i, w) in words[1..].iter_mut().enumerate() {
                        let k = 2 * i as u64;
                        let index = |k: u64, v: u64| if k < count { v % 10 } else { 0 };
                        *w = index(k, *w) | (index(k + 1, *w >> 32) << 32);
                    }
                }
                b.stack.handle(&ChanMessage::from_words(words), now);
            }
            5 => {
                let dst = if r & 16 == 0 {
                    GW
                } else {
                    Ipv4Addr::from(next() as u32)
                };
                b.stack.request(
                    SHELL,
                    &ping(dst, round as u16, 1 + (next() % 3000) as u32),
                    now,
                );
            }
            6 => b.stack.tick(now),
            _ => {
                let mut m = [0u8; 64];
                for c in m.chunks_mut(8) {
                    c.copy_from_slice(&next().to_le_bytes());
                }
                m[0] = (r % 4) as u8;
                b.stack.request(SHELL, &m, now);
            }
        }
        // pf: takes everything, and the driver finishes every frame at once. The gateway
        // answers ARP requests for it and, mostly, pings.
        for k in b.sent() {
            match k {
                Kind::RxReturn(_) => returned += 1,
                Kind::TxFrame(d) => {
                    let f = b.frame(d);
                    b.tx_done(d);
                    let answer = if f.get(12..14) == Some(&[0x08, 0x06]) && f[38..42] == GW.octets()
                    {
                        Some(arp_reply_from_gateway())
                    } else {
                        try_host_answers(&f).filter(|_| next() % 4 != 0)
                    };
                    if let Some(a) = answer {
                        b.receive(&a, now + next() % (5 * MS));
                        frames_in += 1;
                    }
                }
                other => panic!("ip sent {other:?}"),
            }
        }
        b.stack.take_replies();
        b.stack.take_notices();
    }
    for k in b.sent() {
        match k {
            Kind::RxReturn(_) => returned += 1,
            Kind::TxFrame(d) => b.tx_done(d),
            other => panic!("ip sent {other:?}"),
        }
    }
    assert_eq!(returned, frames_in, "every received frame went home once");
    // The mutations reached the interesting paths.
    let s = *b.stack.stats();
    assert!(s.echo_replies_sent > 100 && s.pings_sent > 100, "{s:?}");
    assert!(s.ping_replies > 100 && s.pings_timed_out > 100, "{s:?}");
    assert!(
        s.tx_double_free > 0 && s.refused > 0 && s.arp_requests_sent > 0,
        "{s:?}"
    );
    assert!(b.stack.demux_counters().bad_icmp + b.stack.demux_counters().bad_ipv4_checksum > 0);
    assert!(b.stack.demux_counters().accounted());
    // Let every timer run out (ARP gives up after its third request): nothing stays lent out.
    for s in 1..=4 {
        b.stack.tick(now + s * 100_000 * MS);
        for k in b.sent() {
            if let Kind::TxFrame(d) = k {
                b.tx_done(d);
            }
        }
    }
    assert_eq!(b.stack.tx_in_use(), 0);
    assert_eq!(b.stack.pings_in_flight(), 0);
}

/// Everything the stack sent to the udp server since the last call.
fn to_udp(b: &mut Bench) -> Vec<ChanMessage> {
    let mut got = Vec::new();
    b.stack.flush_udp(|msgs| {
        got.extend_from_slice(msgs);
        msgs.len()
    });
    got
}

fn udp_frame(data: &[u8], dst_port: u16) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + data.len()];
    seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
    seg[2..4].copy_from_slice(&dst_port.to_be_bytes());
    let seg_len = seg.len() as u16;
    seg[4..6].copy_from_slice(&seg_len.to_be_bytes());
    seg[8..].copy_from_slice(data);
    let c = checksum::udp_checksum(GW, US, &seg).unwrap();
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    let mut packet = vec![0u8; 20 + seg.len()];
    Ipv4Repr::new(GW, US, IpProtocol::UDP, 1, 0)
        .emit_packet(&mut packet, &seg)
        .unwrap();
    ether(OUR_MAC, GW_MAC, EtherType::IPV4, &packet)
}

#[test]
fn udp_goes_to_the_udp_server_and_comes_home_through_us() {
    let mut b = Bench::with_tx(64);
    b.stack.attach_udp();
    let lends = to_udp(&mut b);
    assert_eq!(lends.len(), udpmsg::TX_CREDIT);
    assert!(
        lends
            .iter()
            .all(|m| m.tag == udpmsg::tag::TX_LEND && udpmsg::lend_address(m) == US)
    );
    assert_eq!(b.stack.tx_in_use(), udpmsg::TX_CREDIT as u32);

    let mut d = b.rx.whole(3).unwrap();
    let f = udp_frame(b"hello", 7);
    d.offset = 2;
    d.len = f.len() as u32;
    b.rx.check(d).unwrap().copy_from(&f);
    b.stack.handle(&Kind::RxFrame(d).message(), 0);
    assert!(b.sent().is_empty(), "the buffer is with udp, not home yet");
    let got = to_udp(&mut b);
    assert_eq!(got.len(), 1);
    let del = udpmsg::Delivery::decode(&got[0]).unwrap();
    assert_eq!(
        (del.frame, del.src, del.dst, del.udp_offset, del.udp_len),
        (d, GW, US, 2 + 34, 13)
    );
    assert_eq!(b.stack.stats().udp_delivered, 1);

    let home = Kind::RxReturn(d).message();
    b.stack.handle_udp(&home, 0);
    assert_eq!(b.sent(), vec![Kind::RxReturn(d)]);
    // Twice, or a buffer it never had: refused, nothing goes to the driver.
    b.stack.handle_udp(&home, 0);
    b.stack
        .handle_udp(&Kind::RxReturn(b.rx.whole(4).unwrap()).message(), 0);
    assert!(b.sent().is_empty());
    assert_eq!(b.stack.stats().udp_refused, 2);
}

#[test]
fn udp_sends_buffers_home_together_and_each_is_checked() {
    let mut b = Bench::with_tx(64);
    b.stack.attach_udp();
    let _ = to_udp(&mut b);
    let f = udp_frame(b"hello", 7);
    let delivered: Vec<PoolDescriptor> = (3..6)
        .map(|i| {
            let mut d = b.rx.whole(i).unwrap();
            d.len = f.len() as u32;
            b.rx.check(d).unwrap().copy_from(&f);
            b.stack.handle(&Kind::RxFrame(d).message(), 0);
            d
        })
        .collect();
    assert_eq!(to_udp(&mut b).len(), 3);
    assert!(b.sent().is_empty(), "with udp until it sends them home");
    returns_go_home_together(
        &mut b,
        &delivered,
        |b, m| b.stack.handle_udp(m, 0),
        |b| b.stack.stats().udp_refused,
    );
}

/// udp or tcp sends the buffers `delivered` (which ip handed it) home in one `RX_RETURNS`,
/// through `send`: ip passes them on to pf in one message. The same message again is refused
/// once per buffer (the server holds none now); a bad index or a bad count refuses it whole,
/// counted once each (by `refused`).
fn returns_go_home_together(
    b: &mut Bench,
    delivered: &[PoolDescriptor],
    send: fn(&mut Bench, &ChanMessage),
    refused: fn(&Bench) -> u64,
) {
    let mut home = Kind::RxReturn(delivered[0]).message();
    for &d in &delivered[1..] {
        assert!(netmsg::merge(&mut home, &Kind::RxReturn(d).message()));
    }
    assert_eq!(home.tag, netmsg::tag::RX_RETURNS);
    send(b, &home);
    // On to pf, together again.
    let to_pf = b.sent_messages();
    assert_eq!(to_pf.len(), 1);
    let back: Vec<u32> = Kind::decode_all(&to_pf[0], b.rx.count(), b.tx.count())
        .unwrap()
        .map(|k| k.descriptor().index)
        .collect();
    let want: Vec<u32> = delivered.iter().map(|d| d.index).collect();
    assert_eq!(back, want);
    assert_eq!(refused(b), 0);
    // Again: the server holds none of them now; each is refused on its own.
    send(b, &home);
    let n = delivered.len() as u64;
    assert_eq!(refused(b), n);
    // A bad index refuses the message whole, counted once; so does a bad count.
    let mut bad = home;
    bad.payload[0] = u64::from(u32::MAX);
    send(b, &bad);
    let mut long = home;
    long.len = 4 * 15;
    send(b, &long);
    assert_eq!(refused(b), n + 2);
    assert!(b.sent().is_empty());
}

#[test]
fn a_udp_segment_gets_its_headers_in_place_and_the_loan_is_renewed() {
    let mut b = Bench::with_tx(64);
    b.receive(&arp_reply_from_gateway(), 0);
    let _ = b.sent();
    b.stack.attach_udp();
    let lends = to_udp(&mut b);
    let lent = lends[0].descriptor();
    // udp writes the segment at the headroom.
    let data = b"echoed bytes";
    let mut seg = vec![0u8; 8 + data.len()];
    seg[0..2].copy_from_slice(&7u16.to_be_bytes());
    seg[2..4].copy_from_slice(&40000u16.to_be_bytes());
    let seg_len = seg.len() as u16;
    seg[4..6].copy_from_slice(&seg_len.to_be_bytes());
    seg[8..].copy_from_slice(data);
    let c = checksum::udp_checksum(US, GW, &seg).unwrap();
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    let sd = PoolDescriptor {
        offset: udpmsg::TX_HEADROOM,
        len: seg.len() as u32,
        ..lent
    };
    b.tx.check(sd).unwrap().copy_from(&seg);
    b.stack.handle_udp(
        &udpmsg::Outgoing {
            segment: sd,
            dst: GW,
        }
        .message(),
        0,
    );
    let (fd, frame) = b.one_tx_frame();
    assert_eq!(fd.index, lent.index);
    let e = EtherFrame::parse(&frame).unwrap();
    assert_eq!((e.dst, e.src), (GW_MAC, OUR_MAC));
    let ip = Ipv4Packet::parse(&frame[14..]).unwrap();
    assert_eq!((ip.src, ip.dst, ip.protocol), (US, GW, IpProtocol::UDP));
    assert_eq!(ip.payload, &seg[..]);
    assert!(checksum::verify_transport(US, GW, 17, ip.payload));
    // A new loan replaced the one used; TX_DONE frees the frame as any other.
    let more = to_udp(&mut b);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].tag, udpmsg::tag::TX_LEND);
    b.tx_done(fd);
    assert_eq!(b.stack.tx_in_use(), udpmsg::TX_CREDIT as u32);
    assert_eq!(b.stack.stats().udp_sent, 1);

    // The same buffer again (no longer lent), a broadcast, a bad offset: refused; the lent
    // ones are freed and lent again.
    b.stack.handle_udp(
        &udpmsg::Outgoing {
            segment: sd,
            dst: GW,
        }
        .message(),
        0,
    );
    let l2 = more[0].descriptor();
    let bcast = PoolDescriptor {
        offset: udpmsg::TX_HEADROOM,
        len: 8,
        ..l2
    };
    b.stack.handle_udp(
        &udpmsg::Outgoing {
            segment: bcast,
            dst: Ipv4Addr::BROADCAST,
        }
        .message(),
        0,
    );
    let l3 = lends[1].descriptor();
    let off = PoolDescriptor {
        offset: 0,
        len: 8,
        ..l3
    };
    b.stack.handle_udp(
        &udpmsg::Outgoing {
            segment: off,
            dst: GW,
        }
        .message(),
        0,
    );
    assert_eq!(b.stack.stats().udp_refused, 3);
    assert!(b.sent().is_empty());
    assert_eq!(b.stack.tx_in_use(), udpmsg::TX_CREDIT as u32);
    // A lent buffer given back unused is freed.
    b.stack
        .handle_udp(&Kind::TxDone(lends[2].descriptor()).message(), 0);
    assert_eq!(b.stack.tx_in_use(), udpmsg::TX_CREDIT as u32);
    assert_eq!(to_udp(&mut b).len(), 3);
}

/// Our port unreachable about `udp_frame(b"x", 7)` (identification 1, the stack's first): to
/// the gateway's MAC, IPv4 checksum 0x22b4, ICMP type 3 code 3 checksum 0x8d28, the datagram's
/// header and UDP header quoted — computed independently of netproto.
const PORT_UNREACHABLE_FOR_X_TO_7: [u8; 70] = [
    0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x38, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0x22, 0xb4, 0x0a, 0x00, 0x02, 0x0f, 0x0a, 0x00,
    0x02, 0x02, 0x03, 0x03, 0x8d, 0x28, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x1d, 0x00, 0x01,
    0x40, 0x00, 0x40, 0x11, 0x22, 0xbf, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x0f, 0x9c, 0x40,
    0x00, 0x07, 0x00, 0x09, 0xd3, 0x83,
];

#[test]
fn without_the_udp_server_udp_is_dropped_and_answered_port_unreachable() {
    let mut b = Bench::new();
    let f = udp_frame(b"x", 7);
    assert_eq!(&PORT_UNREACHABLE_FOR_X_TO_7[42..], &f[14..42], "the quote");
    b.receive(&f, 0);
    let sent = b.sent();
    let [Kind::TxFrame(d), Kind::RxReturn(_)] = sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(b.frame(d), PORT_UNREACHABLE_FOR_X_TO_7);
    let s = *b.stack.stats();
    assert_eq!((s.no_transport_server, s.icmp_unreachable_sent), (1, 1));
    assert_eq!(b.stack.udp_outbox_len(), 0);
    b.tx_done(d);
    assert_eq!(b.stack.tx_in_use(), 0);
}

fn to_tcp(b: &mut Bench) -> Vec<ChanMessage> {
    let mut got = Vec::new();
    b.stack.flush_tcp(|msgs| {
        got.extend_from_slice(msgs);
        msgs.len()
    });
    got
}

#[test]
fn a_tcp_server_that_spent_its_loan_gets_buffers_again_as_frames_complete() {
    let mut b = Bench::with_tx(96);
    b.receive(&arp_reply_from_gateway(), 0);
    let _ = b.sent();
    b.stack.attach_tcp();
    // 96 buffers, udp's credit and ip's own (16 + 16) kept in reserve: tcp gets 64 (its
    // credit is larger).
    let reserve = udpmsg::TX_CREDIT + IP_OWN_TX;
    assert_eq!(reserve, 32);
    assert!(tcpmsg::TX_CREDIT > 96 - reserve);
    let lends = to_tcp(&mut b);
    assert_eq!(lends.len(), 96 - reserve);
    let in_flight: Vec<_> = lends.iter().map(|l| tcp_segment(&mut b, l, 0)).collect();
    // Every buffer tcp had is on the wire: no loan while the pool is that busy.
    assert!(to_tcp(&mut b).is_empty());
    assert_eq!(b.stack.stats().tcp_sent, 64);
    // Frames complete: each buffer back is lent to tcp again (or tcp would starve for good).
    b.tx_done(in_flight[0]);
    b.tx_done(in_flight[1]);
    let again = to_tcp(&mut b);
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|m| m.tag == tcpmsg::tag::TX_LEND));
}

#[test]
fn the_tcp_credit_bounds_the_loan_and_can_be_set() {
    let mut b = Bench::with_tx(96);
    b.receive(&arp_reply_from_gateway(), 0);
    let _ = b.sent();
    // The single layout's credit: tcp is lent that many, however large the pool.
    b.stack.set_tcp_credit(8);
    b.stack.attach_tcp();
    let lends = to_tcp(&mut b);
    assert_eq!(lends.len(), 8);
    // Spent, it is topped up to the credit again, no further.
    let spent: Vec<_> = lends[..3]
        .iter()
        .map(|l| tcp_segment(&mut b, l, 0))
        .collect();
    assert_eq!(spent.len(), 3);
    assert_eq!(to_tcp(&mut b).len(), 3);
    assert!(to_tcp(&mut b).is_empty());
    // A larger credit takes effect at once, within what the pool can spare.
    b.stack.set_tcp_credit(1000);
    assert_eq!(to_tcp(&mut b).len(), 96 - 32 - 8 - 3);
}

/// A UDP datagram from the gateway (10.0.2.2:40000) to `dst`:`port` in a frame to `dst_mac`.
fn udp_frame_to(dst: Ipv4Addr, dst_mac: Mac, port: u16, data: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + data.len()];
    seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
    seg[2..4].copy_from_slice(&port.to_be_bytes());
    let seg_len = seg.len() as u16;
    seg[4..6].copy_from_slice(&seg_len.to_be_bytes());
    seg[8..].copy_from_slice(data);
    let c = checksum::udp_checksum(GW, dst, &seg).unwrap();
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    let mut packet = vec![0u8; 20 + seg.len()];
    Ipv4Repr::new(GW, dst, IpProtocol::UDP, 1, 0)
        .emit_packet(&mut packet, &seg)
        .unwrap();
    ether(dst_mac, GW_MAC, EtherType::IPV4, &packet)
}

/// Hands every frame sent back as done; returns how many were ICMP port unreachable.
fn count_unreachable_sent(b: &mut Bench) -> usize {
    let mut n = 0;
    for k in b.sent() {
        if let Kind::TxFrame(d) = k {
            let f = b.frame(d);
            let ip = Ipv4Packet::parse(&f[14..]).unwrap();
            if let Ok(IcmpMessage::DestUnreachable(du)) = IcmpMessage::parse(ip.payload) {
                assert_eq!((du.code, ip.src, ip.dst), (3, US, GW));
                n += 1;
            }
            b.tx_done(d);
        }
    }
    n
}

#[test]
fn the_udp_server_reports_an_unbound_port_and_ip_answers_it() {
    let mut b = Bench::with_tx(64);
    b.stack.attach_udp();
    let _lends = to_udp(&mut b);
    let d = b.receive(&udp_frame(b"x", 7), 0);
    let [del] = to_udp(&mut b)[..] else { panic!() };
    assert_eq!(del.tag, udpmsg::tag::DELIVER);
    // No application bound port 7: the buffer comes home with RX_UNREACHABLE.
    let unreachable = ChanMessage::with_descriptor(udpmsg::tag::RX_UNREACHABLE, d);
    b.stack.handle_udp(&unreachable, 0);
    let sent = b.sent();
    let [Kind::TxFrame(t), Kind::RxReturn(home)] = sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(home, d);
    assert_eq!(b.frame(t), PORT_UNREACHABLE_FOR_X_TO_7);
    b.tx_done(t);
    // Again (no longer held): refused, nothing is sent, no error is built.
    b.stack.handle_udp(&unreachable, 0);
    assert!(b.sent().is_empty());
    assert_eq!(b.stack.stats().udp_refused, 1);
    // A datagram to the subnet's broadcast address: home, but never an error.
    let f = udp_frame_to(Ipv4Addr::new(10, 0, 2, 255), Mac::BROADCAST, 9, b"who");
    let d = b.receive(&f, 0);
    assert_eq!(to_udp(&mut b).len(), 1);
    b.stack.handle_udp(
        &ChanMessage::with_descriptor(udpmsg::tag::RX_UNREACHABLE, d),
        0,
    );
    assert_eq!(b.sent(), vec![Kind::RxReturn(d)]);
    // Nor about bytes that are no UDP datagram for us (the udp server is not trusted).
    let d = b.receive(&udp_frame(b"y", 7), 0);
    assert_eq!(to_udp(&mut b).len(), 1);
    b.rx.check(d).unwrap().copy_from(&PING_FROM_HOST);
    b.stack.handle_udp(
        &ChanMessage::with_descriptor(udpmsg::tag::RX_UNREACHABLE, d),
        0,
    );
    assert_eq!(b.sent(), vec![Kind::RxReturn(d)]);
    let s = *b.stack.stats();
    assert_eq!((s.icmp_unreachable_sent, s.icmp_errors_not_allowed), (1, 2));
}

#[test]
fn port_unreachable_is_rate_limited_and_never_for_broadcasts() {
    let mut b = Bench::with_tx(64);
    let f = udp_frame(b"x", 7);
    // A burst of 25 datagrams: the first 10 are answered.
    for _ in 0..25 {
        b.receive(&f, 1_000 * MS);
    }
    assert_eq!(count_unreachable_sent(&mut b), 10);
    assert_eq!(b.stack.stats().icmp_errors_rate_limited, 15);
    // One token every 100 ms.
    for _ in 0..5 {
        b.receive(&f, 1_099 * MS);
    }
    assert_eq!(count_unreachable_sent(&mut b), 0);
    for _ in 0..5 {
        b.receive(&f, 1_100 * MS);
    }
    assert_eq!(count_unreachable_sent(&mut b), 1);
    // A flood of 50 a second for 10 s gets at most 10 answers a second (plus one bucket).
    let mut answered = 0;
    for i in 0..500u64 {
        b.receive(&f, 5_000 * MS + i * 20 * MS);
        answered += count_unreachable_sent(&mut b);
    }
    assert!((100..=110).contains(&answered), "{answered}");
    // Broadcasts never get one, and take no token.
    let s0 = *b.stack.stats();
    for (dst, mac) in [
        (Ipv4Addr::BROADCAST, Mac::BROADCAST),
        (Ipv4Addr::new(10, 0, 2, 255), Mac::BROADCAST),
        (Ipv4Addr::new(10, 0, 2, 255), OUR_MAC),
    ] {
        b.receive(&udp_frame_to(dst, mac, 7, b"x"), 60_000 * MS);
    }
    assert_eq!(count_unreachable_sent(&mut b), 0);
    let s = *b.stack.stats();
    assert_eq!(s.icmp_errors_not_allowed - s0.icmp_errors_not_allowed, 3);
    assert_eq!(s.icmp_errors_rate_limited, s0.icmp_errors_rate_limited);
    for _ in 0..12 {
        b.receive(&f, 60_000 * MS);
    }
    assert_eq!(count_unreachable_sent(&mut b), 10);
    assert_eq!(b.stack.tx_in_use(), 0);
    assert!(b.stack.demux_counters().accounted());
}

// ---- DHCP ----

const BCAST: Ipv4Addr = Ipv4Addr::BROADCAST;
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// slirp's lease: a day.
const LEASE_SECS: u32 = 86_400;
const DHCP_OFFER: u8 = 2;
const DHCP_ACK: u8 = 5;
const DHCP_NAK: u8 = 6;

impl Bench {
    /// As [`Bench::with_tx`], from `config` (what the state region held).
    fn with_config(config: IpConfig) -> Self {
        let mut b = Self::with_tx(64);
        b.stack.config = config;
        b.stack.routes = config.routing_table(0).unwrap_or_default();
        b
    }

    /// Runs the timers at `now` and returns the DHCP message sent (the one frame sent, done).
    fn dhcp_tick(&mut self, now: u64) -> (Mac, Ipv4Addr, Ipv4Addr, DhcpMessage) {
        self.stack.tick(now);
        let (d, f) = self.one_tx_frame();
        self.tx_done(d);
        dhcp_sent(&f)
    }

    /// Runs the timers at `now` when a unicast DHCP message is due: the gateway's ARP entry
    /// has long expired, so an ARP request goes first; the gateway answers, and the message
    /// waiting for it goes out.
    fn dhcp_tick_via_arp(&mut self, now: u64) -> (Mac, Ipv4Addr, Ipv4Addr, DhcpMessage) {
        self.stack.tick(now);
        let (d, f) = self.one_tx_frame();
        self.tx_done(d);
        assert_eq!(
            ArpPacket::parse(&f[14..]).unwrap(),
            ArpPacket::request(OUR_MAC, US, GW)
        );
        self.receive(&arp_reply_from_gateway(), now);
        let sent = self.sent();
        let [Kind::TxFrame(d), Kind::RxReturn(_)] = sent[..] else {
            panic!("{sent:?}")
        };
        let f = self.frame(d);
        self.tx_done(d);
        dhcp_sent(&f)
    }
}

/// A DHCP reply as slirp sends it (bootp.c): from 10.0.2.2:67 to `to`:68 (broadcast in an
/// Ethernet broadcast, or unicast to us), yiaddr 10.0.2.15, siaddr 10.0.2.2, options 53,
/// 54, 51, 1, 3, 6, end.
fn slirp_dhcp(xid: u32, message_type: u8, to: Ipv4Addr) -> Vec<u8> {
    let mut bootp = vec![0u8; 236];
    bootp[..4].copy_from_slice(&[2, 1, 6, 0]);
    bootp[4..8].copy_from_slice(&xid.to_be_bytes());
    bootp[16..20].copy_from_slice(&US.octets());
    bootp[20..24].copy_from_slice(&GW.octets());
    bootp[28..34].copy_from_slice(&OUR_MAC.0);
    bootp.extend_from_slice(&[
        99,
        130,
        83,
        99,
        53,
        1,
        message_type,
        54,
        4,
        10,
        0,
        2,
        2,
        51,
        4,
    ]);
    bootp.extend_from_slice(&LEASE_SECS.to_be_bytes());
    bootp.extend_from_slice(&[
        1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3, 255,
    ]);
    bootp.resize(300, 0);
    let mut seg = vec![0u8; 8 + bootp.len()];
    seg[0..2].copy_from_slice(&67u16.to_be_bytes());
    seg[2..4].copy_from_slice(&68u16.to_be_bytes());
    let seg_len = seg.len() as u16;
    seg[4..6].copy_from_slice(&seg_len.to_be_bytes());
    seg[8..].copy_from_slice(&bootp);
    let c = checksum::udp_checksum(GW, to, &seg).unwrap();
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    let mut packet = vec![0u8; 20 + seg.len()];
    Ipv4Repr::new(GW, to, IpProtocol::UDP, 7, 0)
        .emit_packet(&mut packet, &seg)
        .unwrap();
    let mac = if to.is_broadcast() {
        Mac::BROADCAST
    } else {
        OUR_MAC
    };
    ether(mac, GW_MAC, EtherType::IPV4, &packet)
}

/// What a frame we sent carries: Ethernet destination, IPv4 source and destination, and the
/// DHCP message (UDP 68 → 67, checksums right).
fn dhcp_sent(frame: &[u8]) -> (Mac, Ipv4Addr, Ipv4Addr, DhcpMessage) {
    let e = EtherFrame::parse(frame).unwrap();
    assert_eq!((e.src, e.ethertype), (OUR_MAC, EtherType::IPV4));
    let ip = Ipv4Packet::parse(e.payload).unwrap();
    assert_eq!(ip.protocol, IpProtocol::UDP);
    assert!(checksum::verify_transport(ip.src, ip.dst, 17, ip.payload));
    assert_eq!(&ip.payload[..4], &[0, 68, 0, 67]);
    let m = DhcpMessage::parse(&ip.payload[8..]).unwrap();
    assert_eq!((m.op, m.chaddr), (1, OUR_MAC));
    (e.dst, ip.src, ip.dst, m)
}

fn info(b: &mut Bench, now: u64) -> (Info, DhcpInfo) {
    b.stack.request(SHELL, &Request::Info.encode(), now);
    let [(SHELL, m)] = b.stack.take_replies()[..] else {
        panic!()
    };
    (Info::decode(&m).unwrap(), DhcpInfo::read(&m))
}

/// DISCOVER at `now`, OFFER, REQUEST, ACK: returns the transaction id.
fn lease(b: &mut Bench, now: u64) -> u32 {
    let (_, _, _, discover) = b.dhcp_tick(now);
    assert_eq!(discover.message_type, MessageType::Discover);
    b.receive(&slirp_dhcp(discover.xid, DHCP_OFFER, BCAST), now + MS);
    let sent = b.sent();
    let [Kind::TxFrame(d), Kind::RxReturn(_)] = sent[..] else {
        panic!("{sent:?}")
    };
    let request = b.frame(d);
    b.tx_done(d);
    let (mac, src, dst, m) = dhcp_sent(&request);
    assert_eq!(
        (mac, src, dst, m.message_type, m.xid),
        (
            Mac::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            BCAST,
            MessageType::Request,
            discover.xid
        )
    );
    assert_eq!((m.requested_ip, m.server_id), (Some(US), Some(GW)));
    b.receive(&slirp_dhcp(discover.xid, DHCP_ACK, BCAST), now + 2 * MS);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    discover.xid
}

#[test]
fn dhcp_leases_an_address_through_the_stack() {
    let mut b = Bench::with_tx(64);
    b.stack.start_dhcp(0x5eed, 0);
    assert!(!b.stack.is_configured());
    // What the state region gets: no lease.
    let kept = b.stack.take_config_change().unwrap();
    assert_eq!(kept.address.to_string(), "0.0.0.0/0");
    assert!(kept.from_dhcp && !kept.lease_valid_at(0));
    assert_eq!(b.stack.take_config_change(), None);
    // No address: no loan for udp, no route for a ping, nothing answered.
    b.stack.attach_udp();
    assert!(to_udp(&mut b).is_empty());
    b.stack.request(SHELL, &ping(GW, 1, 1000), 0);
    assert_eq!(
        b.replies(),
        [(SHELL, PingReply::failed(Status::NoRoute, GW, 1))]
    );
    b.receive(&PING_FROM_HOST, 0);
    b.receive(&arp_reply_from_gateway(), 0);
    assert!(matches!(
        b.sent()[..],
        [Kind::RxReturn(_), Kind::RxReturn(_)]
    ));
    assert_eq!(b.stack.demux_counters().unconfigured, 1);
    let (i, d) = info(&mut b, 0);
    assert_eq!(
        (i.address.to_string(), i.gateway),
        ("0.0.0.0/0".into(), None)
    );
    assert_eq!(
        d,
        DhcpInfo {
            phase: DhcpPhase::Selecting,
            configured: false,
            attempts: 0,
            lease_secs_left: 0,
        }
    );

    // The first DISCOVER is due at once.
    assert_eq!(b.stack.next_deadline(), Some(0));
    let xid = lease(&mut b, 10 * MS);
    assert!(b.stack.is_configured());
    let (i, d) = info(&mut b, 12 * MS);
    assert_eq!(i.address, "10.0.2.15/24".parse().unwrap());
    assert_eq!((i.gateway, i.dns, i.mtu), (Some(GW), Some(DNS), 1500));
    assert_eq!(
        d,
        DhcpInfo {
            phase: DhcpPhase::Bound,
            configured: true,
            attempts: 1,
            lease_secs_left: LEASE_SECS,
        }
    );
    let kept = b.stack.take_config_change().unwrap();
    assert_eq!(kept.lease_end_ms, 12 + u64::from(LEASE_SECS) * 1000);
    assert!(kept.from_dhcp && kept.lease_valid_at(12));
    // Renewal (T1, half the lease) is the next thing to do.
    assert_eq!(
        b.stack.next_deadline(),
        Some((12 + u64::from(LEASE_SECS) * 500) * MS)
    );
    // udp gets its loan now, with the address; a ping starts by asking for the gateway.
    let lends = to_udp(&mut b);
    assert_eq!(lends.len(), udpmsg::TX_CREDIT);
    assert!(lends.iter().all(|m| udpmsg::lend_address(m) == US));
    b.stack.request(SHELL, &ping(GW, 2, 1000), 20 * MS);
    let (_, arp) = b.one_tx_frame();
    assert_eq!(
        ArpPacket::parse(&arp[14..]).unwrap(),
        ArpPacket::request(OUR_MAC, US, GW)
    );
    // A duplicate of the ACK: nothing to do, ignored.
    b.receive(&slirp_dhcp(xid, DHCP_ACK, BCAST), 30 * MS);
    let s = *b.stack.stats();
    assert_eq!((s.dhcp_sent, s.dhcp_leases, s.dhcp_ignored), (2, 1, 1));
    let notices = b.stack.take_notices();
    assert!(notices.iter().any(|n| matches!(
        n,
        Notice::DhcpLeased {
            address,
            gateway: Some(GW),
            secs: 86_400,
            renew_secs: 43_200,
            after_ms: 2,
            ..
        }
            if address.address() == US
    )));
}

#[test]
fn without_an_answer_dhcp_keeps_trying_with_backoff_and_says_so() {
    let mut b = Bench::with_tx(8);
    b.stack.start_dhcp(1, 0);
    let mut xids = Vec::new();
    for (at_s, attempt, retry_s) in [(0u64, 1u32, 4u64), (4, 2, 8), (12, 3, 16), (28, 4, 32)] {
        assert_eq!(b.stack.next_deadline(), Some(at_s * 1000 * MS));
        b.stack.tick(at_s * 1000 * MS - MS.min(at_s * 1000 * MS));
        if at_s > 0 {
            assert!(b.sent().is_empty(), "nothing before {at_s} s");
        }
        let (mac, src, _, m) = b.dhcp_tick(at_s * 1000 * MS);
        assert_eq!(
            (mac, src, m.message_type),
            (Mac::BROADCAST, Ipv4Addr::UNSPECIFIED, MessageType::Discover)
        );
        xids.push(m.xid);
        let notices = b.stack.take_notices();
        assert_eq!(
            notices,
            [Notice::DhcpSent {
                message: MessageType::Discover,
                attempt,
                configured: false,
                retry_ms: retry_s * 1000,
            }]
        );
    }
    // One transaction throughout, as RFC 2131 has it for retransmissions.
    assert!(xids.iter().all(|&x| x == xids[0]));
    // An offer for another transaction is ignored.
    b.receive(&slirp_dhcp(xids[0] ^ 0x100, DHCP_OFFER, BCAST), 30_000 * MS);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    assert_eq!(b.stack.stats().dhcp_ignored, 1);
    let (i, d) = info(&mut b, 30_000 * MS);
    assert_eq!(i.address.to_string(), "0.0.0.0/0");
    assert_eq!(
        (d.phase, d.configured, d.attempts),
        (DhcpPhase::Selecting, false, 4)
    );
    // Then every 64 s.
    let (_, _, _, m) = b.dhcp_tick(60_000 * MS);
    assert_eq!(m.message_type, MessageType::Discover);
    assert_eq!(b.stack.next_deadline(), Some(124_000 * MS));
    assert_eq!(b.stack.stats().dhcp_sent, 5);
}

#[test]
fn dhcp_renews_at_t1_rebinds_at_t2_and_gives_the_address_up_at_the_end() {
    let mut b = Bench::with_tx(64);
    b.stack.start_dhcp(7, 0);
    lease(&mut b, 0);
    let start = 2u64; // ms: when the ACK came
    let t1 = start + u64::from(LEASE_SECS) * 500;
    // T1: a REQUEST unicast to the server that granted the lease, from our address.
    b.stack.tick((t1 - 1) * MS);
    assert!(b.sent().is_empty());
    let (mac, src, dst, m) = b.dhcp_tick_via_arp(t1 * MS);
    assert_eq!((mac, src, dst), (GW_MAC, US, GW));
    assert_eq!(
        (m.message_type, m.ciaddr, m.requested_ip, m.server_id),
        (MessageType::Request, US, None, None)
    );
    // The server's ACK, unicast to us: the lease runs a day from now.
    b.receive(&slirp_dhcp(m.xid, DHCP_ACK, US), (t1 + 5) * MS);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    let kept = b.stack.take_config_change().unwrap();
    assert_eq!(kept.lease_end_ms, t1 + 5 + u64::from(LEASE_SECS) * 1000);
    assert_eq!(b.stack.stats().dhcp_leases, 2);

    // This time the server stays silent: renewals every 60 s, then broadcast at T2 (7/8).
    let start = t1 + 5;
    let t1 = start + u64::from(LEASE_SECS) * 500;
    let t2 = start + u64::from(LEASE_SECS) * 875;
    let end = start + u64::from(LEASE_SECS) * 1000;
    let (_, _, dst, _) = b.dhcp_tick_via_arp(t1 * MS);
    assert_eq!(dst, GW);
    let (_, _, dst, _) = b.dhcp_tick_via_arp((t1 + 60_000) * MS);
    assert_eq!(dst, GW);
    let (mac, src, dst, m) = b.dhcp_tick(t2 * MS);
    assert_eq!((mac, src, dst, m.ciaddr), (Mac::BROADCAST, US, BCAST, US));
    assert_eq!(info(&mut b, t2 * MS).1.phase, DhcpPhase::Rebinding);
    assert!(b.stack.is_configured());
    // The end: the address is given up, and discovery starts over in the same round.
    b.stack.tick(end * MS);
    let (d, f) = b.one_tx_frame();
    b.tx_done(d);
    let (_, src, _, m) = dhcp_sent(&f);
    assert_eq!(
        (src, m.message_type),
        (Ipv4Addr::UNSPECIFIED, MessageType::Discover)
    );
    assert!(!b.stack.is_configured());
    let kept = b.stack.take_config_change().unwrap();
    assert!(!kept.lease_valid_at(end) && kept.gateway.is_none());
    assert_eq!(b.stack.stats().dhcp_lost, 1);
    assert!(
        b.stack
            .take_notices()
            .iter()
            .any(|n| matches!(n, Notice::DhcpLost { address } if address.address() == US))
    );
    // Without an address a ping has no route again.
    b.stack.request(SHELL, &ping(GW, 9, 1000), end * MS);
    assert_eq!(
        b.replies(),
        [(SHELL, PingReply::failed(Status::NoRoute, GW, 9))]
    );
}

/// A bench that went through a lease at time 0 and "restarted": a new stack over the
/// configuration the state region kept, started in DHCP mode at `now`.
fn restarted(now: u64) -> Bench {
    let mut first = Bench::with_tx(64);
    first.stack.start_dhcp(3, 0);
    lease(&mut first, 0);
    let kept = first.stack.take_config_change().unwrap();
    let stored = kept.store();
    let mut b = Bench::with_config(IpConfig::load(&stored).unwrap());
    b.stack.start_dhcp(4, now);
    b
}

#[test]
fn a_restarted_ip_keeps_its_lease_and_asks_to_confirm_it() {
    let now = 3_600_000 * MS;
    let mut b = restarted(now);
    assert!(b.stack.is_configured());
    assert_eq!(b.stack.take_config_change(), None, "nothing to write back");
    assert!(matches!(
        b.stack.take_notices()[..],
        [Notice::DhcpResumed {
            secs_left: 82_800,
            ..
        }]
    ));
    // Usable at once: udp's loan carries the address, the host's ping is answered.
    b.stack.attach_udp();
    assert!(to_udp(&mut b).iter().all(|m| udpmsg::lend_address(m) == US));
    b.receive(&PING_FROM_HOST, now);
    assert!(matches!(
        b.sent()[..],
        [Kind::TxFrame(_), Kind::RxReturn(_)]
    ));
    let (i, d) = info(&mut b, now);
    assert_eq!(i.address, "10.0.2.15/24".parse().unwrap());
    assert_eq!(
        (d.phase, d.configured, d.lease_secs_left),
        (DhcpPhase::Rebooting, true, 82_800)
    );
    // INIT-REBOOT: a broadcast REQUEST for the remembered address, no server named.
    let (mac, src, dst, m) = b.dhcp_tick(now);
    assert_eq!(
        (mac, src, dst),
        (Mac::BROADCAST, Ipv4Addr::UNSPECIFIED, BCAST)
    );
    assert_eq!(
        (m.message_type, m.requested_ip, m.server_id, m.ciaddr),
        (MessageType::Request, Some(US), None, Ipv4Addr::UNSPECIFIED)
    );
    b.receive(&slirp_dhcp(m.xid, DHCP_ACK, BCAST), now + MS);
    assert_eq!(info(&mut b, now + MS).1.phase, DhcpPhase::Bound);
    let kept = b.stack.take_config_change().unwrap();
    assert_eq!(
        kept.lease_end_ms,
        now / MS + 1 + u64::from(LEASE_SECS) * 1000
    );
}

#[test]
fn a_restarted_ip_gives_a_refused_or_ended_lease_up() {
    // The server refuses the remembered address: given up, discovery starts.
    let now = 60_000 * MS;
    let mut b = restarted(now);
    let (_, _, _, m) = b.dhcp_tick(now);
    b.receive(&slirp_dhcp(m.xid, DHCP_NAK, BCAST), now + MS);
    assert!(matches!(b.sent()[..], [Kind::RxReturn(_)]));
    assert!(!b.stack.is_configured());
    assert_eq!(b.stack.stats().dhcp_lost, 1);
    let (_, _, _, m) = b.dhcp_tick(now + MS);
    assert_eq!(m.message_type, MessageType::Discover);

    // No server answers: the address stays in use until its lease ends.
    let mut b = restarted(now);
    let end = (2 + u64::from(LEASE_SECS) * 1000) * MS;
    let mut t = now;
    let mut sent = Vec::new();
    while t < end + 1_000 * MS {
        b.stack.tick(t);
        for k in b.sent() {
            if let Kind::TxFrame(d) = k {
                let f = b.frame(d);
                b.tx_done(d);
                sent.push((t, dhcp_sent(&f).3.message_type, b.stack.is_configured()));
            }
        }
        t = b.stack.next_deadline().unwrap().max(t + MS);
    }
    // Four REQUESTs, then DISCOVERs — all with the address still in force until the end.
    assert!(sent[..4].iter().all(|s| s.1 == MessageType::Request && s.2));
    assert!(sent[4..].iter().all(|s| s.1 == MessageType::Discover));
    assert!(sent.iter().filter(|s| s.0 < end).all(|s| s.2));
    assert!(!b.stack.is_configured());
    assert_eq!(b.stack.stats().dhcp_lost, 1);

    // Restarted after the lease ended: no address, as a first start.
    let mut b = restarted(end);
    assert!(!b.stack.is_configured());
    assert_eq!(info(&mut b, end).0.address.to_string(), "0.0.0.0/0");
    assert!(
        !b.stack
            .take_config_change()
            .unwrap()
            .lease_valid_at(end / MS)
    );
}

#[test]
fn frames_a_restarted_pf_never_passed_on_are_freed_after_the_grace_period() {
    let (mut b, lends) = with_tcp();
    let frames: Vec<_> = lends[..3]
        .iter()
        .map(|l| tcp_segment(&mut b, l, 0))
        .collect();
    // pf dies holding the three frames; the new pf passes one TX_DONE on (the NIC had it).
    b.stack.pf_restarted(1_000);
    // tcp hears that its frames were lost, once, so that it sends again at once.
    let told: Vec<_> = to_tcp(&mut b).iter().map(|m| m.tag).collect();
    assert_eq!(told, [tcpmsg::tag::PATH_LOST]);
    b.tx_done(frames[0]);
    b.stack
        .sweep_lost_tx(1_000 + recovery::LOST_TX_GRACE_NS - 1);
    assert_eq!(
        b.stack.stats().tx_recovered,
        0,
        "not before the grace period"
    );
    b.stack.sweep_lost_tx(1_000 + recovery::LOST_TX_GRACE_NS);
    assert_eq!(
        b.stack.stats().tx_recovered,
        2,
        "the two that never came back"
    );
    b.stack.sweep_lost_tx(2_000 + recovery::LOST_TX_GRACE_NS);
    assert_eq!(b.stack.stats().tx_recovered, 2, "once");
    // A TX_DONE arriving after the sweep is refused, not a double free.
    b.tx_done(frames[1]);
    assert_eq!(b.stack.stats().tx_double_free, 1);
}

/// A bench with a tcp server attached and the gateway's address known; tcp's loans.
fn with_tcp() -> (Bench, Vec<ChanMessage>) {
    let mut b = Bench::with_tx(96);
    b.receive(&arp_reply_from_gateway(), 0);
    let _ = b.sent();
    b.stack.attach_tcp();
    let lends = to_tcp(&mut b);
    (b, lends)
}

/// tcp sends a segment to the gateway in the buffer `lend` lent it, at `at`; the frame ip
/// gives pf.
fn tcp_segment(b: &mut Bench, lend: &ChanMessage, at: u64) -> PoolDescriptor {
    let mut packet = vec![0u8; 40];
    Ipv4Repr::new(US, GW, IpProtocol::TCP, 64, 0)
        .emit_packet(&mut packet, &[0u8; 20])
        .unwrap();
    let seg = PoolDescriptor {
        offset: tcpmsg::TX_HEADROOM,
        len: packet.len() as u32,
        ..lend.descriptor()
    };
    b.tx.check(seg).unwrap().copy_from(&packet);
    b.stack
        .handle_tcp(&tcpmsg::control(tcpmsg::tag::IP_SEND, seg, 0, 0), at);
    b.one_tx_frame().0
}

#[test]
fn tcp_sends_buffers_home_together_and_each_is_checked() {
    let (mut b, _) = with_tcp();
    let delivered: Vec<PoolDescriptor> = (0..3)
        .map(|_| {
            let i = b.receive(&tcp_syn_frame(), 0).index;
            b.rx.whole(i).unwrap()
        })
        .collect();
    assert!(b.sent().is_empty(), "with tcp until it sends them home");
    let deliveries = to_tcp(&mut b);
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|m| m.tag == tcpmsg::tag::DELIVER));
    returns_go_home_together(
        &mut b,
        &delivered,
        |b, m| b.stack.handle_tcp(m, 0),
        |b| b.stack.stats().tcp_refused,
    );
}

#[test]
fn frames_a_restarted_driver_never_sent_make_tcp_send_again_once() {
    let (mut b, lends) = with_tcp();
    let frames: Vec<_> = lends[..4]
        .iter()
        .map(|l| tcp_segment(&mut b, l, 0))
        .collect();
    let path_lost = |b: &mut Bench| {
        to_tcp(b)
            .iter()
            .filter(|m| m.tag == tcpmsg::tag::PATH_LOST)
            .count()
    };
    // The first went out; tcp hears nothing.
    b.tx_done(frames[0]);
    assert_eq!(path_lost(&mut b), 0);
    // The driver restarted with the other three in its ring: pf gives them back marked not
    // sent. Their buffers are free again, and tcp hears it once.
    for &f in &frames[1..] {
        b.stack.handle(&netmsg::not_sent(f), 1_000);
    }
    assert_eq!(b.stack.stats().tx_not_sent, 3);
    assert_eq!(b.stack.stats().tx_done, 4);
    assert_eq!(path_lost(&mut b), 1);
    // Another restart soon after: the same loss, not told again until the period is over.
    let again = |b: &mut Bench, lend: &ChanMessage, at: u64| {
        let f = tcp_segment(b, lend, at);
        b.stack.handle(&netmsg::not_sent(f), at);
        path_lost(b)
    };
    let period = recovery::PATH_LOST_EVERY_NS;
    assert_eq!(again(&mut b, &lends[4], 1_000 + period - 1), 0);
    assert_eq!(again(&mut b, &lends[5], 1_000 + period), 1);
    assert_eq!(b.stack.stats().tx_not_sent, 5);
    assert_eq!(b.stack.stats().tx_double_free, 0);
}
