//! The kernel-IPC baseline (`--ipc kernel`, DESIGN.md §8): the same channel, every transfer a
//! trap.
//!
//! An end given a [`Gate`] ([`crate::Producer::set_gate`], [`crate::Consumer::set_gate`])
//! no longer touches the ring itself: each send, receive, arm and disarm asks the gate, which on
//! Axolotl is a system call whose kernel performs the very same operation on the region with
//! an end of its own (one per process and region). The region, its protocol, its epochs and
//! its validation are unchanged, so the two ends of one channel may each choose: what differs
//! is only who moves the messages — the process itself, or the kernel behind a trap.

use crate::error::{RecvError, SendError};
use crate::message::Message;

/// Moves messages through a channel region on an end's behalf. `region` is the address the
/// region is mapped at in the caller (the kernel knows it by that).
pub trait Gate {
    /// Publishes as many of `msgs` as fit; returns how many and the first one's sequence
    /// number. Errors as [`crate::Producer::send_batch`]'s.
    fn send(&self, region: usize, msgs: &[Message]) -> Result<(usize, u32), SendError>;
    /// Takes up to `out.len()` messages; returns how many. Errors as
    /// [`crate::Consumer::recv_batch`]'s.
    fn recv(&self, region: usize, out: &mut [Message]) -> Result<usize, RecvError>;
    /// [`crate::Consumer::arm`] by the gate's end.
    fn arm(&self, region: usize) -> Result<bool, RecvError>;
    /// [`crate::Consumer::disarm`] by the gate's end.
    fn disarm(&self, region: usize);
}
