// Typed params: a channel stage by short name, a user stage with its own derived params (and an enum
// param), a fault stage; the endpoint accessor is typed by the stage.
rosette_macros::pipeline!("params.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {
    use rosette::pipeline::endpoint::{EndpointError, ReliableEndpoint};
    use rosette::pipeline::StageParams;
    let _: fn(std::time::Duration) -> Result<ReliableEndpoint, EndpointError> = chan::endpoints::ingest;
    assert_eq!(FilterParams::FIELDS[0].name, "max_len");
    assert_eq!(FilterParams::FIELDS[0].doc, "Longest frame passed on.");
    assert!(FilterParams::FIELDS[0].required && !FilterParams::FIELDS[1].required);
    let _ = (Proto::Udp, Proto::Tcp);
}

/// The attribute form of a channel stage by short name: the endpoint accessor is typed the same way.
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod attr_chan {
    port!(wire, device = "net_null0");
    core!(lcore = 1,
          poll(from = wire.rx[0],
               stages = [
                   streaming { endpoint: "feed", ip: "10.0.0.1", port: 7000, mac: "02:00:00:00:00:01",
                               peer: "10.0.0.2:7000", role: connect, rto_min: 200us, epoch: 3 },
                   fault { seed: 9, duplicate_ppm: 1000 },
               ],
               to = wire.tx[0]));
}

const _: fn(
    std::time::Duration,
) -> Result<rosette::pipeline::endpoint::StreamEndpoint, rosette::pipeline::endpoint::EndpointError> =
    attr_chan::endpoints::feed;
