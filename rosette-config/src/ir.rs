//! The pipeline IR: what both front ends (YAML and attributes) lower to, and what codegen consumes.
//!
//! Plain data: no behaviour beyond small helpers, no dependence on which front end produced it. Defaults
//! are already applied, so codegen never has to know them. Every user-written value is [`Located`] so the
//! validator can point at it; [`Loc`](crate::diag::Loc) compares equal to every `Loc`, so a YAML and an attribute declaration
//! of the same pipeline produce equal IR values.

use std::fmt;

pub use crate::diag::Located;

/// Default rx and tx queue count of a port.
pub const DEFAULT_QUEUES: u16 = 1;
/// Default rx and tx descriptor count of a queue.
pub const DEFAULT_DESCRIPTORS: u16 = 1024;
/// Default number of mbufs in a port's mempool (2^n − 1 is DPDK's most memory-efficient size).
pub const DEFAULT_MEMPOOL_SIZE: u32 = 8191;
/// Default per-lcore cache size of a port's mempool.
pub const DEFAULT_MEMPOOL_CACHE: u32 = 256;
/// Default burst size of a worker lcore.
pub const DEFAULT_BURST: u16 = 32;
/// DPDK's `RTE_MEMPOOL_CACHE_MAX_SIZE`.
pub const MEMPOOL_CACHE_MAX: u32 = 512;

/// A whole pipeline declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// Name of the module to generate (a Rust identifier).
    pub name: Located<String>,
    /// EAL start-up parameters.
    pub eal: Eal,
    /// Ports in declaration order.
    pub ports: Vec<Port>,
    /// Rings in declaration order (empty when none are declared).
    pub rings: Vec<Ring>,
    /// Worker lcores in declaration order.
    pub cores: Vec<Core>,
}

/// How the EAL gets its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Hugepages when available, otherwise `--no-huge` (decided at run time).
    Auto,
    /// Hugepages are required.
    Hugepages,
    /// `--no-huge`: ordinary pages, ~3× slower forwarding.
    NoHuge,
}

impl MemoryMode {
    /// Parses the spelling used in declarations: `auto`, `hugepages` or `no-huge`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(MemoryMode::Auto),
            "hugepages" => Some(MemoryMode::Hugepages),
            "no-huge" => Some(MemoryMode::NoHuge),
            _ => None,
        }
    }
}

/// EAL start-up parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Eal {
    /// Memory mode (default [`MemoryMode::Auto`]).
    pub memory: Located<MemoryMode>,
    /// Memory size in MiB (`-m`), if given.
    pub memory_mb: Option<Located<u32>>,
    /// The EAL lcore set, in the order written, duplicates kept so the validator can report them.
    pub lcores: Located<Vec<u32>>,
    /// The main lcore as written; `None` means the first lcore of the set (see [`Eal::main_lcore`]).
    pub main_lcore: Option<Located<u32>>,
    /// `--file-prefix`, if given.
    pub file_prefix: Option<Located<String>>,
    /// Extra arguments passed to `rte_eal_init` verbatim, after the generated ones.
    pub extra_args: Vec<Located<String>>,
}

impl Eal {
    /// The effective main lcore: the declared one, else the first of the lcore set.
    pub fn main_lcore(&self) -> Option<u32> {
        self.main_lcore.as_ref().map(|l| l.value).or_else(|| self.lcores.value.first().copied())
    }
}

/// A DPDK port and its queues.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    /// Port name (a Rust identifier).
    pub name: Located<String>,
    /// Device: a vdev (`net_null0`, `net_ring0`, `net_memif0,role=server`) or a PCI address.
    pub device: Located<String>,
    /// Number of rx queues.
    pub rx_queues: Located<u16>,
    /// Number of tx queues.
    pub tx_queues: Located<u16>,
    /// Descriptors per rx queue.
    pub rx_descriptors: Located<u16>,
    /// Descriptors per tx queue.
    pub tx_descriptors: Located<u16>,
    /// The mempool the port's rx queues allocate from.
    pub mempool: Mempool,
    /// Whether several lcores may write the same tx queue of this port (the generated code must then
    /// serialise them); an explicit choice because it costs a lock per burst.
    pub shared_tx: Located<bool>,
    /// How the port spreads received flows over several rx queues (default [`RssMode::Udp`]; without
    /// effect on a port with one rx queue).
    pub rss: Located<RssMode>,
}

/// A port's `rss` key: how several rx queues share the received flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssMode {
    /// RSS over the IPv4/UDP 4-tuple with rosette's key and an `i % rx_queues` redirection table, where
    /// the device offers it (a device without RSS leaves the queue choice to the sender).
    Udp,
    /// No RSS.
    None,
}

impl RssMode {
    /// Parses the spelling used in declarations: `udp` or `none`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "udp" => Some(RssMode::Udp),
            "none" => Some(RssMode::None),
            _ => None,
        }
    }

    /// The message for a spelling [`RssMode::parse`] rejects.
    pub fn unknown(text: &str) -> String {
        format!("unknown RSS mode `{text}`, expected `udp` or `none`")
    }
}

impl Port {
    /// Classifies [`Port::device`].
    pub fn device_kind(&self) -> DeviceKind {
        DeviceKind::of(&self.device.value)
    }
}

/// What kind of device string a port names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A virtual device, passed as `--vdev`.
    Vdev,
    /// A PCI address, passed as `-a` (allow-list).
    Pci,
    /// Neither (rejected by the validator).
    Invalid,
}

impl DeviceKind {
    /// Classifies a device string: `net_<driver><n>[,args]` is a vdev, `[DDDD:]BB:DD.F` a PCI address.
    pub fn of(device: &str) -> Self {
        if is_vdev(device) {
            DeviceKind::Vdev
        } else if is_pci(device) {
            DeviceKind::Pci
        } else {
            DeviceKind::Invalid
        }
    }
}

fn is_vdev(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    let Some(rest) = name.strip_prefix("net_") else {
        return false;
    };
    let driver = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    // DPDK tells vdev instances apart by their name, so a trailing instance number is required.
    !driver.is_empty()
        && driver.len() < rest.len()
        && driver.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_pci(device: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let parts: Vec<&str> = device.split(':').collect();
    let (bus, rest) = match parts.as_slice() {
        [domain, bus, rest] if hex(domain, 4) => (*bus, *rest),
        [bus, rest] => (*bus, *rest),
        _ => return false,
    };
    let Some((dev, func)) = rest.split_once('.') else {
        return false;
    };
    hex(bus, 2) && hex(dev, 2) && func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7')
}

/// A port's mempool.
#[derive(Clone, Debug, PartialEq)]
pub struct Mempool {
    /// Number of mbufs.
    pub size: Located<u32>,
    /// Per-lcore cache size.
    pub cache: Located<u32>,
}

/// An `rte_ring` for hand-off between lcores.
#[derive(Clone, Debug, PartialEq)]
pub struct Ring {
    /// Ring name (a Rust identifier).
    pub name: Located<String>,
    /// Number of slots (a power of two).
    pub size: Located<u32>,
}

/// A worker lcore and what it polls.
#[derive(Clone, Debug, PartialEq)]
pub struct Core {
    /// The lcore id.
    pub lcore: Located<u32>,
    /// Burst size of every poll of this lcore.
    pub burst: Located<u16>,
    /// The polls, run round-robin in declaration order.
    pub polls: Vec<Poll>,
}

/// One rx-to-tx path run by a worker lcore.
#[derive(Clone, Debug, PartialEq)]
pub struct Poll {
    /// Where bursts come from.
    pub from: Located<Source>,
    /// The stages each burst goes through, in order.
    pub stages: Vec<Stage>,
    /// Where what is left of the burst goes.
    pub to: Located<Sink>,
}

/// The source of a poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `port.rx[queue]`.
    PortRx {
        /// Port name.
        port: String,
        /// Rx queue index.
        queue: u16,
    },
    /// `ring:name`.
    Ring(String),
}

/// The destination of a poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// `port.tx[queue]`.
    PortTx {
        /// Port name.
        port: String,
        /// Tx queue index.
        queue: u16,
    },
    /// `ring:name`.
    Ring(String),
    /// `drop`, or no destination: whatever the stages leave in the burst is freed.
    Drop,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::PortRx { port, queue } => write!(f, "{port}.rx[{queue}]"),
            Source::Ring(name) => write!(f, "ring:{name}"),
        }
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::PortTx { port, queue } => write!(f, "{port}.tx[{queue}]"),
            Sink::Ring(name) => write!(f, "ring:{name}"),
            Sink::Drop => f.write_str("drop"),
        }
    }
}

/// One stage of a poll: a built-in short name or a Rust type path, and its declared params.
///
/// Codegen contract: the stage type implements `rosette::pipeline::DeclaredStage`; every param is
/// checked at compile time against `<Params as StageParams>::FIELDS` by a `const fn` (unknown name,
/// wrong kind, malformed value, missing required param), and the stage is built on its lcore with
/// `rosette::pipeline::params::build::<Type>(name, &[(param, value), ..], &env)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// The stage type as written: a short name of a built-in stage (`reliable`, see [`BUILTIN_STAGES`])
    /// or a Rust type path such as `crate::Filter` or `crate::Chan<X>` (use [`Stage::type_path`] to get
    /// the resolved path as tokens).
    pub ty: Located<String>,
    /// Field values in declaration order.
    pub params: Vec<Param>,
}

impl Stage {
    /// The built-in stage [`Stage::ty`] names, when it is a short name (a single lower-case word).
    pub fn short_name(&self) -> Option<&str> {
        is_short_name(&self.ty.value).then_some(self.ty.value.as_str())
    }

    /// [`Stage::ty`] as a Rust type: a short name resolved to its built-in stage, anything else parsed
    /// with [`parse_stage_type`] (the validator guarantees this succeeds on a valid pipeline).
    pub fn type_path(&self) -> syn::Result<syn::TypePath> {
        let unknown = |message: String| syn::Error::new(proc_macro2::Span::call_site(), message);
        match self.short_name() {
            Some(name) => match builtin_stage(name) {
                Some(path) => syn::parse_str(path),
                None => Err(unknown(format!("unknown stage `{name}`"))),
            },
            None => parse_stage_type(&self.ty.value).map_err(unknown),
        }
    }

    /// The string value of the declared `endpoint` param.
    pub fn endpoint_name(&self) -> Option<&str> {
        self.params.iter().find(|p| p.name.value == "endpoint").and_then(|p| match &p.value.value {
            ParamValue::Str(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

/// The built-in stages by short name, and the type each names.
pub const BUILTIN_STAGES: &[(&str, &str)] = &[
    ("count", "::rosette::pipeline::stages::Count"),
    ("drop_all", "::rosette::pipeline::stages::DropAll"),
    ("drop_udp_port", "::rosette::pipeline::stages::DropUdpPort"),
    ("fault", "::rosette::pipeline::fault_stage::FaultStage"),
    ("inject_udp", "::rosette::pipeline::stages::InjectUdp"),
    ("mac_swap", "::rosette::pipeline::stages::MacSwap"),
    ("parse_udp", "::rosette::pipeline::stages::ParseUdp"),
    ("reliable", "::rosette::pipeline::channels::ReliableStage"),
    ("reliable_mux", "::rosette::pipeline::mux::ReliableMuxStage"),
    ("set_macs", "::rosette::pipeline::stages::SetMacs"),
    ("streaming", "::rosette::pipeline::channels::StreamingStage"),
    ("streaming_mux", "::rosette::pipeline::mux::StreamingMuxStage"),
    ("unordered", "::rosette::pipeline::channels::UnorderedStage"),
];

/// The type path of the built-in stage called `name`.
pub fn builtin_stage(name: &str) -> Option<&'static str> {
    BUILTIN_STAGES.iter().find(|(n, _)| *n == name).map(|(_, path)| *path)
}

/// Parses the stage type of a declaration as a Rust type, which must be a path: `crate::Filter`,
/// `crate::Chan<u8>` (generic arguments as in type position; the expression form `crate::Chan::<u8>` is
/// accepted too), `<X as Trait>::Stage`. The error says what is wrong, without a location.
pub fn parse_stage_type(text: &str) -> Result<syn::TypePath, String> {
    match syn::parse_str::<syn::Type>(text) {
        Ok(syn::Type::Path(path)) => Ok(path),
        Ok(_) => Err(format!("stage type `{text}` is not a type path")),
        Err(e) => Err(format!("stage type `{text}` is not a Rust type path ({e})")),
    }
}

/// Whether a stage type is written as a short name: one word of lower-case letters, digits and `_`
/// (Rust types are paths or CamelCase, so there is no ambiguity with a user type in scope).
pub fn is_short_name(ty: &str) -> bool {
    ty.starts_with(|c: char| c.is_ascii_lowercase())
        && ty.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One stage parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Field name (a Rust identifier).
    pub name: Located<String>,
    /// Field value.
    pub value: Located<ParamValue>,
}

/// A stage parameter value: a literal that becomes a Rust literal of the same kind.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// An integer literal (unsuffixed; rustc infers the field's type).
    Int(i128),
    /// A float literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string literal (`&'static str`).
    Str(String),
}

/// The largest lcore id a declaration's lcore list may name. DPDK's `RTE_MAX_LCORE` is a build option
/// (128 in Debian's 22.11 packages); this bound only keeps a range such as `0-4000000000` from expanding
/// into billions of ids.
pub const MAX_LCORE_ID: u32 = 1023;

/// Parses a DPDK-style lcore list such as `0-3,5` into ids in the order written.
///
/// Errors name the offending piece.
pub fn parse_lcore_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for piece in text.split(',') {
        let piece = piece.trim();
        let num = |s: &str| {
            let n =
                s.trim().parse::<u32>().map_err(|_| format!("invalid lcore `{}` in lcore list `{text}`", s.trim()))?;
            if n > MAX_LCORE_ID {
                return Err(format!("lcore {n} in lcore list `{text}` is above the largest lcore id, {MAX_LCORE_ID}"));
            }
            Ok(n)
        };
        match piece.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return Err(format!("empty lcore range `{piece}` in lcore list `{text}`"));
                }
                out.extend(lo..=hi);
            }
            None => out.push(num(piece)?),
        }
        // Ids repeat only by mistake (the validator reports each repeat); past this many, stop expanding.
        if out.len() > (MAX_LCORE_ID + 1) as usize {
            return Err(format!("lcore list `{text}` names more than {} lcores", MAX_LCORE_ID + 1));
        }
    }
    Ok(out)
}

/// Parses a poll source: `port.rx[q]` or `ring:name`.
pub fn parse_source(text: &str) -> Result<Source, String> {
    if let Some(name) = text.strip_prefix("ring:") {
        return Ok(Source::Ring(name.trim().to_owned()));
    }
    match parse_queue_ref(text, "rx") {
        Some((port, queue)) => Ok(Source::PortRx { port, queue }),
        None => Err(format!("invalid poll source `{text}`, expected `port.rx[queue]` or `ring:name`")),
    }
}

/// Parses a poll destination: `port.tx[q]`, `ring:name` or `drop`.
pub fn parse_sink(text: &str) -> Result<Sink, String> {
    if text == "drop" {
        return Ok(Sink::Drop);
    }
    if let Some(name) = text.strip_prefix("ring:") {
        return Ok(Sink::Ring(name.trim().to_owned()));
    }
    match parse_queue_ref(text, "tx") {
        Some((port, queue)) => Ok(Sink::PortTx { port, queue }),
        None => Err(format!("invalid poll destination `{text}`, expected `port.tx[queue]`, `ring:name` or `drop`")),
    }
}

fn parse_queue_ref(text: &str, dir: &str) -> Option<(String, u16)> {
    let (port, rest) = text.split_once('.')?;
    let rest = rest.strip_prefix(dir)?.strip_prefix('[')?.strip_suffix(']')?;
    let queue = rest.trim().parse().ok()?;
    let port = port.trim();
    (!port.is_empty()).then(|| (port.to_owned(), queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Loc;

    #[test]
    fn lcore_lists() {
        assert_eq!(parse_lcore_list("0-3,5").unwrap(), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_lcore_list("2").unwrap(), vec![2]);
        assert!(parse_lcore_list("3-1").is_err());
        assert!(parse_lcore_list("a").is_err());
        assert!(parse_lcore_list("").is_err());
    }

    /// Seen while writing the `config_yaml` fuzz target: `lcores: "0-4000000000"` must be an error, not an
    /// allocation of 4·10⁹ ids (16 GB of `u32`).
    #[test]
    fn lcore_ranges_are_bounded() {
        assert_eq!(parse_lcore_list("1020-1023").unwrap(), vec![1020, 1021, 1022, 1023]);
        assert_eq!(
            parse_lcore_list("0-4000000000").unwrap_err(),
            "lcore 4000000000 in lcore list `0-4000000000` is above the largest lcore id, 1023"
        );
        assert!(parse_lcore_list("1024").is_err());
        // Repeated ranges are bounded too (the validator's duplicate check is quadratic in the list).
        let repeated = vec!["0-1023"; 400].join(",");
        assert_eq!(
            parse_lcore_list(&repeated).unwrap_err(),
            format!("lcore list `{repeated}` names more than 1024 lcores")
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(parse_source("p0.rx[1]").unwrap(), Source::PortRx { port: "p0".into(), queue: 1 });
        assert_eq!(parse_source("ring:r").unwrap(), Source::Ring("r".into()));
        assert!(parse_source("p0.tx[1]").is_err());
        assert!(parse_source("p0.rx[x]").is_err());
        assert_eq!(parse_sink("drop").unwrap(), Sink::Drop);
        assert_eq!(parse_sink("p0.tx[0]").unwrap(), Sink::PortTx { port: "p0".into(), queue: 0 });
        assert!(parse_sink("p0.rx[0]").is_err());
    }

    #[test]
    fn stage_types_are_rust_type_paths() {
        let same = |written: &str, as_type: &str| {
            assert_eq!(parse_stage_type(written).unwrap(), syn::parse_str::<syn::TypePath>(as_type).unwrap())
        };
        same("crate::Filter", "crate::Filter");
        same("crate::Chan<u8>", "crate::Chan<u8>");
        same("crate::Chan::<u8>", "crate::Chan::<u8>");
        same("a::Pair<(u8, u32), b::C<D>>", "a::Pair<(u8, u32), b::C<D>>");
        assert!(parse_stage_type("<X as Tr>::Stage").unwrap().qself.is_some());
        let unclosed = parse_stage_type("crate::Chan<u8").unwrap_err();
        assert!(unclosed.starts_with("stage type `crate::Chan<u8` is not a Rust type path ("), "{unclosed}");
        assert_eq!(parse_stage_type("&crate::Chan").unwrap_err(), "stage type `&crate::Chan` is not a type path");
    }

    #[test]
    fn device_kinds() {
        assert_eq!(DeviceKind::of("net_null0"), DeviceKind::Vdev);
        assert_eq!(DeviceKind::of("net_memif0,role=server"), DeviceKind::Vdev);
        assert_eq!(DeviceKind::of("0000:03:00.0"), DeviceKind::Pci);
        assert_eq!(DeviceKind::of("03:00.1"), DeviceKind::Pci);
        assert_eq!(DeviceKind::of("net_null"), DeviceKind::Invalid);
        assert_eq!(DeviceKind::of("eth0"), DeviceKind::Invalid);
    }

    #[test]
    fn loc_is_ignored_by_equality() {
        let a = Located::new(1u32, Loc::Yaml { line: 1, column: 2 });
        let b = Located::new(1u32, Loc::Unknown);
        assert_eq!(a, b);
        assert_ne!(a, Located::new(2u32, Loc::Unknown));
    }
}
