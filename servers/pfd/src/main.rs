//! The packet filter server (process `pf`, binary `pf`, no arguments): [`pfd::server`] on a CPU
//! of its own (README.md). Every turn: `heartbeat()` (the reincarnation server watches it), a
//! live update at a quiet point, one round of the path; after a few thousand empty turns (64
//! when it shares its CPU; 20 ms on a CPU of its own under `idle=poll`) the idle chores, both
//! inputs armed, and one sleep in `wait` (100 ms at most, 1 ms while it holds messages for a
//! full ring): a producer's notify, a queued request or the timeout wakes it.
#![no_std]
#![no_main]

use libsys::log;
use pfd::server::{Ipc, Server};

libsys::entry!(main);

fn main(args: &str) -> i32 {
    if !args.trim().is_empty() {
        log!("bad arguments '{args}' (expected none)");
        return 2;
    }
    let mut server = match Server::start(Ipc::Own) {
        Ok(s) => s,
        Err(why) => {
            log!("FAILED: {why}");
            return 1;
        }
    };
    let mut idle = libsys::IdlePolicy::new(server.spin_turns());
    loop {
        libsys::heartbeat();
        // Live update: at a quiet point (nothing held for a peer) hand over to a fresh instance;
        // the rules are in pf-state already.
        if libsys::update_requested() && server.quiet() {
            log!("live update: quiet; exiting for the new instance");
            libsys::exit(libsys::abi::EXIT_UPDATE);
        }
        if server.round() {
            idle.worked();
            continue;
        }
        if idle.keep_polling() {
            continue;
        }
        if !server.arm() {
            libsys::heartbeat();
            let _ = libsys::wait(Some(server.sleep_ns()));
            server.disarm();
        }
    }
}
