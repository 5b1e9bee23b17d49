//! Access to the device's 32-bit registers, behind a trait so that the init sequence and the
//! driver core run against a fake register file in the host tests.

/// A bank of 32-bit device registers, addressed by byte offset.
///
/// Both calls take `&mut self`: reading a register can have side effects (reading `ICR` clears
/// it, the statistics registers clear on read).
pub trait Registers {
    /// Reads the register at byte `offset`.
    fn read(&mut self, offset: u32) -> u32;
    /// Writes `value` to the register at byte `offset`.
    fn write(&mut self, offset: u32, value: u32);
}

/// The registers of a real device: BAR0 mapped uncached into our address space.
#[derive(Debug)]
pub struct Mmio {
    base: *mut u32,
    len: usize,
}

impl Mmio {
    /// The register bank at virtual address `base`, `len` bytes long.
    ///
    /// # Safety
    /// `base..base + len` must be the device's register BAR, mapped uncached and readable and
    /// writable for as long as the returned value lives, and `base` must be 4-byte aligned.
    pub unsafe fn new(base: usize, len: usize) -> Self {
        Self {
            base: base as *mut u32,
            len,
        }
    }

    /// The length of the bank in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty bank (no register can be reached).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The register at `offset`, if it lies inside the bank and is aligned.
    fn reg(&self, offset: u32) -> Option<*mut u32> {
        let off = offset as usize;
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.len {
            return None;
        }
        Some(self.base.wrapping_add(off / 4))
    }
}

impl Registers for Mmio {
    /// An offset outside the bank reads as all ones, as a PCI read nobody answers does.
    fn read(&mut self, offset: u32) -> u32 {
        match self.reg(offset) {
            // Safety: `reg` checked the offset is inside the mapped, aligned bank (`new`'s
            // contract); the access is volatile because the device changes registers.
            Some(p) => unsafe { core::ptr::read_volatile(p) },
            None => u32::MAX,
        }
    }

    /// A write outside the bank is dropped.
    fn write(&mut self, offset: u32, value: u32) {
        if let Some(p) = self.reg(offset) {
            // Safety: as in `read`.
            unsafe { core::ptr::write_volatile(p, value) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_checks_offsets() {
        let mut backing = [0u32; 4];
        // Safety: `backing` is 16 aligned bytes that outlive `m`.
        let mut m = unsafe { Mmio::new(backing.as_mut_ptr() as usize, 16) };
        m.write(4, 7);
        m.write(12, 9);
        m.write(16, 1); // past the end: dropped
        m.write(2, 1); // unaligned: dropped
        assert_eq!(m.read(4), 7);
        assert_eq!(m.read(12), 9);
        assert_eq!(m.read(16), u32::MAX);
        assert_eq!(m.read(u32::MAX - 1), u32::MAX);
        assert_eq!(m.len(), 16);
        assert_eq!(backing, [0, 7, 0, 9]);
    }
}
