// Typed params in the attribute form: every error at once, each spanned on its value (the missing one on the stage).
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod chan {
    port!(wire, device = "net_null0");
    core!(lcore = 1,
          poll(from = wire.rx[0],
               stages = [
                   reliable { endpoint: "ingest", portt: 7000, mac: "02:00:00:00:01", peer: "10.0.0.2",
                              role: "lsten", rto_min: "1min", ip: 10 },
                   fault { loss_ppm: 2000000 },
                   crate::Filter { max_len: 1500 },
               ],
               to = wire.tx[0]));
}

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {}
