//! `#[derive(StageParams)]` and `#[derive(ParamEnum)]`: the documented params types of declarable
//! stages (see `rosette::pipeline::params`).
//!
//! Parse (struct or enum and its `#[param(..)]` / `#[params(..)]` attributes, errors collected) →
//! expand. The generated code names `::rosette::…`; inside the `rosette` crate `extern crate self as
//! rosette;` makes that resolve.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

/// How a field is filled when not declared.
enum FieldDefault {
    /// Required unless its type says otherwise (`Option<T>`).
    None,
    /// `Default::default()`.
    Default,
    /// The given expression.
    Expr(syn::Expr),
}

struct Field {
    ident: syn::Ident,
    ty: syn::Type,
    name: String,
    doc: String,
    default: FieldDefault,
    skip: bool,
}

/// Doc comments joined into one line.
fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if nv.path.is_ident("doc") {
                if let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value {
                    lines.push(s.value().trim().to_owned());
                }
            }
        }
    }
    lines.retain(|l| !l.is_empty());
    lines.join(" ")
}

/// `ParseUdp` → `parse_udp`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_field(field: &syn::Field, errors: &mut Vec<syn::Error>) -> Option<Field> {
    let ident = field.ident.clone()?;
    let mut out = Field {
        name: ident.to_string().trim_start_matches("r#").to_owned(),
        ident,
        ty: field.ty.clone(),
        doc: doc_of(&field.attrs),
        default: FieldDefault::None,
        skip: false,
    };
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("default") {
                out.default = if meta.input.peek(syn::Token![=]) {
                    FieldDefault::Expr(meta.value()?.parse()?)
                } else {
                    FieldDefault::Default
                };
                Ok(())
            } else if meta.path.is_ident("rename") {
                out.name = meta.value()?.parse::<syn::LitStr>()?.value();
                Ok(())
            } else if meta.path.is_ident("skip") {
                out.skip = true;
                Ok(())
            } else {
                Err(meta.error("expected `default`, `default = <expr>`, `rename = \"name\"` or `skip`"))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    Some(out)
}

/// `#[derive(StageParams)]`.
pub fn stage_params(input: DeriveInput) -> TokenStream {
    let mut errors = Vec::new();
    let mut declared_stage = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("params")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("stage") {
                declared_stage = true;
                Ok(())
            } else {
                Err(meta.error("expected `stage` (the type is its own params: also derive `DeclaredStage`)"))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let fields: Vec<Field> = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().filter_map(|f| parse_field(f, &mut errors)).collect(),
            Fields::Unit => Vec::new(),
            Fields::Unnamed(u) => {
                errors.push(syn::Error::new(u.span(), "stage params need named fields"));
                Vec::new()
            }
        },
        _ => {
            errors.push(syn::Error::new(input.ident.span(), "`StageParams` derives only for structs"));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return errors.into_iter().map(|e| e.to_compile_error()).collect();
    }
    let p = quote!(::rosette::pipeline::params);
    let name = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let descriptors = fields.iter().filter(|f| !f.skip).map(|f| {
        let (ty, pname, doc) = (&f.ty, &f.name, &f.doc);
        let required = match f.default {
            FieldDefault::None => quote!(<#ty as #p::ParamType>::REQUIRED),
            _ => quote!(false),
        };
        quote_spanned! {f.ty.span()=>
            #p::ParamField { name: #pname, kind: <#ty as #p::ParamType>::KIND, required: #required, doc: #doc }
        }
    });
    let inits = fields.iter().map(|f| {
        let (ident, ty, pname) = (&f.ident, &f.ty, &f.name);
        if f.skip {
            return quote!(#ident: ::core::default::Default::default());
        }
        let default = match &f.default {
            FieldDefault::None => quote!(::core::option::Option::None),
            FieldDefault::Default => {
                quote!(::core::option::Option::Some(<#ty as ::core::default::Default>::default as fn() -> #ty))
            }
            FieldDefault::Expr(e) => quote!(::core::option::Option::Some((|| #e) as fn() -> #ty)),
        };
        quote!(#ident: #p::take::<#ty>(values, #pname, #default)?)
    });
    let stage_impl = declared_stage.then(|| {
        quote! {
            impl #impl_g #p::DeclaredStage for #name #ty_g #where_c {
                type Params = Self;
                fn build(
                    params: Self,
                    _env: &#p::StageEnv,
                ) -> ::core::result::Result<Self, #p::BuildError> {
                    ::core::result::Result::Ok(params)
                }
            }
        }
    });
    quote! {
        impl #impl_g #p::StageParams for #name #ty_g #where_c {
            const FIELDS: &'static [#p::ParamField] = &[#(#descriptors),*];
            fn from_values(
                values: &[(&str, #p::ParamValue<'_>)],
            ) -> ::core::result::Result<Self, #p::ParamError> {
                #p::check_names(<Self as #p::StageParams>::FIELDS, values)?;
                ::core::result::Result::Ok(#name { #(#inits,)* })
            }
        }
        #stage_impl
    }
}

/// `#[derive(ParamEnum)]`: a fieldless enum whose variants are written in snake case (or
/// `#[param(rename = "word")]`).
pub fn param_enum(input: DeriveInput) -> TokenStream {
    let Data::Enum(data) = &input.data else {
        return syn::Error::new(input.ident.span(), "`ParamEnum` derives only for fieldless enums").to_compile_error();
    };
    let mut errors = Vec::new();
    let mut variants = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            errors.push(syn::Error::new(v.span(), "`ParamEnum` variants take no fields"));
            continue;
        }
        let mut word = snake_case(&v.ident.to_string());
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("param")) {
            if let Err(e) = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    word = meta.value()?.parse::<syn::LitStr>()?.value();
                    Ok(())
                } else {
                    Err(meta.error("expected `rename = \"word\"`"))
                }
            }) {
                errors.push(e);
            }
        }
        variants.push((v.ident.clone(), word));
    }
    if !errors.is_empty() {
        return errors.into_iter().map(|e| e.to_compile_error()).collect();
    }
    let p = quote!(::rosette::pipeline::params);
    let name = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let words = variants.iter().map(|(_, w)| w);
    let arms = variants.iter().map(|(v, w)| quote!(#p::ParamValue::Str(#w) => ::core::result::Result::Ok(#name::#v),));
    quote! {
        impl #impl_g #p::ParamType for #name #ty_g #where_c {
            const KIND: #p::ParamKind = #p::ParamKind::Enum(&[#(#words),*]);
            fn from_value(value: &#p::ParamValue<'_>) -> ::core::result::Result<Self, #p::ParamError> {
                match value {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#p::enum_error(&<Self as #p::ParamType>::KIND, value)),
                }
            }
        }
    }
}
