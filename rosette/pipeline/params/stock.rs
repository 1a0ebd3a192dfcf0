//! The params types of the built-in stages and their [`DeclaredStage`] implementations: the stock
//! stages of [`crate::pipeline::stages`], the fault stage, and the three channel stages.
//!
//! Short names (what declarations may write instead of a path) are listed in the pipeline macro's
//! schema: `mac_swap`, `count`, `drop_all`, `parse_udp`, `drop_udp_port`, `set_macs`, `inject_udp`,
//! `fault`, `reliable`, `streaming`, `unordered`, `reliable_mux`, `streaming_mux`.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use super::{
    BuildError, DeclaredStage, EndpointStage, MacAddr, NoParams, ParamError, ParamField, ParamKind, ParamType,
    ParamValue, StageEnv, StageParams,
};
use crate::channel::conn::CongestionKind;
use crate::channel::fault::FaultConfig;
use crate::channel::mux::MAX_CONNECTIONS;
use crate::channel::time::Instant;
use crate::pipeline::channels::{ChannelParams, ReliableStage, Role, StreamingStage, UnorderedStage};
use crate::pipeline::endpoint::{
    ReliableEndpoint, ReliableMuxEndpoint, StreamEndpoint, StreamMuxEndpoint, UnorderedEndpoint,
};
use crate::pipeline::fault_stage::{FaultStage, DEFAULT_HOLD_CAPACITY};
use crate::pipeline::mux::{ReliableMuxStage, StreamingMuxStage, TableParams};
use crate::pipeline::stages::{Count, DropAll, DropUdpPort, InjectUdp, MacSwap, ParseUdp, SetMacs};
pub use rosette_checks::stock::ChannelKind;
use rosette_checks::stock::{ChannelDecl, FaultDecl, Problem};

macro_rules! no_params {
    ($($stage:ident),*) => {$(
        impl DeclaredStage for $stage {
            type Params = NoParams;
            fn build(_: NoParams, _: &StageEnv) -> Result<Self, BuildError> {
                Ok($stage::new())
            }
        }
    )*};
}

no_params!(MacSwap, Count, DropAll);

/// Params of [`ParseUdp`] (`parse_udp`).
#[derive(Debug, Clone, Copy, Default, StageParams)]
pub struct ParseUdpParams {
    /// Also verify the UDP checksum (reads the whole payload). Default: false.
    #[param(default)]
    pub verify_udp_checksum: bool,
}

impl DeclaredStage for ParseUdp {
    type Params = ParseUdpParams;
    fn build(p: ParseUdpParams, _: &StageEnv) -> Result<Self, BuildError> {
        Ok(ParseUdp::new(p.verify_udp_checksum))
    }
}

/// Params of [`DropUdpPort`] (`drop_udp_port`).
#[derive(Debug, Clone, Copy, StageParams)]
pub struct DropUdpPortParams {
    /// The UDP destination port whose datagrams are dropped.
    pub port: u16,
}

impl DeclaredStage for DropUdpPort {
    type Params = DropUdpPortParams;
    fn build(p: DropUdpPortParams, _: &StageEnv) -> Result<Self, BuildError> {
        Ok(DropUdpPort::new(p.port))
    }
}

/// Params of [`SetMacs`] (`set_macs`).
#[derive(Debug, Clone, Copy, StageParams)]
pub struct SetMacsParams {
    /// The source MAC address written into every frame.
    pub src: MacAddr,
    /// The destination MAC address written into every frame.
    pub dst: MacAddr,
}

impl DeclaredStage for SetMacs {
    type Params = SetMacsParams;
    fn build(p: SetMacsParams, _: &StageEnv) -> Result<Self, BuildError> {
        Ok(SetMacs::new(p.src.0, p.dst.0))
    }
}

/// Params of [`InjectUdp`] (`inject_udp`).
#[derive(Debug, Clone, Copy, StageParams)]
pub struct InjectUdpParams {
    /// Datagrams to inject in all.
    pub count: u32,
    /// Payload bytes per datagram (at most 1472). Default: 18.
    #[param(default = 18)]
    pub payload_len: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

impl DeclaredStage for InjectUdp {
    type Params = InjectUdpParams;
    fn build(p: InjectUdpParams, env: &StageEnv) -> Result<Self, BuildError> {
        first_problem(rosette_checks::stock::inject_problems(Some(p.payload_len.into())))?;
        require_pool(env)?;
        Ok(InjectUdp::new(p.count, p.payload_len, p.dst_port))
    }
}

/// The first of the problems the shared checks found (the validator reports them all at compile time;
/// here they can only come from a pipeline assembled in Rust, or from a run-time override).
fn first_problem(problems: Vec<Problem>) -> Result<(), BuildError> {
    match problems.into_iter().next() {
        Some(p) => Err(p.into()),
        None => Ok(()),
    }
}

fn require_pool(env: &StageEnv) -> Result<(), BuildError> {
    match env.pool {
        Some(_) => Ok(()),
        None => Err(BuildError::new("the stage allocates packets, but its lcore has no mempool")),
    }
}

/// A probability in parts per million: an integer from 0 to 1 000 000.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ppm(pub u32);

impl ParamType for Ppm {
    const KIND: ParamKind = ParamKind::Int { min: 0, max: 1_000_000 };
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        super::check_value(&Self::KIND, value)?;
        u32::from_value(value).map(Ppm)
    }
}

/// Params of [`FaultStage`] (`fault`): every probability defaults to 0 (no fault).
///
/// **Run-time override.** `env: NAME` names an environment variable; when it is set (read once, when
/// the stage is built on its lcore), its value overrides declared params: comma-separated
/// `param=value` pairs in the YAML value syntax, e.g. `NAME="loss_ppm=10000,reorder_delay=200us,seed=3"`.
/// An unknown param or a bad value is a launch error; an unset or empty variable leaves the declaration
/// as it is. This keeps the declaration the one source of the stage while letting a tool (rosette-perf's
/// `--loss`…) or an operator choose the rates when the process starts.
#[derive(Debug, Clone, StageParams)]
pub struct FaultParams {
    /// Seed of the injector: same seed and traffic, same fates. Default: 1.
    #[param(default = 1)]
    pub seed: u64,
    /// Probability of dropping a packet, ppm.
    #[param(default)]
    pub loss_ppm: Ppm,
    /// Probability of delivering a second copy, ppm.
    #[param(default)]
    pub duplicate_ppm: Ppm,
    /// Probability of holding a packet back so later ones overtake it, ppm.
    #[param(default)]
    pub reorder_ppm: Ppm,
    /// Largest extra delay of a reordered packet. Default: 100us.
    #[param(default = Duration::from_micros(100))]
    pub reorder_delay: Duration,
    /// Probability of flipping one random bit, ppm.
    #[param(default)]
    pub corrupt_ppm: Ppm,
    /// Probability of cutting a packet short, ppm.
    #[param(default)]
    pub truncate_ppm: Ppm,
    /// Packets that can be held back at once. Default: 1024.
    #[param(default = DEFAULT_HOLD_CAPACITY)]
    pub hold_capacity: usize,
    /// Start of a blackhole window (every packet dropped), from the stage's first iteration. Default: 0.
    #[param(default = Duration::ZERO)]
    pub blackhole_start: Duration,
    /// End of the blackhole window; no window without it.
    pub blackhole_end: Option<Duration>,
    /// An environment variable whose `param=value,..` list overrides these params at build time.
    #[param(default)]
    pub env: Option<String>,
}

impl FaultParams {
    /// Applies an override list `param=value,param=value` (the syntax of `env`'s variable). Values are
    /// written as in YAML: integers, durations such as `200us`.
    pub fn apply_overrides(&mut self, list: &str) -> Result<(), ParamError> {
        let mut values: Vec<(&str, ParamValue<'_>)> = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) =
                item.split_once('=').ok_or_else(|| ParamError::new(format!("`{item}`: expected param=value")))?;
            let value = value.trim();
            let value = match value.parse::<i128>() {
                Ok(i) => ParamValue::Int(i),
                Err(_) => ParamValue::Str(value),
            };
            values.push((name.trim(), value));
        }
        super::check_names(Self::FIELDS, &values)?;
        for (name, v) in &values {
            let e = |e: ParamError| e.in_param(name);
            match *name {
                "seed" => self.seed = u64::from_value(v).map_err(e)?,
                "loss_ppm" => self.loss_ppm = Ppm::from_value(v).map_err(e)?,
                "duplicate_ppm" => self.duplicate_ppm = Ppm::from_value(v).map_err(e)?,
                "reorder_ppm" => self.reorder_ppm = Ppm::from_value(v).map_err(e)?,
                "reorder_delay" => self.reorder_delay = Duration::from_value(v).map_err(e)?,
                "corrupt_ppm" => self.corrupt_ppm = Ppm::from_value(v).map_err(e)?,
                "truncate_ppm" => self.truncate_ppm = Ppm::from_value(v).map_err(e)?,
                "hold_capacity" => self.hold_capacity = usize::from_value(v).map_err(e)?,
                _ => return Err(ParamError::new(format!("param `{name}` cannot be overridden at run time"))),
            }
        }
        Ok(())
    }

    /// The injector configuration these params describe (at most one blackhole window).
    pub fn config(&self) -> FaultConfig {
        FaultConfig {
            loss_ppm: self.loss_ppm.0,
            duplicate_ppm: self.duplicate_ppm.0,
            reorder_ppm: self.reorder_ppm.0,
            reorder_delay: self.reorder_delay,
            corrupt_ppm: self.corrupt_ppm.0,
            truncate_ppm: self.truncate_ppm.0,
            blackholes: self
                .blackhole_end
                .map(|end| (Instant::from_nanos(nanos(self.blackhole_start)), Instant::from_nanos(nanos(end))))
                .into_iter()
                .collect(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl DeclaredStage for FaultStage {
    type Params = FaultParams;
    fn build(mut p: FaultParams, _: &StageEnv) -> Result<Self, BuildError> {
        if let Some(var) = &p.env {
            if let Ok(list) = std::env::var(var) {
                let var = var.clone();
                // Blamed on the `env` param: that is the declaration the override comes through.
                p.apply_overrides(&list).map_err(|e| BuildError::in_param("env", format!("${var}: {e}")))?;
            }
        }
        first_problem(rosette_checks::stock::fault_problems(&FaultDecl {
            blackhole_start: Some(p.blackhole_start),
            blackhole_end: p.blackhole_end,
            hold_capacity: Some(p.hold_capacity as u64),
            reorder_ppm: Some(p.reorder_ppm.0.into()),
        }))?;
        Ok(FaultStage::with_hold_capacity(p.seed, p.config(), p.hold_capacity))
    }
}

/// A channel endpoint's epoch: must grow each time the process restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epoch {
    /// `time`: derived from the wall clock (tenths of a second), the default.
    Time,
    /// A fixed epoch.
    Fixed(u32),
}

impl ParamType for Epoch {
    const KIND: ParamKind = ParamKind::IntOrWord { min: 0, max: u32::MAX as i128, words: &["time"] };
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        super::check_value(&Self::KIND, value)?;
        match value {
            ParamValue::Int(_) => u32::from_value(value).map(Epoch::Fixed),
            _ => Ok(Epoch::Time),
        }
    }
}

/// A channel endpoint's connection id (non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnId {
    /// `pid`: the process id, the default.
    Pid,
    /// A fixed id.
    Fixed(u32),
}

impl ParamType for ConnId {
    const KIND: ParamKind = ParamKind::IntOrWord { min: 1, max: u32::MAX as i128, words: &["pid"] };
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        super::check_value(&Self::KIND, value)?;
        match value {
            ParamValue::Int(_) => u32::from_value(value).map(ConnId::Fixed),
            _ => Ok(ConnId::Pid),
        }
    }
}

/// Params of the channel stages (`reliable`, `streaming`, `unordered`): one type for all three, so
/// swapping one for another is one word of a declaration. The connection params are ignored by
/// `unordered`.
#[derive(Debug, Clone, StageParams)]
pub struct ChannelStageParams {
    /// Endpoint name: the application connects with the generated `endpoints::<name>(timeout)`.
    pub endpoint: String,
    /// Our IPv4 address.
    pub ip: Ipv4Addr,
    /// Our UDP port.
    pub port: u16,
    /// Our MAC address.
    pub mac: MacAddr,
    /// The peer, `ip:port`: the only address accepted and sent to (required by reliable and streaming).
    pub peer: Option<SocketAddrV4>,
    /// `listen` (wait for the peer's handshake, the default) or `connect` (send it).
    #[param(default = Role::Listen)]
    pub role: Role,
    /// The peer's MAC as a static ARP entry; without it the peer is resolved with ARP.
    pub peer_mac: Option<MacAddr>,
    /// Depth of each application queue. Default: 1024.
    #[param(default = 1024)]
    pub queue_depth: usize,
    /// Packets held by the sender and by the receiver (the largest window). Default: 256.
    pub window: Option<u32>,
    /// Lower bound on the retransmission timeout. Default: 200us.
    pub rto_min: Option<Duration>,
    /// Retransmission timeout before the first RTT sample. Default: 1ms.
    pub rto_initial: Option<Duration>,
    /// Upper bound on the backed-off retransmission timeout. Default: 200ms.
    pub rto_max: Option<Duration>,
    /// Congestion controller: `swift` (delay-based, the default) or `newreno` (loss-based).
    pub congestion: Option<CongestionKind>,
    /// Swift's queueing delay allowed above the smallest RTT seen. Default: 400us (less than the path's buffers hold).
    pub target_delay: Option<Duration>,
    /// Pace a window larger than one burst over the RTT. Default: true.
    pub pacing: Option<bool>,
    /// Payload bytes per packet. Default: 1400.
    pub mss: Option<u16>,
    /// Largest message of the reliable channel, bytes. Default: 65536.
    pub max_message: Option<u32>,
    /// `time` (from the wall clock, the default) or a fixed epoch; must grow on every restart.
    #[param(default = Epoch::Time)]
    pub epoch: Epoch,
    /// `pid` (the process id, the default) or a fixed non-zero connection id.
    #[param(default = ConnId::Pid)]
    pub conn_id: ConnId,
    /// Compute the UDP checksum of sent datagrams (received non-zero ones are always verified).
    /// Default: false for reliable and streaming (each packet's CRC-32C covers all of it), true for
    /// unordered.
    pub udp_checksum: Option<bool>,
    /// `reliable_mux` / `streaming_mux`: the most connections the table holds. Default: 1024.
    pub max_connections: Option<u32>,
    /// `reliable_mux` / `streaming_mux`: reset a connection that was silent this long (0: never).
    /// Default: 60s.
    pub idle_timeout: Option<Duration>,
    /// `reliable_mux` / `streaming_mux` with `role: connect`: connections opened at start. Default: 1.
    pub connections: Option<u32>,
}

impl ChannelStageParams {
    /// The table settings of a `reliable_mux` / `streaming_mux` stage.
    pub fn table_params(&self) -> Result<TableParams, BuildError> {
        let mut t = TableParams::default();
        if let Some(n) = self.max_connections {
            if n == 0 || n as usize > MAX_CONNECTIONS {
                return Err(BuildError::in_param(
                    "max_connections",
                    format!("param `max_connections` must be between 1 and {MAX_CONNECTIONS}"),
                ));
            }
            t.max_connections = n as usize;
        }
        if let Some(d) = self.idle_timeout {
            t.idle_timeout = (!d.is_zero()).then_some(d);
        }
        if let Some(n) = self.connections {
            if self.role != Role::Connect {
                return Err(BuildError::in_param(
                    "connections",
                    "param `connections` is for `role: connect` (a listener accepts)",
                ));
            }
            if n as usize > t.max_connections {
                return Err(BuildError::in_param(
                    "connections",
                    format!("param `connections` ({n}) exceeds `max_connections` ({})", t.max_connections),
                ));
            }
            t.connections = n as usize;
        }
        Ok(t)
    }

    /// Refuses the table params on a stage that has no table; `table` is the stage to declare
    /// instead, when there is one (the validator words its compile-time error the same way).
    fn no_table_params(&self, stage: &str, table: Option<&str>) -> Result<(), BuildError> {
        for (set, name) in [
            (self.max_connections.is_some(), "max_connections"),
            (self.idle_timeout.is_some(), "idle_timeout"),
            (self.connections.is_some(), "connections"),
        ] {
            if set {
                return Err(BuildError::in_param(
                    name,
                    match table {
                        Some(table) => {
                            format!("param `{name}` needs a connection table: declare `{table}` instead of `{stage}`")
                        }
                        None => format!(
                            "param `{name}` needs a connection table: `{stage}` has no connections (the table \
                         stages are `reliable_mux` and `streaming_mux`)"
                        ),
                    },
                ));
            }
        }
        Ok(())
    }

    /// The [`ChannelParams`] these params describe for a stage of `kind`, checked by the shared checks
    /// (the validator makes the same ones at compile time) and by the connection engine's own
    /// [`Config::validate`](crate::channel::conn::Config::validate), so a bad combination is an error here rather than a panic in the
    /// channel's constructor.
    pub fn channel_params(&self, kind: ChannelKind) -> Result<ChannelParams, BuildError> {
        first_problem(rosette_checks::stock::channel_problems(
            kind,
            &ChannelDecl {
                role_connect: self.role == Role::Connect,
                peer: self.peer.is_some(),
                queue_depth: Some(self.queue_depth as u64),
                window: self.window.map(u64::from),
                mss: self.mss.map(u64::from),
                max_message: self.max_message.map(u64::from),
                rto_min: self.rto_min,
                rto_max: self.rto_max,
            },
        ))?;
        let peer = self.peer.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let mut params = ChannelParams::new(&self.endpoint, self.mac.0, self.ip, self.port, peer).role(self.role);
        params.peer_mac = self.peer_mac.map(|m| m.0);
        params.queue_depth = self.queue_depth;
        let conn = &mut params.conn;
        if let Some(w) = self.window {
            conn.send_capacity = w as usize;
            conn.recv_capacity = w as usize;
        }
        if let Some(rto) = self.rto_min {
            conn.min_rto = rto;
        }
        if let Some(rto) = self.rto_initial {
            conn.initial_rto = rto;
        }
        if let Some(rto) = self.rto_max {
            conn.max_rto = rto;
        }
        if let Some(cc) = self.congestion {
            conn.congestion = cc;
        }
        if let Some(d) = self.target_delay {
            conn.target_delay = d;
        }
        if let Some(p) = self.pacing {
            conn.pacing = p;
        }
        if let Some(mss) = self.mss {
            conn.mss = usize::from(mss);
        }
        if let Some(m) = self.max_message {
            conn.max_message_size = m as usize;
        }
        // The shared checks cover what `validate` refuses; this keeps a disagreement (a new rule in the
        // connection engine) an error instead of the constructor's panic. Validated as the channel will
        // (a stream's engine is configured `for_stream`).
        let engine = match kind {
            ChannelKind::Unordered => None,
            ChannelKind::Streaming | ChannelKind::StreamingMux => Some(conn.clone().for_stream()),
            ChannelKind::Reliable | ChannelKind::ReliableMux => Some(conn.clone()),
        };
        if let Some(engine) = engine {
            engine.validate().map_err(|e| BuildError::new(format!("invalid connection settings: {e}")))?;
        }
        if let Epoch::Fixed(e) = self.epoch {
            params.epoch = e;
        }
        if let ConnId::Fixed(id) = self.conn_id {
            params.local_id = id;
        }
        params.udp_checksum = self.udp_checksum;
        Ok(params)
    }
}

impl DeclaredStage for ReliableStage {
    type Params = ChannelStageParams;
    fn build(p: ChannelStageParams, env: &StageEnv) -> Result<Self, BuildError> {
        require_pool(env)?;
        p.no_table_params("reliable", Some("reliable_mux"))?;
        Ok(ReliableStage::new(p.channel_params(ChannelKind::Reliable)?))
    }
}

impl EndpointStage for ReliableStage {
    type Endpoint = ReliableEndpoint;
}

impl DeclaredStage for StreamingStage {
    type Params = ChannelStageParams;
    fn build(p: ChannelStageParams, env: &StageEnv) -> Result<Self, BuildError> {
        require_pool(env)?;
        p.no_table_params("streaming", Some("streaming_mux"))?;
        Ok(StreamingStage::new(p.channel_params(ChannelKind::Streaming)?))
    }
}

impl EndpointStage for StreamingStage {
    type Endpoint = StreamEndpoint;
}

impl DeclaredStage for UnorderedStage {
    type Params = ChannelStageParams;
    fn build(p: ChannelStageParams, env: &StageEnv) -> Result<Self, BuildError> {
        require_pool(env)?;
        p.no_table_params("unordered", None)?;
        Ok(UnorderedStage::new(p.channel_params(ChannelKind::Unordered)?))
    }
}

impl EndpointStage for UnorderedStage {
    type Endpoint = UnorderedEndpoint;
}

impl DeclaredStage for ReliableMuxStage {
    type Params = ChannelStageParams;
    fn build(p: ChannelStageParams, env: &StageEnv) -> Result<Self, BuildError> {
        require_pool(env)?;
        Ok(ReliableMuxStage::new(p.channel_params(ChannelKind::ReliableMux)?, p.table_params()?))
    }
}

impl EndpointStage for ReliableMuxStage {
    type Endpoint = ReliableMuxEndpoint;
}

impl DeclaredStage for StreamingMuxStage {
    type Params = ChannelStageParams;
    fn build(p: ChannelStageParams, env: &StageEnv) -> Result<Self, BuildError> {
        require_pool(env)?;
        Ok(StreamingMuxStage::new(p.channel_params(ChannelKind::StreamingMux)?, p.table_params()?))
    }
}

impl EndpointStage for StreamingMuxStage {
    type Endpoint = StreamMuxEndpoint;
}

/// The params of the built-in stage declared as `name` (its short name, as in `type: reliable`): what
/// the macro's compile-time checks read, for tools that check a declaration outside the macro
/// (`rosette-graph`). `None` for a name that is not a built-in stage.
pub fn builtin_fields(name: &str) -> Option<&'static [ParamField]> {
    Some(match name {
        "mac_swap" | "count" | "drop_all" => NoParams::FIELDS,
        "parse_udp" => ParseUdpParams::FIELDS,
        "drop_udp_port" => DropUdpPortParams::FIELDS,
        "set_macs" => SetMacsParams::FIELDS,
        "inject_udp" => InjectUdpParams::FIELDS,
        "fault" => FaultParams::FIELDS,
        "reliable" | "streaming" | "unordered" | "reliable_mux" | "streaming_mux" => ChannelStageParams::FIELDS,
        _ => return None,
    })
}

/// Converts declared values the way generated code does for a stage of `kind` (for tests and tools).
pub fn channel_params_from(values: &[(&str, ParamValue<'_>)], kind: ChannelKind) -> Result<ChannelParams, BuildError> {
    ChannelStageParams::from_values(values)?.channel_params(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::conn;
    use crate::pipeline::params::{check_missing, check_param};

    const CHANNEL: &[ParamField] = <ChannelStageParams as StageParams>::FIELDS;

    // A full channel declaration passes the compile-time checks.
    const _: () = {
        check_param(CHANNEL, "reliable", "t", "endpoint", ParamValue::Str("ingest"));
        check_param(CHANNEL, "reliable", "t", "mac", ParamValue::Str("02:00:00:00:00:01"));
        check_param(CHANNEL, "reliable", "t", "peer", ParamValue::Str("10.0.0.2:7000"));
        check_param(CHANNEL, "reliable", "t", "rto_min", ParamValue::Str("50us"));
        check_param(CHANNEL, "reliable", "t", "epoch", ParamValue::Str("time"));
        check_param(CHANNEL, "reliable", "t", "conn_id", ParamValue::Int(7));
        check_missing(CHANNEL, "reliable", "t", &["endpoint", "ip", "port", "mac"]);
    };

    #[test]
    fn fault_params_take_a_runtime_override_list() {
        let mut p =
            FaultParams::from_values(&[("loss_ppm", ParamValue::Int(5)), ("env", ParamValue::Str("X"))]).unwrap();
        assert_eq!(p.env.as_deref(), Some("X"));
        p.apply_overrides("seed=3, loss_ppm=10000,reorder_delay=200us,").unwrap();
        assert_eq!((p.seed, p.loss_ppm, p.reorder_delay), (3, Ppm(10_000), Duration::from_micros(200)));
        p.apply_overrides("").unwrap();
        assert_eq!(p.loss_ppm, Ppm(10_000));
        assert!(p.apply_overrides("loss_ppm=2000000").is_err());
        assert!(p.apply_overrides("lose_ppm=1").is_err());
        assert!(p.apply_overrides("loss_ppm").is_err());
        assert!(p.apply_overrides("env=Y").is_err());
    }

    #[test]
    fn channel_params_convert() {
        let values = [
            ("endpoint", ParamValue::Str("ingest")),
            ("ip", ParamValue::Str("10.0.0.1")),
            ("port", ParamValue::Int(7000)),
            ("mac", ParamValue::Str("02:00:00:00:00:01")),
            ("peer", ParamValue::Str("10.0.0.2:7000")),
            ("role", ParamValue::Str("connect")),
            ("peer_mac", ParamValue::Str("02:00:00:00:00:02")),
            ("window", ParamValue::Int(64)),
            ("rto_min", ParamValue::Str("200us")),
            ("mss", ParamValue::Int(1000)),
            // 32 packets of 1000 bytes: the 64-packet window holds it (the default 64 KiB would not).
            ("max_message", ParamValue::Int(32_000)),
            ("epoch", ParamValue::Int(9)),
            ("conn_id", ParamValue::Int(3)),
        ];
        let p = channel_params_from(&values, ChannelKind::Reliable).unwrap();
        assert_eq!(p.name, "ingest");
        assert_eq!(p.peer, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7000));
        assert_eq!(p.role, Role::Connect);
        assert_eq!(p.peer_mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!((p.conn.send_capacity, p.conn.recv_capacity, p.conn.mss), (64, 64, 1000));
        assert_eq!(p.conn.min_rto, Duration::from_micros(200));
        assert_eq!((p.epoch, p.local_id, p.queue_depth), (9, 3, 1024));
        // Without a peer: fine for unordered, an error for connection-based channels.
        assert!(channel_params_from(&values[..4], ChannelKind::Unordered).is_ok());
        assert!(channel_params_from(&values[..4], ChannelKind::Reliable).is_err());
        assert!(channel_params_from(&values[1..4], ChannelKind::Unordered).is_err(), "endpoint is required");
    }

    #[test]
    fn loss_recovery_params_convert_and_are_checked() {
        let base = [
            ("endpoint", ParamValue::Str("ingest")),
            ("ip", ParamValue::Str("10.0.0.1")),
            ("port", ParamValue::Int(7000)),
            ("mac", ParamValue::Str("02:00:00:00:00:01")),
            ("peer", ParamValue::Str("10.0.0.2:7000")),
        ];
        let default = channel_params_from(&base, ChannelKind::Reliable).unwrap().conn;
        assert_eq!((default.congestion, default.pacing), (CongestionKind::Swift, true));
        let mut values = base.to_vec();
        values.extend([
            ("congestion", ParamValue::Str("newreno")),
            ("target_delay", ParamValue::Str("40us")),
            ("pacing", ParamValue::Bool(false)),
            ("rto_max", ParamValue::Str("50ms")),
        ]);
        let c = channel_params_from(&values, ChannelKind::Reliable).unwrap().conn;
        assert_eq!(c.congestion, CongestionKind::NewReno);
        assert_eq!(
            (c.target_delay, c.pacing, c.max_rto),
            (Duration::from_micros(40), false, Duration::from_millis(50))
        );
        values.push(("rto_min", ParamValue::Str("60ms")));
        let e = channel_params_from(&values, ChannelKind::Reliable).unwrap_err();
        assert!(e.to_string().contains("`rto_min` (60ms) exceeds `rto_max` (50ms)"), "{e}");
        let mut wrong = base.to_vec();
        wrong.push(("congestion", ParamValue::Str("cubic")));
        assert!(channel_params_from(&wrong, ChannelKind::Reliable).is_err());
    }

    #[test]
    fn the_shared_checks_assume_the_connection_engines_defaults() {
        use rosette_checks::stock::{
            DEFAULT_MAX_MESSAGE, DEFAULT_MSS, DEFAULT_RTO_MAX, DEFAULT_RTO_MIN, DEFAULT_WINDOW,
        };
        let c = conn::Config::default();
        assert_eq!((c.send_capacity as u64, c.recv_capacity as u64), (DEFAULT_WINDOW, DEFAULT_WINDOW));
        assert_eq!((c.mss as u64, c.max_message_size as u64), (DEFAULT_MSS, DEFAULT_MAX_MESSAGE));
        assert_eq!((c.min_rto, c.max_rto), (DEFAULT_RTO_MIN, DEFAULT_RTO_MAX));
    }

    /// Over a grid of windows, segment and message sizes, the shared checks accept exactly what the
    /// connection engine's `Config::validate` accepts: what compiles, launches (and does not panic).
    #[test]
    fn the_shared_checks_agree_with_the_connection_engine() {
        let base = [
            ("endpoint", ParamValue::Str("ingest")),
            ("ip", ParamValue::Str("10.0.0.1")),
            ("port", ParamValue::Int(7000)),
            ("mac", ParamValue::Str("02:00:00:00:00:01")),
            ("peer", ParamValue::Str("10.0.0.2:7000")),
        ];
        let mut checked = 0;
        for window in [2, 3, 8, 46, 47, 48, 49, 256] {
            for mss in [1, 100, 1399, 1400, 9000, 65535] {
                for max_message in [None, Some(0), Some(1), Some(1400), Some(65536), Some(1 << 20)] {
                    let mut values = base.to_vec();
                    values.push(("window", ParamValue::Int(window)));
                    values.push(("mss", ParamValue::Int(mss)));
                    if let Some(m) = max_message {
                        values.push(("max_message", ParamValue::Int(m)));
                    }
                    let p = ChannelStageParams::from_values(&values).unwrap();
                    let default = conn::Config::default();
                    let engine = conn::Config {
                        send_capacity: window as usize,
                        recv_capacity: window as usize,
                        mss: mss as usize,
                        max_message_size: max_message.map_or(default.max_message_size, |m| m as usize),
                        ..default
                    };
                    for kind in [
                        ChannelKind::Reliable,
                        ChannelKind::ReliableMux,
                        ChannelKind::Streaming,
                        ChannelKind::StreamingMux,
                    ] {
                        // Configured as the channel configures its engine.
                        let stream = matches!(kind, ChannelKind::Streaming | ChannelKind::StreamingMux);
                        let engine = if stream { engine.clone().for_stream() } else { engine.clone() };
                        let shared = p.channel_params(kind).map(|_| ());
                        assert_eq!(
                            shared.is_ok(),
                            engine.validate().is_ok(),
                            "{kind:?}: window {window}, mss {mss}, max_message {max_message:?}: {shared:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 8 * 6 * 6 * 4);
    }

    #[test]
    fn build_errors_name_the_param_they_are_about() {
        let mut values = vec![
            ("endpoint", ParamValue::Str("ingest")),
            ("ip", ParamValue::Str("10.0.0.1")),
            ("port", ParamValue::Int(7000)),
            ("mac", ParamValue::Str("02:00:00:00:00:01")),
            ("peer", ParamValue::Str("10.0.0.2:7000")),
        ];
        values.push(("window", ParamValue::Int(0)));
        let e = channel_params_from(&values, ChannelKind::Reliable).unwrap_err();
        assert_eq!((e.param(), e.to_string().as_str()), (Some("window"), "param `window` must be at least 2"));
        let e = ChannelStageParams::from_values(&[("windw", ParamValue::Int(4))]).unwrap_err();
        assert_eq!(e.param(), Some("windw"));
        assert!(e.message().starts_with("unknown param `windw`; did you mean `window`? expected one of: "), "{e}");
        let mut p = FaultParams::from_values(&[]).unwrap();
        let e = p.apply_overrides("loss_ppm=2000000").unwrap_err();
        assert_eq!(e.param(), Some("loss_ppm"));
    }

    #[test]
    fn table_params_are_refused_without_a_table() {
        let values = [
            ("endpoint", ParamValue::Str("ingest")),
            ("ip", ParamValue::Str("10.0.0.1")),
            ("port", ParamValue::Int(7000)),
            ("mac", ParamValue::Str("02:00:00:00:00:01")),
            ("idle_timeout", ParamValue::Str("5s")),
        ];
        let p = ChannelStageParams::from_values(&values).unwrap();
        let e = p.no_table_params("reliable", Some("reliable_mux")).unwrap_err().to_string();
        assert!(
            e.contains("param `idle_timeout` needs a connection table: declare `reliable_mux` instead of `reliable`"),
            "{e}"
        );
        let e = p.no_table_params("unordered", None).unwrap_err().to_string();
        assert!(e.contains("`unordered` has no connections") && !e.contains("unordered_mux"), "{e}");
        assert!(ChannelStageParams::from_values(&values[..4]).unwrap().no_table_params("unordered", None).is_ok());
        assert_eq!(p.table_params().unwrap().idle_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn fault_params_default_to_no_faults() {
        let p = FaultParams::from_values(&[("loss_ppm", ParamValue::Int(20_000))]).unwrap();
        let c = p.config();
        assert_eq!((c.loss_ppm, c.duplicate_ppm, c.reorder_delay), (20_000, 0, Duration::from_micros(100)));
        assert!(FaultParams::from_values(&[("loss_ppm", ParamValue::Int(1_000_001))]).is_err());
        assert_eq!(p.seed, 1);
        assert!(c.blackholes.is_empty());
    }

    #[test]
    fn fault_params_declare_one_blackhole_window() {
        let p = FaultParams::from_values(&[
            ("blackhole_start", ParamValue::Str("10ms")),
            ("blackhole_end", ParamValue::Str("100ms")),
        ])
        .unwrap();
        assert_eq!(p.config().blackholes, [(Instant::from_millis(10), Instant::from_millis(100))]);
        let from_zero = FaultParams::from_values(&[("blackhole_end", ParamValue::Str("5ms"))]).unwrap();
        assert_eq!(from_zero.config().blackholes, [(Instant::ZERO, Instant::from_millis(5))]);
    }
}
