//! When to take interrupts and when to poll (the scheme Linux calls NAPI).
//!
//! Idle, the driver sleeps with the device's interrupts enabled. The first interrupt switches it
//! to polling with interrupts masked: it keeps polling the rings, without system calls, as long
//! as the polls find work, and only when they have found nothing for a grace period (none by
//! default; a driver on a CPU of its own bridges the gaps between frames at load with one) does
//! it unmask interrupts and sleep again. Under load it so takes one interrupt per burst rather
//! than one per frame, and with a grace period hardly any.
//!
//! Unmasking after an empty poll cannot lose a frame: the device sets the receive cause in
//! `ICR` whether or not it is masked, and enabling a cause that is already set raises the
//! interrupt at once. The driver clears `ICR` before unmasking (the causes that piled up while
//! polling would otherwise interrupt it at once for frames it already handled) and then looks
//! at the ring once more, for a frame that arrived between its last poll and that read.

/// Whether the driver sleeps for interrupts or polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Interrupts enabled; sleep until one arrives.
    Interrupts,
    /// Interrupts masked; poll the rings.
    Polling,
}

/// What the driver must do to the device's interrupt mask after a [`Napi`] step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskChange {
    /// Nothing.
    None,
    /// Mask the interrupts (`IMC`): polling starts.
    Mask,
    /// Unmask them (`IMS`): back to sleeping.
    Unmask,
}

/// The interrupt/poll state machine.
#[derive(Debug, Clone, Copy)]
pub struct Napi {
    mode: Mode,
    /// How long polls may find nothing before interrupts come back.
    grace_ns: u64,
    /// The longest step between two empty polls that counts towards the grace: a longer one
    /// means the CPU was taken from the driver, which was not polling meanwhile.
    max_step_ns: u64,
    /// Time spent in empty polls so far (polling mode).
    empty_ns: u64,
    /// When the last empty poll was (polling mode).
    last_empty: Option<u64>,
}

impl Default for Napi {
    fn default() -> Self {
        Self::new()
    }
}

impl Napi {
    /// Starts with interrupts enabled.
    pub fn new() -> Self {
        Self::with_grace(0, 0)
    }

    /// Starts with interrupts enabled; polling lasts until the polls have spent `grace_ns`
    /// finding nothing. Only steps of at most `max_step_ns` between two empty polls count: on a
    /// host that runs something else in place of an emulated CPU, wall time passes without
    /// polls, and ending the grace then would unmask just as the next burst comes.
    pub fn with_grace(grace_ns: u64, max_step_ns: u64) -> Self {
        Self {
            mode: Mode::Interrupts,
            grace_ns,
            max_step_ns,
            empty_ns: 0,
            last_empty: None,
        }
    }

    fn forget_empty(&mut self) {
        self.empty_ns = 0;
        self.last_empty = None;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The driver woke from its sleep because of an interrupt: poll from now on.
    pub fn interrupted(&mut self) -> MaskChange {
        match self.mode {
            Mode::Interrupts => {
                self.mode = Mode::Polling;
                self.forget_empty();
                MaskChange::Mask
            }
            Mode::Polling => MaskChange::None,
        }
    }

    /// A poll at `now_ns` found `work` descriptors to handle. In polling mode, the first empty
    /// poll after the grace period of empty ones goes back to interrupts.
    pub fn polled(&mut self, work: usize, now_ns: u64) -> MaskChange {
        match (self.mode, work) {
            (Mode::Polling, 0) => {
                self.empty_ns += axolotl_abi::polled_step_within(
                    self.last_empty.replace(now_ns),
                    now_ns,
                    self.max_step_ns,
                );
                if self.empty_ns < self.grace_ns {
                    return MaskChange::None;
                }
                self.mode = Mode::Interrupts;
                self.forget_empty();
                MaskChange::Unmask
            }
            (Mode::Polling, _) => {
                self.forget_empty();
                MaskChange::None
            }
            _ => MaskChange::None,
        }
    }

    /// Back to interrupts whatever the state (after a device reset, which masks everything).
    pub fn restart(&mut self) {
        self.mode = Mode::Interrupts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_interrupt_per_burst() {
        let mut n = Napi::new();
        assert_eq!(n.mode(), Mode::Interrupts);
        // Woken with nothing to do (a timeout poll) changes nothing.
        assert_eq!(n.polled(0, 0), MaskChange::None);
        // A burst: one interrupt, then polls while there is work.
        assert_eq!(n.interrupted(), MaskChange::Mask);
        assert_eq!(n.mode(), Mode::Polling);
        for work in [64, 64, 3, 1] {
            assert_eq!(n.polled(work, 0), MaskChange::None);
        }
        assert_eq!(
            n.interrupted(),
            MaskChange::None,
            "a stray notification while polling"
        );
        assert_eq!(n.polled(0, 0), MaskChange::Unmask);
        assert_eq!(n.mode(), Mode::Interrupts);
        assert_eq!(n.interrupted(), MaskChange::Mask);
        n.restart();
        assert_eq!(n.mode(), Mode::Interrupts);
    }

    #[test]
    fn a_grace_period_bridges_the_gaps() {
        let mut n = Napi::with_grace(1_000, 1_000);
        assert_eq!(n.interrupted(), MaskChange::Mask);
        // Empty polls within the grace period keep polling; work starts it over.
        assert_eq!(n.polled(0, 10_000), MaskChange::None);
        assert_eq!(n.polled(0, 10_999), MaskChange::None);
        assert_eq!(n.polled(5, 11_000), MaskChange::None);
        assert_eq!(n.polled(0, 11_500), MaskChange::None);
        assert_eq!(n.polled(0, 12_499), MaskChange::None);
        assert_eq!(n.mode(), Mode::Polling);
        // A full grace period of empty polls: back to interrupts.
        assert_eq!(n.polled(0, 12_500), MaskChange::Unmask);
        assert_eq!(n.mode(), Mode::Interrupts);
        // The next burst starts its own period.
        assert_eq!(n.interrupted(), MaskChange::Mask);
        assert_eq!(n.polled(0, 50_000), MaskChange::None);
        assert_eq!(n.polled(0, 51_000), MaskChange::Unmask);
    }

    #[test]
    fn time_away_from_the_cpu_does_not_end_the_grace() {
        let mut n = Napi::with_grace(1_000, 100);
        assert_eq!(n.interrupted(), MaskChange::Mask);
        assert_eq!(n.polled(0, 0), MaskChange::None);
        for t in (100..=500).step_by(100) {
            assert_eq!(n.polled(0, t), MaskChange::None, "{t}");
        }
        // 500 polled; then the CPU was elsewhere for 5,000: no poll saw that time.
        assert_eq!(
            n.polled(0, 5_500),
            MaskChange::None,
            "the gap did not count"
        );
        for t in (5_600..=5_900).step_by(100) {
            assert_eq!(n.polled(0, t), MaskChange::None, "{t}");
        }
        assert_eq!(
            n.polled(0, 6_000),
            MaskChange::Unmask,
            "1,000 polled in all"
        );
    }
}
