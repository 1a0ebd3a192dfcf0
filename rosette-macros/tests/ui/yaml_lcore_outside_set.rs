rosette_macros::pipeline!("yaml_lcore_outside_set.yaml");

fn main() {}
