//! A stage that cannot be built fails `launch()` with the reason: the stage, the param and where the
//! param was declared (`file:line:col`), not a pipeline running without the stage (whose endpoint
//! lookup would then time out with `NotFound`). The params here pass every compile-time check; they
//! are refused only when the stage is built on its lcore. After the failed launch the pipeline is
//! shut down whole: EAL cleaned up, which it is only when every mbuf went back to its pool.
//!
//! Every scenario runs in a process of its own (EAL starts once per process). The pipelines are
//! declared in `tests/pipelines/launch_errors.yaml`.

use std::time::Instant;

use rosette::dpdk_test;
use rosette::pipeline::params::{BuildError, DeclaredStage, StageEnv};
use rosette::pipeline::{Context, LaunchError, LaunchOptions, Pipeline, Stage, StageParams, Verdict};
use rosette::substrate::{eal_running, Mbuf};
use rosette::testing::memory_mode;

rosette_macros::pipeline!("tests/pipelines/launch_errors.yaml");

/// Passes at most `limit` packets and drops the rest.
#[derive(Debug)]
pub struct Budget {
    left: u64,
}

/// Params of [`Budget`].
#[derive(Debug, Clone, StageParams)]
pub struct BudgetParams {
    /// Packets passed before the stage drops everything.
    pub limit: u64,
}

impl Stage for Budget {
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        if self.left == 0 {
            return Verdict::Dropped;
        }
        self.left -= 1;
        Verdict::Pass(packet)
    }
}

impl DeclaredStage for Budget {
    type Params = BudgetParams;
    fn build(p: BudgetParams, _env: &StageEnv) -> Result<Self, BuildError> {
        // A stage's own rule, which no compile-time check knows.
        if p.limit == 0 {
            return Err(BuildError::in_param("limit", "param `limit` must be at least 1 (0 would drop everything)"));
        }
        Ok(Budget { left: p.limit })
    }
}

fn options() -> LaunchOptions {
    LaunchOptions::new().memory(memory_mode())
}

/// The error of a launch that must fail, and checks that it failed as a whole: EAL was cleaned up,
/// which it is only when no pool has an mbuf out and no port, pool or lcore is left.
fn launch_error(result: Result<Pipeline, LaunchError>) -> String {
    let error = match result {
        Ok(pipeline) => {
            let _ = pipeline.join();
            panic!("launch() succeeded with a stage that cannot be built");
        }
        Err(e) => e,
    };
    assert!(matches!(error, LaunchError::Config(_)), "not a configuration error: {error:?}");
    assert!(!eal_running(), "EAL is still up after the failed launch: a loop, pool or mbuf was left behind");
    error.to_string()
}

dpdk_test! {
    fn a_param_the_stage_refuses_at_run_time_fails_launch_with_its_name_and_location() {
        let started = Instant::now();
        let error = launch_error(budget::launch(&options()));
        assert_eq!(
            error,
            "tests/pipelines/launch_errors.yaml:18:30: lcore 1: stage `crate::Budget`: param `limit` must be at \
             least 1 (0 would drop everything)"
        );
        // The answer comes from the lcore as soon as the stage fails, not after an endpoint timeout.
        assert!(started.elapsed().as_secs() < 30, "launch took {:?}", started.elapsed());
    }
}

dpdk_test! {
    fn a_bad_run_time_override_fails_launch_naming_the_param_and_the_declaration_it_came_through() {
        std::env::set_var("ROSETTE_TEST_FAULT_OVERRIDE", "loss_ppm=2000000");
        let error = launch_error(fault_override::launch(&options()));
        assert_eq!(
            error,
            "tests/pipelines/launch_errors.yaml:35:42: lcore 1: stage `fault`: $ROSETTE_TEST_FAULT_OVERRIDE: param \
             `loss_ppm`: expected an integer from 0 to 1000000, found integer 2000000 (out of range)"
        );
    }
}

dpdk_test! {
    fn a_stage_that_cannot_be_built_on_one_lcore_stops_the_loops_already_running() {
        // Lcore 1's loop is polling by the time lcore 2 fails: the launch still fails whole.
        let error = launch_error(two_lcores::launch(&options()));
        assert_eq!(
            error,
            "tests/pipelines/launch_errors.yaml:58:30: lcore 2: stage `crate::Budget`: param `limit` must be at \
             least 1 (0 would drop everything)"
        );
    }
}
