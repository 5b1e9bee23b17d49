//! The forwarding core: pf's four channels, its views of the two pools, and what one round of
//! the server's loop does with them (docs/netpath.md).
//!
//! ```text
//!  e1000 ──e1000-pf──> pf ──pf-ip──> ip       RX_FRAME in: rules `in`; allowed → ip,
//!  e1000 <─pf-e1000─── pf <─ip-pf─── ip                    denied → RX_RETURN to e1000
//!                                             TX_FRAME out: rules `out`; allowed → e1000,
//!                                                           denied → TX_DONE to ip
//!                                             RX_RETURN ip → e1000, TX_DONE e1000 → ip
//! ```
//!
//! - **Every message is checked first** with [`netmsg::Kind::decode_all`] against the pools'
//!   sizes, and must be a kind its sender sends (e1000: `RX_FRAME`, `TX_DONE(S)`; ip:
//!   `TX_FRAME`, `RX_RETURN(S)`). A refusal is counted and reported as an [`Event`], and the
//!   message dropped: nothing it names is followed.
//! - **Frames are read in place** through [`PoolView::check`]: pf looks at the Ethernet and IP
//!   headers in the shared buffer and forwards the descriptor. A frame that is not IPv4 (ARP
//!   ...) passes unfiltered ([`pf::packet::ipv4_in_ethernet`]); an IPv4 packet pf cannot read is
//!   denied ([`RuleSet::filter_ipv4`]).
//! - **Only the descriptor goes on**, in a message pf builds itself (`Kind::message`), so no
//!   byte a peer wrote besides the checked descriptor reaches the next hop.
//! - **No buffer is ever dropped silently**: a denied frame's buffer goes home (`RX_RETURN` to
//!   e1000, `TX_DONE` to ip). Every message taken from an input produces at most one message
//!   for an output (none when all it names were orphans of a restart); what the output ring
//!   cannot take waits in that output's queue, in order.
//!   An input is read only as far as both queues have room for its messages (either input can
//!   produce for either output), so when a queue is full pf stops reading (and the peer's ring
//!   fills up, which is the peer's back-pressure) instead of losing a buffer.
//! - **Buffers go home together**: a return (`RX_RETURN`, `TX_DONE`, or their several-buffer
//!   forms) is folded into the newest message its queue holds when that is a return of the same
//!   pool with room ([`netmsg::merge`]), so a round that sends 30 buffers home sends 3 messages.
//! - **Sized so that valid traffic never stops it**: every message carries a buffer, so pf can
//!   never hold more messages than the two pools have buffers; each queue holds that many
//!   (up to [`MAX_HELD`]). Only a peer that sends the same buffer twice can fill a queue. So pf
//!   keeps reading both inputs whatever the ring sizes, and it cannot be one link of a cycle of
//!   servers each waiting for the next to read (pf waiting for ip to read `pf-ip` while ip waits
//!   for pf to read `ip-pf`).
//! - **Batches**: a round reads up to [`BATCH`] messages from each input (one index store
//!   each) and sends each output's queue with one `send_batch`.
//!
//! Nothing here makes a system call: [`Path`] is generic over the channels' [`Waiter`], so the
//! host tests run it over channels in heap memory.

use alloc::boxed::Box;
use alloc::vec;

use libchan::{
    Consumer, EpochChange, Message, PoolDescriptor, PoolError, PoolView, Producer, RecvError,
    SendError, Waiter,
};
use netmsg::{Kind, Refused, RefusedCounters};
use pf::packet::ipv4_in_ethernet;
use pf::{Direction, RuleSet, Verdict};

/// Most messages read from one input in one round.
pub const BATCH: usize = 32;
/// Most messages one output can hold while its ring is full (64 bytes each). Pools with more
/// buffers than this together lose the guarantee that valid traffic never stops pf reading.
pub const MAX_HELD: usize = 2048;

/// pf's two neighbours on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The e1000 driver.
    Driver,
    /// The ip server.
    Ip,
}

impl Peer {
    /// The peer's process name in the manifests.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Driver => "e1000",
            Peer::Ip => "ip",
        }
    }
}

/// One of pf's four channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `e1000-pf`: received frames and finished transmit buffers from the driver.
    FromDriver,
    /// `pf-e1000`: frames to send and receive buffers going home.
    ToDriver,
    /// `ip-pf`: frames to send and receive buffers going home.
    FromIp,
    /// `pf-ip`: received frames and finished transmit buffers.
    ToIp,
}

impl Channel {
    /// The channel's region name.
    pub fn name(self) -> &'static str {
        use netmsg::chan;
        match self {
            Channel::FromDriver => chan::DRIVER_TO_PF,
            Channel::ToDriver => chan::PF_TO_DRIVER,
            Channel::FromIp => chan::IP_TO_PF,
            Channel::ToIp => chan::PF_TO_IP,
        }
    }

    /// The input channel from `peer`.
    pub fn input_from(peer: Peer) -> Channel {
        match peer {
            Peer::Driver => Channel::FromDriver,
            Peer::Ip => Channel::FromIp,
        }
    }

    /// The output channel to `peer`.
    pub fn output_to(peer: Peer) -> Channel {
        match peer {
            Peer::Driver => Channel::ToDriver,
            Peer::Ip => Channel::ToIp,
        }
    }
}

/// Why a message from a peer was refused (counted, reported, dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`Kind::decode`] refused the tag or the descriptor.
    Malformed(Refused),
    /// A kind this peer never sends (e1000 sends `RX_FRAME` and `TX_DONE`, ip `TX_FRAME` and
    /// `RX_RETURN`).
    Misdirected,
    /// The pool view refused a frame's descriptor. `Kind::decode` makes the same checks, so this
    /// means the two disagree about a pool's geometry.
    Unreadable(PoolError),
}

/// Something the server should log (the core makes no system calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A message was refused.
    Refused {
        /// Who sent it.
        from: Peer,
        /// Its tag.
        tag: u32,
        /// Why.
        why: Refusal,
    },
    /// A channel's epoch changed: the peer at its other end restarted. `change.count` messages
    /// were in flight: on an output, sent but never taken by the peer that died; on an input,
    /// sent by the peer that died and discarded. On the first report of a restart pf recovers
    /// the buffers the dead instance held (docs/netpath.md, "Restarts").
    EpochChanged {
        /// Which channel.
        channel: Channel,
        /// What changed.
        change: EpochChange,
    },
    /// A channel refused an operation: its header was overwritten (`bad_magic`) or the peer's
    /// index jumped. The channel is left alone until it is sane again.
    ChannelBroken {
        /// Which channel.
        channel: Channel,
        /// The header's magic word is wrong (else: an index jumped).
        bad_magic: bool,
    },
}

/// What pf counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `RX_FRAME`s from e1000 judged.
    pub rx_in: u64,
    /// Of those, passed on to ip.
    pub rx_out: u64,
    /// Of those, denied (by a rule, or unreadable IPv4) and sent home as `RX_RETURN`.
    pub rx_denied: u64,
    /// `RX_RETURN`s from ip passed on to e1000.
    pub rx_returned: u64,
    /// `TX_FRAME`s from ip judged.
    pub tx_in: u64,
    /// Of those, passed on to e1000.
    pub tx_out: u64,
    /// Of those, denied and sent home as `TX_DONE`.
    pub tx_denied: u64,
    /// `TX_DONE`s from e1000 passed on to ip.
    pub tx_done: u64,
    /// Frames that are not IPv4 (ARP ...), passed without filtering (of `rx_out` and `tx_out`).
    pub not_ipv4: u64,
    /// Messages [`Kind::decode`] refused, by reason.
    pub refused: RefusedCounters,
    /// Messages of a kind their sender never sends.
    pub misdirected: u64,
    /// Frames whose descriptor the pool view refused.
    pub unreadable: u64,
    /// Most messages held for e1000 at the end of a round.
    pub held_high_driver: u64,
    /// Most messages held for ip at the end of a round.
    pub held_high_ip: u64,
    /// Rounds in which an input was not read because an output's queue was full.
    pub stalls: u64,
    /// Epoch changes seen on any channel.
    pub epoch_changes: u64,
    /// Messages those epoch changes reported in flight.
    pub epoch_in_flight: u64,
    /// Operations a broken channel refused.
    pub channel_errors: u64,
    /// Restarts of ip handled: rx-pool buffers it held sent home to the driver.
    pub ip_restarts: u64,
    /// Restarts of the driver handled: tx-pool buffers it held sent home to ip.
    pub driver_restarts: u64,
    /// rx-pool buffers sent home to the driver on behalf of an ip that restarted.
    pub rx_recovered: u64,
    /// tx-pool buffers sent home to ip on behalf of a driver that restarted.
    pub tx_recovered: u64,
    /// Returns of buffers of a dead instance's, dropped (RX_RETURN of the old driver's, TX_DONE
    /// of the old ip's).
    pub orphans_dropped: u64,
}

impl Counters {
    /// Every refused message, whatever the reason.
    pub fn refused_total(&self) -> u64 {
        self.refused.total() + self.misdirected + self.unreadable
    }

    fn note(&mut self, e: &Event) {
        match *e {
            Event::Refused { why, .. } => match why {
                Refusal::Malformed(r) => self.refused.count(r),
                Refusal::Misdirected => self.misdirected += 1,
                Refusal::Unreadable(_) => self.unreadable += 1,
            },
            Event::EpochChanged { change, .. } => {
                self.epoch_changes += 1;
                self.epoch_in_flight += u64::from(change.count);
            }
            Event::ChannelBroken { .. } => self.channel_errors += 1,
        }
    }
}

/// What one [`Path::round`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Messages taken from the inputs.
    pub read: usize,
    /// Messages published to the outputs.
    pub sent: usize,
}

impl Round {
    /// Nothing moved.
    pub fn is_idle(&self) -> bool {
        self.read == 0 && self.sent == 0
    }
}

/// Messages waiting for room in an output ring: a ring of fixed capacity, allocated once, in
/// order.
struct Held {
    slots: Box<[Message]>,
    head: usize,
    len: usize,
}

impl Held {
    fn new(capacity: usize) -> Held {
        Held {
            slots: vec![Message::new(0); capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn room(&self) -> usize {
        self.slots.len() - self.len
    }

    /// Appends `m`, or folds it into the newest message held when both send buffers of one pool
    /// home and fit in one message ([`netmsg::merge`]); false (and nothing changed) when full,
    /// which [`Path::read`] rules out.
    fn push(&mut self, m: Message) -> bool {
        let capacity = self.slots.len();
        if self.len > 0 {
            let newest = (self.head + self.len - 1) % capacity;
            if netmsg::merge(&mut self.slots[newest], &m) {
                return true;
            }
        }
        if self.len == capacity {
            return false;
        }
        self.slots[(self.head + self.len) % capacity] = m;
        self.len += 1;
        true
    }

    /// The oldest messages that lie contiguously in the ring.
    fn front(&self) -> &[Message] {
        let end = (self.head + self.len).min(self.slots.len());
        &self.slots[self.head..end]
    }

    /// Keeps only the messages `keep` says yes to, in order.
    fn retain(&mut self, mut keep: impl FnMut(&Message) -> bool) {
        let capacity = self.slots.len();
        let mut kept = 0;
        for i in 0..self.len {
            let m = self.slots[(self.head + i) % capacity];
            if keep(&m) {
                self.slots[(self.head + kept) % capacity] = m;
                kept += 1;
            }
        }
        self.len = kept;
        if kept == 0 {
            self.head = 0;
        }
    }

    /// Every message held, oldest first.
    fn iter(&self) -> impl Iterator<Item = &Message> + '_ {
        let capacity = self.slots.len();
        (0..self.len).map(move |i| &self.slots[(self.head + i) % capacity])
    }

    /// Forgets the `n` oldest messages (sent).
    fn pop(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.slots.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }
}

/// A set of buffer indices (of one pool).
struct Bits {
    words: Box<[u64]>,
}

impl Bits {
    fn new(buffers: u32) -> Bits {
        Bits {
            words: vec![0u64; (buffers as usize).div_ceil(64)].into_boxed_slice(),
        }
    }

    fn insert(&mut self, i: u32) {
        if let Some(w) = self.words.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// True when `i` was in the set.
    fn remove(&mut self, i: u32) -> bool {
        match self.words.get_mut(i as usize / 64) {
            Some(w) if *w & (1 << (i % 64)) != 0 => {
                *w &= !(1 << (i % 64));
                true
            }
            _ => false,
        }
    }

    /// Empties the set, returning what was in it.
    fn take(&mut self) -> alloc::vec::Vec<u32> {
        let mut v = alloc::vec::Vec::new();
        for (n, w) in self.words.iter_mut().enumerate() {
            let mut bits = core::mem::take(w);
            while bits != 0 {
                v.push((n * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        v
    }
}

/// Which buffers are where, so that a peer's restart loses none (docs/netpath.md, "Restarts").
struct Whereabouts {
    /// rx-pool buffers sent (or queued) to ip, not yet returned.
    rx_with_ip: Bits,
    /// tx-pool buffers sent (or queued) to the driver, not yet done.
    tx_with_driver: Bits,
    /// rx-pool buffers of a driver instance that restarted: their RX_RETURN from ip is dropped.
    rx_orphans: Bits,
    /// tx-pool buffers of an ip instance that restarted: their TX_DONE from the driver is
    /// dropped.
    tx_orphans: Bits,
    /// The newest epoch seen on each peer's channels (a restart counts once).
    driver_epoch: u32,
    ip_epoch: u32,
}

/// One output: the producer end of a channel and its queue.
struct Output<'a, W: Waiter> {
    producer: Producer<'a, W>,
    held: Held,
    channel: Channel,
}

impl<W: Waiter> Output<'_, W> {
    /// Sends what is held, oldest first, until the ring is full; returns how many went.
    fn flush(&mut self, counters: &mut Counters, on_event: &mut impl FnMut(Event)) -> usize {
        let mut sent = 0;
        while self.held.len > 0 {
            let run = self.held.front();
            let result = match run {
                [one] => self.producer.send(one).map(|_| 1),
                _ => self.producer.send_batch(run),
            };
            let event = match result {
                Ok(n) => {
                    let whole_run = n == run.len();
                    self.held.pop(n);
                    sent += n;
                    if whole_run {
                        continue;
                    }
                    break;
                }
                Err(SendError::Full) => break,
                Err(SendError::EpochChanged(change)) => Event::EpochChanged {
                    channel: self.channel,
                    change,
                },
                Err(SendError::BadMagic { .. }) => Event::ChannelBroken {
                    channel: self.channel,
                    bad_magic: true,
                },
                Err(SendError::IndexJump { .. }) => Event::ChannelBroken {
                    channel: self.channel,
                    bad_magic: false,
                },
            };
            counters.note(&event);
            on_event(event);
            break;
        }
        sent
    }
}

/// pf's end of the data path: two pool views, two inputs, two outputs with their queues, and
/// the counters.
pub struct Path<'a, W: Waiter> {
    rx_pool: PoolView<'a>,
    tx_pool: PoolView<'a>,
    from_driver: Consumer<'a, W>,
    from_ip: Consumer<'a, W>,
    to_driver: Output<'a, W>,
    to_ip: Output<'a, W>,
    counters: Counters,
    batch: [Message; BATCH],
    whereabouts: Whereabouts,
}

impl<'a, W: Waiter> Path<'a, W> {
    /// The path over views of the rx-pool and the tx-pool (ids [`netmsg::RX_POOL_ID`] and
    /// [`netmsg::TX_POOL_ID`], buffers of [`netmsg::BUFFER_SIZE`]) and the four channel ends.
    /// Each output's queue holds as many messages as the pools have buffers (at least
    /// [`BATCH`], at most [`MAX_HELD`]): allocated here, once.
    pub fn new(
        rx_pool: PoolView<'a>,
        tx_pool: PoolView<'a>,
        from_driver: Consumer<'a, W>,
        to_driver: Producer<'a, W>,
        from_ip: Consumer<'a, W>,
        to_ip: Producer<'a, W>,
    ) -> Self {
        let buffers = rx_pool.count() as usize + tx_pool.count() as usize;
        let capacity = buffers.clamp(BATCH, MAX_HELD);
        let (rx_count, tx_count) = (rx_pool.count(), tx_pool.count());
        Path {
            rx_pool,
            tx_pool,
            from_driver,
            from_ip,
            to_driver: Output {
                producer: to_driver,
                held: Held::new(capacity),
                channel: Channel::ToDriver,
            },
            to_ip: Output {
                producer: to_ip,
                held: Held::new(capacity),
                channel: Channel::ToIp,
            },
            counters: Counters::default(),
            batch: [Message::new(0); BATCH],
            whereabouts: Whereabouts {
                rx_with_ip: Bits::new(rx_count),
                tx_with_driver: Bits::new(tx_count),
                rx_orphans: Bits::new(rx_count),
                tx_orphans: Bits::new(tx_count),
                driver_epoch: 0,
                ip_epoch: 0,
            },
        }
    }

    /// One round of the loop: sends what was held, reads up to [`BATCH`] messages from each
    /// input (as far as the output queues have room), judges each and queues its result, and
    /// sends the queues. Reports what it refused or noticed through `on_event`.
    pub fn round(&mut self, rules: &mut RuleSet, on_event: &mut impl FnMut(Event)) -> Round {
        let mut round = Round::default();
        round.sent += self.flush(on_event);
        round.read += self.read(Peer::Driver, rules, on_event);
        round.read += self.read(Peer::Ip, rules, on_event);
        round.sent += self.flush(on_event);
        let c = &mut self.counters;
        c.held_high_driver = c.held_high_driver.max(self.to_driver.held.len as u64);
        c.held_high_ip = c.held_high_ip.max(self.to_ip.held.len as u64);
        round
    }

    fn flush(&mut self, on_event: &mut impl FnMut(Event)) -> usize {
        let mut changes = [None, None];
        let mut note = |e: Event| {
            if let Event::EpochChanged { channel, change } = e {
                let slot = usize::from(matches!(channel, Channel::ToIp));
                changes[slot] = Some((channel, change));
            }
            on_event(e);
        };
        let sent = self.to_driver.flush(&mut self.counters, &mut note)
            + self.to_ip.flush(&mut self.counters, &mut note);
        for (channel, change) in changes.into_iter().flatten() {
            self.peer_epoch(channel, change);
        }
        sent
    }

    /// A channel of `channel`'s peer reported epoch `change`: on the first report of a
    /// restart, recover what the dead instance held.
    fn peer_epoch(&mut self, channel: Channel, change: EpochChange) {
        let w = &mut self.whereabouts;
        let ip = matches!(channel, Channel::FromIp | Channel::ToIp);
        let seen = if ip {
            &mut w.ip_epoch
        } else {
            &mut w.driver_epoch
        };
        if change.new_epoch <= *seen {
            return;
        }
        *seen = change.new_epoch;
        if ip {
            self.ip_restarted();
        } else {
            self.driver_restarted();
        }
    }

    /// ip restarted. Every rx-pool buffer it held (or that waited here for it) goes home to the
    /// driver; what waited for the old instance is dropped (TX_DONEs of its buffers: the new
    /// instance starts its tx pool afresh), as are its frames not yet given to the driver; its
    /// frames the driver has are orphans, whose TX_DONE is dropped when it comes.
    fn ip_restarted(&mut self) {
        let (rx_count, tx_count) = (self.rx_pool.count(), self.tx_pool.count());
        self.counters.ip_restarts += 1;
        self.to_ip.held.retain(|_| false);
        self.to_driver
            .held
            .retain(|m| !matches!(Kind::decode(m, rx_count, tx_count), Ok(Kind::TxFrame(_))));
        let w = &mut self.whereabouts;
        for index in w.rx_with_ip.take() {
            if let Some(d) = self.rx_pool.whole(index)
                && self.to_driver.held.push(Kind::RxReturn(d).message())
            {
                self.counters.rx_recovered += 1;
            }
        }
        for index in w.tx_with_driver.take() {
            w.tx_orphans.insert(index);
        }
    }

    /// The driver restarted (its rx pool starts afresh, its transmit ring is reset). Its frames
    /// that waited here for ip are dropped; those ip holds are orphans, whose RX_RETURN is
    /// dropped when it comes; RX_RETURNs that waited for the old driver are dropped. Every
    /// tx-pool buffer the old driver had goes home to ip as TX_DONE marked not sent
    /// ([`netmsg::not_sent`]: ip tells tcp, which sends again at once);
    /// frames still waiting here go to the new driver.
    fn driver_restarted(&mut self) {
        let (rx_count, tx_count) = (self.rx_pool.count(), self.tx_pool.count());
        self.counters.driver_restarts += 1;
        let w = &mut self.whereabouts;
        self.to_ip
            .held
            .retain(|m| match Kind::decode(m, rx_count, tx_count) {
                Ok(Kind::RxFrame(d)) => {
                    w.rx_with_ip.remove(d.index);
                    false
                }
                _ => true,
            });
        self.to_driver
            .held
            .retain(|m| !matches!(first_kind(m, rx_count, tx_count), Some(Kind::RxReturn(_))));
        for index in w.rx_with_ip.take() {
            w.rx_orphans.insert(index);
        }
        let mut queued = Bits::new(tx_count);
        for m in self.to_driver.held.iter() {
            if let Ok(Kind::TxFrame(d)) = Kind::decode(m, rx_count, tx_count) {
                queued.insert(d.index);
            }
        }
        for index in w.tx_with_driver.take() {
            if queued.remove(index) {
                w.tx_with_driver.insert(index);
            } else if let Some(d) = self.tx_pool.whole(index)
                && self.to_ip.held.push(netmsg::not_sent(d))
            {
                self.counters.tx_recovered += 1;
            }
        }
    }

    /// Reads and handles up to [`BATCH`] messages from `from`; returns how many it took.
    fn read(&mut self, from: Peer, rules: &mut RuleSet, on_event: &mut impl FnMut(Event)) -> usize {
        // Every message yields one message for one of the outputs: read no more than both
        // queues can take.
        let room = BATCH
            .min(self.to_driver.held.room())
            .min(self.to_ip.held.room());
        if room == 0 {
            self.counters.stalls += 1;
            return 0;
        }
        let input = match from {
            Peer::Driver => &mut self.from_driver,
            Peer::Ip => &mut self.from_ip,
        };
        let n = match input.recv_batch(&mut self.batch[..room]) {
            Ok(n) => n,
            Err(e) => {
                let channel = Channel::input_from(from);
                self.recv_error(channel, e, on_event);
                if let RecvError::EpochChanged(change) = e {
                    self.peer_epoch(channel, change);
                }
                return 0;
            }
        };
        for i in 0..n {
            let m = self.batch[i];
            match self.judge(from, &m, rules) {
                Ok(None) => {}
                Ok(Some((to, out))) => {
                    let output = match to {
                        Peer::Driver => &mut self.to_driver,
                        Peer::Ip => &mut self.to_ip,
                    };
                    // Room was checked above: one message in, at most one out.
                    let queued = output.held.push(out);
                    debug_assert!(queued);
                }
                Err(why) => {
                    let event = Event::Refused {
                        from,
                        tag: m.tag,
                        why,
                    };
                    self.counters.note(&event);
                    on_event(event);
                }
            }
        }
        n
    }

    fn recv_error(&mut self, channel: Channel, e: RecvError, on_event: &mut impl FnMut(Event)) {
        let event = match e {
            RecvError::EpochChanged(change) => Event::EpochChanged { channel, change },
            RecvError::BadMagic { .. } => Event::ChannelBroken {
                channel,
                bad_magic: true,
            },
            RecvError::IndexJump { .. } => Event::ChannelBroken {
                channel,
                bad_magic: false,
            },
        };
        self.counters.note(&event);
        on_event(event);
    }

    /// Decides where one message from `from` goes, and as what: one message at most, since the
    /// buffers of an `RX_RETURNS` or `TX_DONES` all go the same way and fit in one again.
    /// `None` when every buffer it names was an orphan (dropped and counted).
    fn judge(
        &mut self,
        from: Peer,
        m: &Message,
        rules: &mut RuleSet,
    ) -> Result<Option<(Peer, Message)>, Refusal> {
        let kinds = Kind::decode_all(m, self.rx_pool.count(), self.tx_pool.count())
            .map_err(Refusal::Malformed)?;
        let mut out: Option<(Peer, Message)> = None;
        for kind in kinds {
            // Every buffer of a several-buffer message is of the same kind: if one is
            // misdirected, the first is, and nothing has changed yet.
            match (self.judge_one(from, kind, rules)?, &mut out) {
                (None, _) => self.counters.orphans_dropped += 1,
                (Some(next), None) => out = Some(next),
                (Some((_, next)), Some((_, into))) => {
                    let merged = netmsg::merge(into, &next);
                    debug_assert!(merged, "one message's buffers fit in one message");
                }
            }
        }
        Ok(out)
    }

    /// Decides where one buffer from `from` goes, and as what.
    fn judge_one(
        &mut self,
        from: Peer,
        kind: Kind,
        rules: &mut RuleSet,
    ) -> Result<Option<(Peer, Message)>, Refusal> {
        let c = &mut self.counters;
        let to = match (from, kind) {
            (Peer::Driver, Kind::RxFrame(d)) => {
                let verdict = verdict(&mut self.rx_pool, Direction::In, d, rules, c)?;
                c.rx_in += 1;
                match verdict {
                    Verdict::Allow => {
                        c.rx_out += 1;
                        self.whereabouts.rx_with_ip.insert(d.index);
                        (Peer::Ip, Kind::RxFrame(d))
                    }
                    Verdict::Deny => {
                        c.rx_denied += 1;
                        (Peer::Driver, Kind::RxReturn(d))
                    }
                }
            }
            (Peer::Ip, Kind::TxFrame(d)) => {
                let verdict = verdict(&mut self.tx_pool, Direction::Out, d, rules, c)?;
                c.tx_in += 1;
                match verdict {
                    Verdict::Allow => {
                        c.tx_out += 1;
                        self.whereabouts.tx_with_driver.insert(d.index);
                        (Peer::Driver, Kind::TxFrame(d))
                    }
                    Verdict::Deny => {
                        c.tx_denied += 1;
                        (Peer::Ip, Kind::TxDone(d))
                    }
                }
            }
            (Peer::Ip, Kind::RxReturn(d)) => {
                if self.whereabouts.rx_orphans.remove(d.index) {
                    return Ok(None);
                }
                self.whereabouts.rx_with_ip.remove(d.index);
                c.rx_returned += 1;
                (Peer::Driver, Kind::RxReturn(d))
            }
            (Peer::Driver, Kind::TxDone(d)) => {
                if self.whereabouts.tx_orphans.remove(d.index) {
                    return Ok(None);
                }
                self.whereabouts.tx_with_driver.remove(d.index);
                c.tx_done += 1;
                (Peer::Ip, Kind::TxDone(d))
            }
            (Peer::Driver, Kind::RxReturn(_) | Kind::TxFrame(_))
            | (Peer::Ip, Kind::RxFrame(_) | Kind::TxDone(_)) => return Err(Refusal::Misdirected),
        };
        Ok(Some((to.0, to.1.message())))
    }

    /// First half of sleeping: arms both inputs ([`Consumer::arm`]). True when neither has a
    /// message, so the caller may sleep once in the kernel and then call [`Path::disarm`]; false
    /// when one has (nothing is left armed then). A broken input is left unarmed: it cannot wake
    /// us, and sleeping (with a timeout) beats spinning on it.
    pub fn arm(&mut self, on_event: &mut impl FnMut(Event)) -> bool {
        match self.from_driver.arm() {
            Ok(false) => {}
            Ok(true) => return false,
            Err(e) => {
                let moved = matches!(e, RecvError::EpochChanged(_));
                self.recv_error(Channel::FromDriver, e, on_event);
                if let RecvError::EpochChanged(change) = e {
                    self.peer_epoch(Channel::FromDriver, change);
                }
                if moved {
                    return false;
                }
            }
        }
        match self.from_ip.arm() {
            Ok(false) => true,
            Ok(true) => {
                self.from_driver.disarm();
                false
            }
            Err(e) => {
                let moved = matches!(e, RecvError::EpochChanged(_));
                self.recv_error(Channel::FromIp, e, on_event);
                if let RecvError::EpochChanged(change) = e {
                    self.peer_epoch(Channel::FromIp, change);
                }
                if moved {
                    self.from_driver.disarm();
                }
                !moved
            }
        }
    }

    /// Second half of sleeping: clears both inputs' `sleeping` flags.
    pub fn disarm(&mut self) {
        self.from_driver.disarm();
        self.from_ip.disarm();
    }

    /// Wakes `peer` unconditionally (after finding its pid: a wake-up may have gone to nobody).
    pub fn notify(&mut self, peer: Peer) {
        match peer {
            Peer::Driver => self.to_driver.producer.notify_peer(),
            Peer::Ip => self.to_ip.producer.notify_peer(),
        }
    }

    /// Messages held for `peer` now.
    pub fn held(&self, peer: Peer) -> usize {
        match peer {
            Peer::Driver => self.to_driver.held.len,
            Peer::Ip => self.to_ip.held.len,
        }
    }

    /// How many messages each output's queue holds.
    pub fn held_capacity(&self) -> usize {
        self.to_ip.held.slots.len()
    }

    /// Messages held for either peer.
    pub fn holding(&self) -> usize {
        self.to_driver.held.len + self.to_ip.held.len
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Buffers in the rx-pool and the tx-pool.
    pub fn pool_buffers(&self) -> (u32, u32) {
        (self.rx_pool.count(), self.tx_pool.count())
    }
}

/// The kind of the first buffer `m` carries, if it is well-formed.
fn first_kind(m: &Message, rx_buffers: u32, tx_buffers: u32) -> Option<Kind> {
    Kind::decode_all(m, rx_buffers, tx_buffers)
        .ok()
        .and_then(|k| k.first())
}

/// The verdict on the frame `d` names in `pool`, travelling `dir`: the rules' for IPv4 (counted
/// in `rules`), `Allow` for anything else (counted in `counters.not_ipv4`).
fn verdict(
    pool: &mut PoolView<'_>,
    dir: Direction,
    d: PoolDescriptor,
    rules: &mut RuleSet,
    counters: &mut Counters,
) -> Result<Verdict, Refusal> {
    let buffer = pool.check(d).map_err(Refusal::Unreadable)?;
    // Safety: the descriptor was checked, so the bytes lie in the mapped pool. Under the data
    // path's protocol nobody writes a buffer while it travels: the NIC finished writing a
    // received frame before the driver sent it, ip finished building a frame before it sent it,
    // and each gets the buffer back only through pf, after this slice is gone (it does not
    // outlive this function). A peer that breaks the protocol is another process writing its
    // own frame: the parser treats every byte as untrusted and bounds-checks every read.
    let frame = unsafe { buffer.as_slice() };
    Ok(match ipv4_in_ethernet(frame) {
        Some(packet) => rules.filter_ipv4(dir, packet).verdict,
        None => {
            counters.not_ipv4 += 1;
            Verdict::Allow
        }
    })
}

#[cfg(test)]
mod tests;
