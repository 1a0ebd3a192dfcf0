rosette_macros::pipeline!("yaml_param_queue_depth_zero.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
