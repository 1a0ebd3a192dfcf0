rosette_macros::pipeline!("yaml_ring_unused.yaml");

fn main() {}
