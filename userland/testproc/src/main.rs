//! `testproc`: a program for the QEMU scenarios, whose behaviour is chosen by its argument string
//! (words separated by spaces or commas, since the manifest's `args=` is one word):
//!
//! - `heartbeat`: logs `heartbeat N` every 200 ms, forever;
//! - `fault-ptr`, `fault-ud2`, `fault-kwrite`: say what they are about to do, then take a genuine
//!   CPU fault (a read of an unmapped user address, an invalid opcode, a write to the kernel half);
//! - `map-denied`: checks that the regions `secret` and `nic0`, which the manifest does not grant
//!   it, are refused;
//! - `map-ok REGION`: maps REGION, writes a pattern over all of it and reads it back;
//! - a job for the shell (a program started on demand): the steps `say WORD`, `sleep SECONDS`
//!   and `exit CODE` in any order (`exit` last), e.g. `say hello sleep 2 exit 3`: logs
//!   `job: args 'ARGS'`, then `say: WORD` for each `say`, sleeps, and exits with CODE (default 0)
//!   after logging `job: exit CODE`.
//!
//! Exit codes: 0 success, 1 a check failed, 2 bad arguments, 3 a fault that should have stopped
//! the process did not; a job's own CODE.
#![no_std]
#![no_main]

use libsys::{Error, MapInfo, log};

libsys::entry!(main);

/// An unmapped, canonical user address.
const BAD_USER_ADDRESS: u64 = 0x0000_5ead_beef_0000;
/// An address in the kernel half: user mode may not write it, mapped or not.
const KERNEL_ADDRESS: u64 = 0xFFFF_8000_0010_0000;
/// Period of `heartbeat`.
const HEARTBEAT_NS: u64 = 200_000_000;

fn main(args: &str) -> i32 {
    let mut words = args
        .split(|c: char| c.is_ascii_whitespace() || c == ',' || c == ':')
        .filter(|w| !w.is_empty());
    let mode = words.next().unwrap_or("");
    if JOB_STEPS.contains(&mode) {
        return job(args);
    }
    let operand = words.next();
    match (mode, operand) {
        ("heartbeat", None) => heartbeat(),
        ("spin", None) => spin(),
        ("crash-at-start", None) => fault_ud2(),
        ("fault-ptr", None) => fault_ptr(),
        ("fault-ud2", None) => fault_ud2(),
        ("fault-kwrite", None) => fault_kwrite(),
        ("map-denied", None) => map_denied(),
        ("map-ok", Some(region)) if words.next().is_none() => map_ok(region),
        ("scribble", Some(region)) if words.next().is_none() => scribble(region),
        ("chan-victim", Some(region)) if words.next().is_none() => chan_victim(region),
        _ => {
            log!(
                "testproc: bad arguments '{args}' (expected heartbeat, fault-ptr, fault-ud2, \
                 fault-kwrite, map-denied, spin, crash-at-start, map-ok REGION, scribble REGION, \
                 chan-victim REGION, or job steps say WORD, sleep SECONDS, exit CODE)"
            );
            2
        }
    }
}

/// The words that make the argument string a job.
const JOB_STEPS: [&str; 3] = ["say", "sleep", "exit"];

/// One step of a job.
#[derive(Clone, Copy)]
enum Step<'a> {
    Say(&'a str),
    Sleep(u64),
    Exit(i32),
}

/// Seconds (`2`, `0.5`) as nanoseconds, at most an hour.
fn seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 4 || frac.len() > 9 || !digits(int) || !digits(frac) {
        return None;
    }
    let mut ns: u64 = int.parse::<u64>().ok()? * 1_000_000_000;
    let mut scale = 100_000_000;
    for b in frac.bytes() {
        ns += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    (ns <= 3_600_000_000_000).then_some(ns)
}

/// Runs the job steps of `args` (checked in full before the first runs); returns the exit code.
fn job(args: &str) -> i32 {
    let mut words = args
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|w| !w.is_empty());
    let mut steps: [Option<Step>; 16] = [None; 16];
    let mut n = 0;
    while let Some(word) = words.next() {
        let operand = words.next();
        let step = match (word, operand) {
            ("say", Some(w)) => Some(Step::Say(w)),
            ("sleep", Some(s)) => seconds(s).map(Step::Sleep),
            ("exit", Some(c)) => c.parse().ok().map(Step::Exit),
            _ => None,
        };
        let (Some(step), true) = (step, n < steps.len()) else {
            log!(
                "job: bad step '{word} {}' in '{args}' (expected at most 16 of say WORD, \
                 sleep SECONDS, exit CODE)",
                operand.unwrap_or("")
            );
            return 2;
        };
        if matches!(step, Step::Exit(_)) && words.clone().next().is_some() {
            log!("job: 'exit' must be the last step of '{args}'");
            return 2;
        }
        steps[n] = Some(step);
        n += 1;
    }
    log!("job: args '{args}'");
    let mut code = 0;
    for step in steps.iter().flatten() {
        match *step {
            Step::Say(w) => log!("say: {w}"),
            Step::Sleep(ns) => libsys::sleep_ns(ns),
            Step::Exit(c) => code = c,
        }
    }
    log!("job: exit {code}");
    code
}

fn heartbeat() -> ! {
    let mut next = libsys::time_ns();
    let mut n = 0u64;
    loop {
        libsys::heartbeat();
        log!("heartbeat {n}");
        n = n.wrapping_add(1);
        next = next.saturating_add(HEARTBEAT_NS);
        let now = libsys::time_ns();
        if next > now {
            libsys::sleep_ns(next - now);
        } else {
            next = now; // we fell behind (a long stop): do not try to catch up in a burst
        }
    }
}

/// Logs that a fault did not stop us and returns the exit code for it.
fn survived(what: &str) -> i32 {
    log!("testproc: FAILED: {what} did not fault");
    3
}

fn fault_ptr() -> i32 {
    log!("testproc: dereferencing a bad pointer");
    // Safety: deliberately unsound, that is the test: nothing is mapped at this user address, so
    // the read faults and the kernel stops the process before any value is produced.
    let v = unsafe { core::ptr::read_volatile(BAD_USER_ADDRESS as *const u64) };
    log!("testproc: read {v:#x}");
    survived("reading an unmapped address")
}

fn fault_ud2() -> i32 {
    log!("testproc: executing ud2");
    // Safety: `ud2` raises an invalid-opcode exception and touches no memory or register; the
    // kernel stops the process there.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    survived("ud2")
}

fn fault_kwrite() -> i32 {
    log!("testproc: writing to kernel memory at {KERNEL_ADDRESS:#x}");
    // Safety: deliberately unsound, that is the test: the kernel half is not user-accessible, so
    // the write faults and nothing is written.
    unsafe { core::ptr::write_volatile(KERNEL_ADDRESS as *mut u64, 0xdead) };
    survived("writing to the kernel half")
}

/// True when `r` is a refusal of a region the manifest does not grant us.
fn refused(r: &Result<MapInfo, Error>) -> bool {
    matches!(r, Err(Error::Denied | Error::NotFound))
}

/// How `map` answered, for the log.
struct Outcome(Result<MapInfo, Error>);

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Ok(info) => write!(f, "MAPPED at {:#x}, {} bytes", info.addr, info.len),
            Err(e) => write!(f, "{e}"),
        }
    }
}

fn map_denied() -> i32 {
    let secret = libsys::map("secret");
    let nic = libsys::map("nic0");
    if refused(&secret) && refused(&nic) {
        log!(
            "map-denied: refused secret ({}) and nic0 ({})",
            Outcome(secret),
            Outcome(nic)
        );
        0
    } else {
        log!(
            "map-denied: FAILED secret: {}; nic0: {}",
            Outcome(secret),
            Outcome(nic)
        );
        1
    }
}

/// The word written at byte offset `offset` of the region.
fn pattern(offset: u64) -> u64 {
    offset.rotate_left(17) ^ 0xA5A5_5A5A_0F0F_F0F0
}

fn map_ok(region: &str) -> i32 {
    let info = match libsys::map(region) {
        Ok(info) => info,
        Err(e) => {
            log!("map-ok: FAILED to map {region}: {e}");
            return 1;
        }
    };
    if info.kind != 0 {
        // Device registers: writing patterns over them could make the device do anything.
        log!(
            "map-ok: {region} len={} phys={:#x} is a device; not written, ok",
            info.len,
            info.phys
        );
        return 0;
    }
    let base = info.addr as *mut u64;
    let words = (info.len / 8) as usize;
    for i in 0..words {
        // Safety: the kernel mapped `info.len` bytes at `info.addr` for us, writable, page aligned
        // and outside anything Rust owns; `i < len / 8` keeps the access inside.
        unsafe { base.add(i).write_volatile(pattern(i as u64 * 8)) };
    }
    for i in 0..words {
        // Safety: as above.
        let got = unsafe { base.add(i).read_volatile() };
        if got != pattern(i as u64 * 8) {
            log!(
                "map-ok: FAILED {region}: offset {:#x} reads {got:#x}, wrote {:#x}",
                i * 8,
                pattern(i as u64 * 8)
            );
            return 1;
        }
    }
    log!("map-ok: {region} len={} phys={:#x} ok", info.len, info.phys);
    0
}

/// Writes pseudo-random garbage over the whole of a channel region it shares, forever, a burst
/// every 50 ms: the peer must refuse what it reads, count it, and keep running.
fn scribble(region: &str) -> i32 {
    let info = match libsys::map(region) {
        Ok(i) => i,
        Err(e) => {
            log!("scribble: cannot map {region}: {e}");
            return 1;
        }
    };
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    // First, a well-formed ring carrying garbage: random descriptors the peer must refuse.
    // Safety: the kernel mapped the channel region for us and wrote its header; we are its
    // producer (and, below, its vandal).
    match unsafe {
        libchan::Producer::attach(info.addr as *mut u8, info.len as usize, libchan::Polling)
    } {
        Ok(mut tx) => {
            log!("scribble: sending 200 messages with random descriptors over {region}");
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut m = libchan::Message::new(7);
                m.len = 16;
                m.payload[0] = x;
                m.payload[1] = x.rotate_left(17);
                while tx.send(&m) == Err(libchan::SendError::Full) {
                    libsys::sleep_ns(1_000_000);
                }
            }
        }
        Err(e) => log!("scribble: cannot attach as producer: {e:?}"),
    }
    libsys::sleep_ns(1_000_000_000);
    log!(
        "scribble: writing garbage over {region} ({} bytes)",
        info.len
    );
    let words = (info.len / 8) as usize;
    let mut round = 0u64;
    loop {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x >> 11) as usize % words;
            // Safety: `i` indexes a word inside the region the kernel mapped for us; the peer
            // reads it concurrently, which is exactly the hostile behaviour under test.
            unsafe { core::ptr::write_volatile((info.addr as *mut u64).add(i), x) };
        }
        round += 1;
        if round.is_multiple_of(20) {
            log!("scribble: {round} bursts written");
        }
        libsys::sleep_ns(50_000_000);
    }
}

/// Consumes a channel whose producer is hostile: logs every refusal (once a second at most, with
/// running counts) and keeps a heartbeat so a test sees it survive.
fn chan_victim(region: &str) -> i32 {
    use libsys::chan::SysWaiter;
    let mut rx = match libsys::chan::consumer(region, SysWaiter::new(0)) {
        Ok(rx) => rx,
        Err(e) => {
            log!("chan-victim: cannot attach {region}: {e}");
            return 1;
        }
    };
    // Every message is taken to carry a buffer descriptor of a pool of 16 × 2 KiB buffers.
    static mut POOL: [u8; 16 * 2048] = [0; 16 * 2048];
    // Safety: POOL is used by this function only, which runs once and never returns.
    let pool = unsafe {
        libchan::PoolView::new(1, core::ptr::addr_of_mut!(POOL) as *mut u8, 16 * 2048, 2048)
    };
    let Ok(mut pool) = pool else {
        log!("chan-victim: cannot set up the pool");
        return 1;
    };
    let mut bad_descriptors = 0u64;
    let mut refused = 0u64;
    let mut received = 0u64;
    let mut last: Option<libchan::RecvError> = None;
    let mut next_report = libsys::time_ns();
    loop {
        match rx.try_recv() {
            Ok(Some(m)) => {
                received += 1;
                if let Err(e) = pool.check(m.descriptor()) {
                    bad_descriptors += 1;
                    if bad_descriptors <= 3 {
                        log!(
                            "chan-victim: refused descriptor {:?}: {e:?}",
                            m.descriptor()
                        );
                    }
                }
            }
            Ok(None) => libsys::sleep_ns(5_000_000),
            Err(e) => {
                refused += 1;
                last = Some(e);
                libsys::sleep_ns(5_000_000);
            }
        }
        let now = libsys::time_ns();
        if now >= next_report {
            let c = rx.counters();
            log!(
                "chan-victim: alive; refused {refused} (bad magic {}, index jumps {}, epoch changes {}), received {received}, refused descriptors {bad_descriptors}, last {:?}",
                c.bad_magic,
                c.index_jumps,
                c.epoch_changes,
                last
            );
            next_report = now + 1_000_000_000;
        }
    }
}

/// Computes without ever entering the kernel for long stretches (tens of milliseconds of emulated
/// work), logging after each: only timer preemption lets anything else run on its CPU.
fn spin() -> ! {
    let mut x = 1u64;
    let mut round = 0u64;
    loop {
        for _ in 0..3_000_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            core::hint::black_box(x);
        }
        round += 1;
        log!("spin: round {round}");
    }
}
