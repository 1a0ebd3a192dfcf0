rosette_macros::pipeline!("yaml_empty_lcore_set.yaml");

fn main() {}
