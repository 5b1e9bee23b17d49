//! Bounds-checked reads and writes of big-endian fields: every access to a packet buffer goes
//! through these (or through fixed-size arrays), so no parser can index out of bounds.

use crate::BuildError;

/// `N` bytes at `at`, or `None` when the buffer is shorter.
pub(crate) fn bytes<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    buf.get(at..end)?.try_into().ok()
}

/// The byte at `at`.
pub(crate) fn u8_at(buf: &[u8], at: usize) -> Option<u8> {
    buf.get(at).copied()
}

/// The big-endian `u16` at `at`.
pub(crate) fn be16(buf: &[u8], at: usize) -> Option<u16> {
    bytes::<2>(buf, at).map(u16::from_be_bytes)
}

/// The big-endian `u32` at `at`.
pub(crate) fn be32(buf: &[u8], at: usize) -> Option<u32> {
    bytes::<4>(buf, at).map(u32::from_be_bytes)
}

/// The output buffer's first `len` bytes, or [`BuildError::BufferTooSmall`].
pub(crate) fn out(buf: &mut [u8], len: usize) -> Result<&mut [u8], BuildError> {
    buf.get_mut(..len)
        .ok_or(BuildError::BufferTooSmall { needed: len })
}

/// Copies `src` to `buf` at `at`; the error names the length the write needed.
pub(crate) fn put(buf: &mut [u8], at: usize, src: &[u8]) -> Result<(), BuildError> {
    let end = at
        .checked_add(src.len())
        .ok_or(BuildError::PayloadTooLarge)?;
    buf.get_mut(at..end)
        .ok_or(BuildError::BufferTooSmall { needed: end })?
        .copy_from_slice(src);
    Ok(())
}

/// Writes a big-endian `u16` at `at`.
pub(crate) fn put16(buf: &mut [u8], at: usize, v: u16) -> Result<(), BuildError> {
    put(buf, at, &v.to_be_bytes())
}
