//! `chanbench`: one binary, two roles (`a` = process bench-a, `b` = process bench-b), each on a
//! CPU of its own. bench-a serves the shell: for `chanbench` it measures, in one run, pipelined
//! throughput and round-trip time over a pair of shared-memory channels and over kernel IPC, with
//! the syscalls each made; for `ipcbench` only kernel-IPC round trips. bench-b sinks and echoes.
//! Every message carries a pattern derived from its sequence number and is checked.
#![no_std]
#![no_main]

use chanbench::{
    BENCH_A, BENCH_B, FULL_RUN, Plan, REGION_AB, REGION_BA, Report, op, per_second, probe_ok,
    probe_words, word, words,
};
use libsys::chan::{ChanMessage, Consumer, Producer, SysWaiter};
use libsys::log;

libsys::entry!(main);

type Msg = [u8; 64];
const TAG: u32 = 0xBE;
/// Polls of an empty ring before the consumer sleeps.
const SPIN_POLLS: u32 = 200_000;

fn main(args: &str) -> i32 {
    match args.trim() {
        "a" => role_a(),
        "b" => role_b(),
        other => {
            log!("chanbench: unknown role '{other}' (expected 'a' or 'b')");
            2
        }
    }
}

fn syscalls() -> u64 {
    libsys::self_info().map_or(0, |i| i.syscalls)
}

fn find(name: &str) -> u32 {
    loop {
        match libsys::lookup(name) {
            Ok(pid) => return pid,
            Err(_) => libsys::sleep_ns(10_000_000),
        }
    }
}

fn probe(seq: u64) -> ChanMessage {
    ChanMessage {
        tag: TAG,
        len: 56,
        payload: probe_words(seq),
    }
}

struct Ends {
    tx: Producer<'static, SysWaiter>,
    rx: Consumer<'static, SysWaiter>,
}

fn attach(tx_region: &str, rx_region: &str, peer: u32) -> Option<Ends> {
    let tx = libsys::chan::producer(tx_region, SysWaiter::new(peer));
    let rx = libsys::chan::consumer(rx_region, SysWaiter::new(peer));
    match (tx, rx) {
        (Ok(tx), Ok(mut rx)) => {
            // Alone on its CPU, a consumer may spin long before it sleeps in the kernel: about a
            // millisecond of polling under emulation, far less on hardware.
            rx.set_spin_limit(SPIN_POLLS);
            Some(Ends { tx, rx })
        }
        (tx, rx) => {
            log!(
                "chanbench: cannot attach channels {tx_region}/{rx_region}: {:?} {:?}",
                tx.err(),
                rx.err()
            );
            None
        }
    }
}

/// Sends one message, spinning while the ring is full. Returns false on a channel error.
fn send_spin(tx: &mut Producer<'static, SysWaiter>, m: &ChanMessage) -> bool {
    loop {
        match tx.send(m) {
            Ok(_) => return true,
            Err(libchan::SendError::Full) => core::hint::spin_loop(),
            Err(e) => {
                log!("chanbench: send refused: {e:?}");
                return false;
            }
        }
    }
}

/// Receives one message, sleeping in the kernel when the ring stays empty.
fn recv_one(rx: &mut Consumer<'static, SysWaiter>) -> Option<ChanMessage> {
    loop {
        match rx.recv_wait(None) {
            Ok(Some(m)) => return Some(m),
            Ok(None) => continue,
            Err(e) => {
                log!("chanbench: receive refused: {e:?}");
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bench-b

fn role_b() -> i32 {
    let a = find(BENCH_A);
    let Some(mut ch) = attach(REGION_BA, REGION_AB, a) else {
        return 1;
    };
    let mut msg: Msg = [0; 64];
    let mut pending: Option<(u32, Msg)> = None;
    let (mut last_errors, mut last_syscalls) = (0u64, 0u64);
    loop {
        let got = match pending.take() {
            Some((to, reply)) => libsys::ipc_reply_recv(to, &reply, &mut msg),
            None => libsys::ipc_recv(&mut msg, None),
        };
        let sender = match got {
            Ok(s) => s,
            Err(e) => {
                log!("chanbench b: receive failed: {e}");
                libsys::sleep_ns(10_000_000);
                continue;
            }
        };
        let n = word(&msg, 1);
        let start = syscalls();
        let mut errors = 0u64;
        match word(&msg, 0) {
            op::CHAN_SINK => {
                let mut batch = [ChanMessage::default(); 32];
                let mut seq = 0;
                while seq < n {
                    let got = match ch.rx.recv_batch_wait(&mut batch, None) {
                        Ok(k) => k,
                        Err(e) => {
                            log!("chanbench b: receive refused: {e:?}");
                            errors += 1;
                            break;
                        }
                    };
                    for m in &batch[..got] {
                        if m.tag != TAG || !probe_ok(seq, &m.payload) {
                            errors += 1;
                        }
                        seq += 1;
                    }
                }
            }
            op::CHAN_ECHO => {
                for _ in 0..n {
                    let Some(m) = recv_one(&mut ch.rx) else {
                        errors += 1;
                        break;
                    };
                    if !send_spin(&mut ch.tx, &m) {
                        errors += 1;
                        break;
                    }
                }
            }
            op::KERN_SINK => {
                for seq in 0..n {
                    let mut m: Msg = [0; 64];
                    match libsys::ipc_recv(&mut m, None) {
                        Ok(_) if word(&m, 0) == seq && word(&m, 7) == !seq => {}
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                }
            }
            op::KERN_ECHO if n > 0 => {
                // The first call, then reply-and-receive for the rest; the last reply goes out
                // with the next receive at the top of the loop.
                let mut m: Msg = [0; 64];
                let mut from = match libsys::ipc_recv(&mut m, None) {
                    Ok(f) => f,
                    Err(_) => {
                        errors += 1;
                        0
                    }
                };
                for _ in 1..n {
                    let reply = m;
                    match libsys::ipc_reply_recv(from, &reply, &mut m) {
                        Ok(f) => from = f,
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                }
                pending = Some((from, m));
            }
            op::REPORT => {
                pending = Some((sender, words(&[last_errors, last_syscalls])));
                continue;
            }
            other => log!("chanbench b: unknown operation {other}"),
        }
        last_errors = errors;
        // The two self_info calls of this bookkeeping are not the phase's.
        last_syscalls = syscalls().saturating_sub(start + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// bench-a

fn role_a() -> i32 {
    let b = find(BENCH_B);
    let Some(mut ch) = attach(REGION_AB, REGION_BA, b) else {
        return 1;
    };
    let mut request: Msg = [0; 64];
    let mut requester = match libsys::ipc_recv(&mut request, None) {
        Ok(s) => s,
        Err(e) => {
            log!("chanbench a: receive failed: {e}");
            return 1;
        }
    };
    loop {
        let n = word(&request, 0);
        let reply = if word(&request, 1) == FULL_RUN {
            let r = full_run(b, &mut ch, Plan::for_n(n));
            log!(
                "chanbench: chan_msgs_per_s={} kernel_msgs_per_s={} chan_rtt_ns={} kernel_rtt_ns={} errors={}",
                r.chan_msgs_per_s,
                r.kernel_msgs_per_s,
                r.chan_rtt_ns,
                r.kernel_rtt_ns,
                r.errors
            );
            r.encode()
        } else {
            let (done, ns, errors) = kernel_round_trips(b, n);
            log!(
                "ipcbench: round_trips={done} rtt_ns={} errors={errors}",
                ns.checked_div(done).unwrap_or(0)
            );
            words(&[done, ns, errors])
        };
        match libsys::ipc_reply_recv(requester, &reply, &mut request) {
            Ok(s) => requester = s,
            Err(e) => {
                log!("chanbench a: reply to pid {requester} failed: {e}");
                match libsys::ipc_recv(&mut request, None) {
                    Ok(s) => requester = s,
                    Err(_) => libsys::sleep_ns(10_000_000),
                }
            }
        }
    }
}

/// Asks bench-b for the errors and syscalls of the phase it just finished.
fn report_of_b(b: u32) -> (u64, u64) {
    let mut reply: Msg = [0; 64];
    match libsys::ipc_call(b, &words(&[op::REPORT]), &mut reply) {
        Ok(()) => (word(&reply, 0), word(&reply, 1)),
        Err(e) => {
            log!("chanbench a: report from bench-b failed: {e}");
            (1, 0)
        }
    }
}

fn start_phase(b: u32, operation: u64, n: u64) -> bool {
    match libsys::ipc_send(b, &words(&[operation, n])) {
        Ok(()) => true,
        Err(e) => {
            log!("chanbench a: cannot start phase {operation}: {e}");
            false
        }
    }
}

fn kernel_round_trips(b: u32, n: u64) -> (u64, u64, u64) {
    if !start_phase(b, op::KERN_ECHO, n) {
        return (0, 0, n.max(1));
    }
    let mut reply: Msg = [0; 64];
    let (mut done, mut errors) = (0, 0);
    let t0 = libsys::time_ns();
    for seq in 0..n {
        let m = words(&[seq, 1, 2, 3, 4, 5, 6, !seq]);
        match libsys::ipc_call(b, &m, &mut reply) {
            Ok(()) if reply == m => done += 1,
            Ok(()) => {
                done += 1;
                errors += 1
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    let ns = libsys::time_ns() - t0;
    let (b_errors, _) = report_of_b(b);
    (done, ns, errors + b_errors)
}

fn full_run(b: u32, ch: &mut Ends, plan: Plan) -> Report {
    let mut r = Report {
        chan_msgs: plan.chan_msgs,
        ..Report::default()
    };

    // 1. Channel, pipelined: batches of 32, one index store per batch.
    if start_phase(b, op::CHAN_SINK, plan.chan_msgs) {
        let s0 = syscalls();
        let t0 = libsys::time_ns();
        let mut batch = [ChanMessage::default(); 32];
        let mut seq = 0;
        'send: while seq < plan.chan_msgs {
            let k = (plan.chan_msgs - seq).min(32) as usize;
            for (i, m) in batch[..k].iter_mut().enumerate() {
                *m = probe(seq + i as u64);
            }
            let mut sent = 0;
            while sent < k {
                match ch.tx.send_batch(&batch[sent..k]) {
                    Ok(n) => sent += n,
                    Err(libchan::SendError::Full) => core::hint::spin_loop(),
                    Err(e) => {
                        log!("chanbench a: send refused: {e:?}");
                        r.errors += 1;
                        break 'send;
                    }
                }
            }
            seq += k as u64;
        }
        let s1 = syscalls();
        let (b_errors, b_syscalls) = report_of_b(b);
        let ns = libsys::time_ns() - t0;
        r.chan_msgs_per_s = per_second(plan.chan_msgs, ns);
        // a's own: the time and self_info calls of the measurement are not the channel's.
        r.chan_syscalls = s1.saturating_sub(s0 + 1) + b_syscalls;
        r.errors += b_errors;
    }

    // 2. Channel, ping-pong.
    if start_phase(b, op::CHAN_ECHO, plan.chan_round_trips) {
        let t0 = libsys::time_ns();
        for seq in 0..plan.chan_round_trips {
            if !send_spin(&mut ch.tx, &probe(seq)) {
                r.errors += 1;
                break;
            }
            match recv_one(&mut ch.rx) {
                Some(m) if probe_ok(seq, &m.payload) => {}
                _ => r.errors += 1,
            }
        }
        let ns = libsys::time_ns() - t0;
        r.chan_rtt_ns = ns / plan.chan_round_trips;
        r.errors += report_of_b(b).0;
    }

    // 3. Kernel IPC, pipelined: back-to-back sends (each one trap for the sender, one for the
    // receiver).
    if start_phase(b, op::KERN_SINK, plan.kernel_msgs) {
        let s0 = syscalls();
        let t0 = libsys::time_ns();
        for seq in 0..plan.kernel_msgs {
            if libsys::ipc_send(b, &words(&[seq, 1, 2, 3, 4, 5, 6, !seq])).is_err() {
                r.errors += 1;
                break;
            }
        }
        let s1 = syscalls();
        let (b_errors, b_syscalls) = report_of_b(b);
        let ns = libsys::time_ns() - t0;
        r.kernel_msgs_per_s = per_second(plan.kernel_msgs, ns);
        r.kernel_syscalls = s1.saturating_sub(s0 + 1) + b_syscalls;
        r.errors += b_errors;
    }

    // 4. Kernel IPC, round trips.
    let (done, ns, errors) = kernel_round_trips(b, plan.kernel_round_trips);
    r.kernel_rtt_ns = ns.checked_div(done).unwrap_or(0);
    r.errors += errors;
    r
}
