//! Access to user memory from system calls: every range is checked, page by page, to be mapped
//! user-accessible (and writable, for output) in the calling process before it is copied.

use alloc::string::String;
use alloc::vec::Vec;
use axolotl_abi::Error;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set when the CPU has SMAP and it is enabled: user accesses need `stac`/`clac`.
pub static SMAP: AtomicBool = AtomicBool::new(false);

fn check(addr: u64, len: u64, write: bool) -> Result<(), Error> {
    let end = addr.checked_add(len).ok_or(Error::BadAddress)?;
    if end > axolotl_abi::layout::USER_END {
        return Err(Error::BadAddress);
    }
    if len == 0 {
        return Ok(());
    }
    let me = crate::sched::current().ok_or(Error::BadAddress)?;
    let space = me.space.lock();
    let space = space.as_ref().ok_or(Error::BadAddress)?;
    let mut page = addr & !0xFFF;
    while page < end {
        if !space.user_accessible(page, write) {
            return Err(Error::BadAddress);
        }
        page += 4096;
    }
    Ok(())
}

fn with_user_access<T>(f: impl FnOnce() -> T) -> T {
    let smap = SMAP.load(Ordering::Relaxed);
    if smap {
        // Safety: STAC only permits supervisor access to user pages until the CLAC below.
        unsafe { core::arch::asm!("stac", options(nomem, nostack)) };
    }
    let r = f();
    if smap {
        // Safety: see above.
        unsafe { core::arch::asm!("clac", options(nomem, nostack)) };
    }
    r
}

/// Copies `len` bytes from user address `addr`.
pub fn read_bytes(addr: u64, len: u64) -> Result<Vec<u8>, Error> {
    if len > 1 << 20 {
        return Err(Error::Invalid);
    }
    check(addr, len, false)?;
    let mut v = alloc::vec![0u8; len as usize];
    // Safety: the range was checked to be mapped and user-readable in the current address space,
    // which stays loaded for the whole system call.
    with_user_access(|| unsafe {
        core::ptr::copy_nonoverlapping(addr as *const u8, v.as_mut_ptr(), len as usize)
    });
    Ok(v)
}

/// Copies a UTF-8 string from user memory.
pub fn read_str(addr: u64, len: u64) -> Result<String, Error> {
    String::from_utf8(read_bytes(addr, len)?).map_err(|_| Error::Invalid)
}

/// Copies `data` to user address `addr`.
pub fn write_bytes(addr: u64, data: &[u8]) -> Result<(), Error> {
    check(addr, data.len() as u64, true)?;
    // Safety: the range was checked to be mapped user-writable in the current address space.
    with_user_access(|| unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len())
    });
    Ok(())
}

/// Copies a plain `#[repr(C)]` structure to user memory.
pub fn write_struct<T: Copy>(addr: u64, value: &T) -> Result<(), Error> {
    // Safety: T is a Copy, repr(C) ABI structure without padding-dependent invariants; we only
    // read its bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts(value as *const T as *const u8, core::mem::size_of::<T>())
    };
    write_bytes(addr, bytes)
}
