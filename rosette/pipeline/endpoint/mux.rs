//! Endpoints of connection tables (`reliable_mux`, `streaming_mux`): one endpoint for every
//! connection of a table. Each delivery names its connection ([`MuxEvent::conn`]); each send names
//! the connection it is for.
//!
//! A new connection shows itself as its `Connected` event (a listener's accepted connection, or one a
//! dialer opened, at start or with [`ReliableMuxEndpoint::open`]). When it ends (closed, reset,
//! failed) every send on it fails at once with the error naming the end, and
//! [`ReliableMuxEndpoint::status`] says what was not acknowledged; a linger after
//! its end the table reuses the slot, and the handle is refused with
//! [`EndpointError::UnknownConnection`].
//!
//! Packing works as on the single-connection endpoints: small messages (reliable) or written bytes
//! (stream) fill one packet in place, which the lcore takes from the slot once it has caught up.
//! The packet being filled belongs to one connection (its first 8 bytes name it while it is being
//! filled; they are stripped before the channel sees it): a send for another connection queues it
//! first. So the application packs best when it sends its messages for a connection together.
//! Order between the slot and the command queue is kept as on the single-connection endpoints:
//! every command is stamped with how many partial packets the endpoint has seen the lcore take.
use core::sync::atomic::Ordering;

use super::*;
use crate::channel::mux::ConnHandle;

/// A delivery of a connection table: what happened, and to which connection.
#[derive(Debug)]
pub struct MuxEvent<E> {
    /// The connection.
    pub conn: ConnHandle,
    /// The connection's event or data.
    pub event: E,
}

/// A command to a connection table, stamped like [`ReliableCommand`].
#[derive(Debug)]
pub(crate) struct MuxCommand<Op> {
    pub(crate) seen: u32,
    pub(crate) op: MuxOp<Op>,
}

/// What a table command asks for.
#[derive(Debug)]
pub(crate) enum MuxOp<Op> {
    /// Open one more connection (dialer).
    Open,
    /// A command for one connection.
    On(ConnHandle, Op),
}

/// The lcore's ends of a [`ReliableMuxEndpoint`].
pub(crate) type ReliableMuxEnds = LcoreEnds<MuxCommand<ReliableOp>, MuxEvent<reliable::Event<Mbuf>>>;
/// The lcore's ends of a [`StreamMuxEndpoint`].
pub(crate) type StreamMuxEnds = LcoreEnds<MuxCommand<StreamOp>, MuxEvent<StreamDelivery>>;

/// Bytes in front of a packet being filled that name its connection.
const TAG_LEN: usize = 8;

/// The connection a packet being filled is for, and the packet without its tag (what the lcore
/// takes from the slot); `None` for a packet too short to carry a tag (never made by an endpoint).
pub(crate) fn untag(mut m: Mbuf) -> Option<(ConnHandle, Mbuf)> {
    let bits = u64::from_le_bytes(m.data().get(..TAG_LEN)?.try_into().ok()?);
    m.adjust(TAG_LEN).ok()?;
    Some((ConnHandle::from_bits(bits), m))
}

/// `Err` naming the state of `conn` when it takes no more sends; [`EndpointError::UnknownConnection`]
/// when its slot holds a newer connection.
#[inline]
fn check(shared: &Shared, conn: ConnHandle) -> Result<(), EndpointError> {
    match shared.status.state(conn.index(), conn.generation()) {
        Some(state) => refuse(state),
        None => Err(EndpointError::UnknownConnection),
    }
}

/// `conn`'s status, or [`EndpointError::UnknownConnection`].
fn status_of(shared: &Shared, conn: ConnHandle) -> Result<ConnStatus, EndpointError> {
    shared.status.status(conn.index(), conn.generation()).ok_or(EndpointError::UnknownConnection)
}

/// `conn`'s slot and generation, as the status board names them.
fn slot_of(conn: ConnHandle) -> (u32, u32) {
    (conn.index(), conn.generation())
}

/// Queues one more `open` (`queue`, retried up to `timeout`) when [`may_open`] allows it, and
/// counts it in `opens`.
fn request_open(
    shared: &Shared,
    opens: &Cell<u64>,
    timeout: Duration,
    queue: impl FnMut() -> Result<(), EndpointError>,
) -> Result<(), EndpointError> {
    may_open(shared, opens.get())?;
    retry(timeout, queue)?;
    opens.set(opens.get() + 1);
    Ok(())
}

/// After parking a partial packet: if the stage stopped meanwhile, nothing takes it any more: take
/// it back, count what it held for its connection (`units`, less the `own` this call added, which
/// fails) as unacknowledged, free it.
fn unpark_if_stopped(
    shared: &Shared,
    filling: &TaggedFilling,
    own: u64,
    units: impl FnOnce(&[u8]) -> u64,
) -> Result<(), EndpointError> {
    if !shared.status.is_stopped() {
        return Ok(());
    }
    if let Some((conn, m)) = filling.reclaim(shared) {
        let held = units(m.data().get(TAG_LEN..).unwrap_or_default());
        shared.status.add_unacknowledged(conn.index(), Some(conn.generation()), held.saturating_sub(own));
        return check(shared, conn).and(Err(EndpointError::Disconnected));
    }
    Err(EndpointError::Disconnected)
}

/// Records in a packet of packed messages.
fn records(payload: &[u8]) -> u64 {
    crate::wire::packed::count_records(payload).unwrap_or(1) as u64
}

/// Whether one more connection may be asked for, `requested` having been asked for before: a
/// listener opens none, a full table none (counting those asked for and not taken yet).
fn may_open(shared: &Shared, requested: u64) -> Result<(), EndpointError> {
    let board = &shared.status;
    if !board.is_dialer() {
        return Err(EndpointError::NotADialer);
    }
    let taken = board.opens_taken();
    let live = board.table_status().live;
    if live + requested.saturating_sub(taken) >= board.capacity() {
        return Err(EndpointError::TableFull);
    }
    Ok(())
}

/// The share of the pool an application may not take for new packets: what the lcore needs for
/// acknowledgements, Fins and retransmission copies of every connection. With thousands of
/// connections the application could otherwise fill every connection's send queue and leave the
/// table without a buffer to acknowledge with.
const POOL_RESERVE_DIVISOR: u32 = 8;

/// A fresh packet for `conn`, its tag written; [`EndpointError::NoBuffers`] when the pool is down
/// to its reserve.
fn tagged(pool: &Mempool, conn: ConnHandle) -> Result<Mbuf, EndpointError> {
    if pool.available() < pool.capacity() / POOL_RESERVE_DIVISOR {
        return Err(EndpointError::NoBuffers);
    }
    let mut m = pool.alloc().ok_or(EndpointError::NoBuffers)?;
    m.append(TAG_LEN).map_err(|_| EndpointError::NoBuffers)?.copy_from_slice(&conn.to_bits().to_le_bytes());
    Ok(m)
}

/// The packet being filled for one connection, shared by both table endpoints.
#[derive(Debug, Default)]
struct TaggedFilling {
    filling: Filling,
}

impl TaggedFilling {
    /// The packet being filled, taken back from the slot (or the cork), with its connection; the
    /// tag stays on it.
    fn reclaim(&self, shared: &Shared) -> Option<(ConnHandle, Mbuf)> {
        let m = self.filling.reclaim(&shared.open)?;
        let bits = u64::from_le_bytes(m.data().get(..TAG_LEN)?.try_into().ok()?);
        Some((ConnHandle::from_bits(bits), m))
    }

    /// Leaves the packet (tag in front) to the lcore, or keeps it while corked.
    fn park(&self, shared: &Shared, m: Mbuf) {
        if let Some(tag) = m.data().get(..TAG_LEN) {
            let bits = u64::from_le_bytes(tag.try_into().unwrap_or_default());
            shared.open_hint.store(bits, Ordering::Relaxed);
        }
        self.filling.park(&shared.open, m);
    }

    fn seen(&self) -> u32 {
        self.filling.seen.get()
    }
}

fn queue_op<Op, D>(
    ends: &AppEnds<MuxCommand<Op>, D>,
    filling: &TaggedFilling,
    op: MuxOp<Op>,
) -> Result<(), (EndpointError, Option<MuxOp<Op>>)> {
    match ends.send(MuxCommand { seen: filling.seen(), op }) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(cmd)) => Err((EndpointError::WouldBlock, Some(cmd.op))),
        Err(TrySendError::Disconnected(_)) => Err((EndpointError::Disconnected, None)),
    }
}

/// Queues a packet being filled (tag in front) as a command for its connection; on a full queue it
/// goes back to the slot, tag and all.
fn queue_filled<Op, D>(
    ends: &AppEnds<MuxCommand<Op>, D>,
    filling: &TaggedFilling,
    m: Mbuf,
    as_op: impl Fn(Mbuf) -> Op,
    back: impl Fn(Op) -> Option<Mbuf>,
) -> Result<(), EndpointError> {
    let Some((conn, m)) = untag(m) else { return Ok(()) };
    if m.data_len() == 0 {
        return Ok(());
    }
    queue_op(ends, filling, MuxOp::On(conn, as_op(m))).map_err(|(e, op)| {
        if let Some(MuxOp::On(conn, op)) = op {
            if let Some(mut m) = back(op) {
                if let Ok(tag) = m.prepend(TAG_LEN) {
                    tag.copy_from_slice(&conn.to_bits().to_le_bytes());
                    filling.park(&ends.shared, m);
                }
            }
        }
        e
    })
}

/// Queues the packet being filled (if any) ahead of what follows; on a full queue it stays.
fn flush_filling<Op, D>(
    ends: &AppEnds<MuxCommand<Op>, D>,
    filling: &TaggedFilling,
    as_op: impl Fn(Mbuf) -> Op,
    back: impl Fn(Op) -> Option<Mbuf>,
) -> Result<(), EndpointError> {
    let Some((_, m)) = filling.reclaim(&ends.shared) else { return Ok(()) };
    queue_filled(ends, filling, m, as_op, back)
}

/// The application's handle on a `reliable_mux` stage: whole messages on many connections.
///
/// ```no_run
/// # use rosette::pipeline::endpoint::{ReliableMuxEndpoint, EndpointError};
/// # fn serve(ep: &ReliableMuxEndpoint) -> Result<(), EndpointError> {
/// use rosette::channel::reliable::Event;
/// let ev = ep.recv(std::time::Duration::from_secs(1))?;
/// match ev.event {
///     Event::Connected => println!("connection {} opened", ev.conn.index()),
///     other => {
///         for message in other.messages() {
///             let len: usize = message.map(<[u8]>::len).sum();
///             ep.try_send(ev.conn, &len.to_le_bytes())?; // an answer on the same connection
///         }
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReliableMuxEndpoint {
    ends: AppEnds<MuxCommand<ReliableOp>, MuxEvent<reliable::Event<Mbuf>>>,
    filling: TaggedFilling,
    /// `open` requests queued.
    opens: Cell<u64>,
}

impl ReliableMuxEndpoint {
    pub(crate) fn register(
        name: &str,
        depth: usize,
        max_message: usize,
        mss: usize,
        max_connections: usize,
    ) -> ReliableMuxEnds {
        let (lcore, app) = queues(depth, max_message, mss, max_connections);
        register(
            name,
            Registered::ReliableMux(Box::new(ReliableMuxEndpoint {
                ends: app,
                filling: Default::default(),
                opens: Cell::new(0),
            })),
        );
        lcore
    }

    /// Takes the endpoint of the `reliable_mux` stage named `name`, waiting up to `timeout` for the
    /// stage to be constructed.
    pub fn connect(name: &str, timeout: Duration) -> Result<ReliableMuxEndpoint, EndpointError> {
        take_registered(name, timeout, EndpointKind::ReliableMux, |r| match r {
            Registered::ReliableMux(e) => Ok(*e),
            other => Err(other),
        })
    }

    fn flush_open(&self) -> Result<(), EndpointError> {
        flush_filling(&self.ends, &self.filling, ReliableOp::Packed, Self::packed_back)
    }

    fn queue(&self, op: MuxOp<ReliableOp>) -> Result<(), EndpointError> {
        self.flush_open()?;
        queue_op(&self.ends, &self.filling, op).map_err(|(e, _)| e)
    }

    fn packed_back(op: ReliableOp) -> Option<Mbuf> {
        match op {
            ReliableOp::Packed(m) => Some(m),
            _ => None,
        }
    }

    /// Queues a message for `conn` without waiting ([`EndpointError::WouldBlock`]: the queue to the
    /// lcore is full; retry). Small messages are packed ([`Self::try_send_with`]); a longer one is
    /// copied into a chain of mss-sized mbufs.
    pub fn try_send(&self, conn: ConnHandle, msg: &[u8]) -> Result<(), EndpointError> {
        if record_len(msg.len()) <= self.ends.shared.single_packet {
            return self.try_send_with(conn, msg.len(), |out| out.copy_from_slice(msg));
        }
        check(&self.ends.shared, conn)?;
        if msg.len() > self.ends.shared.max_payload {
            return Err(too_long_message(&self.ends.shared, msg.len()));
        }
        let pool = pool_of(&self.ends.shared)?;
        self.flush_open()?;
        let chain = to_mbufs(pool, msg, self.ends.shared.single_packet)?;
        queue_op(&self.ends, &self.filling, MuxOp::On(conn, ReliableOp::Message(chain))).map_err(|(e, _)| e)
    }

    /// Queues a message of `len` bytes for `conn` that `fill` writes straight into the packet that
    /// carries it (zero-copy), packed with the connection's neighbouring messages; `len` plus the
    /// 2-byte record header must fit the channel's mss.
    pub fn try_send_with(
        &self,
        conn: ConnHandle,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), EndpointError> {
        let need = record_len(len);
        let shared = &self.ends.shared;
        check(shared, conn)?;
        let mss = shared.single_packet;
        if need > mss || len > shared.max_payload {
            return Err(too_long_record(shared, len));
        }
        let pool = pool_of(shared)?;
        let mut open = None;
        if let Some((owner, m)) = self.filling.reclaim(shared) {
            if owner == conn && m.data_len() - TAG_LEN + need <= mss && m.tailroom() >= need {
                open = Some(m);
            } else {
                // Full, or another connection's: it goes to the lcore as it is first.
                queue_filled(&self.ends, &self.filling, m, ReliableOp::Packed, Self::packed_back)?;
            }
        }
        let mut m = match open {
            Some(m) => m,
            None => tagged(pool, conn)?,
        };
        let written = match m.append(need) {
            Ok(room) => emit_record(room, len).map(fill).is_ok(),
            Err(_) => false,
        };
        if !written {
            if m.data_len() >= TAG_LEN + need {
                let _ = m.trim(need);
            }
            if m.data_len() > TAG_LEN {
                self.filling.park(shared, m);
            }
            return Err(EndpointError::NoBuffers);
        }
        self.filling.park(shared, m);
        unpark_if_stopped(shared, &self.filling, 1, records)
    }

    /// Queues a message for `conn`, retrying while the queue is full, for up to `timeout`.
    pub fn send(&self, conn: ConnHandle, msg: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        retry(timeout, || match self.try_send(conn, msg) {
            Err(EndpointError::NoBuffers) => Err(EndpointError::WouldBlock),
            other => other,
        })
    }

    /// Asks a dialer to open one more connection; it shows itself as a `Connected` delivery.
    /// [`EndpointError::NotADialer`] on a listener; [`EndpointError::TableFull`] when the table holds
    /// `max_connections` with those asked for (an open the lcore still finds no room for — opens racing
    /// at the limit — is counted in [`TableStatus::open_refused`]).
    pub fn open(&self, timeout: Duration) -> Result<(), EndpointError> {
        request_open(&self.ends.shared, &self.opens, timeout, || self.queue(MuxOp::Open))
    }

    /// Closes `conn`'s sending side after its queued messages (the peer sees `PeerClosed`); later
    /// sends on it return [`EndpointError::Closed`]. Closing a connection that ended otherwise
    /// says how.
    pub fn close(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError> {
        close_direction(&self.ends.shared, slot_of(conn), timeout, || self.queue(MuxOp::On(conn, ReliableOp::Close)))
    }

    /// `conn`'s state and counters now, as the lcore last published them (at every event of the
    /// connection, and at once when it ends): see [`ConnStatus`]. When a send fails with the
    /// connection's end (or its `Failed` / `Reset` event arrives), `unacknowledged` says how many
    /// of the messages accepted for `conn` were never acknowledged, so a producer can send them
    /// again elsewhere. [`EndpointError::UnknownConnection`] once the table gave the slot to a
    /// newer connection (a linger of twice `max_rto`, 400 ms by default, after the end): the sum stays in
    /// [`Self::table_status`].
    pub fn status(&self, conn: ConnHandle) -> Result<ConnStatus, EndpointError> {
        status_of(&self.ends.shared, conn)
    }

    /// The table's counters over every connection it ever had, published by the lcore about
    /// every millisecond.
    pub fn table_status(&self) -> TableStatus {
        self.ends.shared.status.table_status()
    }

    /// Aborts `conn` (its queued and undelivered data is dropped; the peer sees a reset).
    pub fn reset(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError> {
        retry(timeout, || self.queue(MuxOp::On(conn, ReliableOp::Reset)))
    }

    /// Corks the endpoint, as [`ReliableEndpoint::cork`].
    pub fn cork(&self) {
        self.filling.filling.cork();
    }

    /// Ends a [`Self::cork`] (once the stage stopped, the partial packet's messages are counted as
    /// unacknowledged and it is freed).
    pub fn uncork(&self) {
        self.filling.filling.uncork(&self.ends.shared.open);
        let _ = unpark_if_stopped(&self.ends.shared, &self.filling, 0, records);
    }

    /// The next delivery of any connection, if there is one.
    pub fn try_recv(&self) -> Result<MuxEvent<reliable::Event<Mbuf>>, EndpointError> {
        self.ends.pull()
    }

    /// The next delivery of any connection, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<MuxEvent<reliable::Event<Mbuf>>, EndpointError> {
        self.ends.pull_timeout(timeout)
    }
}

/// The application's handle on a `streaming_mux` stage: byte streams on many connections.
/// Received bytes come as [`StreamDelivery::Data`] mbufs tagged with their connection, read in place.
#[derive(Debug)]
pub struct StreamMuxEndpoint {
    ends: AppEnds<MuxCommand<StreamOp>, MuxEvent<StreamDelivery>>,
    filling: TaggedFilling,
    /// `open` requests queued.
    opens: Cell<u64>,
}

impl StreamMuxEndpoint {
    pub(crate) fn register(name: &str, depth: usize, mss: usize, max_connections: usize) -> StreamMuxEnds {
        let (lcore, app) = queues(depth, usize::MAX, mss, max_connections);
        register(
            name,
            Registered::StreamMux(Box::new(StreamMuxEndpoint {
                ends: app,
                filling: Default::default(),
                opens: Cell::new(0),
            })),
        );
        lcore
    }

    /// Takes the endpoint of the `streaming_mux` stage named `name`, waiting up to `timeout`.
    pub fn connect(name: &str, timeout: Duration) -> Result<StreamMuxEndpoint, EndpointError> {
        take_registered(name, timeout, EndpointKind::StreamMux, |r| match r {
            Registered::StreamMux(e) => Ok(*e),
            other => Err(other),
        })
    }

    fn write_back(op: StreamOp) -> Option<Mbuf> {
        match op {
            StreamOp::Write(m) => Some(m),
            _ => None,
        }
    }

    fn flush_open(&self) -> Result<(), EndpointError> {
        flush_filling(&self.ends, &self.filling, StreamOp::Write, Self::write_back)
    }

    fn queue(&self, op: MuxOp<StreamOp>) -> Result<(), EndpointError> {
        self.flush_open()?;
        queue_op(&self.ends, &self.filling, op).map_err(|(e, _)| e)
    }

    /// Writes as much of `data` to `conn` as fits the packet being filled and the queue (at least one
    /// byte, or [`EndpointError::WouldBlock`]); returns the bytes taken.
    pub fn try_write(&self, conn: ConnHandle, data: &[u8]) -> Result<usize, EndpointError> {
        let shared = &self.ends.shared;
        check(shared, conn)?;
        if data.is_empty() {
            return Ok(0);
        }
        let mss = shared.single_packet;
        let pool = pool_of(shared)?;
        let mut taken = 0;
        let mut own = 0;
        while taken < data.len() {
            let mut open = None;
            if let Some((owner, m)) = self.filling.reclaim(shared) {
                if owner == conn && m.data_len() - TAG_LEN < mss && m.tailroom() > 0 {
                    open = Some(m);
                } else if let Err(e) = queue_filled(&self.ends, &self.filling, m, StreamOp::Write, Self::write_back) {
                    return if taken > 0 { Ok(taken) } else { Err(e) };
                }
            }
            let mut m = match open {
                Some(m) => m,
                None => match tagged(pool, conn) {
                    Ok(m) => m,
                    Err(_) if taken > 0 => return Ok(taken),
                    Err(e) => return Err(e),
                },
            };
            let n = (data.len() - taken).min(mss + TAG_LEN - m.data_len()).min(m.tailroom());
            match m.append(n) {
                Ok(room) => room.copy_from_slice(&data[taken..taken + n]),
                Err(_) => {
                    if m.data_len() > TAG_LEN {
                        self.filling.park(shared, m);
                    }
                    return if taken > 0 { Ok(taken) } else { Err(EndpointError::NoBuffers) };
                }
            }
            taken += n;
            own = n;
            self.filling.park(shared, m);
        }
        // `own`: this call's bytes in the packet parked last (earlier ones went to the queue).
        unpark_if_stopped(shared, &self.filling, own as u64, |bytes| bytes.len() as u64)?;
        Ok(taken)
    }

    /// Writes all of `data` to `conn`, retrying while the queue is full, for up to `timeout`.
    pub fn write_all(&self, conn: ConnHandle, mut data: &[u8], timeout: Duration) -> Result<(), EndpointError> {
        retry(timeout, || {
            while !data.is_empty() {
                match self.try_write(conn, data) {
                    Ok(n) => data = &data[n..],
                    Err(EndpointError::NoBuffers) => return Err(EndpointError::WouldBlock),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Asks a dialer to open one more connection; it shows itself as a `Connected` event. Refused
    /// as [`ReliableMuxEndpoint::open`] is.
    pub fn open(&self, timeout: Duration) -> Result<(), EndpointError> {
        request_open(&self.ends.shared, &self.opens, timeout, || self.queue(MuxOp::Open))
    }

    /// Ends `conn`'s direction after its written bytes (the peer reads end of stream); later
    /// writes on it return [`EndpointError::Closed`].
    pub fn finish(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError> {
        close_direction(&self.ends.shared, slot_of(conn), timeout, || self.queue(MuxOp::On(conn, StreamOp::Finish)))
    }

    /// `conn`'s state and counters now (see [`ReliableMuxEndpoint::status`]); `unacknowledged`
    /// counts stream bytes.
    pub fn status(&self, conn: ConnHandle) -> Result<ConnStatus, EndpointError> {
        status_of(&self.ends.shared, conn)
    }

    /// The table's counters over every connection it ever had.
    pub fn table_status(&self) -> TableStatus {
        self.ends.shared.status.table_status()
    }

    /// Aborts `conn`.
    pub fn reset(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError> {
        retry(timeout, || self.queue(MuxOp::On(conn, StreamOp::Reset)))
    }

    /// The next delivery (bytes, end of stream or an event) of any connection, if there is one.
    pub fn try_recv(&self) -> Result<MuxEvent<StreamDelivery>, EndpointError> {
        self.ends.pull()
    }

    /// The next delivery of any connection, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<MuxEvent<StreamDelivery>, EndpointError> {
        self.ends.pull_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_is_refused_by_a_listener_and_by_a_full_table() {
        let lcore = ReliableMuxEndpoint::register("open-test", 8, 100, 100, 2);
        let ep = ReliableMuxEndpoint::connect("open-test", Duration::ZERO).unwrap();
        assert_eq!(ep.open(Duration::ZERO), Err(EndpointError::NotADialer));
        lcore.shared.status.set_dialer(true);
        assert_eq!(ep.open(Duration::ZERO), Ok(()));
        assert_eq!(ep.open(Duration::ZERO), Ok(()));
        assert_eq!(ep.open(Duration::ZERO), Err(EndpointError::TableFull), "two asked for fill two slots");
        // The lcore took both: two live connections.
        lcore.shared.status.open_taken(1, false);
        lcore.shared.status.open_taken(2, false);
        assert_eq!(ep.open(Duration::ZERO), Err(EndpointError::TableFull));
        // One ended and left: room for one more.
        lcore.shared.status.publish_table(1, 2, [1, 0, 0, 0]);
        assert_eq!(ep.open(Duration::ZERO), Ok(()));
        lcore.shared.status.open_taken(2, false);
        lcore.shared.status.open_taken(2, true);
        assert_eq!(ep.table_status().open_refused, 1);
    }
}
