//! `tcpd`: Axolotl's tcp server (binary `tcp`; docs/netpath.md "TCP"). A smoltcp `Interface`
//! with `Medium::Ip` whose device is the channel to ip: received IPv4 packets are read in place
//! in the rx-pool buffer (no copy; the buffer goes home right after smoltcp read it) and
//! outgoing packets are written by smoltcp in place into tx-pool buffers ip lent us, at
//! [`tcpmsg::TX_HEADROOM`], for ip to put the Ethernet header in front.
//!
//! An application may listen on several ports and hold several connections, accepted or opened
//! by CONNECT (ephemeral ports from 49152), up to [`MAX_CONNECTIONS`] sockets in all; a
//! listening socket that takes a SYN becomes a connection and a fresh one takes its place before
//! the next packet is read, so the backlog is as deep as the limit. The application hears of a
//! connection (ACCEPTED, CONNECTED) once it is established. A new instance of an application
//! says HELLO first: what the last one left (connections, ports, buffers) is dropped. Bytes are
//! copied once each way at the application's protection boundary: from the socket's receive
//! buffer into the application's rx pool (owned by tcp), and from its tx pool into the socket's
//! send buffer.
//!
//! Choices (DESIGN.md §6/§8): receive buffer 1 MiB (so smoltcp offers window scaling, shift 5),
//! send buffer 1 MiB (the program's heap is 64 MiB), Nagle off, delayed ACK off, smoltcp's
//! default RTO bounds (1 s minimum), no keep-alive. The buffers bound what is in flight: with
//! four CPUs between the application and the NIC, each taking its turn on a busy host, a
//! smaller window leaves the link idle (docs/netpath.md "Buffer sizes"). A connection that
//! reaches TIME-WAIT or CLOSED is dropped at once and a fresh listening socket takes its place
//! (no TIME-WAIT kept).
//!
//! What outlives a restart of tcp ([`state`]): each application's listening ports, in the
//! region `tcp-state` when the manifest grants it. A restarted tcp listens on them again before
//! it serves anything ([`Tcp::keep_listens`]); connections are not kept (the peer's next
//! segment is answered with RST, and the application's streams fail).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod server;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::sync::atomic::AtomicU32;

use libchan::{BufferPool, Message, PoolDescriptor, PoolView};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tcpmsg::{Status, tag};

/// Receive buffer of a connection: the window offered (window scaling needs more than 64 KiB).
pub const RX_BUFFER: usize = 1024 * 1024;
/// Send buffer of a connection: the most bytes in flight (smoltcp runs no congestion control).
/// 1 MiB: with 512 KiB the split layout sent 0.87–0.94 Gbit/s, with 1 MiB 1.07–1.08, with 2 MiB
/// 1.08–1.15 (`cargo xtask bench --seconds 5 --no-recovery`; docs/netpath.md "Buffer sizes").
pub const TX_BUFFER: usize = 1024 * 1024;
/// Connections and listening sockets together (each holds RX_BUFFER + TX_BUFFER of the heap).
pub const MAX_CONNECTIONS: usize = 24;
/// How long a CONNECT waits for the peer's SYN-ACK.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// First ephemeral port for CONNECT.
pub const EPHEMERAL_FIRST: u16 = 49152;
/// How far smoltcp's clock jumps after a loss on the way out (ip, pf or the driver restarted):
/// its minimum retransmission timeout (1 s), so that every connection's retransmission timer
/// expires at once ([`Tcp::send_again_now`]).
pub const SEND_AGAIN_JUMP: Duration = Duration::from_secs(1);
/// The clock jumps at most this often: PATH_LOST comes from ip, through shared memory, and a
/// flood of it must not make every connection resend all it has, over and over.
pub const SEND_AGAIN_EVERY_NS: u64 = 100_000_000;
/// Most egress passes over the sockets in one poll (each pass sends one packet per socket).
const EGRESS_PASSES: usize = 2 * tcpmsg::TX_CREDIT;
/// Ephemeral ports run from [`EPHEMERAL_FIRST`] to 65535.
pub const EPHEMERAL_SPAN: u16 = u16::MAX - EPHEMERAL_FIRST + 1;

/// The server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// IPv4 packets received from ip.
    pub rx_packets: u64,
    /// IPv4 packets handed to ip.
    pub tx_packets: u64,
    /// Packets smoltcp wanted to send with no lent buffer (dropped; TCP retransmits).
    pub tx_no_buffer: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections opened by CONNECT.
    pub connected: u64,
    /// Stream bytes delivered to applications.
    pub rx_bytes: u64,
    /// Stream bytes taken from applications.
    pub tx_bytes: u64,
    /// Messages refused (malformed, unknown, a buffer not ours).
    pub refused: u64,
    /// Restarts of ip seen (what was lent to us by the old instance dropped).
    pub ip_restarts: u64,
    /// Listening ports not recorded in tcp-state (it was full): they do not outlive a restart.
    pub not_kept: u64,
    /// Losses on the way out (a restart of ip, PATH_LOST from ip) after which every
    /// connection sent again what was not acknowledged, at once.
    pub sent_again: u64,
    /// Restarts of ip and PATH_LOSTs ignored: one was pending already, or came less than
    /// [`SEND_AGAIN_EVERY_NS`] after the last time connections sent again.
    pub sent_again_skipped: u64,
}

impl Stats {
    /// Every counter with its name.
    pub fn fields(&self) -> [(&'static str, u64); 12] {
        [
            ("rx_packets", self.rx_packets),
            ("tx_packets", self.tx_packets),
            ("tx_no_buffer", self.tx_no_buffer),
            ("accepted", self.accepted),
            ("connected", self.connected),
            ("rx_bytes", self.rx_bytes),
            ("tx_bytes", self.tx_bytes),
            ("refused", self.refused),
            ("ip_restarts", self.ip_restarts),
            ("not_kept", self.not_kept),
            ("sent_again", self.sent_again),
            ("sent_again_skipped", self.sent_again_skipped),
        ]
    }
}

/// Queues rx-pool buffer `d` to go home to ip: in the newest message queued when that sends rx
/// buffers home and has room (`RX_RETURNS`, [`netmsg::merge`]), else as an `RX_RETURN`. A poll
/// that reads 30 packets sends their buffers home in 3 messages.
fn send_home(out: &mut VecDeque<Message>, d: PoolDescriptor) {
    let m = tcpmsg::control(tag::RX_RETURN, d, 0, 0);
    if !out.back_mut().is_some_and(|last| netmsg::merge(last, &m)) {
        out.push_back(m);
    }
}

/// The smoltcp device: the channel pair to ip.
struct Link<'a> {
    frames: PoolView<'a>,
    tx: PoolView<'a>,
    rx_queue: VecDeque<tcpmsg::Delivery>,
    lent: Vec<PoolDescriptor>,
    out: VecDeque<Message>,
    stats: Stats,
}

/// A received packet, read in place.
pub struct RxToken<'a>(&'a [u8]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// A packet to send, written in place into a lent tx-pool buffer (or dropped without one).
pub struct TxToken<'b, 'a> {
    link: &'b mut Link<'a>,
}

impl phy::TxToken for TxToken<'_, '_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let link = self.link;
        let room = (tcpmsg::BUFFER_SIZE - tcpmsg::TX_HEADROOM) as usize;
        if len <= room
            && let Some(d) = link.lent.pop()
        {
            let seg = PoolDescriptor {
                offset: tcpmsg::TX_HEADROOM,
                len: len as u32,
                ..d
            };
            if let Ok(mut b) = link.tx.check(seg) {
                // Safety: ip lent us this buffer (TX_LEND) and has not had it back: nobody else
                // touches it until the IP_SEND below.
                let r = f(unsafe { b.as_mut_slice() });
                link.out.push_back(tcpmsg::control(tag::IP_SEND, seg, 0, 0));
                link.stats.tx_packets += 1;
                return r;
            }
            link.lent.push(d);
        }
        link.stats.tx_no_buffer += 1;
        let mut scratch = vec![0u8; len];
        f(&mut scratch)
    }
}

impl<'a> Device for Link<'a> {
    type RxToken<'b>
        = RxToken<'a>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b, 'a>
    where
        Self: 'b;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'a>, TxToken<'_, 'a>)> {
        if self.lent.is_empty() {
            // Keep the packet until ip gives buffers back: its answer needs one.
            return None;
        }
        loop {
            let d = self.rx_queue.pop_front()?;
            let packet = PoolDescriptor {
                offset: d.ip_offset,
                len: d.ip_len,
                ..d.frame
            };
            // Home once this round's poll is over (the outbox is flushed after it).
            send_home(&mut self.out, d.frame);
            if let Ok(b) = self.frames.check(packet) {
                // Safety: ip handed us the buffer with DELIVER; the RX_RETURN just queued goes
                // out only after smoltcp's poll, when this slice is no longer used.
                let bytes = unsafe { b.as_slice() };
                return Some((RxToken(bytes), TxToken { link: self }));
            }
            self.stats.refused += 1;
        }
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_, 'a>> {
        (!self.lent.is_empty()).then_some(TxToken { link: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c
    }
}

/// What an application has with us.
struct App<'a> {
    name: String,
    rx: BufferPool<'a>,
    atx: PoolView<'a>,
    /// Ports listened on, each with its listening socket (none while the connection limit is
    /// reached: a SYN then gets RST until a connection closes).
    listens: Vec<(u16, Option<SocketHandle>)>,
    out: VecDeque<Message>,
}

/// How a connection came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Accepted on a listening port.
    Accepted,
    /// Opened by CONNECT with this token.
    Connect(u64),
}

/// A connection of an application's.
struct Conn {
    id: u64,
    app: usize,
    handle: SocketHandle,
    origin: Origin,
    /// ACCEPTED or CONNECTED was sent (the application knows the id).
    announced: bool,
    eof_sent: bool,
    /// The application asked for FIN (SHUTDOWN or CLOSE) once its writes are in.
    closing: bool,
    /// The application dropped the stream: received bytes are discarded.
    detached: bool,
    /// WRITEs not yet wholly in the send buffer: the buffer and how much was taken.
    writes: VecDeque<(PoolDescriptor, usize)>,
}

/// The tcp server's state: see the crate documentation.
pub struct Tcp<'a> {
    link: Link<'a>,
    iface: Interface,
    sockets: SocketSet<'static>,
    our: Option<Ipv4Addr>,
    apps: Vec<App<'a>>,
    conns: Vec<Conn>,
    /// Sockets aborted by HELLO: removed after the poll that sends their RST.
    aborted: Vec<SocketHandle>,
    next_conn: u64,
    next_port: u16,
    /// Where the listening ports are recorded for the next instance (tcp-state), if granted.
    kept: Option<state::Listens<'a>>,
    /// How far smoltcp's clock runs ahead of ours: [`SEND_AGAIN_JUMP`] more at each loss on
    /// the way out ([`Tcp::send_again_now`]).
    ahead_ns: u64,
    /// A loss on the way out was reported: the next poll sends again ([`Tcp::send_again_now`]).
    send_again: bool,
    /// When (our clock) connections last sent again.
    sent_again_at: Option<u64>,
}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

/// A connection's (or listening socket's) state in words, for `netstat`.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "CLOSED",
        State::Listen => "LISTEN",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECEIVED",
        State::Established => "ESTABLISHED",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::CloseWait => "CLOSE-WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST-ACK",
        State::TimeWait => "TIME-WAIT",
    }
}

/// One line of `netstat`: a listening port or a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    /// The application's name.
    pub app: String,
    /// Our port.
    pub local_port: u16,
    /// The peer (none for a listening port).
    pub remote: Option<core::net::SocketAddrV4>,
    /// The TCP state.
    pub state: &'static str,
    /// Bytes received and not yet read by the application.
    pub recv_queue: usize,
    /// Bytes written and not yet acknowledged.
    pub send_queue: usize,
}

impl<'a> Tcp<'a> {
    /// A server over views of the rx-pool `frames` and the tx-pool `tx`, started at `now_ns`
    /// with `seed` for smoltcp's initial sequence numbers and ports.
    pub fn new(frames: PoolView<'a>, tx: PoolView<'a>, now_ns: u64, seed: u64) -> Self {
        let mut link = Link {
            frames,
            tx,
            rx_queue: VecDeque::new(),
            lent: Vec::with_capacity(tcpmsg::TX_CREDIT * 2),
            out: VecDeque::new(),
            stats: Stats::default(),
        };
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let iface = Interface::new(config, &mut link, instant(now_ns));
        Self {
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            our: None,
            apps: Vec::new(),
            conns: Vec::new(),
            aborted: Vec::new(),
            next_conn: 1,
            next_port: EPHEMERAL_FIRST + (seed % u64::from(EPHEMERAL_SPAN)) as u16,
            kept: None,
            ahead_ns: 0,
            send_again: false,
            sent_again_at: None,
        }
    }

    /// Our time `now_ns` on smoltcp's clock.
    fn clock(&self, now_ns: u64) -> Instant {
        instant(now_ns.saturating_add(self.ahead_ns))
    }

    /// Keeps the applications' listening ports in `region` (tcp-state, as words; call after
    /// every [`Tcp::add_app`]): listens again on what a previous instance recorded there (what
    /// is valid of it), and records every LISTEN, UNLISTEN and HELLO from now on. `None` when
    /// the region is too small to hold a state.
    pub fn keep_listens(&mut self, region: &'a [AtomicU32]) -> Option<state::Restored> {
        let (kept, mut restored) = state::Listens::open(region, self.apps.len())?;
        restored.listens.retain(|&(app, port)| {
            if self
                .apps
                .iter()
                .any(|a| a.listens.iter().any(|l| l.0 == port))
            {
                return false;
            }
            let handle = if self.conns.len() + self.listening() < MAX_CONNECTIONS {
                listen(&mut self.sockets, port)
            } else {
                None
            };
            self.apps[app].listens.push((port, handle));
            true
        });
        self.kept = Some(kept);
        Some(restored)
    }

    /// Serves application `name` (index = order of calls) with its rx pool (ours) and a view of
    /// its tx pool.
    pub fn add_app(&mut self, name: &str, rx: BufferPool<'a>, atx: PoolView<'a>) {
        self.apps.push(App {
            name: String::from(name),
            rx,
            atx,
            listens: Vec::new(),
            out: VecDeque::new(),
        });
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.link.stats
    }

    /// Our address (from ip's loans), once known.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.our
    }

    /// Connections open now (announced or not).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Every listening port and connection, for `netstat`.
    pub fn sockets(&self) -> Vec<SocketInfo> {
        let mut v = Vec::new();
        for a in &self.apps {
            for &(port, handle) in &a.listens {
                let state = match handle {
                    Some(_) => "LISTEN",
                    None => "LISTEN(full)",
                };
                v.push(SocketInfo {
                    app: a.name.clone(),
                    local_port: port,
                    remote: None,
                    state,
                    recv_queue: 0,
                    send_queue: 0,
                });
            }
        }
        for c in &self.conns {
            let s = self.sockets.get::<tcp::Socket>(c.handle);
            let (local_port, remote) = endpoints(s);
            v.push(SocketInfo {
                app: self.apps[c.app].name.clone(),
                local_port,
                remote,
                state: state_name(s.state()),
                recv_queue: s.recv_queue(),
                send_queue: s.send_queue(),
            });
        }
        v
    }

    /// ip restarted: the buffers the old instance lent us are not ours any more (the new one
    /// starts its tx pool afresh and lends anew), the received packets we hold were already
    /// sent home by pf on its behalf, and what we queued for it would be refused. Drop all of
    /// it; TCP retransmits what was lost, so connections carry on.
    ///
    /// And at once ([`Tcp::send_again_now`]).
    pub fn ip_restarted(&mut self) {
        self.link.stats.ip_restarts += 1;
        self.link.lent.clear();
        self.link.rx_queue.clear();
        self.link.out.clear();
        self.send_again_now();
    }

    /// Segments were lost on the way out with a server that restarted (ip; or pf or the driver,
    /// and ip said PATH_LOST): a run of consecutive ones, often with more after them that got
    /// through. smoltcp resends one segment per fast retransmit and has no SACK or partial-ACK
    /// recovery, so the rest of the run would wait for the retransmission timeout, a second at
    /// least (docs/netpath.md "Restarts"). smoltcp's clock jumps ahead by that minimum
    /// ([`SEND_AGAIN_JUMP`]): every retransmission timer armed expires at the next poll, and each
    /// connection sends again from the first byte not acknowledged. Only smoltcp's timers see
    /// the jump (a connect timeout in progress shrinks by as much); the time we keep and report
    /// is ours. The jump is made by the next poll, at most once per [`SEND_AGAIN_EVERY_NS`];
    /// reports beyond that are counted in `sent_again_skipped` and dropped.
    fn send_again_now(&mut self) {
        if self.send_again {
            self.link.stats.sent_again_skipped += 1;
        }
        self.send_again = true;
    }

    /// Makes the jump [`Tcp::send_again_now`] asked for, if one is pending, at `now_ns`.
    fn jump_if_asked(&mut self, now_ns: u64) {
        if !core::mem::take(&mut self.send_again) {
            return;
        }
        if self
            .sent_again_at
            .is_some_and(|at| now_ns.saturating_sub(at) < SEND_AGAIN_EVERY_NS)
        {
            self.link.stats.sent_again_skipped += 1;
            return;
        }
        self.sent_again_at = Some(now_ns);
        self.link.stats.sent_again += 1;
        self.ahead_ns = self
            .ahead_ns
            .saturating_add(SEND_AGAIN_JUMP.total_micros() * 1000);
    }

    /// Handles one message from ip.
    pub fn from_ip(&mut self, m: &Message) {
        match m.tag {
            tag::DELIVER => match tcpmsg::Delivery::decode(m) {
                Some(d) if self.link.frames.validate(d.frame).is_ok() => {
                    self.link.stats.rx_packets += 1;
                    self.link.rx_queue.push_back(d);
                }
                _ => {
                    self.link.stats.refused += 1;
                    if self.link.frames.validate(m.descriptor()).is_ok() {
                        send_home(&mut self.link.out, m.descriptor());
                    }
                }
            },
            tag::TX_LEND => {
                let d = m.descriptor();
                if d.pool != netmsg::TX_POOL_ID || self.link.tx.validate(d).is_err() {
                    self.link.stats.refused += 1;
                    return;
                }
                self.link.lent.push(d);
                let our = Ipv4Addr::from(m.payload[2] as u32);
                if self.our != Some(our) && !our.is_unspecified() {
                    self.our = Some(our);
                    let o = our.octets();
                    let me = IpAddress::v4(o[0], o[1], o[2], o[3]);
                    self.iface.update_ip_addrs(|a| {
                        a.clear();
                        let _ = a.push(IpCidr::new(me, 24));
                    });
                    // ip routes; to smoltcp (Medium::Ip) every other address is "via ip",
                    // which our own address stands for.
                    self.iface.routes_mut().remove_default_ipv4_route();
                    let _ = self.iface.routes_mut().add_default_ipv4_route(our);
                }
            }
            tag::PATH_LOST => self.send_again_now(),
            _ => self.link.stats.refused += 1,
        }
    }

    /// Handles one message from application `app`.
    pub fn from_app(&mut self, app: usize, m: &Message) {
        if app >= self.apps.len() {
            return;
        }
        let w2 = m.payload[2];
        match m.tag {
            tag::HELLO => {
                self.forget_app(app);
                let reply = tcpmsg::control(tag::HELLO_REPLY, Default::default(), w2, 0);
                self.apps[app].out.push_back(reply);
            }
            tag::LISTEN => {
                let status = self.listen_on(app, w2);
                let reply =
                    tcpmsg::control(tag::LISTEN_REPLY, Default::default(), w2, status as u64);
                self.apps[app].out.push_back(reply);
            }
            tag::UNLISTEN => {
                let a = &mut self.apps[app];
                if let Some(i) = a.listens.iter().position(|&(p, _)| u64::from(p) == w2) {
                    let (port, h) = a.listens.remove(i);
                    if let Some(h) = h {
                        self.sockets.remove(h);
                    }
                    if let Some(k) = &self.kept {
                        k.remove(app, port);
                    }
                } else {
                    self.link.stats.refused += 1;
                }
            }
            tag::CONNECT => {
                let token = m.payload[3];
                match self.connect(app, tcpmsg::endpoint_of(w2), token) {
                    Ok(()) => {}
                    Err(status) => {
                        let f = tcpmsg::control(
                            tag::CONNECT_FAILED,
                            Default::default(),
                            token,
                            status as u64,
                        );
                        self.apps[app].out.push_back(f);
                    }
                }
            }
            tag::DATA_RETURN => {
                if self.apps[app].rx.free(m.descriptor()).is_err() {
                    self.link.stats.refused += 1;
                }
            }
            tag::WRITE => {
                let d = m.descriptor();
                let a = &mut self.apps[app];
                if a.atx.validate(d).is_err() {
                    self.link.stats.refused += 1;
                    return;
                }
                match self
                    .conns
                    .iter_mut()
                    .find(|c| c.app == app && c.announced && c.id == w2)
                {
                    Some(c) if !c.closing => c.writes.push_back((d, 0)),
                    _ => {
                        let done =
                            tcpmsg::control(tag::WRITE_DONE, d, w2, Status::NotConnected as u64);
                        a.out.push_back(done);
                    }
                }
            }
            tag::SHUTDOWN | tag::CLOSE => {
                // Closed by the peer already: nothing to do.
                if let Some(c) = self
                    .conns
                    .iter_mut()
                    .find(|c| c.app == app && c.announced && c.id == w2)
                {
                    c.closing = true;
                    c.detached |= m.tag == tag::CLOSE;
                }
            }
            _ => self.link.stats.refused += 1,
        }
    }

    /// LISTEN on `port` for `app`.
    fn listen_on(&mut self, app: usize, port: u64) -> Status {
        let Ok(port) = u16::try_from(port) else {
            return Status::Invalid;
        };
        if port == 0 {
            return Status::Invalid;
        }
        if self.apps[app].listens.iter().any(|&(p, _)| p == port) {
            // Ours already (a previous instance of tcp listened for it and we kept the port):
            // the application asks again after our restart.
            self.keep(app, port);
            return Status::Ok;
        }
        if self
            .apps
            .iter()
            .any(|a| a.listens.iter().any(|&(p, _)| p == port))
        {
            return Status::AddrInUse;
        }
        if self.conns.len() >= MAX_CONNECTIONS {
            return Status::NoResources;
        }
        match listen(&mut self.sockets, port) {
            Some(h) => {
                self.apps[app].listens.push((port, Some(h)));
                self.keep(app, port);
                Status::Ok
            }
            None => Status::Invalid,
        }
    }

    /// Records that `app` listens on `port` in tcp-state (if kept).
    fn keep(&mut self, app: usize, port: u16) {
        if let Some(k) = &self.kept
            && !k.add(app, port)
        {
            self.link.stats.not_kept += 1;
        }
    }

    /// CONNECT for `app` to `to`.
    fn connect(
        &mut self,
        app: usize,
        to: core::net::SocketAddrV4,
        token: u64,
    ) -> Result<(), Status> {
        let Some(our) = self.our else {
            return Err(Status::Unreachable);
        };
        if to.port() == 0
            || to.ip().is_unspecified()
            || to.ip().is_broadcast()
            || to.ip().is_multicast()
        {
            return Err(Status::Invalid);
        }
        if self.conns.len() + self.listening() >= MAX_CONNECTIONS {
            return Err(Status::NoResources);
        }
        let local = self.free_port();
        let mut s = socket();
        let o = to.ip().octets();
        let remote = IpEndpoint::new(IpAddress::v4(o[0], o[1], o[2], o[3]), to.port());
        let u = our.octets();
        let me = IpEndpoint::new(IpAddress::v4(u[0], u[1], u[2], u[3]), local);
        s.connect(self.iface.context(), remote, me)
            .map_err(|_| Status::Unreachable)?;
        // A silent peer fails the connect instead of leaving the application waiting forever;
        // the timeout is lifted once the connection is established.
        s.set_timeout(Some(CONNECT_TIMEOUT));
        let handle = self.sockets.add(s);
        let id = self.next_id();
        self.conns.push(Conn {
            id,
            app,
            handle,
            origin: Origin::Connect(token),
            announced: false,
            eof_sent: false,
            closing: false,
            detached: false,
            writes: VecDeque::new(),
        });
        Ok(())
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    /// Listening sockets in existence (each holds a connection's buffers).
    fn listening(&self) -> usize {
        self.apps
            .iter()
            .map(|a| a.listens.iter().filter(|l| l.1.is_some()).count())
            .sum()
    }

    /// An ephemeral port no connection or listener of ours uses.
    fn free_port(&mut self) -> u16 {
        loop {
            let p = self.next_port;
            self.next_port = p.checked_add(1).unwrap_or(EPHEMERAL_FIRST);
            let used = self
                .conns
                .iter()
                .any(|c| endpoints(self.sockets.get::<tcp::Socket>(c.handle)).0 == p)
                || self.apps.iter().any(|a| a.listens.iter().any(|l| l.0 == p));
            if !used {
                return p;
            }
        }
    }

    /// Drops everything of application `app`: a new instance said HELLO.
    fn forget_app(&mut self, app: usize) {
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].app == app {
                let c = self.conns.swap_remove(i);
                self.sockets.get_mut::<tcp::Socket>(c.handle).abort();
                // The RST goes out with the next poll; the socket is gone after it.
                self.aborted.push(c.handle);
            } else {
                i += 1;
            }
        }
        if let Some(k) = &self.kept {
            k.remove_app(app);
        }
        let a = &mut self.apps[app];
        for (_, h) in a.listens.drain(..) {
            if let Some(h) = h {
                self.sockets.remove(h);
            }
        }
        a.out.clear();
        for index in 0..a.rx.view().count() {
            if a.rx.is_lent(index)
                && let Some(d) = a.rx.view().whole(index)
            {
                let _ = a.rx.free(d);
            }
        }
    }

    /// Runs smoltcp at `now_ns` and moves bytes between the sockets and the applications.
    pub fn poll(&mut self, now_ns: u64) {
        self.jump_if_asked(now_ns);
        let now = self.clock(now_ns);
        for _ in 0..4 {
            // Packet by packet, so that a listener that took a SYN is replaced before the next
            // SYN for its port is read (the backlog is as deep as the connection limit).
            let mut moved = false;
            loop {
                match self
                    .iface
                    .poll_ingress_single(now, &mut self.link, &mut self.sockets)
                {
                    PollIngressSingleResult::None => break,
                    PollIngressSingleResult::PacketProcessed => {}
                    PollIngressSingleResult::SocketStateChanged => {
                        moved |= self.take_new_connections();
                    }
                }
            }
            // smoltcp sends at most one packet per socket in a pass: pass again while one
            // went out (each takes a lent buffer, so the lent buffers bound the passes too).
            for _ in 0..EGRESS_PASSES {
                let sent = self
                    .iface
                    .poll_egress(now, &mut self.link, &mut self.sockets);
                if sent == PollResult::None || self.link.lent.is_empty() {
                    break;
                }
            }
            for h in self.aborted.drain(..) {
                self.sockets.remove(h);
            }
            moved |= self.take_new_connections();
            let mut i = 0;
            while i < self.conns.len() {
                let (m, gone) = self.serve(i);
                moved |= m;
                if gone {
                    let c = self.conns.swap_remove(i);
                    self.sockets.remove(c.handle);
                } else {
                    i += 1;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Listening sockets that left LISTEN become connections; a fresh listener takes each one's
    /// place while the limit allows (and listeners left without one get it back).
    fn take_new_connections(&mut self) -> bool {
        let mut moved = false;
        for app in 0..self.apps.len() {
            for l in 0..self.apps[app].listens.len() {
                let (port, handle) = self.apps[app].listens[l];
                if let Some(h) = handle {
                    let st = self.sockets.get::<tcp::Socket>(h).state();
                    if matches!(st, State::Listen) {
                        continue;
                    }
                    let id = self.next_id();
                    self.conns.push(Conn {
                        id,
                        app,
                        handle: h,
                        origin: Origin::Accepted,
                        announced: false,
                        eof_sent: false,
                        closing: false,
                        detached: false,
                        writes: VecDeque::new(),
                    });
                    self.apps[app].listens[l].1 = None;
                    moved = true;
                }
                if self.conns.len() + self.listening() < MAX_CONNECTIONS {
                    self.apps[app].listens[l].1 = listen(&mut self.sockets, port);
                }
            }
        }
        moved
    }

    /// Moves what it can for connection `i`; (bytes moved, the connection is gone).
    fn serve(&mut self, i: usize) -> (bool, bool) {
        let c = &mut self.conns[i];
        let a = &mut self.apps[c.app];
        let stats = &mut self.link.stats;
        let s = self.sockets.get_mut::<tcp::Socket>(c.handle);
        let mut moved = false;
        let state = s.state();
        if !c.announced {
            let up = !matches!(
                state,
                State::Listen
                    | State::SynSent
                    | State::SynReceived
                    | State::Closed
                    | State::TimeWait
            );
            if up {
                c.announced = true;
                moved = true;
                let m = match c.origin {
                    Origin::Accepted => {
                        stats.accepted += 1;
                        let peer = match endpoints(s).1 {
                            Some(p) => tcpmsg::endpoint(*p.ip(), p.port()),
                            None => 0,
                        };
                        let mut m = tcpmsg::control(tag::ACCEPTED, Default::default(), c.id, peer);
                        m.payload[4] = u64::from(endpoints(s).0);
                        m.len = 40;
                        m
                    }
                    Origin::Connect(token) => {
                        stats.connected += 1;
                        s.set_timeout(None);
                        tcpmsg::control(tag::CONNECTED, Default::default(), c.id, token)
                    }
                };
                a.out.push_back(m);
            } else if matches!(state, State::Closed | State::TimeWait | State::Listen) {
                // Never established: a connect is refused; a half-open accept just vanishes
                // (smoltcp puts a SYN-RECEIVED socket back to LISTEN on a RST).
                if let Origin::Connect(token) = c.origin {
                    let f = tcpmsg::control(
                        tag::CONNECT_FAILED,
                        Default::default(),
                        token,
                        Status::Refused as u64,
                    );
                    a.out.push_back(f);
                }
                return (true, true);
            } else {
                return (false, false);
            }
        }
        let id = c.id;
        // Received bytes to the application (or discarded once it let go).
        while s.can_recv() {
            if c.detached {
                let n = s.recv(|b| (b.len(), b.len())).unwrap_or(0);
                moved |= n > 0;
                continue;
            }
            let Some(d) = a.rx.alloc() else {
                break;
            };
            let Ok(mut b) = a.rx.buffer(d) else {
                let _ = a.rx.free(d);
                break;
            };
            // Safety: we own this buffer of the app's rx pool (just allocated, not sent yet).
            let n = s.recv_slice(unsafe { b.as_mut_slice() }).unwrap_or(0);
            if n == 0 {
                let _ = a.rx.free(d);
                break;
            }
            stats.rx_bytes += n as u64;
            moved = true;
            let data = PoolDescriptor { len: n as u32, ..d };
            a.out.push_back(tcpmsg::control(tag::DATA, data, id, 0));
        }
        // Bytes from the application into the send buffer.
        while let Some(&mut (d, ref mut taken)) = c.writes.front_mut() {
            if !s.can_send() {
                break;
            }
            let Ok(b) = a.atx.check(d) else {
                c.writes.pop_front();
                continue;
            };
            // Safety: the application handed this buffer over with WRITE and does not touch it
            // until WRITE_DONE.
            let bytes = unsafe { b.as_slice() };
            let n = s.send_slice(&bytes[*taken..]).unwrap_or(0);
            *taken += n;
            stats.tx_bytes += n as u64;
            moved |= n > 0;
            if *taken < bytes.len() {
                break;
            }
            c.writes.pop_front();
            a.out
                .push_back(tcpmsg::control(tag::WRITE_DONE, d, id, Status::Ok as u64));
        }
        if c.closing && c.writes.is_empty() && s.may_send() {
            s.close();
        }
        // The peer's FIN came (and every byte before it went to the application).
        let fin = matches!(
            s.state(),
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait | State::Closed
        );
        if !c.eof_sent && fin && s.recv_queue() == 0 && !c.detached {
            c.eof_sent = true;
            a.out
                .push_back(tcpmsg::control(tag::EOF, Default::default(), id, 0));
        }
        if matches!(s.state(), State::Closed | State::TimeWait) {
            // Gone: fail what is left and tell the application.
            for (d, _) in c.writes.drain(..) {
                a.out.push_back(tcpmsg::control(
                    tag::WRITE_DONE,
                    d,
                    id,
                    Status::NotConnected as u64,
                ));
            }
            a.out
                .push_back(tcpmsg::control(tag::CLOSED, Default::default(), id, 0));
            return (true, true);
        }
        (moved, false)
    }

    /// When smoltcp wants to be polled next (ns, absolute), if it has a timer (now, when a loss
    /// waits to be acted on).
    pub fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        if self.send_again {
            return Some(now_ns);
        }
        self.iface
            .poll_delay(self.clock(now_ns), &self.sockets)
            .map(|d: Duration| now_ns + d.total_micros() * 1000)
    }

    /// Received packets not yet read (waiting for a lent buffer).
    pub fn pending(&self) -> usize {
        self.link.rx_queue.len()
    }

    /// The name of application `i`.
    pub fn app_name(&self, i: usize) -> &str {
        &self.apps[i].name
    }

    /// Hands the outbox to ip to `send` (returns how many it took).
    pub fn flush_ip(&mut self, send: impl FnMut(&[Message]) -> usize) {
        flush(&mut self.link.out, send);
    }

    /// Hands application `i`'s outbox to `send`.
    pub fn flush_app(&mut self, i: usize, send: impl FnMut(&[Message]) -> usize) {
        flush(&mut self.apps[i].out, send);
    }
}

fn flush(out: &mut VecDeque<Message>, mut send: impl FnMut(&[Message]) -> usize) {
    loop {
        let (first, _) = out.as_slices();
        if first.is_empty() {
            return;
        }
        let offered = first.len();
        let taken = send(first).min(offered);
        out.drain(..taken);
        if taken < offered {
            return;
        }
    }
}

/// A socket with our choices (see the crate documentation).
fn socket() -> tcp::Socket<'static> {
    let rx = tcp::SocketBuffer::new(vec![0u8; RX_BUFFER]);
    let tx = tcp::SocketBuffer::new(vec![0u8; TX_BUFFER]);
    let mut s = tcp::Socket::new(rx, tx);
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s
}

/// A new listening socket on `port`.
fn listen(sockets: &mut SocketSet<'static>, port: u16) -> Option<SocketHandle> {
    let mut s = socket();
    s.listen(port).ok()?;
    Some(sockets.add(s))
}

/// A socket's local port and its peer (if it has one).
fn endpoints(s: &tcp::Socket) -> (u16, Option<core::net::SocketAddrV4>) {
    let local = s.local_endpoint().map_or(0, |e| e.port);
    let remote = match s.remote_endpoint() {
        Some(IpEndpoint {
            addr: IpAddress::Ipv4(ip),
            port,
        }) => Some(core::net::SocketAddrV4::new(ip, port)),
        _ => None,
    };
    (local, remote)
}

pub mod state {
    //! `tcp-state`: the listening ports of each application, kept by the kernel across a
    //! restart of tcp (DESIGN.md §6). The region is read as little-endian 32-bit words: two of
    //! magic ([`MAGIC`]), the number of slots, one reserved, then the slots. A slot is one word,
    //! written with a single store (a crash in the middle of an update leaves every slot either
    //! as it was or as it is meant to be): 0 when free, else the port (bits 0-15), the
    //! application's index in tcp's arguments (bits 16-23) and a check byte (bits 24-31).
    //!
    //! Nothing of it is trusted on reading: a bad header starts an empty state; a slot whose
    //! check byte, application or port is wrong, or whose port another slot has already, is
    //! counted in [`Restored::bad`] and cleared.

    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};

    /// The region's name in the manifest.
    pub const REGION: &str = "tcp-state";
    /// First two words of a valid state: "TCPLISN1".
    pub const MAGIC: [u32; 2] = [u32::from_le_bytes(*b"TCPL"), u32::from_le_bytes(*b"ISN1")];
    /// Words before the first slot.
    pub const HEADER_WORDS: usize = 4;
    /// Most slots of a state (a page holds more; tcp listens on far fewer ports).
    pub const MAX_SLOTS: usize = 256;
    /// Most applications a slot can name.
    pub const MAX_APPS: usize = 256;

    /// What a restarted tcp found in the region.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Restored {
        /// Valid entries: (application index, port), in slot order.
        pub listens: Vec<(usize, u16)>,
        /// Entries dropped as invalid (and, with a bad header, the non-zero words found).
        pub bad: usize,
        /// No valid state was there (the first start, or a damaged header): it starts empty.
        pub fresh: bool,
    }

    /// The check byte of a slot.
    fn check(app: u8, port: u16) -> u8 {
        let [lo, hi] = port.to_le_bytes();
        0x5a ^ app ^ lo.rotate_left(3) ^ hi.rotate_left(5)
    }

    /// The slot word for `app` listening on `port` (`None`: not representable).
    pub fn encode(app: usize, port: u16) -> Option<u32> {
        let a = u8::try_from(app).ok()?;
        (port != 0).then(|| u32::from(port) | u32::from(a) << 16 | u32::from(check(a, port)) << 24)
    }

    /// The (application, port) of a used slot word, if its check byte and port are right.
    pub fn decode(word: u32) -> Option<(usize, u16)> {
        let port = word as u16;
        let app = (word >> 16) as u8;
        (port != 0 && (word >> 24) as u8 == check(app, port)).then_some((usize::from(app), port))
    }

    /// The listening ports recorded in the region.
    pub struct Listens<'a> {
        slots: &'a [AtomicU32],
    }

    impl<'a> Listens<'a> {
        /// Reads `region` for a tcp serving `apps` applications, drops what is invalid, and
        /// keeps the region for the updates to come. `None` when it cannot hold a header and a
        /// slot.
        pub fn open(region: &'a [AtomicU32], apps: usize) -> Option<(Self, Restored)> {
            if region.len() <= HEADER_WORDS {
                return None;
            }
            let (head, rest) = region.split_at(HEADER_WORDS);
            let room = rest.len().min(MAX_SLOTS);
            let word = |i: usize| head[i].load(Ordering::Relaxed);
            let slots = usize::try_from(word(2)).unwrap_or(usize::MAX);
            let mut restored = Restored::default();
            let valid = [word(0), word(1)] == MAGIC && (1..=room).contains(&slots) && word(3) == 0;
            if !valid {
                // First start (all zero) or damage: start empty.
                restored.fresh = true;
                restored.bad = region
                    .iter()
                    .filter(|w| w.load(Ordering::Relaxed) != 0)
                    .count();
                for w in region {
                    w.store(0, Ordering::Relaxed);
                }
                head[0].store(MAGIC[0], Ordering::Relaxed);
                head[1].store(MAGIC[1], Ordering::Relaxed);
                head[2].store(room as u32, Ordering::Relaxed);
                return Some((
                    Self {
                        slots: &rest[..room],
                    },
                    restored,
                ));
            }
            let slots = &rest[..slots];
            for s in slots {
                let w = s.load(Ordering::Relaxed);
                if w == 0 {
                    continue;
                }
                match decode(w) {
                    Some((app, port))
                        if app < apps && restored.listens.iter().all(|l| l.1 != port) =>
                    {
                        restored.listens.push((app, port));
                    }
                    _ => {
                        restored.bad += 1;
                        s.store(0, Ordering::Relaxed);
                    }
                }
            }
            Some((Self { slots }, restored))
        }

        /// Records `app` listening on `port`; false when there is no room (or no such slot
        /// value).
        pub fn add(&self, app: usize, port: u16) -> bool {
            let Some(w) = encode(app, port) else {
                return false;
            };
            if self.slots.iter().any(|s| s.load(Ordering::Relaxed) == w) {
                return true;
            }
            match self.slots.iter().find(|s| s.load(Ordering::Relaxed) == 0) {
                Some(s) => {
                    s.store(w, Ordering::Relaxed);
                    true
                }
                None => false,
            }
        }

        /// Forgets `app` listening on `port`.
        pub fn remove(&self, app: usize, port: u16) {
            if let Some(w) = encode(app, port) {
                self.clear(|x| x == w);
            }
        }

        /// Forgets every port of `app` (a new instance of it said HELLO).
        pub fn remove_app(&self, app: usize) {
            self.clear(|x| decode(x).is_some_and(|(a, _)| a == app));
        }

        fn clear(&self, which: impl Fn(u32) -> bool) {
            for s in self.slots {
                if which(s.load(Ordering::Relaxed)) {
                    s.store(0, Ordering::Relaxed);
                }
            }
        }

        /// What is recorded now: (application, port), in slot order.
        pub fn entries(&self) -> Vec<(usize, u16)> {
            self.slots
                .iter()
                .filter_map(|s| decode(s.load(Ordering::Relaxed)))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests;
