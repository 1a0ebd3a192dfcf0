//! The pipelines declared for the binaries and tests, compiled by `rosette-macros`. Read the generated
//! code with `cargo expand -p pipelines declared`.

rosette_macros::pipeline!("dispatch.yaml");
rosette_macros::pipeline!("reflector.yaml");
rosette_macros::pipeline!("forwarder.yaml");

/// The filter chain, declared with attributes: parse Ethernet/IPv4/UDP (dropping malformed packets and
/// bad checksums), drop datagrams to UDP port 53, count, rewrite the MAC addresses, and send the rest
/// back out. By default `wire` is the server end of a memif link; override with `--port wire=<device>`.
#[rosette_macros::pipeline_mod(eal(lcores = "0-1", memory = "auto"))]
pub mod filter {
    port!(
        wire,
        device = "net_memif0,role=server,socket=/tmp/rosette-filter.sock,socket-abstract=no",
        mempool(size = 4095, cache = 128)
    );
    core!(
        lcore = 1,
        burst = 32,
        poll(
            from = wire.rx[0],
            stages = [
                rosette::pipeline::stages::ParseUdp { verify_udp_checksum: true },
                rosette::pipeline::stages::DropUdpPort { port: 53 },
                rosette::pipeline::stages::Count,
                rosette::pipeline::stages::SetMacs { src: 0x0200000000aa, dst: 0x0200000000bb },
            ],
            to = wire.tx[0]
        )
    );
}
