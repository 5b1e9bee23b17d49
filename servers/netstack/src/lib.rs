//! `netstack`: the single layout of Axolotl's network stack (DESIGN.md §8; `--layout single`):
//! the same pf, ip, udp and tcp code as the split layout's four servers — their libraries'
//! `server` modules — linked into one process on one CPU, the way MINIX 3 and Redox build it.
//! The channels between the four are the same libchan rings in the same regions (the kernel
//! maps a region once however often a process asks), so each part finds its neighbour exactly
//! as in the split layout; only no CPU ever waits for another, and nothing crosses an address
//! space between them. e1000 and the applications are separate processes in both layouts.
//!
//! This library is the part tested on the host: the argument string ([`Args`]) and the choice
//! of the part that answers a kernel-IPC request ([`addressee`]). `src/main.rs` is the loop.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Most applications each transport serves (as the split servers).
pub const MAX_APPS: usize = 16;

/// What the manifest's `args` asks of each part: `ip:dhcp` (optional), `udp:APP,APP,...`,
/// `tcp:APP,APP,...`, separated by `/` (one word: the manifest's `args` has no whitespace).
/// A transport without a section is not run (ip then drops its protocol, as in the split
/// layout without that server).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args<'a> {
    /// ip takes its address from DHCP.
    pub dhcp: bool,
    /// The applications of the udp part.
    pub udp: Vec<&'a str>,
    /// The applications of the tcp part.
    pub tcp: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// Parses `args`; the error says what is wrong.
    pub fn parse(args: &'a str) -> Result<Self, String> {
        let mut a = Args::default();
        let mut seen: Vec<&str> = Vec::new();
        for section in args.split('/').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((part, value)) = section.split_once(':') else {
                return Err(format!(
                    "'{section}' is not PART:VALUE (expected ip:dhcp, udp:APPS or tcp:APPS)"
                ));
            };
            if seen.contains(&part) {
                return Err(format!("'{part}' is given twice"));
            }
            seen.push(part);
            let apps = || -> Result<Vec<&'a str>, String> {
                let list: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect();
                if list.is_empty() || list.len() > MAX_APPS {
                    return Err(format!(
                        "{part} needs 1 to {MAX_APPS} applications, comma-separated"
                    ));
                }
                Ok(list)
            };
            match part {
                "ip" if value == "dhcp" => a.dhcp = true,
                "ip" => return Err(format!("ip takes 'dhcp' or nothing, not '{value}'")),
                "udp" => a.udp = apps()?,
                "tcp" => a.tcp = apps()?,
                other => {
                    return Err(format!(
                        "unknown part '{other}' (parts: ip, udp, tcp; pf takes no arguments)"
                    ));
                }
            }
        }
        Ok(a)
    }
}

/// The part of the stack a kernel-IPC request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// pf's control protocol (`pf list|add|del`, magic `PFCT`).
    Pf,
    /// `netstat` to the tcp part.
    Tcp,
    /// `netstat` to the udp part.
    Udp,
    /// Everything else: ip's protocol (ping, ifconfig), which answers what it does not know.
    Ip,
}

/// The part that answers request `m`: by the first bytes, which each protocol fixes.
pub fn addressee(m: &[u8; netmsg::netstat::MSG_LEN]) -> Part {
    if m[..4] == pfd::ctl::MAGIC {
        return Part::Pf;
    }
    match netmsg::netstat::addressee(m) {
        Some(netmsg::netstat::Server::Tcp) => Part::Tcp,
        Some(netmsg::netstat::Server::Udp) => Part::Udp,
        // A netstat request naming no server: tcp's (the older shell asked tcp first).
        None if netmsg::netstat::decode_request(m).is_some() => Part::Tcp,
        None => Part::Ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmsg::netstat::{self, Server};

    #[test]
    fn arguments() {
        let a = Args::parse("ip:dhcp/udp:echo-server/tcp:echo-server,nc,iperf3,shell").unwrap();
        assert!(a.dhcp);
        assert_eq!(a.udp, ["echo-server"]);
        assert_eq!(a.tcp, ["echo-server", "nc", "iperf3", "shell"]);
        assert_eq!(Args::parse("").unwrap(), Args::default());
        let b = Args::parse("tcp:nc").unwrap();
        assert!(!b.dhcp && b.udp.is_empty() && b.tcp == ["nc"]);
        let bad = |s: &str| Args::parse(s).unwrap_err();
        assert!(bad("tcp").contains("not PART:VALUE"));
        assert!(bad("tcp:a/tcp:b").contains("given twice"));
        assert!(bad("udp:").contains("1 to 16 applications"));
        assert!(bad("ip:static").contains("'dhcp' or nothing"));
        assert!(bad("pf:x").contains("pf takes no arguments"));
        let many = format!("tcp:{}", ["a"; 17].join(","));
        assert!(bad(&many).contains("1 to 16"));
    }

    #[test]
    fn requests_go_to_their_part() {
        let mut pf = [0u8; 64];
        pf[..4].copy_from_slice(&pfd::ctl::MAGIC);
        assert_eq!(addressee(&pf), Part::Pf);
        assert_eq!(addressee(&netstat::request(Server::Tcp, 0)), Part::Tcp);
        assert_eq!(addressee(&netstat::request(Server::Udp, 3)), Part::Udp);
        let mut unnamed = netstat::request(Server::Udp, 0);
        unnamed[8] = 0;
        assert_eq!(addressee(&unnamed), Part::Tcp);
        assert_eq!(addressee(&[0; 64]), Part::Ip);
        assert_eq!(addressee(&[0xff; 64]), Part::Ip);
    }
}
