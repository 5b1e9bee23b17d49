//! `nc`'s host-tested logic: its command line, the byte pattern it sends, and sizes and hashes
//! in words. The program (src/main.rs) is the loop around libnet.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;
use core::net::{Ipv4Addr, SocketAddrV4};

/// The usage line.
pub const USAGE: &str = "usage: nc HOST PORT (--send SIZE [--seed N] | TEXT...)  or  nc -l PORT   (SIZE: bytes, or with K/M/G)";

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `SIZE` bytes of the pattern of `seed`.
    Generated {
        /// How many bytes.
        bytes: u64,
        /// The pattern's seed.
        seed: u64,
    },
    /// The text and a newline.
    Text(String),
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Connect and send.
    Connect {
        /// Where to connect.
        to: SocketAddrV4,
        /// What to send.
        payload: Payload,
    },
    /// `-l PORT`: accept one connection, print what it sends until its end, exit.
    Listen {
        /// The port.
        port: u16,
    },
}

fn port_of(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(alloc::format!("bad PORT '{p}' (1..=65535)")),
    }
}

/// Parses `HOST PORT (--send SIZE [--seed N] | TEXT...)` or `-l PORT`; errors say what is
/// wrong.
pub fn parse(args: &str) -> Result<Args, String> {
    let mut words = args.split_whitespace();
    let host = words.next().ok_or("missing HOST")?;
    if host == "-l" {
        let port = port_of(words.next().ok_or("-l needs a PORT")?)?;
        if let Some(w) = words.next() {
            return Err(alloc::format!("unexpected '{w}' after -l PORT"));
        }
        return Ok(Args::Listen { port });
    }
    let ip: Ipv4Addr = host
        .parse()
        .map_err(|_| alloc::format!("bad HOST '{host}' (an IPv4 address)"))?;
    let port = port_of(words.next().ok_or("missing PORT")?)?;
    let rest: alloc::vec::Vec<&str> = words.collect();
    let payload = if rest.first() == Some(&"--send") {
        let size = rest.get(1).ok_or("--send needs a SIZE")?;
        let bytes = size_of(size).ok_or_else(|| alloc::format!("bad SIZE '{size}'"))?;
        let seed = match rest.get(2..) {
            Some([]) | None => 1,
            Some(["--seed", n]) => n.parse().map_err(|_| alloc::format!("bad seed '{n}'"))?,
            Some(other) => return Err(alloc::format!("unexpected '{}'", other.join(" "))),
        };
        Payload::Generated { bytes, seed }
    } else if rest.is_empty() {
        return Err(String::from("nothing to send (--send SIZE or TEXT)"));
    } else {
        Payload::Text(rest.join(" "))
    };
    Ok(Args::Connect {
        to: SocketAddrV4::new(ip, port),
        payload,
    })
}

/// `123`, `64K`, `50M`, `2G` in bytes (binary multiples); `None` when malformed or over 1 TiB.
pub fn size_of(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(mult).filter(|&b| b <= 1 << 40)
}

/// The pattern `nc --send` writes: xorshift64* bytes from `seed` (0 is taken as 1).
pub struct Pattern {
    state: u64,
}

impl Pattern {
    /// The pattern of `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed.max(1) }
    }

    /// Fills `buf` with the next bytes (pieces of a multiple of 8 bytes make the same stream
    /// however it is cut).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let to = "10.0.2.2:9000".parse().unwrap();
        let generated = |bytes, seed| Payload::Generated { bytes, seed };
        let connect = |to, payload| Args::Connect { to, payload };
        assert_eq!(
            parse("10.0.2.2 9000 --send 50M"),
            Ok(connect(to, generated(50 << 20, 1)))
        );
        assert_eq!(
            parse("10.0.2.2 9000 --send 100 --seed 9"),
            Ok(connect(to, generated(100, 9)))
        );
        assert_eq!(
            parse("10.0.2.2 9000 hello  there"),
            Ok(connect(to, Payload::Text("hello there".into())))
        );
        assert_eq!(parse("-l 9"), Ok(Args::Listen { port: 9 }));
        for bad in [
            "",
            "10.0.2.2",
            "host 7 x",
            "10.0.2.2 0 x",
            "10.0.2.2 70000 x",
            "10.0.2.2 7",
            "10.0.2.2 7 --send",
            "10.0.2.2 7 --send 5X",
            "10.0.2.2 7 --send 5 --seed",
            "10.0.2.2 7 --send 5 --seed x",
            "10.0.2.2 7 --send 5 extra",
            "-l",
            "-l 0",
            "-l 9 x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(size_of("0"), Some(0));
        assert_eq!(size_of("64K"), Some(65536));
        assert_eq!(size_of("50m"), Some(50 << 20));
        assert_eq!(size_of("1G"), Some(1 << 30));
        assert_eq!(size_of("2000G"), None);
        assert_eq!(size_of("99999999999999999999"), None);
        assert_eq!(size_of("K"), None);
        assert_eq!(size_of(""), None);
    }

    #[test]
    fn the_pattern_is_deterministic_and_cut_in_multiples_of_8_alike() {
        let mut whole = vec![0u8; 1000];
        Pattern::new(7).fill(&mut whole);
        let mut p = Pattern::new(7);
        let mut pieces = vec![0u8; 1000];
        for c in pieces.chunks_mut(200) {
            p.fill(c);
        }
        assert_eq!(whole, pieces);
        let mut other = vec![0u8; 1000];
        Pattern::new(8).fill(&mut other);
        assert_ne!(whole, other);
        assert!(whole.iter().any(|&b| b != 0));
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
