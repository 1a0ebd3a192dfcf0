//! The TSC clock: cheap timestamps for poll loops and conversion to nanoseconds.

use super::ffi;

/// Reads the time-stamp counter (cycles since an arbitrary start, monotonic on invariant-TSC CPUs).
#[inline(always)]
pub fn tsc() -> u64 {
    // Read inline: DPDK's rte_rdtsc is static inline in C and would cost a call through its wrapper on
    // every poll-loop iteration.
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86_64 CPU and has no preconditions.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: reading the TSC has no preconditions.
        unsafe { ffi::rte_rdtsc() }
    }
}

/// Converts TSC cycles to nanoseconds at the rate EAL measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscClock {
    hz: u64,
    /// Nanoseconds per cycle as a 32.32 fixed-point number, so `now_nanos` costs a multiply and a shift
    /// instead of a 128-bit division (it runs once per packet in channel stages).
    nanos_per_cycle_q32: u128,
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
        let hz = if hz == 0 { 1_000_000_000 } else { hz };
        TscClock { hz, nanos_per_cycle_q32: (1_000_000_000u128 << 32) / u128::from(hz) }
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

    /// Nanoseconds since an arbitrary fixed start (the TSC's), for sans-IO `now` arguments. Monotonic;
    /// the fixed-point rate drifts from [`TscClock::cycles_to_nanos`] by under a microsecond per hour.
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        self.fast_nanos(tsc())
    }

    #[inline(always)]
    fn fast_nanos(&self, cycles: u64) -> u64 {
        ((u128::from(cycles) * self.nanos_per_cycle_q32) >> 32) as u64
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

    #[test]
    fn fast_conversion_stays_within_a_microsecond_per_hour() {
        for hz in [1_000_000_000u64, 2_399_999_999, 3_100_000_000] {
            let c = TscClock::with_hz(hz);
            let hour = hz * 3600;
            let exact = c.cycles_to_nanos(hour);
            assert!(exact.abs_diff(c.fast_nanos(hour)) < 1_000, "{hz} Hz");
            assert!(c.fast_nanos(hour + 1) >= c.fast_nanos(hour));
        }
    }
}
