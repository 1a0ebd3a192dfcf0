//! Packet capture with `dpdk-dumpcap`: the primary side of DPDK's capture framework (`rte_pdump`).
//!
//! `dpdk-dumpcap --file-prefix=<p> -i <port>` is a DPDK *secondary* process: it attaches to the
//! runtime directory of the primary's file prefix, maps the primary's hugepage files, and asks the
//! primary (through the multi-process socket) to install rx/tx callbacks that copy each packet into a
//! ring it drains to a pcapng file. The primary only has to answer: [`EalBuilder::start`] calls
//! `rte_pdump_init` right after `rte_eal_init`, and the last [`Eal`] handle calls `rte_pdump_uninit`
//! before `rte_eal_cleanup`.
//!
//! A secondary process can attach only when the primary's memory is in hugepage files it can open:
//!
//! | primary's memory | capture |
//! |---|---|
//! | hugepages (rosette's default when they are usable) | works: rosette then starts EAL **without** `--huge-unlink` |
//! | `--no-huge` (memory mode `no-huge`, or `auto` without usable hugepages) | unavailable: anonymous memory, nothing to map |
//! | `--in-memory`, `--no-shconf` | unavailable: no runtime directory, no multi-process socket |
//! | hugepages with `--huge-unlink` (capture turned off, or passed by hand) | unavailable: the files are gone |
//!
//! Without `--huge-unlink` the hugepage files (`/dev/hugepages/<prefix>map_<n>`) exist while the
//! process runs. Rosette removes its own at shutdown, and at start the files of `rosette-<pid>` prefixes
//! whose process died and that nobody holds any more (a crash, a `kill -9`), so hugepages do not leak.
//!
//! **22.11 hazard**: when a capture ends, `rte_pdump` removes its callbacks without waiting for an lcore
//! that is inside one, and `dpdk-dumpcap` then frees the pool and ring the callback copies into; an lcore
//! preempted mid-copy at that moment crashes the process (SIGSEGV in `librte_pcapng`/`librte_mbuf`).
//! The removal and the reply both happen inside librte_pdump, so rosette cannot close the race; the
//! README ("Capturing packets") has the measurements and what to do.
//!
//! [`EalBuilder::start`]: super::EalBuilder::start
//! [`Eal`]: super::Eal

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::last_rte_errno;
use super::ffi;

/// Whether `dpdk-dumpcap` can capture the ports of this process ([`Eal::capture`](super::Eal::capture)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureStatus {
    /// `rte_pdump_init` ran: `dpdk-dumpcap --file-prefix=<prefix> -i <port>` captures.
    Enabled,
    /// Turned off by the application ([`EalBuilder::capture`](super::EalBuilder::capture)`(false)`,
    /// `LaunchOptions::capture`, `--no-capture`).
    Disabled,
    /// Asked for, but this EAL cannot serve a secondary process; the text says why and what to change.
    Unavailable(String),
}

impl CaptureStatus {
    /// True when `dpdk-dumpcap` can attach.
    pub fn is_enabled(&self) -> bool {
        matches!(self, CaptureStatus::Enabled)
    }
}

impl core::fmt::Display for CaptureStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CaptureStatus::Enabled => f.write_str("enabled"),
            CaptureStatus::Disabled => f.write_str("disabled by the application"),
            CaptureStatus::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// Why a primary started with `args` (and hugepages or not, as EAL reports after init) cannot serve a
/// secondary process such as `dpdk-dumpcap`; `None` when it can. A pure function of the final EAL
/// arguments, so extra arguments passed by hand count too.
pub fn capture_blocker(args: &[String], hugepages: bool) -> Option<String> {
    let has = |flag: &str| args.iter().any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')));
    if has("--in-memory") {
        return Some(
            "EAL runs --in-memory: there is no runtime directory or multi-process socket for dpdk-dumpcap to \
             attach to"
                .to_owned(),
        );
    }
    if has("--no-shconf") {
        return Some("EAL runs --no-shconf: there is no shared configuration for dpdk-dumpcap to attach to".to_owned());
    }
    if !hugepages {
        return Some(
            "EAL runs without hugepages (--no-huge): its memory is anonymous and a secondary process such as \
             dpdk-dumpcap cannot map it; use memory mode hugepages to capture"
                .to_owned(),
        );
    }
    let unlinks = args.iter().any(|a| a == "--huge-unlink" || a == "--huge-unlink=always");
    if unlinks {
        return Some(
            "EAL runs with --huge-unlink: the hugepage files are gone and a secondary process such as \
             dpdk-dumpcap cannot map them"
                .to_owned(),
        );
    }
    None
}

/// Called once right after a successful `rte_eal_init`: initialises `rte_pdump` if capture was asked
/// for and this EAL can serve it, and logs the outcome (a warning when capture was asked for but is
/// unavailable).
pub(crate) fn start(requested: bool, args: &[String], hugepages: bool, prefix: Option<&str>) -> CaptureStatus {
    if !requested {
        log::info!("packet capture: disabled by the application (no rte_pdump_init)");
        return CaptureStatus::Disabled;
    }
    if let Some(why) = capture_blocker(args, hugepages) {
        log::warn!("packet capture unavailable: {why}");
        return CaptureStatus::Unavailable(why);
    }
    // SAFETY: EAL is initialised and this runs once per process (right after rte_eal_init); the call
    // registers the pdump multi-process action and reserves its statistics memzone.
    let rc = unsafe { ffi::rte_pdump_init() };
    if rc != 0 {
        let why = format!("rte_pdump_init failed: {}", super::error::strerror(last_rte_errno()));
        log::warn!("packet capture unavailable: {why}");
        return CaptureStatus::Unavailable(why);
    }
    log::info!("packet capture: enabled (dpdk-dumpcap --file-prefix={} -i <port>)", prefix.unwrap_or("rte"));
    CaptureStatus::Enabled
}

/// Shutdown side, held by the last EAL handle while it tears down: made before the clean-up, it calls
/// `rte_pdump_uninit` (no new capture request is answered from then on); dropped after it, it removes
/// the hugepage files of this process's prefix that DPDK left (capture keeps them linked while running).
pub(crate) struct Teardown {
    hugepage_prefix: Option<String>,
}

impl Teardown {
    /// Uninitialises `rte_pdump` if [`start`] initialised it.
    pub(crate) fn begin(status: &CaptureStatus, prefix: Option<&str>) -> Teardown {
        if status.is_enabled() {
            // SAFETY: rte_pdump_init succeeded in this process and EAL is still running; uninit only
            // unregisters the multi-process action.
            if unsafe { ffi::rte_pdump_uninit() } != 0 {
                log::debug!("rte_pdump_uninit failed: {}", super::error::strerror(last_rte_errno()));
            }
        }
        Teardown { hugepage_prefix: status.is_enabled().then(|| prefix.map(str::to_owned)).flatten() }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(prefix) = &self.hugepage_prefix {
            let mut removed = 0;
            for path in hugepage_files(prefix) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => log::debug!("could not remove hugepage file {}: {e}", path.display()),
                }
            }
            log::debug!("removed {removed} hugepage file(s) of prefix {prefix}");
        }
    }
}

/// Every mounted hugetlbfs directory.
fn hugetlbfs_mounts() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let dir = fields.nth(1)?;
            (fields.next() == Some("hugetlbfs")).then(|| PathBuf::from(dir.replace("\\040", " ")))
        })
        .collect()
}

/// Whether `name` is a hugepage file of `prefix` as EAL names them: `<prefix>map_<n>`.
fn is_hugepage_file_of(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("map_"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The hugepage files of `prefix` in every hugetlbfs mount.
fn hugepage_files(prefix: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in hugetlbfs_mounts() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|n| is_hugepage_file_of(n, prefix)) {
                files.push(entry.path());
            }
        }
    }
    files
}

/// The pid of a rosette default prefix (`rosette-<pid>`) that a hugepage file `rosette-<pid>map_<n>`
/// belongs to.
fn default_prefix_pid(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix("rosette-")?;
    let (pid, tail) = rest.split_once("map_")?;
    (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    pid.parse().ok()
}

/// Removes the hugepage files of `rosette-<pid>` prefixes whose process is gone and that no process
/// holds a lock on (EAL locks every segment it maps, primary and secondary alike): what a crashed or
/// killed rosette process with capture on leaves behind. Returns how many it removed.
pub(crate) fn sweep_stale_hugepage_files() -> usize {
    let mut removed = 0;
    for dir in hugetlbfs_mounts() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(default_prefix_pid) else { continue };
            if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
                continue;
            }
            if unlocked(&entry.path()) && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        log::info!("removed {removed} hugepage file(s) left by rosette processes that are gone");
    }
    removed
}

/// True when no process holds a lock on the file (an exclusive, non-blocking `flock` succeeds).
fn unlocked(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else { return false };
    // SAFETY: flock on a file descriptor this function owns; the lock goes with the descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capture_needs_hugepage_files_and_a_runtime_directory() {
        assert_eq!(capture_blocker(&strings(&["r", "-l", "0,1", "--file-prefix=rosette-1"]), true), None);
        assert_eq!(capture_blocker(&strings(&["r", "--huge-unlink=never"]), true), None);
        assert_eq!(capture_blocker(&strings(&["r", "--huge-unlink=existing"]), true), None);
        let no_huge = capture_blocker(&strings(&["r", "--no-huge", "-m", "256"]), false).unwrap();
        assert!(no_huge.contains("--no-huge") && no_huge.contains("hugepages"), "{no_huge}");
        assert!(capture_blocker(&strings(&["r", "--in-memory"]), true).unwrap().contains("--in-memory"));
        assert!(capture_blocker(&strings(&["r", "--no-shconf"]), true).unwrap().contains("--no-shconf"));
        assert!(capture_blocker(&strings(&["r", "--huge-unlink"]), true).unwrap().contains("--huge-unlink"));
        assert!(capture_blocker(&strings(&["r", "--huge-unlink=always"]), true).is_some());
        // --in-memory wins over the memory reason: it is the one to change first.
        assert!(capture_blocker(&strings(&["r", "--in-memory", "--no-huge"]), false).unwrap().contains("--in-memory"));
    }

    #[test]
    fn hugepage_file_names() {
        assert!(is_hugepage_file_of("rosette-42map_0", "rosette-42"));
        assert!(is_hugepage_file_of("rosette-42map_117", "rosette-42"));
        assert!(!is_hugepage_file_of("rosette-421map_0", "rosette-42"));
        assert!(!is_hugepage_file_of("rosette-42map_", "rosette-42"));
        assert!(!is_hugepage_file_of("rosette-42map_1x", "rosette-42"));
        assert_eq!(default_prefix_pid("rosette-4242map_3"), Some(4242));
        assert_eq!(default_prefix_pid("rosette-mineMap_3"), None);
        assert_eq!(default_prefix_pid("rosette-12map_"), None);
        assert_eq!(default_prefix_pid("rtemap_0"), None);
    }
}
