//! Shared test support: a sparse physical memory and builders for synthetic ACPI tables.

#![allow(dead_code)]

use std::collections::BTreeMap;

use acpi_tables::PhysMemory;

/// Sparse physical memory: byte buffers placed at addresses. A read succeeds only if it falls
/// entirely inside one buffer.
#[derive(Default, Clone)]
pub struct Mem {
    pub regions: BTreeMap<u64, Vec<u8>>,
}

impl Mem {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, addr: u64, bytes: Vec<u8>) -> &mut Self {
        self.regions.insert(addr, bytes);
        self
    }

    pub fn get_mut(&mut self, addr: u64) -> &mut Vec<u8> {
        self.regions
            .get_mut(&addr)
            .expect("no region at that address")
    }
}

impl PhysMemory for Mem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some((&start, bytes)) = self.regions.range(..=addr).next_back() else {
            return false;
        };
        let Ok(off) = usize::try_from(addr - start) else {
            return false;
        };
        match off
            .checked_add(buf.len())
            .and_then(|end| bytes.get(off..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

/// Sets byte `at` so that `bytes[..len]` sums to zero.
pub fn fix_checksum_at(bytes: &mut [u8], at: usize, len: usize) {
    bytes[at] = 0;
    bytes[at] = 0u8.wrapping_sub(sum(&bytes[..len]));
}

/// Recomputes a table's header checksum (byte 9) over its whole buffer.
pub fn fix_checksum(table: &mut [u8]) {
    let len = table.len();
    fix_checksum_at(table, 9, len);
}

/// Breaks a table's checksum.
pub fn break_checksum(table: &mut [u8]) {
    table[9] = table[9].wrapping_add(1);
}

/// A table: 36-byte header (length and checksum filled in) followed by `body`.
pub fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(sig);
    t.extend_from_slice(&u32::try_from(36 + body.len()).unwrap().to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(b"AXOLTL"); // OEM id
    t.extend_from_slice(b"AXOLOTL "); // OEM table id
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"AXTL"); // creator id
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    fix_checksum(&mut t);
    t
}

pub const OEM: [u8; 6] = *b"AXOLTL";

/// Revision 0 RSDP (20 bytes).
pub fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(&OEM);
    r.push(0); // revision
    r.extend_from_slice(&rsdt.to_le_bytes());
    fix_checksum_at(&mut r, 8, 20);
    r
}

/// Revision 2 RSDP (36 bytes).
pub fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(&OEM);
    r.push(2);
    r.extend_from_slice(&rsdt.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.push(0); // extended checksum
    r.extend_from_slice(&[0; 3]);
    fix_checksum_at(&mut r, 8, 20);
    fix_checksum_at(&mut r, 32, 36);
    r
}

pub fn rsdt(entries: &[u32]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    table(b"RSDT", 1, &body)
}

pub fn xsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    table(b"XSDT", 1, &body)
}

/// MADT from its local APIC address, flags and already-encoded entries.
pub fn madt(lapic: u32, flags: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&lapic.to_le_bytes());
    body.extend_from_slice(&flags.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    table(b"APIC", 4, &body)
}

pub fn lapic(uid: u8, apic_id: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![0, 8, uid, apic_id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

pub fn ioapic(id: u8, address: u32, gsi_base: u32) -> Vec<u8> {
    let mut e = vec![1, 12, id, 0];
    e.extend_from_slice(&address.to_le_bytes());
    e.extend_from_slice(&gsi_base.to_le_bytes());
    e
}

pub fn iso(bus: u8, source: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = vec![2, 10, bus, source];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

pub fn lapic_nmi(uid: u8, flags: u16, lint: u8) -> Vec<u8> {
    let mut e = vec![4, 6, uid];
    e.extend_from_slice(&flags.to_le_bytes());
    e.push(lint);
    e
}

pub fn lapic_override(addr: u64) -> Vec<u8> {
    let mut e = vec![5, 12, 0, 0];
    e.extend_from_slice(&addr.to_le_bytes());
    e
}

pub fn x2apic(x2apic_id: u32, flags: u32, uid: u32) -> Vec<u8> {
    let mut e = vec![9, 16, 0, 0];
    e.extend_from_slice(&x2apic_id.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e
}

/// MCFG from (base, segment, start_bus, end_bus) entries.
pub fn mcfg(entries: &[(u64, u16, u8, u8)]) -> Vec<u8> {
    let mut body = vec![0u8; 8];
    for &(base, seg, start, end) in entries {
        body.extend_from_slice(&base.to_le_bytes());
        body.extend_from_slice(&seg.to_le_bytes());
        body.push(start);
        body.push(end);
        body.extend_from_slice(&[0; 4]);
    }
    table(b"MCFG", 1, &body)
}

/// HPET table with its base in address space `space_id` (QEMU's block id, number 0).
pub fn hpet(space_id: u8, address: u64) -> Vec<u8> {
    hpet_full(0x8086_a201, space_id, address, 0, 0x80, 0)
}

/// HPET table with every field given: event timer block id, base address (space id, address),
/// HPET number, minimum tick and page protection.
pub fn hpet_full(
    block_id: u32,
    space_id: u8,
    address: u64,
    number: u8,
    min_tick: u16,
    protection: u8,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&block_id.to_le_bytes());
    body.extend_from_slice(&[space_id, 64, 0, 0]);
    body.extend_from_slice(&address.to_le_bytes());
    body.push(number);
    body.extend_from_slice(&min_tick.to_le_bytes());
    body.push(protection);
    table(b"HPET", 1, &body)
}

/// FADT of `len` bytes (116 for ACPI 1.0, 276 for 6.x) with the PM timer fields set.
/// `x_pm_tmr` is (space_id, address) for X_PM_TMR_BLK, written only if the table is long enough.
pub fn fadt(len: usize, pm_tmr_blk: u32, flags: u32, x_pm_tmr: Option<(u8, u64)>) -> Vec<u8> {
    let mut body = vec![0u8; len - 36];
    let put = |body: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        body[off - 36..off - 36 + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut body, 76, &pm_tmr_blk.to_le_bytes());
    put(&mut body, 91, &[4]); // PM_TMR_LEN
    put(&mut body, 112, &flags.to_le_bytes());
    if let Some((space, addr)) = x_pm_tmr
        && len >= 220
    {
        put(&mut body, 208, &[space, 32, 0, 3]);
        put(&mut body, 212, &addr.to_le_bytes());
    }
    table(b"FACP", 6, &body)
}

/// Deterministic xorshift64* PRNG for the fuzz loops.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// Random bytes, `min + below(extra)` of them.
    pub fn some_bytes(&mut self, min: usize, extra: u64) -> Vec<u8> {
        let n = min + self.below(extra) as usize;
        self.bytes(n)
    }
}
