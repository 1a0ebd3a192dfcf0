rosette_macros::pipeline!("yaml_table_params.yaml");

fn main() {}
