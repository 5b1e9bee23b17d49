//! The raw `syscall` instruction, one function per argument count.
//!
//! Axolotl's convention (see [`axolotl_abi`]): number in `rax`; arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; result in `rax` as an `i64`, negative for a negated
//! [`Error`](axolotl_abi::Error) code. The kernel clobbers `rcx` (return address) and `r11`
//! (flags) and preserves every other register; it runs on its own stack, so the user stack is not
//! touched (`nostack`). The calls are not `nomem`: the kernel reads and writes memory the
//! arguments point to.
//!
//! These are `unsafe` because a pointer argument lets the kernel write into our memory: the caller
//! must pass pointers that are valid for what call `nr` does with them. Use the typed wrappers at
//! the crate root instead.

use core::arch::asm;

/// A call with no arguments.
///
/// # Safety
/// Call `nr` must not write to memory (none of the calls without arguments does).
#[inline(always)]
pub unsafe fn syscall0(nr: u64) -> i64 {
    let ret: i64;
    // Safety: the instruction follows the convention above: only rax (result), rcx and r11 change.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// A call with one argument.
///
/// # Safety
/// A pointer argument must be valid for what call `nr` does with it.
#[inline(always)]
pub unsafe fn syscall1(nr: u64, a0: u64) -> i64 {
    let ret: i64;
    // Safety: as in `syscall0`; the caller vouches for the argument.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a0,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// A call with two arguments.
///
/// # Safety
/// Pointer arguments must be valid for what call `nr` does with them.
#[inline(always)]
pub unsafe fn syscall2(nr: u64, a0: u64, a1: u64) -> i64 {
    let ret: i64;
    // Safety: as in `syscall0`; the caller vouches for the arguments.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a0, in("rsi") a1,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// A call with three arguments.
///
/// # Safety
/// Pointer arguments must be valid for what call `nr` does with them.
#[inline(always)]
pub unsafe fn syscall3(nr: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // Safety: as in `syscall0`; the caller vouches for the arguments.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// A call with four arguments.
///
/// # Safety
/// Pointer arguments must be valid for what call `nr` does with them.
#[inline(always)]
pub unsafe fn syscall4(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // Safety: as in `syscall0`; the caller vouches for the arguments.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, in("r10") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// A call with six arguments.
///
/// # Safety
/// Pointer arguments must be valid for what call `nr` does with them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn syscall6(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // Safety: as in `syscall0`; the caller vouches for the arguments.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, in("r10") a3, in("r8") a4, in("r9") a5,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}
