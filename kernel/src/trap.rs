//! Entry and exit of every interrupt and exception. Each vector has a small assembly stub that
//! pushes a uniform [`TrapFrame`], switches GS to the kernel's per-CPU block when the CPU came
//! from ring 3 (`swapgs`), and calls [`axolotl_trap_dispatch`]. A fault in ring 3 stops only the
//! faulting process (a fault record is kept for the reincarnation server); a fault in ring 0 is a
//! kernel bug and panics with a full report.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// Vector of the "reschedule" IPI (a process became runnable, or must stop, on that CPU).
pub const RESCHED_VECTOR: u8 = 0x21;
/// Vector of the "stop" IPI sent to other CPUs on panic.
pub const STOP_VECTOR: u8 = 0xF0;
/// Vector of spurious APIC interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Breakpoints taken in kernel mode (the in-kernel tests check the IDT with `int3`).
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
/// Set once some CPU panics: NMIs and stop IPIs then halt their CPU.
pub static PANICKING: AtomicBool = AtomicBool::new(false);

/// Registers saved on entry, in the order the stubs push them.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub fn came_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

const fn has_error_code(v: usize) -> bool {
    matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Vectors that get a stub: the 32 exceptions and the few the kernel uses.
const STUB_VECTORS: [u8; 44] = {
    let mut v = [0u8; 44];
    let mut i = 0;
    while i < 32 {
        v[i] = i as u8;
        i += 1;
    }
    v[32] = TIMER_VECTOR;
    v[33] = RESCHED_VECTOR;
    let mut d = 0;
    while d < 8 {
        v[34 + d] = 0x30 + d as u8;
        d += 1;
    }
    v[42] = STOP_VECTOR;
    v[43] = SPURIOUS_VECTOR;
    v
};

// The stubs, written out: vectors with a CPU-pushed error code skip the dummy push.
core::arch::global_asm!(
    r#"
.macro TRAPSTUB vec, err
.global axolotl_trap_stub_\vec
axolotl_trap_stub_\vec:
.if \err == 0
    push 0
.endif
    push \vec
    jmp axolotl_trap_common
.endm
TRAPSTUB 0, 0
TRAPSTUB 1, 0
TRAPSTUB 2, 0
TRAPSTUB 3, 0
TRAPSTUB 4, 0
TRAPSTUB 5, 0
TRAPSTUB 6, 0
TRAPSTUB 7, 0
TRAPSTUB 8, 1
TRAPSTUB 9, 0
TRAPSTUB 10, 1
TRAPSTUB 11, 1
TRAPSTUB 12, 1
TRAPSTUB 13, 1
TRAPSTUB 14, 1
TRAPSTUB 15, 0
TRAPSTUB 16, 0
TRAPSTUB 17, 1
TRAPSTUB 18, 0
TRAPSTUB 19, 0
TRAPSTUB 20, 0
TRAPSTUB 21, 1
TRAPSTUB 22, 0
TRAPSTUB 23, 0
TRAPSTUB 24, 0
TRAPSTUB 25, 0
TRAPSTUB 26, 0
TRAPSTUB 27, 0
TRAPSTUB 28, 0
TRAPSTUB 29, 1
TRAPSTUB 30, 1
TRAPSTUB 31, 0
TRAPSTUB 32, 0
TRAPSTUB 33, 0
TRAPSTUB 48, 0
TRAPSTUB 49, 0
TRAPSTUB 50, 0
TRAPSTUB 51, 0
TRAPSTUB 52, 0
TRAPSTUB 53, 0
TRAPSTUB 54, 0
TRAPSTUB 55, 0
TRAPSTUB 240, 0
TRAPSTUB 255, 0

.global axolotl_trap_common
axolotl_trap_common:
    test byte ptr [rsp + 24], 3
    jz 1f
    swapgs
1:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call axolotl_trap_dispatch
.global axolotl_trap_return
axolotl_trap_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    test byte ptr [rsp + 24], 3
    jz 2f
    swapgs
2:
    add rsp, 16
    iretq
"#
);

unsafe extern "C" {
    fn axolotl_trap_stub_0();
    fn axolotl_trap_stub_1();
    fn axolotl_trap_stub_2();
    fn axolotl_trap_stub_3();
    fn axolotl_trap_stub_4();
    fn axolotl_trap_stub_5();
    fn axolotl_trap_stub_6();
    fn axolotl_trap_stub_7();
    fn axolotl_trap_stub_8();
    fn axolotl_trap_stub_9();
    fn axolotl_trap_stub_10();
    fn axolotl_trap_stub_11();
    fn axolotl_trap_stub_12();
    fn axolotl_trap_stub_13();
    fn axolotl_trap_stub_14();
    fn axolotl_trap_stub_15();
    fn axolotl_trap_stub_16();
    fn axolotl_trap_stub_17();
    fn axolotl_trap_stub_18();
    fn axolotl_trap_stub_19();
    fn axolotl_trap_stub_20();
    fn axolotl_trap_stub_21();
    fn axolotl_trap_stub_22();
    fn axolotl_trap_stub_23();
    fn axolotl_trap_stub_24();
    fn axolotl_trap_stub_25();
    fn axolotl_trap_stub_26();
    fn axolotl_trap_stub_27();
    fn axolotl_trap_stub_28();
    fn axolotl_trap_stub_29();
    fn axolotl_trap_stub_30();
    fn axolotl_trap_stub_31();
    fn axolotl_trap_stub_32();
    fn axolotl_trap_stub_33();
    fn axolotl_trap_stub_48();
    fn axolotl_trap_stub_49();
    fn axolotl_trap_stub_50();
    fn axolotl_trap_stub_51();
    fn axolotl_trap_stub_52();
    fn axolotl_trap_stub_53();
    fn axolotl_trap_stub_54();
    fn axolotl_trap_stub_55();
    fn axolotl_trap_stub_240();
    fn axolotl_trap_stub_255();
}

const STUBS: [unsafe extern "C" fn(); 44] = [
    axolotl_trap_stub_0,
    axolotl_trap_stub_1,
    axolotl_trap_stub_2,
    axolotl_trap_stub_3,
    axolotl_trap_stub_4,
    axolotl_trap_stub_5,
    axolotl_trap_stub_6,
    axolotl_trap_stub_7,
    axolotl_trap_stub_8,
    axolotl_trap_stub_9,
    axolotl_trap_stub_10,
    axolotl_trap_stub_11,
    axolotl_trap_stub_12,
    axolotl_trap_stub_13,
    axolotl_trap_stub_14,
    axolotl_trap_stub_15,
    axolotl_trap_stub_16,
    axolotl_trap_stub_17,
    axolotl_trap_stub_18,
    axolotl_trap_stub_19,
    axolotl_trap_stub_20,
    axolotl_trap_stub_21,
    axolotl_trap_stub_22,
    axolotl_trap_stub_23,
    axolotl_trap_stub_24,
    axolotl_trap_stub_25,
    axolotl_trap_stub_26,
    axolotl_trap_stub_27,
    axolotl_trap_stub_28,
    axolotl_trap_stub_29,
    axolotl_trap_stub_30,
    axolotl_trap_stub_31,
    axolotl_trap_stub_32,
    axolotl_trap_stub_33,
    axolotl_trap_stub_48,
    axolotl_trap_stub_49,
    axolotl_trap_stub_50,
    axolotl_trap_stub_51,
    axolotl_trap_stub_52,
    axolotl_trap_stub_53,
    axolotl_trap_stub_54,
    axolotl_trap_stub_55,
    axolotl_trap_stub_240,
    axolotl_trap_stub_255,
];

/// One interrupt gate.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<Gate>() == 16);

/// An interrupt descriptor table: 256 gates, those without a stub left not-present.
#[repr(C, align(16))]
pub struct Idt([Gate; 256]);

impl Idt {
    /// A fully populated IDT (one per CPU). `code` is the kernel code selector.
    pub fn new(code: u16) -> Self {
        let mut gates = [Gate::default(); 256];
        for (i, &vector) in STUB_VECTORS.iter().enumerate() {
            let addr = STUBS[i] as *const () as u64;
            let ist = match vector {
                2 => crate::gdt::NMI_IST + 1,
                8 => crate::gdt::DOUBLE_FAULT_IST + 1,
                18 => crate::gdt::MACHINE_CHECK_IST + 1,
                _ => 0,
            };
            gates[vector as usize] = Gate {
                offset_low: addr as u16,
                selector: code,
                ist: ist as u8,
                attributes: 0x8E, // present, DPL 0, 64-bit interrupt gate (IF cleared on entry)
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        Idt(gates)
    }

    pub fn load(&'static self) {
        let ptr = DescriptorTablePointer {
            limit: (core::mem::size_of::<Self>() - 1) as u16,
            base: VirtAddr::from_ptr(self),
        };
        // Safety: the table is 'static and every present gate points at a valid stub.
        unsafe { x86_64::instructions::tables::lidt(&ptr) };
    }
}

fn exception_name(v: u64) -> &'static str {
    match v {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        28 => "#HV hypervisor injection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        _ => "reserved exception",
    }
}

#[unsafe(no_mangle)]
extern "C" fn axolotl_trap_dispatch(frame: &mut TrapFrame) {
    let v = frame.vector;
    match v {
        2 if PANICKING.load(Ordering::Relaxed) => halt_forever(),
        3 if !frame.came_from_user() => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        }
        0..=31 => {
            let address = if v == 14 { Some(Cr2::read_raw()) } else { None };
            if frame.came_from_user() {
                crate::sched::user_fault(frame, address);
            } else {
                kernel_fault(frame, address);
            }
        }
        x if x == TIMER_VECTOR as u64 => {
            let c = &crate::percpu::current().counters;
            c.ticks.fetch_add(1, Ordering::Relaxed);
            c.interrupts.fetch_add(1, Ordering::Relaxed);
            crate::apic::eoi();
            crate::sched::tick(frame.came_from_user());
        }
        x if x == RESCHED_VECTOR as u64 => {
            let c = &crate::percpu::current().counters;
            c.ipis.fetch_add(1, Ordering::Relaxed);
            c.interrupts.fetch_add(1, Ordering::Relaxed);
            crate::apic::eoi();
        }
        x if x == STOP_VECTOR as u64 => halt_forever(),
        x if crate::devices::vectors().contains(&(x as u8)) => {
            crate::percpu::current()
                .counters
                .interrupts
                .fetch_add(1, Ordering::Relaxed);
            crate::devices::interrupt(x as u8);
        }
        _ => {
            // Spurious: no EOI.
            crate::percpu::current()
                .counters
                .interrupts
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    if frame.came_from_user() {
        crate::sched::before_user_return(frame);
    }
}

fn kernel_fault(frame: &TrapFrame, address: Option<u64>) -> ! {
    let error = if has_error_code(frame.vector as usize) {
        alloc::format!(" error={:#x}", frame.error)
    } else {
        alloc::string::String::new()
    };
    let address = address.map_or(alloc::string::String::new(), |a| {
        alloc::format!(" address={a:#x}")
    });
    panic!(
        "EXCEPTION {} (vector {}) in kernel mode at rip={:#x} rsp={:#x}{error}{address}",
        exception_name(frame.vector),
        frame.vector,
        frame.rip,
        frame.rsp,
    );
}

pub fn describe(vector: u64) -> &'static str {
    exception_name(vector)
}

fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Loads an empty IDT and raises an exception: #BP cannot be delivered, nor the #GP and #DF that
/// follow, so the CPU shuts down (a triple fault). Used by the runner's reset test.
pub fn triple_fault() -> ! {
    log::info!("test=triple-fault: loading an empty IDT and raising #BP");
    let empty = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::new(0),
    };
    // Safety: deliberately destroys exception delivery on this CPU; the machine resets.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3");
    }
    halt_forever()
}
