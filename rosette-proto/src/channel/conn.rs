//! The connection engine shared by the reliable and streaming channels.
//!
//! One engine (`Core`, crate-private) is one connection: handshake with connection ids and
//! epochs, a packet-numbered sequence space, cumulative and selective acknowledgements, RFC 6298 retransmission timer,
//! RACK-like loss detection with a NewReno-style congestion window, receiver-window flow control with
//! zero-window probes, orderly FIN and RFC 5961-style reset validation. The channels above it decide
//! what a packet payload means (a message segment, or a run of stream bytes).
//!
//! # Sequence space
//! Every sequenced packet (Syn, SynAck, Data, Fin) takes one sequence number. The initiator's Syn and
//! the acceptor's SynAck are sequence 0 of their directions, so the handshake is retransmitted by the
//! same timer as data. Windows are counted in packets from the cumulative acknowledgement.
//!
//! # Bounded memory
//! The sender holds at most `send_capacity` packets (+1 for the Fin); the receiver holds at most
//! `recv_capacity` packets, reordered or waiting for the application, and advertises exactly the free
//! room, so nothing the peer sends can make it hold more. Connection events are capped too.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use core::time::Duration;

use crate::buf::{BufPool, PacketBuf};
use crate::channel::rtt::RttEstimator;
use crate::channel::time::Instant;
use crate::wire::transport::{
    Error as WireError, Packet, PacketType, Repr, FLAG_ACK_REQUESTED, FLAG_END_OF_MESSAGE, FLAG_PACKED, HEADER_LEN,
    MAX_SACK_BLOCKS,
};

/// Packets sent after a lost one (in transmission order) before it is declared lost.
const REORDER_THRESHOLD: u64 = 3;
/// Most connection events kept for the application.
const MAX_EVENTS: usize = 16;

/// Configuration of one connection. Every bound on memory comes from here.
#[derive(Debug, Clone)]
pub struct Config {
    /// Payload bytes per packet.
    pub mss: usize,
    /// Packets the sender holds (queued and unacknowledged); `send`/`write` block beyond it.
    pub send_capacity: usize,
    /// Packets the receiver holds (out of order and not yet read); also the largest window.
    pub recv_capacity: usize,
    /// Largest message of the reliable channel, in bytes. Must fit in `recv_capacity - 1` packets
    /// of the *peer's* receiver.
    pub max_message_size: usize,
    /// Retransmission timeout before the first RTT sample (RFC 6298 suggests 1 s on the Internet).
    pub initial_rto: Duration,
    /// Lower bound on the retransmission timeout. Default 1 ms: rosette runs user-space on a LAN
    /// where RTTs are tens of microseconds, and RFC 6298's 1 s floor would stall a lossy link.
    pub min_rto: Duration,
    /// Upper bound on the (backed-off) retransmission timeout.
    pub max_rto: Duration,
    /// Consecutive timeouts without progress after which the connection fails.
    pub max_backoffs: u32,
    /// Time without progress (while data is outstanding) after which the connection fails.
    pub give_up_after: Duration,
    /// Initial congestion window, packets.
    pub initial_cwnd: u32,
    /// Headroom left in front of every outgoing packet for UDP/IPv4/Ethernet headers.
    pub lower_headroom: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1400,
            send_capacity: 256,
            recv_capacity: 256,
            max_message_size: 64 * 1024,
            initial_rto: Duration::from_millis(10),
            min_rto: Duration::from_millis(1),
            max_rto: Duration::from_secs(1),
            max_backoffs: 16,
            give_up_after: Duration::from_secs(10),
            initial_cwnd: 10,
            lower_headroom: 64,
        }
    }
}

impl Config {
    /// Checks the configuration for contradictions, returning a description of the first one.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.mss == 0 || self.mss > usize::from(u16::MAX) {
            return Err("mss must be in 1..=65535");
        }
        if self.send_capacity < 2 || self.recv_capacity < 2 {
            return Err("send_capacity and recv_capacity must be at least 2");
        }
        if self.max_message_size.div_ceil(self.mss).max(1) > self.recv_capacity - 1 {
            return Err("max_message_size must fit in recv_capacity - 1 packets");
        }
        if self.max_message_size.div_ceil(self.mss).max(1) > self.send_capacity {
            return Err("max_message_size must fit in send_capacity packets");
        }
        if self.initial_cwnd == 0 {
            return Err("initial_cwnd must be at least 1");
        }
        Ok(())
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a Syn (acceptor side).
    Listen,
    /// Syn sent, waiting for the SynAck (initiator side).
    SynSent,
    /// Handshake done; data flows. Stays here after an orderly close to keep acknowledging.
    Established,
    /// Reset or failed; nothing more is sent or delivered.
    Closed,
}

/// Why a connection was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The peer came back with a new epoch: it restarted, its old connection is gone.
    PeerRestarted,
    /// The peer sent a valid Reset.
    PeerReset,
    /// The peer broke the protocol (e.g. a message larger than the receive buffer).
    ProtocolViolation,
}

/// Packets dropped on receive, by reason (RFC 5961 spirit: drop and count, never trust).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Too short, inconsistent lengths, wrong magic/version/type.
    pub malformed: u64,
    /// CRC-32C mismatch.
    pub bad_checksum: u64,
    /// Connection ids that do not match this connection (or no connection).
    pub unknown_connection: u64,
    /// The right connection ids but an older (or unexpected) epoch.
    pub stale_epoch: u64,
    /// Sequence beyond the receive window, ack of unsent data, reset with a wrong sequence.
    pub out_of_window: u64,
    /// Already received.
    pub duplicate: u64,
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to the transmit path.
    pub tx_packets: u64,
    /// Packets received (before validation).
    pub rx_packets: u64,
    /// Retransmitted packets.
    pub retransmits: u64,
    /// Packets declared lost from acknowledgements (fast retransmit).
    pub fast_lost: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Congestion window reductions.
    pub congestion_events: u64,
    /// Zero-window probes sent.
    pub probes: u64,
    /// Times the buffer pool was empty when a packet had to be built.
    pub pool_empty: u64,
    /// Messages appended to a queued packet that already held others (reliable packing).
    pub packed: u64,
    /// Connection events dropped because the application did not poll them.
    pub events_dropped: u64,
    /// Receive drops by reason.
    pub drops: Drops,
}

/// Connection-level happenings, turned into channel events by the wrappers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoreEvent {
    Connected,
    Reset(ResetReason),
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Unsent,
    InFlight,
    Lost,
    Sacked,
}

struct TxSlot<B> {
    seq: u32,
    kind: PacketType,
    flags: u8,
    /// The whole packet: header space then payload.
    buf: B,
    state: SlotState,
    sent_at: Instant,
    tx_order: u64,
    retransmitted: bool,
    /// Lower-layer header bytes the driver prepended in place at the last transmission; stripped
    /// again before the packet is next used.
    lower: usize,
}

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

/// The initial sequence number of a connection, from the sender's epoch and connection id.
///
/// Distinct epochs of one connection id always give distinct numbers (xor with a constant and
/// multiplication by an odd constant are bijections), so a SynAck that answers the Syn of an
/// earlier incarnation (its ack is that incarnation's ISN + 1) is never taken for ours, and blind
/// injection has to guess the sequence window, not just the ids.
pub(crate) fn initial_seq(epoch: u32, local_id: u32) -> u32 {
    (epoch ^ local_id.rotate_left(16)).wrapping_mul(0x9E37_79B9)
}

fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn le(a: u32, b: u32) -> bool {
    !lt(b, a)
}

/// The connection engine. See the module documentation.
pub(crate) struct Core<P: BufPool> {
    pub(crate) cfg: Config,
    pub(crate) pool: P,
    server: bool,
    state: State,
    local_id: u32,
    local_epoch: u32,
    peer_id: u32,
    peer_epoch: u32,
    // --- send side ---
    tx: VecDeque<TxSlot<P::Buf>>,
    snd_una: u32,
    next_unsent: usize,
    pipe: u32,
    lost: u32,
    peer_wnd: u32,
    wnd_ack: u32,
    cwnd: u32,
    ssthresh: u32,
    ca_acc: u32,
    recovery_end: Option<u32>,
    tx_counter: u64,
    rack_order: u64,
    rtt: RttEstimator,
    rto_at: Option<Instant>,
    probe_at: Option<Instant>,
    probe_backoff: u32,
    probe_due: bool,
    last_progress: Instant,
    /// When the last valid packet of the peer arrived (bounds zero-window probing).
    last_heard: Instant,
    fin_seq: Option<u32>,
    // --- receive side ---
    rcv_nxt: u32,
    reorder: Vec<Option<RxSeg<P::Buf>>>,
    head: usize,
    /// The runs of packets held in `reorder` out of order, as (first sequence, one past the last),
    /// in sequence order, disjoint and never adjacent. Kept incrementally so that building SACK
    /// blocks costs what is held out of order rather than a scan of the whole window.
    held_runs: VecDeque<(u32, u32)>,
    pub(crate) ready: VecDeque<RxSeg<P::Buf>>,
    pub(crate) ready_marks: usize,
    peer_fin: bool,
    last_rx_seq: u32,
    adv_edge: u32,
    ack_pending: bool,
    reset_reply: Option<Repr>,
    send_reset: Option<Repr>,
    events: VecDeque<CoreEvent>,
    closed_reported: bool,
    pub(crate) stats: Stats,
}

impl<P: BufPool> Core<P> {
    fn new(cfg: Config, pool: P, server: bool, local_id: u32, epoch: u32, now: Instant) -> Self {
        let rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        let mut reorder = Vec::with_capacity(cfg.recv_capacity);
        // Runs are separated by holes, so a window holds at most half as many runs as packets.
        let cfg_runs = cfg.recv_capacity / 2 + 1;
        reorder.resize_with(cfg.recv_capacity, || None);
        Core {
            tx: VecDeque::with_capacity(cfg.send_capacity + 2),
            ready: VecDeque::with_capacity(cfg.recv_capacity),
            events: VecDeque::with_capacity(MAX_EVENTS),
            cwnd: cfg.initial_cwnd,
            ssthresh: u32::MAX,
            cfg,
            pool,
            server,
            state: if server { State::Listen } else { State::SynSent },
            local_id,
            local_epoch: epoch,
            peer_id: 0,
            peer_epoch: 0,
            snd_una: 0,
            next_unsent: 0,
            pipe: 0,
            lost: 0,
            peer_wnd: 1,
            wnd_ack: 0,
            ca_acc: 0,
            recovery_end: None,
            tx_counter: 0,
            rack_order: 0,
            rtt,
            rto_at: None,
            probe_at: None,
            probe_backoff: 0,
            probe_due: false,
            last_progress: now,
            last_heard: now,
            fin_seq: None,
            rcv_nxt: 0,
            reorder,
            head: 0,
            held_runs: VecDeque::with_capacity(cfg_runs),
            ready_marks: 0,
            peer_fin: false,
            last_rx_seq: 0,
            adv_edge: 0,
            ack_pending: false,
            reset_reply: None,
            send_reset: None,
            closed_reported: false,
            stats: Stats::default(),
        }
    }

    /// An initiator: queues the Syn at once.
    pub(crate) fn connect(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        let mut core = Core::new(cfg, pool, false, local_id, epoch, now);
        core.snd_una = initial_seq(epoch, local_id);
        core.wnd_ack = core.snd_una;
        if let Some(buf) = core.alloc_segment() {
            core.push(buf, PacketType::Syn, 0);
        } else {
            core.stats.pool_empty += 1;
            core.fail();
        }
        core
    }

    /// An acceptor waiting for a Syn.
    pub(crate) fn listen(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        Core::new(cfg, pool, true, local_id, epoch, now)
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    fn snd_max(&self) -> u32 {
        self.snd_una.wrapping_add(self.next_unsent as u32)
    }

    fn snd_nxt(&self) -> u32 {
        self.snd_una.wrapping_add(self.tx.len() as u32)
    }

    fn rcv_wnd(&self) -> u32 {
        self.cfg.recv_capacity.saturating_sub(self.ready.len()) as u32
    }

    /// Packets that may still be queued for sending.
    pub(crate) fn send_space(&self) -> usize {
        match self.state {
            State::SynSent | State::Established if self.fin_seq.is_none() => {
                self.cfg.send_capacity.saturating_sub(self.tx.len())
            }
            _ => 0,
        }
    }

    /// True while data may be queued (connection open, not finished).
    pub(crate) fn can_send(&self) -> bool {
        matches!(self.state, State::SynSent | State::Established) && self.fin_seq.is_none()
    }

    /// A pool buffer with room reserved for the transport header; the caller appends the payload.
    pub(crate) fn alloc_segment(&mut self) -> Option<P::Buf> {
        let mut buf = self.pool.alloc()?;
        if buf.headroom() < self.cfg.lower_headroom + HEADER_LEN {
            // The pool leaves no room for the lower layers in front: keep the header inside.
            if buf.append(HEADER_LEN).is_err() {
                return None;
            }
        } else if buf.prepend(HEADER_LEN).is_err() {
            return None;
        }
        Some(buf)
    }

    /// Reserves header room in front of a caller-provided payload buffer (copying it into a pool
    /// buffer when it has no room in front or is shared); gives it back when the copy fails.
    pub(crate) fn wrap_payload(&mut self, mut buf: P::Buf) -> Result<P::Buf, P::Buf> {
        if buf.headroom() >= self.cfg.lower_headroom + HEADER_LEN && !buf.is_shared() && buf.prepend(HEADER_LEN).is_ok()
        {
            return Ok(buf);
        }
        // Rare path: not enough headroom, copy.
        let Some(mut copy) = self.alloc_segment() else { return Err(buf) };
        match copy.append(buf.len()) {
            Ok(d) => {
                d.copy_from_slice(buf.data());
                Ok(copy)
            }
            Err(_) => Err(buf),
        }
    }

    /// Mutable access to the payload tail of the newest never-sent data packet, for coalescing.
    pub(crate) fn last_unsent_data(&mut self) -> Option<&mut P::Buf> {
        if self.next_unsent >= self.tx.len() {
            return None;
        }
        let slot = self.tx.back_mut()?;
        (slot.kind == PacketType::Data && slot.state == SlotState::Unsent).then_some(&mut slot.buf)
    }

    /// The newest never-sent data packet if it is packed ([`FLAG_PACKED`]) and `extra` more payload
    /// bytes fit in it (within the mss and the buffer's tailroom), for appending one more record.
    pub(crate) fn last_unsent_packed(&mut self, extra: usize) -> Option<&mut P::Buf> {
        if self.next_unsent >= self.tx.len() {
            return None;
        }
        let mss = self.cfg.mss;
        let slot = self.tx.back_mut()?;
        let fits = slot.buf.len() - HEADER_LEN + extra <= mss && slot.buf.tailroom() >= extra;
        (slot.kind == PacketType::Data && slot.state == SlotState::Unsent && slot.flags & FLAG_PACKED != 0 && fits)
            .then_some(&mut slot.buf)
    }

    /// True while a queued packet has never been transmitted.
    pub(crate) fn has_unsent(&self) -> bool {
        self.next_unsent < self.tx.len()
    }

    /// Takes the `n` newest packets back out of the send queue (never sent: a message that could not
    /// be queued whole).
    pub(crate) fn unpush(&mut self, n: usize) {
        for _ in 0..n {
            if self.tx.len() <= self.next_unsent {
                return;
            }
            self.tx.pop_back();
        }
    }

    /// Queues a sequenced packet whose buffer starts with [`HEADER_LEN`] reserved bytes.
    pub(crate) fn push(&mut self, buf: P::Buf, kind: PacketType, flags: u8) {
        let seq = self.snd_nxt();
        if kind == PacketType::Fin {
            self.fin_seq = Some(seq);
        }
        self.tx.push_back(TxSlot {
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

    /// Queues the Fin: no more data from this side.
    pub(crate) fn finish(&mut self) -> bool {
        if !self.can_send() {
            return false;
        }
        match self.alloc_segment() {
            Some(buf) => {
                self.push(buf, PacketType::Fin, 0);
                true
            }
            None => {
                self.stats.pool_empty += 1;
                false
            }
        }
    }

    /// Aborts the connection and tells the peer.
    pub(crate) fn reset(&mut self) {
        if matches!(self.state, State::SynSent | State::Established) && self.peer_id != 0 {
            let mut r = Repr::new(PacketType::Reset, self.local_id, self.peer_id, self.local_epoch);
            r.seq = self.snd_max();
            r.ack = self.rcv_nxt;
            self.send_reset = Some(r);
        }
        self.clear();
        self.state = State::Closed;
    }

    pub(crate) fn poll_core_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// True once, when both directions are finished and our Fin is acknowledged.
    pub(crate) fn take_closed(&mut self) -> bool {
        let fin_acked = self.fin_seq.is_some_and(|f| lt(f, self.snd_una));
        if fin_acked && self.peer_fin && self.ready.is_empty() && !self.closed_reported {
            self.closed_reported = true;
            return true;
        }
        false
    }

    /// True when the peer's Fin has been received in order.
    pub(crate) fn peer_finished(&self) -> bool {
        self.peer_fin
    }

    /// To call after taking segments out of `ready`: sends a window update when the window has
    /// opened enough (receiver-side silly-window avoidance), or from zero.
    pub(crate) fn on_consumed(&mut self) {
        let edge = self.rcv_nxt.wrapping_add(self.rcv_wnd());
        let step = (self.cfg.recv_capacity / 4).max(1) as u32;
        if edge.wrapping_sub(self.adv_edge) as i32 >= step as i32 {
            self.ack_pending = true;
        }
    }

    /// Takes the first ready segment and accounts for it.
    pub(crate) fn pop_ready(&mut self) -> Option<RxSeg<P::Buf>> {
        let seg = self.ready.pop_front()?;
        if seg.is_mark() {
            self.ready_marks -= 1;
        }
        Some(seg)
    }

    fn push_event(&mut self, ev: CoreEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(ev);
    }

    fn clear(&mut self) {
        self.tx.clear();
        self.ready.clear();
        self.ready_marks = 0;
        for slot in &mut self.reorder {
            *slot = None;
        }
        self.held_runs.clear();
        self.pipe = 0;
        self.lost = 0;
        self.next_unsent = 0;
        self.rto_at = None;
        self.probe_at = None;
        self.probe_due = false;
        self.ack_pending = false;
    }

    fn fail(&mut self) {
        self.clear();
        self.state = State::Closed;
        self.push_event(CoreEvent::Failed);
    }

    /// Drops the current connection because of `reason` and (acceptor) waits for a new one.
    pub(crate) fn reset_connection(&mut self, reason: ResetReason) {
        self.clear();
        self.push_event(CoreEvent::Reset(reason));
        self.state = State::Closed;
    }

    fn reset_reply_for(&self, r: &Repr) -> Repr {
        // As TCP does for a segment without a connection: our seq is its ack, our ack its seq, so
        // the peer's exact-sequence check (RFC 5961 §3.2) accepts it.
        let mut reply = Repr::new(PacketType::Reset, r.dst_conn, r.src_conn, self.local_epoch);
        reply.seq = r.ack;
        reply.ack = r.seq;
        reply
    }

    // ------------------------------------------------------------------ receive

    /// Processes one received datagram (the UDP payload).
    pub(crate) fn handle(&mut self, now: Instant, buf: P::Buf) {
        self.stats.rx_packets += 1;
        let parsed = Packet::new_checked(buf.data()).and_then(|p| Repr::parse(&p));
        let repr = match parsed {
            Ok(r) => r,
            Err(WireError::Checksum) => {
                self.stats.drops.bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.stats.drops.malformed += 1;
                return;
            }
        };
        match self.state {
            State::Listen => {
                if repr.kind == PacketType::Syn && repr.dst_conn == 0 {
                    self.accept(now, &repr);
                } else {
                    self.stats.drops.unknown_connection += 1;
                    if repr.kind != PacketType::Reset {
                        self.reset_reply = Some(self.reset_reply_for(&repr));
                    }
                }
            }
            State::Closed => {
                if self.server && repr.kind == PacketType::Syn && repr.dst_conn == 0 {
                    if repr.src_conn == self.peer_id && !lt(self.peer_epoch, repr.epoch) {
                        self.stats.drops.stale_epoch += 1;
                    } else {
                        self.accept(now, &repr);
                    }
                    return;
                }
                self.stats.drops.unknown_connection += 1;
                if repr.kind != PacketType::Reset && repr.kind != PacketType::Syn {
                    self.reset_reply = Some(self.reset_reply_for(&repr));
                }
            }
            State::SynSent => self.on_syn_sent(now, &repr),
            State::Established => self.on_established(now, &repr, buf),
        }
    }

    fn accept(&mut self, now: Instant, r: &Repr) {
        self.clear();
        self.peer_id = r.src_conn;
        self.peer_epoch = r.epoch;
        self.rcv_nxt = r.seq.wrapping_add(1);
        self.adv_edge = self.rcv_nxt;
        self.snd_una = initial_seq(self.local_epoch ^ r.epoch, self.local_id);
        self.wnd_ack = self.snd_una;
        self.peer_wnd = r.window.max(1);
        self.fin_seq = None;
        self.peer_fin = false;
        self.closed_reported = false;
        self.cwnd = self.cfg.initial_cwnd;
        self.ssthresh = u32::MAX;
        self.recovery_end = None;
        self.rtt = RttEstimator::new(self.cfg.initial_rto, self.cfg.min_rto, self.cfg.max_rto);
        self.last_progress = now;
        self.last_heard = now;
        self.state = State::Established;
        match self.alloc_segment() {
            Some(buf) => self.push(buf, PacketType::SynAck, 0),
            None => {
                self.stats.pool_empty += 1;
                self.state = State::Listen;
                return;
            }
        }
        self.push_event(CoreEvent::Connected);
    }

    fn on_syn_sent(&mut self, now: Instant, r: &Repr) {
        if r.dst_conn != self.local_id {
            self.stats.drops.unknown_connection += 1;
            return;
        }
        match r.kind {
            PacketType::SynAck if r.ack == self.snd_una.wrapping_add(1) => {
                self.peer_id = r.src_conn;
                self.peer_epoch = r.epoch;
                self.rcv_nxt = r.seq.wrapping_add(1);
                self.adv_edge = self.rcv_nxt;
                self.state = State::Established;
                self.last_heard = now;
                self.process_ack(now, r);
                self.ack_pending = true;
                self.push_event(CoreEvent::Connected);
            }
            PacketType::Reset if r.ack == self.snd_una => {
                self.reset_connection(ResetReason::PeerReset);
            }
            _ => self.stats.drops.unknown_connection += 1,
        }
    }

    fn on_established(&mut self, now: Instant, r: &Repr, mut buf: P::Buf) {
        if r.kind == PacketType::Syn {
            if r.dst_conn != 0 {
                self.stats.drops.malformed += 1;
            } else if r.src_conn == self.peer_id && r.epoch == self.peer_epoch {
                self.stats.drops.duplicate += 1;
                // Our SynAck was probably lost: resend it now rather than at the next timeout.
                if let Some(front) = self.tx.front_mut() {
                    if front.kind == PacketType::SynAck && front.state == SlotState::InFlight {
                        front.state = SlotState::Lost;
                        self.pipe -= 1;
                        self.lost += 1;
                    }
                }
            } else if self.server && lt(self.peer_epoch, r.epoch) {
                // A new incarnation of the peer: the old connection is dead.
                self.reset_connection(ResetReason::PeerRestarted);
                self.accept(now, r);
            } else {
                self.stats.drops.stale_epoch += 1;
            }
            return;
        }
        if r.dst_conn != self.local_id || r.src_conn != self.peer_id {
            self.stats.drops.unknown_connection += 1;
            return;
        }
        if r.kind == PacketType::Reset {
            // RFC 5961 §3.2: only an exact sequence match resets; anything else in the window earns
            // a challenge acknowledgement, so a blind reset cannot kill the connection.
            let newer = lt(self.peer_epoch, r.epoch);
            if r.seq == self.rcv_nxt && (r.epoch == self.peer_epoch || newer) {
                let reason = if newer { ResetReason::PeerRestarted } else { ResetReason::PeerReset };
                self.reset_connection(reason);
            } else {
                self.stats.drops.out_of_window += 1;
                self.ack_pending = true;
            }
            return;
        }
        if r.epoch != self.peer_epoch {
            self.stats.drops.stale_epoch += 1;
            return;
        }
        self.last_heard = now;
        if lt(self.snd_max(), r.ack) {
            // Acknowledges something never sent.
            self.stats.drops.out_of_window += 1;
            self.ack_pending = true;
            return;
        }
        self.process_ack(now, r);
        if self.state != State::Established {
            return;
        }
        if r.flags & FLAG_ACK_REQUESTED != 0 {
            self.ack_pending = true;
        }
        match r.kind {
            PacketType::Data | PacketType::Fin | PacketType::SynAck => {
                if buf.adjust(r.header_len()).is_err() {
                    self.stats.drops.malformed += 1;
                    return;
                }
                self.receive(r, buf);
            }
            _ => {}
        }
    }

    fn receive(&mut self, r: &Repr, buf: P::Buf) {
        self.ack_pending = true;
        let seq = r.seq;
        if lt(seq, self.rcv_nxt) {
            self.stats.drops.duplicate += 1;
            return;
        }
        let off = seq.wrapping_sub(self.rcv_nxt);
        if off >= self.rcv_wnd() || self.peer_fin || r.kind == PacketType::SynAck {
            self.stats.drops.out_of_window += 1;
            return;
        }
        let cap = self.cfg.recv_capacity;
        let idx = (self.head + off as usize) % cap;
        if self.reorder[idx].is_some() {
            self.stats.drops.duplicate += 1;
            return;
        }
        // A segment that more of its message will be chained behind must not be shared (a duplicate
        // still held by a lower layer): give it a private copy from the pool, or treat it as lost.
        let buf = if r.kind == PacketType::Data && r.flags & FLAG_END_OF_MESSAGE == 0 && buf.is_shared() {
            let Some(copy) = self.private_copy(&buf) else {
                self.stats.pool_empty += 1;
                return;
            };
            copy
        } else {
            buf
        };
        self.reorder[idx] = Some(RxSeg { buf, kind: r.kind, flags: r.flags });
        self.last_rx_seq = seq;
        if off != 0 {
            self.note_held(seq);
            return;
        }
        while let Some(seg) = self.reorder[self.head].take() {
            self.head = (self.head + 1) % cap;
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            if self.peer_fin {
                // Nothing may follow the Fin.
                self.stats.drops.out_of_window += 1;
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
    }

    /// An unshared copy of a received payload, from the pool.
    fn private_copy(&mut self, buf: &P::Buf) -> Option<P::Buf> {
        let mut copy = self.pool.alloc()?;
        copy.append(buf.len()).ok()?.copy_from_slice(buf.data());
        Some(copy)
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

    fn mark_lost(&mut self, i: usize) {
        let slot = &mut self.tx[i];
        if slot.state == SlotState::InFlight {
            slot.state = SlotState::Lost;
            self.pipe -= 1;
            self.lost += 1;
        }
    }

    fn process_ack(&mut self, now: Instant, r: &Repr) {
        let mut newly = 0u32;
        // The most recently transmitted of the newly acknowledged packets is the one whose arrival
        // most likely triggered this acknowledgement: time it, unless it was a retransmission
        // (Karn's rule) or was already declared lost (its ack may have been the one lost).
        let mut sample: Option<(u64, Instant, bool)> = None;
        let consider = |slot: &TxSlot<P::Buf>, sample: &mut Option<(u64, Instant, bool)>| {
            if sample.is_none_or(|(o, _, _)| slot.tx_order > o) {
                let ambiguous = slot.retransmitted || slot.state == SlotState::Lost;
                *sample = Some((slot.tx_order, slot.sent_at, ambiguous));
            }
        };
        let advanced = lt(self.snd_una, r.ack);
        while lt(self.snd_una, r.ack) {
            let Some(slot) = self.tx.pop_front() else {
                break;
            };
            match slot.state {
                SlotState::InFlight => {
                    self.pipe -= 1;
                    newly += 1;
                }
                SlotState::Lost => {
                    self.lost -= 1;
                    newly += 1;
                }
                SlotState::Sacked | SlotState::Unsent => {}
            }
            if matches!(slot.state, SlotState::InFlight | SlotState::Lost) {
                // A slot SACKed earlier was timed then; timing it now would inflate the RTT.
                self.rack_order = self.rack_order.max(slot.tx_order);
                consider(&slot, &mut sample);
            }
            self.snd_una = self.snd_una.wrapping_add(1);
            self.next_unsent = self.next_unsent.saturating_sub(1);
        }
        if advanced {
            self.last_progress = now;
            self.rtt.reset_backoff();
            self.probe_backoff = 0;
        }
        if le(self.wnd_ack, r.ack) {
            self.wnd_ack = r.ack;
            self.peer_wnd = r.window;
        }
        // Selective acknowledgements.
        let snd_max = self.snd_max();
        for &(first, end) in r.sack.iter().take(usize::from(r.sack_count).min(MAX_SACK_BLOCKS)) {
            let first = if lt(first, self.snd_una) { self.snd_una } else { first };
            if !lt(first, end) || lt(snd_max, end) {
                continue;
            }
            let start = first.wrapping_sub(self.snd_una) as usize;
            let stop = end.wrapping_sub(self.snd_una) as usize;
            for i in start..stop.min(self.next_unsent) {
                let slot = &mut self.tx[i];
                match slot.state {
                    SlotState::InFlight => self.pipe -= 1,
                    SlotState::Lost => self.lost -= 1,
                    _ => continue,
                }
                consider(slot, &mut sample);
                slot.state = SlotState::Sacked;
                newly += 1;
                self.rack_order = self.rack_order.max(slot.tx_order);
            }
        }
        if let Some((_, sent_at, false)) = sample {
            self.rtt.on_sample(now.saturating_duration_since(sent_at));
        }
        // RACK-like loss detection: a packet sent well before one that arrived is lost.
        let mut newly_lost = 0;
        if newly > 0 && self.pipe > 0 && self.rack_order > REORDER_THRESHOLD {
            for i in 0..self.next_unsent {
                let s = &self.tx[i];
                if s.state == SlotState::InFlight && s.tx_order + REORDER_THRESHOLD <= self.rack_order {
                    self.mark_lost(i);
                    newly_lost += 1;
                }
            }
        }
        if let Some(end) = self.recovery_end {
            if le(end, self.snd_una) {
                self.recovery_end = None;
            }
        }
        if newly_lost > 0 {
            self.stats.fast_lost += newly_lost;
            if self.recovery_end.is_none() {
                // One multiplicative decrease per window of data (NewReno recovery).
                self.ssthresh = (self.cwnd / 2).max(2);
                self.cwnd = self.ssthresh;
                self.ca_acc = 0;
                self.recovery_end = Some(self.snd_max());
                self.stats.congestion_events += 1;
            }
        } else if newly > 0 && (self.recovery_end.is_none() || self.cwnd < self.ssthresh) {
            // Growth outside recovery, and slow start after a timeout (cwnd restarts at 1).
            if self.cwnd < self.ssthresh {
                self.cwnd = self.cwnd.saturating_add(newly);
            } else {
                self.ca_acc += newly;
                if self.ca_acc >= self.cwnd {
                    self.ca_acc -= self.cwnd;
                    self.cwnd += 1;
                }
            }
            self.cwnd = self.cwnd.min(self.cfg.send_capacity as u32 + 1);
        }
        if advanced {
            self.rto_at = (self.pipe > 0 || self.lost > 0).then(|| now + self.rtt.rto());
        }
    }

    // ------------------------------------------------------------------ timers

    /// The next instant at which [`Core::handle_timeout`] must be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.rto_at, self.probe_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            if self.pipe > 0 || self.lost > 0 {
                let stalled = now.saturating_duration_since(self.last_progress);
                if self.rtt.backoff() >= self.cfg.max_backoffs || stalled >= self.cfg.give_up_after {
                    self.fail();
                    return;
                }
                self.rtt.on_timeout();
                self.stats.timeouts += 1;
                for i in 0..self.next_unsent {
                    self.mark_lost(i);
                }
                self.ssthresh = (self.cwnd / 2).max(2);
                self.cwnd = 1;
                self.ca_acc = 0;
                self.recovery_end = Some(self.snd_max());
                self.stats.congestion_events += 1;
            }
        }
        if self.probe_at.is_some_and(|t| t <= now) {
            if now.saturating_duration_since(self.last_heard) >= self.cfg.give_up_after {
                // Probes unanswered for as long as we would retransmit: the peer is gone.
                self.fail();
                return;
            }
            self.probe_at = None;
            self.probe_due = true;
            self.probe_backoff = self.probe_backoff.saturating_add(1);
        }
    }

    // ------------------------------------------------------------------ transmit

    fn fill_ack(&mut self, r: &mut Repr) {
        r.ack = self.rcv_nxt;
        r.window = self.rcv_wnd();
        self.adv_edge = self.rcv_nxt.wrapping_add(r.window);
        self.ack_pending = false;
    }

    fn emit_control(&mut self, r: &mut Repr) -> Option<P::Buf> {
        let Some(mut buf) = self.pool.alloc() else {
            self.stats.pool_empty += 1;
            return None;
        };
        let len = r.header_len();
        let data = match buf.append(len) {
            Ok(d) => d,
            Err(_) => {
                self.stats.pool_empty += 1;
                return None;
            }
        };
        r.payload_len = 0;
        r.emit(data).ok()?;
        self.stats.tx_packets += 1;
        Some(buf)
    }

    fn sack_blocks(&self, r: &mut Repr) {
        r.sack_count = 0;
        if self.held_runs.is_empty() {
            return;
        }
        let base = self.rcv_nxt;
        let wnd = self.rcv_wnd();
        // A run as offsets from `rcv_nxt`, cut at the window edge (None when it starts beyond).
        let clip = |&(first, end): &(u32, u32)| {
            let a = first.wrapping_sub(base);
            (a < wnd).then(|| (a, end.wrapping_sub(base).min(wnd)))
        };
        let mut count = 0usize;
        // The block holding the most recent arrival first (RFC 2018), then the others in order.
        let last_off = self.last_rx_seq.wrapping_sub(base);
        let mut first_run = None;
        if last_off < wnd {
            let i = self.held_runs.partition_point(|&(first, _)| first.wrapping_sub(base) <= last_off);
            if let Some(j) = i.checked_sub(1) {
                if let Some((a, b)) = clip(&self.held_runs[j]) {
                    if last_off < b {
                        first_run = Some(j);
                        r.sack[0] = (base.wrapping_add(a), base.wrapping_add(b));
                        count = 1;
                    }
                }
            }
        }
        for (j, run) in self.held_runs.iter().enumerate() {
            if count >= MAX_SACK_BLOCKS {
                break;
            }
            let Some((a, b)) = clip(run) else { break };
            if first_run != Some(j) {
                r.sack[count] = (base.wrapping_add(a), base.wrapping_add(b));
                count += 1;
            }
        }
        r.sack_count = count as u8;
    }

    /// The next datagram to send, if any.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        self.poll_transmit_with(now, |_| 0)
    }

    /// [`Core::poll_transmit`], letting `encapsulate` write the lower layers' headers in front of a
    /// sequenced packet in its own buffer before the channel shares it. `encapsulate` returns how
    /// many bytes it prepended (0 when it did not); they are stripped again before the packet is
    /// retransmitted. Control packets (acknowledgements, resets) are built fresh each time and are
    /// handed out bare, as from `poll_transmit`, without calling `encapsulate`.
    pub(crate) fn poll_transmit_with(
        &mut self,
        now: Instant,
        encapsulate: impl FnOnce(&mut P::Buf) -> usize,
    ) -> Option<P::Buf> {
        if let Some(mut r) = self.reset_reply.take() {
            return self.emit_control(&mut r);
        }
        if let Some(mut r) = self.send_reset.take() {
            return self.emit_control(&mut r);
        }
        if !matches!(self.state, State::SynSent | State::Established) {
            return None;
        }
        if let Some(buf) = self.transmit_slot(now, encapsulate) {
            return Some(buf);
        }
        if self.state == State::Established && (self.ack_pending || self.probe_due) {
            let mut r = Repr::new(PacketType::Ack, self.local_id, self.peer_id, self.local_epoch);
            r.seq = self.snd_max();
            if self.probe_due {
                r.flags |= FLAG_ACK_REQUESTED;
                self.stats.probes += 1;
            }
            self.sack_blocks(&mut r);
            self.fill_ack(&mut r);
            let out = self.emit_control(&mut r);
            if out.is_some() {
                self.probe_due = false;
            } else {
                self.ack_pending = true;
            }
            return out;
        }
        None
    }

    fn transmit_slot(&mut self, now: Instant, encapsulate: impl FnOnce(&mut P::Buf) -> usize) -> Option<P::Buf> {
        if self.pipe >= self.cwnd {
            return None;
        }
        let idx = if self.lost > 0 {
            self.tx.iter().position(|s| s.state == SlotState::Lost)?
        } else {
            let i = self.next_unsent;
            let slot = self.tx.get(i)?;
            let allowed = match slot.kind {
                PacketType::Syn => true,
                _ => self.state == State::Established && (i as u32) < self.peer_wnd,
            };
            if !allowed {
                // Flow-control blocked with nothing in flight: probe the window, with backoff,
                // so a lost window update cannot deadlock the connection.
                if self.pipe == 0 && self.probe_at.is_none() && !self.probe_due {
                    let shift = self.probe_backoff.min(16);
                    let wait = self.rtt.rto().saturating_mul(1u32 << shift).min(self.cfg.max_rto);
                    self.probe_at = Some(now + wait);
                }
                return None;
            }
            i
        };
        {
            // Back to the transport header if the last transmission left lower headers in front
            // (a buffer still shared is copied below, without them).
            let slot = &mut self.tx[idx];
            if slot.lower > 0 && !slot.buf.is_shared() {
                if slot.buf.adjust(slot.lower).is_err() {
                    return None;
                }
                slot.lower = 0;
            }
        }
        let mut r = {
            let slot = &self.tx[idx];
            let mut r = Repr::new(slot.kind, self.local_id, self.peer_id, self.local_epoch);
            r.seq = slot.seq;
            r.flags = slot.flags;
            r.payload_len = (slot.buf.len() - slot.lower - HEADER_LEN) as u16;
            r
        };
        if r.kind == PacketType::Syn {
            // No acknowledgement yet, but the window lets the acceptor send more than its SynAck.
            r.window = self.rcv_wnd();
        } else {
            self.fill_ack(&mut r);
        }
        if self.tx[idx].buf.is_shared() {
            // The previous transmission is still in the driver's hands: copy (rare path).
            let Some(mut copy) = self.pool.alloc() else {
                self.stats.pool_empty += 1;
                return None;
            };
            let (old, lower) = (&self.tx[idx].buf, self.tx[idx].lower);
            let datagram = old.data().get(lower..).unwrap_or_default();
            match copy.append(datagram.len()) {
                Ok(d) => d.copy_from_slice(datagram),
                Err(_) => {
                    self.stats.pool_empty += 1;
                    return None;
                }
            }
            self.tx[idx].buf = copy;
            self.tx[idx].lower = 0;
        }
        let slot = &mut self.tx[idx];
        r.emit(slot.buf.data_mut()).ok()?;
        slot.lower = encapsulate(&mut slot.buf);
        let Some(out) = slot.buf.share() else {
            self.stats.pool_empty += 1;
            return None;
        };
        let was_idle = self.pipe == 0 && self.lost == 0;
        let slot = &mut self.tx[idx];
        match slot.state {
            SlotState::Lost => {
                self.lost -= 1;
                slot.retransmitted = true;
                self.stats.retransmits += 1;
            }
            _ => self.next_unsent += 1,
        }
        slot.state = SlotState::InFlight;
        slot.sent_at = now;
        self.tx_counter += 1;
        slot.tx_order = self.tx_counter;
        self.pipe += 1;
        if was_idle {
            self.last_progress = now;
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        self.probe_at = None;
        self.stats.tx_packets += 1;
        Some(out)
    }

    /// Configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    /// Current congestion window, packets.
    pub(crate) fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// Current retransmission timeout.
    pub(crate) fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// Packets held by the sender.
    pub(crate) fn send_queue_len(&self) -> usize {
        self.tx.len()
    }

    /// Packets held by the receiver (reordered and ready).
    pub(crate) fn recv_held(&self) -> usize {
        let out_of_order: u32 = self.held_runs.iter().map(|&(first, end)| end.wrapping_sub(first)).sum();
        self.ready.len() + out_of_order as usize
    }

    /// The local epoch.
    pub(crate) fn local_epoch(&self) -> u32 {
        self.local_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecPool;
    use crate::channel::fault::Rng;

    /// The original whole-window scan, kept as the reference the incremental SACK runs must match.
    fn sack_reference(c: &Core<VecPool>, r: &mut Repr) {
        let cap = c.cfg.recv_capacity;
        let wnd = c.rcv_wnd() as usize;
        let present = |off: usize| c.reorder[(c.head + off) % cap].is_some();
        let off_seq = |off: usize| c.rcv_nxt.wrapping_add(off as u32);
        let mut count = 0usize;
        let last_off = c.last_rx_seq.wrapping_sub(c.rcv_nxt) as usize;
        let mut first_block = None;
        if last_off < wnd && present(last_off) {
            let mut a = last_off;
            while a > 0 && present(a - 1) {
                a -= 1;
            }
            let mut b = last_off + 1;
            while b < wnd && present(b) {
                b += 1;
            }
            first_block = Some((a, b));
            r.sack[0] = (off_seq(a), off_seq(b));
            count = 1;
        }
        let mut off = 1;
        while off < wnd && count < MAX_SACK_BLOCKS {
            if !present(off) {
                off += 1;
                continue;
            }
            let a = off;
            while off < wnd && present(off) {
                off += 1;
            }
            if first_block != Some((a, off)) {
                r.sack[count] = (off_seq(a), off_seq(off));
                count += 1;
            }
        }
        r.sack_count = count as u8;
    }

    fn sacks(r: &Repr) -> Vec<(u32, u32)> {
        r.sack[..usize::from(r.sack_count)].to_vec()
    }

    /// Random arrivals (in order, out of order, duplicates, beyond the window) and random reads,
    /// across sequence-number wrap: after every step the incremental SACK blocks equal the scan's.
    #[test]
    fn sack_runs_match_whole_window_scan() {
        for seed in 0..40u64 {
            let mut rng = Rng::new(seed);
            let cap = [8usize, 64, 512][(seed % 3) as usize];
            let cfg = Config { recv_capacity: cap, ..Config::default() };
            let mut c = Core::new(cfg, VecPool::default(), true, 1, 1, Instant::default());
            c.state = State::Established;
            // Start near the wrap so sequence arithmetic is exercised across it.
            c.rcv_nxt = u32::MAX - (seed as u32) * 37;
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
                        let mut r = Repr::new(PacketType::Data, 2, 1, 1);
                        r.seq = seq;
                        let buf = c.pool.alloc().unwrap();
                        c.receive(&r, buf);
                    }
                }
                let mut fast = Repr::new(PacketType::Ack, 1, 2, 1);
                let mut slow = fast;
                c.sack_blocks(&mut fast);
                sack_reference(&c, &mut slow);
                assert_eq!(sacks(&fast), sacks(&slow), "seed {seed} step {step}");
                let scanned = c.ready.len() + c.reorder.iter().filter(|s| s.is_some()).count();
                assert_eq!(c.recv_held(), scanned, "seed {seed} step {step}");
            }
        }
    }
}
