//! The packet filter server's loop body with its system calls, for the `pf` program
//! (`src/main.rs`) and for the single layout's `netstack` (servers/netstack), which runs it
//! beside ip, udp and tcp in one process.
//!
//! At start it maps the rx-pool and the tx-pool (views: e1000 owns the one, ip the other),
//! attaches to its four channels, and loads its rules from the state region `pf-state` (kept by
//! the kernel across a restart). Then the caller loops:
//!
//! - **forward** ([`Server::round`]): one round of the path — up to 32 messages from each
//!   input, judged and sent on;
//! - **control**: when its status page's mail word says a request was queued (a memory read
//!   each round, no system call; `libsys::MailWatch`), it takes the shell's requests with a
//!   zero-timeout `ipc_recv` and answers each with `ipc_reply`, saving the rules after every
//!   change; it never blocks in a receive (in netstack, the dispatcher receives them and hands
//!   pf's to [`Server::answer`]);
//! - **peers**: e1000 and ip are looked up by name until they exist, and again whenever a
//!   notify to one fails (it died or was replaced);
//! - **idle** ([`Server::arm`]): after [`Server::spin_turns`] empty rounds the chores
//!   (refusals reported at most every millisecond, lookups every second), then both inputs
//!   armed and, if neither had a message, one sleep of at most [`Server::sleep_ns`]: a
//!   producer's notify, a queued request or the timeout wakes it.
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use libchan::{Consumer, PoolView, Producer, Waiter};
use libsys::{Error, MapInfo, Message, log};
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, chan};
use pf::RuleSet;
use pf::state::{self, Restored};

use crate::ctl;
use crate::path::{Channel, Event, Path, Peer};

/// The state region the kernel keeps across restarts.
const STATE_REGION: &str = "pf-state";
/// Empty turns before pf arms its inputs and sleeps, on a CPU of its own or not. Short: where
/// emulated CPUs share host cores, a pf spinning for its peer keeps that peer off a core (4,000
/// turns on a CPU of its own cost the split layout about a fifth of its throughput; README
/// "cargo xtask bench").
const SPIN_TURNS: u32 = 64;
/// Idle, refusals are reported at most this often.
const IDLE_CHORES_NS: u64 = 1_000_000;
/// Idle, the peers are looked up this often (at once while one is missing).
const IDLE_LOOKUP_NS: u64 = 1_000_000_000;
/// Longest sleep when idle. Messages from the peers and IPC requests wake pf, and rs does not
/// count a timed sleep as a hang; the timers below end it sooner ([`idle_deadline`]).
const IDLE_WAIT_NS: u64 = 1_000_000_000;
/// Longest sleep while a peer is missing (it is looked up at every wake-up meanwhile).
const MISSING_WAIT_NS: u64 = 100_000_000;
/// Sleep while messages wait for room in an output ring.
const HOLD_WAIT_NS: u64 = 1_000_000;
/// Turns between reports of refusals while busy.
const CONTROL_EVERY: u64 = 64;
/// Turns between lookups of a missing peer while busy.
const LOOKUP_EVERY: u64 = 4096;
/// Most requests answered per poll.
const REQUESTS_PER_POLL: usize = 8;
/// Refusals are logged at most this often.
const REFUSAL_LOG_NS: u64 = 1_000_000_000;

/// The waiter of the channel ends towards one peer: `wait` is the kernel's; `notify` wakes the
/// peer and remembers a failure, after which pf looks the peer up again. (libsys's `SysWaiter`
/// hides the failure.)
struct PeerWaiter {
    peer: AtomicU32,
    lost: AtomicBool,
}

impl PeerWaiter {
    const fn new() -> Self {
        Self {
            peer: AtomicU32::new(0),
            lost: AtomicBool::new(true),
        }
    }

    fn needs_lookup(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    fn set_peer(&self, pid: u32) {
        self.peer.store(pid, Ordering::Relaxed);
        self.lost.store(false, Ordering::Relaxed);
    }

    fn peer(&self) -> u32 {
        self.peer.load(Ordering::Relaxed)
    }
}

impl Waiter for PeerWaiter {
    fn wait(&self, timeout_ns: Option<u64>) {
        // A failed wait only means we poll again.
        let _ = libsys::wait(timeout_ns);
    }

    fn notify(&self) {
        let peer = self.peer();
        if peer != 0 && libsys::notify(peer).is_err() {
            self.peer.store(0, Ordering::Relaxed);
            self.lost.store(true, Ordering::Relaxed);
        }
    }
}

static DRIVER: PeerWaiter = PeerWaiter::new();
static IP: PeerWaiter = PeerWaiter::new();

fn waiter(peer: Peer) -> &'static PeerWaiter {
    match peer {
        Peer::Driver => &DRIVER,
        Peer::Ip => &IP,
    }
}

type W = &'static PeerWaiter;

fn map(name: &'static str) -> Result<MapInfo, &'static str> {
    libsys::map(name).map_err(|e| {
        log!("map({name}): {e}");
        "a region of the data path is not granted (pf needs rx-pool, tx-pool, e1000-pf, pf-e1000, ip-pf, pf-ip)"
    })
}

fn pool(name: &'static str, id: u16) -> Result<PoolView<'static>, &'static str> {
    let info = map(name)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process; the
    // pool's owner and the other hops map them too, which is what a pool is for: pf touches them
    // only through the view.
    unsafe { PoolView::new(id, info.addr as *mut u8, info.len as usize, BUFFER_SIZE) }
        .map_err(|_| "a pool region holds no buffer")
}

fn consumer(name: &'static str, peer: Peer) -> Result<Consumer<'static, W>, &'static str> {
    let info = map(name)?;
    // Safety: the kernel mapped the channel region for the life of the process and wrote its
    // header; the manifest makes pf the only consumer of this channel.
    let mut c = unsafe { Consumer::attach(info.addr as *mut u8, info.len as usize, waiter(peer)) }
        .map_err(|_| "a channel region is not a channel")?;
    if libsys::chan::kernel_ipc() {
        c.set_gate(&libsys::chan::KERNEL_GATE);
    }
    Ok(c)
}

fn producer(name: &'static str, peer: Peer) -> Result<Producer<'static, W>, &'static str> {
    let info = map(name)?;
    // Safety: as in `consumer`; pf is the only producer of this channel.
    let mut p = unsafe { Producer::attach(info.addr as *mut u8, info.len as usize, waiter(peer)) }
        .map_err(|_| "a channel region is not a channel")?;
    if libsys::chan::kernel_ipc() {
        p.set_gate(&libsys::chan::KERNEL_GATE);
    }
    Ok(p)
}

/// The state region, when the manifest grants one big enough.
fn state_region() -> Option<&'static mut [u8]> {
    match libsys::map(STATE_REGION) {
        Ok(info) if info.len as usize >= state::REGION_LEN => {
            // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the
            // process; the region has a single owner (the manifest gives it to pf alone), so
            // nothing else reads or writes it, and this is the only slice made of it.
            Some(unsafe {
                core::slice::from_raw_parts_mut(info.addr as *mut u8, info.len as usize)
            })
        }
        Ok(info) => {
            log!(
                "WARNING: {STATE_REGION} has {} bytes, the rules need {}: they will not survive a restart of pf",
                info.len,
                state::REGION_LEN
            );
            None
        }
        Err(e) => {
            log!(
                "WARNING: cannot map {STATE_REGION} ({e}): the rules will not survive a restart of pf"
            );
            None
        }
    }
}

/// The rules the state region holds; none on a first start or when it is damaged (loudly).
fn load_rules(region: Option<&[u8]>) -> RuleSet {
    let Some(region) = region else {
        return RuleSet::new();
    };
    match state::load(region) {
        Ok(Restored::Fresh) => {
            log!("no saved rules (first start): every packet allowed");
            RuleSet::new()
        }
        Ok(Restored::Loaded {
            rules,
            sequence,
            discarded,
        }) => {
            log!(
                "restored {} rules from {STATE_REGION} (image {sequence})",
                rules.len()
            );
            if let Some(e) = discarded {
                log!(
                    "WARNING: the other image in {STATE_REGION} is damaged ({e}): the last rule change before the restart may be lost"
                );
            }
            rules
        }
        Err(e) => {
            log!(
                "ERROR: {STATE_REGION} holds no valid rule set ({e}): starting with NO RULES, every packet allowed; enter the rules again with `pf add`"
            );
            RuleSet::new()
        }
    }
}

/// What the control side keeps.
struct Control {
    region: Option<&'static mut [u8]>,
    generation: u32,
    recv_failed: bool,
    reply_failures: u64,
}

impl Control {
    /// Answers the requests waiting, up to [`REQUESTS_PER_POLL`], without blocking. True when
    /// none is left (or the receive failed), false when it stopped at the limit.
    fn serve(&mut self, rules: &mut RuleSet, path: &Path<'static, W>) -> bool {
        for _ in 0..REQUESTS_PER_POLL {
            let mut request: Message = [0; ctl::MSG_LEN];
            let from = match libsys::ipc_recv(&mut request, Some(0)) {
                Ok(pid) => pid,
                Err(Error::TimedOut) => return true,
                Err(e) => {
                    if !self.recv_failed {
                        self.recv_failed = true;
                        log!("polling for control requests failed: {e}");
                    }
                    return true;
                }
            };
            let reply = self.answer(from, &request, rules, path);
            if let Err(e) = libsys::ipc_reply(from, &reply) {
                self.reply_failures += 1;
                if self.reply_failures <= 4 || self.reply_failures.is_power_of_two() {
                    log!(
                        "could not answer pid {from}: {e} (it gave up waiting, or sent without calling; {} so far)",
                        self.reply_failures
                    );
                }
            }
        }
        false
    }
}

impl Control {
    /// The answer to `request` from `from`; a rule change is saved and logged.
    fn answer(
        &mut self,
        from: u32,
        request: &Message,
        rules: &mut RuleSet,
        path: &Path<'static, W>,
    ) -> Message {
        let region = &mut self.region;
        let reply = ctl::serve(
            request,
            rules,
            &mut self.generation,
            &path.counters(),
            |set| {
                region
                    .as_deref_mut()
                    .is_some_and(|r| state::save(r, set).is_ok())
            },
        );
        log_change(from, &reply);
        reply
    }
}

/// Logs a rule change that `reply` reports.
fn log_change(from: u32, reply: &ctl::Msg) {
    let Some(h) = ctl::ReplyHeader::decode(reply) else {
        return;
    };
    if h.status != ctl::status::OK || !matches!(h.op, ctl::op::ADD | ctl::op::DEL) {
        return;
    }
    let r = ctl::RuleReply::decode(reply);
    let Ok(rule) = state::decode_rule(&r.record) else {
        return;
    };
    let what = if h.op == ctl::op::ADD {
        "added"
    } else {
        "deleted"
    };
    let saved = if h.flags & ctl::FLAG_NOT_SAVED != 0 {
        " (NOT SAVED: lost if pf restarts)"
    } else {
        ""
    };
    log!(
        "pid {from} {what} rule {}: {rule}; {} rules now{saved}",
        r.number,
        h.rules
    );
}

/// Looks up the peers whose pid is unknown or whose notify failed; wakes a peer found (a
/// wake-up may have gone to nobody meanwhile).
fn find_peers(path: &mut Path<'static, W>, reported_missing: &mut [bool; 2]) {
    for (i, peer) in [Peer::Driver, Peer::Ip].into_iter().enumerate() {
        let w = waiter(peer);
        if !w.needs_lookup() {
            continue;
        }
        match libsys::lookup(peer.name()) {
            Ok(pid) => {
                let old = w.peer();
                w.set_peer(pid);
                if pid != old {
                    log!("{} is pid {pid}", peer.name());
                }
                reported_missing[i] = false;
                path.notify(peer);
            }
            Err(_) if !reported_missing[i] => {
                reported_missing[i] = true;
                log!("{} not running yet; looking for it", peer.name());
            }
            Err(_) => {}
        }
    }
}

/// Logging of what the path reports: refusals at most once a second, epoch changes always,
/// broken channels the first few times and then at powers of two.
#[derive(Default)]
struct EventLog {
    refused_pending: u64,
    last_refusal: Option<Event>,
    next_refusal_log_ns: u64,
    broken: u64,
}

impl EventLog {
    fn note(&mut self, e: Event) {
        match e {
            Event::Refused { .. } => {
                self.refused_pending += 1;
                self.last_refusal = Some(e);
            }
            Event::EpochChanged { channel, change } => {
                let (peer, what) = match channel {
                    Channel::FromDriver => ("e1000", "it sent were never read (discarded)"),
                    Channel::FromIp => ("ip", "it sent were never read (discarded)"),
                    Channel::ToDriver => (
                        "e1000",
                        "pf sent were never taken (pf recovers their buffers)",
                    ),
                    Channel::ToIp => ("ip", "pf sent were never taken (pf recovers their buffers)"),
                };
                log!(
                    "{} epoch {} -> {}: {peer} restarted; {} messages {what}",
                    channel.name(),
                    change.old_epoch,
                    change.new_epoch,
                    change.count
                );
            }
            Event::ChannelBroken { channel, bad_magic } => {
                self.broken += 1;
                if self.broken <= 4 || self.broken.is_power_of_two() {
                    log!(
                        "{} refused an operation: {} ({} times)",
                        channel.name(),
                        if bad_magic {
                            "its header was overwritten"
                        } else {
                            "the peer's index jumped"
                        },
                        self.broken
                    );
                }
            }
        }
    }

    /// Logs the refusals noted since the last report, if a second has passed.
    fn report(&mut self, total: u64) {
        if self.refused_pending == 0 {
            return;
        }
        let now = libsys::time_ns();
        if now < self.next_refusal_log_ns {
            return;
        }
        if let Some(Event::Refused { from, tag, why }) = self.last_refusal {
            log!(
                "refused {} messages ({total} since start); the last from {}: tag {tag:#x}, {why:?}",
                self.refused_pending,
                from.name()
            );
        }
        self.refused_pending = 0;
        self.next_refusal_log_ns = now + REFUSAL_LOG_NS;
    }
}

/// What an idle pf must wake for besides its inputs.
#[derive(Debug, Default, Clone, Copy)]
struct IdleTimers {
    /// A peer was not found at the last lookup: look again soon.
    missing: bool,
    /// When a lost peer (its last notify failed) is looked up next, ns since boot.
    next_lookup: Option<u64>,
    /// When the refusals noted but not yet logged are logged, ns since boot.
    refusal_report: Option<u64>,
}

/// When an idle pf wakes at the latest, ns since boot, from `now`: in [`IDLE_WAIT_NS`], within
/// [`MISSING_WAIT_NS`] while a peer is missing, and at its timers; never before `now + 1`.
fn idle_deadline(now: u64, t: &IdleTimers) -> u64 {
    let mut at = now.saturating_add(IDLE_WAIT_NS);
    if t.missing {
        at = at.min(now.saturating_add(MISSING_WAIT_NS));
    }
    for timer in [t.next_lookup, t.refusal_report].into_iter().flatten() {
        at = at.min(timer);
    }
    at.max(now.saturating_add(1))
}

pub use libsys::chan::Ipc;

/// The packet filter server: the path, the rules, the control side, the timers.
pub struct Server {
    path: Path<'static, W>,
    rules: RuleSet,
    control: Control,
    events: EventLog,
    missing: [bool; 2],
    turn: u64,
    last_chores: u64,
    last_lookup: u64,
    ipc: Ipc,
    mail: libsys::MailWatch,
}

impl Server {
    /// Maps the pools and channels, loads the rules, looks the peers up.
    pub fn start(ipc: Ipc) -> Result<Self, &'static str> {
        let rx_pool = pool(RX_POOL, RX_POOL_ID)?;
        let tx_pool = pool(TX_POOL, TX_POOL_ID)?;
        let mut path = Path::new(
            rx_pool,
            tx_pool,
            consumer(chan::DRIVER_TO_PF, Peer::Driver)?,
            producer(chan::PF_TO_DRIVER, Peer::Driver)?,
            consumer(chan::IP_TO_PF, Peer::Ip)?,
            producer(chan::PF_TO_IP, Peer::Ip)?,
        );
        let region = state_region();
        let rules = load_rules(region.as_deref());
        let control = Control {
            region,
            generation: 0,
            recv_failed: false,
            reply_failures: 0,
        };
        let (rx, tx) = path.pool_buffers();
        if (rx + tx) as usize > path.held_capacity() {
            log!(
                "WARNING: the pools hold {} buffers, pf's queues {}: a peer that stops reading can make pf stop reading too",
                rx + tx,
                path.held_capacity()
            );
        }
        let me = libsys::self_info().ok();
        let dedicated = me.is_some_and(|p| p.dedicated != 0);
        log!(
            "pf filtering between e1000 and ip: rx-pool {rx} buffers, tx-pool {tx} buffers, {} rules; cpu {} {}",
            rules.len(),
            me.map_or(0, |p| p.cpu),
            if dedicated { "to itself" } else { "shared" }
        );
        let mut missing = [false; 2];
        find_peers(&mut path, &mut missing);
        Ok(Self {
            path,
            rules,
            control,
            events: EventLog::default(),
            missing,
            turn: 0,
            last_chores: 0,
            last_lookup: 0,
            ipc,
            mail: libsys::MailWatch::default(),
        })
    }

    /// Empty rounds before the caller arms the inputs and sleeps ([`SPIN_TURNS`]).
    pub fn spin_turns(&self) -> u32 {
        SPIN_TURNS
    }

    /// True when pf holds nothing for a peer: a quiet point for a live update (the rules are
    /// in pf-state already).
    pub fn quiet(&self) -> bool {
        self.path.holding() == 0
    }

    /// One round of the path; true when it moved anything.
    pub fn round(&mut self) -> bool {
        self.turn = self.turn.wrapping_add(1);
        let events = &mut self.events;
        let round = self.path.round(&mut self.rules, &mut |e| events.note(e));
        self.serve();
        if self.turn.is_multiple_of(CONTROL_EVERY) {
            self.events.report(self.path.counters().refused_total());
        }
        if self.turn.is_multiple_of(LOOKUP_EVERY) {
            find_peers(&mut self.path, &mut self.missing);
        }
        !round.is_idle()
    }

    /// Takes the shell's requests when the status page says one was queued.
    fn serve(&mut self) {
        if self.ipc == Ipc::Own {
            let Self {
                control,
                rules,
                path,
                mail,
                ..
            } = self;
            mail.poll(|| control.serve(rules, path));
        }
    }

    /// Idle: the chores first (refusals reported at most every millisecond, lookups every
    /// second — a lookup is a system call, and under load pf goes idle between most frames),
    /// then both inputs armed. True when one has a message already (do not sleep).
    pub fn arm(&mut self) -> bool {
        let now = libsys::time_ns();
        if now.saturating_sub(self.last_chores) >= IDLE_CHORES_NS {
            self.last_chores = now;
            self.events.report(self.path.counters().refused_total());
        }
        if now.saturating_sub(self.last_lookup) >= IDLE_LOOKUP_NS || self.missing.iter().any(|&m| m)
        {
            self.last_lookup = now;
            find_peers(&mut self.path, &mut self.missing);
        }
        let events = &mut self.events;
        !self.path.arm(&mut |e| events.note(e))
    }

    /// The longest the caller may sleep: short while messages wait for room in a ring, else
    /// until the next timer ([`idle_deadline`]).
    pub fn sleep_ns(&self) -> u64 {
        if self.path.holding() > 0 {
            return HOLD_WAIT_NS;
        }
        let now = libsys::time_ns();
        let lost = [Peer::Driver, Peer::Ip]
            .into_iter()
            .any(|p| waiter(p).needs_lookup());
        let timers = IdleTimers {
            missing: self.missing.iter().any(|&m| m),
            next_lookup: lost.then(|| self.last_lookup.saturating_add(IDLE_LOOKUP_NS)),
            // `arm` reports them when both their time and the chores' have come.
            refusal_report: (self.events.refused_pending > 0).then_some(
                self.events
                    .next_refusal_log_ns
                    .max(self.last_chores.saturating_add(IDLE_CHORES_NS)),
            ),
        };
        idle_deadline(now, &timers) - now
    }

    /// Disarms the inputs after a sleep (a request that woke us is taken by the next round).
    pub fn disarm(&mut self) {
        self.path.disarm();
    }

    /// The answer to a control request (`ctl`) that a dispatcher received for pf from `from`.
    pub fn answer(&mut self, from: u32, request: &Message) -> Message {
        self.control
            .answer(from, request, &mut self.rules, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::{IDLE_WAIT_NS, IdleTimers, MISSING_WAIT_NS, idle_deadline};

    #[test]
    fn idle_pf_wakes_for_its_timers_only() {
        let now = 5_000_000_000;
        let none = IdleTimers::default();
        assert_eq!(
            idle_deadline(now, &none),
            now + IDLE_WAIT_NS,
            "nothing due: the longest"
        );
        let missing = IdleTimers {
            missing: true,
            ..none
        };
        assert_eq!(idle_deadline(now, &missing), now + MISSING_WAIT_NS);
        let lookup = IdleTimers {
            next_lookup: Some(now + 300),
            ..none
        };
        assert_eq!(
            idle_deadline(now, &lookup),
            now + 300,
            "a lost peer's lookup"
        );
        let report = IdleTimers {
            refusal_report: Some(now + 7_000),
            next_lookup: Some(now + 9_000),
            ..none
        };
        assert_eq!(
            idle_deadline(now, &report),
            now + 7_000,
            "the earliest timer"
        );
        let past = IdleTimers {
            refusal_report: Some(now - 10),
            ..none
        };
        assert_eq!(
            idle_deadline(now, &past),
            now + 1,
            "a timer already due: wake at once"
        );
    }
}
