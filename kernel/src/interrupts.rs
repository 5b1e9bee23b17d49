//! The interrupt descriptor table: a handler for every CPU exception that reports what happened
//! (vector, name, instruction pointer, error code, faulting address), the local APIC timer, and
//! spurious interrupts. A fault in kernel mode is a kernel bug and panics with that report.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// Vector of the "stop" IPI sent to other CPUs on panic.
pub const STOP_VECTOR: u8 = 0xF0;
/// Vector of spurious APIC interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Breakpoints taken (the in-kernel tests check the IDT with `int3`).
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
/// Set once some CPU panics: NMIs and stop IPIs then halt their CPU.
pub static PANICKING: AtomicBool = AtomicBool::new(false);

struct Report<'a> {
    vector: u8,
    name: &'a str,
    frame: &'a InterruptStackFrame,
    error: Option<u64>,
    address: Option<u64>,
}

fn fault(r: Report) -> ! {
    let f = r.frame;
    let mode = if f.code_segment.rpl() as u8 == 0 { "kernel" } else { "user" };
    let error = r.error.map_or(alloc::string::String::new(), |e| alloc::format!(" error={e:#x}"));
    let address = r.address.map_or(alloc::string::String::new(), |a| alloc::format!(" address={a:#x}"));
    panic!(
        "EXCEPTION {} (vector {}) in {mode} mode at rip={:#x} rsp={:#x}{error}{address}",
        r.name,
        r.vector,
        f.instruction_pointer.as_u64(),
        f.stack_pointer.as_u64(),
    );
}

macro_rules! plain {
    ($fn:ident, $vec:expr, $name:expr) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            fault(Report { vector: $vec, name: $name, frame: &frame, error: None, address: None })
        }
    };
}

macro_rules! with_code {
    ($fn:ident, $vec:expr, $name:expr) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) {
            fault(Report { vector: $vec, name: $name, frame: &frame, error: Some(code), address: None })
        }
    };
}

plain!(divide_error, 0, "#DE divide error");
plain!(debug, 1, "#DB debug");
plain!(overflow, 4, "#OF overflow");
plain!(bound_range, 5, "#BR bound range exceeded");
plain!(invalid_opcode, 6, "#UD invalid opcode");
plain!(device_not_available, 7, "#NM device not available");
with_code!(invalid_tss, 10, "#TS invalid TSS");
with_code!(segment_not_present, 11, "#NP segment not present");
with_code!(stack_segment, 12, "#SS stack-segment fault");
with_code!(general_protection, 13, "#GP general protection");
plain!(x87_fp, 16, "#MF x87 floating point");
with_code!(alignment_check, 17, "#AC alignment check");
plain!(simd_fp, 19, "#XM SIMD floating point");
plain!(virtualization, 20, "#VE virtualization");
with_code!(control_protection, 21, "#CP control protection");
plain!(hv_injection, 28, "#HV hypervisor injection");
with_code!(vmm_communication, 29, "#VC VMM communication");
with_code!(security, 30, "#SX security");

extern "x86-interrupt" fn breakpoint(_frame: InterruptStackFrame) {
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
}

extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    if PANICKING.load(Ordering::Relaxed) {
        halt_forever();
    }
    fault(Report { vector: 2, name: "NMI", frame: &frame, error: None, address: None })
}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    let address = Cr2::read_raw();
    fault(Report {
        vector: 14,
        name: "#PF page fault",
        frame: &frame,
        error: Some(code.bits()),
        address: Some(address),
    })
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fault(Report { vector: 8, name: "#DF double fault", frame: &frame, error: Some(code), address: None })
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fault(Report { vector: 18, name: "#MC machine check", frame: &frame, error: None, address: None })
}

extern "x86-interrupt" fn timer(_frame: InterruptStackFrame) {
    let c = &crate::percpu::current().counters;
    c.ticks.fetch_add(1, Ordering::Relaxed);
    c.interrupts.fetch_add(1, Ordering::Relaxed);
    crate::apic::eoi();
}

extern "x86-interrupt" fn stop(_frame: InterruptStackFrame) {
    halt_forever();
}

extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {
    // Spurious APIC interrupts need no EOI.
    crate::percpu::current().counters.interrupts.fetch_add(1, Ordering::Relaxed);
}

fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// A fully populated IDT (one per CPU).
pub fn new_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available.set_handler_fn(device_not_available);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment);
    idt.general_protection_fault.set_handler_fn(general_protection);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_fp);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.simd_floating_point.set_handler_fn(simd_fp);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception.set_handler_fn(control_protection);
    idt.hv_injection_exception.set_handler_fn(hv_injection);
    idt.vmm_communication_exception.set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security);
    // Safety: the IST slots are filled with guarded stacks by `gdt::CpuGdt::new` on every CPU.
    unsafe {
        idt.double_fault.set_handler_fn(double_fault).set_stack_index(crate::gdt::DOUBLE_FAULT_IST);
        idt.non_maskable_interrupt.set_handler_fn(nmi).set_stack_index(crate::gdt::NMI_IST);
        idt.machine_check.set_handler_fn(machine_check).set_stack_index(crate::gdt::MACHINE_CHECK_IST);
    }
    idt[TIMER_VECTOR].set_handler_fn(timer);
    idt[STOP_VECTOR].set_handler_fn(stop);
    idt[SPURIOUS_VECTOR].set_handler_fn(spurious);
    idt
}

pub fn init() {
    // The BSP's IDT was loaded by `percpu::init_bsp`; nothing global remains to set up.
    log::debug!("IDT loaded: 32 exception handlers, timer vector {TIMER_VECTOR:#x}");
}

/// Loads an empty IDT and raises an exception: #BP cannot be delivered, nor the #GP and #DF that
/// follow, so the CPU shuts down (a triple fault). Used by the runner's reset test.
pub fn triple_fault() -> ! {
    log::info!("test=triple-fault: loading an empty IDT and raising #BP");
    let empty = DescriptorTablePointer { limit: 0, base: VirtAddr::new(0) };
    // Safety: deliberately destroys exception delivery on this CPU; the machine resets.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3");
    }
    halt_forever()
}
