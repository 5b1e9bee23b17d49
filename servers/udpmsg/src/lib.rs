//! The UDP path's vocabulary (DESIGN.md §3, docs/netpath.md "UDP"): the channels and regions
//! between ip, udp and each application, and the messages on them. `no_std`, host-tested.
//!
//! ```text
//!  ip ──RX_FRAME (frame + UDP offsets)──> udp ──DATAGRAM──> app    (app's rx pool, owned by udp)
//!  ip <─RX_RETURN(S), RX_UNREACHABLE───── udp <─DATAGRAM_RETURN─ app
//!  ip ──TX_LEND (a tx-pool buffer)──────> udp <─SEND──────────── app (app's tx pool, owned by app)
//!  ip <─UDP_SEND (UDP header + data)───── udp ──SEND_DONE──────> app
//!  ip <─TX_DONE (a lent buffer unused)─── udp
//! ```
//!
//! Ownership: rx-pool buffers are the driver's (udp sends them home through ip); tx-pool buffers
//! are ip's — ip *lends* a few to udp ([`TX_CREDIT`]), udp writes the UDP header and data at
//! [`TX_HEADROOM`] and hands the buffer back with `UDP_SEND`, ip writes the IPv4 and Ethernet
//! headers in front and transmits it; `TX_DONE` from pf frees it as for any frame. An
//! application's rx pool is owned by udp (it copies each datagram's data there once, from the
//! rx-pool buffer: apps never map rx-pool, which holds every host's frames); an application's tx
//! pool is owned by the application (udp copies the data once into the lent tx-pool buffer).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::net::Ipv4Addr;

use libchan::{Message, PoolDescriptor};

/// The udp server's process (and binary) name.
pub const SERVICE: &str = "udp";
/// Channel ip → udp: received datagrams, lent tx-pool buffers.
pub const IP_TO_UDP: &str = "ip-udp";
/// Channel udp → ip: rx buffers going home, datagrams to send, lent buffers given back.
pub const UDP_TO_IP: &str = "udp-ip";
/// tx-pool buffers ip keeps lent to udp.
pub const TX_CREDIT: usize = 16;
/// Where udp writes the UDP header in a lent tx-pool buffer: room for Ethernet and IPv4.
pub const TX_HEADROOM: u32 = 14 + 20;
/// Largest UDP data in one datagram (MTU 1500 minus the IPv4 and UDP headers).
pub const MAX_DATA: usize = 1472;
/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;
/// Size of every buffer of an application's pools (as the path's: `netmsg::BUFFER_SIZE`).
pub const BUFFER_SIZE: u32 = netmsg::BUFFER_SIZE;
/// Pool id of an application's rx pool (udp owns it).
pub const APP_RX_POOL_ID: u16 = 3;
/// Pool id of an application's tx pool (the application owns it).
pub const APP_TX_POOL_ID: u16 = 4;

/// Channel udp → `app`.
pub fn udp_to_app(app: &str) -> String {
    format!("udp-{app}")
}
/// Channel `app` → udp.
pub fn app_to_udp(app: &str) -> String {
    format!("{app}-udp")
}
/// Region of `app`'s rx pool (datagrams received for it; owned by udp).
pub fn app_rx_pool(app: &str) -> String {
    format!("{app}-urx")
}
/// Region of `app`'s tx pool (datagrams it sends; owned by the application).
pub fn app_tx_pool(app: &str) -> String {
    format!("{app}-utx")
}

/// Message tags. The ip ↔ udp descriptors reuse `netmsg`'s tags where the meaning is the same.
pub mod tag {
    /// ip → udp: a received UDP datagram; see [`super::Delivery`].
    pub const DELIVER: u32 = netmsg::tag::RX_FRAME;
    /// udp → ip: an rx-pool buffer going home.
    pub const RX_RETURN: u32 = netmsg::tag::RX_RETURN;
    /// udp → ip: several rx-pool buffers home at once (indices only, built with
    /// `netmsg::merge`).
    pub const RX_RETURNS: u32 = netmsg::tag::RX_RETURNS;
    /// udp → ip: an rx-pool buffer going home, as `RX_RETURN` (the same descriptor), whose
    /// datagram no application had bound the port of: ip may answer it with an ICMP port
    /// unreachable (its own rules and rate limit decide) before sending the buffer home.
    pub const RX_UNREACHABLE: u32 = 0x5544_0003;
    /// ip → udp: a tx-pool buffer lent to udp; word 2 = our IPv4 address.
    pub const TX_LEND: u32 = 0x5544_0001;
    /// udp → ip: a datagram to send; see [`super::Outgoing`].
    pub const UDP_SEND: u32 = 0x5544_0002;
    /// udp → ip: a lent tx-pool buffer given back unused.
    pub const TX_GIVE_BACK: u32 = netmsg::tag::TX_DONE;
    /// app → udp: bind word 2 = port.
    pub const BIND: u32 = 0x5541_0001;
    /// udp → app: answer to BIND; word 2 = port, word 3 = [`super::Status`].
    pub const BIND_REPLY: u32 = 0x5541_0002;
    /// udp → app: a datagram in the app's rx pool; see [`super::AppDatagram`].
    pub const DATAGRAM: u32 = 0x5541_0003;
    /// app → udp: an rx-pool buffer of the app's, read.
    pub const DATAGRAM_RETURN: u32 = 0x5541_0004;
    /// app → udp: a datagram to send from the app's tx pool; see [`super::AppDatagram`].
    pub const SEND: u32 = 0x5541_0005;
    /// udp → app: a tx buffer of the app's, done with; word 3 = [`super::Status`].
    pub const SEND_DONE: u32 = 0x5541_0006;
}

/// Outcome codes udp reports to applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The port is bound already.
    AddrInUse = 1,
    /// Port 0, or this application has a port already.
    Invalid = 2,
    /// Not bound.
    NotBound = 3,
    /// No buffer to send it in (udp had no tx-pool buffer from ip).
    NoBuffer = 4,
    /// Bad destination (0.0.0.0 or port 0) or more than [`MAX_DATA`] bytes.
    BadDatagram = 5,
}

impl Status {
    /// The status of a code (unknown codes are `Invalid`).
    pub fn from_code(c: u64) -> Self {
        match c {
            0 => Status::Ok,
            1 => Status::AddrInUse,
            3 => Status::NotBound,
            4 => Status::NoBuffer,
            5 => Status::BadDatagram,
            _ => Status::Invalid,
        }
    }
}

fn addr_word(a: Ipv4Addr) -> u64 {
    u64::from(u32::from(a))
}

fn word_addr(w: u64) -> Ipv4Addr {
    Ipv4Addr::from(w as u32)
}

/// ip → udp `DELIVER`: the descriptor is the received frame as pf handed it to ip (whole
/// frame); `udp_offset` is the UDP header's offset **in the buffer** (not in the frame) and
/// `udp_len` the IPv4 payload length. Words: 0–1 descriptor, 2 `src | dst << 32`, 3
/// `udp_offset | udp_len << 32`, 4 broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The rx-pool buffer.
    pub frame: PoolDescriptor,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// Offset of the UDP header in the buffer.
    pub udp_offset: u32,
    /// UDP header and data (the IPv4 payload).
    pub udp_len: u32,
    /// Sent to a broadcast address.
    pub broadcast: bool,
}

impl Delivery {
    /// The message.
    pub fn message(&self) -> Message {
        let mut m = Message::with_descriptor(tag::DELIVER, self.frame);
        m.payload[2] = addr_word(self.src) | addr_word(self.dst) << 32;
        m.payload[3] = u64::from(self.udp_offset) | u64::from(self.udp_len) << 32;
        m.payload[4] = u64::from(self.broadcast);
        m.len = 40;
        m
    }

    /// Reads a `DELIVER` (the caller checked the tag); `None` unless the UDP bytes lie inside
    /// the frame the descriptor names. The descriptor itself is still to be checked against the
    /// pool.
    pub fn decode(m: &Message) -> Option<Self> {
        let frame = m.descriptor();
        let d = Self {
            frame,
            src: word_addr(m.payload[2]),
            dst: word_addr(m.payload[2] >> 32),
            udp_offset: m.payload[3] as u32,
            udp_len: (m.payload[3] >> 32) as u32,
            broadcast: m.payload[4] & 1 != 0,
        };
        let end = u64::from(d.udp_offset) + u64::from(d.udp_len);
        let frame_end = u64::from(frame.offset) + u64::from(frame.len);
        (d.udp_offset >= frame.offset && end <= frame_end && d.udp_len as usize >= UDP_HEADER_LEN)
            .then_some(d)
    }
}

/// udp → ip `UDP_SEND`: a lent tx-pool buffer whose bytes `offset..offset + len` are a finished
/// UDP header and data (`offset` = [`TX_HEADROOM`]); word 2 = the IPv4 destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// The tx-pool buffer and the UDP bytes in it.
    pub segment: PoolDescriptor,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
}

impl Outgoing {
    /// The message.
    pub fn message(&self) -> Message {
        let mut m = Message::with_descriptor(tag::UDP_SEND, self.segment);
        m.payload[2] = addr_word(self.dst);
        m.len = 24;
        m
    }

    /// Reads a `UDP_SEND` (the caller checked the tag); the descriptor is not checked.
    pub fn decode(m: &Message) -> Self {
        Self {
            segment: m.descriptor(),
            dst: word_addr(m.payload[2]),
        }
    }
}

/// ip → udp `TX_LEND`.
pub fn lend_message(buffer: PoolDescriptor, our_address: Ipv4Addr) -> Message {
    let mut m = Message::with_descriptor(tag::TX_LEND, buffer);
    m.payload[2] = addr_word(our_address);
    m.len = 24;
    m
}

/// Our address in a `TX_LEND`.
pub fn lend_address(m: &Message) -> Ipv4Addr {
    word_addr(m.payload[2])
}

/// udp ↔ app `DATAGRAM` (received, in the app's rx pool) and `SEND` (to send, in the app's tx
/// pool): the data bytes, the peer's address and port, and (received only) our port. Words: 0–1
/// descriptor of the data, 2 peer address, 3 `peer_port | local_port << 16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppDatagram {
    /// The data.
    pub data: PoolDescriptor,
    /// The peer: source of a received datagram, destination of one to send.
    pub peer: Ipv4Addr,
    /// The peer's port.
    pub peer_port: u16,
    /// Our port (received only; udp fills in the bound port when sending).
    pub local_port: u16,
}

impl AppDatagram {
    /// The message with `tag` ([`tag::DATAGRAM`] or [`tag::SEND`]).
    pub fn message(&self, tag: u32) -> Message {
        let mut m = Message::with_descriptor(tag, self.data);
        m.payload[2] = addr_word(self.peer);
        m.payload[3] = u64::from(self.peer_port) | u64::from(self.local_port) << 16;
        m.len = 32;
        m
    }

    /// Reads one (the caller checked the tag); the descriptor is not checked.
    pub fn decode(m: &Message) -> Self {
        Self {
            data: m.descriptor(),
            peer: word_addr(m.payload[2]),
            peer_port: m.payload[3] as u16,
            local_port: (m.payload[3] >> 16) as u16,
        }
    }
}

/// A message of `tag` with `words` at payload 2.. (BIND, BIND_REPLY, SEND_DONE, returns).
pub fn control(tag: u32, desc: PoolDescriptor, w2: u64, w3: u64) -> Message {
    let mut m = Message::with_descriptor(tag, desc);
    m.payload[2] = w2;
    m.payload[3] = w3;
    m.len = 32;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pool: u16, index: u32, offset: u32, len: u32) -> PoolDescriptor {
        PoolDescriptor {
            pool,
            index,
            offset,
            len,
        }
    }

    #[test]
    fn delivery_round_trips_and_is_bounded_by_the_frame() {
        let x = Delivery {
            frame: d(1, 7, 0, 100),
            src: Ipv4Addr::new(10, 0, 2, 2),
            dst: Ipv4Addr::new(10, 0, 2, 15),
            udp_offset: 34,
            udp_len: 66,
            broadcast: true,
        };
        assert_eq!(Delivery::decode(&x.message()), Some(x));
        for (off, len) in [(34, 67), (u32::MAX, 10), (34, 7), (0, 0)] {
            let bad = Delivery {
                udp_offset: off,
                udp_len: len,
                ..x
            };
            assert_eq!(Delivery::decode(&bad.message()), None, "{off} {len}");
        }
        let before = Delivery {
            frame: d(1, 7, 40, 60),
            ..x
        };
        assert_eq!(Delivery::decode(&before.message()), None);
    }

    #[test]
    fn other_messages_round_trip() {
        let o = Outgoing {
            segment: d(2, 3, TX_HEADROOM, 20),
            dst: Ipv4Addr::new(1, 2, 3, 4),
        };
        assert_eq!(Outgoing::decode(&o.message()), o);
        let a = AppDatagram {
            data: d(3, 1, 0, 5),
            peer: Ipv4Addr::new(9, 8, 7, 6),
            peer_port: 65535,
            local_port: 7,
        };
        assert_eq!(AppDatagram::decode(&a.message(tag::SEND)), a);
        let l = lend_message(d(2, 5, 0, 2048), Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(
            (l.tag, l.descriptor().index, lend_address(&l)),
            (tag::TX_LEND, 5, Ipv4Addr::new(10, 0, 2, 15))
        );
        for s in [
            Status::Ok,
            Status::AddrInUse,
            Status::Invalid,
            Status::NotBound,
            Status::NoBuffer,
            Status::BadDatagram,
        ] {
            assert_eq!(Status::from_code(s as u64), s);
        }
        assert_eq!(udp_to_app("udpecho"), "udp-udpecho");
        assert_eq!(app_tx_pool("udpecho"), "udpecho-utx");
    }
}
