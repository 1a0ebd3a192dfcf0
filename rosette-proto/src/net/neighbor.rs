//! The neighbor cache: which MAC address an on-link IPv4 address has (RFC 826, ARP), and which
//! addresses are being resolved.
//!
//! Three tables, each allocated once at its bound and never grown:
//! - static entries, from configuration (plus a few added at run time), which the network can neither
//!   expire nor override;
//! - learned entries, each trusted for a lifetime; when the table is full the entry closest to expiry
//!   is replaced;
//! - resolutions in progress: an address, the ARP requests sent for it so far, and when the next is due.
//!
//! The cache decides *what* ARP traffic is due ([`NeighborCache::next_due`]); the
//! [`Interface`](super::Interface) writes and queues the frames.
#![forbid(unsafe_code)]

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::channel::time::Instant;
use crate::wire::ethernet;

/// Static entries that can be added at run time beyond those in the configuration.
pub const STATIC_SPARE: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Learned {
    addr: Ipv4Addr,
    mac: ethernet::Address,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Resolving {
    addr: Ipv4Addr,
    requests_sent: u32,
    next_request: Instant,
}

/// ARP work that is due now (see [`NeighborCache::next_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send an ARP request for this address (already counted as sent).
    Request(Ipv4Addr),
    /// Every request for this address went unanswered: it was removed; drop what waits for it.
    GiveUp(Ipv4Addr),
}

/// Bounds and timers of a [`NeighborCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Learned entries kept at most (0: learn nothing).
    pub capacity: usize,
    /// Addresses resolved at the same time at most.
    pub resolving_capacity: usize,
    /// How long a learned entry is trusted.
    pub lifetime: Duration,
    /// Time between requests for an unresolved address.
    pub retry_interval: Duration,
    /// Requests sent for one address before giving up.
    pub max_requests: u32,
}

/// Fixed-capacity ARP cache with static entries and resolution state. See the module documentation.
#[derive(Debug, Clone)]
pub struct NeighborCache {
    config: NeighborConfig,
    statics: Vec<(Ipv4Addr, ethernet::Address)>,
    learned: Vec<Learned>,
    resolving: Vec<Resolving>,
}

impl NeighborCache {
    /// A cache with `statics` as its static entries (room for [`STATIC_SPARE`] more).
    pub fn new(config: NeighborConfig, statics: &[(Ipv4Addr, ethernet::Address)]) -> NeighborCache {
        let mut table = Vec::with_capacity(statics.len() + STATIC_SPARE);
        table.extend_from_slice(statics);
        NeighborCache {
            statics: table,
            learned: Vec::with_capacity(config.capacity),
            resolving: Vec::with_capacity(config.resolving_capacity),
            config,
        }
    }

    /// Adds (or replaces) a static entry; false when the static table is full.
    pub fn add_static(&mut self, addr: Ipv4Addr, mac: ethernet::Address) -> bool {
        if let Some(e) = self.statics.iter_mut().find(|(a, _)| *a == addr) {
            e.1 = mac;
            return true;
        }
        if self.statics.len() == self.statics.capacity() {
            return false;
        }
        self.statics.push((addr, mac));
        self.learned.retain(|e| e.addr != addr);
        self.resolving.retain(|r| r.addr != addr);
        true
    }

    /// The MAC address to use for `addr` now: a static entry, or an unexpired learned one.
    pub fn lookup(&self, now: Instant, addr: Ipv4Addr) -> Option<ethernet::Address> {
        if let Some(&(_, mac)) = self.statics.iter().find(|(a, _)| *a == addr) {
            return Some(mac);
        }
        self.learned.iter().find(|e| e.addr == addr && e.expires > now).map(|e| e.mac)
    }

    /// True when `addr` has a static entry.
    pub fn is_static(&self, addr: Ipv4Addr) -> bool {
        self.statics.iter().any(|(a, _)| *a == addr)
    }

    /// True when `addr` has a learned entry (expired or not).
    pub fn has_learned(&self, addr: Ipv4Addr) -> bool {
        self.learned.iter().any(|e| e.addr == addr)
    }

    /// Learned entries held (expired ones included until replaced).
    pub fn learned_len(&self) -> usize {
        self.learned.len()
    }

    /// Records `addr` → `mac` for [`NeighborConfig::lifetime`] and ends its resolution. Returns false
    /// when `addr` has a static entry (the network cannot override it) or nothing can be learnt.
    pub fn learn(&mut self, now: Instant, addr: Ipv4Addr, mac: ethernet::Address) -> bool {
        if self.is_static(addr) {
            return false;
        }
        let entry = Learned { addr, mac, expires: now + self.config.lifetime };
        if let Some(e) = self.learned.iter_mut().find(|e| e.addr == addr) {
            *e = entry;
        } else if self.learned.len() < self.config.capacity {
            self.learned.push(entry);
        } else if let Some(oldest) = self.learned.iter_mut().min_by_key(|e| e.expires) {
            *oldest = entry;
        } else {
            return false;
        }
        if let Some(i) = self.resolving.iter().position(|r| r.addr == addr) {
            self.resolving.swap_remove(i);
        }
        true
    }

    /// True while `addr` is being resolved.
    pub fn is_resolving(&self, addr: Ipv4Addr) -> bool {
        self.resolving.iter().any(|r| r.addr == addr)
    }

    /// True when another resolution can start.
    pub fn can_resolve(&self) -> bool {
        self.resolving.len() < self.config.resolving_capacity
    }

    /// Starts resolving `addr` (its first request is due at `now`); false when it already is being
    /// resolved or the table is full.
    pub fn start_resolving(&mut self, now: Instant, addr: Ipv4Addr) -> bool {
        if self.is_resolving(addr) || !self.can_resolve() {
            return false;
        }
        self.resolving.push(Resolving { addr, requests_sent: 0, next_request: now });
        true
    }

    /// The next ARP work due at `now`, already accounted for: a request (the next one is scheduled
    /// [`NeighborConfig::retry_interval`] later) or giving up on an address that had
    /// [`NeighborConfig::max_requests`] requests (it is removed). Call until `None`: every item moves
    /// an address closer to its give-up, so the loop ends even with a zero retry interval.
    pub fn next_due(&mut self, now: Instant) -> Option<Due> {
        let i = self.resolving.iter().position(|r| r.next_request <= now)?;
        let r = &mut self.resolving[i];
        if r.requests_sent >= self.config.max_requests {
            let addr = r.addr;
            self.resolving.swap_remove(i);
            return Some(Due::GiveUp(addr));
        }
        r.requests_sent += 1;
        r.next_request = now + self.config.retry_interval;
        Some(Due::Request(r.addr))
    }

    /// When [`NeighborCache::next_due`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.resolving.iter().map(|r| r.next_request).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 1]);
    const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 2]);
    const T0: Instant = Instant::from_secs(10);

    fn cache(capacity: usize) -> NeighborCache {
        NeighborCache::new(
            NeighborConfig {
                capacity,
                resolving_capacity: 2,
                lifetime: Duration::from_secs(60),
                retry_interval: Duration::from_secs(1),
                max_requests: 3,
            },
            &[],
        )
    }

    /// RFC 826 leaves retransmission to the implementation; ours: `max_requests` requests
    /// `retry_interval` apart, then give up.
    #[test]
    fn requests_are_retried_then_given_up() {
        let mut c = cache(4);
        assert!(c.start_resolving(T0, A));
        assert!(!c.start_resolving(T0, A), "one resolution per address");
        let mut seen = Vec::new();
        let mut now = T0;
        while let Some(t) = c.poll_timeout() {
            now = t.max(now);
            while let Some(d) = c.next_due(now) {
                seen.push((now, d));
            }
        }
        let s = Duration::from_secs(1);
        assert_eq!(
            seen,
            [
                (T0, Due::Request(A)),
                (T0 + s, Due::Request(A)),
                (T0 + 2 * s, Due::Request(A)),
                (T0 + 3 * s, Due::GiveUp(A))
            ]
        );
        assert!(!c.is_resolving(A));
    }

    #[test]
    fn zero_retry_interval_still_terminates() {
        let mut c = cache(4);
        c.config.retry_interval = Duration::ZERO;
        c.start_resolving(T0, A);
        assert_eq!(std::iter::from_fn(|| c.next_due(T0)).count(), 4);
    }

    #[test]
    fn learning_ends_resolution_and_entries_expire() {
        let mut c = cache(4);
        c.start_resolving(T0, A);
        assert!(c.learn(T0, A, MAC_A));
        assert!(!c.is_resolving(A));
        assert_eq!(c.lookup(T0, A), Some(MAC_A));
        assert_eq!(c.lookup(T0 + Duration::from_secs(60), A), None, "lifetime over");
    }

    /// Static entries are configuration: ARP traffic (RFC 826's "merge" step) must not change them.
    #[test]
    fn static_entries_win_and_full_table_replaces_the_oldest() {
        let mut c = NeighborCache::new(cache(1).config, &[(A, MAC_A)]);
        assert!(!c.learn(T0, A, MAC_B));
        assert_eq!(c.lookup(T0, A), Some(MAC_A));
        assert!(c.learn(T0, B, MAC_B));
        let other = Ipv4Addr::new(10, 0, 0, 3);
        assert!(c.learn(T0 + Duration::from_secs(1), other, MAC_A));
        assert_eq!(c.learned_len(), 1);
        assert_eq!(c.lookup(T0 + Duration::from_secs(1), B), None);
        // Run-time static entries: up to STATIC_SPARE more, replacing a learned one.
        assert!(c.add_static(other, MAC_B));
        assert_eq!(c.learned_len(), 0);
        for i in 0..STATIC_SPARE - 1 {
            assert!(c.add_static(Ipv4Addr::new(10, 1, 0, i as u8), MAC_B));
        }
        assert!(!c.add_static(Ipv4Addr::new(10, 2, 0, 0), MAC_B), "static table is bounded");
        assert!(c.add_static(A, MAC_B), "replacing an entry needs no room");
    }

    #[test]
    fn zero_capacity_learns_nothing_and_resolutions_are_bounded() {
        let mut c = cache(0);
        assert!(!c.learn(T0, A, MAC_A));
        assert!(c.start_resolving(T0, A));
        assert!(c.start_resolving(T0, B));
        assert!(!c.can_resolve());
        assert!(!c.start_resolving(T0, Ipv4Addr::new(10, 0, 0, 9)));
    }
}
