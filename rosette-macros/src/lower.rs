//! From a validated pipeline to the code generator's model: indices instead of names, defaults already
//! applied, and each stage's constructor expression.
//!
//! Stage construction follows the declaration convention: a stage without parameters is
//! `<Type as Default>::default()`; with parameters it is the struct literal
//! `Type { field: value, .., ..Default::default() }`, so rustc checks every field name and value type
//! and its errors name the stage type.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::codegen::{EalModel, Endpoint, LcoreModel, MemoryModel, Model, PollModel, PortModel, RingModel, StageModel};
use crate::ir::{self, ParamValue, Sink, Source};
use crate::validate::ValidPipeline;

/// The module generated for a valid pipeline (plus `extra` items kept from an attribute module).
pub fn expand(valid: &ValidPipeline, vis: TokenStream, extra: TokenStream) -> syn::Result<TokenStream> {
    let model = model(valid)?;
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
pub fn model(valid: &ValidPipeline) -> syn::Result<Model> {
    let p = &valid.pipeline;
    let port_index = |name: &str| p.ports.iter().position(|port| port.name.value == name).unwrap_or(0);
    let ring_index = |name: &str| p.rings.iter().position(|ring| ring.name.value == name).unwrap_or(0);
    let mut lcores = Vec::new();
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
                let name = unique_name(&mut names, &stage_name(&path));
                stages.push(StageModel { name, ty: quote!(#path), init: constructor(&path, &stage.params) });
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

fn constructor(path: &syn::Path, params: &[ir::Param]) -> TokenStream {
    if params.is_empty() {
        return quote!(<#path as ::core::default::Default>::default());
    }
    let fields = params.iter().map(|param| {
        let field = syn::Ident::new(&param.name.value, proc_macro2::Span::call_site());
        let value = match &param.value.value {
            ParamValue::Int(i) => {
                let lit = if *i < 0 { Literal::i128_unsuffixed(*i) } else { Literal::u128_unsuffixed(*i as u128) };
                quote!(#lit)
            }
            ParamValue::Float(f) => {
                let lit = Literal::f64_unsuffixed(*f);
                quote!(#lit)
            }
            ParamValue::Bool(b) => quote!(#b),
            ParamValue::Str(s) => quote!(#s),
        };
        quote!(#field: #value)
    });
    quote!(#path { #(#fields,)* ..::core::default::Default::default() })
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
