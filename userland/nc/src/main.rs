//! `nc HOST PORT (--send SIZE [--seed N] | TEXT...)`: a small TCP client over libnet. With
//! `--send` it writes SIZE bytes of a seeded pattern (nc's library), reading whatever comes back
//! meanwhile, then shuts its side down and reads to the end; it ends with
//! `nc: sent=N sent_sha256=H received=M received_sha256=H seconds=S mbps=R`, so a peer can check
//! the bytes. With TEXT it sends the text and a newline and prints what comes back (up to 10 s).
//! `nc -l PORT` accepts one connection, prints what it sends (as text) until its end, and exits.
//! Exit codes: 0 done, 1 a network error, 2 bad arguments.
#![no_std]
#![no_main]

extern crate alloc;

use libnet::{ErrorKind, TcpListener, TcpStream};
use libsys::println;
use nc::{Args, Pattern, Payload};
use sha2::{Digest, Sha256};

libsys::entry!(main);

const CHUNK: usize = 16 * 1024;

fn main(args: &str) -> i32 {
    let a = match nc::parse(args) {
        Ok(a) => a,
        Err(why) => {
            println!("nc: {why}\n{}", nc::USAGE);
            return 2;
        }
    };
    let outcome = match &a {
        Args::Connect { to, payload } => {
            connect(*to, payload).map_err(|e| (alloc::format!("{to}"), e))
        }
        Args::Listen { port } => listen(*port).map_err(|e| (alloc::format!("port {port}"), e)),
    };
    match outcome {
        Ok(()) => 0,
        Err((what, e)) => {
            println!("nc: {what}: {e}");
            1
        }
    }
}

fn listen(port: u16) -> libnet::Result<()> {
    let mut l = TcpListener::bind(port)?;
    let (mut s, peer) = l.accept()?;
    let mut received = Received::default();
    let mut buf = alloc::vec![0u8; CHUNK];
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => {
                libsys::print!("{}", alloc::string::String::from_utf8_lossy(&buf[..n]));
                received.add(&buf[..n]);
            }
        }
    }
    println!("nc: {peer}: received={} bytes, closed", received.bytes);
    Ok(())
}

fn connect(to: core::net::SocketAddrV4, payload: &Payload) -> libnet::Result<()> {
    let start = libsys::time_ns();
    let mut s = TcpStream::connect(to)?;
    let mut received = Received::default();
    let mut buf = alloc::vec![0u8; CHUNK];
    match payload {
        Payload::Text(t) => {
            s.write(t.as_bytes())?;
            s.write(b"\n")?;
            s.shutdown()?;
            s.set_read_timeout(Some(10_000_000_000));
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        libsys::print!("{}", alloc::string::String::from_utf8_lossy(&buf[..n]));
                        received.add(&buf[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::TimedOut => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Payload::Generated { bytes, seed } => {
            let mut pattern = Pattern::new(*seed);
            let mut sent = Sha256::new();
            let mut left = *bytes;
            let mut inbuf = alloc::vec![0u8; CHUNK];
            while left > 0 {
                let n = (left as usize).min(CHUNK);
                pattern.fill(&mut buf[..n]);
                sent.update(&buf[..n]);
                s.write(&buf[..n])?;
                left -= n as u64;
                // An echoing peer: take what came back so neither side stalls.
                while s.readable()? {
                    match s.read(&mut inbuf)? {
                        0 => break,
                        m => received.add(&inbuf[..m]),
                    }
                }
            }
            s.shutdown()?;
            loop {
                match s.read(&mut inbuf)? {
                    0 => break,
                    m => received.add(&inbuf[..m]),
                }
            }
            let seconds = (libsys::time_ns() - start) as f64 / 1e9;
            println!(
                "nc: sent={bytes} sent_sha256={} received={} received_sha256={} seconds={seconds:.3} mbps={:.1}",
                nc::hex(&sent.finalize()),
                received.bytes,
                nc::hex(&received.hash.finalize()),
                *bytes as f64 * 8.0 / seconds.max(1e-9) / 1e6,
            );
        }
    }
    Ok(())
}

/// Bytes that came back and their hash.
#[derive(Default)]
struct Received {
    bytes: u64,
    hash: Sha256,
}

impl Received {
    fn add(&mut self, b: &[u8]) {
        self.bytes += b.len() as u64;
        self.hash.update(b);
    }
}
