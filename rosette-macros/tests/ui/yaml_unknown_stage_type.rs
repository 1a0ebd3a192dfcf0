// A misspelt stage type is one error naming the YAML location, the type and the module searched.
rosette_macros::pipeline!("yaml_unknown_stage_type.yaml");

include!("typo_stages.rs.in");

fn main() {}
