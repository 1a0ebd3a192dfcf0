//! Application endpoints: how ordinary threads send and receive through a channel that an lcore owns.
//!
//! A channel stage ([`super::channels`]) is constructed with a name. At construction it creates two
//! bounded queues — commands from the application to the lcore, deliveries from the lcore to the
//! application — and registers the application's ends in a process-wide registry under that name.
//! An application thread picks them up with [`ReliableEndpoint::connect`],
//! [`StreamEndpoint::connect`] or [`UnorderedEndpoint::connect`] (`connect("name", timeout)` waits for
//! the stage to be constructed; each registration can be taken once; a registration of another kind is
//! [`EndpointError::WrongKind`], naming both). Endpoints are `Send`, not
//! `Sync`: one thread at a time uses an endpoint (it may move between threads).
//!
//! The queues are `std::sync::mpsc::sync_channel`s: bounded and array-backed, allocated once when the
//! stage is built, so the lcore side never allocates per packet. Beside each queue its senders count
//! what they put in (`PutCount`, a cache line of its own): the receiving end polls that count with one
//! plain load and touches the queue only when something is there, so an idle lcore iteration or an
//! empty `try_recv` costs no memory fence. Back-pressure is end to end: the lcore
//! takes commands only while its channel has send space (holding at most one that does not fit), so a
//! slow peer fills the channel, then the command queue, and `try_send` / `try_write` return [`EndpointError::WouldBlock`]; the blocking
//! variants (`send`, `write_all`, `recv`, …) retry until their timeout. In the other direction, the lcore
//! stops polling deliveries from the channel while the delivery queue is full, so the channel's receive
//! window closes and the peer is slowed down (the unordered channel drops instead, as UDP does).
//!
//! Payload memory: the application copies outgoing bytes once, into mbufs of the lcore's own mempool
//! (allocation from a non-EAL thread is thread-safe in DPDK), or writes them there itself
//! ([`ReliableEndpoint::try_send_with`]); the lcore passes them on without copying. Deliveries are the
//! received mbufs themselves (headers stripped), freed back to the pool when the application drops
//! them. Nothing is allocated from the heap per message on either side.
//!
//! # Honest answers
//! A send on a connection that is over fails at once with the error naming how it ended
//! ([`EndpointError::ConnectionFailed`], [`EndpointError::ConnectionReset`],
//! [`EndpointError::Closed`], [`EndpointError::Disconnected`]): the stage publishes the end to the
//! endpoint's status board the moment it happens, and every send form checks it (one atomic load).
//! [`ReliableEndpoint::status`] ([`ConnStatus`]) says how many accepted messages (stream: bytes)
//! were never acknowledged — dropped with the connection, refused by the lcore after the end, or still
//! queued when the stage stopped — and carries the connection's counters while it runs.
//!
//! # Packing (reliable)
//! Small reliable messages are packed by the endpoint itself, in the channel's wire format
//! ([`crate::wire::packed`]): each message is written as a record into the packet the endpoint is
//! filling. A full packet is queued to the lcore as is (it becomes the transmitted packet). Between
//! calls the partial packet waits in a lock-free single-mbuf slot ([`MbufSlot`]); the lcore takes it
//! from there as soon as it has caught up (its command queue is empty and the connection has
//! transmitted everything queued before), so packing never waits for more messages: a message sent to
//! an idle lcore leaves on its next iteration, and messages sent faster than the link drains share
//! packets. Ordering between the slot and the command queue: each command carries how many partial
//! packets the endpoint has seen the lcore take; a command that saw the latest one goes after it, one
//! that did not goes before.
//!
//! Messages longer than a packet are copied into a chain of mbufs cut at the channel's mss; each
//! segment becomes one packet of the message on the lcore (no further copy), and received ones are
//! delivered as one mbuf chain ([`crate::channel::reliable::Message`]).
use core::cell::Cell;
use core::net::SocketAddrV4;
use core::time::Duration;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use crate::channel::{reliable, streaming, unordered};
use crate::substrate::{Mbuf, MbufSlot, Mempool};
use crate::wire::packed::{emit_record, record_len};

mod mux;
mod status;
pub(crate) use mux::{untag, MuxCommand, MuxOp, ReliableMuxEnds, StreamMuxEnds};
pub use mux::{MuxEvent, ReliableMuxEndpoint, StreamMuxEndpoint};
pub(crate) use status::StatusBoard;
pub use status::{ConnState, ConnStatus, TableStatus};

/// Why an endpoint call did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointError {
    /// The queue to the lcore is full (send) or nothing was delivered yet (receive): try again later.
    WouldBlock,
    /// A blocking call's timeout passed.
    TimedOut,
    /// The channel stage is gone (its loop ended and it was dropped).
    Disconnected,
    /// The payload is larger than the channel accepts.
    TooLarge {
        /// The payload's length, bytes.
        len: usize,
        /// The most the call accepts, bytes.
        limit: usize,
        /// The stage param that sets the limit (`max_message`, `mss`), or `""` when it is fixed.
        param: &'static str,
    },
    /// No mbuf could be had from the lcore's pool, or the lcore has not run yet (the pool is learnt on
    /// the stage's first iteration).
    NoBuffers,
    /// No endpoint of this kind was registered under the name within the timeout (or it was taken).
    NotFound,
    /// An endpoint is registered under the name, but of another kind: the channel stage declared
    /// under it is not the one the application asked for (e.g. the YAML says `reliable` and the
    /// application connects a [`StreamEndpoint`]). The registration stays for the right kind.
    WrongKind {
        /// The name asked for.
        name: &'static str,
        /// The kind the stage registered under that name.
        registered: EndpointKind,
        /// The kind the application asked for.
        requested: EndpointKind,
    },
    /// The connection was reset (by the peer, a restarted peer, or a local reset); data of it that was
    /// not delivered is gone.
    ConnectionReset,
    /// The connection gave up: retransmissions went unanswered for too long.
    ConnectionFailed,
    /// The connection was closed: by the application (its `close` / `finish`), or in order by
    /// both sides. Nothing more can be sent on it.
    Closed,
    /// The connection handle names a connection that is over and whose slot the table has given to
    /// a newer connection (a connection table's handle outlived its connection).
    UnknownConnection,
    /// A dialer's table has `max_connections` connections (with those already asked for): no more
    /// can be opened until some end.
    TableFull,
    /// `open` on a listener's table: only a dialer (`role: connect`) opens connections.
    NotADialer,
}

/// The three kinds of application endpoint, one per channel stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// [`ReliableEndpoint`], of a `reliable` stage.
    Reliable,
    /// [`StreamEndpoint`], of a `streaming` stage.
    Stream,
    /// [`UnorderedEndpoint`], of an `unordered` stage.
    Unordered,
    /// [`ReliableMuxEndpoint`], of a `reliable_mux` stage (a connection table).
    ReliableMux,
    /// [`StreamMuxEndpoint`], of a `streaming_mux` stage.
    StreamMux,
}

impl EndpointKind {
    /// The stage's short name in a declaration (`reliable`, `streaming`, `unordered`).
    pub fn stage(self) -> &'static str {
        match self {
            EndpointKind::Reliable => "reliable",
            EndpointKind::Stream => "streaming",
            EndpointKind::Unordered => "unordered",
            EndpointKind::ReliableMux => "reliable_mux",
            EndpointKind::StreamMux => "streaming_mux",
        }
    }

    /// "a" or "an", as the kind's word takes.
    fn article(self) -> &'static str {
        match self {
            EndpointKind::Unordered => "an",
            _ => "a",
        }
    }

    /// The endpoint type's name.
    pub fn type_name(self) -> &'static str {
        match self {
            EndpointKind::Reliable => "ReliableEndpoint",
            EndpointKind::Stream => "StreamEndpoint",
            EndpointKind::Unordered => "UnorderedEndpoint",
            EndpointKind::ReliableMux => "ReliableMuxEndpoint",
            EndpointKind::StreamMux => "StreamMuxEndpoint",
        }
    }
}

impl core::fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EndpointKind::Reliable => "reliable",
            EndpointKind::Stream => "stream",
            EndpointKind::Unordered => "unordered",
            EndpointKind::ReliableMux => "reliable connection-table",
            EndpointKind::StreamMux => "stream connection-table",
        })
    }
}

impl core::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if let EndpointError::TooLarge { len, limit, param } = self {
            write!(f, "payload of {len} bytes is larger than the {limit} bytes this call accepts")?;
            if !param.is_empty() {
                write!(f, " (the stage param `{param}` sets it)")?;
            }
            return Ok(());
        }
        if let EndpointError::WrongKind { name, registered, requested } = self {
            return write!(
                f,
                "endpoint `{name}` is {} {registered} endpoint (its channel stage is `{}`); asked for {} {requested} \
                 endpoint (`{}`): connect it as `{}`, or make the stage `{}` (one word in the declaration)",
                registered.article(),
                registered.stage(),
                requested.article(),
                requested.type_name(),
                registered.type_name(),
                requested.stage(),
            );
        }
        f.write_str(match self {
            EndpointError::WrongKind { .. } => "endpoint of another kind",
            EndpointError::WouldBlock => "queue full or empty; try again",
            EndpointError::TimedOut => "timed out",
            EndpointError::Disconnected => "the channel stage is gone",
            EndpointError::TooLarge { .. } => "payload too large for the channel",
            EndpointError::NoBuffers => "no mbuf available (pool empty or lcore not started)",
            EndpointError::NotFound => "no endpoint registered under that name (or it was already taken)",
            EndpointError::ConnectionReset => "the connection was reset",
            EndpointError::ConnectionFailed => "the connection failed (the peer stopped answering)",
            EndpointError::Closed => "the connection is closed for sending",
            EndpointError::UnknownConnection => "the connection is over and its handle was reused",
            EndpointError::TableFull => "the table is full (max_connections): no connection can be opened now",
            EndpointError::NotADialer => "only a dialer's table (role: connect) opens connections",
        })
    }
}

impl std::error::Error for EndpointError {}

/// Where a channel stage puts what it delivers. The stage calls [`Deliver::deliver`] only when it has
/// something; `Err(item)` means "no room now": the stage keeps the item and offers it again on a later
/// iteration, and stops pulling from its channel meanwhile (back-pressure).
///
/// The application queue ([`AppQueue`]) is the default; a user stage that wants deliveries inside the
/// pipeline implements this trait (or passes a closure `FnMut(T) -> Result<(), T>`) and is given to the
/// channel stage's `with_sink` constructor. Called directly, no `dyn`.
pub trait Deliver<T>: Send {
    /// Takes one delivery, or gives it back when full.
    fn deliver(&mut self, item: T) -> Result<(), T>;
}

impl<T, F: FnMut(T) -> Result<(), T> + Send> Deliver<T> for F {
    #[inline]
    fn deliver(&mut self, item: T) -> Result<(), T> {
        self(item)
    }
}

/// How many items were put into a queue, counted by its senders after each put, on a cache line of its
/// own. The receiving end compares it with what it took: equal means nothing new, told by one plain
/// load — the std channel's own empty check costs a full memory fence, paid on every poll of an idle
/// queue (every loop iteration for the lcore's command queue, every call for an application polling
/// its deliveries).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct PutCount(AtomicU64);

impl PutCount {
    #[inline]
    fn put(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// True when more was put than `taken`.
    #[inline]
    fn more_than(&self, taken: u64) -> bool {
        self.0.load(Ordering::Acquire) != taken
    }
}

/// The lcore's end of an application delivery queue.
#[derive(Debug)]
pub struct AppQueue<T> {
    tx: SyncSender<T>,
    puts: Arc<PutCount>,
}

impl<T> AppQueue<T> {
    /// A second sender into the same queue.
    pub(crate) fn clone_of(queue: &AppQueue<T>) -> AppQueue<T> {
        AppQueue { tx: queue.tx.clone(), puts: queue.puts.clone() }
    }
}

impl<T: Send> Deliver<T> for AppQueue<T> {
    #[inline]
    fn deliver(&mut self, item: T) -> Result<(), T> {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.puts.put();
                Ok(())
            }
            // A vanished application frees the delivery (by dropping it here): nothing can read it.
            Err(TrySendError::Disconnected(_)) => Ok(()),
            Err(TrySendError::Full(item)) => Err(item),
        }
    }
}

/// What both ends know: the lcore's mempool (set on the stage's first iteration) and size limits.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: OnceLock<Mempool>,
    /// Largest payload per send (message size for reliable, datagram size for unordered).
    pub(crate) max_payload: usize,
    /// Payload bytes that fit one packet without a copy on the lcore (reliable, streaming: the
    /// channel's mss).
    pub(crate) single_packet: usize,
    /// The packet the application is filling, between its calls (reliable: packed records; stream:
    /// written bytes). The lcore takes it when it has caught up.
    pub(crate) open: MbufSlot,
    /// Sends the lcore took but could not send (unordered: see [`UnorderedEndpoint::dropped`]); set by
    /// the lcore, read by the application.
    pub(crate) dropped: AtomicU64,
    /// Connection tables: which connection the packet in `open` is probably for (written before it
    /// is parked). A hint for when to take it, never trusted for where it goes: the packet names
    /// its connection itself.
    pub(crate) open_hint: AtomicU64,
    /// The state and counters of each connection (one for a single-connection channel).
    pub(crate) status: StatusBoard,
}

impl Shared {
    /// The single connection's state as a send sees it: `Err` naming the state when it takes no
    /// more sends.
    #[inline]
    pub(crate) fn check_single(&self) -> Result<(), EndpointError> {
        match self.status.state(0, 0) {
            Some(state) => refuse(state),
            None => Ok(()),
        }
    }
}

/// The telemetry source of a channel stage's connections: `channel_<endpoint>` serves the table's
/// counters (a single connection's status for `reliable` / `streaming`), `channel_<endpoint>/<n>`
/// the status of connection slot `n` (`/rosette/stats,channel_ingest/3`).
pub(crate) fn telemetry_source(endpoint: &str) -> String {
    format!("channel_{endpoint}")
}

/// Serves `shared`'s status board through telemetry under [`telemetry_source`]. Called once, when
/// the stage first runs (EAL is up); a failure is logged, the stage runs on without it.
pub(crate) fn serve_telemetry(endpoint: &str, shared: &Arc<Shared>, single: bool) {
    let (all, one) = (shared.clone(), shared.clone());
    let read: crate::substrate::telemetry::CounterReader = Box::new(move || match single {
        true => single_status(&all).pairs(),
        false => all.status.table_status().pairs(),
    });
    let read_one: crate::substrate::telemetry::IndexedReader =
        Box::new(move |n| one.status.status_at(n).map(|s| s.pairs()));
    if let Err(e) = crate::substrate::telemetry::register_indexed_source(&telemetry_source(endpoint), read, read_one) {
        log::warn!("channel `{endpoint}`: its status is not served through telemetry: {e}");
    }
}

/// Closes the sending direction of the connection in slot `index` of `generation` (0, 0 for a
/// single connection): `queue` queues the close, retried up to `timeout`; then later sends are
/// refused as [`ConnState::Closing`]. A direction already closed is `Ok` without a second close;
/// a connection that ended otherwise says how; a slot reused is
/// [`EndpointError::UnknownConnection`].
pub(crate) fn close_direction(
    shared: &Shared,
    (index, generation): (u32, u32),
    timeout: Duration,
    queue: impl FnMut() -> Result<(), EndpointError>,
) -> Result<(), EndpointError> {
    match shared.status.state(index, generation) {
        Some(ConnState::Closing | ConnState::Closed) => return Ok(()),
        Some(state) => refuse(state)?,
        None => return Err(EndpointError::UnknownConnection),
    }
    retry(timeout, queue)?;
    shared.status.close(index, generation);
    Ok(())
}

/// `Err` naming `state` when a connection in it takes no more sends.
#[inline]
pub(crate) fn refuse(state: ConnState) -> Result<(), EndpointError> {
    match state {
        ConnState::Opening | ConnState::Open => Ok(()),
        ConnState::Closing | ConnState::Closed => Err(EndpointError::Closed),
        ConnState::Reset(_) | ConnState::Aborted => Err(EndpointError::ConnectionReset),
        ConnState::Failed => Err(EndpointError::ConnectionFailed),
        ConnState::Stopped => Err(EndpointError::Disconnected),
    }
}

/// Commands of a reliable endpoint, each stamped with how many of its partial packets the endpoint
/// had seen the lcore take from the slot when it queued the command (see the module docs).
#[derive(Debug)]
pub(crate) struct ReliableCommand {
    pub(crate) seen: u32,
    pub(crate) op: ReliableOp,
}

/// What a reliable command asks for.
#[derive(Debug)]
pub(crate) enum ReliableOp {
    /// A full packet of packed records (the packet itself, zero-copy on the lcore).
    Packed(Mbuf),
    /// One message too large to pack: a chain of mbufs, each at most one mss (each becomes a packet).
    Message(Mbuf),
    Close,
    Reset,
}

/// Commands of a stream endpoint, stamped like [`ReliableCommand`].
#[derive(Debug)]
pub(crate) struct StreamCommand {
    pub(crate) seen: u32,
    pub(crate) op: StreamOp,
}

/// What a stream command asks for.
#[derive(Debug)]
pub(crate) enum StreamOp {
    /// A full packet of written bytes (at most one mss; it becomes the packet, zero-copy).
    Write(Mbuf),
    Finish,
    Reset,
}

/// Commands of an unordered endpoint.
#[derive(Debug)]
pub(crate) struct UnorderedCommand {
    pub(crate) dst: SocketAddrV4,
    pub(crate) payload: Mbuf,
}

/// What a stream delivers.
#[derive(Debug)]
pub enum StreamDelivery {
    /// A connection event.
    Event(streaming::Event),
    /// Received bytes, in order (the received mbuf, transport headers stripped).
    Data(Mbuf),
    /// The peer finished its direction: end of stream.
    End,
}

/// The lcore's ends of an endpoint's queues, taken by the channel stage.
#[derive(Debug)]
pub(crate) struct LcoreEnds<C, D> {
    commands: Receiver<C>,
    command_puts: Arc<PutCount>,
    commands_taken: u64,
    pub(crate) deliveries: AppQueue<D>,
    pub(crate) shared: Arc<Shared>,
}

/// The stage is gone: its connections take no more sends (see [`StatusBoard::stop`]).
impl<C, D> Drop for LcoreEnds<C, D> {
    fn drop(&mut self) {
        self.shared.status.stop();
    }
}

impl<C, D> LcoreEnds<C, D> {
    /// The next command, if the application queued one ([`TryRecvError::Empty`] also when the
    /// application is gone).
    #[inline]
    pub(crate) fn next_command(&mut self) -> Result<C, TryRecvError> {
        if !self.command_puts.more_than(self.commands_taken) {
            return Err(TryRecvError::Empty);
        }
        let cmd = self.commands.try_recv()?;
        self.commands_taken += 1;
        Ok(cmd)
    }
}

/// The application's ends.
#[derive(Debug)]
struct AppEnds<C, D> {
    commands: SyncSender<C>,
    command_puts: Arc<PutCount>,
    deliveries: Receiver<D>,
    delivery_puts: Arc<PutCount>,
    deliveries_taken: Cell<u64>,
    shared: Arc<Shared>,
}

impl<C, D> AppEnds<C, D> {
    /// Queues a command for the lcore.
    fn send(&self, command: C) -> Result<(), TrySendError<C>> {
        self.commands.try_send(command)?;
        self.command_puts.put();
        Ok(())
    }

    /// The next delivery, without waiting.
    fn pull(&self) -> Result<D, EndpointError> {
        // Nothing new, and the lcore's end still there: empty, told without touching the queue. (Once
        // the stage is gone only this end holds the count: the queue then says `Disconnected`.)
        if !self.delivery_puts.more_than(self.deliveries_taken.get()) && Arc::strong_count(&self.delivery_puts) > 1 {
            return Err(EndpointError::WouldBlock);
        }
        let d = pull(&self.deliveries)?;
        self.deliveries_taken.set(self.deliveries_taken.get() + 1);
        Ok(d)
    }

    /// The next delivery, waiting up to `timeout`.
    fn pull_timeout(&self, timeout: Duration) -> Result<D, EndpointError> {
        let d = pull_timeout(&self.deliveries, timeout)?;
        self.deliveries_taken.set(self.deliveries_taken.get() + 1);
        Ok(d)
    }
}

/// The queues of an endpoint with `slots` connection slots (1 for a single-connection channel, whose
/// connection starts out opening).
fn queues<C, D>(
    depth: usize,
    max_payload: usize,
    single_packet: usize,
    slots: usize,
) -> (LcoreEnds<C, D>, AppEnds<C, D>) {
    let status = StatusBoard::new(slots);
    if slots == 1 {
        status.open(0, 0, ConnState::Opening);
    }
    let (ctx, crx) = sync_channel(depth);
    let (dtx, drx) = sync_channel(depth);
    let shared = Arc::new(Shared {
        pool: OnceLock::new(),
        max_payload,
        single_packet,
        open: MbufSlot::new(),
        dropped: AtomicU64::new(0),
        open_hint: AtomicU64::new(0),
        status,
    });
    let (command_puts, delivery_puts) = (Arc::new(PutCount::default()), Arc::new(PutCount::default()));
    (
        LcoreEnds {
            commands: crx,
            command_puts: command_puts.clone(),
            commands_taken: 0,
            deliveries: AppQueue { tx: dtx, puts: delivery_puts.clone() },
            shared: shared.clone(),
        },
        AppEnds { commands: ctx, command_puts, deliveries: drx, delivery_puts, deliveries_taken: Cell::new(0), shared },
    )
}

enum Registered {
    Reliable(Box<ReliableEndpoint>),
    Streaming(Box<StreamEndpoint>),
    Unordered(Box<UnorderedEndpoint>),
    ReliableMux(Box<ReliableMuxEndpoint>),
    StreamMux(Box<StreamMuxEndpoint>),
}

impl Registered {
    fn kind(&self) -> EndpointKind {
        match self {
            Registered::Reliable(_) => EndpointKind::Reliable,
            Registered::Streaming(_) => EndpointKind::Stream,
            Registered::Unordered(_) => EndpointKind::Unordered,
            Registered::ReliableMux(_) => EndpointKind::ReliableMux,
            Registered::StreamMux(_) => EndpointKind::StreamMux,
        }
    }
}

/// `name` as a `&'static str` for [`EndpointError::WrongKind`] (which stays `Copy`): each distinct
/// name is kept once per process, so the memory is bounded by the names the stages registered.
fn interned(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// The process-wide registry: channel name → the application's ends, until an endpoint takes them.
static REGISTRY: Mutex<Vec<(String, Registered)>> = Mutex::new(Vec::new());

fn register(name: &str, entry: Registered) {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    // A new stage of the same name replaces an unclaimed older registration.
    reg.retain(|(n, _)| n != name);
    reg.push((name.to_owned(), entry));
}

fn take_registered<T>(
    name: &str,
    timeout: Duration,
    requested: EndpointKind,
    pick: impl Fn(Registered) -> Result<T, Registered>,
) -> Result<T, EndpointError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        {
            let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = reg.iter().position(|(n, _)| n == name) {
                let (n, entry) = reg.swap_remove(i);
                match pick(entry) {
                    Ok(endpoint) => return Ok(endpoint),
                    Err(other) => {
                        let registered = other.kind();
                        reg.push((n, other));
                        return Err(EndpointError::WrongKind { name: interned(name), registered, requested });
                    }
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(EndpointError::NotFound);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Forgets an unclaimed registration (frees whatever was delivered to it). Returns true if one existed.
pub fn unregister(name: &str) -> bool {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let before = reg.len();
    reg.retain(|(n, _)| n != name);
    reg.len() != before
}

/// Retries `attempt` while it says [`EndpointError::WouldBlock`], sleeping a little longer each time
/// (up to 1 ms), until `timeout`.
fn retry<T>(timeout: Duration, mut attempt: impl FnMut() -> Result<T, EndpointError>) -> Result<T, EndpointError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_micros(20);
    loop {
        match attempt() {
            Err(EndpointError::WouldBlock) => {}
            other => return other,
        }
        if std::time::Instant::now() >= deadline {
            return Err(EndpointError::TimedOut);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

fn push<C, D>(ends: &AppEnds<C, D>, command: C) -> Result<(), EndpointError> {
    match ends.send(command) {
        Ok(()) => Ok(()),
        // The command (and any mbuf in it) is dropped here, freed to its pool.
        Err(TrySendError::Full(_)) => Err(EndpointError::WouldBlock),
        Err(TrySendError::Disconnected(_)) => Err(EndpointError::Disconnected),
    }
}

fn pull<D>(rx: &Receiver<D>) -> Result<D, EndpointError> {
    rx.try_recv().map_err(|e| match e {
        TryRecvError::Empty => EndpointError::WouldBlock,
        TryRecvError::Disconnected => EndpointError::Disconnected,
    })
}

fn pull_timeout<D>(rx: &Receiver<D>, timeout: Duration) -> Result<D, EndpointError> {
    rx.recv_timeout(timeout).map_err(|e| match e {
        RecvTimeoutError::Timeout => EndpointError::TimedOut,
        RecvTimeoutError::Disconnected => EndpointError::Disconnected,
    })
}

/// Copies `bytes` into mbufs of `pool`, at most `segment` bytes each: one mbuf when it fits, else a
/// chain. Empty `bytes` give one empty mbuf.
fn to_mbufs(pool: &Mempool, bytes: &[u8], segment: usize) -> Result<Mbuf, EndpointError> {
    let mut head: Option<Mbuf> = None;
    let mut rest = bytes;
    loop {
        let mut m = pool.alloc().ok_or(EndpointError::NoBuffers)?;
        let n = rest.len().min(m.tailroom()).min(segment.max(1));
        m.append(n).map_err(|_| EndpointError::NoBuffers)?.copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        head = Some(match head {
            None => m,
            // More segments than an mbuf chain holds: the pool's buffers are far smaller than
            // the channel's mss (a pool misconfiguration, not the caller's payload).
            Some(h) => h.chain(m).map_err(|_| EndpointError::NoBuffers)?,
        });
        if rest.is_empty() {
            return head.ok_or(EndpointError::NoBuffers);
        }
    }
}

/// A message longer than the channel's `max_message`.
fn too_long_message(shared: &Shared, len: usize) -> EndpointError {
    EndpointError::TooLarge { len, limit: shared.max_payload, param: "max_message" }
}

/// A message too long to pack into one packet with its 2-byte record header (`try_send_with`).
fn too_long_record(shared: &Shared, len: usize) -> EndpointError {
    let limit = shared.single_packet.saturating_sub(record_len(0)).min(shared.max_payload);
    let param = if limit == shared.max_payload { "max_message" } else { "mss" };
    EndpointError::TooLarge { len, limit, param }
}

/// A single-connection endpoint's status (its one cell is written from the start).
fn single_status(shared: &Shared) -> ConnStatus {
    shared.status.status(0, 0).unwrap_or_default()
}

fn pool_of(shared: &Shared) -> Result<&Mempool, EndpointError> {
    shared.pool.get().ok_or(EndpointError::NoBuffers)
}

/// An endpoint's side of the packet it is filling (reliable records, stream bytes): between calls
/// the packet waits in the shared slot for the lcore, or, while corked, here.
#[derive(Default)]
struct Filling {
    /// True when this endpoint left a partial packet in the slot at its last call.
    in_slot: Cell<bool>,
    /// Partial packets this endpoint has seen the lcore take (stamped on every command).
    seen: Cell<u32>,
    /// Cork depth ([`ReliableEndpoint::cork`]); the packet kept while it is non-zero.
    depth: Cell<u32>,
    corked: Cell<Option<Mbuf>>,
}

impl core::fmt::Debug for Filling {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Filling")
            .field("in_slot", &self.in_slot.get())
            .field("seen", &self.seen.get())
            .field("depth", &self.depth.get())
            .finish_non_exhaustive()
    }
}

impl Filling {
    /// The partial packet back (kept while corked, else from `slot`): `None` when there was none or
    /// the lcore took it (which is then counted as seen).
    fn reclaim(&self, slot: &MbufSlot) -> Option<Mbuf> {
        if let Some(m) = self.corked.take() {
            return Some(m);
        }
        let m = slot.take();
        if m.is_none() && self.in_slot.get() {
            self.seen.set(self.seen.get().wrapping_add(1));
        }
        self.in_slot.set(false);
        m
    }

    /// Leaves the partial packet for the lcore in `slot`, or keeps it while corked.
    fn park(&self, slot: &MbufSlot, m: Mbuf) {
        if self.depth.get() > 0 {
            self.corked.set(Some(m));
            return;
        }
        // Only this endpoint puts, and it always takes first: the slot is empty here.
        self.in_slot.set(slot.put(m).is_ok());
    }

    fn cork(&self) {
        self.depth.set(self.depth.get() + 1);
    }

    /// Ends a cork; the outermost hands the kept packet to `slot`.
    fn uncork(&self, slot: &MbufSlot) {
        match self.depth.get() {
            0 => {}
            1 => {
                self.depth.set(0);
                if let Some(m) = self.corked.take() {
                    self.park(slot, m);
                }
            }
            d => self.depth.set(d - 1),
        }
    }
}

/// Something that can be corked (the reliable and stream endpoints).
pub trait Cork {
    /// See [`ReliableEndpoint::uncork`].
    fn uncork(&self);
}

impl Cork for ReliableEndpoint {
    fn uncork(&self) {
        ReliableEndpoint::uncork(self);
    }
}

impl Cork for StreamEndpoint {
    fn uncork(&self) {
        StreamEndpoint::uncork(self);
    }
}

/// Uncorks its endpoint when dropped ([`ReliableEndpoint::corked`], [`StreamEndpoint::corked`]).
#[derive(Debug)]
#[must_use = "the endpoint is uncorked when the guard is dropped"]
pub struct CorkGuard<'a, E: Cork>(&'a E);

impl<E: Cork> Drop for CorkGuard<'_, E> {
    fn drop(&mut self) {
        self.0.uncork();
    }
}

impl<E: Cork> core::ops::Deref for CorkGuard<'_, E> {
    type Target = E;
    fn deref(&self) -> &E {
        self.0
    }
}

/// The application's handle on a reliable channel: sends and receives whole messages.
///
/// Small messages are packed into shared packets as they are sent (see the module docs); received
/// deliveries are read in place with [`reliable::Event::messages`], whatever their form (one packet,
/// several packed in one, a chain of packets):
/// ```no_run
/// # use rosette::pipeline::endpoint::ReliableEndpoint;
/// # fn f(ep: &ReliableEndpoint) -> Result<(), rosette::pipeline::endpoint::EndpointError> {
/// let ev = ep.recv_event(std::time::Duration::from_secs(1))?;
/// for message in ev.messages() {
///     for segment in message {
///         let _bytes: &[u8] = segment;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReliableEndpoint {
    ends: AppEnds<ReliableCommand, reliable::Event<Mbuf>>,
    /// Delivered bytes not read yet by [`super::AppEndpoint::recv`].
    pub(crate) pending: super::app::PendingBytes,
    /// The packet being filled with records.
    filling: Filling,
}

impl ReliableEndpoint {
    pub(crate) fn register(
        name: &str,
        depth: usize,
        max_message: usize,
        mss: usize,
    ) -> LcoreEnds<ReliableCommand, reliable::Event<Mbuf>> {
        let (lcore, app) = queues(depth, max_message, mss, 1);
        register(
            name,
            Registered::Reliable(Box::new(ReliableEndpoint {
                ends: app,
                pending: Default::default(),
                filling: Filling::default(),
            })),
        );
        lcore
    }

    /// Takes the endpoint of the reliable channel stage named `name`, waiting up to `timeout` for the
    /// stage to be constructed.
    pub fn connect(name: &str, timeout: Duration) -> Result<ReliableEndpoint, EndpointError> {
        take_registered(name, timeout, EndpointKind::Reliable, |r| match r {
            Registered::Reliable(e) => Ok(*e),
            other => Err(other),
        })
    }

    fn reclaim(&self) -> Option<Mbuf> {
        self.filling.reclaim(&self.ends.shared.open)
    }

    fn park(&self, m: Mbuf) {
        self.filling.park(&self.ends.shared.open, m);
    }

    /// Corks the endpoint (like `TCP_CORK`): until the matching [`ReliableEndpoint::uncork`], the
    /// packet being filled stays with this endpoint between sends instead of being handed to the
    /// lcore's slot after every message — one hand-over per burst of messages instead of two atomic
    /// operations per message. Full packets still go to the lcore as they fill. While corked the lcore
    /// cannot take the partial packet, so cork around a burst of sends, not a session (or use
    /// [`ReliableEndpoint::corked`], which uncorks when dropped). Corks nest.
    pub fn cork(&self) {
        self.filling.cork();
    }

    /// Ends a [`ReliableEndpoint::cork`]; the last one hands the partial packet (if any) to the lcore
    /// (or, when the stage has stopped, counts its messages as unacknowledged and frees it).
    pub fn uncork(&self) {
        self.filling.uncork(&self.ends.shared.open);
        let _ = self.unpark_if_stopped(0);
    }

    /// Corks the endpoint until the returned guard is dropped.
    pub fn corked(&self) -> CorkGuard<'_, Self> {
        self.cork();
        CorkGuard(self)
    }

    /// Queues `op`; a full queue gives it back.
    fn queue(&self, op: ReliableOp) -> Result<(), (EndpointError, Option<ReliableOp>)> {
        match self.ends.send(ReliableCommand { seen: self.filling.seen.get(), op }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => Err((EndpointError::WouldBlock, Some(cmd.op))),
            Err(TrySendError::Disconnected(_)) => Err((EndpointError::Disconnected, None)),
        }
    }

    /// Queues the partial packet (if any) as a packet of its own, ahead of what follows.
    fn flush_open(&self) -> Result<(), EndpointError> {
        let Some(m) = self.reclaim() else { return Ok(()) };
        self.queue(ReliableOp::Packed(m)).map_err(|(e, op)| {
            if let Some(ReliableOp::Packed(m)) = op {
                self.park(m);
            }
            e
        })
    }

    /// Queues a message without waiting: [`EndpointError::WouldBlock`] when the queue to the lcore is
    /// full (the message was not queued; retry later). A message that fits a packet with its record
    /// header is packed with its neighbours ([`ReliableEndpoint::try_send_with`]); a longer one is
    /// copied into a chain of mss-sized mbufs, each of which becomes one of its packets.
    pub fn try_send(&self, msg: &[u8]) -> Result<(), EndpointError> {
        if record_len(msg.len()) <= self.ends.shared.single_packet {
            return self.try_send_with(msg.len(), |out| out.copy_from_slice(msg));
        }
        self.ends.shared.check_single()?;
        if msg.len() > self.ends.shared.max_payload {
            return Err(too_long_message(&self.ends.shared, msg.len()));
        }
        let pool = pool_of(&self.ends.shared)?;
        // What was packed before goes first.
        self.flush_open()?;
        let chain = to_mbufs(pool, msg, self.ends.shared.single_packet)?;
        // A full queue drops the chain (back to the pool); the caller retries.
        self.queue(ReliableOp::Message(chain)).map_err(|(e, _)| e)
    }

    /// Queues a message of `len` bytes that `fill` writes straight into the packet that carries it
    /// (zero-copy: no intermediate buffer). `fill` gets exactly `len` bytes (previous content
    /// unspecified) and runs only when the message is accepted. The message is packed with its
    /// neighbours; `len` plus the 2-byte record header must fit the channel's mss, else
    /// [`EndpointError::TooLarge`] (use [`ReliableEndpoint::try_send`] for longer messages).
    pub fn try_send_with(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), EndpointError> {
        self.ends.shared.check_single()?;
        let need = record_len(len);
        let mss = self.ends.shared.single_packet;
        if need > mss || len > self.ends.shared.max_payload {
            return Err(too_long_record(&self.ends.shared, len));
        }
        let pool = pool_of(&self.ends.shared)?;
        let mut open = self.reclaim();
        if let Some(m) = open.take() {
            if m.data_len() + need <= mss && m.tailroom() >= need {
                open = Some(m);
            } else {
                // Full: it goes to the lcore as it is, and this message starts the next packet.
                if let Err((e, op)) = self.queue(ReliableOp::Packed(m)) {
                    if let Some(ReliableOp::Packed(m)) = op {
                        self.park(m);
                    }
                    return Err(e);
                }
            }
        }
        let mut m = match open {
            Some(m) => m,
            None => pool.alloc().ok_or(EndpointError::NoBuffers)?,
        };
        match m.append(need) {
            Ok(room) => match emit_record(room, len) {
                Ok(body) => fill(body),
                Err(_) => {
                    // Cannot happen (`need` bytes were appended); undo rather than send garbage.
                    let _ = m.trim(need);
                    self.park_unless_empty(m);
                    return Err(too_long_record(&self.ends.shared, len));
                }
            },
            Err(_) => {
                self.park_unless_empty(m);
                return Err(EndpointError::NoBuffers);
            }
        }
        self.park(m);
        self.unpark_if_stopped(1)
    }

    /// After parking the partial packet: if the stage stopped meanwhile, nothing takes it any more
    /// (its last take may have come just before): take it back, count the messages it held as
    /// unacknowledged except the `own` this call added (the call fails), free it.
    fn unpark_if_stopped(&self, own: usize) -> Result<(), EndpointError> {
        let shared = &self.ends.shared;
        if !shared.status.is_stopped() {
            return Ok(());
        }
        if let Some(m) = self.reclaim() {
            let held = crate::wire::packed::count_records(m.data()).unwrap_or(own);
            shared.status.add_unacknowledged(0, None, held.saturating_sub(own) as u64);
        }
        shared.check_single().and(Err(EndpointError::Disconnected))
    }

    fn park_unless_empty(&self, m: Mbuf) {
        if m.data_len() > 0 {
            self.park(m);
        }
    }

    /// Queues a message, retrying while the queue is full, for up to `timeout`.
    pub fn send(&self, msg: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        retry(timeout, || match self.try_send(msg) {
            // The pool may be empty only for a moment (mbufs in flight) or the lcore not started yet.
            Err(EndpointError::NoBuffers) => Err(EndpointError::WouldBlock),
            other => other,
        })
    }

    /// The next delivery (message or connection event) if there is one. (Named apart from
    /// [`AppEndpoint::recv`](super::AppEndpoint::recv), which reads bytes, so that neither hides
    /// the other.)
    pub fn try_recv_event(&self) -> Result<reliable::Event<Mbuf>, EndpointError> {
        self.ends.pull()
    }

    /// The next delivery, waiting up to `timeout`.
    pub fn recv_event(&self, timeout: Duration) -> Result<reliable::Event<Mbuf>, EndpointError> {
        self.ends.pull_timeout(timeout)
    }

    /// The connection's state and counters now, as the lcore last published them (about every
    /// millisecond, and at once when the connection ends): see [`ConnStatus`]. After a send
    /// failed with the connection's end, `unacknowledged` says how many of the messages this
    /// endpoint accepted were never acknowledged (resend those elsewhere).
    pub fn status(&self) -> ConnStatus {
        single_status(&self.ends.shared)
    }

    /// Closes the sending side after every queued message (the peer sees `PeerClosed`); later
    /// sends return [`EndpointError::Closed`]. Closing a connection that already ended says how.
    pub fn close(&self, timeout: Duration) -> Result<(), EndpointError> {
        close_direction(&self.ends.shared, (0, 0), timeout, || {
            self.flush_open()?;
            self.queue(ReliableOp::Close).map_err(|(e, _)| e)
        })
    }

    /// Aborts the connection (queued and undelivered data is dropped; the peer sees a reset).
    pub fn reset(&self, timeout: Duration) -> Result<(), EndpointError> {
        drop(self.reclaim());
        retry(timeout, || self.queue(ReliableOp::Reset).map_err(|(e, _)| e))
    }
}

/// The application's handle on a streaming channel: writes and reads bytes.
///
/// Written bytes are copied once, straight into the packet the endpoint is filling (at most one mss);
/// full packets go to the lcore, which queues them as they are; the partial one waits in the slot
/// until the lcore has caught up, exactly as reliable packing does (see the module docs).
#[derive(Debug)]
pub struct StreamEndpoint {
    ends: AppEnds<StreamCommand, StreamDelivery>,
    /// The packet being filled with written bytes.
    filling: Filling,
    /// The segment being read, with what was read already removed from its front.
    current: Option<Mbuf>,
    events: VecDeque<streaming::Event>,
    ended: bool,
}

impl StreamEndpoint {
    pub(crate) fn register(name: &str, depth: usize, mss: usize) -> LcoreEnds<StreamCommand, StreamDelivery> {
        let (lcore, app) = queues(depth, usize::MAX, mss, 1);
        register(
            name,
            Registered::Streaming(Box::new(StreamEndpoint {
                ends: app,
                filling: Filling::default(),
                current: None,
                events: VecDeque::new(),
                ended: false,
            })),
        );
        lcore
    }

    fn reclaim(&self) -> Option<Mbuf> {
        self.filling.reclaim(&self.ends.shared.open)
    }

    fn park(&self, m: Mbuf) {
        self.filling.park(&self.ends.shared.open, m);
    }

    /// Corks the endpoint (like `TCP_CORK`): until the matching [`StreamEndpoint::uncork`], the packet
    /// being filled stays with this endpoint between writes (see [`ReliableEndpoint::cork`]).
    pub fn cork(&self) {
        self.filling.cork();
    }

    /// Ends a [`StreamEndpoint::cork`]; the last one hands the partial packet (if any) to the lcore
    /// (or, once the stage stopped, counts its bytes as unacknowledged and frees it).
    pub fn uncork(&self) {
        self.filling.uncork(&self.ends.shared.open);
        let _ = self.unpark_if_stopped(0);
    }

    /// Corks the endpoint until the returned guard is dropped.
    pub fn corked(&self) -> CorkGuard<'_, Self> {
        self.cork();
        CorkGuard(self)
    }

    fn queue(&self, op: StreamOp) -> Result<(), (EndpointError, Option<StreamOp>)> {
        match self.ends.send(StreamCommand { seen: self.filling.seen.get(), op }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => Err((EndpointError::WouldBlock, Some(cmd.op))),
            Err(TrySendError::Disconnected(_)) => Err((EndpointError::Disconnected, None)),
        }
    }

    /// Queues `m` as a written packet; a full queue leaves it in the slot (the lcore takes it from
    /// there, or the next call queues it).
    fn queue_or_park(&self, m: Mbuf) -> Result<(), EndpointError> {
        match self.queue(StreamOp::Write(m)) {
            Ok(()) => Ok(()),
            Err((e, op)) => {
                if let Some(StreamOp::Write(m)) = op {
                    self.park(m);
                }
                Err(e)
            }
        }
    }

    /// Takes the endpoint of the streaming channel stage named `name`, waiting up to `timeout`.
    pub fn connect(name: &str, timeout: Duration) -> Result<StreamEndpoint, EndpointError> {
        take_registered(name, timeout, EndpointKind::Stream, |r| match r {
            Registered::Streaming(e) => Ok(*e),
            other => Err(other),
        })
    }

    /// Writes as much of `data` as the packet being filled holds (at most one mss) without waiting;
    /// returns the bytes taken. The bytes are copied once, into the packet that carries them.
    pub fn try_write(&self, data: &[u8]) -> Result<usize, EndpointError> {
        self.try_write_with(data.len(), |room| {
            room.copy_from_slice(&data[..room.len()]);
            room.len()
        })
    }

    /// Zero-copy write: `fill` gets the room the packet being filled has for the next stream bytes
    /// (at most `max` bytes, at most one mss; previous content unspecified), writes the bytes there and
    /// returns how many it wrote (at most the room's length); those are taken. `fill` runs only when
    /// there is room: [`EndpointError::WouldBlock`] / [`EndpointError::NoBuffers`] otherwise. Returns
    /// the bytes taken (0 when `max` is 0).
    pub fn try_write_with(&self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<usize, EndpointError> {
        self.ends.shared.check_single()?;
        let mss = self.ends.shared.single_packet.max(1);
        let pool = pool_of(&self.ends.shared)?;
        let mut open = self.reclaim();
        if let Some(m) = open.take() {
            if m.data_len() >= mss || m.tailroom() == 0 {
                // Full: to the lcore first (a full queue keeps it in the slot: try again later).
                self.queue_or_park(m)?;
            } else {
                open = Some(m);
            }
        }
        let mut m = match open {
            Some(m) => m,
            None => pool.alloc().ok_or(EndpointError::NoBuffers)?,
        };
        let room = max.min(mss - m.data_len()).min(m.tailroom());
        let n = match m.append(room) {
            Ok(space) => {
                let n = fill(space).min(room);
                // What `fill` left unwritten is not stream data.
                let _ = m.trim(room - n);
                n
            }
            Err(_) => {
                if m.data_len() > 0 {
                    self.park(m);
                }
                return Err(EndpointError::NoBuffers);
            }
        };
        if m.data_len() >= mss {
            // A full queue is no failure here: the bytes are written, the packet waits in the slot.
            match self.queue_or_park(m) {
                Ok(()) | Err(EndpointError::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        } else if m.data_len() > 0 {
            self.park(m);
        }
        self.unpark_if_stopped(n)?;
        Ok(n)
    }

    /// After parking the partial packet: as [`ReliableEndpoint`] does, in bytes (`own`: this call's).
    fn unpark_if_stopped(&self, own: usize) -> Result<(), EndpointError> {
        let shared = &self.ends.shared;
        if !shared.status.is_stopped() {
            return Ok(());
        }
        if let Some(m) = self.reclaim() {
            shared.status.add_unacknowledged(0, None, m.pkt_len().saturating_sub(own) as u64);
        }
        shared.check_single().and(Err(EndpointError::Disconnected))
    }

    /// Writes all of `data`, waiting while the queue is full, for up to `timeout` in all.
    pub fn write_all(&self, mut data: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        let deadline = std::time::Instant::now() + timeout;
        while !data.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let n = retry(left, || match self.try_write(data) {
                Err(EndpointError::NoBuffers) => Err(EndpointError::WouldBlock),
                other => other,
            })?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Reads received bytes into `out` without waiting. `Ok(0)` is end of stream;
    /// [`EndpointError::WouldBlock`] means nothing is there yet. Connection events met on the way are
    /// kept for [`StreamEndpoint::poll_event`].
    pub fn try_read(&mut self, out: &mut [u8]) -> Result<usize, EndpointError> {
        self.try_read_with(|seg| {
            let n = seg.len().min(out.len());
            out[..n].copy_from_slice(&seg[..n]);
            n
        })
    }

    /// Zero-copy read: `consume` gets the next received bytes in place (the unread part of one
    /// received segment, never empty) and returns how many of them it used (at most their length); the
    /// rest stays for the next read. Returns the bytes used, `Ok(0)` at the end of the stream,
    /// [`EndpointError::WouldBlock`] when nothing is there yet.
    pub fn try_read_with(&mut self, consume: impl FnOnce(&[u8]) -> usize) -> Result<usize, EndpointError> {
        loop {
            if let Some(seg) = &mut self.current {
                let len = seg.data().len();
                let n = consume(seg.data()).min(len);
                // A fully read segment goes back to the pool; a partly read one keeps the rest.
                if n == len || seg.adjust(n).is_err() {
                    self.current = None;
                }
                return Ok(n);
            }
            if !self.next_segment()? {
                return Ok(0);
            }
        }
    }

    /// Moves the next received segment into `current`; false at the end of the stream.
    fn next_segment(&mut self) -> Result<bool, EndpointError> {
        loop {
            if self.ended {
                return Ok(false);
            }
            match self.ends.pull()? {
                StreamDelivery::Data(m) if m.data().is_empty() => {}
                StreamDelivery::Data(m) => {
                    self.current = Some(m);
                    return Ok(true);
                }
                StreamDelivery::End => self.ended = true,
                StreamDelivery::Event(e) => {
                    if matches!(e, streaming::Event::Reset(_)) {
                        // A new connection may follow: a new stream.
                        self.ended = false;
                    }
                    self.events.push_back(e);
                }
            }
        }
    }

    /// Reads into `out`, waiting up to `timeout` for something to arrive.
    pub fn read(&mut self, out: &mut [u8], timeout: Duration) -> Result<usize, EndpointError> {
        retry(timeout, || self.try_read(out))
    }

    /// The next connection event seen by the reader, if any (reading fetches them; when only events
    /// are wanted, [`StreamEndpoint::wait_event`] fetches them).
    pub fn poll_event(&mut self) -> Option<streaming::Event> {
        self.events.pop_front()
    }

    /// Waits up to `timeout` for the next connection event. Data that arrives meanwhile is kept for
    /// reading (`WouldBlock` while unread data comes first). After the end of stream, this waits for
    /// what follows it, e.g. [`streaming::Event::Closed`] once our own end of stream is
    /// acknowledged.
    pub fn wait_event(&mut self, timeout: Duration) -> Result<streaming::Event, EndpointError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            if self.current.is_some() {
                // Unread data comes first; the event will be fetched after it.
                return Err(EndpointError::WouldBlock);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.ends.pull_timeout(left)? {
                StreamDelivery::Data(m) => self.current = Some(m),
                // Reading still returns `Ok(0)`; only events can follow (until a reset).
                StreamDelivery::End => self.ended = true,
                StreamDelivery::Event(e) => {
                    if matches!(e, streaming::Event::Reset(_)) {
                        // A new connection may follow: a new stream (as in `try_read`).
                        self.ended = false;
                    }
                    return Ok(e);
                }
            }
        }
    }

    /// True once end of stream was read.
    pub fn is_ended(&self) -> bool {
        self.ended && self.current.is_none()
    }

    /// The connection's state and counters now (see [`ReliableEndpoint::status`]);
    /// `unacknowledged` counts stream bytes.
    pub fn status(&self) -> ConnStatus {
        single_status(&self.ends.shared)
    }

    /// Finishes the writing direction after everything written (the peer reads end of stream);
    /// later writes return [`EndpointError::Closed`]. Finishing a connection that already ended
    /// says how.
    pub fn finish(&self, timeout: Duration) -> Result<(), EndpointError> {
        close_direction(&self.ends.shared, (0, 0), timeout, || {
            if let Some(m) = self.reclaim() {
                self.queue_or_park(m)?;
            }
            self.queue(StreamOp::Finish).map_err(|(e, _)| e)
        })
    }

    /// Aborts both directions.
    pub fn reset(&self, timeout: Duration) -> Result<(), EndpointError> {
        drop(self.reclaim());
        retry(timeout, || self.queue(StreamOp::Reset).map_err(|(e, _)| e))
    }
}

/// The application's handle on an unordered channel: datagrams to and from UDP peers.
#[derive(Debug)]
pub struct UnorderedEndpoint {
    ends: AppEnds<UnorderedCommand, unordered::Event<Mbuf>>,
}

impl UnorderedEndpoint {
    pub(crate) fn register(
        name: &str,
        depth: usize,
        max_datagram: usize,
    ) -> LcoreEnds<UnorderedCommand, unordered::Event<Mbuf>> {
        let (lcore, app) = queues(depth, max_datagram, max_datagram, 1);
        register(name, Registered::Unordered(Box::new(UnorderedEndpoint { ends: app })));
        lcore
    }

    /// Takes the endpoint of the unordered channel stage named `name`, waiting up to `timeout`.
    pub fn connect(name: &str, timeout: Duration) -> Result<UnorderedEndpoint, EndpointError> {
        take_registered(name, timeout, EndpointKind::Unordered, |r| match r {
            Registered::Unordered(e) => Ok(*e),
            other => Err(other),
        })
    }

    /// Queues a datagram to `dst` (from the stage's port) without waiting: [`EndpointError::WouldBlock`]
    /// when the queue to the lcore is full (it holds `queue_depth` datagrams; the lcore takes them only
    /// while the channel's transmit queue has room, so a sender faster than the link gets
    /// `WouldBlock` rather than silent loss). `Ok` means the lcore will take it; whether the channel
    /// could send it is counted by [`UnorderedEndpoint::dropped`].
    pub fn try_send_to(&self, dst: SocketAddrV4, payload: &[u8]) -> Result<(), EndpointError> {
        let too_large = EndpointError::TooLarge { len: payload.len(), limit: self.ends.shared.max_payload, param: "" };
        if payload.len() > self.ends.shared.max_payload {
            return Err(too_large);
        }
        let pool = pool_of(&self.ends.shared)?;
        let mut m = pool.alloc().ok_or(EndpointError::NoBuffers)?;
        m.append(payload.len()).map_err(|_| too_large)?.copy_from_slice(payload);
        push(&self.ends, UnorderedCommand { dst, payload: m })
    }

    /// Queues a datagram, retrying while the queue is full, for up to `timeout` (then
    /// [`EndpointError::TimedOut`]).
    pub fn send_to(&self, dst: SocketAddrV4, payload: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        retry(timeout, || match self.try_send_to(dst, payload) {
            Err(EndpointError::NoBuffers) => Err(EndpointError::WouldBlock),
            other => other,
        })
    }

    /// Datagrams this endpoint queued (`try_send_to`/`send_to` returned `Ok`) that the lcore could
    /// not send: refused by the channel (the next hop still resolving with [`Config::pending_capacity`]
    /// datagrams already waiting for it, a destination it cannot reach), dropped by it later (ARP never
    /// answered, or waited longer than [`Config::pending_timeout`]), or still held when the stage
    /// stopped. Updated by the lcore as it happens. Not counted here: sends that returned an error
    /// (the caller knows), frames the port's tx queue refused afterwards (the lcore's `tx_dropped`,
    /// [`crate::pipeline::LcoreStatsSnapshot`]), and losses on the wire or at the receiver, which UDP
    /// never tells the sender.
    ///
    /// [`Config::pending_capacity`]: crate::channel::unordered::Config::pending_capacity
    /// [`Config::pending_timeout`]: crate::channel::unordered::Config::pending_timeout
    pub fn dropped(&self) -> u64 {
        self.ends.shared.dropped.load(Ordering::Relaxed)
    }

    /// The next received datagram, if any.
    pub fn try_recv_from(&self) -> Result<unordered::Datagram<Mbuf>, EndpointError> {
        self.ends.pull().map(|unordered::Event::Datagram(d)| d)
    }

    /// The next received datagram, waiting up to `timeout`.
    pub fn recv_from(&self, timeout: Duration) -> Result<unordered::Datagram<Mbuf>, EndpointError> {
        self.ends.pull_timeout(timeout).map(|unordered::Event::Datagram(d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hands_each_registration_out_once_and_by_kind() {
        let _lcore = ReliableEndpoint::register("registry-test", 4, 100, 100);
        let wrong = StreamEndpoint::connect("registry-test", Duration::ZERO).unwrap_err();
        assert_eq!(
            wrong,
            EndpointError::WrongKind {
                name: "registry-test",
                registered: EndpointKind::Reliable,
                requested: EndpointKind::Stream
            }
        );
        assert_eq!(
            wrong.to_string(),
            "endpoint `registry-test` is a reliable endpoint (its channel stage is `reliable`); asked for a stream \
             endpoint (`StreamEndpoint`): connect it as `ReliableEndpoint`, or make the stage `streaming` (one word \
             in the declaration)"
        );
        assert_eq!(StreamEndpoint::connect("no-such-endpoint", Duration::ZERO).unwrap_err(), EndpointError::NotFound);
        let ep = ReliableEndpoint::connect("registry-test", Duration::ZERO).unwrap();
        assert_eq!(ReliableEndpoint::connect("registry-test", Duration::ZERO).unwrap_err(), EndpointError::NotFound);
        // Before the stage ran there is no pool to copy into; the blocking variant waits, then times out.
        assert_eq!(ep.try_send(b"x").unwrap_err(), EndpointError::NoBuffers);
        assert_eq!(ep.send(b"x", Duration::from_millis(5)).unwrap_err(), EndpointError::TimedOut);
        let too_large = ep.try_send(&[0; 101]).unwrap_err();
        assert_eq!(too_large, EndpointError::TooLarge { len: 101, limit: 100, param: "max_message" });
        assert_eq!(
            too_large.to_string(),
            "payload of 101 bytes is larger than the 100 bytes this call accepts (the stage param `max_message` sets it)"
        );
        assert_eq!(ep.try_recv_event().unwrap_err(), EndpointError::WouldBlock);
        drop(_lcore);
        assert_eq!(ep.try_recv_event().unwrap_err(), EndpointError::Disconnected);
        assert_eq!(ep.close(Duration::ZERO).unwrap_err(), EndpointError::Disconnected);
    }

    #[test]
    fn connect_waits_for_the_stage() {
        let waiter = std::thread::spawn(|| UnorderedEndpoint::connect("late-stage", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        let _lcore = UnorderedEndpoint::register("late-stage", 4, 1472);
        assert!(waiter.join().unwrap().is_ok());
        assert!(!unregister("late-stage"));
        let _again = StreamEndpoint::register("unclaimed", 4, 1400);
        assert!(unregister("unclaimed"));
    }

    #[test]
    fn command_queue_is_bounded() {
        let lcore = StreamEndpoint::register("bounded", 2, 1400);
        let ep = StreamEndpoint::connect("bounded", Duration::ZERO).unwrap();
        assert_eq!(ep.reset(Duration::ZERO), Ok(()));
        assert_eq!(ep.reset(Duration::ZERO), Ok(()));
        assert_eq!(ep.reset(Duration::from_millis(2)), Err(EndpointError::TimedOut));
        assert!(matches!(lcore.commands.try_recv(), Ok(StreamCommand { op: StreamOp::Reset, .. })));
        assert_eq!(ep.finish(Duration::ZERO), Ok(()));
        assert_eq!(ep.status().state, ConnState::Closing);
        // A finished direction takes no more bytes, and a second finish queues nothing.
        assert_eq!(ep.try_write(b"x"), Err(EndpointError::Closed));
        assert_eq!(ep.finish(Duration::ZERO), Ok(()));
        assert!(matches!(lcore.commands.try_recv(), Ok(StreamCommand { op: StreamOp::Reset, .. })));
        assert!(matches!(lcore.commands.try_recv(), Ok(StreamCommand { op: StreamOp::Finish, .. })));
        assert!(lcore.commands.try_recv().is_err());
    }

    #[test]
    fn sends_on_an_ended_connection_name_its_end() {
        let lcore = ReliableEndpoint::register("ended", 4, 100, 100);
        let ep = ReliableEndpoint::connect("ended", Duration::ZERO).unwrap();
        let board = &lcore.shared.status;
        for (state, error) in [
            (ConnState::Failed, EndpointError::ConnectionFailed),
            (ConnState::Reset(crate::channel::conn::ResetReason::PeerReset), EndpointError::ConnectionReset),
            (ConnState::Aborted, EndpointError::ConnectionReset),
            (ConnState::Closed, EndpointError::Closed),
        ] {
            board.set_state(0, 0, state);
            assert_eq!(ep.try_send(b"x"), Err(error), "{state:?}");
            assert_eq!(ep.send(b"x", Duration::from_secs(10)), Err(error), "no wait for the timeout: {state:?}");
            assert_eq!(ep.try_send_with(1, |_| panic!("not written")), Err(error));
            assert_eq!(ep.try_send(&[0; 99]), Err(error), "a long message too");
            assert_eq!(ep.status().state, state);
        }
        assert_eq!(ep.close(Duration::ZERO), Ok(()), "closing a closed connection is no error");
        board.set_state(0, 0, ConnState::Failed);
        assert_eq!(ep.close(Duration::ZERO), Err(EndpointError::ConnectionFailed));
        board.add_unacknowledged(0, None, 7);
        assert_eq!(ep.status().unacknowledged, 7);
    }

    #[test]
    fn closures_are_sinks() {
        let mut got = Vec::new();
        let mut sink = |x: u32| {
            if x >= 3 {
                return Err(x);
            }
            got.push(x);
            Ok(())
        };
        assert_eq!(sink.deliver(1), Ok(()));
        assert_eq!(sink.deliver(7), Err(7));
        assert_eq!(got, [1]);
    }
}
