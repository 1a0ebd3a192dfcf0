//! Runs the built `bench-forward` briefly (`--seconds 1 --rounds 1`: one rosette round on the generated
//! pipeline, one testpmd round, the hand loop) and checks that it exits 0 and ends with the ratio line.
//! Needs `dpdk-testpmd` (resource `testpmd`, package `dpdk`, which `scripts/setup` installs): without it
//! the test fails, unless `ROSETTE_ALLOW_SKIP` names `testpmd` (never in CI; see `rosette::testing`).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rosette::substrate::MemoryMode;
use rosette::testing::{memory_mode, missing_program, with_resource, RESOURCE_TESTPMD};

#[test]
fn bench_forward_prints_the_ratio() {
    with_resource(
        RESOURCE_TESTPMD,
        missing_program("dpdk-testpmd"),
        "apt-get install -y dpdk (scripts/setup installs it)",
        run_bench_forward,
    );
}

fn run_bench_forward() {
    let memory = match memory_mode() {
        MemoryMode::Auto => "auto",
        MemoryMode::Hugepages => "hugepages",
        MemoryMode::NoHuge => "no-huge",
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench-forward"))
        .args(["--seconds", "1", "--rounds", "1", "--memory", memory])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A process group of its own: a time-out kills bench-forward with the testpmd it started.
        .process_group(0)
        .spawn()
        .expect("start bench-forward");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bench-forward") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!("bench-forward did not finish within {limit:?}:\n{}", reader.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().expect("stdout reader");
    print!("{out}");
    assert!(status.success(), "bench-forward failed ({status}):\n{out}");
    for prefix in ["rosette (generated pipeline bench_forward.yaml): median ", "testpmd io-fwd: median "] {
        assert!(out.lines().any(|l| l.starts_with(prefix)), "no `{prefix}…` line in:\n{out}");
    }
    let last = out.lines().last().unwrap_or_default();
    let ratio = last.strip_prefix("ratio rosette/testpmd: ").and_then(|r| r.parse::<f64>().ok());
    assert!(ratio.is_some_and(|r| r > 0.0), "the last line is not `ratio rosette/testpmd: X.XX`:\n{out}");
}
