//! One filter rule and the pieces it is made of: [`Verdict`], [`Direction`], [`Proto`],
//! [`Ipv4Prefix`] and [`PortRange`], with the test of a rule against a [`PacketMeta`].
//!
//! Every type here prints in the text syntax of the crate documentation (`Display`), and the
//! constructors refuse what that syntax refuses, so a value that exists can always be printed
//! and read back to itself.

use core::fmt;
use core::net::Ipv4Addr;

use crate::packet::{PacketMeta, ip_proto};

/// What a rule does to a packet it matches; also what the rule set decided for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the packet through.
    Allow,
    /// Drop the packet.
    Deny,
}

impl Verdict {
    /// The keyword of the text syntax: `allow` or `deny`.
    pub const fn keyword(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// The way a packet travels through pf.
///
/// A rule uses all three; a packet is [`In`](Direction::In) (from the NIC towards ip) or
/// [`Out`](Direction::Out) (from ip towards the NIC). A packet marked `Any` — which the server
/// never produces — is matched only by rules for any direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received: from the driver towards ip.
    In,
    /// Sent: from ip towards the driver.
    Out,
    /// Either way (rules only).
    Any,
}

impl Direction {
    /// The keyword of the text syntax: `in`, `out` or `any`.
    pub const fn keyword(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Any => "any",
        }
    }

    /// Whether a rule for `self` applies to a packet travelling `packet`.
    #[inline]
    pub fn matches(self, packet: Direction) -> bool {
        self == Direction::Any || self == packet
    }
}

/// The transport protocol a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// ICMP (IP protocol 1).
    Icmp,
    /// Any IP protocol, including those without a keyword.
    Any,
}

impl Proto {
    /// The keyword of the text syntax: `tcp`, `udp`, `icmp` or `any`.
    pub const fn keyword(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Any => "any",
        }
    }

    /// Whether a rule for `self` applies to a packet of IP protocol number `number`.
    #[inline]
    pub fn matches(self, number: u8) -> bool {
        match self {
            Proto::Tcp => number == ip_proto::TCP,
            Proto::Udp => number == ip_proto::UDP,
            Proto::Icmp => number == ip_proto::ICMP,
            Proto::Any => true,
        }
    }

    /// Whether rules for this protocol may name ports: only TCP and UDP have them.
    pub const fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp)
    }
}

/// Why an [`Ipv4Prefix`] or a [`PortRange`] could not be made, or a [`Rule`] is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// A prefix length above 32.
    PrefixTooLong,
    /// The address has bits set past the prefix length (`10.0.2.15/24`): write the network
    /// (`10.0.2.0/24`) or a longer prefix.
    HostBitsSet,
    /// A port range whose first port is above its last.
    ReversedPortRange,
    /// Ports on a rule whose protocol is not `tcp` or `udp`.
    PortWithoutTcpUdp,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleError::PrefixTooLong => "prefix length above 32",
            RuleError::HostBitsSet => "address has bits set past the prefix length",
            RuleError::ReversedPortRange => "port range runs backwards (first port above last)",
            RuleError::PortWithoutTcpUdp => "ports need protocol tcp or udp",
        })
    }
}

/// An IPv4 network: an address and a prefix length `0..=32`, with no bit set past the prefix.
///
/// `0.0.0.0/0` is [`Ipv4Prefix::ANY`] and prints as `any`; every other prefix prints as
/// `a.b.c.d/len`, `/32` included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    /// The network address, host order; bits past `len` are zero.
    network: u32,
    len: u8,
}

impl Ipv4Prefix {
    /// Every address: `0.0.0.0/0`, written `any`.
    pub const ANY: Ipv4Prefix = Ipv4Prefix { network: 0, len: 0 };

    /// The prefix `addr/len`; refuses a length above 32 and an address with host bits set.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Prefix, RuleError> {
        if len > 32 {
            return Err(RuleError::PrefixTooLong);
        }
        let network = addr.to_bits();
        if network & !Self::mask_of(len) != 0 {
            return Err(RuleError::HostBitsSet);
        }
        Ok(Ipv4Prefix { network, len })
    }

    /// The prefix holding the one address `addr`: `addr/32`.
    pub const fn host(addr: Ipv4Addr) -> Ipv4Prefix {
        Ipv4Prefix {
            network: addr.to_bits(),
            len: 32,
        }
    }

    /// The network address (host bits zero).
    pub const fn addr(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.network)
    }

    /// The prefix length, `0..=32`.
    pub const fn prefix_len(self) -> u8 {
        self.len
    }

    /// Whether this is `0.0.0.0/0`, which contains every address.
    pub const fn is_any(self) -> bool {
        self.len == 0
    }

    /// The netmask as a host-order word: `len` one bits from the top.
    const fn mask_of(len: u8) -> u32 {
        // A shift by 32 would overflow: /0 is handled on its own.
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }

    /// Whether `addr` lies in this network.
    #[inline]
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        addr.to_bits() & Self::mask_of(self.len) == self.network
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else {
            write!(f, "{}/{}", self.addr(), self.len)
        }
    }
}

/// An inclusive range of TCP or UDP ports, `first <= last`; `0` and `65535` are ordinary ports.
///
/// A single port prints as `7`, a range as `1000-2000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Every port, `0-65535`. (A rule with this range still needs a packet that has ports: see
    /// [`Rule`].)
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// The ports `first..=last`; refuses `first > last`.
    pub const fn new(first: u16, last: u16) -> Result<PortRange, RuleError> {
        if first > last {
            Err(RuleError::ReversedPortRange)
        } else {
            Ok(PortRange { first, last })
        }
    }

    /// The one port `port`.
    pub const fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// The first port of the range.
    pub const fn first(self) -> u16 {
        self.first
    }

    /// The last port of the range (inclusive).
    pub const fn last(self) -> u16 {
        self.last
    }

    /// Whether `port` is in the range.
    #[inline]
    pub fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// One filter rule: a verdict for the packets that match every field.
///
/// A packet matches when its direction, protocol, source and destination addresses match, and,
/// for each of `src_ports` / `dst_ports` that is `Some`, the packet has ports (a TCP or UDP
/// packet that is not a non-first fragment) and its port is in the range. A rule without ports
/// matches packets with and without ports alike.
///
/// The fields are public; [`Rule::check`] says whether a value is one the text syntax can
/// express (ports only with `tcp` or `udp`), and the [`RuleSet`](crate::RuleSet) takes only
/// such rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What happens to a matching packet.
    pub verdict: Verdict,
    /// The direction the rule applies to.
    pub dir: Direction,
    /// The protocol the rule applies to.
    pub proto: Proto,
    /// The source network.
    pub src: Ipv4Prefix,
    /// The source ports, if the rule names them.
    pub src_ports: Option<PortRange>,
    /// The destination network.
    pub dst: Ipv4Prefix,
    /// The destination ports, if the rule names them.
    pub dst_ports: Option<PortRange>,
}

impl Rule {
    /// The rule `VERDICT from any to any`: every packet, either way, any protocol.
    pub const fn everything(verdict: Verdict) -> Rule {
        Rule {
            verdict,
            dir: Direction::Any,
            proto: Proto::Any,
            src: Ipv4Prefix::ANY,
            src_ports: None,
            dst: Ipv4Prefix::ANY,
            dst_ports: None,
        }
    }

    /// Whether the rule is one the text syntax can express: ports only with `tcp` or `udp`.
    /// (Prefixes and ranges are valid by construction.)
    pub fn check(&self) -> Result<(), RuleError> {
        if (self.src_ports.is_some() || self.dst_ports.is_some()) && !self.proto.has_ports() {
            return Err(RuleError::PortWithoutTcpUdp);
        }
        Ok(())
    }

    /// Whether the rule applies to the packet described by `meta`.
    #[inline]
    pub fn matches(&self, meta: &PacketMeta) -> bool {
        self.dir.matches(meta.dir)
            && self.proto.matches(meta.proto)
            && self.src.contains(meta.src)
            && self.dst.contains(meta.dst)
            && ports_match(self.src_ports, meta.sport)
            && ports_match(self.dst_ports, meta.dport)
    }
}

/// A rule's port condition against a packet's port: no condition matches anything; a condition
/// needs a port, in range.
#[inline]
fn ports_match(range: Option<PortRange>, port: Option<u16>) -> bool {
    match (range, port) {
        (None, _) => true,
        (Some(range), Some(port)) => range.contains(port),
        (Some(_), None) => false,
    }
}

/// Prints the canonical text form, e.g. `deny in tcp from any to 10.0.2.15/32 port 7`. A
/// direction or protocol of `any` is left out (`allow from any to any`), as the grammar allows.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verdict.keyword())?;
        if self.dir != Direction::Any {
            write!(f, " {}", self.dir.keyword())?;
        }
        if self.proto != Proto::Any {
            write!(f, " {}", self.proto.keyword())?;
        }
        write!(f, " from {}", self.src)?;
        if let Some(ports) = self.src_ports {
            write!(f, " port {ports}")?;
        }
        write!(f, " to {}", self.dst)?;
        if let Some(ports) = self.dst_ports {
            write!(f, " port {ports}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    #[test]
    fn prefix_zero_contains_everything() {
        let any = Ipv4Prefix::new(ip(0, 0, 0, 0), 0).unwrap();
        assert_eq!(any, Ipv4Prefix::ANY);
        assert!(any.is_any());
        for a in [
            ip(0, 0, 0, 0),
            ip(255, 255, 255, 255),
            ip(10, 0, 2, 15),
            ip(128, 0, 0, 1),
        ] {
            assert!(any.contains(a));
        }
        assert_eq!(
            Ipv4Prefix::new(ip(0, 0, 0, 1), 0),
            Err(RuleError::HostBitsSet)
        );
        assert_eq!(
            Ipv4Prefix::new(ip(128, 0, 0, 0), 0),
            Err(RuleError::HostBitsSet)
        );
    }

    #[test]
    fn prefix_32_contains_one_address() {
        let p = Ipv4Prefix::new(ip(10, 0, 2, 15), 32).unwrap();
        assert_eq!(p, Ipv4Prefix::host(ip(10, 0, 2, 15)));
        assert!(p.contains(ip(10, 0, 2, 15)));
        assert!(!p.contains(ip(10, 0, 2, 14)));
        assert!(!p.contains(ip(10, 0, 2, 16)));
        assert!(!p.contains(ip(138, 0, 2, 15)));
        let top = Ipv4Prefix::host(ip(255, 255, 255, 255));
        assert!(top.contains(ip(255, 255, 255, 255)));
        assert!(!top.contains(ip(255, 255, 255, 254)));
        assert!(Ipv4Prefix::host(ip(0, 0, 0, 0)).contains(ip(0, 0, 0, 0)));
        assert!(!Ipv4Prefix::host(ip(0, 0, 0, 0)).contains(ip(0, 0, 0, 1)));
    }

    #[test]
    fn prefix_boundaries() {
        let p = Ipv4Prefix::new(ip(10, 0, 2, 0), 24).unwrap();
        assert!(p.contains(ip(10, 0, 2, 0)));
        assert!(p.contains(ip(10, 0, 2, 255)));
        assert!(!p.contains(ip(10, 0, 1, 255)));
        assert!(!p.contains(ip(10, 0, 3, 0)));
        let p1 = Ipv4Prefix::new(ip(128, 0, 0, 0), 1).unwrap();
        assert!(p1.contains(ip(128, 0, 0, 0)) && p1.contains(ip(255, 255, 255, 255)));
        assert!(!p1.contains(ip(127, 255, 255, 255)));
        let p31 = Ipv4Prefix::new(ip(10, 0, 0, 2), 31).unwrap();
        assert!(p31.contains(ip(10, 0, 0, 2)) && p31.contains(ip(10, 0, 0, 3)));
        assert!(!p31.contains(ip(10, 0, 0, 4)) && !p31.contains(ip(10, 0, 0, 1)));
        assert_eq!(
            Ipv4Prefix::new(ip(10, 0, 2, 15), 24),
            Err(RuleError::HostBitsSet)
        );
        assert_eq!(
            Ipv4Prefix::new(ip(10, 0, 0, 1), 31),
            Err(RuleError::HostBitsSet)
        );
        assert_eq!(
            Ipv4Prefix::new(ip(10, 0, 0, 0), 33),
            Err(RuleError::PrefixTooLong)
        );
        assert_eq!(
            Ipv4Prefix::new(ip(0, 0, 0, 0), 255),
            Err(RuleError::PrefixTooLong)
        );
    }

    #[test]
    fn port_range_edges() {
        assert!(PortRange::single(0).contains(0));
        assert!(!PortRange::single(0).contains(1));
        assert!(PortRange::single(65535).contains(65535));
        assert!(!PortRange::single(65535).contains(65534));
        assert!(PortRange::ALL.contains(0) && PortRange::ALL.contains(65535));
        let r = PortRange::new(1000, 2000).unwrap();
        assert!(r.contains(1000) && r.contains(2000) && r.contains(1500));
        assert!(!r.contains(999) && !r.contains(2001));
        assert_eq!(
            PortRange::new(2000, 1000),
            Err(RuleError::ReversedPortRange)
        );
        assert_eq!(PortRange::new(1, 0), Err(RuleError::ReversedPortRange));
        assert_eq!(PortRange::new(65535, 0), Err(RuleError::ReversedPortRange));
        assert_eq!(PortRange::new(7, 7), Ok(PortRange::single(7)));
    }

    #[test]
    fn check_refuses_ports_without_tcp_udp() {
        let mut r = Rule::everything(Verdict::Deny);
        assert_eq!(r.check(), Ok(()));
        r.dst_ports = Some(PortRange::single(7));
        assert_eq!(r.check(), Err(RuleError::PortWithoutTcpUdp));
        r.proto = Proto::Icmp;
        assert_eq!(r.check(), Err(RuleError::PortWithoutTcpUdp));
        r.proto = Proto::Udp;
        assert_eq!(r.check(), Ok(()));
        r.proto = Proto::Tcp;
        r.dst_ports = None;
        r.src_ports = Some(PortRange::ALL);
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn direction_matching() {
        assert!(Direction::Any.matches(Direction::In));
        assert!(Direction::Any.matches(Direction::Out));
        assert!(Direction::Any.matches(Direction::Any));
        assert!(Direction::In.matches(Direction::In));
        assert!(!Direction::In.matches(Direction::Out));
        assert!(!Direction::In.matches(Direction::Any));
        assert!(!Direction::Out.matches(Direction::In));
    }

    #[test]
    fn proto_matching() {
        assert!(Proto::Tcp.matches(6) && !Proto::Tcp.matches(17));
        assert!(Proto::Udp.matches(17) && !Proto::Udp.matches(6));
        assert!(Proto::Icmp.matches(1) && !Proto::Icmp.matches(58));
        assert!((0..=255).all(|n| Proto::Any.matches(n)));
    }
}
