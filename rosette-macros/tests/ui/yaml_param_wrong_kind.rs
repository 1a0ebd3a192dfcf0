rosette_macros::pipeline!("yaml_param_wrong_kind.yaml");

/// A user stage with its own documented params type.
pub struct Filter {
    max_len: u32,
}

/// Params of [`Filter`].
#[derive(rosette::pipeline::StageParams)]
pub struct FilterParams {
    /// Longest frame passed on.
    pub max_len: u32,
    /// Which protocol to keep.
    #[param(default = Proto::Udp)]
    pub proto: Proto,
}

/// An enum param: `udp` or `tcp`.
#[derive(rosette::pipeline::ParamEnum)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl rosette::pipeline::DeclaredStage for Filter {
    type Params = FilterParams;
    fn build(
        params: FilterParams,
        _env: &rosette::pipeline::StageEnv,
    ) -> Result<Self, rosette::pipeline::BuildError> {
        Ok(Filter { max_len: params.max_len })
    }
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

fn main() {}
