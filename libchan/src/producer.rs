//! The sending end of a channel.

use crate::counters::Counters;
use crate::error::{EpochChange, RegionError, SendError};
use crate::gate::Gate;
use crate::layout::{MAGIC_VERSION, tag, untag};
use crate::message::Message;
use crate::region::Shared;
use crate::sync::{Ordering, fence};
use crate::waiter::Waiter;

/// The sending end of one channel. Owns the producer index; `Send` (move it to the thread that
/// produces) but neither `Clone` nor `Sync`: one region has at most one producer.
///
/// Positions are `u32` and wrap; the position a message is published at is its *sequence
/// number*, returned by [`Producer::send`] and used by [`EpochChange`]. Positions carry on
/// across epochs: a new epoch starts where the consumer stands.
pub struct Producer<'a, W: Waiter> {
    shared: Shared<'a>,
    waiter: W,
    /// Epoch this end is in.
    epoch: u32,
    /// Next position to publish (local and authoritative once `tail_known`).
    tail: u32,
    /// Last consumer position validated (a cache: refreshed only when the ring looks full).
    head: u32,
    /// `tail` is a position of `epoch`. False for a producer that attached after a restart: it
    /// starts where the consumer is, once the consumer index carries the current epoch.
    tail_known: bool,
    /// The consumer index has been seen carrying our epoch, so `head` is valid.
    peer_ready: bool,
    counters: Counters,
    /// Set: every send goes through it (the kernel-IPC baseline, [`crate::Gate`]).
    gate: Option<&'a (dyn Gate + Sync)>,
    /// Where the region is mapped (the gate's name for it).
    base: usize,
}

impl<'a, W: Waiter> Producer<'a, W> {
    /// Attaches the producer end of the region at `ptr..ptr + len`, which [`crate::init`]
    /// created. `waiter.notify()` is called when the consumer is asleep and a message arrives.
    ///
    /// If the producer index already carries the current epoch (a fresh region, or a handover
    /// without restart) the producer continues from it. Otherwise (a restart: the epoch was
    /// bumped) it leaves the index alone, so that a surviving consumer can still count what the
    /// previous producer left unread, and starts at the consumer's position as soon as the
    /// consumer index carries the current epoch; until then `send` reports `Full`.
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay valid for reads and writes for `'a`; apart from the peer it
    /// may be accessed only through this library; no other `Producer` may be attached to the
    /// region at the same time.
    pub unsafe fn attach(ptr: *mut u8, len: usize, waiter: W) -> Result<Self, RegionError> {
        // Safety: forwarded from our caller.
        let shared = unsafe { Shared::map(ptr, len)? };
        let epoch = shared.header.control.epoch.load(Ordering::Acquire);
        let (own_epoch, tail) = untag(shared.header.producer.index.load(Ordering::Acquire));
        Ok(Self {
            shared,
            waiter,
            epoch,
            tail,
            head: tail,
            tail_known: own_epoch == epoch,
            peer_ready: false,
            counters: Counters::default(),
            gate: None,
            base: ptr as usize,
        })
    }

    /// From now on every send goes through `gate` ([`crate::Gate`]: the kernel-IPC baseline).
    pub fn set_gate(&mut self, gate: &'a (dyn Gate + Sync)) {
        self.gate = Some(gate);
    }

    /// A send through the gate: the counters and `next_seq` follow it.
    fn gate_send(&mut self, gate: &dyn Gate, msgs: &[Message]) -> Result<usize, SendError> {
        match gate.send(self.base, msgs) {
            Ok((n, first)) => {
                self.tail = first.wrapping_add(n as u32);
                self.counters.sent += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e == SendError::Full {
                    self.counters.full += 1;
                }
                Err(e)
            }
        }
    }

    /// Publishes one message; returns its sequence number. Never blocks.
    pub fn send(&mut self, msg: &Message) -> Result<u32, SendError> {
        if let Some(gate) = self.gate {
            let n = self.gate_send(gate, core::slice::from_ref(msg))?;
            debug_assert_eq!(n, 1);
            return Ok(self.tail.wrapping_sub(1));
        }
        self.check_header()?;
        if self.free() == 0 {
            self.refresh_head()?;
            if self.free() == 0 {
                self.counters.full += 1;
                return Err(SendError::Full);
            }
        }
        let seq = self.tail;
        self.shared.slot(seq).write(&msg.to_words());
        self.tail = seq.wrapping_add(1);
        self.publish(1);
        Ok(seq)
    }

    /// Publishes as many of `msgs` as fit, with one index store and at most one notify for all
    /// of them; returns how many were sent. Their sequence numbers are consecutive from
    /// [`Producer::next_seq`] as read before the call. Refuses with `Full` only if none fit.
    pub fn send_batch(&mut self, msgs: &[Message]) -> Result<usize, SendError> {
        if let Some(gate) = self.gate {
            if msgs.is_empty() {
                return Ok(0);
            }
            return self.gate_send(gate, msgs);
        }
        self.check_header()?;
        if msgs.is_empty() {
            return Ok(0);
        }
        if (self.free() as usize) < msgs.len() {
            self.refresh_head()?;
        }
        let n = msgs.len().min(self.free() as usize);
        if n == 0 {
            self.counters.full += 1;
            return Err(SendError::Full);
        }
        for msg in &msgs[..n] {
            self.shared.slot(self.tail).write(&msg.to_words());
            self.tail = self.tail.wrapping_add(1);
        }
        self.publish(n as u64);
        Ok(n)
    }

    /// Sequence number the next message will get (for a producer attached after a restart,
    /// only once it has joined the epoch: after its first successful send).
    pub fn next_seq(&self) -> u32 {
        self.tail
    }

    /// Free slots as far as this end knows, refreshing the consumer index first; errors as for
    /// [`Producer::send`].
    pub fn free_slots(&mut self) -> Result<u32, SendError> {
        self.check_header()?;
        self.refresh_head()?;
        Ok(self.free())
    }

    /// Number of slots of the ring.
    pub fn capacity(&self) -> u32 {
        self.shared.capacity()
    }

    /// Epoch this end is in.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// This end's counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The waiter given at attach.
    pub fn waiter(&self) -> &W {
        &self.waiter
    }

    /// Calls the waiter's `notify` unconditionally (counted). A producer that attached after a
    /// restart may do this so that a consumer asleep in `wait` notices the new epoch at once;
    /// otherwise its first `send` wakes the consumer if the `sleeping` flag is set.
    pub fn notify_peer(&mut self) {
        self.counters.notifies += 1;
        self.waiter.notify();
    }

    #[inline(always)]
    fn free(&self) -> u32 {
        if self.peer_ready {
            self.shared.capacity() - self.tail.wrapping_sub(self.head)
        } else {
            0
        }
    }

    /// Validates the magic word and the epoch; on an epoch change moves this end to the new one.
    #[inline(always)]
    fn check_header(&mut self) -> Result<(), SendError> {
        let control = &self.shared.header.control;
        let word = control.magic_version.load(Ordering::Relaxed);
        if word != MAGIC_VERSION {
            self.counters.bad_magic += 1;
            return Err(SendError::BadMagic { found: word });
        }
        let epoch = control.epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            return self.follow_epoch(epoch);
        }
        Ok(())
    }

    /// Outstanding messages (`tail - head`) a consumer position `pos` may imply: at most what
    /// the last validated head implied (the consumer only moves forward), and at most the
    /// capacity before the first contact in this epoch.
    fn valid_head(&self, pos: u32) -> bool {
        let limit = if self.peer_ready {
            self.tail.wrapping_sub(self.head)
        } else {
            self.shared.capacity()
        };
        self.tail.wrapping_sub(pos) <= limit
    }

    /// Re-reads the consumer index.
    fn refresh_head(&mut self) -> Result<(), SendError> {
        let (epoch, pos) = untag(self.shared.header.consumer.index.load(Ordering::Acquire));
        if epoch != self.epoch {
            // The consumer has not joined this epoch yet (or wrote garbage): no space. Wake it
            // in case it sleeps through the epoch change.
            self.counters.stale_peer += 1;
            self.wake_consumer();
            return Ok(());
        }
        if !self.tail_known {
            // Attached after a restart: start where the consumer stands.
            self.start_at(pos);
            return Ok(());
        }
        if !self.valid_head(pos) {
            self.counters.index_jumps += 1;
            return Err(SendError::IndexJump { found: pos });
        }
        self.head = pos;
        self.peer_ready = true;
        Ok(())
    }

    /// Stores the tail, then wakes the consumer if (and only if) it announced it is sleeping.
    #[inline(always)]
    fn publish(&mut self, n: u64) {
        let header = self.shared.header;
        header
            .producer
            .index
            .store(tag(self.epoch, self.tail), Ordering::Release);
        self.counters.sent += n;
        // Pairs with the consumer's fence between setting `sleeping` and re-checking the tail:
        // either it sees our tail, or we see its flag.
        fence(Ordering::SeqCst);
        self.wake_consumer();
    }

    /// The region moved to `new_epoch`. The consumer leads: the new epoch starts at the position
    /// the consumer index shows once it carries `new_epoch`. Until then nothing can be sent
    /// (`Full`); the consumer is woken in case it sleeps, so that it notices.
    fn follow_epoch(&mut self, new_epoch: u32) -> Result<(), SendError> {
        let (epoch, pos) = untag(self.shared.header.consumer.index.load(Ordering::Acquire));
        if epoch != new_epoch {
            self.counters.stale_peer += 1;
            self.wake_consumer();
            return Err(SendError::Full);
        }
        // In flight: what we published past the consumer's final position. A position outside
        // what we know the consumer could have reached is garbage: then report everything we
        // have not seen consumed, which errs towards re-sending.
        let first = if !self.tail_known {
            self.tail
        } else if self.valid_head(pos) {
            pos
        } else {
            self.counters.index_jumps += 1;
            if self.peer_ready {
                self.head
            } else {
                self.tail
            }
        };
        let count = if self.tail_known {
            self.tail.wrapping_sub(first)
        } else {
            0
        };
        let change = EpochChange {
            old_epoch: self.epoch,
            new_epoch,
            first,
            count,
        };
        self.epoch = new_epoch;
        self.start_at(pos);
        self.counters.epoch_changes += 1;
        Err(SendError::EpochChanged(change))
    }

    /// Starts publishing at the consumer's position `pos` in the current epoch.
    fn start_at(&mut self, pos: u32) {
        self.tail = pos;
        self.head = pos;
        self.tail_known = true;
        self.peer_ready = true;
        self.shared
            .header
            .producer
            .index
            .store(tag(self.epoch, pos), Ordering::Release);
    }

    /// Notifies the consumer if its `sleeping` flag is set, clearing the flag.
    #[inline(always)]
    fn wake_consumer(&mut self) {
        let sleeping = &self.shared.header.wake.sleeping;
        if sleeping.load(Ordering::Relaxed) != 0 && sleeping.swap(0, Ordering::AcqRel) != 0 {
            self.counters.notifies += 1;
            self.waiter.notify();
        }
    }
}
