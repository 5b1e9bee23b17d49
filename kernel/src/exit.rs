//! Leaving QEMU with a verdict through the `isa-debug-exit` device (port 0xf4). QEMU exits with
//! `(value << 1) | 1`: 0x10 becomes 33 (pass) and 0x11 becomes 35 (fail); xtask maps them back.
//! On real hardware the port is unconnected, so the CPU halts instead.

use x86_64::instructions::port::Port;

/// Verdict written to the debug-exit port.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum QemuExit {
    /// Everything asked of this boot succeeded.
    Success = 0x10,
    /// Something failed; the log says what.
    Failure = 0x11,
}

pub fn exit_qemu(code: QemuExit) -> ! {
    // Safety: port 0xf4 is the isa-debug-exit device xtask attaches; on machines without it the
    // write goes nowhere.
    unsafe { Port::<u32>::new(0xf4).write(code as u32) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
