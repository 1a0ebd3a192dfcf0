//! Per-lcore counters of a running pipeline: written by the lcore's loop with relaxed stores once per
//! iteration, read by anyone (the pipeline handle, DPDK telemetry) without stopping the loop.
//!
//! Besides packets and drops, the loop measures what each stage costs, the way VPP's `show runtime`
//! and rte_graph's node statistics do: on one iteration in [`COST_SAMPLE_EVERY`] it reads the TSC around
//! every stage's work (its `on_packet` calls and its `emit`) and counts the packets that went in and
//! came out, so cycles per packet per stage cost two TSC reads per stage call on sampled iterations
//! only. The sampled iterations also count their bursts in a power-of-two histogram; the mean burst
//! and the empty-poll ratio come from the exact totals.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Idle iterations (nothing received, nothing sent) after which a loop whose CPU is shared with another
/// busy-polling worker yields the CPU (see [`LcoreStats::publish`]).
pub const YIELD_AFTER_IDLE: u32 = 32;

/// One iteration in this many measures the stages' cycles (a power of two).
pub const COST_SAMPLE_EVERY: u64 = 64;
/// Whether generated loops sample stage costs: the `stage-costs` feature of the `rosette` crate. Off,
/// the sampling code folds away and the loop is what it was without it.
pub const STAGE_COSTS: bool = cfg!(feature = "stage-costs");
/// Buckets of the burst-size histogram: bucket `i` counts bursts of `2^(i-1)..2^i - 1` packets
/// (bucket 1: one packet, 2: two or three, ..., 11: 1024), bucket 0 the empty polls.
pub const BURST_BUCKETS: usize = 12;

/// The histogram bucket of a burst of `received` packets.
#[inline(always)]
pub fn burst_bucket(received: usize) -> usize {
    ((usize::BITS - received.leading_zeros()) as usize).min(BURST_BUCKETS - 1)
}

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
    iterations: AtomicU64,
    sampled_iterations: AtomicU64,
    burst_sizes: [AtomicU64; BURST_BUCKETS],
    stage_cycles: Box<[AtomicU64]>,
    stage_packets: Box<[AtomicU64]>,
    /// Idle iterations in a row (written by the loop only; see [`LcoreStats::publish`]).
    idle_run: AtomicU32,
}

/// What one stage cost on the sampled iterations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageCost {
    /// The stage's declared name.
    pub name: String,
    /// TSC cycles spent in the stage (its `on_packet` calls and its `emit`) on sampled iterations.
    pub cycles: u64,
    /// Packets that went into the stage or came out of its `emit` on sampled iterations.
    pub packets: u64,
}

impl StageCost {
    /// Cycles per packet, once packets were sampled.
    pub fn cycles_per_packet(&self) -> Option<f64> {
        (self.packets > 0).then(|| self.cycles as f64 / self.packets as f64)
    }
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
    /// Loop iterations (each polls every source of the lcore once).
    pub iterations: u64,
    /// Iterations that measured the stages' cycles.
    pub sampled_iterations: u64,
    /// Burst-size histogram of the sampled iterations' polls ([`BURST_BUCKETS`] buckets, see
    /// [`burst_bucket`]; bucket 0: empty polls).
    pub burst_sizes: [u64; BURST_BUCKETS],
    /// What each stage cost on the sampled iterations, in loop order.
    pub stage_costs: Vec<StageCost>,
}

impl LcoreStatsSnapshot {
    /// All drops: every stage's plus tx's.
    pub fn total_dropped(&self) -> u64 {
        self.tx_dropped + self.stage_drops.iter().map(|(_, d)| d).sum::<u64>()
    }

    /// Mean packets per non-empty burst.
    pub fn mean_burst(&self) -> f64 {
        if self.bursts == 0 {
            0.0
        } else {
            self.packets as f64 / self.bursts as f64
        }
    }

    /// Share of polls that received nothing (0..=1).
    pub fn empty_poll_ratio(&self) -> f64 {
        let polls = self.bursts + self.empty_polls;
        if polls == 0 {
            0.0
        } else {
            self.empty_polls as f64 / polls as f64
        }
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
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations that measured the stages' cycles.
    pub sampled_iterations: u64,
    /// Burst-size histogram (see [`burst_bucket`]).
    pub burst_sizes: [u64; BURST_BUCKETS],
    /// Cycles per stage on sampled iterations.
    pub stage_cycles: [u64; STAGES],
    /// Packets into and out of each stage on sampled iterations.
    pub stage_packets: [u64; STAGES],
}

impl<const STAGES: usize> Default for LocalCounters<STAGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const STAGES: usize> LocalCounters<STAGES> {
    /// All zero.
    pub const fn new() -> Self {
        LocalCounters {
            bursts: 0,
            packets: 0,
            empty_polls: 0,
            tx_packets: 0,
            tx_dropped: 0,
            stage_drops: [0; STAGES],
            iterations: 0,
            sampled_iterations: 0,
            burst_sizes: [0; BURST_BUCKETS],
            stage_cycles: [0; STAGES],
            stage_packets: [0; STAGES],
        }
    }

    /// Counts the [`COST_SAMPLE_EVERY`] iterations that end with a sampled one.
    #[inline(always)]
    pub fn count_sampled_iterations(&mut self) {
        self.iterations += COST_SAMPLE_EVERY;
        self.sampled_iterations += 1;
    }

    /// At the end of a loop: counts the iterations since the last sampled one, given the countdown
    /// left (`COST_SAMPLE_EVERY` right after a sampled iteration).
    pub fn count_partial_iterations(&mut self, countdown: u32) {
        self.iterations += COST_SAMPLE_EVERY - u64::from(countdown.min(COST_SAMPLE_EVERY as u32));
    }

    /// Counts one poll that received `received` packets; a `sampled` iteration's poll also goes into
    /// the burst-size histogram (so the histogram is a sample, one iteration in
    /// [`COST_SAMPLE_EVERY`]; the mean burst is exact from the totals).
    #[inline(always)]
    pub fn count_poll(&mut self, received: usize, sampled: bool) {
        if received == 0 {
            self.empty_polls += 1;
        } else {
            self.bursts += 1;
            self.packets += received as u64;
        }
        if sampled {
            self.burst_sizes[burst_bucket(received)] += 1;
        }
    }
}

impl LcoreStats {
    /// Counters for `lcore` whose loop runs the named stages (in order).
    pub fn new(lcore: u32, stage_names: Vec<String>) -> LcoreStats {
        let stage_drops = stage_names.iter().map(|_| AtomicU64::new(0)).collect();
        let zeros = || stage_names.iter().map(|_| AtomicU64::new(0)).collect();
        LcoreStats {
            iterations: AtomicU64::new(0),
            sampled_iterations: AtomicU64::new(0),
            burst_sizes: std::array::from_fn(|_| AtomicU64::new(0)),
            stage_cycles: zeros(),
            stage_packets: zeros(),
            lcore,
            bursts: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            empty_polls: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
            stage_names,
            stage_drops,
            idle_run: AtomicU32::new(0),
        }
    }

    /// The lcore.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Publishes the loop's totals (relaxed stores: no fence, no contention; the loop is the only writer).
    ///
    /// The generated loop calls this once per iteration, which also makes it the place where a loop
    /// gives its CPU away: when another busy-polling worker spins on the same CPU (another rosette
    /// process's, seen by [`crate::substrate::cpus`]), an iteration that received and sent nothing
    /// counts as idle, and after [`YIELD_AFTER_IDLE`] of them in a row the loop yields the CPU
    /// (`sched_yield`), so the other worker runs now — it probably holds what this one waits for —
    /// instead of at the end of a scheduler slice. On a CPU of its own the loop never yields (one
    /// relaxed load of the shared flag per iteration).
    #[inline(always)]
    pub fn publish<const STAGES: usize>(&self, local: &LocalCounters<STAGES>) {
        // On a CPU of its own (the flag clear) this is one relaxed load and a branch.
        if crate::substrate::cpu_shared(self.lcore) {
            self.count_idle(local);
        }
        self.bursts.store(local.bursts, Ordering::Relaxed);
        self.packets.store(local.packets, Ordering::Relaxed);
        self.empty_polls.store(local.empty_polls, Ordering::Relaxed);
        self.tx_packets.store(local.tx_packets, Ordering::Relaxed);
        self.tx_dropped.store(local.tx_dropped, Ordering::Relaxed);
        for (slot, value) in self.stage_drops.iter().zip(local.stage_drops.iter()) {
            slot.store(*value, Ordering::Relaxed);
        }
    }

    /// On a shared CPU: counts this iteration as idle (nothing received or sent since the last publish)
    /// or not, and yields the CPU after [`YIELD_AFTER_IDLE`] idle ones in a row. Not inlined: the loop
    /// body of a CPU of its own keeps only the flag test.
    #[inline(never)]
    fn count_idle<const STAGES: usize>(&self, local: &LocalCounters<STAGES>) {
        let idle = local.packets == self.packets.load(Ordering::Relaxed)
            && local.tx_packets == self.tx_packets.load(Ordering::Relaxed);
        if !idle {
            self.idle_run.store(0, Ordering::Relaxed);
            return;
        }
        let run = self.idle_run.load(Ordering::Relaxed) + 1;
        if run >= YIELD_AFTER_IDLE {
            std::thread::yield_now();
            self.idle_run.store(0, Ordering::Relaxed);
        } else {
            self.idle_run.store(run, Ordering::Relaxed);
        }
    }

    /// Publishes the cost counters (iterations, burst histogram, stage cycles): the loop calls it on
    /// sampled iterations and at the end, so it costs nothing on the others.
    #[inline]
    pub fn publish_costs<const STAGES: usize>(&self, local: &LocalCounters<STAGES>) {
        self.iterations.store(local.iterations, Ordering::Relaxed);
        self.sampled_iterations.store(local.sampled_iterations, Ordering::Relaxed);
        for (slot, value) in self.burst_sizes.iter().zip(local.burst_sizes.iter()) {
            slot.store(*value, Ordering::Relaxed);
        }
        for (slot, value) in self.stage_cycles.iter().zip(local.stage_cycles.iter()) {
            slot.store(*value, Ordering::Relaxed);
        }
        for (slot, value) in self.stage_packets.iter().zip(local.stage_packets.iter()) {
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
            iterations: self.iterations.load(Ordering::Relaxed),
            sampled_iterations: self.sampled_iterations.load(Ordering::Relaxed),
            burst_sizes: std::array::from_fn(|i| self.burst_sizes[i].load(Ordering::Relaxed)),
            stage_costs: self
                .stage_names
                .iter()
                .enumerate()
                .map(|(i, n)| StageCost {
                    name: n.clone(),
                    cycles: self.stage_cycles[i].load(Ordering::Relaxed),
                    packets: self.stage_packets[i].load(Ordering::Relaxed),
                })
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
        pairs.push(("iterations".to_owned(), s.iterations));
        pairs.push(("sampled_iterations".to_owned(), s.sampled_iterations));
        for (i, n) in s.burst_sizes.iter().enumerate() {
            // Bucket i holds bursts of up to 2^i - 1 packets.
            pairs.push((format!("bursts_le_{}", (1u64 << i) - 1), *n));
        }
        for c in s.stage_costs {
            pairs.push((format!("cycles_{}", c.name), c.cycles));
            pairs.push((format!("cost_packets_{}", c.name), c.packets));
        }
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
            ..LocalCounters::new()
        };
        stats.publish(&local);
        let snap = stats.snapshot();
        assert_eq!(snap.packets, 64);
        assert_eq!(snap.stage_drops, vec![("parse".to_owned(), 0), ("filter".to_owned(), 3)]);
        assert_eq!(snap.total_dropped(), 4);
        assert!(stats.as_pairs().contains(&("drops_filter".to_owned(), 3)));
    }

    #[test]
    fn costs_are_sampled_and_published_with_the_histogram() {
        let stats = LcoreStats::new(1, vec!["parse".into()]);
        let mut local = LocalCounters::<1>::new();
        let mut sampled = 0;
        for i in 0..(COST_SAMPLE_EVERY * 3) {
            // As the generated loop does: every COST_SAMPLE_EVERY-th iteration is sampled.
            let sample = (i + 1) % COST_SAMPLE_EVERY == 0;
            if sample {
                local.count_sampled_iterations();
            }
            if sample {
                sampled += 1;
                local.stage_cycles[0] += 100;
                local.stage_packets[0] += 4;
            }
            // Polls alternate between empty and 5 packets; the sampled iterations (64, 128, 192) are the
            // odd-numbered polls' neighbours: i = 63, 127, 191 are odd, so they received 5.
            local.count_poll(if i % 2 == 0 { 0 } else { 5 }, sample);
        }
        stats.publish(&local);
        stats.publish_costs(&local);
        let snap = stats.snapshot();
        assert_eq!((sampled, snap.sampled_iterations, snap.iterations), (3, 3, 192));
        assert_eq!(snap.burst_sizes[0], 0, "no sampled poll was empty");
        assert_eq!(snap.burst_sizes[burst_bucket(5)], 3, "the sampled bursts of 5, in the 4..7 bucket");
        assert_eq!(burst_bucket(5), 3);
        assert_eq!(burst_bucket(1024), BURST_BUCKETS - 1);
        assert_eq!((snap.mean_burst(), snap.empty_poll_ratio()), (5.0, 0.5));
        assert_eq!(snap.stage_costs[0].cycles_per_packet(), Some(25.0));
        assert!(stats.as_pairs().contains(&("bursts_le_7".to_owned(), 3)));
    }
}
