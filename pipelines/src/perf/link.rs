//! The link between the two `rosette-perf` processes: addresses, control frames (end-of-stream
//! handshake, raw-memif baseline frames), UDP encapsulation of channel datagrams, and receive-side
//! fault injection.
//!
//! Control and raw frames use a local experimental EtherType ([`CTRL_ETHERTYPE`]) so they never reach
//! a channel; channel traffic is Ethernet/IPv4/UDP.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::VecDeque;

use rosette::channel::fault::{Fate, FaultConfig, FaultInjector};
use rosette::channel::time::Instant;
use rosette::net::{Framer, FramerConfig, HEADERS_LEN};
use rosette::substrate::{Mbuf, Mempool};
use rosette::wire::ethernet;

/// EtherType of control and raw frames (IEEE 802 local experimental 1).
pub const CTRL_ETHERTYPE: u16 = 0x88b5;
/// Raw baseline: a data frame of the blast (counted, freed).
pub const KIND_RAW_DATA: u8 = 1;
/// Raw baseline: a ping, sent back as [`KIND_RAW_PONG`] in the same mbuf.
pub const KIND_RAW_PING: u8 = 2;
/// Raw baseline: the answer to a ping.
pub const KIND_RAW_PONG: u8 = 3;
/// End of stream: the sender is done; the receiver stops polling rx and answers [`KIND_EOS_ACK`].
pub const KIND_EOS: u8 = 4;
/// End of stream acknowledged, carrying the receiver's [`Report`].
pub const KIND_EOS_ACK: u8 = 5;

/// Offset of the kind byte in a control frame.
pub const KIND_OFFSET: usize = ethernet::HEADER_LEN;
/// Offset of the first u64 field of a control frame.
pub const FIELDS_OFFSET: usize = KIND_OFFSET + 1;

/// MAC address of the client (sending) side.
pub const CLIENT_MAC: ethernet::Address = ethernet::Address([0x02, 0, 0, 0x52, 0x50, 0x01]);
/// MAC address of the server (receiving) side.
pub const SERVER_MAC: ethernet::Address = ethernet::Address([0x02, 0, 0, 0x52, 0x50, 0x02]);
/// IPv4 address of the client side.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// IPv4 address of the server side.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// UDP port of both sides.
pub const UDP_PORT: u16 = 5201;
/// Ethernet + IPv4 + UDP header bytes.
pub const UDP_HEADERS_LEN: usize = HEADERS_LEN;

/// Which end of the link a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Sends the data, measures, prints the result.
    Client,
    /// Receives the data, echoes pings, reports at end of stream.
    Server,
}

impl Side {
    /// (our MAC, our IP, peer MAC, peer IP).
    pub fn addresses(self) -> (ethernet::Address, Ipv4Addr, ethernet::Address, Ipv4Addr) {
        match self {
            Side::Client => (CLIENT_MAC, CLIENT_IP, SERVER_MAC, SERVER_IP),
            Side::Server => (SERVER_MAC, SERVER_IP, CLIENT_MAC, CLIENT_IP),
        }
    }

    /// The peer's UDP endpoint.
    pub fn peer(self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addresses().3, UDP_PORT)
    }
}

/// The receiver's account of the run, carried in the [`KIND_EOS_ACK`] frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Messages delivered (unique, pings excluded).
    pub delivered: u64,
    /// [`super::stats::Digest`] of the delivered bytes in order (reliable, streaming).
    pub digest: u64,
    /// Delivered messages whose content did not match their sequence number.
    pub bad: u64,
    /// Duplicate deliveries (unordered).
    pub duplicates: u64,
    /// One-way latency under load, median, ns.
    pub owd_p50_ns: u64,
    /// One-way latency under load, 99th percentile, ns.
    pub owd_p99_ns: u64,
    /// Non-zero when the receiver's channel failed or was reset.
    pub failed: u64,
}

const REPORT_FIELDS: usize = 7;

impl Report {
    fn fields(&self) -> [u64; REPORT_FIELDS] {
        [self.delivered, self.digest, self.bad, self.duplicates, self.owd_p50_ns, self.owd_p99_ns, self.failed]
    }

    /// Parses the fields of an EOS_ACK frame.
    pub fn parse(frame: &[u8]) -> Option<Report> {
        let mut f = [0u64; REPORT_FIELDS];
        for (i, v) in f.iter_mut().enumerate() {
            let at = FIELDS_OFFSET + 8 * i;
            *v = u64::from_le_bytes(frame.get(at..at + 8)?.try_into().ok()?);
        }
        Some(Report {
            delivered: f[0],
            digest: f[1],
            bad: f[2],
            duplicates: f[3],
            owd_p50_ns: f[4],
            owd_p99_ns: f[5],
            failed: f[6],
        })
    }
}

/// The EtherType of a frame, or 0 when it is too short.
#[inline]
pub fn ethertype(frame: &[u8]) -> u16 {
    match frame.get(12..14) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => 0,
    }
}

/// The kind byte of a control frame.
#[inline]
pub fn ctrl_kind(frame: &[u8]) -> u8 {
    frame.get(KIND_OFFSET).copied().unwrap_or(0)
}

/// Builds a control frame of `len` bytes (at least the kind byte and `fields`) in a fresh mbuf.
pub fn ctrl_frame(pool: &Mempool, side: Side, kind: u8, fields: &[u64], len: usize) -> Option<Mbuf> {
    let (src, _, dst, _) = side.addresses();
    let len = len.max(FIELDS_OFFSET + 8 * fields.len());
    let mut m = pool.alloc()?;
    let data = m.append(len).ok()?;
    let eth = ethernet::Repr { src_addr: src, dst_addr: dst, ethertype: ethernet::EtherType::from(CTRL_ETHERTYPE) };
    eth.emit(&mut ethernet::Packet::new_unchecked(&mut data[..]));
    data[KIND_OFFSET] = kind;
    for (i, v) in fields.iter().enumerate() {
        let at = FIELDS_OFFSET + 8 * i;
        data[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    Some(m)
}

/// The end-of-stream acknowledgement carrying `report`.
pub fn eos_ack(pool: &Mempool, report: &Report) -> Option<Mbuf> {
    ctrl_frame(pool, Side::Server, KIND_EOS_ACK, &report.fields(), 0)
}

/// Puts Ethernet/IPv4/UDP headers in front of channel datagrams, without copying them, with the one
/// header writer ([`Framer`], default configuration: TTL 64, DF, both checksums).
///
/// An unshared datagram with enough headroom gets the headers prepended in place. A shared one (the
/// reliable and streaming channels keep every data packet for retransmission and hand out a second
/// reference) cannot be written, so the headers go in a fresh mbuf and the datagram is chained behind
/// it as the second segment; the memif PMD gathers both segments when it copies into its ring.
pub struct UdpEncap {
    framer: Framer,
    dst_mac: ethernet::Address,
    dst: SocketAddrV4,
    pool: Mempool,
}

impl UdpEncap {
    /// Headers from `side`'s addresses to its peer.
    pub fn new(side: Side, pool: Mempool) -> UdpEncap {
        let (src_mac, src_ip, dst_mac, dst_ip) = side.addresses();
        UdpEncap {
            framer: Framer::new(FramerConfig::new(src_mac, src_ip), 0),
            dst_mac,
            dst: SocketAddrV4::new(dst_ip, UDP_PORT),
            pool,
        }
    }

    /// Prepends the headers to `dgram` in place when it has the headroom and is not shared; returns
    /// the bytes prepended (0 when it could not). For [`Reliable::poll_transmit_with`].
    ///
    /// [`Reliable::poll_transmit_with`]: rosette::channel::reliable::Reliable::poll_transmit_with
    #[inline]
    pub fn encap_in_place(&mut self, dgram: &mut Mbuf) -> usize {
        match self.framer.prepend(dgram, self.dst_mac, UDP_PORT, self.dst) {
            Ok(()) => UDP_HEADERS_LEN,
            Err(_) => 0,
        }
    }

    /// The datagram as a frame, or `None` when no header mbuf could be had or the datagram is itself
    /// a chain (it is dropped, as a full NIC queue would; the channel retransmits).
    #[inline]
    pub fn encap(&mut self, mut dgram: Mbuf) -> Option<Mbuf> {
        if self.encap_in_place(&mut dgram) > 0 {
            return Some(dgram);
        }
        if !dgram.is_contiguous() {
            return None;
        }
        let mut head = self.pool.alloc()?;
        let hdr = head.append(UDP_HEADERS_LEN).ok()?;
        self.framer.write_header(hdr, self.dst_mac, UDP_PORT, self.dst, dgram.data()).ok()?;
        head.chain(dgram).ok()
    }
}

/// Receive-side fault injection (`--loss`, `--reorder`, `--duplicate`, `--corrupt`), seeded.
///
/// Reordered frames wait in a bounded queue until their delay is over. A duplicate is a copy made
/// here (fault path only): the injector's own duplicate is a second reference to the same mbuf, and
/// a shared mbuf cannot have its headers stripped by the receiving channel.
pub struct RxFaults {
    injector: Option<FaultInjector>,
    held: VecDeque<(Instant, Mbuf)>,
    pool: Mempool,
}

/// Frames held back for reordering at most; beyond it, reordered frames go through undelayed.
const HELD_CAPACITY: usize = 1024;

impl RxFaults {
    /// Faults from the per-million rates (all zero disables injection entirely).
    pub fn new(seed: u64, cfg: Option<FaultConfig>, pool: Mempool) -> RxFaults {
        RxFaults {
            injector: cfg.map(|c| FaultInjector::new(seed, c)),
            held: VecDeque::with_capacity(HELD_CAPACITY),
            pool,
        }
    }

    /// Passes `frame` through the injector; whatever survives now goes to `deliver`.
    #[inline]
    pub fn apply(&mut self, now: Instant, frame: Mbuf, mut deliver: impl FnMut(Mbuf)) {
        let Some(inj) = self.injector.as_mut() else {
            deliver(frame);
            return;
        };
        let Fate::Deliver { buf, delay, duplicate } = inj.apply(now, frame) else {
            return;
        };
        let copy = duplicate.and_then(|shared| {
            let mut c = self.pool.alloc()?;
            c.append(shared.data_len()).ok()?.copy_from_slice(shared.data());
            Some(c)
        });
        if delay > Duration::ZERO && self.held.len() < HELD_CAPACITY {
            self.held.push_back((now + delay, buf));
        } else {
            deliver(buf);
        }
        if let Some(c) = copy {
            deliver(c);
        }
    }

    /// Delivers the held frames whose delay is over.
    #[inline]
    pub fn release_due(&mut self, now: Instant, mut deliver: impl FnMut(Mbuf)) {
        if self.held.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 <= now {
                if let Some((_, m)) = self.held.remove(i) {
                    deliver(m);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Delivers every held frame now (end of stream).
    pub fn flush(&mut self, mut deliver: impl FnMut(Mbuf)) {
        while let Some((_, m)) = self.held.pop_front() {
            deliver(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_field_layout() {
        let r = Report { delivered: 5, digest: 77, bad: 1, duplicates: 2, owd_p50_ns: 3, owd_p99_ns: 4, failed: 0 };
        let mut frame = vec![0u8; FIELDS_OFFSET];
        for v in r.fields() {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(Report::parse(&frame), Some(r));
        assert_eq!(Report::parse(&frame[..20]), None);
    }
}
