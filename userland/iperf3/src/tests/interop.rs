//! Interoperability with the stock `iperf3` (Debian 12 ships 3.12) on 127.0.0.1 only: the stock
//! server against our client, and the stock client against our server, both directions, one and
//! two streams. Each test picks a free port, kills its child on every path (a guard), and is
//! bounded in time. Without `iperf3` installed the tests fail and say how to install it.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::hostnet::StdNet;
use crate::{ClientOptions, Error, ServerOptions, run_client, run_server};

/// What a test says when the stock iperf3 is missing.
const INSTALL: &str = "install iperf3 (apt-get install iperf3)";
/// The longest the engine may take for a one-second test, handshakes included.
const RUN_LIMIT: Duration = Duration::from_secs(12);
/// The longest a stock iperf3 may take to start listening or to exit once its test is over.
const CHILD_LIMIT: Duration = Duration::from_secs(8);

/// A port nothing listens on right now (the kernel's choice for port 0).
fn free_port() -> u16 {
    // Not from the ephemeral range (Linux: 32768-60999): a port the kernel handed out and we
    // released could go to another test's outgoing connection before our server binds it.
    // Below the scenario tests' forwards (20000 and up); a counter keeps this process's tests
    // apart, the bind check other processes.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = (std::process::id() % 8_000) as u16;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 12_000 + base.wrapping_add(n.wrapping_mul(97)) % 8_000;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// A running stock iperf3 whose output lines are collected; killed when dropped.
struct Stock {
    child: Child,
    lines: mpsc::Receiver<String>,
    out: Vec<String>,
}

impl Stock {
    fn spawn(args: &[&str]) -> Stock {
        let mut child = match Command::new("iperf3")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL}"),
            Err(e) => panic!("cannot start iperf3 ({e}); {INSTALL}"),
        };
        let (tx, lines) = mpsc::channel();
        for (pipe, prefix) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                "",
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                "stderr: ",
            ),
        ] {
            let Some(pipe) = pipe else { continue };
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Stock {
            child,
            lines,
            out: Vec::new(),
        }
    }

    /// Collects output until a line contains `needle`; false if it did not come in time.
    fn wait_for_line(&mut self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.out.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits for the child to exit (failing the test after `limit`), then collects the rest of
    /// its output.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => panic!(
                    "iperf3 did not exit within {limit:?}; its output:\n{}",
                    self.out.join("\n")
                ),
                Err(e) => panic!("waiting for iperf3: {e}"),
            }
        };
        // The readers end with the pipes, which close with the process.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.out.push(l);
        }
        status
    }
}

impl Drop for Stock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a thread of its own and returns its result, failing the test after `limit`.
fn bounded<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Bytes of an iperf3 summary line's Transfer column (`... sec  1.10 GBytes  ...`).
fn transfer_bytes(line: &str) -> Option<f64> {
    let mut words = line.split(" sec ").nth(1)?.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    let unit = match words.next()? {
        "Bytes" => 1.0,
        "KBytes" => 1024.0,
        "MBytes" => 1024.0 * 1024.0,
        "GBytes" => 1024.0 * 1024.0 * 1024.0,
        "TBytes" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(value * unit)
}

/// Checks that some summary line (`... sender` or `... receiver`) reports bytes, and that
/// none reports zero.
fn assert_summary_moved_bytes(lines: &[String], who: &str) {
    let summary: Vec<&String> = lines
        .iter()
        .filter(|l| l.ends_with("sender") || l.ends_with("receiver"))
        .collect();
    assert!(
        !summary.is_empty(),
        "{who}: no summary lines in\n{}",
        lines.join("\n")
    );
    for l in &summary {
        let b = transfer_bytes(l).unwrap_or(0.0);
        assert!(
            b > 0.0,
            "{who}: no bytes in '{l}'; all output:\n{}",
            lines.join("\n")
        );
    }
}

/// The bytes of our final `iperf3: role=.. dir=.. bytes=N ...` line, which must start with
/// `prefix` and be the last line.
fn final_line_bytes(lines: &[String], prefix: &str) -> u64 {
    let last = lines.last().map(String::as_str).unwrap_or("");
    assert!(
        last.starts_with(prefix),
        "last line '{last}', expected '{prefix}...'"
    );
    last.split_whitespace()
        .find_map(|w| w.strip_prefix("bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes= in '{last}'"))
}

/// The stock server (`iperf3 -s -1`) against our client.
fn client_against_stock_server(parallel: u32, reverse: bool) {
    let port = free_port();
    let p = port.to_string();
    let mut server = Stock::spawn(&["-s", "-1", "-B", "127.0.0.1", "-p", &p, "--forceflush"]);
    assert!(
        server.wait_for_line("Server listening", CHILD_LIMIT),
        "the stock server did not start:\n{}",
        server.out.join("\n")
    );
    let mut o = ClientOptions::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    o.time_s = 1;
    o.parallel = parallel;
    o.reverse = reverse;
    let (r, lines): (Result<crate::Summary, Error>, Vec<String>) =
        bounded(RUN_LIMIT, "the library client", move || {
            let mut lines = Vec::new();
            let r = run_client(&mut StdNet::new(), &o, &mut |l: &str| {
                lines.push(l.to_string())
            });
            (r, lines)
        });
    let status = server.wait_exit(CHILD_LIMIT);
    let (ours, theirs) = (lines.join("\n"), server.out.join("\n"));
    assert!(
        r.is_ok(),
        "client failed: {r:?}\nours:\n{ours}\nstock server:\n{theirs}"
    );
    assert!(
        status.success(),
        "stock server {status}\n{theirs}\nours:\n{ours}"
    );
    assert!(
        !theirs.contains("error"),
        "stock server reported an error:\n{theirs}"
    );
    assert_summary_moved_bytes(&server.out, "stock server");
    assert_summary_moved_bytes(&lines, "library client");
    assert!(
        !ours.contains("statistics not available"),
        "peer results missing:\n{ours}"
    );
    let dir = if reverse { "recv" } else { "send" };
    let bytes = final_line_bytes(&lines, &format!("iperf3: role=client dir={dir} bytes="));
    assert!(bytes > 0, "{ours}");
    // Shown with --nocapture: both transcripts, then the figures.
    println!("--- library client:\n{ours}\n--- stock server:\n{theirs}");
    println!(
        "library client -P {parallel}{} vs stock server: {}",
        if reverse { " -R" } else { "" },
        lines.last().map(String::as_str).unwrap_or("")
    );
}

/// The stock client (`iperf3 -c`) against our server (`-1`).
fn stock_client_against_server(parallel: u32, reverse: bool) {
    let port = free_port();
    let (tx, rx) = mpsc::channel::<String>();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = Vec::new();
        let opts = ServerOptions {
            port,
            one_off: true,
        };
        let r = run_server(&mut StdNet::new(), &opts, &mut |l: &str| {
            let _ = tx.send(l.to_string());
            lines.push(l.to_string());
        });
        let _ = done_tx.send((r, lines));
    });
    // Wait until the server listens (or says why it cannot).
    let deadline = Instant::now() + CHILD_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("Server listening") => break,
            Ok(l) if l.starts_with("iperf3:") => panic!("the library server failed: {l}"),
            Ok(_) => {}
            Err(_) => panic!("the library server did not start listening"),
        }
    }
    let p = port.to_string();
    let n = parallel.to_string();
    let mut args = vec![
        "-c",
        "127.0.0.1",
        "-p",
        &p,
        "-t",
        "1",
        "-P",
        &n,
        "--forceflush",
    ];
    if reverse {
        args.push("-R");
    }
    let mut client = Stock::spawn(&args);
    let status = client.wait_exit(RUN_LIMIT);
    let (r, lines) = match done.recv_timeout(CHILD_LIMIT) {
        Ok(v) => v,
        Err(_) => panic!(
            "the library server did not finish; stock client said:\n{}",
            client.out.join("\n")
        ),
    };
    let (ours, theirs) = (lines.join("\n"), client.out.join("\n"));
    assert!(
        status.success(),
        "stock client {status}\n{theirs}\nours:\n{ours}"
    );
    assert!(
        r.is_ok(),
        "server failed: {r:?}\nours:\n{ours}\nstock client:\n{theirs}"
    );
    assert!(theirs.contains("iperf Done."), "{theirs}");
    assert_summary_moved_bytes(&client.out, "stock client");
    assert!(
        theirs.lines().any(|l| l.ends_with("sender"))
            && theirs.lines().any(|l| l.ends_with("receiver")),
        "the stock client lacks a side of the summary:\n{theirs}"
    );
    assert_summary_moved_bytes(&lines, "library server");
    let dir = if reverse { "send" } else { "recv" };
    let bytes = final_line_bytes(&lines, &format!("iperf3: role=server dir={dir} bytes="));
    assert!(bytes > 0, "{ours}");
    println!("--- stock client:\n{theirs}\n--- library server:\n{ours}");
    println!(
        "stock client -P {parallel}{} vs library server: {}",
        if reverse { " -R" } else { "" },
        lines.last().map(String::as_str).unwrap_or("")
    );
}

#[test]
fn interop_client_sends_to_stock_server() {
    client_against_stock_server(1, false);
}

#[test]
fn interop_client_receives_from_stock_server() {
    client_against_stock_server(1, true);
}

#[test]
fn interop_client_sends_to_stock_server_two_streams() {
    client_against_stock_server(2, false);
}

#[test]
fn interop_client_receives_from_stock_server_two_streams() {
    client_against_stock_server(2, true);
}

#[test]
fn interop_stock_client_sends_to_server() {
    stock_client_against_server(1, false);
}

#[test]
fn interop_stock_client_receives_from_server() {
    stock_client_against_server(1, true);
}

#[test]
fn interop_stock_client_sends_to_server_two_streams() {
    stock_client_against_server(2, false);
}

#[test]
fn interop_stock_client_receives_from_server_two_streams() {
    stock_client_against_server(2, true);
}

/// Our client and our server together, by byte count (`-n`), over loopback.
#[test]
fn own_client_against_own_server_by_byte_count() {
    for reverse in [false, true] {
        let port = free_port();
        let (ready_tx, ready) = mpsc::channel();
        let server = thread::spawn(move || {
            let mut lines = Vec::new();
            let opts = ServerOptions {
                port,
                one_off: true,
            };
            let r = run_server(&mut StdNet::new(), &opts, &mut |l: &str| {
                if l.starts_with("Server listening") {
                    let _ = ready_tx.send(());
                }
                lines.push(l.to_string());
            });
            (r, lines)
        });
        ready.recv_timeout(CHILD_LIMIT).expect("the server listens");
        let mut o = ClientOptions::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        o.time_s = 0;
        o.bytes = 32 << 20;
        o.parallel = 3;
        o.block_len = 64 * 1024;
        o.reverse = reverse;
        let (r, lines) = bounded(RUN_LIMIT, "the library client", move || {
            let mut lines = Vec::new();
            let r = run_client(&mut StdNet::new(), &o, &mut |l: &str| {
                lines.push(l.to_string())
            });
            (r, lines)
        });
        let summary = r.unwrap_or_else(|e| panic!("client: {e}\n{}", lines.join("\n")));
        let (sr, slines) = bounded(CHILD_LIMIT, "the library server", move || {
            server.join().expect("server thread")
        });
        assert_eq!(sr, Ok(()), "{}", slines.join("\n"));
        if reverse {
            // The receiver stops at the count; what was in flight is drained and counted.
            assert!(summary.bytes >= 32 << 20, "{summary:?}");
        } else {
            // The sender writes whole blocks up to the count exactly.
            assert_eq!(summary.bytes, 32 << 20);
        }
        let server_bytes = final_line_bytes(&slines, "iperf3: role=server dir=");
        assert!(server_bytes > 0);
        assert!(!lines.join("\n").contains("not available"));
    }
}
