//! The data path against the fake device, with pf played by the test through the other ends of
//! real libchan channels and pool views over the same memory.

use super::*;
use crate::device::Model;
use crate::fake::{FakeDma, FakeNic, receive, transmit};
use crate::nic::RX_DESCRIPTORS;
use crate::regs;
use libchan::Polling;
use netmsg::{RETURNS_MAX, tag};
use std::alloc::{Layout, alloc_zeroed};

const PHYS: u64 = 0x0002_0000_0000;
/// The two descriptor rings.
const RINGS: usize = 2 * 4096;

/// A channel region of `slots` slots on the heap, leaked (it outlives every test).
fn channel(slots: u32) -> (*mut u8, usize) {
    let len = libchan::region_size(slots).unwrap();
    let layout = Layout::from_size_align(len, 4096).unwrap();
    // Safety: a fresh, page-aligned allocation of `len` bytes, never freed.
    let ptr = unsafe { alloc_zeroed(layout) };
    // Safety: as above; nothing else uses it yet.
    unsafe { libchan::init(ptr, len, slots).unwrap() };
    (ptr, len)
}

/// The driver's path and NIC, the fake device, and pf's side of everything.
struct Rig {
    nic: Nic<FakeNic>,
    dma: FakeDma,
    path: DataPath<'static, Polling>,
    /// pf's end of `e1000-pf`.
    pf_in: Consumer<'static, Polling>,
    /// pf's end of `pf-e1000`.
    pf_out: Producer<'static, Polling>,
    regions: [(*mut u8, usize); 2],
    /// pf's view of the rx-pool.
    rx_view: PoolView<'static>,
    /// The tx-pool, as its owner (ip) has it.
    tx_pool: BufferPool<'static>,
    events: Vec<PathEvent>,
    /// Messages pf read (one may carry several buffers).
    messages_at_pf: usize,
}

fn rig(rx_buffers: u32, tx_buffers: u32, slots: u32) -> Rig {
    let rx_bytes = rx_buffers as usize * 2048;
    let tx_bytes = tx_buffers as usize * 2048;
    let mut dma = FakeDma::new(RINGS + rx_bytes + tx_bytes, PHYS);
    let all = dma.slice();
    let rings = all.piece(0, RINGS).unwrap();
    let rx_mem = all.piece(RINGS, rx_bytes).unwrap();
    let tx_mem = all.piece(RINGS + rx_bytes, tx_bytes).unwrap();
    // Safety: the fake DMA memory is a heap vector owned by the rig, which outlives every view
    // (moving the rig does not move the vector's buffer).
    let view = |id, m: crate::dma::DmaSlice| unsafe {
        PoolView::new(id, m.virt(), m.len(), BUFFER_SIZE).unwrap()
    };
    let model = Model::I82540EM;
    let mut nic = Nic::with_pools(
        FakeNic::new(model),
        model,
        rings,
        pool_buffers(rx_mem.phys(), &view(RX_POOL_ID, rx_mem)),
        pool_buffers(tx_mem.phys(), &view(TX_POOL_ID, tx_mem)),
    )
    .unwrap();
    nic.init(&mut |_| {}).unwrap();
    let (to_pf, from_pf) = (channel(slots), channel(slots));
    // Safety: the regions are leaked; each end is attached once.
    let (producer, consumer, pf_in, pf_out) = unsafe {
        (
            Producer::attach(to_pf.0, to_pf.1, Polling).unwrap(),
            Consumer::attach(from_pf.0, from_pf.1, Polling).unwrap(),
            Consumer::attach(to_pf.0, to_pf.1, Polling).unwrap(),
            Producer::attach(from_pf.0, from_pf.1, Polling).unwrap(),
        )
    };
    let mut path = DataPath::new(
        BufferPool::new(view(RX_POOL_ID, rx_mem)).unwrap(),
        view(TX_POOL_ID, tx_mem),
        producer,
        consumer,
    )
    .unwrap();
    path.refill(&mut nic);
    nic.flush();
    nic.unmask_interrupts();
    Rig {
        nic,
        dma,
        path,
        pf_in,
        pf_out,
        regions: [to_pf, from_pf],
        rx_view: view(RX_POOL_ID, rx_mem),
        tx_pool: BufferPool::new(view(TX_POOL_ID, tx_mem)).unwrap(),
        events: Vec::new(),
        messages_at_pf: 0,
    }
}

/// A frame of `len` bytes with ethertype `0x0800` and `n` in bytes 14..18.
fn frame(n: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&crate::fake::QEMU_MAC.0);
    f[6..12].copy_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14..18].copy_from_slice(&n.to_le_bytes());
    f
}

impl Rig {
    fn poll(&mut self) -> usize {
        let events = &mut self.events;
        self.path.poll(&mut self.nic, &mut |e| events.push(e))
    }

    /// The device receives `frame`; true when it had a descriptor for it.
    fn arrive(&mut self, frame: &[u8]) -> bool {
        receive(self.nic.regs(), &mut self.dma, frame)
    }

    /// The device sends what is queued.
    fn wire(&mut self) -> Vec<Vec<u8>> {
        transmit(self.nic.regs(), &mut self.dma)
    }

    /// Everything the driver sent pf, decoded (a message that does not decode fails the test).
    fn at_pf(&mut self) -> Vec<Kind> {
        let (rx, tx) = (self.rx_view.count(), self.tx_pool.view().count());
        let mut out = Vec::new();
        while let Some(m) = self.pf_in.try_recv().unwrap() {
            self.messages_at_pf += 1;
            let kinds = Kind::decode_all(&m, rx, tx);
            out.extend(kinds.expect("the driver sends well-formed messages"));
        }
        out
    }

    fn pf_sends(&mut self, m: &Message) {
        self.pf_out.send(m).unwrap();
    }

    /// The bytes of an rx-pool buffer as pf reads them.
    fn rx_bytes(&mut self, d: PoolDescriptor) -> Vec<u8> {
        let b = self.rx_view.check(d).unwrap();
        let mut v = vec![0; b.len()];
        b.copy_to(&mut v);
        v
    }

    /// ip builds a frame in a tx-pool buffer at `offset`; returns its descriptor.
    fn build(&mut self, offset: u32, bytes: &[u8]) -> PoolDescriptor {
        let mut d = self.tx_pool.alloc().unwrap();
        d.offset = offset;
        d.len = bytes.len() as u32;
        self.tx_pool.buffer(d).unwrap().copy_from(bytes);
        d
    }

    fn rdt_writes(&mut self) -> usize {
        self.nic.regs().writes_to(regs::RDT).len()
    }
}

/// The tx-pool buffers in `kinds`' `TxDone`s, in order (a `TX_DONES` names whole buffers: their
/// offset and length are 0). Panics on any other kind.
fn done_indices(kinds: &[Kind]) -> Vec<u32> {
    kinds
        .iter()
        .map(|k| match k {
            Kind::TxDone(d) => d.index,
            other => panic!("{other:?} is no TX_DONE"),
        })
        .collect()
}

fn rx_frames(kinds: &[Kind]) -> Vec<PoolDescriptor> {
    kinds
        .iter()
        .map(|k| match k {
            Kind::RxFrame(d) => *d,
            other => panic!("expected RX_FRAME, got {other:?}"),
        })
        .collect()
}

#[test]
fn posts_pool_buffers_and_passes_frames_without_copying() {
    let mut r = rig(512, 16, 1024);
    // Every receive descriptor but one holds a pool buffer, at the pool's physical address.
    assert_eq!(r.path.rx_in_use(), RX_DESCRIPTORS as u32 - 1);
    assert_eq!(r.nic.regs().get(regs::RDT), 255);
    let rx_phys = PHYS + RINGS as u64;
    for i in 0..255u64 {
        let at = r.dma.read(PHYS + i * 16, 8).unwrap();
        assert_eq!(
            u64::from_le_bytes(at.try_into().unwrap()),
            rx_phys + i * 2048
        );
    }
    assert_eq!(r.path.counters().rx_starved, 0);
    let sent: Vec<_> = (0..3).map(|n| frame(n, 60 + n as usize)).collect();
    for f in &sent {
        assert!(r.arrive(f));
    }
    let tails = r.rdt_writes();
    assert!(r.poll() >= 3);
    assert_eq!(r.rdt_writes(), tails + 1, "one tail write for the batch");
    let got = rx_frames(&r.at_pf());
    assert_eq!(got.len(), 3);
    for (n, (d, f)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(
            *d,
            PoolDescriptor {
                pool: RX_POOL_ID,
                index: n as u32,
                offset: 0,
                len: f.len() as u32
            }
        );
        // The bytes are where the device wrote them: in the shared buffer.
        assert_eq!(&r.rx_bytes(*d), f);
    }
    // Each descriptor got a fresh buffer: the ring still holds 255, pf holds 3.
    assert_eq!(r.path.rx_with_pf(), 3);
    assert_eq!(r.path.rx_in_use(), 255 + 3);
    assert_eq!(r.nic.regs().get(regs::RDT), 2);
    let slot255 = r.dma.read(PHYS + 255 * 16, 8).unwrap();
    assert_eq!(
        u64::from_le_bytes(slot255.try_into().unwrap()),
        rx_phys + 255 * 2048
    );
    let c = *r.path.counters();
    assert_eq!((c.rx_to_pf, c.rx_returned, c.refused()), (3, 0, 0));
    assert_eq!(
        (r.nic.counters.rx_frames, r.nic.counters.rx_bytes),
        (3, 183)
    );
    // pf gives them back.
    for d in got {
        r.pf_sends(&Kind::RxReturn(d).message());
    }
    r.poll();
    assert_eq!(r.path.counters().rx_returned, 3);
    assert_eq!((r.path.rx_in_use(), r.path.rx_with_pf()), (255, 0));
    assert!(r.events.is_empty(), "{:?}", r.events);
}

#[test]
fn bad_frames_stay_home_and_the_ring_wraps() {
    let mut r = rig(300, 8, 1024);
    let mut bad = frame(0, 100);
    bad.resize(5000, 0); // split over descriptors (LPE on): dropped, buffers reused
    let rctl = r.nic.regs().get(regs::RCTL);
    r.nic.regs().set(regs::RCTL, rctl | regs::rctl::LPE);
    assert!(r.arrive(&bad));
    r.poll();
    assert!(r.at_pf().is_empty());
    assert_eq!(r.nic.counters.rx_too_long, 1);
    assert_eq!(r.path.rx_in_use(), 255);
    // A thousand frames, returned as they come: the ring and the pool go round many times.
    for n in 0..1000 {
        assert!(r.arrive(&frame(n, 64)), "frame {n}");
        r.poll();
        let d = rx_frames(&r.at_pf());
        assert_eq!(d.len(), 1);
        assert_eq!(r.rx_bytes(d[0])[14..18], n.to_le_bytes());
        r.pf_sends(&Kind::RxReturn(d[0]).message());
        r.poll();
        r.nic.check_heads().unwrap();
    }
    assert_eq!(r.path.counters().rx_returned, 1000);
    assert_eq!(r.path.rx_in_use(), 255);
}

#[test]
fn an_empty_pool_leaves_slots_empty_until_returns_come() {
    // 16 buffers for a ring of 256: the ring starts with 16 posted, the rest starved.
    let mut r = rig(16, 8, 1024);
    assert_eq!(r.nic.rx_posted(), 16);
    let starved_at_start = r.path.counters().rx_starved;
    assert_eq!(starved_at_start, 255 - 16);
    for n in 0..16 {
        assert!(r.arrive(&frame(n, 60)));
    }
    assert!(
        !r.arrive(&frame(16, 60)),
        "no buffer left: the device misses it"
    );
    r.poll();
    let held = rx_frames(&r.at_pf());
    assert_eq!(held.len(), 16);
    assert_eq!(r.nic.rx_posted(), 0);
    assert_eq!(r.path.counters().rx_starved, starved_at_start + 16);
    // Nothing to receive into, and polling again counts nothing new.
    r.poll();
    assert_eq!(r.path.counters().rx_starved, starved_at_start + 16);
    assert!(!r.arrive(&frame(17, 60)));
    // Four come home: four descriptors get them, the device receives again.
    for d in &held[..4] {
        r.pf_sends(&Kind::RxReturn(*d).message());
    }
    r.poll();
    assert_eq!(r.nic.rx_posted(), 4);
    assert_eq!(r.path.counters().rx_returned, 4);
    for n in 0..4 {
        assert!(r.arrive(&frame(100 + n, 60)));
    }
    assert!(!r.arrive(&frame(104, 60)));
    r.poll();
    let again = rx_frames(&r.at_pf());
    let reused: Vec<u32> = again.iter().map(|d| d.index).collect();
    let returned: Vec<u32> = held[..4].iter().map(|d| d.index).collect();
    assert_eq!(reused, returned, "the returned buffers were reused");
    assert_eq!(r.rx_bytes(again[0])[14..18], 100u32.to_le_bytes());
    r.nic.check_heads().unwrap();
}

/// One `RX_RETURNS` for rx-pool buffers `indices`.
fn returns(indices: &[u32]) -> Message {
    let one = |index| Kind::RxReturn(rx_descriptor(index, 0)).message();
    let mut m = one(indices[0]);
    for &i in &indices[1..] {
        assert!(netmsg::merge(&mut m, &one(i)));
    }
    m
}

#[test]
fn buffers_come_home_together_each_checked() {
    let mut r = rig(16, 8, 1024);
    for n in 0..16 {
        assert!(r.arrive(&frame(n, 60)));
    }
    r.poll();
    let held: Vec<u32> = rx_frames(&r.at_pf()).iter().map(|d| d.index).collect();
    assert_eq!((held.len(), r.nic.rx_posted()), (16, 0));
    // Four in one message: four descriptors get a buffer.
    r.pf_sends(&returns(&held[..4]));
    r.poll();
    assert_eq!(r.nic.rx_posted(), 4);
    assert_eq!(r.path.counters().rx_returned, 4);
    // A buffer named twice comes home once; the second is refused on its own.
    r.pf_sends(&returns(&[held[4], held[4], held[5]]));
    r.poll();
    let c = *r.path.counters();
    assert_eq!((c.rx_returned, c.not_lent), (6, 1));
    assert_eq!(r.nic.rx_posted(), 6);
    // One index past the pool refuses the whole message: the good one stays with pf.
    r.pf_sends(&returns(&[held[6], 16]));
    r.poll();
    let c = *r.path.counters();
    assert_eq!((c.rx_returned, c.malformed.bad_index), (6, 1));
    // A count that does not match the payload, likewise.
    let mut bad = returns(&[held[6], held[7]]);
    bad.len = 6;
    r.pf_sends(&bad);
    r.poll();
    assert_eq!(r.path.counters().malformed.bad_count, 1);
    // The driver never takes TX_DONES: they are ip's.
    let mut dones = Kind::TxDone(r.build(0, &[0; 60])).message();
    assert!(netmsg::merge(
        &mut dones,
        &Kind::TxDone(r.build(1, &[0; 60])).message()
    ));
    r.pf_sends(&dones);
    r.poll();
    let c = *r.path.counters();
    assert_eq!((c.rx_returned, c.not_for_us), (6, 2));
    assert_eq!(r.nic.rx_posted(), 6);
}

#[test]
fn bad_returns_are_refused_and_counted() {
    let mut r = rig(512, 8, 1024);
    assert!(r.arrive(&frame(1, 60)));
    r.poll();
    let d = rx_frames(&r.at_pf())[0];
    let before = r.path.rx_in_use();
    let rx = |index, offset, len| PoolDescriptor {
        pool: RX_POOL_ID,
        index,
        offset,
        len,
    };
    let bad = [
        // A buffer the NIC holds (posted, never sent to pf).
        Kind::RxReturn(rx(100, 0, 0)).message(),
        // A buffer never lent out at all.
        Kind::RxReturn(rx(400, 0, 0)).message(),
        // Malformed: wrong pool, index past the pool, range past the buffer, unknown tag.
        Message::with_descriptor(
            tag::RX_RETURN,
            PoolDescriptor {
                pool: TX_POOL_ID,
                ..d
            },
        ),
        Kind::RxReturn(rx(512, 0, 0)).message(),
        Kind::RxReturn(rx(d.index, 2040, 60)).message(),
        Message::new(0xDEAD),
        // Messages only the driver sends.
        Kind::RxFrame(d).message(),
        Kind::TxDone(PoolDescriptor {
            pool: TX_POOL_ID,
            index: 0,
            offset: 0,
            len: 0,
        })
        .message(),
    ];
    for m in &bad {
        r.pf_sends(m);
    }
    // The good return, then the same buffer again.
    r.pf_sends(&Kind::RxReturn(d).message());
    r.pf_sends(&Kind::RxReturn(d).message());
    r.poll();
    let c = *r.path.counters();
    assert_eq!(c.rx_returned, 1);
    assert_eq!(c.not_lent, 3, "NIC's buffer, never lent, returned twice");
    assert_eq!(c.not_for_us, 2);
    assert_eq!(
        c.malformed,
        RefusedCounters {
            unknown_tag: 1,
            wrong_pool: 1,
            bad_index: 1,
            bad_range: 1,
            bad_count: 0,
        }
    );
    assert_eq!(c.refused(), 9);
    assert_eq!(c.report().refused, 9);
    assert_eq!(r.events.len(), 9);
    assert!(r.events.contains(&PathEvent::Refused {
        tag: tag::RX_RETURN,
        why: Refusal::NotLent { index: 100 }
    }));
    // The NIC's buffer is still posted and the pool unharmed: only the good return freed one.
    assert_eq!(r.path.rx_in_use(), before - 1);
    assert_eq!(r.nic.rx_posted(), 255);
    assert!(r.arrive(&frame(2, 60)));
    r.poll();
    assert_eq!(rx_frames(&r.at_pf()).len(), 1);
}

#[test]
fn garbage_from_pf_never_panics() {
    let mut r = rig(512, 64, 1024);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        for _ in 0..64 {
            let mut words = [0u64; 8];
            for w in &mut words {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *w = x;
            }
            // Mostly real tags with random descriptors (some small enough to pass the checks).
            let tags = [tag::RX_RETURN, tag::TX_FRAME, tag::RX_FRAME, tag::TX_DONE];
            if x & 3 != 0 {
                words[0] = (words[0] & !0xFFFF_FFFF) | u64::from(tags[(x >> 2) as usize % 4]);
                words[1] = ((words[1] & 0xFFFF_FFFF_0000_0000) % (600 << 32)) | ((x >> 8) % 3);
                words[2] = (((x >> 16) % 2100) << 32) | ((x >> 32) % 40);
            } else if x & 4 != 0 {
                // Several buffers home: a count of 0..=15, indices below 600 (the NIC's, pf's
                // or none at all), sometimes TX_DONES, which only ip takes.
                let several = [tag::RX_RETURNS, tag::TX_DONES][(x >> 3) as usize % 4 / 3];
                let count = (x >> 8) % 16;
                words[0] = u64::from(several) | ((4 * count) << 32);
                for (i, w) in words[1..].iter_mut().enumerate() {
                    let k = 2 * i as u64;
                    let index = |k: u64, v: u64| if k < count { v % 600 } else { 0 };
                    *w = index(k, *w) | (index(k + 1, *w >> 32) << 32);
                }
            }
            r.pf_sends(&Message::from_words(words));
        }
        r.poll();
        if round % 2 == 0 {
            r.wire();
        }
        r.arrive(&frame(round, 60));
        r.poll();
        r.at_pf();
    }
    // Still consistent: the ring holds its buffers, the device its window.
    r.nic.check_heads().unwrap();
    assert!(r.path.counters().refused() > 0);
}

#[test]
fn transmits_from_the_tx_pool_and_sends_the_buffers_home() {
    let mut r = rig(512, 16, 1024);
    let bytes = frame(7, 98);
    let d = r.build(2, &bytes);
    r.pf_sends(&Kind::TxFrame(d).message());
    r.poll();
    assert_eq!(r.nic.regs().writes_to(regs::TDT), [0, 1]);
    // The device reads the frame straight from the tx-pool buffer.
    let tx_phys = PHYS + RINGS as u64 + 512 * 2048;
    let desc = r.dma.read(PHYS + 4096, 16).unwrap();
    assert_eq!(
        u64::from_le_bytes(desc[..8].try_into().unwrap()),
        tx_phys + u64::from(d.index) * 2048 + 2
    );
    assert_eq!(u16::from_le_bytes([desc[8], desc[9]]), 98);
    assert!(r.at_pf().is_empty(), "not sent yet");
    assert_eq!(r.wire(), vec![bytes]);
    r.poll();
    assert_eq!(r.at_pf(), [Kind::TxDone(d)]);
    let c = *r.path.counters();
    assert_eq!((c.tx_from_pf, c.tx_done, c.tx_drops), (1, 1, 0));
    assert_eq!((r.nic.counters.tx_frames, r.nic.counters.tx_bytes), (1, 98));
    // ip may free it now.
    r.tx_pool.free(d).unwrap();
    // A frame past the end of its buffer is refused, never posted.
    let mut long = r.build(0, &[1; 60]);
    long.offset = 2000;
    r.pf_sends(&Kind::TxFrame(long).message());
    r.poll();
    assert_eq!(r.path.counters().malformed.bad_range, 1);
    assert!(r.wire().is_empty());
}

#[test]
fn a_full_transmit_ring_backlogs_then_leaves_frames_in_the_channel() {
    let mut r = rig(512, 1024, 1024);
    // 255 fill the ring, TX_BACKLOG wait in the backlog, 5 more wait unread in the channel.
    let total = 255 + TX_BACKLOG + 5;
    let frames: Vec<PoolDescriptor> = (0..total)
        .map(|n| r.build(0, &frame(n as u32, 60)))
        .collect();
    for d in &frames {
        r.pf_sends(&Kind::TxFrame(*d).message());
    }
    while r.poll() > 0 {}
    assert_eq!(r.path.backlog_len(), TX_BACKLOG);
    assert!(!r.path.takes_messages(), "no room for another frame");
    assert_eq!(r.path.counters().tx_from_pf, (255 + TX_BACKLOG) as u64);
    assert!(r.at_pf().is_empty(), "nothing dropped, nothing sent home");
    assert_eq!(r.path.counters().tx_drops, 0);
    assert_eq!(r.nic.status().tx_drops, 0);
    // The device sends the ring; the backlog moves in, in order, as the ring empties, and the
    // frames left in the channel are read as the backlog makes room; then all is sent.
    let mut wire = Vec::new();
    while r.path.backlog_len() > 0 {
        let sent = r.wire();
        assert!(
            !sent.is_empty(),
            "the backlog moves only as the ring empties"
        );
        wire.extend(sent);
        r.poll();
    }
    for _ in 0..3 {
        wire.extend(r.wire());
        r.poll();
    }
    assert!(r.path.takes_messages());
    assert_eq!(wire.len(), total);
    for (n, f) in wire.iter().enumerate() {
        assert_eq!(f[14..18], (n as u32).to_le_bytes(), "sent in order");
    }
    // Every buffer came home exactly once, each after it was sent.
    let mut home = done_indices(&r.at_pf());
    let mut all: Vec<u32> = frames.iter().map(|d| d.index).collect();
    home.sort();
    all.sort();
    assert_eq!(home, all);
    assert_eq!(r.path.counters().tx_done, total as u64);
    assert_eq!(r.path.counters().tx_drops, 0);
}

#[test]
fn a_full_outbox_leaves_tx_frames_in_the_channel() {
    // pf sends frames and reads nothing: their TX_DONEs fill the channel to pf (8 slots, up
    // to 14 buffers each) and the outbox, sent frames stay in the ring, the backlog fills;
    // then the driver reads no more from pf. Before, the next frame read had its TX_DONE
    // lost: a buffer gone for good.
    let mut r = rig(512, 2048, 8);
    let held = 8 + OUTBOX + 255 + TX_BACKLOG;
    let held_most = 8 * RETURNS_MAX + OUTBOX + 255 + TX_BACKLOG;
    let total = held_most + 40;
    let frames: Vec<PoolDescriptor> = (0..total)
        .map(|n| r.build(0, &frame(n as u32, 60)))
        .collect();
    let mut pending: std::collections::VecDeque<PoolDescriptor> = frames.iter().copied().collect();
    let feed = |r: &mut Rig, pending: &mut std::collections::VecDeque<PoolDescriptor>| {
        while let Some(d) = pending.front() {
            if r.pf_out.send(&Kind::TxFrame(*d).message()).is_err() {
                break;
            }
            pending.pop_front();
        }
    };
    let mut wire = Vec::new();
    for _ in 0..300 {
        feed(&mut r, &mut pending);
        r.poll();
        wire.extend(r.wire());
    }
    assert_eq!(r.path.outbox_len(), OUTBOX);
    assert_eq!(r.path.backlog_len(), TX_BACKLOG);
    assert!(!r.path.takes_messages());
    let taken = r.path.counters().tx_from_pf as usize;
    assert!((held..=held_most).contains(&taken), "{taken} taken");
    assert_eq!(
        pending.len(),
        total - taken - 8,
        "8 wait in the channel, the rest at pf"
    );
    let c = *r.path.counters();
    assert_eq!((c.tx_done_lost, c.tx_drops), (0, 0));
    // pf reads again: every frame is sent in order and every buffer comes home once.
    let mut home = Vec::new();
    for _ in 0..300 {
        home.extend(done_indices(&r.at_pf()));
        feed(&mut r, &mut pending);
        r.poll();
        wire.extend(r.wire());
    }
    home.extend(done_indices(&r.at_pf()));
    assert!(pending.is_empty());
    assert_eq!(wire.len(), total);
    for (n, f) in wire.iter().enumerate() {
        assert_eq!(f[14..18], (n as u32).to_le_bytes(), "sent in order");
    }
    let mut all: Vec<u32> = frames.iter().map(|d| d.index).collect();
    home.sort();
    all.sort();
    assert_eq!(home, all);
    let c = *r.path.counters();
    assert_eq!(
        (c.tx_done, c.tx_done_lost, c.tx_drops),
        (total as u64, 0, 0)
    );
}

#[test]
fn messages_wait_while_pf_does_not_read() {
    // A channel of 8 slots to pf: frames wait in the outbox, none is lost.
    let mut r = rig(512, 8, 8);
    for n in 0..40 {
        assert!(r.arrive(&frame(n, 60)));
    }
    r.poll();
    assert_eq!(r.path.outbox_len(), 40 - 8);
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let got = rx_frames(&r.at_pf());
        assert!(!got.is_empty());
        for d in &got {
            seen.push(r.rx_bytes(*d)[14..18].to_vec());
            r.pf_sends(&Kind::RxReturn(*d).message());
        }
        r.poll();
    }
    for (n, b) in seen.iter().enumerate() {
        assert_eq!(b[..], (n as u32).to_le_bytes());
    }
    assert_eq!(r.path.outbox_len(), 0);
    assert_eq!(r.path.counters().rx_to_pf, 40);
}

#[test]
fn a_full_outbox_leaves_frames_in_the_ring() {
    let mut r = rig(1024, 8, 8);
    // pf reads nothing: the outbox fills, then the driver stops taking frames from the ring.
    let mut arrived = 0;
    for n in 0..2000 {
        if r.arrive(&frame(n, 60)) {
            arrived += 1;
        }
        if n % 50 == 0 {
            r.poll();
        }
    }
    r.poll();
    assert_eq!(r.path.outbox_len(), OUTBOX);
    assert_eq!(r.path.counters().rx_to_pf, 8);
    assert!(arrived < 2000, "the device ran out of descriptors");
    // pf wakes up: everything that arrived reaches it, in order.
    let mut n = 0u32;
    loop {
        let got = rx_frames(&r.at_pf());
        if got.is_empty() && r.poll() == 0 {
            break;
        }
        for d in got {
            assert_eq!(r.rx_bytes(d)[14..18], n.to_le_bytes());
            n += 1;
            r.pf_sends(&Kind::RxReturn(d).message());
        }
        r.poll();
    }
    assert_eq!(n, arrived);
    assert_eq!(r.path.counters().tx_done_lost, 0);
}

#[test]
fn a_pf_restart_is_counted_the_buffers_it_held_come_back_and_the_path_goes_on() {
    let mut r = rig(512, 8, 64);
    for n in 0..3 {
        r.arrive(&frame(n, 60));
    }
    r.poll();
    assert_eq!(rx_frames(&r.at_pf()).len(), 3);
    // pf dies holding 3 buffers; its replacement bumps both epochs and attaches.
    let [to_pf, from_pf] = r.regions;
    // Safety: the regions are leaked and still channels; the old ends are replaced below.
    unsafe {
        libchan::bump_epoch(to_pf.0, to_pf.1).unwrap();
        libchan::bump_epoch(from_pf.0, from_pf.1).unwrap();
        r.pf_in = Consumer::attach(to_pf.0, to_pf.1, Polling).unwrap();
        r.pf_out = Producer::attach(from_pf.0, from_pf.1, Polling).unwrap();
    }
    r.arrive(&frame(3, 60));
    r.poll();
    r.poll();
    assert_eq!(r.path.counters().epoch_changes, 2);
    let changes: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            PathEvent::EpochChanged {
                channel, with_pf, ..
            } => Some((*channel, *with_pf)),
            _ => None,
        })
        .collect();
    // The first report takes the 3 buffers pf held back; the second (same restart) has none.
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes.iter().map(|c| c.1).collect::<Vec<_>>(),
        [3, 0],
        "{changes:?}"
    );
    assert_eq!(r.path.counters().rx_recovered, 3);
    assert_eq!(r.path.rx_with_pf(), 1, "only the frame sent to the new pf");
    // The new pf gets the next frame (re-sent after the epoch change) and works with us.
    let got = rx_frames(&r.at_pf());
    assert_eq!(got.len(), 1);
    assert_eq!(r.rx_bytes(got[0])[14..18], 3u32.to_le_bytes());
    r.pf_sends(&Kind::RxReturn(got[0]).message());
    r.poll();
    assert_eq!(r.path.counters().rx_returned, 1);
    assert_eq!(r.path.counters().report().epoch_changes, 2);
}

#[test]
fn a_device_reset_sends_queued_frames_home_and_keeps_the_receive_buffers() {
    let mut r = rig(512, 16, 64);
    let frames: Vec<_> = (0..3).map(|n| r.build(0, &frame(n, 60))).collect();
    for d in &frames {
        r.pf_sends(&Kind::TxFrame(*d).message());
    }
    r.poll();
    assert!(r.at_pf().is_empty());
    let events = &mut r.events;
    r.path
        .reinit(&mut r.nic, &mut |_| {}, &mut |e| events.push(e))
        .unwrap();
    // Home together, in one message: whole buffers, by index.
    assert_eq!(
        done_indices(&r.at_pf()),
        frames.iter().map(|d| d.index).collect::<Vec<_>>()
    );
    assert_eq!(r.messages_at_pf, 1);
    assert_eq!(r.nic.status().tx_drops, 3);
    assert!(r.wire().is_empty(), "the new rings hold nothing to send");
    assert_eq!(r.nic.regs().resets, 2);
    assert_eq!(r.nic.regs().get(regs::RDT), 255);
    assert_eq!(r.path.rx_in_use(), 255, "no receive buffer lost");
    assert!(r.arrive(&frame(9, 60)));
    r.poll();
    assert_eq!(rx_frames(&r.at_pf()).len(), 1);
}

#[test]
fn pools_must_be_the_paths() {
    let mut mem = vec![0u64; 4 * 2048 / 8];
    let p = mem.as_mut_ptr().cast::<u8>();
    // Safety: `mem` outlives the views of this test.
    let v = |id, size| unsafe { PoolView::new(id, p, 4 * 2048, size).unwrap() };
    let (a, b) = (channel(8), channel(8));
    // Safety: leaked regions, one end each.
    let ends = || unsafe {
        (
            Producer::attach(a.0, a.1, Polling).unwrap(),
            Consumer::attach(b.0, b.1, Polling).unwrap(),
        )
    };
    let (tx, rx) = ends();
    let wrong_id = DataPath::new(
        BufferPool::new(v(TX_POOL_ID, 2048)).unwrap(),
        v(TX_POOL_ID, 2048),
        tx,
        rx,
    );
    assert_eq!(wrong_id.err(), Some(PathError::RxPool));
    let (tx, rx) = ends();
    let wrong_size = DataPath::new(
        BufferPool::new(v(RX_POOL_ID, 2048)).unwrap(),
        v(TX_POOL_ID, 1024),
        tx,
        rx,
    );
    assert_eq!(wrong_size.err(), Some(PathError::TxPool));
}
