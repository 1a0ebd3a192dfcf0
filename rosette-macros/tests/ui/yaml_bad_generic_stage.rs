// A malformed generic stage type is an error at its YAML location saying what is wrong.
rosette_macros::pipeline!("yaml_bad_generic_stage.yaml");

fn main() {}
