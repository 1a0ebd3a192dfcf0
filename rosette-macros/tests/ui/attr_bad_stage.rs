#[rosette_macros::pipeline_mod(eal(lcores = "0-1"))]
mod m {
    port!(p, device = "net_null0");
    core!(lcore = 1,
          poll(from = p.rx[0],
               stages = [a::B { x: y.z }, a::B { x: 1 } + 1, a::C { ..Default::default() }],
               to = p.rx[0]));
}

fn main() {}
