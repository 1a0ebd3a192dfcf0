rosette_macros::pipeline!("yaml_port_rules.yaml");

fn main() {}
