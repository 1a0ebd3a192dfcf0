//! Typed stage parameters, checked at compile time.
//!
//! A stage that can be declared (in YAML or with attributes) implements [`DeclaredStage`]: it names a
//! documented params type ([`StageParams`], usually `#[derive(StageParams)]`) and builds itself from it
//! on its lcore, given what the runtime provides ([`StageEnv`]). Each field of a params type has a
//! [`ParamType`]: integers (range-checked), `bool`, `f64`, `String`, [`Ipv4Addr`], [`SocketAddrV4`]
//! (`"10.0.0.2:7000"`), [`MacAddr`] (`"02:00:00:00:00:01"`), [`Duration`] (`"50us"`, `"1ms"`, `"2s"`,
//! `"100ns"`), `Option<T>` (optional) and enums (`#[derive(ParamEnum)]`: `role: listen|connect`).
//!
//! **Compile-time checking.** The pipeline macro cannot see a user type's fields, so it emits, for every
//! declared param, `const _: () = check_param(<Params as StageParams>::FIELDS, stage, "file.yaml:12:9",
//! name, value);` and for every stage `const _: () = check_missing(..)`. These are `const fn`s: a bad
//! declaration fails const evaluation with a message such as
//! `ingest.yaml:12:9: stage `reliable`: unknown param `portt`; expected one of: endpoint, ip, port, …`.
//! At run time the same parsers build the values ([`StageParams::from_values`]); a failure there (it
//! cannot happen for a declaration that compiled) becomes a [`LaunchError`], never a panic.
//!
//! Stages with an `endpoint` param that implement [`EndpointStage`] get a typed accessor in the generated
//! module (`endpoints::ingest(timeout)`), whose return type follows the stage type.

pub mod stock;

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use rosette_checks::{parse_decimal, DecimalError};

use super::{Context, Stage};
use crate::substrate::{Mempool, TscClock};

pub use super::runtime::LaunchError;
pub use crate::wire::ethernet::Address as MacAddr;
pub use rosette_macros::{ParamEnum, StageParams};

// ---------------------------------------------------------------------------------------------------
// Describing params
// ---------------------------------------------------------------------------------------------------

/// The kind of value a param takes: what the compile-time checker accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i128,
        /// Largest accepted value.
        max: i128,
    },
    /// A number (integers are accepted too).
    Float,
    /// `true` or `false`.
    Bool,
    /// Any string.
    Str,
    /// An IPv4 address: `"10.0.0.2"`.
    Ipv4,
    /// An IPv4 address and UDP port: `"10.0.0.2:7000"`.
    SocketAddr,
    /// A MAC address: `"02:00:00:00:00:01"`.
    Mac,
    /// A duration: an integer and a unit (`ns`, `us`, `ms`, `s`): `"50us"`.
    Duration,
    /// One of the listed words.
    Enum(&'static [&'static str]),
    /// An integer in `min..=max`, or one of the listed words (`epoch: time` or `epoch: 7`).
    IntOrWord {
        /// Smallest accepted integer.
        min: i128,
        /// Largest accepted integer.
        max: i128,
        /// Accepted words.
        words: &'static [&'static str],
    },
}

/// One field of a params type, as the checker and the documentation see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamField {
    /// The name written in declarations.
    pub name: &'static str,
    /// What values it takes.
    pub kind: ParamKind,
    /// Whether a declaration must give it.
    pub required: bool,
    /// Its documentation (the field's doc comment).
    pub doc: &'static str,
}

/// A declared param value, as written (YAML scalar or attribute literal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue<'a> {
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string.
    Str(&'a str),
}

/// A param that could not be taken from its declared value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    message: String,
    param: Option<String>,
}

impl ParamError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> ParamError {
        ParamError { message: message.into(), param: None }
    }

    /// A required param was not given.
    pub fn missing(name: &str) -> ParamError {
        ParamError { message: format!("missing required param `{name}`"), param: None }
    }

    /// Prefixes the message with the param's name, and remembers the param (so a launch error can
    /// point at its declaration).
    pub fn in_param(self, name: &str) -> ParamError {
        ParamError { message: format!("param `{name}`: {}", self.message), param: Some(name.to_owned()) }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The declared param the error is about, when it is about one.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

/// A stage could not be built from its params (a value its checks refuse, or the lcore has no mempool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    message: String,
    param: Option<String>,
}

impl BuildError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> BuildError {
        BuildError { message: message.into(), param: None }
    }

    /// An error about the declared param `param` (the message names it too): a launch error then
    /// points at that param's declaration.
    pub fn in_param(param: impl Into<String>, message: impl Into<String>) -> BuildError {
        BuildError { message: message.into(), param: Some(param.into()) }
    }

    /// The declared param the error is about, when it is about one.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

impl From<ParamError> for BuildError {
    fn from(e: ParamError) -> Self {
        BuildError { message: e.message, param: e.param }
    }
}

impl From<rosette_checks::stock::Problem> for BuildError {
    fn from(p: rosette_checks::stock::Problem) -> Self {
        BuildError { message: p.message, param: p.param.map(str::to_owned) }
    }
}

/// A type a param field can have.
pub trait ParamType: Sized {
    /// What declarations may write.
    const KIND: ParamKind;
    /// Whether a field of this type must be given (`Option<T>` is not).
    const REQUIRED: bool = true;
    /// The value from a declared one (the same rules the compile-time checker applies).
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError>;
    /// The value of a field that was not given, when the type has one (`None` for `Option<T>`).
    fn absent() -> Option<Self> {
        None
    }
}

/// A documented params type (usually `#[derive(StageParams)]`).
pub trait StageParams: Sized {
    /// Every field, in declaration order.
    const FIELDS: &'static [ParamField];
    /// The params from declared `(name, value)` pairs; names not in [`StageParams::FIELDS`] are errors.
    fn from_values(values: &[(&str, ParamValue<'_>)]) -> Result<Self, ParamError>;
}

/// What the runtime gives a stage it builds, on the stage's lcore.
#[derive(Debug, Clone)]
pub struct StageEnv {
    /// The lcore the stage runs on.
    pub lcore: u32,
    /// A mempool on the lcore's NUMA socket, when the lcore has one.
    pub pool: Option<Mempool>,
    /// The TSC clock of the loop.
    pub clock: TscClock,
}

impl StageEnv {
    /// The environment of a loop running with context `cx`.
    pub fn from_context(cx: &Context) -> StageEnv {
        StageEnv { lcore: cx.lcore, pool: cx.pool().cloned(), clock: *cx.clock() }
    }
}

/// A stage that can be declared: it has a params type and builds itself from it.
pub trait DeclaredStage: Stage + Sized {
    /// The documented params.
    type Params: StageParams;
    /// Builds the stage on its lcore.
    fn build(params: Self::Params, env: &StageEnv) -> Result<Self, BuildError>;
}

/// A stage that applications talk to through a named endpoint (the channel stages).
pub trait EndpointStage: DeclaredStage {
    /// The endpoint type the application gets.
    type Endpoint: ConnectEndpoint;
}

/// An application endpoint that can be looked up by name.
pub trait ConnectEndpoint: Sized {
    /// Waits up to `timeout` for the stage named `name` to register, then takes its endpoint.
    fn connect(name: &str, timeout: Duration) -> Result<Self, super::endpoint::EndpointError>;
}

impl ConnectEndpoint for super::endpoint::ReliableEndpoint {
    fn connect(name: &str, timeout: Duration) -> Result<Self, super::endpoint::EndpointError> {
        super::endpoint::ReliableEndpoint::connect(name, timeout)
    }
}

impl ConnectEndpoint for super::endpoint::StreamEndpoint {
    fn connect(name: &str, timeout: Duration) -> Result<Self, super::endpoint::EndpointError> {
        super::endpoint::StreamEndpoint::connect(name, timeout)
    }
}

impl ConnectEndpoint for super::endpoint::ReliableMuxEndpoint {
    fn connect(name: &str, timeout: Duration) -> Result<Self, super::endpoint::EndpointError> {
        super::endpoint::ReliableMuxEndpoint::connect(name, timeout)
    }
}

impl ConnectEndpoint for super::endpoint::StreamMuxEndpoint {
    fn connect(name: &str, timeout: Duration) -> Result<Self, super::endpoint::EndpointError> {
        super::endpoint::StreamMuxEndpoint::connect(name, timeout)
    }
}

impl ConnectEndpoint for super::endpoint::UnorderedEndpoint {
    fn connect(name: &str, timeout: Duration) -> Result<Self, super::endpoint::EndpointError> {
        super::endpoint::UnorderedEndpoint::connect(name, timeout)
    }
}

/// Params of a stage that takes none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoParams;

impl StageParams for NoParams {
    const FIELDS: &'static [ParamField] = &[];
    fn from_values(values: &[(&str, ParamValue<'_>)]) -> Result<Self, ParamError> {
        check_names(Self::FIELDS, values)?;
        Ok(NoParams)
    }
}

// ---------------------------------------------------------------------------------------------------
// Run-time support for generated code and derives
// ---------------------------------------------------------------------------------------------------

/// Builds a declared stage from its declared values. Errors name the lcore and the stage and become
/// [`LaunchError::Config`]; [`build_declared`] also names where the stage was declared.
pub fn build<S: DeclaredStage>(
    stage: &str,
    values: &[(&str, ParamValue<'_>)],
    env: &StageEnv,
) -> Result<S, LaunchError> {
    build_declared(stage, "", values, &[], env)
}

/// Builds a declared stage from its declared values: what generated loops call for every stage, on
/// its lcore, before the loop starts (and before `launch()` returns: see
/// [`LcoreIo::ready`](super::LcoreIo::ready)). `at` is where the stage was declared (`file:line:col`,
/// empty when unknown) and `value_at[i]` where `values[i]` was. An error is
/// [`LaunchError::Config`] ``"<where>: lcore <n>: stage `<stage>`: <message>"``, `<where>` being the
/// declaration of the param the error is about, else of the stage.
pub fn build_declared<S: DeclaredStage>(
    stage: &str,
    at: &str,
    values: &[(&str, ParamValue<'_>)],
    value_at: &[&str],
    env: &StageEnv,
) -> Result<S, LaunchError> {
    let fail = |param: Option<&str>, e: &dyn fmt::Display| {
        let declared = param
            .and_then(|p| values.iter().position(|(name, _)| *name == p))
            .and_then(|i| value_at.get(i).copied())
            .unwrap_or(at);
        let prefix = if declared.is_empty() { String::new() } else { format!("{declared}: ") };
        LaunchError::Config(format!("{prefix}lcore {}: stage `{stage}`: {e}", env.lcore))
    };
    let params = <S::Params as StageParams>::from_values(values).map_err(|e| fail(e.param(), &e))?;
    S::build(params, env).map_err(|e| fail(e.param(), &e))
}

/// The value declared for `name`, if any.
pub fn find<'v, 'a>(values: &'v [(&str, ParamValue<'a>)], name: &str) -> Option<&'v ParamValue<'a>> {
    values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Fails on a declared name that is not a field (derived `from_values` call it first).
pub fn check_names(fields: &[ParamField], values: &[(&str, ParamValue<'_>)]) -> Result<(), ParamError> {
    for (name, _) in values {
        if !fields.iter().any(|f| f.name == *name) {
            let mut m = Msg::new();
            unknown_param(&mut m, fields, name);
            return Err(ParamError { message: m.as_str().to_owned(), param: Some((*name).to_owned()) });
        }
    }
    Ok(())
}

/// Takes field `name` from `values`: its parsed value, else its type's absent value, else `default`,
/// else a missing-param error. Derived `from_values` call it for every field.
pub fn take<T: ParamType>(
    values: &[(&str, ParamValue<'_>)],
    name: &str,
    default: Option<fn() -> T>,
) -> Result<T, ParamError> {
    match find(values, name) {
        Some(v) => T::from_value(v).map_err(|e| e.in_param(name)),
        None => match default {
            Some(d) => Ok(d()),
            None => T::absent().ok_or_else(|| ParamError::missing(name)),
        },
    }
}

fn kind_error(kind: &ParamKind, value: &ParamValue<'_>, detail: Option<&str>) -> ParamError {
    let mut m = Msg::new();
    m.push("expected ");
    m.kind(kind);
    m.push(", found ");
    m.value(value);
    if let Some(d) = detail {
        m.push(" (");
        m.push(d);
        m.push(")");
    }
    ParamError::new(m.as_str())
}

/// Checks `value` against `kind` (the rules of the compile-time checker), as a [`ParamError`].
pub fn check_value(kind: &ParamKind, value: &ParamValue<'_>) -> Result<(), ParamError> {
    match value_problem(kind, value) {
        Ok(()) => Ok(()),
        Err(detail) => Err(kind_error(kind, value, detail)),
    }
}

// ---------------------------------------------------------------------------------------------------
// Value parsers: `const fn`, shared by the compile-time checker and the run-time conversion
// ---------------------------------------------------------------------------------------------------

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn parse_ipv4_bytes(b: &[u8], start: usize, end: usize) -> Result<Ipv4Addr, &'static str> {
    let mut octets = [0u8; 4];
    let mut k = 0;
    let mut from = start;
    let mut i = start;
    while i <= end {
        if i == end || b[i] == b'.' {
            if k == 4 {
                return Err("more than four octets");
            }
            if i == from {
                return Err("empty octet");
            }
            if i - from > 1 && b[from] == b'0' {
                return Err("octet with a leading zero");
            }
            match parse_decimal(b, from, i, 255) {
                Ok(n) => octets[k] = n as u8,
                Err(DecimalError::TooLarge) => return Err("octet out of range 0..=255"),
                Err(DecimalError::Malformed) => return Err("octets are decimal numbers"),
            }
            k += 1;
            from = i + 1;
        }
        i += 1;
    }
    if k != 4 {
        return Err("fewer than four octets");
    }
    Ok(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

/// Parses `"10.0.0.2"`.
pub const fn parse_ipv4(text: &str) -> Result<Ipv4Addr, &'static str> {
    let b = text.as_bytes();
    parse_ipv4_bytes(b, 0, b.len())
}

/// Parses `"10.0.0.2:7000"`.
pub const fn parse_socket_addr(text: &str) -> Result<SocketAddrV4, &'static str> {
    let b = text.as_bytes();
    let mut colon = b.len();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' {
            colon = i;
        }
        i += 1;
    }
    if colon == b.len() {
        return Err("missing `:port`");
    }
    let ip = match parse_ipv4_bytes(b, 0, colon) {
        Ok(ip) => ip,
        Err(e) => return Err(e),
    };
    let port = match parse_decimal(b, colon + 1, b.len(), u16::MAX as u64) {
        Ok(p) => p as u16,
        Err(DecimalError::TooLarge) => return Err("port out of range 0..=65535"),
        Err(DecimalError::Malformed) => return Err("the port is a decimal number"),
    };
    Ok(SocketAddrV4::new(ip, port))
}

const fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `"02:00:00:00:00:01"` (six two-digit hexadecimal groups).
pub const fn parse_mac(text: &str) -> Result<[u8; 6], &'static str> {
    let b = text.as_bytes();
    if b.len() != 17 {
        return Err("six two-digit hexadecimal groups separated by `:`");
    }
    let mut out = [0u8; 6];
    let mut k = 0;
    while k < 6 {
        let i = k * 3;
        if k > 0 && b[i - 1] != b':' {
            return Err("groups are separated by `:`");
        }
        match (hex_digit(b[i]), hex_digit(b[i + 1])) {
            (Some(h), Some(l)) => out[k] = h * 16 + l,
            _ => return Err("groups are hexadecimal"),
        }
        k += 1;
    }
    Ok(out)
}

/// Parses `"50us"`, `"1ms"`, `"2s"`, `"100ns"` (a decimal integer and a unit); the one parser the
/// compile-time checks, the run-time conversion and the validator share.
pub use rosette_checks::parse_duration;

const fn find_word(words: &[&str], text: &str) -> bool {
    let mut i = 0;
    while i < words.len() {
        if str_eq(words[i], text) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether `value` is acceptable for `kind`: `Err(None)` for the wrong kind of value, `Err(Some(why))`
/// for a malformed one.
pub const fn value_problem(kind: &ParamKind, value: &ParamValue<'_>) -> Result<(), Option<&'static str>> {
    match (kind, value) {
        (ParamKind::Int { min, max }, ParamValue::Int(v)) => {
            if *v < *min || *v > *max {
                Err(Some("out of range"))
            } else {
                Ok(())
            }
        }
        (ParamKind::Float, ParamValue::Float(_) | ParamValue::Int(_)) => Ok(()),
        (ParamKind::Bool, ParamValue::Bool(_)) => Ok(()),
        (ParamKind::Str, ParamValue::Str(_)) => Ok(()),
        (ParamKind::Ipv4, ParamValue::Str(s)) => match parse_ipv4(s) {
            Ok(_) => Ok(()),
            Err(e) => Err(Some(e)),
        },
        (ParamKind::SocketAddr, ParamValue::Str(s)) => match parse_socket_addr(s) {
            Ok(_) => Ok(()),
            Err(e) => Err(Some(e)),
        },
        (ParamKind::Mac, ParamValue::Str(s)) => match parse_mac(s) {
            Ok(_) => Ok(()),
            Err(e) => Err(Some(e)),
        },
        (ParamKind::Duration, ParamValue::Str(s)) => match parse_duration(s) {
            Ok(_) => Ok(()),
            Err(e) => Err(Some(e)),
        },
        (ParamKind::Enum(words), ParamValue::Str(s)) => {
            if find_word(words, s) {
                Ok(())
            } else {
                Err(Some("not one of the accepted values"))
            }
        }
        (ParamKind::IntOrWord { min, max, .. }, ParamValue::Int(v)) => {
            if *v < *min || *v > *max {
                Err(Some("out of range"))
            } else {
                Ok(())
            }
        }
        (ParamKind::IntOrWord { words, .. }, ParamValue::Str(s)) => {
            if find_word(words, s) {
                Ok(())
            } else {
                Err(Some("not one of the accepted words"))
            }
        }
        _ => Err(None),
    }
}

// ---------------------------------------------------------------------------------------------------
// Messages composed in a fixed buffer (usable in const fn)
// ---------------------------------------------------------------------------------------------------

const MSG_CAP: usize = 1024;

/// A message built in a fixed buffer; longer messages are cut (at a character boundary).
struct Msg {
    buf: [u8; MSG_CAP],
    len: usize,
}

impl Msg {
    const fn new() -> Msg {
        Msg { buf: [0; MSG_CAP], len: 0 }
    }

    const fn push(&mut self, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && self.len < MSG_CAP {
            self.buf[self.len] = b[i];
            self.len += 1;
            i += 1;
        }
    }

    const fn int(&mut self, v: i128) {
        let mut digits = [0u8; 40];
        let mut n = v.unsigned_abs();
        let mut k = digits.len();
        loop {
            k -= 1;
            digits[k] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            self.push("-");
        }
        let (_, tail) = digits.split_at(k);
        if let Ok(s) = core::str::from_utf8(tail) {
            self.push(s);
        }
    }

    const fn words(&mut self, words: &[&str]) {
        let mut i = 0;
        while i < words.len() {
            if i > 0 {
                self.push(", ");
            }
            self.push(words[i]);
            i += 1;
        }
    }

    const fn kind(&mut self, kind: &ParamKind) {
        match kind {
            ParamKind::Int { min, max } => {
                self.push("an integer from ");
                self.int(*min);
                self.push(" to ");
                self.int(*max);
            }
            ParamKind::Float => self.push("a number"),
            ParamKind::Bool => self.push("`true` or `false`"),
            ParamKind::Str => self.push("a string"),
            ParamKind::Ipv4 => self.push("an IPv4 address such as \"10.0.0.2\""),
            ParamKind::SocketAddr => self.push("an IPv4 address and port such as \"10.0.0.2:7000\""),
            ParamKind::Mac => self.push("a MAC address such as \"02:00:00:00:00:01\""),
            ParamKind::Duration => self.push("a duration such as \"50us\", \"1ms\" or \"2s\" (units ns, us, ms, s)"),
            ParamKind::Enum(words) => {
                self.push("one of: ");
                self.words(words);
            }
            ParamKind::IntOrWord { min, max, words } => {
                self.push("an integer from ");
                self.int(*min);
                self.push(" to ");
                self.int(*max);
                self.push(" or one of: ");
                self.words(words);
            }
        }
    }

    const fn value(&mut self, value: &ParamValue<'_>) {
        match value {
            ParamValue::Int(v) => {
                self.push("integer ");
                self.int(*v);
            }
            ParamValue::Float(_) => self.push("a float"),
            ParamValue::Bool(true) => self.push("`true`"),
            ParamValue::Bool(false) => self.push("`false`"),
            ParamValue::Str(s) => {
                self.push("\"");
                self.push(s);
                self.push("\"");
            }
        }
    }

    const fn prefix(&mut self, at: &str, stage: &str) {
        if !at.is_empty() {
            self.push(at);
            self.push(": ");
        }
        self.push("stage `");
        self.push(stage);
        self.push("`: ");
    }

    const fn as_str(&self) -> &str {
        let (bytes, _) = self.buf.split_at(self.len);
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                let (valid, _) = bytes.split_at(e.valid_up_to());
                match core::str::from_utf8(valid) {
                    Ok(s) => s,
                    Err(_) => "",
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Compile-time checks emitted by the pipeline macro
// ---------------------------------------------------------------------------------------------------

/// The compile-time check of one declared param: its name must be a field of `fields` and its value
/// of the field's kind and well-formed. Panics (a const-evaluation error) with a message starting
/// with `at` (the param's location), naming `stage` and the param, what was expected and what was found.
pub const fn check_param(fields: &[ParamField], stage: &str, at: &str, name: &str, value: ParamValue<'_>) {
    if let Some(m) = param_problem(fields, stage, at, name, value) {
        panic!("{}", m.as_str());
    }
}

/// The message of [`check_param`], without panicking: for tools that check a declaration outside the
/// macro (`rosette-graph`), so they print the macro's words.
pub fn param_message(
    fields: &[ParamField],
    stage: &str,
    at: &str,
    name: &str,
    value: ParamValue<'_>,
) -> Option<String> {
    param_problem(fields, stage, at, name, value).map(|m| m.as_str().to_owned())
}

const fn param_problem(fields: &[ParamField], stage: &str, at: &str, name: &str, value: ParamValue<'_>) -> Option<Msg> {
    let mut i = 0;
    while i < fields.len() {
        if str_eq(fields[i].name, name) {
            if let Err(detail) = value_problem(&fields[i].kind, &value) {
                let mut m = Msg::new();
                m.prefix(at, stage);
                m.push("param `");
                m.push(name);
                m.push("`: expected ");
                m.kind(&fields[i].kind);
                m.push(", found ");
                m.value(&value);
                if let Some(detail) = detail {
                    m.push(" (");
                    m.push(detail);
                    m.push(")");
                }
                return Some(m);
            }
            return None;
        }
        i += 1;
    }
    let mut m = Msg::new();
    m.prefix(at, stage);
    unknown_param(&mut m, fields, name);
    Some(m)
}

/// The longest list of field names the "did you mean" search looks through (const evaluation cannot
/// allocate; stages have far fewer params).
const MAX_SUGGESTED_FIELDS: usize = 64;

/// ``unknown param `windw`; did you mean `window`? expected one of: …``, the same words at compile time
/// and at run time.
const fn unknown_param(m: &mut Msg, fields: &[ParamField], name: &str) {
    m.push("unknown param `");
    m.push(name);
    if fields.is_empty() {
        m.push("`; this stage takes no params");
        return;
    }
    let mut names = [""; MAX_SUGGESTED_FIELDS];
    let mut n = 0;
    while n < fields.len() && n < MAX_SUGGESTED_FIELDS {
        names[n] = fields[n].name;
        n += 1;
    }
    let (names, _) = names.split_at(n);
    match rosette_checks::closest(name, names) {
        Some(near) => {
            m.push("`; did you mean `");
            m.push(near);
            m.push("`? expected one of: ");
        }
        None => m.push("`; expected one of: "),
    }
    let mut i = 0;
    while i < fields.len() {
        if i > 0 {
            m.push(", ");
        }
        m.push(fields[i].name);
        i += 1;
    }
}

/// The compile-time check that every required field of `fields` is among the `given` names. Panics
/// with a message starting with `at` (the stage's location) that lists the missing params and what
/// each takes.
pub const fn check_missing(fields: &[ParamField], stage: &str, at: &str, given: &[&str]) {
    if let Some(m) = missing_problem(fields, stage, at, given) {
        panic!("{}", m.as_str());
    }
}

/// The message of [`check_missing`], without panicking (see [`param_message`]).
pub fn missing_message(fields: &[ParamField], stage: &str, at: &str, given: &[&str]) -> Option<String> {
    missing_problem(fields, stage, at, given).map(|m| m.as_str().to_owned())
}

const fn missing_problem(fields: &[ParamField], stage: &str, at: &str, given: &[&str]) -> Option<Msg> {
    let mut m = Msg::new();
    m.prefix(at, stage);
    m.push("missing required param");
    let mut missing = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].required && !find_word(given, fields[i].name) {
            m.push(if missing == 0 { " `" } else { "; `" });
            m.push(fields[i].name);
            m.push("` (");
            m.kind(&fields[i].kind);
            m.push(")");
            missing += 1;
        }
        i += 1;
    }
    if missing > 0 {
        Some(m)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------------
// Param types
// ---------------------------------------------------------------------------------------------------

fn wrong(kind: &ParamKind, value: &ParamValue<'_>) -> ParamError {
    match value_problem(kind, value) {
        Err(detail) => kind_error(kind, value, detail),
        Ok(()) => kind_error(kind, value, None),
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ParamType for $t {
            const KIND: ParamKind = ParamKind::Int { min: <$t>::MIN as i128, max: <$t>::MAX as i128 };
            fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
                match value {
                    ParamValue::Int(v) => <$t>::try_from(*v).map_err(|_| wrong(&Self::KIND, value)),
                    _ => Err(wrong(&Self::KIND, value)),
                }
            }
        }
    )*};
}

int_param!(u8, u16, u32, u64, usize, i8, i16, i32, i64);

impl ParamType for bool {
    const KIND: ParamKind = ParamKind::Bool;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Bool(b) => Ok(*b),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl ParamType for f64 {
    const KIND: ParamKind = ParamKind::Float;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Float(f) => Ok(*f),
            ParamValue::Int(i) => Ok(*i as f64),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl ParamType for String {
    const KIND: ParamKind = ParamKind::Str;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Str(s) => Ok((*s).to_owned()),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl ParamType for Ipv4Addr {
    const KIND: ParamKind = ParamKind::Ipv4;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Str(s) => parse_ipv4(s).map_err(|_| wrong(&Self::KIND, value)),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl ParamType for SocketAddrV4 {
    const KIND: ParamKind = ParamKind::SocketAddr;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Str(s) => parse_socket_addr(s).map_err(|_| wrong(&Self::KIND, value)),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl ParamType for MacAddr {
    const KIND: ParamKind = ParamKind::Mac;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Str(s) => parse_mac(s).map(MacAddr).map_err(|_| wrong(&Self::KIND, value)),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl ParamType for Duration {
    const KIND: ParamKind = ParamKind::Duration;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        match value {
            ParamValue::Str(s) => parse_duration(s).map_err(|_| wrong(&Self::KIND, value)),
            _ => Err(wrong(&Self::KIND, value)),
        }
    }
}

impl<T: ParamType> ParamType for Option<T> {
    const KIND: ParamKind = T::KIND;
    const REQUIRED: bool = false;
    fn from_value(value: &ParamValue<'_>) -> Result<Self, ParamError> {
        T::from_value(value).map(Some)
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

/// Implements [`ParamType`] for a fieldless enum, each variant spelt by a word:
/// `param_enum!(Role { Listen = "listen", Connect = "connect" });` (for enums you define,
/// `#[derive(ParamEnum)]` does the same).
#[macro_export]
macro_rules! param_enum {
    ($ty:ty { $($variant:ident = $word:literal),+ $(,)? }) => {
        impl $crate::pipeline::params::ParamType for $ty {
            const KIND: $crate::pipeline::params::ParamKind =
                $crate::pipeline::params::ParamKind::Enum(&[$($word),+]);
            fn from_value(
                value: &$crate::pipeline::params::ParamValue<'_>,
            ) -> ::core::result::Result<Self, $crate::pipeline::params::ParamError> {
                match value {
                    $($crate::pipeline::params::ParamValue::Str($word) => Ok(<$ty>::$variant),)+
                    _ => Err($crate::pipeline::params::enum_error(&Self::KIND, value)),
                }
            }
        }
    };
}

/// The error of an enum param given a value that is not one of its words (used by [`param_enum!`]
/// and `#[derive(ParamEnum)]`).
pub fn enum_error(kind: &ParamKind, value: &ParamValue<'_>) -> ParamError {
    wrong(kind, value)
}

param_enum!(super::channels::Role { Listen = "listen", Connect = "connect" });
param_enum!(crate::channel::conn::CongestionKind { Swift = "swift", NewReno = "newreno" });

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[ParamField] = &[
        ParamField { name: "port", kind: <u16 as ParamType>::KIND, required: true, doc: "" },
        ParamField { name: "peer", kind: ParamKind::SocketAddr, required: false, doc: "" },
        ParamField { name: "role", kind: ParamKind::Enum(&["listen", "connect"]), required: false, doc: "" },
    ];

    // Good declarations pass the const checkers at compile time.
    const _: () = check_param(FIELDS, "s", "x.yaml:1:1", "port", ParamValue::Int(7000));
    const _: () = check_param(FIELDS, "s", "x.yaml:1:1", "peer", ParamValue::Str("10.0.0.2:7000"));
    const _: () = check_missing(FIELDS, "s", "x.yaml:1:1", &["port"]);

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let err = std::panic::catch_unwind(f).expect_err("the check passed");
        err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn ipv4() {
        assert_eq!(parse_ipv4("10.0.0.2"), Ok(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(parse_ipv4("255.255.255.255"), Ok(Ipv4Addr::BROADCAST));
        for bad in ["", "10.0.0", "10.0.0.2.1", "10.0.0.256", "10..0.2", "a.b.c.d", "10.0.0.02", " 10.0.0.2"] {
            assert!(parse_ipv4(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn socket_addrs() {
        assert_eq!(parse_socket_addr("10.0.0.2:7000"), Ok(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7000)));
        for bad in ["10.0.0.2", "10.0.0.2:", "10.0.0.2:65536", "10.0.0:1", "10.0.0.2:x"] {
            assert!(parse_socket_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("FF:ff:00:00:00:01"), Ok([255, 255, 0, 0, 0, 1]));
        for bad in ["", "02:00:00:00:00", "02:00:00:00:00:0g", "02-00-00-00-00-01", "02:00:00:00:00:001"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse_duration("3 ms"), Ok(Duration::from_millis(3)));
        for bad in ["", "ms", "5", "5m", "1.5ms", "-1s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds() {
        let int = ParamKind::Int { min: 0, max: 10 };
        assert_eq!(value_problem(&int, &ParamValue::Int(10)), Ok(()));
        assert_eq!(value_problem(&int, &ParamValue::Int(11)), Err(Some("out of range")));
        assert_eq!(value_problem(&int, &ParamValue::Str("1")), Err(None));
        assert_eq!(value_problem(&ParamKind::Float, &ParamValue::Int(1)), Ok(()));
        let epoch = ParamKind::IntOrWord { min: 1, max: 5, words: &["time"] };
        assert_eq!(value_problem(&epoch, &ParamValue::Str("time")), Ok(()));
        assert_eq!(value_problem(&epoch, &ParamValue::Int(3)), Ok(()));
        assert!(value_problem(&epoch, &ParamValue::Int(0)).is_err());
        assert!(value_problem(&epoch, &ParamValue::Str("pid")).is_err());
    }

    #[test]
    fn check_messages() {
        let m = panic_message(|| check_param(FIELDS, "reliable", "x.yaml:12:9", "portt", ParamValue::Int(1)));
        assert_eq!(
            m,
            "x.yaml:12:9: stage `reliable`: unknown param `portt`; did you mean `port`? expected one of: port, peer, role"
        );
        // Nothing close: no suggestion.
        let m = panic_message(|| check_param(FIELDS, "reliable", "x.yaml:12:9", "congestion", ParamValue::Int(1)));
        assert_eq!(m, "x.yaml:12:9: stage `reliable`: unknown param `congestion`; expected one of: port, peer, role");
        let m = panic_message(|| check_param(FIELDS, "reliable", "x.yaml:3:4", "port", ParamValue::Int(70000)));
        assert_eq!(
            m,
            "x.yaml:3:4: stage `reliable`: param `port`: expected an integer from 0 to 65535, found integer 70000 \
             (out of range)"
        );
        let m = panic_message(|| check_param(FIELDS, "r", "", "role", ParamValue::Str("lsten")));
        assert_eq!(
            m,
            "stage `r`: param `role`: expected one of: listen, connect, found \"lsten\" (not one of the accepted values)"
        );
        let m = panic_message(|| check_param(FIELDS, "r", "a:1:1", "peer", ParamValue::Bool(true)));
        assert!(m.ends_with("found `true`"), "{m}");
        let m = panic_message(|| check_missing(FIELDS, "r", "a:1:1", &["peer"]));
        assert_eq!(m, "a:1:1: stage `r`: missing required param `port` (an integer from 0 to 65535)");
        let m = panic_message(|| check_param(&[], "count", "a:1:1", "x", ParamValue::Int(1)));
        assert_eq!(m, "a:1:1: stage `count`: unknown param `x`; this stage takes no params");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let mut m = Msg::new();
        for _ in 0..MSG_CAP {
            m.push("é");
        }
        assert!(m.as_str().len() <= MSG_CAP && m.as_str().chars().all(|c| c == 'é'));
        let mut m = Msg::new();
        m.int(i128::MIN);
        assert_eq!(m.as_str(), i128::MIN.to_string());
    }

    #[test]
    fn run_time_conversion() {
        assert_eq!(u16::from_value(&ParamValue::Int(7000)), Ok(7000));
        assert!(u16::from_value(&ParamValue::Int(-1)).is_err());
        assert_eq!(Option::<u8>::absent(), Some(None));
        assert_eq!(MacAddr::from_value(&ParamValue::Str("02:00:00:00:00:01")), Ok(MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(Duration::from_value(&ParamValue::Str("50us")), Ok(Duration::from_micros(50)));
        use super::super::channels::Role;
        assert_eq!(Role::from_value(&ParamValue::Str("connect")), Ok(Role::Connect));
        let e = Role::from_value(&ParamValue::Str("dial")).unwrap_err();
        assert_eq!(e.message(), "expected one of: listen, connect, found \"dial\" (not one of the accepted values)");
        let values = [("port", ParamValue::Int(1)), ("nope", ParamValue::Int(1))];
        assert!(check_names(FIELDS, &values).unwrap_err().message().starts_with("unknown param `nope`"));
        assert_eq!(take::<u16>(&values, "port", None), Ok(1));
        assert_eq!(take::<u16>(&values, "other", Some(|| 9)), Ok(9));
        assert!(take::<u16>(&values, "other", None).is_err());
    }
}
