//! `udp`: the udp server program — the loop around [`udpd::Udp`] (see the library). Arguments:
//! the applications it serves, comma-separated (the manifest's `args` is one word), each with
//! the channels `udp-APP`, `APP-udp` and the pools `APP-urx` (ours), `APP-utx` (its).
//!
//! At start it maps rx-pool and tx-pool (views), `ip-udp` (it consumes), `udp-ip` (it produces)
//! and each application's regions. Every round: `heartbeat()`, a batch from ip, a batch from
//! each application, the outboxes. When a round had nothing to do it polls a little, then arms
//! every input channel and sleeps in `wait` (100 ms at most) until a producer's notify. The
//! peers' pids (for `notify`) are looked up until found and again every second. Its counters are
//! logged when they changed, at most every 5 s.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use libchan::{BufferPool, Message, PoolView};
use libsys::chan::Link;
use libsys::log;
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID};
use udpd::Udp;
use udpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID};

libsys::entry!(main);

const BATCH: usize = 32;
/// Most applications served (the manifest's `args`).
const MAX_APPS: usize = 16;
const SPIN_POLLS: u32 = 200;
const MAX_SLEEP_NS: u64 = 100_000_000;
const PEER_CHECK_NS: u64 = 1_000_000_000;
const STATS_LOG_NS: u64 = 5_000_000_000;
/// IPC requests (`netstat`) are polled at most this often, and right after each sleep.
const BUSY_IPC_POLL_NS: u64 = 1_000_000;
/// Most IPC requests answered in one round.
const IPC_PER_ROUND: usize = 8;

fn main(args: &str) -> i32 {
    let Some(apps) = libsys::chan::app_list(args, MAX_APPS) else {
        log!("bad arguments '{args}' (expected 1 to {MAX_APPS} applications, comma-separated)");
        return 2;
    };
    match run(&apps) {
        Ok(never) => match never {},
        Err(why) => {
            log!("FAILED: {why}");
            1
        }
    }
}

enum Never {}

fn pool(name: &str, id: u16) -> Result<PoolView<'static>, &'static str> {
    libsys::chan::map_pool(name, id, BUFFER_SIZE).map_err(|e| {
        log!("map({name}): {e}");
        "a region the udp server needs is not granted, or holds no buffer"
    })
}

fn link(name: &'static str, from: &str, to: &str) -> Result<Link, &'static str> {
    Link::attach(name, from, to).map_err(|e| {
        log!("channels {from}/{to}: {e}");
        "a channel the udp server needs is not granted"
    })
}

fn run(apps: &[&str]) -> Result<Never, &'static str> {
    let frames = pool(RX_POOL, RX_POOL_ID)?;
    let tx = pool(TX_POOL, TX_POOL_ID)?;
    let mut udp = Udp::new(frames, tx);
    let mut ip = link("ip", udpmsg::IP_TO_UDP, udpmsg::UDP_TO_IP)?;
    let mut links = Vec::new();
    for &app in apps {
        let name: &'static str =
            alloc::boxed::Box::leak(alloc::string::String::from(app).into_boxed_str());
        let rx = BufferPool::new(pool(&udpmsg::app_rx_pool(app), APP_RX_POOL_ID)?)
            .map_err(|_| "an application's rx pool has too many buffers")?;
        let atx = pool(&udpmsg::app_tx_pool(app), APP_TX_POOL_ID)?;
        udp.add_app(app, rx, atx);
        links.push(link(
            name,
            &udpmsg::app_to_udp(app),
            &udpmsg::udp_to_app(app),
        )?);
    }
    // The bindings outlive us in udp-state (when the manifest grants it): a restarted udp
    // serves the sockets its applications bound before.
    let mut state = map_state();
    if let Some(st) = state.as_deref() {
        for (app, port) in saved_bindings(st, apps.len()) {
            if udp.restore_binding(app, port) {
                log!("{} keeps port {port} (from {STATE_REGION})", apps[app]);
            }
        }
    }
    let mut saved: [u16; MAX_APPS] = core::array::from_fn(|i| udp.port(i).unwrap_or(0));
    log!(
        "serving {} application(s): {}; channels {} and {}",
        apps.len(),
        apps.join(","),
        udpmsg::IP_TO_UDP,
        udpmsg::UDP_TO_IP
    );

    let mut batch = [Message::default(); BATCH];
    let mut errors = 0u64;
    let (mut last_peer_check, mut last_stats_log, mut last_ipc) = (0u64, 0u64, 0u64);
    let mut logged = *udp.stats();
    let mut spins = 0;
    loop {
        libsys::heartbeat();
        let mut worked = false;
        let n = ip.receive(&mut batch, &mut errors);
        if ip.take_restart() {
            log!("ip restarted: dropping what its last instance lent us");
            udp.ip_restarted();
        }
        for m in &batch[..n] {
            udp.from_ip(m);
        }
        worked |= n > 0;
        let mut spoke = [false; MAX_APPS];
        for (i, l) in links.iter_mut().enumerate() {
            let n = l.receive(&mut batch, &mut errors);
            for m in &batch[..n] {
                udp.from_app(i, m);
            }
            worked |= n > 0;
            if let Some(s) = spoke.get_mut(i) {
                *s = n > 0;
            }
        }
        let now = libsys::time_ns();
        libsys::chan::refresh_peers(
            &mut ip,
            &mut links,
            &spoke,
            now,
            &mut last_peer_check,
            PEER_CHECK_NS,
        );
        // Every millisecond at most, busy or spinning idle (an IPC request also notifies us,
        // so a sleeping server wakes for it): a poll per idle spin would be a system call each.
        if now.saturating_sub(last_ipc) >= BUSY_IPC_POLL_NS {
            last_ipc = now;
            answer_netstat(&udp, links.len());
        }
        if let Some(st) = state.as_deref_mut() {
            for (i, slot) in saved.iter_mut().enumerate().take(apps.len()) {
                let port = udp.port(i).unwrap_or(0);
                if *slot != port {
                    *slot = port;
                    save_binding(st, i, port);
                }
            }
        }
        udp.flush_ip(|m| ip.send(m, &mut errors));
        if ip.take_restart() {
            log!("ip restarted: dropping what its last instance lent us");
            udp.ip_restarted();
        }
        for (i, l) in links.iter_mut().enumerate() {
            udp.flush_app(i, |m| l.send(m, &mut errors));
        }
        if now.saturating_sub(last_stats_log) >= STATS_LOG_NS && *udp.stats() != logged {
            last_stats_log = now;
            logged = *udp.stats();
            let mut line = alloc::string::String::from("counters:");
            for (name, v) in logged.fields() {
                if v != 0 {
                    line.push_str(&alloc::format!(" {name}={v}"));
                }
            }
            log!("{line}");
        }
        if worked {
            spins = 0;
            continue;
        }
        spins += 1;
        if spins < SPIN_POLLS {
            core::hint::spin_loop();
            continue;
        }
        spins = 0;
        // Idle: arm every input, sleep once unless one had a message, disarm them all.
        let sleep = if udp.pending() > 0 || ip.pid == 0 {
            1_000_000
        } else {
            MAX_SLEEP_NS
        };
        let mut ready = matches!(ip.from.arm(), Ok(true) | Err(_));
        for l in &mut links {
            ready |= matches!(l.from.arm(), Ok(true) | Err(_));
        }
        if !ready {
            let _ = libsys::wait(Some(sleep));
            // What woke us may be an IPC request: look at once.
            last_ipc = 0;
        }
        ip.from.disarm();
        for l in &mut links {
            l.from.disarm();
        }
    }
}

/// Answers `netstat` requests waiting in the kernel (netmsg::netstat): one entry per bound port.
fn answer_netstat(udp: &Udp, apps: usize) {
    // Listed only when a request came (this runs every millisecond).
    let mut bound: Option<Vec<(usize, u16)>> = None;
    libsys::chan::answer_requests(IPC_PER_ROUND, |m| {
        let bound = bound.get_or_insert_with(|| {
            (0..apps)
                .filter_map(|a| udp.port(a).map(|p| (a, p)))
                .collect()
        });
        netmsg::netstat::answer(m, bound.len() as u32, |i| {
            let &(app, port) = bound.get(i as usize)?;
            let mut e = netmsg::netstat::Entry {
                local_port: port,
                state: netmsg::netstat::state_code("BOUND"),
                recv_queue: u32::MAX,
                send_queue: u32::MAX,
                ..Default::default()
            };
            e.set_app(udp.app_name(app));
            Some(e)
        })
    });
}

/// The region where udp keeps its applications' bindings across its restarts.
const STATE_REGION: &str = "udp-state";
/// First bytes of a valid state: then one little-endian `u16` port per application (0: none).
const STATE_MAGIC: [u8; 8] = *b"UDPBIND1";

/// udp-state, when the manifest grants it (without it bindings do not outlive a restart).
fn map_state() -> Option<&'static mut [u8]> {
    let info = libsys::map(STATE_REGION).ok()?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for our whole life, and only
    // udp lists the region in the manifest.
    let region =
        unsafe { core::slice::from_raw_parts_mut(info.addr as *mut u8, info.len as usize) };
    if region.len() < STATE_MAGIC.len() + 2 * MAX_APPS {
        log!("{STATE_REGION} is too small; bindings will not outlive a restart");
        return None;
    }
    if region[..8] != STATE_MAGIC {
        region.fill(0);
        region[..8].copy_from_slice(&STATE_MAGIC);
    }
    Some(region)
}

/// The bindings a state holds, for the first `apps` applications.
fn saved_bindings(state: &[u8], apps: usize) -> Vec<(usize, u16)> {
    (0..apps.min(MAX_APPS))
        .filter_map(|i| {
            let at = 8 + 2 * i;
            let port = u16::from_le_bytes([*state.get(at)?, *state.get(at + 1)?]);
            (port != 0).then_some((i, port))
        })
        .collect()
}

fn save_binding(state: &mut [u8], app: usize, port: u16) {
    let at = 8 + 2 * app;
    if let Some(b) = state.get_mut(at..at + 2) {
        b.copy_from_slice(&port.to_le_bytes());
    }
}
