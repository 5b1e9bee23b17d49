//! Register offsets (bytes from the start of BAR0) and their bits, as the Intel 8254x family
//! manual (82540EM, 82545EM) and the 82574 datasheet name them. Only what the driver uses, plus
//! the statistics registers it reads.

/// Device control.
pub const CTRL: u32 = 0x0000;
/// Device status (read only).
pub const STATUS: u32 = 0x0008;
/// EEPROM/flash control.
pub const EECD: u32 = 0x0010;
/// EEPROM read: start a word read, poll for done, take the data.
pub const EERD: u32 = 0x0014;
/// Extended device control.
pub const CTRL_EXT: u32 = 0x0018;
/// Interrupt cause read; reading it clears it.
pub const ICR: u32 = 0x00C0;
/// Interrupt throttling (units of 256 ns; 0 = off).
pub const ITR: u32 = 0x00C4;
/// Interrupt cause set (for tests of the interrupt path).
pub const ICS: u32 = 0x00C8;
/// Interrupt mask set/read: writing 1 bits enables those causes.
pub const IMS: u32 = 0x00D0;
/// Interrupt mask clear: writing 1 bits disables those causes.
pub const IMC: u32 = 0x00D8;
/// Receive control.
pub const RCTL: u32 = 0x0100;
/// Transmit control.
pub const TCTL: u32 = 0x0400;
/// Transmit inter-packet gap.
pub const TIPG: u32 = 0x0410;
/// Receive descriptor base address, low 32 bits.
pub const RDBAL: u32 = 0x2800;
/// Receive descriptor base address, high 32 bits.
pub const RDBAH: u32 = 0x2804;
/// Receive descriptor ring length in bytes (a multiple of 128).
pub const RDLEN: u32 = 0x2808;
/// Receive descriptor head (advanced by the device).
pub const RDH: u32 = 0x2810;
/// Receive descriptor tail (advanced by the driver).
pub const RDT: u32 = 0x2818;
/// Receive interrupt delay timer (units of 1.024 us; 0 = interrupt at once).
pub const RDTR: u32 = 0x2820;
/// Receive interrupt absolute delay timer.
pub const RADV: u32 = 0x282C;
/// Transmit descriptor base address, low 32 bits.
pub const TDBAL: u32 = 0x3800;
/// Transmit descriptor base address, high 32 bits.
pub const TDBAH: u32 = 0x3804;
/// Transmit descriptor ring length in bytes (a multiple of 128).
pub const TDLEN: u32 = 0x3808;
/// Transmit descriptor head (advanced by the device).
pub const TDH: u32 = 0x3810;
/// Transmit descriptor tail (advanced by the driver).
pub const TDT: u32 = 0x3818;
/// Transmit interrupt delay value.
pub const TIDV: u32 = 0x3820;
/// Transmit absolute interrupt delay value.
pub const TADV: u32 = 0x382C;
/// CRC error count (statistics registers clear on read).
pub const CRCERRS: u32 = 0x4000;
/// Missed packets count: frames dropped because the receive FIFO or ring was full.
pub const MPC: u32 = 0x4010;
/// Receive length error count.
pub const RLEC: u32 = 0x4040;
/// Good packets received count.
pub const GPRC: u32 = 0x4074;
/// Good packets transmitted count.
pub const GPTC: u32 = 0x4080;
/// Receive oversize count (frames longer than allowed, dropped by the device).
pub const ROC: u32 = 0x40AC;
/// Multicast table array: [`MTA_ENTRIES`] registers of 32 bits.
pub const MTA: u32 = 0x5200;
/// Number of registers in the multicast table array.
pub const MTA_ENTRIES: u32 = 128;
/// Receive address low 0: the first four bytes of the station address.
pub const RAL0: u32 = 0x5400;
/// Receive address high 0: the last two bytes of the station address and the valid bit.
pub const RAH0: u32 = 0x5404;

/// One past the highest register offset the driver touches: BAR0 must be at least this long.
pub const MIN_BAR_LEN: usize = 0x5800;

/// Bits of [`CTRL`].
pub mod ctrl {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link reset.
    pub const LRST: u32 = 1 << 3;
    /// Auto-speed detection enable.
    pub const ASDE: u32 = 1 << 5;
    /// Set link up.
    pub const SLU: u32 = 1 << 6;
    /// Invert loss-of-signal.
    pub const ILOS: u32 = 1 << 7;
    /// Force speed.
    pub const FRCSPD: u32 = 1 << 11;
    /// Force duplex.
    pub const FRCDPLX: u32 = 1 << 12;
    /// Device reset; self-clearing.
    pub const RST: u32 = 1 << 26;
    /// VLAN mode enable.
    pub const VME: u32 = 1 << 30;
    /// PHY reset.
    pub const PHY_RST: u32 = 1 << 31;
}

/// Bits of [`STATUS`].
pub mod status {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// Speed: 00 = 10, 01 = 100, 1x = 1000 Mb/s.
    pub const SPEED_SHIFT: u32 = 6;
}

/// Layout of [`super::EERD`], which differs between the 8254x and the 82574.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EerdLayout {
    /// The bit that starts a read.
    pub start: u32,
    /// The bit the device sets when the data is there.
    pub done: u32,
    /// Where the word address goes.
    pub addr_shift: u32,
    /// Where the data comes back (always the high 16 bits).
    pub data_shift: u32,
}

/// [`EerdLayout`] of the 82540EM and 82545EM.
pub const EERD_8254X: EerdLayout = EerdLayout {
    start: 1 << 0,
    done: 1 << 4,
    addr_shift: 8,
    data_shift: 16,
};
/// [`EerdLayout`] of the 82574L.
pub const EERD_82574: EerdLayout = EerdLayout {
    start: 1 << 0,
    done: 1 << 1,
    addr_shift: 2,
    data_shift: 16,
};

/// Interrupt causes: the bits of [`ICR`], [`ICS`], [`IMS`] and [`IMC`].
pub mod int {
    /// A transmit descriptor was written back.
    pub const TXDW: u32 = 1 << 0;
    /// The transmit queue is empty.
    pub const TXQE: u32 = 1 << 1;
    /// Link status changed.
    pub const LSC: u32 = 1 << 2;
    /// Receive sequence error.
    pub const RXSEQ: u32 = 1 << 3;
    /// Receive descriptors fell below the minimum threshold.
    pub const RXDMT0: u32 = 1 << 4;
    /// Receiver overrun: a frame was dropped for want of descriptors or FIFO space.
    pub const RXO: u32 = 1 << 6;
    /// Receive timer: frames arrived.
    pub const RXT0: u32 = 1 << 7;
    /// 82574: an interrupt was asserted (set with any other cause).
    pub const INT_ASSERTED: u32 = 1 << 31;
    /// Every cause; written to [`super::IMC`] to mask everything.
    pub const ALL: u32 = 0xFFFF_FFFF;
    /// The causes the driver takes interrupts for.
    pub const ENABLED: u32 = RXT0 | RXO | RXDMT0 | LSC;
}

/// Bits of [`RCTL`].
pub mod rctl {
    /// Receiver enable.
    pub const EN: u32 = 1 << 1;
    /// Store bad packets.
    pub const SBP: u32 = 1 << 2;
    /// Unicast promiscuous.
    pub const UPE: u32 = 1 << 3;
    /// Multicast promiscuous.
    pub const MPE: u32 = 1 << 4;
    /// Long packet enable (frames up to 16 KiB); off: at most 1522 bytes.
    pub const LPE: u32 = 1 << 5;
    /// Receive descriptor minimum threshold: half of the ring.
    pub const RDMTS_HALF: u32 = 0b00 << 8;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Buffer size 2048 bytes (BSIZE = 00 with BSEX = 0).
    pub const BSIZE_2048: u32 = 0b00 << 16;
    /// Buffer size extension (multiplies BSIZE by 16).
    pub const BSEX: u32 = 1 << 25;
    /// Strip the Ethernet CRC from received frames.
    pub const SECRC: u32 = 1 << 26;
}

/// Bits of [`TCTL`].
pub mod tctl {
    /// Transmitter enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets to 64 bytes.
    pub const PSP: u32 = 1 << 3;
    /// Collision threshold field.
    pub const CT_SHIFT: u32 = 4;
    /// The recommended collision threshold.
    pub const CT_DEFAULT: u32 = 0x0F << CT_SHIFT;
    /// Collision distance field.
    pub const COLD_SHIFT: u32 = 12;
    /// Collision distance for full duplex.
    pub const COLD_FULL_DUPLEX: u32 = 0x40 << COLD_SHIFT;
    /// Re-transmit on late collision.
    pub const RTLC: u32 = 1 << 24;
}

/// [`TIPG`] for copper: IPGT 10, IPGR1 8, IPGR2 6 (the 8254x manual's recommendation).
pub const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

/// The valid bit of [`RAH0`].
pub const RAH_AV: u32 = 1 << 31;
