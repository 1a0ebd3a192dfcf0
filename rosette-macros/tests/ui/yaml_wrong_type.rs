rosette_macros::pipeline!("yaml_wrong_type.yaml");

fn main() {}
