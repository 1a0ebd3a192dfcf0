rosette_macros::pipeline!("yaml_main_lcore_outside_set.yaml");

fn main() {}
