//! The network console's protocol (docs/rig.md "Network console"): a rig without a serial port
//! reaches the shell over TCP. Off unless the shell's manifest arguments say
//! `netconsole=PORT`. One session at a time; the client sends lines (`\n`-terminated, a `\r`
//! before it is dropped), the shell runs each one as if typed and sends back what the commands
//! printed, then the prompt. A second client gets [`BUSY`] and is closed. A line longer than
//! [`MAX_LINE`] bytes is refused whole (the rest of it up to its newline is dropped). Only
//! printable ASCII and tabs go through; other bytes are dropped and counted.
//!
//! This module is the host-tested part: the arguments and the line splitter. The session itself
//! (libnet's listener and stream) is in the program (src/main.rs).

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line taken from the network.
pub const MAX_LINE: usize = 256;
/// Sent to a client that connects while another session is open.
pub const BUSY: &str = "axolotl: the network console is in use by another session\n";

/// The first wait between looks for tcp while it does not run (rs starts it after the shell).
pub const TCP_WAIT_FIRST_NS: u64 = 100_000_000;
/// The longest wait between looks for tcp: a boot without tcp costs one call a second.
pub const TCP_WAIT_MAX_NS: u64 = 1_000_000_000;

/// How long to wait before looking for tcp again after `misses` looks that did not find it
/// (at least 1): 100 ms, doubling, at most 1 s.
pub fn tcp_wait_ns(misses: u32) -> u64 {
    let doublings = misses.saturating_sub(1).min(16);
    TCP_WAIT_FIRST_NS
        .saturating_mul(1 << doublings)
        .min(TCP_WAIT_MAX_NS)
}

/// The port of `netconsole=PORT` among the shell's comma- or space-separated arguments:
/// `Ok(None)` when absent, `Err` with the reason when malformed.
pub fn port(args: &str) -> Result<Option<u16>, String> {
    let mut found = None;
    for word in args.split([',', ' ']).filter(|w| !w.is_empty()) {
        match word.strip_prefix("netconsole=") {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 => found = Some(n),
                _ => return Err(alloc::format!("bad netconsole port '{p}' (1..=65535)")),
            },
            None => return Err(alloc::format!("unknown shell argument '{word}'")),
        }
    }
    Ok(found)
}

/// What came of feeding bytes to a [`Lines`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A whole line, without its terminator.
    Line(String),
    /// A line was longer than [`MAX_LINE`] and is dropped.
    TooLong,
}

/// Splits a byte stream into lines, with the limits above.
#[derive(Debug, Default)]
pub struct Lines {
    current: Vec<u8>,
    overflow: bool,
    dropped: u64,
}

impl Lines {
    /// A splitter with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes dropped so far (not printable ASCII).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Feeds `bytes`; what they complete goes to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        for &b in bytes {
            match b {
                b'\n' => {
                    if core::mem::take(&mut self.overflow) {
                        out.push(Input::TooLong);
                    } else {
                        let line = core::mem::take(&mut self.current);
                        // Only printable ASCII was kept: valid UTF-8.
                        out.push(Input::Line(String::from_utf8(line).unwrap_or_default()));
                    }
                    self.current.clear();
                }
                b'\r' => {}
                b'\t' | 0x20..=0x7e => {
                    if self.overflow {
                        continue;
                    }
                    if self.current.len() >= MAX_LINE {
                        self.overflow = true;
                        self.current.clear();
                    } else {
                        self.current.push(b);
                    }
                }
                _ => self.dropped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_is_looked_for_often_at_first_then_once_a_second() {
        let waits: Vec<u64> = (1..=6).map(|n| tcp_wait_ns(n) / 1_000_000).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(tcp_wait_ns(0), TCP_WAIT_FIRST_NS);
        assert_eq!(tcp_wait_ns(u32::MAX), TCP_WAIT_MAX_NS);
    }

    #[test]
    fn arguments() {
        assert_eq!(port(""), Ok(None));
        assert_eq!(port("netconsole=2323"), Ok(Some(2323)));
        assert_eq!(port(" netconsole=23 "), Ok(Some(23)));
        assert!(port("netconsole=0").is_err());
        assert!(port("netconsole=x").is_err());
        assert!(port("netconsole=70000").is_err());
        assert!(port("verbose").is_err());
    }

    #[test]
    fn lines_are_split_bounded_and_cleaned() {
        let mut l = Lines::new();
        let mut out = Vec::new();
        l.feed(b"ps\r\nnet", &mut out);
        assert_eq!(out, [Input::Line("ps".into())]);
        l.feed(b"stat\n\n", &mut out);
        assert_eq!(
            out[1..],
            [Input::Line("netstat".into()), Input::Line(String::new())]
        );
        out.clear();
        l.feed(b"e\x1b[A\xffcho\x00 hi\n", &mut out);
        assert_eq!(out, [Input::Line("e[Acho hi".into())]);
        assert_eq!(l.dropped(), 3);
        out.clear();
        let long = vec![b'a'; MAX_LINE + 10];
        l.feed(&long, &mut out);
        l.feed(b"more\nps\n", &mut out);
        assert_eq!(out, [Input::TooLong, Input::Line("ps".into())]);
        out.clear();
        l.feed(&vec![b'b'; MAX_LINE], &mut out);
        l.feed(b"\n", &mut out);
        assert_eq!(out, [Input::Line("b".repeat(MAX_LINE))]);
    }
}
