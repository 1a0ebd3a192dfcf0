//! Validation of the IR: every rule runs, every error is collected, each with the location of the value
//! at fault. Rules that depend on a reference resolving (a queue index on an undeclared port, say) skip
//! the unresolved case, which is reported once by the reference rule.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::ir::{self, Pipeline, Sink, Source, MEMPOOL_CACHE_MAX};

/// A pipeline that passed validation, with the facts codegen needs already worked out.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidPipeline {
    /// The validated declaration.
    pub pipeline: Pipeline,
    /// The effective main lcore.
    pub main_lcore: u32,
    /// For each ring (same order as `pipeline.rings`), the distinct lcores that enqueue to it: more than
    /// one means the ring must be created multi-producer.
    pub ring_producers: Vec<Vec<u32>>,
}

impl ValidPipeline {
    /// The port named `name`.
    pub fn port(&self, name: &str) -> Option<&ir::Port> {
        find_port(&self.pipeline, name)
    }

    /// The ring named `name`.
    pub fn ring(&self, name: &str) -> Option<&ir::Ring> {
        find_ring(&self.pipeline, name)
    }

    /// Distinct lcores that write tx queue `queue` of port `port` (more than one only with `shared_tx`).
    pub fn tx_writers(&self, port: &str, queue: u16) -> Vec<u32> {
        let mut lcores = Vec::new();
        for core in &self.pipeline.cores {
            let writes = core
                .polls
                .iter()
                .any(|poll| matches!(&poll.to.value, Sink::PortTx { port: p, queue: q } if p == port && *q == queue));
            if writes && !lcores.contains(&core.lcore.value) {
                lcores.push(core.lcore.value);
            }
        }
        lcores
    }
}

/// EAL options that rosette generates from the declaration; passing them again in `extra_args` would
/// conflict.
const GENERATED_EAL_ARGS: &[(&str, &str)] = &[
    ("-l", "eal.lcores"),
    ("--lcores", "eal.lcores"),
    ("-c", "eal.lcores"),
    ("--main-lcore", "eal.main_lcore"),
    ("-m", "eal.memory_mb"),
    ("--no-huge", "eal.memory"),
    ("--file-prefix", "eal.file_prefix"),
    ("--vdev", "ports"),
];

/// Checks every rule; returns the pipeline with derived facts, or every error found.
pub fn validate(pipeline: Pipeline) -> Result<ValidPipeline, Vec<Diagnostic>> {
    let mut d = Diagnostics::new();
    check_ident(&mut d, "pipeline name", &pipeline.name.value, pipeline.name.loc);
    check_eal(&mut d, &pipeline);
    check_ports(&mut d, &pipeline);
    check_rings(&mut d, &pipeline);
    check_cores(&mut d, &pipeline);
    check_queues(&mut d, &pipeline);
    let ring_producers = check_ring_usage(&mut d, &pipeline);
    check_mempools(&mut d, &pipeline);
    check_endpoints(&mut d, &pipeline);
    check_listeners(&mut d, &pipeline);
    check_tables(&mut d, &pipeline);
    check_stage_values(&mut d, &pipeline);
    let main_lcore = pipeline.eal.main_lcore().unwrap_or(0);
    d.finish(ValidPipeline { pipeline, main_lcore, ring_producers })
}

fn check_ident(d: &mut Diagnostics, what: &str, name: &str, loc: Loc) {
    // `syn::Ident` rejects keywords too, which is what we want for generated module and field names.
    if syn::parse_str::<syn::Ident>(name).is_err() {
        d.error(loc, format!("{what} `{name}` is not a valid Rust identifier"));
    }
}

fn lcore_set_text(lcores: &[u32]) -> String {
    if lcores.is_empty() {
        return "empty".to_owned();
    }
    let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
    list.join(",")
}

fn check_eal(d: &mut Diagnostics, p: &Pipeline) {
    let eal = &p.eal;
    if eal.lcores.value.is_empty() {
        d.error(eal.lcores.loc, "the EAL lcore set is empty");
    }
    let mut seen = Vec::new();
    for &l in &eal.lcores.value {
        if seen.contains(&l) {
            d.error(eal.lcores.loc, format!("lcore {l} is listed twice in the EAL lcore set"));
        }
        seen.push(l);
    }
    if let Some(main) = &eal.main_lcore {
        if !eal.lcores.value.contains(&main.value) {
            d.error(
                main.loc,
                format!(
                    "main lcore {} is not in the EAL lcore set ({})",
                    main.value,
                    lcore_set_text(&eal.lcores.value)
                ),
            );
        }
    }
    if let Some(mb) = &eal.memory_mb {
        if mb.value == 0 {
            d.error(mb.loc, "memory size must be greater than 0 MiB");
        }
    }
    if let Some(prefix) = &eal.file_prefix {
        if prefix.value.is_empty() || prefix.value.contains(['/', ' ']) {
            d.error(
                prefix.loc,
                format!("file prefix `{}` must be non-empty and contain no `/` or spaces", prefix.value),
            );
        }
    }
    for arg in &eal.extra_args {
        let flag = arg.value.split('=').next().unwrap_or("");
        if let Some((_, field)) = GENERATED_EAL_ARGS.iter().find(|(f, _)| *f == flag) {
            d.error(arg.loc, format!("extra EAL argument `{flag}` conflicts with `{field}`, which generates it"));
        }
    }
}

fn check_ports(d: &mut Diagnostics, p: &Pipeline) {
    let mut names: HashMap<&str, ()> = HashMap::new();
    let mut devices: HashMap<&str, &str> = HashMap::new();
    for port in &p.ports {
        let name = port.name.value.as_str();
        check_ident(d, "port name", name, port.name.loc);
        if names.insert(name, ()).is_some() {
            d.error(port.name.loc, format!("duplicate port name `{name}`"));
        }
        let device = port.device.value.as_str();
        if port.device_kind() == ir::DeviceKind::Invalid {
            d.error(
                port.device.loc,
                format!(
                    "device `{device}` of port `{name}` is neither a vdev name (e.g. `net_null0`) nor a \
                     PCI address (e.g. `0000:03:00.0`)"
                ),
            );
        } else if let Some(other) = devices.insert(device_id(device), name) {
            d.error(port.device.loc, format!("device `{device}` of port `{name}` is already used by port `{other}`"));
        }
        if port.rx_queues.value == 0 && port.tx_queues.value == 0 {
            d.error(port.rx_queues.loc, format!("port `{name}` has neither rx nor tx queues"));
        }
        for (what, n) in [("rx", &port.rx_descriptors), ("tx", &port.tx_descriptors)] {
            if n.value == 0 {
                d.error(n.loc, format!("{what} descriptors of port `{name}` must be greater than 0"));
            }
        }
        let cache = &port.mempool.cache;
        if cache.value > MEMPOOL_CACHE_MAX {
            d.error(
                cache.loc,
                format!("mempool cache {} of port `{name}` exceeds DPDK's maximum of {MEMPOOL_CACHE_MAX}", cache.value),
            );
        }
    }
}

/// The part of a device string that identifies the device (vdev arguments do not).
fn device_id(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

fn check_rings(d: &mut Diagnostics, p: &Pipeline) {
    let mut names: HashMap<&str, ()> = HashMap::new();
    for ring in &p.rings {
        let name = ring.name.value.as_str();
        check_ident(d, "ring name", name, ring.name.loc);
        if names.insert(name, ()).is_some() {
            d.error(ring.name.loc, format!("duplicate ring name `{name}`"));
        }
        if p.ports.iter().any(|port| port.name.value == name) {
            d.error(ring.name.loc, format!("ring `{name}` has the same name as a port"));
        }
        let size = ring.size.value;
        // rte_ring needs a power of two; 1 would leave no usable slot (one is always kept free).
        if size < 2 || !size.is_power_of_two() {
            d.error(ring.size.loc, format!("size {size} of ring `{name}` is not a power of two (at least 2)"));
        }
    }
}

fn check_cores(d: &mut Diagnostics, p: &Pipeline) {
    let main = p.eal.main_lcore();
    let mut seen: Vec<u32> = Vec::new();
    for core in &p.cores {
        let lcore = core.lcore.value;
        if seen.contains(&lcore) {
            d.error(core.lcore.loc, format!("lcore {lcore} is declared twice in `cores`"));
        }
        seen.push(lcore);
        if !p.eal.lcores.value.contains(&lcore) {
            d.error(
                core.lcore.loc,
                format!("lcore {lcore} is not in the EAL lcore set ({})", lcore_set_text(&p.eal.lcores.value)),
            );
        } else if main == Some(lcore) {
            d.error(core.lcore.loc, format!("lcore {lcore} is the main lcore and cannot be a worker"));
        }
        if core.polls.is_empty() {
            d.error(core.lcore.loc, format!("lcore {lcore} has no polls"));
        }
        let burst = core.burst.value;
        if burst == 0 {
            d.error(core.burst.loc, format!("burst of lcore {lcore} must be greater than 0"));
        } else if !burst.is_power_of_two() {
            d.error(core.burst.loc, format!("burst {burst} of lcore {lcore} is not a power of two"));
        }
        for poll in &core.polls {
            check_poll(d, p, core, poll);
        }
    }
}

fn find_port<'p>(p: &'p Pipeline, name: &str) -> Option<&'p ir::Port> {
    p.ports.iter().find(|port| port.name.value == name)
}

fn find_ring<'p>(p: &'p Pipeline, name: &str) -> Option<&'p ir::Ring> {
    p.rings.iter().find(|ring| ring.name.value == name)
}

fn check_poll(d: &mut Diagnostics, p: &Pipeline, core: &ir::Core, poll: &ir::Poll) {
    let burst = core.burst.value;
    match &poll.from.value {
        Source::PortRx { port, queue } => match find_port(p, port) {
            None => d.error(poll.from.loc, format!("unknown port `{port}`")),
            Some(port_decl) => {
                let n = port_decl.rx_queues.value;
                if *queue >= n {
                    d.error(poll.from.loc, format!("rx queue {queue} out of range: port `{port}` has {n} rx queue(s)"));
                }
                let desc = port_decl.rx_descriptors.value;
                // Zero descriptors is reported by the port rule; do not pile a burst error on it.
                if desc > 0 && burst > desc {
                    d.error(
                        core.burst.loc,
                        format!(
                            "burst {burst} of lcore {} exceeds the {desc} rx descriptors of port `{port}`",
                            core.lcore.value
                        ),
                    );
                }
            }
        },
        Source::Ring(name) => {
            if find_ring(p, name).is_none() {
                d.error(poll.from.loc, format!("unknown ring `{name}`"));
            }
        }
    }
    match &poll.to.value {
        Sink::PortTx { port, queue } => match find_port(p, port) {
            None => d.error(poll.to.loc, format!("unknown port `{port}`")),
            Some(port_decl) => {
                let n = port_decl.tx_queues.value;
                if *queue >= n {
                    d.error(poll.to.loc, format!("tx queue {queue} out of range: port `{port}` has {n} tx queue(s)"));
                }
            }
        },
        Sink::Ring(name) => {
            if find_ring(p, name).is_none() {
                d.error(poll.to.loc, format!("unknown ring `{name}`"));
            }
        }
        Sink::Drop => {}
    }
    for stage in &poll.stages {
        match stage.short_name() {
            Some(name) if ir::builtin_stage(name).is_none() => {
                let known: Vec<&str> = ir::BUILTIN_STAGES.iter().map(|(n, _)| *n).collect();
                // `unknown stage `relaible`; did you mean `reliable`? built-in …`, or `…`; built-in …`.
                let hint = match crate::diag::did_you_mean(name, &known) {
                    h if h.is_empty() => "; ".to_owned(),
                    h => h + " ",
                };
                d.error(
                    stage.ty.loc,
                    format!(
                        "unknown stage `{name}`{hint}built-in stages are: {}; a user stage is written as a Rust \
                         path such as `crate::MyStage`",
                        known.join(", ")
                    ),
                );
            }
            Some(_) => {}
            None => {
                if let Err(e) = ir::parse_stage_type(&stage.ty.value) {
                    d.error(
                        stage.ty.loc,
                        format!(
                            "{e}; a user stage is written as a Rust type path such as `crate::MyStage` or \
                             `crate::Chan<u8>`"
                        ),
                    );
                }
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for param in &stage.params {
            let name = param.name.value.as_str();
            check_ident(d, "stage parameter", name, param.name.loc);
            if names.contains(&name) {
                d.error(param.name.loc, format!("duplicate parameter `{name}` of stage `{}`", stage.ty.value));
            }
            names.push(name);
            if let ir::ParamValue::Float(f) = param.value.value {
                if !f.is_finite() {
                    d.error(param.value.loc, format!("parameter `{name}` must be a finite number"));
                }
            }
            if name == "endpoint" {
                match &param.value.value {
                    ir::ParamValue::Str(e) => check_ident(d, "endpoint name", e, param.value.loc),
                    _ => d.error(param.value.loc, "the `endpoint` parameter is a name (a string)"),
                }
            }
        }
    }
}

/// Endpoint names become functions of the generated `endpoints` module: one stage each.
fn check_endpoints(d: &mut Diagnostics, p: &Pipeline) {
    let mut seen: Vec<&str> = Vec::new();
    for stage in p.cores.iter().flat_map(|c| &c.polls).flat_map(|poll| &poll.stages) {
        let Some(name) = stage.endpoint_name() else { continue };
        if seen.contains(&name) {
            let loc = stage.params.iter().find(|p| p.name.value == "endpoint").map_or(stage.ty.loc, |p| p.value.loc);
            d.error(loc, format!("endpoint `{name}` is declared by two stages"));
        }
        seen.push(name);
    }
}

/// The address a listener accepts connections on.
type ListenAddr = (Ipv4Addr, u16);

/// Channel stages that accept connections when their `role` is `listen` (the default), by short name.
const LISTENER_STAGES: &[&str] = &["reliable", "streaming", "reliable_mux", "streaming_mux"];

/// The address a stage listens on: a listen-role channel stage whose `ip` and `port` read as an IPv4
/// address and a port. Values that do not read are left to the params' compile-time checks.
fn listen_address(stage: &ir::Stage) -> Option<ListenAddr> {
    if !LISTENER_STAGES.contains(&stage.short_name()?) {
        return None;
    }
    let param = |name: &str| stage.params.iter().find(|p| p.name.value == name).map(|p| &p.value.value);
    match param("role") {
        None => {}
        Some(ir::ParamValue::Str(role)) if role == "listen" => {}
        Some(_) => return None,
    }
    let ip = match param("ip")? {
        ir::ParamValue::Str(ip) => ip.parse().ok()?,
        _ => return None,
    };
    let port = match param("port")? {
        ir::ParamValue::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    Some((ip, port))
}

/// A listener on a port with several rx queues must be on every one of them: RSS spreads the flows of
/// its clients over all the queues, connection state is per lcore, so a queue whose chain does not
/// listen drops the connections hashed to it. One error per listener address and port, at its first
/// stage. Queues nobody polls are the queue rule's; `rss: none` exempts a port (the queue of a flow is
/// then not the hash's choice).
fn check_listeners(d: &mut Diagnostics, p: &Pipeline) {
    // (port, rx queue) -> (first lcore polling it, the addresses its chains listen on).
    let mut chains: BTreeMap<(&str, u16), (u32, Vec<ListenAddr>)> = BTreeMap::new();
    // (port, address) of every listener, in declaration order, with its first stage's location.
    let mut listeners: Vec<(&str, ListenAddr, Loc)> = Vec::new();
    for core in &p.cores {
        for poll in &core.polls {
            let Source::PortRx { port, queue } = &poll.from.value else { continue };
            let chain = chains.entry((port.as_str(), *queue)).or_insert((core.lcore.value, Vec::new()));
            for stage in &poll.stages {
                let Some(addr) = listen_address(stage) else { continue };
                chain.1.push(addr);
                if !listeners.iter().any(|(p, a, _)| p == port && *a == addr) {
                    listeners.push((port.as_str(), addr, stage.ty.loc));
                }
            }
        }
    }
    for (port, (ip, number), loc) in listeners {
        let Some(decl) = find_port(p, port) else { continue };
        if decl.rx_queues.value <= 1 || decl.rss.value == ir::RssMode::None {
            continue;
        }
        let missing: Vec<String> = (0..decl.rx_queues.value)
            .filter_map(|q| {
                let (lcore, addrs) = chains.get(&(port, q))?;
                (!addrs.contains(&(ip, number))).then(|| format!("{port}.rx[{q}] (lcore {lcore})"))
            })
            .collect();
        let (list, verb, queues) = match missing.as_slice() {
            [] => continue,
            [one] => (one.clone(), "has", "that queue"),
            several => (list_of(several), "have", "those queues"),
        };
        d.error(
            loc,
            format!(
                "listener {ip}:{number} on port `{port}` is not on every rx queue: {list} {verb} no listener for \
                 it; connections hashed to {queues} would be dropped"
            ),
        );
    }
}

/// The params of a connection table (`reliable_mux`, `streaming_mux`), refused by the other channels.
const TABLE_PARAMS: &[&str] = &["max_connections", "idle_timeout", "connections"];

/// Channel stages without a connection table, by short name, and the table stage to declare instead.
const SINGLE_CONNECTION_STAGES: &[(&str, Option<&str>)] =
    &[("reliable", Some("reliable_mux")), ("streaming", Some("streaming_mux")), ("unordered", None)];

/// Connection-table stages, by short name.
const TABLE_STAGES: &[&str] = &["reliable_mux", "streaming_mux"];

/// The most connections one table can hold (`rosette::channel::mux::MAX_CONNECTIONS`: slot indexes
/// are 20 bits, all ones left out; a unit test of `rosette-macros` checks the two agree).
pub const MAX_TABLE_CONNECTIONS: i128 = (1 << 20) - 1;

/// `max_connections` of a table stage that does not declare it.
pub const DEFAULT_MAX_CONNECTIONS: i128 = 1024;

/// The table params, checked where they are declared (the stages check them again when they are
/// built, for pipelines assembled in Rust): they belong to `reliable_mux` / `streaming_mux` only,
/// `connections` to a dialer only, `max_connections` within what a table can index, `connections`
/// within `max_connections` (that a dialer needs the `peer` it dials is one of the shared checks of
/// [`check_stage_values`]). Values of the wrong kind are left to the params' compile-time checks.
fn check_tables(d: &mut Diagnostics, p: &Pipeline) {
    for stage in p.cores.iter().flat_map(|c| &c.polls).flat_map(|poll| &poll.stages) {
        let Some(name) = stage.short_name() else { continue };
        let param = |n: &str| stage.params.iter().find(|p| p.name.value == n);
        if let Some((_, table)) = SINGLE_CONNECTION_STAGES.iter().find(|(s, _)| *s == name) {
            for table_param in stage.params.iter().filter(|p| TABLE_PARAMS.contains(&p.name.value.as_str())) {
                let what = &table_param.name.value;
                let message = match table {
                    Some(table) => {
                        format!("param `{what}` needs a connection table: declare `{table}` instead of `{name}`")
                    }
                    None => format!(
                        "param `{what}` needs a connection table: `{name}` has no connections (the table stages \
                         are `reliable_mux` and `streaming_mux`)"
                    ),
                };
                d.error(table_param.name.loc, message);
            }
            continue;
        }
        if !TABLE_STAGES.contains(&name) {
            continue;
        }
        // A role that is not a word is the const checks'; only a declared `connect` makes a dialer.
        let role = param("role");
        let dialer = matches!(role.map(|r| &r.value.value), Some(ir::ParamValue::Str(r)) if r == "connect");
        // The bound `connections` is checked against; `None` when the declared one is itself wrong.
        let mut max = Some(DEFAULT_MAX_CONNECTIONS);
        if let Some(m) = param("max_connections") {
            max = None;
            if let ir::ParamValue::Int(n) = m.value.value {
                if (1..=MAX_TABLE_CONNECTIONS).contains(&n) {
                    max = Some(n);
                } else {
                    d.error(
                        m.value.loc,
                        format!(
                            "param `max_connections` must be between 1 and {MAX_TABLE_CONNECTIONS} (a table \
                             indexes its connections in 20 bits), found {n}"
                        ),
                    );
                }
            }
        }
        if let Some(c) = param("connections") {
            if !dialer {
                d.error(c.name.loc, "param `connections` is for `role: connect` (a listener accepts)");
            } else if let (ir::ParamValue::Int(n), Some(max)) = (&c.value.value, max) {
                if *n > max {
                    let whence = if param("max_connections").is_some() { "" } else { ", the default" };
                    d.error(
                        c.value.loc,
                        format!("param `connections` ({n}) exceeds `max_connections` ({max}{whence})"),
                    );
                }
            }
        }
    }
}

/// The checks of the built-in stages' params that the runtime makes again when it builds the stage
/// (`window` ≥ 2, `rto_min` ≤ `rto_max`, a `max_message` the window holds, a blackhole that ends after it
/// starts, …): the same functions, from `rosette_checks::stock`, so a declaration that compiles is one
/// that launches. Each problem is reported at the value of the param it names (at the stage when the
/// param is absent). A value of the wrong kind counts as absent here: the kind is the param checks'
/// (`check_param`, in const evaluation), which report it once.
fn check_stage_values(d: &mut Diagnostics, p: &Pipeline) {
    use rosette_checks::stock::{self, ChannelDecl, ChannelKind, FaultDecl};
    for stage in p.cores.iter().flat_map(|c| &c.polls).flat_map(|poll| &poll.stages) {
        let Some(name) = stage.short_name() else { continue };
        let param = |n: &str| stage.params.iter().find(|p| p.name.value == n);
        let value = |n: &str| param(n).map(|p| &p.value.value);
        // An integer within `max` (the param's type), else absent.
        let int = |n: &str, max: u64| match value(n) {
            Some(ir::ParamValue::Int(i)) => u64::try_from(*i).ok().filter(|v| *v <= max),
            _ => None,
        };
        let duration = |n: &str| match value(n) {
            Some(ir::ParamValue::Str(s)) => rosette_checks::parse_duration(s).ok(),
            _ => None,
        };
        let problems = if let Some(kind) = ChannelKind::from_short_name(name) {
            let decl = ChannelDecl {
                role_connect: matches!(value("role"), Some(ir::ParamValue::Str(r)) if r == "connect"),
                peer: param("peer").is_some(),
                queue_depth: int("queue_depth", u64::MAX),
                window: int("window", u32::MAX.into()),
                mss: int("mss", u16::MAX.into()),
                max_message: int("max_message", u32::MAX.into()),
                rto_min: duration("rto_min"),
                rto_max: duration("rto_max"),
            };
            stock::channel_problems(kind, &decl)
        } else if name == "fault" {
            let decl = FaultDecl {
                blackhole_start: duration("blackhole_start"),
                blackhole_end: duration("blackhole_end"),
                hold_capacity: int("hold_capacity", u64::MAX),
                reorder_ppm: int("reorder_ppm", 1_000_000),
            };
            stock::fault_problems(&decl)
        } else if name == "inject_udp" {
            stock::inject_problems(int("payload_len", u16::MAX.into()))
        } else {
            Vec::new()
        };
        for problem in problems {
            let loc = problem.param.and_then(param).map_or(stage.ty.loc, |p| p.value.loc);
            d.error(loc, problem.message);
        }
    }
}

/// `a`, `a and b`, `a, b and c`; past four, `a, b, c, d and N more`.
fn list_of(items: &[String]) -> String {
    const SHOWN: usize = 4;
    let shown = &items[..items.len().min(SHOWN)];
    match shown.split_last() {
        Some((last, rest)) if items.len() <= SHOWN && !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) if items.len() <= SHOWN => last.clone(),
        _ => format!("{} and {} more", shown.join(", "), items.len() - SHOWN),
    }
}

/// Rx queues polled by exactly one lcore, tx queues written by one lcore unless `shared_tx`.
fn check_queues(d: &mut Diagnostics, p: &Pipeline) {
    // (port, queue) -> (lcore, loc) of the first poll reading it.
    let mut rx: BTreeMap<(&str, u16), (u32, Loc)> = BTreeMap::new();
    let mut tx: BTreeMap<(&str, u16), u32> = BTreeMap::new();
    for core in &p.cores {
        let lcore = core.lcore.value;
        for poll in &core.polls {
            if let Source::PortRx { port, queue } = &poll.from.value {
                match rx.get(&(port.as_str(), *queue)) {
                    Some((first, _)) if *first == lcore => {
                        d.error(poll.from.loc, format!("rx queue {port}.rx[{queue}] is polled twice by lcore {lcore}"))
                    }
                    Some((first, _)) => d.error(
                        poll.from.loc,
                        format!(
                            "rx queue {port}.rx[{queue}] is polled by lcore {first} and lcore {lcore}; \
                             an rx queue has exactly one poller"
                        ),
                    ),
                    None => {
                        rx.insert((port.as_str(), *queue), (lcore, poll.from.loc));
                    }
                }
            }
            if let Sink::PortTx { port, queue } = &poll.to.value {
                let Some(port_decl) = find_port(p, port) else {
                    continue;
                };
                match tx.get(&(port.as_str(), *queue)) {
                    // The same lcore writing twice is sequential, hence safe.
                    Some(first) if *first != lcore && !port_decl.shared_tx.value => d.error(
                        poll.to.loc,
                        format!(
                            "tx queue {port}.tx[{queue}] is written by lcore {first} and lcore {lcore}; \
                             set `shared_tx: true` on port `{port}` to allow it"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        tx.insert((port.as_str(), *queue), lcore);
                    }
                }
            }
        }
    }
    for port in &p.ports {
        let name = &port.name.value;
        let unpolled: Vec<u16> = (0..port.rx_queues.value).filter(|&q| !rx.contains_key(&(name.as_str(), q))).collect();
        // One error per port: `rx_queues: 1000` with one poll is one mistake, not 999.
        match unpolled.as_slice() {
            [] => {}
            [q] => d.error(port.rx_queues.loc, format!("rx queue {name}.rx[{q}] is not polled by any lcore")),
            several => {
                let queues: Vec<String> = several.iter().map(|q| format!("{name}.rx[{q}]")).collect();
                d.error(port.rx_queues.loc, format!("rx queues {} are not polled by any lcore", list_of(&queues)));
            }
        }
    }
}

/// Every ring needs a producer and exactly one consumer; returns the producer lcores per ring.
fn check_ring_usage(d: &mut Diagnostics, p: &Pipeline) -> Vec<Vec<u32>> {
    p.rings
        .iter()
        .map(|ring| {
            let name = &ring.name.value;
            let mut producers = Vec::new();
            let mut consumers = 0;
            for core in &p.cores {
                for poll in &core.polls {
                    if matches!(&poll.to.value, Sink::Ring(r) if r == name) && !producers.contains(&core.lcore.value) {
                        producers.push(core.lcore.value);
                    }
                    if matches!(&poll.from.value, Source::Ring(r) if r == name) {
                        consumers += 1;
                        if consumers == 2 {
                            d.error(poll.from.loc, format!("ring `{name}` is read by more than one poll"));
                        }
                    }
                }
            }
            if producers.is_empty() {
                d.error(ring.name.loc, format!("ring `{name}` is never written"));
            }
            if consumers == 0 {
                d.error(ring.name.loc, format!("ring `{name}` is never read"));
            }
            producers
        })
        .collect()
}

/// A port's mempool must hold everything that can be out of it at once: a full ring of descriptors on
/// every queue, a full cache on every lcore that touches the port, and a burst in flight per poll reading it.
fn check_mempools(d: &mut Diagnostics, p: &Pipeline) {
    for port in &p.ports {
        let name = &port.name.value;
        let mut lcores: Vec<u32> = Vec::new();
        let mut bursts: u64 = 0;
        for core in &p.cores {
            for poll in &core.polls {
                let reads = matches!(&poll.from.value, Source::PortRx { port, .. } if port == name);
                let writes = matches!(&poll.to.value, Sink::PortTx { port, .. } if port == name);
                if reads {
                    bursts += u64::from(core.burst.value);
                }
                if (reads || writes) && !lcores.contains(&core.lcore.value) {
                    lcores.push(core.lcore.value);
                }
            }
        }
        let rx = u64::from(port.rx_queues.value) * u64::from(port.rx_descriptors.value);
        let tx = u64::from(port.tx_queues.value) * u64::from(port.tx_descriptors.value);
        let cache = u64::from(port.mempool.cache.value) * lcores.len() as u64;
        let needed = rx + tx + cache + bursts;
        let size = u64::from(port.mempool.size.value);
        if size < needed {
            d.error(
                port.mempool.size.loc,
                format!(
                    "mempool of port `{name}` has {size} mbufs but needs at least {needed}: \
                     rx {}×{} + tx {}×{} descriptors + cache {}×{} lcore(s) + {bursts} in flight",
                    port.rx_queues.value,
                    port.rx_descriptors.value,
                    port.tx_queues.value,
                    port.tx_descriptors.value,
                    port.mempool.cache.value,
                    lcores.len(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port `wire` with `queues` rx queues, lcore `1 + q` polling `wire.rx[q]` through `stages(q)`.
    fn pipeline(queues: u16, rss: &str, stages: impl Fn(u16) -> String) -> String {
        let mut text = format!(
            "name: ingest\neal:\n  lcores: \"0-{queues}\"\nports:\n  wire:\n    device: net_memif0\n    \
             rx_queues: {queues}\n    tx_queues: {queues}\n    mempool: {{ size: 65535 }}\n{rss}cores:\n"
        );
        for q in 0..queues {
            text += &format!(
                "  - lcore: {}\n    polls:\n      - from: wire.rx[{q}]\n        stages:\n{}        to: wire.tx[{q}]\n",
                q + 1,
                stages(q)
            );
        }
        text
    }

    /// A channel stage listening on `ip:port`; the single-connection kinds get the peer they need.
    fn listener(ty: &str, ip: &str, port: u16, extra: &str) -> String {
        let extra = if ["reliable", "streaming"].contains(&ty) && !extra.contains("peer") {
            format!(", peer: \"10.0.0.2:7000\"{extra}")
        } else {
            extra.to_owned()
        };
        format!(
            "          - {{ type: {ty}, params: {{ endpoint: e{port}x{}, ip: \"{ip}\", port: {port}, mac: \"02:00:00:00:00:01\"{extra} }} }}\n",
            ip.replace('.', "_")
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match crate::yaml::parse(text).and_then(validate) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|d| format!("{}: {}", d.loc, d.message)).collect(),
        }
    }

    #[test]
    fn a_listener_on_every_rx_queue_is_valid() {
        // Endpoint names must differ per stage; the address is what must repeat.
        let text =
            pipeline(3, "", |q| listener("reliable", "10.0.0.1", 7000, "").replace("e7000x", &format!("q{q}e7000x")));
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn a_listener_missing_from_some_rx_queues_is_located_and_names_them() {
        let text = pipeline(4, "", |q| match q {
            0 => listener("streaming", "10.0.0.1", 7000, ""),
            2 => listener("streaming", "10.0.0.1", 7000, ", role: listen").replace("e7000x", "b7000x"),
            _ => "          - { type: count }\n".to_owned(),
        });
        assert_eq!(
            errors(&text),
            vec![
                "15:21: listener 10.0.0.1:7000 on port `wire` is not on every rx queue: wire.rx[1] (lcore 2) and \
                 wire.rx[3] (lcore 4) have no listener for it; connections hashed to those queues would be dropped"
            ]
        );
        let one =
            pipeline(2, "", |q| if q == 0 { listener("reliable_mux", "10.0.0.1", 7000, "") } else { String::new() });
        assert_eq!(
            errors(&one).iter().filter(|e| e.contains("listener")).cloned().collect::<Vec<_>>(),
            vec![
                "15:21: listener 10.0.0.1:7000 on port `wire` is not on every rx queue: wire.rx[1] (lcore 2) has no \
                 listener for it; connections hashed to that queue would be dropped"
            ]
        );
    }

    #[test]
    fn another_address_on_the_other_queue_does_not_count() {
        let text = pipeline(2, "", |q| listener("reliable", "10.0.0.1", 7000 + q, ""));
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("listener 10.0.0.1:7000 on port `wire`") && errs[0].contains("wire.rx[1] (lcore 2)"));
        assert!(errs[1].contains("listener 10.0.0.1:7001 on port `wire`") && errs[1].contains("wire.rx[0] (lcore 1)"));
    }

    #[test]
    fn connectors_single_queues_rss_none_and_other_stages_are_exempt() {
        let connect = pipeline(2, "", |q| {
            if q == 0 {
                listener("reliable", "10.0.0.1", 7000, ", role: connect, peer: \"10.0.0.2:7000\"")
            } else {
                String::new()
            }
        });
        assert_eq!(errors(&connect), Vec::<String>::new());
        let single = pipeline(1, "", |_| listener("reliable", "10.0.0.1", 7000, ""));
        assert_eq!(errors(&single), Vec::<String>::new());
        let no_rss = pipeline(2, "    rss: none\n", |q| {
            if q == 0 {
                listener("reliable", "10.0.0.1", 7000, "")
            } else {
                String::new()
            }
        });
        assert_eq!(errors(&no_rss), Vec::<String>::new());
        let unordered =
            pipeline(2, "", |q| if q == 0 { listener("unordered", "10.0.0.1", 7000, "") } else { String::new() });
        assert_eq!(errors(&unordered), Vec::<String>::new());
    }

    /// The errors of one stage `ty` with the channel params and `extra`, on a single-queue port, each
    /// with `@needle` in place of its location when the location is that of `needle` in the text (the
    /// first occurrence of `needle` without its `|`, located at the `|`: `max_connections: |0`).
    fn stage_errors(ty: &str, extra: &str, needles: &[&str]) -> Vec<String> {
        let text = pipeline(1, "", |_| listener(ty, "10.0.0.1", 7000, extra));
        let loc_of = |needle: &str| {
            let (before, after) = needle.split_once('|').unwrap_or(("", needle));
            let at = text.find(&format!("{before}{after}")).unwrap_or_else(|| panic!("{needle:?} not in {text}"))
                + before.len();
            let line = text[..at].lines().count();
            let col = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
            format!("{line}:{col}")
        };
        let locs: Vec<(String, &str)> = needles.iter().map(|n| (loc_of(n), *n)).collect();
        errors(&text)
            .into_iter()
            .map(|e| match locs.iter().find(|(loc, _)| e.starts_with(&format!("{loc}: "))) {
                Some((loc, needle)) => format!("@{needle}{}", &e[loc.len()..]),
                None => e,
            })
            .collect()
    }

    #[test]
    fn table_params_on_a_single_connection_stage_name_the_table_stage() {
        let extra = ", peer: \"10.0.0.2:7000\", max_connections: 8, idle_timeout: 0s, connections: 2";
        assert_eq!(
            stage_errors("reliable", extra, &["max_connections", "idle_timeout", ", |connections"]),
            vec![
                "@max_connections: param `max_connections` needs a connection table: declare `reliable_mux` \
                 instead of `reliable`",
                "@idle_timeout: param `idle_timeout` needs a connection table: declare `reliable_mux` instead of \
                 `reliable`",
                "@, |connections: param `connections` needs a connection table: declare `reliable_mux` instead of \
                 `reliable`",
            ]
        );
        assert_eq!(
            stage_errors("streaming", ", peer: \"10.0.0.2:7000\", idle_timeout: 5s", &["idle_timeout"]),
            vec![
                "@idle_timeout: param `idle_timeout` needs a connection table: declare `streaming_mux` instead of \
                 `streaming`"
            ]
        );
        assert_eq!(
            stage_errors("unordered", ", connections: 1", &["connections"]),
            vec![
                "@connections: param `connections` needs a connection table: `unordered` has no connections (the \
                 table stages are `reliable_mux` and `streaming_mux`)"
            ]
        );
    }

    #[test]
    fn table_params_of_a_table_stage_are_checked() {
        for ty in ["reliable_mux", "streaming_mux"] {
            // A listener without a peer, a dialer with one: the defaults, and every param in range.
            assert_eq!(stage_errors(ty, "", &[]), Vec::<String>::new());
            let dialer = ", role: connect, peer: \"10.0.0.2:7000\", connections: 1024, idle_timeout: 0s";
            assert_eq!(stage_errors(ty, dialer, &[]), Vec::<String>::new());
            let full = ", role: connect, peer: \"10.0.0.2:7000\", max_connections: 1048575, connections: 1048575";
            assert_eq!(stage_errors(ty, full, &[]), Vec::<String>::new());
            assert_eq!(stage_errors(ty, ", max_connections: 1, idle_timeout: 60s", &[]), Vec::<String>::new());
        }
        let listener_error = "@connections: param `connections` is for `role: connect` (a listener accepts)";
        assert_eq!(stage_errors("reliable_mux", ", connections: 4", &["connections"]), vec![listener_error]);
        assert_eq!(
            stage_errors("streaming_mux", ", role: listen, connections: 4", &["connections"]),
            vec![listener_error]
        );
        for bad in ["0", "1048576", "-1", "4294967296"] {
            let value = format!("max_connections: {bad}");
            assert_eq!(
                stage_errors("reliable_mux", &format!(", {value}"), &[&format!("max_connections: |{bad}")]),
                vec![format!(
                    "@max_connections: |{bad}: param `max_connections` must be between 1 and 1048575 (a table indexes its \
                     connections in 20 bits), found {bad}"
                )]
            );
        }
        let dialer = ", role: connect, peer: \"10.0.0.2:7000\"";
        assert_eq!(
            stage_errors("reliable_mux", &format!("{dialer}, connections: 1025"), &["1025"]),
            vec!["@1025: param `connections` (1025) exceeds `max_connections` (1024, the default)"]
        );
        assert_eq!(
            stage_errors("streaming_mux", &format!("{dialer}, max_connections: 8, connections: 9"), &["9 }"]),
            vec!["@9 }: param `connections` (9) exceeds `max_connections` (8)"]
        );
        // A wrong bound is reported once, not again as a bound `connections` exceeds.
        let wrong_bound = stage_errors("reliable_mux", &format!("{dialer}, max_connections: 0, connections: 9"), &[]);
        assert_eq!(wrong_bound.len(), 1, "{wrong_bound:?}");
    }

    #[test]
    fn a_dialer_needs_a_peer() {
        for ty in ["reliable_mux", "streaming_mux"] {
            assert_eq!(
                stage_errors(ty, ", role: connect", &["connect"]),
                vec!["@connect: a dialer (`role: connect`) needs `peer` (ip:port), the address it connects to"]
            );
        }
        // Several mistakes of one stage are reported together.
        let errs = stage_errors("reliable_mux", ", role: connect, max_connections: 0, connections: 2", &[]);
        assert_eq!(errs.len(), 2, "{errs:?}");
        // User stages are not checked: their params are their own.
        assert_eq!(stage_errors("crate::Table", ", role: connect, connections: 5000", &[]), Vec::<String>::new());
    }

    #[test]
    fn run_time_param_checks_are_made_at_the_params_location() {
        assert_eq!(
            stage_errors("reliable", ", window: 0", &["window: |0"]),
            vec!["@window: |0: param `window` must be at least 2"]
        );
        assert_eq!(
            stage_errors("streaming", ", rto_min: \"300ms\"", &["\"300ms\""]),
            vec!["@\"300ms\": param `rto_min` (300ms) exceeds `rto_max` (200ms, the default)"]
        );
        let small = stage_errors("reliable_mux", ", window: 16", &["16"]);
        assert_eq!(small.len(), 1, "{small:?}");
        assert!(small[0].starts_with("@16: param `window` (16) cannot hold the largest message"), "{small:?}");
        // A missing peer is the stage's: reported at its type.
        let text = pipeline(1, "", |_| {
            "          - { type: reliable, params: { endpoint: e, ip: \"10.0.0.1\", port: 1, mac: \"02:00:00:00:00:01\" } }\n"
                .to_owned()
        });
        assert_eq!(
            errors(&text),
            vec![
                "15:21: stage `reliable` needs param `peer` (ip:port): a connection-based channel accepts and \
                  sends to that address only"
            ]
        );
        // Values of the wrong kind are the kind checks': not reported here.
        assert_eq!(stage_errors("reliable", ", window: -1, mss: \"big\", rto_min: 5", &[]), Vec::<String>::new());
    }

    #[test]
    fn fault_and_inject_params_are_checked() {
        let stage = |params: &str| pipeline(1, "", |_| format!("          - {{ type: {params} }}\n"));
        assert_eq!(
            errors(&stage("fault, params: { blackhole_start: 10ms, blackhole_end: 5ms }")),
            vec!["15:76: param `blackhole_end` (5ms) must come after `blackhole_start` (10ms)"]
        );
        assert_eq!(
            errors(&stage("inject_udp, params: { count: 1, dst_port: 9, payload_len: 9000 }")),
            vec![
                "15:79: param `payload_len` (9000) exceeds 1472 bytes (an Ethernet MTU of 1500 less the IPv4 and \
                  UDP headers)"
            ]
        );
    }

    #[test]
    fn misspelt_stage_names_and_fields_get_a_suggestion() {
        let text = pipeline(1, "", |_| "          - { type: relaible }\n".to_owned());
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("15:21: unknown stage `relaible`; did you mean `reliable`? built-in stages are: "));
        let far = errors(&pipeline(1, "", |_| "          - { type: zzz }\n".to_owned()));
        assert!(far[0].starts_with("15:21: unknown stage `zzz`; built-in stages are: "), "{far:?}");
        let field = errors(&pipeline(1, "", |_| String::new()).replace("rx_queues", "rx_queus"));
        assert_eq!(field.len(), 1, "{field:?}");
        assert!(
            field[0].contains("unknown field `rx_queus`; did you mean `rx_queues`? expected one of device, rx_queues"),
            "{field:?}"
        );
    }

    #[test]
    fn lists_are_cut_after_four() {
        let items: Vec<String> = (1..=6).map(|i| i.to_string()).collect();
        assert_eq!(list_of(&items[..1]), "1");
        assert_eq!(list_of(&items[..2]), "1 and 2");
        assert_eq!(list_of(&items[..4]), "1, 2, 3 and 4");
        assert_eq!(list_of(&items), "1, 2, 3, 4 and 2 more");
    }
}
