//! `rte_eth_rx_burst` / `rte_eth_tx_burst` inlined into Rust.
//!
//! DPDK's burst functions are `static inline` in C. Called through the generated C wrappers they cost an
//! extra, non-inlinable call per burst; here their 22.11 bodies are written out in Rust so the poll loop
//! compiles to what a C application gets: one look-up in `rte_eth_fp_ops`, one indirect call into the
//! PMD, and the rx/tx callback check. build.rs sets `rosette_inline_fastpath` only for DPDK 22.11, whose
//! inline bodies these mirror; any other version uses the wrappers.

use super::ffi;

/// Receives up to `n` packets into `pkts`.
///
/// # Safety
/// `port`/`queue` must be a configured rx queue polled by this thread only; `pkts` must have room for
/// `n` pointers.
#[inline(always)]
pub(crate) unsafe fn rx_burst(port: u16, queue: u16, pkts: *mut *mut ffi::rte_mbuf, n: u16) -> u16 {
    #[cfg(rosette_inline_fastpath)]
    {
        use core::sync::atomic::{AtomicPtr, Ordering};
        let table = core::ptr::addr_of!(ffi::rte_eth_fp_ops).cast::<ffi::rte_eth_fp_ops>();
        // SAFETY: port < RTE_MAX_ETHPORTS for every valid port id, so the element exists; ethdev keeps
        // each entry valid (dummy functions when stopped) for the life of the process.
        let ops = unsafe { &*table.add(usize::from(port)) };
        if let Some(burst) = ops.rx_pkt_burst {
            // SAFETY: rxq.data has an entry per configured queue (the caller guarantees the queue exists).
            let qd = unsafe { *ops.rxq.data.add(usize::from(queue)) };
            // SAFETY: the PMD's rx function for this queue, called with its queue data and caller-owned room.
            let mut nb = unsafe { burst(qd, pkts, n) };
            // SAFETY: clbk has an entry per queue; DPDK reads it with a relaxed atomic load, as here.
            let cb = unsafe { AtomicPtr::from_ptr(ops.rxq.clbk.add(usize::from(queue))) }.load(Ordering::Relaxed);
            if !cb.is_null() {
                // SAFETY: same arguments DPDK's inline function passes when callbacks are installed.
                nb = unsafe { ffi::rte_eth_call_rx_callbacks(port, queue, pkts, nb, n, cb) };
            }
            return nb;
        }
    }
    // SAFETY: the caller's guarantees are exactly those of rte_eth_rx_burst.
    unsafe { ffi::rte_eth_rx_burst(port, queue, pkts, n) }
}

/// Hands up to `n` packets of `pkts` to the PMD; returns how many it took.
///
/// # Safety
/// `port`/`queue` must be a configured tx queue used by this thread only; `pkts[..n]` must be owned
/// mbufs, of which the PMD takes the first (returned) count.
#[inline(always)]
pub(crate) unsafe fn tx_burst(port: u16, queue: u16, pkts: *mut *mut ffi::rte_mbuf, n: u16) -> u16 {
    #[cfg(rosette_inline_fastpath)]
    {
        use core::sync::atomic::{AtomicPtr, Ordering};
        let table = core::ptr::addr_of!(ffi::rte_eth_fp_ops).cast::<ffi::rte_eth_fp_ops>();
        // SAFETY: as in rx_burst.
        let ops = unsafe { &*table.add(usize::from(port)) };
        if let Some(burst) = ops.tx_pkt_burst {
            // SAFETY: txq.clbk has an entry per queue; relaxed load as in DPDK.
            let cb = unsafe { AtomicPtr::from_ptr(ops.txq.clbk.add(usize::from(queue))) }.load(Ordering::Relaxed);
            let mut n = n;
            if !cb.is_null() {
                // SAFETY: same arguments DPDK's inline function passes when callbacks are installed.
                n = unsafe { ffi::rte_eth_call_tx_callbacks(port, queue, pkts, n, cb) };
            }
            // SAFETY: txq.data has an entry per configured queue.
            let qd = unsafe { *ops.txq.data.add(usize::from(queue)) };
            // SAFETY: the PMD's tx function for this queue with caller-owned mbufs.
            return unsafe { burst(qd, pkts, n) };
        }
    }
    // SAFETY: the caller's guarantees are exactly those of rte_eth_tx_burst.
    unsafe { ffi::rte_eth_tx_burst(port, queue, pkts, n) }
}
