//! The forwarding core over real channels and pools in heap memory, with a test standing in for
//! e1000 and for ip at the far end of each channel.

use std::alloc::{Layout, alloc_zeroed};
use std::vec::Vec;

use libchan::{Consumer, Message, Polling, PoolDescriptor, PoolView, Producer};
use netmsg::{BUFFER_SIZE, Kind, RX_POOL_ID, Refused, TX_POOL_ID, tag};
use pf::{RuleSet, parse_rule};

use super::*;

/// Buffers in each test pool (unless a test asks for more).
const BUFFERS: u32 = 16;

/// Zeroed, page-aligned memory that lives as long as the test process.
fn memory(len: usize) -> *mut u8 {
    let layout = Layout::from_size_align(len, 4096).unwrap();
    // Safety: a non-zero size; the memory is leaked, so it stays valid for 'static.
    let ptr = unsafe { alloc_zeroed(layout) };
    assert!(!ptr.is_null());
    ptr
}

/// A channel region of `capacity` slots.
fn channel(capacity: u32) -> (*mut u8, usize) {
    let len = libchan::region_size(capacity).unwrap();
    let ptr = memory(len);
    // Safety: fresh, page-aligned, `len` bytes, never freed.
    unsafe { libchan::init(ptr, len, capacity).unwrap() };
    (ptr, len)
}

fn producer((ptr, len): (*mut u8, usize)) -> Producer<'static, Polling> {
    // Safety: a region made by `channel`, valid for 'static; one producer per region.
    unsafe { Producer::attach(ptr, len, Polling).unwrap() }
}

fn consumer((ptr, len): (*mut u8, usize)) -> Consumer<'static, Polling> {
    // Safety: as in `producer`; one consumer per region.
    unsafe { Consumer::attach(ptr, len, Polling).unwrap() }
}

/// pf's path with e1000 and ip played by the test.
struct Rig {
    path: Path<'static, Polling>,
    rules: RuleSet,
    events: Vec<Event>,
    /// e1000's ends: it produces into e1000-pf and consumes pf-e1000.
    driver_tx: Producer<'static, Polling>,
    driver_rx: Consumer<'static, Polling>,
    /// ip's ends.
    ip_tx: Producer<'static, Polling>,
    ip_rx: Consumer<'static, Polling>,
    rx_mem: *mut u8,
    tx_mem: *mut u8,
    /// The e1000-pf region, for epoch bumps.
    driver_to_pf: (*mut u8, usize),
    /// The ip-pf region, for epoch bumps.
    ip_to_pf: (*mut u8, usize),
    /// Buffers in each pool.
    buffers: u32,
    /// Indices of the TX_DONEs ip got marked not sent (netmsg::not_sent), oldest first.
    not_sent: Vec<u32>,
}

impl Rig {
    /// Rings of `[e1000-pf, pf-e1000, ip-pf, pf-ip]` slots, pools of [`BUFFERS`].
    fn new(slots: [u32; 4]) -> Rig {
        Rig::with_buffers(slots, BUFFERS)
    }

    /// Rings of `[e1000-pf, pf-e1000, ip-pf, pf-ip]` slots, pools of `buffers` buffers.
    fn with_buffers(slots: [u32; 4], buffers: u32) -> Rig {
        let [d2p, p2d, i2p, p2i] = slots.map(channel);
        let pool_len = (buffers * BUFFER_SIZE) as usize;
        let rx_mem = memory(pool_len);
        let tx_mem = memory(pool_len);
        // Safety: the pools are leaked heap memory, valid for 'static.
        let (rx, tx) = unsafe {
            (
                PoolView::new(RX_POOL_ID, rx_mem, pool_len, BUFFER_SIZE).unwrap(),
                PoolView::new(TX_POOL_ID, tx_mem, pool_len, BUFFER_SIZE).unwrap(),
            )
        };
        Rig {
            path: Path::new(
                rx,
                tx,
                consumer(d2p),
                producer(p2d),
                consumer(i2p),
                producer(p2i),
            ),
            rules: RuleSet::new(),
            events: Vec::new(),
            driver_tx: producer(d2p),
            driver_rx: consumer(p2d),
            ip_tx: producer(i2p),
            ip_rx: consumer(p2i),
            rx_mem,
            tx_mem,
            driver_to_pf: d2p,
            ip_to_pf: i2p,
            buffers,
            not_sent: Vec::new(),
        }
    }

    fn with_rules(rules: &[&str]) -> Rig {
        let mut rig = Rig::new([64; 4]);
        for r in rules {
            rig.rules.push(parse_rule(r).unwrap()).unwrap();
        }
        rig
    }

    /// Writes `bytes` at the start of buffer `index` of pool `pool`; its descriptor.
    fn put(&mut self, pool: u16, index: u32, bytes: &[u8]) -> PoolDescriptor {
        let base = if pool == RX_POOL_ID {
            self.rx_mem
        } else {
            self.tx_mem
        };
        assert!(index < self.buffers && bytes.len() <= BUFFER_SIZE as usize);
        // Safety: in bounds of the leaked pool (checked above); nothing else writes it now.
        unsafe {
            let at = base.add((index * BUFFER_SIZE) as usize);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
        }
        PoolDescriptor {
            pool,
            index,
            offset: 0,
            len: bytes.len() as u32,
        }
    }

    /// e1000 sends `m`.
    fn driver_sends(&mut self, m: Message) {
        self.driver_tx.send(&m).unwrap();
    }

    /// ip sends `m`.
    fn ip_sends(&mut self, m: Message) {
        self.ip_tx.send(&m).unwrap();
    }

    fn round(&mut self) -> Round {
        let events = &mut self.events;
        self.path.round(&mut self.rules, &mut |e| events.push(e))
    }

    /// What e1000 received, decoded (pf only ever sends valid messages).
    fn driver_got(&mut self) -> Vec<Kind> {
        let mut not_sent = Vec::new();
        let got = drain(&mut self.driver_rx, self.buffers, &mut not_sent);
        assert!(not_sent.is_empty(), "a not-sent mark goes to ip only");
        got
    }

    /// What ip received.
    fn ip_got(&mut self) -> Vec<Kind> {
        drain(&mut self.ip_rx, self.buffers, &mut self.not_sent)
    }
}

fn drain(c: &mut Consumer<'static, Polling>, buffers: u32, not_sent: &mut Vec<u32>) -> Vec<Kind> {
    let mut out = Vec::new();
    while let Some(m) = c.try_recv().unwrap() {
        let kinds = Kind::decode_all(&m, buffers, buffers).unwrap();
        if kinds.is_several() {
            // Buffers going home together: indices only, checked by `decode_all`.
            out.extend(kinds);
            continue;
        }
        let k = Kind::decode(&m, buffers, buffers).unwrap();
        // pf builds every message itself: the payload holds the descriptor and nothing else,
        // but for the mark of a TX_DONE whose frame was never sent.
        if netmsg::is_not_sent(&m) {
            assert_eq!(m, netmsg::not_sent(k.descriptor()));
            not_sent.push(k.descriptor().index);
        } else {
            assert_eq!(m, k.message());
        }
        out.push(k);
    }
    out
}

const HOST: [u8; 4] = [10, 0, 2, 2];
const GUEST: [u8; 4] = [10, 0, 2, 15];

/// An Ethernet II frame.
fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 10, 0, 2, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (20-byte header, checksum left zero: pf does not check it) in a frame.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    eth(0x0800, &p)
}

fn icmp_echo(src: [u8; 4], dst: [u8; 4], reply: bool) -> Vec<u8> {
    ipv4(
        1,
        src,
        dst,
        &[if reply { 0 } else { 8 }, 0, 0, 0, 0, 1, 0, 1],
    )
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&[0, 8, 0, 0]);
    ipv4(17, src, dst, &l4)
}

fn arp() -> Vec<u8> {
    eth(0x0806, &[0; 28])
}

#[test]
fn with_no_rules_everything_passes() {
    let mut rig = Rig::new([64; 4]);
    let a = rig.put(RX_POOL_ID, 0, &arp());
    let p = rig.put(RX_POOL_ID, 1, &icmp_echo(HOST, GUEST, true));
    rig.driver_sends(Kind::RxFrame(a).message());
    rig.driver_sends(Kind::RxFrame(p).message());
    let t = rig.put(TX_POOL_ID, 3, &icmp_echo(GUEST, HOST, false));
    rig.ip_sends(Kind::TxFrame(t).message());
    let r = rig.round();
    assert_eq!(r, Round { read: 3, sent: 3 });
    assert_eq!(rig.ip_got(), [Kind::RxFrame(a), Kind::RxFrame(p)]);
    assert_eq!(rig.driver_got(), [Kind::TxFrame(t)]);
    let c = rig.path.counters();
    assert_eq!((c.rx_in, c.rx_out, c.rx_denied), (2, 2, 0));
    assert_eq!((c.tx_in, c.tx_out, c.tx_denied), (1, 1, 0));
    assert_eq!(c.not_ipv4, 1, "the ARP frame is not filtered");
    let f = rig.rules.counters();
    assert_eq!((f.allowed, f.unmatched, f.denied), (2, 2, 0));
    assert!(rig.events.is_empty());
    assert!(rig.round().is_idle());
}

#[test]
fn a_denied_frame_goes_home() {
    let mut rig = Rig::with_rules(&["deny in icmp from any to any"]);
    let a = rig.put(RX_POOL_ID, 0, &arp());
    let p = rig.put(RX_POOL_ID, 1, &icmp_echo(HOST, GUEST, true));
    let u = rig.put(RX_POOL_ID, 2, &udp(HOST, 53, GUEST, 4000));
    for d in [a, p, u] {
        rig.driver_sends(Kind::RxFrame(d).message());
    }
    // The rule is for `in`: an echo request going out passes.
    let t = rig.put(TX_POOL_ID, 0, &icmp_echo(GUEST, HOST, false));
    rig.ip_sends(Kind::TxFrame(t).message());
    rig.round();
    assert_eq!(rig.ip_got(), [Kind::RxFrame(a), Kind::RxFrame(u)]);
    assert_eq!(rig.driver_got(), [Kind::RxReturn(p), Kind::TxFrame(t)]);
    let c = rig.path.counters();
    assert_eq!((c.rx_in, c.rx_out, c.rx_denied, c.tx_out), (3, 2, 1, 1));
    assert_eq!(rig.rules.hits(), [1]);
    assert_eq!(rig.rules.counters().denied, 1);
}

#[test]
fn outgoing_frames_meet_the_out_rules() {
    let mut rig = Rig::with_rules(&[
        "deny out udp from any to any port 53",
        "deny in udp from any to any",
    ]);
    let dns = rig.put(TX_POOL_ID, 0, &udp(GUEST, 4000, HOST, 53));
    let other = rig.put(TX_POOL_ID, 1, &udp(GUEST, 4000, HOST, 54));
    rig.ip_sends(Kind::TxFrame(dns).message());
    rig.ip_sends(Kind::TxFrame(other).message());
    rig.round();
    assert_eq!(rig.driver_got(), [Kind::TxFrame(other)]);
    assert_eq!(
        rig.ip_got(),
        [Kind::TxDone(dns)],
        "the denied frame's buffer goes home"
    );
    let c = rig.path.counters();
    assert_eq!((c.tx_in, c.tx_out, c.tx_denied), (2, 1, 1));
    assert_eq!(rig.rules.hits(), [1, 0]);
}

#[test]
fn returned_buffers_pass_through_rebuilt() {
    let mut rig = Rig::with_rules(&["deny from any to any"]);
    let d = PoolDescriptor {
        pool: RX_POOL_ID,
        index: 5,
        offset: 0,
        len: 0,
    };
    // Junk in the payload past the descriptor does not travel on.
    let mut m = Kind::RxReturn(d).message();
    m.payload[4] = 0xdead_beef;
    m.len = 56;
    rig.ip_sends(m);
    let t = PoolDescriptor {
        pool: TX_POOL_ID,
        index: 2,
        offset: 0,
        len: 60,
    };
    rig.driver_sends(Kind::TxDone(t).message());
    rig.round();
    assert_eq!(rig.driver_got(), [Kind::RxReturn(d)]);
    assert_eq!(rig.ip_got(), [Kind::TxDone(t)]);
    let c = rig.path.counters();
    assert_eq!((c.rx_returned, c.tx_done), (1, 1));
    assert_eq!(
        rig.rules.counters(),
        pf::Counters::default(),
        "returns are not filtered"
    );
}

#[test]
fn unreadable_ipv4_is_denied() {
    let mut rig = Rig::new([64; 4]);
    // Says 100 bytes, has 28.
    let mut bad = icmp_echo(HOST, GUEST, false);
    bad[16..18].copy_from_slice(&100u16.to_be_bytes());
    let d = rig.put(RX_POOL_ID, 0, &bad);
    rig.driver_sends(Kind::RxFrame(d).message());
    rig.round();
    assert_eq!(rig.driver_got(), [Kind::RxReturn(d)]);
    assert!(rig.ip_got().is_empty());
    assert_eq!(rig.rules.counters().malformed, 1);
}

#[test]
fn refused_messages_are_counted_and_go_nowhere() {
    let mut rig = Rig::new([64; 4]);
    let rx = |index, len| PoolDescriptor {
        pool: RX_POOL_ID,
        index,
        offset: 0,
        len,
    };
    let tx = |index, len| PoolDescriptor {
        pool: TX_POOL_ID,
        index,
        offset: 0,
        len,
    };
    // From e1000: an unknown tag, the wrong pool, an index past the pool, an empty frame,
    // a range past the buffer, and the two kinds only ip sends.
    rig.driver_sends(Message::new(0x1234));
    rig.driver_sends(Message::with_descriptor(tag::RX_FRAME, tx(0, 60)));
    rig.driver_sends(Kind::RxFrame(rx(BUFFERS, 60)).message());
    rig.driver_sends(Kind::RxFrame(rx(0, 0)).message());
    rig.driver_sends(Message::with_descriptor(
        tag::RX_FRAME,
        PoolDescriptor {
            offset: 2000,
            ..rx(0, 60)
        },
    ));
    rig.driver_sends(Kind::RxReturn(rx(0, 0)).message());
    rig.driver_sends(Kind::TxFrame(tx(0, 60)).message());
    // From ip: the two kinds only e1000 sends.
    rig.ip_sends(Kind::RxFrame(rx(1, 60)).message());
    rig.ip_sends(Kind::TxDone(tx(1, 0)).message());
    let r = rig.round();
    assert_eq!(r, Round { read: 9, sent: 0 });
    assert!(rig.driver_got().is_empty() && rig.ip_got().is_empty());
    let c = rig.path.counters();
    assert_eq!(c.refused.unknown_tag, 1);
    assert_eq!(c.refused.wrong_pool, 1);
    assert_eq!(c.refused.bad_index, 1);
    assert_eq!(c.refused.bad_range, 2);
    assert_eq!(c.misdirected, 4);
    assert_eq!(c.refused_total(), 9);
    assert_eq!((c.rx_in, c.tx_in), (0, 0));
    assert_eq!(rig.events.len(), 9);
    assert_eq!(
        rig.events[0],
        Event::Refused {
            from: Peer::Driver,
            tag: 0x1234,
            why: Refusal::Malformed(Refused::UnknownTag(0x1234))
        }
    );
    assert_eq!(
        rig.events[8],
        Event::Refused {
            from: Peer::Ip,
            tag: tag::TX_DONE,
            why: Refusal::Misdirected
        }
    );
}

#[test]
fn a_round_reads_at_most_a_batch_per_input() {
    let mut rig = Rig::with_buffers([256; 4], 64);
    let d = rig.put(RX_POOL_ID, 0, &arp());
    for _ in 0..100 {
        rig.driver_sends(Kind::RxFrame(d).message());
    }
    let t = PoolDescriptor {
        pool: TX_POOL_ID,
        index: 0,
        offset: 0,
        len: 0,
    };
    for _ in 0..40 {
        rig.ip_sends(
            Kind::RxReturn(PoolDescriptor {
                pool: RX_POOL_ID,
                ..t
            })
            .message(),
        );
    }
    // 32 frames to ip; 32 buffers home to e1000 in 3 messages (14 + 14 + 4).
    assert_eq!(rig.round(), Round { read: 64, sent: 35 });
    assert_eq!(rig.ip_got().len(), 32);
    assert_eq!(rig.driver_got().len(), 32);
    assert_eq!(rig.round().read, 32 + 8);
    assert_eq!(rig.round().read, 32);
    assert_eq!(rig.round().read, 4);
    assert!(rig.round().is_idle());
    assert_eq!(rig.path.counters().rx_in, 100);
}

#[test]
fn a_full_output_holds_and_stops_reading_but_loses_nothing() {
    // ip's ring holds 4 messages; e1000 sends 400 frames.
    let mut rig = Rig::new([512, 64, 64, 4]);
    let n = 400u32;
    for i in 0..n {
        // Distinct lengths tell the frames apart; the zeroed buffer is no IPv4, so all pass.
        let d = PoolDescriptor {
            pool: RX_POOL_ID,
            index: i % BUFFERS,
            offset: 0,
            len: 60 + i,
        };
        rig.driver_sends(Kind::RxFrame(d).message());
    }
    for _ in 0..20 {
        rig.round();
    }
    // 32 buffers: a queue of 32. 400 frames in 16 buffers are duplicates, which only a broken
    // driver sends, but they fill the queue as nothing valid can.
    let held = rig.path.held_capacity();
    assert_eq!(held, 32);
    assert_eq!(rig.path.held(Peer::Ip), held, "the queue is full");
    let c = rig.path.counters();
    assert_eq!(
        c.rx_in,
        held as u64 + 4,
        "read no more than the queue and ring hold"
    );
    assert!(c.stalls > 0);
    assert_eq!(c.held_high_ip, held as u64);
    // ip catches up: everything arrives, once, in order.
    let mut got = Vec::new();
    for _ in 0..1000 {
        rig.round();
        got.extend(rig.ip_got());
        if got.len() == n as usize {
            break;
        }
    }
    let lens: Vec<u32> = got.iter().map(|k| k.descriptor().len).collect();
    assert_eq!(lens, (0..n).map(|i| 60 + i).collect::<Vec<_>>());
    assert_eq!(rig.path.holding(), 0);
    assert!(rig.round().is_idle());
}

#[test]
fn a_full_queue_for_one_peer_stops_both_inputs() {
    // ip answers nothing while e1000's ring back is tiny: denied frames pile up for e1000, up
    // to 14 returns to a message, until the queue (32 messages) is full.
    let mut rig = Rig::new([512, 2, 64, 64]);
    rig.rules
        .push(parse_rule("deny from any to any").unwrap())
        .unwrap();
    let p = rig.put(RX_POOL_ID, 0, &icmp_echo(HOST, GUEST, false));
    let frames = 500;
    for _ in 0..frames {
        rig.driver_sends(Kind::RxFrame(p).message());
    }
    let mut rounds = 0;
    while rig.path.held(Peer::Driver) < rig.path.held_capacity() {
        rounds += 1;
        assert!(rounds < 1000, "the queue fills");
        rig.round();
    }
    // A message from ip now waits too: it could be one for e1000.
    let r = PoolDescriptor {
        pool: RX_POOL_ID,
        index: 1,
        offset: 0,
        len: 0,
    };
    rig.ip_sends(Kind::RxReturn(r).message());
    rig.round();
    assert_eq!(rig.path.counters().rx_returned, 0);
    let mut got = Vec::new();
    for _ in 0..1000 {
        rig.round();
        got.extend(rig.driver_got());
        if got.len() == frames + 1 {
            break;
        }
    }
    assert_eq!(got.len(), frames + 1);
    assert_eq!(got.iter().filter(|k| **k == Kind::RxReturn(r)).count(), 1);
    assert_eq!(rig.path.counters().rx_denied, frames as u64);
}

#[test]
fn arming_tells_whether_to_sleep() {
    let mut rig = Rig::new([64; 4]);
    let mut events = Vec::new();
    assert!(
        rig.path.arm(&mut |e| events.push(e)),
        "nothing to read: sleep"
    );
    rig.path.disarm();
    let d = rig.put(RX_POOL_ID, 0, &arp());
    rig.driver_sends(Kind::RxFrame(d).message());
    assert!(!rig.path.arm(&mut |e| events.push(e)));
    rig.round();
    rig.ip_sends(Kind::RxReturn(PoolDescriptor { len: 0, ..d }).message());
    assert!(!rig.path.arm(&mut |e| events.push(e)));
    rig.round();
    assert!(rig.path.arm(&mut |e| events.push(e)));
    rig.path.disarm();
    assert!(events.is_empty());
}

#[test]
fn a_restarted_driver_is_reported_and_the_path_goes_on() {
    let mut rig = Rig::new([64; 4]);
    let d = rig.put(RX_POOL_ID, 0, &arp());
    rig.driver_sends(Kind::RxFrame(d).message());
    rig.driver_sends(Kind::RxFrame(d).message());
    // e1000 dies with two frames unread by pf; its replacement bumps the epoch and attaches.
    let (ptr, len) = rig.driver_to_pf;
    // Safety: the region made by `channel`; the old producer is replaced below.
    unsafe { libchan::bump_epoch(ptr, len).unwrap() };
    rig.driver_tx = producer(rig.driver_to_pf);
    rig.round();
    assert!(matches!(
        rig.events[..],
        [Event::EpochChanged {
            channel: Channel::FromDriver,
            change: libchan::EpochChange { count: 2, .. }
        }]
    ));
    let c = rig.path.counters();
    assert_eq!((c.epoch_changes, c.epoch_in_flight, c.rx_in), (1, 2, 0));
    // The new instance's frames flow (once pf's consumer led the epoch change).
    for _ in 0..3 {
        if rig.driver_tx.send(&Kind::RxFrame(d).message()).is_ok() {
            break;
        }
        rig.round();
    }
    rig.round();
    assert_eq!(rig.ip_got(), [Kind::RxFrame(d)]);
}

/// The indices of `kinds`, with their kind's name.
fn indices(kinds: &[Kind]) -> Vec<(&'static str, u32)> {
    kinds
        .iter()
        .map(|k| match k {
            Kind::RxFrame(d) => ("rx_frame", d.index),
            Kind::RxReturn(d) => ("rx_return", d.index),
            Kind::TxFrame(d) => ("tx_frame", d.index),
            Kind::TxDone(d) => ("tx_done", d.index),
        })
        .collect()
}

#[test]
fn an_ip_restart_sends_what_it_held_home_and_drops_its_stale_buffers() {
    let mut rig = Rig::new([64; 4]);
    let d0 = rig.put(RX_POOL_ID, 0, &arp());
    let d1 = rig.put(RX_POOL_ID, 1, &arp());
    let t5 = rig.put(TX_POOL_ID, 5, &arp());
    rig.driver_sends(Kind::RxFrame(d0).message());
    rig.driver_sends(Kind::RxFrame(d1).message());
    rig.ip_sends(Kind::TxFrame(t5).message());
    rig.round();
    assert_eq!(rig.ip_got().len(), 2);
    assert_eq!(indices(&rig.driver_got()), [("tx_frame", 5)]);
    rig.ip_sends(Kind::RxReturn(d0).message());
    rig.round();
    assert_eq!(indices(&rig.driver_got()), [("rx_return", 0)]);
    // ip dies holding rx buffer 1; the driver still has its frame in tx buffer 5.
    let (ptr, len) = rig.ip_to_pf;
    // Safety: the region made by `channel`; the old producer is replaced below.
    unsafe { libchan::bump_epoch(ptr, len).unwrap() };
    rig.ip_tx = producer(rig.ip_to_pf);
    rig.round();
    rig.round();
    assert_eq!(indices(&rig.driver_got()), [("rx_return", 1)]);
    let c = rig.path.counters();
    assert_eq!((c.ip_restarts, c.rx_recovered), (1, 1));
    // The old frame's TX_DONE would free a buffer of the new ip's: dropped.
    rig.driver_sends(Kind::TxDone(t5).message());
    rig.round();
    assert!(rig.ip_got().is_empty());
    assert_eq!(rig.path.counters().orphans_dropped, 1);
    // The new ip's own frame in the same buffer goes and comes back as usual.
    for _ in 0..3 {
        if rig.ip_tx.send(&Kind::TxFrame(t5).message()).is_ok() {
            break;
        }
        rig.round();
    }
    rig.round();
    assert_eq!(indices(&rig.driver_got()), [("tx_frame", 5)]);
    rig.driver_sends(Kind::TxDone(t5).message());
    rig.round();
    assert_eq!(indices(&rig.ip_got()), [("tx_done", 5)]);
}

#[test]
fn a_driver_restart_gives_ip_its_frames_back_and_drops_stale_returns() {
    let mut rig = Rig::new([64; 4]);
    let d2 = rig.put(RX_POOL_ID, 2, &arp());
    let t7 = rig.put(TX_POOL_ID, 7, &arp());
    rig.driver_sends(Kind::RxFrame(d2).message());
    rig.ip_sends(Kind::TxFrame(t7).message());
    rig.round();
    assert_eq!(indices(&rig.ip_got()), [("rx_frame", 2)]);
    assert_eq!(indices(&rig.driver_got()), [("tx_frame", 7)]);
    // The driver dies with ip's frame in its ring; ip holds the old driver's buffer 2.
    let (ptr, len) = rig.driver_to_pf;
    // Safety: the region made by `channel`; the old producer is replaced below.
    unsafe { libchan::bump_epoch(ptr, len).unwrap() };
    rig.driver_tx = producer(rig.driver_to_pf);
    rig.round();
    rig.round();
    assert_eq!(indices(&rig.ip_got()), [("tx_done", 7)]);
    assert_eq!(rig.not_sent, [7], "ip hears it was never sent");
    let c = rig.path.counters();
    assert_eq!((c.driver_restarts, c.tx_recovered), (1, 1));
    // ip's return of the old driver's buffer must not reach the new driver.
    rig.ip_sends(Kind::RxReturn(d2).message());
    rig.round();
    assert!(rig.driver_got().is_empty());
    assert_eq!(rig.path.counters().orphans_dropped, 1);
}

/// One message sending home the buffers `indices` of `pool` (`RX_RETURNS` or `TX_DONES`).
fn home_together(pool: u16, indices: &[u32]) -> Message {
    let kind = |index| {
        let d = PoolDescriptor {
            pool,
            index,
            offset: 0,
            len: 0,
        };
        if pool == RX_POOL_ID {
            Kind::RxReturn(d)
        } else {
            Kind::TxDone(d)
        }
    };
    let mut m = kind(indices[0]).message();
    for &i in &indices[1..] {
        assert!(netmsg::merge(&mut m, &kind(i).message()));
    }
    m
}

#[test]
fn buffers_going_home_together_stay_together_and_lose_their_orphans() {
    let mut rig = Rig::new([64; 4]);
    for i in 0..4 {
        let d = rig.put(RX_POOL_ID, i, &arp());
        rig.driver_sends(Kind::RxFrame(d).message());
    }
    for i in 10..13 {
        let t = rig.put(TX_POOL_ID, i, &arp());
        rig.ip_sends(Kind::TxFrame(t).message());
    }
    rig.round();
    assert_eq!(rig.ip_got().len(), 4);
    assert_eq!(rig.driver_got().len(), 3);
    // Both peers send their buffers home in one message each; each goes on as one message.
    rig.ip_sends(home_together(RX_POOL_ID, &[0, 1]));
    rig.driver_sends(home_together(TX_POOL_ID, &[10, 11, 12]));
    assert_eq!(rig.round(), Round { read: 2, sent: 2 });
    assert_eq!(
        indices(&rig.driver_got()),
        [("rx_return", 0), ("rx_return", 1)]
    );
    assert_eq!(
        indices(&rig.ip_got()),
        [("tx_done", 10), ("tx_done", 11), ("tx_done", 12)]
    );
    let c = rig.path.counters();
    assert_eq!((c.rx_returned, c.tx_done), (2, 3));
    // Each peer's several-buffer message is a kind only the other sends: refused whole.
    rig.driver_sends(home_together(RX_POOL_ID, &[2]));
    rig.ip_sends(home_together(TX_POOL_ID, &[10, 11]));
    rig.round();
    assert_eq!(rig.path.counters().misdirected, 2);
    // The driver restarts while ip holds its buffers 2 and 3: ip's return of 2 together with
    // the new driver's 4 loses 2 (an orphan) and delivers 4.
    let (ptr, len) = rig.driver_to_pf;
    // Safety: the region made by `channel`; the old producer is replaced below.
    unsafe { libchan::bump_epoch(ptr, len).unwrap() };
    rig.driver_tx = producer(rig.driver_to_pf);
    rig.round();
    rig.round();
    // The old driver's frames all came home before it died: nothing to give back.
    assert!(rig.ip_got().is_empty());
    let d4 = rig.put(RX_POOL_ID, 4, &arp());
    rig.driver_sends(Kind::RxFrame(d4).message());
    rig.round();
    assert_eq!(indices(&rig.ip_got()), [("rx_frame", 4)]);
    rig.ip_sends(home_together(RX_POOL_ID, &[2, 4]));
    rig.round();
    assert_eq!(indices(&rig.driver_got()), [("rx_return", 4)]);
    assert_eq!(rig.path.counters().orphans_dropped, 1);
    // All orphans: nothing goes on.
    rig.ip_sends(home_together(RX_POOL_ID, &[3]));
    rig.round();
    assert!(rig.driver_got().is_empty());
    assert_eq!(rig.path.counters().orphans_dropped, 2);
}

#[test]
fn garbage_from_both_peers_never_panics_and_nothing_valid_is_lost() {
    let mut rig = Rig::new([1024, 1024, 1024, 1024]);
    rig.rules
        .push(parse_rule("deny in udp from any to any").unwrap())
        .unwrap();
    rig.rules
        .push(parse_rule("deny out icmp from any to any").unwrap())
        .unwrap();
    // Some real frames in the buffers, some garbage.
    let frames = [
        arp(),
        icmp_echo(HOST, GUEST, true),
        udp(HOST, 1, GUEST, 2),
        vec![0x45; 40],
    ];
    for i in 0..BUFFERS {
        let f = &frames[i as usize % frames.len()];
        rig.put(RX_POOL_ID, i, f);
        rig.put(TX_POOL_ID, i, f);
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut sent, mut valid, mut several_taken) = (0u64, 0u64, 0u64);
    for _ in 0..50 {
        for _ in 0..300 {
            let mut words = [0u64; 8];
            for w in &mut words {
                *w = next();
            }
            // Mostly real tags with small indexes, so that many messages are valid.
            let r = next();
            let tags = [tag::RX_FRAME, tag::RX_RETURN, tag::TX_FRAME, tag::TX_DONE];
            if r % 8 == 7 {
                // Several buffers home: a count of 0..=15 (0 and 15 are bad), indices up to
                // two past the pool, now and then a byte past the last index.
                let several = [tag::RX_RETURNS, tag::TX_DONES];
                let count = (r >> 8) % 16;
                words[0] = u64::from(several[(r >> 24) as usize % 2]) | ((4 * count) << 32);
                for (i, w) in words[1..].iter_mut().enumerate() {
                    let mut index = |k: u64| {
                        if k < count {
                            next() % u64::from(BUFFERS + 2)
                        } else {
                            u64::from(r & 0x4000 != 0 && k == 13)
                        }
                    };
                    let k = 2 * i as u64;
                    *w = index(k) | (index(k + 1) << 32);
                }
            } else if r % 4 != 0 {
                words[0] = u64::from(tags[(r >> 24) as usize % 4]);
                // pool | index << 32: an index up to two past the pool, either pool.
                let index = (words[1] >> 32) % u64::from(BUFFERS + 2);
                words[1] = (index << 32) | if r & 0x100 == 0 { 1 } else { 2 };
                // offset | len << 32: a length up to 2047, an offset up to 7.
                words[2] = (words[2] & 0x7FF_0000_0000) | ((r >> 40) % 8);
            }
            let m = Message::from_words(words);
            let from_driver = r & 0x1000 == 0;
            // A message pf takes counts once per buffer it forwards, a refused one once.
            let (accepted, buffers) = match Kind::decode_all(&m, BUFFERS, BUFFERS) {
                Ok(kinds) => {
                    let ours = match kinds.first() {
                        Some(Kind::RxFrame(_) | Kind::TxDone(_)) => from_driver,
                        Some(Kind::TxFrame(_) | Kind::RxReturn(_)) => !from_driver,
                        None => false,
                    };
                    (ours, kinds.count() as u64)
                }
                Err(_) => (false, 1),
            };
            valid += if accepted { buffers } else { 0 };
            several_taken += u64::from(accepted && m.tag == tag::RX_RETURNS)
                + u64::from(accepted && m.tag == tag::TX_DONES);
            sent += if accepted { buffers } else { 1 };
            if from_driver {
                rig.driver_sends(m);
            } else {
                rig.ip_sends(m);
            }
        }
        while !rig.round().is_idle() {}
        rig.driver_got();
        rig.ip_got();
    }
    let c = rig.path.counters();
    let forwarded = c.rx_in + c.tx_in + c.rx_returned + c.tx_done;
    assert_eq!(forwarded, valid);
    assert_eq!(forwarded + c.refused_total(), sent);
    assert!(
        several_taken > 100,
        "{several_taken} several-buffer messages taken"
    );
    assert!(c.refused.bad_count > 0, "{c:?}");
    assert_eq!(c.rx_out + c.rx_denied, c.rx_in);
    assert_eq!(c.tx_out + c.tx_denied, c.tx_in);
    assert!(
        c.rx_denied > 0 && c.tx_denied > 0 && c.refused_total() > 0,
        "{c:?}"
    );
}

#[test]
fn valid_traffic_never_stops_pf_reading_whatever_the_rings() {
    // Rings of 2 slots towards both peers, neither of which reads for a while; every buffer of
    // both pools comes to pf at once.
    let mut rig = Rig::with_buffers([256, 2, 256, 2], 64);
    let frame = arp();
    for i in 0..64 {
        let d = rig.put(RX_POOL_ID, i, &frame);
        rig.driver_sends(Kind::RxFrame(d).message());
        let t = rig.put(TX_POOL_ID, i, &frame);
        rig.ip_sends(Kind::TxFrame(t).message());
    }
    for _ in 0..10 {
        rig.round();
    }
    let c = rig.path.counters();
    assert_eq!(
        (c.rx_in, c.tx_in, c.stalls),
        (64, 64, 0),
        "everything read, never stalled"
    );
    assert_eq!(rig.path.holding(), 2 * (64 - 2));
    assert_eq!(rig.path.held_capacity(), 128);
    // Both peers read again: everything arrives.
    let (mut to_ip, mut to_driver) = (0, 0);
    for _ in 0..200 {
        rig.round();
        to_ip += rig.ip_got().len();
        to_driver += rig.driver_got().len();
    }
    assert_eq!((to_ip, to_driver), (64, 64));
}
