//! `cargo xtask console ADDR`: the client of the shell's network console (userland/shell
//! `netcon`): a TCP connection that carries lines to the shell and its answers back, each answer
//! ending with the prompt. Interactive (stdin lines, Ctrl-D ends) or scripted (`--exec`).

use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::Error;
use crate::args::ConsoleArgs;

/// The port of the network console when ADDR has none.
pub const DEFAULT_PORT: u16 = 2323;
/// What ends each answer of the shell.
const PROMPT: &str = "axolotl> ";

/// `HOST:PORT`, or `HOST` with the default port.
pub fn with_port(addr: &str) -> String {
    if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    }
}

/// Reads from `s` until the text ends with the prompt; returns it without the prompt.
fn until_prompt(s: &mut TcpStream, limit: Duration) -> Result<String, Error> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if got.ends_with(PROMPT.as_bytes()) {
            got.truncate(got.len() - PROMPT.len());
            return Ok(String::from_utf8_lossy(&got).into_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Failed(format!(
                "no prompt from the shell within {}s; got so far: {:?}",
                limit.as_secs(),
                String::from_utf8_lossy(&got)
            )));
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| Error::Failed(format!("console: {e}")))?;
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(Error::Failed(format!(
                    "the shell closed the session; last words: {:?}",
                    String::from_utf8_lossy(&got)
                )));
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(Error::Failed(format!("console: reading: {e}"))),
        }
    }
}

/// Connects, retrying until `limit` (a guest may still be booting; QEMU's forward accepts and
/// then closes while nothing listens in the guest), and waits for the first prompt.
fn connect(addr: &str, limit: Duration) -> Result<(TcpStream, String), Error> {
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < limit {
        let target = addr
            .to_socket_addrs()
            .map_err(|e| Error::Usage(format!("console: bad address '{addr}': {e}")))?
            .next()
            .ok_or_else(|| Error::Usage(format!("console: '{addr}' resolves to nothing")))?;
        match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
            Ok(mut s) => match until_prompt(&mut s, Duration::from_secs(10)) {
                Ok(banner) => return Ok((s, banner)),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(Error::Failed(format!(
        "console: no shell answered at {addr} within {}s (last: {last})",
        limit.as_secs()
    )))
}

/// The subcommand.
pub fn console(a: &ConsoleArgs) -> Result<u8, Error> {
    let addr = with_port(&a.addr);
    let limit = Duration::from_secs(a.timeout_s);
    let (mut s, banner) = connect(&addr, limit)?;
    print!("{banner}");
    if !a.exec.is_empty() {
        for command in &a.exec {
            println!("{PROMPT}{command}");
            s.write_all(format!("{command}\n").as_bytes())
                .map_err(|e| Error::Failed(format!("console: sending: {e}")))?;
            print!("{}", until_prompt(&mut s, limit)?);
        }
        return Ok(0);
    }
    print!("{PROMPT}");
    std::io::stdout().flush().ok();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::Failed(format!("console: stdin: {e}")))?;
        s.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| Error::Failed(format!("console: sending: {e}")))?;
        print!("{}{PROMPT}", until_prompt(&mut s, limit)?);
        std::io::stdout().flush().ok();
    }
    println!();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(with_port("10.0.0.5"), "10.0.0.5:2323");
        assert_eq!(with_port("10.0.0.5:23"), "10.0.0.5:23");
        assert_eq!(with_port("rig.local"), "rig.local:2323");
    }

    /// A fake shell on loopback: banner and prompt, then for each line "ran LINE" and the
    /// prompt, in pieces.
    #[test]
    fn scripted_session_against_a_fake_shell() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let shell = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.write_all(b"banner\naxol").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            c.write_all(b"otl> ").unwrap();
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                seen.push(line.clone());
                c.write_all(format!("ran {}{PROMPT}", line).as_bytes())
                    .unwrap();
            }
            seen
        });
        let (mut s, banner) =
            connect(&format!("127.0.0.1:{port}"), Duration::from_secs(5)).unwrap();
        assert_eq!(banner, "banner\n");
        for cmd in ["ps", "netstat"] {
            s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
            assert_eq!(
                until_prompt(&mut s, Duration::from_secs(5)).unwrap(),
                format!("ran {cmd}\n")
            );
        }
        assert_eq!(shell.join().unwrap(), ["ps\n", "netstat\n"]);
    }

    #[test]
    fn nobody_listening_is_a_clear_failure() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = connect(&format!("127.0.0.1:{port}"), Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("no shell answered"), "{e}");
    }
}
