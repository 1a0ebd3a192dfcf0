rosette_macros::pipeline!("yaml_param_window_cannot_hold_message.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
