//! The host CPU time QEMU's threads took, read from `/proc`, for `cargo xtask bench`.
//!
//! QEMU runs with `-name axolotl,debug-threads=on` ([`crate::qemu::qemu_args`]), so each
//! emulated CPU is a host thread named `CPU N/TCG` (or `CPU N/KVM`). A [`Snapshot`] is each
//! thread's CPU time and the host's busy and total time (`/proc/stat`); two snapshots give, per
//! guest CPU, the share of one host core its thread ran ([`HostCpu`]). Next to the guest's own
//! busy share (`stat`'s IDLE_MS) it tells a guest CPU that was busy because it worked from one
//! that was "busy" while its thread waited for a host core.

use std::sync::{Arc, Mutex};

/// CPU times at one moment, in the kernel's clock ticks (`USER_HZ`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Each thread of the QEMU process: its name and its user plus system time.
    pub threads: Vec<(String, u64)>,
    /// The host's busy time over all its cores (everything but idle and iowait).
    pub host_busy: u64,
    /// The host's total time over all its cores.
    pub host_total: u64,
    /// The host's cores (`cpuN` lines of `/proc/stat`).
    pub host_cores: u32,
}

/// What two snapshots say, each figure in % of one host core over the time between them.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCpu {
    /// Each emulated CPU's thread, by guest CPU index.
    pub vcpus: Vec<(u32, f64)>,
    /// QEMU's other threads together (its main loop, which also moves the NIC's received frames,
    /// and its helpers).
    pub emulator: f64,
    /// The whole host (up to 100 × `cores`).
    pub host: f64,
    /// The host's cores.
    pub cores: u32,
}

/// User plus system time (ticks) from the text of `/proc/PID/task/TID/stat`. The thread's name
/// is in parentheses and may hold spaces and parentheses itself: the fields are counted from
/// the last `)`.
pub fn parse_task_stat(text: &str) -> Option<u64> {
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: state (field 3), ..., utime (14), stime (15).
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (busy, total, cores) from the text of `/proc/stat`: the `cpu` line's fields summed, busy
/// being all but idle and iowait; cores from the `cpuN` lines.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64, u32)> {
    let mut lines = text.lines();
    let first = lines.next()?;
    let mut words = first.split_ascii_whitespace();
    if words.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = words.map(|w| w.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let busy = total - v[3] - v[4];
    let cores = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count() as u32;
    Some((busy, total, cores))
}

/// The guest CPU index of a QEMU thread named `CPU N/TCG` (or `/KVM`).
pub fn vcpu_of(thread: &str) -> Option<u32> {
    let (n, _) = thread.strip_prefix("CPU ")?.split_once('/')?;
    n.parse().ok()
}

/// The process `pid`'s threads and the host's times now (`None` when `/proc` could not be
/// read: the process is gone, or this is no Linux host).
pub fn snapshot(pid: u32) -> Option<Snapshot> {
    let (host_busy, host_total, host_cores) =
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let dir = entry.path();
        // A thread that ended between the listing and the read is left out.
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        if let Some(t) = parse_task_stat(&stat) {
            threads.push((name.trim_end().to_string(), t));
        }
    }
    Some(Snapshot {
        threads,
        host_busy,
        host_total,
        host_cores,
    })
}

/// What happened between `a` and the later `b`; `None` when no time passed or no emulated CPU
/// thread is in both.
pub fn between(a: &Snapshot, b: &Snapshot) -> Option<HostCpu> {
    let cores = b.host_cores.max(1);
    // Wall time in ticks: the host's total time is that many ticks per core.
    let wall = b.host_total.checked_sub(a.host_total)? as f64 / f64::from(cores);
    if wall <= 0.0 {
        return None;
    }
    let pct = |ticks: u64| 100.0 * ticks as f64 / wall;
    let mut vcpus = Vec::new();
    let mut emulator = 0;
    for (name, t1) in &b.threads {
        // Threads are matched by name: QEMU's names are unique but for its worker pool, whose
        // threads are summed anyway.
        let t0: u64 = a
            .threads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(0);
        let d = t1.saturating_sub(t0);
        match vcpu_of(name) {
            Some(cpu) => vcpus.push((cpu, pct(d))),
            None => emulator += d,
        }
    }
    if vcpus.is_empty() {
        return None;
    }
    vcpus.sort_by_key(|&(cpu, _)| cpu);
    Some(HostCpu {
        vcpus,
        emulator: pct(emulator),
        host: pct(b.host_busy.saturating_sub(a.host_busy)),
        cores,
    })
}

/// Snapshots taken during an exec session, each with the index of the command about to be
/// typed. Shared between the session's thread and the caller.
#[derive(Debug, Clone, Default)]
pub struct Samples(Arc<Mutex<Vec<(usize, Snapshot)>>>);

impl Samples {
    /// Takes a snapshot of `pid` for command `index` (nothing when `/proc` cannot be read).
    pub fn take(&self, pid: u32, index: usize) {
        if let Some(s) = snapshot(pid)
            && let Ok(mut v) = self.0.lock()
        {
            v.push((index, s));
        }
    }

    /// The snapshot taken for command `index`, if any.
    pub fn at(&self, index: usize) -> Option<Snapshot> {
        let v = self.0.lock().ok()?;
        v.iter().find(|(i, _)| *i == index).map(|(_, s)| s.clone())
    }
}

impl PartialEq for Samples {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Samples {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_stat_counts_from_the_last_parenthesis() {
        // A name with a space, a slash and a parenthesis of its own.
        let line = "4242 (CPU 5/TCG) x) S 1 4240 4240 0 -1 4194368 300 0 0 0 750 125 0 0 20 0 \
                    12 0 999 1000 200\n";
        assert_eq!(parse_task_stat(line), Some(875));
        assert_eq!(parse_task_stat("4242 (qemu) S 1 2"), None);
        assert_eq!(parse_task_stat("no parenthesis"), None);
    }

    #[test]
    fn proc_stat_gives_busy_total_and_cores() {
        let text = "cpu  100 5 50 800 20 1 2 0 0 0\ncpu0 50 2 25 400 10 0 1 0 0 0\n\
                    cpu1 50 3 25 400 10 1 1 0 0 0\nintr 12345\nctxt 99\n";
        assert_eq!(parse_proc_stat(text), Some((158, 978, 2)));
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2\n"), None);
    }

    #[test]
    fn thread_names_give_the_guest_cpu() {
        assert_eq!(vcpu_of("CPU 5/TCG"), Some(5));
        assert_eq!(vcpu_of("CPU 12/KVM"), Some(12));
        assert_eq!(vcpu_of("qemu-system-x86"), None);
        assert_eq!(vcpu_of("CPU x/TCG"), None);
    }

    #[test]
    fn two_snapshots_give_shares_of_a_core() {
        let snap = |cpu1: u64, cpu5: u64, main: u64, busy: u64, total: u64| Snapshot {
            threads: vec![
                ("qemu-system-x86".into(), main),
                ("CPU 5/TCG".into(), cpu5),
                ("CPU 1/TCG".into(), cpu1),
            ],
            host_busy: busy,
            host_total: total,
            host_cores: 2,
        };
        // 500 ticks of wall time on 2 cores: 1,000 total; 800 busy.
        let a = snap(100, 100, 10, 1000, 4000);
        let b = snap(200, 350, 60, 1800, 5000);
        let h = between(&a, &b).unwrap();
        assert_eq!(h.vcpus, [(1, 20.0), (5, 50.0)]);
        assert_eq!((h.emulator, h.host, h.cores), (10.0, 160.0, 2));
        // No time passed; no emulated CPU at all.
        assert_eq!(between(&b, &b), None);
        let bare = Snapshot {
            threads: vec![("other".into(), 5)],
            ..b.clone()
        };
        assert_eq!(between(&a, &bare), None);
        // A thread that appeared between them counts from zero.
        let mut c = b.clone();
        c.threads.push(("CPU 7/TCG".into(), 25));
        c.host_total = 6000;
        assert_eq!(between(&b, &c).unwrap().vcpus[2], (7, 5.0));
    }

    #[test]
    fn samples_keep_each_commands_snapshot() {
        let s = Samples::default();
        s.take(std::process::id(), 3);
        let mine = s.at(3).expect("this process's own threads are readable");
        assert!(!mine.threads.is_empty() && mine.host_cores > 0);
        assert_eq!(s.at(4), None);
        assert_eq!(s.clone(), s);
        assert_ne!(Samples::default(), s);
    }
}
