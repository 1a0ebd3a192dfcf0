//! `rosette-perf`: an iperf-like tool for rosette's channels over `net_memif` between two processes,
//! with kernel TCP/UDP and raw memif baselines (`--compare-kernel`). See [`pipelines::perf`];
//! `rosette-perf --help` lists the options.

use clap::{CommandFactory, Parser};
use pipelines::perf::{self, Options, PerfArgs};

fn main() {
    // First: a Ctrl-C from here on ends the run cleanly (see `perf::take_over_signals`).
    perf::take_over_signals();
    let args = PerfArgs::parse();
    pipelines::logging::init();
    let opts = Options::parse(&args)
        .unwrap_or_else(|e| PerfArgs::command().error(clap::error::ErrorKind::ValueValidation, e).exit());
    std::process::exit(perf::run(&opts));
}
