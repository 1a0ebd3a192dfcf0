//! Declared rosette pipelines and the support code their binaries share: command-line pieces for clap
//! ([`cli`]), the logger ([`logging`], `RUST_LOG`), the hand-written two-port forwarder (the forwarding
//! demo; `bench-forward`'s hand-loop line), the runner of the declared pipelines ([`run`]), the DOT
//! drawing of declarations (`rosette-graph`, [`graph`]), and `rosette-perf`'s measurement code ([`perf`]).

pub mod cli;
pub mod declared;
pub mod dispatch;
pub mod forward;
pub mod graph;
pub mod logging;
pub mod perf;
pub mod run;
