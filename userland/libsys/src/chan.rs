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

/// Maps the pool region `name` as a [`libchan::PoolView`] of `buffer_size`-byte buffers with
/// pool id `id`.
pub fn map_pool(name: &str, id: u16, buffer_size: u32) -> Result<libchan::PoolView<'static>> {
    let info = crate::map(name)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process;
    // the peers map them too, and the caller touches only the buffers its protocol hands it.
    unsafe { libchan::PoolView::new(id, info.addr as *mut u8, info.len as usize, buffer_size) }
        .map_err(|_| Error::Invalid)
}

/// A duplex link to the peer process `name`: one channel from it, one to it, and its pid (looked
/// up with [`Link::find_peer`], again after the peer restarted) as the notify target.
pub struct Link {
    /// The peer's process name.
    pub name: &'static str,
    /// Messages from the peer.
    pub from: Consumer<'static, SysWaiter>,
    /// Messages to the peer.
    pub to: Producer<'static, SysWaiter>,
    /// The peer's pid (0 until found).
    pub pid: u32,
    /// The newest epoch either channel reported (1: the first instance's).
    epoch: u32,
    /// A restart of the peer was seen and not yet taken by [`Link::take_restart`].
    restarted: bool,
}

impl Link {
    /// Attaches to the channels `from` (we consume) and `to` (we produce).
    pub fn attach(name: &'static str, from: &str, to: &str) -> Result<Self> {
        Ok(Self {
            name,
            from: consumer(from, SysWaiter::new(0))?,
            to: producer(to, SysWaiter::new(0))?,
            pid: 0,
            epoch: 0,
            restarted: false,
        })
    }

    /// True once after the peer restarted (either channel reported a new epoch): what was lent
    /// to the old instance, or held for it, is to be recovered before anything else of the new
    /// one is handled. Both channels of the pair report the same restart; it counts once.
    pub fn take_restart(&mut self) -> bool {
        core::mem::take(&mut self.restarted)
    }

    fn saw(&mut self, change: &libchan::EpochChange) {
        if change.new_epoch > self.epoch {
            self.epoch = change.new_epoch;
            self.restarted = true;
            self.pid = 0;
        }
    }

    /// Looks the peer up; when its pid changed, notifies it (it may sleep on our channel).
    pub fn find_peer(&mut self) {
        if let Ok(pid) = crate::lookup(self.name)
            && pid != self.pid
        {
            self.pid = pid;
            self.to.waiter().set_peer(pid);
            self.to.notify_peer();
        }
    }

    /// Sends what fits of `msgs`; returns how many. A refusal other than a full ring is counted
    /// in `errors` and logged at powers of two.
    pub fn send(&mut self, msgs: &[ChanMessage], errors: &mut u64) -> usize {
        match self.to.send_batch(msgs) {
            Ok(n) => n,
            Err(libchan::SendError::Full) => 0,
            Err(e) => {
                if let libchan::SendError::EpochChanged(c) = &e {
                    self.saw(c);
                }
                *errors += 1;
                if errors.is_power_of_two() {
                    crate::log!("channel to {}: {e:?} ({errors} channel errors)", self.name);
                }
                0
            }
        }
    }

    /// Receives up to `out.len()` messages; refusals are counted and logged like `send`'s.
    pub fn receive(&mut self, out: &mut [ChanMessage], errors: &mut u64) -> usize {
        match self.from.recv_batch(out) {
            Ok(n) => n,
            Err(e) => {
                if let libchan::RecvError::EpochChanged(c) = &e {
                    self.saw(c);
                }
                *errors += 1;
                if errors.is_power_of_two() {
                    crate::log!(
                        "channel from {}: {e:?} ({errors} channel errors)",
                        self.name
                    );
                }
                0
            }
        }
    }
}
