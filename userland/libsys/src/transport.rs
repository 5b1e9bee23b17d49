//! How a server talks to its neighbour: one [`Transport`] trait, two implementations chosen at
//! boot (`cargo xtask run --ipc chan|kernel`, read back with [`crate::sysconf`]):
//! - [`ChanTransport`]: a pair of shared-memory channels (libchan), no trap on the fast path;
//! - [`KernelTransport`]: the kernel's synchronous IPC, one trap per message — the baseline.
//!
//! Both carry the same 64-byte [`ChanMessage`], so a server's code is identical either way.

use crate::chan::{ChanMessage, Consumer, Producer, SysWaiter};
use crate::{Error, Result};

/// Why a transport operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// No room now (channels only): try again later.
    Full,
    /// The peer restarted; in-flight messages may be lost and must be re-sent by the layer above.
    PeerRestarted,
    /// Shared memory or the kernel refused the operation (corruption, a dead peer, a denial).
    Refused,
}

/// One duplex link to one peer.
pub trait Transport {
    /// Sends one message (channels: without blocking; kernel IPC: until the peer took it).
    fn send(&mut self, msg: &ChanMessage) -> core::result::Result<(), TransportError>;
    /// Takes one message if there is one, without blocking.
    fn try_recv(&mut self) -> core::result::Result<Option<ChanMessage>, TransportError>;
    /// Takes one message, waiting up to `timeout_ns` (None = forever).
    fn recv_wait(
        &mut self,
        timeout_ns: Option<u64>,
    ) -> core::result::Result<Option<ChanMessage>, TransportError>;
    /// A short name for logs: `chan` or `kernel`.
    fn kind(&self) -> &'static str;
}

/// A pair of channels: `tx` to the peer, `rx` from it.
pub struct ChanTransport {
    tx: Producer<'static, SysWaiter>,
    rx: Consumer<'static, SysWaiter>,
}

impl ChanTransport {
    /// Attaches to the channel regions `tx_region` (we produce) and `rx_region` (we consume),
    /// whose other end is process `peer`.
    pub fn attach(tx_region: &str, rx_region: &str, peer: u32) -> Result<Self> {
        Ok(Self {
            tx: crate::chan::producer(tx_region, SysWaiter::new(peer))?,
            rx: crate::chan::consumer(rx_region, SysWaiter::new(peer))?,
        })
    }

    /// The consumer's spin limit before it sleeps (see libchan).
    pub fn set_spin_limit(&mut self, polls: u32) {
        self.rx.set_spin_limit(polls);
    }
}

impl Transport for ChanTransport {
    fn send(&mut self, msg: &ChanMessage) -> core::result::Result<(), TransportError> {
        match self.tx.send(msg) {
            Ok(_) => Ok(()),
            Err(libchan::SendError::Full) => Err(TransportError::Full),
            Err(libchan::SendError::EpochChanged(_)) => Err(TransportError::PeerRestarted),
            Err(_) => Err(TransportError::Refused),
        }
    }

    fn try_recv(&mut self) -> core::result::Result<Option<ChanMessage>, TransportError> {
        self.rx.try_recv().map_err(recv_error)
    }

    fn recv_wait(
        &mut self,
        timeout_ns: Option<u64>,
    ) -> core::result::Result<Option<ChanMessage>, TransportError> {
        self.rx.recv_wait(timeout_ns).map_err(recv_error)
    }

    fn kind(&self) -> &'static str {
        "chan"
    }
}

fn recv_error(e: libchan::RecvError) -> TransportError {
    match e {
        libchan::RecvError::EpochChanged(_) => TransportError::PeerRestarted,
        _ => TransportError::Refused,
    }
}

/// Kernel IPC with one peer. Messages from other senders are dropped and counted.
pub struct KernelTransport {
    peer: u32,
    /// Messages from processes other than the peer, dropped.
    pub strangers: u64,
}

impl KernelTransport {
    /// Talks to process `peer`.
    pub fn new(peer: u32) -> Self {
        Self { peer, strangers: 0 }
    }

    fn recv(
        &mut self,
        timeout_ns: Option<u64>,
    ) -> core::result::Result<Option<ChanMessage>, TransportError> {
        let mut raw = [0u8; 64];
        match crate::ipc_recv(&mut raw, timeout_ns) {
            Ok(from) if from == self.peer => Ok(Some(decode(&raw))),
            Ok(_) => {
                self.strangers += 1;
                Ok(None)
            }
            Err(Error::TimedOut) => Ok(None),
            Err(Error::Gone) => Err(TransportError::PeerRestarted),
            Err(_) => Err(TransportError::Refused),
        }
    }
}

impl Transport for KernelTransport {
    fn send(&mut self, msg: &ChanMessage) -> core::result::Result<(), TransportError> {
        match crate::ipc_send(self.peer, &encode(msg)) {
            Ok(()) => Ok(()),
            Err(Error::Gone | Error::NotFound) => Err(TransportError::PeerRestarted),
            Err(_) => Err(TransportError::Refused),
        }
    }

    fn try_recv(&mut self) -> core::result::Result<Option<ChanMessage>, TransportError> {
        // The kernel rounds a zero timeout up to one tick at most.
        self.recv(Some(0))
    }

    fn recv_wait(
        &mut self,
        timeout_ns: Option<u64>,
    ) -> core::result::Result<Option<ChanMessage>, TransportError> {
        self.recv(timeout_ns)
    }

    fn kind(&self) -> &'static str {
        "kernel"
    }
}

/// A channel message as the 64 bytes of a kernel-IPC message.
pub fn encode(msg: &ChanMessage) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, w) in msg.to_words().iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The inverse of [`encode`].
pub fn decode(raw: &[u8; 64]) -> ChanMessage {
    let mut words = [0u64; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    ChanMessage::from_words(words)
}

/// True when this boot asked for kernel IPC between servers (`--ipc kernel`).
pub fn kernel_ipc_selected() -> bool {
    crate::sysconf() & crate::abi::sysconf::IPC_KERNEL != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_kernel_encoding() {
        let mut m = ChanMessage::new(0xABCD);
        m.len = 56;
        for (i, w) in m.payload.iter_mut().enumerate() {
            *w = 0x0102_0304_0506_0708u64.rotate_left(i as u32 * 7);
        }
        assert_eq!(decode(&encode(&m)), m);
        assert_eq!(decode(&[0; 64]), ChanMessage::default());
    }
}
