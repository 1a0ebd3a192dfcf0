//! Packet capture of a live rosette process with `dpdk-dumpcap`, read back with `tcpdump`.
//!
//! Starts the built `forward-demo` (a real DPDK primary, forwarding `net_null0` ⇄ `net_null1` with
//! 128-byte frames generated on port 0 and 200-byte frames on port 1), waits until it forwards, runs
//! `dpdk-dumpcap --file-prefix=<its prefix> -i 0 -w <file>.pcapng` against it until dumpcap reports at
//! least 1000 packets, then stops the demo with SIGINT; dumpcap sees its primary gone, closes the file
//! and exits. `tcpdump -r` reads the file back: as many packets as dumpcap reported (at least 1000),
//! each of the size of its frame (port 0's rx frames are 128 bytes, its tx frames, forwarded from port
//! 1, 200), both kinds present. The demo must end clean: exit 0, `0 mbufs leaked`, no hugepage file or
//! runtime directory of its prefix left, no process left.
//!
//! Why not `-c 1000`: in DPDK 22.11 a capture that ends while the primary forwards can crash the
//! primary. dumpcap's disable request removes the rx/tx callbacks without waiting for an lcore that is
//! inside one, and dumpcap then frees the pool and ring the callback copies into (a use-after-free in
//! `librte_pcapng`/`librte_mbuf` on the worker lcore; later DPDK releases wait for the callbacks to
//! drain). Measured on a busy 2-CPU VM: the forwarding demo died at the 8th of 15 `-c 1000` captures;
//! the declared `forwarder`, whose worker shares a CPU with the main lcore, at the end of each of 3.
//! Stopping the primary first makes the test deterministic.
//!
//! Without hugepages (`ROSETTE_TEST_MEMORY=no-huge`) capture cannot work (the primary's memory is
//! anonymous); the test then checks that the demo says so (`packet capture unavailable`) and that
//! dumpcap fails instead of hanging, and still that the demo ends clean. In `auto` mode the pcap checks
//! need usable hugepages (resource `hugepages`): on a machine without them the test fails, unless
//! `ROSETTE_ALLOW_SKIP` names `hugepages` (never in CI), and then runs the `no-huge` checks.
//!
//! Needs `dpdk-dumpcap` (package `dpdk`) and `tcpdump` (package `tcpdump`); `scripts/setup` installs both.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rosette::substrate::{MemoryMode, SpawnUnpinned as _};

/// Frame sizes the two null ports generate.
const PORT0_FRAME: usize = 128;
const PORT1_FRAME: usize = 200;
/// Packets to capture at least.
const COUNT: usize = 1000;

/// A child process killed (and reaped) if the test fails before it ends on its own.
struct Reaped(Option<Child>);

impl Reaped {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child still held")
    }

    /// Waits up to `limit` for the child to exit on its own; kills it after that.
    fn wait(&mut self, limit: Duration, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child().try_wait().expect("wait for child") {
                self.0 = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child().kill();
                let _ = self.child().wait();
                self.0 = None;
                panic!("{what} did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reaped {
    /// A test that fails half-way still leaves no process: SIGINT first (a DPDK process then cleans up
    /// its hugepage files and runtime directory), SIGKILL if it has not ended within 5 s.
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            // SAFETY: the pid is our own child, not yet reaped, so it names no other process.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn require(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(tool)).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!("`{tool}` is not installed: apt-get install -y {package} (scripts/setup installs it)")
    })
}

/// Whether the demo's memory can be captured: with hugepages. In `auto` mode a machine without usable
/// hugepages fails the test unless the skip of the pcap checks is asked for (see the module docs).
fn capture_possible(memory: MemoryMode) -> bool {
    match memory {
        MemoryMode::NoHuge => false,
        MemoryMode::Hugepages => true,
        MemoryMode::Auto => rosette::testing::resource_available(
            rosette::testing::RESOURCE_HUGEPAGES,
            rosette::testing::missing_hugepages(),
            rosette::testing::PROVIDE_HUGEPAGES,
        ),
    }
}

/// Frame sizes of every packet `tcpdump -r file -xx` prints (the hex dump of each whole frame).
fn frame_sizes(tcpdump: &Path, file: &Path) -> Vec<usize> {
    let output = Command::new(tcpdump).arg("-r").arg(file).args(["-nn", "-xx"]).output().expect("run tcpdump");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tcpdump -r {} failed: {}\n{stdout}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut sizes = Vec::new();
    for line in stdout.lines() {
        let hex = line.trim_start();
        match hex.strip_prefix("0x").and_then(|rest| rest.split_once(':')) {
            Some((_, bytes)) if line.starts_with(char::is_whitespace) => {
                let count: usize = bytes.split_whitespace().map(|group| group.len() / 2).sum();
                *sizes.last_mut().expect("a hex line follows a packet line") += count;
            }
            _ => sizes.push(0),
        }
    }
    sizes
}

#[test]
fn dumpcap_captures_a_running_pipeline() {
    let dumpcap = require("dpdk-dumpcap", "dpdk");
    let tcpdump = require("tcpdump", "tcpdump");
    let memory = rosette::testing::memory_mode();
    let memory_arg = match memory {
        MemoryMode::Auto => "auto",
        MemoryMode::Hugepages => "hugepages",
        MemoryMode::NoHuge => "no-huge",
    };
    // Decided before anything starts: a missing resource fails here, with what is missing.
    let capture_possible = capture_possible(memory);
    let started = Instant::now();
    let mut demo = Reaped(Some(
        Command::new(env!("CARGO_BIN_EXE_forward-demo"))
            .unpinned()
            .args(["--seconds", "25", "--memory", memory_arg])
            .arg(format!("--dev0=net_null0,size={PORT0_FRAME}"))
            .arg(format!("--dev1=net_null1,size={PORT1_FRAME}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start forward-demo"),
    ));
    // stderr: the file-prefix line (and warnings); stdout: a stats line once it forwards.
    let (lines_tx, lines) = mpsc::channel::<(bool, String)>();
    let readers: Vec<_> = [
        (false, Box::new(demo.child().stdout.take().expect("piped")) as Box<dyn Read + Send>),
        (true, Box::new(demo.child().stderr.take().expect("piped"))),
    ]
    .into_iter()
    .map(|(is_err, pipe)| {
        let lines_tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = lines_tx.send((is_err, line));
            }
        })
    })
    .collect();
    drop(lines_tx);
    let mut transcript = String::new();
    let mut prefix = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (is_err, line) = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("forward-demo did not start forwarding ({e}):\n{transcript}"));
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(p) = line.strip_prefix("file-prefix=") {
            prefix = Some(p.to_owned());
        }
        // The first stats line: ports are started and forwarding, so dumpcap finds its queues.
        if !is_err && line.starts_with('[') {
            break;
        }
    }
    let prefix = prefix.unwrap_or_else(|| panic!("no file-prefix= line:\n{transcript}"));
    assert!(prefix.starts_with("rosette-"), "{prefix}");

    let dir = std::env::temp_dir().join(format!("rosette-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the capture directory");
    let file = dir.join("out.pcapng");
    // No `-c`: a capture that ends while packets flow can crash the primary in DPDK 22.11 (see the
    // module docs). Once dumpcap reports COUNT packets the demo is stopped; dumpcap sees its primary
    // gone, closes the file and exits.
    let mut capture = Reaped(Some(
        Command::new(&dumpcap)
            .unpinned()
            .arg(format!("--file-prefix={prefix}"))
            .args(["-i", "0", "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dpdk-dumpcap"),
    ));
    let (progress_tx, progress) = mpsc::channel::<u64>();
    let dumpcap_readers: Vec<_> = [
        Box::new(capture.child().stdout.take().expect("piped")) as Box<dyn Read + Send>,
        Box::new(capture.child().stderr.take().expect("piped")),
    ]
    .into_iter()
    .map(|mut pipe| {
        let progress_tx = progress_tx.clone();
        std::thread::spawn(move || {
            // dumpcap rewrites its count in place (backspaces): `Packets captured: 0 32 64 …`.
            let (mut text, mut buf) = (Vec::new(), [0u8; 4096]);
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                text.extend_from_slice(&buf[..n]);
                if let Some(count) = last_count(&text) {
                    let _ = progress_tx.send(count);
                }
            }
            String::from_utf8_lossy(&text).replace('\u{8}', "")
        })
    })
    .collect();
    drop(progress_tx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(count) = progress.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if count >= COUNT as u64 {
            break;
        }
    }

    // Stop the demo (SIGINT, as Ctrl-C) and collect everything it printed.
    let pid = demo.child().id() as libc::pid_t;
    // SAFETY: pid is our own child, not yet reaped (Reaped holds it), so it cannot name another process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "signal forward-demo");
    let demo_status = demo.wait(Duration::from_secs(10), "forward-demo after SIGINT");
    let status = capture.wait(Duration::from_secs(10), "dpdk-dumpcap after its primary ended");
    let dumpcap_err: String = dumpcap_readers.into_iter().map(|r| r.join().unwrap_or_default()).collect();
    let reported = last_count(dumpcap_err.as_bytes());
    for reader in readers {
        reader.join().expect("pipe reader");
    }
    for (_, line) in lines.try_iter() {
        transcript.push_str(&line);
        transcript.push('\n');
    }
    eprintln!("--- forward-demo ---\n{transcript}--- dpdk-dumpcap ({status}) ---\n{dumpcap_err}");

    if capture_possible {
        assert!(status.success(), "dpdk-dumpcap failed:\n{dumpcap_err}");
        let sizes = frame_sizes(&tcpdump, &file);
        assert!(sizes.len() >= COUNT, "{} packets in {}, expected at least {COUNT}", sizes.len(), file.display());
        assert_eq!(Some(sizes.len() as u64), reported, "tcpdump read another count than dumpcap reported");
        let rx = sizes.iter().filter(|&&s| s == PORT0_FRAME).count();
        let tx = sizes.iter().filter(|&&s| s == PORT1_FRAME).count();
        assert_eq!(rx + tx, sizes.len(), "frames of other sizes than {PORT0_FRAME} and {PORT1_FRAME}: {sizes:?}");
        eprintln!("tcpdump read {} packets: {rx} of {PORT0_FRAME} B (rx), {tx} of {PORT1_FRAME} B (tx)", sizes.len());
        assert!(rx > 0 && tx > 0, "port 0's rx ({rx}) and tx ({tx}) frames should both be captured");
        assert!(!transcript.contains("capture unavailable"), "{transcript}");
    } else {
        assert!(!status.success(), "dpdk-dumpcap attached to a --no-huge primary?\n{dumpcap_err}");
        assert!(
            transcript.contains("packet capture unavailable") && transcript.contains("--no-huge"),
            "forward-demo did not say why capture is unavailable:\n{transcript}"
        );
    }

    // The demo ended clean: every mbuf home, nothing of its prefix left on the file system.
    assert!(demo_status.success(), "forward-demo exited with {demo_status}:\n{transcript}");
    assert!(transcript.contains(" 0 mbufs leaked"), "{transcript}");
    let leftovers: Vec<String> = std::fs::read_dir("/dev/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{prefix}map_")))
        .collect();
    assert!(leftovers.is_empty(), "hugepage files left: {leftovers:?}");
    for runtime in ["/var/run/dpdk", "/tmp/dpdk"] {
        assert!(!Path::new(runtime).join(&prefix).exists(), "runtime directory {runtime}/{prefix} left");
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

/// The last packet count dumpcap printed after `Packets captured:`.
fn last_count(text: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(text);
    let (_, tail) = text.split_once("Packets captured:")?;
    // The last complete number: one followed by a separator (backspace, space or newline).
    tail.split(|c: char| !c.is_ascii_digit()).rev().skip(1).find(|n| !n.is_empty()).and_then(|n| n.parse().ok())
}
