//! The substrate: the only part of rosette that touches DPDK or uses `unsafe`.
pub(crate) mod ffi;
