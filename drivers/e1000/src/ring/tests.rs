//! The rings against DMA memory on the heap, with the device played by the tests.

use super::*;
use core::ptr::NonNull;

const PHYS: u64 = 0x4000_0000;

/// DMA memory on the heap, and a device's view of it.
struct Mem {
    words: Vec<u64>,
}

impl Mem {
    fn new(bytes: usize) -> Self {
        Self {
            words: vec![0; bytes.div_ceil(8)],
        }
    }
    fn slice(&mut self) -> DmaSlice {
        let len = self.words.len() * 8;
        // Safety: the memory outlives the rings of each test.
        unsafe {
            DmaSlice::new(
                NonNull::new(self.words.as_mut_ptr().cast()).unwrap(),
                PHYS,
                len,
            )
            .unwrap()
        }
    }
    fn rx_desc(&self, i: usize) -> RxDesc {
        // Safety: the test reads descriptors within the vector.
        unsafe { core::ptr::read_volatile(self.words.as_ptr().cast::<RxDesc>().add(i)) }
    }
    /// The device writes back RX descriptor `i` and fills its buffer.
    fn rx_complete(&mut self, i: usize, data: &[u8], status: u8, errors: u8, len: u16) {
        let d = self.rx_desc(i);
        let off = (d.addr - PHYS) as usize;
        let bytes: &mut [u8] =
            // Safety: the test's own memory.
            unsafe { core::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.words.len() * 8) };
        bytes[off..off + data.len()].copy_from_slice(data);
        let w = RxDesc {
            length: len,
            status,
            errors,
            ..d
        };
        // Safety: as above.
        unsafe { core::ptr::write_volatile(self.words.as_mut_ptr().cast::<RxDesc>().add(i), w) };
    }
    fn tx_desc(&self, base: usize, i: usize) -> TxDesc {
        // Safety: the test reads descriptors within the vector.
        unsafe {
            core::ptr::read_volatile(
                self.words
                    .as_ptr()
                    .cast::<u8>()
                    .add(base)
                    .cast::<TxDesc>()
                    .add(i),
            )
        }
    }
    fn tx_done(&mut self, base: usize, i: usize) {
        let mut d = self.tx_desc(base, i);
        d.status |= tx_status::DD;
        // Safety: as above.
        unsafe {
            core::ptr::write_volatile(
                self.words
                    .as_mut_ptr()
                    .cast::<u8>()
                    .add(base)
                    .cast::<TxDesc>()
                    .add(i),
                d,
            )
        };
    }
    fn bytes(&self, phys: u64, len: usize) -> Vec<u8> {
        // Safety: the test's own memory.
        let all = unsafe {
            core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.words.len() * 8)
        };
        let off = (phys - PHYS) as usize;
        all[off..off + len].to_vec()
    }
}

fn rx_ring(mem: &mut Mem, count: usize) -> RxRing {
    let s = mem.slice();
    let mut r = RxRing::new(
        s.piece(0, count * 16).unwrap(),
        s.piece(4096, count * 2048).unwrap(),
        count,
        2048,
    )
    .unwrap();
    r.reset();
    r
}

const DONE: u8 = rx_status::DD | rx_status::EOP;

#[test]
fn ring_geometry_is_checked() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let s = mem.slice();
    let d = s.piece(0, 256).unwrap();
    let b = s.piece(4096, 16 * 2048).unwrap();
    for bad in [0, 4, 12, 8192] {
        assert_eq!(
            RxRing::new(d, b, bad, 2048).unwrap_err(),
            RingError::BadCount(bad)
        );
    }
    assert_eq!(
        RxRing::new(d, b, 16, 1500).unwrap_err(),
        RingError::BadBufferSize(1500)
    );
    assert!(matches!(
        RxRing::new(d, b, 24, 2048),
        Err(RingError::Memory(DmaError::TooSmall { .. }))
    ));
    assert!(matches!(
        RxRing::new(d, s.piece(4096, 100).unwrap(), 16, 2048),
        Err(RingError::Memory(DmaError::TooSmall { .. }))
    ));
    let misaligned = s.piece(8, 256).unwrap();
    assert_eq!(
        RxRing::new(misaligned, b, 16, 2048).unwrap_err(),
        RingError::Memory(DmaError::Misaligned)
    );
    assert!(TxRing::new(d, b, 16, 0).is_err());
    assert!(TxRing::new(d, b, 16, 2048).is_ok());
    let r = RxRing::new(d, b, 16, 2048).unwrap();
    assert_eq!(
        (r.phys(), r.ring_bytes(), r.tail(), r.count()),
        (PHYS, 256, 15, 16)
    );
    assert_eq!(RxRing::bsize_bits(256), Some(3 << 16));
}

#[test]
fn rx_reset_gives_every_descriptor_its_buffer() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut r = rx_ring(&mut mem, 8);
    for i in 0..8 {
        assert_eq!(
            mem.rx_desc(i),
            RxDesc {
                addr: PHYS + 4096 + i as u64 * 2048,
                ..RxDesc::default()
            }
        );
    }
    assert_eq!(r.tail_update(), Some(7));
    assert_eq!(r.tail_update(), None);
    assert!(r.next().is_none());
}

#[test]
fn rx_receives_and_wraps_around() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut r = rx_ring(&mut mem, 8);
    r.tail_update();
    // Three laps of the ring, one frame at a time, each with its own contents.
    for n in 0..24usize {
        let i = n % 8;
        let data = [n as u8; 60];
        mem.rx_complete(i, &data, DONE, 0, 60);
        let t = r.next().expect("a frame");
        assert_eq!(t.index(), i);
        assert_eq!(r.frame(&t).unwrap(), &data[..]);
        // Asking again before releasing gives the same descriptor.
        let again = r.next().unwrap();
        assert_eq!(again.index(), i);
        r.release(t);
        r.release(again); // a stale token: ignored
        assert_eq!(r.next_index(), (i + 1) % 8);
        assert_eq!(r.tail_update(), Some(i as u32));
        // The descriptor went back clean, with its buffer address.
        assert_eq!(
            mem.rx_desc(i),
            RxDesc {
                addr: PHYS + 4096 + i as u64 * 2048,
                ..RxDesc::default()
            }
        );
        assert!(r.next().is_none());
    }
}

#[test]
fn rx_batches_tail_writes() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut r = rx_ring(&mut mem, 8);
    r.tail_update();
    for i in 0..5 {
        mem.rx_complete(i, &[i as u8; 20], DONE, 0, 20);
    }
    let mut got = 0;
    while let Some(t) = r.next() {
        assert!(r.frame(&t).is_ok());
        r.release(t);
        got += 1;
    }
    assert_eq!(got, 5);
    assert_eq!(r.tail_update(), Some(4), "one tail write for the batch");
}

#[test]
fn rx_rejects_bad_descriptors() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut r = rx_ring(&mut mem, 8);
    // Claims more bytes than the buffer holds.
    mem.rx_complete(0, &[], DONE, 0, 4000);
    // Damaged (CRC error).
    mem.rx_complete(1, &[1; 64], DONE, rx_errors::CE, 64);
    // Only a checksum-offload error: the frame itself is fine.
    mem.rx_complete(2, &[2; 64], DONE, rx_errors::TCPE, 64);
    // Empty.
    mem.rx_complete(3, &[], DONE, 0, 0);
    // A frame split over three buffers (no EOP on the first two), then a good one.
    mem.rx_complete(4, &[4; 2048], rx_status::DD, 0, 2048);
    mem.rx_complete(5, &[5; 2048], rx_status::DD, 0, 2048);
    mem.rx_complete(6, &[6; 100], DONE, 0, 100);
    mem.rx_complete(7, &[7; 42], DONE, 0, 42);
    let mut outcomes = Vec::new();
    while let Some(t) = r.next() {
        outcomes.push(r.frame(&t).map(<[u8]>::len));
        r.release(t);
    }
    assert_eq!(
        outcomes,
        [
            Err(RxError::TooLong { len: 4000 }),
            Err(RxError::Damaged {
                errors: rx_errors::CE
            }),
            Ok(64),
            Err(RxError::Empty),
            Err(RxError::TooLong { len: 2048 }),
            Err(RxError::Fragment),
            Err(RxError::Fragment),
            Ok(42),
        ]
    );
}

#[test]
fn rx_head_values_are_checked() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut r = rx_ring(&mut mem, 8);
    // Fresh ring: next 0, tail 7. Any head 0..=7 is plausible; 8 and up are not.
    for h in 0..8 {
        assert_eq!(r.check_head(h), Ok(h as usize));
    }
    assert_eq!(
        r.check_head(8),
        Err(RingError::HeadOutOfRange { head: 8, size: 8 })
    );
    assert_eq!(
        r.check_head(u32::MAX),
        Err(RingError::HeadOutOfRange {
            head: u32::MAX,
            size: 8
        })
    );
    // After three frames: next 3, tail 2. The driver gives back every descriptor as soon
    // as it has handled it, so the device may be anywhere in the ring; only the range
    // check can catch a bad RX head.
    for i in 0..3 {
        mem.rx_complete(i, &[0; 60], DONE, 0, 60);
        let t = r.next().unwrap();
        r.release(t);
    }
    for h in 0..8 {
        assert_eq!(r.check_head(h), Ok(h as usize));
    }
    assert!(r.check_head(9).is_err());
    // The window check itself.
    assert_eq!(
        check_window(1, 8, 3, 6),
        Err(RingError::HeadOutsideWindow {
            head: 1,
            from: 3,
            to: 6
        })
    );
    assert_eq!(
        check_window(7, 8, 3, 6),
        Err(RingError::HeadOutsideWindow {
            head: 7,
            from: 3,
            to: 6
        })
    );
    assert_eq!(check_window(6, 8, 3, 6), Ok(6));
    assert_eq!(check_window(0, 8, 6, 1), Ok(0), "a window that wraps");
    assert!(check_window(2, 8, 6, 1).is_err());
}

fn tx_ring(mem: &mut Mem, count: usize) -> TxRing {
    let s = mem.slice();
    let mut t = TxRing::new(
        s.piece(0, count * 16).unwrap(),
        s.piece(4096, count * 2048).unwrap(),
        count,
        2048,
    )
    .unwrap();
    t.reset();
    t
}

#[test]
fn tx_queues_fills_and_reclaims_with_wrap_around() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut t = tx_ring(&mut mem, 8);
    assert_eq!(t.tail_update(), None, "nothing queued yet");
    assert_eq!(t.free(), 7);
    for n in 0..7u8 {
        t.push(&[n; 100]).unwrap();
    }
    assert_eq!(t.push(&[9; 10]), Err(TxError::Full));
    assert_eq!(t.tail_update(), Some(7));
    assert_eq!(t.tail_update(), None);
    for i in 0..7 {
        let d = mem.tx_desc(0, i);
        assert_eq!(d.length, 100);
        assert_eq!(d.cmd, tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS);
        assert_eq!(d.status, 0);
        assert_eq!(mem.bytes(d.addr, 100), vec![i as u8; 100]);
    }
    assert_eq!(
        t.reclaim(),
        Sent::default(),
        "the device has not finished any"
    );
    for i in 0..3 {
        mem.tx_done(0, i);
    }
    // Done out of order: 4 before 3 does not free 4 until 3 is done.
    mem.tx_done(0, 4);
    assert_eq!(
        t.reclaim(),
        Sent {
            frames: 3,
            bytes: 300
        }
    );
    assert_eq!(t.free(), 3);
    for n in 0..3u8 {
        t.push(&[0xA0 + n; 60]).unwrap();
    }
    assert_eq!(t.tail_update(), Some(2), "wrapped past the end");
    assert_eq!(mem.tx_desc(0, 7).length, 60);
    assert_eq!(
        mem.tx_desc(0, 0).status,
        0,
        "a reused descriptor starts clean"
    );
    for i in [3, 5, 6, 7, 0, 1] {
        mem.tx_done(0, i);
    }
    assert_eq!(
        t.reclaim(),
        Sent {
            frames: 7,
            bytes: 4 * 100 + 3 * 60
        }
    );
    assert_eq!(t.in_flight(), 0);
}

#[test]
fn tx_rejects_bad_frames() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut t = tx_ring(&mut mem, 8);
    assert_eq!(t.push(&[]), Err(TxError::Empty));
    assert_eq!(
        t.push(&[0; 2049]),
        Err(TxError::TooLong {
            len: 2049,
            max: 2048
        })
    );
    assert_eq!(t.push_with(|_| 0), Err(TxError::Empty));
    assert_eq!(
        t.push_with(|_| 5000),
        Err(TxError::TooLong {
            len: 5000,
            max: 2048
        })
    );
    assert_eq!(
        t.push_with(|b| {
            b[..3].copy_from_slice(b"abc");
            3
        }),
        Ok(3)
    );
    assert_eq!(t.in_flight(), 1);
}

#[test]
fn tx_head_values_are_checked() {
    let mut mem = Mem::new(4096 + 8 * 2048);
    let mut t = tx_ring(&mut mem, 8);
    assert_eq!(t.check_head(0), Ok(0));
    assert!(
        matches!(t.check_head(1), Err(RingError::HeadOutsideWindow { .. })),
        "nothing was given yet"
    );
    t.push(&[1; 64]).unwrap();
    t.push(&[2; 64]).unwrap();
    assert!(
        t.check_head(2).is_err(),
        "queued but the tail not yet written"
    );
    t.tail_update();
    assert_eq!(t.check_head(2), Ok(2));
    assert_eq!(
        t.check_head(8),
        Err(RingError::HeadOutOfRange { head: 8, size: 8 })
    );
    assert_eq!(
        t.check_head(0xFFFF_0000),
        Err(RingError::HeadOutOfRange {
            head: 0xFFFF_0000,
            size: 8
        })
    );
    mem.tx_done(0, 0);
    t.reclaim();
    assert!(
        matches!(t.check_head(0), Err(RingError::HeadOutsideWindow { .. })),
        "behind the oldest in flight"
    );
    assert_eq!(t.check_head(1), Ok(1));
}

// Rings over a shared pool: descriptors at PHYS, the pool's 16 buffers from PHYS + 4096.
const POOL: PoolBuffers = PoolBuffers {
    phys: PHYS + 4096,
    count: 16,
    size: 2048,
};

fn pool_phys(index: u32) -> u64 {
    POOL.phys_of(index).unwrap()
}

fn pool_rx_ring(mem: &mut Mem, count: usize) -> RxRing {
    let s = mem.slice();
    let mut r = RxRing::over_pool(s.piece(0, count * 16).unwrap(), count, POOL).unwrap();
    r.reset();
    r
}

#[test]
fn rings_over_a_pool_are_checked() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let d = mem.slice().piece(0, 4096).unwrap();
    assert!(RxRing::over_pool(d, 8, POOL).unwrap().is_pooled());
    assert!(!rx_ring(&mut mem, 8).is_pooled());
    assert_eq!(
        RxRing::over_pool(d, MAX_POOL_DESCRIPTORS + 8, POOL).unwrap_err(),
        RingError::BadCount(MAX_POOL_DESCRIPTORS + 8)
    );
    let empty = PoolBuffers { count: 0, ..POOL };
    assert_eq!(
        RxRing::over_pool(d, 8, empty).unwrap_err(),
        RingError::BadPool { count: 0 }
    );
    let wraps = PoolBuffers {
        phys: u64::MAX - 4096,
        ..POOL
    };
    assert!(matches!(
        TxRing::over_pool(d, 8, wraps),
        Err(RingError::BadPool { .. })
    ));
    let odd = PoolBuffers { size: 1500, ..POOL };
    assert_eq!(
        RxRing::over_pool(d, 8, odd).unwrap_err(),
        RingError::BadBufferSize(1500)
    );
    assert!(
        TxRing::over_pool(d, 8, odd).is_ok(),
        "any size up to 64 KiB to send"
    );
    assert_eq!(POOL.phys_of(16), None);
}

#[test]
fn pool_rx_posts_buffers_and_hands_them_back() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let mut r = pool_rx_ring(&mut mem, 8);
    // A fresh ring over a pool holds nothing: the device gets no descriptor.
    assert_eq!((r.posted(), r.unposted(), r.tail()), (0, 7, 0));
    assert_eq!(r.tail_update(), Some(0));
    assert!(r.next().is_none());
    assert_eq!(r.post(16), Err(PostError::BadIndex(16)));
    for id in 3..10 {
        r.post(id).unwrap();
    }
    assert_eq!(
        r.post(10),
        Err(PostError::Full),
        "one descriptor always stays empty"
    );
    assert_eq!(r.tail_update(), Some(7));
    for i in 0..7 {
        assert_eq!(
            mem.rx_desc(i),
            RxDesc {
                addr: pool_phys(3 + i as u32),
                ..RxDesc::default()
            }
        );
    }
    assert_eq!(mem.rx_desc(7), RxDesc::default());
    // The device writes a frame straight into pool buffer 3.
    mem.rx_complete(0, &[0xAB; 60], DONE, 0, 60);
    let t = r.next().unwrap();
    assert_eq!((t.index(), t.len(), t.outcome()), (0, 60, Ok(())));
    assert_eq!(r.frame(&t), Err(RxError::InPool));
    let stale = r.next().unwrap();
    assert_eq!(r.release(t), Some(3));
    assert_eq!(r.release(stale), None, "a second token for it is ignored");
    assert_eq!(mem.bytes(pool_phys(3), 60), vec![0xAB; 60]);
    assert_eq!(mem.rx_desc(0), RxDesc::default(), "released empty");
    assert_eq!((r.posted(), r.unposted()), (6, 1));
    assert!(r.next().is_none());
    // Refill: the new buffer goes to the tail, which wraps.
    r.post(12).unwrap();
    assert_eq!(mem.rx_desc(7).addr, pool_phys(12));
    assert_eq!(r.tail_update(), Some(0));
    assert_eq!(r.post(13), Err(PostError::Full));
    // Own buffers cannot be posted.
    let mut own_mem = Mem::new(4096 + 8 * 2048);
    assert_eq!(rx_ring(&mut own_mem, 8).post(0), Err(PostError::NotPooled));
}

#[test]
fn pool_rx_without_buffers_ignores_stale_descriptors() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let mut r = pool_rx_ring(&mut mem, 8);
    r.post(0).unwrap();
    mem.rx_complete(0, &[1; 60], DONE, 0, 60);
    let t = r.next().unwrap();
    assert_eq!(r.release(t), Some(0));
    // Descriptor 1 claims a frame, but no buffer was posted there.
    let stale = RxDesc {
        addr: pool_phys(1),
        length: 60,
        status: DONE,
        ..RxDesc::default()
    };
    // Safety: descriptor 1 lies within the test's memory.
    unsafe { core::ptr::write_volatile(mem.words.as_mut_ptr().cast::<RxDesc>().add(1), stale) };
    assert!(r.next().is_none());
    // The window the device may be in is empty: only head == next == tail is plausible.
    assert_eq!(r.check_head(1), Ok(1));
    assert!(matches!(
        r.check_head(2),
        Err(RingError::HeadOutsideWindow { .. })
    ));
    r.post(5).unwrap();
    assert_eq!(r.check_head(2), Ok(2));
    assert!(r.check_head(3).is_err());
}

#[test]
fn pool_rx_hands_back_bad_frames_too() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let mut r = pool_rx_ring(&mut mem, 8);
    for id in 0..7 {
        r.post(id).unwrap();
    }
    mem.rx_complete(0, &[4; 2048], rx_status::DD, 0, 2048);
    mem.rx_complete(1, &[5; 100], DONE, 0, 100);
    mem.rx_complete(2, &[6; 64], DONE, rx_errors::CE, 64);
    mem.rx_complete(3, &[7; 42], DONE, 0, 42);
    let mut seen = Vec::new();
    while let Some(t) = r.next() {
        let outcome = t.outcome();
        seen.push((r.release(t), outcome));
    }
    assert_eq!(
        seen,
        [
            (Some(0), Err(RxError::TooLong { len: 2048 })),
            (Some(1), Err(RxError::Fragment)),
            (
                Some(2),
                Err(RxError::Damaged {
                    errors: rx_errors::CE
                })
            ),
            (Some(3), Ok(())),
        ]
    );
}

#[test]
fn pool_rx_reset_keeps_and_reposts_its_buffers() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let mut r = pool_rx_ring(&mut mem, 8);
    for id in [9, 8, 7, 6, 5, 4, 3] {
        r.post(id).unwrap();
    }
    for i in 0..3 {
        mem.rx_complete(i, &[0; 60], DONE, 0, 60);
        let t = r.next().unwrap();
        r.release(t).unwrap();
    }
    r.post(14).unwrap();
    r.post(15).unwrap();
    // Posted now, oldest first: 6 5 4 3 14 15 (descriptors 3..=7, 0). A frame sits in 6.
    mem.rx_complete(3, &[0; 60], DONE, 0, 60);
    r.reset();
    assert_eq!((r.posted(), r.next_index(), r.tail()), (6, 0, 6));
    for (i, id) in [6u32, 5, 4, 3, 14, 15].into_iter().enumerate() {
        assert_eq!(
            mem.rx_desc(i),
            RxDesc {
                addr: pool_phys(id),
                ..RxDesc::default()
            },
            "descriptor {i}"
        );
    }
    assert_eq!(mem.rx_desc(6), RxDesc::default());
    assert!(r.next().is_none(), "the frame that was there is dropped");
    mem.rx_complete(0, &[1; 60], DONE, 0, 60);
    let t = r.next().unwrap();
    assert_eq!(r.release(t), Some(6));
}

fn pool_tx_ring(mem: &mut Mem, count: usize) -> TxRing {
    let s = mem.slice();
    let mut t = TxRing::over_pool(s.piece(0, count * 16).unwrap(), count, POOL).unwrap();
    t.reset();
    t
}

#[test]
fn pool_tx_sends_pool_buffers_and_reports_them_done() {
    let mut mem = Mem::new(4096 + 16 * 2048);
    let mut t = pool_tx_ring(&mut mem, 8);
    let f = |index, offset, len| PooledFrame { index, offset, len };
    assert_eq!(t.push_pooled(f(16, 0, 60)), Err(TxError::BadIndex(16)));
    assert_eq!(t.push_pooled(f(1, 0, 0)), Err(TxError::Empty));
    assert_eq!(
        t.push_pooled(f(1, 2000, 100)),
        Err(TxError::TooLong {
            len: 2100,
            max: 2048
        })
    );
    assert_eq!(
        t.push_pooled(f(1, u32::MAX, u32::MAX)),
        Err(TxError::TooLong {
            len: 2 * u32::MAX as usize,
            max: 2048
        })
    );
    assert_eq!(t.push_with(|_| 60), Err(TxError::WrongBuffers));
    for i in 0..7 {
        t.push_pooled(f(i, 14, 60 + i)).unwrap();
    }
    assert_eq!(t.push_pooled(f(9, 0, 60)), Err(TxError::Full));
    assert_eq!(t.tail_update(), Some(7));
    assert!(!t.done_pending());
    let d = mem.tx_desc(0, 2);
    assert_eq!((d.addr, d.length), (pool_phys(2) + 14, 62));
    assert_eq!(d.cmd, tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS);
    for i in 0..3 {
        mem.tx_done(0, i);
    }
    assert!(t.done_pending());
    let mut done = Vec::new();
    let sent = t.reclaim_with(2, |p| done.push(p));
    assert_eq!(
        sent,
        Sent {
            frames: 2,
            bytes: 121
        }
    );
    assert_eq!(done, [f(0, 14, 60), f(1, 14, 61)]);
    t.reclaim_with(usize::MAX, |p| done.push(p));
    assert_eq!(done.len(), 3);
    assert_eq!(done[2], f(2, 14, 62));
    // The transmitter stops (a device reset): the frames still queued are given up.
    let mut dropped = Vec::new();
    assert_eq!(t.abandon(|p| dropped.push(p.index)), 4);
    assert_eq!(dropped, [3, 4, 5, 6]);
    assert_eq!(t.in_flight(), 0);
    // An own-buffer ring refuses pool frames.
    let mut own_mem = Mem::new(4096 + 8 * 2048);
    assert_eq!(
        tx_ring(&mut own_mem, 8).push_pooled(f(0, 0, 60)),
        Err(TxError::WrongBuffers)
    );
}
