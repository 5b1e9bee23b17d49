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

/// The kernel-IPC baseline's [`libchan::Gate`]: every send, receive, arm and disarm is one
/// `CHAN_GATE` system call, and the kernel moves the messages (DESIGN.md §8).
pub struct KernelGate;

/// The one kernel gate.
pub static KERNEL_GATE: KernelGate = KernelGate;

/// True when the boot chose kernel IPC between servers (`ipc=kernel`).
pub fn kernel_ipc() -> bool {
    crate::boot_config() & crate::abi::sysconf::IPC_KERNEL != 0
}

impl KernelGate {
    fn call(
        op: u64,
        region: usize,
        msgs: u64,
        count: usize,
    ) -> core::result::Result<u64, crate::abi::gate::ChanFault> {
        use crate::abi::gate;
        let mut fault = gate::ChanFault::default();
        let count = count.min(gate::MAX_BATCH) as u64;
        // Safety: the kernel reads (SEND) or writes (RECV) `count` 64-byte messages at address
        // `msgs`, which the caller lends (mutably, for RECV) for the call, and may write one
        // `ChanFault` to `fault`, ours; it checks both ranges are the caller's memory.
        let r = unsafe {
            crate::syscall::syscall4(
                crate::abi::nr::CHAN_GATE,
                op | count << 8,
                region as u64,
                msgs,
                &mut fault as *mut gate::ChanFault as u64,
            )
        };
        if r < 0 {
            // The kernel refused the call itself (a region not granted, not mapped): as a
            // broken channel to the caller.
            return Err(gate::ChanFault {
                kind: gate::BAD_MAGIC,
                found: r as u64,
                ..gate::ChanFault::default()
            });
        }
        let r = r as u64;
        if r & gate::FAULT != 0 {
            return Err(fault);
        }
        Ok(r)
    }
}

fn send_error(f: crate::abi::gate::ChanFault) -> libchan::SendError {
    use crate::abi::gate;
    match f.kind {
        gate::FULL => libchan::SendError::Full,
        gate::EPOCH => libchan::SendError::EpochChanged(libchan::EpochChange {
            old_epoch: f.old_epoch,
            new_epoch: f.new_epoch,
            first: f.first,
            count: f.count,
        }),
        gate::INDEX_JUMP => libchan::SendError::IndexJump {
            found: f.found as u32,
        },
        _ => libchan::SendError::BadMagic { found: f.found },
    }
}

fn recv_error(f: crate::abi::gate::ChanFault) -> libchan::RecvError {
    match send_error(f) {
        libchan::SendError::EpochChanged(c) => libchan::RecvError::EpochChanged(c),
        libchan::SendError::IndexJump { found } => libchan::RecvError::IndexJump { found },
        libchan::SendError::BadMagic { found } => libchan::RecvError::BadMagic { found },
        // A receive is never refused as full.
        libchan::SendError::Full => libchan::RecvError::BadMagic { found: 0 },
    }
}

/// One message per trap, as kernel IPC moves them (the kernel would take a batch; the
/// baseline's point is a trap per message).
impl libchan::Gate for KernelGate {
    fn send(
        &self,
        region: usize,
        msgs: &[ChanMessage],
    ) -> core::result::Result<(usize, u32), libchan::SendError> {
        let (mut sent, mut first) = (0, 0);
        for m in msgs {
            match Self::call(
                crate::abi::gate::SEND,
                region,
                m as *const ChanMessage as u64,
                1,
            ) {
                Ok(r) => {
                    if sent == 0 {
                        first = (r >> 16) as u32;
                    }
                    sent += 1;
                }
                // What was sent counts; the refusal comes with the next call.
                Err(_) if sent > 0 => break,
                Err(f) => return Err(send_error(f)),
            }
        }
        Ok((sent, first))
    }

    fn recv(
        &self,
        region: usize,
        out: &mut [ChanMessage],
    ) -> core::result::Result<usize, libchan::RecvError> {
        let mut n = 0;
        while n < out.len() {
            match Self::call(
                crate::abi::gate::RECV,
                region,
                &mut out[n] as *mut ChanMessage as u64,
                1,
            ) {
                Ok(0) => break,
                Ok(_) => n += 1,
                // What was taken counts; the refusal comes with the next call.
                Err(_) if n > 0 => break,
                Err(f) => return Err(recv_error(f)),
            }
        }
        Ok(n)
    }

    fn arm(&self, region: usize) -> core::result::Result<bool, libchan::RecvError> {
        let r = Self::call(crate::abi::gate::ARM, region, 0, 0).map_err(recv_error)?;
        Ok(r != 0)
    }

    fn disarm(&self, region: usize) {
        // A refusal leaves the flag as it was: the next arm reports the channel's state.
        let _ = Self::call(crate::abi::gate::DISARM, region, 0, 0);
    }
}

/// Maps the channel region `name` and attaches as its producer (through the kernel's gate when
/// the boot chose kernel IPC).
pub fn producer(name: &str, waiter: SysWaiter) -> Result<Producer<'static, SysWaiter>> {
    let info = crate::map(name)?;
    // Safety: the kernel mapped `len` bytes at `addr` for this process's lifetime and wrote the
    // channel header; only this process produces into it (the manifest names the two ends).
    let mut p = unsafe { Producer::attach(info.addr as *mut u8, info.len as usize, waiter) }
        .map_err(|_| Error::Invalid)?;
    if kernel_ipc() {
        p.set_gate(&KERNEL_GATE);
    }
    Ok(p)
}

/// Maps the channel region `name` and attaches as its consumer (through the kernel's gate when
/// the boot chose kernel IPC).
pub fn consumer(name: &str, waiter: SysWaiter) -> Result<Consumer<'static, SysWaiter>> {
    let info = crate::map(name)?;
    // Safety: as in `producer`; only this process consumes from it.
    let mut c = unsafe { Consumer::attach(info.addr as *mut u8, info.len as usize, waiter) }
        .map_err(|_| Error::Invalid)?;
    if kernel_ipc() {
        c.set_gate(&KERNEL_GATE);
    }
    Ok(c)
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
    /// When [`refresh_peers`] last looked the peer up while its pid was unknown (`None`: not
    /// since it became unknown).
    looked_up: Option<u64>,
    /// We sent the peer messages while its pid was unknown: only then can some wait unread for
    /// a notify we could not give, so only then is the channel worth reading.
    sent_unknown: bool,
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
            looked_up: None,
            sent_unknown: false,
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
            self.looked_up = None;
            self.sent_unknown = false;
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

    /// True when messages we sent wait unread in the channel to the peer: it may sleep on them
    /// and needs our notify, so its pid is worth looking up.
    pub fn awaits_reader(&mut self) -> bool {
        matches!(self.to.free_slots(), Ok(free) if free < self.to.capacity())
    }

    /// Sends what fits of `msgs`; returns how many. A refusal other than a full ring is counted
    /// in `errors` and logged at powers of two.
    pub fn send(&mut self, msgs: &[ChanMessage], errors: &mut u64) -> usize {
        match self.to.send_batch(msgs) {
            Ok(n) => {
                self.sent_unknown |= n > 0 && self.pid == 0;
                n
            }
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

/// Looks the peers of a transport server up: ip every round while it is unknown (and every
/// `every_ns` otherwise, for `last_check`); an application not known, at once when it `spoke`
/// this round (it waits for our notify), and when messages we sent it wait unread
/// ([`Link::awaits_reader`]): at the first round they do, then at most every `every_ns` while
/// the lookup fails. A known peer keeps its pid until a restart (a new epoch on either channel)
/// forgets it. An application that neither spoke nor has anything from us needs no notify: an
/// application started on demand may never run, and looking it up would be a system call every
/// period.
pub fn refresh_peers(
    ip: &mut Link,
    apps: &mut [Link],
    spoke: &[bool],
    now: u64,
    last_check: &mut u64,
    every_ns: u64,
) {
    let due = now.saturating_sub(*last_check) >= every_ns || ip.pid == 0;
    if due {
        *last_check = now;
        if ip.pid == 0 {
            ip.find_peer();
        }
    }
    for (i, l) in apps.iter_mut().enumerate() {
        if l.pid != 0 {
            continue;
        }
        let spoke = spoke.get(i).copied().unwrap_or(false);
        let since = l.looked_up.map(|t| now.saturating_sub(t));
        // The channel is read only after we sent something while the pid was unknown: no
        // shared-memory read per round for an application we have nothing for.
        if wants_lookup(spoke, since, every_ns, || {
            l.sent_unknown && l.awaits_reader()
        }) {
            l.looked_up = Some(now);
            l.find_peer();
        }
    }
}

/// Whether to look up an application whose pid is not known: when it spoke this round, or when
/// messages we sent it wait unread and no lookup was made `since_last` (ns ago) within
/// `every_ns`. The channel is read only when the clock allows a lookup.
fn wants_lookup(
    spoke: bool,
    since_last: Option<u64>,
    every_ns: u64,
    awaits_reader: impl FnOnce() -> bool,
) -> bool {
    spoke || (since_last.is_none_or(|d| d >= every_ns) && awaits_reader())
}

/// Answers up to `max` kernel-IPC requests waiting for us (without waiting for one), each with
/// `answer(request)`, by `ipc_reply`. True when none is left (or the receive failed), false
/// when it stopped at `max` (for [`crate::MailWatch::poll`]).
pub fn answer_requests(
    max: usize,
    mut answer: impl FnMut(&crate::Message) -> crate::Message,
) -> bool {
    for _ in 0..max {
        let mut m: crate::Message = [0; crate::abi::IPC_MSG_LEN];
        let Ok(from) = crate::ipc_recv(&mut m, Some(0)) else {
            return true;
        };
        // Fails only when the caller gave up waiting: nothing to do.
        let _ = crate::ipc_reply(from, &answer(&m));
    }
    false
}

/// What a transport server's state (udp's, tcp's) does with the messages of a round: the part
/// of the server that [`TransportLinks`] drives.
pub trait TransportCore {
    /// A message from ip.
    fn on_ip(&mut self, m: &ChanMessage);
    /// A message from application number `app`.
    fn on_app(&mut self, app: usize, m: &ChanMessage);
    /// ip restarted: what its last instance lent is dropped.
    fn ip_restarted(&mut self);
    /// Sends what waits for ip through `send` (which returns how many it took).
    fn flush_ip(&mut self, send: &mut dyn FnMut(&[ChanMessage]) -> usize);
    /// Sends what waits for application `app` through `send`.
    fn flush_app(&mut self, app: usize, send: &mut dyn FnMut(&[ChanMessage]) -> usize);
}

/// Messages read from one channel in one round.
const TRANSPORT_BATCH: usize = 32;
/// Most applications a transport server serves.
pub const TRANSPORT_MAX_APPS: usize = 16;
/// How often a transport server looks up the peers it does not know yet.
const PEER_CHECK_NS: u64 = 1_000_000_000;

/// A transport server's channels: to ip and to each application, with the round's batch, the
/// count of channel errors and the peer lookups. The round's halves are [`TransportLinks::take`]
/// (inputs) and [`TransportLinks::give`] (outputs); the server does its own work between them.
pub struct TransportLinks {
    /// The channels with ip.
    pub ip: Link,
    /// The channels with each application, in the order of the server's arguments.
    pub apps: alloc::vec::Vec<Link>,
    batch: [ChanMessage; TRANSPORT_BATCH],
    errors: u64,
    last_peer_check: u64,
}

impl TransportLinks {
    /// The links, `apps` in the server's order (at most [`TRANSPORT_MAX_APPS`]).
    pub fn new(ip: Link, apps: alloc::vec::Vec<Link>) -> Self {
        Self {
            ip,
            apps,
            batch: [ChanMessage::default(); TRANSPORT_BATCH],
            errors: 0,
            last_peer_check: 0,
        }
    }

    /// Reads a batch from ip (after a restart of ip, `core` drops what the dead instance lent
    /// first) and one from each application into `core`, then looks up the peers that need it
    /// ([`refresh_peers`]). True when a message came.
    pub fn take(&mut self, core: &mut impl TransportCore, now: u64) -> bool {
        let n = self.ip.receive(&mut self.batch, &mut self.errors);
        self.ip_restart(core);
        for m in &self.batch[..n] {
            core.on_ip(m);
        }
        let mut worked = n > 0;
        let mut spoke = [false; TRANSPORT_MAX_APPS];
        for (i, l) in self.apps.iter_mut().enumerate() {
            let n = l.receive(&mut self.batch, &mut self.errors);
            for m in &self.batch[..n] {
                core.on_app(i, m);
            }
            worked |= n > 0;
            if let Some(s) = spoke.get_mut(i) {
                *s = n > 0;
            }
        }
        refresh_peers(
            &mut self.ip,
            &mut self.apps,
            &spoke,
            now,
            &mut self.last_peer_check,
            PEER_CHECK_NS,
        );
        worked
    }

    /// Sends `core`'s outboxes: to ip (a restart of ip seen on the way is handled), then to
    /// each application.
    pub fn give(&mut self, core: &mut impl TransportCore) {
        let (ip, errors) = (&mut self.ip, &mut self.errors);
        core.flush_ip(&mut |m| ip.send(m, errors));
        self.ip_restart(core);
        for (i, l) in self.apps.iter_mut().enumerate() {
            let errors = &mut self.errors;
            core.flush_app(i, &mut |m| l.send(m, errors));
        }
    }

    fn ip_restart(&mut self, core: &mut impl TransportCore) {
        if self.ip.take_restart() {
            crate::log!("ip restarted: dropping what its last instance lent us");
            core.ip_restarted();
        }
    }

    /// The longest a server may sleep: `ns`, or 1 ms while ip is not found yet.
    pub fn sleep_ns(&self, ns: u64) -> u64 {
        if self.ip.pid == 0 {
            ns.min(1_000_000)
        } else {
            ns
        }
    }

    /// Arms every input for a sleep; true when one has a message already (do not sleep).
    pub fn arm(&mut self) -> bool {
        let mut ready = matches!(self.ip.from.arm(), Ok(true) | Err(_));
        for l in &mut self.apps {
            ready |= matches!(l.from.arm(), Ok(true) | Err(_));
        }
        ready
    }

    /// Disarms every input after a sleep.
    pub fn disarm(&mut self) {
        self.ip.from.disarm();
        for l in &mut self.apps {
            l.from.disarm();
        }
    }
}

/// Logs `prefix` and the counters that are not zero, as `name=value` words.
pub fn log_counters(prefix: &str, fields: &[(&str, u64)]) {
    let mut line = alloc::string::String::from(prefix);
    for (name, v) in fields.iter().filter(|(_, v)| *v != 0) {
        line.push_str(&alloc::format!(" {name}={v}"));
    }
    crate::log!("{line}");
}

/// Who answers the kernel-IPC requests addressed to a server (pf, ip, udp, tcp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipc {
    /// The server polls for them itself (its own process).
    Own,
    /// Someone else receives them and hands them to the server (the single layout's netstack).
    Dispatched,
}

/// [`map_pool`] for a transport server's start: a refusal is logged and becomes its reason.
pub fn server_pool(
    name: &str,
    id: u16,
    buffer_size: u32,
) -> core::result::Result<libchan::PoolView<'static>, &'static str> {
    map_pool(name, id, buffer_size).map_err(|e| {
        crate::log!("map({name}): {e}");
        "a region the server needs is not granted, or holds no buffer"
    })
}

/// [`Link::attach`] for a transport server's start: a refusal is logged and becomes its reason.
pub fn server_link(
    name: &'static str,
    from: &str,
    to: &str,
) -> core::result::Result<Link, &'static str> {
    Link::attach(name, from, to).map_err(|e| {
        crate::log!("channels {from}/{to}: {e}");
        "a channel the server needs is not granted"
    })
}

#[cfg(test)]
mod tests {
    use super::wants_lookup;

    #[test]
    fn an_unknown_application_is_looked_up_only_when_it_spoke_or_waits_for_us() {
        const SEC: u64 = 1_000_000_000;
        let never = || -> bool { panic!("the channel need not be read") };
        assert!(wants_lookup(true, None, SEC, never), "it spoke: at once");
        assert!(wants_lookup(true, Some(1), SEC, never), "it spoke: at once");
        assert!(
            wants_lookup(false, None, SEC, || true),
            "our messages wait and it was not looked up since it became unknown: at once"
        );
        assert!(
            !wants_lookup(false, Some(SEC - 1), SEC, never),
            "looked up within the period: not again"
        );
        assert!(
            wants_lookup(false, Some(SEC), SEC, || true),
            "the period passed, and our messages wait"
        );
        assert!(
            !wants_lookup(false, None, SEC, || false),
            "nothing waits for it (an on-demand program that never ran)"
        );
        assert!(!wants_lookup(false, Some(5 * SEC), SEC, || false));
    }
}
