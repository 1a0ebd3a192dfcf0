//! The ingestion example: a producer sends `--messages N` messages of 1 B to 9000 B through the
//! endpoint of the channel stage declared in `ingest.yaml`; a collector — the same binary, spawned as a
//! second process — receives them through its own declared pipeline and checks every byte.
//!
//! The application code is written against [`AppEndpoint`], the trait every channel endpoint shares,
//! so changing the channel word in `ingest.yaml` (`reliable` ↔ `streaming`) changes the endpoint type
//! the generated `endpoints::ingest` returns and nothing here. Messages are framed with a 4-byte length
//! so that a byte stream carries them as well as a message channel.
//!
//! The run ends with `messages=<n> delivered=<n> digest=match` (exit code 0) or a line saying what
//! differed (exit code 1).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rosette::pipeline::{AppEndpoint, LaunchOptions, Pipeline};
use rosette::substrate::SpawnUnpinned as _;

rosette_macros::pipeline!("ingest.yaml");

/// How long one endpoint call may wait for room or data before the run is declared stuck.
const STEP: Duration = Duration::from_secs(30);
/// Largest message payload.
const MAX_MESSAGE: usize = 9000;

/// Set by Ctrl-C (SIGINT) or SIGTERM: the producer stops sending, ends the stream, and the run ends
/// through the usual handshake (the collector reads to the end of what was sent), every mbuf back.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn main() {
    // First thing: a stop signal sets INTERRUPTED instead of stopping the poll loops, so the stream
    // still ends cleanly. The collector, in the same process group, gets the terminal's Ctrl-C too
    // and ignores it: the producer ends the stream.
    if let Err(e) = rosette::substrate::route_stop_signals(&INTERRUPTED) {
        eprintln!("ingest: {e}");
    }
    std::process::exit(match Args::parse() {
        Ok(Args { messages, collector: Some(socket) }) => collect(messages, &socket),
        Ok(Args { messages, collector: None }) => produce(messages),
        Err(e) => {
            eprintln!("ingest: {e}");
            eprintln!("usage: ingest [--messages N]");
            2
        }
    });
}

struct Args {
    messages: u64,
    /// Set in the spawned collector process: the memif socket to serve.
    collector: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args { messages: 200_000, collector: None };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--messages" => {
                    let v = it.next().ok_or("--messages needs a value")?;
                    args.messages = v.parse().map_err(|_| format!("--messages: `{v}` is not a whole number"))?;
                }
                "--collector" => args.collector = Some(it.next().ok_or("--collector needs a socket path")?),
                "-h" | "--help" => return Err("help".into()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(args)
    }
}

/// Message `i`: its size (mostly small, every 16th up to [`MAX_MESSAGE`]) and content, a function of
/// `i` alone so the collector can check every byte.
fn message(i: u64, out: &mut Vec<u8>) {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    x ^= x >> 29;
    let len = if i % 16 == 15 { 1 + (x % MAX_MESSAGE as u64) } else { 1 + (x % 64) } as usize;
    out.clear();
    out.extend((0..len).map(|j| (i as usize).wrapping_mul(31).wrapping_add(j.wrapping_mul(7)) as u8));
}

/// FNV-1a over every delivered payload byte, in order.
fn digest(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
const DIGEST_INIT: u64 = 0xcbf2_9ce4_8422_2325;

fn options(socket: &str, server: bool) -> LaunchOptions {
    let role = if server { "server" } else { "client" };
    LaunchOptions::new()
        .device("link", format!("net_memif0,role={role},socket={socket},socket-abstract=no"))
        .eal_args(["--log-level=lib.eal:error", "--log-level=pmd.net.memif:error"])
}

/// Stops polling, then (once the peer stopped polling too) stops the port and checks the pools.
fn finish(pipeline: Pipeline, who: &str) -> bool {
    match pipeline.join() {
        Ok(report) if report.mbufs_leaked == 0 => true,
        Ok(report) => {
            eprintln!("ingest {who}: {} mbufs not returned to their pools", report.mbufs_leaked);
            false
        }
        Err(e) => {
            eprintln!("ingest {who}: {e}");
            false
        }
    }
}

fn produce(messages: u64) -> i32 {
    let socket = format!("/tmp/rosette-ingest-{}.sock", std::process::id());
    let pipeline = match producer::launch(&options(&socket, true)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ingest: {e}");
            return 1;
        }
    };
    let exe = std::env::current_exe().expect("own executable");
    let child = Command::new(exe)
        .unpinned()
        .args(["--messages", &messages.to_string(), "--collector", &socket])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ingest: cannot start the collector: {e}");
            return 1;
        }
    };
    let mut endpoint = match producer::endpoints::ingest(STEP) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ingest: endpoint: {e}");
            return 1;
        }
    };
    let started = Instant::now();
    let (mut sent_digest, mut bytes, mut frame, mut payload) = (DIGEST_INIT, 0u64, Vec::new(), Vec::new());
    let mut failure = None;
    let mut interrupted = None;
    for i in 0..messages {
        if INTERRUPTED.load(Ordering::Relaxed) {
            interrupted = Some(i);
            break;
        }
        message(i, &mut payload);
        sent_digest = digest(sent_digest, &payload);
        bytes += payload.len() as u64;
        frame.clear();
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&payload);
        if let Err(e) = endpoint.send(&frame, STEP) {
            failure = Some(format!("send of message {i}: {e}"));
            break;
        }
    }
    if failure.is_none() {
        if let Err(e) = endpoint.finish(STEP) {
            failure = Some(format!("finish: {e}"));
        }
    }
    // The collector reports once it has read the end of the data.
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let _ = stdout.read_line(&mut line);
    let elapsed = started.elapsed().as_secs_f64();
    // End-of-stream handshake: we stop polling first, then the collector stops and closes its port,
    // then we close ours (the memif PMD must not be polled while its peer goes away).
    pipeline.stop();
    while !pipeline.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"stop\n");
    }
    let collector_ok = child.wait().map(|s| s.success()).unwrap_or(false);
    drop(endpoint);
    let clean = finish(pipeline, "producer");
    let _ = std::fs::remove_file(&socket);

    let mut delivered = 0u64;
    let mut got_digest = None;
    for field in line.split_whitespace() {
        if let Some(v) = field.strip_prefix("delivered=") {
            delivered = v.parse().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("digest=") {
            got_digest = u64::from_str_radix(v, 16).ok();
        }
    }
    if let Some(f) = &failure {
        eprintln!("ingest: {f}");
    }
    if !line.is_empty() && line.trim_start().starts_with("error") {
        eprintln!("ingest collector: {}", line.trim());
    }
    let matched = got_digest == Some(sent_digest);
    // Interrupted: what was sent must have arrived, exactly; the exit code says it was cut short.
    if let Some(sent) = interrupted {
        eprintln!("ingest: interrupted after {sent} of {messages} messages");
        println!("messages={sent} delivered={delivered} digest={}", if matched { "match" } else { "MISMATCH" });
        return if failure.is_none() && matched && delivered == sent && collector_ok && clean { 130 } else { 1 };
    }
    eprintln!(
        "ingest: {messages} messages, {bytes} payload bytes in {elapsed:.2} s ({:.0} msgs/s, {:.1} MB/s)",
        messages as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    println!("messages={messages} delivered={delivered} digest={}", if matched { "match" } else { "MISMATCH" });
    if failure.is_none() && matched && delivered == messages && collector_ok && clean {
        0
    } else {
        1
    }
}

fn collect(messages: u64, socket: &str) -> i32 {
    let pipeline = match collector::launch(&options(socket, false)) {
        Ok(p) => p,
        Err(e) => {
            println!("error: {e}");
            return 1;
        }
    };
    let result = match collector::endpoints::ingest(STEP) {
        Ok(mut endpoint) => receive(&mut endpoint, messages),
        Err(e) => Err(format!("endpoint: {e}")),
    };
    match &result {
        Ok((delivered, digest)) => println!("delivered={delivered} digest={digest:016x}"),
        Err(e) => println!("error: {e}"),
    }
    let _ = std::io::stdout().flush();
    // Wait until the producer stopped polling (or went away), then stop and close.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let clean = finish(pipeline, "collector");
    if result.is_ok() && clean {
        0
    } else {
        1
    }
}

/// Reads framed messages until the end of the data, checking each against [`message`].
fn receive<E: AppEndpoint>(endpoint: &mut E, messages: u64) -> Result<(u64, u64), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let (mut delivered, mut h, mut expected) = (0u64, DIGEST_INIT, Vec::new());
    loop {
        // Every complete frame in the buffer.
        while end - start >= 4 {
            let len = u32::from_le_bytes(buf[start..start + 4].try_into().expect("4 bytes")) as usize;
            if len > MAX_MESSAGE {
                return Err(format!("message {delivered}: length {len} is larger than any sent"));
            }
            if end - start < 4 + len {
                break;
            }
            let payload = &buf[start + 4..start + 4 + len];
            message(delivered, &mut expected);
            if payload != expected.as_slice() {
                return Err(format!("message {delivered}: content differs from what was sent"));
            }
            h = digest(h, payload);
            delivered += 1;
            start += 4 + len;
        }
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match endpoint.recv(&mut buf[end..], STEP) {
            Ok(0) => break,
            Ok(n) => end += n,
            Err(e) => return Err(format!("after {delivered} of {messages} messages: {e}")),
        }
    }
    if end != start {
        return Err(format!("{} bytes of an incomplete message at the end", end - start));
    }
    Ok((delivered, h))
}
