//! `bench-dispatch`: the same four stages (parse, filter, rewrite, count) run (a) as the generated
//! pipeline, (b) fused by hand into one loop, (c) as `Vec<Box<dyn Stage>>` — same vdev, same spec, one
//! run. Each variant runs in its own process (DPDK's EAL starts once per process). Prints each rate in
//! Mpps and, last, `ratio generated/hand-fused: X.XX generated/dyn: Y.YY`.
//!
//! Usage: `cargo run --release -p pipelines --bin bench-dispatch -- --seconds N [--rounds R] [--memory …]
//! [-- EAL args]` (`--help` explains each option)
//!
//! The machine is shared and noisy, so the variants run interleaved: `R` rounds (default 3), each running
//! all three for `N` seconds in a rotated order; each variant's rate is the median of its rounds.

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use pipelines::cli::{EalPassthrough, MemoryArg};
use pipelines::dispatch;
use rosette::pipeline::{LaunchError, LaunchOptions, LcoreIo, Runtime};
use rosette::substrate::{MemoryMode, SpawnUnpinned as _};

const VARIANTS: [&str; 3] = ["generated", "hand-fused", "dyn"];

/// The same four stages (parse, filter, rewrite, count) as the generated pipeline, fused by hand and as
/// `Vec<Box<dyn Stage>>`, interleaved in rounds, one process per variant; prints each rate (median of
/// the rounds) and, last, `ratio generated/hand-fused: X.XX generated/dyn: Y.YY`.
#[derive(Debug, Parser)]
#[command(name = "bench-dispatch")]
struct Cli {
    /// Seconds each variant runs in each round.
    #[arg(long, value_name = "N", default_value_t = 5)]
    seconds: u64,
    /// Rounds; each runs all three variants in a rotated order (at least 1).
    #[arg(long, value_name = "R", default_value_t = 3)]
    rounds: usize,
    /// Where DPDK's memory comes from.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = MemoryArg::Auto)]
    memory: MemoryArg,
    /// Internal: runs one variant (generated, hand-fused or dyn) in this process and prints its rate
    /// (the parent runs each round's variants this way).
    #[arg(long, value_name = "NAME", value_parser = VARIANTS)]
    variant: Option<String>,
    /// EAL arguments (after `--`), given to every variant.
    #[command(flatten)]
    eal: EalPassthrough,
}

fn main() {
    let args = Cli::parse();
    pipelines::logging::init();
    let seconds = args.seconds;
    let memory = args.memory.name();
    if let Some(variant) = &args.variant {
        match run_variant(variant, seconds, args.memory.into(), &args.eal.eal) {
            Ok(mpps) => println!("variant={variant} mpps={mpps:.3}"),
            Err(e) => fail(&e.to_string()),
        }
        return;
    }
    let rounds = args.rounds.max(1);
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&e.to_string()));
    let mut samples: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..VARIANTS.len() {
            let index = (round + k) % VARIANTS.len();
            let variant = VARIANTS[index];
            let out = Command::new(&exe)
                .unpinned()
                .args(["--variant", variant, "--seconds", &seconds.to_string(), "--memory", memory])
                .args(if args.eal.eal.is_empty() { None } else { Some("--") })
                .args(&args.eal.eal)
                .output()
                .unwrap_or_else(|e| fail(&e.to_string()));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let mpps = stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("variant={variant} mpps=")).and_then(|v| v.parse::<f64>().ok()))
                .unwrap_or_else(|| fail(&format!("{variant} failed: {}", String::from_utf8_lossy(&out.stderr))));
            println!("  round {}: {variant:>10} {mpps:8.2} Mpps", round + 1);
            samples[index].push(mpps);
        }
    }
    let rates: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    for (variant, rate) in VARIANTS.iter().zip(&rates) {
        println!("{variant:>10}: {rate:8.2} Mpps (median of {rounds})");
    }
    println!("ratio generated/hand-fused: {:.2} generated/dyn: {:.2}", rates[0] / rates[1], rates[0] / rates[2]);
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn fail(message: &str) -> ! {
    eprintln!("bench-dispatch: {message}");
    std::process::exit(1);
}

/// Runs one variant for `seconds` and returns the packets through the loop per second, in millions.
fn run_variant(variant: &str, seconds: u64, memory: MemoryMode, eal_args: &[String]) -> Result<f64, LaunchError> {
    let body: fn(LcoreIo) -> Result<(), LaunchError> = match variant {
        "generated" => pipelines::declared::dispatch::lcore_1,
        "hand-fused" => dispatch::hand_fused_loop,
        "dyn" => dispatch::dyn_loop,
        other => return Err(LaunchError::Config(format!("unknown variant {other}"))),
    };
    let options =
        LaunchOptions::new().memory(memory).eal_args(["--log-level=lib.eal:error"]).eal_args(eal_args.iter().cloned());
    let mut runtime = Runtime::start(&pipelines::declared::dispatch::SPEC, &options)?;
    pipelines::run::print_file_prefix(runtime.eal().file_prefix());
    runtime.launch(1, body)?;
    let pipeline = runtime.into_pipeline();
    // Let the injected packets start circulating, then measure over a steady window.
    std::thread::sleep(Duration::from_millis(300));
    let start = (std::time::Instant::now(), pipeline.stats()[0].packets);
    std::thread::sleep(Duration::from_secs(seconds));
    let end = (std::time::Instant::now(), pipeline.stats()[0].packets);
    let report = pipeline.join()?;
    if report.mbufs_leaked != 0 {
        return Err(LaunchError::Config(format!("{} mbufs leaked", report.mbufs_leaked)));
    }
    let dropped = report.lcores[0].total_dropped();
    if dropped != 0 {
        return Err(LaunchError::Config(format!("{dropped} packets dropped: the loop must not lose any")));
    }
    Ok((end.1 - start.1) as f64 / (end.0 - start.0).as_secs_f64() / 1e6)
}
