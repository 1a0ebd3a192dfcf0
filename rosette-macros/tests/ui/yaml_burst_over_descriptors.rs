rosette_macros::pipeline!("yaml_burst_over_descriptors.yaml");

fn main() {}
