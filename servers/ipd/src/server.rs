//! The ip server's loop body with its system calls, for the `ip` program (`src/main.rs`) and
//! for the single layout's `netstack` (servers/netstack), which runs it beside pf, udp and tcp
//! in one process (README.md; docs/netpath.md). Arguments: none (the static configuration: the
//! state region's, or QEMU user networking's by default), or `dhcp` (the address comes from a
//! DHCP server; see [`crate::stack`]).
//!
//! At start it maps the rx-pool (a view: the driver owns it), the tx-pool (which it owns), its
//! state region `ip-state` (the configuration, kept across restarts) and the channels `pf-ip`
//! (it consumes) and `ip-pf` (it produces), and asks the e1000 driver for the MAC address over
//! the driver's statistics protocol. Each round ([`Server::round`]): a batch of up to 32
//! messages from pf, IPC requests (`ipc_recv` with a zero timeout; in netstack the dispatcher
//! receives them and hands ip's to [`Server::request`]), the timers (ARP, ping timeouts), the
//! replies to clients (`ipc_reply`), the outbox to pf. Idle, the caller arms the inputs
//! ([`Server::arm`]) and sleeps until pf's notify, a client's message or the next timer
//! ([`Server::sleep_ns`], 100 ms at most; DHCP's timers are among them). It writes the
//! configuration to `ip-state` whenever the stack changes it (a DHCP lease, or its loss).

use alloc::vec::Vec;

use crate::Stack;
use crate::stack::{Notice, Refusal};
use e1000::proto as driver;
use libchan::{
    BufferPool, Consumer, EpochChange, Message as ChanMessage, PoolView, Producer, RecvError,
    SendError,
};
use libsys::chan::SysWaiter;
use libsys::{Error, Message, log};
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, chan};
use netproto::config::{self, ConfigError, IpConfig};
use netproto::dhcp::MessageType;
use netproto::{Mac, arp};

/// The process the channels lead to.
const PF: &str = "pf";
/// The state region: the configuration, kept by the kernel across restarts.
const STATE_REGION: &str = "ip-state";
/// Most messages read from pf in one round.
const BATCH: usize = 32;
/// Longest sleep. Messages from the peers and IPC requests wake ip, rs does not count a timed
/// sleep as a hang, and every timer of the stack is in `Stack::next_deadline`.
const MAX_SLEEP_NS: u64 = 1_000_000_000;
/// Longest sleep while a transport server is not found (it is looked up at every round).
const LOOKUP_SLEEP_NS: u64 = 100_000_000;
/// Sleep while the outbox waits for room in ip-pf, or while pf is not found yet.
const SHORT_SLEEP_NS: u64 = 1_000_000;
/// Most IPC requests taken in one round.
const IPC_PER_ROUND: usize = 8;
/// How long to wait for the driver's answer to the status request.
const DRIVER_REPLY_NS: u64 = 2_000_000_000;
/// Requests from clients that arrive while the driver is asked, kept for later.
const MAX_EARLY_REQUESTS: usize = 16;

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
/// fresh (never written) or damaged — said loudly — and then written back. With `dhcp` the
/// stack decides what of it to keep ([`ipd::Stack::start_dhcp`]); without, a configuration
/// that came from DHCP is not used.
fn load_config(dhcp: bool) -> Result<(&'static mut [u8], IpConfig), &'static str> {
    let info = map(STATE_REGION)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process,
    // and only this process lists the region in the manifest.
    let region =
        unsafe { core::slice::from_raw_parts_mut(info.addr as *mut u8, info.len as usize) };
    if region.len() < config::STATE_LEN {
        return Err("ip-state is smaller than the configuration layout");
    }
    let config = match IpConfig::load(region) {
        Ok(c) if dhcp || !c.from_dhcp => {
            log!("configuration from {STATE_REGION} (kept across a restart)");
            return Ok((region, c));
        }
        Ok(_) => {
            log!(
                "{STATE_REGION} holds a DHCP lease but ip runs without 'dhcp': default configuration (QEMU user networking)"
            );
            IpConfig::default()
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

/// Where in ip-state the MAC address is kept (after the configuration), behind a magic word.
const MAC_AT: usize = 1024;
const MAC_MAGIC: [u8; 8] = *b"IPMAC\x00\x00\x01";
const _: () = assert!(
    config::STATE_LEN <= MAC_AT,
    "the configuration would overlap the MAC"
);

/// The MAC address saved in ip-state by an earlier instance, if any.
fn saved_mac(region: &[u8]) -> Option<Mac> {
    let r = region.get(MAC_AT..MAC_AT + 14)?;
    if r[..8] != MAC_MAGIC {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&r[8..14]);
    // A broadcast, multicast or zero address is no NIC's: ask the driver instead.
    (mac != [0; 6] && mac[0] & 1 == 0).then_some(Mac(mac))
}

fn save_mac(region: &mut [u8], mac: Mac) {
    if let Some(r) = region.get_mut(MAC_AT..MAC_AT + 14) {
        r[..8].copy_from_slice(&MAC_MAGIC);
        r[8..14].copy_from_slice(&mac.0);
    }
}

/// Where in ip-state the neighbours (the ARP cache) are kept, after the MAC address.
const NEIGHBOURS_AT: usize = 2048;
const _: () = assert!(
    MAC_AT + 14 <= NEIGHBOURS_AT,
    "the MAC would overlap the neighbours"
);

/// Learns the neighbours an earlier instance saved in ip-state, so that a restarted ip sends at
/// once instead of asking ARP again (meanwhile it could only hold or drop what TCP sends).
fn restore_neighbours(region: &[u8], stack: &mut Stack<'_>) {
    let now_ms = libsys::time_ns() / 1_000_000;
    match region
        .get(NEIGHBOURS_AT..)
        .map(|b| arp::load_neighbours(b, now_ms))
    {
        Some(Ok((list, skipped))) => {
            if !list.is_empty() || skipped > 0 {
                log!(
                    "{} neighbour(s) from {STATE_REGION}{}",
                    list.len(),
                    if skipped > 0 {
                        alloc::format!(" ({skipped} unusable left out)")
                    } else {
                        alloc::string::String::new()
                    }
                );
            }
            stack.restore_neighbours(&list);
        }
        Some(Err(arp::SavedError::NoMagic)) | None => {}
        Some(Err(e)) => log!("neighbours in {STATE_REGION} unusable ({e}): asking ARP again"),
    }
}

/// Saves the neighbours worth keeping in ip-state.
fn save_neighbours(region: &mut [u8], stack: &Stack<'_>) {
    if let Some(r) = region.get_mut(NEIGHBOURS_AT..NEIGHBOURS_AT + arp::SAVED_LEN) {
        let mut table = [0u8; arp::SAVED_LEN];
        arp::save_neighbours(&stack.neighbours_to_save(libsys::time_ns()), &mut table);
        r.copy_from_slice(&table);
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
                            &crate::proto::status_reply(crate::proto::Status::Busy),
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

/// "none", or the address.
fn or_none(a: Option<core::net::Ipv4Addr>) -> alloc::string::String {
    a.map_or(alloc::string::String::from("none"), |a| {
        alloc::format!("{a}")
    })
}

impl NoticeLog {
    fn log(&mut self, n: Notice) {
        match n {
            // DHCP's notices are few by construction (the client's backoff): all are logged.
            Notice::DhcpSent {
                message,
                attempt,
                configured,
                retry_ms,
            } => {
                let state = if configured {
                    "address in force"
                } else {
                    "no lease yet"
                };
                let message = match message {
                    MessageType::Discover => "DISCOVER",
                    MessageType::Request => "REQUEST",
                    _ => "message",
                };
                log!(
                    "dhcp: {message} sent (attempt {attempt}, {state}); trying again in {} s if nothing comes",
                    retry_ms / 1000
                );
            }
            Notice::DhcpLeased {
                address,
                gateway,
                dns,
                server,
                secs,
                renew_secs,
                after_ms,
            } => log!(
                "dhcp: leased {address} gateway {} dns {} from {server} for {secs} s (renewal in {renew_secs} s), {after_ms} ms after the first message",
                or_none(gateway),
                or_none(dns)
            ),
            Notice::DhcpLost { address } => log!(
                "dhcp: {address} given up (the lease ended or the server refused it): no address, looking for a new lease"
            ),
            Notice::DhcpResumed { address, secs_left } => log!(
                "dhcp: keeping {address} from {STATE_REGION} (lease ends in {secs_left} s); asking the server to confirm it"
            ),
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

/// The newest epoch seen on each neighbour's channels: both channels of a pair report a
/// restart, which must be handled once.
#[derive(Default)]
struct Epochs {
    pf: u32,
}

/// True the first time `c` reports a restart newer than `seen`.
fn newer(seen: &mut u32, c: &EpochChange) -> bool {
    if c.new_epoch > *seen {
        *seen = c.new_epoch;
        true
    } else {
        false
    }
}

/// The epoch change a receive error reports, if it is one.
fn epoch_change(e: &RecvError) -> Option<EpochChange> {
    match e {
        RecvError::EpochChanged(c) => Some(*c),
        _ => None,
    }
}

/// A transport server ip serves (udp, tcp), and what of the stack belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Udp,
    Tcp,
}

impl Kind {
    fn service(self) -> &'static str {
        match self {
            Kind::Udp => udpmsg::SERVICE,
            Kind::Tcp => tcpmsg::SERVICE,
        }
    }

    /// The channels from the server and to it.
    fn channels(self) -> (&'static str, &'static str) {
        match self {
            Kind::Udp => (udpmsg::UDP_TO_IP, udpmsg::IP_TO_UDP),
            Kind::Tcp => (tcpmsg::TCP_TO_IP, tcpmsg::IP_TO_TCP),
        }
    }

    fn handle(self, stack: &mut Stack<'static>, m: &ChanMessage, now: u64) {
        match self {
            Kind::Udp => stack.handle_udp(m, now),
            Kind::Tcp => stack.handle_tcp(m, now),
        }
    }

    fn restarted(self, stack: &mut Stack<'static>) {
        match self {
            Kind::Udp => stack.udp_restarted(),
            Kind::Tcp => stack.tcp_restarted(),
        }
    }

    fn flush(self, stack: &mut Stack<'static>, send: impl FnMut(&[ChanMessage]) -> usize) {
        match self {
            Kind::Udp => stack.flush_udp(send),
            Kind::Tcp => stack.flush_tcp(send),
        }
    }
}

/// A transport server's channel pair, its pid (0 until found) and the newest epoch seen on the
/// pair (both channels report a restart, which is handled once).
struct TransportEnd {
    kind: Kind,
    from: Consumer<'static, SysWaiter>,
    to: Producer<'static, SysWaiter>,
    pid: u32,
    epoch: u32,
}

impl TransportEnd {
    /// The channels of `kind`'s server, when the manifest grants them (they are optional:
    /// without them its protocol is dropped).
    fn attach(kind: Kind, stack: &mut Stack<'static>) -> Option<Self> {
        let (from, to) = kind.channels();
        let (Ok(from_end), Ok(to_end)) = (
            libsys::chan::consumer(from, SysWaiter::new(0)),
            libsys::chan::producer(to, SysWaiter::new(0)),
        ) else {
            return None;
        };
        match kind {
            Kind::Udp => stack.attach_udp(),
            Kind::Tcp => stack.attach_tcp(),
        }
        log!("{} server channels {to} and {from}", kind.service());
        Some(Self {
            kind,
            from: from_end,
            to: to_end,
            pid: 0,
            epoch: 0,
        })
    }

    /// True the first time `change` reports a restart newer than the last seen; logs it.
    fn restarted(&mut self, change: Option<EpochChange>) -> bool {
        let restarted = change.is_some_and(|c| newer(&mut self.epoch, &c));
        if restarted {
            log!(
                "{} restarted: taking back what it held",
                self.kind.service()
            );
        }
        restarted
    }

    /// Reads a batch from the server into the stack; returns how many.
    fn take(
        &mut self,
        stack: &mut Stack<'static>,
        batch: &mut [ChanMessage],
        log: &mut NoticeLog,
        now: u64,
    ) -> usize {
        // Each message may add two to pf's outbox.
        let budget = stack.udp_receive_budget(batch.len());
        let n = match self.from.recv_batch(&mut batch[..budget]) {
            Ok(n) => n,
            Err(e) => {
                stack.stats_mut().channel_errors += 1;
                if self.restarted(epoch_change(&e)) {
                    // Looked up again before anything is sent to the new instance.
                    self.pid = 0;
                    self.kind.restarted(stack);
                }
                log.channel(self.kind.channels().0, e);
                0
            }
        };
        for m in &batch[..n] {
            self.kind.handle(stack, m, now);
        }
        n
    }

    /// Looks the server up when it is unknown, then sends it what waits for it.
    fn give(&mut self, stack: &mut Stack<'static>, log: &mut NoticeLog) {
        let service = self.kind.service();
        if self.pid == 0
            && let Ok(found) = libsys::lookup(service)
        {
            log!("{service} is pid {found}");
            self.pid = found;
            self.to.waiter().set_peer(found);
            self.to.notify_peer();
        }
        let mut changed = None;
        let (to, channel) = (&mut self.to, self.kind.channels().1);
        self.kind.flush(stack, |msgs| match to.send_batch(msgs) {
            Ok(n) => n,
            Err(SendError::Full) => 0,
            Err(e) => {
                if let SendError::EpochChanged(c) = e {
                    changed = Some(c);
                }
                log.channel(channel, e);
                0
            }
        });
        if self.restarted(changed) {
            self.pid = 0;
            self.kind.restarted(stack);
        }
    }

    /// Arms the input; true when a message (or an error) is there already.
    fn arm(&mut self) -> bool {
        !matches!(self.from.arm(), Ok(false))
    }
}

/// Reads up to `out.len()` messages from pf.
fn receive(
    from_pf: &mut Consumer<'static, SysWaiter>,
    out: &mut [ChanMessage],
    stack: &mut Stack<'static>,
    log: &mut NoticeLog,
    epochs: &mut Epochs,
    pf_pid: &mut u32,
) -> usize {
    match from_pf.recv_batch(out) {
        Ok(n) => n,
        Err(e) => {
            stack.stats_mut().channel_errors += 1;
            if let RecvError::EpochChanged(c) = e {
                if newer(&mut epochs.pf, &c) {
                    // The new instance's pid is looked up before anything is sent to it.
                    *pf_pid = 0;
                    stack.pf_restarted(libsys::time_ns());
                }
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

pub use libsys::chan::Ipc;

/// IPC requests (sender, message) that came while ip started.
pub type Early = Vec<(u32, Message)>;

/// The ip server: the stack, its channels, its state region and timers.
pub struct Server {
    stack: Stack<'static>,
    state: &'static mut [u8],
    from_pf: Consumer<'static, SysWaiter>,
    to_pf: Producer<'static, SysWaiter>,
    /// The transport servers whose channels the manifest grants.
    transports: Vec<TransportEnd>,
    log: NoticeLog,
    batch: [ChanMessage; BATCH],
    ready: usize,
    mail: libsys::MailWatch,
    /// pf's pid: 0 until found, and again when pf restarts (a new epoch on either channel).
    pf_pid: u32,
    driver_pid: u32,
    epochs: Epochs,
    ipc: Ipc,
    /// The ARP cache's version last saved in ip-state.
    neighbours_saved: u64,
}

impl Server {
    /// Keeps tcp lent `credit` tx-pool buffers ([`Stack::set_tcp_credit`]).
    pub fn set_tcp_credit(&mut self, credit: usize) {
        self.stack.set_tcp_credit(credit);
    }

    /// Maps the pools, the state region and the channels, finds the MAC address (ip-state, or
    /// the driver). Returns the server and the IPC requests that arrived while the driver was
    /// asked (for the caller to hand to [`Server::request`], or to its dispatcher).
    pub fn start(dhcp: bool, ipc: Ipc) -> Result<(Self, Early), &'static str> {
        let rx = pool(RX_POOL, RX_POOL_ID)?;
        let tx = BufferPool::new(pool(TX_POOL, TX_POOL_ID)?)
            .map_err(|_| "tx-pool has too many buffers")?;
        let (state, config) = load_config(dhcp)?;
        let from_pf = libsys::chan::consumer(chan::PF_TO_IP, SysWaiter::new(0))
            .map_err(|_| "pf-ip is not a channel region we may consume")?;
        let to_pf = libsys::chan::producer(chan::IP_TO_PF, SysWaiter::new(0))
            .map_err(|_| "ip-pf is not a channel region we may produce into")?;
        let mut early = Vec::new();
        // A restarted ip takes the MAC address it saved: the driver may be down or hung right
        // now (an IPC send to a hung driver would block this start for good).
        let mac = match saved_mac(state) {
            Some(mac) => {
                log!("mac {mac} from {STATE_REGION}");
                mac
            }
            None => {
                let mac = driver_mac(&mut early);
                save_mac(state, mac);
                mac
            }
        };
        let driver_pid = libsys::lookup(driver::SERVICE).unwrap_or(0);
        let (rx_count, tx_count) = (rx.count(), tx.view().count());
        let mut stack = Stack::new(rx, tx, mac, config);
        restore_neighbours(state, &mut stack);
        if dhcp {
            // Before the transport servers attach: their loans wait for an address.
            let now = libsys::time_ns();
            let m = mac.0;
            let seed = (now ^ now >> 32) as u32 ^ u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
            stack.start_dhcp(seed, now);
        }
        // The transport servers' channels are optional: without them their protocols are
        // dropped.
        let transports = [Kind::Udp, Kind::Tcp]
            .into_iter()
            .filter_map(|k| TransportEnd::attach(k, &mut stack))
            .collect();
        let config = *stack.config();
        let address = if stack.is_configured() {
            alloc::format!("{}", config.address)
        } else {
            alloc::string::String::from("no address yet (DHCP)")
        };
        log!(
            "{address} gateway {} mac {mac} mtu {}; rx-pool {rx_count} buffers, tx-pool {tx_count} buffers, channels {} and {}",
            or_none(config.gateway),
            config.mtu,
            chan::PF_TO_IP,
            chan::IP_TO_PF
        );
        let neighbours_saved = stack.neighbours_version();
        let server = Self {
            stack,
            state,
            from_pf,
            to_pf,
            transports,
            log: NoticeLog::default(),
            batch: [ChanMessage::default(); BATCH],
            ready: 0,
            mail: libsys::MailWatch::default(),
            pf_pid: 0,
            driver_pid,
            epochs: Epochs::default(),
            neighbours_saved,
            ipc,
        };
        Ok((server, early))
    }

    /// A client's request (`crate::proto`), received by the caller; the reply goes out with
    /// the next round's.
    pub fn request(&mut self, from: u32, m: &Message) {
        // A late answer of the driver's to the status request.
        if from != self.driver_pid {
            self.stack.request(from, m, libsys::time_ns());
        }
    }

    /// True at a quiet point for a live update (nothing waits in an outbox); the configuration
    /// is written to ip-state first. The MAC is there already, and the neighbours recover the
    /// buffers this instance holds as after any restart.
    pub fn quiet(&mut self) -> bool {
        let quiet = self.ready == 0
            && self.stack.outbox_len() == 0
            && self.stack.udp_outbox_len() == 0
            && self.stack.tcp_outbox_len() == 0;
        if quiet && let Some(c) = self.stack.take_config_change() {
            store_config(self.state, &c);
        }
        quiet
    }

    /// One round; true when it did any work.
    pub fn round(&mut self) -> bool {
        let Self {
            stack,
            state,
            from_pf,
            to_pf,
            transports,
            log,
            batch,
            ready,
            epochs,
            mail,
            neighbours_saved,
            pf_pid,
            ..
        } = self;
        if *ready == 0 {
            let budget = stack.receive_budget(BATCH);
            *ready = receive(from_pf, &mut batch[..budget], stack, log, epochs, pf_pid);
        }
        let now = libsys::time_ns();
        for m in &batch[..*ready] {
            stack.handle(m, now);
        }
        let mut worked = *ready > 0;
        *ready = 0;
        for t in transports.iter_mut() {
            worked |= t.take(stack, batch, log, now) > 0;
        }

        // Only when the status page says a request was queued: no system call otherwise (a
        // request also notifies us, so a sleeping server wakes for it).
        if self.ipc == Ipc::Own {
            let driver_pid = self.driver_pid;
            mail.poll(|| {
                for _ in 0..IPC_PER_ROUND {
                    let mut m: Message = [0; axolotl_abi::IPC_MSG_LEN];
                    match libsys::ipc_recv(&mut m, Some(0)) {
                        // A late answer of the driver's to the status request.
                        Ok(from) if from == driver_pid => {}
                        Ok(from) => stack.request(from, &m, now),
                        Err(_) => return true,
                    }
                }
                false
            });
        }
        if stack.next_deadline().is_some_and(|t| t <= now) {
            stack.tick(now);
        }
        stack.sweep_lost_tx(now);
        for (to, m) in stack.take_replies() {
            // Fails only when the caller gave up waiting (or died): nothing to do.
            let _ = libsys::ipc_reply(to, &m);
        }
        for n in stack.take_notices() {
            log.log(n);
        }
        if let Some(c) = stack.take_config_change() {
            store_config(state, &c);
        }
        if stack.neighbours_version() != *neighbours_saved {
            *neighbours_saved = stack.neighbours_version();
            save_neighbours(state, stack);
        }

        // A peer's pid is looked up while unknown: a restart (a new epoch on either channel)
        // forgets it.
        if self.pf_pid == 0
            && let Ok(pid) = libsys::lookup(PF)
        {
            log!("{PF} is pid {pid}");
            self.pf_pid = pid;
            to_pf.waiter().set_peer(pid);
            // A message may have been published while nobody was woken.
            to_pf.notify_peer();
        }
        for t in transports.iter_mut() {
            t.give(stack, log);
        }
        let mut changed = None;
        stack.flush(|msgs| match to_pf.send_batch(msgs) {
            Ok(n) => n,
            Err(SendError::Full) => 0,
            Err(e) => {
                if let SendError::EpochChanged(c) = e {
                    changed = Some(c);
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
        if let Some(c) = changed
            && newer(&mut epochs.pf, &c)
        {
            self.pf_pid = 0;
            stack.pf_restarted(libsys::time_ns());
        }
        worked
    }

    /// Idle: one more look at pf-ip; true when messages came (the next round handles them).
    pub fn poll_pf(&mut self) -> bool {
        let budget = self.stack.receive_budget(BATCH);
        self.ready = receive(
            &mut self.from_pf,
            &mut self.batch[..budget],
            &mut self.stack,
            &mut self.log,
            &mut self.epochs,
            &mut self.pf_pid,
        );
        self.ready > 0
    }

    /// The longest the caller may sleep: until the next timer, 1 s at most, 100 ms while a
    /// transport server is not found, 1 ms while an outbox waits for room or pf is not found.
    pub fn sleep_ns(&self) -> u64 {
        let now = libsys::time_ns();
        let mut sleep = MAX_SLEEP_NS;
        if self.transports.iter().any(|t| t.pid == 0) {
            sleep = LOOKUP_SLEEP_NS;
        }
        if let Some(t) = self.stack.next_deadline() {
            sleep = sleep.min(t.saturating_sub(now).max(1));
        }
        if self.stack.outbox_len() > 0
            || self.stack.udp_outbox_len() > 0
            || self.stack.tcp_outbox_len() > 0
            || self.pf_pid == 0
        {
            sleep = sleep.min(SHORT_SLEEP_NS);
        }
        sleep
    }

    /// Arms every input for a sleep; true when one has a message already (do not sleep, but
    /// disarm). A broken pf-ip is counted and does not keep the caller awake.
    pub fn arm(&mut self) -> bool {
        let mut transport_ready = false;
        for t in &mut self.transports {
            transport_ready |= t.arm();
        }
        match self.from_pf.arm() {
            Ok(false) => transport_ready,
            Ok(true) => true,
            Err(e) => {
                self.stack.stats_mut().channel_errors += 1;
                self.log.channel(chan::PF_TO_IP, e);
                transport_ready
            }
        }
    }

    /// Disarms every input after a sleep (a request that woke us is taken by the next round).
    pub fn disarm(&mut self) {
        self.from_pf.disarm();
        for t in &mut self.transports {
            t.from.disarm();
        }
    }
}
