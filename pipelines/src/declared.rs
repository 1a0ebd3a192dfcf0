//! The pipelines declared for the binaries and tests, compiled by `rosette-macros`. Read the generated
//! code with `cargo expand -p pipelines declared`.

rosette_macros::pipeline!("dispatch.yaml");
rosette_macros::pipeline!("reflector.yaml");
rosette_macros::pipeline!("forwarder.yaml");
rosette_macros::pipeline!("bench_forward.yaml");

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
                rosette::pipeline::stages::SetMacs { src: "02:00:00:00:00:aa", dst: "02:00:00:00:00:bb" },
            ],
            to = wire.tx[0]
        )
    );
}

/// The same link with each channel: the three declarations differ in one word of YAML (the stage), and
/// the endpoint type follows it.
pub mod links {
    /// `link_reliable.yaml`.
    pub mod reliable {
        rosette_macros::pipeline!("link_reliable.yaml");
    }
    /// `link_streaming.yaml`.
    pub mod streaming {
        rosette_macros::pipeline!("link_streaming.yaml");
    }
    /// `link_unordered.yaml`.
    pub mod unordered {
        rosette_macros::pipeline!("link_unordered.yaml");
    }

    // The typed accessors: a mismatch here would be a compile error naming both endpoint types.
    use core::time::Duration;
    use rosette::pipeline::endpoint::{EndpointError, ReliableEndpoint, StreamEndpoint, UnorderedEndpoint};
    const _: fn(Duration) -> Result<ReliableEndpoint, EndpointError> = reliable::link::endpoints::ingest;
    const _: fn(Duration) -> Result<StreamEndpoint, EndpointError> = streaming::link::endpoints::ingest;
    const _: fn(Duration) -> Result<UnorderedEndpoint, EndpointError> = unordered::link::endpoints::ingest;
}
