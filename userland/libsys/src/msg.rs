//! Kernel IPC messages: 64 bytes, read and written as little-endian `u64` words.

use axolotl_abi::IPC_MSG_LEN;

/// One kernel IPC message.
pub type Message = [u8; IPC_MSG_LEN];

/// Number of `u64` words in a [`Message`].
pub const WORDS: usize = IPC_MSG_LEN / 8;

/// Word `index` (little-endian, bytes `8*index .. 8*index+8`).
///
/// # Panics
/// When `index >= WORDS`.
pub fn word(msg: &Message, index: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[index * 8..index * 8 + 8]);
    u64::from_le_bytes(w)
}

/// Sets word `index` to `value` (little-endian).
///
/// # Panics
/// When `index >= WORDS`.
pub fn set_word(msg: &mut Message, index: usize, value: u64) {
    msg[index * 8..index * 8 + 8].copy_from_slice(&value.to_le_bytes());
}

/// A message whose first words are `words` and the rest zero.
///
/// # Panics
/// When `words` has more than [`WORDS`] entries.
pub fn from_words(words: &[u64]) -> Message {
    let mut m = [0u8; IPC_MSG_LEN];
    for (i, &w) in words.iter().enumerate() {
        set_word(&mut m, i, w);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_little_endian() {
        let mut m = [0u8; IPC_MSG_LEN];
        set_word(&mut m, 0, 0x0102_0304_0506_0708);
        set_word(&mut m, 7, u64::MAX);
        assert_eq!(&m[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(word(&m, 0), 0x0102_0304_0506_0708);
        assert_eq!(word(&m, 7), u64::MAX);
        assert_eq!(word(&from_words(&[1, 2, 3]), 2), 3);
        assert_eq!(word(&from_words(&[1, 2, 3]), 3), 0);
    }
}
