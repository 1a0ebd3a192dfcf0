//! Channels as pipeline stages over real DPDK links, every scenario a DECLARED pipeline: the YAML
//! documents of `tests/pipelines/transport.yaml`, compiled with `rosette_macros::pipeline!`, launched
//! with `<module>::launch`, the application attached through the generated `endpoints::<name>` — the
//! generated loop, the channel stage and the endpoint users run. Two processes are connected by
//! net_memif (each polling on its own lcore, with a declared fault stage on its inbound side); a peer
//! is killed and restarted; a Linux kernel UDP socket talks to an unordered channel over net_tap.
//!
//! Tests: reliable and streaming transfers over memif with faults (digest- and byte-checked, exactly
//! once, in order; damaged packets caught by checksums, losses repaired by retransmission, corruption
//! of shared packets on the way out done on private copies); unordered datagrams over memif with faults
//! (loss counted, nothing corrupted delivered); a peer killed mid-transfer and restarted; a Linux
//! kernel UDP socket and an unordered channel over net_tap, both directions, with an in-pipeline sink;
//! endpoint back-pressure on a full channel; the fault stage's blackhole window and accounting. Stage
//! counters are read from the reports the stages leave when their loop stops
//! ([`Pipeline::stage_report`]). Each ends with every mbuf back in its pool, in every process
//! ([`PipelineReport::mbufs_leaked`](rosette::pipeline::PipelineReport::mbufs_leaked)).
//!
//! Every scenario runs in its own process; the memif peer is this test binary again, running the
//! ignored test `transport_peer` in the mode named by `ROSETTE_PEER_MODE`. Teardown follows an
//! end-of-stream handshake: the parent stops its loops ([`Pipeline::stop`], then waits for
//! [`Pipeline::is_finished`]: no more polling, the port stays open), then writes `bye` to the peer's
//! stdin; the peer stops its pipeline and exits; the parent waits for the link to go down before
//! closing its port ([`Pipeline::join`]). So no side polls memif rx while its peer disconnects (the
//! 22.11 memif PMD can crash then).

mod common;

use common::{launch_options, memif_device};

use rosette::dpdk_test;

use std::any::Any;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rosette::channel::conn::ResetReason;
use rosette::channel::{reliable, streaming, unordered};
use rosette::pipeline::channels::{ChannelReport, UnorderedStage};
use rosette::pipeline::endpoint::{EndpointError, ReliableEndpoint, UnorderedEndpoint};
use rosette::pipeline::fault_stage::FaultReport;
use rosette::pipeline::params::stock::ChannelStageParams;
use rosette::pipeline::stages::Count;
use rosette::pipeline::{
    BuildError, Context, DeclaredStage, EndpointStage, Pipeline, Stage, StageEnv, StageReport, Verdict,
};
use rosette::substrate::{Batch, Mbuf};

rosette_macros::pipeline!("tests/pipelines/transport.yaml");

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const PORT: u16 = 7000;
const LONG: Duration = Duration::from_secs(20);
/// The lcore of the test process's loop (`*_server`, `tap`, `bp`, `blackhole`) and of the peer's.
const MAIN_LOOP: u32 = 1;
const PEER_LOOP: u32 = 0;
/// Stage indices (loop order) in the memif documents: the inbound fault stage, then the channel.
const FAULT: usize = 0;
const CHANNEL: usize = 1;

fn socket_path(tag: &str) -> String {
    let path = format!("/tmp/rosette-transport-{tag}-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    path
}

fn link_up(pipeline: &Pipeline) -> bool {
    pipeline.ports()[0].link().map(|l| l.up).unwrap_or(false)
}

/// Stops polling and waits until every loop returned (their stages reported and freed what they held);
/// the ports stay open, so a memif peer may leave now.
fn stop_polling(pipeline: &Pipeline) {
    pipeline.stop();
    assert!(common::wait_until(LONG, || pipeline.is_finished()), "poll loops did not stop");
}

/// The final report of stage `index` of `lcore`.
fn report<T: Any + Clone>(pipeline: &Pipeline, lcore: u32, index: usize) -> T {
    pipeline
        .stage_report(lcore, index)
        .unwrap_or_else(|| panic!("no {} from stage {index} of lcore {lcore}", std::any::type_name::<T>()))
}

/// Closes the ports and checks that every mbuf went home (and that no loop failed).
fn finish(pipeline: Pipeline) {
    let report = pipeline.join().expect("pipeline ended badly");
    assert_eq!(report.mbufs_leaked, 0, "mbufs were not returned to their pools");
}

/// The parent's end of a memif test: its loops are stopped (stage reports read); let the peer go, wait
/// for the link to drop, then close the port and check the pools.
fn finish_memif(pipeline: Pipeline, child: Child, socket: &str) {
    assert!(pipeline.is_finished(), "stop polling before the peer leaves");
    release_peer(child);
    assert!(common::wait_until(LONG, || !link_up(&pipeline)), "link still up after the peer left");
    finish(pipeline);
    let _ = std::fs::remove_file(socket);
}

/// Spawns the peer process in `mode`, with piped stdin for the end-of-stream handshake.
fn spawn_peer(mode: &str, socket: &str, epoch: u32) -> Child {
    common::child_command("transport_peer", true)
        .env("ROSETTE_MEMIF_SOCKET", socket)
        .env("ROSETTE_PEER_MODE", mode)
        .env("ROSETTE_PEER_EPOCH", epoch.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn peer process")
}

/// The end of the handshake on the parent's side: the parent's loop is stopped; let the peer go and
/// check that it succeeded.
fn release_peer(mut child: Child) {
    {
        let mut stdin = child.stdin.take().expect("peer stdin");
        let _ = stdin.write_all(b"bye\n");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "peer process failed: {status}");
}

/// The peer's side: wait until the parent says it stopped polling.
fn wait_for_bye() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// The reliable test's checks of a stopped `*_server` pipeline's stage reports.
fn check_reliable_reports(pipeline: &Pipeline) {
    let f: FaultReport = report(pipeline, MAIN_LOOP, FAULT);
    let c: ChannelReport = report(pipeline, MAIN_LOOP, CHANNEL);
    check_reliable_faults(&f.stats, &c.connection.expect("connection ran"), &c.link.expect("link ran"));
}

/// FNV-1a, 64 bits: the transfer digest.
#[derive(Clone, Copy)]
struct Digest(u64);

impl Digest {
    fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Message `seq` of epoch `epoch`: 8 to 4007 bytes (up to three packets), header then a pattern.
fn message(epoch: u32, seq: u32) -> Vec<u8> {
    let len = 8 + (seq as usize * 7919) % 4000;
    let mut m: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8).collect();
    m[..4].copy_from_slice(&epoch.to_be_bytes());
    m[4..8].copy_from_slice(&seq.to_be_bytes());
    m
}

/// Byte `i` of the test stream `salt`.
fn stream_byte(salt: u64, i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 9) ^ salt) as u8
}

const MESSAGES: u32 = 600;

/// The fault stage did damage and damaged packets were dropped by a check
/// (IPv4/UDP checksums in the unordered channel, CRC-32C in the connection) rather than delivered.
fn check_reliable_faults(
    f: &rosette::channel::fault::FaultStats,
    c: &rosette::channel::conn::Stats,
    u: &rosette::channel::unordered::Stats,
) {
    println!("reliable: faults {f:?}\nconnection {c:?}\nlink {u:?}");
    assert!(f.lost > 0 && f.corrupted + f.truncated > 0, "the fault stage inflicted too little: {f:?}");
    assert!(u.rx_drops.total() + c.drops.bad_checksum + c.drops.malformed > 0, "damaged packets not caught");
    assert!(c.drops.duplicate > 0 || f.duplicated == 0, "duplicates not recognised: {c:?}");
}
const UP_BYTES: u64 = 1 << 20;
const DOWN_BYTES: u64 = 256 << 10;

/// The next reliable event, or a panic naming what was being waited for.
fn next(ep: &ReliableEndpoint, what: &str) -> reliable::Event<Mbuf> {
    ep.recv_event(LONG).unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

/// The next message, whatever delivery carried it (one packet, packed with others, a chain): messages
/// of a delivery not read yet wait in `inbox`. Any other event comes back as `Err`.
fn next_message(
    ep: &ReliableEndpoint,
    inbox: &mut std::collections::VecDeque<Vec<u8>>,
    what: &str,
) -> Result<Vec<u8>, reliable::Event<Mbuf>> {
    if let Some(m) = inbox.pop_front() {
        return Ok(m);
    }
    let ev = next(ep, what);
    if !matches!(ev, reliable::Event::Message(_) | reliable::Event::Messages(_)) {
        return Err(ev);
    }
    inbox.extend(ev.messages().map(|segments| segments.flat_map(|s| s.iter().copied()).collect::<Vec<u8>>()));
    inbox.pop_front().ok_or(ev)
}

dpdk_test! {
    fn reliable_over_memif_with_faults_is_exactly_once_in_order() {
        let socket = socket_path("rel");
        let pipeline = rel_server::launch(&launch_options("link", memif_device("server", &socket))).expect("launch");
        let child = spawn_peer("reliable", &socket, 1);
        let ep = rel_server::endpoints::rel(LONG).unwrap();
        assert!(matches!(next(&ep, "connection"), reliable::Event::Connected));
        let mut digest = Digest::new();
        let mut inbox = std::collections::VecDeque::new();
        for seq in 0..MESSAGES {
            match next_message(&ep, &mut inbox, "a message") {
                Ok(bytes) => {
                    assert_eq!(bytes, message(1, seq), "message {seq} wrong, out of order or duplicated");
                    digest.update(&bytes);
                }
                Err(other) => panic!("expected message {seq}, got {other:?}"),
            }
        }
        match next_message(&ep, &mut inbox, "the digest") {
            Ok(bytes) => {
                assert_eq!(&bytes[..6], b"DIGEST");
                assert_eq!(u64::from_be_bytes(bytes[6..14].try_into().unwrap()), digest.0, "digest mismatch");
            }
            Err(other) => panic!("expected the digest, got {other:?}"),
        }
        assert!(inbox.is_empty(), "messages after the digest");
        assert!(matches!(next(&ep, "peer close"), reliable::Event::PeerClosed));
        ep.close(LONG).unwrap();
        assert!(matches!(next(&ep, "close"), reliable::Event::Closed));
        drop(ep);
        stop_polling(&pipeline);
        check_reliable_reports(&pipeline);
        finish_memif(pipeline, child, &socket);
    }
}

dpdk_test! {
    fn streaming_over_memif_with_faults_is_exactly_once_in_order() {
        let socket = socket_path("str");
        let pipeline = str_server::launch(&launch_options("link", memif_device("server", &socket))).expect("launch");
        let child = spawn_peer("streaming", &socket, 1);
        let mut ep = str_server::endpoints::str(LONG).unwrap();
        assert_eq!(ep.wait_event(LONG).unwrap(), streaming::Event::Connected);
        // Down: the whole stream at once (the endpoint blocks while the window is closed).
        let down: Vec<u8> = (0..DOWN_BYTES).map(|i| stream_byte(2, i)).collect();
        ep.write_all(&down, LONG).unwrap();
        ep.finish(LONG).unwrap();
        // Up: read until end of stream, checking every byte.
        let mut at = 0u64;
        let mut buf = vec![0u8; 3000];
        loop {
            let n = ep.read(&mut buf, LONG).unwrap_or_else(|e| panic!("read at byte {at}: {e}"));
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                assert_eq!(b, stream_byte(1, at), "stream byte {at} wrong");
                at += 1;
            }
        }
        assert_eq!(at, UP_BYTES, "stream ended early");
        // Both directions are finished once our end of stream is acknowledged (the peer has all of the
        // down stream, which may still be in flight when the up stream ends).
        assert_eq!(ep.wait_event(LONG).unwrap(), streaming::Event::Closed, "unexpected stream event");
        drop(ep);
        // Give the last acknowledgements a moment, then hand over.
        std::thread::sleep(Duration::from_millis(200));
        stop_polling(&pipeline);
        let f = report::<FaultReport>(&pipeline, MAIN_LOOP, FAULT).stats;
        let c = report::<ChannelReport>(&pipeline, MAIN_LOOP, CHANNEL).connection.expect("stream ran");
        println!("streaming: faults {f:?}\nconnection {c:?}");
        assert!(f.lost > 0 && f.corrupted + f.truncated > 0, "the fault stage inflicted too little: {f:?}");
        assert!(c.retransmits > 0, "nothing was retransmitted on a lossy link: {c:?}");
        finish_memif(pipeline, child, &socket);
    }
}

dpdk_test! {
    fn unordered_over_memif_with_faults_counts_loss_and_never_delivers_corruption() {
        let socket = socket_path("uno");
        let pipeline = uno_server::launch(&launch_options("link", memif_device("server", &socket))).expect("launch");
        let child = spawn_peer("unordered", &socket, 1);
        let ep = uno_server::endpoints::uno(LONG).unwrap();
        let total = 3000u32;
        let mut seen = vec![0u32; total as usize];
        // Datagrams come until the peer's "done" marker, which it repeats until acknowledged.
        loop {
            let d = ep.recv_from(LONG).expect("datagrams stopped before the peer's done marker");
            let p = d.payload.data();
            if p == b"done" {
                break;
            }
            if p == b"hello" {
                ep.send_to(SocketAddrV4::new(CLIENT_IP, PORT), b"hello-ack", LONG).unwrap();
                continue;
            }
            assert_eq!(*d.src.ip(), CLIENT_IP);
            let seq = u32::from_be_bytes(p[..4].try_into().unwrap());
            assert!(seq < total, "unknown datagram {seq}");
            assert_eq!(p, unordered_payload(seq).as_slice(), "datagram {seq} delivered corrupted");
            seen[seq as usize] += 1;
        }
        ep.send_to(SocketAddrV4::new(CLIENT_IP, PORT), b"done-ack", LONG).unwrap();
        let distinct = seen.iter().filter(|&&n| n > 0).count();
        let lost = total as usize - distinct;
        println!("unordered: {distinct} of {total} delivered, {lost} lost");
        // Let the ack go out, then stop and hand over.
        std::thread::sleep(Duration::from_millis(200));
        drop(ep);
        stop_polling(&pipeline);
        let f = report::<FaultReport>(&pipeline, MAIN_LOOP, FAULT).stats;
        let u = report::<ChannelReport>(&pipeline, MAIN_LOOP, CHANNEL).link.expect("channel ran");
        println!("unordered: faults {f:?}\nchannel {u:?}\nloop {:?}", pipeline.stats());
        assert!(distinct > total as usize / 2, "too few datagrams: {distinct}");
        assert!(lost > 0, "a lossy link lost nothing: is the fault stage on?");
        assert!(f.corrupted + f.truncated > 0, "nothing corrupted or truncated: {f:?}");
        // Every damaged frame was caught by a header check or checksum (a flipped bit may also hit a
        // MAC or a field that makes it someone else's frame, counted under another reason).
        assert!(u.rx_drops.total() > 0, "corrupted frames were not dropped: {u:?}");
        finish_memif(pipeline, child, &socket);
    }
}

fn unordered_payload(seq: u32) -> Vec<u8> {
    let len = 4 + (seq as usize * 13) % 1200;
    let mut p: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq.wrapping_mul(7)) as u8).collect();
    p[..4].copy_from_slice(&seq.to_be_bytes());
    p
}

// What the kill test covers: a peer SIGKILLed at an arbitrary point of an endless transfer (messages
// in flight, unacknowledged, some delivered to the survivor's application queue): the survivor keeps
// running, reports `Reset(PeerRestarted)` when the peer comes back with a new epoch, delivers nothing
// of the old connection after that (and the old connection's messages before it in order, without
// gaps), and completes a new digest-checked transfer and an orderly close.
// What it does not cover: the kill racing with an rx poll on the survivor. The survivor pauses its
// pipeline (`Pipeline::pause`: no rx, no tx, stages keep their state) before the kill and resumes once
// the link is down, because the 22.11 memif PMD can crash inside rx when the peer disappears meanwhile.
dpdk_test! {
    fn peer_killed_mid_transfer_and_restarted_resets_and_reconnects() {
        let socket = socket_path("kill");
        let pipeline = kill_server::launch(&launch_options("link", memif_device("server", &socket))).expect("launch");
        let mut first = spawn_peer("reliable-endless", &socket, 1);
        let ep = kill_server::endpoints::kill(LONG).unwrap();
        assert!(matches!(next(&ep, "connection"), reliable::Event::Connected));
        // Phase 1: the peer streams messages forever; take some, in order.
        let mut seq = 0u32;
        let mut inbox = std::collections::VecDeque::new();
        while seq < 100 {
            match next_message(&ep, &mut inbox, "an epoch-1 message") {
                Ok(bytes) => {
                    assert_eq!(bytes, message(1, seq));
                    seq += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        // Kill it mid-transfer. The survivor stops polling first (the PMD may crash if rx is polled
        // while the peer disappears), waits for the link to drop, then polls again.
        assert!(pipeline.pause(LONG), "loop did not pause");
        first.kill().unwrap();
        let _ = first.wait();
        assert!(common::wait_until(LONG, || !link_up(&pipeline)), "link still up after SIGKILL");
        pipeline.resume();
        // Phase 2: the peer comes back with a new epoch and sends a finite transfer.
        let second = spawn_peer("reliable", &socket, 2);
        // Epoch-1 messages already delivered to the queue before the kill may still be read, in order;
        // after the reset nothing of epoch 1 may appear.
        loop {
            match next_message(&ep, &mut inbox, "the reset") {
                Ok(bytes) => {
                    assert_eq!(bytes, message(1, seq), "stale or out-of-order epoch-1 data");
                    seq += 1;
                }
                Err(reliable::Event::Reset(reason)) => {
                    assert_eq!(reason, ResetReason::PeerRestarted);
                    break;
                }
                Err(other) => panic!("expected the reset, got {other:?}"),
            }
        }
        assert!(matches!(next(&ep, "the new connection"), reliable::Event::Connected));
        let mut digest = Digest::new();
        for seq in 0..MESSAGES {
            match next_message(&ep, &mut inbox, "an epoch-2 message") {
                Ok(bytes) => {
                    assert_eq!(bytes, message(2, seq), "epoch-2 message {seq} wrong (stale data?)");
                    digest.update(&bytes);
                }
                Err(other) => panic!("expected epoch-2 message {seq}, got {other:?}"),
            }
        }
        match next_message(&ep, &mut inbox, "the digest") {
            Ok(bytes) => {
                assert_eq!(u64::from_be_bytes(bytes[6..14].try_into().unwrap()), digest.0, "digest mismatch");
            }
            Err(other) => panic!("expected the digest, got {other:?}"),
        }
        assert!(matches!(next(&ep, "peer close"), reliable::Event::PeerClosed));
        ep.close(LONG).unwrap();
        assert!(matches!(next(&ep, "close"), reliable::Event::Closed));
        drop(ep);
        stop_polling(&pipeline);
        check_reliable_reports(&pipeline);
        finish_memif(pipeline, second, &socket);
    }
}

/// The memif client peer of the tests above, spawned as its own process (see the module docs): a
/// `peer_*` pipeline (main lcore 1, loop on lcore 0: the parent's loop spins on lcore 1).
#[test]
#[ignore = "spawned as a peer process by the memif transport tests"]
fn transport_peer() {
    let socket = std::env::var("ROSETTE_MEMIF_SOCKET").expect("ROSETTE_MEMIF_SOCKET");
    let mode = std::env::var("ROSETTE_PEER_MODE").expect("ROSETTE_PEER_MODE");
    let epoch: u32 = std::env::var("ROSETTE_PEER_EPOCH").unwrap().parse().unwrap();
    let opts = launch_options("link", memif_device("client", &socket));
    // Each arm launches its pipeline, then waits for the memif link before sending (what is sent
    // before the link is up is lost, which the tests would count against the fault stage).
    let wait_link = |pipeline: &Pipeline| {
        assert!(common::wait_until(LONG, || link_up(pipeline)), "memif link never came up");
    };
    let pipeline = match mode.as_str() {
        "reliable" | "reliable-endless" => {
            let pipeline = match epoch {
                1 => peer_reliable_1::launch(&opts),
                2 => peer_reliable_2::launch(&opts),
                other => panic!("no reliable peer pipeline of epoch {other}"),
            }
            .expect("launch");
            wait_link(&pipeline);
            // Both documents name the endpoint `peer`; one pipeline runs per process.
            let ep = peer_reliable_1::endpoints::peer(LONG).unwrap();
            assert!(matches!(next(&ep, "connection"), reliable::Event::Connected));
            let count = if mode == "reliable-endless" { u32::MAX } else { MESSAGES };
            let mut digest = Digest::new();
            // Corked in bursts of 7 (ReliableEndpoint::corked): the packet being filled stays with
            // the endpoint within a burst; order and exactly-once must not change.
            for first in (0..count).step_by(7) {
                let corked = ep.corked();
                for seq in first..first.saturating_add(7).min(count) {
                    let m = message(epoch, seq);
                    digest.update(&m);
                    corked.send(&m, LONG).unwrap();
                }
            }
            let mut last = b"DIGEST".to_vec();
            last.extend_from_slice(&digest.0.to_be_bytes());
            ep.send(&last, LONG).unwrap();
            ep.close(LONG).unwrap();
            assert!(matches!(next(&ep, "peer close"), reliable::Event::PeerClosed));
            drop(ep);
            // End-of-stream handshake: keep polling (acknowledging) until the parent stopped polling.
            wait_for_bye();
            stop_polling(&pipeline);
            // The sender repaired what its peer's inbound fault stage destroyed.
            let r: ChannelReport = report(&pipeline, PEER_LOOP, CHANNEL);
            let c = r.connection.expect("connection ran");
            assert!(c.retransmits > 0, "nothing was retransmitted on a lossy link: {c:?}");
            // Data left without a payload copy: headers in the packet's own headroom (or, rarely, in a
            // separate mbuf), except while ARP resolved. Only the copy path for an unresolved peer
            // counts `copied`: the declared loop polls from launch, before the memif link is up, so the
            // handshake's retransmissions while ARP resolves (lost requests retried every 100 ms) are
            // copies; data through that path would count in the hundreds.
            let s = r.stage;
            assert!(s.framed + s.chained >= u64::from(MESSAGES), "{s:?}");
            assert!(s.framed >= u64::from(MESSAGES) / 2, "{s:?}");
            assert!(s.copied <= 20, "shared packets copied after ARP resolution: {s:?}");
            pipeline
        }
        "streaming" => {
            // `peer_streaming` also corrupts on the way out, where packets are shared with the
            // retransmission copies and chained behind header mbufs: the fault stage must damage a
            // private copy, never the copy kept for retransmission (or the stream could not complete).
            let pipeline = peer_streaming::launch(&opts).expect("launch");
            wait_link(&pipeline);
            let mut ep = peer_streaming::endpoints::peer(LONG).unwrap();
            assert_eq!(ep.wait_event(LONG).unwrap(), streaming::Event::Connected);
            let up: Vec<u8> = (0..UP_BYTES).map(|i| stream_byte(1, i)).collect();
            ep.write_all(&up, LONG).unwrap();
            ep.finish(LONG).unwrap();
            let mut at = 0u64;
            let mut buf = vec![0u8; 2000];
            loop {
                let n = ep.read(&mut buf, LONG).unwrap_or_else(|e| panic!("peer read at byte {at}: {e}"));
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    assert_eq!(b, stream_byte(2, at), "peer: stream byte {at} wrong");
                    at += 1;
                }
            }
            assert_eq!(at, DOWN_BYTES);
            drop(ep);
            // End-of-stream handshake: keep polling (acknowledging) until the parent stopped polling.
            wait_for_bye();
            stop_polling(&pipeline);
            let outbound: FaultReport = report(&pipeline, PEER_LOOP, 2);
            assert!(outbound.stats.corrupted > 0, "{:?}", outbound.stats);
            pipeline
        }
        "unordered" => {
            let pipeline = peer_unordered::launch(&opts).expect("launch");
            wait_link(&pipeline);
            let ep = peer_unordered::endpoints::peer(LONG).unwrap();
            let server = SocketAddrV4::new(SERVER_IP, PORT);
            // "hello" until answered: both ends have resolved each other with ARP (over the faulty link)
            // before the burst, so what the burst loses is the link's doing, not datagrams dropped while
            // waiting for an ARP reply.
            until_answered(&ep, server, b"hello", b"hello-ack");
            for seq in 0..3000u32 {
                ep.send_to(server, &unordered_payload(seq), LONG).unwrap();
                if seq % 16 == 15 {
                    // Pace: the point is faults on the link, not queue overflow. The declared loops spin
                    // without yielding, and on a shared 2-CPU machine the receiving loop can be off its
                    // CPU for milliseconds while the memif ring (1024 slots) fills.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            // "done" until acknowledged (either may be lost).
            until_answered(&ep, server, b"done", b"done-ack");
            drop(ep);
            // End-of-stream handshake: keep polling (acknowledging) until the parent stopped polling.
            wait_for_bye();
            stop_polling(&pipeline);
            let r: ChannelReport = report(&pipeline, PEER_LOOP, CHANNEL);
            println!("unordered peer: {r:?}\nloop {:?}", pipeline.stats());
            pipeline
        }
        other => panic!("unknown peer mode {other}"),
    };
    finish(pipeline);
}

/// Sends `what` to `to` every 50 ms until `answer` comes back (either may be lost), for at most [`LONG`].
fn until_answered(ep: &UnorderedEndpoint, to: SocketAddrV4, what: &[u8], answer: &[u8]) {
    let deadline = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < deadline {
        ep.send_to(to, what, LONG).unwrap();
        while let Ok(d) = ep.recv_from(Duration::from_millis(50)) {
            if d.payload.data() == answer {
                return;
            }
        }
    }
    panic!("no {} in time", String::from_utf8_lossy(answer));
}

/// What the tap pipeline's in-pipeline sink saw: the next datagram index, and whether one was wrong.
static TAP_NEXT: AtomicU32 = AtomicU32::new(0);
static TAP_BAD: AtomicBool = AtomicBool::new(false);
/// The addresses of the `tap` document (the kernel side is assigned by the test).
const TAP_OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const TAP_KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

type TapSink = fn(unordered::Event<Mbuf>) -> Result<(), unordered::Event<Mbuf>>;

/// The consumer inside the pipeline (called by the stage on the lcore): checks each datagram from the
/// kernel against the next expected one.
fn tap_sink(unordered::Event::Datagram(d): unordered::Event<Mbuf>) -> Result<(), unordered::Event<Mbuf>> {
    let i = TAP_NEXT.load(Ordering::Acquire);
    if d.payload.data() != format!("to rosette {i}").as_bytes() || *d.dst.ip() != TAP_OUR_IP {
        TAP_BAD.store(true, Ordering::Release);
    }
    TAP_NEXT.store(i + 1, Ordering::Release);
    Ok(())
}

/// A user stage (`type: "crate::TapChannel"` in the `tap` document): the stock `unordered` stage, built
/// from the same params, delivering to [`tap_sink`] instead of the application; the endpoint still sends.
pub struct TapChannel(UnorderedStage<TapSink>);

impl Stage for TapChannel {
    fn on_packet(&mut self, packet: Mbuf, cx: &Context) -> Verdict {
        self.0.on_packet(packet, cx)
    }
    fn emit(&mut self, out: &mut Batch<'_>, cx: &Context) {
        self.0.emit(out, cx)
    }
    fn process(&mut self, batch: &mut Batch<'_>, cx: &Context) -> u32 {
        self.0.process(batch, cx)
    }
    fn finish(&mut self, cx: &Context) {
        self.0.finish(cx)
    }
    fn report(&self) -> Option<StageReport> {
        self.0.report()
    }
}

impl DeclaredStage for TapChannel {
    type Params = ChannelStageParams;
    fn build(p: ChannelStageParams, _env: &StageEnv) -> Result<Self, BuildError> {
        Ok(TapChannel(UnorderedStage::with_sink(
            p.channel_params(rosette::pipeline::params::stock::ChannelKind::Unordered)?,
            tap_sink as TapSink,
        )))
    }
}

impl EndpointStage for TapChannel {
    type Endpoint = UnorderedEndpoint;
}

fn sh(args: &[&str]) {
    let status = std::process::Command::new(args[0]).args(&args[1..]).status().expect("run ip");
    assert!(status.success(), "{args:?} failed: {status}");
}

dpdk_test! {
    fn kernel_udp_socket_talks_to_unordered_channel_over_tap() {
        // A network namespace of this process's own (before EAL starts, so the tap device, the EAL
        // threads, the `ip` commands and the socket are all in it): the addresses declared in the YAML
        // cannot clash with a concurrent run of the suite.
        // SAFETY: unshare takes no pointers; it moves the calling thread into a new network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        let iface = "rsttap0";
        let pipeline = tap::launch(&launch_options("tap", format!("net_tap0,iface={iface}"))).expect("launch");
        sh(&["ip", "addr", "add", &format!("{TAP_KERNEL_IP}/24"), "dev", iface]);
        sh(&["ip", "link", "set", iface, "up"]);
        assert!(common::wait_until(LONG, || link_up(&pipeline)), "tap link never came up");
        let ep = tap::endpoints::tap(LONG).unwrap();
        let sock = UdpSocket::bind(SocketAddrV4::new(TAP_KERNEL_IP, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let kernel_addr = match sock.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        };
        let rosette_addr = SocketAddrV4::new(TAP_OUR_IP, 9000);
        // Kernel → rosette. The first datagram waits for the kernel's ARP resolution of our address
        // (which the channel answers); each is checked by the sink before the next is sent.
        let count = 200u32;
        for i in 0..count {
            sock.send_to(format!("to rosette {i}").as_bytes(), rosette_addr).unwrap();
            assert!(
                common::wait_until(LONG, || TAP_NEXT.load(Ordering::Acquire) > i),
                "datagram {i} from the kernel lost"
            );
        }
        assert!(!TAP_BAD.load(Ordering::Acquire), "a datagram from the kernel arrived wrong");
        assert_eq!(TAP_NEXT.load(Ordering::Acquire), count);
        // Rosette → kernel: the channel resolves the kernel's address with ARP first.
        let mut buf = [0u8; 2048];
        for i in 0..count {
            ep.send_to(kernel_addr, format!("to kernel {i}").as_bytes(), LONG).unwrap();
            let (n, from) = sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("datagram {i} from rosette: {e}"));
            assert_eq!(from, std::net::SocketAddr::V4(rosette_addr));
            assert_eq!(&buf[..n], format!("to kernel {i}").as_bytes());
        }
        drop(ep);
        stop_polling(&pipeline);
        finish(pipeline);
    }
}

dpdk_test! {
    fn endpoint_send_reports_back_pressure_when_the_channel_is_full() {
        // A connection whose peer never answers (net_null swallows everything): the channel fills, then
        // the bounded command queue, then sends are refused (`bp`: window 16, queue depth 8).
        let pipeline = bp::launch(&launch_options("dev", "net_null0")).expect("launch");
        let ep = bp::endpoints::bp(LONG).unwrap();
        // The first send waits for the lcore to start (it provides the pool).
        ep.send(b"first", LONG).unwrap();
        let mut accepted = 1u32;
        let mut refused_since = None;
        // Messages too large to share a packet (1399 B + a 2-byte record header > the 1400 B mss), so
        // each takes one slot; packing is checked by the simulation and allocation tests.
        let big = [7u8; 1399];
        loop {
            match ep.try_send(&big) {
                Ok(()) => {
                    accepted += 1;
                    refused_since = None;
                }
                Err(EndpointError::WouldBlock) => {
                    // Refused: stop once it has stayed refused for a while (the lcore is not behind).
                    let since = *refused_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > Duration::from_millis(200) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("unexpected {e}"),
            }
            assert!(accepted < 1000, "no back-pressure");
        }
        // 15 one-packet messages fill the channel (the Syn holds the 16th slot), the stage holds one more,
        // 8 wait in the queue.
        assert_eq!(accepted, 15 + 1 + 8);
        assert_eq!(ep.send(&big, Duration::from_millis(100)), Err(EndpointError::TimedOut));
        drop(ep);
        stop_polling(&pipeline);
        let r: ChannelReport = report(&pipeline, MAIN_LOOP, 0);
        assert_eq!(r.send_queue_len, 16);
        // "first" reached the lcore either queued (a command) or taken from the endpoint's slot.
        assert_eq!(r.stage.commands + r.stage.partials_taken, 16);
        finish(pipeline);
    }
}

dpdk_test! {
    fn fault_stage_blackhole_window_is_relative_to_the_stage_start() {
        // `blackhole`: net_null produces packets on every rx, through a fault stage whose blackhole
        // window is the first 100 ms of the stage, into a counter.
        let pipeline = blackhole::launch(&launch_options("dev", "net_null0")).expect("launch");
        std::thread::sleep(Duration::from_millis(350));
        stop_polling(&pipeline);
        let fault: FaultReport = report(&pipeline, MAIN_LOOP, 0);
        let count: Count = report(&pipeline, MAIN_LOOP, 1);
        let f = fault.stats;
        println!("fault stage: {f:?}, passed {}", count.packets);
        assert!(f.blackholed > 0, "nothing dropped inside the window: {f:?}");
        assert!(count.packets > 0, "nothing passed after the window");
        assert!(f.reordered > 0, "{f:?}");
        assert_eq!(f.lost + f.corrupted + f.truncated + f.duplicated, 0, "{f:?}");
        // Everything offered was dropped in the window, passed on, or was still held back when the loop
        // stopped (freed then).
        assert_eq!(f.packets, f.blackholed + count.packets + fault.held as u64);
        finish(pipeline);
    }
}
