//! The shell program: the console loop around the `shell` library. It prints the prompt, polls
//! `console_read` (sleeping 20 ms in `wait` when nothing was typed; the kernel also wakes the
//! console owner when input arrives), feeds the bytes to the line editor, and runs each line.
//! While a program started on demand runs in the foreground, the console is read for Ctrl-C;
//! anything else typed then is kept and fed to the line editor afterwards.
//!
//! With `netconsole=PORT` in its arguments the shell also listens on that TCP port (through
//! libnet; shell::netcon has the protocol): lines from the one connected client run like typed
//! ones, their output goes to the console and back to the client, followed by the prompt.
#![no_std]
#![no_main]

use core::fmt::Write;

use libsys::abi::RestartPolicy;
use libsys::{CpuInfo, Error, Message, PciInfo, ProcInfo, ProcOp, log};
use shell::commands::run;
use shell::netcon::{self, Input, Lines};
use shell::parse::commands;
use shell::{Feed, LineEditor, PROMPT, Sys};

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use libnet::{TcpListener, TcpStream};

libsys::entry!(main);

/// How long to sleep when no input is waiting.
const POLL_NS: u64 = 20_000_000;

/// Ctrl-C.
const CTRL_C: u8 = 0x03;

/// The real kernel, the bytes typed while a program ran in the foreground, and the network
/// console (served whenever the shell waits: at the prompt, in `sleep`, while a program runs).
struct Kernel {
    typeahead: [u8; 64],
    typeahead_len: usize,
    netcon: Option<NetConsole>,
    /// The network console ran commands during the last wait.
    net_served: bool,
}

impl Kernel {
    const fn new(netcon: Option<NetConsole>) -> Self {
        Self {
            typeahead: [0; 64],
            typeahead_len: 0,
            netcon,
            net_served: false,
        }
    }

    /// Console input: the bytes typed ahead first, then what the console has (0: nothing).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.typeahead_len == 0 {
            return libsys::console_read(buf);
        }
        let n = self.typeahead_len.min(buf.len());
        buf[..n].copy_from_slice(&self.typeahead[..n]);
        self.typeahead.copy_within(n..self.typeahead_len, 0);
        self.typeahead_len -= n;
        Ok(n)
    }

    /// Keeps `bytes` for [`Kernel::read`]; what does not fit is dropped.
    fn keep(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.typeahead.len() - self.typeahead_len);
        self.typeahead[self.typeahead_len..][..n].copy_from_slice(&bytes[..n]);
        self.typeahead_len += n;
    }
}

impl Sys for Kernel {
    fn proc_info(&mut self, slot: u32) -> Result<ProcInfo, Error> {
        libsys::proc_info(slot)
    }
    fn cpu_info(&mut self, cpu: u32) -> Result<CpuInfo, Error> {
        libsys::cpu_info(cpu)
    }
    fn cpu_calls(&mut self, cpu: u32) -> Result<libsys::abi::CpuCalls, Error> {
        libsys::cpu_calls(cpu)
    }
    fn lookup(&mut self, name: &str) -> Result<u32, Error> {
        libsys::lookup(name)
    }
    fn ipc_call(&mut self, pid: u32, msg: &Message, reply: &mut Message) -> Result<(), Error> {
        libsys::ipc_call(pid, msg, reply)
    }
    fn time_ns(&mut self) -> u64 {
        libsys::time_ns()
    }
    fn wait(&mut self, timeout_ns: u64) {
        // While the network console runs a command, its own waits do not serve it again.
        if let Some(mut n) = self.netcon.take() {
            let mut con = libsys::io::console();
            let served = n.poll(self, &mut con);
            self.netcon = Some(n);
            if served {
                self.net_served = true;
                return;
            }
        }
        if libsys::wait(Some(timeout_ns)).is_err() {
            libsys::yield_now();
        }
    }
    fn poweroff(&mut self, code: i32) -> Error {
        libsys::poweroff(code)
    }
    fn ipc_send(&mut self, pid: u32, msg: &Message) -> Result<(), Error> {
        libsys::ipc_send(pid, msg)
    }
    fn ipc_recv(&mut self, msg: &mut Message, timeout_ns: u64) -> Result<u32, Error> {
        libsys::ipc_recv(msg, Some(timeout_ns))
    }
    fn pci_info(&mut self, index: u32) -> Result<PciInfo, Error> {
        libsys::pci_info(index)
    }
    fn proc_ctl(&mut self, pid: u32, op: ProcOp) -> Result<u64, Error> {
        match op {
            ProcOp::Restart => libsys::proc_restart(pid).map(u64::from),
            _ => libsys::proc_ctl(pid, op).map(|()| 0),
        }
    }
    fn ipc_call_timeout(
        &mut self,
        pid: u32,
        msg: &Message,
        reply: &mut Message,
        timeout_ns: u64,
    ) -> Result<(), Error> {
        libsys::ipc_call_timeout(pid, msg, reply, timeout_ns)
    }
    fn proc_policy(&mut self, slot: u32) -> Result<RestartPolicy, Error> {
        libsys::proc_policy(slot)
    }
    fn proc_start(&mut self, name: &str, args: &str) -> Result<u32, Error> {
        libsys::proc_start(name, args)
    }
    fn interrupted(&mut self) -> bool {
        let mut typed = [0u8; 64];
        let Ok(n) = libsys::console_read(&mut typed) else {
            return false;
        };
        let typed = &typed[..n.min(typed.len())];
        match typed.iter().position(|&b| b == CTRL_C) {
            Some(at) => {
                // What was typed before Ctrl-C goes with the program it interrupts.
                self.typeahead_len = 0;
                self.keep(&typed[at + 1..]);
                true
            }
            None => {
                self.keep(typed);
                false
            }
        }
    }
}

/// Writes to the console and keeps a copy for the network client.
struct Tee<'a, C: Write> {
    con: &'a mut C,
    net: &'a mut String,
}

impl<C: Write> Write for Tee<'_, C> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.net.push_str(s);
        self.con.write_str(s)
    }
}

/// The network console's state.
struct NetConsole {
    port: u16,
    listener: Option<TcpListener>,
    /// When to try to listen again (tcp may not be up yet).
    next_bind_ns: u64,
    bind_failures: u32,
    /// Looks for tcp that did not find it, in a row (said once, at the first).
    tcp_misses: u32,
    session: Option<(TcpStream, core::net::SocketAddrV4)>,
    lines: Lines,
}

/// How often to retry listening after a failure.
const BIND_RETRY_NS: u64 = 1_000_000_000;

impl NetConsole {
    fn new(port: u16) -> Self {
        Self {
            port,
            listener: None,
            next_bind_ns: 0,
            bind_failures: 0,
            tcp_misses: 0,
            session: None,
            lines: Lines::new(),
        }
    }

    /// Listens, takes a client, runs what it sent; false when nothing happened.
    fn poll(&mut self, kernel: &mut Kernel, con: &mut libsys::io::Console) -> bool {
        let now = libsys::time_ns();
        if self.listener.is_none() {
            if now < self.next_bind_ns {
                return false;
            }
            // rs may start tcp after the shell: not an error, and not worth a LISTEN that no
            // one reads yet.
            if libsys::lookup("tcp").is_err() {
                self.tcp_misses = self.tcp_misses.saturating_add(1);
                if self.tcp_misses == 1 {
                    log!("network console on tcp port {} once tcp runs", self.port);
                }
                self.next_bind_ns = now + netcon::tcp_wait_ns(self.tcp_misses);
                return false;
            }
            self.tcp_misses = 0;
            match TcpListener::bind(self.port) {
                Ok(l) => {
                    log!("network console on tcp port {}", self.port);
                    self.listener = Some(l);
                }
                Err(e) => {
                    self.bind_failures += 1;
                    if self.bind_failures == 1 || self.bind_failures.is_multiple_of(30) {
                        log!(
                            "network console: listening on {} failed ({e}); retrying",
                            self.port
                        );
                    }
                    self.next_bind_ns = now + BIND_RETRY_NS;
                    return false;
                }
            }
        }
        let mut worked = false;
        if let Some(l) = self.listener.as_mut() {
            match l.try_accept() {
                Ok(Some((mut s, peer))) => {
                    worked = true;
                    if self.session.is_some() {
                        let _ = s.write(netcon::BUSY.as_bytes());
                        let _ = s.shutdown();
                        log!("network console: {peer} refused, a session is open");
                    } else {
                        log!("network console: session from {peer}");
                        let banner = alloc::format!(
                            "axolotl network console (shell pid {})\n{PROMPT}",
                            libsys::pid()
                        );
                        if s.write(banner.as_bytes()).is_ok() {
                            self.session = Some((s, peer));
                            self.lines = Lines::new();
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    log!("network console: tcp is gone ({e}); listening again");
                    self.listener = None;
                    self.session = None;
                    return false;
                }
            }
        }
        let Some((s, peer)) = self.session.as_mut() else {
            return worked;
        };
        let peer = *peer;
        let mut inputs = Vec::new();
        let mut buf = [0u8; 512];
        let mut ended = false;
        while matches!(s.readable(), Ok(true)) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {
                    ended = true;
                    break;
                }
                Ok(n) => self.lines.feed(&buf[..n], &mut inputs),
            }
        }
        for input in inputs {
            worked = true;
            let mut reply = String::new();
            match input {
                Input::Line(line) => {
                    let _ = writeln!(con, "[net {peer}] {line}");
                    for command in commands(&line) {
                        let mut tee = Tee {
                            con: &mut *con,
                            net: &mut reply,
                        };
                        run(kernel, &mut tee, command);
                        con.flush();
                    }
                }
                Input::TooLong => {
                    reply = alloc::format!(
                        "shell: line longer than {} bytes dropped\n",
                        netcon::MAX_LINE
                    );
                }
            }
            reply.push_str(PROMPT);
            if self
                .session
                .as_mut()
                .is_none_or(|(s, _)| s.write(reply.as_bytes()).is_err())
            {
                ended = true;
                break;
            }
        }
        if ended {
            log!("network console: {peer} closed");
            self.session = None;
            worked = true;
        }
        worked
    }
}

fn main(args: &str) -> i32 {
    let netcon = match netcon::port(args) {
        Ok(p) => p.map(NetConsole::new),
        Err(why) => {
            log!("shell: {why}; the network console stays off");
            None
        }
    };
    let mut kernel = Kernel::new(netcon);
    let mut con = libsys::io::console();
    let mut editor = LineEditor::new();
    let mut input = [0u8; 64];
    // Bytes read but not yet fed: `input[pos..end]` (a paste may hold several lines).
    let (mut pos, mut end) = (0, 0);
    loop {
        let _ = con.write_str(PROMPT);
        con.flush();
        'line: loop {
            while pos < end {
                let b = input[pos];
                pos += 1;
                match editor.feed(b, &mut con) {
                    Feed::Pending => {}
                    Feed::Cancel => break 'line,
                    Feed::Line => {
                        con.flush();
                        // As `shell::run_line`, but flushing after each command, so its output is
                        // out before the next one sleeps, benchmarks or powers the machine off.
                        for command in commands(editor.line()) {
                            run(&mut kernel, &mut con, command);
                            con.flush();
                        }
                        editor.clear();
                        break 'line;
                    }
                }
            }
            con.flush();
            end = match kernel.read(&mut input) {
                Ok(n) => n,
                Err(e) => {
                    log!("shell: cannot read the console: {e}");
                    return 1;
                }
            };
            pos = 0;
            if end == 0 {
                kernel.wait(POLL_NS);
                if core::mem::take(&mut kernel.net_served) && !editor.line().is_empty() {
                    // Commands from the network ran over a half-typed line: show it again.
                    let _ = con.write_str(PROMPT);
                    let _ = con.write_str(editor.line());
                    con.flush();
                }
            }
        }
    }
}
