//! The forwarding demo: two virtual ports (net_null by default), one worker lcore forwarding both ways,
//! a stats line every second until Ctrl-C or `--seconds` runs out.
//!
//! Usage: `forward-demo [--seconds N] [--memory auto|hugepages|no-huge] [--dev0 SPEC --dev1 SPEC] [-- EAL args]`

use std::time::Duration;

use pipelines::cli::Args;
use pipelines::forward::{self, ForwardConfig};
use rosette::substrate::MemoryMode;

fn main() {
    pipelines::logging::init();
    let args = Args::from_env();
    if args.wants_help() {
        println!(
            "usage: forward-demo [--seconds N (0 = until Ctrl-C)] [--memory auto|hugepages|no-huge] \
             [--dev0 SPEC --dev1 SPEC] [-- EAL args]"
        );
        return;
    }
    let seconds: u64 = args.value("--seconds", 10);
    let defaults = ForwardConfig::default();
    let memory = match args.raw("--memory") {
        None => MemoryMode::Auto,
        Some(m) => MemoryMode::parse(m).unwrap_or_else(|| {
            eprintln!("forward-demo: --memory takes auto, hugepages or no-huge, not {m:?}");
            std::process::exit(2);
        }),
    };
    let config = ForwardConfig {
        devices: [
            args.raw("--dev0").unwrap_or(&defaults.devices[0]).to_owned(),
            args.raw("--dev1").unwrap_or(&defaults.devices[1]).to_owned(),
        ],
        duration: (seconds > 0).then(|| Duration::from_secs(seconds)),
        memory,
        eal_args: defaults.eal_args.iter().cloned().chain(args.passthrough()).collect(),
        ..defaults
    };
    println!(
        "forwarding {} <-> {} on lcore {} ({}); Ctrl-C stops",
        config.devices[0],
        config.devices[1],
        config.lcores[1],
        if seconds > 0 { format!("{seconds} s") } else { "no time limit".to_owned() }
    );
    let result = forward::run(&config, |tick| {
        println!(
            "[{:>4.0}s] {:>8.2} Mpps forwarded, {} dropped",
            tick.elapsed.as_secs_f64(),
            tick.pps / 1e6,
            tick.dropped
        );
    });
    match result {
        Ok(report) => {
            println!(
                "done: {} packets in {:.1} s ({:.2} Mpps), {} dropped, {} mbufs leaked",
                report.forwarded,
                report.elapsed.as_secs_f64(),
                report.mpps(),
                report.dropped,
                report.mbufs_leaked
            );
            if report.mbufs_leaked != 0 {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("forward-demo: {e}");
            std::process::exit(1);
        }
    }
}
