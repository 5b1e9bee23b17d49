//! `echo-server tcp|udp PORT`: the echo service (RFC 862) over libnet. TCP: accepts connections
//! one after another and sends every byte back until the peer's end of stream, then closes;
//! logs each connection with its byte count. UDP: sends every datagram back to its sender.
//! Runs until killed. Exit codes: 1 the bind failed (retried for 10 s while the server starts),
//! 2 bad arguments.
#![no_std]
#![no_main]

use libnet::{ErrorKind, TcpListener, UdpSocket};
use libsys::log;

libsys::entry!(main);

const USAGE: &str = "usage: echo-server tcp|udp PORT";

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    let (proto, port) = (words.next(), words.next().map(str::parse::<u16>));
    let port = match (port, words.next()) {
        (Some(Ok(p)), None) if p != 0 => p,
        _ => {
            libsys::println!("echo-server: bad arguments '{args}'; {USAGE}");
            return 2;
        }
    };
    match proto {
        Some("tcp") => tcp(port),
        Some("udp") => udp(port),
        _ => {
            libsys::println!("echo-server: bad protocol; {USAGE}");
            2
        }
    }
}

/// Calls `bind` until it works, for up to 10 s while the server may still be starting.
fn bind_retrying<T>(what: &str, mut bind: impl FnMut() -> libnet::Result<T>) -> Option<T> {
    let deadline = libsys::time_ns() + 10_000_000_000;
    loop {
        match bind() {
            Ok(s) => return Some(s),
            Err(e) if e.kind() == ErrorKind::TimedOut && libsys::time_ns() < deadline => {
                libsys::sleep_ns(100_000_000);
            }
            Err(e) => {
                libsys::println!("echo-server: bind {what}: {e}");
                return None;
            }
        }
    }
}

fn tcp(port: u16) -> i32 {
    let Some(mut listener) = bind_retrying("tcp", || TcpListener::bind(port)) else {
        return 1;
    };
    log!("listening on tcp port {port}");
    let mut buf = [0u8; 2048];
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                log!("accept: {e}");
                libsys::sleep_ns(100_000_000);
                continue;
            }
        };
        log!("connection from {peer}");
        let mut echoed = 0u64;
        let outcome = loop {
            match stream.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => match stream.write(&buf[..n]) {
                    Ok(_) => echoed += n as u64,
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            }
        };
        let _ = stream.shutdown();
        match outcome {
            Ok(()) => log!("{peer}: {echoed} bytes echoed, closed"),
            Err(e) => log!("{peer}: {e} after {echoed} bytes"),
        }
    }
}

fn udp(port: u16) -> i32 {
    let Some(mut socket) = bind_retrying("udp", || UdpSocket::bind(port)) else {
        return 1;
    };
    log!("listening on udp port {port}");
    let mut buf = [0u8; 2048];
    let mut echoed = 0u64;
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => match socket.send_to(&buf[..n], from) {
                Ok(_) => {
                    echoed += 1;
                    if echoed.is_multiple_of(10_000) {
                        log!("{echoed} datagrams echoed");
                    }
                }
                Err(e) => log!("send_to {from}: {e}"),
            },
            Err(e) => {
                log!("recv_from: {e}");
                libsys::sleep_ns(100_000_000);
            }
        }
    }
}
