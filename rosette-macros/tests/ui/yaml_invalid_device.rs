rosette_macros::pipeline!("yaml_invalid_device.yaml");

fn main() {}
