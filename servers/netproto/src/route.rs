//! IPv4 prefixes ([`Ipv4Cidr`]) and the routing table: a fixed number of routes, each a
//! destination prefix reached directly on an interface or through a gateway, chosen by longest
//! prefix match. The default route is `0.0.0.0/0` through the default gateway.

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// An IPv4 address with a prefix length: an interface address ("10.0.2.15/24", host bits kept)
/// or a network ("10.0.2.0/24", see [`Ipv4Cidr::network`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

/// Why a prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// The text has no `/` and prefix length.
    MissingPrefix,
    /// The address part is not a dotted-quad IPv4 address.
    BadAddress,
    /// The prefix length is not a number from 0 to 32.
    BadPrefix,
    /// A netmask whose one bits are not contiguous from the top.
    NonContiguousMask,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingPrefix => "missing /prefix",
            Self::BadAddress => "bad IPv4 address",
            Self::BadPrefix => "prefix length not 0..=32",
            Self::NonContiguousMask => "netmask not contiguous",
        })
    }
}

impl Ipv4Cidr {
    /// `addr/prefix_len`; the prefix length must be at most 32.
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, CidrError> {
        if prefix_len > 32 {
            return Err(CidrError::BadPrefix);
        }
        Ok(Self { addr, prefix_len })
    }

    /// `addr` with the prefix length of a netmask such as 255.255.255.0.
    pub fn from_netmask(addr: Ipv4Addr, netmask: Ipv4Addr) -> Result<Self, CidrError> {
        let m = u32::from(netmask);
        let len = m.leading_ones();
        if m.checked_shl(len).unwrap_or(0) != 0 {
            return Err(CidrError::NonContiguousMask);
        }
        Self::new(addr, len as u8)
    }

    /// The address (host bits as given).
    pub const fn address(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(self.prefix_len)))
            .unwrap_or(0)
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network: the same prefix with the host bits cleared.
    pub fn network(&self) -> Self {
        Self {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask_bits()),
            ..*self
        }
    }

    /// The directed broadcast address (all host bits set). For /31 and /32, which have no
    /// broadcast address (RFC 3021), `None`.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits()))
    }

    /// True when `ip` is within the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask_bits() == 0
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// Parses "a.b.c.d/n" (n in 0..=32, decimal, at most two digits).
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, len) = s.split_once('/').ok_or(CidrError::MissingPrefix)?;
        let addr = Ipv4Addr::from_str(addr).map_err(|_| CidrError::BadAddress)?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::BadPrefix);
        }
        let len = len.parse::<u8>().map_err(|_| CidrError::BadPrefix)?;
        Self::new(addr, len)
    }
}

/// How a route's destination is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// On the link: the destination itself is the next hop.
    Direct,
    /// Through this gateway (which must itself be reachable directly).
    Gateway(Ipv4Addr),
}

/// An interface number (the ip server has one today: 0).
pub type IfaceId = u8;

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The destination prefix (stored as its network, host bits cleared).
    pub dest: Ipv4Cidr,
    /// Direct, or through a gateway.
    pub next_hop: NextHop,
    /// The interface to send on.
    pub iface: IfaceId,
}

/// The result of a lookup: where to send a packet for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteDecision {
    /// The address whose hardware address to resolve: the destination or the gateway.
    pub next_hop: Ipv4Addr,
    /// The interface to send on.
    pub iface: IfaceId,
    /// The route chosen.
    pub route: Route,
}

/// Why a change to the table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// All [`MAX_ROUTES`] slots are used.
    TableFull,
    /// No route has that destination.
    NotFound,
}

/// How many routes the table holds.
pub const MAX_ROUTES: usize = 16;

/// The routing table. Fixed size, no allocation, `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoutingTable {
    routes: [Option<Route>; MAX_ROUTES],
}

impl RoutingTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            routes: [None; MAX_ROUTES],
        }
    }

    /// Adds `route`, or replaces the route with the same destination prefix.
    pub fn add(&mut self, route: Route) -> Result<(), RouteError> {
        let route = Route {
            dest: route.dest.network(),
            ..route
        };
        let slot = match self
            .routes
            .iter()
            .position(|r| r.is_some_and(|r| r.dest == route.dest))
        {
            Some(i) => i,
            None => self
                .routes
                .iter()
                .position(Option::is_none)
                .ok_or(RouteError::TableFull)?,
        };
        if let Some(s) = self.routes.get_mut(slot) {
            *s = Some(route);
        }
        Ok(())
    }

    /// Removes the route to `dest` (compared as a network).
    pub fn remove(&mut self, dest: Ipv4Cidr) -> Result<Route, RouteError> {
        let dest = dest.network();
        self.routes
            .iter_mut()
            .find(|r| r.is_some_and(|r| r.dest == dest))
            .and_then(Option::take)
            .ok_or(RouteError::NotFound)
    }

    /// Sets the default route (0.0.0.0/0) through `gateway` on `iface`.
    pub fn set_default_gateway(
        &mut self,
        gateway: Ipv4Addr,
        iface: IfaceId,
    ) -> Result<(), RouteError> {
        self.add(Route {
            dest: DEFAULT_ROUTE,
            next_hop: NextHop::Gateway(gateway),
            iface,
        })
    }

    /// The default gateway, if a default route exists.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        self.iter()
            .find(|r| r.dest == DEFAULT_ROUTE)
            .and_then(|r| match r.next_hop {
                NextHop::Gateway(g) => Some(g),
                NextHop::Direct => None,
            })
    }

    /// The route for `dst` with the longest matching prefix, and the next hop it gives.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<RouteDecision> {
        let route = *self
            .iter()
            .filter(|r| r.dest.contains(dst))
            .max_by_key(|r| r.dest.prefix_len())?;
        let next_hop = match route.next_hop {
            NextHop::Direct => dst,
            NextHop::Gateway(g) => g,
        };
        Some(RouteDecision {
            next_hop,
            iface: route.iface,
            route,
        })
    }

    /// The routes, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> + '_ {
        self.routes.iter().flatten()
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 0.0.0.0/0.
pub const DEFAULT_ROUTE: Ipv4Cidr = Ipv4Cidr {
    addr: Ipv4Addr::UNSPECIFIED,
    prefix_len: 0,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_arithmetic() {
        let c = cidr("10.0.2.15/24");
        assert_eq!((c.address(), c.prefix_len()), (ip("10.0.2.15"), 24));
        assert_eq!(c.to_string(), "10.0.2.15/24");
        assert_eq!(c.netmask(), ip("255.255.255.0"));
        assert_eq!(c.network(), cidr("10.0.2.0/24"));
        assert_eq!(c.broadcast(), Some(ip("10.0.2.255")));
        assert!(c.contains(ip("10.0.2.2")) && !c.contains(ip("10.0.3.2")));
        assert_eq!(cidr("0.0.0.0/0").netmask(), ip("0.0.0.0"));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert_eq!(cidr("192.168.7.7/32").netmask(), ip("255.255.255.255"));
        assert_eq!(cidr("192.168.7.7/32").broadcast(), None);
        assert_eq!(cidr("192.168.7.6/31").broadcast(), None);
        assert_eq!(cidr("172.16.5.4/12").network().to_string(), "172.16.0.0/12");
        for (s, e) in [
            ("10.0.2.15", CidrError::MissingPrefix),
            ("10.0.2/24", CidrError::BadAddress),
            ("10.0.2.15 /24", CidrError::BadAddress),
            ("10.0.2.15/33", CidrError::BadPrefix),
            ("10.0.2.15/", CidrError::BadPrefix),
            ("10.0.2.15/+4", CidrError::BadPrefix),
            ("10.0.2.15/024", CidrError::BadPrefix),
            ("10.0.2.15/24/1", CidrError::BadPrefix),
            ("", CidrError::MissingPrefix),
        ] {
            assert_eq!(s.parse::<Ipv4Cidr>(), Err(e), "{s:?}");
        }
        assert_eq!(
            Ipv4Cidr::from_netmask(ip("10.0.2.15"), ip("255.255.240.0")),
            Ok(cidr("10.0.2.15/20"))
        );
        assert_eq!(
            Ipv4Cidr::from_netmask(ip("10.0.2.15"), ip("0.0.0.0")),
            Ok(cidr("10.0.2.15/0"))
        );
        assert_eq!(
            Ipv4Cidr::from_netmask(ip("10.0.2.15"), ip("255.0.255.0")),
            Err(CidrError::NonContiguousMask)
        );
    }

    #[test]
    fn longest_prefix_match() {
        let mut t = RoutingTable::new();
        t.add(Route {
            dest: cidr("10.0.2.15/24"),
            next_hop: NextHop::Direct,
            iface: 0,
        })
        .unwrap();
        t.set_default_gateway(ip("10.0.2.2"), 0).unwrap();
        t.add(Route {
            dest: cidr("10.1.0.0/16"),
            next_hop: NextHop::Gateway(ip("10.0.2.3")),
            iface: 0,
        })
        .unwrap();
        t.add(Route {
            dest: cidr("10.1.2.0/24"),
            next_hop: NextHop::Gateway(ip("10.0.2.4")),
            iface: 1,
        })
        .unwrap();
        t.add(Route {
            dest: cidr("10.1.2.99/32"),
            next_hop: NextHop::Direct,
            iface: 1,
        })
        .unwrap();
        let hop = |t: &RoutingTable, d: &str| t.lookup(ip(d)).map(|r| (r.next_hop, r.iface));
        assert_eq!(hop(&t, "10.0.2.2"), Some((ip("10.0.2.2"), 0)));
        assert_eq!(hop(&t, "10.0.2.200"), Some((ip("10.0.2.200"), 0)));
        assert_eq!(hop(&t, "8.8.8.8"), Some((ip("10.0.2.2"), 0)));
        assert_eq!(hop(&t, "10.1.7.7"), Some((ip("10.0.2.3"), 0)));
        assert_eq!(hop(&t, "10.1.2.7"), Some((ip("10.0.2.4"), 1)));
        assert_eq!(hop(&t, "10.1.2.99"), Some((ip("10.1.2.99"), 1)));
        assert_eq!(t.default_gateway(), Some(ip("10.0.2.2")));
        // Replacing a route keeps one per prefix; removing the default leaves no route out.
        t.set_default_gateway(ip("10.0.2.9"), 0).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(hop(&t, "8.8.8.8"), Some((ip("10.0.2.9"), 0)));
        assert!(t.remove(cidr("0.0.0.0/0")).is_ok());
        assert_eq!(t.remove(cidr("0.0.0.0/0")), Err(RouteError::NotFound));
        assert_eq!(hop(&t, "8.8.8.8"), None);
        assert_eq!(t.default_gateway(), None);
        // The stored destination is the network.
        assert_eq!(
            t.remove(cidr("10.0.2.0/24")).unwrap().dest,
            cidr("10.0.2.0/24")
        );
    }

    #[test]
    fn table_full() {
        let mut t = RoutingTable::new();
        for i in 0..MAX_ROUTES as u8 {
            let r = Route {
                dest: Ipv4Cidr::new(Ipv4Addr::new(10, i, 0, 0), 16).unwrap(),
                next_hop: NextHop::Direct,
                iface: 0,
            };
            t.add(r).unwrap();
        }
        let extra = Route {
            dest: cidr("192.168.0.0/16"),
            next_hop: NextHop::Direct,
            iface: 0,
        };
        assert_eq!(t.add(extra), Err(RouteError::TableFull));
        // Replacing still works when full.
        let again = Route {
            dest: cidr("10.3.0.0/16"),
            next_hop: NextHop::Gateway(ip("10.0.0.1")),
            iface: 0,
        };
        assert!(t.add(again).is_ok());
        assert_eq!(t.lookup(ip("10.3.9.9")).unwrap().next_hop, ip("10.0.0.1"));
    }
}
