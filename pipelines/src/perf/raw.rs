//! The `raw-memif` baseline: the same perf messages over the same memif link with no protocol at all.
//!
//! `perf_raw.yaml` declares it like rosette's own runs (a client and a server document, the same
//! ports, lcores and burst), with [`RawSource`] and [`RawSink`] as the only stages. The frames have
//! the shape of rosette's data packets: a 78-byte header zone (the size of Ethernet + IPv4 + UDP + the
//! channel header, written from a template, never interpreted) and then the messages packed as records
//! ([`rosette::wire::packed`]) up to the channel's default mss — the same bytes per frame, so the
//! baseline's payload bytes per second compare directly with rosette's. What the application does per
//! message is the same as [`super::app`]'s: the sender writes each message in place with its number
//! and a clock stamp, the receiver checks its pattern, folds it into the digest and records its one-way
//! latency. What the baseline leaves out is everything a transport does: acknowledgements, windows,
//! retransmission, checksums, connection state. A frame the memif ring refuses is lost (the generated
//! loop drops what tx refuses), so the receiver's count is what is reported.
//!
//! Round trips: a ping frame (one record, marked in the header) is sent back by the server's stage as
//! it is; the client measures the time until it returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rosette::channel::conn::Config as ConnConfig;
use rosette::pipeline::params::NoParams;
use rosette::pipeline::{BuildError, Context, Stage, StageEnv, Verdict};
use rosette::substrate::{Batch, Mbuf, Mempool};
use rosette::wire::packed::{emit_record, record_len, Records};

use super::app::{now_ns, stamp_for, ClientOutcome, ClientPlan, Progress, ServerReport};
use super::lcore::{publish, Outcome, Plan, PLAN};
use super::stats::{fill_message, message_header, pattern_ok, Digest, Histogram, MSG_HEADER_LEN, PING_FLAG};

/// Bytes before the records: what Ethernet, IPv4, UDP and the channel header take in rosette's packets.
pub const HEADER_ZONE: usize = 14 + 20 + 8 + rosette::wire::transport::HEADER_LEN;
/// Offset of the frame kind in the header zone (after the Ethernet header).
const KIND: usize = 14;
const KIND_DATA: u8 = 0;
const KIND_PING: u8 = 1;

/// Record bytes per frame: the channel's default mss.
pub fn payload_per_frame() -> usize {
    ConnConfig::default().mss
}

/// Messages of `size` bytes per frame (0 when one does not fit: the baseline then does not run).
pub fn messages_per_frame(size: usize) -> usize {
    payload_per_frame() / record_len(size)
}

fn header_template() -> [u8; HEADER_ZONE] {
    let mut h = [0u8; HEADER_ZONE];
    h[..6].copy_from_slice(&[0x02, 0, 0, 0, 0x20, 0x02]);
    h[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x20, 0x01]);
    // IEEE 802 local experimental EtherType: nobody parses these frames as IP.
    h[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    h
}

fn take_plan() -> Option<Plan> {
    PLAN.lock().unwrap_or_else(|p| p.into_inner()).take()
}

enum SourcePhase {
    Sending,
    /// Frames in flight settle before the pings.
    Settling(Instant),
    Ping {
        round: u32,
        t0: u64,
        sent_at: Option<Instant>,
    },
    Done,
}

/// The sender of the raw baseline.
pub struct RawSource {
    plan: ClientPlan,
    interrupted: &'static AtomicBool,
    progress: Arc<Progress>,
    pool: Option<Mempool>,
    template: [u8; HEADER_ZONE],
    per_frame: usize,
    seq: u64,
    digest: Digest,
    start: Option<Instant>,
    phase: SourcePhase,
    out: ClientOutcome,
    published: bool,
}

impl rosette::pipeline::DeclaredStage for RawSource {
    type Params = NoParams;
    fn build(_: NoParams, env: &StageEnv) -> Result<Self, BuildError> {
        let Some(Plan::Client { plan, interrupted, progress, .. }) = take_plan() else {
            return Err(BuildError::new("the raw baseline's source runs only with a client plan"));
        };
        let per_frame = messages_per_frame(plan.size);
        if per_frame == 0 {
            return Err(BuildError::new(format!("{}-byte messages do not fit one raw frame", plan.size)));
        }
        Ok(RawSource {
            plan,
            interrupted,
            progress,
            pool: env.pool.clone(),
            template: header_template(),
            per_frame,
            seq: 0,
            digest: Digest::new(),
            start: None,
            phase: SourcePhase::Sending,
            out: ClientOutcome::empty(),
            published: false,
        })
    }
}

impl RawSource {
    /// One frame of `count` messages starting at `first` (data) or one ping record.
    fn frame(&mut self, kind: u8, count: usize, first: u64) -> Option<Mbuf> {
        let size = self.plan.size;
        let mut m = self.pool.as_ref()?.alloc()?;
        let bytes = m.append(HEADER_ZONE + count * record_len(size)).ok()?;
        let (head, mut rest) = bytes.split_at_mut(HEADER_ZONE);
        head.copy_from_slice(&self.template);
        head[KIND] = kind;
        for i in 0..count as u64 {
            let (record, tail) = rest.split_at_mut(record_len(size));
            let body = emit_record(record, size).ok()?;
            let seq = first + i;
            fill_message(body, seq, if kind == KIND_PING { now_ns() } else { stamp_for(seq) });
            if kind == KIND_DATA {
                self.digest.update(body);
            }
            rest = tail;
        }
        Some(m)
    }

    fn outcome(&mut self) -> &mut ClientOutcome {
        &mut self.out
    }

    fn finish(&mut self) {
        self.phase = SourcePhase::Done;
        self.progress.phase.store(2, Ordering::Relaxed);
        if !self.published {
            self.published = true;
            publish(Ok(Outcome::Client(std::mem::replace(&mut self.out, ClientOutcome::empty()))));
        }
    }
}

impl Stage for RawSource {
    #[inline]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        if let SourcePhase::Ping { round, t0, sent_at: Some(_) } = self.phase {
            let data = packet.data();
            let id = PING_FLAG | u64::from(round);
            let echoed = data.len() >= HEADER_ZONE + record_len(MSG_HEADER_LEN)
                && data[KIND] == KIND_PING
                && message_header(&data[HEADER_ZONE + 2..]).0 == id;
            if echoed {
                let rtt = now_ns().saturating_sub(t0);
                self.outcome().rtt.record(rtt);
                self.phase = SourcePhase::Ping { round: round + 1, t0: 0, sent_at: None };
            }
        }
        drop(packet);
        Verdict::Taken
    }

    fn emit(&mut self, out: &mut Batch<'_>, _cx: &Context) {
        match self.phase {
            SourcePhase::Sending => {
                let start = *self.start.get_or_insert_with(Instant::now);
                let over = self.interrupted.load(Ordering::Relaxed)
                    || (self.plan.seconds > 0.0 && start.elapsed().as_secs_f64() >= self.plan.seconds);
                if over {
                    let (seq, digest, elapsed) = (self.seq, self.digest.value(), start.elapsed().as_secs_f64());
                    let o = self.outcome();
                    (o.sent, o.digest, o.elapsed) = (seq, digest, elapsed);
                    self.progress.phase.store(1, Ordering::Relaxed);
                    self.phase = SourcePhase::Settling(Instant::now() + Duration::from_millis(20));
                    return;
                }
                while out.len() < out.capacity() {
                    let (count, first) = (self.per_frame, self.seq);
                    let Some(m) = self.frame(KIND_DATA, count, first) else { break };
                    if out.push(m).is_err() {
                        break;
                    }
                    self.seq += count as u64;
                }
                self.progress.sent.store(self.seq, Ordering::Relaxed);
            }
            SourcePhase::Settling(until) => {
                if Instant::now() >= until {
                    self.phase = SourcePhase::Ping { round: 0, t0: 0, sent_at: None };
                }
            }
            SourcePhase::Ping { round, sent_at, .. } => {
                if round >= self.plan.pings {
                    return self.finish();
                }
                match sent_at {
                    None => {
                        let t0 = now_ns();
                        if let Some(m) = self.frame(KIND_PING, 1, PING_FLAG | u64::from(round)) {
                            if out.push(m).is_ok() {
                                self.phase = SourcePhase::Ping { round, t0, sent_at: Some(Instant::now()) };
                            }
                        }
                    }
                    Some(at) if at.elapsed() > Duration::from_millis(50) => {
                        self.outcome().pings_lost += 1;
                        self.phase = SourcePhase::Ping { round: round + 1, t0: 0, sent_at: None };
                    }
                    Some(_) => {}
                }
            }
            SourcePhase::Done => {}
        }
    }

    fn finish(&mut self, _cx: &Context) {
        if !self.published {
            self.outcome().error.get_or_insert_with(|| "the loop stopped before the run ended".to_owned());
            RawSource::finish(self);
        }
    }
}

/// The receiver of the raw baseline: checks and counts every message, sends pings back as they are.
pub struct RawSink {
    size: usize,
    stop: &'static AtomicBool,
    digest: Digest,
    report: Option<ServerReport>,
}

impl rosette::pipeline::DeclaredStage for RawSink {
    type Params = NoParams;
    fn build(_: NoParams, _env: &StageEnv) -> Result<Self, BuildError> {
        let Some(Plan::Server { size, stop, .. }) = take_plan() else {
            return Err(BuildError::new("the raw baseline's sink runs only with a server plan"));
        };
        let report =
            ServerReport { delivered: 0, bad: 0, duplicates: 0, digest: 0, owd: Histogram::new(), error: None };
        Ok(RawSink { size, stop, digest: Digest::new(), report: Some(report) })
    }
}

impl RawSink {
    fn publish(&mut self) {
        if let Some(mut r) = self.report.take() {
            r.digest = self.digest.value();
            publish(Ok(Outcome::Server(r)));
        }
    }
}

impl Stage for RawSink {
    #[inline]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        let Some(r) = self.report.as_mut() else { return Verdict::Taken };
        let data = packet.data();
        if data.len() < HEADER_ZONE {
            r.bad += 1;
            return Verdict::Dropped;
        }
        if data[KIND] == KIND_PING {
            return Verdict::Pass(packet);
        }
        let Ok(records) = Records::new_checked(&data[HEADER_ZONE..]) else {
            r.bad += 1;
            return Verdict::Dropped;
        };
        for m in records {
            if m.len() != self.size {
                r.bad += 1;
                continue;
            }
            let (seq, stamp) = message_header(m);
            if !pattern_ok(m, seq) {
                r.bad += 1;
                continue;
            }
            self.digest.update(m);
            r.delivered += 1;
            if stamp != 0 {
                r.owd.record(now_ns().saturating_sub(stamp));
            }
        }
        drop(packet);
        Verdict::Taken
    }

    fn emit(&mut self, _out: &mut Batch<'_>, _cx: &Context) {
        if self.report.is_some() && self.stop.load(Ordering::Relaxed) {
            self.publish();
        }
    }

    fn finish(&mut self, _cx: &Context) {
        self.publish();
    }
}
