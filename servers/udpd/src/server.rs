//! The udp server's loop body with its system calls, for the `udp` program (`src/main.rs`)
//! and for the single layout's `netstack` (servers/netstack), which runs it beside pf, ip and
//! tcp in one process. Arguments: the applications it serves, comma-separated (the manifest's
//! `args` is one word), each with the channels `udp-APP`, `APP-udp` and the pools `APP-urx`
//! (ours), `APP-utx` (its).
//!
//! At start it maps rx-pool and tx-pool (views), `ip-udp` (it consumes), `udp-ip` (it produces)
//! and each application's regions. Every round ([`Server::round`]): a batch from ip, a batch
//! from each application, the outboxes. Idle, the caller arms every input ([`Server::arm`]) and
//! sleeps until a producer's notify ([`Server::sleep_ns`] at most). The peers' pids (for
//! `notify`) are looked up until found (every second; an application at once when it
//! speaks), and again after a restart. Its counters are logged when
//! they changed, at most every 5 s. `netstat` requests (kernel IPC) are answered by the round
//! itself in the split layout, or handed to [`Server::answer`] by netstack's dispatcher.

use alloc::vec::Vec;

use crate::Udp;
use libchan::{BufferPool, Message, PoolView};
use libsys::chan::{TransportCore, TransportLinks};
use libsys::log;
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID};
use udpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID};

/// Most applications served (the manifest's `args`).
pub const MAX_APPS: usize = libsys::chan::TRANSPORT_MAX_APPS;
/// Longest idle sleep: the period of the lookups of peers not found yet. rs does not count
/// time asleep in a timed wait towards a hang, so the heartbeat need not move more often.
const MAX_SLEEP_NS: u64 = 1_000_000_000;
const STATS_LOG_NS: u64 = 5_000_000_000;
/// Most IPC requests answered in one round.
const IPC_PER_ROUND: usize = 8;

fn pool(name: &str, id: u16) -> Result<PoolView<'static>, &'static str> {
    libsys::chan::server_pool(name, id, BUFFER_SIZE)
}

pub use libsys::chan::Ipc;

/// The udp server: its state, its channels and its timers.
pub struct Server {
    udp: Udp<'static>,
    links: TransportLinks,
    state: Option<&'static mut [u8]>,
    saved: [u16; MAX_APPS],
    last_stats_log: u64,
    mail: libsys::MailWatch,
    logged: crate::Stats,
    ipc: Ipc,
}

impl Server {
    /// Maps the regions, attaches the channels, restores the bindings kept in udp-state.
    pub fn start(apps: &[&str], ipc: Ipc) -> Result<Self, &'static str> {
        if apps.is_empty() || apps.len() > MAX_APPS {
            return Err("udp serves 1 to 16 applications");
        }
        let frames = pool(RX_POOL, RX_POOL_ID)?;
        let tx = pool(TX_POOL, TX_POOL_ID)?;
        let mut udp = Udp::new(frames, tx);
        let ip = libsys::chan::server_link("ip", udpmsg::IP_TO_UDP, udpmsg::UDP_TO_IP)?;
        let mut links = Vec::new();
        for &app in apps {
            let name: &'static str =
                alloc::boxed::Box::leak(alloc::string::String::from(app).into_boxed_str());
            let rx = BufferPool::new(pool(&udpmsg::app_rx_pool(app), APP_RX_POOL_ID)?)
                .map_err(|_| "an application's rx pool has too many buffers")?;
            let atx = pool(&udpmsg::app_tx_pool(app), APP_TX_POOL_ID)?;
            udp.add_app(app, rx, atx);
            links.push(libsys::chan::server_link(
                name,
                &udpmsg::app_to_udp(app),
                &udpmsg::udp_to_app(app),
            )?);
        }
        // The bindings outlive us in udp-state (when the manifest grants it): a restarted udp
        // serves the sockets its applications bound before.
        let state = map_state();
        if let Some(st) = state.as_deref() {
            for (app, port) in saved_bindings(st, apps.len()) {
                if udp.restore_binding(app, port) {
                    log!("{} keeps port {port} (from {STATE_REGION})", apps[app]);
                }
            }
        }
        let saved: [u16; MAX_APPS] = core::array::from_fn(|i| udp.port(i).unwrap_or(0));
        log!(
            "udp serving {} application(s): {}; channels {} and {}",
            apps.len(),
            apps.join(","),
            udpmsg::IP_TO_UDP,
            udpmsg::UDP_TO_IP
        );
        let logged = *udp.stats();
        Ok(Self {
            udp,
            links: TransportLinks::new(ip, links),
            state,
            saved,
            last_stats_log: 0,
            mail: libsys::MailWatch::default(),
            logged,
            ipc,
        })
    }

    /// One round: ip's batch, each application's, the outboxes. True when it did any work.
    pub fn round(&mut self) -> bool {
        let now = libsys::time_ns();
        let worked = self.links.take(&mut self.udp, now);
        // Only when the status page says a request was queued: no system call otherwise (a
        // request also notifies us, so a sleeping server wakes for it).
        if self.ipc == Ipc::Own {
            let udp = &self.udp;
            self.mail
                .poll(|| libsys::chan::answer_requests(IPC_PER_ROUND, |m| answer_netstat(udp, m)));
        }
        let udp = &mut self.udp;
        if let Some(st) = self.state.as_deref_mut() {
            for (i, slot) in self
                .saved
                .iter_mut()
                .enumerate()
                .take(self.links.apps.len())
            {
                let port = udp.port(i).unwrap_or(0);
                if *slot != port {
                    *slot = port;
                    save_binding(st, i, port);
                }
            }
        }
        self.links.give(&mut self.udp);
        if now.saturating_sub(self.last_stats_log) >= STATS_LOG_NS
            && *self.udp.stats() != self.logged
        {
            self.last_stats_log = now;
            self.logged = *self.udp.stats();
            libsys::chan::log_counters("udp counters:", &self.logged.fields());
        }
        worked
    }

    /// The longest the caller may sleep when idle.
    pub fn sleep_ns(&self) -> u64 {
        if self.udp.pending() > 0 {
            1_000_000
        } else {
            self.links.sleep_ns(MAX_SLEEP_NS)
        }
    }

    /// Arms every input for a sleep; true when one has a message already (do not sleep).
    pub fn arm(&mut self) -> bool {
        self.links.arm()
    }

    /// Disarms every input after a sleep (a request that woke us is taken by the next round).
    pub fn disarm(&mut self) {
        self.links.disarm();
    }

    /// The answer to a `netstat` request (netmsg::netstat) that a dispatcher received for udp.
    pub fn answer(&self, request: &libsys::Message) -> libsys::Message {
        answer_netstat(&self.udp, request)
    }
}

/// The answer to a `netstat` request (netmsg::netstat): one entry per bound port.
fn answer_netstat(udp: &Udp, m: &libsys::Message) -> libsys::Message {
    let bound: Vec<(usize, u16)> = (0..udp.apps())
        .filter_map(|a| udp.port(a).map(|p| (a, p)))
        .collect();
    {
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
    }
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

/// The shared round of a transport server ([`TransportLinks`]) drives udp's state.
impl TransportCore for Udp<'_> {
    fn on_ip(&mut self, m: &Message) {
        Udp::from_ip(self, m);
    }

    fn on_app(&mut self, app: usize, m: &Message) {
        Udp::from_app(self, app, m);
    }

    fn ip_restarted(&mut self) {
        Udp::ip_restarted(self);
    }

    fn flush_ip(&mut self, send: &mut dyn FnMut(&[Message]) -> usize) {
        Udp::flush_ip(self, send);
    }

    fn flush_app(&mut self, app: usize, send: &mut dyn FnMut(&[Message]) -> usize) {
        Udp::flush_app(self, app, send);
    }
}
