//! What travels in a slot: a 64-byte [`Message`], usually carrying a [`PoolDescriptor`].

use crate::sync::SLOT_WORDS;

/// One 64-byte slot's worth of data, filled by the sender and copied out by the receiver.
///
/// The library gives no meaning to the fields: `tag` says what the message is, `len` is by
/// convention the number of meaningful payload bytes, `payload` holds the rest. A message read
/// from a ring came from the peer and is untrusted: validate every field before use (a
/// descriptor with [`crate::PoolView::check`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Application-defined kind of message.
    pub tag: u32,
    /// Application-defined; by convention the number of payload bytes in use (at most 56).
    pub len: u32,
    /// Payload words.
    pub payload: [u64; 7],
}

impl Message {
    /// Bytes available in `payload`.
    pub const PAYLOAD_BYTES: usize = 56;

    /// An empty message of kind `tag`.
    pub const fn new(tag: u32) -> Self {
        Self {
            tag,
            len: 0,
            payload: [0; 7],
        }
    }

    /// A message of kind `tag` carrying `desc` in `payload[0..2]` (`len` = 16).
    pub const fn with_descriptor(tag: u32, desc: PoolDescriptor) -> Self {
        let [a, b] = desc.to_words();
        Self {
            tag,
            len: PoolDescriptor::ENCODED_LEN as u32,
            payload: [a, b, 0, 0, 0, 0, 0],
        }
    }

    /// The descriptor in `payload[0..2]`, decoded but **not validated**: pass it to
    /// [`crate::PoolView::check`] or [`crate::BufferPool::free`] before touching the buffer.
    pub const fn descriptor(&self) -> PoolDescriptor {
        PoolDescriptor::from_words([self.payload[0], self.payload[1]])
    }

    /// A message of kind `tag` whose payload holds `bytes`, or `None` if more than 56 bytes.
    pub fn from_bytes(tag: u32, bytes: &[u8]) -> Option<Self> {
        if bytes.len() > Self::PAYLOAD_BYTES {
            return None;
        }
        let mut raw = [0u8; Self::PAYLOAD_BYTES];
        raw[..bytes.len()].copy_from_slice(bytes);
        let mut msg = Self::new(tag);
        msg.len = bytes.len() as u32;
        for (word, chunk) in msg.payload.iter_mut().zip(raw.as_chunks::<8>().0) {
            *word = u64::from_le_bytes(*chunk);
        }
        Some(msg)
    }

    /// Copies the payload bytes into `out` and returns how many are meaningful: `len`, clamped
    /// to 56 because `len` came from the peer.
    pub fn copy_bytes(&self, out: &mut [u8; Self::PAYLOAD_BYTES]) -> usize {
        for (chunk, word) in out.as_chunks_mut::<8>().0.iter_mut().zip(&self.payload) {
            *chunk = word.to_le_bytes();
        }
        (self.len as usize).min(Self::PAYLOAD_BYTES)
    }

    /// The message as the eight little-endian words stored in a slot.
    #[inline(always)]
    pub const fn to_words(&self) -> [u64; SLOT_WORDS] {
        let p = &self.payload;
        [
            (self.tag as u64) | ((self.len as u64) << 32),
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            p[5],
            p[6],
        ]
    }

    /// The message stored as `words` in a slot. Every bit pattern is a valid message.
    #[inline(always)]
    pub const fn from_words(w: [u64; SLOT_WORDS]) -> Self {
        Self {
            tag: w[0] as u32,
            len: (w[0] >> 32) as u32,
            payload: [w[1], w[2], w[3], w[4], w[5], w[6], w[7]],
        }
    }
}

/// Names bytes inside a buffer of a shared pool: `len` bytes at `offset` in buffer `index` of
/// pool `pool`. It is plain data: it becomes a usable buffer only through validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoolDescriptor {
    /// Which pool (as configured on both sides by the manifest).
    pub pool: u16,
    /// Buffer number inside the pool.
    pub index: u32,
    /// First byte of interest inside the buffer.
    pub offset: u32,
    /// Number of bytes of interest.
    pub len: u32,
}

impl PoolDescriptor {
    /// Bytes a descriptor takes in a message payload.
    pub const ENCODED_LEN: usize = 16;

    /// Encodes as two words: `pool | index << 32` and `offset | len << 32` (bits 16..32 of the
    /// first word are reserved and written as zero).
    pub const fn to_words(&self) -> [u64; 2] {
        [
            self.pool as u64 | ((self.index as u64) << 32),
            self.offset as u64 | ((self.len as u64) << 32),
        ]
    }

    /// Decodes two words; total (any bits give some descriptor, reserved bits are ignored).
    pub const fn from_words(w: [u64; 2]) -> Self {
        Self {
            pool: w[0] as u16,
            index: (w[0] >> 32) as u32,
            offset: w[1] as u32,
            len: (w[1] >> 32) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_travels_in_a_message() {
        let d = PoolDescriptor {
            pool: 3,
            index: 70_000,
            offset: 14,
            len: 1500,
        };
        let m = Message::with_descriptor(9, d);
        assert_eq!((m.tag, m.len), (9, 16));
        assert_eq!(Message::from_words(m.to_words()).descriptor(), d);
    }

    #[test]
    fn bytes_round_trip_and_len_is_clamped() {
        let m = Message::from_bytes(1, b"hello, axolotl").unwrap();
        let mut out = [0u8; Message::PAYLOAD_BYTES];
        assert_eq!(m.copy_bytes(&mut out), 14);
        assert_eq!(&out[..14], b"hello, axolotl");
        assert!(Message::from_bytes(1, &[0; 57]).is_none());
        let hostile = Message { len: u32::MAX, ..m };
        assert_eq!(hostile.copy_bytes(&mut out), Message::PAYLOAD_BYTES);
    }
}
