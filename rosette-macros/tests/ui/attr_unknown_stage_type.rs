// A misspelt stage type in the attribute form: one error, spanned on the stage.
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod typo {
    port!(wire, device = "net_null0");
    core!(lcore = 1,
          poll(from = wire.rx[0],
               stages = [crate::stages::Count, crate::stages::Cuont, crate::stages::Chna<u8>,
                         crate::stages::Chan<u8>],
               to = wire.tx[0]));
}

include!("typo_stages.rs.in");

fn main() {}
