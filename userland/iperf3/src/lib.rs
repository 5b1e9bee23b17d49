//! `iperf3`: a client and server that speak the wire protocol of stock iperf3 (as of 3.12), so
//! Axolotl can be measured against an unmodified `iperf3` on the host (DESIGN.md §8, §9). TCP
//! only: UDP and SCTP tests are refused with a clear error.
//!
//! The protocol ([`proto`]): the client opens a control connection and sends a 37-byte cookie;
//! the server drives the test with one signed state byte per transition (PARAM_EXCHANGE,
//! CREATE_STREAMS, TEST_START, TEST_RUNNING, then EXCHANGE_RESULTS and DISPLAY_RESULTS after the
//! client's TEST_END; the client closes with IPERF_DONE); parameters and results travel as JSON
//! ([`json`]) framed by a 4-byte big-endian length. Each data stream is a TCP connection of its
//! own that starts with the same cookie; then the sender writes blocks until the client ends the
//! test by time or byte count.
//!
//! The engine ([`run_client`], [`run_server`]) is single-threaded (the guest has no threads) and
//! generic over [`Net`], implemented over `libnet` by the guest program (`main.rs`) and over
//! `std::net` by the host tests, which run it against the real `/usr/bin/iperf3`. Receiving on
//! several streams while watching the control connection uses short read timeouts round-robin;
//! sending writes one block per stream per round and polls the control connection between
//! rounds. Output goes through a line sink: iperf3-style interval and summary lines, then always
//! one machine-readable line last (DESIGN.md §9):
//! `iperf3: role=client|server dir=send|recv bytes=N seconds=S.SS gbps=G.GGGG`.
//!
//! Everything a peer sends is untrusted: messages are length-checked before they are read, the
//! JSON parser has depth and size limits, and no error panics.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod args;
mod client;
pub mod json;
pub mod proto;
pub mod report;
mod server;
mod transfer;

#[cfg(test)]
mod tests;

use alloc::string::String;
use core::fmt;
use core::net::SocketAddrV4;

pub use args::{ArgError, Command, parse_args};
pub use client::run_client;
pub use server::run_server;

/// The default port of iperf3.
pub const DEFAULT_PORT: u16 = 5201;
/// The default block length of a TCP test (iperf3's `DEFAULT_TCP_BLKSIZE`).
pub const DEFAULT_BLOCK_LEN: u32 = 128 * 1024;
/// The longest block length accepted (iperf3's `MAX_BLOCKSIZE`).
pub const MAX_BLOCK_LEN: u32 = 1024 * 1024;
/// Most parallel streams in one test.
pub const MAX_PARALLEL: u32 = 8;
/// The default test duration in seconds.
pub const DEFAULT_TIME_S: u32 = 10;
/// The longest test duration in seconds (iperf3's `MAX_TIME`).
pub const MAX_TIME_S: u32 = 86_400;
/// The largest byte count a test may ask for (2^60: it must fit the JSON integer of the
/// parameters).
pub const MAX_BYTES: u64 = 1 << 60;
/// The default time between interval reports: a second, as iperf3's.
pub const DEFAULT_INTERVAL_NS: u64 = 1_000_000_000;
/// The shortest interval `-i` accepts (iperf3's `MIN_INTERVAL`, 0.1 s); 0 turns them off.
pub const MIN_INTERVAL_NS: u64 = 100_000_000;
/// The longest interval `-i` accepts (iperf3's `MAX_INTERVAL`, 60 s).
pub const MAX_INTERVAL_NS: u64 = 60_000_000_000;

/// A connected TCP stream.
pub trait Conn {
    /// Reads what has arrived (waiting for at least one byte); `Ok(0)` at the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError>;
    /// Writes all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError>;
    /// Like [`Conn::read`], but `Ok(None)` when nothing arrived within `timeout_ns` (0: only
    /// what is there already).
    fn read_timeout(&mut self, buf: &mut [u8], timeout_ns: u64) -> Result<Option<usize>, NetError>;
    /// Closes the sending direction (the peer reads the end of the stream).
    fn shutdown(&mut self) -> Result<(), NetError>;
}

/// The network and the clock the engine runs on.
pub trait Net {
    /// A connected stream.
    type Conn: Conn;
    /// A listening socket.
    type Listener;
    /// Opens a connection to `addr`.
    fn connect(&mut self, addr: SocketAddrV4) -> Result<Self::Conn, NetError>;
    /// Listens on `port`.
    fn listen(&mut self, port: u16) -> Result<Self::Listener, NetError>;
    /// Waits for the next connection on `listener`.
    fn accept(
        &mut self,
        listener: &mut Self::Listener,
    ) -> Result<(Self::Conn, SocketAddrV4), NetError>;
    /// A monotonic clock in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// Why a network call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// Nothing happened in time (a blocking call's own limit, or the stack did not answer).
    TimedOut,
    /// The peer refused the connection.
    Refused,
    /// The peer reset the connection.
    Reset,
    /// The stream is closed for writing, or the path to the stack broke.
    BrokenPipe,
    /// The port is in use.
    AddrInUse,
    /// A bad argument (port 0, a bad address).
    InvalidInput,
    /// The process may not use the network.
    PermissionDenied,
    /// Anything else.
    Other,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetError::TimedOut => "timed out",
            NetError::Refused => "connection refused",
            NetError::Reset => "connection reset by peer",
            NetError::BrokenPipe => "broken pipe",
            NetError::AddrInUse => "address in use",
            NetError::InvalidInput => "invalid input",
            NetError::PermissionDenied => "permission denied",
            NetError::Other => "network error",
        })
    }
}

/// Why a test failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A network call failed while doing `during`.
    Net {
        /// What was being done.
        during: &'static str,
        /// The failure.
        error: NetError,
    },
    /// The peer closed the control connection while we were doing `during`.
    ControlClosed {
        /// What was being done.
        during: &'static str,
    },
    /// The peer sent nothing for too long while we were doing `during`.
    Timeout {
        /// What was being done.
        during: &'static str,
    },
    /// The peer broke the protocol (an unexpected state, a malformed message or cookie).
    Protocol(String),
    /// A control message was not acceptable JSON.
    Json {
        /// Which message.
        message: &'static str,
        /// What is wrong with it.
        error: json::JsonError,
    },
    /// A control message announced more bytes than [`proto::MAX_MESSAGE_LEN`].
    MessageTooLong(u32),
    /// The client asked for a test this server does not run (UDP, too many streams, ...).
    Params(proto::ParamError),
    /// The server is busy with another test (ACCESS_DENIED).
    AccessDenied,
    /// The server refused the test (SERVER_ERROR) with iperf3's error number and errno.
    ServerError {
        /// iperf3's `i_errno`.
        code: i32,
        /// The server's `errno`.
        errno: i32,
    },
    /// The server ended the test (SERVER_TERMINATE).
    ServerTerminated,
    /// The client ended the test (CLIENT_TERMINATE).
    ClientTerminated,
    /// Bad options given to the library (the argument parser refuses these first).
    BadOptions(&'static str),
    /// The data buffer could not be allocated.
    OutOfMemory,
}

impl Error {
    fn net(during: &'static str) -> impl FnOnce(NetError) -> Error {
        move |error| Error::Net { during, error }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Net { during, error } => write!(f, "{during}: {error}"),
            Error::ControlClosed { during } => {
                write!(f, "the control connection closed unexpectedly ({during})")
            }
            Error::Timeout { during } => write!(f, "the peer went silent ({during})"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Json { message, error } => write!(f, "bad {message}: {error}"),
            Error::MessageTooLong(n) => write!(
                f,
                "control message of {n} bytes refused (limit {})",
                proto::MAX_MESSAGE_LEN
            ),
            Error::Params(e) => write!(f, "{e}"),
            Error::AccessDenied => {
                f.write_str("the server is busy running a test. try again later")
            }
            Error::ServerError { code, errno } => {
                write!(
                    f,
                    "the server refused the test: {}",
                    proto::describe_ierrno(*code)
                )?;
                if *errno != 0 {
                    write!(f, " (errno {errno})")?;
                }
                Ok(())
            }
            Error::ServerTerminated => f.write_str("the server has terminated"),
            Error::ClientTerminated => f.write_str("the client has terminated"),
            Error::BadOptions(what) => f.write_str(what),
            Error::OutOfMemory => f.write_str("not enough memory for the data buffer"),
        }
    }
}

/// Which end of the test this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that connects (`-c`).
    Client,
    /// The side that listens (`-s`).
    Server,
}

/// Which way the data flows, from this side's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This side writes the data.
    Send,
    /// This side reads it.
    Recv,
}

/// A client's test (`iperf3 -c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The server's address and port.
    pub server: SocketAddrV4,
    /// Seconds to run; 0 when the test ends by [`ClientOptions::bytes`].
    pub time_s: u32,
    /// Bytes to move; 0 when the test ends by time.
    pub bytes: u64,
    /// The server sends, the client receives (`-R`).
    pub reverse: bool,
    /// Parallel data streams, 1..=[`MAX_PARALLEL`].
    pub parallel: u32,
    /// Bytes per write, 1..=[`MAX_BLOCK_LEN`].
    pub block_len: u32,
    /// Nanoseconds between interval reports (`-i`), [`MIN_INTERVAL_NS`]..=[`MAX_INTERVAL_NS`];
    /// 0: none, only the summary.
    pub interval_ns: u64,
}

impl ClientOptions {
    /// A test of [`DEFAULT_TIME_S`] seconds towards `server` with the other defaults.
    pub fn new(server: SocketAddrV4) -> Self {
        Self {
            server,
            time_s: DEFAULT_TIME_S,
            bytes: 0,
            reverse: false,
            parallel: 1,
            block_len: DEFAULT_BLOCK_LEN,
            interval_ns: DEFAULT_INTERVAL_NS,
        }
    }

    /// Checks the ranges the engine relies on.
    pub fn validate(&self) -> Result<(), Error> {
        if self.time_s == 0 && self.bytes == 0 {
            return Err(Error::BadOptions(
                "the test needs a duration or a byte count",
            ));
        }
        if self.time_s != 0 && self.bytes != 0 {
            return Err(Error::BadOptions(
                "only one test end condition (-t, -n) may be specified",
            ));
        }
        if self.bytes > MAX_BYTES {
            return Err(Error::BadOptions("byte count too large (at most 2^60)"));
        }
        if self.time_s > MAX_TIME_S {
            return Err(Error::BadOptions(
                "test duration too long (at most 86400 s)",
            ));
        }
        if self.parallel == 0 || self.parallel > MAX_PARALLEL {
            return Err(Error::BadOptions("parallel streams must be 1..=8"));
        }
        if self.block_len == 0 || self.block_len > MAX_BLOCK_LEN {
            return Err(Error::BadOptions("block length must be 1..=1048576 bytes"));
        }
        if self.interval_ns != 0 && !(MIN_INTERVAL_NS..=MAX_INTERVAL_NS).contains(&self.interval_ns)
        {
            return Err(Error::BadOptions(
                "the report interval must be 0 or 0.1..=60 seconds",
            ));
        }
        Ok(())
    }
}

/// A server (`iperf3 -s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// The port to listen on.
    pub port: u16,
    /// Run one test, then return (`-1`).
    pub one_off: bool,
}

/// What one test moved, from this side's point of view: the values of the final
/// `iperf3: role=.. dir=.. bytes=.. seconds=.. gbps=..` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// This side's role.
    pub role: Role,
    /// This side's direction.
    pub dir: Direction,
    /// Bytes this side wrote (send) or read (recv) on all streams.
    pub bytes: u64,
    /// Seconds from TEST_RUNNING to the end of the test, as this side measured them.
    pub seconds: f64,
}

impl Summary {
    /// The throughput in gigabits (10^9 bits) per second; 0 for a test of no duration.
    pub fn gbps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds / 1e9
        } else {
            0.0
        }
    }

    /// The machine-readable line (DESIGN.md §9).
    pub fn line(&self) -> String {
        alloc::format!(
            "iperf3: role={} dir={} bytes={} seconds={:.2} gbps={:.4}",
            match self.role {
                Role::Client => "client",
                Role::Server => "server",
            },
            match self.dir {
                Direction::Send => "send",
                Direction::Recv => "recv",
            },
            self.bytes,
            self.seconds,
            self.gbps()
        )
    }
}

/// The sink lines of output go to (without their newline).
pub type Output<'a> = &'a mut dyn FnMut(&str);
