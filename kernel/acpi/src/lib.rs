//! ACPI table parser for the Axolotl kernel: starting from the RSDP, it walks the RSDT/XSDT and
//! extracts what the kernel needs at boot (CPUs and interrupt controllers from the MADT, PCIe
//! configuration windows from the MCFG, the HPET's registers and the FADT's PM timer) into plain
//! data. The [`hpet`] module decodes the HPET's own capabilities register for the kernel, which
//! reads it from the address the table gives.
//!
//! The parser is `no_std` + `alloc` and never touches memory itself: the kernel lends it a
//! [`PhysMemory`] that copies bytes out of physical memory, which is also what lets the host tests
//! feed it synthetic and random tables. Whatever the bytes are, it does not panic: defects that real
//! firmware is known to ship (bad table checksums, truncated entries, unknown MADT entry types) are
//! tolerated and recorded as [`Warning`]s, and only a missing or unusable RSDP, root table or MADT
//! is an [`AcpiError`].

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod hpet;

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;

/// Reads physical memory for the parser. The kernel implements it over its physical-memory mapping.
pub trait PhysMemory {
    /// Copies `buf.len()` bytes starting at physical address `addr` into `buf`. Returns false when
    /// that range is not readable.
    ///
    /// The parser never asks for a range that wraps past the end of the address space.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// Largest table (header `length`) the parser accepts; longer ones are skipped with a warning.
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// Largest extended RSDP (`length` field of a revision 2 RSDP) accepted. The real size is 36.
pub const MAX_RSDP_LEN: u32 = 4096;

/// Most warnings kept; past it a single [`Warning::TooManyWarnings`] is appended and the rest are
/// dropped, so garbage tables cannot make the parser allocate without bound.
pub const MAX_WARNINGS: usize = 64;

/// Length of the common system description table header.
const HEADER_LEN: u32 = 36;
/// Size of a revision 0 (ACPI 1.0) RSDP, covered by its first checksum.
const RSDP_V1_LEN: usize = 20;
/// Size of a revision 2 RSDP as defined by the specification.
const RSDP_V2_LEN: usize = 36;
/// Chunk size used to checksum tables without copying them whole.
const CHUNK: usize = 256;

/// What the parser found in the ACPI tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiInfo {
    /// RSDP revision (0 for ACPI 1.0, 2 for ACPI 2.0 and later).
    pub revision: u8,
    /// OEM id from the RSDP.
    pub oem_id: [u8; 6],
    /// Processors from MADT entries type 0 (local APIC) and type 9 (local x2APIC), in table order.
    /// An x2APIC entry whose APIC id is also listed by a local APIC entry is dropped.
    pub cpus: Vec<Cpu>,
    /// I/O APICs (MADT type 1).
    pub io_apics: Vec<IoApic>,
    /// Interrupt source overrides (MADT type 2).
    pub overrides: Vec<IrqOverride>,
    /// Local APIC physical address: the MADT header's, replaced by a type 5 entry if present.
    pub local_apic_addr: u64,
    /// The system also has dual 8259 PICs (MADT flags bit 0, `PCAT_COMPAT`).
    pub has_8259: bool,
    /// PCIe enhanced configuration windows from the MCFG, empty if there is no MCFG.
    pub mcfg: Vec<McfgEntry>,
    /// The first HPET, if there is a usable HPET table.
    pub hpet: Option<Hpet>,
    /// ACPI PM timer from the FADT, if the platform has one.
    pub pm_timer: Option<PmTimer>,
    /// Defects found and tolerated, in the order they were met.
    pub warnings: Vec<Warning>,
}

/// A processor, from a MADT local APIC (type 0) or local x2APIC (type 9) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// ACPI processor UID.
    pub acpi_uid: u32,
    /// Local APIC id (x2APIC id for type 9 entries).
    pub apic_id: u32,
    /// Usable now (flags bit 0).
    pub enabled: bool,
    /// Not enabled but can be brought online later (flags bit 1, ACPI 6.3+).
    pub online_capable: bool,
}

/// An I/O APIC (MADT type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// I/O APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u32,
    /// First global system interrupt it handles.
    pub gsi_base: u32,
}

/// An interrupt source override (MADT type 2): ISA IRQ `source` is wired to `gsi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqOverride {
    /// Bus (0 = ISA).
    pub bus: u8,
    /// Bus-relative interrupt source (the ISA IRQ).
    pub source: u8,
    /// Global system interrupt it is delivered on.
    pub gsi: u32,
    /// MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3.
    pub flags: u16,
}

impl IrqOverride {
    /// Polarity, from flags bits 0-1.
    pub fn polarity(&self) -> Polarity {
        match self.flags & 0b11 {
            0 => Polarity::BusDefault,
            1 => Polarity::ActiveHigh,
            3 => Polarity::ActiveLow,
            _ => Polarity::Reserved,
        }
    }

    /// Trigger mode, from flags bits 2-3.
    pub fn trigger(&self) -> Trigger {
        match (self.flags >> 2) & 0b11 {
            0 => Trigger::BusDefault,
            1 => Trigger::Edge,
            3 => Trigger::Level,
            _ => Trigger::Reserved,
        }
    }
}

/// Interrupt polarity of an [`IrqOverride`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Conforms to the bus (active high for ISA).
    BusDefault,
    /// Active high.
    ActiveHigh,
    /// Reserved encoding (2).
    Reserved,
    /// Active low.
    ActiveLow,
}

/// Interrupt trigger mode of an [`IrqOverride`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Conforms to the bus (edge for ISA).
    BusDefault,
    /// Edge triggered.
    Edge,
    /// Reserved encoding (2).
    Reserved,
    /// Level triggered.
    Level,
}

/// A PCIe enhanced configuration (ECAM) window from the MCFG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McfgEntry {
    /// Physical base address of the window (the address bus 0 would have).
    pub base: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
}

/// The High Precision Event Timer block described by the ACPI `HPET` table.
///
/// The fields after `base` repeat what the table says about the hardware (its event timer block
/// id is a copy of the low half of the HPET's capabilities register); the kernel trusts the
/// register it reads over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hpet {
    /// Physical address of the 1 KiB register block: in system memory, 8-byte aligned, and the
    /// whole block below [`MAX_PHYS_ADDR`].
    pub base: u64,
    /// HPET sequence number (0 for the first block).
    pub number: u8,
    /// Minimum main counter ticks a periodic timer may be programmed with without losing
    /// interrupts.
    pub min_tick: u16,
    /// Page protection and OEM attributes byte (bits 0-3: 0 none, 1 4 KiB, 2 64 KiB protected).
    pub page_protection: u8,
    /// Hardware revision (event timer block id bits 0-7).
    pub hardware_rev: u8,
    /// Number of comparators (event timer block id bits 8-12, plus one).
    pub comparators: u8,
    /// The main counter is 64 bits wide (bit 13).
    pub counter_64bit: bool,
    /// The block can take over the legacy PIT and RTC interrupts (bit 15).
    pub legacy_replacement: bool,
    /// PCI vendor id of the block's maker (bits 16-31).
    pub vendor_id: u16,
}

/// Highest physical address (exclusive) x86-64 can have: 52 address bits. Register blocks that
/// do not end below it are not reported.
pub const MAX_PHYS_ADDR: u64 = 1 << 52;

/// The ACPI PM timer, from the FADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmTimer {
    /// I/O port of the timer (`X_PM_TMR_BLK` if valid, else `PM_TMR_BLK`).
    pub port: u16,
    /// The counter is 32 bits wide (FADT flags bit 8, `TMR_VAL_EXT`); otherwise 24 bits.
    pub is_32bit: bool,
}

/// Why the tables could not be parsed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// The RSDP (or its revision 2 extension) could not be read at this address.
    RsdpUnreadable {
        /// Physical address of the RSDP.
        address: u64,
    },
    /// The RSDP does not start with `"RSD PTR "`.
    BadRsdpSignature,
    /// The checksum over the first 20 bytes of the RSDP is not zero.
    BadRsdpChecksum,
    /// The revision 2 RSDP `length` field is below 36 or above [`MAX_RSDP_LEN`].
    BadRsdpLength {
        /// The length found.
        length: u32,
    },
    /// The extended checksum over the whole revision 2 RSDP is not zero.
    BadRsdpExtendedChecksum,
    /// Neither an RSDT nor an XSDT address is given.
    NoRootTable,
    /// The RSDT/XSDT header or body could not be read.
    RootTableUnreadable {
        /// Physical address of the root table.
        address: u64,
    },
    /// The root table does not carry the expected `"RSDT"`/`"XSDT"` signature.
    BadRootTableSignature {
        /// Physical address of the root table.
        address: u64,
        /// The signature found.
        signature: [u8; 4],
    },
    /// The root table `length` is below 36 or above [`MAX_TABLE_LEN`].
    BadRootTableLength {
        /// Physical address of the root table.
        address: u64,
        /// The length found.
        length: u32,
    },
    /// No usable MADT (`"APIC"`) is listed in the root table.
    NoMadt,
}

/// A defect found in the tables and tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// The preferred root (XSDT, or the RSDP revision 2 extension) was unusable; the RSDT is used.
    RootFallback {
        /// Why the preferred root was rejected.
        error: AcpiError,
    },
    /// A table's checksum is not zero; the table is used anyway.
    BadChecksum {
        /// Table signature.
        signature: [u8; 4],
        /// Physical address of the table.
        address: u64,
    },
    /// A table listed in the root table could not be read (header or body); it is skipped.
    TableUnreadable {
        /// Physical address of the table.
        address: u64,
    },
    /// A table's `length` is below 36 or above [`MAX_TABLE_LEN`]; it is skipped.
    BadTableLength {
        /// Table signature.
        signature: [u8; 4],
        /// Physical address of the table.
        address: u64,
        /// The length found.
        length: u32,
    },
    /// A table is too short for its fixed fields; it is skipped.
    TableTooShort {
        /// Table signature.
        signature: [u8; 4],
        /// Physical address of the table.
        address: u64,
        /// The length found.
        length: u32,
    },
    /// A table ends with bytes too few to form a whole entry; they are ignored.
    TrailingBytes {
        /// Table signature.
        signature: [u8; 4],
        /// Physical address of the table.
        address: u64,
        /// How many bytes were left over.
        count: u32,
    },
    /// A root table entry is the null address; it is skipped.
    NullTableEntry {
        /// Index of the entry in the root table.
        index: u32,
    },
    /// A second table with a signature already used; it is ignored.
    DuplicateTable {
        /// Table signature.
        signature: [u8; 4],
        /// Physical address of the ignored table.
        address: u64,
    },
    /// A MADT entry's length is below 2 or runs past the end of the table; the remaining entries
    /// cannot be located and are not parsed.
    MadtEntryTruncated {
        /// Offset of the entry within the MADT.
        offset: u32,
        /// Entry type.
        entry_type: u8,
        /// Entry length.
        length: u8,
    },
    /// A MADT entry of a known type is shorter than that type requires; it is skipped.
    MadtEntryTooShort {
        /// Offset of the entry within the MADT.
        offset: u32,
        /// Entry type.
        entry_type: u8,
        /// Entry length.
        length: u8,
    },
    /// A MADT entry of a type this parser does not know; it is skipped.
    UnknownMadtEntry {
        /// Offset of the entry within the MADT.
        offset: u32,
        /// Entry type.
        entry_type: u8,
    },
    /// Two processor entries share an APIC id; the later one is dropped. (An x2APIC entry repeating
    /// a local APIC entry's id is normal firmware practice and is dropped without a warning.)
    DuplicateApicId {
        /// The repeated APIC id.
        apic_id: u32,
    },
    /// An MCFG entry whose start bus is above its end bus; it is skipped.
    BadMcfgEntry {
        /// PCI segment group of the entry.
        segment: u16,
        /// Start bus.
        start_bus: u8,
        /// End bus.
        end_bus: u8,
    },
    /// The HPET base address is zero, not in system memory space, not 8-byte aligned, or its 1 KiB
    /// register block does not end below [`MAX_PHYS_ADDR`]; the HPET is not reported.
    BadHpetAddress {
        /// Generic address structure space id (0 = system memory).
        space_id: u8,
        /// The address found.
        address: u64,
    },
    /// A FADT PM timer block is not a 16-bit system I/O port; it is not used.
    PmTimerUnusable {
        /// Generic address structure space id (1 = system I/O); 1 for the legacy `PM_TMR_BLK`.
        space_id: u8,
        /// The address found.
        address: u64,
    },
    /// More than [`MAX_WARNINGS`] warnings; the rest were dropped.
    TooManyWarnings,
}

/// Writes a table signature, escaping bytes that are not printable ASCII.
struct Sig<'a>(&'a [u8]);

impl fmt::Display for Sig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b == b' ' || b.is_ascii_graphic() {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RsdpUnreadable { address } => write!(f, "RSDP at {address:#x} is not readable"),
            Self::BadRsdpSignature => f.write_str("RSDP signature is not \"RSD PTR \""),
            Self::BadRsdpChecksum => f.write_str("RSDP checksum is wrong"),
            Self::BadRsdpLength { length } => write!(f, "RSDP length {length} is invalid"),
            Self::BadRsdpExtendedChecksum => f.write_str("RSDP extended checksum is wrong"),
            Self::NoRootTable => f.write_str("RSDP gives neither an RSDT nor an XSDT address"),
            Self::RootTableUnreadable { address } => {
                write!(f, "root table at {address:#x} is not readable")
            }
            Self::BadRootTableSignature { address, signature } => write!(
                f,
                "root table at {address:#x} has signature \"{}\"",
                Sig(&signature)
            ),
            Self::BadRootTableLength { address, length } => {
                write!(f, "root table at {address:#x} has invalid length {length}")
            }
            Self::NoMadt => f.write_str("no usable MADT"),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RootFallback { error } => write!(f, "falling back to the RSDT: {error}"),
            Self::BadChecksum { signature, address } => write!(
                f,
                "{} at {address:#x}: bad checksum (used anyway)",
                Sig(&signature)
            ),
            Self::TableUnreadable { address } => {
                write!(f, "table at {address:#x} is not readable (skipped)")
            }
            Self::BadTableLength {
                signature,
                address,
                length,
            } => write!(
                f,
                "{} at {address:#x}: invalid length {length} (skipped)",
                Sig(&signature)
            ),
            Self::TableTooShort {
                signature,
                address,
                length,
            } => write!(
                f,
                "{} at {address:#x}: length {length} too short (skipped)",
                Sig(&signature)
            ),
            Self::TrailingBytes {
                signature,
                address,
                count,
            } => write!(
                f,
                "{} at {address:#x}: {count} trailing bytes ignored",
                Sig(&signature)
            ),
            Self::NullTableEntry { index } => {
                write!(f, "root table entry {index} is null (skipped)")
            }
            Self::DuplicateTable { signature, address } => {
                write!(f, "second {} at {address:#x} ignored", Sig(&signature))
            }
            Self::MadtEntryTruncated {
                offset,
                entry_type,
                length,
            } => write!(
                f,
                "MADT entry type {entry_type} at offset {offset} has length {length} \
                 outside the table; rest of the MADT ignored"
            ),
            Self::MadtEntryTooShort {
                offset,
                entry_type,
                length,
            } => write!(
                f,
                "MADT entry type {entry_type} at offset {offset} is too short ({length} bytes, skipped)"
            ),
            Self::UnknownMadtEntry { offset, entry_type } => write!(
                f,
                "unknown MADT entry type {entry_type} at offset {offset} (skipped)"
            ),
            Self::DuplicateApicId { apic_id } => {
                write!(f, "APIC id {apic_id} listed twice (later entry dropped)")
            }
            Self::BadMcfgEntry {
                segment,
                start_bus,
                end_bus,
            } => write!(
                f,
                "MCFG entry for segment {segment} has start bus {start_bus} > end bus {end_bus} (skipped)"
            ),
            Self::BadHpetAddress { space_id, address } => write!(
                f,
                "HPET base {address:#x} in address space {space_id} is unusable"
            ),
            Self::PmTimerUnusable { space_id, address } => write!(
                f,
                "PM timer block {address:#x} in address space {space_id} is unusable"
            ),
            Self::TooManyWarnings => f.write_str("too many warnings; the rest were dropped"),
        }
    }
}

impl core::error::Error for AcpiError {}

/// Parses the ACPI tables reachable from the RSDP at `rsdp_addr`.
///
/// Uses the XSDT when the RSDP revision is 2 or more and the XSDT address is non-zero, else the
/// RSDT; if the XSDT (or the RSDP's revision 2 extension) is unusable and an RSDT is given, falls
/// back to it with a [`Warning::RootFallback`].
pub fn parse(rsdp_addr: u64, mem: &(impl PhysMemory + ?Sized)) -> Result<AcpiInfo, AcpiError> {
    let mut w = Warnings::default();
    let rsdp = read_rsdp(rsdp_addr, mem)?;
    let root = find_root(&rsdp, mem, &mut w)?;

    let mut info = AcpiInfo {
        revision: rsdp.revision,
        oem_id: rsdp.oem_id,
        cpus: Vec::new(),
        io_apics: Vec::new(),
        overrides: Vec::new(),
        local_apic_addr: 0,
        has_8259: false,
        mcfg: Vec::new(),
        hpet: None,
        pm_timer: None,
        warnings: Vec::new(),
    };
    let (mut madt, mut mcfg, mut hpet, mut fadt) = (false, false, false, false);

    let entry_size: u32 = if root.sig == *b"XSDT" { 8 } else { 4 };
    let body = root.len - HEADER_LEN;
    if !body.is_multiple_of(entry_size) {
        w.push(Warning::TrailingBytes {
            signature: root.sig,
            address: root.addr,
            count: body % entry_size,
        });
    }
    for index in 0..body / entry_size {
        let off = HEADER_LEN + index * entry_size;
        let addr = if entry_size == 8 {
            root.u64(mem, off)
        } else {
            root.u32(mem, off).map(u64::from)
        };
        let Some(addr) = addr else {
            // The body was readable a moment ago; memory that changes under us is unreadable.
            w.push(Warning::TableUnreadable { address: root.addr });
            break;
        };
        if addr == 0 {
            w.push(Warning::NullTableEntry { index });
            continue;
        }
        let Some(sig) = read_bytes::<4>(mem, addr) else {
            w.push(Warning::TableUnreadable { address: addr });
            continue;
        };
        let seen = match &sig {
            b"APIC" => &mut madt,
            b"MCFG" => &mut mcfg,
            b"HPET" => &mut hpet,
            b"FACP" => &mut fadt,
            _ => continue,
        };
        if *seen {
            w.push(Warning::DuplicateTable {
                signature: sig,
                address: addr,
            });
            continue;
        }
        let Some(table) = load_table(addr, mem, &mut w) else {
            continue;
        };
        *seen = match &sig {
            b"APIC" => parse_madt(&table, mem, &mut info, &mut w),
            b"MCFG" => parse_mcfg(&table, mem, &mut info, &mut w),
            b"HPET" => parse_hpet(&table, mem, &mut info, &mut w),
            _ => parse_fadt(&table, mem, &mut info, &mut w),
        };
    }

    if !madt {
        return Err(AcpiError::NoMadt);
    }
    info.warnings = w.list;
    Ok(info)
}

/// Warning list capped at [`MAX_WARNINGS`].
#[derive(Default)]
struct Warnings {
    list: Vec<Warning>,
}

impl Warnings {
    fn push(&mut self, warning: Warning) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(warning);
        } else if self.list.len() == MAX_WARNINGS {
            self.list.push(Warning::TooManyWarnings);
        }
    }
}

/// Reads through `mem`, refusing ranges that wrap around the address space.
fn read_at(mem: &(impl PhysMemory + ?Sized), addr: u64, buf: &mut [u8]) -> bool {
    let Ok(len) = u64::try_from(buf.len()) else {
        return false;
    };
    addr.checked_add(len).is_some() && mem.read(addr, buf)
}

fn read_bytes<const N: usize>(mem: &(impl PhysMemory + ?Sized), addr: u64) -> Option<[u8; N]> {
    let mut buf = [0; N];
    read_at(mem, addr, &mut buf).then_some(buf)
}

/// `N` bytes of `buf` at `off`, if they are all there.
fn field<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    buf.get(off..off.checked_add(N)?)?.try_into().ok()
}

fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    field(buf, off).map(u16::from_le_bytes)
}

fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    field(buf, off).map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    field(buf, off).map(u64::from_le_bytes)
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc: u8, &b| acc.wrapping_add(b))
}

/// Byte sum of `len` bytes at `addr`, read in chunks; `None` if any part is unreadable.
fn checksum(mem: &(impl PhysMemory + ?Sized), addr: u64, len: u32) -> Option<u8> {
    let mut buf = [0u8; CHUNK];
    let mut acc = 0u8;
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(CHUNK as u32);
        let chunk = buf.get_mut(..n as usize)?;
        if !read_at(mem, addr.checked_add(u64::from(done))?, chunk) {
            return None;
        }
        acc = acc.wrapping_add(sum(chunk));
        done += n;
    }
    Some(acc)
}

struct Rsdp {
    revision: u8,
    oem_id: [u8; 6],
    rsdt: u32,
    /// XSDT address, or why the revision 2 extension is unusable; `None` for revision 0/1.
    xsdt: Option<Result<u64, AcpiError>>,
}

fn read_rsdp(addr: u64, mem: &(impl PhysMemory + ?Sized)) -> Result<Rsdp, AcpiError> {
    let unreadable = AcpiError::RsdpUnreadable { address: addr };
    let v1: [u8; RSDP_V1_LEN] = read_bytes(mem, addr).ok_or(unreadable)?;
    if field::<8>(&v1, 0) != Some(*b"RSD PTR ") {
        return Err(AcpiError::BadRsdpSignature);
    }
    if sum(&v1) != 0 {
        return Err(AcpiError::BadRsdpChecksum);
    }
    let revision = v1.get(15).copied().unwrap_or(0);
    let oem_id = field::<6>(&v1, 9).unwrap_or_default();
    let rsdt = u32_at(&v1, 16).unwrap_or(0);
    let xsdt = (revision >= 2).then(|| {
        let v2: [u8; RSDP_V2_LEN] = read_bytes(mem, addr).ok_or(unreadable)?;
        let length = u32_at(&v2, 20).unwrap_or(0);
        if !(RSDP_V2_LEN as u32..=MAX_RSDP_LEN).contains(&length) {
            return Err(AcpiError::BadRsdpLength { length });
        }
        if checksum(mem, addr, length).ok_or(unreadable)? != 0 {
            return Err(AcpiError::BadRsdpExtendedChecksum);
        }
        Ok(u64_at(&v2, 24).unwrap_or(0))
    });
    Ok(Rsdp {
        revision,
        oem_id,
        rsdt,
        xsdt,
    })
}

/// Picks and loads the root table: the XSDT if there is one, else (or if it is unusable) the RSDT.
fn find_root(
    rsdp: &Rsdp,
    mem: &(impl PhysMemory + ?Sized),
    w: &mut Warnings,
) -> Result<Table, AcpiError> {
    let rsdt = u64::from(rsdp.rsdt);
    let xsdt_err = match rsdp.xsdt {
        None | Some(Ok(0)) => None,
        Some(Ok(xsdt)) => match load_root(xsdt, *b"XSDT", mem, w) {
            Ok(table) => return Ok(table),
            Err(e) => Some(e),
        },
        Some(Err(e)) => Some(e),
    };
    match (xsdt_err, rsdt) {
        (Some(e), 0) => Err(e),
        (None, 0) => Err(AcpiError::NoRootTable),
        (e, _) => {
            if let Some(error) = e {
                w.push(Warning::RootFallback { error });
            }
            load_root(rsdt, *b"RSDT", mem, w)
        }
    }
}

/// A table whose header has been read and whose whole `len` bytes were readable once.
struct Table {
    addr: u64,
    len: u32,
    sig: [u8; 4],
}

impl Table {
    /// `N` bytes at `off` within the table, if that is inside it and readable.
    fn bytes<const N: usize>(&self, mem: &(impl PhysMemory + ?Sized), off: u32) -> Option<[u8; N]> {
        let end = off.checked_add(u32::try_from(N).ok()?)?;
        if end > self.len {
            return None;
        }
        read_bytes(mem, self.addr.checked_add(u64::from(off))?)
    }

    fn u8(&self, mem: &(impl PhysMemory + ?Sized), off: u32) -> Option<u8> {
        self.bytes::<1>(mem, off).map(|[b]| b)
    }

    fn u32(&self, mem: &(impl PhysMemory + ?Sized), off: u32) -> Option<u32> {
        self.bytes(mem, off).map(u32::from_le_bytes)
    }

    fn u64(&self, mem: &(impl PhysMemory + ?Sized), off: u32) -> Option<u64> {
        self.bytes(mem, off).map(u64::from_le_bytes)
    }
}

enum LoadError {
    Unreadable,
    BadLength { signature: [u8; 4], length: u32 },
}

/// Reads a table header, checks its length and that the whole table is readable; returns the
/// table and whether its checksum is right.
fn load(addr: u64, mem: &(impl PhysMemory + ?Sized)) -> Result<(Table, bool), LoadError> {
    let header: [u8; HEADER_LEN as usize] = read_bytes(mem, addr).ok_or(LoadError::Unreadable)?;
    let signature = field::<4>(&header, 0).unwrap_or_default();
    let length = u32_at(&header, 4).unwrap_or(0);
    if !(HEADER_LEN..=MAX_TABLE_LEN).contains(&length) {
        return Err(LoadError::BadLength { signature, length });
    }
    let sum = checksum(mem, addr, length).ok_or(LoadError::Unreadable)?;
    let table = Table {
        addr,
        len: length,
        sig: signature,
    };
    Ok((table, sum == 0))
}

fn load_root(
    addr: u64,
    expected: [u8; 4],
    mem: &(impl PhysMemory + ?Sized),
    w: &mut Warnings,
) -> Result<Table, AcpiError> {
    let (table, sum_ok) = load(addr, mem).map_err(|e| match e {
        LoadError::Unreadable => AcpiError::RootTableUnreadable { address: addr },
        LoadError::BadLength { length, .. } => AcpiError::BadRootTableLength {
            address: addr,
            length,
        },
    })?;
    if table.sig != expected {
        return Err(AcpiError::BadRootTableSignature {
            address: addr,
            signature: table.sig,
        });
    }
    if !sum_ok {
        w.push(Warning::BadChecksum {
            signature: table.sig,
            address: addr,
        });
    }
    Ok(table)
}

fn load_table(addr: u64, mem: &(impl PhysMemory + ?Sized), w: &mut Warnings) -> Option<Table> {
    match load(addr, mem) {
        Ok((table, sum_ok)) => {
            if !sum_ok {
                w.push(Warning::BadChecksum {
                    signature: table.sig,
                    address: addr,
                });
            }
            Some(table)
        }
        Err(LoadError::Unreadable) => {
            w.push(Warning::TableUnreadable { address: addr });
            None
        }
        Err(LoadError::BadLength { signature, length }) => {
            w.push(Warning::BadTableLength {
                signature,
                address: addr,
                length,
            });
            None
        }
    }
}

/// Pushes [`Warning::TableTooShort`] and returns false if `table` is shorter than `min`.
fn long_enough(table: &Table, min: u32, w: &mut Warnings) -> bool {
    if table.len < min {
        w.push(Warning::TableTooShort {
            signature: table.sig,
            address: table.addr,
            length: table.len,
        });
    }
    table.len >= min
}

/// MADT entry types that are valid on x86 but carry nothing [`AcpiInfo`] reports.
const MADT_IGNORED: [u8; 7] = [
    3,    // NMI source
    4,    // local APIC NMI
    6,    // I/O SAPIC
    7,    // local SAPIC
    8,    // platform interrupt sources
    0xa,  // local x2APIC NMI
    0x10, // multiprocessor wakeup
];

/// Parses the MADT into `info`; false if it is unusable (too short).
fn parse_madt(
    table: &Table,
    mem: &(impl PhysMemory + ?Sized),
    info: &mut AcpiInfo,
    w: &mut Warnings,
) -> bool {
    const ENTRIES: u32 = 44;
    if !long_enough(table, ENTRIES, w) {
        return false;
    }
    let (Some(lapic), Some(flags)) = (table.u32(mem, 36), table.u32(mem, 40)) else {
        w.push(Warning::TableUnreadable {
            address: table.addr,
        });
        return false;
    };
    info.local_apic_addr = u64::from(lapic);
    info.has_8259 = flags & 1 != 0;

    // (cpu, from an x2APIC entry), deduplicated once all entries are known.
    let mut cpus: Vec<(Cpu, bool)> = Vec::new();
    let mut off = ENTRIES;
    while off < table.len {
        let Some([entry_type, length]) = table.bytes::<2>(mem, off) else {
            let remaining = table.len - off;
            w.push(Warning::TrailingBytes {
                signature: table.sig,
                address: table.addr,
                count: remaining,
            });
            break;
        };
        let end = off + u32::from(length);
        if length < 2 || end > table.len {
            w.push(Warning::MadtEntryTruncated {
                offset: off,
                entry_type,
                length,
            });
            break;
        }
        // An entry is at most 255 bytes (its length is a u8), so this slice is always in bounds.
        let mut buf = [0u8; 255];
        let entry = &mut buf[..usize::from(length)];
        if !read_at(mem, table.addr.saturating_add(u64::from(off)), entry) {
            w.push(Warning::TableUnreadable {
                address: table.addr,
            });
            break;
        }
        if !parse_madt_entry(entry, info, &mut cpus) {
            if MADT_IGNORED.contains(&entry_type) {
                // Known, nothing to record.
            } else if matches!(entry_type, 0 | 1 | 2 | 5 | 9) {
                w.push(Warning::MadtEntryTooShort {
                    offset: off,
                    entry_type,
                    length,
                });
            } else {
                w.push(Warning::UnknownMadtEntry {
                    offset: off,
                    entry_type,
                });
            }
        }
        off = end;
    }

    let mut xapic_ids: Vec<u32> = cpus
        .iter()
        .filter(|(_, x2)| !x2)
        .map(|(c, _)| c.apic_id)
        .collect();
    xapic_ids.sort_unstable();
    let mut seen = BTreeSet::new();
    for (cpu, x2) in cpus {
        if x2 && xapic_ids.binary_search(&cpu.apic_id).is_ok() {
            continue;
        }
        if seen.insert(cpu.apic_id) {
            info.cpus.push(cpu);
        } else {
            w.push(Warning::DuplicateApicId {
                apic_id: cpu.apic_id,
            });
        }
    }
    true
}

/// Records one MADT entry of a reported type; false if its type is not one of those or it is
/// too short for it.
fn parse_madt_entry(e: &[u8], info: &mut AcpiInfo, cpus: &mut Vec<(Cpu, bool)>) -> bool {
    let cpu = |uid: u32, apic_id: u32, flags: u32| Cpu {
        acpi_uid: uid,
        apic_id,
        enabled: flags & 1 != 0,
        online_capable: flags & 2 != 0,
    };
    let u8_at = |off: usize| e.get(off).copied();
    match e.first() {
        Some(0) => {
            let (Some(uid), Some(id), Some(flags)) = (u8_at(2), u8_at(3), u32_at(e, 4)) else {
                return false;
            };
            cpus.push((cpu(uid.into(), id.into(), flags), false));
        }
        Some(1) => {
            let (Some(id), Some(address), Some(gsi_base)) = (u8_at(2), u32_at(e, 4), u32_at(e, 8))
            else {
                return false;
            };
            info.io_apics.push(IoApic {
                id,
                address,
                gsi_base,
            });
        }
        Some(2) => {
            let (Some(bus), Some(source), Some(gsi), Some(flags)) =
                (u8_at(2), u8_at(3), u32_at(e, 4), u16_at(e, 8))
            else {
                return false;
            };
            info.overrides.push(IrqOverride {
                bus,
                source,
                gsi,
                flags,
            });
        }
        Some(5) => {
            let Some(addr) = u64_at(e, 4) else {
                return false;
            };
            info.local_apic_addr = addr;
        }
        Some(9) => {
            let (Some(id), Some(flags), Some(uid)) = (u32_at(e, 4), u32_at(e, 8), u32_at(e, 12))
            else {
                return false;
            };
            cpus.push((cpu(uid, id, flags), true));
        }
        _ => return false,
    }
    true
}

fn parse_mcfg(
    table: &Table,
    mem: &(impl PhysMemory + ?Sized),
    info: &mut AcpiInfo,
    w: &mut Warnings,
) -> bool {
    const ENTRIES: u32 = 44;
    const ENTRY_LEN: u32 = 16;
    if !long_enough(table, ENTRIES, w) {
        return false;
    }
    let body = table.len - ENTRIES;
    if !body.is_multiple_of(ENTRY_LEN) {
        w.push(Warning::TrailingBytes {
            signature: table.sig,
            address: table.addr,
            count: body % ENTRY_LEN,
        });
    }
    for i in 0..body / ENTRY_LEN {
        let Some(e) = table.bytes::<16>(mem, ENTRIES + i * ENTRY_LEN) else {
            w.push(Warning::TableUnreadable {
                address: table.addr,
            });
            break;
        };
        let base = u64_at(&e, 0).unwrap_or(0);
        let segment = u16_at(&e, 8).unwrap_or(0);
        let [start_bus, end_bus] = field(&e, 10).unwrap_or_default();
        if start_bus > end_bus {
            w.push(Warning::BadMcfgEntry {
                segment,
                start_bus,
                end_bus,
            });
            continue;
        }
        info.mcfg.push(McfgEntry {
            base,
            segment,
            start_bus,
            end_bus,
        });
    }
    true
}

fn parse_hpet(
    table: &Table,
    mem: &(impl PhysMemory + ?Sized),
    info: &mut AcpiInfo,
    w: &mut Warnings,
) -> bool {
    // Event timer block id (4), base address GAS (12), HPET number (1), min tick (2), flags (1).
    const BLOCK_ID: u32 = 36;
    const BASE_GAS: u32 = 40;
    const NUMBER: u32 = 52;
    const MIN_TICK: u32 = 53;
    const PAGE_PROTECTION: u32 = 55;
    if !long_enough(table, PAGE_PROTECTION + 1, w) {
        return false;
    }
    let (Some(id), Some(space_id), Some(address), Some(number), Some(min_tick), Some(protection)) = (
        table.u32(mem, BLOCK_ID),
        table.u8(mem, BASE_GAS),
        table.u64(mem, BASE_GAS + 4),
        table.u8(mem, NUMBER),
        table.bytes::<2>(mem, MIN_TICK).map(u16::from_le_bytes),
        table.u8(mem, PAGE_PROTECTION),
    ) else {
        w.push(Warning::TableUnreadable {
            address: table.addr,
        });
        return false;
    };
    let in_range = address
        .checked_add(hpet::REGISTER_BLOCK_LEN)
        .is_some_and(|end| end <= MAX_PHYS_ADDR);
    if space_id != 0 || address == 0 || !address.is_multiple_of(8) || !in_range {
        w.push(Warning::BadHpetAddress { space_id, address });
        return false;
    }
    let [hardware_rev, caps, vendor_lo, vendor_hi] = id.to_le_bytes();
    info.hpet = Some(Hpet {
        base: address,
        number,
        min_tick,
        page_protection: protection,
        hardware_rev,
        comparators: (caps & 0x1F) + 1,
        counter_64bit: caps & (1 << 5) != 0,
        legacy_replacement: caps & (1 << 7) != 0,
        vendor_id: u16::from_le_bytes([vendor_lo, vendor_hi]),
    });
    true
}

fn parse_fadt(
    table: &Table,
    mem: &(impl PhysMemory + ?Sized),
    info: &mut AcpiInfo,
    w: &mut Warnings,
) -> bool {
    const PM_TMR_BLK: u32 = 76;
    const FLAGS: u32 = 112;
    const X_PM_TMR_BLK: u32 = 208;
    const TMR_VAL_EXT: u32 = 1 << 8;
    const HW_REDUCED_ACPI: u32 = 1 << 20;
    // The ACPI 1.0 FADT ends after the flags.
    if !long_enough(table, FLAGS + 4, w) {
        return false;
    }
    let (Some(legacy), Some(flags)) = (table.u32(mem, PM_TMR_BLK), table.u32(mem, FLAGS)) else {
        w.push(Warning::TableUnreadable {
            address: table.addr,
        });
        return false;
    };
    if flags & HW_REDUCED_ACPI != 0 {
        // Hardware-reduced platforms have no PM timer, whatever the fields say.
        return true;
    }
    let is_32bit = flags & TMR_VAL_EXT != 0;
    // X_PM_TMR_BLK is only there in ACPI 2.0+ FADTs (absent if the table is too short).
    let extended = match (
        table.u8(mem, X_PM_TMR_BLK),
        table.u64(mem, X_PM_TMR_BLK + 4),
    ) {
        (Some(space_id), Some(address)) if address != 0 => match u16::try_from(address) {
            Ok(port) if space_id == 1 => Some(port),
            _ => {
                w.push(Warning::PmTimerUnusable { space_id, address });
                None
            }
        },
        _ => None,
    };
    let port = extended.or_else(|| match u16::try_from(legacy) {
        Ok(0) => None,
        Ok(port) => Some(port),
        Err(_) => {
            w.push(Warning::PmTimerUnusable {
                space_id: 1,
                address: legacy.into(),
            });
            None
        }
    });
    info.pm_timer = port.map(|port| PmTimer { port, is_32bit });
    true
}
