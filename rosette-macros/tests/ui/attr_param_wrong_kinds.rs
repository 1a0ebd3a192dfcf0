// A value of the wrong kind for every kind of param, in the attribute form: one error each, spanned on
// the value (integer, bool, float, string, duration, IPv4, socket address, MAC, enum, integer-or-word).
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod chan {
    port!(wire, device = "net_null0");
    core!(lcore = 1,
          poll(from = wire.rx[0],
               stages = [
                   reliable { endpoint: "ingest", ip: 10, port: "7000", mac: true, peer: 7000, role: 1,
                              pacing: "yes", epoch: false, rto_min: 5 },
                   crate::Filter { max_len: 1500, proto: 6, weight: heavy },
                   fault { loss_ppm: 100, env: 3 },
               ],
               to = wire.tx[0]));
}

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
