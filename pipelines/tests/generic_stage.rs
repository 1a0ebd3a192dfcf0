//! A user stage with a generic type argument, declared in YAML (`crate::KeepEvery<U4>`) and in the
//! attribute form (`crate::KeepEvery<U2>`, no turbofish), compiles and runs: on net_null0 the stage keeps
//! exactly every N-th packet, so the type argument reached the generated loop.

use std::marker::PhantomData;
use std::time::Duration;

use rosette::dpdk_test;
use rosette::pipeline::{Context, LaunchOptions, Pipeline, Stage, Verdict};
use rosette::substrate::Mbuf;
use rosette::testing::{assert_no_mbuf_leaked, memory_mode};
use rosette::typenum::Unsigned;

rosette_macros::pipeline!("tests/generic_stage.yaml");

#[rosette_macros::pipeline_mod(eal(lcores = "0-1", extra_args = ["--log-level=lib.eal:error"]))]
mod keep_every_attr {
    port!(wire, device = "net_null0", mempool(size = 4095, cache = 128));
    core!(lcore = 1, poll(from = wire.rx[0], stages = [crate::KeepEvery<rosette::typenum::U2>], to = wire.tx[0]));
}

/// Keeps the first of every `N` packets and drops the others.
#[derive(rosette::pipeline::StageParams)]
#[params(stage)]
pub struct KeepEvery<N: Unsigned + Send + 'static> {
    #[param(skip)]
    seen: u64,
    #[param(skip)]
    every: PhantomData<N>,
}

impl<N: Unsigned + Send + 'static> Stage for KeepEvery<N> {
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        let keep = self.seen.is_multiple_of(N::U64);
        self.seen += 1;
        if keep {
            Verdict::Pass(packet)
        } else {
            Verdict::Dropped
        }
    }
}

/// Runs a launched pipeline for a moment and checks that its one stage kept every `every`-th packet.
fn check_keeps_every(pipeline: Pipeline, every: u64) {
    std::thread::sleep(Duration::from_millis(300));
    let eal = pipeline.eal().clone();
    pipeline.stop();
    let report = pipeline.join().expect("pipeline ended cleanly");
    let lcore = &report.lcores[0];
    assert!(lcore.packets > 0, "net_null delivers frames");
    assert_eq!(lcore.stage_drops.len(), 1);
    assert_eq!(lcore.stage_drops[0].0, "keep_every");
    let kept = lcore.packets.div_ceil(every);
    assert_eq!(lcore.stage_drops[0].1, lcore.packets - kept, "not every {every}th packet kept");
    assert_eq!(lcore.tx_packets + lcore.tx_dropped, kept);
    assert_eq!(report.mbufs_leaked, 0);
    assert_no_mbuf_leaked(&eal);
}

dpdk_test! {
    fn generic_stage_declared_in_yaml_keeps_every_fourth_packet() {
        assert_eq!(keep_every_yaml::SPEC.lcores[0].stages, &["keep_every"]);
        let pipeline = keep_every_yaml::launch(&LaunchOptions::new().memory(memory_mode())).expect("launch");
        check_keeps_every(pipeline, 4);
    }
}

dpdk_test! {
    fn generic_stage_declared_with_attributes_keeps_every_second_packet() {
        let pipeline = keep_every_attr::launch(&LaunchOptions::new().memory(memory_mode())).expect("launch");
        check_keeps_every(pipeline, 2);
    }
}
