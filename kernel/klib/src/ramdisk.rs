//! The boot ramdisk: a flat archive of named modules that xtask packs and the bootloader loads.
//!
//! Layout (all integers little-endian):
//! ```text
//! 0      magic  b"AXRD"
//! 4      u32    format version (1)
//! 8      u32    number of entries N
//! 12     u32    total length of the archive in bytes
//! 16     N entries of 48 bytes: name (32 bytes, NUL padded UTF-8), offset u64, len u64
//! ...    module bytes, each starting at a 16-byte aligned offset
//! ```
//! The kernel treats the archive as untrusted input: every offset and length is checked against
//! the archive's real size before a module is handed out.

/// Magic word at the start of every archive.
pub const MAGIC: [u8; 4] = *b"AXRD";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Longest module name, in bytes.
pub const NAME_LEN: usize = 32;
const HEADER_LEN: usize = 16;
const ENTRY_LEN: usize = NAME_LEN + 16;

/// Why an archive was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamdiskError {
    /// The archive is shorter than its header or its entry table.
    Truncated,
    /// The first four bytes are not `AXRD`.
    BadMagic,
    /// The archive was written by a different format version.
    BadVersion(u32),
    /// The header's total length disagrees with the bytes the bootloader handed over.
    BadLength { header: u32, actual: usize },
    /// An entry's name is not NUL-padded UTF-8.
    BadName(usize),
    /// An entry points outside the archive.
    OutOfBounds(usize),
}

impl core::fmt::Display for RamdiskError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "ramdisk truncated"),
            Self::BadMagic => write!(f, "ramdisk has no AXRD magic"),
            Self::BadVersion(v) => write!(f, "ramdisk format version {v}, expected {VERSION}"),
            Self::BadLength { header, actual } => {
                write!(
                    f,
                    "ramdisk header says {header} bytes, loader gave {actual}"
                )
            }
            Self::BadName(i) => write!(f, "ramdisk entry {i} has an invalid name"),
            Self::OutOfBounds(i) => write!(f, "ramdisk entry {i} points outside the archive"),
        }
    }
}

/// A validated archive.
#[derive(Clone, Copy)]
pub struct Ramdisk<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// One module of the archive.
#[derive(Clone, Copy, Debug)]
pub struct Module<'a> {
    /// The module's name.
    pub name: &'a str,
    /// The module's bytes.
    pub data: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl<'a> Ramdisk<'a> {
    /// Validates the whole archive: header, and every entry's name and bounds.
    ///
    /// The bootloader may round the ramdisk up, so `bytes` may be longer than the archive.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RamdiskError> {
        if bytes.len() < HEADER_LEN {
            return Err(RamdiskError::Truncated);
        }
        if bytes[0..4] != MAGIC {
            return Err(RamdiskError::BadMagic);
        }
        let version = u32_at(bytes, 4);
        if version != VERSION {
            return Err(RamdiskError::BadVersion(version));
        }
        let count = u32_at(bytes, 8) as usize;
        let total = u32_at(bytes, 12);
        if total as usize > bytes.len() || (total as usize) < HEADER_LEN {
            return Err(RamdiskError::BadLength {
                header: total,
                actual: bytes.len(),
            });
        }
        let bytes = &bytes[..total as usize];
        let table_end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|t| t.checked_add(HEADER_LEN))
            .ok_or(RamdiskError::Truncated)?;
        if table_end > bytes.len() {
            return Err(RamdiskError::Truncated);
        }
        let disk = Self { bytes, count };
        for i in 0..count {
            disk.entry(i)?;
        }
        Ok(disk)
    }

    fn entry(&self, i: usize) -> Result<Module<'a>, RamdiskError> {
        let at = HEADER_LEN + i * ENTRY_LEN;
        let raw = &self.bytes[at..at + NAME_LEN];
        let name_len = raw.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        if name_len == 0 || raw[name_len..].iter().any(|&c| c != 0) {
            return Err(RamdiskError::BadName(i));
        }
        let name = core::str::from_utf8(&raw[..name_len]).map_err(|_| RamdiskError::BadName(i))?;
        let offset = u64_at(self.bytes, at + NAME_LEN);
        let len = u64_at(self.bytes, at + NAME_LEN + 8);
        let end = offset
            .checked_add(len)
            .ok_or(RamdiskError::OutOfBounds(i))?;
        if end > self.bytes.len() as u64 {
            return Err(RamdiskError::OutOfBounds(i));
        }
        Ok(Module {
            name,
            data: &self.bytes[offset as usize..end as usize],
        })
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the archive holds no module.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The modules in archive order.
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> + '_ {
        // Every entry was validated in `parse`.
        (0..self.count).filter_map(|i| self.entry(i).ok())
    }

    /// The module called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.modules().find(|m| m.name == name).map(|m| m.data)
    }
}

/// Why an archive could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// A module name is empty, longer than [`NAME_LEN`] bytes or contains a NUL.
    BadName,
    /// Two modules share a name.
    Duplicate,
    /// The archive would exceed 4 GiB.
    TooLarge,
}

/// Writes an archive into `out` (host side; used by xtask). `modules` are (name, bytes) pairs.
pub fn write_archive<'m>(
    modules: &[(&'m str, &'m [u8])],
    out: &mut dyn FnMut(&[u8]),
) -> Result<usize, BuildError> {
    for (i, (name, _)) in modules.iter().enumerate() {
        if name.is_empty() || name.len() > NAME_LEN || name.contains('\0') {
            return Err(BuildError::BadName);
        }
        if modules[..i].iter().any(|(n, _)| n == name) {
            return Err(BuildError::Duplicate);
        }
    }
    let align = |x: u64| (x + 15) & !15;
    let data_start = align((HEADER_LEN + modules.len() * ENTRY_LEN) as u64);
    // Offset of module `i`: each module starts 16-byte aligned after the previous one.
    let offset_of = |i: usize| {
        modules[..i]
            .iter()
            .fold(data_start, |at, (_, d)| align(at + d.len() as u64))
    };
    let total = u32::try_from(offset_of(modules.len())).map_err(|_| BuildError::TooLarge)?;
    out(&MAGIC);
    out(&VERSION.to_le_bytes());
    out(&(modules.len() as u32).to_le_bytes());
    out(&total.to_le_bytes());
    for (i, (name, data)) in modules.iter().enumerate() {
        let mut raw = [0u8; NAME_LEN];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        out(&raw);
        out(&offset_of(i).to_le_bytes());
        out(&(data.len() as u64).to_le_bytes());
    }
    let mut written = (HEADER_LEN + modules.len() * ENTRY_LEN) as u64;
    let zeros = [0u8; 16];
    for (i, (_, data)) in modules.iter().enumerate() {
        let at = offset_of(i);
        out(&zeros[..(at - written) as usize]);
        out(data);
        written = at + data.len() as u64;
    }
    out(&zeros[..(u64::from(total) - written) as usize]);
    Ok(total as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn build(mods: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = write_archive(mods, &mut |b| out.extend_from_slice(b)).unwrap();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn round_trip() {
        let a = build(&[("cmdline", b"log=debug"), ("init", &[1, 2, 3, 4, 5])]);
        assert_eq!(a.len() % 16, 0);
        let d = Ramdisk::parse(&a).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get("cmdline"), Some(&b"log=debug"[..]));
        assert_eq!(d.get("init"), Some(&[1u8, 2, 3, 4, 5][..]));
        assert_eq!(d.get("nope"), None);
        // The loader may hand over a page-rounded buffer.
        let mut padded = a.clone();
        padded.resize(4096, 0xAA);
        assert_eq!(
            Ramdisk::parse(&padded).unwrap().get("init").unwrap().len(),
            5
        );
    }

    #[test]
    fn empty_archive() {
        let a = build(&[]);
        let d = Ramdisk::parse(&a).unwrap();
        assert!(d.is_empty());
    }

    #[test]
    fn refuses_bad_names() {
        let mut out = Vec::new();
        let long = "x".repeat(33);
        assert_eq!(
            write_archive(&[(&long, b"")], &mut |b| out.extend_from_slice(b)),
            Err(BuildError::BadName)
        );
        assert_eq!(
            write_archive(&[("", b"")], &mut |b| out.extend_from_slice(b)),
            Err(BuildError::BadName)
        );
        assert_eq!(
            write_archive(&[("a", b""), ("a", b"")], &mut |b| out.extend_from_slice(b)),
            Err(BuildError::Duplicate)
        );
    }

    #[test]
    fn refuses_corruption() {
        let a = build(&[("cmdline", b"x")]);
        assert_eq!(Ramdisk::parse(&a[..8]).err(), Some(RamdiskError::Truncated));
        let mut bad = a.clone();
        bad[0] = b'X';
        assert_eq!(Ramdisk::parse(&bad).err(), Some(RamdiskError::BadMagic));
        let mut bad = a.clone();
        bad[4] = 9;
        assert_eq!(
            Ramdisk::parse(&bad).err(),
            Some(RamdiskError::BadVersion(9))
        );
        let mut bad = a.clone();
        bad[8] = 200; // entry count far past the table
        assert_eq!(Ramdisk::parse(&bad).err(), Some(RamdiskError::Truncated));
        let mut bad = a.clone();
        bad[16 + 32 + 7] = 0x7f; // offset huge
        assert_eq!(
            Ramdisk::parse(&bad).err(),
            Some(RamdiskError::OutOfBounds(0))
        );
        let mut bad = a.clone();
        bad[16 + 32 + 8 + 7] = 0xff; // len overflows
        assert_eq!(
            Ramdisk::parse(&bad).err(),
            Some(RamdiskError::OutOfBounds(0))
        );
        let mut bad = a.clone();
        bad[16 + 3] = 0; // name with NUL inside and text after
        assert_eq!(Ramdisk::parse(&bad).err(), Some(RamdiskError::BadName(0)));
        let mut bad = a;
        bad[12..16].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(matches!(
            Ramdisk::parse(&bad),
            Err(RamdiskError::BadLength { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let base = build(&[("cmdline", b"log=info"), ("m", &[7; 100])]);
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % b.len();
                b[i] = (seed >> 32) as u8;
            }
            if let Ok(d) = Ramdisk::parse(&b) {
                for m in d.modules() {
                    assert!(m.data.len() <= b.len());
                }
            }
        }
    }
}
