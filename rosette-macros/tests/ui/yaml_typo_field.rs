rosette_macros::pipeline!("yaml_typo_field.yaml");

fn main() {}
