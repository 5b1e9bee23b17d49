//! Channels between processes: the kernel's `wait`/`notify` behind libchan's [`Waiter`], and
//! attaching to a channel region granted by the manifest.

use crate::{Error, Result};
use core::sync::atomic::{AtomicU32, Ordering};
pub use libchan::{Consumer, Message as ChanMessage, Producer, Waiter};

/// Sleeps in the kernel's `wait` and wakes the peer with `notify`.
#[derive(Debug)]
pub struct SysWaiter {
    peer: AtomicU32,
}

impl SysWaiter {
    /// A waiter whose `notify` wakes process `peer`.
    pub const fn new(peer: u32) -> Self {
        Self {
            peer: AtomicU32::new(peer),
        }
    }

    /// Points `notify` at a new peer pid (after the peer restarted).
    pub fn set_peer(&self, pid: u32) {
        self.peer.store(pid, Ordering::Relaxed);
    }
}

impl Waiter for SysWaiter {
    fn wait(&self, timeout_ns: Option<u64>) {
        // A failed wait only means we poll again: the channel re-checks its ring either way.
        let _ = crate::wait(timeout_ns);
    }

    fn notify(&self) {
        let peer = self.peer.load(Ordering::Relaxed);
        if peer != 0 {
            let _ = crate::notify(peer);
        }
    }
}

/// Maps the channel region `name` and attaches as its producer.
pub fn producer(name: &str, waiter: SysWaiter) -> Result<Producer<'static, SysWaiter>> {
    let info = crate::map(name)?;
    // Safety: the kernel mapped `len` bytes at `addr` for this process's lifetime and wrote the
    // channel header; only this process produces into it (the manifest names the two ends).
    unsafe { Producer::attach(info.addr as *mut u8, info.len as usize, waiter) }
        .map_err(|_| Error::Invalid)
}

/// Maps the channel region `name` and attaches as its consumer.
pub fn consumer(name: &str, waiter: SysWaiter) -> Result<Consumer<'static, SysWaiter>> {
    let info = crate::map(name)?;
    // Safety: as in `producer`; only this process consumes from it.
    unsafe { Consumer::attach(info.addr as *mut u8, info.len as usize, waiter) }
        .map_err(|_| Error::Invalid)
}
