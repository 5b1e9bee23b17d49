//! Host tests: a socket over real channels in ordinary memory, with the test playing udp.

use super::*;
use libchan::Polling;
use libchan::{PoolDescriptor, region_size};

/// Zeroed, page-aligned memory that lives for the whole test run.
fn leak(len: usize) -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
    // Safety: a non-zero size.
    unsafe { std::alloc::alloc_zeroed(layout) }
}

struct Udp {
    to_app: Producer<'static, Polling>,
    from_app: Consumer<'static, Polling>,
    rx_mem: *mut u8,
    tx_mem: *mut u8,
    rx: BufferPool<'static>,
}

fn channel() -> (Producer<'static, Polling>, Consumer<'static, Polling>) {
    let len = region_size(16).unwrap();
    let p = leak(len);
    // Safety: leaked memory, initialised before either end attaches.
    unsafe {
        libchan::init(p, len, 16).unwrap();
        (
            Producer::attach(p, len, Polling).unwrap(),
            Consumer::attach(p, len, Polling).unwrap(),
        )
    }
}

fn view(id: u16, p: *mut u8, buffers: usize) -> PoolView<'static> {
    // Safety: leaked memory of `buffers` buffers.
    unsafe { PoolView::new(id, p, buffers * 2048, 2048) }.unwrap()
}

/// A socket bound to `port`, with udp's answer `status` queued before the bind.
fn socket(status: Status) -> (Result<Socket<'static, Polling>>, Udp) {
    let (to_udp, from_app) = channel();
    let (mut to_app, from_udp) = channel();
    let (rx_mem, tx_mem) = (leak(4 * 2048), leak(2 * 2048));
    to_app
        .send(&udpmsg::control(
            tag::BIND_REPLY,
            PoolDescriptor::default(),
            7,
            status as u64,
        ))
        .unwrap();
    let s = Socket::bind_with(
        to_udp,
        from_udp,
        view(APP_RX_POOL_ID, rx_mem, 4),
        BufferPool::new(view(APP_TX_POOL_ID, tx_mem, 2)).unwrap(),
        7,
        Some(1000),
    );
    let rx = BufferPool::new(view(APP_RX_POOL_ID, rx_mem, 4)).unwrap();
    (
        s,
        Udp {
            to_app,
            from_app,
            rx_mem,
            tx_mem,
            rx,
        },
    )
}

#[test]
fn bind_reports_udps_answer() {
    let (s, mut u) = socket(Status::Ok);
    let s = s.unwrap();
    assert_eq!(s.local_port(), 7);
    let m = u.from_app.try_recv().unwrap().unwrap();
    assert_eq!((m.tag, m.payload[2]), (tag::BIND, 7));
    assert_eq!(
        socket(Status::AddrInUse).0.err().map(|e| e.kind()),
        Some(ErrorKind::AddrInUse)
    );
    assert_eq!(
        socket(Status::Invalid).0.err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
}

#[test]
fn bind_times_out_without_an_answer() {
    let (to_udp, _from_app) = channel();
    let (_to_app, from_udp) = channel();
    let (rx, tx) = (leak(2048), leak(2048));
    let r = Socket::bind_with(
        to_udp,
        from_udp,
        view(APP_RX_POOL_ID, rx, 1),
        BufferPool::new(view(APP_TX_POOL_ID, tx, 1)).unwrap(),
        7,
        Some(1000),
    );
    assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::TimedOut));
}

#[test]
fn recv_from_copies_the_datagram_and_hands_the_buffer_back() {
    let (s, mut u) = socket(Status::Ok);
    let mut s = s.unwrap();
    let _bind = u.from_app.try_recv().unwrap();
    let mut d = u.rx.alloc().unwrap();
    // Safety: test memory, buffer `d.index` is inside it.
    unsafe {
        core::ptr::copy_nonoverlapping(b"ping!".as_ptr(), u.rx_mem.add(d.index as usize * 2048), 5)
    };
    d.len = 5;
    let from = Ipv4Addr::new(10, 0, 2, 2);
    let dg = AppDatagram {
        data: d,
        peer: from,
        peer_port: 4242,
        local_port: 7,
    };
    u.to_app.send(&dg.message(tag::DATAGRAM)).unwrap();
    let mut buf = [0u8; 3];
    let (n, addr) = s.recv_from(&mut buf).unwrap();
    assert_eq!((n, &buf, addr), (3, b"pin", SocketAddrV4::new(from, 4242)));
    let back = u.from_app.try_recv().unwrap().unwrap();
    assert_eq!((back.tag, back.descriptor()), (tag::DATAGRAM_RETURN, d));
    u.rx.free(back.descriptor()).unwrap();
    // A forged descriptor is refused, not followed; the timeout ends the wait.
    let bad = AppDatagram {
        data: PoolDescriptor {
            pool: APP_RX_POOL_ID,
            index: 99,
            offset: 0,
            len: 1,
        },
        ..dg
    };
    u.to_app.send(&bad.message(tag::DATAGRAM)).unwrap();
    assert_eq!(
        s.recv_from_timeout(&mut buf, Some(1000))
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::TimedOut)
    );
    assert_eq!(s.refused(), 1);
}

#[test]
fn send_to_fills_its_own_buffer_and_recycles_it_on_send_done() {
    let (s, mut u) = socket(Status::Ok);
    let mut s = s.unwrap();
    let _bind = u.from_app.try_recv().unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 5555);
    assert_eq!(
        s.send_to(&[0; MAX_DATA + 1], to).err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    assert_eq!(
        s.send_to(b"x", SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1))
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    for round in 0..5u8 {
        assert_eq!(s.send_to(&[round; 10], to).unwrap(), 10);
        let m = u.from_app.try_recv().unwrap().unwrap();
        assert_eq!(m.tag, tag::SEND);
        let dg = AppDatagram::decode(&m);
        assert_eq!((dg.peer, dg.peer_port, dg.data.len), (*to.ip(), 5555, 10));
        // Safety: test memory.
        let first = unsafe { *u.tx_mem.add(dg.data.index as usize * 2048) };
        assert_eq!(first, round);
        // udp answers; the third answer is a refusal.
        let st = if round == 2 {
            Status::NoBuffer
        } else {
            Status::Ok
        };
        u.to_app
            .send(&udpmsg::control(tag::SEND_DONE, dg.data, 0, st as u64))
            .unwrap();
    }
    // Two buffers only, five sends: SEND_DONEs were taken while sending.
    let mut buf = [0u8; 4];
    let _ = s.recv_from_timeout(&mut buf, Some(1000));
    assert_eq!(s.send_errors(), 1);
}
