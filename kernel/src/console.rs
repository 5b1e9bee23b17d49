//! The console for user space: bytes typed on the serial port are collected on each timer tick
//! of CPU 0 and handed to the process granted `console`, which is notified when input arrives.

use crate::process::Process;
use alloc::collections::VecDeque;
use axolotl_abi::Error;
use spin::Mutex;

const CAPACITY: usize = 4096;
static INPUT: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());
static DROPPED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Moves bytes from the UART into the input buffer and notifies the console owner.
pub fn poll() {
    let mut got = false;
    let mut input = INPUT.lock();
    while let Some(b) = crate::serial::try_read_byte() {
        if input.len() < CAPACITY {
            input.push_back(b);
        } else {
            DROPPED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        got = true;
    }
    drop(input);
    if got {
        for p in crate::process::all() {
            if crate::process::has_grant(&p, "console") && !p.is_dead() {
                crate::sched::notify(&p);
            }
        }
    }
}

fn check(me: &Process, what: &str) -> Result<(), Error> {
    if crate::process::has_grant(me, "console") {
        Ok(())
    } else {
        crate::process::log_denied(me, what, "console");
        Err(Error::Denied)
    }
}

pub fn read_syscall(me: &Process, buf: u64, len: u64) -> Result<u64, Error> {
    check(me, "console_read")?;
    let mut out = alloc::vec::Vec::new();
    {
        let mut input = INPUT.lock();
        while out.len() < len.min(CAPACITY as u64) as usize {
            match input.pop_front() {
                Some(b) => out.push(b),
                None => break,
            }
        }
    }
    if let Err(e) = crate::user::write_bytes(buf, &out) {
        // Put the bytes back so nothing typed is lost.
        let mut input = INPUT.lock();
        for b in out.into_iter().rev() {
            input.push_front(b);
        }
        return Err(e);
    }
    Ok(out.len() as u64)
}

pub fn write_syscall(me: &Process, ptr: u64, len: u64) -> Result<u64, Error> {
    check(me, "console_write")?;
    let bytes = crate::user::read_bytes(ptr, len)?;
    crate::serial::write_bytes(&bytes);
    Ok(len)
}
