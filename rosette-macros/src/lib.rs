//! Procedural macros of rosette: the pipeline compiler.
//!
//! Front ends (`yaml`, `attr`) lower a declaration to one IR (`ir`); `validate` checks it and reports
//! every error at once, each with its location (the YAML front end, the IR and the validator live in
//! the ordinary library crate `rosette-config`, so tools such as `rosette-graph` read declarations the
//! same way); `lower` turns a `validate::ValidPipeline` into the model
//! `codegen` expands (the `SPEC`, `launch` and one poll loop per lcore). The entry points below stay
//! thin: everything they call is an ordinary function with unit tests.
//!
//! Stage params are checked at compile time by const evaluation in the generated code (the macro cannot
//! see a user type's fields): see `lower` and `rosette::pipeline::params`. `#[derive(StageParams)]` and
//! `#[derive(ParamEnum)]` (module `params_derive`) describe params types.
//!
//! The declaration schema is documented in `SCHEMA.md`.

mod attr;
mod codegen;
mod expand;
#[cfg(test)]
mod expansion_tests;
mod lower;
mod params_derive;

#[cfg(test)]
use rosette_config::yaml;
use rosette_config::{diag, ir, validate};

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use proc_macro::TokenStream;
use quote::quote;

/// Environment variable that overrides the directory YAML paths are relative to (trybuild compiles UI
/// tests in its own directory, where `CARGO_MANIFEST_DIR` points elsewhere).
const DIR_OVERRIDE: &str = "ROSETTE_PIPELINE_DIR";

/// Compiles a pipeline declared in a YAML file.
///
/// `pipeline!("pipelines/fwd.yaml")`: one module per YAML document of the file (documents are separated
/// by `---`; each names its pipeline), so the two ends of a link can be declared side by side. The path is relative to the calling crate's `CARGO_MANIFEST_DIR`
/// (or to `$ROSETTE_PIPELINE_DIR` when set). Errors are reported as `path:line:col: message`, one
/// `compile_error!` each, all at once.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    let lit = syn::parse_macro_input!(input as syn::LitStr);
    let written = lit.value();
    let span = lit.span();
    let dir = std::env::var_os(DIR_OVERRIDE)
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(&written);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{written}: cannot read {}: {e}", path.display());
            return quote::quote_spanned!(span=> ::core::compile_error!(#msg);).into();
        }
    };
    let abs = path.canonicalize().unwrap_or(path).display().to_string();
    // Every document of the file is a pipeline; all are validated before any is expanded, so every
    // error of the file is reported at once.
    let result = rosette_config::parse_and_validate(&text);
    // Rebuild whenever the YAML changes, success or failure.
    let track = quote!(
        const _: &[u8] = ::core::include_bytes!(#abs);
    );
    let body = match result {
        Ok(valid) => valid
            .iter()
            .map(|v| lower::expand(v, quote!(pub), quote!(), Some(&written)).unwrap_or_else(|e| e.to_compile_error()))
            .collect(),
        Err(diags) => expand::yaml_errors(&written, span, &diags),
    };
    quote!(#track #body).into()
}

/// Compiles a pipeline declared with attributes on an inline module.
///
/// ```text
/// #[rosette_macros::pipeline_mod(eal(lcores = "0-1", memory = "no-huge", memory_mb = 256))]
/// mod fwd {
///     port!(p0, device = "net_null0", rx_queues = 1, tx_queues = 1);
///     core!(lcore = 1, burst = 32,
///           poll(from = p0.rx[0], stages = [rosette::pipeline::stages::MacSwap], to = p0.tx[0]));
/// }
/// ```
/// The module name is the pipeline name; items other than `port!`/`ring!`/`core!` are kept. Errors are
/// spanned on the offending tokens.
#[proc_macro_attribute]
pub fn pipeline_mod(args: TokenStream, item: TokenStream) -> TokenStream {
    let fallback = proc_macro2::Span::call_site();
    match attr::parse(args.into(), item.into()) {
        Err(diags) => expand::token_errors(fallback, &diags).into(),
        Ok((ir, module)) => {
            let vis = &module.vis;
            let vis = quote!(#vis);
            let extra = module.content.as_ref().map(|(_, items)| quote!(#(#items)*)).unwrap_or_default();
            match validate::validate(ir) {
                Ok(valid) => lower::expand(&valid, vis, extra, None).unwrap_or_else(|e| e.to_compile_error()).into(),
                Err(diags) => expand::token_errors(fallback, &diags).into(),
            }
        }
    }
}

/// Derives `rosette::pipeline::params::StageParams` for a struct of params: every named field is a
/// param of the same name whose type implements `ParamType`.
///
/// Field attributes: `#[param(default)]` (`Default::default()` when not declared), `#[param(default =
/// <expr>)]`, `#[param(rename = "name")]`, `#[param(skip)]` (not a param; always `Default::default()`).
/// A field is required unless it has a default or its type is `Option<T>`. Doc comments become the
/// params' documentation. The container attribute `#[params(stage)]` also implements `DeclaredStage`
/// with the type as its own params (for a stage whose fields are its params).
#[proc_macro_derive(StageParams, attributes(param, params))]
pub fn derive_stage_params(input: TokenStream) -> TokenStream {
    params_derive::stage_params(syn::parse_macro_input!(input as syn::DeriveInput)).into()
}

/// Derives `rosette::pipeline::params::ParamType` for a fieldless enum: each variant is written as its
/// name in snake case (`Listen` → `listen`) or as `#[param(rename = "word")]`.
#[proc_macro_derive(ParamEnum, attributes(param))]
pub fn derive_param_enum(input: TokenStream) -> TokenStream {
    params_derive::param_enum(syn::parse_macro_input!(input as syn::DeriveInput)).into()
}
