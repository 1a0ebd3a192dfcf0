//! The seeded fault injector ([`crate::channel::fault`]) as a pipeline stage that can sit on any link.
//!
//! Every packet of the burst gets a fate from the injector: dropped (loss, blackhole), delivered
//! (possibly bit-flipped or truncated), duplicated (a private copy, so that a channel after the stage
//! can strip the headers of both), or
//! held back for a random delay so later packets overtake it (reordering). Held packets wait in a
//! queue allocated once at construction and are put back into a later burst when their time comes;
//! when the queue is full a packet is delivered at once instead (and counted as not reordered).
//!
//! Corruption and truncation must not write bytes another handle can see: a packet that is shared (a
//! channel keeps it for retransmission) or chained behind a header mbuf is first replaced by a private
//! single-segment copy — only when corruption or truncation is configured, as a cost of the test
//! instrument, never on a production path.
//!
//! Blackhole windows are relative to the stage's first iteration (the TSC origin is arbitrary).
//!
//! Declared as `{ type: fault, params: { seed: 7, loss_ppm: 1000, reorder_delay: 200us, .. } }` (see
//! [`FaultParams`](super::params::stock::FaultParams); one blackhole window with `blackhole_start` / `blackhole_end`).
use std::collections::VecDeque;

use super::{Context, Stage, StageReport, Verdict};
use crate::channel::fault::{Fate, FaultConfig, FaultInjector, FaultStats};
use crate::channel::time::Instant;
use crate::substrate::{Batch, Mbuf};

/// Packets that can be held back for reordering at once.
pub const DEFAULT_HOLD_CAPACITY: usize = 1024;

/// A fault-injecting stage. See the module documentation.
pub struct FaultStage {
    injector: FaultInjector,
    /// Whether packets must be made private before the injector may write them.
    writes: bool,
    held: VecDeque<(Instant, Mbuf)>,
    hold_capacity: usize,
    start: Option<u64>,
    enabled: bool,
    /// The configuration never changes a packet: every packet passes untouched and uncounted.
    quiet: bool,
    /// Packets released from the hold queue.
    released: u64,
}

impl FaultStage {
    /// A stage injecting the faults of `config`, seeded with `seed` (same seed and traffic, same fates).
    pub fn new(seed: u64, config: FaultConfig) -> FaultStage {
        FaultStage::with_hold_capacity(seed, config, DEFAULT_HOLD_CAPACITY)
    }

    /// As [`FaultStage::new`], holding at most `capacity` packets back for reordering.
    pub fn with_hold_capacity(seed: u64, config: FaultConfig, capacity: usize) -> FaultStage {
        FaultStage {
            writes: config.corrupt_ppm > 0 || config.truncate_ppm > 0,
            quiet: config.is_quiet(),
            injector: FaultInjector::new(seed, config),
            held: VecDeque::with_capacity(capacity),
            hold_capacity: capacity,
            start: None,
            enabled: true,
            released: 0,
        }
    }

    /// What was inflicted so far.
    pub fn stats(&self) -> &FaultStats {
        self.injector.stats()
    }

    /// Turns injection on or off (off: packets pass untouched; held ones are still released on time).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Packets currently held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn hold(&mut self, due: Instant, m: Mbuf) -> Option<Mbuf> {
        if self.held.len() >= self.hold_capacity {
            return Some(m);
        }
        self.held.push_back((due, m));
        None
    }
}

impl FaultStage {
    /// Times as the injector sees them: (now, time since the stage first ran — blackhole windows are
    /// relative to that).
    fn clocks(&mut self, cx: &Context) -> (Instant, Instant) {
        let nanos = cx.now_nanos();
        let start = *self.start.get_or_insert(nanos);
        (Instant::from_nanos(nanos), Instant::from_nanos(nanos - start))
    }
}

impl Stage for FaultStage {
    #[inline]
    fn on_packet(&mut self, packet: Mbuf, cx: &Context) -> Verdict {
        // Disabled, or nothing to inflict: pass without reading the clock.
        if !self.enabled || self.quiet {
            return Verdict::Pass(packet);
        }
        let (now, rel) = self.clocks(cx);
        let pool = cx.pool();
        // A packet another handle shares (kept for retransmission) or spread over segments is damaged in
        // a private copy, never in place.
        let packet = if self.writes && (packet.refcnt() > 1 || packet.segments() > 1) {
            match pool.and_then(|p| packet.linearized_copy(p)) {
                Some(copy) => copy,
                None => packet,
            }
        } else {
            packet
        };
        match self.injector.apply(rel, packet) {
            Fate::Drop => Verdict::Dropped,
            Fate::Deliver { buf, delay, duplicate } => {
                // Duplicates follow their original through the hold queue, due now, so they go out right
                // after this burst's survivors. A private copy lets a receiving channel strip the headers
                // of each (shared mbufs cannot be changed).
                if let Some(dup) = duplicate {
                    let dup = match pool.and_then(|p| dup.linearized_copy(p)) {
                        Some(copy) => copy,
                        None => dup,
                    };
                    if self.held.len() < self.hold_capacity {
                        self.held.push_back((now, dup));
                    }
                }
                if delay.is_zero() || self.held.len() >= self.hold_capacity {
                    Verdict::Pass(buf)
                } else {
                    self.held.push_back((now + delay, buf));
                    Verdict::Taken
                }
            }
        }
    }

    #[inline]
    fn emit(&mut self, batch: &mut Batch<'_>, cx: &Context) {
        if self.held.is_empty() {
            return;
        }
        let (now, _) = self.clocks(cx);
        // Release what is due, oldest first, as room allows. The queue is not sorted by due time, so
        // scan it once; packets not yet due keep their order.
        let mut i = 0;
        while i < self.held.len() && batch.len() < batch.capacity() {
            if self.held[i].0 <= now {
                if let Some((_, m)) = self.held.remove(i) {
                    if let Err(m) = batch.push(m) {
                        let _ = self.hold(now, m);
                        break;
                    }
                    self.released += 1;
                }
            } else {
                i += 1;
            }
        }
    }

    fn finish(&mut self, _cx: &Context) {
        self.held.clear();
    }

    /// A [`FaultReport`].
    fn report(&self) -> Option<StageReport> {
        Some(StageReport::new(FaultReport { stats: *self.stats(), held: self.held() }))
    }
}

/// What a [`FaultStage`] reports when its loop stops ([`Stage::report`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultReport {
    /// What was inflicted.
    pub stats: FaultStats,
    /// Packets still held back when the loop stopped (freed by [`Stage::finish`]).
    pub held: usize,
}
