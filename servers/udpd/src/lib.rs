//! `udpd`: Axolotl's udp server (DESIGN.md §3, §6; binary `udp`). Between ip and the
//! applications: received datagrams go to the application that bound their port, datagrams from
//! applications go to ip. The vocabulary is `udpmsg`'s (ownership of every buffer is explained
//! there); this library is the server's logic with no system call, tested on the host; [`server`] the
//! loop body with the system calls, which `src/main.rs` (the `udp` program) and the single
//! layout's netstack run.
//!
//! **Receive.** ip hands over the frame (`DELIVER`, an rx-pool descriptor plus the UDP header's
//! offset). The UDP header and length are checked, the checksum verified (`netproto`; zero means
//! none, RFC 768), the port looked up, and the data copied once into a buffer of the
//! application's rx pool (which udp owns), sent as `DATAGRAM`. Whatever happened, the frame goes
//! home at once with `RX_RETURN` (several that meet in the queue to ip travel as one
//! `RX_RETURNS`) — or, for a valid unicast datagram to a port no application bound (`rx_no_port`
//! counts them), with `RX_UNREACHABLE`, which also asks ip to answer it with an ICMP port
//! unreachable.
//!
//! **Send.** An application's `SEND` names data in its own tx pool; udp takes a tx-pool buffer
//! lent by ip (`TX_LEND`), writes the UDP header at [`udpmsg::TX_HEADROOM`], copies the data once
//! behind it, computes the checksum (ip's address came with the loan), and hands it to ip with
//! `UDP_SEND`. The application's buffer goes back with `SEND_DONE` and a status.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use libchan::{BufferPool, Message, PoolDescriptor, PoolView};
use netmsg::{Kind, TX_POOL_ID};
use netproto::checksum;
use netproto::ipv4::IpProtocol;
use udpmsg::{AppDatagram, Delivery, MAX_DATA, Outgoing, Status, TX_HEADROOM, UDP_HEADER_LEN, tag};

pub mod server;

/// The server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received from ip.
    pub rx_datagrams: u64,
    /// Delivered to an application.
    pub rx_delivered: u64,
    /// Dropped: bad UDP header or length.
    pub rx_bad_header: u64,
    /// Dropped: bad checksum.
    pub rx_bad_checksum: u64,
    /// Dropped: no application bound the port.
    pub rx_no_port: u64,
    /// Dropped: the application's rx pool was empty (it reads too slowly).
    pub rx_app_pool_empty: u64,
    /// rx-pool buffers sent home.
    pub rx_returned: u64,
    /// Datagrams handed to ip.
    pub tx_datagrams: u64,
    /// Sends refused: no tx-pool buffer lent by ip, and the wait queue full.
    pub tx_no_buffer: u64,
    /// Sends that waited for a tx-pool buffer (the application's buffer is held meanwhile).
    pub tx_waited: u64,
    /// Sends refused: not bound, bad destination, too long.
    pub tx_refused: u64,
    /// tx-pool buffers ip lent.
    pub tx_lent: u64,
    /// Messages refused (malformed, unknown, a buffer not ours).
    pub refused: u64,
    /// Ports bound.
    pub binds: u64,
    /// Restarts of ip seen.
    pub ip_restarts: u64,
}

impl Stats {
    /// Every counter with its name.
    pub fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("rx_datagrams", self.rx_datagrams),
            ("rx_delivered", self.rx_delivered),
            ("rx_bad_header", self.rx_bad_header),
            ("rx_bad_checksum", self.rx_bad_checksum),
            ("rx_no_port", self.rx_no_port),
            ("rx_app_pool_empty", self.rx_app_pool_empty),
            ("rx_returned", self.rx_returned),
            ("tx_datagrams", self.tx_datagrams),
            ("tx_no_buffer", self.tx_no_buffer),
            ("tx_refused", self.tx_refused),
            ("tx_lent", self.tx_lent),
            ("tx_waited", self.tx_waited),
            ("refused", self.refused),
            ("binds", self.binds),
            ("ip_restarts", self.ip_restarts),
        ]
    }
}

/// One application and its channel pair's state.
struct App<'a> {
    name: String,
    /// Its rx pool: ours.
    rx: BufferPool<'a>,
    /// Its tx pool: its own; we only read what it sends.
    tx: PoolView<'a>,
    port: Option<u16>,
    out: VecDeque<Message>,
}

/// The udp server's state: see the crate documentation.
pub struct Udp<'a> {
    frames: PoolView<'a>,
    tx: PoolView<'a>,
    lent: Vec<PoolDescriptor>,
    our: Option<Ipv4Addr>,
    apps: Vec<App<'a>>,
    to_ip: VecDeque<Message>,
    /// Sends waiting for a lent buffer, in order (each holds its application's buffer: the
    /// application's pool is the back-pressure).
    waiting: VecDeque<(usize, AppDatagram)>,
    stats: Stats,
}

/// Most sends waiting for a lent buffer (in all).
pub const MAX_WAITING: usize = 256;

impl<'a> Udp<'a> {
    /// A server over the rx-pool `frames` and a view of the tx-pool `tx` (both read or written
    /// only in buffers the protocol gives us).
    pub fn new(frames: PoolView<'a>, tx: PoolView<'a>) -> Self {
        Self {
            frames,
            tx,
            lent: Vec::with_capacity(udpmsg::TX_CREDIT * 2),
            our: None,
            apps: Vec::new(),
            to_ip: VecDeque::new(),
            waiting: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Adds application `name` with its rx pool (ours) and tx pool (its); returns its number.
    pub fn add_app(&mut self, name: &str, rx: BufferPool<'a>, tx: PoolView<'a>) -> usize {
        self.apps.push(App {
            name: String::from(name),
            rx,
            tx,
            port: None,
            out: VecDeque::new(),
        });
        self.apps.len() - 1
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The port application `app` bound.
    pub fn port(&self, app: usize) -> Option<u16> {
        self.apps.get(app).and_then(|a| a.port)
    }

    /// The number of applications served.
    pub fn apps(&self) -> usize {
        self.apps.len()
    }

    /// Application `app`'s name.
    pub fn app_name(&self, app: usize) -> &str {
        self.apps.get(app).map_or("", |a| a.name.as_str())
    }

    /// tx-pool buffers lent by ip and not used yet.
    pub fn credit(&self) -> usize {
        self.lent.len()
    }

    /// Hands the messages for ip to `send` (which returns how many it took, in order).
    pub fn flush_ip(&mut self, send: impl FnMut(&[Message]) -> usize) {
        flush(&mut self.to_ip, send);
    }

    /// Hands the messages for application `app` to `send`.
    pub fn flush_app(&mut self, app: usize, send: impl FnMut(&[Message]) -> usize) {
        if let Some(a) = self.apps.get_mut(app) {
            flush(&mut a.out, send);
        }
    }

    /// Messages waiting for ip and for the applications.
    pub fn pending(&self) -> usize {
        self.to_ip.len() + self.apps.iter().map(|a| a.out.len()).sum::<usize>()
    }

    /// Handles one message from ip.
    pub fn from_ip(&mut self, m: &Message) {
        match m.tag {
            tag::DELIVER => {
                let Ok(Kind::RxFrame(frame)) =
                    Kind::decode(m, self.frames.count(), self.tx.count())
                else {
                    self.stats.refused += 1;
                    return;
                };
                self.stats.rx_datagrams += 1;
                let unreachable = match Delivery::decode(m) {
                    Some(d) => self.receive(&d),
                    None => {
                        self.stats.rx_bad_header += 1;
                        false
                    }
                };
                // Home either way; RX_UNREACHABLE also asks ip for the ICMP port unreachable. A
                // plain return folds into the newest return queued when it fits.
                let home = if unreachable {
                    Message::with_descriptor(tag::RX_UNREACHABLE, frame)
                } else {
                    Kind::RxReturn(frame).message()
                };
                if !self
                    .to_ip
                    .back_mut()
                    .is_some_and(|last| netmsg::merge(last, &home))
                {
                    self.to_ip.push_back(home);
                }
                self.stats.rx_returned += 1;
            }
            tag::TX_LEND => {
                let d = m.descriptor();
                if d.pool != TX_POOL_ID
                    || d.index >= self.tx.count()
                    || self.lent.iter().any(|l| l.index == d.index)
                {
                    self.stats.refused += 1;
                    return;
                }
                self.our = Some(udpmsg::lend_address(m));
                self.lent.push(PoolDescriptor {
                    pool: TX_POOL_ID,
                    index: d.index,
                    offset: 0,
                    len: 0,
                });
                self.stats.tx_lent += 1;
                while !self.lent.is_empty()
                    && let Some((app, dg)) = self.waiting.pop_front()
                {
                    self.send_now(app, &dg);
                }
            }
            _ => self.stats.refused += 1,
        }
    }

    /// ip restarted: the buffers its last instance lent us are its new instance's to lend
    /// again, and what we queued for it would be refused; drop both. Sends waiting for a
    /// buffer keep waiting (for the new instance's loans).
    pub fn ip_restarted(&mut self) {
        self.stats.ip_restarts += 1;
        self.lent.clear();
        self.to_ip.clear();
    }

    /// Delivers a datagram to the application that bound its port; true when it was a valid
    /// unicast datagram for a port no application bound (ip may answer port unreachable).
    fn receive(&mut self, d: &Delivery) -> bool {
        let Ok(buf) = self.frames.check(d.frame) else {
            self.stats.rx_bad_header += 1;
            return false;
        };
        // Safety: ip handed us this frame with DELIVER and we send it home only after this
        // function; nobody writes it meanwhile (a peer breaking that only gives us garbage to
        // parse: every access below is bounds-checked).
        let frame = unsafe { buf.as_slice() };
        // The offsets come from ip, a peer: checked, never trusted.
        let seg = d
            .udp_offset
            .checked_sub(d.frame.offset)
            .map(|start| start as usize)
            .and_then(|start| frame.get(start..start.checked_add(d.udp_len as usize)?))
            .filter(|seg| seg.len() >= UDP_HEADER_LEN);
        let Some(seg) = seg else {
            self.stats.rx_bad_header += 1;
            return false;
        };
        let be16 = |i: usize| u16::from_be_bytes([seg[i], seg[i + 1]]);
        let (src_port, dst_port, len, sum) = (be16(0), be16(2), usize::from(be16(4)), be16(6));
        if len < UDP_HEADER_LEN || len > seg.len() {
            self.stats.rx_bad_header += 1;
            return false;
        }
        let seg = &seg[..len];
        if sum != 0 && !checksum::verify_transport(d.src, d.dst, IpProtocol::UDP.0, seg) {
            self.stats.rx_bad_checksum += 1;
            return false;
        }
        let Some(app) = self.apps.iter_mut().find(|a| a.port == Some(dst_port)) else {
            self.stats.rx_no_port += 1;
            return !d.broadcast;
        };
        let Some(mut data) = app.rx.alloc() else {
            self.stats.rx_app_pool_empty += 1;
            return false;
        };
        let payload = &seg[UDP_HEADER_LEN..];
        match app.rx.buffer(data) {
            // The one copy: from the rx-pool buffer into the application's.
            Ok(b) => data.len = b.copy_from(payload) as u32,
            Err(_) => {
                let _ = app.rx.free(data);
                return false;
            }
        }
        let dg = AppDatagram {
            data,
            peer: d.src,
            peer_port: src_port,
            local_port: dst_port,
        };
        app.out.push_back(dg.message(tag::DATAGRAM));
        self.stats.rx_delivered += 1;
        false
    }

    /// Handles one message from application `app`.
    pub fn from_app(&mut self, app: usize, m: &Message) {
        if app >= self.apps.len() {
            return;
        }
        match m.tag {
            tag::BIND => {
                let status = self.bind(app, m.payload[2]);
                let a = &mut self.apps[app];
                a.out.push_back(udpmsg::control(
                    tag::BIND_REPLY,
                    PoolDescriptor::default(),
                    m.payload[2],
                    status as u64,
                ));
            }
            tag::DATAGRAM_RETURN => {
                if self.apps[app].rx.free(m.descriptor()).is_err() {
                    self.stats.refused += 1;
                }
            }
            tag::SEND => self.send(app, &AppDatagram::decode(m)),
            _ => self.stats.refused += 1,
        }
    }

    fn bind(&mut self, app: usize, port: u64) -> Status {
        let Ok(port) = u16::try_from(port) else {
            return Status::Invalid;
        };
        if self.apps[app].port == Some(port) {
            // A bind repeated after a timeout on the application's side, or by a new instance
            // of it (the binding outlived the old one).
            return Status::Ok;
        }
        if port == 0 {
            return Status::Invalid;
        }
        if self.apps.iter().any(|a| a.port == Some(port)) {
            return Status::AddrInUse;
        }
        // An application has one socket: a bind to another port is a new instance's (the old
        // one's binding, kept across restarts, goes).
        self.apps[app].port = Some(port);
        self.stats.binds += 1;
        Status::Ok
    }

    /// A SEND: at once when a lent buffer is at hand (and nothing waits before it), else it
    /// waits for one.
    fn send(&mut self, app: usize, dg: &AppDatagram) {
        let can_wait = self.our.is_some() && self.apps[app].port.is_some();
        if can_wait
            && (self.lent.is_empty() || !self.waiting.is_empty())
            && self.waiting.len() < MAX_WAITING
            && self.apps[app].tx.validate(dg.data).is_ok()
        {
            self.stats.tx_waited += 1;
            self.waiting.push_back((app, *dg));
            return;
        }
        self.send_now(app, dg);
    }

    /// Binds application `app` to `port` as a saved state says (after a restart of ours);
    /// false when the port is not valid or taken.
    pub fn restore_binding(&mut self, app: usize, port: u16) -> bool {
        if port == 0 || app >= self.apps.len() || self.apps.iter().any(|a| a.port == Some(port)) {
            return false;
        }
        self.apps[app].port = Some(port);
        true
    }

    fn send_now(&mut self, app: usize, dg: &AppDatagram) {
        let a = &mut self.apps[app];
        let Ok(data) = a.tx.check(dg.data) else {
            // Not a buffer of its pool: nothing to give back.
            self.stats.refused += 1;
            return;
        };
        let status = match (a.port, self.our) {
            (None, _) => Status::NotBound,
            _ if data.len() > MAX_DATA || dg.peer.is_unspecified() || dg.peer_port == 0 => {
                Status::BadDatagram
            }
            (_, None) => Status::NoBuffer,
            (Some(port), Some(our)) => match self.lent.pop() {
                None => Status::NoBuffer,
                Some(lent) => {
                    let seg_len = UDP_HEADER_LEN + data.len();
                    let seg_desc = PoolDescriptor {
                        pool: TX_POOL_ID,
                        index: lent.index,
                        offset: TX_HEADROOM,
                        len: seg_len as u32,
                    };
                    match self.tx.check(seg_desc) {
                        Ok(mut b) => {
                            // Safety: ip lent us this buffer (TX_LEND) and gets it back only
                            // with the UDP_SEND below: nobody else touches it meanwhile.
                            let seg = unsafe { b.as_mut_slice() };
                            build_segment(seg, our, port, dg.peer, dg.peer_port, |out| {
                                // The one copy: from the application's buffer into ip's.
                                data.copy_to(out);
                            });
                            let out = Outgoing {
                                segment: seg_desc,
                                dst: dg.peer,
                            };
                            self.to_ip.push_back(out.message());
                            self.stats.tx_datagrams += 1;
                            Status::Ok
                        }
                        Err(_) => {
                            self.lent.push(lent);
                            Status::BadDatagram
                        }
                    }
                }
            },
        };
        match status {
            Status::Ok => {}
            Status::NoBuffer => self.stats.tx_no_buffer += 1,
            _ => self.stats.tx_refused += 1,
        }
        let a = &mut self.apps[app];
        a.out
            .push_back(udpmsg::control(tag::SEND_DONE, dg.data, 0, status as u64));
    }
}

/// Writes a UDP header for `seg.len()` bytes from `src:src_port` to `dst:dst_port`, the data
/// (by `fill`, into `seg[8..]`), and the checksum.
pub fn build_segment(
    seg: &mut [u8],
    src: Ipv4Addr,
    src_port: u16,
    dst: Ipv4Addr,
    dst_port: u16,
    fill: impl FnOnce(&mut [u8]),
) {
    let len = seg.len() as u16;
    seg[0..2].copy_from_slice(&src_port.to_be_bytes());
    seg[2..4].copy_from_slice(&dst_port.to_be_bytes());
    seg[4..6].copy_from_slice(&len.to_be_bytes());
    seg[6..8].copy_from_slice(&[0, 0]);
    fill(&mut seg[UDP_HEADER_LEN..]);
    let sum = checksum::udp_checksum(src, dst, seg).unwrap_or(0xFFFF);
    seg[6..8].copy_from_slice(&sum.to_be_bytes());
}

fn flush(q: &mut VecDeque<Message>, mut send: impl FnMut(&[Message]) -> usize) {
    loop {
        let (first, _) = q.as_slices();
        if first.is_empty() {
            return;
        }
        let offered = first.len();
        let taken = send(first).min(offered);
        q.drain(..taken);
        if taken < offered {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
