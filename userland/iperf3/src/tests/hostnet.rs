//! [`Net`] over `std::net` on 127.0.0.1, for the host tests. Every blocking call is bounded
//! (reads and writes by socket timeouts, `accept` by polling), so a broken peer fails a test
//! instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::{Conn, Net, NetError};

/// The longest any single blocking call may take.
const CALL_LIMIT: Duration = Duration::from_secs(20);

fn net_error(e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::TimedOut,
        io::ErrorKind::ConnectionRefused => NetError::Refused,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => NetError::Reset,
        io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => NetError::BrokenPipe,
        io::ErrorKind::AddrInUse => NetError::AddrInUse,
        io::ErrorKind::InvalidInput => NetError::InvalidInput,
        io::ErrorKind::PermissionDenied => NetError::PermissionDenied,
        _ => NetError::Other,
    }
}

/// Loopback networking with a monotonic clock.
pub struct StdNet {
    epoch: Instant,
}

impl StdNet {
    /// A fresh network.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }
}

/// How a stream's reads wait at the moment (kept to avoid a system call per read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads and writes wait (reads at most [`CALL_LIMIT`]).
    Blocking,
    /// Reads return at once.
    NonBlocking,
    /// Reads wait at most this long.
    Timeout(Duration),
}

/// A connected stream.
pub struct StdConn {
    s: TcpStream,
    mode: Mode,
}

impl StdConn {
    fn new(s: TcpStream) -> io::Result<Self> {
        s.set_nonblocking(false)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(CALL_LIMIT))?;
        s.set_write_timeout(Some(CALL_LIMIT))?;
        Ok(Self {
            s,
            mode: Mode::Blocking,
        })
    }

    fn set_mode(&mut self, m: Mode) -> Result<(), NetError> {
        if self.mode == m {
            return Ok(());
        }
        let r = match m {
            Mode::NonBlocking => self.s.set_nonblocking(true),
            Mode::Blocking => self
                .s
                .set_nonblocking(false)
                .and_then(|()| self.s.set_read_timeout(Some(CALL_LIMIT))),
            Mode::Timeout(d) => self
                .s
                .set_nonblocking(false)
                .and_then(|()| self.s.set_read_timeout(Some(d))),
        };
        r.map_err(net_error)?;
        self.mode = m;
        Ok(())
    }

    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

impl Conn for StdConn {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.set_mode(Mode::Blocking)?;
        self.read_raw(buf).map_err(net_error)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        if self.mode == Mode::NonBlocking {
            self.set_mode(Mode::Blocking)?;
        }
        self.s.write_all(buf).map_err(net_error)
    }

    fn read_timeout(&mut self, buf: &mut [u8], timeout_ns: u64) -> Result<Option<usize>, NetError> {
        let mode = if timeout_ns == 0 {
            Mode::NonBlocking
        } else {
            Mode::Timeout(Duration::from_nanos(timeout_ns))
        };
        self.set_mode(mode)?;
        match self.read_raw(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(net_error(e)),
        }
    }

    fn shutdown(&mut self) -> Result<(), NetError> {
        self.s.shutdown(Shutdown::Write).map_err(net_error)
    }
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, a.port()),
    }
}

impl Net for StdNet {
    type Conn = StdConn;
    type Listener = TcpListener;

    fn connect(&mut self, addr: SocketAddrV4) -> Result<StdConn, NetError> {
        let s = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))
            .map_err(net_error)?;
        StdConn::new(s).map_err(net_error)
    }

    fn listen(&mut self, port: u16) -> Result<TcpListener, NetError> {
        let l =
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).map_err(net_error)?;
        l.set_nonblocking(true).map_err(net_error)?;
        Ok(l)
    }

    fn accept(&mut self, l: &mut TcpListener) -> Result<(StdConn, SocketAddrV4), NetError> {
        let deadline = Instant::now() + CALL_LIMIT;
        loop {
            match l.accept() {
                Ok((s, peer)) => return Ok((StdConn::new(s).map_err(net_error)?, v4(peer))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(net_error(e)),
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}
