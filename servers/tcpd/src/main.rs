//! `tcp`: the tcp server program — the loop around [`tcpd::Tcp`]. Arguments: the applications
//! it serves, comma-separated, each with the channels `tcp-APP`, `APP-tcp` and the pools
//! `APP-trx` (ours), `APP-ttx` (its). Every round: `heartbeat()`, a batch from ip, a batch
//! from each application, smoltcp's poll, the outboxes; idle, it spins a little, then arms every
//! input and sleeps until a notify or smoltcp's next timer (100 ms at most).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use libchan::{BufferPool, Message, PoolView};
use libsys::chan::Link;
use libsys::log;
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, netstat};
use tcpd::Tcp;
use tcpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID};

// Each connection holds 384 KiB of socket buffers (tcpd::RX_BUFFER + TX_BUFFER).
libsys::entry!(main, heap = 16 << 20);

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
        "a region the tcp server needs is not granted, or holds no buffer"
    })
}

fn link(name: &'static str, from: &str, to: &str) -> Result<Link, &'static str> {
    Link::attach(name, from, to).map_err(|e| {
        log!("channels {from}/{to}: {e}");
        "a channel the tcp server needs is not granted"
    })
}

fn run(apps: &[&str]) -> Result<Never, &'static str> {
    let frames = pool(RX_POOL, RX_POOL_ID)?;
    let tx = pool(TX_POOL, TX_POOL_ID)?;
    let now = libsys::time_ns();
    let mut tcp = Tcp::new(frames, tx, now, now ^ 0x9e37_79b9_7f4a_7c15);
    let mut ip = link("ip", tcpmsg::IP_TO_TCP, tcpmsg::TCP_TO_IP)?;
    let mut links = Vec::new();
    for &app in apps {
        let name: &'static str =
            alloc::boxed::Box::leak(alloc::string::String::from(app).into_boxed_str());
        let rx = BufferPool::new(pool(&tcpmsg::app_rx_pool(app), APP_RX_POOL_ID)?)
            .map_err(|_| "an application's rx pool has too many buffers")?;
        let atx = pool(&tcpmsg::app_tx_pool(app), APP_TX_POOL_ID)?;
        tcp.add_app(app, rx, atx);
        links.push(link(
            name,
            &tcpmsg::app_to_tcp(app),
            &tcpmsg::tcp_to_app(app),
        )?);
    }
    // The listening ports outlive us in tcp-state (when the manifest grants it): a restarted
    // tcp listens again where its applications listened before.
    if let Some(r) = map_state().and_then(|st| tcp.keep_listens(st)) {
        for &(app, port) in &r.listens {
            let name = apps.get(app).copied().unwrap_or("?");
            log!("{name} keeps port {port} (from {})", tcpd::state::REGION);
        }
        if r.bad > 0 {
            let what = if r.fresh {
                "damaged header"
            } else {
                "bad entries"
            };
            log!("{}: {what}, {} word(s) dropped", tcpd::state::REGION, r.bad);
        }
    }
    log!(
        "serving {} application(s): {}; channels {} and {}",
        apps.len(),
        apps.join(","),
        tcpmsg::IP_TO_TCP,
        tcpmsg::TCP_TO_IP
    );

    let mut batch = [Message::default(); BATCH];
    let mut errors = 0u64;
    let (mut last_peer_check, mut last_stats_log, mut last_ipc) = (0u64, 0u64, 0u64);
    let mut logged = *tcp.stats();
    let mut spins = 0;
    loop {
        libsys::heartbeat();
        let mut worked = false;
        let n = ip.receive(&mut batch, &mut errors);
        if ip.take_restart() {
            log!("ip restarted: dropping what its last instance lent us");
            tcp.ip_restarted();
        }
        for m in &batch[..n] {
            tcp.from_ip(m);
        }
        worked |= n > 0;
        let mut spoke = [false; MAX_APPS];
        for (i, l) in links.iter_mut().enumerate() {
            let n = l.receive(&mut batch, &mut errors);
            for m in &batch[..n] {
                tcp.from_app(i, m);
            }
            worked |= n > 0;
            if let Some(s) = spoke.get_mut(i) {
                *s = n > 0;
            }
        }
        let now = libsys::time_ns();
        let before = *tcp.stats();
        tcp.poll(now);
        worked |= *tcp.stats() != before;
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
            answer_netstat(&tcp);
        }
        tcp.flush_ip(|m| ip.send(m, &mut errors));
        if ip.take_restart() {
            log!("ip restarted: dropping what its last instance lent us");
            tcp.ip_restarted();
        }
        for (i, l) in links.iter_mut().enumerate() {
            tcp.flush_app(i, |m| l.send(m, &mut errors));
        }
        if now.saturating_sub(last_stats_log) >= STATS_LOG_NS && *tcp.stats() != logged {
            last_stats_log = now;
            logged = *tcp.stats();
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
        // Idle: arm every input, sleep until a notify or smoltcp's next timer.
        let mut sleep = MAX_SLEEP_NS;
        if let Some(t) = tcp.poll_at(now) {
            sleep = sleep.min(t.saturating_sub(now).max(1));
        }
        if tcp.pending() > 0 || ip.pid == 0 {
            sleep = sleep.min(1_000_000);
        }
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

/// Answers `netstat` requests waiting in the kernel (netmsg::netstat).
fn answer_netstat(tcp: &Tcp) {
    let mut sockets = None;
    libsys::chan::answer_requests(IPC_PER_ROUND, |m| {
        let list = sockets.get_or_insert_with(|| tcp.sockets());
        netstat::answer(m, list.len() as u32, |i| {
            let s = list.get(i as usize)?;
            let mut e = netstat::Entry {
                local_port: s.local_port,
                remote: s.remote.map_or((0, 0), |r| (u32::from(*r.ip()), r.port())),
                state: netstat::state_code(s.state),
                recv_queue: s.recv_queue as u32,
                send_queue: s.send_queue as u32,
                ..Default::default()
            };
            e.set_app(&s.app);
            Some(e)
        })
    });
}

/// tcp-state as words, when the manifest grants it (without it listening ports do not outlive
/// a restart).
fn map_state() -> Option<&'static [core::sync::atomic::AtomicU32]> {
    let info = libsys::map(tcpd::state::REGION).ok()?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` (page-aligned, so aligned for
    // u32) for our whole life, and only tcp lists the region in the manifest; AtomicU32 has the
    // size and layout of u32, and every access to the words goes through these atomics.
    Some(unsafe {
        core::slice::from_raw_parts(
            info.addr as *const core::sync::atomic::AtomicU32,
            info.len as usize / 4,
        )
    })
}
