//! Deterministic fuzz loops: random and randomly damaged tables must never make the parser
//! panic, and whatever it returns must stay within its documented bounds.

mod common;

use acpi_tables::{AcpiInfo, MAX_PHYS_ADDR, MAX_WARNINGS, PhysMemory, hpet, parse};
use common::*;

const RSDP: u64 = 0xe_0000;

/// Invariants any successful parse must hold.
fn check(info: &AcpiInfo) {
    assert!(info.warnings.len() <= MAX_WARNINGS + 1);
    for m in &info.mcfg {
        assert!(m.start_bus <= m.end_bus);
    }
    // A reported HPET's register block can be mapped as it is.
    if let Some(h) = &info.hpet {
        assert!(h.base != 0 && h.base.is_multiple_of(8));
        assert!(h.base + hpet::REGISTER_BLOCK_LEN <= MAX_PHYS_ADDR);
        assert!((1..=32).contains(&h.comparators));
    }
    // No two CPUs share an APIC id.
    let mut ids: Vec<u32> = info.cpus.iter().map(|c| c.apic_id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before);
    // Formatting never panics either.
    for w in &info.warnings {
        assert!(!w.to_string().is_empty());
    }
}

fn run(rsdp: u64, mem: &impl PhysMemory) {
    match parse(rsdp, mem) {
        Ok(info) => check(&info),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Random bytes where the RSDP should be, sometimes with a valid signature and checksum, and
/// random bytes at whatever addresses it then points to.
#[test]
fn random_rsdp() {
    let mut rng = Rng::new(0x5eed_0001);
    for _ in 0..4000 {
        let mut mem = Mem::new();
        let mut r = rng.some_bytes(0, 48);
        if r.len() >= 20 && rng.chance(2) {
            r[..8].copy_from_slice(b"RSD PTR ");
            r[15] = rng.below(4) as u8;
            fix_checksum_at(&mut r, 8, 20);
            if r.len() >= 36 && rng.chance(2) {
                r[20..24].copy_from_slice(&(rng.below(40) as u32).to_le_bytes());
                let len = r.len();
                fix_checksum_at(&mut r, 32, len);
            }
        }
        // Memory at the RSDT/XSDT addresses, random too.
        if r.len() >= 20 {
            let rsdt = u32::from_le_bytes(r[16..20].try_into().unwrap());
            let n = rng.below(80) as usize;
            mem.put(rsdt.into(), rng.bytes(n));
        }
        if r.len() >= 32 {
            let xsdt = u64::from_le_bytes(r[24..32].try_into().unwrap());
            let n = rng.below(80) as usize;
            mem.put(xsdt, rng.bytes(n));
        }
        mem.put(RSDP, r);
        run(RSDP, &mem);
    }
}

/// A random but well-formed machine: v1 or v2 root, a MADT with random entries, sometimes an
/// MCFG, HPET and FADT, and random other tables.
fn random_machine(rng: &mut Rng) -> Mem {
    let mut mem = Mem::new();
    let mut tables: Vec<u64> = Vec::new();
    let mut next = 0x1_0000u64;
    let mut place = |mem: &mut Mem, bytes: Vec<u8>| {
        let addr = next;
        next += 0x1_0000;
        mem.put(addr, bytes);
        addr
    };

    let mut entries = Vec::new();
    for _ in 0..rng.below(24) {
        entries.push(match rng.below(8) {
            0 | 1 => lapic(rng.byte(), rng.below(8) as u8, rng.below(4) as u32),
            2 => x2apic(
                rng.below(300) as u32,
                rng.below(4) as u32,
                rng.below(64) as u32,
            ),
            3 => ioapic(rng.byte(), rng.next() as u32, rng.below(64) as u32),
            4 => iso(
                0,
                rng.below(16) as u8,
                rng.below(24) as u32,
                rng.below(16) as u16,
            ),
            5 => lapic_override(rng.next()),
            6 => lapic_nmi(rng.byte(), rng.below(16) as u16, rng.below(2) as u8),
            _ => {
                let len = rng.below(20) as usize;
                let mut e = rng.bytes(len.max(2));
                e[1] = len as u8;
                e
            }
        });
    }
    tables.push(place(
        &mut mem,
        madt(rng.next() as u32, rng.below(2) as u32, &entries),
    ));
    if rng.chance(2) {
        let n = rng.below(4);
        let e: Vec<_> = (0..n)
            .map(|_| (rng.next(), rng.below(4) as u16, rng.byte(), rng.byte()))
            .collect();
        tables.push(place(&mut mem, mcfg(&e)));
    }
    if rng.chance(2) {
        let address = match rng.below(4) {
            0 => rng.next(),
            1 => 0xfed0_0000 + (rng.below(0x800) << 3),
            2 => MAX_PHYS_ADDR - rng.below(0x1000),
            _ => rng.below(1 << 40),
        };
        let t = hpet_full(
            rng.next() as u32,
            rng.below(2) as u8,
            address,
            rng.byte(),
            rng.next() as u16,
            rng.byte(),
        );
        tables.push(place(&mut mem, t));
    }
    if rng.chance(2) {
        let len = [116, 244, 276][rng.below(3) as usize];
        let x = rng
            .chance(2)
            .then(|| (rng.below(3) as u8, rng.below(0x2_0000)));
        let t = fadt(len, rng.below(0x1_0000) as u32, rng.next() as u32, x);
        tables.push(place(&mut mem, t));
    }
    for _ in 0..rng.below(3) {
        let sig: [u8; 4] = rng.bytes(4).try_into().unwrap();
        let body = rng.some_bytes(0, 64);
        tables.push(place(&mut mem, table(&sig, 1, &body)));
    }
    // Shuffle the root order.
    for i in (1..tables.len()).rev() {
        tables.swap(i, rng.below(i as u64 + 1) as usize);
    }

    if rng.chance(2) {
        let rsdt_addr = place(&mut mem, Vec::new());
        let t: Vec<u32> = tables.iter().map(|&a| a as u32).collect();
        mem.put(rsdt_addr, rsdt(&t));
        mem.put(RSDP, rsdp_v1(rsdt_addr as u32));
    } else {
        let xsdt_addr = place(&mut mem, Vec::new());
        mem.put(xsdt_addr, xsdt(&tables));
        mem.put(RSDP, rsdp_v2(0, xsdt_addr));
    }
    mem
}

/// Damages a machine: flipped/overwritten bytes, truncated or extended regions, bogus lengths,
/// then sometimes fixes the checksums so the damage reaches the table parsers.
fn mutate(rng: &mut Rng, mem: &mut Mem) {
    let addrs: Vec<u64> = mem.regions.keys().copied().collect();
    for _ in 0..1 + rng.below(8) {
        let addr = addrs[rng.below(addrs.len() as u64) as usize];
        let region = mem.get_mut(addr);
        if region.is_empty() {
            continue;
        }
        let at = rng.below(region.len() as u64) as usize;
        match rng.below(6) {
            0 => region[at] ^= 1 << rng.below(8),
            1 => region[at] = [0, 0xff, 1, 2][rng.below(4) as usize],
            2 => region[at] = rng.byte(),
            3 => region.truncate(at),
            4 => {
                let n = rng.below(64) as usize;
                region.extend(rng.bytes(n));
            }
            _ => {
                // Table length field.
                if region.len() >= 8 && addr != RSDP {
                    let len = match rng.below(4) {
                        0 => rng.below(64) as u32,
                        1 => region.len() as u32 + rng.below(16) as u32,
                        2 => region.len().saturating_sub(rng.below(16) as usize) as u32,
                        _ => rng.next() as u32,
                    };
                    region[4..8].copy_from_slice(&len.to_le_bytes());
                }
            }
        }
    }
    if rng.chance(2) {
        for (&addr, region) in mem.regions.iter_mut() {
            if addr != RSDP && region.len() >= 36 {
                fix_checksum(region);
            }
        }
    }
}

#[test]
fn random_machines_parse() {
    let mut rng = Rng::new(0x5eed_0002);
    let mut ok = 0;
    for _ in 0..2000 {
        let mem = random_machine(&mut rng);
        let info = parse(RSDP, &mem).expect("a well-formed machine parses");
        check(&info);
        ok += 1;
    }
    assert_eq!(ok, 2000);
}

#[test]
fn mutated_machines_never_panic() {
    let mut rng = Rng::new(0x5eed_0003);
    let mut parsed = 0;
    for _ in 0..5000 {
        let mut mem = random_machine(&mut rng);
        mutate(&mut rng, &mut mem);
        if let Ok(info) = parse(RSDP, &mem) {
            check(&info);
            parsed += 1;
        }
    }
    // The damage should not make everything fail, or the loop tests nothing deep.
    assert!(parsed > 1000, "only {parsed} mutated machines parsed");
}

/// A MADT with a valid header and checksum whose entry area is pure noise.
#[test]
fn random_madt_entries_never_panic() {
    let mut rng = Rng::new(0x5eed_0004);
    for _ in 0..4000 {
        let mut body = rng.some_bytes(8, 300);
        // Bias towards known entry types so the field parsers get exercised.
        let mut off = 8;
        while off + 1 < body.len() && rng.chance(4) {
            body[off] = [0, 1, 2, 5, 9][rng.below(5) as usize];
            let len = rng.below(20) as u8;
            body[off + 1] = len;
            off += usize::from(len.max(2));
        }
        let mut mem = Mem::new();
        mem.put(0x2000, table(b"APIC", 4, &body))
            .put(0x1000, rsdt(&[0x2000]))
            .put(RSDP, rsdp_v1(0x1000));
        let info = parse(RSDP, &mem).expect("MADT with a valid header parses");
        check(&info);
    }
}

/// Memory that is readable everywhere and holds pseudo-random bytes, behind a valid RSDP and
/// root table whose entries point at random addresses (some near the top of the address space).
struct NoiseMem {
    seed: u64,
    fixed: Mem,
}

impl PhysMemory for NoiseMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if self.fixed.read(addr, buf) {
            return true;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let mut x =
                (addr.wrapping_add(i as u64) ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            x ^= x >> 29;
            *b = x as u8;
        }
        true
    }
}

#[test]
fn noise_memory_never_panics() {
    let mut rng = Rng::new(0x5eed_0005);
    for _ in 0..2000 {
        let mut fixed = Mem::new();
        let entries: Vec<u64> = (0..rng.below(12))
            .map(|_| match rng.below(3) {
                0 => rng.next(),
                1 => u64::MAX - rng.below(64),
                _ => rng.below(1 << 32),
            })
            .collect();
        // Some entries point at noise carrying a plausible header.
        for &e in entries.iter().take(3) {
            if e < u64::MAX - 0x1000 && rng.chance(2) {
                let sig = [b"APIC", b"MCFG", b"HPET", b"FACP"][rng.below(4) as usize];
                let mut t = table(sig, 1, &rng.some_bytes(0, 300));
                if rng.chance(2) {
                    fix_checksum(&mut t);
                } else {
                    break_checksum(&mut t);
                }
                fixed.put(e, t);
            }
        }
        fixed
            .put(0x1000, xsdt(&entries))
            .put(RSDP, rsdp_v2(rng.next() as u32, 0x1000));
        let mem = NoiseMem {
            seed: rng.next(),
            fixed,
        };
        run(RSDP, &mem);
    }
}
