//! What ip does when a neighbour restarts (docs/netpath.md, "Restarts"): every buffer the dead
//! instance held is accounted for, so that restarts, however many, lose none.

use super::*;

impl Stack<'_> {
    /// pf restarted. The driver took back every rx-pool buffer it had lent to pf, including
    /// those udp and tcp hold now: their returns are refused (not held any more) instead of
    /// reaching the driver a second time. What waited in the outbox for the old pf is dropped:
    /// its returns (the driver has those buffers already) and its frames (their tx buffers are
    /// freed here; TCP retransmits, UDP loses them as the wire may).
    pub fn pf_restarted(&mut self) {
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
            }
        }
        for link in [self.udp.as_mut(), self.tcp.as_mut()].into_iter().flatten() {
            link.rx_held.iter_mut().for_each(|h| *h = false);
            // What went to udp/tcp for pf: returns of buffers the driver took back.
            link.out
                .retain(|m| !matches!(Kind::decode(m, rx_count, tx_count), Ok(Kind::RxReturn(_))));
        }
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
