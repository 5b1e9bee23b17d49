//! `ip`: the ip server program — [`ipd::server`] on a CPU of its own (README.md;
//! docs/netpath.md). Arguments: none, or `dhcp`. Every round: `heartbeat()`, a live update at a
//! quiet point, the server's round; idle, it polls a while (libsys::IdleSpin), then arms the inputs and
//! sleeps in `wait` until pf's notify, a client's message or the next timer.
#![no_std]
#![no_main]

extern crate alloc;

use ipd::server::{Ipc, Server};
use libsys::log;

libsys::entry!(main);

fn main(args: &str) -> i32 {
    let dhcp = match args.trim() {
        "" => false,
        "dhcp" => true,
        _ => {
            log!("bad arguments '{args}' (expected none, or 'dhcp')");
            return 2;
        }
    };
    let mut server = match Server::start(dhcp, Ipc::Own) {
        Ok((server, early)) => {
            let mut server = server;
            for (from, m) in early {
                server.request(from, &m);
            }
            server
        }
        Err(why) => {
            log!("FAILED: {why}");
            return 1;
        }
    };
    let mut idle = libsys::IdleSpin::by_placement();
    loop {
        libsys::heartbeat();
        // Live update: at a quiet point hand over to a fresh instance.
        if libsys::update_requested() && server.quiet() {
            log!("live update: quiet; exiting for the new instance");
            libsys::exit(axolotl_abi::EXIT_UPDATE);
        }
        if server.round() {
            idle.worked();
            continue;
        }
        // Idle: poll a while, then sleep until pf notifies, a client's message arrives, or the
        // next timer is due.
        if idle.keep_polling() {
            continue;
        }
        let sleep = server.sleep_ns();
        if !server.arm() {
            let _ = libsys::wait(Some(sleep));
        }
        server.disarm();
    }
}
