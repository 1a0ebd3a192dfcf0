//! Ethernet ports: configuration, start/stop, link state, statistics, and the rx/tx queue handles that
//! poll loops own.
//!
//! Each queue is handed out once ([`Port::rx_queue`], [`Port::tx_queue`]), so one queue has one poller:
//! DPDK's rx/tx burst functions are not thread-safe per queue. Queue handles keep the port alive; the
//! port is stopped and closed when the [`Port`] and every queue handle are gone.
//!
//! **Several rx queues.** A port with more than one rx queue spreads flows over them with RSS
//! ([`RssMode::Udp`], the default): the Toeplitz hash of the IPv4/UDP 4-tuple with rosette's key
//! ([`rosette_proto::net::rss::DEFAULT_KEY`]) and a redirection table rosette programs itself, entry
//! `i` = `i % rx_queues`, so that [`rosette_proto::net::rss::queue_of`] predicts the queue of every
//! flow. A device without RSS (the virtual ones: memif, ring, af_packet…) still gets its queues; it
//! puts nothing on a queue by hash, so the sender must pick the queue (memif: client tx queue `q` is
//! server rx queue `q`; a sender on a hashing NIC can choose its source port with
//! [`rosette_proto::net::rss::source_port_for_queue`]). [`Port::rss_enabled`] tells which it is.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::burst::{Burst, BurstSize};
use super::eal::Eal;
use super::error::{Error, Result};
use super::ffi;
use super::mempool::Mempool;

/// How a port with several rx queues spreads received packets over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RssMode {
    /// RSS over the IPv4/UDP 4-tuple (`RTE_ETH_RSS_NONFRAG_IPV4_UDP`), and over the addresses for
    /// other IPv4 packets and fragments (`RTE_ETH_RSS_IPV4`), as far as the device offers them;
    /// rosette's key and an `i % rx_queues` redirection table. Without RSS on the device the port
    /// works as with [`RssMode::None`]. Ignored with one rx queue.
    #[default]
    Udp,
    /// No RSS: the device's own queue choice (for virtual devices, the queue the sender wrote to).
    None,
}

/// Queue and descriptor counts of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of rx queues.
    pub rx_queues: u16,
    /// Number of tx queues.
    pub tx_queues: u16,
    /// Descriptors per rx queue.
    pub rx_descriptors: u16,
    /// Descriptors per tx queue.
    pub tx_descriptors: u16,
    /// Receive every frame, whatever its destination MAC.
    pub promiscuous: bool,
    /// How packets are spread over several rx queues.
    pub rss: RssMode,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: true,
            rss: RssMode::Udp,
        }
    }
}

/// `RTE_ETH_RSS_IPV4`: `RTE_BIT64(2)` in `rte_ethdev.h`. bindgen cannot evaluate `RTE_BIT64`, so the
/// value is written here; `shim.c` asserts at compile time that the header agrees.
const ETH_RSS_IPV4: u64 = 1 << 2;
/// `RTE_ETH_RSS_NONFRAG_IPV4_UDP`: `RTE_BIT64(5)` (asserted in `shim.c` like [`ETH_RSS_IPV4`]).
const ETH_RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
/// `RTE_ETH_RX_OFFLOAD_RSS_HASH`: `RTE_BIT64(19)` (asserted in `shim.c`). Asked for when offered, so
/// that received mbufs carry the NIC's hash (`mbuf.hash.rss`) for the stages that want it.
const ETH_RX_OFFLOAD_RSS_HASH: u64 = 1 << 19;
/// Shortest RSS key that covers an IPv4/UDP 4-tuple (12 bytes) and the 32-bit window.
const MIN_IPV4_UDP_KEY_LEN: usize = 16;

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the hardware dropped because rx queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured ethdev port.
#[derive(Clone)]
pub struct Port {
    inner: Arc<PortInner>,
}

#[derive(Debug)]
struct PortInner {
    id: u16,
    name: String,
    config: PortConfig,
    started: AtomicBool,
    /// RSS is configured (several rx queues, [`RssMode::Udp`], and a device that hashes UDP or IPv4).
    rss_enabled: bool,
    /// Stop and close must run on the interrupt thread (see [`super::intr`]).
    serialize_with_interrupts: bool,
    /// The control socket of a `net_memif` port, to explain a failed start.
    memif: Option<super::memif::MemifSocket>,
    rx_taken: Mutex<Vec<bool>>,
    tx_taken: Mutex<Vec<bool>>,
    // Kept so the pools outlive the rx queues that draw from them.
    _pools: Vec<Mempool>,
    _eal: Eal,
}

impl Port {
    /// Configures the port `device` (a name EAL probed: `net_null0`, a PCI address, …). Rx queue `q`
    /// draws from `rx_pools[q]`, or from `rx_pools[0]` when one pool serves all; its descriptors are
    /// allocated on that pool's socket. Tx queues go on the port's socket.
    pub fn configure(eal: &Eal, device: &str, config: &PortConfig, rx_pools: &[Mempool]) -> Result<Port> {
        let id = eal.port_id(device)?;
        let name = device.split(',').next().unwrap_or(device).to_owned();
        if rx_pools.is_empty() && config.rx_queues > 0 {
            return Err(Error::InvalidArgument { detail: format!("port {name}: rx queues need at least one mempool") });
        }
        if rx_pools.len() > 1 && rx_pools.len() != usize::from(config.rx_queues) {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "port {name}: {} mempools given for {} rx queues (give one, or one per queue)",
                    rx_pools.len(),
                    config.rx_queues
                ),
            });
        }
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: id is a valid port; info is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(Error::dpdk(format!("query port {name}"), rc));
        }
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "port {name} ({}) supports at most {} rx and {} tx queues; asked for {} rx and {} tx",
                    driver_name(&info),
                    info.max_rx_queues,
                    info.max_tx_queues,
                    config.rx_queues,
                    config.tx_queues
                ),
            });
        }
        if config.rx_queues == 0 && config.tx_queues == 0 {
            return Err(Error::InvalidArgument { detail: format!("port {name}: no rx and no tx queues") });
        }
        let mut conf = ffi::rte_eth_conf::default();
        let rss_hf = match config.rss {
            RssMode::Udp if config.rx_queues > 1 => {
                (ETH_RSS_IPV4 | ETH_RSS_NONFRAG_IPV4_UDP) & info.flow_type_rss_offloads
            }
            _ => 0,
        };
        // The key is read during configure; it must outlive that call.
        let mut key = if rss_hf != 0 { rss_key(&name, info.hash_key_size) } else { None };
        if rss_hf != 0 {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rxmode.offloads |= info.rx_offload_capa & ETH_RX_OFFLOAD_RSS_HASH;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if let Some(key) = key.as_mut() {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        } else if config.rx_queues > 1 && config.rss == RssMode::Udp {
            // Said once per port, at configure: it changes who decides where a flow lands.
            log::info!(
                "port {name} ({}): {} rx queues but the device offers no IPv4/UDP RSS; nothing spreads \
                 flows over the queues, so the sender must pick the queue (memif: client tx queue q is \
                 server rx queue q)",
                driver_name(&info),
                config.rx_queues
            );
        }
        // SAFETY: valid port id; `conf` is zeroed apart from the RSS fields set above, whose hash types
        // are masked by what the device offers and whose key pointer (if any) points at `key`, alive
        // until after this call and `rss_key_len` bytes long.
        let rc = unsafe { ffi::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf) };
        if rc != 0 {
            return Err(Error::dpdk(
                format!("configure port {name} ({} rx, {} tx queues)", config.rx_queues, config.tx_queues),
                rc,
            ));
        }
        for q in 0..config.rx_queues {
            let pool = &rx_pools[if rx_pools.len() == 1 { 0 } else { usize::from(q) }];
            let socket = pool.socket_id().max(0) as u32;
            // SAFETY: the port is configured with this many queues; the pool pointer stays valid because
            // the port keeps a clone of every pool; a null rxconf selects the driver defaults.
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(id, q, config.rx_descriptors, socket, core::ptr::null(), pool.as_ptr())
            };
            if rc != 0 {
                return Err(Error::dpdk(
                    format!("set up rx queue {q} of port {name} ({} descriptors)", config.rx_descriptors),
                    rc,
                ));
            }
        }
        // SAFETY: valid port id.
        let port_socket = unsafe { ffi::rte_eth_dev_socket_id(id) }.max(0) as u32;
        for q in 0..config.tx_queues {
            let descriptors = config.tx_descriptors;
            // SAFETY: as for rx; a null txconf selects the driver defaults.
            let rc = unsafe { ffi::rte_eth_tx_queue_setup(id, q, descriptors, port_socket, core::ptr::null()) };
            if rc != 0 {
                return Err(Error::dpdk(
                    format!("set up tx queue {q} of port {name} ({} descriptors)", config.tx_descriptors),
                    rc,
                ));
            }
        }
        if rss_hf != 0 && info.reta_size > 0 {
            program_reta(id, &name, info.reta_size, config.rx_queues);
        }
        if config.promiscuous {
            // SAFETY: valid port id. Some virtual PMDs do not support promiscuous mode; that is harmless.
            let _ = unsafe { ffi::rte_eth_promiscuous_enable(id) };
        }
        Ok(Port {
            inner: Arc::new(PortInner {
                id,
                serialize_with_interrupts: driver_name(&info) == "net_memif",
                memif: if device.contains(',') { Some(device) } else { eal.vdev_spec(&name) }
                    .and_then(super::memif::parse),
                name,
                config: *config,
                started: AtomicBool::new(false),
                rss_enabled: rss_hf != 0,
                rx_taken: Mutex::new(vec![false; usize::from(config.rx_queues)]),
                tx_taken: Mutex::new(vec![false; usize::from(config.tx_queues)]),
                _pools: rx_pools.to_vec(),
                _eal: eal.clone(),
            }),
        })
    }

    /// DPDK's port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration the port was set up with.
    pub fn config(&self) -> &PortConfig {
        &self.inner.config
    }

    /// Whether RSS spreads received flows over the rx queues: the port has several rx queues, asked for
    /// [`RssMode::Udp`] and the device hashes IPv4/UDP (or at least IPv4). `false` means the sender
    /// picks the queue (see the module docs).
    pub fn rss_enabled(&self) -> bool {
        self.inner.rss_enabled
    }

    /// The device's RSS redirection table, one rx queue per entry (empty when the device has none or
    /// cannot report it). rosette programs it `i % rx_queues` when it enables RSS.
    pub fn rss_reta(&self) -> Result<Vec<u16>> {
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: valid port id; info is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_info_get(self.inner.id, &mut info) };
        if rc != 0 {
            return Err(Error::dpdk(format!("query port {}", self.inner.name), rc));
        }
        let size = usize::from(info.reta_size);
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut groups = reta_groups(size);
        groups.iter_mut().for_each(|g| g.mask = u64::MAX);
        // SAFETY: `groups` holds reta_size / 64 (rounded up) entries, as many as the call reads and writes
        // for `reta_size` entries.
        let rc = unsafe { ffi::rte_eth_dev_rss_reta_query(self.inner.id, groups.as_mut_ptr(), info.reta_size) };
        if rc != 0 {
            return Err(Error::dpdk(format!("query the RSS redirection table of port {}", self.inner.name), rc));
        }
        Ok(groups.iter().flat_map(|g| g.reta).take(size).collect())
    }

    /// Starts the port. A `net_memif` client that finds no server on its socket is
    /// [`Error::MemifNoServer`] (DPDK itself only returns `-1`, "Operation not permitted").
    pub fn start(&self) -> Result<()> {
        // SAFETY: the port is configured with all its queues set up.
        let rc = unsafe { ffi::rte_eth_dev_start(self.inner.id) };
        if rc != 0 {
            if let Some(err) = self.inner.memif.as_ref().and_then(super::memif::client_start_error) {
                return Err(err);
            }
            return Err(Error::dpdk(format!("start port {}", self.inner.name), rc));
        }
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the port. Pollers must have stopped first: stop the lcores, then the ports.
    pub fn stop(&self) -> Result<()> {
        self.inner.stop()
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst)
    }

    /// The current link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { ffi::rte_eth_link_get_nowait(self.inner.id, &mut link) };
        if rc != 0 {
            return Err(Error::dpdk(format!("read link of port {}", self.inner.name), rc));
        }
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// The port's counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { ffi::rte_eth_stats_get(self.inner.id, &mut s) };
        if rc != 0 {
            return Err(Error::dpdk(format!("read stats of port {}", self.inner.name), rc));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the port's counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port id.
        let rc = unsafe { ffi::rte_eth_stats_reset(self.inner.id) };
        if rc != 0 {
            return Err(Error::dpdk(format!("reset stats of port {}", self.inner.name), rc));
        }
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac_address(&self) -> Result<[u8; 6]> {
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { ffi::rte_eth_macaddr_get(self.inner.id, &mut addr) };
        if rc != 0 {
            return Err(Error::dpdk(format!("read MAC address of port {}", self.inner.name), rc));
        }
        Ok(addr.addr_bytes)
    }

    /// The handle for polling rx queue `queue`; each queue can be taken once.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue> {
        take(&self.inner.rx_taken, queue, &self.inner.name, "rx")?;
        Ok(RxQueue { port: self.inner.id, queue, _owner: self.inner.clone() })
    }

    /// The handle for sending on tx queue `queue`; each queue can be taken once.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue> {
        take(&self.inner.tx_taken, queue, &self.inner.name, "tx")?;
        Ok(TxQueue { port: self.inner.id, queue, _owner: self.inner.clone() })
    }
}

fn take(taken: &Mutex<Vec<bool>>, queue: u16, port: &str, dir: &str) -> Result<()> {
    let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
    let count = taken.len();
    match taken.get_mut(usize::from(queue)) {
        None => Err(Error::InvalidArgument {
            detail: format!("port {port} has {count} {dir} queue(s); there is no {dir} queue {queue}"),
        }),
        Some(true) => Err(Error::InvalidArgument {
            detail: format!("{dir} queue {queue} of port {port} is already taken by another poller"),
        }),
        Some(slot) => {
            *slot = true;
            Ok(())
        }
    }
}

/// rosette's RSS key sized for the device: DPDK wants exactly `hash_key_size` bytes (0: the device did
/// not say; 40 is the usual size). A longer key is rosette's key followed by zeros — the bytes past
/// the 40th never reach an IPv4 hash — and a key too short for an IPv4/UDP tuple is not set at all
/// (the device keeps its own, and software can no longer predict its queue choice).
fn rss_key(port: &str, hash_key_size: u8) -> Option<Vec<u8>> {
    use rosette_proto::net::rss::DEFAULT_KEY;
    let len = if hash_key_size == 0 { DEFAULT_KEY.len() } else { usize::from(hash_key_size) };
    if len < MIN_IPV4_UDP_KEY_LEN {
        log::warn!("port {port}: RSS key of {len} bytes is too short for rosette's key; the device keeps its own");
        return None;
    }
    let mut key = vec![0u8; len];
    let n = len.min(DEFAULT_KEY.len());
    key[..n].copy_from_slice(&DEFAULT_KEY[..n]);
    Some(key)
}

/// Zeroed redirection-table groups covering `entries` entries (64 per group).
fn reta_groups(entries: usize) -> Vec<ffi::rte_eth_rss_reta_entry64> {
    let group = ffi::RTE_ETH_RETA_GROUP_SIZE as usize;
    vec![ffi::rte_eth_rss_reta_entry64::default(); entries.div_ceil(group)]
}

/// Programs the redirection table entry `i` = `i % rx_queues`, the table
/// [`rosette_proto::net::rss::queue_of`] assumes. Most PMDs install that table by default, but not
/// all, and a table left by a previous user of the device is not reset by a configure: writing it is
/// what makes the software prediction hold. A failure is logged, not fatal: the port still receives
/// on every queue, only the prediction may be off.
fn program_reta(id: u16, port: &str, reta_size: u16, rx_queues: u16) {
    let group = ffi::RTE_ETH_RETA_GROUP_SIZE as usize;
    let mut groups = reta_groups(usize::from(reta_size));
    for (g, entry) in groups.iter_mut().enumerate() {
        for (j, slot) in entry.reta.iter_mut().enumerate() {
            let i = g * group + j;
            if i < usize::from(reta_size) {
                *slot = (i % usize::from(rx_queues)) as u16;
                entry.mask |= 1 << j;
            }
        }
    }
    // SAFETY: valid, configured port; `groups` covers `reta_size` entries, the mask marks exactly
    // those, and every entry names an rx queue below `rx_queues`.
    let rc = unsafe { ffi::rte_eth_dev_rss_reta_update(id, groups.as_mut_ptr(), reta_size) };
    if rc != 0 {
        log::warn!(
            "port {port}: programming the RSS redirection table ({reta_size} entries) failed: {}; the \
             device's own table decides the queue of each flow",
            super::error::strerror(-rc)
        );
    }
}

fn driver_name(info: &ffi::rte_eth_dev_info) -> String {
    if info.driver_name.is_null() {
        return "unknown driver".to_owned();
    }
    // SAFETY: DPDK fills driver_name with a static NUL-terminated string.
    unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
}

/// `rte_eth_dev_stop`, for [`PortInner::control`].
fn stop_port(id: u16) -> i32 {
    // SAFETY: called only for a valid, started port whose queues nothing polls any more.
    unsafe { ffi::rte_eth_dev_stop(id) }
}

/// `rte_eth_dev_close`, for [`PortInner::control`].
fn close_port(id: u16) -> i32 {
    // SAFETY: called only when the last handle of the port is gone, so nothing polls it; closing
    // frees the queues' descriptors and returns the mbufs they held to their pools.
    unsafe { ffi::rte_eth_dev_close(id) }
}

/// How long a stop or close waits for the interrupt thread before running on the caller's thread.
const INTERRUPT_THREAD_WAIT: Duration = Duration::from_secs(2);

impl PortInner {
    /// Runs a stop or close: on the interrupt thread for PMDs that race with it there, else here.
    fn control(&self, op: fn(u16) -> i32) -> i32 {
        if self.serialize_with_interrupts {
            if let Some(rc) = super::intr::run_on_interrupt_thread(op, self.id, INTERRUPT_THREAD_WAIT) {
                return rc;
            }
            log::debug!("port {}: interrupt thread unavailable, stopping/closing from this thread", self.name);
        }
        op(self.id)
    }

    fn stop(&self) -> Result<()> {
        if self.started.swap(false, Ordering::SeqCst) {
            let rc = self.control(stop_port);
            if rc != 0 {
                return Err(Error::dpdk(format!("stop port {}", self.name), rc));
            }
        }
        Ok(())
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::warn!("{e}");
        }
        // No queue handle is left (each holds this inner), so nothing polls the port.
        let rc = self.control(close_port);
        if rc != 0 {
            log::warn!("closing port {} failed: {}", self.name, super::error::strerror(-rc));
        }
    }
}

impl core::fmt::Debug for Port {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Port").field("id", &self.inner.id).field("name", &self.inner.name).finish()
    }
}

/// The right to poll one rx queue.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _owner: Arc<PortInner>,
}

impl RxQueue {
    /// Fills the free slots of `burst` with received packets; returns how many arrived.
    #[inline(always)]
    pub fn rx<N: BurstSize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (slots, free) = burst.spare();
        // SAFETY: slots points at `free` writable pointer slots inside the burst; this handle is the
        // queue's only poller; the port outlives the handle.
        let n = usize::from(unsafe { super::fastpath::rx_burst(self.port, self.queue, slots, free as u16) });
        // SAFETY: the PMD wrote n owned mbuf pointers into those slots.
        unsafe { burst.filled(n) };
        n
    }

    /// Receives and frees whatever is waiting, up to `max_bursts` bursts of 32 (a loop that stops
    /// drains its queues so packets still in flight — in a `net_ring`, say — go back to their pool).
    /// Returns the number of packets freed. Do not call it on a link whose peer may be gone (memif).
    pub fn drain(&mut self, max_bursts: usize) -> usize {
        let mut burst = Burst::<typenum::U32>::new();
        let mut freed = 0;
        for _ in 0..max_bursts {
            let n = self.rx(&mut burst);
            burst.clear();
            freed += n;
            if n == 0 {
                break;
            }
        }
        freed
    }

    /// (port id, queue id).
    pub fn id(&self) -> (u16, u16) {
        (self.port, self.queue)
    }
}

/// The right to send on one tx queue.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _owner: Arc<PortInner>,
}

impl TxQueue {
    /// Hands as many packets of `burst` to the PMD as it takes, from the front; the rest stay in the
    /// burst (owned, to retry or free). Returns how many were taken.
    #[inline(always)]
    pub fn tx<N: BurstSize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (slots, len) = burst.occupied();
        if len == 0 {
            return 0;
        }
        // SAFETY: slots[..len] are owned mbufs; the PMD takes ownership of the first n it returns;
        // this handle is the queue's only sender.
        let n = usize::from(unsafe { super::fastpath::tx_burst(self.port, self.queue, slots, len as u16) });
        burst.consumed_front(n);
        n
    }

    /// Sends what the PMD takes and frees the rest; returns (sent, dropped).
    #[inline(always)]
    pub fn tx_or_drop<N: BurstSize>(&mut self, burst: &mut Burst<N>) -> (usize, usize) {
        let sent = self.tx(burst);
        let dropped = burst.len();
        burst.clear();
        (sent, dropped)
    }

    /// (port id, queue id).
    pub fn id(&self) -> (u16, u16) {
        (self.port, self.queue)
    }
}
