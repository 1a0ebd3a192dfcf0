rosette_macros::pipeline!("yaml_tx_written_by_two_lcores.yaml");

fn main() {}
