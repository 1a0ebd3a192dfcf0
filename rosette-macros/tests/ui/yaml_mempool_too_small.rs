rosette_macros::pipeline!("yaml_mempool_too_small.yaml");

fn main() {}
