//! The forwarding demo: two virtual ports (net_null by default), one worker lcore forwarding both ways,
//! a stats line every second until Ctrl-C or `--seconds` runs out.
//!
//! Usage: `forward-demo [--seconds N] [--memory auto|hugepages|no-huge] [--dev0 SPEC --dev1 SPEC] [--no-capture]
//! [-- EAL args]`

use std::time::Duration;

use clap::Parser;
use pipelines::cli::{EalPassthrough, MemoryArg};
use pipelines::forward::{self, ForwardConfig};

/// The forwarding demo: two virtual ports, one worker lcore forwarding both ways (the hand-written
/// substrate loop of `pipelines::forward`), a stats line every second.
#[derive(Debug, Parser)]
#[command(name = "forward-demo")]
struct Cli {
    /// Seconds to forward (0 = until Ctrl-C).
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,
    /// Where DPDK's memory comes from.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = MemoryArg::Auto)]
    memory: MemoryArg,
    /// The first port's device, as DPDK's `--vdev` takes it [default: net_null0].
    #[arg(long, value_name = "SPEC")]
    dev0: Option<String>,
    /// The second port's device [default: net_null1].
    #[arg(long, value_name = "SPEC")]
    dev1: Option<String>,
    /// Turns packet capture off (no `rte_pdump_init`, hugepage files unlinked at once): `dpdk-dumpcap
    /// --file-prefix=<p> -i 0` can then not attach. Capture is on by default and needs hugepages.
    #[arg(long)]
    no_capture: bool,
    /// EAL arguments (after `--`).
    #[command(flatten)]
    eal: EalPassthrough,
}

fn main() {
    let args = Cli::parse();
    pipelines::logging::init();
    let seconds = args.seconds;
    let defaults = ForwardConfig::default();
    let [dev0, dev1] = defaults.devices.clone();
    let config = ForwardConfig {
        devices: [args.dev0.unwrap_or(dev0), args.dev1.unwrap_or(dev1)],
        duration: (seconds > 0).then(|| Duration::from_secs(seconds)),
        memory: args.memory.into(),
        capture: !args.no_capture,
        eal_args: defaults.eal_args.iter().cloned().chain(args.eal.eal).collect(),
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
