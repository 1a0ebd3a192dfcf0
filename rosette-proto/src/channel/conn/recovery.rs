//! Loss recovery: RACK-TLP (RFC 8985) with the RFC 6298 retransmission timer as the last resort.
//!
//! - **RACK** declares a packet lost once a packet *transmitted after it* has been delivered and a
//!   reordering window has passed: `sent_at + rack_rtt + reo_wnd <= now`. Order is transmission
//!   order, not sequence order, so a lost retransmission is detected like any other loss, from the
//!   delivery of a later transmission, without waiting for a timeout.
//! - The **reordering window** is a quarter of the minimum RTT (bounded by the smoothed RTT) and
//!   zero until reordering has been seen once recovery is under way; it grows when a retransmission
//!   proves spurious.
//! - **TLP**: when the tail of a flight is lost, nothing later is delivered to trigger RACK. A probe
//!   timeout of two smoothed RTTs sends one packet (new data if the peer's window allows, else the
//!   newest packet again) so its acknowledgement reveals the losses.
//! - **RTO** fires only when even the probe went unanswered: the oldest packet in flight, and every
//!   packet sent an RTO ago or more, is lost (not the ones sent since: RACK judges those once the
//!   retransmission is delivered), the timer backs off exponentially (up to `max_rto`) and the
//!   congestion controller restarts. A timeout that an original transmission's acknowledgement
//!   proves spurious (the peer was only slow, e.g. descheduled) is undone (RFC 4015).
//!
//! The module owns the timers and the RACK state; the sender's queue ([`SendQueue`]) holds the
//! packets, and the engine tells the congestion controller what was lost.
#![forbid(unsafe_code)]

use core::time::Duration;

use crate::buf::PacketBuf;
use crate::channel::rtt::RttEstimator;
use crate::channel::time::Instant;

use super::le;
use super::sender::{Delivered, SendQueue, SlotState};

/// RFC 8985's DupThresh: with this many packets SACKed and no reordering seen, losses are
/// declared without waiting for a reordering window.
const DUP_THRESH: u32 = 3;
/// Most the reordering window grows, in quarters of the minimum RTT.
const MAX_REO_WND_MULT: u32 = 16;
/// Recovery episodes after which a grown reordering window returns to one quarter RTT
/// (RFC 8985 §6.2 step 4).
const REO_WND_DECAY_EPISODES: u32 = 16;

/// The timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The reordering window of a suspected packet passed: run loss detection.
    Reorder,
    /// The probe timeout: send a tail-loss probe.
    Probe,
    /// The retransmission timeout.
    Rto,
}

/// What one round of loss detection found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Losses {
    /// Packets newly declared lost.
    pub(crate) count: u32,
    /// Transmission order of the newest of them.
    pub(crate) newest_order: u64,
}

/// RACK-TLP state and the loss timers of one connection. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    /// Send time and transmission order of the most recently *sent* delivered packet.
    rack_xmit: Instant,
    rack_order: u64,
    /// The RTT of that packet (RACK.rtt).
    rack_rtt: Duration,
    /// Highest sequence delivered (RACK.fack), for reordering detection.
    fack: Option<u32>,
    reordering_seen: bool,
    reo_wnd_mult: u32,
    episodes_since_growth: u32,
    /// While losses are being repaired: the sequence number that ends the episode.
    recovery_end: Option<u32>,
    reorder_at: Option<Instant>,
    probe_at: Option<Instant>,
    rto_at: Option<Instant>,
    /// A probe went out and nothing new was acknowledged since.
    probe_outstanding: bool,
    /// After a timeout, until the first delivery: the newest transmission order at the timeout.
    rto_order: Option<u64>,
    /// The first acknowledgement after the timeout delivered an original transmission from before it.
    rto_saw_original: bool,
    /// The last timeout proved spurious; taken by the engine.
    spurious_rto: bool,
}

impl Recovery {
    /// Fresh state: nothing delivered, no timer.
    pub(crate) fn new() -> Self {
        Recovery {
            rack_xmit: Instant::ZERO,
            rack_order: 0,
            rack_rtt: Duration::ZERO,
            fack: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            episodes_since_growth: 0,
            recovery_end: None,
            reorder_at: None,
            probe_at: None,
            rto_at: None,
            probe_outstanding: false,
            rto_order: None,
            rto_saw_original: false,
            spurious_rto: false,
        }
    }

    /// Stops every timer (the connection is gone or idle).
    pub(crate) fn stop_timers(&mut self) {
        self.reorder_at = None;
        self.probe_at = None;
        self.rto_at = None;
    }

    /// The earliest loss timer.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        [self.reorder_at, self.probe_at, self.rto_at].into_iter().flatten().min()
    }

    /// The retransmission timer's deadline.
    #[cfg(test)]
    pub(crate) fn rto_deadline(&self) -> Option<Instant> {
        self.rto_at
    }

    /// True while a loss episode is being repaired.
    pub(crate) fn in_recovery(&self) -> bool {
        self.recovery_end.is_some()
    }

    /// The reordering window multiplier (in quarters of the minimum RTT).
    #[cfg(test)]
    pub(crate) fn reo_wnd_mult(&self) -> u32 {
        self.reo_wnd_mult
    }

    /// RFC 8985 §6.2 step 2 and 3: a packet was delivered. Updates the most recently sent
    /// delivered packet (ignoring a retransmission whose acknowledgement came sooner than the
    /// minimum RTT — it acknowledges the original), notes reordering, and grows the reordering
    /// window when a retransmission proves spurious.
    pub(crate) fn on_delivered(&mut self, d: &Delivered, now: Instant, min_rtt: Option<Duration>) {
        let rtt = now.saturating_duration_since(d.sent_at);
        let acks_original = d.retransmitted && min_rtt.is_some_and(|m| rtt < m);
        if let Some(order) = self.rto_order {
            // RFC 4015 §2 (Eifel detection), without timestamps: the first acknowledgement after a
            // timeout tells whether the path was only slow — it delivers an original transmission
            // from before the timeout (not one SACKed before it, and not the retransmission).
            self.rto_saw_original |= (d.tx_order <= order && !d.retransmitted) || acks_original;
        }
        let spurious = (d.was_lost && !d.retransmitted) || acks_original;
        if spurious && self.reo_wnd_mult < MAX_REO_WND_MULT {
            self.reo_wnd_mult += 1;
            self.episodes_since_growth = 0;
        }
        if !acks_original && d.tx_order > self.rack_order {
            self.rack_order = d.tx_order;
            self.rack_xmit = d.sent_at;
            self.rack_rtt = rtt;
        }
        match self.fack {
            Some(f) if !d.retransmitted && super::lt(d.seq, f) => self.reordering_seen = true,
            Some(f) if le(d.seq, f) => {}
            _ => self.fack = Some(d.seq),
        }
    }

    /// RFC 8985 §6.2 step 4: the reordering window.
    fn reo_wnd(&self, sacked: u32, rtt: &RttEstimator) -> Duration {
        if !self.reordering_seen && (self.in_recovery() || sacked >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let Some(min_rtt) = rtt.min_rtt() else { return Duration::ZERO };
        let wnd = min_rtt / 4 * self.reo_wnd_mult;
        rtt.srtt().map_or(wnd, |s| wnd.min(s))
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): declares lost every in-flight packet sent before the
    /// most recently sent delivered one whose reordering window has passed, and arms the reorder
    /// timer for the earliest that has not.
    pub(crate) fn detect_lost<B: PacketBuf>(
        &mut self,
        now: Instant,
        queue: &mut SendQueue<B>,
        rtt: &RttEstimator,
    ) -> Losses {
        self.reorder_at = None;
        let mut found = Losses::default();
        if self.rack_order == 0 || queue.in_flight() == 0 {
            return found;
        }
        let wait = self.rack_rtt + self.reo_wnd(queue.sacked(), rtt);
        let mut earliest: Option<Instant> = None;
        for i in 0..queue.next_unsent() {
            let slot = queue.slot(i);
            if slot.state != SlotState::InFlight || slot.tx_order >= self.rack_order {
                continue;
            }
            let deadline = slot.sent_at + wait;
            if deadline <= now {
                let order = slot.tx_order;
                queue.mark_lost(i);
                found.count += 1;
                found.newest_order = found.newest_order.max(order);
            } else {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        self.reorder_at = earliest;
        if found.count > 0 && self.recovery_end.is_none() {
            self.recovery_end = Some(queue.snd_max());
            self.episodes_since_growth += 1;
            if self.episodes_since_growth >= REO_WND_DECAY_EPISODES {
                self.reo_wnd_mult = 1;
                self.episodes_since_growth = 0;
            }
        }
        found
    }

    /// After an acknowledgement: ends the recovery episode once the cumulative acknowledgement
    /// passes it, restarts the retransmission timer on progress (RFC 6298 §5.2, §5.3), and arms
    /// the probe timer (RFC 8985 §7.2).
    pub(crate) fn on_ack<B: PacketBuf>(
        &mut self,
        now: Instant,
        advanced: bool,
        queue: &SendQueue<B>,
        rtt: &RttEstimator,
    ) {
        if self.recovery_end.is_some_and(|end| le(end, queue.una())) {
            self.recovery_end = None;
        }
        if !queue.outstanding() {
            self.stop_timers();
            self.probe_outstanding = false;
            return;
        }
        if advanced {
            self.probe_outstanding = false;
            self.rto_at = Some(now + rtt.rto());
        }
        self.arm_probe(now, queue, rtt);
    }

    /// After a transmission at `now`: starts the retransmission timer if it is not running
    /// (RFC 6298 §5.1); after new data (not a probe), restarts the probe timer (RFC 8985 §7.2).
    pub(crate) fn on_transmit<B: PacketBuf>(
        &mut self,
        now: Instant,
        new_data: bool,
        probe: bool,
        queue: &SendQueue<B>,
        rtt: &RttEstimator,
    ) {
        if probe {
            // RFC 8985 §7.3: after a probe, the RTO, not another probe.
            self.probe_outstanding = true;
            self.probe_at = None;
            self.rto_at = Some(now + rtt.rto());
            return;
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + rtt.rto());
        }
        if new_data {
            self.arm_probe(now, queue, rtt);
        }
    }

    /// RFC 8985 §7.2: a probe timeout of 2·SRTT (the receiver acknowledges every burst at once, so
    /// no delayed-acknowledgement allowance), never later than the RTO, while no loss is being
    /// repaired, no packet is SACKed beyond a hole, and no probe is outstanding.
    fn arm_probe<B: PacketBuf>(&mut self, now: Instant, queue: &SendQueue<B>, rtt: &RttEstimator) {
        let eligible = !self.probe_outstanding
            && self.reorder_at.is_none()
            && !self.in_recovery()
            && queue.lost() == 0
            && queue.sacked() == 0
            && queue.in_flight() > 0;
        self.probe_at = match (eligible, rtt.srtt()) {
            (true, Some(srtt)) => {
                let at = now + srtt * 2;
                Some(self.rto_at.map_or(at, |rto| at.min(rto)))
            }
            _ => None,
        };
    }

    /// Which timer expired at `now`, if any; it is cleared. The RTO wins over the others.
    pub(crate) fn expired(&mut self, now: Instant) -> Option<Expired> {
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.probe_at = None;
            self.reorder_at = None;
            return Some(Expired::Rto);
        }
        if self.reorder_at.is_some_and(|t| t <= now) {
            self.reorder_at = None;
            return Some(Expired::Reorder);
        }
        if self.probe_at.is_some_and(|t| t <= now) {
            self.probe_at = None;
            return Some(Expired::Probe);
        }
        None
    }

    /// RFC 6298 §5.4–5.6 and RFC 8985 §6.3: the retransmission timer expired. The oldest packet in
    /// flight is lost, and so is every one sent at least `rto` before `now`; the others were sent
    /// too recently to tell. The timer restarts at `now + next_rto` (RFC 6298 §5.5–5.6: the
    /// backed-off timeout). Returns how many were declared lost.
    pub(crate) fn on_rto<B: PacketBuf>(
        &mut self,
        now: Instant,
        rto: Duration,
        next_rto: Duration,
        queue: &mut SendQueue<B>,
    ) -> u32 {
        self.probe_outstanding = false;
        self.rto_at = Some(now + next_rto);
        self.recovery_end = Some(queue.snd_max());
        self.rto_order = Some(queue.tx_count());
        self.rto_saw_original = false;
        let oldest = (0..queue.next_unsent())
            .filter(|&i| queue.slot(i).state == SlotState::InFlight)
            .min_by_key(|&i| queue.slot(i).tx_order);
        let mut lost = 0;
        for i in 0..queue.next_unsent() {
            let slot = queue.slot(i);
            if slot.state == SlotState::InFlight && (Some(i) == oldest || slot.sent_at + rto <= now) {
                lost += u32::from(queue.mark_lost(i));
            }
        }
        lost
    }

    /// To call after the deliveries of one acknowledgement: the first one after a timeout decides
    /// whether it was spurious.
    pub(crate) fn end_of_ack(&mut self, delivered_any: bool) {
        if delivered_any && self.rto_order.take().is_some() {
            self.spurious_rto = std::mem::take(&mut self.rto_saw_original);
        }
    }

    /// True once after a timeout proved spurious.
    pub(crate) fn take_spurious_rto(&mut self) -> bool {
        std::mem::take(&mut self.spurious_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{BufPool, VecBuf, VecPool};
    use crate::wire::transport::{PacketType, HEADER_LEN};

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    fn at(v: u64) -> Instant {
        Instant::from_micros(v)
    }

    /// `n` data packets sent 1 us apart from t = 0, and an estimator that has seen a 40 us RTT.
    fn setup(n: usize) -> (SendQueue<VecBuf>, RttEstimator, Recovery) {
        let mut pool = VecPool::default();
        let mut q = SendQueue::with_capacity(n);
        q.restart(1000);
        for i in 0..n {
            let mut b = pool.alloc().unwrap();
            b.append(HEADER_LEN).unwrap();
            q.push(b, PacketType::Data, 0);
            q.on_transmit(i, at(i as u64));
        }
        let mut rtt = RttEstimator::new(us(10_000), us(200), us(200_000));
        rtt.on_sample(Instant::ZERO, us(40));
        (q, rtt, Recovery::new())
    }

    fn sack(q: &mut SendQueue<VecBuf>, r: &mut Recovery, now: Instant, first: u32, end: u32) {
        let una = q.una();
        let mut got = Vec::new();
        q.ack_range(una + first, una + end, |d| got.push(d));
        for d in &got {
            r.on_delivered(d, now, Some(us(40)));
        }
        r.end_of_ack(!got.is_empty());
    }

    /// RFC 8985 §6.2: a packet is lost once a later-sent one is delivered and RACK.rtt + reo_wnd
    /// passed since it was sent; before that the reorder timer is armed for it.
    #[test]
    fn rack_waits_a_reordering_window_then_declares_loss_rfc8985() {
        let (mut q, rtt, mut r) = setup(4);
        // Packet 1 (sent at 1 us) is delivered at 41 us; packet 0 (sent at 0) is missing.
        sack(&mut q, &mut r, at(41), 1, 2);
        let lost = r.detect_lost(at(41), &mut q, &rtt);
        assert_eq!(lost.count, 0, "within the reordering window (min_rtt / 4 = 10 us)");
        assert_eq!(r.next_timeout(), Some(at(0) + us(40) + us(10)));
        let lost = r.detect_lost(at(50), &mut q, &rtt);
        assert_eq!((lost.count, lost.newest_order), (1, 1));
        assert_eq!(q.first_lost(), Some(0));
        assert!(r.in_recovery());
    }

    /// RFC 8985 §6.2 step 4: with DupThresh packets SACKed and no reordering seen, the reordering
    /// window is zero.
    #[test]
    fn no_reordering_window_after_dupthresh_sacks_rfc8985() {
        let (mut q, rtt, mut r) = setup(5);
        sack(&mut q, &mut r, at(44), 1, 4);
        let lost = r.detect_lost(at(44), &mut q, &rtt);
        assert_eq!(lost.count, 1, "packet 0 sent 3 us before the newest delivered one, 44 - 40 >= 0 + 3");
    }

    /// RFC 8985 §2 and §6.2: a lost retransmission is detected from the delivery of a packet
    /// transmitted after it, without a timeout.
    #[test]
    fn lost_retransmission_is_detected_without_rto_rfc8985() {
        let (mut q, rtt, mut r) = setup(8);
        sack(&mut q, &mut r, at(50), 1, 4);
        assert_eq!(r.detect_lost(at(50), &mut q, &rtt).count, 1);
        // Retransmit packet 0 at 50 us (order 9); it is lost again. Later transmissions of 8.. are
        // not possible here, so deliver 4..8 (orders 5..8 were sent before): nothing is said about 0.
        q.on_transmit(0, at(50));
        sack(&mut q, &mut r, at(60), 4, 8);
        assert_eq!(
            r.detect_lost(at(60), &mut q, &rtt).count,
            0,
            "delivered packets were sent before the retransmission"
        );
        // A packet transmitted after the retransmission is delivered: the retransmission is lost.
        let mut pool = VecPool::default();
        let mut b = pool.alloc().unwrap();
        b.append(HEADER_LEN).unwrap();
        q.push(b, PacketType::Data, 0);
        q.on_transmit(8, at(51));
        sack(&mut q, &mut r, at(91), 8, 9);
        let lost = r.detect_lost(at(91), &mut q, &rtt);
        assert_eq!((lost.count, lost.newest_order), (1, 9));
    }

    /// RFC 8985 §6.2 step 3: a packet delivered below the highest delivered sequence without having
    /// been retransmitted shows reordering; from then on the window stays open during recovery.
    #[test]
    fn reordering_seen_keeps_the_window_open_rfc8985() {
        let (mut q, rtt, mut r) = setup(6);
        sack(&mut q, &mut r, at(45), 3, 5);
        sack(&mut q, &mut r, at(45), 1, 2);
        assert!(r.reordering_seen);
        let lost = r.detect_lost(at(44), &mut q, &rtt);
        assert_eq!(lost.count, 0, "a reordering window of min_rtt/4 applies");
    }

    /// RFC 8985 §7.2/§7.3: the probe timeout is 2·SRTT, capped by the RTO; after a probe the RTO
    /// is armed instead of another probe.
    #[test]
    fn probe_timeout_is_two_srtt_then_rto_rfc8985() {
        let (q, rtt, mut r) = setup(3);
        r.on_transmit(at(2), true, false, &q, &rtt);
        assert_eq!(r.next_timeout(), Some(at(2) + us(80)));
        assert_eq!(r.expired(at(82)), Some(Expired::Probe));
        r.on_transmit(at(82), false, true, &q, &rtt);
        assert_eq!(r.next_timeout(), r.rto_deadline());
        assert_eq!(r.rto_deadline(), Some(at(82) + rtt.rto()));
    }

    /// RFC 6298 §5.2/§5.3: progress restarts the timer; nothing outstanding stops it.
    #[test]
    fn rto_restarts_on_progress_and_stops_when_idle_rfc6298() {
        let (mut q, rtt, mut r) = setup(2);
        r.on_transmit(at(1), true, false, &q, &rtt);
        let first = r.rto_deadline().unwrap();
        assert!(q.ack_cumulative(q.una() + 1, |_| {}));
        r.on_ack(at(30), true, &q, &rtt);
        assert_eq!(r.rto_deadline(), Some(at(30) + rtt.rto()));
        assert!(r.rto_deadline().unwrap() > first);
        assert!(q.ack_cumulative(q.una() + 1, |_| {}));
        r.on_ack(at(31), true, &q, &rtt);
        assert_eq!(r.next_timeout(), None);
    }

    /// RFC 8985 §6.3: at the RTO the oldest packet and those sent an RTO ago are lost; the ones
    /// sent since wait for RACK.
    #[test]
    fn rto_declares_the_oldest_and_the_old_lost_rfc8985() {
        let (mut q, _rtt, mut r) = setup(4);
        // Sent at 0, 1, 2, 3 us; an RTO of 200 us fires at 202 us: packets 0, 1 and 2 were sent 200 us ago.
        assert_eq!(r.on_rto(at(202), us(200), us(400), &mut q), 3);
        assert_eq!((q.in_flight(), q.lost()), (1, 3));
        assert_eq!(r.next_timeout(), Some(at(602)), "RFC 6298 §5.5: restarted with the backed-off RTO");
        let (mut q, _rtt, mut r) = setup(4);
        assert_eq!(r.on_rto(at(100), us(200), us(400), &mut q), 1, "only the oldest");
        assert_eq!(q.first_lost(), Some(0));
    }

    /// RFC 4015 §2: the first acknowledgement after a timeout delivers an original transmission:
    /// spurious.
    #[test]
    fn a_timeout_answered_by_an_original_is_spurious_rfc4015() {
        let (mut q, _rtt, mut r) = setup(4);
        r.on_rto(at(100), us(200), us(400), &mut q);
        sack(&mut q, &mut r, at(101), 2, 3);
        assert!(r.take_spurious_rto());
        assert!(!r.take_spurious_rto(), "reported once");
        let (mut q, _rtt, mut r) = setup(4);
        r.on_rto(at(300), us(200), us(400), &mut q);
        q.on_transmit(0, at(300));
        sack(&mut q, &mut r, at(345), 0, 1);
        assert!(!r.take_spurious_rto(), "the retransmission was delivered first: a real loss");
    }

    /// A retransmission acknowledged sooner than the minimum RTT acknowledged the original: the
    /// reordering window grows (RFC 8985 §6.2 step 4's reaction to spurious retransmission).
    #[test]
    fn spurious_retransmission_grows_the_reordering_window() {
        let (mut q, _rtt, mut r) = setup(2);
        q.mark_lost(0);
        q.on_transmit(0, at(40));
        sack(&mut q, &mut r, at(42), 0, 1);
        assert_eq!(r.reo_wnd_mult(), 2);
    }
}
