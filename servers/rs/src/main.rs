//! `rs`, the reincarnation server (DESIGN.md §7): receives every fault record from the kernel,
//! watches the heartbeat of every component in its status page, and restarts a crashed or hung
//! component on the same CPU with the same regions (the kernel keeps them) — with backoff, and
//! giving up loudly after the manifest's limit. The kernel restarts rs itself if it dies.
//!
//! Only a crash (a fault record) or a hang is a failure. A process that exits, with any code, or
//! that is killed (the shell's `kill`) is left down: so a program started on demand
//! (`start = "on-demand"`) that ends is never started again by rs. Such a program that crashes is
//! treated like any other component: restarted by its manifest policy (none by default), with
//! the argument string of the run that crashed, which the kernel keeps for the restart.
#![no_std]
#![no_main]

use libsys::abi::{ProcOp, ProcState, StatusPage};
use libsys::log;
use rs::{Decision, HangWatch, History, Policy};

libsys::entry!(main);

/// Most components watched.
const MAX_SLOTS: usize = 32;
/// How long one wait for a fault record lasts: the period of the heartbeat checks.
const TICK_NS: u64 = 50_000_000;
const MS: u64 = 1_000_000;

struct Component {
    name: [u8; 16],
    name_len: usize,
    policy: Policy,
    status: Option<&'static StatusPage>,
    history: History,
    watch: HangWatch,
    /// A restart waiting for its backoff: (due time, pid of the dead instance, time of failure).
    pending: Option<(u64, u32, u64)>,
}

impl Component {
    fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

fn main(_args: &str) -> i32 {
    let me = libsys::self_info().map(|i| i.pid).unwrap_or(0);
    let mut comps: [Option<Component>; MAX_SLOTS] = [const { None }; MAX_SLOTS];
    let (mut watched, mut on_demand) = (0, 0);
    for slot in 0..MAX_SLOTS as u32 {
        let info = match libsys::proc_info(slot) {
            Ok(i) => i,
            Err(_) => break,
        };
        if info.name() == "rs" || (info.pid == me && me != 0) {
            continue;
        }
        // A process of the other network-stack layout never runs in this boot.
        if ProcState::from_u8(info.state) == Some(ProcState::OtherLayout) {
            continue;
        }
        let Ok(p) = libsys::proc_policy(slot) else {
            continue;
        };
        if p.start == 0 {
            on_demand += 1;
        }
        let mut name = [0u8; 16];
        let n = info.name().len().min(16);
        name[..n].copy_from_slice(&info.name().as_bytes()[..n]);
        comps[slot as usize] = Some(Component {
            name,
            name_len: n,
            policy: Policy {
                max_failures: p.max_failures,
                window_ns: p.window_ms as u64 * MS,
                backoff_ns: p.backoff_ms as u64 * MS,
            },
            status: libsys::status_map(slot).ok(),
            history: History::default(),
            watch: HangWatch::default(),
            pending: None,
        });
        watched += 1;
    }
    log!(
        "rs: watching {watched} components, {on_demand} of them started on demand (faults from \
         the kernel, heartbeats every {} ms)",
        TICK_NS / MS
    );
    loop {
        libsys::heartbeat();
        // Sleep until the next fault record, the next heartbeat check, or the next restart due.
        let now = libsys::time_ns();
        let next_due = comps
            .iter()
            .flatten()
            .filter_map(|c| c.pending.map(|p| p.0))
            .min();
        let wait = next_due.map_or(TICK_NS, |due| due.saturating_sub(now).clamp(1, TICK_NS));
        match libsys::fault_record(Some(wait)) {
            Ok(rec) => {
                let now = libsys::time_ns();
                if let Some((slot, c)) = find_by_pid(&mut comps, rec.pid) {
                    let what = match rec.vector {
                        14 => "page fault",
                        13 => "general protection fault",
                        6 => "invalid opcode",
                        0 => "divide error",
                        _ => "CPU exception",
                    };
                    log!(
                        "rs: {} (pid {}) crashed: {what} (vector {}) at rip={:#x} address={:#x}",
                        c.name(),
                        rec.pid,
                        rec.vector,
                        rec.rip,
                        rec.address
                    );
                    failed(slot, c, rec.pid, now);
                }
            }
            Err(libsys::Error::TimedOut) => {}
            Err(e) => {
                log!("rs: fault_record failed: {e}");
                libsys::sleep_ns(TICK_NS);
            }
        }
        let now = libsys::time_ns();
        for (slot, c) in comps.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            let Ok(info) = libsys::proc_info(slot as u32) else {
                continue;
            };
            // Down: ended (however), or an on-demand program not started yet.
            let dead = ProcState::from_u8(info.state).is_some_and(ProcState::is_down);
            if let Some((due, old_pid, failed_at)) = c.pending {
                if now >= due && dead && info.pid == old_pid {
                    restart(c, old_pid, failed_at);
                } else if info.pid != old_pid {
                    // Someone else (the shell's restart) brought it back meanwhile.
                    c.pending = None;
                }
                continue;
            }
            let beat = c.status.map_or(0, |s| {
                s.heartbeat.load(core::sync::atomic::Ordering::Relaxed)
            });
            // Asleep in a wait with a deadline, it runs again by then: the time does not count
            // (an idle server may sleep longer than `HANG_AFTER_NS`).
            let watched = rs::watched(dead, c.history.given_up, info.timed_wait != 0);
            if c.watch.hung(beat, watched, now) {
                log!(
                    "rs: {} (pid {}) hung: its heartbeat stayed at {beat} for {} ms; killing it",
                    c.name(),
                    info.pid,
                    rs::HANG_AFTER_NS / MS
                );
                if let Err(e) = libsys::proc_ctl(info.pid, ProcOp::Kill) {
                    log!("rs: cannot kill {}: {e}", c.name());
                    continue;
                }
                failed(slot as u32, c, info.pid, now);
            }
        }
    }
}

fn find_by_pid(
    comps: &mut [Option<Component>; MAX_SLOTS],
    pid: u32,
) -> Option<(u32, &mut Component)> {
    for (slot, c) in comps.iter_mut().enumerate() {
        if let (Some(c), Ok(info)) = (c.as_mut(), libsys::proc_info(slot as u32))
            && info.pid == pid
        {
            return Some((slot as u32, c));
        }
    }
    None
}

fn failed(_slot: u32, c: &mut Component, pid: u32, now: u64) {
    match c.history.failure(&c.policy, now) {
        Decision::Restart { delay_ns, failures } => {
            log!(
                "rs: restarting {} in {} ms (failure {failures} of at most {} per {} ms)",
                c.name(),
                delay_ns / MS,
                c.policy.max_failures,
                c.policy.window_ns / MS
            );
            c.pending = Some((now + delay_ns, pid, now));
        }
        Decision::GiveUp { failures } => log!(
            "rs: GIVING UP on {}: {failures} failures within {} ms (policy allows {}); it stays down",
            c.name(),
            c.policy.window_ns / MS,
            c.policy.max_failures
        ),
        Decision::NotRestartable => {
            log!("rs: {} failed; its policy does not restart it", c.name())
        }
    }
}

fn restart(c: &mut Component, old_pid: u32, failed_at: u64) {
    c.pending = None;
    match libsys::proc_restart(old_pid) {
        Ok(new_pid) => {
            let now = libsys::time_ns();
            c.watch.reset(now);
            log!(
                "rs: restarted {}: pid {old_pid} -> {new_pid}, down {} ms",
                c.name(),
                (now - failed_at) / MS
            );
        }
        Err(e) => log!("rs: restart of {} (pid {old_pid}) failed: {e}", c.name()),
    }
}
