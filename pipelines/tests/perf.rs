//! Runs the built `rosette-perf` briefly for each channel (two processes over net_memif each) and checks
//! its result line: `digest=match` (the whole transfer's digests compared) for reliable and streaming,
//! `digest=per-message` (every delivered datagram checked, no digest to compare) for unordered and
//! raw-memif, `bad=0`, and for reliable and streaming every message sent was delivered;
//! with faults, that the declared fault stages (rates from `$ROSETTE_PERF_FAULTS`) dropped packets; and
//! that both processes shut down clean (every mbuf back in its pool, no DPDK error).
//!
//! The runs are serialized: each one busy-polls two lcores, and running them side by side on a small
//! machine would only make each slower.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs rosette-perf with `args`; returns (exit success, stdout, stderr). Fails the test after `limit`.
fn run_perf(args: &[&str], limit: Duration) -> (bool, String, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rosette-perf"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rosette-perf");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let reader = read_all(Box::new(child.stdout.take().expect("stdout is piped")));
    let err_reader = read_all(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rosette-perf") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (reader.join().unwrap_or_default(), err_reader.join().unwrap_or_default());
            panic!("rosette-perf {args:?} did not finish within {limit:?}:\n{out}\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = err_reader.join().expect("stderr reader");
    eprint!("{stderr}");
    (status.success(), reader.join().expect("stdout reader"), stderr)
}

/// The `key=value` fields of the result line (the last line starting with `channel=`).
fn result_fields(stdout: &str) -> Vec<(String, String)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("channel="))
        .unwrap_or_else(|| panic!("no result line in:\n{stdout}"));
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key}= field"))
}

fn check(channel: &str, extra: &[&str]) {
    let mut args = vec!["--channel", channel, "--seconds", "1", "--pings", "200"];
    args.extend_from_slice(extra);
    // CI runs the suite with and without hugepages.
    let memory = std::env::var("ROSETTE_TEST_MEMORY").ok().map(|m| format!("--memory={m}"));
    if let Some(m) = &memory {
        args.push(m);
    }
    let (ok, stdout, stderr) = run_perf(&args, Duration::from_secs(30));
    // Teardown of both processes is clean: DPDK reports no failed free (the memif disconnect race).
    assert!(!stderr.contains("Invalid memory"), "a DPDK free failed during teardown:\n{stderr}");
    assert!(!stderr.contains("mbufs not returned"), "mbufs leaked:\n{stderr}");
    assert!(!stderr.contains("drain timed out"), "the drain did not complete:\n{stderr}");
    // Each side's process names its EAL file prefix (for dpdk-dumpcap and dpdk-telemetry.py).
    let prefixes = stderr.lines().filter(|l| l.starts_with("file-prefix=rosette-")).count();
    assert_eq!(prefixes, 2, "one file-prefix= line per process expected:\n{stderr}");
    // The fault stages of both processes dropped packets exactly when faults were asked for.
    let fault_drops = stdout.lines().any(|l| l.contains("stage drops:") && l.contains("fault="));
    assert_eq!(fault_drops, extra.contains(&"--loss"), "fault stage drops:\n{stdout}");
    let fields = result_fields(&stdout);
    assert_eq!(field(&fields, "channel"), channel);
    let unordered = channel == "unordered" || channel == "raw-memif";
    // `match` only where digests were compared; unordered kinds say what they checked instead.
    assert_eq!(field(&fields, "digest"), if unordered { "per-message" } else { "match" }, "{stdout}");
    assert_eq!(field(&fields, "bad"), "0", "{stdout}");
    let sent: u64 = field(&fields, "sent").parse().unwrap();
    let delivered: u64 = field(&fields, "delivered").parse().unwrap();
    assert!(sent > 0, "nothing was sent:\n{stdout}");
    if unordered {
        assert!(delivered <= sent && delivered > 0, "{stdout}");
    } else {
        assert_eq!(delivered, sent, "{stdout}");
    }
    // Figures the runs justify, loose enough for a test build on a busy 2-CPU VM (release: millions per
    // second). Measured there beside a parallel build: without faults 44-90 k messages/s; with faults,
    // 1 % loss and 5 % reorder/duplicate/corrupt, 1.5-60 k (1500 B slowest); at 10 and 30 % loss
    // 125-43 k (streaming 1500 B at 30 %: 125-392). Ping-pong p50 10 us to 12 ms. A path that
    // trickles, or ping-pongs that stall, fail.
    let loss: f64 = extra.iter().position(|a| *a == "--loss").map_or(0.0, |i| extra[i + 1].parse().unwrap());
    let floor = if loss >= 0.1 {
        20.0
    } else if loss > 0.0 {
        200.0
    } else {
        1000.0
    };
    let rate: f64 = field(&fields, "msgs_per_s").parse().unwrap();
    assert!(rate >= floor, "{rate} messages/s, expected at least {floor}:\n{stdout}");
    let p50: f64 = field(&fields, "p50_us").parse().unwrap();
    assert!(p50 > 0.0 && p50 < 2_000_000.0, "ping-pong p50 {p50} us, expected a measured one below 2 s:\n{stdout}");
    let app = extra.iter().position(|a| *a == "--app").map_or("thread", |i| extra[i + 1]);
    assert_eq!(field(&fields, "app"), app);
    assert!(ok, "rosette-perf exited with failure:\n{stdout}");
}

#[test]
fn reliable_delivers_everything_in_order() {
    check("reliable", &[]);
}

#[test]
fn streaming_delivers_every_byte_in_order() {
    check("streaming", &[]);
}

#[test]
fn unordered_delivers_intact_datagrams() {
    check("unordered", &[]);
}

#[test]
fn reliable_recovers_from_injected_faults() {
    check(
        "reliable",
        &["--loss", "0.01", "--reorder", "0.01", "--duplicate", "0.01", "--corrupt", "0.01", "--seed", "3"],
    );
}

#[test]
fn streaming_recovers_from_injected_faults() {
    check(
        "streaming",
        &["--loss", "0.01", "--reorder", "0.01", "--duplicate", "0.01", "--corrupt", "0.01", "--seed", "5"],
    );
}

/// `--app lcore`: the same declared pipelines with the application as the stage after the channel.
/// Loss recovery over memif: a transfer at 1 %, 10 % and 30 % loss (each way), with 5 % each of
/// reordering, duplication and corruption beside it, completes for 64- and 1500-byte messages:
/// `digest=match`, `delivered == sent`, the drain ends, both processes shut down clean.
fn heavy_faults(channel: &str) {
    for size in ["64", "1500"] {
        for loss in ["0.01", "0.1", "0.3"] {
            eprintln!("--- {channel} size {size} loss {loss}");
            check(
                channel,
                &[
                    "--app",
                    "lcore",
                    "--size",
                    size,
                    "--loss",
                    loss,
                    "--reorder",
                    "0.05",
                    "--duplicate",
                    "0.05",
                    "--corrupt",
                    "0.05",
                    "--seed",
                    "11",
                ],
            );
        }
    }
}

#[test]
fn reliable_completes_under_heavy_faults() {
    heavy_faults("reliable");
}

#[test]
fn streaming_completes_under_heavy_faults() {
    heavy_faults("streaming");
}

#[test]
fn compare_lossless_prints_both_ratios() {
    let (ok, stdout, _) = run_perf(
        &["--channel", "reliable", "--seconds", "0.3", "--pings", "50", "--loss", "0.01", "--compare-lossless"],
        Duration::from_secs(90),
    );
    assert!(ok, "{stdout}");
    // At 1 % loss the rate keeps 0.90-1.04 of lossless in release (README), 0.41 measured in a test
    // build beside a parallel build; the one-way p99 1.0-2.5x (2.2 in the test build). Bounds with a
    // wide margin: a loss recovery that stalls (rate ratio under 0.1, p99 ratio over 100) fails.
    let ratio = |name: &str| -> f64 {
        let line = stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}in:\n{stdout}"));
        line[name.len()..].trim().parse().expect("a number")
    };
    let rate = ratio("ratio faults/lossless msgs_per_s: ");
    assert!((0.1..=2.0).contains(&rate), "faults/lossless msgs_per_s {rate} outside 0.1..=2:\n{stdout}");
    let owd = ratio("ratio faults/lossless owd_p99: ");
    assert!((0.05..=100.0).contains(&owd), "faults/lossless owd_p99 {owd} outside 0.05..=100:\n{stdout}");
}

#[test]
fn lcore_application_reliable() {
    check("reliable", &["--app", "lcore"]);
}

#[test]
fn lcore_application_streaming_with_faults() {
    check("streaming", &["--app", "lcore", "--loss", "0.01", "--reorder", "0.01", "--seed", "9"]);
}

#[test]
fn lcore_application_unordered() {
    check("unordered", &["--app", "lcore"]);
}

/// `--compare-kernel`: every baseline runs in the same invocation and each ratio is printed; the raw
/// baseline's own result line (from its pair of child processes) checked its messages too.
#[test]
fn compare_kernel_prints_every_ratio() {
    let mut args = vec!["--channel", "reliable", "--app", "lcore", "--seconds", "1", "--baseline-seconds", "0.5"];
    args.extend(["--pings", "200", "--compare-kernel"]);
    let memory = std::env::var("ROSETTE_TEST_MEMORY").ok().map(|m| format!("--memory={m}"));
    if let Some(m) = &memory {
        args.push(m);
    }
    let (ok, stdout, _) = run_perf(&args, Duration::from_secs(120));
    assert!(ok, "{stdout}");
    assert_eq!(field(&result_fields(&stdout), "digest"), "match", "{stdout}");
    for name in ["raw-memif", "kernel-tcp", "kernel-tcp-batched", "kernel-udp"] {
        let line = format!("ratio rosette/{name}: ");
        let ratio = stdout.lines().find_map(|l| l.strip_prefix(line.as_str()));
        let ratio: f64 = ratio.unwrap_or_else(|| panic!("no {line:?} in:\n{stdout}")).parse().unwrap();
        // Test build against release kernels and C, beside a parallel build: 0.08-0.22 measured
        // (release: 0.5-8, README). A channel that crawls (under 0.01) or a baseline that did nothing
        // (an absurd ratio) fails.
        assert!((0.01..=1000.0).contains(&ratio), "ratio rosette/{name} {ratio} outside 0.01..=1000:\n{stdout}");
    }
    assert!(stdout.contains("rtt p50 rosette/raw-memif: "), "{stdout}");
    assert!(stdout.contains("round trips, interleaved rounds"), "{stdout}");
}

/// The raw baseline alone: its frames arrive intact.
#[test]
fn raw_memif_baseline_delivers_intact_frames() {
    check("raw-memif", &["--app", "lcore"]);
}

/// `--seconds 0` sends until SIGINT; the run then still drains, checks and shuts down clean.
#[test]
fn seconds_zero_runs_until_interrupted() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rosette-perf"));
    cmd.args(["--channel", "reliable", "--seconds", "0", "--pings", "100"]);
    if let Ok(m) = std::env::var("ROSETTE_TEST_MEMORY") {
        cmd.arg(format!("--memory={m}"));
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    // Long enough for both EALs to start and the link to come up, then Ctrl-C.
    std::thread::sleep(Duration::from_secs(4));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait for rosette-perf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(!stderr.contains("Invalid memory"), "{stderr}");
    let fields = result_fields(&stdout);
    assert_eq!(field(&fields, "digest"), "match", "{stdout}");
    let sent: u64 = field(&fields, "sent").parse().unwrap();
    assert!(sent > 0, "{stdout}");
    assert_eq!(field(&fields, "delivered"), sent.to_string(), "{stdout}");
    assert!(out.status.success(), "{stdout}");
}

/// Ctrl-C at any moment — while the parent starts, while the EALs start, while the link comes up,
/// mid-transfer, and twice in a row — ends the demo's run (`--seconds 0`, what `scripts/demo` runs
/// with `ROSETTE_DEMO_SECONDS=0`) within a bound, with a checked result and every mbuf of both
/// processes back in its pool. The signal goes to the process group, as a terminal sends it.
#[test]
fn ctrl_c_at_any_moment_ends_the_run_cleanly() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    // (delay before the first SIGINT, SIGINTs sent 100 ms apart)
    for (delay_ms, signals) in [(30u64, 1usize), (400, 1), (1500, 1), (4000, 1), (3000, 2), (20, 3)] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rosette-perf"));
        cmd.args(["--channel", "reliable", "--seconds", "0", "--pings", "50"]);
        if let Ok(m) = std::env::var("ROSETTE_TEST_MEMORY") {
            cmd.arg(format!("--memory={m}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start rosette-perf");
        let group = format!("-{}", child.id());
        std::thread::sleep(Duration::from_millis(delay_ms));
        for i in 0..signals {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            let sent = Command::new("kill").args(["-INT", "--", &group]).status().expect("kill");
            assert!(sent.success(), "could not signal rosette-perf's process group");
        }
        let started = Instant::now();
        let limit = Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for rosette-perf") {
                break Some(status);
            }
            if started.elapsed() > limit {
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        let _ = child.stdout.take().expect("piped").read_to_string(&mut stdout);
        let _ = child.stderr.take().expect("piped").read_to_string(&mut stderr);
        let what = format!("SIGINT x{signals} after {delay_ms} ms");
        let Some(status) = status else {
            failures.push(format!("{what}: still running after {limit:?}\n{stdout}\n{stderr}"));
            continue;
        };
        let took = started.elapsed();
        eprintln!("{what}: exited {status} {took:.1?} after the first signal");
        if !status.success() || stderr.contains("mbufs not returned") || stderr.contains("Invalid memory") {
            failures.push(format!("{what}: {status}\n{stdout}\n{stderr}"));
            continue;
        }
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with("channel=")) else {
            failures.push(format!("{what}: no result line\n{stdout}\n{stderr}"));
            continue;
        };
        let fields = result_fields(line);
        if field(&fields, "digest") != "match" || field(&fields, "sent") != field(&fields, "delivered") {
            failures.push(format!("{what}: {line}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn result_line_fields_parse() {
    let f = result_fields(
        "x\nchannel=reliable sent=3 delivered=3 bad=0 digest=match msgs_per_s=1 p50_us=2.0 p99_us=3.0 app=thread\nratio a: 1\n",
    );
    assert_eq!(field(&f, "delivered"), "3");
}

/// `--connections`: many reliable connections through one listener, on the declared
/// `reliable_mux` pipelines; every connection's digest must match and both processes end clean.
fn connections(n: &str, extra: &[&str]) -> (String, Vec<(String, String)>) {
    let mut args = vec!["--connections", n, "--seconds", "0.5"];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run_perf(&args, Duration::from_secs(150));
    assert!(!stderr.contains("mbufs not returned"), "mbufs leaked:\n{stderr}");
    assert!(!stderr.contains("Invalid memory"), "a DPDK free failed during teardown:\n{stderr}");
    assert!(ok, "rosette-perf exited with failure:\n{stdout}\n{stderr}");
    let fields = result_fields(&stdout);
    assert_eq!(field(&fields, "connections"), n);
    assert_eq!(field(&fields, "digest"), "match", "{stdout}");
    assert_eq!(field(&fields, "digests_matched"), n, "{stdout}");
    assert_eq!(field(&fields, "sent"), field(&fields, "delivered"), "{stdout}");
    assert_eq!(field(&fields, "bad"), "0", "{stdout}");
    // Each listener (one per server lcore) accepted its share; together every connection, once (the
    // last round's tables: a comparison prints one set per round).
    let tables: Vec<&str> = stdout.lines().filter(|l| l.starts_with("server table:")).collect();
    let lcores: usize = extra.iter().position(|a| *a == "--lcores").map_or(1, |i| extra[i + 1].parse().unwrap());
    let last = &tables[tables.len().saturating_sub(lcores)..];
    let accepted: Vec<u64> = last.iter().map(|l| field(&table_fields(l), "accepted").parse().unwrap()).collect();
    assert_eq!(accepted.iter().sum::<u64>(), n.parse::<u64>().unwrap(), "every connection accepted once:\n{stdout}");
    assert!(accepted.iter().all(|&a| a > 0), "every listener lcore got connections:\n{stdout}");
    (stdout, fields)
}

fn table_fields(line: &str) -> Vec<(String, String)> {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

#[test]
fn many_streams_through_one_listener_deliver_every_byte() {
    let (_, fields) = connections("100", &["--channel", "streaming"]);
    assert_eq!(field(&fields, "channel"), "streaming");
}

#[test]
fn connections_spread_over_two_listener_lcores_by_their_queue() {
    connections("40", &["--lcores", "2"]);
}

#[test]
fn many_connections_through_one_listener_deliver_every_message() {
    let (_, fields) = connections("300", &[]);
    let per_conn: u64 = field(&fields, "server_rss_per_conn_bytes").parse().expect("a number");
    assert!(per_conn > 0, "the idle memory was measured: {fields:?}");
}

#[test]
fn a_flood_of_forged_attempts_leaves_the_connections_intact() {
    let (stdout, _) = connections("50", &["--forge-rate", "50000"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ratio flooded/undisturbed msgs_per_s: "))
        .unwrap_or_else(|| panic!("no ratio in:\n{stdout}"));
    let ratio: f64 = line.rsplit(' ').next().unwrap_or_default().parse().expect("a number");
    // Release: 1.00 (README, goal >= 0.8); a test build beside a parallel build: 0.68 (one flooded
    // round at 0.15 of its undisturbed one). Connections the flood starves (under 0.05) fail.
    assert!((0.05..=20.0).contains(&ratio), "ratio flooded/undisturbed {ratio} outside 0.05..=20:\n{stdout}");
    // The flooded rounds' servers answered the forged Syns with cookies and kept no state for them.
    let flooded = stdout.lines().filter(|l| l.starts_with("server table:")).find(|l| !l.contains("bad_cookie=0 "));
    let flooded = flooded.unwrap_or_else(|| panic!("no flooded round's server table in:\n{stdout}"));
    assert_eq!(field(&table_fields(flooded), "accepted"), "50", "no forged attempt was accepted:\n{flooded}");
}
