//! `tcp`: the tcp server program — [`tcpd::server`] on a CPU of its own. Arguments: the
//! applications it serves, comma-separated. Every round: `heartbeat()` and the server's round;
//! idle, it polls a while (`libsys::IdlePolicy`: 20 empty rounds, or 20 ms on a CPU of its
//! own under `idle=poll`), then arms every input and sleeps until a notify or smoltcp's next
//! timer (100 ms at most).
#![no_std]
#![no_main]

extern crate alloc;

use libsys::log;
use tcpd::server::{Ipc, MAX_APPS, Server};

// Each connection holds 2 MiB of socket buffers (tcpd::RX_BUFFER + TX_BUFFER), 48 MiB for
// tcpd::MAX_CONNECTIONS.
libsys::entry!(main, heap = 64 << 20);

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
        // Idle: arm every input, sleep until a notify or smoltcp's next timer.
        let sleep = server.sleep_ns();
        if !server.arm() {
            let _ = libsys::wait(Some(sleep));
        }
        server.disarm();
    }
}
