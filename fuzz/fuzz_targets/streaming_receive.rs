//! Fuzz target: the streaming channel's receive path, fed an arbitrary mix of genuine packets from
//! a simulated peer (delivered, dropped, duplicated, reordered, damaged), raw garbage and
//! forgeries, with time jumps and reads of arbitrary sizes.
//!
//! Invariants: no panic; memory within the configured bounds; while no well-formed foreign packet
//! was injected, every byte read is the peer's next byte (none lost, duplicated or invented).
#![no_main]

#[path = "channel_common.rs"]
mod channel_common;

use std::collections::VecDeque;
use std::time::Duration;

use channel_common::{config, forge, mutate, parses, pool, stream_byte, Records};
use libfuzzer_sys::fuzz_target;
use rosette_proto::buf::{PacketBuf, VecBuf};
use rosette_proto::channel::streaming::{Event, Stream};
use rosette_proto::channel::time::Instant;

const MAX_QUEUE: usize = 64;
const STREAM_LEN: usize = 100_000;

/// The peer's whole stream, built once (not per input).
fn source() -> &'static [u8] {
    static SOURCE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| (0..STREAM_LEN).map(stream_byte).collect())
}

fn push(q: &mut VecDeque<VecBuf>, p: VecBuf) {
    if q.len() == MAX_QUEUE {
        q.pop_front();
    }
    q.push_back(p);
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::from_nanos(1_000);
    let cfg = config();
    let mut peer = Stream::connect(cfg.clone(), pool(), 1, 1, now);
    let mut rx = Stream::listen(cfg.clone(), pool(), 2, 1, now);
    let (mut to_rx, mut to_peer) = (VecDeque::new(), VecDeque::new());
    let (mut sent, mut read, mut forged, mut finished) = (0usize, 0usize, false, false);
    let source = source();
    let mut buf = [0u8; 600];
    for (op, body) in Records(data) {
        if sent < STREAM_LEN {
            let end = (sent + 1 + usize::from(op) * 3).min(STREAM_LEN);
            if let Ok(n) = peer.write(now, &source[sent..end]) {
                sent += n;
            }
        } else if !finished {
            peer.finish(now);
            finished = true;
        }
        while let Some(p) = peer.poll_transmit(now) {
            push(&mut to_rx, p);
        }
        while let Some(p) = rx.poll_transmit(now) {
            push(&mut to_peer, p);
        }
        match op % 11 {
            0 | 1 => {
                if let Some(p) = to_rx.pop_front() {
                    rx.handle_datagram(now, p);
                }
            }
            2 => {
                if let Some(p) = to_peer.pop_front() {
                    peer.handle_datagram(now, p);
                }
            }
            3 => {
                to_rx.pop_front();
            }
            4 => {
                if let Some(p) = to_rx.front().cloned() {
                    push(&mut to_rx, p);
                }
            }
            5 => to_rx.rotate_left(usize::from(body.first().copied().unwrap_or(1)) % to_rx.len().max(1)),
            6 => {
                forged |= parses(body);
                rx.handle_datagram(now, VecBuf::from_slice(body));
            }
            7 => {
                if let Some(mut p) = to_rx.pop_front() {
                    let orig = p.data().to_vec();
                    mutate(&mut p, body);
                    forged |= p.data() != &orig[..] && parses(p.data());
                    rx.handle_datagram(now, p);
                }
            }
            8 => {
                if let Some(mut p) = to_rx.pop_front() {
                    let orig = p.data().to_vec();
                    forge(&mut p, body);
                    forged |= p.data() != &orig[..];
                    rx.handle_datagram(now, p);
                }
            }
            9 => {
                let want = usize::from(body.first().copied().unwrap_or(0)) * 2 + 1;
                let want = want.min(buf.len());
                if let Ok(n) = rx.read(&mut buf[..want]) {
                    if !forged {
                        assert!(read + n <= sent, "read bytes never written");
                        assert_eq!(&buf[..n], &source[read..read + n], "stream corrupted at {read}");
                    }
                    read += n;
                }
            }
            _ => {
                let step = body.iter().fold(0u64, |a, &b| a << 8 | u64::from(b)) % 3_000_000_000;
                now += Duration::from_nanos(step);
                if rx.poll_timeout().is_some_and(|t| t <= now) {
                    rx.handle_timeout(now);
                }
                if peer.poll_timeout().is_some_and(|t| t <= now) {
                    peer.handle_timeout(now);
                }
            }
        }
        while let Some(ev) = rx.poll_event() {
            if matches!(ev, Event::Reset(_) | Event::Failed) {
                forged = true;
            }
        }
        while peer.poll_event().is_some() {}
        assert!(rx.recv_held() <= cfg.recv_capacity);
        assert!(peer.send_queue_len() <= cfg.send_capacity + 1);
    }
});
