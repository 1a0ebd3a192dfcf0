rosette_macros::pipeline!("yaml_rx_queue_out_of_range.yaml");

fn main() {}
