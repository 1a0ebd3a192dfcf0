#[rosette_macros::pipeline_mod(eal(lcores = "0-2"))]
mod m {
    port!(p, device = "net_null0", tx_queues = 1);
    core!(lcore = 1, poll(from = q.rx[0], to = ring:r));
    core!(lcore = 2, poll(from = p.rx[3], to = p.tx[0]));
}

fn main() {}
