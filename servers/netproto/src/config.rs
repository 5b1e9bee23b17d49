//! The ip server's configuration — its address, gateway, DNS server, MTU and static routes —
//! and its fixed byte layout in the server's state region, which the kernel keeps across a
//! restart (DESIGN.md §6). [`IpConfig::default`] is QEMU's user networking: 10.0.2.15/24,
//! gateway 10.0.2.2, DNS 10.0.2.3.
//!
//! Layout ([`STATE_LEN`] bytes, integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `AXIP` |
//! | 4 | 1 | layout version, [`STATE_VERSION`] |
//! | 5 | 1 | flags: bit 0 from DHCP, bit 1 has gateway, bit 2 has DNS; others zero |
//! | 6 | 1 | prefix length, 0..=32 |
//! | 7 | 1 | number of static routes, 0..=[`MAX_STATIC_ROUTES`] |
//! | 8 | 4 | address |
//! | 12 | 4 | gateway (zero without) |
//! | 16 | 4 | DNS server (zero without) |
//! | 20 | 2 | MTU, 68..=9000 |
//! | 22 | 2 | reserved, zero |
//! | 24 | 8 | DHCP lease end, milliseconds of the monotonic clock (zero: none) |
//! | 32 | 8 × 12 | routes: network 4, prefix length 1, kind 1 (0 direct, 1 gateway), interface 1, reserved 1, gateway 4 (zero for direct); unused slots all zero |
//! | 128 | 4 | CRC-32 (IEEE) of bytes 0..128 |
//!
//! [`IpConfig::load`] refuses anything that is not exactly what [`IpConfig::store`] writes, so
//! a region that loads stores back byte for byte. A fresh (all-zero) region fails with
//! [`ConfigError::BadMagic`]: the server then starts from the default.

use core::fmt;
use core::net::Ipv4Addr;

use crate::route::{IfaceId, Ipv4Cidr, NextHop, Route, RouteError, RoutingTable};
use crate::wire;

/// Bytes of the layout.
pub const STATE_LEN: usize = 132;
/// The layout version this code reads and writes.
pub const STATE_VERSION: u8 = 1;
/// The magic at offset 0.
pub const STATE_MAGIC: [u8; 4] = *b"AXIP";
/// How many static routes (besides the connected and default ones) the layout holds.
pub const MAX_STATIC_ROUTES: usize = 8;

const ROUTES_AT: usize = 32;
const ROUTE_LEN: usize = 12;
const CRC_AT: usize = 128;
const FLAG_DHCP: u8 = 1;
const FLAG_GATEWAY: u8 = 2;
const FLAG_DNS: u8 = 4;

/// Why a state region was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// Shorter than [`STATE_LEN`].
    Truncated,
    /// The magic is not `AXIP`: never written (or not ours).
    BadMagic,
    /// A layout version this code does not know (the value found).
    UnsupportedVersion(u8),
    /// The CRC does not match: torn or corrupted.
    BadChecksum,
    /// Unknown flag bits, or a non-zero reserved field or unused slot.
    NonZeroReserved,
    /// A prefix length above 32.
    BadPrefix,
    /// More static routes than [`MAX_STATIC_ROUTES`].
    TooManyRoutes,
    /// A route kind other than 0 (direct) or 1 (gateway), or a direct route with a gateway.
    BadRoute,
    /// An MTU outside 68..=9000.
    BadMtu,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("config: truncated"),
            Self::BadMagic => f.write_str("config: no magic"),
            Self::UnsupportedVersion(v) => write!(f, "config: layout version {v}"),
            Self::BadChecksum => f.write_str("config: bad checksum"),
            Self::NonZeroReserved => f.write_str("config: reserved bits set"),
            Self::BadPrefix => f.write_str("config: prefix length above 32"),
            Self::TooManyRoutes => f.write_str("config: too many routes"),
            Self::BadRoute => f.write_str("config: bad route"),
            Self::BadMtu => f.write_str("config: MTU out of range"),
        }
    }
}

/// A static route: destination reached directly or through a gateway, on an interface.
pub type StaticRoute = Route;

/// The interface configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpConfig {
    /// Our address and the on-link prefix.
    pub address: Ipv4Cidr,
    /// The default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// The DNS server.
    pub dns: Option<Ipv4Addr>,
    /// The MTU of the link.
    pub mtu: u16,
    /// The configuration came from a DHCP lease.
    pub from_dhcp: bool,
    /// When the DHCP lease ends (monotonic milliseconds); 0 for none.
    pub lease_end_ms: u64,
    /// Static routes besides the connected and default ones; the first `route_count` count.
    routes: [Option<StaticRoute>; MAX_STATIC_ROUTES],
}

impl Default for IpConfig {
    /// QEMU user networking: 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3, MTU 1500, static.
    fn default() -> Self {
        Self {
            address: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24)
                .unwrap_or(crate::route::DEFAULT_ROUTE),
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: Some(Ipv4Addr::new(10, 0, 2, 3)),
            mtu: 1500,
            from_dhcp: false,
            lease_end_ms: 0,
            routes: [None; MAX_STATIC_ROUTES],
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), bit by bit: the region is small.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl IpConfig {
    /// What the ip server keeps while DHCP has no lease: no address (0.0.0.0/0), no gateway,
    /// no DNS, `from_dhcp` and no lease end; the MTU and static routes of `self`.
    pub fn without_lease(&self) -> Self {
        Self {
            address: crate::route::DEFAULT_ROUTE,
            gateway: None,
            dns: None,
            from_dhcp: true,
            lease_end_ms: 0,
            ..*self
        }
    }

    /// True when this is a DHCP lease with an address that has not ended at `now_ms`: what a
    /// restarted ip server in DHCP mode keeps using.
    pub fn lease_valid_at(&self, now_ms: u64) -> bool {
        self.from_dhcp && self.lease_end_ms > now_ms && !self.address.address().is_unspecified()
    }

    /// The static routes.
    pub fn routes(&self) -> impl Iterator<Item = &StaticRoute> + '_ {
        self.routes.iter().flatten()
    }

    /// Adds a static route (its destination stored as a network); fails when
    /// [`MAX_STATIC_ROUTES`] are there.
    pub fn add_route(&mut self, route: StaticRoute) -> Result<(), RouteError> {
        let route = Route {
            dest: route.dest.network(),
            ..route
        };
        let slot = self
            .routes
            .iter_mut()
            .find(|r| r.is_none())
            .ok_or(RouteError::TableFull)?;
        *slot = Some(route);
        Ok(())
    }

    /// The routing table this configuration gives on `iface`: the connected prefix, the
    /// default route through the gateway, and the static routes.
    pub fn routing_table(&self, iface: IfaceId) -> Result<RoutingTable, RouteError> {
        let mut t = RoutingTable::new();
        t.add(Route {
            dest: self.address.network(),
            next_hop: NextHop::Direct,
            iface,
        })?;
        if let Some(gw) = self.gateway {
            t.set_default_gateway(gw, iface)?;
        }
        for r in self.routes() {
            t.add(*r)?;
        }
        Ok(t)
    }

    /// Writes the layout (see the module documentation).
    pub fn store(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = flag(self.from_dhcp, FLAG_DHCP)
            | flag(self.gateway.is_some(), FLAG_GATEWAY)
            | flag(self.dns.is_some(), FLAG_DNS);
        let count = self.routes().count() as u8;
        let mut head = [0u8; ROUTES_AT];
        head[..4].copy_from_slice(&STATE_MAGIC);
        head[4] = STATE_VERSION;
        head[5] = flags;
        head[6] = self.address.prefix_len();
        head[7] = count;
        head[8..12].copy_from_slice(&self.address.address().octets());
        head[12..16].copy_from_slice(&self.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        head[16..20].copy_from_slice(&self.dns.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        head[20..22].copy_from_slice(&self.mtu.to_be_bytes());
        head[24..32].copy_from_slice(&self.lease_end_ms.to_be_bytes());
        let _ = wire::put(&mut b, 0, &head);
        for (i, r) in self.routes().enumerate() {
            let mut e = [0u8; ROUTE_LEN];
            e[..4].copy_from_slice(&r.dest.address().octets());
            e[4] = r.dest.prefix_len();
            let gw = match r.next_hop {
                NextHop::Direct => Ipv4Addr::UNSPECIFIED,
                NextHop::Gateway(g) => {
                    e[5] = 1;
                    g
                }
            };
            e[6] = r.iface;
            e[8..12].copy_from_slice(&gw.octets());
            let _ = wire::put(&mut b, ROUTES_AT + i * ROUTE_LEN, &e);
        }
        let crc = crc32(b.get(..CRC_AT).unwrap_or_default());
        let _ = wire::put(&mut b, CRC_AT, &crc.to_be_bytes());
        b
    }

    /// Reads and validates the layout; see [`ConfigError`] for what is refused.
    pub fn load(buf: &[u8]) -> Result<Self, ConfigError> {
        let b: [u8; STATE_LEN] = wire::bytes(buf, 0).ok_or(ConfigError::Truncated)?;
        let head: [u8; ROUTES_AT] = wire::bytes(&b, 0).ok_or(ConfigError::Truncated)?;
        if head[..4] != STATE_MAGIC {
            return Err(ConfigError::BadMagic);
        }
        if head[4] != STATE_VERSION {
            return Err(ConfigError::UnsupportedVersion(head[4]));
        }
        let stored = wire::be32(&b, CRC_AT).ok_or(ConfigError::Truncated)?;
        if crc32(b.get(..CRC_AT).ok_or(ConfigError::Truncated)?) != stored {
            return Err(ConfigError::BadChecksum);
        }
        let flags = head[5];
        if flags & !(FLAG_DHCP | FLAG_GATEWAY | FLAG_DNS) != 0 || head[22..24] != [0, 0] {
            return Err(ConfigError::NonZeroReserved);
        }
        let quad = |a: [u8; 4]| Ipv4Addr::from(a);
        let optional = |flag: u8, a: Ipv4Addr| {
            if flags & flag != 0 {
                Ok(Some(a))
            } else if a.is_unspecified() {
                Ok(None)
            } else {
                Err(ConfigError::NonZeroReserved)
            }
        };
        let address = Ipv4Cidr::new(quad([head[8], head[9], head[10], head[11]]), head[6])
            .map_err(|_| ConfigError::BadPrefix)?;
        let gateway = optional(FLAG_GATEWAY, quad([head[12], head[13], head[14], head[15]]))?;
        let dns = optional(FLAG_DNS, quad([head[16], head[17], head[18], head[19]]))?;
        let mtu = u16::from_be_bytes([head[20], head[21]]);
        if !(68..=9000).contains(&mtu) {
            return Err(ConfigError::BadMtu);
        }
        let count = usize::from(head[7]);
        if count > MAX_STATIC_ROUTES {
            return Err(ConfigError::TooManyRoutes);
        }
        let mut routes = [None; MAX_STATIC_ROUTES];
        for (i, slot) in routes.iter_mut().enumerate() {
            let e: [u8; ROUTE_LEN] =
                wire::bytes(&b, ROUTES_AT + i * ROUTE_LEN).ok_or(ConfigError::Truncated)?;
            if i >= count {
                if e != [0; ROUTE_LEN] {
                    return Err(ConfigError::NonZeroReserved);
                }
                continue;
            }
            let dest = Ipv4Cidr::new(quad([e[0], e[1], e[2], e[3]]), e[4])
                .map_err(|_| ConfigError::BadPrefix)?;
            if dest.network() != dest || e[7] != 0 {
                return Err(ConfigError::NonZeroReserved);
            }
            let gw = quad([e[8], e[9], e[10], e[11]]);
            let next_hop = match e[5] {
                0 if gw.is_unspecified() => NextHop::Direct,
                1 => NextHop::Gateway(gw),
                _ => return Err(ConfigError::BadRoute),
            };
            *slot = Some(Route {
                dest,
                next_hop,
                iface: e[6],
            });
        }
        Ok(Self {
            address,
            gateway,
            dns,
            mtu,
            from_dhcp: flags & FLAG_DHCP != 0,
            lease_end_ms: u64::from_be_bytes([
                head[24], head[25], head[26], head[27], head[28], head[29], head[30], head[31],
            ]),
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn qemu_default_and_its_routes() {
        let c = IpConfig::default();
        assert_eq!(c.address.to_string(), "10.0.2.15/24");
        assert_eq!(c.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(c.dns, Some(Ipv4Addr::new(10, 0, 2, 3)));
        let t = c.routing_table(0).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.lookup(Ipv4Addr::new(1, 1, 1, 1)).unwrap().next_hop,
            Ipv4Addr::new(10, 0, 2, 2)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 0, 2, 3)).unwrap().next_hop,
            Ipv4Addr::new(10, 0, 2, 3)
        );
    }

    fn sample() -> IpConfig {
        let mut c = IpConfig {
            from_dhcp: true,
            lease_end_ms: 86_400_000,
            dns: None,
            ..Default::default()
        };
        c.add_route(Route {
            dest: "192.168.77.9/24".parse().unwrap(),
            next_hop: NextHop::Gateway(Ipv4Addr::new(10, 0, 2, 7)),
            iface: 0,
        })
        .unwrap();
        c.add_route(Route {
            dest: "10.9.0.0/16".parse().unwrap(),
            next_hop: NextHop::Direct,
            iface: 1,
        })
        .unwrap();
        c
    }

    #[test]
    fn round_trip() {
        for c in [IpConfig::default(), sample()] {
            let b = c.store();
            assert_eq!(&b[..4], b"AXIP");
            let back = IpConfig::load(&b).unwrap();
            assert_eq!(back, c);
            assert_eq!(back.store(), b);
        }
        let c = sample();
        assert_eq!(c.routes().count(), 2);
        assert_eq!(c.routing_table(0).unwrap().len(), 4);
        assert_eq!(
            c.routing_table(0)
                .unwrap()
                .lookup(Ipv4Addr::new(192, 168, 77, 1))
                .unwrap()
                .next_hop,
            Ipv4Addr::new(10, 0, 2, 7)
        );
    }

    /// Re-seals a hand-edited region with a good CRC, to reach the field checks.
    fn reseal(b: &mut [u8; STATE_LEN]) {
        let crc = crc32(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn refusals() {
        let good = sample().store();
        assert_eq!(
            IpConfig::load(&good[..STATE_LEN - 1]),
            Err(ConfigError::Truncated)
        );
        assert_eq!(
            IpConfig::load(&[0u8; STATE_LEN]),
            Err(ConfigError::BadMagic)
        );
        let mut b = good;
        b[4] = 2;
        assert_eq!(IpConfig::load(&b), Err(ConfigError::UnsupportedVersion(2)));
        for i in 5..STATE_LEN {
            let mut b = good;
            b[i] ^= 0x10;
            assert_eq!(
                IpConfig::load(&b),
                Err(ConfigError::BadChecksum),
                "byte {i}"
            );
        }
        let edits: [(usize, u8, ConfigError); 9] = [
            (5, 0x08, ConfigError::NonZeroReserved),
            (6, 33, ConfigError::BadPrefix),
            (7, 9, ConfigError::TooManyRoutes),
            (16, 1, ConfigError::NonZeroReserved), // DNS without its flag
            (20, 0, ConfigError::BadMtu),          // with byte 21 = 67 below: MTU 67
            (23, 1, ConfigError::NonZeroReserved),
            (ROUTES_AT + 5, 2, ConfigError::BadRoute),
            (ROUTES_AT + 3, 9, ConfigError::NonZeroReserved), // host bits in a network
            (ROUTES_AT + 2 * ROUTE_LEN, 1, ConfigError::NonZeroReserved), // unused slot
        ];
        for (at, v, e) in edits {
            let mut b = good;
            b[at] = v;
            if at == 20 {
                b[21] = 67;
            }
            reseal(&mut b);
            assert_eq!(IpConfig::load(&b), Err(e), "byte {at}");
        }
        // A direct route with a gateway address.
        let mut b = good;
        b[ROUTES_AT + ROUTE_LEN + 8] = 10;
        reseal(&mut b);
        assert_eq!(IpConfig::load(&b), Err(ConfigError::BadRoute));
    }

    #[test]
    fn a_lease_and_its_absence() {
        let leased = IpConfig {
            from_dhcp: true,
            lease_end_ms: 1_000,
            ..sample()
        };
        assert!(leased.lease_valid_at(999));
        assert!(!leased.lease_valid_at(1_000));
        assert!(!IpConfig::default().lease_valid_at(0), "static");
        let none = leased.without_lease();
        assert_eq!(none.address.to_string(), "0.0.0.0/0");
        assert_eq!((none.gateway, none.dns, none.lease_end_ms), (None, None, 0));
        assert_eq!((none.mtu, none.routes().count()), (leased.mtu, 2));
        assert!(!none.lease_valid_at(0));
        // It stores and loads like any other configuration.
        assert_eq!(IpConfig::load(&none.store()), Ok(none));
    }

    #[test]
    fn add_route_bounded() {
        let mut c = IpConfig::default();
        for i in 0..MAX_STATIC_ROUTES as u8 {
            let dest = Ipv4Cidr::new(Ipv4Addr::new(10, 10, i, 0), 24).unwrap();
            c.add_route(Route {
                dest,
                next_hop: NextHop::Direct,
                iface: 0,
            })
            .unwrap();
        }
        let dest = Ipv4Cidr::new(Ipv4Addr::new(10, 11, 0, 0), 24).unwrap();
        assert_eq!(
            c.add_route(Route {
                dest,
                next_hop: NextHop::Direct,
                iface: 0
            }),
            Err(RouteError::TableFull)
        );
        let b = c.store();
        assert_eq!(IpConfig::load(&b).unwrap(), c);
        // Connected + default + 8 static routes fit in the routing table.
        assert_eq!(c.routing_table(0).unwrap().len(), 10);
    }
}
