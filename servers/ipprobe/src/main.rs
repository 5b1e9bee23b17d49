//! `ipprobe`: a stand-in for ip that drives pf's data path end to end (tests/manifests/pf.toml,
//! where it runs as process `ip`; no arguments), until the ip server exists.
//!
//! It maps the rx-pool (a view: the driver owns it) and the tx-pool (which it owns, as ip will),
//! attaches to `ip-pf` (producer) and `pf-ip` (consumer), and asks the driver for the MAC address
//! over the statistics protocol (`e1000::proto`). Then, through pf:
//!
//! - it sends an ARP request for 10.0.2.2 from 10.0.2.15 as `TX_FRAME`, every 250 ms until it is
//!   answered (at most 5 s), and logs `ipprobe: arp reply from 10.0.2.2 is-at MAC`;
//! - once the gateway's MAC is known, it sends an ICMP echo request to 10.0.2.2 every second
//!   (QEMU's user network answers them) and logs `ipprobe: echo reply from 10.0.2.2 seq=N`
//!   for each reply, and `ipprobe: no echo reply for seq=N` when the next request goes out and
//!   the previous one was not answered (a rule of pf dropped it, say);
//! - it answers ARP requests for 10.0.2.15 (QEMU asks before it answers a ping);
//! - it returns every `RX_FRAME` with `RX_RETURN` and frees the buffer of every `TX_DONE`.
//!
//! Messages that do not fit in the channel wait in an outbox; none is dropped.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::VecDeque;

use e1000::arp::{self, ArpAction, Ipv4, Mac};
use e1000::proto::{self, Status};
use libchan::{BufferPool, Message as ChanMessage, PoolDescriptor, PoolView};
use libsys::chan::SysWaiter;
use libsys::{Error, Message, log};
use netmsg::{BUFFER_SIZE, Kind, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, chan};

libsys::entry!(main);

/// Our address under QEMU's user networking, and the gateway.
const OUR_IP: Ipv4 = Ipv4([10, 0, 2, 15]);
const GATEWAY: Ipv4 = Ipv4([10, 0, 2, 2]);
/// ARP retry interval and limit.
const ARP_INTERVAL_NS: u64 = 250_000_000;
const ARP_LIMIT_NS: u64 = 5_000_000_000;
/// Time between echo requests.
const PING_INTERVAL_NS: u64 = 1_000_000_000;
/// The identifier of our echo requests ("Ax").
const ECHO_ID: u16 = 0x4178;
/// Bytes of payload in an echo request.
const ECHO_DATA: usize = 32;
/// Longest sleep in the channel's wait.
const WAIT_NS: u64 = 50_000_000;
/// How long to wait for the driver's answer.
const REPLY_TIMEOUT_NS: u64 = 2_000_000_000;
/// Most messages read per turn.
const BATCH: usize = 64;

fn main(args: &str) -> i32 {
    if !args.trim().is_empty() {
        log!("ipprobe: bad arguments '{args}' (expected none)");
        return 2;
    }
    match run() {
        Ok(never) => match never {},
        Err(why) => {
            log!("ipprobe: FAILED: {why}");
            1
        }
    }
}

fn pool(name: &'static str, id: u16) -> Result<PoolView<'static>, &'static str> {
    let info = libsys::map(name).map_err(|e| {
        log!("ipprobe: map({name}): {e}");
        "a pool is not granted"
    })?;
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process;
    // the other hops map them too, which is what a pool is for: we touch them only through the
    // view.
    unsafe { PoolView::new(id, info.addr as *mut u8, info.len as usize, BUFFER_SIZE) }
        .map_err(|_| "a pool region holds no buffer")
}

/// The pid of `name`, waiting for it to exist.
fn pid_of(name: &str) -> u32 {
    loop {
        if let Ok(pid) = libsys::lookup(name) {
            return pid;
        }
        libsys::sleep_ns(10_000_000);
    }
}

/// The driver's status, asked with `e1000::proto` (`ipc_send`, then `ipc_recv` for its answer).
fn driver_status() -> Result<Status, &'static str> {
    let pid = pid_of(proto::SERVICE);
    libsys::ipc_send(pid, &proto::request(proto::REQUEST_STATUS))
        .map_err(|_| "the driver took no request")?;
    let deadline = libsys::time_ns() + REPLY_TIMEOUT_NS;
    loop {
        let now = libsys::time_ns();
        if now >= deadline {
            return Err("the driver did not answer within 2 s");
        }
        let mut reply: Message = [0; axolotl_abi::IPC_MSG_LEN];
        match libsys::ipc_recv(&mut reply, Some(deadline - now)) {
            Ok(from) if from == pid && !proto::is_unknown(&reply) => {
                return Ok(Status::decode(&reply));
            }
            Ok(from) if from == pid => return Err("the driver does not know the request"),
            Ok(_) | Err(Error::TimedOut) => {}
            Err(_) => return Err("ipc_recv failed"),
        }
    }
}

struct Probe {
    rx_pool: PoolView<'static>,
    tx_pool: BufferPool<'static>,
    mac: Mac,
    gateway: Option<Mac>,
    started_ns: u64,
    arp_requests: u32,
    next_arp_ns: u64,
    arp_gave_up: bool,
    /// The last echo request's sequence number and whether it was answered.
    seq: u16,
    answered: bool,
    next_ping_ns: u64,
    /// Messages for pf, oldest first.
    outbox: VecDeque<ChanMessage>,
    refused: u64,
    no_buffer_logged: bool,
}

fn run() -> Result<core::convert::Infallible, &'static str> {
    let rx_pool = pool(RX_POOL, RX_POOL_ID)?;
    let tx_pool = BufferPool::new(pool(TX_POOL, TX_POOL_ID)?).map_err(|_| "tx-pool too large")?;
    let status = driver_status()?;
    let pf = pid_of("pf");
    let mut to_pf = libsys::chan::producer(chan::IP_TO_PF, SysWaiter::new(pf))
        .map_err(|_| "cannot attach to ip-pf")?;
    let mut from_pf = libsys::chan::consumer(chan::PF_TO_IP, SysWaiter::new(pf))
        .map_err(|_| "cannot attach to pf-ip")?;
    from_pf.set_spin_limit(0);
    log!(
        "ipprobe: mac {} (from e1000), pf is pid {pf}; rx-pool {} buffers, tx-pool {} buffers",
        status.mac,
        rx_pool.count(),
        tx_pool.view().count()
    );
    let now = libsys::time_ns();
    let mut p = Probe {
        rx_pool,
        tx_pool,
        mac: status.mac,
        gateway: None,
        started_ns: now,
        arp_requests: 0,
        next_arp_ns: now,
        arp_gave_up: false,
        seq: 0,
        answered: true,
        next_ping_ns: 0,
        outbox: VecDeque::new(),
        refused: 0,
        no_buffer_logged: false,
    };
    let mut batch = [ChanMessage::default(); BATCH];
    loop {
        p.tick(libsys::time_ns());
        p.flush(&mut to_pf);
        let n = match from_pf.recv_batch_wait(&mut batch, Some(WAIT_NS)) {
            Ok(n) => n,
            Err(e) => {
                log!("ipprobe: pf-ip: {e:?}");
                0
            }
        };
        for m in &batch[..n] {
            p.handle(m);
        }
        p.flush(&mut to_pf);
    }
}

impl Probe {
    /// Sends as much of the outbox as the channel takes.
    fn flush(&mut self, to_pf: &mut libchan::Producer<'static, SysWaiter>) {
        while !self.outbox.is_empty() {
            let (front, _) = self.outbox.as_slices();
            match to_pf.send_batch(front) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(libchan::SendError::Full) => return,
                Err(e) => {
                    log!("ipprobe: ip-pf: {e:?}");
                    return;
                }
            }
        }
    }

    /// Queues the frame `frame` for sending, in a tx-pool buffer.
    fn send_frame(&mut self, frame: &[u8]) -> bool {
        let Some(mut d) = self.tx_pool.alloc() else {
            if !self.no_buffer_logged {
                self.no_buffer_logged = true;
                log!("ipprobe: tx-pool exhausted: a frame waits for a TX_DONE");
            }
            return false;
        };
        let Ok(buf) = self.tx_pool.buffer(d) else {
            let _ = self.tx_pool.free(d);
            return false;
        };
        d.len = buf.copy_from(frame) as u32;
        self.outbox.push_back(Kind::TxFrame(d).message());
        true
    }

    /// ARP until answered, then one echo request a second.
    fn tick(&mut self, now: u64) {
        match self.gateway {
            None if !self.arp_gave_up && now >= self.next_arp_ns => {
                if now - self.started_ns >= ARP_LIMIT_NS {
                    self.arp_gave_up = true;
                    log!(
                        "ipprobe: ARP FAILED: no reply from {GATEWAY} through pf after {} requests",
                        self.arp_requests
                    );
                    return;
                }
                let mut frame = [0u8; 64];
                let Ok(len) = arp::write_request(&mut frame, self.mac, OUR_IP, GATEWAY) else {
                    return;
                };
                if self.send_frame(&frame[..len]) {
                    self.arp_requests += 1;
                    if self.arp_requests == 1 {
                        log!("ipprobe: sending arp request for {GATEWAY} through pf");
                    }
                }
                self.next_arp_ns = now + ARP_INTERVAL_NS;
            }
            Some(gw) if now >= self.next_ping_ns => {
                if !self.answered {
                    log!("ipprobe: no echo reply for seq={}", self.seq);
                }
                let seq = self.seq.wrapping_add(1);
                let frame = echo_request(self.mac, gw, seq);
                if self.send_frame(&frame) {
                    self.seq = seq;
                    self.answered = false;
                }
                self.next_ping_ns = now + PING_INTERVAL_NS;
            }
            _ => {}
        }
    }

    /// One message from pf.
    fn handle(&mut self, m: &ChanMessage) {
        let kinds = match Kind::decode_all(m, self.rx_pool.count(), self.tx_pool.view().count()) {
            Ok(k) => k,
            Err(r) => return self.refuse(m.tag, r),
        };
        // A TX_DONES brings several buffers home.
        for kind in kinds {
            self.handle_one(m.tag, kind);
        }
    }

    fn handle_one(&mut self, tag: u32, kind: Kind) {
        match kind {
            Kind::RxFrame(d) => {
                self.received(d);
                self.outbox.push_back(Kind::RxReturn(d).message());
            }
            Kind::TxDone(d) => {
                if let Err(e) = self.tx_pool.free(d) {
                    self.refuse(tag, e);
                }
            }
            Kind::RxReturn(_) | Kind::TxFrame(_) => self.refuse(tag, "only ip sends it"),
        }
    }

    fn refuse(&mut self, tag: u32, why: impl core::fmt::Debug) {
        self.refused += 1;
        if self.refused <= 4 {
            log!("ipprobe: refused message {tag:#x} from pf: {why:?}");
        }
    }

    /// A received frame: ARP for us, or an echo reply.
    fn received(&mut self, d: PoolDescriptor) {
        let Ok(buf) = self.rx_pool.check(d) else {
            return self.refuse(netmsg::tag::RX_FRAME, d);
        };
        let mut frame = [0u8; BUFFER_SIZE as usize];
        let len = buf.copy_to(&mut frame);
        let frame = &frame[..len];
        match arp::classify(frame, OUR_IP) {
            Ok(ArpAction::Learned { ip, mac }) if ip == GATEWAY && self.gateway.is_none() => {
                self.gateway = Some(mac);
                log!("ipprobe: arp reply from {ip} is-at {mac}");
            }
            Ok(ArpAction::Answer(request)) => {
                let mut reply = [0u8; 64];
                if let Ok(n) = arp::write_reply(&mut reply, &request, self.mac) {
                    self.send_frame(&reply[..n]);
                }
            }
            _ => {
                if let Some(seq) = echo_reply_seq(frame) {
                    log!("ipprobe: echo reply from {GATEWAY} seq={seq}");
                    if seq == self.seq {
                        self.answered = true;
                    }
                }
            }
        }
    }
}

/// The Internet checksum (RFC 1071) of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Bytes of an echo request frame.
const ECHO_FRAME: usize = 14 + 20 + 8 + ECHO_DATA;

/// An Ethernet frame with an ICMP echo request from us to the gateway.
fn echo_request(src: Mac, dst: Mac, seq: u16) -> [u8; ECHO_FRAME] {
    let mut f = [0u8; ECHO_FRAME];
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 8 + ECHO_DATA) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes());
    ip[8] = 64;
    ip[9] = 1;
    ip[12..16].copy_from_slice(&OUR_IP.0);
    ip[16..20].copy_from_slice(&GATEWAY.0);
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let icmp = &mut f[34..];
    icmp[0] = 8;
    icmp[4..6].copy_from_slice(&ECHO_ID.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in icmp[8..].iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let sum = checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The sequence number of an echo reply to us from the gateway with our identifier.
fn echo_reply_seq(frame: &[u8]) -> Option<u16> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    if be16(12)? != 0x0800 {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0F) * 4;
    if frame.get(14)? >> 4 != 4 || ihl < 20 || *frame.get(23)? != 1 {
        return None;
    }
    if frame.get(26..30)? != GATEWAY.0 || frame.get(30..34)? != OUR_IP.0 {
        return None;
    }
    let icmp = 14 + ihl;
    if *frame.get(icmp)? != 0 || be16(icmp + 4)? != ECHO_ID {
        return None;
    }
    be16(icmp + 6)
}
