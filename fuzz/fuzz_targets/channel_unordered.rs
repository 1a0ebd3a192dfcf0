//! The unordered channel's receive path (with sends and timer ticks mixed in), fed arbitrary frame
//! sequences.
//!
//! Input: records of `[op: u8][len: u16 big-endian][len bytes]` (a short final record takes what is
//! left). `op % 4`: 0 = a received frame as is; 1 = a received frame "repaired" first (addressed to
//! us and given correct IPv4 and UDP checksums, as chosen by the high bits of `op`, then optionally
//! corrupted in one byte) so that the fuzzer reaches delivery and near-miss corruption, which random
//! bytes almost never do; 2 = a send of the bytes as payload to a destination picked from the op
//! byte; 3 = advance the virtual clock by `len` milliseconds and handle timeouts.
//!
//! Invariants checked after every step:
//! - every delivered datagram is one an independent from-scratch receiver (fuzz/common/oracle.rs)
//!   accepts — right MAC, IPv4 header checksum, not a fragment, UDP length and checksum — with the
//!   same addresses, ports and payload bytes;
//! - `received == delivered + arp_handled + rx drops`;
//! - every transmitted frame is well-formed: ARP that parses, or UDP/IPv4 whose checksums verify;
//! - the pending queue never exceeds its bound.
#![no_main]

#[path = "../common/frames.rs"]
mod frames;
#[path = "../common/oracle.rs"]
mod oracle;

use frames::{check_transmitted, repair, ADDR, MAC, PORTS};

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use rosette_proto::buf::{PacketBuf, VecBuf, VecPool};
use rosette_proto::channel::time::Instant;
use rosette_proto::channel::unordered::{Config, Event, UnorderedChannel};
use rosette_proto::wire::ethernet;

const PENDING: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut config = Config::new(MAC, ADDR, &PORTS);
    config.pending_capacity = PENDING;
    config.arp_table_capacity = 4;
    config.tx_queue_capacity = 8;
    config.event_queue_capacity = 8;
    config.static_arp.push((Ipv4Addr::new(10, 99, 0, 9), ethernet::Address([2, 0, 0, 0, 0, 9])));
    let mut ch = UnorderedChannel::new(config, VecPool::default().with_limit(64));
    let mut now = Instant::from_secs(1);
    let mut rest = data;

    while let Some((&op, tail)) = rest.split_first() {
        let len = match tail {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let tail = tail.get(2..).unwrap_or(&[]);
        let (bytes, next) = tail.split_at(len.min(tail.len()));
        rest = next;

        match op % 4 {
            0 | 1 => {
                let mut copy = bytes.to_vec();
                if op % 4 == 1 {
                    repair(op, &mut copy);
                }
                ch.handle_packet(now, VecBuf::from_slice(&copy));
                let mut delivered = 0;
                while let Some(Event::Datagram(d)) = ch.poll_event() {
                    delivered += 1;
                    let want = oracle::accept_udp(&copy).expect("delivered a datagram a correct receiver drops");
                    assert!(want.dst_mac == MAC.0 || want.dst_mac == [0xff; 6]);
                    assert_eq!(d.src, SocketAddrV4::new(want.src_ip.into(), want.src_port));
                    assert_eq!(d.dst, SocketAddrV4::new(want.dst_ip.into(), want.dst_port));
                    assert!(PORTS.contains(&want.dst_port));
                    assert_eq!(d.payload.data(), want.payload);
                }
                assert!(delivered <= 1);
            }
            2 => {
                // Destinations: a static entry, two unresolved hosts on the subnet, broadcast, off-link.
                let hosts = [9u8, 2, 3, 255];
                let dst_ip = match op >> 2 & 7 {
                    7 => Ipv4Addr::new(192, 0, 2, 1),
                    i => Ipv4Addr::new(10, 99, 0, hosts[usize::from(i) % hosts.len()]),
                };
                let port = PORTS[usize::from(op >> 5 & 1)];
                let _ = ch.send(now, port, SocketAddrV4::new(dst_ip, 7), VecBuf::from_slice(bytes));
            }
            _ => {
                now += Duration::from_millis(len as u64);
                ch.handle_timeout(now);
                if let Some(t) = ch.poll_timeout() {
                    assert!(t > now, "handle_timeout left due work");
                }
            }
        }
        while let Some(frame) = ch.poll_transmit(now) {
            check_transmitted(frame.data());
        }
        assert!(ch.pending_len() <= PENDING);
        let s = ch.stats();
        assert_eq!(s.received, s.delivered + s.arp_handled + s.rx_drops.total());
    }
});
