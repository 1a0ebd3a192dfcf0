//! Support for tests that run real DPDK (used by rosette's own integration tests and by `pipelines`).
//!
//! DPDK's EAL starts once per process, so every DPDK test runs in a process of its own: the test
//! function re-runs the current test binary for just that test (`--exact`), with `ROSETTE_SCENARIO`
//! naming it; the child sees the variable and runs the body. `cargo test` therefore needs no special
//! runner, and tests still run in parallel (distinct `--file-prefix` per process).
//!
//! `ROSETTE_TEST_MEMORY` selects the memory mode of every test EAL: `auto` (default), `hugepages` or
//! `no-huge`; CI runs the suite in both explicit modes.

use std::process::Command;
use std::time::Duration;

use crate::substrate::{Eal, EalBuilder, MemoryMode, SpawnUnpinned as _};

/// Runs `body` in a child process of its own (see the module docs). `name` must be the test's name.
pub fn in_own_process(name: &str, body: impl FnOnce()) {
    if std::env::var("ROSETTE_SCENARIO").as_deref() == Ok(name) {
        body();
        return;
    }
    let output = child_command(name, false).output().expect("spawn the test binary for a DPDK scenario");
    assert!(
        output.status.success(),
        "DPDK scenario `{name}` failed in its own process ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A command that runs the test `name` of the current test binary as a DPDK child process.
pub fn child_command(name: &str, ignored: bool) -> Command {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.unpinned();
    cmd.arg(name).arg("--exact").arg("--nocapture").arg("--test-threads=1");
    if ignored {
        cmd.arg("--ignored");
    }
    cmd.env("ROSETTE_SCENARIO", name);
    cmd
}

/// True in the child process that runs scenario `name`.
pub fn is_scenario(name: &str) -> bool {
    std::env::var("ROSETTE_SCENARIO").as_deref() == Ok(name)
}

/// Defines a `#[test]` whose body runs in its own DPDK process (see [`crate::testing`]).
#[macro_export]
macro_rules! dpdk_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            $crate::testing::in_own_process(stringify!($name), || $body);
        }
    };
}

/// The memory mode tests run in.
pub fn memory_mode() -> MemoryMode {
    match std::env::var("ROSETTE_TEST_MEMORY") {
        Ok(mode) => MemoryMode::parse(&mode)
            .unwrap_or_else(|| panic!("ROSETTE_TEST_MEMORY={mode}: use auto, hugepages or no-huge")),
        Err(_) => MemoryMode::Auto,
    }
}

/// An EAL builder for tests: lcores 0 and 1 (main 0), the test memory mode, quiet logs.
pub fn test_eal() -> EalBuilder {
    EalBuilder::new().lcores([0, 1]).memory(memory_mode()).extra_args(["--log-level=lib.eal:error"])
}

/// Starts EAL with the given vdevs.
pub fn start_eal(vdevs: &[&str]) -> Eal {
    let mut builder = test_eal();
    for v in vdevs {
        builder = builder.vdev(*v);
    }
    builder.start().unwrap_or_else(|e| panic!("EAL start: {e}"))
}

/// Asserts that every mbuf of every pool went home: the last check of every DPDK test.
pub fn assert_no_mbuf_leaked(eal: &Eal) {
    assert_eq!(eal.mbufs_outstanding(), 0, "mbufs were not returned to their pools");
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}
