//! The pipeline runtime driven by a hand-written pipeline of the shape the macro generates, on a pair of
//! memif ports inside one process: the pipeline's lcore owns one end, the test's main thread the other.

mod common;

use rosette::dpdk_test;

use std::time::Duration;

use common::assert_no_mbuf_leaked;
use rosette::pipeline::runtime::{EalSpec, LcoreSpec, PipelineSpec, PortSpec, QueueRef};
use rosette::pipeline::stages::MacSwap;
use rosette::pipeline::stats::LocalCounters;
use rosette::pipeline::{LaunchError, LaunchOptions, LcoreIo, Runtime, Stage};
use rosette::substrate::{Burst, Mbuf, MemoryMode, Mempool, MempoolConfig, Port, PortConfig, SpawnUnpinned as _};
use rosette::typenum::U32;

const SOCKET: &str = "/tmp/rosette-pipeline-runtime.sock";

static SPEC: PipelineSpec = PipelineSpec {
    name: "reflector",
    eal: EalSpec {
        memory: MemoryMode::Auto,
        memory_mb: None,
        lcores: &[0, 1],
        main_lcore: Some(0),
        file_prefix: None,
        extra_args: &["--log-level=lib.eal:error"],
    },
    ports: &[PortSpec {
        name: "wire",
        device: "net_memif0,role=server,socket=/tmp/rosette-pipeline-runtime.sock,socket-abstract=no",
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        pool_size: 4095,
        pool_cache: 64,
        shared_tx: false,
        rss: rosette::substrate::RssMode::Udp,
    }],
    rings: &[],
    lcores: &[LcoreSpec {
        lcore: 1,
        rx: &[QueueRef { port: 0, queue: 0 }],
        tx: &[QueueRef { port: 0, queue: 0 }],
        ring_in: &[],
        ring_out: &[],
        stages: &["mac_swap"],
    }],
};

fn lcore_1(mut io: LcoreIo) -> Result<(), LaunchError> {
    let mut rx_0 = io.take_rx(0)?;
    let mut tx_0 = io.take_tx(0)?;
    let stats = io.stats();
    let stop = io.stop_flag();
    let cx = io.context();
    let mut stage_0 = MacSwap::new();
    let mut burst = Burst::<U32>::new();
    let mut counters = LocalCounters::<1>::new();
    while !stop.is_set() {
        let received = rx_0.rx(&mut burst);
        if received == 0 {
            counters.empty_polls += 1;
        } else {
            counters.bursts += 1;
            counters.packets += received as u64;
        }
        counters.stage_drops[0] += u64::from(stage_0.process(&mut burst.batch(), &cx));
        // (the generated loop fuses on_packet calls instead; process is the same contract)
        if !burst.is_empty() {
            let (sent, dropped) = tx_0.tx_or_drop(&mut burst);
            counters.tx_packets += sent as u64;
            counters.tx_dropped += dropped as u64;
        }
        stats.publish(&counters);
    }
    stage_0.finish(&cx);
    stats.publish(&counters);
    rx_0.drain(1024);
    Ok(())
}

fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&i.to_be_bytes());
    f
}

dpdk_test! {
    fn reflector_swaps_macs_and_counts_everything() {
        let _ = std::fs::remove_file(SOCKET);
        let options = LaunchOptions::new().memory(common::memory_mode()).eal_args([format!(
            "--vdev=net_memif1,role=client,socket={SOCKET},socket-abstract=no"
        )]);
        let mut runtime = Runtime::start(&SPEC, &options).expect("start");
        let eal = runtime.eal().clone();
        let pool = Mempool::new(&eal, &MempoolConfig { size: 2047, cache_size: 0, ..Default::default() }).unwrap();
        let peer = Port::configure(&eal, "net_memif1", &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
        peer.start().unwrap();
        runtime.launch(1, lcore_1).unwrap();
        let pipeline = runtime.into_pipeline();
        assert!(common::wait_until(Duration::from_secs(20), || peer.link().unwrap().up), "memif link down");

        let (mut rx, mut tx) = (peer.rx_queue(0).unwrap(), peer.tx_queue(0).unwrap());
        let total = 3000u32;
        let (mut sent, mut back) = (0u32, 0u32);
        let mut burst = Burst::<U32>::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while back < total && std::time::Instant::now() < deadline {
            // At most 256 frames in flight: the reflector drops what the memif ring back to us cannot
            // take (tx_or_drop), so the test must not outrun its own receive ring.
            while sent < total && sent - back < 256 && !burst.is_full() {
                burst.push(Mbuf::from_slice(&pool, &frame(sent, 60 + sent as usize % 100)).unwrap()).unwrap();
                sent += 1;
            }
            tx.tx(&mut burst);
            let mut inbound = Burst::<U32>::new();
            rx.rx(&mut inbound);
            for m in inbound.as_slice() {
                let mut expected = frame(back, 60 + back as usize % 100);
                expected[..12].rotate_left(6);
                assert_eq!(m.data(), expected.as_slice(), "frame {back} not reflected with swapped MACs");
                back += 1;
            }
        }
        assert_eq!(back, total);
        drop(burst);

        // The lcore's counters are served by DPDK telemetry, as dpdk-telemetry.py reads them.
        let prefix = format!("rosette-{}", std::process::id());
        let mut client = std::process::Command::new("dpdk-telemetry.py")
            .unpinned()
            .args(["-f", &prefix])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("dpdk-telemetry.py (package dpdk)");
        {
            use std::io::Write;
            let mut stdin = client.stdin.take().unwrap();
            writeln!(stdin, "/rosette/sources").unwrap();
            writeln!(stdin, "/rosette/stats,reflector_lcore1").unwrap();
        }
        let out = client.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("reflector_lcore1"), "telemetry did not list the lcore: {text}");
        assert!(text.contains(&format!("\"packets\": {total}")), "telemetry counters wrong: {text}");
        assert!(text.contains("\"drops_mac_swap\": 0"), "{text}");
        // Stop the pipeline's loop before the memif ports go down (the PMD must not be polled then).
        pipeline.stop();
        let report = pipeline.join().expect("pipeline ended cleanly");
        assert_eq!(report.packets(), u64::from(total));
        assert_eq!(report.lcores[0].tx_packets, u64::from(total));
        assert_eq!(report.lcores[0].stage_drops, vec![("mac_swap".to_owned(), 0)]);
        drop((rx, tx, peer));
        assert!(pool.is_full());
        drop(pool);
        assert_eq!(report.mbufs_leaked, 0);
        assert_no_mbuf_leaked(&eal);
    }
}
