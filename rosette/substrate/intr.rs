//! Control-path calls run on DPDK's interrupt thread, serialized with the PMDs' own handlers.
//!
//! Some PMDs handle their peer's control messages on the EAL interrupt thread and change the same
//! device state that the application's stop and close change, without a lock between the two. The
//! 22.11 memif PMD is one: when its peer goes away, `memif_disconnect` runs on the interrupt thread
//! and frees the device's shared-memory regions; `rte_eth_dev_stop` and `rte_eth_dev_close` run the
//! same function on the application's thread. Racing, the two free the regions twice ("EAL: Error:
//! Invalid memory", or a segfault). Run as an EAL alarm callback, stop and close execute on the
//! interrupt thread, one after another with the PMD's handlers, and the race is gone.
//!
//! At shutdown the thread is parked for good before `rte_eal_cleanup` ([`park_interrupt_thread`]).
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::ffi;

/// A call waiting for the interrupt thread, and its outcome.
struct Call {
    state: Mutex<State>,
    done: Condvar,
    work: fn(u16) -> i32,
    port: u16,
}

enum State {
    /// Scheduled, not started.
    Pending,
    /// Finished with this return code.
    Done(i32),
    /// Given up before it started: the caller runs the work itself.
    Withdrawn,
}

extern "C" fn run_call(arg: *mut c_void) {
    // SAFETY: arg is the Arc<Call> leaked by `run_on_interrupt_thread` for exactly this alarm, which
    // DPDK fires at most once; the reference is taken back here, once.
    let call = unsafe { Arc::from_raw(arg.cast_const().cast::<Call>()) };
    let mut state = call.state.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*state, State::Pending) {
        *state = State::Done((call.work)(call.port));
        call.done.notify_all();
    }
}

/// Runs `work(port)` on the EAL interrupt thread and returns its result, or `None` when it could not
/// be scheduled or did not start within `timeout` (the caller then runs it on its own thread).
///
/// Must not be called from the interrupt thread itself (it would wait for itself until `timeout`).
pub(crate) fn run_on_interrupt_thread(work: fn(u16) -> i32, port: u16, timeout: Duration) -> Option<i32> {
    let call = Arc::new(Call { state: Mutex::new(State::Pending), done: Condvar::new(), work, port });
    let arg = Arc::into_raw(call.clone()).cast_mut().cast::<c_void>();
    // SAFETY: run_call matches the callback type and takes back the reference behind arg; 1 µs is a
    // valid delay.
    let rc = unsafe { ffi::rte_eal_alarm_set(1, Some(run_call), arg) };
    if rc != 0 {
        // SAFETY: the alarm was not set, so run_call never runs: the reference is still ours.
        drop(unsafe { Arc::from_raw(arg.cast_const().cast::<Call>()) });
        return None;
    }
    let deadline = Instant::now() + timeout;
    let mut state = call.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match *state {
            State::Done(rc) => return Some(rc),
            State::Withdrawn => return None,
            State::Pending => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // The alarm may still fire later; it will find the call withdrawn and do nothing.
                    *state = State::Withdrawn;
                    return None;
                }
                state = call.done.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
            }
        }
    }
}

/// Set by the parking callback once the interrupt thread is inside it.
static PARKED: AtomicBool = AtomicBool::new(false);

extern "C" fn park_forever(_arg: *mut c_void) {
    PARKED.store(true, Ordering::SeqCst);
    // Never returns: the thread ends with the process. `park` may wake spuriously, hence the loop.
    loop {
        std::thread::park();
    }
}

/// Parks the EAL interrupt thread inside an interrupt callback that never returns, so that it touches
/// nothing from then on. Returns true once it is parked (false when it could not be arranged or the
/// thread did not get there within `timeout`).
///
/// DPDK 22.11 never stops the interrupt thread, not even in `rte_eal_cleanup`, and some PMDs leave
/// interrupt sources behind whose handles live in DPDK memory (the memif listener socket's is freed
/// without being unregistered). `rte_eal_cleanup` then unmaps that memory while the thread may still
/// walk its source list — a segfault at its next wake-up, seen here about once in thirty runs. A
/// parked thread walks nothing. The callback hangs off a source of our own (an eventfd), not an
/// alarm: `rte_eal_cleanup` unregisters the alarm source synchronously and would wait forever for a
/// callback that never returns. Call this only when no more device work is coming: after the last
/// port is closed, right before `rte_eal_cleanup`.
pub(crate) fn park_interrupt_thread(timeout: Duration) -> bool {
    if PARKED.load(Ordering::SeqCst) {
        return true;
    }
    // SAFETY: a plain system call; the descriptor is ours.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    // SAFETY: allocates a process-private handle (flags 0 = RTE_INTR_INSTANCE_F_PRIVATE), or null.
    let handle = unsafe { ffi::rte_intr_instance_alloc(0) };
    let registered = if handle.is_null() {
        false
    } else {
        // SAFETY: handle is the non-null handle just allocated; park_forever matches the callback type
        // and ignores its argument. On success the handle and the descriptor are never freed: the
        // thread parks inside their callback until the process ends.
        unsafe {
            ffi::rte_intr_fd_set(handle, fd) == 0
                && ffi::rte_intr_type_set(handle, ffi::RTE_INTR_HANDLE_EXT) == 0
                && ffi::rte_intr_callback_register(handle, Some(park_forever), core::ptr::null_mut()) == 0
        }
    };
    if !registered {
        // SAFETY: the callback is not registered, so nothing else refers to the handle or descriptor.
        unsafe {
            ffi::rte_intr_instance_free(handle);
            libc::close(fd);
        }
        return false;
    }
    let one = 1u64;
    // SAFETY: writes the 8 bytes of `one` to our eventfd, which makes it readable and wakes the thread.
    let written = unsafe { libc::write(fd, (&raw const one).cast::<c_void>(), 8) };
    if written != 8 {
        return false;
    }
    let deadline = Instant::now() + timeout;
    while !PARKED.load(Ordering::SeqCst) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    true
}
