//! The substrate against real DPDK virtual devices (net_null, net_ring, net_memif). Every scenario runs
//! in its own process (EAL starts once per process) and ends by checking that every mbuf went home.

mod common;

use rosette::dpdk_test;

use std::time::Duration;

use common::{assert_no_mbuf_leaked, start_eal, test_eal};
use rosette::substrate::placement::{self, RxAssignment};
use rosette::substrate::{
    launch, mbuf_ring, Burst, EalBuilder, Error, Mbuf, MbufSlot, MemoryMode, Mempool, MempoolConfig, Port, PortConfig,
    RingMode, StopFlag, TscClock,
};
use typenum::U32;

fn small_pool(eal: &rosette::substrate::Eal, size: u32) -> Mempool {
    Mempool::new(eal, &MempoolConfig { size, cache_size: 32, ..MempoolConfig::default() }).expect("mempool")
}

dpdk_test! {
    fn eal_starts_once_per_process() {
        let eal = start_eal(&["net_null0"]);
        assert_eq!(eal.main_lcore(), 0);
        assert_eq!(eal.worker_lcores().collect::<Vec<_>>(), [1]);
        assert!(eal.port_names().contains(&"net_null0".to_owned()));
        match common::memory_mode() {
            MemoryMode::NoHuge => assert!(!eal.hugepages()),
            MemoryMode::Hugepages => assert!(eal.hugepages()),
            MemoryMode::Auto => assert_eq!(eal.hugepages(), rosette::substrate::hugepage_status().is_ok()),
        }
        let second = test_eal().start().unwrap_err();
        assert_eq!(second, Error::EalAlreadyStarted);
        assert!(second.to_string().contains("only once per process"), "{second}");
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn failed_start_is_an_error_and_poisons_retries() {
        let err = test_eal().extra_args(["--definitely-not-an-eal-flag"]).start().unwrap_err();
        assert!(matches!(err, Error::EalInit { .. }), "{err:?}");
        assert!(err.to_string().contains("--definitely-not-an-eal-flag"), "{err}");
        let retry = test_eal().start().unwrap_err();
        assert_eq!(retry, Error::EalStartFailedBefore);
    }
}

dpdk_test! {
    fn a_device_that_fails_to_probe_is_named() {
        // af_packet on an interface that does not exist fails to probe, which DPDK does not report through
        // rte_eal_init.
        let err = test_eal().vdev("net_null0").vdev("net_af_packet0,iface=rosette_nope0").start().unwrap_err();
        assert_eq!(err, Error::DeviceNotProbed { device: "net_af_packet0".to_owned() });
        assert!(err.to_string().contains("`net_af_packet0`"), "{err}");
    }
}

dpdk_test! {
    fn pools_land_on_the_socket_of_their_polling_lcore() {
        let eal = start_eal(&["net_null0"]);
        let topology = eal.topology();
        let rx = [RxAssignment { port: 0, queue: 0, lcore: 1 }];
        let plan = placement::plan(&topology, &rx, &[1]).unwrap();
        let socket = plan.rx_queue_sockets[0];
        assert_eq!(Some(socket), topology.socket_of(1));
        let pool = Mempool::new(&eal, &MempoolConfig { size: 1023, cache_size: 32, socket, ..Default::default() }).unwrap();
        assert_eq!(pool.socket_id(), socket as i32, "pool was not allocated where the plan said");
        let port = Port::configure(&eal, "net_null0", &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
        drop(port);
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn port_errors_are_readable() {
        let eal = start_eal(&["net_null0"]);
        let pool = small_pool(&eal, 2047);
        let pools = std::slice::from_ref(&pool);

        let too_many = PortConfig { rx_queues: 4096, ..PortConfig::default() };
        let err = Port::configure(&eal, "net_null0", &too_many, pools).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("supports at most") && text.contains("4096"), "{text}");

        let err = Port::configure(&eal, "net_nothere9", &PortConfig::default(), pools).unwrap_err();
        assert_eq!(err, Error::DeviceNotProbed { device: "net_nothere9".to_owned() });

        let port = Port::configure(&eal, "net_null0", &PortConfig::default(), pools).unwrap();
        let first = port.rx_queue(0).unwrap();
        assert!(port.rx_queue(0).unwrap_err().to_string().contains("already taken"));
        assert!(port.tx_queue(3).unwrap_err().to_string().contains("no tx queue 3"));
        drop(first);
        drop(port);
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

/// A recognisable payload for packet `i`.
fn frame(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60 + (i as usize % 200)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&i.to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (k as u32 ^ i) as u8;
    }
    f
}

dpdk_test! {
    fn net_ring_round_trip_keeps_content() {
        let eal = start_eal(&["net_ring0"]);
        let pool = small_pool(&eal, 4095);
        let port = Port::configure(&eal, "net_ring0", &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
        port.start().unwrap();
        assert!(port.link().unwrap().up);
        let mut rxq = port.rx_queue(0).unwrap();
        let mut txq = port.tx_queue(0).unwrap();

        let total = 1000u32;
        let mut sent = 0u32;
        let mut received = 0u32;
        let mut burst = Burst::<U32>::new();
        while received < total {
            while sent < total && !burst.is_full() {
                burst.push(Mbuf::from_slice(&pool, &frame(sent)).expect("mbuf")).unwrap();
                sent += 1;
            }
            txq.tx(&mut burst);
            let mut inbound = Burst::<U32>::new();
            rxq.rx(&mut inbound);
            for m in inbound.as_slice() {
                assert_eq!(m.data(), frame(received).as_slice(), "packet {received} changed on the way");
                received += 1;
            }
        }
        assert!(burst.is_empty());
        let stats = port.stats().unwrap();
        assert_eq!((stats.opackets, stats.ipackets), (u64::from(total), u64::from(total)));
        port.stop().unwrap();
        drop((rxq, txq, port));
        assert!(pool.is_full());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn mbuf_operations_are_zero_copy_and_checked() {
        let eal = start_eal(&[]);
        let pool = small_pool(&eal, 63);
        let mut m = Mbuf::from_slice(&pool, b"payload").unwrap();
        let payload_addr = m.data().as_ptr() as usize;
        assert_eq!(m.headroom(), 128);
        m.prepend(4).unwrap().copy_from_slice(b"hdr:");
        assert_eq!(m.data(), b"hdr:payload");
        assert_eq!(m.data()[4..].as_ptr() as usize, payload_addr, "prepend moved the payload");
        m.append(1).unwrap()[0] = b'!';
        assert_eq!((m.data_len(), m.pkt_len()), (12, 12));
        m.adjust(4).unwrap();
        m.trim(1).unwrap();
        assert_eq!(m.data(), b"payload");
        assert_eq!(m.prepend(10_000).unwrap_err(), rosette::buf::BufError::NoHeadroom);
        assert_eq!(m.append(m.tailroom() + 1).unwrap_err(), rosette::buf::BufError::NoTailroom);
        assert_eq!(m.adjust(8).unwrap_err(), rosette::buf::BufError::TooShort);

        let shared = m.share();
        assert_eq!(m.refcnt(), 2);
        assert!(m.data_mut().is_empty(), "a shared mbuf must not be writable");
        assert_eq!(m.prepend(1).unwrap_err(), rosette::buf::BufError::Shared);
        assert_eq!(shared.data(), b"payload");
        drop(shared);
        assert_eq!(m.refcnt(), 1);
        m.data_mut()[0] = b'P';
        assert_eq!(m.data(), b"Payload");
        assert_eq!(pool.in_use(), 1);

        // Bursts own what they hold and free it on drop; retain frees what it rejects.
        let mut burst = Burst::<U32>::new();
        for i in 0..10u8 {
            burst.push(Mbuf::from_slice(&pool, &[i]).unwrap()).unwrap();
        }
        assert_eq!(burst.retain(|m| m.data()[0] % 2 == 0), 5);
        assert_eq!(burst.as_slice().iter().map(|m| m.data()[0]).collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
        burst.batch().retain_map(|m| if m.data()[0] == 4 { None } else { Some(m) });
        assert_eq!(burst.len(), 4);
        drop(burst);
        drop(m);
        assert!(pool.is_full());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn mbuf_chains_split_and_slots_hand_over_without_copy() {
        let eal = start_eal(&[]);
        let pool = small_pool(&eal, 63);
        let a = Mbuf::from_slice(&pool, b"first").unwrap();
        let addr = a.data().as_ptr() as usize;
        let chain = a.chain(Mbuf::from_slice(&pool, b"second").unwrap()).unwrap();
        let chain = chain.chain(Mbuf::from_slice(&pool, b"third").unwrap()).unwrap();
        assert_eq!((chain.segments(), chain.pkt_len()), (3, 16));
        assert_eq!(chain.segment(1), Some(&b"second"[..]));
        assert_eq!(chain.segment(3), None);
        // A shared chain cannot be split.
        let shared = chain.share();
        let chain = chain.split_first().unwrap_err();
        drop(shared);
        let (first, rest) = chain.split_first().unwrap();
        assert_eq!((first.data(), first.segments(), first.pkt_len()), (&b"first"[..], 1, 5));
        assert_eq!(first.data().as_ptr() as usize, addr, "split copied");
        let rest = rest.unwrap();
        assert_eq!((rest.data(), rest.segments(), rest.pkt_len()), (&b"second"[..], 2, 11));
        assert_eq!(rest.segment(1), Some(&b"third"[..]), "the rest keeps its segment list");
        let (second, third) = rest.split_first().unwrap();
        assert_eq!(second.pkt_len(), 6);
        let third = third.unwrap();
        assert!(third.split_first().unwrap().1.is_none());
        drop((first, second));

        // The slot: one mbuf at a time, owned by whoever took it; another thread can take it.
        let slot = std::sync::Arc::new(MbufSlot::new());
        assert!(slot.take().is_none());
        slot.put(Mbuf::from_slice(&pool, b"partial").unwrap()).unwrap();
        let refused = slot.put(Mbuf::from_slice(&pool, b"second").unwrap()).unwrap_err();
        assert_eq!(refused.data(), b"second");
        drop(refused);
        assert!(slot.is_occupied());
        let taker = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.take().map(|m| m.data().to_vec()))
        };
        assert_eq!(taker.join().unwrap().as_deref(), Some(&b"partial"[..]));
        assert!(!slot.is_occupied());
        // Dropping a slot frees what it holds.
        slot.put(Mbuf::from_slice(&pool, b"left").unwrap()).unwrap();
        drop(slot);
        assert!(pool.is_full(), "{} mbufs out", pool.in_use());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn ring_hands_packets_to_another_lcore_in_order() {
        let eal = start_eal(&[]);
        let pool = small_pool(&eal, 2047);
        let (mut producer, mut consumer) = mbuf_ring(&eal, None, 512, 0, RingMode::Single).unwrap();
        const COUNT: u32 = 20_000;
        let worker = launch(&eal, 1, move || {
            let mut burst = Burst::<U32>::new();
            let mut expected = 0u32;
            let clock = TscClock::new();
            let deadline = clock.now() + clock.nanos_to_cycles(20_000_000_000);
            while expected < COUNT && clock.now() < deadline {
                consumer.dequeue(&mut burst);
                for m in burst.as_slice() {
                    let seq = u32::from_be_bytes(m.data()[..4].try_into().unwrap());
                    assert_eq!(seq, expected, "ring reordered packets");
                    assert_eq!(rosette::substrate::current_lcore(), 1);
                    expected += 1;
                }
                burst.clear();
            }
            expected
        })
        .unwrap();
        let mut next = 0u32;
        let mut burst = Burst::<U32>::new();
        while next < COUNT {
            while next < COUNT && !burst.is_full() {
                match Mbuf::from_slice(&pool, &next.to_be_bytes()) {
                    Some(m) => {
                        burst.push(m).unwrap();
                        next += 1;
                    }
                    None => break,
                }
            }
            producer.enqueue(&mut burst);
        }
        while !burst.is_empty() {
            producer.enqueue(&mut burst);
        }
        assert_eq!(worker.join().expect("worker panicked"), COUNT);
        drop(producer);
        assert!(pool.is_full());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn ring_frees_what_is_left_when_both_ends_go() {
        let eal = start_eal(&[]);
        let pool = small_pool(&eal, 255);
        let (mut producer, consumer) = mbuf_ring(&eal, Some("leftovers"), 64, 0, RingMode::Multi).unwrap();
        for i in 0..40u8 {
            producer.enqueue_one(Mbuf::from_slice(&pool, &[i]).unwrap()).unwrap();
        }
        assert_eq!(consumer.len(), 40);
        assert_eq!(pool.in_use(), 40);
        drop((producer, consumer));
        assert!(pool.is_full());
        assert!(mbuf_ring(&eal, None, 100, 0, RingMode::Single).is_err(), "non-power-of-two size accepted");
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn sigint_stops_the_loop_and_shutdown_is_clean() {
        rosette::substrate::install_signal_handlers().unwrap();
        let eal = start_eal(&["net_null0", "net_null1"]);
        let pool = small_pool(&eal, 4095);
        let pools = std::slice::from_ref(&pool);
        let p0 = Port::configure(&eal, "net_null0", &PortConfig::default(), pools).unwrap();
        let p1 = Port::configure(&eal, "net_null1", &PortConfig::default(), pools).unwrap();
        p0.start().unwrap();
        p1.start().unwrap();
        let (mut rx, mut tx) = (p0.rx_queue(0).unwrap(), p1.tx_queue(0).unwrap());
        let stop = StopFlag::new();
        let worker_stop = stop.clone();
        let worker = launch(&eal, 1, move || {
            let mut burst = Burst::<U32>::new();
            let mut forwarded = 0u64;
            while !worker_stop.is_set() {
                rx.rx(&mut burst);
                forwarded += tx.tx_or_drop(&mut burst).0 as u64;
            }
            forwarded
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!worker.is_finished());
        // A real SIGINT from outside, as Ctrl-C would send it.
        let kill = std::process::Command::new("kill").args(["-INT", &std::process::id().to_string()]).status();
        assert!(kill.unwrap().success());
        assert!(common::wait_until(Duration::from_secs(5), || worker.is_finished()), "SIGINT did not stop the loop");
        assert!(stop.is_set());
        let forwarded = worker.join().unwrap();
        assert!(forwarded > 0);
        p0.stop().unwrap();
        p1.stop().unwrap();
        drop((p0, p1));
        assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
        drop(eal); // rte_eal_cleanup runs here; the process must then exit 0.
    }
}

dpdk_test! {
    fn launching_on_the_main_or_an_unknown_lcore_is_refused() {
        let eal = start_eal(&[]);
        assert!(launch(&eal, 0, || ()).unwrap_err().to_string().contains("main lcore"));
        assert!(launch(&eal, 7, || ()).unwrap_err().to_string().contains("not enabled"));
        let worker = launch(&eal, 1, || panic!("boom")).unwrap();
        assert!(worker.join().is_err(), "a panic on an lcore must come back as an error");
        let again = launch(&eal, 1, || 42).unwrap();
        assert_eq!(again.join().unwrap(), 42);
        assert_no_mbuf_leaked(&eal);
    }
}

dpdk_test! {
    fn no_huge_mode_can_be_forced() {
        let eal = EalBuilder::new().lcores([0, 1]).memory(MemoryMode::NoHuge).start().unwrap();
        assert!(!eal.hugepages());
        assert!(eal.info().args.iter().any(|a| a == "--no-huge"));
    }
}

/// Frames of the end-of-stream handshake used over memif: data frames carry a sequence number, `EOS`
/// announces the sender is done, `EOS_ACK` confirms the receiver stopped polling. The 22.11 memif PMD can
/// crash inside rx when the peer disconnects while rx is polled, so a side stops polling before its peer
/// is allowed to leave.
const KIND_DATA: u8 = 1;
const KIND_EOS: u8 = 2;
const KIND_EOS_ACK: u8 = 3;

fn control_frame(kind: u8, seq: u32) -> Vec<u8> {
    let mut f = frame(seq);
    f[18] = kind;
    f
}

fn memif_vdev(role: &str, socket: &str) -> String {
    format!("net_memif0,role={role},socket={socket},socket-abstract=no")
}

dpdk_test! {
    fn memif_peer_leaves_while_the_other_side_polls() {
        let socket = format!("/tmp/rosette-memif-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let eal = start_eal(&[&memif_vdev("server", &socket)]);
        let pool = small_pool(&eal, 4095);
        let port = Port::configure(&eal, "net_memif0", &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
        port.start().unwrap();
        let mut peer = common::child_command("memif_client_peer", true)
            .env("ROSETTE_MEMIF_SOCKET", &socket)
            .spawn()
            .expect("spawn memif client peer");
        assert!(common::wait_until(Duration::from_secs(20), || port.link().unwrap().up), "memif link never came up");
        let (mut rx, mut tx) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
        let mut burst = Burst::<U32>::new();
        let mut expected = 0u32;
        let mut eos = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !eos && std::time::Instant::now() < deadline {
            rx.rx(&mut burst);
            for m in burst.as_slice() {
                match m.data()[18] {
                    KIND_DATA => {
                        assert_eq!(m.data(), control_frame(KIND_DATA, expected).as_slice());
                        expected += 1;
                    }
                    KIND_EOS => eos = true,
                    other => panic!("unexpected frame kind {other}"),
                }
            }
            burst.clear();
        }
        assert!(eos, "no end-of-stream after {expected} frames");
        assert_eq!(expected, 5000);
        // Stop polling rx, then let the peer go.
        burst.push(Mbuf::from_slice(&pool, &control_frame(KIND_EOS_ACK, 0)).unwrap()).unwrap();
        while !burst.is_empty() {
            tx.tx(&mut burst);
        }
        let status = peer.wait().unwrap();
        assert!(status.success(), "memif client peer failed: {status}");
        assert!(common::wait_until(Duration::from_secs(10), || !port.link().unwrap().up), "link still up after the peer left");
        drop((rx, tx));
        port.stop().unwrap();
        drop(port);
        let _ = std::fs::remove_file(&socket);
        assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
        drop(pool);
        assert_no_mbuf_leaked(&eal);
    }
}

/// The client side of `memif_peer_leaves_while_the_other_side_polls`, spawned by it as its own process.
#[test]
#[ignore = "spawned as a peer process by memif_peer_leaves_while_the_other_side_polls"]
fn memif_client_peer() {
    let socket = std::env::var("ROSETTE_MEMIF_SOCKET").expect("ROSETTE_MEMIF_SOCKET names the server's socket");
    let eal = start_eal(&[&memif_vdev("client", &socket)]);
    let pool = small_pool(&eal, 4095);
    let port = Port::configure(&eal, "net_memif0", &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
    port.start().unwrap();
    assert!(common::wait_until(Duration::from_secs(20), || port.link().unwrap().up), "memif link never came up");
    let (mut rx, mut tx) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
    let mut burst = Burst::<U32>::new();
    let mut seq = 0u32;
    while seq < 5000 {
        while seq < 5000 && !burst.is_full() {
            burst.push(Mbuf::from_slice(&pool, &control_frame(KIND_DATA, seq)).unwrap()).unwrap();
            seq += 1;
        }
        tx.tx(&mut burst);
    }
    while !burst.is_empty() {
        tx.tx(&mut burst);
    }
    burst.push(Mbuf::from_slice(&pool, &control_frame(KIND_EOS, 0)).unwrap()).unwrap();
    while !burst.is_empty() {
        tx.tx(&mut burst);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut acked = false;
    while !acked && std::time::Instant::now() < deadline {
        rx.rx(&mut burst);
        acked = burst.as_slice().iter().any(|m| m.data()[18] == KIND_EOS_ACK);
        burst.clear();
    }
    assert!(acked, "server never acknowledged end-of-stream");
    drop((rx, tx));
    port.stop().unwrap();
    drop(port);
    assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
    drop(pool);
    assert_no_mbuf_leaked(&eal);
}
