rosette_macros::pipeline!("yaml_mempool_cache_too_large.yaml");

fn main() {}
