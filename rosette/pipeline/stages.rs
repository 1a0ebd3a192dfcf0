//! Stock stages: small, allocation-free building blocks for pipelines and benchmarks.
//!
//! Every stage implements [`DeclaredStage`](super::DeclaredStage) with a documented params type (in
//! [`super::params::stock`]) and has a short name for declarations: `{ type: parse_udp, params: {
//! verify_udp_checksum: true } }` is checked at compile time and built with
//! `<ParseUdp as DeclaredStage>::build(ParseUdpParams { .. }, &env)`. Run-time state sits in a public
//! `state` field of an opaque type.

use super::{Context, Stage, Verdict};
use crate::substrate::{Batch, Mbuf};

/// Passes `packet` on when `keep` holds, else drops (frees) it.
#[inline(always)]
fn keep_if(packet: Mbuf, keep: bool) -> Verdict {
    if keep {
        Verdict::Pass(packet)
    } else {
        Verdict::Dropped
    }
}

/// Swaps source and destination MAC addresses of every frame: a reflector. Frames shorter than an
/// Ethernet header are dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacSwap;

impl MacSwap {
    /// The stage.
    pub const fn new() -> Self {
        MacSwap
    }
}

impl Stage for MacSwap {
    #[inline]
    fn on_packet(&mut self, mut packet: Mbuf, _cx: &Context) -> Verdict {
        let data = packet.data_mut();
        if data.len() < 14 {
            return Verdict::Dropped;
        }
        let (dst, rest) = data.split_at_mut(6);
        dst.swap_with_slice(&mut rest[..6]);
        Verdict::Pass(packet)
    }
}

/// Passes everything on unchanged and counts packets and bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count {
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
}

impl Count {
    /// A counter at zero.
    pub const fn new() -> Self {
        Count { packets: 0, bytes: 0 }
    }
}

impl Stage for Count {
    #[inline]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        self.packets += 1;
        self.bytes += packet.pkt_len() as u64;
        Verdict::Pass(packet)
    }

    /// A copy of itself ([`Count`]).
    fn report(&self) -> Option<super::StageReport> {
        Some(super::StageReport::new(*self))
    }
}

/// Drops every packet (a sink).
#[derive(Debug, Clone, Copy, Default)]
pub struct DropAll;

impl DropAll {
    /// The stage.
    pub const fn new() -> Self {
        DropAll
    }
}

impl Stage for DropAll {
    #[inline]
    fn on_packet(&mut self, _packet: Mbuf, _cx: &Context) -> Verdict {
        Verdict::Dropped
    }
}

/// Parses Ethernet/IPv4/UDP and drops what is not a valid UDP datagram: a short frame, a non-IPv4
/// EtherType, a bad IPv4 version/length/header checksum, a fragment, another protocol, a bad UDP length,
/// and — when `verify_udp_checksum` — a bad UDP checksum. Later stages may then assume a valid
/// Ethernet/IPv4/UDP packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseUdp {
    /// Also verify the UDP checksum (reads the whole payload). Default: false.
    pub verify_udp_checksum: bool,
}

impl ParseUdp {
    /// The stage; `verify_udp_checksum` also checks the UDP checksum (it reads the whole payload).
    pub const fn new(verify_udp_checksum: bool) -> Self {
        ParseUdp { verify_udp_checksum }
    }

    /// Whether `frame` is a valid Ethernet/IPv4/UDP datagram.
    #[inline]
    pub fn accepts(&self, frame: &[u8]) -> bool {
        use crate::wire::{ethernet, ipv4, udp};
        let Ok(eth) = ethernet::Packet::new_checked(frame) else { return false };
        if eth.ethertype() != ethernet::EtherType::Ipv4 {
            return false;
        }
        let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else { return false };
        if ip.version() != 4 || ip.is_fragment() || ip.protocol() != ipv4::Protocol::Udp || !ip.verify_checksum() {
            return false;
        }
        let Ok(datagram) = udp::Packet::new_checked(ip.payload()) else { return false };
        !self.verify_udp_checksum || datagram.verify_checksum(ip.src_addr(), ip.dst_addr())
    }
}

impl Stage for ParseUdp {
    #[inline]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        let ok = self.accepts(packet.data());
        keep_if(packet, ok)
    }
}

/// Byte offset of the UDP header in an Ethernet/IPv4 frame already validated by [`ParseUdp`].
#[inline]
fn udp_offset(frame: &[u8]) -> Option<usize> {
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    Some(14 + ihl)
}

/// Drops UDP datagrams sent to one destination port (a filter rule); everything else passes. Expects
/// packets validated by [`ParseUdp`]; anything too short to hold a UDP header is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropUdpPort {
    /// The destination port to drop.
    pub port: u16,
}

impl DropUdpPort {
    /// Drops datagrams whose destination port is `port`.
    pub const fn new(port: u16) -> Self {
        DropUdpPort { port }
    }

    /// Whether the frame passes the rule.
    #[inline]
    pub fn passes(&self, frame: &[u8]) -> bool {
        match udp_offset(frame).and_then(|o| frame.get(o + 2..o + 4)) {
            Some(port) => u16::from_be_bytes([port[0], port[1]]) != self.port,
            None => false,
        }
    }
}

impl Stage for DropUdpPort {
    #[inline]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        let ok = self.passes(packet.data());
        keep_if(packet, ok)
    }
}

/// Rewrites the Ethernet addresses of every frame (the L2 rewrite of a forwarder). Frames shorter than
/// an Ethernet header are dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetMacs {
    /// Source address, as a 48-bit number (`0x02_00_00_00_00_11` is 02:00:00:00:00:11).
    pub src: u64,
    /// Destination address, as a 48-bit number.
    pub dst: u64,
}

/// The six bytes of a MAC address written as a 48-bit number.
const fn mac_bytes(mac: u64) -> [u8; 6] {
    let b = mac.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// A MAC address as a 48-bit number.
const fn mac_number(m: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

impl SetMacs {
    /// Sets source `src` and destination `dst`.
    pub const fn new(src: [u8; 6], dst: [u8; 6]) -> Self {
        SetMacs { src: mac_number(src), dst: mac_number(dst) }
    }

    /// Rewrites one frame; false when it is too short.
    #[inline]
    pub fn rewrite(&self, frame: &mut [u8]) -> bool {
        if frame.len() < 14 {
            return false;
        }
        frame[..6].copy_from_slice(&mac_bytes(self.dst));
        frame[6..12].copy_from_slice(&mac_bytes(self.src));
        true
    }
}

impl Stage for SetMacs {
    #[inline]
    fn on_packet(&mut self, mut packet: Mbuf, _cx: &Context) -> Verdict {
        let ok = self.rewrite(packet.data_mut());
        keep_if(packet, ok)
    }
}

/// A traffic source: on its first polls it adds `count` copies of a valid Ethernet/IPv4/UDP datagram
/// (from `10.0.0.1:1024` to `10.0.0.2:<dst_port>`, `payload_len` bytes) to the loop, allocated from the
/// lcore's pool, a burst's worth at a time. Useful to start a closed loop over a ring port.
#[derive(Debug, Clone, Copy, Default)]
pub struct InjectUdp {
    /// Datagrams to inject in all.
    pub count: u32,
    /// Payload bytes per datagram.
    pub payload_len: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// How many were injected so far.
    pub state: InjectState,
}

/// Run-time state of [`InjectUdp`].
#[derive(Debug, Clone, Copy, Default)]
pub struct InjectState {
    injected: u32,
}

impl InjectUdp {
    /// Injects `count` datagrams of `payload_len` bytes to UDP port `dst_port`.
    pub const fn new(count: u32, payload_len: u16, dst_port: u16) -> Self {
        InjectUdp { count, payload_len, dst_port, state: InjectState { injected: 0 } }
    }

    /// Writes one datagram into `frame` (which must be `42 + payload_len` bytes), its headers by the
    /// one header writer ([`crate::net::Framer`], default configuration), its IPv4 identification the
    /// low 16 bits of `seq`.
    pub fn build(frame: &mut [u8], dst_port: u16, seq: u32) {
        use crate::net::{Framer, FramerConfig, HEADERS_LEN};
        use crate::wire::{ethernet, ipv4};
        let (hdr, payload) = frame.split_at_mut(HEADERS_LEN);
        for (i, b) in payload.iter_mut().enumerate() {
            *b = (i as u32 ^ seq) as u8;
        }
        let src = FramerConfig::new(ethernet::Address([2, 0, 0, 0, 0, 1]), ipv4::Address::new(10, 0, 0, 1));
        let dst = core::net::SocketAddrV4::new(ipv4::Address::new(10, 0, 0, 2), dst_port);
        // A frame too large for a 16-bit IPv4 length is left unwritten (an mbuf never holds one).
        let _ =
            Framer::new(src, seq as u16).write_header(hdr, ethernet::Address([2, 0, 0, 0, 0, 2]), 1024, dst, payload);
    }
}

impl Stage for InjectUdp {
    #[inline(always)]
    fn on_packet(&mut self, packet: Mbuf, _cx: &Context) -> Verdict {
        Verdict::Pass(packet)
    }

    #[inline]
    fn emit(&mut self, out: &mut Batch<'_>, cx: &Context) {
        if self.state.injected >= self.count {
            return;
        }
        let Some(pool) = cx.pool() else { return };
        while self.state.injected < self.count && out.len() < out.capacity() {
            let Some(mut m) = pool.alloc() else { return };
            let Ok(frame) = m.append(42 + usize::from(self.payload_len)) else { return };
            InjectUdp::build(frame, self.dst_port, self.state.injected);
            if out.push(m).is_err() {
                return;
            }
            self.state.injected += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(dst_port: u16) -> Vec<u8> {
        let mut frame = vec![0u8; 42 + 18];
        InjectUdp::build(&mut frame, dst_port, 7);
        frame
    }

    #[test]
    fn built_datagrams_parse_with_checksums() {
        let frame = datagram(9000);
        assert!(ParseUdp::new(true).accepts(&frame));
    }

    #[test]
    fn parse_rejects_corruption_truncation_and_other_protocols() {
        let parse = ParseUdp::new(true);
        let mut corrupt = datagram(9000);
        corrupt[50] ^= 0xff;
        assert!(!parse.accepts(&corrupt), "UDP checksum not verified");
        assert!(ParseUdp::new(false).accepts(&corrupt), "without UDP checksum check the payload is not read");
        let mut bad_ip = datagram(9000);
        bad_ip[22] ^= 1; // TTL, under the IPv4 header checksum
        assert!(!parse.accepts(&bad_ip));
        let mut arp = datagram(9000);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!parse.accepts(&arp));
        for len in [0, 13, 14, 33, 34, 41] {
            assert!(!parse.accepts(&datagram(9000)[..len]), "accepted a {len}-byte frame");
        }
    }

    #[test]
    fn filter_and_rewrite() {
        assert!(!DropUdpPort::new(53).passes(&datagram(53)));
        assert!(DropUdpPort::new(53).passes(&datagram(54)));
        assert!(!DropUdpPort::new(53).passes(&[0u8; 15]));
        let mut frame = datagram(1);
        assert!(SetMacs::new([1; 6], [2; 6]).rewrite(&mut frame));
        assert_eq!(&frame[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        assert!(ParseUdp::new(true).accepts(&frame));
        assert!(!SetMacs::new([1; 6], [2; 6]).rewrite(&mut [0u8; 13]));
    }
}
