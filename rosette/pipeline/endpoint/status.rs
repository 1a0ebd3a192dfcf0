//! Connection status shared between a channel stage and its application endpoint: the state every
//! send is checked against, what a connection dropped unacknowledged, and its counters while it runs.
//!
//! A board has one [`Cell`] per connection slot (one for `reliable` / `streaming`, `max_connections`
//! for a table), allocated when the stage is built. The stage, on its lcore, is the only writer of
//! everything but the state word, which the application also moves from open to closing when it
//! closes its direction; the application reads. Every field is an atomic of its own: a reader may
//! see counters of two moments side by side, never a torn value. Nothing here allocates after the
//! board is built.
//!
//! Why a board and not only events: events wait in the delivery queue behind the data before them,
//! and an application that is sending is not reading. A send must be refused the moment the
//! connection is over, so the state is published where the send path looks, one load per call.
//!
//! A producer that must not lose records resends what a dead connection never had acknowledged:
//! ```no_run
//! use rosette::pipeline::endpoint::{EndpointError, ReliableEndpoint};
//! # fn resend_elsewhere(_last: u64) {}
//! fn produce(ep: &ReliableEndpoint, records: &[&[u8]]) -> Result<(), EndpointError> {
//!     for record in records {
//!         match ep.send(record, std::time::Duration::from_secs(1)) {
//!             Ok(()) => {}
//!             Err(EndpointError::ConnectionFailed | EndpointError::ConnectionReset) => {
//!                 // Every record accepted before and not acknowledged, counted by the lcore.
//!                 resend_elsewhere(ep.status().unacknowledged);
//!                 return Ok(());
//!             }
//!             Err(e) => return Err(e),
//!         }
//!     }
//!     Ok(())
//! }
//! ```
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use crate::channel::conn::{self, Outcome, ResetReason};

/// Where a connection is in its life, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnState {
    /// Not connected yet (handshake under way, or a listener waiting for its peer). Sends are
    /// queued and go out once connected.
    #[default]
    Opening,
    /// Connected: data flows.
    Open,
    /// The application closed (reliable) or finished (stream) its sending direction; the peer may
    /// still send. Further sends are refused with [`EndpointError::Closed`](super::EndpointError::Closed).
    Closing,
    /// Ended: both directions closed in order, everything sent was acknowledged.
    Closed,
    /// Ended: reset by the peer, a restarted peer, a protocol violation or the idle timeout.
    Reset(ResetReason),
    /// Ended: the application reset it.
    Aborted,
    /// Ended: retransmissions gave up; the peer stopped answering.
    Failed,
    /// The channel stage stopped (its loop ended): nothing more is sent. What it held
    /// unacknowledged was counted when it stopped.
    Stopped,
}

impl ConnState {
    /// True once the connection is over (nothing more is sent or delivered on it).
    pub fn is_over(self) -> bool {
        matches!(
            self,
            ConnState::Closed | ConnState::Reset(_) | ConnState::Aborted | ConnState::Failed | ConnState::Stopped
        )
    }

    fn code(self) -> u32 {
        match self {
            ConnState::Opening => 1,
            ConnState::Open => 2,
            ConnState::Closing => 3,
            ConnState::Closed => 4,
            ConnState::Aborted => 5,
            ConnState::Failed => 6,
            ConnState::Stopped => 7,
            ConnState::Reset(r) => {
                8 + match r {
                    ResetReason::PeerRestarted => 0,
                    ResetReason::PeerReset => 1,
                    ResetReason::ProtocolViolation => 2,
                    ResetReason::IdleTimeout => 3,
                }
            }
        }
    }

    /// The state of a code; `None` for 0 (a slot never used).
    fn from_code(code: u32) -> Option<ConnState> {
        Some(match code {
            1 => ConnState::Opening,
            2 => ConnState::Open,
            3 => ConnState::Closing,
            4 => ConnState::Closed,
            5 => ConnState::Aborted,
            6 => ConnState::Failed,
            7 => ConnState::Stopped,
            8 => ConnState::Reset(ResetReason::PeerRestarted),
            9 => ConnState::Reset(ResetReason::PeerReset),
            10 => ConnState::Reset(ResetReason::ProtocolViolation),
            11 => ConnState::Reset(ResetReason::IdleTimeout),
            _ => return None,
        })
    }

    /// The state of an ended connection.
    pub(crate) fn of_outcome(outcome: Outcome) -> ConnState {
        match outcome {
            Outcome::Closed => ConnState::Closed,
            Outcome::Reset(r) => ConnState::Reset(r),
            Outcome::Aborted => ConnState::Aborted,
            Outcome::Failed => ConnState::Failed,
        }
    }
}

/// One connection's status, read from the endpoint while the stage runs
/// ([`ReliableEndpoint::status`](super::ReliableEndpoint::status),
/// [`ReliableMuxEndpoint::status`](super::ReliableMuxEndpoint::status), ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnStatus {
    /// Where the connection is.
    pub state: ConnState,
    /// What the application handed over (sends that returned `Ok`) and the peer never
    /// acknowledged, dropped because the connection ended or refused it: messages for a reliable
    /// endpoint, bytes for a stream. Final once the connection is over and the application has seen
    /// a send fail or the ending event (a send queued just before the end is counted when the lcore
    /// reaches it). For a single-connection endpoint it counts over every connection the stage had.
    pub unacknowledged: u64,
    /// Packets transmitted (retransmissions included).
    pub sent: u64,
    /// Data and control packets the peer acknowledged.
    pub acknowledged: u64,
    /// Deliveries handed to the application (messages or packed groups of them; stream segments;
    /// connection events).
    pub delivered: u64,
    /// Packets retransmitted.
    pub retransmits: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Smoothed round-trip time, once measured.
    pub srtt: Option<Duration>,
    /// Congestion window, packets.
    pub cwnd: u32,
    /// Packets the connection holds for sending (queued or unacknowledged).
    pub queued: u32,
}

impl ConnStatus {
    /// The status as named counters (telemetry): the state as its code (1 opening, 2 open,
    /// 3 closing, 4 closed, 5 aborted, 6 failed, 7 stopped, 8.. reset), the counters, srtt in ns.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        [
            ("state", u64::from(self.state.code())),
            ("unacknowledged", self.unacknowledged),
            ("sent", self.sent),
            ("acknowledged", self.acknowledged),
            ("delivered", self.delivered),
            ("retransmits", self.retransmits),
            ("timeouts", self.timeouts),
            ("srtt_ns", self.srtt.map_or(0, |d| d.as_nanos() as u64)),
            ("cwnd", u64::from(self.cwnd)),
            ("queued", u64::from(self.queued)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A table's cumulative counters, over every connection it ever had (open and ended), read from
/// its endpoint while it runs ([`ReliableMuxEndpoint::table_status`](super::ReliableMuxEndpoint::table_status)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStatus {
    /// Connections open now.
    pub live: u64,
    /// Connections the table accepted (listener) or opened (dialer).
    pub opened: u64,
    /// Connections that ended in an orderly close.
    pub closed: u64,
    /// Connections reset (peer, restarted peer, protocol violation, idle timeout).
    pub reset: u64,
    /// Connections the application aborted.
    pub aborted: u64,
    /// Connections whose retransmissions gave up.
    pub failed: u64,
    /// Sends (messages or bytes) the application handed over that were dropped unacknowledged, over
    /// all connections ([`ConnStatus::unacknowledged`] summed, plus sends for handles whose
    /// slot had already been reused).
    pub unacknowledged: u64,
    /// Packets transmitted, over all connections.
    pub sent: u64,
    /// Packets acknowledged, over all connections.
    pub acknowledged: u64,
    /// Packets retransmitted, over all connections.
    pub retransmits: u64,
    /// Retransmission timer expiries, over all connections.
    pub timeouts: u64,
    /// `open` requests the lcore refused because the table was full when it got to them (the
    /// endpoint refuses those it can see will not fit with [`EndpointError::TableFull`](super::EndpointError::TableFull)).
    pub open_refused: u64,
}

impl TableStatus {
    /// The counters by name (telemetry).
    pub fn pairs(&self) -> Vec<(String, u64)> {
        [
            ("live", self.live),
            ("opened", self.opened),
            ("closed", self.closed),
            ("reset", self.reset),
            ("aborted", self.aborted),
            ("failed", self.failed),
            ("unacknowledged", self.unacknowledged),
            ("sent", self.sent),
            ("acknowledged", self.acknowledged),
            ("retransmits", self.retransmits),
            ("timeouts", self.timeouts),
            ("open_refused", self.open_refused),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The live view of one connection slot. `word` holds the slot's generation (high half) and its
/// [`ConnState`] code (low half).
#[derive(Debug, Default)]
pub(crate) struct Cell {
    word: AtomicU64,
    unacknowledged: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    delivered: AtomicU64,
    retransmits: AtomicU64,
    timeouts: AtomicU64,
    srtt_ns: AtomicU64,
    /// cwnd (low half) and queued packets (high half).
    window: AtomicU64,
}

/// Adds `n` to a counter that only the lcore writes (no read-modify-write instruction needed).
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A stage's status cells and its table counters.
#[derive(Debug)]
pub(crate) struct StatusBoard {
    cells: Box<[Cell]>,
    /// Table counters, published by the stage ([`TableStatus`] fields in order).
    table: [AtomicU64; 12],
    /// A dialer's table (the endpoint may ask for more connections).
    dialer: AtomicBool,
    /// `open` requests the lcore has taken (refused ones included).
    opens_taken: AtomicU64,
    /// Set when the stage stops: nothing takes the endpoint's partial packet any more.
    stopped: AtomicBool,
}

impl StatusBoard {
    /// A board of `slots` cells, every one unused.
    pub(crate) fn new(slots: usize) -> StatusBoard {
        StatusBoard {
            cells: (0..slots.max(1)).map(|_| Cell::default()).collect(),
            table: Default::default(),
            dialer: AtomicBool::new(false),
            opens_taken: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    fn cell(&self, index: u32) -> Option<&Cell> {
        self.cells.get(index as usize)
    }

    /// The state of slot `index` for `generation`: `None` when the slot holds another generation
    /// (the handle's connection is gone and its slot reused) or was never used.
    pub(crate) fn state(&self, index: u32, generation: u32) -> Option<ConnState> {
        let word = self.cell(index)?.word.load(Ordering::Acquire);
        if (word >> 32) as u32 != generation {
            return None;
        }
        ConnState::from_code(word as u32)
    }

    /// Application side: marks an open (or opening) connection as closing (its own direction).
    pub(crate) fn close(&self, index: u32, generation: u32) {
        let Some(cell) = self.cell(index) else { return };
        for from in [ConnState::Open, ConnState::Opening] {
            let expect = u64::from(generation) << 32 | u64::from(from.code());
            let closing = u64::from(generation) << 32 | u64::from(ConnState::Closing.code());
            if cell.word.compare_exchange(expect, closing, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return;
            }
        }
    }

    /// Lcore side: slot `index` now holds a new connection of `generation`, in `state`, counters
    /// zero. Published before the application can learn the connection's handle.
    pub(crate) fn open(&self, index: u32, generation: u32, state: ConnState) {
        let Some(cell) = self.cell(index) else { return };
        for c in [
            &cell.unacknowledged,
            &cell.sent,
            &cell.acknowledged,
            &cell.delivered,
            &cell.retransmits,
            &cell.timeouts,
            &cell.srtt_ns,
            &cell.window,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        cell.word.store(u64::from(generation) << 32 | u64::from(state.code()), Ordering::Release);
    }

    /// Lcore side: the connection `generation` of slot `index` is in `state`; a slot that held
    /// another generation (or none) starts over for this one, counters zero.
    pub(crate) fn set_state(&self, index: u32, generation: u32, state: ConnState) {
        let Some(cell) = self.cell(index) else { return };
        if (cell.word.load(Ordering::Relaxed) >> 32) as u32 != generation || cell.word.load(Ordering::Relaxed) == 0 {
            self.open(index, generation, state);
            return;
        }
        cell.word.store(u64::from(generation) << 32 | u64::from(state.code()), Ordering::Release);
    }

    /// Lcore side: makes sure slot `index` describes connection `generation` (opened as `Open` if
    /// it did not), before the application can learn its handle.
    #[inline]
    pub(crate) fn ensure(&self, index: u32, generation: u32) {
        let Some(cell) = self.cell(index) else { return };
        let word = cell.word.load(Ordering::Relaxed);
        if word == 0 || (word >> 32) as u32 != generation {
            self.open(index, generation, ConnState::Open);
        }
    }

    /// Lcore side, when the stage goes (stopped, or dropped after a failure): every connection that
    /// has not ended is marked stopped, so that the application's later sends are refused.
    pub(crate) fn stop(&self) {
        // Before the stage takes the endpoint's partial packet for the last time: an endpoint that
        // parks one after that take sees this and takes it back itself (`is_stopped`).
        self.stopped.store(true, Ordering::SeqCst);
        for cell in self.cells.iter() {
            let mut word = cell.word.load(Ordering::Acquire);
            loop {
                let live = ConnState::from_code(word as u32).is_some_and(|s| !s.is_over());
                if !live {
                    break;
                }
                let stopped = word & !0xffff_ffff | u64::from(ConnState::Stopped.code());
                match cell.word.compare_exchange(word, stopped, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => word = now,
                }
            }
        }
    }

    /// Marks the table a dialer's (set when the stage is built).
    pub(crate) fn set_dialer(&self, dialer: bool) {
        self.dialer.store(dialer, Ordering::Relaxed);
    }

    /// Whether `open` requests make sense: the table dials.
    pub(crate) fn is_dialer(&self) -> bool {
        self.dialer.load(Ordering::Relaxed)
    }

    /// Connection slots of the table.
    pub(crate) fn capacity(&self) -> u64 {
        self.cells.len() as u64
    }

    /// Lcore side: one more `open` request taken (`refused`: the table was full). Publishes the
    /// table's live count first, so that an endpoint that sees the request taken sees the
    /// connection it opened counted.
    pub(crate) fn open_taken(&self, live: usize, refused: bool) {
        self.table[0].store(live as u64, Ordering::Relaxed);
        if refused {
            bump(&self.table[11], 1);
        }
        // Release: the live count above is visible to whoever sees this count.
        let taken = self.opens_taken.load(Ordering::Relaxed) + 1;
        self.opens_taken.store(taken, Ordering::Release);
    }

    /// `open` requests the lcore has taken so far (read before the live count).
    pub(crate) fn opens_taken(&self) -> u64 {
        self.opens_taken.load(Ordering::Acquire)
    }

    /// True once the stage stopped (read after parking a partial packet: see [`Self::stop`]).
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Lcore side (or the application, for a partial packet it took back after the stop): `n` more units (messages or bytes) of slot `index`'s connection were dropped
    /// unacknowledged; `generation` `None` means "whatever connection the slot holds". A unit for a
    /// slot that moved on to another generation is counted for the table only.
    pub(crate) fn add_unacknowledged(&self, index: u32, generation: Option<u32>, n: u64) {
        if n == 0 {
            return;
        }
        // Two writers (the lcore, and the application after a stop): a real atomic add.
        self.table[6].fetch_add(n, Ordering::Relaxed);
        let Some(cell) = self.cell(index) else { return };
        if generation.is_none_or(|g| (cell.word.load(Ordering::Relaxed) >> 32) as u32 == g) {
            cell.unacknowledged.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Lcore side: one more delivery of slot `index`'s connection.
    #[inline]
    pub(crate) fn delivered(&self, index: u32) {
        if let Some(cell) = self.cell(index) {
            bump(&cell.delivered, 1);
        }
    }

    /// Lcore side: the connection's counters now; their growth since the last publication is added
    /// to the table's totals.
    pub(crate) fn publish(&self, index: u32, stats: &conn::Stats, path: &conn::PathStats, queued: usize) {
        let Some(cell) = self.cell(index) else { return };
        for (field, total, now) in [
            (&cell.sent, 7, stats.tx_packets),
            (&cell.acknowledged, 8, stats.acked),
            (&cell.retransmits, 9, stats.retransmits),
            (&cell.timeouts, 10, stats.timeouts),
        ] {
            let before = field.load(Ordering::Relaxed);
            if now != before {
                bump(&self.table[total], now.wrapping_sub(before));
                field.store(now, Ordering::Relaxed);
            }
        }
        let srtt = path.srtt.map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
        cell.srtt_ns.store(srtt, Ordering::Relaxed);
        let queued = queued.min(u32::MAX as usize) as u64;
        cell.window.store(queued << 32 | u64::from(path.cwnd), Ordering::Relaxed);
    }

    /// Lcore side: the table's own counters (connections by fate, live).
    pub(crate) fn publish_table(&self, live: usize, opened: u64, ended: [u64; 4]) {
        self.table[0].store(live as u64, Ordering::Relaxed);
        self.table[1].store(opened, Ordering::Relaxed);
        for (i, n) in ended.into_iter().enumerate() {
            self.table[2 + i].store(n, Ordering::Relaxed);
        }
    }

    /// Slot `index`'s status for `generation` (`None`: another generation holds the slot).
    pub(crate) fn status(&self, index: u32, generation: u32) -> Option<ConnStatus> {
        let state = self.state(index, generation)?;
        let cell = self.cell(index)?;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let window = get(&cell.window);
        let srtt = get(&cell.srtt_ns);
        Some(ConnStatus {
            state,
            unacknowledged: get(&cell.unacknowledged),
            sent: get(&cell.sent),
            acknowledged: get(&cell.acknowledged),
            delivered: get(&cell.delivered),
            retransmits: get(&cell.retransmits),
            timeouts: get(&cell.timeouts),
            srtt: (srtt > 0).then(|| Duration::from_nanos(srtt)),
            cwnd: window as u32,
            queued: (window >> 32) as u32,
        })
    }

    /// Slot `index`'s status, whatever connection holds it (`None`: never used).
    pub(crate) fn status_at(&self, index: u32) -> Option<ConnStatus> {
        let generation = (self.cell(index)?.word.load(Ordering::Acquire) >> 32) as u32;
        self.status(index, generation)
    }

    /// The table's counters.
    pub(crate) fn table_status(&self) -> TableStatus {
        let t: [u64; 12] = core::array::from_fn(|i| self.table[i].load(Ordering::Relaxed));
        TableStatus {
            live: t[0],
            opened: t[1],
            closed: t[2],
            reset: t[3],
            aborted: t[4],
            failed: t[5],
            unacknowledged: t[6],
            sent: t[7],
            acknowledged: t[8],
            retransmits: t[9],
            timeouts: t[10],
            open_refused: t[11],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_code() {
        let all = [
            ConnState::Opening,
            ConnState::Open,
            ConnState::Closing,
            ConnState::Closed,
            ConnState::Aborted,
            ConnState::Failed,
            ConnState::Stopped,
            ConnState::Reset(ResetReason::PeerRestarted),
            ConnState::Reset(ResetReason::PeerReset),
            ConnState::Reset(ResetReason::ProtocolViolation),
            ConnState::Reset(ResetReason::IdleTimeout),
        ];
        for s in all {
            assert_eq!(ConnState::from_code(s.code()), Some(s));
        }
        assert_eq!(ConnState::from_code(0), None);
    }

    #[test]
    fn a_reused_slot_refuses_the_old_handle_and_counts_for_the_table() {
        let board = StatusBoard::new(4);
        assert_eq!(board.state(2, 0), None, "never used");
        board.open(2, 0, ConnState::Open);
        assert_eq!(board.state(2, 0), Some(ConnState::Open));
        board.add_unacknowledged(2, Some(0), 3);
        board.set_state(2, 0, ConnState::Failed);
        let s = board.status(2, 0).unwrap();
        assert_eq!((s.state, s.unacknowledged), (ConnState::Failed, 3));
        board.ensure(2, 1);
        assert_eq!(board.state(2, 0), None, "the slot holds generation 1 now");
        assert_eq!(board.state(2, 1), Some(ConnState::Open));
        board.add_unacknowledged(2, Some(0), 5);
        assert_eq!(board.status(2, 1).unwrap().unacknowledged, 0);
        assert_eq!(board.table_status().unacknowledged, 8);
    }

    #[test]
    fn closing_moves_only_a_live_connection_and_the_lcore_has_the_last_word() {
        let board = StatusBoard::new(1);
        board.open(0, 7, ConnState::Open);
        board.close(0, 6);
        assert_eq!(board.state(0, 7), Some(ConnState::Open), "another generation's close is ignored");
        board.close(0, 7);
        assert_eq!(board.state(0, 7), Some(ConnState::Closing));
        board.set_state(0, 7, ConnState::Reset(ResetReason::PeerReset));
        board.close(0, 7);
        assert_eq!(board.state(0, 7), Some(ConnState::Reset(ResetReason::PeerReset)));
    }

    #[test]
    fn a_stop_ends_only_the_live_connections() {
        let board = StatusBoard::new(3);
        board.open(0, 4, ConnState::Open);
        board.open(1, 2, ConnState::Failed);
        board.stop();
        assert_eq!(board.state(0, 4), Some(ConnState::Stopped));
        assert_eq!(board.state(1, 2), Some(ConnState::Failed), "an ended connection keeps its end");
        assert_eq!(board.state(2, 0), None, "an unused slot stays unused");
    }

    #[test]
    fn published_counters_add_their_growth_to_the_table() {
        let board = StatusBoard::new(2);
        board.open(0, 0, ConnState::Open);
        board.open(1, 0, ConnState::Open);
        let mut stats = conn::Stats { tx_packets: 10, acked: 8, retransmits: 1, ..Default::default() };
        let path = conn::PathStats { cwnd: 12, srtt: Some(Duration::from_micros(30)), ..Default::default() };
        board.publish(0, &stats, &path, 2);
        board.publish(1, &stats, &path, 0);
        stats.tx_packets = 15;
        board.publish(0, &stats, &path, 2);
        let s = board.status(0, 0).unwrap();
        assert_eq!((s.sent, s.acknowledged, s.retransmits, s.cwnd, s.queued), (15, 8, 1, 12, 2));
        assert_eq!(s.srtt, Some(Duration::from_micros(30)));
        let t = board.table_status();
        assert_eq!((t.sent, t.acknowledged, t.retransmits), (25, 16, 2));
    }
}
