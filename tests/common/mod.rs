//! Shared support for rosette's integration tests: everything lives in `rosette::testing`, so the
//! `pipelines` tests use the same harness.
#![allow(unused_imports)]

pub use rosette::testing::*;
