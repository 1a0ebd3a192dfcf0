//! Which CPUs this process's worker lcores spin on, and who else spins there.
//!
//! A worker lcore busy-polls: it never sleeps, so two workers on one CPU — two rosette processes that
//! both declared their worker on lcore 1, the natural thing to write — time-share it in scheduler
//! slices of a millisecond or more, far longer than a transport's round trip. Three things here:
//!
//! - **A registry of claims across processes, without a daemon** ([`CpuClaims`]): at EAL start every
//!   worker lcore's CPU is claimed with a small file under [`claims_dir`] (`cpu<N>.<pid>`: pid, process
//!   start time, lcore, program name). The claims of other live processes on the same CPUs give one
//!   warning that names the CPU and the other process ([`sharing_warning`]). A claim whose process is
//!   gone (or whose pid was reused: the start time differs) is stale: ignored and removed. A clean stop
//!   (the last [`super::Eal`] handle dropped) removes this process's claims.
//! - **Shared-CPU flags** ([`cpu_shared`]): while the EAL runs, a thread of this process re-reads the
//!   registry every [`RESCAN`] and marks each worker lcore whose CPU another live process (or another
//!   worker of this process) also spins on. The generated poll loop reads the flag (one relaxed load)
//!   and, on a shared CPU only, yields the CPU after a run of idle iterations (see
//!   `rosette::pipeline::stats::LcoreStats::publish`), so the peer on the same CPU runs when there is
//!   work for it instead of at the end of a scheduler slice. The first process learns of the second
//!   this way too, within [`RESCAN`].
//! - **Children that do not inherit the EAL pinning** ([`SpawnUnpinned`]): DPDK pins the main thread
//!   to its lcore's CPU, and a process spawned from it inherits that one-CPU mask. The mask this
//!   process had before EAL start is remembered, and [`SpawnUnpinned::unpinned`] gives it back to the
//!   child between fork and exec.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The environment variable that moves the claims directory (tests give each scenario its own).
pub const CLAIMS_DIR_ENV: &str = "ROSETTE_CPU_CLAIMS_DIR";

/// Set to `off`, poll loops never yield their CPU, shared or not (to measure what the yield buys).
pub const IDLE_YIELD_ENV: &str = "ROSETTE_IDLE_YIELD";

/// How often a running process re-reads the registry to update [`cpu_shared`].
pub const RESCAN: Duration = Duration::from_millis(200);

/// Highest lcore id + 1 that [`cpu_shared`] tracks (DPDK's `RTE_MAX_LCORE` on Debian's build).
const MAX_LCORES: usize = 128;

/// Per-lcore "another busy thread spins on this lcore's CPU" flags.
static SHARED: [AtomicBool; MAX_LCORES] = [const { AtomicBool::new(false) }; MAX_LCORES];

/// True when worker lcore `lcore`'s CPU is also spun on by another live rosette process's worker (or
/// another worker lcore of this process), as last seen by the registry scan. One relaxed load: cheap
/// enough for every iteration of a poll loop.
#[inline(always)]
pub fn cpu_shared(lcore: u32) -> bool {
    SHARED.get(lcore as usize).is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Where claims live: `$ROSETTE_CPU_CLAIMS_DIR`, else `/dev/shm/rosette/cpus` (a tmpfs every Linux
/// has, writable by every user, emptied at boot).
pub fn claims_dir() -> PathBuf {
    std::env::var_os(CLAIMS_DIR_ENV).map_or_else(|| PathBuf::from("/dev/shm/rosette/cpus"), PathBuf::from)
}

/// One claim: process `pid` (started at `start_time`, in clock ticks since boot, as
/// `/proc/<pid>/stat` says) runs its worker lcore `lcore` on CPU `cpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The CPU.
    pub cpu: u32,
    /// The claiming process.
    pub pid: u32,
    /// Its start time (field 22 of `/proc/<pid>/stat`): tells a live claimant from a reused pid.
    pub start_time: u64,
    /// Its worker lcore on that CPU.
    pub lcore: u32,
    /// Its program name.
    pub name: String,
}

impl Claim {
    /// The claim file's name: `cpu<N>.<pid>`.
    pub fn file_name(&self) -> String {
        format!("cpu{}.{}", self.cpu, self.pid)
    }

    /// The claim file's content.
    pub fn to_text(&self) -> String {
        format!(
            "cpu={}\npid={}\nstart_time={}\nlcore={}\nname={}\n",
            self.cpu,
            self.pid,
            self.start_time,
            self.lcore,
            self.name.replace('\n', " ")
        )
    }

    /// Parses [`Claim::to_text`]; `None` for anything else (a half-written or foreign file).
    pub fn parse(text: &str) -> Option<Claim> {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in text.lines() {
            let (key, value) = line.split_once('=')?;
            fields.insert(key, value);
        }
        Some(Claim {
            cpu: fields.get("cpu")?.parse().ok()?,
            pid: fields.get("pid")?.parse().ok()?,
            start_time: fields.get("start_time")?.parse().ok()?,
            lcore: fields.get("lcore")?.parse().ok()?,
            name: (*fields.get("name")?).to_owned(),
        })
    }

    /// Whether the claimant still runs: `start_time_of(pid)` is the start time of the process that now
    /// has that pid (`None`: no such process).
    pub fn is_live(&self, start_time_of: impl Fn(u32) -> Option<u64>) -> bool {
        start_time_of(self.pid) == Some(self.start_time)
    }
}

/// The start time (field 22) in the text of a `/proc/<pid>/stat` file. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses: fields are counted after the last `)`.
pub fn start_time_from_stat(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: field 22 is the 20th of them.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The start time of process `pid`, `None` if there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    start_time_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This program's name, as a claim records it: the file name of `argv[0]`.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "?".to_owned())
}

/// The one warning for `mine` (this process's (lcore, cpu) pairs) against `others` (live claims of
/// other processes), or `None` when no CPU is shared. Names every shared CPU, the lcore here and the
/// other process's pid, program name and lcore, and what to do.
pub fn sharing_warning(mine: &[(u32, u32)], others: &[Claim]) -> Option<String> {
    let mut parts = Vec::new();
    for &(lcore, cpu) in mine {
        let on: Vec<String> = others
            .iter()
            .filter(|c| c.cpu == cpu)
            .map(|c| format!("pid {} ({}, lcore {})", c.pid, c.name, c.lcore))
            .collect();
        if !on.is_empty() {
            parts.push(format!("CPU {cpu} (this process's worker lcore {lcore}) is also spun on by {}", on.join(", ")));
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "{}: two busy-polling workers on one CPU take turns in scheduler slices, so both run slower; \
         declare the workers of processes that run side by side on different lcores (`cores: - lcore:` \
         and `eal.lcores`)",
        parts.join("; ")
    ))
}

/// The lcores among `mine` ((lcore, cpu) pairs) whose CPU another busy thread also spins on: a live
/// claim of another process in `others`, or another of `mine`.
pub fn shared_lcores(mine: &[(u32, u32)], others: &[Claim]) -> Vec<u32> {
    mine.iter()
        .filter(|&&(lcore, cpu)| {
            others.iter().any(|c| c.cpu == cpu) || mine.iter().any(|&(l, c)| l != lcore && c == cpu)
        })
        .map(|&(lcore, _)| lcore)
        .collect()
}

/// The live claims of other processes in `dir`; stale ones (their process is gone) are removed.
fn read_others(dir: &Path, me: u32) -> Vec<Claim> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut others = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("cpu") {
            continue;
        }
        let Some(claim) = std::fs::read_to_string(entry.path()).ok().and_then(|t| Claim::parse(&t)) else {
            continue;
        };
        if claim.pid == me {
            continue;
        }
        if claim.is_live(process_start_time) {
            others.push(claim);
        } else {
            // Stale: its process died without a clean stop. Another user's file may not be ours to
            // remove (sticky directory); it stays ignored then.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    others
}

/// This process's claims (see the module docs); dropping it removes them and stops the rescans.
#[derive(Debug)]
pub struct CpuClaims {
    dir: PathBuf,
    files: Vec<PathBuf>,
    mine: Vec<(u32, u32)>,
    stop: Arc<AtomicBool>,
    rescan: Option<std::thread::JoinHandle<()>>,
}

impl CpuClaims {
    /// Claims the CPU of every `(lcore, cpu)` pair of `mine`, then reads the other claims: returns the
    /// claims and the warning to give, if any CPU is shared. Claim first, read second: of two processes
    /// starting together, at least the later one sees the other. A directory that cannot be written
    /// (permissions) costs the warning, never the start.
    /// `pipeline` (the declared pipeline's name, if any) goes into the program name claims record:
    /// `rosette-perf (server)`.
    pub fn claim(mine: &[(u32, u32)], pipeline: Option<&str>) -> (CpuClaims, Option<String>) {
        let name = match pipeline {
            Some(p) if p != program_name() => format!("{} ({p})", program_name()),
            _ => program_name(),
        };
        CpuClaims::claim_in(claims_dir(), mine, &name)
    }

    fn claim_in(dir: PathBuf, mine: &[(u32, u32)], name: &str) -> (CpuClaims, Option<String>) {
        let me = std::process::id();
        let start_time = process_start_time(me).unwrap_or(0);
        let mut files = Vec::new();
        if create_shared_dir(&dir).is_ok() {
            for &(lcore, cpu) in mine {
                let claim = Claim { cpu, pid: me, start_time, lcore, name: name.to_owned() };
                let path = dir.join(claim.file_name());
                let tmp = dir.join(format!(".{}.tmp", claim.file_name()));
                let written = std::fs::File::create(&tmp)
                    .and_then(|mut f| f.write_all(claim.to_text().as_bytes()))
                    .and_then(|()| std::fs::rename(&tmp, &path));
                match written {
                    Ok(()) => files.push(path),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        log::debug!("cannot claim CPU {cpu} in {}: {e}", dir.display());
                    }
                }
            }
        }
        let others = read_others(&dir, me);
        let warning = sharing_warning(mine, &others);
        set_shared(mine, &shared_lcores(mine, &others));
        let stop = Arc::new(AtomicBool::new(false));
        let rescan = (!mine.is_empty())
            .then(|| {
                let (mine, stop) = (mine.to_vec(), stop.clone());
                let dir_c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
                std::thread::Builder::new()
                    .name("rosette-cpus".to_owned())
                    .spawn(move || {
                        // Everything the rescans need is allocated here, once: a process that counts
                        // its allocations (tests/alloc.rs) sees none from this thread while it runs.
                        let mut others_on = vec![false; mine.len()];
                        let mut shared = vec![false; mine.len()];
                        while !stop.load(Ordering::Acquire) {
                            std::thread::park_timeout(RESCAN);
                            if stop.load(Ordering::Acquire) {
                                break;
                            }
                            rescan(&dir_c, me, &mine, &mut others_on);
                            for (i, &(lcore, cpu)) in mine.iter().enumerate() {
                                shared[i] = others_on[i] || mine.iter().any(|&(l, c)| l != lcore && c == cpu);
                            }
                            store_shared(&mine, &shared);
                        }
                    })
                    .ok()
            })
            .flatten();
        (CpuClaims { dir, files, mine: mine.to_vec(), stop, rescan }, warning)
    }

    /// The (lcore, cpu) pairs claimed.
    pub fn lcores(&self) -> &[(u32, u32)] {
        &self.mine
    }

    /// The directory the claims are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for CpuClaims {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.rescan.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        set_shared(&self.mine, &[]);
    }
}

fn set_shared(mine: &[(u32, u32)], shared: &[u32]) {
    let flags: Vec<bool> = mine.iter().map(|(lcore, _)| shared.contains(lcore)).collect();
    store_shared(mine, &flags);
}

/// Stores `shared[i]` as the flag of `mine[i]`'s lcore (all clear with `ROSETTE_IDLE_YIELD=off`).
/// Allocates nothing once the environment was read (at the first call, at claim time).
fn store_shared(mine: &[(u32, u32)], shared: &[bool]) {
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var(IDLE_YIELD_ENV).is_ok_and(|v| v == "off"));
    // An lcore with several CPUs is shared when any of them is.
    for &(lcore, _) in mine {
        let any = mine.iter().zip(shared).any(|(&(l, _), &s)| l == lcore && s);
        if let Some(flag) = SHARED.get(lcore as usize) {
            flag.store(any && !off, Ordering::Relaxed);
        }
    }
}

/// Parses the decimal number at the start of `bytes` and what follows it.
fn leading_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = bytes[..digits].iter().fold(0u64, |v, &b| v * 10 + u64::from(b - b'0'));
    Some((value, &bytes[digits..]))
}

/// `cpu<N>.<pid>` → (N, pid), without allocating.
fn parse_claim_name(name: &[u8]) -> Option<(u32, u32)> {
    let (cpu, rest) = leading_number(name.strip_prefix(b"cpu")?)?;
    let (pid, rest) = leading_number(rest.strip_prefix(b".")?)?;
    rest.is_empty().then_some((u32::try_from(cpu).ok()?, u32::try_from(pid).ok()?))
}

/// The `start_time=` value of a claim file's text, without allocating.
fn claim_start_time(text: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| leading_number(line.strip_prefix(b"start_time=")?).map(|(v, _)| v))
}

/// Reads the file at `path` (NUL-terminated) into `buf`; the bytes read.
fn read_small(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    let path = std::ffi::CStr::from_bytes_with_nul(path).ok()?;
    // SAFETY: path is NUL-terminated; open has no other precondition.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: buf is valid for buf.len() bytes of writing; fd is open.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    usize::try_from(n).ok()
}

/// Writes `parts` one after the other and a NUL into `buf`; the bytes with the NUL.
fn join_into<'b>(buf: &'b mut [u8], parts: &[&[u8]]) -> Option<&'b [u8]> {
    let mut at = 0;
    for part in parts {
        buf.get_mut(at..at + part.len())?.copy_from_slice(part);
        at += part.len();
    }
    *buf.get_mut(at)? = 0;
    Some(&buf[..=at])
}

/// Decimal digits of `v` into `buf`.
fn decimal(v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut at = buf.len();
    let mut v = v;
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[at..]
}

/// The periodic rescan: `others_on[i]` = some live process other than `me` claims `mine[i]`'s CPU.
/// Nothing here allocates from Rust's allocator (directory listing through libc, paths and file
/// contents in stack buffers); stale claims are left for the next start's scan to remove.
fn rescan(dir: &std::ffi::CStr, me: u32, mine: &[(u32, u32)], others_on: &mut [bool]) {
    others_on.iter_mut().for_each(|o| *o = false);
    // SAFETY: dir is a valid C string; opendir returns null on failure, checked.
    let handle = unsafe { libc::opendir(dir.as_ptr()) };
    if handle.is_null() {
        return;
    }
    let dir_bytes = dir.to_bytes();
    loop {
        // SAFETY: handle is an open directory stream used by this thread only.
        let entry = unsafe { libc::readdir(handle) };
        if entry.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated; it stays valid
        // until the next readdir on this stream, and is copied from before then.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        let Some((cpu, pid)) = parse_claim_name(name) else { continue };
        if pid == me || !mine.iter().any(|&(_, c)| c == cpu) {
            continue;
        }
        let (mut path, mut text) = ([0u8; 512], [0u8; 256]);
        let Some(claim_path) = join_into(&mut path, &[dir_bytes, b"/", name]) else { continue };
        let Some(n) = read_small(claim_path, &mut text) else { continue };
        let Some(start_time) = claim_start_time(&text[..n]) else { continue };
        let (mut digits, mut stat_path, mut stat) = ([0u8; 10], [0u8; 64], [0u8; 1024]);
        let Some(stat_path) = join_into(&mut stat_path, &[b"/proc/", decimal(pid, &mut digits), b"/stat"]) else {
            continue;
        };
        let live = read_small(stat_path, &mut stat)
            .and_then(|n| std::str::from_utf8(&stat[..n]).ok())
            .and_then(start_time_from_stat)
            == Some(start_time);
        if live {
            for (i, &(_, c)) in mine.iter().enumerate() {
                others_on[i] |= c == cpu;
            }
        }
    }
    // SAFETY: handle was opened above and is closed once.
    unsafe { libc::closedir(handle) };
}

/// Creates `dir` (and its parent) so that every user can add claims: mode 1777 like /tmp, so nobody
/// removes another user's live claim.
fn create_shared_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut created = Some(dir);
    while let Some(d) = created {
        if d == Path::new("/dev/shm") || d == Path::new("/") || d == std::env::temp_dir() {
            break;
        }
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777));
        created = d.parent();
        if created.is_some_and(|p| !p.starts_with("/dev/shm/rosette")) {
            break;
        }
    }
    Ok(())
}

/// The CPUs this process may run on, as it was before EAL start pinned the main thread (remembered by
/// [`remember_original_affinity`]), else the calling thread's mask now.
pub fn original_affinity() -> Vec<u32> {
    ORIGINAL.get().cloned().unwrap_or_else(current_affinity)
}

static ORIGINAL: OnceLock<Vec<u32>> = OnceLock::new();

/// Remembers the calling thread's CPU mask as the process's original one (EAL start calls it before
/// `rte_eal_init` pins the main thread); later calls keep the first.
pub fn remember_original_affinity() {
    let _ = ORIGINAL.set(current_affinity());
}

/// The calling thread's CPU mask (empty if it cannot be read).
pub fn current_affinity() -> Vec<u32> {
    // SAFETY: cpu_set_t is plain bits, zeroed is a valid empty set; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    let (rc, set) = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        let rc = libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (rc, set)
    };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads bit `cpu` of a valid set; cpu < CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .map(|cpu| cpu as u32)
        .collect()
}

/// Spawning processes that run on the CPUs this process had before EAL pinned it.
pub trait SpawnUnpinned {
    /// Gives the child the CPU mask this process had before EAL start ([`original_affinity`]), set
    /// between fork and exec, instead of the one-CPU mask of the EAL thread that spawns it.
    fn unpinned(&mut self) -> &mut Self;
}

impl SpawnUnpinned for Command {
    fn unpinned(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt as _;
        let cpus = original_affinity();
        if cpus.is_empty() {
            return self;
        }
        // SAFETY: cpu_set_t is plain bits, zeroed is a valid empty set; CPU_SET writes bit `cpu` of it
        // and each cpu came from CPU_ISSET over 0..CPU_SETSIZE.
        let set = unsafe {
            let mut set: libc::cpu_set_t = core::mem::zeroed();
            for &cpu in &cpus {
                libc::CPU_SET(cpu as usize, &mut set);
            }
            set
        };
        // Runs in the child between fork and exec: one system call on a set copied in before the
        // fork, no allocation. A failure is ignored (the child keeps the inherited mask).
        let restore = move || {
            // SAFETY: sched_setaffinity reads size_of::<cpu_set_t>() bytes of a valid set.
            unsafe { libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) };
            Ok(())
        };
        // SAFETY: pre_exec needs a closure that is async-signal-safe: `restore` only makes a syscall.
        unsafe { self.pre_exec(restore) };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(cpu: u32, pid: u32, name: &str) -> Claim {
        Claim { cpu, pid, start_time: 77, lcore: 1, name: name.to_owned() }
    }

    #[test]
    fn claims_round_trip_and_reject_foreign_text() {
        let c = Claim { cpu: 3, pid: 4242, start_time: 123456, lcore: 1, name: "rosette-perf x".to_owned() };
        assert_eq!(c.file_name(), "cpu3.4242");
        assert_eq!(Claim::parse(&c.to_text()), Some(c));
        assert_eq!(Claim::parse("cpu=1\npid=2\n"), None);
        assert_eq!(Claim::parse("garbage"), None);
        assert_eq!(Claim::parse(""), None);
    }

    #[test]
    fn a_claim_is_live_only_while_its_process_with_that_start_time_runs() {
        let c = claim(1, 100, "a");
        assert!(c.is_live(|pid| (pid == 100).then_some(77)));
        assert!(!c.is_live(|_| None), "dead pid");
        assert!(!c.is_live(|pid| (pid == 100).then_some(78)), "reused pid");
    }

    #[test]
    fn start_time_is_field_22_even_with_parentheses_in_the_name() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 987654 1 2 3";
        assert_eq!(start_time_from_stat(stat), Some(987654));
        assert_eq!(start_time_from_stat("1 (x) S 1"), None);
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(start_time_from_stat(&me).is_some());
        assert_eq!(process_start_time(std::process::id()), start_time_from_stat(&me));
    }

    #[test]
    fn the_warning_names_each_shared_cpu_and_the_other_process() {
        assert_eq!(sharing_warning(&[(1, 1)], &[]), None);
        assert_eq!(sharing_warning(&[(1, 1)], &[claim(0, 9, "other")]), None);
        let w = sharing_warning(&[(1, 1), (2, 2)], &[claim(1, 9, "collector"), claim(2, 10, "perf")]).unwrap();
        assert!(
            w.starts_with("CPU 1 (this process's worker lcore 1) is also spun on by pid 9 (collector, lcore 1); CPU 2"),
            "{w}"
        );
        assert!(w.contains("pid 10 (perf, lcore 1)") && w.contains("different lcores"), "{w}");
    }

    #[test]
    fn shared_lcores_count_other_processes_and_own_workers() {
        assert_eq!(shared_lcores(&[(1, 1), (2, 0)], &[claim(1, 9, "x")]), vec![1]);
        assert_eq!(shared_lcores(&[(1, 1), (2, 1), (3, 0)], &[]), vec![1, 2]);
        assert!(shared_lcores(&[(1, 1)], &[claim(0, 9, "x")]).is_empty());
    }

    #[test]
    fn stale_claims_are_ignored_and_removed() {
        let dir = std::env::temp_dir().join(format!("rosette-claims-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A dead process (no pid this high) and a live one with the wrong start time: both stale.
        let dead = Claim { cpu: 5, pid: u32::MAX - 2, start_time: 1, lcore: 1, name: "dead".into() };
        std::fs::write(dir.join(dead.file_name()), dead.to_text()).unwrap();
        let reused = Claim { cpu: 5, pid: 1, start_time: u64::MAX, lcore: 1, name: "reused".into() };
        std::fs::write(dir.join(reused.file_name()), reused.to_text()).unwrap();
        // A live one: this test's parent (cargo's test runner or a shell), with its real start time.
        let parent = std::os::unix::process::parent_id();
        let live = Claim {
            cpu: 5,
            pid: parent,
            start_time: process_start_time(parent).unwrap(),
            lcore: 2,
            name: "live".into(),
        };
        std::fs::write(dir.join(live.file_name()), live.to_text()).unwrap();
        assert_eq!(read_others(&dir, std::process::id()), vec![live.clone()]);
        assert!(!dir.join(dead.file_name()).exists() && !dir.join(reused.file_name()).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn own_claims_are_written_read_by_others_and_removed_at_drop() {
        let dir = std::env::temp_dir().join(format!("rosette-claims-own-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Lcores no test EAL uses, so the flags of a concurrently running test stay untouched.
        let (claims, warning) = CpuClaims::claim_in(dir.clone(), &[(120, 0), (121, 0)], "t");
        assert_eq!(warning, None, "no other process claims CPU 0 in a fresh directory");
        assert!(cpu_shared(120) && cpu_shared(121), "two own workers on one CPU share it");
        let file = dir.join(format!("cpu0.{}", std::process::id()));
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = Claim::parse(&text).unwrap();
        assert!(parsed.is_live(process_start_time) && parsed.lcore == 121, "{text}");
        drop(claims);
        assert!(!file.exists() && !cpu_shared(120) && !cpu_shared(121));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_rescan_sees_live_claims_on_my_cpus_only() {
        assert_eq!(parse_claim_name(b"cpu12.345"), Some((12, 345)));
        assert_eq!(parse_claim_name(b".cpu1.2.tmp"), None);
        assert_eq!(parse_claim_name(b"cpu1.2.tmp"), None);
        assert_eq!(parse_claim_name(b"cpu.2"), None);
        assert_eq!(claim_start_time(claim(1, 2, "x").to_text().as_bytes()), Some(77));
        assert_eq!(decimal(0, &mut [0; 10]), b"0");
        assert_eq!(decimal(4_000_000_000, &mut [0; 10]), b"4000000000");
        let dir = std::env::temp_dir().join(format!("rosette-claims-rescan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let parent = std::os::unix::process::parent_id();
        let live =
            Claim { cpu: 3, pid: parent, start_time: process_start_time(parent).unwrap(), lcore: 1, name: "p".into() };
        std::fs::write(dir.join(live.file_name()), live.to_text()).unwrap();
        let dead = Claim { cpu: 4, pid: u32::MAX - 2, start_time: 1, lcore: 1, name: "d".into() };
        std::fs::write(dir.join(dead.file_name()), dead.to_text()).unwrap();
        let dir_c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let mut others = [true; 3];
        rescan(&dir_c, std::process::id(), &[(1, 3), (2, 4), (5, 6)], &mut others);
        assert_eq!(others, [true, false, false], "live claim on CPU 3 only; the dead one on CPU 4 does not count");
        rescan(&dir_c, parent, &[(1, 3)], &mut others[..1]);
        assert!(!others[0], "a process's own claim does not count");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_child_gets_the_original_mask_not_the_pinned_threads() {
        let all = current_affinity();
        assert!(!all.is_empty());
        let listed = |cmd: &mut Command| {
            let out = cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]).output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).split_whitespace().last().unwrap_or("").to_owned()
        };
        let expected = listed(&mut Command::new("sh"));
        std::thread::spawn(move || {
            remember_original_affinity();
            // Pin this thread to one CPU, as EAL pins its main thread.
            // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET sets a bit below CPU_SETSIZE;
            // sched_setaffinity reads the set.
            let rc = unsafe {
                let mut set: libc::cpu_set_t = core::mem::zeroed();
                libc::CPU_SET(all[0] as usize, &mut set);
                libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set)
            };
            assert_eq!(rc, 0);
            assert_eq!(current_affinity(), vec![all[0]]);
            assert_eq!(listed(&mut Command::new("sh")), all[0].to_string(), "a plain child inherits the pin");
            assert_eq!(listed(Command::new("sh").unpinned()), expected, "an unpinned child gets every CPU back");
        })
        .join()
        .unwrap();
    }
}
