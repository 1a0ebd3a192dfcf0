rosette_macros::pipeline!("yaml_rx_polled_by_two_lcores.yaml");

fn main() {}
