//! Every way an operation can be refused, as enums with one documented variant per cause.

use core::fmt;

/// Why a memory range cannot be initialised or attached as a channel region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The pointer is null.
    Null,
    /// The pointer is not aligned to a page (4096 bytes).
    Misaligned,
    /// The range is shorter than the header plus `capacity` slots.
    TooSmall {
        /// Bytes the region needs.
        needed: usize,
        /// Bytes the caller provided.
        len: usize,
    },
    /// The capacity is zero, not a power of two, or above [`crate::layout::MAX_CAPACITY`].
    BadCapacity {
        /// The capacity asked for or found in the header.
        capacity: u32,
    },
    /// The magic half of the magic/version word is wrong: not a channel, or corrupted.
    BadMagic {
        /// The whole magic/version word found.
        found: u64,
    },
    /// The magic is right but the layout version is not the one this library speaks.
    BadVersion {
        /// The version found.
        found: u32,
    },
}

/// The epoch of a region changed under an endpoint: the peer restarted (someone called
/// [`crate::bump_epoch`]). The endpoint has moved to `new_epoch` and is usable again. Positions
/// (sequence numbers) carry on across epochs: the new epoch starts at the consumer's position.
///
/// The `count` sequence numbers `first, first + 1, ...` (wrapping `u32`) are the messages of
/// `old_epoch` that the peer never took:
/// - returned to a **producer**: published but not consumed (counted from the consumer's own
///   position, so the range is exact for a surviving consumer; after a consumer crash it may
///   also hold up to `min(capacity / 8, 32) - 1` messages the dead consumer took but had not
///   yet acknowledged; none for rings of fewer than 16 slots). The library keeps no copy; the
///   caller re-sends those it still needs, and they get the same sequence numbers again, since
///   the new epoch starts at `first`.
/// - returned to a **consumer**: published by the old producer and never received; they are
///   discarded with the old epoch (a surviving producer is told to re-send them).
///
/// A message the peer *took* but had not finished with when it died is not in the range: the
/// layer above recovers those (requests and replies travel on two channels; TCP retransmits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochChange {
    /// The epoch the endpoint was in.
    pub old_epoch: u32,
    /// The epoch it is in now.
    pub new_epoch: u32,
    /// First sequence number (of `old_epoch`) the peer did not take.
    pub first: u32,
    /// How many consecutive sequence numbers from `first` were in flight (at most the capacity).
    pub count: u32,
}

impl EpochChange {
    /// The in-flight sequence numbers, in order.
    pub fn sequence_numbers(&self) -> impl Iterator<Item = u32> + use<> {
        let first = self.first;
        (0..self.count).map(move |i| first.wrapping_add(i))
    }
}

/// Why [`crate::Producer::send`] and friends refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No free slot: the consumer has not caught up, or has not yet joined the current epoch.
    Full,
    /// The region's epoch changed; nothing was sent, the producer has moved to the new epoch.
    EpochChanged(EpochChange),
    /// The header's magic/version word no longer matches: the region was overwritten.
    BadMagic {
        /// The magic/version word found.
        found: u64,
    },
    /// The consumer index went backwards or past the producer's: corrupted shared memory.
    IndexJump {
        /// The consumer position found.
        found: u32,
    },
}

/// Why [`crate::Consumer::try_recv`] and friends refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The region's epoch changed; nothing was received, the consumer has moved to the new epoch.
    EpochChanged(EpochChange),
    /// The header's magic/version word no longer matches: the region was overwritten.
    BadMagic {
        /// The magic/version word found.
        found: u64,
    },
    /// The producer index went backwards or more than `capacity` ahead of the consumer:
    /// corrupted shared memory.
    IndexJump {
        /// The producer position found.
        found: u32,
    },
}

/// Why a descriptor was refused by a pool. Nothing refused is ever followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The descriptor names another pool.
    WrongPool {
        /// This pool's id.
        expected: u16,
        /// The id in the descriptor.
        found: u16,
    },
    /// The buffer index is not below the number of buffers.
    IndexOutOfRange {
        /// The index in the descriptor.
        index: u32,
        /// Number of buffers in the pool.
        count: u32,
    },
    /// `offset + len` reaches past the end of the buffer.
    RangeOutOfBounds {
        /// The offset in the descriptor.
        offset: u32,
        /// The length in the descriptor.
        len: u32,
        /// Size of every buffer of the pool.
        buffer_size: u32,
    },
    /// The buffer is not lent out, so it cannot come back: a double free or a forged descriptor.
    NotAllocated {
        /// The index in the descriptor.
        index: u32,
    },
}

/// Why a pool cannot be set up over a memory range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolSetupError {
    /// The base pointer is null.
    Null,
    /// The buffer size is zero.
    ZeroBufferSize,
    /// The range does not hold a single buffer.
    Empty,
    /// More buffers than a [`crate::BufferPool`] can track ([`crate::pool::MAX_POOL_BUFFERS`]),
    /// or more than `u32::MAX`.
    TooManyBuffers {
        /// Number of buffers the range would hold.
        count: usize,
    },
}

macro_rules! display_via_debug {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
        impl core::error::Error for $t {}
    )*};
}
display_via_debug!(RegionError, SendError, RecvError, PoolError, PoolSetupError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_sequence_numbers_wrap() {
        let c = EpochChange {
            old_epoch: 1,
            new_epoch: 2,
            first: u32::MAX - 1,
            count: 3,
        };
        let mut seqs = c.sequence_numbers();
        assert_eq!(seqs.next(), Some(u32::MAX - 1));
        assert_eq!(seqs.next(), Some(u32::MAX));
        assert_eq!(seqs.next(), Some(0));
        assert_eq!(seqs.next(), None);
    }
}
