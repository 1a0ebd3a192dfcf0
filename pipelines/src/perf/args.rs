//! `rosette-perf`'s command line (clap): what each option means; [`super::Options::parse`] checks the
//! combinations and turns it into [`super::Options`].

use std::path::PathBuf;

use clap::Parser;

use super::ChannelKind;
use crate::cli::{EalPassthrough, MemoryArg};

/// An iperf-like tool for rosette's channels over net_memif between two processes, with kernel TCP/UDP
/// and raw memif baselines.
///
/// Without --server/--client it spawns the server side as a child process over net_memif and runs the
/// client. The last line is the result: `channel=… sent=… delivered=… bad=… digest=…` (`digest=match`:
/// the whole transfer's digests compared equal; unordered kinds: `digest=per-message`, each datagram checked).
#[derive(Debug, Clone, Parser)]
#[command(name = "rosette-perf")]
pub struct PerfArgs {
    /// Channel under test: unordered, reliable, streaming, or raw-memif (the baseline without a channel).
    #[arg(long, value_name = "KIND", default_value = "reliable", value_parser = parse_channel)]
    pub channel: ChannelKind,
    /// Message size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Length of the throughput phase in seconds (0 = until Ctrl-C).
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub seconds: f64,
    /// Length of each baseline's throughput phase with --compare-kernel [default: min(3, --seconds)].
    #[arg(long, value_name = "N")]
    pub baseline_seconds: Option<f64>,
    /// Ping-pong rounds of the latency phase.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub pings: u32,
    /// Probability (0..1) that the fault stages drop a packet.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub loss: f64,
    /// Probability (0..1) that the fault stages delay a packet behind later ones.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub reorder: f64,
    /// Probability (0..1) that the fault stages send a packet twice.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub duplicate: f64,
    /// Probability (0..1) that the fault stages flip a bit of a packet.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub corrupt: f64,
    /// Seed of the fault injector (the server uses seed + 1).
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Also runs the baselines (kernel TCP/UDP, raw memif) in the same run and prints the ratios.
    #[arg(long)]
    pub compare_kernel: bool,
    /// With faults (--loss ...): also runs the same transfer without faults, in interleaved rounds
    /// (3 of each), and prints the ratios of the medians: messages per second and one-way p99
    /// latency under load, faults over lossless.
    #[arg(long)]
    pub compare_lossless: bool,
    /// Where the application runs: `thread` (its own thread, through the endpoint API) or `lcore` (the
    /// declared application stage on the worker lcore) [default: thread; lcore for raw-memif].
    #[arg(long, value_name = "WHERE", value_parser = ["thread", "lcore"])]
    pub app: Option<String>,
    /// Many connections through one listener: the client opens N reliable connections (the
    /// `reliable_mux` stages of perf_reliable_mux.yaml), sends on all of them round-robin, and checks
    /// every connection's digest; the result line gains `connections=N`, the cost per message and
    /// the resident memory per idle connection.
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// With --connections: forged connection attempts per second at the listener while the genuine
    /// connections transfer (well-formed Syns from a spoofed host, and data with guessed cookies).
    /// Runs the transfer without and with the flood, in interleaved rounds (2 of each), and prints
    /// the ratio of the median rates, flooded over undisturbed.
    #[arg(long, value_name = "R")]
    pub forge_rate: Option<u64>,
    /// With --connections: listener lcores, 1 or 2 (perf_reliable_mux_2q.yaml: two queue pairs,
    /// one listener per server lcore, the client's dialers on the queue their hash picks).
    #[arg(long, value_name = "K")]
    pub lcores: Option<usize>,
    /// Measures the cost of two processes whose workers share one CPU: runs the same transfer with the
    /// workers on separate CPUs (the declared placement: client worker lcore 1 on CPU 1, server worker
    /// lcore 0 on CPU 0) and with both workers on CPU 1 (the server's lcores swapped with
    /// `--lcore-cpu 0@1 --lcore-cpu 1@0`: what two processes that both declare their worker on lcore 1
    /// get), in interleaved rounds (3 of each), and prints the ratio of the median rates,
    /// shared over separate (messages per second of the same size on both sides).
    #[arg(long)]
    pub share_cpu: bool,
    /// Runs lcore L on CPU C (EAL's `--lcores L@C`), e.g. `--lcore-cpu 0@1`; repeatable.
    #[arg(long, value_name = "L@C", value_parser = parse_lcore_cpu)]
    pub lcore_cpu: Vec<(u32, u32)>,
    /// Runs only the server (receiver) side.
    #[arg(long, conflicts_with = "client")]
    pub server: bool,
    /// Runs only the client (sender) side; the server must be running.
    #[arg(long)]
    pub client: bool,
    /// The memif socket path [default: /tmp/rosette-perf-PID.sock, PID this process's id].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Where DPDK's memory comes from [default: auto].
    #[arg(long, value_enum, value_name = "MODE")]
    pub memory: Option<MemoryArg>,
    /// EAL arguments (after `--`).
    #[command(flatten)]
    pub eal: EalPassthrough,
}

fn parse_lcore_cpu(text: &str) -> Result<(u32, u32), String> {
    let (l, c) = text.split_once('@').ok_or("expected LCORE@CPU, e.g. 0@1")?;
    Ok((
        l.parse().map_err(|_| format!("lcore `{l}` is not a number"))?,
        c.parse().map_err(|_| format!("CPU `{c}` is not a number"))?,
    ))
}

fn parse_channel(text: &str) -> Result<ChannelKind, String> {
    ChannelKind::parse(text).ok_or_else(|| "expected unordered, reliable, streaming or raw-memif".to_owned())
}
