//! Raw DPDK 22.11 bindings, generated at build time by bindgen (see the top-level `build.rs`).
//!
//! Static-inline fast-path functions such as `rte_eth_rx_burst` are reached through C wrappers that
//! bindgen generated and `cc` compiled; they carry the suffix `__extern` in C but keep their DPDK name
//! here. Nothing outside the substrate may use this module.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

include!(concat!(env!("OUT_DIR"), "/dpdk_bindings.rs"));
