//! Congestion control: the [`Controller`] trait the connection engine drives, and two controllers.
//!
//! - [`NewReno`]: loss-based, RFC 5681 slow start and congestion avoidance with RFC 6582's one
//!   reduction per window of data. Every loss halves the window, so on a path with random
//!   (non-congestive) loss its average window is about `1.22 / sqrt(p)` packets (the Mathis et al.
//!   bound): 12 packets at 1 % loss, whatever the link could carry.
//! - [`Swift`]: delay-based, in the spirit of Google's Swift (SIGCOMM 2020). It keeps the RTT near
//!   a target (the smallest RTT seen plus a queueing allowance): additive increase below the
//!   target, a multiplicative decrease proportional to the excess above it, at most once per RTT.
//!   An isolated loss does not shrink the window — the delay says whether the path is congested —
//!   while a retransmission timeout (persistent loss) restarts from the minimum window.
//!
//! The engine holds a [`Congestion`], an enum over the two chosen per channel in the declaration
//! (`congestion: swift | newreno`): static dispatch, no trait object.
//!
//! Recovery episodes are delimited by transmission order, not sequence numbers: a loss of a packet
//! transmitted before the episode began belongs to that episode; a lost *retransmission* (sent
//! after) starts a new one, as RFC 6675 §5 and Linux treat it.
#![forbid(unsafe_code)]

use core::time::Duration;

use crate::channel::time::Instant;

/// What one acknowledgement told the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEvent {
    /// When it arrived.
    pub now: Instant,
    /// Packets it newly delivered (cumulatively or selectively).
    pub acked: u32,
    /// The RTT sample it gave, if any (Karn's rule applied).
    pub rtt: Option<Duration>,
    /// The smallest RTT seen lately.
    pub min_rtt: Option<Duration>,
    /// The smoothed RTT.
    pub srtt: Option<Duration>,
    /// Transmission order of the newest packet it delivered.
    pub largest_acked_order: u64,
    /// True when the window limited sending before this acknowledgement: only then may it grow
    /// (RFC 7661's "cwnd-limited"; an application-limited sender learns nothing about the path).
    pub window_limited: bool,
    /// The RTT sample spans a stall: the packet was sent before a silence of the peer much longer
    /// than any queue (a descheduled peer process), so its delay says nothing about a queue.
    pub stalled: bool,
}

/// A congestion controller. Windows are counted in packets.
pub trait Controller {
    /// The congestion window: packets that may be in flight.
    fn window(&self) -> u32;
    /// An acknowledgement delivered packets.
    fn on_ack(&mut self, ack: &AckEvent);
    /// Loss recovery declared `lost` packets lost, the newest of them transmitted `lost_order`th;
    /// `sent_order` is the order of the newest transmission so far. Returns true if the window was
    /// reduced (a congestion event).
    fn on_loss(&mut self, now: Instant, lost: u32, lost_order: u64, sent_order: u64) -> bool;
    /// The retransmission timer expired with data outstanding.
    fn on_timeout(&mut self, now: Instant, sent_order: u64);
    /// The last timeout proved spurious (an original transmission was acknowledged after it):
    /// restore the window it took away (RFC 4015, the Eifel response).
    fn on_spurious_timeout(&mut self);
    /// True while the window grows exponentially (the pacer allows a larger gain then).
    fn in_slow_start(&self) -> bool;
}

/// Which controller a channel uses, as declared (`congestion:` stage param).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionKind {
    /// Delay-based ([`Swift`]); the default: it keeps 90 % of the lossless goodput at 10 % random
    /// loss where NewReno keeps 8.5 % (`tests/snapshots/goodput_by_loss.txt`).
    #[default]
    Swift,
    /// Loss-based ([`NewReno`]).
    NewReno,
}

/// Settings of the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CongestionConfig {
    /// Which controller.
    pub kind: CongestionKind,
    /// Initial window, packets.
    pub initial_window: u32,
    /// Largest window, packets.
    pub max_window: u32,
    /// Swift: queueing delay allowed above the smallest RTT seen before the window shrinks.
    pub target_delay: Duration,
}

/// The controller of one connection: one of the implementations, dispatched statically.
#[derive(Debug, Clone)]
pub enum Congestion {
    /// See [`NewReno`].
    NewReno(NewReno),
    /// See [`Swift`].
    Swift(Swift),
}

impl Congestion {
    /// A fresh controller as configured.
    pub fn new(cfg: &CongestionConfig) -> Self {
        match cfg.kind {
            CongestionKind::NewReno => Congestion::NewReno(NewReno::new(cfg.initial_window, cfg.max_window)),
            CongestionKind::Swift => {
                Congestion::Swift(Swift::new(cfg.initial_window, cfg.max_window, cfg.target_delay))
            }
        }
    }
}

impl Controller for Congestion {
    fn window(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.window(),
            Congestion::Swift(c) => c.window(),
        }
    }
    fn on_ack(&mut self, ack: &AckEvent) {
        match self {
            Congestion::NewReno(c) => c.on_ack(ack),
            Congestion::Swift(c) => c.on_ack(ack),
        }
    }
    fn on_loss(&mut self, now: Instant, lost: u32, lost_order: u64, sent_order: u64) -> bool {
        match self {
            Congestion::NewReno(c) => c.on_loss(now, lost, lost_order, sent_order),
            Congestion::Swift(c) => c.on_loss(now, lost, lost_order, sent_order),
        }
    }
    fn on_timeout(&mut self, now: Instant, sent_order: u64) {
        match self {
            Congestion::NewReno(c) => c.on_timeout(now, sent_order),
            Congestion::Swift(c) => c.on_timeout(now, sent_order),
        }
    }
    fn on_spurious_timeout(&mut self) {
        match self {
            Congestion::NewReno(c) => c.on_spurious_timeout(),
            Congestion::Swift(c) => c.on_spurious_timeout(),
        }
    }
    fn in_slow_start(&self) -> bool {
        match self {
            Congestion::NewReno(c) => c.in_slow_start(),
            Congestion::Swift(c) => c.in_slow_start(),
        }
    }
}

/// Loss-based congestion control per RFC 5681 with RFC 6582's recovery episodes. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Packets acknowledged towards the next +1 in congestion avoidance.
    acc: u32,
    /// The newest transmission order when the current recovery episode began.
    recovery: Option<u64>,
    /// Window and threshold before the last timeout, to restore if it proves spurious.
    before_timeout: Option<(u32, u32)>,
    max: u32,
}

impl NewReno {
    /// A controller starting at `initial` packets, never above `max`.
    pub fn new(initial: u32, max: u32) -> Self {
        NewReno {
            cwnd: initial.clamp(1, max.max(1)),
            ssthresh: u32::MAX,
            acc: 0,
            recovery: None,
            before_timeout: None,
            max: max.max(1),
        }
    }

    /// The slow-start threshold.
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
}

impl Controller for NewReno {
    fn window(&self) -> u32 {
        self.cwnd
    }

    fn on_ack(&mut self, ack: &AckEvent) {
        if let Some(start) = self.recovery {
            // RFC 6582 §3.2 step 3: recovery ends once data sent after it began is acknowledged;
            // until then the window does not grow.
            if ack.largest_acked_order <= start {
                return;
            }
            self.recovery = None;
        }
        if !ack.window_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start, with RFC 3465 byte counting: one acknowledgement here
            // covers a whole receive burst, so it grows the window by what it delivered.
            self.cwnd = self.cwnd.saturating_add(ack.acked).min(self.ssthresh.max(self.cwnd + 1));
        } else {
            // RFC 5681 §3.1 congestion avoidance: one packet per window of acknowledged data.
            self.acc += ack.acked;
            while self.acc >= self.cwnd {
                self.acc -= self.cwnd;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(self.max);
    }

    fn on_loss(&mut self, _now: Instant, _lost: u32, lost_order: u64, sent_order: u64) -> bool {
        if self.recovery.is_some_and(|start| lost_order <= start) {
            // RFC 6582: one reduction per window of data.
            return false;
        }
        // RFC 5681 §3.2 / RFC 6675 §5 step 4: ssthresh = cwnd = half the flight.
        self.ssthresh = (self.cwnd / 2).max(2);
        self.cwnd = self.ssthresh;
        self.acc = 0;
        self.recovery = Some(sent_order);
        true
    }

    fn on_timeout(&mut self, _now: Instant, sent_order: u64) {
        // RFC 5681 §3.1 equation 4 and the loss window: restart from one packet.
        self.before_timeout = Some((self.cwnd, self.ssthresh));
        self.ssthresh = (self.cwnd / 2).max(2);
        self.cwnd = 1;
        self.acc = 0;
        self.recovery = Some(sent_order);
    }

    fn on_spurious_timeout(&mut self) {
        if let Some((cwnd, ssthresh)) = self.before_timeout.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
            self.recovery = None;
        }
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }
}

/// Additive increase per RTT below the target, packets.
const SWIFT_AI: f64 = 1.0;
/// Growth per acknowledged packet while the delay is under a quarter of the target's allowance.
const SWIFT_FAST_GROWTH: f64 = 0.5;
/// Multiplicative decrease per unit of relative excess delay.
const SWIFT_BETA: f64 = 0.8;
/// Largest single decrease (the window never drops below half in one step).
const SWIFT_MAX_MDF: f64 = 0.5;
/// Smallest window, packets.
const SWIFT_MIN_WINDOW: f64 = 2.0;

/// Delay-based congestion control in the spirit of Swift. See the module documentation.
#[derive(Debug, Clone)]
pub struct Swift {
    cwnd: f64,
    /// Exponential growth until the delay first exceeds the target (or up to half the window a
    /// timeout found).
    ssthresh: f64,
    target_delay: Duration,
    last_decrease: Option<Instant>,
    /// The newest delay sample.
    delay: Option<Duration>,
    /// Window and threshold before the last timeout, to restore if it proves spurious.
    before_timeout: Option<(f64, f64)>,
    max: f64,
}

impl Swift {
    /// A controller starting at `initial` packets, never above `max`, keeping the RTT within
    /// `target_delay` of the smallest RTT seen.
    pub fn new(initial: u32, max: u32, target_delay: Duration) -> Self {
        let max = f64::from(max.max(2));
        Swift {
            cwnd: f64::from(initial).clamp(SWIFT_MIN_WINDOW, max),
            ssthresh: f64::INFINITY,
            target_delay,
            last_decrease: None,
            delay: None,
            before_timeout: None,
            max,
        }
    }

    /// The delay the controller steers to, once an RTT is known.
    pub fn target(&self, min_rtt: Duration) -> Duration {
        min_rtt + self.target_delay
    }
}

impl Controller for Swift {
    fn window(&self) -> u32 {
        self.cwnd as u32
    }

    fn on_ack(&mut self, ack: &AckEvent) {
        if ack.stalled {
            // Not a queue: neither grow nor shrink on it.
            return;
        }
        if ack.rtt.is_some() {
            self.delay = ack.rtt;
        }
        let (Some(delay), Some(min_rtt)) = (self.delay, ack.min_rtt) else {
            return;
        };
        let target = self.target(min_rtt);
        if delay < target {
            if !ack.window_limited {
                return;
            }
            if self.cwnd < self.ssthresh {
                self.cwnd += f64::from(ack.acked);
            } else if delay < min_rtt + self.target_delay / 4 {
                // Far below the target nothing is queued: regrow fast (half a window per RTT, as
                // TIMELY's hyper-additive increase), so a decrease caused by a transient delay — a
                // peer descheduled for a moment — is not paid for with one packet per RTT.
                self.cwnd += SWIFT_FAST_GROWTH * f64::from(ack.acked);
            } else {
                self.cwnd += SWIFT_AI * f64::from(ack.acked) / self.cwnd;
            }
        } else {
            self.ssthresh = self.ssthresh.min(self.cwnd);
            // At most one decrease per RTT: the samples of one RTT describe one queue state.
            let rtt = ack.srtt.unwrap_or(delay);
            if self.last_decrease.is_none_or(|t| ack.now.saturating_duration_since(t) >= rtt) {
                let excess = (delay - target).as_secs_f64() / delay.as_secs_f64();
                let factor = (1.0 - SWIFT_BETA * excess).max(1.0 - SWIFT_MAX_MDF);
                self.cwnd *= factor;
                self.ssthresh = self.cwnd;
                self.last_decrease = Some(ack.now);
            }
        }
        self.cwnd = self.cwnd.clamp(SWIFT_MIN_WINDOW, self.max);
    }

    fn on_loss(&mut self, _now: Instant, _lost: u32, _lost_order: u64, _sent_order: u64) -> bool {
        // A loss the acknowledgements detected is repaired by loss recovery; whether the path is
        // congested is the delay's to say, so the window stays.
        false
    }

    fn on_timeout(&mut self, now: Instant, _sent_order: u64) {
        // Nothing came back for a whole RTO: restart from the minimum and grow back quickly to
        // half of where we were.
        self.before_timeout = Some((self.cwnd, self.ssthresh));
        self.ssthresh = (self.cwnd / 2.0).max(SWIFT_MIN_WINDOW);
        self.cwnd = SWIFT_MIN_WINDOW;
        self.last_decrease = Some(now);
    }

    fn on_spurious_timeout(&mut self) {
        if let Some((cwnd, ssthresh)) = self.before_timeout.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
        }
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    fn ack(now_us: u64, acked: u32, rtt_us: u64, order: u64) -> AckEvent {
        AckEvent {
            now: Instant::from_micros(now_us),
            acked,
            rtt: Some(us(rtt_us)),
            min_rtt: Some(us(40)),
            srtt: Some(us(100)),
            largest_acked_order: order,
            window_limited: true,
            stalled: false,
        }
    }

    /// RFC 5681 §3.1: slow start grows the window by what is acknowledged, congestion avoidance by
    /// one packet per window.
    #[test]
    fn newreno_slow_start_then_congestion_avoidance_rfc5681() {
        let mut c = NewReno::new(10, 1000);
        c.on_ack(&ack(0, 10, 40, 10));
        assert_eq!(c.window(), 20);
        assert!(c.on_loss(Instant::ZERO, 1, 15, 30));
        assert_eq!((c.window(), c.ssthresh()), (10, 10), "RFC 6675 §5: half the window");
        // Acks of data sent before recovery began neither grow the window nor end recovery.
        c.on_ack(&ack(1, 5, 40, 30));
        assert_eq!(c.window(), 10);
        c.on_ack(&ack(2, 10, 40, 31));
        assert_eq!(c.window(), 11, "one packet per window of acks once recovery is over");
    }

    /// RFC 6582 §3.2: one reduction per window of data; a lost retransmission (sent after the
    /// episode began) reduces again.
    #[test]
    fn newreno_reduces_once_per_window_rfc6582() {
        let mut c = NewReno::new(32, 1000);
        assert!(c.on_loss(Instant::ZERO, 1, 5, 40));
        assert!(!c.on_loss(Instant::ZERO, 3, 39, 44), "same episode");
        assert_eq!(c.window(), 16);
        assert!(c.on_loss(Instant::ZERO, 1, 41, 50), "a retransmission sent during recovery was lost");
        assert_eq!(c.window(), 8);
    }

    /// RFC 5681 §3.1: after a timeout the window restarts at one packet and slow start runs to half
    /// the old window.
    #[test]
    fn newreno_timeout_restarts_at_one_packet_rfc5681() {
        let mut c = NewReno::new(40, 1000);
        c.on_timeout(Instant::ZERO, 100);
        assert_eq!((c.window(), c.ssthresh()), (1, 20));
        c.on_ack(&ack(1, 1, 40, 101));
        assert_eq!(c.window(), 2);
        assert!(c.in_slow_start());
    }

    /// RFC 7661 §4: an application-limited sender does not grow its window.
    #[test]
    fn no_growth_when_not_window_limited_rfc7661() {
        for mut c in [Congestion::NewReno(NewReno::new(10, 100)), Congestion::Swift(Swift::new(10, 100, us(50)))] {
            let mut a = ack(0, 10, 40, 10);
            a.window_limited = false;
            c.on_ack(&a);
            assert_eq!(c.window(), 10);
        }
    }

    #[test]
    fn swift_grows_below_target_and_ignores_isolated_loss() {
        let mut c = Swift::new(10, 1000, us(50));
        c.on_ack(&ack(0, 10, 45, 10));
        assert_eq!(c.window(), 20, "slow start until the delay first exceeds the target");
        assert!(!c.on_loss(Instant::ZERO, 1, 5, 20), "random loss is not congestion");
        assert_eq!(c.window(), 20);
    }

    #[test]
    fn swift_decreases_in_proportion_to_excess_delay_once_per_rtt() {
        let mut c = Swift::new(100, 1000, us(50));
        // Target 40 + 50 = 90 us; a delay of 180 us is an excess of half the delay: 1 - 0.8 * 0.5.
        c.on_ack(&ack(1000, 1, 180, 1));
        assert_eq!(c.window(), 60);
        c.on_ack(&ack(1050, 1, 180, 2));
        assert_eq!(c.window(), 60, "one decrease per RTT");
        c.on_ack(&ack(1200, 1, 900, 3));
        assert_eq!(c.window(), 30, "never more than max_mdf at once");
        // Below the target again: additive increase, one packet per window of acks.
        for i in 0..32 {
            c.on_ack(&ack(2000 + i, 1, 60, 10 + i));
        }
        assert_eq!(c.window(), 31);
    }

    /// RFC 4015 §3: a spurious timeout's window reduction is undone.
    #[test]
    fn spurious_timeout_restores_the_window_rfc4015() {
        let mut reno = NewReno::new(40, 1000);
        reno.on_timeout(Instant::ZERO, 10);
        reno.on_spurious_timeout();
        assert_eq!((reno.window(), reno.ssthresh()), (40, u32::MAX));
        let mut swift = Swift::new(100, 1000, us(50));
        swift.on_timeout(Instant::ZERO, 10);
        swift.on_spurious_timeout();
        assert_eq!(swift.window(), 100);
        swift.on_spurious_timeout();
        assert_eq!(swift.window(), 100, "undone once");
    }

    #[test]
    fn swift_ignores_the_delay_of_a_stall() {
        let mut c = Swift::new(100, 1000, us(50));
        let mut a = ack(1000, 1, 5000, 1);
        a.stalled = true;
        c.on_ack(&a);
        assert_eq!(c.window(), 100, "a descheduled peer is not a queue");
        c.on_ack(&ack(2000, 1, 60, 2));
        assert_eq!(c.window(), 101, "the next real sample is below the target: growth");
    }

    #[test]
    fn swift_timeout_restarts_from_minimum_and_slow_starts_to_half() {
        let mut c = Swift::new(64, 1000, us(50));
        c.on_timeout(Instant::ZERO, 10);
        assert_eq!(c.window(), 2);
        assert!(c.in_slow_start());
        c.on_ack(&ack(10_000, 40, 45, 11));
        assert_eq!(c.window(), 42);
        assert!(!c.in_slow_start());
    }
}
