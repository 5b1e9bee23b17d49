//! The kernel's sleep and wake-up, abstracted so the protocol can be tested on the host.

/// Blocks and wakes the consumer of one channel. On the target `wait` and `notify` are the
/// kernel's syscalls; on the host a mutex and condition variable (see the tests).
///
/// Contract (the channel's protocol relies on it to never lose a wake-up): a `notify` that
/// happens before the matching `wait` is remembered, so that `wait` returns at once. `wait` may
/// also return early (spuriously, or on timeout); the consumer re-checks the ring either way.
pub trait Waiter {
    /// Sleeps until [`Waiter::notify`] is called (or was called since the last `wait`), or until
    /// `timeout_ns` nanoseconds have passed when it is `Some`.
    fn wait(&self, timeout_ns: Option<u64>);
    /// Wakes the consumer sleeping in (or about to enter) [`Waiter::wait`].
    fn notify(&self);
}

impl<W: Waiter + ?Sized> Waiter for &W {
    fn wait(&self, timeout_ns: Option<u64>) {
        (**self).wait(timeout_ns)
    }
    fn notify(&self) {
        (**self).notify()
    }
}

/// A waiter that never sleeps, for endpoints that only poll (a server alone on its core):
/// `wait` is a CPU pause and `notify` does nothing. Its calls are still counted as `waits` and
/// `notifies` in [`crate::Counters`], though no syscall happens.
#[derive(Clone, Copy, Debug, Default)]
pub struct Polling;

impl Waiter for Polling {
    fn wait(&self, _timeout_ns: Option<u64>) {
        crate::sync::spin_loop();
    }
    fn notify(&self) {}
}
