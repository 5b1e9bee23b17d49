//! Typed wrappers of every system call in [`axolotl_abi::nr`], re-exported at the crate root.
//!
//! Each wrapper passes only pointers to memory it borrows for the duration of the call, with the
//! length the kernel may touch, so all of them are safe to call.

use core::sync::atomic::{AtomicU32, Ordering};

use axolotl_abi::{CpuInfo, Error, FaultRecord, MapInfo, PciInfo, ProcInfo, ProcOp, nr};

use crate::Result;
use crate::msg::Message;
use crate::syscall::{syscall0, syscall1, syscall2, syscall3, syscall4};

/// Our pid, as the kernel passed it to `_start`.
static PID: AtomicU32 = AtomicU32::new(0);

/// Records the pid the kernel passed to `_start`.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_pid(pid: u32) {
    PID.store(pid, Ordering::Relaxed);
}

/// The calling process's pid, as the kernel passed it at entry.
pub fn pid() -> u32 {
    PID.load(Ordering::Relaxed)
}

/// Turns a raw result into `Ok(value)` or the error it encodes. A negative value that is no code
/// of this ABI (a kernel newer than this build) reads as [`Error::Invalid`].
fn check(ret: i64) -> Result<u64> {
    if ret >= 0 {
        Ok(ret as u64)
    } else {
        Err(Error::from_code(ret).unwrap_or(Error::Invalid))
    }
}

/// The address of `p` as a system-call argument.
fn addr<T: ?Sized>(p: *const T) -> u64 {
    p.cast::<u8>() as u64
}

/// A timeout argument: `None` is "forever" (`u64::MAX`).
fn timeout_arg(timeout_ns: Option<u64>) -> u64 {
    timeout_ns.unwrap_or(u64::MAX)
}

/// Writes one line to the kernel log; the kernel prefixes it with our name.
pub fn log(line: &str) -> Result<()> {
    log_bytes(line.as_bytes())
}

/// [`log`] for bytes that may not be UTF-8.
pub fn log_bytes(line: &[u8]) -> Result<()> {
    // Safety: the kernel only reads `line.len()` bytes from `line`, which we borrow.
    check(unsafe { syscall2(nr::LOG, addr(line.as_ptr()), line.len() as u64) }).map(drop)
}

/// Ends the process with `code`.
pub fn exit(code: i32) -> ! {
    loop {
        // Safety: EXIT takes no pointer. It does not return; should it ever, we ask again.
        unsafe { syscall1(nr::EXIT, code as i64 as u64) };
    }
}

/// Gives the CPU to another ready process on the same CPU, if there is one.
pub fn yield_now() {
    // Safety: YIELD takes no argument. It cannot fail.
    unsafe { syscall0(nr::YIELD) };
}

/// Why [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Someone called [`notify`] on us (possibly before the call).
    Notified,
    /// The timeout passed.
    TimedOut,
}

/// Sleeps until notified or until `timeout_ns` nanoseconds passed (`None`: no timeout).
pub fn wait(timeout_ns: Option<u64>) -> Result<WaitResult> {
    // Safety: WAIT takes no pointer.
    let r = check(unsafe { syscall1(nr::WAIT, timeout_arg(timeout_ns)) })?;
    Ok(if r as i64 == axolotl_abi::WAIT_TIMEOUT {
        WaitResult::TimedOut
    } else {
        WaitResult::Notified
    })
}

/// Sleeps for at least `ns` nanoseconds, whatever notifications arrive meanwhile.
pub fn sleep_ns(ns: u64) {
    let deadline = time_ns().saturating_add(ns);
    loop {
        let now = time_ns();
        if now >= deadline {
            return;
        }
        if wait(Some(deadline - now)).is_err() {
            yield_now();
        }
    }
}

/// Wakes `pid` from [`wait`], or makes its next `wait` return at once.
pub fn notify(pid: u32) -> Result<()> {
    // Safety: NOTIFY takes no pointer.
    check(unsafe { syscall1(nr::NOTIFY, pid as u64) }).map(drop)
}

/// The TSC's frequency from `CLOCK_HZ` (0: not asked yet; `u64::MAX`: the kernel has none, so
/// every reading is a `TIME` call).
static CLOCK_HZ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Nanoseconds since boot: `rdtsc` scaled by the frequency the kernel calibrated (asked once),
/// the same clock as the kernel's `TIME` without a system call per reading (a server's loop
/// reads it every round).
pub fn time_ns() -> u64 {
    use core::sync::atomic::Ordering::Relaxed;
    let mut hz = CLOCK_HZ.load(Relaxed);
    if hz == 0 {
        // Safety: CLOCK_HZ takes no argument.
        let v = unsafe { syscall0(nr::CLOCK_HZ) };
        hz = if v > 0 { v as u64 } else { u64::MAX };
        CLOCK_HZ.store(hz, Relaxed);
    }
    if hz == u64::MAX {
        // Safety: TIME takes no argument.
        let t = unsafe { syscall0(nr::TIME) };
        return t.max(0) as u64;
    }
    // Safety: RDTSC has no side effects; the kernel leaves CR4.TSD clear, so ring 3 may run it.
    let ticks = unsafe { core::arch::x86_64::_rdtsc() };
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Maps the region or device `name` granted to us by the manifest. The mapping lasts as long as
/// the process; [`MapInfo::addr`] is where it starts.
pub fn map(name: &str) -> Result<MapInfo> {
    let mut info = MapInfo::default();
    // Safety: the kernel reads `name.len()` bytes of `name` and writes one `MapInfo` to `info`,
    // both borrowed for the call; the pages it maps lie in the map area, outside anything Rust
    // owns.
    let va = check(unsafe {
        syscall3(
            nr::MAP,
            addr(name.as_ptr()),
            name.len() as u64,
            addr(&mut info as *mut MapInfo),
        )
    })?;
    info.addr = va;
    Ok(info)
}

/// Bytes typed on the console, without blocking: `Ok(0)` when there are none. Needs the
/// `console` grant.
pub fn console_read(buf: &mut [u8]) -> Result<usize> {
    // Safety: the kernel writes at most `buf.len()` bytes to `buf`, which we borrow mutably.
    let n = check(unsafe { syscall2(nr::CONSOLE_READ, addr(buf.as_mut_ptr()), buf.len() as u64) })?;
    Ok((n as usize).min(buf.len()))
}

/// Writes raw bytes to the console; returns how many were taken. Needs the `console` grant.
pub fn console_write(bytes: &[u8]) -> Result<usize> {
    // Safety: the kernel only reads `bytes.len()` bytes from `bytes`, which we borrow.
    let n =
        check(unsafe { syscall2(nr::CONSOLE_WRITE, addr(bytes.as_ptr()), bytes.len() as u64) })?;
    Ok((n as usize).min(bytes.len()))
}

/// Writes all of `bytes` to the console (several calls if the kernel takes them in parts).
pub fn console_write_all(mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        match console_write(bytes)? {
            0 => return Err(Error::Busy),
            n => bytes = &bytes[n..],
        }
    }
    Ok(())
}

/// The process in slot `slot`; [`Error::NotFound`] past the last slot. An empty slot gives a
/// record with pid 0.
pub fn proc_info(slot: u32) -> Result<ProcInfo> {
    let mut info = ProcInfo::empty();
    // Safety: the kernel writes one `ProcInfo` to `info`, which we borrow mutably.
    check(unsafe { syscall2(nr::PROC_INFO, slot as u64, addr(&mut info as *mut ProcInfo)) })?;
    Ok(info)
}

/// The counters of CPU `cpu`; [`Error::NotFound`] past the last CPU.
pub fn cpu_info(cpu: u32) -> Result<CpuInfo> {
    let mut info = CpuInfo::default();
    // Safety: the kernel writes one `CpuInfo` to `info`, which we borrow mutably.
    check(unsafe { syscall2(nr::CPU_INFO, cpu as u64, addr(&mut info as *mut CpuInfo)) })?;
    Ok(info)
}

/// CPU `cpu`'s system calls by number since boot (`CPU_CALLS`).
pub fn cpu_calls(cpu: u32) -> Result<crate::abi::CpuCalls> {
    let mut calls = crate::abi::CpuCalls::default();
    // Safety: the kernel writes one `CpuCalls` to `calls`, which we borrow mutably.
    check(unsafe {
        syscall2(
            nr::CPU_CALLS,
            cpu as u64,
            addr(&mut calls as *mut crate::abi::CpuCalls),
        )
    })?;
    Ok(calls)
}

/// Our own process record.
pub fn self_info() -> Result<ProcInfo> {
    let mut info = ProcInfo::empty();
    // Safety: the kernel writes one `ProcInfo` to `info`, which we borrow mutably.
    check(unsafe { syscall1(nr::SELF_INFO, addr(&mut info as *mut ProcInfo)) })?;
    Ok(info)
}

/// Powers the machine off; `code` 0 reports success to the test runner. Needs the `power`
/// grant. Returns only when that failed: with the kernel's error, or [`Error::TimedOut`] when
/// the call succeeded but the machine was still running a second later.
pub fn poweroff(code: i32) -> Error {
    // Safety: POWEROFF takes no pointer.
    if let Err(e) = check(unsafe { syscall1(nr::POWEROFF, code as i64 as u64) }) {
        return e;
    }
    sleep_ns(1_000_000_000);
    Error::TimedOut
}

/// The servers that the single layout's `netstack` process links together (DESIGN.md §8).
pub const NETSTACK_PARTS: [&str; 4] = ["pf", "ip", "udp", "tcp"];
/// The process that is pf, ip, udp and tcp when the boot chose `layout=single`.
pub const NETSTACK: &str = "netstack";

/// The pid of the live process called `name`. When the boot chose the single network-stack
/// layout, `pf`, `ip`, `udp` and `tcp` are all the `netstack` process, so their names lead to
/// it: a client or a neighbour finds its server the same way in either layout.
pub fn lookup(name: &str) -> Result<u32> {
    let name = if NETSTACK_PARTS.contains(&name) && single_layout() {
        NETSTACK
    } else {
        name
    };
    // Safety: the kernel only reads `name.len()` bytes of `name`, which we borrow.
    let pid = check(unsafe { syscall2(nr::LOOKUP, addr(name.as_ptr()), name.len() as u64) })?;
    u32::try_from(pid).map_err(|_| Error::Invalid)
}

/// Kernel IPC: blocks until `pid` receives `msg`.
pub fn ipc_send(pid: u32, msg: &Message) -> Result<()> {
    // Safety: the kernel reads one message from `msg`, which we borrow.
    check(unsafe { syscall2(nr::IPC_SEND, pid as u64, addr(msg as *const Message)) }).map(drop)
}

/// Kernel IPC: blocks until a message arrives (or `timeout_ns` passed: [`Error::TimedOut`]),
/// stores it in `msg` and returns the sender's pid.
pub fn ipc_recv(msg: &mut Message, timeout_ns: Option<u64>) -> Result<u32> {
    // Safety: the kernel writes one message to `msg`, which we borrow mutably.
    let pid = check(unsafe {
        syscall2(
            nr::IPC_RECV,
            addr(msg as *mut Message),
            timeout_arg(timeout_ns),
        )
    })?;
    u32::try_from(pid).map_err(|_| Error::Invalid)
}

/// Kernel IPC: sends `msg` to `pid` and waits for its reply, which is stored in `reply`; one
/// trap.
pub fn ipc_call(pid: u32, msg: &Message, reply: &mut Message) -> Result<()> {
    // Safety: the kernel reads one message from `msg` and writes one to `reply`; both are
    // borrowed for the call and, being a shared and a mutable borrow, do not overlap.
    check(unsafe {
        syscall3(
            nr::IPC_CALL,
            pid as u64,
            addr(msg as *const Message),
            addr(reply as *mut Message),
        )
    })
    .map(drop)
}

/// Kernel IPC: replies `reply` to `pid` (which is waiting in [`ipc_call`]), then waits for the
/// next message, stores it in `msg` and returns its sender's pid; one trap.
pub fn ipc_reply_recv(pid: u32, reply: &Message, msg: &mut Message) -> Result<u32> {
    // Safety: the kernel reads one message from `reply` and writes one to `msg`; both are
    // borrowed for the call and do not overlap.
    let from = check(unsafe {
        syscall3(
            nr::IPC_REPLY_RECV,
            pid as u64,
            addr(reply as *const Message),
            addr(msg as *mut Message),
        )
    })?;
    u32::try_from(from).map_err(|_| Error::Invalid)
}

/// Privileged control of process `pid`. Needs the `control` grant.
pub fn proc_ctl(pid: u32, op: ProcOp) -> Result<()> {
    // Safety: PROC_CTL takes no pointer.
    check(unsafe { syscall2(nr::PROC_CTL, pid as u64, op as u64) }).map(drop)
}

/// Waits for the next user fault record (or `timeout_ns`: [`Error::TimedOut`]). Needs the
/// `control` grant.
pub fn fault_record(timeout_ns: Option<u64>) -> Result<FaultRecord> {
    let mut rec = FaultRecord::default();
    // Safety: the kernel writes one `FaultRecord` to `rec`, which we borrow mutably.
    check(unsafe {
        syscall2(
            nr::FAULT_RECORD,
            addr(&mut rec as *mut FaultRecord),
            timeout_arg(timeout_ns),
        )
    })?;
    Ok(rec)
}

/// Starts a fresh instance of the dead process `pid` (`proc_ctl` Restart) and returns the new
/// instance's pid. Needs the `control` grant; [`Error::Busy`] while `pid` still runs.
pub fn proc_restart(pid: u32) -> Result<u32> {
    // Safety: PROC_CTL takes no pointer.
    let new = check(unsafe { syscall2(nr::PROC_CTL, pid as u64, ProcOp::Restart as u64) })?;
    u32::try_from(new).map_err(|_| Error::Invalid)
}

/// Re-arms the interrupt of the granted device `name` (`nic0`...) after its cause was handled:
/// the kernel masks a level-triggered line when it fires, until this call.
pub fn irq_ack(name: &str) -> Result<()> {
    // Safety: the kernel only reads `name.len()` bytes of `name`, which we borrow.
    check(unsafe { syscall2(nr::IRQ_ACK, addr(name.as_ptr()), name.len() as u64) }).map(drop)
}

/// PCI function number `index` in the kernel's scan order; [`Error::NotFound`] past the last.
pub fn pci_info(index: u32) -> Result<PciInfo> {
    let mut info = PciInfo::default();
    // Safety: the kernel writes one `PciInfo` to `info`, which we borrow mutably.
    check(unsafe { syscall2(nr::PCI_INFO, index as u64, addr(&mut info as *mut PciInfo)) })?;
    Ok(info)
}

/// The boot's `sysconf` word, asked of the kernel once (the boot choices never change).
pub fn boot_config() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    // u64::MAX: not asked yet (no such word: the kernel sets a few low bits).
    static WORD: AtomicU64 = AtomicU64::new(u64::MAX);
    match WORD.load(Ordering::Relaxed) {
        u64::MAX => {
            let w = sysconf();
            WORD.store(w, Ordering::Relaxed);
            w
        }
        w => w,
    }
}

/// True when the boot chose the single network-stack layout (`layout=single`).
pub fn single_layout() -> bool {
    boot_config() & crate::abi::sysconf::LAYOUT_SINGLE != 0
}

/// `SYSCONF`: the boot-time choices ([`crate::abi::sysconf`] flags).
pub fn sysconf() -> u64 {
    // Safety: SYSCONF takes no arguments and touches no memory of ours.
    let v = unsafe { crate::syscall::syscall0(nr::SYSCONF) };
    if v < 0 { 0 } else { v as u64 }
}

/// `IPC_REPLY`: answers the pending `ipc_call` of `pid` without waiting for another message.
pub fn ipc_reply(pid: u32, reply: &Message) -> Result<()> {
    // Safety: the kernel reads one message from `reply`, which we borrow.
    check(unsafe { syscall2(nr::IPC_REPLY, pid as u64, addr(reply as *const Message)) }).map(drop)
}

/// `IPC_CALL_TIMEOUT`: [`ipc_call`] that gives up with [`Error::TimedOut`] after `timeout_ns`.
pub fn ipc_call_timeout(
    pid: u32,
    msg: &Message,
    reply: &mut Message,
    timeout_ns: u64,
) -> Result<()> {
    // Safety: as in `ipc_call`; the fourth argument is a plain number.
    check(unsafe {
        crate::syscall::syscall6(
            nr::IPC_CALL_TIMEOUT,
            pid as u64,
            addr(msg as *const Message),
            addr(reply as *mut Message),
            timeout_ns,
            0,
            0,
        )
    })
    .map(drop)
}

/// True when a live update of this process was asked for (`update NAME` in the shell): a
/// server that takes part exits with [`crate::abi::EXIT_UPDATE`] at its next quiet point, its
/// state kept in its regions, and a fresh instance takes over.
pub fn update_requested() -> bool {
    let page = crate::abi::layout::STATUS_PAGE as *const crate::abi::StatusPage;
    // Safety: as in `heartbeat`: our status page is mapped at STATUS_PAGE for our whole life;
    // the word is an atomic the kernel sets.
    unsafe { (*page).update.load(core::sync::atomic::Ordering::Relaxed) != 0 }
}

/// How many IPC messages the kernel ever queued for this process while it was not receiving
/// (its status page's `mail` word): reading it costs no system call.
pub fn mail_count() -> u64 {
    let page = crate::abi::layout::STATUS_PAGE as *const crate::abi::StatusPage;
    // Safety: as in `heartbeat`: our status page is mapped at STATUS_PAGE for our whole life;
    // the word is an atomic the kernel bumps.
    unsafe { (*page).mail.load(core::sync::atomic::Ordering::Acquire) }
}

/// Asks the kernel for IPC requests only when the status page's `mail` word says some were
/// queued since the last time all were taken: a server calls [`MailWatch::poll`] every round
/// at the cost of a memory read.
#[derive(Debug, Default)]
pub struct MailWatch {
    /// The mail count when the requests were last all taken (`None`: never, so look once).
    seen: Option<u64>,
}

impl MailWatch {
    /// Calls `take` when requests may be waiting. `take` receives them (without waiting for
    /// one) and returns true when it found none left, or gave up on an error; false when it
    /// stopped at its limit, so the next poll calls it again.
    pub fn poll(&mut self, take: impl FnOnce() -> bool) {
        self.poll_at(mail_count(), take);
    }

    /// [`MailWatch::poll`] with the mail count read.
    pub fn poll_at(&mut self, mail: u64, take: impl FnOnce() -> bool) {
        // The count is read before `take` receives: a message queued meanwhile bumps it past
        // `mail`, so the next poll looks again even when `take` got that message already.
        if self.seen != Some(mail) && take() {
            self.seen = Some(mail);
        }
    }
}

/// True when the boot chose `idle=poll` (`sysconf::IDLE_POLL`).
pub fn idle_poll() -> bool {
    boot_config() & crate::abi::sysconf::IDLE_POLL != 0
}

/// How long a server polls for work before it sleeps: a number of empty rounds, or, under
/// `idle=poll` on a CPU of its own, [`crate::abi::IDLE_POLL_NS`] spent polling without work. A
/// sleep and the wake-up that ends it are a system call each; polling costs none but keeps the
/// CPU busy.
///
/// By time, only the time spent polling counts: a step between two empty rounds longer than
/// [`crate::abi::IDLE_POLL_STEP_NS`] means the CPU was taken from us (an interrupt, or the host
/// running something else in place of an emulated CPU), and we were not looking for work then.
/// On a host with fewer cores than busy emulated CPUs, 20 ms of wall time may hold only a few
/// rounds: the server would sleep just as the work it waits for comes.
#[derive(Debug, Clone, Copy)]
pub struct IdlePolicy {
    /// Empty rounds before a sleep (by rounds).
    rounds: u32,
    /// Time spent polling without work before a sleep (by time, when not 0).
    poll_ns: u64,
    empty: u32,
    /// Time spent in empty rounds so far (by time).
    idle_ns: u64,
    /// When the last empty round was (by time).
    last_empty: Option<u64>,
}

impl IdlePolicy {
    /// `rounds` empty rounds, or the boot's polling time on a CPU of our own under `idle=poll`.
    pub fn new(rounds: u32) -> Self {
        let dedicated = || self_info().is_ok_and(|p| p.dedicated != 0);
        let poll_ns = if idle_poll() && dedicated() {
            crate::abi::IDLE_POLL_NS
        } else {
            0
        };
        Self::with(rounds, poll_ns)
    }

    /// By time when `poll_ns` is not 0, else by `rounds`.
    pub const fn with(rounds: u32, poll_ns: u64) -> Self {
        Self {
            rounds,
            poll_ns,
            empty: 0,
            idle_ns: 0,
            last_empty: None,
        }
    }

    /// The polling time when it goes by time.
    pub fn poll_ns(&self) -> Option<u64> {
        (self.poll_ns > 0).then_some(self.poll_ns)
    }

    /// The caller did some work: idleness starts over.
    pub fn worked(&mut self) {
        self.empty = 0;
        self.idle_ns = 0;
        self.last_empty = None;
    }

    /// The caller found nothing to do: true (after one spin-loop hint) while it should poll
    /// again, false when it should sleep now (and idleness starts over for after the sleep).
    pub fn keep_polling(&mut self) -> bool {
        let now = if self.poll_ns > 0 { time_ns() } else { 0 };
        let poll = self.keep_polling_at(now);
        if poll {
            core::hint::spin_loop();
        }
        poll
    }

    /// [`IdlePolicy::keep_polling`] at time `now` (read only when it goes by time).
    pub fn keep_polling_at(&mut self, now: u64) -> bool {
        let poll = if self.poll_ns > 0 {
            self.idle_ns += polled_step(self.last_empty.replace(now), now);
            self.idle_ns < self.poll_ns
        } else {
            self.empty += 1;
            self.empty < self.rounds
        };
        if !poll {
            self.worked();
        }
        poll
    }
}

/// The time from the poll at `last` to the one at `now` that counts as spent polling: all of
/// it, unless it is longer than [`crate::abi::IDLE_POLL_STEP_NS`] (the CPU was taken from us
/// meanwhile: none of it counts).
pub fn polled_step(last: Option<u64>, now: u64) -> u64 {
    crate::abi::polled_step_within(last, now, crate::abi::IDLE_POLL_STEP_NS)
}

/// Bumps this process's heartbeat in its status page, which the reincarnation server watches to
/// tell a hung process from a live one. A process that calls it once has opted in: from then on
/// it must call it at least every 500 ms while it can run, or rs takes it for hung after a
/// second and restarts it. Asleep in a wait with a timeout, it may go longer: rs does not count
/// that time (wait with a timeout rather than forever).
pub fn heartbeat() {
    let page = crate::abi::layout::STATUS_PAGE as *const crate::abi::StatusPage;
    // Safety: the kernel maps this process's status page at STATUS_PAGE, writable, before the
    // process starts, and never unmaps it; the heartbeat is an atomic.
    unsafe {
        (*page)
            .heartbeat
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed)
    };
}

/// `STATUS_MAP`: the status page of process slot `slot`, read-only (needs `control`).
pub fn status_map(slot: u32) -> Result<&'static crate::abi::StatusPage> {
    let mut info = MapInfo::default();
    // Safety: the kernel writes one MapInfo to `info`, which we borrow mutably.
    let va =
        check(unsafe { syscall2(nr::STATUS_MAP, slot as u64, addr(&mut info as *mut MapInfo)) })?;
    // Safety: the kernel mapped one readable page at `va` for the rest of our life; the page
    // holds a StatusPage of atomics.
    Ok(unsafe { &*(va as u64 as *const crate::abi::StatusPage) })
}

/// `PROC_POLICY`: the manifest's restart policy of slot `slot`.
pub fn proc_policy(slot: u32) -> Result<crate::abi::RestartPolicy> {
    let mut p = crate::abi::RestartPolicy::default();
    // Safety: the kernel writes one RestartPolicy to `p`, which we borrow mutably.
    check(unsafe {
        syscall2(
            nr::PROC_POLICY,
            slot as u64,
            addr(&mut p as *mut crate::abi::RestartPolicy),
        )
    })?;
    Ok(p)
}

/// Most process slots [`proc_slot`] and [`proc_wait`] look through (the kernel has fewer).
const MAX_SLOTS: u32 = 256;
/// How often [`proc_wait`] looks at the process.
const WAIT_POLL_NS: u64 = 10_000_000;

/// `PROC_START`: starts a fresh instance of the manifest process `name`, which must not be
/// running (never started, or exited, faulted or killed), and returns its pid. `args` (at most
/// [`crate::abi::ARGS_MAX`] bytes) replaces the manifest's argument string for this instance;
/// `""` keeps the manifest's. Everything else (binary, CPU, grants, regions, IPC) is the
/// manifest's. Needs the `control` grant.
///
/// Errors: [`Error::NotFound`] no process `name` in the manifest, [`Error::Busy`] an instance is
/// running, [`Error::Denied`] no `control` grant, [`Error::Invalid`] `args` too long,
/// [`Error::NoMemory`].
pub fn proc_start(name: &str, args: &str) -> Result<u32> {
    // Safety: the kernel only reads `name.len()` bytes of `name` and `args.len()` bytes of
    // `args`, both borrowed for the call.
    let pid = check(unsafe {
        syscall4(
            nr::PROC_START,
            addr(name.as_ptr()),
            name.len() as u64,
            addr(args.as_ptr()),
            args.len() as u64,
        )
    })?;
    u32::try_from(pid).map_err(|_| Error::Invalid)
}

/// The slot of the manifest process `name`, started or not; [`Error::NotFound`] when the
/// manifest has no such process.
pub fn proc_slot(name: &str) -> Result<u32> {
    for slot in 0..MAX_SLOTS {
        match proc_info(slot) {
            Ok(info) if info.name() == name => return Ok(slot),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Err(Error::NotFound)
}

/// The slot whose current instance is `pid`.
fn slot_of_pid(pid: u32) -> Result<u32> {
    if pid == 0 {
        return Err(Error::NotFound);
    }
    for slot in 0..MAX_SLOTS {
        if proc_info(slot)?.pid == pid {
            return Ok(slot);
        }
    }
    Err(Error::NotFound)
}

/// Waits until process `pid` has ended and returns its last record: its `state`
/// ([`crate::ProcState::Exited`], `Faulted` or `Killed`) and `exit_code` (the exit code, the
/// fault vector, or -9). Looks every 10 ms, sleeping in between; [`Error::TimedOut`] when
/// `timeout_ns` (`None`: no limit) passed first. [`Error::NotFound`] when no slot holds `pid`:
/// it never existed, or its slot was started again (by rs, or another `proc_start`) before its
/// end was seen.
pub fn proc_wait(pid: u32, timeout_ns: Option<u64>) -> Result<ProcInfo> {
    let deadline = timeout_ns.map(|t| time_ns().saturating_add(t));
    let slot = slot_of_pid(pid)?;
    loop {
        let info = proc_info(slot)?;
        if info.pid != pid {
            return Err(Error::NotFound);
        }
        if crate::ProcState::from_u8(info.state).is_some_and(crate::ProcState::is_down) {
            return Ok(info);
        }
        let now = time_ns();
        let pause = match deadline {
            Some(d) if now >= d => return Err(Error::TimedOut),
            Some(d) => WAIT_POLL_NS.min(d - now),
            None => WAIT_POLL_NS,
        };
        sleep_ns(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::{IdlePolicy, MailWatch};

    #[test]
    fn idle_polling_goes_by_rounds_or_by_time() {
        // By rounds: 3 empty rounds poll, the 4th sleeps; work starts the count over.
        let mut p = IdlePolicy::with(4, 0);
        assert_eq!(p.poll_ns(), None);
        assert!((0..3).all(|_| p.keep_polling_at(0)));
        assert!(!p.keep_polling_at(0));
        assert!(p.keep_polling_at(0), "after the sleep it counts again");
        p.worked();
        assert!((0..3).all(|_| p.keep_polling_at(0)));
        // None: sleep at the first empty round.
        assert!(!IdlePolicy::with(0, 0).keep_polling_at(0));
        // By time: polls until 20 ms after the first empty round, whatever the count.
        let mut p = IdlePolicy::with(4, 20);
        assert_eq!(p.poll_ns(), Some(20));
        assert!((0..100).all(|_| p.keep_polling_at(100)));
        assert!(p.keep_polling_at(119));
        assert!(!p.keep_polling_at(120));
        assert!(
            p.keep_polling_at(500),
            "after the sleep the time starts again"
        );
        p.worked();
        assert!(p.keep_polling_at(600) && p.keep_polling_at(619) && !p.keep_polling_at(620));
    }

    #[test]
    fn only_time_spent_polling_counts_towards_a_sleep() {
        use crate::abi::IDLE_POLL_STEP_NS as STEP;
        let ms = 1_000_000;
        // Rounds a step apart count; a gap longer than a step (the CPU was elsewhere) does not.
        let mut p = IdlePolicy::with(4, 20 * ms);
        let mut t = 0;
        assert!(p.keep_polling_at(t));
        for _ in 0..10 {
            t += STEP;
            assert!(p.keep_polling_at(t));
        }
        // 10 steps polled; 30 ms away from the CPU add nothing.
        t += 30 * ms;
        assert!(p.keep_polling_at(t), "the gap did not count");
        // Polling resumes: it sleeps once 20 ms of polling have passed in all.
        let left = 20 * ms - 10 * STEP;
        let mut polled = 0;
        while polled + STEP < left {
            t += STEP;
            polled += STEP;
            assert!(p.keep_polling_at(t), "{polled} ns of {left} polled");
        }
        t += left - polled;
        assert!(!p.keep_polling_at(t), "20 ms polled in all");
        assert_eq!(super::polled_step(None, 5), 0);
        assert_eq!(super::polled_step(Some(5), 5 + STEP), STEP);
        assert_eq!(super::polled_step(Some(5), 6 + STEP), 0);
    }

    #[test]
    fn mail_is_taken_once_per_count_and_again_after_a_limit() {
        let mut w = MailWatch::default();
        let mut calls = 0;
        // Never looked: once, even at count 0 (requests queued before we started).
        w.poll_at(0, || {
            calls += 1;
            true
        });
        w.poll_at(0, || unreachable!("nothing new"));
        // A request came; `take` stopped at its limit: looked again at the same count.
        w.poll_at(1, || {
            calls += 1;
            false
        });
        w.poll_at(1, || {
            calls += 1;
            true
        });
        w.poll_at(1, || unreachable!("all taken"));
        assert_eq!(calls, 3);
        // Two more came: one look takes both.
        w.poll_at(3, || {
            calls += 1;
            true
        });
        assert_eq!(calls, 4);
    }
}
