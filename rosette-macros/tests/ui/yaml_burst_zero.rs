rosette_macros::pipeline!("yaml_burst_zero.yaml");

fn main() {}
