//! `rosette-perf`: an iperf-like measurement of rosette's channels between two processes over
//! `net_memif`, on the product path: each process runs a pipeline declared in YAML
//! (`pipelines/perf_<channel>.yaml`, the client and the server as two documents: the channel stage and
//! the application stage and a `fault` stage on a memif port), the generated poll loop, the channel
//! stage with its default settings, and the application sending and receiving through the public
//! endpoint: from an application thread of its own (`--app thread`, the default; the endpoint from
//! `<module>::endpoints::perf`) or from the declared application stage inside the worker lcore
//! (`--app lcore`, [`lcore::AppStage`]) — the same code ([`app::ClientApp`], [`app::ServerApp`]) either
//! way. Baselines run in the same invocation (`--compare-kernel`).
//!
//! # Processes and CPUs
//! Each side is its own process with its own EAL and one worker lcore: the client (sender, memif
//! `role=client`) polls on lcore 1, the server (receiver, memif `role=server`, spawned by the client
//! unless `--server`/`--client` is given) on lcore 0, so on a 2-CPU machine each busy-polling worker
//! has a CPU of its own; the application threads (`--app thread`) share them — four busy threads on
//! two CPUs — while `--app lcore` runs two.
//!
//! # Phases (client)
//! 1. Throughput for `--seconds` (0: until Ctrl-C): the application thread sends numbered messages of
//!    `--size` bytes as fast as the endpoint takes them.
//! 2. Drain: the first ping of the ping-pong. On reliable and streaming its echo can only come back
//!    once every message before it was delivered (and so acknowledged) at the server.
//! 3. Ping-pong: `--pings` rounds, one message outstanding, echoed by the server's application.
//! 4. End of stream, over a control socket beside the memif socket (`<socket>.ctl`): the client says
//!    `eos`; the server stops its application, stops polling (`Pipeline::stop`, then `is_finished`),
//!    answers with its report; the client stops polling and closes its port (`Pipeline::join`), then
//!    the control connection; only then the server closes its port. Neither side polls memif rx
//!    while the peer may be leaving (the 22.11 memif PMD can crash there).
//! 5. With `--compare-kernel`: kernel TCP and UDP on loopback, same message size.
//! 6. With `--compare-lossless` (and faults): the same transfer without faults, three rounds of each
//!    interleaved (the first faulty run is the main one), and the ratios of the medians.
//!
//! # Faults
//! `--loss`, `--reorder`, `--duplicate`, `--corrupt` and `--seed` are passed to the declared `fault`
//! stages through the environment variable their `env` param names, [`FAULTS_ENV`] (the runtime
//! override of the fault stage, see `rosette::pipeline::params::stock::FaultParams`); each process
//! injects them on what it transmits.
//!
//! # Figures
//! `msgs_per_s` is messages delivered per second from the first message to the end of the drain
//! (unordered: of the sending phase); `p50_us`/`p99_us` on the result line are round-trip times of the
//! ping-pong, application thread to application thread; `owd_p50_us`/`owd_p99_us` are the one-way
//! latency under load (system clock stamp at send, read at delivery in the other process), also
//! printed on their own line. The digest is
//! computed over the delivered messages in order on the receiver and over the sent ones on the sender
//! ([`stats::Digest`]); `digest=match` on the result line means the two were compared and agree (and no
//! message was bad). Unordered kinds (`unordered`, `raw-memif`) may lose datagrams, so there is no
//! digest to compare: each delivered datagram is checked against the content its sequence number
//! implies, and the result line says `digest=per-message` (`BAD-MESSAGES` when one was wrong or more
//! arrived than were sent). `bad=` counts the messages that failed their check.

pub mod app;
pub mod args;
mod conns;
pub mod forge;
pub mod kernel;
pub mod lcore;
pub mod raw;
pub mod stats;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use rosette::pipeline::{LaunchOptions, Pipeline};
use rosette::substrate::{MemoryMode, SpawnUnpinned as _};

use app::{
    ClientApp, ClientOutcome, ClientPlan, Progress, ReliableWire, ServerApp, ServerReport, StreamWire, UnorderedWire,
    Wire,
};
pub use args::PerfArgs;
use rosette::pipeline::endpoint::EndpointError;
use rosette::pipeline::LaunchError;
use std::net::SocketAddrV4;

/// The pipelines `rosette-perf` runs, one file per channel kind, each with a `client` and a `server`
/// module. Read the generated code with `cargo expand -p pipelines perf::declared`.
pub mod declared {
    /// `perf_reliable.yaml`.
    pub mod reliable {
        rosette_macros::pipeline!("perf_reliable.yaml");
    }
    /// `perf_streaming.yaml`.
    pub mod streaming {
        rosette_macros::pipeline!("perf_streaming.yaml");
    }
    /// `perf_unordered.yaml`.
    pub mod unordered {
        rosette_macros::pipeline!("perf_unordered.yaml");
    }
    /// `perf_reliable_mux.yaml`: `--connections N` on reliable connections.
    pub mod reliable_mux {
        rosette_macros::pipeline!("perf_reliable_mux.yaml");
    }
    /// `perf_reliable_mux_2q.yaml`: `--connections N --lcores 2`.
    pub mod reliable_mux_2q {
        rosette_macros::pipeline!("perf_reliable_mux_2q.yaml");
    }
    /// `perf_streaming_mux.yaml`: `--connections N` on streams.
    pub mod streaming_mux {
        rosette_macros::pipeline!("perf_streaming_mux.yaml");
    }
    /// `perf_raw.yaml`: the `raw-memif` baseline.
    pub mod raw {
        rosette_macros::pipeline!("perf_raw.yaml");
    }
}

/// The environment variable the declared fault stages read their rates from.
pub const FAULTS_ENV: &str = "ROSETTE_PERF_FAULTS";

/// The client's address as the server's pipeline declares it (unordered sends to it).
const SERVER_ADDR: &str = "10.20.0.2:7100";

/// Which channel to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// UDP datagrams: delivered at most once, in any order.
    Unordered,
    /// Messages exactly once, in order.
    Reliable,
    /// An ordered byte stream.
    Streaming,
    /// No channel: the `raw-memif` baseline ([`raw`]), perf messages packed into frames of rosette's
    /// packet shape, nothing else.
    Raw,
}

impl ChannelKind {
    /// Parses `unordered`, `reliable`, `streaming`.
    pub fn parse(s: &str) -> Option<ChannelKind> {
        match s {
            "unordered" => Some(ChannelKind::Unordered),
            "reliable" => Some(ChannelKind::Reliable),
            "streaming" => Some(ChannelKind::Streaming),
            "raw-memif" => Some(ChannelKind::Raw),
            _ => None,
        }
    }

    /// The name used on the command line and in the result line.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Unordered => "unordered",
            ChannelKind::Reliable => "reliable",
            ChannelKind::Streaming => "streaming",
            ChannelKind::Raw => "raw-memif",
        }
    }

    /// Delivers everything in order (the first ping's echo ends the drain).
    pub fn ordered(self) -> bool {
        matches!(self, ChannelKind::Reliable | ChannelKind::Streaming)
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
    /// Run the same transfer without faults too, in interleaved rounds.
    pub compare_lossless: bool,
    /// Which side(s) this process runs.
    pub mode: Mode,
    /// The memif socket path.
    pub socket: PathBuf,
    /// EAL memory mode.
    pub memory: MemoryMode,
    /// Extra EAL arguments.
    pub eal_args: Vec<String>,
    /// Where the application runs.
    pub app: AppMode,
    /// `--connections N`: many connections through one listener (the `conns` module).
    pub connections: Option<usize>,
    /// `--forge-rate R`: forged connection attempts per second at the listener ([`forge`]).
    pub forge_rate: Option<u64>,
    /// `--lcores K` with `--connections`: listener lcores (1 or 2).
    pub lcores: usize,
    /// `--share-cpu`: compare the workers on one CPU with the workers on separate CPUs.
    pub share_cpu: bool,
    /// `--lcore-cpu L@C`: lcores placed on chosen CPUs.
    pub lcore_cpus: Vec<(u32, u32)>,
}

/// Where the application sends and receives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppMode {
    /// Its own thread, through the public endpoint API (what most users do).
    Thread,
    /// The declared application stage inside the worker lcore, through the same endpoint API.
    Lcore,
}

impl AppMode {
    /// The name on the command line and the result line.
    pub fn name(self) -> &'static str {
        match self {
            AppMode::Thread => "thread",
            AppMode::Lcore => "lcore",
        }
    }
}

impl Options {
    /// Checks the command line's combinations; `Err` is a message for the user (`rosette-perf` prints it
    /// as a clap error, exit code 2).
    pub fn parse(args: &PerfArgs) -> Result<Options, String> {
        let channel = args.channel;
        let size = args.size;
        if !(stats::MSG_HEADER_LEN..=app::MAX_SIZE).contains(&size) {
            return Err(format!("--size must be in {}..={}", stats::MSG_HEADER_LEN, app::MAX_SIZE));
        }
        if channel == ChannelKind::Raw && raw::messages_per_frame(size) == 0 {
            return Err(format!(
                "--size for raw-memif must fit one frame's records (<= {})",
                raw::payload_per_frame() - 2
            ));
        }
        if channel == ChannelKind::Unordered && size > 1472 {
            return Err("--size for unordered must fit one UDP datagram in a 1500-byte MTU (<= 1472)".to_owned());
        }
        let prob = |name: &str, p: f64| -> Result<f64, String> {
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(format!("{name} is a probability in 0..1"))
            }
        };
        let mode = match (args.server, args.client) {
            (true, true) => return Err("--server and --client exclude each other".to_owned()),
            (_, true) | (true, _) if args.compare_kernel => {
                return Err(
                    "--compare-kernel runs its baselines in the default mode (without --server/--client)".to_owned()
                )
            }
            (_, true) | (true, _) if args.compare_lossless => {
                return Err(
                    "--compare-lossless runs its rounds in the default mode (without --server/--client)".to_owned()
                )
            }
            (true, false) => Mode::Server,
            (false, true) => Mode::Client,
            (false, false) => Mode::Both,
        };
        let faulty = args.loss + args.reorder + args.duplicate + args.corrupt > 0.0;
        if args.compare_lossless && !faulty {
            return Err(
                "--compare-lossless compares a run with faults (--loss, --reorder, ...) with one without".to_owned()
            );
        }
        let memory = args.memory.map_or(MemoryMode::Auto, MemoryMode::from);
        let socket = args
            .socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/rosette-perf-{}.sock", std::process::id())));
        let seconds = args.seconds;
        if let Some(n) = args.connections {
            if !channel.ordered() {
                return Err("--connections measures reliable or streaming connections".to_owned());
            }
            if channel == ChannelKind::Streaming && (args.lcores.unwrap_or(1) != 1 || args.forge_rate.is_some()) {
                return Err("--lcores 2 and --forge-rate run on reliable connections".to_owned());
            }
            if !(1..=16384).contains(&n) {
                return Err("--connections takes 1..=16384 (the max_connections of perf_reliable_mux.yaml)".to_owned());
            }
            if args.compare_kernel || args.compare_lossless || args.app.as_deref() == Some("lcore") {
                return Err("--connections runs alone, with the application on a thread".to_owned());
            }
        }
        let lcores = args.lcores.unwrap_or(1);
        if args.lcores.is_some() && args.connections.is_none() {
            return Err("--lcores spreads the connections of --connections".to_owned());
        }
        if !(1..=2).contains(&lcores) {
            return Err("--lcores takes 1 or 2 (perf_reliable_mux.yaml and perf_reliable_mux_2q.yaml)".to_owned());
        }
        if lcores == 2 && (args.forge_rate.is_some() || args.connections < Some(2)) {
            return Err("--lcores 2 needs --connections 2 or more, and runs without --forge-rate".to_owned());
        }
        if args.share_cpu && (args.server || args.client || args.compare_kernel || args.compare_lossless) {
            return Err("--share-cpu runs its rounds alone, in the default mode".to_owned());
        }
        if args.share_cpu && (args.forge_rate.is_some() || lcores != 1 || !args.lcore_cpu.is_empty()) {
            return Err("--share-cpu places the single worker of each side itself".to_owned());
        }
        if args.forge_rate.is_some() && args.connections.is_none() {
            return Err("--forge-rate floods the listener of --connections".to_owned());
        }
        Ok(Options {
            channel,
            size,
            seconds,
            baseline_seconds: args.baseline_seconds.unwrap_or(3.0f64.min(seconds.max(0.5))),
            pings: args.pings,
            loss: prob("--loss", args.loss)?,
            reorder: prob("--reorder", args.reorder)?,
            duplicate: prob("--duplicate", args.duplicate)?,
            corrupt: prob("--corrupt", args.corrupt)?,
            seed: args.seed,
            compare_kernel: args.compare_kernel,
            compare_lossless: args.compare_lossless,
            mode,
            socket,
            memory,
            eal_args: args.eal.eal.clone(),
            // The raw baseline has no endpoint: its application is always its stages.
            app: match args.app.as_deref().unwrap_or(if channel == ChannelKind::Raw { "lcore" } else { "thread" }) {
                "thread" => AppMode::Thread,
                "lcore" => AppMode::Lcore,
                other => return Err(format!("--app takes thread or lcore, not {other:?}")),
            },
            connections: args.connections,
            forge_rate: args.forge_rate,
            lcores,
            share_cpu: args.share_cpu,
            lcore_cpus: args.lcore_cpu.clone(),
        })
    }

    /// The fault override for the declared fault stages ([`FAULTS_ENV`]); `None` without faults.
    /// Each side gets its own seed (the server `seed + 1`).
    fn faults(&self, side_seed: u64) -> Option<String> {
        let ppm = |p: f64| (p * 1e6).round() as u32;
        if self.loss + self.reorder + self.duplicate + self.corrupt == 0.0 {
            return None;
        }
        Some(format!(
            "seed={side_seed},loss_ppm={},reorder_ppm={},reorder_delay=200us,duplicate_ppm={},corrupt_ppm={}",
            ppm(self.loss),
            ppm(self.reorder),
            ppm(self.duplicate),
            ppm(self.corrupt)
        ))
    }

    /// The arguments that start one side (`--server` or `--client`) with the same settings.
    fn side_args(&self, side: &str) -> Vec<String> {
        let mut a = vec![
            side.to_owned(),
            format!("--pings={}", self.pings),
            "--channel".to_owned(),
            self.channel.name().to_owned(),
            format!("--size={}", self.size),
            format!("--seconds={}", self.seconds),
            format!("--loss={}", self.loss),
            format!("--reorder={}", self.reorder),
            format!("--duplicate={}", self.duplicate),
            format!("--corrupt={}", self.corrupt),
            format!("--seed={}", self.seed),
            format!("--app={}", self.app.name()),
            "--socket".to_owned(),
            self.socket.display().to_string(),
        ];
        if let Some(n) = self.connections {
            a.push(format!("--connections={n}"));
        }
        if let Some(r) = self.forge_rate {
            a.push(format!("--forge-rate={r}"));
        }
        if self.lcores != 1 {
            a.push(format!("--lcores={}", self.lcores));
        }
        for (lcore, cpu) in &self.lcore_cpus {
            a.push(format!("--lcore-cpu={lcore}@{cpu}"));
        }
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

/// Set by SIGINT/SIGTERM (from the start of `main`, see [`take_over_signals`]): ends the throughput
/// phase (the drain and the end-of-stream handshake still run, so the loops must not stop on the
/// signal themselves).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT and SIGTERM set `INTERRUPTED` instead of stopping the loops, now and after every
/// pipeline launch (which reinstalls the handlers): `rosette-perf`'s `main` calls it first thing, so a
/// Ctrl-C at any moment ends the run through the drain and the end-of-stream handshake, and a second
/// Ctrl-C does the same. Calling it again is harmless.
pub fn take_over_signals() {
    if let Err(e) = rosette::substrate::route_stop_signals(&INTERRUPTED) {
        eprintln!("rosette-perf: {e}");
    }
}

/// Runs `rosette-perf` with `opts`; returns the process exit code.
pub fn run(opts: &Options) -> i32 {
    let server = |opts: &Options| match opts.connections {
        Some(n) => conns::run_server(opts, n),
        None => run_server_process(opts),
    };
    let client = |opts: &Options| match opts.connections {
        Some(n) => conns::run_client(opts, n),
        None => run_client_process(opts),
    };
    match opts.mode {
        Mode::Server => match server(opts) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("rosette-perf server: {e}");
                1
            }
        },
        Mode::Client => match client(opts) {
            Ok(ok) => i32::from(!ok),
            Err(e) => {
                eprintln!("rosette-perf: {e}");
                1
            }
        },
        Mode::Both => {
            // This process starts no EAL of its own: each run is a pair of child processes (which
            // inherit an unpinned CPU set), and the kernel baselines run here on plain threads.
            take_over_signals();
            if opts.share_cpu {
                return match compare_share_cpu(opts) {
                    Ok(lines) => {
                        lines.iter().for_each(|l| println!("{l}"));
                        0
                    }
                    Err(e) => {
                        eprintln!("rosette-perf: {e}");
                        1
                    }
                };
            }
            if opts.forge_rate.is_some() {
                return match conns::compare_forged(opts) {
                    Ok(lines) => {
                        lines.iter().for_each(|l| println!("{l}"));
                        0
                    }
                    Err(e) => {
                        eprintln!("rosette-perf: {e}");
                        1
                    }
                };
            }
            let main = match run_child_pair(opts, Echo::Live) {
                Ok(fields) => fields,
                Err(e) => {
                    eprintln!("rosette-perf: {e}");
                    return 1;
                }
            };
            if opts.compare_lossless {
                match compare_lossless(opts, &main) {
                    Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                    Err(e) => {
                        eprintln!("rosette-perf: {e}");
                        return 1;
                    }
                }
            }
            if !opts.compare_kernel {
                return 0;
            }
            let rate = field::<f64>(&main, "msgs_per_s");
            let rtt50 = field::<f64>(&main, "p50_us");
            match rate.and_then(|rate| Ok((rate, rtt50?))).and_then(|(rate, rtt50)| compare(opts, rate, rtt50)) {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    0
                }
                Err(e) => {
                    eprintln!("rosette-perf: {e}");
                    1
                }
            }
        }
    }
}

fn ctl_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".ctl");
    PathBuf::from(p)
}

fn wait_for_socket(socket: &Path, child: &mut Child) -> Result<(), String> {
    let deadline = StdInstant::now() + Duration::from_secs(20);
    while !socket.exists() || !ctl_path(socket).exists() {
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

/// The declared pipeline's memif device with this run's socket and role.
fn launch_options(opts: &Options, role: &str) -> LaunchOptions {
    let mut o = LaunchOptions::new()
        .device("wire", format!("net_memif0,role={role},socket={},socket-abstract=no", opts.socket.display()))
        .eal_args(["--log-level=lib.eal:warning", "--log-level=pmd.net.memif:warning"])
        .eal_args(opts.eal_args.iter().cloned());
    if opts.memory != MemoryMode::Auto {
        o = o.memory(opts.memory);
    }
    // The server's placement only (`--share-cpu` moves it onto the client's worker CPU).
    if role == "server" {
        for &(lcore, cpu) in &opts.lcore_cpus {
            o = o.lcore_cpu(lcore, cpu);
        }
    }
    o
}

/// Sets (or clears) the fault override before the fault stages are built.
fn set_faults(spec: Option<String>) {
    // The process is single-threaded here: no lcore or application thread runs yet.
    match spec {
        Some(s) => std::env::set_var(FAULTS_ENV, s),
        None => std::env::remove_var(FAULTS_ENV),
    }
}

/// Where this side's application runs, and how to get its outcome.
enum AppRun {
    /// On its own thread (`--app thread`).
    Thread(std::thread::JoinHandle<lcore::Outcome>),
    /// As the declared application stage in the worker lcore (`--app lcore`).
    Lcore,
}

impl AppRun {
    /// Waits for the application's outcome (the server's after [`APP_STOP`] was set).
    fn wait(self, limit: Duration) -> Result<lcore::Outcome, String> {
        match self {
            AppRun::Thread(h) => h.join().map_err(|_| "the application thread panicked".to_owned()),
            AppRun::Lcore => {
                let deadline = StdInstant::now() + limit;
                loop {
                    if let Some(outcome) = lcore::take_outcome() {
                        return outcome;
                    }
                    if StdInstant::now() > deadline {
                        return Err(format!("the application stage did not finish within {limit:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// Set by the server's main thread at end of stream: its application stops.
static APP_STOP: AtomicBool = AtomicBool::new(false);

/// Launches this side's declared pipeline with its application: planned into the lcore's
/// application stage before launch (`--app lcore`), or on a thread of its own with the endpoint
/// from the module's typed accessor (`--app thread`).
fn start_side<W: Wire>(
    opts: &Options,
    server: bool,
    progress: &Arc<Progress>,
    launch: impl FnOnce(&LaunchOptions) -> Result<Pipeline, LaunchError>,
    endpoint: impl FnOnce(Duration) -> Result<W, EndpointError>,
) -> Result<(Pipeline, AppRun), String> {
    let ordered = opts.channel.ordered();
    // An application thread offers up to 1024 messages per corked burst (the lcore stage its own
    // smaller budget).
    let client = ClientPlan { ordered, size: opts.size, seconds: opts.seconds, pings: opts.pings, budget: 1024 };
    let peer = if server { None } else { SERVER_ADDR.parse().ok() };
    let role = if server { "server" } else { "client" };
    if opts.app == AppMode::Lcore || opts.channel == ChannelKind::Raw {
        lcore::plan(if server {
            lcore::Plan::Server { ordered, size: opts.size, stop: &APP_STOP }
        } else {
            lcore::Plan::Client { plan: client, peer, interrupted: &INTERRUPTED, progress: progress.clone() }
        });
        let p = launch(&launch_options(opts, role)).map_err(|e| e.to_string())?;
        crate::run::print_file_prefix(p.file_prefix());
        return Ok((p, AppRun::Lcore));
    }
    let p = launch(&launch_options(opts, role)).map_err(|e| e.to_string())?;
    crate::run::print_file_prefix(p.file_prefix());
    let mut wire = endpoint(Duration::from_secs(30)).map_err(|e| format!("endpoint perf: {e}"))?;
    let progress = progress.clone();
    let app = std::thread::Builder::new().name("perf-app".to_owned()).spawn(move || {
        if server {
            let mut app = ServerApp::new(ordered, client.size, &APP_STOP);
            app::drive(&mut wire, |w, wait| app.poll(w, wait));
            lcore::Outcome::Server(app.into_report())
        } else {
            let mut app = ClientApp::new(client, &INTERRUPTED, progress);
            app::drive(&mut wire, |w, wait| app.poll(w, wait));
            lcore::Outcome::Client(app.into_outcome())
        }
    });
    Ok((p, AppRun::Thread(app.map_err(|e| e.to_string())?)))
}

/// [`start_side`] for the declared pipeline of `opts.channel`.
fn launch_side(opts: &Options, server: bool, progress: &Arc<Progress>) -> Result<(Pipeline, AppRun), String> {
    use declared::{reliable, streaming, unordered};
    let size = opts.size;
    let peer: Option<SocketAddrV4> = SERVER_ADDR.parse().ok();
    match (opts.channel, server) {
        (ChannelKind::Reliable, false) => start_side(opts, server, progress, reliable::client::launch, |t| {
            reliable::client::endpoints::perf(t).map(ReliableWire::new)
        }),
        (ChannelKind::Reliable, true) => start_side(opts, server, progress, reliable::server::launch, |t| {
            reliable::server::endpoints::perf(t).map(ReliableWire::new)
        }),
        (ChannelKind::Streaming, false) => start_side(opts, server, progress, streaming::client::launch, |t| {
            streaming::client::endpoints::perf(t).map(|ep| StreamWire::new(ep, size))
        }),
        (ChannelKind::Streaming, true) => start_side(opts, server, progress, streaming::server::launch, |t| {
            streaming::server::endpoints::perf(t).map(|ep| StreamWire::new(ep, size))
        }),
        (ChannelKind::Unordered, false) => start_side(opts, server, progress, unordered::client::launch, |t| {
            unordered::client::endpoints::perf(t).map(|ep| UnorderedWire::new(ep, peer))
        }),
        (ChannelKind::Unordered, true) => start_side(opts, server, progress, unordered::server::launch, |t| {
            unordered::server::endpoints::perf(t).map(|ep| UnorderedWire::new(ep, None))
        }),
        // No endpoint: the stages are the application (planned into them by `start_side`).
        (ChannelKind::Raw, false) => start_side(opts, server, progress, declared::raw::client::launch, |_| {
            Err::<ReliableWire, _>(EndpointError::NotFound)
        }),
        (ChannelKind::Raw, true) => start_side(opts, server, progress, declared::raw::server::launch, |_| {
            Err::<ReliableWire, _>(EndpointError::NotFound)
        }),
    }
}

/// Stops polling and waits until every loop returned (the memif hazard: no rx poll while the peer
/// may leave).
fn stop_polling(p: &Pipeline) {
    p.stop();
    while !p.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Prints the connection's loss-recovery counters and path view (reliable, streaming): what a
/// lossy run cost and what the congestion controller saw.
fn print_connection(p: &Pipeline, who: &str) {
    use rosette::pipeline::channels::ChannelReport;
    let us = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e6));
    // The channel is the second stage of the one declared poll, on whichever lcore this side uses.
    for lcore in 0..2 {
        let Some(report) = p.stage_report::<ChannelReport>(lcore, 1) else { continue };
        let (Some(c), Some(path)) = (report.connection, report.path) else { continue };
        println!(
            "{who} connection: congestion={:?} cwnd={} srtt_us={} min_rtt_us={} rto_us={} sent={} acked={} \
             retransmits={} rack_lost={} tail_probes={} spurious={} timeouts={} spurious_timeouts={} send_refused={}",
            path.congestion,
            path.cwnd,
            us(path.srtt),
            us(path.min_rtt),
            us(Some(path.rto)),
            c.tx_packets,
            c.acked,
            c.retransmits,
            c.fast_lost,
            c.tail_probes,
            c.spurious_retransmits,
            c.timeouts,
            c.spurious_timeouts,
            report.stage.send_refused
        );
    }
}

/// Closes the port and checks the pools: true when every mbuf came back.
fn close(p: Pipeline, who: &str) -> bool {
    print_connection(&p, who);
    match p.join() {
        Ok(report) if report.mbufs_leaked == 0 => {
            // What the declared stages dropped (the fault stage's losses show that faults were applied).
            let drops: Vec<String> = report
                .lcores
                .iter()
                .flat_map(|l| l.stage_drops.iter())
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| format!("{name}={n}"))
                .collect();
            if !drops.is_empty() {
                println!("{who} stage drops: {}", drops.join(" "));
            }
            // Frames the port's tx queue refused (freed by the loop): a channel sees them as loss.
            let tx_dropped: u64 = report.lcores.iter().map(|l| l.tx_dropped).sum();
            println!("{who} tx_dropped={tx_dropped}");
            true
        }
        Ok(report) => {
            eprintln!("rosette-perf {who}: {} mbufs not returned to their pools", report.mbufs_leaked);
            false
        }
        Err(e) => {
            eprintln!("rosette-perf {who}: {e}");
            false
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The server process: receive until end of stream, report, wait for the client to leave.
fn run_server_process(opts: &Options) -> Result<bool, String> {
    let ctl = ctl_path(&opts.socket);
    let _ = std::fs::remove_file(&ctl);
    let listener = UnixListener::bind(&ctl).map_err(|e| format!("control socket {}: {e}", ctl.display()))?;
    set_faults(opts.faults(opts.seed.wrapping_add(1)));
    let (pipeline, app) = launch_side(opts, true, &Arc::new(Progress::default()))?;
    take_over_signals();
    let server_report = |outcome: Result<lcore::Outcome, String>| match outcome {
        Ok(lcore::Outcome::Server(r)) => Ok(r),
        Ok(lcore::Outcome::Client(_)) => Err("the server ran a client application".to_owned()),
        Err(e) => Err(e),
    };
    // The client connects within seconds; give up (and shut down clean) after a minute or on a signal,
    // so that a server whose client died never polls on forever.
    let conn = accept_within(&listener, Duration::from_secs(60));
    let _ = std::fs::remove_file(&ctl);
    let mut ok = true;
    let report = match conn {
        Ok(mut conn) => {
            let mut line = String::new();
            let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
            let _ = reader.read_line(&mut line);
            APP_STOP.store(true, Ordering::Relaxed);
            let report = server_report(app.wait(Duration::from_secs(30)));
            // Stop polling before the client may close its port, then answer.
            stop_polling(&pipeline);
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    let _ = writeln!(conn, "report error={}", e.replace(' ', "_"));
                    return Err(e);
                }
            };
            let _ = writeln!(
                conn,
                "report delivered={} bad={} duplicates={} digest={:016x} owd_p50_ns={} owd_p99_ns={} error={}",
                report.delivered,
                report.bad,
                report.duplicates,
                report.digest,
                report.owd.quantile(0.5),
                report.owd.quantile(0.99),
                report.error.as_deref().unwrap_or("none").replace(' ', "_")
            );
            // The client closes the control connection after its port: then ours may go.
            let mut rest = String::new();
            while reader.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
                rest.clear();
            }
            report
        }
        Err(e) => {
            ok = false;
            eprintln!("rosette-perf server: control socket: {e}");
            APP_STOP.store(true, Ordering::Relaxed);
            let report = server_report(app.wait(Duration::from_secs(30)));
            stop_polling(&pipeline);
            report?
        }
    };
    print_server(&report);
    Ok(close(pipeline, "server") && ok && report.error.is_none())
}

fn accept_within(listener: &UnixListener, limit: Duration) -> std::io::Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let deadline = StdInstant::now() + limit;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)?;
                return Ok(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if INTERRUPTED.load(Ordering::Relaxed) || StdInstant::now() > deadline {
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no client connected"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn print_server(r: &ServerReport) {
    println!(
        "server: delivered={} bad={} duplicates={} owd_p50_us={:.1} owd_p99_us={:.1}",
        r.delivered,
        r.bad,
        r.duplicates,
        us(r.owd.quantile(0.5)),
        us(r.owd.quantile(0.99))
    );
    if let Some(e) = &r.error {
        eprintln!("rosette-perf server: {e}");
    }
}

/// The server's answer to `eos`.
#[derive(Debug, Default)]
struct PeerReport {
    delivered: u64,
    bad: u64,
    duplicates: u64,
    digest: u64,
    owd_p50_ns: u64,
    owd_p99_ns: u64,
    error: Option<String>,
}

/// The `key=value` fields of a server's `report ...` line; `None` for any other line or a field
/// without `=`.
fn report_fields(line: &str) -> Option<Vec<(&str, &str)>> {
    let mut fields = line.split_whitespace();
    if fields.next() != Some("report") {
        return None;
    }
    fields.map(|f| f.split_once('=')).collect()
}

fn parse_report(line: &str) -> Option<PeerReport> {
    let mut r = PeerReport::default();
    for (k, v) in report_fields(line)? {
        match k {
            "delivered" => r.delivered = v.parse().ok()?,
            "bad" => r.bad = v.parse().ok()?,
            "duplicates" => r.duplicates = v.parse().ok()?,
            "digest" => r.digest = u64::from_str_radix(v, 16).ok()?,
            "owd_p50_ns" => r.owd_p50_ns = v.parse().ok()?,
            "owd_p99_ns" => r.owd_p99_ns = v.parse().ok()?,
            "error" if v != "none" => r.error = Some(v.replace('_', " ")),
            _ => {}
        }
    }
    Some(r)
}

/// The client's control connection to the server (`<socket>.ctl`), once the server's memif socket is
/// there too (the server binds the control socket before it launches its pipeline).
fn connect_control(opts: &Options) -> Result<UnixStream, String> {
    let ctl_file = ctl_path(&opts.socket);
    let deadline = StdInstant::now() + Duration::from_secs(20);
    let ctl = loop {
        match UnixStream::connect(&ctl_file) {
            Ok(s) => break s,
            Err(e) if StdInstant::now() > deadline => {
                return Err(format!("control socket {} (is the server running?): {e}", ctl_file.display()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    while !opts.socket.exists() {
        if StdInstant::now() > deadline {
            return Err(format!("the server never opened {}", opts.socket.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(ctl)
}

/// The client process: measure, print the progress, the baselines and the result. `Ok(true)` when the
/// result is good (digest matches, and for reliable/streaming everything was delivered).
fn run_client_process(opts: &Options) -> Result<bool, String> {
    let mut ctl = connect_control(opts)?;
    set_faults(opts.faults(opts.seed));
    let progress = Arc::new(Progress::default());
    let (pipeline, app) = launch_side(opts, false, &progress)?;
    take_over_signals();
    println!(
        "rosette-perf: channel={} size={} seconds={} app={} over net_memif ({}), pipeline perf_{}.yaml: client worker lcore 1, server worker lcore 0",
        opts.channel.name(),
        opts.size,
        opts.seconds,
        opts.app.name(),
        opts.socket.display(),
        opts.channel.name()
    );
    // Live progress, once a second.
    let t0 = StdInstant::now();
    let mut last = 0u64;
    let mut next = t0 + Duration::from_secs(1);
    while progress.phase.load(Ordering::Relaxed) < 2 {
        if let AppRun::Thread(h) = &app {
            if h.is_finished() {
                break;
            }
        }
        if pipeline.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if StdInstant::now() < next {
            continue;
        }
        next += Duration::from_secs(1);
        let sent = progress.sent.load(Ordering::Relaxed);
        let phase = match progress.phase.load(Ordering::Relaxed) {
            0 => "throughput",
            1 => "drain+ping-pong",
            _ => "done",
        };
        let packets: u64 = pipeline.stats().iter().map(|l| l.tx_packets).sum();
        println!(
            "[{:>3.0}s] {:<16} total={:<11} per_s={:<10} tx_packets={packets}",
            t0.elapsed().as_secs_f64(),
            phase,
            sent,
            sent - last
        );
        last = sent;
    }
    let out = match app.wait(Duration::from_secs(5)) {
        Ok(lcore::Outcome::Client(out)) => out,
        Ok(lcore::Outcome::Server(_)) => return Err("the client ran a server application".to_owned()),
        Err(e) => return Err(e),
    };
    // End of stream: the server stops polling and reports; then we stop polling and close, then
    // close the control connection (the server closes its port after that).
    let _ = writeln!(ctl, "eos");
    let mut line = String::new();
    let _ = BufReader::new(ctl.try_clone().map_err(|e| e.to_string())?).read_line(&mut line);
    stop_polling(&pipeline);
    let clean = close(pipeline, "client");
    drop(ctl);
    let ok = report(opts, &out, parse_report(&line))?;
    Ok(ok && clean)
}

/// Prints the baselines, the result line and the ratios; true when the result is good.
fn report(opts: &Options, out: &ClientOutcome, r: Option<PeerReport>) -> Result<bool, String> {
    if let Some(e) = &out.error {
        eprintln!("rosette-perf: {e}");
    }
    let Some(r) = r else {
        return Err("the server never answered end of stream (no report)".to_owned());
    };
    if let Some(e) = &r.error {
        eprintln!("rosette-perf server: {e}");
    }
    let ordered = opts.channel.ordered();
    // Ordered kinds compare the digests of the whole transfer. Unordered kinds (unordered, raw-memif) may
    // lose datagrams, so no digest can be compared: each delivered message was checked against the
    // content its sequence number implies, and the word says that (`per-message`), not `match`.
    let digest_ok = if ordered { r.digest == out.digest && r.bad == 0 } else { r.bad == 0 && r.delivered <= out.sent };
    let digest_word = match (ordered, digest_ok) {
        (true, true) => "match",
        (true, false) => "MISMATCH",
        (false, true) => "per-message",
        (false, false) => "BAD-MESSAGES",
    };
    let complete = !ordered || (r.delivered == out.sent && !out.drain_timed_out);
    let rate = r.delivered as f64 / out.elapsed.max(1e-9);
    println!(
        "one-way latency under load: p50_us={:.1} p99_us={:.1}{}{}",
        us(r.owd_p50_ns),
        us(r.owd_p99_ns),
        if r.duplicates > 0 { format!(" duplicates_dropped={}", r.duplicates) } else { String::new() },
        if out.pings_lost > 0 { format!(" pings_lost={}", out.pings_lost) } else { String::new() }
    );
    println!(
        "channel={} sent={} delivered={} bad={} digest={} msgs_per_s={:.0} p50_us={:.1} p99_us={:.1} app={} owd_p50_us={:.1} owd_p99_us={:.1}",
        opts.channel.name(),
        out.sent,
        r.delivered,
        r.bad,
        digest_word,
        rate,
        us(out.rtt.quantile(0.5)),
        us(out.rtt.quantile(0.99)),
        opts.app.name(),
        us(r.owd_p50_ns),
        us(r.owd_p99_ns)
    );
    if out.drain_timed_out {
        eprintln!("rosette-perf: the drain timed out with data still unacknowledged");
    }
    Ok(digest_ok && complete && out.error.is_none() && r.error.is_none())
}

/// Extra ping-pong rounds of `--compare-kernel`, each a short run of rosette and then of raw memif
/// (after the main run and the raw throughput run, which are the first round).
const RTT_ROUNDS: usize = 3;

/// The baselines of `--compare-kernel`, run after rosette's own run (`rate`: its messages per second,
/// `rtt50`: its ping-pong p50 in ns). Prints each baseline and returns the ratio lines.
fn compare(opts: &Options, rate: f64, rtt50_us: f64) -> Result<Vec<String>, String> {
    let size = opts.size;
    let mut lines = Vec::new();
    let payload = |msgs_per_s: f64| msgs_per_s * size as f64;
    // raw-memif: the same frames with no protocol, in its own pair of processes (this process's EAL
    // is taken), then the ping-pong rounds, rosette and raw alternating.
    let raw_ok = raw::messages_per_frame(size) > 0;
    let mut rosette_rtts = vec![rtt50_us];
    let mut raw_rtts = Vec::new();
    if raw_ok {
        let raw_opts = baseline_options(opts, ChannelKind::Raw, opts.baseline_seconds);
        let f = run_child_pair(&raw_opts, Echo::Quiet)?;
        let raw_rate: f64 = field(&f, "msgs_per_s")?;
        raw_rtts.push(field(&f, "p50_us")?);
        let per_frame = raw::messages_per_frame(size);
        println!(
            "baseline raw-memif: msgs_per_s={raw_rate:.0} payload_MB_per_s={:.1} ({per_frame} messages per {}-byte frame, no protocol) rtt_p50_us={:.1}",
            payload(raw_rate) / 1e6,
            raw::HEADER_ZONE + per_frame * rosette::wire::packed::record_len(size),
            raw_rtts[0]
        );
        for _ in 1..RTT_ROUNDS {
            let f = run_child_pair(&baseline_options(opts, opts.channel, 0.05), Echo::Quiet)?;
            rosette_rtts.push(field(&f, "p50_us")?);
            let f = run_child_pair(&baseline_options(opts, ChannelKind::Raw, 0.05), Echo::Quiet)?;
            raw_rtts.push(field(&f, "p50_us")?);
        }
        println!(
            "round trips, interleaved rounds (p50 us): rosette {} | raw-memif {}",
            rosette_rtts.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" "),
            raw_rtts.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" ")
        );
        lines.push(format!("ratio rosette/raw-memif: {:.2}", rate / raw_rate.max(1e-9)));
        lines.push(format!("rtt p50 rosette/raw-memif: {:.2}", median(&rosette_rtts) / median(&raw_rtts).max(1e-9)));
    } else {
        println!("baseline raw-memif: skipped ({size}-byte messages do not fit one frame's records)");
    }
    let tcp = kernel::tcp(size, opts.baseline_seconds, opts.pings).map_err(|e| format!("kernel TCP: {e}"))?;
    println!(
        "baseline kernel-tcp: msgs_per_s={:.0} payload_MB_per_s={:.1} (one write per message, Nagle on) rtt_p50_us={:.1} rtt_p99_us={:.1}",
        tcp.msgs_per_s,
        payload(tcp.msgs_per_s) / 1e6,
        us(tcp.rtt.quantile(0.5)),
        us(tcp.rtt.quantile(0.99))
    );
    let batched = kernel::tcp_batched(size, opts.baseline_seconds).map_err(|e| format!("kernel TCP batched: {e}"))?;
    println!(
        "baseline kernel-tcp-batched: msgs_per_s={:.0} payload_MB_per_s={:.1} ({} messages per 64 KiB write)",
        batched.msgs_per_s,
        payload(batched.msgs_per_s) / 1e6,
        kernel::messages_per_write(size)
    );
    // The largest UDP payload over IPv4 is 65,507 bytes.
    let udp = if size <= 65_507 {
        let udp = kernel::udp(size, opts.baseline_seconds, opts.pings).map_err(|e| format!("kernel UDP: {e}"))?;
        println!(
            "baseline kernel-udp: msgs_per_s={:.0} (received {} of {}) rtt_p50_us={:.1} rtt_p99_us={:.1}",
            udp.msgs_per_s,
            udp.received,
            udp.sent,
            us(udp.rtt.quantile(0.5)),
            us(udp.rtt.quantile(0.99))
        );
        Some(udp)
    } else {
        println!("baseline kernel-udp: skipped ({size}-byte messages exceed a UDP datagram)");
        None
    };
    println!("rosette: msgs_per_s={rate:.0} payload_MB_per_s={:.1}", payload(rate) / 1e6);
    lines.push(format!("ratio rosette/kernel-tcp: {:.2}", rate / tcp.msgs_per_s.max(1e-9)));
    lines.push(format!("ratio rosette/kernel-tcp-batched: {:.2}", rate / batched.msgs_per_s.max(1e-9)));
    if let Some(udp) = udp {
        lines.push(format!("ratio rosette/kernel-udp: {:.2}", rate / udp.msgs_per_s.max(1e-9)));
    }
    lines.push(format!("rtt p50 rosette/kernel-tcp: {:.2}", rtt50_us * 1e3 / tcp.rtt.quantile(0.5).max(1) as f64));
    Ok(lines)
}

/// Rounds of `--compare-lossless`, the main run (with faults) being the first faulty one.
const LOSSLESS_ROUNDS: usize = 3;

/// `--compare-lossless`: the same transfer without faults, in rounds interleaved with more runs with
/// faults (the first round's faulty run is the main run, `main`); returns the ratio lines.
fn compare_lossless(opts: &Options, main: &[(String, String)]) -> Result<Vec<String>, String> {
    let sample = |f: &[(String, String)]| -> Result<(f64, f64), String> {
        Ok((field(f, "msgs_per_s")?, field(f, "owd_p99_us")?))
    };
    let lossless_opts = Options { seconds: opts.seconds, ..baseline_options(opts, opts.channel, opts.seconds) };
    let faulty_opts = Options { compare_lossless: false, compare_kernel: false, ..lossless_opts.clone() };
    let faulty_opts = Options {
        loss: opts.loss,
        reorder: opts.reorder,
        duplicate: opts.duplicate,
        corrupt: opts.corrupt,
        ..faulty_opts
    };
    let (mut faulty, mut lossless) = (vec![sample(main)?], Vec::new());
    for round in 0..LOSSLESS_ROUNDS {
        // Alternate which goes first, so a drift of the machine favours neither.
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for with_faults in order {
            if round == 0 && with_faults {
                continue;
            }
            let f = run_child_pair(if with_faults { &faulty_opts } else { &lossless_opts }, Echo::Quiet)?;
            if with_faults {
                faulty.push(sample(&f)?)
            } else {
                lossless.push(sample(&f)?)
            }
        }
    }
    let list = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64, scale: f64| {
        v.iter().map(|s| format!("{:.1}", pick(s) / scale)).collect::<Vec<_>>().join(" ")
    };
    println!(
        "lossless vs faults, interleaved rounds: msgs_per_s (M) lossless {} | faults {}; owd_p99_us lossless {} | faults {}",
        list(&lossless, |s| s.0, 1e6),
        list(&faulty, |s| s.0, 1e6),
        list(&lossless, |s| s.1, 1.0),
        list(&faulty, |s| s.1, 1.0)
    );
    let med = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| median(&v.iter().map(pick).collect::<Vec<_>>());
    Ok(vec![
        format!("ratio faults/lossless msgs_per_s: {:.2}", med(&faulty, |s| s.0) / med(&lossless, |s| s.0).max(1e-9)),
        format!("ratio faults/lossless owd_p99: {:.2}", med(&faulty, |s| s.1) / med(&lossless, |s| s.1).max(1e-9)),
    ])
}

/// Rounds of `--share-cpu`, each placement once per round.
const SHARE_CPU_ROUNDS: usize = 3;

/// `--share-cpu`: the same transfer with the workers on separate CPUs and on one CPU, interleaved
/// (which goes first alternates), then the ratio of the median rates, shared over separate.
fn compare_share_cpu(opts: &Options) -> Result<Vec<String>, String> {
    // Separate: the declared placement (client worker lcore 1, server worker lcore 0). Shared: the
    // server's lcores swapped, so its worker spins on CPU 1 with the client's, and its main thread
    // (and application thread) on CPU 0 with the client's.
    let separate = Options { share_cpu: false, lcore_cpus: Vec::new(), ..opts.clone() };
    let shared = Options { lcore_cpus: vec![(0, 1), (1, 0)], ..separate.clone() };
    let (mut rates, mut rates_shared) = (Vec::new(), Vec::new());
    for round in 0..SHARE_CPU_ROUNDS {
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for share in order {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err("interrupted".to_owned());
            }
            let f = run_child_pair(if share { &shared } else { &separate }, Echo::Quiet)?;
            let rate = field::<f64>(&f, "msgs_per_s")?;
            println!(
                "round {} {}: msgs_per_s={rate:.0} digest={}",
                round + 1,
                if share { "shared CPU  " } else { "separate CPUs" },
                f.iter().find(|(k, _)| k == "digest").map_or("?", |(_, v)| v.as_str())
            );
            if share {
                rates_shared.push(rate)
            } else {
                rates.push(rate)
            }
        }
    }
    let what = match opts.connections {
        Some(n) => format!("{} x{n} connections", opts.channel.name()),
        None => opts.channel.name().to_owned(),
    };
    Ok(vec![
        format!(
            "{what} size={}: msgs_per_s median separate CPUs {:.0}, shared CPU {:.0}",
            opts.size,
            median(&rates),
            median(&rates_shared)
        ),
        format!("ratio shared/separate msgs_per_s: {:.3}", median(&rates_shared) / median(&rates).max(1e-9)),
    ])
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn field<T: std::str::FromStr>(fields: &[(String, String)], key: &str) -> Result<T, String> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| format!("a baseline's result line has no {key}="))
}

/// `opts` for a baseline or an extra round: `channel` for `seconds`, no faults, no baselines, its own
/// memif socket.
fn baseline_options(opts: &Options, channel: ChannelKind, seconds: f64) -> Options {
    let mut socket = opts.socket.as_os_str().to_owned();
    socket.push(format!("-{}", channel.name()));
    Options {
        channel,
        seconds,
        loss: 0.0,
        reorder: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        compare_kernel: false,
        compare_lossless: false,
        mode: Mode::Both,
        socket: PathBuf::from(socket),
        app: if channel == ChannelKind::Raw { AppMode::Lcore } else { opts.app },
        ..opts.clone()
    }
}

/// Whether a child pair's output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// The main run: both children's output as it comes.
    Live,
    /// A baseline or an extra round: only the result is used.
    Quiet,
}

/// Runs `opts` as two child processes (the server, then the client, each in its own process group)
/// and returns the fields of the client's result line; an interrupt (Ctrl-C) of this process is
/// passed on to the client, which then ends its run with the drain and the end-of-stream handshake.
fn run_child_pair(opts: &Options, echo: Echo) -> Result<Vec<(String, String)>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let _ = std::fs::remove_file(&opts.socket);
    let _ = std::fs::remove_file(ctl_path(&opts.socket));
    let out = || if echo == Echo::Live { Stdio::inherit() } else { Stdio::null() };
    let mut server = Command::new(&exe)
        .unpinned()
        .args(opts.side_args("--server"))
        .stdin(Stdio::null())
        .stdout(out())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the server process: {e}"))?;
    wait_for_socket(&opts.socket, &mut server)?;
    let client = Command::new(&exe)
        .unpinned()
        .args(opts.side_args("--client"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            let _ = server.kill();
            let _ = server.wait();
            return Err(format!("cannot start the client process: {e}"));
        }
    };
    let stdout = client.stdout.take().map(BufReader::new);
    // The client prints its first line once its pipeline runs, long after it routed its signals
    // (`take_over_signals`, first thing in main): from then on a forwarded SIGINT cannot be lost.
    let client_ready = Arc::new(AtomicBool::new(false));
    let ready = client_ready.clone();
    let reader = std::thread::spawn(move || {
        let mut result = None;
        for line in stdout.into_iter().flat_map(|r| r.lines().map_while(Result::ok)) {
            ready.store(true, Ordering::Release);
            if echo == Echo::Live {
                println!("{line}");
            }
            if line.starts_with("channel=") {
                result = Some(line);
            }
        }
        result
    });
    // An interrupt (each Ctrl-C, or one before the client was ready) is passed on to the client once
    // it is ready, and again every second until it exits: the client ends its run with the drain
    // and the end-of-stream handshake, and a repeated SIGINT only sets its flag again.
    let mut forwarded: Option<(u32, StdInstant)> = None;
    let status = loop {
        match client.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if INTERRUPTED.load(Ordering::Relaxed) && client_ready.load(Ordering::Acquire) {
            let signals = rosette::substrate::stop_signals();
            let due = forwarded.is_none_or(|(seen, at)| seen != signals || at.elapsed() >= Duration::from_secs(1));
            if due {
                rosette::substrate::interrupt_process(client.id());
                forwarded = Some((signals, StdInstant::now()));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The client is gone; if it died before its end-of-stream handshake, an interrupt still ends the
    // server's run (it stops waiting for a client).
    if INTERRUPTED.load(Ordering::Relaxed) {
        rosette::substrate::interrupt_process(server.id());
    }
    let server_ok = wait_child(&mut server, Duration::from_secs(30));
    let _ = std::fs::remove_file(&opts.socket);
    let _ = std::fs::remove_file(ctl_path(&opts.socket));
    let line = reader.join().ok().flatten();
    let what = opts.channel.name();
    let Some(line) = line else { return Err(format!("the {what} run printed no result line")) };
    if !status.is_some_and(|s| s.success()) || !server_ok {
        return Err(format!("the {what} run failed: {line}"));
    }
    Ok(line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(list: &[&str]) -> Result<Options, String> {
        let args = std::iter::once("rosette-perf").chain(list.iter().copied());
        Options::parse(&PerfArgs::try_parse_from(args).map_err(|e| e.to_string())?)
    }

    #[test]
    fn options_parse_and_round_trip_to_the_server() {
        let o = parse(&["--channel", "streaming", "--size", "100", "--loss", "0.01", "--seconds", "2"]).unwrap();
        assert_eq!(o.channel, ChannelKind::Streaming);
        assert_eq!(o.mode, Mode::Both);
        assert!(o.faults(1).is_some_and(|f| f.contains("loss_ppm=10000")));
        assert!(parse(&["--app", "lcore"]).is_ok_and(|o| o.app == AppMode::Lcore));
        assert!(parse(&["--app", "fiber"]).is_err());
        let side = o.side_args("--server");
        let s = parse(&side.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!((s.mode, s.channel, s.size, s.loss), (Mode::Server, ChannelKind::Streaming, 100, 0.01));
        assert!(parse(&["--channel", "bogus"]).is_err());
        assert!(parse(&["--size", "8"]).is_err());
        assert!(parse(&["--channel", "unordered", "--size", "2000"]).is_err());
        assert!(parse(&["--loss", "2"]).is_err());
        assert!(parse(&["--server", "--client"]).is_err());
    }
}
