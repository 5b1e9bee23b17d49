//! `iperf3`: the guest program around the `iperf3` library. `-c ADDR [-p PORT] [-t S] [-R]
//! [-P N] [-l LEN] [-n BYTES]` runs one test against an iperf3 server; `-s [-p PORT] [-1]`
//! serves tests (one with `-1`). The library's [`iperf3::Net`] is implemented here over
//! `libnet`'s `TcpStream`/`TcpListener` and the kernel's clock; its lines go to the console.
//! Exit codes: 0 the test (or one-off server) succeeded, 1 it failed, 2 bad arguments.
#![no_std]
#![no_main]

use core::net::SocketAddrV4;

use iperf3::{Command, Conn, Net, NetError};
use libnet::{ErrorKind, TcpListener, TcpStream};

// Room for received bytes copied out of the rx pool (libnet::tcp::COPY_LIMIT) and the blocks.
libsys::entry!(main, heap = 4 << 20);

/// How long `listen` retries while the tcp server is still starting.
const BIND_RETRY_NS: u64 = 10_000_000_000;

fn main(args: &str) -> i32 {
    let command = match iperf3::parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            libsys::println!("iperf3: {e}");
            return 2;
        }
    };
    let mut net = LibNet;
    let mut out = |line: &str| libsys::println!("{line}");
    let result = match command {
        Command::Client(o) => iperf3::run_client(&mut net, &o, &mut out).map(|_| ()),
        Command::Server(o) => iperf3::run_server(&mut net, &o, &mut out),
    };
    // The library has printed the reason and the summary line already.
    match result {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn net_error(e: libnet::Error) -> NetError {
    match e.kind() {
        ErrorKind::TimedOut => NetError::TimedOut,
        ErrorKind::ConnectionRefused | ErrorKind::NetworkUnreachable => NetError::Refused,
        ErrorKind::ConnectionReset => NetError::Reset,
        ErrorKind::BrokenPipe | ErrorKind::NotConnected => NetError::BrokenPipe,
        ErrorKind::AddrInUse => NetError::AddrInUse,
        ErrorKind::InvalidInput => NetError::InvalidInput,
        ErrorKind::PermissionDenied => NetError::PermissionDenied,
        _ => NetError::Other,
    }
}

/// The network of this process: libnet's sockets, the kernel's clock.
struct LibNet;

/// A libnet stream that remembers its read timeout, so switching between waiting and polling
/// costs nothing when it does not change.
struct LibConn {
    stream: TcpStream,
    timeout: Option<u64>,
}

impl LibConn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            timeout: None,
        }
    }

    fn set_timeout(&mut self, t: Option<u64>) {
        if self.timeout != t {
            self.stream.set_read_timeout(t);
            self.timeout = t;
        }
    }
}

impl Conn for LibConn {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.set_timeout(None);
        self.stream.read(buf).map_err(net_error)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        // libnet's `write` writes everything before it returns.
        self.stream.write(buf).map(|_| ()).map_err(net_error)
    }

    fn read_timeout(&mut self, buf: &mut [u8], timeout_ns: u64) -> Result<Option<usize>, NetError> {
        // A timeout of 0 makes libnet look at what has arrived and return at once.
        self.set_timeout(Some(timeout_ns));
        match self.stream.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(net_error(e)),
        }
    }

    fn shutdown(&mut self) -> Result<(), NetError> {
        self.stream.shutdown().map_err(net_error)
    }
}

impl Net for LibNet {
    type Conn = LibConn;
    type Listener = TcpListener;

    fn connect(&mut self, addr: SocketAddrV4) -> Result<LibConn, NetError> {
        TcpStream::connect(addr)
            .map(LibConn::new)
            .map_err(net_error)
    }

    fn listen(&mut self, port: u16) -> Result<TcpListener, NetError> {
        let deadline = libsys::time_ns() + BIND_RETRY_NS;
        loop {
            match TcpListener::bind(port) {
                Ok(l) => return Ok(l),
                // tcp may not be up yet.
                Err(e) if e.kind() == ErrorKind::TimedOut && libsys::time_ns() < deadline => {
                    libsys::sleep_ns(100_000_000);
                }
                Err(e) => return Err(net_error(e)),
            }
        }
    }

    fn accept(&mut self, l: &mut TcpListener) -> Result<(LibConn, SocketAddrV4), NetError> {
        l.accept()
            .map(|(s, peer)| (LibConn::new(s), peer))
            .map_err(net_error)
    }

    fn now_ns(&self) -> u64 {
        libsys::time_ns()
    }
}
