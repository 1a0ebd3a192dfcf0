// A malformed generic stage type in the attribute form: spanned on the tokens where it goes wrong.
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod generic {
    port!(wire, device = "net_null0");
    core!(lcore = 1, poll(from = wire.rx[0], stages = [crate::Chan<u8 { limit: 3 }], to = wire.tx[0]));
}

fn main() {}
