//! Per-CPU global descriptor table and task-state segment. The TSS carries the interrupt stacks
//! (IST) used for double faults, NMIs and machine checks, so those run on a known-good stack even
//! when the kernel stack is exhausted.
//!
//! Selector layout (fixed: `syscall`/`sysret` depend on it): 0x08 kernel code, 0x10 kernel data,
//! 0x18 user data, 0x20 user code, 0x28 TSS.

use alloc::boxed::Box;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot of the double-fault handler.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot of the NMI handler.
pub const NMI_IST: u16 = 1;
/// IST slot of the machine-check handler.
pub const MACHINE_CHECK_IST: u16 = 2;
/// Pages in each IST stack.
const IST_PAGES: u64 = 4;

pub struct CpuGdt {
    gdt: GlobalDescriptorTable,
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub tss_selector: SegmentSelector,
    pub tss: &'static TaskStateSegment,
}

impl CpuGdt {
    pub fn new() -> &'static CpuGdt {
        let mut tss = TaskStateSegment::new();
        for slot in [DOUBLE_FAULT_IST, NMI_IST, MACHINE_CHECK_IST] {
            tss.interrupt_stack_table[slot as usize] = crate::memory::alloc_stack(IST_PAGES)
                .unwrap_or_else(|e| panic!("cannot allocate an IST stack: {e:?}"));
        }
        let tss: &'static TaskStateSegment = Box::leak(Box::new(tss));
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        // User data then user code, in the order `sysret` expects (used from ring 3 onwards).
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        let tss_selector = gdt.append(Descriptor::tss_segment(tss));
        Box::leak(Box::new(CpuGdt {
            gdt,
            kernel_code,
            kernel_data,
            tss_selector,
            tss,
        }))
    }

    /// Loads the table and reloads every segment register on the calling CPU.
    pub fn load(&'static self) {
        self.gdt.load();
        // Safety: the selectors index the table just loaded, with the right descriptor types.
        unsafe {
            CS::set_reg(self.kernel_code);
            SS::set_reg(self.kernel_data);
            DS::set_reg(self.kernel_data);
            ES::set_reg(self.kernel_data);
            load_tss(self.tss_selector);
        }
    }
}
