//! When to take interrupts and when to poll (the scheme Linux calls NAPI).
//!
//! Idle, the driver sleeps with the device's interrupts enabled. The first interrupt switches it
//! to polling with interrupts masked: it keeps polling the rings, without system calls, as long
//! as each poll finds work, and only when a poll finds nothing does it unmask interrupts and
//! sleep again. Under load it so takes one interrupt per burst rather than one per frame.
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
}

impl Default for Napi {
    fn default() -> Self {
        Self::new()
    }
}

impl Napi {
    /// Starts with interrupts enabled.
    pub fn new() -> Self {
        Self {
            mode: Mode::Interrupts,
        }
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
                MaskChange::Mask
            }
            Mode::Polling => MaskChange::None,
        }
    }

    /// A poll found `work` descriptors to handle. An empty poll in polling mode goes back to
    /// interrupts.
    pub fn polled(&mut self, work: usize) -> MaskChange {
        match (self.mode, work) {
            (Mode::Polling, 0) => {
                self.mode = Mode::Interrupts;
                MaskChange::Unmask
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
        assert_eq!(n.polled(0), MaskChange::None);
        // A burst: one interrupt, then polls while there is work.
        assert_eq!(n.interrupted(), MaskChange::Mask);
        assert_eq!(n.mode(), Mode::Polling);
        for work in [64, 64, 3, 1] {
            assert_eq!(n.polled(work), MaskChange::None);
        }
        assert_eq!(
            n.interrupted(),
            MaskChange::None,
            "a stray notification while polling"
        );
        assert_eq!(n.polled(0), MaskChange::Unmask);
        assert_eq!(n.mode(), Mode::Interrupts);
        assert_eq!(n.interrupted(), MaskChange::Mask);
        n.restart();
        assert_eq!(n.mode(), Mode::Interrupts);
    }
}
