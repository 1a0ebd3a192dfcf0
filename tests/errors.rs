//! The run-time errors an operator meets first, each one message that names the cause and the fix:
//! a stale memif socket left by a killed server (reclaimed), a socket a live server holds (named), a
//! memif client with no server, runtime directories of failed starts and of dead processes (removed),
//! lcores beyond the machine's CPUs (one warning on stderr without a logger), an endpoint asked for
//! with the wrong kind, and an unordered sender faster than its queue (`WouldBlock`, drops counted).
//!
//! Every DPDK scenario runs in a process of its own (EAL starts once per process) and ends by checking
//! that every mbuf went back to its pool. The pipelines are declared in `tests/pipelines/errors.yaml`.

mod common;

use std::net::SocketAddrV4;
use std::os::unix::net::UnixListener;
use std::process::Output;
use std::time::Duration;

use rosette::dpdk_test;
use rosette::pipeline::channels::ChannelReport;
use rosette::pipeline::endpoint::{EndpointError, EndpointKind, ReliableEndpoint, StreamEndpoint};
use rosette::pipeline::{LaunchError, LaunchOptions, Pipeline};
use rosette::substrate::{runtime_dir, Error, MemoryMode};

rosette_macros::pipeline!("tests/pipelines/errors.yaml");

const LONG: Duration = Duration::from_secs(10);

/// Launch options of a test pipeline: `device` on `port` (when given), the test memory mode, quiet logs.
fn options(port: &str, device: Option<String>) -> LaunchOptions {
    let mut options = LaunchOptions::new()
        .memory(common::memory_mode())
        .eal_args(["--log-level=lib.eal:error", "--log-level=pmd.net.memif:error"]);
    if let Some(device) = device {
        options = options.device(port, device);
    }
    options
}

fn memif_device(role: &str, socket: &str) -> String {
    format!("net_memif0,role={role},socket={socket},socket-abstract=no")
}

fn socket_path(tag: &str) -> String {
    let path = format!("/tmp/rosette-errors-{tag}-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    path
}

/// This process's runtime directory with rosette's default prefix.
fn own_runtime_dir() -> std::path::PathBuf {
    runtime_dir().join(format!("rosette-{}", std::process::id()))
}

/// Stops the loops, joins, and checks that every mbuf went home.
fn finish(pipeline: Pipeline) {
    let report = pipeline.join().expect("pipeline ended badly");
    assert_eq!(report.mbufs_leaked, 0, "mbufs were not returned to their pools");
}

/// Runs scenario `name` in its own process and returns what it printed (it must succeed, having run
/// exactly that one test).
fn run_scenario(name: &str) -> Output {
    let output = common::child_command(name, false).output().expect("spawn the test binary for a DPDK scenario");
    common::assert_child_ran_one_test(name, &output);
    output
}

/// Lines of `output`'s stderr that contain `needle`.
fn stderr_lines(output: &Output, needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
}

dpdk_test! {
    fn memif_server_on_a_live_socket_or_a_plain_file_is_named_before_eal_starts() {
        // A plain file where the socket goes: named, not removed.
        let plain = socket_path("plain");
        std::fs::write(&plain, b"not a socket").unwrap();
        let err = memif_server::launch(&options("wire", Some(memif_device("server", &plain)))).unwrap_err();
        assert_eq!(
            err,
            LaunchError::Substrate(Error::MemifSocketNotSocket { device: "net_memif0".into(), socket: plain.clone() })
        );
        assert!(err.to_string().contains(&format!("cannot listen on {plain}: that path exists and is not a unix socket")), "{err}");
        assert!(std::path::Path::new(&plain).exists());
        std::fs::remove_file(&plain).unwrap();

        // A socket a live process listens on: named, left alone.
        let socket = socket_path("live");
        let live = UnixListener::bind(&socket).unwrap();
        let err = memif_server::launch(&options("wire", Some(memif_device("server", &socket)))).unwrap_err();
        // The listener is this process, named as `fuser` would.
        let text = err.to_string();
        let head = format!("memif server `net_memif0` cannot listen on {socket}: another process, pid {} (", std::process::id());
        assert!(text.starts_with(&head), "{text}");
        assert!(
            text.ends_with("), is listening there; stop that process first, or give this port another `socket=` path"),
            "{text}"
        );
        assert!(std::path::Path::new(&socket).exists(), "a live socket was removed");
        drop(live);
        let _ = std::fs::remove_file(&socket);
        // Neither check started EAL: this process can still start it (see the next scenario).
        assert!(!rosette::substrate::eal::eal_running());
    }
}

#[test]
fn stale_memif_socket_of_a_killed_server_is_reclaimed() {
    const NAME: &str = "stale_memif_socket_of_a_killed_server_is_reclaimed";
    if common::is_scenario(NAME) {
        // What a killed server leaves: a socket file nobody listens on (a listener dropped without
        // unlinking its file).
        let socket = socket_path("stale");
        drop(UnixListener::bind(&socket).unwrap());
        assert!(std::path::Path::new(&socket).exists());
        let pipeline = memif_server::launch(&options("wire", Some(memif_device("server", &socket))))
            .unwrap_or_else(|e| panic!("a memif server on a stale socket must start: {e}"));
        // The server listens there now.
        assert!(UnixListener::bind(&socket).is_err(), "the server does not hold its socket");
        finish(pipeline);
        let _ = std::fs::remove_file(&socket);
    } else {
        let output = run_scenario(NAME);
        // No logger in the test binary: the warning is one line on stderr.
        let warned = stderr_lines(&output, "removed the stale socket file");
        assert_eq!(warned.len(), 1, "expected one warning line, got {warned:?}");
        assert!(
            warned[0].starts_with("rosette: warning: memif server `net_memif0`: removed the stale socket file /tmp/"),
            "{}",
            warned[0]
        );
    }
}

dpdk_test! {
    fn memif_client_without_server_says_so_and_leaves_no_runtime_directory() {
        let socket = socket_path("noserver");
        let err = memif_client::launch(&options("wire", Some(memif_device("client", &socket)))).unwrap_err();
        assert_eq!(err, LaunchError::Substrate(Error::MemifNoServer { device: "net_memif0".into(), socket: socket.clone() }));
        assert_eq!(
            err.to_string(),
            format!(
                "memif client `net_memif0` could not connect: no memif server listens on {socket}; start the server \
                 process first, or check the roles (one side of a link is `role=server`, the other `role=client`, \
                 both with the same `socket=`)"
            )
        );
        // EAL started and was cleaned up when the launch failed: its runtime directory went with it.
        assert!(!own_runtime_dir().exists(), "{} left behind", own_runtime_dir().display());
    }
}

/// A pid that no process has: a child that already exited and was reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

dpdk_test! {
    fn failed_eal_start_leaves_no_runtime_directory_and_dead_ones_are_removed() {
        // A directory a dead rosette process left, and one of a live process (pid 1).
        let stale = runtime_dir().join(format!("rosette-{}", dead_pid()));
        let live = runtime_dir().join("rosette-1");
        let live_existed = live.exists();
        for dir in [&stale, &live] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(stale.join("config"), b"left behind").unwrap();
        // Far more memory than any machine has: rte_eal_init fails after creating its runtime directory.
        let err = common::test_eal().memory(MemoryMode::NoHuge).memory_mb(64 << 20).start().unwrap_err();
        assert!(matches!(err, Error::EalInit { .. }), "{err:?}");
        assert!(!own_runtime_dir().exists(), "the failed start left {}", own_runtime_dir().display());
        assert!(!stale.exists(), "the runtime directory of a dead process was not removed");
        assert!(live.exists(), "the runtime directory of a live process was removed");
        if !live_existed {
            std::fs::remove_dir(&live).unwrap();
        }
    }
}

dpdk_test! {
    fn device_that_fails_to_probe_leaves_no_runtime_directory() {
        let err = common::test_eal().vdev("net_af_packet0,iface=rosette_nope0").start().unwrap_err();
        assert_eq!(err, Error::DeviceNotProbed { device: "net_af_packet0".to_owned() });
        assert!(!own_runtime_dir().exists(), "the failed start left {}", own_runtime_dir().display());
    }
}

#[test]
fn lcores_beyond_the_cpus_are_one_warning_on_stderr_without_a_logger() {
    const NAME: &str = "lcores_beyond_the_cpus_are_one_warning_on_stderr_without_a_logger";
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if common::is_scenario(NAME) {
        let eal = common::test_eal().lcores(0..=cpus).start().expect("lcores sharing CPUs still start");
        assert_eq!(eal.worker_lcores().count(), cpus as usize);
        common::assert_no_mbuf_leaked(&eal);
    } else {
        let output = run_scenario(NAME);
        let warned = stderr_lines(&output, "do not fit this machine's");
        assert_eq!(warned.len(), 1, "expected one warning line, got {warned:?}");
        let expected = rosette::substrate::lcore_sharing_warning(&(0..=cpus).collect::<Vec<_>>(), cpus).unwrap();
        assert_eq!(warned[0], format!("rosette: warning: {expected}"));
    }
}

dpdk_test! {
    fn unordered_burst_beyond_the_queue_would_block_and_drops_are_counted() {
        let pipeline = burst::launch(&options("lo", None)).expect("launch");
        // The wrong kind of endpoint for the declared `unordered` stage: both kinds named, and the
        // registration stays for the right one.
        let wrong = ReliableEndpoint::connect("burst", LONG).unwrap_err();
        assert_eq!(
            wrong,
            EndpointError::WrongKind { name: "burst", registered: EndpointKind::Unordered, requested: EndpointKind::Reliable }
        );
        assert_eq!(
            wrong.to_string(),
            "endpoint `burst` is an unordered endpoint (its channel stage is `unordered`); asked for a reliable \
             endpoint (`ReliableEndpoint`): connect it as `UnorderedEndpoint`, or make the stage `reliable` (one \
             word in the declaration)"
        );
        assert!(matches!(StreamEndpoint::connect("burst", LONG), Err(EndpointError::WrongKind { .. })));
        let ep = burst::endpoints::burst(LONG).expect("the unordered endpoint");

        // Let the loop run once (the endpoint learns its pool), then hold it while the burst is queued.
        let lcore = 1;
        assert!(common::wait_until(LONG, || pipeline.stats().iter().any(|s| s.empty_polls + s.bursts > 0)));
        assert!(pipeline.pause(LONG), "the loop did not park");
        let dst: SocketAddrV4 = "10.8.0.99:9".parse().unwrap();
        let (mut queued, mut blocked) = (0, 0);
        for i in 0..150u32 {
            match ep.try_send_to(dst, &i.to_be_bytes()) {
                Ok(()) => queued += 1,
                Err(EndpointError::WouldBlock) => blocked += 1,
                Err(e) => panic!("datagram {i}: {e}"),
            }
        }
        assert_eq!((queued, blocked), (100, 50), "the queue holds queue_depth = 100 datagrams");
        assert_eq!(ep.dropped(), 0);

        // Nobody answers ARP for 10.8.0.99: the channel holds 64 datagrams for it and refuses the rest.
        pipeline.resume();
        assert!(common::wait_until(LONG, || ep.dropped() == 36), "dropped {} (expected 36)", ep.dropped());
        pipeline.stop();
        assert!(common::wait_until(LONG, || pipeline.is_finished()));
        let report: ChannelReport = pipeline.stage_report(lcore, 0).expect("the channel's report");
        let link = report.link.expect("the channel ran");
        assert_eq!(report.stage.commands, 100);
        assert_eq!(report.stage.send_refused, link.tx_drops.pending_full);
        assert_eq!(link.tx_drops.pending_full, 36);
        assert_eq!(report.send_queue_len, 64, "datagrams still waiting for ARP at the stop");
        // What the channel dropped, and what it still held when the stage stopped, is what the endpoint
        // counted: every queued datagram.
        assert_eq!(ep.dropped(), report.stage.send_refused + report.send_queue_len as u64);
        assert_eq!(ep.dropped(), queued);
        drop(ep);
        finish(pipeline);
    }
}

/// A scenario whose name matches no test (renamed, misspelt) runs nothing in its child process, which
/// libtest reports as success (`running 0 tests`): the harness must fail it.
#[test]
fn a_scenario_that_runs_no_test_fails() {
    const NAME: &str = "no_test_has_this_name_any_more";
    let output = common::child_command(NAME, false).output().expect("spawn the test binary");
    assert!(output.status.success(), "libtest itself passes a run of 0 tests");
    let checked = std::panic::catch_unwind(|| common::assert_child_ran_one_test(NAME, &output));
    let message = *checked.expect_err("a child that ran no test fails").downcast::<String>().expect("a message");
    assert!(message.contains("ran no test"), "{message}");
}
