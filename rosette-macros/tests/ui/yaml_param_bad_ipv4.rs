rosette_macros::pipeline!("yaml_param_bad_ipv4.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
