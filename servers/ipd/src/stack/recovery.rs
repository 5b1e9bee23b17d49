//! What ip does when a neighbour restarts (docs/netpath.md, "Restarts"): every buffer the dead
//! instance held is accounted for, so that restarts, however many, lose none.

use super::*;

/// How long after a restart of pf a frame given to the old one counts as lost.
pub const LOST_TX_GRACE_NS: u64 = 200_000_000;
/// tcp hears PATH_LOST at most this often (a restart of the driver gives back up to a ring of
/// frames not sent, one message each).
pub const PATH_LOST_EVERY_NS: u64 = 100_000_000;

impl Stack<'_> {
    /// pf restarted. The driver took back every rx-pool buffer it had lent to pf, including
    /// those udp and tcp hold now: their returns are refused (not held any more) instead of
    /// reaching the driver a second time. What waited in the outbox for the old pf is dropped:
    /// its returns (the driver has those buffers already) and its frames (their tx buffers are
    /// freed here; TCP retransmits, UDP loses them as the wire may).
    ///
    /// Frames the old pf took but never passed on (in its queues, or unread in the channel)
    /// would keep their tx buffers forever: those given to it that have not come back (as
    /// TX_DONE through the new pf) [`LOST_TX_GRACE_NS`] after `now` are freed then
    /// ([`Stack::sweep_lost_tx`]); the NIC finishes a frame long before.
    pub fn pf_restarted(&mut self, now: u64) {
        self.stats.pf_restarts += 1;
        let (rx_count, tx_count) = (self.rx.count(), self.tx.view().count());
        for m in core::mem::take(&mut self.out) {
            if let Ok(Kind::TxFrame(d)) = Kind::decode(&m, rx_count, tx_count) {
                let whole = PoolDescriptor {
                    offset: 0,
                    len: netmsg::BUFFER_SIZE,
                    ..d
                };
                let _ = self.tx.free(whole);
                if let Some(f) = self.tx_in_flight.get_mut(d.index as usize) {
                    *f = false;
                }
            }
        }
        let given: Vec<u32> = (0..tx_count)
            .filter(|&i| self.tx_in_flight[i as usize])
            .collect();
        self.lost_tx = Some((now.saturating_add(LOST_TX_GRACE_NS), given));
        for link in [self.udp.as_mut(), self.tcp.as_mut()].into_iter().flatten() {
            link.rx_held.iter_mut().for_each(|h| *h = false);
            // What went to udp/tcp for pf: returns of buffers the driver took back.
            link.out
                .retain(|m| !matches!(Kind::decode(m, rx_count, tx_count), Ok(Kind::RxReturn(_))));
        }
        self.path_lost(now);
    }

    /// Frames went missing past us (pf restarted, or the driver gave frames back unsent): tcp's
    /// among them are a run of consecutive segments lost, so tcp is told PATH_LOST and sends
    /// again from the first byte not acknowledged, without waiting for its retransmission
    /// timeout. At most once per [`PATH_LOST_EVERY_NS`].
    pub(crate) fn path_lost(&mut self, now: u64) {
        if self
            .path_lost_at
            .is_some_and(|at| now.saturating_sub(at) < PATH_LOST_EVERY_NS)
        {
            return;
        }
        if let Some(link) = self.tcp.as_mut() {
            let lost = tcpmsg::control(tcpmsg::tag::PATH_LOST, Default::default(), 0, 0);
            link.out.push_back(lost);
            self.path_lost_at = Some(now);
        }
    }

    /// After a restart of pf, once the grace period is over: frees the tx buffers given to the
    /// old pf that never came back. Call it every round (it is a comparison until then).
    pub fn sweep_lost_tx(&mut self, now: u64) {
        let Some((due, _)) = &self.lost_tx else {
            return;
        };
        if now < *due {
            return;
        }
        let Some((_, given)) = self.lost_tx.take() else {
            return;
        };
        for index in given {
            let Some(in_flight) = self.tx_in_flight.get_mut(index as usize) else {
                continue;
            };
            if *in_flight
                && let Some(d) = self.tx.view().whole(index)
                && self.tx.free(d).is_ok()
            {
                *in_flight = false;
                self.stats.tx_recovered += 1;
            }
        }
        // Buffers are back: the servers' loans may grow again.
        self.lend_tcp();
        self.lend_udp();
    }

    /// udp restarted: the rx-pool buffers it held go home, the tx-pool buffers lent to it are
    /// ours again, and a fresh loan goes to the new instance.
    pub fn udp_restarted(&mut self) {
        self.stats.udp_restarts += 1;
        if let Some(link) = self.udp.take() {
            self.recover_link(link);
            self.attach_udp();
        }
    }

    /// tcp restarted: as [`Stack::udp_restarted`].
    pub fn tcp_restarted(&mut self) {
        self.stats.tcp_restarts += 1;
        if let Some(link) = self.tcp.take() {
            self.recover_link(link);
            self.attach_tcp();
        }
    }

    fn recover_link(&mut self, link: UdpLink) {
        for (index, held) in link.rx_held.iter().enumerate() {
            if *held
                && let Some(d) = self.rx.whole(index as u32)
                && self.push_out(Kind::RxReturn(d).message())
            {
                self.stats.rx_returned += 1;
            }
        }
        for (index, lent) in link.tx_lent.iter().enumerate() {
            if *lent && let Some(d) = self.tx.view().whole(index as u32) {
                let _ = self.tx.free(d);
            }
        }
    }
}
