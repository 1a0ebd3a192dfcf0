//! Runs the declared `reflector` pipeline (see `pipelines/src/declared.rs`).
//!
//! Usage: `reflector [EAL args] [--port NAME=DEVICE] [--no-huge] [-- --seconds N]` (`reflector --help`)

fn main() {
    std::process::exit(pipelines::run::run_declared("reflector", pipelines::declared::reflector::launch));
}
