//! Host tests of the udp server's logic over pools in ordinary memory.

use super::*;
use netmsg::{BUFFER_SIZE, RX_POOL_ID};
use netproto::ether::{EtherHeader, EtherType, Mac};
use netproto::ipv4::Ipv4Repr;
use udpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

fn memory(buffers: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; buffers * BUFFER_SIZE as usize].into_boxed_slice())
}

fn view(id: u16, mem: &'static mut [u8]) -> PoolView<'static> {
    // Safety: leaked memory lives for the whole test.
    unsafe { PoolView::new(id, mem.as_mut_ptr(), mem.len(), BUFFER_SIZE) }.unwrap()
}

struct World {
    udp: Udp<'static>,
    rx_mem: *mut u8,
    tx_mem: *mut u8,
    app_rx_mem: *mut u8,
    app_tx_mem: *mut u8,
    app_tx: BufferPool<'static>,
}

fn world() -> World {
    let (rx, tx, arx, atx) = (memory(8), memory(8), memory(4), memory(4));
    let (rx_mem, tx_mem, app_rx_mem, app_tx_mem) = (
        rx.as_mut_ptr(),
        tx.as_mut_ptr(),
        arx.as_mut_ptr(),
        atx.as_mut_ptr(),
    );
    // Safety: as `view`; the tests and the server use the memory alternately, never at once.
    let atx2 = unsafe { core::slice::from_raw_parts_mut(app_tx_mem, 4 * BUFFER_SIZE as usize) };
    let mut udp = Udp::new(view(RX_POOL_ID, rx), view(TX_POOL_ID, tx));
    let app = udp.add_app(
        "udpecho",
        BufferPool::new(view(APP_RX_POOL_ID, arx)).unwrap(),
        view(APP_TX_POOL_ID, atx),
    );
    assert_eq!(app, 0);
    let app_tx = BufferPool::new(view(APP_TX_POOL_ID, atx2)).unwrap();
    World {
        udp,
        rx_mem,
        tx_mem,
        app_rx_mem,
        app_tx_mem,
        app_tx,
    }
}

fn buf(base: *mut u8, index: u32) -> &'static mut [u8] {
    // Safety: test memory of at least `index + 1` buffers, leaked.
    unsafe {
        core::slice::from_raw_parts_mut(
            base.add(index as usize * BUFFER_SIZE as usize),
            BUFFER_SIZE as usize,
        )
    }
}

/// Writes a UDP frame into rx buffer `index` at `offset`; returns its DELIVER.
fn frame(w: &World, index: u32, offset: u32, dst_port: u16, data: &[u8], corrupt: bool) -> Message {
    let b = &mut buf(w.rx_mem, index)[offset as usize..];
    EtherHeader {
        dst: Mac([2; 6]),
        src: Mac([4; 6]),
        ethertype: EtherType::IPV4,
    }
    .emit(b)
    .unwrap();
    let seg_len = 8 + data.len();
    Ipv4Repr::new(HOST, US, IpProtocol::UDP, 1, seg_len)
        .emit(&mut b[14..])
        .unwrap();
    build_segment(&mut b[34..34 + seg_len], HOST, 40000, US, dst_port, |o| {
        o.copy_from_slice(data)
    });
    if corrupt {
        b[34 + 8] ^= 1;
    }
    let len = (34 + seg_len).max(60) as u32;
    Delivery {
        frame: PoolDescriptor {
            pool: RX_POOL_ID,
            index,
            offset,
            len,
        },
        src: HOST,
        dst: US,
        udp_offset: offset + 34,
        udp_len: seg_len as u32,
        broadcast: false,
    }
    .message()
}

fn drain_ip(w: &mut World) -> Vec<Message> {
    let mut v = Vec::new();
    w.udp.flush_ip(|m| {
        v.extend_from_slice(m);
        m.len()
    });
    v
}

fn drain_app(w: &mut World) -> Vec<Message> {
    let mut v = Vec::new();
    w.udp.flush_app(0, |m| {
        v.extend_from_slice(m);
        m.len()
    });
    v
}

fn bind(w: &mut World, port: u64) -> Status {
    w.udp.from_app(
        0,
        &udpmsg::control(tag::BIND, PoolDescriptor::default(), port, 0),
    );
    let r = drain_app(w);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].tag, tag::BIND_REPLY);
    Status::from_code(r[0].payload[3])
}

fn lend(w: &mut World, index: u32) {
    let d = PoolDescriptor {
        pool: TX_POOL_ID,
        index,
        offset: 0,
        len: BUFFER_SIZE,
    };
    w.udp.from_ip(&udpmsg::lend_message(d, US));
}

#[test]
fn a_datagram_reaches_the_bound_application_and_the_frame_goes_home() {
    let mut w = world();
    assert_eq!(bind(&mut w, 7), Status::Ok);
    let m = frame(&w, 3, 2, 7, b"hello axolotl", false);
    w.udp.from_ip(&m);
    let home = drain_ip(&mut w);
    assert_eq!(home.len(), 1);
    assert_eq!(home[0].tag, tag::RX_RETURN);
    assert_eq!(home[0].descriptor(), m.descriptor());
    let got = drain_app(&mut w);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tag, tag::DATAGRAM);
    let dg = AppDatagram::decode(&got[0]);
    assert_eq!((dg.peer, dg.peer_port, dg.local_port), (HOST, 40000, 7));
    let data = &buf(w.app_rx_mem, dg.data.index)[..dg.data.len as usize];
    assert_eq!(data, b"hello axolotl");
    // Returned: the buffer can be freed once, not twice.
    let ret = udpmsg::control(tag::DATAGRAM_RETURN, dg.data, 0, 0);
    w.udp.from_app(0, &ret);
    assert_eq!(w.udp.stats().refused, 0);
    w.udp.from_app(0, &ret);
    assert_eq!(w.udp.stats().refused, 1);
    assert_eq!(w.udp.stats().rx_delivered, 1);
}

#[test]
fn bad_checksum_no_port_and_full_app_pool_are_dropped_but_returned() {
    let mut w = world();
    assert_eq!(bind(&mut w, 7), Status::Ok);
    w.udp.from_ip(&frame(&w, 0, 0, 7, b"x", true));
    w.udp.from_ip(&frame(&w, 1, 0, 9, b"x", false));
    for i in 0..5 {
        w.udp.from_ip(&frame(&w, 2 + i, 0, 7, b"yy", false));
    }
    let s = *w.udp.stats();
    assert_eq!(
        (
            s.rx_bad_checksum,
            s.rx_no_port,
            s.rx_delivered,
            s.rx_app_pool_empty
        ),
        (1, 1, 4, 1)
    );
    // Every frame goes home; the one for an unbound port asks ip for a port unreachable, alone.
    // Plain returns that meet in the queue travel together.
    let home = drain_ip(&mut w);
    let tags: Vec<u32> = home.iter().map(|m| m.tag).collect();
    assert_eq!(tags, [tag::RX_RETURN, tag::RX_UNREACHABLE, tag::RX_RETURNS]);
    assert_eq!(home[1].descriptor().index, 1);
    let indices: Vec<Vec<u32>> = [&home[0], &home[2]]
        .iter()
        .map(|m| {
            Kind::decode_all(m, 8, 8)
                .unwrap()
                .map(|k| match k {
                    Kind::RxReturn(d) => d.index,
                    other => panic!("not a return: {other:?}"),
                })
                .collect()
        })
        .collect();
    assert_eq!(indices, [vec![0], vec![2, 3, 4, 5, 6]]);
    assert_eq!(s.rx_returned, 7);
    // Not for a broadcast: that goes home plainly.
    let b = frame(&w, 0, 0, 9, b"x", false);
    let mut d = udpmsg::Delivery::decode(&b).unwrap();
    d.broadcast = true;
    w.udp.from_ip(&d.message());
    assert_eq!(w.udp.stats().rx_no_port, 2);
    assert_eq!(drain_ip(&mut w)[0].tag, tag::RX_RETURN);
}

#[test]
fn a_zero_checksum_means_none() {
    let mut w = world();
    bind(&mut w, 7);
    let m = frame(&w, 0, 0, 7, b"abc", false);
    buf(w.rx_mem, 0)[34 + 6..34 + 8].copy_from_slice(&[0, 0]);
    w.udp.from_ip(&m);
    assert_eq!(w.udp.stats().rx_delivered, 1);
}

#[test]
fn binding_rules() {
    let mut w = world();
    assert_eq!(bind(&mut w, 0), Status::Invalid);
    assert_eq!(bind(&mut w, 70000), Status::Invalid);
    assert_eq!(bind(&mut w, 5), Status::Ok);
    assert_eq!(bind(&mut w, 5), Status::Ok, "repeated");
    // One socket per application: a bind elsewhere is a new instance's and replaces it.
    assert_eq!(bind(&mut w, 6), Status::Ok);
    assert_eq!(w.udp.port(0), Some(6));
    // A binding restored from the saved state (after a restart of udp).
    assert!(!w.udp.restore_binding(0, 0));
    assert!(!w.udp.restore_binding(7, 9), "no such application");
    assert!(w.udp.restore_binding(0, 9));
    assert_eq!(w.udp.port(0), Some(9));
}

fn app_send(w: &mut World, data: &[u8], to: Ipv4Addr, port: u16) -> PoolDescriptor {
    let mut d = w.app_tx.alloc().unwrap();
    buf(w.app_tx_mem, d.index)[..data.len()].copy_from_slice(data);
    d.len = data.len() as u32;
    let dg = AppDatagram {
        data: d,
        peer: to,
        peer_port: port,
        local_port: 0,
    };
    w.udp.from_app(0, &dg.message(tag::SEND));
    d
}

fn send_done(w: &mut World, d: PoolDescriptor) -> Status {
    let r = drain_app(w);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].tag, r[0].descriptor()), (tag::SEND_DONE, d));
    w.app_tx.free(d).unwrap();
    Status::from_code(r[0].payload[3])
}

#[test]
fn a_send_becomes_a_checksummed_segment_in_a_lent_buffer() {
    let mut w = world();
    bind(&mut w, 7);
    let d = app_send(&mut w, b"no buffer yet", HOST, 40000);
    assert_eq!(send_done(&mut w, d), Status::NoBuffer);
    lend(&mut w, 5);
    lend(&mut w, 5); // the same buffer twice: refused
    assert_eq!((w.udp.credit(), w.udp.stats().refused), (1, 1));
    let d = app_send(&mut w, b"echo me", HOST, 40000);
    assert_eq!(send_done(&mut w, d), Status::Ok);
    let out = drain_ip(&mut w);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].tag, tag::UDP_SEND);
    let o = Outgoing::decode(&out[0]);
    assert_eq!(o.dst, HOST);
    assert_eq!(
        (
            o.segment.pool,
            o.segment.index,
            o.segment.offset,
            o.segment.len
        ),
        (TX_POOL_ID, 5, TX_HEADROOM, 15)
    );
    let seg = &buf(w.tx_mem, 5)[TX_HEADROOM as usize..TX_HEADROOM as usize + 15];
    assert_eq!(&seg[..6], &[0, 7, 0x9c, 0x40, 0, 15]);
    assert_eq!(&seg[8..], b"echo me");
    assert!(checksum::verify_transport(US, HOST, IpProtocol::UDP.0, seg));
    assert_eq!(w.udp.credit(), 0);
}

#[test]
fn sends_wait_in_order_for_lent_buffers() {
    let mut w = world();
    bind(&mut w, 7);
    lend(&mut w, 1);
    let first = app_send(&mut w, b"one", HOST, 40000);
    assert_eq!(send_done(&mut w, first), Status::Ok);
    // No credit left: the next two wait, holding the application's buffers (no answer yet).
    let second = app_send(&mut w, b"two", HOST, 40000);
    let third = app_send(&mut w, b"three", HOST, 40001);
    assert!(drain_app(&mut w).is_empty());
    assert_eq!(w.udp.stats().tx_waited, 2);
    assert_eq!(drain_ip(&mut w).len(), 1);
    lend(&mut w, 2);
    assert_eq!(send_done(&mut w, second), Status::Ok);
    lend(&mut w, 3);
    assert_eq!(send_done(&mut w, third), Status::Ok);
    let out: Vec<u32> = drain_ip(&mut w)
        .iter()
        .map(|m| Outgoing::decode(m).segment.index)
        .collect();
    assert_eq!(out, [2, 3], "in the order sent");
    assert_eq!(w.udp.stats().tx_no_buffer, 0);
}

#[test]
fn sends_that_cannot_go_are_refused_with_a_status() {
    let mut w = world();
    lend(&mut w, 1);
    let d = app_send(&mut w, b"x", HOST, 1);
    assert_eq!(send_done(&mut w, d), Status::NotBound);
    bind(&mut w, 7);
    let d = app_send(&mut w, b"x", Ipv4Addr::UNSPECIFIED, 1);
    assert_eq!(send_done(&mut w, d), Status::BadDatagram);
    let d = app_send(&mut w, b"x", HOST, 0);
    assert_eq!(send_done(&mut w, d), Status::BadDatagram);
    let d = app_send(&mut w, &[0; MAX_DATA + 1], HOST, 9);
    assert_eq!(send_done(&mut w, d), Status::BadDatagram);
    let d = app_send(&mut w, &[0; MAX_DATA], HOST, 9);
    assert_eq!(send_done(&mut w, d), Status::Ok);
    // A descriptor of another pool is refused without an answer.
    let bogus = AppDatagram {
        data: PoolDescriptor {
            pool: 9,
            index: 0,
            offset: 0,
            len: 1,
        },
        peer: HOST,
        peer_port: 1,
        local_port: 0,
    };
    w.udp.from_app(0, &bogus.message(tag::SEND));
    assert!(drain_app(&mut w).is_empty());
}

#[test]
fn garbage_from_ip_and_apps_never_panics_and_every_frame_goes_home() {
    let mut w = world();
    bind(&mut w, 7);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut delivered = 0;
    for _ in 0..20_000 {
        let mut words = [0u64; 8];
        for v in &mut words {
            *v = rnd();
        }
        let tags = [
            tag::DELIVER,
            tag::TX_LEND,
            tag::BIND,
            tag::SEND,
            tag::DATAGRAM_RETURN,
            0,
        ];
        words[0] = u64::from(tags[(words[0] % 6) as usize]);
        if words[0] as u32 == tag::DELIVER && words[1] & 1 == 0 {
            // A good frame, often mutated.
            let mut m = frame(&w, (words[2] % 8) as u32, 0, 7, b"data", false);
            if words[3] % 3 == 0 {
                m.payload[3] ^= words[4] & 0xFFFF_00FF;
            }
            w.udp.from_ip(&m);
            delivered += 1;
        } else {
            let m = Message::from_words(words);
            w.udp.from_ip(&m);
            w.udp.from_app(0, &m);
        }
        for m in drain_app(&mut w) {
            if m.tag == tag::DATAGRAM {
                w.udp.from_app(
                    0,
                    &udpmsg::control(tag::DATAGRAM_RETURN, m.descriptor(), 0, 0),
                );
            }
        }
        let _ = drain_ip(&mut w);
    }
    assert!(delivered > 1000);
    assert!(w.udp.stats().rx_returned >= delivered);
}
