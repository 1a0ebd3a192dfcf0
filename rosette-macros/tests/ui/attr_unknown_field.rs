#[rosette_macros::pipeline_mod(eal(lcores = "0-1", colour = "red"))]
mod m {
    port!(p, device = "net_null0", speed = 10);
    core!(lcore = 1, poll(from = p.rx[0]));
}

fn main() {}
