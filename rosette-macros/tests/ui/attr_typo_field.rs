// A misspelt field of the attribute form gets the nearest known one.
#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod m {
    port!(p, device = "net_null0", rx_queus = 1);
    core!(lcore = 1, poll(from = p.rx[0], to = p.tx[0]));
}

fn main() {}
