//! The connection engine shared by the reliable and streaming channels.
//!
//! One engine (`Core`, crate-private) is one connection: handshake with connection ids and
//! epochs, a packet-numbered sequence space, cumulative and selective acknowledgements,
//! receiver-window flow control with zero-window probes, orderly FIN and RFC 5961-style reset
//! validation. The channels above it decide what a packet payload means (a message segment, or a
//! run of stream bytes).
//!
//! # Parts
//! `Core` owns the connection state machine and composes one of each:
//! - `sender`: the queue of sequenced packets and what each acknowledgement delivered;
//! - `receiver`: the reorder window, the in-order queue, SACK blocks and the advertised window;
//! - `recovery`: RACK-TLP loss detection (RFC 8985) and the loss timers, RTO last;
//! - [`cc`]: the congestion [`Controller`] — [`Swift`](cc::Swift) (delay-based, the default) or
//!   [`NewReno`](cc::NewReno) — and `pacer`, which spreads a large window over the RTT;
//! - [`RttEstimator`]: RFC 6298 smoothing and the windowed minimum RTT.
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

use core::fmt;
use core::time::Duration;

use crate::buf::{BufPool, PacketBuf};
use crate::channel::rtt::RttEstimator;
use crate::channel::time::Instant;
use crate::wire::transport::{
    Error as WireError, Packet, PacketType, Repr, FLAG_ACK_REQUESTED, FLAG_END_OF_MESSAGE, HEADER_LEN, MAX_SACK_BLOCKS,
};

pub mod cc;
mod pacer;
mod receiver;
mod recovery;
mod sender;

use cc::{AckEvent, Congestion, CongestionConfig};
pub use cc::{CongestionKind, Controller};
use pacer::Pacer;
pub(crate) use receiver::RxSeg;
use receiver::{Arrival, Receiver, RxStorage};
use recovery::{Expired, Recovery};
use sender::{SendQueue, TxSlot};

/// Most connection events kept for the application.
const MAX_EVENTS: usize = 16;
/// Packets the pacer lets out back to back (a typical driver burst).
const PACING_BURST: u32 = 32;

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
    /// Lower bound on the retransmission timeout. Default 200 µs: rosette runs user-space on links
    /// whose RTTs are microseconds (memif) to tens of microseconds (a LAN), where RFC 6298's 1 s
    /// floor would stall a lossy link for a million RTTs. Loss is normally repaired by RACK and the
    /// tail-loss probe long before the RTO; the floor only keeps a scheduling hiccup of the peer
    /// from being taken for loss of everything in flight.
    pub min_rto: Duration,
    /// Upper bound on the (backed-off) retransmission timeout. Default 200 ms.
    pub max_rto: Duration,
    /// Consecutive timeouts without progress after which the connection fails.
    pub max_backoffs: u32,
    /// Time without progress (while data is outstanding) after which the connection fails.
    pub give_up_after: Duration,
    /// Initial congestion window, packets.
    pub initial_cwnd: u32,
    /// The congestion controller.
    pub congestion: CongestionKind,
    /// Swift's target: queueing delay allowed above the smallest RTT seen. Default 400 µs, from
    /// measurements: a polled receiver takes one burst per loop iteration, and one whose lcore
    /// shares its CPU runs in scheduler time slices, so it needs a backlog of many bursts to use
    /// its slice (on memif with two processes' lcores and application threads on two CPUs, 100 µs
    /// gave 3.0–3.6 M messages/s, 200 µs 4.2 M, 400 µs 5.2 M, NewReno 4.6–5.1 M); the simulated
    /// 10 Gbit/s link keeps 96 % of its goodput at 1 % loss with it. A path whose buffers hold
    /// less than this (a shallow-buffered switch) needs a smaller target, or its queue overflows
    /// before the delay says so.
    pub target_delay: Duration,
    /// Pace a window larger than one burst over the RTT. Default on: it keeps a large window
    /// from arriving at a switch as one burst, and costs nothing measurable on memif (three
    /// alternating 2 s runs each way: 12.0–14.3 M against 11.6–14.1 M 64-byte messages/s).
    pub pacing: bool,
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
            initial_rto: Duration::from_millis(1),
            min_rto: Duration::from_micros(200),
            max_rto: Duration::from_millis(200),
            max_backoffs: 64,
            give_up_after: Duration::from_secs(10),
            initial_cwnd: 10,
            congestion: CongestionKind::default(),
            target_delay: Duration::from_micros(400),
            pacing: true,
            lower_headroom: 64,
        }
    }
}

impl Config {
    /// The configuration of a byte stream: a stream has no messages, so `max_message_size`
    /// (whose default, 64 KiB, needs a window of 48 packets) limits nothing and is set to one
    /// packet. Without this a stream with a small `window` would fail [`Config::validate`] for a
    /// limit it never uses.
    pub fn for_stream(self) -> Config {
        Config { max_message_size: self.mss, ..self }
    }

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
    /// Nothing was heard from the peer, and nothing sent to it, for the connection table's idle
    /// timeout ([`crate::channel::mux::MuxConfig::idle_timeout`]); a Reset was sent to it.
    IdleTimeout,
}

/// How a connection ended, as the application is told (events) and asked (endpoint status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both directions were closed in order and our close was acknowledged: everything sent
    /// was acknowledged.
    Closed,
    /// Reset: by the peer, a restarted peer, a protocol violation, or the table's idle timeout.
    Reset(ResetReason),
    /// The application aborted it ([`crate::channel::reliable::Reliable::reset`]).
    Aborted,
    /// Retransmissions gave up: the peer stopped answering.
    Failed,
}

/// What a connection held for sending that the peer never acknowledged: dropped when the connection
/// ended (reset, failed, aborted), so that the application can tell its producer what to send again.
/// Cumulative over the life of one connection engine (a single-connection channel that is reset and
/// accepts again keeps counting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unacknowledged {
    /// Data packets.
    pub packets: u64,
    /// Payload bytes of those packets (streams: stream bytes).
    pub bytes: u64,
    /// Whole messages (reliable): every record of a packed packet, one per multi-packet message
    /// whose last packet was still held. A message of several packets whose last packet was
    /// acknowledged but an earlier one not cannot exist (acknowledgement is cumulative).
    pub messages: u64,
}

impl Unacknowledged {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Unacknowledged) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.messages += other.messages;
    }
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
    /// Data packets the peer acknowledged (cumulatively or selectively), each counted once.
    pub acked: u64,
    /// Retransmitted packets.
    pub retransmits: u64,
    /// Packets declared lost from acknowledgements (RACK, without a timeout).
    pub fast_lost: u64,
    /// Tail-loss probes sent (RFC 8985 §7).
    pub tail_probes: u64,
    /// Retransmissions that proved unnecessary (the original arrived).
    pub spurious_retransmits: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Timeouts that an original transmission's acknowledgement proved spurious (undone).
    pub spurious_timeouts: u64,
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

impl Stats {
    /// Adds `other`'s counters to these (the sum over a table's connections).
    pub fn add(&mut self, other: &Stats) {
        let (a, b) = (self, other);
        a.tx_packets += b.tx_packets;
        a.rx_packets += b.rx_packets;
        a.acked += b.acked;
        a.retransmits += b.retransmits;
        a.fast_lost += b.fast_lost;
        a.tail_probes += b.tail_probes;
        a.spurious_retransmits += b.spurious_retransmits;
        a.timeouts += b.timeouts;
        a.spurious_timeouts += b.spurious_timeouts;
        a.congestion_events += b.congestion_events;
        a.probes += b.probes;
        a.pool_empty += b.pool_empty;
        a.packed += b.packed;
        a.events_dropped += b.events_dropped;
        let (d, e) = (&mut a.drops, &b.drops);
        d.malformed += e.malformed;
        d.bad_checksum += e.bad_checksum;
        d.unknown_connection += e.unknown_connection;
        d.stale_epoch += e.stale_epoch;
        d.out_of_window += e.out_of_window;
        d.duplicate += e.duplicate;
    }
}

/// What the sender knows about the path right now: the congestion controller's view, for
/// reports and tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// The congestion controller.
    pub congestion: CongestionKind,
    /// Congestion window, packets.
    pub cwnd: u32,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    /// Smallest RTT of the last ten seconds.
    pub min_rtt: Option<Duration>,
    /// Current retransmission timeout (with any backoff).
    pub rto: Duration,
    /// Packets in flight.
    pub in_flight: u32,
}

/// Connection-level happenings, turned into channel events by the wrappers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoreEvent {
    Connected,
    Reset(ResetReason),
    Failed,
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

/// `a` comes before `b` in sequence space (RFC 1982 serial number arithmetic).
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` comes before or is `b` in sequence space.
fn le(a: u32, b: u32) -> bool {
    !lt(b, a)
}

/// Zero-window probing: when flow control blocks the sender with nothing in flight, an
/// acknowledgement-requesting packet is sent with backoff so that a lost window update cannot
/// deadlock the connection (RFC 9293 §3.8.6.1).
#[derive(Debug, Clone, Copy, Default)]
struct WindowProbe {
    at: Option<Instant>,
    due: bool,
    backoff: u32,
}

/// The window-sized queues of one connection (send slots, reorder window, in-order queue), lent out
/// while the connection is quiescent: a connection table ([`crate::channel::mux`]) parks an idle
/// connection's storage on a spare list and lends it to whichever connection wakes next, so an idle
/// connection holds no window-sized memory and a busy table allocates nothing once every
/// simultaneously active connection has had storage once.
pub struct Storage<B> {
    slots: std::collections::VecDeque<TxSlot<B>>,
    rx: RxStorage<B>,
}

impl<B> Storage<B> {
    /// A storage set for connections configured by `cfg`, allocated now.
    pub(crate) fn fresh(cfg: &Config) -> Storage<B> {
        Storage { slots: VecDeque::with_capacity(cfg.send_capacity + 2), rx: RxStorage::new(cfg.recv_capacity) }
    }
}

impl<B> fmt::Debug for Storage<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").field("send_capacity", &self.slots.capacity()).finish_non_exhaustive()
    }
}

/// The connection engine. See the module documentation.
pub(crate) struct Core<P: BufPool> {
    cfg: Config,
    pool: P,
    server: bool,
    state: State,
    local_id: u32,
    local_epoch: u32,
    peer_id: u32,
    peer_epoch: u32,
    sender: SendQueue<P::Buf>,
    /// The peer's advertised window, packets from `wnd_ack`.
    peer_wnd: u32,
    wnd_ack: u32,
    receiver: Receiver<P::Buf>,
    rtt: RttEstimator,
    recovery: Recovery,
    cc: Congestion,
    pacer: Pacer,
    /// Most packets in flight since the last acknowledgement (whether the window limited us).
    peak_in_flight: u32,
    /// The congestion window was the limit at some transmission attempt since the last ack.
    window_blocked: bool,
    /// A tail-loss probe is due: the next transmission ignores the congestion window.
    tail_probe_due: bool,
    /// The retransmission after a timeout is due: it ignores the congestion window too.
    rto_retransmit_due: bool,
    window_probe: WindowProbe,
    /// When the pacer lets the packet it holds back go.
    pace_at: Option<Instant>,
    /// When the last acknowledgement arrived, and when the last stall of the peer ended.
    last_ack: Instant,
    stall_end: Instant,
    last_progress: Instant,
    /// When the last valid packet of the peer arrived (bounds zero-window probing).
    last_heard: Instant,
    reset_reply: Option<Repr>,
    send_reset: Option<Repr>,
    events: VecDeque<CoreEvent>,
    closed_reported: bool,
    /// False while a connection table holds back this connection's new data (its peer's shared
    /// window is full); retransmissions and control packets still go.
    new_data_open: bool,
    stats: Stats,
    /// How the current (or last) connection ended; `None` while it lives.
    outcome: Option<Outcome>,
    /// What ended connections held unacknowledged, over the engine's life.
    abandoned: Unacknowledged,
}

impl<P: BufPool> Core<P> {
    fn new(cfg: Config, pool: P, server: bool, local_id: u32, epoch: u32, now: Instant) -> Self {
        Core::new_in(cfg, pool, server, local_id, epoch, now, false)
    }

    /// `lean`: without window-sized storage (a connection table's connection; it is lent later).
    fn new_in(cfg: Config, pool: P, server: bool, local_id: u32, epoch: u32, now: Instant, lean: bool) -> Self {
        Core {
            sender: SendQueue::with_capacity(if lean { 1 } else { cfg.send_capacity + 2 }),
            receiver: if lean { Receiver::parked(cfg.recv_capacity) } else { Receiver::new(cfg.recv_capacity) },
            events: VecDeque::with_capacity(MAX_EVENTS),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            recovery: Recovery::new(),
            cc: Congestion::new(&Self::congestion_config(&cfg)),
            pacer: Pacer::new(cfg.pacing, PACING_BURST),
            cfg,
            pool,
            server,
            state: if server { State::Listen } else { State::SynSent },
            local_id,
            local_epoch: epoch,
            peer_id: 0,
            peer_epoch: 0,
            peer_wnd: 1,
            wnd_ack: 0,
            peak_in_flight: 0,
            window_blocked: false,
            tail_probe_due: false,
            rto_retransmit_due: false,
            window_probe: WindowProbe::default(),
            pace_at: None,
            last_ack: now,
            stall_end: Instant::ZERO,
            last_progress: now,
            last_heard: now,
            reset_reply: None,
            send_reset: None,
            closed_reported: false,
            new_data_open: true,
            stats: Stats::default(),
            outcome: None,
            abandoned: Unacknowledged::default(),
        }
    }

    fn congestion_config(cfg: &Config) -> CongestionConfig {
        CongestionConfig {
            kind: cfg.congestion,
            initial_window: cfg.initial_cwnd,
            max_window: cfg.send_capacity as u32 + 1,
            target_delay: cfg.target_delay,
        }
    }

    /// An initiator: queues the Syn at once.
    pub(crate) fn connect(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        let mut core = Core::new(cfg, pool, false, local_id, epoch, now);
        let isn = initial_seq(epoch, local_id);
        core.sender.restart(isn);
        core.wnd_ack = isn;
        if let Some(buf) = core.alloc_segment() {
            core.sender.push(buf, PacketType::Syn, 0);
        } else {
            core.stats.pool_empty += 1;
            core.fail();
        }
        core
    }

    /// An acceptor whose handshake was done statelessly (a SYN cookie: `local_id` is the cookie the
    /// table sent in its [`Core::cookie_syn_ack`] and the peer echoed): established, with the
    /// sequence spaces both sides derive from the ids and epochs, the SynAck taken as acknowledged.
    pub(crate) fn accept_cookie(
        cfg: Config,
        pool: P,
        local_id: u32,
        epoch: u32,
        peer_id: u32,
        peer_epoch: u32,
        now: Instant,
    ) -> Self {
        // Born parked: the table lends it storage for the packet that opened it, and an accepted
        // connection that stays idle never holds any.
        let mut core = Core::new_in(cfg, pool, true, local_id, epoch, now, true);
        core.peer_id = peer_id;
        core.peer_epoch = peer_epoch;
        core.receiver.restart(initial_seq(peer_epoch, peer_id).wrapping_add(1));
        let after_syn_ack = initial_seq(epoch ^ peer_epoch, local_id).wrapping_add(1);
        core.sender.restart(after_syn_ack);
        core.wnd_ack = after_syn_ack;
        core.state = State::Established;
        core.outcome = None;
        core.push_event(CoreEvent::Connected);
        core
    }

    /// The SynAck an acceptor with id `local_id` and `epoch` answers `syn` with — the one
    /// [`Core::listen`] would send — built without any connection state.
    pub(crate) fn cookie_syn_ack(cfg: &Config, local_id: u32, epoch: u32, syn: &Repr) -> Repr {
        let mut r = Repr::new(PacketType::SynAck, local_id, syn.src_conn, epoch);
        r.seq = initial_seq(epoch ^ syn.epoch, local_id);
        r.ack = syn.seq.wrapping_add(1);
        r.window = cfg.recv_capacity as u32;
        r
    }

    /// True when `r` (a packet carrying the cookie `local_id` as its destination) can open the
    /// connection a cookie SynAck offered: it acknowledges exactly that SynAck — nothing we would
    /// have sent later, such as a Fin — and its sequence number lies in the first window after the
    /// peer's Syn. A late retransmission of a connection that ended and was forgotten fails this, so
    /// it cannot reopen the connection as a ghost (TCP's SYN cookies check the same).
    pub(crate) fn cookie_accepts(cfg: &Config, local_id: u32, epoch: u32, r: &Repr) -> bool {
        let after_syn_ack = initial_seq(epoch ^ r.epoch, local_id).wrapping_add(1);
        let first = initial_seq(r.epoch, r.src_conn).wrapping_add(1);
        r.ack == after_syn_ack && (r.seq.wrapping_sub(first) as usize) < cfg.recv_capacity
    }

    /// Opens or closes the gate for new data (a connection table's shared window).
    pub(crate) fn set_new_data_open(&mut self, open: bool) {
        self.new_data_open = open;
    }

    /// Packets in flight.
    pub(crate) fn in_flight(&self) -> u32 {
        self.sender.in_flight()
    }

    /// True when the connection holds nothing in its window-sized queues (nothing unacknowledged
    /// or unsent, nothing received and not yet taken), so their storage can be lent out.
    pub(crate) fn is_quiescent(&self) -> bool {
        !self.receiver.is_parked() && self.sender.len() == 0 && self.receiver.is_empty()
    }

    /// True while the storage is lent out.
    pub(crate) fn is_parked(&self) -> bool {
        self.receiver.is_parked()
    }

    /// Lends the storage out if the connection is quiescent.
    pub(crate) fn park(&mut self) -> Option<Storage<P::Buf>> {
        if !self.is_quiescent() {
            return None;
        }
        Some(Storage { slots: self.sender.take_storage(), rx: self.receiver.take_storage() })
    }

    /// Gives storage back to a parked connection (`None`: allocate it afresh); no-op otherwise.
    pub(crate) fn unpark(&mut self, storage: Option<Storage<P::Buf>>) {
        if !self.is_parked() {
            return;
        }
        let want = self.cfg.send_capacity + 2;
        let (mut slots, rx) = match storage {
            Some(s) => (s.slots, Some(s.rx)),
            None => (std::collections::VecDeque::with_capacity(want), None),
        };
        // Storage of a lean connection's first park is small: grown once, here, not in the queue.
        slots.reserve_exact(want.saturating_sub(slots.len()));
        self.sender.give_storage(slots);
        self.receiver.give_storage(rx);
    }

    /// An initiator for a connection table: as [`Core::connect`], but holding only the Syn, so a
    /// table of many idle connections keeps no window-sized storage (it is lent when the connection
    /// has data).
    pub(crate) fn connect_lean(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        let mut core = Core::new_in(cfg, pool, false, local_id, epoch, now, true);
        let isn = initial_seq(epoch, local_id);
        core.sender.restart(isn);
        core.wnd_ack = isn;
        match core.alloc_segment() {
            Some(buf) => core.sender.push(buf, PacketType::Syn, 0),
            None => {
                core.stats.pool_empty += 1;
                core.fail();
            }
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

    /// Packets that may still be queued for sending.
    pub(crate) fn send_space(&self) -> usize {
        match self.state {
            State::SynSent | State::Established if self.sender.fin_seq().is_none() => {
                self.cfg.send_capacity.saturating_sub(self.sender.len())
            }
            _ => 0,
        }
    }

    /// True while data may be queued (connection open, not finished).
    pub(crate) fn can_send(&self) -> bool {
        matches!(self.state, State::SynSent | State::Established) && self.sender.fin_seq().is_none()
    }

    /// The buffer pool (the channels allocate application buffers from it).
    pub(crate) fn pool(&self) -> &P {
        &self.pool
    }

    /// Counters.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counters, for the channels' own (packing, pool exhaustion, malformed payloads).
    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
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
        self.sender.last_unsent_data()
    }

    /// The newest never-sent data packet if it is packed and `extra` more payload bytes fit in it
    /// (within the mss and the buffer's tailroom), for appending one more record.
    pub(crate) fn last_unsent_packed(&mut self, extra: usize) -> Option<&mut P::Buf> {
        self.sender.last_unsent_packed(extra, self.cfg.mss)
    }

    /// True while a queued packet has never been transmitted.
    pub(crate) fn has_unsent(&self) -> bool {
        self.sender.has_unsent()
    }

    /// Takes the `n` newest packets back out of the send queue (never sent: a message that could not
    /// be queued whole).
    pub(crate) fn unpush(&mut self, n: usize) {
        self.sender.unpush(n);
    }

    /// Queues a sequenced packet whose buffer starts with [`HEADER_LEN`] reserved bytes.
    pub(crate) fn push(&mut self, buf: P::Buf, kind: PacketType, flags: u8) {
        self.sender.push(buf, kind, flags);
    }

    /// Queues the Fin: no more data from this side.
    pub(crate) fn finish(&mut self) -> bool {
        if !self.can_send() {
            return false;
        }
        match self.alloc_segment() {
            Some(buf) => {
                self.sender.push(buf, PacketType::Fin, 0);
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
            r.seq = self.sender.snd_max();
            r.ack = self.receiver.rcv_nxt();
            self.send_reset = Some(r);
        }
        self.clear();
        self.state = State::Closed;
        self.outcome = Some(Outcome::Aborted);
    }

    /// Closes an idle connection: a Reset to the peer, and [`ResetReason::IdleTimeout`] to the
    /// application.
    pub(crate) fn expire_idle(&mut self) {
        self.reset();
        self.outcome = Some(Outcome::Reset(ResetReason::IdleTimeout));
        self.push_event(CoreEvent::Reset(ResetReason::IdleTimeout));
    }

    /// True when the connection is over for good (reset, failed, or closed on both sides and
    /// reported) and the application has taken every event: a connection table may reuse its slot.
    pub(crate) fn is_finished(&self) -> bool {
        let over = self.state == State::Closed || self.closed_reported;
        over && self.events.is_empty() && self.receiver.is_empty()
    }

    /// How the connection ended; `None` while it lives (or waits for its first peer).
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// What ended connections of this engine held unacknowledged (cumulative).
    pub(crate) fn abandoned(&self) -> Unacknowledged {
        self.abandoned
    }

    /// What the connection holds now that the peer has not acknowledged.
    pub(crate) fn unacknowledged(&self) -> Unacknowledged {
        self.sender.unacknowledged()
    }

    pub(crate) fn poll_core_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// True once, when both directions are finished and our Fin is acknowledged.
    pub(crate) fn take_closed(&mut self) -> bool {
        if self.sender.fin_acked()
            && self.receiver.peer_finished()
            && self.receiver.ready().is_empty()
            && !self.closed_reported
        {
            self.closed_reported = true;
            self.outcome = Some(Outcome::Closed);
            return true;
        }
        false
    }

    /// True when the peer's Fin has been received in order.
    pub(crate) fn peer_finished(&self) -> bool {
        self.receiver.peer_finished()
    }

    /// Segments ready for the application, oldest first.
    pub(crate) fn ready(&self) -> &VecDeque<RxSeg<P::Buf>> {
        self.receiver.ready()
    }

    /// The oldest ready segment, mutably (a stream reader consuming part of it).
    pub(crate) fn ready_front_mut(&mut self) -> Option<&mut RxSeg<P::Buf>> {
        self.receiver.front_mut()
    }

    /// Ready segments that end a message (or are the Fin).
    pub(crate) fn ready_marks(&self) -> usize {
        self.receiver.ready_marks()
    }

    /// To call after taking segments out of the ready queue: sends a window update when the
    /// window has opened enough (receiver-side silly-window avoidance), or from zero.
    pub(crate) fn on_consumed(&mut self) {
        self.receiver.on_consumed();
    }

    /// Takes the first ready segment and accounts for it.
    pub(crate) fn pop_ready(&mut self) -> Option<RxSeg<P::Buf>> {
        self.receiver.pop_ready()
    }

    fn push_event(&mut self, ev: CoreEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(ev);
    }

    fn clear(&mut self) {
        let dropped = self.sender.unacknowledged();
        self.abandoned.add(&dropped);
        self.sender.clear();
        self.receiver.clear();
        self.recovery.stop_timers();
        self.window_probe = WindowProbe::default();
        self.pace_at = None;
        self.tail_probe_due = false;
        self.rto_retransmit_due = false;
    }

    fn fail(&mut self) {
        self.clear();
        self.state = State::Closed;
        self.outcome = Some(Outcome::Failed);
        self.push_event(CoreEvent::Failed);
    }

    /// Drops the current connection because of `reason` and (acceptor) waits for a new one.
    pub(crate) fn reset_connection(&mut self, reason: ResetReason) {
        self.clear();
        self.push_event(CoreEvent::Reset(reason));
        self.state = State::Closed;
        self.outcome = Some(Outcome::Reset(reason));
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
        self.receiver.restart(r.seq.wrapping_add(1));
        let isn = initial_seq(self.local_epoch ^ r.epoch, self.local_id);
        self.sender.restart(isn);
        self.wnd_ack = isn;
        self.peer_wnd = r.window.max(1);
        self.closed_reported = false;
        self.cc = Congestion::new(&Self::congestion_config(&self.cfg));
        self.rtt = RttEstimator::new(self.cfg.initial_rto, self.cfg.min_rto, self.cfg.max_rto);
        self.recovery = Recovery::new();
        self.pacer = Pacer::new(self.cfg.pacing, PACING_BURST);
        self.last_progress = now;
        self.last_heard = now;
        self.state = State::Established;
        self.outcome = None;
        match self.alloc_segment() {
            Some(buf) => self.sender.push(buf, PacketType::SynAck, 0),
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
            PacketType::SynAck if r.ack == self.sender.una().wrapping_add(1) => {
                self.peer_id = r.src_conn;
                self.peer_epoch = r.epoch;
                self.receiver.restart(r.seq.wrapping_add(1));
                self.state = State::Established;
                self.outcome = None;
                self.last_heard = now;
                self.process_ack(now, r);
                self.receiver.request_ack();
                self.push_event(CoreEvent::Connected);
            }
            PacketType::Reset if r.ack == self.sender.una() => {
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
                if self.sender.front_mut().is_some_and(|f| f.kind == PacketType::SynAck) {
                    self.sender.mark_lost(0);
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
            if r.seq == self.receiver.rcv_nxt() && (r.epoch == self.peer_epoch || newer) {
                let reason = if newer { ResetReason::PeerRestarted } else { ResetReason::PeerReset };
                self.reset_connection(reason);
            } else {
                self.stats.drops.out_of_window += 1;
                self.receiver.request_ack();
            }
            return;
        }
        if r.epoch != self.peer_epoch {
            self.stats.drops.stale_epoch += 1;
            return;
        }
        self.last_heard = now;
        if !self.sender.ack_is_sane(r.ack) {
            // Acknowledges something never sent (RFC 5961 §5.2).
            self.stats.drops.out_of_window += 1;
            self.receiver.request_ack();
            return;
        }
        self.process_ack(now, r);
        if self.state != State::Established {
            return;
        }
        if r.flags & FLAG_ACK_REQUESTED != 0 {
            self.receiver.request_ack();
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
        // A segment that more of its message will be chained behind must not be shared (a duplicate
        // still held by a lower layer): give it a private copy from the pool, or treat it as lost.
        let needs_private = r.kind == PacketType::Data
            && r.flags & FLAG_END_OF_MESSAGE == 0
            && buf.is_shared()
            && self.receiver.would_hold(r.seq);
        let buf = if needs_private {
            let Some(copy) = self.private_copy(&buf) else {
                self.stats.pool_empty += 1;
                self.receiver.request_ack();
                return;
            };
            copy
        } else {
            buf
        };
        match self.receiver.receive(r, buf) {
            Arrival::Accepted => {}
            Arrival::Duplicate => self.stats.drops.duplicate += 1,
            Arrival::OutOfWindow => self.stats.drops.out_of_window += 1,
        }
    }

    /// An unshared copy of a received payload, from the pool.
    fn private_copy(&mut self, buf: &P::Buf) -> Option<P::Buf> {
        let mut copy = self.pool.alloc()?;
        copy.append(buf.len()).ok()?.copy_from_slice(buf.data());
        Some(copy)
    }

    fn process_ack(&mut self, now: Instant, r: &Repr) {
        let mut acked = 0u32;
        let mut largest_order = 0u64;
        // The most recently transmitted of the newly acknowledged packets is the one whose arrival
        // most likely triggered this acknowledgement: time it, unless it was a retransmission
        // (Karn's rule) or was already declared lost (its ack may have been the one lost).
        let mut sample: Option<(u64, Instant, bool)> = None;
        let min_rtt = self.rtt.min_rtt();
        let recovery = &mut self.recovery;
        let spurious = &mut self.stats.spurious_retransmits;
        let mut on_delivered = |d: sender::Delivered| {
            acked += 1;
            largest_order = largest_order.max(d.tx_order);
            if d.was_lost && !d.retransmitted {
                *spurious += 1;
            }
            recovery.on_delivered(&d, now, min_rtt);
            if sample.is_none_or(|(o, _, _)| d.tx_order > o) {
                sample = Some((d.tx_order, d.sent_at, d.retransmitted || d.was_lost));
            }
        };
        let advanced = self.sender.ack_cumulative(r.ack, &mut on_delivered);
        for &(first, end) in r.sack.iter().take(usize::from(r.sack_count).min(MAX_SACK_BLOCKS)) {
            self.sender.ack_range(first, end, &mut on_delivered);
        }
        self.recovery.end_of_ack(acked > 0);
        self.stats.acked += u64::from(acked);
        if self.recovery.take_spurious_rto() {
            self.stats.spurious_timeouts += 1;
            self.cc.on_spurious_timeout();
        }
        let mut rtt_sample = None;
        if let Some((_, sent_at, false)) = sample {
            let rtt = now.saturating_duration_since(sent_at);
            self.rtt.on_sample(now, rtt);
            rtt_sample = Some(rtt);
        }
        if advanced {
            self.last_progress = now;
            self.rtt.reset_backoff();
            self.window_probe.backoff = 0;
        }
        if le(self.wnd_ack, r.ack) {
            self.wnd_ack = r.ack;
            self.peer_wnd = r.window;
        }
        let losses = if acked > 0 {
            self.recovery.detect_lost(now, &mut self.sender, &self.rtt)
        } else {
            recovery::Losses::default()
        };
        if losses.count > 0 {
            self.stats.fast_lost += u64::from(losses.count);
            if self.cc.on_loss(now, losses.count, losses.newest_order, self.sender.tx_count()) {
                self.stats.congestion_events += 1;
            }
        }
        if acked > 0 {
            let window = self.cc.window();
            let window_limited = self.window_blocked
                || if self.cc.in_slow_start() {
                    self.peak_in_flight.saturating_mul(2) >= window
                } else {
                    self.peak_in_flight + 1 >= window
                };
            // A silence of the peer far longer than any queue the controller allows ends a stall:
            // the delays of what was sent before it measure the stall, not a queue.
            let quiet = now.saturating_duration_since(self.last_ack);
            let queue_bound = self.rtt.min_rtt().unwrap_or_default() + self.cfg.target_delay;
            if quiet > queue_bound * 2 {
                self.stall_end = now;
            }
            let stalled = sample.is_some_and(|(_, sent_at, _)| sent_at < self.stall_end);
            self.cc.on_ack(&AckEvent {
                now,
                acked,
                stalled,
                rtt: rtt_sample,
                min_rtt: self.rtt.min_rtt(),
                srtt: self.rtt.srtt(),
                largest_acked_order: largest_order,
                window_limited,
            });
            self.peak_in_flight = self.sender.in_flight();
            self.window_blocked = false;
            self.pacer.update(self.cc.window(), self.rtt.srtt(), self.cc.in_slow_start());
        }
        self.recovery.on_ack(now, advanced, &self.sender, &self.rtt);
        self.last_ack = now;
    }

    // ------------------------------------------------------------------ timers

    /// The next instant at which [`Core::handle_timeout`] must be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [self.recovery.next_timeout(), self.window_probe.at, self.pace_at].into_iter().flatten().min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.pace_at.is_some_and(|t| t <= now) {
            self.pace_at = None;
        }
        while let Some(expired) = self.recovery.expired(now) {
            match expired {
                Expired::Rto => {
                    if !self.sender.outstanding() {
                        continue;
                    }
                    let stalled = now.saturating_duration_since(self.last_progress);
                    if self.rtt.backoff() >= self.cfg.max_backoffs || stalled >= self.cfg.give_up_after {
                        self.fail();
                        return;
                    }
                    let rto = self.rtt.rto();
                    self.rtt.on_timeout();
                    self.stats.timeouts += 1;
                    self.recovery.on_rto(now, rto, self.rtt.rto(), &mut self.sender);
                    // RFC 6298 §5.4: the earliest lost packet goes now, whatever the window.
                    self.rto_retransmit_due = true;
                    self.cc.on_timeout(now, self.sender.tx_count());
                    self.stats.congestion_events += 1;
                    self.pacer.update(self.cc.window(), self.rtt.srtt(), self.cc.in_slow_start());
                    self.tail_probe_due = false;
                }
                Expired::Reorder => {
                    let losses = self.recovery.detect_lost(now, &mut self.sender, &self.rtt);
                    if losses.count > 0 {
                        self.stats.fast_lost += u64::from(losses.count);
                        if self.cc.on_loss(now, losses.count, losses.newest_order, self.sender.tx_count()) {
                            self.stats.congestion_events += 1;
                        }
                    }
                    self.recovery.on_ack(now, false, &self.sender, &self.rtt);
                }
                Expired::Probe => {
                    if self.sender.outstanding() {
                        self.tail_probe_due = true;
                    }
                }
            }
        }
        if self.window_probe.at.is_some_and(|t| t <= now) {
            if now.saturating_duration_since(self.last_heard) >= self.cfg.give_up_after {
                // Probes unanswered for as long as we would retransmit: the peer is gone.
                self.fail();
                return;
            }
            self.window_probe.at = None;
            self.window_probe.due = true;
            self.window_probe.backoff = self.window_probe.backoff.saturating_add(1);
        }
    }

    // ------------------------------------------------------------------ transmit

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
        if self.state == State::Established && (self.receiver.ack_pending() || self.window_probe.due) {
            let mut r = Repr::new(PacketType::Ack, self.local_id, self.peer_id, self.local_epoch);
            r.seq = self.sender.snd_max();
            if self.window_probe.due {
                r.flags |= FLAG_ACK_REQUESTED;
                self.stats.probes += 1;
            }
            self.receiver.fill_ack(&mut r, true);
            let out = self.emit_control(&mut r);
            if out.is_some() {
                self.window_probe.due = false;
            } else {
                self.receiver.request_ack();
            }
            return out;
        }
        None
    }

    /// Which queued packet goes next, if the windows and the pacer allow one now: a tail-loss
    /// probe first (past the congestion window), then retransmissions, then new data.
    fn next_to_send(&mut self, now: Instant) -> Option<(usize, bool)> {
        let flow_allows = |core: &Self, i: usize| match core.sender.slot(i).kind {
            PacketType::Syn => true,
            _ => core.state == State::Established && (i as u32) < core.peer_wnd,
        };
        if std::mem::take(&mut self.rto_retransmit_due) {
            if let Some(lost) = self.sender.first_lost() {
                return Some((lost, true));
            }
        }
        if self.tail_probe_due {
            self.tail_probe_due = false;
            // RFC 8985 §7.3: new data if the peer's window allows, else the newest packet again.
            let i = self.sender.next_unsent();
            let idx = if let Some(lost) = self.sender.first_lost() {
                Some(lost)
            } else if self.sender.has_unsent() && flow_allows(self, i) {
                Some(i)
            } else {
                self.sender.newest_in_flight()
            };
            if let Some(idx) = idx {
                self.stats.tail_probes += 1;
                return Some((idx, true));
            }
        }
        if self.sender.in_flight() >= self.cc.window() {
            if self.sender.lost() > 0 || self.sender.has_unsent() {
                self.window_blocked = true;
            }
            return None;
        }
        let idx = if let Some(lost) = self.sender.first_lost() {
            lost
        } else {
            let i = self.sender.next_unsent();
            if !self.sender.has_unsent() || !self.new_data_open {
                return None;
            }
            if !flow_allows(self, i) {
                // Flow-control blocked with nothing in flight: probe the window, with backoff,
                // so a lost window update cannot deadlock the connection.
                if self.sender.in_flight() == 0 && self.window_probe.at.is_none() && !self.window_probe.due {
                    let shift = self.window_probe.backoff.min(16);
                    let wait = self.rtt.rto().saturating_mul(1u32 << shift).min(self.cfg.max_rto);
                    self.window_probe.at = Some(now + wait);
                }
                return None;
            }
            i
        };
        if let Some(at) = self.pacer.delay(now) {
            // A timer of its own only while the pacer holds a packet back.
            self.pace_at = Some(at);
            return None;
        }
        Some((idx, false))
    }

    fn transmit_slot(&mut self, now: Instant, encapsulate: impl FnOnce(&mut P::Buf) -> usize) -> Option<P::Buf> {
        let (idx, probe) = self.next_to_send(now)?;
        {
            // Back to the transport header if the last transmission left lower headers in front
            // (a buffer still shared is copied below, without them).
            let slot = self.sender.slot_mut(idx);
            if slot.lower > 0 && !slot.buf.is_shared() {
                if slot.buf.adjust(slot.lower).is_err() {
                    return None;
                }
                slot.lower = 0;
            }
        }
        let mut r = {
            let slot = self.sender.slot(idx);
            let mut r = Repr::new(slot.kind, self.local_id, self.peer_id, self.local_epoch);
            r.seq = slot.seq;
            r.flags = slot.flags;
            r.payload_len = (slot.buf.len() - slot.lower - HEADER_LEN) as u16;
            r
        };
        if r.kind == PacketType::Syn {
            // No acknowledgement yet, but the window lets the acceptor send more than its SynAck.
            r.window = self.receiver.window();
        } else {
            self.receiver.fill_ack(&mut r, false);
        }
        if self.sender.slot(idx).buf.is_shared() {
            // The previous transmission is still in the driver's hands: copy (rare path).
            let Some(mut copy) = self.pool.alloc() else {
                self.stats.pool_empty += 1;
                return None;
            };
            let slot = self.sender.slot(idx);
            let datagram = slot.buf.data().get(slot.lower..).unwrap_or_default();
            match copy.append(datagram.len()) {
                Ok(d) => d.copy_from_slice(datagram),
                Err(_) => {
                    self.stats.pool_empty += 1;
                    return None;
                }
            }
            let slot = self.sender.slot_mut(idx);
            slot.buf = copy;
            slot.lower = 0;
        }
        let slot = self.sender.slot_mut(idx);
        r.emit(slot.buf.data_mut()).ok()?;
        slot.lower = encapsulate(&mut slot.buf);
        let Some(out) = slot.buf.share() else {
            self.stats.pool_empty += 1;
            return None;
        };
        let was_idle = !self.sender.outstanding();
        let retransmission = self.sender.on_transmit(idx, now);
        if retransmission {
            self.stats.retransmits += 1;
        }
        if !probe {
            self.pacer.on_sent();
        }
        self.peak_in_flight = self.peak_in_flight.max(self.sender.in_flight());
        if was_idle {
            self.last_progress = now;
            // Silence while nothing was outstanding is not a stall.
            self.last_ack = now;
        }
        self.recovery.on_transmit(now, !retransmission, probe, &self.sender, &self.rtt);
        self.window_probe.at = None;
        self.pace_at = None;
        self.stats.tx_packets += 1;
        Some(out)
    }

    /// Configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    /// Current congestion window, packets.
    pub(crate) fn cwnd(&self) -> u32 {
        self.cc.window()
    }

    /// Current retransmission timeout.
    pub(crate) fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The smoothed RTT, once measured.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The sender's view of the path.
    pub(crate) fn path(&self) -> PathStats {
        PathStats {
            congestion: self.cfg.congestion,
            cwnd: self.cc.window(),
            srtt: self.rtt.srtt(),
            min_rtt: self.rtt.min_rtt(),
            rto: self.rtt.rto(),
            in_flight: self.sender.in_flight(),
        }
    }

    /// Packets held by the sender.
    pub(crate) fn send_queue_len(&self) -> usize {
        self.sender.len()
    }

    /// Packets held by the receiver (reordered and ready).
    pub(crate) fn recv_held(&self) -> usize {
        self.receiver.held()
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

    fn pair(cfg: Config) -> (Core<VecPool>, Core<VecPool>) {
        let a = Core::connect(cfg.clone(), VecPool::default(), 1, 1, Instant::ZERO);
        let b = Core::listen(cfg, VecPool::default(), 2, 1, Instant::ZERO);
        (a, b)
    }

    /// Moves every datagram `from` has to send into `to`.
    fn flush(now: Instant, from: &mut Core<VecPool>, to: &mut Core<VecPool>) -> usize {
        let mut n = 0;
        while let Some(buf) = from.poll_transmit(now) {
            to.handle(now, buf);
            n += 1;
        }
        n
    }

    #[test]
    fn handshake_establishes_both_sides() {
        let (mut a, mut b) = pair(Config::default());
        let t = Instant::from_micros(10);
        flush(t, &mut a, &mut b);
        flush(t, &mut b, &mut a);
        flush(t, &mut a, &mut b);
        assert_eq!((a.state(), b.state()), (State::Established, State::Established));
        assert_eq!(a.poll_core_event(), Some(CoreEvent::Connected));
        assert_eq!(b.poll_core_event(), Some(CoreEvent::Connected));
        assert!(a.srtt().is_some(), "the SynAck timed the Syn");
    }

    /// A lost tail (nothing after it is delivered) is repaired by the tail-loss probe, not by the
    /// retransmission timeout (RFC 8985 §7).
    #[test]
    fn tail_loss_is_repaired_by_a_probe_not_an_rto() {
        let (mut a, mut b) = pair(Config::default());
        let mut now = Instant::from_micros(10);
        flush(now, &mut a, &mut b);
        now += Duration::from_micros(40);
        flush(now, &mut b, &mut a);
        for i in 0..3u8 {
            let mut buf = a.alloc_segment().unwrap();
            buf.append(10).unwrap().fill(i);
            a.push(buf, PacketType::Data, FLAG_END_OF_MESSAGE);
        }
        // The three data packets go out and are all lost.
        now += Duration::from_micros(40);
        while a.poll_transmit(now).is_some() {}
        let t = a.poll_timeout().unwrap();
        assert!(t < now + a.rto(), "the probe comes before the RTO");
        now = t;
        a.handle_timeout(now);
        flush(now, &mut a, &mut b);
        now += Duration::from_micros(40);
        flush(now, &mut b, &mut a);
        assert_eq!(a.stats().tail_probes, 1);
        assert_eq!(a.stats().timeouts, 0);
        // The probe's acknowledgement SACKs the newest packet; RACK then finds the other two lost.
        for _ in 0..4 {
            flush(now, &mut a, &mut b);
            now += Duration::from_micros(40);
            flush(now, &mut b, &mut a);
            if a.send_queue_len() > 0 {
                now = now.max(a.poll_timeout().unwrap());
                a.handle_timeout(now);
            }
        }
        assert_eq!(b.ready().len(), 3);
        assert_eq!(a.stats().timeouts, 0, "{:?}", a.stats());
        assert_eq!(a.send_queue_len(), 0);
    }

    /// RFC 6298 §3 (Karn's rule): the acknowledgement of a retransmitted packet gives no RTT sample.
    #[test]
    fn a_retransmission_is_not_timed_rfc6298() {
        let (mut a, mut b) = pair(Config::default());
        let mut now = Instant::from_micros(10);
        flush(now, &mut a, &mut b);
        now += Duration::from_micros(40);
        flush(now, &mut b, &mut a);
        let srtt = a.srtt();
        let mut buf = a.alloc_segment().unwrap();
        buf.append(1).unwrap();
        a.push(buf, PacketType::Data, FLAG_END_OF_MESSAGE);
        drop(a.poll_transmit(now).unwrap());
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        flush(now, &mut a, &mut b);
        assert_eq!(a.stats().retransmits, 1);
        // A long wait before the acknowledgement: timing the retransmission would move the estimate.
        now += Duration::from_millis(5);
        flush(now, &mut b, &mut a);
        assert_eq!(a.send_queue_len(), 0);
        assert_eq!(a.srtt(), srtt);
    }

    /// Nothing ever answers: after the probe, the RTO backs off up to `max_rto` and the connection
    /// fails after `give_up_after` without progress.
    #[test]
    fn unanswered_data_backs_off_to_max_rto_then_fails() {
        let cfg = Config { give_up_after: Duration::from_millis(900), ..Config::default() };
        let (mut a, mut b) = pair(cfg.clone());
        let mut now = Instant::from_micros(10);
        flush(now, &mut a, &mut b);
        flush(now, &mut b, &mut a);
        let mut buf = a.alloc_segment().unwrap();
        buf.append(1).unwrap();
        a.push(buf, PacketType::Data, FLAG_END_OF_MESSAGE);
        let mut last = now;
        while a.state() != State::Closed {
            while a.poll_transmit(now).is_some() {}
            let t = a.poll_timeout().expect("a timer while data is outstanding");
            assert!(t.saturating_duration_since(now) <= cfg.max_rto);
            last = now;
            now = t;
            a.handle_timeout(now);
        }
        assert!(a.stats().timeouts >= 3);
        assert!(last.saturating_duration_since(Instant::ZERO) <= cfg.give_up_after + cfg.max_rto);
        assert_eq!(a.poll_core_event(), Some(CoreEvent::Connected));
        assert_eq!(a.poll_core_event(), Some(CoreEvent::Failed));
    }
}
