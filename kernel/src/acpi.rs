//! Reading the firmware's ACPI tables (through `acpi-tables`, which is tested on the host) over the
//! physical-memory mapping, with every table address checked against what is mapped.

use acpi_tables::{AcpiInfo, PhysMemory};

struct MappedPhys;

impl PhysMemory for MappedPhys {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > crate::memory::phys_mapped_end() {
            return false;
        }
        // Safety: the range lies inside the bootloader's physical-memory mapping (checked above);
        // firmware tables are plain memory, and we only copy out of it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                crate::memory::phys_to_virt(addr).as_ptr::<u8>(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }
}

pub fn init(rsdp: u64) -> AcpiInfo {
    let info = acpi_tables::parse(rsdp, &MappedPhys).unwrap_or_else(|e| panic!("ACPI: {e}"));
    for w in &info.warnings {
        log::warn!("ACPI: {w}");
    }
    let enabled = info.cpus.iter().filter(|c| c.enabled).count();
    log::info!(
        "ACPI rev {}: {} CPUs ({} enabled), {} I/O APIC(s), PCIe ECAM {}, PM timer {}",
        info.revision,
        info.cpus.len(),
        enabled,
        info.io_apics.len(),
        if info.mcfg.is_empty() { "no" } else { "yes" },
        info.pm_timer
            .as_ref()
            .map_or(alloc::string::String::from("no"), |t| alloc::format!(
                "port {:#x}",
                t.port
            )),
    );
    info
}
