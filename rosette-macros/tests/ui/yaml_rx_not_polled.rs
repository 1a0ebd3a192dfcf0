rosette_macros::pipeline!("yaml_rx_not_polled.yaml");

fn main() {}
