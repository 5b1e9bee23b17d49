//! Devices that processes may be granted: NICs found on PCI are named `nic0`, `nic1`, ... in
//! scan order. `map` of a granted device maps its first memory BAR (uncached) into the process;
//! its interrupt (MSI when the device has it, else its INTx line through the I/O APIC) becomes a
//! notification to the process, which re-arms a level-triggered line with `irq_ack`.

use crate::pci::{self, PciDevice};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use spin::{Mutex, Once};

/// NICs the e1000 driver supports: (vendor, device, model).
pub const SUPPORTED_NICS: &[(u16, u16, &str)] = &[
    (0x8086, 0x100E, "82540EM"),
    (0x8086, 0x100F, "82545EM"),
    (0x8086, 0x10D3, "82574L"),
];

/// First vector used for device interrupts.
const DEVICE_VECTOR_BASE: u8 = 0x30;

pub struct Device {
    pub name: String,
    pub pci: PciDevice,
    pub vector: u8,
    /// I/O APIC input for INTx devices (None when MSI is used or the line is unknown).
    pub gsi: Option<u32>,
    pub msi: AtomicBool,
    /// Pid of the process that owns the interrupt (0 = none).
    pub owner: AtomicU32,
}

static DEVICES: Once<Vec<Device>> = Once::new();
static IOAPIC: Mutex<Option<IoApic>> = Mutex::new(None);

struct IoApic {
    base: u64,
    gsi_base: u32,
    pins: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // Safety: IOREGSEL/IOWIN of an I/O APIC mapped uncached; the caller holds the lock.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }
    fn write(&self, reg: u32, v: u32) {
        // Safety: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, v);
        }
    }
    fn route(&self, gsi: u32, vector: u8, dest: u32, level_low: bool, masked: bool) {
        let pin = gsi - self.gsi_base;
        let mut low = vector as u32;
        if level_low {
            low |= (1 << 13) | (1 << 15);
        }
        if masked {
            low |= 1 << 16;
        }
        self.write(0x10 + 2 * pin + 1, dest << 24);
        self.write(0x10 + 2 * pin, low);
    }
    fn set_mask(&self, gsi: u32, masked: bool) {
        let reg = 0x10 + 2 * (gsi - self.gsi_base);
        let v = self.read(reg);
        self.write(
            reg,
            if masked {
                v | (1 << 16)
            } else {
                v & !(1 << 16)
            },
        );
    }
}

/// The I/O APIC input of a PCI device's INTx pin. On QEMU's q35 chipset (host bridge 8086:29c0)
/// this follows the routing its ACPI tables declare (slots 0..24 of bus 0 rotate over PIRQ E-H =
/// GSI 20-23); elsewhere the firmware's interrupt-line register is taken as an ISA IRQ.
fn intx_gsi(d: &PciDevice, acpi: &acpi_tables::AcpiInfo) -> Option<u32> {
    if d.irq_pin == 0 || d.irq_pin > 4 {
        return None;
    }
    let pin = (d.irq_pin - 1) as u32;
    let q35 = pci::devices()
        .iter()
        .any(|h| h.bus == 0 && h.dev == 0 && h.vendor == 0x8086 && h.device == 0x29C0);
    if q35 && d.bus == 0 {
        let slot = d.dev as u32;
        return Some(match slot {
            0..=0x18 => 20 + ((slot + pin) & 3),
            0x19..=0x1D => 16 + (pin & 3),
            0x1E => 20 + (pin & 3),
            _ => 16 + (pin & 3),
        });
    }
    if d.irq_line == 0 || d.irq_line == 0xFF {
        return None;
    }
    let irq = d.irq_line;
    Some(
        acpi.overrides
            .iter()
            .find(|o| o.source == irq)
            .map_or(irq as u32, |o| o.gsi),
    )
}

pub fn init(acpi: &acpi_tables::AcpiInfo) {
    if let Some(io) = acpi.io_apics.first()
        && let Ok(va) = crate::memory::map_mmio(io.address as u64, 0x20)
    {
        let mut a = IoApic {
            base: va.as_u64(),
            gsi_base: io.gsi_base,
            pins: 0,
        };
        a.pins = ((a.read(1) >> 16) & 0xFF) + 1;
        // Everything starts masked.
        for p in 0..a.pins {
            a.write(0x10 + 2 * p, 1 << 16);
        }
        log::debug!(
            "I/O APIC at {:#x}: {} inputs from GSI {}",
            io.address,
            a.pins,
            io.gsi_base
        );
        *IOAPIC.lock() = Some(a);
    }
    let mut list = Vec::new();
    for d in pci::devices() {
        if d.class != 0x02 {
            continue;
        }
        match SUPPORTED_NICS
            .iter()
            .find(|(v, id, _)| *v == d.vendor && *id == d.device)
        {
            Some(&(_, _, model)) => {
                let name = format!("nic{}", list.len());
                let vector = DEVICE_VECTOR_BASE + list.len() as u8;
                let gsi = if d.msi.is_some() {
                    None
                } else {
                    intx_gsi(d, acpi)
                };
                log::info!(
                    "{name}: Intel {model} ({:04x}:{:04x}) at {:02x}:{:02x}.{}, BAR0 {:#x} ({} KiB), irq {}",
                    d.vendor,
                    d.device,
                    d.bus,
                    d.dev,
                    d.func,
                    d.bars[0].addr,
                    d.bars[0].size / 1024,
                    if d.msi.is_some() {
                        String::from("MSI")
                    } else {
                        gsi.map_or(String::from("none"), |g| format!("GSI {g}"))
                    }
                );
                list.push(Device {
                    name,
                    pci: *d,
                    vector,
                    gsi,
                    msi: AtomicBool::new(false),
                    owner: AtomicU32::new(0),
                });
            }
            None => log::warn!(
                "network device {:04x}:{:04x} at {:02x}:{:02x}.{} is not supported by any driver; ignored",
                d.vendor,
                d.device,
                d.bus,
                d.dev,
                d.func
            ),
        }
    }
    DEVICES.call_once(|| list);
}

/// The named device behind a PCI function, if the kernel bound one.
pub fn for_pci(d: &PciDevice) -> Option<&'static Device> {
    DEVICES
        .get()?
        .iter()
        .find(|x| x.pci.bus == d.bus && x.pci.dev == d.dev && x.pci.func == d.func)
}

pub fn by_name(name: &str) -> Option<&'static Device> {
    DEVICES.get()?.iter().find(|d| d.name == name)
}

/// Points `dev`'s interrupt at the CPU of process `pid` and makes that process its owner.
pub fn bind_interrupt(dev: &'static Device, pid: u32, cpu: u32) {
    dev.owner.store(pid, Ordering::Release);
    let apic_id = crate::percpu::get(cpu as usize).map_or(0, |c| c.apic_id);
    pci::enable_bus_master(&dev.pci);
    if pci::enable_msi(&dev.pci, apic_id, dev.vector) {
        dev.msi.store(true, Ordering::Release);
    } else if let (Some(gsi), Some(io)) = (dev.gsi, IOAPIC.lock().as_ref())
        && gsi >= io.gsi_base
        && gsi < io.gsi_base + io.pins
    {
        io.route(gsi, dev.vector, apic_id, true, false);
    }
}

/// The interrupt of a device vector arrived (interrupts off): mask a level line until the
/// owner acknowledges, and notify the owner.
pub fn interrupt(vector: u8) {
    let Some(list) = DEVICES.get() else { return };
    let Some(dev) = list.iter().find(|d| d.vector == vector) else {
        return;
    };
    if !dev.msi.load(Ordering::Relaxed)
        && let (Some(gsi), Some(io)) = (dev.gsi, IOAPIC.lock().as_ref())
    {
        io.set_mask(gsi, true);
    }
    crate::apic::eoi();
    let owner = dev.owner.load(Ordering::Acquire);
    if owner != 0
        && let Some(p) = crate::process::by_pid(owner)
    {
        crate::sched::notify(&p);
    }
}

/// Re-arms the interrupt line of `dev` after its owner handled the cause.
pub fn ack(dev: &Device) {
    if !dev.msi.load(Ordering::Relaxed)
        && let (Some(gsi), Some(io)) = (dev.gsi, IOAPIC.lock().as_ref())
    {
        io.set_mask(gsi, false);
    }
}

/// Number of device vectors in use (for the IDT).
pub fn vectors() -> core::ops::Range<u8> {
    DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + 8
}
