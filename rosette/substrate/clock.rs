//! The TSC clock: cheap timestamps for poll loops and conversion to nanoseconds.

use super::ffi;

/// Reads the time-stamp counter (cycles since an arbitrary start, monotonic on invariant-TSC CPUs).
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: reading the TSC has no preconditions.
    unsafe { ffi::rte_rdtsc() }
}

/// Converts TSC cycles to nanoseconds at the rate EAL measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscClock {
    hz: u64,
}

impl TscClock {
    /// The clock at EAL's measured TSC frequency. Call after EAL started.
    pub fn new() -> TscClock {
        // SAFETY: returns the frequency EAL measured at start-up (0 if EAL is not running).
        let hz = unsafe { ffi::rte_get_tsc_hz() };
        TscClock::with_hz(hz)
    }

    /// A clock at a given frequency (for tests and simulation); 0 is treated as 1 GHz.
    pub fn with_hz(hz: u64) -> TscClock {
        TscClock { hz: if hz == 0 { 1_000_000_000 } else { hz } }
    }

    /// Cycles per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// The current TSC reading.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        tsc()
    }

    /// Nanoseconds for a number of cycles (exact to the nanosecond, no overflow for any u64).
    #[inline]
    pub fn cycles_to_nanos(&self, cycles: u64) -> u64 {
        (u128::from(cycles) * 1_000_000_000 / u128::from(self.hz)) as u64
    }

    /// Cycles for a number of nanoseconds.
    #[inline]
    pub fn nanos_to_cycles(&self, nanos: u64) -> u64 {
        (u128::from(nanos) * u128::from(self.hz) / 1_000_000_000) as u64
    }

    /// Nanoseconds since an arbitrary fixed start (the TSC's), for sans-IO `now` arguments.
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        self.cycles_to_nanos(tsc())
    }
}

impl Default for TscClock {
    fn default() -> Self {
        TscClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::TscClock;

    #[test]
    fn conversions_round_trip_at_odd_frequencies() {
        let c = TscClock::with_hz(2_399_999_999);
        assert_eq!(c.cycles_to_nanos(2_399_999_999), 1_000_000_000);
        assert_eq!(c.nanos_to_cycles(1_000_000_000), 2_399_999_999);
        assert_eq!(c.cycles_to_nanos(u64::MAX) / 1_000_000_000, u64::MAX / 2_399_999_999);
    }
}
