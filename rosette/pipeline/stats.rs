//! Per-lcore counters of a running pipeline: written by the lcore's loop with relaxed stores once per
//! iteration, read by anyone (the pipeline handle, DPDK telemetry) without stopping the loop.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters of one lcore's loop. Written by the loop on every iteration, so it has cache
/// lines of its own (128 bytes: the adjacent-line prefetcher pairs lines) — a neighbour on the heap
/// written by another thread would cost the loop a cache miss per iteration.
#[derive(Debug)]
#[repr(align(128))]
pub struct LcoreStats {
    lcore: u32,
    bursts: AtomicU64,
    packets: AtomicU64,
    empty_polls: AtomicU64,
    tx_packets: AtomicU64,
    tx_dropped: AtomicU64,
    stage_names: Vec<String>,
    stage_drops: Box<[AtomicU64]>,
}

/// A copy of an lcore's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LcoreStatsSnapshot {
    /// The lcore.
    pub lcore: u32,
    /// Non-empty bursts received.
    pub bursts: u64,
    /// Packets received.
    pub packets: u64,
    /// Loop iterations that received nothing.
    pub empty_polls: u64,
    /// Packets handed to tx queues or rings and taken.
    pub tx_packets: u64,
    /// Packets tx queues or rings refused (freed).
    pub tx_dropped: u64,
    /// Packets each stage dropped, by stage name, in loop order.
    pub stage_drops: Vec<(String, u64)>,
}

impl LcoreStatsSnapshot {
    /// All drops: every stage's plus tx's.
    pub fn total_dropped(&self) -> u64 {
        self.tx_dropped + self.stage_drops.iter().map(|(_, d)| d).sum::<u64>()
    }
}

/// The loop's own running totals, published with [`LcoreStats::publish`].
#[derive(Debug, Clone, Copy)]
pub struct LocalCounters<const STAGES: usize> {
    /// Non-empty bursts received.
    pub bursts: u64,
    /// Packets received.
    pub packets: u64,
    /// Iterations that received nothing.
    pub empty_polls: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets refused by tx.
    pub tx_dropped: u64,
    /// Drops per stage.
    pub stage_drops: [u64; STAGES],
}

impl<const STAGES: usize> Default for LocalCounters<STAGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const STAGES: usize> LocalCounters<STAGES> {
    /// All zero.
    pub const fn new() -> Self {
        LocalCounters { bursts: 0, packets: 0, empty_polls: 0, tx_packets: 0, tx_dropped: 0, stage_drops: [0; STAGES] }
    }
}

impl LcoreStats {
    /// Counters for `lcore` whose loop runs the named stages (in order).
    pub fn new(lcore: u32, stage_names: Vec<String>) -> LcoreStats {
        let stage_drops = stage_names.iter().map(|_| AtomicU64::new(0)).collect();
        LcoreStats {
            lcore,
            bursts: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            empty_polls: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
            stage_names,
            stage_drops,
        }
    }

    /// The lcore.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Publishes the loop's totals (relaxed stores: no fence, no contention; the loop is the only writer).
    #[inline(always)]
    pub fn publish<const STAGES: usize>(&self, local: &LocalCounters<STAGES>) {
        self.bursts.store(local.bursts, Ordering::Relaxed);
        self.packets.store(local.packets, Ordering::Relaxed);
        self.empty_polls.store(local.empty_polls, Ordering::Relaxed);
        self.tx_packets.store(local.tx_packets, Ordering::Relaxed);
        self.tx_dropped.store(local.tx_dropped, Ordering::Relaxed);
        for (slot, value) in self.stage_drops.iter().zip(local.stage_drops.iter()) {
            slot.store(*value, Ordering::Relaxed);
        }
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> LcoreStatsSnapshot {
        LcoreStatsSnapshot {
            lcore: self.lcore,
            bursts: self.bursts.load(Ordering::Relaxed),
            packets: self.packets.load(Ordering::Relaxed),
            empty_polls: self.empty_polls.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
            stage_drops: self
                .stage_names
                .iter()
                .zip(self.stage_drops.iter())
                .map(|(n, d)| (n.clone(), d.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// The counters as (name, value) pairs, as telemetry serves them.
    pub fn as_pairs(&self) -> Vec<(String, u64)> {
        let s = self.snapshot();
        let mut pairs = vec![
            ("lcore".to_owned(), u64::from(s.lcore)),
            ("bursts".to_owned(), s.bursts),
            ("packets".to_owned(), s.packets),
            ("empty_polls".to_owned(), s.empty_polls),
            ("tx_packets".to_owned(), s.tx_packets),
            ("tx_dropped".to_owned(), s.tx_dropped),
        ];
        pairs.extend(s.stage_drops.into_iter().map(|(n, d)| (format!("drops_{n}"), d)));
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_snapshot() {
        let stats = LcoreStats::new(3, vec!["parse".into(), "filter".into()]);
        let local = LocalCounters::<2> {
            bursts: 2,
            packets: 64,
            empty_polls: 5,
            tx_packets: 60,
            tx_dropped: 1,
            stage_drops: [0, 3],
        };
        stats.publish(&local);
        let snap = stats.snapshot();
        assert_eq!(snap.packets, 64);
        assert_eq!(snap.stage_drops, vec![("parse".to_owned(), 0), ("filter".to_owned(), 3)]);
        assert_eq!(snap.total_dropped(), 4);
        assert!(stats.as_pairs().contains(&("drops_filter".to_owned(), 3)));
    }
}
