//! Code generation: from a validated pipeline model to plain Rust — a `SPEC` constant the runtime
//! reads, one poll-loop function per worker lcore, and a `launch` function.
//!
//! The loops are written to read like a hand-written l2fwd loop under `cargo expand`: the burst size
//! is a typenum type, every stage is a local of its concrete type called directly (no `dyn`, no
//! function pointers, no allocation inside the loop), and the stop flag is checked once per iteration.
//! This module only turns a [`Model`] into tokens; parsing and validation happen before it.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, ToTokens};

/// Everything code generation needs, already validated.
#[derive(Debug, Clone)]
pub struct Model {
    /// Name of the generated module (a Rust identifier).
    pub name: String,
    /// Absolute path of the YAML file, if the pipeline came from one (for `include_bytes!`, so cargo
    /// rebuilds when it changes).
    pub source_file: Option<String>,
    /// EAL settings.
    pub eal: EalModel,
    /// Ports, in declaration order.
    pub ports: Vec<PortModel>,
    /// Rings, in declaration order.
    pub rings: Vec<RingModel>,
    /// Worker lcores, in declaration order.
    pub lcores: Vec<LcoreModel>,
    /// Stages with a named application endpoint, in declaration order.
    pub endpoints: Vec<EndpointModel>,
}

/// A stage's application endpoint: `endpoints::<name>(timeout)` in the generated module.
#[derive(Debug, Clone)]
pub struct EndpointModel {
    /// The endpoint name (a Rust identifier).
    pub name: String,
    /// The stage as declared (for the documentation).
    pub stage: String,
    /// The stage's type (an `EndpointStage`).
    pub ty: TokenStream,
}

/// EAL settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalModel {
    /// `auto`, `hugepages` or `no-huge`.
    pub memory: MemoryModel,
    /// `-m`, MiB.
    pub memory_mb: Option<u32>,
    /// All lcores, main included.
    pub lcores: Vec<u32>,
    /// The main lcore.
    pub main_lcore: Option<u32>,
    /// `--file-prefix`.
    pub file_prefix: Option<String>,
    /// Extra EAL arguments.
    pub extra_args: Vec<String>,
}

/// Memory mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryModel {
    /// Hugepages when usable, else no-huge.
    Auto,
    /// Hugepages.
    Hugepages,
    /// No hugepages.
    NoHuge,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortModel {
    /// Declared name.
    pub name: String,
    /// Device string.
    pub device: String,
    /// Rx queues.
    pub rx_queues: u16,
    /// Tx queues.
    pub tx_queues: u16,
    /// Rx descriptors per queue.
    pub rx_descriptors: u16,
    /// Tx descriptors per queue.
    pub tx_descriptors: u16,
    /// Mbufs per pool.
    pub pool_size: u32,
    /// Mempool cache.
    pub pool_cache: u32,
    /// Tx queues shared between lcores.
    pub shared_tx: bool,
    /// `rss: udp` (the default), else `rss: none`.
    pub rss_udp: bool,
}

/// A ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingModel {
    /// Declared name.
    pub name: String,
    /// Slots.
    pub size: u32,
}

/// Where a poll reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A queue of a port (index into [`Model::ports`]).
    Port {
        /// Port index.
        port: usize,
        /// Queue index.
        queue: u16,
    },
    /// A ring (index into [`Model::rings`]).
    Ring(usize),
    /// Nowhere: packets are freed (only as a destination).
    Drop,
}

/// A stage: its name (for statistics), its type, its compile-time checks and the expression that builds
/// it.
#[derive(Debug, Clone)]
pub struct StageModel {
    /// Name shown in statistics.
    pub name: String,
    /// The stage's type, as written by the user (short names resolved).
    pub ty: TokenStream,
    /// Module-level items that check the declared params at compile time.
    pub checks: TokenStream,
    /// An expression of that type (e.g. `Type::new(1500, true)`); it may use `env` (the lcore's
    /// `StageEnv`) and `?` (the loop function returns `Result<(), LaunchError>`).
    pub init: TokenStream,
}

/// One rx → stages → tx chain of an lcore.
#[derive(Debug, Clone)]
pub struct PollModel {
    /// Source.
    pub from: Endpoint,
    /// Stages, in order.
    pub stages: Vec<StageModel>,
    /// Destination.
    pub to: Endpoint,
}

/// A worker lcore.
#[derive(Debug, Clone)]
pub struct LcoreModel {
    /// The lcore id.
    pub lcore: u32,
    /// Burst size (a power of two, at most 1024).
    pub burst: u32,
    /// Polls, run in order on every iteration.
    pub polls: Vec<PollModel>,
}

impl Model {
    fn endpoint_text(&self, endpoint: Endpoint, rx: bool) -> String {
        match endpoint {
            Endpoint::Port { port, queue } => {
                format!("{}.{}[{queue}]", self.ports[port].name, if rx { "rx" } else { "tx" })
            }
            Endpoint::Ring(r) => format!("ring {}", self.rings[r].name),
            Endpoint::Drop => "drop".to_owned(),
        }
    }
}

/// Per-lcore index tables: which rx/tx queues and rings the lcore's `LcoreIo` hands out, in order.
struct LcoreIoPlan {
    rx: Vec<(usize, u16)>,
    tx: Vec<(usize, u16)>,
    ring_in: Vec<usize>,
    ring_out: Vec<usize>,
}

impl LcoreIoPlan {
    fn of(lcore: &LcoreModel) -> LcoreIoPlan {
        let mut plan = LcoreIoPlan { rx: Vec::new(), tx: Vec::new(), ring_in: Vec::new(), ring_out: Vec::new() };
        for poll in &lcore.polls {
            match poll.from {
                Endpoint::Port { port, queue } if !plan.rx.contains(&(port, queue)) => plan.rx.push((port, queue)),
                Endpoint::Ring(r) if !plan.ring_in.contains(&r) => plan.ring_in.push(r),
                _ => {}
            }
            match poll.to {
                Endpoint::Port { port, queue } if !plan.tx.contains(&(port, queue)) => plan.tx.push((port, queue)),
                Endpoint::Ring(r) if !plan.ring_out.contains(&r) => plan.ring_out.push(r),
                _ => {}
            }
        }
        plan
    }
}

/// An integer literal without a type suffix (`32`, not `32u32`), so the expansion reads as written.
fn lit(n: impl Into<u64>) -> Literal {
    Literal::u64_unsuffixed(n.into())
}

fn burst_type(burst: u32) -> TokenStream {
    let ident = Ident::new(&format!("U{burst}"), Span::call_site());
    quote!(::rosette::typenum::#ident)
}

/// The body of a closure that takes `packet` through the given stages in one go: the fused form of a
/// stage chain. A dropped packet is counted against its stage; a taken one just leaves the burst.
/// `timed`: the sampled form, which also counts each stage's packets and reads the TSC around each
/// `on_packet` (see `rosette::pipeline::stats`).
fn fused_chain(stages: &[(Ident, Literal)], timed: bool) -> TokenStream {
    let steps = stages.iter().map(|(var, index)| {
        let call = if timed {
            quote! {
                counters.stage_packets[#index] += 1;
                let started = ::rosette::substrate::tsc();
                let verdict = #var.on_packet(packet, &cx);
                counters.stage_cycles[#index] += ::rosette::substrate::tsc().wrapping_sub(started);
            }
        } else {
            quote!(let verdict = #var.on_packet(packet, &cx);)
        };
        quote! {
            #call
            let packet = match verdict {
                Verdict::Pass(packet) => packet,
                Verdict::Dropped => {
                    counters.stage_drops[#index] += 1;
                    return None;
                }
                Verdict::Taken => return None,
            };
        }
    });
    quote! {
        #(#steps)*
        Some(packet)
    }
}

/// The whole generated module.
pub fn expand(model: &Model) -> TokenStream {
    let module = Ident::new(&model.name, Span::call_site());
    let name = &model.name;
    let spec = expand_spec(model);
    let tracked = model.source_file.as_ref().map(|path| {
        quote! {
            // Makes cargo rebuild this crate when the declaration changes.
            const _: &[u8] = include_bytes!(#path);
        }
    });
    let lcore_fns: Vec<TokenStream> = model.lcores.iter().map(|l| expand_lcore(model, l)).collect();
    let launches = model.lcores.iter().map(|l| {
        let lcore = lit(l.lcore);
        let f = format_ident!("lcore_{}", l.lcore);
        quote! {
            if let ::core::result::Result::Err(e) = runtime.launch(#lcore, #f) {
                return ::core::result::Result::Err(runtime.abort(e));
            }
        }
    });
    let checks = model.lcores.iter().flat_map(|l| &l.polls).flat_map(|p| &p.stages).map(|s| &s.checks);
    let endpoints = expand_endpoints(model);
    let doc = format!(" The `{name}` pipeline, generated by rosette from its declaration.");
    quote! {
        #[doc = #doc]
        pub mod #module {
            #tracked

            /// The pipeline's name as declared.
            pub const NAME: &str = #name;

            /// The pipeline's declaration as data: what the runtime sets up before the loops start.
            pub static SPEC: ::rosette::pipeline::runtime::PipelineSpec = #spec;

            // Compile-time checks of the declared stage params.
            #(#checks)*
            #endpoints

            /// Starts EAL, creates the mempools on the NUMA socket of the lcores that poll them,
            /// configures and starts the ports, creates the rings, launches every lcore's loop, and
            /// returns once every loop has built its stages: a stage that cannot be built (a param
            /// its checks refuse at run time) fails the launch with its reason and its declaration,
            /// after the pipeline was shut down.
            pub fn launch(
                options: &::rosette::pipeline::LaunchOptions,
            ) -> ::core::result::Result<::rosette::pipeline::Pipeline, ::rosette::pipeline::LaunchError> {
                let mut runtime = ::rosette::pipeline::Runtime::start(&SPEC, options)?;
                #(#launches)*
                runtime.started()
            }

            #(#lcore_fns)*
        }
    }
}

/// `pub mod endpoints { pub fn <name>(timeout) -> Result<<Stage as EndpointStage>::Endpoint, _> }`: the
/// application end of every stage declared with an `endpoint`, typed by the stage.
fn expand_endpoints(model: &Model) -> Option<TokenStream> {
    if model.endpoints.is_empty() {
        return None;
    }
    let fns = model.endpoints.iter().map(|e| {
        let f = Ident::new(&e.name, Span::call_site());
        let (name, ty) = (&e.name, &e.ty);
        let doc = format!(
            " The application endpoint `{name}` of the `{}` stage: waits up to `timeout` for the stage to start.",
            e.stage
        );
        quote! {
            #[doc = #doc]
            pub fn #f(
                timeout: ::core::time::Duration,
            ) -> ::core::result::Result<
                <#ty as ::rosette::pipeline::EndpointStage>::Endpoint,
                ::rosette::pipeline::endpoint::EndpointError,
            > {
                <<#ty as ::rosette::pipeline::EndpointStage>::Endpoint as ::rosette::pipeline::ConnectEndpoint>::connect(
                    #name, timeout,
                )
            }
        }
    });
    Some(quote! {
        /// The application endpoints of the pipeline's stages, typed by stage: declaring another
        /// channel changes the type each function returns.
        pub mod endpoints {
            // Stage paths are written relative to the pipeline module.
            #[allow(unused_imports)]
            use super::*;
            #(#fns)*
        }
    })
}

fn expand_spec(model: &Model) -> TokenStream {
    let name = &model.name;
    let eal = &model.eal;
    let memory = match eal.memory {
        MemoryModel::Auto => quote!(::rosette::substrate::MemoryMode::Auto),
        MemoryModel::Hugepages => quote!(::rosette::substrate::MemoryMode::Hugepages),
        MemoryModel::NoHuge => quote!(::rosette::substrate::MemoryMode::NoHuge),
    };
    let memory_mb = option(eal.memory_mb.map(|m| lit(m).into_token_stream()));
    let lcores = eal.lcores.iter().map(|&l| lit(l));
    let main_lcore = option(eal.main_lcore.map(|m| lit(m).into_token_stream()));
    let file_prefix = option(eal.file_prefix.as_ref().map(|p| quote!(#p)));
    let extra_args = &eal.extra_args;
    let ports = model.ports.iter().map(|p| {
        let (name, device) = (&p.name, &p.device);
        let (rxq, txq, rxd, txd) = (lit(p.rx_queues), lit(p.tx_queues), lit(p.rx_descriptors), lit(p.tx_descriptors));
        let (pool_size, pool_cache, shared_tx) = (lit(p.pool_size), lit(p.pool_cache), p.shared_tx);
        let rss = if p.rss_udp {
            quote!(::rosette::substrate::RssMode::Udp)
        } else {
            quote!(::rosette::substrate::RssMode::None)
        };
        quote! {
            ::rosette::pipeline::runtime::PortSpec {
                name: #name,
                device: #device,
                rx_queues: #rxq,
                tx_queues: #txq,
                rx_descriptors: #rxd,
                tx_descriptors: #txd,
                pool_size: #pool_size,
                pool_cache: #pool_cache,
                shared_tx: #shared_tx,
                rss: #rss,
            }
        }
    });
    let rings = model.rings.iter().map(|r| {
        let (name, size) = (&r.name, lit(r.size));
        quote!(::rosette::pipeline::runtime::RingSpec { name: #name, size: #size })
    });
    let lcores_spec = model.lcores.iter().map(|l| {
        let plan = LcoreIoPlan::of(l);
        let lcore = lit(l.lcore);
        let queue_ref = |&(port, queue): &(usize, u16)| {
            let (port, queue) = (lit(port as u64), lit(queue));
            quote!(::rosette::pipeline::runtime::QueueRef { port: #port, queue: #queue })
        };
        let rx = plan.rx.iter().map(queue_ref);
        let tx = plan.tx.iter().map(queue_ref);
        let ring_in = plan.ring_in.iter().map(|&r| lit(r as u64));
        let ring_out = plan.ring_out.iter().map(|&r| lit(r as u64));
        let stages = l.polls.iter().flat_map(|p| p.stages.iter().map(|s| s.name.clone()));
        quote! {
            ::rosette::pipeline::runtime::LcoreSpec {
                lcore: #lcore,
                rx: &[#(#rx),*],
                tx: &[#(#tx),*],
                ring_in: &[#(#ring_in),*],
                ring_out: &[#(#ring_out),*],
                stages: &[#(#stages),*],
            }
        }
    });
    quote! {
        ::rosette::pipeline::runtime::PipelineSpec {
            name: #name,
            eal: ::rosette::pipeline::runtime::EalSpec {
                memory: #memory,
                memory_mb: #memory_mb,
                lcores: &[#(#lcores),*],
                main_lcore: #main_lcore,
                file_prefix: #file_prefix,
                extra_args: &[#(#extra_args),*],
            },
            ports: &[#(#ports),*],
            rings: &[#(#rings),*],
            lcores: &[#(#lcores_spec),*],
        }
    }
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

fn stage_count_n(lcore: &LcoreModel) -> usize {
    lcore.polls.iter().map(|p| p.stages.len()).sum()
}

fn expand_lcore(model: &Model, lcore: &LcoreModel) -> TokenStream {
    let plan = LcoreIoPlan::of(lcore);
    let f = format_ident!("lcore_{}", lcore.lcore);
    let burst_ty = burst_type(lcore.burst);
    let stage_count = lit(lcore.polls.iter().map(|p| p.stages.len()).sum::<usize>() as u64);

    let drain_rx = plan.rx.iter().enumerate().map(|(i, _)| {
        let var = format_ident!("rx_{i}");
        quote!(#var.drain(1024);)
    });
    let take_rx = plan.rx.iter().enumerate().map(|(i, _)| {
        let var = format_ident!("rx_{i}");
        let i = lit(i as u64);
        quote!(let mut #var = io.take_rx(#i)?;)
    });
    let take_tx = plan.tx.iter().enumerate().map(|(i, &(port, _))| {
        let var = format_ident!("tx_{i}");
        let i = lit(i as u64);
        if model.ports[port].shared_tx {
            quote!(let mut #var = io.take_shared_tx(#i)?;)
        } else {
            quote!(let mut #var = io.take_tx(#i)?;)
        }
    });
    let take_ring_in = plan.ring_in.iter().enumerate().map(|(i, _)| {
        let var = format_ident!("ring_in_{i}");
        let i = lit(i as u64);
        quote!(let mut #var = io.take_ring_in(#i)?;)
    });
    let take_ring_out = plan.ring_out.iter().enumerate().map(|(i, _)| {
        let var = format_ident!("ring_out_{i}");
        let i = lit(i as u64);
        quote!(let mut #var = io.take_ring_out(#i)?;)
    });

    let env = (stage_count_n(lcore) > 0).then(|| {
        quote! {
            let env = ::rosette::pipeline::StageEnv::from_context(&cx);
        }
    });
    let mut stage_index = 0usize;
    let mut stage_lets = Vec::new();
    let mut stage_finish = Vec::new();
    let mut polls = Vec::new();
    let mut chain_docs = Vec::new();
    for poll in &lcore.polls {
        let mut names = Vec::new();
        // (variable, counter index) of each stage of this poll, in order.
        let mut vars = Vec::new();
        for stage in &poll.stages {
            let var = format_ident!("stage_{stage_index}");
            let (ty, init) = (&stage.ty, &stage.init);
            stage_lets.push(quote! {
                ::rosette::pipeline::require_stage::<#ty>();
                let mut #var: #ty = #init;
            });
            let index = lit(stage_index as u64);
            stage_finish.push(quote! {
                io.report_stage(#index, #var.report());
                #var.finish(&cx);
            });
            vars.push((var, lit(stage_index as u64)));
            names.push(stage.name.clone());
            stage_index += 1;
        }
        let pass = if vars.is_empty() {
            quote!()
        } else {
            let (chain, timed) = (fused_chain(&vars, false), fused_chain(&vars, true));
            quote! {
                if sample {
                    burst.batch().retain_map(|packet| { #timed });
                } else {
                    burst.batch().retain_map(|packet| { #chain });
                }
            }
        };
        let emits = vars.iter().enumerate().map(|(i, (var, index))| {
            let rest = &vars[i + 1..];
            // On sampled iterations the emit is timed, and what it emitted counts as the stage's packets.
            let emit = quote! {
                let start = burst.len();
                if sample {
                    let started = ::rosette::substrate::tsc();
                    #var.emit(&mut burst.batch(), &cx);
                    counters.stage_cycles[#index] += ::rosette::substrate::tsc().wrapping_sub(started);
                    counters.stage_packets[#index] += (burst.len() - start) as u64;
                } else {
                    #var.emit(&mut burst.batch(), &cx);
                }
            };
            if rest.is_empty() {
                emit
            } else {
                let (chain, timed) = (fused_chain(rest, false), fused_chain(rest, true));
                quote! {
                    #emit
                    if sample {
                        burst.batch().retain_map_from(start, |packet| { #timed });
                    } else {
                        burst.batch().retain_map_from(start, |packet| { #chain });
                    }
                }
            }
        });
        let chain = std::iter::once(model.endpoint_text(poll.from, true))
            .chain(names)
            .chain(std::iter::once(model.endpoint_text(poll.to, false)))
            .collect::<Vec<_>>()
            .join(" → ");
        chain_docs.push(format!(" - {chain}"));
        let receive = match poll.from {
            Endpoint::Port { port, queue } => {
                let var = format_ident!("rx_{}", plan.rx.iter().position(|&q| q == (port, queue)).unwrap_or(0));
                quote!(let received = #var.rx(&mut burst);)
            }
            Endpoint::Ring(r) => {
                let var = format_ident!("ring_in_{}", plan.ring_in.iter().position(|&x| x == r).unwrap_or(0));
                quote!(let received = #var.dequeue(&mut burst);)
            }
            Endpoint::Drop => quote!(let received = 0usize;),
        };
        let send = match poll.to {
            Endpoint::Port { port, queue } => {
                let var = format_ident!("tx_{}", plan.tx.iter().position(|&q| q == (port, queue)).unwrap_or(0));
                quote! {
                    let (sent, refused) = #var.tx_or_drop(&mut burst);
                    counters.tx_packets += sent as u64;
                    counters.tx_dropped += refused as u64;
                }
            }
            Endpoint::Ring(r) => {
                let var = format_ident!("ring_out_{}", plan.ring_out.iter().position(|&x| x == r).unwrap_or(0));
                quote! {
                    counters.tx_packets += #var.enqueue(&mut burst) as u64;
                    counters.tx_dropped += burst.len() as u64;
                    burst.clear();
                }
            }
            Endpoint::Drop => quote!(burst.clear();),
        };
        polls.push(quote! {
            {
                #receive
                counters.count_poll(received, sample);
                #pass
                #(#emits)*
                if !burst.is_empty() {
                    #send
                }
            }
        });
    }
    let doc = format!(" The poll loop of lcore {}: burst {}, polls:", lcore.lcore, lcore.burst);
    quote! {
        #[doc = #doc]
        #(#[doc = #chain_docs])*
        pub fn #f(
            mut io: ::rosette::pipeline::LcoreIo,
        ) -> ::core::result::Result<(), ::rosette::pipeline::LaunchError> {
            use ::rosette::pipeline::{Stage as _, Verdict};
            #(#take_rx)*
            #(#take_tx)*
            #(#take_ring_in)*
            #(#take_ring_out)*
            let stats = io.stats();
            let stop = io.stop_flag();
            let cx = io.context();
            // Stages are built here, on the lcore, so their memory is first touched on its NUMA socket.
            #env
            #(#stage_lets)*
            // Every stage is built: `launch()` may return.
            io.ready();
            let mut burst = ::rosette::substrate::Burst::<#burst_ty>::new();
            let mut counters = ::rosette::pipeline::stats::LocalCounters::<#stage_count>::new();
            let mut countdown = ::rosette::pipeline::stats::COST_SAMPLE_EVERY as u32;
            while !stop.is_set() {
                if io.paused() {
                    continue;
                }
                // A countdown in a register picks the sampled iterations (one in 64).
                let sample = ::rosette::pipeline::stats::STAGE_COSTS && {
                    countdown -= 1;
                    countdown == 0
                };
                if sample {
                    countdown = ::rosette::pipeline::stats::COST_SAMPLE_EVERY as u32;
                    counters.count_sampled_iterations();
                }
                #(#polls)*
                stats.publish(&counters);
                if sample {
                    stats.publish_costs(&counters);
                }
            }
            #(#stage_finish)*
            counters.count_partial_iterations(countdown);
            stats.publish(&counters);
            stats.publish_costs(&counters);
            // Free what is still queued so every mbuf returns to its pool.
            #(#drain_rx)*
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reflector and a two-lcore forwarder with a ring, built by hand.
    pub(crate) fn sample_model() -> Model {
        let port = |name: &str, device: &str, queues: u16| PortModel {
            name: name.to_owned(),
            device: device.to_owned(),
            rx_queues: queues,
            tx_queues: queues,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            pool_size: 8191,
            pool_cache: 256,
            shared_tx: false,
            rss_udp: true,
        };
        let stage = |name: &str, ty: TokenStream, init: TokenStream| StageModel {
            name: name.to_owned(),
            ty,
            checks: TokenStream::new(),
            init,
        };
        Model {
            name: "sample".to_owned(),
            source_file: Some("/abs/sample.yaml".to_owned()),
            eal: EalModel {
                memory: MemoryModel::Auto,
                memory_mb: None,
                lcores: vec![0, 1, 2],
                main_lcore: Some(0),
                file_prefix: None,
                extra_args: vec!["--log-level=lib.eal:error".to_owned()],
            },
            ports: vec![port("p0", "net_null0", 1), port("p1", "net_null1", 1)],
            rings: vec![RingModel { name: "handoff".to_owned(), size: 1024 }],
            lcores: vec![
                LcoreModel {
                    lcore: 1,
                    burst: 32,
                    polls: vec![PollModel {
                        from: Endpoint::Port { port: 0, queue: 0 },
                        stages: vec![
                            stage(
                                "parse",
                                quote!(::rosette::pipeline::stages::ParseUdp),
                                quote!(::rosette::pipeline::stages::ParseUdp::new(true)),
                            ),
                            stage(
                                "filter",
                                quote!(::rosette::pipeline::stages::DropUdpPort),
                                quote!(::rosette::pipeline::stages::DropUdpPort::new(53)),
                            ),
                        ],
                        to: Endpoint::Ring(0),
                    }],
                },
                LcoreModel {
                    lcore: 2,
                    burst: 64,
                    polls: vec![
                        PollModel {
                            from: Endpoint::Ring(0),
                            stages: vec![stage(
                                "count",
                                quote!(::rosette::pipeline::stages::Count),
                                quote!(::rosette::pipeline::stages::Count::new()),
                            )],
                            to: Endpoint::Port { port: 1, queue: 0 },
                        },
                        PollModel { from: Endpoint::Port { port: 1, queue: 0 }, stages: vec![], to: Endpoint::Drop },
                    ],
                },
            ],
            endpoints: vec![],
        }
    }

    #[test]
    fn dump_dispatch() {
        let Ok(path) = std::env::var("ROSETTE_DUMP_DISPATCH") else { return };
        let stage = |name: &str, ty: TokenStream, init: TokenStream| StageModel {
            name: name.to_owned(),
            ty,
            checks: TokenStream::new(),
            init,
        };
        let model = Model {
            name: "dispatch".to_owned(),
            source_file: None,
            eal: EalModel {
                memory: MemoryModel::Auto,
                memory_mb: None,
                lcores: vec![0, 1],
                main_lcore: Some(0),
                file_prefix: None,
                extra_args: vec![],
            },
            ports: vec![PortModel {
                name: "loop".into(),
                device: "net_ring0".into(),
                rx_queues: 1,
                tx_queues: 1,
                rx_descriptors: 1024,
                tx_descriptors: 1024,
                pool_size: 4095,
                pool_cache: 256,
                shared_tx: false,
                rss_udp: true,
            }],
            rings: vec![],
            lcores: vec![LcoreModel {
                lcore: 1,
                burst: 32,
                polls: vec![PollModel {
                    from: Endpoint::Port { port: 0, queue: 0 },
                    stages: vec![
                        stage(
                            "inject",
                            quote!(::rosette::pipeline::stages::InjectUdp),
                            quote!(::rosette::pipeline::stages::InjectUdp::new(512, 18, 9000)),
                        ),
                        stage(
                            "parse",
                            quote!(::rosette::pipeline::stages::ParseUdp),
                            quote!(::rosette::pipeline::stages::ParseUdp::new(true)),
                        ),
                        stage(
                            "filter",
                            quote!(::rosette::pipeline::stages::DropUdpPort),
                            quote!(::rosette::pipeline::stages::DropUdpPort::new(53)),
                        ),
                        stage(
                            "rewrite",
                            quote!(::rosette::pipeline::stages::SetMacs),
                            quote!(::rosette::pipeline::stages::SetMacs::new(
                                [2, 0, 0, 0, 0, 0x11],
                                [2, 0, 0, 0, 0, 0x22]
                            )),
                        ),
                        stage(
                            "count",
                            quote!(::rosette::pipeline::stages::Count),
                            quote!(::rosette::pipeline::stages::Count::new()),
                        ),
                    ],
                    to: Endpoint::Port { port: 0, queue: 0 },
                }],
            }],
            endpoints: vec![],
        };
        let file: syn::File = syn::parse2(expand(&model)).unwrap();
        std::fs::write(path, prettyplease::unparse(&file)).unwrap();
    }

    #[test]
    fn expansion_is_valid_rust_with_one_function_per_lcore() {
        let file: syn::File = syn::parse2(expand(&sample_model())).expect("generated code parses");
        let text = prettyplease::unparse(&file);
        assert!(text.contains("pub fn lcore_1("), "{text}");
        assert!(text.contains("pub fn lcore_2("), "{text}");
        assert!(text.contains("Burst::<::rosette::typenum::U64>"), "{text}");
        assert!(!text.contains("dyn "), "generated loops must not use dyn");
        if let Ok(path) = std::env::var("ROSETTE_DUMP_EXPANSION") {
            std::fs::write(path, &text).unwrap();
        }
    }
}
