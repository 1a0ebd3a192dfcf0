//! A link-state watchdog for poll loops: rx and tx only while the port's link is up.
//!
//! The 22.11 memif PMD can crash inside rx when its peer disconnects while rx is being polled. A loop
//! that asks [`LinkWatchdog::poll`] before each rx stops polling a port whose link went down (checked
//! once per interval, cheaply, from the TSC) and resumes when it comes back. This narrows the window but
//! cannot close it: a peer that vanishes between the check and the rx call still races with rx. Orderly
//! teardown therefore uses an end-of-stream handshake (the side that stays stops polling before it lets
//! the peer go); the watchdog covers what comes after an abrupt loss (a killed peer), so a survivor does
//! not keep polling a dead link and picks the link up again when a new peer connects.
use crate::substrate::{tsc, Port, TscClock};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct LinkWatchdog {
    port: Port,
    interval_cycles: u64,
    next_check: u64,
    up: bool,
    transitions: u64,
}

impl LinkWatchdog {
    /// A watchdog reading `port`'s link state at most every `interval_us` microseconds.
    pub fn new(port: Port, clock: &TscClock, interval_us: u64) -> LinkWatchdog {
        LinkWatchdog {
            port,
            interval_cycles: clock.nanos_to_cycles(interval_us.saturating_mul(1000)),
            next_check: 0,
            up: false,
            transitions: 0,
        }
    }

    /// Whether the link is up (re-read when the interval has passed): poll rx and tx only when true.
    #[inline]
    pub fn poll(&mut self) -> bool {
        let now = tsc();
        if now >= self.next_check {
            let up = self.port.link().map(|l| l.up).unwrap_or(false);
            if up != self.up {
                self.transitions += 1;
            }
            self.up = up;
            self.next_check = now + self.interval_cycles;
        }
        self.up
    }

    /// Forgets the last reading, so the next [`LinkWatchdog::poll`] reads the link again (call after
    /// the loop was paused).
    pub fn invalidate(&mut self) {
        self.next_check = 0;
        self.up = false;
    }

    /// Times the link went up or down since the watchdog was made.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }
}
