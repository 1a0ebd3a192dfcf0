//! Diagnostic rendering: how validation errors become compile errors (code generation proper is in
//! `codegen`, fed by `lower`).

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

use crate::diag::{Diagnostic, Loc};

/// One `compile_error!` per diagnostic of a YAML file: the message starts with `<path>:<line>:<col>: `
/// (path as written in the macro call) and the span is the path literal, since rustc cannot point into YAML.
pub fn yaml_errors(path: &str, span: Span, diagnostics: &[Diagnostic]) -> TokenStream {
    diagnostics
        .iter()
        .map(|d| {
            let message = match d.loc {
                Loc::Unknown => format!("{path}: {}", d.message),
                loc => format!("{path}:{loc}: {}", d.message),
            };
            quote_spanned!(span=> ::core::compile_error!(#message);)
        })
        .collect()
}

/// One spanned `compile_error!` per diagnostic of an attribute declaration.
pub fn token_errors(fallback: Span, diagnostics: &[Diagnostic]) -> TokenStream {
    diagnostics
        .iter()
        .map(|d| {
            let span = match d.loc {
                Loc::Tokens(span) => span,
                _ => fallback,
            };
            syn::Error::new(span, &d.message).to_compile_error()
        })
        .collect()
}
