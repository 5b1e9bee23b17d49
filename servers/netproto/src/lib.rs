//! `netproto`: the protocol logic of Axolotl's `ip` server, kept apart from the server program so
//! that it is tested on the host (DESIGN.md §2, §6):
//!
//! - [`ether`]: Ethernet II frames (one 802.1Q tag parsed, stacked tags refused) and [`Mac`];
//! - [`arp`]: ARP for IPv4 over Ethernet, and the [`arp::ArpCache`] with its queue of packets
//!   waiting for a MAC address and its retry/give-up policy;
//! - [`checksum`]: the Internet checksum (RFC 1071), incremental updates (RFC 1624) and the
//!   TCP/UDP pseudo-header sum;
//! - [`ipv4`]: IPv4 header validation and building (fragments refused);
//! - [`icmp`]: echo request/reply and destination unreachable, and the errors the ip server sends
//!   (port unreachable: RFC 1122's rules, the quote, a rate limit);
//! - [`route`]: [`Ipv4Cidr`] and the routing table with longest-prefix match;
//! - [`config`]: the interface configuration and its fixed byte layout in the state region;
//! - [`dhcp`]: a DHCP client (DISCOVER/REQUEST out, OFFER/ACK/NAK in) as a state machine;
//! - [`demux`]: one received frame to one [`demux::Verdict`], with a [`demux::Counters`] field
//!   for every outcome;
//! - [`fuzzing`]: the bodies of the fuzz targets, shared by `cargo fuzz` and the tests.
//!
//! Everything read from a frame or from the state region is untrusted: parsers check every bound
//! and return typed errors; none of them panics or indexes out of bounds (`clippy::indexing_slicing`
//! is on for this crate). No system calls, no I/O: times are passed in as milliseconds of a
//! monotonic clock, and what must be sent is returned to the caller. `no_std` with `alloc`
//! (only the ARP cache's queues allocate), `std` in the tests.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(
    test,
    allow(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

extern crate alloc;

pub mod arp;
pub mod checksum;
pub mod config;
pub mod demux;
pub mod dhcp;
pub mod ether;
pub mod fuzzing;
pub mod icmp;
pub mod ipv4;
pub mod route;
mod wire;

pub use core::net::Ipv4Addr;
pub use ether::Mac;
pub use route::Ipv4Cidr;

/// Why a builder could not write a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// The output buffer is too short: the packet needs `needed` bytes.
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
    },
    /// The payload is too large for the 16-bit length field of the header.
    PayloadTooLarge,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => write!(f, "buffer too small: {needed} bytes needed"),
            Self::PayloadTooLarge => f.write_str("payload too large for the length field"),
        }
    }
}
