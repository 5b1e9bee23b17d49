//! Bringing up the application processors: each CPU listed enabled in the ACPI MADT is woken with
//! INIT-SIPI-SIPI into a trampoline copied below 1 MiB, which takes it from real mode through
//! protected mode into long mode on the kernel's page tables and jumps to [`ap_entry`] on a stack
//! of its own. APs start one at a time; each reports online before the next is woken.

use crate::percpu::{self, PerCpu};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use x86_64::registers::control::{Cr0, Cr3, Cr4};
use x86_64::registers::model_specific::Efer;
use x86_64::structures::paging::{Page, PageTable, PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

core::arch::global_asm!(
    r#"
.section .rodata.ap_trampoline, "a"
.balign 4096
.global axolotl_ap_trampoline_start
.global axolotl_ap_trampoline_end
.global axolotl_ap_trampoline_cr3
.global axolotl_ap_trampoline_stack
.global axolotl_ap_trampoline_entry
.global axolotl_ap_trampoline_arg
.code16
axolotl_ap_trampoline_start:
    cli
    cld
    xorl %ebx, %ebx
    movw %cs, %bx
    movw %bx, %ds
    shll $4, %ebx
    leal (2f - axolotl_ap_trampoline_start)(%ebx), %eax
    movl %eax, (3f - axolotl_ap_trampoline_start + 2)
    leal (5f - axolotl_ap_trampoline_start)(%ebx), %eax
    movl %eax, (4f - axolotl_ap_trampoline_start)
    lgdtl (3f - axolotl_ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl *(4f - axolotl_ap_trampoline_start)
.code32
5:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (axolotl_ap_trampoline_cr3 - axolotl_ap_trampoline_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    leal (7f - axolotl_ap_trampoline_start)(%ebx), %eax
    movl %eax, (6f - axolotl_ap_trampoline_start)(%ebx)
    ljmpl *(6f - axolotl_ap_trampoline_start)(%ebx)
.code64
7:
    movq (axolotl_ap_trampoline_stack - axolotl_ap_trampoline_start)(%rbx), %rsp
    movq (axolotl_ap_trampoline_arg - axolotl_ap_trampoline_start)(%rbx), %rdi
    movq (axolotl_ap_trampoline_entry - axolotl_ap_trampoline_start)(%rbx), %rax
    xorl %ebp, %ebp
    pushq $0
    jmpq *%rax
.balign 8
2:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
3:
    .word 31
    .long 0
    .word 0
4:
    .long 0
    .word 0x08
    .word 0
6:
    .long 0
    .word 0x18
    .word 0
.balign 8
axolotl_ap_trampoline_cr3: .quad 0
axolotl_ap_trampoline_stack: .quad 0
axolotl_ap_trampoline_entry: .quad 0
axolotl_ap_trampoline_arg: .quad 0
axolotl_ap_trampoline_end:
.code64
.text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static axolotl_ap_trampoline_start: u8;
    static axolotl_ap_trampoline_end: u8;
    static axolotl_ap_trampoline_cr3: u8;
    static axolotl_ap_trampoline_stack: u8;
    static axolotl_ap_trampoline_entry: u8;
    static axolotl_ap_trampoline_arg: u8;
}

/// Pages in each AP's kernel stack.
const AP_STACK_PAGES: u64 = 16;
/// How long an AP may take to report online before it is declared dead.
const AP_TIMEOUT_NS: u64 = 500_000_000;

/// The CPU block being handed to the AP that is starting (one at a time).
static STARTING: AtomicPtr<PerCpu> = AtomicPtr::new(core::ptr::null_mut());
static AP_ARRIVED: AtomicBool = AtomicBool::new(false);
static KERNEL_CR3: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);
/// Bit i set when CPU i checked, on itself, that its per-CPU data and APIC id are right.
pub static SELF_CHECK_OK: AtomicU64 = AtomicU64::new(0);

fn offset_of(sym: &u8) -> usize {
    // Safety: only the address of the linker symbol is taken.
    sym as *const u8 as usize - unsafe { &axolotl_ap_trampoline_start as *const u8 as usize }
}

pub fn start_aps(acpi: &acpi_tables::AcpiInfo) {
    SELF_CHECK_OK.fetch_or(1, Ordering::Relaxed); // the BSP checked itself in init_bsp
    let bsp_apic = crate::apic::id();
    let targets = acpi.cpus.iter().filter(|c| c.apic_id != bsp_apic);
    let disabled = acpi
        .cpus
        .iter()
        .filter(|c| !c.enabled && !c.online_capable)
        .count();
    if disabled > 0 {
        log::info!("skipping {disabled} CPU(s) the MADT lists as disabled");
    }
    let targets: alloc::vec::Vec<_> = targets.filter(|c| c.enabled).map(|c| c.apic_id).collect();
    if targets.is_empty() {
        return;
    }

    // Copy the trampoline into a frame below 1 MiB and identity-map it.
    let frame = crate::memory::alloc_frame_below(0x10_0000)
        .unwrap_or_else(|| panic!("no free frame below 1 MiB for the AP trampoline"));
    let tramp_phys = frame.start_address().as_u64();
    // Safety: start and end delimit the trampoline blob in .rodata.
    let (start, len) = unsafe {
        let s = &axolotl_ap_trampoline_start as *const u8;
        (
            s,
            &axolotl_ap_trampoline_end as *const u8 as usize - s as usize,
        )
    };
    assert!(len <= 4096, "AP trampoline larger than a page");
    let tramp = crate::memory::phys_to_virt(tramp_phys).as_mut_ptr::<u8>();
    // Safety: the frame was just allocated for this purpose and is one page long.
    unsafe { core::ptr::copy_nonoverlapping(start, tramp, len) };
    crate::memory::map_page(
        Page::containing_address(VirtAddr::new(tramp_phys)),
        PhysFrame::containing_address(PhysAddr::new(tramp_phys)),
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    )
    .unwrap_or_else(|e| panic!("cannot identity-map the AP trampoline: {e:?}"));

    // The trampoline loads CR3 in 32-bit mode, so the level-4 table it uses must sit below 4 GiB:
    // use a copy of the kernel's (sharing all lower levels).
    let (kernel_pml4, _) = Cr3::read();
    KERNEL_CR3.store(kernel_pml4.start_address().as_u64(), Ordering::Relaxed);
    BSP_CR4.store(Cr4::read_raw(), Ordering::Relaxed);
    let low_pml4 = crate::memory::alloc_frame_below(1 << 32)
        .unwrap_or_else(|| panic!("no free frame below 4 GiB for the AP page table"));
    // Safety: both frames are page tables mapped at the physical offset; the copy is private.
    unsafe {
        core::ptr::copy_nonoverlapping(
            crate::memory::phys_to_virt(kernel_pml4.start_address().as_u64()).as_ptr::<PageTable>(),
            crate::memory::phys_to_virt(low_pml4.start_address().as_u64())
                .as_mut_ptr::<PageTable>(),
            1,
        )
    };

    let data = |sym: &u8| tramp.wrapping_add(offset_of(sym)) as *mut u64;
    for (i, &apic_id) in targets.iter().enumerate() {
        let index = (i + 1) as u32;
        if index as usize >= percpu::MAX_CPUS {
            log::warn!("more than {} CPUs: ignoring the rest", percpu::MAX_CPUS);
            break;
        }
        let cpu = percpu::create(index, apic_id);
        let stack = crate::memory::alloc_stack(AP_STACK_PAGES)
            .unwrap_or_else(|e| panic!("cannot allocate a stack for cpu{index}: {e:?}"));
        STARTING.store(cpu as *const PerCpu as *mut PerCpu, Ordering::Release);
        AP_ARRIVED.store(false, Ordering::Release);
        // Safety: the data words lie inside the trampoline page, which no AP is executing now
        // (the previous one reported in before we got here).
        unsafe {
            data(&axolotl_ap_trampoline_cr3).write_volatile(low_pml4.start_address().as_u64());
            data(&axolotl_ap_trampoline_stack).write_volatile(stack.as_u64());
            data(&axolotl_ap_trampoline_entry).write_volatile(ap_entry as *const () as u64);
            data(&axolotl_ap_trampoline_arg).write_volatile(index as u64);
        }
        let page = (tramp_phys >> 12) as u8;
        crate::apic::send_init(apic_id);
        crate::time::spin_ns(10_000_000);
        crate::apic::send_startup(apic_id, page);
        crate::time::spin_ns(200_000);
        if !AP_ARRIVED.load(Ordering::Acquire) {
            crate::apic::send_startup(apic_id, page);
        }
        let t0 = crate::time::now_ns();
        while percpu::online_count() < index + 1 {
            if crate::time::now_ns() - t0 > AP_TIMEOUT_NS {
                break;
            }
            core::hint::spin_loop();
        }
        if percpu::online_count() < index + 1 {
            panic!(
                "cpu{index} (APIC id {apic_id}) did not come online within {} ms",
                AP_TIMEOUT_NS / 1_000_000
            );
        }
    }
    let _ = crate::memory::unmap_page(Page::containing_address(VirtAddr::new(tramp_phys)));
}

/// First Rust code an AP runs, on its own stack, still on the trampoline's copy of the page table.
extern "C" fn ap_entry(index: u64) -> ! {
    AP_ARRIVED.store(true, Ordering::Release);
    // Safety: switching to the kernel's own level-4 table, which maps everything the copy did.
    unsafe {
        let frame =
            PhysFrame::containing_address(PhysAddr::new(KERNEL_CR3.load(Ordering::Relaxed)));
        Cr3::write(frame, x86_64::registers::control::Cr3Flags::empty());
        Cr4::write_raw(BSP_CR4.load(Ordering::Relaxed));
        Efer::update(|f| *f |= x86_64::registers::model_specific::EferFlags::NO_EXECUTE_ENABLE);
        Cr0::update(|f| *f |= x86_64::registers::control::Cr0Flags::WRITE_PROTECT);
    }
    let cpu = STARTING.load(Ordering::Acquire);
    // Safety: the BSP stored this CPU's leaked block before waking it and waits for us.
    let cpu: &'static PerCpu = unsafe { &*cpu };
    crate::apic::init_local();
    percpu::activate(cpu);
    let apic_ok = crate::apic::id() == cpu.apic_id;
    if percpu::current().index as u64 == index && apic_ok {
        SELF_CHECK_OK.fetch_or(1 << index, Ordering::Relaxed);
    }
    log::info!("cpu{index} online (APIC id {})", cpu.apic_id);
    crate::apic::start_timer();
    crate::sched::idle_loop()
}

/// Stops every other CPU (panic path).
pub fn stop_others() {
    crate::trap::PANICKING.store(true, Ordering::SeqCst);
    crate::apic::nmi_all_others();
}
