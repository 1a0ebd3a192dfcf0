//! rosette's pipeline declarations as data: the YAML front end ([`yaml`]), the IR both front ends lower
//! to ([`ir`]), the validator that reports every error at once with its location ([`validate`]), and the
//! locations and diagnostics they share ([`diag`]).
//!
//! This crate is what `rosette-macros` compiles pipelines from, split out of the proc-macro crate so that
//! ordinary programs can read the same declarations with the same error messages: `rosette-graph` draws
//! them, fuzz targets feed them garbage. It has no code generation and does not link DPDK.
//!
//! ```
//! let text = "name: fwd\neal:\n  lcores: \"0-1\"\nports:\n  p0: { device: net_null0 }\n\
//!             cores:\n  - lcore: 1\n    polls:\n      - { from: \"p0.rx[0]\", to: \"p0.tx[0]\" }\n";
//! let pipelines = rosette_config::parse_and_validate(text).expect("a valid declaration");
//! assert_eq!(pipelines[0].pipeline.name.value, "fwd");
//!
//! let errors = rosette_config::parse_and_validate("name: fwd\n").unwrap_err();
//! assert!(errors[0].render("fwd.yaml").starts_with("fwd.yaml:"));
//! ```
//!
//! The declaration schema is documented in `rosette-macros/SCHEMA.md`.

pub mod diag;
pub mod ir;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Loc, Located};
pub use validate::ValidPipeline;

/// Parses every document of a YAML declaration file and validates each pipeline, exactly as the
/// `pipeline!` macro does: every pipeline is validated before any result is returned, so every error of
/// the file is reported at once. Render the errors with [`Diagnostic::render`].
pub fn parse_and_validate(text: &str) -> Result<Vec<ValidPipeline>, Vec<Diagnostic>> {
    let pipelines = yaml::parse_all(text)?;
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for p in pipelines {
        match validate::validate(p) {
            Ok(v) => valid.push(v),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}
