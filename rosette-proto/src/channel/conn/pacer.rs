//! Pacing: spreads a window's packets over the RTT instead of sending them back to back.
//!
//! When the window allows more than the path takes at once (a window opened by a burst of
//! acknowledgements, slow start), sending it all in one burst builds a queue that the path then
//! drains at its own rate, or drops. The pacer lets packets out at `gain × window / srtt` (gain 2 in
//! slow start, 1.25 after, as Linux's fq and quinn do) with a credit of `burst` packets, so a
//! window that fits in one burst is never delayed: on a fast link with a small window pacing costs
//! one comparison per packet.
#![forbid(unsafe_code)]

use core::time::Duration;

use crate::channel::time::Instant;

/// A token bucket in nanoseconds of sending time. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    enabled: bool,
    burst: u32,
    /// Nanoseconds between packets at the current rate; 0 when unpaced (no RTT yet, or the window
    /// fits in one burst).
    interval_ns: u64,
    /// Credit, nanoseconds of sending time (at most `burst` intervals).
    credit_ns: u64,
    last: Instant,
}

impl Pacer {
    /// A pacer allowing bursts of `burst` packets; `enabled: false` never delays anything.
    pub(crate) fn new(enabled: bool, burst: u32) -> Self {
        Pacer { enabled, burst: burst.max(1), interval_ns: 0, credit_ns: 0, last: Instant::ZERO }
    }

    /// Sets the rate from the window (packets) and the smoothed RTT.
    pub(crate) fn update(&mut self, window: u32, srtt: Option<Duration>, slow_start: bool) {
        self.interval_ns = match srtt {
            Some(srtt) if self.enabled && window > self.burst => {
                // interval = srtt / (gain × window), gain 2 or 5/4.
                let (num, den) = if slow_start { (1u64, 2u64) } else { (4, 5) };
                (srtt.as_nanos() as u64).saturating_mul(num) / den.saturating_mul(u64::from(window)).max(1)
            }
            _ => 0,
        };
    }

    /// When the next packet may go: `None` now, or the instant it may.
    pub(crate) fn delay(&mut self, now: Instant) -> Option<Instant> {
        if self.interval_ns == 0 {
            return None;
        }
        let cap = self.interval_ns.saturating_mul(u64::from(self.burst));
        let elapsed = now.saturating_duration_since(self.last).as_nanos() as u64;
        self.credit_ns = self.credit_ns.saturating_add(elapsed).min(cap);
        self.last = now;
        (self.credit_ns < self.interval_ns).then(|| now + Duration::from_nanos(self.interval_ns - self.credit_ns))
    }

    /// One packet went out.
    pub(crate) fn on_sent(&mut self) {
        self.credit_ns = self.credit_ns.saturating_sub(self.interval_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_within_one_burst_is_never_paced() {
        let mut p = Pacer::new(true, 32);
        p.update(32, Some(Duration::from_micros(40)), false);
        for _ in 0..100 {
            assert_eq!(p.delay(Instant::ZERO), None);
            p.on_sent();
        }
    }

    #[test]
    fn a_large_window_goes_out_at_gain_times_window_per_rtt() {
        let mut p = Pacer::new(true, 4);
        // 100 packets per 100 us at gain 5/4: one packet every 800 ns, bursts of 4.
        p.update(100, Some(Duration::from_micros(100)), false);
        let mut now = Instant::from_micros(1000);
        let mut sent = 0u32;
        let end = now + Duration::from_micros(100);
        while now < end {
            match p.delay(now) {
                None => {
                    p.on_sent();
                    sent += 1;
                }
                Some(t) => now = t,
            }
        }
        // 125 packets per RTT, plus the initial burst credit.
        assert!((124..=130).contains(&sent), "sent {sent}");
    }

    #[test]
    fn disabled_pacer_never_delays() {
        let mut p = Pacer::new(false, 1);
        p.update(1000, Some(Duration::from_micros(100)), true);
        assert_eq!(p.delay(Instant::ZERO), None);
    }
}
