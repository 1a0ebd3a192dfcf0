// A parameter the stage does not have, and one of the wrong type: each is a compile-time param error at its YAML location.
rosette_macros::pipeline!("yaml_stage_bad_param.yaml");

#[derive(Default, rosette::pipeline::StageParams)]
#[params(stage)]
pub struct Filter {
    pub max_len: u32,
}

impl rosette::pipeline::Stage for Filter {
    fn on_packet(
        &mut self,
        packet: rosette::substrate::Mbuf,
        _cx: &rosette::pipeline::Context,
    ) -> rosette::pipeline::Verdict {
        rosette::pipeline::Verdict::Pass(packet)
    }
}

fn main() {}
