rosette_macros::pipeline!("yaml_duplicate_port.yaml");

fn main() {}
