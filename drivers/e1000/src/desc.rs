//! Legacy receive and transmit descriptors: 16 bytes each, little-endian, read and written by
//! the device through DMA.

/// Size of one descriptor in bytes.
pub const DESC_LEN: usize = 16;

/// A legacy receive descriptor. The driver fills `addr`; the device writes the rest back and
/// sets [`rx_status::DD`] last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RxDesc {
    /// Physical address of the receive buffer.
    pub addr: u64,
    /// Bytes the device stored in the buffer.
    pub length: u16,
    /// Packet checksum.
    pub checksum: u16,
    /// [`rx_status`] bits.
    pub status: u8,
    /// [`rx_errors`] bits.
    pub errors: u8,
    /// VLAN tag.
    pub special: u16,
}
const _: () = assert!(core::mem::size_of::<RxDesc>() == DESC_LEN);
const _: () = assert!(core::mem::offset_of!(RxDesc, length) == 8);
const _: () = assert!(core::mem::offset_of!(RxDesc, status) == 12);
const _: () = assert!(core::mem::offset_of!(RxDesc, errors) == 13);

/// Bits of [`RxDesc::status`].
pub mod rx_status {
    /// Descriptor done: the device has written this descriptor back.
    pub const DD: u8 = 1 << 0;
    /// End of packet: the last descriptor of a frame.
    pub const EOP: u8 = 1 << 1;
    /// Ignore checksum indication.
    pub const IXSM: u8 = 1 << 2;
    /// The frame carried an 802.1Q tag.
    pub const VP: u8 = 1 << 3;
}

/// Bits of [`RxDesc::errors`].
pub mod rx_errors {
    /// CRC or alignment error.
    pub const CE: u8 = 1 << 0;
    /// Symbol error.
    pub const SE: u8 = 1 << 1;
    /// Sequence error.
    pub const SEQ: u8 = 1 << 2;
    /// Carrier extension error.
    pub const CXE: u8 = 1 << 4;
    /// TCP/UDP checksum error.
    pub const TCPE: u8 = 1 << 5;
    /// IP checksum error.
    pub const IPE: u8 = 1 << 6;
    /// RX data error.
    pub const RXE: u8 = 1 << 7;
    /// Errors that make the frame itself bad (checksum errors only concern offloads, which
    /// are off).
    pub const FRAME: u8 = CE | SE | SEQ | CXE | RXE;
}

/// A legacy transmit descriptor. The driver fills it; the device sets [`tx_status::DD`] in
/// `status` when it is done with it (if [`tx_cmd::RS`] asked for that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TxDesc {
    /// Physical address of the data.
    pub addr: u64,
    /// Bytes to send from `addr`.
    pub length: u16,
    /// Checksum offset.
    pub cso: u8,
    /// [`tx_cmd`] bits.
    pub cmd: u8,
    /// [`tx_status`] bits (written back by the device).
    pub status: u8,
    /// Checksum start.
    pub css: u8,
    /// VLAN tag.
    pub special: u16,
}
const _: () = assert!(core::mem::size_of::<TxDesc>() == DESC_LEN);
const _: () = assert!(core::mem::offset_of!(TxDesc, length) == 8);
const _: () = assert!(core::mem::offset_of!(TxDesc, cmd) == 11);
const _: () = assert!(core::mem::offset_of!(TxDesc, status) == 12);

/// Bits of [`TxDesc::cmd`].
pub mod tx_cmd {
    /// End of packet.
    pub const EOP: u8 = 1 << 0;
    /// Insert the Ethernet CRC.
    pub const IFCS: u8 = 1 << 1;
    /// Insert checksum.
    pub const IC: u8 = 1 << 2;
    /// Report status: set DD when done.
    pub const RS: u8 = 1 << 3;
    /// Extended descriptor (context or data); 0 = legacy.
    pub const DEXT: u8 = 1 << 5;
    /// VLAN packet enable.
    pub const VLE: u8 = 1 << 6;
    /// Interrupt delay enable.
    pub const IDE: u8 = 1 << 7;
}

/// Bits of [`TxDesc::status`].
pub mod tx_status {
    /// Descriptor done.
    pub const DD: u8 = 1 << 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_laid_out_as_the_device_reads_them() {
        let d = RxDesc {
            addr: 0x1122_3344_5566_7788,
            length: 0x99AA,
            checksum: 0xBBCC,
            status: 0xDD,
            errors: 0xEE,
            special: 0x0F10,
        };
        // Safety: RxDesc is repr(C), 16 bytes without padding (asserted above).
        let bytes: [u8; 16] = unsafe { core::mem::transmute(d) };
        assert_eq!(
            bytes,
            [
                0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xAA, 0x99, 0xCC, 0xBB, 0xDD, 0xEE,
                0x10, 0x0F
            ]
        );
        let t = TxDesc {
            addr: 1,
            length: 0x0203,
            cso: 4,
            cmd: 5,
            status: 6,
            css: 7,
            special: 0x0809,
        };
        // Safety: as above.
        let bytes: [u8; 16] = unsafe { core::mem::transmute(t) };
        assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 3, 2, 4, 5, 6, 7, 9, 8]);
        assert_eq!(core::mem::align_of::<RxDesc>(), 8);
    }
}
