//! rosette-proto: the layers of rosette that need neither DPDK nor `unsafe`, in the spirit of the
//! quinn-proto / quinn split. Everything here is generic over the packet-buffer traits of [`buf`], so
//! it runs on DPDK mbufs inside `rosette` and on plain vectors in simulation, tests and fuzzing — on a
//! machine without libdpdk.
//!
//! - [`buf`]: the packet-buffer traits that connect a substrate to everything above it.
//! - [`wire`]: header parsers and emitters.
//! - [`net`]: the network interface — ARP, IPv4/UDP validation, the one header writer, drop counters.
//! - [`channel`]: delivery semantics — unordered, reliable, streaming — as sans-IO state machines.
#![forbid(unsafe_code)]

pub mod buf;
pub mod channel;
pub mod net;
pub mod wire;
