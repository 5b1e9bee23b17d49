//! The kernel-IPC baseline (`ipc=kernel`, DESIGN.md §8): `CHAN_GATE` moves messages through a
//! channel region on a process's behalf, one trap per call, with a libchan end of the kernel's
//! own per process and region. The region, its protocol, its epochs and its checks are the
//! channel's; only who performs the operation changes, which is what the comparison measures.
//!
//! The kernel's ends live in [`crate::process::Process::gates`] and die with the instance: a
//! restarted process attaches anew after the kernel bumped the region's epoch, exactly as a
//! process attaching itself would. A producer end's wake-up notifies the processes at the other
//! end of the region (or the caller itself when it is both ends, as the single layout's
//! netstack is).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;

use axolotl_abi::Error;
use axolotl_abi::gate::{self, ChanFault};
use libchan::{Consumer, Message, Producer, RecvError, SendError, Waiter};

use crate::process::Process;

/// Wakes the other end of a region (the kernel's ends never sleep themselves).
pub struct KernelWaiter {
    region: usize,
    owner_slot: usize,
}

impl Waiter for KernelWaiter {
    fn wait(&self, _timeout_ns: Option<u64>) {
        // The kernel's ends never wait: the process sleeps in its own `wait`.
    }

    fn notify(&self) {
        crate::process::notify_region_users(self.region, self.owner_slot);
    }
}

/// Never dropped: an instance that dies leaves its ends as a crashed process leaves its own
/// (a consumer's drop would store its position, perhaps after a new instance attached).
enum Role {
    Producer(ManuallyDrop<Producer<'static, KernelWaiter>>),
    Consumer(ManuallyDrop<Consumer<'static, KernelWaiter>>),
}

/// One of the kernel's ends for a process (a process that is both ends of a region, as the
/// single layout's netstack, has two).
pub struct End {
    region: usize,
    producer: bool,
    role: Role,
}

/// The ends the kernel keeps for one process instance.
#[derive(Default)]
pub struct Ends {
    list: Vec<End>,
}

fn fault(kind: u32) -> ChanFault {
    ChanFault {
        kind,
        ..ChanFault::default()
    }
}

fn send_fault(e: SendError) -> ChanFault {
    match e {
        SendError::Full => fault(gate::FULL),
        SendError::EpochChanged(c) => ChanFault {
            kind: gate::EPOCH,
            old_epoch: c.old_epoch,
            new_epoch: c.new_epoch,
            first: c.first,
            count: c.count,
            ..ChanFault::default()
        },
        SendError::BadMagic { found } => ChanFault {
            found,
            ..fault(gate::BAD_MAGIC)
        },
        SendError::IndexJump { found } => ChanFault {
            found: found as u64,
            ..fault(gate::INDEX_JUMP)
        },
    }
}

fn recv_fault(e: RecvError) -> ChanFault {
    match e {
        RecvError::EpochChanged(c) => send_fault(SendError::EpochChanged(c)),
        RecvError::BadMagic { found } => send_fault(SendError::BadMagic { found }),
        RecvError::IndexJump { found } => send_fault(SendError::IndexJump { found }),
    }
}

/// Writes `f` for the caller and returns the fault bit.
fn report(at: u64, f: &ChanFault) -> Result<u64, Error> {
    crate::user::write_struct(at, f)?;
    Ok(gate::FAULT)
}

/// `CHAN_GATE(op | count << 8, region_addr, messages, fault)`.
pub fn syscall(me: &Arc<Process>, a0: u64, a1: u64, a2: u64, a3: u64) -> Result<u64, Error> {
    let op = a0 & 0xff;
    let count = ((a0 >> 8) as usize).min(gate::MAX_BATCH);
    if op > gate::DISARM {
        return Err(Error::Invalid);
    }
    let (region, ptr, len) = crate::process::gate_region(me, a1)?;
    let mut ends = me.gates.lock();
    let producer = op == gate::SEND;
    let at = match ends
        .list
        .iter()
        .position(|e| e.region == region && e.producer == producer)
    {
        Some(i) => i,
        None => {
            let waiter = KernelWaiter {
                region,
                owner_slot: me.slot,
            };
            // Safety: channel regions are allocated at boot and never freed; the kernel reaches
            // them through the physical-memory map for its whole life. This process's end of
            // the region is the kernel's from now on: the caller gave its own up by asking.
            let role = unsafe {
                if producer {
                    Producer::attach(ptr, len, waiter).map(|p| Role::Producer(ManuallyDrop::new(p)))
                } else {
                    Consumer::attach(ptr, len, waiter).map(|c| Role::Consumer(ManuallyDrop::new(c)))
                }
            }
            .map_err(|_| Error::Invalid)?;
            ends.list.push(End {
                region,
                producer,
                role,
            });
            ends.list.len() - 1
        }
    };
    match (&mut ends.list[at].role, op) {
        (Role::Producer(p), gate::SEND) => {
            let bytes = crate::user::read_bytes(a2, (count * 64) as u64)?;
            let mut msgs = [Message::default(); gate::MAX_BATCH];
            for (m, chunk) in msgs.iter_mut().zip(bytes.as_chunks::<64>().0) {
                let mut words = [0u64; 8];
                for (w, b) in words.iter_mut().zip(chunk.as_chunks::<8>().0) {
                    *w = u64::from_le_bytes(*b);
                }
                *m = Message::from_words(words);
            }
            match p.send_batch(&msgs[..count]) {
                // The first one's sequence number (after a restart the producer joins the
                // consumer's position on its first send, so it is read afterwards).
                Ok(n) => Ok(n as u64 | (p.next_seq().wrapping_sub(n as u32) as u64) << 16),
                Err(e) => report(a3, &send_fault(e)),
            }
        }
        (Role::Consumer(c), gate::RECV) => {
            let mut out = [Message::default(); gate::MAX_BATCH];
            match c.recv_batch(&mut out[..count]) {
                Ok(n) => {
                    let mut bytes = Vec::with_capacity(n * 64);
                    for m in &out[..n] {
                        for w in m.to_words() {
                            bytes.extend_from_slice(&w.to_le_bytes());
                        }
                    }
                    crate::user::write_bytes(a2, &bytes)?;
                    Ok(n as u64)
                }
                Err(e) => report(a3, &recv_fault(e)),
            }
        }
        (Role::Consumer(c), gate::ARM) => match c.arm() {
            Ok(ready) => Ok(ready as u64),
            Err(e) => report(a3, &recv_fault(e)),
        },
        (Role::Consumer(c), gate::DISARM) => {
            c.disarm();
            Ok(0)
        }
        // Cannot happen: the end was chosen by the operation.
        _ => Err(Error::Invalid),
    }
}
