//! `udpecho PORT`: binds PORT with `libnet::UdpSocket` and sends every datagram back to its
//! sender, byte for byte, forever. Logs a line when bound and every 1000 datagrams.
//! Exit codes: 1 the bind failed (retried for 10 s while udp starts), 2 bad arguments.
#![no_std]
#![no_main]

use libnet::{ErrorKind, UdpSocket};
use libsys::log;

libsys::entry!(main);

fn main(args: &str) -> i32 {
    let Ok(port) = args.trim().parse::<u16>() else {
        log!("bad arguments '{args}' (expected a port, 1..=65535)");
        return 2;
    };
    let deadline = libsys::time_ns() + 10_000_000_000;
    let mut socket = loop {
        match UdpSocket::bind(port) {
            Ok(s) => break s,
            // udp may not be up yet.
            Err(e) if e.kind() == ErrorKind::TimedOut && libsys::time_ns() < deadline => {
                libsys::sleep_ns(100_000_000);
            }
            Err(e) => {
                log!("bind {port}: {e}");
                return 1;
            }
        }
    };
    log!("listening on udp port {port}");
    let mut buf = [0u8; 2048];
    let mut echoed = 0u64;
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => match socket.send_to(&buf[..n], from) {
                Ok(_) => {
                    echoed += 1;
                    if echoed.is_multiple_of(1000) {
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
