//! The `syscall` entry and the system-call dispatcher. The entry parks the user stack pointer in
//! the per-CPU block, switches to the process's kernel stack, and calls [`dispatch`] with a
//! [`SyscallFrame`]; interrupts stay off for the whole call (SFMASK clears IF) except while a
//! blocking call sleeps. Every pointer from user space is checked against the caller's page table
//! before the kernel touches it.

use crate::percpu::{self, PerCpu};
use axolotl_abi::{Error, nr};
use core::sync::atomic::Ordering;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

/// Registers saved by the entry, in push order reversed (lowest address first).
#[derive(Debug)]
#[repr(C)]
pub struct SyscallFrame {
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rax: u64,
    /// User return address (the `rcx` that `syscall` saved).
    pub rip: u64,
    /// User flags (the `r11` that `syscall` saved).
    pub rflags: u64,
    pub rsp: u64,
}

core::arch::global_asm!(
    r#"
.global axolotl_syscall_entry
axolotl_syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push qword ptr gs:[{user_rsp}]
    push r11
    push rcx
    push rax
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    mov rdi, rsp
    cld
    call axolotl_syscall_dispatch
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    pop rax
    pop rcx
    pop r11
    pop rsp
    swapgs
    sysretq
"#,
    user_rsp = const crate::percpu::USER_RSP_OFFSET,
    kernel_rsp = const crate::percpu::KERNEL_RSP_OFFSET,
);

unsafe extern "C" {
    fn axolotl_syscall_entry();
}

/// Programs the syscall MSRs of the calling CPU.
pub fn init_cpu(cpu: &PerCpu) {
    let g = cpu.gdt;
    // STAR: kernel CS/SS from 0x08, user SS = 0x18|3 and CS = 0x20|3 (sysret adds 8 and 16 to 0x10).
    Star::write(
        x86_64::structures::gdt::SegmentSelector(0x20 | 3),
        x86_64::structures::gdt::SegmentSelector(0x18 | 3),
        g.kernel_code,
        g.kernel_data,
    )
    .unwrap_or_else(|e| panic!("STAR: {e}"));
    LStar::write(VirtAddr::new(axolotl_syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK,
    );
    // Safety: enabling SYSCALL/SYSRET after the MSRs above point at a valid entry.
    unsafe { Efer::update(|f| *f |= EferFlags::SYSTEM_CALL_EXTENSIONS) };
}

fn ret(r: Result<u64, Error>) -> u64 {
    match r {
        Ok(v) => v,
        Err(e) => (-(e as i64)) as u64,
    }
}

#[unsafe(no_mangle)]
extern "C" fn axolotl_syscall_dispatch(frame: &mut SyscallFrame) {
    let cpu = percpu::current();
    let call = (frame.rax as usize).min(nr::CALLS - 1);
    cpu.counters.by_call[call].fetch_add(1, Ordering::Relaxed);
    let me = crate::sched::current().unwrap_or_else(|| panic!("syscall with no current process"));
    me.syscalls.fetch_add(1, Ordering::Relaxed);
    let (a0, a1, a2) = (frame.rdi, frame.rsi, frame.rdx);
    if frame.rax == nr::EXIT {
        crate::sched::exit_current(me, axolotl_abi::ProcState::Exited, a0 as i32 as i64);
    }
    let r = match frame.rax {
        nr::LOG => crate::user::read_str(a0, a1).map(|s| {
            log::info!("{}: {}", me.name, s.trim_end());
            0
        }),
        nr::YIELD => {
            crate::sched::yield_now();
            Ok(0)
        }
        nr::WAIT => Ok(crate::sched::wait(&me, a0) as u64),
        nr::NOTIFY => crate::sched::notify_from(&me, a0 as u32).map(|_| 0),
        nr::TIME => Ok(crate::time::now_ns()),
        nr::CLOCK_HZ => Ok(crate::time::tsc_hz()),
        nr::CHAN_GATE => crate::gate::syscall(&me, a0, a1, a2, frame.r10),
        nr::MAP => crate::process::map_syscall(&me, a0, a1, a2),
        nr::CONSOLE_READ => crate::console::read_syscall(&me, a0, a1),
        nr::CONSOLE_WRITE => crate::console::write_syscall(&me, a0, a1),
        nr::PROC_INFO => crate::process::proc_info_syscall(a0, a1),
        nr::CPU_INFO => cpu_info(a0, a1),
        nr::CPU_CALLS => cpu_calls(a0, a1),
        nr::POWEROFF => poweroff(&me, a0),
        nr::LOOKUP => crate::user::read_str(a0, a1)
            .and_then(|n| crate::process::lookup(&n).map(|p| p.pid as u64)),
        nr::IPC_SEND => crate::ipc::send(&me, a0 as u32, a1).map(|_| 0),
        nr::IPC_RECV => crate::ipc::recv(&me, a0, a1),
        nr::IPC_CALL => crate::ipc::call(&me, a0 as u32, a1, a2),
        nr::IPC_REPLY_RECV => crate::ipc::reply_recv(&me, a0 as u32, a1, a2),
        nr::PROC_CTL => crate::process::proc_ctl(&me, a0 as u32, a1),
        nr::FAULT_RECORD => crate::process::fault_record_syscall(&me, a0, a1),
        nr::SELF_INFO => crate::process::self_info_syscall(&me, a0),
        nr::IRQ_ACK => crate::process::irq_ack_syscall(&me, a0, a1),
        nr::PCI_INFO => pci_info(a0, a1),
        nr::SYSCONF => Ok(crate::sysconf()),
        nr::STATUS_MAP => crate::process::status_map_syscall(&me, a0, a1),
        nr::PROC_POLICY => crate::process::proc_policy_syscall(a0, a1),
        nr::PROC_START => crate::process::proc_start_syscall(&me, a0, a1, a2, frame.r10),
        nr::IPC_REPLY => crate::ipc::reply_only(&me, a0 as u32, a1).map(|_| 0),
        nr::IPC_CALL_TIMEOUT => crate::ipc::call_timeout(&me, a0 as u32, a1, a2, frame.r10),
        _ => Err(Error::NoSys),
    };
    frame.rax = ret(r);
    drop(me);
    crate::sched::before_syscall_return(frame);
}

fn cpu_info(index: u64, out: u64) -> Result<u64, Error> {
    let cpu = percpu::get(index as usize).ok_or(Error::NotFound)?;
    let c = &cpu.counters;
    let info = axolotl_abi::CpuInfo {
        apic_id: cpu.apic_id,
        dedicated: crate::sched::is_dedicated(index as usize) as u32,
        syscalls: c.by_call.iter().map(|n| n.load(Ordering::Relaxed)).sum(),
        interrupts: c.interrupts.load(Ordering::Relaxed),
        ipis: c.ipis.load(Ordering::Relaxed),
        ticks: c.ticks.load(Ordering::Relaxed),
        switches: c.switches.load(Ordering::Relaxed),
        idle_ns: crate::time::tsc_to_ns(c.idle_tsc.load(Ordering::Relaxed)),
    };
    crate::user::write_struct(out, &info)?;
    Ok(0)
}

fn cpu_calls(index: u64, out: u64) -> Result<u64, Error> {
    let cpu = percpu::get(index as usize).ok_or(Error::NotFound)?;
    let mut calls = axolotl_abi::CpuCalls::default();
    for (count, c) in calls.counts.iter_mut().zip(&cpu.counters.by_call) {
        *count = c.load(Ordering::Relaxed);
    }
    crate::user::write_struct(out, &calls)?;
    Ok(0)
}

fn pci_info(index: u64, out: u64) -> Result<u64, Error> {
    let d = crate::pci::devices()
        .get(index as usize)
        .ok_or(Error::NotFound)?;
    let mut info = axolotl_abi::PciInfo {
        bus: d.bus,
        dev: d.dev,
        func: d.func,
        irq_pin: d.irq_pin,
        vendor: d.vendor,
        device: d.device,
        class: d.class,
        subclass: d.subclass,
        prog_if: d.prog_if,
        msi: d.msi.is_some() as u8,
        _pad: 0,
        bar0: d.bars[0].addr,
        bar0_size: d.bars[0].size,
        name: [0; axolotl_abi::NAME_LEN],
    };
    if let Some(dev) = crate::devices::for_pci(d) {
        let n = dev.name.len().min(axolotl_abi::NAME_LEN);
        info.name[..n].copy_from_slice(&dev.name.as_bytes()[..n]);
    }
    crate::user::write_struct(out, &info)?;
    Ok(0)
}

fn poweroff(me: &crate::process::Process, code: u64) -> Result<u64, Error> {
    if !crate::process::has_grant(me, "power") {
        crate::process::log_denied(me, "poweroff", "power");
        return Err(Error::Denied);
    }
    log::info!("poweroff requested by {} (code {})", me.name, code);
    crate::exit::exit_qemu(if code == 0 {
        crate::exit::QemuExit::Success
    } else {
        crate::exit::QemuExit::Failure
    })
}
