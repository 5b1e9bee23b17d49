//! A fake e1000 for the host tests: a register file with the side effects the driver relies on
//! (self-clearing reset, clear-on-read `ICR` and statistics, `IMS`/`IMC`, `EERD`, link status),
//! DMA memory on the heap, and a device side that receives frames into the RX ring and sends
//! what the TX ring holds, as the hardware would.

use core::ptr::NonNull;

use crate::arp::Mac;
use crate::desc::{RxDesc, TxDesc, rx_status, tx_cmd, tx_status};
use crate::device::{Model, ra_from_mac};
use crate::dma::DmaSlice;
use crate::mmio::Registers;
use crate::regs::{self, ctrl, int};

/// The MAC address QEMU gives its first NIC.
pub const QEMU_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// The fake register file.
pub struct FakeNic {
    regs: Vec<u32>,
    /// Every write, in order: (offset, value).
    pub writes: Vec<(u32, u32)>,
    /// Reads of `CTRL` that still show `RST` after a reset (`u32::MAX`: stuck forever).
    pub reset_polls: u32,
    rst_left: u32,
    /// Resets done.
    pub resets: u32,
    /// EEPROM contents.
    pub eeprom: [u16; 64],
    /// EEPROM reads done.
    pub eeprom_reads: u32,
    /// The EEPROM never answers.
    pub eeprom_broken: bool,
    /// A cable is plugged in: `STATUS.LU` follows `CTRL.SLU`.
    pub cable: bool,
    /// `MPC`, `CRCERRS` and `ROC` clear when read, as on the hardware (QEMU's `MPC` and
    /// `CRCERRS` do not).
    pub stats_clear_on_read: bool,
    model: Model,
}

impl FakeNic {
    /// A device fresh from power-up, with QEMU's MAC in `RAL0`/`RAH0` and in the EEPROM.
    pub fn new(model: Model) -> Self {
        let mut n = Self {
            regs: vec![0; regs::MIN_BAR_LEN / 4],
            writes: Vec::new(),
            reset_polls: 0,
            rst_left: 0,
            resets: 0,
            eeprom: [0; 64],
            eeprom_reads: 0,
            eeprom_broken: false,
            cable: true,
            stats_clear_on_read: true,
            model,
        };
        let m = QEMU_MAC.0;
        n.eeprom[0] = u16::from_le_bytes([m[0], m[1]]);
        n.eeprom[1] = u16::from_le_bytes([m[2], m[3]]);
        n.eeprom[2] = u16::from_le_bytes([m[4], m[5]]);
        n.power_on();
        n
    }

    fn power_on(&mut self) {
        self.regs.iter_mut().for_each(|r| *r = 0);
        let (l, h) = ra_from_mac(QEMU_MAC);
        self.set(regs::RAL0, l);
        self.set(regs::RAH0, h);
    }

    /// A register's value, without side effects.
    pub fn get(&self, offset: u32) -> u32 {
        self.regs[offset as usize / 4]
    }

    /// Sets a register, without side effects.
    pub fn set(&mut self, offset: u32, v: u32) {
        self.regs[offset as usize / 4] = v;
    }

    /// Raises interrupt causes, as the device does on events.
    pub fn cause(&mut self, bits: u32) {
        let v = self.get(regs::ICR) | bits;
        self.set(regs::ICR, v);
    }

    /// True when the device asserts its interrupt (a cause is set and enabled).
    pub fn interrupt_asserted(&self) -> bool {
        self.get(regs::ICR) & self.get(regs::IMS) != 0
    }

    /// Plugs or unplugs the cable, raising a link status change.
    pub fn set_cable(&mut self, on: bool) {
        self.cable = on;
        self.cause(int::LSC);
    }

    /// Writes that went to `offset`, in order.
    pub fn writes_to(&self, offset: u32) -> Vec<u32> {
        self.writes
            .iter()
            .filter(|w| w.0 == offset)
            .map(|w| w.1)
            .collect()
    }
}

impl Registers for FakeNic {
    fn read(&mut self, offset: u32) -> u32 {
        match offset {
            regs::CTRL => {
                if self.rst_left > 0 && self.rst_left != u32::MAX {
                    self.rst_left -= 1;
                    if self.rst_left == 0 {
                        let v = self.get(regs::CTRL) & !ctrl::RST;
                        self.set(regs::CTRL, v);
                    }
                }
                self.get(regs::CTRL)
            }
            regs::STATUS => {
                let up = self.cable && self.get(regs::CTRL) & ctrl::SLU != 0;
                if up {
                    regs::status::LU | regs::status::FD
                } else {
                    0
                }
            }
            regs::MPC | regs::ROC | regs::CRCERRS if !self.stats_clear_on_read => self.get(offset),
            regs::ICR | regs::MPC | regs::ROC | regs::RLEC | regs::CRCERRS => {
                let v = self.get(offset);
                self.set(offset, 0);
                v
            }
            _ => self.get(offset),
        }
    }

    fn write(&mut self, offset: u32, value: u32) {
        self.writes.push((offset, value));
        match offset {
            regs::CTRL if value & ctrl::RST != 0 => {
                self.resets += 1;
                self.power_on();
                // Everything back to power-up values (CTRL = 0); RST reads back set for
                // `reset_polls` reads.
                self.rst_left = self.reset_polls;
                if self.rst_left > 0 {
                    self.set(regs::CTRL, ctrl::RST);
                }
            }
            regs::IMS => {
                let v = self.get(regs::IMS) | value;
                self.set(regs::IMS, v);
            }
            regs::IMC => {
                let v = self.get(regs::IMS) & !value;
                self.set(regs::IMS, v);
            }
            regs::ICS => self.cause(value),
            regs::EERD => {
                let l = self.model.eerd();
                if value & l.start != 0 && !self.eeprom_broken {
                    self.eeprom_reads += 1;
                    let addr = ((value >> l.addr_shift) & 0xFF) as usize;
                    let data = u32::from(self.eeprom.get(addr).copied().unwrap_or(0xFFFF));
                    self.set(
                        regs::EERD,
                        (data << l.data_shift) | l.done | (value & 0xFFFF & !l.done),
                    );
                } else {
                    self.set(regs::EERD, value & !l.done);
                }
            }
            _ => self.set(offset, value),
        }
    }
}

/// DMA memory on the heap, at a made-up physical address.
pub struct FakeDma {
    words: Vec<u64>,
    /// Where the device sees it.
    pub phys: u64,
}

impl FakeDma {
    /// `bytes` of zeroed memory at physical `phys`.
    pub fn new(bytes: usize, phys: u64) -> Self {
        Self {
            words: vec![0; bytes.div_ceil(8)],
            phys,
        }
    }

    /// The driver's handle on it. The memory must outlive every user of the handle.
    pub fn slice(&mut self) -> DmaSlice {
        let len = self.words.len() * 8;
        // Safety: the vector lives as long as `self`; the tests keep `self` alive while the
        // driver uses the memory, and the device side below only touches it between driver
        // calls.
        unsafe {
            DmaSlice::new(
                NonNull::new(self.words.as_mut_ptr().cast()).unwrap(),
                self.phys,
                len,
            )
            .unwrap()
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.words.len() * 8;
        // Safety: the vector's own memory.
        unsafe { core::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Offset of physical address `phys`, if inside.
    fn off(&self, phys: u64, len: usize) -> Option<usize> {
        let off = usize::try_from(phys.checked_sub(self.phys)?).ok()?;
        (off.checked_add(len)? <= self.words.len() * 8).then_some(off)
    }

    /// Reads `len` bytes at physical `phys` (the device's DMA read).
    pub fn read(&mut self, phys: u64, len: usize) -> Option<Vec<u8>> {
        let off = self.off(phys, len)?;
        Some(self.bytes_mut()[off..off + len].to_vec())
    }

    /// Writes `data` at physical `phys` (the device's DMA write).
    pub fn write(&mut self, phys: u64, data: &[u8]) -> Option<()> {
        let off = self.off(phys, data.len())?;
        self.bytes_mut()[off..off + data.len()].copy_from_slice(data);
        Some(())
    }

    fn rx_desc(&mut self, phys: u64) -> Option<RxDesc> {
        let b = self.read(phys, 16)?;
        Some(RxDesc {
            addr: u64::from_le_bytes(b[0..8].try_into().ok()?),
            length: u16::from_le_bytes([b[8], b[9]]),
            checksum: u16::from_le_bytes([b[10], b[11]]),
            status: b[12],
            errors: b[13],
            special: u16::from_le_bytes([b[14], b[15]]),
        })
    }

    fn tx_desc(&mut self, phys: u64) -> Option<TxDesc> {
        let b = self.read(phys, 16)?;
        Some(TxDesc {
            addr: u64::from_le_bytes(b[0..8].try_into().ok()?),
            length: u16::from_le_bytes([b[8], b[9]]),
            cso: b[10],
            cmd: b[11],
            status: b[12],
            css: b[13],
            special: u16::from_le_bytes([b[14], b[15]]),
        })
    }
}

/// The device receives `frame`: stores it in the next RX descriptor the driver gave it and
/// raises `RXT0`, or counts a missed packet (`MPC`, `RXO`) when the ring is full or the receiver
/// is off. A frame longer than a 2 KiB buffer is split over descriptors as with `RCTL.LPE`, or
/// counted in `ROC` and dropped without it. Returns true when stored.
pub fn receive(nic: &mut FakeNic, dma: &mut FakeDma, frame: &[u8]) -> bool {
    const BUF: usize = 2048;
    if nic.get(regs::RCTL) & regs::rctl::EN == 0 {
        return false;
    }
    if frame.len() > 1522 && nic.get(regs::RCTL) & regs::rctl::LPE == 0 {
        let v = nic.get(regs::ROC) + 1;
        nic.set(regs::ROC, v);
        return false;
    }
    let base = u64::from(nic.get(regs::RDBAL)) | u64::from(nic.get(regs::RDBAH)) << 32;
    let count = nic.get(regs::RDLEN) / 16;
    let pieces: Vec<&[u8]> = frame.chunks(BUF).collect();
    let (head, tail) = (nic.get(regs::RDH), nic.get(regs::RDT));
    let free = (tail + count - head) % count;
    if count == 0 || (free as usize) < pieces.len() {
        let v = nic.get(regs::MPC) + 1;
        nic.set(regs::MPC, v);
        nic.cause(int::RXO);
        return false;
    }
    let mut h = head;
    for (i, piece) in pieces.iter().enumerate() {
        let at = base + u64::from(h) * 16;
        let mut d = dma.rx_desc(at).expect("RX descriptor inside DMA memory");
        dma.write(d.addr, piece)
            .expect("RX buffer inside DMA memory");
        d.length = piece.len() as u16;
        d.status = rx_status::DD
            | if i + 1 == pieces.len() {
                rx_status::EOP
            } else {
                0
            };
        d.errors = 0;
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..10].copy_from_slice(&d.length.to_le_bytes());
        b[12] = d.status;
        dma.write(at, &b).unwrap();
        h = (h + 1) % count;
    }
    nic.set(regs::RDH, h);
    nic.cause(int::RXT0);
    true
}

/// The device sends what the driver queued (descriptors from `TDH` to `TDT`), writing back DD
/// where asked; returns the frames.
pub fn transmit(nic: &mut FakeNic, dma: &mut FakeDma) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if nic.get(regs::TCTL) & regs::tctl::EN == 0 {
        return out;
    }
    let base = u64::from(nic.get(regs::TDBAL)) | u64::from(nic.get(regs::TDBAH)) << 32;
    let count = nic.get(regs::TDLEN) / 16;
    let mut h = nic.get(regs::TDH);
    let mut frame = Vec::new();
    while count > 0 && h != nic.get(regs::TDT) {
        let at = base + u64::from(h) * 16;
        let d = dma.tx_desc(at).expect("TX descriptor inside DMA memory");
        frame.extend(
            dma.read(d.addr, d.length as usize)
                .expect("TX data inside DMA memory"),
        );
        if d.cmd & tx_cmd::EOP != 0 {
            out.push(core::mem::take(&mut frame));
        }
        if d.cmd & tx_cmd::RS != 0 {
            dma.write(at + 12, &[d.status | tx_status::DD]).unwrap();
        }
        h = (h + 1) % count;
    }
    nic.set(regs::TDH, h);
    if !out.is_empty() {
        nic.cause(int::TXDW);
    }
    out
}
