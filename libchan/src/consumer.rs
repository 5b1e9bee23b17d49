//! The receiving end of a channel, with the spin-then-sleep protocol.

use crate::counters::Counters;
use crate::error::{EpochChange, RecvError, RegionError};
use crate::gate::Gate;
use crate::layout::{MAGIC_VERSION, tag, untag};
use crate::message::Message;
use crate::region::Shared;
use crate::sync::{Ordering, fence, spin_loop};
use crate::waiter::Waiter;

/// How many times [`Consumer::recv_wait`] polls an empty ring before going to sleep.
pub const DEFAULT_SPIN_LIMIT: u32 = 1000;

/// The receiving end of one channel. Owns the consumer index and the `sleeping` flag; `Send`
/// but neither `Clone` nor `Sync`: one region has at most one consumer.
pub struct Consumer<'a, W: Waiter> {
    shared: Shared<'a>,
    waiter: W,
    /// Epoch this end is in.
    epoch: u32,
    /// Next position to receive (local and authoritative).
    head: u32,
    /// Last producer position validated (a cache: refreshed only when the ring looks empty).
    tail: u32,
    /// The producer index has been seen carrying our epoch.
    peer_ready: bool,
    /// Position last stored in the consumer index.
    published: u32,
    /// `try_recv` stores the consumer index after this many messages, or sooner when it has
    /// taken every message it knows of.
    publish_every: u32,
    spin_limit: u32,
    counters: Counters,
    /// Set: every receive goes through it (the kernel-IPC baseline, [`crate::Gate`]).
    gate: Option<&'a (dyn Gate + Sync)>,
    /// Where the region is mapped (the gate's name for it).
    base: usize,
}

/// Dropping a consumer (a graceful exit, or handing the end over to a new instance) stores the
/// consumer index if `try_recv` had left it behind, so that nothing it took is re-sent after
/// the handover. A crash skips this, which is what the at-least-once rule of [`EpochChange`]
/// accounts for.
impl<W: Waiter> Drop for Consumer<'_, W> {
    fn drop(&mut self) {
        if self.gate.is_none() && self.published != self.head {
            self.publish_head();
        }
    }
}

impl<'a, W: Waiter> Consumer<'a, W> {
    /// Attaches the consumer end of the region at `ptr..ptr + len`, which [`crate::init`]
    /// created. `waiter.wait()` is where this end sleeps when the ring stays empty.
    ///
    /// The consumer continues from the position in the consumer index (its predecessor's, after
    /// a restart), re-tagging it with the current epoch if needed: the consumer leads, and a new
    /// epoch starts where it stands. It receives nothing until the producer index carries the
    /// same epoch.
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay valid for reads and writes for `'a`; apart from the peer it
    /// may be accessed only through this library; no other `Consumer` may be attached to the
    /// region at the same time.
    pub unsafe fn attach(ptr: *mut u8, len: usize, waiter: W) -> Result<Self, RegionError> {
        // Safety: forwarded from our caller.
        let shared = unsafe { Shared::map(ptr, len)? };
        let epoch = shared.header.control.epoch.load(Ordering::Acquire);
        let (own_epoch, head) = untag(shared.header.consumer.index.load(Ordering::Acquire));
        if own_epoch != epoch {
            shared
                .header
                .consumer
                .index
                .store(tag(epoch, head), Ordering::Release);
        }
        shared.header.wake.sleeping.swap(0, Ordering::Relaxed);
        let capacity = shared.capacity();
        Ok(Self {
            shared,
            waiter,
            epoch,
            head,
            tail: head,
            peer_ready: false,
            published: head,
            publish_every: (capacity / 8).clamp(1, 32),
            spin_limit: DEFAULT_SPIN_LIMIT,
            counters: Counters::default(),
            gate: None,
            base: ptr as usize,
        })
    }

    /// From now on every receive, arm and disarm goes through `gate` ([`crate::Gate`]: the
    /// kernel-IPC baseline).
    pub fn set_gate(&mut self, gate: &'a (dyn Gate + Sync)) {
        self.gate = Some(gate);
    }

    /// A receive through the gate: the counters and `next_seq` follow it.
    fn gate_recv(&mut self, gate: &dyn Gate, out: &mut [Message]) -> Result<usize, RecvError> {
        let n = gate.recv(self.base, out)?;
        self.head = self.head.wrapping_add(n as u32);
        self.counters.received += n as u64;
        Ok(n)
    }

    /// Takes the next message if there is one. Never blocks.
    ///
    /// The consumer index is stored lazily: once every `min(capacity / 8, 32)` messages, and
    /// always when this end has taken every message it knew of (so before it could sleep), which
    /// keeps the producer's cache line from bouncing on every message when the ring is full.
    pub fn try_recv(&mut self) -> Result<Option<Message>, RecvError> {
        if let Some(gate) = self.gate {
            let mut one = [Message::default()];
            let n = self.gate_recv(gate, &mut one)?;
            return Ok((n == 1).then_some(one[0]));
        }
        if !self.poll_ready()? {
            return Ok(None);
        }
        let words = self.shared.slot(self.head).read();
        self.head = self.head.wrapping_add(1);
        self.counters.received += 1;
        if self.available() == 0 || self.head.wrapping_sub(self.published) >= self.publish_every {
            self.publish_head();
        }
        Ok(Some(Message::from_words(words)))
    }

    /// Stores the consumer index. Release: our copies of the slots are complete before the
    /// producer may reuse them.
    #[inline(always)]
    fn publish_head(&mut self) {
        self.shared
            .header
            .consumer
            .index
            .store(tag(self.epoch, self.head), Ordering::Release);
        self.published = self.head;
    }

    /// Takes up to `out.len()` messages with one index store; returns how many (0 if empty).
    pub fn recv_batch(&mut self, out: &mut [Message]) -> Result<usize, RecvError> {
        if let Some(gate) = self.gate {
            if out.is_empty() {
                return Ok(0);
            }
            return self.gate_recv(gate, out);
        }
        self.check_header()?;
        if (self.available() as usize) < out.len() {
            self.refresh_tail()?;
        }
        let n = out.len().min(self.available() as usize);
        if n == 0 {
            return Ok(0);
        }
        for msg in &mut out[..n] {
            *msg = Message::from_words(self.shared.slot(self.head).read());
            self.head = self.head.wrapping_add(1);
        }
        self.publish_head();
        self.counters.received += n as u64;
        Ok(n)
    }

    /// Takes the next message, spinning up to the spin limit and then sleeping in the waiter
    /// until one arrives. With `timeout_ns = None` it returns only with a message or an error;
    /// with `Some(t)` it sleeps at most once and may return `Ok(None)`.
    pub fn recv_wait(&mut self, timeout_ns: Option<u64>) -> Result<Option<Message>, RecvError> {
        if self.wait_ready(timeout_ns)? {
            self.try_recv()
        } else {
            Ok(None)
        }
    }

    /// [`Consumer::recv_batch`] that first waits like [`Consumer::recv_wait`].
    pub fn recv_batch_wait(
        &mut self,
        out: &mut [Message],
        timeout_ns: Option<u64>,
    ) -> Result<usize, RecvError> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.wait_ready(timeout_ns)? {
            self.recv_batch(out)
        } else {
            Ok(0)
        }
    }

    /// Waits until a message is ready (`Ok(true)`), the timeout passed (`Ok(false)`) or an error.
    ///
    /// The lost-wake-up argument: we set `sleeping = 1`, fence, then re-read the tail; the
    /// producer stores the tail, fences, then reads `sleeping`. Of the two SeqCst fences one
    /// comes first, so either we see its message (and do not sleep) or it sees our flag (and
    /// notifies, which the `Waiter` contract remembers even if we are not yet inside `wait`).
    ///
    /// Every write of `sleeping` is a swap (an RMW, `xchg` on x86_64), never a plain store: it is
    /// off the fast path, and it places our write after the producer's clearing swap in the
    /// flag's modification order explicitly, which loom needs to model the handshake exactly.
    pub fn wait_ready(&mut self, timeout_ns: Option<u64>) -> Result<bool, RecvError> {
        if let Some(gate) = self.gate {
            return self.gate_wait_ready(gate, timeout_ns);
        }
        loop {
            for _ in 0..=self.spin_limit {
                if self.poll_ready()? {
                    return Ok(true);
                }
                spin_loop();
            }
            let header = self.shared.header;
            let sleeping = &header.wake.sleeping;
            sleeping.swap(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let ready = self.poll_ready();
            if ready != Ok(false) {
                sleeping.swap(0, Ordering::Relaxed);
                return ready;
            }
            self.counters.waits += 1;
            self.waiter.wait(timeout_ns);
            sleeping.swap(0, Ordering::Relaxed);
            if timeout_ns.is_some() {
                return self.poll_ready();
            }
        }
    }

    /// [`Consumer::wait_ready`] through the gate. No message is taken, so readiness is the
    /// gate's arm (which re-checks the ring): ready, or armed and then slept on once.
    fn gate_wait_ready(
        &mut self,
        gate: &dyn Gate,
        timeout_ns: Option<u64>,
    ) -> Result<bool, RecvError> {
        loop {
            if gate.arm(self.base)? {
                return Ok(true);
            }
            self.counters.waits += 1;
            self.waiter.wait(timeout_ns);
            gate.disarm(self.base);
            if timeout_ns.is_some() {
                // One sleep at most: ready if arming finds a message now.
                let ready = gate.arm(self.base)?;
                gate.disarm(self.base);
                return Ok(ready);
            }
        }
    }

    /// First half of sleeping on several channels at once: sets this consumer's `sleeping` flag
    /// and re-checks the ring (the same fence argument as [`Consumer::wait_ready`]). `Ok(true)`:
    /// a message is ready, do not sleep (the flag is cleared again). `Ok(false)`: the flag stays
    /// set, and the producer's next publish will notify; arm every input, sleep once in the
    /// kernel if none had a message, then [`Consumer::disarm`] them all. Every wake-up the
    /// producers send must reach the same sleeper (on Axolotl: one process, woken by `notify`).
    pub fn arm(&mut self) -> Result<bool, RecvError> {
        if let Some(gate) = self.gate {
            let ready = gate.arm(self.base);
            if ready == Ok(false) {
                self.counters.waits += 1;
            }
            return ready;
        }
        let sleeping = &self.shared.header.wake.sleeping;
        sleeping.swap(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let ready = self.poll_ready();
        if ready != Ok(false) {
            sleeping.swap(0, Ordering::Relaxed);
        } else {
            self.counters.waits += 1;
        }
        ready
    }

    /// Clears the `sleeping` flag set by [`Consumer::arm`] (after the sleep, or when another
    /// input had a message).
    pub fn disarm(&mut self) {
        if let Some(gate) = self.gate {
            return gate.disarm(self.base);
        }
        self.shared.header.wake.sleeping.swap(0, Ordering::Relaxed);
    }

    /// Sets how many polls [`Consumer::recv_wait`] makes before sleeping (0: sleep at once).
    pub fn set_spin_limit(&mut self, polls: u32) {
        self.spin_limit = polls;
    }

    /// Sequence number of the next message to receive.
    pub fn next_seq(&self) -> u32 {
        self.head
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

    #[inline(always)]
    fn available(&self) -> u32 {
        if self.peer_ready {
            self.tail.wrapping_sub(self.head)
        } else {
            0
        }
    }

    /// Checks the header and tells whether a message is ready, refreshing the producer index
    /// only when the cached one shows nothing.
    #[inline(always)]
    fn poll_ready(&mut self) -> Result<bool, RecvError> {
        self.check_header()?;
        if self.available() == 0 {
            self.refresh_tail()?;
        }
        Ok(self.available() != 0)
    }

    /// Validates the magic word and the epoch; on an epoch change moves this end to the new one.
    #[inline(always)]
    fn check_header(&mut self) -> Result<(), RecvError> {
        let control = &self.shared.header.control;
        let word = control.magic_version.load(Ordering::Relaxed);
        if word != MAGIC_VERSION {
            self.counters.bad_magic += 1;
            return Err(RecvError::BadMagic { found: word });
        }
        let epoch = control.epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            return Err(RecvError::EpochChanged(self.resync(epoch)));
        }
        Ok(())
    }

    /// Ready messages (`tail - head`) a producer position `pos` may imply: at most the
    /// capacity, and at least what the last validated tail implied (no going backwards).
    fn valid_tail(&self, pos: u32) -> bool {
        let available = pos.wrapping_sub(self.head);
        let floor = if self.peer_ready {
            self.tail.wrapping_sub(self.head)
        } else {
            0
        };
        available <= self.shared.capacity() && available >= floor
    }

    /// Re-reads the producer index.
    fn refresh_tail(&mut self) -> Result<(), RecvError> {
        // Acquire: the slots up to `pos` were written before the producer published it.
        let (epoch, pos) = untag(self.shared.header.producer.index.load(Ordering::Acquire));
        if epoch != self.epoch {
            // The producer has not joined this epoch yet (or wrote garbage): nothing to read.
            self.counters.stale_peer += 1;
            return Ok(());
        }
        if !self.valid_tail(pos) {
            self.counters.index_jumps += 1;
            return Err(RecvError::IndexJump { found: pos });
        }
        self.tail = pos;
        self.peer_ready = true;
        Ok(())
    }

    /// Moves this end to `new_epoch` at its current position (the consumer leads; the producer
    /// follows when it sees our index carry the new epoch) and reports what the old producer
    /// published that we never received.
    fn resync(&mut self, new_epoch: u32) -> EpochChange {
        let (epoch, pos) = untag(self.shared.header.producer.index.load(Ordering::Acquire));
        let end = if epoch == self.epoch && self.valid_tail(pos) {
            pos
        } else {
            if epoch == self.epoch {
                self.counters.index_jumps += 1;
            }
            if self.peer_ready {
                self.tail
            } else {
                self.head
            }
        };
        let change = EpochChange {
            old_epoch: self.epoch,
            new_epoch,
            first: self.head,
            count: end.wrapping_sub(self.head),
        };
        self.epoch = new_epoch;
        self.tail = self.head;
        self.peer_ready = false;
        self.publish_head();
        self.counters.epoch_changes += 1;
        change
    }
}
