//! `udp`: the udp server program — [`udpd::server`] on a CPU of its own. Arguments: the
//! applications it serves, comma-separated. Every round: `heartbeat()` and the server's round;
//! when a round had nothing to do it polls a little (`libsys::IdlePolicy`: 20 empty rounds,
//! or 20 ms on a CPU of its own under `idle=poll`), then arms every input and sleeps in `wait`
//! (100 ms at most) until a producer's notify or an IPC request.
#![no_std]
#![no_main]

extern crate alloc;

use libsys::log;
use udpd::server::{Ipc, MAX_APPS, Server};

libsys::entry!(main);

/// Empty rounds before arming the inputs and sleeping (few: see pfd's `SPIN_TURNS`).
const SPIN_POLLS: u32 = 20;

fn main(args: &str) -> i32 {
    let Some(apps) = libsys::chan::app_list(args, MAX_APPS) else {
        log!("bad arguments '{args}' (expected 1 to {MAX_APPS} applications, comma-separated)");
        return 2;
    };
    let mut server = match Server::start(&apps, Ipc::Own) {
        Ok(s) => s,
        Err(why) => {
            log!("FAILED: {why}");
            return 1;
        }
    };
    let mut idle = libsys::IdlePolicy::new(SPIN_POLLS);
    loop {
        libsys::heartbeat();
        if server.round() {
            idle.worked();
            continue;
        }
        if idle.keep_polling() {
            continue;
        }
        // Idle: arm every input, sleep once unless one had a message, disarm them all.
        if !server.arm() {
            let _ = libsys::wait(Some(server.sleep_ns()));
        }
        server.disarm();
    }
}
