//! The checks of rosette's built-in stage params that relate several params or bound one beyond its
//! type (`window: 0`, `rto_min` above `rto_max`, a `max_message` the window cannot hold), and the
//! "did you mean" helper of every unknown name.
//!
//! Why a crate of its own: the same declaration is checked twice — at compile time by the validator
//! (`rosette-config`, run by the `pipeline!` macro and by `rosette-graph`), and at run time when the stage
//! is built on its lcore (`rosette`, for pipelines assembled in Rust too). Both call the functions of
//! this crate, so a declaration the macro accepts is one the runtime builds, with the same messages.
//! `rosette` cannot be a dependency of the macro (it depends on the macro), and `rosette-config` carries
//! a YAML parser the runtime has no use for, hence this small crate under both. Everything here is a
//! `const fn` where the compile-time param checker of `rosette` needs it.

#![forbid(unsafe_code)]

pub mod stock;
pub mod suggest;

pub use stock::{parse_decimal, parse_duration, DecimalError};
pub use suggest::{closest, edit_distance};
