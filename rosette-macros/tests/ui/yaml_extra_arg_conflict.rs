rosette_macros::pipeline!("yaml_extra_arg_conflict.yaml");

fn main() {}
