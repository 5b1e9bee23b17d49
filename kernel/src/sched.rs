//! The scheduler: one run queue per CPU. A CPU that hosts a dedicated process runs only it (and
//! halts when it sleeps); the other CPUs time-share their processes, preempted by the local APIC
//! timer. Switching saves the callee-saved registers on the outgoing kernel stack and loads the
//! incoming one's; a CPU with nothing to run sits in its idle loop with interrupts on.

use crate::percpu::{self, MAX_CPUS};
use crate::process::Process;
use crate::trap::TrapFrame;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use axolotl_abi::{Error, ProcState};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr3Flags};

struct CpuSched {
    current: Option<Arc<Process>>,
    queue: VecDeque<Arc<Process>>,
    /// Blocked processes with a deadline.
    sleepers: Vec<Arc<Process>>,
    /// A dead process whose resources are freed once we are off its stack.
    zombie: Option<Arc<Process>>,
}

static SCHED: [Mutex<CpuSched>; MAX_CPUS] = [const {
    Mutex::new(CpuSched {
        current: None,
        queue: VecDeque::new(),
        sleepers: Vec::new(),
        zombie: None,
    })
}; MAX_CPUS];
static IDLE_RSP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static DEDICATED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Set when something was queued for the CPU; its idle loop polls this before halting.
static WORK: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// How long a dedicated CPU polls for work before it halts: a peer's reply often comes sooner,
/// and a halted CPU costs an IPI and a wake-up (under emulation, a host thread wake-up). Short:
/// where emulated CPUs share host cores, polling keeps the peer it waits for off a core (50 µs
/// here, with the servers' longer spins, cost the split layout about a fifth of its throughput:
/// `cargo xtask bench`, docs/measurements.md).
const IDLE_POLL_NS: u64 = 10_000;

core::arch::global_asm!(
    r#"
.global axolotl_switch_stacks
axolotl_switch_stacks:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

.global axolotl_first_run
axolotl_first_run:
    call axolotl_first_run_rust
    jmp axolotl_trap_return
"#
);

unsafe extern "C" {
    fn axolotl_switch_stacks(save: *mut u64, load: u64);
    fn axolotl_first_run();
}

pub fn set_dedicated(cpu: usize) {
    DEDICATED[cpu].store(true, Ordering::Relaxed);
}

pub fn is_dedicated(cpu: usize) -> bool {
    DEDICATED
        .get(cpu)
        .is_some_and(|d| d.load(Ordering::Relaxed))
}

fn this_cpu() -> usize {
    percpu::current().index as usize
}

/// The process running on this CPU.
pub fn current() -> Option<Arc<Process>> {
    SCHED[this_cpu()].lock().current.clone()
}

/// Lays out a new process's kernel stack so that switching to it "returns" into ring 3 at
/// `entry` with the argument registers set.
pub fn prepare_first_run(p: &Process, entry: u64, user_rsp: u64, args: u64, args_len: u64) {
    let gdt = percpu::current().gdt;
    let frame = TrapFrame {
        rdi: args,
        rsi: args_len,
        rdx: p.pid as u64,
        rip: entry,
        cs: (gdt.kernel_code.0 as u64 + 0x18) | 3, // user code 0x20
        rflags: 0x202,
        rsp: user_rsp,
        ss: (gdt.kernel_data.0 as u64 + 0x08) | 3, // user data 0x18
        ..TrapFrame::default()
    };
    let top = p.kstack_top;
    let frame_at = top - core::mem::size_of::<TrapFrame>() as u64;
    // Below the trap frame: the switch frame (r15, r14, r13, r12, rbx, rbp, return address).
    let switch_at = frame_at - 7 * 8;
    // Safety: the kernel stack belongs to this new process and nothing runs on it yet.
    unsafe {
        (frame_at as *mut TrapFrame).write(frame);
        let words = switch_at as *mut u64;
        for i in 0..6 {
            words.add(i).write(0);
        }
        words.add(6).write(axolotl_first_run as *const () as u64);
        *p.saved_rsp.get() = switch_at;
    }
}

#[unsafe(no_mangle)]
extern "C" fn axolotl_first_run_rust() {
    reap();
    // Fault injection or a kill may have arrived before the first run.
    let top = current().map(|p| p.kstack_top).unwrap_or(0);
    if top != 0 {
        // Safety: the trap frame sits at the top of this process's kernel stack.
        let frame =
            unsafe { &mut *((top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame) };
        before_user_return(frame);
    }
}

/// Makes `p` runnable on its CPU, waking that CPU if needed.
pub fn enqueue(p: Arc<Process>) {
    let cpu = p.cpu as usize;
    SCHED[cpu].lock().queue.push_back(p);
    WORK[cpu].store(true, Ordering::Release);
    kick(cpu);
}

fn kick(cpu: usize) {
    if cpu != this_cpu()
        && let Some(c) = percpu::get(cpu)
    {
        crate::apic::send_ipi(c.apic_id, crate::trap::RESCHED_VECTOR);
    }
}

fn runnable(p: &Process) -> bool {
    !p.hung.load(Ordering::Relaxed) && matches!(p.state(), ProcState::Ready | ProcState::Running)
}

/// Picks the next process for this CPU and switches to it. Interrupts must be off.
pub fn schedule() {
    let cpu = this_cpu();
    let pc = percpu::current();
    let mut s = SCHED[cpu].lock();
    let prev = s.current.take();
    if let Some(p) = &prev
        && p.state() == ProcState::Running
    {
        p.set_state(ProcState::Ready);
        if runnable(p) {
            s.queue.push_back(p.clone());
        }
    }
    let mut next = None;
    while let Some(p) = s.queue.pop_front() {
        if runnable(&p) {
            next = Some(p);
            break;
        }
    }
    let save: *mut u64 = match &prev {
        Some(p) => p.saved_rsp.get(),
        None => IDLE_RSP[cpu].as_ptr(),
    };
    let load = match &next {
        Some(n) => {
            n.set_state(ProcState::Running);
            percpu::set_kernel_stack(pc, n.kstack_top);
            if let Some(space) = n.space.lock().as_ref() {
                let pml4 = space.pml4();
                if Cr3::read().0 != pml4 {
                    // Safety: the process's table maps the whole kernel half like the kernel's.
                    unsafe { Cr3::write(pml4, Cr3Flags::empty()) };
                }
            }
            // Safety: saved_rsp of a switched-out process on this CPU, written by the switch.
            unsafe { *n.saved_rsp.get() }
        }
        None => {
            let kernel = crate::memory::kernel_pml4();
            if Cr3::read().0 != kernel {
                // Safety: the kernel's own table; the dying process's may be freed next.
                unsafe { Cr3::write(kernel, Cr3Flags::empty()) };
            }
            IDLE_RSP[cpu].load(Ordering::Relaxed)
        }
    };
    let same = match (&prev, &next) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    if let Some(p) = &prev
        && p.is_dead()
    {
        s.zombie = Some(p.clone());
    }
    s.current = next;
    drop(s);
    drop(prev);
    if same {
        return;
    }
    pc.counters.switches.fetch_add(1, Ordering::Relaxed);
    // Safety: `save` points at the outgoing context's slot and `load` at a stack prepared by a
    // previous switch or by `prepare_first_run`; interrupts are off.
    unsafe { axolotl_switch_stacks(save, load) };
    reap();
}

/// Frees the address space and kernel stack of a process that died on this CPU.
fn reap() {
    let z = SCHED[this_cpu()].lock().zombie.take();
    if let Some(z) = z {
        if let Some(space) = z.space.lock().take() {
            space.destroy();
        }
        crate::process::release_kernel_stack(z.kstack_top);
    }
}

/// The loop each CPU runs when it has nothing else: run what is queued, else halt.
pub fn idle_loop() -> ! {
    let cpu = this_cpu();
    loop {
        x86_64::instructions::interrupts::disable();
        WORK[cpu].store(false, Ordering::Release);
        let has_work = !SCHED[cpu].lock().queue.is_empty();
        if has_work {
            schedule();
            continue;
        }
        let start = crate::time::rdtsc();
        if is_dedicated(cpu) {
            x86_64::instructions::interrupts::enable();
            let limit = crate::time::ns_to_tsc(IDLE_POLL_NS);
            while !WORK[cpu].load(Ordering::Acquire)
                && crate::time::rdtsc().wrapping_sub(start) < limit
            {
                core::hint::spin_loop();
            }
            x86_64::instructions::interrupts::disable();
            if WORK[cpu].load(Ordering::Acquire) {
                count_idle(start);
                continue;
            }
        }
        x86_64::instructions::interrupts::enable_and_hlt();
        count_idle(start);
    }
}

/// Adds the time since `start` (a TSC reading) to this CPU's idle time (`stat`'s IDLE_MS).
fn count_idle(start: u64) {
    let spent = crate::time::rdtsc().wrapping_sub(start);
    percpu::current()
        .counters
        .idle_tsc
        .fetch_add(spent, Ordering::Relaxed);
}

/// Timer tick (interrupts off): console input, expired sleepers, preemption on shared CPUs.
pub fn tick(from_user: bool) {
    let cpu = this_cpu();
    if cpu == 0 {
        crate::console::poll();
    }
    let now = crate::time::now_ns();
    let expired: Vec<Arc<Process>> = {
        let mut s = SCHED[cpu].lock();
        if s.sleepers.is_empty() {
            Vec::new()
        } else {
            let (done, keep): (Vec<_>, Vec<_>) = s.sleepers.drain(..).partition(|p| {
                let d = p.deadline.load(Ordering::Relaxed);
                p.state() != ProcState::Blocked || d == 0 || d <= now
            });
            s.sleepers = keep;
            done
        }
    };
    for p in expired {
        wake_blocked(&p);
    }
    if from_user && !is_dedicated(cpu) && !SCHED[cpu].lock().queue.is_empty() {
        schedule();
    }
}

/// Wakes `p` if it is blocked (without marking a notification).
pub fn wake_blocked(p: &Arc<Process>) {
    let _g = p.wake_lock.lock();
    if p.state() == ProcState::Blocked {
        p.set_state(ProcState::Ready);
        enqueue(p.clone());
    }
}

/// Marks a notification for `p` and wakes it.
pub fn notify(p: &Arc<Process>) {
    p.pending.store(true, Ordering::Release);
    wake_blocked(p);
}

/// `notify(pid)` from user space: allowed towards processes the caller has an IPC grant for or
/// shares a region with.
pub fn notify_from(me: &Process, pid: u32) -> Result<(), Error> {
    let target = crate::process::by_pid(pid).ok_or(Error::NotFound)?;
    if !may_talk(me, &target) {
        crate::process::log_denied(me, "notify", &target.name);
        return Err(Error::Denied);
    }
    notify(&target);
    Ok(())
}

/// True when the manifest lets `a` signal `b` (IPC grant, or a shared region).
pub fn may_talk(a: &Process, b: &Process) -> bool {
    let Some(m) = crate::process::manifest() else {
        return false;
    };
    let (Some(ea), Some(eb)) = (m.processes().nth(a.slot), m.processes().nth(b.slot)) else {
        return false;
    };
    ea.has_ipc(eb.name) || ea.regions().any(|r| eb.has_region(r))
}

/// Blocks the calling process until `done()` holds (checked under its wake lock), a deadline
/// passes (`timeout_ns`, `u64::MAX` = none), or it is killed. Returns false on timeout.
pub fn block_until(me: &Arc<Process>, timeout_ns: u64, done: impl Fn() -> bool) -> bool {
    if timeout_ns == 0 {
        // A poll: never sleeps.
        let _g = me.wake_lock.lock();
        return done();
    }
    let deadline = if timeout_ns == u64::MAX {
        0
    } else {
        crate::time::now_ns().saturating_add(timeout_ns.max(1))
    };
    loop {
        {
            let _g = me.wake_lock.lock();
            if done() {
                me.deadline.store(0, Ordering::Relaxed);
                return true;
            }
            if deadline != 0 && crate::time::now_ns() >= deadline {
                me.deadline.store(0, Ordering::Relaxed);
                return false;
            }
            me.deadline.store(deadline, Ordering::Relaxed);
            me.set_state(ProcState::Blocked);
        }
        if deadline != 0 {
            SCHED[this_cpu()].lock().sleepers.push(me.clone());
        }
        schedule();
        // A kill or an injected fault ends the wait: the process must get back to its
        // return-to-user checks.
        if me.kill.load(Ordering::Relaxed) || me.inject_fault.load(Ordering::Relaxed) {
            return false;
        }
    }
}

/// `wait(timeout)`.
pub fn wait(me: &Arc<Process>, timeout_ns: u64) -> i64 {
    let notified = block_until(me, timeout_ns, || me.pending.swap(false, Ordering::AcqRel));
    if notified {
        axolotl_abi::WAIT_NOTIFIED
    } else {
        axolotl_abi::WAIT_TIMEOUT
    }
}

pub fn yield_now() {
    schedule();
}

/// Ends the calling process with `state` and never returns.
pub fn exit_current(me: Arc<Process>, state: ProcState, code: i64) -> ! {
    me.exit_code.store(code, Ordering::Relaxed);
    me.set_state(state);
    if state == ProcState::Exited {
        log::info!("{} (pid {}) exited with code {code}", me.name, me.pid);
    }
    crate::ipc::on_death(&me);
    crate::process::after_death(&me);
    drop(me);
    schedule();
    unreachable!("a dead process was scheduled again");
}

/// A CPU exception in ring 3: record it, stop the process, run something else.
pub fn user_fault(frame: &TrapFrame, address: Option<u64>) {
    let Some(me) = current() else {
        panic!("user fault with no current process")
    };
    crate::process::record_fault(
        &me,
        frame.vector,
        address.unwrap_or(0),
        frame.rip,
        frame.error,
    );
    exit_current(me, ProcState::Faulted, frame.vector as i64);
}

/// Checks made on every return to ring 3 from an interrupt: kill, hang, injected fault, and
/// preemption requests.
pub fn before_user_return(frame: &mut TrapFrame) {
    user_return_checks(&mut frame.rip);
}

/// The same checks on the `sysret` path, plus preemption on a shared CPU where others wait.
pub fn before_syscall_return(frame: &mut crate::syscall::SyscallFrame) {
    user_return_checks(&mut frame.rip);
    let cpu = this_cpu();
    let running = current().is_some_and(|me| me.state() == ProcState::Running);
    if running && !is_dedicated(cpu) && !SCHED[cpu].lock().queue.is_empty() {
        schedule();
    }
}

/// Kill, hang and fault injection, applied where the process is about to re-enter ring 3 at
/// `*rip`. Loops so that a process resumed after a hang sees a kill that came meanwhile.
fn user_return_checks(rip: &mut u64) {
    loop {
        let Some(me) = current() else { return };
        if me.kill.load(Ordering::Relaxed) {
            exit_current(me, ProcState::Killed, -9);
        }
        if me.hung.load(Ordering::Relaxed) {
            drop(me);
            schedule(); // not runnable: stays off the CPU until resumed
            continue;
        }
        if me.inject_fault.swap(false, Ordering::AcqRel) {
            log::info!(
                "injecting a fault into {} (pid {}): jumping to {:#x}",
                me.name,
                me.pid,
                crate::process::INJECTED_FAULT_RIP
            );
            *rip = crate::process::INJECTED_FAULT_RIP;
        }
        return;
    }
}

pub fn kill(p: &Arc<Process>) {
    p.kill.store(true, Ordering::Release);
    let _g = p.wake_lock.lock();
    match p.state() {
        ProcState::Blocked | ProcState::Ready => {
            // Let it run into the kill check on its way back to user mode.
            p.set_state(ProcState::Ready);
            drop(_g);
            enqueue(p.clone());
        }
        _ => kick(p.cpu as usize),
    }
    if p.hung.swap(false, Ordering::AcqRel) {
        enqueue(p.clone());
    }
}

pub fn inject_fault(p: &Arc<Process>) {
    p.inject_fault.store(true, Ordering::Release);
    // A sleeping process is woken so that it reaches user mode (and the fault) now.
    wake_blocked(p);
    kick(p.cpu as usize);
}

pub fn hang(p: &Arc<Process>, on: bool) {
    if on {
        p.hung.store(true, Ordering::Release);
        kick(p.cpu as usize);
    } else if p.hung.swap(false, Ordering::AcqRel) && runnable(p) {
        enqueue(p.clone());
    }
}
