//! Host tests: sockets over real channels in ordinary memory, with the test playing udp or tcp
//! (and restarting tcp).

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
    /// The channel regions: app → udp, then udp → app.
    regions: [(*mut u8, usize); 2],
}

impl Udp {
    /// A new instance of udp takes over the channels (their epochs move on).
    fn restart(&mut self) {
        (self.from_app, self.to_app) = take_over(self.regions);
        self.rx = BufferPool::new(view(APP_RX_POOL_ID, self.rx_mem, 4)).unwrap();
    }
}

/// A server's new instance takes over its channels: `regions` are (application → server,
/// server → application); their epochs move on and the new ends attach.
fn take_over(
    regions: [(*mut u8, usize); 2],
) -> (Consumer<'static, Polling>, Producer<'static, Polling>) {
    for &(p, len) in &regions {
        // Safety: the test's channel regions.
        unsafe { libchan::bump_epoch(p, len) }.unwrap();
    }
    let [(a, alen), (b, blen)] = regions;
    // Safety: the test's channel regions, initialised; the old instance's ends are dropped
    // with it.
    unsafe {
        (
            Consumer::attach(a, alen, Polling).unwrap(),
            Producer::attach(b, blen, Polling).unwrap(),
        )
    }
}

fn channel() -> (Producer<'static, Polling>, Consumer<'static, Polling>) {
    let (_, p, c) = channel_in();
    (p, c)
}

/// A channel, with its region.
fn channel_in() -> (
    (*mut u8, usize),
    Producer<'static, Polling>,
    Consumer<'static, Polling>,
) {
    let len = region_size(16).unwrap();
    let p = leak(len);
    // Safety: leaked memory, initialised before either end attaches.
    unsafe {
        libchan::init(p, len, 16).unwrap();
        (
            (p, len),
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
    let (up, to_udp, from_app) = channel_in();
    let (down, mut to_app, from_udp) = channel_in();
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
            regions: [up, down],
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

/// Calls of [`count_find`].
static FINDS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

fn count_find(_: &Polling) -> bool {
    FINDS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    true
}

fn datagram(u: &mut Udp, byte: u8) -> AppDatagram {
    let mut d = u.rx.alloc().unwrap();
    // Safety: test memory, buffer `d.index` is inside it.
    unsafe { *u.rx_mem.add(d.index as usize * 2048) = byte };
    d.len = 1;
    AppDatagram {
        data: d,
        peer: Ipv4Addr::new(10, 0, 2, 2),
        peer_port: 4242,
        local_port: 7,
    }
}

#[test]
fn after_a_restart_of_udp_the_socket_finds_the_new_instance_before_it_sends() {
    use core::sync::atomic::Ordering::Relaxed;
    let (s, mut u) = socket(Status::Ok);
    let mut s = s.unwrap();
    s.set_find_peer(count_find);
    let _bind = u.from_app.try_recv().unwrap();
    let mut buf = [0u8; 4];
    let dg = datagram(&mut u, 1);
    u.to_app.send(&dg.message(tag::DATAGRAM)).unwrap();
    assert_eq!(s.recv_from(&mut buf).unwrap().0, 1);
    assert_eq!(
        FINDS.load(Relaxed),
        0,
        "no restart: the waiter's peer is right"
    );
    u.restart();
    // The socket joins the new epoch at its next receive (nothing there yet).
    assert_eq!(
        s.recv_from_timeout(&mut buf, Some(1000))
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::TimedOut)
    );
    assert_eq!(FINDS.load(Relaxed), 0, "nothing sent yet");
    let dg = datagram(&mut u, 2);
    u.to_app.send(&dg.message(tag::DATAGRAM)).unwrap();
    assert_eq!(s.recv_from(&mut buf).unwrap().0, 1);
    assert_eq!(buf[0], 2);
    assert_eq!(s.udp_restarts(), 1);
    // The DATAGRAM_RETURN went to the new instance, with the waiter pointed at it first.
    assert_eq!(FINDS.load(Relaxed), 1);
    let back = u.from_app.try_recv().unwrap().unwrap();
    assert_eq!(
        (back.tag, back.descriptor()),
        (tag::DATAGRAM_RETURN, dg.data)
    );
    // Found once: later sends do not look again.
    let dg = datagram(&mut u, 3);
    u.to_app.send(&dg.message(tag::DATAGRAM)).unwrap();
    assert_eq!(s.recv_from(&mut buf).unwrap().0, 1);
    assert_eq!(FINDS.load(Relaxed), 1);
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

// TCP: an endpoint over real channels, with the test playing tcp — and restarting it.

/// Nanoseconds since the first call (the endpoint's clock).
fn now_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// The tcp side of an endpoint, and the memory behind the channels and pools.
struct Tcp {
    to_app: Producer<'static, Polling>,
    from_app: Consumer<'static, Polling>,
    /// The regions app → tcp and tcp → app.
    regions: [(*mut u8, usize); 2],
    rx_mem: *mut u8,
    tx_mem: *mut u8,
    rx: BufferPool<'static>,
}

/// A channel region and its two ends.
fn region() -> (
    (*mut u8, usize),
    Producer<'static, Polling>,
    Consumer<'static, Polling>,
) {
    let len = region_size(16).unwrap();
    let p = leak(len);
    // Safety: leaked memory, initialised before either end attaches.
    unsafe {
        libchan::init(p, len, 16).unwrap();
        (
            (p, len),
            Producer::attach(p, len, Polling).unwrap(),
            Consumer::attach(p, len, Polling).unwrap(),
        )
    }
}

impl Tcp {
    fn send(&mut self, tag: u32, d: PoolDescriptor, w2: u64, w3: u64) {
        self.to_app.send(&tcpmsg::control(tag, d, w2, w3)).unwrap();
    }

    /// Everything the application sent since.
    fn inbox(&mut self) -> Vec<Message> {
        let mut v = Vec::new();
        while let Some(m) = self.from_app.try_recv().unwrap() {
            v.push(m);
        }
        v
    }

    /// DATA for connection `id`: `bytes` in a buffer of the application's rx pool.
    fn data(&mut self, id: u64, bytes: &[u8]) -> PoolDescriptor {
        let mut d = self.rx.alloc().unwrap();
        // Safety: test memory, buffer `d.index` is inside it and not lent.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.rx_mem.add(d.index as usize * 2048),
                bytes.len(),
            )
        };
        d.len = bytes.len() as u32;
        self.send(tcpmsg::tag::DATA, d, id, 0);
        d
    }

    /// The server dies and a new instance takes its place: the channels' epochs are bumped,
    /// the new one attaches its ends anew and owns the rx pool afresh.
    fn restart(&mut self) {
        (self.from_app, self.to_app) = take_over(self.regions);
        self.rx = BufferPool::new(view(tcpmsg::APP_RX_POOL_ID, self.rx_mem, 4)).unwrap();
    }
}

/// An endpoint (HELLO answered) with a tx pool of `tx_buffers`.
fn endpoint(tx_buffers: usize) -> (tcp::Shared<'static, Polling>, Tcp) {
    let (app_tcp, to_tcp, from_app) = region();
    let (tcp_app, to_app, from_tcp) = region();
    let (rx_mem, tx_mem) = (leak(4 * 2048), leak(tx_buffers * 2048));
    let mut t = Tcp {
        to_app,
        from_app,
        regions: [app_tcp, tcp_app],
        rx_mem,
        tx_mem,
        rx: BufferPool::new(view(tcpmsg::APP_RX_POOL_ID, rx_mem, 4)).unwrap(),
    };
    t.send(tcpmsg::tag::HELLO_REPLY, Default::default(), 77, 0);
    let ep = Endpoint::open(
        to_tcp,
        from_tcp,
        view(tcpmsg::APP_RX_POOL_ID, rx_mem, 4),
        BufferPool::new(view(tcpmsg::APP_TX_POOL_ID, tx_mem, tx_buffers)).unwrap(),
        77,
        now_ns,
    )
    .unwrap();
    let hello = t.inbox();
    assert_eq!(
        (hello[0].tag, hello[0].payload[2]),
        (tcpmsg::tag::HELLO, 77)
    );
    (ep, t)
}

const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 40000);

/// ACCEPTED for connection `id` on `port`.
fn accepted(t: &mut Tcp, id: u64, port: u16) {
    let mut m = tcpmsg::control(
        tcpmsg::tag::ACCEPTED,
        Default::default(),
        id,
        tcpmsg::endpoint(*PEER.ip(), PEER.port()),
    );
    m.payload[4] = u64::from(port);
    m.len = 40;
    t.to_app.send(&m).unwrap();
}

#[test]
fn a_stream_of_a_dead_tcp_fails_and_the_listener_carries_on() {
    use tcpmsg::tag as t;
    let (ep, mut tcp) = endpoint(2);
    tcp.send(t::LISTEN_REPLY, Default::default(), 7, 0);
    let mut l = Listener::bind_on(&ep, 7).unwrap();
    assert_eq!(tcp.inbox()[0].tag, t::LISTEN);
    // A second listener on the port in the same process: refused here (tcp would say Ok).
    assert_eq!(
        Listener::bind_on(&ep, 7).err().map(|e| e.kind()),
        Some(ErrorKind::AddrInUse)
    );

    accepted(&mut tcp, 1, 7);
    let (mut old, peer) = l.accept().unwrap();
    assert_eq!(peer, PEER);
    tcp.data(1, b"hello");
    let first = tcp.data(1, b"world");
    let mut buf = [0u8; 16];
    assert_eq!(old.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(old.write(&[1; 3000]).unwrap(), 3000);
    let sent = tcp.inbox();
    let tags: Vec<_> = sent.iter().map(|m| m.tag).collect();
    assert_eq!(tags, [t::DATA_RETURN, t::WRITE, t::WRITE]);
    assert!(old.readable().unwrap());
    {
        let e = ep.borrow();
        assert_eq!((e.tx_in_flight(), e.rx_held()), (2, 1));
    }

    // tcp dies with both tx buffers and before "world" came back; a new instance starts.
    tcp.restart();
    assert_eq!(
        old.read(&mut buf).err().map(|e| e.kind()),
        Some(ErrorKind::ConnectionAborted)
    );
    assert!(old.is_aborted());
    assert_eq!(
        old.write(b"x").err().map(|e| e.kind()),
        Some(ErrorKind::ConnectionAborted)
    );
    {
        let e = ep.borrow();
        assert_eq!(e.tcp_restarts(), 1);
        // Our tx buffers are ours again; the dead tcp's rx buffer is dropped.
        assert_eq!((e.tx_in_flight(), e.rx_held()), (0, 0));
    }
    // The new instance hears only the listener asking for its port again: nothing for the
    // old connection (no DATA_RETURN of "world", no WRITE, no CLOSE).
    let sent = tcp.inbox();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].tag, sent[0].payload[2]), (t::LISTEN, 7));
    tcp.send(t::LISTEN_REPLY, Default::default(), 7, 0);

    // The new instance numbers connections from 1 again: the listener accepts it.
    accepted(&mut tcp, 1, 7);
    let (mut new, _) = l.accept().unwrap();
    // The old stream goes away without touching the new connection of the same id.
    drop(old);
    assert!(tcp.inbox().is_empty());
    // The new instance owns its pool afresh: it lends the buffers the old one had lent us.
    let d = tcp.data(1, b"again");
    let d2 = tcp.data(1, b"!");
    assert!([d.index, d2.index].contains(&first.index));
    assert_eq!(new.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"again");
    assert_eq!(new.read(&mut buf).unwrap(), 1);
    assert_eq!(new.write(b"back").unwrap(), 4);
    let sent = tcp.inbox();
    let tags: Vec<_> = sent.iter().map(|m| (m.tag, m.descriptor().index)).collect();
    assert_eq!(
        tags[..2],
        [(t::DATA_RETURN, d.index), (t::DATA_RETURN, d2.index)]
    );
    assert_eq!((sent[2].tag, sent[2].payload[2]), (t::WRITE, 1));
    // Safety: test memory; the buffer was handed over with WRITE.
    let written = unsafe {
        core::slice::from_raw_parts(
            tcp.tx_mem.add(sent[2].descriptor().index as usize * 2048),
            4,
        )
    };
    assert_eq!(written, b"back");
    drop(new);
    let closed = tcp.inbox();
    assert_eq!((closed[0].tag, closed[0].payload[2]), (t::CLOSE, 1));
}

#[test]
fn a_listener_whose_port_was_taken_during_the_restart_says_so() {
    use tcpmsg::tag as t;
    let (ep, mut tcp) = endpoint(1);
    tcp.send(t::LISTEN_REPLY, Default::default(), 7, 0);
    let mut l = Listener::bind_on(&ep, 7).unwrap();
    tcp.restart();
    assert_eq!(l.try_accept().map(|s| s.is_none()), Ok(true));
    let sent = tcp.inbox();
    assert_eq!((sent[0].tag, sent[0].payload[2]), (t::LISTEN, 7));
    tcp.send(
        t::LISTEN_REPLY,
        Default::default(),
        7,
        tcpmsg::Status::AddrInUse as u64,
    );
    assert_eq!(
        l.accept().err().map(|e| e.kind()),
        Some(ErrorKind::AddrInUse)
    );
}

/// The test's tcp, moved to a thread of its own.
struct Remote(Tcp);

// Safety: the test memory behind the raw pointers is leaked and used by one thread at a time.
unsafe impl Send for Remote {}

#[test]
fn a_connect_sent_as_tcp_restarts_goes_to_the_new_instance() {
    use tcpmsg::tag as t;
    let (ep, mut tcp) = endpoint(1);
    tcp.restart();
    // The new instance answers the CONNECT the endpoint sends once it noticed the restart.
    let remote = Remote(tcp);
    let server = std::thread::spawn(move || {
        let mut r = remote;
        let tcp = &mut r.0;
        let start = std::time::Instant::now();
        let connect = loop {
            assert!(start.elapsed().as_secs() < 10, "no CONNECT");
            if let Some(m) = tcp.inbox().pop() {
                break m;
            }
        };
        let answer = tcpmsg::control(t::CONNECTED, Default::default(), 4, connect.payload[3]);
        // Full until the application's end has joined the new epoch.
        while tcp.to_app.send(&answer).is_err() {
            assert!(start.elapsed().as_secs() < 10, "the CONNECTED never went");
        }
        (connect, r)
    });
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 80);
    let s = Stream::connect_on(&ep, to).unwrap();
    assert_eq!(s.peer_addr(), to);
    let (connect, _tcp) = server.join().unwrap();
    assert_eq!(connect.tag, t::CONNECT);
    assert_eq!(tcpmsg::endpoint_of(connect.payload[2]), to);
    assert_eq!(ep.borrow().tcp_restarts(), 1);
}

#[test]
fn an_endpoint_set_to_poll_waits_without_sleeping() {
    use tcpmsg::tag as t;
    let (ep, mut tcp) = endpoint(2);
    tcp.send(t::LISTEN_REPLY, Default::default(), 7, 0);
    let mut l = Listener::bind_on(&ep, 7).unwrap();
    accepted(&mut tcp, 1, 7);
    let (mut s, _) = l.accept().unwrap();
    let mut buf = [0u8; 16];
    // By default a read that waits sleeps on the channel (tcp would have to notify us).
    s.set_read_timeout(Some(5_000_000));
    let before = ep.borrow().sleeps();
    let e = s.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(ep.borrow().sleeps() > before);
    // Polling for longer than the read waits: it never sleeps, and still times out.
    ep.borrow_mut().set_poll_ns(1_000_000_000);
    let before = ep.borrow().sleeps();
    let start = now_ns();
    let e = s.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(now_ns() - start >= 5_000_000);
    assert_eq!(ep.borrow().sleeps(), before);
    // Bytes already there are read at once, without a sleep.
    tcp.data(1, b"polled");
    s.set_read_timeout(None);
    assert_eq!(s.read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"polled");
    assert_eq!(ep.borrow().sleeps(), before);
}
