rosette_macros::pipeline!("yaml_core_without_polls.yaml");

fn main() {}
