//! The network interface's receive path (`rosette_proto::net::Interface`), with sends, direct
//! framing and timer ticks mixed in, fed arbitrary frame sequences.
//!
//! Input: records of `[op: u8][len: u16 big-endian][len bytes]` (a short final record takes what is
//! left). `op % 5`: 0 = a received frame as is; 1 = a received frame "repaired" first (addressed to
//! us with correct IPv4 and UDP checksums, steered by the high bits of `op`, then optionally corrupted
//! in one byte) so that the fuzzer reaches delivery and near-miss corruption; 2 = a queued send of the
//! bytes as payload; 3 = the bytes framed directly (`frame_in_place`, or `write_header` into a separate
//! header when bit 7 is set); 4 = advance the virtual clock by `len` milliseconds.
//! Bit 6 of a receive op makes the socket refuse the datagram (a full receive queue).
//!
//! Invariants checked after every step:
//! - every datagram given to the socket is one an independent from-scratch receiver
//!   (fuzz/common/oracle.rs) accepts, with the same addresses, ports and payload bytes;
//! - `receive` reports a drop exactly when one drop counter moved, and that counter is the reason's;
//! - `received == delivered + arp_handled + rx drops`;
//! - every transmitted or directly framed frame is well-formed: ARP that parses, or UDP/IPv4 whose
//!   checksums verify and whose source is ours;
//! - the pending queue never exceeds its bound; `handle_timeout` leaves no due work.
#![no_main]

#[path = "../common/frames.rs"]
mod frames;
#[path = "../common/oracle.rs"]
mod oracle;

use frames::{check_transmitted, repair, ADDR, MAC, PORTS};

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use rosette_proto::buf::{BufPool, PacketBuf, Segments, VecBuf, VecPool};
use rosette_proto::channel::time::Instant;
use rosette_proto::net::{Config, Interface, HEADERS_LEN};
use rosette_proto::wire::ethernet;

const PENDING: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut config = Config::new(MAC, ADDR, &PORTS);
    config.pending_capacity = PENDING;
    config.arp_table_capacity = 4;
    config.tx_queue_capacity = 8;
    config.static_arp.push((Ipv4Addr::new(10, 99, 0, 9), ethernet::Address([2, 0, 0, 0, 0, 9])));
    let mut iface = Interface::new(config, VecPool::default().with_limit(64));
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
        // Destinations: a static entry, two unresolved hosts on the subnet, broadcast, off-link.
        let hosts = [9u8, 2, 3, 255];
        let dst_ip = match op >> 2 & 7 {
            7 => Ipv4Addr::new(192, 0, 2, 1),
            i => Ipv4Addr::new(10, 99, 0, hosts[usize::from(i) % hosts.len()]),
        };
        let port = PORTS[usize::from(op >> 5 & 1)];
        let dst = SocketAddrV4::new(dst_ip, 7);

        match op % 5 {
            0 | 1 => {
                let mut copy = bytes.to_vec();
                if op % 5 == 1 {
                    repair(op, &mut copy);
                }
                let refuse = op & 0x40 != 0;
                let before = iface.stats().rx_drops.clone();
                let mut delivered = 0;
                let res = iface.receive(now, VecBuf::from_slice(&copy), |d| {
                    delivered += 1;
                    let want = oracle::accept_udp(&copy).expect("delivered a datagram a correct receiver drops");
                    assert!(want.dst_mac == MAC.0 || want.dst_mac == [0xff; 6]);
                    assert_eq!(d.src, SocketAddrV4::new(want.src_ip.into(), want.src_port));
                    assert_eq!(d.dst, SocketAddrV4::new(want.dst_ip.into(), want.dst_port));
                    assert!(PORTS.contains(&want.dst_port));
                    assert_eq!(d.payload.data(), want.payload);
                    if refuse {
                        Err(d)
                    } else {
                        Ok(())
                    }
                });
                assert!(delivered <= 1);
                let after = &iface.stats().rx_drops;
                match res {
                    Ok(()) => assert_eq!(after, &before),
                    Err(reason) => {
                        assert_eq!(after.get(reason), before.get(reason) + 1);
                        assert_eq!(after.total(), before.total() + 1);
                    }
                }
            }
            2 => {
                let _ = iface.send(now, port, dst, VecBuf::from_slice(bytes));
            }
            3 => {
                let mut payload = VecBuf::from_slice(bytes);
                if op & 0x80 == 0 {
                    if iface.frame_in_place(now, &mut payload, port, dst) == HEADERS_LEN {
                        check_transmitted(payload.data());
                    } else {
                        assert_eq!(payload.data(), bytes, "a refused frame is untouched");
                    }
                } else if let Some(mut head) = VecPool::default().alloc() {
                    let hdr = head.append(HEADERS_LEN).expect("room for headers");
                    if iface.write_header(now, hdr, port, dst, payload.data()).is_ok() {
                        let frame = head.chain(payload).expect("room to chain");
                        // Header and payload are two segments, as a NIC gathers them on transmit.
                        let wire: Vec<u8> = Segments::new(&frame).flat_map(|s| s.iter().copied()).collect();
                        check_transmitted(&wire);
                    }
                }
            }
            _ => {
                now += Duration::from_millis(len as u64);
                iface.handle_timeout(now);
                if let Some(t) = iface.poll_timeout() {
                    assert!(t > now, "handle_timeout left due work");
                }
            }
        }
        while let Some(frame) = iface.poll_transmit(now) {
            check_transmitted(frame.data());
        }
        assert!(iface.pending_len() <= PENDING);
        let s = iface.stats();
        assert_eq!(s.received, s.delivered + s.arp_handled + s.rx_drops.total());
    }
});
