rosette_macros::pipeline!("yaml_param_window_too_small.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
