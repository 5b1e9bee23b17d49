//! The TCP path's vocabulary (docs/netpath.md "TCP"): the channels and regions between ip, tcp
//! and each application, and the messages on them. `no_std`, host-tested. It mirrors `udpmsg`
//! with one difference: tcp runs a whole IPv4 endpoint (smoltcp, `Medium::Ip`), so ip hands it
//! and takes from it whole IPv4 packets (header included), not transport segments.
//!
//! ```text
//!  ip ──DELIVER (rx descriptor + IPv4 packet offset)──> tcp ──DATA──────────> app (app's rx pool, tcp's)
//!  ip <─RX_RETURN────────────────────────────────────── tcp <─DATA_RETURN──── app
//!  ip ──TX_LEND (a tx-pool buffer)─────────────────────> tcp <─WRITE────────── app (app's tx pool, its own)
//!  ip <─IP_SEND (IPv4 packet at TX_HEADROOM)──────────── tcp ──WRITE_DONE────> app
//! ```
//!
//! Ownership is `udpmsg`'s: rx-pool buffers are the driver's (tcp sends them home through ip at
//! once, after smoltcp has read the packet in place); tx-pool buffers are ip's, lent to tcp
//! ([`TX_CREDIT`]); smoltcp writes the IPv4 packet at [`TX_HEADROOM`] in place and ip writes
//! only the Ethernet header in front. An application's rx pool is owned by tcp, its tx pool by
//! the application.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use libchan::{Message, PoolDescriptor};

/// The tcp server's process (and binary) name.
pub const SERVICE: &str = "tcp";
/// Channel ip → tcp: received packets, lent tx-pool buffers.
pub const IP_TO_TCP: &str = "ip-tcp";
/// Channel tcp → ip: rx buffers going home, packets to send, lent buffers given back.
pub const TCP_TO_IP: &str = "tcp-ip";
/// tx-pool buffers ip keeps lent to a tcp on a CPU of its own: what smoltcp can write before
/// ip tops the loan up. Each top-up is a round trip through ip on another CPU (a wake-up when
/// ip sleeps, and under emulation a wait for a host core); the loan must outlast it. With 64
/// tcp waited for buffers and sent 0.6 Gbit/s in the split layout, with 512 0.93
/// (`cargo xtask bench`, docs/measurements.md).
pub const TX_CREDIT: usize = 512;
/// The loan in the single layout, where ip tops it up in the same loop as tcp uses it (a
/// larger one only spreads the frames over more buffers: with 512 it sent 1.29–1.33 Gbit/s in
/// three `cargo xtask bench --seconds 5 --no-recovery` runs, with 64 1.38–1.55).
pub const TX_CREDIT_ONE_LOOP: usize = 64;
/// Where tcp writes the IPv4 packet in a lent tx-pool buffer: room for Ethernet.
pub const TX_HEADROOM: u32 = 14;
/// Smallest IPv4 + TCP packet.
pub const MIN_PACKET: u32 = 40;
/// Size of every buffer of an application's pools.
pub const BUFFER_SIZE: u32 = netmsg::BUFFER_SIZE;
/// Pool id of an application's rx pool (tcp owns it).
pub const APP_RX_POOL_ID: u16 = 5;
/// Pool id of an application's tx pool (the application owns it).
pub const APP_TX_POOL_ID: u16 = 6;

/// Channel tcp → `app`.
pub fn tcp_to_app(app: &str) -> String {
    format!("tcp-{app}")
}
/// Channel `app` → tcp.
pub fn app_to_tcp(app: &str) -> String {
    format!("{app}-tcp")
}
/// Region of `app`'s rx pool (stream bytes received for it; owned by tcp).
pub fn app_rx_pool(app: &str) -> String {
    format!("{app}-trx")
}
/// Region of `app`'s tx pool (stream bytes it writes; owned by the application).
pub fn app_tx_pool(app: &str) -> String {
    format!("{app}-ttx")
}

/// Message tags.
pub mod tag {
    /// ip → tcp: a received IPv4 packet carrying TCP; see [`super::Delivery`].
    pub const DELIVER: u32 = netmsg::tag::RX_FRAME;
    /// tcp → ip: an rx-pool buffer going home.
    pub const RX_RETURN: u32 = netmsg::tag::RX_RETURN;
    /// tcp → ip: several rx-pool buffers home at once (indices only, built with
    /// `netmsg::merge`).
    pub const RX_RETURNS: u32 = netmsg::tag::RX_RETURNS;
    /// ip → tcp: a tx-pool buffer lent to tcp; word 2 = our IPv4 address.
    pub const TX_LEND: u32 = 0x5443_0001;
    /// tcp → ip: an IPv4 packet to send at [`super::TX_HEADROOM`] of a lent buffer.
    pub const IP_SEND: u32 = 0x5443_0002;
    /// tcp → ip: a lent tx-pool buffer given back unused.
    pub const TX_GIVE_BACK: u32 = netmsg::tag::TX_DONE;
    /// ip → tcp: frames tcp sent were lost past ip (pf or the driver restarted): send again at
    /// once what is not acknowledged, rather than after the retransmission timeout. No words.
    pub const PATH_LOST: u32 = 0x5443_0003;
    /// app → tcp: listen on word 2 = port.
    pub const LISTEN: u32 = 0x5441_0001;
    /// tcp → app: answer to LISTEN; word 2 = port, word 3 = [`super::Status`].
    pub const LISTEN_REPLY: u32 = 0x5441_0002;
    /// tcp → app: a connection was accepted; word 2 = connection id, word 3 = the peer
    /// ([`super::endpoint`]), word 4 = the local port it came to.
    pub const ACCEPTED: u32 = 0x5441_0003;
    /// tcp → app: stream bytes in the app's rx pool; word 2 = connection id.
    pub const DATA: u32 = 0x5441_0004;
    /// app → tcp: an rx-pool buffer of the app's, read.
    pub const DATA_RETURN: u32 = 0x5441_0005;
    /// app → tcp: bytes to write from the app's tx pool; word 2 = connection id.
    pub const WRITE: u32 = 0x5441_0006;
    /// tcp → app: a tx buffer of the app's, done with; word 2 = connection id, word 3 =
    /// [`super::Status`].
    pub const WRITE_DONE: u32 = 0x5441_0007;
    /// tcp → app: the peer closed its side, every byte delivered; word 2 = connection id.
    pub const EOF: u32 = 0x5441_0008;
    /// tcp → app: the connection is gone (reset, timed out, or closed); word 2 = connection id.
    pub const CLOSED: u32 = 0x5441_0009;
    /// app → tcp: no more writes (FIN after the queued bytes); word 2 = connection id.
    pub const SHUTDOWN: u32 = 0x5441_000a;
    /// app → tcp: the stream is dropped: close it gracefully; word 2 = connection id.
    pub const CLOSE: u32 = 0x5441_000b;
    /// app → tcp: open a connection to word 2 = [`super::endpoint`]; word 3 = the application's
    /// token for the answer.
    pub const CONNECT: u32 = 0x5441_000c;
    /// tcp → app: the connection asked for is established; word 2 = connection id, word 3 = the
    /// token of the CONNECT.
    pub const CONNECTED: u32 = 0x5441_000d;
    /// tcp → app: the connection asked for failed; word 2 = the token, word 3 =
    /// [`super::Status`].
    pub const CONNECT_FAILED: u32 = 0x5441_000e;
    /// app → tcp: stop listening on word 2 = port (connections accepted already stay).
    pub const UNLISTEN: u32 = 0x5441_000f;
    /// app → tcp: a new instance of the application starts: forget everything of the last one
    /// (its connections are reset, its ports freed, the buffers it held taken back).
    pub const HELLO: u32 = 0x5441_0010;
    /// tcp → app: answer to HELLO; word 2 = the HELLO's word 2 (a nonce).
    pub const HELLO_REPLY: u32 = 0x5441_0011;
}

/// The message word of an IPv4 endpoint: address | port << 32.
pub fn endpoint(addr: core::net::Ipv4Addr, port: u16) -> u64 {
    u64::from(u32::from(addr)) | u64::from(port) << 32
}

/// The endpoint of a message word (see [`endpoint`]).
pub fn endpoint_of(w: u64) -> core::net::SocketAddrV4 {
    core::net::SocketAddrV4::new(core::net::Ipv4Addr::from(w as u32), (w >> 32) as u16)
}

/// Outcome codes tcp reports to applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The port is taken already.
    AddrInUse = 1,
    /// Port 0, or this application listens already.
    Invalid = 2,
    /// No such connection (closed, or another one's id).
    NotConnected = 3,
    /// The peer refused the connection (RST), or it timed out.
    Refused = 4,
    /// tcp serves as many connections as it has memory for.
    NoResources = 5,
    /// tcp has no address yet (ip has not lent it a buffer), or the address is unusable.
    Unreachable = 6,
}

impl Status {
    /// The status of a code (unknown codes are `Invalid`).
    pub fn from_code(c: u64) -> Self {
        match c {
            0 => Status::Ok,
            1 => Status::AddrInUse,
            3 => Status::NotConnected,
            4 => Status::Refused,
            5 => Status::NoResources,
            6 => Status::Unreachable,
            _ => Status::Invalid,
        }
    }
}

/// ip → tcp `DELIVER`: the received frame's descriptor as pf handed it to ip; `ip_offset` is
/// the IPv4 header's offset **in the buffer** and `ip_len` the IPv4 total length. Words: 0–1
/// descriptor, 2 `ip_offset | ip_len << 32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The rx-pool buffer.
    pub frame: PoolDescriptor,
    /// Offset of the IPv4 header in the buffer.
    pub ip_offset: u32,
    /// The IPv4 packet's length.
    pub ip_len: u32,
}

impl Delivery {
    /// The message.
    pub fn message(&self) -> Message {
        let mut m = Message::with_descriptor(tag::DELIVER, self.frame);
        m.payload[2] = u64::from(self.ip_offset) | u64::from(self.ip_len) << 32;
        m.len = 24;
        m
    }

    /// Reads a `DELIVER` (the caller checked the tag); `None` unless the packet lies inside the
    /// frame the descriptor names and can hold IPv4 and TCP headers. The descriptor itself is
    /// still to be checked against the pool.
    pub fn decode(m: &Message) -> Option<Self> {
        let frame = m.descriptor();
        let d = Self {
            frame,
            ip_offset: m.payload[2] as u32,
            ip_len: (m.payload[2] >> 32) as u32,
        };
        let end = u64::from(d.ip_offset) + u64::from(d.ip_len);
        let frame_end = u64::from(frame.offset) + u64::from(frame.len);
        (d.ip_offset >= frame.offset && end <= frame_end && d.ip_len >= MIN_PACKET).then_some(d)
    }
}

/// A message of `tag` with `w2`, `w3` at payload 2 and 3.
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

    fn d(index: u32, offset: u32, len: u32) -> PoolDescriptor {
        PoolDescriptor {
            pool: 1,
            index,
            offset,
            len,
        }
    }

    #[test]
    fn delivery_round_trips_and_is_bounded_by_the_frame() {
        let x = Delivery {
            frame: d(7, 0, 100),
            ip_offset: 14,
            ip_len: 86,
        };
        assert_eq!(Delivery::decode(&x.message()), Some(x));
        for (off, len) in [(14, 87), (u32::MAX, 40), (14, 39), (0, 0)] {
            let bad = Delivery {
                ip_offset: off,
                ip_len: len,
                ..x
            };
            assert_eq!(Delivery::decode(&bad.message()), None, "{off} {len}");
        }
        let before = Delivery {
            frame: d(7, 20, 80),
            ..x
        };
        assert_eq!(Delivery::decode(&before.message()), None);
    }

    #[test]
    fn names_and_statuses() {
        for s in [
            Status::Ok,
            Status::AddrInUse,
            Status::Invalid,
            Status::NotConnected,
            Status::Refused,
            Status::NoResources,
            Status::Unreachable,
        ] {
            assert_eq!(Status::from_code(s as u64), s);
        }
        assert_eq!(tcp_to_app("tcpecho"), "tcp-tcpecho");
        assert_eq!(app_rx_pool("tcpecho"), "tcpecho-trx");
        let c = control(tag::WRITE, d(1, 0, 5), 9, 3);
        assert_eq!((c.tag, c.payload[2], c.payload[3]), (tag::WRITE, 9, 3));
    }
}
