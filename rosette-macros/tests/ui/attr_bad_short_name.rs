// A misspelt short stage name in the attribute form lists the known names.
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod chan {
    port!(wire, device = "net_null0");
    core!(lcore = 1, poll(from = wire.rx[0], stages = [mac_swp, count], to = wire.tx[0]));
}

fn main() {}
