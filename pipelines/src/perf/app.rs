//! The application side of `rosette-perf`: the sender ([`ClientApp`]) and the receiver
//! ([`ServerApp`]), talking to the declared pipeline only through the public endpoints.
//!
//! Both are non-blocking state machines: [`ClientApp::poll`] / [`ServerApp::poll`] do what can be done
//! now and return. The same code runs in either place the application can live:
//! - `--app thread`: on an application thread of its own ([`drive`]), with the endpoint from
//!   `<module>::endpoints::perf(timeout)`;
//! - `--app lcore`: inside the worker lcore's loop, as the declared application stage
//!   ([`super::lcore::AppStage`]) right after the channel stage, polled once per loop iteration.
//!
//! [`Wire`] is a thin adapter over the three endpoint types so that one sender and one receiver serve
//! every channel kind; it holds no protocol of its own: a reliable message is one perf message, an
//! unordered datagram is one perf message, and on a stream perf messages are back to back (they all
//! have the same size, so the receiver cuts them apart without a length field).

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rosette::pipeline::endpoint::{EndpointError, ReliableEndpoint, StreamEndpoint, UnorderedEndpoint};

use super::stats::{
    fill_message, fill_message_part, message_header, pattern_ok, Digest, Histogram, MSG_HEADER_LEN, PING_FLAG,
};

/// Largest message `rosette-perf` sends.
pub const MAX_SIZE: usize = 65536;

/// Nanoseconds of the system clock: the same clock in both processes of one host, so a stamp made by
/// the sender can be read by the receiver (one-way latency).
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Every this many data messages carries a clock stamp (the others carry 0): the one-way latency is
/// sampled, so that reading the clock twice per message is not what the benchmark measures.
pub const STAMP_EVERY: u64 = 64;

/// The stamp data message `seq` carries: the time now for every [`STAMP_EVERY`]th, else 0.
#[inline]
pub fn stamp_for(seq: u64) -> u64 {
    if seq.is_multiple_of(STAMP_EVERY) {
        now_ns()
    } else {
        0
    }
}

/// One endpoint, seen as a carrier of same-sized perf messages.
pub trait Wire: Send + Sized + 'static {
    /// Takes the endpoint named `name` of this kind (waiting up to `timeout` for its stage), for
    /// messages of `size` bytes sent to `peer` (unordered; the others have one peer).
    fn open(name: &str, timeout: Duration, size: usize, peer: Option<SocketAddrV4>) -> Result<Self, EndpointError>;
    /// Offers (the rest of) a message; returns the bytes taken, 0 when there is no room now.
    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError>;
    /// Offers bytes `off..size` of a `size`-byte message that `fill(room, at)` writes straight into
    /// the endpoint's packet (message bytes `at..at + room.len()` into `room`); `taken(bytes)` is
    /// called with the bytes once the endpoint has taken them (`fill` may run again for bytes that
    /// were not taken). Returns the bytes taken, 0 when there is no room now. Messages go whole except
    /// on a stream.
    fn offer_with<F: FnMut(&mut [u8], usize), T: FnMut(&[u8])>(
        &mut self,
        size: usize,
        off: usize,
        fill: F,
        taken: T,
    ) -> Result<usize, EndpointError>;
    /// Passes every whole message received to `sink`, waiting up to `wait` for the first; false when
    /// nothing arrived.
    fn take<F: FnMut(&[u8])>(&mut self, wait: Duration, sink: F) -> Result<bool, EndpointError>;
    /// Starts a burst of offers: the endpoint may keep the packet it is filling until
    /// [`Wire::uncork`] (reliable and stream endpoints cork; datagrams have nothing to keep).
    fn cork(&mut self) {}
    /// Ends the burst.
    fn uncork(&mut self) {}
}

fn room(r: Result<(), EndpointError>, n: usize) -> Result<usize, EndpointError> {
    match r {
        Ok(()) => Ok(n),
        Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => Ok(0),
        Err(e) => Err(e),
    }
}

/// For endpoints that copy a message in themselves: writes it whole into `scratch`, offers it with
/// `send`, and reports it taken when it was.
fn send_from(
    scratch: &mut Vec<u8>,
    size: usize,
    mut fill: impl FnMut(&mut [u8], usize),
    mut taken: impl FnMut(&[u8]),
    send: impl FnOnce(&[u8]) -> Result<(), EndpointError>,
) -> Result<usize, EndpointError> {
    scratch.resize(size, 0);
    fill(scratch, 0);
    let n = room(send(scratch), size)?;
    if n > 0 {
        taken(scratch);
    }
    Ok(n)
}

/// The reliable endpoint: messages packed app-side ([`ReliableEndpoint::try_send_with`]), deliveries
/// read in place.
pub struct ReliableWire {
    ep: ReliableEndpoint,
    /// A message spread over several mbufs (larger than one packet) is gathered here.
    gather: Vec<u8>,
    /// A message longer than a packet is written here before it is sent.
    scratch: Vec<u8>,
}

impl ReliableWire {
    /// Wraps `ep`.
    pub fn new(ep: ReliableEndpoint) -> ReliableWire {
        ReliableWire { ep, gather: Vec::with_capacity(MAX_SIZE), scratch: Vec::with_capacity(MAX_SIZE) }
    }
}

impl Wire for ReliableWire {
    fn cork(&mut self) {
        self.ep.cork();
    }

    fn uncork(&mut self) {
        self.ep.uncork();
    }

    fn open(name: &str, timeout: Duration, _: usize, _: Option<SocketAddrV4>) -> Result<Self, EndpointError> {
        ReliableEndpoint::connect(name, timeout).map(ReliableWire::new)
    }

    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError> {
        match self.ep.try_send_with(msg.len(), |out| out.copy_from_slice(msg)) {
            Err(EndpointError::TooLarge { .. }) => room(self.ep.try_send(msg), msg.len()),
            r => room(r, msg.len()),
        }
    }

    fn offer_with<F: FnMut(&mut [u8], usize), T: FnMut(&[u8])>(
        &mut self,
        size: usize,
        _off: usize,
        mut fill: F,
        mut taken: T,
    ) -> Result<usize, EndpointError> {
        // `fill` runs only when the message is accepted.
        let packed = self.ep.try_send_with(size, |out| {
            fill(out, 0);
            taken(out);
        });
        match packed {
            // Longer than a packet: written whole first, then cut into a chain by the endpoint.
            Err(EndpointError::TooLarge { .. }) => {
                let ep = &self.ep;
                send_from(&mut self.scratch, size, fill, taken, |m| ep.try_send(m))
            }
            r => room(r, size),
        }
    }

    fn take<F: FnMut(&[u8])>(&mut self, wait: Duration, mut sink: F) -> Result<bool, EndpointError> {
        let mut got = false;
        let mut first = true;
        loop {
            let ev = if first && !wait.is_zero() { self.ep.recv_event(wait) } else { self.ep.try_recv_event() };
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
    fn cork(&mut self) {
        self.ep.cork();
    }

    fn uncork(&mut self) {
        self.ep.uncork();
    }

    fn open(name: &str, timeout: Duration, size: usize, _: Option<SocketAddrV4>) -> Result<Self, EndpointError> {
        StreamEndpoint::connect(name, timeout).map(|ep| StreamWire::new(ep, size))
    }

    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError> {
        match self.ep.try_write(msg) {
            Ok(n) => Ok(n),
            Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn offer_with<F: FnMut(&mut [u8], usize), T: FnMut(&[u8])>(
        &mut self,
        size: usize,
        off: usize,
        mut fill: F,
        mut taken: T,
    ) -> Result<usize, EndpointError> {
        // The room is taken whole once `fill` ran.
        let written = self.ep.try_write_with(size - off, |room| {
            fill(room, off);
            taken(room);
            room.len()
        });
        match written {
            Ok(n) => Ok(n),
            Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn take<F: FnMut(&[u8])>(&mut self, wait: Duration, mut sink: F) -> Result<bool, EndpointError> {
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
    scratch: Vec<u8>,
}

impl UnorderedWire {
    /// Wraps `ep`, sending to `peer` (`None`: to whoever sent the last datagram).
    pub fn new(ep: UnorderedEndpoint, peer: Option<SocketAddrV4>) -> UnorderedWire {
        UnorderedWire { ep, peer, scratch: Vec::with_capacity(MAX_SIZE) }
    }
}

impl Wire for UnorderedWire {
    fn open(name: &str, timeout: Duration, _: usize, peer: Option<SocketAddrV4>) -> Result<Self, EndpointError> {
        UnorderedEndpoint::connect(name, timeout).map(|ep| UnorderedWire::new(ep, peer))
    }

    fn offer(&mut self, msg: &[u8]) -> Result<usize, EndpointError> {
        let Some(peer) = self.peer else { return Ok(0) };
        room(self.ep.try_send_to(peer, msg), msg.len())
    }

    fn offer_with<F: FnMut(&mut [u8], usize), T: FnMut(&[u8])>(
        &mut self,
        size: usize,
        _off: usize,
        fill: F,
        taken: T,
    ) -> Result<usize, EndpointError> {
        let Some(peer) = self.peer else { return Ok(0) };
        // A datagram is copied into its mbuf by the endpoint: written here first.
        let ep = &self.ep;
        send_from(&mut self.scratch, size, fill, taken, |m| ep.try_send_to(peer, m))
    }

    fn take<F: FnMut(&[u8])>(&mut self, wait: Duration, mut sink: F) -> Result<bool, EndpointError> {
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

/// What one call of an application's `poll` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Made progress; call again at once.
    Busy,
    /// Waiting (no room, nothing received): a thread may pause briefly before the next call.
    Idle,
    /// Finished: the outcome is ready.
    Done,
}

/// Runs `app` on the calling thread until it is done (`--app thread`): each call may wait up to
/// 1 ms for a delivery; when there is no room to send it pauses 20 µs (the worker lcore it waits for
/// may share this CPU).
pub fn drive<W: Wire>(w: &mut W, mut poll: impl FnMut(&mut W, Duration) -> Step) {
    loop {
        match poll(w, Duration::from_millis(1)) {
            Step::Busy => {}
            Step::Idle => std::thread::sleep(Duration::from_micros(20)),
            Step::Done => return,
        }
    }
}

/// What the client's application measured.
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

impl ClientOutcome {
    /// Nothing sent or measured yet.
    pub fn empty() -> ClientOutcome {
        ClientOutcome {
            sent: 0,
            digest: 0,
            elapsed: 0.0,
            drain_timed_out: false,
            rtt: Histogram::new(),
            pings_lost: 0,
            error: None,
        }
    }
}

/// What the client sends, for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClientPlan {
    /// In-order channel (reliable, streaming): the first ping's echo ends the drain.
    pub ordered: bool,
    /// Message size, bytes.
    pub size: usize,
    /// Length of the sending phase (0: until `interrupted`).
    pub seconds: f64,
    /// Ping-pong rounds after the drain.
    pub pings: u32,
    /// Messages offered per `poll` at most (an lcore must get back to its channel).
    pub budget: u32,
}

#[derive(Debug, Clone, Copy)]
enum ClientPhase {
    /// Numbered data messages as fast as the endpoint takes them.
    Sending,
    /// The rest of a message cut in the middle (stream) when the sending phase ended.
    Finishing {
        deadline: Instant,
    },
    /// Offering ping `round`.
    PingOut {
        deadline: Instant,
    },
    /// Waiting for the echo of ping `round`.
    PingBack {
        deadline: Instant,
        limit: Duration,
    },
    Done,
}

/// The sender: numbered messages for the planned time, then the drain (the first ping: on an ordered
/// channel its echo can only come back once every message before it was delivered), then the
/// ping-pong with one message outstanding.
pub struct ClientApp {
    plan: ClientPlan,
    interrupted: &'static AtomicBool,
    progress: Arc<Progress>,
    msg: Vec<u8>,
    digest: Digest,
    start: Option<Instant>,
    end: Option<Instant>,
    sending_ended: f64,
    /// Bytes of the current message already taken (stream).
    off: usize,
    seq: u64,
    round: u32,
    ping_id: u64,
    ping_t0: u64,
    /// The stamp of the data message being sent.
    stamp: u64,
    phase: ClientPhase,
    out: ClientOutcome,
}

impl ClientApp {
    /// A client that follows `plan`, stops sending early when `interrupted` is set, and publishes its
    /// counters in `progress`.
    pub fn new(plan: ClientPlan, interrupted: &'static AtomicBool, progress: Arc<Progress>) -> ClientApp {
        ClientApp {
            plan,
            interrupted,
            progress,
            msg: vec![0u8; plan.size],
            digest: Digest::new(),
            start: None,
            end: None,
            sending_ended: 0.0,
            off: 0,
            seq: 0,
            round: 0,
            ping_id: 0,
            ping_t0: 0,
            stamp: 0,
            phase: ClientPhase::Sending,
            out: ClientOutcome::empty(),
        }
    }

    /// The outcome (complete once `poll` returned [`Step::Done`]).
    pub fn into_outcome(self) -> ClientOutcome {
        self.out
    }

    fn sending_over(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed) || self.end.is_some_and(|e| Instant::now() >= e)
    }

    fn fail(&mut self, error: String) -> Step {
        self.out.error.get_or_insert(error);
        self.finish()
    }

    fn finish(&mut self) -> Step {
        if !self.plan.ordered {
            self.out.elapsed = self.sending_ended;
        }
        self.phase = ClientPhase::Done;
        self.progress.phase.store(2, Ordering::Relaxed);
        Step::Done
    }

    /// The sending phase is over: account for it and start the pings.
    fn end_sending(&mut self) -> Step {
        if self.off > 0 {
            self.phase = ClientPhase::Finishing { deadline: Instant::now() + Duration::from_secs(30) };
            return Step::Busy;
        }
        self.out.sent = self.seq;
        self.out.digest = self.digest.value();
        self.progress.sent.store(self.seq, Ordering::Relaxed);
        self.progress.phase.store(1, Ordering::Relaxed);
        self.sending_ended = self.start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
        self.round = 0;
        self.next_ping()
    }

    fn rounds(&self) -> u32 {
        if self.plan.ordered {
            self.plan.pings.saturating_add(1)
        } else {
            self.plan.pings
        }
    }

    fn next_ping(&mut self) -> Step {
        if self.round >= self.rounds() {
            return self.finish();
        }
        self.ping_id = PING_FLAG | u64::from(self.round);
        self.ping_t0 = now_ns();
        fill_message(&mut self.msg, self.ping_id, self.ping_t0);
        self.off = 0;
        self.phase = ClientPhase::PingOut { deadline: Instant::now() + Duration::from_secs(30) };
        Step::Busy
    }

    /// Does what can be done now; `wait` is how long it may block for a delivery (zero on an lcore).
    pub fn poll<W: Wire>(&mut self, w: &mut W, wait: Duration) -> Step {
        match self.phase {
            ClientPhase::Sending => self.send_some(w),
            ClientPhase::Finishing { deadline } => match self.offer_data(w) {
                Ok(n) => {
                    self.off += n;
                    if self.off == self.plan.size {
                        self.seq += 1;
                        self.off = 0;
                        return self.end_sending();
                    }
                    if n == 0 && Instant::now() > deadline {
                        return self.fail("the last message found no room for 30 s".to_owned());
                    }
                    Step::Idle
                }
                Err(e) => self.fail(format!("send: {e}")),
            },
            ClientPhase::PingOut { deadline } => loop {
                if self.off == 0 {
                    // The round trip starts when the ping is handed to the endpoint (an lcore polls
                    // the application once per iteration: not when the previous echo came back).
                    self.ping_t0 = now_ns();
                    self.msg[8..16].copy_from_slice(&self.ping_t0.to_le_bytes());
                }
                match w.offer(&self.msg[self.off..]) {
                    Ok(0) if Instant::now() > deadline => return self.fail("a ping found no room for 30 s".to_owned()),
                    Ok(0) => return Step::Idle,
                    Ok(n) => {
                        self.off += n;
                        if self.off == self.plan.size {
                            let limit = if !self.plan.ordered {
                                Duration::from_millis(50)
                            } else if self.round == 0 {
                                Duration::from_secs(60)
                            } else {
                                Duration::from_secs(10)
                            };
                            self.phase = ClientPhase::PingBack { deadline: Instant::now() + limit, limit };
                            return self.poll(w, wait);
                        }
                    }
                    Err(e) => return self.fail(format!("ping: {e}")),
                }
            },
            ClientPhase::PingBack { deadline, limit } => {
                let id = self.ping_id;
                let mut echoed = false;
                let sink = |m: &[u8]| {
                    if m.len() >= MSG_HEADER_LEN && message_header(m).0 == id {
                        echoed = true;
                    }
                };
                if let Err(e) = w.take(wait, sink) {
                    return self.fail(format!("ping echo: {e}"));
                }
                if !echoed && Instant::now() < deadline {
                    return Step::Idle;
                }
                let t1 = now_ns();
                let round = self.round;
                self.round += 1;
                if self.plan.ordered && round == 0 {
                    self.out.elapsed = self.start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
                    self.out.drain_timed_out = !echoed;
                    return if echoed { self.next_ping() } else { self.finish() };
                }
                if echoed {
                    self.out.rtt.record(t1.saturating_sub(self.ping_t0));
                } else if self.plan.ordered {
                    return self.fail(format!("ping {round} got no echo in {limit:?}"));
                } else {
                    self.out.pings_lost += 1;
                }
                self.next_ping()
            }
            ClientPhase::Done => Step::Done,
        }
    }

    /// Offers up to the budget of messages as one corked burst.
    fn send_some<W: Wire>(&mut self, w: &mut W) -> Step {
        w.cork();
        let step = self.send_burst(w);
        w.uncork();
        step
    }

    /// Offers the rest of data message `seq`, written in place and folded into the digest as the
    /// endpoint takes it.
    fn offer_data<W: Wire>(&mut self, w: &mut W) -> Result<usize, EndpointError> {
        let (seq, stamp, digest) = (self.seq, self.stamp, &mut self.digest);
        let fill = |room: &mut [u8], at: usize| fill_message_part(room, seq, stamp, at);
        w.offer_with(self.plan.size, self.off, fill, |bytes| digest.update(bytes))
    }

    fn send_burst<W: Wire>(&mut self, w: &mut W) -> Step {
        let start = *self.start.get_or_insert_with(Instant::now);
        if self.end.is_none() && self.plan.seconds > 0.0 {
            self.end = Some(start + Duration::from_secs_f64(self.plan.seconds));
        }
        for _ in 0..self.plan.budget {
            if self.off == 0 {
                if self.seq.is_multiple_of(64) && self.sending_over() {
                    return self.end_sending();
                }
                self.stamp = stamp_for(self.seq);
            }
            match self.offer_data(w) {
                Ok(0) => {
                    // No room: the lcore is behind. Deliveries (none expected now) must not pile up.
                    let _ = w.take(Duration::ZERO, |_| {});
                    if self.off == 0 && self.sending_over() {
                        return self.end_sending();
                    }
                    return Step::Idle;
                }
                Ok(n) => {
                    self.off += n;
                    if self.off == self.plan.size {
                        self.off = 0;
                        self.seq += 1;
                        self.progress.sent.store(self.seq, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let seq = self.seq;
                    self.off = 0;
                    self.out.error = Some(format!("send of message {seq}: {e}"));
                    self.out.sent = seq;
                    self.out.digest = self.digest.value();
                    return self.finish();
                }
            }
        }
        Step::Busy
    }
}

/// What the server's application saw.
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

/// The receiver: counts and checks every data message and echoes pings, until `stop`.
pub struct ServerApp {
    ordered: bool,
    size: usize,
    stop: &'static AtomicBool,
    report: ServerReport,
    digest: Digest,
    seen: Vec<u64>,
    highest: u64,
    next: u64,
    /// Pings to echo, back to back, and how much of them was offered.
    pending: Vec<u8>,
    pending_off: usize,
    echo_deadline: Option<Instant>,
    done: bool,
}

impl ServerApp {
    /// A receiver of `size`-byte messages that stops once `stop` is set.
    pub fn new(ordered: bool, size: usize, stop: &'static AtomicBool) -> ServerApp {
        ServerApp {
            ordered,
            size,
            stop,
            report: ServerReport { delivered: 0, bad: 0, duplicates: 0, digest: 0, owd: Histogram::new(), error: None },
            digest: Digest::new(),
            seen: vec![0u64; (DEDUP_WINDOW / 64) as usize],
            highest: 0,
            next: 0,
            pending: Vec::with_capacity(size * 4),
            pending_off: 0,
            echo_deadline: None,
            done: false,
        }
    }

    /// The report (complete once `poll` returned [`Step::Done`]).
    pub fn into_report(mut self) -> ServerReport {
        self.report.digest = self.digest.value();
        self.report
    }

    fn fail(&mut self, error: String) -> Step {
        self.report.error.get_or_insert(error);
        self.done = true;
        Step::Done
    }

    /// Does what can be done now; `wait` is how long it may block for a delivery (zero on an lcore).
    pub fn poll<W: Wire>(&mut self, w: &mut W, wait: Duration) -> Step {
        if self.done || self.stop.load(Ordering::Relaxed) {
            self.done = true;
            return Step::Done;
        }
        // While an echo is going out, receive without waiting.
        let wait = if self.pending.is_empty() { wait } else { Duration::ZERO };
        let (ordered, size) = (self.ordered, self.size);
        let (r, digest, seen, highest, next, pending) =
            (&mut self.report, &mut self.digest, &mut self.seen, &mut self.highest, &mut self.next, &mut self.pending);
        let sink = |m: &[u8]| {
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
                if seq != *next {
                    r.bad += 1;
                }
                *next = seq + 1;
            } else if seq + DEDUP_WINDOW > *highest {
                let slot = (seq % DEDUP_WINDOW) as usize;
                if seq > *highest {
                    // Forget the slots the window moved past.
                    for s in (*highest + 1).max(seq.saturating_sub(DEDUP_WINDOW - 1))..=seq {
                        let sl = (s % DEDUP_WINDOW) as usize;
                        seen[sl / 64] &= !(1 << (sl % 64));
                    }
                    *highest = seq;
                }
                if seen[slot / 64] & (1 << (slot % 64)) != 0 {
                    r.duplicates += 1;
                    return;
                }
                seen[slot / 64] |= 1 << (slot % 64);
            }
            digest.update(m);
            r.delivered += 1;
            if stamp != 0 {
                r.owd.record(now_ns().saturating_sub(stamp));
            }
        };
        let got = match w.take(wait, sink) {
            Ok(got) => got,
            Err(e) => return self.fail(format!("receive: {e}")),
        };
        if self.pending.is_empty() {
            return if got { Step::Busy } else { Step::Idle };
        }
        let deadline = *self.echo_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
        while self.pending_off < self.pending.len() {
            match w.offer(&self.pending[self.pending_off..]) {
                Ok(0) if Instant::now() > deadline => return self.fail("an echo found no room for 10 s".to_owned()),
                Ok(0) => return Step::Idle,
                Ok(n) => self.pending_off += n,
                Err(e) => return self.fail(format!("echo: {e}")),
            }
        }
        self.pending.clear();
        self.pending_off = 0;
        self.echo_deadline = None;
        Step::Busy
    }
}
