//! What goes on the boot disk leaves the debug sections behind. The kernel and the user programs
//! are built with line tables (`debug = 1` in the release profile), so that a fault address in
//! a transcript can be traced with `addr2line` on the file under `target/`; those sections are
//! most of each file (a 120 KiB program is a 2.2 MiB file), and nothing at boot reads them. The
//! BIOS loads the kernel and the ramdisk through 16-bit disk calls, which under emulation cost
//! about a second per MiB, so the copies put on the disk are rewritten without the `.debug*`
//! sections that are not loaded: what is loaded, and the symbols, stay as they are.

use object::build::elf::Builder;
use object::elf::{SHF_ALLOC, SectionFlags};

/// Whether a section is debug information that nothing loads: named `.debug*` and not
/// allocated (`.debug_gdb_scripts` is named so, yet may lie inside a loaded segment).
fn is_debug(name: &[u8], flags: SectionFlags) -> bool {
    name.starts_with(b".debug") && !flags.contains(SHF_ALLOC)
}

/// `elf` rewritten without its debug sections. An ELF that has none comes back unchanged.
pub fn without_debug(elf: &[u8]) -> Result<Vec<u8>, String> {
    let mut builder = Builder::read(elf).map_err(|e| format!("not a readable ELF file: {e}"))?;
    let mut any = false;
    for section in builder.sections.iter_mut() {
        if is_debug(section.name.as_slice(), section.sh_flags) {
            section.delete = true;
            any = true;
        }
    }
    if !any {
        return Ok(elf.to_vec());
    }
    builder.delete_orphans();
    let mut out = Vec::new();
    builder
        .write(&mut out)
        .map_err(|e| format!("cannot rewrite the ELF file: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_AT: u64 = 0x20_1000;
    const SHSTRTAB: &[u8] = b"\0.text\0.debug_gdb_scripts\0.debug_info\0.shstrtab\0";

    /// A static executable as the linker writes ours: one read-execute segment holding `.text`
    /// and an allocated `.debug_gdb_scripts`, then 4000 bytes of `.debug_info`, `.shstrtab`
    /// and the section headers.
    fn tiny_elf() -> Vec<u8> {
        let text = [0x90u8; 32];
        let gdb = [0x01u8; 16];
        let mut b = vec![0u8; 0x1000];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4..7].copy_from_slice(&[2, 1, 1]);
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&0x3Eu16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&TEXT_AT.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[58..60].copy_from_slice(&64u16.to_le_bytes());
        b[60..62].copy_from_slice(&5u16.to_le_bytes());
        b[62..64].copy_from_slice(&4u16.to_le_bytes());
        let load = 0x30u64;
        let ph: [u64; 6] = [0x1000, TEXT_AT, TEXT_AT, load, load, 0x1000];
        b[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        b[68..72].copy_from_slice(&5u32.to_le_bytes()); // R + X
        for (i, v) in ph.iter().enumerate() {
            b[72 + i * 8..80 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&text);
        b.extend_from_slice(&gdb);
        let debug_at = b.len() as u64;
        b.extend((0..4000u32).map(|i| i as u8));
        let shstr_at = b.len() as u64;
        b.extend_from_slice(SHSTRTAB);
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        let shoff = b.len() as u64;
        b[40..48].copy_from_slice(&shoff.to_le_bytes());
        // (name, type, flags, address, offset, size)
        let sections: [(u32, u32, u64, u64, u64, u64); 5] = [
            (0, 0, 0, 0, 0, 0),
            (1, 1, 6, TEXT_AT, 0x1000, 32),
            (7, 1, 2, TEXT_AT + 32, 0x1020, 16),
            (26, 1, 0, 0, debug_at, 4000),
            (38, 3, 0, 0, shstr_at, SHSTRTAB.len() as u64),
        ];
        for (name, ty, flags, addr, offset, size) in sections {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&ty.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            h[24..32].copy_from_slice(&offset.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[48..56].copy_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&h);
        }
        b
    }

    /// The names of `elf`'s sections, as the builder reads them (without the null section).
    fn section_names(elf: &[u8]) -> Vec<String> {
        let b = Builder::read(elf).unwrap();
        b.sections
            .iter()
            .map(|s| String::from_utf8_lossy(s.name.as_slice()).into_owned())
            .collect()
    }

    /// A segment as the kernel's loader sees it: address, size in memory, bytes, writable,
    /// executable.
    type Loaded = (u64, u64, Vec<u8>, bool, bool);

    /// What the kernel's loader takes from a file: the entry point and each segment.
    fn loaded(elf: &[u8]) -> (u64, Vec<Loaded>) {
        let e = klib::elf::Elf::parse(elf, 0x20_0000, 0x8000_0000_0000).unwrap();
        let segments = e
            .segments()
            .map(|s| {
                (
                    s.vaddr,
                    s.mem_size,
                    s.data.to_vec(),
                    s.writable,
                    s.executable,
                )
            })
            .collect();
        (e.entry, segments)
    }

    #[test]
    fn debug_sections_go_and_what_loads_stays() {
        let elf = tiny_elf();
        assert_eq!(
            section_names(&elf),
            [".text", ".debug_gdb_scripts", ".debug_info", ".shstrtab"]
        );
        let out = without_debug(&elf).unwrap();
        assert_eq!(
            section_names(&out),
            [".text", ".debug_gdb_scripts", ".shstrtab"]
        );
        assert!(
            out.len() + 4000 <= elf.len(),
            "{} of {} bytes",
            out.len(),
            elf.len()
        );
        let (entry, segments) = loaded(&out);
        assert_eq!(entry, TEXT_AT);
        assert_eq!(segments.len(), 1);
        assert_eq!((entry, segments), loaded(&elf));
        // A second pass finds nothing to remove.
        assert_eq!(without_debug(&out).unwrap(), out);
    }

    #[test]
    fn only_unloaded_debug_sections_count() {
        let none = SectionFlags(0);
        assert!(is_debug(b".debug_info", none));
        assert!(is_debug(b".debug_line", none));
        assert!(!is_debug(b".debug_gdb_scripts", SHF_ALLOC));
        assert!(!is_debug(b".symtab", none));
        assert!(!is_debug(b".text", SectionFlags(6)));
    }

    #[test]
    fn not_an_elf_is_refused() {
        let e = without_debug(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(e.contains("not a readable ELF"), "{e}");
        assert!(without_debug(&[]).is_err());
    }
}
