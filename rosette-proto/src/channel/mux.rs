//! Connection tables: many reliable or streaming connections behind one UDP port of one interface.
//!
//! [`UdpMux`] is the driver of a *listener* (it accepts up to [`MuxConfig::max_connections`]
//! connections from any peer) or of a *dialer* (it opens connections to one peer on request), on one
//! lcore, with no state shared with any other lcore. It owns the [`Interface`] (ARP, header
//! validation, the one header writer) and a table of connections, each an ordinary
//! [`Reliable`] or [`Stream`],
//! named to the application by a [`ConnHandle`] (slot and generation, so a handle of a reclaimed
//! connection is refused, never aliased to its successor).
//!
//! # Accepting without state (SYN cookies)
//! A listener keeps no state for a connection attempt. It answers a Syn with the SynAck a listening
//! connection would send, with a *cookie* as its connection id: a keyed hash (SipHash-2-4, key
//! [`MuxConfig::cookie_key`]) of the peer's address, connection id and epoch. Only the peer's next
//! packet, which must carry that cookie as its destination id (and pass the CRC), creates the
//! connection; both sequence spaces are derived from the ids and epochs, so nothing of the Syn needs
//! remembering. A flood of forged Syns costs one SynAck each (at most [`MuxConfig::reply_queue`]
//! held) and no memory; forged data needs a cookie an attacker cannot compute; a full table
//! refuses new connections but never evicts an established one.
//!
//! # Memory
//! An idle connection keeps only its state machine (about a kilobyte): its window-sized queues are
//! lent out while it is quiescent ([`Storage`]) and lent back from a spare list when it wakes, so an
//! established but idle connection costs far less than its window, and a busy table allocates nothing
//! once every connection that is active at the same time has had storage once.
//!
//! # One window per peer (dialer)
//! A dialer's connections all go to one peer, over one path: together they keep at most one
//! connection's window (the connection config's `send_capacity`) of packets in flight — RFC 3124's
//! Congestion Manager in its simplest form. Without it ten thousand connections, each with its own
//! minimum window, would put tens of thousands of packets on a path that holds a few thousand, and
//! lose most of them. A connection whose new data the shared window holds back keeps sending
//! acknowledgements and retransmissions, and is filed again as the window opens.
//!
//! # Timers
//! Only connections that something happened to are looked at: an arriving datagram, an application
//! command, or a timer. Timers sit in one binary heap of `(deadline, slot)`; an entry is pushed only
//! when a connection's deadline moves earlier than the one it already has in the heap (moving later,
//! the common case of a re-armed retransmission timer, costs nothing: the old entry, when it comes
//! up, finds the real deadline and pushes that). The idle timeout and the reuse of a finished
//! connection's slot run through the same heap.
//!
//! # Driving it (sans-IO, like [`UdpLink`](crate::channel::link::UdpLink))
//! Every iteration: [`UdpMux::receive`] each frame, [`UdpMux::advance`] (timers), then
//! [`UdpMux::next_ready`] / [`UdpMux::with`] to drain the events of the connections that something
//! happened to and to give them the application's commands, then [`UdpMux::transmit`].
#![forbid(unsafe_code)]

use core::hash::{BuildHasher, Hasher};
use core::net::SocketAddrV4;
use core::time::Duration;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::buf::{BufPool, PacketBuf};
use crate::channel::conn::{initial_seq, Config, Core, Outcome, Stats, Storage, Unacknowledged};
use crate::channel::link::{self, FrameSink, LinkStats};
use crate::channel::reliable::Reliable;
use crate::channel::sim::Endpoint;
use crate::channel::streaming::Stream;
use crate::channel::time::Instant;
use crate::net::{self, Interface, RxDrop};
use crate::wire::transport::{Packet, PacketType, Repr};

/// Bits of a dialer's connection id that hold the slot index (the rest hold the generation).
const INDEX_BITS: u32 = 20;
/// The most connections a table can hold: a dialer's connection id holds the slot index in its low
/// 20 bits (all ones is left out, so no dialer id wraps to 0).
pub const MAX_CONNECTIONS: usize = (1 << INDEX_BITS) - 1;
/// Packets one connection may send before the next ready connection gets its turn.
const TX_QUOTA: usize = 32;

/// What a table does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxRole {
    /// Accept connections from any peer (stateless cookies).
    Listen,
    /// Open connections to this peer on request ([`UdpMux::connect`]).
    Connect(SocketAddrV4),
}

/// Limits and timers of a connection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxConfig {
    /// Listener or dialer.
    pub role: MuxRole,
    /// The most connections at once (at most [`MAX_CONNECTIONS`]); a listener refuses more
    /// (counted as [`MuxStats::table_full`]) and a dialer's [`UdpMux::connect`] fails.
    pub max_connections: usize,
    /// A connection with nothing heard from its peer and nothing sent for this long is reset
    /// ([`ResetReason::IdleTimeout`](crate::channel::conn::ResetReason::IdleTimeout)); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Our epoch: must grow each time the process restarts.
    pub epoch: u32,
    /// The key of the cookie hash; keep it secret (the default is drawn from the process's entropy).
    pub cookie_key: [u64; 2],
    /// Stateless replies (cookie SynAcks, Resets for unknown connections) waiting to be sent, sent as
    /// room in the transmit burst allows; more are dropped (counted as [`MuxStats::replies_dropped`]).
    /// A flood gets at most one small reply per packet it sends (no amplification), and never more
    /// than this many held.
    pub reply_queue: usize,
    /// Storage sets (a connection's window-sized queues) allocated with the table (at most
    /// `max_connections`) and kept at least, for connections that wake: up to this many connections
    /// can be busy at once without the table allocating. While more hold storage, as many spares as
    /// they are are kept (a busy table does not churn the allocator; a new peak allocates once);
    /// once they park, the spares beyond this are freed a few per iteration.
    pub spare_storage: usize,
}

impl MuxConfig {
    /// A listener with room for `max_connections`, a 60 s idle timeout, a random cookie key, 1024
    /// replies held, 64 spare storage sets.
    pub fn listen(max_connections: usize, epoch: u32) -> MuxConfig {
        MuxConfig {
            role: MuxRole::Listen,
            max_connections,
            idle_timeout: Some(Duration::from_secs(60)),
            epoch,
            cookie_key: random_key(),
            reply_queue: 1024,
            spare_storage: 64,
        }
    }

    /// A dialer to `peer` (defaults as [`MuxConfig::listen`]).
    pub fn connect(peer: SocketAddrV4, max_connections: usize, epoch: u32) -> MuxConfig {
        MuxConfig { role: MuxRole::Connect(peer), ..MuxConfig::listen(max_connections, epoch) }
    }
}

/// A secret drawn from the process's hash-map entropy (no extra dependency, never the same twice).
fn random_key() -> [u64; 2] {
    let state = std::collections::hash_map::RandomState::new();
    [state.hash_one(0x6b65_7930_u64), state.hash_one(0x6b65_7931_u64)]
}

/// Names one connection of a table; refused once the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    index: u32,
    generation: u32,
}

impl ConnHandle {
    /// The slot index (stable while the connection lives; reused after).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation: how many connections the slot held before this one (wrapping).
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// The handle as one number (to pass it through an atomic).
    pub fn to_bits(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.index)
    }

    /// The handle [`Self::to_bits`] gave.
    pub fn from_bits(bits: u64) -> ConnHandle {
        ConnHandle { index: bits as u32, generation: (bits >> 32) as u32 }
    }
}

/// Why [`UdpMux::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The table is a listener.
    NotADialer,
    /// [`MuxConfig::max_connections`] connections are open.
    TableFull,
}

impl core::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConnectError::NotADialer => "a listener cannot open connections",
            ConnectError::TableFull => "the connection table is full (max_connections)",
        })
    }
}

impl std::error::Error for ConnectError {}

/// Counters of a table, beyond its connections' and its interface's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Connections accepted (a valid cookie came back).
    pub accepted: u64,
    /// Connections opened by [`UdpMux::connect`].
    pub opened: u64,
    /// Connections whose slot was reused after they finished.
    pub reclaimed: u64,
    /// Connections reset for idleness.
    pub idle_closed: u64,
    /// Cookie SynAcks sent (one per Syn, retransmitted ones included).
    pub cookies_sent: u64,
    /// Packets for no connection whose destination id was not their cookie (forged or stale):
    /// dropped.
    pub bad_cookie: u64,
    /// Syns whose sequence number is not the one their id and epoch give (forged): dropped.
    pub bad_syn: u64,
    /// Packets with a valid cookie that cannot open a connection (late packets of a connection that
    /// ended and was forgotten): dropped without an answer.
    pub stale: u64,
    /// Packets for no connection that failed the header or CRC check: dropped.
    pub malformed: u64,
    /// Valid cookies refused because the table was full.
    pub table_full: u64,
    /// Stateless replies dropped because [`MuxConfig::reply_queue`] was full.
    pub replies_dropped: u64,
    /// Packets to a dialer's connection id that names no live connection: dropped.
    pub unknown_connection: u64,
    /// Connections whose queues were given fresh storage (no spare was free): the high-water mark
    /// of simultaneously active connections, once warm.
    pub storage_allocated: u64,
    /// Connections that ended in an orderly close (both directions, everything acknowledged).
    pub closed: u64,
    /// Connections reset (by the peer, a restarted peer, a protocol violation or the idle timeout).
    pub reset: u64,
    /// Connections the application aborted.
    pub aborted: u64,
    /// Connections whose retransmissions gave up (the peer stopped answering).
    pub failed: u64,
}

// The sealed trait's methods name the crate-private engine; the trait is unnameable outside the
// crate (a private module), so nothing private leaks.
#[allow(private_interfaces)]
mod sealed {
    use super::*;

    /// What a table needs of a connection type; sealed: implemented for [`Reliable`] and [`Stream`].
    pub trait Conn: Endpoint {
        type Pool: BufPool<Buf = Self::Buf> + Clone;
        fn dial(cfg: Config, pool: Self::Pool, local_id: u32, epoch: u32, now: Instant) -> Self;
        fn accept(cfg: Config, pool: Self::Pool, ids: Accepted, now: Instant) -> Self;
        fn core(&self) -> &Core<Self::Pool>;
        fn core_mut(&mut self) -> &mut Core<Self::Pool>;
        /// The configuration as this kind uses it (a stream has no messages, so no message limit).
        fn adapt(cfg: Config) -> Config {
            cfg
        }
    }

    /// Ids and epochs of a connection accepted by cookie.
    pub struct Accepted {
        pub local_id: u32,
        pub epoch: u32,
        pub peer_id: u32,
        pub peer_epoch: u32,
    }
}
use sealed::{Accepted, Conn};

/// A connection type a [`UdpMux`] can hold: [`Reliable`] or [`Stream`].
pub trait MuxConn: Conn {}
impl<P: BufPool + Clone> MuxConn for Reliable<P> {}
impl<P: BufPool + Clone> MuxConn for Stream<P> {}

#[allow(private_interfaces)] // see `sealed`
impl<P: BufPool + Clone> Conn for Reliable<P> {
    type Pool = P;
    fn dial(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        Reliable::from_core(Core::connect_lean(cfg, pool, local_id, epoch, now))
    }
    fn accept(cfg: Config, pool: P, ids: Accepted, now: Instant) -> Self {
        Reliable::from_core(Core::accept_cookie(cfg, pool, ids.local_id, ids.epoch, ids.peer_id, ids.peer_epoch, now))
    }
    fn core(&self) -> &Core<P> {
        Reliable::core(self)
    }
    fn core_mut(&mut self) -> &mut Core<P> {
        Reliable::core_mut(self)
    }
}

#[allow(private_interfaces)] // see `sealed`
impl<P: BufPool + Clone> Conn for Stream<P> {
    type Pool = P;
    fn dial(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        Stream::from_core(Core::connect_lean(cfg, pool, local_id, epoch, now))
    }
    fn adapt(cfg: Config) -> Config {
        cfg.for_stream()
    }
    fn accept(cfg: Config, pool: P, ids: Accepted, now: Instant) -> Self {
        Stream::from_core(Core::accept_cookie(cfg, pool, ids.local_id, ids.epoch, ids.peer_id, ids.peer_epoch, now))
    }
    fn core(&self) -> &Core<P> {
        Stream::core(self)
    }
    fn core_mut(&mut self) -> &mut Core<P> {
        Stream::core_mut(self)
    }
}

/// One live connection and what the table knows of it.
struct Slot<C> {
    conn: C,
    peer: SocketAddrV4,
    /// The peer's connection id (listener: the key of `by_peer`).
    peer_id: u32,
    /// When the peer was last heard or the application last acted.
    last_active: Instant,
    /// The earliest deadline this slot has in the timer heap.
    queued_timer: Option<Instant>,
    /// When the connection was first seen finished (its slot is reused a linger later).
    finished_at: Option<Instant>,
    /// Its end was filed for [`UdpMux::next_ended`].
    end_filed: bool,
    /// Its packets in flight, as last added to the table's sum.
    in_flight: u32,
    in_ready: bool,
    in_tx: bool,
    in_gated: bool,
}

struct Entry<C> {
    generation: u32,
    slot: Option<Slot<C>>,
}

/// A listener's key: the peer's address and connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PeerKey {
    ip: u32,
    port: u16,
    id: u32,
}

/// The table itself, apart from the interface so that the interface's receive callback can use it.
struct Table<C: MuxConn> {
    cfg: Config,
    mux: MuxConfig,
    pool: C::Pool,
    entries: Vec<Entry<C>>,
    free: Vec<u32>,
    live: usize,
    /// Live connections holding storage (not parked).
    active: usize,
    by_peer: HashMap<PeerKey, u32, FastState>,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    ready: VecDeque<u32>,
    tx: VecDeque<u32>,
    /// Dialer: connections with new data held back by the shared window, waiting for room.
    gated: VecDeque<u32>,
    /// Dialer: packets in flight over all connections, and the most the peer gets at once.
    in_flight: u64,
    shared_window: Option<u64>,
    spares: Vec<Storage<<C as Endpoint>::Buf>>,
    replies: VecDeque<(SocketAddrV4, Repr)>,
    stats: MuxStats,
    /// Connections that ended, not yet returned by [`UdpMux::next_ended`].
    ended: VecDeque<u32>,
    /// The counters of every connection whose slot was reused, summed (with the live ones', the
    /// whole table's history).
    retired: Stats,
    /// What those connections dropped unacknowledged, summed.
    retired_abandoned: Unacknowledged,
}

/// A table of connections on one UDP port. See the module documentation.
pub struct UdpMux<C: MuxConn> {
    iface: Interface<C::Pool>,
    port: u16,
    table: Table<C>,
    link: LinkStats,
}

impl<C: MuxConn> core::fmt::Debug for UdpMux<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpMux")
            .field("port", &self.port)
            .field("role", &self.table.mux.role)
            .field("live", &self.table.live)
            .field("stats", &self.table.stats)
            .finish_non_exhaustive()
    }
}

impl<C: MuxConn> UdpMux<C> {
    /// A table on the first port of `net.ports`, its connections configured by `conn` (each gets
    /// a handle of `pool`).
    ///
    /// # Panics
    /// When `net.ports` is empty, `conn` fails [`Config::validate`], or `mux.max_connections` is 0
    /// or above [`MAX_CONNECTIONS`] (the stage parameters are checked before this).
    pub fn new(net: net::Config, pool: C::Pool, conn: Config, mux: MuxConfig) -> UdpMux<C> {
        let port = *net.ports.first().expect("a connection table needs a bound port");
        let conn = C::adapt(conn);
        conn.validate().expect("invalid connection configuration");
        assert!(
            (1..=MAX_CONNECTIONS).contains(&mux.max_connections),
            "max_connections must be between 1 and {MAX_CONNECTIONS}"
        );
        let replies = VecDeque::with_capacity(mux.reply_queue);
        let hasher = FastState(mux.cookie_key[0] ^ mux.cookie_key[1].rotate_left(17));
        let spares = (0..mux.spare_storage.min(mux.max_connections)).map(|_| Storage::fresh(&conn)).collect();
        let shared_window = match mux.role {
            MuxRole::Connect(_) => Some(conn.send_capacity as u64),
            MuxRole::Listen => None,
        };
        UdpMux {
            iface: Interface::new(net, pool.clone()),
            port,
            table: Table {
                cfg: conn,
                pool,
                entries: Vec::new(),
                free: Vec::new(),
                live: 0,
                active: 0,
                by_peer: HashMap::with_hasher(hasher),
                timers: BinaryHeap::new(),
                ready: VecDeque::new(),
                tx: VecDeque::new(),
                gated: VecDeque::new(),
                in_flight: 0,
                shared_window,
                spares,
                replies,
                stats: MuxStats::default(),
                ended: VecDeque::new(),
                retired: Stats::default(),
                retired_abandoned: Unacknowledged::default(),
                mux,
            },
            link: LinkStats::default(),
        }
    }

    /// The interface (UDP/ARP counters, neighbor cache).
    pub fn interface(&self) -> &Interface<C::Pool> {
        &self.iface
    }

    /// The table's counters.
    pub fn stats(&self) -> MuxStats {
        self.table.stats
    }

    /// How packets were framed (as [`UdpLink::stats`](crate::channel::link::UdpLink::stats)).
    pub fn link_stats(&self) -> LinkStats {
        self.link
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.table.live
    }

    /// True with no live connection.
    pub fn is_empty(&self) -> bool {
        self.table.live == 0
    }

    /// Storage sets waiting on the spare list (each a connection's window-sized queues).
    pub fn spare_storage(&self) -> usize {
        self.table.spares.len()
    }

    /// The connection configuration every connection of the table has.
    pub fn conn_config(&self) -> &Config {
        &self.table.cfg
    }

    /// Opens a connection to the dialer's peer; its Syn goes out on the next [`Self::transmit`].
    pub fn connect(&mut self, now: Instant) -> Result<ConnHandle, ConnectError> {
        let MuxRole::Connect(peer) = self.table.mux.role else { return Err(ConnectError::NotADialer) };
        let t = &mut self.table;
        if t.live >= t.mux.max_connections {
            return Err(ConnectError::TableFull);
        }
        let index = t.take_index();
        let generation = t.entries[index as usize].generation;
        let local_id = dialer_id(index, generation);
        let conn = C::dial(t.cfg.clone(), t.pool.clone(), local_id, t.mux.epoch, now);
        t.install(index, conn, peer, 0, now);
        t.stats.opened += 1;
        Ok(ConnHandle { index, generation })
    }

    /// The connection `h` names, if it is still in the table (read-only: no storage is lent).
    pub fn get(&self, h: ConnHandle) -> Option<&C> {
        self.table.slot(h).map(|s| &s.conn)
    }

    /// Every live connection, with its handle (for reports; not for the fast path).
    pub fn connections(&self) -> impl Iterator<Item = (ConnHandle, &C)> + '_ {
        self.table.entries.iter().enumerate().filter_map(|(i, e)| {
            e.slot.as_ref().map(|s| (ConnHandle { index: i as u32, generation: e.generation }, &s.conn))
        })
    }

    /// The peer of connection `h`.
    pub fn peer(&self, h: ConnHandle) -> Option<SocketAddrV4> {
        self.table.slot(h).map(|s| s.peer)
    }

    /// Runs `f` on connection `h` (its storage lent back first), then files it for transmission
    /// and its timer (not for [`Self::next_ready`]: a command makes no event). `None` when `h` names no live connection. Counts as activity
    /// for the idle timeout.
    pub fn with<R>(&mut self, now: Instant, h: ConnHandle, f: impl FnOnce(&mut C) -> R) -> Option<R> {
        let t = &mut self.table;
        t.slot(h)?;
        t.wake(h.index);
        let slot = t.entries[h.index as usize].slot.as_mut()?;
        slot.last_active = now;
        let r = f(&mut slot.conn);
        // A command makes no event (the application knows what it did), but may make packets.
        t.file_tx(h.index);
        t.after(h.index, now);
        Some(r)
    }

    /// The next connection something happened to since it was last returned (a datagram, a timer,
    /// a command): drain its events with [`Self::with`]. A connection whose events could not all be
    /// taken is filed again with [`Self::mark_ready`].
    pub fn next_ready(&mut self) -> Option<ConnHandle> {
        let t = &mut self.table;
        while let Some(index) = t.ready.pop_front() {
            let entry = &mut t.entries[index as usize];
            if let Some(slot) = entry.slot.as_mut() {
                slot.in_ready = false;
                return Some(ConnHandle { index, generation: entry.generation });
            }
        }
        None
    }

    /// The next connection that ended (closed, reset, aborted or failed) since the last call, while
    /// it is still in the table (its slot is reused only a linger after it finished): read its
    /// [`Outcome`] and what it dropped unacknowledged with [`Self::get`]. Unlike its events, which
    /// wait for the application to take them, this tells the end at once.
    pub fn next_ended(&mut self) -> Option<ConnHandle> {
        let t = &mut self.table;
        while let Some(index) = t.ended.pop_front() {
            let entry = &t.entries[index as usize];
            if entry.slot.is_some() {
                return Some(ConnHandle { index, generation: entry.generation });
            }
        }
        None
    }

    /// True when a connection ended since [`Self::next_ended`] last returned `None`.
    pub fn has_ended(&self) -> bool {
        !self.table.ended.is_empty()
    }

    /// The counters of every connection that has left the table, summed, and what they dropped
    /// unacknowledged: with the live connections' counters, the table's whole history.
    pub fn retired(&self) -> (&Stats, Unacknowledged) {
        (&self.table.retired, self.table.retired_abandoned)
    }

    /// Files `h` to be returned by [`Self::next_ready`] again.
    pub fn mark_ready(&mut self, h: ConnHandle) {
        if self.table.slot(h).is_some() {
            self.table.file_ready(h.index);
        }
    }

    /// Takes one received frame: ARP and header validation by the interface, then the datagram to
    /// its connection (a listener accepts a connection whose cookie came back). Says why the frame
    /// was dropped, if the interface dropped it.
    pub fn receive(&mut self, now: Instant, frame: <C as Endpoint>::Buf) -> Result<(), RxDrop> {
        let (table, link) = (&mut self.table, &mut self.link);
        self.iface.receive(now, frame, |d| {
            table.dispatch(now, d.src, d.payload, link);
            Ok(())
        })
    }

    /// Runs due timers: the interface's, each connection's whose deadline passed, idle timeouts,
    /// and the reuse of finished connections' slots.
    pub fn advance(&mut self, now: Instant) {
        if self.iface.poll_timeout().is_some_and(|t| t <= now) {
            self.iface.handle_timeout(now);
        }
        self.table.run_timers(now);
        self.table.trim_spares();
    }

    /// The earliest deadline [`Self::advance`] has to act on.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let table = self.table.timers.peek().map(|Reverse((t, _))| *t);
        [table, self.iface.poll_timeout()].into_iter().flatten().min()
    }

    /// Moves what the interface, the stateless replies and the connections with something to send
    /// have into `out`, as room allows; a connection sends at most a quota per turn, round-robin.
    pub fn transmit<S: FrameSink<<C as Endpoint>::Buf>>(&mut self, now: Instant, out: &mut S) {
        link::flush(&mut self.iface, now, out);
        self.send_replies(now, out);
        let turns = self.table.tx.len();
        for _ in 0..turns {
            if !out.has_room() {
                return;
            }
            let Some(index) = self.table.tx.pop_front() else { return };
            let t = &mut self.table;
            let Some(slot) = t.entries[index as usize].slot.as_mut() else { continue };
            slot.in_tx = false;
            let peer = slot.peer;
            let mut more = false;
            let mut gated = false;
            for _ in 0..TX_QUOTA {
                if !out.has_room() {
                    more = true;
                    break;
                }
                // The peer's shared window: what this connection has in flight now, beyond what the
                // sum last counted, plus everyone else's.
                let mine = u64::from(slot.conn.core().in_flight());
                let open = t.shared_window.is_none_or(|w| t.in_flight + mine - u64::from(slot.in_flight) < w);
                slot.conn.core_mut().set_new_data_open(open);
                match link::transmit_one(&mut self.iface, &mut self.link, &mut slot.conn, now, self.port, peer, out) {
                    true => link::flush(&mut self.iface, now, out),
                    false => {
                        gated = !open && slot.conn.core().has_unsent();
                        break;
                    }
                }
                more = true;
            }
            slot.conn.core_mut().set_new_data_open(true);
            if gated && !slot.in_gated {
                slot.in_gated = true;
                t.gated.push_back(index);
            }
            if more {
                t.file_tx(index);
            }
            t.after(index, now);
        }
    }

    /// Builds and sends queued stateless replies, as room in `out` allows (the rest wait).
    fn send_replies<S: FrameSink<<C as Endpoint>::Buf>>(&mut self, now: Instant, out: &mut S) {
        while out.has_room() {
            let Some((dst, r)) = self.table.replies.pop_front() else { return };
            let Some(mut buf) = self.iface.pool_mut().alloc() else { return };
            let Ok(room) = buf.append(r.header_len()) else { continue };
            if r.emit(room).is_err() {
                continue;
            }
            let _ = self.iface.send(now, self.port, dst, buf);
            link::flush(&mut self.iface, now, out);
        }
    }
}

/// The connection id a dialer gives the connection in slot `index` of `generation`: decodable back
/// to the slot, different for every reuse of it, never 0.
fn dialer_id(index: u32, generation: u32) -> u32 {
    ((generation << INDEX_BITS) | index).wrapping_add(1).max(1)
}

impl<C: MuxConn> Table<C> {
    fn slot(&self, h: ConnHandle) -> Option<&Slot<C>> {
        let e = self.entries.get(h.index as usize)?;
        (e.generation == h.generation).then_some(())?;
        e.slot.as_ref()
    }

    fn take_index(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry { generation: 0, slot: None });
                self.reserve_queues();
                (self.entries.len() - 1) as u32
            }
        }
    }

    /// Grows the per-connection queues with the table (when a connection takes a new slot), so that
    /// traffic never has to: `ready`, `tx` and `gated` hold a slot's index at most once (their
    /// `in_*` flags), the timer heap at most `4 * live + 64` entries ([`Self::schedule`]). Grown on
    /// demand instead, a queue allocates in steady state whenever it first passes its high-water
    /// mark: `gated`, first used when the shared window closes under load, did so five times (empty
    /// to 64 connections) in the counted window of tests/alloc.rs. (A reclaimed slot's index may
    /// still sit in a queue until popped; only reuse of a slot while its old index is queued can go
    /// past this bound.)
    fn reserve_queues(&mut self) {
        let n = self.entries.len();
        for q in [&mut self.ready, &mut self.tx, &mut self.gated, &mut self.ended] {
            q.reserve(n.saturating_sub(q.len()));
        }
        self.timers.reserve((4 * n + 64).saturating_sub(self.timers.len()));
    }

    fn install(&mut self, index: u32, conn: C, peer: SocketAddrV4, peer_id: u32, now: Instant) {
        self.entries[index as usize].slot = Some(Slot {
            conn,
            peer,
            peer_id,
            last_active: now,
            queued_timer: None,
            finished_at: None,
            end_filed: false,
            in_flight: 0,
            in_ready: false,
            in_tx: false,
            in_gated: false,
        });
        self.live += 1;
        self.touched(index, now);
    }

    /// Lends storage to a parked connection (a spare, or fresh storage when none is free).
    fn wake(&mut self, index: u32) {
        let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
        let core = slot.conn.core_mut();
        if core.is_parked() {
            let spare = self.spares.pop();
            let fresh = spare.is_none();
            if fresh {
                self.stats.storage_allocated += 1;
            }
            core.unpark(spare);
            self.active += 1;
            if fresh {
                // Room on the spare list for every storage set there is (those lent out, `active`,
                // and those on it), reserved now that one more exists: grown on demand instead, the
                // list allocated in `park` when more connections than ever before parked at once
                // (once in the counted window of tests/alloc.rs, every storage set made before it).
                self.spares.reserve(self.active);
            }
        }
    }

    /// Takes a quiescent connection's storage: onto the spare list while the list is shorter than
    /// the number of connections holding storage (they are likely to need it again) or the
    /// configured floor; freed otherwise.
    fn park(&mut self, index: u32) {
        let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
        if let Some(storage) = slot.conn.core_mut().park() {
            self.active -= 1;
            if self.spares.len() < self.spare_limit() {
                self.spares.push(storage);
            }
        }
    }

    fn spare_limit(&self) -> usize {
        self.mux.spare_storage.max(self.active)
    }

    /// Frees a few spares beyond the limit (after a burst of activity has died down).
    fn trim_spares(&mut self) {
        for _ in 0..16 {
            if self.spares.len() <= self.spare_limit() {
                return;
            }
            self.spares.pop();
        }
    }

    fn file_ready(&mut self, index: u32) {
        if let Some(slot) = self.entries[index as usize].slot.as_mut() {
            if !slot.in_ready {
                slot.in_ready = true;
                self.ready.push_back(index);
            }
        }
    }

    fn file_tx(&mut self, index: u32) {
        if let Some(slot) = self.entries[index as usize].slot.as_mut() {
            if !slot.in_tx {
                slot.in_tx = true;
                self.tx.push_back(index);
            }
        }
    }

    /// After input or a command: the connection may have events and something to send.
    fn touched(&mut self, index: u32, now: Instant) {
        self.file_ready(index);
        self.file_tx(index);
        self.after(index, now);
    }

    /// After anything was done to a connection: its deadline, and its storage back to the spare
    /// list when it is quiescent.
    fn after(&mut self, index: u32, now: Instant) {
        self.account(index);
        self.release_gated();
        self.park(index);
        let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
        if slot.finished_at.is_none() && slot.conn.core().is_finished() {
            slot.finished_at = Some(now);
        }
        if !slot.end_filed {
            if let Some(outcome) = slot.conn.core().outcome() {
                slot.end_filed = true;
                self.ended.push_back(index);
                let count = match outcome {
                    Outcome::Closed => &mut self.stats.closed,
                    Outcome::Reset(_) => &mut self.stats.reset,
                    Outcome::Aborted => &mut self.stats.aborted,
                    Outcome::Failed => &mut self.stats.failed,
                };
                *count += 1;
            }
        }
        let deadline = self.deadline(index);
        self.schedule(index, deadline);
    }

    /// Brings the table's in-flight sum up to date with connection `index`'s.
    fn account(&mut self, index: u32) {
        let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
        let now = slot.conn.core().in_flight();
        self.in_flight = (self.in_flight + u64::from(now)).saturating_sub(u64::from(slot.in_flight));
        slot.in_flight = now;
    }

    /// True while the peer's shared window has room for more new data.
    fn window_open(&self) -> bool {
        self.shared_window.is_none_or(|w| self.in_flight < w)
    }

    /// Files connections held back by the shared window for transmission again, as room opens.
    fn release_gated(&mut self) {
        while self.window_open() {
            let Some(index) = self.gated.pop_front() else { return };
            if let Some(slot) = self.entries[index as usize].slot.as_mut() {
                slot.in_gated = false;
                self.file_tx(index);
            }
        }
    }

    /// The linger of a finished connection before its slot is reused (TCP's TIME-WAIT, short): long
    /// enough to answer the peer's retransmitted Fin when our last Ack of it was lost. The peer's
    /// retransmissions come at most its backed-off RTO apart, which is bounded by `max_rto`, not by
    /// *our* RTO: a peer that lost a few Acks in a row retransmits far later than our own RTO (at
    /// 10,000 connections, listener connections retransmitted their last packets 25–200 ms apart
    /// to dialer slots reused after 10 ms, found no connection and failed 10 s later). So twice
    /// `max_rto` (400 ms by default), restarted by every packet the connection receives while it
    /// lingers ([`Self::dispatch`]), as TCP restarts TIME-WAIT on a retransmitted FIN. A late
    /// packet after it is dropped as stale, not answered with a Reset.
    fn linger(conn: &C) -> Duration {
        let cfg = conn.core().config();
        (cfg.max_rto * 2).max(conn.core().rto() * 2).max(Duration::from_millis(10))
    }

    fn deadline(&self, index: u32) -> Option<Instant> {
        let slot = self.entries[index as usize].slot.as_ref()?;
        if let Some(at) = slot.finished_at {
            return Some(at + Self::linger(&slot.conn));
        }
        let idle = self.mux.idle_timeout.map(|d| slot.last_active + d);
        [slot.conn.poll_timeout(), idle].into_iter().flatten().min()
    }

    fn schedule(&mut self, index: u32, deadline: Option<Instant>) {
        let Some(at) = deadline else { return };
        let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
        if slot.queued_timer.is_some_and(|q| q <= at) {
            return;
        }
        slot.queued_timer = Some(at);
        if self.timers.len() >= 4 * self.live + 64 {
            self.rebuild_timers();
        }
        self.timers.push(Reverse((at, index)));
    }

    /// Drops stale heap entries (a connection's deadline moved earlier many times).
    fn rebuild_timers(&mut self) {
        let mut entries = core::mem::take(&mut self.timers).into_vec();
        entries.retain(|Reverse((at, index))| {
            self.entries[*index as usize].slot.as_ref().is_some_and(|s| s.queued_timer == Some(*at))
        });
        self.timers = BinaryHeap::from(entries);
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(slot) = self.entries[index as usize].slot.as_mut() else { continue };
            if slot.queued_timer != Some(at) {
                continue; // a stale entry: the slot has an earlier one (already run) or none
            }
            slot.queued_timer = None;
            if let Some(fin) = slot.finished_at {
                if fin + Self::linger(&slot.conn) <= now {
                    self.reclaim(index);
                    continue;
                }
            } else if self.mux.idle_timeout.is_some_and(|d| slot.last_active + d <= now) {
                self.stats.idle_closed += 1;
                slot.conn.core_mut().expire_idle();
                slot.last_active = now;
                self.touched(index, now);
                continue;
            } else if slot.conn.poll_timeout().is_some_and(|t| t <= now) {
                self.wake(index);
                let Some(slot) = self.entries[index as usize].slot.as_mut() else { continue };
                slot.conn.handle_timeout(now);
                self.touched(index, now);
                continue;
            }
            let deadline = self.deadline(index);
            self.schedule(index, deadline);
        }
    }

    /// Frees a finished connection's slot (its handle is refused from now on).
    fn reclaim(&mut self, index: u32) {
        self.park(index);
        let entry = &mut self.entries[index as usize];
        let Some(slot) = entry.slot.take() else { return };
        self.retired.add(slot.conn.core().stats());
        self.retired_abandoned.add(&slot.conn.core().abandoned());
        self.in_flight = self.in_flight.saturating_sub(u64::from(slot.in_flight));
        entry.generation = entry.generation.wrapping_add(1) & ((1 << (32 - INDEX_BITS)) - 1);
        if !slot.conn.core().is_parked() {
            self.active -= 1; // its storage goes with it (it still held packets)
        }
        if self.mux.role == MuxRole::Listen {
            let key = PeerKey { ip: u32::from(*slot.peer.ip()), port: slot.peer.port(), id: slot.peer_id };
            if self.by_peer.get(&key) == Some(&index) {
                self.by_peer.remove(&key);
            }
        }
        self.live -= 1;
        self.free.push(index);
        self.stats.reclaimed += 1;
    }

    /// Hands one datagram to its connection, or handles it statelessly.
    fn dispatch(&mut self, now: Instant, src: SocketAddrV4, payload: <C as Endpoint>::Buf, _link: &mut LinkStats) {
        let Ok(pkt) = Packet::new_checked(payload.data()) else {
            self.stats.malformed += 1;
            return;
        };
        let (src_conn, dst_conn) = (pkt.src_conn(), pkt.dst_conn());
        let index = match self.mux.role {
            MuxRole::Connect(peer) => {
                let v = dst_conn.wrapping_sub(1);
                let index = v & ((1 << INDEX_BITS) - 1);
                let live = self
                    .entries
                    .get(index as usize)
                    .filter(|e| e.generation == v >> INDEX_BITS && e.slot.as_ref().is_some_and(|_| src == peer));
                if live.is_none() {
                    self.stats.unknown_connection += 1;
                    return;
                }
                index
            }
            MuxRole::Listen => {
                let key = PeerKey { ip: u32::from(*src.ip()), port: src.port(), id: src_conn };
                match self.by_peer.get(&key) {
                    Some(&index) => index,
                    None => return self.stateless(now, src, key, payload),
                }
            }
        };
        self.wake(index);
        let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
        slot.last_active = now;
        if slot.finished_at.is_some() {
            // The peer is still sending (a retransmitted Fin whose Ack was lost): linger on.
            slot.finished_at = Some(now);
        }
        slot.conn.handle_datagram(now, payload);
        self.touched(index, now);
    }

    /// A listener's answer to a datagram of no connection: a cookie SynAck to a Syn, a new
    /// connection for a returned cookie, a Reset or nothing otherwise.
    fn stateless(&mut self, now: Instant, src: SocketAddrV4, key: PeerKey, payload: <C as Endpoint>::Buf) {
        let parsed = Packet::new_checked(payload.data()).and_then(|p| Repr::parse(&p));
        let Ok(r) = parsed else {
            self.stats.malformed += 1;
            return;
        };
        let cookie = self.cookie(src, r.src_conn, r.epoch);
        match r.kind {
            PacketType::Syn if r.dst_conn == 0 => {
                if r.seq != initial_seq(r.epoch, r.src_conn) || r.src_conn == 0 {
                    self.stats.bad_syn += 1;
                    return;
                }
                let reply = Core::<C::Pool>::cookie_syn_ack(&self.cfg, cookie, self.mux.epoch, &r);
                if self.queue_reply(src, reply) {
                    self.stats.cookies_sent += 1;
                }
            }
            PacketType::Reset => self.stats.bad_cookie += 1,
            _ if r.dst_conn == cookie
                && r.src_conn != 0
                && Core::<C::Pool>::cookie_accepts(&self.cfg, cookie, self.mux.epoch, &r) =>
            {
                if self.live >= self.mux.max_connections {
                    self.stats.table_full += 1;
                    return;
                }
                let index = self.take_index();
                let ids =
                    Accepted { local_id: cookie, epoch: self.mux.epoch, peer_id: r.src_conn, peer_epoch: r.epoch };
                let conn = C::accept(self.cfg.clone(), self.pool.clone(), ids, now);
                self.by_peer.insert(key, index);
                self.install(index, conn, src, r.src_conn, now);
                self.stats.accepted += 1;
                // Storage for the packet that opened it (an accepted connection is born without).
                self.wake(index);
                let Some(slot) = self.entries[index as usize].slot.as_mut() else { return };
                slot.conn.handle_datagram(now, payload);
                self.touched(index, now);
            }
            // Our cookie, but not a packet that may open a connection: a late packet of one that
            // ended and was forgotten. Dropped without an answer (its peer may still be finishing).
            _ if r.dst_conn == cookie => self.stats.stale += 1,
            _ => {
                self.stats.bad_cookie += 1;
                // As TCP answers a segment of no connection; a dialer whose listener restarted
                // learns it at once. Bounded like every stateless reply.
                let mut reset = Repr::new(PacketType::Reset, r.dst_conn, r.src_conn, self.mux.epoch);
                reset.seq = r.ack;
                reset.ack = r.seq;
                self.queue_reply(src, reset);
            }
        }
    }

    fn queue_reply(&mut self, dst: SocketAddrV4, r: Repr) -> bool {
        if self.replies.len() >= self.mux.reply_queue {
            self.stats.replies_dropped += 1;
            return false;
        }
        self.replies.push_back((dst, r));
        true
    }

    /// The connection id a listener gives the connection `peer_id` of `src` in `epoch`.
    fn cookie(&self, src: SocketAddrV4, peer_id: u32, epoch: u32) -> u32 {
        let mut h = SipHasher24::new(self.mux.cookie_key);
        h.write_u64(u64::from(u32::from(*src.ip())) << 16 | u64::from(src.port()));
        h.write_u64(u64::from(peer_id) << 32 | u64::from(epoch));
        let v = h.finish();
        ((v ^ (v >> 32)) as u32).max(1)
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012), keyed: the cookie
/// is a MAC an attacker who has not seen it cannot compute.
struct SipHasher24 {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    len: u64,
}

impl SipHasher24 {
    fn new(key: [u64; 2]) -> Self {
        SipHasher24 {
            v: [
                key[0] ^ 0x736f_6d65_7073_6575,
                key[1] ^ 0x646f_7261_6e64_6f6d,
                key[0] ^ 0x6c79_6765_6e65_7261,
                key[1] ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        Self::round(&mut self.v);
        Self::round(&mut self.v);
        self.v[0] ^= m;
    }
}

impl Hasher for SipHasher24 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.tail |= u64::from(b) << (8 * self.ntail);
            self.ntail += 1;
            self.len += 1;
            if self.ntail == 8 {
                let m = self.tail;
                self.compress(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
    }

    fn finish(&self) -> u64 {
        let mut s = SipHasher24 { v: self.v, tail: 0, ntail: 0, len: 0 };
        let b = ((self.len & 0xff) << 56) | self.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..4 {
            Self::round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

/// The hasher of a listener's peer map: fast, seeded from the cookie key (its keys are chosen by
/// peers, but only a valid cookie inserts one, so flooding it takes the key).
#[derive(Clone)]
struct FastState(u64);

struct FastHasher(u64);

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        let x = self.0;
        x ^ (x >> 29)
    }
}

#[cfg(test)]
mod tests;
