//! The HPET's registers, as far as calibrating other clocks against its main counter needs them
//! (IA-PC HPET specification 1.0a, section 2.3): their offsets in the register block the ACPI
//! `HPET` table locates ([`crate::Hpet::base`]), the decoding of the general capabilities
//! register, and conversions between main counter ticks and nanoseconds.
//!
//! Nothing here touches the hardware: the kernel reads the registers and hands the values over,
//! so the checks on them are tested on the host like the table parser.

use core::fmt;

/// Length of the register block (the whole block, with the registers of 32 timers).
pub const REGISTER_BLOCK_LEN: u64 = 0x400;
/// General capabilities and id register, low half: revision, timers, counter size, vendor.
pub const CAPABILITIES: usize = 0x000;
/// General capabilities and id register, high half: the main counter's period in femtoseconds.
pub const PERIOD: usize = 0x004;
/// General configuration register.
pub const CONFIGURATION: usize = 0x010;
/// Main counter value (its low 32 bits; the high half is at `MAIN_COUNTER + 4`).
pub const MAIN_COUNTER: usize = 0x0F0;

/// Configuration bit 0 (`ENABLE_CNF`): the main counter runs (and timer interrupts may fire).
pub const ENABLE: u32 = 1 << 0;
/// Configuration bit 1 (`LEG_RT_CNF`): legacy replacement interrupt routing.
pub const LEGACY_ROUTE: u32 = 1 << 1;

/// Longest main counter period the specification allows: 100 ns (at least 10 MHz).
pub const MAX_PERIOD_FS: u32 = 100_000_000;
/// Femtoseconds in a nanosecond.
const FS_PER_NS: u64 = 1_000_000;
/// Femtoseconds in a second.
const FS_PER_S: u64 = 1_000_000_000_000_000;

/// The general capabilities and id register, decoded and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Main counter period in femtoseconds, 1 to [`MAX_PERIOD_FS`].
    pub period_fs: u32,
    /// Hardware revision (bits 0-7; the specification says it is never 0).
    pub hardware_rev: u8,
    /// Number of comparators, i.e. timers (bits 8-12, plus one).
    pub comparators: u8,
    /// The main counter is 64 bits wide (bit 13); otherwise 32.
    pub counter_64bit: bool,
    /// Legacy replacement routing is possible (bit 15).
    pub legacy_replacement: bool,
    /// PCI vendor id of the maker (bits 16-31).
    pub vendor_id: u16,
}

/// Why a capabilities register value cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilitiesError {
    /// The register reads as all ones: nothing answers at that address.
    NoDevice,
    /// The counter period is 0.
    ZeroPeriod,
    /// The counter period is longer than [`MAX_PERIOD_FS`].
    PeriodTooLong {
        /// The period read, in femtoseconds.
        period_fs: u32,
    },
}

impl fmt::Display for CapabilitiesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoDevice => {
                f.write_str("capabilities register reads all ones (no HPET at that address)")
            }
            Self::ZeroPeriod => f.write_str("counter period is 0 fs"),
            Self::PeriodTooLong { period_fs } => write!(
                f,
                "counter period {period_fs} fs is longer than the {MAX_PERIOD_FS} fs (100 ns) \
                 the specification allows"
            ),
        }
    }
}

impl core::error::Error for CapabilitiesError {}

impl Capabilities {
    /// Decodes the 64-bit general capabilities and id register (`high` at [`PERIOD`], `low` at
    /// [`CAPABILITIES`]); the period must be 1 to [`MAX_PERIOD_FS`] femtoseconds.
    pub fn decode(low: u32, high: u32) -> Result<Self, CapabilitiesError> {
        if low == u32::MAX && high == u32::MAX {
            return Err(CapabilitiesError::NoDevice);
        }
        let period_fs = high;
        if period_fs == 0 {
            return Err(CapabilitiesError::ZeroPeriod);
        }
        if period_fs > MAX_PERIOD_FS {
            return Err(CapabilitiesError::PeriodTooLong { period_fs });
        }
        let [hardware_rev, bits, vendor_lo, vendor_hi] = low.to_le_bytes();
        Ok(Self {
            period_fs,
            hardware_rev,
            comparators: (bits & 0x1F) + 1,
            counter_64bit: bits & (1 << 5) != 0,
            legacy_replacement: bits & (1 << 7) != 0,
            vendor_id: u16::from_le_bytes([vendor_lo, vendor_hi]),
        })
    }

    /// Frequency of the main counter in Hz (rounded down).
    pub fn frequency_hz(&self) -> u64 {
        FS_PER_S / u64::from(self.period_fs)
    }

    /// Main counter ticks in `ns` nanoseconds, rounded up (so a wait of that many ticks lasts at
    /// least `ns`).
    pub fn ticks_in_ns(&self, ns: u64) -> u64 {
        let fs = u128::from(ns) * u128::from(FS_PER_NS);
        let ticks = fs.div_ceil(u128::from(self.period_fs));
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// Nanoseconds in `ticks` main counter ticks, rounded down.
    pub fn ns_in_ticks(&self, ticks: u64) -> u64 {
        let fs = u128::from(ticks) * u128::from(self.period_fs);
        u64::try_from(fs / u128::from(FS_PER_NS)).unwrap_or(u64::MAX)
    }
}
