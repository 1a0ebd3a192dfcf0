rosette_macros::pipeline!("yaml_ring_named_like_port.yaml");

fn main() {}
