//! The e1000 driver program (process `e1000`, binary `e1000`, no arguments).
//!
//! It finds `nic0` among the PCI functions and maps its registers (`map("nic0")`). Then the
//! manifest decides the mode, by whether it grants the channel `e1000-pf`:
//!
//! - **data path** (granted): `nic0-dma` holds only the two descriptor rings; frames are
//!   received into the rx-pool, which the driver owns, and go to pf by descriptor; frames pf
//!   sends are read from the tx-pool (`e1000::path`, docs/netpath.md). pf is looked up by name
//!   (`pf`), again whenever a notify to it fails.
//! - **self-contained** (`map` fails with `Denied` or `NotFound`; the kernel logs the denial):
//!   `nic0-dma` holds the rings and 2 KiB packet buffers, and the driver answers and sends ARP
//!   itself (below).
//!
//! It resets and programs the device, and then loops:
//!
//! - idle, it sleeps in `wait` with the device's interrupts enabled; the kernel turns the NIC's
//!   interrupt into a notification. On waking it reads `ICR` (which clears it), re-arms the line
//!   with `irq_ack("nic0")`, and if frames arrived switches to polling with the device's
//!   interrupts masked, until a poll finds nothing (under `idle=poll`, on a CPU of its own: until
//!   the polls have found nothing for 20 ms; see `e1000::napi`);
//! - every poll handles up to 64 received frames (and, on the data path, up to 64 messages from
//!   pf), reclaims sent ones and writes each ring's tail once; on the data path the sleep is
//!   the channel's (`pf-e1000`), so a message from pf wakes it as the interrupt does;
//! - between polls (every 64 polls under load) it answers statistics requests over kernel IPC
//!   (`e1000::proto`) when the status page's mail word says one was queued, runs the ARP probe
//!   of the gateway and a watchdog that checks the device's head registers and reads its
//!   statistics registers.
//!
//! Self-contained, the driver itself answers ARP requests for 10.0.2.15 and, once the link is
//! up, asks for 10.0.2.2 (QEMU's user-networking gateway) a few times a second, logging `arp
//! reply from 10.0.2.2 is-at MAC` or giving up loudly after 5 s. Other frames are counted and
//! dropped. On the data path the ip server does ARP.
//!
//! The driver keeps no state across a restart: a new instance resets the device and rewrites
//! both rings, whatever the previous instance left behind.
#![no_std]
#![no_main]

extern crate alloc;

mod datapath;

use alloc::boxed::Box;
use core::ptr::NonNull;

use datapath::{EventLog, Path, WAITER};
use e1000::arp::{self, Ipv4, Mac, ResolveStep, Resolver};
use e1000::dma::DmaSlice;
use e1000::napi::{MaskChange, Mode, Napi};
use e1000::nic::{self, ArpSeen, Nic, answer_arp};
use e1000::proto::{self, PathCounters};
use e1000::regs::{self, int};
use e1000::{Mmio, Model};
use libchan::Waiter as _;
use libsys::{Error, MapInfo, Message, PciInfo, WaitResult, log};

libsys::entry!(main);

/// The device the manifest grants us.
const DEVICE: &str = "nic0";
/// Its DMA region.
const DMA_REGION: &str = "nic0-dma";
/// Our address under QEMU's user networking.
const OUR_IP: Ipv4 = Ipv4([10, 0, 2, 15]);
/// QEMU's user-networking gateway, which the ARP probe asks for.
const GATEWAY: Ipv4 = Ipv4([10, 0, 2, 2]);
/// Time between ARP requests while unanswered.
const ARP_INTERVAL_NS: u64 = 250_000_000;
/// When to give up the ARP probe.
const ARP_LIMIT_NS: u64 = 5_000_000_000;
/// How long to wait for the link after init before reporting it down.
const LINK_WAIT_NS: u64 = 3_000_000_000;
/// Longest idle sleep. Nothing needs a shorter one: the NIC's interrupts, pf's messages and
/// IPC requests (the kernel notifies a process it queues a request for) all end the sleep, and
/// rs does not count a timed sleep as a hang. The watchdog's next round ends it sooner.
const IDLE_WAIT_NS: u64 = 1_000_000_000;
/// Sleep while messages for pf wait for room in its channel (pf does not wake us when it
/// makes room).
const OUTBOX_WAIT_NS: u64 = 1_000_000;
/// Received frames handled per poll.
const RX_BUDGET: usize = 64;
/// Under load, IPC, timers and the watchdog are looked at every this many polls.
const HOUSEKEEPING_POLLS: u64 = 64;
/// Watchdog period.
const WATCHDOG_NS: u64 = 1_000_000_000;
/// Most IPC requests answered per housekeeping round.
const IPC_PER_ROUND: usize = 4;

fn main(args: &str) -> i32 {
    if !args.trim().is_empty() {
        log!("bad arguments '{args}' (expected none)");
        return 2;
    }
    let Some((pci, model)) = find_nic() else {
        return 1;
    };
    log!(
        "{} ({:04x}:{:04x}) at {:02x}:{:02x}.{}, BAR0 {:#x}, interrupt {}",
        model.name(),
        pci.vendor,
        pci.device,
        pci.bus,
        pci.dev,
        pci.func,
        pci.bar0,
        if pci.msi != 0 { "MSI" } else { "INTx" }
    );
    let opened = open_registers().and_then(|mmio| match probe_data_path()? {
        Some(to_pf) => datapath::open(mmio, model, to_pf).map(|(n, p)| (n, Role::path(p))),
        None => open_own_buffers(mmio, model).map(|n| (n, Role::alone())),
    });
    let (mut nic, role) = match opened {
        Ok(x) => x,
        Err(why) => {
            log!("cannot use {DEVICE}: {why}");
            return 1;
        }
    };
    let mac = match nic.init(&mut libsys::sleep_ns) {
        Ok(m) => m,
        Err(e) => {
            log!("{} init failed: {e}", model.name());
            return 1;
        }
    };
    let start = libsys::time_ns();
    while !nic.link_up() && libsys::time_ns() - start < LINK_WAIT_NS {
        libsys::sleep_ns(10_000_000);
        nic.refresh_link();
    }
    log!(
        "{} mac {mac} link {}",
        model.name(),
        if nic.link_up() { "up" } else { "down" }
    );
    Driver::new(nic, mac, role).run()
}

/// The PCI function the kernel named `nic0` and its model. Logs why when there is none or it
/// is not supported.
fn find_nic() -> Option<(PciInfo, Model)> {
    let mut other: Option<PciInfo> = None;
    for index in 0..4096 {
        let info = match libsys::pci_info(index) {
            Ok(i) => i,
            Err(Error::NotFound) => break,
            Err(e) => {
                log!("cannot list PCI functions: {e}");
                return None;
            }
        };
        if info.class != 0x02 {
            continue;
        }
        if name_of(&info) == DEVICE {
            return match Model::from_ids(info.vendor, info.device) {
                Some(m) if m.supported() => Some((info, m)),
                _ => {
                    refuse(&info);
                    None
                }
            };
        }
        other.get_or_insert(info);
    }
    match other {
        Some(info) => refuse(&info),
        None => log!("no network card on PCI: nothing to drive (QEMU: cargo xtask run --net user)"),
    }
    None
}

/// Logs why the driver will not start on `info`: a part it recognises but does not drive (the
/// chipset-integrated 82579, I217, I218, I219) gets its reason, anything else the list of what
/// is supported.
fn refuse(info: &PciInfo) {
    match Model::from_ids(info.vendor, info.device).and_then(Model::refusal) {
        Some(refusal) => log!(
            "{refusal}; not starting on {:02x}:{:02x}.{}",
            info.bus,
            info.dev,
            info.func
        ),
        None => log!(
            "refusing network device {:04x}:{:04x} at {:02x}:{:02x}.{}: not an 82540EM (8086:100e), 82545EM (8086:100f) or 82574L (8086:10d3)",
            info.vendor,
            info.device,
            info.bus,
            info.dev,
            info.func
        ),
    }
}

fn name_of(info: &PciInfo) -> &str {
    let n = info
        .name
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(info.name.len());
    core::str::from_utf8(&info.name[..n]).unwrap_or("")
}

/// Maps the registers.
fn open_registers() -> Result<Mmio, &'static str> {
    let r = libsys::map(DEVICE).map_err(|e| {
        log!("map({DEVICE}): {e}");
        "its registers cannot be mapped"
    })?;
    if r.kind != 1 {
        return Err("'nic0' is not a device in this manifest");
    }
    if (r.len as usize) < regs::MIN_BAR_LEN || !r.addr.is_multiple_of(4) {
        return Err("its register window is too small");
    }
    // Safety: the kernel mapped the device's BAR0 uncached at `r.addr`, `r.len` bytes, for the
    // life of the process; nothing else in this program touches it.
    Ok(unsafe { Mmio::new(r.addr as usize, r.len as usize) })
}

/// Decides the mode: the mapping of `e1000-pf` when the manifest grants it (data path), `None`
/// when it does not (self-contained).
fn probe_data_path() -> Result<Option<MapInfo>, &'static str> {
    let name = netmsg::chan::DRIVER_TO_PF;
    match libsys::map(name) {
        Ok(info) => Ok(Some(info)),
        Err(e @ (Error::Denied | Error::NotFound)) => {
            log!("no data path ({name}: {e}): self-contained, with ARP of its own");
            Ok(None)
        }
        Err(e) => {
            log!("map({name}): {e}");
            Err("the data path's channel cannot be mapped")
        }
    }
}

/// Maps the DMA region for rings and own buffers and builds the NIC over it.
fn open_own_buffers(mmio: Mmio, model: Model) -> Result<Nic<Mmio>, &'static str> {
    let d = libsys::map(DMA_REGION).map_err(|e| {
        log!("map({DMA_REGION}): {e}");
        "its DMA region cannot be mapped (declare [region.nic0-dma] and grant it)"
    })?;
    if (d.len as usize) < nic::dma_bytes_needed() {
        log!(
            "{DMA_REGION} has {} bytes; the rings and buffers need {} ({} pages)",
            d.len,
            nic::dma_bytes_needed(),
            nic::dma_bytes_needed().div_ceil(4096)
        );
        return Err("its DMA region is too small");
    }
    let virt = NonNull::new(d.addr as *mut u8).ok_or("the DMA region was mapped at 0")?;
    // Safety: the kernel mapped the region (physically contiguous, at `d.phys`) at `d.addr`,
    // `d.len` bytes, for the life of the process; only the NIC uses it.
    let dma =
        unsafe { DmaSlice::new(virt, d.phys, d.len as usize) }.map_err(|_| "bad DMA region")?;
    Nic::new(mmio, model, dma).map_err(|_| "the rings do not fit the DMA region")
}

/// What the driver is, besides a NIC.
// One per process, built once: the path's queues are inline (no allocation).
#[allow(clippy::large_enum_variant)]
enum Role {
    /// Self-contained: own buffers, ARP probe and answers.
    Alone {
        resolver: Option<Resolver>,
        arp_answers: u64,
    },
    /// On the data path to pf.
    Path { path: Box<Path>, events: EventLog },
}

impl Role {
    fn alone() -> Self {
        Self::Alone {
            resolver: None,
            arp_answers: 0,
        }
    }

    fn path(path: Box<Path>) -> Self {
        Self::Path {
            path,
            events: EventLog::default(),
        }
    }
}

/// The driver loop's state.
struct Driver {
    nic: Nic<Mmio>,
    mac: Mac,
    napi: Napi,
    role: Role,
    next_watchdog_ns: u64,
    /// A request asked for a reply by `ipc_call`, which the kernel gives us no way to answer
    /// without blocking; said once.
    warned_call_mode: bool,
    /// When a statistics request may be waiting (the status page's mail word).
    mail: libsys::MailWatch,
}

impl Driver {
    fn new(nic: Nic<Mmio>, mac: Mac, role: Role) -> Self {
        let now = libsys::time_ns();
        let mut d = Self {
            nic,
            mac,
            // Under idle=poll, on a CPU of its own, the driver polls on through the gaps between
            // frames (an interrupt, its acknowledgement and the sleep are system calls each);
            // otherwise it goes back to interrupts at the first empty poll.
            napi: Napi::with_grace(
                libsys::IdlePolicy::new(0).poll_ns().unwrap_or(0),
                libsys::abi::IDLE_POLL_STEP_NS,
            ),
            role,
            next_watchdog_ns: now + WATCHDOG_NS,
            warned_call_mode: false,
            mail: libsys::MailWatch::default(),
        };
        if d.nic.link_up() {
            d.start_arp(now);
        }
        d
    }

    fn start_arp(&mut self, now: u64) {
        if let Role::Alone { resolver, .. } = &mut self.role
            && resolver.is_none()
        {
            *resolver = Some(Resolver::new(GATEWAY, now, ARP_INTERVAL_NS, ARP_LIMIT_NS));
        }
    }

    fn run(mut self) -> i32 {
        if let Role::Path { path, .. } = &mut self.role {
            // Every receive descriptor gets an rx-pool buffer; pf is looked up (it may start
            // after us: then again at every housekeeping round).
            path.refill(&mut self.nic);
            self.nic.flush();
            datapath::find_peer(path);
            if WAITER.needs_lookup() {
                log!("{} not running yet; looking for it", datapath::PEER);
            }
        }
        self.nic.unmask_interrupts();
        // The line may still be masked from an interrupt a previous instance never acknowledged.
        let _ = libsys::irq_ack(DEVICE);
        let mut polls_since_housekeeping = 0;
        loop {
            // rs watches it: a driver that stops going round is hung.
            libsys::heartbeat();
            // Live update: at a quiet point (nothing waits for pf) hand over to a fresh instance,
            // which resets the NIC; pf recovers what this one held, as after any restart.
            if libsys::update_requested()
                && matches!(&self.role, Role::Path { path, .. } if path.outbox_len() == 0)
            {
                log!("live update: quiet; exiting for the new instance");
                libsys::exit(axolotl_abi::EXIT_UPDATE);
            }
            if self.napi.mode() == Mode::Interrupts {
                self.sleep();
            }
            let work = self.poll();
            // On the data path, messages from pf keep the loop busy without an interrupt (the
            // channel's sleep returns at once): that is load too, and housekeeping's system
            // calls wait for every HOUSEKEEPING_POLLS rounds.
            let busy = work > 0 && matches!(self.role, Role::Path { .. });
            if self.napi.mode() == Mode::Polling {
                self.nic.counters.polls += 1;
                polls_since_housekeeping += 1;
                if self.napi.polled(work, libsys::time_ns()) == MaskChange::Unmask {
                    self.back_to_interrupts();
                }
            } else if busy {
                polls_since_housekeeping += 1;
            }
            if (self.napi.mode() == Mode::Interrupts && !busy)
                || polls_since_housekeeping >= HOUSEKEEPING_POLLS
            {
                polls_since_housekeeping = 0;
                self.housekeeping();
            }
        }
    }

    /// Sleeps until an interrupt, a message from pf (data path) or the next timer, then takes
    /// the interrupt causes.
    fn sleep(&mut self) {
        let now = libsys::time_ns();
        // Until the watchdog's next round, at most IDLE_WAIT_NS, at least 1 ns.
        let idle_ns = self
            .next_watchdog_ns
            .saturating_sub(now)
            .clamp(1, IDLE_WAIT_NS);
        let notified = match &mut self.role {
            Role::Alone { resolver, .. } => {
                let mut until = now + idle_ns;
                if let Some(at) = resolver.as_ref().and_then(Resolver::next_event_ns) {
                    until = until.min(at);
                }
                let woke = libsys::wait(Some(until.saturating_sub(now).max(1)));
                woke == Ok(WaitResult::Notified)
            }
            Role::Path { path, events } => {
                // The channel's sleep: spin a little, set its sleeping flag, re-check, `wait`.
                // pf's notify and the NIC's interrupt both end it. No system call at all when
                // a message from pf is already there.
                if path.takes_messages() {
                    let timeout = if path.outbox_len() > 0 {
                        OUTBOX_WAIT_NS
                    } else {
                        idle_ns
                    };
                    path.wait(timeout, &mut |e| events.log(e));
                } else {
                    // pf's messages wait until the ring drains (its interrupt, TXDW, ends the
                    // sleep) or pf reads the outbox: waiting on the channel would not sleep.
                    WAITER.wait(Some(OUTBOX_WAIT_NS));
                }
                WAITER.take_notified()
            }
        };
        let (icr, link) = self.nic.take_causes();
        if let Some(up) = link {
            self.link_changed(up);
        }
        if icr & !int::INT_ASSERTED != 0 {
            self.nic.counters.interrupts += 1;
            if icr & self.nic.ring_causes() != 0 && self.napi.interrupted() == MaskChange::Mask {
                self.nic.mask_interrupts();
            }
        }
        if notified {
            // ICR is clear (and the causes masked if polling starts), so the line is quiet:
            // re-arm it. A no-op for MSI.
            let _ = libsys::irq_ack(DEVICE);
        }
    }

    /// A poll found nothing: clear the causes that piled up while polling (or unmasking would
    /// interrupt at once for frames already handled), unmask, and look at the ring once more
    /// for a frame that arrived in between, whose cause the `ICR` read cleared.
    fn back_to_interrupts(&mut self) {
        let (_, link) = self.nic.take_causes();
        if let Some(up) = link {
            self.link_changed(up);
        }
        self.nic.unmask_interrupts();
        let pending = match &self.role {
            Role::Alone { .. } => self.nic.rx_pending(),
            // Finished frames are work only if their messages have room to go to pf;
            // otherwise poll again after a sleep, not at once.
            Role::Path { path, .. } => {
                path.can_take_frames() && (self.nic.rx_pending() || self.nic.tx_done_pending())
            }
        };
        if pending && self.napi.interrupted() == MaskChange::Mask {
            self.nic.mask_interrupts();
        }
    }

    fn link_changed(&mut self, up: bool) {
        log!("{DEVICE} link {}", if up { "up" } else { "down" });
        if up {
            self.start_arp(libsys::time_ns());
        }
    }

    /// One poll: received frames, sent frames, tail writes (and on the data path, messages
    /// from and to pf). Returns the work done.
    fn poll(&mut self) -> usize {
        let (resolver, answers) = match &mut self.role {
            Role::Alone {
                resolver,
                arp_answers,
            } => (resolver, arp_answers),
            Role::Path { path, events } => {
                return path.poll(&mut self.nic, &mut |e| events.log(e));
            }
        };
        let mac = self.mac;
        let rx = self.nic.poll_rx(RX_BUDGET, |frame, tx| {
            match answer_arp(frame, mac, OUR_IP, tx) {
                ArpSeen::Learned { ip, mac } => {
                    if let Some(r) = resolver
                        && r.learn(ip, mac)
                    {
                        log!("arp reply from {ip} is-at {mac}");
                    }
                }
                ArpSeen::Answered { from, queued } => {
                    *answers += 1;
                    if *answers == 1 {
                        log!(
                            "answering ARP requests for {OUR_IP} (first from {from}{})",
                            if queued {
                                ""
                            } else {
                                ", reply dropped: TX ring full"
                            }
                        );
                    }
                }
                ArpSeen::Nothing | ArpSeen::Malformed(_) => {}
            }
        });
        let tx = self.nic.reclaim_tx();
        self.nic.flush();
        rx + tx
    }

    /// IPC requests, the ARP probe or finding pf, the watchdog.
    fn housekeeping(&mut self) {
        self.serve_ipc();
        let now = libsys::time_ns();
        match &mut self.role {
            Role::Alone { .. } => self.arp_tick(now),
            Role::Path { path, .. } => datapath::find_peer(path),
        }
        if now >= self.next_watchdog_ns {
            self.next_watchdog_ns = now + WATCHDOG_NS;
            self.watchdog();
        }
    }

    fn arp_tick(&mut self, now: u64) {
        let Role::Alone {
            resolver: Some(r), ..
        } = &mut self.role
        else {
            return;
        };
        match r.poll(now) {
            ResolveStep::Send { .. } => {
                let (mac, target) = (self.mac, r.target);
                let _ = self
                    .nic
                    .send_with(|buf| arp::write_request(buf, mac, OUR_IP, target).unwrap_or(0));
                self.nic.flush();
            }
            ResolveStep::GaveUp { attempts } => log!(
                "ARP FAILED: no reply from {} after {} s and {attempts} requests; is the NIC on a network (cargo xtask run --net user)?",
                r.target,
                ARP_LIMIT_NS / 1_000_000_000
            ),
            ResolveStep::Wait { .. } | ResolveStep::Done => {}
        }
    }

    /// Answers the statistics requests waiting, without blocking for new ones: only when the
    /// status page says one was queued (no system call otherwise).
    fn serve_ipc(&mut self) {
        let mut mail = core::mem::take(&mut self.mail);
        mail.poll(|| self.take_requests());
        self.mail = mail;
    }

    /// Answers up to [`IPC_PER_ROUND`] requests; true when none is left (or the receive
    /// failed), false when it stopped at the limit.
    fn take_requests(&mut self) -> bool {
        for _ in 0..IPC_PER_ROUND {
            let mut msg: Message = [0; axolotl_abi::IPC_MSG_LEN];
            let from = match libsys::ipc_recv(&mut msg, Some(0)) {
                Ok(pid) => pid,
                Err(Error::TimedOut) => return true,
                Err(e) => {
                    log!("ipc_recv failed: {e}");
                    return true;
                }
            };
            if !proto::replies_by_send(&msg) {
                if !self.warned_call_mode {
                    self.warned_call_mode = true;
                    log!(
                        "pid {from} asked without the reply-by-send flag (ipc_call?): cannot answer without blocking; ignored"
                    );
                }
                continue;
            }
            self.nic.read_statistics();
            let path = match &self.role {
                Role::Alone { .. } => PathCounters::default(),
                Role::Path { path, .. } => path.counters().report(),
            };
            let reply = proto::answer_all(&msg, &self.nic.counters, &self.nic.status(), &path);
            // The requester waits in ipc_recv right after its send; if it died meanwhile the
            // kernel fails this send instead of leaving us blocked.
            if let Err(e) = libsys::ipc_send(from, &reply) {
                log!("reply to pid {from} failed: {e}");
            }
        }
        false
    }

    /// Reads the statistics registers, notices a missed link change, and resets the device if
    /// it reports a head index outside what we gave it.
    fn watchdog(&mut self) {
        self.nic.read_statistics();
        if let Some(up) = self.nic.refresh_link() {
            self.link_changed(up);
        }
        if let Err(e) = self.nic.check_heads() {
            log!("device reports an impossible ring position ({e:?}): resetting it");
            let done = match &mut self.role {
                Role::Alone { .. } => self.nic.init(&mut libsys::sleep_ns),
                // Frames queued for sending go home as dropped; receive buffers are kept.
                Role::Path { path, events } => {
                    path.reinit(&mut self.nic, &mut libsys::sleep_ns, &mut |e| events.log(e))
                }
            };
            match done {
                Ok(_) => {
                    self.napi.restart();
                    self.nic.unmask_interrupts();
                }
                Err(e) => {
                    log!("reset failed: {e}; exiting");
                    libsys::exit(1);
                }
            }
        }
    }
}
