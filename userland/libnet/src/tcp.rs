//! TCP: [`TcpListener`] (`bind`, `accept`) and [`TcpStream`] (`read`, `write`, `shutdown`),
//! blocking, over the application's channel pair to the tcp server (`tcp-APP`, `APP-tcp`) and
//! its pools (`APP-tcprx`, owned by tcp, where received bytes arrive; `APP-tcptx`, owned by the
//! application, from which bytes are written). The vocabulary is `tcpmsg`'s.
//!
//! This slice: one listening port per process and one connection at a time — `accept` borrows
//! the listener until the stream is dropped (which closes it gracefully). `write` returns once
//! the bytes are handed to tcp (each buffer comes back with `WRITE_DONE`).

use alloc::collections::VecDeque;
use alloc::string::String;
use core::net::{Ipv4Addr, SocketAddrV4};

use libchan::{
    BufferPool, Consumer, Message, PoolDescriptor, PoolView, Producer, SendError, Waiter,
};
use tcpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID, Status, tag};

use crate::{Error, ErrorKind, Result};

/// Timeouts `bind_with` sits through before giving up.
const BIND_WAITS: u32 = 100;

/// A listening TCP port over channels with waiter `W`.
pub struct Listener<'a, W: Waiter> {
    to_tcp: Producer<'a, W>,
    from_tcp: Consumer<'a, W>,
    rx: PoolView<'a>,
    tx: BufferPool<'a>,
    port: u16,
    kept: VecDeque<Message>,
    refused: u64,
}

/// The listener of a program.
pub type TcpListener = Listener<'static, libsys::chan::SysWaiter>;
/// The stream of a program.
pub type TcpStream<'l> = Stream<'l, 'static, libsys::chan::SysWaiter>;

/// An accepted connection; borrows its listener.
pub struct Stream<'l, 'a, W: Waiter> {
    l: &'l mut Listener<'a, W>,
    id: u64,
    peer: SocketAddrV4,
    /// The DATA being read and how much of it was.
    current: Option<(PoolDescriptor, usize)>,
    eof: bool,
    closed: bool,
    shut: bool,
}

impl<'a, W: Waiter> Listener<'a, W> {
    /// Listens on `port` over the given channels and pools: sends `LISTEN` and waits (up to
    /// `timeout_ns` per wait) for the answer.
    pub fn bind_with(
        to_tcp: Producer<'a, W>,
        from_tcp: Consumer<'a, W>,
        rx: PoolView<'a>,
        tx: BufferPool<'a>,
        port: u16,
        timeout_ns: Option<u64>,
    ) -> Result<Self> {
        if port == 0 || rx.id() != APP_RX_POOL_ID || tx.view().id() != APP_TX_POOL_ID {
            return Err(ErrorKind::InvalidInput.into());
        }
        let mut l = Self {
            to_tcp,
            from_tcp,
            rx,
            tx,
            port: 0,
            kept: VecDeque::new(),
            refused: 0,
        };
        l.send(&tcpmsg::control(
            tag::LISTEN,
            Default::default(),
            u64::from(port),
            0,
        ))?;
        // The request waits in the channel until tcp reads it: keep waiting (a retry would map
        // the regions a second time, which the kernel refuses), up to BIND_WAITS timeouts.
        let mut waits = 0;
        loop {
            let Some(m) = l.recv(timeout_ns)? else {
                waits += 1;
                if waits >= BIND_WAITS {
                    return Err(ErrorKind::TimedOut.into());
                }
                l.to_tcp.notify_peer();
                continue;
            };
            if m.tag == tag::LISTEN_REPLY && m.payload[2] == u64::from(port) {
                return match Status::from_code(m.payload[3]) {
                    Status::Ok => {
                        l.port = port;
                        Ok(l)
                    }
                    Status::AddrInUse => Err(ErrorKind::AddrInUse.into()),
                    _ => Err(ErrorKind::InvalidInput.into()),
                };
            }
            l.kept.push_back(m);
        }
    }

    /// The port listened on.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Messages from tcp that made no sense.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Waits for the next connection.
    pub fn accept(&mut self) -> Result<(Stream<'_, 'a, W>, SocketAddrV4)> {
        loop {
            let m = self.next(None)?.ok_or(ErrorKind::TimedOut)?;
            if m.tag == tag::ACCEPTED {
                let w = m.payload[3];
                let peer = SocketAddrV4::new(Ipv4Addr::from(w as u32), (w >> 32) as u16);
                let s = Stream {
                    l: self,
                    id: m.payload[2],
                    peer,
                    current: None,
                    eof: false,
                    closed: false,
                    shut: false,
                };
                return Ok((s, peer));
            }
            // Left over from an earlier connection.
            self.stale(&m);
        }
    }

    fn stale(&mut self, m: &Message) {
        if m.tag == tag::DATA {
            let _ = self.send(&tcpmsg::control(tag::DATA_RETURN, m.descriptor(), 0, 0));
        }
    }

    fn send(&mut self, m: &Message) -> Result<()> {
        loop {
            match self.to_tcp.send(m) {
                Ok(_) => {
                    self.to_tcp.notify_peer();
                    return Ok(());
                }
                Err(SendError::Full) => {
                    self.to_tcp.notify_peer();
                    match self.poll()? {
                        Some(k) => self.kept.push_back(k),
                        None => {
                            let _ = self.from_tcp.wait_ready(Some(1_000_000));
                        }
                    }
                }
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
    }

    /// From the channel; a WRITE_DONE frees its buffer at once.
    fn poll(&mut self) -> Result<Option<Message>> {
        loop {
            let m = self
                .from_tcp
                .try_recv()
                .map_err(|_| Error::from(ErrorKind::BrokenPipe))?;
            match m {
                Some(m) if m.tag == tag::WRITE_DONE => {
                    if self.tx.free(m.descriptor()).is_err() {
                        self.refused += 1;
                    }
                }
                other => return Ok(other),
            }
        }
    }

    fn recv(&mut self, timeout_ns: Option<u64>) -> Result<Option<Message>> {
        loop {
            if let Some(m) = self.poll()? {
                return Ok(Some(m));
            }
            match self.from_tcp.wait_ready(timeout_ns) {
                Ok(true) => continue,
                Ok(false) => return self.poll(),
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
        }
    }

    /// The next message: kept ones first.
    fn next(&mut self, timeout_ns: Option<u64>) -> Result<Option<Message>> {
        if let Some(m) = self.kept.pop_front() {
            return Ok(Some(m));
        }
        self.recv(timeout_ns)
    }
}

impl<W: Waiter> Stream<'_, '_, W> {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.peer
    }

    /// Reads into `buf`; `Ok(0)` at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some((d, at)) = self.current {
                let n = match self.l.rx.check(d) {
                    Ok(b) => {
                        // Safety: tcp handed this buffer over with DATA and does not touch it
                        // until DATA_RETURN.
                        let bytes = unsafe { b.as_slice() };
                        let rest = bytes.get(at..).unwrap_or(&[]);
                        let n = rest.len().min(buf.len());
                        buf[..n].copy_from_slice(&rest[..n]);
                        n
                    }
                    Err(_) => 0,
                };
                if at + n >= d.len as usize {
                    self.current = None;
                    self.l.send(&tcpmsg::control(tag::DATA_RETURN, d, 0, 0))?;
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
            let m = self.l.next(None)?.ok_or(ErrorKind::TimedOut)?;
            if m.payload[2] != self.id {
                self.l.stale(&m);
                continue;
            }
            match m.tag {
                tag::DATA => self.current = Some((m.descriptor(), 0)),
                tag::EOF => self.eof = true,
                tag::CLOSED => {
                    self.closed = true;
                    if !self.eof {
                        return Err(ErrorKind::ConnectionReset.into());
                    }
                }
                _ => self.l.refused += 1,
            }
        }
    }

    /// Writes all of `buf` (in pieces of a pool buffer); returns its length once tcp has it.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize> {
        if self.closed || self.shut {
            return Err(ErrorKind::BrokenPipe.into());
        }
        for chunk in buf.chunks(tcpmsg::BUFFER_SIZE as usize) {
            let mut d = loop {
                if let Some(d) = self.l.tx.alloc() {
                    break d;
                }
                // Every buffer is with tcp: wait for a WRITE_DONE (poll frees them), keeping
                // what else arrives.
                match self.l.recv(Some(1_000_000_000))? {
                    Some(m) if m.tag == tag::CLOSED && m.payload[2] == self.id => {
                        self.closed = true;
                        return Err(ErrorKind::ConnectionReset.into());
                    }
                    Some(m) => self.l.kept.push_back(m),
                    None => {}
                }
            };
            match self.l.tx.buffer(d) {
                Ok(b) => d.len = b.copy_from(chunk) as u32,
                Err(_) => return Err(ErrorKind::BrokenPipe.into()),
            }
            if let Err(e) = self.l.send(&tcpmsg::control(tag::WRITE, d, self.id, 0)) {
                let _ = self.l.tx.free(d);
                return Err(e);
            }
        }
        Ok(buf.len())
    }

    /// No more writes: the peer sees the end of the stream after the bytes written.
    pub fn shutdown(&mut self) -> Result<()> {
        if !self.shut && !self.closed {
            self.shut = true;
            self.l.send(&tcpmsg::control(
                tag::SHUTDOWN,
                Default::default(),
                self.id,
                0,
            ))?;
        }
        Ok(())
    }
}

impl<W: Waiter> Drop for Stream<'_, '_, W> {
    fn drop(&mut self) {
        if let Some((d, _)) = self.current.take() {
            let _ = self.l.send(&tcpmsg::control(tag::DATA_RETURN, d, 0, 0));
        }
        if !self.closed {
            let _ = self
                .l
                .send(&tcpmsg::control(tag::CLOSE, Default::default(), self.id, 0));
        }
    }
}

impl TcpListener {
    /// Listens on `port` for this process over its channels and pools (`tcpmsg` names them
    /// after the process's name in the manifest), waking the tcp server by its pid.
    pub fn bind(port: u16) -> Result<Self> {
        let info = libsys::self_info().map_err(|_| ErrorKind::PermissionDenied)?;
        let app = String::from(info.name());
        let tcp = libsys::lookup(tcpmsg::SERVICE).map_err(|_| ErrorKind::TimedOut)?;
        let waiter = || libsys::chan::SysWaiter::new(tcp);
        let denied = |_| Error::from(ErrorKind::PermissionDenied);
        let to_tcp = libsys::chan::producer(&tcpmsg::app_to_tcp(&app), waiter()).map_err(denied)?;
        let from_tcp =
            libsys::chan::consumer(&tcpmsg::tcp_to_app(&app), waiter()).map_err(denied)?;
        let rx = crate::pool(&tcpmsg::app_rx_pool(&app), APP_RX_POOL_ID)?;
        let tx = BufferPool::new(crate::pool(&tcpmsg::app_tx_pool(&app), APP_TX_POOL_ID)?)
            .map_err(|_| ErrorKind::InvalidInput)?;
        Self::bind_with(to_tcp, from_tcp, rx, tx, port, Some(100_000_000))
    }
}
