//! `rosette-perf`: an iperf-like tool for rosette's channels over `net_memif` between two processes,
//! with kernel TCP/UDP and raw memif baselines (`--compare-kernel`). See [`pipelines::perf`].

use pipelines::cli::Args;
use pipelines::perf::{self, Options};

fn main() {
    pipelines::logging::init();
    let args = Args::from_env();
    if args.wants_help() {
        println!("{}", perf::USAGE);
        return;
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rosette-perf: {e}\n{}", perf::USAGE);
            std::process::exit(2);
        }
    };
    std::process::exit(perf::run(&opts));
}
