//! The rule set kept across restarts of pf (DESIGN.md §6): a compact image of fixed layout,
//! with a version and a CRC-32, kept twice in the server's state region so that a save torn by
//! a crash never destroys the last good copy.
//!
//! ## Layout (all multi-byte fields little-endian, addresses in network order)
//! The state region holds two image slots of [`IMAGE_MAX`] bytes each, slot 0 at offset 0 and
//! slot 1 at offset [`IMAGE_MAX`] ([`REGION_LEN`] bytes in all, under a page). One image:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `AXPF` ([`MAGIC`]) |
//! | 4 | 2 | format version, [`VERSION`] |
//! | 6 | 2 | rule count `0..=64` |
//! | 8 | 4 | sequence: 1 for the first save, one more for each save after (wrapping) |
//! | 12 | 4 | CRC-32 (IEEE, as zlib) of bytes `0..16 + 24 * count` with this field taken as zero |
//! | 16 | 24 × count | the rules in order, one record each |
//!
//! One rule record ([`RECORD_LEN`] bytes, also usable as the rule's wire form):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | verdict: 0 allow, 1 deny |
//! | 1 | 1 | direction: 0 any, 1 in, 2 out |
//! | 2 | 1 | protocol: 0 any, 1 icmp, 6 tcp, 17 udp |
//! | 3 | 1 | flags: bit 0 source ports present, bit 1 destination ports present, others 0 |
//! | 4 | 4 | source network |
//! | 8 | 4 | destination network |
//! | 12 | 1 | source prefix length `0..=32` |
//! | 13 | 1 | destination prefix length `0..=32` |
//! | 14 | 2 | reserved, 0 |
//! | 16 | 2 + 2 | source ports, first and last (0 when absent) |
//! | 20 | 2 + 2 | destination ports, first and last (0 when absent) |
//!
//! Loading checks everything: magic, version, count, checksum, and every field of every record
//! (known codes, zero reserved bits, no host bits past the prefix, no reversed range, ports only
//! with tcp or udp, zero ports when absent), so only an image [`save`] could have written loads.
//! Hit and verdict counters are not kept: they count what this instance of pf saw, and start at
//! zero after a restart.
//!
//! ## Saving and loading
//! [`save`] writes the new image into the slot that does not hold the newest valid image, with
//! the next sequence number; a crash in the middle leaves a slot that fails its checksum and
//! the previous image intact. [`load`] takes the valid image with the newest sequence.
//!
//! The kernel hands a new state region over zero-filled: a slot whose 16 header bytes are all
//! zero is blank, and a region with two blank slots is [`Restored::Fresh`] (first start: the
//! empty rule set, quietly). A region with no valid image but a slot that is not blank is
//! corrupt: [`load`] returns the error, and the server starts from the empty rule set — the
//! default, allow — and says so loudly in its log. It does not fail closed: a corrupt region
//! would then cut every connection until an operator re-entered the rules, while pf with no
//! rules is what a fresh boot runs anyway; the loud log line is what gets the rules re-entered.
//! The next save then writes a valid image over the damage.

use core::fmt;
use core::net::Ipv4Addr;

use crate::rule::{Direction, Ipv4Prefix, PortRange, Proto, Rule, RuleError, Verdict};
use crate::ruleset::{MAX_RULES, RuleSet};

/// The first four bytes of an image.
pub const MAGIC: [u8; 4] = *b"AXPF";
/// The version of the layout this crate writes and reads.
pub const VERSION: u16 = 1;
/// The length of an image header.
pub const HEADER_LEN: usize = 16;
/// The length of one rule record.
pub const RECORD_LEN: usize = 24;
/// The length of the largest image, with [`MAX_RULES`] rules: one slot of the region.
pub const IMAGE_MAX: usize = HEADER_LEN + RECORD_LEN * MAX_RULES;
/// The length of the state region [`save`] and [`load`] use: two slots.
pub const REGION_LEN: usize = 2 * IMAGE_MAX;

const FLAG_SRC_PORTS: u8 = 1 << 0;
const FLAG_DST_PORTS: u8 = 1 << 1;

/// What is wrong in one rule record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The verdict byte is not 0 or 1.
    Verdict(u8),
    /// The direction byte is not 0, 1 or 2.
    Direction(u8),
    /// The protocol byte is not 0, 1, 6 or 17.
    Proto(u8),
    /// Unknown flag bits are set.
    Flags(u8),
    /// The reserved bytes are not zero.
    Reserved,
    /// A prefix length above 32 or host bits set.
    Prefix(RuleError),
    /// A reversed port range.
    ReversedPorts,
    /// Ports on a rule whose protocol is not tcp or udp.
    PortWithoutTcpUdp,
    /// Port bytes that are not zero although their flag says absent.
    StrayPorts,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Verdict(b) => write!(f, "bad verdict code {b}"),
            RecordError::Direction(b) => write!(f, "bad direction code {b}"),
            RecordError::Proto(b) => write!(f, "bad protocol code {b}"),
            RecordError::Flags(b) => write!(f, "unknown flags {b:#04x}"),
            RecordError::Reserved => f.write_str("reserved bytes not zero"),
            RecordError::Prefix(e) => write!(f, "bad prefix: {e}"),
            RecordError::ReversedPorts => f.write_str("reversed port range"),
            RecordError::PortWithoutTcpUdp => f.write_str("ports without tcp or udp"),
            RecordError::StrayPorts => f.write_str("port bytes set for absent ports"),
        }
    }
}

/// Why an image or the state region could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The buffer is shorter than needed (`need` bytes).
    TooSmall {
        /// The bytes needed.
        need: usize,
    },
    /// The image does not start with [`MAGIC`].
    BadMagic,
    /// The image is of a version this crate does not read.
    BadVersion(u16),
    /// The rule count is above [`MAX_RULES`].
    BadCount(u16),
    /// The CRC-32 does not match: a torn write or damage.
    BadChecksum,
    /// A rule record is invalid although the checksum matched.
    BadRecord {
        /// The record's index, from 0 (rule number `index + 1`).
        index: usize,
        /// What is wrong.
        error: RecordError,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::TooSmall { need } => {
                write!(f, "state buffer too small ({need} bytes needed)")
            }
            StateError::BadMagic => f.write_str("bad magic"),
            StateError::BadVersion(v) => write!(f, "unknown format version {v}"),
            StateError::BadCount(n) => write!(f, "rule count {n} above {MAX_RULES}"),
            StateError::BadChecksum => f.write_str("checksum mismatch"),
            StateError::BadRecord { index, error } => write!(f, "rule record {index}: {error}"),
        }
    }
}

/// The record of `rule` (the layout is in the module documentation). `rule` should be valid
/// ([`Rule::check`]); an invalid one encodes, and [`decode_rule`] refuses it.
pub fn encode_rule(rule: &Rule) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[0] = match rule.verdict {
        Verdict::Allow => 0,
        Verdict::Deny => 1,
    };
    r[1] = match rule.dir {
        Direction::Any => 0,
        Direction::In => 1,
        Direction::Out => 2,
    };
    r[2] = match rule.proto {
        Proto::Any => 0,
        Proto::Icmp => 1,
        Proto::Tcp => 6,
        Proto::Udp => 17,
    };
    r[4..8].copy_from_slice(&rule.src.addr().octets());
    r[8..12].copy_from_slice(&rule.dst.addr().octets());
    r[12] = rule.src.prefix_len();
    r[13] = rule.dst.prefix_len();
    if let Some(ports) = rule.src_ports {
        r[3] |= FLAG_SRC_PORTS;
        r[16..18].copy_from_slice(&ports.first().to_le_bytes());
        r[18..20].copy_from_slice(&ports.last().to_le_bytes());
    }
    if let Some(ports) = rule.dst_ports {
        r[3] |= FLAG_DST_PORTS;
        r[20..22].copy_from_slice(&ports.first().to_le_bytes());
        r[22..24].copy_from_slice(&ports.last().to_le_bytes());
    }
    r
}

/// The rule in the record `r`, every field checked.
pub fn decode_rule(r: &[u8; RECORD_LEN]) -> Result<Rule, RecordError> {
    let verdict = match r[0] {
        0 => Verdict::Allow,
        1 => Verdict::Deny,
        b => return Err(RecordError::Verdict(b)),
    };
    let dir = match r[1] {
        0 => Direction::Any,
        1 => Direction::In,
        2 => Direction::Out,
        b => return Err(RecordError::Direction(b)),
    };
    let proto = match r[2] {
        0 => Proto::Any,
        1 => Proto::Icmp,
        6 => Proto::Tcp,
        17 => Proto::Udp,
        b => return Err(RecordError::Proto(b)),
    };
    let flags = r[3];
    if flags & !(FLAG_SRC_PORTS | FLAG_DST_PORTS) != 0 {
        return Err(RecordError::Flags(flags));
    }
    if r[14] != 0 || r[15] != 0 {
        return Err(RecordError::Reserved);
    }
    let prefix = |addr: &[u8], len: u8| {
        let addr = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
        Ipv4Prefix::new(addr, len).map_err(RecordError::Prefix)
    };
    let src = prefix(&r[4..8], r[12])?;
    let dst = prefix(&r[8..12], r[13])?;
    let ports = |present: bool, bytes: &[u8]| -> Result<Option<PortRange>, RecordError> {
        let first = u16::from_le_bytes([bytes[0], bytes[1]]);
        let last = u16::from_le_bytes([bytes[2], bytes[3]]);
        match present {
            true => PortRange::new(first, last)
                .map(Some)
                .map_err(|_| RecordError::ReversedPorts),
            false if first == 0 && last == 0 => Ok(None),
            false => Err(RecordError::StrayPorts),
        }
    };
    let src_ports = ports(flags & FLAG_SRC_PORTS != 0, &r[16..20])?;
    let dst_ports = ports(flags & FLAG_DST_PORTS != 0, &r[20..24])?;
    let rule = Rule {
        verdict,
        dir,
        proto,
        src,
        src_ports,
        dst,
        dst_ports,
    };
    rule.check().map_err(|_| RecordError::PortWithoutTcpUdp)?;
    Ok(rule)
}

/// Writes the image of `set` with sequence number `sequence` at the start of `out`; returns
/// its length, `16 + 24 * set.len()`. Bytes of `out` past it are left alone.
pub fn encode_image(set: &RuleSet, sequence: u32, out: &mut [u8]) -> Result<usize, StateError> {
    let len = HEADER_LEN + RECORD_LEN * set.len();
    let image = out
        .get_mut(..len)
        .ok_or(StateError::TooSmall { need: len })?;
    image[0..4].copy_from_slice(&MAGIC);
    image[4..6].copy_from_slice(&VERSION.to_le_bytes());
    // `len() <= MAX_RULES`, which fits a u16.
    image[6..8].copy_from_slice(&(set.len() as u16).to_le_bytes());
    image[8..12].copy_from_slice(&sequence.to_le_bytes());
    image[12..16].fill(0);
    let (records, _) = image[HEADER_LEN..].as_chunks_mut::<RECORD_LEN>();
    for (record, rule) in records.iter_mut().zip(set.rules()) {
        record.copy_from_slice(&encode_rule(rule));
    }
    let crc = crc32(image);
    image[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// Reads the image at the start of `bytes` (bytes past its length are ignored): the rule set,
/// with zero counters, and the image's sequence number.
pub fn decode_image(bytes: &[u8]) -> Result<(RuleSet, u32), StateError> {
    let header: &[u8; HEADER_LEN] = bytes
        .first_chunk()
        .ok_or(StateError::TooSmall { need: HEADER_LEN })?;
    if header[0..4] != MAGIC {
        return Err(StateError::BadMagic);
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(StateError::BadVersion(version));
    }
    let count = u16::from_le_bytes([header[6], header[7]]);
    if usize::from(count) > MAX_RULES {
        return Err(StateError::BadCount(count));
    }
    let sequence = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let stored_crc = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let len = HEADER_LEN + RECORD_LEN * usize::from(count);
    let image = bytes.get(..len).ok_or(StateError::TooSmall { need: len })?;
    let crc = Crc32::new()
        .update(&image[..12])
        .update(&[0; 4])
        .update(&image[16..])
        .finish();
    if crc != stored_crc {
        return Err(StateError::BadChecksum);
    }
    let mut set = RuleSet::new();
    let (records, _) = image[HEADER_LEN..].as_chunks::<RECORD_LEN>();
    for (index, record) in records.iter().enumerate() {
        let rule = decode_rule(record).map_err(|error| StateError::BadRecord { index, error })?;
        // Cannot fail: at most MAX_RULES records, each valid.
        set.push(rule).map_err(|_| StateError::BadCount(count))?;
    }
    Ok((set, sequence))
}

/// What [`load`] found in the state region.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per start of pf, and there is no allocator to box it"
)]
pub enum Restored {
    /// Both slots blank: the first start of pf. Start from the empty rule set, quietly.
    Fresh,
    /// A valid image.
    Loaded {
        /// The rules, with zero counters.
        rules: RuleSet,
        /// The image's sequence number.
        sequence: u32,
        /// The error of the other slot, if it was neither blank nor valid: a save that a crash
        /// tore (the rule change it carried is lost) or damage. Worth a warning in the log.
        discarded: Option<StateError>,
    },
}

/// What one slot of the region holds.
enum Slot {
    /// A zero header: never written.
    Blank,
    /// A valid image with this sequence number.
    Valid(u32),
    /// Neither.
    Invalid(StateError),
}

/// The bytes of slot `index` (0 or 1) of a region of [`REGION_LEN`] bytes.
fn slot_bytes(region: &[u8], index: usize) -> &[u8] {
    &region[index * IMAGE_MAX..(index + 1) * IMAGE_MAX]
}

/// Slot `index`, checked in full.
fn slot(region: &[u8], index: usize) -> Slot {
    let bytes = slot_bytes(region, index);
    if bytes[..HEADER_LEN].iter().all(|&b| b == 0) {
        return Slot::Blank;
    }
    match decode_image(bytes) {
        Ok((_, sequence)) => Slot::Valid(sequence),
        Err(e) => Slot::Invalid(e),
    }
}

/// Whether sequence `a` is after `b`, in serial-number arithmetic (so the order survives the
/// wrap of the counter).
fn is_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The slot holding the newest valid image, and its sequence. Slot 0 wins a tie (which
/// [`save`] never makes).
fn newest(slots: &[Slot; 2]) -> Option<(usize, u32)> {
    match *slots {
        [Slot::Valid(a), Slot::Valid(b)] => Some(if is_after(b, a) { (1, b) } else { (0, a) }),
        [Slot::Valid(a), _] => Some((0, a)),
        [_, Slot::Valid(b)] => Some((1, b)),
        _ => None,
    }
}

/// Reads the rule set from the state region (at least [`REGION_LEN`] bytes): the valid image
/// with the newest sequence. `Err` means no valid image and at least one damaged slot: start
/// from the empty rule set (default allow) and log the error loudly (see the module
/// documentation).
pub fn load(region: &[u8]) -> Result<Restored, StateError> {
    let region = region
        .get(..REGION_LEN)
        .ok_or(StateError::TooSmall { need: REGION_LEN })?;
    let slots = [slot(region, 0), slot(region, 1)];
    match newest(&slots) {
        Some((index, sequence)) => {
            // Checked by `slot` already; decoded again rather than carried in `Slot`.
            let (rules, _) = decode_image(slot_bytes(region, index))?;
            let discarded = match slots[1 - index] {
                Slot::Invalid(e) => Some(e),
                _ => None,
            };
            Ok(Restored::Loaded {
                rules,
                sequence,
                discarded,
            })
        }
        None => match slots {
            [Slot::Invalid(e), _] | [_, Slot::Invalid(e)] => Err(e),
            _ => Ok(Restored::Fresh),
        },
    }
}

/// Writes `set` into the state region (at least [`REGION_LEN`] bytes), in the slot that does
/// not hold the newest valid image, with the next sequence number, which it returns. If the
/// other slot then holds neither a valid image nor a blank header, its header is zeroed, so
/// that the damage is not reported again.
pub fn save(region: &mut [u8], set: &RuleSet) -> Result<u32, StateError> {
    let region = region
        .get_mut(..REGION_LEN)
        .ok_or(StateError::TooSmall { need: REGION_LEN })?;
    let newest = newest(&[slot(region, 0), slot(region, 1)]);
    let (target, sequence) = match newest {
        Some((index, sequence)) => (1 - index, sequence.wrapping_add(1)),
        None => (0, 1),
    };
    let (slot0, slot1) = region.split_at_mut(IMAGE_MAX);
    let (dst, other) = if target == 0 {
        (slot0, slot1)
    } else {
        (slot1, slot0)
    };
    encode_image(set, sequence, dst)?;
    if newest.is_none() {
        other[..HEADER_LEN].fill(0);
    }
    Ok(sequence)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and PNG): bitwise, no table; the state image is
/// checked only on save and load.
pub fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).finish()
}

struct Crc32(u32);

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(!0)
    }

    fn update(mut self, bytes: &[u8]) -> Crc32 {
        for &b in bytes {
            self.0 ^= u32::from(b);
            for _ in 0..8 {
                let mask = (self.0 & 1).wrapping_neg();
                self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
        self
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_rule;

    fn set(rules: &[&str]) -> RuleSet {
        let mut set = RuleSet::new();
        for r in rules {
            set.push(parse_rule(r).unwrap()).unwrap();
        }
        set
    }

    fn sample() -> RuleSet {
        set(&[
            "deny in tcp from any to 10.0.2.15/32 port 7",
            "allow out udp from 10.0.2.0/24 port 1000-2000 to any",
            "allow in icmp from 10.0.2.2/32 to any",
            "deny tcp from 255.255.255.255/32 port 65535 to 0.0.0.0/32 port 0",
            "deny from any to any",
        ])
    }

    /// Rewrites the CRC of the image at the start of `bytes` after a deliberate change.
    fn reseal(bytes: &mut [u8]) {
        let count = usize::from(u16::from_le_bytes([bytes[6], bytes[7]])).min(MAX_RULES);
        let len = HEADER_LEN + RECORD_LEN * count;
        bytes[12..16].fill(0);
        let crc = crc32(&bytes[..len]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn layout_sizes() {
        assert_eq!(IMAGE_MAX, 1552);
        assert_eq!(REGION_LEN, 3104);
        const { assert!(REGION_LEN <= 4096) };
    }

    #[test]
    fn record_layout() {
        let r = parse_rule("allow out udp from 10.0.2.0/24 port 1000-2000 to any").unwrap();
        let bytes = encode_rule(&r);
        assert_eq!(
            bytes,
            [
                0, 2, 17, 1, 10, 0, 2, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0xe8, 0x03, 0xd0, 0x07, 0, 0, 0,
                0
            ]
        );
        assert_eq!(decode_rule(&bytes), Ok(r));
    }

    #[test]
    fn record_validation() {
        let good =
            encode_rule(&parse_rule("deny in tcp from 10.0.0.0/8 port 1-2 to any port 7").unwrap());
        let with = |i: usize, v: u8| {
            let mut r = good;
            r[i] = v;
            decode_rule(&r)
        };
        assert_eq!(with(0, 2), Err(RecordError::Verdict(2)));
        assert_eq!(with(1, 3), Err(RecordError::Direction(3)));
        assert_eq!(with(2, 2), Err(RecordError::Proto(2)));
        assert_eq!(with(3, 4), Err(RecordError::Flags(4)));
        assert_eq!(with(14, 1), Err(RecordError::Reserved));
        assert_eq!(with(15, 1), Err(RecordError::Reserved));
        assert_eq!(
            with(12, 33),
            Err(RecordError::Prefix(RuleError::PrefixTooLong))
        );
        assert_eq!(
            with(12, 4),
            Err(RecordError::Prefix(RuleError::HostBitsSet))
        );
        assert_eq!(
            with(11, 1),
            Err(RecordError::Prefix(RuleError::HostBitsSet))
        );
        assert_eq!(with(17, 9), Err(RecordError::ReversedPorts)); // src first 0x0901 > last 2
        assert_eq!(with(2, 1), Err(RecordError::PortWithoutTcpUdp));
        assert_eq!(with(2, 0), Err(RecordError::PortWithoutTcpUdp));
        assert_eq!(with(3, 2), Err(RecordError::StrayPorts)); // src ports gone, bytes remain
        assert!(with(2, 17).is_ok());
        assert_eq!(
            decode_rule(&[0; RECORD_LEN]),
            Ok(crate::Rule::everything(Verdict::Allow))
        );
    }

    #[test]
    fn image_round_trip() {
        for s in [RuleSet::new(), sample()] {
            let mut buf = [0xa5u8; IMAGE_MAX];
            let len = encode_image(&s, 7, &mut buf).unwrap();
            assert_eq!(len, HEADER_LEN + RECORD_LEN * s.len());
            let (back, seq) = decode_image(&buf).unwrap();
            assert_eq!((back.rules(), seq), (s.rules(), 7));
            assert_eq!(decode_image(&buf[..len]).map(|(b, _)| b), Ok(back));
            assert_eq!(
                decode_image(&buf[..len - 1]).err(),
                Some(StateError::TooSmall { need: len })
            );
        }
        let mut full = RuleSet::new();
        for i in 0..MAX_RULES {
            let text = std::format!("deny tcp from any to any port {i}");
            full.push(parse_rule(&text).unwrap()).unwrap();
        }
        let mut buf = [0u8; IMAGE_MAX];
        assert_eq!(encode_image(&full, u32::MAX, &mut buf), Ok(IMAGE_MAX));
        assert_eq!(
            encode_image(&full, 1, &mut buf[..IMAGE_MAX - 1]),
            Err(StateError::TooSmall { need: IMAGE_MAX })
        );
        assert_eq!(
            decode_image(&buf).map(|(s, q)| (s.len(), q)),
            Ok((MAX_RULES, u32::MAX))
        );
    }

    #[test]
    fn image_header_validation() {
        let mut buf = [0u8; IMAGE_MAX];
        encode_image(&sample(), 1, &mut buf).unwrap();
        let mut b = buf;
        b[0] = b'X';
        assert_eq!(decode_image(&b).err(), Some(StateError::BadMagic));
        let mut b = buf;
        b[4] = 2; // the version is read before the checksum: another version may differ there
        assert_eq!(decode_image(&b).err(), Some(StateError::BadVersion(2)));
        let mut b = buf;
        b[6..8].copy_from_slice(&65u16.to_le_bytes());
        assert_eq!(decode_image(&b).err(), Some(StateError::BadCount(65)));
        let mut b = buf;
        b[16 + RECORD_LEN + 1] = 9; // rule 2's direction
        assert_eq!(decode_image(&b).err(), Some(StateError::BadChecksum));
        reseal(&mut b);
        assert_eq!(
            decode_image(&b).err(),
            Some(StateError::BadRecord {
                index: 1,
                error: RecordError::Direction(9)
            })
        );
        assert_eq!(
            decode_image(&buf[..15]).err(),
            Some(StateError::TooSmall { need: HEADER_LEN })
        );
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        let s = sample();
        let mut buf = [0u8; IMAGE_MAX];
        let len = encode_image(&s, 3, &mut buf).unwrap();
        for i in 0..len {
            for bit in 0..8 {
                let mut b = buf;
                b[i] ^= 1 << bit;
                assert!(
                    decode_image(&b).is_err(),
                    "flip of bit {bit} of byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn fresh_region() {
        let region = [0u8; REGION_LEN];
        assert_eq!(load(&region), Ok(Restored::Fresh));
        assert_eq!(
            load(&region[..REGION_LEN - 1]),
            Err(StateError::TooSmall { need: REGION_LEN })
        );
        let mut small = [0u8; REGION_LEN - 1];
        assert_eq!(
            save(&mut small, &sample()),
            Err(StateError::TooSmall { need: REGION_LEN })
        );
    }

    #[test]
    fn save_load_round_trip_alternates_slots() {
        let mut region = [0u8; REGION_LEN];
        let mut s = RuleSet::new();
        for (n, text) in [
            "deny tcp from any to any port 7",
            "allow from 10.0.0.0/8 to any",
            "deny icmp from any to any",
        ]
        .iter()
        .enumerate()
        {
            s.push(parse_rule(text).unwrap()).unwrap();
            let seq = save(&mut region, &s).unwrap();
            assert_eq!(seq, n as u32 + 1);
            // Odd sequences land in slot 0, even in slot 1.
            let slot_of_seq = (n % 2) * IMAGE_MAX;
            assert_eq!(&region[slot_of_seq..slot_of_seq + 4], &MAGIC);
            match load(&region).unwrap() {
                Restored::Loaded {
                    rules,
                    sequence,
                    discarded,
                } => {
                    assert_eq!(rules.rules(), s.rules());
                    assert_eq!(sequence, seq);
                    assert_eq!(discarded, None);
                    assert_eq!(rules.counters(), crate::Counters::default());
                }
                Restored::Fresh => panic!("fresh after save"),
            }
        }
        // An empty rule set is saved and restored as such, not as "fresh".
        let seq = save(&mut region, &RuleSet::new()).unwrap();
        assert_eq!(
            load(&region),
            Ok(Restored::Loaded {
                rules: RuleSet::new(),
                sequence: seq,
                discarded: None
            })
        );
    }

    #[test]
    fn torn_save_keeps_the_previous_image() {
        let mut region = [0u8; REGION_LEN];
        let a = set(&[
            "deny tcp from any to any port 7",
            "allow udp from any port 53 to any",
        ]);
        let b = set(&["allow in icmp from 10.0.2.2 to any"]);
        let c = sample();
        assert_eq!(save(&mut region, &a), Ok(1)); // slot 0
        assert_eq!(save(&mut region, &b), Ok(2)); // slot 1
        let before = region;
        assert_eq!(save(&mut region, &c), Ok(3)); // slot 0 again, over `a`
        let c_len = HEADER_LEN + RECORD_LEN * c.len();
        // A crash after any prefix of the new image was written over the old one.
        let mut detected = 0;
        for written in 0..c_len {
            let mut torn = before;
            torn[..written].copy_from_slice(&region[..written]);
            // The slot holds the old image while the bytes written equal it, the new one once
            // the rest equals the new, and otherwise fails its checks.
            let slot0 = decode_image(&torn[..IMAGE_MAX])
                .map(|(set, seq)| (set.rules() == a.rules(), set.rules() == c.rules(), seq));
            let (rules, sequence, discarded) = match load(&torn) {
                Ok(Restored::Loaded {
                    rules,
                    sequence,
                    discarded,
                }) => (rules, sequence, discarded),
                other => panic!("torn after {written} bytes: {other:?}"),
            };
            match slot0 {
                Ok((true, _, 1)) => {
                    assert_eq!((rules.rules(), sequence, discarded), (b.rules(), 2, None))
                }
                Ok((_, true, 3)) => {
                    assert_eq!((rules.rules(), sequence, discarded), (c.rules(), 3, None))
                }
                Ok(other) => panic!(
                    "torn after {written} bytes: slot 0 decodes to something else: {other:?}"
                ),
                Err(e) => assert_eq!(
                    (rules.rules(), sequence, discarded),
                    (b.rules(), 2, Some(e))
                ),
            }
            detected += usize::from(slot0.is_err());
            // The next save goes over the torn slot, keeping the good one.
            let mut again = torn;
            let seq = save(&mut again, &c).unwrap();
            assert!(
                matches!(load(&again), Ok(Restored::Loaded { sequence, discarded: None, .. }) if sequence == seq)
            );
        }
        assert!(
            detected > c_len * 3 / 4,
            "only {detected} of {c_len} torn images were torn"
        );
    }

    #[test]
    fn corrupt_region_is_an_error() {
        let mut region = [0u8; REGION_LEN];
        save(&mut region, &sample()).unwrap();
        region[40] ^= 0x10;
        assert_eq!(load(&region), Err(StateError::BadChecksum));
        // Garbage in the other slot too.
        region[IMAGE_MAX..IMAGE_MAX + 16].fill(0xff);
        assert_eq!(load(&region), Err(StateError::BadChecksum));
        let garbage = [0x5au8; REGION_LEN];
        assert_eq!(load(&garbage), Err(StateError::BadMagic));
        // Starting over: the next save writes slot 0 and blanks slot 1, so the damage is not
        // reported again.
        let mut region = garbage;
        assert_eq!(save(&mut region, &sample()), Ok(1));
        assert!(matches!(
            load(&region),
            Ok(Restored::Loaded {
                sequence: 1,
                discarded: None,
                ..
            })
        ));
    }

    #[test]
    fn sequence_wraps() {
        let mut region = [0u8; REGION_LEN];
        let a = set(&["deny tcp from any to any"]);
        let b = set(&["deny udp from any to any"]);
        encode_image(&a, u32::MAX, &mut region[..IMAGE_MAX]).unwrap();
        assert_eq!(save(&mut region, &b), Ok(0));
        match load(&region) {
            Ok(Restored::Loaded {
                rules,
                sequence: 0,
                discarded: None,
            }) => assert_eq!(rules.rules(), b.rules()),
            other => panic!("{other:?}"),
        }
        assert_eq!(save(&mut region, &a), Ok(1));
        assert!(matches!(
            load(&region),
            Ok(Restored::Loaded { sequence: 1, .. })
        ));
    }
}
