//! Diagnostic rendering: how validation errors become compile errors (code generation proper is in
//! `codegen`, fed by `lower`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use crate::diag::{Diagnostic, Loc};

/// One `compile_error!` per diagnostic of a YAML file: the message starts with `<path>:<line>:<col>: `
/// (path as written in the macro call) and the span is the path literal, since rustc cannot point into YAML.
pub fn yaml_errors(path: &str, span: Span, diagnostics: &[Diagnostic]) -> TokenStream {
    diagnostics
        .iter()
        .map(|d| {
            let message = d.render(path);
            quote_spanned!(span=> ::core::compile_error!(#message);)
        })
        .collect()
}

/// One spanned `compile_error!` per diagnostic of an attribute declaration.
pub fn token_errors(fallback: Span, diagnostics: &[Diagnostic]) -> TokenStream {
    diagnostics
        .iter()
        .map(|d| {
            match d.loc {
                Loc::Tokens(span) => syn::Error::new(span, &d.message).to_compile_error(),
                Loc::TokenRange(first, last) => {
                    // `new_spanned` underlines from its first token to its last one.
                    let first = proc_macro2::Ident::new("first", first);
                    let last = proc_macro2::Ident::new("last", last);
                    syn::Error::new_spanned(quote!(#first #last), &d.message).to_compile_error()
                }
                Loc::Yaml { .. } | Loc::Unknown => syn::Error::new(fallback, &d.message).to_compile_error(),
            }
        })
        .collect()
}
