//! `bench-forward`: rosette's two-port forwarder against `dpdk-testpmd --forward-mode=io`, same vdevs,
//! same lcores, same burst, in one run. Prints both rates and, last, `ratio rosette/testpmd: X.XX`.
//!
//! Usage: `cargo run --release -p pipelines --bin bench-forward -- --seconds N [--memory auto|hugepages|no-huge]`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pipelines::cli::Args;
use pipelines::forward::{self, ForwardConfig};
use rosette::substrate::MemoryMode;

fn main() {
    pipelines::logging::init();
    let args = Args::from_env();
    if args.wants_help() {
        println!("usage: bench-forward [--seconds N] [--memory auto|hugepages|no-huge]");
        return;
    }
    let seconds: u64 = args.value("--seconds", 10);
    let memory =
        args.raw("--memory").map(|m| MemoryMode::parse(m).unwrap_or_else(|| fail(&format!("bad --memory {m}"))));
    let config = ForwardConfig {
        duration: Some(Duration::from_secs(seconds)),
        memory: memory.unwrap_or(MemoryMode::Auto),
        eal_args: vec!["--log-level=lib.eal:error".to_owned()],
        ..ForwardConfig::default()
    };

    println!("rosette: forwarding net_null0 <-> net_null1 on lcore {} for {seconds} s, burst 32", config.lcores[1]);
    let report = forward::run(&config, |tick| {
        println!("  rosette t={:>3.0}s {:>8.2} Mpps", tick.elapsed.as_secs_f64(), tick.pps / 1e6);
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    if report.mbufs_leaked != 0 {
        fail(&format!("{} mbufs leaked", report.mbufs_leaked));
    }
    let rosette_mpps = report.mpps();
    let hugepages = match config.memory {
        MemoryMode::NoHuge => false,
        MemoryMode::Hugepages => true,
        MemoryMode::Auto => rosette::substrate::hugepage_status().is_ok(),
    };
    println!("rosette: {rosette_mpps:.2} Mpps ({} packets, {} dropped)", report.forwarded, report.dropped);

    println!("testpmd: io forwarding on the same vdevs and lcores for {seconds} s");
    let testpmd_mpps = run_testpmd(&config, seconds, hugepages).unwrap_or_else(|e| fail(&e));
    println!("testpmd: {testpmd_mpps:.2} Mpps");
    println!("ratio rosette/testpmd: {:.2}", rosette_mpps / testpmd_mpps);
}

fn fail(message: &str) -> ! {
    eprintln!("bench-forward: {message}");
    std::process::exit(1);
}

/// Runs testpmd for `seconds` and returns its steady forwarding rate: the mean over its per-second
/// reports (after the first) of the rx rate summed over both ports.
fn run_testpmd(config: &ForwardConfig, seconds: u64, hugepages: bool) -> Result<f64, String> {
    let mut cmd = Command::new("dpdk-testpmd");
    cmd.arg("-l")
        .arg(format!("{},{}", config.lcores[0], config.lcores[1]))
        .arg(format!("--main-lcore={}", config.lcores[0]))
        .arg("--no-pci")
        .arg(format!("--vdev={}", config.devices[0]))
        .arg(format!("--vdev={}", config.devices[1]))
        .arg(format!("--file-prefix=rosette-testpmd-{}", std::process::id()))
        .arg("--log-level=lib.eal:error");
    if !hugepages {
        cmd.args(["--no-huge", "-m", "256"]);
    }
    // The same pool size and cache as rosette's forwarder, so both sides get the same memory behaviour.
    cmd.args(["--", "--forward-mode=io", "--burst=32", "--nb-cores=1", "--stats-period=1", "--auto-start"])
        .arg(format!("--mbcache={}", config.pool_cache))
        .arg(format!("--total-num-mbufs={}", config.pool_size))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run dpdk-testpmd (apt-get install dpdk): {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut rx_pps = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.trim().strip_prefix("Rx-pps:") {
                if let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
                    rx_pps.push(value);
                }
            }
        }
        rx_pps
    });
    std::thread::sleep(Duration::from_secs(seconds + 1));
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().map_err(|e| e.to_string())?;
    let rx_pps = reader.join().map_err(|_| "reading testpmd output failed".to_owned())?;
    // Two ports report per period; skip the first period (start-up).
    let periods: Vec<f64> = rx_pps.chunks_exact(2).skip(1).map(|p| p[0] + p[1]).filter(|&p| p > 0.0).collect();
    for (i, p) in periods.iter().enumerate() {
        println!("  testpmd t={:>3}s {:>8.2} Mpps", i + 2, p / 1e6);
    }
    if periods.is_empty() {
        return Err(format!("testpmd printed no rate (exit {status})"));
    }
    Ok(periods.iter().sum::<f64>() / periods.len() as f64 / 1e6)
}
