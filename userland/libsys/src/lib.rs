//! `libsys`: the runtime every Axolotl user program links. It provides
//!
//! - the program entry: `_start` (in [`rt`], built only for `x86_64-unknown-none`) aligns the
//!   stack, sets up a 1 MiB heap, and calls the program's `main(args: &str) -> i32`, declared with
//!   [`entry!`]; when `main` returns, its value becomes the exit code;
//! - a panic handler that logs `panicked at FILE:LINE: MSG` and exits with code 101;
//! - a typed wrapper for every system call of [`axolotl_abi::nr`] (this module's functions), each
//!   returning [`Result`] with the ABI's [`Error`];
//! - console output ([`print!`], [`println!`]) and kernel-log output ([`log!`]) without allocating.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! libsys::entry!(main);
//! fn main(args: &str) -> i32 {
//!     libsys::log!("hello, args={args}");
//!     0
//! }
//! ```
//!
//! Everything that does not talk to the kernel (buffers, message words) also builds on the host,
//! where it is unit-tested; the system-call wrappers need x86_64 and only make sense on Axolotl.
#![no_std]

extern crate alloc;

pub mod chan;
pub mod io;
pub mod msg;
#[cfg(target_os = "none")]
pub mod rt;
#[cfg(target_arch = "x86_64")]
mod sys;
#[cfg(target_arch = "x86_64")]
pub mod syscall;
pub mod transport;

pub use axolotl_abi as abi;
pub use axolotl_abi::{CpuInfo, Error, FaultRecord, MapInfo, PciInfo, ProcInfo, ProcOp, ProcState};
pub use msg::Message;
#[cfg(target_arch = "x86_64")]
pub use sys::*;

/// The result of a system call.
pub type Result<T> = core::result::Result<T, Error>;

/// Declares the program's main function: `libsys::entry!(main);` with `fn main(args: &str) -> i32`.
///
/// `args` is the process's argument string from the system manifest (empty when none); the
/// returned value is the exit code. Exactly one `entry!` per program.
///
/// The heap is 1 MiB; a program that needs more says so: `libsys::entry!(main, heap = 16 << 20);`
/// (a static array in `.bss`, which the kernel's loader zero-fills).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!($main, heap = 1 << 20);
    };
    ($main:path, heap = $bytes:expr) => {
        /// The program's main function, called by `libsys`'s `_start`.
        #[unsafe(export_name = "__libsys_main")]
        fn __libsys_main(args: &str) -> i32 {
            let main: fn(&str) -> i32 = $main;
            main(args)
        }

        /// The program's heap memory, handed to the allocator once by `libsys`'s `_start`.
        #[unsafe(export_name = "__libsys_heap")]
        fn __libsys_heap() -> (*mut u8, usize) {
            const BYTES: usize = $bytes;
            static mut HEAP: [u8; BYTES] = [0; BYTES];
            ((&raw mut HEAP).cast::<u8>(), BYTES)
        }
    };
}

/// Prints to the console (`CONSOLE_WRITE`, needs the `console` grant); `\n` becomes `\r\n`.
/// Errors are ignored, as for `std`'s `print!` to a closed terminal.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::io::_print(format_args!($($arg)*))
    };
}

/// Prints a line to the console, like [`print!`] followed by a newline.
#[macro_export]
macro_rules! println {
    () => {
        $crate::io::_print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::io::_print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes one line to the kernel log (`LOG`), formatted into a stack buffer of
/// [`io::LOG_LINE_LEN`] bytes; a longer line is cut and ends in `...`. Errors are ignored.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::io::_log(format_args!($($arg)*))
    };
}
