// A parameter the stage does not have, and one of the wrong type: rustc reports both, naming the stage.
rosette_macros::pipeline!("yaml_stage_bad_param.yaml");

#[derive(Default)]
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
