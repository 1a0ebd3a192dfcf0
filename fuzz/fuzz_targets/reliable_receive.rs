//! Fuzz target: the reliable channel's receive path, fed an arbitrary mix of genuine packets from a
//! simulated peer (delivered, dropped, duplicated, reordered, damaged), raw garbage and forgeries,
//! with time jumps.
//!
//! Invariants: no panic; memory within the configured bounds; while no well-formed foreign packet
//! was injected, every delivered message is the peer's next message, exactly once and in order.
#![no_main]

#[path = "channel_common.rs"]
mod channel_common;

use std::collections::VecDeque;
use std::time::Duration;

use channel_common::{config, forge, message, message_packets, mutate, parses, pool, Records};
use libfuzzer_sys::fuzz_target;
use rosette_proto::buf::{PacketBuf, VecBuf};
use rosette_proto::channel::reliable::{Event, Reliable};
use rosette_proto::channel::time::Instant;

const MAX_QUEUE: usize = 64;

fn push(q: &mut VecDeque<VecBuf>, p: VecBuf) {
    if q.len() == MAX_QUEUE {
        q.pop_front();
    }
    q.push_back(p);
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::from_nanos(1_000);
    let cfg = config();
    let mut peer = Reliable::connect(cfg.clone(), pool(), 1, 1, now);
    let mut rx = Reliable::listen(cfg.clone(), pool(), 2, 1, now);
    let (mut to_rx, mut to_peer) = (VecDeque::new(), VecDeque::new());
    let (mut next_send, mut next_expect, mut forged) = (0usize, 0usize, false);
    for (op, body) in Records(data) {
        while next_send < 10_000
            && peer.send_space() >= message_packets(next_send)
            && peer.send(now, &message(next_send)).is_ok()
        {
            next_send += 1;
        }
        while let Some(p) = peer.poll_transmit(now) {
            push(&mut to_rx, p);
        }
        while let Some(p) = rx.poll_transmit(now) {
            push(&mut to_peer, p);
        }
        match op % 10 {
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
            match ev {
                Event::Message(m) => {
                    if !forged {
                        let mut got = Vec::new();
                        m.copy_to(&mut got);
                        assert_eq!(got, message(next_expect), "message {next_expect} corrupted");
                    }
                    next_expect += 1;
                }
                Event::Messages(packed) => {
                    for record in packed.iter() {
                        if !forged {
                            assert_eq!(record, &message(next_expect)[..], "packed message {next_expect} corrupted");
                        }
                        next_expect += 1;
                    }
                }
                Event::Reset(_) | Event::Failed => forged = true,
                _ => {}
            }
        }
        while peer.poll_event().is_some() {}
        assert!(rx.recv_held() <= cfg.recv_capacity);
        assert!(peer.send_queue_len() <= cfg.send_capacity + 1);
        if !forged {
            assert!(next_expect <= next_send, "delivered a message never sent");
        }
    }
});
