rosette_macros::pipeline!("yaml_invalid_identifiers.yaml");

fn main() {}
