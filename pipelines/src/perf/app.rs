//! The application side of `rosette-perf`: what runs on each process's application thread, talking to
//! the declared pipeline only through the public endpoints (`<module>::endpoints::perf(timeout)`).
//!
//! [`Wire`] is a thin adapter over the three endpoint types so that one sender and one receiver serve
//! every channel kind; it holds no protocol of its own: a reliable message is one perf message, an
//! unordered datagram is one perf message, and on a stream perf messages are back to back (they all
//! have the same size, so the receiver cuts them apart without a length field).

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rosette::pipeline::endpoint::{EndpointError, ReliableEndpoint, StreamEndpoint, UnorderedEndpoint};

use super::stats::{fill_message, message_header, pattern_ok, Digest, Histogram, MSG_HEADER_LEN, PING_FLAG};

/// Largest message `rosette-perf` sends.
pub const MAX_SIZE: usize = 65536;

/// Nanoseconds of the system clock: the same clock in both processes of one host, so a stamp made by
/// the sender can be read by the receiver (one-way latency).
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// One endpoint, seen as a carrier of same-sized perf messages.
pub trait Wire: Send {
    /// Offers (the rest of) a message; returns the bytes taken, 0 when there is no room now.
    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError>;
    /// Passes every whole message received to `sink`, waiting up to `wait` for the first; false when
    /// nothing arrived.
    fn take(&mut self, wait: Duration, sink: &mut dyn FnMut(&[u8])) -> Result<bool, EndpointError>;
}

fn room(r: Result<(), EndpointError>, n: usize) -> Result<usize, EndpointError> {
    match r {
        Ok(()) => Ok(n),
        Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => Ok(0),
        Err(e) => Err(e),
    }
}

/// The reliable endpoint: messages packed app-side ([`ReliableEndpoint::try_send_with`]), deliveries
/// read in place.
pub struct ReliableWire {
    ep: ReliableEndpoint,
    /// A message spread over several mbufs (larger than one packet) is gathered here.
    gather: Vec<u8>,
}

impl ReliableWire {
    /// Wraps `ep`.
    pub fn new(ep: ReliableEndpoint) -> ReliableWire {
        ReliableWire { ep, gather: Vec::with_capacity(MAX_SIZE) }
    }
}

impl Wire for ReliableWire {
    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError> {
        match self.ep.try_send_with(msg.len(), |out| out.copy_from_slice(msg)) {
            Err(EndpointError::TooLarge) => room(self.ep.try_send(msg), msg.len()),
            r => room(r, msg.len()),
        }
    }

    fn take(&mut self, wait: Duration, sink: &mut dyn FnMut(&[u8])) -> Result<bool, EndpointError> {
        let mut got = false;
        let mut first = true;
        loop {
            let ev = if first && !wait.is_zero() { self.ep.recv(wait) } else { self.ep.try_recv() };
            first = false;
            let ev = match ev {
                Ok(ev) => ev,
                Err(EndpointError::WouldBlock | EndpointError::TimedOut) => return Ok(got),
                Err(e) => return Err(e),
            };
            match &ev {
                rosette::channel::reliable::Event::Reset(_) | rosette::channel::reliable::Event::Failed => {
                    return Err(EndpointError::Disconnected)
                }
                _ => {}
            }
            for message in ev.messages() {
                self.gather.clear();
                let mut single: Option<&[u8]> = None;
                for (i, seg) in message.enumerate() {
                    match i {
                        0 => single = Some(seg),
                        1 => {
                            self.gather.extend_from_slice(single.take().unwrap_or_default());
                            self.gather.extend_from_slice(seg);
                        }
                        _ => self.gather.extend_from_slice(seg),
                    }
                }
                sink(single.unwrap_or(&self.gather));
                got = true;
            }
        }
    }
}

/// The stream endpoint: bytes written as they fit, read back and cut into messages of `size`.
pub struct StreamWire {
    ep: StreamEndpoint,
    size: usize,
    buf: Vec<u8>,
    have: usize,
}

impl StreamWire {
    /// Wraps `ep`; every message on the stream is `size` bytes.
    pub fn new(ep: StreamEndpoint, size: usize) -> StreamWire {
        StreamWire { ep, size, buf: vec![0; size.max(16 * 1024)], have: 0 }
    }
}

impl Wire for StreamWire {
    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError> {
        match self.ep.try_write(msg) {
            Ok(n) => Ok(n),
            Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn take(&mut self, wait: Duration, sink: &mut dyn FnMut(&[u8])) -> Result<bool, EndpointError> {
        let mut got = false;
        let mut first = true;
        loop {
            let r = if first && !wait.is_zero() {
                self.ep.read(&mut self.buf[self.have..], wait)
            } else {
                self.ep.try_read(&mut self.buf[self.have..])
            };
            first = false;
            match r {
                Ok(0) => return Ok(got),
                Ok(n) => self.have += n,
                Err(EndpointError::WouldBlock | EndpointError::TimedOut) => return Ok(got),
                Err(e) => return Err(e),
            }
            let whole = self.have / self.size * self.size;
            for msg in self.buf[..whole].chunks_exact(self.size) {
                sink(msg);
                got = true;
            }
            self.buf.copy_within(whole..self.have, 0);
            self.have -= whole;
        }
    }
}

/// The unordered endpoint: one datagram per message, to `peer` (the server learns it from what it
/// receives).
pub struct UnorderedWire {
    ep: UnorderedEndpoint,
    peer: Option<SocketAddrV4>,
}

impl UnorderedWire {
    /// Wraps `ep`, sending to `peer` (`None`: to whoever sent the last datagram).
    pub fn new(ep: UnorderedEndpoint, peer: Option<SocketAddrV4>) -> UnorderedWire {
        UnorderedWire { ep, peer }
    }
}

impl Wire for UnorderedWire {
    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError> {
        let Some(peer) = self.peer else { return Ok(0) };
        room(self.ep.try_send_to(peer, msg), msg.len())
    }

    fn take(&mut self, wait: Duration, sink: &mut dyn FnMut(&[u8])) -> Result<bool, EndpointError> {
        let mut got = false;
        let mut first = true;
        loop {
            let d = if first && !wait.is_zero() { self.ep.recv_from(wait) } else { self.ep.try_recv_from() };
            first = false;
            match d {
                Ok(d) => {
                    self.peer.get_or_insert(d.src);
                    sink(d.payload.data());
                    got = true;
                }
                Err(EndpointError::WouldBlock | EndpointError::TimedOut) => return Ok(got),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Counters the client's main thread prints once a second.
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages sent so far (the throughput phase).
    pub sent: AtomicU64,
    /// 0 throughput, 1 drain and ping-pong, 2 done.
    pub phase: AtomicU64,
}

/// What the client's application thread measured.
#[derive(Debug)]
pub struct ClientOutcome {
    /// Data messages sent.
    pub sent: u64,
    /// Digest of the data messages sent, in order.
    pub digest: u64,
    /// Seconds from the first message to the end of the drain.
    pub elapsed: f64,
    /// The drain did not end (ordered channels: the first echo never came).
    pub drain_timed_out: bool,
    /// Round-trip times of the ping-pong, ns.
    pub rtt: Histogram,
    /// Pings that got no echo (unordered: lost).
    pub pings_lost: u32,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

/// Offers all of `msg`, retrying while there is no room; false when `limit` passed first.
fn offer_all(w: &mut dyn Wire, msg: &[u8], limit: Duration) -> Result<bool, EndpointError> {
    let deadline = Instant::now() + limit;
    let mut off = 0;
    while off < msg.len() {
        let n = w.offer(&msg[off..])?;
        off += n;
        if n == 0 {
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    Ok(true)
}

/// The client: sends for `seconds` (0: until `interrupted`), then drains and ping-pongs.
pub fn run_client(
    w: &mut dyn Wire,
    ordered: bool,
    size: usize,
    seconds: f64,
    pings: u32,
    interrupted: &AtomicBool,
    progress: &Progress,
) -> ClientOutcome {
    let mut out = ClientOutcome {
        sent: 0,
        digest: 0,
        elapsed: 0.0,
        drain_timed_out: false,
        rtt: Histogram::new(),
        pings_lost: 0,
        error: None,
    };
    let mut msg = vec![0u8; size];
    let mut digest = Digest::new();
    let start = Instant::now();
    let end = (seconds > 0.0).then(|| start + Duration::from_secs_f64(seconds));
    let mut off = 0usize;
    let mut seq = 0u64;
    let mut ignore = |_: &[u8]| {};
    'send: loop {
        if off == 0 {
            if seq.is_multiple_of(64)
                && (interrupted.load(Ordering::Relaxed) || end.is_some_and(|e| Instant::now() >= e))
            {
                break 'send;
            }
            fill_message(&mut msg, seq, now_ns());
        }
        match w.offer(&msg[off..]) {
            Ok(0) => {
                // No room: the lcore is behind. Give the CPU away briefly (the peer's worker may share it).
                let _ = w.take(Duration::ZERO, &mut ignore);
                if off == 0 && (interrupted.load(Ordering::Relaxed) || end.is_some_and(|e| Instant::now() >= e)) {
                    break 'send;
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            Ok(n) => {
                off += n;
                if off == size {
                    digest.update(&msg);
                    off = 0;
                    seq += 1;
                    progress.sent.store(seq, Ordering::Relaxed);
                }
            }
            Err(e) => {
                out.error = Some(format!("send of message {seq}: {e}"));
                break 'send;
            }
        }
    }
    // Finish a message cut in the middle (stream) so the receiver sees whole messages only.
    if off > 0 && out.error.is_none() {
        match offer_all(w, &msg[off..], Duration::from_secs(30)) {
            Ok(true) => {
                digest.update(&msg);
                seq += 1;
            }
            Ok(false) => out.error = Some("the last message found no room for 30 s".to_owned()),
            Err(e) => out.error = Some(format!("send: {e}")),
        }
    }
    out.sent = seq;
    out.digest = digest.value();
    progress.sent.store(seq, Ordering::Relaxed);
    progress.phase.store(1, Ordering::Relaxed);
    let sending_ended = start.elapsed().as_secs_f64();

    // Drain, then ping-pong: one ping outstanding, echoed by the server's application. On an ordered
    // channel the first echo comes back only after every data message before it was delivered: its
    // arrival ends the drain (and is not a round-trip sample).
    let rounds = if ordered { pings.saturating_add(1) } else { pings };
    for round in 0..rounds {
        if out.error.is_some() {
            break;
        }
        let id = PING_FLAG | u64::from(round);
        let t0 = now_ns();
        fill_message(&mut msg, id, t0);
        match offer_all(w, &msg, Duration::from_secs(30)) {
            Ok(true) => {}
            Ok(false) => {
                out.error = Some("a ping found no room for 30 s".to_owned());
                break;
            }
            Err(e) => {
                out.error = Some(format!("ping: {e}"));
                break;
            }
        }
        let limit = if !ordered {
            Duration::from_millis(50)
        } else if round == 0 {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(10)
        };
        let deadline = Instant::now() + limit;
        let mut echoed = false;
        while !echoed && Instant::now() < deadline {
            let mut sink = |m: &[u8]| {
                if m.len() >= MSG_HEADER_LEN && message_header(m).0 == id {
                    echoed = true;
                }
            };
            if let Err(e) = w.take(Duration::from_millis(1), &mut sink) {
                out.error = Some(format!("ping echo: {e}"));
                break;
            }
        }
        let t1 = now_ns();
        if ordered && round == 0 {
            out.elapsed = start.elapsed().as_secs_f64();
            out.drain_timed_out = !echoed;
            if !echoed {
                break;
            }
            continue;
        }
        if echoed {
            out.rtt.record(t1.saturating_sub(t0));
        } else if ordered {
            out.error = Some(format!("ping {round} got no echo in {limit:?}"));
            break;
        } else {
            out.pings_lost += 1;
        }
    }
    if !ordered {
        out.elapsed = sending_ended;
    }
    progress.phase.store(2, Ordering::Relaxed);
    out
}

/// What the server's application thread saw.
#[derive(Debug)]
pub struct ServerReport {
    /// Data messages delivered (duplicates not counted).
    pub delivered: u64,
    /// Messages that were not what was sent (wrong size, content or place).
    pub bad: u64,
    /// Duplicates dropped (unordered).
    pub duplicates: u64,
    /// Digest of the delivered data messages, in order.
    pub digest: u64,
    /// One-way latency (sender's stamp to delivery here), ns.
    pub owd: Histogram,
    /// The endpoint failed.
    pub error: Option<String>,
}

/// Sequence numbers remembered for duplicate detection on the unordered channel: a fixed window
/// behind the highest one seen (older ones count as new; memory stays bounded for any run length).
const DEDUP_WINDOW: u64 = 1 << 20;

/// The server: counts and checks every data message, echoes pings, until `stop`.
pub fn run_server(w: &mut dyn Wire, ordered: bool, size: usize, stop: &AtomicBool) -> ServerReport {
    let mut r = ServerReport { delivered: 0, bad: 0, duplicates: 0, digest: 0, owd: Histogram::new(), error: None };
    let mut digest = Digest::new();
    let mut seen = vec![0u64; (DEDUP_WINDOW / 64) as usize];
    let mut highest = 0u64;
    let mut pending: Vec<u8> = Vec::with_capacity(size * 4);
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut sink = |m: &[u8]| {
            if m.len() != size {
                r.bad += 1;
                return;
            }
            let (seq, stamp) = message_header(m);
            if seq & PING_FLAG != 0 {
                if pending.len() < pending.capacity() {
                    pending.extend_from_slice(m);
                }
                return;
            }
            if !pattern_ok(m, seq) {
                r.bad += 1;
                return;
            }
            if ordered {
                if seq != next {
                    r.bad += 1;
                }
                next = seq + 1;
                digest.update(m);
            } else {
                if seq + DEDUP_WINDOW > highest {
                    let slot = (seq % DEDUP_WINDOW) as usize;
                    if seq > highest {
                        // Forget the slots the window moved past.
                        for s in (highest + 1).max(seq.saturating_sub(DEDUP_WINDOW - 1))..=seq {
                            let sl = (s % DEDUP_WINDOW) as usize;
                            seen[sl / 64] &= !(1 << (sl % 64));
                        }
                        highest = seq;
                    }
                    if seen[slot / 64] & (1 << (slot % 64)) != 0 {
                        r.duplicates += 1;
                        return;
                    }
                    seen[slot / 64] |= 1 << (slot % 64);
                }
                digest.update(m);
            }
            r.delivered += 1;
            r.owd.record(now_ns().saturating_sub(stamp));
        };
        if let Err(e) = w.take(Duration::from_millis(5), &mut sink) {
            r.error = Some(format!("receive: {e}"));
            break;
        }
        if !pending.is_empty() {
            match offer_all(w, &pending, Duration::from_secs(10)) {
                Ok(true) => {}
                Ok(false) => r.error = Some("an echo found no room for 10 s".to_owned()),
                Err(e) => r.error = Some(format!("echo: {e}")),
            }
            pending.clear();
            if r.error.is_some() {
                break;
            }
        }
    }
    r.digest = digest.value();
    r
}
