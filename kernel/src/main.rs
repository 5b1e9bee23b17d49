//! The Axolotl microkernel: boots through `bootloader_api` 0.11, brings up every CPU, and (in later
//! stages) runs the isolated user-space servers of the network stack. This file is the boot path:
//! it initialises each subsystem in order and prints `boot: N cpus online boot_ms=T` when all CPUs
//! are up. Hardware-free logic lives in `klib` and `acpi-tables`, which are tested on the host.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod apic;
mod console;
mod devices;
mod exit;
mod fbcon;
mod gate;
mod gdt;
mod heap;
mod ipc;
mod klog;
mod ktest;
mod memory;
mod pci;
mod percpu;
mod pic;
mod process;
mod sched;
mod serial;
mod smp;
mod syscall;
mod time;
mod trap;
mod user;

use bootloader_api::config::Mapping;
use bootloader_api::{BootInfo, BootloaderConfig, entry_point};
use klib::cmdline::{BootMode, Cmdline};
use klib::ramdisk::Ramdisk;

/// What the bootloader must do for us: map all physical memory at an offset of its choosing and
/// keep everything it places itself in the upper half, leaving the lower half to user space.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(0xFFFF_8000_0000_0000);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kmain, config = &BOOTLOADER_CONFIG);

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    let entry_tsc = time::rdtsc();
    serial::init();
    klog::init();
    // The screen shows the log too, for machines without a serial port.
    fbcon::init(boot_info.framebuffer.take());
    // The command line comes first so its log level applies to the whole boot.
    let ramdisk = boot_ramdisk(boot_info);
    let cmdline = load_cmdline(ramdisk.as_ref());
    klog::set_level(cmdline.log_level);
    let mut flags = 0;
    if cmdline.transport == klib::cmdline::Transport::Kernel {
        flags |= axolotl_abi::sysconf::IPC_KERNEL;
    }
    if cmdline.layout == klib::cmdline::Layout::Single {
        flags |= axolotl_abi::sysconf::LAYOUT_SINGLE;
    }
    if cmdline.idle == klib::cmdline::Idle::Poll {
        flags |= axolotl_abi::sysconf::IDLE_POLL;
    }
    SYSCONF.store(flags, core::sync::atomic::Ordering::Relaxed);
    if cmdline.transport == klib::cmdline::Transport::Kernel {
        log::info!("servers talk over kernel IPC (ipc=kernel), not shared-memory channels");
    }
    if cmdline.idle == klib::cmdline::Idle::Poll {
        log::info!(
            "idle servers on CPUs of their own poll for {} ms before they sleep (idle=poll)",
            axolotl_abi::IDLE_POLL_NS / 1_000_000
        );
    }

    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .unwrap_or_else(|| panic!("bootloader gave no physical-memory mapping"));
    memory::init(phys_offset, &boot_info.memory_regions);
    heap::init();

    log::info!(
        "Axolotl kernel {} (log={}, {} MiB usable RAM)",
        env!("CARGO_PKG_VERSION"),
        cmdline.log_level.name(),
        memory::usable_bytes() / (1024 * 1024)
    );

    percpu::init_bsp();
    pic::disable();

    let rsdp = boot_info
        .rsdp_addr
        .into_option()
        .unwrap_or_else(|| panic!("no ACPI RSDP: this kernel needs ACPI to find the CPUs"));
    let acpi = acpi::init(rsdp);
    apic::init_bsp(&acpi);
    time::calibrate(&acpi, cmdline.clock);
    apic::start_timer();
    enable_protections();
    x86_64::instructions::interrupts::enable();
    log::info!("cpu0 online (APIC id {}, bootstrap processor)", apic::id());
    smp::start_aps(&acpi);
    pci::init(&acpi);
    devices::init(&acpi);

    let boot_ms = time::tsc_to_ns(time::rdtsc().wrapping_sub(entry_tsc)) / 1_000_000;
    log::info!(
        "boot: {} cpus online boot_ms={}",
        percpu::online_count(),
        boot_ms
    );

    match cmdline.mode {
        BootMode::Normal => {
            // Interrupts stay off while the scheduler's tables are built: the timer handler
            // takes the same locks.
            x86_64::instructions::interrupts::disable();
            process::start_all(ramdisk);
            sched::idle_loop()
        }
        BootMode::ExitAfterBoot => exit::exit_qemu(exit::QemuExit::Success),
        BootMode::KernelTests => ktest::run_all(),
        BootMode::Panic => panic!("deliberate panic (test=panic)"),
        BootMode::TripleFault => trap::triple_fault(),
        BootMode::Hang => {
            log::info!("test=hang: spinning with interrupts off");
            x86_64::instructions::interrupts::disable();
            loop {
                core::hint::spin_loop();
            }
        }
    }
}

static SYSCONF: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The boot-time choices user programs ask for with `sysconf`.
pub fn sysconf() -> u64 {
    SYSCONF.load(core::sync::atomic::Ordering::Relaxed)
}

/// Turns on SMEP and SMAP when the CPU has them, so the kernel can neither run nor (outside the
/// checked copy routines) touch user pages. APs copy the BSP's CR4.
fn enable_protections() {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let smep = leaf7.ebx & (1 << 7) != 0;
    let smap = leaf7.ebx & (1 << 20) != 0;
    // Safety: setting SMEP/SMAP only restricts the kernel; user copies use stac/clac when SMAP is on.
    unsafe {
        Cr4::update(|f| {
            if smep {
                f.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if smap {
                f.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        })
    };
    user::SMAP.store(smap, core::sync::atomic::Ordering::Relaxed);
    log::info!(
        "kernel protections: SMEP {}, SMAP {}",
        if smep { "on" } else { "absent" },
        if smap { "on" } else { "absent" }
    );
}

/// The ramdisk the bootloader loaded, validated. A missing or corrupt ramdisk is logged and boot
/// continues with defaults, so a damaged image still shows its boot log.
fn boot_ramdisk(boot_info: &BootInfo) -> Option<Ramdisk<'static>> {
    let addr = boot_info.ramdisk_addr.into_option()?;
    let len = boot_info.ramdisk_len as usize;
    // Safety: the bootloader mapped `len` bytes of ramdisk at `addr` and never reuses them; we
    // only read them, and keep them for the kernel's lifetime.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    match Ramdisk::parse(bytes) {
        Ok(disk) => Some(disk),
        Err(e) => {
            log::error!("ignoring boot ramdisk: {e}");
            None
        }
    }
}

fn load_cmdline(ramdisk: Option<&Ramdisk<'static>>) -> Cmdline {
    let Some(text) = ramdisk.and_then(|d| d.get("cmdline")) else {
        return Cmdline::default();
    };
    let Ok(text) = core::str::from_utf8(text) else {
        log::error!("kernel command line is not UTF-8; using defaults");
        return Cmdline::default();
    };
    Cmdline::parse(text, &mut |e| log::warn!("{e}"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let cpu = percpu::try_current_index().map_or(-1, |i| i as i64);
    let mut out = serial::PanicWriter;
    let _ = core::fmt::Write::write_fmt(&mut out, format_args!("\nKERNEL PANIC on cpu{cpu}: "));
    if let Some(loc) = info.location() {
        let _ = core::fmt::Write::write_fmt(
            &mut out,
            format_args!("{}:{}:{}: ", loc.file(), loc.line(), loc.column()),
        );
    }
    let _ = core::fmt::Write::write_fmt(&mut out, format_args!("{}\n", info.message()));
    smp::stop_others();
    exit::exit_qemu(exit::QemuExit::Failure)
}
