//! The ip server's logic over the two buffer pools: what to do with each message from pf, each
//! request from a client, and each timer — with no system call, so that all of it runs on the
//! host in the tests. The program (`main.rs`) moves messages between this and the channels, the
//! clock and kernel IPC.
//!
//! **Receive.** An `RX_FRAME` names an rx-pool buffer; the frame is read where the NIC wrote it
//! and goes through [`netproto::demux::demux_frame`]. ARP: the cache learns, a request for our
//! address is answered, packets waiting for the sender are released. An echo request is
//! answered: the reply is built in a tx-pool buffer — the received data is copied once, from
//! the rx-pool buffer straight into the reply's — and addressed to the Ethernet source of the
//! request (the neighbour it came through; no ARP lookup). An echo reply, or a destination
//! unreachable quoting one of our echo requests, completes the matching ping. TCP and UDP go to
//! the tcp and udp servers when they run, else they are counted in `no_transport_server` and
//! dropped. Whatever the frame was, its buffer goes home with `RX_RETURN` (at once, or when the
//! transport server gives it back): only the driver frees rx buffers.
//!
//! **ICMP errors.** A UDP datagram for a port no application bound — the udp server says so by
//! sending its buffer home with `RX_UNREACHABLE` — or any UDP datagram while no udp server runs
//! is answered with an ICMP port unreachable (type 3 code 3) quoting its IPv4 header and first
//! 8 bytes, addressed to the Ethernet source it came from (as an echo reply), built before the
//! buffer goes home. `netproto::icmp::error_quote` applies RFC 1122 §3.2.2 (never about a
//! broadcast or multicast, a link-layer broadcast, a later fragment, an ICMP error, or a source
//! that is not one host: `icmp_errors_not_allowed`), and a token bucket of
//! [`ICMP_ERRORS_PER_SECOND`] keeps the rest in check (`icmp_errors_rate_limited`). TCP is the
//! tcp server's: smoltcp answers a SYN to a closed port with RST.
//!
//! **DHCP** ([`Stack::start_dhcp`], the program's `dhcp` argument). The interface starts with
//! no address (everything but DHCP replies is dropped as `unconfigured`, ARP is ignored, pings
//! have no route, the tcp and udp servers get no tx-pool loan yet) and `netproto::dhcp`'s client
//! runs on its timers: DISCOVER, REQUEST, the lease applied (address, prefix, gateway, DNS),
//! renewal at T1 (unicast to the server, through ARP), rebinding at T2, the address given up
//! when the lease ends or a server refuses it — then discovery starts over, with the client's
//! backoff, for as long as it takes. ip sends and receives these messages itself (UDP 68, never
//! through the udp server). Every change of the configuration is handed to the program
//! ([`Stack::take_config_change`]) to keep in the state region; a restarted server whose region
//! holds a lease that has not ended keeps using it and asks the server to confirm it
//! (INIT-REBOOT): a NAK takes it away, silence does not until it ends.
//!
//! **Transmit.** Frames are built in tx-pool buffers, which this server owns ([`BufferPool`]),
//! and sent as `TX_FRAME`; `TX_DONE` frees the buffer (a buffer that is not lent out is refused
//! and counted in `tx_double_free`). When the pool is empty, what would have been sent is dropped
//! and counted in `tx_pool_empty`. IPv4 packets go to the next hop of the routing table; when its
//! MAC address is unknown the finished frame (destination MAC still zero) waits in the ARP cache
//! as a descriptor, is completed and sent when the reply comes, and freed when the cache gives
//! up.
//!
//! **Outbox.** Messages for pf wait in an outbox until the channel takes them
//! ([`Stack::flush`]); it holds at most one message per buffer of the two pools plus a margin,
//! and [`Stack::receive_budget`] keeps the server from reading more from pf than it can answer.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use libchan::{BufferPool, Message as ChanMessage, PoolDescriptor, PoolView};
use netmsg::{Kind, RefusedCounters};
use netproto::Ipv4Cidr;
use netproto::arp::{ArpCache, ArpEvent, ArpPacket, ArpPolicy, Resolution};
use netproto::config::IpConfig;
use netproto::demux::{self, Delivery, Interface, Transport, Verdict};
use netproto::dhcp::{self, DhcpAction, DhcpClient, DhcpMessage, DhcpState, MessageType};
use netproto::ether::{self, EtherFrame, EtherHeader, EtherType, Mac};
use netproto::icmp::{self, DestUnreachable, Echo, RateLimit};
use netproto::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use netproto::route::RoutingTable;

use crate::proto::{
    self, CountersPage, DhcpInfo, DhcpPhase, Info, Message, PingReply, PingRequest, Request, Status,
};

/// Most pings waiting for their reply at once.
pub const MAX_PINGS: usize = 16;
/// Most notices kept for the program to log between two [`Stack::take_notices`].
pub const MAX_NOTICES: usize = 32;
/// Room in the outbox beyond one message per pool buffer.
pub const OUTBOX_MARGIN: usize = 64;
/// tx-pool buffers tcp's loan never takes (nor udp's credit): ip's own frames (ARP, ICMP,
/// DHCP) need them.
pub const IP_OWN_TX: usize = 16;
/// Most messages a received message can add to the outbox: an ARP reply releasing a full queue
/// of packets, plus its answer and its `RX_RETURN`.
const MAX_OUT_PER_MESSAGE: usize = 8;
/// ICMP errors sent per second at most, over any long stretch (a token bucket).
pub const ICMP_ERRORS_PER_SECOND: u32 = 10;
/// ICMP errors that may go out at once after a quiet second.
pub const ICMP_ERROR_BURST: u32 = 10;
/// Most DHCP timer actions run in one [`Stack::tick`] (a lease lost, then a DISCOVER).
const DHCP_POLLS_PER_TICK: usize = 3;

const NS_PER_MS: u64 = 1_000_000;

/// The server's own counters (the demultiplexer's are [`demux::Counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `TX_FRAME`s sent to pf.
    pub tx_frames: u64,
    /// `TX_DONE`s taken back (buffer freed).
    pub tx_done: u64,
    /// Frames not sent because every tx-pool buffer was in flight.
    pub tx_pool_empty: u64,
    /// `TX_DONE`s refused: the buffer was not lent out (double free or forgery).
    pub tx_double_free: u64,
    /// Messages from pf refused: malformed, or a kind only ip sends.
    pub refused: u64,
    /// `RX_RETURN`s sent (every received frame's buffer, home to the driver).
    pub rx_returned: u64,
    /// TCP and UDP packets dropped: no tcp or udp server runs yet.
    pub no_transport_server: u64,
    /// ARP requests sent.
    pub arp_requests_sent: u64,
    /// ARP replies sent (requests for our address answered).
    pub arp_replies_sent: u64,
    /// ARP packets from another host claiming our address.
    pub arp_conflicts: u64,
    /// Packets freed because their next hop never answered ARP.
    pub arp_unreachable: u64,
    /// Packets freed because the ARP queue was full.
    pub arp_queue_dropped: u64,
    /// Echo requests answered.
    pub echo_replies_sent: u64,
    /// Echo requests not answered: their Ethernet source was a group address.
    pub echo_bad_source: u64,
    /// Echo requests sent for clients.
    pub pings_sent: u64,
    /// Echo replies matched to a ping.
    pub ping_replies: u64,
    /// Pings that timed out.
    pub pings_timed_out: u64,
    /// Pings that failed: ARP gave up, or a router said unreachable.
    pub pings_unreachable: u64,
    /// Echo replies that matched no ping in flight (late, duplicated, or not ours).
    pub echo_replies_unmatched: u64,
    /// Messages for pf that found the outbox full (a buffer lost: never with a sane pf).
    pub outbox_overflow: u64,
    /// Channel operations that failed (epoch change, corrupted header), counted by the program.
    pub channel_errors: u64,
    /// Restarts of pf handled (stack/recovery.rs; not in the counter page yet).
    pub pf_restarts: u64,
    /// Restarts of the udp server handled.
    pub udp_restarts: u64,
    /// Restarts of the tcp server handled.
    pub tcp_restarts: u64,
    /// tx-pool buffers given to a pf that restarted and never returned: freed after a grace
    /// period (stack/recovery.rs).
    pub tx_recovered: u64,
    /// Frames the driver never sent because it restarted (TX_DONE marked not sent by pf).
    pub tx_not_sent: u64,
    /// UDP datagrams handed to the udp server (their rx buffers go home through it).
    pub udp_delivered: u64,
    /// UDP datagrams from the udp server transmitted (or queued for ARP).
    pub udp_sent: u64,
    /// Messages from the udp server refused (malformed, a buffer it does not hold, a bad
    /// destination); a lent tx buffer in such a message is freed.
    pub udp_refused: u64,
    /// TCP packets handed to the tcp server (not in [`Stats::fields`] yet: the counter page's
    /// layout is shared with the shell).
    pub tcp_delivered: u64,
    /// IPv4 packets from the tcp server transmitted (or queued for ARP).
    pub tcp_sent: u64,
    /// Messages from the tcp server refused; a lent tx buffer in such a message is freed.
    pub tcp_refused: u64,
    /// ICMP port unreachable sent (a UDP datagram no application or no udp server took).
    pub icmp_unreachable_sent: u64,
    /// ICMP errors not sent: the token bucket was empty.
    pub icmp_errors_rate_limited: u64,
    /// ICMP errors not sent: RFC 1122 forbids them (broadcast, later fragment, ICMP error, bad
    /// source, a group Ethernet source), or the frame was no longer a UDP datagram for us.
    pub icmp_errors_not_allowed: u64,
    /// DHCP messages sent (DISCOVER, REQUEST).
    pub dhcp_sent: u64,
    /// DHCP replies the client did not take (another transaction, another client, a type it
    /// did not expect), or that came with no client running.
    pub dhcp_ignored: u64,
    /// DHCP leases applied (first ones and renewals).
    pub dhcp_leases: u64,
    /// Addresses given up: the lease ended, or a server refused it.
    pub dhcp_lost: u64,
}

impl Stats {
    /// Every counter with its name, in the order [`proto::counter_names`] reports them.
    pub fn fields(&self) -> [(&'static str, u64); 31] {
        [
            ("tx_frames", self.tx_frames),
            ("tx_done", self.tx_done),
            ("tx_pool_empty", self.tx_pool_empty),
            ("tx_double_free", self.tx_double_free),
            ("refused", self.refused),
            ("rx_returned", self.rx_returned),
            ("no_transport_server", self.no_transport_server),
            ("arp_requests_sent", self.arp_requests_sent),
            ("arp_replies_sent", self.arp_replies_sent),
            ("arp_conflicts", self.arp_conflicts),
            ("arp_unreachable", self.arp_unreachable),
            ("arp_queue_dropped", self.arp_queue_dropped),
            ("echo_replies_sent", self.echo_replies_sent),
            ("echo_bad_source", self.echo_bad_source),
            ("pings_sent", self.pings_sent),
            ("ping_replies", self.ping_replies),
            ("pings_timed_out", self.pings_timed_out),
            ("pings_unreachable", self.pings_unreachable),
            ("echo_replies_unmatched", self.echo_replies_unmatched),
            ("outbox_overflow", self.outbox_overflow),
            ("channel_errors", self.channel_errors),
            ("udp_delivered", self.udp_delivered),
            ("udp_sent", self.udp_sent),
            ("udp_refused", self.udp_refused),
            ("icmp_unreachable_sent", self.icmp_unreachable_sent),
            ("icmp_errors_rate_limited", self.icmp_errors_rate_limited),
            ("icmp_errors_not_allowed", self.icmp_errors_not_allowed),
            ("dhcp_sent", self.dhcp_sent),
            ("dhcp_ignored", self.dhcp_ignored),
            ("dhcp_leases", self.dhcp_leases),
            ("dhcp_lost", self.dhcp_lost),
        ]
    }
}

/// Something worth a log line; the program rate-limits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A message from pf was refused.
    Refused {
        /// Its tag.
        tag: u32,
        /// What was wrong.
        why: Refusal,
    },
    /// Another host claims our address.
    ArpConflict {
        /// Its hardware address.
        mac: Mac,
    },
    /// A next hop did not answer ARP; its packets were freed.
    ArpUnreachable {
        /// The next hop.
        ip: Ipv4Addr,
        /// Packets freed.
        packets: usize,
    },
    /// The tx-pool was empty when a frame had to be built.
    TxPoolEmpty,
    /// The outbox was full: an rx-pool buffer could not be sent home.
    OutboxOverflow,
    /// DHCP: a DISCOVER or REQUEST went out.
    DhcpSent {
        /// Which.
        message: MessageType,
        /// Sent in this exchange so far, this one included.
        attempt: u32,
        /// An address is in force meanwhile.
        configured: bool,
        /// When the client tries again if nothing comes, in milliseconds from now.
        retry_ms: u64,
    },
    /// DHCP: a lease applied.
    DhcpLeased {
        /// Our address and prefix.
        address: Ipv4Cidr,
        /// The default gateway.
        gateway: Option<Ipv4Addr>,
        /// The DNS server.
        dns: Option<Ipv4Addr>,
        /// The server that granted it.
        server: Ipv4Addr,
        /// Its length in seconds.
        secs: u64,
        /// Seconds until renewal (T1).
        renew_secs: u64,
        /// Milliseconds since the exchange's first message went out.
        after_ms: u64,
    },
    /// DHCP: the address was given up (the lease ended, or a server refused it).
    DhcpLost {
        /// The address.
        address: Ipv4Cidr,
    },
    /// DHCP: a lease the state region remembers is kept after a restart.
    DhcpResumed {
        /// Our address and prefix.
        address: Ipv4Cidr,
        /// Seconds until it ends.
        secs_left: u64,
    },
}

/// Why a message from pf was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `netmsg::Kind::decode` refused it.
    Malformed(netmsg::Refused),
    /// A `TX_DONE` for a tx-pool buffer that is not lent out.
    NotLent {
        /// The buffer.
        index: u32,
    },
    /// `RX_RETURN` or `TX_FRAME`: only ip sends those.
    NotForUs,
}

/// A ping waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Ping {
    caller: u32,
    dst: Ipv4Addr,
    ident: u16,
    seq: u16,
    data_len: u16,
    sent_ns: u64,
    deadline_ns: u64,
    /// The tx-pool buffer of its echo request while it waits in the ARP cache.
    queued: Option<u32>,
}

/// What happened to a frame handed to [`Stack::send_to`].
enum Sent {
    /// In the outbox.
    Now,
    /// Waiting in the ARP cache for the next hop's address.
    Queued,
    /// Freed (the ARP cache refused it, or the outbox was full).
    Dropped,
}

/// The link to the udp server (`udpmsg`): what it holds of ours and the driver's.
struct UdpLink {
    out: VecDeque<ChanMessage>,
    /// rx-pool buffers handed to udp and not back yet.
    rx_held: Vec<bool>,
    /// tx-pool buffers lent to udp and not back yet.
    tx_lent: Vec<bool>,
    /// How many of `tx_lent` are set.
    lent: usize,
}

impl UdpLink {
    /// Takes back rx buffer `index` from the server: false (nothing changed) when it did not
    /// hold it.
    fn take_back(&mut self, index: u32) -> bool {
        match self.rx_held.get_mut(index as usize) {
            Some(held) if *held => {
                *held = false;
                true
            }
            _ => false,
        }
    }
}

/// The transport server a message came from.
#[derive(Debug, Clone, Copy)]
enum Upper {
    Udp,
    Tcp,
}

/// The ip server's state: see the module documentation.
pub struct Stack<'a> {
    /// tx-pool buffers given to pf as TX_FRAME and not back yet (TX_DONE).
    tx_in_flight: Vec<bool>,
    /// After a restart of pf: when to free the frames still in flight that were given to the
    /// old pf (stack/recovery.rs), and which they are.
    lost_tx: Option<(u64, Vec<u32>)>,
    /// When tcp was last told PATH_LOST (stack/recovery.rs).
    path_lost_at: Option<u64>,
    udp: Option<UdpLink>,
    /// The link to the tcp server (`tcpmsg`): the same bookkeeping as udp's.
    tcp: Option<UdpLink>,
    /// How many tx-pool buffers tcp is kept lent ([`Stack::set_tcp_credit`]).
    tcp_credit: usize,
    rx: PoolView<'a>,
    tx: BufferPool<'a>,
    mac: Mac,
    config: IpConfig,
    routes: RoutingTable,
    arp: ArpCache<PoolDescriptor>,
    demux: demux::Counters,
    refusals: RefusedCounters,
    stats: Stats,
    pings: Vec<Ping>,
    out: VecDeque<ChanMessage>,
    out_limit: usize,
    replies: Vec<(u32, Message)>,
    notices: Vec<Notice>,
    ip_ident: u16,
    /// The address of `config` is in force (always with a static configuration).
    up: bool,
    /// The DHCP client, when the interface is configured by DHCP.
    dhcp: Option<DhcpClient>,
    /// `config` changed since [`Stack::take_config_change`] last took it.
    config_changed: bool,
    /// When the first message of the DHCP exchange under way went out.
    dhcp_since_ns: Option<u64>,
    /// The token bucket of the ICMP errors we send.
    icmp_errors: RateLimit,
}

/// The frame bytes of a pool buffer.
///
/// # Safety
/// The caller must own the buffer under the path's protocol (a received frame not yet sent
/// home, or a tx-pool buffer not lent out), so that nobody else writes it while the slice lives.
unsafe fn bytes<'a>(b: &libchan::BufferRef<'a>) -> &'a [u8] {
    // Safety: forwarded from our caller.
    unsafe { b.as_slice() }
}

impl<'a> Stack<'a> {
    /// A stack over the rx-pool `rx` (the driver's: only read) and the tx-pool `tx` (ours), for
    /// the NIC at `mac` with `config`.
    pub fn new(rx: PoolView<'a>, tx: BufferPool<'a>, mac: Mac, config: IpConfig) -> Self {
        // The routing table of a configuration that loaded is always valid (it has at most
        // 8 static routes plus two); an empty table only means "no route" for every ping.
        let routes = config.routing_table(0).unwrap_or_default();
        let out_limit = rx.count() as usize + tx.view().count() as usize + OUTBOX_MARGIN;
        Self {
            tx_in_flight: alloc::vec![false; tx.view().count() as usize],
            lost_tx: None,
            path_lost_at: None,
            udp: None,
            tcp: None,
            tcp_credit: tcpmsg::TX_CREDIT,
            rx,
            tx,
            mac,
            config,
            routes,
            arp: ArpCache::new(ArpPolicy::default()),
            demux: demux::Counters::default(),
            refusals: RefusedCounters::default(),
            stats: Stats::default(),
            pings: Vec::with_capacity(MAX_PINGS),
            out: VecDeque::with_capacity(out_limit),
            out_limit,
            replies: Vec::with_capacity(MAX_PINGS),
            notices: Vec::with_capacity(MAX_NOTICES),
            ip_ident: 0,
            up: true,
            dhcp: None,
            config_changed: false,
            dhcp_since_ns: None,
            icmp_errors: RateLimit::new(ICMP_ERRORS_PER_SECOND, ICMP_ERROR_BURST),
        }
    }

    /// Configures the interface by DHCP from now on (see the module documentation): keeps a
    /// lease of the configuration that has not ended at `now_ns`, asking its server to confirm
    /// it, else starts with no address. `seed` varies the transaction ids. The first message
    /// goes out at the next [`Stack::tick`] (the deadline is now).
    pub fn start_dhcp(&mut self, seed: u32, now_ns: u64) {
        let now_ms = now_ns / NS_PER_MS;
        if self.config.lease_valid_at(now_ms) {
            let address = self.config.address;
            self.dhcp = Some(DhcpClient::init_reboot(self.mac, address.address(), seed));
            self.notice(Notice::DhcpResumed {
                address,
                secs_left: self.config.lease_end_ms.saturating_sub(now_ms) / 1000,
            });
        } else {
            self.dhcp = Some(DhcpClient::new(self.mac, seed));
            self.apply(self.config.without_lease(), false);
        }
    }

    /// The configuration, if it changed since the last call: for the program to keep in the
    /// state region.
    pub fn take_config_change(&mut self) -> Option<IpConfig> {
        core::mem::take(&mut self.config_changed).then_some(self.config)
    }

    /// An address is in force: always with a static configuration; with DHCP, while a lease
    /// (or one remembered across a restart) holds.
    pub fn is_configured(&self) -> bool {
        self.up
    }

    /// Puts `config` in force (`up`: its address is usable), and tops up the transport
    /// servers' loans, which wait for an address (they carry it).
    fn apply(&mut self, config: IpConfig, up: bool) {
        self.config = config;
        self.up = up;
        self.routes = if up {
            config.routing_table(0).unwrap_or_default()
        } else {
            RoutingTable::default()
        };
        self.config_changed = true;
        self.lend_udp();
        self.lend_tcp();
    }

    /// What [`proto::OP_INFO`] says of the DHCP client at `now_ms`.
    fn dhcp_info(&self, now_ms: u64) -> DhcpInfo {
        let Some(c) = &self.dhcp else {
            return DhcpInfo::OFF;
        };
        let phase = match c.state() {
            DhcpState::Init | DhcpState::Selecting => DhcpPhase::Selecting,
            DhcpState::Requesting => DhcpPhase::Requesting,
            DhcpState::Rebooting => DhcpPhase::Rebooting,
            DhcpState::Bound => DhcpPhase::Bound,
            DhcpState::Renewing => DhcpPhase::Renewing,
            DhcpState::Rebinding => DhcpPhase::Rebinding,
        };
        let left = if self.up {
            self.config.lease_end_ms.saturating_sub(now_ms) / 1000
        } else {
            0
        };
        DhcpInfo {
            phase,
            configured: self.up,
            attempts: u16::try_from(c.attempts()).unwrap_or(u16::MAX),
            lease_secs_left: u32::try_from(left).unwrap_or(u32::MAX),
        }
    }

    /// Does what the DHCP client asks.
    fn dhcp_action(&mut self, action: DhcpAction, now_ns: u64) {
        match action {
            DhcpAction::Send(o) => self.send_dhcp(&o, now_ns),
            DhcpAction::Configured(lease) => {
                // The MTU and the static routes stay.
                let mut config = self.config;
                config.address = lease.address;
                config.gateway = lease.router;
                config.dns = lease.dns;
                config.from_dhcp = true;
                config.lease_end_ms = lease.end_ms;
                self.apply(config, true);
                self.stats.dhcp_leases += 1;
                let since = self.dhcp_since_ns.take().unwrap_or(now_ns);
                self.notice(Notice::DhcpLeased {
                    address: lease.address,
                    gateway: lease.router,
                    dns: lease.dns,
                    server: lease.server,
                    secs: lease.end_ms.saturating_sub(lease.start_ms) / 1000,
                    renew_secs: lease.renew_ms.saturating_sub(lease.start_ms) / 1000,
                    after_ms: now_ns.saturating_sub(since) / NS_PER_MS,
                });
            }
            DhcpAction::Deconfigured => self.lose_lease(),
        }
    }

    /// Gives the address up (the lease ended, or a server refused it).
    fn lose_lease(&mut self) {
        if self.up {
            self.stats.dhcp_lost += 1;
            self.notice(Notice::DhcpLost {
                address: self.config.address,
            });
        }
        // The next exchange (discovery) is timed from its own first message.
        self.dhcp_since_ns = None;
        self.apply(self.config.without_lease(), false);
    }

    /// Sends a DHCP message: a broadcast straight to the Ethernet broadcast address, a
    /// renewal to the server's next hop (through ARP).
    fn send_dhcp(&mut self, o: &dhcp::Outgoing, now_ns: u64) {
        let broadcast = o.dst.is_broadcast();
        let header = EtherHeader {
            dst: if broadcast { Mac::BROADCAST } else { Mac::ZERO },
            src: self.mac,
            ethertype: EtherType::IPV4,
        };
        let ident = self.next_ip_ident();
        let built = self.build(|buf| {
            header.emit(buf).ok()?;
            let n = o
                .build_packet(buf.get_mut(ether::HEADER_LEN..)?, ident)
                .ok()?;
            ether::pad(buf, ether::HEADER_LEN + n).ok()
        });
        let Some(d) = built else {
            return;
        };
        let sent = if broadcast {
            self.transmit(d)
        } else if let Some(hop) = self.routes.lookup(o.dst) {
            !matches!(self.send_to(hop.next_hop, d, now_ns), Sent::Dropped)
        } else {
            let _ = self.tx.free(d);
            false
        };
        if !sent {
            return;
        }
        self.stats.dhcp_sent += 1;
        self.dhcp_since_ns.get_or_insert(now_ns);
        if let Some(c) = &self.dhcp {
            let retry_ms = c.next_deadline().saturating_sub(now_ns / NS_PER_MS);
            let n = Notice::DhcpSent {
                message: o.message_type,
                attempt: c.attempts(),
                configured: self.up,
                retry_ms,
            };
            self.notice(n);
        }
    }

    /// A DHCP reply the demultiplexer found.
    fn dhcp_received(&mut self, m: &DhcpMessage, now_ns: u64) {
        let action = self
            .dhcp
            .as_mut()
            .and_then(|c| c.handle(m, now_ns / NS_PER_MS));
        match action {
            Some(a) => self.dhcp_action(a, now_ns),
            None => self.stats.dhcp_ignored += 1,
        }
    }

    /// Answers the UDP datagram `t` of `frame` (no application, or no udp server, took it)
    /// with an ICMP port unreachable, if RFC 1122 and the rate limit allow.
    fn port_unreachable(&mut self, frame: &[u8], t: &Delivery, now_ns: u64) {
        let eth = EtherFrame::parse(frame).ok();
        let datagram = frame.get(t.ip_offset..t.ip_offset.saturating_add(t.ip_len));
        let (Some(eth), Some(datagram)) = (eth, datagram) else {
            self.stats.icmp_errors_not_allowed += 1;
            return;
        };
        let quote = match icmp::error_quote(
            datagram,
            !eth.dst.is_unicast(),
            self.config.address.broadcast(),
        ) {
            Ok(q) if self.up && eth.src.is_unicast() => q,
            _ => {
                self.stats.icmp_errors_not_allowed += 1;
                return;
            }
        };
        if !self.icmp_errors.allow(now_ns / NS_PER_MS) {
            self.stats.icmp_errors_rate_limited += 1;
            return;
        }
        let header = EtherHeader {
            dst: eth.src,
            src: self.mac,
            ethertype: EtherType::IPV4,
        };
        let (ours, ident) = (self.our_ip(), self.next_ip_ident());
        let built = self.build(|buf| {
            header.emit(buf).ok()?;
            let n = icmp::build_dest_unreachable(
                buf.get_mut(ether::HEADER_LEN..)?,
                ours,
                icmp::CODE_PORT_UNREACHABLE,
                &quote,
                ident,
            )
            .ok()?;
            ether::pad(buf, ether::HEADER_LEN + n).ok()
        });
        if let Some(d) = built
            && self.transmit(d)
        {
            self.stats.icmp_unreachable_sent += 1;
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &IpConfig {
        &self.config
    }

    /// The demultiplexer's counters.
    pub fn demux_counters(&self) -> &demux::Counters {
        &self.demux
    }

    /// The server's own counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The server's own counters, for the program to add to.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Refused messages from pf, by reason.
    pub fn refusals(&self) -> &RefusedCounters {
        &self.refusals
    }

    /// Every counter [`proto::OP_COUNTERS`] reports, in the order of [`proto::counter_names`].
    pub fn counter_values(&self) -> Vec<u64> {
        self.demux
            .fields()
            .iter()
            .chain(self.stats.fields().iter())
            .map(|&(_, v)| v)
            .collect()
    }

    /// tx-pool buffers lent out (in flight, or waiting for ARP).
    pub fn tx_in_use(&self) -> u32 {
        self.tx.in_use()
    }

    /// Pings waiting for their reply.
    pub fn pings_in_flight(&self) -> usize {
        self.pings.len()
    }

    fn interface(&self) -> Interface {
        Interface {
            mac: self.mac,
            address: self.up.then_some(self.config.address),
            dhcp_client: self.dhcp.is_some(),
        }
    }

    /// Our address; 0.0.0.0 while none is in force.
    fn our_ip(&self) -> Ipv4Addr {
        if self.up {
            self.config.address.address()
        } else {
            Ipv4Addr::UNSPECIFIED
        }
    }

    fn notice(&mut self, n: Notice) {
        if self.notices.len() < MAX_NOTICES {
            self.notices.push(n);
        }
    }

    /// The notices since the last call, oldest first.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        core::mem::take(&mut self.notices)
    }

    /// IPC replies due: (caller's pid, message), to be sent with `ipc_reply`.
    pub fn take_replies(&mut self) -> Vec<(u32, Message)> {
        core::mem::take(&mut self.replies)
    }

    /// How many messages from pf to read now: as many as the outbox can answer, at most `max`.
    pub fn receive_budget(&self, max: usize) -> usize {
        (self.out_limit.saturating_sub(self.out.len()) / MAX_OUT_PER_MESSAGE).min(max)
    }

    /// Messages waiting for pf.
    pub fn outbox_len(&self) -> usize {
        self.out.len()
    }

    /// Hands the outbox to `send` (which returns how many of the messages it took, in order)
    /// until it is empty or `send` takes less than it was given.
    pub fn flush(&mut self, send: impl FnMut(&[ChanMessage]) -> usize) {
        drain_into(&mut self.out, send);
    }

    /// Queues `m` for pf; a buffer going home rides in the newest message queued when that
    /// sends buffers of the same pool home and has room ([`netmsg::merge`]). False (and `m`
    /// counted as an overflow) when the outbox is full.
    fn push_out(&mut self, m: ChanMessage) -> bool {
        if self
            .out
            .back_mut()
            .is_some_and(|last| netmsg::merge(last, &m))
        {
            return true;
        }
        if self.out.len() >= self.out_limit {
            self.stats.outbox_overflow += 1;
            self.notice(Notice::OutboxOverflow);
            return false;
        }
        self.out.push_back(m);
        true
    }

    /// Queues `TX_FRAME` for a finished frame in tx buffer `d`; frees it if the outbox is full.
    fn transmit(&mut self, d: PoolDescriptor) -> bool {
        if self.push_out(Kind::TxFrame(d).message()) {
            self.stats.tx_frames += 1;
            if let Some(f) = self.tx_in_flight.get_mut(d.index as usize) {
                *f = true;
            }
            true
        } else {
            let _ = self.tx.free(d);
            false
        }
    }

    fn refuse(&mut self, tag: u32, why: Refusal) {
        self.stats.refused += 1;
        if let Refusal::Malformed(r) = why {
            self.refusals.count(r);
        }
        self.notice(Notice::Refused { tag, why });
    }

    /// Handles one message from pf at time `now_ns`.
    pub fn handle(&mut self, m: &ChanMessage, now_ns: u64) {
        let kinds = match Kind::decode_all(m, self.rx.count(), self.tx.view().count()) {
            Ok(k) => k,
            Err(r) => return self.refuse(m.tag, Refusal::Malformed(r)),
        };
        // Every buffer of a message is of one kind: a message only ip sends (an RX_RETURNS of
        // 14 buffers, say) is refused once, as one mistake, not once per buffer.
        if matches!(kinds.first(), Some(Kind::RxReturn(_) | Kind::TxFrame(_))) {
            return self.refuse(m.tag, Refusal::NotForUs);
        }
        for kind in kinds {
            self.handle_one(m, kind, now_ns);
        }
    }

    /// Handles one buffer of message `m` from pf (a `TX_DONES` names several).
    fn handle_one(&mut self, m: &ChanMessage, kind: Kind, now_ns: u64) {
        match kind {
            Kind::RxFrame(d) => {
                if self.receive(d, now_ns) {
                    // With udp now: it sends the buffer home through us.
                    return;
                }
                if self.push_out(Kind::RxReturn(d).message()) {
                    self.stats.rx_returned += 1;
                }
            }
            // Only a frame given to pf can be done: a buffer lent to udp or tcp, or freed as
            // lost after pf's restart and used again, must not be freed by a stale TX_DONE.
            Kind::TxDone(d) => match self
                .tx_in_flight
                .get(d.index as usize)
                .filter(|f| **f)
                .map_or(Err(()), |_| self.tx.free(d).map_err(drop))
            {
                Ok(()) => {
                    self.stats.tx_done += 1;
                    if let Some(f) = self.tx_in_flight.get_mut(d.index as usize) {
                        *f = false;
                    }
                    if netmsg::is_not_sent(m) {
                        self.stats.tx_not_sent += 1;
                        self.path_lost(now_ns);
                    }
                    // The servers' loans were cut short while the pool was busy: top them up
                    // now that a buffer is back (or a server that spent its credit starves).
                    self.lend_tcp();
                    self.lend_udp();
                }
                Err(_) => {
                    self.stats.tx_double_free += 1;
                    self.notice(Notice::Refused {
                        tag: m.tag,
                        why: Refusal::NotLent { index: d.index },
                    });
                }
            },
            // Refused whole by `handle` before it gets here.
            Kind::RxReturn(_) | Kind::TxFrame(_) => self.refuse(m.tag, Refusal::NotForUs),
        }
    }

    /// A received frame in rx buffer `d` (checked by `Kind::decode`). True when the buffer went
    /// to the udp server (which sends it home through us).
    fn receive(&mut self, d: PoolDescriptor, now_ns: u64) -> bool {
        let Ok(buf) = self.rx.check(d) else {
            return false;
        };
        // Safety: pf handed us this buffer with RX_FRAME and we have not sent it home yet; under
        // the path's protocol nobody writes it until the driver gets it back. (A peer breaking
        // the protocol could only make us parse garbage: every parser is bounds-checked.)
        let frame = unsafe { bytes(&buf) };
        let iface = self.interface();
        match demux::demux_frame(frame, &iface, &mut self.demux) {
            // Without an address there is nothing to answer or to resolve.
            Verdict::Arp(arp) if self.up => self.arp_received(&arp, now_ns),
            Verdict::Arp(_) => {}
            Verdict::EchoRequest { ip, echo } => self.answer_echo(frame, &ip, &echo),
            Verdict::EchoReply { ip, echo } => self.echo_reply(&ip, &echo, now_ns),
            Verdict::Unreachable { ip, message } => self.unreachable(&ip, &message),
            Verdict::Transport(t) if t.transport == Transport::Udp && self.udp.is_some() => {
                return self.deliver_udp(d, &t);
            }
            Verdict::Transport(t) if t.transport == Transport::Tcp && self.tcp.is_some() => {
                return self.deliver_tcp(d, &t);
            }
            Verdict::Transport(t) => {
                self.stats.no_transport_server += 1;
                if t.transport == Transport::Udp {
                    self.port_unreachable(frame, &t, now_ns);
                }
            }
            Verdict::Dhcp(m) => self.dhcp_received(&m, now_ns),
            // Counted by the demultiplexer.
            Verdict::Drop(_) => {}
        }
        false
    }

    fn arp_received(&mut self, arp: &ArpPacket, now_ns: u64) {
        let outcome = self
            .arp
            .handle(arp, self.our_ip(), self.mac, now_ns / NS_PER_MS);
        if outcome.conflict {
            self.stats.arp_conflicts += 1;
            self.notice(Notice::ArpConflict {
                mac: arp.sender_mac,
            });
        }
        if let Some(reply) = outcome.reply
            && self.send_arp(&reply)
        {
            self.stats.arp_replies_sent += 1;
        }
        for d in outcome.released {
            self.release(d, arp.sender_mac);
        }
    }

    /// A frame that waited for ARP: its destination MAC is now known.
    fn release(&mut self, d: PoolDescriptor, mac: Mac) {
        self.unqueue(d.index);
        match self.tx.buffer(d) {
            Ok(mut b) => {
                // Safety: the buffer is lent out by our pool but sits in our ARP queue: nobody
                // else has it.
                let frame = unsafe { b.as_mut_slice() };
                if let Some(dst) = frame.get_mut(..6) {
                    dst.copy_from_slice(&mac.0);
                }
                self.transmit(d);
            }
            Err(_) => {
                let _ = self.tx.free(d);
            }
        }
    }

    /// Moves whenever the ARP cache learns or confirms a neighbour (time to save them).
    pub fn neighbours_version(&self) -> u64 {
        self.arp.version()
    }

    /// The neighbours worth keeping across a restart, at `now_ns`.
    pub fn neighbours_to_save(&self, now_ns: u64) -> Vec<netproto::arp::Neighbour> {
        self.arp.to_save(now_ns / NS_PER_MS)
    }

    /// Learns the neighbours an earlier instance kept, each with its own age (call it before
    /// anything is sent: nothing waits for them yet).
    pub fn restore_neighbours(&mut self, list: &[netproto::arp::Neighbour]) {
        for &(ip, mac, confirmed_ms) in list {
            for d in self.arp.insert(ip, mac, confirmed_ms) {
                let _ = self.tx.free(d);
            }
        }
    }

    /// The ping whose echo request is buffer `index` no longer waits in the ARP cache.
    fn unqueue(&mut self, index: u32) {
        for p in &mut self.pings {
            if p.queued == Some(index) {
                p.queued = None;
            }
        }
    }

    /// Builds a frame in a fresh tx buffer with `build` (which returns the frame's length) and
    /// returns its descriptor, or counts `tx_pool_empty`.
    fn build(&mut self, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> Option<PoolDescriptor> {
        let Some(mut d) = self.tx.alloc() else {
            self.stats.tx_pool_empty += 1;
            self.notice(Notice::TxPoolEmpty);
            return None;
        };
        let len = match self.tx.buffer(d) {
            Ok(mut b) => {
                // Safety: `alloc` just lent this buffer to us; nobody else has it.
                build(unsafe { b.as_mut_slice() })
            }
            Err(_) => None,
        };
        match len.and_then(|l| u32::try_from(l).ok()) {
            Some(l) if l > 0 && l <= d.len => {
                d.len = l;
                Some(d)
            }
            _ => {
                let _ = self.tx.free(d);
                None
            }
        }
    }

    fn send_arp(&mut self, p: &ArpPacket) -> bool {
        match self.build(|buf| p.emit_frame(buf).ok()) {
            Some(d) => self.transmit(d),
            None => false,
        }
    }

    fn send_arp_request(&mut self, target: Ipv4Addr) {
        let req = ArpPacket::request(self.mac, self.our_ip(), target);
        if self.send_arp(&req) {
            self.stats.arp_requests_sent += 1;
        }
    }

    fn next_ip_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Answers an echo request: the reply goes back to the Ethernet address it came from.
    fn answer_echo(&mut self, frame: &[u8], ip: &Ipv4Packet<'_>, echo: &Echo<'_>) {
        let Some(to) = EtherFrame::parse(frame).ok().map(|e| e.src) else {
            return;
        };
        if !to.is_unicast() {
            self.stats.echo_bad_source += 1;
            return;
        }
        let header = EtherHeader {
            dst: to,
            src: self.mac,
            ethertype: EtherType::IPV4,
        };
        let ident = self.next_ip_ident();
        // The one copy of the echoed data: from the rx-pool buffer into the reply's.
        let built = self.build(|buf| {
            header.emit(buf).ok()?;
            let n =
                icmp::build_echo_reply(ip, echo, ident, buf.get_mut(ether::HEADER_LEN..)?).ok()?;
            ether::pad(buf, ether::HEADER_LEN + n).ok()
        });
        if let Some(d) = built
            && self.transmit(d)
        {
            self.stats.echo_replies_sent += 1;
        }
    }

    fn echo_reply(&mut self, ip: &Ipv4Packet<'_>, echo: &Echo<'_>, now_ns: u64) {
        let found = self.pings.iter().position(|p| {
            p.dst == ip.src
                && p.ident == echo.ident
                && p.seq == echo.seq
                && echo_data_matches(echo.data, p.data_len, p.sent_ns)
        });
        let Some(i) = found else {
            self.stats.echo_replies_unmatched += 1;
            return;
        };
        let p = self.pings.swap_remove(i);
        self.stats.ping_replies += 1;
        let reply = PingReply {
            status: Status::Ok,
            rtt_ns: now_ns.saturating_sub(p.sent_ns),
            from: ip.src,
            seq: p.seq,
            icmp_len: (icmp::HEADER_LEN + echo.data.len()) as u16,
            ttl: ip.ttl,
            unreachable_code: 0,
        };
        self.replies.push((p.caller, reply.encode()));
    }

    /// A destination unreachable: if it quotes one of our echo requests, that ping failed.
    fn unreachable(&mut self, ip: &Ipv4Packet<'_>, message: &DestUnreachable<'_>) {
        let Ok(q) = message.quoted() else {
            return;
        };
        let Some(first8) = q.first8 else {
            return;
        };
        if q.protocol != IpProtocol::ICMP
            || q.src != self.our_ip()
            || first8[0] != icmp::ECHO_REQUEST
        {
            return;
        }
        let ident = u16::from_be_bytes([first8[4], first8[5]]);
        let seq = u16::from_be_bytes([first8[6], first8[7]]);
        let found = self
            .pings
            .iter()
            .position(|p| p.dst == q.dst && p.ident == ident && p.seq == seq);
        if let Some(i) = found {
            let p = self.pings.swap_remove(i);
            self.stats.pings_unreachable += 1;
            let reply = PingReply {
                unreachable_code: message.code.saturating_add(1),
                ..PingReply::failed(Status::Unreachable, ip.src, p.seq)
            };
            self.replies.push((p.caller, reply.encode()));
        }
    }

    /// Hands a finished frame in tx buffer `d` to the next hop: sent now if its MAC is known,
    /// else queued in the ARP cache (the first packet for it sends an ARP request).
    fn send_to(&mut self, next_hop: Ipv4Addr, d: PoolDescriptor, now_ns: u64) -> Sent {
        match self.arp.resolve(next_hop, d, now_ns / NS_PER_MS) {
            Resolution::Ready { mac, packet } => {
                self.release(packet, mac);
                Sent::Now
            }
            Resolution::Queued { send_request } => {
                if send_request {
                    self.send_arp_request(next_hop);
                }
                Sent::Queued
            }
            Resolution::Refused { packet, .. } => {
                self.stats.arp_queue_dropped += 1;
                let _ = self.tx.free(packet);
                Sent::Dropped
            }
        }
    }

    /// Handles a request from client `from` (replies go to [`Stack::take_replies`]).
    pub fn request(&mut self, from: u32, m: &Message, now_ns: u64) {
        let reply = match Request::decode(m) {
            None => proto::status_reply(Status::BadRequest),
            Some(Request::Ping(p)) => match self.ping(from, &p, now_ns) {
                Ok(()) => return,
                Err(status) => PingReply::failed(status, p.dst, p.seq).encode(),
            },
            Some(Request::Info) => {
                let mut m = Info {
                    address: self.config.address,
                    gateway: self.config.gateway,
                    dns: self.config.dns,
                    mac: self.mac,
                    mtu: self.config.mtu,
                    arp_entries: self.arp.entries(now_ns / NS_PER_MS).count() as u32,
                    pings_in_flight: self.pings.len() as u32,
                }
                .encode();
                self.dhcp_info(now_ns / NS_PER_MS).write(&mut m);
                m
            }
            Some(Request::Counters { first }) => {
                CountersPage::of(&self.counter_values(), first).encode()
            }
        };
        self.replies.push((from, reply));
    }

    /// Sends the echo request of `p` for `caller`; the reply comes later (or now, on failure).
    fn ping(&mut self, caller: u32, p: &PingRequest, now_ns: u64) -> Result<(), Status> {
        if self.pings.len() >= MAX_PINGS
            || self
                .pings
                .iter()
                .any(|q| q.dst == p.dst && q.ident == p.ident && q.seq == p.seq)
        {
            return Err(Status::Busy);
        }
        let ours = self.config.address;
        if p.dst.is_broadcast()
            || Some(p.dst) == ours.broadcast()
            || p.dst.is_multicast()
            || p.dst.is_unspecified()
        {
            return Err(Status::BadRequest);
        }
        // No loopback interface: our own address and 127/8 have no route.
        if p.dst == ours.address() || p.dst.is_loopback() {
            return Err(Status::NoRoute);
        }
        let hop = self.routes.lookup(p.dst).ok_or(Status::NoRoute)?;
        let header = EtherHeader {
            dst: Mac::ZERO,
            src: self.mac,
            ethertype: EtherType::IPV4,
        };
        let (src, dst, ident) = (ours.address(), p.dst, self.next_ip_ident());
        let mut data = [0u8; proto::MAX_PING_DATA as usize];
        let data = data.get_mut(..usize::from(p.data_len)).unwrap_or_default();
        fill_echo_data(data, now_ns);
        let echo = Echo {
            ident: p.ident,
            seq: p.seq,
            data,
        };
        let d = self
            .build(|buf| {
                header.emit(buf).ok()?;
                let n = icmp::build_echo_request(
                    buf.get_mut(ether::HEADER_LEN..)?,
                    src,
                    dst,
                    ident,
                    &echo,
                )
                .ok()?;
                ether::pad(buf, ether::HEADER_LEN + n).ok()
            })
            .ok_or(Status::NoBuffer)?;
        let timeout_ns = u64::from(p.timeout_ms) * NS_PER_MS;
        self.pings.push(Ping {
            caller,
            dst: p.dst,
            ident: p.ident,
            seq: p.seq,
            data_len: p.data_len,
            sent_ns: now_ns,
            deadline_ns: now_ns.saturating_add(timeout_ns),
            queued: None,
        });
        match self.send_to(hop.next_hop, d, now_ns) {
            Sent::Now => {}
            Sent::Queued => {
                if let Some(q) = self.pings.last_mut() {
                    q.queued = Some(d.index);
                }
            }
            Sent::Dropped => {
                self.pings.pop();
                return Err(Status::Busy);
            }
        }
        self.stats.pings_sent += 1;
        Ok(())
    }

    /// Connects the udp server (its channels exist): lends it [`udpmsg::TX_CREDIT`] tx-pool
    /// buffers, and from now on UDP datagrams go to it.
    pub fn attach_udp(&mut self) {
        self.udp = Some(UdpLink {
            out: VecDeque::with_capacity(self.out_limit),
            rx_held: alloc::vec![false; self.rx.count() as usize],
            tx_lent: alloc::vec![false; self.tx.view().count() as usize],
            lent: 0,
        });
        self.lend_udp();
    }

    /// Tops the udp server's loan of tx-pool buffers up to [`udpmsg::TX_CREDIT`] (no more
    /// when the pool runs low: ip's own frames come first).
    fn lend_udp(&mut self) {
        let our = self.our_ip();
        let Some(link) = self.udp.as_mut().filter(|_| self.up) else {
            return;
        };
        while link.lent < udpmsg::TX_CREDIT
            && self.tx.in_use() + (udpmsg::TX_CREDIT as u32) < self.tx.view().count()
        {
            let Some(d) = self.tx.alloc() else {
                return;
            };
            link.tx_lent[d.index as usize] = true;
            link.lent += 1;
            link.out.push_back(udpmsg::lend_message(d, our));
        }
    }

    /// Hands UDP datagram `t` of rx buffer `d` to the udp server; false (buffer goes home at
    /// once) if its outbox is full.
    fn deliver_udp(&mut self, d: PoolDescriptor, t: &Delivery) -> bool {
        let limit = self.out_limit;
        let Some(link) = self.udp.as_mut() else {
            return false;
        };
        if link.out.len() >= limit {
            self.stats.outbox_overflow += 1;
            return false;
        }
        let delivery = udpmsg::Delivery {
            frame: d,
            src: t.src,
            dst: t.dst,
            udp_offset: d.offset + t.payload_offset as u32,
            udp_len: t.payload_len as u32,
            broadcast: t.broadcast,
        };
        link.rx_held[d.index as usize] = true;
        link.out.push_back(delivery.message());
        self.stats.udp_delivered += 1;
        true
    }

    /// Messages waiting for the udp server.
    pub fn udp_outbox_len(&self) -> usize {
        self.udp.as_ref().map_or(0, |l| l.out.len())
    }

    /// Hands the outbox to the udp server to `send` (as [`Stack::flush`]).
    pub fn flush_udp(&mut self, send: impl FnMut(&[ChanMessage]) -> usize) {
        if let Some(link) = self.udp.as_mut() {
            drain_into(&mut link.out, send);
        }
    }

    /// How many messages from the udp server to read now (each may add two to pf's outbox).
    pub fn udp_receive_budget(&self, max: usize) -> usize {
        (self.out_limit.saturating_sub(self.out.len()) / 2).min(max)
    }

    /// Handles one message from the udp server at `now_ns`.
    pub fn handle_udp(&mut self, m: &ChanMessage, now_ns: u64) {
        let (rx_count, tx_count) = (self.rx.count(), self.tx.view().count());
        let Some(link) = self.udp.as_mut() else {
            return;
        };
        let d = m.descriptor();
        match m.tag {
            udpmsg::tag::RX_RETURN | udpmsg::tag::RX_RETURNS => {
                self.rx_returns(Upper::Udp, m);
            }
            udpmsg::tag::RX_UNREACHABLE => {
                let home = ChanMessage {
                    tag: udpmsg::tag::RX_RETURN,
                    ..*m
                };
                if Kind::decode(&home, rx_count, tx_count).is_err() || !link.take_back(d.index) {
                    self.stats.udp_refused += 1;
                    return;
                }
                // Answered before the buffer is queued home: the answer reads the frame.
                self.udp_unreachable(d, now_ns);
                self.queue_home(d);
            }
            udpmsg::tag::UDP_SEND | udpmsg::tag::TX_GIVE_BACK => {
                let lent = d.pool == netmsg::TX_POOL_ID
                    && link.tx_lent.get(d.index as usize) == Some(&true);
                if !lent {
                    self.stats.udp_refused += 1;
                    return;
                }
                link.tx_lent[d.index as usize] = false;
                link.lent -= 1;
                let whole = PoolDescriptor {
                    offset: 0,
                    len: netmsg::BUFFER_SIZE,
                    ..d
                };
                if m.tag == udpmsg::tag::UDP_SEND {
                    if !self.send_udp(&udpmsg::Outgoing::decode(m), now_ns) {
                        self.stats.udp_refused += 1;
                        let _ = self.tx.free(whole);
                    }
                } else {
                    let _ = self.tx.free(whole);
                }
                self.lend_udp();
            }
            _ => self.stats.udp_refused += 1,
        }
    }

    /// The udp server gave back rx buffer `d` with `RX_UNREACHABLE`: no application bound the
    /// port of the datagram in it. The frame is classified again (nothing the udp server says
    /// about it is trusted) and answered with a port unreachable if it still is a UDP datagram
    /// for us.
    fn udp_unreachable(&mut self, d: PoolDescriptor, now_ns: u64) {
        let Ok(buf) = self.rx.check(d) else {
            self.stats.icmp_errors_not_allowed += 1;
            return;
        };
        // Safety: the udp server handed this buffer back to us (checked: it held it) and we
        // have not sent it home yet; under the path's protocol nobody writes it until the
        // driver has it again. Every parser below is bounds-checked.
        let frame = unsafe { bytes(&buf) };
        match demux::classify_frame(frame, &self.interface()) {
            Verdict::Transport(t) if t.transport == Transport::Udp => {
                self.port_unreachable(frame, &t, now_ns);
            }
            _ => self.stats.icmp_errors_not_allowed += 1,
        }
    }

    /// Connects the tcp server (its channels exist): lends it [`tcpmsg::TX_CREDIT`] tx-pool
    /// buffers, and from now on TCP packets go to it.
    pub fn attach_tcp(&mut self) {
        self.tcp = Some(UdpLink {
            out: VecDeque::with_capacity(self.out_limit),
            rx_held: alloc::vec![false; self.rx.count() as usize],
            tx_lent: alloc::vec![false; self.tx.view().count() as usize],
            lent: 0,
        });
        self.lend_tcp();
    }

    /// Keeps tcp lent `credit` tx-pool buffers from now on (default [`tcpmsg::TX_CREDIT`], for
    /// a tcp on a CPU of its own; the single layout, where ip tops the loan up in the same loop
    /// as tcp uses it, lends [`tcpmsg::TX_CREDIT_ONE_LOOP`]).
    pub fn set_tcp_credit(&mut self, credit: usize) {
        self.tcp_credit = credit;
        self.lend_tcp();
    }

    /// Tops the tcp server's loan up to its credit ([`Stack::set_tcp_credit`]), leaving udp its
    /// credit and ip [`IP_OWN_TX`] buffers for its own frames.
    fn lend_tcp(&mut self) {
        let our = u64::from(u32::from(self.our_ip()));
        let Some(link) = self.tcp.as_mut().filter(|_| self.up) else {
            return;
        };
        let reserve = (udpmsg::TX_CREDIT + IP_OWN_TX) as u32;
        while link.lent < self.tcp_credit && self.tx.in_use() + reserve < self.tx.view().count() {
            let Some(d) = self.tx.alloc() else {
                return;
            };
            link.tx_lent[d.index as usize] = true;
            link.lent += 1;
            link.out
                .push_back(tcpmsg::control(tcpmsg::tag::TX_LEND, d, our, 0));
        }
    }

    /// Hands the IPv4 packet of TCP segment `t` in rx buffer `d` to the tcp server; false
    /// (buffer goes home at once) if its outbox is full.
    fn deliver_tcp(&mut self, d: PoolDescriptor, t: &Delivery) -> bool {
        let limit = self.out_limit;
        let Some(link) = self.tcp.as_mut() else {
            return false;
        };
        if link.out.len() >= limit {
            self.stats.outbox_overflow += 1;
            return false;
        }
        let delivery = tcpmsg::Delivery {
            frame: d,
            ip_offset: d.offset + t.ip_offset as u32,
            ip_len: t.ip_len as u32,
        };
        link.rx_held[d.index as usize] = true;
        link.out.push_back(delivery.message());
        self.stats.tcp_delivered += 1;
        true
    }

    /// Messages waiting for the tcp server.
    pub fn tcp_outbox_len(&self) -> usize {
        self.tcp.as_ref().map_or(0, |l| l.out.len())
    }

    /// Hands the outbox to the tcp server to `send` (as [`Stack::flush`]).
    pub fn flush_tcp(&mut self, send: impl FnMut(&[ChanMessage]) -> usize) {
        if let Some(link) = self.tcp.as_mut() {
            drain_into(&mut link.out, send);
        }
    }

    /// Handles one message from the tcp server at `now_ns`.
    pub fn handle_tcp(&mut self, m: &ChanMessage, now_ns: u64) {
        let Some(link) = self.tcp.as_mut() else {
            return;
        };
        let d = m.descriptor();
        match m.tag {
            tcpmsg::tag::RX_RETURN | tcpmsg::tag::RX_RETURNS => {
                self.rx_returns(Upper::Tcp, m);
            }
            tcpmsg::tag::IP_SEND | tcpmsg::tag::TX_GIVE_BACK => {
                let lent = d.pool == netmsg::TX_POOL_ID
                    && link.tx_lent.get(d.index as usize) == Some(&true);
                if !lent {
                    self.stats.tcp_refused += 1;
                    return;
                }
                link.tx_lent[d.index as usize] = false;
                link.lent -= 1;
                let whole = PoolDescriptor {
                    offset: 0,
                    len: netmsg::BUFFER_SIZE,
                    ..d
                };
                if m.tag == tcpmsg::tag::IP_SEND {
                    if !self.send_tcp(d, now_ns) {
                        self.stats.tcp_refused += 1;
                        let _ = self.tx.free(whole);
                    }
                } else {
                    let _ = self.tx.free(whole);
                }
                self.lend_tcp();
            }
            _ => self.stats.tcp_refused += 1,
        }
    }

    /// udp or tcp (`from`) sent rx-pool buffer `d` home: on to pf if that server held it (else
    /// refused and counted against it).
    fn rx_return(&mut self, from: Upper, d: PoolDescriptor) {
        let link = match from {
            Upper::Udp => self.udp.as_mut(),
            Upper::Tcp => self.tcp.as_mut(),
        };
        if !link.is_some_and(|l| l.take_back(d.index)) {
            *self.refused_by(from) += 1;
            return;
        }
        self.queue_home(d);
    }

    /// udp or tcp (`from`) sent `RX_RETURN` or `RX_RETURNS` `m`: every index is checked before
    /// any buffer is taken back (one bad index refuses the message whole, counted once), then
    /// each buffer goes on as if it had come alone ([`Stack::rx_return`]).
    fn rx_returns(&mut self, from: Upper, m: &ChanMessage) {
        let Ok(kinds) = Kind::decode_all(m, self.rx.count(), self.tx.view().count()) else {
            *self.refused_by(from) += 1;
            return;
        };
        for kind in kinds {
            // The tags decode_all was given decode to nothing else.
            if let Kind::RxReturn(d) = kind {
                self.rx_return(from, d);
            }
        }
    }

    /// The counter of messages refused from udp or tcp.
    fn refused_by(&mut self, from: Upper) -> &mut u64 {
        match from {
            Upper::Udp => &mut self.stats.udp_refused,
            Upper::Tcp => &mut self.stats.tcp_refused,
        }
    }

    /// Queues rx buffer `d`, taken back from udp or tcp, home to pf (folded into the newest
    /// return queued when it fits).
    fn queue_home(&mut self, d: PoolDescriptor) {
        if self.push_out(Kind::RxReturn(d).message()) {
            self.stats.rx_returned += 1;
        }
    }

    /// Writes the Ethernet header in front of the IPv4 packet tcp wrote in a buffer we lent
    /// it, after checking the packet is TCP from our address to a unicast host, and sends the
    /// frame to the next hop. False when it cannot go (the caller frees the buffer).
    fn send_tcp(&mut self, seg: PoolDescriptor, now_ns: u64) -> bool {
        if seg.offset != tcpmsg::TX_HEADROOM
            || seg.len < tcpmsg::MIN_PACKET
            || seg.len > u32::from(self.config.mtu)
        {
            return false;
        }
        let ours = self.config.address;
        let whole = PoolDescriptor {
            offset: 0,
            len: netmsg::BUFFER_SIZE,
            ..seg
        };
        let Ok(mut b) = self.tx.buffer(whole) else {
            return false;
        };
        // Safety: tcp gave this buffer back to us with IP_SEND (checked: it was lent to it);
        // nobody else has it until we send it to pf.
        let buf = unsafe { b.as_mut_slice() };
        let start = ether::HEADER_LEN;
        let Some(packet) = buf.get(start..start + seg.len as usize) else {
            return false;
        };
        let dst = match Ipv4Packet::parse(packet) {
            Ok(p)
                if p.protocol == IpProtocol::TCP
                    && p.src == ours.address()
                    && usize::from(p.total_len) == packet.len() =>
            {
                p.dst
            }
            _ => return false,
        };
        if dst.is_broadcast()
            || Some(dst) == ours.broadcast()
            || dst.is_multicast()
            || dst.is_unspecified()
            || dst == ours.address()
            || dst.is_loopback()
        {
            return false;
        }
        let Some(hop) = self.routes.lookup(dst) else {
            return false;
        };
        let header = EtherHeader {
            dst: Mac::ZERO,
            src: self.mac,
            ethertype: EtherType::IPV4,
        };
        let frame_len = start + seg.len as usize;
        let built = header
            .emit(buf)
            .ok()
            .and_then(|_| ether::pad(buf, frame_len).ok());
        let Some(len) = built else {
            return false;
        };
        let frame = PoolDescriptor {
            offset: 0,
            len: len as u32,
            ..seg
        };
        match self.send_to(hop.next_hop, frame, now_ns) {
            Sent::Now | Sent::Queued => {
                self.stats.tcp_sent += 1;
                true
            }
            Sent::Dropped => true,
        }
    }

    /// Writes the IPv4 and Ethernet headers in front of the UDP segment udp wrote in a buffer
    /// we lent it, and sends the frame to the next hop. False when it cannot go (the caller
    /// frees the buffer).
    fn send_udp(&mut self, o: &udpmsg::Outgoing, now_ns: u64) -> bool {
        let seg = o.segment;
        let max = usize::from(self.config.mtu).saturating_sub(netproto::ipv4::HEADER_LEN);
        if seg.offset != udpmsg::TX_HEADROOM
            || (seg.len as usize) < udpmsg::UDP_HEADER_LEN
            || seg.len as usize > max
        {
            return false;
        }
        let ours = self.config.address;
        let dst = o.dst;
        if dst.is_broadcast()
            || Some(dst) == ours.broadcast()
            || dst.is_multicast()
            || dst.is_unspecified()
            || dst == ours.address()
            || dst.is_loopback()
        {
            return false;
        }
        let Some(hop) = self.routes.lookup(dst) else {
            return false;
        };
        let ident = self.next_ip_ident();
        let frame_len = udpmsg::TX_HEADROOM as usize + seg.len as usize;
        let whole = PoolDescriptor {
            offset: 0,
            len: netmsg::BUFFER_SIZE,
            ..seg
        };
        let Ok(mut b) = self.tx.buffer(whole) else {
            return false;
        };
        // Safety: udp gave this buffer back to us with UDP_SEND (checked: it was lent to it);
        // nobody else has it until we send it to pf.
        let buf = unsafe { b.as_mut_slice() };
        let header = EtherHeader {
            dst: Mac::ZERO,
            src: self.mac,
            ethertype: EtherType::IPV4,
        };
        let repr = Ipv4Repr::new(
            ours.address(),
            dst,
            IpProtocol::UDP,
            ident,
            seg.len as usize,
        );
        let built = header.emit(buf).ok().and_then(|_| {
            repr.emit(buf.get_mut(ether::HEADER_LEN..)?).ok()?;
            ether::pad(buf, frame_len).ok()
        });
        let Some(len) = built else {
            return false;
        };
        let frame = PoolDescriptor {
            offset: 0,
            len: len as u32,
            ..seg
        };
        match self.send_to(hop.next_hop, frame, now_ns) {
            Sent::Now | Sent::Queued => {
                self.stats.udp_sent += 1;
                true
            }
            // `send_to` freed it and counted why.
            Sent::Dropped => true,
        }
    }

    /// Runs the timers due at `now_ns`: ARP retries and give-ups, ping timeouts, DHCP.
    pub fn tick(&mut self, now_ns: u64) {
        let now_ms = now_ns / NS_PER_MS;
        // A remembered lease ends here even when the client never held it (INIT-REBOOT).
        if self.up && self.config.from_dhcp && self.config.lease_end_ms <= now_ms {
            self.lose_lease();
        }
        for _ in 0..DHCP_POLLS_PER_TICK {
            let action = match self.dhcp.as_mut() {
                Some(c) if c.next_deadline() <= now_ms => c.poll(now_ms),
                _ => None,
            };
            match action {
                Some(a) => self.dhcp_action(a, now_ns),
                None => break,
            }
        }
        if self.arp.next_deadline().is_some_and(|t| t <= now_ms) {
            let mut events = Vec::new();
            self.arp.poll(now_ms, |e| events.push(e));
            for e in events {
                match e {
                    ArpEvent::SendRequest(ip) => self.send_arp_request(ip),
                    ArpEvent::Unreachable { ip, packets } => {
                        self.stats.arp_unreachable += packets.len() as u64;
                        self.notice(Notice::ArpUnreachable {
                            ip,
                            packets: packets.len(),
                        });
                        for d in packets {
                            self.host_unreachable(d.index);
                            let _ = self.tx.free(d);
                        }
                    }
                }
            }
        }
        let our_ip = self.our_ip();
        let mut i = 0;
        while let Some(p) = self.pings.get(i).copied() {
            if now_ns < p.deadline_ns {
                i += 1;
                continue;
            }
            // Its echo request may still wait in the ARP cache: the cache hands it back later
            // (sent, or freed when ARP gives up).
            self.pings.swap_remove(i);
            self.stats.pings_timed_out += 1;
            let reply = PingReply::failed(Status::TimedOut, our_ip, p.seq);
            self.replies.push((p.caller, reply.encode()));
        }
    }

    /// The ping whose echo request is buffer `index` failed: ARP for its next hop gave up.
    fn host_unreachable(&mut self, index: u32) {
        if let Some(i) = self.pings.iter().position(|p| p.queued == Some(index)) {
            let p = self.pings.swap_remove(i);
            self.stats.pings_unreachable += 1;
            let reply = PingReply::failed(Status::Unreachable, self.our_ip(), p.seq);
            self.replies.push((p.caller, reply.encode()));
        }
    }

    /// When [`Stack::tick`] has something to do next (nanoseconds), if anything waits.
    pub fn next_deadline(&self) -> Option<u64> {
        let arp = self
            .arp
            .next_deadline()
            .map(|ms| ms.saturating_mul(NS_PER_MS));
        let ping = self.pings.iter().map(|p| p.deadline_ns).min();
        let dhcp = self
            .dhcp
            .as_ref()
            .map(|c| c.next_deadline().saturating_mul(NS_PER_MS));
        let lease_end = (self.up && self.config.from_dhcp)
            .then(|| self.config.lease_end_ms.saturating_mul(NS_PER_MS));
        [arp, ping, dhcp, lease_end].into_iter().flatten().min()
    }
}

/// Byte `i` of the `len` data bytes of our echo request sent at `sent_ns`, laid out as iputils
/// does: the send time (nanoseconds, big-endian) in the first 8 bytes when there is room for
/// it, then each byte its own index.
fn echo_byte(i: usize, len: usize, sent_ns: u64) -> u8 {
    match sent_ns.to_be_bytes().get(i) {
        Some(&s) if len >= 8 => s,
        _ => i as u8,
    }
}

/// Writes the data of our echo request sent at `sent_ns` ([`echo_byte`]).
pub fn fill_echo_data(data: &mut [u8], sent_ns: u64) {
    let len = data.len();
    for (i, b) in data.iter_mut().enumerate() {
        *b = echo_byte(i, len, sent_ns);
    }
}

/// True when `data` is what [`fill_echo_data`] wrote for `len` bytes at `sent_ns`.
fn echo_data_matches(data: &[u8], len: u16, sent_ns: u64) -> bool {
    data.len() == usize::from(len)
        && data
            .iter()
            .enumerate()
            .all(|(i, &b)| b == echo_byte(i, data.len(), sent_ns))
}

mod recovery;
/// Hands `out` to `send` from the front, as much as it takes (it returns how many of the
/// messages offered it took), until it takes fewer than offered or nothing is left.
fn drain_into(out: &mut VecDeque<ChanMessage>, mut send: impl FnMut(&[ChanMessage]) -> usize) {
    loop {
        let (first, _) = out.as_slices();
        if first.is_empty() {
            return;
        }
        let offered = first.len();
        let taken = send(first).min(offered);
        out.drain(..taken);
        if taken < offered {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
