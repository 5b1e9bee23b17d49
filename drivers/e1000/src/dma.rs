//! DMA memory: a physically contiguous region seen at a virtual address by us and at a physical
//! address by the device, and how the driver divides it into descriptor rings and packet
//! buffers.

use core::ptr::NonNull;

/// Why a piece of DMA memory could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// The piece does not fit in the region.
    OutOfRange,
    /// The piece is not aligned as the device needs (physical) or as Rust needs (virtual).
    Misaligned,
    /// The region is too small for the rings and buffers asked for.
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes there are.
        have: usize,
    },
}

/// A piece of DMA memory: `len` bytes at virtual `virt` and physical `phys`.
///
/// It is a handle, not a borrow: copies of it name the same memory. The rings that own the
/// pieces make sure each byte is used for one purpose.
#[derive(Debug, Clone, Copy)]
pub struct DmaSlice {
    virt: NonNull<u8>,
    phys: u64,
    len: usize,
}

impl DmaSlice {
    /// The memory at `virt` (virtual) and `phys` (physical), `len` bytes long.
    ///
    /// # Safety
    /// `virt..virt + len` must be readable and writable for as long as this slice or any piece
    /// of it is used, must not be accessed through Rust references other than those this crate
    /// hands out, and must be what the device sees at `phys..phys + len`.
    pub unsafe fn new(virt: NonNull<u8>, phys: u64, len: usize) -> Result<Self, DmaError> {
        if phys.checked_add(len as u64).is_none()
            || (virt.as_ptr() as usize).checked_add(len).is_none()
        {
            return Err(DmaError::OutOfRange);
        }
        Ok(Self { virt, phys, len })
    }

    /// The piece `offset..offset + len`.
    pub fn piece(&self, offset: usize, len: usize) -> Result<Self, DmaError> {
        let end = offset.checked_add(len).ok_or(DmaError::OutOfRange)?;
        if end > self.len {
            return Err(DmaError::OutOfRange);
        }
        Ok(Self {
            // Safety: `offset <= self.len`, so the pointer stays inside (or one past) the
            // region, which `new` checked does not wrap.
            virt: unsafe { NonNull::new_unchecked(self.virt.as_ptr().add(offset)) },
            phys: self.phys + offset as u64,
            len,
        })
    }

    /// Virtual address of the first byte.
    pub fn virt(&self) -> *mut u8 {
        self.virt.as_ptr()
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the piece has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks the physical address is a multiple of `phys_align` and the virtual one of
    /// `virt_align`.
    pub fn check_align(&self, phys_align: u64, virt_align: usize) -> Result<(), DmaError> {
        if !self.phys.is_multiple_of(phys_align)
            || !(self.virt.as_ptr() as usize).is_multiple_of(virt_align)
        {
            return Err(DmaError::Misaligned);
        }
        Ok(())
    }
}

/// How the driver divides its DMA region: RX descriptors, TX descriptors, RX buffers, TX
/// buffers, in that order, each piece starting on a 4 KiB boundary.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The RX descriptor ring.
    pub rx_desc: DmaSlice,
    /// The TX descriptor ring.
    pub tx_desc: DmaSlice,
    /// One buffer per RX descriptor.
    pub rx_bufs: DmaSlice,
    /// One buffer per TX descriptor.
    pub tx_bufs: DmaSlice,
}

const PAGE: usize = 4096;

fn page_round(n: usize) -> Option<usize> {
    n.checked_add(PAGE - 1).map(|n| n & !(PAGE - 1))
}

impl Layout {
    /// Bytes of DMA memory `rx` + `tx` descriptors with `buf_size`-byte buffers need.
    pub fn bytes_needed(rx: usize, tx: usize, buf_size: usize) -> Option<usize> {
        let d = crate::desc::DESC_LEN;
        let mut total = page_round(rx.checked_mul(d)?)?;
        total = total.checked_add(page_round(tx.checked_mul(d)?)?)?;
        total = total.checked_add(page_round(rx.checked_mul(buf_size)?)?)?;
        total.checked_add(page_round(tx.checked_mul(buf_size)?)?)
    }

    /// Divides `region` for `rx` and `tx` descriptors with `buf_size`-byte buffers.
    pub fn new(region: DmaSlice, rx: usize, tx: usize, buf_size: usize) -> Result<Self, DmaError> {
        let needed = Self::bytes_needed(rx, tx, buf_size).ok_or(DmaError::OutOfRange)?;
        if needed > region.len() {
            return Err(DmaError::TooSmall {
                needed,
                have: region.len(),
            });
        }
        let d = crate::desc::DESC_LEN;
        let mut at = 0;
        let mut take = |len: usize| -> Result<DmaSlice, DmaError> {
            let p = region.piece(at, len)?;
            at += page_round(len).ok_or(DmaError::OutOfRange)?;
            Ok(p)
        };
        Ok(Self {
            rx_desc: take(rx * d)?,
            tx_desc: take(tx * d)?,
            rx_bufs: take(rx * buf_size)?,
            tx_bufs: take(tx * buf_size)?,
        })
    }
}

/// How the driver divides its DMA region when the packet buffers live in shared pools
/// (docs/netpath.md): only the RX and TX descriptor rings, each starting on a 4 KiB boundary.
#[derive(Debug, Clone, Copy)]
pub struct RingLayout {
    /// The RX descriptor ring.
    pub rx_desc: DmaSlice,
    /// The TX descriptor ring.
    pub tx_desc: DmaSlice,
}

impl RingLayout {
    /// Bytes of DMA memory `rx` + `tx` descriptors need.
    pub fn bytes_needed(rx: usize, tx: usize) -> Option<usize> {
        let d = crate::desc::DESC_LEN;
        page_round(rx.checked_mul(d)?)?.checked_add(page_round(tx.checked_mul(d)?)?)
    }

    /// Divides `region` for `rx` and `tx` descriptors.
    pub fn new(region: DmaSlice, rx: usize, tx: usize) -> Result<Self, DmaError> {
        let needed = Self::bytes_needed(rx, tx).ok_or(DmaError::OutOfRange)?;
        if needed > region.len() {
            return Err(DmaError::TooSmall {
                needed,
                have: region.len(),
            });
        }
        let d = crate::desc::DESC_LEN;
        let rx_bytes = rx * d;
        let tx_at = page_round(rx_bytes).ok_or(DmaError::OutOfRange)?;
        Ok(Self {
            rx_desc: region.piece(0, rx_bytes)?,
            tx_desc: region.piece(tx_at, tx * d)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(mem: &mut [u64], phys: u64) -> DmaSlice {
        let len = mem.len() * 8;
        // Safety: `mem` outlives the slice in each test and is only used through it.
        unsafe { DmaSlice::new(NonNull::new(mem.as_mut_ptr().cast()).unwrap(), phys, len).unwrap() }
    }

    #[test]
    fn pieces_are_checked() {
        let mut mem = vec![0u64; 1024];
        let r = region(&mut mem, 0x10_0000);
        let p = r.piece(4096, 8).unwrap();
        assert_eq!(p.phys(), 0x10_1000);
        assert_eq!(p.len(), 8);
        assert_eq!(p.virt() as usize, r.virt() as usize + 4096);
        assert_eq!(
            r.piece(4096, 1).unwrap().piece(1, 1).unwrap_err(),
            DmaError::OutOfRange
        );
        assert_eq!(r.piece(4096, 4097).unwrap_err(), DmaError::OutOfRange);
        assert_eq!(r.piece(usize::MAX, 2).unwrap_err(), DmaError::OutOfRange);
        assert!(r.piece(4096, 0).unwrap().is_empty());
        assert_eq!(
            r.piece(8, 8).unwrap().check_align(16, 8),
            Err(DmaError::Misaligned)
        );
        assert_eq!(r.piece(16, 8).unwrap().check_align(16, 8), Ok(()));
    }

    #[test]
    fn a_region_that_wraps_is_refused() {
        let mut x = 0u64;
        // Safety: never dereferenced.
        let r = unsafe { DmaSlice::new(NonNull::from(&mut x).cast(), u64::MAX - 4, 8) };
        assert_eq!(r.unwrap_err(), DmaError::OutOfRange);
    }

    #[test]
    fn layout_divides_on_page_boundaries() {
        assert_eq!(
            Layout::bytes_needed(256, 256, 2048),
            Some(2 * 4096 + 2 * 512 * 1024)
        );
        assert_eq!(Layout::bytes_needed(usize::MAX, 1, 1), None);
        let mut mem = vec![0u64; (2 * 4096 + 2 * 32 * 2048) / 8];
        let r = region(&mut mem, 0x20_0000);
        let l = Layout::new(r, 32, 32, 2048).unwrap();
        assert_eq!(l.rx_desc.phys(), 0x20_0000);
        assert_eq!(l.rx_desc.len(), 32 * 16);
        assert_eq!(l.tx_desc.phys(), 0x20_1000);
        assert_eq!(l.rx_bufs.phys(), 0x20_2000);
        assert_eq!(l.tx_bufs.phys(), 0x20_2000 + 32 * 2048);
        assert_eq!(
            Layout::new(r, 64, 32, 2048).unwrap_err(),
            DmaError::TooSmall {
                needed: 2 * 4096 + 96 * 2048,
                have: r.len()
            }
        );
    }

    #[test]
    fn ring_layout_takes_two_pages() {
        assert_eq!(RingLayout::bytes_needed(256, 256), Some(2 * 4096));
        assert_eq!(RingLayout::bytes_needed(usize::MAX, 1), None);
        let mut mem = vec![0u64; 2 * 4096 / 8];
        let r = region(&mut mem, 0x30_0000);
        let l = RingLayout::new(r, 256, 256).unwrap();
        assert_eq!((l.rx_desc.phys(), l.rx_desc.len()), (0x30_0000, 4096));
        assert_eq!((l.tx_desc.phys(), l.tx_desc.len()), (0x30_1000, 4096));
        assert_eq!(
            RingLayout::new(r, 512, 256).unwrap_err(),
            DmaError::TooSmall {
                needed: 3 * 4096,
                have: 2 * 4096
            }
        );
    }
}
