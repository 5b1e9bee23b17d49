//! The command line: `-c ADDR [-p PORT] [-t S] [-R] [-P N] [-l LEN] [-n BYTES] [-i S]` or
//! `-s [-p PORT] [-1]`. Words are separated by spaces or commas (a manifest's `args` cannot
//! always carry a space); an option's value may follow it as the next word or be attached
//! (`-P2`). Sizes take iperf3's suffixes `K`, `M`, `G` (powers of 1024).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

use crate::{
    ClientOptions, DEFAULT_PORT, DEFAULT_TIME_S, MAX_BLOCK_LEN, MAX_BYTES, MAX_INTERVAL_NS,
    MAX_PARALLEL, MAX_TIME_S, MIN_INTERVAL_NS, ServerOptions,
};

/// The usage text.
pub const USAGE: &str = "usage: iperf3 -c ADDR [-p PORT] [-t SECONDS] [-R] [-P STREAMS] [-l LEN] [-n BYTES] [-i SECONDS]\n       iperf3 -s [-p PORT] [-1]";

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Run a test against a server.
    Client(ClientOptions),
    /// Serve tests.
    Server(ServerOptions),
}

/// A command line that cannot be run, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: String) -> ArgError {
    ArgError(msg)
}

/// A size with an optional `K`/`M`/`G` suffix (1024-based, as iperf3's `unit_atoi`).
fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Seconds with up to nine decimals (`0.25`, `1`, `.5`) as nanoseconds, without floating point.
fn parse_seconds_ns(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.len() > 9 {
        return None;
    }
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut frac_ns = 0u64;
    for (i, b) in frac.bytes().enumerate() {
        frac_ns += u64::from(b - b'0') * 10u64.pow(8 - i as u32);
    }
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Parses the argument string.
pub fn parse_args(args: &str) -> Result<Command, ArgError> {
    let words: Vec<&str> = args
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut client: Option<Ipv4Addr> = None;
    let mut server = false;
    let mut port: Option<u16> = None;
    let mut time: Option<u32> = None;
    let mut bytes: Option<u64> = None;
    let mut reverse = false;
    let mut parallel: Option<u32> = None;
    let mut block_len: Option<u32> = None;
    let mut interval_ns: Option<u64> = None;
    let mut one_off = false;

    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        let Some(opt) = w.strip_prefix('-').and_then(|r| r.chars().next()) else {
            return Err(bad(format!("unexpected word '{w}'")));
        };
        if w.starts_with("--") {
            return Err(bad(format!("unknown option '{w}'")));
        }
        // Flags.
        match opt {
            'R' | 's' | '1' => {
                if w.len() != 2 {
                    return Err(bad(format!("unknown option '{w}'")));
                }
                match opt {
                    'R' => reverse = true,
                    's' => server = true,
                    _ => one_off = true,
                }
                continue;
            }
            'h' => return Err(bad(String::from(USAGE))),
            'c' | 'p' | 't' | 'P' | 'l' | 'n' | 'i' => {}
            _ => return Err(bad(format!("unknown option '{w}'"))),
        }
        // Options with a value, attached or in the next word.
        let value = if w.len() > 2 {
            &w[2..]
        } else if i < words.len() {
            i += 1;
            words[i - 1]
        } else {
            return Err(bad(format!("option -{opt} needs a value")));
        };
        match opt {
            'c' => {
                let a = value.parse::<Ipv4Addr>().map_err(|_| {
                    bad(format!(
                        "bad address '{value}' (expected a dotted IPv4 address, e.g. 10.0.2.2)"
                    ))
                })?;
                client = Some(a);
            }
            'p' => match value.parse::<u16>() {
                Ok(p) if p != 0 => port = Some(p),
                _ => return Err(bad(format!("bad port '{value}' (expected 1..=65535)"))),
            },
            't' => match value.parse::<u32>() {
                Ok(t) if (1..=MAX_TIME_S).contains(&t) => time = Some(t),
                _ => {
                    return Err(bad(format!(
                        "bad duration '{value}' (expected whole seconds, 1..={MAX_TIME_S})"
                    )));
                }
            },
            'P' => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_PARALLEL).contains(&n) => parallel = Some(n),
                _ => {
                    return Err(bad(format!(
                        "bad stream count '{value}' (expected 1..={MAX_PARALLEL})"
                    )));
                }
            },
            'l' => match parse_size(value) {
                Some(n) if (1..=u64::from(MAX_BLOCK_LEN)).contains(&n) => {
                    block_len = Some(n as u32)
                }
                _ => {
                    return Err(bad(format!(
                        "bad block length '{value}' (expected 1..={MAX_BLOCK_LEN} bytes, K and M allowed)"
                    )));
                }
            },
            'i' => match parse_seconds_ns(value) {
                Some(ns) if ns == 0 || (MIN_INTERVAL_NS..=MAX_INTERVAL_NS).contains(&ns) => {
                    interval_ns = Some(ns)
                }
                _ => {
                    return Err(bad(format!(
                        "bad interval '{value}' (expected seconds, 0 or 0.1..=60, e.g. 0.25)"
                    )));
                }
            },
            _ => match parse_size(value) {
                Some(n) if (1..=MAX_BYTES).contains(&n) => bytes = Some(n),
                _ => {
                    return Err(bad(format!(
                        "bad byte count '{value}' (expected a positive number, K, M and G allowed)"
                    )));
                }
            },
        }
    }

    match (client, server) {
        (Some(_), true) => Err(bad(String::from(
            "cannot be both client (-c) and server (-s)",
        ))),
        (None, false) => Err(bad(format!(
            "must be either client (-c ADDR) or server (-s)\n{USAGE}"
        ))),
        (None, true) => {
            let client_only = [
                (time.is_some(), "-t"),
                (bytes.is_some(), "-n"),
                (reverse, "-R"),
                (parallel.is_some(), "-P"),
                (block_len.is_some(), "-l"),
                (interval_ns.is_some(), "-i"),
            ];
            if let Some((_, name)) = client_only.iter().find(|(set, _)| *set) {
                return Err(bad(format!("option {name} is for the client only")));
            }
            Ok(Command::Server(ServerOptions {
                port: port.unwrap_or(DEFAULT_PORT),
                one_off,
            }))
        }
        (Some(addr), false) => {
            if one_off {
                return Err(bad(String::from("option -1 is for the server only")));
            }
            if time.is_some() && bytes.is_some() {
                return Err(bad(String::from(
                    "only one test end condition (-t, -n) may be specified",
                )));
            }
            let mut o = ClientOptions::new(SocketAddrV4::new(addr, port.unwrap_or(DEFAULT_PORT)));
            o.time_s = if bytes.is_some() {
                0
            } else {
                time.unwrap_or(DEFAULT_TIME_S)
            };
            o.bytes = bytes.unwrap_or(0);
            o.reverse = reverse;
            o.parallel = parallel.unwrap_or(1);
            if let Some(l) = block_len {
                o.block_len = l;
            }
            if let Some(i) = interval_ns {
                o.interval_ns = i;
            }
            Ok(Command::Client(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_BLOCK_LEN;

    fn client(s: &str) -> ClientOptions {
        match parse_args(s) {
            Ok(Command::Client(o)) => o,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn error(s: &str) -> String {
        match parse_args(s) {
            Err(e) => e.0,
            Ok(c) => panic!("{s}: parsed as {c:?}"),
        }
    }

    #[test]
    fn client_defaults_and_options() {
        let o = client("-c 10.0.2.2");
        assert_eq!(
            o.server,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 5201)
        );
        assert_eq!(
            (o.time_s, o.bytes, o.reverse, o.parallel),
            (10, 0, false, 1)
        );
        assert_eq!(o.block_len, DEFAULT_BLOCK_LEN);
        let o = client("-c 10.0.2.2 -p 5999 -t 3 -R -P 4 -l 64K");
        assert_eq!(o.server.port(), 5999);
        assert_eq!(
            (o.time_s, o.reverse, o.parallel, o.block_len),
            (3, true, 4, 65536)
        );
        assert_eq!(o.interval_ns, crate::DEFAULT_INTERVAL_NS);
        assert_eq!(client("-c 10.0.2.2 -i 0.25").interval_ns, 250_000_000);
        assert_eq!(client("-c 10.0.2.2 -i0.1").interval_ns, 100_000_000);
        assert_eq!(client("-c 10.0.2.2 -i .5").interval_ns, 500_000_000);
        assert_eq!(client("-c 10.0.2.2 -i 60").interval_ns, 60_000_000_000);
        assert_eq!(client("-c 10.0.2.2 -i 0").interval_ns, 0);
        assert!(client("-c 10.0.2.2 -i 0.25").validate().is_ok());
        let o = client("-c,10.0.2.2,-n,2M,-P2,-l1M");
        assert_eq!((o.time_s, o.bytes, o.parallel), (0, 2 << 20, 2));
        assert_eq!(o.block_len, 1 << 20);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn server_options() {
        assert_eq!(
            parse_args("-s"),
            Ok(Command::Server(ServerOptions {
                port: 5201,
                one_off: false
            }))
        );
        assert_eq!(
            parse_args("  -s -p 6000 -1 "),
            Ok(Command::Server(ServerOptions {
                port: 6000,
                one_off: true
            }))
        );
    }

    #[test]
    fn bad_arguments_are_explained() {
        assert!(error("").contains("client (-c ADDR) or server (-s)"));
        assert!(error("-c").contains("needs a value"));
        assert!(error("-c example.com").contains("bad address 'example.com'"));
        assert!(error("-c 10.0.2.2 -s").contains("both"));
        assert!(error("-c 10.0.2.2 -P 9").contains("1..=8"));
        assert!(error("-c 10.0.2.2 -P 0").contains("1..=8"));
        assert!(error("-c 10.0.2.2 -l 2M").contains("block length"));
        assert!(error("-c 10.0.2.2 -l 0").contains("block length"));
        assert!(error("-c 10.0.2.2 -t 0").contains("duration"));
        assert!(error("-c 10.0.2.2 -t x").contains("duration"));
        assert!(error("-c 10.0.2.2 -t 1 -n 1M").contains("only one test end condition"));
        assert!(error("-c 10.0.2.2 -n 99999999999G").contains("byte count"));
        assert!(error("-c 10.0.2.2 -n 2000000000G").contains("byte count"));
        assert!(error("-c 10.0.2.2 -n 0").contains("byte count"));
        assert!(error("-c 10.0.2.2 -p 0").contains("bad port"));
        assert!(error("-c 10.0.2.2 -p 70000").contains("bad port"));
        assert!(error("-c 10.0.2.2 -u").contains("unknown option '-u'"));
        assert!(error("-c 10.0.2.2 --udp").contains("unknown option"));
        assert!(error("-c 10.0.2.2 -1").contains("server only"));
        for bad in [
            "0.05",
            "61",
            "x",
            ".",
            "",
            "1.2.3",
            "-1",
            "0.1234567891",
            "1e3",
        ] {
            let e = error(&format!("-c 10.0.2.2 -i{bad}"));
            assert!(
                e.contains("bad interval") || e.contains("needs a value"),
                "{bad}: {e}"
            );
        }
        assert!(error("-s -i 1").contains("client only"));
        assert!(error("-s -R").contains("client only"));
        assert!(error("-s -Rx").contains("unknown option"));
        assert!(error("-s extra").contains("unexpected word 'extra'"));
        assert!(error("-h").contains("usage:"));
    }
}
