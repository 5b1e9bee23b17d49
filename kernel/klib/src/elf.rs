//! Reading the static ELF64 executables of user programs. Only what the loader needs: the entry
//! point and the `PT_LOAD` segments, each checked to lie inside the file and inside the user half
//! of the address space, so a damaged binary is refused rather than loaded wrongly.

/// Why a binary was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than its headers say.
    Truncated,
    /// Not an ELF file.
    BadMagic,
    /// Not 64-bit little-endian x86_64.
    WrongMachine,
    /// Not a static executable (`ET_EXEC`); position-independent binaries are not loaded.
    NotExecutable(u16),
    /// A segment's file bytes lie outside the file.
    SegmentOutOfFile(usize),
    /// A segment lies outside `[min, max)` of user space, or its size is inconsistent.
    SegmentOutOfRange(usize),
    /// Two segments share a page.
    SegmentsOverlap(usize),
    /// The entry point is not inside an executable segment.
    BadEntry(u64),
    /// No loadable segment at all.
    NoSegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "truncated ELF file"),
            Self::BadMagic => write!(f, "not an ELF file"),
            Self::WrongMachine => write!(f, "not a 64-bit little-endian x86_64 ELF"),
            Self::NotExecutable(t) => write!(f, "ELF type {t} is not a static executable"),
            Self::SegmentOutOfFile(i) => write!(f, "segment {i} lies outside the file"),
            Self::SegmentOutOfRange(i) => write!(f, "segment {i} lies outside user space"),
            Self::SegmentsOverlap(i) => write!(f, "segment {i} overlaps another"),
            Self::BadEntry(e) => write!(f, "entry point {e:#x} is not in an executable segment"),
            Self::NoSegments => write!(f, "no loadable segment"),
        }
    }
}

/// A loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Size in memory (the tail past `data.len()` is zero).
    pub mem_size: u64,
    /// Bytes from the file.
    pub data: &'a [u8],
    pub writable: bool,
    pub executable: bool,
}

/// A validated executable.
pub struct Elf<'a> {
    bytes: &'a [u8],
    phoff: usize,
    phnum: usize,
    pub entry: u64,
}

const PT_LOAD: u32 = 1;
const PAGE: u64 = 4096;

fn rd<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    rd::<2>(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    rd::<4>(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    rd::<8>(b, at).map(u64::from_le_bytes)
}

impl<'a> Elf<'a> {
    /// Validates `bytes` as an executable whose segments all lie in `[min, max)`.
    pub fn parse(bytes: &'a [u8], min: u64, max: u64) -> Result<Self, ElfError> {
        let head = bytes.get(..64).ok_or(ElfError::Truncated)?;
        if head[..4] != *b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        if head[4] != 2 || head[5] != 1 || u16_at(head, 18) != Some(0x3E) {
            return Err(ElfError::WrongMachine);
        }
        let ty = u16_at(head, 16).ok_or(ElfError::Truncated)?;
        if ty != 2 {
            return Err(ElfError::NotExecutable(ty));
        }
        let entry = u64_at(head, 24).ok_or(ElfError::Truncated)?;
        let phoff = u64_at(head, 32).ok_or(ElfError::Truncated)?;
        let phentsize = u16_at(head, 54).ok_or(ElfError::Truncated)? as usize;
        let phnum = u16_at(head, 56).ok_or(ElfError::Truncated)? as usize;
        if phentsize != 56 {
            return Err(ElfError::Truncated);
        }
        let phoff = usize::try_from(phoff).map_err(|_| ElfError::Truncated)?;
        let end = phnum
            .checked_mul(56)
            .and_then(|n| n.checked_add(phoff))
            .ok_or(ElfError::Truncated)?;
        if end > bytes.len() {
            return Err(ElfError::Truncated);
        }
        let elf = Elf {
            bytes,
            phoff,
            phnum,
            entry,
        };
        let mut count = 0;
        let mut entry_ok = false;
        for (i, s) in elf.raw_segments() {
            let s = s?;
            count += 1;
            let seg_end = s
                .vaddr
                .checked_add(s.mem_size)
                .ok_or(ElfError::SegmentOutOfRange(i))?;
            if s.vaddr < min || seg_end > max || (s.data.len() as u64) > s.mem_size {
                return Err(ElfError::SegmentOutOfRange(i));
            }
            for (j, t) in elf.raw_segments().take_while(|(j, _)| *j < i) {
                let t = t?;
                let (a0, a1) = (s.vaddr / PAGE, seg_end.div_ceil(PAGE));
                let (b0, b1) = (t.vaddr / PAGE, (t.vaddr + t.mem_size).div_ceil(PAGE));
                if a0 < b1 && b0 < a1 {
                    let _ = j;
                    return Err(ElfError::SegmentsOverlap(i));
                }
            }
            if s.executable && entry >= s.vaddr && entry < seg_end {
                entry_ok = true;
            }
        }
        if count == 0 {
            return Err(ElfError::NoSegments);
        }
        if !entry_ok {
            return Err(ElfError::BadEntry(entry));
        }
        Ok(elf)
    }

    fn raw_segments(&self) -> impl Iterator<Item = (usize, Result<Segment<'a>, ElfError>)> + '_ {
        (0..self.phnum).filter_map(move |i| {
            let at = self.phoff + i * 56;
            let b = self.bytes;
            if u32_at(b, at)? != PT_LOAD {
                return None;
            }
            let flags = u32_at(b, at + 4)?;
            let offset = u64_at(b, at + 8)?;
            let vaddr = u64_at(b, at + 16)?;
            let filesz = u64_at(b, at + 32)?;
            let memsz = u64_at(b, at + 40)?;
            if memsz == 0 {
                return None;
            }
            let data = offset
                .checked_add(filesz)
                .filter(|&e| e <= b.len() as u64)
                .map(|e| &b[offset as usize..e as usize])
                .ok_or(ElfError::SegmentOutOfFile(i));
            Some((
                i,
                data.map(|data| Segment {
                    vaddr,
                    mem_size: memsz,
                    data,
                    writable: flags & 2 != 0,
                    executable: flags & 1 != 0,
                }),
            ))
        })
    }

    /// The loadable segments (all validated by `parse`).
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + '_ {
        self.raw_segments().filter_map(|(_, s)| s.ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A minimal executable: one RX segment at 0x200000 and one RW segment with bss.
    fn build(segs: &[(u64, u64, &[u8], u32)], entry: u64, ty: u16) -> Vec<u8> {
        let mut b = std::vec![0u8; 64 + 56 * segs.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&ty.to_le_bytes());
        b[18..20].copy_from_slice(&0x3Eu16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (vaddr, memsz, data, flags)) in segs.iter().enumerate() {
            let off = b.len() as u64;
            b.extend_from_slice(data);
            let at = 64 + i * 56;
            b[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            b[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        b
    }

    const MIN: u64 = 0x20_0000;
    const MAX: u64 = 0x8000_0000_0000;

    #[test]
    fn loads_a_good_binary() {
        let b = build(
            &[
                (0x20_0000, 0x100, &[0x90; 16], 5),
                (0x20_1000, 0x3000, &[1, 2, 3], 6),
            ],
            0x20_0004,
            2,
        );
        let e = Elf::parse(&b, MIN, MAX).unwrap();
        assert_eq!(e.entry, 0x20_0004);
        let s: Vec<_> = e.segments().collect();
        assert_eq!(s.len(), 2);
        assert!(s[0].executable && !s[0].writable);
        assert_eq!(s[1].data, &[1, 2, 3]);
        assert_eq!(s[1].mem_size, 0x3000);
    }

    #[test]
    fn refuses_bad_binaries() {
        let good = build(&[(0x20_0000, 0x100, &[0x90; 16], 5)], 0x20_0000, 2);
        assert_eq!(
            Elf::parse(&good[..40], MIN, MAX).err(),
            Some(ElfError::Truncated)
        );
        let mut b = good.clone();
        b[0] = 0;
        assert_eq!(Elf::parse(&b, MIN, MAX).err(), Some(ElfError::BadMagic));
        let mut b = good.clone();
        b[18] = 0x28;
        assert_eq!(Elf::parse(&b, MIN, MAX).err(), Some(ElfError::WrongMachine));
        let b = build(&[(0x20_0000, 0x100, &[0x90; 16], 5)], 0x20_0000, 3);
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::NotExecutable(3))
        );
        let b = build(&[(0x1000, 0x100, &[0x90; 16], 5)], 0x1000, 2);
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::SegmentOutOfRange(0))
        );
        let b = build(
            &[(0xFFFF_8000_0000_0000, 0x100, &[0x90; 16], 5)],
            0xFFFF_8000_0000_0000,
            2,
        );
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::SegmentOutOfRange(0))
        );
        let b = build(&[(u64::MAX - 10, 0x100, &[0x90; 16], 5)], 0x20_0000, 2);
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::SegmentOutOfRange(0))
        );
        let b = build(
            &[
                (0x20_0000, 0x100, &[0x90; 16], 5),
                (0x20_0800, 0x100, &[0; 4], 6),
            ],
            0x20_0000,
            2,
        );
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::SegmentsOverlap(1))
        );
        let b = build(&[(0x20_0000, 0x100, &[0x90; 16], 6)], 0x20_0000, 2);
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::BadEntry(0x20_0000))
        );
        let b = build(&[], 0x20_0000, 2);
        assert_eq!(Elf::parse(&b, MIN, MAX).err(), Some(ElfError::NoSegments));
        let mut b = good.clone();
        let at = 64 + 8; // segment offset far past the end
        b[at..at + 8].copy_from_slice(&0xFFFF_FFFFu64.to_le_bytes());
        assert_eq!(
            Elf::parse(&b, MIN, MAX).err(),
            Some(ElfError::SegmentOutOfFile(0))
        );
    }

    #[test]
    fn garbage_never_panics() {
        let base = build(
            &[
                (0x20_0000, 0x100, &[0x90; 16], 5),
                (0x20_1000, 0x3000, &[1, 2, 3], 6),
            ],
            0x20_0004,
            2,
        );
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = seed as usize % b.len();
                b[i] = (seed >> 40) as u8;
            }
            if let Ok(e) = Elf::parse(&b, MIN, MAX) {
                for s in e.segments() {
                    assert!(s.vaddr >= MIN && s.vaddr + s.mem_size <= MAX);
                }
            }
        }
    }
}
