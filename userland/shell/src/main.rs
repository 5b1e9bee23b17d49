//! The shell program: the console loop around the `shell` library. It prints the prompt, polls
//! `console_read` (sleeping 20 ms in `wait` when nothing was typed; the kernel also wakes the
//! console owner when input arrives), feeds the bytes to the line editor, and runs each line.
#![no_std]
#![no_main]

use core::fmt::Write;

use libsys::{CpuInfo, Error, Message, PciInfo, ProcInfo, ProcOp, log};
use shell::commands::run_command;
use shell::parse::commands;
use shell::{Feed, LineEditor, PROMPT, Sys};

libsys::entry!(main);

/// How long to sleep when no input is waiting.
const POLL_NS: u64 = 20_000_000;

/// The real kernel.
struct Kernel;

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
}

fn main(_args: &str) -> i32 {
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
                            run_command(&mut Kernel, &mut con, command);
                            con.flush();
                        }
                        editor.clear();
                        break 'line;
                    }
                }
            }
            con.flush();
            end = match libsys::console_read(&mut input) {
                Ok(n) => n,
                Err(e) => {
                    log!("shell: cannot read the console: {e}");
                    return 1;
                }
            };
            pos = 0;
            if end == 0 {
                Kernel.wait(POLL_NS);
            }
        }
    }
}
