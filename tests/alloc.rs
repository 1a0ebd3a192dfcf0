//! Heap allocations per message through the public endpoints, counted (not assumed) in both processes.
//!
//! Two processes over net_memif, each running a pipeline declared in `tests/pipelines/alloc.yaml` (the
//! generated loop, the channel stage with default settings, the typed endpoint — what users run): this
//! process receives (server), the peer (this test binary again, running the ignored test `alloc_peer`)
//! sends. A counting
//! `#[global_allocator]` counts every allocation of the process — application thread, lcore thread
//! and anything else — and each side asserts that none happened while it handled the counted
//! messages (after a warm-up). Reliable messages of 64, 1500 and 9000 bytes (packed, one packet,
//! multi-packet) and a byte stream, each over 10,000 messages / writes; and a reliable connection
//! table (`reliable_mux`: a dialer opening 64 connections to a listener), 64 B messages sent
//! round-robin over every connection, each connection's sequence checked.
//!
//! The sender also prints its rate (messages per second through `ReliableEndpoint::send`): a figure
//! for the record, not an assertion (these VMs are noisy).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rosette::channel::mux::ConnHandle;
use rosette::channel::reliable;
use rosette::dpdk_test;
use rosette::pipeline::endpoint::{EndpointError, ReliableMuxEndpoint};
use rosette::pipeline::{LaunchOptions, Pipeline};

rosette_macros::pipeline!("tests/pipelines/alloc.yaml");

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

/// Connections of the table scenario (the tables' `max_connections`).
const CONNS: usize = 64;
/// Messages per connection per turn of the round-robin (two packets' worth of 64 B records); the
/// warm-up is one such turn.
const MUX_BATCH: u32 = 42;
/// Messages per connection counted (`ROSETTE_ALLOC_MUX_COUNTED` overrides, for a longer run). A
/// table starts with `spare_storage` (64) storage sets, so with 64 connections no wake-up needs a
/// fresh one however long the run; more connections busy at once than that would allocate one set
/// at each new peak (`Table::wake`).
fn mux_counted() -> u32 {
    std::env::var("ROSETTE_ALLOC_MUX_COUNTED").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}
/// The table scenario's message size.
const MUX_SIZE: usize = 64;
/// The receiver's answer on each connection once it has the connection's warm-up messages.
const WARMED: &[u8] = b"warm";
/// The receiver's answer on each connection once it has all of the connection's messages.
const DONE: &[u8] = b"done";

fn vdev(role: &str, socket: &str) -> String {
    format!("net_memif0,role={role},socket={socket},socket-abstract=no")
}

/// Launch options of one side: the test memory mode and this test's memif socket.
fn options(socket: &str, server: bool) -> LaunchOptions {
    LaunchOptions::new()
        .memory(rosette::testing::memory_mode())
        .device("wire", vdev(if server { "server" } else { "client" }, socket))
        .eal_args(["--log-level=lib.eal:error"])
}

fn link_up(pipeline: &Pipeline) -> bool {
    pipeline.ports().first().and_then(|p| p.link().ok()).is_some_and(|l| l.up)
}

/// First half of the memif end-of-stream handshake: stop polling, keep the port open.
fn stop_polling(pipeline: &Pipeline) {
    pipeline.stop();
    assert!(common::wait_until(LONG, || pipeline.is_finished()), "poll loop did not stop");
}

/// Closes the port (once the peer no longer polls) and checks every mbuf went back to its pool.
fn finish(pipeline: Pipeline) {
    let report = pipeline.join().expect("pipeline ended cleanly");
    assert_eq!(report.mbufs_leaked, 0, "mbufs still out");
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
        let pipeline = rel_receiver::launch(&options(&socket, true)).expect("launch");
        let child = spawn_peer("reliable", &socket);
        let ep = rel_receiver::endpoints::app(LONG).unwrap();
        assert!(matches!(ep.recv_event(LONG).unwrap(), reliable::Event::Connected));
        for &size in &SIZES {
            // Read once: the environment lookup allocates.
            let end = WARMUP + counted();
            let mut seq = 0u32;
            let mut before = None;
            while seq < end {
                if before.is_none() && seq >= WARMUP {
                    before = Some(window_start());
                }
                let ev = ep.recv_event(LONG).unwrap_or_else(|e| panic!("receiving {size} B message {seq}: {e}"));
                seq = receive(&ev, size, seq);
            }
            let allocs = window_end(before.unwrap_or_default());
            println!("receiver: {size} B messages: {allocs} allocations over {} messages", counted());
            assert_eq!(allocs, 0, "receiver allocated while receiving {size} B messages");
        }
        assert!(matches!(ep.recv_event(LONG).unwrap(), reliable::Event::PeerClosed));
        ep.close(LONG).unwrap();
        assert!(matches!(ep.recv_event(LONG).unwrap(), reliable::Event::Closed));
        drop(ep);
        stop_polling(&pipeline);
        release_peer(child);
        assert!(common::wait_until(LONG, || !link_up(&pipeline)), "link still up after the peer left");
        finish(pipeline);
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
        let pipeline = str_receiver::launch(&options(&socket, true)).expect("launch");
        let child = spawn_peer("streaming", &socket);
        let mut ep = str_receiver::endpoints::app(LONG).unwrap();
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
        stop_polling(&pipeline);
        release_peer(child);
        assert!(common::wait_until(LONG, || !link_up(&pipeline)), "link still up after the peer left");
        finish(pipeline);
        let _ = std::fs::remove_file(&socket);
    }
}

fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 9)) as u8
}

/// The sending process of every scenario.
#[test]
#[ignore = "run by the scenarios above as their peer process"]
fn alloc_peer() {
    let socket = std::env::var("ROSETTE_MEMIF_SOCKET").expect("ROSETTE_MEMIF_SOCKET");
    let mode = std::env::var("ROSETTE_PEER_MODE").expect("ROSETTE_PEER_MODE");
    let pipeline = match mode.as_str() {
        "reliable" => rel_sender::launch(&options(&socket, false)),
        "streaming" => str_sender::launch(&options(&socket, false)),
        "reliable_mux" => relmux_sender::launch(&options(&socket, false)),
        other => panic!("unknown peer mode {other}"),
    }
    .expect("launch");
    assert!(common::wait_until(LONG, || link_up(&pipeline)), "memif link never came up");
    match mode.as_str() {
        "reliable" => {
            let ep = rel_sender::endpoints::app(LONG).unwrap();
            assert!(matches!(ep.recv_event(LONG).unwrap(), reliable::Event::Connected));
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
            assert!(matches!(ep.recv_event(LONG).unwrap(), reliable::Event::PeerClosed));
            drop(ep);
            wait_for_bye();
        }
        "streaming" => {
            let mut ep = str_sender::endpoints::app(LONG).unwrap();
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
        }
        "reliable_mux" => mux_sender(),
        other => panic!("unknown peer mode {other}"),
    }
    // The receiver stopped polling before it said bye: closing our port now is safe.
    finish(pipeline);
}

dpdk_test! {
    fn reliable_mux_endpoint_allocates_nothing_per_message_in_either_process() {
        let socket = format!("/tmp/rosette-alloc-relmux-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let pipeline = relmux_receiver::launch(&options(&socket, true)).expect("launch");
        let child = spawn_peer("reliable_mux", &socket);
        let ep = relmux_receiver::endpoints::app(LONG).unwrap();
        // Each connection's handle and the sequence number it expects next, by table slot.
        let mut conns: Vec<Option<(ConnHandle, u32)>> = vec![None; CONNS];
        // Read once: the environment lookup allocates.
        let mux_counted = mux_counted();
        let end = MUX_BATCH + mux_counted;
        let (mut connected, mut warmed, mut complete) = (0, 0, 0);
        let mut before = None;
        while complete < CONNS {
            let ev = ep.recv(LONG).unwrap_or_else(|e| panic!("receiving ({complete} connections complete): {e}"));
            if matches!(ev.event, reliable::Event::Connected) {
                let slot = conns.get_mut(ev.conn.index() as usize).expect("slot within max_connections");
                assert!(slot.is_none(), "slot {} connected twice", ev.conn.index());
                *slot = Some((ev.conn, 0));
                connected += 1;
                continue;
            }
            // Every connection has its warm-up and its answer: what follows is counted.
            if before.is_none() && warmed == CONNS {
                before = Some(window_start());
            }
            let (h, seq) = conns
                .get_mut(ev.conn.index() as usize)
                .and_then(Option::as_mut)
                .filter(|(h, _)| *h == ev.conn)
                .unwrap_or_else(|| panic!("a delivery for an unknown connection: {ev:?}"));
            *seq = receive(&ev.event, MUX_SIZE, *seq);
            assert!(*seq <= end, "connection {}: more than {end} messages", h.index());
            if *seq == MUX_BATCH {
                warmed += 1;
                ep.send(*h, WARMED, LONG).unwrap();
            }
            if *seq == end {
                complete += 1;
            }
        }
        let allocs = window_end(before.expect("the counted window started"));
        assert_eq!(connected, CONNS);
        let counted = CONNS as u32 * mux_counted;
        println!("receiver: {MUX_SIZE} B messages on {CONNS} connections: {allocs} allocations over {counted} messages");
        assert_eq!(allocs, 0, "receiver allocated while receiving on {CONNS} connections");
        for (h, _) in conns.iter().flatten() {
            ep.send(*h, DONE, LONG).unwrap();
        }
        // The sender closes each connection; each is closed here once the peer's close is in.
        let (mut peer_closed, mut closed) = (0, 0);
        while closed < CONNS {
            let ev = ep.recv(LONG).unwrap();
            match ev.event {
                reliable::Event::PeerClosed => {
                    ep.close(ev.conn, LONG).unwrap();
                    peer_closed += 1;
                }
                reliable::Event::Closed => closed += 1,
                other => panic!("connection {}: expected its close: {other:?}", ev.conn.index()),
            }
        }
        assert_eq!(peer_closed, CONNS);
        drop(ep);
        stop_polling(&pipeline);
        release_peer(child);
        assert!(common::wait_until(LONG, || !link_up(&pipeline)), "link still up after the peer left");
        finish(pipeline);
        let _ = std::fs::remove_file(&socket);
    }
}

/// Sends every connection's messages up to `upto` (numbered on their connection), round-robin: a
/// batch per connection per turn, as far as the queue and the pool take them.
fn send_round_robin(ep: &ReliableMuxEndpoint, conns: &mut [(ConnHandle, u32)], upto: u32) {
    let mut msg = [0u8; MUX_SIZE];
    loop {
        let (mut progress, mut all) = (false, true);
        for (h, sent) in conns.iter_mut() {
            let turn = (*sent + MUX_BATCH).min(upto);
            while *sent < turn {
                fill(&mut msg, *sent);
                match ep.try_send(*h, &msg) {
                    Ok(()) => {
                        *sent += 1;
                        progress = true;
                    }
                    Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => break,
                    Err(e) => panic!("sending on connection {}: {e}", h.index()),
                }
            }
            all &= *sent == upto;
        }
        if all {
            return;
        }
        if !progress {
            std::thread::yield_now();
        }
    }
}

/// Waits for the receiver's `reply` on every connection.
fn await_replies(ep: &ReliableMuxEndpoint, conns: &[(ConnHandle, u32)], reply: &[u8]) {
    let mut got = [false; CONNS];
    let mut n = 0;
    while n < CONNS {
        let ev = ep.recv(LONG).unwrap_or_else(|e| panic!("awaiting replies ({n} of {CONNS}): {e}"));
        let i = conns.iter().position(|(h, _)| *h == ev.conn).expect("a reply on a known connection");
        assert!(matches!(ev.event, reliable::Event::Message(_) | reliable::Event::Messages(_)), "{:?}", ev.event);
        for message in ev.event.messages() {
            let (mut bytes, mut len) = ([0u8; 8], 0);
            for &b in message.flatten() {
                if len < bytes.len() {
                    bytes[len] = b;
                }
                len += 1;
            }
            assert!(len == reply.len() && &bytes[..len] == reply, "connection {}: not the reply", ev.conn.index());
            assert!(!got[i], "connection {}: a second reply", ev.conn.index());
            got[i] = true;
            n += 1;
        }
    }
}

/// The sending process of the table scenario: opens the connections, warms every one up, then
/// sends the counted messages, the window ending with the receiver's answer that it has them all.
fn mux_sender() {
    let ep = relmux_sender::endpoints::app(LONG).unwrap();
    let mux_counted = mux_counted();
    // The dialer opened one connection when it started; the rest are asked for.
    for _ in 1..CONNS {
        ep.open(LONG).unwrap();
    }
    let mut conns: Vec<(ConnHandle, u32)> = Vec::with_capacity(CONNS);
    while conns.len() < CONNS {
        let ev = ep.recv(LONG).unwrap_or_else(|e| panic!("{} of {CONNS} connections: {e}", conns.len()));
        assert!(matches!(ev.event, reliable::Event::Connected), "while connecting: {ev:?}");
        conns.push((ev.conn, 0));
    }
    send_round_robin(&ep, &mut conns, MUX_BATCH);
    await_replies(&ep, &conns, WARMED);
    let before = window_start();
    let started = Instant::now();
    send_round_robin(&ep, &mut conns, MUX_BATCH + mux_counted);
    await_replies(&ep, &conns, DONE);
    let allocs = window_end(before);
    let counted = CONNS as u32 * mux_counted;
    println!(
        "sender: {MUX_SIZE} B messages on {CONNS} connections: {allocs} allocations over {counted} messages; \
         {:.0} msgs/s",
        f64::from(counted) / started.elapsed().as_secs_f64()
    );
    assert_eq!(allocs, 0, "sender allocated while sending on {CONNS} connections");
    for (h, _) in &conns {
        ep.close(*h, LONG).unwrap();
    }
    let (mut peer_closed, mut closed) = (0, 0);
    while peer_closed < CONNS || closed < CONNS {
        let ev = ep.recv(LONG).unwrap_or_else(|e| panic!("closing ({peer_closed} peer closes, {closed} closes): {e}"));
        match ev.event {
            reliable::Event::PeerClosed => peer_closed += 1,
            reliable::Event::Closed => closed += 1,
            other => panic!("connection {}: expected its close: {other:?}", ev.conn.index()),
        }
    }
    drop(ep);
    wait_for_bye();
}
