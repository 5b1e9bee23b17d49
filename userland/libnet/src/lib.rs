//! `libnet`: the socket library of Axolotl's applications (DESIGN.md §6). [`TcpListener`] and
//! [`TcpStream`] (module `tcp`) speak `tcpmsg` to the tcp server the same way. [`UdpSocket`] mirrors
//! `std::net::UdpSocket` (`bind`, `recv_from`, `send_to`) over the application's own channel
//! pair to the udp server (`udp-APP`, `APP-udp`) and its two buffer pools (`APP-urx`, owned by
//! udp, where received datagrams arrive; `APP-utx`, owned by the application, from which
//! datagrams are sent). The vocabulary is `udpmsg`'s; APP is the process's name in the manifest.
//!
//! This slice: one socket per process (the channel pair is the process's), blocking calls only.
//! `send_to` returns once the datagram is handed to udp (as `std` does once it is queued); the
//! udp server's verdict on it (`SEND_DONE`) frees the buffer later and, if it is a refusal, is
//! counted in [`UdpSocket::send_errors`].
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

use libchan::{BufferPool, Consumer, Message, PoolView, Producer, SendError, Waiter};
use udpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID, AppDatagram, MAX_DATA, Status, tag};

/// What went wrong, in the spirit of `std::io::ErrorKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The port is bound already (by another application).
    AddrInUse,
    /// A bad argument: port 0, a second bind, a datagram longer than 1472 bytes.
    InvalidInput,
    /// The manifest does not give this process the channels and pools of a UDP application.
    PermissionDenied,
    /// The udp server did not answer in time.
    TimedOut,
    /// The socket is not bound.
    NotConnected,
    /// The channel to udp broke (the server restarted, or its memory is damaged), or (TCP) the
    /// connection is closed for writing.
    BrokenPipe,
    /// (TCP) the peer reset the connection, or it timed out.
    ConnectionReset,
    /// (TCP) the tcp server restarted: the connection (or the connect or call in progress) was
    /// lost with its last instance.
    ConnectionAborted,
    /// (TCP) the peer refused the connection, or did not answer.
    ConnectionRefused,
    /// (TCP) no route: the stack has no address yet.
    NetworkUnreachable,
    /// (TCP) the tcp server serves as many connections as it has memory for.
    OutOfMemory,
}

/// An error of a socket call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
}

impl Error {
    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.kind {
            ErrorKind::AddrInUse => "address in use",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::PermissionDenied => {
                "no channels to the udp or tcp server granted to this process"
            }
            ErrorKind::TimedOut => "timed out (no answer or no bytes in time)",
            ErrorKind::NotConnected => "not bound",
            ErrorKind::BrokenPipe => "broken pipe (channel to the server, or a closed stream)",
            ErrorKind::ConnectionReset => "connection reset",
            ErrorKind::ConnectionAborted => "connection aborted (the tcp server restarted)",
            ErrorKind::ConnectionRefused => "connection refused",
            ErrorKind::NetworkUnreachable => "network unreachable (no address yet)",
            ErrorKind::OutOfMemory => "the tcp server has no room for another connection",
        };
        f.write_str(s)
    }
}

/// A socket result.
pub type Result<T> = core::result::Result<T, Error>;

/// Most received datagrams kept while `send_to` waits for a buffer.
const MAX_KEPT: usize = 64;

/// A UDP socket over channels with waiter `W` (the kernel's `wait`/`notify` in a program:
/// [`UdpSocket`]; any waiter in the host tests).
pub struct Socket<'a, W: Waiter> {
    to_udp: Producer<'a, W>,
    from_udp: Consumer<'a, W>,
    rx: PoolView<'a>,
    tx: BufferPool<'a>,
    port: u16,
    kept: VecDeque<Message>,
    send_errors: u64,
    refused: u64,
    restarts: u64,
    /// Points the channels' waiter at the udp server's new instance; true once it did.
    find_peer: fn(&W) -> bool,
    /// udp restarted and its new instance is not known to the waiter yet.
    peer_stale: bool,
    /// The newest epoch either channel reported: both report the same restart, which counts
    /// once.
    epoch: u32,
}

/// The socket of a program (channels woken through the kernel).
pub type UdpSocket = Socket<'static, libsys::chan::SysWaiter>;

impl<'a, W: Waiter> Socket<'a, W> {
    /// Binds `port` over the given channels and pools: sends `BIND` and waits (up to
    /// `timeout_ns` per wait) for the answer.
    pub fn bind_with(
        to_udp: Producer<'a, W>,
        from_udp: Consumer<'a, W>,
        rx: PoolView<'a>,
        tx: BufferPool<'a>,
        port: u16,
        timeout_ns: Option<u64>,
    ) -> Result<Self> {
        if port == 0 || rx.id() != APP_RX_POOL_ID || tx.view().id() != APP_TX_POOL_ID {
            return Err(ErrorKind::InvalidInput.into());
        }
        let mut s = Self {
            to_udp,
            from_udp,
            rx,
            tx,
            port: 0,
            kept: VecDeque::new(),
            send_errors: 0,
            refused: 0,
            restarts: 0,
            find_peer: |_| true,
            peer_stale: false,
            epoch: 0,
        };
        s.epoch = s.to_udp.epoch().max(s.from_udp.epoch());
        let m = udpmsg::control(tag::BIND, Default::default(), u64::from(port), 0);
        s.send(&m, timeout_ns)?;
        loop {
            let m = s.next(timeout_ns)?.ok_or(ErrorKind::TimedOut)?;
            if m.tag == tag::BIND_REPLY && m.payload[2] == u64::from(port) {
                return match Status::from_code(m.payload[3]) {
                    Status::Ok => {
                        s.port = port;
                        Ok(s)
                    }
                    Status::AddrInUse => Err(ErrorKind::AddrInUse.into()),
                    _ => Err(ErrorKind::InvalidInput.into()),
                };
            }
            s.other(m);
        }
    }

    /// The local address (this slice knows only the port).
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Sends refused by the udp server so far.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Messages from udp that made no sense (bad descriptor, unknown tag).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// How to point the channels' waiter at a restarted udp server (true once done; retried
    /// before each send until then). Without it, our sends would not wake the new instance
    /// when it sleeps: it would see them only at its next timeout.
    pub fn set_find_peer(&mut self, find: fn(&W) -> bool) {
        self.find_peer = find;
    }

    fn send(&mut self, m: &Message, timeout_ns: Option<u64>) -> Result<()> {
        loop {
            if self.peer_stale {
                self.peer_stale = !(self.find_peer)(self.to_udp.waiter());
            }
            match self.to_udp.send(m) {
                Ok(_) => return Ok(()),
                Err(SendError::EpochChanged(c)) => {
                    // udp restarted: it holds none of our buffers any more.
                    self.saw(&c);
                }
                Err(SendError::Full) => {
                    // Let udp drain; our inbox may hold its answers, keep them.
                    if let Some(k) = self.poll()? {
                        self.other(k);
                    } else {
                        self.to_udp.notify_peer();
                        let _ = self.from_udp.wait_ready(timeout_ns.or(Some(1_000_000)));
                    }
                }
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
    }

    fn poll(&mut self) -> Result<Option<Message>> {
        match self.from_udp.try_recv() {
            Ok(m) => Ok(m),
            Err(libchan::RecvError::EpochChanged(c)) => {
                // udp restarted (our binding is in its state region): carry on.
                self.saw(&c);
                Ok(None)
            }
            Err(_) => Err(ErrorKind::BrokenPipe.into()),
        }
    }

    /// A channel reported `change`: the first report of a new epoch means udp restarted (the
    /// other channel's report of the same restart must not free the buffers lent since to the
    /// new instance).
    fn saw(&mut self, change: &libchan::EpochChange) {
        if change.new_epoch > self.epoch {
            self.epoch = change.new_epoch;
            self.udp_restarted();
        }
    }

    /// The udp server restarted: the buffers of ours it held (sends not answered yet) are ours
    /// again, and what it sent that we kept is of its old pool.
    fn udp_restarted(&mut self) {
        self.restarts += 1;
        self.peer_stale = true;
        for index in 0..self.tx.view().count() {
            if self.tx.is_lent(index)
                && let Some(d) = self.tx.view().whole(index)
            {
                let _ = self.tx.free(d);
            }
        }
        self.kept.clear();
    }

    /// Restarts of the udp server this socket lived through.
    pub fn udp_restarts(&self) -> u64 {
        self.restarts
    }

    /// The next message from udp, waiting up to `timeout_ns` (`None` when it passed).
    fn next(&mut self, timeout_ns: Option<u64>) -> Result<Option<Message>> {
        loop {
            if let Some(m) = self.poll()? {
                return Ok(Some(m));
            }
            match self.from_udp.wait_ready(timeout_ns) {
                Ok(true) => return self.poll(),
                Ok(false) => return Ok(None),
                // udp restarted while we waited: not an error (our binding is in its state
                // region), wait for the new instance.
                Err(libchan::RecvError::EpochChanged(c)) => self.saw(&c),
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
    }

    /// A message that is not the one we wait for: a finished send frees its buffer, a datagram
    /// is kept for `recv_from`.
    fn other(&mut self, m: Message) {
        match m.tag {
            tag::SEND_DONE => {
                if self.tx.free(m.descriptor()).is_err() {
                    self.refused += 1;
                } else if Status::from_code(m.payload[3]) != Status::Ok {
                    self.send_errors += 1;
                }
            }
            tag::DATAGRAM if self.kept.len() < MAX_KEPT => self.kept.push_back(m),
            tag::DATAGRAM => {
                // No room: hand it back unread (dropped, as a full socket buffer would).
                let back = udpmsg::control(tag::DATAGRAM_RETURN, m.descriptor(), 0, 0);
                let _ = self.to_udp.send(&back);
            }
            _ => self.refused += 1,
        }
    }

    /// Receives one datagram into `buf` (the excess is discarded, as `std` does) and returns
    /// its length and sender. Waits up to `timeout_ns` for each message (`None`: forever).
    pub fn recv_from_timeout(
        &mut self,
        buf: &mut [u8],
        timeout_ns: Option<u64>,
    ) -> Result<(usize, SocketAddrV4)> {
        if self.port == 0 {
            return Err(ErrorKind::NotConnected.into());
        }
        loop {
            let m = match self.kept.pop_front() {
                Some(m) => m,
                None => self.next(timeout_ns)?.ok_or(ErrorKind::TimedOut)?,
            };
            if m.tag != tag::DATAGRAM {
                self.other(m);
                continue;
            }
            let dg = AppDatagram::decode(&m);
            let n = match self.rx.check(dg.data) {
                Ok(b) => b.copy_to(buf),
                Err(_) => {
                    self.refused += 1;
                    continue;
                }
            };
            let back = udpmsg::control(tag::DATAGRAM_RETURN, dg.data, 0, 0);
            // The send wakes udp when it sleeps: no system call while it polls.
            self.send(&back, timeout_ns)?;
            return Ok((n, SocketAddrV4::new(dg.peer, dg.peer_port)));
        }
    }

    /// [`Socket::recv_from_timeout`] without a timeout.
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4)> {
        self.recv_from_timeout(buf, None)
    }

    /// Sends `buf` as one datagram to `to`; returns its length once udp has it.
    pub fn send_to(&mut self, buf: &[u8], to: SocketAddrV4) -> Result<usize> {
        if self.port == 0 {
            return Err(ErrorKind::NotConnected.into());
        }
        if buf.len() > MAX_DATA || to.port() == 0 || *to.ip() == Ipv4Addr::UNSPECIFIED {
            return Err(ErrorKind::InvalidInput.into());
        }
        let mut d = loop {
            if let Some(d) = self.tx.alloc() {
                break d;
            }
            // Every buffer is with udp: wait for a SEND_DONE.
            let m = self.next(Some(1_000_000_000))?.ok_or(ErrorKind::TimedOut)?;
            self.other(m);
        };
        match self.tx.buffer(d) {
            Ok(b) => d.len = b.copy_from(buf) as u32,
            Err(_) => return Err(ErrorKind::BrokenPipe.into()),
        }
        let dg = AppDatagram {
            data: d,
            peer: *to.ip(),
            peer_port: to.port(),
            local_port: self.port,
        };
        // The send wakes udp when it sleeps: no system call while it polls.
        if let Err(e) = self.send(&dg.message(tag::SEND), None) {
            let _ = self.tx.free(d);
            return Err(e);
        }
        Ok(buf.len())
    }
}

impl UdpSocket {
    /// Binds `port` for this process over its channels and pools (`udpmsg` names them after the
    /// process's name in the manifest), waking the udp server by its pid.
    pub fn bind(port: u16) -> Result<Self> {
        let info = libsys::self_info().map_err(|_| ErrorKind::PermissionDenied)?;
        let app = String::from(info.name());
        let udp = libsys::lookup(udpmsg::SERVICE).map_err(|_| ErrorKind::TimedOut)?;
        let waiter = || libsys::chan::SysWaiter::new(udp);
        let denied = |_| Error::from(ErrorKind::PermissionDenied);
        let to_udp = libsys::chan::producer(&udpmsg::app_to_udp(&app), waiter()).map_err(denied)?;
        let from_udp =
            libsys::chan::consumer(&udpmsg::udp_to_app(&app), waiter()).map_err(denied)?;
        let rx = pool(&udpmsg::app_rx_pool(&app), APP_RX_POOL_ID)?;
        let tx = BufferPool::new(pool(&udpmsg::app_tx_pool(&app), APP_TX_POOL_ID)?)
            .map_err(|_| ErrorKind::InvalidInput)?;
        let mut s = Self::bind_with(to_udp, from_udp, rx, tx, port, Some(2_000_000_000))?;
        s.set_find_peer(|w| match libsys::lookup(udpmsg::SERVICE) {
            Ok(pid) => {
                w.set_peer(pid);
                true
            }
            Err(_) => false,
        });
        Ok(s)
    }
}

fn pool(name: &str, id: u16) -> Result<PoolView<'static>> {
    let info = libsys::map(name).map_err(|_| ErrorKind::PermissionDenied)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process;
    // udp maps them too, and we touch only the buffers the protocol gives us.
    unsafe {
        PoolView::new(
            id,
            info.addr as *mut u8,
            info.len as usize,
            udpmsg::BUFFER_SIZE,
        )
    }
    .map_err(|_| ErrorKind::InvalidInput.into())
}

mod tcp;
pub use tcp::{Endpoint, Listener, Stream, TcpListener, TcpStream};

#[cfg(test)]
mod tests;
