//! TCP: [`TcpListener`] (`bind`, `accept`) and [`TcpStream`] (`connect`, `read`, `write`,
//! `shutdown`, read timeouts), blocking, over the application's channel pair to the tcp server
//! (`tcp-APP`, `APP-tcp`) and its pools (`APP-trx`, owned by tcp, where received bytes arrive;
//! `APP-ttx`, owned by the application, from which bytes are written). The vocabulary is
//! `tcpmsg`'s.
//!
//! Every listener and stream of a process shares one [`Endpoint`]: the channel pair. Messages
//! from tcp are sorted as they arrive — a connection's bytes and its end into that connection's
//! queue, new connections to their listener, answers to the call waiting for them — so any
//! number of listeners and streams can be open at once and read in any order. The first use in
//! a process says HELLO, which makes tcp drop whatever an earlier instance of the program left.
//!
//! The rx pool is shared by all of the process's connections: bytes a connection holds unread
//! must not starve the others (a control connection behind an unread data stream). Once half of
//! the pool is held, a newly arrived buffer is copied into the process's heap and handed back at
//! once, up to [`COPY_LIMIT`] bytes in all; past that, reading is the only way forward.
//! `write` returns once the bytes are handed to tcp (each buffer comes back with `WRITE_DONE`).
//!
//! When the tcp server restarts (the channels' epoch changes), what its last instance had is
//! gone: the streams of that instance fail with `ConnectionAborted` (bytes copied out before
//! are still read), a connect in progress too; the rx-pool buffers it lent are dropped without
//! a word (the pool is the new instance's now), and the tx-pool buffers it held are ours again.
//! Listeners carry on: the new instance listens on their ports again (it keeps them in its
//! state region), and the endpoint asks it to once more, in case it did not.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;
use core::net::SocketAddrV4;

use libchan::{
    BufferPool, Consumer, EpochChange, Message, PoolDescriptor, PoolView, Producer, RecvError,
    SendError, Waiter,
};
use tcpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID, Status, tag};

use crate::{Error, ErrorKind, Result};

/// How long a call waits for tcp's answer (HELLO, LISTEN) before it gives up.
const ANSWER_NS: u64 = 10_000_000_000;
/// Most received bytes kept in the heap (copied out of rx-pool buffers) at once.
pub const COPY_LIMIT: usize = 512 * 1024;

/// What a connection's queue holds: a message from tcp, or bytes copied out of one.
enum Item {
    Msg(Message),
    Bytes(alloc::vec::Vec<u8>),
}

/// The channel pair of a process to tcp, shared by its listeners and streams.
pub struct Endpoint<'a, W: Waiter> {
    to_tcp: Producer<'a, W>,
    from_tcp: Consumer<'a, W>,
    rx: PoolView<'a>,
    tx: BufferPool<'a>,
    /// Messages of each open connection (DATA, EOF, CLOSED), by id.
    queues: BTreeMap<u64, VecDeque<Item>>,
    /// rx-pool buffers held in the queues.
    held: usize,
    /// Bytes copied out into the queues.
    copied: usize,
    /// Connections accepted and not yet taken by `accept`: local port, id, peer.
    accepted: VecDeque<(u16, u64, SocketAddrV4)>,
    /// Answers to CONNECT by token: the connection id or why not.
    connects: BTreeMap<u64, core::result::Result<u64, Status>>,
    /// Answers to LISTEN by port.
    listens: BTreeMap<u16, Status>,
    hello: Option<u64>,
    next_token: u64,
    refused: u64,
    time: fn() -> u64,
    /// The newest epoch either channel reported.
    epoch: u32,
    /// Restarts of tcp seen: the instance streams and calls belong to.
    generation: u64,
    /// Listening ports to ask the new instance for again.
    relisten: bool,
    /// Points the channels' waiter at the tcp server's new instance; true once it did.
    find_peer: fn(&W) -> bool,
    /// tcp restarted and its new instance is not known to the waiter yet.
    peer_stale: bool,
    /// How long to poll tcp's channel without a message before sleeping on it (0: the
    /// channel's short spin only). See [`Endpoint::set_poll_ns`].
    poll_ns: u64,
}

/// A shared endpoint.
pub type Shared<'a, W> = Rc<RefCell<Endpoint<'a, W>>>;

/// A listening TCP port.
pub struct Listener<'a, W: Waiter> {
    ep: Shared<'a, W>,
    port: u16,
}

/// A TCP connection, accepted or connected.
pub struct Stream<'a, W: Waiter> {
    ep: Shared<'a, W>,
    id: u64,
    /// The tcp instance the connection belongs to (see [`Endpoint`]).
    generation: u64,
    /// The tcp instance is gone, and the connection with it.
    aborted: bool,
    peer: SocketAddrV4,
    /// The DATA being read and how much of it was.
    current: Option<(PoolDescriptor, usize)>,
    /// Copied bytes being read and how much of them were.
    copied: Option<(alloc::vec::Vec<u8>, usize)>,
    eof: bool,
    closed: bool,
    shut: bool,
    read_timeout: Option<u64>,
}

/// The listener of a program.
pub type TcpListener = Listener<'static, libsys::chan::SysWaiter>;
/// The stream of a program.
pub type TcpStream = Stream<'static, libsys::chan::SysWaiter>;

fn status_error(s: Status) -> Error {
    match s {
        Status::AddrInUse => ErrorKind::AddrInUse,
        Status::Refused => ErrorKind::ConnectionRefused,
        Status::Unreachable => ErrorKind::NetworkUnreachable,
        Status::NoResources => ErrorKind::OutOfMemory,
        Status::NotConnected => ErrorKind::NotConnected,
        Status::Ok | Status::Invalid => ErrorKind::InvalidInput,
    }
    .into()
}

impl<'a, W: Waiter> Endpoint<'a, W> {
    /// An endpoint over the given channels and pools; says HELLO (with `nonce`) and waits for
    /// tcp's answer. `time` gives nanoseconds for timeouts.
    pub fn open(
        to_tcp: Producer<'a, W>,
        from_tcp: Consumer<'a, W>,
        rx: PoolView<'a>,
        tx: BufferPool<'a>,
        nonce: u64,
        time: fn() -> u64,
    ) -> Result<Shared<'a, W>> {
        if rx.id() != APP_RX_POOL_ID || tx.view().id() != APP_TX_POOL_ID {
            return Err(ErrorKind::InvalidInput.into());
        }
        let mut ep = Self {
            to_tcp,
            from_tcp,
            rx,
            tx,
            queues: BTreeMap::new(),
            held: 0,
            copied: 0,
            accepted: VecDeque::new(),
            connects: BTreeMap::new(),
            listens: BTreeMap::new(),
            hello: None,
            next_token: 1,
            refused: 0,
            time,
            epoch: 0,
            generation: 0,
            relisten: false,
            find_peer: |_| true,
            peer_stale: false,
            poll_ns: 0,
        };
        ep.epoch = ep.to_tcp.epoch().max(ep.from_tcp.epoch());
        let hello = tcpmsg::control(tag::HELLO, Default::default(), nonce, 0);
        // Once more if tcp restarted under the first.
        if ep.send(&hello).is_err() {
            ep.send(&hello)?;
        }
        // A retry would map the regions a second time, which the kernel refuses: wait long,
        // waking tcp now and then in case it slept through the first notify.
        let deadline = (ep.time)().saturating_add(3 * ANSWER_NS);
        let mut generation = ep.generation;
        while ep.hello != Some(nonce) {
            let now = (ep.time)();
            if now >= deadline {
                return Err(ErrorKind::TimedOut.into());
            }
            if ep.generation != generation {
                // tcp restarted: the HELLO may have died with it.
                generation = ep.generation;
                let _ = ep.send(&hello);
            }
            ep.to_tcp.notify_peer();
            ep.pump_until(now.saturating_add(100_000_000).min(deadline))?;
        }
        Ok(Rc::new(RefCell::new(ep)))
    }

    /// Messages from tcp that made no sense.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Restarts of the tcp server seen.
    pub fn tcp_restarts(&self) -> u64 {
        self.generation
    }

    /// Buffers of our tx pool with tcp now (WRITEs not answered).
    pub fn tx_in_flight(&self) -> u32 {
        self.tx.in_use()
    }

    /// Buffers of the rx pool (tcp's) we hold, queued unread.
    pub fn rx_held(&self) -> usize {
        self.held
    }

    /// Polls tcp's channel for `ns` without a message before sleeping on it. While the
    /// endpoint polls, its sleeping flag stays down, so tcp sends it messages without a
    /// `notify` system call: under `idle=poll` the stack's CPUs then make none for us.
    pub fn set_poll_ns(&mut self, ns: u64) {
        self.poll_ns = ns;
    }

    /// Sleeps on tcp's channel so far (each ended by tcp's `notify`, a timeout or a message
    /// that came as the endpoint armed).
    pub fn sleeps(&self) -> u64 {
        self.from_tcp.counters().waits
    }

    /// How to point the channels' waiter at a restarted tcp server (true once done; retried
    /// before each send until then).
    pub fn set_find_peer(&mut self, find: fn(&W) -> bool) {
        self.find_peer = find;
    }

    /// A channel reported `change`: the first report of a new epoch means tcp restarted.
    fn saw(&mut self, change: &EpochChange) {
        if change.new_epoch > self.epoch {
            self.epoch = change.new_epoch;
            self.tcp_restarted();
        }
    }

    /// tcp restarted: its last instance's connections are gone with it (streams see the new
    /// generation and fail), the rx-pool buffers it lent are its pool's again (dropped, never
    /// handed back: the new instance owns them afresh), and the tx-pool buffers of ours it held
    /// (WRITEs in flight) are ours again.
    fn tcp_restarted(&mut self) {
        self.generation += 1;
        self.queues.clear();
        self.held = 0;
        self.copied = 0;
        self.accepted.clear();
        self.connects.clear();
        for index in 0..self.tx.view().count() {
            if self.tx.is_lent(index)
                && let Some(d) = self.tx.view().whole(index)
            {
                let _ = self.tx.free(d);
            }
        }
        self.relisten = self.listens.values().any(|&s| s == Status::Ok);
        self.peer_stale = true;
    }

    /// Sends `m`, a message for tcp's current instance.
    fn send(&mut self, m: &Message) -> Result<()> {
        let generation = self.generation;
        self.send_for(m, generation)
    }

    /// Sends `m`, a message for tcp's instance `generation`: when tcp restarted since (or
    /// restarts while we wait for room), nothing is sent (`ConnectionAborted`).
    fn send_for(&mut self, m: &Message, generation: u64) -> Result<()> {
        loop {
            if self.generation != generation {
                return Err(ErrorKind::ConnectionAborted.into());
            }
            if self.peer_stale {
                self.peer_stale = !(self.find_peer)(self.to_tcp.waiter());
            }
            match self.to_tcp.send(m) {
                // The send itself wakes tcp when it sleeps (its `sleeping` flag): no system
                // call while it polls.
                Ok(_) => return Ok(()),
                Err(SendError::EpochChanged(c)) => self.saw(&c),
                Err(SendError::Full) => {
                    self.to_tcp.notify_peer();
                    // Sort what tcp sent meanwhile (its answers free our buffers too).
                    if !self.drain()? {
                        let _ = self.from_tcp.wait_ready(Some(1_000_000));
                    }
                }
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
    }

    /// Sorts every message waiting in the channel; true when there was one (or tcp restarted).
    fn drain(&mut self) -> Result<bool> {
        let mut any = false;
        loop {
            match self.from_tcp.try_recv() {
                Ok(Some(m)) => {
                    any = true;
                    self.sort(m);
                }
                Ok(None) => break,
                Err(RecvError::EpochChanged(c)) => {
                    any = true;
                    self.saw(&c);
                }
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
        if core::mem::take(&mut self.relisten) {
            // The new instance listens on our ports already if it kept them; if it did not,
            // this brings them back. Its answers update `listens`.
            let ports: alloc::vec::Vec<u16> = self
                .listens
                .iter()
                .filter(|&(_, &s)| s == Status::Ok)
                .map(|(&p, _)| p)
                .collect();
            for port in ports {
                let m = tcpmsg::control(tag::LISTEN, Default::default(), u64::from(port), 0);
                let _ = self.send(&m);
            }
        }
        Ok(any)
    }

    /// Waits for messages until `deadline` (ns; `u64::MAX`: forever); true when some came.
    /// Polls for [`Endpoint::set_poll_ns`] first (time spent polling: a step longer than
    /// [`libsys::abi::IDLE_POLL_STEP_NS`] between two polls, when the CPU ran something else,
    /// does not count), then sleeps.
    fn pump_until(&mut self, deadline: u64) -> Result<bool> {
        let (mut polled, mut last_poll) = (0, None);
        loop {
            if self.drain()? {
                return Ok(true);
            }
            let now = if self.poll_ns != 0 || deadline != u64::MAX {
                (self.time)()
            } else {
                0
            };
            if deadline != u64::MAX && now >= deadline {
                return Ok(false);
            }
            if polled < self.poll_ns {
                polled += libsys::polled_step(last_poll.replace(now), now);
                core::hint::spin_loop();
                continue;
            }
            let timeout = (deadline != u64::MAX).then(|| deadline - now);
            match self.from_tcp.wait_ready(timeout) {
                Ok(_) => {}
                Err(RecvError::EpochChanged(c)) => {
                    self.saw(&c);
                    return Ok(true);
                }
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
    }

    fn sort(&mut self, m: Message) {
        let w2 = m.payload[2];
        match m.tag {
            tag::WRITE_DONE => {
                if self.tx.free(m.descriptor()).is_err() {
                    self.refused += 1;
                }
            }
            tag::DATA if self.queues.contains_key(&w2) => {
                let d = m.descriptor();
                let crowded = self.held * 2 >= self.rx.count() as usize;
                let item = if crowded && self.copied + d.len as usize <= COPY_LIMIT {
                    let bytes = match self.rx.check(d) {
                        Ok(b) => {
                            let mut v = alloc::vec![0u8; d.len as usize];
                            b.copy_to(&mut v);
                            v
                        }
                        Err(_) => {
                            self.refused += 1;
                            alloc::vec::Vec::new()
                        }
                    };
                    self.copied += bytes.len();
                    let back = tcpmsg::control(tag::DATA_RETURN, d, 0, 0);
                    let _ = self.send(&back);
                    Item::Bytes(bytes)
                } else {
                    self.held += 1;
                    Item::Msg(m)
                };
                if let Some(q) = self.queues.get_mut(&w2) {
                    q.push_back(item);
                }
            }
            tag::DATA | tag::EOF | tag::CLOSED => match self.queues.get_mut(&w2) {
                Some(q) => q.push_back(Item::Msg(m)),
                None => {
                    // A connection dropped already: its bytes go straight back.
                    if m.tag == tag::DATA {
                        let back = tcpmsg::control(tag::DATA_RETURN, m.descriptor(), 0, 0);
                        let _ = self.send(&back);
                    }
                }
            },
            tag::ACCEPTED => {
                let port = m.payload[4] as u16;
                if self.listens.get(&port) == Some(&Status::Ok) {
                    self.queues.insert(w2, VecDeque::new());
                    self.accepted
                        .push_back((port, w2, tcpmsg::endpoint_of(m.payload[3])));
                } else {
                    // Nobody listens there any more.
                    let _ = self.send(&tcpmsg::control(tag::CLOSE, Default::default(), w2, 0));
                }
            }
            tag::CONNECTED => {
                self.queues.insert(w2, VecDeque::new());
                self.connects.insert(m.payload[3], Ok(w2));
            }
            tag::CONNECT_FAILED => {
                self.connects
                    .insert(w2, Err(Status::from_code(m.payload[3])));
            }
            tag::LISTEN_REPLY => match u16::try_from(w2) {
                Ok(port) => {
                    self.listens.insert(port, Status::from_code(m.payload[3]));
                }
                Err(_) => self.refused += 1,
            },
            tag::HELLO_REPLY => self.hello = Some(w2),
            _ => self.refused += 1,
        }
    }
}

impl<'a, W: Waiter> Listener<'a, W> {
    /// Listens on `port` through `ep`.
    pub fn bind_on(ep: &Shared<'a, W>, port: u16) -> Result<Self> {
        if port == 0 {
            return Err(ErrorKind::InvalidInput.into());
        }
        let mut e = ep.borrow_mut();
        if e.listens.get(&port) == Some(&Status::Ok) {
            // Ours already (tcp answers Ok to the listener's owner, for after its restarts).
            return Err(ErrorKind::AddrInUse.into());
        }
        e.listens.remove(&port);
        let listen = tcpmsg::control(tag::LISTEN, Default::default(), u64::from(port), 0);
        let deadline = (e.time)().saturating_add(ANSWER_NS);
        let mut generation = None;
        loop {
            if generation != Some(e.generation) {
                // First, or again when tcp restarted before it answered.
                generation = Some(e.generation);
                match e.send(&listen) {
                    Err(err) if err.kind() == ErrorKind::ConnectionAborted => {
                        generation = None;
                        continue;
                    }
                    r => r?,
                }
            }
            match e.listens.get(&port) {
                Some(Status::Ok) => break,
                Some(&s) => {
                    e.listens.remove(&port);
                    return Err(status_error(s));
                }
                None => {
                    if !e.pump_until(deadline)? {
                        return Err(ErrorKind::TimedOut.into());
                    }
                }
            }
        }
        drop(e);
        Ok(Self {
            ep: ep.clone(),
            port,
        })
    }

    /// The port listened on.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// The next connection if one is waiting, without waiting for one.
    pub fn try_accept(&mut self) -> Result<Option<(Stream<'a, W>, SocketAddrV4)>> {
        let mut e = self.ep.borrow_mut();
        e.drain()?;
        self.take(&mut e)
    }

    /// A connection accepted for us, if one waits; an error when tcp no longer listens for us
    /// (it restarted, and another application took the port meanwhile).
    fn take(&self, e: &mut Endpoint<'a, W>) -> Result<Option<(Stream<'a, W>, SocketAddrV4)>> {
        if let Some(i) = e.accepted.iter().position(|a| a.0 == self.port)
            && let Some((_, id, peer)) = e.accepted.remove(i)
        {
            let s = Stream::new(&self.ep, id, peer, e.generation);
            return Ok(Some((s, peer)));
        }
        match e.listens.get(&self.port) {
            Some(Status::Ok) | None => Ok(None),
            Some(&s) => Err(status_error(s)),
        }
    }

    /// Waits for the next connection.
    pub fn accept(&mut self) -> Result<(Stream<'a, W>, SocketAddrV4)> {
        let mut e = self.ep.borrow_mut();
        loop {
            if let Some(s) = self.take(&mut e)? {
                return Ok(s);
            }
            e.pump_until(u64::MAX)?;
        }
    }
}

impl<W: Waiter> Drop for Listener<'_, W> {
    fn drop(&mut self) {
        let mut e = self.ep.borrow_mut();
        e.listens.remove(&self.port);
        let _ = e.send(&tcpmsg::control(
            tag::UNLISTEN,
            Default::default(),
            u64::from(self.port),
            0,
        ));
        // Connections accepted for us and never taken: closed.
        let port = self.port;
        let left: alloc::vec::Vec<u64> = e
            .accepted
            .iter()
            .filter(|a| a.0 == port)
            .map(|a| a.1)
            .collect();
        e.accepted.retain(|a| a.0 != port);
        for id in left {
            close_queue(&mut e, id, true);
        }
    }
}

/// Drops connection `id`'s queue (its bytes go back) and, unless it is closed, asks tcp to
/// close it.
fn close_queue<W: Waiter>(e: &mut Endpoint<'_, W>, id: u64, close: bool) {
    let mut closed = false;
    if let Some(q) = e.queues.remove(&id) {
        for item in q {
            match item {
                Item::Msg(m) if m.tag == tag::DATA => {
                    e.held = e.held.saturating_sub(1);
                    let back = tcpmsg::control(tag::DATA_RETURN, m.descriptor(), 0, 0);
                    let _ = e.send(&back);
                }
                Item::Msg(m) if m.tag == tag::CLOSED => closed = true,
                Item::Msg(_) => {}
                Item::Bytes(b) => e.copied = e.copied.saturating_sub(b.len()),
            }
        }
    }
    if close && !closed {
        let _ = e.send(&tcpmsg::control(tag::CLOSE, Default::default(), id, 0));
    }
}

impl<'a, W: Waiter> Stream<'a, W> {
    fn new(ep: &Shared<'a, W>, id: u64, peer: SocketAddrV4, generation: u64) -> Self {
        Self {
            ep: ep.clone(),
            id,
            generation,
            aborted: false,
            peer,
            current: None,
            copied: None,
            eof: false,
            closed: false,
            shut: false,
            read_timeout: None,
        }
    }

    /// Opens a connection to `to` through `ep`; waits until it is established or refused.
    pub fn connect_on(ep: &Shared<'a, W>, to: SocketAddrV4) -> Result<Self> {
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(ErrorKind::InvalidInput.into());
        }
        let mut e = ep.borrow_mut();
        let token = e.next_token;
        e.next_token += 1;
        let w = tcpmsg::endpoint(*to.ip(), to.port());
        let connect = tcpmsg::control(tag::CONNECT, Default::default(), w, token);
        // Again if tcp restarted as we sent it (nothing was sent then).
        let generation = loop {
            let generation = e.generation;
            match e.send(&connect) {
                Err(err) if err.kind() == ErrorKind::ConnectionAborted => {}
                r => break r.map(|()| generation)?,
            }
        };
        // tcp answers for certain (it gives up on a silent peer after its connect timeout),
        // unless it restarts first.
        loop {
            if e.generation != generation {
                return Err(ErrorKind::ConnectionAborted.into());
            }
            match e.connects.remove(&token) {
                Some(Ok(id)) => {
                    drop(e);
                    return Ok(Self::new(ep, id, to, generation));
                }
                Some(Err(s)) => return Err(status_error(s)),
                None => {
                    e.pump_until(u64::MAX)?;
                }
            }
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.peer
    }

    /// How long a `read` waits for bytes before it fails with `TimedOut` (`None`: forever).
    pub fn set_read_timeout(&mut self, ns: Option<u64>) {
        self.read_timeout = ns;
    }

    /// True when tcp restarted since the connection began (noticed now or before): its
    /// rx-pool buffer being read is dropped without a word (the pool is the new instance's).
    fn lost(&mut self, e: &Endpoint<'a, W>) -> bool {
        if e.generation != self.generation && !self.aborted {
            self.aborted = true;
            self.current = None;
        }
        self.aborted
    }

    /// The connection is gone with the tcp instance it belonged to.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Reads into `buf`; `Ok(0)` at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let ep = self.ep.clone();
        let mut e = ep.borrow_mut();
        let deadline = match self.read_timeout {
            Some(t) => (e.time)().saturating_add(t),
            None => u64::MAX,
        };
        loop {
            if let Some((bytes, at)) = self.copied.as_mut() {
                let rest = bytes.get(*at..).unwrap_or(&[]);
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                *at += n;
                if *at >= bytes.len() {
                    // (Counted afresh since, if tcp restarted.)
                    if self.generation == e.generation {
                        e.copied = e.copied.saturating_sub(bytes.len());
                    }
                    self.copied = None;
                }
                if n > 0 {
                    return Ok(n);
                }
                continue;
            }
            if self.lost(&e) {
                // Every byte before the end of the stream was read: that was all.
                return if self.eof {
                    Ok(0)
                } else {
                    Err(ErrorKind::ConnectionAborted.into())
                };
            }
            if let Some((d, at)) = self.current {
                let n = match e.rx.check(d) {
                    Ok(b) => {
                        // Safety: tcp handed this buffer over with DATA and does not touch it
                        // until DATA_RETURN (a restarted tcp may: the bytes are checked below).
                        let bytes = unsafe { b.as_slice() };
                        let rest = bytes.get(at..).unwrap_or(&[]);
                        let n = rest.len().min(buf.len());
                        buf[..n].copy_from_slice(&rest[..n]);
                        n
                    }
                    Err(_) => {
                        e.refused += 1;
                        0
                    }
                };
                // The buffer is the dead instance's pool's if tcp restarted before or during
                // the copy (its next instance may have written it): look after copying (the
                // kernel changes the epoch before the new instance runs).
                e.drain()?;
                if self.lost(&e) {
                    return Err(ErrorKind::ConnectionAborted.into());
                }
                if at + n >= d.len as usize {
                    self.current = None;
                    e.held = e.held.saturating_sub(1);
                    e.send_for(&tcpmsg::control(tag::DATA_RETURN, d, 0, 0), self.generation)?;
                } else {
                    self.current = Some((d, at + n));
                }
                if n > 0 {
                    return Ok(n);
                }
                continue;
            }
            if self.eof || self.closed {
                return Ok(0);
            }
            let next = e.queues.get_mut(&self.id).and_then(VecDeque::pop_front);
            match next {
                Some(Item::Bytes(b)) => self.copied = Some((b, 0)),
                Some(Item::Msg(m)) => match m.tag {
                    tag::DATA => self.current = Some((m.descriptor(), 0)),
                    tag::EOF => self.eof = true,
                    _ => {
                        self.closed = true;
                        if !self.eof {
                            return Err(ErrorKind::ConnectionReset.into());
                        }
                    }
                },
                None => {
                    if !e.pump_until(deadline)? {
                        return Err(ErrorKind::TimedOut.into());
                    }
                }
            }
        }
    }

    /// True when a `read` would not wait (bytes, the end of the stream, or an error are there).
    pub fn readable(&mut self) -> Result<bool> {
        if self.current.is_some() || self.copied.is_some() || self.eof || self.closed {
            return Ok(true);
        }
        let ep = self.ep.clone();
        let mut e = ep.borrow_mut();
        e.drain()?;
        if self.lost(&e) {
            return Ok(true);
        }
        Ok(e.queues.get(&self.id).is_some_and(|q| !q.is_empty()))
    }

    /// Writes all of `buf` (in pieces of a pool buffer); returns its length once tcp has it.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize> {
        if self.closed || self.shut {
            return Err(ErrorKind::BrokenPipe.into());
        }
        let ep = self.ep.clone();
        let mut e = ep.borrow_mut();
        for chunk in buf.chunks(tcpmsg::BUFFER_SIZE as usize) {
            let mut d = loop {
                if self.lost(&e) {
                    return Err(ErrorKind::ConnectionAborted.into());
                }
                let gone = e.queues.get(&self.id).is_none_or(|q| {
                    q.iter()
                        .any(|i| matches!(i, Item::Msg(m) if m.tag == tag::CLOSED))
                });
                if gone {
                    return Err(ErrorKind::ConnectionReset.into());
                }
                if let Some(d) = e.tx.alloc() {
                    break d;
                }
                // Every buffer is with tcp: wait for a WRITE_DONE (sorting frees them).
                e.pump_until(u64::MAX)?;
            };
            match e.tx.buffer(d) {
                Ok(b) => d.len = b.copy_from(chunk) as u32,
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
            let write = tcpmsg::control(tag::WRITE, d, self.id, 0);
            if let Err(err) = e.send_for(&write, self.generation) {
                let _ = e.tx.free(d);
                self.lost(&e);
                return Err(err);
            }
        }
        Ok(buf.len())
    }

    /// No more writes: the peer sees the end of the stream after the bytes written.
    pub fn shutdown(&mut self) -> Result<()> {
        let ep = self.ep.clone();
        let mut e = ep.borrow_mut();
        if self.lost(&e) {
            return Err(ErrorKind::ConnectionAborted.into());
        }
        if !self.shut && !self.closed {
            self.shut = true;
            let m = tcpmsg::control(tag::SHUTDOWN, Default::default(), self.id, 0);
            e.send_for(&m, self.generation)?;
        }
        Ok(())
    }
}

impl<W: Waiter> Drop for Stream<'_, W> {
    fn drop(&mut self) {
        let ep = self.ep.clone();
        let mut e = ep.borrow_mut();
        if self.lost(&e) {
            // Nothing of ours is left with tcp, and our id may be another connection's now.
            return;
        }
        if let Some((d, _)) = self.current.take() {
            e.held = e.held.saturating_sub(1);
            let _ = e.send(&tcpmsg::control(tag::DATA_RETURN, d, 0, 0));
        }
        if let Some((b, _)) = self.copied.take() {
            e.copied = e.copied.saturating_sub(b.len());
        }
        close_queue(&mut e, self.id, !self.closed);
    }
}

/// The process's endpoint, opened on first use.
struct Global(RefCell<Option<Shared<'static, libsys::chan::SysWaiter>>>);

// Safety: an Axolotl process has one thread; the cell is never touched concurrently.
unsafe impl Sync for Global {}

static ENDPOINT: Global = Global(RefCell::new(None));

/// This process's endpoint (`tcpmsg` names the channels and pools after the process's name in
/// the manifest), waking the tcp server by its pid.
fn endpoint() -> Result<Shared<'static, libsys::chan::SysWaiter>> {
    if let Some(ep) = ENDPOINT.0.borrow().as_ref() {
        return Ok(ep.clone());
    }
    let info = libsys::self_info().map_err(|_| ErrorKind::PermissionDenied)?;
    let app = String::from(info.name());
    let tcp = libsys::lookup(tcpmsg::SERVICE).map_err(|_| ErrorKind::TimedOut)?;
    let waiter = || libsys::chan::SysWaiter::new(tcp);
    let denied = |_| Error::from(ErrorKind::PermissionDenied);
    let to_tcp = libsys::chan::producer(&tcpmsg::app_to_tcp(&app), waiter()).map_err(denied)?;
    let from_tcp = libsys::chan::consumer(&tcpmsg::tcp_to_app(&app), waiter()).map_err(denied)?;
    let rx = crate::pool(&tcpmsg::app_rx_pool(&app), APP_RX_POOL_ID)?;
    let tx = BufferPool::new(crate::pool(&tcpmsg::app_tx_pool(&app), APP_TX_POOL_ID)?)
        .map_err(|_| ErrorKind::InvalidInput)?;
    let nonce = libsys::time_ns() ^ u64::from(libsys::pid());
    let ep = Endpoint::open(to_tcp, from_tcp, rx, tx, nonce, libsys::time_ns)?;
    if libsys::idle_poll() {
        // The boot asked the network path to poll, not sleep: the application too, so that
        // tcp does not wake it (a notify per wake-up on tcp's CPU).
        ep.borrow_mut().set_poll_ns(libsys::abi::IDLE_POLL_NS);
    }
    ep.borrow_mut()
        .set_find_peer(|w| match libsys::lookup(tcpmsg::SERVICE) {
            Ok(pid) => {
                w.set_peer(pid);
                true
            }
            Err(_) => false,
        });
    *ENDPOINT.0.borrow_mut() = Some(ep.clone());
    Ok(ep)
}

impl TcpListener {
    /// Listens on `port` for this process.
    pub fn bind(port: u16) -> Result<Self> {
        Self::bind_on(&endpoint()?, port)
    }
}

impl TcpStream {
    /// Opens a connection to `to` from this process.
    pub fn connect(to: SocketAddrV4) -> Result<Self> {
        Self::connect_on(&endpoint()?, to)
    }
}
