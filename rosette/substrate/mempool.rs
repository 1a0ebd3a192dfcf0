//! Packet mempools (`rte_pktmbuf_pool_create`) with a safe, shareable handle.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use super::eal::Eal;
use super::error::{Error, Result};
use super::ffi;
use super::mbuf::Mbuf;

/// Settings of a packet mempool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Name (unique in the process); `None` picks `rosette_pool<N>`.
    pub name: Option<String>,
    /// Number of mbufs.
    pub size: u32,
    /// Per-lcore cache size (0 for none; at most 512 and at most size / 1.5).
    pub cache_size: u32,
    /// Data room of each mbuf, headroom included.
    pub data_room: u16,
    /// NUMA socket to allocate on.
    pub socket: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            name: None,
            size: 8191,
            cache_size: 256,
            data_room: ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            socket: 0,
        }
    }
}

/// A packet mempool. Clones share the pool; it is freed when the last clone is dropped, if every mbuf
/// has come back (otherwise it is left allocated, so late mbufs stay valid, and the leak is logged).
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    pool: NonNull<ffi::rte_mempool>,
    name: String,
    size: u32,
    freed: Arc<AtomicBool>,
    _eal: Eal,
}

// SAFETY: rte_mempool get/put are thread-safe (the backing ring is multi-producer/multi-consumer and
// per-lcore caches are indexed by the calling lcore), and the handle never hands out &mut access.
unsafe impl Send for PoolInner {}
// SAFETY: as above; every method takes &self and DPDK synchronises internally.
unsafe impl Sync for PoolInner {}

/// What the EAL keeps of each pool to count mbufs still out at clean-up.
#[derive(Debug)]
pub(crate) struct PoolWatch {
    pool: usize,
    size: u32,
    freed: Arc<AtomicBool>,
}

impl PoolWatch {
    pub(crate) fn outstanding(&self) -> u64 {
        if self.freed.load(Ordering::SeqCst) {
            return 0;
        }
        // SAFETY: the pool was not freed (freed flag is false), so the pointer is still a live mempool.
        let avail = unsafe { ffi::rte_mempool_avail_count(self.pool as *const ffi::rte_mempool) };
        u64::from(self.size.saturating_sub(avail))
    }
}

static POOL_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Mempool {
    /// Creates a packet mempool on `config.socket`.
    pub fn new(eal: &Eal, config: &MempoolConfig) -> Result<Mempool> {
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("rosette_pool{}", POOL_COUNTER.fetch_add(1, Ordering::Relaxed)));
        let c_name = CString::new(name.clone())
            .map_err(|_| Error::InvalidArgument { detail: format!("mempool name {name:?} contains a NUL byte") })?;
        // SAFETY: EAL is running (we hold a token); the name is a valid C string copied by DPDK.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                config.size,
                config.cache_size,
                0,
                config.data_room,
                config.socket as i32,
            )
        };
        let pool = NonNull::new(raw).ok_or_else(|| {
            Error::from_rte_errno(format!(
                "create mempool {name} ({} mbufs, cache {}, socket {})",
                config.size, config.cache_size, config.socket
            ))
        })?;
        let freed = Arc::new(AtomicBool::new(false));
        eal.register_pool(PoolWatch { pool: pool.as_ptr() as usize, size: config.size, freed: freed.clone() });
        Ok(Mempool { inner: Arc::new(PoolInner { pool, name, size: config.size, freed, _eal: eal.clone() }) })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of mbufs the pool was created with.
    pub fn capacity(&self) -> u32 {
        self.inner.size
    }

    /// Mbufs currently in the pool (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while this handle exists.
        unsafe { ffi::rte_mempool_avail_count(self.inner.pool.as_ptr()) }
    }

    /// Mbufs currently out of the pool.
    pub fn in_use(&self) -> u32 {
        self.capacity().saturating_sub(self.available())
    }

    /// True when every mbuf is back in the pool.
    pub fn is_full(&self) -> bool {
        self.available() == self.capacity()
    }

    /// The NUMA socket the pool's memory was allocated on.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: the pool is alive; socket_id is a plain field written once at creation.
        unsafe { (*self.inner.pool.as_ptr()).socket_id }
    }

    /// One mbuf, reset and empty, or `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive; rte_pktmbuf_alloc returns an owned mbuf or null.
        let raw = unsafe { ffi::rte_pktmbuf_alloc(self.inner.pool.as_ptr()) };
        // SAFETY: a non-null result is a freshly allocated mbuf that nobody else refers to.
        NonNull::new(raw).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// A raw pointer for DPDK calls that take the pool (queue set-up).
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.inner.pool.as_ptr()
    }
}

impl core::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .finish()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive until freed below.
        let avail = unsafe { ffi::rte_mempool_avail_count(self.pool.as_ptr()) };
        if avail < self.size {
            log::error!(
                "mempool {}: {} mbuf(s) still out at drop; leaving the pool allocated so they stay valid",
                self.name,
                self.size - avail
            );
            return;
        }
        self.freed.store(true, Ordering::SeqCst);
        // SAFETY: no mbuf is out, no port queue refers to the pool (ports hold a clone of the handle),
        // and this is the last handle.
        unsafe { ffi::rte_mempool_free(self.pool.as_ptr()) };
    }
}

/// A [`crate::buf::BufPool`] over a mempool, so channels can allocate mbufs.
impl crate::buf::BufPool for Mempool {
    type Buf = Mbuf;
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        Mempool::alloc(self)
    }
}
