//! The tcp server's loop body with its system calls, for the `tcp` program (`src/main.rs`) and
//! for the single layout's `netstack` (servers/netstack), which runs it beside pf, ip and udp
//! in one process. Arguments: the applications it serves, comma-separated, each with the
//! channels `tcp-APP`, `APP-tcp` and the pools `APP-trx` (ours), `APP-ttx` (its). Every round
//! ([`Server::round`]): a batch from ip, a batch from each application, smoltcp's poll, the
//! outboxes; idle, the caller arms every input ([`Server::arm`]) and sleeps until a notify or
//! smoltcp's next timer ([`Server::sleep_ns`], 1 s at most). `netstat` requests (kernel
//! IPC) are answered by the round itself in the split layout, or handed to [`Server::answer`]
//! by netstack's dispatcher.

use alloc::vec::Vec;

use crate::Tcp;
use libchan::{BufferPool, Message, PoolView};
use libsys::chan::{TransportCore, TransportLinks};
use libsys::log;
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, netstat};
use tcpmsg::{APP_RX_POOL_ID, APP_TX_POOL_ID};

/// Most applications served (the manifest's `args`).
pub const MAX_APPS: usize = libsys::chan::TRANSPORT_MAX_APPS;
/// Longest idle sleep without a smoltcp timer due: the period of the lookups of peers not found
/// yet (rs does not count time asleep in a timed wait towards a hang).
const MAX_SLEEP_NS: u64 = 1_000_000_000;
const STATS_LOG_NS: u64 = 5_000_000_000;
/// Most IPC requests answered in one round.
const IPC_PER_ROUND: usize = 8;

fn pool(name: &str, id: u16) -> Result<PoolView<'static>, &'static str> {
    libsys::chan::server_pool(name, id, BUFFER_SIZE)
}

pub use libsys::chan::Ipc;

/// The tcp server: smoltcp's side, its channels and its timers.
pub struct Server {
    tcp: Tcp<'static>,
    links: TransportLinks,
    last_stats_log: u64,
    mail: libsys::MailWatch,
    logged: crate::Stats,
    ipc: Ipc,
}

impl Server {
    /// Maps the regions, attaches the channels, listens again on the ports kept in tcp-state.
    pub fn start(apps: &[&str], ipc: Ipc) -> Result<Self, &'static str> {
        if apps.is_empty() || apps.len() > MAX_APPS {
            return Err("tcp serves 1 to 16 applications");
        }
        let frames = pool(RX_POOL, RX_POOL_ID)?;
        let tx = pool(TX_POOL, TX_POOL_ID)?;
        let now = libsys::time_ns();
        let mut tcp = Tcp::new(frames, tx, now, now ^ 0x9e37_79b9_7f4a_7c15);
        let ip = libsys::chan::server_link("ip", tcpmsg::IP_TO_TCP, tcpmsg::TCP_TO_IP)?;
        let mut links = Vec::new();
        for &app in apps {
            let name: &'static str =
                alloc::boxed::Box::leak(alloc::string::String::from(app).into_boxed_str());
            let rx = BufferPool::new(pool(&tcpmsg::app_rx_pool(app), APP_RX_POOL_ID)?)
                .map_err(|_| "an application's rx pool has too many buffers")?;
            let atx = pool(&tcpmsg::app_tx_pool(app), APP_TX_POOL_ID)?;
            tcp.add_app(app, rx, atx);
            links.push(libsys::chan::server_link(
                name,
                &tcpmsg::app_to_tcp(app),
                &tcpmsg::tcp_to_app(app),
            )?);
        }
        // The listening ports outlive us in tcp-state (when the manifest grants it): a
        // restarted tcp listens again where its applications listened before.
        if let Some(r) = map_state().and_then(|st| tcp.keep_listens(st)) {
            for &(app, port) in &r.listens {
                let name = apps.get(app).copied().unwrap_or("?");
                log!("{name} keeps port {port} (from {})", crate::state::REGION);
            }
            if r.bad > 0 {
                let what = if r.fresh {
                    "damaged header"
                } else {
                    "bad entries"
                };
                log!(
                    "{}: {what}, {} word(s) dropped",
                    crate::state::REGION,
                    r.bad
                );
            }
        }
        log!(
            "tcp serving {} application(s): {}; channels {} and {}",
            apps.len(),
            apps.join(","),
            tcpmsg::IP_TO_TCP,
            tcpmsg::TCP_TO_IP
        );
        let logged = *tcp.stats();
        Ok(Self {
            tcp,
            links: TransportLinks::new(ip, links),
            last_stats_log: 0,
            mail: libsys::MailWatch::default(),
            logged,
            ipc,
        })
    }

    /// One round: ip's batch, each application's, smoltcp's poll, the outboxes. True when it
    /// did any work.
    pub fn round(&mut self) -> bool {
        let now = libsys::time_ns();
        let mut worked = self.links.take(&mut self.tcp, now);
        let before = *self.tcp.stats();
        self.tcp.poll(now);
        worked |= *self.tcp.stats() != before;
        // Only when the status page says a request was queued: no system call otherwise (a
        // request also notifies us, so a sleeping server wakes for it).
        if self.ipc == Ipc::Own {
            let tcp = &self.tcp;
            self.mail
                .poll(|| libsys::chan::answer_requests(IPC_PER_ROUND, |m| answer_netstat(tcp, m)));
        }
        self.links.give(&mut self.tcp);
        if now.saturating_sub(self.last_stats_log) >= STATS_LOG_NS
            && *self.tcp.stats() != self.logged
        {
            self.last_stats_log = now;
            self.logged = *self.tcp.stats();
            libsys::chan::log_counters("tcp counters:", &self.logged.fields());
        }
        worked
    }

    /// The longest the caller may sleep: until smoltcp's next timer, 1 s at most, 1 ms while
    /// something waits to be sent or ip is not found yet.
    pub fn sleep_ns(&mut self) -> u64 {
        let now = libsys::time_ns();
        let mut sleep = MAX_SLEEP_NS;
        if let Some(t) = self.tcp.poll_at(now) {
            sleep = sleep.min(t.saturating_sub(now).max(1));
        }
        if self.tcp.pending() > 0 {
            sleep = sleep.min(1_000_000);
        }
        self.links.sleep_ns(sleep)
    }

    /// Arms every input for a sleep; true when one has a message already (do not sleep).
    pub fn arm(&mut self) -> bool {
        self.links.arm()
    }

    /// Disarms every input after a sleep (a request that woke us is taken by the next round).
    pub fn disarm(&mut self) {
        self.links.disarm();
    }

    /// The answer to a `netstat` request (netmsg::netstat) that a dispatcher received for tcp.
    pub fn answer(&self, request: &libsys::Message) -> libsys::Message {
        answer_netstat(&self.tcp, request)
    }
}

/// The answer to a `netstat` request (netmsg::netstat).
fn answer_netstat(tcp: &Tcp, m: &libsys::Message) -> libsys::Message {
    let list = tcp.sockets();
    {
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
    }
}

/// tcp-state as words, when the manifest grants it (without it listening ports do not outlive
/// a restart).
fn map_state() -> Option<&'static [core::sync::atomic::AtomicU32]> {
    let info = libsys::map(crate::state::REGION).ok()?;
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

/// The shared round of a transport server ([`TransportLinks`]) drives tcp's state.
impl TransportCore for Tcp<'_> {
    fn on_ip(&mut self, m: &Message) {
        Tcp::from_ip(self, m);
    }

    fn on_app(&mut self, app: usize, m: &Message) {
        Tcp::from_app(self, app, m);
    }

    fn ip_restarted(&mut self) {
        Tcp::ip_restarted(self);
    }

    fn flush_ip(&mut self, send: &mut dyn FnMut(&[Message]) -> usize) {
        Tcp::flush_ip(self, send);
    }

    fn flush_app(&mut self, app: usize, send: &mut dyn FnMut(&[Message]) -> usize) {
        Tcp::flush_app(self, app, send);
    }
}
