//! [`MbufSlot`]: a lock-free single-slot exchange of one mbuf between two threads.
//!
//! An application endpoint keeps the packet it is filling (a partial packet of packed messages, the
//! tail of a stream) in the slot between its calls; the lcore takes it from there when it has caught
//! up with everything queued before, so a message never waits for more to arrive. Whoever takes the
//! mbuf owns it: the endpoint to append to it again, or the lcore to send it. One atomic swap per
//! exchange, no lock, no allocation; an idle lcore's check is one load.
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use std::ptr::NonNull;

use super::ffi;
use super::mbuf::Mbuf;

/// Holds at most one [`Mbuf`]; any thread may put or take it. Dropping the slot frees what it holds.
#[derive(Debug, Default)]
pub struct MbufSlot {
    held: AtomicPtr<ffi::rte_mbuf>,
}

impl MbufSlot {
    /// An empty slot.
    pub const fn new() -> MbufSlot {
        MbufSlot { held: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Leaves `m` in the slot; gives it back if the slot is occupied.
    pub fn put(&self, m: Mbuf) -> Result<(), Mbuf> {
        let raw = m.into_raw();
        // Release: the mbuf's contents (written by this thread) are visible to the thread that takes it.
        match self.held.compare_exchange(ptr::null_mut(), raw.as_ptr(), Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            // SAFETY: `raw` came from `into_raw` just above and was not stored: this call still owns it.
            Err(_) => Err(unsafe { Mbuf::from_raw(raw) }),
        }
    }

    /// Takes the mbuf out, if there is one.
    pub fn take(&self) -> Option<Mbuf> {
        if self.held.load(Ordering::Relaxed).is_null() {
            return None;
        }
        // Acquire: pairs with the release in `put`.
        let raw = NonNull::new(self.held.swap(ptr::null_mut(), Ordering::AcqRel))?;
        // SAFETY: a non-null value was stored by `put` from an owned mbuf's `into_raw`, and the swap
        // removed it from the slot atomically, so exactly this call now owns that reference.
        Some(unsafe { Mbuf::from_raw(raw) })
    }

    /// True when the slot holds an mbuf (a snapshot).
    pub fn is_occupied(&self) -> bool {
        !self.held.load(Ordering::Acquire).is_null()
    }
}

impl Drop for MbufSlot {
    fn drop(&mut self) {
        drop(self.take());
    }
}
