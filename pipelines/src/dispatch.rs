//! The dispatch benchmark's three ways of running the same four stages — parse, filter, rewrite,
//! count — over a closed loop of UDP packets circulating through a `net_ring` port:
//! - **generated**: the pipeline compiled from `pipelines/dispatch.yaml` (static dispatch);
//! - **hand-fused**: one loop with the four stages' work written inline, as an expert would;
//! - **dyn**: the same stage types in a `Vec<Box<dyn Stage>>` chosen at run time.
//!
//! All three use the same spec (EAL, port, pool), the same traffic source (512 datagrams injected
//! once), burst 32, and report packets through the loop per second.

use rosette::pipeline::stages::{Count, DropUdpPort, InjectUdp, ParseUdp, SetMacs};
use rosette::pipeline::stats::LocalCounters;
use rosette::pipeline::{LaunchError, LcoreIo, Stage};
use rosette::substrate::Burst;
use rosette::typenum::U32;

/// Datagrams circulating in the loop (below the ring port's capacity, so tx never refuses).
pub const IN_FLIGHT: u32 = 512;
/// Destination port of the injected datagrams (the filter drops port 53, so nothing is dropped).
pub const DST_PORT: u16 = 9000;
/// The port the filter drops.
pub const FILTERED_PORT: u16 = 53;
/// Addresses the rewrite stage writes.
pub const REWRITE_SRC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
/// Addresses the rewrite stage writes.
pub const REWRITE_DST: [u8; 6] = [2, 0, 0, 0, 0, 0x22];

/// The four stages and the source, fused into one loop by hand: what the generated loop is compared to.
pub fn hand_fused_loop(mut io: LcoreIo) -> Result<(), LaunchError> {
    let mut rx = io.take_rx(0)?;
    let mut tx = io.take_tx(0)?;
    let stats = io.stats();
    let stop = io.stop_flag();
    let cx = io.context();
    let mut inject = InjectUdp::new(IN_FLIGHT, 18, DST_PORT);
    let parse = ParseUdp::new(true);
    let filter = DropUdpPort::new(FILTERED_PORT);
    let rewrite = SetMacs::new(REWRITE_SRC, REWRITE_DST);
    let mut count = Count::new();
    let mut burst = Burst::<U32>::new();
    let mut counters = LocalCounters::<5>::new();
    while !stop.is_set() {
        let received = rx.rx(&mut burst);
        if received == 0 {
            counters.empty_polls += 1;
        } else {
            counters.bursts += 1;
            counters.packets += received as u64;
        }
        inject.process(&mut burst.batch(), &cx);
        let dropped = burst.retain(|m| {
            parse.accepts(m.data()) && filter.passes(m.data()) && rewrite.rewrite(m.data_mut()) && {
                count.packets += 1;
                count.bytes += m.pkt_len() as u64;
                true
            }
        });
        counters.stage_drops[1] += dropped as u64;
        if !burst.is_empty() {
            let (sent, refused) = tx.tx_or_drop(&mut burst);
            counters.tx_packets += sent as u64;
            counters.tx_dropped += refused as u64;
        }
        stats.publish(&counters);
    }
    stats.publish(&counters);
    rx.drain(1024);
    Ok(())
}

/// The same stages behind `Box<dyn Stage>`, chosen at run time.
pub fn dyn_loop(mut io: LcoreIo) -> Result<(), LaunchError> {
    let mut rx = io.take_rx(0)?;
    let mut tx = io.take_tx(0)?;
    let stats = io.stats();
    let stop = io.stop_flag();
    let cx = io.context();
    let mut stages: Vec<Box<dyn Stage>> = vec![
        Box::new(InjectUdp::new(IN_FLIGHT, 18, DST_PORT)),
        Box::new(ParseUdp::new(true)),
        Box::new(DropUdpPort::new(FILTERED_PORT)),
        Box::new(SetMacs::new(REWRITE_SRC, REWRITE_DST)),
        Box::new(Count::new()),
    ];
    let mut burst = Burst::<U32>::new();
    let mut counters = LocalCounters::<5>::new();
    while !stop.is_set() {
        let received = rx.rx(&mut burst);
        if received == 0 {
            counters.empty_polls += 1;
        } else {
            counters.bursts += 1;
            counters.packets += received as u64;
        }
        for (i, stage) in stages.iter_mut().enumerate() {
            counters.stage_drops[i] += u64::from(stage.process(&mut burst.batch(), &cx));
        }
        if !burst.is_empty() {
            let (sent, refused) = tx.tx_or_drop(&mut burst);
            counters.tx_packets += sent as u64;
            counters.tx_dropped += refused as u64;
        }
        stats.publish(&counters);
    }
    for stage in &mut stages {
        stage.finish(&cx);
    }
    stats.publish(&counters);
    rx.drain(1024);
    Ok(())
}
