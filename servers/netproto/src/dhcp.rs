//! A DHCP client (RFC 2131, options RFC 2132) as a state machine: [`DhcpClient::poll`] and
//! [`DhcpClient::handle`] return [`DhcpAction`]s — a message to send, a lease to configure, a
//! lease lost — and never do I/O. [`Outgoing::build_packet`] writes a message as an IPv4/UDP
//! packet (68 → 67) for the ip server's normal send path; broadcasts go to 255.255.255.255,
//! which the ip server maps to the Ethernet broadcast address.
//!
//! [`DhcpMessage::parse`] reads the BOOTP fixed header and the options after the magic cookie.
//! It refuses: anything shorter than the fixed header and cookie, a hardware type other than
//! Ethernet or a hardware length other than 6, a wrong cookie, an option running past the end,
//! known options of the wrong length, and a message without a (known) message type. The
//! `sname`/`file` fields are never read as options (option 52, overload, is ignored); a
//! missing END option is tolerated at the end of the buffer.
//!
//! Retransmission: DISCOVER after 4, 8, 16, 32, then every 64 s (RFC 2131 §4.1, without the
//! random jitter: the caller may add it to the deadline); REQUEST 4 times, then back to
//! DISCOVER. Renewal at T1 (unicast to the server), rebinding at T2 (broadcast), a request every
//! 60 s meanwhile; at the lease's end the address is given up. After a restart,
//! [`DhcpClient::init_reboot`] asks to keep the address the state region remembers; a NAK to
//! that takes it away ([`DhcpAction::Deconfigured`]), silence does not (the caller may keep
//! using it until the remembered lease ends, RFC 2131 §3.2).

use core::fmt;
use core::net::Ipv4Addr;

use crate::BuildError;
use crate::checksum;
use crate::ether::Mac;
use crate::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::route::Ipv4Cidr;
use crate::wire;

/// The client's UDP port.
pub const CLIENT_PORT: u16 = 68;
/// The server's UDP port.
pub const SERVER_PORT: u16 = 67;
/// Length of the BOOTP fixed header.
pub const BOOTP_LEN: usize = 236;
/// The magic cookie that starts the options.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Messages are padded to this length (the BOOTP minimum some servers insist on).
pub const MIN_MESSAGE_LEN: usize = 300;
const OPTIONS_AT: usize = BOOTP_LEN + 4;
const UDP_HEADER_LEN: usize = 8;

/// The DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 1: a client looks for servers.
    Discover,
    /// 2: a server offers an address.
    Offer,
    /// 3: a client asks for (or to keep) an address.
    Request,
    /// 4: a client found the address in use.
    Decline,
    /// 5: a server grants the address.
    Ack,
    /// 6: a server refuses.
    Nak,
    /// 7: a client gives the address back.
    Release,
    /// 8: a client asks for parameters only.
    Inform,
}

impl MessageType {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
        }
    }
}

/// Why a DHCP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpError {
    /// Shorter than the fixed header and the magic cookie.
    Truncated,
    /// Hardware type not Ethernet or hardware length not 6.
    BadHardware,
    /// The magic cookie is wrong: a plain BOOTP message.
    BadCookie,
    /// An option's length runs past the end of the message.
    OptionPastEnd,
    /// A known option with a length it cannot have (the option code).
    BadOptionLength(u8),
    /// No message type option.
    MissingMessageType,
    /// A message type not in 1..=8 (the value found).
    UnknownMessageType(u8),
}

impl fmt::Display for DhcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("dhcp: truncated"),
            Self::BadHardware => f.write_str("dhcp: not Ethernet"),
            Self::BadCookie => f.write_str("dhcp: bad magic cookie"),
            Self::OptionPastEnd => f.write_str("dhcp: option past the end"),
            Self::BadOptionLength(c) => write!(f, "dhcp: option {c} has a bad length"),
            Self::MissingMessageType => f.write_str("dhcp: no message type"),
            Self::UnknownMessageType(t) => write!(f, "dhcp: message type {t}"),
        }
    }
}

/// The fields of a DHCP message that this client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpMessage {
    /// 1 request (client to server), 2 reply.
    pub op: u8,
    /// Transaction id.
    pub xid: u32,
    /// The client's address (when renewing).
    pub ciaddr: Ipv4Addr,
    /// "Your" address: the one offered or granted.
    pub yiaddr: Ipv4Addr,
    /// The client's hardware address.
    pub chaddr: Mac,
    /// Option 53.
    pub message_type: MessageType,
    /// Option 54, the server identifier.
    pub server_id: Option<Ipv4Addr>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3, the first router.
    pub router: Option<Ipv4Addr>,
    /// Option 6, the first DNS server.
    pub dns: Option<Ipv4Addr>,
    /// Option 51, the lease time in seconds.
    pub lease_secs: Option<u32>,
    /// Option 58, T1 in seconds.
    pub renewal_secs: Option<u32>,
    /// Option 59, T2 in seconds.
    pub rebinding_secs: Option<u32>,
    /// Option 50, the requested address (in client messages).
    pub requested_ip: Option<Ipv4Addr>,
}

fn addr4(code: u8, data: &[u8]) -> Result<Ipv4Addr, DhcpError> {
    wire::bytes::<4>(data, 0)
        .filter(|_| data.len() == 4)
        .map(Ipv4Addr::from)
        .ok_or(DhcpError::BadOptionLength(code))
}

fn first_addr(code: u8, data: &[u8]) -> Result<Ipv4Addr, DhcpError> {
    if data.is_empty() || !data.len().is_multiple_of(4) {
        return Err(DhcpError::BadOptionLength(code));
    }
    wire::bytes::<4>(data, 0)
        .map(Ipv4Addr::from)
        .ok_or(DhcpError::BadOptionLength(code))
}

fn secs(code: u8, data: &[u8]) -> Result<u32, DhcpError> {
    wire::be32(data, 0)
        .filter(|_| data.len() == 4)
        .ok_or(DhcpError::BadOptionLength(code))
}

impl DhcpMessage {
    /// Parses a DHCP message (a UDP payload).
    pub fn parse(buf: &[u8]) -> Result<Self, DhcpError> {
        let h: [u8; 44] = wire::bytes(buf, 0).ok_or(DhcpError::Truncated)?;
        let cookie: [u8; 4] = wire::bytes(buf, BOOTP_LEN).ok_or(DhcpError::Truncated)?;
        if h[1] != 1 || h[2] != 6 {
            return Err(DhcpError::BadHardware);
        }
        if cookie != MAGIC_COOKIE {
            return Err(DhcpError::BadCookie);
        }
        let quad =
            |at: usize| wire::bytes::<4>(&h, at).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from);
        let mut m = Self {
            op: h[0],
            xid: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ciaddr: quad(12),
            yiaddr: quad(16),
            chaddr: Mac([h[28], h[29], h[30], h[31], h[32], h[33]]),
            message_type: MessageType::Discover,
            server_id: None,
            subnet_mask: None,
            router: None,
            dns: None,
            lease_secs: None,
            renewal_secs: None,
            rebinding_secs: None,
            requested_ip: None,
        };
        let mut message_type = None;
        let mut opts = buf.get(OPTIONS_AT..).unwrap_or_default();
        while let Some((&code, rest)) = opts.split_first() {
            match code {
                0 => {
                    opts = rest;
                    continue;
                }
                255 => break,
                _ => {}
            }
            let (&len, rest) = rest.split_first().ok_or(DhcpError::OptionPastEnd)?;
            let data = rest
                .get(..usize::from(len))
                .ok_or(DhcpError::OptionPastEnd)?;
            opts = rest.get(usize::from(len)..).unwrap_or_default();
            match code {
                1 => m.subnet_mask = Some(addr4(code, data)?),
                3 => m.router = Some(first_addr(code, data)?),
                6 => m.dns = Some(first_addr(code, data)?),
                50 => m.requested_ip = Some(addr4(code, data)?),
                51 => m.lease_secs = Some(secs(code, data)?),
                53 => {
                    let &[t] = data else {
                        return Err(DhcpError::BadOptionLength(code));
                    };
                    message_type =
                        Some(MessageType::from_code(t).ok_or(DhcpError::UnknownMessageType(t))?);
                }
                54 => m.server_id = Some(addr4(code, data)?),
                58 => m.renewal_secs = Some(secs(code, data)?),
                59 => m.rebinding_secs = Some(secs(code, data)?),
                _ => {}
            }
        }
        m.message_type = message_type.ok_or(DhcpError::MissingMessageType)?;
        Ok(m)
    }
}

/// A message the client wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// DISCOVER or REQUEST.
    pub message_type: MessageType,
    /// Transaction id.
    pub xid: u32,
    /// Our hardware address.
    pub mac: Mac,
    /// Our current address when renewing or rebinding, else 0.0.0.0 (also the IP source).
    pub ciaddr: Ipv4Addr,
    /// Option 50 (selecting, init-reboot).
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54 (selecting).
    pub server_id: Option<Ipv4Addr>,
    /// IP destination: 255.255.255.255, or the server when renewing.
    pub dst: Ipv4Addr,
}

/// The options this client asks for: mask, router, DNS, lease time, server id, T1, T2.
const PARAMETERS: [u8; 7] = [1, 3, 6, 51, 54, 58, 59];

impl Outgoing {
    /// Writes the DHCP message (BOOTP header and options, padded to [`MIN_MESSAGE_LEN`]);
    /// returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let out = wire::out(buf, MIN_MESSAGE_LEN)?;
        out.fill(0);
        wire::put(out, 0, &[1, 1, 6, 0])?;
        wire::put(out, 4, &self.xid.to_be_bytes())?;
        // Ask for broadcast replies while we have no address to receive unicast on.
        let flags: u16 = if self.ciaddr.is_unspecified() {
            0x8000
        } else {
            0
        };
        wire::put16(out, 10, flags)?;
        wire::put(out, 12, &self.ciaddr.octets())?;
        wire::put(out, 28, &self.mac.0)?;
        wire::put(out, BOOTP_LEN, &MAGIC_COOKIE)?;
        let mut at = OPTIONS_AT;
        let mut opt = |code: u8, data: &[u8]| -> Result<(), BuildError> {
            wire::put(out, at, &[code, data.len() as u8])?;
            wire::put(out, at + 2, data)?;
            at += 2 + data.len();
            Ok(())
        };
        opt(53, &[self.message_type.code()])?;
        let mut client_id = [1u8; 7];
        if let Some(id) = client_id.get_mut(1..) {
            id.copy_from_slice(&self.mac.0);
        }
        opt(61, &client_id)?;
        if let Some(ip) = self.requested_ip {
            opt(50, &ip.octets())?;
        }
        if let Some(ip) = self.server_id {
            opt(54, &ip.octets())?;
        }
        opt(55, &PARAMETERS)?;
        wire::put(out, at, &[255])?;
        Ok(MIN_MESSAGE_LEN)
    }

    /// Writes the message as an IPv4 packet (UDP 68 → 67, checksummed) from `ciaddr` to `dst`;
    /// returns the packet's length.
    pub fn build_packet(&self, buf: &mut [u8], ip_ident: u16) -> Result<usize, BuildError> {
        let udp_len = UDP_HEADER_LEN + MIN_MESSAGE_LEN;
        let total = ipv4::HEADER_LEN + udp_len;
        let out = wire::out(buf, total)?;
        let udp = out
            .get_mut(ipv4::HEADER_LEN..)
            .ok_or(BuildError::BufferTooSmall { needed: total })?;
        wire::put16(udp, 0, CLIENT_PORT)?;
        wire::put16(udp, 2, SERVER_PORT)?;
        wire::put16(udp, 4, udp_len as u16)?;
        wire::put16(udp, 6, 0)?;
        let body = udp
            .get_mut(UDP_HEADER_LEN..)
            .ok_or(BuildError::BufferTooSmall { needed: total })?;
        self.emit(body)?;
        let c = checksum::udp_checksum(self.ciaddr, self.dst, udp)
            .ok_or(BuildError::PayloadTooLarge)?;
        wire::put16(udp, 6, c)?;
        let repr = Ipv4Repr {
            ttl: 64,
            dont_fragment: false,
            ..Ipv4Repr::new(self.ciaddr, self.dst, IpProtocol::UDP, ip_ident, udp_len)
        };
        repr.emit(out)?;
        Ok(total)
    }
}

/// An address lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Our address and prefix (from option 1; the classful prefix if the server gave none).
    pub address: Ipv4Cidr,
    /// The default gateway.
    pub router: Option<Ipv4Addr>,
    /// The DNS server.
    pub dns: Option<Ipv4Addr>,
    /// The server that granted it.
    pub server: Ipv4Addr,
    /// When it was granted (monotonic milliseconds).
    pub start_ms: u64,
    /// When to renew (T1).
    pub renew_ms: u64,
    /// When to rebind (T2).
    pub rebind_ms: u64,
    /// When it ends.
    pub end_ms: u64,
}

/// Where the client is (RFC 2131 figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpState {
    /// Nothing sent yet.
    Init,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an offer, waiting for the ACK.
    Requesting,
    /// REQUEST sent for a remembered address, waiting for the ACK.
    Rebooting,
    /// Holding a lease.
    Bound,
    /// Past T1: renewing with the server that granted it.
    Renewing,
    /// Past T2: renewing with any server.
    Rebinding,
}

/// What the client needs done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpAction {
    /// Send this message now.
    Send(Outgoing),
    /// A lease was granted or renewed: configure the interface with it.
    Configured(Lease),
    /// The lease is lost (expired, or refused by the server): unconfigure the interface.
    Deconfigured,
}

const FIRST_RETRY_MS: u64 = 4_000;
const MAX_RETRY_MS: u64 = 64_000;
const RENEW_RETRY_MS: u64 = 60_000;
const MAX_REQUESTS: u32 = 4;

/// The DHCP client: see the module documentation.
#[derive(Debug, Clone)]
pub struct DhcpClient {
    mac: Mac,
    state: DhcpState,
    xid: u32,
    rng: u32,
    retry_ms: u64,
    next_ms: u64,
    sent: u32,
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    lease: Option<Lease>,
}

impl DhcpClient {
    /// A client for `mac` starting from nothing; `seed` varies the transaction ids (any value,
    /// e.g. the time stamp counter at start).
    pub fn new(mac: Mac, seed: u32) -> Self {
        Self {
            mac,
            state: DhcpState::Init,
            xid: 0,
            rng: seed | 1,
            retry_ms: FIRST_RETRY_MS,
            next_ms: 0,
            sent: 0,
            offer: None,
            lease: None,
        }
    }

    /// A client that first asks to keep `address` (INIT-REBOOT, after a restart).
    pub fn init_reboot(mac: Mac, address: Ipv4Addr, seed: u32) -> Self {
        let mut c = Self::new(mac, seed);
        c.state = DhcpState::Rebooting;
        c.offer = Some((address, Ipv4Addr::UNSPECIFIED));
        c.xid = c.next_xid();
        c
    }

    /// The current state.
    pub fn state(&self) -> DhcpState {
        self.state
    }

    /// The lease held, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Messages sent in the current exchange: DISCOVERs while selecting, REQUESTs while
    /// requesting, rebooting, renewing or rebinding.
    pub fn attempts(&self) -> u32 {
        self.sent
    }

    /// When [`DhcpClient::poll`] next has something to do.
    pub fn next_deadline(&self) -> u64 {
        match (self.state, self.lease) {
            (DhcpState::Bound, Some(l)) => l.renew_ms,
            (DhcpState::Renewing, Some(l)) => self.next_ms.min(l.rebind_ms),
            (DhcpState::Rebinding, Some(l)) => self.next_ms.min(l.end_ms),
            _ => self.next_ms,
        }
    }

    fn next_xid(&mut self) -> u32 {
        // xorshift32
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    fn outgoing(&self, message_type: MessageType) -> Outgoing {
        let bcast = Ipv4Addr::BROADCAST;
        let (ciaddr, dst, requested_ip, server_id) = match self.state {
            DhcpState::Requesting => (
                Ipv4Addr::UNSPECIFIED,
                bcast,
                self.offer.map(|o| o.0),
                self.offer.map(|o| o.1),
            ),
            DhcpState::Rebooting => (Ipv4Addr::UNSPECIFIED, bcast, self.offer.map(|o| o.0), None),
            DhcpState::Renewing => {
                let l = self.lease;
                let ci = l.map_or(Ipv4Addr::UNSPECIFIED, |l| l.address.address());
                (ci, l.map_or(bcast, |l| l.server), None, None)
            }
            DhcpState::Rebinding => {
                let ci = self
                    .lease
                    .map_or(Ipv4Addr::UNSPECIFIED, |l| l.address.address());
                (ci, bcast, None, None)
            }
            _ => (Ipv4Addr::UNSPECIFIED, bcast, None, None),
        };
        Outgoing {
            message_type,
            xid: self.xid,
            mac: self.mac,
            ciaddr,
            requested_ip,
            server_id,
            dst,
        }
    }

    fn send(&mut self, message_type: MessageType, now_ms: u64, interval_ms: u64) -> DhcpAction {
        self.sent += 1;
        self.next_ms = now_ms.saturating_add(interval_ms);
        DhcpAction::Send(self.outgoing(message_type))
    }

    fn restart(&mut self, now_ms: u64) -> Option<DhcpAction> {
        let had_lease = self.lease.take().is_some();
        self.state = DhcpState::Init;
        self.offer = None;
        self.next_ms = now_ms;
        had_lease.then_some(DhcpAction::Deconfigured)
    }

    /// Runs the timers: what to send (or give up) now.
    pub fn poll(&mut self, now_ms: u64) -> Option<DhcpAction> {
        match self.state {
            DhcpState::Init => {
                self.state = DhcpState::Selecting;
                self.xid = self.next_xid();
                self.sent = 0;
                self.retry_ms = FIRST_RETRY_MS;
                Some(self.send(MessageType::Discover, now_ms, FIRST_RETRY_MS))
            }
            _ if now_ms < self.next_deadline() => None,
            DhcpState::Selecting => {
                self.retry_ms = (self.retry_ms * 2).min(MAX_RETRY_MS);
                Some(self.send(MessageType::Discover, now_ms, self.retry_ms))
            }
            DhcpState::Requesting | DhcpState::Rebooting => {
                if self.sent >= MAX_REQUESTS {
                    return self.restart(now_ms).or_else(|| self.poll(now_ms));
                }
                let interval = FIRST_RETRY_MS << self.sent.min(4);
                Some(self.send(MessageType::Request, now_ms, interval.min(MAX_RETRY_MS)))
            }
            DhcpState::Bound => {
                self.state = DhcpState::Renewing;
                self.xid = self.next_xid();
                Some(self.send(MessageType::Request, now_ms, RENEW_RETRY_MS))
            }
            DhcpState::Renewing | DhcpState::Rebinding => {
                let Some(l) = self.lease else {
                    return self.restart(now_ms);
                };
                if now_ms >= l.end_ms {
                    return self.restart(now_ms);
                }
                if now_ms >= l.rebind_ms {
                    self.state = DhcpState::Rebinding;
                }
                Some(self.send(MessageType::Request, now_ms, RENEW_RETRY_MS))
            }
        }
    }

    /// Handles a received DHCP message (from the demultiplexer's [`crate::demux::Verdict::Dhcp`]).
    /// Messages for another transaction or another client are ignored.
    pub fn handle(&mut self, m: &DhcpMessage, now_ms: u64) -> Option<DhcpAction> {
        if m.op != 2 || m.xid != self.xid || m.chaddr != self.mac {
            return None;
        }
        match (self.state, m.message_type) {
            (DhcpState::Selecting, MessageType::Offer) => {
                let server = m.server_id?;
                if m.yiaddr.is_unspecified() || ipv4::is_martian_source(m.yiaddr) {
                    return None;
                }
                self.offer = Some((m.yiaddr, server));
                self.state = DhcpState::Requesting;
                self.sent = 0;
                Some(self.send(MessageType::Request, now_ms, FIRST_RETRY_MS))
            }
            (
                DhcpState::Requesting
                | DhcpState::Rebooting
                | DhcpState::Renewing
                | DhcpState::Rebinding,
                MessageType::Ack,
            ) => {
                let lease = self.lease_from(m, now_ms)?;
                self.lease = Some(lease);
                self.state = DhcpState::Bound;
                self.next_ms = lease.renew_ms;
                Some(DhcpAction::Configured(lease))
            }
            // A NAK of a remembered address (INIT-REBOOT) takes it away as well: the caller
            // may have been using it (RFC 2131 §3.2).
            (DhcpState::Rebooting, MessageType::Nak) => {
                Some(self.restart(now_ms).unwrap_or(DhcpAction::Deconfigured))
            }
            (
                DhcpState::Requesting | DhcpState::Renewing | DhcpState::Rebinding,
                MessageType::Nak,
            ) => self.restart(now_ms),
            _ => None,
        }
    }

    fn lease_from(&self, m: &DhcpMessage, now_ms: u64) -> Option<Lease> {
        let yiaddr = m.yiaddr;
        if yiaddr.is_unspecified() || ipv4::is_martian_source(yiaddr) {
            return None;
        }
        let secs = u64::from(m.lease_secs?);
        let renew = m.renewal_secs.map_or(secs / 2, u64::from).min(secs);
        let rebind = m
            .rebinding_secs
            .map_or(secs * 7 / 8, u64::from)
            .clamp(renew, secs);
        let address = match m.subnet_mask {
            Some(mask) => Ipv4Cidr::from_netmask(yiaddr, mask).ok()?,
            None => {
                let classful = match yiaddr.octets()[0] {
                    0..=127 => 8,
                    128..=191 => 16,
                    _ => 24,
                };
                Ipv4Cidr::new(yiaddr, classful).ok()?
            }
        };
        let server = m
            .server_id
            .or(self.lease.map(|l| l.server))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let at = |s: u64| now_ms.saturating_add(s.saturating_mul(1000));
        Some(Lease {
            address,
            router: m.router,
            dns: m.dns,
            server,
            start_ms: now_ms,
            renew_ms: at(renew),
            rebind_ms: at(rebind),
            end_ms: at(secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::Ipv4Packet;

    const MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    /// A reply as QEMU's slirp builds it (bootp.c): yiaddr, siaddr, and options 53, 54, 51,
    /// 1, 3, 6, end.
    pub(crate) fn slirp_reply(xid: u32, t: MessageType) -> Vec<u8> {
        let mut b = vec![0u8; BOOTP_LEN];
        b[..4].copy_from_slice(&[2, 1, 6, 0]);
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[16..20].copy_from_slice(&US.octets());
        b[20..24].copy_from_slice(&SERVER.octets());
        b[28..34].copy_from_slice(&MAC.0);
        b.extend_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[53, 1, t.code()]);
        b.extend_from_slice(&[54, 4, 10, 0, 2, 2]);
        b.extend_from_slice(&[51, 4, 0, 1, 0x51, 0x80]); // 86400 s
        b.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
        b.extend_from_slice(&[3, 4, 10, 0, 2, 2]);
        b.extend_from_slice(&[6, 4, 10, 0, 2, 3]);
        b.push(255);
        b.resize(548, 0);
        b
    }

    #[test]
    fn discover_packet() {
        let mut c = DhcpClient::new(MAC, 0x1234);
        let Some(DhcpAction::Send(o)) = c.poll(0) else {
            panic!("no discover")
        };
        assert_eq!(c.state(), DhcpState::Selecting);
        let mut buf = [0u8; 600];
        let n = o.build_packet(&mut buf, 1).unwrap();
        assert_eq!(n, 20 + 8 + 300);
        let ip = Ipv4Packet::parse(&buf[..n]).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.protocol),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, IpProtocol::UDP)
        );
        assert!(checksum::verify_transport(ip.src, ip.dst, 17, ip.payload));
        assert_eq!(&ip.payload[..4], &[0, 68, 0, 67]);
        let m = DhcpMessage::parse(&ip.payload[8..]).unwrap();
        assert_eq!(
            (m.op, m.xid, m.chaddr, m.message_type),
            (1, o.xid, MAC, MessageType::Discover)
        );
        assert_eq!(u16::from_be_bytes([ip.payload[18], ip.payload[19]]), 0x8000);
    }

    #[test]
    fn full_exchange_renew_rebind_expire() {
        let mut c = DhcpClient::new(MAC, 7);
        let Some(DhcpAction::Send(d)) = c.poll(0) else {
            panic!()
        };
        // Someone else's offer, or another transaction's, is ignored.
        let other = slirp_reply(d.xid ^ 1, MessageType::Offer);
        assert_eq!(c.handle(&DhcpMessage::parse(&other).unwrap(), 10), None);
        let offer = DhcpMessage::parse(&slirp_reply(d.xid, MessageType::Offer)).unwrap();
        let Some(DhcpAction::Send(r)) = c.handle(&offer, 10) else {
            panic!("no request")
        };
        assert_eq!(
            (r.message_type, r.requested_ip, r.server_id),
            (MessageType::Request, Some(US), Some(SERVER))
        );
        assert_eq!(c.state(), DhcpState::Requesting);
        // The request packet carries options 50 and 54.
        let mut buf = [0u8; 400];
        let n = r.emit(&mut buf).unwrap();
        let back = DhcpMessage::parse(&buf[..n]).unwrap();
        assert_eq!(
            (back.requested_ip, back.server_id),
            (Some(US), Some(SERVER))
        );
        let ack = DhcpMessage::parse(&slirp_reply(d.xid, MessageType::Ack)).unwrap();
        let Some(DhcpAction::Configured(l)) = c.handle(&ack, 20) else {
            panic!("no lease")
        };
        assert_eq!(l.address.to_string(), "10.0.2.15/24");
        assert_eq!(
            (l.router, l.dns, l.server),
            (Some(SERVER), Some(Ipv4Addr::new(10, 0, 2, 3)), SERVER)
        );
        assert_eq!(
            (l.renew_ms, l.rebind_ms, l.end_ms),
            (20 + 43_200_000, 20 + 75_600_000, 20 + 86_400_000)
        );
        assert_eq!(c.next_deadline(), l.renew_ms);
        assert_eq!(c.poll(l.renew_ms - 1), None);
        // T1: unicast renewal.
        let Some(DhcpAction::Send(rn)) = c.poll(l.renew_ms) else {
            panic!()
        };
        assert_eq!(
            (rn.ciaddr, rn.dst, c.state()),
            (US, SERVER, DhcpState::Renewing)
        );
        assert_eq!(c.poll(l.renew_ms + 1), None);
        assert!(matches!(
            c.poll(l.renew_ms + 60_000),
            Some(DhcpAction::Send(_))
        ));
        // T2: broadcast.
        let Some(DhcpAction::Send(rb)) = c.poll(l.rebind_ms) else {
            panic!()
        };
        assert_eq!(
            (rb.ciaddr, rb.dst, c.state()),
            (US, Ipv4Addr::BROADCAST, DhcpState::Rebinding)
        );
        // The end: the address is given up and discovery starts again.
        assert_eq!(c.poll(l.end_ms), Some(DhcpAction::Deconfigured));
        assert!(matches!(
            c.poll(l.end_ms),
            Some(DhcpAction::Send(Outgoing {
                message_type: MessageType::Discover,
                ..
            }))
        ));
    }

    #[test]
    fn retransmission_and_nak() {
        let mut c = DhcpClient::new(MAC, 99);
        let mut sends = vec![];
        for now in (0..200_000).step_by(1_000) {
            if let Some(DhcpAction::Send(_)) = c.poll(now) {
                sends.push(now);
            }
        }
        assert_eq!(&sends[..6], &[0, 4_000, 12_000, 28_000, 60_000, 124_000]);
        // init-reboot: NAK sends it back to discovery.
        let mut c = DhcpClient::init_reboot(MAC, US, 5);
        let Some(DhcpAction::Send(r)) = c.poll(0) else {
            panic!()
        };
        assert_eq!(
            (r.message_type, r.requested_ip, r.server_id),
            (MessageType::Request, Some(US), None)
        );
        let nak = DhcpMessage::parse(&slirp_reply(r.xid, MessageType::Nak)).unwrap();
        assert_eq!(c.handle(&nak, 1), Some(DhcpAction::Deconfigured));
        assert_eq!(c.state(), DhcpState::Init);
        // Unanswered requests give up after four.
        let mut c = DhcpClient::init_reboot(MAC, US, 5);
        let mut n = 0;
        let mut now = 0;
        while c.state() == DhcpState::Rebooting {
            if let Some(DhcpAction::Send(_)) = c.poll(now) {
                n += 1;
            }
            now += 1_000;
        }
        // Four requests, then (in the same poll) a DISCOVER.
        assert_eq!((n, c.state()), (5, DhcpState::Selecting));
    }

    #[test]
    fn parse_refusals() {
        let good = slirp_reply(1, MessageType::Offer);
        assert_eq!(DhcpMessage::parse(&good[..239]), Err(DhcpError::Truncated));
        let edit = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            DhcpMessage::parse(&b)
        };
        assert_eq!(edit(1, &[6]), Err(DhcpError::BadHardware));
        assert_eq!(edit(236, &[99, 130, 83, 98]), Err(DhcpError::BadCookie));
        assert_eq!(
            edit(240, &[53, 1, 9]),
            Err(DhcpError::UnknownMessageType(9))
        );
        assert_eq!(edit(240, &[53, 2, 2]), Err(DhcpError::BadOptionLength(53)));
        assert_eq!(edit(243, &[54, 3]), Err(DhcpError::BadOptionLength(54)));
        assert_eq!(edit(240, &[0, 0, 0]), Err(DhcpError::MissingMessageType));
        assert_eq!(
            DhcpMessage::parse(&good[..250]),
            Err(DhcpError::OptionPastEnd)
        );
        // Options end at the buffer's end without END: fine.
        assert!(DhcpMessage::parse(&good[..243]).is_ok());
        // A bad option length after END is not read.
        let mut b = good.clone();
        b[300] = 53;
        assert!(DhcpMessage::parse(&b).is_ok());
    }
}
