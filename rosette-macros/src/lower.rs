//! From a validated pipeline to the code generator's model: indices instead of names, defaults already
//! applied, and each stage's compile-time param checks and constructor expression.
//!
//! Every stage implements `rosette::pipeline::DeclaredStage`. For every declared param the module gets
//! `const _: () = check_param(FIELDS, stage, "<file>:<line>:<col>", name, value);` and for every stage
//! `const _: () = check_missing(FIELDS, stage, "<file>:<line>:<col>", &[given names]);` — const
//! evaluation reports a bad declaration at its YAML location (attribute form: spanned on the param).
//! On the lcore the stage is built with `rosette::pipeline::params::build_declared::<Type>(stage, at, &[..], &[..], &env)`,
//! whose errors name the declaration of the param at fault (`launch()` returns them).

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};

use crate::codegen::{
    EalModel, Endpoint, EndpointModel, LcoreModel, MemoryModel, Model, PollModel, PortModel, RingModel, StageModel,
};
use crate::diag::Loc;
use crate::ir::{self, ParamValue, Sink, Source};
use crate::validate::ValidPipeline;

/// The module generated for a valid pipeline (plus `extra` items kept from an attribute module).
/// `source` is the YAML path as written in the macro call (the prefix of compile-time param errors),
/// `None` for the attribute form.
pub fn expand(
    valid: &ValidPipeline,
    vis: TokenStream,
    extra: TokenStream,
    source: Option<&str>,
) -> syn::Result<TokenStream> {
    let model = model(valid, source)?;
    let module = crate::codegen::expand(&model);
    // codegen emits `pub mod name { … }`; splice in the declared visibility and the extra items.
    let file: syn::File = syn::parse2(module)?;
    let mut items = file.items;
    if let Some(syn::Item::Mod(m)) = items.first_mut() {
        m.vis = syn::parse2(vis)?;
        if let Some((_, content)) = m.content.as_mut() {
            let extra: syn::File = syn::parse2(extra)?;
            content.extend(extra.items);
        }
    }
    Ok(quote!(#(#items)*))
}

/// Builds the code generator's model. Fails only if a stage type does not parse as a path (the validator
/// already rejects that).
pub fn model(valid: &ValidPipeline, source: Option<&str>) -> syn::Result<Model> {
    let p = &valid.pipeline;
    let port_index = |name: &str| p.ports.iter().position(|port| port.name.value == name).unwrap_or(0);
    let ring_index = |name: &str| p.rings.iter().position(|ring| ring.name.value == name).unwrap_or(0);
    let mut lcores = Vec::new();
    let mut endpoints = Vec::new();
    let mut index = 0usize;
    for core in &p.cores {
        let mut polls = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for poll in &core.polls {
            let from = match &poll.from.value {
                Source::PortRx { port, queue } => Endpoint::Port { port: port_index(port), queue: *queue },
                Source::Ring(name) => Endpoint::Ring(ring_index(name)),
            };
            let to = match &poll.to.value {
                Sink::PortTx { port, queue } => Endpoint::Port { port: port_index(port), queue: *queue },
                Sink::Ring(name) => Endpoint::Ring(ring_index(name)),
                Sink::Drop => Endpoint::Drop,
            };
            let mut stages = Vec::new();
            for stage in &poll.stages {
                let path = stage.type_path()?;
                let base = stage.short_name().map_or_else(|| stage_name(&path.path), str::to_owned);
                let name = unique_name(&mut names, &base);
                // A user path is resolved through a checked alias, so a misspelt type is one error
                // naming its declaration; built-in stages are referred to directly.
                let resolved =
                    if stage.short_name().is_none() { resolution(index, &path, stage, source) } else { None };
                let (resolve, ty) = resolved.unwrap_or_else(|| (TokenStream::new(), quote!(#path)));
                let mut checks = resolve;
                checks.extend(self::checks(index, &ty, stage, source));
                let init = constructor(&ty, stage, source);
                if let Some(endpoint) = stage.endpoint_name() {
                    endpoints.push(EndpointModel {
                        name: endpoint.to_owned(),
                        stage: stage.ty.value.clone(),
                        ty: ty.clone(),
                    });
                }
                stages.push(StageModel { name, ty, checks, init });
                index += 1;
            }
            polls.push(PollModel { from, stages, to });
        }
        lcores.push(LcoreModel { lcore: core.lcore.value, burst: u32::from(core.burst.value), polls });
    }
    Ok(Model {
        name: p.name.value.clone(),
        source_file: None,
        eal: EalModel {
            memory: match p.eal.memory.value {
                ir::MemoryMode::Auto => MemoryModel::Auto,
                ir::MemoryMode::Hugepages => MemoryModel::Hugepages,
                ir::MemoryMode::NoHuge => MemoryModel::NoHuge,
            },
            memory_mb: p.eal.memory_mb.as_ref().map(|m| m.value),
            lcores: p.eal.lcores.value.clone(),
            main_lcore: Some(valid.main_lcore),
            file_prefix: p.eal.file_prefix.as_ref().map(|f| f.value.clone()),
            extra_args: p.eal.extra_args.iter().map(|a| a.value.clone()).collect(),
        },
        ports: p
            .ports
            .iter()
            .map(|port| PortModel {
                name: port.name.value.clone(),
                device: port.device.value.clone(),
                rx_queues: port.rx_queues.value,
                tx_queues: port.tx_queues.value,
                rx_descriptors: port.rx_descriptors.value,
                tx_descriptors: port.tx_descriptors.value,
                pool_size: port.mempool.size.value,
                pool_cache: port.mempool.cache.value,
                shared_tx: port.shared_tx.value,
                rss_udp: port.rss.value == ir::RssMode::Udp,
            })
            .collect(),
        rings: p.rings.iter().map(|r| RingModel { name: r.name.value.clone(), size: r.size.value }).collect(),
        lcores,
        endpoints,
    })
}

/// A stage's name in statistics: its type's last path segment in snake case (`ParseUdp` → `parse_udp`).
fn stage_name(path: &syn::Path) -> String {
    let last = path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    let mut name = String::new();
    for (i, c) in last.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                name.push('_');
            }
            name.extend(c.to_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// `base`, or `base_2`, `base_3`… when an lcore already has a stage of that name.
fn unique_name(taken: &mut Vec<String>, base: &str) -> String {
    let mut name = base.to_owned();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// The location prefix of a compile-time param error: `file:line:col` for YAML, empty for attributes
/// (whose errors are spanned instead).
fn location(source: Option<&str>, loc: Loc) -> String {
    match (source, loc) {
        (Some(file), Loc::Yaml { .. }) => format!("{file}:{loc}"),
        (Some(file), _) => file.to_owned(),
        (None, _) => String::new(),
    }
}

/// The span compile-time errors about a value at `loc` point at.
fn span_of(loc: Loc) -> Span {
    match loc {
        Loc::Tokens(span) | Loc::TokenRange(span, _) => span,
        Loc::Yaml { .. } | Loc::Unknown => Span::call_site(),
    }
}

/// The parts of a user stage path whose existence generated code can check: the module it is in, the
/// type's name and its generic type arguments. `None` for a path the check does not cover (one
/// segment, a qualified path, generic arguments before the last segment, arguments that are not
/// types, a module named like the type): those are referred to as written.
fn checkable(path: &syn::TypePath) -> Option<(syn::Path, &syn::Ident, Vec<&syn::Type>)> {
    if path.qself.is_some() || path.path.segments.len() < 2 {
        return None;
    }
    let segments: Vec<&syn::PathSegment> = path.path.segments.iter().collect();
    let (last, prefix) = segments.split_last()?;
    // A module segment named like the type would resolve to the stand-in inside the check.
    if prefix.iter().any(|seg| !seg.arguments.is_none() || seg.ident == last.ident) {
        return None;
    }
    let args = match &last.arguments {
        syn::PathArguments::None => Vec::new(),
        syn::PathArguments::AngleBracketed(a) => {
            let mut types = Vec::new();
            for arg in &a.args {
                match arg {
                    syn::GenericArgument::Type(t) => types.push(t),
                    _ => return None,
                }
            }
            types
        }
        syn::PathArguments::Parenthesized(_) => return None,
    };
    let mut module = syn::Path { leading_colon: path.path.leading_colon, segments: Default::default() };
    for seg in prefix {
        module.segments.push((*seg).clone());
    }
    Some((module, &last.ident, args))
}

/// Tokens as one compact word (`crate :: a :: B < u8 >` → `crate::a::B<u8>`).
fn compact(tokens: &TokenStream) -> String {
    tokens.to_string().chars().filter(|c| !c.is_whitespace()).collect()
}

/// The checked alias of user stage `index` (module-level items) and the type generated code names it
/// by, `<__RosetteStage<index> as StageType>::Stage`.
///
/// For `type: crate::stages::Count` the items are a marker type and, in an anonymous constant, a
/// stand-in `Count` whose type is a projection through a trait nobody implements, then an inner block
/// that glob-imports `crate::stages` and implements `StageType` for the marker with `Stage = Count`.
/// Inside that block the glob-imported `Count` shadows the stand-in when it exists; when it does not,
/// the stand-in is used and rustc reports the unimplemented trait with its
/// `#[diagnostic::on_unimplemented]` message, which names the declaration (`file:line:col`) and the
/// missing type. The error type then absorbs every later use, so that is the one error. Generic
/// arguments are resolved outside the block (as module-level aliases), where the declaration's other
/// paths are resolved, so the glob cannot change what they mean.
fn resolution(
    index: usize,
    path: &syn::TypePath,
    stage: &ir::Stage,
    source: Option<&str>,
) -> Option<(TokenStream, TokenStream)> {
    let (module, last, args) = checkable(path)?;
    let span = span_of(stage.ty.loc);
    // Every token rustc may point at carries the declaration's span (attribute form), so each misspelt
    // stage is reported once, there.
    let mut last = last.clone();
    last.set_span(span);
    let marker = syn::Ident::new(&format!("__RosetteStage{index}"), span);
    let arg_aliases: Vec<syn::Ident> =
        (0..args.len()).map(|i| syn::Ident::new(&format!("__rosette_stage_{index}_arg_{i}"), span)).collect();
    let params: Vec<syn::Ident> = (0..args.len()).map(|i| syn::Ident::new(&format!("T{i}"), span)).collect();
    let generics = if args.is_empty() { quote!() } else { quote_spanned!(span=> <#(#params),*>) };
    let unsized_generics =
        if args.is_empty() { quote!() } else { quote_spanned!(span=> <#(#params: ?::core::marker::Sized),*>) };
    let arg_uses = if args.is_empty() { quote!() } else { quote_spanned!(span=> <#(self::#arg_aliases),*>) };
    let at = location(source, stage.ty.loc);
    let prefix = if at.is_empty() { String::new() } else { format!("{at}: ") };
    let module_text = compact(&quote!(#module));
    let escape = |s: String| s.replace('{', "{{").replace('}', "}}");
    let message = escape(format!(
        "{prefix}stage type `{}` not found: `{module_text}` has no public type `{last}`",
        stage.ty.value
    ));
    let label = escape(format!("stage type `{}` not found", stage.ty.value));
    let note = "check the spelling of the stage type in the declaration: a user stage is a public type that \
                implements `rosette::pipeline::DeclaredStage`, written as its path (`crate::stages::MyStage`)";
    let doc = format!(" The stage type `{}`, checked to exist (see `rosette::pipeline::StageType`).", stage.ty.value);
    let items = quote_spanned! {span=>
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        pub struct #marker;
        #(
            #[doc = " A generic argument of the stage type, resolved where the declaration's paths are."]
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            pub type #arg_aliases = #args;
        )*
        const _: () = {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            #[allow(dead_code)]
            trait StageTypeNotFound #unsized_generics {
                type Stage;
            }
            #[allow(dead_code, non_camel_case_types)]
            type #last #generics = <() as StageTypeNotFound #generics>::Stage;
            {
                #[allow(unused_imports)]
                use #module::*;
                impl ::rosette::pipeline::StageType for self::#marker {
                    type Stage = #last #arg_uses;
                }
            }
        };
    };
    let ty = quote_spanned!(span=> <#marker as ::rosette::pipeline::StageType>::Stage);
    Some((items, ty))
}

/// `::rosette::pipeline::ParamValue::…(value)`.
fn param_value(value: &ParamValue) -> TokenStream {
    match value {
        ParamValue::Int(i) => {
            let lit = if *i < 0 { Literal::i128_unsuffixed(*i) } else { Literal::u128_unsuffixed(*i as u128) };
            quote!(::rosette::pipeline::ParamValue::Int(#lit))
        }
        ParamValue::Float(f) => {
            let lit = Literal::f64_unsuffixed(*f);
            quote!(::rosette::pipeline::ParamValue::Float(#lit))
        }
        ParamValue::Bool(b) => quote!(::rosette::pipeline::ParamValue::Bool(#b)),
        ParamValue::Str(s) => quote!(::rosette::pipeline::ParamValue::Str(#s)),
    }
}

/// The name of the constant holding stage `index`'s param fields.
fn fields_const(index: usize) -> syn::Ident {
    syn::Ident::new(&format!("STAGE_{index}_PARAMS"), Span::call_site())
}

/// The compile-time checks of one stage's params (module-level items).
fn checks(index: usize, ty: &TokenStream, stage: &ir::Stage, source: Option<&str>) -> TokenStream {
    let fields = fields_const(index);
    let label = &stage.ty.value;
    let stage_span = span_of(stage.ty.loc);
    let mut out = quote_spanned! {stage_span=>
        const #fields: &[::rosette::pipeline::ParamField] =
            <<#ty as ::rosette::pipeline::DeclaredStage>::Params as ::rosette::pipeline::StageParams>::FIELDS;
    };
    for param in &stage.params {
        let at = location(source, param.value.loc);
        let name = &param.name.value;
        let value = param_value(&param.value.value);
        out.extend(quote_spanned! {span_of(param.value.loc)=>
            const _: () = ::rosette::pipeline::params::check_param(#fields, #label, #at, #name, #value);
        });
    }
    let at = location(source, stage.ty.loc);
    let given = stage.params.iter().map(|p| &p.name.value);
    out.extend(quote_spanned! {stage_span=>
        const _: () = ::rosette::pipeline::params::check_missing(#fields, #label, #at, &[#(#given),*]);
    });
    out
}

/// The expression that builds one stage on its lcore (`env` is the lcore's `StageEnv`), with the
/// locations of the stage and of each param for its run-time errors (empty for the attribute form).
fn constructor(ty: &TokenStream, stage: &ir::Stage, source: Option<&str>) -> TokenStream {
    let label = &stage.ty.value;
    let at = location(source, stage.ty.loc);
    let values = stage.params.iter().map(|p| {
        let (name, value) = (&p.name.value, param_value(&p.value.value));
        quote!((#name, #value))
    });
    let value_at = stage.params.iter().map(|p| location(source, p.value.loc));
    quote!(::rosette::pipeline::params::build_declared::<#ty>(#label, #at, &[#(#values),*], &[#(#value_at),*], &env)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_snake_case_and_unique() {
        let path: syn::Path = syn::parse_str("rosette::pipeline::stages::ParseUdp").unwrap();
        assert_eq!(stage_name(&path), "parse_udp");
        let mut taken = Vec::new();
        assert_eq!(unique_name(&mut taken, "count"), "count");
        assert_eq!(unique_name(&mut taken, "count"), "count_2");
    }

    #[test]
    fn user_stage_paths_split_into_module_name_and_type_arguments() {
        let path = |s: &str| syn::parse_str::<syn::TypePath>(s).unwrap();
        let chan = path("crate::stages::Chan<u8, (u8, u16)>");
        let (module, last, args) = checkable(&chan).expect("checkable");
        assert_eq!(compact(&quote!(#module)), "crate::stages");
        assert_eq!(last, "Chan");
        assert_eq!(args.len(), 2);
        let absolute = path("::rosette::pipeline::stages::Count");
        let (module, last, args) = checkable(&absolute).expect("checkable");
        assert_eq!(compact(&quote!(#module)), "::rosette::pipeline::stages");
        assert_eq!((last.to_string().as_str(), args.len()), ("Count", 0));
        // Referred to as written: nothing to glob-import, or arguments the stand-in cannot take.
        for unchecked in ["Filter", "<X as T>::S", "a::B<u8>::C", "a::Ring<1024>", "a::B<'static>", "B::B"] {
            assert!(checkable(&path(unchecked)).is_none(), "{unchecked}");
        }
    }
}
