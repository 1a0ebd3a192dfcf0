//! `rosette-perf --connections N`: many reliable connections through one listener.
//!
//! The pipelines are `perf_reliable_mux.yaml`: the client's `reliable_mux` stage is a dialer, the
//! server's a listener. Both applications run on their own threads, through the public
//! [`ReliableMuxEndpoint`]:
//! 1. the client opens N connections (one at start, N - 1 with [`ReliableMuxEndpoint::open`]) and
//!    waits until all are established;
//! 2. both sides measure their resident memory with the N connections established and idle (the
//!    server's growth over its resident memory before the first connection, divided by N, is the
//!    cost of one idle connection — table slot, connection state, the application's bookkeeping);
//! 3. the client sends for `--seconds`, round-robin over the connections, a batch per connection
//!    per turn (two packets' worth of messages, as a producer sending what it has), each message
//!    numbered on its connection and digested per connection;
//! 4. the client closes every connection; the server, at each connection's end, answers on it with
//!    the count and digest it received, and the client checks each against what it sent.
//!
//! The result line is the usual one with `connections=N`, the receiver's rate (first to last
//! message at the server), the cost per message (its inverse, on the server's one worker lcore) and
//! the resident memory per idle connection of each side.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant as StdInstant};

use rosette::channel::mux::ConnHandle;
use rosette::channel::reliable::Event;
use rosette::channel::streaming;
use rosette::pipeline::endpoint::{EndpointError, ReliableMuxEndpoint, StreamDelivery, StreamMuxEndpoint};
use rosette::pipeline::mux::MuxReport;
use rosette::pipeline::Pipeline;
use rosette::wire::packed::record_len;

use super::declared::{reliable_mux, reliable_mux_2q, streaming_mux};
use super::forge::{FORGED, FORGE_ENV, FORGING};
use super::stats::{fill_message, message_header, pattern_ok, Digest};
use super::{
    accept_within, close, connect_control, ctl_path, field, launch_options, median, run_child_pair, set_faults,
    stop_polling, ChannelKind, Echo, Options, APP_STOP, INTERRUPTED,
};

/// Connections the server's application threads have seen established.
static CONNECTED: AtomicUsize = AtomicUsize::new(0);

/// The bytes of the per-connection report the server sends back: messages received, their digest.
const REPORT_LEN: usize = 16;

/// Resident memory of this process, bytes (`VmRSS` of `/proc/self/status`).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}

/// What one side knows of one connection.
#[derive(Debug, Clone, Copy)]
struct ConnState {
    handle: ConnHandle,
    /// Messages sent (client) or received in order (server) on it.
    count: u64,
    digest: Digest,
    /// Server: the connection's end was answered. Client: the server's report arrived and matched.
    done: bool,
    matched: bool,
    /// Stream server: bytes received. Client: the report's bytes so far (a stream may split it).
    bytes: u64,
    report: [u8; REPORT_LEN],
}

impl ConnState {
    fn new(handle: ConnHandle) -> ConnState {
        ConnState {
            handle,
            count: 0,
            digest: Digest::new(),
            done: false,
            matched: false,
            bytes: 0,
            report: [0; REPORT_LEN],
        }
    }
}

/// States indexed by the handle's slot (a handle of a reused slot replaces the old state).
#[derive(Debug, Default)]
struct States(Vec<Option<ConnState>>);

impl States {
    fn with_capacity(n: usize) -> States {
        States(Vec::with_capacity(n))
    }
    fn insert(&mut self, h: ConnHandle) {
        let i = h.index() as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some(ConnState::new(h));
    }
    fn get(&mut self, h: ConnHandle) -> Option<&mut ConnState> {
        self.0.get_mut(h.index() as usize)?.as_mut().filter(|s| s.handle == h)
    }
    fn iter(&self) -> impl Iterator<Item = &ConnState> {
        self.0.iter().flatten()
    }
}

/// What the perf applications see of a delivery of a table endpoint.
enum Seen<'a> {
    /// A new connection.
    Connected,
    /// Reliable: one whole message; stream: the next received bytes.
    Data(&'a [u8]),
    /// The peer finished sending.
    End,
    /// The connection was reset or failed.
    Broken(String),
    /// Anything else (a connection's final `Closed`).
    Other,
}

/// The two table endpoints, as the perf applications use them.
trait TableEnd: Send + 'static {
    /// Each `Data` is one whole message (reliable) rather than a piece of a byte stream.
    const MESSAGES: bool;
    fn open(&self, timeout: Duration) -> Result<(), EndpointError>;
    /// Queues all of `msg` on `conn`; `Ok(false)` when there is no room now (nothing was taken).
    fn send_all(&self, conn: ConnHandle, msg: &[u8]) -> Result<bool, EndpointError>;
    fn finish(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError>;
    /// Takes one delivery (waiting up to `wait` if it is not zero) and shows it to `f`; false when
    /// there was none.
    fn take(
        &self,
        wait: Duration,
        gather: &mut Vec<u8>,
        f: impl FnMut(ConnHandle, Seen<'_>),
    ) -> Result<bool, EndpointError>;
}

fn pulled<T>(r: Result<T, EndpointError>) -> Result<Option<T>, EndpointError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(EndpointError::WouldBlock | EndpointError::TimedOut) => Ok(None),
        Err(e) => Err(e),
    }
}

impl TableEnd for ReliableMuxEndpoint {
    const MESSAGES: bool = true;
    fn open(&self, timeout: Duration) -> Result<(), EndpointError> {
        ReliableMuxEndpoint::open(self, timeout)
    }
    fn send_all(&self, conn: ConnHandle, msg: &[u8]) -> Result<bool, EndpointError> {
        match self.try_send(conn, msg) {
            Ok(()) => Ok(true),
            Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => Ok(false),
            Err(e) => Err(e),
        }
    }
    fn finish(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError> {
        self.close(conn, timeout)
    }
    fn take(
        &self,
        wait: Duration,
        gather: &mut Vec<u8>,
        mut f: impl FnMut(ConnHandle, Seen<'_>),
    ) -> Result<bool, EndpointError> {
        let ev = if wait.is_zero() { self.try_recv() } else { self.recv(wait) };
        let Some(ev) = pulled(ev)? else { return Ok(false) };
        let h = ev.conn;
        match &ev.event {
            Event::Connected => f(h, Seen::Connected),
            Event::PeerClosed => f(h, Seen::End),
            Event::Reset(r) => f(h, Seen::Broken(format!("reset: {r:?}"))),
            Event::Failed => f(h, Seen::Broken("failed".to_owned())),
            Event::Closed => f(h, Seen::Other),
            Event::Message(_) | Event::Messages(_) => {
                for message in ev.event.messages() {
                    // A message of one segment (every one that fits a packet) is read in place.
                    let mut segments = message;
                    let first = segments.next().unwrap_or_default();
                    match segments.next() {
                        None => f(h, Seen::Data(first)),
                        Some(second) => {
                            gather.clear();
                            gather.extend_from_slice(first);
                            gather.extend_from_slice(second);
                            segments.for_each(|seg| gather.extend_from_slice(seg));
                            f(h, Seen::Data(gather));
                        }
                    }
                }
            }
        }
        Ok(true)
    }
}

impl TableEnd for StreamMuxEndpoint {
    const MESSAGES: bool = false;
    fn open(&self, timeout: Duration) -> Result<(), EndpointError> {
        StreamMuxEndpoint::open(self, timeout)
    }
    fn send_all(&self, conn: ConnHandle, msg: &[u8]) -> Result<bool, EndpointError> {
        let mut done = match self.try_write(conn, msg) {
            Ok(n) => n,
            Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => return Ok(false),
            Err(e) => return Err(e),
        };
        // Part of it went: the rest must follow at once, or the stream would interleave messages.
        while done < msg.len() {
            match self.try_write(conn, &msg[done..]) {
                Ok(n) => done += n,
                Err(EndpointError::WouldBlock | EndpointError::NoBuffers) => {
                    std::thread::sleep(Duration::from_micros(20))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
    fn finish(&self, conn: ConnHandle, timeout: Duration) -> Result<(), EndpointError> {
        StreamMuxEndpoint::finish(self, conn, timeout)
    }
    fn take(
        &self,
        wait: Duration,
        _: &mut Vec<u8>,
        mut f: impl FnMut(ConnHandle, Seen<'_>),
    ) -> Result<bool, EndpointError> {
        let ev = if wait.is_zero() { self.try_recv() } else { self.recv(wait) };
        let Some(ev) = pulled(ev)? else { return Ok(false) };
        let h = ev.conn;
        match &ev.event {
            StreamDelivery::Event(streaming::Event::Connected) => f(h, Seen::Connected),
            StreamDelivery::Event(streaming::Event::Reset(r)) => f(h, Seen::Broken(format!("reset: {r:?}"))),
            StreamDelivery::Event(streaming::Event::Failed) => f(h, Seen::Broken("failed".to_owned())),
            StreamDelivery::Event(streaming::Event::Closed) => f(h, Seen::Other),
            StreamDelivery::Data(m) => f(h, Seen::Data(m.data())),
            StreamDelivery::End => f(h, Seen::End),
        }
        Ok(true)
    }
}

/// Messages of `size` bytes one turn of the client sends on a connection: two packets' worth.
fn batch(size: usize, mss: usize) -> usize {
    (2 * (mss / record_len(size)).max(1)).max(1)
}

/// Prints each table's counters (accepted, cookies, forged, idle, how connections ended, what they
/// dropped unacknowledged) and the sums over every connection it had, one line per lcore; false when
/// no table reported.
fn print_tables(p: &Pipeline, who: &str) -> bool {
    let mut any = false;
    for lcore in 0..3 {
        for index in 0..8 {
            let Some(report) = p.stage_report::<MuxReport>(lcore, index) else { continue };
            any = true;
            let t = &report.table;
            println!(
                "{who} table: lcore={lcore} live={} accepted={} opened={} cookies_sent={} bad_syn={} bad_cookie={} \
                 stale={} replies_dropped={} table_full={} idle_closed={} storage_allocated={} closed={} reset={} \
                 aborted={} failed={} abandoned_packets={} send_refused={} retransmits={} timeouts={}",
                report.live,
                t.accepted,
                t.opened,
                t.cookies_sent,
                t.bad_syn,
                t.bad_cookie,
                t.stale,
                t.replies_dropped,
                t.table_full,
                t.idle_closed,
                t.storage_allocated,
                t.closed,
                t.reset,
                t.aborted,
                t.failed,
                report.abandoned.packets,
                report.stage.send_refused,
                report.connections.retransmits,
                report.connections.timeouts
            );
        }
    }
    any
}

/// `n` connections split over `k` tables, as evenly as can be.
fn shares(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

/// One side's reliable pipeline for `--lcores` and its table stages' endpoints, one per lcore
/// (server) or queue (client).
fn launch_reliable(opts: &Options, server: bool) -> Result<(Pipeline, Vec<ReliableMuxEndpoint>), String> {
    use reliable_mux::{client as c1, server as s1};
    use reliable_mux_2q::{client as c2, server as s2};
    let t = Duration::from_secs(30);
    let o = launch_options(opts, if server { "server" } else { "client" });
    let launch = match (opts.lcores == 2, server) {
        (false, false) => c1::launch,
        (false, true) => s1::launch,
        (true, false) => c2::launch,
        (true, true) => s2::launch,
    };
    let p = launch(&o).map_err(|e| e.to_string())?;
    crate::run::print_file_prefix(p.file_prefix());
    let eps = match (opts.lcores == 2, server) {
        (false, false) => vec![c1::endpoints::perf(t)],
        (false, true) => vec![s1::endpoints::perf(t)],
        (true, false) => vec![c2::endpoints::perf0(t), c2::endpoints::perf1(t)],
        (true, true) => vec![s2::endpoints::perf0(t), s2::endpoints::perf1(t)],
    };
    let eps = eps.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| format!("endpoint: {e}"))?;
    Ok((p, eps))
}

/// One side's streaming pipeline (one lcore) and its endpoint.
fn launch_streaming(opts: &Options, server: bool) -> Result<(Pipeline, Vec<StreamMuxEndpoint>), String> {
    let t = Duration::from_secs(30);
    let o = launch_options(opts, if server { "server" } else { "client" });
    let launched = if server { streaming_mux::server::launch(&o) } else { streaming_mux::client::launch(&o) };
    let p = launched.map_err(|e| e.to_string())?;
    crate::run::print_file_prefix(p.file_prefix());
    let ep = if server { streaming_mux::server::endpoints::perf(t) } else { streaming_mux::client::endpoints::perf(t) };
    Ok((p, vec![ep.map_err(|e| format!("endpoint: {e}"))?]))
}

/// The server process of `--connections`.
pub(super) fn run_server(opts: &Options, n: usize) -> Result<bool, String> {
    let ctl = ctl_path(&opts.socket);
    let _ = std::fs::remove_file(&ctl);
    let listener =
        std::os::unix::net::UnixListener::bind(&ctl).map_err(|e| format!("control socket {}: {e}", ctl.display()))?;
    set_faults(opts.faults(opts.seed.wrapping_add(1)));
    if opts.channel == ChannelKind::Streaming {
        let (pipeline, eps) = launch_streaming(opts, true)?;
        return serve_side(opts, n, listener, pipeline, eps);
    }
    let (pipeline, eps) = launch_reliable(opts, true)?;
    serve_side(opts, n, listener, pipeline, eps)
}

/// The server process once its pipeline runs: an application thread per listener, the control
/// conversation, the report.
fn serve_side<E: TableEnd>(
    opts: &Options,
    n: usize,
    listener: std::os::unix::net::UnixListener,
    pipeline: Pipeline,
    eps: Vec<E>,
) -> Result<bool, String> {
    let ctl = ctl_path(&opts.socket);
    super::take_over_signals();
    let rss_base = resident_bytes();
    let size = opts.size;
    // One application thread per listener (per lcore), each expecting its share of the connections.
    let shares = shares(n, eps.len());
    let mut apps = Vec::new();
    for (ep, share) in eps.into_iter().zip(shares) {
        let app = std::thread::Builder::new()
            .name("perf-app".to_owned())
            .spawn(move || serve(&ep, share, size))
            .map_err(|e| e.to_string())?;
        apps.push(app);
    }
    let conn = accept_within(&listener, Duration::from_secs(120));
    let _ = std::fs::remove_file(&ctl);
    let mut conn = conn.map_err(|e| format!("control socket: {e}"))?;
    let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
    let mut rss_idle = 0;
    // `idle`: the client has its connections; we measure and answer `measured`.
    // `eos`: the client is done.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map(|n| n == 0).unwrap_or(true) || line.trim() == "eos" {
            break;
        }
        if line.trim() == "idle" {
            // Measured once this side has every connection too (the last may still be on the wire).
            let deadline = StdInstant::now() + Duration::from_secs(10);
            while CONNECTED.load(Ordering::Relaxed) < n && StdInstant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            rss_idle = resident_bytes();
            let _ = writeln!(conn, "measured");
        }
    }
    APP_STOP.store(true, Ordering::Relaxed);
    let mut served = Served { rss_base, rss_idle, ..Served::default() };
    for app in apps {
        let one = app.join().map_err(|_| "the application thread panicked".to_owned())?;
        served.delivered += one.delivered;
        served.bad += one.bad;
        served.elapsed_ns = served.elapsed_ns.max(one.elapsed_ns);
        served.connected += one.connected;
        served.answered += one.answered;
        served.error = served.error.or(one.error);
    }
    stop_polling(&pipeline);
    let _ = writeln!(
        conn,
        "report delivered={} bad={} elapsed_ns={} rss_base={} rss_idle={} connected={} answered={} error={}",
        served.delivered,
        served.bad,
        served.elapsed_ns,
        served.rss_base,
        served.rss_idle,
        served.connected,
        served.answered,
        served.error.as_deref().unwrap_or("none").replace(' ', "_")
    );
    let mut rest = String::new();
    while reader.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
        rest.clear();
    }
    let reported = print_tables(&pipeline, "server");
    Ok(close(pipeline, "server") && served.error.is_none() && reported)
}

/// What the server's application saw.
#[derive(Debug, Default)]
struct Served {
    delivered: u64,
    bad: u64,
    elapsed_ns: u64,
    rss_base: u64,
    rss_idle: u64,
    connected: usize,
    answered: usize,
    error: Option<String>,
}

/// The server's application: check every message of every connection (reliable: each message's
/// size, number and pattern; stream: the bytes, digested in order), answer each connection's end with
/// its count and digest.
fn serve<E: TableEnd>(ep: &E, n: usize, size: usize) -> Served {
    let mut s = Served::default();
    let mut states = States::with_capacity(n);
    let (mut first, mut last) = (None, None);
    let mut answers: Vec<ConnHandle> = Vec::new();
    let mut gather: Vec<u8> = Vec::with_capacity(size);
    while !APP_STOP.load(Ordering::Relaxed) {
        // Answers that found no room are retried first.
        answers.retain(|&h| answer(ep, &mut states, h, size).is_err());
        let mut ended = None;
        let took = ep.take(Duration::from_millis(1), &mut gather, |h, seen| match seen {
            Seen::Connected => {
                states.insert(h);
                s.connected += 1;
                CONNECTED.fetch_add(1, Ordering::Relaxed);
            }
            Seen::End => ended = Some(h),
            Seen::Broken(why) => s.error = Some(format!("connection {} {why}", h.index())),
            Seen::Other => {}
            Seen::Data(bytes) => {
                let Some(st) = states.get(h) else {
                    s.bad += 1;
                    return;
                };
                let now = StdInstant::now();
                first.get_or_insert(now);
                last = Some(now);
                st.digest.update(bytes);
                if E::MESSAGES {
                    if bytes.len() != size || message_header(bytes).0 != st.count || !pattern_ok(bytes, st.count) {
                        s.bad += 1;
                    }
                    st.count += 1;
                    s.delivered += 1;
                } else {
                    st.bytes += bytes.len() as u64;
                }
            }
        });
        if let Err(e) = took {
            s.error = Some(format!("endpoint: {e}"));
            break;
        }
        if let Some(h) = ended {
            if answer(ep, &mut states, h, size).is_err() {
                answers.push(h);
            }
        }
    }
    s.answered = states.iter().filter(|st| st.done).count();
    if !E::MESSAGES {
        s.delivered = states.iter().map(|st| st.bytes / size as u64).sum();
        s.bad += states.iter().filter(|st| st.bytes % size as u64 != 0).count() as u64;
    }
    if let (Some(a), Some(b)) = (first, last) {
        s.elapsed_ns = b.duration_since(a).as_nanos() as u64;
    }
    s
}

/// Sends connection `h` its count (messages) and digest and ends it.
fn answer<E: TableEnd>(ep: &E, states: &mut States, h: ConnHandle, size: usize) -> Result<(), EndpointError> {
    let Some(st) = states.get(h) else { return Ok(()) };
    if st.done {
        return Ok(());
    }
    let count = if E::MESSAGES { st.count } else { st.bytes / size as u64 };
    let mut report = [0u8; REPORT_LEN];
    report[..8].copy_from_slice(&count.to_le_bytes());
    report[8..].copy_from_slice(&st.digest.value().to_le_bytes());
    if !ep.send_all(h, &report)? {
        return Err(EndpointError::WouldBlock);
    }
    st.done = true;
    ep.finish(h, Duration::from_secs(1))
}

/// The client process of `--connections`.
pub(super) fn run_client(opts: &Options, n: usize) -> Result<bool, String> {
    let ctl = connect_control(opts)?;
    set_faults(opts.faults(opts.seed));
    // The process is single-threaded here: no lcore or application thread runs yet.
    match opts.forge_rate {
        Some(r) => std::env::set_var(FORGE_ENV, r.to_string()),
        None => std::env::remove_var(FORGE_ENV),
    }
    if opts.channel == ChannelKind::Streaming {
        let (pipeline, eps) = launch_streaming(opts, false)?;
        return client_side(opts, n, ctl, pipeline, eps);
    }
    let (pipeline, eps) = launch_reliable(opts, false)?;
    client_side(opts, n, ctl, pipeline, eps)
}

/// The client process once its pipeline runs.
fn client_side<E: TableEnd>(
    opts: &Options,
    n: usize,
    mut ctl: UnixStream,
    pipeline: Pipeline,
    eps: Vec<E>,
) -> Result<bool, String> {
    super::take_over_signals();
    println!(
        "rosette-perf: channel={} connections={n} lcores={} size={} seconds={} over net_memif ({}), pipeline \
         perf_{}_mux{}.yaml",
        opts.channel.name(),
        opts.lcores,
        opts.size,
        opts.seconds,
        opts.socket.display(),
        opts.channel.name(),
        if opts.lcores == 2 { "_2q" } else { "" }
    );
    let out = drive_client(&eps, n, opts, &mut ctl);
    let _ = writeln!(ctl, "eos");
    let mut line = String::new();
    let _ = BufReader::new(ctl.try_clone().map_err(|e| e.to_string())?).read_line(&mut line);
    stop_polling(&pipeline);
    print_tables(&pipeline, "client");
    let clean = close(pipeline, "client");
    drop(ctl);
    report(opts, n, &out, &line).map(|ok| ok && clean)
}

/// What the client's application did.
#[derive(Debug, Default)]
struct Sent {
    sent: u64,
    /// Length of the sending phase (the flood's), seconds.
    send_seconds: f64,
    matched: usize,
    rss_base: u64,
    rss_idle: u64,
    error: Option<String>,
}

fn drive_client<E: TableEnd>(eps: &[E], n: usize, opts: &Options, ctl: &mut UnixStream) -> Sent {
    let mut out = Sent { rss_base: resident_bytes(), ..Sent::default() };
    let shares = shares(n, eps.len());
    let mut states: Vec<States> = shares.iter().map(|&k| States::with_capacity(k)).collect();
    let mut handles: Vec<(usize, ConnHandle)> = Vec::with_capacity(n);
    // 1. Open: each dialer opened one when it started; ask for the rest of its share.
    for (ep, &share) in eps.iter().zip(&shares) {
        for _ in 1..share {
            if let Err(e) = ep.open(Duration::from_secs(10)) {
                out.error = Some(format!("open: {e}"));
                return out;
            }
        }
    }
    let deadline = StdInstant::now() + Duration::from_secs(60);
    while handles.len() < n {
        if StdInstant::now() > deadline || INTERRUPTED.load(Ordering::Relaxed) {
            out.error = Some(format!("only {} of {n} connections were established", handles.len()));
            return out;
        }
        let mut got = false;
        let mut gather = Vec::new();
        for (i, ep) in eps.iter().enumerate() {
            let mut unexpected = None;
            let took = ep.take(Duration::ZERO, &mut gather, |h, seen| match seen {
                Seen::Connected => {
                    states[i].insert(h);
                    handles.push((i, h));
                }
                _ => unexpected = Some(h),
            });
            match took {
                Ok(t) => got |= t,
                Err(e) => {
                    out.error = Some(format!("endpoint: {e}"));
                    return out;
                }
            }
            if let Some(h) = unexpected {
                out.error = Some(format!("connection {} ended while connecting", h.index()));
                return out;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // 2. Idle: both sides measure (the server when it has them all too).
    std::thread::sleep(Duration::from_millis(200));
    out.rss_idle = resident_bytes();
    let mut answer = String::new();
    let measured = writeln!(ctl, "idle").is_ok()
        && ctl.try_clone().is_ok_and(|c| BufReader::new(c).read_line(&mut answer).is_ok())
        && answer.trim() == "measured";
    if !measured {
        out.error = Some("the server did not measure its idle connections".to_owned());
        return out;
    }
    // 3. Send: round-robin over every connection, a batch each per turn.
    let size = opts.size;
    let per_turn = batch(size, rosette::channel::conn::Config::default().mss);
    let start = StdInstant::now();
    let until = Duration::from_secs_f64(opts.seconds);
    FORGING.store(true, Ordering::Relaxed);
    let mut msg = vec![0u8; size];
    'send: while (opts.seconds == 0.0 || start.elapsed() < until) && !INTERRUPTED.load(Ordering::Relaxed) {
        let mut progress = false;
        for &(i, h) in &handles {
            let Some(st) = states[i].get(h) else { continue };
            for _ in 0..per_turn {
                fill_message(&mut msg, st.count, 0);
                match eps[i].send_all(h, &msg) {
                    Ok(true) => {
                        st.digest.update(&msg);
                        st.count += 1;
                        out.sent += 1;
                        progress = true;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        out.error = Some(format!("send: {e}"));
                        break 'send;
                    }
                }
            }
        }
        for (ep, st) in eps.iter().zip(states.iter_mut()) {
            if let Err(e) = drain(ep, st, &mut out) {
                out.error = Some(e);
                break 'send;
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    FORGING.store(false, Ordering::Relaxed);
    out.send_seconds = start.elapsed().as_secs_f64();
    // 4. Close every connection; the server answers each with what it received.
    for &(i, h) in &handles {
        if let Err(e) = eps[i].finish(h, Duration::from_secs(10)) {
            out.error.get_or_insert(format!("close: {e}"));
        }
    }
    let done = |states: &[States]| states.iter().map(|s| s.iter().filter(|c| c.done).count()).sum::<usize>();
    let deadline = StdInstant::now() + Duration::from_secs(60);
    while done(&states) < handles.len() && StdInstant::now() < deadline {
        for (ep, st) in eps.iter().zip(states.iter_mut()) {
            if let Err(e) = drain(ep, st, &mut out) {
                out.error.get_or_insert(e);
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    out.matched = states.iter().map(|s| s.iter().filter(|c| c.matched).count()).sum();
    out
}

/// Takes the client's deliveries: the server's per-connection reports (a stream may split one).
fn drain<E: TableEnd>(ep: &E, states: &mut States, out: &mut Sent) -> Result<(), String> {
    let mut gather = Vec::new();
    loop {
        let mut broken = None;
        let took = ep.take(Duration::ZERO, &mut gather, |h, seen| {
            let Some(st) = states.get(h) else { return };
            match seen {
                Seen::Data(bytes) if (st.bytes as usize) + bytes.len() <= REPORT_LEN && !st.done => {
                    let at = st.bytes as usize;
                    st.report[at..at + bytes.len()].copy_from_slice(bytes);
                    st.bytes += bytes.len() as u64;
                    if st.bytes as usize == REPORT_LEN {
                        let count = u64::from_le_bytes(st.report[..8].try_into().unwrap_or_default());
                        let digest = u64::from_le_bytes(st.report[8..].try_into().unwrap_or_default());
                        st.matched = count == st.count && digest == st.digest.value();
                        if !st.matched {
                            eprintln!(
                                "rosette-perf: connection {}: the server received {count} messages (digest \
                                 {digest:016x}), {} were sent (digest {:016x})",
                                h.index(),
                                st.count,
                                st.digest.value()
                            );
                        }
                        st.done = true;
                    }
                }
                Seen::Data(bytes) => {
                    out.error.get_or_insert(format!("connection {}: {} unexpected bytes", h.index(), bytes.len()));
                }
                // Once the server's report is in, how the connection ends does not matter.
                Seen::Broken(why) if !st.done => broken = Some(format!("connection {} {why}", h.index())),
                _ => {}
            }
        });
        match took {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(format!("endpoint: {e}")),
        }
        if let Some(e) = broken {
            return Err(e);
        }
    }
}

/// The server's answer to `eos`, parsed.
#[derive(Debug, Default)]
struct ServerLine {
    delivered: u64,
    bad: u64,
    elapsed_ns: u64,
    rss_base: u64,
    rss_idle: u64,
    connected: usize,
    error: Option<String>,
}

fn parse_line(line: &str) -> Option<ServerLine> {
    let mut r = ServerLine::default();
    for (k, v) in super::report_fields(line)? {
        match k {
            "delivered" => r.delivered = v.parse().ok()?,
            "bad" => r.bad = v.parse().ok()?,
            "elapsed_ns" => r.elapsed_ns = v.parse().ok()?,
            "rss_base" => r.rss_base = v.parse().ok()?,
            "rss_idle" => r.rss_idle = v.parse().ok()?,
            "connected" => r.connected = v.parse().ok()?,
            "error" if v != "none" => r.error = Some(v.replace('_', " ")),
            _ => {}
        }
    }
    Some(r)
}

/// Prints the result line; true when every connection's digest matched and nothing was lost.
fn report(opts: &Options, n: usize, out: &Sent, line: &str) -> Result<bool, String> {
    if let Some(e) = &out.error {
        eprintln!("rosette-perf: {e}");
    }
    let r = parse_line(line).ok_or("the server never answered end of stream (no report)")?;
    if let Some(e) = &r.error {
        eprintln!("rosette-perf server: {e}");
    }
    let per_conn = |base: u64, idle: u64| if idle > base { (idle - base) / n as u64 } else { 0 };
    let rate = r.delivered as f64 / (r.elapsed_ns as f64 / 1e9).max(1e-9);
    let ok = out.matched == n && r.delivered == out.sent && r.bad == 0 && out.error.is_none() && r.error.is_none();
    println!(
        "channel={} connections={n} lcores={} sent={} delivered={} bad={} digest={} digests_matched={} msgs_per_s={:.0} \
         ns_per_msg={:.1} server_rss_per_conn_bytes={} client_rss_per_conn_bytes={} size={} forged={} \
         forged_per_s={:.0}",
        opts.channel.name(),
        opts.lcores,
        out.sent,
        r.delivered,
        r.bad,
        if ok { "match" } else { "MISMATCH" },
        out.matched,
        rate,
        1e9 / rate.max(1e-9),
        per_conn(r.rss_base, r.rss_idle),
        per_conn(out.rss_base, out.rss_idle),
        opts.size,
        FORGED.load(Ordering::Relaxed),
        FORGED.load(Ordering::Relaxed) as f64 / out.send_seconds.max(1e-9)
    );
    if r.connected != n {
        eprintln!("rosette-perf: the server saw {} of {n} connections", r.connected);
    }
    Ok(ok)
}

/// Rounds of each kind `--forge-rate` runs.
const FORGE_ROUNDS: usize = 2;

/// `--forge-rate R`: the same transfer without and with the flood, in interleaved rounds; returns
/// the lines to print (the ratio of the median rates, flooded over undisturbed). A round whose
/// digests do not all match fails the whole comparison.
pub(super) fn compare_forged(opts: &Options) -> Result<Vec<String>, String> {
    let calm_opts = Options { forge_rate: None, ..opts.clone() };
    let (mut calm, mut flooded, mut forged) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..FORGE_ROUNDS {
        // Alternate which goes first, so a drift of the machine favours neither.
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for with_flood in order {
            let echo = if round == 0 { Echo::Live } else { Echo::Quiet };
            let f = run_child_pair(if with_flood { opts } else { &calm_opts }, echo)?;
            let rate: f64 = field(&f, "msgs_per_s")?;
            if with_flood {
                flooded.push(rate);
                forged.push(field::<f64>(&f, "forged_per_s")?);
            } else {
                calm.push(rate);
            }
        }
    }
    let list = |v: &[f64]| v.iter().map(|r| format!("{:.2}", r / 1e6)).collect::<Vec<_>>().join(" ");
    Ok(vec![
        format!(
            "undisturbed vs flooded, interleaved rounds: msgs_per_s (M) undisturbed {} | flooded {} (forged attempts per second: {})",
            list(&calm),
            list(&flooded),
            forged.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" ")
        ),
        format!("ratio flooded/undisturbed msgs_per_s: {:.2}", median(&flooded) / median(&calm).max(1e-9)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rosette::net::rss::source_port_for_queue;
    use std::net::{Ipv4Addr, SocketAddrV4};

    /// perf_reliable_mux_2q.yaml's dialers declare the source ports whose 4-tuples hash to their
    /// queues; if the hash or the addresses change, this says which ports to declare.
    #[test]
    fn the_declared_dialer_ports_hash_to_their_queues() {
        let (client, server) = (Ipv4Addr::new(10, 20, 0, 1), SocketAddrV4::new(Ipv4Addr::new(10, 20, 0, 2), 7100));
        assert_eq!(source_port_for_queue(client, server, 0, 2, 7100), Some(7101));
        assert_eq!(source_port_for_queue(client, server, 1, 2, 7100), Some(7100));
        let yaml = include_str!("../../perf_reliable_mux_2q.yaml");
        assert!(yaml.contains("port: 7101                  # hashes to queue 0"));
        assert!(yaml.contains("port: 7100                  # hashes to queue 1"));
    }

    #[test]
    fn shares_split_evenly() {
        assert_eq!(shares(5, 2), [3, 2]);
        assert_eq!(shares(4, 1), [4]);
    }
}
