//! The shell program: the console loop around the `shell` library. It prints the prompt, polls
//! `console_read` (sleeping 20 ms in `wait` when nothing was typed; the kernel also wakes the
//! console owner when input arrives), feeds the bytes to the line editor, and runs each line.
//! While a program started on demand runs in the foreground, the console is read for Ctrl-C;
//! anything else typed then is kept and fed to the line editor afterwards.
#![no_std]
#![no_main]

use core::fmt::Write;

use libsys::abi::RestartPolicy;
use libsys::{CpuInfo, Error, Message, PciInfo, ProcInfo, ProcOp, log};
use shell::commands::run;
use shell::parse::commands;
use shell::{Feed, LineEditor, PROMPT, Sys};

libsys::entry!(main);

/// How long to sleep when no input is waiting.
const POLL_NS: u64 = 20_000_000;

/// Ctrl-C.
const CTRL_C: u8 = 0x03;

/// The real kernel, and the bytes typed while a program ran in the foreground.
struct Kernel {
    typeahead: [u8; 64],
    typeahead_len: usize,
}

impl Kernel {
    const fn new() -> Self {
        Self {
            typeahead: [0; 64],
            typeahead_len: 0,
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

fn main(_args: &str) -> i32 {
    let mut kernel = Kernel::new();
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
            }
        }
    }
}
