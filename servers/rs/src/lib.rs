//! The reincarnation server's decisions, host-tested: when a failed component is restarted (after
//! how long), and when it is given up on; and when a component whose heartbeat stopped counts as
//! hung. `main.rs` is the loop that feeds these with fault records, heartbeats and the clock.
#![cfg_attr(not(test), no_std)]

/// Most failures remembered per component (a policy allows at most this many in its window).
pub const MAX_REMEMBERED: usize = 32;
/// A heartbeat that has not moved for this long while the process could run means a hang. A
/// process asleep in a `wait` with a deadline could not run: it will by the deadline, and its
/// loop then moves the heartbeat. So an idle server may sleep longer than this.
pub const HANG_AFTER_NS: u64 = 1_000_000_000;

/// A component's restart policy (from the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Failures allowed within `window_ns` (0: never restart).
    pub max_failures: u32,
    pub window_ns: u64,
    /// Delay before the first restart; doubled for each earlier failure still in the window.
    pub backoff_ns: u64,
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay; `failures` counts this one and those still in the window.
    Restart { delay_ns: u64, failures: u32 },
    /// Too many failures in the window: leave it dead and say so.
    GiveUp { failures: u32 },
    /// The policy never restarts this component.
    NotRestartable,
}

/// The failure history of one component.
#[derive(Debug, Clone)]
pub struct History {
    times: [u64; MAX_REMEMBERED],
    len: usize,
    /// Given up: no more restarts until the history is reset.
    pub given_up: bool,
}

impl Default for History {
    fn default() -> Self {
        Self {
            times: [0; MAX_REMEMBERED],
            len: 0,
            given_up: false,
        }
    }
}

impl History {
    /// Records a failure at `now` and decides.
    pub fn failure(&mut self, policy: &Policy, now: u64) -> Decision {
        if policy.max_failures == 0 {
            return Decision::NotRestartable;
        }
        // Forget failures older than the window.
        let mut kept = 0;
        for i in 0..self.len {
            if now.saturating_sub(self.times[i]) < policy.window_ns {
                self.times[kept] = self.times[i];
                kept += 1;
            }
        }
        self.len = kept;
        if self.len == MAX_REMEMBERED {
            self.times.copy_within(1.., 0);
            self.len -= 1;
        }
        self.times[self.len] = now;
        self.len += 1;
        let failures = self.len as u32;
        if failures > policy.max_failures {
            self.given_up = true;
            return Decision::GiveUp { failures };
        }
        let doublings = (failures - 1).min(20);
        Decision::Restart {
            delay_ns: policy.backoff_ns.saturating_mul(1 << doublings),
            failures,
        }
    }
}

/// Whether a component's heartbeat counts towards a hang now (the `runnable` of
/// [`HangWatch::hung`]): not while it is dead, given up on, or asleep in a wait with a deadline
/// (`timed_wait`, from the kernel's `proc_info`).
pub fn watched(dead: bool, given_up: bool, timed_wait: bool) -> bool {
    !dead && !given_up && !timed_wait
}

/// Watches one heartbeat.
#[derive(Debug, Clone, Copy, Default)]
pub struct HangWatch {
    last: u64,
    since: u64,
}

impl HangWatch {
    /// Feeds the heartbeat value read at `now`; true when it is non-zero (the component takes
    /// part) and has not moved for [`HANG_AFTER_NS`] while it could run. `runnable` is false
    /// while the component is dead, being restarted, or asleep in a wait with a deadline (the
    /// watch then restarts its clock). Ready, running, stopped by `hang`, or blocked without a
    /// deadline (a call that may never return) is runnable.
    pub fn hung(&mut self, beat: u64, runnable: bool, now: u64) -> bool {
        if !runnable || beat != self.last || beat == 0 {
            self.last = beat;
            self.since = now;
            return false;
        }
        now.saturating_sub(self.since) >= HANG_AFTER_NS
    }

    /// Starts over (after a restart).
    pub fn reset(&mut self, now: u64) {
        self.since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn policy(max: u32, window_ms: u64, backoff_ms: u64) -> Policy {
        Policy {
            max_failures: max,
            window_ns: window_ms * MS,
            backoff_ns: backoff_ms * MS,
        }
    }

    #[test]
    fn backoff_doubles_then_gives_up() {
        let p = policy(3, 10_000, 10);
        let mut h = History::default();
        assert_eq!(
            h.failure(&p, 0),
            Decision::Restart {
                delay_ns: 10 * MS,
                failures: 1
            }
        );
        assert_eq!(
            h.failure(&p, 100 * MS),
            Decision::Restart {
                delay_ns: 20 * MS,
                failures: 2
            }
        );
        assert_eq!(
            h.failure(&p, 200 * MS),
            Decision::Restart {
                delay_ns: 40 * MS,
                failures: 3
            }
        );
        assert_eq!(h.failure(&p, 300 * MS), Decision::GiveUp { failures: 4 });
        assert!(h.given_up);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let p = policy(2, 1_000, 5);
        let mut h = History::default();
        h.failure(&p, 0);
        h.failure(&p, 10 * MS);
        // Both are older than a second by now: this is the first failure again.
        assert_eq!(
            h.failure(&p, 2_000 * MS),
            Decision::Restart {
                delay_ns: 5 * MS,
                failures: 1
            }
        );
    }

    #[test]
    fn never_restart_and_huge_counts() {
        assert_eq!(
            History::default().failure(&policy(0, 1, 1), 0),
            Decision::NotRestartable
        );
        let p = policy(u32::MAX, u64::MAX / MS, u64::MAX / MS);
        let mut h = History::default();
        for i in 0..100 {
            assert!(matches!(h.failure(&p, i), Decision::Restart { .. }));
        }
    }

    #[test]
    fn hang_needs_a_stuck_nonzero_heartbeat_while_runnable() {
        let mut w = HangWatch::default();
        assert!(!w.hung(0, true, 0));
        assert!(
            !w.hung(0, true, 5_000 * MS),
            "a zero heartbeat never counts"
        );
        assert!(!w.hung(7, true, 5_000 * MS));
        assert!(!w.hung(7, true, 5_500 * MS));
        assert!(w.hung(7, true, 6_000 * MS));
        assert!(!w.hung(8, true, 6_100 * MS), "it moved");
        assert!(
            !w.hung(8, false, 9_000 * MS),
            "dead or restarting: not a hang"
        );
        assert!(!w.hung(8, true, 9_500 * MS));
        assert!(w.hung(8, true, 10_000 * MS));
    }

    #[test]
    fn only_a_component_that_could_run_is_watched() {
        assert!(
            watched(false, false, false),
            "ready, running, stopped, or blocked for good"
        );
        assert!(!watched(false, false, true), "asleep in a timed wait");
        assert!(!watched(true, false, false), "dead");
        assert!(!watched(false, true, false), "given up on");
    }

    #[test]
    fn a_timed_sleep_is_not_a_hang_and_the_clock_starts_at_the_wake() {
        let mut w = HangWatch::default();
        assert!(!w.hung(3, true, 0));
        // Asleep in a timed wait for 5 s with the heartbeat standing at 3: never hung.
        for t in (50..5_000).step_by(50) {
            assert!(!w.hung(3, false, t * MS), "asleep at {t} ms");
        }
        // Awake (ready, running or hung) from 5 s on: 1 s without a beat after it was last seen
        // asleep (4,950 ms) is a hang.
        assert!(!w.hung(3, true, 5_000 * MS));
        assert!(!w.hung(3, true, 5_900 * MS));
        assert!(w.hung(3, true, 5_950 * MS));
    }
}
