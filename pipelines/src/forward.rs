//! Forwarding between two ports on one worker lcore, in both directions, written by hand on the substrate:
//! the loop behind the forwarding demo, and `bench-forward`'s extra "hand loop" line (not the product
//! path: the benchmark's ratio runs the declared pipeline `pipelines/bench_forward.yaml`).
//!
//! The loop is the plain l2fwd shape: rx a burst on one port, tx it on the other, free what tx refused,
//! and the same the other way; counters are published once per iteration with relaxed stores so the
//! main thread can print live rates without slowing the loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rosette::substrate::{
    launch, Burst, Eal, EalBuilder, MemoryMode, Mempool, MempoolConfig, Port, PortConfig, StopFlag, TscClock,
};
use typenum::U32;

/// Settings of a forwarding run.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The two devices (vdev specs or PCI addresses).
    pub devices: [String; 2],
    /// The main lcore and the worker lcore.
    pub lcores: [u32; 2],
    /// Memory mode of EAL.
    pub memory: MemoryMode,
    /// How long to forward; `None` runs until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// Extra EAL arguments, passed through.
    pub eal_args: Vec<String>,
    /// Mbufs in the pool.
    pub pool_size: u32,
    /// Per-lcore mempool cache.
    pub pool_cache: u32,
    /// Packet capture with `dpdk-dumpcap` (see [`EalBuilder::capture`]); on by default.
    pub capture: bool,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            devices: ["net_null0".to_owned(), "net_null1".to_owned()],
            lcores: [0, 1],
            memory: MemoryMode::Auto,
            duration: Some(Duration::from_secs(10)),
            eal_args: vec!["--log-level=lib.eal:warning".to_owned()],
            pool_size: 16383,
            pool_cache: 512,
            capture: true,
        }
    }
}

/// Counters the worker publishes.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    /// Packets handed to tx and taken.
    pub forwarded: AtomicU64,
    /// Packets tx refused (freed).
    pub dropped: AtomicU64,
    /// Loop iterations that received nothing on either port.
    pub empty_polls: AtomicU64,
}

/// A one-second sample for live output.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// Seconds since forwarding started.
    pub elapsed: Duration,
    /// Forwarding rate over the last interval, in packets per second.
    pub pps: f64,
    /// Packets dropped so far.
    pub dropped: u64,
    /// Packets both ports sent so far, from their statistics (`rte_eth_stats` opackets), read right
    /// after `elapsed` was taken.
    pub port_tx_packets: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Copy)]
pub struct ForwardReport {
    /// Packets forwarded in all.
    pub forwarded: u64,
    /// Packets dropped in all.
    pub dropped: u64,
    /// Time the worker spent forwarding, measured by its own TSC.
    pub elapsed: Duration,
    /// Mbufs still out of the pool after shutdown (0 means nothing leaked).
    pub mbufs_leaked: u64,
}

impl ForwardReport {
    /// Forwarded packets per second, in millions.
    pub fn mpps(&self) -> f64 {
        self.forwarded as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Starts EAL, forwards between the two devices until the duration passes or a stop signal arrives,
/// calling `on_tick` about once a second, then shuts everything down and reports.
pub fn run(config: &ForwardConfig, mut on_tick: impl FnMut(Tick)) -> Result<ForwardReport, rosette::substrate::Error> {
    rosette::substrate::install_signal_handlers()?;
    let eal = EalBuilder::new()
        .lcores(config.lcores)
        .main_lcore(config.lcores[0])
        .vdev(config.devices[0].clone())
        .vdev(config.devices[1].clone())
        .memory(config.memory)
        .capture(config.capture)
        .extra_args(config.eal_args.iter().cloned())
        .start()?;
    crate::run::print_file_prefix(eal.file_prefix());
    let worker_lcore = config.lcores[1];
    let socket = eal.lcore_socket(worker_lcore)?;
    let pool = Mempool::new(
        &eal,
        &MempoolConfig { size: config.pool_size, cache_size: config.pool_cache, socket, ..Default::default() },
    )?;
    let report = forward_on(&eal, &pool, config, worker_lcore, &mut on_tick)?;
    drop(pool);
    Ok(ForwardReport { mbufs_leaked: eal.mbufs_outstanding(), ..report })
}

fn forward_on(
    eal: &Eal,
    pool: &Mempool,
    config: &ForwardConfig,
    worker_lcore: u32,
    on_tick: &mut impl FnMut(Tick),
) -> Result<ForwardReport, rosette::substrate::Error> {
    let pools = std::slice::from_ref(pool);
    let ports = [
        Port::configure(eal, &config.devices[0], &PortConfig::default(), pools)?,
        Port::configure(eal, &config.devices[1], &PortConfig::default(), pools)?,
    ];
    for port in &ports {
        port.start()?;
    }
    let (mut rx0, mut tx0) = (ports[0].rx_queue(0)?, ports[0].tx_queue(0)?);
    let (mut rx1, mut tx1) = (ports[1].rx_queue(0)?, ports[1].tx_queue(0)?);
    let counters = Arc::new(ForwardCounters::default());
    let stop = StopFlag::new();
    let (worker_counters, worker_stop) = (counters.clone(), stop.clone());
    let worker = launch(eal, worker_lcore, move || {
        let clock = TscClock::new();
        let start = clock.now();
        let mut burst = Burst::<U32>::new();
        let (mut forwarded, mut dropped, mut empty) = (0u64, 0u64, 0u64);
        while !worker_stop.is_set() {
            let a = rx0.rx(&mut burst);
            let (sent, lost) = tx1.tx_or_drop(&mut burst);
            forwarded += sent as u64;
            dropped += lost as u64;
            let b = rx1.rx(&mut burst);
            let (sent, lost) = tx0.tx_or_drop(&mut burst);
            forwarded += sent as u64;
            dropped += lost as u64;
            empty += u64::from(a + b == 0);
            worker_counters.forwarded.store(forwarded, Ordering::Relaxed);
            worker_counters.dropped.store(dropped, Ordering::Relaxed);
            worker_counters.empty_polls.store(empty, Ordering::Relaxed);
        }
        (forwarded, dropped, clock.cycles_to_nanos(clock.now() - start))
    })?;

    let started = Instant::now();
    let mut last = (started, 0u64);
    let mut stats_error = None;
    while !stop.is_set() {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if config.duration.is_some_and(|d| now - started >= d) {
            stop.stop();
        }
        if now - last.0 >= Duration::from_secs(1) {
            let forwarded = counters.forwarded.load(Ordering::Relaxed);
            let pps = (forwarded - last.1) as f64 / (now - last.0).as_secs_f64();
            match ports.iter().map(|p| p.stats().map(|s| s.opackets)).sum::<Result<u64, _>>() {
                Ok(port_tx_packets) => on_tick(Tick {
                    elapsed: now - started,
                    pps,
                    dropped: counters.dropped.load(Ordering::Relaxed),
                    port_tx_packets,
                }),
                // Stop the worker before reporting it, never return while it runs.
                Err(e) => {
                    stats_error = Some(e);
                    stop.stop();
                }
            }
            last = (now, forwarded);
        }
    }
    let (forwarded, dropped, nanos) = worker.join().map_err(|_| rosette::substrate::Error::Lcore {
        lcore: worker_lcore,
        detail: "the forwarding loop panicked".to_owned(),
    })?;
    for port in &ports {
        port.stop()?;
    }
    if let Some(e) = stats_error {
        return Err(e);
    }
    Ok(ForwardReport { forwarded, dropped, elapsed: Duration::from_nanos(nanos), mbufs_leaked: 0 })
}
