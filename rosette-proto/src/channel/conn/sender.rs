//! The send side of a connection: the queue of sequenced packets from the oldest unacknowledged one
//! to the newest queued one, with the state of each (never sent, in flight, lost, selectively
//! acknowledged) and the counts the windows are checked against.
//!
//! The queue knows nothing about time-outs or congestion: it applies acknowledgements and reports
//! what each one delivered, and the loss recovery and the congestion controller decide the rest.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use crate::buf::PacketBuf;
use crate::channel::time::Instant;
use crate::wire::transport::{PacketType, FLAG_END_OF_MESSAGE, FLAG_PACKED, HEADER_LEN};

use super::{le, lt};

/// Where one queued packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Queued, never transmitted.
    Unsent,
    /// Transmitted, neither acknowledged nor declared lost.
    InFlight,
    /// Declared lost; waits to be retransmitted.
    Lost,
    /// Selectively acknowledged; kept until the cumulative acknowledgement passes it.
    Sacked,
}

/// One sequenced packet held by the sender.
pub(crate) struct TxSlot<B> {
    pub(crate) seq: u32,
    pub(crate) kind: PacketType,
    pub(crate) flags: u8,
    /// The whole packet: header space then payload.
    pub(crate) buf: B,
    pub(crate) state: SlotState,
    /// When it was last transmitted.
    pub(crate) sent_at: Instant,
    /// Position of its last transmission in the connection's transmission order (1, 2, ...):
    /// RACK's "sent after" is this order, so a retransmission counts as sent when it went out.
    pub(crate) tx_order: u64,
    pub(crate) retransmitted: bool,
    /// Lower-layer header bytes the driver prepended in place at the last transmission; stripped
    /// again before the packet is next used.
    pub(crate) lower: usize,
}

impl<B> TxSlot<B> {
    /// What the acknowledgement delivering this slot tells loss recovery.
    fn delivered(&self, was_lost: bool) -> Delivered {
        Delivered {
            seq: self.seq,
            sent_at: self.sent_at,
            tx_order: self.tx_order,
            retransmitted: self.retransmitted,
            was_lost,
        }
    }
}

/// What one packet newly delivered by an acknowledgement looked like when it was last sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) seq: u32,
    pub(crate) sent_at: Instant,
    pub(crate) tx_order: u64,
    pub(crate) retransmitted: bool,
    /// It had been declared lost (its acknowledgement, or the original, arrived late).
    pub(crate) was_lost: bool,
}

/// The sender's queue. See the module documentation.
pub(crate) struct SendQueue<B> {
    slots: VecDeque<TxSlot<B>>,
    /// Sequence number of the front slot: the oldest unacknowledged packet.
    una: u32,
    /// Index of the first never-sent slot; every slot before it has been transmitted.
    next_unsent: usize,
    /// Packets in flight (RFC 6675's pipe, counted exactly: the scoreboard knows each packet).
    in_flight: u32,
    /// Packets declared lost and not yet retransmitted.
    lost: u32,
    /// Sequence number of our Fin, once queued.
    fin_seq: Option<u32>,
    /// Transmissions so far; the order of the next one is this plus one.
    tx_count: u64,
}

impl<B: PacketBuf> SendQueue<B> {
    /// An empty queue with room for `capacity` packets without reallocating.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        SendQueue {
            slots: VecDeque::with_capacity(capacity),
            una: 0,
            next_unsent: 0,
            in_flight: 0,
            lost: 0,
            fin_seq: None,
            tx_count: 0,
        }
    }

    /// Lends the (empty) slot storage out, leaving none: a quiescent connection of a connection
    /// table keeps no window-sized memory ([`super::Storage`]).
    pub(crate) fn take_storage(&mut self) -> VecDeque<TxSlot<B>> {
        debug_assert!(self.slots.is_empty());
        core::mem::take(&mut self.slots)
    }

    /// Gives slot storage back (empty); what the queue holds meanwhile (a lean connection's Syn)
    /// moves into it.
    pub(crate) fn give_storage(&mut self, mut slots: VecDeque<TxSlot<B>>) {
        debug_assert!(slots.is_empty());
        slots.extend(self.slots.drain(..));
        self.slots = slots;
    }

    /// Empties the queue and starts the sequence space at `isn` (nothing is kept of the old one).
    pub(crate) fn restart(&mut self, isn: u32) {
        self.clear();
        self.una = isn;
        self.fin_seq = None;
    }

    /// What the queue holds that the peer has not acknowledged (sent or not): the packets, their
    /// payload bytes, and the messages in them (the records of a packed packet; one for the last
    /// packet of a message). Walks the queue: for when a connection ends, not for the fast path.
    pub(crate) fn unacknowledged(&self) -> super::Unacknowledged {
        let mut u = super::Unacknowledged::default();
        for slot in &self.slots {
            if slot.kind != PacketType::Data {
                continue;
            }
            let payload = slot.buf.data().get(slot.lower + HEADER_LEN..).unwrap_or_default();
            u.packets += 1;
            u.bytes += slot.buf.len().saturating_sub(slot.lower + HEADER_LEN) as u64;
            u.messages += if slot.flags & FLAG_PACKED != 0 {
                crate::wire::packed::count_records(payload).unwrap_or(1) as u64
            } else {
                u64::from(slot.flags & FLAG_END_OF_MESSAGE != 0)
            };
        }
        u
    }

    /// Drops every packet (the connection is gone); keeps the sequence position.
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.next_unsent = 0;
        self.in_flight = 0;
        self.lost = 0;
    }

    /// Oldest unacknowledged sequence number.
    pub(crate) fn una(&self) -> u32 {
        self.una
    }

    /// One past the newest transmitted sequence number.
    pub(crate) fn snd_max(&self) -> u32 {
        self.una.wrapping_add(self.next_unsent as u32)
    }

    /// The sequence number the next queued packet gets.
    pub(crate) fn snd_nxt(&self) -> u32 {
        self.una.wrapping_add(self.slots.len() as u32)
    }

    /// Packets held (queued and unacknowledged).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Packets in flight.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Packets declared lost, waiting for retransmission.
    pub(crate) fn lost(&self) -> u32 {
        self.lost
    }

    /// Packets selectively acknowledged and still held (beyond a hole).
    pub(crate) fn sacked(&self) -> u32 {
        self.next_unsent as u32 - self.in_flight - self.lost
    }

    /// True while something is in flight or waits for retransmission.
    pub(crate) fn outstanding(&self) -> bool {
        self.in_flight > 0 || self.lost > 0
    }

    /// True while a queued packet has never been transmitted.
    pub(crate) fn has_unsent(&self) -> bool {
        self.next_unsent < self.slots.len()
    }

    /// Index (offset from the oldest unacknowledged packet) of the first never-sent packet.
    pub(crate) fn next_unsent(&self) -> usize {
        self.next_unsent
    }

    /// The sequence number of our Fin, once queued.
    pub(crate) fn fin_seq(&self) -> Option<u32> {
        self.fin_seq
    }

    /// True once our Fin is queued and acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| lt(f, self.una))
    }

    /// Transmissions so far (the order of the newest transmission).
    pub(crate) fn tx_count(&self) -> u64 {
        self.tx_count
    }

    /// The slot at `index`.
    pub(crate) fn slot(&self, index: usize) -> &TxSlot<B> {
        &self.slots[index]
    }

    /// The slot at `index`, mutably.
    pub(crate) fn slot_mut(&mut self, index: usize) -> &mut TxSlot<B> {
        &mut self.slots[index]
    }

    /// The front slot, if any.
    pub(crate) fn front_mut(&mut self) -> Option<&mut TxSlot<B>> {
        self.slots.front_mut()
    }

    /// Queues a sequenced packet whose buffer starts with [`HEADER_LEN`] reserved bytes.
    pub(crate) fn push(&mut self, buf: B, kind: PacketType, flags: u8) {
        let seq = self.snd_nxt();
        if kind == PacketType::Fin {
            self.fin_seq = Some(seq);
        }
        self.slots.push_back(TxSlot {
            seq,
            kind,
            flags,
            buf,
            state: SlotState::Unsent,
            sent_at: Instant::default(),
            tx_order: 0,
            retransmitted: false,
            lower: 0,
        });
    }

    /// Takes the `n` newest packets back out (never sent: a message that could not be queued whole).
    pub(crate) fn unpush(&mut self, n: usize) {
        for _ in 0..n {
            if self.slots.len() <= self.next_unsent {
                return;
            }
            if let Some(slot) = self.slots.pop_back() {
                if slot.kind == PacketType::Fin {
                    self.fin_seq = None;
                }
            }
        }
    }

    /// The payload buffer of the newest never-sent data packet, for coalescing.
    pub(crate) fn last_unsent_data(&mut self) -> Option<&mut B> {
        if !self.has_unsent() {
            return None;
        }
        let slot = self.slots.back_mut()?;
        (slot.kind == PacketType::Data && slot.state == SlotState::Unsent).then_some(&mut slot.buf)
    }

    /// The newest never-sent data packet if it is packed and `extra` more payload bytes fit in it
    /// (within `mss` and the buffer's tailroom).
    pub(crate) fn last_unsent_packed(&mut self, extra: usize, mss: usize) -> Option<&mut B> {
        if !self.has_unsent() {
            return None;
        }
        let slot = self.slots.back_mut()?;
        let fits = slot.buf.len() - HEADER_LEN + extra <= mss && slot.buf.tailroom() >= extra;
        (slot.kind == PacketType::Data && slot.state == SlotState::Unsent && slot.flags & FLAG_PACKED != 0 && fits)
            .then_some(&mut slot.buf)
    }

    /// Declares the in-flight packet at `index` lost; true if it was in flight.
    pub(crate) fn mark_lost(&mut self, index: usize) -> bool {
        let slot = &mut self.slots[index];
        if slot.state != SlotState::InFlight {
            return false;
        }
        slot.state = SlotState::Lost;
        self.in_flight -= 1;
        self.lost += 1;
        true
    }

    /// The index of the in-flight packet transmitted last (the tail-loss probe's candidate).
    pub(crate) fn newest_in_flight(&self) -> Option<usize> {
        (0..self.next_unsent)
            .filter(|&i| self.slots[i].state == SlotState::InFlight)
            .max_by_key(|&i| self.slots[i].tx_order)
    }

    /// The index of the first packet waiting for retransmission.
    pub(crate) fn first_lost(&self) -> Option<usize> {
        if self.lost == 0 {
            return None;
        }
        self.slots.iter().position(|s| s.state == SlotState::Lost)
    }

    /// Records the transmission of the slot at `index` at `now`; returns true if it was a
    /// retransmission.
    pub(crate) fn on_transmit(&mut self, index: usize, now: Instant) -> bool {
        self.tx_count += 1;
        let order = self.tx_count;
        let slot = &mut self.slots[index];
        let retransmission = match slot.state {
            SlotState::Lost => {
                self.lost -= 1;
                slot.retransmitted = true;
                true
            }
            SlotState::Unsent => {
                self.next_unsent += 1;
                false
            }
            // A tail-loss probe resends an in-flight packet: it stays counted once in flight.
            SlotState::InFlight => {
                slot.retransmitted = true;
                slot.sent_at = now;
                slot.tx_order = order;
                return true;
            }
            SlotState::Sacked => unreachable_sacked(),
        };
        slot.state = SlotState::InFlight;
        slot.sent_at = now;
        slot.tx_order = order;
        self.in_flight += 1;
        retransmission
    }

    /// Applies a cumulative acknowledgement of everything before `ack`, calling `delivered` for
    /// each packet it newly delivers (not for ones SACKed before). Returns true if `una` advanced.
    pub(crate) fn ack_cumulative(&mut self, ack: u32, mut delivered: impl FnMut(Delivered)) -> bool {
        let advanced = lt(self.una, ack);
        while lt(self.una, ack) {
            let Some(slot) = self.slots.pop_front() else { break };
            let was_lost = slot.state == SlotState::Lost;
            match slot.state {
                SlotState::InFlight => self.in_flight -= 1,
                SlotState::Lost => self.lost -= 1,
                SlotState::Sacked | SlotState::Unsent => {}
            }
            if matches!(slot.state, SlotState::InFlight | SlotState::Lost) {
                delivered(slot.delivered(was_lost));
            }
            self.una = self.una.wrapping_add(1);
            self.next_unsent = self.next_unsent.saturating_sub(1);
        }
        advanced
    }

    /// Applies one SACK block `[first, end)`, calling `delivered` for each packet it newly
    /// delivers. Blocks that reach beyond what was sent, or are empty, are ignored (RFC 2018 §8:
    /// a SACK never makes the sender trust more than it sent).
    pub(crate) fn ack_range(&mut self, first: u32, end: u32, mut delivered: impl FnMut(Delivered)) {
        let first = if lt(first, self.una) { self.una } else { first };
        if !lt(first, end) || lt(self.snd_max(), end) {
            return;
        }
        let start = first.wrapping_sub(self.una) as usize;
        let stop = end.wrapping_sub(self.una) as usize;
        for i in start..stop.min(self.next_unsent) {
            let slot = &mut self.slots[i];
            let was_lost = slot.state == SlotState::Lost;
            match slot.state {
                SlotState::InFlight => self.in_flight -= 1,
                SlotState::Lost => self.lost -= 1,
                _ => continue,
            }
            slot.state = SlotState::Sacked;
            delivered(slot.delivered(was_lost));
        }
    }

    /// True when `ack` does not acknowledge anything never sent.
    pub(crate) fn ack_is_sane(&self, ack: u32) -> bool {
        le(ack, self.snd_max())
    }
}

/// A SACKed packet is never chosen for transmission; reaching this is a bug in the caller.
#[cold]
fn unreachable_sacked() -> bool {
    debug_assert!(false, "a selectively acknowledged packet was picked for transmission");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{BufPool, VecPool};

    fn queue(n: usize) -> SendQueue<crate::buf::VecBuf> {
        let mut pool = VecPool::default();
        let mut q = SendQueue::with_capacity(n);
        q.restart(u32::MAX - 2);
        for _ in 0..n {
            let mut b = pool.alloc().unwrap();
            b.append(HEADER_LEN).unwrap();
            q.push(b, PacketType::Data, 0);
        }
        q
    }

    #[test]
    fn transmissions_are_ordered_and_counted_in_flight() {
        let mut q = queue(4);
        for i in 0..3 {
            assert!(!q.on_transmit(i, Instant::from_micros(i as u64)));
        }
        assert_eq!((q.in_flight(), q.next_unsent(), q.tx_count()), (3, 3, 3));
        assert_eq!(q.slot(2).tx_order, 3);
        assert!(q.mark_lost(0));
        assert!(!q.mark_lost(0), "a lost packet is not lost twice");
        assert_eq!((q.in_flight(), q.lost()), (2, 1));
        assert_eq!(q.first_lost(), Some(0));
        assert!(q.on_transmit(0, Instant::from_micros(9)), "a lost packet's transmission is a retransmission");
        assert_eq!(q.slot(0).tx_order, 4, "a retransmission is ordered when it goes out");
        assert_eq!(q.newest_in_flight(), Some(0));
    }

    /// RFC 2018 §8 / RFC 5961 spirit: SACK blocks outside what was sent change nothing; the cumulative
    /// acknowledgement and SACK each deliver a packet once, across sequence-number wrap.
    #[test]
    fn acknowledgements_deliver_each_packet_once_across_wrap() {
        let mut q = queue(6);
        for i in 0..5 {
            q.on_transmit(i, Instant::from_micros(i as u64));
        }
        let una = q.una();
        let mut got = Vec::new();
        // Beyond what was sent: ignored.
        q.ack_range(una.wrapping_add(3), una.wrapping_add(6), |d| got.push(d.tx_order));
        assert!(got.is_empty());
        q.ack_range(una.wrapping_add(3), una.wrapping_add(5), |d| got.push(d.tx_order));
        q.ack_range(una.wrapping_add(3), una.wrapping_add(5), |d| got.push(d.tx_order));
        assert_eq!(got, [4, 5]);
        assert!(q.ack_cumulative(una.wrapping_add(5), |d| got.push(d.tx_order)));
        assert_eq!(got, [4, 5, 1, 2, 3], "SACKed packets are not delivered again by the cumulative ack");
        assert_eq!((q.in_flight(), q.len(), q.next_unsent()), (0, 1, 0));
        assert!(!q.ack_cumulative(una.wrapping_add(5), |_| panic!("nothing new")));
        assert!(q.ack_is_sane(q.snd_max()) && !q.ack_is_sane(q.snd_max().wrapping_add(1)));
    }

    #[test]
    fn only_unsent_packets_are_taken_back_and_fin_is_tracked() {
        let mut q = queue(2);
        q.on_transmit(0, Instant::ZERO);
        let mut pool = VecPool::default();
        let mut b = pool.alloc().unwrap();
        b.append(HEADER_LEN).unwrap();
        q.push(b, PacketType::Fin, 0);
        assert!(q.fin_seq().is_some());
        q.unpush(5);
        assert_eq!(q.len(), 1, "the sent packet stays");
        assert!(q.fin_seq().is_none());
    }
}
