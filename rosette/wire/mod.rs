//! Wire formats: checked views over byte buffers and plain representations that parse and emit them.
//!
//! Nothing here uses `unsafe` or the DPDK substrate; a checked view never panics on any input.
#![forbid(unsafe_code)]

pub mod transport;
