//! The streaming channel: one reliable, ordered byte stream in each direction of a connection.
//!
//! Writes are segmented into packets of at most [`Config::mss`] bytes (a small write is coalesced
//! into the newest packet that has not been sent yet); the receiver reassembles them in order.
//! Flow control is the receiver's window, counted in packets ([`Config::recv_capacity`]): a reader
//! that does not read closes the window and the writer then sees [`WriteError::WouldBlock`] once its
//! own bounded send queue ([`Config::send_capacity`] packets) is full — back-pressure end to end.
//! [`Stream::finish`] closes one direction in order (the peer reads end-of-stream after the last
//! byte); [`Stream::reset`] aborts both.
//!
//! The connection machinery is the one of the reliable channel ([`crate::channel::conn`]); the
//! calling contract is the same as [`crate::channel::reliable::Reliable`]'s: feed datagrams to
//! [`Stream::handle_datagram`], drain [`Stream::poll_transmit`], honour
//! [`Stream::poll_timeout`] / [`Stream::handle_timeout`], drain [`Stream::poll_event`]; every entry
//! point that can change what must be sent takes `now`. After reading, poll transmits again: reading
//! may open the window and require a window update.
//!
//! Zero-copy: [`Stream::read_segment`] hands out received buffers with only payload left in them;
//! [`Stream::read`] copies into the caller's slice.
#![forbid(unsafe_code)]

use core::fmt;

use crate::buf::{BufPool, PacketBuf};
use crate::channel::conn::{Config, Core, CoreEvent, Outcome, ResetReason, State, Stats, Unacknowledged};
use crate::channel::time::Instant;
use crate::wire::transport::{PacketType, HEADER_LEN};

/// Connection events of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// Both directions finished and our end-of-stream was acknowledged.
    Closed,
    /// The connection was reset; unread data is discarded.
    Reset(ResetReason),
    /// Retransmissions gave up.
    Failed,
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The send buffer is full; retry after the peer acknowledges (back-pressure).
    WouldBlock,
    /// The stream was finished, reset or failed.
    Closed,
    /// The buffer pool is exhausted.
    NoBuffers,
}

/// Why a read returned no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing to read yet.
    WouldBlock,
    /// The connection was reset or failed.
    Closed,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::WouldBlock => "stream send buffer full",
            WriteError::Closed => "stream closed for writing",
            WriteError::NoBuffers => "packet buffer pool exhausted",
        })
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadError::WouldBlock => "no stream data available",
            ReadError::Closed => "stream reset or failed",
        })
    }
}

impl std::error::Error for WriteError {}
impl std::error::Error for ReadError {}

/// One byte-stream connection. See the module documentation.
pub struct Stream<P: BufPool> {
    core: Core<P>,
    eof: bool,
    /// [`Stream::poll_end`] reported the end of stream.
    end_reported: bool,
}

impl<P: BufPool> Stream<P> {
    /// An initiator; see [`crate::channel::reliable::Reliable::connect`] for ids and epochs.
    ///
    /// # Panics
    /// If `cfg` fails [`Config::validate`] or `local_id` is zero.
    pub fn connect(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        let cfg = cfg.for_stream();
        cfg.validate().expect("invalid streaming channel configuration");
        assert_ne!(local_id, 0, "connection id 0 is reserved");
        Stream { core: Core::connect(cfg, pool, local_id, epoch, now), eof: false, end_reported: false }
    }

    /// An acceptor.
    ///
    /// # Panics
    /// If `cfg` fails [`Config::validate`] or `local_id` is zero.
    pub fn listen(cfg: Config, pool: P, local_id: u32, epoch: u32, now: Instant) -> Self {
        let cfg = cfg.for_stream();
        cfg.validate().expect("invalid streaming channel configuration");
        assert_ne!(local_id, 0, "connection id 0 is reserved");
        Stream { core: Core::listen(cfg, pool, local_id, epoch, now), eof: false, end_reported: false }
    }

    /// A stream around a connection engine (a table's accepted connection).
    pub(crate) fn from_core(core: Core<P>) -> Self {
        Stream { core, eof: false, end_reported: false }
    }

    pub(crate) fn core(&self) -> &Core<P> {
        &self.core
    }

    pub(crate) fn core_mut(&mut self) -> &mut Core<P> {
        &mut self.core
    }

    /// Writes as much of `data` as the send buffer takes; returns the bytes taken (at least one),
    /// or [`WriteError::WouldBlock`] if none fit.
    pub fn write(&mut self, _now: Instant, data: &[u8]) -> Result<usize, WriteError> {
        if !self.core.can_send() {
            return Err(WriteError::Closed);
        }
        let mss = self.core.config().mss;
        let mut written = 0;
        // Coalesce into the newest unsent packet first.
        if let Some(buf) = self.core.last_unsent_data() {
            let room = (mss + HEADER_LEN).saturating_sub(buf.len()).min(buf.tailroom());
            let n = room.min(data.len());
            if n > 0 {
                if let Ok(d) = buf.append(n) {
                    d.copy_from_slice(&data[..n]);
                    written = n;
                }
            }
        }
        while written < data.len() && self.core.send_space() > 0 {
            let Some(mut buf) = self.core.alloc_segment() else {
                self.core.stats_mut().pool_empty += 1;
                if written == 0 {
                    return Err(WriteError::NoBuffers);
                }
                break;
            };
            let n = buf.tailroom().min(mss).min(data.len() - written);
            if n == 0 {
                return Err(WriteError::NoBuffers);
            }
            match buf.append(n) {
                Ok(d) => d.copy_from_slice(&data[written..written + n]),
                Err(_) => return Err(WriteError::NoBuffers),
            }
            written += n;
            self.core.push(buf, PacketType::Data, 0);
        }
        if written == 0 && !data.is_empty() {
            return Err(WriteError::WouldBlock);
        }
        Ok(written)
    }

    /// Writes a buffer the caller filled (payload only, headroom in front, at most [`Config::mss`]
    /// bytes): it becomes the next packet of the stream as it is, no copy (unless it lacks headroom
    /// for the headers). On refusal the buffer comes back with the reason.
    pub fn write_buf(&mut self, _now: Instant, buf: P::Buf) -> Result<(), (WriteError, P::Buf)> {
        if !self.core.can_send() {
            return Err((WriteError::Closed, buf));
        }
        if buf.is_empty() {
            return Ok(());
        }
        if buf.len() > self.core.config().mss || buf.segment_count() != 1 {
            // Too large for one packet: a caller's mistake; refused like a closed stream would be.
            return Err((WriteError::Closed, buf));
        }
        if self.core.send_space() == 0 {
            return Err((WriteError::WouldBlock, buf));
        }
        match self.core.wrap_payload(buf) {
            Ok(buf) => {
                self.core.push(buf, PacketType::Data, 0);
                Ok(())
            }
            Err(buf) => {
                self.core.stats_mut().pool_empty += 1;
                Err((WriteError::NoBuffers, buf))
            }
        }
    }

    /// True while a queued packet has not been transmitted yet.
    pub fn has_unsent(&self) -> bool {
        self.core.has_unsent()
    }

    /// Closes the writing direction after everything written; the peer reads end-of-stream. False
    /// when the pool had no buffer for the Fin: nothing changed, call again later. True also when
    /// there is nothing to finish.
    pub fn finish(&mut self, _now: Instant) -> bool {
        !self.core.can_send() || self.core.finish()
    }

    /// Aborts the stream in both directions and tells the peer.
    pub fn reset(&mut self, _now: Instant) {
        self.core.reset();
    }

    /// Copies received bytes into `out`. `Ok(0)` means end-of-stream (for a non-empty `out`).
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, ReadError> {
        let mut n = 0;
        while n < out.len() {
            let Some(front) = self.core.ready_front_mut() else {
                break;
            };
            if front.kind == PacketType::Fin {
                self.core.pop_ready();
                self.eof = true;
                break;
            }
            let data = front.buf.data();
            let take = data.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&data[..take]);
            n += take;
            // Consumed entirely (or, impossibly, not adjustable): release the segment.
            if take == data.len() || front.buf.adjust(take).is_err() {
                self.core.pop_ready();
            }
        }
        if n > 0 {
            self.core.on_consumed();
            return Ok(n);
        }
        if self.eof || out.is_empty() {
            return Ok(0);
        }
        if self.core.state() == State::Closed && !self.core.peer_finished() {
            return Err(ReadError::Closed);
        }
        Err(ReadError::WouldBlock)
    }

    /// Takes the next received segment without copying (only payload bytes are left in it).
    /// `None` when nothing is ready or at end-of-stream (see [`Stream::is_finished`]).
    pub fn read_segment(&mut self) -> Option<P::Buf> {
        loop {
            let front = self.core.ready().front()?;
            if front.kind == PacketType::Fin {
                self.core.pop_ready();
                self.eof = true;
                self.core.on_consumed();
                return None;
            }
            let seg = self.core.pop_ready()?;
            self.core.on_consumed();
            if !seg.buf.is_empty() {
                return Some(seg.buf);
            }
        }
    }

    /// True once end-of-stream has been read.
    pub fn is_finished(&self) -> bool {
        self.eof
    }

    /// True once, when end-of-stream has been read (for a driver that reports the end to its
    /// application as an event); a stream accepted anew after a reset reports its own end again.
    pub fn poll_end(&mut self) -> bool {
        if self.eof && !self.end_reported {
            self.end_reported = true;
            return true;
        }
        false
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, buf: P::Buf) {
        self.core.handle(now, buf);
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        self.core.poll_transmit(now)
    }

    /// [`Stream::poll_transmit`] with the lower layers' headers written in place: `encapsulate` gets
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

    /// When [`Stream::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Runs the timers that expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// The next connection event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(ev) = self.core.poll_core_event() {
            return Some(match ev {
                CoreEvent::Connected => Event::Connected,
                CoreEvent::Reset(r) => {
                    // A listener may accept a new connection after a reset: a new stream.
                    self.eof = false;
                    self.end_reported = false;
                    Event::Reset(r)
                }
                CoreEvent::Failed => Event::Failed,
            });
        }
        if self.eof && self.core.take_closed() {
            return Some(Event::Closed);
        }
        None
    }

    /// Packets that can still be queued for sending.
    pub fn send_space(&self) -> usize {
        self.core.send_space()
    }

    /// Packets held by the sender.
    pub fn send_queue_len(&self) -> usize {
        self.core.send_queue_len()
    }

    /// Packets held by the receiver.
    pub fn recv_held(&self) -> usize {
        self.core.recv_held()
    }

    /// Connection state.
    pub fn state(&self) -> State {
        self.core.state()
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
    /// life: the bytes the application handed over that the peer never acknowledged.
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

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<core::time::Duration> {
        self.core.srtt()
    }

    /// The sender's view of the path: congestion window, RTTs, RTO.
    pub fn path(&self) -> crate::channel::conn::PathStats {
        self.core.path()
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> core::time::Duration {
        self.core.rto()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecPool;

    fn exchange(a: &mut Stream<VecPool>, b: &mut Stream<VecPool>, now: Instant) {
        for _ in 0..1000 {
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
    fn bytes_flow_with_back_pressure_and_close() {
        let cfg = Config { send_capacity: 8, recv_capacity: 4, max_message_size: 1400, ..Config::default() };
        let now = Instant::from_nanos(1);
        let mut a = Stream::connect(cfg.clone(), VecPool::default(), 1, 1, now);
        let mut b = Stream::listen(cfg, VecPool::default(), 2, 1, now);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut blocked = 0;
        let mut buf = [0u8; 3000];
        while got.len() < data.len() {
            if sent < data.len() {
                match a.write(now, &data[sent..]) {
                    Ok(n) => {
                        // Partial writes are the back-pressure of a full send buffer.
                        blocked += usize::from(n < data.len() - sent);
                        sent += n;
                    }
                    Err(WriteError::WouldBlock) => blocked += 1,
                    Err(e) => panic!("{e}"),
                }
                if sent == data.len() {
                    a.finish(now);
                }
            }
            exchange(&mut a, &mut b, now);
            if let Ok(n) = b.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            assert!(b.recv_held() <= 4);
        }
        assert!(blocked > 0);
        assert_eq!(got, data);
        exchange(&mut a, &mut b, now);
        assert_eq!(b.read(&mut buf), Ok(0));
        b.finish(now);
        exchange(&mut a, &mut b, now);
        assert_eq!(a.read(&mut buf), Ok(0));
        assert_eq!(a.poll_event(), Some(Event::Connected));
        assert_eq!(a.poll_event(), Some(Event::Closed));
    }

    #[test]
    fn small_writes_coalesce() {
        let now = Instant::from_nanos(1);
        let mut a = Stream::connect(Config::default(), VecPool::default(), 1, 1, now);
        for _ in 0..100 {
            a.write(now, b"0123456789").unwrap();
        }
        // Syn + one packet of 1000 bytes.
        assert_eq!(a.send_queue_len(), 2);
    }

    #[test]
    fn lost_window_update_is_recovered_by_a_probe() {
        let cfg = Config { send_capacity: 8, recv_capacity: 2, max_message_size: 1400, ..Config::default() };
        let mut now = Instant::from_nanos(1);
        let mut a = Stream::connect(cfg.clone(), VecPool::default(), 1, 1, now);
        let mut b = Stream::listen(cfg, VecPool::default(), 2, 1, now);
        a.write(now, &[7u8; 5000]).unwrap();
        exchange(&mut a, &mut b, now);
        // b holds 2 packets and advertised a zero window; a is blocked with data queued.
        assert_eq!(b.recv_held(), 2);
        assert!(a.send_queue_len() > 0);
        let mut buf = [0u8; 5000];
        let n = b.read(&mut buf).unwrap();
        // The window update b now sends is lost.
        while b.poll_transmit(now).is_some() {}
        assert!(a.poll_transmit(now).is_none());
        // a's probe timer fires; the probe draws a fresh window and the transfer resumes.
        now = a.poll_timeout().expect("probe timer armed");
        a.handle_timeout(now);
        exchange(&mut a, &mut b, now);
        assert!(a.stats().probes >= 1);
        let m = b.read(&mut buf[n..]).unwrap();
        assert!(m > 0);
    }
}
