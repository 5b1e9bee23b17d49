//! `tcpd`: Axolotl's tcp server (binary `tcp`; docs/netpath.md "TCP"). A smoltcp `Interface`
//! with `Medium::Ip` whose device is the channel to ip: received IPv4 packets are read in place
//! in the rx-pool buffer (no copy; the buffer goes home right after smoltcp read it) and
//! outgoing packets are written by smoltcp in place into tx-pool buffers ip lent us, at
//! [`tcpmsg::TX_HEADROOM`], for ip to put the Ethernet header in front.
//!
//! Each application listens on one port; one connection at a time is served over its channel
//! pair (a SYN while it is busy is refused with RST by smoltcp: no backlog yet). Bytes are copied
//! once each way at the application's protection boundary: from the socket's receive buffer into
//! the application's rx pool (owned by tcp), and from its tx pool into the socket's send buffer.
//!
//! Choices (DESIGN.md §6/§8): receive buffer 256 KiB (so smoltcp offers window scaling, shift
//! 2), send buffer 128 KiB (the heap is 1 MiB), Nagle off, delayed ACK off, smoltcp's default
//! RTO bounds (1 s minimum), no keep-alive. A connection that reaches TIME-WAIT or CLOSED is
//! dropped at once and a fresh listening socket takes its place (no TIME-WAIT kept).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use libchan::{BufferPool, Message, PoolDescriptor, PoolView};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tcpmsg::{Status, tag};

/// Receive buffer of a connection (window scaling needs more than 64 KiB).
pub const RX_BUFFER: usize = 256 * 1024;
/// Send buffer of a connection.
pub const TX_BUFFER: usize = 128 * 1024;

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
    /// Stream bytes delivered to applications.
    pub rx_bytes: u64,
    /// Stream bytes taken from applications.
    pub tx_bytes: u64,
    /// Messages refused (malformed, unknown, a buffer not ours).
    pub refused: u64,
}

impl Stats {
    /// Every counter with its name.
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("rx_packets", self.rx_packets),
            ("tx_packets", self.tx_packets),
            ("tx_no_buffer", self.tx_no_buffer),
            ("accepted", self.accepted),
            ("rx_bytes", self.rx_bytes),
            ("tx_bytes", self.tx_bytes),
            ("refused", self.refused),
        ]
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
            self.out
                .push_back(tcpmsg::control(tag::RX_RETURN, d.frame, 0, 0));
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
    port: Option<u16>,
    socket: Option<SocketHandle>,
    /// The current connection's id once ACCEPTED was sent.
    conn: Option<u64>,
    eof_sent: bool,
    /// The application asked for FIN (SHUTDOWN or CLOSE) once its writes are in.
    closing: bool,
    /// The application dropped the stream: received bytes are discarded.
    detached: bool,
    /// WRITEs not yet wholly in the send buffer: the buffer and how much was taken.
    writes: VecDeque<(PoolDescriptor, usize)>,
    out: VecDeque<Message>,
}

/// The tcp server's state: see the crate documentation.
pub struct Tcp<'a> {
    link: Link<'a>,
    iface: Interface,
    sockets: SocketSet<'static>,
    our: Option<Ipv4Addr>,
    apps: Vec<App<'a>>,
    next_conn: u64,
}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
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
            next_conn: 1,
        }
    }

    /// Serves application `name` (index = order of calls) with its rx pool (ours) and a view of
    /// its tx pool.
    pub fn add_app(&mut self, name: &str, rx: BufferPool<'a>, atx: PoolView<'a>) {
        self.apps.push(App {
            name: String::from(name),
            rx,
            atx,
            port: None,
            socket: None,
            conn: None,
            eof_sent: false,
            closing: false,
            detached: false,
            writes: VecDeque::new(),
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
                        let back = tcpmsg::control(tag::RX_RETURN, m.descriptor(), 0, 0);
                        self.link.out.push_back(back);
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
                    self.iface.update_ip_addrs(|a| {
                        a.clear();
                        let _ = a.push(IpCidr::new(IpAddress::v4(o[0], o[1], o[2], o[3]), 24));
                    });
                }
            }
            _ => self.link.stats.refused += 1,
        }
    }

    /// Handles one message from application `app`.
    pub fn from_app(&mut self, app: usize, m: &Message) {
        let Some(a) = self.apps.get_mut(app) else {
            return;
        };
        match m.tag {
            tag::LISTEN => {
                let port = m.payload[2];
                let status = if port == 0 || port > 65535 || a.port.is_some() {
                    Status::Invalid
                } else if self.apps.iter().any(|o| o.port == Some(port as u16)) {
                    Status::AddrInUse
                } else {
                    let handle = listen(&mut self.sockets, port as u16);
                    let a = &mut self.apps[app];
                    a.port = Some(port as u16);
                    a.socket = handle;
                    if handle.is_some() {
                        Status::Ok
                    } else {
                        Status::Invalid
                    }
                };
                let reply =
                    tcpmsg::control(tag::LISTEN_REPLY, Default::default(), port, status as u64);
                self.apps[app].out.push_back(reply);
            }
            tag::DATA_RETURN => {
                if a.rx.free(m.descriptor()).is_err() {
                    self.link.stats.refused += 1;
                }
            }
            tag::WRITE => {
                let d = m.descriptor();
                if a.atx.validate(d).is_err() {
                    self.link.stats.refused += 1;
                } else if a.conn != Some(m.payload[2]) || a.closing {
                    let done = tcpmsg::control(
                        tag::WRITE_DONE,
                        d,
                        m.payload[2],
                        Status::NotConnected as u64,
                    );
                    a.out.push_back(done);
                } else {
                    a.writes.push_back((d, 0));
                }
            }
            tag::SHUTDOWN | tag::CLOSE => {
                if a.conn == Some(m.payload[2]) {
                    a.closing = true;
                    a.detached |= m.tag == tag::CLOSE;
                }
            }
            _ => self.link.stats.refused += 1,
        }
    }

    /// Runs smoltcp at `now_ns` and moves bytes between the sockets and the applications.
    pub fn poll(&mut self, now_ns: u64) {
        let now = instant(now_ns);
        for _ in 0..4 {
            self.iface.poll(now, &mut self.link, &mut self.sockets);
            let mut moved = false;
            for i in 0..self.apps.len() {
                moved |= self.serve(i);
            }
            if !moved {
                break;
            }
        }
    }

    /// Moves what it can for application `i`; true when bytes moved.
    fn serve(&mut self, i: usize) -> bool {
        let a = &mut self.apps[i];
        let Some(handle) = a.socket else {
            return false;
        };
        let stats = &mut self.link.stats;
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        let mut moved = false;
        if a.conn.is_none() && !matches!(s.state(), State::Listen | State::Closed) {
            let id = self.next_conn;
            self.next_conn += 1;
            a.conn = Some(id);
            a.eof_sent = false;
            a.closing = false;
            a.detached = false;
            stats.accepted += 1;
            let (addr, port) = match s.remote_endpoint() {
                Some(IpEndpoint {
                    addr: IpAddress::Ipv4(ip),
                    port,
                }) => (u32::from(ip), port),
                _ => (0, 0),
            };
            let peer = u64::from(addr) | u64::from(port) << 32;
            a.out
                .push_back(tcpmsg::control(tag::ACCEPTED, Default::default(), id, peer));
        }
        let Some(id) = a.conn else {
            return false;
        };
        // Received bytes to the application (or discarded once it let go).
        while s.can_recv() {
            if a.detached {
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
        while let Some(&mut (d, ref mut taken)) = a.writes.front_mut() {
            if !s.can_send() {
                break;
            }
            let Ok(b) = a.atx.check(d) else {
                a.writes.pop_front();
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
            a.writes.pop_front();
            a.out
                .push_back(tcpmsg::control(tag::WRITE_DONE, d, id, Status::Ok as u64));
        }
        if a.closing && a.writes.is_empty() && s.may_send() {
            s.close();
        }
        // The peer's FIN came (and every byte before it went to the application).
        let fin = matches!(
            s.state(),
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait | State::Closed
        );
        if !a.eof_sent && fin && s.recv_queue() == 0 && !a.detached {
            a.eof_sent = true;
            a.out
                .push_back(tcpmsg::control(tag::EOF, Default::default(), id, 0));
        }
        if matches!(s.state(), State::Closed | State::TimeWait) {
            // Gone: fail what is left, tell the application, listen afresh.
            for (d, _) in a.writes.drain(..) {
                a.out.push_back(tcpmsg::control(
                    tag::WRITE_DONE,
                    d,
                    id,
                    Status::NotConnected as u64,
                ));
            }
            a.out
                .push_back(tcpmsg::control(tag::CLOSED, Default::default(), id, 0));
            a.conn = None;
            self.sockets.remove(handle);
            a.socket = a.port.and_then(|p| listen(&mut self.sockets, p));
            moved = true;
        }
        moved
    }

    /// When smoltcp wants to be polled next (ns, absolute), if it has a timer.
    pub fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        self.iface
            .poll_delay(instant(now_ns), &self.sockets)
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

/// A new listening socket on `port` with our choices (see the crate documentation).
fn listen(sockets: &mut SocketSet<'static>, port: u16) -> Option<SocketHandle> {
    let rx = tcp::SocketBuffer::new(vec![0u8; RX_BUFFER]);
    let tx = tcp::SocketBuffer::new(vec![0u8; TX_BUFFER]);
    let mut s = tcp::Socket::new(rx, tx);
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s.listen(port).ok()?;
    Some(sockets.add(s))
}

#[cfg(test)]
mod tests;
