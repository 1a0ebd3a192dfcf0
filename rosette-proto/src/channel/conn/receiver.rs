//! The receive side of a connection: the reorder window, the in-order queue the application reads
//! from, the SACK blocks, and the advertised window.
//!
//! The receiver holds at most `capacity` packets, reordered or waiting for the application, and
//! advertises exactly the free room (RFC 9293 §3.8.6's "the window is the buffer"), so nothing the
//! peer sends can make it hold more.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use crate::buf::PacketBuf;
use crate::wire::transport::{PacketType, Repr, FLAG_END_OF_MESSAGE, MAX_SACK_BLOCKS};

use super::lt;

/// An in-order received payload (header stripped).
pub(crate) struct RxSeg<B> {
    pub(crate) buf: B,
    pub(crate) kind: PacketType,
    pub(crate) flags: u8,
}

impl<B> RxSeg<B> {
    /// True for the last segment of a message or the Fin.
    pub(crate) fn is_mark(&self) -> bool {
        self.kind == PacketType::Fin || self.flags & FLAG_END_OF_MESSAGE != 0
    }
}

/// What became of one received sequenced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Taken: in order (and maybe more behind it), or held out of order.
    Accepted,
    /// Already received.
    Duplicate,
    /// Beyond the window, after the peer's Fin, or a SynAck in data position.
    OutOfWindow,
}

/// The receiver. See the module documentation.
pub(crate) struct Receiver<B> {
    capacity: usize,
    /// The next sequence number expected in order.
    rcv_nxt: u32,
    reorder: Vec<Option<RxSeg<B>>>,
    head: usize,
    /// The runs of packets held in `reorder` out of order, as (first sequence, one past the last),
    /// in sequence order, disjoint and never adjacent. Kept incrementally so that building SACK
    /// blocks costs what is held out of order rather than a scan of the whole window.
    held_runs: VecDeque<(u32, u32)>,
    ready: VecDeque<RxSeg<B>>,
    /// Segments in `ready` that end a message (or are the Fin).
    ready_marks: usize,
    peer_fin: bool,
    last_rx_seq: u32,
    /// The right edge last advertised.
    adv_edge: u32,
    /// A sequence number inside each SACK block of the last acknowledgement, most recent first.
    reported: [u32; MAX_SACK_BLOCKS],
    reported_count: usize,
    ack_pending: bool,
}

/// The window-sized queues of a [`Receiver`], lent out while its connection is quiescent.
pub(crate) struct RxStorage<B> {
    reorder: Vec<Option<RxSeg<B>>>,
    held_runs: VecDeque<(u32, u32)>,
    ready: VecDeque<RxSeg<B>>,
}

impl<B> RxStorage<B> {
    /// Empty queues with room for `capacity` packets, allocated once.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut reorder = Vec::with_capacity(capacity);
        reorder.resize_with(capacity, || None);
        RxStorage {
            reorder,
            // Runs are separated by holes, so a window holds at most half as many runs as packets.
            held_runs: VecDeque::with_capacity(capacity / 2 + 1),
            ready: VecDeque::with_capacity(capacity),
        }
    }
}

impl<B: PacketBuf> Receiver<B> {
    /// A receiver holding at most `capacity` packets.
    pub(crate) fn new(capacity: usize) -> Self {
        let RxStorage { reorder, held_runs, ready } = RxStorage::new(capacity);
        Receiver {
            capacity,
            rcv_nxt: 0,
            reorder,
            head: 0,
            held_runs,
            ready,
            ready_marks: 0,
            peer_fin: false,
            last_rx_seq: 0,
            adv_edge: 0,
            reported: [0; MAX_SACK_BLOCKS],
            reported_count: 0,
            ack_pending: false,
        }
    }

    /// True when nothing is held: no segment out of order, none waiting for the application.
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.held_runs.is_empty()
    }

    /// True while the window-sized storage is lent out ([`Self::take_storage`]).
    pub(crate) fn is_parked(&self) -> bool {
        self.reorder.is_empty() && self.capacity > 0
    }

    /// Lends the (empty) storage out, leaving none; see [`super::Storage`].
    pub(crate) fn take_storage(&mut self) -> RxStorage<B> {
        debug_assert!(self.is_empty());
        RxStorage {
            reorder: core::mem::take(&mut self.reorder),
            held_runs: core::mem::take(&mut self.held_runs),
            ready: core::mem::take(&mut self.ready),
        }
    }

    /// Gives storage back: what [`Self::take_storage`] returned (of this receiver or one with the
    /// same capacity), or `None` to allocate it afresh.
    pub(crate) fn give_storage(&mut self, storage: Option<RxStorage<B>>) {
        let storage = match storage {
            Some(s) if s.reorder.len() == self.capacity => s,
            _ => RxStorage::new(self.capacity),
        };
        debug_assert!(storage.reorder.iter().all(Option::is_none));
        self.reorder = storage.reorder;
        self.held_runs = storage.held_runs;
        self.ready = storage.ready;
        self.head %= self.capacity.max(1);
    }

    /// A receiver whose storage is lent out from the start ([`Self::give_storage`] before use).
    pub(crate) fn parked(capacity: usize) -> Self {
        let mut r = Receiver::new(0);
        r.capacity = capacity;
        r
    }

    /// Drops everything held and expects `rcv_nxt` next.
    pub(crate) fn restart(&mut self, rcv_nxt: u32) {
        self.clear();
        self.rcv_nxt = rcv_nxt;
        self.adv_edge = rcv_nxt;
        self.peer_fin = false;
    }

    /// Drops everything held (the connection is gone).
    pub(crate) fn clear(&mut self) {
        self.ready.clear();
        self.ready_marks = 0;
        for slot in &mut self.reorder {
            *slot = None;
        }
        self.held_runs.clear();
        self.reported_count = 0;
        self.ack_pending = false;
    }

    /// The next sequence number expected in order.
    pub(crate) fn rcv_nxt(&self) -> u32 {
        self.rcv_nxt
    }

    /// The free room, in packets: what we advertise.
    pub(crate) fn window(&self) -> u32 {
        self.capacity.saturating_sub(self.ready.len()) as u32
    }

    /// True when the peer's Fin has been received in order.
    pub(crate) fn peer_finished(&self) -> bool {
        self.peer_fin
    }

    /// True when an acknowledgement should be sent.
    pub(crate) fn ack_pending(&self) -> bool {
        self.ack_pending
    }

    /// Asks for an acknowledgement to be sent (a challenge ack, a requested one).
    pub(crate) fn request_ack(&mut self) {
        self.ack_pending = true;
    }

    /// Segments ready for the application, oldest first.
    pub(crate) fn ready(&self) -> &VecDeque<RxSeg<B>> {
        &self.ready
    }

    /// The oldest ready segment, mutably (a stream reader consuming part of it).
    pub(crate) fn front_mut(&mut self) -> Option<&mut RxSeg<B>> {
        self.ready.front_mut()
    }

    /// Ready segments that end a message (or are the Fin).
    pub(crate) fn ready_marks(&self) -> usize {
        self.ready_marks
    }

    /// Packets held, reordered and ready.
    pub(crate) fn held(&self) -> usize {
        let out_of_order: u32 = self.held_runs.iter().map(|&(first, end)| end.wrapping_sub(first)).sum();
        self.ready.len() + out_of_order as usize
    }

    /// Takes the first ready segment.
    pub(crate) fn pop_ready(&mut self) -> Option<RxSeg<B>> {
        let seg = self.ready.pop_front()?;
        if seg.is_mark() {
            self.ready_marks -= 1;
        }
        Some(seg)
    }

    /// To call after taking segments out: asks for a window update when the window has opened
    /// enough (receiver-side silly-window avoidance, RFC 9293 §3.8.6.2.2), or from zero.
    pub(crate) fn on_consumed(&mut self) {
        let edge = self.rcv_nxt.wrapping_add(self.window());
        let step = (self.capacity / 4).max(1) as u32;
        if edge.wrapping_sub(self.adv_edge) as i32 >= step as i32 {
            self.ack_pending = true;
        }
    }

    /// Takes one sequenced packet (payload only). The caller has checked that `buf` may be held
    /// (it is private when more of its message will be chained behind it).
    pub(crate) fn receive(&mut self, r: &Repr, buf: B) -> Arrival {
        self.ack_pending = true;
        let seq = r.seq;
        if lt(seq, self.rcv_nxt) {
            return Arrival::Duplicate;
        }
        let off = seq.wrapping_sub(self.rcv_nxt);
        if off >= self.window() || self.peer_fin || r.kind == PacketType::SynAck {
            return Arrival::OutOfWindow;
        }
        let idx = (self.head + off as usize) % self.capacity;
        if self.reorder[idx].is_some() {
            return Arrival::Duplicate;
        }
        self.reorder[idx] = Some(RxSeg { buf, kind: r.kind, flags: r.flags });
        self.last_rx_seq = seq;
        if off != 0 {
            self.note_held(seq);
            return Arrival::Accepted;
        }
        while let Some(seg) = self.reorder[self.head].take() {
            self.head = (self.head + 1) % self.capacity;
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            if self.peer_fin {
                // Nothing may follow the Fin; the window check above keeps it from being held.
                continue;
            }
            if seg.kind == PacketType::Fin {
                self.peer_fin = true;
            }
            if seg.is_mark() {
                self.ready_marks += 1;
            }
            self.ready.push_back(seg);
        }
        // The in-order run just delivered was the first held run (if it touched `seq`).
        while self.held_runs.front().is_some_and(|&(first, _)| lt(first, self.rcv_nxt)) {
            self.held_runs.pop_front();
        }
        Arrival::Accepted
    }

    /// True if `seq` is beyond the next expected one but inside the window and not yet held: a
    /// packet worth a private copy when its buffer is shared.
    pub(crate) fn would_hold(&self, seq: u32) -> bool {
        if lt(seq, self.rcv_nxt) || self.peer_fin {
            return false;
        }
        let off = seq.wrapping_sub(self.rcv_nxt);
        off < self.window() && self.reorder[(self.head + off as usize) % self.capacity].is_none()
    }

    /// Records that `seq` (beyond `rcv_nxt`, not held before) is now held out of order.
    fn note_held(&mut self, seq: u32) {
        let base = self.rcv_nxt;
        let off = seq.wrapping_sub(base);
        // Runs are ordered by their distance from `rcv_nxt` (all within the window, so no wrap).
        let i = self.held_runs.partition_point(|&(first, _)| first.wrapping_sub(base) < off);
        let joins_prev = i > 0 && self.held_runs[i - 1].1 == seq;
        let joins_next = self.held_runs.get(i).is_some_and(|&(first, _)| first == seq.wrapping_add(1));
        match (joins_prev, joins_next) {
            (true, true) => {
                self.held_runs[i - 1].1 = self.held_runs[i].1;
                self.held_runs.remove(i);
            }
            (true, false) => self.held_runs[i - 1].1 = seq.wrapping_add(1),
            (false, true) => self.held_runs[i].0 = seq,
            (false, false) => self.held_runs.insert(i, (seq, seq.wrapping_add(1))),
        }
    }

    /// Fills the acknowledgement fields of an outgoing packet (cumulative ack, window, SACK
    /// blocks) and notes that the acknowledgement went out.
    pub(crate) fn fill_ack(&mut self, r: &mut Repr, with_sack: bool) {
        if with_sack {
            self.sack_blocks(r);
        }
        r.ack = self.rcv_nxt;
        r.window = self.window();
        self.adv_edge = self.rcv_nxt.wrapping_add(r.window);
        self.ack_pending = false;
    }

    /// The SACK blocks (RFC 2018 §4): the block holding the most recent arrival first, then the
    /// blocks reported most recently (so that each block is repeated in several acknowledgements
    /// and one lost acknowledgement does not hide it from the sender), then the lowest others, as
    /// many as fit.
    pub(crate) fn sack_blocks(&mut self, r: &mut Repr) {
        r.sack_count = 0;
        let base = self.rcv_nxt;
        let wnd = self.window();
        // The index of the held run containing `seq`, if it is held within the window.
        let runs = &self.held_runs;
        let run_of = |seq: u32| {
            let off = seq.wrapping_sub(base);
            if off >= wnd {
                return None;
            }
            let j = runs.partition_point(|&(first, _)| first.wrapping_sub(base) <= off).checked_sub(1)?;
            (off < runs[j].1.wrapping_sub(base)).then_some(j)
        };
        let mut chosen = [0usize; MAX_SACK_BLOCKS];
        let mut count = 0usize;
        let take = |j: usize, chosen: &mut [usize; MAX_SACK_BLOCKS], count: &mut usize| {
            if *count < MAX_SACK_BLOCKS && !chosen[..*count].contains(&j) {
                chosen[*count] = j;
                *count += 1;
            }
        };
        if let Some(j) = run_of(self.last_rx_seq) {
            take(j, &mut chosen, &mut count);
        }
        for &seq in &self.reported[..self.reported_count] {
            if let Some(j) = run_of(seq) {
                take(j, &mut chosen, &mut count);
            }
        }
        for (j, &(first, _)) in runs.iter().enumerate() {
            if count >= MAX_SACK_BLOCKS || first.wrapping_sub(base) >= wnd {
                break;
            }
            take(j, &mut chosen, &mut count);
        }
        for (k, &j) in chosen[..count].iter().enumerate() {
            let (first, end) = runs[j];
            // Cut at the window edge: the window shrinks as the application falls behind.
            let end_off = end.wrapping_sub(base).min(wnd);
            r.sack[k] = (first, base.wrapping_add(end_off));
            self.reported[k] = first;
        }
        self.reported_count = count;
        r.sack_count = count as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{BufPool, VecBuf, VecPool};
    use crate::channel::fault::Rng;

    /// The maximal runs of held packets within the window, by a whole-window scan.
    fn runs_by_scan(c: &Receiver<VecBuf>) -> Vec<(u32, u32)> {
        let cap = c.capacity;
        let wnd = c.window() as usize;
        let present = |off: usize| c.reorder[(c.head + off) % cap].is_some();
        let mut runs = Vec::new();
        let mut off = 0;
        while off < wnd {
            if !present(off) {
                off += 1;
                continue;
            }
            let a = off;
            while off < wnd && present(off) {
                off += 1;
            }
            runs.push((c.rcv_nxt.wrapping_add(a as u32), c.rcv_nxt.wrapping_add(off as u32)));
        }
        runs
    }

    fn sacks(r: &Repr) -> Vec<(u32, u32)> {
        r.sack[..usize::from(r.sack_count)].to_vec()
    }

    fn data(seq: u32) -> Repr {
        let mut r = Repr::new(PacketType::Data, 2, 1, 1);
        r.seq = seq;
        r.flags = FLAG_END_OF_MESSAGE;
        r
    }

    /// Random arrivals (in order, out of order, duplicates, beyond the window) and random reads,
    /// across sequence-number wrap: after every step the SACK blocks are whole held runs found by a
    /// whole-window scan, the most recent arrival's first, then those reported before (RFC 2018 §4).
    #[test]
    fn sack_runs_match_whole_window_scan() {
        let mut pool = VecPool::default();
        for seed in 0..40u64 {
            let mut rng = Rng::new(seed);
            let cap = [8usize, 64, 512][(seed % 3) as usize];
            let mut c = Receiver::new(cap);
            // Start near the wrap so sequence arithmetic is exercised across it.
            c.restart(u32::MAX - (seed as u32) * 37);
            for step in 0..3000 {
                match rng.below(10) {
                    0 => {
                        for _ in 0..rng.below(cap as u64) {
                            c.pop_ready();
                        }
                    }
                    k => {
                        // Mostly near the left edge (holes get filled), sometimes anywhere.
                        let span = if k < 4 { 4 } else { cap as u64 + 2 };
                        let seq = c.rcv_nxt.wrapping_add(rng.below(span) as u32);
                        let _ = c.receive(&data(seq), pool.alloc().unwrap());
                    }
                }
                let before: Vec<(u32, u32)> = c.reported[..c.reported_count]
                    .iter()
                    .filter_map(|&seq| runs_by_scan(&c).into_iter().find(|&(a, b)| !lt(seq, a) && lt(seq, b)))
                    .collect();
                let mut ack = Repr::new(PacketType::Ack, 1, 2, 1);
                c.sack_blocks(&mut ack);
                let blocks = sacks(&ack);
                let runs = runs_by_scan(&c);
                // Every block is a whole held run, each at most once, as many as there are (up to 4).
                assert_eq!(blocks.len(), runs.len().min(MAX_SACK_BLOCKS), "seed {seed} step {step}");
                for (k, b) in blocks.iter().enumerate() {
                    assert!(runs.contains(b), "seed {seed} step {step}: {b:?} is not a run of {runs:?}");
                    assert!(!blocks[..k].contains(b), "seed {seed} step {step}: repeated block");
                }
                // RFC 2018 §4: the most recent arrival's block first, then the ones reported last time.
                let latest = runs.iter().find(|&&(a, b)| !lt(c.last_rx_seq, a) && lt(c.last_rx_seq, b));
                if let Some(latest) = latest {
                    assert_eq!(blocks.first(), Some(latest), "seed {seed} step {step}");
                }
                let room = MAX_SACK_BLOCKS - usize::from(latest.is_some());
                for b in before.iter().filter(|b| Some(*b) != latest).take(room) {
                    assert!(blocks.contains(b), "seed {seed} step {step}: {b:?} reported last time, dropped");
                }
                let scanned = c.ready.len() + c.reorder.iter().filter(|s| s.is_some()).count();
                assert_eq!(c.held(), scanned, "seed {seed} step {step}");
            }
        }
    }

    /// The receiver never holds more than it advertises: a full buffer advertises a zero window and
    /// refuses what lies beyond it; reading reopens the window and asks for an update only once a
    /// quarter of it is free (silly-window avoidance).
    #[test]
    fn window_is_the_free_buffer_and_updates_avoid_silly_windows() {
        let mut pool = VecPool::default();
        let mut c = Receiver::new(8);
        c.restart(100);
        for s in 100..108 {
            assert_eq!(c.receive(&data(s), pool.alloc().unwrap()), Arrival::Accepted);
        }
        assert_eq!(c.window(), 0);
        assert_eq!(c.receive(&data(108), pool.alloc().unwrap()), Arrival::OutOfWindow);
        assert_eq!(c.receive(&data(99), pool.alloc().unwrap()), Arrival::Duplicate);
        let mut ack = Repr::new(PacketType::Ack, 1, 2, 1);
        c.fill_ack(&mut ack, true);
        assert_eq!((ack.ack, ack.window, c.ack_pending()), (108, 0, false));
        c.pop_ready();
        c.on_consumed();
        assert!(!c.ack_pending(), "one free packet of eight is a silly window");
        c.pop_ready();
        c.on_consumed();
        assert!(c.ack_pending());
        assert_eq!(c.ready_marks(), 6);
    }

    #[test]
    fn nothing_is_delivered_after_the_fin() {
        let mut pool = VecPool::default();
        let mut c = Receiver::new(8);
        c.restart(0);
        let mut fin = data(1);
        fin.kind = PacketType::Fin;
        assert_eq!(c.receive(&fin, pool.alloc().unwrap()), Arrival::Accepted);
        assert_eq!(c.receive(&data(2), pool.alloc().unwrap()), Arrival::Accepted);
        assert_eq!(c.receive(&data(0), pool.alloc().unwrap()), Arrival::Accepted);
        assert!(c.peer_finished());
        assert_eq!(c.ready().len(), 2, "the data before the Fin and the Fin, nothing after");
        assert_eq!(c.receive(&data(3), pool.alloc().unwrap()), Arrival::OutOfWindow);
    }
}
