//! The ip server's kernel-IPC protocol, shared with its clients (the shell's `ping` and
//! `ifconfig`).
//!
//! Every request is sent with `ipc_call_timeout` (or `ipc_call`) to the process called
//! [`SERVICE`]; word 0 selects the operation. Every reply has a [`Status`] in word 0. All words
//! are little-endian `u64`; addresses are the `u32` of their four bytes in network order
//! (`u32::from(Ipv4Addr)`).
//!
//! - [`OP_PING`]: send one ICMP echo request and answer when the echo reply came or the
//!   timeout passed — one request per echo, the client paces them. Request words: 1 destination,
//!   2 identifier, 3 sequence number, 4 timeout in milliseconds, 5 data bytes. The server
//!   answers later, with `ipc_reply`, keeping the caller blocked in its call meanwhile; so the
//!   client's own call timeout must be longer than the timeout it asks for ([`call_timeout_ns`]).
//!   Reply: [`PingReply`]. The round-trip time is measured by the server (sent to received, its
//!   clock), so the kernel IPC around it does not count.
//! - [`OP_INFO`]: the interface: address and prefix, gateway, DNS, MAC, MTU, ARP entries,
//!   pings in flight. Reply: [`Info`], at once, with the DHCP client's state ([`DhcpInfo`]) in
//!   spare bits of the MTU's word (0.0.0.0/0 is the address while DHCP has no lease).
//! - [`OP_COUNTERS`]: request word 1 = index of the first counter wanted; the reply
//!   ([`CountersPage`], at once) carries the total number of counters and up to [`PER_PAGE`]
//!   values from there. Their names, in order, are [`counter_names`]: the demultiplexer's
//!   (`netproto::demux::Counters::fields`) then the server's own ([`crate::stack::Stats`]).
//!
//! Anything else is answered with [`Status::BadRequest`].

use axolotl_abi::IPC_MSG_LEN;
use core::fmt;
use core::net::Ipv4Addr;
use netproto::demux;
use netproto::{Ipv4Cidr, Mac};

use crate::stack::Stats;

/// The process name of the ip server.
pub const SERVICE: &str = "ip";

/// A kernel IPC message.
pub type Message = [u8; IPC_MSG_LEN];

/// Request: one echo request, answered when its reply came or it timed out.
pub const OP_PING: u64 = 1;
/// Request: the interface's configuration.
pub const OP_INFO: u64 = 2;
/// Request: a page of counters.
pub const OP_COUNTERS: u64 = 3;

/// Echo data bytes when the client has no preference (as `ping`'s 56).
pub const DEFAULT_PING_DATA: u16 = 56;
/// Most echo data bytes: a 1500-byte MTU minus the IPv4 and ICMP headers.
pub const MAX_PING_DATA: u16 = 1472;
/// Longest timeout a ping may ask for, in milliseconds.
pub const MAX_PING_TIMEOUT_MS: u32 = 60_000;
/// Counters per [`OP_COUNTERS`] reply.
pub const PER_PAGE: usize = 6;

/// How long a client should let its `ipc_call_timeout` for a ping with `timeout_ms` last: the
/// server answers at the latest when `timeout_ms` passed; one more second covers scheduling.
pub fn call_timeout_ns(timeout_ms: u32) -> u64 {
    u64::from(timeout_ms) * 1_000_000 + 1_000_000_000
}

fn word(m: &Message, i: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = m.get(i * 8..i * 8 + 8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

fn from_words(words: &[u64]) -> Message {
    let mut m = [0u8; IPC_MSG_LEN];
    for (chunk, w) in m.as_chunks_mut::<8>().0.iter_mut().zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    m
}

fn ip(w: u64) -> Ipv4Addr {
    Ipv4Addr::from(w as u32)
}

fn optional_ip(w: u64) -> Option<Ipv4Addr> {
    (w >> 32 != 0).then(|| ip(w))
}

fn optional_word(a: Option<Ipv4Addr>) -> u64 {
    a.map_or(0, |a| 1 << 32 | u64::from(u32::from(a)))
}

/// A MAC address as a word: first byte lowest.
pub fn mac_word(mac: Mac) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac.0);
    u64::from_le_bytes(b)
}

/// The MAC address of [`mac_word`].
pub fn word_mac(w: u64) -> Mac {
    let b = w.to_le_bytes();
    Mac([b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// Word 0 of every reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done: the echo reply came, or the information is in the reply.
    Ok,
    /// No echo reply within the timeout.
    TimedOut,
    /// The destination (or the next hop) did not answer ARP, or a router said it is
    /// unreachable ([`PingReply::unreachable_code`] then holds the ICMP code + 1).
    Unreachable,
    /// No route to the destination.
    NoRoute,
    /// Too many pings in flight, or one with the same identifier and sequence number.
    Busy,
    /// No transmit buffer free (the tx-pool is all in flight).
    NoBuffer,
    /// The request is malformed or unknown.
    BadRequest,
}

impl Status {
    fn code(self) -> u64 {
        match self {
            Self::Ok => 0,
            Self::TimedOut => 1,
            Self::Unreachable => 2,
            Self::NoRoute => 3,
            Self::Busy => 4,
            Self::NoBuffer => 5,
            Self::BadRequest => 6,
        }
    }

    fn from_code(c: u64) -> Self {
        match c {
            0 => Self::Ok,
            1 => Self::TimedOut,
            2 => Self::Unreachable,
            3 => Self::NoRoute,
            4 => Self::Busy,
            5 => Self::NoBuffer,
            _ => Self::BadRequest,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::TimedOut => "timed out",
            Self::Unreachable => "unreachable",
            Self::NoRoute => "no route to host",
            Self::Busy => "too many pings in flight",
            Self::NoBuffer => "no transmit buffer free",
            Self::BadRequest => "bad request",
        })
    }
}

/// What [`OP_PING`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingRequest {
    /// Where to send the echo request.
    pub dst: Ipv4Addr,
    /// Its identifier.
    pub ident: u16,
    /// Its sequence number.
    pub seq: u16,
    /// How long to wait for the reply, in milliseconds (1..=[`MAX_PING_TIMEOUT_MS`]).
    pub timeout_ms: u32,
    /// Echo data bytes (0..=[`MAX_PING_DATA`]).
    pub data_len: u16,
}

/// A request the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// [`OP_PING`].
    Ping(PingRequest),
    /// [`OP_INFO`].
    Info,
    /// [`OP_COUNTERS`] from this counter index.
    Counters {
        /// Index of the first counter wanted.
        first: u32,
    },
}

impl Request {
    /// The request message.
    pub fn encode(&self) -> Message {
        match self {
            Self::Ping(p) => from_words(&[
                OP_PING,
                u64::from(u32::from(p.dst)),
                u64::from(p.ident),
                u64::from(p.seq),
                u64::from(p.timeout_ms),
                u64::from(p.data_len),
            ]),
            Self::Info => from_words(&[OP_INFO]),
            Self::Counters { first } => from_words(&[OP_COUNTERS, u64::from(*first)]),
        }
    }

    /// Reads a request from a client (untrusted): unknown operations, values out of range and
    /// non-zero unused words are refused.
    pub fn decode(m: &Message) -> Option<Self> {
        let w = |i| word(m, i);
        let unused_zero = |from: usize| (from..IPC_MSG_LEN / 8).all(|i| w(i) == 0);
        match w(0) {
            OP_PING => {
                let fits = |v: u64, max: u64| v <= max;
                let ok = fits(w(1), u64::from(u32::MAX))
                    && fits(w(2), u64::from(u16::MAX))
                    && fits(w(3), u64::from(u16::MAX))
                    && (1..=u64::from(MAX_PING_TIMEOUT_MS)).contains(&w(4))
                    && fits(w(5), u64::from(MAX_PING_DATA))
                    && unused_zero(6);
                ok.then(|| {
                    Self::Ping(PingRequest {
                        dst: ip(w(1)),
                        ident: w(2) as u16,
                        seq: w(3) as u16,
                        timeout_ms: w(4) as u32,
                        data_len: w(5) as u16,
                    })
                })
            }
            OP_INFO => unused_zero(1).then_some(Self::Info),
            OP_COUNTERS => (w(1) <= u64::from(u32::MAX) && unused_zero(2))
                .then(|| Self::Counters { first: w(1) as u32 }),
            _ => None,
        }
    }
}

/// The reply with `status` alone (refusals).
pub fn status_reply(status: Status) -> Message {
    from_words(&[status.code()])
}

/// The status of any reply.
pub fn status(m: &Message) -> Status {
    Status::from_code(word(m, 0))
}

/// The answer to [`OP_PING`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReply {
    /// [`Status::Ok`] when the echo reply came.
    pub status: Status,
    /// Echo request sent to echo reply received, in nanoseconds (0 unless [`Status::Ok`]).
    pub rtt_ns: u64,
    /// Who answered: the destination, or the router that reported it unreachable (or our own
    /// address when ARP failed).
    pub from: Ipv4Addr,
    /// The sequence number.
    pub seq: u16,
    /// Bytes of the ICMP echo reply (header and data).
    pub icmp_len: u16,
    /// The reply's TTL.
    pub ttl: u8,
    /// For [`Status::Unreachable`] from a router: its ICMP code + 1 (0: ARP failed).
    pub unreachable_code: u8,
}

impl PingReply {
    /// A reply carrying only a status (the echo did not come back).
    pub fn failed(status: Status, from: Ipv4Addr, seq: u16) -> Self {
        Self {
            status,
            rtt_ns: 0,
            from,
            seq,
            icmp_len: 0,
            ttl: 0,
            unreachable_code: 0,
        }
    }

    /// The reply message.
    pub fn encode(&self) -> Message {
        from_words(&[
            self.status.code(),
            self.rtt_ns,
            u64::from(u32::from(self.from)),
            u64::from(self.seq),
            u64::from(self.icmp_len),
            u64::from(self.ttl),
            u64::from(self.unreachable_code),
        ])
    }

    /// The reply in a message (from the server: values are cut to their types).
    pub fn decode(m: &Message) -> Self {
        Self {
            status: status(m),
            rtt_ns: word(m, 1),
            from: ip(word(m, 2)),
            seq: word(m, 3) as u16,
            icmp_len: word(m, 4) as u16,
            ttl: word(m, 5) as u8,
            unreachable_code: word(m, 6) as u8,
        }
    }

    /// What `ping` prints after "From X icmp_seq=N" for an unreachable destination, as
    /// iputils words it.
    pub fn unreachable_text(&self) -> &'static str {
        match self.unreachable_code {
            0 | 2 => "Destination Host Unreachable",
            1 => "Destination Net Unreachable",
            3 => "Destination Protocol Unreachable",
            4 => "Destination Port Unreachable",
            5 => "Frag needed",
            6 => "Source Route Failed",
            _ => "Destination Unreachable",
        }
    }
}

/// The answer to [`OP_INFO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Our address and prefix.
    pub address: Ipv4Cidr,
    /// The default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// The DNS server.
    pub dns: Option<Ipv4Addr>,
    /// The NIC's address, as the driver reported it.
    pub mac: Mac,
    /// The link MTU.
    pub mtu: u16,
    /// Valid ARP cache entries.
    pub arp_entries: u32,
    /// Pings waiting for their reply.
    pub pings_in_flight: u32,
}

impl Info {
    /// The reply message.
    pub fn encode(&self) -> Message {
        from_words(&[
            Status::Ok.code(),
            u64::from(u32::from(self.address.address())),
            u64::from(self.address.prefix_len()),
            optional_word(self.gateway),
            optional_word(self.dns),
            mac_word(self.mac),
            u64::from(self.mtu),
            u64::from(self.arp_entries) << 32 | u64::from(self.pings_in_flight),
        ])
    }

    /// The information in a reply (`None` if the status is not [`Status::Ok`] or the prefix is
    /// impossible).
    pub fn decode(m: &Message) -> Option<Self> {
        if status(m) != Status::Ok {
            return None;
        }
        let prefix = u8::try_from(word(m, 2)).ok()?;
        Some(Self {
            address: Ipv4Cidr::new(ip(word(m, 1)), prefix).ok()?,
            gateway: optional_ip(word(m, 3)),
            dns: optional_ip(word(m, 4)),
            mac: word_mac(word(m, 5)),
            mtu: word(m, 6) as u16,
            arp_entries: (word(m, 7) >> 32) as u32,
            pings_in_flight: word(m, 7) as u32,
        })
    }
}

/// Where the ip server's DHCP client is, as [`OP_INFO`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpPhase {
    /// No DHCP: the configuration is static.
    Off,
    /// Looking for a server: DISCOVER sent, no offer taken yet.
    Selecting,
    /// REQUEST sent for an offer, waiting for the ACK.
    Requesting,
    /// After a restart: REQUEST sent for the remembered address.
    Rebooting,
    /// Holding a lease.
    Bound,
    /// Past T1: renewing with the server that granted the lease.
    Renewing,
    /// Past T2: renewing with any server.
    Rebinding,
}

impl DhcpPhase {
    fn code(self) -> u64 {
        match self {
            Self::Off => 0,
            Self::Selecting => 1,
            Self::Requesting => 2,
            Self::Rebooting => 3,
            Self::Bound => 4,
            Self::Renewing => 5,
            Self::Rebinding => 6,
        }
    }

    fn from_code(c: u64) -> Self {
        match c {
            1 => Self::Selecting,
            2 => Self::Requesting,
            3 => Self::Rebooting,
            4 => Self::Bound,
            5 => Self::Renewing,
            6 => Self::Rebinding,
            _ => Self::Off,
        }
    }

    /// Its name in `ifconfig`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Selecting => "selecting",
            Self::Requesting => "requesting",
            Self::Rebooting => "rebooting",
            Self::Bound => "bound",
            Self::Renewing => "renewing",
            Self::Rebinding => "rebinding",
        }
    }
}

/// The DHCP client's part of the [`OP_INFO`] reply, in word 6 above the MTU's 16 bits: bits
/// 16..20 the phase, bit 20 set when an address is in force, bits 21..32 the messages sent in
/// the current exchange (at most 2047), bits 32..64 the seconds left of the lease in force (0
/// without). A server without DHCP leaves them zero ([`DhcpPhase::Off`]), and [`Info::decode`]
/// does not look at them, so [`Info`] is the same with or without DHCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpInfo {
    /// Where the client is.
    pub phase: DhcpPhase,
    /// An address is in force (a lease, or one remembered across a restart).
    pub configured: bool,
    /// DISCOVERs or REQUESTs sent in the current exchange.
    pub attempts: u16,
    /// Seconds until the lease in force ends.
    pub lease_secs_left: u32,
}

impl DhcpInfo {
    /// No DHCP client.
    pub const OFF: Self = Self {
        phase: DhcpPhase::Off,
        configured: false,
        attempts: 0,
        lease_secs_left: 0,
    };
    const MAX_ATTEMPTS: u16 = 0x7FF;

    /// Writes the fields into an [`OP_INFO`] reply (its MTU stays as it is).
    pub fn write(&self, m: &mut Message) {
        let w = word(m, 6) & 0xFFFF
            | self.phase.code() << 16
            | u64::from(self.configured) << 20
            | u64::from(self.attempts.min(Self::MAX_ATTEMPTS)) << 21
            | u64::from(self.lease_secs_left) << 32;
        if let Some(b) = m.get_mut(6 * 8..7 * 8) {
            b.copy_from_slice(&w.to_le_bytes());
        }
    }

    /// The fields of an [`OP_INFO`] reply (from the server: an unknown phase reads as
    /// [`DhcpPhase::Off`]).
    pub fn read(m: &Message) -> Self {
        let w = word(m, 6);
        Self {
            phase: DhcpPhase::from_code(w >> 16 & 0xF),
            configured: w >> 20 & 1 != 0,
            attempts: (w >> 21 & u64::from(Self::MAX_ATTEMPTS)) as u16,
            lease_secs_left: (w >> 32) as u32,
        }
    }
}

/// The answer to [`OP_COUNTERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountersPage {
    /// How many counters the server has.
    pub total: u32,
    /// Index of `values[0]`.
    pub first: u32,
    /// The values from `first`; only `min(PER_PAGE, total - first)` are counters.
    pub values: [u64; PER_PAGE],
}

impl CountersPage {
    /// The page of `all` starting at `first`.
    pub fn of(all: &[u64], first: u32) -> Self {
        let mut values = [0u64; PER_PAGE];
        let from = (first as usize).min(all.len());
        for (v, c) in values.iter_mut().zip(all.get(from..).unwrap_or_default()) {
            *v = *c;
        }
        Self {
            total: all.len() as u32,
            first,
            values,
        }
    }

    /// The counters this page really holds.
    pub fn valid(&self) -> &[u64] {
        let n = (self.total.saturating_sub(self.first) as usize).min(PER_PAGE);
        &self.values[..n]
    }

    /// The reply message.
    pub fn encode(&self) -> Message {
        let mut w = [0u64; 8];
        w[0] = Status::Ok.code();
        w[1] = u64::from(self.total) << 32 | u64::from(self.first);
        w[2..].copy_from_slice(&self.values);
        from_words(&w)
    }

    /// The page in a reply (`None` if the status is not [`Status::Ok`]).
    pub fn decode(m: &Message) -> Option<Self> {
        if status(m) != Status::Ok {
            return None;
        }
        let mut values = [0u64; PER_PAGE];
        for (i, v) in values.iter_mut().enumerate() {
            *v = word(m, 2 + i);
        }
        Some(Self {
            total: (word(m, 1) >> 32) as u32,
            first: word(m, 1) as u32,
            values,
        })
    }
}

/// The names of the counters [`OP_COUNTERS`] reports, in order.
pub fn counter_names() -> impl Iterator<Item = &'static str> {
    demux::Counters::default()
        .fields()
        .into_iter()
        .map(|(n, _)| n)
        .chain(Stats::default().fields().into_iter().map(|(n, _)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let ping = Request::Ping(PingRequest {
            dst: Ipv4Addr::new(10, 0, 2, 2),
            ident: 0xBEEF,
            seq: 65535,
            timeout_ms: 2000,
            data_len: 56,
        });
        for r in [ping, Request::Info, Request::Counters { first: 12 }] {
            assert_eq!(Request::decode(&r.encode()), Some(r));
        }
        let Request::Ping(p) = ping else {
            unreachable!()
        };
        let bad = |f: fn(&mut Message)| {
            let mut m = ping.encode();
            f(&mut m);
            Request::decode(&m)
        };
        assert_eq!(bad(|m| m[0] = 9), None);
        assert_eq!(bad(|m| m[8 * 4..8 * 5].fill(0)), None, "timeout 0");
        assert_eq!(
            bad(|m| m[8 * 4..8 * 5].copy_from_slice(&60_001u64.to_le_bytes())),
            None
        );
        assert_eq!(
            bad(|m| m[8 * 5..8 * 6].copy_from_slice(&1473u64.to_le_bytes())),
            None
        );
        assert_eq!(bad(|m| m[8 * 2 + 2] = 1), None, "ident above u16");
        assert_eq!(bad(|m| m[63] = 1), None, "unused word");
        assert_eq!(bad(|m| m[12] = 1), None, "destination above u32");
        assert_eq!(p.timeout_ms, 2000);
        assert_eq!(Request::decode(&[0u8; 64]), None);
        assert_eq!(Request::decode(&from_words(&[OP_INFO, 1])), None);
        assert_eq!(Request::decode(&from_words(&[OP_COUNTERS, 1 << 32])), None);
        assert_eq!(status(&status_reply(Status::Busy)), Status::Busy);
        assert_eq!(status(&from_words(&[77])), Status::BadRequest);
        assert_eq!(call_timeout_ns(2000), 3_000_000_000);
    }

    #[test]
    fn replies_round_trip() {
        let r = PingReply {
            status: Status::Ok,
            rtt_ns: 412_345,
            from: Ipv4Addr::new(10, 0, 2, 2),
            seq: 3,
            icmp_len: 64,
            ttl: 255,
            unreachable_code: 0,
        };
        assert_eq!(PingReply::decode(&r.encode()), r);
        let f = PingReply::failed(Status::Unreachable, Ipv4Addr::new(10, 0, 2, 15), 9);
        assert_eq!(PingReply::decode(&f.encode()), f);
        assert_eq!(f.unreachable_text(), "Destination Host Unreachable");
        let info = Info {
            address: "10.0.2.15/24".parse().unwrap(),
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: None,
            mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            mtu: 1500,
            arp_entries: 1,
            pings_in_flight: 2,
        };
        assert_eq!(Info::decode(&info.encode()), Some(info));
        // A gateway of 0.0.0.0 is still a gateway; absence is its own flag.
        let zero_gw = Info {
            gateway: Some(Ipv4Addr::UNSPECIFIED),
            ..info
        };
        assert_eq!(Info::decode(&zero_gw.encode()), Some(zero_gw));
        assert_eq!(Info::decode(&status_reply(Status::BadRequest)), None);
        let mut m = info.encode();
        m[16] = 33;
        assert_eq!(Info::decode(&m), None, "prefix 33");
        assert_eq!(word_mac(mac_word(info.mac)), info.mac);
        // DHCP's part rides in word 6 without changing the information.
        assert_eq!(DhcpInfo::read(&info.encode()), DhcpInfo::OFF);
        let dhcp = DhcpInfo {
            phase: DhcpPhase::Rebinding,
            configured: true,
            attempts: 5000,
            lease_secs_left: u32::MAX,
        };
        let mut m = info.encode();
        dhcp.write(&mut m);
        assert_eq!(Info::decode(&m), Some(info));
        assert_eq!(
            DhcpInfo::read(&m),
            DhcpInfo {
                attempts: 2047,
                ..dhcp
            }
        );
        for phase in [
            DhcpPhase::Off,
            DhcpPhase::Selecting,
            DhcpPhase::Requesting,
            DhcpPhase::Rebooting,
            DhcpPhase::Bound,
            DhcpPhase::Renewing,
        ] {
            let d = DhcpInfo {
                phase,
                configured: false,
                attempts: 3,
                lease_secs_left: 0,
            };
            let mut m = info.encode();
            d.write(&mut m);
            assert_eq!(DhcpInfo::read(&m), d);
        }
        m[6 * 8 + 2] = 0x0F;
        assert_eq!(DhcpInfo::read(&m).phase, DhcpPhase::Off, "unknown phase");
    }

    #[test]
    fn counters_come_in_pages() {
        let all: Vec<u64> = (100..113).collect();
        let p = CountersPage::of(&all, 12);
        assert_eq!(p.valid(), &[112]);
        assert_eq!(CountersPage::decode(&p.encode()), Some(p));
        let p = CountersPage::of(&all, 6);
        assert_eq!(p.valid(), &[106, 107, 108, 109, 110, 111]);
        let past = CountersPage::of(&all, 40);
        assert_eq!(past.valid(), &[] as &[u64]);
        assert_eq!((past.total, past.first), (13, 40));
        let names: Vec<_> = counter_names().collect();
        assert_eq!(names.first(), Some(&"rx_frames"));
        assert!(names.contains(&"tx_pool_empty") && names.contains(&"no_transport_server"));
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "names are unique");
    }
}
