//! The network layer: one Ethernet/IPv4/UDP [`Interface`] per address, which every channel is a
//! socket on.
//!
//! In the smoltcp `iface` spirit, what belongs to an address rather than to a connection lives here
//! once: the neighbor (ARP) cache with resolution, retries and static entries ([`neighbor`]); the
//! receive validation of every Ethernet, IPv4 and UDP header and checksum; THE one header writer
//! ([`framer`]: TTL, DF, one IPv4 identification counter, both checksums per configuration); and
//! per-reason drop counters ([`stats`]). The RSS hash that spreads flows over rx queues, and
//! the sender's side of it, is [`rss`]. The unordered channel is a socket on an interface, and the
//! link carrying a reliable or streaming connection uses one directly
//! ([`channel::link`](crate::channel::link)). Nothing else in rosette writes these headers.
//!
//! Generic over the packet-buffer traits of [`crate::buf`]: the same code runs on DPDK mbufs and on
//! [`VecBuf`](crate::buf::VecBuf) in simulation and fuzzing. No `unsafe`, no substrate.
#![forbid(unsafe_code)]

use crate::wire::{arp, ethernet, ipv4, udp};

pub mod framer;
mod iface;
pub mod neighbor;
pub mod rss;
pub mod stats;

pub use framer::{Framer, FramerConfig};
pub use iface::{Config, Datagram, Interface, SendError};
pub use neighbor::NeighborCache;
pub use rss::{queue_of, queue_of_reta, source_port_for_queue, Toeplitz};
pub use stats::{RxDrop, RxDrops, Stats, TxDrop, TxDrops};

/// Bytes of headers in front of every UDP payload (Ethernet + IPv4 without options + UDP): the
/// headroom a payload buffer needs to be framed in place.
pub const HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Length of the ARP frames the interface emits (Ethernet header + ARP packet, unpadded: NICs pad to
/// the 60-byte minimum themselves).
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;
