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

/// The applications a transport server (udp, tcp) serves: its argument, comma-separated, 1 to
/// `max` names; `None` when there are none or too many.
pub fn app_list(args: &str, max: usize) -> Option<alloc::vec::Vec<&str>> {
    let apps: alloc::vec::Vec<&str> = args
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    (!apps.is_empty() && apps.len() <= max).then_some(apps)
}

/// Looks the peers of a transport server up: all of them every `every_ns` (or while ip is
/// unknown), and at once an application that `spoke` this round while unknown (it waits for
/// our notify). An application started on demand may not run at all: a lookup per round would
/// be a system call each.
pub fn refresh_peers(
    ip: &mut Link,
    apps: &mut [Link],
    spoke: &[bool],
    now: u64,
    last_check: &mut u64,
    every_ns: u64,
) {
    if now.saturating_sub(*last_check) >= every_ns || ip.pid == 0 {
        *last_check = now;
        ip.find_peer();
        for l in apps {
            l.find_peer();
        }
    } else {
        for (l, spoke) in apps.iter_mut().zip(spoke) {
            if *spoke && l.pid == 0 {
                l.find_peer();
            }
        }
    }
}

/// Answers up to `max` kernel-IPC requests waiting for us (without waiting for one), each with
/// `answer(request)`, by `ipc_reply`.
pub fn answer_requests(max: usize, mut answer: impl FnMut(&crate::Message) -> crate::Message) {
    for _ in 0..max {
        let mut m: crate::Message = [0; crate::abi::IPC_MSG_LEN];
        let Ok(from) = crate::ipc_recv(&mut m, Some(0)) else {
            return;
        };
        // Fails only when the caller gave up waiting: nothing to do.
        let _ = crate::ipc_reply(from, &answer(&m));
    }
}
