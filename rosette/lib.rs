//! rosette: a user-space transport runtime on DPDK, configured at compile time.
//!
//! Layers, each with one job (see README.md):
//! - [`substrate`]: the only module with `unsafe` and FFI — EAL, mempools, ports, mbufs, bursts, rings,
//!   lcores, clock.
//! - [`buf`]: the packet-buffer traits that connect the substrate to everything above it.
//! - [`wire`]: header parsers and emitters (no `unsafe`, no substrate).
//! - [`channel`]: delivery semantics — unordered, reliable, streaming — as sans-IO state machines
//!   (no `unsafe`, no substrate).
pub mod buf;
pub mod channel;
pub mod pipeline;
pub mod substrate;
pub mod wire;

/// Type-level numbers for burst sizes (`rosette::typenum::U32`), re-exported so generated code and users
/// need no extra dependency.
pub use typenum;
