//! Host tests of the tcp server's logic over pools in ordinary memory: a SYN from the host is
//! read in place from the rx-pool buffer and answered with a SYN-ACK written in place into a
//! lent tx-pool buffer; the application hears of the connection.

use super::*;
use netmsg::{RX_POOL_ID, TX_POOL_ID};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use tcpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID, BUFFER_SIZE};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

fn memory(buffers: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; buffers * BUFFER_SIZE as usize].into_boxed_slice())
}

fn view(id: u16, mem: &'static mut [u8]) -> PoolView<'static> {
    // Safety: leaked memory lives for the whole test.
    unsafe { PoolView::new(id, mem.as_mut_ptr(), mem.len(), BUFFER_SIZE) }.unwrap()
}

/// A SYN from HOST:40000 to US:`port`, as an IPv4 packet.
fn syn(port: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 65535,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: HOST,
        dst_addr: US,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut out = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), &caps);
    let mut p = TcpPacket::new_unchecked(&mut out[ip.buffer_len()..]);
    tcp.emit(&mut p, &HOST.into(), &US.into(), &caps);
    out
}

fn whole(pool: u16, index: u32) -> PoolDescriptor {
    PoolDescriptor {
        pool,
        index,
        offset: 0,
        len: BUFFER_SIZE,
    }
}

#[test]
fn a_syn_is_answered_in_place_and_the_app_hears_of_the_connection() {
    let (rx, tx) = (memory(4), memory(4));
    let rx_mem = rx.as_mut_ptr();
    let tx_mem = tx.as_mut_ptr();
    let mut t = Tcp::new(view(RX_POOL_ID, rx), view(TX_POOL_ID, tx), 1_000_000, 42);
    t.add_app(
        "tcpecho",
        BufferPool::new(view(APP_RX_POOL_ID, memory(4))).unwrap(),
        view(APP_TX_POOL_ID, memory(4)),
    );
    t.from_ip(&tcpmsg::control(
        tag::TX_LEND,
        whole(TX_POOL_ID, 2),
        u64::from(u32::from(US)),
        0,
    ));
    assert_eq!(t.address(), Some(US));
    let listen = |port| tcpmsg::control(tag::LISTEN, Default::default(), port, 0);
    t.from_app(0, &listen(7));
    t.from_app(0, &listen(8));
    let mut app = Vec::new();
    t.flush_app(0, |m| {
        app.extend_from_slice(m);
        m.len()
    });
    let statuses: Vec<_> = app.iter().map(|m| (m.tag, m.payload[3])).collect();
    assert_eq!(
        statuses,
        [
            (tag::LISTEN_REPLY, Status::Ok as u64),
            (tag::LISTEN_REPLY, Status::Invalid as u64)
        ]
    );

    // The SYN in rx buffer 1 behind a 14-byte Ethernet header.
    let packet = syn(7);
    // Safety: test memory of 4 buffers, not in use by the server now.
    unsafe {
        let b = core::slice::from_raw_parts_mut(rx_mem.add(BUFFER_SIZE as usize), 2048);
        b[14..14 + packet.len()].copy_from_slice(&packet);
    }
    let frame = PoolDescriptor {
        pool: RX_POOL_ID,
        index: 1,
        offset: 0,
        len: 14 + packet.len() as u32,
    };
    let d = tcpmsg::Delivery {
        frame,
        ip_offset: 14,
        ip_len: packet.len() as u32,
    };
    t.from_ip(&d.message());
    t.poll(2_000_000);
    let mut to_ip = Vec::new();
    t.flush_ip(|m| {
        to_ip.extend_from_slice(m);
        m.len()
    });
    assert_eq!(to_ip.len(), 2, "{to_ip:?}");
    assert_eq!(
        (to_ip[0].tag, to_ip[0].descriptor()),
        (tag::RX_RETURN, frame)
    );
    assert_eq!(to_ip[1].tag, tag::IP_SEND);
    let sent = to_ip[1].descriptor();
    assert_eq!((sent.index, sent.offset), (2, tcpmsg::TX_HEADROOM));
    // Safety: as above; the server handed the buffer back with IP_SEND.
    let bytes =
        unsafe { core::slice::from_raw_parts(tx_mem.add(2 * 2048 + 14), sent.len as usize) };
    let ip = Ipv4Packet::new_checked(bytes).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (US, HOST));
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.syn() && tcp.ack());
    assert_eq!((tcp.src_port(), tcp.dst_port()), (7, 40000));
    assert_eq!(tcp.ack_number(), TcpSeqNumber(1001));

    let mut app = Vec::new();
    t.flush_app(0, |m| {
        app.extend_from_slice(m);
        m.len()
    });
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].tag, tag::ACCEPTED);
    let w = app[0].payload[3];
    assert_eq!((Ipv4Addr::from(w as u32), (w >> 32) as u16), (HOST, 40000));
    assert_eq!(t.stats().accepted, 1);
}
