//! Declared rosette pipelines and the support code their binaries share: command-line flags, a stderr
//! logger, and the two-port forwarder used by the forwarding demo and `bench-forward`.

pub mod cli;
pub mod declared;
pub mod dispatch;
pub mod forward;
pub mod logging;
pub mod run;
