//! PCI: configuration space through ECAM (from the ACPI MCFG table) or legacy port I/O, a scan of
//! every bus reachable from bus 0, BAR sizing, and the device table that `lspci` prints and that
//! device grants (`nic0`, ...) name. Devices the kernel does not know are listed and left alone.

use alloc::vec::Vec;
use spin::{Mutex, Once};
use x86_64::instructions::port::Port;

/// One base address register.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bar {
    pub addr: u64,
    pub size: u64,
    pub io: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct PciDevice {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub irq_pin: u8,
    pub irq_line: u8,
    pub bars: [Bar; 6],
    /// Offset of the MSI capability, if any.
    pub msi: Option<u8>,
}

enum Access {
    Ecam {
        base: u64,
        start_bus: u8,
        end_bus: u8,
        mapped: Mutex<Vec<(u8, u64)>>,
    },
    Ports,
}

static ACCESS: Once<Access> = Once::new();
static PORTS: Mutex<()> = Mutex::new(());
static DEVICES: Once<Vec<PciDevice>> = Once::new();

fn ecam_bus(base: u64, start: u8, mapped: &Mutex<Vec<(u8, u64)>>, bus: u8) -> Option<u64> {
    let mut m = mapped.lock();
    if let Some(&(_, va)) = m.iter().find(|(b, _)| *b == bus) {
        return Some(va);
    }
    let phys = base + ((bus - start) as u64) * (1 << 20);
    let va = crate::memory::map_mmio(phys, 1 << 20).ok()?.as_u64();
    m.push((bus, va));
    Some(va)
}

/// Where config register `off` of bus/dev/func is: an ECAM address, or the port-I/O address
/// word (None when the bus's ECAM window cannot be mapped).
enum Target {
    Mmio(u64),
    Port(u32),
}

fn target(bus: u8, dev: u8, func: u8, off: u8) -> Option<Target> {
    match ACCESS.get() {
        Some(Access::Ecam {
            base,
            start_bus,
            end_bus,
            mapped,
        }) if bus >= *start_bus && bus <= *end_bus => {
            let va = ecam_bus(*base, *start_bus, mapped, bus)?;
            Some(Target::Mmio(
                va + ((dev as u64) << 15) + ((func as u64) << 12) + (off as u64 & 0xFFC),
            ))
        }
        _ => Some(Target::Port(
            0x8000_0000u32
                | (bus as u32) << 16
                | (dev as u32) << 11
                | (func as u32) << 8
                | (off as u32 & 0xFC),
        )),
    }
}

/// Reads the 32-bit config register at `off` (4-byte aligned, < 256) of bus/dev/func.
pub fn read32(bus: u8, dev: u8, func: u8, off: u8) -> u32 {
    match target(bus, dev, func, off) {
        // Safety: `addr` is inside the uncached mapping of this bus's ECAM window.
        Some(Target::Mmio(addr)) => unsafe { core::ptr::read_volatile(addr as *const u32) },
        Some(Target::Port(a)) => {
            let _g = PORTS.lock();
            // Safety: CONFIG_ADDRESS/CONFIG_DATA are the standard PCI mechanism #1 ports, used
            // under a lock so address and data stay paired.
            unsafe {
                Port::<u32>::new(0xCF8).write(a);
                Port::<u32>::new(0xCFC).read()
            }
        }
        None => u32::MAX,
    }
}

pub fn write32(bus: u8, dev: u8, func: u8, off: u8, value: u32) {
    match target(bus, dev, func, off) {
        // Safety: as in `read32`.
        Some(Target::Mmio(addr)) => unsafe { core::ptr::write_volatile(addr as *mut u32, value) },
        Some(Target::Port(a)) => {
            let _g = PORTS.lock();
            // Safety: as in `read32`.
            unsafe {
                Port::<u32>::new(0xCF8).write(a);
                Port::<u32>::new(0xCFC).write(value);
            }
        }
        None => {}
    }
}

fn size_bars(bus: u8, dev: u8, func: u8) -> [Bar; 6] {
    let mut bars = [Bar::default(); 6];
    let cmd = read32(bus, dev, func, 0x04);
    // Turn decoding off while the BARs hold all-ones.
    write32(bus, dev, func, 0x04, cmd & !0x3);
    let mut i = 0;
    while i < 6 {
        let off = 0x10 + 4 * i as u8;
        let orig = read32(bus, dev, func, off);
        write32(bus, dev, func, off, u32::MAX);
        let probe = read32(bus, dev, func, off);
        write32(bus, dev, func, off, orig);
        if orig & 1 == 1 {
            let mask = probe & !0x3;
            bars[i] = Bar {
                addr: (orig & !0x3) as u64,
                size: if mask == 0 {
                    0
                } else {
                    (!mask).wrapping_add(1) as u64 & 0xFFFF
                },
                io: true,
            };
            i += 1;
            continue;
        }
        let is64 = (orig >> 1) & 3 == 2;
        let mut addr = (orig & !0xF) as u64;
        let mut mask = (probe & !0xF) as u64;
        if is64 && i < 5 {
            let hi_off = off + 4;
            let hi = read32(bus, dev, func, hi_off);
            write32(bus, dev, func, hi_off, u32::MAX);
            let hi_probe = read32(bus, dev, func, hi_off);
            write32(bus, dev, func, hi_off, hi);
            addr |= (hi as u64) << 32;
            mask |= (hi_probe as u64) << 32;
        } else {
            mask |= 0xFFFF_FFFF_0000_0000;
        }
        let size = if mask & !0xF == 0 {
            0
        } else {
            (!mask).wrapping_add(1)
        };
        bars[i] = Bar {
            addr,
            size,
            io: false,
        };
        i += if is64 { 2 } else { 1 };
    }
    write32(bus, dev, func, 0x04, cmd);
    bars
}

fn find_msi(bus: u8, dev: u8, func: u8) -> Option<u8> {
    let status = read32(bus, dev, func, 0x04) >> 16;
    if status & 0x10 == 0 {
        return None;
    }
    let mut ptr = (read32(bus, dev, func, 0x34) & 0xFC) as u8;
    for _ in 0..48 {
        if ptr < 0x40 {
            return None;
        }
        let cap = read32(bus, dev, func, ptr);
        if cap & 0xFF == 0x05 {
            return Some(ptr);
        }
        ptr = ((cap >> 8) & 0xFC) as u8;
    }
    None
}

fn scan_bus(bus: u8, out: &mut Vec<PciDevice>, depth: u32) {
    if depth > 8 {
        return;
    }
    for dev in 0..32u8 {
        let id = read32(bus, dev, 0, 0);
        if id & 0xFFFF == 0xFFFF {
            continue;
        }
        let header = (read32(bus, dev, 0, 0x0C) >> 16) as u8;
        let funcs = if header & 0x80 != 0 { 8 } else { 1 };
        for func in 0..funcs {
            let id = read32(bus, dev, func, 0);
            if id & 0xFFFF == 0xFFFF {
                continue;
            }
            let class = read32(bus, dev, func, 0x08);
            let htype = (read32(bus, dev, func, 0x0C) >> 16) as u8 & 0x7F;
            let irq = read32(bus, dev, func, 0x3C);
            let d = PciDevice {
                bus,
                dev,
                func,
                vendor: id as u16,
                device: (id >> 16) as u16,
                class: (class >> 24) as u8,
                subclass: (class >> 16) as u8,
                prog_if: (class >> 8) as u8,
                irq_pin: (irq >> 8) as u8,
                irq_line: irq as u8,
                bars: if htype == 0 {
                    size_bars(bus, dev, func)
                } else {
                    [Bar::default(); 6]
                },
                msi: find_msi(bus, dev, func),
            };
            out.push(d);
            if htype == 1 {
                let secondary = (read32(bus, dev, func, 0x18) >> 8) as u8;
                if secondary > bus {
                    scan_bus(secondary, out, depth + 1);
                }
            }
        }
    }
}

pub fn init(acpi: &acpi_tables::AcpiInfo) {
    let access = match acpi.mcfg.iter().find(|m| m.segment == 0) {
        Some(m) => Access::Ecam {
            base: m.base,
            start_bus: m.start_bus,
            end_bus: m.end_bus,
            mapped: Mutex::new(Vec::new()),
        },
        None => Access::Ports,
    };
    let kind = if matches!(access, Access::Ecam { .. }) {
        "ECAM"
    } else {
        "port I/O"
    };
    ACCESS.call_once(|| access);
    let mut devices = Vec::new();
    scan_bus(0, &mut devices, 0);
    log::info!("PCI ({kind}): {} functions", devices.len());
    for d in &devices {
        log::debug!(
            "pci {:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}.{:02x} irq pin {} line {} msi {:?}",
            d.bus,
            d.dev,
            d.func,
            d.vendor,
            d.device,
            d.class,
            d.subclass,
            d.irq_pin,
            d.irq_line,
            d.msi
        );
    }
    DEVICES.call_once(|| devices);
}

pub fn devices() -> &'static [PciDevice] {
    DEVICES.get().map_or(&[], |v| v.as_slice())
}

/// Enables memory decoding and bus mastering (for DMA) on a device.
pub fn enable_bus_master(d: &PciDevice) {
    let cmd = read32(d.bus, d.dev, d.func, 0x04);
    write32(d.bus, d.dev, d.func, 0x04, (cmd & 0xFFFF) | 0x6);
}

/// Points the device's MSI at `vector` on the CPU with `apic_id` and enables it.
pub fn enable_msi(d: &PciDevice, apic_id: u32, vector: u8) -> bool {
    let Some(cap) = d.msi else { return false };
    let ctl = read32(d.bus, d.dev, d.func, cap) >> 16;
    let is64 = ctl & 0x80 != 0;
    let addr = 0xFEE0_0000u32 | ((apic_id & 0xFF) << 12);
    write32(d.bus, d.dev, d.func, cap + 4, addr);
    let data_off = if is64 {
        write32(d.bus, d.dev, d.func, cap + 8, 0);
        cap + 12
    } else {
        cap + 8
    };
    write32(d.bus, d.dev, d.func, data_off, vector as u32);
    // Enable, one vector (multiple-message enable = 0).
    let word = read32(d.bus, d.dev, d.func, cap);
    write32(
        d.bus,
        d.dev,
        d.func,
        cap,
        (word & !(0x70 << 16)) | (1 << 16),
    );
    // Legacy INTx off while MSI is used.
    let cmd = read32(d.bus, d.dev, d.func, 0x04);
    write32(d.bus, d.dev, d.func, 0x04, (cmd & 0xFFFF) | (1 << 10));
    true
}
