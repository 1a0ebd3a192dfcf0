rosette_macros::pipeline!("yaml_unknown_field.yaml");

fn main() {}
