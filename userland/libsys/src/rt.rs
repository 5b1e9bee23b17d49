//! The runtime of an Axolotl program: `_start`, the heap and the panic handler. Built only for
//! `x86_64-unknown-none`.
//!
//! Entry contract (the kernel's side): `_start` is entered in ring 3 with `rdi` pointing to the
//! process's argument string (UTF-8, `rsi` bytes long, readable), `rdx` = the pid, and `rsp`
//! 16-byte aligned at the top of a 32-page stack. `_start` re-aligns `rsp` anyway, clears `rbp` (so
//! backtraces end there) and `call`s [`start`], which therefore sees the SysV entry alignment.

use core::fmt::Write;
use core::panic::PanicInfo;

use linked_list_allocator::LockedHeap;

use crate::io::StackBuf;

/// Exit code of a process that panicked.
pub const PANIC_EXIT_CODE: i32 = 101;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

core::arch::global_asm!(
    ".pushsection .text._start, \"ax\", @progbits",
    ".globl _start",
    ".type _start, @function",
    "_start:",
    "    and rsp, -16",
    "    xor ebp, ebp",
    "    call {start}",
    "    ud2",
    ".size _start, . - _start",
    ".popsection",
    start = sym start,
);

// Safety: `entry!` defines this symbol with exactly this signature as a plain safe Rust
// function; a program without `entry!` fails to link rather than call something else.
unsafe extern "Rust" {
    /// The program's main function, defined by [`entry!`](crate::entry).
    safe fn __libsys_main(args: &str) -> i32;
    /// The program's heap memory (start, length), defined by [`entry!`](crate::entry); called
    /// once, by `start`.
    safe fn __libsys_heap() -> (*mut u8, usize);
}

/// Called by `_start` with the kernel's `rdi`, `rsi` and `rdx`: sets up the process, runs its main
/// function and exits with what it returned.
extern "C" fn start(args_ptr: *const u8, args_len: usize, pid: u64) -> ! {
    crate::sys::set_pid(pid as u32);
    let (heap, heap_bytes) = __libsys_heap();
    // Safety: this runs once, first thing in the process, before anything can allocate; the heap
    // array `entry!` defined is used by nothing else (only its address escapes, once, here).
    unsafe { ALLOCATOR.lock().init(heap, heap_bytes) };

    let bytes: &[u8] = if args_ptr.is_null() || args_len == 0 {
        &[]
    } else {
        // Safety: by the entry contract the kernel passes `args_len` readable bytes at
        // `args_ptr`. We copy them to the heap right away, so nothing depends on where the kernel
        // put them or how long they stay.
        unsafe { core::slice::from_raw_parts(args_ptr, args_len) }
    };
    let args: &'static str = match core::str::from_utf8(bytes) {
        Ok(s) => alloc::boxed::Box::leak(alloc::string::String::from(s).into_boxed_str()),
        Err(_) => {
            let _ = crate::log("libsys: the argument string is not UTF-8; running with none");
            ""
        }
    };
    crate::exit(__libsys_main(args))
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut line = StackBuf::<{ crate::io::LOG_LINE_LEN }>::new();
    let _ = match info.location() {
        Some(at) => write!(
            line,
            "panicked at {}:{}: {}",
            at.file(),
            at.line(),
            info.message()
        ),
        None => write!(line, "panicked: {}", info.message()),
    };
    let _ = crate::log(line.as_str_marked());
    crate::exit(PANIC_EXIT_CODE)
}
