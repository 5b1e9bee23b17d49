//! Data-path mode: mapping the pools and channels the manifest grants, the waiter both channel
//! ends sleep and wake through, and logging what the path reports.

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use e1000::dma::DmaSlice;
use e1000::nic::{self, Nic};
use e1000::path::{self, Channel, DataPath, PathEvent, Refusal};
use e1000::{Mmio, Model};
use libchan::{BufferPool, Consumer, PoolView, Producer, Waiter};
use libsys::{MapInfo, WaitResult, log};
use netmsg::{BUFFER_SIZE, RX_POOL, RX_POOL_ID, TX_POOL, TX_POOL_ID, chan};

/// The process at the other end of both channels.
pub const PEER: &str = "pf";
/// Polls of the channel from pf before sleeping (after the NIC had nothing).
pub const SPIN_POLLS: u32 = 100;

/// The waiter of both channel ends: `wait` is the kernel's (a notify from pf or the NIC's
/// interrupt ends it, and whether one did is remembered for the interrupt acknowledgement);
/// `notify` wakes pf and remembers a failure, after which the driver looks pf up again.
/// (libsys's `SysWaiter` does the same but hides both results.)
pub struct PeerWaiter {
    peer: AtomicU32,
    lost: AtomicBool,
    notified: AtomicBool,
}

impl PeerWaiter {
    const fn new() -> Self {
        Self {
            peer: AtomicU32::new(0),
            lost: AtomicBool::new(true),
            notified: AtomicBool::new(false),
        }
    }

    /// True when pf's pid is unknown or a notify to it failed.
    pub fn needs_lookup(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Points `notify` at `pid`.
    pub fn set_peer(&self, pid: u32) {
        self.peer.store(pid, Ordering::Relaxed);
        self.lost.store(false, Ordering::Relaxed);
    }

    /// The pid `notify` wakes (0: unknown).
    pub fn peer(&self) -> u32 {
        self.peer.load(Ordering::Relaxed)
    }

    /// Whether a `wait` since the last call ended by a notification (and forgets it).
    pub fn take_notified(&self) -> bool {
        self.notified.swap(false, Ordering::Relaxed)
    }
}

impl Waiter for PeerWaiter {
    fn wait(&self, timeout_ns: Option<u64>) {
        // A failed wait only means we poll again: the channel re-checks its ring either way.
        if libsys::wait(timeout_ns) == Ok(WaitResult::Notified) {
            self.notified.store(true, Ordering::Relaxed);
        }
    }

    fn notify(&self) {
        let peer = self.peer();
        if peer == 0 {
            return;
        }
        if libsys::notify(peer).is_err() {
            // pf died (or was replaced): look it up again before the next wake-up.
            self.peer.store(0, Ordering::Relaxed);
            self.lost.store(true, Ordering::Relaxed);
        }
    }
}

/// The one waiter, shared by the two channel ends.
pub static WAITER: PeerWaiter = PeerWaiter::new();

/// The path as the driver holds it.
pub type Path = DataPath<'static, &'static PeerWaiter>;

/// Maps a region the manifest must grant in data-path mode.
fn map(name: &'static str) -> Result<MapInfo, &'static str> {
    libsys::map(name).map_err(|e| {
        log!("map({name}): {e}");
        "a region of the data path cannot be mapped (the manifest grants e1000-pf but not all of nic0-dma, rx-pool, tx-pool, pf-e1000)"
    })
}

/// A view of the pool region `info` with id `id`.
fn pool_view(id: u16, info: &MapInfo) -> Result<PoolView<'static>, &'static str> {
    // Safety: the kernel mapped `info.len` bytes at `info.addr` for the life of the process;
    // pf and ip map them too, which is what a pool is for: we touch them only through the view.
    unsafe { PoolView::new(id, info.addr as *mut u8, info.len as usize, BUFFER_SIZE) }
        .map_err(|_| "a pool region holds no buffer")
}

/// Builds the NIC over the rings in `nic0-dma` and the two pools, and the path over the pools
/// and the two channels; `to_pf` is the mapping of `e1000-pf` the mode probe made.
pub fn open(
    mmio: Mmio,
    model: Model,
    to_pf: MapInfo,
) -> Result<(Nic<Mmio>, Box<Path>), &'static str> {
    let d = map(crate::DMA_REGION)?;
    if (d.len as usize) < nic::ring_bytes_needed() {
        log!(
            "{} has {} bytes; the descriptor rings need {} ({} pages)",
            crate::DMA_REGION,
            d.len,
            nic::ring_bytes_needed(),
            nic::ring_bytes_needed().div_ceil(4096)
        );
        return Err("its DMA region is too small for the rings");
    }
    let rx = map(RX_POOL)?;
    let tx = map(TX_POOL)?;
    let from_pf = map(chan::PF_TO_DRIVER)?;
    let rx_view = pool_view(RX_POOL_ID, &rx)?;
    let tx_view = pool_view(TX_POOL_ID, &tx)?;
    let rx_buffers = path::pool_buffers(rx.phys, &rx_view);
    let tx_buffers = path::pool_buffers(tx.phys, &tx_view);
    let virt = NonNull::new(d.addr as *mut u8).ok_or("the DMA region was mapped at 0")?;
    // Safety: the kernel mapped the region (physically contiguous, at `d.phys`) at `d.addr`,
    // `d.len` bytes, for the life of the process; only the NIC uses it.
    let rings =
        unsafe { DmaSlice::new(virt, d.phys, d.len as usize) }.map_err(|_| "bad DMA region")?;
    let nic = Nic::with_pools(mmio, model, rings, rx_buffers, tx_buffers)
        .map_err(|_| "the rings do not fit the DMA region or the pools")?;
    let pool = BufferPool::new(rx_view).map_err(|_| "rx-pool has too many buffers")?;
    // Safety: the kernel mapped each channel region for the life of the process and wrote its
    // header; the manifest names us as the only producer of e1000-pf and the only consumer of
    // pf-e1000.
    let (producer, consumer) = unsafe {
        (
            Producer::attach(to_pf.addr as *mut u8, to_pf.len as usize, &WAITER),
            Consumer::attach(from_pf.addr as *mut u8, from_pf.len as usize, &WAITER),
        )
    };
    let (Ok(mut producer), Ok(mut consumer)) = (producer, consumer) else {
        return Err("e1000-pf or pf-e1000 is not a channel region");
    };
    consumer.set_spin_limit(SPIN_POLLS);
    // The kernel-IPC baseline (`ipc=kernel`): the kernel moves every message.
    if libsys::chan::kernel_ipc() {
        producer.set_gate(&libsys::chan::KERNEL_GATE);
        consumer.set_gate(&libsys::chan::KERNEL_GATE);
    }
    // On the heap at once: the path holds tens of KiB (its outbox, the transmit backlog), and
    // each move of it on the way to the driver's loop would be a copy on the 128 KiB stack.
    let path = Box::new(
        DataPath::new(pool, tx_view, producer, consumer)
            .map_err(|_| "rx-pool or tx-pool does not have 2 KiB buffers")?,
    );
    log!(
        "data path: rx-pool {} buffers, tx-pool {} buffers, channels {} and {}",
        rx_buffers.count,
        tx_buffers.count,
        chan::DRIVER_TO_PF,
        chan::PF_TO_DRIVER
    );
    Ok((nic, path))
}

/// Looks pf up when its pid is unknown or a notify failed; on success wakes it (a wake-up may
/// have gone to nobody meanwhile). Logs the first success and every change.
pub fn find_peer(path: &mut Path) {
    if !WAITER.needs_lookup() {
        return;
    }
    let old = WAITER.peer();
    if let Ok(pid) = libsys::lookup(PEER) {
        WAITER.set_peer(pid);
        if pid != old {
            log!("{PEER} is pid {pid}");
        }
        path.wake_pf();
    }
}

/// How often each kind of event was logged, to keep a misbehaving peer from flooding the log.
#[derive(Default)]
pub struct EventLog {
    refused: u64,
    broken: u64,
    lost: u64,
}

/// First few, then at powers of two.
fn worth_logging(n: &mut u64) -> bool {
    *n += 1;
    *n <= 4 || n.is_power_of_two()
}

impl EventLog {
    /// Logs `e` (rate-limited, except epoch changes, which are rare).
    pub fn log(&mut self, e: PathEvent) {
        match e {
            PathEvent::EpochChanged {
                channel,
                change,
                with_pf,
                rx_in_use,
            } => {
                let what = match channel {
                    Channel::ToPf => "it never read",
                    Channel::FromPf => "it sent that we never read",
                };
                log!(
                    "{} epoch {} -> {} ({PEER} restarted; {} messages {what}); {with_pf} rx-pool buffers it held taken back ({rx_in_use} in use now)",
                    channel.name(),
                    change.old_epoch,
                    change.new_epoch,
                    change.count
                );
            }
            PathEvent::ChannelBroken { channel, bad_magic } => {
                if worth_logging(&mut self.broken) {
                    log!(
                        "{} refused an operation: {} (seen {} times)",
                        channel.name(),
                        if bad_magic {
                            "its header was overwritten"
                        } else {
                            "the peer's index jumped"
                        },
                        self.broken
                    );
                }
            }
            PathEvent::Refused { tag, why } => {
                if worth_logging(&mut self.refused) {
                    match why {
                        Refusal::Malformed(r) => {
                            log!(
                                "refused message {tag:#x} from {PEER}: {r:?} ({} refused)",
                                self.refused
                            )
                        }
                        Refusal::NotLent { index } => log!(
                            "refused return of rx-pool buffer {index}: {PEER} does not hold it ({} refused)",
                            self.refused
                        ),
                        Refusal::NotForUs { tag } => log!(
                            "refused message {tag:#x} from {PEER}: only the driver sends it ({} refused)",
                            self.refused
                        ),
                    }
                }
            }
            PathEvent::TxDoneLost(d) => {
                if worth_logging(&mut self.lost) {
                    log!(
                        "tx-pool buffer {} lost: no room to send it home ({} lost)",
                        d.index,
                        self.lost
                    );
                }
            }
        }
    }
}
