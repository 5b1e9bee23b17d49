//! `tcpecho PORT`: listens on PORT with `libnet::TcpListener`, accepts one connection at a time
//! and sends every byte back until the peer's end of stream, then closes. Logs each connection
//! with its byte count. Exit codes: 1 the bind failed (retried for 10 s while tcp starts), 2 bad
//! arguments.
#![no_std]
#![no_main]

use libnet::{ErrorKind, TcpListener};
use libsys::log;

libsys::entry!(main);

fn main(args: &str) -> i32 {
    let Ok(port) = args.trim().parse::<u16>() else {
        log!("bad arguments '{args}' (expected a port, 1..=65535)");
        return 2;
    };
    let deadline = libsys::time_ns() + 10_000_000_000;
    let mut listener = loop {
        match TcpListener::bind(port) {
            Ok(l) => break l,
            // tcp may not be up yet.
            Err(e) if e.kind() == ErrorKind::TimedOut && libsys::time_ns() < deadline => {
                libsys::sleep_ns(100_000_000);
            }
            Err(e) => {
                log!("bind {port}: {e}");
                return 1;
            }
        }
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
