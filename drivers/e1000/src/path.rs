//! The driver's end of the network data path (docs/netpath.md): received frames go to pf in
//! the rx-pool buffers the device wrote them into, frames pf sends come in tx-pool buffers the
//! device reads them from. Only descriptors travel; no payload byte is copied.
//!
//! ```text
//!  NIC ─DMA─> rx-pool buffer ──RX_FRAME──> pf        e1000-pf channel (we produce)
//!             rx-pool buffer <─RX_RETURN── pf        pf-e1000 channel (we consume)
//!  NIC <─DMA─ tx-pool buffer <─TX_FRAME─── pf
//!             tx-pool buffer ──TX_DONE───> pf
//! ```
//!
//! - **rx-pool** is ours: a [`BufferPool`] allocates one buffer per receive descriptor and the
//!   NIC receives into it. A finished descriptor's buffer goes to pf as `RX_FRAME` (offset 0,
//!   the frame's length) and the descriptor gets a new buffer. When every buffer is lent out
//!   the descriptors stay empty (counted in `rx_starved`) until `RX_RETURN`s bring buffers
//!   home. A return is taken only for a buffer pf holds (we sent it and it has not come back);
//!   anything else — a double return, a buffer the NIC holds, a forgery — is refused and
//!   counted, never freed.
//! - **tx-pool** is ip's: a `TX_FRAME` (checked against the pool) is posted as a transmit
//!   descriptor at the buffer's physical address; when the NIC is done the same descriptor
//!   goes back as `TX_DONE`. When the transmit ring is full the frame waits in a backlog of
//!   [`TX_BACKLOG`] frames, in order. When that is full too, pf's messages wait unread in the
//!   channel (and in pf's queue) until the ring drains ([`DataPath::takes_messages`]), and a
//!   sent frame stays in the ring until its `TX_DONE` has room in the outbox: no frame is
//!   dropped and no `TX_DONE` lost for want of room. A frame the device refuses goes straight
//!   home as `TX_DONE`, counted in `tx_drops` (the `TX_DONE` of a dropped frame is how
//!   netpath.md hands a buffer back; TCP retransmits).
//! - **Batching**: a poll reads up to [`BATCH`] messages, handles up to [`BATCH`] received
//!   frames, writes each ring's tail once, and sends what it has for pf with `send_batch`;
//!   consecutive `TX_DONE`s travel as one `TX_DONES` per 14 buffers ([`netmsg::merge`]), and
//!   pf's `RX_RETURNS` bring up to 14 buffers each. Messages that do not fit in the channel
//!   wait in an outbox of [`OUTBOX`]; the receive budget shrinks with the outbox's room, so a
//!   pf that stops reading makes the NIC drop frames (counted by the device) rather than us
//!   lose buffers.
//! - **Everything from shared memory is untrusted**: each message is checked by
//!   [`netmsg::Kind::decode_all`] against the pools' sizes; a bad one is counted and dropped, and
//!   no message can make this code panic.
//! - **Restarts**: an epoch change on either channel (pf restarted) is counted and reported;
//!   on the first report of a restart every rx-pool buffer lent to pf is taken back into the
//!   pool (docs/netpath.md, "Restarts").

use libchan::{
    BufferPool, Consumer, EpochChange, Message, PoolDescriptor, PoolView, Producer, RecvError,
    SendError, Waiter,
};
use netmsg::{BUFFER_SIZE, Kind, RX_POOL_ID, Refused, RefusedCounters, TX_POOL_ID};

use crate::arp::Mac;
use crate::device::InitError;
use crate::mmio::Registers;
use crate::nic::{Nic, Received};
use crate::proto;
use crate::ring::{PoolBuffers, PooledFrame, TxError};

/// Messages read, and received frames handled, per poll.
pub const BATCH: usize = 64;
/// Messages for pf that may wait for room in the channel.
pub const OUTBOX: usize = 512;
/// Frames from pf that may wait for room in the transmit ring. Past the ring's 255 and these,
/// pf's frames wait in the channel and in pf's queue ([`DataPath::takes_messages`]): a wire
/// slower than tcp delays its frames, never drops them (tcpd's 1 MiB send buffer allows 718
/// full segments in flight). A path is tens of KiB (this, the outbox): e1000d keeps it on the
/// heap, off its 128 KiB stack.
pub const TX_BACKLOG: usize = 128;
/// Most rx-pool buffers the path tracks (as `libchan::pool::MAX_POOL_BUFFERS`).
pub const MAX_RX_BUFFERS: usize = libchan::pool::MAX_POOL_BUFFERS;

/// One of the two channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `e1000-pf`, which we produce into.
    ToPf,
    /// `pf-e1000`, which we consume from.
    FromPf,
}

impl Channel {
    /// The channel's region name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ToPf => netmsg::chan::DRIVER_TO_PF,
            Self::FromPf => netmsg::chan::PF_TO_DRIVER,
        }
    }
}

/// Why a message from pf was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It failed [`Kind::decode`]: unknown tag, wrong pool, bad index or range.
    Malformed(Refused),
    /// An `RX_RETURN` of a buffer pf does not hold (returned twice, held by the NIC, never
    /// lent out).
    NotLent {
        /// The buffer.
        index: u32,
    },
    /// A message only the driver sends (`RX_FRAME`, `TX_DONE`).
    NotForUs {
        /// Its tag.
        tag: u32,
    },
}

/// Something the driver should log. Returned through the poll's callback; the path itself
/// never logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEvent {
    /// A channel's epoch changed: pf restarted. `with_pf` rx-pool buffers were lent to it; on
    /// the first of the pair's two reports they were taken back; `rx_in_use` is the whole
    /// rx-pool lent out after that (to the NIC, waiting for pf, and held by pf).
    EpochChanged {
        /// The channel.
        channel: Channel,
        /// What the library reported.
        change: EpochChange,
        /// Buffers pf held.
        with_pf: u32,
        /// `BufferPool::in_use` of the rx-pool.
        rx_in_use: u32,
    },
    /// A channel refused an operation as corrupt (bad magic, index jump).
    ChannelBroken {
        /// The channel.
        channel: Channel,
        /// Whether it was the magic word (else an index).
        bad_magic: bool,
    },
    /// A message from pf was refused.
    Refused {
        /// Its tag.
        tag: u32,
        /// Why.
        why: Refusal,
    },
    /// A `TX_DONE` found no room in the outbox: that tx-pool buffer is lost to ip. Only a pf
    /// that sends frames without reading for a long time can cause it.
    TxDoneLost(PoolDescriptor),
}

/// The path's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// `RX_FRAME`s sent to pf.
    pub rx_to_pf: u64,
    /// `RX_RETURN`s taken back.
    pub rx_returned: u64,
    /// `TX_FRAME`s accepted.
    pub tx_from_pf: u64,
    /// `TX_DONE`s sent.
    pub tx_done: u64,
    /// Frames from pf not sent because the ring and the backlog were full.
    pub tx_drops: u64,
    /// `TX_DONE`s lost for want of room in the outbox.
    pub tx_done_lost: u64,
    /// Receive descriptors left without a buffer (the rx-pool all lent out).
    pub rx_starved: u64,
    /// Messages refused by [`Kind::decode`], by kind of fault.
    pub malformed: RefusedCounters,
    /// `RX_RETURN`s of buffers pf did not hold.
    pub not_lent: u64,
    /// Messages only the driver sends.
    pub not_for_us: u64,
    /// Epoch changes seen on the two channels.
    pub epoch_changes: u64,
    /// Channel operations refused as corrupt.
    pub channel_errors: u64,
    /// rx-pool buffers taken back from a pf that restarted.
    pub rx_recovered: u64,
}

impl PathCounters {
    /// Every message refused.
    pub fn refused(&self) -> u64 {
        self.malformed.total() + self.not_lent + self.not_for_us
    }

    /// The counters as the statistics protocol reports them.
    pub fn report(&self) -> proto::PathCounters {
        proto::PathCounters {
            data_path: true,
            rx_to_pf: self.rx_to_pf,
            rx_returned: self.rx_returned,
            tx_from_pf: self.tx_from_pf,
            tx_done: self.tx_done,
            refused: self.refused(),
            rx_starved: self.rx_starved,
            epoch_changes: self.epoch_changes,
        }
    }
}

/// Why the path cannot be set up over the regions given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The rx-pool view does not have id [`RX_POOL_ID`] and buffers of [`BUFFER_SIZE`].
    RxPool,
    /// The tx-pool view does not have id [`TX_POOL_ID`] and buffers of [`BUFFER_SIZE`].
    TxPool,
    /// The rx-pool has more buffers than [`MAX_RX_BUFFERS`].
    TooManyRxBuffers(u32),
}

/// A bounded first-in first-out queue (no allocation).
struct Fifo<T: Copy, const N: usize> {
    items: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Fifo<T, N> {
    fn new(fill: T) -> Self {
        Self {
            items: [fill; N],
            head: 0,
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn room(&self) -> usize {
        N - self.len
    }

    fn push(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.items[(self.head + self.len) % N] = item;
        self.len += 1;
        Ok(())
    }

    /// The `i`-th item from the front.
    fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.items[(self.head + i) % N])
    }

    fn pop(&mut self) -> Option<T> {
        let item = self.get(0)?;
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(item)
    }
}

/// A set of rx-pool buffer indices (a bitmap of private memory: pf cannot forge it).
struct BufferSet {
    bits: [u64; MAX_RX_BUFFERS / 64],
    len: u32,
}

impl BufferSet {
    fn new() -> Self {
        Self {
            bits: [0; MAX_RX_BUFFERS / 64],
            len: 0,
        }
    }

    fn insert(&mut self, i: u32) {
        let i = i as usize;
        if i < MAX_RX_BUFFERS && self.bits[i / 64] & (1 << (i % 64)) == 0 {
            self.bits[i / 64] |= 1 << (i % 64);
            self.len += 1;
        }
    }

    fn remove(&mut self, i: u32) -> bool {
        let i = i as usize;
        if i < MAX_RX_BUFFERS && self.bits[i / 64] & (1 << (i % 64)) != 0 {
            self.bits[i / 64] &= !(1 << (i % 64));
            self.len -= 1;
            return true;
        }
        false
    }
}

fn rx_descriptor(buffer: u32, len: usize) -> PoolDescriptor {
    PoolDescriptor {
        pool: RX_POOL_ID,
        index: buffer,
        offset: 0,
        len: len as u32,
    }
}

fn tx_descriptor(f: PooledFrame) -> PoolDescriptor {
    PoolDescriptor {
        pool: TX_POOL_ID,
        index: f.index,
        offset: f.offset,
        len: f.len,
    }
}

fn pooled_frame(d: PoolDescriptor) -> PooledFrame {
    PooledFrame {
        index: d.index,
        offset: d.offset,
        len: d.len,
    }
}

/// Where a pool is for the device: its physical address (`MapInfo.phys`, regions being
/// physically contiguous) and the view's geometry.
pub fn pool_buffers(phys: u64, view: &PoolView<'_>) -> PoolBuffers {
    PoolBuffers {
        phys,
        count: view.count(),
        size: view.buffer_size() as usize,
    }
}

/// The driver's end of the data path: the rx-pool it owns, a view of the tx-pool, and the two
/// channels to pf. The NIC it serves (built with [`Nic::with_pools`] over the same pools) is
/// passed to each call.
pub struct DataPath<'a, W: Waiter> {
    rx_pool: BufferPool<'a>,
    tx_pool: PoolView<'a>,
    to_pf: Producer<'a, W>,
    from_pf: Consumer<'a, W>,
    /// Messages for pf not yet in the channel.
    outbox: Fifo<Kind, OUTBOX>,
    /// Frames from pf waiting for room in the transmit ring.
    backlog: Fifo<PoolDescriptor, TX_BACKLOG>,
    /// rx-pool buffers pf holds: sent in an `RX_FRAME`, not yet returned.
    with_pf: BufferSet,
    /// The newest epoch of pf's channels seen (a restart of pf counts once).
    pf_epoch: u32,
    /// Empty receive descriptors already counted in `rx_starved`.
    starving: usize,
    counters: PathCounters,
}

impl<'a, W: Waiter> DataPath<'a, W> {
    /// The path over the rx-pool `rx_pool` (ours: every buffer must be free), a view of the
    /// tx-pool, and the channels to pf.
    pub fn new(
        rx_pool: BufferPool<'a>,
        tx_pool: PoolView<'a>,
        to_pf: Producer<'a, W>,
        from_pf: Consumer<'a, W>,
    ) -> Result<Self, PathError> {
        let rx = rx_pool.view();
        if rx.id() != RX_POOL_ID || rx.buffer_size() != BUFFER_SIZE {
            return Err(PathError::RxPool);
        }
        if rx.count() as usize > MAX_RX_BUFFERS {
            return Err(PathError::TooManyRxBuffers(rx.count()));
        }
        if tx_pool.id() != TX_POOL_ID || tx_pool.buffer_size() != BUFFER_SIZE {
            return Err(PathError::TxPool);
        }
        Ok(Self {
            rx_pool,
            tx_pool,
            to_pf,
            from_pf,
            outbox: Fifo::new(Kind::RxFrame(PoolDescriptor::default())),
            backlog: Fifo::new(PoolDescriptor::default()),
            with_pf: BufferSet::new(),
            pf_epoch: 0,
            starving: 0,
            counters: PathCounters::default(),
        })
    }

    /// The counters.
    pub fn counters(&self) -> &PathCounters {
        &self.counters
    }

    /// rx-pool buffers lent out: posted to the NIC, waiting for pf, or held by pf.
    pub fn rx_in_use(&self) -> u32 {
        self.rx_pool.in_use()
    }

    /// rx-pool buffers pf holds.
    pub fn rx_with_pf(&self) -> u32 {
        self.with_pf.len
    }

    /// Messages waiting for room in the channel to pf.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// True when a poll could take a received or sent frame off the NIC (the outbox has
    /// room for its message): while it has none, frames waiting in the rings are not work.
    pub fn can_take_frames(&self) -> bool {
        self.outbox.room() > 0
    }

    /// Frames waiting for room in the transmit ring.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// The channel to pf (its counters, its waiter).
    pub fn to_pf(&self) -> &Producer<'a, W> {
        &self.to_pf
    }

    /// Wakes pf whether or not it sleeps (after its pid changed: a wake-up sent to nobody
    /// while it was unknown may have been missed).
    pub fn wake_pf(&mut self) {
        self.to_pf.notify_peer();
    }

    /// The channel from pf (its counters; its spin limit).
    pub fn from_pf(&mut self) -> &mut Consumer<'a, W> {
        &mut self.from_pf
    }

    /// Gives every receive descriptor without a buffer one from the rx-pool, as far as the
    /// pool lasts; counts the descriptors left empty in `rx_starved` (each once). The tail is
    /// written by [`Nic::flush`].
    pub fn refill<R: Registers>(&mut self, nic: &mut Nic<R>) {
        while nic.rx_unposted() > 0 {
            let Some(d) = self.rx_pool.alloc() else { break };
            if nic.rx_post(d.index).is_err() {
                // Cannot happen (the ring has room and the pools agree); keep the buffer.
                let _ = self.rx_pool.free(d);
                break;
            }
        }
        let empty = nic.rx_unposted();
        if empty > self.starving {
            self.counters.rx_starved += (empty - self.starving) as u64;
        }
        self.starving = empty;
    }

    /// One poll: up to [`BATCH`] messages from pf, up to [`BATCH`] received frames, refills,
    /// finished and waiting transmissions, one tail write per ring, and what is ready for pf.
    /// Returns the work done (0: nothing happened). `event` hears what is worth logging.
    pub fn poll<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        event: &mut impl FnMut(PathEvent),
    ) -> usize {
        let mut work = self.take_messages(nic, event);
        work += self.receive(nic);
        self.refill(nic);
        work += self.reclaim(nic, event);
        self.drain_backlog(nic, event);
        nic.flush();
        // A device that sends during the tail write (QEMU's e1000 does) has finished already.
        work += self.reclaim(nic, event);
        work + self.send_to_pf(event)
    }

    /// Sleeps until pf sends a message or another wake-up (the NIC's interrupt; both notify
    /// the process) or `timeout_ns` passed, after spinning on the channel as set with
    /// [`Consumer::set_spin_limit`]. Returns true when a message is ready.
    pub fn wait(&mut self, timeout_ns: u64, event: &mut impl FnMut(PathEvent)) -> bool {
        match self.from_pf.wait_ready(Some(timeout_ns)) {
            Ok(ready) => ready,
            Err(e) => {
                self.recv_error(e, event);
                true
            }
        }
    }

    /// Stops the device and programs it afresh ([`Nic::reinit`]): frames queued for sending
    /// go home as `TX_DONE` (counted as drops), the receive buffers are posted again.
    pub fn reinit<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        sleep: &mut impl FnMut(u64),
        event: &mut impl FnMut(PathEvent),
    ) -> Result<Mac, InitError> {
        let mut dropped = 0;
        let (outbox, counters) = (&mut self.outbox, &mut self.counters);
        let r = nic.reinit(sleep, |f| {
            dropped += 1;
            counters.tx_drops += 1;
            if let Err(k) = outbox.push(Kind::TxDone(tx_descriptor(f))) {
                counters.tx_done_lost += 1;
                event(PathEvent::TxDoneLost(k.descriptor()));
            }
        });
        for _ in 0..dropped {
            nic.count_tx_drop();
        }
        self.refill(nic);
        nic.flush();
        self.send_to_pf(event);
        r
    }

    /// True when a message from pf can be read now: a `TX_FRAME` has room in the backlog
    /// should the ring be full. While not, pf's messages wait in the channel; the caller
    /// sleeps on the device (its transmit interrupt), not on the channel.
    pub fn takes_messages(&self) -> bool {
        self.room_for_messages() > 0
    }

    /// How many messages may be read: each leaves at most one frame in the backlog. (A sent
    /// frame's `TX_DONE` needs room in the outbox, but a frame stays in the ring until there
    /// is: see `reclaim`.)
    fn room_for_messages(&self) -> usize {
        BATCH.min(self.backlog.room())
    }

    /// Reads and handles up to [`BATCH`] messages, no more than there is room for
    /// ([`DataPath::takes_messages`]); returns how many.
    fn take_messages<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        event: &mut impl FnMut(PathEvent),
    ) -> usize {
        let room = self.room_for_messages();
        if room == 0 {
            return 0;
        }
        let mut msgs = [Message::default(); BATCH];
        let n = match self.from_pf.recv_batch(&mut msgs[..room]) {
            Ok(n) => n,
            Err(e) => {
                self.recv_error(e, event);
                return 0;
            }
        };
        for m in &msgs[..n] {
            self.handle(nic, m, event);
        }
        n
    }

    fn handle<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        m: &Message,
        event: &mut impl FnMut(PathEvent),
    ) {
        let kinds = match Kind::decode_all(m, self.rx_pool.view().count(), self.tx_pool.count()) {
            Ok(k) => k,
            Err(r) => {
                self.counters.malformed.count(r);
                event(PathEvent::Refused {
                    tag: m.tag,
                    why: Refusal::Malformed(r),
                });
                return;
            }
        };
        for kind in kinds {
            self.handle_one(nic, m.tag, kind, event);
        }
    }

    /// Handles one buffer of a message with tag `tag` (an `RX_RETURNS` names several).
    fn handle_one<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        tag: u32,
        kind: Kind,
        event: &mut impl FnMut(PathEvent),
    ) {
        match kind {
            Kind::RxReturn(d) => {
                // Only a buffer pf holds may come back: one the NIC holds, one still in the
                // outbox or one already returned would otherwise be handed out twice.
                if self.with_pf.remove(d.index) && self.rx_pool.free(d).is_ok() {
                    self.counters.rx_returned += 1;
                } else {
                    self.counters.not_lent += 1;
                    event(PathEvent::Refused {
                        tag,
                        why: Refusal::NotLent { index: d.index },
                    });
                }
            }
            Kind::TxFrame(d) => {
                self.counters.tx_from_pf += 1;
                self.transmit(nic, d, event);
            }
            Kind::RxFrame(_) | Kind::TxDone(_) => {
                self.counters.not_for_us += 1;
                event(PathEvent::Refused {
                    tag,
                    why: Refusal::NotForUs { tag },
                });
            }
        }
    }

    /// Posts a frame from pf, or queues it behind those waiting (the backlog has room: see
    /// [`DataPath::takes_messages`]; were it full, the frame would be dropped).
    fn transmit<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        d: PoolDescriptor,
        event: &mut impl FnMut(PathEvent),
    ) {
        if self.backlog.len() == 0 {
            match nic.send_pooled(pooled_frame(d)) {
                Ok(()) => return,
                Err(TxError::Full) => {}
                Err(_) => {
                    // The pools agree with `decode`, so this cannot happen; send it home.
                    self.drop_frame(nic, d, event);
                    return;
                }
            }
        }
        if self.backlog.push(d).is_err() {
            self.drop_frame(nic, d, event);
        }
    }

    fn drop_frame<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        d: PoolDescriptor,
        event: &mut impl FnMut(PathEvent),
    ) {
        self.counters.tx_drops += 1;
        nic.count_tx_drop();
        self.tx_done(d, event);
    }

    fn tx_done(&mut self, d: PoolDescriptor, event: &mut impl FnMut(PathEvent)) {
        if self.outbox.push(Kind::TxDone(d)).is_err() {
            self.counters.tx_done_lost += 1;
            event(PathEvent::TxDoneLost(d));
        }
    }

    /// Moves waiting frames to the transmit ring while it has room.
    fn drain_backlog<R: Registers>(&mut self, nic: &mut Nic<R>, event: &mut impl FnMut(PathEvent)) {
        while let Some(d) = self.backlog.get(0) {
            match nic.send_pooled(pooled_frame(d)) {
                Ok(()) => {}
                Err(TxError::Full) => return,
                Err(_) => self.drop_frame(nic, d, event),
            }
            self.backlog.pop();
        }
    }

    /// Harvests received frames, as many as the outbox has room for; returns how many
    /// descriptors were handled.
    fn receive<R: Registers>(&mut self, nic: &mut Nic<R>) -> usize {
        let budget = BATCH.min(self.outbox.room());
        let (outbox, pool) = (&mut self.outbox, &mut self.rx_pool);
        nic.poll_rx_pooled(budget, |r| match r {
            Received::Frame { buffer, len } => {
                // Room was reserved by the budget.
                if outbox
                    .push(Kind::RxFrame(rx_descriptor(buffer, len)))
                    .is_err()
                {
                    let _ = pool.free(rx_descriptor(buffer, 0));
                }
            }
            Received::Dropped { buffer } => {
                let _ = pool.free(rx_descriptor(buffer, 0));
            }
        })
    }

    /// Sends finished frames home, as many as the outbox has room for; returns how many.
    fn reclaim<R: Registers>(
        &mut self,
        nic: &mut Nic<R>,
        event: &mut impl FnMut(PathEvent),
    ) -> usize {
        let room = self.outbox.room();
        let outbox = &mut self.outbox;
        let mut lost = None;
        let n = nic.reclaim_tx_pooled(room, |f| {
            if let Err(k) = outbox.push(Kind::TxDone(tx_descriptor(f))) {
                lost = Some(k.descriptor());
            }
        });
        if let Some(d) = lost {
            // Cannot happen: at most `room` frames were reclaimed.
            self.counters.tx_done_lost += 1;
            event(PathEvent::TxDoneLost(d));
        }
        n
    }

    /// Sends the outbox to pf in batches until it is empty or the channel is full; returns
    /// how many messages were sent.
    fn send_to_pf(&mut self, event: &mut impl FnMut(PathEvent)) -> usize {
        let mut sent = 0;
        while self.outbox.len() > 0 {
            // Up to BATCH messages; a run of TX_DONEs goes in one TX_DONES per 14 buffers.
            // `items[i]`: how many outbox entries message i carries.
            let mut msgs = [Message::default(); BATCH];
            let mut items = [0usize; BATCH];
            let mut k = 0;
            for i in 0..self.outbox.len() {
                let Some(kind) = self.outbox.get(i) else {
                    break;
                };
                let m = kind.message();
                if k > 0 && netmsg::merge(&mut msgs[k - 1], &m) {
                    items[k - 1] += 1;
                    continue;
                }
                if k == BATCH {
                    break;
                }
                msgs[k] = m;
                items[k] = 1;
                k += 1;
            }
            match self.to_pf.send_batch(&msgs[..k]) {
                Ok(n) => {
                    for _ in 0..items[..n].iter().sum::<usize>() {
                        match self.outbox.pop() {
                            Some(Kind::RxFrame(d)) => {
                                self.with_pf.insert(d.index);
                                self.counters.rx_to_pf += 1;
                            }
                            Some(_) => self.counters.tx_done += 1,
                            None => {}
                        }
                    }
                    sent += n;
                    if n < k {
                        break;
                    }
                }
                Err(SendError::Full) => break,
                Err(SendError::EpochChanged(change)) => {
                    self.epoch_changed(Channel::ToPf, change, event);
                    break;
                }
                Err(SendError::BadMagic { .. }) => {
                    self.broken(Channel::ToPf, true, event);
                    break;
                }
                Err(SendError::IndexJump { .. }) => {
                    self.broken(Channel::ToPf, false, event);
                    break;
                }
            }
        }
        sent
    }

    fn recv_error(&mut self, e: RecvError, event: &mut impl FnMut(PathEvent)) {
        match e {
            RecvError::EpochChanged(change) => self.epoch_changed(Channel::FromPf, change, event),
            RecvError::BadMagic { .. } => self.broken(Channel::FromPf, true, event),
            RecvError::IndexJump { .. } => self.broken(Channel::FromPf, false, event),
        }
    }

    fn epoch_changed(
        &mut self,
        channel: Channel,
        change: EpochChange,
        event: &mut impl FnMut(PathEvent),
    ) {
        self.counters.epoch_changes += 1;
        let with_pf = self.with_pf.len;
        if change.new_epoch > self.pf_epoch {
            self.pf_epoch = change.new_epoch;
            // pf restarted: what it held (and what ip and the servers behind it held of ours)
            // never comes back through the new instance — ip drops the returns of buffers it
            // had from the old one. Take every buffer lent to pf back into the pool.
            for word in 0..self.with_pf.bits.len() {
                let mut bits = self.with_pf.bits[word];
                while bits != 0 {
                    let index = (word * 64) as u32 + bits.trailing_zeros();
                    bits &= bits - 1;
                    self.with_pf.remove(index);
                    if let Some(d) = self.rx_pool.view().whole(index)
                        && self.rx_pool.free(d).is_ok()
                    {
                        self.counters.rx_recovered += 1;
                    }
                }
            }
        }
        event(PathEvent::EpochChanged {
            channel,
            change,
            with_pf,
            rx_in_use: self.rx_pool.in_use(),
        });
    }

    fn broken(&mut self, channel: Channel, bad_magic: bool, event: &mut impl FnMut(PathEvent)) {
        self.counters.channel_errors += 1;
        event(PathEvent::ChannelBroken { channel, bad_magic });
    }
}

#[cfg(test)]
mod tests;
