//! Parsing of synthetic, well-formed and damaged ACPI tables.

mod common;

use acpi_tables::{
    AcpiError, Cpu, Hpet, IoApic, IrqOverride, MAX_PHYS_ADDR, MAX_TABLE_LEN, MAX_WARNINGS,
    McfgEntry, PmTimer, Polarity, Trigger, Warning, parse,
};
use common::*;

const RSDP: u64 = 0xe_0000;
const RSDT: u64 = 0x1000;
const XSDT: u64 = 0x1_0000_0000;
const MADT: u64 = 0x2000;
const MCFG: u64 = 0x3000;
const FADT: u64 = 0x4000;
const HPET: u64 = 0x5000;
const SSDT: u64 = 0x6000;

const LAPIC: u32 = 0xfee0_0000;
const TMR_VAL_EXT: u32 = 1 << 8;

fn sample_madt() -> Vec<u8> {
    madt(
        LAPIC,
        1,
        &[
            lapic(0, 0, 1),
            lapic(1, 1, 1),
            lapic(2, 2, 0), // disabled, not online capable
            ioapic(2, 0xfec0_0000, 0),
            iso(0, 0, 2, 0),
            iso(0, 9, 9, 0b1111), // level, active low
            lapic_nmi(0xff, 0b0101, 1),
            x2apic(300, 1, 3),
        ],
    )
}

fn sample_tables(mem: &mut Mem) {
    mem.put(MADT, sample_madt())
        .put(
            MCFG,
            mcfg(&[(0xb000_0000, 0, 0, 255), (0xe000_0000, 1, 0, 63)]),
        )
        .put(FADT, fadt(276, 0x608, TMR_VAL_EXT, Some((1, 0x608))))
        .put(HPET, hpet(0, 0xfed0_0000))
        .put(SSDT, table(b"SSDT", 2, &[0xaa; 100]));
}

/// RSDP v1 + RSDT listing every sample table.
fn machine_v1() -> Mem {
    let mut mem = Mem::new();
    sample_tables(&mut mem);
    mem.put(RSDP, rsdp_v1(RSDT as u32)).put(
        RSDT,
        rsdt(&[
            FADT as u32,
            SSDT as u32,
            MADT as u32,
            MCFG as u32,
            HPET as u32,
        ]),
    );
    mem
}

/// RSDP v2 + XSDT (above 4 GiB) listing every sample table; the RSDT lists only the MADT.
fn machine_v2() -> Mem {
    let mut mem = Mem::new();
    sample_tables(&mut mem);
    mem.put(RSDP, rsdp_v2(RSDT as u32, XSDT))
        .put(RSDT, rsdt(&[MADT as u32]))
        .put(XSDT, xsdt(&[FADT, SSDT, MADT, MCFG, HPET]));
    mem
}

fn expected_cpus() -> Vec<Cpu> {
    let cpu = |acpi_uid, apic_id, enabled| Cpu {
        acpi_uid,
        apic_id,
        enabled,
        online_capable: false,
    };
    vec![
        cpu(0, 0, true),
        cpu(1, 1, true),
        cpu(2, 2, false),
        cpu(3, 300, true),
    ]
}

/// The HPET of the sample tables (QEMU's: block id 0x8086a201, three comparators).
fn sample_hpet() -> Hpet {
    Hpet {
        base: 0xfed0_0000,
        number: 0,
        min_tick: 0x80,
        page_protection: 0,
        hardware_rev: 1,
        comparators: 3,
        counter_64bit: true,
        legacy_replacement: true,
        vendor_id: 0x8086,
    }
}

fn check_sample(info: &acpi_tables::AcpiInfo) {
    assert_eq!(info.oem_id, OEM);
    assert_eq!(info.cpus, expected_cpus());
    assert_eq!(
        info.io_apics,
        [IoApic {
            id: 2,
            address: 0xfec0_0000,
            gsi_base: 0
        }]
    );
    assert_eq!(
        info.overrides,
        [
            IrqOverride {
                bus: 0,
                source: 0,
                gsi: 2,
                flags: 0
            },
            IrqOverride {
                bus: 0,
                source: 9,
                gsi: 9,
                flags: 0b1111
            },
        ]
    );
    assert_eq!(info.local_apic_addr, u64::from(LAPIC));
    assert!(info.has_8259);
    assert_eq!(
        info.mcfg,
        [
            McfgEntry {
                base: 0xb000_0000,
                segment: 0,
                start_bus: 0,
                end_bus: 255
            },
            McfgEntry {
                base: 0xe000_0000,
                segment: 1,
                start_bus: 0,
                end_bus: 63
            },
        ]
    );
    assert_eq!(info.hpet, Some(sample_hpet()));
    assert_eq!(
        info.pm_timer,
        Some(PmTimer {
            port: 0x608,
            is_32bit: true
        })
    );
}

#[test]
fn rsdp_v1_with_rsdt() {
    let info = parse(RSDP, &machine_v1()).unwrap();
    assert_eq!(info.revision, 0);
    check_sample(&info);
    assert_eq!(info.warnings, []);
}

#[test]
fn rsdp_v2_with_xsdt_above_4g() {
    let info = parse(RSDP, &machine_v2()).unwrap();
    assert_eq!(info.revision, 2);
    // The RSDT lists only the MADT, so seeing MCFG/HPET/FADT proves the XSDT was used.
    check_sample(&info);
    assert_eq!(info.warnings, []);
}

#[test]
fn tables_above_4g_through_xsdt() {
    let mut mem = Mem::new();
    let madt_hi = 0x7_0000_0000;
    mem.put(RSDP, rsdp_v2(0, XSDT))
        .put(XSDT, xsdt(&[madt_hi]))
        .put(madt_hi, sample_madt());
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.cpus, expected_cpus());
}

#[test]
fn rsdp_v2_with_null_xsdt_uses_rsdt() {
    let mut mem = machine_v1();
    mem.put(RSDP, rsdp_v2(RSDT as u32, 0));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.revision, 2);
    check_sample(&info);
    assert_eq!(info.warnings, []);
}

#[test]
fn xsdt_preferred_over_broken_rsdt() {
    let mut mem = machine_v2();
    mem.put(RSDT, b"garbage".to_vec());
    let info = parse(RSDP, &mem).unwrap();
    check_sample(&info);
}

#[test]
fn unreadable_xsdt_falls_back_to_rsdt() {
    let mut mem = machine_v1();
    mem.put(RSDP, rsdp_v2(RSDT as u32, 0xdead_0000));
    let info = parse(RSDP, &mem).unwrap();
    check_sample(&info);
    assert_eq!(
        info.warnings,
        [Warning::RootFallback {
            error: AcpiError::RootTableUnreadable {
                address: 0xdead_0000
            }
        }]
    );
}

#[test]
fn bad_rsdp_extension_falls_back_to_rsdt() {
    let mut mem = machine_v2();
    mem.get_mut(RSDP)[32] ^= 0x55; // extended checksum only
    mem.put(RSDT, rsdt(&[MADT as u32]));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(
        info.warnings,
        [Warning::RootFallback {
            error: AcpiError::BadRsdpExtendedChecksum
        }]
    );
    assert_eq!(info.cpus, expected_cpus());
    assert_eq!(info.mcfg, []); // only the RSDT's tables
}

#[test]
fn unusable_root_is_an_error() {
    // XSDT unreadable and no RSDT.
    let mut mem = Mem::new();
    mem.put(RSDP, rsdp_v2(0, 0xdead_0000));
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::RootTableUnreadable {
            address: 0xdead_0000
        }
    );

    // Bad extended checksum and no RSDT.
    let mut r = rsdp_v2(0, XSDT);
    r[32] ^= 1;
    mem.put(RSDP, r);
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::BadRsdpExtendedChecksum
    );

    // Bad extended length and no RSDT.
    let mut r = rsdp_v2(0, XSDT);
    r[20] = 8;
    fix_checksum_at(&mut r, 8, 20);
    mem.put(RSDP, r);
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::BadRsdpLength { length: 8 }
    );

    // No root at all.
    mem.put(RSDP, rsdp_v1(0));
    assert_eq!(parse(RSDP, &mem).unwrap_err(), AcpiError::NoRootTable);

    // RSDT unreadable.
    mem.put(RSDP, rsdp_v1(0x9000));
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::RootTableUnreadable { address: 0x9000 }
    );

    // RSDT with the wrong signature.
    mem.put(0x9000, table(b"XSDT", 1, &[]));
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::BadRootTableSignature {
            address: 0x9000,
            signature: *b"XSDT"
        }
    );

    // RSDT with a length below the header size.
    let mut t = rsdt(&[MADT as u32]);
    t[4..8].copy_from_slice(&20u32.to_le_bytes());
    mem.put(0x9000, t);
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::BadRootTableLength {
            address: 0x9000,
            length: 20
        }
    );

    // RSDT whose length runs past readable memory.
    let mut t = rsdt(&[MADT as u32]);
    t[4..8].copy_from_slice(&4096u32.to_le_bytes());
    mem.put(0x9000, t);
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::RootTableUnreadable { address: 0x9000 }
    );
}

#[test]
fn bad_rsdp_is_an_error() {
    let mut mem = machine_v1();
    assert_eq!(
        parse(0x4242, &mem).unwrap_err(),
        AcpiError::RsdpUnreadable { address: 0x4242 }
    );

    let mut r = rsdp_v1(RSDT as u32);
    r[3] = b'X';
    fix_checksum_at(&mut r, 8, 20);
    mem.put(RSDP, r);
    assert_eq!(parse(RSDP, &mem).unwrap_err(), AcpiError::BadRsdpSignature);

    let mut r = rsdp_v1(RSDT as u32);
    r[8] ^= 1;
    mem.put(RSDP, r);
    assert_eq!(parse(RSDP, &mem).unwrap_err(), AcpiError::BadRsdpChecksum);

    // Only 19 bytes readable.
    mem.put(RSDP, rsdp_v1(RSDT as u32)[..19].to_vec());
    assert_eq!(
        parse(RSDP, &mem).unwrap_err(),
        AcpiError::RsdpUnreadable { address: RSDP }
    );
}

#[test]
fn rsdp_at_the_top_of_the_address_space() {
    let mut mem = Mem::new();
    mem.put(u64::MAX - 10, rsdp_v1(RSDT as u32)[..11].to_vec());
    assert_eq!(
        parse(u64::MAX - 10, &mem).unwrap_err(),
        AcpiError::RsdpUnreadable {
            address: u64::MAX - 10
        }
    );
}

#[test]
fn bad_table_checksums_are_warnings() {
    let mut mem = machine_v2();
    for addr in [XSDT, MADT, MCFG, FADT, HPET] {
        break_checksum(mem.get_mut(addr));
    }
    // A table the parser does not use is not checksummed.
    break_checksum(mem.get_mut(SSDT));
    let info = parse(RSDP, &mem).unwrap();
    check_sample(&info);
    let bad = |signature: &[u8; 4], address| Warning::BadChecksum {
        signature: *signature,
        address,
    };
    assert_eq!(
        info.warnings,
        [
            bad(b"XSDT", XSDT),
            bad(b"FACP", FADT),
            bad(b"APIC", MADT),
            bad(b"MCFG", MCFG),
            bad(b"HPET", HPET),
        ]
    );
}

#[test]
fn missing_madt_is_an_error() {
    let mut mem = machine_v1();
    mem.put(RSDT, rsdt(&[FADT as u32, MCFG as u32, HPET as u32]));
    assert_eq!(parse(RSDP, &mem).unwrap_err(), AcpiError::NoMadt);

    // A MADT too short for its fixed fields does not count.
    mem.put(MADT, table(b"APIC", 4, &[0; 4]));
    mem.put(RSDT, rsdt(&[MADT as u32]));
    assert_eq!(parse(RSDP, &mem).unwrap_err(), AcpiError::NoMadt);
}

#[test]
fn unusable_first_madt_lets_a_second_one_be_used() {
    let mut mem = machine_v1();
    mem.put(0x8000, table(b"APIC", 4, &[0; 4]));
    mem.put(RSDT, rsdt(&[0x8000, MADT as u32]));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.cpus, expected_cpus());
    assert_eq!(
        info.warnings,
        [Warning::TableTooShort {
            signature: *b"APIC",
            address: 0x8000,
            length: 40
        }]
    );
}

#[test]
fn duplicate_tables_and_null_entries() {
    let mut mem = machine_v1();
    mem.put(0x8000, madt(LAPIC, 0, &[lapic(7, 7, 1)]));
    mem.put(RSDT, rsdt(&[0, MADT as u32, 0x8000, 0x7777_0000]));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.cpus, expected_cpus());
    assert_eq!(
        info.warnings,
        [
            Warning::NullTableEntry { index: 0 },
            Warning::DuplicateTable {
                signature: *b"APIC",
                address: 0x8000
            },
            Warning::TableUnreadable {
                address: 0x7777_0000
            },
        ]
    );
}

#[test]
fn root_trailing_bytes_are_a_warning() {
    let mut mem = machine_v1();
    let mut body: Vec<u8> = (MADT as u32).to_le_bytes().to_vec();
    body.extend_from_slice(&[1, 2, 3]);
    mem.put(RSDT, table(b"RSDT", 1, &body));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.cpus, expected_cpus());
    assert_eq!(
        info.warnings,
        [Warning::TrailingBytes {
            signature: *b"RSDT",
            address: RSDT,
            count: 3
        }]
    );
}

#[test]
fn table_lengths_are_bounds_checked() {
    let mut mem = machine_v1();
    let mut short = mcfg(&[]);
    short[4..8].copy_from_slice(&35u32.to_le_bytes());
    let mut huge = hpet(0, 0xfed0_0000);
    huge[4..8].copy_from_slice(&(MAX_TABLE_LEN + 1).to_le_bytes());
    let mut past_end = table(b"FACP", 1, &[0; 200]);
    past_end[4..8].copy_from_slice(&300u32.to_le_bytes());
    mem.put(MCFG, short).put(HPET, huge).put(FADT, past_end);
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.mcfg, []);
    assert_eq!(info.hpet, None);
    assert_eq!(info.pm_timer, None);
    assert_eq!(
        info.warnings,
        [
            Warning::TableUnreadable { address: FADT },
            Warning::BadTableLength {
                signature: *b"MCFG",
                address: MCFG,
                length: 35
            },
            Warning::BadTableLength {
                signature: *b"HPET",
                address: HPET,
                length: MAX_TABLE_LEN + 1
            },
        ]
    );
}

#[test]
fn x2apic_duplicating_an_xapic_id_is_dropped() {
    let mut mem = machine_v1();
    mem.put(
        MADT,
        madt(
            LAPIC,
            0,
            &[
                x2apic(1, 1, 1), // before its xAPIC twin
                lapic(0, 0, 1),
                lapic(1, 1, 1),
                x2apic(0, 1, 0), // after its xAPIC twin
                x2apic(256, 1, 2),
            ],
        ),
    );
    let info = parse(RSDP, &mem).unwrap();
    let ids: Vec<u32> = info.cpus.iter().map(|c| c.apic_id).collect();
    assert_eq!(ids, [0, 1, 256]);
    assert_eq!(info.warnings, []);
    assert!(!info.has_8259);
}

#[test]
fn duplicate_apic_ids_within_a_kind_are_warned() {
    let mut mem = machine_v1();
    mem.put(
        MADT,
        madt(
            LAPIC,
            0,
            &[
                lapic(0, 0, 1),
                lapic(1, 0, 1),
                x2apic(300, 1, 2),
                x2apic(300, 1, 3),
            ],
        ),
    );
    let info = parse(RSDP, &mem).unwrap();
    let uids: Vec<u32> = info.cpus.iter().map(|c| c.acpi_uid).collect();
    assert_eq!(uids, [0, 2]);
    assert_eq!(
        info.warnings,
        [
            Warning::DuplicateApicId { apic_id: 0 },
            Warning::DuplicateApicId { apic_id: 300 },
        ]
    );
}

#[test]
fn cpu_flags() {
    let mut mem = machine_v1();
    mem.put(
        MADT,
        madt(
            LAPIC,
            0,
            &[
                lapic(0, 0, 0b01),
                lapic(1, 1, 0b10),
                lapic(2, 2, 0b00),
                x2apic(3, 0b10, 3),
            ],
        ),
    );
    let info = parse(RSDP, &mem).unwrap();
    let flags: Vec<(bool, bool)> = info
        .cpus
        .iter()
        .map(|c| (c.enabled, c.online_capable))
        .collect();
    assert_eq!(
        flags,
        [(true, false), (false, true), (false, false), (false, true)]
    );
}

#[test]
fn local_apic_address_override() {
    let mut mem = machine_v1();
    mem.put(
        MADT,
        madt(LAPIC, 1, &[lapic(0, 0, 1), lapic_override(0x1_fee0_0000)]),
    );
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.local_apic_addr, 0x1_fee0_0000);
}

#[test]
fn override_flags_decode() {
    let o = |flags| IrqOverride {
        bus: 0,
        source: 9,
        gsi: 9,
        flags,
    };
    assert_eq!(o(0).polarity(), Polarity::BusDefault);
    assert_eq!(o(0).trigger(), Trigger::BusDefault);
    assert_eq!(o(0b0001).polarity(), Polarity::ActiveHigh);
    assert_eq!(o(0b0010).polarity(), Polarity::Reserved);
    assert_eq!(o(0b0011).polarity(), Polarity::ActiveLow);
    assert_eq!(o(0b0100).trigger(), Trigger::Edge);
    assert_eq!(o(0b1000).trigger(), Trigger::Reserved);
    assert_eq!(o(0b1100).trigger(), Trigger::Level);
}

/// A MADT whose entries are given as raw bytes, after the 44-byte fixed part.
fn raw_madt(entries: &[u8]) -> Vec<u8> {
    let mut body = LAPIC.to_le_bytes().to_vec();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(entries);
    table(b"APIC", 4, &body)
}

fn parse_madt_bytes(entries: &[u8]) -> acpi_tables::AcpiInfo {
    let mut mem = machine_v1();
    mem.put(MADT, raw_madt(entries));
    parse(RSDP, &mem).unwrap()
}

#[test]
fn madt_entry_of_length_zero_stops_parsing() {
    let mut entries = lapic(0, 0, 1);
    entries.extend_from_slice(&[0, 0]);
    entries.extend_from_slice(&lapic(1, 1, 1));
    let info = parse_madt_bytes(&entries);
    assert_eq!(info.cpus.len(), 1);
    assert_eq!(
        info.warnings,
        [Warning::MadtEntryTruncated {
            offset: 52,
            entry_type: 0,
            length: 0
        }]
    );

    // Length 1 cannot even cover the entry header.
    let info = parse_madt_bytes(&[7, 1, 0, 0]);
    assert_eq!(
        info.warnings,
        [Warning::MadtEntryTruncated {
            offset: 44,
            entry_type: 7,
            length: 1
        }]
    );
}

#[test]
fn madt_entry_past_the_end() {
    let mut entries = lapic(0, 0, 1);
    entries.extend_from_slice(&[1, 12, 5, 0, 0, 0]); // I/O APIC cut short by the table end
    let info = parse_madt_bytes(&entries);
    assert_eq!(info.cpus.len(), 1);
    assert_eq!(info.io_apics, []);
    assert_eq!(
        info.warnings,
        [Warning::MadtEntryTruncated {
            offset: 52,
            entry_type: 1,
            length: 12
        }]
    );

    // A single dangling byte cannot form an entry header.
    let mut entries = lapic(0, 0, 1);
    entries.push(0);
    let info = parse_madt_bytes(&entries);
    assert_eq!(info.cpus.len(), 1);
    assert_eq!(
        info.warnings,
        [Warning::TrailingBytes {
            signature: *b"APIC",
            address: MADT,
            count: 1
        }]
    );
}

#[test]
fn madt_entries_too_short_or_unknown_are_skipped() {
    let mut entries = Vec::new();
    entries.extend_from_slice(&[0, 4, 9, 9]); // local APIC, 4 bytes instead of 8
    entries.extend_from_slice(&[9, 12, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]); // x2APIC, no UID
    entries.extend_from_slice(&[0x42, 5, 1, 2, 3]); // unknown type
    entries.extend_from_slice(&[0xb, 2]); // GICC: not an x86 type
    entries.extend_from_slice(&lapic_nmi(0xff, 5, 1)); // known, ignored
    entries.extend_from_slice(&lapic(1, 1, 1));
    let mut long = lapic(2, 2, 1); // longer than required: extra bytes ignored
    long[1] = 10;
    long.extend_from_slice(&[0xee, 0xee]);
    entries.extend_from_slice(&long);
    let info = parse_madt_bytes(&entries);
    let ids: Vec<u32> = info.cpus.iter().map(|c| c.apic_id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(
        info.warnings,
        [
            Warning::MadtEntryTooShort {
                offset: 44,
                entry_type: 0,
                length: 4
            },
            Warning::MadtEntryTooShort {
                offset: 48,
                entry_type: 9,
                length: 12
            },
            Warning::UnknownMadtEntry {
                offset: 60,
                entry_type: 0x42
            },
            Warning::UnknownMadtEntry {
                offset: 65,
                entry_type: 0xb
            },
        ]
    );
}

#[test]
fn mcfg_edge_cases() {
    let mut mem = machine_v1();
    let mut t = mcfg(&[(0xb000_0000, 0, 0, 255), (0xc000_0000, 2, 10, 5)]);
    t.extend_from_slice(&[0; 5]);
    let len = u32::try_from(t.len()).unwrap();
    t[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut t);
    mem.put(MCFG, t);
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.mcfg.len(), 1);
    assert_eq!(
        info.warnings,
        [
            Warning::TrailingBytes {
                signature: *b"MCFG",
                address: MCFG,
                count: 5
            },
            Warning::BadMcfgEntry {
                segment: 2,
                start_bus: 10,
                end_bus: 5
            },
        ]
    );
}

#[test]
fn absent_optional_tables() {
    let mut mem = machine_v1();
    mem.put(RSDT, rsdt(&[MADT as u32]));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.mcfg, []);
    assert_eq!(info.hpet, None);
    assert_eq!(info.pm_timer, None);
    assert_eq!(info.warnings, []);
}

#[test]
fn hpet_address_checks() {
    let mut mem = machine_v1();
    mem.put(HPET, hpet(1, 0xfed0_0000));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet, None);
    assert_eq!(
        info.warnings,
        [Warning::BadHpetAddress {
            space_id: 1,
            address: 0xfed0_0000
        }]
    );

    // Null, misaligned, or with the register block not below the 52-bit physical limit (and
    // one where base + block length would wrap around).
    for address in [
        0,
        0xfed0_0004,
        MAX_PHYS_ADDR,
        MAX_PHYS_ADDR - 0x3f8,
        u64::MAX - 7,
    ] {
        mem.put(HPET, hpet(0, address));
        let info = parse(RSDP, &mem).unwrap();
        assert_eq!(info.hpet, None, "{address:#x}");
        assert_eq!(
            info.warnings,
            [Warning::BadHpetAddress {
                space_id: 0,
                address
            }],
            "{address:#x}"
        );
    }

    // The highest block that fits is fine.
    mem.put(HPET, hpet(0, MAX_PHYS_ADDR - 0x400));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet.map(|h| h.base), Some(MAX_PHYS_ADDR - 0x400));
    assert_eq!(info.warnings, []);
}

#[test]
fn hpet_fields_are_decoded() {
    let mut mem = machine_v1();
    // Revision 7, 32 comparators, 32-bit counter, no legacy routing, vendor 0x1022; HPET number
    // 2, minimum tick 0x3739, 4 KiB page protection.
    mem.put(HPET, hpet_full(0x1022_1f07, 0, 0xfed8_0000, 2, 0x3739, 1));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(
        info.hpet,
        Some(Hpet {
            base: 0xfed8_0000,
            number: 2,
            min_tick: 0x3739,
            page_protection: 1,
            hardware_rev: 7,
            comparators: 32,
            counter_64bit: false,
            legacy_replacement: false,
            vendor_id: 0x1022,
        })
    );
    assert_eq!(info.warnings, []);
}

#[test]
fn hpet_bad_checksum_is_a_warning_and_the_table_is_used() {
    let mut mem = machine_v1();
    break_checksum(mem.get_mut(HPET));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet, Some(sample_hpet()));
    assert_eq!(
        info.warnings,
        [Warning::BadChecksum {
            signature: *b"HPET",
            address: HPET
        }]
    );
}

#[test]
fn short_and_truncated_hpet_tables_are_skipped() {
    // One byte short of the page protection field.
    let mut mem = machine_v1();
    let mut short = hpet(0, 0xfed0_0000);
    short.truncate(55);
    short[4..8].copy_from_slice(&55u32.to_le_bytes());
    fix_checksum(&mut short);
    mem.put(HPET, short);
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet, None);
    assert_eq!(
        info.warnings,
        [Warning::TableTooShort {
            signature: *b"HPET",
            address: HPET,
            length: 55
        }]
    );

    // Only the header: too short as well.
    mem.put(HPET, table(b"HPET", 1, &[]));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet, None);
    assert_eq!(
        info.warnings,
        [Warning::TableTooShort {
            signature: *b"HPET",
            address: HPET,
            length: 36
        }]
    );

    // The length is right but memory ends inside the table.
    let mut cut = hpet(0, 0xfed0_0000);
    cut.truncate(50);
    mem.put(HPET, cut);
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet, None);
    assert_eq!(info.warnings, [Warning::TableUnreadable { address: HPET }]);

    // Longer than needed (a later revision's fields): fine.
    let mut long = hpet(0, 0xfed0_0000);
    long.extend_from_slice(&[0xee; 8]);
    long[4..8].copy_from_slice(&64u32.to_le_bytes());
    fix_checksum(&mut long);
    mem.put(HPET, long);
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet, Some(sample_hpet()));
    assert_eq!(info.warnings, []);
}

#[test]
fn second_hpet_is_ignored_unless_the_first_is_unusable() {
    const HPET2: u64 = 0x7000;
    let mut mem = machine_v1();
    mem.put(HPET2, hpet(0, 0xfed0_1000));
    mem.put(RSDT, rsdt(&[MADT as u32, HPET as u32, HPET2 as u32]));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet.map(|h| h.base), Some(0xfed0_0000));
    assert_eq!(
        info.warnings,
        [Warning::DuplicateTable {
            signature: *b"HPET",
            address: HPET2
        }]
    );

    // A first HPET with an unusable address does not hide a good second one.
    mem.put(HPET, hpet(0, 0));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.hpet.map(|h| h.base), Some(0xfed0_1000));
    assert_eq!(
        info.warnings,
        [Warning::BadHpetAddress {
            space_id: 0,
            address: 0
        }]
    );
}

fn pm_timer_of(fadt_table: Vec<u8>) -> (Option<PmTimer>, Vec<Warning>) {
    let mut mem = machine_v1();
    mem.put(FADT, fadt_table);
    let info = parse(RSDP, &mem).unwrap();
    (info.pm_timer, info.warnings)
}

#[test]
fn fadt_pm_timer() {
    let timer = |port, is_32bit| Some(PmTimer { port, is_32bit });

    // X_PM_TMR_BLK preferred over PM_TMR_BLK.
    assert_eq!(
        pm_timer_of(fadt(276, 0x408, 0, Some((1, 0x608)))),
        (timer(0x608, false), vec![])
    );
    // X_PM_TMR_BLK empty: PM_TMR_BLK.
    assert_eq!(
        pm_timer_of(fadt(276, 0x408, TMR_VAL_EXT, None)),
        (timer(0x408, true), vec![])
    );
    // ACPI 1.0 FADT (116 bytes): only PM_TMR_BLK exists.
    assert_eq!(
        pm_timer_of(fadt(116, 0x408, TMR_VAL_EXT, None)),
        (timer(0x408, true), vec![])
    );
    // X_PM_TMR_BLK in memory space: warning, fall back to PM_TMR_BLK.
    assert_eq!(
        pm_timer_of(fadt(276, 0x408, 0, Some((0, 0xfed0_0000)))),
        (
            timer(0x408, false),
            vec![Warning::PmTimerUnusable {
                space_id: 0,
                address: 0xfed0_0000
            }]
        )
    );
    // X_PM_TMR_BLK above the I/O port range.
    assert_eq!(
        pm_timer_of(fadt(276, 0, 0, Some((1, 0x1_0000)))),
        (
            None,
            vec![Warning::PmTimerUnusable {
                space_id: 1,
                address: 0x1_0000
            }]
        )
    );
    // Legacy block above the I/O port range.
    assert_eq!(
        pm_timer_of(fadt(116, 0x12_0000, 0, None)),
        (
            None,
            vec![Warning::PmTimerUnusable {
                space_id: 1,
                address: 0x12_0000
            }]
        )
    );
    // No timer at all.
    assert_eq!(pm_timer_of(fadt(276, 0, 0, None)), (None, vec![]));
    // Hardware-reduced ACPI: no PM timer whatever the fields say.
    assert_eq!(
        pm_timer_of(fadt(276, 0x408, 1 << 20, Some((1, 0x608)))),
        (None, vec![])
    );
    // FADT too short for its flags.
    assert_eq!(
        pm_timer_of(table(b"FACP", 1, &[0; 60])),
        (
            None,
            vec![Warning::TableTooShort {
                signature: *b"FACP",
                address: FADT,
                length: 96
            }]
        )
    );
}

#[test]
fn warnings_are_capped() {
    let mut mem = machine_v1();
    let mut entries = vec![MADT as u32];
    entries.extend(std::iter::repeat_n(0, 200));
    mem.put(RSDT, rsdt(&entries));
    let info = parse(RSDP, &mem).unwrap();
    assert_eq!(info.warnings.len(), MAX_WARNINGS + 1);
    assert_eq!(info.warnings.last(), Some(&Warning::TooManyWarnings));
    assert_eq!(info.warnings[0], Warning::NullTableEntry { index: 1 });
}

#[test]
fn display_messages() {
    let err = AcpiError::BadRootTableSignature {
        address: 0x1000,
        signature: [b'R', 0, b'D', 0xff],
    };
    assert_eq!(
        err.to_string(),
        "root table at 0x1000 has signature \"R\\x00D\\xff\""
    );
    assert_eq!(AcpiError::NoMadt.to_string(), "no usable MADT");
    let w = Warning::BadChecksum {
        signature: *b"APIC",
        address: 0x2000,
    };
    assert_eq!(w.to_string(), "APIC at 0x2000: bad checksum (used anyway)");
    let w = Warning::RootFallback {
        error: AcpiError::BadRsdpExtendedChecksum,
    };
    assert_eq!(
        w.to_string(),
        "falling back to the RSDT: RSDP extended checksum is wrong"
    );
}

#[test]
fn works_through_dyn_phys_memory() {
    let mem = machine_v1();
    let dynamic: &dyn acpi_tables::PhysMemory = &mem;
    check_sample(&parse(RSDP, dynamic).unwrap());
}
