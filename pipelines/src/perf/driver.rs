//! The lcore loops of `rosette-perf`: each channel driven directly over mbufs.
//!
//! One iteration: rx burst → control frames handled here, channel frames through the fault injector
//! into the channel (`handle_packet` / `handle_datagram`) → timers → deliveries → `poll_transmit` into
//! the tx burst → tx. The channel is a type parameter ([`Transport`]), so each loop is monomorphized:
//! no `dyn`, and nothing in the loop allocates (the channels allocate their queues up front; the
//! reliable channel's [`Message`](rosette::channel::reliable::Message) only allocates for messages
//! longer than one packet).

use core::net::SocketAddrV4;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use rosette::channel::conn::Config as ConnConfig;
use rosette::channel::reliable::{self, Reliable, SendError};
use rosette::channel::sim::Endpoint;
use rosette::channel::streaming::{self, Stream, WriteError};
use rosette::channel::time::Instant;
use rosette::channel::unordered::{self, UnorderedChannel};
use rosette::substrate::{tsc, Burst, Mbuf, Mempool, RxQueue, StopFlag, TscClock, TxQueue};
use rosette::wire::packed::record_len;
use typenum::U32;

use super::link::{self, Report, RxFaults, Side, UdpEncap, CTRL_ETHERTYPE};
use super::stats::{fill_message, message_header, pattern_ok, Digest, Histogram, MSG_HEADER_LEN, PING_FLAG};

/// Largest message the tools send (the reliable channel's default maximum message size).
pub const MAX_SIZE: usize = 64 * 1024;

/// A channel as the perf loops drive it.
pub trait Transport {
    /// Offers message `seq` (timestamp `tsc`, `size` bytes). True when the channel took all of it;
    /// `digest` (the sender's) is fed exactly the bytes taken.
    fn try_send(&mut self, now: Instant, seq: u64, tsc: u64, size: usize, digest: Option<&mut Digest>) -> bool;
    /// One received Ethernet frame of the channel.
    fn handle_frame(&mut self, now: Instant, frame: Mbuf);
    /// Runs expired timers.
    fn timers(&mut self, now: Instant);
    /// Hands every delivered message to `rx`.
    fn deliver(&mut self, rx: &mut Receiver);
    /// Moves frames to send into `out` while it has room.
    fn transmit(&mut self, now: Instant, out: &mut Burst<U32>);
    /// True when nothing sent is still unacknowledged (always true for unordered).
    fn idle(&self) -> bool;
    /// Continues offering a message the channel took only part of (streaming): `None` when there is
    /// none, `Some(true)` when it is now taken whole, `Some(false)` when some is still left. The bytes
    /// taken are fed to `digest`.
    fn finish_partial(&mut self, _now: Instant, _size: usize, _digest: &mut Digest) -> Option<bool> {
        None
    }
    /// Retransmitted packets so far.
    fn retransmits(&self) -> u64;
    /// The channel's counters, for the log at the end of a run.
    fn describe(&self) -> String {
        String::new()
    }
}

/// Turns deliveries into counts, a digest, latencies, and pings to echo or time.
pub struct Receiver {
    clock: FastClock,
    /// TSC of the current loop iteration (one read per iteration, not per message).
    now_tsc: u64,
    /// Server: pings are queued for echo. Client: pings are echoes, timed into `rtt`.
    echo: bool,
    /// Messages delivered (pings excluded).
    pub delivered: u64,
    /// Digest of delivered bytes in order (pings excluded).
    pub digest: Digest,
    /// Messages whose pattern did not match (unordered checks each).
    pub bad: u64,
    /// Duplicates seen (unordered).
    pub duplicates: u64,
    /// One-way latency of delivered messages, ns.
    pub owd: Histogram,
    /// Round-trip time of echoed pings, ns (client).
    pub rtt: Histogram,
    /// Pings received (client: echoes).
    pub pings: u64,
    /// Pings waiting to be echoed (server): (seq, tsc).
    pub to_echo: VecDeque<(u64, u64)>,
    /// Set when the channel failed or was reset.
    pub failed: bool,
    /// Whether echoed pings are timed into `rtt` (client; off for warm-up rounds).
    pub record_rtt: bool,
    seen: Vec<u64>,
    size: usize,
    // Stream reframing: position inside the current message and its header bytes.
    pos: usize,
    hdr: [u8; MSG_HEADER_LEN],
    cur_ping: bool,
}

impl Receiver {
    /// A receiver of `size`-byte messages; `dedup_capacity` sequence numbers are tracked for
    /// duplicate detection (unordered), allocated here once.
    pub fn new(clock: TscClock, echo: bool, size: usize, dedup_capacity: u64) -> Receiver {
        Receiver {
            clock: FastClock::new(&clock),
            now_tsc: 0,
            echo,
            delivered: 0,
            digest: Digest::new(),
            bad: 0,
            duplicates: 0,
            owd: Histogram::new(),
            rtt: Histogram::new(),
            pings: 0,
            to_echo: VecDeque::with_capacity(1024),
            failed: false,
            record_rtt: true,
            seen: vec![0; dedup_capacity.div_ceil(64) as usize],
            size,
            pos: 0,
            hdr: [0; MSG_HEADER_LEN],
            cur_ping: false,
        }
    }

    #[inline]
    fn complete(&mut self, seq: u64, sent_tsc: u64) {
        if seq & PING_FLAG != 0 {
            self.pings += 1;
            if self.echo {
                if self.to_echo.len() < self.to_echo.capacity() {
                    self.to_echo.push_back((seq, sent_tsc));
                }
            } else if self.record_rtt {
                // A round trip: read the clock now, not at the start of the iteration.
                self.rtt.record(self.clock.nanos(tsc().wrapping_sub(sent_tsc)));
            }
            return;
        }
        self.delivered += 1;
        self.owd.record(self.clock.nanos(self.now_tsc.saturating_sub(sent_tsc)));
    }

    /// A datagram of the unordered channel: checked alone, duplicates counted once.
    #[inline]
    pub fn on_datagram(&mut self, msg: &[u8]) {
        if msg.len() != self.size {
            self.bad += 1;
            return;
        }
        let (seq, sent) = message_header(msg);
        if seq & PING_FLAG == 0 {
            if !pattern_ok(msg, seq) {
                self.bad += 1;
                return;
            }
            if let Some(word) = self.seen.get_mut((seq / 64) as usize) {
                let bit = 1u64 << (seq % 64);
                if *word & bit != 0 {
                    self.duplicates += 1;
                    return;
                }
                *word |= bit;
            }
        }
        self.complete(seq, sent);
    }

    /// A message of the reliable channel, as its segments in order.
    #[inline]
    pub fn on_message<'a>(&mut self, mut segments: impl Iterator<Item = &'a [u8]>) {
        let Some(first) = segments.next() else {
            self.bad += 1;
            return;
        };
        if first.len() < MSG_HEADER_LEN {
            self.bad += 1;
            return;
        }
        let (seq, sent) = message_header(first);
        if seq & PING_FLAG == 0 {
            self.digest.update(first);
            for s in segments {
                self.digest.update(s);
            }
        }
        self.complete(seq, sent);
    }

    /// Bytes of the stream, in order, in whatever segments they came.
    #[inline]
    pub fn on_stream(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.pos < MSG_HEADER_LEN {
                let take = (MSG_HEADER_LEN - self.pos).min(data.len());
                self.hdr[self.pos..self.pos + take].copy_from_slice(&data[..take]);
                self.pos += take;
                data = &data[take..];
                if self.pos == MSG_HEADER_LEN {
                    let (seq, _) = message_header(&self.hdr);
                    self.cur_ping = seq & PING_FLAG != 0;
                    if !self.cur_ping {
                        let hdr = self.hdr;
                        self.digest.update(&hdr);
                    }
                }
            } else {
                let take = (self.size - self.pos).min(data.len());
                if !self.cur_ping {
                    self.digest.update(&data[..take]);
                }
                self.pos += take;
                data = &data[take..];
            }
            if self.pos == self.size {
                self.pos = 0;
                let (seq, sent) = message_header(&self.hdr);
                self.complete(seq, sent);
            }
        }
    }

    /// The account sent back at end of stream.
    pub fn report(&self) -> Report {
        Report {
            delivered: self.delivered,
            digest: self.digest.value(),
            bad: self.bad,
            duplicates: self.duplicates,
            owd_p50_ns: self.owd.quantile(0.5),
            owd_p99_ns: self.owd.quantile(0.99),
            failed: u64::from(self.failed),
        }
    }
}

/// Decapsulation for the connection channels: the unordered channel validates Ethernet/IPv4/UDP and
/// strips the headers in place (zero-copy), with the peer's address as a static ARP entry.
fn udp_rx(side: Side, pool: Mempool) -> UnorderedChannel<Mempool> {
    let (mac, ip, peer_mac, peer_ip) = side.addresses();
    let mut cfg = unordered::Config::new(mac, ip, &[link::UDP_PORT]);
    cfg.static_arp = vec![(peer_ip, peer_mac)];
    cfg.tx_queue_capacity = 1024;
    cfg.event_queue_capacity = 1024;
    UnorderedChannel::new(cfg, pool)
}

/// The unordered channel: one message per UDP datagram, sent and received by the channel itself.
pub struct UnorderedT {
    ch: UnorderedChannel<Mempool>,
    pool: Mempool,
    peer: SocketAddrV4,
}

impl UnorderedT {
    /// The channel of `side`.
    pub fn new(side: Side, pool: Mempool) -> UnorderedT {
        UnorderedT { ch: udp_rx(side, pool.clone()), pool, peer: side.peer() }
    }
}

impl Transport for UnorderedT {
    #[inline]
    fn try_send(&mut self, now: Instant, seq: u64, tsc: u64, size: usize, digest: Option<&mut Digest>) -> bool {
        let Some(mut m) = self.pool.alloc() else {
            return false;
        };
        let Ok(bytes) = m.append(size) else {
            return false;
        };
        fill_message(bytes, seq, tsc);
        if let Some(d) = digest {
            d.update(m.data());
        }
        self.ch.send(now, link::UDP_PORT, self.peer, m).is_ok()
    }
    #[inline]
    fn handle_frame(&mut self, now: Instant, frame: Mbuf) {
        self.ch.handle_packet(now, frame);
    }
    #[inline]
    fn timers(&mut self, now: Instant) {
        if self.ch.poll_timeout().is_some_and(|t| t <= now) {
            self.ch.handle_timeout(now);
        }
    }
    #[inline]
    fn deliver(&mut self, rx: &mut Receiver) {
        while let Some(unordered::Event::Datagram(d)) = self.ch.poll_event() {
            rx.on_datagram(d.payload.data());
        }
    }
    #[inline]
    fn transmit(&mut self, now: Instant, out: &mut Burst<U32>) {
        while !out.is_full() {
            let Some(f) = self.ch.poll_transmit(now) else { break };
            let _ = out.push(f);
        }
    }
    fn idle(&self) -> bool {
        true
    }
    fn retransmits(&self) -> u64 {
        0
    }
}

/// Connection settings for the perf runs. Two changes from the defaults, both for two busy-polling
/// processes that share their CPUs with other work (these machines have 2 CPUs, and the scheduler
/// deschedules a worker for several milliseconds at a time when other jobs run):
/// - deeper queues (4096 packets instead of 256), so the sender keeps going while the receiver's
///   worker is descheduled;
/// - a 50 ms RTO floor (and initial RTO) instead of 1 ms / 10 ms: with 10 ms, a 5 s run saw ~60
///   spurious timeouts (every retransmission arrived as a duplicate), each resetting the congestion
///   window, and the message rate fell 2–5×. Real loss is still repaired fast by SACK/RACK.
pub fn conn_config() -> ConnConfig {
    ConnConfig {
        send_capacity: 4096,
        recv_capacity: 4096,
        initial_cwnd: 64,
        min_rto: core::time::Duration::from_millis(50),
        initial_rto: core::time::Duration::from_millis(50),
        ..ConnConfig::default()
    }
}

/// The reliable channel over UDP.
pub struct ReliableT {
    conn: Reliable<Mempool>,
    rx: UnorderedChannel<Mempool>,
    encap: UdpEncap,
    scratch: Vec<u8>,
}

impl ReliableT {
    /// The client connects, the server listens.
    pub fn new(side: Side, pool: Mempool, now: Instant, epoch: u32) -> ReliableT {
        let conn = match side {
            Side::Client => Reliable::connect(conn_config(), pool.clone(), 1, epoch, now),
            Side::Server => Reliable::listen(conn_config(), pool.clone(), 2, epoch, now),
        };
        ReliableT { conn, rx: udp_rx(side, pool.clone()), encap: UdpEncap::new(side, pool), scratch: vec![0; MAX_SIZE] }
    }
}

/// Moves a connection's datagrams into `out` as frames. Data packets get their UDP/IP/Ethernet
/// headers in their own headroom before the channel keeps them for retransmission (one mbuf per
/// frame); control packets, and the rare packet without room, go through [`UdpEncap::encap`].
#[inline]
fn transmit_framed<C: Endpoint<Buf = Mbuf>>(conn: &mut C, encap: &mut UdpEncap, now: Instant, out: &mut Burst<U32>) {
    while !out.is_full() {
        let mut framed = 0;
        let Some(d) = conn.poll_transmit_with(now, |b| {
            framed = encap.encap_in_place(b);
            framed
        }) else {
            break;
        };
        let frame = if framed > 0 { Some(d) } else { encap.encap(d) };
        if let Some(f) = frame {
            let _ = out.push(f);
        }
    }
}

/// Feeds decapsulated datagrams of `rx` to `handle`.
#[inline]
fn decap(rx: &mut UnorderedChannel<Mempool>, now: Instant, frame: Mbuf, mut handle: impl FnMut(Mbuf)) {
    rx.handle_packet(now, frame);
    while let Some(unordered::Event::Datagram(d)) = rx.poll_event() {
        handle(d.payload);
    }
}

impl Transport for ReliableT {
    #[inline]
    fn try_send(&mut self, now: Instant, seq: u64, tsc: u64, size: usize, digest: Option<&mut Digest>) -> bool {
        if record_len(size) <= conn_config().mss {
            // The one write of the fast path: the message is written straight into the packet that
            // carries it (packed with the messages queued before it while that packet waits).
            let res = self.conn.send_with(now, size, |bytes| {
                fill_message(bytes, seq, tsc);
                if let Some(d) = digest {
                    d.update(bytes);
                }
            });
            return match res {
                Ok(()) => true,
                Err(SendError::WouldBlock | SendError::NoBuffers) => false,
                Err(e) => panic!("reliable send_with refused a message that fits: {e}"),
            };
        }
        let msg = &mut self.scratch[..size];
        fill_message(msg, seq, tsc);
        match self.conn.send(now, msg) {
            Ok(()) => {
                if let Some(d) = digest {
                    d.update(msg);
                }
                true
            }
            Err(_) => false,
        }
    }
    #[inline]
    fn handle_frame(&mut self, now: Instant, frame: Mbuf) {
        let conn = &mut self.conn;
        decap(&mut self.rx, now, frame, |d| conn.handle_datagram(now, d));
    }
    #[inline]
    fn timers(&mut self, now: Instant) {
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
    }
    #[inline]
    fn deliver(&mut self, rx: &mut Receiver) {
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                reliable::Event::Message(m) => rx.on_message(m.segments()),
                reliable::Event::Messages(packed) => {
                    for record in packed.iter() {
                        rx.on_message(core::iter::once(record));
                    }
                }
                reliable::Event::Reset(_) | reliable::Event::Failed => rx.failed = true,
                _ => {}
            }
        }
    }
    #[inline]
    fn transmit(&mut self, now: Instant, out: &mut Burst<U32>) {
        transmit_framed(&mut self.conn, &mut self.encap, now, out);
    }
    fn idle(&self) -> bool {
        self.conn.send_queue_len() == 0
    }
    fn retransmits(&self) -> u64 {
        self.conn.stats().retransmits
    }
    fn describe(&self) -> String {
        format!("{:?} cwnd={} decap={:?}", self.conn.stats(), self.conn.cwnd(), self.rx.stats().rx_drops)
    }
}

/// The streaming channel over UDP: messages are written back to back into the byte stream.
pub struct StreamT {
    conn: Stream<Mempool>,
    rx: UnorderedChannel<Mempool>,
    encap: UdpEncap,
    scratch: Vec<u8>,
    /// Bytes of the message in `scratch` already written.
    partial: usize,
}

impl StreamT {
    /// The client connects, the server listens.
    pub fn new(side: Side, pool: Mempool, now: Instant, epoch: u32) -> StreamT {
        let conn = match side {
            Side::Client => Stream::connect(conn_config(), pool.clone(), 1, epoch, now),
            Side::Server => Stream::listen(conn_config(), pool.clone(), 2, epoch, now),
        };
        StreamT {
            conn,
            rx: udp_rx(side, pool.clone()),
            encap: UdpEncap::new(side, pool),
            scratch: vec![0; MAX_SIZE],
            partial: 0,
        }
    }
}

impl Transport for StreamT {
    #[inline]
    fn try_send(&mut self, now: Instant, seq: u64, tsc: u64, size: usize, digest: Option<&mut Digest>) -> bool {
        if self.partial == 0 {
            fill_message(&mut self.scratch[..size], seq, tsc);
        }
        // The stream copies the message into its packet buffers (coalescing small writes).
        match self.conn.write(now, &self.scratch[self.partial..size]) {
            Ok(n) => {
                if let Some(d) = digest {
                    d.update(&self.scratch[self.partial..self.partial + n]);
                }
                self.partial += n;
                if self.partial == size {
                    self.partial = 0;
                    true
                } else {
                    false
                }
            }
            Err(WriteError::WouldBlock | WriteError::NoBuffers | WriteError::Closed) => false,
        }
    }
    #[inline]
    fn handle_frame(&mut self, now: Instant, frame: Mbuf) {
        let conn = &mut self.conn;
        decap(&mut self.rx, now, frame, |d| conn.handle_datagram(now, d));
    }
    #[inline]
    fn timers(&mut self, now: Instant) {
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
    }
    #[inline]
    fn deliver(&mut self, rx: &mut Receiver) {
        while let Some(ev) = self.conn.poll_event() {
            if matches!(ev, streaming::Event::Reset(_) | streaming::Event::Failed) {
                rx.failed = true;
            }
        }
        while let Some(seg) = self.conn.read_segment() {
            rx.on_stream(seg.data());
        }
    }
    #[inline]
    fn transmit(&mut self, now: Instant, out: &mut Burst<U32>) {
        transmit_framed(&mut self.conn, &mut self.encap, now, out);
    }
    fn idle(&self) -> bool {
        self.conn.send_queue_len() == 0 && self.partial == 0
    }
    fn finish_partial(&mut self, now: Instant, size: usize, digest: &mut Digest) -> Option<bool> {
        // With a message in progress, try_send continues it and ignores the new seq and stamp.
        (self.partial > 0).then(|| self.try_send(now, 0, 0, size, Some(digest)))
    }
    fn retransmits(&self) -> u64 {
        self.conn.stats().retransmits
    }
    fn describe(&self) -> String {
        format!("{:?} cwnd={} decap={:?}", self.conn.stats(), self.conn.cwnd(), self.rx.stats().rx_drops)
    }
}

/// Counters the client worker publishes for the live progress line (relaxed stores, read once a
/// second by the main thread).
#[derive(Debug, Default)]
pub struct Progress {
    /// Current phase (see [`Phase`]).
    pub phase: AtomicU64,
    /// Messages (or raw frames) sent in the current phase.
    pub sent: AtomicU64,
    /// Retransmissions so far.
    pub retransmits: AtomicU64,
}

/// What the client worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Phase {
    /// Waiting to start.
    Idle = 0,
    /// Raw memif frame blast.
    RawBlast = 1,
    /// Channel throughput.
    Throughput = 3,
    /// Waiting for everything in flight.
    Drain = 4,
    /// Ping-pong rounds, through the channel and raw memif alternately.
    Ping = 5,
    /// End-of-stream handshake.
    Closing = 6,
}

impl Phase {
    /// The phase from its published number.
    pub fn from_u64(v: u64) -> Phase {
        match v {
            1 => Phase::RawBlast,
            3 => Phase::Throughput,
            4 => Phase::Drain,
            5 => Phase::Ping,
            6 => Phase::Closing,
            _ => Phase::Idle,
        }
    }

    /// A short name for progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::RawBlast => "raw-memif blast",
            Phase::Throughput => "sending",
            Phase::Drain => "draining",
            Phase::Ping => "ping-pong (channel, raw)",
            Phase::Closing => "closing",
        }
    }
}

/// TSC cycles to nanoseconds with a multiply and a shift (the substrate's exact conversion divides a
/// u128, `__udivti3`, which showed up at a quarter of an idle loop's profile).
#[derive(Debug, Clone, Copy)]
pub struct FastClock {
    mult: u128,
}

impl FastClock {
    /// Nanoseconds per cycle of `clock`, in 32.32 fixed point.
    pub fn new(clock: &TscClock) -> FastClock {
        FastClock { mult: (1_000_000_000u128 << 32) / u128::from(clock.hz()) }
    }

    /// Nanoseconds for `cycles` (within a nanosecond per 4 s).
    #[inline(always)]
    pub fn nanos(&self, cycles: u64) -> u64 {
        ((u128::from(cycles) * self.mult) >> 32) as u64
    }
}

/// What one side's lcore owns.
pub struct Io {
    /// Receive queue.
    pub rxq: RxQueue,
    /// Transmit queue.
    pub txq: TxQueue,
    /// Pool for everything this side builds.
    pub pool: Mempool,
    /// TSC clock.
    pub clock: TscClock,
    /// Stop (Ctrl-C).
    pub stop: StopFlag,
    /// Receive-side faults.
    pub faults: RxFaults,
    fast: FastClock,
    inb: Burst<U32>,
    out: Burst<U32>,
}

impl Io {
    /// The lcore's I/O state.
    pub fn new(rxq: RxQueue, txq: TxQueue, pool: Mempool, stop: StopFlag, faults: RxFaults) -> Io {
        let clock = TscClock::new();
        Io { rxq, txq, pool, clock, stop, faults, fast: FastClock::new(&clock), inb: Burst::new(), out: Burst::new() }
    }

    /// `now` for the channels.
    #[inline]
    pub fn now(&self) -> Instant {
        self.at(tsc())
    }

    /// `now` for a TSC reading taken already.
    #[inline]
    pub fn at(&self, cycles: u64) -> Instant {
        Instant::from_nanos(self.fast.nanos(cycles))
    }

    /// Sends what `out` holds; what the PMD refuses stays for the next call.
    #[inline]
    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.txq.tx(&mut self.out);
        }
    }

    /// Sends one frame, retrying until the PMD takes it (control frames; not the fast path).
    fn send_now(&mut self, m: Mbuf) {
        let mut b = Burst::<U32>::new();
        let _ = b.push(m);
        let deadline = tsc() + self.clock.hz();
        while !b.is_empty() && tsc() < deadline {
            self.flush();
            self.txq.tx(&mut b);
        }
    }

    /// One iteration of the channel loop. Control frames go to `on_ctrl` (which may push replies
    /// into the tx burst it is given).
    #[inline]
    pub fn pump<T: Transport>(
        &mut self,
        t: &mut T,
        rx: &mut Receiver,
        mut on_ctrl: impl FnMut(Mbuf, &mut Burst<U32>),
    ) -> Instant {
        self.pump_at(tsc(), t, rx, &mut on_ctrl)
    }

    /// [`Io::pump`] with the iteration's TSC reading already taken.
    #[inline]
    pub fn pump_at<T: Transport>(
        &mut self,
        cycles: u64,
        t: &mut T,
        rx: &mut Receiver,
        mut on_ctrl: impl FnMut(Mbuf, &mut Burst<U32>),
    ) -> Instant {
        let now = self.at(cycles);
        if self.rxq.rx(&mut self.inb) > 0 {
            let faults = &mut self.faults;
            let out = &mut self.out;
            for m in self.inb.batch().drain() {
                if link::ethertype(m.data()) == CTRL_ETHERTYPE {
                    on_ctrl(m, out);
                } else {
                    faults.apply(now, m, |f| t.handle_frame(now, f));
                }
            }
        }
        self.faults.release_due(now, |f| t.handle_frame(now, f));
        t.timers(now);
        rx.now_tsc = cycles;
        t.deliver(rx);
        // Echo pings (server) before polling transmits: the echo then carries the acknowledgement, and
        // no separate pure ACK is built first (building one scans the whole receive window for SACK
        // blocks in the connection engine, several microseconds at a 4096-packet window).
        while let Some(&(seq, sent)) = rx.to_echo.front() {
            if !t.try_send(now, seq, sent, rx.size, None) {
                break;
            }
            rx.to_echo.pop_front();
        }
        self.flush();
        t.transmit(now, &mut self.out);
        self.flush();
        now
    }
}

/// What the client measured.
#[derive(Debug, Default)]
pub struct ClientOutcome {
    /// Messages the channel took.
    pub sent: u64,
    /// Seconds from the first message to the end of the drain.
    pub elapsed: f64,
    /// Digest of the bytes sent (pings excluded).
    pub digest: u64,
    /// Channel ping-pong round trips, ns.
    pub rtt: Histogram,
    /// Raw memif frames per second (0 when not measured).
    pub raw_fps: f64,
    /// Raw memif ping-pong round trips, ns.
    pub raw_rtt: Histogram,
    /// The server's report (None when the end-of-stream handshake failed).
    pub report: Option<Report>,
    /// Retransmissions.
    pub retransmits: u64,
    /// True when the drain timed out with data still unacknowledged.
    pub drain_timed_out: bool,
}

/// Settings of the client's phases.
#[derive(Debug, Clone, Copy)]
pub struct ClientPlan {
    /// Message size.
    pub size: usize,
    /// Throughput phase length.
    pub seconds: f64,
    /// Raw memif baseline length (0 = skip raw phases).
    pub raw_seconds: f64,
    /// Ping-pong rounds (each phase).
    pub pings: u32,
}

fn raw_frame(io: &Io, kind: u8, seq: u64, size: usize) -> Option<Mbuf> {
    let mut m = link::ctrl_frame(&io.pool, Side::Client, kind, &[], link::UDP_HEADERS_LEN + size)?;
    let at = link::UDP_HEADERS_LEN;
    fill_message(&mut m.data_mut()[at..at + size], seq, tsc());
    Some(m)
}

/// Raw memif baseline: frames of the same size as a channel message in UDP, no channel, as fast as
/// the PMD takes them; then ping-pong with one frame outstanding.
fn raw_phases(io: &mut Io, plan: &ClientPlan, progress: &Progress, out: &mut ClientOutcome) {
    let hz = io.clock.hz();
    progress.phase.store(Phase::RawBlast as u64, Ordering::Relaxed);
    let mut burst = Burst::<U32>::new();
    let start = tsc();
    let end = start + (plan.raw_seconds * hz as f64) as u64;
    let mut sent = 0u64;
    let mut seq = 0u64;
    while tsc() < end && !io.stop.is_set() {
        while !burst.is_full() {
            let Some(m) = raw_frame(io, link::KIND_RAW_DATA, seq, plan.size) else { break };
            seq += 1;
            let _ = burst.push(m);
        }
        sent += io.txq.tx(&mut burst) as u64;
        progress.sent.store(sent, Ordering::Relaxed);
    }
    out.raw_fps = sent as f64 / (io.clock.cycles_to_nanos(tsc() - start) as f64 / 1e9);
}

/// One raw memif ping-pong round (no channel): a frame out, its echo back, as lean as the blast.
/// Channel frames that arrive meanwhile (a late acknowledgement) go to the channel, not lost.
/// Returns the round trip in TSC cycles, or `None` after 100 ms without the echo.
fn raw_ping<T: Transport>(io: &mut Io, t: &mut T, round: u64, size: usize) -> Option<u64> {
    let m = raw_frame(io, link::KIND_RAW_PING, round, size)?;
    let mut inb = Burst::<U32>::new();
    let t0 = tsc();
    io.send_now(m);
    let deadline = t0 + io.clock.hz() / 10;
    let mut rtt = None;
    while rtt.is_none() && tsc() < deadline {
        io.rxq.rx(&mut inb);
        let now = tsc();
        for m in inb.batch().drain() {
            let d = m.data();
            if link::ethertype(d) != CTRL_ETHERTYPE {
                t.handle_frame(io.at(now), m);
            } else if link::ctrl_kind(d) == link::KIND_RAW_PONG
                && message_header(&d[link::UDP_HEADERS_LEN..]).0 == round
            {
                rtt = Some(now - t0);
            }
        }
    }
    rtt
}

/// The client (sending) side: raw baselines if asked, the channel throughput phase, the drain, the
/// channel ping-pong, and the end-of-stream handshake. Returns with rx no longer polled.
pub fn run_client<T: Transport>(io: &mut Io, t: &mut T, plan: ClientPlan, progress: &Progress) -> ClientOutcome {
    let mut out = ClientOutcome::default();
    let hz = io.clock.hz();
    let mut rx = Receiver::new(io.clock, false, plan.size, 0);
    if plan.raw_seconds > 0.0 {
        raw_phases(io, &plan, progress, &mut out);
    }
    // Throughput.
    progress.phase.store(Phase::Throughput as u64, Ordering::Relaxed);
    progress.sent.store(0, Ordering::Relaxed);
    let mut digest = Digest::new();
    let mut seq = 0u64;
    let start = tsc();
    let end = start + (plan.seconds * hz as f64) as u64;
    let ignore = |m: Mbuf, _: &mut Burst<U32>| drop(m);
    loop {
        // One TSC read per iteration: it stamps this round's messages and drives the channel.
        let cycles = tsc();
        if cycles >= end || io.stop.is_set() {
            break;
        }
        let now = io.at(cycles);
        for _ in 0..32 {
            if !t.try_send(now, seq, cycles, plan.size, Some(&mut digest)) {
                break;
            }
            seq += 1;
        }
        io.pump_at(cycles, t, &mut rx, ignore);
        progress.sent.store(seq, Ordering::Relaxed);
        progress.retransmits.store(t.retransmits(), Ordering::Relaxed);
    }
    // Drain: no new data; wait until everything is acknowledged (or declared lost, for unordered:
    // nothing is tracked, the tx queue is flushed).
    progress.phase.store(Phase::Drain as u64, Ordering::Relaxed);
    let drain_end = tsc() + 20 * hz;
    let mut partial = true;
    loop {
        if partial {
            match t.finish_partial(io.now(), plan.size, &mut digest) {
                None => partial = false,
                Some(true) => {
                    partial = false;
                    seq += 1;
                }
                Some(false) => {}
            }
        }
        io.pump(t, &mut rx, ignore);
        if t.idle() && io.out.is_empty() {
            break;
        }
        // Ctrl-C stops new data, not the drain: what is in flight is still delivered and checked.
        if tsc() > drain_end {
            out.drain_timed_out = true;
            break;
        }
    }
    out.elapsed = io.clock.cycles_to_nanos(tsc() - start) as f64 / 1e9;
    out.sent = seq;
    out.digest = digest.value();
    // Ping-pong: one message outstanding, echoed by the server; rounds through the channel and raw
    // memif rounds (no channel) alternate, so that both see the same conditions (on a shared VM the
    // round-trip time moves between modes that last seconds; two phases apart could each catch a
    // different one).
    progress.phase.store(Phase::Ping as u64, Ordering::Relaxed);
    progress.sent.store(0, Ordering::Relaxed);
    let warm_up = u64::from(plan.pings / 20);
    for i in 0..u64::from(plan.pings) {
        if io.stop.is_set() {
            break;
        }
        let before = rx.pings;
        let t0 = tsc();
        let deadline = t0 + hz / 50;
        let mut offered = false;
        // The first rounds warm up caches and the peer's loop: not recorded.
        rx.record_rtt = i >= warm_up;
        while rx.pings == before && tsc() < deadline {
            if !offered {
                offered = t.try_send(io.now(), PING_FLAG | i, tsc(), plan.size, None);
            }
            io.pump(t, &mut rx, ignore);
        }
        if plan.raw_seconds > 0.0 {
            // Let the echo's acknowledgement go out first, as after every channel round trip.
            io.pump(t, &mut rx, ignore);
            if let Some(cycles) = raw_ping(io, t, i, plan.size) {
                if i >= warm_up {
                    out.raw_rtt.record(io.clock.cycles_to_nanos(cycles));
                }
            }
        }
        progress.sent.store(i, Ordering::Relaxed);
    }
    out.rtt = rx.rtt.clone();
    log::debug!("client channel: {}", t.describe());
    out.retransmits = t.retransmits();
    // Let the last echoes' acknowledgements go out, then end the stream.
    for _ in 0..1000 {
        io.pump(t, &mut rx, ignore);
    }
    progress.phase.store(Phase::Closing as u64, Ordering::Relaxed);
    out.report = end_of_stream(io);
    out
}

/// Sends EOS and waits for the EOS_ACK; after it, rx is never polled again.
fn end_of_stream(io: &mut Io) -> Option<Report> {
    io.flush();
    let eos = link::ctrl_frame(&io.pool, Side::Client, link::KIND_EOS, &[], 0)?;
    io.send_now(eos);
    let deadline = tsc() + 10 * io.clock.hz();
    let mut inb = Burst::<U32>::new();
    while tsc() < deadline {
        io.rxq.rx(&mut inb);
        for m in inb.batch().drain() {
            let d = m.data();
            if link::ethertype(d) == CTRL_ETHERTYPE && link::ctrl_kind(d) == link::KIND_EOS_ACK {
                return Report::parse(d);
            }
        }
        io.flush();
    }
    None
}

/// The server (receiving) side: delivers, echoes pings, answers raw frames, until EOS; then sends
/// its report and stops polling rx (the peer may leave from then on). Returns the report and how
/// many raw frames arrived.
pub fn run_server<T: Transport>(io: &mut Io, t: &mut T, size: usize, dedup_capacity: u64) -> (Report, u64) {
    let mut rx = Receiver::new(io.clock, true, size, dedup_capacity);
    let mut eos = false;
    let mut raw = 0u64;
    // The server ends on EOS only, not on Ctrl-C: leaving while the client still polls rx could crash
    // the client's memif PMD, and the client ends its run (and sends EOS) on Ctrl-C itself.
    while !eos {
        io.pump(t, &mut rx, |mut m, out| match link::ctrl_kind(m.data()) {
            link::KIND_RAW_DATA => {
                raw += 1;
            }
            link::KIND_RAW_PING => {
                // Echo in the same mbuf: no allocation, no copy.
                let d = m.data_mut();
                if d.len() > link::KIND_OFFSET {
                    d[link::KIND_OFFSET] = link::KIND_RAW_PONG;
                    let _ = out.push(m);
                }
            }
            link::KIND_EOS => eos = true,
            _ => {}
        });
    }
    // Frames held back for reordering were sent before EOS: deliver them.
    let now = io.now();
    let mut held = Vec::new();
    io.faults.flush(|m| held.push(m));
    for m in held {
        t.handle_frame(now, m);
        t.deliver(&mut rx);
    }
    t.deliver(&mut rx);
    log::debug!("server channel: {}", t.describe());
    let report = rx.report();
    if let Some(ack) = link::eos_ack(&io.pool, &report) {
        io.send_now(ack);
    }
    io.flush();
    (report, raw)
}
