//! The kernel-IPC baseline's contract ([`libchan::Gate`]): an end with a gate moves nothing
//! itself; a stand-in "kernel" performs each operation with ends of its own on the same region,
//! as Axolotl's kernel does, and the gated end's view (sequence numbers, counters, epoch
//! changes) is the same as if it had done the work.

mod common;

use std::cell::RefCell;

use common::{HostRegion, crash, stamped, unstamp};
use libchan::{Consumer, Gate, Message, Polling, Producer, RecvError, SendError};

/// The kernel's side: a producer end or a consumer end, attached on first use, and how many
/// calls it served (one per trap).
struct Kernel<'a> {
    ptr: *mut u8,
    len: usize,
    producer: RefCell<Option<Producer<'a, Polling>>>,
    consumer: RefCell<Option<Consumer<'a, Polling>>>,
    calls: RefCell<u64>,
}

// Safety: the tests use one thread; `Sync` is what `set_gate` asks of a gate shared with a
// kernel, and nothing here is touched from two threads.
unsafe impl Sync for Kernel<'_> {}

impl<'a> Kernel<'a> {
    fn new(region: &'a HostRegion) -> Self {
        Self {
            ptr: region.ptr(),
            len: region.len(),
            producer: RefCell::new(None),
            consumer: RefCell::new(None),
            calls: RefCell::new(0),
        }
    }

    fn with_consumer<T>(&self, f: impl FnOnce(&mut Consumer<'a, Polling>) -> T) -> T {
        *self.calls.borrow_mut() += 1;
        let mut c = self.consumer.borrow_mut();
        // Safety: the region outlives the kernel; the gated user end never touches the ring.
        let c = c.get_or_insert_with(|| unsafe {
            Consumer::attach(self.ptr, self.len, Polling).unwrap()
        });
        f(c)
    }
}

impl Gate for Kernel<'_> {
    fn send(&self, region: usize, msgs: &[Message]) -> Result<(usize, u32), SendError> {
        assert_eq!(
            region, self.ptr as usize,
            "the gate names the region by its address"
        );
        *self.calls.borrow_mut() += 1;
        let mut p = self.producer.borrow_mut();
        // Safety: as in `with_consumer`.
        let p = p.get_or_insert_with(|| unsafe {
            Producer::attach(self.ptr, self.len, Polling).unwrap()
        });
        let n = p.send_batch(msgs)?;
        Ok((n, p.next_seq().wrapping_sub(n as u32)))
    }

    fn recv(&self, _region: usize, out: &mut [Message]) -> Result<usize, RecvError> {
        self.with_consumer(|c| c.recv_batch(out))
    }

    fn arm(&self, _region: usize) -> Result<bool, RecvError> {
        self.with_consumer(|c| c.arm())
    }

    fn disarm(&self, _region: usize) {
        self.with_consumer(|c| c.disarm())
    }
}

#[test]
fn a_gated_producer_reaches_a_plain_consumer() {
    let region = HostRegion::channel(8);
    let kernel = Kernel::new(&region);
    // Safety: the region outlives both ends; the gated producer leaves the ring to the kernel.
    let (mut tx, mut rx) = unsafe {
        (
            Producer::attach(region.ptr(), region.len(), Polling).unwrap(),
            Consumer::attach(region.ptr(), region.len(), Polling).unwrap(),
        )
    };
    tx.set_gate(&kernel);
    assert_eq!(tx.send(&stamped(1)), Ok(0));
    let batch: Vec<Message> = (2..=9).map(stamped).collect();
    // Seven fit behind the first in a ring of eight.
    assert_eq!(tx.send_batch(&batch), Ok(7));
    assert_eq!(tx.next_seq(), 8);
    assert_eq!(tx.send(&stamped(10)), Err(SendError::Full));
    assert_eq!(tx.counters().sent, 8);
    assert_eq!(tx.counters().full, 1);
    let mut out = [Message::default(); 8];
    assert_eq!(rx.recv_batch(&mut out), Ok(8));
    let ids: Vec<u64> = out.iter().filter_map(unstamp).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    assert_eq!(*kernel.calls.borrow(), 3, "one trap per call");
}

#[test]
fn a_gated_consumer_arms_through_the_kernel_and_sees_a_restart() {
    let region = HostRegion::channel(8);
    let (ptr, len) = (region.ptr(), region.len());
    let kernel = Kernel::new(&region);
    // Safety: as above; the gated consumer leaves the ring to the kernel.
    let mut rx = unsafe { Consumer::attach(ptr, len, Polling).unwrap() };
    rx.set_gate(&kernel);
    // Safety: as above.
    let mut tx = unsafe { Producer::attach(ptr, len, Polling).unwrap() };
    assert_eq!(rx.arm(), Ok(false), "empty: armed");
    rx.disarm();
    tx.send(&stamped(5)).unwrap();
    assert_eq!(rx.arm(), Ok(true), "a message is ready");
    assert_eq!(
        rx.try_recv().map(|m| m.and_then(|m| unstamp(&m))),
        Ok(Some(5))
    );
    assert_eq!(rx.try_recv(), Ok(None));
    assert_eq!(rx.next_seq(), 1);
    assert_eq!(rx.counters().received, 1);
    // The producer dies with a message unread and comes back in a new epoch.
    tx.send(&stamped(6)).unwrap();
    crash(tx);
    // Safety: the region is ours; no end is attached by the test meanwhile except the kernel's.
    unsafe { libchan::bump_epoch(ptr, len) }.unwrap();
    match rx.try_recv() {
        Err(RecvError::EpochChanged(c)) => assert_eq!((c.first, c.count), (1, 1)),
        other => panic!("expected the restart, got {other:?}"),
    }
}
