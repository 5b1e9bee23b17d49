//! `libchan`: Axolotl's shared-memory, lock-free channels and buffer pools — the fast path
//! between servers, with no kernel on it (DESIGN.md §5). `no_std`, no allocation; it builds for
//! `x86_64-unknown-none` and is tested on the host.
//!
//! # Model
//! One channel is one direction: a single-producer single-consumer ring of 64-byte slots in a
//! page-aligned region that the kernel maps into exactly two processes. Requests and replies are
//! two channels. The region holds only atomics, positions and an epoch, never pointers; its
//! layout is in [`layout`] and asserted at compile time. Payloads live in buffer pools
//! ([`PoolView`], [`BufferPool`]) and travel as [`PoolDescriptor`]s inside a [`Message`].
//!
//! ```text
//! creator:   init(ptr, len, capacity)
//! producer:  Producer::attach(ptr, len, waiter) -> send / send_batch
//! consumer:  Consumer::attach(ptr, len, waiter) -> try_recv / recv_batch / recv_wait
//! restart:   bump_epoch(ptr, len) by (or for) the restarted end, then attach; the survivor
//!            gets EpochChanged on its next operation.
//! ```
//!
//! # Example
//! On the target the kernel maps the region; here the heap stands in for it.
//! ```
//! use libchan::{Consumer, Message, Polling, Producer};
//! use std::alloc::{Layout, alloc_zeroed, dealloc};
//!
//! let len = libchan::region_size(64).unwrap();
//! let layout = Layout::from_size_align(len, libchan::layout::PAGE_SIZE).unwrap();
//! // Safety (for the example): a fresh, page-aligned allocation of `len` bytes, freed only
//! // after both ends are dropped.
//! unsafe {
//!     let ptr = alloc_zeroed(layout);
//!     libchan::init(ptr, len, 64).unwrap();
//!     let mut tx = Producer::attach(ptr, len, Polling).unwrap();
//!     let mut rx = Consumer::attach(ptr, len, Polling).unwrap();
//!     let seq = tx.send(&Message::from_bytes(7, b"ping").unwrap()).unwrap();
//!     assert_eq!(seq, 0);
//!     let msg = rx.try_recv().unwrap().unwrap();
//!     assert_eq!((msg.tag, msg.len), (7, 4));
//!     assert_eq!(rx.try_recv().unwrap(), None);
//!     drop((tx, rx));
//!     dealloc(ptr, layout);
//! }
//! ```
//!
//! # Protocol
//! - Positions are `u32` and wrap; the slot of position `p` is `p & (capacity - 1)`. Each index
//!   word is `epoch << 32 | position`, written only by its owner with a Release store, read by
//!   the peer with an Acquire load. The producer may write slot `p` once the consumer index shows
//!   `p - capacity` consumed; the consumer may read slot `p` once the producer index passed it.
//! - Each end caches the peer's index and re-reads it only when the ring looks full (producer)
//!   or empty (consumer), so the hot path touches the peer's cache line rarely; `send_batch` and
//!   `recv_batch` publish one index store for many messages.
//! - Sleep and wake: the consumer polls up to a spin limit, then sets `sleeping`, issues a SeqCst
//!   fence, re-checks the ring, and only then calls [`Waiter::wait`]. The producer, after every
//!   publish, issues a SeqCst fence and calls [`Waiter::notify`] only if `sleeping` is set
//!   (clearing it). Under load no one sleeps, so there are no syscalls. Both ends count their
//!   waits and notifies in [`Counters`].
//!
//! # Validation
//! Everything read from shared memory is untrusted. On every operation an end checks the
//! magic/version word and the epoch; an index that jumps (the producer more than `capacity`
//! ahead, or either index going backwards) is refused with `IndexJump`. Pool descriptors are
//! checked for pool id, buffer index and `offset + len` before any byte is touched, and the
//! owner refuses buffers that are not lent out (double free). Every refusal is a typed error
//! *and* a counter; nothing is followed, nothing panics. Slots are copied out with atomic loads
//! and then handed over as plain data: a peer scribbling on a slot yields a garbage message, not
//! undefined behaviour.
//!
//! # Epochs and what was in flight
//! When one end restarts, its replacement (or the reincarnation server) calls [`bump_epoch`]
//! and then attaches. A surviving consumer asleep in `wait` is woken by the new producer's
//! first `send` attempt (or at once by [`Producer::notify_peer`]). The consumer leads every
//! epoch change: on attach, or on its next operation as a survivor, it re-tags its own index
//! with the new epoch at its current position. The producer follows: it keeps sending nothing
//! (`Full`) until it sees the consumer index carry the new epoch, then continues from the
//! consumer's position. Each side's index therefore
//! stays intact until its own end moves on, and each survivor gets an exact [`EpochChange`]:
//! - a surviving producer learns which sequence numbers the consumer never took (`first`,
//!   `count`). The producer keeps no copies: [`Producer::send`] returned each message's sequence
//!   number, and the caller re-sends those it still needs; they get the same numbers again.
//!   Delivery is at-least-once: after a consumer crash up to `min(capacity / 8, 32) - 1`
//!   messages the dead consumer had taken but not yet acknowledged (the consumer index is
//!   stored lazily) are reported too;
//! - a surviving consumer learns which messages the dead producer published but it never read;
//!   they are discarded.
//!
//! A message the dead peer took but never finished is for the layer above to recover. Neither
//! end touches a slot of the new epoch before the peer's index carries it, so an old and a new
//! instance never share a slot.
#![no_std]

pub mod layout;

mod consumer;
mod counters;
mod error;
mod gate;
mod message;
pub mod pool;
mod producer;
mod region;
mod sync;
mod waiter;

pub use consumer::{Consumer, DEFAULT_SPIN_LIMIT};
pub use counters::Counters;
pub use error::{EpochChange, PoolError, PoolSetupError, RecvError, RegionError, SendError};
pub use gate::Gate;
pub use layout::region_size;
pub use message::{Message, PoolDescriptor};
pub use pool::{BufferPool, BufferRef, PoolView};
pub use producer::Producer;
pub use region::{bump_epoch, init};
pub use waiter::{Polling, Waiter};
