//! The Linux process controls std does not offer, declared against the C library std already
//! links (no `libc` crate): killing a process or a whole process group, making a child die with
//! us, and catching the signals that end xtask (so that what it made on the host, such as a
//! network namespace, is removed first). This is the only `unsafe` in xtask.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

const SIGKILL: i32 = 9;
const PR_SET_PDEATHSIG: i32 = 1;
/// The signals that end xtask and that [`catch_termination_signals`] catches: hang-up, Ctrl-C,
/// `kill`.
pub const TERMINATION_SIGNALS: [i32; 3] = [SIGHUP, SIGINT, SIGTERM];
const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// `SIG_DFL` and `SIG_ERR` of `signal(2)`.
const SIG_DFL: usize = 0;
const SIG_ERR: usize = usize::MAX;

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, ...) -> i32;
    fn getppid() -> i32;
    /// glibc's `signal` (BSD semantics: the handler stays, interrupted calls restart).
    fn signal(signum: i32, handler: usize) -> usize;
    fn raise(sig: i32) -> i32;
}

/// The last termination signal caught (0: none yet).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_termination_signal(sig: i32) {
    // Only an atomic store: async-signal-safe. The thread that polls
    // [`caught_termination_signal`] does the work.
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// From now on, SIGHUP, SIGINT and SIGTERM no longer end xtask at once: they are recorded for
/// [`caught_termination_signal`], whose caller must clean up and then call
/// [`die_of_signal`]. Errors name the signal that could not be caught.
pub fn catch_termination_signals() -> Result<(), String> {
    for sig in TERMINATION_SIGNALS {
        let handler = on_termination_signal as extern "C" fn(i32) as usize;
        // Safety: `signal` takes a signal number and the address of a function with the C
        // signature `void (int)`; the handler only stores into an atomic, which is
        // async-signal-safe.
        if unsafe { signal(sig, handler) } == SIG_ERR {
            return Err(format!(
                "cannot catch signal {sig}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The termination signal caught since [`catch_termination_signals`], if any.
pub fn caught_termination_signal() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Ends xtask as signal `sig` would have with its default action (so the shell sees "killed by
/// SIGINT"), falling back to exit status 128 + `sig`.
pub fn die_of_signal(sig: i32) -> ! {
    // Safety: both calls take plain integers; restoring the default action first makes `raise`
    // end the process instead of calling our handler again.
    unsafe {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    std::process::exit(128 + sig)
}

/// Sends SIGKILL to the process `pid` (not its group). Errors (it is already gone) are ignored.
pub fn kill_process(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return; // never signal every process, our group or init by accident
    }
    // Safety: kill(2) takes plain integers and touches no memory of ours.
    unsafe { kill(pid, SIGKILL) };
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
