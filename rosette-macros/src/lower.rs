//! From a validated pipeline to the code generator's model: indices instead of names, defaults already
//! applied, and each stage's compile-time param checks and constructor expression.
//!
//! Every stage implements `rosette::pipeline::DeclaredStage`. For every declared param the module gets
//! `const _: () = check_param(FIELDS, stage, "<file>:<line>:<col>", name, value);` and for every stage
//! `const _: () = check_missing(FIELDS, stage, "<file>:<line>:<col>", &[given names]);` — const
//! evaluation reports a bad declaration at its YAML location (attribute form: spanned on the param).
//! On the lcore the stage is built with `rosette::pipeline::params::build::<Type>(stage, &[..], &env)`.

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
                let base = stage.short_name().map_or_else(|| stage_name(&path), str::to_owned);
                let name = unique_name(&mut names, &base);
                let ty = quote!(#path);
                let checks = checks(index, &ty, stage, source);
                let init = constructor(&ty, stage);
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

/// The expression that builds one stage on its lcore (`env` is the lcore's `StageEnv`).
fn constructor(ty: &TokenStream, stage: &ir::Stage) -> TokenStream {
    let label = &stage.ty.value;
    let values = stage.params.iter().map(|p| {
        let (name, value) = (&p.name.value, param_value(&p.value.value));
        quote!((#name, #value))
    });
    quote!(::rosette::pipeline::params::build::<#ty>(#label, &[#(#values),*], &env)?)
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
}
