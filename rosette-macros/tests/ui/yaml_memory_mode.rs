rosette_macros::pipeline!("yaml_memory_mode.yaml");

fn main() {}
