//! `ipcbench`: the kernel-IPC pair of DESIGN.md §8, one binary in two roles chosen by `args`.
//!
//! - `pong` (process `ipc-pong`): a plain kernel-IPC server. It receives a message and answers
//!   every one with its first word plus one, replying and receiving in one trap
//!   (`ipc_reply_recv`).
//! - `ping` (process `ipc-ping`): serves the shell's `ipcbench` command. For each request it runs
//!   N `ipc_call`s to ipc-pong, checks every reply, times the run, logs the summary line and
//!   replies with the [`ipcbench::Report`].
#![no_std]
#![no_main]

use ipcbench::{PONG, Report, Request, pong_reply, probe, reply_ok};
use libsys::{Message, log};

libsys::entry!(main);

/// First pause after a failed receive; doubled on each failure in a row, up to a second.
const RETRY_NS: u64 = 10_000_000;
/// How long ipc-ping keeps looking for ipc-pong at start.
const LOOKUP_FOR_NS: u64 = 1_000_000_000;

fn main(args: &str) -> i32 {
    match args.trim() {
        "pong" => pong(),
        "ping" => ping(),
        other => {
            log!("ipcbench: unknown role '{other}' (expected 'ping' or 'pong')");
            2
        }
    }
}

/// Blocks until a message arrives in `msg`; returns its sender. Failures are logged and retried
/// with a growing pause, so a kernel that refuses cannot make us spin or flood the log.
fn receive(role: &str, msg: &mut Message) -> u32 {
    let mut pause = RETRY_NS;
    loop {
        match libsys::ipc_recv(msg, None) {
            Ok(sender) => return sender,
            Err(e) => {
                log!(
                    "ipcbench {role}: receive failed: {e}; retrying in {} ms",
                    pause / 1_000_000
                );
                libsys::sleep_ns(pause);
                pause = (pause * 2).min(1_000_000_000);
            }
        }
    }
}

fn pong() -> ! {
    let mut msg: Message = [0; libsys::abi::IPC_MSG_LEN];
    loop {
        let mut sender = receive("pong", &mut msg);
        loop {
            let reply = pong_reply(&msg);
            match libsys::ipc_reply_recv(sender, &reply, &mut msg) {
                Ok(next) => sender = next,
                Err(e) => {
                    // The caller died or the kernel refused: start over with a plain receive.
                    log!("ipcbench pong: reply to pid {sender} failed: {e}");
                    break;
                }
            }
        }
    }
}

/// ipc-pong's pid, looked up for up to `for_ns` nanoseconds.
fn find_pong(for_ns: u64) -> Option<u32> {
    let deadline = libsys::time_ns().saturating_add(for_ns);
    loop {
        match libsys::lookup(PONG) {
            Ok(pid) => return Some(pid),
            Err(e) if libsys::time_ns() >= deadline => {
                log!("ipcbench ping: no {PONG}: {e}");
                return None;
            }
            Err(_) => libsys::sleep_ns(RETRY_NS),
        }
    }
}

fn ping() -> ! {
    let mut pong = find_pong(LOOKUP_FOR_NS);
    let mut request: Message = [0; libsys::abi::IPC_MSG_LEN];
    let mut requester = receive("ping", &mut request);
    loop {
        let n = Request::decode(&request).round_trips;
        if pong.is_none() {
            pong = find_pong(0);
        }
        let report = match pong {
            Some(pid) => run(pid, n),
            None => Report {
                round_trips: 0,
                total_ns: 0,
                errors: n.max(1),
            },
        };
        if report.errors > 0 {
            // ipc-pong may have died and come back with a new pid: look it up again next time.
            pong = None;
        }
        log!("{report}");
        match libsys::ipc_reply_recv(requester, &report.encode(), &mut request) {
            Ok(next) => requester = next,
            Err(e) => {
                log!("ipcbench ping: reply to pid {requester} failed: {e}");
                requester = receive("ping", &mut request);
            }
        }
    }
}

/// Runs `n` round trips to `pong`, stopping at the first failed call.
fn run(pong: u32, n: u64) -> Report {
    let mut reply: Message = [0; libsys::abi::IPC_MSG_LEN];
    let mut done = 0;
    let mut errors = 0;
    let start = libsys::time_ns();
    for counter in 0..n {
        let msg = probe(counter);
        match libsys::ipc_call(pong, &msg, &mut reply) {
            Ok(()) => {
                done += 1;
                if !reply_ok(counter, &reply) {
                    errors += 1;
                }
            }
            Err(e) => {
                log!("ipcbench ping: call {counter} to {PONG} failed: {e}");
                errors += 1;
                break;
            }
        }
    }
    let total_ns = libsys::time_ns().saturating_sub(start);
    Report {
        round_trips: done,
        total_ns,
        errors,
    }
}
