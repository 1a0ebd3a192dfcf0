rosette_macros::pipeline!("yaml_lcore_twice.yaml");

fn main() {}
