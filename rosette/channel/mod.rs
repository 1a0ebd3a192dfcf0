//! Delivery semantics as sans-IO state machines: unordered, reliable and streaming channels.
//!
//! Nothing here uses `unsafe` or the DPDK substrate.
#![forbid(unsafe_code)]

pub mod time;
pub mod unordered;
// Reliable and streaming channels, fault injection and simulation (another work item) go here:
// pub mod reliable;
// pub mod streaming;
// pub mod fault;
// pub mod sim;
