//! The state region handed over at restart: loading never panics, and whatever loads saves and
//! loads back to the same rules. When the first byte is odd, the target rewrites the CRC of
//! each slot before loading, so that the fuzzer gets past the checksum to the record checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf::state::{self, HEADER_LEN, IMAGE_MAX, RECORD_LEN, REGION_LEN, Restored};

/// Makes the CRC of the image at the start of `slot` match its declared length, if it fits.
fn reseal(slot: &mut [u8]) {
    let count = usize::from(u16::from_le_bytes([slot[6], slot[7]]));
    let len = HEADER_LEN + RECORD_LEN * count;
    if len <= slot.len() {
        slot[12..16].fill(0);
        let crc = state::crc32(&slot[..len]);
        slot[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let _ = state::load(data);
    let mut region = vec![0u8; REGION_LEN];
    let n = data.len().min(REGION_LEN);
    region[..n].copy_from_slice(&data[..n]);
    if mode & 1 == 1 {
        let (slot0, slot1) = region.split_at_mut(IMAGE_MAX);
        reseal(slot0);
        reseal(slot1);
    }
    if let Ok(Restored::Loaded { rules, .. }) = state::load(&region) {
        assert!(rules.rules().iter().all(|r| r.check().is_ok()));
        state::save(&mut region, &rules).unwrap();
        match state::load(&region) {
            Ok(Restored::Loaded {
                rules: again,
                discarded: None,
                ..
            }) => {
                assert_eq!(again.rules(), rules.rules())
            }
            other => panic!("{other:?}"),
        }
    }
});
