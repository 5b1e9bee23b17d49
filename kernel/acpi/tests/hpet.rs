//! Decoding of the HPET's capabilities register and tick conversions.

use acpi_tables::hpet::{Capabilities, CapabilitiesError, MAX_PERIOD_FS};

/// QEMU's HPET: revision 1, 3 timers, 64-bit counter, legacy routing, vendor 8086, 10 ns.
const QEMU_LOW: u32 = 0x8086_a201;
const QEMU_PERIOD: u32 = 10_000_000;
/// A chipset HPET at 14.31818 MHz.
const CHIPSET_PERIOD: u32 = 69_841_279;

#[test]
fn qemu_capabilities() {
    let c = Capabilities::decode(QEMU_LOW, QEMU_PERIOD).unwrap();
    assert_eq!(
        c,
        Capabilities {
            period_fs: QEMU_PERIOD,
            hardware_rev: 1,
            comparators: 3,
            counter_64bit: true,
            legacy_replacement: true,
            vendor_id: 0x8086,
        }
    );
    assert_eq!(c.frequency_hz(), 100_000_000);
    assert_eq!(c.ticks_in_ns(10_000_000), 1_000_000);
    assert_eq!(c.ns_in_ticks(1_000_000), 10_000_000);
}

#[test]
fn chipset_frequency_and_rounding() {
    let c = Capabilities::decode(0x8086_a701, CHIPSET_PERIOD).unwrap();
    assert_eq!(c.frequency_hz(), 14_318_179);
    assert_eq!(c.comparators, 8);
    // 10 ms is 143181.8 ticks: a wait rounds up, a measure rounds down.
    assert_eq!(c.ticks_in_ns(10_000_000), 143_182);
    assert_eq!(c.ns_in_ticks(143_182), 10_000_014);
    assert_eq!(c.ns_in_ticks(143_181), 9_999_944);
    assert_eq!(c.ticks_in_ns(0), 0);
    assert_eq!(c.ns_in_ticks(0), 0);
}

#[test]
fn period_limits() {
    assert_eq!(
        Capabilities::decode(QEMU_LOW, 0),
        Err(CapabilitiesError::ZeroPeriod)
    );
    assert!(Capabilities::decode(QEMU_LOW, 1).is_ok());
    assert!(Capabilities::decode(QEMU_LOW, MAX_PERIOD_FS).is_ok());
    assert_eq!(
        Capabilities::decode(QEMU_LOW, MAX_PERIOD_FS + 1),
        Err(CapabilitiesError::PeriodTooLong {
            period_fs: MAX_PERIOD_FS + 1
        })
    );
    // Nothing at the address: all ones.
    assert_eq!(
        Capabilities::decode(u32::MAX, u32::MAX),
        Err(CapabilitiesError::NoDevice)
    );
    // All ones in the period alone is just too long.
    assert_eq!(
        Capabilities::decode(QEMU_LOW, u32::MAX),
        Err(CapabilitiesError::PeriodTooLong {
            period_fs: u32::MAX
        })
    );
}

#[test]
fn conversions_do_not_overflow() {
    let fast = Capabilities::decode(QEMU_LOW, 1).unwrap();
    assert_eq!(fast.frequency_hz(), 1_000_000_000_000_000);
    assert_eq!(fast.ticks_in_ns(u64::MAX), u64::MAX);
    let slow = Capabilities::decode(QEMU_LOW, MAX_PERIOD_FS).unwrap();
    assert_eq!(slow.frequency_hz(), 10_000_000);
    assert_eq!(slow.ns_in_ticks(u64::MAX), u64::MAX);
    assert_eq!(slow.ticks_in_ns(u64::MAX), u64::MAX.div_ceil(100));
}

#[test]
fn every_register_value_decodes_without_panicking() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (low, high) = (x as u32, (x >> 32) as u32);
        match Capabilities::decode(low, high) {
            Ok(c) => {
                assert!((1..=MAX_PERIOD_FS).contains(&c.period_fs));
                assert!((1..=32).contains(&c.comparators));
                assert!(c.frequency_hz() >= 10_000_000);
                let _ = (c.ticks_in_ns(x), c.ns_in_ticks(x));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn error_messages() {
    assert_eq!(
        CapabilitiesError::ZeroPeriod.to_string(),
        "counter period is 0 fs"
    );
    assert_eq!(
        CapabilitiesError::PeriodTooLong {
            period_fs: 100_000_001
        }
        .to_string(),
        "counter period 100000001 fs is longer than the 100000000 fs (100 ns) the specification allows"
    );
}
