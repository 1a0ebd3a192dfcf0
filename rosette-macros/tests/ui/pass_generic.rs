// A stage type with generics (`crate::Chan<X>`) is declared as written, in YAML and in the attribute
// form (type form `Chan<u8>` or expression form `Chan::<u8>`); its params derive with defaults.
rosette_macros::pipeline!("generic.yaml");

#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod generic_attr {
    port!(wire, device = "net_null0");
    core!(lcore = 1,
          poll(from = wire.rx[0],
               stages = [crate::Chan<u8>, crate::Chan::<u16> { limit: 3 }, crate::Chan<(u8, u32)> { limit: 1 }],
               to = wire.tx[0]));
}

/// A stage generic over a marker type; its fields are its params.
#[derive(rosette::pipeline::StageParams)]
#[params(stage)]
pub struct Chan<X: Send + 'static> {
    /// How many packets to pass. Default: unlimited.
    #[param(default = u32::MAX)]
    pub limit: u32,
    #[param(skip)]
    marker: core::marker::PhantomData<X>,
}

impl<X: Send + 'static> rosette::pipeline::Stage for Chan<X> {
    fn on_packet(
        &mut self,
        packet: rosette::substrate::Mbuf,
        _cx: &rosette::pipeline::Context,
    ) -> rosette::pipeline::Verdict {
        if self.limit == 0 {
            return rosette::pipeline::Verdict::Dropped;
        }
        self.limit -= 1;
        let _ = &self.marker;
        rosette::pipeline::Verdict::Pass(packet)
    }
}

fn main() {
    assert_eq!(generic::SPEC.lcores[0].stages, &["chan", "chan_2"]);
    assert_eq!(generic_attr::SPEC.lcores[0].stages, &["chan", "chan_2", "chan_3"]);
}
