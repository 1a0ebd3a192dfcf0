rosette_macros::pipeline!("yaml_duplicate_device.yaml");

fn main() {}
