//! The steps of bringing a supported model up (see [`crate::model`] for which those are): reset,
//! link, MAC address, multicast table, receive and transmit units, interrupt mask. Each step is a function
//! over [`Registers`], so the sequence is tested against a fake register file.
//!
//! Every step writes the registers it depends on rather than assuming reset values, and the
//! sequence starts with a full device reset: a new driver instance makes no assumption about
//! what a previous one (killed at any point) left behind.

use crate::arp::Mac;
use crate::mmio::Registers;
use crate::regs::{self, EerdLayout, ctrl, int, rctl, tctl};
use crate::ring::{RxRing, TxRing};

use crate::model::Part;
pub use crate::model::{Model, VENDOR_INTEL};

impl Model {
    /// How this model's `EERD` register is laid out.
    pub fn eerd(self) -> EerdLayout {
        match self.part() {
            Part::I82574L => regs::EERD_82574,
            _ => regs::EERD_8254X,
        }
    }
}

/// Why the device could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// `CTRL.RST` did not clear within [`RESET_TIMEOUT_NS`].
    ResetTimeout,
    /// An EEPROM read did not complete.
    EepromTimeout,
    /// Neither the receive address registers nor the EEPROM hold a usable MAC address.
    NoMac,
    /// The register window is too short for the registers the driver uses.
    BarTooSmall {
        /// Its length.
        len: usize,
    },
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ResetTimeout => write!(f, "the device did not come out of reset"),
            Self::EepromTimeout => write!(f, "EEPROM read timed out"),
            Self::NoMac => write!(f, "no valid MAC address in RAL/RAH or the EEPROM"),
            Self::BarTooSmall { len } => {
                write!(
                    f,
                    "register window of {len:#x} bytes, need {:#x}",
                    regs::MIN_BAR_LEN
                )
            }
        }
    }
}

/// How long to let DMA drain after stopping the receive and transmit units, before reset.
pub const QUIESCE_NS: u64 = 10_000_000;
/// How long to wait for a reset to finish.
pub const RESET_TIMEOUT_NS: u64 = 100_000_000;
/// Poll interval while waiting for the device.
pub const POLL_NS: u64 = 1_000_000;
/// Polls of `EERD` before an EEPROM read is declared lost.
pub const EEPROM_POLLS: u32 = 1000;

/// Stops everything: masks all interrupts and disables the receive and transmit units. Safe to
/// call on a device in any state.
pub fn quiesce(r: &mut impl Registers) {
    r.write(regs::IMC, int::ALL);
    r.write(regs::RCTL, 0);
    r.write(regs::TCTL, tctl::PSP);
    let _ = r.read(regs::STATUS); // flush the posted writes
}

/// Resets the device: quiesce, wait for DMA to drain, set `CTRL.RST`, wait for it to clear,
/// mask interrupts again and clear pending causes. `sleep` waits the nanoseconds it is given.
pub fn reset(r: &mut impl Registers, sleep: &mut impl FnMut(u64)) -> Result<(), InitError> {
    quiesce(r);
    sleep(QUIESCE_NS);
    let c = r.read(regs::CTRL);
    r.write(regs::CTRL, c | ctrl::RST);
    // The manual asks for at least 1 us before the next access.
    sleep(POLL_NS);
    let mut waited = POLL_NS;
    while r.read(regs::CTRL) & ctrl::RST != 0 {
        if waited >= RESET_TIMEOUT_NS {
            return Err(InitError::ResetTimeout);
        }
        sleep(POLL_NS);
        waited += POLL_NS;
    }
    r.write(regs::IMC, int::ALL);
    let _ = r.read(regs::ICR);
    Ok(())
}

/// Brings the link up: set link up with auto speed detection, clear link/PHY reset, loss-of-
/// signal inversion, VLAN mode and forced speed/duplex.
pub fn set_link_up(r: &mut impl Registers) {
    let c = r.read(regs::CTRL);
    let c = (c | ctrl::SLU | ctrl::ASDE)
        & !(ctrl::LRST | ctrl::PHY_RST | ctrl::ILOS | ctrl::VME | ctrl::FRCSPD | ctrl::FRCDPLX);
    r.write(regs::CTRL, c);
}

/// True when the device reports link up.
pub fn link_up(r: &mut impl Registers) -> bool {
    r.read(regs::STATUS) & regs::status::LU != 0
}

/// Clears the multicast table: only frames for our address and broadcasts come in.
pub fn clear_multicast(r: &mut impl Registers) {
    for i in 0..regs::MTA_ENTRIES {
        r.write(regs::MTA + 4 * i, 0);
    }
}

/// Reads EEPROM word `addr` through `EERD`.
pub fn eeprom_read(r: &mut impl Registers, layout: EerdLayout, addr: u8) -> Result<u16, InitError> {
    r.write(
        regs::EERD,
        layout.start | (u32::from(addr) << layout.addr_shift),
    );
    for _ in 0..EEPROM_POLLS {
        let v = r.read(regs::EERD);
        if v & layout.done != 0 {
            return Ok((v >> layout.data_shift) as u16);
        }
    }
    Err(InitError::EepromTimeout)
}

/// The station address: from `RAL0`/`RAH0` when the firmware (or QEMU) programmed a valid one,
/// else from EEPROM words 0..3, which is then programmed into `RAL0`/`RAH0` so the receive filter
/// accepts frames for it.
pub fn read_mac(r: &mut impl Registers, model: Model) -> Result<Mac, InitError> {
    let ral = r.read(regs::RAL0);
    let rah = r.read(regs::RAH0);
    let from_ra = mac_from_ra(ral, rah);
    if rah & regs::RAH_AV != 0 && from_ra.is_valid_station() {
        return Ok(from_ra);
    }
    let mut m = [0u8; 6];
    for w in 0..3u8 {
        let word = eeprom_read(r, model.eerd(), w)?.to_le_bytes();
        m[2 * w as usize] = word[0];
        m[2 * w as usize + 1] = word[1];
    }
    let mac = Mac(m);
    if !mac.is_valid_station() {
        return Err(InitError::NoMac);
    }
    let (ral, rah) = ra_from_mac(mac);
    r.write(regs::RAL0, ral);
    r.write(regs::RAH0, rah);
    Ok(mac)
}

/// The address in `RAL`/`RAH` form (with the valid bit).
pub fn ra_from_mac(mac: Mac) -> (u32, u32) {
    let m = mac.0;
    (
        u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
        u32::from(u16::from_le_bytes([m[4], m[5]])) | regs::RAH_AV,
    )
}

/// The address held in `RAL`/`RAH` (valid bit ignored).
pub fn mac_from_ra(ral: u32, rah: u32) -> Mac {
    let l = ral.to_le_bytes();
    let h = rah.to_le_bytes();
    Mac([l[0], l[1], l[2], l[3], h[0], h[1]])
}

/// Programs and enables the receive unit over `rx` (which must have been reset): ring address
/// and length, head 0, tail, no receive delay, then `RCTL` = enable, accept broadcast, strip CRC,
/// the ring's buffer size, descriptor threshold at half the ring.
pub fn program_rx(r: &mut impl Registers, rx: &RxRing) {
    r.write(regs::RCTL, 0);
    r.write(regs::RDBAL, rx.phys() as u32);
    r.write(regs::RDBAH, (rx.phys() >> 32) as u32);
    r.write(regs::RDLEN, rx.ring_bytes());
    r.write(regs::RDH, 0);
    r.write(regs::RDT, rx.tail());
    r.write(regs::RDTR, 0);
    r.write(regs::RADV, 0);
    r.write(
        regs::RCTL,
        rctl::EN | rctl::BAM | rctl::SECRC | rctl::RDMTS_HALF | rx.rctl_bsize(),
    );
}

/// Programs and enables the transmit unit over `tx` (which must have been reset): ring address
/// and length, head and tail 0, inter-packet gap, then `TCTL` = enable, pad short packets,
/// collision threshold and full-duplex collision distance.
pub fn program_tx(r: &mut impl Registers, tx: &TxRing) {
    r.write(regs::TCTL, tctl::PSP);
    r.write(regs::TDBAL, tx.phys() as u32);
    r.write(regs::TDBAH, (tx.phys() >> 32) as u32);
    r.write(regs::TDLEN, tx.ring_bytes());
    r.write(regs::TDH, 0);
    r.write(regs::TDT, tx.tail());
    r.write(regs::TIDV, 0);
    r.write(regs::TADV, 0);
    r.write(regs::TIPG, regs::TIPG_COPPER);
    r.write(
        regs::TCTL,
        tctl::EN | tctl::PSP | tctl::CT_DEFAULT | tctl::COLD_FULL_DUPLEX | tctl::RTLC,
    );
}

/// Enables the interrupt causes the driver handles ([`int::ENABLED`]).
pub fn enable_interrupts(r: &mut impl Registers) {
    r.write(regs::IMS, int::ENABLED);
}

/// Masks every interrupt cause.
pub fn disable_interrupts(r: &mut impl Registers) {
    r.write(regs::IMC, int::ALL);
}

/// The whole bring-up: reset, link up, MAC address, multicast table, both rings (reset here),
/// receive and transmit units; interrupts stay masked (the caller enables them when it is
/// ready to take them). Returns the MAC address.
pub fn init(
    r: &mut impl Registers,
    model: Model,
    rx: &mut RxRing,
    tx: &mut TxRing,
    sleep: &mut impl FnMut(u64),
) -> Result<Mac, InitError> {
    reset(r, sleep)?;
    set_link_up(r);
    let mac = read_mac(r, model)?;
    clear_multicast(r);
    rx.reset();
    tx.reset();
    program_rx(r, rx);
    program_tx(r, tx);
    let _ = r.read(regs::ICR);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeNic;

    #[test]
    fn models_by_pci_id() {
        assert_eq!(Model::from_ids(0x8086, 0x100E), Some(Model::I82540EM));
        assert_eq!(Model::from_ids(0x8086, 0x100F), Some(Model::I82545EM));
        assert_eq!(Model::from_ids(0x8086, 0x10D3), Some(Model::I82574L));
        assert_eq!(Model::from_ids(0x8086, 0x10D4), None);
        assert_eq!(Model::from_ids(0x10EC, 0x8139), None);
        assert_eq!(Model::I82574L.name(), "82574L");
        assert_eq!(Model::I82574L.eerd().done, 1 << 1);
        assert_eq!(Model::I82540EM.eerd().done, 1 << 4);
        assert_eq!(Model::I82545EM.eerd().done, 1 << 4);
    }

    #[test]
    fn reset_waits_for_the_device() {
        let mut nic = FakeNic::new(Model::I82540EM);
        nic.reset_polls = 3;
        let mut slept = 0;
        reset(&mut nic, &mut |ns| slept += ns).unwrap();
        assert!(nic.resets == 1);
        assert!(slept >= QUIESCE_NS + 3 * POLL_NS);
        // Interrupts were masked before the reset and again after it.
        let imc: Vec<_> = nic.writes.iter().filter(|w| w.0 == regs::IMC).collect();
        assert_eq!(imc.len(), 2);
        let rst = nic
            .writes
            .iter()
            .position(|w| w.0 == regs::CTRL && w.1 & ctrl::RST != 0)
            .unwrap();
        let rctl_off = nic
            .writes
            .iter()
            .position(|w| *w == (regs::RCTL, 0))
            .unwrap();
        assert!(rctl_off < rst, "receiver stopped before the reset");
    }

    #[test]
    fn reset_gives_up_on_a_stuck_device() {
        let mut nic = FakeNic::new(Model::I82540EM);
        nic.reset_polls = u32::MAX;
        let mut slept = 0;
        assert_eq!(
            reset(&mut nic, &mut |ns| slept += ns),
            Err(InitError::ResetTimeout)
        );
        assert!(slept <= QUIESCE_NS + RESET_TIMEOUT_NS + POLL_NS);
    }

    #[test]
    fn mac_from_receive_address_registers() {
        let mut nic = FakeNic::new(Model::I82540EM);
        let mac = read_mac(&mut nic, Model::I82540EM).unwrap();
        assert_eq!(mac.to_string(), "52:54:00:12:34:56");
        assert_eq!(nic.eeprom_reads, 0);
    }

    #[test]
    fn mac_from_the_eeprom_when_ral_rah_are_not_valid() {
        for model in Model::SUPPORTED {
            let mut nic = FakeNic::new(model);
            nic.set(regs::RAH0, 0); // not valid
            nic.eeprom[..3].copy_from_slice(&[0x1B02, 0x3C2A, 0x5E4D]);
            let mac = read_mac(&mut nic, model).unwrap();
            assert_eq!(mac, Mac([0x02, 0x1B, 0x2A, 0x3C, 0x4D, 0x5E]), "{model:?}");
            assert_eq!(nic.eeprom_reads, 3);
            // ... and programmed into RAL0/RAH0 with the valid bit.
            assert_eq!(mac_from_ra(nic.get(regs::RAL0), nic.get(regs::RAH0)), mac);
            assert_ne!(nic.get(regs::RAH0) & regs::RAH_AV, 0);
        }
    }

    #[test]
    fn no_mac_and_eeprom_timeouts_are_errors() {
        let mut nic = FakeNic::new(Model::I82540EM);
        nic.set(regs::RAH0, 0);
        nic.eeprom[..3].copy_from_slice(&[0xFFFF, 0xFFFF, 0xFFFF]);
        assert_eq!(read_mac(&mut nic, Model::I82540EM), Err(InitError::NoMac));
        nic.eeprom_broken = true;
        assert_eq!(
            read_mac(&mut nic, Model::I82540EM),
            Err(InitError::EepromTimeout)
        );
    }

    #[test]
    fn ra_packing_round_trips() {
        let m = Mac([1, 2, 3, 4, 5, 6]);
        let (l, h) = ra_from_mac(m);
        assert_eq!(l, 0x0403_0201);
        assert_eq!(h, 0x8000_0605);
        assert_eq!(mac_from_ra(l, h), m);
    }
}
