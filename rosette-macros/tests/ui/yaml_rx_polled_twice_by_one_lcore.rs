rosette_macros::pipeline!("yaml_rx_polled_twice_by_one_lcore.yaml");

fn main() {}
