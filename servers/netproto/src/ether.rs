//! Ethernet II frames: destination, source, EtherType, payload.
//!
//! **802.1Q:** one VLAN tag (TPID `0x8100`) is parsed and reported in [`EtherFrame::vlan`], the
//! EtherType and payload then being those after the tag; a second tag (QinQ, or an 802.1ad S-tag
//! `0x88a8` anywhere) is refused with [`EtherError::StackedVlan`]. Whether a tagged frame is
//! accepted is the demultiplexer's decision: the ip server is not configured with VLANs, so it
//! takes priority-tagged frames (VID 0, 802.1p) as untagged and drops any other VID
//! ([`crate::demux::DropReason::ForeignVlan`]). Frames whose type/length field is below
//! `0x0600` are IEEE 802.3 length-framed (LLC/SNAP), not Ethernet II, and are refused.
//!
//! The builder writes untagged headers only. The frame check sequence is neither present nor
//! expected: the NIC strips and appends it.

use core::fmt;

use crate::BuildError;
use crate::wire;

/// An Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = Self([0xFF; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: Self = Self([0; 6]);

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True for a group address (the I/G bit set), broadcast included.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for an individual address that is not all zeros: one a station can have.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: Self = Self(0x0800);
    /// ARP.
    pub const ARP: Self = Self(0x0806);
    /// An IEEE 802.1Q VLAN tag follows (its TPID).
    pub const VLAN: Self = Self(0x8100);
    /// An IEEE 802.1ad service tag (QinQ outer tag).
    pub const QINQ: Self = Self(0x88A8);
    /// IPv6.
    pub const IPV6: Self = Self(0x86DD);
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// The length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// The length of an Ethernet header with one 802.1Q tag.
pub const TAGGED_HEADER_LEN: usize = 18;
/// The shortest frame on the wire without its FCS: shorter ones are padded with zeros.
pub const MIN_FRAME_LEN: usize = 60;
/// The longest untagged frame without its FCS for a 1500-byte MTU.
pub const MAX_FRAME_LEN: usize = 1514;

/// An 802.1Q tag control information field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Priority code point (802.1p), 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095 (0: priority tag only, no VLAN).
    pub vid: u16,
}

impl VlanTag {
    fn from_tci(tci: u16) -> Self {
        Self {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0FFF,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherError {
    /// Shorter than its header (14 bytes, 18 with a VLAN tag).
    Truncated,
    /// The type/length field holds an IEEE 802.3 length (below 0x0600): not Ethernet II.
    NotEthernetII(u16),
    /// More than one VLAN tag (QinQ or 802.1ad): refused.
    StackedVlan,
}

impl fmt::Display for EtherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("ethernet: truncated header"),
            Self::NotEthernetII(l) => {
                write!(f, "ethernet: 802.3 length field {l}, not Ethernet II")
            }
            Self::StackedVlan => f.write_str("ethernet: stacked VLAN tags"),
        }
    }
}

/// A parsed Ethernet II frame: a view into the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherFrame<'a> {
    /// Destination address.
    pub dst: Mac,
    /// Source address.
    pub src: Mac,
    /// The one 802.1Q tag, if the frame had one.
    pub vlan: Option<VlanTag>,
    /// The EtherType of the payload (after the tag, if any).
    pub ethertype: EtherType,
    /// Header length: [`HEADER_LEN`] or [`TAGGED_HEADER_LEN`]; the payload starts here.
    pub header_len: usize,
    /// Everything after the header, padding included (the layer above knows its own length).
    pub payload: &'a [u8],
}

fn ethertype_ok(t: u16) -> Result<EtherType, EtherError> {
    if t < 0x0600 {
        return Err(EtherError::NotEthernetII(t));
    }
    let t = EtherType(t);
    if t == EtherType::VLAN || t == EtherType::QINQ {
        return Err(EtherError::StackedVlan);
    }
    Ok(t)
}

impl<'a> EtherFrame<'a> {
    /// Parses the header of `frame`.
    pub fn parse(frame: &'a [u8]) -> Result<Self, EtherError> {
        let h: [u8; HEADER_LEN] = wire::bytes(frame, 0).ok_or(EtherError::Truncated)?;
        let dst = Mac([h[0], h[1], h[2], h[3], h[4], h[5]]);
        let src = Mac([h[6], h[7], h[8], h[9], h[10], h[11]]);
        let t = u16::from_be_bytes([h[12], h[13]]);
        let (vlan, ethertype, header_len) = if t == EtherType::VLAN.0 {
            let tag: [u8; 4] = wire::bytes(frame, HEADER_LEN).ok_or(EtherError::Truncated)?;
            let tci = u16::from_be_bytes([tag[0], tag[1]]);
            let inner = ethertype_ok(u16::from_be_bytes([tag[2], tag[3]]))?;
            (Some(VlanTag::from_tci(tci)), inner, TAGGED_HEADER_LEN)
        } else {
            (None, ethertype_ok(t)?, HEADER_LEN)
        };
        let payload = frame.get(header_len..).ok_or(EtherError::Truncated)?;
        Ok(Self {
            dst,
            src,
            vlan,
            ethertype,
            header_len,
            payload,
        })
    }
}

/// An untagged Ethernet header to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherHeader {
    /// Destination address.
    pub dst: Mac,
    /// Source address.
    pub src: Mac,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EtherHeader {
    /// Writes the header to the first [`HEADER_LEN`] bytes of `buf`; returns [`HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let out = wire::out(buf, HEADER_LEN)?;
        wire::put(out, 0, &self.dst.0)?;
        wire::put(out, 6, &self.src.0)?;
        wire::put16(out, 12, self.ethertype.0)?;
        Ok(HEADER_LEN)
    }

    /// Writes the header and `payload` after it, zero-padded to [`MIN_FRAME_LEN`]; returns the
    /// frame's length.
    pub fn emit_frame(&self, buf: &mut [u8], payload: &[u8]) -> Result<usize, BuildError> {
        let len = HEADER_LEN + payload.len();
        let total = len.max(MIN_FRAME_LEN);
        let out = wire::out(buf, total)?;
        self.emit(out)?;
        wire::put(out, HEADER_LEN, payload)?;
        pad(out, len)
    }
}

/// Zero-pads a frame of `len` bytes in `buf` up to [`MIN_FRAME_LEN`]; returns the new length.
pub fn pad(buf: &mut [u8], len: usize) -> Result<usize, BuildError> {
    let total = len.max(MIN_FRAME_LEN);
    if let Some(tail) = wire::out(buf, total)?.get_mut(len..) {
        tail.fill(0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_GW: Mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    const GUEST: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn mac_display_and_kinds() {
        assert_eq!(QEMU_GW.to_string(), "52:55:0a:00:02:02");
        assert_eq!(Mac::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert!(Mac::BROADCAST.is_multicast() && Mac::BROADCAST.is_broadcast());
        assert!(Mac([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(GUEST.is_unicast() && !Mac::ZERO.is_unicast());
    }

    #[test]
    fn round_trip_untagged() {
        let mut buf = [0u8; 64];
        let h = EtherHeader {
            dst: QEMU_GW,
            src: GUEST,
            ethertype: EtherType::IPV4,
        };
        let n = h.emit_frame(&mut buf, &[1, 2, 3]).unwrap();
        assert_eq!(n, MIN_FRAME_LEN);
        let f = EtherFrame::parse(&buf[..n]).unwrap();
        assert_eq!(
            (f.dst, f.src, f.ethertype, f.vlan),
            (QEMU_GW, GUEST, EtherType::IPV4, None)
        );
        assert_eq!(f.payload.len(), MIN_FRAME_LEN - HEADER_LEN);
        assert_eq!(&f.payload[..4], &[1, 2, 3, 0]);
    }

    #[test]
    fn one_vlan_tag_parsed_two_refused() {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&QEMU_GW.0);
        f.extend_from_slice(&[0x81, 0x00, 0xa0, 0x2a, 0x08, 0x06, 0xde, 0xad]);
        let p = EtherFrame::parse(&f).unwrap();
        assert_eq!(
            p.vlan,
            Some(VlanTag {
                pcp: 5,
                dei: false,
                vid: 42
            })
        );
        assert_eq!(p.ethertype, EtherType::ARP);
        assert_eq!(p.header_len, TAGGED_HEADER_LEN);
        assert_eq!(p.payload, &[0xde, 0xad]);
        // Tag cut short.
        assert_eq!(EtherFrame::parse(&f[..16]), Err(EtherError::Truncated));
        // QinQ: a second 802.1Q tag, or an 802.1ad tag outside.
        f[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(EtherFrame::parse(&f), Err(EtherError::StackedVlan));
        f[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(EtherFrame::parse(&f), Err(EtherError::StackedVlan));
    }

    #[test]
    fn short_and_8023_refused() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EtherFrame::parse(&[0u8; 20][..n]),
                Err(EtherError::Truncated)
            );
        }
        let mut f = [0u8; 20];
        f[12..14].copy_from_slice(&46u16.to_be_bytes());
        assert_eq!(EtherFrame::parse(&f), Err(EtherError::NotEthernetII(46)));
    }

    #[test]
    fn builder_refuses_short_buffer() {
        let h = EtherHeader {
            dst: QEMU_GW,
            src: GUEST,
            ethertype: EtherType::ARP,
        };
        assert_eq!(
            h.emit(&mut [0u8; 13]),
            Err(BuildError::BufferTooSmall { needed: 14 })
        );
        assert_eq!(
            h.emit_frame(&mut [0u8; 59], &[]),
            Err(BuildError::BufferTooSmall { needed: 60 })
        );
        let mut big = [0u8; 200];
        assert_eq!(h.emit_frame(&mut big, &[7u8; 100]).unwrap(), 114);
    }
}
