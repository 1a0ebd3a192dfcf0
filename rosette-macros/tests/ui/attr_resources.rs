#[rosette_macros::pipeline_mod(eal(lcores = "0-1", extra_args = ["--no-huge"]))]
mod m {
    port!(p, device = "net_null0", mempool(size = 1000, cache = 600));
    port!(q, device = "eth0", rx_queues = 0);
    ring!(r, size = 1000);
    core!(lcore = 1, poll(from = p.rx[0], to = ring:r), poll(from = ring:r, to = q.tx[0]));
}

fn main() {}
