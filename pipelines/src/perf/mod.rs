//! `rosette-perf`: an iperf-like measurement of rosette's channels between two processes over
//! `net_memif`, with kernel TCP/UDP and raw memif baselines in the same run.
//!
//! # Processes and CPUs
//! Each side is its own process with its own EAL (distinct `--file-prefix`, the substrate's default)
//! and one worker lcore. The client (sender, memif `role=client`) runs its worker on lcore 1 and its
//! main thread on lcore 0; the server (receiver, memif `role=server`) the other way round, so on a
//! 2-CPU machine each busy-polling worker has a CPU of its own. Both main threads sleep (the client's
//! wakes once a second to print progress), so they barely compete with the worker on their CPU.
//!
//! # Phases (client)
//! 1. With `--compare-kernel`: raw memif frame blast (frames of the size a channel message has in
//!    UDP, no channel).
//! 2. The channel throughput phase for `--seconds`, then a drain: no new messages; wait until every
//!    message is acknowledged (reliable, streaming) or the tx queue is empty (unordered).
//! 3. Ping-pong: one message outstanding, echoed by the server through its channel; with
//!    `--compare-kernel` each channel round alternates with a raw memif round (a frame echoed by the
//!    server with no channel), so both round-trip figures come from the same stretch of time.
//! 4. End-of-stream handshake: EOS → the server stops polling rx and answers EOS_ACK with its report
//!    → the client stops polling rx and only then closes its port. Neither side polls memif rx while
//!    the peer may be leaving (the 22.11 memif PMD can crash there).
//! 5. With `--compare-kernel`: kernel TCP and UDP on loopback, same message size.
//!
//! # Figures
//! `msgs_per_s` is messages delivered per second over the throughput phase and its drain;
//! `p50_us`/`p99_us` on the result line are round-trip times of the channel ping-pong (TSC stamp in
//! the message, read back when the echo is delivered); the one-way latency under load (TSC stamp at
//! send, read at delivery in the other process, same host TSC) is printed on its own line. The
//! digest is computed over the delivered bytes in order on the receiver and over the sent bytes on
//! the sender ([`stats::Digest`]); for unordered, each delivered datagram is checked against the
//! content its sequence number implies.

pub mod driver;
pub mod kernel;
pub mod link;
pub mod stats;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use rosette::channel::fault::FaultConfig;
use rosette::substrate::{
    install_signal_handlers, launch, EalBuilder, MemoryMode, Mempool, MempoolConfig, Port, PortConfig, StopFlag,
};

use crate::cli::Args;
use driver::{ClientOutcome, ClientPlan, Io, Phase, Progress, ReliableT, StreamT, Transport, UnorderedT};
use link::{RxFaults, Side};

/// Which channel to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// UDP datagrams: delivered at most once, in any order.
    Unordered,
    /// Messages exactly once, in order.
    Reliable,
    /// An ordered byte stream.
    Streaming,
}

impl ChannelKind {
    /// Parses `unordered`, `reliable`, `streaming`.
    pub fn parse(s: &str) -> Option<ChannelKind> {
        match s {
            "unordered" => Some(ChannelKind::Unordered),
            "reliable" => Some(ChannelKind::Reliable),
            "streaming" => Some(ChannelKind::Streaming),
            _ => None,
        }
    }

    /// The name used on the command line and in the result line.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Unordered => "unordered",
            ChannelKind::Reliable => "reliable",
            ChannelKind::Streaming => "streaming",
        }
    }
}

/// Which part a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spawn the server as a child process and run the client.
    Both,
    /// Only the server (receiver).
    Server,
    /// Only the client (sender); the server must be running.
    Client,
}

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct Options {
    /// Channel under test.
    pub channel: ChannelKind,
    /// Message size in bytes.
    pub size: usize,
    /// Length of the throughput phase.
    pub seconds: f64,
    /// Length of each baseline's throughput phase (`--compare-kernel`).
    pub baseline_seconds: f64,
    /// Ping-pong rounds per phase.
    pub pings: u32,
    /// Loss, reorder, duplicate, corrupt probabilities (0..1).
    pub loss: f64,
    /// See `loss`.
    pub reorder: f64,
    /// See `loss`.
    pub duplicate: f64,
    /// See `loss`.
    pub corrupt: f64,
    /// Fault injector seed.
    pub seed: u64,
    /// Run the baselines too.
    pub compare_kernel: bool,
    /// Which side(s) this process runs.
    pub mode: Mode,
    /// The memif socket path.
    pub socket: PathBuf,
    /// EAL memory mode.
    pub memory: MemoryMode,
    /// Extra EAL arguments.
    pub eal_args: Vec<String>,
}

/// The usage text.
pub const USAGE: &str =
    "usage: rosette-perf --channel unordered|reliable|streaming [--size BYTES (64)] [--seconds N (10)]
       [--loss P --reorder P --duplicate P --corrupt P --seed S] [--compare-kernel [--baseline-seconds N (3)]]
       [--pings N (5000)] [--server | --client] [--socket PATH] [--memory auto|hugepages|no-huge] [-- EAL args]
Without --server/--client it spawns the server side as a child process over net_memif and runs the client.";

impl Options {
    /// Parses the command line; `Err` is a message for the user.
    pub fn parse(args: &Args) -> Result<Options, String> {
        let channel = args.raw("--channel").unwrap_or("reliable");
        let channel = ChannelKind::parse(channel).ok_or_else(|| format!("unknown --channel {channel:?}"))?;
        let size: usize = args.value("--size", 64);
        if !(stats::MSG_HEADER_LEN..=driver::MAX_SIZE).contains(&size) {
            return Err(format!("--size must be in {}..={}", stats::MSG_HEADER_LEN, driver::MAX_SIZE));
        }
        if channel == ChannelKind::Unordered && size > 1472 {
            return Err("--size for unordered must fit one UDP datagram in a 1500-byte MTU (<= 1472)".to_owned());
        }
        let prob = |name: &str| -> Result<f64, String> {
            let p: f64 = args.value(name, 0.0);
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(format!("{name} is a probability in 0..1"))
            }
        };
        let mode = match (args.flag("--server"), args.flag("--client")) {
            (true, true) => return Err("--server and --client exclude each other".to_owned()),
            (true, false) => Mode::Server,
            (false, true) => Mode::Client,
            (false, false) => Mode::Both,
        };
        let memory = match args.raw("--memory") {
            None => MemoryMode::Auto,
            Some(m) => {
                MemoryMode::parse(m).ok_or_else(|| format!("--memory takes auto, hugepages or no-huge, not {m:?}"))?
            }
        };
        let socket = args
            .raw("--socket")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/rosette-perf-{}.sock", std::process::id())));
        let seconds: f64 = args.value("--seconds", 10.0);
        Ok(Options {
            channel,
            size,
            seconds,
            baseline_seconds: args.value("--baseline-seconds", 3.0f64.min(seconds.max(0.5))),
            pings: args.value("--pings", 5000),
            loss: prob("--loss")?,
            reorder: prob("--reorder")?,
            duplicate: prob("--duplicate")?,
            corrupt: prob("--corrupt")?,
            seed: args.value("--seed", 1),
            compare_kernel: args.flag("--compare-kernel"),
            mode,
            socket,
            memory,
            eal_args: args.passthrough(),
        })
    }

    fn faults(&self) -> Option<FaultConfig> {
        let ppm = |p: f64| (p * 1e6).round() as u32;
        if self.loss + self.reorder + self.duplicate + self.corrupt == 0.0 {
            return None;
        }
        Some(FaultConfig {
            loss_ppm: ppm(self.loss),
            reorder_ppm: ppm(self.reorder),
            reorder_delay: Duration::from_micros(200),
            duplicate_ppm: ppm(self.duplicate),
            corrupt_ppm: ppm(self.corrupt),
            ..FaultConfig::default()
        })
    }

    /// The arguments that start the server side with the same settings.
    fn server_args(&self) -> Vec<String> {
        let mut a = vec![
            "--server".to_owned(),
            "--channel".to_owned(),
            self.channel.name().to_owned(),
            format!("--size={}", self.size),
            format!("--seconds={}", self.seconds),
            format!("--loss={}", self.loss),
            format!("--reorder={}", self.reorder),
            format!("--duplicate={}", self.duplicate),
            format!("--corrupt={}", self.corrupt),
            format!("--seed={}", self.seed),
            "--socket".to_owned(),
            self.socket.display().to_string(),
        ];
        if let Some(m) = self.memory_name() {
            a.push(format!("--memory={m}"));
        }
        if !self.eal_args.is_empty() {
            a.push("--".to_owned());
            a.extend(self.eal_args.iter().cloned());
        }
        a
    }

    fn memory_name(&self) -> Option<&'static str> {
        match self.memory {
            MemoryMode::Auto => None,
            MemoryMode::Hugepages => Some("hugepages"),
            MemoryMode::NoHuge => Some("no-huge"),
        }
    }
}

/// Runs `rosette-perf` with `opts`; returns the process exit code.
pub fn run(opts: &Options) -> i32 {
    if let Err(e) = install_signal_handlers() {
        eprintln!("rosette-perf: {e}");
    }
    match opts.mode {
        Mode::Server => match run_server_process(opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rosette-perf server: {e}");
                1
            }
        },
        Mode::Client => match run_client_process(opts, None) {
            Ok(ok) => i32::from(!ok),
            Err(e) => {
                eprintln!("rosette-perf: {e}");
                1
            }
        },
        Mode::Both => {
            let _ = std::fs::remove_file(&opts.socket);
            let exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("rosette-perf: cannot find my own executable: {e}");
                    return 1;
                }
            };
            let child = Command::new(exe).args(opts.server_args()).stdin(Stdio::null()).stdout(Stdio::null()).spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rosette-perf: cannot start the server process: {e}");
                    return 1;
                }
            };
            let result =
                wait_for_socket(&opts.socket, &mut child).and_then(|()| run_client_process(opts, Some(&mut child)));
            let server_ok = wait_child(&mut child, Duration::from_secs(20));
            let _ = std::fs::remove_file(&opts.socket);
            match result {
                Ok(ok) => i32::from(!(ok && server_ok)),
                Err(e) => {
                    eprintln!("rosette-perf: {e}");
                    1
                }
            }
        }
    }
}

fn wait_for_socket(socket: &Path, child: &mut Child) -> Result<(), String> {
    let deadline = StdInstant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server process exited before opening {}: {status}", socket.display()));
        }
        if StdInstant::now() > deadline {
            let _ = child.kill();
            return Err(format!("the server process never opened {}", socket.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn wait_child(child: &mut Child, limit: Duration) -> bool {
    let deadline = StdInstant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if StdInstant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                eprintln!("rosette-perf: the server process did not exit; killing it");
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

fn memif_vdev(role: &str, socket: &Path) -> String {
    // 4096-slot rings (rsize is log2) instead of 1024: the same for the raw baseline and the channels,
    // they absorb a few milliseconds of the peer's worker being descheduled on a shared CPU.
    format!("net_memif0,role={role},socket={},socket-abstract=no,rsize=12", socket.display())
}

fn eal_for(opts: &Options, side: Side) -> Result<rosette::substrate::Eal, String> {
    let (role, main) = match side {
        Side::Client => ("client", 0),
        Side::Server => ("server", 1),
    };
    EalBuilder::new()
        .lcores([0, 1])
        .main_lcore(main)
        .vdev(memif_vdev(role, &opts.socket))
        .memory(opts.memory)
        .program_name("rosette-perf")
        .extra_args(["--log-level=lib.eal:warning", "--log-level=pmd.net.memif:warning"])
        .extra_args(opts.eal_args.iter().cloned())
        .start()
        .map_err(|e| e.to_string())
}

struct Endpoint {
    port: Port,
    pool: Mempool,
    eal: rosette::substrate::Eal,
}

fn endpoint(opts: &Options, side: Side) -> Result<Endpoint, String> {
    let eal = eal_for(opts, side)?;
    let pool = Mempool::new(&eal, &MempoolConfig { size: 32767, cache_size: 512, ..MempoolConfig::default() })
        .map_err(|e| e.to_string())?;
    let port = Port::configure(&eal, "net_memif0", &PortConfig::default(), std::slice::from_ref(&pool))
        .map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    Ok(Endpoint { port, pool, eal })
}

/// Waits until the link is `up` (or down); `stop` (Ctrl-C) ends the wait early when given.
fn wait_link(port: &Port, up: bool, limit: Duration, stop: Option<&StopFlag>) -> bool {
    let deadline = StdInstant::now() + limit;
    while StdInstant::now() < deadline && !stop.is_some_and(StopFlag::is_set) {
        if port.link().map(|l| l.up == up).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn epoch() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1)
}

/// The server process: receive until end of stream, report, wait for the client to leave.
fn run_server_process(opts: &Options) -> Result<(), String> {
    let ep = endpoint(opts, Side::Server)?;
    let stop = StopFlag::new();
    if !wait_link(&ep.port, true, Duration::from_secs(30), Some(&stop)) {
        return Err("memif link never came up".to_owned());
    }
    let worker = ep.eal.worker_lcores().next().ok_or("no worker lcore")?;
    let rxq = ep.port.rx_queue(0).map_err(|e| e.to_string())?;
    let txq = ep.port.tx_queue(0).map_err(|e| e.to_string())?;
    let pool = ep.pool.clone();
    let faults = RxFaults::new(opts.seed.wrapping_add(1), opts.faults(), pool.clone());
    let (channel, size) = (opts.channel, opts.size);
    // Sequence numbers tracked for duplicates (unordered): enough for 20 M messages a second.
    let dedup = (opts.seconds.max(1.0) * 20e6) as u64;
    let job = launch(&ep.eal, worker, move || {
        let mut io = Io::new(rxq, txq, pool.clone(), stop, faults);
        let now = io.now();
        let out = match channel {
            ChannelKind::Unordered => {
                driver::run_server(&mut io, &mut UnorderedT::new(Side::Server, pool), size, dedup)
            }
            ChannelKind::Reliable => {
                driver::run_server(&mut io, &mut ReliableT::new(Side::Server, pool, now, epoch()), size, dedup)
            }
            ChannelKind::Streaming => {
                driver::run_server(&mut io, &mut StreamT::new(Side::Server, pool, now, epoch()), size, dedup)
            }
        };
        (out, io)
    })
    .map_err(|e| e.to_string())?;
    let ((report, raw), io) = job.join().map_err(|_| "the server worker panicked".to_owned())?;
    println!(
        "server: delivered={} bad={} duplicates={} raw_frames={} owd_p50_us={:.1} owd_p99_us={:.1}",
        report.delivered,
        report.bad,
        report.duplicates,
        raw,
        report.owd_p50_ns as f64 / 1e3,
        report.owd_p99_ns as f64 / 1e3
    );
    // rx is no longer polled: wait for the client to close its side, then close ours. Not even Ctrl-C
    // cuts this short: the client may still be polling rx for our acknowledgement.
    if !wait_link(&ep.port, false, Duration::from_secs(60), None) {
        eprintln!("rosette-perf server: the client never closed the link");
    }
    drop(io);
    let _ = ep.port.stop();
    Ok(())
}

/// The client process: measure, print the progress, the baselines and the result. `Ok(true)` when the
/// result is good (digest matches, and for reliable/streaming everything was delivered).
fn run_client_process(opts: &Options, _child: Option<&mut Child>) -> Result<bool, String> {
    let ep = endpoint(opts, Side::Client)?;
    let stop = StopFlag::new();
    if !wait_link(&ep.port, true, Duration::from_secs(30), Some(&stop)) {
        return Err("memif link never came up (is the server running on this socket?)".to_owned());
    }
    let worker = ep.eal.worker_lcores().next().ok_or("no worker lcore")?;
    let rxq = ep.port.rx_queue(0).map_err(|e| e.to_string())?;
    let txq = ep.port.tx_queue(0).map_err(|e| e.to_string())?;
    let pool = ep.pool.clone();
    let faults = RxFaults::new(opts.seed, opts.faults(), pool.clone());
    let progress = Arc::new(Progress::default());
    let plan = ClientPlan {
        size: opts.size,
        seconds: opts.seconds,
        raw_seconds: if opts.compare_kernel { opts.baseline_seconds } else { 0.0 },
        pings: opts.pings,
    };
    let channel = opts.channel;
    let p = progress.clone();
    let stop2 = stop.clone();
    println!(
        "rosette-perf: channel={} size={} seconds={} over net_memif ({}), client worker lcore {worker}, server worker lcore 0",
        channel.name(),
        opts.size,
        opts.seconds,
        opts.socket.display()
    );
    let job = launch(&ep.eal, worker, move || {
        let mut io = Io::new(rxq, txq, pool.clone(), stop2, faults);
        let now = io.now();
        let out = match channel {
            ChannelKind::Unordered => client(&mut io, &mut UnorderedT::new(Side::Client, pool), plan, &p),
            ChannelKind::Reliable => client(&mut io, &mut ReliableT::new(Side::Client, pool, now, epoch()), plan, &p),
            ChannelKind::Streaming => client(&mut io, &mut StreamT::new(Side::Client, pool, now, epoch()), plan, &p),
        };
        (out, io)
    })
    .map_err(|e| e.to_string())?;
    // Live progress, once a second, from the worker's counters.
    let t0 = StdInstant::now();
    let mut last = (0u64, Phase::Idle);
    let mut next = t0 + Duration::from_secs(1);
    while !job.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        if StdInstant::now() < next {
            continue;
        }
        next += Duration::from_secs(1);
        let phase = Phase::from_u64(progress.phase.load(Ordering::Relaxed));
        let sent = progress.sent.load(Ordering::Relaxed);
        // Counters restart at 0 in a new phase, except that the drain continues the sending count.
        let rate = if sent >= last.0 && (phase == last.1 || phase == Phase::Drain) { sent - last.0 } else { sent };
        last = (sent, phase);
        println!(
            "[{:>3.0}s] {:<20} total={:<11} per_s={:<10} retransmits={}",
            t0.elapsed().as_secs_f64(),
            phase.name(),
            sent,
            rate,
            progress.retransmits.load(Ordering::Relaxed)
        );
    }
    let (out, io) = job.join().map_err(|_| "the client worker panicked".to_owned())?;
    // The server stopped polling before it acknowledged; we stopped polling on the ack: close.
    drop(io);
    let _ = ep.port.stop();
    drop(ep);
    report(opts, &out)
}

fn client<T: Transport>(io: &mut Io, t: &mut T, plan: ClientPlan, p: &Progress) -> ClientOutcome {
    driver::run_client(io, t, plan, p)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// Prints the baselines, the result line and the ratios; true when the result is good.
fn report(opts: &Options, out: &ClientOutcome) -> Result<bool, String> {
    let Some(r) = out.report else {
        return Err("the server never acknowledged end of stream (no report)".to_owned());
    };
    let ordered = opts.channel != ChannelKind::Unordered;
    let digest_ok = if ordered {
        r.digest == out.digest && r.bad == 0 && r.failed == 0
    } else {
        r.bad == 0 && r.delivered <= out.sent
    };
    let complete = !ordered || (r.delivered == out.sent && !out.drain_timed_out);
    let rate = r.delivered as f64 / out.elapsed.max(1e-9);
    println!(
        "one-way latency under load: p50_us={:.1} p99_us={:.1}; retransmits={}{}",
        us(r.owd_p50_ns),
        us(r.owd_p99_ns),
        out.retransmits,
        if r.duplicates > 0 { format!(" duplicates_dropped={}", r.duplicates) } else { String::new() }
    );
    let mut tail = String::new();
    if opts.compare_kernel {
        let rtt50 = out.rtt.quantile(0.5) as f64;
        println!(
            "baseline raw-memif: frames_per_s={:.0} rtt_p50_us={:.1} rtt_p99_us={:.1}",
            out.raw_fps,
            us(out.raw_rtt.quantile(0.5)),
            us(out.raw_rtt.quantile(0.99))
        );
        let tcp = kernel::tcp(opts.size, opts.baseline_seconds, opts.pings).map_err(|e| format!("kernel TCP: {e}"))?;
        println!(
            "baseline kernel-tcp: msgs_per_s={:.0} rtt_p50_us={:.1} rtt_p99_us={:.1}",
            tcp.msgs_per_s,
            us(tcp.rtt.quantile(0.5)),
            us(tcp.rtt.quantile(0.99))
        );
        let udp = kernel::udp(opts.size, opts.baseline_seconds, opts.pings).map_err(|e| format!("kernel UDP: {e}"))?;
        println!(
            "baseline kernel-udp: msgs_per_s={:.0} (received {} of {}) rtt_p50_us={:.1} rtt_p99_us={:.1}",
            udp.msgs_per_s,
            udp.received,
            udp.sent,
            us(udp.rtt.quantile(0.5)),
            us(udp.rtt.quantile(0.99))
        );
        let raw50 = out.raw_rtt.quantile(0.5).max(1) as f64;
        println!(
            "rtt p50 rosette/raw-memif: {:.2}  rtt p50 rosette/kernel-tcp: {:.2}",
            rtt50 / raw50,
            rtt50 / tcp.rtt.quantile(0.5).max(1) as f64
        );
        let _ = writeln!(tail, "ratio rosette/raw-memif: {:.2}", rate / out.raw_fps.max(1e-9));
        let _ = write!(tail, "ratio rosette/kernel-tcp: {:.2}", rate / tcp.msgs_per_s.max(1e-9));
    }
    println!(
        "channel={} sent={} delivered={} digest={} msgs_per_s={:.0} p50_us={:.1} p99_us={:.1}",
        opts.channel.name(),
        out.sent,
        r.delivered,
        if digest_ok { "match" } else { "MISMATCH" },
        rate,
        us(out.rtt.quantile(0.5)),
        us(out.rtt.quantile(0.99))
    );
    if !tail.is_empty() {
        println!("{tail}");
    }
    if out.drain_timed_out {
        eprintln!("rosette-perf: the drain timed out with data still unacknowledged");
    }
    Ok(digest_ok && complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Options, String> {
        Options::parse(&Args::from_vec(list.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn options_parse_and_round_trip_to_the_server() {
        let o = parse(&["--channel", "streaming", "--size", "100", "--loss", "0.01", "--seconds", "2"]).unwrap();
        assert_eq!(o.channel, ChannelKind::Streaming);
        assert_eq!(o.mode, Mode::Both);
        assert!(o.faults().is_some_and(|f| f.loss_ppm == 10_000));
        let s = Options::parse(&Args::from_vec(o.server_args())).unwrap();
        assert_eq!((s.mode, s.channel, s.size, s.loss), (Mode::Server, ChannelKind::Streaming, 100, 0.01));
        assert!(parse(&["--channel", "bogus"]).is_err());
        assert!(parse(&["--size", "8"]).is_err());
        assert!(parse(&["--channel", "unordered", "--size", "2000"]).is_err());
        assert!(parse(&["--loss", "2"]).is_err());
        assert!(parse(&["--server", "--client"]).is_err());
    }
}
