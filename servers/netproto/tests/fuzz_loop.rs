//! A deterministic fuzz loop: tens of thousands of random and mutated frames (xorshift, fixed
//! seeds) through every parser and the demultiplexer, via the same bodies as the `cargo fuzz`
//! targets (`netproto::fuzzing`). No input may panic, every frame must be counted exactly once,
//! and the mutations must reach every delivery.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use netproto::Ipv4Addr;
use netproto::arp::ArpPacket;
use netproto::checksum;
use netproto::config::{self, IpConfig};
use netproto::demux::Counters;
use netproto::dhcp::{DhcpAction, DhcpClient};
use netproto::ether::{EtherHeader, EtherType, Mac};
use netproto::fuzzing::{self, OUR_IP, OUR_MAC};
use netproto::icmp::{self, Echo};
use netproto::ipv4::{IpProtocol, Ipv4Repr};

const GW_MAC: Mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn ether(dst: Mac, t: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len().max(46)];
    let n = EtherHeader {
        dst,
        src: GW_MAC,
        ethertype: t,
    }
    .emit_frame(&mut f, payload)
    .unwrap();
    f.truncate(n);
    f
}

fn ip(dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    Ipv4Repr::new(src, dst, IpProtocol(proto), 1, 0)
        .emit_packet(&mut p, l4)
        .unwrap();
    ether(dst_mac, EtherType::IPV4, &p)
}

fn l4_with_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, mut s: Vec<u8>, at: usize) -> Vec<u8> {
    let c = checksum::transport_checksum(src, dst, proto, &s).unwrap();
    s[at..at + 2].copy_from_slice(&c.to_be_bytes());
    s
}

/// Valid frames of every kind the demultiplexer delivers, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut s = Vec::new();
    let mut arp = [0u8; 60];
    ArpPacket::request(OUR_MAC, OUR_IP, GW)
        .reply(GW_MAC)
        .emit_frame(&mut arp)
        .unwrap();
    s.push(arp.to_vec());
    ArpPacket::request(GW_MAC, GW, OUR_IP)
        .emit_frame(&mut arp)
        .unwrap();
    s.push(arp.to_vec());
    let mut ping = [0u8; 100];
    let data: Vec<u8> = (0..56).collect();
    let echo = Echo {
        ident: 1,
        seq: 1,
        data: &data,
    };
    let n = icmp::build_echo_request(&mut ping, GW, OUR_IP, 9, &echo).unwrap();
    s.push(ether(OUR_MAC, EtherType::IPV4, &ping[..n]));
    let mut reply = [0u8; 100];
    let r = icmp::build_echo_reply(
        &netproto::ipv4::Ipv4Packet::parse(&ping[..n]).unwrap(),
        &echo,
        3,
        &mut reply,
    )
    .unwrap();
    // An echo reply to us: swap the direction of the reply built above.
    let mut back = [0u8; 100];
    let m = icmp::emit_echo(&mut back, icmp::ECHO_REPLY, &echo).unwrap();
    s.push(ip(OUR_MAC, GW, OUR_IP, 1, &back[..m]));
    assert_eq!(r, n);
    let syn = vec![
        0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
    ];
    s.push(ip(
        OUR_MAC,
        GW,
        OUR_IP,
        6,
        &l4_with_sum(GW, OUR_IP, 6, syn, 16),
    ));
    let udp = vec![0, 53, 0x80, 0, 0, 12, 0, 0, 1, 2, 3, 4];
    s.push(ip(
        OUR_MAC,
        GW,
        OUR_IP,
        17,
        &l4_with_sum(GW, OUR_IP, 17, udp, 6),
    ));
    // A DHCP offer, broadcast.
    let mut client = DhcpClient::new(OUR_MAC, 1);
    let Some(DhcpAction::Send(d)) = client.poll(0) else {
        panic!()
    };
    let mut b = vec![0u8; 236];
    b[..4].copy_from_slice(&[2, 1, 6, 0]);
    b[4..8].copy_from_slice(&d.xid.to_be_bytes());
    b[16..20].copy_from_slice(&OUR_IP.octets());
    b[28..34].copy_from_slice(&OUR_MAC.0);
    b.extend_from_slice(&[
        99, 130, 83, 99, 53, 1, 2, 54, 4, 10, 0, 2, 2, 51, 4, 0, 0, 1, 0,
    ]);
    b.extend_from_slice(&[1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 255]);
    let mut udp = vec![0, 67, 0, 68, 0, 0, 0, 0];
    udp[4..6].copy_from_slice(&(8 + b.len() as u16).to_be_bytes());
    udp.extend_from_slice(&b);
    let bc = Ipv4Addr::BROADCAST;
    s.push(ip(
        Mac::BROADCAST,
        GW,
        bc,
        17,
        &l4_with_sum(GW, bc, 17, udp, 6),
    ));
    // Destination unreachable quoting a datagram of ours.
    let mut msg = vec![3, 3, 0, 0, 0, 0, 0, 0];
    let mut quote = [0u8; 28];
    Ipv4Repr::new(OUR_IP, GW, IpProtocol::UDP, 1, 8)
        .emit_packet(&mut quote, &[0, 9, 0, 9, 0, 8, 0, 0])
        .unwrap();
    msg.extend_from_slice(&quote);
    let c = checksum::internet_checksum(&msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    s.push(ip(OUR_MAC, GW, OUR_IP, 1, &msg));
    s
}

const INTERESTING: [u8; 12] = [0, 1, 2, 4, 5, 6, 0x08, 0x11, 0x45, 0x7f, 0x80, 0xff];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut f = seeds[rng.below(seeds.len())].clone();
    match rng.below(12) {
        0 => {
            // Pure noise, any length up to a jumbo frame.
            let len = rng.below(1600);
            return (0..len).map(|_| rng.byte()).collect();
        }
        1 => f.truncate(rng.below(f.len() + 1)),
        2 => {
            let extra = rng.below(64);
            f.extend((0..extra).map(|_| rng.byte()));
        }
        3 => {
            // Splice the head of one seed onto the tail of another.
            let other = &seeds[rng.below(seeds.len())];
            let cut = rng.below(f.len().min(other.len()) + 1);
            f.truncate(cut);
            f.extend_from_slice(&other[cut..]);
        }
        _ => {}
    }
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        if f.is_empty() {
            break;
        }
        // Mostly in the headers, where the checks are.
        let at = if rng.below(4) == 0 {
            rng.below(f.len())
        } else {
            rng.below(f.len().min(48))
        };
        match rng.below(3) {
            0 => f[at] ^= 1 << rng.below(8),
            1 => f[at] = INTERESTING[rng.below(INTERESTING.len())],
            _ => f[at] = rng.byte(),
        }
    }
    f
}

#[test]
fn mutated_frames_through_every_parser() {
    const FRAMES: u64 = 40_000;
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut counters = [Counters::default(); 3];
    for _ in 0..FRAMES {
        let mut f = mutate(&mut rng, &seeds);
        // Three times in four, repair the checksums so the mutation is judged on its merits.
        let mode = rng.byte();
        if mode & 0xC0 != 0 {
            fuzzing::fix_checksums(&mut f, mode | 1);
        }
        fuzzing::demux_all(&f, &mut counters);
        fuzzing::ether_arp(&f);
        fuzzing::ipv4_icmp(f.get(14..).unwrap_or_default());
        fuzzing::others(f.get(42..).unwrap_or_default());
    }
    for c in &counters {
        assert_eq!(c.rx_frames, FRAMES);
        assert!(c.accounted(), "{c:?}");
    }
    let configured = &counters[0];
    for (name, n) in configured.fields() {
        println!("{name:>24} {n}");
    }
    // The mutations reach every delivery and the main drop reasons.
    let c = configured;
    for (name, n) in [
        ("arp", c.arp),
        ("icmp_echo_requests", c.icmp_echo_requests),
        ("icmp_echo_replies", c.icmp_echo_replies),
        ("icmp_unreachable", c.icmp_unreachable),
        ("tcp", c.tcp),
        ("udp", c.udp),
        ("bad_ether", c.bad_ether),
        ("bad_arp", c.bad_arp),
        ("bad_ipv4_checksum", c.bad_ipv4_checksum),
        ("bad_ipv4_length", c.bad_ipv4_length),
        ("bad_ipv4_header", c.bad_ipv4_header),
        ("ipv4_fragments", c.ipv4_fragments),
        ("not_for_us_ether", c.not_for_us_ether),
        ("not_for_us_ipv4", c.not_for_us_ipv4),
        ("bad_icmp", c.bad_icmp),
        ("bad_transport", c.bad_transport),
        ("unknown_protocol", c.unknown_protocol),
    ] {
        assert!(n > 0, "{name} never reached");
    }
    assert!(
        counters[1].dhcp > 0 && counters[1].bad_dhcp > 0,
        "{:?}",
        counters[1]
    );
}

#[test]
fn random_bytes_of_every_length() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut counters = [Counters::default(); 3];
    for len in 0..=1600usize {
        for _ in 0..8 {
            let f: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            fuzzing::demux(&f);
            fuzzing::demux_all(&f, &mut counters);
            fuzzing::ether_arp(&f);
            fuzzing::ipv4_icmp(&f);
            fuzzing::ipv4_icmp_target(&f);
            fuzzing::others(&f);
        }
    }
    assert!(
        counters
            .iter()
            .all(|c| c.rx_frames == 1601 * 8 && c.accounted())
    );
}

#[test]
fn mutated_state_regions() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let good = {
        let mut c = IpConfig::default();
        c.from_dhcp = true;
        c.lease_end_ms = 12_345;
        c.add_route(netproto::route::Route {
            dest: "192.168.0.0/16".parse().unwrap(),
            next_hop: netproto::route::NextHop::Gateway(GW),
            iface: 0,
        })
        .unwrap();
        c.store()
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut b = good;
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(config::STATE_LEN - 4);
            b[at] = if rng.below(2) == 0 {
                b[at] ^ (1 << rng.below(8))
            } else {
                rng.byte()
            };
        }
        // Mostly re-sealed, so the field checks are reached past the CRC.
        if rng.below(8) != 0 {
            let crc = config::crc32(&b[..128]);
            b[128..].copy_from_slice(&crc.to_be_bytes());
        }
        match IpConfig::load(&b) {
            Ok(c) => {
                loaded += 1;
                assert_eq!(c.store(), b);
                c.routing_table(0).unwrap();
            }
            Err(_) => refused += 1,
        }
        fuzzing::others(&b);
    }
    assert!(
        loaded > 100 && refused > 100,
        "{loaded} loaded, {refused} refused"
    );
}

#[test]
fn arp_cache_operation_sequences() {
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for _ in 0..3_000 {
        let len = rng.below(600);
        let ops: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        fuzzing::arp_cache_ops(&ops);
    }
}

#[test]
fn mutated_prefix_text() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let alphabet = b"0123456789./ +-x";
    let mut ok = 0;
    for _ in 0..20_000 {
        let mut s = b"10.0.2.15/24".to_vec();
        for _ in 0..1 + rng.below(3) {
            let c = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 if !s.is_empty() => {
                    let at = rng.below(s.len());
                    s[at] = c;
                }
                1 if !s.is_empty() => {
                    s.remove(rng.below(s.len()));
                }
                _ => s.insert(rng.below(s.len() + 1), c),
            }
        }
        fuzzing::others(&s);
        ok += usize::from(
            std::str::from_utf8(&s)
                .unwrap()
                .parse::<netproto::Ipv4Cidr>()
                .is_ok(),
        );
    }
    assert!(ok > 1_000, "{ok}");
}

/// The seed corpus of the `cargo fuzz` targets (fuzz/seeds) holds what its names say.
#[test]
fn fuzz_seeds_are_valid() {
    use netproto::demux::{self, Interface, Verdict};
    let configured = Interface {
        mac: OUR_MAC,
        address: "10.0.2.15/24".parse().ok(),
        dhcp_client: false,
    };
    let dhcp = Interface {
        address: None,
        dhcp_client: true,
        ..configured
    };
    let verdict = |seed: &[u8], iface: &Interface| {
        let mut f = seed[1..].to_vec();
        fuzzing::fix_checksums(&mut f, seed[0]);
        assert_eq!(f, &seed[1..], "seed checksums already right");
        format!("{:?}", demux::classify_frame(&f, iface))
    };
    let seeds: [(&[u8], &Interface, &str); 5] = [
        (
            include_bytes!("../fuzz/seeds/demux/ping"),
            &configured,
            "EchoRequest",
        ),
        (
            include_bytes!("../fuzz/seeds/demux/arp_reply"),
            &configured,
            "Arp",
        ),
        (
            include_bytes!("../fuzz/seeds/demux/tcp_syn"),
            &configured,
            "Tcp",
        ),
        (
            include_bytes!("../fuzz/seeds/demux/udp_dns"),
            &configured,
            "Udp",
        ),
        (
            include_bytes!("../fuzz/seeds/demux/dhcp_offer"),
            &dhcp,
            "Dhcp",
        ),
    ];
    for (seed, iface, kind) in seeds {
        let v = verdict(seed, iface);
        assert!(v.contains(kind), "{v}");
        fuzzing::demux(seed);
    }
    let ping = include_bytes!("../fuzz/seeds/ipv4_icmp/ping");
    assert!(netproto::ipv4::Ipv4Packet::parse(&ping[1..]).is_ok());
    fuzzing::ipv4_icmp_target(ping);
    let arp = include_bytes!("../fuzz/seeds/ether_arp/arp_reply");
    assert!(matches!(
        demux::classify_frame(arp, &configured),
        Verdict::Arp(_)
    ));
}
