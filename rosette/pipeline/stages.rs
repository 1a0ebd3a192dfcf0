//! Stock stages: small, allocation-free building blocks for pipelines and benchmarks.

use super::{Context, Stage};
use crate::substrate::Batch;

/// Swaps source and destination MAC addresses of every frame: a reflector. Frames shorter than an
/// Ethernet header are dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacSwap;

impl MacSwap {
    /// The stage.
    pub const fn new() -> Self {
        MacSwap
    }
}

impl Stage for MacSwap {
    #[inline]
    fn process(&mut self, batch: &mut Batch<'_>, _cx: &Context) -> u32 {
        batch.retain(|m| {
            let data = m.data_mut();
            if data.len() < 14 {
                return false;
            }
            let (dst, rest) = data.split_at_mut(6);
            dst.swap_with_slice(&mut rest[..6]);
            true
        }) as u32
    }
}

/// Passes everything on unchanged and counts packets and bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count {
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
}

impl Count {
    /// A counter at zero.
    pub const fn new() -> Self {
        Count { packets: 0, bytes: 0 }
    }
}

impl Stage for Count {
    #[inline]
    fn process(&mut self, batch: &mut Batch<'_>, _cx: &Context) -> u32 {
        self.packets += batch.len() as u64;
        self.bytes += batch.as_slice().iter().map(|m| m.pkt_len() as u64).sum::<u64>();
        0
    }
}

/// Drops every packet (a sink).
#[derive(Debug, Clone, Copy, Default)]
pub struct DropAll;

impl DropAll {
    /// The stage.
    pub const fn new() -> Self {
        DropAll
    }
}

impl Stage for DropAll {
    #[inline]
    fn process(&mut self, batch: &mut Batch<'_>, _cx: &Context) -> u32 {
        let n = batch.len() as u32;
        batch.clear();
        n
    }
}
