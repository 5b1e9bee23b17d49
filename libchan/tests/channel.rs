//! Single-threaded behaviour of the public API: setup errors, full and empty rings, batches,
//! sequence numbers and wrap-around, sleep/wake accounting, epochs and restarts, handover, and a
//! buffer pool whose descriptors travel through a pair of rings.
#![cfg(not(loom))]

mod common;

use common::{HostRegion, crash, stamped, unstamp};
use libchan::layout::{HEAD_OFFSET, MAGIC_OFFSET, MAGIC_VERSION, TAIL_OFFSET};
use libchan::{
    BufferPool, Consumer, EpochChange, Message, Polling, PoolError, PoolView, Producer, RecvError,
    RegionError, SendError, Waiter,
};
use std::sync::atomic::{AtomicU32, Ordering};

/// A waiter that only counts its calls.
#[derive(Default)]
struct Counting {
    waits: AtomicU32,
    notifies: AtomicU32,
}

impl Waiter for Counting {
    fn wait(&self, _timeout_ns: Option<u64>) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }
    fn notify(&self) {
        self.notifies.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn handles_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Producer<'static, Polling>>();
    assert_send::<Consumer<'static, Polling>>();
    assert_send::<PoolView<'static>>();
    assert_send::<BufferPool<'static>>();
}

#[test]
fn init_and_attach_refuse_bad_ranges() {
    let region = HostRegion::zeroed(libchan::region_size(8).unwrap());
    let (ptr, len) = (region.ptr(), region.len());
    // Safety: `ptr..ptr + len` is valid memory; bad arguments must be refused, not used.
    unsafe {
        assert_eq!(
            libchan::init(std::ptr::null_mut(), len, 8),
            Err(RegionError::Null)
        );
        assert_eq!(
            libchan::init(ptr.add(64), len - 64, 8),
            Err(RegionError::Misaligned)
        );
        assert_eq!(
            libchan::init(ptr, len, 6),
            Err(RegionError::BadCapacity { capacity: 6 })
        );
        assert_eq!(
            libchan::init(ptr, len, 16),
            Err(RegionError::TooSmall {
                needed: libchan::region_size(16).unwrap(),
                len
            })
        );
        assert!(matches!(
            Consumer::attach(ptr, len, Polling),
            Err(RegionError::BadMagic { found: 0 })
        ));
        libchan::init(ptr, len, 8).unwrap();
        region.write_u64(MAGIC_OFFSET, MAGIC_VERSION + 1);
        assert!(matches!(
            Producer::attach(ptr, len, Polling),
            Err(RegionError::BadVersion { found: 2 })
        ));
        region.write_u64(MAGIC_OFFSET, MAGIC_VERSION);
        assert!(matches!(
            Producer::attach(ptr, len - 1, Polling),
            Err(RegionError::TooSmall { .. })
        ));
        assert!(Producer::attach(ptr, len, Polling).is_ok());
    }
}

#[test]
fn full_empty_and_sequence_numbers() {
    let mut region = HostRegion::channel(4);
    let (mut tx, mut rx) = region.split(Polling, Polling);
    assert_eq!(rx.try_recv(), Ok(None));
    for id in 0..4 {
        assert_eq!(tx.send(&stamped(id)), Ok(id as u32));
    }
    assert_eq!(tx.send(&stamped(4)), Err(SendError::Full));
    assert_eq!(tx.counters().full, 1);
    assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(0));
    assert_eq!(tx.free_slots(), Ok(1));
    assert_eq!(tx.send(&stamped(4)), Ok(4));
    let mut out = [Message::default(); 8];
    assert_eq!(rx.recv_batch(&mut out), Ok(4));
    let ids: Vec<_> = out[..4].iter().map(|m| unstamp(m).unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(rx.recv_batch(&mut out), Ok(0));
    // A batch larger than the ring is sent in part.
    let batch: Vec<Message> = (5..11).map(stamped).collect();
    assert_eq!(tx.send_batch(&batch), Ok(4));
    assert_eq!(tx.send_batch(&batch[4..]), Err(SendError::Full));
    assert_eq!(tx.send_batch(&[]), Ok(0));
    assert_eq!(rx.next_seq(), 5);
    assert_eq!(tx.next_seq(), 9);
    assert_eq!((tx.counters().sent, rx.counters().received), (9, 5));
}

#[test]
fn positions_wrap_around_u32() {
    let region = HostRegion::channel(8);
    let start = u32::MAX - 20;
    let epoch_bits = region.read_u64(TAIL_OFFSET) & !0xFFFF_FFFF;
    region.write_u64(TAIL_OFFSET, epoch_bits | start as u64);
    region.write_u64(HEAD_OFFSET, epoch_bits | start as u64);
    // Safety: the only endpoints of the region.
    let (mut tx, mut rx) = unsafe { region.ends(Polling, Polling) };
    for id in 0..100u64 {
        assert_eq!(tx.send(&stamped(id)), Ok(start.wrapping_add(id as u32)));
        assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(id));
    }
    assert_eq!(rx.next_seq(), start.wrapping_add(100));
}

#[test]
fn consumer_sleeps_and_producer_notifies_only_then() {
    let region = HostRegion::channel(4);
    let (pw, cw) = (Counting::default(), Counting::default());
    // Safety: the only endpoints of the region.
    let (mut tx, mut rx) = unsafe { region.ends(&pw, &cw) };
    rx.set_spin_limit(3);
    // Empty: spin, announce sleep, re-check, wait once (the counting waiter returns at once).
    assert_eq!(rx.recv_wait(Some(1_000)), Ok(None));
    assert_eq!(
        (cw.waits.load(Ordering::Relaxed), rx.counters().waits),
        (1, 1)
    );
    // The flag was cleared on the way out: no notify for this message.
    tx.send(&stamped(0)).unwrap();
    assert_eq!(pw.notifies.load(Ordering::Relaxed), 0);
    assert_eq!(unstamp(&rx.recv_wait(None).unwrap().unwrap()), Some(0));
    // Under load nobody sleeps: no syscalls at all.
    for id in 1..1000 {
        tx.send(&stamped(id)).unwrap();
        assert_eq!(unstamp(&rx.recv_wait(None).unwrap().unwrap()), Some(id));
    }
    assert_eq!(tx.counters().syscalls() + rx.counters().syscalls(), 1);
    // A consumer that announced sleep gets exactly one notify.
    region.scribble(libchan::layout::SLEEPING_OFFSET, &1u32.to_le_bytes());
    tx.send(&stamped(1000)).unwrap();
    tx.send(&stamped(1001)).unwrap();
    assert_eq!(
        (pw.notifies.load(Ordering::Relaxed), tx.counters().notifies),
        (1, 1)
    );
}

#[test]
fn bad_magic_is_refused_by_both_ends_until_repaired() {
    let region = HostRegion::channel(4);
    // Safety: the only endpoints of the region.
    let (mut tx, mut rx) = unsafe { region.ends(Polling, Polling) };
    region.write_u64(MAGIC_OFFSET, 0xBAD);
    assert_eq!(
        tx.send(&stamped(0)),
        Err(SendError::BadMagic { found: 0xBAD })
    );
    assert_eq!(rx.try_recv(), Err(RecvError::BadMagic { found: 0xBAD }));
    assert_eq!(
        rx.recv_wait(None),
        Err(RecvError::BadMagic { found: 0xBAD })
    );
    assert_eq!((tx.counters().bad_magic, rx.counters().bad_magic), (1, 2));
    region.write_u64(MAGIC_OFFSET, MAGIC_VERSION);
    assert_eq!(tx.send(&stamped(0)), Ok(0));
    assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(0));
}

#[test]
fn consumer_restart_reports_exact_in_flight_to_producer() {
    let region = HostRegion::channel(8);
    let (ptr, len) = (region.ptr(), region.len());
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut tx = unsafe { Producer::attach(ptr, len, Polling) }.unwrap();
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
    for id in 0..5 {
        tx.send(&stamped(id)).unwrap();
    }
    let mut out = [Message::default(); 2];
    assert_eq!(rx.recv_batch(&mut out), Ok(2));
    crash(rx);
    // Safety: the region is valid memory that init prepared.
    let epoch = unsafe { libchan::bump_epoch(ptr, len) }.unwrap();
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
    assert_eq!(rx.epoch(), epoch);
    assert_eq!(rx.try_recv(), Ok(None), "nothing of the old epoch leaks");
    let change = match tx.send(&stamped(5)) {
        Err(SendError::EpochChanged(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        change,
        EpochChange {
            old_epoch: 1,
            new_epoch: epoch,
            first: 2,
            count: 3
        }
    );
    // Re-send in order: they get the same sequence numbers again.
    for (seq, id) in change.sequence_numbers().zip(2..5) {
        assert_eq!(tx.send(&stamped(id)), Ok(seq));
    }
    for id in 2..5 {
        assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(id));
    }
    assert_eq!(tx.counters().epoch_changes, 1);
}

#[test]
fn producer_restart_reports_exact_drops_to_consumer() {
    let region = HostRegion::channel(8);
    let (ptr, len) = (region.ptr(), region.len());
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut tx = unsafe { Producer::attach(ptr, len, Polling) }.unwrap();
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
    for id in 0..6 {
        tx.send(&stamped(id)).unwrap();
    }
    assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(0));
    crash(tx);
    // Safety: the region is valid memory that init prepared.
    let epoch = unsafe { libchan::bump_epoch(ptr, len) }.unwrap();
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut tx = unsafe { Producer::attach(ptr, len, Polling) }.unwrap();
    // The new producer waits for the consumer to lead into the new epoch.
    assert_eq!(tx.send(&stamped(100)), Err(SendError::Full));
    assert_eq!(
        rx.try_recv(),
        Err(RecvError::EpochChanged(EpochChange {
            old_epoch: 1,
            new_epoch: epoch,
            first: 1,
            count: 5
        }))
    );
    assert_eq!(
        tx.send(&stamped(100)),
        Ok(1),
        "the new epoch starts where the consumer stands"
    );
    assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(100));
}

#[test]
fn survivor_consumer_sleeping_is_woken_by_a_waiting_producer() {
    let region = HostRegion::channel(4);
    let (pw, cw) = (Counting::default(), Counting::default());
    // Safety: the only endpoints of the region.
    let (mut tx, mut rx) = unsafe { region.ends(&pw, &cw) };
    rx.set_spin_limit(0);
    // The consumer announces sleep (its counting waiter returns at once)...
    assert_eq!(rx.recv_wait(Some(0)), Ok(None));
    region.scribble(libchan::layout::SLEEPING_OFFSET, &1u32.to_le_bytes());
    // ...someone bumps the epoch; the producer cannot send and wakes the consumer to lead.
    // Safety: the region is valid.
    unsafe { libchan::bump_epoch(region.ptr(), region.len()) }.unwrap();
    assert_eq!(tx.send(&stamped(0)), Err(SendError::Full));
    assert_eq!(pw.notifies.load(Ordering::Relaxed), 1);
    assert!(matches!(rx.try_recv(), Err(RecvError::EpochChanged(c)) if c.count == 0));
    assert!(matches!(tx.send(&stamped(0)), Err(SendError::EpochChanged(c)) if c.count == 0));
    assert_eq!(tx.send(&stamped(0)), Ok(0));
}

#[test]
fn reattach_without_bump_continues_where_the_previous_handle_stopped() {
    let region = HostRegion::channel(64);
    let (ptr, len) = (region.ptr(), region.len());
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut tx = unsafe { Producer::attach(ptr, len, Polling) }.unwrap();
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
    for id in 0..3 {
        tx.send(&stamped(id)).unwrap();
    }
    // Taken, but the consumer index is stored lazily (every 8 messages in a 64-slot ring)...
    assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(0));
    assert_eq!(region.read_u64(HEAD_OFFSET) as u32, 0);
    // ...and stored when the handle is dropped: live update hands both ends over.
    drop((tx, rx));
    assert_eq!(region.read_u64(HEAD_OFFSET) as u32, 1);
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut tx = unsafe { Producer::attach(ptr, len, Polling) }.unwrap();
    // Safety: the region outlives the handle; no other handle of this end is alive.
    let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
    assert_eq!(tx.send(&stamped(3)), Ok(3));
    for id in 1..4 {
        assert_eq!(unstamp(&rx.try_recv().unwrap().unwrap()), Some(id));
    }
}

#[test]
fn buffers_travel_by_descriptor_and_come_back() {
    const SIZE: u32 = 2048;
    let mut memory = vec![0u8; 16 * SIZE as usize];
    let (base, len) = (memory.as_mut_ptr(), memory.len());
    // Safety: `memory` outlives both views; the owner and the peer follow the lending protocol.
    let mut owner = BufferPool::new(unsafe { PoolView::new(1, base, len, SIZE) }.unwrap()).unwrap();
    // Safety: as above.
    let mut peer = unsafe { PoolView::new(1, base, len, SIZE) }.unwrap();
    let mut fwd = HostRegion::channel(16);
    let mut back = HostRegion::channel(16);
    let (mut fwd_tx, mut fwd_rx) = fwd.split(Polling, Polling);
    let (mut back_tx, mut back_rx) = back.split(Polling, Polling);

    // Lend out every buffer with a payload in it.
    for i in 0..16u8 {
        let mut d = owner.alloc().unwrap();
        owner.buffer(d).unwrap().copy_from(&[i; 100]);
        d.len = 100;
        fwd_tx.send(&Message::with_descriptor(1, d)).unwrap();
    }
    assert_eq!(owner.alloc(), None);
    assert_eq!(owner.in_use(), 16);
    // The peer validates, reads, and returns each one.
    while let Some(m) = fwd_rx.try_recv().unwrap() {
        let d = m.descriptor();
        let buf = peer.check(d).unwrap();
        let mut data = [0u8; 100];
        assert_eq!(buf.copy_to(&mut data), 100);
        assert!(data.iter().all(|&b| b == data[0]));
        back_tx.send(&m).unwrap();
    }
    // A forged descriptor is refused by the peer and never followed.
    let forged = libchan::PoolDescriptor {
        pool: 1,
        index: 3,
        offset: 2000,
        len: 100,
    };
    assert!(matches!(
        peer.check(forged),
        Err(PoolError::RangeOutOfBounds { .. })
    ));
    assert_eq!(peer.counters().bad_range, 1);
    // The owner takes them back; a second return of the same buffer is a double free.
    let mut first = None;
    while let Some(m) = back_rx.try_recv().unwrap() {
        owner.free(m.descriptor()).unwrap();
        first.get_or_insert(m.descriptor());
    }
    assert_eq!(owner.in_use(), 0);
    let again = first.unwrap();
    assert_eq!(
        owner.free(again),
        Err(PoolError::NotAllocated { index: again.index })
    );
    assert_eq!(owner.counters().double_free, 1);
}

#[test]
fn arm_and_disarm_for_several_inputs() {
    use libchan::{Message, Polling};
    let mut a = common::HostRegion::channel(16);
    let mut b = common::HostRegion::channel(16);
    let (mut txa, mut rxa) = a.split(Polling, Polling);
    let (_txb, mut rxb) = b.split(Polling, Polling);
    // Nothing anywhere: both stay armed, so a publish on either notifies.
    assert_eq!(rxa.arm(), Ok(false));
    assert_eq!(rxb.arm(), Ok(false));
    txa.send(&Message::new(1)).unwrap();
    assert_eq!(
        txa.counters().notifies,
        1,
        "the armed consumer was notified"
    );
    rxa.disarm();
    rxb.disarm();
    // A message already there: arm says so and does not stay armed.
    assert_eq!(rxa.arm(), Ok(true));
    txa.send(&Message::new(2)).unwrap();
    assert_eq!(txa.counters().notifies, 1, "not armed any more: no syscall");
    assert_eq!(rxa.try_recv().unwrap().map(|m| m.tag), Some(1));
}
