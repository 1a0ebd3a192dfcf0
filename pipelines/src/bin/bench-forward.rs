//! `bench-forward`: rosette's product path against `dpdk-testpmd --forward-mode=io`, in one run.
//!
//! Usage: `cargo run --release -p pipelines --bin bench-forward -- [--seconds S] [--rounds N]
//! [--memory auto|hugepages|no-huge]`
//!
//! - **rosette** is the pipeline declared in `pipelines/bench_forward.yaml` (one worker lcore forwarding
//!   `net_null0` ⇄ `net_null1`, burst 32, no stages), compiled by `rosette_macros::pipeline!` into its
//!   generated poll loop and started with `bench_forward::launch` — what a user runs.
//! - **testpmd** runs io forwarding on the same vdevs and lcores with the same burst, mempool size and
//!   cache and EAL extra arguments, all taken from the pipeline's `SPEC` so the two cannot drift apart
//!   (rosette has one such pool per port, testpmd one for both: `--total-num-mbufs` is per socket).
//! - **Interleaved rounds**: `N` (default 5) times a rosette round and a testpmd round (odd rounds
//!   rosette first, even rounds testpmd first), each in a process
//!   of its own (DPDK's EAL starts once per process), each a 1 s warm-up and then an `S`-second window
//!   (default 5). Each round's rate is printed; each side's result is the median of its rounds.
//! - **The same measurement on both sides**: packets forwarded are the tx packets of both ports from their
//!   statistics (`rte_eth_stats` opackets), read at the start and at the end of the window; the rate is
//!   their difference over the wall-clock time between the two reads (each read stamped at its
//!   midpoint). rosette reads them with `Pipeline::port_stats`; testpmd is driven interactively (`-i`,
//!   under `stdbuf -oL` so its answers arrive as it prints them): `start`, `show port stats all` at both
//!   edges of the window (`TX-packets:` per port), `stop`, `quit`.
//! - After every rosette round every mbuf must be back in its pool (`PipelineReport::mbufs_leaked`);
//!   otherwise the benchmark fails with exit code 1.
//! - `--memory auto` is resolved once (hugepages when some are free and hugetlbfs is mounted, else
//!   `--no-huge -m 256`) and both sides run in that mode.
//! - The hand-written substrate loop (`pipelines::forward`) runs once after the rounds, measured the same
//!   way, and is printed as an extra line: it is not the product path and not part of the ratio.
//!
//! Output ends with `rosette (generated pipeline bench_forward.yaml): median X.XX Mpps`,
//! `testpmd io-fwd: median Y.YY Mpps` and, last, `ratio rosette/testpmd: Z.ZZ` (the ratio of the medians).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Parser;
use pipelines::cli::MemoryArg;
use pipelines::declared::bench_forward;
use pipelines::forward::{self, ForwardConfig};
use rosette::pipeline::LaunchOptions;
use rosette::substrate::{MemoryMode, SpawnUnpinned as _};

/// Forwarding before each window opens (both sides).
const WARM_UP: Duration = Duration::from_secs(1);
/// The burst size declared for lcore 1 in `bench_forward.yaml` (testpmd's `--burst`).
const BURST: u16 = 32;
/// How long testpmd may take to answer a command.
const TESTPMD_TIMEOUT: Duration = Duration::from_secs(20);

/// rosette's product path (the generated pipeline bench_forward.yaml) against `dpdk-testpmd
/// --forward-mode=io` on the same vdevs, lcores, burst and pools, in interleaved rounds.
///
/// Each round is a 1 s warm-up then an S-second window, in a process of its own; prints each round, each
/// side's median and, last, `ratio rosette/testpmd: X.XX`.
#[derive(Debug, Parser)]
#[command(name = "bench-forward")]
struct Cli {
    /// Length S of each round's measured window, in seconds (at least 1).
    #[arg(long, value_name = "S", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Number N of rounds of each side (at least 1).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Where DPDK's memory comes from (auto is resolved once, so both sides run in the same mode).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = MemoryArg::Auto)]
    memory: MemoryArg,
    /// Internal: runs one side's round (rosette or hand) in this process and prints its window (the
    /// parent runs every round this way).
    #[arg(long, value_name = "SIDE", value_parser = ["rosette", "hand"])]
    side: Option<String>,
}

fn main() {
    let args = Cli::parse();
    pipelines::logging::init();
    let seconds = args.seconds;
    let memory = MemoryMode::from(args.memory);
    let window = Duration::from_secs(seconds);
    // A child process: one side's round, printed as a `window` line for the parent.
    if let Some(side) = args.side.as_deref() {
        let result = match side {
            "rosette" => rosette_round(window, memory),
            "hand" => hand_round(window, memory),
            other => Err(format!("unknown --side {other}")),
        };
        match result {
            Ok(w) => println!("window packets={} seconds={:.6}", w.packets, w.seconds),
            Err(e) => fail(&e),
        }
        return;
    }

    let rounds = args.rounds as usize;
    // Resolve `auto` once, so both sides surely run in the same memory mode.
    let hugepages = match memory {
        MemoryMode::Hugepages => true,
        MemoryMode::NoHuge => false,
        MemoryMode::Auto => rosette::substrate::hugepage_status().is_ok(),
    };
    let memory_arg = if hugepages { "hugepages" } else { "no-huge" };
    let spec = &bench_forward::SPEC;
    let (pool_size, pool_cache) = pool_settings();
    println!(
        "bench-forward: {} on lcore {}, burst {BURST}, {pool_size} mbufs per pool (cache {pool_cache}), {}; \
         {rounds} round(s) of rosette and testpmd (alternating which goes first), each {} s warm-up + {seconds} s window",
        spec.ports.iter().map(|p| p.device).collect::<Vec<_>>().join(" <-> "),
        spec.lcores[0].lcore,
        if hugepages { "hugepages" } else { "no-huge -m 256" },
        WARM_UP.as_secs()
    );

    let mut rosette = Vec::new();
    let mut testpmd = Vec::new();
    for round in 1..=rounds {
        // Odd rounds start with rosette, even ones with testpmd: a drift of the machine over the run
        // favours neither side.
        let order = if round % 2 == 1 { ["rosette", "testpmd"] } else { ["testpmd", "rosette"] };
        for side in order {
            let w = if side == "rosette" {
                run_child("rosette", seconds, memory_arg)
            } else {
                testpmd_round(window, hugepages, round)
            };
            let w = w.unwrap_or_else(|e| fail(&format!("{side} round {round}: {e}")));
            println!(
                "  round {round}/{rounds}: {side:<8}{:>8.2} Mpps ({} packets in {:.3} s)",
                w.mpps(),
                w.packets,
                w.seconds
            );
            if side == "rosette" {
                rosette.push(w.mpps())
            } else {
                testpmd.push(w.mpps())
            }
        }
    }
    let hand = run_child("hand", seconds, memory_arg).unwrap_or_else(|e| fail(&format!("hand loop: {e}")));
    println!(
        "hand loop (substrate only, not the product path): {:.2} Mpps ({} packets in {:.3} s, not in the ratio)",
        hand.mpps(),
        hand.packets,
        hand.seconds
    );
    let (rosette, testpmd) = (median(&mut rosette), median(&mut testpmd));
    println!("rosette (generated pipeline bench_forward.yaml): median {rosette:.2} Mpps");
    println!("testpmd io-fwd: median {testpmd:.2} Mpps");
    println!("ratio rosette/testpmd: {:.2}", rosette / testpmd);
}

fn fail(message: &str) -> ! {
    eprintln!("bench-forward: {message}");
    std::process::exit(1);
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The mempool size and cache of the declared ports (the same for both; testpmd gets them too).
fn pool_settings() -> (u32, u32) {
    let ports = bench_forward::SPEC.ports;
    let first = (ports[0].pool_size, ports[0].pool_cache);
    if ports.iter().any(|p| (p.pool_size, p.pool_cache) != first) {
        fail("bench_forward.yaml: both ports must declare the same mempool (testpmd has one setting for all)");
    }
    first
}

/// Packets counted over a measurement window.
#[derive(Debug, Clone, Copy)]
struct Window {
    packets: u64,
    seconds: f64,
}

impl Window {
    fn mpps(&self) -> f64 {
        self.packets as f64 / self.seconds / 1e6
    }
}

/// One reading of the ports' tx counters, stamped at the midpoint of the read.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    packets: u64,
}

/// Reads the tx packets of every port with `read` and stamps the reading: the same on both sides.
fn sample(read: impl FnOnce() -> Result<u64, String>) -> Result<Sample, String> {
    let before = Instant::now();
    let packets = read()?;
    let after = Instant::now();
    Ok(Sample { at: before + (after - before) / 2, packets })
}

fn window(start: Sample, end: Sample) -> Result<Window, String> {
    let packets = end.packets.checked_sub(start.packets).ok_or("a port's tx counter went backwards")?;
    Ok(Window { packets, seconds: (end.at - start.at).as_secs_f64() })
}

/// Runs this program as a child for one side's round; returns its window. Fails on a non-zero exit (a
/// leaked mbuf, a start-up error: the child printed why on stderr).
fn run_child(side: &str, seconds: u64, memory: &str) -> Result<Window, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .unpinned()
        .args(["--side", side, "--seconds", &seconds.to_string(), "--memory", memory])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        // A clean shutdown removes the child's runtime directory; a failed one (a leak keeps EAL
        // mapped, a start-up error) may leave it behind.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/rosette-{pid}"));
        return Err(format!("the {side} process failed ({})", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_window(&stdout).ok_or_else(|| format!("no window line from the {side} process in {stdout:?}"))
}

fn parse_window(stdout: &str) -> Option<Window> {
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("window "))?;
    let mut packets = None;
    let mut seconds = None;
    for field in line.split_whitespace() {
        match field.split_once('=') {
            Some(("packets", v)) => packets = v.parse().ok(),
            Some(("seconds", v)) => seconds = v.parse().ok(),
            _ => {}
        }
    }
    Some(Window { packets: packets?, seconds: seconds? })
}

/// A rosette round (in a child process): the generated pipeline, warm-up, the window, then the stop and
/// the leak check.
fn rosette_round(length: Duration, memory: MemoryMode) -> Result<Window, String> {
    let pipeline = bench_forward::launch(&LaunchOptions::new().memory(memory)).map_err(|e| e.to_string())?;
    pipelines::run::print_file_prefix(pipeline.file_prefix());
    let tx_packets = || -> Result<u64, String> {
        Ok(pipeline.port_stats().map_err(|e| e.to_string())?.iter().map(|(_, s)| s.opackets).sum())
    };
    std::thread::sleep(WARM_UP);
    let start = sample(tx_packets);
    std::thread::sleep(length);
    let end = sample(tx_packets);
    let report = pipeline.join().map_err(|e| e.to_string())?;
    if report.mbufs_leaked != 0 {
        return Err(format!("{} mbufs did not come back to their pools", report.mbufs_leaked));
    }
    window(start?, end?)
}

/// The hand-written loop (in a child process), measured the same way from its once-a-second ticks: the
/// window opens at the first tick after the warm-up and closes at the first tick `length` later.
fn hand_round(length: Duration, memory: MemoryMode) -> Result<Window, String> {
    let spec = &bench_forward::SPEC;
    let (pool_size, pool_cache) = pool_settings();
    let config = ForwardConfig {
        devices: [spec.ports[0].device.to_owned(), spec.ports[1].device.to_owned()],
        lcores: [spec.eal.main_lcore.unwrap_or(spec.eal.lcores[0]), spec.lcores[0].lcore],
        memory,
        // Ticks come a little over a second apart: leave room for the closing one.
        duration: Some(WARM_UP + length + Duration::from_millis(1500)),
        eal_args: spec.eal.extra_args.iter().map(|a| (*a).to_owned()).collect(),
        pool_size,
        pool_cache,
        capture: true,
    };
    let mut start: Option<(Duration, u64)> = None;
    let mut end: Option<(Duration, u64)> = None;
    let report = forward::run(&config, |tick| match start {
        None if tick.elapsed >= WARM_UP => start = Some((tick.elapsed, tick.port_tx_packets)),
        Some((at, _)) if end.is_none() && tick.elapsed - at >= length => {
            end = Some((tick.elapsed, tick.port_tx_packets));
        }
        _ => {}
    })
    .map_err(|e| e.to_string())?;
    if report.mbufs_leaked != 0 {
        return Err(format!("{} mbufs did not come back to their pool", report.mbufs_leaked));
    }
    match (start, end) {
        (Some(s), Some(e)) => Ok(Window { packets: e.1 - s.1, seconds: (e.0 - s.0).as_secs_f64() }),
        _ => Err("the hand loop ended before its window closed".to_owned()),
    }
}

/// A testpmd round: io forwarding, warm-up, the window read with `show port stats all`, then stop and quit.
fn testpmd_round(length: Duration, hugepages: bool, round: usize) -> Result<Window, String> {
    let mut testpmd = Testpmd::spawn(hugepages, round)?;
    let measured = (|| {
        testpmd.send("start")?;
        testpmd.wait_for_line(|l| l.contains("packet forwarding - ports="))?;
        std::thread::sleep(WARM_UP);
        let start = sample(|| testpmd.port_tx_packets())?;
        std::thread::sleep(length);
        let end = sample(|| testpmd.port_tx_packets())?;
        window(start, end)
    })();
    let finished = testpmd.finish();
    let measured = measured.map_err(|e| format!("{e}{}", testpmd.stderr_tail()))?;
    finished.map_err(|e| format!("{e}{}", testpmd.stderr_tail()))?;
    Ok(measured)
}

/// `dpdk-testpmd -i` driven through its stdin, its stdout read line by line.
struct Testpmd {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    stderr_text: String,
    prefix: String,
}

impl Testpmd {
    fn spawn(hugepages: bool, round: usize) -> Result<Testpmd, String> {
        let spec = &bench_forward::SPEC;
        let (pool_size, pool_cache) = pool_settings();
        let prefix = format!("rosette-testpmd-{}-{round}", std::process::id());
        let main = spec.eal.main_lcore.unwrap_or(spec.eal.lcores[0]);
        // testpmd prints with stdio: line-buffer its stdout so each answer arrives when it is printed.
        let mut cmd = Command::new("stdbuf");
        cmd.unpinned()
            .args(["-oL", "dpdk-testpmd"])
            .arg("-l")
            .arg(format!("{main},{}", spec.lcores[0].lcore))
            .arg(format!("--main-lcore={main}"))
            .arg("--no-pci");
        for port in spec.ports {
            cmd.arg(format!("--vdev={}", port.device));
        }
        cmd.arg(format!("--file-prefix={prefix}")).args(spec.eal.extra_args);
        if !hugepages {
            cmd.args(["--no-huge", "-m", "256"]);
        }
        // The same burst, pool size and cache as the declared pipeline.
        cmd.args(["--", "-i", "--forward-mode=io", "--nb-cores=1"])
            .arg(format!("--burst={BURST}"))
            .arg(format!("--mbcache={pool_cache}"))
            .arg(format!("--total-num-mbufs={pool_size}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            cmd.spawn().map_err(|e| format!("cannot run stdbuf dpdk-testpmd (apt-get install dpdk coreutils): {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let stdin = child.stdin.take();
        Ok(Testpmd { child, stdin, lines, stderr: Some(stderr), stderr_text: String::new(), prefix })
    }

    fn send(&mut self, command: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("testpmd's stdin is closed")?;
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).map_err(|e| format!("testpmd {command:?}: {e}"))
    }

    /// Waits for a line matching `matches`; returns it.
    fn wait_for_line(&mut self, mut matches: impl FnMut(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + TESTPMD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err("testpmd did not answer in time".to_owned()),
                Err(RecvTimeoutError::Disconnected) => return Err("testpmd exited".to_owned()),
            }
        }
    }

    /// `show port stats all`: the sum of `TX-packets:` over every port of the pipeline.
    fn port_tx_packets(&mut self) -> Result<u64, String> {
        while self.lines.try_recv().is_ok() {}
        self.send("show port stats all")?;
        let mut total = 0;
        for _ in bench_forward::SPEC.ports {
            self.wait_for_line(|l| l.contains("NIC statistics for port"))?;
            let line = self.wait_for_line(|l| l.trim_start().starts_with("TX-packets:"))?;
            total += line
                .trim_start()
                .strip_prefix("TX-packets:")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("cannot read testpmd's {line:?}"))?;
        }
        Ok(total)
    }

    /// `stop`, `quit`, and waits for the exit (killing testpmd if it hangs); removes its runtime directory.
    fn finish(&mut self) -> Result<(), String> {
        let _ = self.send("stop");
        let _ = self.send("quit");
        self.stdin = None;
        let deadline = Instant::now() + TESTPMD_TIMEOUT;
        let status = loop {
            match self.child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.collect_stderr();
                    return Err("testpmd did not quit; killed".to_owned());
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        self.collect_stderr();
        let _ = std::fs::remove_dir_all(std::path::Path::new("/var/run/dpdk").join(&self.prefix));
        if status.success() {
            Ok(())
        } else {
            Err(format!("testpmd exited with {status}"))
        }
    }

    fn collect_stderr(&mut self) {
        if let Some(reader) = self.stderr.take() {
            self.stderr_text = reader.join().unwrap_or_default();
        }
    }

    /// The end of what testpmd wrote on stderr, for an error message.
    fn stderr_tail(&self) -> String {
        let lines: Vec<&str> = self.stderr_text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; testpmd's stderr:\n{tail}")
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(std::path::Path::new("/var/run/dpdk").join(&self.prefix));
    }
}
