//! Host tests of the tcp server's logic over pools in ordinary memory: a SYN from the host is
//! read in place from the rx-pool buffer and answered with a SYN-ACK written in place into a
//! lent tx-pool buffer; and two servers wired back to back (each one's IP_SENDs copied into the
//! other's rx pool, as ip and the wire would) carry connections both ways.

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
fn buffers_go_home_to_ip_together() {
    let mut t = Tcp::new(
        view(RX_POOL_ID, memory(4)),
        view(TX_POOL_ID, memory(4)),
        1_000_000,
        42,
    );
    // Three deliveries whose packet is too short: refused, each buffer sent home at once.
    for index in 0..3 {
        let frame = PoolDescriptor {
            len: 60,
            ..whole(RX_POOL_ID, index)
        };
        t.from_ip(&tcpmsg::control(tag::DELIVER, frame, 14 | (10 << 32), 0));
    }
    let mut to_ip = Vec::new();
    t.flush_ip(|m| {
        to_ip.extend_from_slice(m);
        m.len()
    });
    assert_eq!(to_ip.len(), 1, "{to_ip:?}");
    assert_eq!(to_ip[0].tag, tag::RX_RETURNS);
    let home: Vec<u32> = netmsg::Kind::decode_all(&to_ip[0], 4, 4)
        .unwrap()
        .map(|k| k.descriptor().index)
        .collect();
    assert_eq!(home, [0, 1, 2]);
    assert_eq!(t.stats().refused, 3);
}

#[test]
fn a_syn_is_answered_in_place_and_listening_ports_are_checked() {
    let (rx, tx) = (memory(4), memory(4));
    let rx_mem = rx.as_mut_ptr();
    let tx_mem = tx.as_mut_ptr();
    let mut t = Tcp::new(view(RX_POOL_ID, rx), view(TX_POOL_ID, tx), 1_000_000, 42);
    for app in ["tcpecho", "other"] {
        t.add_app(
            app,
            BufferPool::new(view(APP_RX_POOL_ID, memory(4))).unwrap(),
            view(APP_TX_POOL_ID, memory(4)),
        );
    }
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
    t.from_app(1, &listen(7));
    t.from_app(1, &listen(0));
    t.from_app(1, &listen(70000));
    let statuses: Vec<_> = drain_app(&mut t, 0)
        .into_iter()
        .chain(drain_app(&mut t, 1))
        .map(|m| (m.tag, m.payload[2], Status::from_code(m.payload[3])))
        .collect();
    assert_eq!(
        statuses,
        [
            (tag::LISTEN_REPLY, 7, Status::Ok),
            (tag::LISTEN_REPLY, 8, Status::Ok),
            (tag::LISTEN_REPLY, 7, Status::AddrInUse),
            (tag::LISTEN_REPLY, 0, Status::Invalid),
            (tag::LISTEN_REPLY, 70000, Status::Invalid),
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
    // Half open: the application hears of it only once the handshake completes.
    assert!(drain_app(&mut t, 0).is_empty());
    assert_eq!(t.connections(), 1);
    let listed: Vec<_> = t
        .sockets()
        .iter()
        .map(|s| (s.local_port, s.state))
        .collect();
    assert!(listed.contains(&(7, "LISTEN")), "{listed:?}");
    assert!(listed.contains(&(7, "SYN-RECEIVED")), "{listed:?}");
}

fn drain_app(t: &mut Tcp<'static>, app: usize) -> Vec<Message> {
    let mut v = Vec::new();
    t.flush_app(app, |m| {
        v.extend_from_slice(m);
        m.len()
    });
    v
}

/// One side of the back-to-back pair: a server with one application, and the memory behind its
/// pools (for the test to play ip and the application).
struct Side {
    t: Tcp<'static>,
    addr: Ipv4Addr,
    rx: *mut u8,
    tx: *mut u8,
    app_rx: *mut u8,
    app_tx: BufferPool<'static>,
    /// The application's messages received so far.
    inbox: Vec<Message>,
    /// Stream bytes the application received, by connection id.
    got: std::collections::HashMap<u64, Vec<u8>>,
    /// rx-pool buffers free (the test is ip and the driver).
    free_rx: Vec<u32>,
}

const BUFFERS: usize = 64;

impl Side {
    fn new(addr: Ipv4Addr, seed: u64) -> Self {
        Self::lending(addr, seed, BUFFERS)
    }

    /// A side whose ip has lent its tcp the first `lent` of its tx-pool buffers.
    fn lending(addr: Ipv4Addr, seed: u64, lent: usize) -> Self {
        let (rx, tx, arx, atx) = (memory(BUFFERS), memory(BUFFERS), memory(32), memory(32));
        let (rxp, txp, arxp) = (rx.as_mut_ptr(), tx.as_mut_ptr(), arx.as_mut_ptr());
        let atxp = atx.as_mut_ptr();
        let app_tx = BufferPool::new(view(APP_TX_POOL_ID, atx)).unwrap();
        // Safety: the same leaked memory, viewed by tcp as the application's tx pool (tcp only
        // reads buffers the test handed over with WRITE).
        let atx_view =
            unsafe { PoolView::new(APP_TX_POOL_ID, atxp, 32 * BUFFER_SIZE as usize, BUFFER_SIZE) }
                .unwrap();
        let mut t = Tcp::new(view(RX_POOL_ID, rx), view(TX_POOL_ID, tx), 0, seed);
        t.add_app(
            "app",
            BufferPool::new(view(APP_RX_POOL_ID, arx)).unwrap(),
            atx_view,
        );
        for i in 0..lent as u32 {
            t.from_ip(&tcpmsg::control(
                tag::TX_LEND,
                whole(TX_POOL_ID, i),
                u64::from(u32::from(addr)),
                0,
            ));
        }
        Self {
            t,
            addr,
            rx: rxp,
            tx: txp,
            app_rx: arxp,
            app_tx,
            inbox: Vec::new(),
            got: Default::default(),
            free_rx: (0..BUFFERS as u32).collect(),
        }
    }

    fn app(&mut self, m: Message) {
        self.t.from_app(0, &m);
    }

    /// ip lends tx-pool buffer `d`.
    fn lend(&mut self, d: PoolDescriptor) {
        let our = u64::from(u32::from(self.addr));
        self.t.from_ip(&tcpmsg::control(tag::TX_LEND, d, our, 0));
    }

    /// The application writes `bytes` on connection `id`.
    fn write(&mut self, id: u64, bytes: &[u8]) {
        for chunk in bytes.chunks(BUFFER_SIZE as usize) {
            let mut d = self.app_tx.alloc().expect("app tx buffer");
            d.len = self.app_tx.buffer(d).unwrap().copy_from(chunk) as u32;
            self.app(tcpmsg::control(tag::WRITE, d, id, 0));
        }
    }

    /// Plays the application: collects messages, reads DATA (and returns it), frees WRITE_DONEs.
    fn serve_app(&mut self) {
        for m in drain_app(&mut self.t, 0) {
            match m.tag {
                tag::DATA => {
                    let d = m.descriptor();
                    // Safety: tcp handed the buffer over with DATA; test memory of 32 buffers.
                    let b = unsafe {
                        core::slice::from_raw_parts(
                            self.app_rx.add(d.index as usize * BUFFER_SIZE as usize),
                            d.len as usize,
                        )
                    };
                    self.got
                        .entry(m.payload[2])
                        .or_default()
                        .extend_from_slice(b);
                    self.app(tcpmsg::control(tag::DATA_RETURN, d, 0, 0));
                }
                tag::WRITE_DONE => {
                    assert_eq!(Status::from_code(m.payload[3]), Status::Ok, "{m:?}");
                    self.app_tx.free(m.descriptor()).unwrap();
                }
                _ => self.inbox.push(m),
            }
        }
    }

    fn find(&self, tag: u32) -> Vec<Message> {
        self.inbox
            .iter()
            .filter(|m| m.tag == tag)
            .copied()
            .collect()
    }
}

/// Moves `from`'s packets to `to` (ip's part, with the wire in between), `rounds` times.
fn wire(a: &mut Side, b: &mut Side, now: &mut u64, rounds: usize) {
    for _ in 0..rounds {
        *now += 100_000;
        for turn in 0..2 {
            let (from, to) = if turn == 0 {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            from.t.poll(*now);
            let mut out = Vec::new();
            from.t.flush_ip(|m| {
                out.extend_from_slice(m);
                m.len()
            });
            for m in out {
                let d = m.descriptor();
                match m.tag {
                    tag::RX_RETURN => from.free_rx.push(d.index),
                    tag::RX_RETURNS => from.free_rx.extend(
                        netmsg::Kind::decode_all(&m, 1 << 16, 1 << 16)
                            .expect("tcp sends well-formed returns")
                            .map(|k| k.descriptor().index),
                    ),
                    tag::IP_SEND => {
                        // Safety: the sender handed this lent tx buffer back with IP_SEND.
                        let packet = unsafe {
                            core::slice::from_raw_parts(
                                from.tx.add(d.index as usize * 2048 + d.offset as usize),
                                d.len as usize,
                            )
                        };
                        let slot = to.free_rx.pop().expect("receiver's rx buffers");
                        // Safety: a free rx buffer of the receiver's test memory.
                        unsafe {
                            let dst = core::slice::from_raw_parts_mut(
                                to.rx.add(slot as usize * 2048),
                                2048,
                            );
                            dst[14..14 + packet.len()].copy_from_slice(packet);
                        }
                        let frame = PoolDescriptor {
                            pool: RX_POOL_ID,
                            index: slot,
                            offset: 0,
                            len: 14 + d.len,
                        };
                        let delivery = tcpmsg::Delivery {
                            frame,
                            ip_offset: 14,
                            ip_len: d.len,
                        };
                        to.t.from_ip(&delivery.message());
                        // ip lends the buffer again once the driver sent it.
                        let again = PoolDescriptor {
                            offset: 0,
                            len: BUFFER_SIZE,
                            ..d
                        };
                        let our = u64::from(u32::from(from.addr));
                        from.t
                            .from_ip(&tcpmsg::control(tag::TX_LEND, again, our, 0));
                    }
                    other => panic!("unexpected {other:#x} to ip"),
                }
            }
            from.serve_app();
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn two_servers_back_to_back_carry_several_connections_both_ways() {
    let (mut a, mut b) = (Side::new(US, 1), Side::new(HOST, 2));
    let mut now = 0;
    b.app(tcpmsg::control(tag::LISTEN, Default::default(), 7, 0));
    wire(&mut a, &mut b, &mut now, 1);
    assert_eq!(b.find(tag::LISTEN_REPLY)[0].payload[3], Status::Ok as u64);

    // Two connections from a to b:7, and one to a port nobody listens on.
    let to7 = tcpmsg::endpoint(HOST, 7);
    a.app(tcpmsg::control(tag::CONNECT, Default::default(), to7, 100));
    a.app(tcpmsg::control(tag::CONNECT, Default::default(), to7, 101));
    let to9 = tcpmsg::endpoint(HOST, 9);
    a.app(tcpmsg::control(tag::CONNECT, Default::default(), to9, 102));
    wire(&mut a, &mut b, &mut now, 10);
    let connected = a.find(tag::CONNECTED);
    let mut tokens: Vec<_> = connected.iter().map(|m| m.payload[3]).collect();
    tokens.sort();
    assert_eq!(tokens, [100, 101]);
    let failed = a.find(tag::CONNECT_FAILED);
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].payload[2], failed[0].payload[3]),
        (102, Status::Refused as u64)
    );
    let accepted = b.find(tag::ACCEPTED);
    assert_eq!(accepted.len(), 2);
    for m in &accepted {
        let peer = tcpmsg::endpoint_of(m.payload[3]);
        assert_eq!(*peer.ip(), US);
        assert!(peer.port() >= EPHEMERAL_FIRST);
    }

    // 100 KB each way on the first, 30 KB from a on the second, interleaved.
    let (a1, a2) = (connected[0].payload[2], connected[1].payload[2]);
    let (b1, b2) = (accepted[0].payload[2], accepted[1].payload[2]);
    let (x, y, z) = (pattern(100_000, 1), pattern(100_000, 2), pattern(30_000, 3));
    for (i, (cx, cy)) in x.chunks(16 * 1024).zip(y.chunks(16 * 1024)).enumerate() {
        a.write(a1, cx);
        b.write(b1, cy);
        if let Some(cz) = z.chunks(16 * 1024).nth(i) {
            a.write(a2, cz);
        }
        wire(&mut a, &mut b, &mut now, 20);
    }
    wire(&mut a, &mut b, &mut now, 50);
    assert_eq!(b.got.get(&b1).map(Vec::len), Some(x.len()));
    assert!(b.got[&b1] == x, "stream a→b on connection 1 differs");
    assert!(a.got[&a1] == y, "stream b→a on connection 1 differs");
    assert!(b.got[&b2] == z, "stream a→b on connection 2 differs");

    // a shuts its side of connection 2: b reads the end of the stream, closes: both see CLOSED.
    a.app(tcpmsg::control(tag::SHUTDOWN, Default::default(), a2, 0));
    wire(&mut a, &mut b, &mut now, 10);
    assert!(b.find(tag::EOF).iter().any(|m| m.payload[2] == b2));
    b.app(tcpmsg::control(tag::CLOSE, Default::default(), b2, 0));
    wire(&mut a, &mut b, &mut now, 10);
    assert!(a.find(tag::CLOSED).iter().any(|m| m.payload[2] == a2));
    assert!(b.find(tag::CLOSED).iter().any(|m| m.payload[2] == b2));

    // A new instance of a's application says HELLO: its last connection is reset, and b hears.
    a.app(tcpmsg::control(tag::HELLO, Default::default(), 5, 0));
    wire(&mut a, &mut b, &mut now, 10);
    assert_eq!(a.find(tag::HELLO_REPLY)[0].payload[2], 5);
    assert_eq!(a.t.connections(), 0);
    assert!(b.find(tag::CLOSED).iter().any(|m| m.payload[2] == b1));
    assert_eq!(b.t.connections(), 0);
    // b still listens, and a write to a closed connection is refused, not lost.
    let listed: Vec<_> =
        b.t.sockets()
            .iter()
            .map(|s| (s.local_port, s.state))
            .collect();
    assert_eq!(listed, [(7, "LISTEN")]);
    b.app(tcpmsg::control(tag::UNLISTEN, Default::default(), 7, 0));
    assert!(b.t.sockets().is_empty());
    assert_eq!(a.t.stats().refused + b.t.stats().refused, 0);
}

/// A zeroed tcp-state of `words` words (a page is 1024), as the kernel hands it over first.
fn region(words: usize) -> &'static [AtomicU32] {
    Box::leak((0..words).map(|_| AtomicU32::new(0)).collect())
}

fn word(r: &[AtomicU32], i: usize) -> u32 {
    r[i].load(core::sync::atomic::Ordering::Relaxed)
}

fn set(r: &[AtomicU32], i: usize, w: u32) {
    r[i].store(w, core::sync::atomic::Ordering::Relaxed);
}

#[test]
fn listening_ports_are_encoded_one_checked_word_each() {
    for (app, port) in [(0, 1), (0, 7), (3, 2323), (15, 65535), (255, 80)] {
        let w = state::encode(app, port).unwrap();
        assert_ne!(w, 0);
        assert_eq!(state::decode(w), Some((app, port)));
        // Any single flipped bit is caught (the check byte covers application and port).
        for bit in 0..32 {
            assert_ne!(
                state::decode(w ^ 1 << bit),
                Some((app, port)),
                "{w:#x} bit {bit}"
            );
        }
    }
    assert_eq!(state::encode(0, 0), None);
    assert_eq!(state::encode(256, 7), None);
    assert_eq!(state::decode(0), None);
    assert_eq!(state::decode(7), None);
}

#[test]
fn the_state_starts_empty_records_and_forgets_ports() {
    let r = region(1024);
    let (k, restored) = state::Listens::open(r, 2).unwrap();
    assert_eq!(
        restored,
        state::Restored {
            listens: vec![],
            bad: 0,
            fresh: true
        }
    );
    assert_eq!([word(r, 0), word(r, 1)], state::MAGIC);
    assert_eq!(word(r, 2) as usize, state::MAX_SLOTS);
    assert!(k.add(0, 7) && k.add(1, 8) && k.add(0, 9) && k.add(0, 7));
    assert_eq!(k.entries(), [(0, 7), (1, 8), (0, 9)]);
    k.remove(0, 7);
    assert!(k.add(1, 10));
    // The freed slot is taken again.
    assert_eq!(k.entries(), [(1, 10), (1, 8), (0, 9)]);
    k.remove_app(1);
    assert_eq!(k.entries(), [(0, 9)]);
    // The next instance finds what is left.
    let (_, again) = state::Listens::open(r, 2).unwrap();
    assert_eq!(
        (again.listens, again.bad, again.fresh),
        (vec![(0, 9)], 0, false)
    );
    // Full: refused, not overwritten.
    let small = region(state::HEADER_WORDS + 2);
    let (k, _) = state::Listens::open(small, 1).unwrap();
    assert!(k.add(0, 1) && k.add(0, 2) && !k.add(0, 3));
    assert_eq!(k.entries(), [(0, 1), (0, 2)]);
    assert!(state::Listens::open(region(state::HEADER_WORDS), 1).is_none());
}

#[test]
fn a_damaged_state_is_dropped_entry_by_entry_never_trusted() {
    let r = region(1024);
    let (k, _) = state::Listens::open(r, 3).unwrap();
    for (app, port) in [(0, 7), (1, 8), (2, 9), (0, 10)] {
        assert!(k.add(app, port));
    }
    let slot = state::HEADER_WORDS;
    // A flipped bit, another application's copy of a port, an application tcp no longer
    // serves (started with fewer), garbage, port 0 with a right-looking check byte.
    set(r, slot + 1, word(r, slot + 1) ^ 0x100);
    set(r, slot + 5, state::encode(1, 7).unwrap());
    set(r, slot + 6, 0xdead_beef);
    set(r, slot + 7, 0x5a << 24);
    let (k, restored) = state::Listens::open(r, 2).unwrap();
    assert_eq!(restored.listens, [(0, 7), (0, 10)]);
    assert_eq!((restored.bad, restored.fresh), (5, false));
    // Bad words are cleared, so the next instance counts them no more.
    assert_eq!(k.entries(), [(0, 7), (0, 10)]);
    assert_eq!(state::Listens::open(r, 2).unwrap().1.bad, 0);

    // A bad header (magic, slot count beyond the region, reserved word): start empty.
    for (i, w) in [(0, 0x1234), (2, 100_000), (2, 0), (3, 1)] {
        let r = region(64);
        let (k, _) = state::Listens::open(r, 1).unwrap();
        assert!(k.add(0, 7));
        set(r, i, w);
        let (k, restored) = state::Listens::open(r, 1).unwrap();
        assert!(
            restored.fresh && restored.listens.is_empty(),
            "{i}: {restored:?}"
        );
        assert!(restored.bad >= 1, "{i}");
        assert!(k.entries().is_empty());
        assert_eq!(word(r, 2) as usize, 64 - state::HEADER_WORDS);
    }
}

#[test]
fn a_restarted_server_listens_again_and_resets_the_old_connections() {
    let (mut a, mut b) = (Side::new(US, 1), Side::new(HOST, 2));
    let kept = region(1024);
    assert!(b.t.keep_listens(kept).unwrap().fresh);
    let mut now = 0;
    b.app(tcpmsg::control(tag::LISTEN, Default::default(), 7, 0));
    b.app(tcpmsg::control(tag::LISTEN, Default::default(), 8, 0));
    b.app(tcpmsg::control(tag::UNLISTEN, Default::default(), 8, 0));
    let to7 = tcpmsg::endpoint(HOST, 7);
    a.app(tcpmsg::control(tag::CONNECT, Default::default(), to7, 1));
    wire(&mut a, &mut b, &mut now, 10);
    let old = a.find(tag::CONNECTED)[0].payload[2];
    a.write(old, b"before");
    wire(&mut a, &mut b, &mut now, 10);
    assert_eq!(
        b.got.values().next().map(Vec::as_slice),
        Some(&b"before"[..])
    );

    // b's server dies; its next instance starts over the same state.
    let mut b = Side::new(HOST, 3);
    let r = b.t.keep_listens(kept).unwrap();
    assert_eq!((r.listens, r.bad, r.fresh), (vec![(0, 7)], 0, false));
    let listed: Vec<_> =
        b.t.sockets()
            .iter()
            .map(|s| (s.local_port, s.state))
            .collect();
    assert_eq!(listed, [(7, "LISTEN")]);
    // The application, unaware, listens again: that is fine.
    b.app(tcpmsg::control(tag::LISTEN, Default::default(), 7, 0));
    // The old connection's next segment is answered with RST: a hears CLOSED.
    a.write(old, b"after");
    wire(&mut a, &mut b, &mut now, 10);
    assert_eq!(b.find(tag::LISTEN_REPLY)[0].payload[3], Status::Ok as u64);
    assert!(a.find(tag::CLOSED).iter().any(|m| m.payload[2] == old));
    // A new connection to the same port is accepted by the new instance.
    a.app(tcpmsg::control(tag::CONNECT, Default::default(), to7, 2));
    wire(&mut a, &mut b, &mut now, 10);
    let new: Vec<_> = a
        .find(tag::CONNECTED)
        .into_iter()
        .filter(|m| m.payload[3] == 2)
        .collect();
    assert_eq!(new.len(), 1);
    a.write(new[0].payload[2], b"again");
    wire(&mut a, &mut b, &mut now, 10);
    let accepted = b.find(tag::ACCEPTED);
    assert_eq!(accepted.len(), 1);
    assert_eq!(b.got[&accepted[0].payload[2]], b"again");
    // A new instance of the application forgets the port, in the state too.
    b.app(tcpmsg::control(tag::HELLO, Default::default(), 9, 0));
    let (_, r) = state::Listens::open(kept, 1).unwrap();
    assert!(r.listens.is_empty());
}

/// b listens on port 7 and a connects to it: a's connection id.
fn connect(a: &mut Side, b: &mut Side, now: &mut u64) -> u64 {
    b.app(tcpmsg::control(tag::LISTEN, Default::default(), 7, 0));
    let to7 = tcpmsg::endpoint(HOST, 7);
    a.app(tcpmsg::control(tag::CONNECT, Default::default(), to7, 1));
    wire(a, b, now, 10);
    a.find(tag::CONNECTED)[0].payload[2]
}

/// a sends 30 KB that is lost on the way out; `lose` plays what ip does then, given the lost
/// segments' buffers. Then a goes on with 30 KB more, which gets through: b acknowledges up to
/// the hole, over and over, and smoltcp's fast retransmit resends one segment at most. Returns
/// a and b 10 ms (100 rounds of 100 µs) later.
fn lose_a_run(lose: impl FnOnce(&mut Side, Vec<PoolDescriptor>)) -> (Side, Side) {
    let (mut a, mut b) = (Side::new(US, 1), Side::new(HOST, 2));
    let mut now = 0;
    let id = connect(&mut a, &mut b, &mut now);
    let (x, y) = (pattern(30_000, 4), pattern(30_000, 5));
    a.write(id, &x);
    let mut lost = Vec::new();
    for _ in 0..2 {
        now += 100_000;
        a.t.poll(now);
        a.t.flush_ip(|m| {
            let sent = m.iter().filter(|m| m.tag == tag::IP_SEND);
            lost.extend(sent.map(|m| whole(TX_POOL_ID, m.descriptor().index)));
            m.len()
        });
    }
    assert!(lost.len() >= 20, "only {} segments went to ip", lost.len());
    lose(&mut a, lost);
    a.write(id, &y);
    wire(&mut a, &mut b, &mut now, 100);
    // All of it is there: a did not wait for its retransmission timeout (1 s at least).
    let got = b.got.values().next().cloned().unwrap_or_default();
    assert_eq!(
        got.len(),
        x.len() + y.len(),
        "b has only {} bytes",
        got.len()
    );
    assert!(
        got[..x.len()] == x[..] && got[x.len()..] == y[..],
        "the stream differs"
    );
    assert_eq!(a.t.stats().sent_again, 1);
    (a, b)
}

#[test]
fn segments_lost_with_ip_are_sent_again_at_once_not_after_the_retransmission_timeout() {
    // ip dies with them (in its queues, or unread in the channel); the new one lends afresh.
    let (a, _) = lose_a_run(|a, _| {
        a.t.ip_restarted();
        for i in 0..BUFFERS as u32 {
            a.lend(whole(TX_POOL_ID, i));
        }
    });
    assert_eq!(a.t.stats().ip_restarts, 1);
}

#[test]
fn segments_lost_with_pf_are_sent_again_at_once_when_ip_says_so() {
    // pf dies with them; ip tells tcp (PATH_LOST), frees their buffers after a while and lends
    // them again.
    let (a, _) = lose_a_run(|a, lost| {
        a.t.from_ip(&tcpmsg::control(tag::PATH_LOST, Default::default(), 0, 0));
        lost.into_iter().for_each(|d| a.lend(d));
    });
    assert_eq!((a.t.stats().ip_restarts, a.t.stats().refused), (0, 0));
}

#[test]
fn one_poll_sends_as_many_segments_as_the_lent_buffers_allow() {
    let (mut a, mut b) = (Side::lending(US, 1, 40), Side::new(HOST, 2));
    let mut now = 0;
    let id = connect(&mut a, &mut b, &mut now);
    let sent = |a: &mut Side, now: u64| {
        a.t.poll(now);
        let mut n = Vec::new();
        a.t.flush_ip(|m| {
            n.extend(
                m.iter()
                    .filter(|m| m.tag == tag::IP_SEND)
                    .map(|m| m.descriptor()),
            );
            m.len()
        });
        n
    };
    // wire() lent back each buffer a used, so 40 are lent. The writes reach the send buffer in
    // one poll and go out in the next: one poll sends a segment per lent buffer (smoltcp sends
    // one per socket in a pass over them), and nothing more without a buffer.
    a.write(id, &pattern(44 * 1460, 6));
    let first = [sent(&mut a, now + 1), sent(&mut a, now + 2)].concat();
    assert_eq!(first.len(), 40);
    assert_eq!(a.t.stats().tx_no_buffer, 0);
    assert!(sent(&mut a, now + 3).is_empty());
    // ip lends them again: the other 4 go out in one poll.
    first
        .iter()
        .for_each(|&d| a.lend(whole(TX_POOL_ID, d.index)));
    assert_eq!(sent(&mut a, now + 4).len(), 4);
    assert_eq!(a.t.stats().tx_no_buffer, 0);
}

#[test]
fn a_flood_of_path_lost_makes_connections_send_again_once_per_period() {
    let (mut a, mut b) = (Side::new(US, 1), Side::new(HOST, 2));
    let mut now = 0;
    connect(&mut a, &mut b, &mut now);
    let lost = tcpmsg::control(tag::PATH_LOST, Default::default(), 0, 0);
    let stats = |a: &Side| (a.t.stats().sent_again, a.t.stats().sent_again_skipped);
    // Three before a poll are one loss: one jump of the clock, two reports dropped.
    (0..3).for_each(|_| a.t.from_ip(&lost));
    assert_eq!(a.t.poll_at(now), Some(now), "acted on at once");
    a.t.poll(now);
    assert_eq!(stats(&a), (1, 2));
    assert_eq!(a.t.ahead_ns, 1_000_000_000);
    // Another within the period is dropped; one after it is acted on.
    a.t.from_ip(&lost);
    a.t.poll(now + SEND_AGAIN_EVERY_NS - 1);
    assert_eq!(stats(&a), (1, 3));
    a.t.from_ip(&lost);
    a.t.poll(now + SEND_AGAIN_EVERY_NS);
    assert_eq!(stats(&a), (2, 3));
    assert_eq!(a.t.ahead_ns, 2_000_000_000);
    // A restart of ip is a loss like the others.
    a.t.ip_restarted();
    a.t.poll(now + SEND_AGAIN_EVERY_NS + 1);
    assert_eq!(stats(&a), (2, 4));
    assert_eq!(a.t.stats().refused, 0);
}
