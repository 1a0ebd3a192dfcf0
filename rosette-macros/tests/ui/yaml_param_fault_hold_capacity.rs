rosette_macros::pipeline!("yaml_param_fault_hold_capacity.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
