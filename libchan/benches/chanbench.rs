//! Host benchmark of libchan: pipelined throughput between two threads (single sends and
//! batches) and round-trip latency over a request/reply pair of channels, with the syscalls
//! (waits + notifies) they needed. Threads are not pinned. Ends with one summary line:
//! `libchan-bench: msgs_per_s=.. rtt_ns=.. syscalls_per_1k=..`
//!
//! `LIBCHAN_BENCH_MSGS` (default 20 million) and `LIBCHAN_BENCH_RTTS` (default 200 thousand)
//! size the runs. Run with `cargo bench -p libchan --bench chanbench`.

fn main() {
    #[cfg(not(loom))]
    bench::main();
    #[cfg(loom)]
    eprintln!("chanbench: built with --cfg loom, nothing to measure");
}

#[cfg(not(loom))]
#[path = "../tests/common/mod.rs"]
mod common;

/// The benchmark proper (the host's real atomics; meaningless under loom).
#[cfg(not(loom))]
mod bench {
    use super::common::{Event, HostRegion};
    use libchan::{Counters, Message, SendError};
    use std::thread;
    use std::time::Instant;

    fn env_u64(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// What a producer does when the ring is full: spin a little, then give the core away (the
    /// consumer may be waiting for it when the machine has fewer free cores than threads).
    fn backoff(spins: &mut u32) {
        *spins += 1;
        if *spins < 128 {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }

    /// Result of one throughput run.
    struct Throughput {
        msgs_per_s: f64,
        counters: Counters,
    }

    /// Producer sends `total` messages (`batch` per call, 1 = `send`), consumer drains with
    /// `recv_batch_wait`.
    fn throughput(total: u64, batch: usize, capacity: u32) -> Throughput {
        let mut region = HostRegion::channel(capacity);
        let event = Event::default();
        let (mut tx, mut rx) = region.split(&event, &event);
        let start = Instant::now();
        let (tc, rc) = thread::scope(|s| {
            let p = s.spawn(move || {
                let mut msgs = vec![Message::new(1); batch];
                let (mut sent, mut spins) = (0u64, 0u32);
                while sent < total {
                    let want = (total - sent).min(batch as u64) as usize;
                    for (i, m) in msgs[..want].iter_mut().enumerate() {
                        m.payload[0] = sent + i as u64;
                    }
                    let r = if batch == 1 {
                        tx.send(&msgs[0]).map(|_| 1)
                    } else {
                        tx.send_batch(&msgs[..want])
                    };
                    match r {
                        Ok(n) => {
                            sent += n as u64;
                            spins = 0;
                        }
                        Err(SendError::Full) => backoff(&mut spins),
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
                tx.counters()
            });
            let c = s.spawn(move || {
                let mut out = vec![Message::default(); 64];
                let mut got = 0u64;
                while got < total {
                    let n = rx.recv_batch_wait(&mut out, None).expect("recv");
                    for m in &out[..n] {
                        assert_eq!(m.payload[0], got);
                        got += 1;
                    }
                }
                rx.counters()
            });
            (p.join().expect("producer"), c.join().expect("consumer"))
        });
        let secs = start.elapsed().as_secs_f64();
        let mut counters = tc;
        counters.add(&rc);
        Throughput {
            msgs_per_s: total as f64 / secs,
            counters,
        }
    }

    /// Ping-pong over two channels; returns (mean round trip in ns, counters of all four ends).
    fn round_trip(iters: u64) -> (f64, Counters) {
        let mut req = HostRegion::channel(64);
        let mut rep = HostRegion::channel(64);
        let (ev_req, ev_rep) = (Event::default(), Event::default());
        let (mut req_tx, mut req_rx) = req.split(&ev_req, &ev_req);
        let (mut rep_tx, mut rep_rx) = rep.split(&ev_rep, &ev_rep);
        let (elapsed, counters) = thread::scope(|s| {
            let server = s.spawn(move || {
                for _ in 0..iters {
                    let m = req_rx.recv_wait(None).expect("recv").expect("message");
                    rep_tx.send(&m).expect("reply");
                }
                let mut c = req_rx.counters();
                c.add(&rep_tx.counters());
                c
            });
            let client = s.spawn(move || {
                let start = Instant::now();
                for i in 0..iters {
                    let mut m = Message::new(2);
                    m.payload[0] = i;
                    req_tx.send(&m).expect("request");
                    let r = rep_rx.recv_wait(None).expect("recv").expect("message");
                    assert_eq!(r.payload[0], i);
                }
                let elapsed = start.elapsed();
                let mut c = req_tx.counters();
                c.add(&rep_rx.counters());
                (elapsed, c)
            });
            let mut c = server.join().expect("server");
            let (elapsed, cc) = client.join().expect("client");
            c.add(&cc);
            (elapsed, c)
        });
        (elapsed.as_nanos() as f64 / iters as f64, counters)
    }

    fn per_1k(c: &Counters, msgs: u64) -> f64 {
        c.syscalls() as f64 * 1000.0 / msgs as f64
    }

    pub fn main() {
        // `cargo bench` passes `--bench`; nothing here takes arguments.
        let total = env_u64("LIBCHAN_BENCH_MSGS", 20_000_000);
        let rtts = env_u64("LIBCHAN_BENCH_RTTS", 200_000);
        let runs = env_u64("LIBCHAN_BENCH_RUNS", 3).max(1);
        let cores = thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        println!(
            "libchan bench: {total} messages, {rtts} round trips, best of {runs} runs, \
             {cores} cores, threads not pinned"
        );

        let best = |batch: usize| {
            (0..runs)
                .map(|_| throughput(total, batch, 1024))
                .max_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s))
                .expect("at least one run")
        };
        let single = best(1);
        println!(
            "pipelined send(1)       : {:>12.0} msgs/s  syscalls/1k={:.3}",
            single.msgs_per_s,
            per_1k(&single.counters, total),
        );
        let batched = best(32);
        println!(
            "pipelined send_batch(32): {:>12.0} msgs/s  syscalls/1k={:.3}",
            batched.msgs_per_s,
            per_1k(&batched.counters, total),
        );
        let (rtt_ns, rc) = (0..runs)
            .map(|_| round_trip(rtts))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("at least one run");
        println!(
            "ping-pong round trip    : {:>12.0} ns      syscalls/1k={:.3}",
            rtt_ns,
            per_1k(&rc, 2 * rtts)
        );
        println!(
            "libchan-bench: msgs_per_s={:.0} rtt_ns={:.0} syscalls_per_1k={:.3}",
            single.msgs_per_s,
            rtt_ns,
            per_1k(&single.counters, total)
        );
    }
}
