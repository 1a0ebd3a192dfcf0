//! The YAML front end: serde-saphyr into raw, located structs, then lowering into the IR.
//!
//! The raw structs mirror the schema in `rosette-macros/SCHEMA.md` one to one and reject unknown fields; every value is
//! `Spanned` so lowering and validation can report `line:column`. serde stops at the first type error, so a
//! file with a wrong type reports that one error; everything after deserialization reports all its errors.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

use crate::diag::{Diagnostic, Diagnostics, Loc, Located};
use crate::ir;

/// Parses YAML text of one document and lowers it to the IR. Errors carry YAML locations
/// ([`Loc::Yaml`]). The macro uses [`parse_all`]; this is the one-pipeline form (unit tests use it).
pub fn parse(text: &str) -> Result<ir::Pipeline, Vec<Diagnostic>> {
    let raw: RawPipeline = serde_saphyr::from_str(text).map_err(|e| vec![convert_error(&e)])?;
    lower(raw)
}

/// Parses every document of a YAML file (documents are separated by `---`), one pipeline each, and
/// lowers them all; errors of every document are reported together. Two pipelines of one file must
/// have different names (each becomes a module).
pub fn parse_all(text: &str) -> Result<Vec<ir::Pipeline>, Vec<Diagnostic>> {
    let raws: Vec<RawPipeline> = serde_saphyr::from_multiple(text).map_err(|e| vec![convert_error(&e)])?;
    if raws.is_empty() {
        return Err(vec![Diagnostic::new(Loc::Unknown, "the file declares no pipeline".to_owned())]);
    }
    let mut pipelines: Vec<ir::Pipeline> = Vec::new();
    let mut errors = Vec::new();
    for raw in raws {
        match lower(raw) {
            Ok(p) => {
                if let Some(first) = pipelines.iter().find(|q| q.name.value == p.name.value) {
                    errors.push(Diagnostic::new(
                        p.name.loc,
                        format!(
                            "a pipeline named `{}` is already declared in this file (at {}); each document needs its own name",
                            p.name.value, first.name.loc
                        ),
                    ));
                }
                pipelines.push(p);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(errors)
    }
}

fn convert_error(error: &serde_saphyr::Error) -> Diagnostic {
    let error = error.without_snippet();
    let loc = error
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| Loc::Yaml { line: l.line() as u32, column: l.column() as u32 })
        .unwrap_or(Loc::Unknown);
    // The default formatter gives the bare message; we prefix the location ourselves.
    let message = serde_saphyr::DefaultMessageFormatter.format_message(error);
    // The parser's advice is addressed to the programmer embedding it, not to our user.
    let message = message.split(", set DuplicateKeyPolicy").next().unwrap_or_default();
    Diagnostic::new(loc, suggest_name(&explain_type_error(message)))
}

/// serde reports a misspelt key or word as ``unknown field `lcors`, expected one of name, eal, …`` (or
/// ``unknown variant``); when one of the expected names is close, say which: ``unknown field `lcors`;
/// did you mean `lcores`? expected one of …``.
fn suggest_name(message: &str) -> String {
    for what in ["unknown field `", "unknown variant `"] {
        let Some(rest) = message.strip_prefix(what) else { continue };
        let Some((word, expected)) = rest.split_once('`') else { continue };
        let expected = expected.strip_prefix(", ").unwrap_or(expected);
        let Some(list) = expected.strip_prefix("expected ") else { continue };
        let list = list.strip_prefix("one of ").unwrap_or(list).replace('`', "");
        let candidates: Vec<&str> = list.split(", ").flat_map(|c| c.split(" or ")).map(str::trim).collect();
        let hint = crate::diag::did_you_mean(word, &candidates);
        if hint.is_empty() {
            continue;
        }
        return format!("{what}{word}`{hint} {expected}");
    }
    message.to_owned()
}

/// serde-saphyr reports a scalar of the wrong type as `invalid u16` and the like; say what was expected.
fn explain_type_error(message: &str) -> String {
    let expected = match message {
        "invalid u16" => "an integer from 0 to 65535",
        "invalid u32" => "an integer from 0 to 4294967295",
        "invalid bool" => "`true` or `false`",
        _ => return message.to_owned(),
    };
    format!("{message}: expected {expected}")
}

fn loc_of<T>(spanned: &Spanned<T>) -> Loc {
    let l = spanned.referenced;
    if l.line() == 0 {
        Loc::Unknown
    } else {
        Loc::Yaml { line: l.line() as u32, column: l.column() as u32 }
    }
}

fn located<T>(spanned: Spanned<T>) -> Located<T> {
    let loc = loc_of(&spanned);
    Located::new(spanned.value, loc)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Spanned<String>,
    eal: Spanned<RawEal>,
    ports: OrderedMap<RawPort>,
    #[serde(default)]
    rings: Option<OrderedMap<RawRing>>,
    cores: Vec<Spanned<RawCore>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEal {
    #[serde(default)]
    memory: Option<Spanned<String>>,
    #[serde(default)]
    memory_mb: Option<Spanned<u32>>,
    lcores: Spanned<RawLcores>,
    #[serde(default)]
    main_lcore: Option<Spanned<u32>>,
    #[serde(default)]
    file_prefix: Option<Spanned<String>>,
    #[serde(default)]
    extra_args: Vec<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    device: Spanned<String>,
    #[serde(default)]
    rx_queues: Option<Spanned<u16>>,
    #[serde(default)]
    tx_queues: Option<Spanned<u16>>,
    #[serde(default)]
    rx_descriptors: Option<Spanned<u16>>,
    #[serde(default)]
    tx_descriptors: Option<Spanned<u16>>,
    #[serde(default)]
    mempool: Option<Spanned<RawMempool>>,
    #[serde(default)]
    shared_tx: Option<Spanned<bool>>,
    #[serde(default)]
    rss: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMempool {
    #[serde(default)]
    size: Option<Spanned<u32>>,
    #[serde(default)]
    cache: Option<Spanned<u32>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRing {
    size: Spanned<u32>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCore {
    lcore: Spanned<u32>,
    #[serde(default)]
    burst: Option<Spanned<u16>>,
    polls: Vec<Spanned<RawPoll>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    from: Spanned<String>,
    #[serde(default)]
    stages: Vec<Spanned<RawStage>>,
    #[serde(default)]
    to: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    #[serde(default)]
    params: Option<OrderedMap<Spanned<RawParam>>>,
}

/// A YAML mapping kept in declaration order, keys located. Duplicate keys are kept (if the parser lets
/// them through) so the validator reports them like the attribute front end's duplicates.
struct OrderedMap<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from names to declarations")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// `lcores`: a DPDK-style string (`"0-3,5"`), a single integer, or a list of integers.
enum RawLcores {
    Text(String),
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for RawLcores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LcoresVisitor;
        impl<'de> Visitor<'de> for LcoresVisitor {
            type Value = RawLcores;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an lcore list like \"0-3,5\" or a list of lcore ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawLcores::Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(|v| RawLcores::List(vec![v]))
                    .map_err(|_| E::custom(format!("lcore {v} out of range")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<u32>()? {
                    out.push(v);
                }
                Ok(RawLcores::List(out))
            }
        }
        deserializer.deserialize_any(LcoresVisitor)
    }
}

/// A stage parameter: any YAML scalar that maps to a Rust literal.
struct RawParam(ir::ParamValue);

impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;
        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = RawParam;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, float, boolean or string stage parameter")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawParam(ir::ParamValue::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawParam(ir::ParamValue::Int(v.into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawParam(ir::ParamValue::Int(v.into())))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
                Ok(RawParam(ir::ParamValue::Int(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawParam(ir::ParamValue::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawParam(ir::ParamValue::Str(v.to_owned())))
            }
        }
        deserializer.deserialize_any(ParamVisitor)
    }
}

fn lower(raw: RawPipeline) -> Result<ir::Pipeline, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new();

    let eal_loc = loc_of(&raw.eal);
    let eal = raw.eal.value;
    let memory = match eal.memory {
        None => Located::new(ir::MemoryMode::Auto, eal_loc),
        Some(m) => {
            let loc = loc_of(&m);
            let mode = ir::MemoryMode::parse(&m.value).unwrap_or_else(|| {
                diags.error(
                    loc,
                    format!("unknown memory mode `{}`, expected `auto`, `hugepages` or `no-huge`", m.value),
                );
                ir::MemoryMode::Auto
            });
            Located::new(mode, loc)
        }
    };
    let lcores_loc = loc_of(&eal.lcores);
    let lcores = match eal.lcores.value {
        RawLcores::List(list) => list,
        RawLcores::Text(text) => ir::parse_lcore_list(&text).unwrap_or_else(|e| {
            diags.error(lcores_loc, e);
            Vec::new()
        }),
    };
    let eal = ir::Eal {
        memory,
        memory_mb: eal.memory_mb.map(located),
        lcores: Located::new(lcores, lcores_loc),
        main_lcore: eal.main_lcore.map(located),
        file_prefix: eal.file_prefix.map(located),
        extra_args: eal.extra_args.into_iter().map(located).collect(),
    };

    let ports = raw
        .ports
        .0
        .into_iter()
        .map(|(name, port)| {
            let at = loc_of(&name);
            let or_default = |v: Option<Spanned<u16>>, d| v.map_or(Located::new(d, at), located);
            let (size, cache) = match port.mempool {
                None => (None, None),
                Some(m) => (m.value.size, m.value.cache),
            };
            ir::Port {
                name: located(name),
                device: located(port.device),
                rx_queues: or_default(port.rx_queues, ir::DEFAULT_QUEUES),
                tx_queues: or_default(port.tx_queues, ir::DEFAULT_QUEUES),
                rx_descriptors: or_default(port.rx_descriptors, ir::DEFAULT_DESCRIPTORS),
                tx_descriptors: or_default(port.tx_descriptors, ir::DEFAULT_DESCRIPTORS),
                mempool: ir::Mempool {
                    size: size.map_or(Located::new(ir::DEFAULT_MEMPOOL_SIZE, at), located),
                    cache: cache.map_or(Located::new(ir::DEFAULT_MEMPOOL_CACHE, at), located),
                },
                shared_tx: port.shared_tx.map_or(Located::new(false, at), located),
                rss: match port.rss {
                    None => Located::new(ir::RssMode::Udp, at),
                    Some(mode) => {
                        let loc = loc_of(&mode);
                        let parsed = ir::RssMode::parse(&mode.value).unwrap_or_else(|| {
                            diags.error(loc, ir::RssMode::unknown(&mode.value));
                            ir::RssMode::Udp
                        });
                        Located::new(parsed, loc)
                    }
                },
            }
        })
        .collect();

    let rings = raw
        .rings
        .map(|r| r.0)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ring)| ir::Ring { name: located(name), size: located(ring.size) })
        .collect();

    let cores = raw
        .cores
        .into_iter()
        .map(|core| {
            let core_loc = loc_of(&core);
            let core = core.value;
            let polls = core.polls.into_iter().map(|poll| lower_poll(poll, &mut diags)).collect();
            ir::Core {
                lcore: located(core.lcore),
                burst: core.burst.map_or(Located::new(ir::DEFAULT_BURST, core_loc), located),
                polls,
            }
        })
        .collect();

    let pipeline = ir::Pipeline { name: located(raw.name), eal, ports, rings, cores };
    diags.finish(pipeline)
}

fn lower_poll(poll: Spanned<RawPoll>, diags: &mut Diagnostics) -> ir::Poll {
    let poll_loc = loc_of(&poll);
    let poll = poll.value;
    let from_loc = loc_of(&poll.from);
    let from = ir::parse_source(&poll.from.value).unwrap_or_else(|e| {
        diags.error(from_loc, e);
        // Placeholder so lowering can go on and report later errors; never reaches validation.
        ir::Source::Ring(String::new())
    });
    let to = match poll.to {
        None => Located::new(ir::Sink::Drop, poll_loc),
        Some(to) => {
            let loc = loc_of(&to);
            let sink = ir::parse_sink(&to.value).unwrap_or_else(|e| {
                diags.error(loc, e);
                ir::Sink::Drop
            });
            Located::new(sink, loc)
        }
    };
    let stages = poll
        .stages
        .into_iter()
        .map(|stage| {
            let stage = stage.value;
            ir::Stage {
                ty: located(stage.ty),
                params: stage
                    .params
                    .map(|p| p.0)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| {
                        let loc = loc_of(&value);
                        ir::Param { name: located(name), value: Located::new(value.value.0, loc) }
                    })
                    .collect(),
            }
        })
        .collect();
    ir::Poll { from: Located::new(from, from_loc), stages, to }
}
