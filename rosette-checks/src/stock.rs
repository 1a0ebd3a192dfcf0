//! The checks of the built-in stages' params beyond each param's own type: the rules that relate
//! params (`rto_min` ≤ `rto_max`, a `max_message` the `window` can hold) or bound one more tightly than
//! its integer type (`window` ≥ 2). The validator calls them with the declared values and reports every
//! problem at the param's `file:line:col`; the runtime calls them with the parsed params when it builds
//! the stage and fails with the first one. A param's *kind* (an integer in range, an address, a
//! duration) is checked elsewhere (rosette's `check_param`); values of the wrong kind reach these
//! functions as absent, so one mistake is reported once.

use core::time::Duration;

/// A problem of one stage's params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The param the message is about, where a location should point; `None` for the stage itself
    /// (e.g. a param it needs is missing).
    pub param: Option<&'static str>,
    /// What is wrong and how to fix it, naming the params.
    pub message: String,
}

impl Problem {
    fn at(param: &'static str, message: String) -> Problem {
        Problem { param: Some(param), message }
    }
}

// ---------------------------------------------------------------------------------------------------
// Defaults the checks assume for params that are not declared. They are the connection engine's own
// defaults (`rosette::channel::conn::Config::default()`); a unit test of `rosette` checks they agree.
// ---------------------------------------------------------------------------------------------------

/// `window` when not declared: packets held by the sender and by the receiver.
pub const DEFAULT_WINDOW: u64 = 256;
/// `mss` when not declared: payload bytes per packet.
pub const DEFAULT_MSS: u64 = 1400;
/// `max_message` when not declared: the largest message, bytes.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 * 1024;
/// `rto_min` when not declared.
pub const DEFAULT_RTO_MIN: Duration = Duration::from_micros(200);
/// `rto_max` when not declared.
pub const DEFAULT_RTO_MAX: Duration = Duration::from_millis(200);
/// The largest `payload_len` of `inject_udp`: an Ethernet MTU of 1500 less the IPv4 and UDP headers.
pub const MAX_INJECT_PAYLOAD: u64 = 1500 - 28;

/// The channel stages, by the word a declaration writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `reliable`: one connection, messages.
    Reliable,
    /// `streaming`: one connection, a byte stream.
    Streaming,
    /// `unordered`: datagrams, no connection.
    Unordered,
    /// `reliable_mux`: a table of reliable connections.
    ReliableMux,
    /// `streaming_mux`: a table of streaming connections.
    StreamingMux,
}

impl ChannelKind {
    /// The kind of the stage declared as `name`, if it is a channel stage.
    pub fn from_short_name(name: &str) -> Option<ChannelKind> {
        Some(match name {
            "reliable" => ChannelKind::Reliable,
            "streaming" => ChannelKind::Streaming,
            "unordered" => ChannelKind::Unordered,
            "reliable_mux" => ChannelKind::ReliableMux,
            "streaming_mux" => ChannelKind::StreamingMux,
            _ => return None,
        })
    }

    /// The word a declaration writes.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Reliable => "reliable",
            ChannelKind::Streaming => "streaming",
            ChannelKind::Unordered => "unordered",
            ChannelKind::ReliableMux => "reliable_mux",
            ChannelKind::StreamingMux => "streaming_mux",
        }
    }

    /// Whether the stage keeps a table of connections.
    pub fn is_table(self) -> bool {
        matches!(self, ChannelKind::ReliableMux | ChannelKind::StreamingMux)
    }
}

/// The declared params of a channel stage that the checks relate; `None` (or `false`) for a param that
/// is not declared or whose value is of the wrong kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelDecl {
    /// `role: connect` was declared.
    pub role_connect: bool,
    /// `peer` was declared.
    pub peer: bool,
    /// `queue_depth`.
    pub queue_depth: Option<u64>,
    /// `window`.
    pub window: Option<u64>,
    /// `mss`.
    pub mss: Option<u64>,
    /// `max_message`.
    pub max_message: Option<u64>,
    /// `rto_min`.
    pub rto_min: Option<Duration>,
    /// `rto_max`.
    pub rto_max: Option<Duration>,
}

/// `60ms`, `200us`, `1s`: a duration as a declaration would write it.
pub fn duration_text(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, scale) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
        if ns >= scale && ns.is_multiple_of(scale) {
            return format!("{}{unit}", ns / scale);
        }
    }
    format!("{ns}ns")
}

/// Every problem of a channel stage's params, in the order the runtime meets them (it reports the
/// first). The rules:
/// - `reliable` and `streaming` need `peer`; so does a table stage that dials (`role: connect`);
/// - `queue_depth` ≥ 1, `window` ≥ 2, `mss` ≥ 1;
/// - `rto_min` ≤ `rto_max` (each defaulted when not declared);
/// - on a message connection (`reliable`, `reliable_mux`), the largest message, cut into `mss`-byte
///   packets, fits in `window - 1` packets: the receiver keeps one slot free, and a message it cannot
///   hold whole would never be delivered (the connection engine's `Config::validate`). A byte stream
///   has no messages (its engine is configured with `Config::for_stream`, whose limit is one packet),
///   and `unordered` no connection.
pub fn channel_problems(kind: ChannelKind, decl: &ChannelDecl) -> Vec<Problem> {
    let mut problems = Vec::new();
    let stage = kind.name();
    if !decl.peer {
        if kind.is_table() && decl.role_connect {
            problems.push(Problem::at(
                "role",
                "a dialer (`role: connect`) needs `peer` (ip:port), the address it connects to".to_owned(),
            ));
        } else if matches!(kind, ChannelKind::Reliable | ChannelKind::Streaming) {
            problems.push(Problem {
                param: None,
                message: format!(
                    "stage `{stage}` needs param `peer` (ip:port): a connection-based channel accepts and \
                     sends to that address only"
                ),
            });
        }
    }
    if decl.queue_depth == Some(0) {
        problems.push(Problem::at("queue_depth", "param `queue_depth` must be at least 1".to_owned()));
    }
    let window_ok = !matches!(decl.window, Some(w) if w < 2);
    if !window_ok {
        problems.push(Problem::at("window", "param `window` must be at least 2".to_owned()));
    }
    let mss_ok = decl.mss != Some(0);
    if !mss_ok {
        problems.push(Problem::at("mss", "param `mss` must be at least 1".to_owned()));
    }
    let rto_min = decl.rto_min.unwrap_or(DEFAULT_RTO_MIN);
    let rto_max = decl.rto_max.unwrap_or(DEFAULT_RTO_MAX);
    if rto_min > rto_max {
        let default = |declared: Option<Duration>| if declared.is_some() { "" } else { ", the default" };
        problems.push(Problem::at(
            if decl.rto_min.is_some() { "rto_min" } else { "rto_max" },
            format!(
                "param `rto_min` ({}{}) exceeds `rto_max` ({}{})",
                duration_text(rto_min),
                default(decl.rto_min),
                duration_text(rto_max),
                default(decl.rto_max)
            ),
        ));
    }
    if matches!(kind, ChannelKind::Reliable | ChannelKind::ReliableMux) && window_ok && mss_ok {
        let window = decl.window.unwrap_or(DEFAULT_WINDOW);
        let mss = decl.mss.unwrap_or(DEFAULT_MSS);
        let max_message = decl.max_message.unwrap_or(DEFAULT_MAX_MESSAGE);
        let packets = max_message.div_ceil(mss).max(1);
        if packets > window - 1 {
            // Point at what was declared: the window first (the usual fix), else the message size.
            let param = if decl.window.is_some() {
                "window"
            } else if decl.max_message.is_some() {
                "max_message"
            } else {
                "mss"
            };
            let declared = |v: Option<u64>| if v.is_some() { "" } else { ", the default" };
            problems.push(Problem::at(
                param,
                format!(
                    "param `window` ({window}{}) cannot hold the largest message: `max_message` ({max_message} \
                     bytes{}) takes {packets} packets of `mss` ({mss} bytes{}), and the receiver keeps one of \
                     the window's packets free; declare `window: {}` or more, or a smaller `max_message`",
                    declared(decl.window),
                    declared(decl.max_message),
                    declared(decl.mss),
                    packets + 1
                ),
            ));
        }
    }
    problems
}

/// The declared params of `fault` that the checks relate (see [`ChannelDecl`] for `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultDecl {
    /// `blackhole_start` (default 0).
    pub blackhole_start: Option<Duration>,
    /// `blackhole_end` (no blackhole without it).
    pub blackhole_end: Option<Duration>,
    /// `hold_capacity` (default 1024).
    pub hold_capacity: Option<u64>,
    /// `reorder_ppm` (default 0).
    pub reorder_ppm: Option<u64>,
}

/// Every problem of a `fault` stage's params: the blackhole window must end after it starts, and
/// reordering needs room to hold packets back.
pub fn fault_problems(decl: &FaultDecl) -> Vec<Problem> {
    let mut problems = Vec::new();
    let start = decl.blackhole_start.unwrap_or(Duration::ZERO);
    if let Some(end) = decl.blackhole_end {
        if end <= start {
            problems.push(Problem::at(
                "blackhole_end",
                format!(
                    "param `blackhole_end` ({}) must come after `blackhole_start` ({})",
                    duration_text(end),
                    duration_text(start)
                ),
            ));
        }
    }
    if decl.hold_capacity == Some(0) && decl.reorder_ppm.is_some_and(|r| r > 0) {
        problems.push(Problem::at(
            "hold_capacity",
            "param `reorder_ppm` needs a `hold_capacity` of at least 1 (reordered packets are held back)".to_owned(),
        ));
    }
    problems
}

/// Every problem of an `inject_udp` stage's params: the payload must fit an Ethernet MTU.
pub fn inject_problems(payload_len: Option<u64>) -> Vec<Problem> {
    match payload_len {
        Some(n) if n > MAX_INJECT_PAYLOAD => vec![Problem::at(
            "payload_len",
            format!(
                "param `payload_len` ({n}) exceeds {MAX_INJECT_PAYLOAD} bytes (an Ethernet MTU of 1500 less the \
                 IPv4 and UDP headers)"
            ),
        )],
        _ => Vec::new(),
    }
}

/// Why [`parse_decimal`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// Empty, or not only digits.
    Malformed,
    /// Larger than the maximum.
    TooLarge,
}

/// A decimal number made of all of `b[start..end]` (no sign, at least one digit), up to `max`
/// (the one decimal parser of durations, addresses and ports, usable in constants).
pub const fn parse_decimal(b: &[u8], start: usize, end: usize, max: u64) -> Result<u64, DecimalError> {
    if start >= end {
        return Err(DecimalError::Malformed);
    }
    let mut n: u64 = 0;
    let mut i = start;
    while i < end {
        let c = b[i];
        if !c.is_ascii_digit() {
            return Err(DecimalError::Malformed);
        }
        n = match n.checked_mul(10) {
            Some(x) => match x.checked_add((c - b'0') as u64) {
                Some(y) => y,
                None => return Err(DecimalError::TooLarge),
            },
            None => return Err(DecimalError::TooLarge),
        };
        if n > max {
            return Err(DecimalError::TooLarge);
        }
        i += 1;
    }
    Ok(n)
}

/// Parses `"50us"`, `"1ms"`, `"2s"`, `"100ns"` (a decimal integer and a unit): the one duration syntax
/// of declarations, for the compile-time kind check, the run-time conversion and the checks above.
pub const fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let b = text.as_bytes();
    let mut digits = 0;
    while digits < b.len() && b[digits].is_ascii_digit() {
        digits += 1;
    }
    if digits == 0 {
        return Err("starts with a decimal integer");
    }
    let mut unit_start = digits;
    while unit_start < b.len() && b[unit_start] == b' ' {
        unit_start += 1;
    }
    let (_, unit) = b.split_at(unit_start);
    let scale: u64 = match unit {
        b"ns" => 1,
        b"us" => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"" => return Err("missing unit: ns, us, ms or s"),
        _ => return Err("unknown unit: use ns, us, ms or s"),
    };
    let n = match parse_decimal(b, 0, digits, u64::MAX / scale) {
        Ok(n) => n,
        Err(DecimalError::TooLarge | DecimalError::Malformed) => return Err("too long"),
    };
    Ok(Duration::from_nanos(n * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(problems: Vec<Problem>) -> Vec<String> {
        problems.into_iter().map(|p| format!("{}: {}", p.param.unwrap_or("-"), p.message)).collect()
    }

    fn connected() -> ChannelDecl {
        ChannelDecl { peer: true, ..ChannelDecl::default() }
    }

    #[test]
    fn the_defaults_pass_on_every_kind() {
        for name in ["reliable", "streaming", "unordered", "reliable_mux", "streaming_mux"] {
            let kind = ChannelKind::from_short_name(name).unwrap();
            assert_eq!(kind.name(), name);
            assert_eq!(channel_problems(kind, &connected()), vec![]);
        }
        assert_eq!(ChannelKind::from_short_name("count"), None);
    }

    #[test]
    fn single_bounds() {
        let decl = ChannelDecl { window: Some(0), queue_depth: Some(0), mss: Some(0), ..connected() };
        assert_eq!(
            messages(channel_problems(ChannelKind::Reliable, &decl)),
            [
                "queue_depth: param `queue_depth` must be at least 1",
                "window: param `window` must be at least 2",
                "mss: param `mss` must be at least 1",
            ]
        );
    }

    #[test]
    fn a_peer_is_needed_by_connections_only() {
        let none = ChannelDecl::default();
        assert_eq!(
            messages(channel_problems(ChannelKind::Streaming, &none)),
            ["-: stage `streaming` needs param `peer` (ip:port): a connection-based channel accepts and sends \
              to that address only"]
        );
        assert_eq!(channel_problems(ChannelKind::Unordered, &none), vec![]);
        assert_eq!(channel_problems(ChannelKind::ReliableMux, &none), vec![], "a listener accepts anyone");
        let dialer = ChannelDecl { role_connect: true, ..none };
        assert_eq!(
            messages(channel_problems(ChannelKind::StreamingMux, &dialer)),
            ["role: a dialer (`role: connect`) needs `peer` (ip:port), the address it connects to"]
        );
    }

    #[test]
    fn rto_bounds_use_the_defaults() {
        let high_min = ChannelDecl { rto_min: Some(Duration::from_millis(300)), ..connected() };
        assert_eq!(
            messages(channel_problems(ChannelKind::Reliable, &high_min)),
            ["rto_min: param `rto_min` (300ms) exceeds `rto_max` (200ms, the default)"]
        );
        let low_max = ChannelDecl { rto_max: Some(Duration::from_micros(100)), ..connected() };
        assert_eq!(
            messages(channel_problems(ChannelKind::Reliable, &low_max)),
            ["rto_max: param `rto_min` (200us, the default) exceeds `rto_max` (100us)"]
        );
    }

    #[test]
    fn the_window_must_hold_the_largest_message() {
        // 64 KiB in 1400-byte packets is 47 packets: a window of 48 holds it, 47 does not.
        let fits = ChannelDecl { window: Some(48), ..connected() };
        assert_eq!(channel_problems(ChannelKind::Reliable, &fits), vec![]);
        let short = ChannelDecl { window: Some(47), ..connected() };
        assert_eq!(
            messages(channel_problems(ChannelKind::ReliableMux, &short)),
            ["window: param `window` (47) cannot hold the largest message: `max_message` (65536 bytes, the \
              default) takes 47 packets of `mss` (1400 bytes, the default), and the receiver keeps one of the \
              window's packets free; declare `window: 48` or more, or a smaller `max_message`"]
        );
        assert_eq!(channel_problems(ChannelKind::Unordered, &short), vec![], "no connection, no window");
        for stream in [ChannelKind::Streaming, ChannelKind::StreamingMux] {
            assert_eq!(channel_problems(stream, &short), vec![], "a stream has no messages");
        }
        let small_message = ChannelDecl { window: Some(8), max_message: Some(1400 * 7), ..connected() };
        assert_eq!(channel_problems(ChannelKind::Reliable, &small_message), vec![]);
        let big_message = ChannelDecl { max_message: Some(1 << 20), ..connected() };
        assert_eq!(channel_problems(ChannelKind::Reliable, &big_message)[0].param, Some("max_message"));
        let tiny_mss = ChannelDecl { mss: Some(100), ..connected() };
        assert_eq!(channel_problems(ChannelKind::Reliable, &tiny_mss)[0].param, Some("mss"));
        // A window already reported as too small is not reported again.
        let one = ChannelDecl { window: Some(1), ..connected() };
        assert_eq!(channel_problems(ChannelKind::Reliable, &one).len(), 1);
    }

    #[test]
    fn fault_and_inject() {
        let ms = Duration::from_millis;
        let backwards = FaultDecl { blackhole_start: Some(ms(10)), blackhole_end: Some(ms(5)), ..FaultDecl::default() };
        assert_eq!(
            messages(fault_problems(&backwards)),
            ["blackhole_end: param `blackhole_end` (5ms) must come after `blackhole_start` (10ms)"]
        );
        let from_zero = FaultDecl { blackhole_end: Some(Duration::ZERO), ..FaultDecl::default() };
        assert_eq!(fault_problems(&from_zero).len(), 1);
        let no_room = FaultDecl { hold_capacity: Some(0), reorder_ppm: Some(1), ..FaultDecl::default() };
        assert_eq!(fault_problems(&no_room)[0].param, Some("hold_capacity"));
        assert_eq!(fault_problems(&FaultDecl { hold_capacity: Some(0), ..FaultDecl::default() }), vec![]);
        assert_eq!(inject_problems(Some(1472)), vec![]);
        assert_eq!(inject_problems(None), vec![]);
        assert_eq!(
            messages(inject_problems(Some(1473))),
            ["payload_len: param `payload_len` (1473) exceeds 1472 bytes (an Ethernet MTU of 1500 less the IPv4 \
              and UDP headers)"]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("3 ms"), Ok(Duration::from_millis(3)));
        for bad in ["", "ms", "5", "5m", "1.5ms", "-1s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_text(Duration::from_millis(60)), "60ms");
        assert_eq!(duration_text(Duration::from_micros(1500)), "1500us");
        assert_eq!(duration_text(Duration::from_secs(2)), "2s");
        assert_eq!(duration_text(Duration::from_nanos(7)), "7ns");
        assert_eq!(duration_text(Duration::ZERO), "0ns");
    }
}
