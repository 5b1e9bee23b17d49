//! The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of
//! the data taken as big-endian 16-bit words, an odd last byte padded with a zero. Also the
//! incremental update of RFC 1624 (change one field without summing the packet again) and the
//! pseudo-header that TCP and UDP checksums cover (RFC 793, RFC 768).
//!
//! [`Checksum`] accumulates in any number of pieces, of any lengths: an odd-length piece leaves
//! its last byte pending and the next piece continues the word, so summing a packet in pieces
//! gives the same result as summing it whole.

use core::net::Ipv4Addr;

/// A running one's complement sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    /// The sum so far, with end-around carry (folded to 16 bits only at the end).
    sum: u64,
    /// The first byte of a word whose second byte has not been added yet.
    pending: Option<u8>,
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Self {
            sum: 0,
            pending: None,
        }
    }

    fn add_u64(&mut self, v: u64) {
        let (s, carry) = self.sum.overflowing_add(v);
        self.sum = s + u64::from(carry);
    }

    /// Adds `data`, continuing a word left half-done by an earlier odd-length piece.
    pub fn add_bytes(&mut self, mut data: &[u8]) {
        if let Some(hi) = self.pending.take() {
            match data.split_first() {
                Some((&lo, rest)) => {
                    self.add_u64(u64::from(u16::from_be_bytes([hi, lo])));
                    data = rest;
                }
                None => {
                    self.pending = Some(hi);
                    return;
                }
            }
        }
        // Eight bytes at a time: the sum of big-endian 32-bit halves folds to the same 16-bit
        // one's complement sum as the 16-bit words (RFC 1071 §2(C), "parallel summation").
        let (chunks, rest) = data.as_chunks::<8>();
        for &c in chunks {
            let v = u64::from_be_bytes(c);
            self.add_u64((v >> 32) + (v & 0xFFFF_FFFF));
        }
        let (words, rest) = rest.as_chunks::<2>();
        for &w in words {
            self.add_u64(u64::from(u16::from_be_bytes(w)));
        }
        if let &[last] = rest {
            self.pending = Some(last);
        }
    }

    /// Adds `v` as two big-endian bytes of the stream (one word when the stream so far is even).
    pub fn add_u16(&mut self, v: u16) {
        self.add_bytes(&v.to_be_bytes());
    }

    /// Adds `v` as four big-endian bytes of the stream.
    pub fn add_u32(&mut self, v: u32) {
        self.add_bytes(&v.to_be_bytes());
    }

    /// The one's complement sum folded to 16 bits (not complemented).
    pub fn sum(&self) -> u16 {
        let mut s = self.sum;
        if let Some(hi) = self.pending {
            let (t, carry) = s.overflowing_add(u64::from(hi) << 8);
            s = t + u64::from(carry);
        }
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    /// The checksum: the complement of [`Checksum::sum`], as stored in a header.
    pub fn finish(&self) -> u16 {
        !self.sum()
    }
}

/// The folded one's complement sum of `data` (RFC 1071's example gives `0xddf2`).
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add_bytes(data);
    c.sum()
}

/// The Internet checksum of `data`, to store in a header whose checksum field was zero.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !ones_complement_sum(data)
}

/// True when `data`, checksum field included, sums to all ones: the checksum is right.
pub fn verify(data: &[u8]) -> bool {
    ones_complement_sum(data) == 0xFFFF
}

/// The checksum after one 16-bit word of the covered data changed from `old` to `new`, without
/// summing the data again (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`).
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    let mut c = Checksum::new();
    c.add_u16(!checksum);
    c.add_u16(!old);
    c.add_u16(new);
    c.finish()
}

/// [`update_u16`] for a 32-bit field (an IPv4 address), as its two words.
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let hi = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(hi, old as u16, new as u16)
}

/// The sum of the IPv4 pseudo-header that TCP and UDP checksums cover: source, destination,
/// zero, protocol, and the length of the TCP/UDP header plus data.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(&src.octets());
    c.add_bytes(&dst.octets());
    c.add_u16(u16::from(protocol));
    c.add_u16(length);
    c
}

/// The TCP or UDP checksum of `segment` (header with a zero checksum field, and data) between
/// `src` and `dst`. `None` when the segment is longer than a 16-bit length can say. For UDP a
/// result of zero must be sent as `0xFFFF` (zero means "no checksum"): see [`udp_checksum`].
pub fn transport_checksum(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    segment: &[u8],
) -> Option<u16> {
    let len = u16::try_from(segment.len()).ok()?;
    let mut c = pseudo_header(src, dst, protocol, len);
    c.add_bytes(segment);
    Some(c.finish())
}

/// [`transport_checksum`] for UDP, with a computed zero sent as `0xFFFF` (RFC 768).
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> Option<u16> {
    transport_checksum(src, dst, crate::ipv4::IpProtocol::UDP.0, segment)
        .map(|c| if c == 0 { 0xFFFF } else { c })
}

/// True when a received TCP or UDP `segment` (checksum field included) checks out.
pub fn verify_transport(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> bool {
    let Ok(len) = u16::try_from(segment.len()) else {
        return false;
    };
    let mut c = pseudo_header(src, dst, protocol, len);
    c.add_bytes(segment);
    c.sum() == 0xFFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    const RFC1071: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    /// Word by word, the textbook way: the reference the fast path is checked against.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in data.chunks(2) {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                u16::from(w[0]) << 8
            };
            s += u32::from(v);
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        assert_eq!(ones_complement_sum(&RFC1071), 0xddf2);
        assert_eq!(internet_checksum(&RFC1071), 0x220d);
    }

    #[test]
    fn known_ipv4_header() {
        // The classic example header (Wikipedia, "IPv4 header checksum"): checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
        h[19] ^= 1;
        assert!(!verify(&h));
    }

    #[test]
    fn pieces_of_any_length_equal_whole() {
        let data: Vec<u8> = (0..301u32)
            .map(|i| (i.wrapping_mul(151) ^ (i >> 3)) as u8)
            .collect();
        let whole = ones_complement_sum(&data);
        assert_eq!(whole, reference_sum(&data));
        for split in [0, 1, 2, 3, 7, 8, 9, 150, 299, 300, 301] {
            for split2 in [split, split + 1, split + 5] {
                let split2 = split2.min(data.len());
                let mut c = Checksum::new();
                c.add_bytes(&data[..split]);
                c.add_bytes(&data[split..split2]);
                c.add_bytes(&data[split2..]);
                assert_eq!(c.sum(), whole, "split at {split}, {split2}");
            }
        }
        for len in 0..40 {
            assert_eq!(
                ones_complement_sum(&data[..len]),
                reference_sum(&data[..len])
            );
        }
    }

    #[test]
    fn all_ones_data_does_not_overflow() {
        let data = vec![0xFFu8; 70_000];
        assert_eq!(ones_complement_sum(&data), 0xFFFF);
        assert_eq!(ones_complement_sum(&data), reference_sum(&data));
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut h: [u8; 20] = [
            0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 10, 0, 2, 15,
            10, 0, 2, 2,
        ];
        let c = internet_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        // Decrement the TTL (the word ttl|protocol changes).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let inc = update_u16(c, old, new);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, internet_checksum(&h));
        // Change the destination address.
        h[10..12].copy_from_slice(&inc.to_be_bytes());
        let old = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new = u32::from(Ipv4Addr::new(192, 168, 1, 77));
        h[16..20].copy_from_slice(&new.to_be_bytes());
        let inc = update_u32(inc, old, new);
        assert!(verify(&{
            let mut x = h;
            x[10..12].copy_from_slice(&inc.to_be_bytes());
            x
        }));
    }

    #[test]
    fn pseudo_header_udp() {
        // A UDP datagram 10.0.2.15:68 -> 10.0.2.2:67 with payload "hi".
        let src = Ipv4Addr::new(10, 0, 2, 15);
        let dst = Ipv4Addr::new(10, 0, 2, 2);
        let mut seg = [0x00, 0x44, 0x00, 0x43, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let c = udp_checksum(src, dst, &seg).unwrap();
        // By hand: pseudo 0a00+020f+0a00+0202+0011+000a, header 0044+0043+000a, data 6869.
        let by_hand: u32 =
            0x0a00 + 0x020f + 0x0a00 + 0x0202 + 0x0011 + 0x000a + 0x0044 + 0x0043 + 0x000a + 0x6869;
        let folded = ((by_hand & 0xFFFF) + (by_hand >> 16)) as u16;
        assert_eq!(c, !folded);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(verify_transport(src, dst, 17, &seg));
        seg[9] ^= 0x40;
        assert!(!verify_transport(src, dst, 17, &seg));
    }
}
