//! rosette: a user-space transport runtime on DPDK, configured at compile time.
//!
//! Layers, each with one job (see README.md):
//! - [`substrate`]: the only module with `unsafe` and FFI — EAL, mempools, ports, mbufs, bursts, rings,
//!   lcores, clock.
//! - [`buf`], [`wire`], [`net`], [`channel`]: re-exported from the `rosette-proto` crate, which does not
//!   link DPDK and forbids `unsafe` — the packet-buffer traits, header parsers and emitters, the network
//!   interface (ARP, IPv4/UDP, the one header writer), and the delivery semantics (unordered, reliable,
//!   streaming) as sans-IO state machines.
//! - [`pipeline`]: stages, channel stages, endpoints and the launch support of generated code.
// Derive output names `::rosette::…`; this makes it resolve inside the crate too.
extern crate self as rosette;

pub mod pipeline;
pub mod substrate;
pub mod testing;

pub use rosette_proto::{buf, channel, net, wire};

/// Type-level numbers for burst sizes (`rosette::typenum::U32`), re-exported so generated code and users
/// need no extra dependency.
pub use typenum;
