// A stage type that does not implement `Stage`: rustc's trait-bound error names the type.
rosette_macros::pipeline!("yaml_stage_not_a_stage.yaml");

#[derive(Default)]
pub struct NotAStage;

fn main() {}
