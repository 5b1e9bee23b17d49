//! Ethernet framing and ARP (RFC 826) for IPv4 over Ethernet: enough for the driver to find
//! its gateway's MAC address and to answer for its own address before the IP server exists.
//! Everything read from a frame is bounds-checked; malformed frames are errors, never panics.

use core::fmt;

/// An Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = Self([0xFF; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: Self = Self([0; 6]);

    /// True for a unicast address that is not all zeros: one a NIC can have.
    pub fn is_valid_station(&self) -> bool {
        *self != Self::ZERO && self.0[0] & 1 == 0
    }

    /// The address in the low 48 bits of a `u64`, first byte lowest.
    pub fn to_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.0);
        u64::from_le_bytes(b)
    }

    /// The address from the low 48 bits of a `u64` ([`Mac::to_u64`]).
    pub fn from_u64(v: u64) -> Self {
        let b = v.to_le_bytes();
        Self([b[0], b[1], b[2], b[3], b[4], b[5]])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// An IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ipv4(pub [u8; 4]);

impl fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
    }
}

/// Length of an Ethernet header (no VLAN tag).
pub const ETH_HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Length of an ARP packet for IPv4 over Ethernet.
pub const ARP_LEN: usize = 28;
/// Length of an Ethernet frame carrying ARP (the NIC pads it to the 60-byte minimum).
pub const ARP_FRAME_LEN: usize = ETH_HEADER_LEN + ARP_LEN;

/// The Ethernet header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthHeader {
    /// Destination.
    pub dst: Mac,
    /// Source.
    pub src: Mac,
    /// EtherType.
    pub ethertype: u16,
}

/// Why a frame was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than the headers it must carry.
    Short {
        /// The frame's length.
        len: usize,
        /// The length needed.
        need: usize,
    },
    /// Not an ARP frame (its EtherType).
    NotArp(u16),
    /// ARP for a hardware type other than Ethernet (1) or a wrong address length.
    BadHardware {
        /// Hardware type.
        htype: u16,
        /// Hardware address length.
        hlen: u8,
    },
    /// ARP for a protocol other than IPv4 or a wrong address length.
    BadProtocol {
        /// Protocol type.
        ptype: u16,
        /// Protocol address length.
        plen: u8,
    },
    /// An operation other than request (1) or reply (2).
    BadOperation(u16),
    /// The output buffer is too small for the frame.
    BufferTooSmall,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Short { len, need } => write!(f, "frame of {len} bytes, needs {need}"),
            Self::NotArp(t) => write!(f, "ethertype {t:#06x} is not ARP"),
            Self::BadHardware { htype, hlen } => {
                write!(f, "ARP hardware type {htype} length {hlen}")
            }
            Self::BadProtocol { ptype, plen } => {
                write!(f, "ARP protocol {ptype:#06x} length {plen}")
            }
            Self::BadOperation(op) => write!(f, "ARP operation {op}"),
            Self::BufferTooSmall => f.write_str("buffer too small"),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    Ipv4(a)
}

/// The Ethernet header of `frame`.
pub fn eth_header(frame: &[u8]) -> Result<EthHeader, FrameError> {
    if frame.len() < ETH_HEADER_LEN {
        return Err(FrameError::Short {
            len: frame.len(),
            need: ETH_HEADER_LEN,
        });
    }
    Ok(EthHeader {
        dst: mac_at(frame, 0),
        src: mac_at(frame, 6),
        ethertype: be16(frame, 12),
    })
}

/// ARP operations.
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

/// An ARP packet for IPv4 over Ethernet, with the Ethernet source it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Request or reply.
    pub op: ArpOp,
    /// The Ethernet source of the frame.
    pub eth_src: Mac,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4,
    /// Target hardware address (zero in a request).
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4,
}

/// Parses an ARP frame (Ethernet header + ARP for IPv4 over Ethernet; trailing padding is
/// ignored).
pub fn parse_arp(frame: &[u8]) -> Result<Arp, FrameError> {
    let eth = eth_header(frame)?;
    if eth.ethertype != ETHERTYPE_ARP {
        return Err(FrameError::NotArp(eth.ethertype));
    }
    if frame.len() < ARP_FRAME_LEN {
        return Err(FrameError::Short {
            len: frame.len(),
            need: ARP_FRAME_LEN,
        });
    }
    let a = &frame[ETH_HEADER_LEN..ARP_FRAME_LEN];
    let (htype, ptype, hlen, plen) = (be16(a, 0), be16(a, 2), a[4], a[5]);
    if htype != 1 || hlen != 6 {
        return Err(FrameError::BadHardware { htype, hlen });
    }
    if ptype != ETHERTYPE_IPV4 || plen != 4 {
        return Err(FrameError::BadProtocol { ptype, plen });
    }
    let op = match be16(a, 6) {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        other => return Err(FrameError::BadOperation(other)),
    };
    Ok(Arp {
        op,
        eth_src: eth.src,
        sender_mac: mac_at(a, 8),
        sender_ip: ip_at(a, 14),
        target_mac: mac_at(a, 18),
        target_ip: ip_at(a, 24),
    })
}

/// Writes an ARP frame into `buf`; returns its length ([`ARP_FRAME_LEN`]).
#[allow(clippy::too_many_arguments)]
fn write_arp(
    buf: &mut [u8],
    op: ArpOp,
    eth_dst: Mac,
    sender_mac: Mac,
    sender_ip: Ipv4,
    target_mac: Mac,
    target_ip: Ipv4,
) -> Result<usize, FrameError> {
    let f = buf
        .get_mut(..ARP_FRAME_LEN)
        .ok_or(FrameError::BufferTooSmall)?;
    f[0..6].copy_from_slice(&eth_dst.0);
    f[6..12].copy_from_slice(&sender_mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let a = &mut f[ETH_HEADER_LEN..];
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&op.code().to_be_bytes());
    a[8..14].copy_from_slice(&sender_mac.0);
    a[14..18].copy_from_slice(&sender_ip.0);
    a[18..24].copy_from_slice(&target_mac.0);
    a[24..28].copy_from_slice(&target_ip.0);
    Ok(ARP_FRAME_LEN)
}

/// Writes a broadcast "who has `target`? tell `our_ip`" into `buf`; returns the frame length.
pub fn write_request(
    buf: &mut [u8],
    our_mac: Mac,
    our_ip: Ipv4,
    target: Ipv4,
) -> Result<usize, FrameError> {
    write_arp(
        buf,
        ArpOp::Request,
        Mac::BROADCAST,
        our_mac,
        our_ip,
        Mac::ZERO,
        target,
    )
}

/// Writes the reply to `request` ("`request.target_ip` is at `our_mac`"), sent to the
/// requester, into `buf`; returns the frame length.
pub fn write_reply(buf: &mut [u8], request: &Arp, our_mac: Mac) -> Result<usize, FrameError> {
    write_arp(
        buf,
        ArpOp::Reply,
        request.sender_mac,
        our_mac,
        request.target_ip,
        request.sender_mac,
        request.sender_ip,
    )
}

/// What the driver should do about a received frame, as far as ARP is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpAction {
    /// Not ARP, or ARP that does not concern us.
    Ignore,
    /// A request for our address: send [`write_reply`] of it.
    Answer(Arp),
    /// A reply (or any ARP) telling where `ip` is.
    Learned {
        /// The address resolved.
        ip: Ipv4,
        /// Its hardware address.
        mac: Mac,
    },
}

/// Decides what a frame means for a host at `our_ip`: answer requests for it, learn from
/// replies addressed to it. Malformed ARP frames are errors; non-ARP frames are `Ignore`.
pub fn classify(frame: &[u8], our_ip: Ipv4) -> Result<ArpAction, FrameError> {
    let arp = match parse_arp(frame) {
        Ok(a) => a,
        Err(FrameError::NotArp(_)) => return Ok(ArpAction::Ignore),
        Err(e) => return Err(e),
    };
    Ok(match arp.op {
        ArpOp::Request if arp.target_ip == our_ip && arp.sender_mac.is_valid_station() => {
            ArpAction::Answer(arp)
        }
        ArpOp::Reply if arp.target_ip == our_ip && arp.sender_mac.is_valid_station() => {
            ArpAction::Learned {
                ip: arp.sender_ip,
                mac: arp.sender_mac,
            }
        }
        _ => ArpAction::Ignore,
    })
}

/// What a [`Resolver`] wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveStep {
    /// Nothing until the given time (ns).
    Wait {
        /// When to call [`Resolver::poll`] again.
        until_ns: u64,
    },
    /// Send a request now (attempt number `attempt`, from 1).
    Send {
        /// Which request this is.
        attempt: u32,
    },
    /// No answer within the time limit: give up (reported once).
    GaveUp {
        /// Requests sent.
        attempts: u32,
    },
    /// Finished (answered, or given up earlier).
    Done,
}

/// Resolves one IPv4 address: a request every `interval_ns` until a reply arrives or
/// `limit_ns` passed since the start.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    /// The address being resolved.
    pub target: Ipv4,
    started_ns: u64,
    interval_ns: u64,
    limit_ns: u64,
    next_ns: u64,
    attempts: u32,
    answer: Option<Mac>,
    finished: bool,
}

impl Resolver {
    /// Starts resolving `target` at time `now_ns`.
    pub fn new(target: Ipv4, now_ns: u64, interval_ns: u64, limit_ns: u64) -> Self {
        Self {
            target,
            started_ns: now_ns,
            interval_ns,
            limit_ns,
            next_ns: now_ns,
            attempts: 0,
            answer: None,
            finished: false,
        }
    }

    /// What to do at `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> ResolveStep {
        if self.finished {
            return ResolveStep::Done;
        }
        if now_ns.saturating_sub(self.started_ns) >= self.limit_ns {
            self.finished = true;
            return ResolveStep::GaveUp {
                attempts: self.attempts,
            };
        }
        if now_ns < self.next_ns {
            return ResolveStep::Wait {
                until_ns: self
                    .next_ns
                    .min(self.started_ns.saturating_add(self.limit_ns)),
            };
        }
        self.attempts += 1;
        self.next_ns = now_ns.saturating_add(self.interval_ns);
        ResolveStep::Send {
            attempt: self.attempts,
        }
    }

    /// When [`Resolver::poll`] next has something to do (send or give up); `None` once
    /// finished.
    pub fn next_event_ns(&self) -> Option<u64> {
        (!self.finished).then(|| {
            self.next_ns
                .min(self.started_ns.saturating_add(self.limit_ns))
        })
    }

    /// Takes note of an ARP answer; returns true when it is the first answer for our target.
    pub fn learn(&mut self, ip: Ipv4, mac: Mac) -> bool {
        if ip != self.target || self.answer.is_some() {
            return false;
        }
        self.answer = Some(mac);
        self.finished = true;
        true
    }

    /// The answer, once there is one.
    pub fn answer(&self) -> Option<Mac> {
        self.answer
    }

    /// Requests sent so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the start, at `now_ns`.
    pub fn elapsed_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.started_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const GW: Mac = Mac([0x52, 0x55, 10, 0, 2, 2]);
    const OUR_IP: Ipv4 = Ipv4([10, 0, 2, 15]);
    const GW_IP: Ipv4 = Ipv4([10, 0, 2, 2]);

    #[test]
    fn a_request_is_encoded_as_on_the_wire() {
        let mut buf = [0u8; 64];
        assert_eq!(write_request(&mut buf, US, OUR_IP, GW_IP), Ok(42));
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // us
            0x08, 0x06, // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet, IPv4, request
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15, // sender
            0, 0, 0, 0, 0, 0, 10, 0, 2, 2, // target
        ];
        assert_eq!(buf[..42], expected);
        assert_eq!(
            write_request(&mut buf[..41], US, OUR_IP, GW_IP),
            Err(FrameError::BufferTooSmall)
        );
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let mut buf = [0u8; 60]; // padded to the minimum, as received
        write_request(&mut buf, US, OUR_IP, GW_IP).unwrap();
        let req = parse_arp(&buf).unwrap();
        assert_eq!(
            req,
            Arp {
                op: ArpOp::Request,
                eth_src: US,
                sender_mac: US,
                sender_ip: OUR_IP,
                target_mac: Mac::ZERO,
                target_ip: GW_IP,
            }
        );
        // The gateway answers it.
        let mut reply = [0u8; 42];
        write_reply(&mut reply, &req, GW).unwrap();
        let r = parse_arp(&reply).unwrap();
        assert_eq!(r.op, ArpOp::Reply);
        assert_eq!(eth_header(&reply).unwrap().dst, US);
        assert_eq!(
            (r.sender_mac, r.sender_ip, r.target_mac, r.target_ip),
            (GW, GW_IP, US, OUR_IP)
        );
        assert_eq!(
            classify(&reply, OUR_IP),
            Ok(ArpAction::Learned { ip: GW_IP, mac: GW })
        );
        // A reply for someone else teaches us nothing.
        assert_eq!(
            classify(&reply, Ipv4([10, 0, 2, 16])),
            Ok(ArpAction::Ignore)
        );
    }

    #[test]
    fn requests_for_us_are_answered_others_ignored() {
        let mut buf = [0u8; 42];
        write_request(&mut buf, GW, GW_IP, OUR_IP).unwrap();
        let ArpAction::Answer(req) = classify(&buf, OUR_IP).unwrap() else {
            panic!("not answered")
        };
        let mut out = [0u8; 42];
        write_reply(&mut out, &req, US).unwrap();
        let r = parse_arp(&out).unwrap();
        assert_eq!(
            (r.op, r.sender_mac, r.sender_ip, r.target_mac, r.target_ip),
            (ArpOp::Reply, US, OUR_IP, GW, GW_IP)
        );
        write_request(&mut buf, GW, GW_IP, Ipv4([10, 0, 2, 3])).unwrap();
        assert_eq!(classify(&buf, OUR_IP), Ok(ArpAction::Ignore));
        // A request from a broadcast or zero sender address is not answered.
        write_request(&mut buf, Mac::BROADCAST, GW_IP, OUR_IP).unwrap();
        assert_eq!(classify(&buf, OUR_IP), Ok(ArpAction::Ignore));
    }

    #[test]
    fn garbage_frames_are_errors() {
        let mut good = [0u8; 42];
        write_request(&mut good, GW, GW_IP, OUR_IP).unwrap();
        // Every truncation.
        for len in 0..42 {
            let e = parse_arp(&good[..len]).unwrap_err();
            assert!(matches!(e, FrameError::Short { .. }), "{len}: {e:?}");
        }
        let mut f = good;
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(parse_arp(&f), Err(FrameError::NotArp(0x0800)));
        assert_eq!(classify(&f, OUR_IP), Ok(ArpAction::Ignore));
        let mut f = good;
        f[15] = 6; // hardware type 6
        assert_eq!(
            parse_arp(&f),
            Err(FrameError::BadHardware { htype: 6, hlen: 6 })
        );
        let mut f = good;
        f[18] = 8;
        assert_eq!(
            parse_arp(&f),
            Err(FrameError::BadHardware { htype: 1, hlen: 8 })
        );
        let mut f = good;
        f[16] = 0x86;
        f[17] = 0xDD;
        assert_eq!(
            parse_arp(&f),
            Err(FrameError::BadProtocol {
                ptype: 0x86DD,
                plen: 4
            })
        );
        let mut f = good;
        f[21] = 9;
        assert_eq!(parse_arp(&f), Err(FrameError::BadOperation(9)));
        assert!(classify(&f, OUR_IP).is_err());
        // Random bytes never panic.
        let mut x = 0x1234_5678u32;
        for len in 0..100 {
            let mut frame = vec![0u8; len];
            for b in &mut frame {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            if len > 13 {
                frame[12] = 0x08;
                frame[13] = 0x06;
            }
            let _ = classify(&frame, OUR_IP);
        }
    }

    #[test]
    fn addresses_print_and_pack() {
        assert_eq!(US.to_string(), "52:54:00:12:34:56");
        assert_eq!(GW_IP.to_string(), "10.0.2.2");
        assert_eq!(Mac::from_u64(US.to_u64()), US);
        assert_eq!(US.to_u64() & 0xFF, 0x52);
        assert!(US.is_valid_station());
        assert!(!Mac::BROADCAST.is_valid_station());
        assert!(!Mac::ZERO.is_valid_station());
        assert_eq!(
            FrameError::NotArp(0x800).to_string(),
            "ethertype 0x0800 is not ARP"
        );
    }

    #[test]
    fn the_resolver_retries_then_gives_up() {
        const MS: u64 = 1_000_000;
        let mut r = Resolver::new(GW_IP, 1000 * MS, 250 * MS, 5000 * MS);
        assert_eq!(r.poll(1000 * MS), ResolveStep::Send { attempt: 1 });
        assert_eq!(
            r.poll(1100 * MS),
            ResolveStep::Wait {
                until_ns: 1250 * MS
            }
        );
        assert_eq!(r.next_event_ns(), Some(1250 * MS));
        assert_eq!(r.poll(1250 * MS), ResolveStep::Send { attempt: 2 });
        let mut sent = 2;
        let mut t = 1250 * MS;
        loop {
            t += 10 * MS;
            match r.poll(t) {
                ResolveStep::Send { attempt } => {
                    sent += 1;
                    assert_eq!(attempt, sent);
                }
                ResolveStep::Wait { .. } => {}
                ResolveStep::GaveUp { attempts } => {
                    assert_eq!(attempts, sent);
                    break;
                }
                ResolveStep::Done => panic!("done before giving up"),
            }
        }
        assert_eq!(t, 6000 * MS);
        assert_eq!(sent, 20, "four a second for five seconds");
        assert_eq!(r.poll(t + 1), ResolveStep::Done, "gives up once");
        assert!(r.learn(GW_IP, GW), "a late answer is still taken");
        assert_eq!(r.answer(), Some(GW));
    }

    #[test]
    fn the_resolver_stops_at_the_first_answer() {
        let mut r = Resolver::new(GW_IP, 0, 100, 1000);
        assert_eq!(r.poll(0), ResolveStep::Send { attempt: 1 });
        assert!(!r.learn(Ipv4([10, 0, 2, 3]), GW), "not our target");
        assert!(r.learn(GW_IP, GW));
        assert!(!r.learn(GW_IP, US), "only the first answer counts");
        assert_eq!(r.answer(), Some(GW));
        assert_eq!(r.poll(50), ResolveStep::Done);
        assert_eq!(r.next_event_ns(), None);
        assert_eq!(r.poll(5000), ResolveStep::Done);
        assert_eq!(r.attempts(), 1);
        assert_eq!(r.elapsed_ns(70), 70);
    }
}
