//! The system-call interface between Axolotl's kernel and user programs: call numbers, the
//! structures passed by pointer, and error codes. Both sides link this crate, so they cannot
//! disagree on a number or a layout. Every structure is `#[repr(C)]` with its size asserted.
//!
//! Calling convention (x86_64 `syscall`): number in `rax`; arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; result in `rax` as an `i64` — zero or positive on success, a negated
//! [`Error`] code on failure. `rcx` and `r11` are clobbered, everything else is preserved.
#![no_std]

/// System-call numbers.
pub mod nr {
    /// `log(ptr, len)`: a line to the kernel log, prefixed with the caller's name.
    pub const LOG: u64 = 0;
    /// `exit(code)`: ends the calling process. Does not return.
    pub const EXIT: u64 = 1;
    /// `yield()`: gives up the CPU to another ready process on the same CPU.
    pub const YIELD: u64 = 2;
    /// `wait(timeout_ns)`: sleeps until notified or until `timeout_ns` passed (`u64::MAX` =
    /// forever). Returns [`super::WAIT_NOTIFIED`] or [`super::WAIT_TIMEOUT`]. A notification that
    /// arrived before the call makes it return at once.
    pub const WAIT: u64 = 3;
    /// `notify(pid)`: wakes `pid` from `wait` (or makes its next `wait` return at once). Only to
    /// processes the caller shares a region or an IPC grant with.
    pub const NOTIFY: u64 = 4;
    /// `time()`: nanoseconds since boot.
    pub const TIME: u64 = 5;
    /// `map(name_ptr, name_len, info_ptr)`: maps the region or device `name`, if the manifest
    /// grants it to the caller; fills a [`super::MapInfo`] and returns the virtual address. Mapping
    /// the same name again returns the same mapping.
    pub const MAP: u64 = 6;
    /// `console_read(buf, len)`: bytes typed on the console, without blocking (0 when none).
    /// Needs the `console` grant.
    pub const CONSOLE_READ: u64 = 7;
    /// `console_write(ptr, len)`: raw bytes to the console. Needs the `console` grant.
    pub const CONSOLE_WRITE: u64 = 8;
    /// `proc_info(slot, info_ptr)`: fills a [`super::ProcInfo`] for process slot `slot`;
    /// [`super::Error::NotFound`] past the last slot.
    pub const PROC_INFO: u64 = 9;
    /// `cpu_info(cpu, info_ptr)`: fills a [`super::CpuInfo`]; [`super::Error::NotFound`] past the
    /// last CPU.
    pub const CPU_INFO: u64 = 10;
    /// `poweroff(code)`: ends the machine; code 0 reports success to the test runner. Needs the
    /// `power` grant.
    pub const POWEROFF: u64 = 11;
    /// `lookup(name_ptr, name_len)`: the pid of the live process called `name`.
    pub const LOOKUP: u64 = 12;
    /// `ipc_send(pid, msg_ptr)`: kernel IPC — blocks until `pid` receives the 64-byte message.
    pub const IPC_SEND: u64 = 13;
    /// `ipc_recv(msg_ptr, timeout_ns)`: blocks until a message arrives; returns the sender's pid.
    pub const IPC_RECV: u64 = 14;
    /// `ipc_call(pid, msg_ptr, reply_ptr)`: sends and waits for the receiver's reply, one trap.
    pub const IPC_CALL: u64 = 15;
    /// `ipc_reply_recv(pid, reply_ptr, msg_ptr)`: replies to `pid` and waits for the next message,
    /// one trap; returns the next sender's pid.
    pub const IPC_REPLY_RECV: u64 = 16;
    /// `proc_ctl(pid, op)`: privileged control of another process, see [`super::ProcOp`]. Needs
    /// the `control` grant.
    pub const PROC_CTL: u64 = 17;
    /// `fault_record(record_ptr, timeout_ns)`: waits for the next user fault record (a
    /// [`super::FaultRecord`]). Needs the `control` grant.
    pub const FAULT_RECORD: u64 = 18;
    /// `self_info(info_ptr)`: the caller's own [`super::ProcInfo`].
    pub const SELF_INFO: u64 = 19;
    /// `irq_ack(name_ptr, name_len)`: re-arms the interrupt of the granted device `name` after the
    /// caller handled its cause.
    pub const IRQ_ACK: u64 = 20;
    /// `pci_info(index, info_ptr)`: fills a [`super::PciInfo`]; [`super::Error::NotFound`] past
    /// the last PCI function.
    pub const PCI_INFO: u64 = 21;
    /// `sysconf()`: the boot-time choices as [`super::sysconf`] flags.
    pub const SYSCONF: u64 = 22;
    /// `ipc_reply(pid, reply_ptr)`: answers the `ipc_call` of `pid` without waiting for the next
    /// message (for servers whose idle wait is not `ipc_recv`).
    pub const IPC_REPLY: u64 = 23;
    /// `ipc_call_timeout(pid, msg_ptr, reply_ptr, timeout_ns)`: `ipc_call` that gives up with
    /// [`super::Error::TimedOut`] when no reply came in time (a hung server cannot hang its
    /// client); a late reply is refused.
    pub const IPC_CALL_TIMEOUT: u64 = 24;
    /// `status_map(slot, info_ptr)`: maps the status page of process slot `slot` read-only into
    /// the caller (a [`super::StatusPage`]; needs the `control` grant) and fills a
    /// [`super::MapInfo`]. Every process has its own status page mapped writable at
    /// [`super::layout::STATUS_PAGE`] from its start; the page outlives restarts.
    pub const STATUS_MAP: u64 = 25;
    /// `proc_policy(slot, policy_ptr)`: the manifest's [`super::RestartPolicy`] of slot `slot`.
    pub const PROC_POLICY: u64 = 26;
    /// `proc_start(name_ptr, name_len, args_ptr, args_len)`: starts a fresh instance of the
    /// manifest process `name`, which must not be running (never started, or exited, faulted or
    /// killed), in its manifest slot with its manifest grants, regions, IPC and CPU (its channels
    /// get a new epoch when an earlier instance ran). `args` (UTF-8, at most
    /// [`super::ARGS_MAX`] bytes) replaces the manifest's `args` for this instance, and for the
    /// restarts of it; an empty `args` keeps the manifest's. Returns the new pid. Needs the
    /// `control` grant. Errors: [`super::Error::NotFound`] no process of that name in the
    /// manifest, [`super::Error::Busy`] an instance of it is alive, [`super::Error::Denied`] no
    /// `control` grant, [`super::Error::BadAddress`] a pointer outside the caller's memory,
    /// [`super::Error::Invalid`] `args` too long or not UTF-8, [`super::Error::NoMemory`].
    /// Its end shows in `proc_info` of its slot: the state and the exit code.
    pub const PROC_START: u64 = 27;
    /// `clock_hz()`: the frequency of the TSC the kernel's [`TIME`] counts with, in Hz (0 before
    /// calibration). With it a program reads the time with `rdtsc` itself, the same nanoseconds
    /// as `TIME` (`ticks * 10^9 / hz`), without a system call per reading.
    pub const CLOCK_HZ: u64 = 28;
    /// `chan_gate(op | count << 8, region_addr, messages, fault)`: the kernel-IPC baseline
    /// (`--ipc kernel`): the kernel sends, receives, arms or disarms on a channel region the
    /// caller mapped, with an end of its own for the caller ([`crate::gate`]).
    pub const CHAN_GATE: u64 = 29;
    /// `cpu_calls(index, out)`: CPU `index`'s system calls counted by number, a [`crate::CpuCalls`]
    /// written to `out`; [`super::Error::NotFound`] past the last CPU.
    pub const CPU_CALLS: u64 = 30;

    /// How many system call numbers [`crate::CpuCalls`] counts one by one; a call with a
    /// higher number (which the kernel refuses) counts at `CALLS - 1`.
    pub const CALLS: usize = 32;

    /// The short name of system call `nr` (`"other"` for numbers without one).
    pub const fn name(nr: usize) -> &'static str {
        const NAMES: [&str; CALLS] = [
            "log",
            "exit",
            "yield",
            "wait",
            "notify",
            "time",
            "map",
            "console_read",
            "console_write",
            "proc_info",
            "cpu_info",
            "poweroff",
            "lookup",
            "ipc_send",
            "ipc_recv",
            "ipc_call",
            "ipc_reply_recv",
            "proc_ctl",
            "fault_record",
            "self_info",
            "irq_ack",
            "pci_info",
            "sysconf",
            "ipc_reply",
            "ipc_call_timeout",
            "status_map",
            "proc_policy",
            "proc_start",
            "clock_hz",
            "chan_gate",
            "cpu_calls",
            "other",
        ];
        if nr < CALLS { NAMES[nr] } else { "other" }
    }
}

/// Longest argument string a process can be given, in bytes (it is copied to the top of the
/// new process's stack).
pub const ARGS_MAX: usize = 255;

/// Flags returned by `sysconf`.
pub mod sysconf {
    /// Servers talk over kernel IPC instead of channels (`cargo xtask run --ipc kernel`).
    pub const IPC_KERNEL: u64 = 1 << 0;
    /// The network stack runs as one process (`cargo xtask run --layout single`).
    pub const LAYOUT_SINGLE: u64 = 1 << 1;
    /// `idle=poll`: servers on CPUs of their own poll through idle gaps of up to
    /// [`crate::IDLE_POLL_NS`] before they sleep, instead of a few hundred empty rounds.
    pub const IDLE_POLL: u64 = 1 << 2;
}

/// The kernel-IPC baseline's system call, `CHAN_GATE` (DESIGN.md §8): every message through a
/// trap, over the same channel regions.
pub mod gate {
    /// Publish up to `count` messages read from `messages`; returns `n | first_seq << 16`.
    pub const SEND: u64 = 0;
    /// Take up to `count` messages into `messages`; returns how many.
    pub const RECV: u64 = 1;
    /// Arm the consumer end for a sleep; returns 1 when a message is ready (not armed), else 0.
    pub const ARM: u64 = 2;
    /// Clear the consumer end's `sleeping` flag; returns 0.
    pub const DISARM: u64 = 3;
    /// Most messages one call moves.
    pub const MAX_BATCH: usize = 32;
    /// Bit of the return value that says the channel refused: a [`ChanFault`] was written.
    pub const FAULT: u64 = 1 << 62;
    /// [`ChanFault::kind`]: no room (send).
    pub const FULL: u32 = 0;
    /// [`ChanFault::kind`]: the peer restarted; the epoch fields are set.
    pub const EPOCH: u32 = 1;
    /// [`ChanFault::kind`]: the header's magic was overwritten; `found` is set.
    pub const BAD_MAGIC: u32 = 2;
    /// [`ChanFault::kind`]: the peer's index jumped; `found` is set.
    pub const INDEX_JUMP: u32 = 3;

    /// Why a channel refused an operation the kernel made for the caller.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct ChanFault {
        /// [`FULL`], [`EPOCH`], [`BAD_MAGIC`] or [`INDEX_JUMP`].
        pub kind: u32,
        /// The epoch change (kind [`EPOCH`]).
        pub old_epoch: u32,
        /// See `old_epoch`.
        pub new_epoch: u32,
        /// First sequence number concerned (kind [`EPOCH`]).
        pub first: u32,
        /// How many (kind [`EPOCH`]).
        pub count: u32,
        /// Padding.
        pub _pad: u32,
        /// The value found (kinds [`BAD_MAGIC`], [`INDEX_JUMP`]).
        pub found: u64,
    }
}

/// `wait` returned because of a notification.
pub const WAIT_NOTIFIED: i64 = 0;
/// `wait` returned because its timeout passed.
pub const WAIT_TIMEOUT: i64 = 1;

/// Why a system call failed (returned negated in `rax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// No such system call.
    NoSys = 1,
    /// A pointer argument is not in the caller's user memory.
    BadAddress = 2,
    /// An argument is out of range or malformed.
    Invalid = 3,
    /// The manifest does not grant this to the caller.
    Denied = 4,
    /// No such process, region, slot or CPU.
    NotFound = 5,
    /// The kernel ran out of memory for the request.
    NoMemory = 6,
    /// The peer died or the operation timed out.
    Gone = 7,
    /// The operation timed out.
    TimedOut = 8,
    /// Already done (e.g. a region already mapped).
    Busy = 9,
}

impl Error {
    /// The error for a negated code, if it is one.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match -code {
            1 => Self::NoSys,
            2 => Self::BadAddress,
            3 => Self::Invalid,
            4 => Self::Denied,
            5 => Self::NotFound,
            6 => Self::NoMemory,
            7 => Self::Gone,
            8 => Self::TimedOut,
            9 => Self::Busy,
            _ => return None,
        })
    }

    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSys => "no such system call",
            Self::BadAddress => "bad address",
            Self::Invalid => "invalid argument",
            Self::Denied => "not granted by the manifest",
            Self::NotFound => "not found",
            Self::NoMemory => "out of memory",
            Self::Gone => "peer gone",
            Self::TimedOut => "timed out",
            Self::Busy => "busy",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest process or region name, in bytes.
pub const NAME_LEN: usize = 16;

/// What `map` mapped.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct MapInfo {
    /// Virtual address in the caller.
    pub addr: u64,
    /// Length in bytes (a multiple of 4096).
    pub len: u64,
    /// Physical address of the first byte (regions are physically contiguous; for DMA).
    pub phys: u64,
    /// 0 = shared-memory region, 1 = device registers.
    pub kind: u64,
}
const _: () = assert!(core::mem::size_of::<MapInfo>() == 32);

/// Scheduling state of a process, as `ps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProcState {
    /// On a CPU now.
    Running = 0,
    /// Waiting for a CPU.
    Ready = 1,
    /// Sleeping in `wait` or IPC.
    Blocked = 2,
    /// Stopped by a CPU fault; a fault record was kept.
    Faulted = 3,
    /// Exited.
    Exited = 4,
    /// Kept from running (`hang`).
    Stopped = 5,
    /// Killed.
    Killed = 6,
    /// Declared in the manifest but never started (a process started on demand, or one that
    /// could not be started at boot); its record has pid 0.
    NotStarted = 7,
    /// Declared for the other network-stack layout than the one this boot runs (the manifest's
    /// `layout`): neither placed nor started, and it cannot be; `ps` leaves it out.
    OtherLayout = 8,
}

impl ProcState {
    /// The state for a raw byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Running,
            1 => Self::Ready,
            2 => Self::Blocked,
            3 => Self::Faulted,
            4 => Self::Exited,
            5 => Self::Stopped,
            6 => Self::Killed,
            7 => Self::NotStarted,
            8 => Self::OtherLayout,
            _ => return None,
        })
    }

    /// True for a process that is not alive: exited, faulted, killed, or never started. Such a
    /// slot may be started again (`proc_start`, or `proc_ctl` Restart for a dead instance).
    pub fn is_down(self) -> bool {
        matches!(
            self,
            Self::Exited | Self::Faulted | Self::Killed | Self::NotStarted
        )
    }

    /// The name `ps` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ready => "ready",
            Self::Blocked => "blocked",
            Self::Faulted => "faulted",
            Self::Exited => "exited",
            Self::Stopped => "stopped",
            Self::Killed => "killed",
            Self::NotStarted => "unstarted",
            Self::OtherLayout => "absent",
        }
    }
}

/// One process slot, for `ps`: the slot's current (or last) instance, or, for a slot never
/// started, its manifest name and CPU with pid 0 and [`ProcState::NotStarted`].
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct ProcInfo {
    /// Process id (unique for the boot; a restart gets a new one); 0 for a slot never started.
    pub pid: u32,
    /// CPU the process runs on.
    pub cpu: u32,
    /// Name from the manifest, NUL padded.
    pub name: [u8; NAME_LEN],
    /// A [`ProcState`] as a byte.
    pub state: u8,
    /// 1 when the process has its CPU to itself.
    pub dedicated: u8,
    /// 1 when the process is [`ProcState::Blocked`] in a `wait` or IPC call with a deadline:
    /// asleep, and sure to run again by then (rs does not count the time towards a hang).
    pub timed_wait: u8,
    /// Padding.
    pub _pad: u8,
    /// Times the process was restarted.
    pub restarts: u32,
    /// System calls it made.
    pub syscalls: u64,
    /// For a dead instance: the exit code of an exited one, the fault vector of a faulted one,
    /// -9 for a killed one; 0 while it runs.
    pub exit_code: i64,
}
const _: () = assert!(core::mem::size_of::<ProcInfo>() == 48);

impl ProcInfo {
    /// An all-zero record to fill.
    pub const fn empty() -> Self {
        Self {
            pid: 0,
            cpu: 0,
            name: [0; NAME_LEN],
            state: 0,
            dedicated: 0,
            timed_wait: 0,
            _pad: 0,
            restarts: 0,
            syscalls: 0,
            exit_code: 0,
        }
    }

    /// The name as text.
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// One CPU's counters, for `stat`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct CpuInfo {
    /// APIC id.
    pub apic_id: u32,
    /// 1 when a dedicated process owns this CPU.
    pub dedicated: u32,
    /// System calls made on this CPU.
    pub syscalls: u64,
    /// Interrupts taken (all kinds).
    pub interrupts: u64,
    /// Inter-processor interrupts received.
    pub ipis: u64,
    /// Timer ticks.
    pub ticks: u64,
    /// Context switches.
    pub switches: u64,
    /// Nanoseconds this CPU spent idle since boot: polling for work or halted in the kernel's
    /// idle loop. A process that polls in user space (`idle=poll`) keeps its CPU busy.
    pub idle_ns: u64,
}
const _: () = assert!(core::mem::size_of::<CpuInfo>() == 56);

/// One CPU's system calls by number (`CPU_CALLS`): `counts[n]` calls of number `n` were made
/// on it since boot ([`nr::name`] names them).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct CpuCalls {
    pub counts: [u64; nr::CALLS],
}

impl Default for CpuCalls {
    fn default() -> Self {
        Self {
            counts: [0; nr::CALLS],
        }
    }
}

/// One PCI function, for `lspci`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct PciInfo {
    /// Bus, device and function numbers.
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
    /// Interrupt pin (1 = INTA .. 4 = INTD, 0 = none).
    pub irq_pin: u8,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    /// 1 when the function has an MSI capability.
    pub msi: u8,
    pub _pad: u32,
    /// First memory BAR: physical address and size.
    pub bar0: u64,
    pub bar0_size: u64,
    /// Device name the kernel gave it (`nic0`...), NUL padded, or empty.
    pub name: [u8; NAME_LEN],
}
const _: () = assert!(core::mem::size_of::<PciInfo>() == 48);

/// A CPU fault that stopped a user process.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct FaultRecord {
    /// The process that faulted.
    pub pid: u32,
    /// Exception vector (14 = page fault, 13 = general protection, 6 = invalid opcode...).
    pub vector: u32,
    /// Faulting address for page faults (CR2), else 0.
    pub address: u64,
    /// Instruction pointer at the fault.
    pub rip: u64,
    /// Error code pushed by the CPU, or 0.
    pub error: u64,
    /// Name of the process, NUL padded.
    pub name: [u8; NAME_LEN],
}
const _: () = assert!(core::mem::size_of::<FaultRecord>() == 48);

/// The page a process shares with the reincarnation server: a heartbeat it bumps every loop
/// (0 = the process does not take part in hang detection), and words of its own.
#[derive(Debug)]
#[repr(C)]
pub struct StatusPage {
    /// Bumped by the process each time round its main loop.
    pub heartbeat: core::sync::atomic::AtomicU64,
    /// Generation: the restart count of the instance that last wrote the page.
    pub generation: core::sync::atomic::AtomicU64,
    /// Set by the kernel ([`ProcOp::RequestUpdate`], which also notifies the process, ending a
    /// `wait`), cleared when an instance starts: the process is asked to exit with
    /// [`EXIT_UPDATE`] at its next quiet point, so that a fresh instance takes over with the
    /// state it keeps in its regions (live update).
    pub update: core::sync::atomic::AtomicU64,
    /// Bumped by the kernel each time it queues an IPC message for the process (one that was
    /// not waiting in a receive): a server reads this word each round and asks the kernel
    /// (`ipc_recv`) only when it moved, so requests cost it no system call while none come.
    pub mail: core::sync::atomic::AtomicU64,
}

/// How long a server on a CPU of its own keeps polling after its last piece of work before it
/// sleeps, under `idle=poll` (`sysconf::IDLE_POLL`): longer than the gaps a busy stack sees
/// between frames, so at load it makes no system call to sleep or to be woken.
pub const IDLE_POLL_NS: u64 = 20_000_000;

/// The longest step between two polls that counts towards [`IDLE_POLL_NS`]: a longer one means
/// the CPU was taken from the poller (an interrupt, or, under emulation on a busy host, the host
/// running another thread), and it was not looking for work meanwhile.
pub const IDLE_POLL_STEP_NS: u64 = 1_000_000;

/// The time from the poll at `last` to the one at `now` that counts as spent polling: all of
/// it, unless it is longer than `max_step_ns` (the CPU was taken from the poller meanwhile:
/// none of it counts). The rule behind [`IDLE_POLL_STEP_NS`], shared by every poller that
/// counts its polling in time (servers, libnet, the driver's NAPI).
pub fn polled_step_within(last: Option<u64>, now: u64, max_step_ns: u64) -> u64 {
    match last {
        Some(last) if now.saturating_sub(last) <= max_step_ns => now - last,
        _ => 0,
    }
}

/// The word of [`StatusPage::mail`] (in 64-bit words from the page's start).
pub const STATUS_MAIL_WORD: usize = core::mem::offset_of!(StatusPage, mail) / 8;

/// The exit code of a process that ended for a live update ([`ProcOp::RequestUpdate`]).
pub const EXIT_UPDATE: i32 = 75;

/// A process's restart policy from the manifest.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct RestartPolicy {
    /// Restarts allowed within `window_ms` before giving up (0 = never restart).
    pub max_failures: u32,
    /// Length of the failure window.
    pub window_ms: u32,
    /// Delay before a restart, doubled for each earlier failure in the window.
    pub backoff_ms: u32,
    /// 1 when the process is started at boot, 0 when it is started on demand (`proc_start`).
    pub start: u32,
}
const _: () = assert!(core::mem::size_of::<RestartPolicy>() == 16);

/// Operations of `proc_ctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum ProcOp {
    /// Ends the process at once.
    Kill = 0,
    /// Starts a fresh instance of a dead process: same binary, CPU and grants.
    Restart = 1,
    /// Makes the process take a genuine CPU fault (it executes `ud2` at its next return to user
    /// mode).
    InjectFault = 2,
    /// Stops scheduling the process, so it looks hung.
    Hang = 3,
    /// Lets a hung process run again.
    Resume = 4,
    /// Asks the process to exit with [`EXIT_UPDATE`] at its next quiet point (sets
    /// [`StatusPage::update`]); whoever asked restarts it once it has.
    RequestUpdate = 5,
}

impl ProcOp {
    /// The operation for a raw number.
    pub fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Kill,
            1 => Self::Restart,
            2 => Self::InjectFault,
            3 => Self::Hang,
            4 => Self::Resume,
            5 => Self::RequestUpdate,
            _ => return None,
        })
    }
}

/// Size of a kernel IPC message.
pub const IPC_MSG_LEN: usize = 64;

/// Where user programs are laid out.
pub mod layout {
    /// Lowest address a program image may use.
    pub const IMAGE_MIN: u64 = 0x20_0000;
    /// Top of the user stack (exclusive).
    pub const STACK_TOP: u64 = 0x0000_7FFF_FFF0_0000;
    /// Pages in the user stack; one unmapped guard page lies below it.
    pub const STACK_PAGES: u64 = 32;
    /// Where `map` places regions and devices.
    pub const MAP_BASE: u64 = 0x0000_4000_0000_0000;
    /// End of the user half.
    pub const USER_END: u64 = 0x0000_8000_0000_0000;
    /// The process's own status page (writable), mapped at start.
    pub const STATUS_PAGE: u64 = 0x0000_3FFF_FFFF_F000;
    /// Where `status_map` places other processes' status pages (one page per slot, read-only).
    pub const STATUS_VIEWS: u64 = 0x0000_3F00_0000_0000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_down_ones_are_the_startable_ones() {
        for v in 0..=7u8 {
            let s = ProcState::from_u8(v).unwrap();
            assert_eq!(s as u8, v);
            assert_eq!(
                s.is_down(),
                matches!(
                    s,
                    ProcState::Exited
                        | ProcState::Faulted
                        | ProcState::Killed
                        | ProcState::NotStarted
                )
            );
        }
        assert_eq!(ProcState::from_u8(8), Some(ProcState::OtherLayout));
        assert!(!ProcState::OtherLayout.is_down(), "it cannot be started");
        assert_eq!(ProcState::from_u8(9), None);
        assert_eq!(ProcState::NotStarted.name(), "unstarted");
        assert!(!ProcState::Stopped.is_down(), "a hung process is alive");
    }

    #[test]
    fn call_names_follow_the_numbers() {
        let named = [
            (nr::LOG, "log"),
            (nr::WAIT, "wait"),
            (nr::NOTIFY, "notify"),
            (nr::LOOKUP, "lookup"),
            (nr::IPC_RECV, "ipc_recv"),
            (nr::IRQ_ACK, "irq_ack"),
            (nr::IPC_CALL_TIMEOUT, "ipc_call_timeout"),
            (nr::CHAN_GATE, "chan_gate"),
            (nr::CPU_CALLS, "cpu_calls"),
        ];
        for (n, name) in named {
            assert_eq!(nr::name(n as usize), name);
        }
        assert_eq!(nr::name(nr::CALLS - 1), "other");
        assert_eq!(nr::name(1000), "other");
    }
}
