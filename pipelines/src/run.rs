//! Running a declared pipeline from a binary: DPDK-style arguments (`[EAL args] [--port NAME=DEVICE]
//! [--no-huge] -- [--seconds N]`, see [`crate::cli::DeclaredArgs`]), a stats line per lcore every second,
//! and a clean stop on Ctrl-C or time-out.

use std::time::Duration;

use rosette::pipeline::{LaunchError, LaunchOptions, LcoreStatsSnapshot, Pipeline};

use crate::cli::DeclaredArgs;

/// Prints the EAL file prefix of this process as the line `file-prefix=<p>` on stderr, for an operator
/// to attach a secondary process (`dpdk-dumpcap --file-prefix=<p>`, `dpdk-telemetry.py -f <p>`). Every
/// binary that starts the EAL calls it right after the start. With `--in-memory` there is no runtime
/// directory to attach to, and the line says so: `file-prefix= (in-memory: …)`.
pub fn print_file_prefix(prefix: Option<&str>) {
    match prefix {
        Some(p) => eprintln!("file-prefix={p}"),
        None => eprintln!("file-prefix= (in-memory: no runtime directory, secondary processes cannot attach)"),
    }
}

/// Launches a pipeline with the process's arguments, runs it until `--seconds` (after `--`; 0 or absent
/// means until Ctrl-C), printing per-lcore counters each second, then stops it and prints the totals.
/// Returns the process exit code.
pub fn run_declared(name: &'static str, launch: fn(&LaunchOptions) -> Result<Pipeline, LaunchError>) -> i32 {
    let DeclaredArgs { options, app } = DeclaredArgs::parse(name, std::env::args_os().skip(1));
    crate::logging::init();
    let seconds = app.seconds;
    let pipeline = match launch(&options) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 1;
        }
    };
    print_file_prefix(pipeline.file_prefix());
    println!("{name}: running{}; Ctrl-C stops", if seconds > 0 { format!(" for {seconds} s") } else { String::new() });
    let mut last = pipeline.stats();
    pipeline.run_for((seconds > 0).then(|| Duration::from_secs(seconds)), Duration::from_secs(1), |now| {
        for (before, after) in last.iter().zip(now) {
            println!("  {}", stats_line(before, after));
        }
        last = now.to_vec();
    });
    match pipeline.join() {
        Ok(report) => {
            for lcore in &report.lcores {
                println!(
                    "{name}: lcore {} received {} packets, sent {}, dropped {} ({:?})",
                    lcore.lcore,
                    lcore.packets,
                    lcore.tx_packets,
                    lcore.total_dropped(),
                    lcore.stage_drops
                );
            }
            if report.mbufs_leaked > 0 {
                eprintln!("{name}: {} mbufs leaked", report.mbufs_leaked);
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            1
        }
    }
}

/// One lcore's line of the per-second stats: rate and totals, the mean burst and the empty-poll share
/// of the last second, and each stage's cycles per packet (sampled, since the start).
pub fn stats_line(before: &LcoreStatsSnapshot, after: &LcoreStatsSnapshot) -> String {
    let interval = LcoreStatsSnapshot {
        bursts: after.bursts - before.bursts,
        packets: after.packets - before.packets,
        empty_polls: after.empty_polls - before.empty_polls,
        ..LcoreStatsSnapshot::default()
    };
    // Stage costs are sampled only with the `stage-costs` feature; without it nothing is shown.
    let sampled = after.sampled_iterations > 0;
    let costs: Vec<String> = after
        .stage_costs
        .iter()
        .filter(|_| sampled)
        .map(|c| match c.cycles_per_packet() {
            Some(cpp) => format!("{}={cpp:.0}", c.name),
            None => format!("{}=-", c.name),
        })
        .collect();
    format!(
        "lcore {}: {:>8.3} Mpps, {} packets, {} dropped, {} empty polls ({:.0} %), burst {:.1}{}",
        after.lcore,
        interval.packets as f64 / 1e6,
        after.packets,
        after.total_dropped(),
        after.empty_polls,
        interval.empty_poll_ratio() * 100.0,
        interval.mean_burst(),
        if costs.is_empty() { String::new() } else { format!(", cycles/packet {}", costs.join(" ")) }
    )
}
