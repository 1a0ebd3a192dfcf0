//! Running work on chosen lcores, joining it, and the stop flag every poll loop watches.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::eal::Eal;
use super::error::{Error, Result};
use super::ffi;

/// Set by SIGINT/SIGTERM once [`install_signal_handlers`] ran; every [`StopFlag`] sees it.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// A flag that tells poll loops to stop. Clones share it. It also reads as set once the process got
/// SIGINT or SIGTERM (after [`install_signal_handlers`]).
#[derive(Debug, Clone, Default)]
pub struct StopFlag {
    flag: Arc<AtomicBool>,
}

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Asks every loop watching this flag to stop.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// True once [`StopFlag::stop`] was called or a stop signal arrived. Cheap enough for every poll.
    #[inline(always)]
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || SIGNALLED.load(Ordering::Relaxed)
    }
}

/// Where a stop signal goes instead of [`SIGNALLED`] ([`route_stop_signals`]); null: to `SIGNALLED`.
static ROUTE: AtomicPtr<AtomicBool> = AtomicPtr::new(core::ptr::null_mut());
/// Stop signals received so far (either way).
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // Only atomic loads and stores: async-signal-safe.
    SIGNALS.fetch_add(1, Ordering::Relaxed);
    let route = ROUTE.load(Ordering::Acquire);
    if route.is_null() {
        SIGNALLED.store(true, Ordering::Relaxed);
    } else {
        // SAFETY: ROUTE only ever holds a pointer made from a `&'static AtomicBool`.
        unsafe { (*route).store(true, Ordering::Relaxed) };
    }
}

/// For a program that ends its run itself on Ctrl-C (drains, then stops its pipeline): SIGINT and
/// SIGTERM set `flag` instead of stopping every loop, from now on and after every later
/// [`install_signal_handlers`] (a pipeline launch calls it). Call it first thing in `main`, before
/// EAL starts and before any child process could forward a signal: a signal that arrives before
/// then kills the process (the default action), one that arrives after is never lost.
pub fn route_stop_signals(flag: &'static AtomicBool) -> Result<()> {
    ROUTE.store(flag as *const AtomicBool as *mut AtomicBool, Ordering::Release);
    install_signal_handlers()
}

/// How many SIGINT/SIGTERM arrived since [`install_signal_handlers`] or [`route_stop_signals`] (a
/// second Ctrl-C is a second count): what a parent compares to forward each one to its children.
pub fn stop_signals() -> u32 {
    SIGNALS.load(Ordering::Relaxed)
}

/// Sends SIGINT to process `pid` (a child this process started), as Ctrl-C would; false if it is gone.
pub fn interrupt_process(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill has no memory-safety preconditions; a positive pid names one process.
    pid > 0 && unsafe { libc::kill(pid, libc::SIGINT) } == 0
}

/// Makes SIGINT and SIGTERM set every [`StopFlag`] instead of killing the process, so loops drain and
/// free their mbufs. Call once, early (before launching lcores, which inherit the signal mask).
pub fn install_signal_handlers() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is given a zeroed, then filled, struct with a handler that only stores to an
        // atomic; the old action is not needed.
        let rc = unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &action, core::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Error::InvalidArgument { detail: format!("cannot install handler for signal {signal}") });
        }
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived (after [`install_signal_handlers`]).
pub fn stop_signalled() -> bool {
    SIGNALLED.load(Ordering::Relaxed)
}

type Outcome<R> = core::result::Result<R, Box<dyn Any + Send + 'static>>;

struct Job<F, R> {
    work: Option<F>,
    result: Arc<Mutex<Option<Outcome<R>>>>,
}

extern "C" fn run_job<F, R>(arg: *mut c_void) -> libc::c_int
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // SAFETY: arg is the Box<Job<F, R>> leaked by launch() for exactly this call; it is taken back once.
    let mut job = unsafe { Box::from_raw(arg.cast::<Job<F, R>>()) };
    let work = job.work.take();
    // A panic must not unwind into DPDK's C frames: catch it and hand it to join().
    let outcome = catch_unwind(AssertUnwindSafe(move || work.map(|w| w())));
    let outcome = match outcome {
        Ok(Some(value)) => Ok(value),
        Ok(None) => return -1,
        Err(panic) => Err(panic),
    };
    let failed = outcome.is_err();
    *job.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    i32::from(failed)
}

/// A job running on a worker lcore. [`LcoreJoin::join`] waits for it; dropping the handle also waits, so
/// a job never outlives what it borrowed from its launcher's scope of ownership.
pub struct LcoreJoin<R> {
    lcore: u32,
    result: Arc<Mutex<Option<Outcome<R>>>>,
    joined: bool,
    _eal: Eal,
}

/// Runs `work` on worker lcore `lcore`. Fails if the lcore is not an enabled worker or is busy.
pub fn launch<F, R>(eal: &Eal, lcore: u32, work: F) -> Result<LcoreJoin<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if lcore == eal.main_lcore() {
        return Err(Error::Lcore {
            lcore,
            detail: "is the main lcore; work can only be launched on worker lcores".to_owned(),
        });
    }
    eal.lcore_socket(lcore)?;
    let result = Arc::new(Mutex::new(None));
    let job = Box::new(Job { work: Some(work), result: result.clone() });
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: run_job::<F, R> matches the job type behind arg; on success DPDK calls it exactly once on
    // the lcore, which frees the box; on failure we free it below.
    let rc = unsafe { ffi::rte_eal_remote_launch(Some(run_job::<F, R>), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so DPDK never took arg; reclaim it.
        drop(unsafe { Box::from_raw(arg.cast::<Job<F, R>>()) });
        return Err(Error::Lcore { lcore, detail: format!("cannot launch work: {}", super::error::strerror(-rc)) });
    }
    Ok(LcoreJoin { lcore, result, joined: false, _eal: eal.clone() })
}

impl<R> LcoreJoin<R> {
    /// The lcore the job runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// True once the job has returned.
    pub fn is_finished(&self) -> bool {
        self.result.lock().map(|r| r.is_some()).unwrap_or(true)
    }

    fn wait(&mut self) {
        if !self.joined {
            // rte_eal_wait_lcore spins on the lcore's state, burning a CPU for as long as the job runs
            // (a whole benchmark, on a machine where the workers need every CPU). Sleep until the job
            // is over (its result is stored, or its box, which holds the other reference, is gone),
            // then let DPDK observe the lcore go back to WAIT, which takes a moment at most.
            let mut nap = Duration::from_micros(50);
            while !self.is_finished() && Arc::strong_count(&self.result) > 1 {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(2));
            }
            // SAFETY: lcore is a worker we launched on; waiting has no other precondition.
            unsafe { ffi::rte_eal_wait_lcore(self.lcore) };
            self.joined = true;
        }
    }

    /// Waits for the job and returns its value, or the panic it ended with.
    pub fn join(mut self) -> core::result::Result<R, Box<dyn Any + Send + 'static>> {
        self.wait();
        let outcome = self.result.lock().unwrap_or_else(|e| e.into_inner()).take();
        outcome.unwrap_or_else(|| Err(Box::new("lcore job did not run")))
    }
}

impl<R> core::fmt::Debug for LcoreJoin<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LcoreJoin").field("lcore", &self.lcore).field("finished", &self.is_finished()).finish()
    }
}

impl<R> Drop for LcoreJoin<R> {
    fn drop(&mut self) {
        self.wait();
    }
}

/// The lcore id of the calling thread (`u32::MAX` on a thread that is not an EAL lcore).
#[inline]
pub fn current_lcore() -> u32 {
    // SAFETY: reads a thread-local through DPDK's accessor; no preconditions.
    unsafe { ffi::rte_lcore_id() }
}

/// The NUMA socket of the calling thread's lcore.
#[inline]
pub fn current_socket() -> u32 {
    // SAFETY: as above.
    unsafe { ffi::rte_socket_id() }
}
