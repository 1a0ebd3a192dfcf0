//! Connection tables as pipeline stages: [`ReliableMuxStage`] (`reliable_mux`) and
//! [`StreamingMuxStage`] (`streaming_mux`) drive a [`UdpMux`] — many reliable or streaming
//! connections behind one UDP port — on DPDK mbufs, inside an lcore's poll loop.
//!
//! With `role: listen` the stage is a *listener*: it accepts up to `max_connections` connections
//! from any peer, statelessly (SYN cookies, see [`crate::channel::mux`]), so a flood of forged
//! attempts costs no memory and evicts nobody. With `role: connect` it is a *dialer*: it opens
//! `connections` connections to `peer` when it starts, and more on the application's request.
//! Either way one endpoint ([`ReliableMuxEndpoint`], [`StreamMuxEndpoint`]) serves every connection
//! of the stage: each delivery names its connection, each send names the connection it is for.
//!
//! The stage owns its table on its lcore; nothing of it is shared with another lcore. To spread
//! connections over lcores, declare the port with one rx queue per lcore and a listener stage in
//! every queue's poll (the validator insists): RSS on the UDP 4-tuple (or, on a virtual device, the
//! sender's choice of queue by the same hash) sends each connection to one queue, hence one lcore.
//!
//! ```yaml
//! stages:
//!   - type: reliable_mux              # or streaming_mux
//!     params:
//!       endpoint: ingest              # ingest::endpoints::ingest(timeout) -> ReliableMuxEndpoint
//!       ip: "10.10.0.1"
//!       port: 7000
//!       mac: "02:00:00:00:00:01"
//!       role: listen                  # listen: accept from anyone | connect: open to `peer`
//!       max_connections: 10000        # the table's bound (default 1024)
//!       idle_timeout: 60s             # reset a connection silent this long (default 60s; 0 = never)
//!       window: 64                    # per connection: packets held by sender and receiver
//!       queue_depth: 4096             # the endpoint's queues (all connections)
//! ```
//! Every connection setting of `reliable` / `streaming` applies to each connection of the table.
use core::time::Duration;

use super::channels::{ChannelParams, Role, StageStats};
use super::endpoint::{
    untag, AppQueue, Deliver, MuxCommand, MuxEvent, MuxOp, ReliableMuxEndpoint, ReliableMuxEnds, ReliableOp,
    StreamDelivery, StreamMuxEndpoint, StreamMuxEnds, StreamOp,
};
use super::{Context, Stage, StageReport, Verdict};
use crate::channel::conn;
use crate::channel::mux::{ConnHandle, MuxConfig, MuxStats, UdpMux};
use crate::channel::reliable::{self, Reliable};
use crate::channel::streaming::Stream;
use crate::channel::time::Instant;
use crate::net::RxDrop;
use crate::substrate::{Batch, Mbuf, Mempool};

/// The table settings of a mux stage, beyond the connection settings in [`ChannelParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableParams {
    /// The most connections at once.
    pub max_connections: usize,
    /// Reset a connection after this long without activity; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A dialer's connections opened at start.
    pub connections: usize,
}

impl Default for TableParams {
    fn default() -> Self {
        TableParams { max_connections: 1024, idle_timeout: Some(Duration::from_secs(60)), connections: 1 }
    }
}

/// What a mux stage reports when its loop stops: its own counters, the table's, the sum of its
/// connections' counters, and the interface's.
#[derive(Debug, Clone, Default)]
pub struct MuxReport {
    /// The stage's own counters.
    pub stage: StageStats,
    /// The table's counters (accepted, cookies, forged packets dropped, idle resets, ...).
    pub table: MuxStats,
    /// Connections live at the end.
    pub live: usize,
    /// The counters of every connection the table had (live at the end, and ended before),
    /// summed.
    pub connections: conn::Stats,
    /// The counters of the connections live at the end, summed.
    pub live_connections: conn::Stats,
    /// What every ended connection dropped unacknowledged, summed (see [`conn::Unacknowledged`]).
    pub abandoned: conn::Unacknowledged,

    /// The interface's counters.
    pub link: Option<crate::channel::unordered::Stats>,
    /// Packets the live connections still held for sending.
    pub send_queue_len: usize,
}

/// What differs between the reliable and the streaming table stage, and what the single-connection
/// stages' status publisher reads of their connection (crate-private: the two kinds are
/// [`ReliableKind`] and [`StreamKind`]).
pub(crate) trait MuxKind: Send + 'static {
    /// The connection type.
    type Conn: crate::channel::mux::MuxConn<Pool = Mempool> + crate::channel::sim::Endpoint<Buf = Mbuf> + Send;
    /// A command for one connection.
    type Op: Send;
    /// A delivery of one connection.
    type Delivery: Send;
    /// The command that queues a partial packet the endpoint filled.
    fn packed(m: Mbuf) -> Self::Op;
    /// The packet of a [`MuxKind::packed`] command back.
    fn unpack(op: Self::Op) -> Option<Mbuf>;
    /// The next delivery of `conn`.
    fn next_delivery(conn: &mut Self::Conn) -> Option<Self::Delivery>;
    /// Packets of send space `op` needs (0: it always goes in).
    fn need(op: &Self::Op) -> usize;
    /// Applies `op`: `Ok(false)` when the connection refused it (its payload is freed), `Err(op)`
    /// when it cannot take it yet (a close whose Fin found the pool empty).
    fn apply(conn: &mut Self::Conn, now: Instant, op: Self::Op) -> Result<bool, Self::Op>;
    /// Send space of `conn`, in packets.
    fn send_space(conn: &Self::Conn) -> usize;
    /// True while `conn` has queued packets that have not been sent once.
    fn has_unsent(conn: &Self::Conn) -> bool;
    /// The connection's counters and queued packets (for the report).
    fn stats(conn: &Self::Conn) -> (conn::Stats, usize);
    /// The connection's view of the path.
    fn path(conn: &Self::Conn) -> conn::PathStats;
    /// How the connection ended, if it did.
    fn outcome(conn: &Self::Conn) -> Option<conn::Outcome>;
    /// True while the connection is established (handshake done, not ended).
    fn established(conn: &Self::Conn) -> bool;
    /// What the application handed over in `op`, in the unit it counts lost sends in: messages
    /// (reliable) or bytes (stream).
    fn units(op: &Self::Op) -> u64;
    /// What the connection dropped unacknowledged when it ended.
    fn abandoned(conn: &Self::Conn) -> conn::Unacknowledged;
    /// The same, in the unit of [`MuxKind::units`].
    fn abandoned_units(conn: &Self::Conn) -> u64;
    /// What the connection holds now that its peer has not acknowledged, in the same unit.
    fn unacknowledged_units(conn: &Self::Conn) -> u64;
}

/// Messages in a packet of packed records, or one for a message of its own.
pub(crate) fn messages_in(op: &ReliableOp) -> u64 {
    match op {
        ReliableOp::Packed(m) => crate::wire::packed::count_records(m.data()).unwrap_or(1) as u64,
        ReliableOp::Message(_) => 1,
        ReliableOp::Close | ReliableOp::Reset => 0,
    }
}

/// Stream bytes in a write.
pub(crate) fn bytes_in(op: &StreamOp) -> u64 {
    match op {
        StreamOp::Write(m) => m.pkt_len() as u64,
        StreamOp::Finish | StreamOp::Reset => 0,
    }
}

/// The reliable table stage's kind.
#[derive(Debug)]
pub enum ReliableKind {}

impl MuxKind for ReliableKind {
    type Conn = Reliable<Mempool>;
    type Op = ReliableOp;
    type Delivery = reliable::Event<Mbuf>;
    fn packed(m: Mbuf) -> ReliableOp {
        ReliableOp::Packed(m)
    }
    fn unpack(op: ReliableOp) -> Option<Mbuf> {
        match op {
            ReliableOp::Packed(m) => Some(m),
            _ => None,
        }
    }
    fn next_delivery(conn: &mut Reliable<Mempool>) -> Option<reliable::Event<Mbuf>> {
        conn.poll_event()
    }
    fn need(op: &ReliableOp) -> usize {
        match op {
            ReliableOp::Packed(_) => 1,
            ReliableOp::Message(m) => usize::from(m.segments()),
            ReliableOp::Close | ReliableOp::Reset => 0,
        }
    }
    fn apply(conn: &mut Reliable<Mempool>, now: Instant, op: ReliableOp) -> Result<bool, ReliableOp> {
        Ok(match op {
            ReliableOp::Packed(m) => conn.send_packed(now, m).is_ok(),
            ReliableOp::Message(m) => conn.send_chain(now, m).is_ok(),
            ReliableOp::Close if !conn.close(now) => return Err(ReliableOp::Close),
            ReliableOp::Close => true,
            ReliableOp::Reset => {
                conn.reset(now);
                true
            }
        })
    }
    fn send_space(conn: &Reliable<Mempool>) -> usize {
        conn.send_space()
    }
    fn has_unsent(conn: &Reliable<Mempool>) -> bool {
        conn.has_unsent()
    }
    fn stats(conn: &Reliable<Mempool>) -> (conn::Stats, usize) {
        (*conn.stats(), conn.send_queue_len())
    }
    fn path(conn: &Reliable<Mempool>) -> conn::PathStats {
        conn.path()
    }
    fn outcome(conn: &Reliable<Mempool>) -> Option<conn::Outcome> {
        conn.outcome()
    }
    fn established(conn: &Reliable<Mempool>) -> bool {
        conn.state() == conn::State::Established
    }
    fn units(op: &ReliableOp) -> u64 {
        messages_in(op)
    }
    fn abandoned(conn: &Reliable<Mempool>) -> conn::Unacknowledged {
        conn.abandoned()
    }
    fn abandoned_units(conn: &Reliable<Mempool>) -> u64 {
        conn.abandoned().messages
    }
    fn unacknowledged_units(conn: &Reliable<Mempool>) -> u64 {
        conn.unacknowledged().messages
    }
}

/// The streaming table stage's kind.
#[derive(Debug)]
pub enum StreamKind {}

impl MuxKind for StreamKind {
    type Conn = Stream<Mempool>;
    type Op = StreamOp;
    type Delivery = StreamDelivery;
    fn packed(m: Mbuf) -> StreamOp {
        StreamOp::Write(m)
    }
    fn unpack(op: StreamOp) -> Option<Mbuf> {
        match op {
            StreamOp::Write(m) => Some(m),
            _ => None,
        }
    }
    fn next_delivery(conn: &mut Stream<Mempool>) -> Option<StreamDelivery> {
        if let Some(e) = conn.poll_event() {
            return Some(StreamDelivery::Event(e));
        }
        if let Some(seg) = conn.read_segment() {
            return Some(StreamDelivery::Data(seg));
        }
        conn.poll_end().then_some(StreamDelivery::End)
    }
    fn need(op: &StreamOp) -> usize {
        match op {
            StreamOp::Write(_) => 1,
            StreamOp::Finish | StreamOp::Reset => 0,
        }
    }
    fn apply(conn: &mut Stream<Mempool>, now: Instant, op: StreamOp) -> Result<bool, StreamOp> {
        Ok(match op {
            StreamOp::Write(m) => conn.write_buf(now, m).is_ok(),
            StreamOp::Finish if !conn.finish(now) => return Err(StreamOp::Finish),
            StreamOp::Finish => true,
            StreamOp::Reset => {
                conn.reset(now);
                true
            }
        })
    }
    fn send_space(conn: &Stream<Mempool>) -> usize {
        conn.send_space()
    }
    fn has_unsent(conn: &Stream<Mempool>) -> bool {
        conn.has_unsent()
    }
    fn stats(conn: &Stream<Mempool>) -> (conn::Stats, usize) {
        (*conn.stats(), conn.send_queue_len())
    }
    fn path(conn: &Stream<Mempool>) -> conn::PathStats {
        conn.path()
    }
    fn outcome(conn: &Stream<Mempool>) -> Option<conn::Outcome> {
        conn.outcome()
    }
    fn established(conn: &Stream<Mempool>) -> bool {
        conn.state() == conn::State::Established
    }
    fn units(op: &StreamOp) -> u64 {
        bytes_in(op)
    }
    fn abandoned(conn: &Stream<Mempool>) -> conn::Unacknowledged {
        conn.abandoned()
    }
    fn abandoned_units(conn: &Stream<Mempool>) -> u64 {
        conn.abandoned().bytes
    }
    fn unacknowledged_units(conn: &Stream<Mempool>) -> u64 {
        conn.unacknowledged().bytes
    }
}

/// A table of connections as a stage. See the module documentation.
#[allow(private_bounds)] // the kind trait is sealed by being crate-private
pub struct MuxStage<K: MuxKind, D: Deliver<MuxEvent<K::Delivery>>> {
    params: ChannelParams,
    table: TableParams,
    ends: super::endpoint::LcoreEnds<MuxCommand<K::Op>, MuxEvent<K::Delivery>>,
    sink: D,
    /// A delivery the sink had no room for.
    stash: Option<MuxEvent<K::Delivery>>,
    /// A command that did not fit its connection yet (it holds back every later command).
    held: Option<MuxCommand<K::Op>>,
    /// The endpoint's partial packet, taken from its slot, with its connection: it goes in once
    /// every command queued before it is in (the commands' stamps tell which those are).
    pending: Option<(ConnHandle, Mbuf)>,
    /// Partial packets taken from the endpoint's slot.
    taken: u32,
    run: Option<UdpMux<K::Conn>>,
    stats: StageStats,
    /// When the table's counters are next published to the endpoint.
    next_publish: Instant,
}

/// How often a stage publishes its table's counters (and a single connection's) to its endpoint.
pub(crate) const PUBLISH_INTERVAL: Duration = Duration::from_millis(1);

/// A `reliable_mux` stage.
pub type ReliableMuxStage<D = AppQueue<MuxEvent<reliable::Event<Mbuf>>>> = MuxStage<ReliableKind, D>;
/// A `streaming_mux` stage.
pub type StreamingMuxStage<D = AppQueue<MuxEvent<StreamDelivery>>> = MuxStage<StreamKind, D>;

impl ReliableMuxStage {
    /// A reliable table whose deliveries go to the application endpoint named `params.name`.
    pub fn new(params: ChannelParams, table: TableParams) -> ReliableMuxStage {
        let ends: ReliableMuxEnds = ReliableMuxEndpoint::register(
            &params.name,
            params.queue_depth,
            params.conn.max_message_size,
            params.conn.mss,
            table.max_connections,
        );
        let sink = AppQueue::clone_of(&ends.deliveries);
        MuxStage::build(params, table, ends, sink)
    }
}

impl StreamingMuxStage {
    /// A streaming table whose deliveries go to the application endpoint named `params.name`.
    pub fn new(params: ChannelParams, table: TableParams) -> StreamingMuxStage {
        let ends: StreamMuxEnds =
            StreamMuxEndpoint::register(&params.name, params.queue_depth, params.conn.mss, table.max_connections);
        let sink = AppQueue::clone_of(&ends.deliveries);
        MuxStage::build(params, table, ends, sink)
    }
}

#[allow(private_bounds)]
impl<K: MuxKind, D: Deliver<MuxEvent<K::Delivery>>> MuxStage<K, D> {
    fn build(
        params: ChannelParams,
        table: TableParams,
        ends: super::endpoint::LcoreEnds<MuxCommand<K::Op>, MuxEvent<K::Delivery>>,
        sink: D,
    ) -> Self {
        ends.shared.status.set_dialer(params.role == Role::Connect);
        MuxStage {
            params,
            table,
            ends,
            sink,
            stash: None,
            held: None,
            pending: None,
            taken: 0,
            run: None,
            stats: StageStats::default(),
            next_publish: Instant::ZERO,
        }
    }

    /// Builds the table on first use (it needs the lcore's pool); false when there is none.
    fn start(&mut self, cx: &Context, now: Instant) -> bool {
        if self.run.is_some() {
            return true;
        }
        let Some(pool) = cx.pool() else { return false };
        let _ = self.ends.shared.pool.set(pool.clone());
        let p = &self.params;
        let mut cfg = match p.role {
            Role::Listen => MuxConfig::listen(self.table.max_connections, p.epoch),
            Role::Connect => MuxConfig::connect(p.peer, self.table.max_connections, p.epoch),
        };
        cfg.idle_timeout = self.table.idle_timeout;
        let mut net = p.unordered_config(false);
        // A listener talks to many hosts: room for their ARP entries.
        net.arp_table_capacity = net.arp_table_capacity.max(self.table.max_connections.min(4096));
        let mut mux = UdpMux::new(net, pool.clone(), p.conn.clone(), cfg);
        if p.role == Role::Connect {
            for _ in 0..self.table.connections {
                if mux.connect(now).is_err() {
                    self.stats.send_refused += 1;
                }
            }
        }
        self.run = Some(mux);
        super::endpoint::serve_telemetry(&self.params.name, &self.ends.shared, false);
        true
    }

    /// Hands the events of the connections something happened to to the sink, while it takes them.
    fn deliver(&mut self, now: Instant) {
        let Some(mux) = &mut self.run else { return };
        if let Some(item) = self.stash.take() {
            if let Err(item) = self.sink.deliver(item) {
                self.stash = Some(item);
                return;
            }
            self.stats.delivered += 1;
        }
        let (sink, stats, board) = (&mut self.sink, &mut self.stats, &self.ends.shared.status);
        while let Some(h) = mux.next_ready() {
            let mut blocked = None;
            // The application learns the handle from these deliveries: its status exists first.
            board.ensure(h.index(), h.generation());
            mux.with(now, h, |c| {
                while let Some(event) = K::next_delivery(c) {
                    if let Err(item) = sink.deliver(MuxEvent { conn: h, event }) {
                        blocked = Some(item);
                        break;
                    }
                    stats.delivered += 1;
                    board.delivered(h.index());
                }
                let (s, queued) = K::stats(c);
                board.publish(h.index(), &s, &K::path(c), queued);
            });
            if let Some(item) = blocked {
                self.stash = Some(item);
                mux.mark_ready(h);
                return;
            }
        }
    }

    /// Publishes the ends of connections at once (the application's sends on them fail from now
    /// on, whatever deliveries wait before their events), with what each dropped unacknowledged;
    /// and the table's counters every [`PUBLISH_INTERVAL`].
    fn publish(&mut self, now: Instant) {
        let Some(mux) = &mut self.run else { return };
        let board = &self.ends.shared.status;
        // The table's counts of ended connections go first: an application that saw a connection's
        // end finds it in the table's counts too.
        if mux.has_ended() || now >= self.next_publish {
            self.next_publish = now + PUBLISH_INTERVAL;
            let t = mux.stats();
            board.publish_table(mux.len(), t.accepted + t.opened, [t.closed, t.reset, t.aborted, t.failed]);
        }
        while let Some(h) = mux.next_ended() {
            let Some(c) = mux.get(h) else { continue };
            let Some(outcome) = K::outcome(c) else { continue };
            board.set_state(h.index(), h.generation(), super::endpoint::ConnState::of_outcome(outcome));
            board.add_unacknowledged(h.index(), Some(h.generation()), K::abandoned_units(c));
            let (s, queued) = K::stats(c);
            board.publish(h.index(), &s, &K::path(c), queued);
        }
    }

    /// Takes the application's commands while their connections have room: a command that does not
    /// fit is held (and holds back the rest). With the queue drained, the endpoint's partial packet
    /// is taken from its slot (once per iteration, and only once its connection has sent everything
    /// queued before, so that it fills meanwhile); it goes in after every command queued before it
    /// and before every command queued after.
    fn commands(&mut self, now: Instant) {
        let Some(mux) = &mut self.run else { return };
        let mut took_partial = false;
        loop {
            let cmd = match self.held.take() {
                Some(cmd) => cmd,
                None => match self.ends.next_command() {
                    Ok(cmd) => {
                        self.stats.commands += 1;
                        cmd
                    }
                    Err(_) => {
                        if let Some((h, m)) = self.pending.take() {
                            match Self::apply(mux, &mut self.stats, &self.ends.shared, now, h, K::packed(m)) {
                                Ok(()) => continue,
                                Err(op) => {
                                    self.pending = K::unpack(op).map(|m| (h, m));
                                    break;
                                }
                            }
                        }
                        if took_partial {
                            break;
                        }
                        took_partial = true;
                        // Let the packet fill while its connection still has unsent packets (the
                        // hint may name another connection; then it is merely taken early).
                        let hint = ConnHandle::from_bits(
                            self.ends.shared.open_hint.load(core::sync::atomic::Ordering::Relaxed),
                        );
                        if mux.get(hint).is_some_and(K::has_unsent) {
                            break;
                        }
                        let Some(m) = self.ends.shared.open.take() else { break };
                        self.taken = self.taken.wrapping_add(1);
                        self.stats.partials_taken += 1;
                        match untag(m) {
                            Some(tagged) => self.pending = Some(tagged),
                            None => self.stats.send_refused += 1,
                        }
                        // Commands queued before it may have arrived meanwhile: they go first.
                        continue;
                    }
                },
            };
            // A command stamped after the endpoint saw the pending partial taken is newer than it.
            let after_partial = self.pending.is_some() && cmd.seen.wrapping_sub(self.taken) as i32 >= 0;
            if after_partial {
                if let Some((h, m)) = self.pending.take() {
                    if let Err(op) = Self::apply(mux, &mut self.stats, &self.ends.shared, now, h, K::packed(m)) {
                        self.pending = K::unpack(op).map(|m| (h, m));
                        self.held = Some(cmd);
                        break;
                    }
                }
            }
            match cmd.op {
                MuxOp::Open => {
                    let refused = mux.connect(now).is_err();
                    if refused {
                        self.stats.send_refused += 1;
                    }
                    self.ends.shared.status.open_taken(mux.len(), refused);
                }
                MuxOp::On(h, op) => {
                    if let Err(op) = Self::apply(mux, &mut self.stats, &self.ends.shared, now, h, op) {
                        self.held = Some(MuxCommand { seen: cmd.seen, op: MuxOp::On(h, op) });
                        break;
                    }
                }
            }
        }
    }

    /// Applies `op` to connection `h`, or gives it back when the connection has no room for it yet.
    /// An op for a connection that is gone, or that the connection refuses, is dropped (its payload
    /// freed) and counted, as the stage's `send_refused` and, in the application's unit, as
    /// unacknowledged for the connection (the application was told `Ok` when it queued it).
    fn apply(
        mux: &mut UdpMux<K::Conn>,
        stats: &mut StageStats,
        shared: &super::endpoint::Shared,
        now: Instant,
        h: ConnHandle,
        op: K::Op,
    ) -> Result<(), K::Op> {
        let need = K::need(&op);
        let units = K::units(&op);
        let refused = match mux.get(h).map(K::send_space) {
            None => true,
            Some(space) if space < need => return Err(op),
            Some(_) => match mux.with(now, h, |c| K::apply(c, now, op)) {
                Some(Ok(true)) => false,
                Some(Err(op)) => return Err(op),
                Some(Ok(false)) | None => true,
            },
        };
        if refused {
            stats.send_refused += 1;
            stats.refused_units += units;
            shared.status.add_unacknowledged(h.index(), Some(h.generation()), units);
        }
        Ok(())
    }
}

#[allow(private_bounds)]
impl<K: MuxKind, D: Deliver<MuxEvent<K::Delivery>>> Stage for MuxStage<K, D> {
    fn on_packet(&mut self, packet: Mbuf, cx: &Context) -> Verdict {
        let now = Instant::from_nanos(cx.now_nanos());
        if !self.start(cx, now) {
            return Verdict::Dropped;
        }
        let Some(mux) = &mut self.run else { return Verdict::Dropped };
        let received: Result<(), RxDrop> = mux.receive(now, packet);
        if received.is_err() {
            return Verdict::Dropped;
        }
        // Delivered now, for an application stage declared before this one (as the channel stages).
        self.deliver(now);
        Verdict::Taken
    }

    fn emit(&mut self, batch: &mut Batch<'_>, cx: &Context) {
        let now = Instant::from_nanos(cx.now_nanos());
        if !self.start(cx, now) {
            return;
        }
        if let Some(mux) = &mut self.run {
            mux.advance(now);
        }
        self.publish(now);
        self.deliver(now);
        self.commands(now);
        if let Some(mux) = &mut self.run {
            mux.transmit(now, batch);
        }
    }

    fn finish(&mut self, _cx: &Context) {
        // Everything the application handed over that no peer acknowledged is dropped now: counted
        // for each connection's status (and the table's), whose later sends are refused.
        let shared = self.ends.shared.clone();
        let board = &shared.status;
        board.stop();
        crate::substrate::telemetry::unregister_source(&super::endpoint::telemetry_source(&self.params.name));
        if let Some((h, m)) = self.pending.take() {
            board.add_unacknowledged(h.index(), Some(h.generation()), K::units(&K::packed(m)));
        }
        let ends = &mut self.ends;
        for cmd in self.held.take().into_iter().chain(core::iter::from_fn(|| ends.next_command().ok())) {
            if let MuxOp::On(h, op) = cmd.op {
                board.add_unacknowledged(h.index(), Some(h.generation()), K::units(&op));
            }
        }
        if let Some((h, m)) = shared.open.take().and_then(untag) {
            board.add_unacknowledged(h.index(), Some(h.generation()), K::units(&K::packed(m)));
        }
        if let Some(mux) = &self.run {
            for (h, c) in mux.connections() {
                let lost = K::unacknowledged_units(c);
                board.add_unacknowledged(h.index(), Some(h.generation()), lost);
            }
        }
        self.stash = None;
        self.run = None;
    }

    /// A [`MuxReport`].
    fn report(&self) -> Option<StageReport> {
        let mut r = MuxReport { stage: self.stats, ..MuxReport::default() };
        if let Some(mux) = &self.run {
            let l = mux.link_stats();
            (r.stage.framed, r.stage.chained, r.stage.copied) = (l.framed, l.chained, l.copied);
            r.table = mux.stats();
            r.live = mux.len();
            r.link = Some(mux.interface().stats().clone());
            let (retired, abandoned) = mux.retired();
            r.connections = *retired;
            r.abandoned = abandoned;
            for (_, c) in mux.connections() {
                let (s, queued) = K::stats(c);
                r.connections.add(&s);
                r.live_connections.add(&s);
                r.send_queue_len += queued;
                r.abandoned.add(&K::abandoned(c));
            }
        }
        Some(StageReport::new(r))
    }
}
