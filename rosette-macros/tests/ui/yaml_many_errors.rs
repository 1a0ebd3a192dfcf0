rosette_macros::pipeline!("yaml_many_errors.yaml");

fn main() {}
