//! Per-endpoint counters: traffic, syscalls, and every refusal, so `stat` can show them.

/// Counters kept privately by one endpoint ([`crate::Producer`], [`crate::Consumer`],
/// [`crate::PoolView`], [`crate::BufferPool`]). Each refusal an endpoint reports as an error is
/// also counted here, exactly once. Fields an endpoint never touches stay at zero; add counters of
/// several endpoints with [`Counters::add`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages published.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Sends refused because the ring was full.
    pub full: u64,
    /// Calls to [`crate::Waiter::wait`] (one syscall each on the target).
    pub waits: u64,
    /// Calls to [`crate::Waiter::notify`] (one syscall each on the target).
    pub notifies: u64,
    /// Epoch changes seen (and recovered from).
    pub epoch_changes: u64,
    /// Times the peer's index carried another epoch while ours was current (peer still resyncing,
    /// or garbage): treated as "nothing to do yet".
    pub stale_peer: u64,
    /// Operations refused because the magic/version word was wrong.
    pub bad_magic: u64,
    /// Operations refused because the peer's index jumped.
    pub index_jumps: u64,
    /// Descriptors refused for naming another pool.
    pub wrong_pool: u64,
    /// Descriptors refused for a buffer index out of range.
    pub bad_index: u64,
    /// Descriptors refused for `offset + len` past the buffer.
    pub bad_range: u64,
    /// Descriptors refused because the buffer was not lent out (double free).
    pub double_free: u64,
}

impl Counters {
    /// Syscalls made: waits plus notifies.
    pub const fn syscalls(&self) -> u64 {
        self.waits + self.notifies
    }

    /// Everything refused as corrupt or hostile (not `full`, not `stale_peer`, not epoch
    /// changes, which are normal events).
    pub const fn rejected(&self) -> u64 {
        self.bad_magic
            + self.index_jumps
            + self.wrong_pool
            + self.bad_index
            + self.bad_range
            + self.double_free
    }

    /// Adds `other` field by field (for reporting several endpoints as one).
    pub fn add(&mut self, other: &Counters) {
        self.sent += other.sent;
        self.received += other.received;
        self.full += other.full;
        self.waits += other.waits;
        self.notifies += other.notifies;
        self.epoch_changes += other.epoch_changes;
        self.stale_peer += other.stale_peer;
        self.bad_magic += other.bad_magic;
        self.index_jumps += other.index_jumps;
        self.wrong_pool += other.wrong_pool;
        self.bad_index += other.bad_index;
        self.bad_range += other.bad_range;
        self.double_free += other.double_free;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals() {
        let mut a = Counters {
            waits: 2,
            notifies: 3,
            bad_magic: 1,
            full: 9,
            ..Counters::default()
        };
        let b = Counters {
            double_free: 4,
            index_jumps: 1,
            ..Counters::default()
        };
        assert_eq!(a.syscalls(), 5);
        a.add(&b);
        assert_eq!(a.rejected(), 6);
        assert_eq!(a.full, 9);
    }
}
