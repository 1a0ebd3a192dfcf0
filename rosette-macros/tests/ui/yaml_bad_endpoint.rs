rosette_macros::pipeline!("yaml_bad_endpoint.yaml");

fn main() {}
