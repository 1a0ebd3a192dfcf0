rosette_macros::pipeline!("yaml_eal_rules.yaml");

fn main() {}
