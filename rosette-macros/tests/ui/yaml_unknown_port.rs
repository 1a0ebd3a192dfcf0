rosette_macros::pipeline!("yaml_unknown_port.yaml");

fn main() {}
