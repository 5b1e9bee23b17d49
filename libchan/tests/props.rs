//! Property tests: descriptor validation and the buffer pool against a reference model, and the
//! ring's validation against corrupted shared memory. Garbage written into a region must give
//! typed errors and counters, never a panic or an out-of-bounds access.
#![cfg(not(loom))]

mod common;

use common::{HostRegion, stamped};
use libchan::layout::{
    CAPACITY_OFFSET, EPOCH_OFFSET, HEAD_OFFSET, MAGIC_OFFSET, MAGIC_VERSION, TAIL_OFFSET,
};
use libchan::{
    BufferPool, Consumer, Counters, Message, Polling, PoolDescriptor, PoolError, PoolView,
    Producer, RecvError, RegionError, SendError,
};
use proptest::prelude::*;
use std::collections::HashSet;

/// Reference model of `PoolView::validate`.
fn model_check(id: u16, count: u32, size: u32, d: &PoolDescriptor) -> Result<(), PoolError> {
    if d.pool != id {
        Err(PoolError::WrongPool {
            expected: id,
            found: d.pool,
        })
    } else if d.index >= count {
        Err(PoolError::IndexOutOfRange {
            index: d.index,
            count,
        })
    } else if d.offset as u64 + d.len as u64 > size as u64 {
        Err(PoolError::RangeOutOfBounds {
            offset: d.offset,
            len: d.len,
            buffer_size: size,
        })
    } else {
        Ok(())
    }
}

/// The counter a pool refusal must bump.
fn pool_counter(c: &Counters, e: &PoolError) -> u64 {
    match e {
        PoolError::WrongPool { .. } => c.wrong_pool,
        PoolError::IndexOutOfRange { .. } => c.bad_index,
        PoolError::RangeOutOfBounds { .. } => c.bad_range,
        PoolError::NotAllocated { .. } => c.double_free,
    }
}

/// Descriptors that are often nearly valid and sometimes wild.
fn descriptor(id: u16, count: u32, size: u32) -> impl Strategy<Value = PoolDescriptor> {
    (
        prop_oneof![Just(id), any::<u16>()],
        prop_oneof![0..count + 2, any::<u32>()],
        prop_oneof![0..size + 2, any::<u32>()],
        prop_oneof![0..size + 2, any::<u32>()],
    )
        .prop_map(|(pool, index, offset, len)| PoolDescriptor {
            pool,
            index,
            offset,
            len,
        })
}

fn pool_setup() -> impl Strategy<Value = (u16, u32, u32)> {
    (any::<u16>(), 1u32..40, 1u32..300)
}

proptest! {
    #[test]
    fn descriptor_roundtrips_through_a_message(
        pool in any::<u16>(), index in any::<u32>(), offset in any::<u32>(), len in any::<u32>(),
        tag in any::<u32>(),
    ) {
        let d = PoolDescriptor { pool, index, offset, len };
        let m = Message::with_descriptor(tag, d);
        let back = Message::from_words(m.to_words());
        prop_assert_eq!(back, m);
        prop_assert_eq!(back.descriptor(), d);
        prop_assert_eq!(back.tag, tag);
    }

    #[test]
    fn any_slot_contents_decode(words in any::<[u64; 8]>()) {
        let m = Message::from_words(words);
        prop_assert_eq!(m.to_words(), words);
        let mut bytes = [0u8; Message::PAYLOAD_BYTES];
        prop_assert!(m.copy_bytes(&mut bytes) <= Message::PAYLOAD_BYTES);
        let _ = m.descriptor();
    }

    #[test]
    fn descriptor_validation_matches_model(
        (id, count, size, descs) in pool_setup().prop_flat_map(|(id, count, size)| {
            (Just(id), Just(count), Just(size),
             prop::collection::vec(descriptor(id, count, size), 1..40))
        })
    ) {
        let mut mem = vec![0u8; (count * size) as usize + 7];
        let (base, len) = (mem.as_mut_ptr(), count as usize * size as usize);
        // Safety: `mem` outlives the view and is only touched through it in this test.
        let mut view = unsafe { PoolView::new(id, base, len, size) }.unwrap();
        prop_assert_eq!(view.count(), count);
        for d in descs {
            let before = view.counters();
            let expected = model_check(id, count, size, &d);
            match view.check(d) {
                Ok(buf) => {
                    prop_assert_eq!(expected, Ok(()));
                    let start = buf.as_ptr() as usize - base as usize;
                    prop_assert_eq!(start, (d.index * size + d.offset) as usize);
                    prop_assert!(start + buf.len() <= len, "buffer reaches past the pool");
                    // Touch every byte the descriptor names: in bounds by construction.
                    let mut copy = vec![0u8; buf.len()];
                    prop_assert_eq!(buf.copy_to(&mut copy), buf.len());
                    prop_assert_eq!(buf.copy_from(&copy), buf.len());
                    prop_assert_eq!(view.counters(), before);
                }
                Err(e) => {
                    prop_assert_eq!(Err(e), expected);
                    let (now, was) = (view.counters(), before);
                    prop_assert_eq!(pool_counter(&now, &e), pool_counter(&was, &e) + 1);
                    prop_assert_eq!(view.counters().rejected(), before.rejected() + 1);
                }
            }
        }
    }

    #[test]
    fn buffer_pool_matches_model(
        (id, count, size, ops) in pool_setup().prop_flat_map(|(id, count, size)| {
            (Just(id), Just(count), Just(size), prop::collection::vec(
                prop_oneof![
                    Just(None),                              // alloc
                    descriptor(id, count, size).prop_map(Some), // return a descriptor
                ], 1..120))
        })
    ) {
        let mut mem = vec![0u8; (count * size) as usize];
        let len = mem.len();
        // Safety: `mem` outlives the pool and is only touched through it in this test.
        let view = unsafe { PoolView::new(id, mem.as_mut_ptr(), len, size) }.unwrap();
        let mut pool = BufferPool::new(view).unwrap();
        let mut lent: HashSet<u32> = HashSet::new();
        for op in ops {
            let before = pool.counters();
            match op {
                None => match pool.alloc() {
                    Some(d) => {
                        prop_assert!(d.index < count && d.pool == id && d.len == size);
                        prop_assert!(lent.insert(d.index), "handed out twice");
                    }
                    None => prop_assert_eq!(lent.len() as u32, count),
                },
                Some(d) => {
                    let expected = model_check(id, count, size, &d).and_then(|()| {
                        if lent.contains(&d.index) { Ok(()) }
                        else { Err(PoolError::NotAllocated { index: d.index }) }
                    });
                    let got = pool.free(d);
                    prop_assert_eq!(got, expected);
                    match got {
                        Ok(()) => { lent.remove(&d.index); }
                        Err(e) => prop_assert_eq!(
                            pool_counter(&pool.counters(), &e), pool_counter(&before, &e) + 1),
                    }
                }
            }
            prop_assert_eq!(pool.in_use(), lent.len() as u32);
            for i in 0..count {
                prop_assert_eq!(pool.is_lent(i), lent.contains(&i));
            }
        }
    }
}

/// One operation on a channel, possibly hostile.
#[derive(Clone, Debug)]
enum Op {
    Send,
    SendBatch(usize),
    Recv,
    RecvBatch(usize),
    RecvWait,
    FreeSlots,
    /// Write `bytes` at `offset` (taken modulo the region length).
    Scribble(usize, Vec<u8>),
    /// Write a whole word at one of the interesting offsets.
    Word(usize, u64),
    /// Write only the position half of the tail (`true`) or head index, keeping its epoch.
    Pos(bool, u32),
    /// Bump the epoch, as a restarting peer would.
    Bump,
}

fn op() -> impl Strategy<Value = Op> {
    let interesting = prop::sample::select(vec![
        MAGIC_OFFSET,
        EPOCH_OFFSET,
        CAPACITY_OFFSET,
        TAIL_OFFSET,
        HEAD_OFFSET,
    ]);
    prop_oneof![
        4 => Just(Op::Send),
        2 => (1usize..6).prop_map(Op::SendBatch),
        4 => Just(Op::Recv),
        2 => (1usize..6).prop_map(Op::RecvBatch),
        1 => Just(Op::RecvWait),
        1 => Just(Op::FreeSlots),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(o, b)| Op::Scribble(o, b)),
        1 => (interesting, any::<u64>()).prop_map(|(o, v)| Op::Word(o, v)),
        2 => (any::<bool>(), any::<u32>()).prop_map(|(t, v)| Op::Pos(t, v)),
        1 => Just(Op::Bump),
    ]
}

/// Checks that an error was counted exactly once, in the right counter.
fn counted_send(before: &Counters, after: &Counters, r: &Result<usize, SendError>) -> bool {
    match r {
        Ok(_) => after.rejected() == before.rejected(),
        Err(SendError::Full) => after.rejected() == before.rejected(),
        Err(SendError::EpochChanged(_)) => after.epoch_changes == before.epoch_changes + 1,
        Err(SendError::BadMagic { .. }) => after.bad_magic == before.bad_magic + 1,
        Err(SendError::IndexJump { .. }) => after.index_jumps == before.index_jumps + 1,
    }
}

fn counted_recv(before: &Counters, after: &Counters, r: &Result<usize, RecvError>) -> bool {
    match r {
        Ok(_) => after.rejected() == before.rejected(),
        Err(RecvError::EpochChanged(_)) => after.epoch_changes == before.epoch_changes + 1,
        Err(RecvError::BadMagic { .. }) => after.bad_magic == before.bad_magic + 1,
        Err(RecvError::IndexJump { .. }) => after.index_jumps == before.index_jumps + 1,
    }
}

/// Runs `ops` against both ends of `region` from one thread.
fn run_ops(region: &HostRegion, ops: &[Op]) -> Result<(), TestCaseError> {
    // Safety: the region outlives both handles; one producer and one consumer.
    let tx = unsafe { Producer::attach(region.ptr(), region.len(), Polling) };
    // Safety: as above.
    let rx = unsafe { Consumer::attach(region.ptr(), region.len(), Polling) };
    let (mut tx, mut rx) = match (tx, rx) {
        (Ok(tx), Ok(rx)) => (tx, rx),
        _ => return Ok(()), // refused at attach: fine, nothing was followed
    };
    rx.set_spin_limit(0);
    let capacity = tx.capacity();
    let mut id = 0u64;
    let mut batch = vec![Message::default(); 8];
    for op in ops {
        let (tb, rb) = (tx.counters(), rx.counters());
        match op {
            Op::Send => {
                let r = tx.send(&stamped(id)).map(|_| 1);
                id += 1;
                prop_assert!(counted_send(&tb, &tx.counters(), &r), "{r:?}");
            }
            Op::SendBatch(n) => {
                for (i, m) in batch[..*n].iter_mut().enumerate() {
                    *m = stamped(id + i as u64);
                }
                id += *n as u64;
                let r = tx.send_batch(&batch[..*n]);
                if let Ok(k) = r {
                    prop_assert!(k <= *n);
                }
                prop_assert!(counted_send(&tb, &tx.counters(), &r), "{r:?}");
            }
            Op::Recv => {
                let r = rx.try_recv().map(|m| m.is_some() as usize);
                prop_assert!(counted_recv(&rb, &rx.counters(), &r), "{r:?}");
            }
            Op::RecvBatch(n) => {
                let r = rx.recv_batch(&mut batch[..*n]);
                if let Ok(k) = r {
                    prop_assert!(k <= *n);
                }
                prop_assert!(counted_recv(&rb, &rx.counters(), &r), "{r:?}");
            }
            Op::RecvWait => {
                let r = rx.recv_wait(Some(0)).map(|m| m.is_some() as usize);
                prop_assert!(counted_recv(&rb, &rx.counters(), &r), "{r:?}");
            }
            Op::FreeSlots => {
                let r = tx.free_slots().map(|n| n as usize);
                if let Ok(n) = r {
                    prop_assert!(n <= capacity as usize);
                }
                prop_assert!(counted_send(&tb, &tx.counters(), &r), "{r:?}");
            }
            Op::Scribble(offset, bytes) => region.scribble(*offset, bytes),
            Op::Word(offset, value) => region.write_u64(*offset, *value),
            Op::Pos(tail, value) => region.scribble(
                if *tail { TAIL_OFFSET } else { HEAD_OFFSET },
                &value.to_le_bytes(),
            ),
            Op::Bump => {
                // Safety: the region is valid; bump only touches atomics.
                let _ = unsafe { libchan::bump_epoch(region.ptr(), region.len()) };
            }
        }
        // Whatever happened, an end never believes in more than a ringful.
        prop_assert!(rx.counters().received <= tx.counters().sent + u64::from(capacity) * 64);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// A valid channel under random traffic and random corruption of the header, the indices
    /// and the slots: errors are typed and counted, nothing panics.
    #[test]
    fn corrupted_channel_is_refused_not_followed(
        capacity in prop::sample::select(vec![1u32, 2, 4, 8, 16]),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let region = HostRegion::channel(capacity);
        run_ops(&region, &ops)?;
    }

    /// A region full of garbage (sometimes with a valid magic word and capacity): attach
    /// refuses it or the ends cope with it.
    #[test]
    fn garbage_region_is_refused_or_survived(
        garbage in prop::collection::vec(any::<u8>(), 4096 + 16 * 64),
        valid_magic in any::<bool>(),
        capacity in prop_oneof![Just(16u32), any::<u32>()],
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let region = HostRegion::zeroed(garbage.len());
        region.scribble(0, &garbage);
        if valid_magic {
            region.write_u64(MAGIC_OFFSET, MAGIC_VERSION);
            region.scribble(CAPACITY_OFFSET, &capacity.to_le_bytes());
        }
        // Safety: the region is valid memory; attach only reads atomics.
        let attached = unsafe { Consumer::attach(region.ptr(), region.len(), Polling) };
        match attached {
            Ok(rx) => {
                prop_assert!(valid_magic);
                prop_assert_eq!(rx.capacity(), capacity);
            }
            Err(RegionError::BadMagic { found }) => {
                prop_assert!(!valid_magic && found >> 32 != MAGIC_VERSION >> 32)
            }
            Err(RegionError::BadVersion { .. }) => prop_assert!(!valid_magic),
            Err(RegionError::BadCapacity { capacity: c }) => prop_assert!(
                c == 0 || !c.is_power_of_two() || c > libchan::layout::MAX_CAPACITY),
            Err(RegionError::TooSmall { needed, len }) => prop_assert!(needed > len),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
        run_ops(&region, &ops)?;
    }

    /// A producer index more than `capacity` ahead of the consumer, or behind what the consumer
    /// already saw, is refused and counted; the consumer then still works once it is repaired.
    #[test]
    fn producer_index_jumps_are_refused(
        capacity in prop::sample::select(vec![1u32, 2, 8, 64]),
        sent in 0u32..64,
        ahead in 1u32..1000,
        behind in 1u32..64,
    ) {
        let mut region = HostRegion::channel(capacity);
        let tail_word = region.read_u64(TAIL_OFFSET);
        let (mut tx, mut rx) = region.split(Polling, Polling);
        let sent = sent.min(capacity);
        for id in 0..sent as u64 {
            prop_assert!(tx.send(&stamped(id)).is_ok());
        }
        let mut out = vec![Message::default(); sent as usize];
        prop_assert_eq!(rx.recv_batch(&mut out), Ok(sent as usize));
        let epoch_bits = tail_word & !0xFFFF_FFFF;
        let pos = rx.next_seq();
        drop((tx, rx));
        for bad in [pos.wrapping_add(capacity + ahead), pos.wrapping_sub(behind)] {
            // Safety: the earlier handles are gone; this is the only consumer.
            let mut rx = unsafe { Consumer::attach(region.ptr(), region.len(), Polling) }.unwrap();
            region.write_u64(TAIL_OFFSET, epoch_bits | bad as u64);
            prop_assert_eq!(rx.try_recv(), Err(RecvError::IndexJump { found: bad }));
            prop_assert_eq!(rx.counters().index_jumps, 1);
            let mut out = [Message::default(); 4];
            prop_assert_eq!(rx.recv_batch(&mut out), Err(RecvError::IndexJump { found: bad }));
            prop_assert_eq!(rx.counters().index_jumps, 2);
            // Repaired: empty again, no error.
            region.write_u64(TAIL_OFFSET, epoch_bits | pos as u64);
            prop_assert_eq!(rx.try_recv(), Ok(None));
        }
    }

    /// A consumer index that goes backwards or past the producer is refused by the producer.
    #[test]
    fn consumer_index_jumps_are_refused(
        capacity in prop::sample::select(vec![1u32, 2, 8, 64]),
        ahead in 1u32..1000,
    ) {
        let region = HostRegion::channel(capacity);
        let head_word = region.read_u64(HEAD_OFFSET);
        let epoch_bits = head_word & !0xFFFF_FFFF;
        // Safety: the only endpoints of this region.
        let (mut tx, _rx) = unsafe { region.ends(Polling, Polling) };
        for id in 0..capacity as u64 {
            prop_assert!(tx.send(&stamped(id)).is_ok());
        }
        prop_assert_eq!(tx.send(&stamped(0)), Err(SendError::Full));
        // Past the producer.
        let bad = capacity.wrapping_add(ahead);
        region.write_u64(HEAD_OFFSET, epoch_bits | bad as u64);
        prop_assert_eq!(tx.send(&stamped(0)), Err(SendError::IndexJump { found: bad }));
        prop_assert_eq!(tx.counters().index_jumps, 1);
        // Backwards from a position the producer already saw.
        region.write_u64(HEAD_OFFSET, epoch_bits | 1);
        prop_assert!(tx.send(&stamped(0)).is_ok());
        region.write_u64(HEAD_OFFSET, epoch_bits);
        prop_assert_eq!(tx.send(&stamped(0)), Err(SendError::IndexJump { found: 0 }));
        prop_assert_eq!(tx.counters().index_jumps, 2);
    }
}
