rosette_macros::pipeline!("yaml_burst_not_power_of_two.yaml");

fn main() {}
