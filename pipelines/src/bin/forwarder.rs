//! Runs the declared `forwarder` pipeline (see `pipelines/src/declared.rs`).
//!
//! Usage: `forwarder [EAL args] [--port NAME=DEVICE] [--no-huge] [-- --seconds N]` (`forwarder --help`)

fn main() {
    std::process::exit(pipelines::run::run_declared("forwarder", pipelines::declared::forwarder::launch));
}
