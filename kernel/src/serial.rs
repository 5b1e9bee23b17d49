//! The serial console (COM1, 0x3f8, 115200 baud 8N1): kernel log output and the shell's terminal.
//! (The bootloader's own first lines come at its speed, 38400 baud.)

use core::fmt;
use spin::Mutex;
use uart_16550::{BaudRate, Config, Uart16550, backend::PioBackend};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

static PORT: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

pub fn init() {
    // Safety: COM1's eight ports belong to this driver alone.
    let uart = unsafe { Uart16550::new_port(COM1) };
    if let Ok(mut uart) = uart
        && uart
            .init(Config {
                baud_rate: BaudRate::Baud115200,
                ..Config::default()
            })
            .is_ok()
    {
        *PORT.lock() = Some(uart);
    }
}

/// Writes a whole string; interrupts are held off so a timer tick can't interleave with it.
pub fn write_str(s: &str) {
    write_bytes(s.as_bytes());
}

/// Writes raw bytes (user console output), turning `\n` into `\r\n`, and shows them on the
/// screen (`fbcon`).
pub fn write_bytes(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut port = PORT.lock();
        if let Some(uart) = port.as_mut() {
            for chunk in bytes.split_inclusive(|&b| b == b'\n') {
                match chunk.split_last() {
                    Some((b'\n', body)) => {
                        uart.send_bytes_exact(body);
                        uart.send_bytes_exact(b"\r\n");
                    }
                    _ => uart.send_bytes_exact(chunk),
                }
            }
        }
        drop(port);
        crate::fbcon::write_bytes(bytes);
    });
}

/// A byte typed on the console, if one is waiting (never blocks; skips if the port is busy).
pub fn try_read_byte() -> Option<u8> {
    let mut port = PORT.try_lock()?;
    port.as_mut()?.try_receive_byte().ok()
}

/// A lock-free writer for the panic path: it polls the UART's line-status register directly, so
/// it works even when the panicking CPU held the console lock.
pub struct PanicWriter;

impl fmt::Write for PanicWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                raw_byte(b'\r');
            }
            raw_byte(b);
        }
        crate::fbcon::write_panic(s.as_bytes());
        Ok(())
    }
}

fn raw_byte(b: u8) {
    // Safety: reading LSR and writing THR of COM1 have no side effects beyond sending the byte.
    unsafe {
        let mut lsr = Port::<u8>::new(COM1 + 5);
        let mut spins = 0u32;
        while lsr.read() & 0x20 == 0 && spins < 100_000 {
            spins += 1;
        }
        Port::<u8>::new(COM1).write(b);
    }
}
