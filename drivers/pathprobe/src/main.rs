//! `pathprobe`: a stand-in for pf that proves the driver's zero-copy data path end to end
//! (tests/manifests/netpath-driver.toml, where it runs as process `pf`; no arguments).
//!
//! It maps the rx-pool (a view: the driver owns it) and the tx-pool (which it owns here, since
//! no ip runs), attaches to `pf-e1000` (producer) and `e1000-pf` (consumer), and asks the
//! driver for its MAC address over the statistics protocol. Then it builds an ARP request for
//! 10.0.2.2 from 10.0.2.15 in a tx-pool buffer and sends it as `TX_FRAME`, again every 250 ms
//! (in the buffer the `TX_DONE` brought home) until a reply comes, for at most 5 s. Every
//! `RX_FRAME` is checked, summarised in the log for the first few (ethertype, length, buffer),
//! searched for the ARP reply, and returned with `RX_RETURN`. It logs
//!
//! - `pathprobe: tx done (tx-pool buffer N)` for the first `TX_DONE`;
//! - `pathprobe: arp reply from 10.0.2.2 is-at MAC` when the reply arrives through the path;
//! - `pathprobe: driver path rx_to_pf=.. rx_returned=.. ...` (the driver's counters, asked
//!   over IPC) once both happened, and again every 2 s while frames keep arriving, with the
//!   number of frames it saw;
//! - `pathprobe: ARP FAILED ...` if no reply came in 5 s.
//!
//! It then keeps returning frames until it is stopped.
#![no_std]
#![no_main]

use e1000::arp::{self, ArpAction, Ipv4, Mac};
use e1000::proto::{self, PathCounters, Status};
use libchan::{BufferPool, Message as ChanMessage, PoolDescriptor, PoolView};
use libsys::chan::SysWaiter;
use libsys::{Error, Message, log};
use netmsg::{BUFFER_SIZE, Kind, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, chan};

libsys::entry!(main);

/// The driver's process name.
const DRIVER: &str = proto::SERVICE;
/// Our address under QEMU's user networking, and the gateway we ask for.
const OUR_IP: Ipv4 = Ipv4([10, 0, 2, 15]);
const GATEWAY: Ipv4 = Ipv4([10, 0, 2, 2]);
/// Time between ARP requests while unanswered, and when to give up.
const ARP_INTERVAL_NS: u64 = 250_000_000;
const ARP_LIMIT_NS: u64 = 5_000_000_000;
/// Longest sleep in the channel's wait.
const WAIT_NS: u64 = 50_000_000;
/// Received frames summarised in the log.
const FRAMES_LOGGED: u64 = 4;
/// Period of the counter reports while frames arrive.
const REPORT_NS: u64 = 2_000_000_000;
/// How long to wait for the driver's answer to a statistics request.
const REPLY_TIMEOUT_NS: u64 = 2_000_000_000;

fn main(args: &str) -> i32 {
    if !args.trim().is_empty() {
        log!("pathprobe: bad arguments '{args}' (expected none)");
        return 2;
    }
    match run() {
        Ok(()) => 0,
        Err(why) => {
            log!("pathprobe: FAILED: {why}");
            1
        }
    }
}

/// Maps a region of the data path.
fn map(name: &'static str) -> Result<libsys::MapInfo, &'static str> {
    libsys::map(name).map_err(|e| {
        log!("pathprobe: map({name}): {e}");
        "a region of the data path is not granted"
    })
}

/// A view of pool region `name` with id `id`.
fn pool(name: &'static str, id: u16) -> Result<PoolView<'static>, &'static str> {
    let info = map(name)?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process; the
    // driver maps them too, which is what a pool is for: we touch them only through the view.
    unsafe { PoolView::new(id, info.addr as *mut u8, info.len as usize, BUFFER_SIZE) }
        .map_err(|_| "a pool region holds no buffer")
}

/// The driver's pid, waiting for it to exist.
fn driver_pid() -> u32 {
    loop {
        if let Ok(pid) = libsys::lookup(DRIVER) {
            return pid;
        }
        libsys::sleep_ns(10_000_000);
    }
}

/// One statistics request to the driver (`e1000::proto`): `ipc_send`, then `ipc_recv` until
/// its answer comes.
fn ask(pid: u32, kind: u8) -> Result<Message, &'static str> {
    libsys::ipc_send(pid, &proto::request(kind)).map_err(|_| "the driver took no request")?;
    let deadline = libsys::time_ns() + REPLY_TIMEOUT_NS;
    loop {
        let now = libsys::time_ns();
        if now >= deadline {
            return Err("the driver did not answer within 2 s");
        }
        let mut reply: Message = [0; axolotl_abi::IPC_MSG_LEN];
        match libsys::ipc_recv(&mut reply, Some(deadline - now)) {
            Ok(from) if from == pid => {
                if proto::is_unknown(&reply) {
                    return Err("the driver does not know the request");
                }
                return Ok(reply);
            }
            Ok(_) | Err(Error::TimedOut) => {}
            Err(_) => return Err("ipc_recv failed"),
        }
    }
}

/// The probe's state.
struct Probe {
    rx_pool: PoolView<'static>,
    tx_pool: BufferPool<'static>,
    mac: Mac,
    /// The ARP request's buffer, while the driver has it.
    in_flight: Option<PoolDescriptor>,
    requests: u32,
    next_request_ns: u64,
    started_ns: u64,
    replied: bool,
    tx_done: bool,
    frames: u64,
    refused: u64,
    /// Frames seen at the last counter report (None: not reported yet).
    reported: Option<u64>,
    next_report_ns: u64,
    gave_up: bool,
}

fn run() -> Result<(), &'static str> {
    let rx_pool = pool(RX_POOL, RX_POOL_ID)?;
    let tx_pool = BufferPool::new(pool(TX_POOL, TX_POOL_ID)?).map_err(|_| "tx-pool too large")?;
    let pid = driver_pid();
    let mut to_driver = libsys::chan::producer(chan::PF_TO_DRIVER, SysWaiter::new(pid))
        .map_err(|_| "cannot attach to pf-e1000")?;
    let mut from_driver = libsys::chan::consumer(chan::DRIVER_TO_PF, SysWaiter::new(pid))
        .map_err(|_| "cannot attach to e1000-pf")?;
    from_driver.set_spin_limit(0);
    // The driver answers once its loop runs (after the link came up).
    let status = Status::decode(&ask(pid, proto::REQUEST_STATUS)?);
    let path = PathCounters::decode(&ask(pid, proto::REQUEST_PATH)?);
    if !path.data_path {
        return Err("the driver is not in data-path mode");
    }
    log!(
        "pathprobe: driver pid {pid} mac {} link {}, rx-pool {} buffers, tx-pool {} buffers",
        status.mac,
        if status.link_up { "up" } else { "down" },
        rx_pool.count(),
        tx_pool.view().count()
    );
    let now = libsys::time_ns();
    let mut p = Probe {
        rx_pool,
        tx_pool,
        mac: status.mac,
        in_flight: None,
        requests: 0,
        next_request_ns: now,
        started_ns: now,
        replied: false,
        tx_done: false,
        frames: 0,
        refused: 0,
        reported: None,
        next_report_ns: 0,
        gave_up: false,
    };
    let mut batch = [ChanMessage::default(); 64];
    let mut out = [ChanMessage::default(); 64];
    loop {
        let now = libsys::time_ns();
        if let Some(m) = p.arp_tick(now) {
            // The driver's channel may be full for a moment: the request waits for the next tick.
            if to_driver.send(&m).is_err() {
                p.unsend();
            }
        }
        let due = match p.reported {
            None => p.replied && p.tx_done,
            Some(seen) => seen != p.frames && now >= p.next_report_ns,
        };
        if due {
            p.reported = Some(p.frames);
            p.next_report_ns = now + REPORT_NS;
            if let Ok(reply) = ask(pid, proto::REQUEST_PATH) {
                let c = PathCounters::decode(&reply);
                log!(
                    "pathprobe: frames seen {}; driver path rx_to_pf={} rx_returned={} tx_from_pf={} tx_done={} refused={} rx_starved={} epoch_changes={}",
                    p.frames,
                    c.rx_to_pf,
                    c.rx_returned,
                    c.tx_from_pf,
                    c.tx_done,
                    c.refused,
                    c.rx_starved,
                    c.epoch_changes
                );
            }
        }
        let n = match from_driver.recv_batch_wait(&mut batch, Some(WAIT_NS)) {
            Ok(n) => n,
            Err(e) => {
                log!("pathprobe: e1000-pf: {e:?}");
                0
            }
        };
        let mut returns = 0;
        for m in &batch[..n] {
            if let Some(ret) = p.handle(m) {
                out[returns] = ret;
                returns += 1;
            }
        }
        let mut sent = 0;
        while sent < returns {
            match to_driver.send_batch(&out[sent..returns]) {
                Ok(k) => sent += k,
                Err(e) => {
                    log!("pathprobe: pf-e1000: {e:?}; retrying");
                    libsys::sleep_ns(1_000_000);
                }
            }
        }
    }
}

impl Probe {
    /// The ARP request to send now, if one is due.
    fn arp_tick(&mut self, now: u64) -> Option<ChanMessage> {
        if self.replied || self.gave_up || now < self.next_request_ns {
            return None;
        }
        if now - self.started_ns >= ARP_LIMIT_NS {
            self.gave_up = true;
            log!(
                "pathprobe: ARP FAILED: no reply from {GATEWAY} through the data path after {} requests",
                self.requests
            );
            return None;
        }
        if self.in_flight.is_some() {
            // The last request's buffer has not come home yet.
            return None;
        }
        let mut d = self.tx_pool.alloc()?;
        let mut frame = [0u8; 64];
        let len = arp::write_request(&mut frame, self.mac, OUR_IP, GATEWAY).ok()?;
        let buf = self.tx_pool.buffer(d).ok()?;
        buf.copy_from(&frame[..len]);
        d.len = len as u32;
        self.in_flight = Some(d);
        self.requests += 1;
        self.next_request_ns = now + ARP_INTERVAL_NS;
        if self.requests == 1 {
            log!(
                "pathprobe: sending arp request for {GATEWAY} in tx-pool buffer {} ({len} bytes)",
                d.index
            );
        }
        Some(Kind::TxFrame(d).message())
    }

    /// The request could not be queued: take its buffer back.
    fn unsend(&mut self) {
        if let Some(d) = self.in_flight.take() {
            let _ = self.tx_pool.free(d);
            self.requests -= 1;
        }
    }

    /// Handles one message from the driver; returns the `RX_RETURN` to send, if any.
    fn handle(&mut self, m: &ChanMessage) -> Option<ChanMessage> {
        let kinds = match Kind::decode_all(m, self.rx_pool.count(), self.tx_pool.view().count()) {
            Ok(k) => k,
            Err(r) => {
                self.refuse(m.tag, "malformed", r);
                return None;
            }
        };
        // Each buffer on its own (a TX_DONES names several); only a frame gets an answer.
        let mut reply = None;
        for kind in kinds {
            reply = self.handle_one(m.tag, kind).or(reply);
        }
        reply
    }

    /// Handles one buffer of a message tagged `tag`.
    fn handle_one(&mut self, tag: u32, kind: Kind) -> Option<ChanMessage> {
        match kind {
            Kind::RxFrame(d) => {
                self.received(d);
                Some(Kind::RxReturn(d).message())
            }
            Kind::TxDone(d) => {
                if self.tx_pool.free(d).is_err() {
                    self.refuse(tag, "not lent out", d.index);
                    return None;
                }
                if self.in_flight.is_some_and(|f| f.index == d.index) {
                    self.in_flight = None;
                }
                if !self.tx_done {
                    self.tx_done = true;
                    log!("pathprobe: tx done (tx-pool buffer {})", d.index);
                }
                None
            }
            Kind::RxReturn(_) | Kind::TxFrame(_) => {
                self.refuse(tag, "only pf sends it", 0);
                None
            }
        }
    }

    fn refuse(&mut self, tag: u32, why: &str, what: impl core::fmt::Debug) {
        self.refused += 1;
        if self.refused <= 4 {
            log!("pathprobe: refused message {tag:#x} from the driver: {why} ({what:?})");
        }
    }

    /// A received frame: read it (a copy, for this test only: pf itself would only look at the
    /// headers), log a summary of the first few, look for the ARP reply.
    fn received(&mut self, d: PoolDescriptor) {
        let Ok(buf) = self.rx_pool.check(d) else {
            self.refuse(netmsg::tag::RX_FRAME, "outside the rx-pool", d);
            return;
        };
        let mut frame = [0u8; BUFFER_SIZE as usize];
        let len = buf.copy_to(&mut frame);
        let frame = &frame[..len];
        self.frames += 1;
        let ethertype = arp::eth_header(frame).map_or(0, |h| h.ethertype);
        if self.frames <= FRAMES_LOGGED {
            log!(
                "pathprobe: rx frame {}: ethertype {ethertype:#06x}, {len} bytes, rx-pool buffer {}",
                self.frames,
                d.index
            );
        }
        if let Ok(ArpAction::Learned { ip, mac }) = arp::classify(frame, OUR_IP)
            && ip == GATEWAY
            && !self.replied
        {
            self.replied = true;
            log!("pathprobe: arp reply from {ip} is-at {mac}");
        }
    }
}
