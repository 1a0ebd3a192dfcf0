//! `rte_ring` hand-off of mbufs between lcores.
//!
//! [`mbuf_ring`] creates a ring and returns its two ends. With [`RingMode::Single`] (the default) the
//! ring is single-producer/single-consumer, the fastest kind, and the ends are not `Clone`, so the type
//! system keeps it that way. When both ends are gone, mbufs still in the ring are freed and the ring is
//! released.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::burst::{Burst, BurstSize};
use super::eal::Eal;
use super::error::{Error, Result};
use super::ffi;
use super::mbuf::Mbuf;

/// Producer/consumer discipline of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingMode {
    /// One producer lcore, one consumer lcore.
    #[default]
    Single,
    /// Several producers and consumers (the ends may be shared behind a `Mutex` or moved around).
    Multi,
}

#[derive(Debug)]
struct RingInner {
    ring: NonNull<ffi::rte_ring>,
    name: String,
    capacity: u32,
    mode: RingMode,
    _eal: Eal,
}

// SAFETY: rte_ring enqueue/dequeue are safe to call from any thread within the ring's mode; the
// single-producer/single-consumer discipline is kept by the non-Clone ends.
unsafe impl Send for RingInner {}
// SAFETY: shared references only read the ring pointer; the ends serialise their own use.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Both ends are gone: free what is left in the ring, then the ring.
        let mut stranded: [*mut core::ffi::c_void; 64] = [core::ptr::null_mut(); 64];
        loop {
            // SAFETY: no other end exists, so this dequeue races with nobody; the slots array is big
            // enough for the 64 requested.
            let n = unsafe {
                ffi::rte_ring_dequeue_burst(self.ring.as_ptr(), stranded.as_mut_ptr(), 64, core::ptr::null_mut())
            };
            if n == 0 {
                break;
            }
            // SAFETY: everything in the ring is an owned mbuf put there by MbufProducer.
            unsafe { ffi::rte_pktmbuf_free_bulk(stranded.as_mut_ptr().cast(), n) };
        }
        // SAFETY: the ring is empty and no end refers to it any more.
        unsafe { ffi::rte_ring_free(self.ring.as_ptr()) };
    }
}

/// The sending end of an mbuf ring.
#[derive(Debug)]
pub struct MbufProducer {
    inner: Arc<RingInner>,
}

/// The receiving end of an mbuf ring.
#[derive(Debug)]
pub struct MbufConsumer {
    inner: Arc<RingInner>,
}

static RING_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates a ring that holds up to `capacity` mbufs (a power of two minus one is usable space:
/// DPDK keeps one slot free, so ask for a power of two) on `socket`.
pub fn mbuf_ring(
    eal: &Eal,
    name: Option<&str>,
    capacity: u32,
    socket: u32,
    mode: RingMode,
) -> Result<(MbufProducer, MbufConsumer)> {
    if !capacity.is_power_of_two() {
        return Err(Error::InvalidArgument { detail: format!("ring size {capacity} is not a power of two") });
    }
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| format!("rosette_ring{}", RING_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let c_name = CString::new(name.clone())
        .map_err(|_| Error::InvalidArgument { detail: format!("ring name {name:?} contains a NUL byte") })?;
    let flags = match mode {
        RingMode::Single => ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ,
        RingMode::Multi => 0,
    };
    // SAFETY: EAL is running; valid C string; DPDK copies the name.
    let raw = unsafe { ffi::rte_ring_create(c_name.as_ptr(), capacity, socket as i32, flags) };
    let ring = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno(format!("create ring {name} of {capacity}")))?;
    let inner = Arc::new(RingInner { ring, name, capacity, mode, _eal: eal.clone() });
    Ok((MbufProducer { inner: inner.clone() }, MbufConsumer { inner }))
}

impl MbufProducer {
    /// Moves as many mbufs of `burst` into the ring as fit, from the front; the rest stay in the burst.
    /// Returns how many moved.
    #[inline(always)]
    pub fn enqueue<N: BurstSize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (slots, len) = burst.occupied();
        if len == 0 {
            return 0;
        }
        // SAFETY: slots[..len] are owned mbuf pointers; the ring takes ownership of the first n; this
        // end is the only producer.
        let n = unsafe {
            ffi::rte_ring_enqueue_burst(self.inner.ring.as_ptr(), slots.cast(), len as u32, core::ptr::null_mut())
        };
        burst.consumed_front(n as usize);
        n as usize
    }

    /// Moves one mbuf into the ring, or gives it back when the ring is full.
    #[inline]
    pub fn enqueue_one(&mut self, mbuf: Mbuf) -> core::result::Result<(), Mbuf> {
        let raw = mbuf.into_raw();
        let obj = raw.as_ptr().cast::<core::ffi::c_void>();
        // SAFETY: one owned mbuf pointer; on success the ring owns it.
        let n = unsafe { ffi::rte_ring_enqueue_burst(self.inner.ring.as_ptr(), &obj, 1, core::ptr::null_mut()) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: the ring did not take it; ownership comes back to us.
            Err(unsafe { Mbuf::from_raw(raw) })
        }
    }

    /// A second producer end, for a ring created with [`RingMode::Multi`]; `None` for a
    /// single-producer ring (two producers would corrupt it).
    pub fn try_clone(&self) -> Option<MbufProducer> {
        (self.inner.mode == RingMode::Multi).then(|| MbufProducer { inner: self.inner.clone() })
    }

    /// Capacity the ring was created with.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl MbufConsumer {
    /// Fills the free slots of `burst` from the ring; returns how many arrived.
    #[inline(always)]
    pub fn dequeue<N: BurstSize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (slots, free) = burst.spare();
        // SAFETY: slots points at `free` writable slots in the burst; this end is the only consumer.
        let n = unsafe {
            ffi::rte_ring_dequeue_burst(self.inner.ring.as_ptr(), slots.cast(), free as u32, core::ptr::null_mut())
        };
        // SAFETY: the ring wrote n owned mbuf pointers into those slots.
        unsafe { burst.filled(n as usize) };
        n as usize
    }

    /// Mbufs waiting in the ring.
    pub fn len(&self) -> usize {
        // SAFETY: reading the ring's counters is always allowed.
        (unsafe { ffi::rte_ring_count(self.inner.ring.as_ptr()) }) as usize
    }

    /// True when nothing waits in the ring.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
