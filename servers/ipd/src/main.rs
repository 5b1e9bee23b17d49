//! `ip`: the ip server program — the loop around [`ipd::Stack`] with the system calls
//! (README.md; docs/netpath.md). No arguments.
//!
//! At start it maps the rx-pool (a view: the driver owns it), the tx-pool (which it owns), its
//! state region `ip-state` (the configuration, kept across restarts) and the channels `pf-ip`
//! (it consumes) and `ip-pf` (it produces), and asks the e1000 driver for the MAC address over
//! the driver's statistics protocol. Then it loops: a batch of up to 32 messages from pf, IPC
//! requests (`ipc_recv` with a zero timeout), the timers (ARP, ping timeouts), the replies to
//! clients (`ipc_reply`), the outbox to pf; idle, it polls pf-ip a little, then arms the channel
//! and sleeps in `wait` until pf's notify, a client's message or the next timer (100 ms at
//! most). It bumps its heartbeat every round.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use e1000::proto as driver;
use ipd::Stack;
use ipd::stack::{Notice, Refusal};
use libchan::{BufferPool, Consumer, Message as ChanMessage, PoolView, RecvError, SendError};
use libsys::chan::SysWaiter;
use libsys::{Error, Message, log};
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, chan};
use netproto::Mac;
use netproto::config::{self, ConfigError, IpConfig};

libsys::entry!(main);

/// The process the channels lead to.
const PF: &str = "pf";
/// The state region: the configuration, kept by the kernel across restarts.
const STATE_REGION: &str = "ip-state";
/// Most messages read from pf in one round.
const BATCH: usize = 32;
/// Polls of pf-ip, after a round with nothing to do, before sleeping.
const SPIN_POLLS: u32 = 200;
/// Longest sleep.
const MAX_SLEEP_NS: u64 = 100_000_000;
/// Sleep while the outbox waits for room in ip-pf, or while pf is not found yet.
const SHORT_SLEEP_NS: u64 = 1_000_000;
/// Under load, IPC requests are polled at most this often (every round when idle).
const BUSY_IPC_POLL_NS: u64 = 1_000_000;
/// Most IPC requests taken in one round.
const IPC_PER_ROUND: usize = 8;
/// How often pf's pid is looked up again (it may have restarted).
const PEER_CHECK_NS: u64 = 1_000_000_000;
/// How long to wait for the driver's answer to the status request.
const DRIVER_REPLY_NS: u64 = 2_000_000_000;
/// Requests from clients that arrive while the driver is asked, kept for later.
const MAX_EARLY_REQUESTS: usize = 16;

fn main(args: &str) -> i32 {
    if !args.trim().is_empty() {
        log!("bad arguments '{args}' (expected none)");
        return 2;
    }
    match run() {
        Ok(never) => match never {},
        Err(why) => {
            log!("FAILED: {why}");
            1
        }
    }
}

/// Never returns.
enum Never {}

fn map(name: &'static str) -> Result<libsys::MapInfo, &'static str> {
    libsys::map(name).map_err(|e| {
        log!("map({name}): {e}");
        "a region the ip server needs is not granted (rx-pool, tx-pool, pf-ip, ip-pf, ip-state)"
    })
}

/// A view of pool region `name` with id `id`.
fn pool(name: &'static str, id: u16) -> Result<PoolView<'static>, &'static str> {
    let info = map(name)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process;
    // the driver and pf map them too, which is what a pool is for: we touch them only through
    // the view, and only the buffers the path's protocol gives us.
    unsafe { PoolView::new(id, info.addr as *mut u8, info.len as usize, BUFFER_SIZE) }
        .map_err(|_| "a pool region holds no buffer")
}

/// The state region, and the configuration in it: loaded, or the default when the region is
/// fresh (never written) or damaged — said loudly — and then written back.
fn load_config() -> Result<(&'static mut [u8], IpConfig), &'static str> {
    let info = map(STATE_REGION)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process,
    // and only this process lists the region in the manifest.
    let region =
        unsafe { core::slice::from_raw_parts_mut(info.addr as *mut u8, info.len as usize) };
    if region.len() < config::STATE_LEN {
        return Err("ip-state is smaller than the configuration layout");
    }
    let config = match IpConfig::load(region) {
        Ok(c) => {
            log!("configuration from {STATE_REGION} (kept across a restart)");
            return Ok((region, c));
        }
        Err(ConfigError::BadMagic) if region.iter().all(|&b| b == 0) => {
            log!("{STATE_REGION} is fresh: default configuration (QEMU user networking)");
            IpConfig::default()
        }
        Err(e) => {
            log!(
                "{STATE_REGION} is DAMAGED ({e}): starting from the default configuration (QEMU user networking) and overwriting it"
            );
            IpConfig::default()
        }
    };
    store_config(region, &config);
    Ok((region, config))
}

/// Writes `config` to the state region (after every change).
fn store_config(region: &mut [u8], config: &IpConfig) {
    if let Some(dst) = region.get_mut(..config::STATE_LEN) {
        dst.copy_from_slice(&config.store());
    }
}

/// The NIC's MAC address, asked from the driver (`e1000::proto`, status request answered by
/// `ipc_send`) until it answers. Requests from clients that arrive meanwhile go to `early`.
fn driver_mac(early: &mut Vec<(u32, Message)>) -> Mac {
    let mut complained = false;
    loop {
        let Ok(pid) = libsys::lookup(driver::SERVICE) else {
            libsys::sleep_ns(10_000_000);
            continue;
        };
        if libsys::ipc_send(pid, &driver::request(driver::REQUEST_STATUS)).is_err() {
            libsys::sleep_ns(10_000_000);
            continue;
        }
        let deadline = libsys::time_ns() + DRIVER_REPLY_NS;
        loop {
            let now = libsys::time_ns();
            if now >= deadline {
                break;
            }
            let mut m: Message = [0; axolotl_abi::IPC_MSG_LEN];
            match libsys::ipc_recv(&mut m, Some(deadline - now)) {
                Ok(from) if from == pid => {
                    if driver::is_unknown(&m) {
                        break;
                    }
                    let mac = driver::Status::decode(&m).mac.0;
                    return Mac(mac);
                }
                Ok(from) => {
                    if early.len() < MAX_EARLY_REQUESTS {
                        early.push((from, m));
                    } else {
                        let _ = libsys::ipc_reply(
                            from,
                            &ipd::proto::status_reply(ipd::proto::Status::Busy),
                        );
                    }
                }
                Err(Error::TimedOut) => {}
                Err(_) => break,
            }
        }
        if !complained {
            complained = true;
            log!(
                "{} (pid {pid}) did not answer the status request within 2 s; asking again (the manifest must give it ipc to ip)",
                driver::SERVICE
            );
        }
    }
}

/// How often each kind of notice was seen, to keep a misbehaving peer from flooding the log.
#[derive(Default)]
struct NoticeLog {
    refused: u64,
    conflict: u64,
    unreachable: u64,
    pool_empty: u64,
    overflow: u64,
    channel: u64,
}

/// The first four, then at powers of two.
fn worth_logging(n: &mut u64) -> bool {
    *n += 1;
    *n <= 4 || n.is_power_of_two()
}

impl NoticeLog {
    fn log(&mut self, n: Notice) {
        match n {
            Notice::Refused { tag, why } => {
                if worth_logging(&mut self.refused) {
                    match why {
                        Refusal::Malformed(r) => {
                            log!(
                                "refused message {tag:#x} from {PF}: {r:?} ({} refused)",
                                self.refused
                            )
                        }
                        Refusal::NotLent { index } => log!(
                            "refused TX_DONE of tx-pool buffer {index}: not lent out ({} refused)",
                            self.refused
                        ),
                        Refusal::NotForUs => log!(
                            "refused message {tag:#x} from {PF}: only ip sends it ({} refused)",
                            self.refused
                        ),
                    }
                }
            }
            Notice::ArpConflict { mac } => {
                if worth_logging(&mut self.conflict) {
                    log!(
                        "ADDRESS CONFLICT: {mac} claims our address ({} times)",
                        self.conflict
                    );
                }
            }
            Notice::ArpUnreachable { ip, packets } => {
                if worth_logging(&mut self.unreachable) {
                    log!("{ip} did not answer ARP: {packets} packets dropped");
                }
            }
            Notice::TxPoolEmpty => {
                if worth_logging(&mut self.pool_empty) {
                    log!(
                        "tx-pool empty: a frame was not sent ({} times)",
                        self.pool_empty
                    );
                }
            }
            Notice::OutboxOverflow => {
                if worth_logging(&mut self.overflow) {
                    log!(
                        "outbox to {PF} full: a buffer could not be sent home ({} times)",
                        self.overflow
                    );
                }
            }
        }
    }

    fn channel(&mut self, what: &str, e: impl core::fmt::Debug) {
        if worth_logging(&mut self.channel) {
            log!("{what}: {e:?} ({} channel errors)", self.channel);
        }
    }
}

/// Reads up to `out.len()` messages from pf.
fn receive(
    from_pf: &mut Consumer<'static, SysWaiter>,
    out: &mut [ChanMessage],
    stack: &mut Stack<'static>,
    log: &mut NoticeLog,
) -> usize {
    match from_pf.recv_batch(out) {
        Ok(n) => n,
        Err(e) => {
            stack.stats_mut().channel_errors += 1;
            if let RecvError::EpochChanged(c) = e {
                log!(
                    "{}: epoch {} -> {} ({PF} restarted; {} of its messages never read)",
                    chan::PF_TO_IP,
                    c.old_epoch,
                    c.new_epoch,
                    c.count
                );
            } else {
                log.channel(chan::PF_TO_IP, e);
            }
            0
        }
    }
}

fn run() -> Result<Never, &'static str> {
    let rx = pool(RX_POOL, RX_POOL_ID)?;
    let tx =
        BufferPool::new(pool(TX_POOL, TX_POOL_ID)?).map_err(|_| "tx-pool has too many buffers")?;
    let (state, config) = load_config()?;
    let mut from_pf = libsys::chan::consumer(chan::PF_TO_IP, SysWaiter::new(0))
        .map_err(|_| "pf-ip is not a channel region we may consume")?;
    let mut to_pf = libsys::chan::producer(chan::IP_TO_PF, SysWaiter::new(0))
        .map_err(|_| "ip-pf is not a channel region we may produce into")?;
    let mut early = Vec::new();
    let mac = driver_mac(&mut early);
    let driver_pid = libsys::lookup(driver::SERVICE).unwrap_or(0);
    let (rx_count, tx_count) = (rx.count(), tx.view().count());
    let mut stack = Stack::new(rx, tx, mac, config);
    // The udp server's channels are optional: without them UDP is dropped as before.
    let mut udp = match (
        libsys::chan::consumer(udpmsg::UDP_TO_IP, SysWaiter::new(0)),
        libsys::chan::producer(udpmsg::IP_TO_UDP, SysWaiter::new(0)),
    ) {
        (Ok(from), Ok(to)) => {
            stack.attach_udp();
            log!(
                "udp server channels {} and {}",
                udpmsg::IP_TO_UDP,
                udpmsg::UDP_TO_IP
            );
            Some((from, to, 0u32))
        }
        _ => None,
    };
    // The tcp server's channels, likewise optional: without them TCP is dropped as before.
    let mut tcp = match (
        libsys::chan::consumer(tcpmsg::TCP_TO_IP, SysWaiter::new(0)),
        libsys::chan::producer(tcpmsg::IP_TO_TCP, SysWaiter::new(0)),
    ) {
        (Ok(from), Ok(to)) => {
            stack.attach_tcp();
            log!(
                "tcp server channels {} and {}",
                tcpmsg::IP_TO_TCP,
                tcpmsg::TCP_TO_IP
            );
            Some((from, to, 0u32))
        }
        _ => None,
    };
    // Nothing changes the configuration at run time yet; whatever does must store it here.
    let _state = state;
    log!(
        "{} gateway {} mac {mac} mtu {}; rx-pool {rx_count} buffers, tx-pool {tx_count} buffers, channels {} and {}",
        config.address,
        config
            .gateway
            .map_or(alloc::string::String::from("none"), |g| alloc::format!(
                "{g}"
            )),
        config.mtu,
        chan::PF_TO_IP,
        chan::IP_TO_PF
    );
    let now = libsys::time_ns();
    for (from, m) in early {
        stack.request(from, &m, now);
    }

    let mut log = NoticeLog::default();
    let mut batch = [ChanMessage::default(); BATCH];
    let mut ready = 0;
    let mut last_ipc = 0;
    let mut last_peer_check = 0;
    let mut pf_pid = 0;
    loop {
        libsys::heartbeat();
        if ready == 0 {
            let budget = stack.receive_budget(BATCH);
            ready = receive(&mut from_pf, &mut batch[..budget], &mut stack, &mut log);
        }
        let now = libsys::time_ns();
        for m in &batch[..ready] {
            stack.handle(m, now);
        }
        let mut worked = ready > 0;
        ready = 0;
        if let Some((from_udp, _, _)) = udp.as_mut() {
            let budget = stack.udp_receive_budget(BATCH);
            let n = match from_udp.recv_batch(&mut batch[..budget]) {
                Ok(n) => n,
                Err(e) => {
                    stack.stats_mut().channel_errors += 1;
                    log.channel(udpmsg::UDP_TO_IP, e);
                    0
                }
            };
            for m in &batch[..n] {
                stack.handle_udp(m, now);
            }
            worked |= n > 0;
        }
        if let Some((from_tcp, _, _)) = tcp.as_mut() {
            // Each message may add two to pf's outbox, as udp's.
            let budget = stack.udp_receive_budget(BATCH);
            let n = match from_tcp.recv_batch(&mut batch[..budget]) {
                Ok(n) => n,
                Err(e) => {
                    stack.stats_mut().channel_errors += 1;
                    log.channel(tcpmsg::TCP_TO_IP, e);
                    0
                }
            };
            for m in &batch[..n] {
                stack.handle_tcp(m, now);
            }
            worked |= n > 0;
        }

        if !worked || now.saturating_sub(last_ipc) >= BUSY_IPC_POLL_NS {
            last_ipc = now;
            for _ in 0..IPC_PER_ROUND {
                let mut m: Message = [0; axolotl_abi::IPC_MSG_LEN];
                match libsys::ipc_recv(&mut m, Some(0)) {
                    // A late answer of the driver's to the status request.
                    Ok(from) if from == driver_pid => {}
                    Ok(from) => stack.request(from, &m, now),
                    Err(_) => break,
                }
            }
        }
        if stack.next_deadline().is_some_and(|t| t <= now) {
            stack.tick(now);
        }
        for (to, m) in stack.take_replies() {
            // Fails only when the caller gave up waiting (or died): nothing to do.
            let _ = libsys::ipc_reply(to, &m);
        }
        for n in stack.take_notices() {
            log.log(n);
        }

        let peer_check = now.saturating_sub(last_peer_check) >= PEER_CHECK_NS;
        if pf_pid == 0 || peer_check {
            last_peer_check = now;
            if let Ok(pid) = libsys::lookup(PF)
                && pid != pf_pid
            {
                log!("{PF} is pid {pid}");
                pf_pid = pid;
                to_pf.waiter().set_peer(pid);
                // A message may have been published while nobody was woken.
                to_pf.notify_peer();
            }
        }
        if let Some((_, to_udp, udp_pid)) = udp.as_mut() {
            if (*udp_pid == 0 || peer_check)
                && let Ok(pid) = libsys::lookup(udpmsg::SERVICE)
                && pid != *udp_pid
            {
                log!("{} is pid {pid}", udpmsg::SERVICE);
                *udp_pid = pid;
                to_udp.waiter().set_peer(pid);
                to_udp.notify_peer();
            }
            stack.flush_udp(|msgs| match to_udp.send_batch(msgs) {
                Ok(n) => n,
                Err(SendError::Full) => 0,
                Err(e) => {
                    log.channel(udpmsg::IP_TO_UDP, e);
                    0
                }
            });
        }
        if let Some((_, to_tcp, tcp_pid)) = tcp.as_mut() {
            if (*tcp_pid == 0 || peer_check)
                && let Ok(pid) = libsys::lookup(tcpmsg::SERVICE)
                && pid != *tcp_pid
            {
                log!("{} is pid {pid}", tcpmsg::SERVICE);
                *tcp_pid = pid;
                to_tcp.waiter().set_peer(pid);
                to_tcp.notify_peer();
            }
            stack.flush_tcp(|msgs| match to_tcp.send_batch(msgs) {
                Ok(n) => n,
                Err(SendError::Full) => 0,
                Err(e) => {
                    log.channel(tcpmsg::IP_TO_TCP, e);
                    0
                }
            });
        }
        stack.flush(|msgs| match to_pf.send_batch(msgs) {
            Ok(n) => n,
            Err(SendError::Full) => 0,
            Err(e) => {
                if let SendError::EpochChanged(c) = e {
                    log!(
                        "{}: epoch {} -> {} ({PF} restarted; {} messages it never read are lost)",
                        chan::IP_TO_PF,
                        c.old_epoch,
                        c.new_epoch,
                        c.count
                    );
                } else {
                    log.channel(chan::IP_TO_PF, e);
                }
                0
            }
        });

        if worked {
            continue;
        }
        // Idle: poll a little, then sleep until pf notifies, a client's message arrives, or the
        // next timer is due.
        let budget = stack.receive_budget(BATCH);
        for _ in 0..SPIN_POLLS {
            ready = receive(&mut from_pf, &mut batch[..budget], &mut stack, &mut log);
            if ready > 0 {
                break;
            }
            core::hint::spin_loop();
        }
        if ready > 0 {
            continue;
        }
        let mut sleep = MAX_SLEEP_NS;
        if let Some(t) = stack.next_deadline() {
            sleep = sleep.min(t.saturating_sub(now).max(1));
        }
        if stack.outbox_len() > 0
            || stack.udp_outbox_len() > 0
            || stack.tcp_outbox_len() > 0
            || pf_pid == 0
        {
            sleep = sleep.min(SHORT_SLEEP_NS);
        }
        // Arm every input; sleep once unless one already has a message.
        let udp_ready = match udp.as_mut() {
            Some((from_udp, _, _)) => !matches!(from_udp.arm(), Ok(false)),
            None => false,
        };
        let tcp_ready = match tcp.as_mut() {
            Some((from_tcp, _, _)) => !matches!(from_tcp.arm(), Ok(false)),
            None => false,
        };
        match from_pf.arm() {
            Ok(false) if !udp_ready && !tcp_ready => {
                let _ = libsys::wait(Some(sleep));
            }
            Ok(_) => {}
            Err(e) => {
                stack.stats_mut().channel_errors += 1;
                log.channel(chan::PF_TO_IP, e);
                let _ = libsys::wait(Some(sleep));
            }
        }
        from_pf.disarm();
        if let Some((from_udp, _, _)) = udp.as_mut() {
            from_udp.disarm();
        }
        if let Some((from_tcp, _, _)) = tcp.as_mut() {
            from_tcp.disarm();
        }
    }
}
