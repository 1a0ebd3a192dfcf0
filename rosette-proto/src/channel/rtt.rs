//! Retransmission timeout estimation per RFC 6298, and the minimum RTT that RACK's reordering
//! window and delay-based congestion control measure against.
//!
//! The estimator only knows about samples and backoff; Karn's rule (never sample a retransmitted
//! packet) is the caller's duty, because only the caller knows which packets were retransmitted.

use core::time::Duration;

use crate::channel::time::Instant;

/// How long a minimum RTT sample stands before a larger one may replace it (a path whose delay
/// grew for good is believed after this long, as in BBR's and RFC 8985's windowed minimum).
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);

/// SRTT/RTTVAR state and the current retransmission timeout, with exponential backoff.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    /// The timeout from the samples alone, before backoff.
    base_rto: Duration,
    rto: Duration,
    backoff: u32,
    min_rto: Duration,
    max_rto: Duration,
    granularity: Duration,
    /// The latest sample.
    latest: Option<Duration>,
    /// The smallest sample within [`MIN_RTT_WINDOW`], and when it was taken.
    min_rtt: Option<(Duration, Instant)>,
}

impl RttEstimator {
    /// A fresh estimator. Before the first sample the timeout is `initial_rto` (RFC 6298 §2.1 says
    /// 1 s; a LAN user may pick less), clamped to `[min_rto, max_rto]`.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        let max_rto = max_rto.max(min_rto);
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial_rto.clamp(min_rto, max_rto),
            base_rto: initial_rto.clamp(min_rto, max_rto),
            backoff: 0,
            min_rto,
            max_rto,
            // Clock granularity G: our clocks are nanosecond-precise, a microsecond is generous.
            granularity: Duration::from_micros(1),
            latest: None,
            min_rtt: None,
        }
    }

    /// Feeds one RTT measurement taken at `now` (RFC 6298 §2.2/2.3) and clears any backoff.
    pub fn on_sample(&mut self, now: Instant, rtt: Duration) {
        self.latest = Some(rtt);
        match self.min_rtt {
            Some((min, at)) if rtt > min && now.saturating_duration_since(at) < MIN_RTT_WINDOW => {}
            _ => self.min_rtt = Some((rtt, now)),
        }
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT = 7/8 SRTT + 1/8 R'.
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.base_rto = (srtt + self.granularity.max(self.rttvar * 4)).clamp(self.min_rto, self.max_rto);
        self.rto = self.base_rto;
        self.backoff = 0;
    }

    /// Doubles the timeout after an expiry (RFC 6298 §5.5), up to the maximum.
    pub fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
        self.rto = self.rto.saturating_mul(2).min(self.max_rto);
    }

    /// Forgets any backoff without a new sample, because acknowledgements show forward progress.
    ///
    /// RFC 6298 keeps the backed-off timeout until a valid sample; on a very lossy link where most
    /// acknowledged packets were retransmitted (no samples under Karn's rule) that leaves the timer
    /// at its maximum for good. Like Linux, we return to the sampled timeout on progress instead.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
        self.rto = self.base_rto;
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The smallest sample of the last [`MIN_RTT_WINDOW`] (or the newest, once that expired).
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(|(m, _)| m)
    }

    /// Consecutive timeouts since the last sample or progress.
    pub fn backoff(&self) -> u32 {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn first_sample_and_smoothing_follow_rfc6298() {
        let mut e = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        assert_eq!(e.rto(), ms(1000));
        e.on_sample(Instant::ZERO, ms(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 4*50 = 300.
        assert_eq!(e.rto(), ms(300));
        e.on_sample(Instant::ZERO, ms(100));
        // RTTVAR = 3/4*50 + 0 = 37.5, SRTT = 100, RTO = 250.
        assert_eq!(e.rto(), ms(250));
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let mut e = RttEstimator::new(ms(10), ms(1), ms(35));
        e.on_timeout();
        assert_eq!(e.rto(), ms(20));
        e.on_timeout();
        e.on_timeout();
        assert_eq!(e.rto(), ms(35));
        assert_eq!(e.backoff(), 3);
        e.on_sample(Instant::ZERO, ms(2));
        assert_eq!(e.backoff(), 0);
    }

    #[test]
    fn min_rtt_is_windowed() {
        let mut e = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        e.on_sample(Instant::ZERO, ms(5));
        e.on_sample(Instant::from_secs(1), ms(9));
        assert_eq!((e.min_rtt(), e.latest()), (Some(ms(5)), Some(ms(9))));
        e.on_sample(Instant::from_secs(11), ms(8));
        assert_eq!(e.min_rtt(), Some(ms(8)), "the old minimum expired");
    }

    #[test]
    fn minimum_applies() {
        let mut e = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        e.on_sample(Instant::ZERO, Duration::from_micros(10));
        assert_eq!(e.rto(), ms(1));
    }
}
