//! The two Linux process controls std does not offer, declared against the C library std already
//! links (no `libc` crate): killing a whole process group, and making a child die with us.
//! This is the only `unsafe` in xtask.

use std::os::unix::process::CommandExt;
use std::process::Command;

const SIGKILL: i32 = 9;
const PR_SET_PDEATHSIG: i32 = 1;

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, ...) -> i32;
    fn getppid() -> i32;
}

/// Sends SIGKILL to every process of process group `pgid`. Errors (the group is already gone)
/// are ignored: the caller reaps its child afterwards either way.
pub fn kill_process_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return; // never signal "every process" (-1) or our own group (0) by accident
    }
    // Safety: kill(2) takes plain integers and touches no memory of ours.
    unsafe { kill(-pgid, SIGKILL) };
}

/// Makes the child started by `cmd` leader of its own process group (so a timeout can kill it
/// and anything it started) and asks the kernel to SIGKILL it when the thread that spawns it
/// dies (so Ctrl-C on xtask, which the child's group no longer receives, still ends it). The
/// spawning thread must therefore wait for the child itself, as the QEMU runner does.
pub fn detach_and_tie_to_parent(cmd: &mut Command) {
    cmd.process_group(0);
    let parent = std::process::id() as i32;
    // Safety: the closure runs in the forked child before exec and only makes two system calls
    // (prctl, getppid), both async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            if prctl(PR_SET_PDEATHSIG, SIGKILL as std::ffi::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if getppid() != parent {
                const ESRCH: i32 = 3;
                return Err(std::io::Error::from_raw_os_error(ESRCH));
            }
            Ok(())
        })
    };
}
