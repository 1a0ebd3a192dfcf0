//! Starting and stopping DPDK's Environment Abstraction Layer (EAL) from a typed builder.
//!
//! DPDK allows exactly one `rte_eal_init` per process: a second call fails, even after
//! `rte_eal_cleanup`, and a failed first call poisons every retry. [`EalBuilder::start`] enforces that
//! with a process-wide state machine and returns [`Error::EalAlreadyStarted`] or
//! [`Error::EalStartFailedBefore`] instead of calling into DPDK again.
//!
//! The returned [`Eal`] is a cheap, cloneable token. Every substrate object (mempool, port, ring) holds
//! one, and `rte_eal_cleanup` runs when the last token is dropped — after every pool and port is gone —
//! and only if every mbuf went back to its pool, so no mbuf can outlive the memory it lives in.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::capture::CaptureStatus;
use super::error::{Error, Result};
use super::ffi;

/// How EAL gets its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryMode {
    /// Hugepages when they are reserved and mounted, otherwise `--no-huge` (slower, but works anywhere);
    /// the choice is logged.
    #[default]
    Auto,
    /// Hugepages or a clear error.
    Hugepages,
    /// Plain anonymous memory (`--no-huge`): no set-up needed, about 3× slower forwarding.
    NoHuge,
}

impl MemoryMode {
    /// Parses the spelling used in YAML and on command lines: `auto`, `hugepages`, `no-huge`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(MemoryMode::Auto),
            "hugepages" | "huge" => Some(MemoryMode::Hugepages),
            "no-huge" | "nohuge" => Some(MemoryMode::NoHuge),
            _ => None,
        }
    }
}

/// Memory EAL is given with `--no-huge` unless the builder says otherwise.
const DEFAULT_NO_HUGE_MEMORY_MB: u32 = 256;

/// A typed builder for the EAL command line.
///
/// ```no_run
/// use rosette::substrate::{EalBuilder, MemoryMode};
/// let eal = EalBuilder::new()
///     .lcores([0, 1])
///     .vdev("net_null0")
///     .vdev("net_null1")
///     .memory(MemoryMode::Auto)
///     .start()?;
/// # Ok::<(), rosette::substrate::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct EalBuilder {
    lcores: Vec<u32>,
    main_lcore: Option<u32>,
    vdevs: Vec<String>,
    pci: Vec<String>,
    memory: MemoryMode,
    memory_mb: Option<u32>,
    file_prefix: Option<String>,
    in_memory: bool,
    extra_args: Vec<String>,
    program_name: Option<String>,
    /// Packet capture turned off ([`EalBuilder::capture`]); on by default.
    no_capture: bool,
    /// Lcores placed on a chosen CPU ([`EalBuilder::lcore_cpu`]).
    lcore_cpus: Vec<(u32, u32)>,
}

/// What EAL was actually started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalInfo {
    /// The full argument list handed to `rte_eal_init` (program name first).
    pub args: Vec<String>,
    /// Whether hugepages back DPDK's memory.
    pub hugepages: bool,
    /// The main lcore (it runs the caller's thread).
    pub main_lcore: u32,
    /// Every enabled lcore, main included, ascending.
    pub lcores: Vec<u32>,
    /// The runtime-directory prefix EAL runs under (`--file-prefix`; rosette's default is
    /// `rosette-<pid>`): what a secondary process such as `dpdk-dumpcap` or `dpdk-telemetry.py` is given
    /// to attach. `None` with `--in-memory`, which has no runtime directory to attach to.
    pub file_prefix: Option<String>,
    /// Whether `dpdk-dumpcap` can capture this process's ports (see [`super::capture`]).
    pub capture: CaptureStatus,
}

impl EalBuilder {
    /// A builder with no lcores, devices or arguments: EAL's own defaults apply.
    pub fn new() -> Self {
        EalBuilder::default()
    }

    /// The lcores EAL may use (`-l`); the first is the main lcore unless [`EalBuilder::main_lcore`] says
    /// otherwise.
    pub fn lcores(mut self, lcores: impl IntoIterator<Item = u32>) -> Self {
        self.lcores = lcores.into_iter().collect();
        self
    }

    /// Runs lcore `lcore` on CPU `cpu` instead of CPU `lcore` (EAL's `--lcores=<lcore>@<cpu>`): the
    /// operator's placement of a declared pipeline at run time, e.g. two processes that declared the
    /// same worker lcore moved onto different CPUs, or (to measure it) onto the same one.
    pub fn lcore_cpu(mut self, lcore: u32, cpu: u32) -> Self {
        self.lcore_cpus.retain(|&(l, _)| l != lcore);
        self.lcore_cpus.push((lcore, cpu));
        self
    }

    /// The lcore that runs the calling thread (`--main-lcore`).
    pub fn main_lcore(mut self, lcore: u32) -> Self {
        self.main_lcore = Some(lcore);
        self
    }

    /// A virtual device, exactly as DPDK's `--vdev` takes it (`net_null0`, `net_ring0`,
    /// `net_memif0,role=server,socket=/tmp/m.sock`).
    pub fn vdev(mut self, spec: impl Into<String>) -> Self {
        self.vdevs.push(spec.into());
        self
    }

    /// A PCI device to use (`-a 0000:03:00.0`). Without any, PCI scanning is turned off (`--no-pci`).
    pub fn pci(mut self, address: impl Into<String>) -> Self {
        self.pci.push(address.into());
        self
    }

    /// Where memory comes from; see [`MemoryMode`].
    pub fn memory(mut self, mode: MemoryMode) -> Self {
        self.memory = mode;
        self
    }

    /// Memory to reserve up front, in MiB (`-m`). Defaults: dynamic with hugepages, 256 MiB without.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = Some(mb);
        self
    }

    /// The runtime-directory prefix (`--file-prefix`), which lets several DPDK processes run side by
    /// side. Default: `rosette-<pid>`.
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = Some(prefix.into());
        self
    }

    /// Keep nothing on the file system (`--in-memory`); disables multi-process and telemetry sockets.
    pub fn in_memory(mut self, yes: bool) -> Self {
        self.in_memory = yes;
        self
    }

    /// More EAL arguments, passed through exactly as a DPDK user would type them, after rosette's own.
    pub fn extra_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Packet capture with `dpdk-dumpcap` (on by default): `rte_pdump_init` after EAL init, and, with
    /// hugepages, no `--huge-unlink`, so that a secondary process can map this process's hugepage files
    /// (rosette removes them itself at shutdown, and those of crashed rosette processes at the next
    /// start). `false` restores `--huge-unlink` and skips `rte_pdump_init`. Capture cannot work with
    /// `--no-huge` or `--in-memory`; [`Eal::capture`] says why and a warning is logged. See
    /// [`super::capture`].
    pub fn capture(mut self, yes: bool) -> Self {
        self.no_capture = !yes;
        self
    }

    /// The program name EAL logs as (argv\[0\]); default `rosette`.
    pub fn program_name(mut self, name: impl Into<String>) -> Self {
        self.program_name = Some(name.into());
        self
    }

    /// The argument list this builder would hand to `rte_eal_init`, given whether hugepages are usable.
    pub fn args(&self, hugepages_usable: bool) -> Result<Vec<String>> {
        let use_hugepages = match self.memory {
            MemoryMode::NoHuge => false,
            MemoryMode::Hugepages => true,
            MemoryMode::Auto => hugepages_usable,
        };
        let mut args = vec![self.program_name.clone().unwrap_or_else(|| "rosette".to_owned())];
        if !self.lcores.is_empty() {
            let cpus = machine_cpus();
            let placed = |l: u32| self.lcore_cpus.iter().find(|&&(lcore, _)| lcore == l).map(|&(_, cpu)| cpu);
            if !self.lcore_cpus.is_empty() {
                // Some lcores placed by the operator: every lcore mapped explicitly, the others as
                // below.
                args.push(format!(
                    "--lcores={}",
                    self.lcores
                        .iter()
                        .map(|&l| format!("{l}@{}", placed(l).unwrap_or(if l < cpus { l } else { l % cpus })))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            } else if self.lcores.iter().all(|&l| l < cpus) {
                args.push("-l".to_owned());
                args.push(self.lcores.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
            } else {
                // More lcores than CPUs (a small test machine): map each lcore onto a CPU explicitly, so a
                // pipeline declared for a bigger machine still starts here, its lcores sharing CPUs.
                // `start` says so (see `lcore_sharing_warning`).
                args.push(format!(
                    "--lcores={}",
                    self.lcores.iter().map(|l| format!("{l}@{}", l % cpus)).collect::<Vec<_>>().join(",")
                ));
            }
        }
        if let Some(main) = self.main_lcore {
            if !self.lcores.is_empty() && !self.lcores.contains(&main) {
                return Err(Error::InvalidArgument {
                    detail: format!("main lcore {main} is not among the lcores {:?}", self.lcores),
                });
            }
            args.push(format!("--main-lcore={main}"));
        }
        for vdev in &self.vdevs {
            args.push(format!("--vdev={vdev}"));
        }
        if self.pci.is_empty() {
            args.push("--no-pci".to_owned());
        } else {
            for address in &self.pci {
                args.push(format!("--allow={address}"));
            }
        }
        if use_hugepages {
            if let Some(mb) = self.memory_mb {
                args.push("-m".to_owned());
                args.push(mb.to_string());
            }
            // Without capture, the hugepage files are unlinked right after mapping: a crashed process
            // leaves nothing behind. Capture needs them (dpdk-dumpcap maps them): then rosette removes its
            // own files at shutdown and those of dead rosette processes at start (see `capture`).
            if !self.in_memory && self.no_capture {
                args.push("--huge-unlink".to_owned());
            }
        } else {
            args.push("--no-huge".to_owned());
            args.push("-m".to_owned());
            args.push(self.memory_mb.unwrap_or(DEFAULT_NO_HUGE_MEMORY_MB).to_string());
        }
        if self.in_memory {
            args.push("--in-memory".to_owned());
        } else {
            let prefix = self.file_prefix.clone().unwrap_or_else(|| format!("rosette-{}", std::process::id()));
            args.push(format!("--file-prefix={prefix}"));
        }
        args.extend(self.extra_args.iter().cloned());
        Ok(args)
    }

    /// Starts EAL. Fails with a readable error if EAL already started (or failed) in this process, if
    /// hugepages are required and missing, if EAL refuses the arguments, or if any requested device did
    /// not come up as an ethdev port (DPDK itself does not fail `rte_eal_init` for that).
    ///
    /// Before EAL starts:
    /// - lcores beyond the machine's CPUs give one warning ([`lcore_sharing_warning`]): through `log` when
    ///   the application's logger takes warnings, else one `rosette: warning: ...` line on stderr;
    /// - a `net_memif` server whose socket file is already there: a stale file (nobody listens on it) is
    ///   removed, with a warning in the same way; a socket a live process listens on is
    ///   [`Error::MemifSocketInUse`], a path that is not a socket [`Error::MemifSocketNotSocket`];
    /// - the runtime directories (`rosette-<pid>` under [`runtime_dir`]) of rosette processes that no
    ///   longer exist are removed. This process's own (with the default prefix) is removed at clean-up
    ///   and after a failed start.
    ///
    /// After EAL starts, the CPU of every worker lcore is claimed in the registry of [`super::cpus`]:
    /// when another live rosette process's worker already spins on one of them, one warning (in the
    /// same way) names the CPU and that process, and the poll loops on that CPU yield it when idle.
    pub fn start(self) -> Result<Eal> {
        // Before anything can send: every transport checksum from here on uses the CPU's CRC-32C
        // instruction when it has one.
        if super::crc::install_crc32c_accelerator() {
            log::debug!("CRC-32C: hardware (SSE4.2)");
        } else {
            log::debug!("CRC-32C: software (no hardware CRC-32C on this CPU)");
        }
        let hugepages = hugepage_status();
        if self.memory == MemoryMode::Hugepages {
            if let Err(detail) = &hugepages {
                return Err(Error::NoHugepages { detail: detail.clone() });
            }
        }
        if self.memory == MemoryMode::Auto {
            match &hugepages {
                Ok(()) => log::info!("memory mode auto: using hugepages"),
                Err(why) => log::warn!("memory mode auto: hugepages not usable ({why}); falling back to --no-huge"),
            }
        }
        let args = self.args(hugepages.is_ok())?;
        // A start that cannot happen says so before warning about, or touching, anything.
        match EAL_STATE.load(Ordering::SeqCst) {
            STATE_IDLE => {}
            STATE_FAILED => return Err(Error::EalStartFailedBefore),
            _ => return Err(Error::EalAlreadyStarted),
        }
        let unplaced: Vec<u32> =
            self.lcores.iter().copied().filter(|l| !self.lcore_cpus.iter().any(|(p, _)| p == l)).collect();
        if let Some(warning) = lcore_sharing_warning(&unplaced, machine_cpus()) {
            warn(&warning);
        }
        // A memif server's socket file left by a killed server would make its probe fail: reclaim it
        // (or say who holds it) before EAL binds it.
        super::memif::prepare_servers(self.vdevs.iter().map(String::as_str), warn)?;
        claim_start()?;
        // DPDK pins this thread to the main lcore's CPU: remember the mask it had, for the processes
        // rosette spawns (see `cpus::SpawnUnpinned`).
        super::cpus::remember_original_affinity();
        // The default prefix is ours alone (it carries our pid), so its runtime directory is removed at
        // clean-up, and after a failed start, instead of piling up in /var/run/dpdk; those of rosette
        // processes that died without cleaning up are removed here.
        let own_prefix = format!("rosette-{}", std::process::id());
        let owned_runtime_dir =
            (file_prefix_of(&args).as_deref() == Some(own_prefix.as_str())).then(|| runtime_dir().join(&own_prefix));
        let removed = remove_stale_runtime_dirs(&runtime_dir(), process_exists);
        if removed > 0 {
            log::info!("removed {removed} runtime director(ies) of rosette processes that no longer exist");
        }
        if hugepages.is_ok() && !self.no_capture {
            super::capture::sweep_stale_hugepage_files();
        }
        let mut info = match init_eal(&args) {
            Ok(info) => info,
            Err(err) => {
                EAL_STATE.store(STATE_FAILED, Ordering::SeqCst);
                if let Some(dir) = &owned_runtime_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(err);
            }
        };
        EAL_STATE.store(STATE_RUNNING, Ordering::SeqCst);
        info.capture = super::capture::start(!self.no_capture, &info.args, info.hugepages, info.file_prefix.as_deref());
        // Claim the CPUs the worker lcores spin on; say once if another rosette process spins there too.
        let pipeline = info.args.first().filter(|name| name.as_str() != "rosette").cloned();
        let (cpu_claims, sharing) = super::cpus::CpuClaims::claim(&worker_cpus(&info), pipeline.as_deref());
        if let Some(warning) = sharing {
            warn(&warning);
        }
        let eal = Eal {
            inner: Arc::new(EalInner {
                info,
                pools: Mutex::new(Vec::new()),
                owned_runtime_dir,
                _cpu_claims: cpu_claims,
            }),
        };
        for vdev in &self.vdevs {
            eal.check_device(device_name(vdev))?;
        }
        for address in &self.pci {
            eal.check_device(address)?;
        }
        Ok(eal)
    }
}

/// The (worker lcore, CPU) pairs of a started EAL: every CPU each worker lcore's thread may run on.
fn worker_cpus(info: &EalInfo) -> Vec<(u32, u32)> {
    const MAX_CPUS: usize = 1024;
    let mut pairs = Vec::new();
    let mut cpus = [0u8; MAX_CPUS];
    for &lcore in info.lcores.iter().filter(|&&l| l != info.main_lcore) {
        // SAFETY: lcore is enabled and below RTE_MAX_LCORE; cpus holds MAX_CPUS bytes, the count given.
        unsafe { ffi::rosette_lcore_cpus(lcore, cpus.as_mut_ptr(), MAX_CPUS as u32) };
        pairs.extend(cpus.iter().enumerate().filter(|(_, &set)| set != 0).map(|(cpu, _)| (lcore, cpu as u32)));
    }
    pairs
}

/// CPUs this process may run on.
fn machine_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
}

/// The warning [`EalBuilder::start`] gives (once, see [`EalBuilder::start`]) when some of `lcores` are
/// not below the machine's `cpus`, so EAL runs them on other CPUs, possibly sharing them (see
/// [`EalBuilder::args`]); `None` when every lcore is a CPU of its own.
pub fn lcore_sharing_warning(lcores: &[u32], cpus: u32) -> Option<String> {
    let cpus = cpus.max(1);
    let moved: Vec<String> =
        lcores.iter().filter(|&&l| l >= cpus).map(|l| format!("lcore {l} on CPU {}", l % cpus)).collect();
    if moved.is_empty() {
        return None;
    }
    let shared: Vec<String> = (0..cpus)
        .filter_map(|cpu| {
            let on: Vec<u32> = lcores.iter().copied().filter(|l| l % cpus == cpu).collect();
            (on.len() > 1).then(|| match on.len() {
                2..=4 => format!("CPU {cpu} runs lcores {}", ranges(&on)),
                n => format!("CPU {cpu} runs {n} lcores"),
            })
        })
        .collect();
    // A long list (a declaration for a much bigger machine) is cut, to stay one readable line.
    let cut = |items: &[String]| match items.len() {
        0..=4 => items.join(", "),
        n => format!("{}, and {} more", items[..4].join(", "), n - 4),
    };
    let effect = if shared.is_empty() {
        "no two share a CPU".to_owned()
    } else {
        format!("{}: each gets part of a CPU, so throughput drops", cut(&shared))
    };
    Some(format!(
        "lcores {} do not fit this machine's {cpus} CPU(s): running {} ({effect}); declare lcores below {cpus} \
         in `eal.lcores` to give every lcore a CPU of its own",
        ranges(lcores),
        cut(&moved),
    ))
}

/// `0-3,5`: an lcore list as EAL's `-l` writes it (sorted, runs collapsed).
fn ranges(lcores: &[u32]) -> String {
    let mut sorted = lcores.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}-{}", sorted[i], sorted[j]) } else { sorted[i].to_string() });
        i = j + 1;
    }
    parts.join(",")
}

/// A warning that must be seen: through `log` when the application's logger takes warnings, otherwise
/// one line on stderr (`rosette: warning: ...`), so a program without a logger still shows it.
pub(crate) fn warn(message: &str) {
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("{message}");
    } else {
        eprintln!("rosette: warning: {message}");
    }
}

/// Whether process `pid` exists (in this PID namespace).
fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes every `rosette-<pid>` directory under `base` whose process is gone (`alive` says no), except
/// this process's own; returns how many were removed. Other prefixes are never touched.
fn remove_stale_runtime_dirs(base: &Path, alive: impl Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else { return 0 };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("rosette-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || alive(pid) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The device name part of a `--vdev` spec (before the first comma).
fn device_name(spec: &str) -> &str {
    spec.split(',').next().unwrap_or(spec).trim()
}

const STATE_IDLE: u8 = 0;
const STATE_STARTING: u8 = 1;
const STATE_RUNNING: u8 = 2;
const STATE_FAILED: u8 = 3;
const STATE_CLEANED: u8 = 4;

/// The one EAL of this process: idle → starting → running → cleaned, or → failed for good.
static EAL_STATE: AtomicU8 = AtomicU8::new(STATE_IDLE);

fn claim_start() -> Result<()> {
    match EAL_STATE.compare_exchange(STATE_IDLE, STATE_STARTING, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(()),
        Err(STATE_FAILED) => Err(Error::EalStartFailedBefore),
        Err(_) => Err(Error::EalAlreadyStarted),
    }
}

fn init_eal(args: &[String]) -> Result<EalInfo> {
    let c_args = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::InvalidArgument { detail: "an EAL argument contains a NUL byte".to_owned() })?;
    // EAL may keep pointers into argv for the life of the process, so the strings are leaked on purpose
    // (once per process).
    let mut argv: Vec<*mut c_char> = c_args.into_iter().map(|s| s.into_raw()).collect();
    argv.push(core::ptr::null_mut());
    let argv = Box::leak(argv.into_boxed_slice());
    let argc = (argv.len() - 1) as i32;
    // SAFETY: argv holds argc valid NUL-terminated strings followed by a null pointer, all leaked so
    // they outlive EAL; claim_start guarantees this is the only rte_eal_init call in the process.
    let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
    if rc < 0 {
        return Err(Error::EalInit { args: args.to_vec(), errno: super::error::last_rte_errno() });
    }
    // SAFETY: EAL is initialised; these queries only read its configuration.
    let (hugepages, main_lcore) = unsafe { (ffi::rte_eal_has_hugepages() != 0, ffi::rte_get_main_lcore()) };
    let lcores = (0..ffi::RTE_MAX_LCORE)
        // SAFETY: rte_lcore_is_enabled accepts any lcore id below RTE_MAX_LCORE.
        .filter(|&id| unsafe { ffi::rte_lcore_is_enabled(id) } != 0)
        .collect();
    Ok(EalInfo {
        args: args.to_vec(),
        hugepages,
        main_lcore,
        lcores,
        file_prefix: file_prefix_of(args),
        capture: CaptureStatus::Disabled,
    })
}

/// The file prefix an EAL argument list runs under, as EAL reads it: the last `--file-prefix` wins (extra
/// arguments come after the generated one), DPDK's default `rte` without any, `None` with `--in-memory`.
fn file_prefix_of(args: &[String]) -> Option<String> {
    if args.iter().any(|a| a == "--in-memory") {
        return None;
    }
    let mut prefix = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--file-prefix" {
            prefix = iter.next().cloned();
        } else if let Some(value) = arg.strip_prefix("--file-prefix=") {
            prefix = Some(value.to_owned());
        }
    }
    Some(prefix.unwrap_or_else(|| "rte".to_owned()))
}

/// Whether hugepages can back DPDK's memory here: some free 2 MiB or 1 GiB pages and a mounted
/// hugetlbfs. `Err` says what is missing.
pub fn hugepage_status() -> core::result::Result<(), String> {
    let free: u64 = ["hugepages-2048kB", "hugepages-1048576kB"]
        .iter()
        .filter_map(|dir| {
            std::fs::read_to_string(Path::new("/sys/kernel/mm/hugepages").join(dir).join("free_hugepages")).ok()
        })
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .sum();
    if free == 0 {
        return Err("no free hugepages reserved".to_owned());
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts.lines().any(|line| line.split_whitespace().nth(2) == Some("hugetlbfs")) {
        return Err("no hugetlbfs mounted".to_owned());
    }
    Ok(())
}

/// A running EAL. Clones share it; DPDK is cleaned up when the last clone is dropped.
#[derive(Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

#[derive(Debug)]
struct EalInner {
    info: EalInfo,
    /// Every mempool created under this EAL, to check at clean-up that all mbufs came home.
    pools: Mutex<Vec<super::mempool::PoolWatch>>,
    /// The runtime directory to remove after clean-up (only when rosette chose the prefix).
    owned_runtime_dir: Option<std::path::PathBuf>,
    /// This process's claims on its workers' CPUs, removed when the EAL goes (after clean-up).
    _cpu_claims: super::cpus::CpuClaims,
}

/// Where DPDK puts the runtime directories of its processes (one per file prefix): /var/run/dpdk for
/// root, `$XDG_RUNTIME_DIR/dpdk` (or /tmp/dpdk) otherwise.
pub fn runtime_dir() -> std::path::PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return "/var/run/dpdk".into();
    }
    std::env::var_os("XDG_RUNTIME_DIR").map_or_else(|| "/tmp/dpdk".into(), |d| std::path::Path::new(&d).join("dpdk"))
}

impl core::fmt::Debug for Eal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Eal").field("info", &self.inner.info).finish()
    }
}

impl Eal {
    /// What EAL was started with.
    pub fn info(&self) -> &EalInfo {
        &self.inner.info
    }

    /// Whether hugepages back DPDK's memory.
    pub fn hugepages(&self) -> bool {
        self.inner.info.hugepages
    }

    /// The EAL file prefix of this process (see [`EalInfo::file_prefix`]): pass it to
    /// `dpdk-dumpcap --file-prefix=<p>` or `dpdk-telemetry.py -f <p>`. `None` with `--in-memory`.
    pub fn file_prefix(&self) -> Option<&str> {
        self.inner.info.file_prefix.as_deref()
    }

    /// Whether `dpdk-dumpcap --file-prefix=<p>` can capture this process's ports, and if not, why.
    pub fn capture(&self) -> &CaptureStatus {
        &self.inner.info.capture
    }

    /// The main lcore.
    pub fn main_lcore(&self) -> u32 {
        self.inner.info.main_lcore
    }

    /// Every enabled lcore except the main one, ascending.
    pub fn worker_lcores(&self) -> impl Iterator<Item = u32> + '_ {
        let main = self.main_lcore();
        self.inner.info.lcores.iter().copied().filter(move |&l| l != main)
    }

    /// The NUMA socket of an lcore, or an error if EAL did not enable it.
    pub fn lcore_socket(&self, lcore: u32) -> Result<u32> {
        if !self.inner.info.lcores.contains(&lcore) {
            return Err(Error::Lcore { lcore, detail: "not enabled in EAL (not in its -l list)".to_owned() });
        }
        // SAFETY: lcore is an enabled lcore id below RTE_MAX_LCORE.
        Ok(unsafe { ffi::rte_lcore_to_socket_id(lcore) })
    }

    /// The topology of the enabled lcores: (lcore, socket) pairs.
    pub fn topology(&self) -> super::placement::Topology {
        let lcores = self
            .inner
            .info
            .lcores
            .iter()
            // SAFETY: every listed lcore is enabled and below RTE_MAX_LCORE.
            .map(|&l| (l, unsafe { ffi::rte_lcore_to_socket_id(l) }))
            .collect();
        super::placement::Topology { lcores }
    }

    /// The port id of an ethdev by its device name, or [`Error::DeviceNotProbed`].
    pub fn port_id(&self, device: &str) -> Result<u16> {
        let name = CString::new(device_name(device))
            .map_err(|_| Error::InvalidArgument { detail: format!("device name {device:?} contains a NUL byte") })?;
        let mut port_id = 0u16;
        // SAFETY: name is a valid C string and port_id a valid out-pointer; EAL is running.
        let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(name.as_ptr(), &mut port_id) };
        if rc != 0 {
            return Err(Error::DeviceNotProbed { device: device_name(device).to_owned() });
        }
        Ok(port_id)
    }

    /// The `--vdev` spec EAL was given for device `name` (with its arguments), if any.
    pub(crate) fn vdev_spec(&self, name: &str) -> Option<&str> {
        self.inner
            .info
            .args
            .iter()
            .filter_map(|a| a.strip_prefix("--vdev="))
            .find(|spec| device_name(spec) == device_name(name))
    }

    fn check_device(&self, device: &str) -> Result<()> {
        self.port_id(device).map(|_| ())
    }

    /// The names of every ethdev port that came up.
    pub fn port_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for port in 0..ffi::RTE_MAX_ETHPORTS as u16 {
            // SAFETY: any port id may be asked about; EAL is running.
            if unsafe { ffi::rte_eth_dev_is_valid_port(port) } == 0 {
                continue;
            }
            let mut buf = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
            // SAFETY: buf holds RTE_ETH_NAME_MAX_LEN bytes, the size DPDK writes at most.
            if unsafe { ffi::rte_eth_dev_get_name_by_port(port, buf.as_mut_ptr()) } == 0 {
                // SAFETY: DPDK NUL-terminated the name inside buf.
                names.push(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned());
            }
        }
        names
    }

    /// Mbufs currently out of every pool created under this EAL (0 when every mbuf went home). Tests
    /// end by checking it; shutdown checks it before `rte_eal_cleanup`.
    pub fn mbufs_outstanding(&self) -> u64 {
        self.inner.pools.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|p| p.outstanding()).sum()
    }

    pub(crate) fn register_pool(&self, watch: super::mempool::PoolWatch) {
        self.inner.pools.lock().unwrap_or_else(|e| e.into_inner()).push(watch);
    }
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // Capture: rte_pdump_uninit now; the hugepage files it kept are removed when this goes, after
        // the clean-up (on every path out of this function).
        let _capture = super::capture::Teardown::begin(&self.info.capture, self.info.file_prefix.as_deref());
        // Every pool and port holds an Eal clone, so by now they are all gone; mbufs are not counted by
        // clones, so check that none is still out before unmapping DPDK's memory under them.
        // No port is left either: the interrupt thread has no more device work. Park it before DPDK's
        // memory goes away under the interrupt sources it still walks (see `intr`).
        if !super::intr::park_interrupt_thread(std::time::Duration::from_secs(2)) {
            log::debug!("could not park the EAL interrupt thread before cleanup");
        }
        let pools = self.pools.get_mut().unwrap_or_else(|e| e.into_inner());
        let outstanding: u64 = pools.iter().map(|p| p.outstanding()).sum();
        if outstanding > 0 {
            log::error!(
                "{outstanding} mbuf(s) were never returned to their pool; skipping rte_eal_cleanup so they stay valid"
            );
            return;
        }
        // SAFETY: no substrate object refers to DPDK any more (they all held this token) and no mbuf is
        // outstanding; EAL was started by this process.
        let rc = unsafe { ffi::rte_eal_cleanup() };
        if rc != 0 {
            log::warn!("rte_eal_cleanup failed: {}", super::error::strerror(-rc));
        }
        EAL_STATE.store(STATE_CLEANED, Ordering::SeqCst);
        if let Some(dir) = &self.owned_runtime_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// True between a successful start and clean-up.
pub fn eal_running() -> bool {
    EAL_STATE.load(Ordering::SeqCst) == STATE_RUNNING
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_without_hugepages_fall_back_to_no_huge() {
        let args = EalBuilder::new().lcores([0, 1]).vdev("net_null0").file_prefix("t").args(false).unwrap();
        assert_eq!(
            args,
            ["rosette", "-l", "0,1", "--vdev=net_null0", "--no-pci", "--no-huge", "-m", "256", "--file-prefix=t"]
        );
    }

    #[test]
    fn args_with_hugepages_and_pci_and_extras() {
        let args = EalBuilder::new()
            .lcores([0, 1])
            .main_lcore(1)
            .pci("0000:03:00.0")
            .in_memory(true)
            .extra_args(["--log-level", "lib.eal:debug"])
            .args(true)
            .unwrap();
        assert_eq!(
            args,
            [
                "rosette",
                "-l",
                "0,1",
                "--main-lcore=1",
                "--allow=0000:03:00.0",
                "--in-memory",
                "--log-level",
                "lib.eal:debug"
            ]
        );
    }

    #[test]
    fn file_prefix_is_the_last_one_given() {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let default = EalBuilder::new().args(false).unwrap();
        assert_eq!(file_prefix_of(&default), Some(format!("rosette-{}", std::process::id())));
        let overridden = EalBuilder::new().extra_args(["--file-prefix", "mine"]).args(false).unwrap();
        assert_eq!(file_prefix_of(&overridden).as_deref(), Some("mine"));
        assert_eq!(file_prefix_of(&strings(&["rosette", "--file-prefix=a", "--file-prefix=b"])).as_deref(), Some("b"));
        assert_eq!(file_prefix_of(&strings(&["rosette"])).as_deref(), Some("rte"));
        assert_eq!(file_prefix_of(&EalBuilder::new().in_memory(true).args(false).unwrap()), None);
    }

    #[test]
    fn hugepage_files_stay_linked_for_capture_unless_it_is_off() {
        let with_capture = EalBuilder::new().file_prefix("c").args(true).unwrap();
        assert!(!with_capture.iter().any(|a| a.starts_with("--huge-unlink")), "{with_capture:?}");
        let without = EalBuilder::new().file_prefix("c").capture(false).args(true).unwrap();
        assert!(without.contains(&"--huge-unlink".to_owned()), "{without:?}");
        let in_memory = EalBuilder::new().capture(false).in_memory(true).args(true).unwrap();
        assert!(!in_memory.iter().any(|a| a.starts_with("--huge-unlink")), "{in_memory:?}");
    }

    #[test]
    fn forced_no_huge_ignores_available_hugepages() {
        let args = EalBuilder::new().memory(MemoryMode::NoHuge).memory_mb(64).file_prefix("x").args(true).unwrap();
        assert!(args.contains(&"--no-huge".to_owned()) && args.windows(2).any(|w| w == ["-m", "64"]));
    }

    #[test]
    fn more_lcores_than_cpus_share_cpus() {
        let args = EalBuilder::new().lcores(0..200).args(false).unwrap();
        let lcores = args.iter().find(|a| a.starts_with("--lcores=")).expect("explicit lcore mapping");
        assert!(lcores.starts_with("--lcores=0@0,1@"), "{lcores}");
        assert!(!args.contains(&"-l".to_owned()));
    }

    #[test]
    fn lcores_beyond_the_cpus_are_one_warning_naming_the_mapping() {
        assert_eq!(lcore_sharing_warning(&[0, 1], 2), None);
        assert_eq!(
            lcore_sharing_warning(&[0, 1, 2], 2).unwrap(),
            "lcores 0-2 do not fit this machine's 2 CPU(s): running lcore 2 on CPU 0 (CPU 0 runs lcores 0,2: \
             each gets part of a CPU, so throughput drops); declare lcores below 2 in `eal.lcores` to give every \
             lcore a CPU of its own"
        );
        assert!(lcore_sharing_warning(&[2, 3], 2).unwrap().contains("(no two share a CPU)"));
        let big = lcore_sharing_warning(&(0..200).collect::<Vec<_>>(), 2).unwrap();
        assert!(big.starts_with("lcores 0-199 do not fit") && big.contains("and 194 more"), "{big}");
    }

    #[test]
    fn stale_runtime_dirs_of_dead_rosette_processes_are_removed() {
        let base = std::env::temp_dir().join(format!("rosette-rundir-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for name in ["rosette-4000001", "rosette-4000002", "rosette-notapid", "rte", "rosette-4000003"] {
            std::fs::create_dir_all(base.join(name)).unwrap();
            std::fs::write(base.join(name).join("config"), b"x").unwrap();
        }
        std::fs::create_dir_all(base.join(format!("rosette-{}", std::process::id()))).unwrap();
        // 4000002 is "alive"; the others are not.
        assert_eq!(remove_stale_runtime_dirs(&base, |pid| pid == 4000002), 2);
        let mut left: Vec<String> =
            std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut expected = vec!["rosette-4000002".to_owned(), "rosette-notapid".to_owned(), "rte".to_owned()];
        expected.push(format!("rosette-{}", std::process::id()));
        expected.sort();
        assert_eq!(left, expected);
        assert!(process_exists(std::process::id()) && !process_exists(u32::MAX - 1));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn placed_lcores_map_explicitly() {
        let args = EalBuilder::new().lcores([0, 1]).main_lcore(1).lcore_cpu(0, 1).lcore_cpu(1, 0).args(false).unwrap();
        assert!(args.contains(&"--lcores=0@1,1@0".to_owned()) && !args.contains(&"-l".to_owned()), "{args:?}");
        let one = EalBuilder::new().lcores([0, 1]).lcore_cpu(1, 0).args(false).unwrap();
        assert!(one.contains(&"--lcores=0@0,1@0".to_owned()), "{one:?}");
    }

    #[test]
    fn main_lcore_must_be_listed() {
        assert!(EalBuilder::new().lcores([0, 1]).main_lcore(5).args(true).is_err());
    }

    #[test]
    fn device_name_strips_arguments() {
        assert_eq!(device_name("net_memif0,role=server,socket=/tmp/x"), "net_memif0");
        assert_eq!(MemoryMode::parse("no-huge"), Some(MemoryMode::NoHuge));
        assert_eq!(MemoryMode::parse("bogus"), None);
    }
}
