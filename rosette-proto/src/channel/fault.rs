//! A seeded fault injector for any link: loss, reordering, duplication, corruption, truncation and
//! blackhole windows.
//!
//! In the spirit of smoltcp's `FaultInjector`, but not tied to a device: [`FaultInjector::apply`]
//! takes one packet and returns its [`Fate`] — dropped, or delivered (possibly damaged, possibly
//! late, possibly twice). The caller decides what "late" means: the simulated link in
//! [`crate::channel::sim`] adds the delay to the arrival time; a pipeline stage can hold the packet
//! back. The same seed and the same packet sequence always give the same fates.
//!
//! Probabilities are in parts per million, so configurations are exact integers.
#![forbid(unsafe_code)]

use core::time::Duration;

use crate::buf::PacketBuf;
use crate::channel::time::Instant;

/// A tiny deterministic PRNG (SplitMix64): good statistical quality, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (every seed, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for fault injection and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `ppm` / 1,000,000.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(1_000_000) < u64::from(ppm)
    }
}

/// What to inflict, each as a probability per packet in parts per million.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Drop the packet.
    pub loss_ppm: u32,
    /// Deliver a second copy.
    pub duplicate_ppm: u32,
    /// Hold the packet back by a random delay up to `reorder_delay`, so later packets overtake it.
    pub reorder_ppm: u32,
    /// Largest extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Flip one random bit.
    pub corrupt_ppm: u32,
    /// Cut the packet to a random shorter length.
    pub truncate_ppm: u32,
    /// Windows `[start, end)` during which every packet is dropped.
    pub blackholes: Vec<(Instant, Instant)>,
}

impl FaultConfig {
    /// True when this configuration never changes a packet (every rate zero, no blackhole window).
    pub fn is_quiet(&self) -> bool {
        let rates = [self.loss_ppm, self.duplicate_ppm, self.reorder_ppm, self.corrupt_ppm, self.truncate_ppm];
        rates.iter().all(|&r| r == 0) && self.blackholes.is_empty()
    }

    /// Loss only.
    pub fn loss(ppm: u32) -> Self {
        FaultConfig { loss_ppm: ppm, ..FaultConfig::default() }
    }
}

/// Counters of what was inflicted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets offered.
    pub packets: u64,
    /// Dropped at random.
    pub lost: u64,
    /// Dropped in a blackhole window.
    pub blackholed: u64,
    /// Duplicated.
    pub duplicated: u64,
    /// Delayed for reordering.
    pub reordered: u64,
    /// Bit-flipped.
    pub corrupted: u64,
    /// Truncated.
    pub truncated: u64,
}

/// The fate of one packet.
#[derive(Debug)]
pub enum Fate<B> {
    /// Gone.
    Drop,
    /// Delivered after `delay` extra (zero unless reordered); `duplicate` is a second copy to
    /// deliver right after it.
    Deliver {
        /// The packet, possibly damaged.
        buf: B,
        /// Extra delay before delivery.
        delay: Duration,
        /// A copy to deliver as well.
        duplicate: Option<B>,
    },
}

/// A seeded fault injector. See the module documentation.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    cfg: FaultConfig,
    rng: Rng,
    stats: FaultStats,
}

impl FaultInjector {
    /// An injector with its own PRNG seeded with `seed`.
    pub fn new(seed: u64, cfg: FaultConfig) -> Self {
        FaultInjector { cfg, rng: Rng::new(seed), stats: FaultStats::default() }
    }

    /// An injector that does nothing.
    pub fn none() -> Self {
        FaultInjector::new(0, FaultConfig::default())
    }

    /// The configuration (mutable: faults may change during a run).
    pub fn config_mut(&mut self) -> &mut FaultConfig {
        &mut self.cfg
    }

    /// What was inflicted so far.
    pub fn stats(&self) -> &FaultStats {
        &self.stats
    }

    /// Decides the fate of one packet sent at `now`.
    pub fn apply<B: PacketBuf>(&mut self, now: Instant, mut buf: B) -> Fate<B> {
        self.stats.packets += 1;
        if self.cfg.blackholes.iter().any(|&(a, b)| a <= now && now < b) {
            self.stats.blackholed += 1;
            return Fate::Drop;
        }
        if self.rng.chance(self.cfg.loss_ppm) {
            self.stats.lost += 1;
            return Fate::Drop;
        }
        let duplicate = if self.rng.chance(self.cfg.duplicate_ppm) {
            self.stats.duplicated += 1;
            buf.share()
        } else {
            None
        };
        if self.rng.chance(self.cfg.corrupt_ppm) && !buf.is_empty() && !buf.is_shared() {
            let bit = self.rng.below(buf.len() as u64 * 8) as usize;
            buf.data_mut()[bit / 8] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        if self.rng.chance(self.cfg.truncate_ppm) && !buf.is_empty() {
            let cut = 1 + self.rng.below(buf.len() as u64) as usize;
            if buf.trim(cut).is_ok() {
                self.stats.truncated += 1;
            }
        }
        let mut delay = Duration::ZERO;
        if self.rng.chance(self.cfg.reorder_ppm) {
            let max = self.cfg.reorder_delay.as_nanos().min(u128::from(u64::MAX)) as u64;
            delay = Duration::from_nanos(1 + self.rng.below(max.max(1)));
            self.stats.reordered += 1;
        }
        Fate::Deliver { buf, delay, duplicate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;

    #[test]
    fn same_seed_same_fates_and_rates_are_close() {
        let cfg = FaultConfig {
            loss_ppm: 100_000,
            duplicate_ppm: 50_000,
            corrupt_ppm: 50_000,
            truncate_ppm: 50_000,
            reorder_ppm: 50_000,
            reorder_delay: Duration::from_micros(100),
            ..FaultConfig::default()
        };
        let run = |seed| {
            let mut f = FaultInjector::new(seed, cfg.clone());
            let mut out = Vec::new();
            for i in 0..20_000u32 {
                match f.apply(Instant::from_nanos(u64::from(i)), VecBuf::from_slice(&i.to_be_bytes())) {
                    Fate::Drop => out.push(None),
                    Fate::Deliver { buf, delay, .. } => out.push(Some((buf.data().to_vec(), delay))),
                }
            }
            (out, *f.stats())
        };
        let (a, sa) = run(7);
        let (b, _) = run(7);
        assert_eq!(a, b);
        assert!((1_700..2_300).contains(&sa.lost), "{sa:?}");
        assert!((800..1_200).contains(&sa.duplicated), "{sa:?}");
    }

    #[test]
    fn blackhole_drops_everything_inside_the_window() {
        let cfg = FaultConfig {
            blackholes: vec![(Instant::from_nanos(10), Instant::from_nanos(20))],
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(1, cfg);
        assert!(matches!(f.apply(Instant::from_nanos(9), VecBuf::from_slice(b"a")), Fate::Deliver { .. }));
        assert!(matches!(f.apply(Instant::from_nanos(10), VecBuf::from_slice(b"a")), Fate::Drop));
        assert!(matches!(f.apply(Instant::from_nanos(20), VecBuf::from_slice(b"a")), Fate::Deliver { .. }));
    }
}
