//! Runs the declared `filter` pipeline (see `pipelines/src/declared.rs`).
//!
//! Usage: `filter [EAL args] [--port NAME=DEVICE] [--no-huge] [-- --seconds N]` (`filter --help`)

fn main() {
    std::process::exit(pipelines::run::run_declared("filter", pipelines::declared::filter::launch));
}
