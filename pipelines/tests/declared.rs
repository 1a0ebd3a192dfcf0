//! Every declared pipeline, run on virtual devices: packet counts, contents, and no mbuf leaked. Each
//! scenario runs in its own process (DPDK's EAL starts once per process).

use std::time::Duration;

use pipelines::declared::{filter, forwarder, reflector};
use rosette::dpdk_test;
use rosette::pipeline::stages::InjectUdp;
use rosette::pipeline::{LaunchOptions, Pipeline};
use rosette::substrate::{Burst, Mbuf, Mempool, MempoolConfig, Port, PortConfig, RxQueue, TxQueue};
use rosette::testing::{assert_no_mbuf_leaked, memory_mode, wait_until};
use rosette::typenum::U32;

/// The test's own end of an in-process memif link to the pipeline's port.
struct Peer {
    pool: Mempool,
    port: Port,
    rx: RxQueue,
    tx: TxQueue,
}

fn memif_options(port: &str, socket: &str) -> LaunchOptions {
    LaunchOptions::new()
        .memory(memory_mode())
        .device(port, format!("net_memif0,role=server,socket={socket},socket-abstract=no"))
        .eal_args([
            format!("--vdev=net_memif1,role=client,socket={socket},socket-abstract=no"),
            "--log-level=lib.eal:error".to_owned(),
        ])
}

fn connect_peer(pipeline: &Pipeline) -> Peer {
    let eal = pipeline.eal().clone();
    let pool = Mempool::new(&eal, &MempoolConfig { size: 4095, cache_size: 0, ..Default::default() }).unwrap();
    let port = Port::configure(&eal, "net_memif1", &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
    port.start().unwrap();
    assert!(wait_until(Duration::from_secs(20), || port.link().unwrap().up), "memif link never came up");
    let (rx, tx) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
    Peer { pool, port, rx, tx }
}

impl Peer {
    /// Sends `frames` and collects what comes back until `expected` frames arrived or 20 s passed.
    fn exchange(&mut self, frames: &[Vec<u8>], expected: usize) -> Vec<Vec<u8>> {
        let mut sent = 0;
        let mut back = Vec::new();
        let mut burst = Burst::<U32>::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // When every frame should come back: at most half a ring in flight, so the pipeline's tx ring
        // back to us never overflows (memif drops what does not fit), however this thread is
        // scheduled against the lcore. (When some are meant to be dropped, what is in flight is unknown.)
        let window = if expected == frames.len() { 512 } else { usize::MAX };
        while (sent < frames.len() || back.len() < expected) && std::time::Instant::now() < deadline {
            while sent < frames.len() && !burst.is_full() && sent - back.len().min(sent) < window {
                burst.push(Mbuf::from_slice(&self.pool, &frames[sent]).unwrap()).unwrap();
                sent += 1;
            }
            self.tx.tx(&mut burst);
            let mut inbound = Burst::<U32>::new();
            self.rx.rx(&mut inbound);
            back.extend(inbound.as_slice().iter().map(|m| m.data().to_vec()));
        }
        // Give stragglers a moment, so a pipeline that forwards too much is caught too.
        let settle = std::time::Instant::now() + Duration::from_millis(200);
        while std::time::Instant::now() < settle {
            let mut inbound = Burst::<U32>::new();
            self.rx.rx(&mut inbound);
            back.extend(inbound.as_slice().iter().map(|m| m.data().to_vec()));
        }
        back
    }

    /// Stops the pipeline (before the memif link goes down), then tears the peer down; checks leaks.
    fn finish(self, pipeline: Pipeline) -> rosette::pipeline::PipelineReport {
        let eal = pipeline.eal().clone();
        pipeline.stop();
        let report = pipeline.join().expect("pipeline ended cleanly");
        let Peer { pool, port, rx, tx } = self;
        drop((rx, tx, port));
        assert!(pool.is_full(), "{} peer mbufs still out", pool.in_use());
        drop(pool);
        assert_eq!(report.mbufs_leaked, 0);
        assert_no_mbuf_leaked(&eal);
        report
    }
}

fn udp_frame(dst_port: u16, seq: u32, payload_len: usize) -> Vec<u8> {
    let mut frame = vec![0u8; 42 + payload_len];
    InjectUdp::build(&mut frame, dst_port, seq);
    frame
}

dpdk_test! {
    fn reflector_returns_every_frame_with_macs_swapped() {
        let socket = format!("/tmp/rosette-reflector-test-{}.sock", std::process::id());
        let pipeline = reflector::launch(&memif_options("wire", &socket)).expect("launch reflector");
        let mut peer = connect_peer(&pipeline);
        let frames: Vec<Vec<u8>> = (0..2000).map(|i| udp_frame(9000, i, (i % 300) as usize)).collect();
        let back = peer.exchange(&frames, frames.len());
        assert_eq!(back.len(), frames.len());
        for (sent, got) in frames.iter().zip(&back) {
            let mut expected = sent.clone();
            expected[..12].rotate_left(6);
            assert_eq!(got, &expected);
        }
        let report = peer.finish(pipeline);
        assert_eq!(report.packets(), 2000);
        assert_eq!(report.lcores[0].tx_packets, 2000);
        let _ = std::fs::remove_file(socket);
    }
}

dpdk_test! {
    fn filter_chain_forwards_only_valid_udp_not_to_the_blocked_port() {
        let socket = format!("/tmp/rosette-filter-test-{}.sock", std::process::id());
        let pipeline = filter::launch(&memif_options("wire", &socket)).expect("launch filter");
        let mut peer = connect_peer(&pipeline);
        let mut frames = Vec::new();
        let mut expected = Vec::new();
        for i in 0..1200u32 {
            let mut frame = udp_frame(if i % 4 == 0 { 53 } else { 7000 + (i % 5) as u16 }, i, (i % 64) as usize + 1);
            match i % 6 {
                1 => *frame.last_mut().unwrap() ^= 0x55, // corrupt payload: bad UDP checksum
                3 => frame.truncate(30),            // truncated inside the IPv4 header
                _ => {}
            }
            let valid = !matches!(i % 6, 1 | 3);
            if valid && i % 4 != 0 {
                let mut out = frame.clone();
                out[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
                out[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
                expected.push(out);
            }
            frames.push(frame);
        }
        let back = peer.exchange(&frames, expected.len());
        assert_eq!(back, expected, "the filter chain forwarded the wrong frames");
        let report = peer.finish(pipeline);
        let lcore = &report.lcores[0];
        assert_eq!(lcore.packets, frames.len() as u64);
        let drops: std::collections::BTreeMap<_, _> = lcore.stage_drops.iter().cloned().collect();
        assert_eq!(drops["parse_udp"], frames.iter().enumerate().filter(|(i, _)| matches!(i % 6, 1 | 3)).count() as u64);
        assert_eq!(drops["drop_udp_port"] as usize, frames.len() - expected.len() - drops["parse_udp"] as usize);
        // With the `stage-costs` feature every stage's cost was sampled (scripts/test runs this test with
        // and without it); without it the cost fields stay zero.
        assert_eq!(lcore.stage_costs.len(), lcore.stage_drops.len());
        if rosette::pipeline::stats::STAGE_COSTS {
            assert!(lcore.sampled_iterations > 0 && lcore.iterations >= lcore.sampled_iterations * 64, "{lcore:?}");
            assert!(lcore.burst_sizes.iter().sum::<u64>() > 0, "the sampled polls are in the histogram");
        } else {
            assert_eq!((lcore.sampled_iterations, lcore.burst_sizes.iter().sum::<u64>()), (0, 0));
        }
        let _ = std::fs::remove_file(socket);
    }
}

dpdk_test! {
    fn forwarder_spreads_queues_over_two_lcores_without_loss() {
        let options = LaunchOptions::new().memory(memory_mode());
        let pipeline = forwarder::launch(&options).expect("launch forwarder");
        std::thread::sleep(Duration::from_millis(500));
        let running = pipeline.stats();
        assert_eq!(running.len(), 2);
        for lcore in &running {
            assert!(lcore.packets > 0, "lcore {} forwarded nothing", lcore.lcore);
        }
        for pool in pipeline.pools() {
            assert_eq!(pool.socket_id(), 0, "this machine has one NUMA node");
        }
        let eal = pipeline.eal().clone();
        let report = pipeline.join().expect("forwarder ended cleanly");
        for lcore in &report.lcores {
            assert_eq!(lcore.tx_packets + lcore.tx_dropped, lcore.packets, "lcore {} lost packets", lcore.lcore);
            assert!(lcore.mean_burst() > 1.0, "lcore {}: mean burst {}", lcore.lcore, lcore.mean_burst());
            if rosette::pipeline::stats::STAGE_COSTS {
                // net_null never runs dry: the sampled iterations measured every stage on full bursts.
                for cost in &lcore.stage_costs {
                    let cpp = cost.cycles_per_packet().unwrap_or_else(|| panic!("{}: no packets sampled", cost.name));
                    // A measured cost, and a sane one: these stages take tens to hundreds of cycles
                    // per packet; a million (about half a millisecond) is a broken clock or sample.
                    assert!(cost.cycles > 0 && cpp > 0.0 && cpp < 1e6, "lcore {}: {cost:?}", lcore.lcore);
                }
                assert!(lcore.burst_sizes[rosette::pipeline::stats::burst_bucket(32)] > 0, "full bursts of 32 sampled");
            }
        }
        let rx_total: u64 = report.ports.iter().map(|(_, s)| s.ipackets).sum();
        let tx_total: u64 = report.ports.iter().map(|(_, s)| s.opackets).sum();
        // The ports also count what the loops drained at stop (net_null never runs dry).
        assert!(rx_total >= report.packets());
        assert_eq!(tx_total, report.lcores.iter().map(|l| l.tx_packets).sum::<u64>());
        assert_eq!(report.mbufs_leaked, 0);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn declared_reliable_link_builds_its_channel_and_typed_endpoint() {
        use pipelines::declared::links::reliable::link;
        let options = LaunchOptions::new()
            .memory(memory_mode())
            .device("wire", "net_null0")
            .eal_args(["--log-level=lib.eal:error".to_owned()]);
        let pipeline = link::launch(&options).expect("launch the declared reliable link");
        // The typed accessor: a `ReliableEndpoint` because the YAML says `reliable`.
        let endpoint: rosette::pipeline::endpoint::ReliableEndpoint =
            link::endpoints::ingest(Duration::from_secs(20)).expect("the stage registered its endpoint");
        std::thread::sleep(Duration::from_millis(100));
        drop(endpoint);
        let eal = pipeline.eal().clone();
        pipeline.stop();
        let report = pipeline.join().expect("pipeline ended cleanly");
        assert!(report.packets() > 0, "net_null delivers frames, which the channel stage takes or drops");
        assert_eq!(report.mbufs_leaked, 0);
        assert_no_mbuf_leaked(&eal);
    }
}
