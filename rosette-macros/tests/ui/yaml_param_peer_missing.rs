rosette_macros::pipeline!("yaml_param_peer_missing.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
