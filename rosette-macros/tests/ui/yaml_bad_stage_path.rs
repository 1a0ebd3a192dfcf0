rosette_macros::pipeline!("yaml_bad_stage_path.yaml");

fn main() {}
