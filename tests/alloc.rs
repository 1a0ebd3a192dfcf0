//! Heap allocations per message through the public endpoints, counted (not assumed) in both processes.
//!
//! Two processes over net_memif, as in `tests/transport.rs`: this process receives (server), the peer
//! (this test binary again, running the ignored test `alloc_peer`) sends. A counting
//! `#[global_allocator]` counts every allocation of the process — application thread, lcore thread
//! and anything else — and each side asserts that none happened while it handled the counted
//! messages (after a warm-up). Reliable messages of 64, 1500 and 9000 bytes (packed, one packet,
//! multi-packet) and a byte stream, each over 10,000 messages / writes.
//!
//! The sender also prints its rate (messages per second through `ReliableEndpoint::send`): a figure
//! for the record, not an assertion (these VMs are noisy).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rosette::channel::reliable;
use rosette::dpdk_test;
use rosette::pipeline::channels::{ChannelParams, ReliableStage, Role, StreamingStage};
use rosette::pipeline::endpoint::{ReliableEndpoint, StreamEndpoint};
use rosette::pipeline::{Context, Stage};
use rosette::substrate::{launch, Burst, Eal, LcoreJoin, Mempool, MempoolConfig, Port, PortConfig, StopFlag, TscClock};
use rosette::typenum::U32;

/// Counts every allocation (alloc, zeroed alloc, realloc) of the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Set (with `ROSETTE_ALLOC_TRACE=1`) to print a backtrace of each allocation: finds the culprit.
static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set (with `ROSETTE_ALLOC_TRACE=abort`) to abort at the first counted allocation (for a debugger).
static ABORT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

std::thread_local! {
    static IN_TRACE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

fn note_allocation() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if TRACE.load(Ordering::Relaxed) && ABORT.load(Ordering::Relaxed) {
        std::process::abort();
    }
    if TRACE.load(Ordering::Relaxed) && !IN_TRACE.with(|t| t.replace(true)) {
        eprintln!("allocation at:\n{}", std::backtrace::Backtrace::force_capture());
        IN_TRACE.with(|t| t.set(false));
    }
}

/// Starts a counting window: the current count (and tracing, if asked for).
fn window_start() -> u64 {
    if let Some(mode) = std::env::var_os("ROSETTE_ALLOC_TRACE") {
        ABORT.store(mode == "abort", Ordering::SeqCst);
        TRACE.store(true, Ordering::SeqCst);
    }
    allocations()
}

/// Ends a counting window: the allocations since `start`.
fn window_end(start: u64) -> u64 {
    let n = allocations() - start;
    TRACE.store(false, Ordering::SeqCst);
    n
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged; the
// counter is a relaxed atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's (valid, non-zero-size) layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` came from this allocator (which is System) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (which is System) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 2);
const PORT: u16 = 7100;
const LONG: Duration = Duration::from_secs(30);
/// Messages sent before counting starts (connection, pools, queues and caches warmed up).
const WARMUP: u32 = 3000;
/// Messages counted (`ROSETTE_ALLOC_COUNTED` overrides, for a longer rate measurement).
fn counted() -> u32 {
    std::env::var("ROSETTE_ALLOC_COUNTED").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}
/// Reliable message sizes: packed, one packet, several packets.
const SIZES: [usize; 3] = [64, 1500, 9000];
/// Bytes per stream write.
const WRITE: usize = 1024;

/// One process's side: EAL, a pool, a memif port and a poll loop on the worker lcore.
struct Node {
    eal: Eal,
    pool: Mempool,
    port: Port,
    stop: StopFlag,
}

impl Node {
    fn start(vdev: &str, main_lcore: u32) -> Node {
        let eal = common::test_eal().main_lcore(main_lcore).vdev(vdev).start().expect("EAL start");
        let pool =
            Mempool::new(&eal, &MempoolConfig { size: 8191, cache_size: 64, ..MempoolConfig::default() }).unwrap();
        let device = vdev.split(',').next().unwrap();
        let port = Port::configure(&eal, device, &PortConfig::default(), std::slice::from_ref(&pool)).unwrap();
        port.start().unwrap();
        Node { eal, pool, port, stop: StopFlag::new() }
    }

    /// rx → stage → tx until stopped; yields the CPU when idle (two CPUs, two spinning loops).
    fn run<S: Stage + 'static>(&self, mut stage: S) -> LcoreJoin<S> {
        let lcore = self.eal.worker_lcores().next().unwrap();
        let (mut rx, mut tx) = (self.port.rx_queue(0).unwrap(), self.port.tx_queue(0).unwrap());
        let stop = self.stop.clone();
        let cx = Context::new(lcore, TscClock::new(), Some(self.pool.clone()));
        launch(&self.eal, lcore, move || {
            let mut burst = Burst::<U32>::new();
            while !stop.is_set() {
                let received = rx.rx(&mut burst);
                stage.process(&mut burst.batch(), &cx);
                let idle = received == 0 && burst.is_empty();
                if !burst.is_empty() {
                    tx.tx_or_drop(&mut burst);
                }
                if idle {
                    std::thread::yield_now();
                }
            }
            drop((rx, tx));
            stage
        })
        .unwrap()
    }

    fn link_up(&self) -> bool {
        self.port.link().map(|l| l.up).unwrap_or(false)
    }

    fn stop_loop<S>(&self, join: LcoreJoin<S>) -> S {
        self.stop.stop();
        join.join().expect("poll loop panicked")
    }

    fn finish(self) {
        self.port.stop().unwrap();
        let Node { eal, pool, port, .. } = self;
        drop(port);
        assert!(pool.is_full(), "{} mbufs still out", pool.in_use());
        drop(pool);
        common::assert_no_mbuf_leaked(&eal);
    }
}

fn vdev(role: &str, socket: &str) -> String {
    format!("net_memif0,role={role},socket={socket},socket-abstract=no")
}

fn params(name: &str, server: bool) -> ChannelParams {
    let (mac, ip, peer, role) = if server {
        (SERVER_MAC, SERVER_IP, CLIENT_IP, Role::Listen)
    } else {
        (CLIENT_MAC, CLIENT_IP, SERVER_IP, Role::Connect)
    };
    let peer_mac = if server { CLIENT_MAC } else { SERVER_MAC };
    ChannelParams::new(name, mac, ip, PORT, SocketAddrV4::new(peer, PORT)).role(role).peer_mac(peer_mac)
}

fn spawn_peer(mode: &str, socket: &str) -> Child {
    common::child_command("alloc_peer", true)
        .env("ROSETTE_MEMIF_SOCKET", socket)
        .env("ROSETTE_PEER_MODE", mode)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn peer process")
}

fn release_peer(mut child: Child) {
    {
        let mut stdin = child.stdin.take().expect("peer stdin");
        let _ = stdin.write_all(b"bye\n");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "peer process failed: {status}");
}

fn wait_for_bye() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Writes message `seq` of `len` bytes into `out`: the sequence number, then a pattern.
fn fill(out: &mut [u8], seq: u32) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(7).wrapping_add(seq) as u8;
    }
    out[..4].copy_from_slice(&seq.to_be_bytes());
}

/// Checks a received message (any segmentation) against [`fill`]; returns its sequence number.
fn check<'a>(len: usize, segments: impl Iterator<Item = &'a [u8]>, expect_seq: u32) {
    let mut at = 0usize;
    let mut head = [0u8; 4];
    for seg in segments {
        for &b in seg {
            if at < 4 {
                head[at] = b;
            } else {
                assert_eq!(b, (at as u32).wrapping_mul(7).wrapping_add(expect_seq) as u8, "byte {at}");
            }
            at += 1;
        }
    }
    assert_eq!(at, len, "message {expect_seq}: wrong length");
    assert_eq!(u32::from_be_bytes(head), expect_seq, "message out of order or duplicated");
}

dpdk_test! {
    fn reliable_endpoints_allocate_nothing_per_message_in_either_process() {
        let socket = format!("/tmp/rosette-alloc-rel-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let node = Node::start(&vdev("server", &socket), 0);
        let join = node.run(ReliableStage::new(params("alloc-rel", true)));
        let child = spawn_peer("reliable", &socket);
        let ep = ReliableEndpoint::connect("alloc-rel", LONG).unwrap();
        assert!(matches!(ep.recv(LONG).unwrap(), reliable::Event::Connected));
        for &size in &SIZES {
            // Read once: the environment lookup allocates.
            let end = WARMUP + counted();
            let mut seq = 0u32;
            let mut before = None;
            while seq < end {
                if before.is_none() && seq >= WARMUP {
                    before = Some(window_start());
                }
                let ev = ep.recv(LONG).unwrap_or_else(|e| panic!("receiving {size} B message {seq}: {e}"));
                seq = receive(&ev, size, seq);
            }
            let allocs = window_end(before.unwrap_or_default());
            println!("receiver: {size} B messages: {allocs} allocations over {} messages", counted());
            assert_eq!(allocs, 0, "receiver allocated while receiving {size} B messages");
        }
        assert!(matches!(ep.recv(LONG).unwrap(), reliable::Event::PeerClosed));
        ep.close(LONG).unwrap();
        assert!(matches!(ep.recv(LONG).unwrap(), reliable::Event::Closed));
        drop(ep);
        drop(node.stop_loop(join));
        release_peer(child);
        assert!(common::wait_until(LONG, || !node.link_up()), "link still up after the peer left");
        node.finish();
        let _ = std::fs::remove_file(&socket);
    }
}

/// Checks the messages of one delivery, starting at `seq`; returns the next expected sequence number.
fn receive(ev: &reliable::Event<rosette::substrate::Mbuf>, size: usize, mut seq: u32) -> u32 {
    assert!(matches!(ev, reliable::Event::Message(_) | reliable::Event::Messages(_)), "expected a message: {ev:?}");
    for message in ev.messages() {
        check(size, message, seq);
        seq += 1;
    }
    seq
}

dpdk_test! {
    fn stream_endpoints_allocate_nothing_per_write_in_either_process() {
        let socket = format!("/tmp/rosette-alloc-str-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let node = Node::start(&vdev("server", &socket), 0);
        let join = node.run(StreamingStage::new(params("alloc-str", true)));
        let child = spawn_peer("streaming", &socket);
        let mut ep = StreamEndpoint::connect("alloc-str", LONG).unwrap();
        ep.wait_event(LONG).unwrap();
        let total = u64::from(WARMUP + counted()) * WRITE as u64;
        let mut buf = vec![0u8; 4096];
        let mut at = 0u64;
        let mut before = None;
        while at < total {
            if before.is_none() && at >= u64::from(WARMUP) * WRITE as u64 {
                before = Some(window_start());
            }
            let n = ep.read(&mut buf, LONG).unwrap();
            assert!(n > 0, "early end of stream at {at}");
            for &b in &buf[..n] {
                assert_eq!(b, stream_byte(at), "stream byte {at}");
                at += 1;
            }
        }
        let allocs = window_end(before.unwrap());
        println!("receiver: stream: {allocs} allocations over {} writes' worth of bytes", counted());
        assert_eq!(allocs, 0, "stream receiver allocated");
        assert_eq!(ep.read(&mut buf, LONG).unwrap(), 0, "end of stream expected");
        drop(ep);
        drop(node.stop_loop(join));
        release_peer(child);
        assert!(common::wait_until(LONG, || !node.link_up()), "link still up after the peer left");
        node.finish();
        let _ = std::fs::remove_file(&socket);
    }
}

fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 9)) as u8
}

/// The sending process of both scenarios.
#[test]
#[ignore = "run by the scenarios above as their peer process"]
fn alloc_peer() {
    let socket = std::env::var("ROSETTE_MEMIF_SOCKET").expect("ROSETTE_MEMIF_SOCKET");
    let mode = std::env::var("ROSETTE_PEER_MODE").expect("ROSETTE_PEER_MODE");
    let node = Node::start(&vdev("client", &socket), 1);
    assert!(common::wait_until(LONG, || node.link_up()), "memif link never came up");
    match mode.as_str() {
        "reliable" => {
            let join = node.run(ReliableStage::new(params("alloc-peer", false)));
            let ep = ReliableEndpoint::connect("alloc-peer", LONG).unwrap();
            assert!(matches!(ep.recv(LONG).unwrap(), reliable::Event::Connected));
            let mut msg = vec![0u8; 9000];
            for &size in &SIZES {
                let mut before = 0;
                let mut started = Instant::now();
                for seq in 0..WARMUP + counted() {
                    if seq == WARMUP {
                        before = window_start();
                        started = Instant::now();
                    }
                    fill(&mut msg[..size], seq);
                    ep.send(&msg[..size], LONG).unwrap();
                }
                let allocs = window_end(before);
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "sender: {size} B messages: {allocs} allocations over {} messages; {:.0} msgs/s",
                    counted(),
                    f64::from(counted()) / secs
                );
                assert_eq!(allocs, 0, "sender allocated while sending {size} B messages");
            }
            ep.close(LONG).unwrap();
            assert!(matches!(ep.recv(LONG).unwrap(), reliable::Event::PeerClosed));
            drop(ep);
            wait_for_bye();
            drop(node.stop_loop(join));
        }
        "streaming" => {
            let join = node.run(StreamingStage::new(params("alloc-peer", false)));
            let ep = StreamEndpoint::connect("alloc-peer", LONG).unwrap();
            let mut ep = ep;
            ep.wait_event(LONG).unwrap();
            let mut chunk = vec![0u8; WRITE];
            let mut at = 0u64;
            let mut before = 0;
            let mut started = Instant::now();
            for i in 0..WARMUP + counted() {
                if i == WARMUP {
                    before = window_start();
                    started = Instant::now();
                }
                for b in chunk.iter_mut() {
                    *b = stream_byte(at);
                    at += 1;
                }
                ep.write_all(&chunk, LONG).unwrap();
            }
            let allocs = window_end(before);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "sender: stream: {allocs} allocations over {} writes of {WRITE} B; {:.0} MB/s",
                counted(),
                f64::from(counted()) * WRITE as f64 / secs / 1e6
            );
            assert_eq!(allocs, 0, "stream sender allocated");
            ep.finish(LONG).unwrap();
            wait_for_bye();
            drop(ep);
            drop(node.stop_loop(join));
        }
        other => panic!("unknown peer mode {other}"),
    }
    node.finish();
}
