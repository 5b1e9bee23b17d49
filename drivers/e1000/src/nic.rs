//! The driver core: one NIC with its two rings and its counters. The driver program is a loop
//! around it that adds the system calls (sleeping, interrupt acknowledgement, IPC, logging).
//!
//! A NIC is built one of two ways: [`Nic::new`] with its own packet buffers in its DMA region
//! (frames are handed to a closure and copied out: the self-contained driver), or
//! [`Nic::with_pools`] with only its descriptor rings in its DMA region and the packet buffers in
//! shared pools (frames stay where the device wrote them: the data path, [`crate::path`]).

use crate::arp::{self, ArpAction, Ipv4, Mac};
use crate::device::{self, InitError, Model};
use crate::dma::{DmaError, DmaSlice, Layout, RingLayout};
use crate::mmio::Registers;
use crate::proto::{Counters, Status};
use crate::regs::{self, int};
use crate::ring::{
    PoolBuffers, PooledFrame, PostError, RingError, RxError, RxRing, TxError, TxRing,
};
use crate::stats::StatRegister;

/// Receive descriptors.
pub const RX_DESCRIPTORS: usize = 256;
/// Transmit descriptors.
pub const TX_DESCRIPTORS: usize = 256;
/// Bytes per packet buffer.
pub const BUF_SIZE: usize = 2048;

/// Why a [`Nic`] could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicError {
    /// The DMA region does not fit the rings and buffers.
    Dma(DmaError),
    /// A ring could not be built over its memory.
    Ring(RingError),
}

impl From<DmaError> for NicError {
    fn from(e: DmaError) -> Self {
        Self::Dma(e)
    }
}

impl From<RingError> for NicError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

/// Bytes of DMA memory a [`Nic`] with the default ring sizes needs.
pub fn dma_bytes_needed() -> usize {
    Layout::bytes_needed(RX_DESCRIPTORS, TX_DESCRIPTORS, BUF_SIZE).unwrap_or(usize::MAX)
}

/// Bytes of DMA memory a [`Nic`] over shared pools needs: the two descriptor rings.
pub fn ring_bytes_needed() -> usize {
    RingLayout::bytes_needed(RX_DESCRIPTORS, TX_DESCRIPTORS).unwrap_or(usize::MAX)
}

/// A receive descriptor the device finished, over a pool ([`Nic::poll_rx_pooled`]). Either way
/// the pool buffer is the caller's again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A good frame of `len` bytes at the start of pool buffer `buffer`.
    Frame {
        /// The pool buffer.
        buffer: u32,
        /// The frame's length.
        len: usize,
    },
    /// A bad frame (counted), or a piece of one: the buffer holds nothing to pass on.
    Dropped {
        /// The pool buffer.
        buffer: u32,
    },
}

/// Queues frames on the transmit ring from inside a receive handler.
pub struct Transmit<'a> {
    ring: &'a mut TxRing,
    drops: &'a mut u64,
}

impl Transmit<'_> {
    /// Queues the frame `fill` writes (returning its length); counts a drop when the ring is
    /// full or the frame bad. Returns true when queued.
    pub fn send_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> bool {
        match self.ring.push_with(fill) {
            Ok(_) => true,
            Err(_) => {
                *self.drops += 1;
                false
            }
        }
    }
}

/// One NIC.
pub struct Nic<R: Registers> {
    regs: R,
    model: Model,
    mac: Mac,
    rx: RxRing,
    tx: TxRing,
    /// Traffic counters.
    pub counters: Counters,
    link_up: bool,
    link_changes: u64,
    rx_errors: u64,
    tx_drops: u64,
    /// Missed packets, oversized frames, CRC errors.
    stats: [StatRegister; 3],
}

impl<R: Registers> Nic<R> {
    /// A NIC over register bank `regs` with rings in `dma` (of at least [`dma_bytes_needed`]
    /// bytes). Touches no register: call [`Nic::init`].
    pub fn new(regs: R, model: Model, dma: DmaSlice) -> Result<Self, NicError> {
        let l = Layout::new(dma, RX_DESCRIPTORS, TX_DESCRIPTORS, BUF_SIZE)?;
        Ok(Self {
            regs,
            model,
            mac: Mac::ZERO,
            rx: RxRing::new(l.rx_desc, l.rx_bufs, RX_DESCRIPTORS, BUF_SIZE)?,
            tx: TxRing::new(l.tx_desc, l.tx_bufs, TX_DESCRIPTORS, BUF_SIZE)?,
            counters: Counters::default(),
            link_up: false,
            link_changes: 0,
            rx_errors: 0,
            tx_drops: 0,
            stats: [
                StatRegister::new(regs::MPC),
                StatRegister::new(regs::ROC),
                StatRegister::new(regs::CRCERRS),
            ],
        })
    }

    /// A NIC over register bank `regs` with its descriptor rings in `rings` (at least
    /// [`ring_bytes_needed`] bytes) that receives into buffers of `rx_pool` and sends from
    /// buffers of `tx_pool`. The receive ring starts empty: post buffers with [`Nic::rx_post`]
    /// after [`Nic::init`]. Touches no register.
    pub fn with_pools(
        regs: R,
        model: Model,
        rings: DmaSlice,
        rx_pool: PoolBuffers,
        tx_pool: PoolBuffers,
    ) -> Result<Self, NicError> {
        let l = RingLayout::new(rings, RX_DESCRIPTORS, TX_DESCRIPTORS)?;
        Ok(Self {
            regs,
            model,
            mac: Mac::ZERO,
            rx: RxRing::over_pool(l.rx_desc, RX_DESCRIPTORS, rx_pool)?,
            tx: TxRing::over_pool(l.tx_desc, TX_DESCRIPTORS, tx_pool)?,
            counters: Counters::default(),
            link_up: false,
            link_changes: 0,
            rx_errors: 0,
            tx_drops: 0,
            stats: [
                StatRegister::new(regs::MPC),
                StatRegister::new(regs::ROC),
                StatRegister::new(regs::CRCERRS),
            ],
        })
    }

    /// True when the packet buffers are in shared pools ([`Nic::with_pools`]).
    pub fn is_pooled(&self) -> bool {
        self.rx.is_pooled()
    }

    /// Resets and programs the device ([`device::init`]); interrupts stay masked. Idempotent:
    /// whatever state the device was left in, it ends up the same.
    pub fn init(&mut self, sleep: &mut impl FnMut(u64)) -> Result<Mac, InitError> {
        self.mac = device::init(
            &mut self.regs,
            self.model,
            &mut self.rx,
            &mut self.tx,
            sleep,
        )?;
        // The reset zeroed the statistics registers.
        self.stats.iter_mut().for_each(StatRegister::device_reset);
        self.link_up = device::link_up(&mut self.regs);
        Ok(self.mac)
    }

    /// Stops the device and programs it afresh ([`Nic::init`]), for a device that misbehaved:
    /// frames of pool buffers still queued for sending are given up and passed to `dropped`
    /// (once the device can no longer read them), and the receive buffers the ring holds are
    /// posted again.
    pub fn reinit(
        &mut self,
        sleep: &mut impl FnMut(u64),
        dropped: impl FnMut(PooledFrame),
    ) -> Result<Mac, InitError> {
        device::quiesce(&mut self.regs);
        sleep(device::QUIESCE_NS);
        self.tx.abandon(dropped);
        self.init(sleep)
    }

    /// The register bank (the host tests reach the fake device through it).
    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }

    /// The model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The station address (after [`Nic::init`]).
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The link state last seen.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Link, identity and error counters for [`crate::proto`].
    pub fn status(&self) -> Status {
        Status {
            link_up: self.link_up,
            mac: self.mac,
            vendor: device::VENDOR_INTEL,
            device: self.model.device_id(),
            link_changes: self.link_changes,
            rx_errors: self.rx_errors,
            tx_drops: self.tx_drops,
        }
    }

    /// Reads the link state; returns it when it changed.
    pub fn refresh_link(&mut self) -> Option<bool> {
        let up = device::link_up(&mut self.regs);
        if up == self.link_up {
            return None;
        }
        self.link_up = up;
        self.link_changes += 1;
        Some(up)
    }

    /// Reads (and so clears) the interrupt causes and handles those that are not ring work:
    /// link changes and receive overruns. Returns the causes and the new link state if it
    /// changed.
    pub fn take_causes(&mut self) -> (u32, Option<bool>) {
        let icr = self.regs.read(regs::ICR);
        let link = if icr & int::LSC != 0 {
            self.refresh_link()
        } else {
            None
        };
        if icr & int::RXO != 0 {
            let before = self.counters.rx_drops;
            self.read_statistics();
            if self.counters.rx_drops == before {
                // An overrun the missed-packets counter did not show: count it anyway.
                self.counters.rx_drops += 1;
            }
        }
        (icr, link)
    }

    /// Adds what the device's statistics registers counted since the last call: missed
    /// packets to `rx_drops`, oversized frames to `rx_too_long`, CRC errors to the receive
    /// errors.
    pub fn read_statistics(&mut self) {
        let [mpc, roc, crc] = &mut self.stats;
        self.counters.rx_drops += mpc.take(&mut self.regs);
        self.counters.rx_too_long += roc.take(&mut self.regs);
        self.rx_errors += crc.take(&mut self.regs);
    }

    /// Masks every interrupt cause (polling starts).
    pub fn mask_interrupts(&mut self) {
        device::disable_interrupts(&mut self.regs);
    }

    /// Enables the driver's interrupt causes (back to sleeping): [`int::ENABLED`], and over
    /// pools also `TXDW`, since the owner of a transmit buffer waits for it.
    pub fn unmask_interrupts(&mut self) {
        if self.is_pooled() {
            self.regs.write(regs::IMS, int::ENABLED | int::TXDW);
        } else {
            device::enable_interrupts(&mut self.regs);
        }
    }

    /// The interrupt causes that mean ring work, as opposed to a link change: when one is
    /// set the driver polls.
    pub fn ring_causes(&self) -> u32 {
        let rx = int::RXT0 | int::RXO | int::RXDMT0;
        if self.is_pooled() { rx | int::TXDW } else { rx }
    }

    /// Handles up to `budget` received descriptors: good frames go to `handler`, which may
    /// queue frames with its [`Transmit`]; bad ones are counted. Gives the descriptors back and
    /// returns how many were handled. The tails are written by [`Nic::flush`].
    pub fn poll_rx(
        &mut self,
        budget: usize,
        mut handler: impl FnMut(&[u8], &mut Transmit<'_>),
    ) -> usize {
        if self.rx.is_pooled() {
            // Its buffers belong to a pool: `poll_rx_pooled` hands them back.
            return 0;
        }
        let mut done = 0;
        while done < budget {
            let Some(token) = self.rx.next() else { break };
            match self.rx.frame(&token) {
                Ok(frame) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += frame.len() as u64;
                    let mut tx = Transmit {
                        ring: &mut self.tx,
                        drops: &mut self.tx_drops,
                    };
                    handler(frame, &mut tx);
                }
                Err(RxError::TooLong { .. }) => self.counters.rx_too_long += 1,
                Err(RxError::Fragment | RxError::InPool) => {}
                Err(RxError::Damaged { .. } | RxError::Empty) => self.rx_errors += 1,
            }
            self.rx.release(token);
            done += 1;
        }
        done
    }

    /// Over pools: handles up to `budget` received descriptors, passing each buffer with what
    /// it holds to `handler` (the caller owns the buffer again). Good frames are counted in
    /// `rx_frames`/`rx_bytes`, bad ones as with [`Nic::poll_rx`]. The emptied descriptors wait
    /// for [`Nic::rx_post`]; the tail is written by [`Nic::flush`]. Returns how many were
    /// handled.
    pub fn poll_rx_pooled(&mut self, budget: usize, mut handler: impl FnMut(Received)) -> usize {
        let mut done = 0;
        while done < budget {
            let Some(token) = self.rx.next() else { break };
            let (outcome, len) = (token.outcome(), token.len());
            let Some(buffer) = self.rx.release(token) else {
                break;
            };
            match outcome {
                Ok(()) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += len as u64;
                    handler(Received::Frame { buffer, len });
                }
                Err(e) => {
                    match e {
                        RxError::TooLong { .. } => self.counters.rx_too_long += 1,
                        RxError::Fragment | RxError::InPool => {}
                        RxError::Damaged { .. } | RxError::Empty => self.rx_errors += 1,
                    }
                    handler(Received::Dropped { buffer });
                }
            }
            done += 1;
        }
        done
    }

    /// Over pools: posts pool buffer `index` for receiving (see [`RxRing::post`]).
    pub fn rx_post(&mut self, index: u32) -> Result<(), PostError> {
        self.rx.post(index)
    }

    /// Receive descriptors waiting for a buffer (always 0 with own buffers).
    pub fn rx_unposted(&self) -> usize {
        self.rx.unposted()
    }

    /// Receive descriptors holding a buffer.
    pub fn rx_posted(&self) -> usize {
        self.rx.posted()
    }

    /// Over pools: queues a frame in a pool buffer for sending (see [`TxRing::push_pooled`]).
    /// A refusal is not counted here: the caller decides what becomes of the frame.
    pub fn send_pooled(&mut self, frame: PooledFrame) -> Result<(), TxError> {
        self.tx.push_pooled(frame)
    }

    /// Over pools: takes back up to `max` frames the device finished sending, passing each to
    /// `done` (its buffer is free for its owner again), and counts them; returns how many.
    pub fn reclaim_tx_pooled(&mut self, max: usize, done: impl FnMut(PooledFrame)) -> usize {
        let sent = self.tx.reclaim_with(max, done);
        self.counters.tx_frames += sent.frames;
        self.counters.tx_bytes += sent.bytes;
        sent.frames as usize
    }

    /// True when the device finished a frame not yet reclaimed (one descriptor read, no
    /// register access).
    pub fn tx_done_pending(&self) -> bool {
        self.tx.done_pending()
    }

    /// Frames that can be queued for sending now.
    pub fn tx_free(&self) -> usize {
        self.tx.free()
    }

    /// Counts a frame that could not be sent (reported in [`Status::tx_drops`]).
    pub fn count_tx_drop(&mut self) {
        self.tx_drops += 1;
    }

    /// True when a received descriptor is waiting (one descriptor read, no register access).
    pub fn rx_pending(&self) -> bool {
        self.rx.next().is_some()
    }

    /// Takes back the frames the device finished sending and counts them; returns how many.
    pub fn reclaim_tx(&mut self) -> usize {
        let sent = self.tx.reclaim();
        self.counters.tx_frames += sent.frames;
        self.counters.tx_bytes += sent.bytes;
        sent.frames as usize
    }

    /// Queues a frame (see [`Transmit::send_with`]).
    pub fn send_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, TxError> {
        let r = self.tx.push_with(fill);
        if r.is_err() {
            self.tx_drops += 1;
        }
        r
    }

    /// Frames queued and not yet sent.
    pub fn tx_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// Writes the ring tails that changed: one register write per ring per batch.
    pub fn flush(&mut self) {
        if let Some(t) = self.rx.tail_update() {
            self.regs.write(regs::RDT, t);
        }
        if let Some(t) = self.tx.tail_update() {
            self.regs.write(regs::TDT, t);
        }
    }

    /// Checks the head registers against what the driver gave the device. An error means the
    /// device (or its emulation) is confused and needs a reset.
    pub fn check_heads(&mut self) -> Result<(), RingError> {
        let rdh = self.regs.read(regs::RDH);
        self.rx.check_head(rdh)?;
        let tdh = self.regs.read(regs::TDH);
        self.tx.check_head(tdh)?;
        Ok(())
    }
}

/// What [`answer_arp`] saw in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpSeen {
    /// Nothing for ARP.
    Nothing,
    /// A request for our address, answered (or dropped if the TX ring was full: `queued`).
    Answered {
        /// Who asked.
        from: Ipv4,
        /// Whether the reply was queued.
        queued: bool,
    },
    /// An ARP packet told us where `ip` is.
    Learned {
        /// The address.
        ip: Ipv4,
        /// Its MAC.
        mac: Mac,
    },
    /// A malformed ARP frame.
    Malformed(arp::FrameError),
}

/// Answers ARP requests for `our_ip` (with `our_mac`) and reports ARP replies to us.
pub fn answer_arp(frame: &[u8], our_mac: Mac, our_ip: Ipv4, tx: &mut Transmit<'_>) -> ArpSeen {
    match arp::classify(frame, our_ip) {
        Ok(ArpAction::Ignore) => ArpSeen::Nothing,
        Ok(ArpAction::Answer(req)) => {
            let queued = tx.send_with(|buf| arp::write_reply(buf, &req, our_mac).unwrap_or(0));
            ArpSeen::Answered {
                from: req.sender_ip,
                queued,
            }
        }
        Ok(ArpAction::Learned { ip, mac }) => ArpSeen::Learned { ip, mac },
        Err(e) => ArpSeen::Malformed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeDma, FakeNic, QEMU_MAC, receive, transmit};
    use crate::napi::{MaskChange, Napi};
    use crate::regs::{ctrl, rctl, tctl};

    const PHYS: u64 = 0x0123_4000_0000;
    const OUR_IP: Ipv4 = Ipv4([10, 0, 2, 15]);
    const GW_IP: Ipv4 = Ipv4([10, 0, 2, 2]);
    const GW_MAC: Mac = Mac([0x52, 0x55, 10, 0, 2, 2]);

    fn setup(model: Model) -> (Nic<FakeNic>, FakeDma) {
        let mut dma = FakeDma::new(dma_bytes_needed(), PHYS);
        let mut nic = Nic::new(FakeNic::new(model), model, dma.slice()).unwrap();
        assert_eq!(nic.init(&mut |_| {}), Ok(QEMU_MAC));
        (nic, dma)
    }

    fn frame_from_gw(ethertype: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&QEMU_MAC.0);
        f[6..12].copy_from_slice(&GW_MAC.0);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f
    }

    #[test]
    fn init_programs_the_device() {
        let (mut nic, _dma) = setup(Model::I82540EM);
        assert!(nic.link_up());
        let r = nic.regs();
        assert_eq!(r.resets, 1);
        let c = r.get(regs::CTRL);
        assert_eq!(c & (ctrl::SLU | ctrl::ASDE), ctrl::SLU | ctrl::ASDE);
        assert_eq!(c & (ctrl::RST | ctrl::LRST | ctrl::PHY_RST), 0);
        // Multicast table cleared, every entry.
        assert_eq!(
            r.writes
                .iter()
                .filter(|w| (regs::MTA..regs::MTA + 512).contains(&w.0) && w.1 == 0)
                .count(),
            128
        );
        // RX ring at the start of the region, 256 descriptors, tail = 255.
        assert_eq!(r.get(regs::RDBAL), PHYS as u32);
        assert_eq!(r.get(regs::RDBAH), (PHYS >> 32) as u32);
        assert_eq!(r.get(regs::RDLEN), 256 * 16);
        assert_eq!((r.get(regs::RDH), r.get(regs::RDT)), (0, 255));
        assert_eq!(r.get(regs::RCTL), rctl::EN | rctl::BAM | rctl::SECRC);
        // TX ring on the next page.
        assert_eq!(r.get(regs::TDBAL), (PHYS + 4096) as u32);
        assert_eq!(r.get(regs::TDLEN), 256 * 16);
        assert_eq!((r.get(regs::TDH), r.get(regs::TDT)), (0, 0));
        let t = r.get(regs::TCTL);
        assert_eq!(t & (tctl::EN | tctl::PSP), tctl::EN | tctl::PSP);
        assert_eq!((t >> tctl::CT_SHIFT) & 0xFF, 0x0F);
        assert_eq!((t >> tctl::COLD_SHIFT) & 0x3FF, 0x40);
        assert_eq!(r.get(regs::TIPG), 10 | 8 << 10 | 6 << 20);
        // Interrupts stay masked until the driver asks.
        assert_eq!(r.get(regs::IMS), 0);
        // The receiver is enabled only after its ring is programmed.
        let w = &r.writes;
        let en = w
            .iter()
            .position(|x| x.0 == regs::RCTL && x.1 & rctl::EN != 0)
            .unwrap();
        let base = w.iter().position(|x| x.0 == regs::RDBAL).unwrap();
        let rst = w
            .iter()
            .position(|x| x.0 == regs::CTRL && x.1 & ctrl::RST != 0)
            .unwrap();
        assert!(rst < base && base < en);
        nic.unmask_interrupts();
        assert_eq!(
            nic.regs().get(regs::IMS),
            int::RXT0 | int::RXO | int::RXDMT0 | int::LSC
        );
    }

    #[test]
    fn init_is_idempotent_over_a_running_device() {
        let (mut nic, mut dma) = setup(Model::I82574L);
        nic.unmask_interrupts();
        // Traffic, then the "old instance" dies with frames in both rings and DD bits set.
        for _ in 0..10 {
            assert!(receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 100)));
        }
        nic.send_with(|b| {
            b[..60].fill(1);
            60
        })
        .unwrap();
        nic.flush();
        // A new instance over the same device and memory.
        let regs = core::mem::replace(nic.regs(), FakeNic::new(Model::I82574L));
        let mut fresh = Nic::new(regs, Model::I82574L, dma.slice()).unwrap();
        fresh.init(&mut |_| {}).unwrap();
        let r = fresh.regs();
        assert_eq!(r.resets, 2, "the new instance reset the device");
        assert_eq!(
            (
                r.get(regs::RDH),
                r.get(regs::RDT),
                r.get(regs::TDH),
                r.get(regs::TDT)
            ),
            (0, 255, 0, 0)
        );
        assert_eq!(r.get(regs::IMS), 0);
        // No stale descriptor is taken for a frame.
        assert_eq!(fresh.poll_rx(64, |_, _| panic!("stale frame")), 0);
        assert_eq!(fresh.reclaim_tx(), 0);
        // And it works.
        assert!(receive(fresh.regs(), &mut dma, &frame_from_gw(0x0800, 80)));
        assert_eq!(fresh.poll_rx(64, |f, _| assert_eq!(f.len(), 80)), 1);
    }

    #[test]
    fn receives_counts_and_batches_the_tail() {
        let (mut nic, mut dma) = setup(Model::I82540EM);
        for n in 0..5 {
            assert!(receive(
                nic.regs(),
                &mut dma,
                &frame_from_gw(0x0800, 60 + n)
            ));
        }
        let mut lens = Vec::new();
        let writes_before = nic.regs().writes.len();
        assert_eq!(nic.poll_rx(64, |f, _| lens.push(f.len())), 5);
        assert_eq!(
            nic.regs().writes.len(),
            writes_before,
            "no register write while handling"
        );
        nic.flush();
        assert_eq!(nic.regs().writes_to(regs::RDT).last(), Some(&4));
        assert_eq!(
            nic.regs().writes.len(),
            writes_before + 1,
            "one tail write for the batch"
        );
        assert_eq!(lens, [60, 61, 62, 63, 64]);
        assert_eq!(nic.counters.rx_frames, 5);
        assert_eq!(nic.counters.rx_bytes, 310);
        // The budget is respected.
        for _ in 0..10 {
            receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60));
        }
        assert_eq!(nic.poll_rx(4, |_, _| {}), 4);
        assert_eq!(nic.poll_rx(64, |_, _| {}), 6);
        assert_eq!(nic.poll_rx(64, |_, _| {}), 0);
    }

    #[test]
    fn wraps_around_the_ring_many_times() {
        let (mut nic, mut dma) = setup(Model::I82540EM);
        let mut seen = 0u64;
        for round in 0..1000u32 {
            let mut f = frame_from_gw(0x0800, 64);
            f[20..24].copy_from_slice(&round.to_le_bytes());
            assert!(receive(nic.regs(), &mut dma, &f), "round {round}");
            nic.poll_rx(64, |f, _| {
                assert_eq!(f[20..24], round.to_le_bytes());
                seen += 1;
            });
            nic.flush();
            nic.check_heads().unwrap();
        }
        assert_eq!(seen, 1000);
    }

    #[test]
    fn a_full_ring_counts_drops() {
        // Real hardware clears MPC on read; QEMU's e1000 does not: same counts either way.
        for clears in [true, false] {
            let (mut nic, mut dma) = setup(Model::I82540EM);
            nic.regs().stats_clear_on_read = clears;
            // 255 descriptors are the device's; the 256th frame is missed.
            for _ in 0..255 {
                assert!(receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60)));
            }
            assert!(!receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60)));
            assert!(!receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60)));
            let (icr, _) = nic.take_causes();
            assert_ne!(icr & int::RXO, 0);
            assert_eq!(nic.counters.rx_drops, 2);
            nic.read_statistics();
            nic.read_statistics();
            assert_eq!(
                nic.counters.rx_drops, 2,
                "clears={clears}: not counted twice"
            );
            assert_eq!(nic.poll_rx(1000, |_, _| {}), 255);
            nic.flush();
            for _ in 0..256 {
                receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60));
            }
            nic.take_causes();
            nic.read_statistics();
            assert_eq!(nic.counters.rx_drops, 3, "clears={clears}");
        }
    }

    #[test]
    fn too_long_frames_are_counted() {
        let (mut nic, mut dma) = setup(Model::I82540EM);
        // Dropped by the device (no LPE): counted from ROC.
        assert!(!receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 3000)));
        nic.read_statistics();
        assert_eq!(nic.counters.rx_too_long, 1);
        // Split over buffers (as if LPE were on): counted once from the descriptors.
        let rctl_now = nic.regs().get(regs::RCTL);
        nic.regs().set(regs::RCTL, rctl_now | rctl::LPE);
        assert!(receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 5000)));
        assert!(receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 100)));
        let mut good = Vec::new();
        assert_eq!(nic.poll_rx(64, |f, _| good.push(f.len())), 4);
        assert_eq!(good, [100]);
        assert_eq!(nic.counters.rx_too_long, 2);
        assert_eq!(nic.counters.rx_frames, 1);
    }

    #[test]
    fn transmits_and_reclaims() {
        let (mut nic, mut dma) = setup(Model::I82545EM);
        for n in 0..3u8 {
            nic.send_with(|b| {
                b[..100].fill(n);
                100
            })
            .unwrap();
        }
        assert!(
            transmit(nic.regs(), &mut dma).is_empty(),
            "nothing before the tail write"
        );
        nic.flush();
        assert_eq!(nic.regs().writes_to(regs::TDT), [0, 3]);
        let sent = transmit(nic.regs(), &mut dma);
        assert_eq!(sent, vec![vec![0u8; 100], vec![1u8; 100], vec![2u8; 100]]);
        assert_eq!(nic.reclaim_tx(), 3);
        assert_eq!((nic.counters.tx_frames, nic.counters.tx_bytes), (3, 300));
        nic.check_heads().unwrap();
        // A full ring drops and counts.
        for _ in 0..255 {
            nic.send_with(|_| 60).unwrap();
        }
        assert_eq!(nic.send_with(|_| 60), Err(TxError::Full));
        assert_eq!(nic.status().tx_drops, 1);
    }

    #[test]
    fn bad_head_values_are_caught() {
        let (mut nic, _dma) = setup(Model::I82540EM);
        nic.check_heads().unwrap();
        nic.regs().set(regs::RDH, 256);
        assert_eq!(
            nic.check_heads(),
            Err(RingError::HeadOutOfRange {
                head: 256,
                size: 256
            })
        );
        nic.regs().set(regs::RDH, 0);
        nic.regs().set(regs::TDH, 17);
        assert!(matches!(
            nic.check_heads(),
            Err(RingError::HeadOutsideWindow { head: 17, .. })
        ));
        nic.regs().set(regs::TDH, u32::MAX);
        assert!(matches!(
            nic.check_heads(),
            Err(RingError::HeadOutOfRange { .. })
        ));
    }

    #[test]
    fn link_changes_are_seen_through_lsc() {
        let (mut nic, _dma) = setup(Model::I82540EM);
        assert!(nic.link_up());
        nic.regs().set_cable(false);
        assert_eq!(nic.take_causes(), (int::LSC, Some(false)));
        assert_eq!(nic.take_causes(), (0, None), "ICR cleared by the read");
        nic.regs().set_cable(true);
        assert_eq!(nic.take_causes().1, Some(true));
        let s = nic.status();
        assert_eq!(
            (s.link_up, s.link_changes, s.device, s.mac),
            (true, 2, 0x100E, QEMU_MAC)
        );
    }

    #[test]
    fn answers_arp_and_learns_from_replies() {
        let (mut nic, mut dma) = setup(Model::I82540EM);
        // The gateway asks for us; then answers our own request.
        let mut req = [0u8; 60];
        arp::write_request(&mut req, GW_MAC, GW_IP, OUR_IP).unwrap();
        receive(nic.regs(), &mut dma, &req);
        let mut ours = [0u8; 42];
        arp::write_request(&mut ours, QEMU_MAC, OUR_IP, GW_IP).unwrap();
        let mut reply = [0u8; 60];
        arp::write_reply(&mut reply, &arp::parse_arp(&ours).unwrap(), GW_MAC).unwrap();
        receive(nic.regs(), &mut dma, &reply);
        // And some garbage that claims to be ARP.
        let mut garbage = frame_from_gw(arp::ETHERTYPE_ARP, 30);
        garbage[20] = 0xEE;
        receive(nic.regs(), &mut dma, &garbage);
        let mut seen = Vec::new();
        let mac = nic.mac();
        nic.poll_rx(64, |f, tx| seen.push(answer_arp(f, mac, OUR_IP, tx)));
        assert_eq!(
            seen[0],
            ArpSeen::Answered {
                from: GW_IP,
                queued: true
            }
        );
        assert_eq!(
            seen[1],
            ArpSeen::Learned {
                ip: GW_IP,
                mac: GW_MAC
            }
        );
        assert!(matches!(
            seen[2],
            ArpSeen::Malformed(arp::FrameError::Short { .. })
        ));
        nic.flush();
        let out = transmit(nic.regs(), &mut dma);
        assert_eq!(out.len(), 1);
        let a = arp::parse_arp(&out[0]).unwrap();
        assert_eq!(
            (a.op, a.sender_mac, a.sender_ip, a.target_mac, a.target_ip),
            (arp::ArpOp::Reply, QEMU_MAC, OUR_IP, GW_MAC, GW_IP)
        );
    }

    /// The driver loop's interrupt discipline against the fake device: one interrupt for a
    /// burst, polls while frames keep coming, interrupts back on after an empty poll, and no
    /// frame lost in the switch.
    #[test]
    fn fewer_interrupts_than_frames() {
        let (mut nic, mut dma) = setup(Model::I82540EM);
        let mut napi = Napi::new();
        nic.unmask_interrupts();
        let mut interrupts = 0;
        let mut frames = 0;
        let mut arriving = 300; // frames that arrive, 10 per poll
        let mut steps = 0;
        while arriving > 0 || nic.regs().interrupt_asserted() {
            steps += 1;
            assert!(steps < 10_000);
            // Sleeping: only an asserted interrupt wakes us.
            if napi.mode() == crate::napi::Mode::Interrupts {
                if !nic.regs().interrupt_asserted() {
                    for _ in 0..10.min(arriving) {
                        receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60));
                        arriving -= 1;
                    }
                    continue;
                }
                interrupts += 1;
                nic.take_causes();
                if napi.interrupted() == MaskChange::Mask {
                    nic.mask_interrupts();
                }
            }
            let work = nic.poll_rx(64, |_, _| frames += 1);
            nic.flush();
            nic.counters.polls += 1;
            // Frames keep arriving while we poll.
            for _ in 0..10.min(arriving) {
                receive(nic.regs(), &mut dma, &frame_from_gw(0x0800, 60));
                arriving -= 1;
            }
            if napi.polled(work, 0) == MaskChange::Unmask {
                nic.unmask_interrupts();
            }
        }
        // Anything that arrived in the last moment is picked up.
        frames += nic.poll_rx(64, |_, _| {}) as u32;
        assert_eq!(frames, 300);
        assert!(interrupts <= 2, "{interrupts} interrupts for 300 frames");
        assert_eq!(nic.counters.rx_drops, 0);
    }
}
