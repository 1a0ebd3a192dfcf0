#[rosette_macros::pipeline_mod(eal(lcores = "0-2", main_lcore = 0))]
mod m {
    port!(p, device = "net_null0", rx_queues = 3, rx_descriptors = 16);
    core!(lcore = 0, burst = 32, poll(from = p.rx[0], to = p.tx[0]));
    core!(lcore = 1, burst = 24, poll(from = p.rx[0], to = p.tx[0]));
    core!(lcore = 1, burst = 0, poll(from = p.rx[1]));
    core!(lcore = 5, poll(from = p.rx[2]));
}

fn main() {}
