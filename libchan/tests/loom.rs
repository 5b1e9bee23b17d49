//! `loom` models of the channel protocol: enqueue/dequeue across wrap-around, batches, the
//! sleep/wake handshake (no lost wake-up: loom reports a deadlock if the consumer can sleep
//! through a message), and a consumer restart under a live producer (no slot shared between
//! epochs, nothing in flight unaccounted for). Slots are loom `UnsafeCell`s, so any slot access
//! the index protocol does not order is reported as a data race.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p libchan --release --test loom`
#![cfg(loom)]

mod common;

use common::{HostRegion, crash, stamped, unstamp};
use libchan::{Consumer, Message, Polling, Producer, SendError, Waiter};
use loom::sync::{Condvar, Mutex};
use loom::thread;
use std::sync::Arc;

/// Explores every interleaving with at most `LOOM_MAX_PREEMPTIONS` preemptions (default
/// below), and prints how many interleavings that was.
fn model(f: impl Fn() + Send + Sync + 'static) {
    let iterations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = iterations.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.check(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    let name = std::thread::current().name().unwrap_or("model").to_owned();
    eprintln!(
        "{name}: {} interleavings explored",
        iterations.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Preemption bound when `LOOM_MAX_PREEMPTIONS` is not set: keeps every model well under a
/// minute in release mode on the 2-core development machine.
const DEFAULT_PREEMPTIONS: usize = 4;

/// Binary semaphore on loom primitives, with the pending-notify memory `Waiter` requires.
struct LoomEvent {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl LoomEvent {
    fn new() -> Self {
        Self {
            flag: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
}

impl Waiter for LoomEvent {
    fn wait(&self, _timeout_ns: Option<u64>) {
        let mut flag = self.flag.lock().unwrap();
        while !*flag {
            flag = self.cv.wait(flag).unwrap();
        }
        *flag = false;
    }
    fn notify(&self) {
        *self.flag.lock().unwrap() = true;
        self.cv.notify_one();
    }
}

/// Sends `msg`, yielding while the ring is full.
fn send_blocking<W: Waiter>(tx: &mut Producer<'_, W>, msg: &Message) -> u32 {
    loop {
        match tx.send(msg) {
            Ok(seq) => return seq,
            Err(SendError::Full) => thread::yield_now(),
            Err(e) => panic!("send: {e:?}"),
        }
    }
}

#[test]
fn enqueue_dequeue_wraps() {
    model(|| {
        let region = Arc::new(HostRegion::channel(2));
        let r = region.clone();
        let consumer = thread::spawn(move || {
            // Safety: the region outlives the thread (Arc) and this is the only consumer.
            let mut rx = unsafe { Consumer::attach(r.ptr(), r.len(), Polling) }.unwrap();
            let mut next = 0;
            while next < 3 {
                match rx.try_recv().unwrap() {
                    Some(m) => {
                        assert_eq!(unstamp(&m), Some(next));
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
        });
        // Safety: as above, the only producer.
        let mut tx = unsafe { Producer::attach(region.ptr(), region.len(), Polling) }.unwrap();
        for id in 0..3 {
            assert_eq!(send_blocking(&mut tx, &stamped(id)), id as u32);
        }
        consumer.join().unwrap();
    });
}

#[test]
fn batches() {
    model(|| {
        let region = Arc::new(HostRegion::channel(2));
        let r = region.clone();
        let consumer = thread::spawn(move || {
            // Safety: the region outlives the thread (Arc) and this is the only consumer.
            let mut rx = unsafe { Consumer::attach(r.ptr(), r.len(), Polling) }.unwrap();
            let mut out = [Message::default(); 3];
            let mut next = 0;
            while next < 3 {
                let n = rx.recv_batch(&mut out).unwrap();
                for m in &out[..n] {
                    assert_eq!(unstamp(m), Some(next));
                    next += 1;
                }
                if n == 0 {
                    thread::yield_now();
                }
            }
        });
        // Safety: as above, the only producer.
        let mut tx = unsafe { Producer::attach(region.ptr(), region.len(), Polling) }.unwrap();
        let msgs = [stamped(0), stamped(1), stamped(2)];
        let mut sent = 0;
        while sent < 3 {
            match tx.send_batch(&msgs[sent..]) {
                Ok(n) => sent += n,
                Err(SendError::Full) => thread::yield_now(),
                Err(e) => panic!("send_batch: {e:?}"),
            }
        }
        consumer.join().unwrap();
    });
}

/// Three messages through two slots; the consumer sleeps as soon as the ring is empty (spin
/// limit 0). If a wake-up could be lost,
/// some interleaving leaves it asleep forever with a message in the ring, and loom fails the
/// model with a deadlock.
#[test]
fn sleep_wake_no_lost_wakeup() {
    model(|| {
        let region = Arc::new(HostRegion::channel(2));
        let event = Arc::new(LoomEvent::new());
        let (r, e) = (region.clone(), event.clone());
        let consumer = thread::spawn(move || {
            // Safety: the region outlives the thread (Arc) and this is the only consumer.
            let mut rx = unsafe { Consumer::attach(r.ptr(), r.len(), &*e) }.unwrap();
            rx.set_spin_limit(0);
            for id in 0..3 {
                let m = rx
                    .recv_wait(None)
                    .unwrap()
                    .expect("recv_wait(None) returns a message");
                assert_eq!(unstamp(&m), Some(id));
            }
        });
        // Safety: as above, the only producer.
        let mut tx = unsafe { Producer::attach(region.ptr(), region.len(), &*event) }.unwrap();
        for id in 0..3 {
            send_blocking(&mut tx, &stamped(id));
        }
        consumer.join().unwrap();
    });
}

/// A consumer crashes and is replaced (bump, attach) while the producer keeps sending. Every
/// message the producer published must have been taken by the old consumer or be reported in
/// flight by `EpochChanged`; the new consumer must never see an old-epoch message; and the
/// channel must work in the new epoch.
#[test]
fn consumer_restart_accounts_for_in_flight() {
    model(|| {
        let region = Arc::new(HostRegion::channel(2));
        let r = region.clone();
        let consumer = thread::spawn(move || {
            let (ptr, len) = (r.ptr(), r.len());
            // Safety: the region outlives the thread (Arc); one consumer at a time.
            let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
            let mut got = Vec::new();
            if let Some(m) = rx.try_recv().unwrap() {
                got.push(unstamp(&m).expect("intact"));
            }
            crash(rx);
            // Safety: as above.
            unsafe { libchan::bump_epoch(ptr, len) }.unwrap();
            // Safety: as above; the old consumer is gone.
            let mut rx = unsafe { Consumer::attach(ptr, len, Polling) }.unwrap();
            // Nothing of the old epoch may leak into the new one.
            assert_eq!(rx.try_recv().unwrap(), None);
            got
        });
        // Safety: as above, the only producer.
        let mut tx = unsafe { Producer::attach(region.ptr(), region.len(), Polling) }.unwrap();
        let mut by_seq = std::collections::HashMap::new();
        let mut in_flight = Vec::new();
        for id in 0..2u64 {
            match tx.send(&stamped(id)) {
                Ok(seq) => {
                    by_seq.insert(seq, id);
                }
                Err(SendError::EpochChanged(c)) => {
                    in_flight.extend(c.sequence_numbers().map(|s| by_seq[&s]));
                    // Not sent either: the caller still holds it and sends it again later.
                    in_flight.push(id);
                }
                // The consumer has not joined the new epoch yet: also kept for later.
                Err(SendError::Full) => in_flight.push(id),
                Err(e) => panic!("send: {e:?}"),
            }
        }
        let got = consumer.join().unwrap();
        // The restart is over; the producer notices now at the latest.
        if tx.epoch() == libchan::layout::INITIAL_EPOCH {
            match tx.send(&stamped(9)) {
                Err(SendError::EpochChanged(c)) => {
                    in_flight.extend(c.sequence_numbers().map(|s| by_seq[&s]));
                    // Exact: the range starts at the consumer's final position.
                    assert_eq!(c.first, got.len() as u32);
                }
                other => panic!("expected EpochChanged, got {other:?}"),
            }
        }
        for id in 0..2u64 {
            assert!(
                got.contains(&id) || in_flight.contains(&id),
                "message {id} vanished"
            );
        }
        // New epoch: a fresh consumer gets what the producer sends now.
        // Safety: the consumer thread and its handles are gone.
        let mut rx = unsafe { Consumer::attach(region.ptr(), region.len(), Polling) }.unwrap();
        assert_eq!(rx.try_recv().unwrap(), None);
        assert_eq!(tx.send(&stamped(7)), Ok(rx.next_seq()));
        assert_eq!(rx.try_recv().unwrap().and_then(|m| unstamp(&m)), Some(7));
    });
}

/// A ring of 16 slots, where the consumer stores its index only every second message: the
/// producer fills the ring with one batch and must still get the two extra slots it waits for.
#[test]
fn lazy_consumer_index() {
    model(|| {
        let region = Arc::new(HostRegion::channel(16));
        let r = region.clone();
        let consumer = thread::spawn(move || {
            // Safety: the region outlives the thread (Arc) and this is the only consumer.
            let mut rx = unsafe { Consumer::attach(r.ptr(), r.len(), Polling) }.unwrap();
            let mut next = 0;
            while next < 18 {
                match rx.try_recv().unwrap() {
                    Some(m) => {
                        assert_eq!(unstamp(&m), Some(next));
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
        });
        // Safety: as above, the only producer.
        let mut tx = unsafe { Producer::attach(region.ptr(), region.len(), Polling) }.unwrap();
        let batch: Vec<Message> = (0..16).map(stamped).collect();
        let mut sent = 0;
        while sent < 16 {
            match tx.send_batch(&batch[sent..]) {
                Ok(n) => sent += n,
                Err(SendError::Full) => thread::yield_now(),
                Err(e) => panic!("send_batch: {e:?}"),
            }
        }
        for id in 16..18 {
            send_blocking(&mut tx, &stamped(id));
        }
        consumer.join().unwrap();
    });
}

/// The producer crashes and is replaced (bump, attach) while the consumer sleeps in
/// `recv_wait`; the new producer does not call `notify_peer`, its first send must wake the
/// consumer if needed. The consumer must wake, see the epoch change, and then get the new
/// producer's message: no lost wake-up across a restart, no old message after a new one, nothing
/// torn.
#[test]
fn producer_restart_wakes_sleeping_consumer() {
    model(|| {
        let region = Arc::new(HostRegion::channel(2));
        let event = Arc::new(LoomEvent::new());
        let (r, e) = (region.clone(), event.clone());
        let consumer = thread::spawn(move || {
            // Safety: the region outlives the thread (Arc) and this is the only consumer.
            let mut rx = unsafe { Consumer::attach(r.ptr(), r.len(), &*e) }.unwrap();
            rx.set_spin_limit(0);
            // A consumer attached after the bump never saw the old epoch: nothing to report.
            let expected_changes = u32::from(rx.epoch() == libchan::layout::INITIAL_EPOCH);
            let (mut got_old, mut changes) = (false, 0);
            loop {
                match rx.recv_wait(None) {
                    Ok(Some(m)) => match unstamp(&m) {
                        Some(0) => {
                            assert!(!got_old && changes == 0, "old message after the restart");
                            got_old = true;
                        }
                        Some(1) => break,
                        other => panic!("unexpected message {other:?}"),
                    },
                    Ok(None) => panic!("recv_wait(None) returned nothing"),
                    Err(libchan::RecvError::EpochChanged(c)) => {
                        changes += 1;
                        assert!(c.count <= 1);
                        assert_eq!(c.count == 1, !got_old, "in-flight count is exact here");
                    }
                    Err(err) => panic!("recv: {err:?}"),
                }
            }
            assert_eq!(changes, expected_changes);
        });
        let (ptr, len) = (region.ptr(), region.len());
        // Safety: as above, one producer at a time.
        let mut tx = unsafe { Producer::attach(ptr, len, &*event) }.unwrap();
        send_blocking(&mut tx, &stamped(0));
        crash(tx);
        // Safety: as above.
        unsafe { libchan::bump_epoch(ptr, len) }.unwrap();
        // Safety: as above; the old producer is gone.
        let mut tx = unsafe { Producer::attach(ptr, len, &*event) }.unwrap();
        send_blocking(&mut tx, &stamped(1));
        consumer.join().unwrap();
    });
}
