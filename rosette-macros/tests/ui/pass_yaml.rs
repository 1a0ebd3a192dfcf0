// The complete example of SCHEMA.md compiles.
rosette_macros::pipeline!("forwarder.yaml");

fn main() {
    assert_eq!(forwarder::NAME, "forwarder");
}

/// A user-defined stage: drops frames longer than `max_len`.
#[derive(Default, rosette::pipeline::StageParams)]
#[params(stage)]
pub struct Filter {
    pub max_len: u32,
    pub proto: String,
}

impl rosette::pipeline::Stage for Filter {
    fn on_packet(
        &mut self,
        packet: rosette::substrate::Mbuf,
        _cx: &rosette::pipeline::Context,
    ) -> rosette::pipeline::Verdict {
        if packet.pkt_len() as u32 > self.max_len {
            rosette::pipeline::Verdict::Dropped
        } else {
            rosette::pipeline::Verdict::Pass(packet)
        }
    }
}
