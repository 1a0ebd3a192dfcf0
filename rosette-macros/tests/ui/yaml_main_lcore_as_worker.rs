rosette_macros::pipeline!("yaml_main_lcore_as_worker.yaml");

fn main() {}
