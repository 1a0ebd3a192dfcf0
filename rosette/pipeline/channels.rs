//! Channels as pipeline stages: [`UnorderedStage`], [`ReliableStage`] and [`StreamingStage`] drive the
//! sans-IO channels of [`crate::channel`] on DPDK mbufs, inside an lcore's poll loop.
//!
//! All three are built the same way — `Stage::new(ChannelParams)` — so swapping one for another in a
//! pipeline declaration changes one word. Each stage:
//! - consumes every frame of the burst it is given (ARP and Ethernet/IPv4/UDP for its address and port
//!   are acted on, everything else is dropped and counted; put a filter stage in front to share a port);
//! - drives its channel's timers from the TSC clock of the loop (`cx.now_nanos()` →
//!   [`Instant::from_nanos`]) on every iteration, also when nothing arrived;
//! - takes commands from its application endpoint ([`super::endpoint`]) while the channel has room,
//!   and hands deliveries to it (or to a user [`Deliver`] sink given to `with_sink`);
//! - appends what the channel transmits to the burst, for the stages after it (a fault stage, tx).
//!
//! Encapsulation: reliable and streaming are carried in UDP by the one connection driver,
//! [`crate::channel::link::UdpLink`], over a [`net::Interface`](crate::net::Interface) of their own —
//! the same interface (ARP, validation of every header and checksum, the one header writer) the
//! unordered channel is a socket on. Data packets are framed in their own headroom before the
//! connection keeps them; a packet shared with its retransmission copy goes out behind a fresh header
//! mbuf ([`Mbuf::chain`]) — no payload byte is copied; until the peer's MAC is known (ARP), a shared
//! packet is copied once so the interface can hold it while resolving.
//!
//! Pool: the stage learns the lcore's mempool from [`Context::pool`] on its first iteration and builds
//! its channel then; the loop must provide one (a declared stage checks this when it is built, so a
//! missing pool is a `LaunchError`).
//!
//! # Declaring the stages (YAML)
//! The three stages are the built-in short names `reliable`, `streaming` and `unordered`; they share one
//! params type ([`ChannelStageParams`](super::params::stock::ChannelStageParams)), checked at compile
//! time, so swapping one for another is one word (`pipelines/link_reliable.yaml`):
//! ```yaml
//! stages:
//!   - type: reliable                 # or streaming / unordered
//!     params:
//!       endpoint: ingest             # the app's end: link::endpoints::ingest(timeout)
//!       ip: "10.10.0.1"
//!       port: 7000
//!       mac: "02:00:00:00:00:01"
//!       peer: "10.10.0.2:7000"       # required by reliable and streaming
//!       role: listen                 # listen | connect (ignored by unordered)
//!       peer_mac: "02:00:00:00:00:02"   # optional static ARP entry
//!       queue_depth: 1024            # application queues, each direction
//!       window: 256                  # packets held by sender and receiver
//!       rto_min: 200us               # RTO floor; also rto_initial, rto_max, mss, max_message
//!       congestion: swift            # swift (delay-based) | newreno (loss-based)
//!       target_delay: 400us          # swift: queueing allowed above the smallest RTT
//!       pacing: true                 # spread a window larger than a burst over the RTT
//!       epoch: time                  # time | <n>
//!       conn_id: pid                 # pid | <n>
//!   - type: fault
//!     params: { seed: 7, loss_ppm: 1000, reorder_ppm: 1000, reorder_delay: 200us }
//! ```
//! The generated loop builds the stage on its lcore with
//! `<ReliableStage as DeclaredStage>::build(params, &env)` (which calls [`ReliableStage::new`]) and
//! the application takes the endpoint by type:
//! ```no_run
//! rosette_macros::pipeline!("pipelines/link_reliable.yaml");
//!
//! let pipeline = link::launch(&rosette::pipeline::LaunchOptions::new()).expect("launch");
//! let ingest: rosette::pipeline::endpoint::ReliableEndpoint =
//!     link::endpoints::ingest(std::time::Duration::from_secs(5)).expect("endpoint");
//! # drop((ingest, pipeline));
//! ```
//! Declaring `streaming` instead makes `link::endpoints::ingest` return a
//! [`StreamEndpoint`], so the annotation above stops compiling. From Rust, build the stages with
//! `ReliableStage::new(ChannelParams { .. })` and `FaultStage::new(seed, FaultConfig { .. })`.
use core::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc::TryRecvError;

use super::endpoint::{
    serve_telemetry, telemetry_source, AppQueue, ConnState, Deliver, LcoreEnds, ReliableCommand, ReliableEndpoint,
    ReliableOp, StatusBoard, StreamCommand, StreamDelivery, StreamEndpoint, StreamOp, UnorderedCommand,
    UnorderedEndpoint,
};
use super::mux::{bytes_in, messages_in, MuxKind, ReliableKind, StreamKind, PUBLISH_INTERVAL};
use super::{Context, Stage, StageReport, Verdict};
use crate::channel::conn;
use crate::channel::link::{self, FrameSink};
use crate::channel::reliable::{self, Reliable};
use crate::channel::streaming::{self, Stream};
use crate::channel::time::Instant;
use crate::channel::unordered::{self, UnorderedChannel};
use crate::net::{Interface, RxDrop};
use crate::substrate::{Batch, Mbuf, Mempool};
use crate::wire::{ethernet, ipv4, udp};

/// Which side opens a reliable or streaming connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send the handshake.
    Connect,
    /// Wait for the peer's handshake (and accept a restarted peer's new one).
    Listen,
}

/// Parameters shared by every channel stage (the unordered stage ignores the connection ones).
#[derive(Debug, Clone)]
pub struct ChannelParams {
    /// Endpoint name in the process-wide registry.
    pub name: String,
    /// Our MAC address.
    pub mac: [u8; 6],
    /// Our IPv4 address.
    pub ip: Ipv4Addr,
    /// Our UDP port.
    pub port: u16,
    /// The peer (reliable/streaming: the only address accepted and sent to).
    pub peer: SocketAddrV4,
    /// The peer's MAC as a static ARP entry; `None` resolves it with ARP.
    pub peer_mac: Option<[u8; 6]>,
    /// Connect or listen.
    pub role: Role,
    /// Connection settings (reliable/streaming).
    pub conn: conn::Config,
    /// This endpoint's epoch: must grow each time the process restarts (default: time-based).
    pub epoch: u32,
    /// Connection id (non-zero; default: the process id).
    pub local_id: u32,
    /// Depth of each application queue.
    pub queue_depth: usize,
    /// Compute the UDP checksum of what this stage sends (received ones are verified whenever they
    /// are non-zero). `None`: the stage's default — off for reliable and streaming, whose every packet
    /// carries the channel's CRC-32C over all of it (a stronger check of the same bytes; RFC 768
    /// allows a zero UDP checksum over IPv4), on for unordered, which has nothing else.
    pub udp_checksum: Option<bool>,
}

impl ChannelParams {
    /// Parameters with defaults: listen, ARP resolution, default connection settings, a time-based
    /// epoch, the process id as connection id, queues of 1024.
    pub fn new(name: &str, mac: [u8; 6], ip: Ipv4Addr, port: u16, peer: SocketAddrV4) -> ChannelParams {
        ChannelParams {
            name: name.to_owned(),
            mac,
            ip,
            port,
            peer,
            peer_mac: None,
            role: Role::Listen,
            conn: conn::Config::default(),
            epoch: default_epoch(),
            local_id: std::process::id().max(1),
            queue_depth: 1024,
            udp_checksum: None,
        }
    }

    /// Sets the role.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Sets the epoch.
    pub fn epoch(mut self, epoch: u32) -> Self {
        self.epoch = epoch;
        self
    }

    /// Sets a static ARP entry for the peer.
    pub fn peer_mac(mut self, mac: [u8; 6]) -> Self {
        self.peer_mac = Some(mac);
        self
    }

    /// The network-layer configuration; `checksum_default` is the stage kind's UDP checksum default.
    pub(crate) fn unordered_config(&self, checksum_default: bool) -> unordered::Config {
        let mut cfg = unordered::Config::new(ethernet::Address(self.mac), self.ip, &[self.port]);
        cfg.udp_checksum = self.udp_checksum.unwrap_or(checksum_default);
        if let Some(mac) = self.peer_mac {
            cfg.static_arp.push((*self.peer.ip(), ethernet::Address(mac)));
        }
        // Losing an ARP exchange on a faulty link must not stall a connection for seconds.
        cfg.arp_retry_interval = core::time::Duration::from_millis(100);
        cfg.arp_max_requests = 50;
        cfg
    }
}

/// Tenths of a second since 2025-01-01 (grows on every restart more than 0.1 s apart; wraps after
/// 13 years).
fn default_epoch() -> u32 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_millis().saturating_sub(1_735_689_600_000) / 100) as u32
}

#[inline]
fn now_of(cx: &Context) -> Instant {
    Instant::from_nanos(cx.now_nanos())
}

/// The connection driver of the reliable and streaming stages, on mbufs.
type UdpLink = link::UdpLink<Mempool>;

fn new_link(params: &ChannelParams, pool: Mempool) -> UdpLink {
    UdpLink::new(params.unordered_config(false), pool, params.peer)
}

/// A burst being built is where the connection driver puts its frames.
impl FrameSink<Mbuf> for Batch<'_> {
    #[inline]
    fn has_room(&self) -> bool {
        self.len() < self.capacity()
    }
    #[inline]
    fn push(&mut self, frame: Mbuf) -> Result<(), Mbuf> {
        Batch::push(self, frame)
    }
}

/// What a single-connection stage last published to its endpoint's status board
/// ([`super::endpoint::ConnStatus`]): the state at once when it changes, what ended connections
/// dropped unacknowledged at once, the counters every [`PUBLISH_INTERVAL`].
#[derive(Debug)]
struct Publisher {
    state: ConnState,
    abandoned: u64,
    next_at: Instant,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher { state: ConnState::Opening, abandoned: 0, next_at: Instant::ZERO }
    }
}

impl Publisher {
    /// Publishes what changed of `conn` (the state, what it dropped; its counters when due). `K`
    /// says what kind of connection it is, as for a table's connections.
    fn publish<K: MuxKind>(&mut self, board: &StatusBoard, now: Instant, conn: &K::Conn) {
        let state = match K::outcome(conn) {
            Some(outcome) => ConnState::of_outcome(outcome),
            None if K::established(conn) => ConnState::Open,
            None => ConnState::Opening,
        };
        let abandoned = K::abandoned_units(conn);
        if abandoned != self.abandoned {
            // Counted before the state flips, so a send refused for the end finds the count final.
            board.add_unacknowledged(0, None, abandoned.wrapping_sub(self.abandoned));
            self.abandoned = abandoned;
        }
        let ended = state != self.state;
        if ended {
            // The application's own close (Closing) stays until the connection really ends.
            if !(state == ConnState::Open && board.state(0, 0) == Some(ConnState::Closing)) {
                board.set_state(0, 0, state);
            }
            self.state = state;
        }
        if ended || now >= self.next_at {
            self.next_at = now + PUBLISH_INTERVAL;
            let (stats, queued) = K::stats(conn);
            board.publish(0, &stats, &K::path(conn), queued);
        }
    }
}

/// Counts a send the stage could not give to its connection (`units` in the application's unit):
/// the application was told `Ok`, so the endpoint's status says it was not acknowledged.
fn refused(stats: &mut StageStats, board: &StatusBoard, units: u64) {
    stats.send_refused += 1;
    stats.refused_units += units;
    board.add_unacknowledged(0, None, units);
}

/// Taken, or dropped (and freed) when the interface refused the frame.
#[inline]
fn verdict(received: Result<(), RxDrop>) -> Verdict {
    match received {
        Ok(()) => Verdict::Taken,
        Err(_) => Verdict::Dropped,
    }
}

/// What a channel stage reports when its loop stops ([`Stage::report`], read with
/// [`Pipeline::stage_report`](super::Pipeline::stage_report)): its own counters, the connection's
/// (reliable, streaming) and the link's (UDP/ARP receive drops; for `unordered` the channel's).
#[derive(Debug, Clone, Default)]
pub struct ChannelReport {
    /// The stage's own counters.
    pub stage: StageStats,
    /// The connection's counters, once the stage ran (reliable, streaming).
    pub connection: Option<conn::Stats>,
    /// The interface's or unordered channel's counters, once the stage ran.
    pub link: Option<unordered::Stats>,
    /// Messages or packets the connection still held for sending (reliable, streaming); for
    /// `unordered`, datagrams the channel still held (waiting for ARP or for transmission).
    pub send_queue_len: usize,
    /// The connection's view of the path at the end (reliable, streaming).
    pub path: Option<conn::PathStats>,
}

/// Counters of a channel stage, beyond the channel's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Commands taken from the application.
    pub commands: u64,
    /// Sends the channel refused (too large, closed, pool empty); the payload was freed.
    pub send_refused: u64,
    /// What those refused sends carried, in the application's unit: messages (reliable) or bytes
    /// (stream). The application had been told `Ok`; these are counted in its endpoint's
    /// `status().unacknowledged`.
    pub refused_units: u64,
    /// Deliveries handed to the sink.
    pub delivered: u64,
    /// Datagrams from addresses other than the peer (reliable/streaming).
    pub foreign: u64,
    /// Packets framed in their own headroom before the connection kept them for retransmission:
    /// one mbuf per frame, no copy (reliable/streaming; the usual path once the peer is resolved).
    pub framed: u64,
    /// Packets shared with the connection's retransmission copy that were sent behind a separate
    /// header mbuf, without copying (reliable/streaming; rare: no headroom).
    pub chained: u64,
    /// Shared packets copied once because the peer's MAC was not resolved yet (reliable/streaming).
    pub copied: u64,
    /// Partial packets taken from the endpoint's slot once the lcore had caught up (reliable:
    /// packed messages; streaming: written bytes).
    pub partials_taken: u64,
}

/// A reliable message channel as a stage. See the module documentation.
pub struct ReliableStage<D: Deliver<reliable::Event<Mbuf>> = AppQueue<reliable::Event<Mbuf>>> {
    params: ChannelParams,
    ends: LcoreEnds<ReliableCommand, reliable::Event<Mbuf>>,
    sink: D,
    stash: Option<reliable::Event<Mbuf>>,
    /// A command that did not fit the channel yet.
    held: Option<ReliableCommand>,
    /// The endpoint's partial packet, taken from its slot, until every command queued before it is in.
    pending: Option<Mbuf>,
    /// Partial packets taken from the endpoint's slot (compared with the commands' stamps).
    taken: u32,
    run: Option<(UdpLink, Reliable<Mempool>)>,
    stats: StageStats,
    publisher: Publisher,
}

impl ReliableStage {
    /// A reliable channel stage whose deliveries go to the application endpoint named `params.name`.
    pub fn new(params: ChannelParams) -> ReliableStage {
        let ends =
            ReliableEndpoint::register(&params.name, params.queue_depth, params.conn.max_message_size, params.conn.mss);
        let sink = AppQueue::clone_of(&ends.deliveries);
        ReliableStage::build(params, ends, sink)
    }
}

impl<D: Deliver<reliable::Event<Mbuf>>> ReliableStage<D> {
    /// A reliable channel stage whose deliveries go to `sink` (a user stage's consumer) instead of
    /// the application; the endpoint named `params.name` can still send.
    pub fn with_sink(params: ChannelParams, sink: D) -> ReliableStage<D> {
        let ends =
            ReliableEndpoint::register(&params.name, params.queue_depth, params.conn.max_message_size, params.conn.mss);
        ReliableStage::build(params, ends, sink)
    }

    fn build(
        params: ChannelParams,
        ends: LcoreEnds<ReliableCommand, reliable::Event<Mbuf>>,
        sink: D,
    ) -> ReliableStage<D> {
        ReliableStage {
            params,
            ends,
            sink,
            stash: None,
            held: None,
            pending: None,
            taken: 0,
            run: None,
            stats: StageStats::default(),
            publisher: Publisher::default(),
        }
    }

    /// The connection, once the stage ran (for counters and state).
    pub fn channel(&self) -> Option<&Reliable<Mempool>> {
        self.run.as_ref().map(|(_, c)| c)
    }

    /// The stage's own counters.
    pub fn stats(&self) -> StageStats {
        let mut s = self.stats;
        if let Some((link, _)) = &self.run {
            let l = link.stats();
            (s.foreign, s.framed, s.chained, s.copied) = (l.foreign, l.framed, l.chained, l.copied);
        }
        s
    }

    /// The interface carrying the connection (UDP/ARP counters), once the stage ran.
    pub fn link(&self) -> Option<&Interface<Mempool>> {
        self.run.as_ref().map(|(l, _)| l.interface())
    }
}

impl<D: Deliver<reliable::Event<Mbuf>>> ReliableStage<D> {
    /// Creates the connection on first use (it needs the lcore's pool); false when there is none.
    /// Hands the connection's events to the application while its queue takes them (one that does
    /// not fit waits in the stash, and the channel's receive window closes behind it).
    fn deliver(&mut self) {
        let Some((_, conn)) = &mut self.run else { return };
        loop {
            let item = match self.stash.take() {
                Some(item) => item,
                None => match conn.poll_event() {
                    Some(item) => item,
                    None => break,
                },
            };
            if matches!(item, reliable::Event::Reset(_) | reliable::Event::Failed) {
                // A message held for the old connection must not go out on a new one.
                let board = &self.ends.shared.status;
                if let Some(cmd) = self.held.take() {
                    refused(&mut self.stats, board, messages_in(&cmd.op));
                }
                if let Some(p) = self.pending.take() {
                    refused(&mut self.stats, board, messages_in(&ReliableOp::Packed(p)));
                }
            }
            if let Err(item) = self.sink.deliver(item) {
                self.stash = Some(item);
                break;
            }
            self.stats.delivered += 1;
            self.ends.shared.status.delivered(0);
        }
    }

    fn start(&mut self, cx: &Context, now: Instant) -> bool {
        if self.run.is_none() {
            let Some(pool) = cx.pool() else { return false };
            let _ = self.ends.shared.pool.set(pool.clone());
            let p = &self.params;
            let conn = match p.role {
                Role::Connect => Reliable::connect(p.conn.clone(), pool.clone(), p.local_id, p.epoch, now),
                Role::Listen => Reliable::listen(p.conn.clone(), pool.clone(), p.local_id, p.epoch, now),
            };
            self.run = Some((new_link(p, pool.clone()), conn));
            serve_telemetry(&p.name, &self.ends.shared, true);
        }
        true
    }
}

impl<D: Deliver<reliable::Event<Mbuf>>> Stage for ReliableStage<D> {
    fn on_packet(&mut self, packet: Mbuf, cx: &Context) -> Verdict {
        let now = now_of(cx);
        if !self.start(cx, now) {
            return Verdict::Dropped;
        }
        let v = match &mut self.run {
            Some((link, conn)) => verdict(link.receive_into(conn, now, packet)),
            None => Verdict::Dropped,
        };
        // What the packet completed goes to the application now, not at the end of the iteration: an
        // application stage declared before this one answers it in the same iteration.
        if matches!(v, Verdict::Taken) {
            self.deliver();
        }
        v
    }

    fn emit(&mut self, batch: &mut Batch<'_>, cx: &Context) {
        let now = now_of(cx);
        if !self.start(cx, now) {
            return;
        }
        let Some((link, conn)) = &mut self.run else { return };
        link.advance(conn, now);
        // The connection's end is published before any command is taken: later sends fail at once.
        self.publisher.publish::<ReliableKind>(&self.ends.shared.status, now, conn);
        // Deliveries first (only while the sink takes them), so a reset is seen before commands are.
        self.deliver();
        // Commands, only while the channel can take them (back-pressure to the application): a command
        // that does not fit yet is held, and no further command is taken until it went in. With the
        // queue drained and everything queued transmitted, the endpoint's partial packet is taken
        // from its slot (once per iteration), so packing never waits for more messages.
        let mut took_partial = false;
        // A connection that is over refuses everything at once (each refusal counted), so nothing
        // the application handed over waits unseen.
        let over = self.publisher.state.is_over();
        loop {
            let cmd = match self.held.take() {
                Some(cmd) => cmd,
                None => match self.ends.next_command() {
                    Ok(cmd) => {
                        self.stats.commands += 1;
                        cmd
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        // Everything queued before the partial packet is in: the partial goes next.
                        if let Some(p) = self.pending.take() {
                            let Some((_, conn)) = &mut self.run else { return };
                            if conn.send_space() == 0 && !over {
                                self.pending = Some(p);
                                break;
                            }
                            self.queue_partial(now, p);
                            continue;
                        }
                        let (_, conn) = match &mut self.run {
                            Some(run) => run,
                            None => return,
                        };
                        if !took_partial && (over || (!conn.has_unsent() && conn.send_space() > 0)) {
                            if let Some(p) = self.ends.shared.open.take() {
                                self.taken = self.taken.wrapping_add(1);
                                self.stats.partials_taken += 1;
                                self.pending = Some(p);
                                took_partial = true;
                                // Commands queued before it may have arrived meanwhile: take them first.
                                continue;
                            }
                        }
                        break;
                    }
                },
            };
            let Some((_, conn)) = &mut self.run else { return };
            let need = match &cmd.op {
                ReliableOp::Packed(_) => 1,
                ReliableOp::Message(m) => usize::from(m.segments()),
                ReliableOp::Close | ReliableOp::Reset => 0,
            };
            // A command stamped after the endpoint saw the pending partial taken is newer than it.
            let after_partial = self.pending.is_some() && cmd.seen.wrapping_sub(self.taken) as i32 >= 0;
            if conn.send_space() < need + usize::from(after_partial) && !matches!(cmd.op, ReliableOp::Reset) && !over {
                self.held = Some(cmd);
                break;
            }
            if after_partial {
                if let Some(p) = self.pending.take() {
                    self.queue_partial(now, p);
                }
            }
            let Some((_, conn)) = &mut self.run else { return };
            let units = messages_in(&cmd.op);
            let res = match cmd.op {
                // Zero-copy: the application's packet (or each mss-sized segment) becomes the packet.
                ReliableOp::Packed(m) => conn.send_packed(now, m).map(drop),
                ReliableOp::Message(m) => conn.send_chain(now, m),
                ReliableOp::Close => {
                    if !conn.close(now) && !over {
                        // No buffer for the Fin right now: the close waits, as a send would.
                        self.held = Some(ReliableCommand { seen: cmd.seen, op: ReliableOp::Close });
                        break;
                    }
                    Ok(())
                }
                ReliableOp::Reset => {
                    self.pending = None;
                    conn.reset(now);
                    Ok(())
                }
            };
            if res.is_err() {
                refused(&mut self.stats, &self.ends.shared.status, units);
            }
        }
        let Some((link, conn)) = &mut self.run else { return };
        link.transmit(conn, now, batch);
    }

    fn finish(&mut self, _cx: &Context) {
        // Everything the application handed over that the peer has not acknowledged is dropped
        // now: counted for the endpoint, whose later sends are refused (stopped first, so that a
        // partial packet parked after the last take below is taken back by the endpoint).
        self.ends.shared.status.stop();
        crate::substrate::telemetry::unregister_source(&telemetry_source(&self.params.name));
        let mut lost = self.channel().map_or(0, |c| c.unacknowledged().messages);
        lost += self.held.take().map_or(0, |cmd| messages_in(&cmd.op));
        lost += self.pending.take().map_or(0, |p| messages_in(&ReliableOp::Packed(p)));
        while let Ok(cmd) = self.ends.next_command() {
            lost += messages_in(&cmd.op);
        }
        lost += self.ends.shared.open.take().map_or(0, |p| messages_in(&ReliableOp::Packed(p)));
        let board = &self.ends.shared.status;
        board.add_unacknowledged(0, None, lost);
        self.stash = None;
        self.run = None;
    }

    /// A [`ChannelReport`].
    fn report(&self) -> Option<StageReport> {
        Some(StageReport::new(ChannelReport {
            stage: self.stats(),
            connection: self.channel().map(|c| *c.stats()),
            link: self.link().map(|l| l.stats().clone()),
            send_queue_len: self.channel().map_or(0, |c| c.send_queue_len()),
            path: self.channel().map(|c| c.path()),
        }))
    }
}

impl<D: Deliver<reliable::Event<Mbuf>>> ReliableStage<D> {
    /// Queues the endpoint's partial packet (records written by the application, zero-copy).
    fn queue_partial(&mut self, now: Instant, p: Mbuf) {
        let Some((_, conn)) = &mut self.run else { return };
        let units = crate::wire::packed::count_records(p.data()).unwrap_or(1) as u64;
        if conn.send_packed(now, p).is_err() {
            refused(&mut self.stats, &self.ends.shared.status, units);
        }
    }
}

/// Hands one frame to an unordered channel: taken, or dropped (and freed) when the channel refused it.
fn receive_frame(udp: &mut UnorderedChannel<Mempool>, now: Instant, frame: Mbuf) -> Verdict {
    verdict(udp.receive(now, frame))
}

/// A byte-stream channel as a stage. See the module documentation.
pub struct StreamingStage<D: Deliver<StreamDelivery> = AppQueue<StreamDelivery>> {
    params: ChannelParams,
    ends: LcoreEnds<StreamCommand, StreamDelivery>,
    sink: D,
    stash: Option<StreamDelivery>,
    /// A command that did not fit the stream yet.
    writing: Option<StreamCommand>,
    /// The endpoint's partial packet, taken from its slot, until every command queued before it is in.
    pending: Option<Mbuf>,
    /// Partial packets taken from the endpoint's slot.
    taken: u32,
    end_delivered: bool,
    run: Option<(UdpLink, Stream<Mempool>)>,
    stats: StageStats,
    publisher: Publisher,
}

impl StreamingStage {
    /// A streaming channel stage whose deliveries go to the application endpoint named `params.name`.
    pub fn new(params: ChannelParams) -> StreamingStage {
        let ends = StreamEndpoint::register(&params.name, params.queue_depth, params.conn.mss);
        let sink = AppQueue::clone_of(&ends.deliveries);
        StreamingStage::with_ends(params, ends, sink)
    }
}

impl<D: Deliver<StreamDelivery>> StreamingStage<D> {
    /// A streaming channel stage whose deliveries go to `sink`; the endpoint can still write.
    pub fn with_sink(params: ChannelParams, sink: D) -> StreamingStage<D> {
        let ends = StreamEndpoint::register(&params.name, params.queue_depth, params.conn.mss);
        StreamingStage::with_ends(params, ends, sink)
    }

    fn with_ends(params: ChannelParams, ends: LcoreEnds<StreamCommand, StreamDelivery>, sink: D) -> Self {
        StreamingStage {
            params,
            ends,
            sink,
            stash: None,
            writing: None,
            pending: None,
            taken: 0,
            end_delivered: false,
            run: None,
            stats: StageStats::default(),
            publisher: Publisher::default(),
        }
    }

    /// The stream, once the stage ran.
    pub fn channel(&self) -> Option<&Stream<Mempool>> {
        self.run.as_ref().map(|(_, c)| c)
    }

    /// The stage's own counters.
    pub fn stats(&self) -> StageStats {
        let mut s = self.stats;
        if let Some((link, _)) = &self.run {
            let l = link.stats();
            (s.foreign, s.framed, s.chained, s.copied) = (l.foreign, l.framed, l.chained, l.copied);
        }
        s
    }

    fn next_delivery(&mut self) -> Option<StreamDelivery> {
        let (_, stream) = self.run.as_mut()?;
        if let Some(e) = stream.poll_event() {
            if matches!(e, streaming::Event::Reset(_)) {
                self.end_delivered = false;
            }
            return Some(StreamDelivery::Event(e));
        }
        if let Some(seg) = stream.read_segment() {
            return Some(StreamDelivery::Data(seg));
        }
        if stream.is_finished() && !self.end_delivered {
            self.end_delivered = true;
            return Some(StreamDelivery::End);
        }
        None
    }
}

impl<D: Deliver<StreamDelivery>> StreamingStage<D> {
    /// Creates the stream on first use (it needs the lcore's pool); false when there is none.
    /// Hands the stream's data and events to the application while its queue takes them.
    fn deliver(&mut self) {
        loop {
            let item = match self.stash.take() {
                Some(item) => item,
                None => match self.next_delivery() {
                    Some(item) => item,
                    None => break,
                },
            };
            if matches!(item, StreamDelivery::Event(streaming::Event::Reset(_) | streaming::Event::Failed)) {
                // Bytes written for the old connection must not go out on a new one.
                let board = &self.ends.shared.status;
                if let Some(cmd) = self.writing.take() {
                    refused(&mut self.stats, board, bytes_in(&cmd.op));
                }
                if let Some(p) = self.pending.take() {
                    refused(&mut self.stats, board, p.pkt_len() as u64);
                }
            }
            if let Err(item) = self.sink.deliver(item) {
                self.stash = Some(item);
                break;
            }
            self.stats.delivered += 1;
            self.ends.shared.status.delivered(0);
        }
    }

    fn start(&mut self, cx: &Context, now: Instant) -> bool {
        if self.run.is_none() {
            let Some(pool) = cx.pool() else { return false };
            let _ = self.ends.shared.pool.set(pool.clone());
            let p = &self.params;
            let conn = match p.role {
                Role::Connect => Stream::connect(p.conn.clone(), pool.clone(), p.local_id, p.epoch, now),
                Role::Listen => Stream::listen(p.conn.clone(), pool.clone(), p.local_id, p.epoch, now),
            };
            self.run = Some((new_link(p, pool.clone()), conn));
            serve_telemetry(&p.name, &self.ends.shared, true);
        }
        true
    }
}

impl<D: Deliver<StreamDelivery>> Stage for StreamingStage<D> {
    fn on_packet(&mut self, packet: Mbuf, cx: &Context) -> Verdict {
        let now = now_of(cx);
        if !self.start(cx, now) {
            return Verdict::Dropped;
        }
        let v = match &mut self.run {
            Some((link, conn)) => verdict(link.receive_into(conn, now, packet)),
            None => Verdict::Dropped,
        };
        // Delivered at once, as the reliable stage does.
        if matches!(v, Verdict::Taken) {
            self.deliver();
        }
        v
    }

    fn emit(&mut self, batch: &mut Batch<'_>, cx: &Context) {
        let now = now_of(cx);
        if !self.start(cx, now) {
            return;
        }
        if let Some((link, stream)) = &mut self.run {
            link.advance(stream, now);
            // The stream's end is published before any write is taken: later writes fail at once.
            self.publisher.publish::<StreamKind>(&self.ends.shared.status, now, stream);
        }
        // Deliveries first (only while the sink takes them), so a reset is seen before writes are.
        self.deliver();
        // Writes: the application's packets become the stream's packets (zero-copy). A write that does
        // not fit is held; once caught up, the endpoint's partial packet is taken from its slot.
        let mut took_partial = false;
        // As the reliable stage: a stream that is over refuses everything at once, counted.
        let over = self.publisher.state.is_over();
        loop {
            let Some((_, stream)) = &mut self.run else { return };
            let cmd = match self.writing.take() {
                Some(cmd) => cmd,
                None => match self.ends.next_command() {
                    Ok(cmd) => {
                        self.stats.commands += 1;
                        cmd
                    }
                    Err(_) => {
                        if let Some(p) = self.pending.take() {
                            if stream.send_space() == 0 && !over {
                                self.pending = Some(p);
                                break;
                            }
                            let units = p.pkt_len() as u64;
                            if let Err((e, p)) = stream.write_buf(now, p) {
                                if e == streaming::WriteError::Closed {
                                    refused(&mut self.stats, &self.ends.shared.status, units);
                                } else {
                                    self.pending = Some(p);
                                    break;
                                }
                            }
                            continue;
                        }
                        if !took_partial && (over || (!stream.has_unsent() && stream.send_space() > 0)) {
                            if let Some(p) = self.ends.shared.open.take() {
                                self.taken = self.taken.wrapping_add(1);
                                self.stats.partials_taken += 1;
                                self.pending = Some(p);
                                took_partial = true;
                                continue;
                            }
                        }
                        break;
                    }
                },
            };
            let after_partial = self.pending.is_some() && cmd.seen.wrapping_sub(self.taken) as i32 >= 0;
            let need = usize::from(matches!(cmd.op, StreamOp::Write(_))) + usize::from(after_partial);
            if stream.send_space() < need && !matches!(cmd.op, StreamOp::Reset) && !over {
                self.writing = Some(cmd);
                break;
            }
            if after_partial {
                if let Some(p) = self.pending.take() {
                    let units = p.pkt_len() as u64;
                    if let Err((e, p)) = stream.write_buf(now, p) {
                        if e == streaming::WriteError::Closed {
                            refused(&mut self.stats, &self.ends.shared.status, units);
                        } else {
                            self.pending = Some(p);
                            self.writing = Some(cmd);
                            break;
                        }
                    }
                }
            }
            let units = bytes_in(&cmd.op);
            match cmd.op {
                StreamOp::Write(m) => match stream.write_buf(now, m) {
                    Ok(()) => {}
                    Err((streaming::WriteError::Closed, _)) => {
                        refused(&mut self.stats, &self.ends.shared.status, units)
                    }
                    Err((_, m)) => {
                        self.writing = Some(StreamCommand { seen: cmd.seen, op: StreamOp::Write(m) });
                        break;
                    }
                },
                StreamOp::Finish => {
                    if !stream.finish(now) && !over {
                        // No buffer for the Fin right now: the finish waits, as a write would.
                        self.writing = Some(StreamCommand { seen: cmd.seen, op: StreamOp::Finish });
                        break;
                    }
                }
                StreamOp::Reset => {
                    self.pending = None;
                    stream.reset(now);
                }
            }
        }
        let Some((link, stream)) = &mut self.run else { return };
        link.transmit(stream, now, batch);
    }

    fn finish(&mut self, _cx: &Context) {
        // As the reliable stage: what was not acknowledged is counted, later writes are refused.
        self.ends.shared.status.stop();
        crate::substrate::telemetry::unregister_source(&telemetry_source(&self.params.name));
        let mut lost = self.channel().map_or(0, |c| c.unacknowledged().bytes);
        lost += self.writing.take().map_or(0, |cmd| bytes_in(&cmd.op));
        lost += self.pending.take().map_or(0, |p| p.pkt_len() as u64);
        while let Ok(cmd) = self.ends.next_command() {
            lost += bytes_in(&cmd.op);
        }
        lost += self.ends.shared.open.take().map_or(0, |p| p.pkt_len() as u64);
        let board = &self.ends.shared.status;
        board.add_unacknowledged(0, None, lost);
        self.stash = None;
        self.run = None;
    }

    /// A [`ChannelReport`].
    fn report(&self) -> Option<StageReport> {
        Some(StageReport::new(ChannelReport {
            stage: self.stats(),
            connection: self.channel().map(|c| *c.stats()),
            link: self.run.as_ref().map(|(l, _)| l.interface().stats().clone()),
            send_queue_len: self.channel().map_or(0, |c| c.send_queue_len()),
            path: self.channel().map(|c| c.path()),
        }))
    }
}

/// The unordered (UDP) channel as a stage: datagrams to and from any UDP peer, the Linux kernel
/// included. See the module documentation; `params.peer` and the connection parameters are unused.
pub struct UnorderedStage<D: Deliver<unordered::Event<Mbuf>> = AppQueue<unordered::Event<Mbuf>>> {
    params: ChannelParams,
    ends: LcoreEnds<UnorderedCommand, unordered::Event<Mbuf>>,
    sink: D,
    stash: Option<unordered::Event<Mbuf>>,
    run: Option<UnorderedChannel<Mempool>>,
    stats: StageStats,
    /// What [`UnorderedEndpoint::dropped`] was last told.
    dropped_published: u64,
}

/// Largest UDP payload of a default (MTU 1500) unordered channel.
const MAX_DATAGRAM: usize = 1500 - ipv4::HEADER_LEN - udp::HEADER_LEN;

impl UnorderedStage {
    /// An unordered channel stage whose deliveries go to the application endpoint `params.name`.
    pub fn new(params: ChannelParams) -> UnorderedStage {
        let ends = UnorderedEndpoint::register(&params.name, params.queue_depth, MAX_DATAGRAM);
        let sink = AppQueue::clone_of(&ends.deliveries);
        UnorderedStage::with_ends(params, ends, sink)
    }
}

impl<D: Deliver<unordered::Event<Mbuf>>> UnorderedStage<D> {
    /// An unordered channel stage whose deliveries go to `sink`; the endpoint can still send.
    pub fn with_sink(params: ChannelParams, sink: D) -> UnorderedStage<D> {
        let ends = UnorderedEndpoint::register(&params.name, params.queue_depth, MAX_DATAGRAM);
        UnorderedStage::with_ends(params, ends, sink)
    }

    fn with_ends(params: ChannelParams, ends: LcoreEnds<UnorderedCommand, unordered::Event<Mbuf>>, sink: D) -> Self {
        UnorderedStage {
            params,
            ends,
            sink,
            stash: None,
            run: None,
            stats: StageStats::default(),
            dropped_published: 0,
        }
    }

    /// The channel (counters: receive drops by reason, ARP), once the stage ran.
    pub fn channel(&self) -> Option<&UnorderedChannel<Mempool>> {
        self.run.as_ref()
    }

    /// The stage's own counters.
    pub fn stats(&self) -> StageStats {
        self.stats
    }
}

impl<D: Deliver<unordered::Event<Mbuf>>> UnorderedStage<D> {
    /// Creates the channel on first use (it needs the lcore's pool); false when there is none.
    fn start(&mut self, cx: &Context) -> bool {
        if self.run.is_none() {
            let Some(pool) = cx.pool() else { return false };
            let _ = self.ends.shared.pool.set(pool.clone());
            self.run = Some(UnorderedChannel::new(self.params.unordered_config(true), pool.clone()));
        }
        true
    }

    /// The endpoint's datagrams the lcore could not send so far: refused by the channel, or dropped by
    /// it after waiting for ARP (`held` more when the stage stops with datagrams still queued).
    fn endpoint_drops(&self, held: u64) -> u64 {
        let later = self.run.as_ref().map_or(0, |udp| {
            let tx = &udp.stats().tx_drops;
            tx.pending_timeout + tx.unresolved
        });
        self.stats.send_refused + later + held
    }

    /// Tells the endpoint (one relaxed store, only when the count moved).
    fn publish_drops(&mut self, held: u64) {
        let dropped = self.endpoint_drops(held);
        if dropped != self.dropped_published {
            self.dropped_published = dropped;
            self.ends.shared.dropped.store(dropped, core::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Datagrams the channel still holds: waiting for ARP, or queued for transmission (accepted, and
    /// neither sent nor dropped since; ARP frames are not counted).
    fn held(&self) -> usize {
        self.run.as_ref().map_or(0, |udp| {
            let s = udp.stats();
            s.accepted.saturating_sub(s.sent + s.tx_drops.pending_timeout + s.tx_drops.unresolved) as usize
        })
    }
}

impl<D: Deliver<unordered::Event<Mbuf>>> Stage for UnorderedStage<D> {
    fn on_packet(&mut self, packet: Mbuf, cx: &Context) -> Verdict {
        let now = now_of(cx);
        if !self.start(cx) {
            return Verdict::Dropped;
        }
        let Some(udp) = &mut self.run else { return Verdict::Dropped };
        receive_frame(udp, now, packet)
    }

    fn emit(&mut self, batch: &mut Batch<'_>, cx: &Context) {
        let now = now_of(cx);
        if !self.start(cx) {
            return;
        }
        let Some(udp) = &mut self.run else { return };
        if udp.poll_timeout().is_some_and(|t| t <= now) {
            udp.handle_timeout(now);
        }
        // At most a burst's worth of sends per iteration, so the transmit queue drains as fast as it
        // fills, and only while it has room: otherwise the commands wait and the endpoint's queue fills
        // (`WouldBlock`) instead of the channel refusing them. A refused send frees the payload and is
        // counted by the channel and for the endpoint.
        let room = udp.config().tx_queue_capacity;
        for _ in 0..batch.capacity() {
            if udp.interface().tx_queue_len() >= room {
                break;
            }
            let Ok(UnorderedCommand { dst, payload }) = self.ends.next_command() else { break };
            self.stats.commands += 1;
            if udp.send(now, self.params.port, dst, payload).is_err() {
                self.stats.send_refused += 1;
            }
        }
        loop {
            let item = match self.stash.take() {
                Some(item) => item,
                None => match udp.poll_event() {
                    Some(item) => item,
                    None => break,
                },
            };
            if let Err(item) = self.sink.deliver(item) {
                self.stash = Some(item);
                break;
            }
            self.stats.delivered += 1;
        }
        while batch.len() < batch.capacity() {
            let Some(frame) = udp.poll_transmit(now) else { break };
            if let Err(frame) = batch.push(frame) {
                drop(frame);
                break;
            }
        }
        self.publish_drops(0);
    }

    fn finish(&mut self, _cx: &Context) {
        // What is still queued is never sent: counted for the endpoint.
        self.publish_drops(self.held() as u64);
        self.stash = None;
        self.run = None;
    }

    /// A [`ChannelReport`] (no connection; `send_queue_len` is what the channel still held: datagrams
    /// waiting for ARP or for transmission).
    fn report(&self) -> Option<StageReport> {
        Some(StageReport::new(ChannelReport {
            stage: self.stats(),
            connection: None,
            link: self.channel().map(|c| c.stats().clone()),
            send_queue_len: self.held(),
            path: None,
        }))
    }
}
