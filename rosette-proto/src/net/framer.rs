//! THE header writer: the one place in rosette that writes Ethernet + IPv4 + UDP headers.
//!
//! Every datagram rosette sends — unordered sends, reliable and streaming packets, benchmark traffic,
//! injected test traffic — is framed by a [`Framer`], so TTL, "don't fragment", the IPv4
//! identification sequence and both checksums follow one configuration ([`FramerConfig`]) and one
//! counter. Two ways to frame, both without copying the payload:
//! - [`Framer::prepend`]: into the headroom of an unshared single-segment payload buffer, in place;
//! - [`Framer::write_header`]: into a separate header buffer, for a payload that is shared (kept by a
//!   connection for retransmission) and goes out chained behind the header.
//!
//! Emitted headers (RFC 791, RFC 768): IPv4 version 4, IHL 5 (no options), DSCP/ECN 0, no fragment
//! offset, DF as configured, the configured TTL, protocol 17, the next identification value; UDP
//! length = 8 + payload; the UDP checksum over the pseudo-header, header and payload, a computed zero
//! sent as `0xffff` (RFC 768: zero means "no checksum").
#![forbid(unsafe_code)]

use core::net::{Ipv4Addr, SocketAddrV4};

use super::{stats::TxDrop, HEADERS_LEN};
use crate::buf::PacketBuf;
use crate::wire::{checksum, ethernet, ipv4, udp};

/// What the [`Framer`] writes into every header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Ethernet source address.
    pub mac: ethernet::Address,
    /// IPv4 source address.
    pub addr: Ipv4Addr,
    /// IPv4 time to live.
    pub ttl: u8,
    /// IPv4 "don't fragment" flag (Linux sets it on UDP by default, doing path-MTU discovery).
    pub dont_frag: bool,
    /// Compute the IPv4 header checksum; `false` leaves it zero, for a NIC that fills it
    /// (`RTE_MBUF_F_TX_IP_CKSUM`) — a receiver drops such a header otherwise.
    pub ipv4_checksum: bool,
    /// Compute the UDP checksum; `false` sends zero, "no checksum" (allowed over IPv4 by RFC 768; the
    /// Linux kernel accepts it), for traffic protected end to end by its own check.
    pub udp_checksum: bool,
}

impl FramerConfig {
    /// Linux-like defaults: TTL 64, DF set, both checksums computed.
    pub const fn new(mac: ethernet::Address, addr: Ipv4Addr) -> FramerConfig {
        FramerConfig { mac, addr, ttl: 64, dont_frag: true, ipv4_checksum: true, udp_checksum: true }
    }
}

/// Writes Ethernet + IPv4 + UDP headers and owns the IPv4 identification counter. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct Framer {
    config: FramerConfig,
    ident: u16,
}

impl Framer {
    /// A framer with `config` whose first datagram carries IPv4 identification `first_ident`.
    pub const fn new(config: FramerConfig, first_ident: u16) -> Framer {
        Framer { config, ident: first_ident }
    }

    /// The configuration.
    pub fn config(&self) -> &FramerConfig {
        &self.config
    }

    /// The identification the next datagram will carry.
    pub fn next_ident(&self) -> u16 {
        self.ident
    }

    /// Prepends the headers of a datagram from `src_port` to `dst` (next hop `dst_mac`) to `payload`,
    /// in its headroom. On error the buffer is unchanged: `SharedBuffer` (another handle may be reading
    /// the bytes), `NotContiguous` (a segment chain), `NoHeadroom` (less than [`HEADERS_LEN`]),
    /// `TooLarge` (beyond the 16-bit IPv4 length).
    pub fn prepend<B: PacketBuf>(
        &mut self,
        payload: &mut B,
        dst_mac: ethernet::Address,
        src_port: u16,
        dst: SocketAddrV4,
    ) -> Result<(), TxDrop> {
        if payload.is_shared() {
            return Err(TxDrop::SharedBuffer);
        }
        if !payload.is_contiguous() {
            return Err(TxDrop::NotContiguous);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(TxDrop::TooLarge);
        }
        if payload.headroom() < HEADERS_LEN || payload.prepend(HEADERS_LEN).is_err() {
            return Err(TxDrop::NoHeadroom);
        }
        let (hdr, body) = payload.data_mut().split_at_mut(HEADERS_LEN);
        self.emit(hdr, dst_mac, src_port, dst, body);
        Ok(())
    }

    /// Writes the headers of a datagram carrying `payload` into `hdr`, a separate buffer of exactly
    /// [`HEADERS_LEN`] bytes that will be sent with `payload` chained behind it. Errors: `NoHeadroom`
    /// when `hdr` has another length, `TooLarge` beyond the 16-bit IPv4 length; `hdr` is then untouched.
    pub fn write_header(
        &mut self,
        hdr: &mut [u8],
        dst_mac: ethernet::Address,
        src_port: u16,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), TxDrop> {
        if hdr.len() != HEADERS_LEN {
            return Err(TxDrop::NoHeadroom);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(TxDrop::TooLarge);
        }
        self.emit(hdr, dst_mac, src_port, dst, payload);
        Ok(())
    }

    /// Sets the Ethernet destination of a frame this framer wrote (for a frame that waited for ARP).
    pub fn set_dst_mac(frame: &mut [u8], dst_mac: ethernet::Address) {
        if frame.len() >= ethernet::HEADER_LEN {
            ethernet::Packet::new_unchecked(frame).set_dst_addr(dst_mac);
        }
    }

    fn emit(&mut self, hdr: &mut [u8], dst_mac: ethernet::Address, src_port: u16, dst: SocketAddrV4, payload: &[u8]) {
        let c = &self.config;
        let (eth_bytes, rest) = hdr.split_at_mut(ethernet::HEADER_LEN);
        let (ip_bytes, udp_bytes) = rest.split_at_mut(ipv4::HEADER_LEN);
        // Callers checked the payload against MAX_PAYLOAD, so the lengths fit 16 bits.
        let udp_len = (udp::HEADER_LEN + payload.len()) as u16;
        let mut u = udp::Packet::new_unchecked(&mut *udp_bytes);
        u.set_src_port(src_port);
        u.set_dst_port(dst.port());
        u.set_len(udp_len);
        u.set_checksum(0);
        if c.udp_checksum {
            // Summed in parts, so the payload may live in another buffer (RFC 1071: the sum is
            // associative; the 8-byte header keeps the payload's words aligned).
            let sum = checksum::combine(&[
                checksum::pseudo_header_v4(c.addr, *dst.ip(), ipv4::Protocol::Udp.into(), udp_len),
                checksum::data(udp_bytes),
                checksum::data(payload),
            ]);
            // RFC 768: a computed zero is sent as all ones; zero means "no checksum".
            let value = match checksum::finish(sum) {
                0 => 0xffff,
                v => v,
            };
            udp::Packet::new_unchecked(&mut *udp_bytes).set_checksum(value);
        }
        let ip = ipv4::Repr {
            src_addr: c.addr,
            dst_addr: *dst.ip(),
            protocol: ipv4::Protocol::Udp,
            payload_len: usize::from(udp_len),
            ttl: c.ttl,
            ident: self.ident,
            dont_frag: c.dont_frag,
            dscp_ecn: 0,
        };
        let mut ip_packet = ipv4::Packet::new_unchecked(ip_bytes);
        ip.emit(&mut ip_packet);
        if !c.ipv4_checksum {
            ip_packet.set_checksum(0);
        }
        let eth = ethernet::Repr { src_addr: c.mac, dst_addr: dst_mac, ethertype: ethernet::EtherType::Ipv4 };
        eth.emit(&mut ethernet::Packet::new_unchecked(eth_bytes));
        // RFC 791: the identification must be unique per (source, destination, protocol) for as long as
        // the datagram may live; one counter per interface satisfies that for every socket on it.
        self.ident = self.ident.wrapping_add(1);
    }
}

/// The largest UDP payload whose IPv4 total length fits 16 bits.
pub const MAX_PAYLOAD: usize = u16::MAX as usize - ipv4::HEADER_LEN - udp::HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{VecBuf, DEFAULT_HEADROOM};
    use crate::wire::captures::{hex, KERNEL_UDP_EMPTY, KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_REPLY};

    const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0a]);
    const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0b]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    fn framer_b(first_ident: u16) -> Framer {
        Framer::new(FramerConfig::new(MAC_B, IP_B), first_ident)
    }

    /// RFC 768 and RFC 791 checksums, and every other header byte, equal the Linux kernel's for the
    /// same datagrams (captures in `wire::captures`, including an odd-length and an empty payload).
    #[test]
    fn frames_are_byte_identical_to_kernel_captures() {
        let mut f = framer_b(0x8229);
        let dst = SocketAddrV4::new(IP_A, 9000);
        for (capture, body) in
            [(KERNEL_UDP_HELLO, &b"hello rosette"[..]), (KERNEL_UDP_ODD, b"odd"), (KERNEL_UDP_EMPTY, b"")]
        {
            let mut buf = VecBuf::from_slice(body);
            f.prepend(&mut buf, MAC_A, 40000, dst).unwrap();
            assert_eq!(buf.data(), &hex(capture)[..], "{body:?}");
            assert_eq!(buf.headroom(), DEFAULT_HEADROOM - HEADERS_LEN, "in place");
        }
        let mut a = Framer::new(FramerConfig::new(MAC_A, IP_A), 0x09e7);
        let mut buf = VecBuf::from_slice(b"reply from kernel");
        a.prepend(&mut buf, MAC_B, 9000, SocketAddrV4::new(IP_B, 40000)).unwrap();
        assert_eq!(buf.data(), &hex(KERNEL_UDP_REPLY)[..]);
    }

    #[test]
    fn separate_header_equals_in_place_header() {
        let dst = SocketAddrV4::new(IP_A, 9000);
        let mut f = framer_b(0x8229);
        let mut hdr = [0u8; HEADERS_LEN];
        f.write_header(&mut hdr, MAC_A, 40000, dst, b"hello rosette").unwrap();
        assert_eq!(&hdr[..], &hex(KERNEL_UDP_HELLO)[..HEADERS_LEN]);
        assert_eq!(f.write_header(&mut hdr[..41], MAC_A, 40000, dst, b"x"), Err(TxDrop::NoHeadroom));
    }

    /// RFC 791 fields from configuration: TTL, DF; identification counts up by one per datagram, across
    /// both ways of framing, and wraps.
    #[test]
    fn ttl_df_and_ident_follow_config() {
        let mut cfg = FramerConfig::new(MAC_B, IP_B);
        cfg.ttl = 7;
        cfg.dont_frag = false;
        let mut f = Framer::new(cfg, 0xffff);
        let dst = SocketAddrV4::new(IP_A, 1);
        let mut one = VecBuf::from_slice(b"1");
        f.prepend(&mut one, MAC_A, 2, dst).unwrap();
        let mut hdr = [0u8; HEADERS_LEN];
        f.write_header(&mut hdr, MAC_A, 2, dst, b"2").unwrap();
        for (frame, ident) in [(one.data(), 0xffff), (&hdr[..], 0)] {
            let ip = ipv4::Packet::new_unchecked(&frame[14..]);
            assert_eq!((ip.ttl(), ip.dont_frag(), ip.ident()), (7, false, ident));
            assert!(ip.verify_checksum());
        }
        assert_eq!(f.next_ident(), 1);
    }

    /// RFC 768: a computed checksum of zero is transmitted as all ones.
    #[test]
    fn computed_zero_udp_checksum_is_sent_as_ffff() {
        // Find a payload word that makes the sum come out at zero, by fixing the checksum field's
        // contribution: with checksum c over [header..payload], appending the word c makes it zero.
        let dst = SocketAddrV4::new(IP_A, 9000);
        let mut f = framer_b(1);
        let mut buf = VecBuf::from_slice(&[0, 0]);
        f.prepend(&mut buf, MAC_A, 40000, dst).unwrap();
        let c = udp::Packet::new_unchecked(&buf.data()[34..]).checksum();
        let mut buf = VecBuf::from_slice(&c.to_be_bytes());
        f.prepend(&mut buf, MAC_A, 40000, dst).unwrap();
        let u = udp::Packet::new_unchecked(&buf.data()[34..]);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum(IP_B, IP_A));
    }

    #[test]
    fn checksums_off_leave_zero() {
        let mut cfg = FramerConfig::new(MAC_B, IP_B);
        cfg.udp_checksum = false;
        cfg.ipv4_checksum = false;
        let mut buf = VecBuf::from_slice(b"hello rosette");
        Framer::new(cfg, 0x8229).prepend(&mut buf, MAC_A, 40000, SocketAddrV4::new(IP_A, 9000)).unwrap();
        let mut want = hex(KERNEL_UDP_HELLO);
        want[24..26].copy_from_slice(&[0, 0]);
        want[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(buf.data(), &want[..]);
    }

    #[test]
    fn refusals_leave_the_buffer_alone() {
        let dst = SocketAddrV4::new(IP_A, 9000);
        let mut f = framer_b(0);
        let mut small = VecBuf::with_capacity(64, HEADERS_LEN - 1);
        small.append(1).unwrap();
        assert_eq!(f.prepend(&mut small, MAC_A, 1, dst), Err(TxDrop::NoHeadroom));
        assert_eq!((small.len(), small.headroom()), (1, HEADERS_LEN - 1));
        let mut huge = VecBuf::with_capacity(HEADERS_LEN + MAX_PAYLOAD + 1, HEADERS_LEN);
        huge.append(MAX_PAYLOAD + 1).unwrap();
        assert_eq!(f.prepend(&mut huge, MAC_A, 1, dst), Err(TxDrop::TooLarge));
        assert_eq!(f.next_ident(), 0, "refusals take no identification");
    }
}
