//! Support for tests that run real DPDK (used by rosette's own integration tests and by `pipelines`).
//!
//! DPDK's EAL starts once per process, so every DPDK test runs in a process of its own: the test
//! function re-runs the current test binary for just that test (`--exact`), with `ROSETTE_SCENARIO`
//! naming it; the child sees the variable and runs the body. `cargo test` therefore needs no special
//! runner, and tests still run in parallel (distinct `--file-prefix` per process).
//!
//! `ROSETTE_TEST_MEMORY` selects the memory mode of every test EAL: `auto` (default), `hugepages` or
//! `no-huge`; CI runs the suite in both explicit modes.
//!
//! # A green run means it ran
//! A test that needs something from the machine (hugepages, `dpdk-testpmd`, Graphviz, network
//! namespaces, a CPU feature) asks for it with [`with_resource`] (or [`resource_available`]), naming
//! the resource. When it is missing the test **fails** with what is missing and how to provide it —
//! always in CI (`CI=true`), and locally unless the resource is named in `ROSETTE_ALLOW_SKIP`
//! (comma-separated, e.g. `ROSETTE_ALLOW_SKIP=hugepages,graphviz`). An allowed skip is printed on
//! stderr past libtest's capture and appended to the file `ROSETTE_SKIP_LOG` names (`scripts/test`
//! prints that file in its summary). The resource names are the `RESOURCE_*` constants.

use std::process::Command;
use std::time::Duration;

use crate::substrate::{Eal, EalBuilder, MemoryMode, SpawnUnpinned as _};

/// Runs `body` in a child process of its own (see the module docs). `name` must be the test's name.
pub fn in_own_process(name: &str, body: impl FnOnce()) {
    if std::env::var("ROSETTE_SCENARIO").as_deref() == Ok(name) {
        body();
    } else {
        let output = child_command(name, false).output().expect("spawn the test binary for a DPDK scenario");
        assert_child_ran_one_test(name, &output);
    }
}

/// Asserts that a child started with [`child_command`] succeeded **and ran exactly one test**: a
/// scenario name that matches no test (renamed, misspelt, filtered out) makes libtest print `running 0
/// tests` and exit 0, which must not pass.
pub fn assert_child_ran_one_test(name: &str, output: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "DPDK scenario `{name}` failed in its own process ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status,
    );
    assert!(
        ran_exactly_one_test(&stdout),
        "DPDK scenario `{name}`: its process ran no test (no test of that exact name in {}?):\n--- stdout \
         ---\n{stdout}\n--- stderr ---\n{stderr}",
        std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()
    );
}

/// True when libtest's output says one test ran and passed (`running 1 test` … `test result: ok. 1
/// passed`).
pub fn ran_exactly_one_test(libtest_stdout: &str) -> bool {
    libtest_stdout.lines().any(|l| l == "running 1 test")
        && libtest_stdout.lines().any(|l| l.starts_with("test result: ok. 1 passed;"))
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

/// Launch options of a declared test pipeline: `device` for `port`, the test memory mode, quiet EAL
/// and memif logs.
pub fn launch_options(port: &str, device: impl Into<String>) -> crate::pipeline::LaunchOptions {
    crate::pipeline::LaunchOptions::new()
        .device(port, device)
        .memory(memory_mode())
        .eal_args(["--log-level=lib.eal:error", "--log-level=pmd.net.memif:error"])
}

/// The net_memif device string of one end of a link on `socket` (`role`: `server` or `client`).
pub fn memif_device(role: &str, socket: &str) -> String {
    format!("net_memif0,role={role},socket={socket},socket-abstract=no")
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

/// Hugepages reserved and hugetlbfs mounted (`scripts/setup` as root provides them).
pub const RESOURCE_HUGEPAGES: &str = "hugepages";
/// `dpdk-testpmd` on `PATH` (Debian package `dpdk`).
pub const RESOURCE_TESTPMD: &str = "testpmd";
/// Graphviz's `dot` on `PATH` (Debian package `graphviz`).
pub const RESOURCE_GRAPHVIZ: &str = "graphviz";
/// Root, `ip`, `ethtool`, `python3`, and a kernel that lets us create network namespaces and veth pairs.
pub const RESOURCE_NETNS: &str = "netns";
/// A CPU with the SSE4.2 `crc32` instruction (hardware CRC-32C).
pub const RESOURCE_CRC_HARDWARE: &str = "crc-hardware";

/// What the environment says about a missing resource (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipPolicy {
    /// `CI=true`: every missing resource fails the test.
    Ci,
    /// Locally: the resources named in `ROSETTE_ALLOW_SKIP` may be skipped; any other fails.
    Allowed(Vec<String>),
}

impl SkipPolicy {
    /// The policy of this process's environment.
    pub fn from_env() -> SkipPolicy {
        Self::from_values(std::env::var("CI").ok().as_deref(), std::env::var("ROSETTE_ALLOW_SKIP").ok().as_deref())
    }

    /// The policy for these values of `CI` and `ROSETTE_ALLOW_SKIP`.
    pub fn from_values(ci: Option<&str>, allow: Option<&str>) -> SkipPolicy {
        if ci.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1") {
            return SkipPolicy::Ci;
        }
        let names = allow.unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty());
        SkipPolicy::Allowed(names.map(str::to_owned).collect())
    }

    /// Whether a test may skip what needs `resource`.
    pub fn allows(&self, resource: &str) -> bool {
        match self {
            SkipPolicy::Ci => false,
            SkipPolicy::Allowed(names) => names.iter().any(|n| n == resource),
        }
    }
}

/// Decides about a resource a test needs: `Ok(())` when present (`missing` is `None`); when missing, an
/// allowed skip is `Err(line to report)`, anything else panics with what is missing and how to provide it.
fn decide(resource: &str, missing: Option<String>, provide: &str, policy: &SkipPolicy, at: &str) -> Result<(), String> {
    let Some(missing) = missing else { return Ok(()) };
    match policy {
        SkipPolicy::Ci => panic!(
            "{at}: needs `{resource}`, which is missing: {missing}. To provide it: {provide}. (CI=true: a \
             missing resource is a failure, never a skip; scripts/setup provides every resource.)"
        ),
        policy if policy.allows(resource) => Err(format!("SKIPPED {resource} at {at}: {missing}")),
        _ => panic!(
            "{at}: needs `{resource}`, which is missing: {missing}. To provide it: {provide}. To skip \
             what needs it on this machine instead, set ROSETTE_ALLOW_SKIP={resource} (comma-separated \
             names; never in CI)."
        ),
    }
}

/// Reports an allowed skip: on stderr (written directly, so libtest's capture does not hide it) and as a
/// line appended to the file `ROSETTE_SKIP_LOG` names.
fn report_skip(line: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{line} (test {test})");
    let _ = writeln!(std::io::stderr().lock(), "rosette: {line}");
    if let Some(path) = std::env::var_os("ROSETTE_SKIP_LOG") {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        let written = file.and_then(|mut f| writeln!(f, "{line}"));
        written.unwrap_or_else(|e| panic!("cannot append to ROSETTE_SKIP_LOG={}: {e}", path.to_string_lossy()));
    }
}

/// True when `resource` is present (`missing` is `None`). When it is missing: panics (in CI, or when
/// `ROSETTE_ALLOW_SKIP` does not name it) with `missing` and `provide` (how to get it), or reports the
/// skip and returns false. Use it to choose between two branches that both assert; see
/// [`with_resource`] for a body that runs only with the resource.
#[track_caller]
pub fn resource_available(resource: &str, missing: Option<String>, provide: &str) -> bool {
    let at = std::panic::Location::caller().to_string();
    match decide(resource, missing, provide, &SkipPolicy::from_env(), &at) {
        Ok(()) => true,
        Err(line) => {
            report_skip(&line);
            false
        }
    }
}

/// Runs `body` when `resource` is present; see [`resource_available`] for what happens otherwise.
#[track_caller]
pub fn with_resource<T>(resource: &str, missing: Option<String>, provide: &str, body: impl FnOnce() -> T) -> Option<T> {
    resource_available(resource, missing, provide).then(body)
}

/// `None` when `program` is an executable file on `PATH`, else why not.
pub fn missing_program(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
    (!found).then(|| format!("`{program}` is not on PATH"))
}

/// `None` when hugepages are usable (free pages and a hugetlbfs mount), else why not.
pub fn missing_hugepages() -> Option<String> {
    crate::substrate::hugepage_status().err()
}

/// How to provide [`RESOURCE_HUGEPAGES`].
pub const PROVIDE_HUGEPAGES: &str = "run scripts/setup as root (it reserves ROSETTE_HUGEPAGES=1024 pages of 2 MiB \
     and mounts hugetlbfs on /dev/hugepages)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_never_allows_a_skip() {
        let ci = SkipPolicy::from_values(Some("true"), Some("hugepages"));
        assert_eq!(ci, SkipPolicy::Ci);
        assert!(!ci.allows("hugepages"));
        let err = std::panic::catch_unwind(|| decide("hugepages", Some("none free".into()), "setup", &ci, "here"));
        let msg = *err.expect_err("CI fails").downcast::<String>().unwrap();
        assert!(msg.contains("needs `hugepages`") && msg.contains("none free") && msg.contains("setup"), "{msg}");
    }

    #[test]
    fn locally_only_named_resources_are_skipped() {
        let local = SkipPolicy::from_values(None, Some("graphviz, hugepages"));
        assert!(local.allows("hugepages") && local.allows("graphviz") && !local.allows("netns"));
        let skipped = decide("graphviz", Some("no dot".into()), "apt-get install graphviz", &local, "t.rs:1:1");
        assert_eq!(skipped, Err("SKIPPED graphviz at t.rs:1:1: no dot".to_owned()));
        assert_eq!(decide("netns", None, "x", &local, "t.rs:1:1"), Ok(()), "present resources always run");
        let err = std::panic::catch_unwind(|| decide("netns", Some("not root".into()), "run as root", &local, "t"));
        let msg = *err.expect_err("not named: fails").downcast::<String>().unwrap();
        assert!(msg.contains("ROSETTE_ALLOW_SKIP=netns") && msg.contains("run as root"), "{msg}");
        let nothing = SkipPolicy::from_values(Some("false"), None);
        assert!(!nothing.allows("hugepages"));
    }

    #[test]
    fn a_child_that_ran_no_test_is_seen() {
        let none = "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 9 filtered out\n";
        assert!(!ran_exactly_one_test(none));
        let one = "\nrunning 1 test\ntest x ... body output\nok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 \
                   measured; 8 filtered out; finished in 0.5s\n";
        assert!(ran_exactly_one_test(one));
    }

    #[test]
    fn missing_program_names_it() {
        assert_eq!(missing_program("sh"), None);
        assert!(missing_program("rosette-no-such-program").is_some_and(|m| m.contains("not on PATH")));
    }
}
