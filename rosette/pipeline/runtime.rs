//! Launch support for generated pipelines: from a static [`PipelineSpec`] (emitted by the macro) to a
//! running [`Pipeline`] — EAL started, one mempool per port and NUMA socket (each rx queue drawing from
//! the pool on its poller's socket), ports configured and started, rings created on their consumer's
//! socket, and one loop launched per worker lcore with the queue and ring handles it owns ([`LcoreIo`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::substrate::placement::{self, RxAssignment};
use crate::substrate::{
    self, launch, mbuf_ring, telemetry, Eal, EalBuilder, LcoreJoin, MbufConsumer, MbufProducer, MemoryMode, Mempool,
    MempoolConfig, Port, PortConfig, PortStats, RingMode, RssMode, RxQueue, StopFlag, TscClock, TxQueue,
};

use super::stats::{LcoreStats, LcoreStatsSnapshot};
use super::{Context, StageReport};

/// EAL settings of a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct EalSpec {
    /// Memory mode.
    pub memory: MemoryMode,
    /// Memory to reserve, MiB.
    pub memory_mb: Option<u32>,
    /// Every lcore EAL may use, main included.
    pub lcores: &'static [u32],
    /// The main lcore (default: the first of `lcores`).
    pub main_lcore: Option<u32>,
    /// `--file-prefix`.
    pub file_prefix: Option<&'static str>,
    /// More EAL arguments, as typed.
    pub extra_args: &'static [&'static str],
}

/// A port of a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct PortSpec {
    /// The port's name in the declaration.
    pub name: &'static str,
    /// Device string (vdev spec or PCI address).
    pub device: &'static str,
    /// Rx queues.
    pub rx_queues: u16,
    /// Tx queues.
    pub tx_queues: u16,
    /// Descriptors per rx queue.
    pub rx_descriptors: u16,
    /// Descriptors per tx queue.
    pub tx_descriptors: u16,
    /// Mbufs in each of the port's pools.
    pub pool_size: u32,
    /// Per-lcore cache of the port's pools.
    pub pool_cache: u32,
    /// Tx queues may be written by several lcores (each send takes a lock).
    pub shared_tx: bool,
    /// How several rx queues share the received flows (YAML `rss`).
    pub rss: RssMode,
}

/// A ring between lcores.
#[derive(Debug, Clone, Copy)]
pub struct RingSpec {
    /// Name.
    pub name: &'static str,
    /// Slots (a power of two).
    pub size: u32,
}

/// A queue of a port, by index into [`PipelineSpec::ports`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRef {
    /// Port index.
    pub port: usize,
    /// Queue index.
    pub queue: u16,
}

/// What one worker lcore polls and writes.
#[derive(Debug, Clone, Copy)]
pub struct LcoreSpec {
    /// The lcore.
    pub lcore: u32,
    /// Rx queues it polls, in the order its loop takes them.
    pub rx: &'static [QueueRef],
    /// Tx queues it writes, in order.
    pub tx: &'static [QueueRef],
    /// Rings it consumes, by index into [`PipelineSpec::rings`].
    pub ring_in: &'static [usize],
    /// Rings it produces into.
    pub ring_out: &'static [usize],
    /// Names of its stages, in loop order (for statistics).
    pub stages: &'static [&'static str],
}

/// A whole pipeline, as the macro emits it.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSpec {
    /// The pipeline's name.
    pub name: &'static str,
    /// EAL settings.
    pub eal: EalSpec,
    /// Ports.
    pub ports: &'static [PortSpec],
    /// Rings.
    pub rings: &'static [RingSpec],
    /// Worker lcores.
    pub lcores: &'static [LcoreSpec],
}

/// Run-time overrides, the way DPDK applications take them: EAL arguments first, then `--`, then the
/// application's own; rosette also takes `--port NAME=DEVICE` among the EAL arguments to replace a
/// port's device string (e.g. `--port p0=net_ring0`), `--no-huge` for the memory mode and `--no-capture`
/// to turn packet capture off.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Extra EAL arguments, after the declared ones.
    pub eal_args: Vec<String>,
    /// Device string replacements, by port name.
    pub devices: Vec<(String, String)>,
    /// Memory mode replacement.
    pub memory: Option<MemoryMode>,
    /// Packet capture with `dpdk-dumpcap` (`rte_pdump`): `None` keeps the default, on (see
    /// [`EalBuilder::capture`]); `Some(false)` turns it off.
    pub capture: Option<bool>,
    /// Lcores placed on chosen CPUs, (lcore, cpu) (see [`EalBuilder::lcore_cpu`]).
    pub lcore_cpus: Vec<(u32, u32)>,
}

impl LaunchOptions {
    /// No overrides.
    pub fn new() -> LaunchOptions {
        LaunchOptions::default()
    }

    /// Adds EAL arguments.
    pub fn eal_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.eal_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Replaces the device of port `port`.
    pub fn device(mut self, port: impl Into<String>, device: impl Into<String>) -> Self {
        self.devices.push((port.into(), device.into()));
        self
    }

    /// Replaces the memory mode.
    pub fn memory(mut self, mode: MemoryMode) -> Self {
        self.memory = Some(mode);
        self
    }

    /// Turns packet capture on or off (default on; see [`EalBuilder::capture`]).
    pub fn capture(mut self, yes: bool) -> Self {
        self.capture = Some(yes);
        self
    }

    /// Runs lcore `lcore` on CPU `cpu` (see [`EalBuilder::lcore_cpu`]).
    pub fn lcore_cpu(mut self, lcore: u32, cpu: u32) -> Self {
        self.lcore_cpus.push((lcore, cpu));
        self
    }

    /// Parses `[EAL args] [-- app args]` (without the program name); returns the options and the
    /// application's arguments.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<(LaunchOptions, Vec<String>), LaunchError> {
        let mut options = LaunchOptions::new();
        let mut app = Vec::new();
        let mut iter = args.into_iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                app.extend(iter.by_ref());
                break;
            }
            let port_value = if arg == "--port" {
                Some(iter.next().ok_or_else(|| LaunchError::Config("--port needs NAME=DEVICE".to_owned()))?)
            } else {
                arg.strip_prefix("--port=").map(str::to_owned)
            };
            if let Some(value) = port_value {
                let (name, device) = value
                    .split_once('=')
                    .ok_or_else(|| LaunchError::Config(format!("--port {value}: expected NAME=DEVICE")))?;
                options.devices.push((name.to_owned(), device.to_owned()));
            } else if arg == "--no-huge" {
                options.memory = Some(MemoryMode::NoHuge);
            } else if arg == "--no-capture" {
                options.capture = Some(false);
            } else {
                options.eal_args.push(arg);
            }
        }
        Ok((options, app))
    }
}

/// Why a pipeline could not start or ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// The substrate refused (EAL, a device, a pool, a port, an lcore).
    Substrate(substrate::Error),
    /// The declaration and the overrides do not fit together.
    Config(String),
    /// An lcore's loop panicked.
    LcorePanicked {
        /// The lcore.
        lcore: u32,
    },
}

impl From<substrate::Error> for LaunchError {
    fn from(e: substrate::Error) -> Self {
        LaunchError::Substrate(e)
    }
}

impl core::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LaunchError::Substrate(e) => e.fmt(f),
            LaunchError::Config(msg) => f.write_str(msg),
            LaunchError::LcorePanicked { lcore } => write!(f, "the loop on lcore {lcore} panicked"),
        }
    }
}

impl std::error::Error for LaunchError {}

/// A tx queue that several lcores write (declared `shared_tx`); each send takes its lock.
#[derive(Clone, Debug)]
pub struct SharedTxQueue {
    queue: Arc<std::sync::Mutex<TxQueue>>,
}

impl SharedTxQueue {
    /// Sends what the PMD takes and frees the rest; returns (sent, dropped).
    #[inline]
    pub fn tx_or_drop<N: substrate::BurstSize>(&mut self, burst: &mut substrate::Burst<N>) -> (usize, usize) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.tx_or_drop(burst)
    }
}

/// Everything one lcore's loop owns: its queues and ring ends (taken once each, in declaration order),
/// its statistics, the stop flag and a [`Context`].
#[derive(Debug)]
pub struct LcoreIo {
    lcore: u32,
    rx: Vec<Option<RxQueue>>,
    tx: Vec<Option<TxQueue>>,
    shared_tx: Vec<Option<SharedTxQueue>>,
    ring_in: Vec<Option<MbufConsumer>>,
    ring_out: Vec<Option<MbufProducer>>,
    stats: Arc<LcoreStats>,
    stop: StopFlag,
    pool: Option<Mempool>,
    pause: Arc<PauseState>,
    parked: bool,
    reports: Arc<StageReports>,
    /// Tells [`Runtime::started`] that the loop's stages are built (see [`LcoreIo::ready`]); dropped
    /// unsent when the body returns or panics before that.
    ready: Option<SyncSender<()>>,
}

/// The pause switch of a pipeline ([`Pipeline::pause`]) and how many loops are parked on it.
#[derive(Debug, Default)]
struct PauseState {
    requested: AtomicBool,
    parked: AtomicUsize,
}

/// Final stage reports by (lcore, stage index in loop order), filled as loops end.
type StageReports = Mutex<BTreeMap<(u32, usize), StageReport>>;

fn take<T>(slots: &mut [Option<T>], index: usize, what: &str, lcore: u32) -> Result<T, LaunchError> {
    slots
        .get_mut(index)
        .and_then(Option::take)
        .ok_or_else(|| LaunchError::Config(format!("lcore {lcore}: {what} #{index} is not available")))
}

impl LcoreIo {
    /// The lcore.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// The `index`-th rx queue of this lcore's spec.
    pub fn take_rx(&mut self, index: usize) -> Result<RxQueue, LaunchError> {
        take(&mut self.rx, index, "rx queue", self.lcore)
    }

    /// The `index`-th tx queue of this lcore's spec (of a port without `shared_tx`).
    pub fn take_tx(&mut self, index: usize) -> Result<TxQueue, LaunchError> {
        take(&mut self.tx, index, "tx queue", self.lcore)
    }

    /// The `index`-th tx queue of this lcore's spec (of a port with `shared_tx`).
    pub fn take_shared_tx(&mut self, index: usize) -> Result<SharedTxQueue, LaunchError> {
        take(&mut self.shared_tx, index, "shared tx queue", self.lcore)
    }

    /// The consumer end of the `index`-th input ring.
    pub fn take_ring_in(&mut self, index: usize) -> Result<MbufConsumer, LaunchError> {
        take(&mut self.ring_in, index, "input ring", self.lcore)
    }

    /// The producer end of the `index`-th output ring.
    pub fn take_ring_out(&mut self, index: usize) -> Result<MbufProducer, LaunchError> {
        take(&mut self.ring_out, index, "output ring", self.lcore)
    }

    /// The loop's statistics.
    pub fn stats(&self) -> Arc<LcoreStats> {
        self.stats.clone()
    }

    /// The stop flag.
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }

    /// A context for the stages of this lcore.
    pub fn context(&self) -> Context {
        Context::new(self.lcore, TscClock::new(), self.pool.clone())
    }

    /// Called by the loop at the top of every iteration: while the pipeline is paused
    /// ([`Pipeline::pause`]) it marks this loop parked, sleeps 100 µs and returns true (the loop then
    /// polls nothing: no rx, no stage, no tx); otherwise one atomic load and false.
    #[inline]
    pub fn paused(&mut self) -> bool {
        let requested = self.pause.requested.load(Ordering::Acquire);
        if requested != self.parked {
            self.parked = requested;
            if requested {
                self.pause.parked.fetch_add(1, Ordering::AcqRel);
            } else {
                self.pause.parked.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if requested {
            std::thread::sleep(Duration::from_micros(100));
        }
        requested
    }

    /// Called by the loop once its stages are built, before it starts polling: [`Runtime::started`]
    /// (what the generated `launch()` returns through) waits for it, so a stage that cannot be built
    /// fails `launch()` with its reason instead of a running pipeline without that stage. Calling it
    /// again does nothing.
    pub fn ready(&mut self) {
        if let Some(ready) = self.ready.take() {
            // The launcher may have given up waiting (it aborts on another lcore's failure): nothing to tell.
            let _ = ready.send(());
        }
    }

    /// Keeps the final report of stage `index` (loop order) of this lcore, for
    /// [`Pipeline::stage_report`]. Called by the loop after it stopped.
    pub fn report_stage(&self, index: usize, report: Option<StageReport>) {
        if let Some(report) = report {
            self.reports.lock().unwrap_or_else(|e| e.into_inner()).insert((self.lcore, index), report);
        }
    }
}

impl Drop for LcoreIo {
    fn drop(&mut self) {
        if self.parked {
            self.pause.parked.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A pipeline being started: EAL, pools, ports and rings are up; lcores are launched one by one.
pub struct Runtime {
    spec: PipelineSpec,
    eal: Eal,
    pools: Vec<Mempool>,
    ports: Vec<Port>,
    io: BTreeMap<u32, LcoreIo>,
    stats: Vec<Arc<LcoreStats>>,
    joins: Vec<LcoreJoin<Result<(), LaunchError>>>,
    /// For each of `joins`, the receiving end of its loop's [`LcoreIo::ready`].
    ready: Vec<Receiver<()>>,
    stop: StopFlag,
    pause: Arc<PauseState>,
    reports: Arc<StageReports>,
}

impl Runtime {
    /// Starts EAL and sets up every port, pool and ring of `spec`, with `options` applied.
    pub fn start(spec: &PipelineSpec, options: &LaunchOptions) -> Result<Runtime, LaunchError> {
        substrate::install_signal_handlers()?;
        let devices: Vec<String> = spec
            .ports
            .iter()
            .map(|p| {
                options
                    .devices
                    .iter()
                    .rev()
                    .find(|(name, _)| name == p.name)
                    .map_or(p.device.to_owned(), |(_, d)| d.clone())
            })
            .collect();
        for (name, _) in &options.devices {
            if !spec.ports.iter().any(|p| p.name == name) {
                return Err(LaunchError::Config(format!("--port {name}=…: the pipeline has no port named {name}")));
            }
        }
        let mut builder = EalBuilder::new()
            .program_name(spec.name)
            .lcores(spec.eal.lcores.iter().copied())
            .memory(options.memory.unwrap_or(spec.eal.memory))
            .extra_args(spec.eal.extra_args.iter().copied())
            .extra_args(options.eal_args.iter().cloned());
        if let Some(main) = spec.eal.main_lcore {
            builder = builder.main_lcore(main);
        }
        if let Some(mb) = spec.eal.memory_mb {
            builder = builder.memory_mb(mb);
        }
        if let Some(prefix) = spec.eal.file_prefix {
            builder = builder.file_prefix(prefix);
        }
        if let Some(capture) = options.capture {
            builder = builder.capture(capture);
        }
        for &(lcore, cpu) in &options.lcore_cpus {
            builder = builder.lcore_cpu(lcore, cpu);
        }
        for device in &devices {
            builder = if is_pci_address(device) { builder.pci(device.clone()) } else { builder.vdev(device.clone()) };
        }
        let eal = builder.start()?;

        // NUMA placement: a pure plan first, then objects where it says.
        let rx_assignments: Vec<RxAssignment> = spec
            .lcores
            .iter()
            .flat_map(|l| l.rx.iter().map(move |q| RxAssignment { port: q.port, queue: q.queue, lcore: l.lcore }))
            .collect();
        let workers: Vec<u32> = spec.lcores.iter().map(|l| l.lcore).collect();
        let plan = placement::plan(&eal.topology(), &rx_assignments, &workers)
            .map_err(|e| LaunchError::Config(e.to_string()))?;

        let mut pools = Vec::new();
        let mut ports = Vec::new();
        for (index, (port_spec, device)) in spec.ports.iter().zip(&devices).enumerate() {
            let mut pool_by_socket: BTreeMap<u32, Mempool> = BTreeMap::new();
            let mut queue_pools = Vec::new();
            for queue in 0..port_spec.rx_queues {
                let socket = rx_assignments
                    .iter()
                    .position(|a| a.port == index && a.queue == queue)
                    .map_or(0, |i| plan.rx_queue_sockets[i]);
                let pool = match pool_by_socket.entry(socket) {
                    std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
                    std::collections::btree_map::Entry::Vacant(e) => e
                        .insert(Mempool::new(
                            &eal,
                            &MempoolConfig {
                                size: port_spec.pool_size,
                                cache_size: port_spec.pool_cache,
                                socket,
                                ..MempoolConfig::default()
                            },
                        )?)
                        .clone(),
                };
                queue_pools.push(pool);
            }
            let config = PortConfig {
                rx_queues: port_spec.rx_queues,
                tx_queues: port_spec.tx_queues,
                rx_descriptors: port_spec.rx_descriptors,
                tx_descriptors: port_spec.tx_descriptors,
                promiscuous: true,
                rss: port_spec.rss,
            };
            let port = Port::configure(&eal, device, &config, &queue_pools)?;
            pools.extend(pool_by_socket.into_values());
            ports.push(port);
        }
        for port in &ports {
            port.start()?;
        }

        // Rings live on their consumer's socket.
        let mut ring_ends: Vec<(Option<MbufProducer>, Option<MbufConsumer>)> = Vec::new();
        for (index, ring) in spec.rings.iter().enumerate() {
            let producers = spec.lcores.iter().filter(|l| l.ring_out.contains(&index)).count();
            let consumer = spec.lcores.iter().find(|l| l.ring_in.contains(&index)).map(|l| l.lcore);
            let socket = consumer.and_then(|l| plan.lcore_sockets.get(&l).copied()).unwrap_or(0);
            let mode = if producers > 1 { RingMode::Multi } else { RingMode::Single };
            let (p, c) = mbuf_ring(&eal, None, ring.size, socket, mode)?;
            ring_ends.push((Some(p), Some(c)));
        }

        let stop = StopFlag::new();
        let pause = Arc::new(PauseState::default());
        let reports = Arc::new(StageReports::default());
        let mut shared_tx: BTreeMap<(usize, u16), SharedTxQueue> = BTreeMap::new();
        let mut io = BTreeMap::new();
        let mut stats = Vec::new();
        for lcore in spec.lcores {
            let lcore_stats =
                Arc::new(LcoreStats::new(lcore.lcore, lcore.stages.iter().map(|s| (*s).to_owned()).collect()));
            let reader_stats = lcore_stats.clone();
            telemetry::register_source(
                &format!("{}_lcore{}", spec.name, lcore.lcore),
                Box::new(move || reader_stats.as_pairs()),
            )?;
            let mut lcore_io = LcoreIo {
                lcore: lcore.lcore,
                rx: Vec::new(),
                tx: Vec::new(),
                shared_tx: Vec::new(),
                ring_in: Vec::new(),
                ring_out: Vec::new(),
                stats: lcore_stats.clone(),
                stop: stop.clone(),
                pool: lcore_pool(&pools, plan.lcore_sockets.get(&lcore.lcore).copied()),
                pause: pause.clone(),
                parked: false,
                reports: reports.clone(),
                ready: None,
            };
            for q in lcore.rx {
                lcore_io.rx.push(Some(ports[q.port].rx_queue(q.queue)?));
            }
            for q in lcore.tx {
                if spec.ports[q.port].shared_tx {
                    let shared = match shared_tx.get(&(q.port, q.queue)) {
                        Some(s) => s.clone(),
                        None => {
                            let s = SharedTxQueue {
                                queue: Arc::new(std::sync::Mutex::new(ports[q.port].tx_queue(q.queue)?)),
                            };
                            shared_tx.insert((q.port, q.queue), s.clone());
                            s
                        }
                    };
                    lcore_io.shared_tx.push(Some(shared));
                    lcore_io.tx.push(None);
                } else {
                    lcore_io.tx.push(Some(ports[q.port].tx_queue(q.queue)?));
                    lcore_io.shared_tx.push(None);
                }
            }
            for &r in lcore.ring_in {
                lcore_io.ring_in.push(ring_ends[r].1.take());
            }
            for &r in lcore.ring_out {
                let producer = match ring_ends[r].0.take() {
                    Some(p) => {
                        let extra = p.try_clone();
                        ring_ends[r].0 = extra;
                        Some(p)
                    }
                    None => None,
                };
                lcore_io.ring_out.push(producer);
            }
            stats.push(lcore_stats);
            io.insert(lcore.lcore, lcore_io);
        }
        Ok(Runtime {
            spec: *spec,
            eal,
            pools,
            ports,
            io,
            stats,
            joins: Vec::new(),
            ready: Vec::new(),
            stop,
            pause,
            reports,
        })
    }

    /// Launches `body` on `lcore` with that lcore's [`LcoreIo`]. On an error, end with
    /// [`Runtime::abort`]: lcores already launched run until stopped.
    pub fn launch<F>(&mut self, lcore: u32, body: F) -> Result<(), LaunchError>
    where
        F: FnOnce(LcoreIo) -> Result<(), LaunchError> + Send + 'static,
    {
        let mut io = self.io.remove(&lcore).ok_or_else(|| {
            LaunchError::Config(format!("lcore {lcore} is not a worker of this pipeline (or was launched twice)"))
        })?;
        let (ready, wait) = mpsc::sync_channel(1);
        io.ready = Some(ready);
        let join = launch(&self.eal, lcore, move || body(io))?;
        self.joins.push(join);
        self.ready.push(wait);
        Ok(())
    }

    /// The running pipeline, once every launched loop has built its stages ([`LcoreIo::ready`]); what
    /// the generated `launch()` returns. A loop that ends before that (a stage its params cannot build,
    /// a queue it cannot take, a panic) fails the launch with that loop's error, after every loop was
    /// stopped and the pipeline shut down (every mbuf back in its pool, EAL cleaned up). Every body
    /// launched must call [`LcoreIo::ready`] or return; use [`Runtime::into_pipeline`] for bodies that
    /// do neither.
    pub fn started(mut self) -> Result<Pipeline, LaunchError> {
        let joins = std::mem::take(&mut self.joins);
        let waits = std::mem::take(&mut self.ready);
        let mut failure = None;
        for (join, wait) in joins.into_iter().zip(waits) {
            // After a failure the others are not waited for: they are stopped below.
            if failure.is_none() && wait.recv().is_err() {
                // The body ended before its stages were built: its result says why.
                let lcore = join.lcore();
                match join.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failure = Some(e),
                    Err(_) => failure = Some(LaunchError::LcorePanicked { lcore }),
                }
                continue;
            }
            self.joins.push(join);
        }
        match failure {
            None => Ok(self.into_pipeline()),
            Some(e) => Err(self.abort(e)),
        }
    }

    /// Ends a launch that failed with `error`: stops and joins every loop already launched, shuts the
    /// pipeline down (ports stopped, pools freed, EAL cleaned up) and returns `error`.
    pub fn abort(self, error: LaunchError) -> LaunchError {
        let mut pipeline = self.into_pipeline();
        match pipeline.shutdown() {
            Ok(report) if report.mbufs_leaked > 0 => {
                log::error!("{} mbuf(s) did not return to their pools after a failed launch", report.mbufs_leaked)
            }
            Ok(_) => {}
            Err(other) => log::debug!("after a failed launch ({error}), shutting down also failed: {other}"),
        }
        error
    }

    /// The running pipeline, without waiting for its loops to build their stages (for loop bodies that
    /// do not call [`LcoreIo::ready`]; see [`Runtime::started`]). Lcores not launched are dropped with
    /// their queues.
    pub fn into_pipeline(self) -> Pipeline {
        Pipeline {
            name: self.spec.name,
            stats: self.stats,
            joins: self.joins,
            stop: self.stop,
            pause: self.pause,
            reports: self.reports,
            port_names: self.spec.ports.iter().map(|p| p.name).collect(),
            ports: self.ports,
            pools: self.pools,
            eal: Some(self.eal),
        }
    }

    /// The EAL.
    pub fn eal(&self) -> &Eal {
        &self.eal
    }
}

/// A pool on `socket` for an lcore's stages (the first one made there), else any pool.
fn lcore_pool(pools: &[Mempool], socket: Option<u32>) -> Option<Mempool> {
    pools.iter().find(|p| socket.is_some_and(|s| p.socket_id() == s as i32)).or(pools.first()).cloned()
}

fn is_pci_address(device: &str) -> bool {
    // dddd:bb:dd.f or bb:dd.f
    let parts: Vec<&str> = device.split([':', '.']).collect();
    (parts.len() == 4 || parts.len() == 3)
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A running pipeline: stop it, watch its counters, wait for it. Dropping it stops and joins.
pub struct Pipeline {
    name: &'static str,
    stats: Vec<Arc<LcoreStats>>,
    joins: Vec<LcoreJoin<Result<(), LaunchError>>>,
    stop: StopFlag,
    pause: Arc<PauseState>,
    reports: Arc<StageReports>,
    /// The declared names of `ports`, in the same order.
    port_names: Vec<&'static str>,
    ports: Vec<Port>,
    pools: Vec<Mempool>,
    eal: Option<Eal>,
}

/// The end state of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// Final counters of every lcore.
    pub lcores: Vec<LcoreStatsSnapshot>,
    /// Final counters of every port, by name.
    pub ports: Vec<(String, PortStats)>,
    /// Mbufs that did not come back to their pools (0 when nothing leaked).
    pub mbufs_leaked: u64,
}

impl PipelineReport {
    /// Packets received over all lcores.
    pub fn packets(&self) -> u64 {
        self.lcores.iter().map(|l| l.packets).sum()
    }
}

impl Pipeline {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Asks every lcore loop to stop.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Parks every loop (they poll nothing — no rx, no stage, no tx — until [`Pipeline::resume`]) and
    /// waits up to `timeout` until each is parked or has returned; false if one did not in time. Ports
    /// stay started and stages keep their state: e.g. a memif port's peer may go away meanwhile (the
    /// 22.11 memif PMD can crash in rx if the peer disconnects while rx is polled).
    pub fn pause(&self, timeout: Duration) -> bool {
        self.pause.requested.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.joins.iter().filter(|j| !j.is_finished()).count();
            if self.pause.parked.load(Ordering::Acquire) >= running {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Lets paused loops poll again.
    pub fn resume(&self) {
        self.pause.requested.store(false, Ordering::Release);
    }

    /// A copy of the final report of stage `index` (in loop order) of `lcore` ([`Stage::report`](super::Stage::report)),
    /// once that lcore's loop returned (after [`Pipeline::stop`] and [`Pipeline::is_finished`]); `None`
    /// before, if the stage reports nothing, or if it reports another type than `T`.
    pub fn stage_report<T: std::any::Any + Clone>(&self, lcore: u32, index: usize) -> Option<T> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.get(&(lcore, index)).and_then(StageReport::get::<T>).cloned()
    }

    /// True once every loop returned.
    pub fn is_finished(&self) -> bool {
        self.joins.iter().all(LcoreJoin::is_finished)
    }

    /// Current counters of every lcore.
    pub fn stats(&self) -> Vec<LcoreStatsSnapshot> {
        self.stats.iter().map(|s| s.snapshot()).collect()
    }

    /// The ports, in declaration order.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The port declared as `name`.
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name() == name || p.name().starts_with(name))
    }

    /// Current statistics of every port (`rte_eth_stats`: opackets, ipackets, ..), by declared name, in
    /// declaration order; read while the loops run, e.g. at both edges of a measurement window.
    pub fn port_stats(&self) -> Result<Vec<(&'static str, PortStats)>, LaunchError> {
        self.port_names.iter().zip(&self.ports).map(|(name, port)| Ok((*name, port.stats()?))).collect()
    }

    /// The mempools, one per port and socket.
    pub fn pools(&self) -> &[Mempool] {
        &self.pools
    }

    /// The EAL.
    pub fn eal(&self) -> &Eal {
        self.eal.as_ref().expect("EAL is held until the pipeline is joined")
    }

    /// The EAL file prefix this pipeline's process runs under (`rosette-<pid>` unless declared or
    /// overridden): what `dpdk-dumpcap --file-prefix=<p>` and `dpdk-telemetry.py -f <p>` attach to.
    /// `None` with `--in-memory`.
    pub fn file_prefix(&self) -> Option<&str> {
        self.eal().file_prefix()
    }

    /// Runs until `duration` passes (if given), SIGINT/SIGTERM arrives or every loop ended, calling
    /// `on_tick` with fresh counters every `tick`.
    pub fn run_for(&self, duration: Option<Duration>, tick: Duration, mut on_tick: impl FnMut(&[LcoreStatsSnapshot])) {
        let start = Instant::now();
        let mut last_tick = start;
        while !self.stop.is_set() && !self.is_finished() {
            std::thread::sleep(Duration::from_millis(10).min(tick));
            if duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            if last_tick.elapsed() >= tick {
                last_tick = Instant::now();
                on_tick(&self.stats());
            }
        }
        self.stop();
    }

    /// Stops every loop, waits for them, stops the ports, frees pools, and reports. An lcore that
    /// panicked is reported as [`LaunchError::LcorePanicked`] after everything else was shut down.
    pub fn join(mut self) -> Result<PipelineReport, LaunchError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<PipelineReport, LaunchError> {
        self.stop();
        let mut failure = None;
        for join in self.joins.drain(..) {
            let lcore = join.lcore();
            match join.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(LaunchError::LcorePanicked { lcore })),
            }
        }
        let lcores = self.stats();
        let mut ports = Vec::new();
        for port in &self.ports {
            ports.push((port.name().to_owned(), port.stats().unwrap_or_default()));
            if let Err(e) = port.stop() {
                failure = failure.or(Some(e.into()));
            }
        }
        for lcore in &lcores {
            telemetry::unregister_source(&format!("{}_lcore{}", self.name, lcore.lcore));
        }
        self.ports.clear();
        self.pools.clear();
        let mbufs_leaked = self.eal.as_ref().map_or(0, Eal::mbufs_outstanding);
        self.eal = None;
        match failure {
            Some(e) => Err(e),
            None => Ok(PipelineReport { lcores, ports, mbufs_leaked }),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.eal.is_some() {
            let _ = self.shutdown();
        }
    }
}

impl core::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pipeline").field("name", &self.name).field("lcores", &self.stats.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_split_eal_and_app_arguments() {
        let (options, app) = LaunchOptions::from_args(strings(&[
            "--log-level=lib.eal:debug",
            "--port",
            "p0=net_ring0",
            "--port=p1=net_null5",
            "--no-huge",
            "--no-capture",
            "--",
            "--seconds",
            "3",
        ]))
        .unwrap();
        assert_eq!(options.eal_args, ["--log-level=lib.eal:debug"]);
        assert_eq!(options.devices, [("p0".into(), "net_ring0".into()), ("p1".into(), "net_null5".into())]);
        assert_eq!(options.memory, Some(MemoryMode::NoHuge));
        assert_eq!(options.capture, Some(false));
        assert_eq!(app, ["--seconds", "3"]);
        assert!(LaunchOptions::from_args(strings(&["--port", "nope"])).is_err());
    }

    #[test]
    fn pci_addresses_are_told_from_vdevs() {
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(!is_pci_address("net_null0"));
        assert!(!is_pci_address("net_memif0,role=server"));
    }
}
