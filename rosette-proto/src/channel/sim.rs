//! Deterministic simulation: a virtual clock, a simulated link and a [`Pair`] driver.
//!
//! In the spirit of quinn-proto's test `Pair`: two sans-IO endpoints joined by two one-way
//! [`Link`]s, each with a propagation delay, a serialisation rate, a bounded queue (drop-tail) and a
//! [`FaultInjector`]. Time is virtual: [`Pair::step`] jumps straight to the next packet arrival or
//! timer, so seconds of simulated time cost microseconds, and a run is a pure function of its seeds.
//!
//! Used by the simulation tests and usable from benchmarks.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use core::time::Duration;

use crate::buf::{BufPool, PacketBuf};
use crate::channel::fault::{Fate, FaultInjector};
use crate::channel::reliable::Reliable;
use crate::channel::streaming::Stream;
use crate::channel::time::Instant;

/// A sans-IO endpoint the simulator can drive.
pub trait Endpoint {
    /// The packet buffer type it sends and receives.
    type Buf: PacketBuf;
    /// Takes one received datagram.
    fn handle_datagram(&mut self, now: Instant, buf: Self::Buf);
    /// Gives the next datagram to send.
    fn poll_transmit(&mut self, now: Instant) -> Option<Self::Buf>;
    /// Gives the next datagram to send, letting `encapsulate` prepend lower-layer headers in place
    /// to a data-bearing packet first ([`Reliable::poll_transmit_with`]). By default the datagram
    /// comes back bare and `encapsulate` is not called.
    fn poll_transmit_with(
        &mut self,
        now: Instant,
        encapsulate: impl FnOnce(&mut Self::Buf) -> usize,
    ) -> Option<Self::Buf> {
        let _ = encapsulate;
        self.poll_transmit(now)
    }
    /// The next timer deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Runs expired timers.
    fn handle_timeout(&mut self, now: Instant);
}

impl<P: BufPool> Endpoint for Reliable<P> {
    type Buf = P::Buf;
    fn handle_datagram(&mut self, now: Instant, buf: P::Buf) {
        Reliable::handle_datagram(self, now, buf)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        Reliable::poll_transmit(self, now)
    }
    fn poll_transmit_with(&mut self, now: Instant, encapsulate: impl FnOnce(&mut P::Buf) -> usize) -> Option<P::Buf> {
        Reliable::poll_transmit_with(self, now, encapsulate)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Reliable::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Reliable::handle_timeout(self, now)
    }
}

impl<P: BufPool> Endpoint for Stream<P> {
    type Buf = P::Buf;
    fn handle_datagram(&mut self, now: Instant, buf: P::Buf) {
        Stream::handle_datagram(self, now, buf)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<P::Buf> {
        Stream::poll_transmit(self, now)
    }
    fn poll_transmit_with(&mut self, now: Instant, encapsulate: impl FnOnce(&mut P::Buf) -> usize) -> Option<P::Buf> {
        Stream::poll_transmit_with(self, now, encapsulate)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Stream::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Stream::handle_timeout(self, now)
    }
}

struct InFlight<B> {
    at: Instant,
    order: u64,
    buf: B,
}

impl<B> PartialEq for InFlight<B> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl<B> Eq for InFlight<B> {}
impl<B> PartialOrd for InFlight<B> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<B> Ord for InFlight<B> {
    // Reversed: BinaryHeap is a max-heap, we want the earliest arrival first (FIFO on ties).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// Parameters of a one-way link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Propagation delay.
    pub delay: Duration,
    /// Serialisation rate in bits per second (0: infinite).
    pub rate_bps: u64,
    /// Most bytes waiting for serialisation; beyond it packets are dropped (drop-tail).
    pub queue_bytes: u64,
}

impl Default for LinkConfig {
    /// A 10 Gbit/s LAN hop: 20 µs one way, 1 MB of queue.
    fn default() -> Self {
        LinkConfig { delay: Duration::from_micros(20), rate_bps: 10_000_000_000, queue_bytes: 1 << 20 }
    }
}

/// Counters of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets offered.
    pub sent: u64,
    /// Bytes offered.
    pub sent_bytes: u64,
    /// Packets dropped by the full queue.
    pub queue_drops: u64,
    /// Packets delivered (duplicates included).
    pub delivered: u64,
    /// Most packets in flight at once.
    pub max_in_flight: usize,
}

/// A one-way simulated link with faults.
pub struct Link<B> {
    /// Delay, rate, queue.
    pub cfg: LinkConfig,
    /// The fault injector applied to every packet.
    pub faults: FaultInjector,
    /// Counters.
    pub stats: LinkStats,
    busy_until: Instant,
    order: u64,
    in_flight: BinaryHeap<InFlight<B>>,
}

impl<B: PacketBuf> Link<B> {
    /// A link with the given parameters and faults.
    pub fn new(cfg: LinkConfig, faults: FaultInjector) -> Self {
        Link {
            cfg,
            faults,
            stats: LinkStats::default(),
            busy_until: Instant::default(),
            order: 0,
            in_flight: BinaryHeap::new(),
        }
    }

    /// Offers a packet at `now`.
    pub fn send(&mut self, now: Instant, buf: B) {
        self.stats.sent += 1;
        self.stats.sent_bytes += buf.len() as u64;
        let (buf, extra, dup) = match self.faults.apply(now, buf) {
            Fate::Drop => return,
            Fate::Deliver { buf, delay, duplicate } => (buf, delay, duplicate),
        };
        let start = self.busy_until.max(now);
        let backlog = start.saturating_duration_since(now);
        let backlog_bytes = if self.cfg.rate_bps == 0 {
            0
        } else {
            (backlog.as_nanos() * u128::from(self.cfg.rate_bps) / 8 / 1_000_000_000) as u64
        };
        if backlog_bytes + buf.len() as u64 > self.cfg.queue_bytes {
            self.stats.queue_drops += 1;
            return;
        }
        let tx_time = if self.cfg.rate_bps == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(((buf.len() as u128 + 42) * 8 * 1_000_000_000 / u128::from(self.cfg.rate_bps)) as u64)
        };
        self.busy_until = start + tx_time;
        let at = self.busy_until + self.cfg.delay + extra;
        self.push(at, buf);
        if let Some(dup) = dup {
            self.push(at, dup);
        }
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight.len());
    }

    fn push(&mut self, at: Instant, buf: B) {
        self.order += 1;
        self.in_flight.push(InFlight { at, order: self.order, buf });
    }

    /// When the next packet arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|p| p.at)
    }

    /// A packet that has arrived by `now`, earliest first.
    pub fn pop_arrived(&mut self, now: Instant) -> Option<B> {
        if self.next_arrival()? <= now {
            self.stats.delivered += 1;
            return self.in_flight.pop().map(|p| p.buf);
        }
        None
    }

    /// Packets in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Drops everything in flight (e.g. a peer that went away).
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }
}

/// Two endpoints, two links, one virtual clock.
pub struct Pair<A: Endpoint, B: Endpoint<Buf = A::Buf>> {
    /// The first endpoint (usually the initiator).
    pub a: A,
    /// The second endpoint.
    pub b: B,
    /// The virtual clock.
    pub now: Instant,
    /// Link from `a` to `b`.
    pub ab: Link<A::Buf>,
    /// Link from `b` to `a`.
    pub ba: Link<A::Buf>,
    /// Timer expiries handled so far (a measure of timer activity).
    pub timer_fires: u64,
    /// A wakeup requested by the application side of a test (see [`Pair::wake_at`]).
    app_wakeup: Option<Instant>,
}

/// Most datagrams taken from one endpoint in one step: a guard against a runaway endpoint.
const MAX_TRANSMITS_PER_STEP: usize = 100_000;

impl<A: Endpoint, B: Endpoint<Buf = A::Buf>> Pair<A, B> {
    /// Joins `a` and `b` with the given links, the clock at `now`.
    pub fn new(a: A, b: B, ab: Link<A::Buf>, ba: Link<A::Buf>, now: Instant) -> Self {
        Pair { a, b, now, ab, ba, timer_fires: 0, app_wakeup: None }
    }

    /// Moves every datagram the endpoints want to send onto the links.
    pub fn flush(&mut self) {
        for _ in 0..MAX_TRANSMITS_PER_STEP {
            match self.a.poll_transmit(self.now) {
                Some(p) => self.ab.send(self.now, p),
                None => break,
            }
        }
        for _ in 0..MAX_TRANSMITS_PER_STEP {
            match self.b.poll_transmit(self.now) {
                Some(p) => self.ba.send(self.now, p),
                None => break,
            }
        }
    }

    /// Asks the driver to step at `t` even if nothing else is pending then (e.g. a slow reader
    /// that reads again later). Only the earliest pending request is kept.
    pub fn wake_at(&mut self, t: Instant) {
        self.app_wakeup = Some(self.app_wakeup.map_or(t, |w| w.min(t)));
    }

    /// The next instant something happens (arrival, timer, application wakeup), if anything.
    pub fn next_wakeup(&self) -> Option<Instant> {
        [self.ab.next_arrival(), self.ba.next_arrival(), self.a.poll_timeout(), self.b.poll_timeout(), self.app_wakeup]
            .into_iter()
            .flatten()
            .min()
    }

    /// Flushes, advances the clock to the next wakeup (never past `limit`), delivers what arrived
    /// and runs expired timers. Returns false when nothing is pending before `limit`.
    pub fn step_until(&mut self, limit: Instant) -> bool {
        self.flush();
        let Some(t) = self.next_wakeup() else {
            return false;
        };
        if t > limit {
            self.now = self.now.max(limit);
            return false;
        }
        self.now = self.now.max(t);
        if self.app_wakeup.is_some_and(|w| w <= self.now) {
            self.app_wakeup = None;
        }
        while let Some(p) = self.ab.pop_arrived(self.now) {
            self.b.handle_datagram(self.now, p);
        }
        while let Some(p) = self.ba.pop_arrived(self.now) {
            self.a.handle_datagram(self.now, p);
        }
        if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
            self.a.handle_timeout(self.now);
            self.timer_fires += 1;
        }
        if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
            self.b.handle_timeout(self.now);
            self.timer_fires += 1;
        }
        self.flush();
        true
    }

    /// One step without a time limit.
    pub fn step(&mut self) -> bool {
        self.step_until(Instant::from_nanos(u64::MAX))
    }

    /// Steps until nothing is pending or `limit` is reached; returns true if it went idle.
    pub fn drive_until(&mut self, limit: Instant) -> bool {
        while self.step_until(limit) {}
        self.next_wakeup().is_none()
    }

    /// Steps, calling `f` after each step, until `f` returns true (then returns true) or `limit`
    /// passes (then false).
    pub fn drive_while(&mut self, limit: Instant, mut f: impl FnMut(&mut Self) -> bool) -> bool {
        loop {
            if f(self) {
                return true;
            }
            if !self.step_until(limit) {
                // Nothing pending: let `f` act once more (it may have queued work), then stop if
                // still idle.
                if f(self) {
                    return true;
                }
                self.flush();
                if self.next_wakeup().is_none_or(|t| t > limit) {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{VecBuf, VecPool};
    use crate::channel::conn::Config;
    use crate::channel::fault::FaultConfig;
    use crate::channel::reliable::Event;

    #[test]
    fn link_orders_by_arrival_and_applies_rate() {
        let cfg = LinkConfig { delay: Duration::from_micros(10), rate_bps: 8_000_000, queue_bytes: 10_000 };
        let mut l: Link<VecBuf> = Link::new(cfg, FaultInjector::none());
        let t0 = Instant::default();
        l.send(t0, VecBuf::from_slice(&[1; 958])); // 1000 bytes with overhead = 1 ms at 8 Mbit/s
        l.send(t0, VecBuf::from_slice(&[2; 958]));
        assert_eq!(l.next_arrival(), Some(Instant::from_nanos(1_010_000)));
        assert!(l.pop_arrived(Instant::from_nanos(1_009_999)).is_none());
        assert_eq!(l.pop_arrived(Instant::from_nanos(1_010_000)).unwrap().data()[0], 1);
        assert_eq!(l.next_arrival(), Some(Instant::from_nanos(2_010_000)));
    }

    #[test]
    fn pair_delivers_over_a_lossy_link() {
        let now = Instant::default();
        let a = Reliable::connect(Config::default(), VecPool::default(), 1, 1, now);
        let b = Reliable::listen(Config::default(), VecPool::default(), 2, 1, now);
        let ab = Link::new(LinkConfig::default(), FaultInjector::new(1, FaultConfig::loss(200_000)));
        let ba = Link::new(LinkConfig::default(), FaultInjector::new(2, FaultConfig::loss(200_000)));
        let mut pair = Pair::new(a, b, ab, ba, now);
        for i in 0..50u32 {
            pair.a.send(now, &i.to_be_bytes()).unwrap();
        }
        let mut got = Vec::new();
        let done = pair.drive_while(Instant::from_nanos(5_000_000_000), |p| {
            while let Some(ev) = p.b.poll_event() {
                match ev {
                    Event::Message(m) => {
                        let mut v = Vec::new();
                        m.copy_to(&mut v);
                        got.push(v);
                    }
                    Event::Messages(packed) => got.extend(packed.iter().map(<[u8]>::to_vec)),
                    _ => {}
                }
            }
            got.len() == 50
        });
        assert!(done);
        for (i, v) in got.iter().enumerate() {
            assert_eq!(v[..], (i as u32).to_be_bytes());
        }
    }
}
