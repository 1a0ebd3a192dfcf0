//! The substrate: the only part of rosette that touches DPDK or uses `unsafe`.
//!
//! Safe Rust over DPDK 22.11: EAL start-up ([`EalBuilder`]), packet mempools ([`Mempool`]), ports and
//! their queues ([`Port`], [`RxQueue`], [`TxQueue`]), owned mbufs ([`Mbuf`]), fixed-capacity bursts
//! ([`Burst`], [`Batch`]), `rte_ring` hand-off ([`mbuf_ring`]), lcore launch ([`launch`]) with a
//! [`StopFlag`], the TSC clock ([`TscClock`]), NUMA placement ([`placement`]), and the hardware CRC-32C
//! for the transport checksum ([`install_crc32c_accelerator`]), and packet capture with `dpdk-dumpcap`
//! ([`capture`]). Every `unsafe` block carries a
//! `// SAFETY:` comment.
pub mod burst;
pub mod capture;
pub mod clock;
pub mod cpus;
pub mod crc;
pub mod eal;
pub mod error;
mod fastpath;
pub(crate) mod ffi;
mod intr;
pub mod lcore;
pub mod mbuf;
mod memif;
pub mod mempool;
pub mod placement;
pub mod port;
pub mod ring;
pub mod slot;
pub mod telemetry;

pub use burst::{Batch, Burst, BurstSize};
pub use capture::CaptureStatus;
pub use clock::{tsc, TscClock};
pub use cpus::{cpu_shared, SpawnUnpinned};
pub use crc::install_crc32c_accelerator;
pub use eal::{eal_running, hugepage_status, lcore_sharing_warning, runtime_dir, Eal, EalBuilder, EalInfo, MemoryMode};
pub use error::{Error, Result};
pub use lcore::{
    current_lcore, current_socket, install_signal_handlers, interrupt_process, launch, route_stop_signals,
    stop_signalled, stop_signals, LcoreJoin, StopFlag,
};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, MempoolConfig};
pub use port::{LinkStatus, Port, PortConfig, PortStats, RssMode, RxQueue, TxQueue};
pub use ring::{mbuf_ring, MbufConsumer, MbufProducer, RingMode};
pub use slot::MbufSlot;
