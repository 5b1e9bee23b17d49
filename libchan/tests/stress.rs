//! Multi-threaded stress: real threads move millions of messages through a ring and check every
//! one (order and contents), with single and batched operations, sleeping consumers, and
//! restarts of either end while traffic flows.
//!
//! `LIBCHAN_STRESS_MSGS=N` sets the message count of the main runs (default 20 million in
//! release, 2 million in debug builds); release builds also move 300 million messages in one run
//! (`cargo test -p libchan --release --test stress`, part of `cargo xtask test`).
#![cfg(not(loom))]

mod common;

use common::{Event, HostRegion, crash, stamped, unstamp};
use libchan::{Consumer, Message, Producer, RecvError, SendError};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

fn stress_msgs() -> u64 {
    std::env::var("LIBCHAN_STRESS_MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            2_000_000
        } else {
            20_000_000
        })
}

/// Backs off politely: the machine may have fewer cores than threads.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

/// One message at a time each way; the consumer sleeps when idle.
fn run_single(total: u64, capacity: u32) {
    let mut region = HostRegion::channel(capacity);
    let event = Event::default();
    let (mut tx, mut rx) = region.split(&event, &event);
    let (tx_counters, rx_counters) = thread::scope(|s| {
        let tx = s.spawn(move || {
            for id in 0..total {
                let msg = stamped(id);
                let mut spins = 0;
                loop {
                    match tx.send(&msg) {
                        Ok(_) => break,
                        Err(SendError::Full) => backoff(&mut spins),
                        Err(e) => panic!("send {id}: {e:?}"),
                    }
                }
            }
            tx.counters()
        });
        let rx = s.spawn(move || {
            for id in 0..total {
                let msg = rx.recv_wait(None).expect("recv").expect("a message");
                assert_eq!(
                    unstamp(&msg),
                    Some(id),
                    "message {id} corrupt or out of order"
                );
            }
            assert_eq!(rx.try_recv(), Ok(None));
            rx.counters()
        });
        (tx.join().expect("producer"), rx.join().expect("consumer"))
    });
    eprintln!("single cap={capacity}: {tx_counters:?} {rx_counters:?}");
    assert_eq!(tx_counters.sent, total);
    assert_eq!(rx_counters.received, total);
    assert_eq!(tx_counters.rejected() + rx_counters.rejected(), 0);
    // Every sleep of the consumer was paired with at most one notify.
    assert!(tx_counters.notifies <= rx_counters.waits + 1);
}

/// Batches of up to 64 both ways.
fn run_batched(total: u64, capacity: u32) {
    let mut region = HostRegion::channel(capacity);
    let event = Event::default();
    let (mut tx, mut rx) = region.split(&event, &event);
    thread::scope(|s| {
        s.spawn(move || {
            let mut batch = [Message::default(); 64];
            let mut next = 0u64;
            let mut spins = 0;
            while next < total {
                let n = (total - next).min(64) as usize;
                for (i, m) in batch[..n].iter_mut().enumerate() {
                    *m = stamped(next + i as u64);
                }
                let mut done = 0;
                while done < n {
                    match tx.send_batch(&batch[done..n]) {
                        Ok(k) => {
                            done += k;
                            spins = 0;
                        }
                        Err(SendError::Full) => backoff(&mut spins),
                        Err(e) => panic!("send_batch at {next}: {e:?}"),
                    }
                }
                next += n as u64;
            }
            assert_eq!(tx.counters().sent, total);
        });
        s.spawn(move || {
            let mut out = [Message::default(); 64];
            let mut next = 0u64;
            while next < total {
                let n = rx.recv_batch_wait(&mut out, None).expect("recv_batch");
                for m in &out[..n] {
                    assert_eq!(
                        unstamp(m),
                        Some(next),
                        "message {next} corrupt or out of order"
                    );
                    next += 1;
                }
            }
            let c = rx.counters();
            assert_eq!(c.received, total);
            assert_eq!(c.rejected(), 0);
        });
    });
}

#[test]
fn stress_single_messages() {
    // A big ring: on a busy machine the two threads often do not run at the same time, and
    // every hand-over then costs a scheduling quantum.
    run_single(stress_msgs(), 4096);
}

#[test]
fn stress_batched() {
    run_batched(stress_msgs(), 4096);
}

#[test]
fn stress_tiny_ring() {
    // Capacity 1 and 2: every message fills the ring, every index store is contended.
    run_single(stress_msgs() / 100, 1);
    run_single(stress_msgs() / 100, 2);
}

/// Only in optimised builds: unoptimised, 300 million messages would take many minutes.
#[cfg(not(debug_assertions))]
#[test]
fn stress_300_million() {
    run_batched(300_000_000, 4096);
}

/// What a producer remembers of what it sent: the last `capacity` (sequence number, id) pairs,
/// which is all that can ever be in flight.
#[derive(Default)]
struct SentLog {
    entries: std::collections::VecDeque<(u32, u64)>,
}

impl SentLog {
    fn record(&mut self, seq: u32, id: u64) {
        if self.entries.len() == 64 {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, id));
    }

    /// Ids of the in-flight messages, in order; forgets them.
    fn in_flight(&mut self, c: &libchan::EpochChange) -> Vec<u64> {
        let ids: Vec<u64> = c
            .sequence_numbers()
            .map(|s| {
                self.entries
                    .iter()
                    .find(|(q, _)| *q == s)
                    .map(|&(_, id)| id)
                    .expect("logged")
            })
            .collect();
        self.entries.clear();
        ids
    }
}

/// The consumer "crashes" every `every` messages: its handle vanishes without a destructor, and
/// its replacement bumps the epoch and attaches. The producer re-sends what it is told was in
/// flight. Every id must arrive intact at least once.
#[test]
fn stress_consumer_restarts() {
    let total: u64 = stress_msgs() / 10;
    let every = 49_999u64;
    let region = HostRegion::channel(64);
    let event = Event::default();
    let done = AtomicBool::new(false);
    let (ptr, len) = (region.ptr(), region.len());
    struct Ptr(*mut u8);
    // Safety: only the address crosses threads; the region outlives the scope.
    unsafe impl Send for Ptr {}
    // Safety: as for Send: only the address is shared.
    unsafe impl Sync for Ptr {}
    let p = Ptr(ptr);
    let (producer_stats, consumer_stats) = thread::scope(|s| {
        let (p, event, done) = (&p, &event, &done);
        let prod = s.spawn(move || {
            // Safety: the region outlives the scope and this is the only producer.
            let mut tx = unsafe { Producer::attach(p.0, len, event) }.expect("attach");
            let mut log = SentLog::default();
            let mut resend = std::collections::VecDeque::new();
            let (mut next, mut resent, mut changes) = (0u64, 0u64, 0u64);
            let mut spins = 0;
            while !done.load(Ordering::Acquire) {
                let id = match resend.front() {
                    Some(&id) => id,
                    None if next < total => next,
                    None => {
                        // Nothing left to send: keep watching for epoch changes.
                        match tx.free_slots() {
                            Err(SendError::EpochChanged(c)) => {
                                changes += 1;
                                resend.extend(log.in_flight(&c));
                            }
                            Err(e) if !matches!(e, SendError::Full) => panic!("{e:?}"),
                            _ => backoff(&mut spins),
                        }
                        continue;
                    }
                };
                match tx.send(&stamped(id)) {
                    Ok(seq) => {
                        log.record(seq, id);
                        if resend.front() == Some(&id) {
                            resend.pop_front();
                            resent += 1;
                        } else {
                            next += 1;
                        }
                        spins = 0;
                    }
                    Err(SendError::Full) => backoff(&mut spins),
                    Err(SendError::EpochChanged(c)) => {
                        changes += 1;
                        assert!(c.count <= 64);
                        // Re-send in order, before the message that was refused.
                        let lost = log.in_flight(&c);
                        for id in lost.into_iter().rev() {
                            resend.push_front(id);
                        }
                    }
                    Err(e) => panic!("send: {e:?}"),
                }
            }
            (resent, changes, tx.counters())
        });
        let cons = s.spawn(move || {
            let attach = || {
                // Safety: the region outlives the scope; the previous consumer was dropped.
                unsafe { Consumer::attach(p.0, len, event) }.expect("attach")
            };
            let mut rx = attach();
            let mut seen = vec![false; total as usize];
            let (mut distinct, mut dups, mut since, mut restarts) = (0u64, 0u64, 0u64, 0u64);
            while distinct < total {
                match rx.recv_wait(Some(1_000_000)) {
                    Ok(Some(m)) => {
                        let id = unstamp(&m).expect("torn or corrupt message");
                        if seen[id as usize] {
                            dups += 1;
                        } else {
                            seen[id as usize] = true;
                            distinct += 1;
                        }
                        since += 1;
                        if since == every {
                            // Crash: no goodbye, the replacement bumps the epoch.
                            since = 0;
                            restarts += 1;
                            crash(rx);
                            // Safety: as for `attach`.
                            unsafe { libchan::bump_epoch(p.0, len) }.expect("bump");
                            rx = attach();
                        }
                    }
                    Ok(None) => {}
                    Err(e) => panic!("recv: {e:?}"),
                }
            }
            done.store(true, Ordering::Release);
            (dups, restarts)
        });
        (
            prod.join().expect("producer"),
            cons.join().expect("consumer"),
        )
    });
    let (resent, changes, pc) = producer_stats;
    let (dups, restarts) = consumer_stats;
    eprintln!(
        "consumer restarts: {total} ids, {restarts} restarts, {resent} re-sent, {dups} duplicates"
    );
    assert!(restarts > 0);
    assert_eq!(changes, restarts, "the producer saw every restart");
    assert_eq!(pc.epoch_changes, restarts);
    assert_eq!(pc.rejected(), 0);
    assert!(dups <= resent, "duplicates only from re-sends");
    drop(region);
}

/// The producer "crashes" every `every` messages and a new one takes over with fresh ids. The
/// surviving consumer must see ids strictly increasing, never a torn message, and for every
/// epoch exactly as many received plus reported-dropped as were published.
#[test]
fn stress_producer_restarts() {
    let total: u64 = stress_msgs() / 10;
    let every = 50_021u64;
    let region = HostRegion::channel(64);
    let event = Event::default();
    let published: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    struct Ptr(*mut u8);
    // Safety: only the address crosses threads; the region outlives the scope.
    unsafe impl Send for Ptr {}
    // Safety: as for Send: only the address is shared.
    unsafe impl Sync for Ptr {}
    let p = Ptr(region.ptr());
    let len = region.len();
    thread::scope(|s| {
        let (p, event, done, published) = (&p, &event, &done, &published);
        s.spawn(move || {
            let attach = || {
                // Safety: the region outlives the scope; the previous producer was dropped.
                unsafe { Producer::attach(p.0, len, event) }.expect("attach")
            };
            let mut tx = attach();
            let (mut id, mut in_epoch, mut spins) = (0u64, 0u64, 0);
            while id < total {
                match tx.send(&stamped(id)) {
                    Ok(_) => {
                        id += 1;
                        in_epoch += 1;
                        spins = 0;
                        if in_epoch == every {
                            published.lock().unwrap().push(in_epoch);
                            in_epoch = 0;
                            crash(tx);
                            // Safety: as for `attach`.
                            unsafe { libchan::bump_epoch(p.0, len) }.expect("bump");
                            tx = attach();
                            // Wake the survivor in case it sleeps.
                            tx.notify_peer();
                        }
                    }
                    Err(SendError::Full) => backoff(&mut spins),
                    Err(e) => panic!("send: {e:?}"),
                }
            }
            published.lock().unwrap().push(in_epoch);
            done.store(true, Ordering::Release);
            tx.notify_peer();
        });
        s.spawn(move || {
            // Safety: the region outlives the scope and this is the only consumer.
            let mut rx = unsafe { Consumer::attach(p.0, len, event) }.expect("attach");
            let mut last: Option<u64> = None;
            let (mut received_in_epoch, mut per_epoch) = (0u64, Vec::new());
            loop {
                match rx.recv_wait(Some(1_000_000)) {
                    Ok(Some(m)) => {
                        let id = unstamp(&m).expect("torn or corrupt message");
                        assert!(last.is_none_or(|l| id > l), "id {id} after {last:?}");
                        last = Some(id);
                        received_in_epoch += 1;
                    }
                    Ok(None) => {
                        if done.load(Ordering::Acquire) && rx.try_recv() == Ok(None) {
                            break;
                        }
                    }
                    Err(RecvError::EpochChanged(c)) => {
                        assert_eq!(
                            c.first,
                            rx.next_seq(),
                            "dropped range starts where we stand"
                        );
                        per_epoch.push(received_in_epoch + c.count as u64);
                        received_in_epoch = 0;
                    }
                    Err(e) => panic!("recv: {e:?}"),
                }
            }
            per_epoch.push(received_in_epoch);
            let published = published.lock().unwrap();
            let dropped: u64 = published.iter().sum::<u64>() - rx.counters().received;
            eprintln!(
                "producer restarts: {} epochs, {} received, {dropped} dropped unread",
                per_epoch.len(),
                rx.counters().received
            );
            assert_eq!(
                per_epoch, *published,
                "received + dropped == published, per epoch"
            );
            assert_eq!(rx.counters().rejected(), 0);
        });
    });
}
