//! What a downstream user does, and the honest answer each gets: declared pipelines
//! (`tests/pipelines/scenarios.yaml`) launched through the generated module, endpoints taken by type,
//! real PMDs. A peer that never answers (net_null) and a collector process killed mid-transfer
//! (net_memif between two processes): every send after the connection ended returns an error that
//! names the end, at once, whatever its form (copy, `_with`, long, corked, blocking); what the
//! application handed over and the peer never acknowledged is counted exactly in the endpoint's
//! status; a send larger than allowed names the limit and the param. Each ends with every mbuf back
//! in its pool.
//!
//! The collector is this test binary again, running the ignored test `scenario_collector`; the
//! producer stops polling before it kills it (the 22.11 memif PMD can crash when rx is polled while
//! the peer disappears), waits for the link to drop, then polls again.

mod common;

use common::{launch_options, memif_device};

use std::process::Child;
use std::time::{Duration, Instant};

use rosette::channel::reliable;
use rosette::dpdk_test;
use rosette::pipeline::endpoint::{ConnState, EndpointError};
use rosette::pipeline::{AppEndpoint, Pipeline};

rosette_macros::pipeline!("tests/pipelines/scenarios.yaml");

const LONG: Duration = Duration::from_secs(20);

/// Closes the ports and checks that every mbuf went home.
fn finish(pipeline: Pipeline) {
    let report = pipeline.join().expect("pipeline ended badly");
    assert_eq!(report.mbufs_leaked, 0, "mbufs were not returned to their pools");
}

/// Retries `attempt` while the queue is full or the pool is empty for a moment.
fn offered(mut attempt: impl FnMut() -> Result<(), EndpointError>) -> Result<(), EndpointError> {
    let deadline = Instant::now() + LONG;
    loop {
        match attempt() {
            Err(EndpointError::WouldBlock | EndpointError::NoBuffers) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(50));
            }
            other => return other,
        }
    }
}

dpdk_test! {
    fn a_dead_reliable_connection_refuses_every_send_and_counts_what_it_dropped() {
        let pipeline = dead_reliable::launch(&launch_options("dev", "net_null0")).expect("launch");
        let mut ep = dead_reliable::endpoints::dead(LONG).unwrap();
        // Too large: the error names the limit and the param that sets it.
        let huge = vec![0u8; 5000];
        let e = offered(|| ep.try_send(&huge)).unwrap_err();
        assert_eq!(e, EndpointError::TooLarge { len: 5000, limit: 4000, param: "max_message" });
        assert!(e.to_string().contains("`max_message`"), "{e}");
        // Send (small packed messages, every fifth a 3000-byte one) until the connection gives up.
        let long = vec![3u8; 3000];
        let mut accepted = 0u64;
        let started = Instant::now();
        let end = loop {
            let sent = if accepted % 5 == 4 {
                offered(|| ep.try_send(&long))
            } else if accepted.is_multiple_of(2) {
                offered(|| ep.try_send(b"a small record"))
            } else {
                offered(|| ep.try_send_with(9, |out| out.fill(b'w')))
            };
            match sent {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
        };
        let gave_up = started.elapsed();
        assert_eq!(end, EndpointError::ConnectionFailed, "after {accepted} accepted messages");
        assert!(accepted > 0);
        // Every form of send names the end, at once: no waiting for the caller's timeout.
        let t = Instant::now();
        assert_eq!(ep.send(b"x", LONG), Err(EndpointError::ConnectionFailed));
        assert_eq!(ep.try_send_with(4, |out| out.fill(1)), Err(EndpointError::ConnectionFailed));
        assert_eq!(ep.try_send(&long), Err(EndpointError::ConnectionFailed));
        {
            let corked = ep.corked();
            assert_eq!(corked.try_send(b"corked"), Err(EndpointError::ConnectionFailed));
        }
        assert_eq!(AppEndpoint::send(&mut ep, b"through the trait", LONG), Err(EndpointError::ConnectionFailed));
        assert!(t.elapsed() < Duration::from_secs(1), "a refused send waited {:?}", t.elapsed());
        // The event says it too.
        loop {
            match ep.recv_event(LONG) {
                Ok(reliable::Event::Failed) => break,
                Ok(reliable::Event::Connected) => panic!("net_null never answers"),
                Ok(_) => {}
                Err(e) => panic!("waiting for the failure event: {e}"),
            }
        }
        // Nothing was ever acknowledged: every accepted message is counted as such, exactly.
        assert!(
            common::wait_until(LONG, || ep.status().unacknowledged == accepted),
            "accepted {accepted}, status {:?}",
            ep.status()
        );
        let status = ep.status();
        assert_eq!(status.state, ConnState::Failed);
        assert!(status.sent > 0 && status.timeouts > 0, "{status:?}");
        assert_eq!(status.delivered, 1, "the Failed event, as a table connection counts it: {status:?}");
        // The same through telemetry (`/rosette/stats,channel_dead`).
        let served = rosette::substrate::telemetry::read_source("channel_dead").expect("served through telemetry");
        assert_eq!(served, status.pairs());
        assert!(served.contains(&("state".to_owned(), 6)), "{served:?}");
        println!("gave up after {gave_up:?}: {status:?}");
        pipeline.stop();
        assert!(common::wait_until(LONG, || pipeline.is_finished()));
        assert_eq!(ep.status().unacknowledged, accepted, "nothing more counted at the stop");
        assert_eq!(ep.status().state, ConnState::Failed, "an ended connection keeps its end");
        assert_eq!(ep.try_send(b"after the stop"), Err(EndpointError::ConnectionFailed));
        drop(ep);
        finish(pipeline);
    }
}

dpdk_test! {
    fn a_dead_stream_refuses_every_write_and_counts_the_bytes_it_dropped() {
        let pipeline = dead_streaming::launch(&launch_options("dev", "net_null0")).expect("launch");
        let ep = dead_streaming::endpoints::dead(LONG).unwrap();
        let chunk: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let mut accepted = 0u64;
        let end = loop {
            let mut n = 0;
            match offered(|| ep.try_write(&chunk).map(|taken| n = taken)) {
                Ok(()) => accepted += n as u64,
                Err(e) => break e,
            }
        };
        assert_eq!(end, EndpointError::ConnectionFailed, "after {accepted} bytes");
        assert_eq!(ep.write_all(b"more", LONG), Err(EndpointError::ConnectionFailed));
        assert_eq!(ep.try_write_with(10, |_| 10), Err(EndpointError::ConnectionFailed));
        assert_eq!(ep.finish(LONG), Err(EndpointError::ConnectionFailed));
        assert!(
            common::wait_until(LONG, || ep.status().unacknowledged == accepted),
            "accepted {accepted} bytes, status {:?}",
            ep.status()
        );
        assert_eq!(ep.status().state, ConnState::Failed);
        pipeline.stop();
        assert!(common::wait_until(LONG, || pipeline.is_finished()));
        assert_eq!(ep.status().unacknowledged, accepted);
        drop(ep);
        finish(pipeline);
    }
}

/// Spawns the collector process on `socket`: a table (`single` false) or one connection.
fn spawn_collector(socket: &str, single: bool) -> Child {
    common::child_command("scenario_collector", true)
        .env("ROSETTE_MEMIF_SOCKET", socket)
        .env("ROSETTE_COLLECTOR", if single { "single" } else { "table" })
        .spawn()
        .expect("spawn the collector process")
}

/// Stops polling, kills the collector and waits for the link to drop, then polls again (the memif
/// hazard: no rx poll while the peer disappears).
fn kill_collector(pipeline: &Pipeline, mut collector: Child) {
    assert!(pipeline.pause(LONG), "loop did not pause");
    collector.kill().unwrap();
    let _ = collector.wait();
    assert!(
        common::wait_until(LONG, || !pipeline.ports()[0].link().is_ok_and(|l| l.up)),
        "link still up after SIGKILL"
    );
    pipeline.resume();
}

dpdk_test! {
    fn a_collector_killed_mid_transfer_fails_every_connection_and_no_send_is_silently_lost() {
        let socket = format!("/tmp/rosette-scenarios-kill-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let pipeline = producer::launch(&launch_options("link", memif_device("server", &socket))).expect("launch");
        let collector = spawn_collector(&socket, false);
        let ep = producer::endpoints::produce(LONG).unwrap();
        let mut conns = Vec::new();
        while conns.len() < 8 {
            let ev = ep.recv(LONG).unwrap_or_else(|e| panic!("{} of 8 connections: {e}", conns.len()));
            if matches!(ev.event, reliable::Event::Connected) {
                conns.push(ev.conn);
            }
        }
        // A transfer on every connection, its answers (none: the collector only reads) not awaited.
        let mut accepted = [0u64; 8];
        let transfer_until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < transfer_until {
            for (i, &c) in conns.iter().enumerate() {
                match ep.try_send(c, &[i as u8; 100]) {
                    Ok(()) => accepted[i] += 1,
                    Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => {}
                    Err(e) => panic!("connection {i} before the kill: {e}"),
                }
            }
        }
        // The collector dies (SIGKILL): nothing of it says goodbye.
        kill_collector(&pipeline, collector);
        // Keep sending: each connection accepts until its end is known, then refuses with it.
        let mut ended: [Option<EndpointError>; 8] = [None; 8];
        let deadline = Instant::now() + LONG;
        while ended.iter().any(Option::is_none) {
            assert!(Instant::now() < deadline, "connections never gave up: {ended:?}");
            for (i, &c) in conns.iter().enumerate() {
                let sent = ep.try_send(c, &[i as u8; 100]);
                match (ended[i], sent) {
                    (None, Ok(())) => accepted[i] += 1,
                    (None, Err(EndpointError::WouldBlock | EndpointError::NoBuffers)) => {}
                    (None, Err(e)) => ended[i] = Some(e),
                    (Some(_), Ok(())) => panic!("connection {i} accepted a send after it ended"),
                    (Some(first), Err(e)) => assert_eq!(e, first, "connection {i}"),
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(ended.iter().all(|e| *e == Some(EndpointError::ConnectionFailed)), "{ended:?}");
        // Each connection's status: failed, and no more unacknowledged than it accepted (what
        // the collector acknowledged before it died is not counted).
        for (i, &c) in conns.iter().enumerate() {
            let s = ep.status(c).unwrap_or_else(|e| panic!("status of connection {i}: {e}"));
            assert_eq!(s.state, ConnState::Failed, "connection {i}");
            assert!(s.unacknowledged <= accepted[i], "connection {i}: {s:?}, accepted {}", accepted[i]);
            assert!(s.acknowledged > 0, "connection {i} had a transfer before the kill: {s:?}");
        }
        let table = ep.table_status();
        assert_eq!(table.failed, 8, "{table:?}");
        assert_eq!(table.opened, 8, "{table:?}");
        assert!(table.retransmits > 0 && table.timeouts > 0, "{table:?}");
        // Through telemetry: the table (`channel_produce`) and each connection (`channel_produce/<slot>`).
        let served = rosette::substrate::telemetry::read_source("channel_produce").expect("table served");
        assert!(served.contains(&("failed".to_owned(), 8)), "{served:?}");
        let first = ep.status(conns[0]).unwrap();
        let one = rosette::substrate::telemetry::read_source(&format!("channel_produce/{}", conns[0].index()));
        assert_eq!(one, Some(first.pairs()));
        pipeline.stop();
        assert!(common::wait_until(LONG, || pipeline.is_finished()));
        let total: u64 = conns.iter().map(|&c| ep.status(c).map_or(0, |s| s.unacknowledged)).sum();
        assert_eq!(ep.table_status().unacknowledged, total, "the table's sum is the connections'");
        println!("accepted {accepted:?}, unacknowledged at the end {total}, table {:?}", ep.table_status());
        drop(ep);
        finish(pipeline);
        let _ = std::fs::remove_file(&socket);
    }
}

dpdk_test! {
    fn a_collector_killed_mid_transfer_fails_the_single_connection_and_every_mbuf_comes_back() {
        let socket = format!("/tmp/rosette-scenarios-single-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&socket);
        let pipeline = producer_single::launch(&launch_options("link", memif_device("server", &socket))).expect("launch");
        let collector = spawn_collector(&socket, true);
        let ep = producer_single::endpoints::produce(LONG).unwrap();
        assert!(matches!(ep.recv_event(LONG), Ok(reliable::Event::Connected)));
        let mut accepted = 0u64;
        let transfer_until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < transfer_until {
            if offered(|| ep.try_send(&[7; 300])).is_ok() {
                accepted += 1;
            }
        }
        kill_collector(&pipeline, collector);
        // Blocking sends, as the producer used them: the failure, not the caller's timeout.
        let end = loop {
            match ep.send(&[7; 300], LONG) {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(end, EndpointError::ConnectionFailed);
        let status = ep.status();
        assert_eq!(status.state, ConnState::Failed);
        assert!(status.unacknowledged <= accepted && status.acknowledged > 0, "{status:?}, accepted {accepted}");
        // The producer keeps its endpoint (and may park more) past the stop: still every mbuf home.
        pipeline.stop();
        assert!(common::wait_until(LONG, || pipeline.is_finished()));
        assert_eq!(ep.try_send(b"after"), Err(EndpointError::ConnectionFailed));
        finish(pipeline);
        drop(ep);
        let _ = std::fs::remove_file(&socket);
    }
}

/// The collector of the kill scenarios, spawned as its own process: reads whatever arrives until it
/// is killed (or its parent is gone).
#[test]
#[ignore = "spawned as the collector process by the kill scenarios"]
fn scenario_collector() {
    let socket = std::env::var("ROSETTE_MEMIF_SOCKET").expect("ROSETTE_MEMIF_SOCKET");
    let parent = std::os::unix::process::parent_id();
    let orphaned = || std::os::unix::process::parent_id() != parent;
    let device = memif_device("client", &socket);
    if std::env::var("ROSETTE_COLLECTOR").as_deref() == Ok("single") {
        let pipeline = collector_single::launch(&launch_options("link", device)).expect("launch");
        let ep = collector_single::endpoints::collect(LONG).unwrap();
        while !orphaned() {
            let _ = ep.recv_event(Duration::from_millis(100));
        }
        drop(ep);
        pipeline.stop();
    } else {
        let pipeline = collector::launch(&launch_options("link", device)).expect("launch");
        let ep = collector::endpoints::collect(LONG).unwrap();
        while !orphaned() {
            let _ = ep.recv(Duration::from_millis(100));
        }
        drop(ep);
        pipeline.stop();
    }
}
