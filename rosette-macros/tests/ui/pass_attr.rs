// The attribute form of the same pipeline compiles, and items of the module are kept.
#[rosette_macros::pipeline_mod(eal(
    memory = "no-huge",
    memory_mb = 256,
    lcores = "0-2",
    main_lcore = 0,
    file_prefix = "fwd",
    extra_args = ["--in-memory"]
))]
mod forwarder {
    port!(p0, device = "net_null0", rx_queues = 1, tx_queues = 2, rx_descriptors = 1024,
          tx_descriptors = 1024, mempool(size = 8191, cache = 256), shared_tx = false);
    port!(p1, device = "net_ring0");
    ring!(handoff, size = 1024);
    core!(lcore = 1, burst = 32,
          poll(from = p0.rx[0],
               stages = [mac_swap,
                         crate::Filter { max_len: 1500, proto: "udp" }],
               to = ring:handoff));
    core!(lcore = 2, burst = 32,
          poll(from = ring:handoff, to = p1.tx[0]),
          poll(from = p1.rx[0], to = p0.tx[1]));

    pub const KEPT: u32 = 7;
}

fn main() {
    assert_eq!(forwarder::NAME, "forwarder");
    assert_eq!(forwarder::KEPT, 7);
}

/// A user-defined stage: drops frames longer than `max_len`.
#[derive(Default, rosette::pipeline::StageParams)]
#[params(stage)]
pub struct Filter {
    pub max_len: u32,
    pub proto: String,
}

impl rosette::pipeline::Stage for Filter {
    fn on_packet(
        &mut self,
        packet: rosette::substrate::Mbuf,
        _cx: &rosette::pipeline::Context,
    ) -> rosette::pipeline::Verdict {
        if packet.pkt_len() as u32 > self.max_len {
            rosette::pipeline::Verdict::Dropped
        } else {
            rosette::pipeline::Verdict::Pass(packet)
        }
    }
}
