#[rosette_macros::pipeline_mod(eal(lcores = "0-1", memory = lots))]
mod m {
    port!(p, device = "net_null0", rx_queues = "one", shared_tx = 1);
    core!(lcore = 1, burst = 70000, poll(from = p.rx[0]));
}

fn main() {}
