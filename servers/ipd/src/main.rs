//! `ip`: the ip server program — [`ipd::server`] on a CPU of its own (README.md;
//! docs/netpath.md). Arguments: none, or `dhcp`. Every round: `heartbeat()`, a live update at a
//! quiet point, the server's round; idle, it polls pf-ip a little (20 ms on a CPU of its own
//! under `idle=poll`), then arms the inputs and sleeps in `wait` until pf's notify, a client's
//! message or the next timer.
#![no_std]
#![no_main]

extern crate alloc;

use ipd::server::{Ipc, Server};
use libsys::log;

libsys::entry!(main);

/// Polls of pf-ip, after a round with nothing to do, before sleeping (few: see pfd's
/// `SPIN_TURNS`).
const SPIN_POLLS: u32 = 20;

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
    // By time under idle=poll; otherwise the SPIN_POLLS polls of pf-ip below are all.
    let mut idle = libsys::IdlePolicy::new(0);
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
        // Idle: poll a little, then sleep until pf notifies, a client's message arrives, or the
        // next timer is due.
        if (0..SPIN_POLLS).any(|_| {
            core::hint::spin_loop();
            server.poll_pf()
        }) {
            continue;
        }
        // Under idle=poll, on and on until the polling time is up.
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
