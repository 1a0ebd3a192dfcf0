//! Delivery semantics as sans-IO state machines: unordered, reliable and streaming channels.
//!
//! Nothing here uses `unsafe` or the DPDK substrate.
#![forbid(unsafe_code)]

pub mod conn;
pub mod fault;
pub mod link;
pub mod mux;
pub mod reliable;
pub mod rtt;
pub mod sim;
pub mod streaming;
pub mod time;
pub mod unordered;
