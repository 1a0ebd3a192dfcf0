//! Several rx queues against real DPDK virtual devices: RSS where the device hashes (`net_null`), and a
//! two-process `net_memif` link with two queue pairs, where the device does not hash and the sender's
//! tx queue decides the receiver's rx queue. Every scenario runs in its own process and ends by checking
//! that every mbuf went back to its pool.

mod common;

use std::time::{Duration, Instant};

use common::{assert_no_mbuf_leaked, start_eal};
use rosette::dpdk_test;
use rosette::net::rss::{queue_of, Toeplitz};
use rosette::substrate::{Burst, Eal, Mbuf, Mempool, MempoolConfig, Port, PortConfig, RssMode};
use typenum::U32;

/// Keeps the messages rosette logs, to check what a port without RSS says (and that it says it once).
struct Recorder(std::sync::Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(format!("{}: {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(std::sync::Mutex::new(Vec::new()));

fn pool(eal: &Eal, size: u32) -> Mempool {
    Mempool::new(eal, &MempoolConfig { size, cache_size: 32, ..MempoolConfig::default() }).expect("mempool")
}

fn two_queue_pairs() -> PortConfig {
    PortConfig { rx_queues: 2, tx_queues: 2, ..PortConfig::default() }
}

dpdk_test! {
    fn a_device_that_hashes_gets_rss_and_an_i_mod_n_table() {
        // net_null offers RSS (every hash type) and a 128-entry table: the configuration path real NICs take.
        let eal = start_eal(&["net_null0", "net_null1"]);
        let pool = pool(&eal, 4095);
        let pools = std::slice::from_ref(&pool);
        let config = PortConfig { rx_queues: 3, tx_queues: 1, ..PortConfig::default() };
        let port = Port::configure(&eal, "net_null0", &config, pools).unwrap();
        assert!(port.rss_enabled());
        let reta = port.rss_reta().unwrap();
        assert!(!reta.is_empty(), "net_null reports a redirection table");
        for (i, &queue) in reta.iter().enumerate() {
            assert_eq!(usize::from(queue), i % 3, "entry {i} of {reta:?}");
        }
        // The software prediction reads the same table.
        let hash = Toeplitz::default().hash_ipv4_udp([10, 0, 0, 2].into(), [10, 0, 0, 1].into(), 40000, 7000);
        assert_eq!(queue_of(hash, 3), reta[(hash % 128) as usize]);
        port.start().unwrap();
        port.stop().unwrap();
        drop(port);

        // `rss: none`, and one rx queue, leave RSS off.
        let none = Port::configure(&eal, "net_null1", &PortConfig { rss: RssMode::None, ..two_queue_pairs() }, pools)
            .unwrap();
        assert!(!none.rss_enabled());
        drop(none);
        assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

/// Frame layout of the memif scenario: byte 18 the kind, byte 19 the queue it was sent on, bytes
/// 20..24 a sequence number per queue.
const KIND_DATA: u8 = 1;
/// The sender is done with this queue.
const KIND_EOS: u8 = 2;
/// The server stopped polling: the client may leave (the 22.11 memif PMD can crash inside rx when the
/// peer disconnects while rx is polled).
const KIND_EOS_ACK: u8 = 3;
const FRAMES_PER_QUEUE: u32 = 2000;

fn frame(kind: u8, queue: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64 + (seq as usize % 100)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[18] = kind;
    f[19] = queue as u8;
    f[20..24].copy_from_slice(&seq.to_be_bytes());
    f
}

fn memif_vdev(role: &str, socket: &str) -> String {
    format!("net_memif0,role={role},socket={socket},socket-abstract=no")
}

/// Sends `frame` on `tx` until the PMD takes it.
fn send(tx: &mut rosette::substrate::TxQueue, pool: &Mempool, frame: &[u8]) {
    let mut burst = Burst::<U32>::new();
    burst.push(Mbuf::from_slice(pool, frame).unwrap()).unwrap();
    while !burst.is_empty() {
        tx.tx(&mut burst);
    }
}

dpdk_test! {
    fn memif_with_two_queue_pairs_keeps_each_tx_queue_on_its_rx_queue() {
        let socket = format!("/tmp/rosette-rss-memif-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let eal = start_eal(&[&memif_vdev("server", &socket)]);
        let pool = pool(&eal, 8191);
        log::set_logger(&RECORDER).unwrap();
        log::set_max_level(log::LevelFilter::Info);
        let port = Port::configure(&eal, "net_memif0", &two_queue_pairs(), std::slice::from_ref(&pool)).unwrap();
        // memif offers no RSS: the port works, and says so, once.
        assert!(!port.rss_enabled());
        let said: Vec<String> =
            RECORDER.0.lock().unwrap().iter().filter(|m| m.contains("sender must pick the queue")).cloned().collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("INFO: port net_memif0 (net_memif): 2 rx queues"), "{said:?}");
        port.start().unwrap();
        let mut peer = common::child_command("memif_two_queue_client", true)
            .env("ROSETTE_MEMIF_SOCKET", &socket)
            .spawn()
            .expect("spawn the memif client");
        assert!(common::wait_until(Duration::from_secs(20), || port.link().unwrap().up), "memif link never came up");
        let mut rx = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
        let mut tx = [port.tx_queue(0).unwrap(), port.tx_queue(1).unwrap()];
        let mut burst = Burst::<U32>::new();
        let mut expected = [0u32; 2];
        let mut eos = [false; 2];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(eos[0] && eos[1]) && Instant::now() < deadline {
            for (q, rxq) in rx.iter_mut().enumerate() {
                rxq.rx(&mut burst);
                for m in burst.as_slice() {
                    let data = m.data();
                    assert_eq!(usize::from(data[19]), q, "a frame sent on client tx queue {} arrived on rx queue {q}", data[19]);
                    match data[18] {
                        KIND_DATA => {
                            assert_eq!(data, frame(KIND_DATA, q as u16, expected[q]).as_slice(), "rx queue {q}");
                            expected[q] += 1;
                        }
                        KIND_EOS => eos[q] = true,
                        other => panic!("unexpected frame kind {other} on rx queue {q}"),
                    }
                }
                burst.clear();
            }
        }
        assert_eq!(eos, [true, true], "no end-of-stream on every queue after {expected:?} frames");
        assert_eq!(expected, [FRAMES_PER_QUEUE; 2]);
        // The other direction too: server tx queue q reaches client rx queue q (the client checks).
        for (q, txq) in tx.iter_mut().enumerate() {
            send(txq, &pool, &frame(KIND_EOS_ACK, q as u16, 0));
        }
        let status = peer.wait().unwrap();
        assert!(status.success(), "memif client failed: {status}");
        assert!(common::wait_until(Duration::from_secs(10), || !port.link().unwrap().up), "link still up after the client left");
        drop((rx, tx));
        port.stop().unwrap();
        drop(port);
        let _ = std::fs::remove_file(&socket);
        assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

/// The client of `memif_with_two_queue_pairs_keeps_each_tx_queue_on_its_rx_queue`, spawned by it.
#[test]
#[ignore = "spawned as a peer process by memif_with_two_queue_pairs_keeps_each_tx_queue_on_its_rx_queue"]
fn memif_two_queue_client() {
    let socket = std::env::var("ROSETTE_MEMIF_SOCKET").expect("ROSETTE_MEMIF_SOCKET names the server's socket");
    let eal = start_eal(&[&memif_vdev("client", &socket)]);
    let pool = pool(&eal, 8191);
    let port = Port::configure(&eal, "net_memif0", &two_queue_pairs(), std::slice::from_ref(&pool)).unwrap();
    assert!(!port.rss_enabled());
    port.start().unwrap();
    assert!(common::wait_until(Duration::from_secs(20), || port.link().unwrap().up), "memif link never came up");
    let mut rx = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
    let mut tx = [port.tx_queue(0).unwrap(), port.tx_queue(1).unwrap()];
    // Interleave the queues so both rings are busy at once.
    let mut burst = [Burst::<U32>::new(), Burst::<U32>::new()];
    let mut seq = [0u32; 2];
    while seq.iter().any(|&s| s < FRAMES_PER_QUEUE) || burst.iter().any(|b| !b.is_empty()) {
        for q in 0..2 {
            while seq[q] < FRAMES_PER_QUEUE && !burst[q].is_full() {
                burst[q].push(Mbuf::from_slice(&pool, &frame(KIND_DATA, q as u16, seq[q])).unwrap()).unwrap();
                seq[q] += 1;
            }
            tx[q].tx(&mut burst[q]);
        }
    }
    for (q, txq) in tx.iter_mut().enumerate() {
        send(txq, &pool, &frame(KIND_EOS, q as u16, 0));
    }
    let mut acked = [false; 2];
    let mut incoming = Burst::<U32>::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(acked[0] && acked[1]) && Instant::now() < deadline {
        for (q, rxq) in rx.iter_mut().enumerate() {
            rxq.rx(&mut incoming);
            for m in incoming.as_slice() {
                assert_eq!(m.data()[18], KIND_EOS_ACK);
                assert_eq!(
                    usize::from(m.data()[19]),
                    q,
                    "server tx queue {} arrived on client rx queue {q}",
                    m.data()[19]
                );
                acked[q] = true;
            }
            incoming.clear();
        }
    }
    assert_eq!(acked, [true, true], "the server did not acknowledge on every queue");
    drop((rx, tx));
    port.stop().unwrap();
    drop(port);
    assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
    drop(pool);
    assert_no_mbuf_leaked(&eal);
}
