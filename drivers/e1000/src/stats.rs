//! The device's statistics registers. On the hardware they clear when read; QEMU's `e1000`
//! model implements `CRCERRS` through `MPC` as plain registers that only grow (and are zeroed
//! by a reset), while `ROC` does clear. [`StatRegister`] learns which kind it reads from the
//! first non-zero value, so the driver's counters are right on both.

use crate::mmio::Registers;

/// One statistics register and what the driver knows of it.
#[derive(Debug, Clone, Copy)]
pub struct StatRegister {
    offset: u32,
    /// `Some(true)`: clears on read; `Some(false)`: only grows; `None`: not known yet.
    clears_on_read: Option<bool>,
    /// The last value read, for a register that only grows.
    last: u32,
}

impl StatRegister {
    /// The register at `offset`, behaviour unknown.
    pub const fn new(offset: u32) -> Self {
        Self {
            offset,
            clears_on_read: None,
            last: 0,
        }
    }

    /// After a device reset, which zeroes every statistics register.
    pub fn device_reset(&mut self) {
        self.last = 0;
    }

    /// Whether the register clears on read, once known.
    pub fn clears_on_read(&self) -> Option<bool> {
        self.clears_on_read
    }

    /// The events counted since the previous call (or the last reset).
    pub fn take(&mut self, r: &mut impl Registers) -> u64 {
        let v = r.read(self.offset);
        match self.clears_on_read {
            Some(true) => u64::from(v),
            Some(false) => {
                let d = v.wrapping_sub(self.last);
                self.last = v;
                u64::from(d)
            }
            None if v == 0 => 0,
            None => {
                // A register that clears reads (close to) zero right after; one that only grows
                // reads at least `v` again.
                let again = r.read(self.offset);
                if again >= v {
                    self.clears_on_read = Some(false);
                    self.last = again;
                    u64::from(again)
                } else {
                    self.clears_on_read = Some(true);
                    u64::from(v) + u64::from(again)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Model;
    use crate::fake::FakeNic;
    use crate::regs;

    fn bump(n: &mut FakeNic, by: u32) {
        let v = n.get(regs::MPC) + by;
        n.set(regs::MPC, v);
    }

    #[test]
    fn counts_right_whether_or_not_the_register_clears() {
        for clears in [true, false] {
            let mut n = FakeNic::new(Model::I82540EM);
            n.stats_clear_on_read = clears;
            let mut s = StatRegister::new(regs::MPC);
            assert_eq!(s.take(&mut n), 0);
            assert_eq!(s.clears_on_read(), None, "nothing learnt from a zero");
            bump(&mut n, 5);
            assert_eq!(s.take(&mut n), 5, "clears={clears}");
            assert_eq!(s.clears_on_read(), Some(clears));
            assert_eq!(s.take(&mut n), 0);
            bump(&mut n, 3);
            assert_eq!(s.take(&mut n), 3);
            bump(&mut n, 1);
            bump(&mut n, 1);
            assert_eq!(s.take(&mut n), 2);
            // A device reset zeroes the register.
            n.set(regs::MPC, 0);
            s.device_reset();
            bump(&mut n, 4);
            assert_eq!(s.take(&mut n), 4);
        }
    }

    #[test]
    fn a_growing_register_that_wraps() {
        let mut n = FakeNic::new(Model::I82540EM);
        n.stats_clear_on_read = false;
        let mut s = StatRegister::new(regs::MPC);
        n.set(regs::MPC, u32::MAX - 1);
        assert_eq!(s.take(&mut n), u64::from(u32::MAX - 1));
        n.set(regs::MPC, 3);
        assert_eq!(s.take(&mut n), 5);
    }
}
