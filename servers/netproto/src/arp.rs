//! ARP for IPv4 over Ethernet (RFC 826), and the ARP cache.
//!
//! [`ArpPacket::parse`] accepts only hardware type 1 (Ethernet), protocol type 0x0800 (IPv4),
//! address lengths 6 and 4, and operations 1 (request) and 2 (reply); a sender hardware address
//! that is a group (multicast or broadcast) address is refused, so that nobody can make the cache
//! send unicast traffic to a broadcast address. Bytes after the 28-byte packet (Ethernet padding)
//! are ignored.
//!
//! [`ArpCache`] keeps a bounded number of entries, each valid for [`ArpPolicy::entry_ttl_ms`]
//! after it was last confirmed, and a bounded queue of packets waiting for a destination's
//! address. It does no I/O: [`ArpCache::resolve`] and [`ArpCache::poll`] return what to send
//! (the queued packet, or an ARP request) and what to give up on, and the packets are opaque
//! handles `P` (in the ip server, buffer descriptors that must go back to their pool), always
//! returned to the caller when the cache lets go of them. A destination's full queue refuses
//! the newest packet and keeps the oldest: after a retransmission timeout TCP sends from the
//! first lost segment on, and that first segment is the one the receiver waits for.
//!
//! [`ArpCache::version`] moves whenever an entry is learned or confirmed, so that the ip server
//! can keep the cache in its state region across a restart ([`ArpCache::to_save`],
//! [`save_neighbours`]; [`load_neighbours`] and [`ArpCache::insert`] bring it back): a
//! restarted ip that had to ask again for its gateway would hold, or drop, everything TCP sends
//! meanwhile.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

use crate::BuildError;
use crate::ether::{self, EtherHeader, EtherType, Mac};
use crate::wire;

/// The length of an ARP packet for IPv4 over Ethernet.
pub const PACKET_LEN: usize = 28;

/// An ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`? Tell `sender_ip`.
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

impl ArpOp {
    fn code(self) -> u16 {
        match self {
            Self::Request => 1,
            Self::Reply => 2,
        }
    }
}

/// Why an ARP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than 28 bytes.
    Truncated,
    /// Hardware type not 1 (Ethernet): the value found.
    UnsupportedHardware(u16),
    /// Protocol type not 0x0800 (IPv4): the value found.
    UnsupportedProtocol(u16),
    /// Hardware or protocol address length not 6 and 4.
    BadAddressLength,
    /// Operation neither request (1) nor reply (2): the value found.
    UnknownOperation(u16),
    /// The sender hardware address is a multicast or broadcast address.
    BadSenderMac,
}

impl fmt::Display for ArpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("arp: truncated"),
            Self::UnsupportedHardware(h) => write!(f, "arp: hardware type {h}"),
            Self::UnsupportedProtocol(p) => write!(f, "arp: protocol type {p:#06x}"),
            Self::BadAddressLength => f.write_str("arp: address lengths not 6/4"),
            Self::UnknownOperation(o) => write!(f, "arp: operation {o}"),
            Self::BadSenderMac => f.write_str("arp: group sender address"),
        }
    }
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: ArpOp,
    /// The sender's hardware address.
    pub sender_mac: Mac,
    /// The sender's IPv4 address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// The target's hardware address (ignored, usually zero, in a request).
    pub target_mac: Mac,
    /// The target's IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses the first 28 bytes of `buf` (an Ethernet payload).
    pub fn parse(buf: &[u8]) -> Result<Self, ArpError> {
        let p: [u8; PACKET_LEN] = wire::bytes(buf, 0).ok_or(ArpError::Truncated)?;
        let htype = u16::from_be_bytes([p[0], p[1]]);
        if htype != 1 {
            return Err(ArpError::UnsupportedHardware(htype));
        }
        let ptype = u16::from_be_bytes([p[2], p[3]]);
        if ptype != EtherType::IPV4.0 {
            return Err(ArpError::UnsupportedProtocol(ptype));
        }
        if p[4] != 6 || p[5] != 4 {
            return Err(ArpError::BadAddressLength);
        }
        let op = match u16::from_be_bytes([p[6], p[7]]) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            o => return Err(ArpError::UnknownOperation(o)),
        };
        let sender_mac = Mac([p[8], p[9], p[10], p[11], p[12], p[13]]);
        if sender_mac.is_multicast() {
            return Err(ArpError::BadSenderMac);
        }
        Ok(Self {
            op,
            sender_mac,
            sender_ip: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
            target_mac: Mac([p[18], p[19], p[20], p[21], p[22], p[23]]),
            target_ip: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
        })
    }

    /// A request from `our_mac`/`our_ip` asking for `target_ip`'s address.
    pub fn request(our_mac: Mac, our_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Self {
        Self {
            op: ArpOp::Request,
            sender_mac: our_mac,
            sender_ip: our_ip,
            target_mac: Mac::ZERO,
            target_ip,
        }
    }

    /// The reply to this request saying that its target address is at `our_mac`.
    pub fn reply(&self, our_mac: Mac) -> Self {
        Self {
            op: ArpOp::Reply,
            sender_mac: our_mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    /// Writes the 28-byte packet to `buf`; returns [`PACKET_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let out = wire::out(buf, PACKET_LEN)?;
        wire::put(out, 0, &[0, 1, 0x08, 0x00, 6, 4])?;
        wire::put16(out, 6, self.op.code())?;
        wire::put(out, 8, &self.sender_mac.0)?;
        wire::put(out, 14, &self.sender_ip.octets())?;
        wire::put(out, 18, &self.target_mac.0)?;
        wire::put(out, 24, &self.target_ip.octets())?;
        Ok(PACKET_LEN)
    }

    /// Writes the whole Ethernet frame, padded to 60 bytes: requests go to the broadcast
    /// address, replies to the target's; returns the frame's length.
    pub fn emit_frame(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let dst = match self.op {
            ArpOp::Request => Mac::BROADCAST,
            ArpOp::Reply => self.target_mac,
        };
        let mut body = [0u8; PACKET_LEN];
        self.emit(&mut body)?;
        EtherHeader {
            dst,
            src: self.sender_mac,
            ethertype: EtherType::ARP,
        }
        .emit_frame(buf, &body)
    }
}

/// The length of an ARP frame as sent (padded to the Ethernet minimum).
pub const FRAME_LEN: usize = ether::MIN_FRAME_LEN;

/// The ARP cache's limits and timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPolicy {
    /// How many addresses the cache holds; the oldest is replaced when full.
    pub capacity: usize,
    /// How long an entry is trusted after it was last confirmed, in milliseconds.
    pub entry_ttl_ms: u64,
    /// How many destinations may wait for resolution at once.
    pub max_pending_destinations: usize,
    /// How many packets may wait for one destination; when full, the newest is refused.
    pub max_pending_per_destination: usize,
    /// Time between ARP requests for a destination that has not answered, in milliseconds.
    pub retry_interval_ms: u64,
    /// Requests sent for a destination before giving up on it and its packets.
    pub max_requests: u32,
}

impl Default for ArpPolicy {
    /// 64 entries for 60 s; 8 destinations waiting, 16 packets each; a request every second,
    /// 3 in all (as Linux's `mcast_solicit`).
    fn default() -> Self {
        Self {
            capacity: 64,
            entry_ttl_ms: 60_000,
            max_pending_destinations: 8,
            max_pending_per_destination: 16,
            retry_interval_ms: 1_000,
            max_requests: 3,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: Ipv4Addr,
    mac: Mac,
    confirmed_ms: u64,
}

#[derive(Debug)]
struct Pending<P> {
    ip: Ipv4Addr,
    packets: VecDeque<P>,
    requests_sent: u32,
    next_request_ms: u64,
}

/// Why [`ArpCache::resolve`] could not queue a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// [`ArpPolicy::max_pending_destinations`] destinations are already waiting.
    TooManyDestinations,
    /// [`ArpPolicy::max_pending_per_destination`] is zero: nothing may wait.
    QueueDisabled,
    /// [`ArpPolicy::max_pending_per_destination`] packets wait for this destination already
    /// (the oldest are kept).
    QueueFull,
}

/// What to do with a packet handed to [`ArpCache::resolve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<P> {
    /// The address is known: send `packet` to `mac` now.
    Ready {
        /// The next hop's hardware address.
        mac: Mac,
        /// The packet, handed back.
        packet: P,
    },
    /// The packet waits for the address.
    Queued {
        /// Broadcast an ARP request for the next hop now (the first packet for it).
        send_request: bool,
    },
    /// The packet could not wait: free it.
    Refused {
        /// The packet, handed back.
        packet: P,
        /// Why.
        reason: QueueError,
    },
}

/// Something [`ArpCache::poll`] says must be done now.
#[derive(Debug, PartialEq, Eq)]
pub enum ArpEvent<P> {
    /// Broadcast another ARP request for this address.
    SendRequest(Ipv4Addr),
    /// The address did not answer [`ArpPolicy::max_requests`] requests: free its packets (and,
    /// if the ip server wishes, tell their senders the host is unreachable).
    Unreachable {
        /// The address given up on.
        ip: Ipv4Addr,
        /// The packets that waited for it, oldest first.
        packets: Vec<P>,
    },
}

/// What the ip server does about a received ARP packet ([`ArpCache::handle`]).
#[derive(Debug, PartialEq, Eq)]
pub struct ArpOutcome<P> {
    /// A reply to send (the packet asked for our address).
    pub reply: Option<ArpPacket>,
    /// Packets that waited for the sender's address: send them to it now, oldest first.
    pub released: Vec<P>,
    /// The sender claims our own address: an address conflict to report.
    pub conflict: bool,
}

/// The ARP cache: see the module documentation.
#[derive(Debug)]
pub struct ArpCache<P> {
    policy: ArpPolicy,
    entries: Vec<Entry>,
    pending: Vec<Pending<P>>,
    version: u64,
}

impl<P> ArpCache<P> {
    /// An empty cache. Allocates its tables once, here.
    pub fn new(policy: ArpPolicy) -> Self {
        Self {
            policy,
            entries: Vec::with_capacity(policy.capacity),
            pending: Vec::with_capacity(policy.max_pending_destinations),
            version: 0,
        }
    }

    /// Moves whenever an entry is learned or confirmed ([`ArpCache::insert`]).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The policy in force.
    pub fn policy(&self) -> &ArpPolicy {
        &self.policy
    }

    fn fresh(&self, e: &Entry, now_ms: u64) -> bool {
        now_ms.saturating_sub(e.confirmed_ms) < self.policy.entry_ttl_ms
    }

    /// The hardware address of `ip`, if known and not expired.
    pub fn lookup(&self, ip: Ipv4Addr, now_ms: u64) -> Option<Mac> {
        self.entries
            .iter()
            .find(|e| e.ip == ip && self.fresh(e, now_ms))
            .map(|e| e.mac)
    }

    /// Learns that `ip` is at `mac`: adds or refreshes the entry (replacing an expired one, or
    /// the least recently confirmed, when full) and returns the packets that waited for `ip`,
    /// oldest first, to be sent to `mac` now.
    pub fn insert(&mut self, ip: Ipv4Addr, mac: Mac, now_ms: u64) -> Vec<P> {
        self.version = self.version.wrapping_add(1);
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            e.mac = mac;
            e.confirmed_ms = now_ms;
        } else if self.entries.len() < self.policy.capacity {
            self.entries.push(Entry {
                ip,
                mac,
                confirmed_ms: now_ms,
            });
        } else if let Some(victim) = self.entries.iter_mut().min_by_key(|e| e.confirmed_ms) {
            // The least recently confirmed entry is also the first to have expired.
            *victim = Entry {
                ip,
                mac,
                confirmed_ms: now_ms,
            };
        }
        self.take_pending(ip)
    }

    /// RFC 826's merge step: updates `ip`'s entry only if the cache has one or packets wait for
    /// it. Returns the waiting packets, or `None` when `ip` was unknown (nothing learned).
    pub fn refresh(&mut self, ip: Ipv4Addr, mac: Mac, now_ms: u64) -> Option<Vec<P>> {
        let known =
            self.entries.iter().any(|e| e.ip == ip) || self.pending.iter().any(|p| p.ip == ip);
        known.then(|| self.insert(ip, mac, now_ms))
    }

    fn take_pending(&mut self, ip: Ipv4Addr) -> Vec<P> {
        match self.pending.iter().position(|p| p.ip == ip) {
            Some(i) => Vec::from(self.pending.swap_remove(i).packets),
            None => Vec::new(),
        }
    }

    /// Forgets `ip` (its waiting packets are returned).
    pub fn remove(&mut self, ip: Ipv4Addr) -> Vec<P> {
        self.entries.retain(|e| e.ip != ip);
        self.take_pending(ip)
    }

    /// Sends `packet` to next hop `ip` if its address is known, or queues it (see
    /// [`Resolution`]). The caller maps broadcast destinations to [`Mac::BROADCAST`] itself.
    pub fn resolve(&mut self, ip: Ipv4Addr, packet: P, now_ms: u64) -> Resolution<P> {
        if let Some(mac) = self.lookup(ip, now_ms) {
            return Resolution::Ready { mac, packet };
        }
        let per_dest = self.policy.max_pending_per_destination;
        if per_dest == 0 {
            return Resolution::Refused {
                packet,
                reason: QueueError::QueueDisabled,
            };
        }
        if let Some(p) = self.pending.iter_mut().find(|p| p.ip == ip) {
            if p.packets.len() >= per_dest {
                return Resolution::Refused {
                    packet,
                    reason: QueueError::QueueFull,
                };
            }
            p.packets.push_back(packet);
            return Resolution::Queued {
                send_request: false,
            };
        }
        if self.pending.len() >= self.policy.max_pending_destinations {
            return Resolution::Refused {
                packet,
                reason: QueueError::TooManyDestinations,
            };
        }
        let mut packets = VecDeque::with_capacity(per_dest);
        packets.push_back(packet);
        self.pending.push(Pending {
            ip,
            packets,
            requests_sent: 1,
            next_request_ms: now_ms.saturating_add(self.policy.retry_interval_ms),
        });
        Resolution::Queued { send_request: true }
    }

    /// Runs the timers: drops expired entries, repeats requests that are due, gives up on
    /// destinations that did not answer. Call it at [`ArpCache::next_deadline`] or later.
    pub fn poll(&mut self, now_ms: u64, mut event: impl FnMut(ArpEvent<P>)) {
        let ttl = self.policy.entry_ttl_ms;
        self.entries
            .retain(|e| now_ms.saturating_sub(e.confirmed_ms) < ttl);
        let mut i = 0;
        while let Some(p) = self.pending.get_mut(i) {
            if now_ms < p.next_request_ms {
                i += 1;
            } else if p.requests_sent < self.policy.max_requests {
                p.requests_sent += 1;
                p.next_request_ms = now_ms.saturating_add(self.policy.retry_interval_ms);
                event(ArpEvent::SendRequest(p.ip));
                i += 1;
            } else {
                let p = self.pending.swap_remove(i);
                event(ArpEvent::Unreachable {
                    ip: p.ip,
                    packets: Vec::from(p.packets),
                });
            }
        }
    }

    /// The earliest time [`ArpCache::poll`] has a request to repeat or a destination to give
    /// up on, if anything waits.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.next_request_ms).min()
    }

    /// Handles a received ARP packet for an interface at `our_ip`/`our_mac` (RFC 826): learns
    /// the sender's address if the packet is for us (or refreshes it if known), answers a
    /// request for our address, and flags a sender claiming our address. Probes (sender
    /// 0.0.0.0) are answered but not learned.
    pub fn handle(
        &mut self,
        arp: &ArpPacket,
        our_ip: Ipv4Addr,
        our_mac: Mac,
        now_ms: u64,
    ) -> ArpOutcome<P> {
        let conflict = arp.sender_ip == our_ip && arp.sender_mac != our_mac;
        let for_us = arp.target_ip == our_ip;
        let learnable = !conflict && !arp.sender_ip.is_unspecified() && arp.sender_mac != our_mac;
        let released = match (learnable, for_us) {
            (true, true) => self.insert(arp.sender_ip, arp.sender_mac, now_ms),
            (true, false) => self
                .refresh(arp.sender_ip, arp.sender_mac, now_ms)
                .unwrap_or_default(),
            (false, _) => Vec::new(),
        };
        let reply = (for_us && arp.op == ArpOp::Request && arp.sender_mac != our_mac)
            .then(|| arp.reply(our_mac));
        ArpOutcome {
            reply,
            released,
            conflict,
        }
    }

    /// The valid entries: address, hardware address, age in milliseconds.
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = (Ipv4Addr, Mac, u64)> + '_ {
        self.entries
            .iter()
            .filter(move |e| self.fresh(e, now_ms))
            .map(move |e| (e.ip, e.mac, now_ms.saturating_sub(e.confirmed_ms)))
    }

    /// How many entries are stored (expired ones until the next [`ArpCache::poll`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many destinations wait for resolution, and how many packets wait in all.
    pub fn pending(&self) -> (usize, usize) {
        (
            self.pending.len(),
            self.pending.iter().map(|p| p.packets.len()).sum(),
        )
    }
}

/// A neighbour kept across a restart: its address, its hardware address, and when it was last
/// confirmed (milliseconds of the boot's clock, which a restart does not reset).
pub type Neighbour = (Ipv4Addr, Mac, u64);

/// Most neighbours [`save_neighbours`] keeps (the most recently confirmed).
pub const SAVED_MAX: usize = 16;
const SAVED_MAGIC: [u8; 8] = *b"AXARP\x00\x00\x01";
const SAVED_ENTRY: usize = 4 + 6 + 8;
/// Bytes [`save_neighbours`] writes: magic, count, the entries, a CRC-32 of all that.
pub const SAVED_LEN: usize = SAVED_MAGIC.len() + 1 + SAVED_MAX * SAVED_ENTRY + 4;

/// Why [`load_neighbours`] refused a saved table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedError {
    /// Fewer than [`SAVED_LEN`] bytes.
    Short,
    /// No table was ever saved there (or it is not one).
    NoMagic,
    /// More entries than [`SAVED_MAX`].
    BadCount(u8),
    /// The CRC-32 does not match: a write was cut short, or the bytes were damaged.
    BadCrc,
}

impl fmt::Display for SavedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short => write!(f, "shorter than {SAVED_LEN} bytes"),
            Self::NoMagic => write!(f, "no saved table"),
            Self::BadCount(n) => write!(f, "{n} entries, more than {SAVED_MAX}"),
            Self::BadCrc => write!(f, "checksum mismatch"),
        }
    }
}

impl<P> ArpCache<P> {
    /// The valid entries worth keeping across a restart at `now_ms`, the most recently
    /// confirmed first, at most [`SAVED_MAX`].
    pub fn to_save(&self, now_ms: u64) -> Vec<Neighbour> {
        let mut v: Vec<Neighbour> = self
            .entries
            .iter()
            .filter(|e| self.fresh(e, now_ms))
            .map(|e| (e.ip, e.mac, e.confirmed_ms))
            .collect();
        v.sort_by_key(|n| core::cmp::Reverse(n.2));
        v.truncate(SAVED_MAX);
        v
    }
}

/// Writes `list` (at most [`SAVED_MAX`] of it) as a table [`load_neighbours`] reads back.
pub fn save_neighbours(list: &[Neighbour], out: &mut [u8; SAVED_LEN]) {
    out.fill(0);
    let (head, rest) = out.split_at_mut(SAVED_MAGIC.len());
    head.copy_from_slice(&SAVED_MAGIC);
    let (count, rest) = rest.split_at_mut(1);
    let n = list.len().min(SAVED_MAX);
    count.fill(n as u8);
    let (slots, _) = rest.as_chunks_mut::<SAVED_ENTRY>();
    for (e, (ip, mac, at)) in slots.iter_mut().zip(list.iter().take(n)) {
        let (a, b) = e.split_at_mut(4);
        let (m, t) = b.split_at_mut(6);
        a.copy_from_slice(&ip.octets());
        m.copy_from_slice(&mac.0);
        t.copy_from_slice(&at.to_le_bytes());
    }
    let (body, crc) = out.split_at_mut(SAVED_LEN - 4);
    crc.copy_from_slice(&crate::config::crc32(body).to_le_bytes());
}

/// Reads a table [`save_neighbours`] wrote, at `now_ms`: its entries, less those that cannot be
/// a neighbour (an address that is not a unicast host, a group or zero hardware address, a
/// confirmation in the future), and how many were left out. The bytes are the ip server's own
/// state region, but a crash may have cut a write short: nothing is trusted unchecked.
pub fn load_neighbours(buf: &[u8], now_ms: u64) -> Result<(Vec<Neighbour>, usize), SavedError> {
    let buf = buf.get(..SAVED_LEN).ok_or(SavedError::Short)?;
    let (body, crc) = buf.split_at(SAVED_LEN - 4);
    let (magic, rest) = body.split_at(SAVED_MAGIC.len());
    if magic != SAVED_MAGIC {
        return Err(SavedError::NoMagic);
    }
    let (count, entries) = rest.split_first().ok_or(SavedError::Short)?;
    if usize::from(*count) > SAVED_MAX {
        return Err(SavedError::BadCount(*count));
    }
    let mut want = [0u8; 4];
    want.copy_from_slice(crc);
    if crate::config::crc32(body) != u32::from_le_bytes(want) {
        return Err(SavedError::BadCrc);
    }
    let (mut list, mut skipped) = (Vec::new(), 0);
    let (slots, _) = entries.as_chunks::<SAVED_ENTRY>();
    for &[
        a0,
        a1,
        a2,
        a3,
        m0,
        m1,
        m2,
        m3,
        m4,
        m5,
        t0,
        t1,
        t2,
        t3,
        t4,
        t5,
        t6,
        t7,
    ] in slots.iter().take(usize::from(*count))
    {
        let ip = Ipv4Addr::new(a0, a1, a2, a3);
        let mac = Mac([m0, m1, m2, m3, m4, m5]);
        let at = u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
        let host = !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast();
        if host && mac.is_unicast() && at <= now_ms {
            list.push((ip, mac, at));
        } else {
            skipped += 1;
        }
    }
    Ok((list, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ether::EtherFrame;

    const GW_MAC: Mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    const OUR_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    /// QEMU's slirp answering "who has 10.0.2.2" as it does on the wire (padded to 60 bytes).
    fn qemu_gateway_reply() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&OUR_MAC.0);
        f.extend_from_slice(&GW_MAC.0);
        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02]);
        f.extend_from_slice(&GW_MAC.0);
        f.extend_from_slice(&[10, 0, 2, 2]);
        f.extend_from_slice(&OUR_MAC.0);
        f.extend_from_slice(&[10, 0, 2, 15]);
        f.resize(60, 0);
        f
    }

    #[test]
    fn parses_qemu_gateway_reply() {
        let f = qemu_gateway_reply();
        let e = EtherFrame::parse(&f).unwrap();
        assert_eq!(
            (e.dst, e.src, e.ethertype),
            (OUR_MAC, GW_MAC, EtherType::ARP)
        );
        let a = ArpPacket::parse(e.payload).unwrap();
        assert_eq!(a.op, ArpOp::Reply);
        assert_eq!((a.sender_mac, a.sender_ip), (GW_MAC, GW));
        assert_eq!((a.target_mac, a.target_ip), (OUR_MAC, US));
    }

    #[test]
    fn request_frame_bytes_and_round_trip() {
        let req = ArpPacket::request(OUR_MAC, US, GW);
        let mut buf = [0xAAu8; 64];
        assert_eq!(req.emit_frame(&mut buf).unwrap(), FRAME_LEN);
        let expect: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10,
            0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2,
        ];
        assert_eq!(&buf[..42], &expect);
        assert!(buf[42..60].iter().all(|&b| b == 0));
        let e = EtherFrame::parse(&buf[..60]).unwrap();
        assert_eq!(ArpPacket::parse(e.payload).unwrap(), req);
        // The gateway's reply to it, built by us, is the frame QEMU sends.
        let reply = ArpPacket {
            sender_mac: OUR_MAC,
            ..req
        }
        .reply(GW_MAC);
        let mut out = [0u8; 60];
        reply.emit_frame(&mut out).unwrap();
        assert_eq!(&out[..], &qemu_gateway_reply()[..]);
    }

    #[test]
    fn refusals() {
        let f = qemu_gateway_reply();
        let good = &f[14..42];
        for n in 0..PACKET_LEN {
            assert_eq!(ArpPacket::parse(&good[..n]), Err(ArpError::Truncated));
        }
        let with = |at: usize, v: &[u8]| {
            let mut p = good.to_vec();
            p[at..at + v.len()].copy_from_slice(v);
            ArpPacket::parse(&p)
        };
        assert_eq!(with(0, &[0, 6]), Err(ArpError::UnsupportedHardware(6)));
        assert_eq!(
            with(2, &[0x86, 0xdd]),
            Err(ArpError::UnsupportedProtocol(0x86dd))
        );
        assert_eq!(with(4, &[6, 16]), Err(ArpError::BadAddressLength));
        assert_eq!(with(4, &[8, 4]), Err(ArpError::BadAddressLength));
        assert_eq!(with(6, &[0, 3]), Err(ArpError::UnknownOperation(3)));
        assert_eq!(with(8, &[0xff; 6]), Err(ArpError::BadSenderMac));
        assert_eq!(
            with(8, &[0x01, 0, 0x5e, 0, 0, 1]),
            Err(ArpError::BadSenderMac)
        );
    }

    fn cache() -> ArpCache<u32> {
        ArpCache::new(ArpPolicy::default())
    }

    #[test]
    fn entries_expire() {
        let mut c = cache();
        assert!(c.insert(GW, GW_MAC, 1_000).is_empty());
        assert_eq!(c.lookup(GW, 1_000), Some(GW_MAC));
        assert_eq!(c.lookup(GW, 60_999), Some(GW_MAC));
        assert_eq!(c.lookup(GW, 61_000), None);
        // A refresh restarts the clock.
        c.insert(GW, GW_MAC, 50_000);
        assert_eq!(c.lookup(GW, 109_999), Some(GW_MAC));
        assert_eq!(c.len(), 1);
        c.poll(110_000, |_| panic!("nothing pending"));
        assert!(c.is_empty());
        assert_eq!(c.lookup(GW, 110_000), None);
    }

    #[test]
    fn capacity_replaces_oldest() {
        let mut c: ArpCache<u32> = ArpCache::new(ArpPolicy {
            capacity: 3,
            ..Default::default()
        });
        for i in 0..3u8 {
            c.insert(
                Ipv4Addr::new(10, 0, 2, i),
                Mac([2, 0, 0, 0, 0, i]),
                u64::from(i) * 10,
            );
        }
        c.insert(Ipv4Addr::new(10, 0, 2, 0), Mac([2, 0, 0, 0, 0, 0]), 100); // refresh .0
        c.insert(Ipv4Addr::new(10, 0, 2, 9), Mac([2, 0, 0, 0, 0, 9]), 101); // replaces .1
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 2, 1), 102), None);
        for i in [0, 2, 9] {
            assert!(c.lookup(Ipv4Addr::new(10, 0, 2, i), 102).is_some());
        }
        let zero: ArpCache<u32> = ArpCache::new(ArpPolicy {
            capacity: 0,
            ..Default::default()
        });
        let mut zero = zero;
        zero.insert(GW, GW_MAC, 0);
        assert_eq!(zero.lookup(GW, 0), None);
    }

    #[test]
    fn pending_queue_bounds_and_release() {
        let mut c: ArpCache<u32> = ArpCache::new(ArpPolicy {
            max_pending_per_destination: 4,
            ..Default::default()
        });
        assert_eq!(
            c.resolve(GW, 1, 0),
            Resolution::Queued { send_request: true }
        );
        for p in 2..=4 {
            assert_eq!(
                c.resolve(GW, p, 1),
                Resolution::Queued {
                    send_request: false
                }
            );
        }
        // The fifth is refused: the oldest (a timed-out TCP's first segment) stay.
        assert_eq!(
            c.resolve(GW, 5, 2),
            Resolution::Refused {
                packet: 5,
                reason: QueueError::QueueFull
            }
        );
        assert_eq!(c.pending(), (1, 4));
        // Eight destinations at most.
        for i in 1..8u8 {
            let r = c.resolve(Ipv4Addr::new(10, 0, 3, i), 100 + u32::from(i), 3);
            assert_eq!(r, Resolution::Queued { send_request: true });
        }
        assert_eq!(
            c.resolve(Ipv4Addr::new(10, 0, 4, 1), 200, 3),
            Resolution::Refused {
                packet: 200,
                reason: QueueError::TooManyDestinations
            }
        );
        assert_eq!(c.pending(), (8, 11));
        // The reply releases the gateway's packets in order and later ones go straight out.
        let version = c.version();
        let f = qemu_gateway_reply();
        let arp = ArpPacket::parse(&f[14..]).unwrap();
        let out = c.handle(&arp, US, OUR_MAC, 10);
        assert_eq!(
            out,
            ArpOutcome {
                reply: None,
                released: vec![1, 2, 3, 4],
                conflict: false
            }
        );
        assert_ne!(c.version(), version, "a learned entry moves the version");
        assert_eq!(
            c.resolve(GW, 6, 11),
            Resolution::Ready {
                mac: GW_MAC,
                packet: 6
            }
        );
        assert_eq!(c.pending(), (7, 7));
    }

    #[test]
    fn neighbours_survive_a_save_and_damage_is_refused() {
        let mut c: ArpCache<u32> = ArpCache::new(ArpPolicy::default());
        c.insert(GW, GW_MAC, 1_000);
        let other = Ipv4Addr::new(10, 0, 2, 3);
        c.insert(other, Mac([2, 0, 0, 0, 0, 3]), 5_000);
        // Expired at 62 s: only the second is kept, newest first.
        assert_eq!(c.to_save(2_000).len(), 2);
        let list = c.to_save(62_000);
        assert_eq!(list, [(other, Mac([2, 0, 0, 0, 0, 3]), 5_000)]);
        let mut buf = [0u8; SAVED_LEN];
        save_neighbours(&c.to_save(2_000), &mut buf);
        let (back, skipped) = load_neighbours(&buf, 6_000).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(
            back,
            [(other, Mac([2, 0, 0, 0, 0, 3]), 5_000), (GW, GW_MAC, 1_000)]
        );
        // A restarted cache learns them with their age: the gateway expires on time.
        let mut fresh: ArpCache<u32> = ArpCache::new(ArpPolicy::default());
        for (ip, mac, at) in back {
            fresh.insert(ip, mac, at);
        }
        assert_eq!(fresh.lookup(GW, 60_999), Some(GW_MAC));
        assert_eq!(fresh.lookup(GW, 61_000), None);
        // A confirmation from the future is left out (the clock runs on across restarts).
        assert_eq!(
            load_neighbours(&buf, 4_000).unwrap(),
            (vec![(GW, GW_MAC, 1_000)], 1)
        );
        // Damage of any byte is caught; so are a missing table and a short one.
        for i in 0..SAVED_LEN {
            let mut bad = buf;
            bad[i] ^= 0x40;
            assert!(load_neighbours(&bad, 6_000).is_err(), "byte {i}");
        }
        assert_eq!(
            load_neighbours(&[0u8; SAVED_LEN], 0),
            Err(SavedError::NoMagic)
        );
        assert_eq!(load_neighbours(&buf[..10], 0), Err(SavedError::Short));
        let mut many = buf;
        many[8] = 17;
        assert_eq!(load_neighbours(&many, 0), Err(SavedError::BadCount(17)));
        // Entries that are no neighbour's are left out even under a good checksum.
        let mut odd = [0u8; SAVED_LEN];
        save_neighbours(
            &[
                (Ipv4Addr::BROADCAST, GW_MAC, 0),
                (GW, Mac::BROADCAST, 0),
                (GW, Mac::ZERO, 0),
                (Ipv4Addr::new(224, 0, 0, 1), GW_MAC, 0),
                (GW, GW_MAC, 0),
            ],
            &mut odd,
        );
        assert_eq!(
            load_neighbours(&odd, 0).unwrap(),
            (vec![(GW, GW_MAC, 0)], 4)
        );
    }

    #[test]
    fn the_default_queue_holds_a_burst_of_sixteen() {
        let mut c: ArpCache<u32> = ArpCache::new(ArpPolicy::default());
        for p in 0..16 {
            assert!(matches!(c.resolve(GW, p, 0), Resolution::Queued { .. }));
        }
        assert!(matches!(
            c.resolve(GW, 16, 0),
            Resolution::Refused {
                reason: QueueError::QueueFull,
                ..
            }
        ));
    }

    #[test]
    fn retries_then_gives_up() {
        let mut c = cache();
        assert!(matches!(
            c.resolve(GW, 7, 0),
            Resolution::Queued {
                send_request: true,
                ..
            }
        ));
        assert_eq!(c.next_deadline(), Some(1_000));
        let mut events = Vec::new();
        for now in [500, 1_000, 1_500, 2_000, 2_999, 3_000] {
            c.poll(now, |e| events.push((now, e)));
        }
        assert_eq!(
            events,
            vec![
                (1_000, ArpEvent::SendRequest(GW)),
                (2_000, ArpEvent::SendRequest(GW)),
                (
                    3_000,
                    ArpEvent::Unreachable {
                        ip: GW,
                        packets: vec![7]
                    }
                ),
            ]
        );
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.pending(), (0, 0));
        let mut none: ArpCache<u32> = ArpCache::new(ArpPolicy {
            max_pending_per_destination: 0,
            ..Default::default()
        });
        assert_eq!(
            none.resolve(GW, 1, 0),
            Resolution::Refused {
                packet: 1,
                reason: QueueError::QueueDisabled
            }
        );
    }

    #[test]
    fn handle_requests_merge_and_conflicts() {
        let mut c = cache();
        let other = Ipv4Addr::new(10, 0, 2, 3);
        let dns_mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x03]);
        // A request for us: answered and learned.
        let req = ArpPacket::request(GW_MAC, GW, US);
        let out = c.handle(&req, US, OUR_MAC, 0);
        assert_eq!(
            out.reply,
            Some(ArpPacket {
                op: ArpOp::Reply,
                sender_mac: OUR_MAC,
                sender_ip: US,
                target_mac: GW_MAC,
                target_ip: GW,
            })
        );
        assert_eq!(c.lookup(GW, 1), Some(GW_MAC));
        // A request between others: not learned (merge only), not answered.
        let out = c.handle(&ArpPacket::request(dns_mac, other, GW), US, OUR_MAC, 0);
        assert_eq!(
            out,
            ArpOutcome {
                reply: None,
                released: vec![],
                conflict: false
            }
        );
        assert_eq!(c.lookup(other, 1), None);
        // ... but it refreshes a known one.
        c.insert(other, Mac([2, 0, 0, 0, 0, 1]), 0);
        c.handle(&ArpPacket::request(dns_mac, other, GW), US, OUR_MAC, 5);
        assert_eq!(c.lookup(other, 6), Some(dns_mac));
        // Someone else claims our address.
        let out = c.handle(&ArpPacket::request(dns_mac, US, GW), US, OUR_MAC, 0);
        assert!(out.conflict && out.reply.is_none());
        // A probe for our address (RFC 5227) is answered, its 0.0.0.0 not learned.
        let probe = ArpPacket::request(dns_mac, Ipv4Addr::UNSPECIFIED, US);
        let out = c.handle(&probe, US, OUR_MAC, 0);
        assert_eq!(out.reply.map(|r| r.target_ip), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.lookup(Ipv4Addr::UNSPECIFIED, 0), None);
        assert_eq!(c.entries(6).count(), 2);
    }
}
