//! The reliable channel: messages delivered exactly once and in order, over UDP datagrams.
//!
//! A message of up to [`Config::max_message_size`] bytes is cut into packets of at most
//! [`Config::mss`] payload bytes; the last one carries the end-of-message flag. Messages small
//! enough to share a packet are *packed* ([`crate::wire::packed`]): a message sent while the newest
//! queued packet has not gone out yet is appended to it as one more record, so a burst of small
//! messages costs one header, one checksum and one acknowledgement per packet rather than per
//! message. Packing never waits: a packet leaves as soon as the congestion and flow windows let
//! it, holding whatever was queued by then. The connection
//! machinery (handshake with connection ids and epochs, SACK, RFC 6298 timer, congestion window,
//! flow control, drop counters) lives in [`crate::channel::conn`].
//!
//! # Calling contract (sans-IO, in the style of quinn-proto)
//! A [`Reliable`] owns no socket and reads no clock. The driver:
//! 1. passes every datagram received for this connection (the UDP payload) to
//!    [`Reliable::handle_datagram`];
//! 2. calls [`Reliable::poll_transmit`] until it returns `None` and sends each buffer as the
//!    payload of a UDP datagram to the peer (every buffer has at least
//!    [`Config::lower_headroom`] bytes of headroom for the UDP/IP/Ethernet headers);
//! 3. calls [`Reliable::handle_timeout`] once [`Reliable::poll_timeout`] is reached, then polls
//!    transmits again;
//! 4. drains [`Reliable::poll_event`] for connection events and delivered messages.
//!
//! Every entry point takes `now`, which must never go backwards. After any call that takes input
//! (`handle_datagram`, `handle_timeout`, `send`, `close`, `reset`, `poll_event`) the driver should
//! poll transmits and the timeout again.
//!
//! # Buffers
//! The channel owns its [`BufPool`] and allocates every outgoing packet from it. Sent packets are
//! kept for retransmission and handed to the driver through [`PacketBuf::share`], so a
//! retransmission copies nothing (unless the previous transmission is still held, then it copies
//! once). A received message that fits one packet is delivered as the received buffer itself with
//! the transport header removed by [`PacketBuf::adjust`]; a longer one as its received buffers
//! chained in order behind one handle ([`Message`], [`PacketBuf::chain`]), never reassembled by
//! copying and with no heap allocation; several messages that arrived packed in one packet as that
//! packet ([`Packed`]), read in place. [`Event::messages`] reads any delivery in place.
//! [`Reliable::send_with`] lets the caller write a message straight into the packet that carries it;
//! [`Reliable::send_packed`] takes a packet of records the caller wrote itself, and
//! [`Reliable::send_chain`] a message as a chain of mss-sized buffers that become its packets — both
//! without a copy. A multi-packet [`Reliable::send`] queues its segments directly (a dry pool takes
//! them back out), with no per-message vector.
//!
//! # Connections
//! One `Reliable` is one connection. An initiator is made by [`Reliable::connect`], an acceptor by
//! [`Reliable::listen`]; demultiplexing datagrams to connections (by address and connection id) is
//! the lower layer's job. A listener whose peer restarts (a Syn with a newer epoch) reports
//! [`Event::Reset`] with [`ResetReason::PeerRestarted`], discards everything of the old connection
//! and accepts the new one; packets of the old epoch are dropped and counted as stale.
#![forbid(unsafe_code)]

use core::fmt;

use crate::buf::{BufPool, PacketBuf, Segments};
use crate::channel::conn::{Config, Core, CoreEvent, Outcome, ResetReason, State, Stats, Unacknowledged};
use crate::channel::time::Instant;
use crate::wire::packed::{self, record_len, Records, RECORD_HEADER_LEN};
use crate::wire::transport::{PacketType, FLAG_END_OF_MESSAGE, FLAG_PACKED};

/// A delivered message: its received buffers in order, chained behind one handle
/// ([`PacketBuf::chain`]), each segment holding only payload.
///
/// Nothing is allocated from the heap for a message of any size: a one-packet message is the received
/// buffer itself, a longer one its received buffers linked as one chain (for mbufs, DPDK's segment
/// list).
#[derive(Debug)]
pub struct Message<B> {
    buf: B,
}

impl<B: PacketBuf> Message<B> {
    /// Total payload bytes.
    pub fn len(&self) -> usize {
        self.buf.total_len()
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload of each segment, in order (read in place).
    pub fn segments(&self) -> Segments<'_, B> {
        Segments::new(&self.buf)
    }

    /// The single buffer of a one-packet message, or the message back.
    pub fn into_single(self) -> Result<B, Self> {
        if self.buf.segment_count() == 1 {
            Ok(self.buf)
        } else {
            Err(self)
        }
    }

    /// The whole message as one (possibly chained) buffer.
    pub fn into_buf(self) -> B {
        self.buf
    }

    /// The segments as separate buffers (a convenience that allocates the vector).
    pub fn into_segments(self) -> Vec<B> {
        let mut v = Vec::with_capacity(self.buf.segment_count());
        let mut rest = Some(self.buf);
        while let Some(buf) = rest.take() {
            match buf.split_first() {
                Ok((first, tail)) => {
                    v.push(first);
                    rest = tail;
                }
                Err(whole) => v.push(whole),
            }
        }
        v
    }

    /// Appends the payload to `out` (a copy, for convenience).
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        for s in self.segments() {
            out.extend_from_slice(s);
        }
    }
}

/// Several complete messages that arrived packed in one packet, in the order they were sent.
///
/// Holds the received buffer itself; [`Packed::iter`] reads the messages in place (no copy). The
/// records were checked when the packet was taken from the connection.
#[derive(Debug)]
pub struct Packed<B> {
    buf: B,
    count: usize,
}

impl<B: PacketBuf> Packed<B> {
    /// Number of messages (at least two).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a packed delivery holds at least two messages.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The messages, in order.
    pub fn iter(&self) -> Records<'_> {
        Records::new_unchecked(self.buf.data(), self.count)
    }

    /// The packet buffer, holding the records ([`crate::wire::packed`]).
    pub fn into_buf(self) -> B {
        self.buf
    }
}

/// What the reliable channel reports.
#[derive(Debug)]
pub enum Event<B> {
    /// The handshake completed (acceptor: a Syn was accepted).
    Connected,
    /// A complete message, in order, exactly once.
    Message(Message<B>),
    /// Several complete messages that shared one packet, in order, exactly once.
    Messages(Packed<B>),
    /// The peer closed its sending side; no more messages will come.
    PeerClosed,
    /// Both sides closed and our close was acknowledged.
    Closed,
    /// The connection was reset; undelivered data of it is discarded.
    Reset(ResetReason),
    /// Retransmissions gave up (too many backoffs or no progress for too long).
    Failed,
}

impl<B: PacketBuf> Event<B> {
    /// The messages of this delivery, in order, each as its segments read in place: one for
    /// [`Event::Message`], every record of [`Event::Messages`], none for connection events. No copy,
    /// no allocation:
    /// ```
    /// # use rosette_proto::channel::reliable::Event;
    /// # use rosette_proto::buf::VecBuf;
    /// fn total_bytes(ev: &Event<VecBuf>) -> usize {
    ///     ev.messages().map(|segments| segments.map(<[u8]>::len).sum::<usize>()).sum()
    /// }
    /// ```
    pub fn messages(&self) -> DeliveredMessages<'_, B> {
        match self {
            Event::Message(m) => DeliveredMessages::One(Some(&m.buf)),
            Event::Messages(p) => DeliveredMessages::Packed(p.iter()),
            _ => DeliveredMessages::One(None),
        }
    }
}

/// The messages of one delivery ([`Event::messages`]).
#[derive(Debug, Clone)]
pub enum DeliveredMessages<'a, B> {
    /// A single (possibly multi-segment) message, until taken.
    One(Option<&'a B>),
    /// The records of a packed packet.
    Packed(Records<'a>),
}

impl<'a, B: PacketBuf> Iterator for DeliveredMessages<'a, B> {
    type Item = MessageSegments<'a, B>;
    fn next(&mut self) -> Option<MessageSegments<'a, B>> {
        match self {
            DeliveredMessages::One(m) => m.take().map(|b| MessageSegments::Chain(Segments::new(b))),
            DeliveredMessages::Packed(r) => r.next().map(|rec| MessageSegments::Record(Some(rec))),
        }
    }
}

/// One delivered message as its segments, in order ([`Event::messages`]).
#[derive(Debug, Clone)]
pub enum MessageSegments<'a, B> {
    /// The segments of a received buffer chain.
    Chain(Segments<'a, B>),
    /// One record of a packed packet, until taken.
    Record(Option<&'a [u8]>),
}

impl<'a, B: PacketBuf> Iterator for MessageSegments<'a, B> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            MessageSegments::Chain(s) => s.next(),
            MessageSegments::Record(r) => r.take(),
        }
    }
}

/// Why a message was not accepted for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The send queue is full: retry after acknowledgements free room (back-pressure).
    WouldBlock,
    /// Larger than [`Config::max_message_size`].
    TooLarge,
    /// The connection is closed, reset, failed, or already closed for sending.
    Closed,
    /// The buffer pool is exhausted.
    NoBuffers,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::WouldBlock => "send queue full",
            SendError::TooLarge => "message larger than the configured maximum",
            SendError::Closed => "connection closed",
            SendError::NoBuffers => "packet buffer pool exhausted",
        })
    }
}

impl std::error::Error for SendError {}

/// Appends a `len`-byte record to a packet buffer and lets `fill` write the message into it.
fn append_record<B: PacketBuf>(buf: &mut B, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SendError> {
    let room = buf.append(record_len(len)).map_err(|_| SendError::NoBuffers)?;
    fill(packed::emit_record(room, len).map_err(|_| SendError::TooLarge)?);
    Ok(())
}

/// One reliable message connection. See the module documentation for the calling contract.
pub struct Reliable<P: BufPool> {
    core: Core<P>,
    peer_closed_reported: bool,
}

impl<P: BufPool> Reliable<P> {
    /// An initiator that sends its Syn on the first [`Reliable::poll_transmit`].
    ///
    /// `local_id` names this connection in the peer's packets (non-zero); `epoch` must grow each
    /// time this endpoint restarts (a boot counter or a start time), so the peer can detect it.
    ///
    /// # Panics
    /// If `cfg` fails [`Config::validate`] or `local_id` is zero.
    pub fn connect(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        cfg.validate().expect("invalid reliable channel configuration");
        assert_ne!(local_id, 0, "connection id 0 is reserved");
        Reliable { core: Core::connect(cfg, pool, local_id, epoch, now), peer_closed_reported: false }
    }

    /// An acceptor that waits for a Syn. See [`Reliable::connect`] for the arguments.
    ///
    /// # Panics
    /// If `cfg` fails [`Config::validate`] or `local_id` is zero.
    pub fn listen(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        cfg.validate().expect("invalid reliable channel configuration");
        assert_ne!(local_id, 0, "connection id 0 is reserved");
        Reliable { core: Core::listen(cfg, pool, local_id, epoch, now), peer_closed_reported: false }
    }

    /// A reliable connection around a connection engine (a table's accepted connection).
    pub(crate) fn from_core(core: Core<P>) -> Self {
        Reliable { core, peer_closed_reported: false }
    }

    pub(crate) fn core(&self) -> &Core<P> {
        &self.core
    }

    pub(crate) fn core_mut(&mut self) -> &mut Core<P> {
        &mut self.core
    }

    /// Queues a message, copying it into pool buffers. May be called before the handshake ends.
    ///
    /// A message that fits a packet with its record header is packed with its neighbours
    /// ([`Reliable::send_with`]); a longer one is cut into packets of its own.
    pub fn send(&mut self, now: Instant, msg: &[u8]) -> Result<(), SendError> {
        if record_len(msg.len()) <= self.core.config().mss {
            return self.send_with(now, msg.len(), |out| out.copy_from_slice(msg));
        }
        let cfg = self.core.config();
        if msg.len() > cfg.max_message_size {
            return Err(SendError::TooLarge);
        }
        if !self.core.can_send() {
            return Err(SendError::Closed);
        }
        let mss = cfg.mss;
        let packets = msg.len().div_ceil(mss).max(1);
        if self.core.send_space() < packets {
            return Err(SendError::WouldBlock);
        }
        // Segments go straight into the send queue (no per-message vector); a dry pool takes the
        // ones already queued back out, so no half-queued message is left behind.
        for (i, chunk) in msg.chunks(mss).enumerate() {
            let Some(mut buf) = self.core.alloc_segment() else {
                self.core.stats_mut().pool_empty += 1;
                self.core.unpush(i);
                return Err(SendError::NoBuffers);
            };
            match buf.append(chunk.len()) {
                Ok(d) => d.copy_from_slice(chunk),
                Err(_) => {
                    self.core.unpush(i);
                    return Err(SendError::NoBuffers);
                }
            }
            let flags = if i + 1 == packets { FLAG_END_OF_MESSAGE } else { 0 };
            self.core.push(buf, PacketType::Data, flags);
        }
        Ok(())
    }

    /// Queues a message of `len` bytes that `fill` writes straight into the packet carrying it: the
    /// newest queued packet when it has not been sent and has room, else a new packet. No copy.
    ///
    /// `fill` gets exactly `len` bytes (their previous content is unspecified) and is called only
    /// when the message is accepted. `len` plus the 2-byte record header must fit [`Config::mss`].
    pub fn send_with(&mut self, _now: Instant, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SendError> {
        let cfg = self.core.config();
        let need = record_len(len);
        if need > cfg.mss || len > cfg.max_message_size {
            return Err(SendError::TooLarge);
        }
        if !self.core.can_send() {
            return Err(SendError::Closed);
        }
        if let Some(buf) = self.core.last_unsent_packed(need) {
            append_record(buf, len, fill)?;
            self.core.stats_mut().packed += 1;
            return Ok(());
        }
        if self.core.send_space() == 0 {
            return Err(SendError::WouldBlock);
        }
        let Some(mut buf) = self.core.alloc_segment() else {
            self.core.stats_mut().pool_empty += 1;
            return Err(SendError::NoBuffers);
        };
        append_record(&mut buf, len, fill)?;
        self.core.push(buf, PacketType::Data, FLAG_END_OF_MESSAGE | FLAG_PACKED);
        Ok(())
    }

    /// Queues a one-packet message given as a buffer holding the payload (zero-copy when the buffer
    /// has room for the transport and lower headers in front, else copied once).
    pub fn send_buf(&mut self, _now: Instant, buf: P::Buf) -> Result<(), SendError> {
        if buf.len() > self.core.config().mss || buf.len() > self.core.config().max_message_size {
            return Err(SendError::TooLarge);
        }
        if !self.core.can_send() {
            return Err(SendError::Closed);
        }
        if self.core.send_space() == 0 {
            return Err(SendError::WouldBlock);
        }
        let Ok(buf) = self.core.wrap_payload(buf) else {
            self.core.stats_mut().pool_empty += 1;
            return Err(SendError::NoBuffers);
        };
        self.core.push(buf, PacketType::Data, FLAG_END_OF_MESSAGE);
        Ok(())
    }

    /// Queues a packet's worth of messages already written as packed records ([`crate::wire::packed`])
    /// into `buf` (payload only, headroom in front): the buffer becomes the packet, nothing is copied
    /// (unless it lacks headroom for the headers). Later small sends may still be packed behind its
    /// records while it waits to go out. Returns the number of messages it held.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] when the records exceed [`Config::mss`] or are not well-formed records
    /// (the buffer is dropped: a local caller's bug, not a peer's).
    pub fn send_packed(&mut self, _now: Instant, buf: P::Buf) -> Result<usize, SendError> {
        if buf.len() > self.core.config().mss || buf.segment_count() != 1 {
            return Err(SendError::TooLarge);
        }
        let count = packed::count_records(buf.data()).map_err(|_| SendError::TooLarge)?;
        if !self.core.can_send() {
            return Err(SendError::Closed);
        }
        if self.core.send_space() == 0 {
            return Err(SendError::WouldBlock);
        }
        let Ok(buf) = self.core.wrap_payload(buf) else {
            self.core.stats_mut().pool_empty += 1;
            return Err(SendError::NoBuffers);
        };
        self.core.stats_mut().packed += count as u64 - 1;
        self.core.push(buf, PacketType::Data, FLAG_END_OF_MESSAGE | FLAG_PACKED);
        Ok(count)
    }

    /// Queues one message given as a chain of buffers ([`PacketBuf::chain`]), each segment holding at
    /// most [`Config::mss`] payload bytes with headroom in front: every segment becomes one packet
    /// of the message, nothing is copied (a segment without headroom is copied once).
    ///
    /// # Errors
    /// [`SendError::TooLarge`] for a message over [`Config::max_message_size`] or a segment over the
    /// mss; [`SendError::WouldBlock`] when the send queue lacks room for every segment (nothing is
    /// queued; the buffer is dropped with the error, so check [`Reliable::send_space`] first).
    pub fn send_chain(&mut self, _now: Instant, buf: P::Buf) -> Result<(), SendError> {
        let cfg = self.core.config();
        let (mss, max) = (cfg.mss, cfg.max_message_size);
        let packets = buf.segment_count();
        if buf.total_len() > max || (0..packets).any(|i| buf.segment(i).is_some_and(|s| s.len() > mss)) {
            return Err(SendError::TooLarge);
        }
        if !self.core.can_send() {
            return Err(SendError::Closed);
        }
        if self.core.send_space() < packets {
            return Err(SendError::WouldBlock);
        }
        let mut rest = Some(buf);
        let mut queued = 0;
        while let Some(chain) = rest.take() {
            let Ok((seg, tail)) = chain.split_first() else {
                self.core.unpush(queued);
                return Err(SendError::NoBuffers);
            };
            let Ok(seg) = self.core.wrap_payload(seg) else {
                self.core.stats_mut().pool_empty += 1;
                self.core.unpush(queued);
                return Err(SendError::NoBuffers);
            };
            let flags = if tail.is_none() { FLAG_END_OF_MESSAGE } else { 0 };
            self.core.push(seg, PacketType::Data, flags);
            queued += 1;
            rest = tail;
        }
        Ok(())
    }

    /// True while a queued packet has not been transmitted yet (a sender that packs should keep
    /// filling its own partial packet meanwhile; once this is false, the connection has caught up).
    pub fn has_unsent(&self) -> bool {
        self.core.has_unsent()
    }

    /// Closes the sending side after every queued message (the peer sees `PeerClosed`). False when
    /// the pool had no buffer for the Fin: nothing changed, call again later. True also when there
    /// is nothing to close (already closed, reset or failed).
    pub fn close(&mut self, _now: Instant) -> bool {
        !self.core.can_send() || self.core.finish()
    }

    /// Aborts the connection at once and tells the peer; queued and undelivered data is dropped.
    pub fn reset(&mut self, _now: Instant) {
        self.core.reset();
    }

    /// Processes one received datagram (the UDP payload of a packet for this connection).
    pub fn handle_datagram(&mut self, now: Instant, buf: P::Buf) {
        self.core.handle(now, buf);
    }

    /// The next datagram to send, or `None` when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        self.core.poll_transmit(now)
    }

    /// [`Reliable::poll_transmit`] with the lower layers' headers written in place: `encapsulate` gets
    /// each data-bearing packet's buffer (transport header first, headroom in front) before the
    /// channel keeps a reference for retransmission, prepends its headers and returns how many bytes
    /// it prepended (0 if it could not). The packet then leaves as one buffer, not a header buffer
    /// chained to a shared payload. Acknowledgements and resets come back bare, without a call to
    /// `encapsulate`: the driver knows which it got by whether its closure ran.
    pub fn poll_transmit_with(
        &mut self,
        now: Instant,
        encapsulate: impl FnOnce(&mut P::Buf) -> usize,
    ) -> Option<P::Buf> {
        self.core.poll_transmit_with(now, encapsulate)
    }

    /// When [`Reliable::handle_timeout`] must next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Runs the timers that expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// The next event: connection events first, then complete messages in order.
    pub fn poll_event(&mut self) -> Option<Event<P::Buf>> {
        if let Some(ev) = self.core.poll_core_event() {
            return Some(match ev {
                CoreEvent::Connected => Event::Connected,
                CoreEvent::Reset(r) => {
                    self.peer_closed_reported = false;
                    Event::Reset(r)
                }
                CoreEvent::Failed => Event::Failed,
            });
        }
        if self.core.ready_marks() > 0 {
            let first = self.core.pop_ready()?;
            if first.kind == PacketType::Fin {
                self.core.on_consumed();
                self.peer_closed_reported = true;
                return Some(Event::PeerClosed);
            }
            if first.flags & FLAG_PACKED != 0 {
                self.core.on_consumed();
                let mut buf = first.buf;
                return match packed::count_records(buf.data()) {
                    // One record: delivered as a plain message, its record header stripped in place.
                    Ok(1) if buf.adjust(RECORD_HEADER_LEN).is_ok() => Some(Event::Message(Message { buf })),
                    Ok(count) if count > 1 => Some(Event::Messages(Packed { buf, count })),
                    _ => {
                        // Well checksummed but not records: a broken or hostile peer. Drop, count.
                        self.core.stats_mut().drops.malformed += 1;
                        self.poll_event()
                    }
                };
            }
            // The segments of a longer message are chained behind the first (no heap allocation).
            let mut msg = first.buf;
            let mut end = first.flags & FLAG_END_OF_MESSAGE != 0;
            while !end {
                let Some(seg) = self.core.pop_ready() else {
                    break;
                };
                end = seg.is_mark();
                msg = match msg.chain(seg.buf) {
                    Ok(chained) => chained,
                    Err((head, tail)) => {
                        // Cannot happen for buffers the receive path unshared; never panic: the
                        // message is lost, counted, and the connection stops (it can no longer
                        // promise exactly once).
                        drop((head, tail));
                        self.core.stats_mut().drops.malformed += 1;
                        self.core.reset();
                        self.core.reset_connection(ResetReason::ProtocolViolation);
                        return self.poll_event();
                    }
                };
            }
            self.core.on_consumed();
            return Some(Event::Message(Message { buf: msg }));
        }
        if self.core.ready().len() >= self.core.config().recv_capacity {
            // A message larger than our whole receive buffer can never complete.
            self.core.reset();
            self.core.reset_connection(ResetReason::ProtocolViolation);
            return self.poll_event();
        }
        if self.core.take_closed() {
            return Some(Event::Closed);
        }
        None
    }

    /// Messages' worth of packets that can still be queued.
    pub fn send_space(&self) -> usize {
        self.core.send_space()
    }

    /// Packets held by the sender (queued or unacknowledged).
    pub fn send_queue_len(&self) -> usize {
        self.core.send_queue_len()
    }

    /// Packets held by the receiver (out of order or not yet polled).
    pub fn recv_held(&self) -> usize {
        self.core.recv_held()
    }

    /// Connection state.
    pub fn state(&self) -> State {
        self.core.state()
    }

    /// True once the peer's close was delivered.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed_reported && self.core.peer_finished()
    }

    /// Counters, including per-reason receive drops.
    pub fn stats(&self) -> &Stats {
        self.core.stats()
    }

    /// How the connection ended ([`Outcome`]); `None` while it lives or waits for its peer.
    pub fn outcome(&self) -> Option<Outcome> {
        self.core.outcome()
    }

    /// What this connection dropped unacknowledged when it ended (reset, failed, aborted), over its
    /// life: the messages the application handed over that the peer never acknowledged.
    pub fn abandoned(&self) -> Unacknowledged {
        self.core.abandoned()
    }

    /// What the connection holds now that the peer has not acknowledged yet.
    pub fn unacknowledged(&self) -> Unacknowledged {
        self.core.unacknowledged()
    }

    /// Current congestion window, packets.
    pub fn cwnd(&self) -> u32 {
        self.core.cwnd()
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> core::time::Duration {
        self.core.rto()
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<core::time::Duration> {
        self.core.srtt()
    }

    /// The sender's view of the path: congestion window, RTTs, RTO.
    pub fn path(&self) -> crate::channel::conn::PathStats {
        self.core.path()
    }

    /// This endpoint's epoch.
    pub fn epoch(&self) -> u32 {
        self.core.local_epoch()
    }

    /// The buffer pool (e.g. to check how many buffers are out).
    pub fn pool(&self) -> &P {
        self.core.pool()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{VecBuf, VecPool};
    use crate::channel::conn::{ResetReason, State};
    use core::time::Duration;

    fn pair() -> (Reliable<VecPool>, Reliable<VecPool>) {
        let now = Instant::default();
        let a = Reliable::connect(Config::default(), VecPool::default(), 1, 1, now);
        let b = Reliable::listen(Config::default(), VecPool::default(), 2, 1, now);
        (a, b)
    }

    /// Moves packets both ways until quiet, without loss.
    fn exchange(a: &mut Reliable<VecPool>, b: &mut Reliable<VecPool>, now: Instant) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(p) = a.poll_transmit(now) {
                b.handle_datagram(now, p);
                moved = true;
            }
            while let Some(p) = b.poll_transmit(now) {
                a.handle_datagram(now, p);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    #[test]
    fn handshake_message_and_close() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(1000);
        a.send(now, b"hello").unwrap();
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        a.send(now, &big).unwrap();
        a.close(now);
        exchange(&mut a, &mut b, now);
        assert!(matches!(a.poll_event(), Some(Event::Connected)));
        assert!(matches!(b.poll_event(), Some(Event::Connected)));
        let Some(Event::Message(m)) = b.poll_event() else { panic!() };
        let single = m.into_single().unwrap();
        assert_eq!(single.data(), b"hello");
        let Some(Event::Message(m)) = b.poll_event() else { panic!() };
        assert_eq!(m.segments().count(), 4);
        let mut v = Vec::new();
        m.copy_to(&mut v);
        assert_eq!(v, big);
        assert!(matches!(b.poll_event(), Some(Event::PeerClosed)));
        b.close(now);
        exchange(&mut a, &mut b, now);
        assert!(matches!(a.poll_event(), Some(Event::PeerClosed)));
        assert!(matches!(a.poll_event(), Some(Event::Closed)));
        assert!(matches!(b.poll_event(), Some(Event::Closed)));
    }

    /// The lone packet is lost, then its tail-loss probe too (RFC 8985 §7): the RTO, last, repairs it.
    #[test]
    fn lost_packet_and_lost_probe_are_repaired_by_the_rto() {
        let (mut a, mut b) = pair();
        let mut now = Instant::from_nanos(1000);
        exchange(&mut a, &mut b, now);
        a.send(now, b"x").unwrap();
        drop(a.poll_transmit(now).unwrap());
        assert!(a.poll_transmit(now).is_none());
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        drop(a.poll_transmit(now).expect("the tail-loss probe"));
        assert_eq!((a.stats().tail_probes, a.stats().timeouts), (1, 0));
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        exchange(&mut a, &mut b, now);
        assert_eq!(a.stats().timeouts, 1);
        assert_eq!(a.stats().retransmits, 2);
        let _ = b.poll_event();
        assert!(matches!(b.poll_event(), Some(Event::Message(_))));
    }

    #[test]
    fn blackhole_ends_in_failure_within_bound() {
        let (mut a, _b) = pair();
        let mut now = Instant::from_nanos(1000);
        let _syn = a.poll_transmit(now);
        let mut steps = 0;
        while let Some(t) = a.poll_timeout() {
            now = t;
            a.handle_timeout(now);
            while a.poll_transmit(now).is_some() {}
            steps += 1;
            assert!(steps < 100);
        }
        assert!(matches!(a.poll_event(), Some(Event::Failed)));
        assert!(now.as_nanos() <= Duration::from_secs(11).as_nanos() as u64);
    }

    /// A connection whose peer dies tells how many of the messages handed to it were never
    /// acknowledged: what the peer acknowledged before it died is not counted, every record of a
    /// packed packet and every longer message still held is.
    #[test]
    fn a_failed_connection_counts_the_messages_it_dropped() {
        let (mut a, mut b) = pair();
        let mut now = Instant::from_nanos(1000);
        a.send(now, b"acknowledged").unwrap();
        exchange(&mut a, &mut b, now);
        assert_eq!(a.unacknowledged(), Unacknowledged::default());
        // Three small messages packed into one packet, one of 3000 bytes in three packets.
        for m in [&b"one"[..], b"two", b"three"] {
            a.send(now, m).unwrap();
        }
        a.send(now, &[7; 3000]).unwrap();
        assert_eq!(a.unacknowledged().messages, 4);
        assert_eq!(a.unacknowledged().packets, 4);
        assert_eq!(a.unacknowledged().bytes, (2 + 3) + (2 + 3) + (2 + 5) + 3000);
        // The peer is gone: what is sent goes nowhere, nothing comes back.
        while a.poll_transmit(now).is_some() {}
        while let Some(t) = a.poll_timeout() {
            now = t;
            a.handle_timeout(now);
            while a.poll_transmit(now).is_some() {}
        }
        assert_eq!(a.outcome(), Some(Outcome::Failed));
        assert_eq!(a.abandoned().messages, 4);
        assert_eq!(a.abandoned().packets, 4);
        assert_eq!(a.send(now, b"after"), Err(SendError::Closed));
    }

    #[test]
    fn an_orderly_close_abandons_nothing_and_a_reset_counts_what_it_dropped() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(1000);
        a.send(now, b"x").unwrap();
        a.close(now);
        exchange(&mut a, &mut b, now);
        b.close(now);
        exchange(&mut a, &mut b, now);
        while a.poll_event().is_some() {}
        assert_eq!(a.outcome(), Some(Outcome::Closed));
        assert_eq!(a.abandoned(), Unacknowledged::default());
        let (mut a, mut b) = pair();
        exchange(&mut a, &mut b, now);
        a.send(now, b"y").unwrap();
        a.reset(now);
        assert_eq!(a.outcome(), Some(Outcome::Aborted));
        assert_eq!(a.abandoned().messages, 1);
        exchange(&mut a, &mut b, now);
        while b.poll_event().is_some() {}
        assert_eq!(b.outcome(), Some(Outcome::Reset(ResetReason::PeerReset)));
    }

    #[test]
    fn back_pressure_and_size_limit() {
        let cfg = Config { send_capacity: 4, recv_capacity: 8, max_message_size: 2800, ..Config::default() };
        let mut a = Reliable::connect(cfg, VecPool::default(), 1, 1, Instant::default());
        let now = Instant::default();
        assert_eq!(a.send(now, &[0; 3000]), Err(SendError::TooLarge));
        a.send(now, &[0; 2800]).unwrap(); // Syn + 2 packets
        assert_eq!(a.send(now, &[0; 2000]), Err(SendError::WouldBlock));
        a.send(now, b"1").unwrap();
        // The queue is full, but a small message still fits the unsent packet before it.
        a.send(now, b"2").unwrap();
        assert_eq!(a.stats().packed, 1);
        assert_eq!(a.send(now, &[0; 1400]), Err(SendError::WouldBlock));
    }

    /// Collects every delivered message's bytes, whether plain or packed.
    fn drain_messages(b: &mut Reliable<VecPool>, out: &mut Vec<Vec<u8>>, packed_deliveries: &mut usize) {
        while let Some(ev) = b.poll_event() {
            match ev {
                Event::Message(m) => {
                    let mut v = Vec::new();
                    m.copy_to(&mut v);
                    out.push(v);
                }
                Event::Messages(p) => {
                    *packed_deliveries += 1;
                    assert!(p.len() >= 2 && !p.is_empty());
                    assert_eq!(p.iter().len(), p.len());
                    out.extend(p.iter().map(<[u8]>::to_vec));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn small_messages_share_packets_and_arrive_in_order() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(5);
        exchange(&mut a, &mut b, now);
        let sent: Vec<Vec<u8>> = (0..100u32).map(|i| vec![i as u8; 1 + (i as usize * 7) % 90]).collect();
        for m in &sent {
            a.send(now, m).unwrap();
        }
        // A message too large to pack goes alone, and the next small one starts a new packet.
        let big = vec![0xAB; 3000];
        a.send(now, &big).unwrap();
        a.send(now, b"after").unwrap();
        let packets_before = a.stats().tx_packets;
        exchange(&mut a, &mut b, now);
        let data_packets = a.stats().tx_packets - packets_before;
        let bytes: usize = sent.iter().map(|m| m.len() + 2).sum();
        assert!(data_packets <= (bytes.div_ceil(1400) + 3 + 1) as u64, "{data_packets} packets");
        assert!(a.stats().packed >= 90);
        let mut got = Vec::new();
        let mut packed = 0;
        drain_messages(&mut b, &mut got, &mut packed);
        assert!(packed >= 1);
        let mut want = sent.clone();
        want.push(big);
        want.push(b"after".to_vec());
        assert_eq!(got, want);
    }

    #[test]
    fn send_with_writes_in_place_and_a_lone_record_arrives_as_a_plain_message() {
        let now = Instant::from_nanos(5);
        // The sender's pool allows its Syn, its Ack and one data packet: three messages must share it.
        let mut a = Reliable::connect(Config::default(), VecPool::default().with_limit(3), 1, 1, now);
        let mut b = Reliable::listen(Config::default(), VecPool::default(), 2, 1, now);
        exchange(&mut a, &mut b, now);
        for i in 0..3u8 {
            a.send_with(now, 4, |out| out.copy_from_slice(&[i; 4])).unwrap();
        }
        assert_eq!(a.send_with(now, 1399, |_| {}), Err(SendError::TooLarge));
        exchange(&mut a, &mut b, now);
        let mut got = Vec::new();
        let mut packed = 0;
        drain_messages(&mut b, &mut got, &mut packed);
        assert_eq!((got, packed), (vec![vec![0; 4], vec![1; 4], vec![2; 4]], 1));
        // Once sent, the packet takes no more records: a lone message goes in a packet of its own
        // and is delivered as the received buffer with both headers stripped in place.
        let (mut a, mut b) = pair();
        exchange(&mut a, &mut b, now);
        a.send(now, b"lone").unwrap();
        exchange(&mut a, &mut b, now);
        let _ = b.poll_event();
        let Some(Event::Message(m)) = b.poll_event() else { panic!("no message") };
        assert_eq!(m.into_single().unwrap().data(), b"lone");
    }

    #[test]
    fn lower_headers_written_in_place_are_stripped_before_a_retransmission() {
        let (mut a, mut b) = pair();
        let mut now = Instant::from_nanos(5);
        exchange(&mut a, &mut b, now);
        while b.poll_event().is_some() {}
        a.send(now, b"payload").unwrap();
        let frame = |a: &mut Reliable<VecPool>, now| {
            let mut calls = 0;
            let out = a
                .poll_transmit_with(now, |buf| {
                    calls += 1;
                    buf.prepend(8).unwrap().copy_from_slice(b"LOWERHDR");
                    8
                })
                .unwrap();
            assert_eq!(calls, 1);
            assert_eq!(&out.data()[..8], b"LOWERHDR");
            out
        };
        drop(frame(&mut a, now)); // lost
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        // Retransmitted with exactly one set of lower headers, while the first frame is still held.
        let second = frame(&mut a, now);
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        let third = frame(&mut a, now);
        assert_eq!(second.data(), third.data());
        assert_eq!(a.stats().retransmits, 2);
        b.handle_datagram(now, VecBuf::from_slice(&third.data()[8..]));
        let mut got = Vec::new();
        drain_messages(&mut b, &mut got, &mut 0);
        assert_eq!(got, vec![b"payload".to_vec()]);
        // An acknowledgement is built fresh and comes back bare, without the closure.
        assert!(b.poll_transmit_with(now, |_| panic!("not for control packets")).is_some());
    }

    #[test]
    fn forged_packed_payload_is_dropped_and_counted() {
        use crate::wire::transport::{Repr, HEADER_LEN};
        let now = Instant::from_nanos(5);
        let (_a, mut b, seq, ack) = established(now);
        // A correctly checksummed packet whose records run past the payload.
        let payload = [0u8, 9, 1, 2, 3];
        let mut r = Repr::new(PacketType::Data, 1, 2, 1);
        (r.seq, r.ack, r.window, r.flags) = (seq, ack, 8, FLAG_END_OF_MESSAGE | FLAG_PACKED);
        r.payload_len = payload.len() as u16;
        let mut buf = VecBuf::from_slice(&[0; HEADER_LEN]);
        buf.append(payload.len()).unwrap().copy_from_slice(&payload);
        r.emit(buf.data_mut()).unwrap();
        b.handle_datagram(now, buf);
        assert!(b.poll_event().is_none());
        assert_eq!(b.stats().drops.malformed, 1);
        assert_eq!(b.state(), State::Established);
    }

    #[test]
    fn garbage_is_counted_not_delivered() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(5);
        exchange(&mut a, &mut b, now);
        b.handle_datagram(now, VecBuf::from_slice(b"garbage"));
        b.handle_datagram(now, VecBuf::from_slice(&[0u8; 60]));
        assert_eq!(b.stats().drops.malformed, 2);
        assert!(matches!(b.poll_event(), Some(Event::Connected)));
        assert!(b.poll_event().is_none());
    }

    /// A connected pair with the acceptor's events drained, and the sequence and acknowledgement
    /// numbers the initiator's next data packet carries.
    fn established(now: Instant) -> (Reliable<VecPool>, Reliable<VecPool>, u32, u32) {
        let (mut a, mut b) = pair();
        exchange(&mut a, &mut b, now);
        while b.poll_event().is_some() {}
        let seq = crate::channel::conn::initial_seq(1, 1).wrapping_add(1);
        // The acceptor's initial sequence comes from both epochs xored (1 ^ 1).
        let ack = crate::channel::conn::initial_seq(0, 2).wrapping_add(1);
        (a, b, seq, ack)
    }

    /// Builds a valid packet as the peer would, for injection tests.
    fn forged(kind: PacketType, src: u32, dst: u32, epoch: u32, seq: u32, ack: u32) -> VecBuf {
        use crate::wire::transport::Repr;
        let mut r = Repr::new(kind, src, dst, epoch);
        r.seq = seq;
        r.ack = ack;
        r.window = 8;
        let mut buf = VecBuf::from_slice(&[0; crate::wire::transport::HEADER_LEN]);
        r.emit(buf.data_mut()).unwrap();
        buf
    }

    #[test]
    fn blind_reset_is_challenged_exact_reset_is_accepted() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(5);
        a.send(now, b"m").unwrap();
        exchange(&mut a, &mut b, now);
        while b.poll_event().is_some() {}
        // a has sent its Syn and one message: b expects ISN + 2 next.
        let next = crate::channel::conn::initial_seq(1, 1).wrapping_add(2);
        b.handle_datagram(now, forged(PacketType::Reset, 1, 2, 1, next + 5, 0));
        assert_eq!(b.stats().drops.out_of_window, 1);
        assert_eq!(b.state(), State::Established);
        assert!(b.poll_transmit(now).is_some(), "challenge acknowledgement");
        b.handle_datagram(now, forged(PacketType::Reset, 1, 2, 1, next, 0));
        assert!(matches!(b.poll_event(), Some(Event::Reset(ResetReason::PeerReset))));
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn wrong_ids_and_stale_epochs_are_dropped_and_counted() {
        let now = Instant::from_nanos(5);
        let (_a, mut b, seq, ack) = established(now);
        b.handle_datagram(now, forged(PacketType::Data, 9, 2, 1, seq, ack));
        b.handle_datagram(now, forged(PacketType::Data, 1, 2, 0, seq, ack));
        b.handle_datagram(now, forged(PacketType::Data, 1, 2, 1, seq + 1000, ack));
        b.handle_datagram(now, forged(PacketType::Data, 1, 2, 1, seq, ack + 77));
        let d = b.stats().drops;
        assert_eq!((d.unknown_connection, d.stale_epoch, d.out_of_window), (1, 1, 2));
        assert!(b.poll_event().is_none());
    }

    #[test]
    fn local_reset_reaches_the_peer() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(5);
        a.send(now, b"m").unwrap();
        exchange(&mut a, &mut b, now);
        while b.poll_event().is_some() {}
        a.reset(now);
        exchange(&mut a, &mut b, now);
        assert!(matches!(b.poll_event(), Some(Event::Reset(ResetReason::PeerReset))));
        assert_eq!(a.send(now, b"x"), Err(SendError::Closed));
    }

    #[test]
    fn synack_of_an_earlier_incarnation_is_not_taken() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(5);
        b.handle_datagram(now, a.poll_transmit(now).unwrap());
        let old_synack = b.poll_transmit(now).unwrap();
        // a restarts (same connection id, next epoch) before the SynAck arrives.
        let mut a2 = Reliable::connect(Config::default(), VecPool::default(), 1, 2, now);
        let _syn = a2.poll_transmit(now);
        a2.handle_datagram(now, old_synack);
        assert_eq!(a2.state(), State::SynSent);
        assert_eq!(a2.stats().drops.unknown_connection, 1);
    }

    #[test]
    fn single_packet_messages_are_zero_copy_both_ways() {
        let now = Instant::from_nanos(5);
        // The sender's pool allows one allocation: its Syn. The message must not need another.
        let mut a = Reliable::connect(Config::default(), VecPool::default().with_limit(1), 1, 1, now);
        let mut b = Reliable::listen(Config::default(), VecPool::default(), 2, 1, now);
        exchange(&mut a, &mut b, now);
        let payload = VecBuf::from_slice(b"zero-copy payload");
        let headroom = payload.headroom();
        a.send_buf(now, payload).unwrap();
        let pkt = a.poll_transmit(now).unwrap();
        // The transport header went into the payload buffer's headroom, leaving room below.
        assert_eq!(pkt.headroom(), headroom - crate::wire::transport::HEADER_LEN);
        assert!(pkt.headroom() >= Config::default().lower_headroom);
        b.handle_datagram(now, pkt);
        let _ = b.poll_event();
        let Some(Event::Message(m)) = b.poll_event() else { panic!("no message") };
        let buf = m.into_single().unwrap();
        // Delivered as the received buffer with the header stripped in place.
        assert_eq!(buf.data(), b"zero-copy payload");
        assert_eq!(buf.headroom(), headroom);
    }

    /// Records written by the caller into its own buffer.
    fn records(msgs: &[&[u8]]) -> VecBuf {
        let mut buf = VecBuf::with_capacity(crate::buf::DEFAULT_BUF_SIZE, crate::buf::DEFAULT_HEADROOM);
        for m in msgs {
            let room = buf.append(record_len(m.len())).unwrap();
            packed::emit_record(room, m.len()).unwrap().copy_from_slice(m);
        }
        buf
    }

    fn chain_of(parts: &[&[u8]]) -> VecBuf {
        let mut chain: Option<VecBuf> = None;
        for p in parts {
            let seg = VecBuf::from_slice(p);
            chain = Some(match chain {
                None => seg,
                Some(c) => c.chain(seg).unwrap(),
            });
        }
        chain.unwrap()
    }

    #[test]
    fn caller_packed_buffers_and_chains_are_queued_without_copy_and_delivered_in_place() {
        let (mut a, mut b) = pair();
        let now = Instant::from_nanos(5);
        exchange(&mut a, &mut b, now);
        assert!(!a.has_unsent());
        assert_eq!(a.send_packed(now, records(&[b"one", b"two", b""])), Ok(3));
        assert!(a.has_unsent());
        let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        a.send_chain(now, chain_of(&[&big[..1400], &big[1400..2800], &big[2800..]])).unwrap();
        a.send_packed(now, records(&[b"lone"])).unwrap();
        exchange(&mut a, &mut b, now);
        assert!(!a.has_unsent());
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut chained_segments = 0;
        while let Some(ev) = b.poll_event() {
            if let Event::Message(m) = &ev {
                chained_segments = chained_segments.max(m.segments().count());
            }
            for msg in ev.messages() {
                got.push(msg.flat_map(|s| s.iter().copied()).collect());
            }
        }
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), Vec::new(), big, b"lone".to_vec()]);
        assert_eq!(chained_segments, 3, "a multi-packet message arrives as one chain of its packets");
    }

    #[test]
    fn caller_buffers_are_checked() {
        let (mut a, _b) = pair();
        let now = Instant::default();
        // Not records: a length running past the end.
        let mut bad = VecBuf::from_slice(&[0, 9, 1]);
        assert_eq!(a.send_packed(now, bad.clone()), Err(SendError::TooLarge));
        bad.trim(3).unwrap();
        assert_eq!(a.send_packed(now, bad), Err(SendError::TooLarge), "no record at all");
        assert_eq!(a.send_packed(now, VecBuf::from_slice(&[0; 1500])), Err(SendError::TooLarge));
        // A chain segment over the mss.
        let over = chain_of(&[&[1; 1401], &[2; 10]]);
        assert_eq!(a.send_chain(now, over), Err(SendError::TooLarge));
        assert_eq!(a.send_queue_len(), 1, "only the Syn is queued");
    }

    #[test]
    fn a_dry_pool_leaves_no_half_queued_message() {
        // Syn + 2 segments, then the pool is dry: the 3-packet message is taken back out.
        let now = Instant::default();
        let mut a = Reliable::connect(Config::default(), VecPool::default().with_limit(3), 1, 1, now);
        assert_eq!(a.send(now, &[5; 4000]), Err(SendError::NoBuffers));
        assert_eq!(a.send_queue_len(), 1);
        assert_eq!(a.stats().pool_empty, 1);
    }
}
