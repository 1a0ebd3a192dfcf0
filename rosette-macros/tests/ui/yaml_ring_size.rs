rosette_macros::pipeline!("yaml_ring_size.yaml");

fn main() {}
