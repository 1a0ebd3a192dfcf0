rosette_macros::pipeline!("yaml_unknown_ring.yaml");

fn main() {}
