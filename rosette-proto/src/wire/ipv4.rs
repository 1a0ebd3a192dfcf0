//! IPv4 headers (RFC 791).
//!
//! Parsing accepts options (IHL > 5) by skipping them; emitting always writes a 20-byte header without
//! options. rosette does not reassemble: [`Repr::parse`] refuses fragments with [`Error::Fragmented`],
//! and [`Packet::is_fragment`] flags them for callers that look at packets directly.

use core::net::Ipv4Addr;

use super::{checksum, Error, Result};

/// The IPv4 address type: the standard library's.
pub type Address = Ipv4Addr;

/// The protocol carried in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ICMP, 1.
    Icmp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(value: u8) -> Self {
        match value {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options (the only kind rosette emits).
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The "don't fragment" flag bit in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// The "more fragments" flag bit.
const FLAG_MF: u16 = 0x2000;
/// Fragment offset mask (in 8-byte units).
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet in a buffer.
///
/// The buffer may be longer than the packet (Ethernet padding): [`Packet::payload`] ends at the total
/// length, not at the end of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer or lying lengths.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`]; every accessor of the result is panic-free.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths every accessor relies on: a whole fixed header, a header length (IHL) of at
    /// least 20 bytes that fits in the buffer, and a total length that covers the header and fits in
    /// the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::BadHeaderLen);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len || total_len > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte (formerly type of service).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length of header and payload.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// The "don't fragment" flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// True when this packet is a fragment (more fragments follow, or it is not the first).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The payload protocol.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Address {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Address {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// True when the header checksum (over the whole header, options included) verifies.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::data(header) == 0xffff
    }

    /// The options, if any.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload: from the end of the header (options skipped) to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version field.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4).
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        self.set_u16_at(field::IDENT, value);
    }

    /// Sets the flags and fragment offset: `dont_frag`, `more_frags`, and an offset in bytes (a
    /// multiple of 8).
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut word = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            word |= FLAG_DF;
        }
        if more_frags {
            word |= FLAG_MF;
        }
        self.set_u16_at(field::FLG_OFF, word);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the payload protocol.
    pub fn set_protocol(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the header checksum field to `value`.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes the header checksum over the header (as long as the header-length field says) and
    /// stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let sum = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(checksum::finish(sum));
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// The meaning of an IPv4 header (options are dropped; fragments are not representable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Address,
    /// Destination address.
    pub dst_addr: Address,
    /// Payload protocol.
    pub protocol: Protocol,
    /// Payload length in bytes (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification field.
    pub ident: u16,
    /// "Don't fragment" flag.
    pub dont_frag: bool,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
}

impl Repr {
    /// Reads and validates a checked packet: version 4, a verifying header checksum, not a fragment.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Fragmented);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// Bytes the emitted header takes ([`HEADER_LEN`]: rosette emits no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// True when the header and payload fit the 16-bit total-length field, i.e. when [`Repr::emit`]
    /// will write an honest length.
    pub const fn fits(&self) -> bool {
        self.payload_len <= u16::MAX as usize - HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum; the buffer must hold at least [`HEADER_LEN`] bytes and
    /// [`Repr::fits`] must hold (otherwise the total length is clamped to 65535 and will not match).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(self.dscp_ecn);
        let total = (HEADER_LEN + self.payload_len).min(usize::from(u16::MAX));
        packet.set_total_len(total as u16);
        packet.set_ident(self.ident);
        packet.set_flags_and_offset(self.dont_frag, false, 0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captures::{hex, KERNEL_UDP_EMPTY, KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_REPLY};
    use crate::wire::ethernet;

    fn ip_of(capture: &str) -> Vec<u8> {
        hex(capture)[ethernet::HEADER_LEN..].to_vec()
    }

    #[test]
    fn parses_kernel_packets_and_reemits_identical_headers() {
        for capture in [KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_EMPTY, KERNEL_UDP_REPLY] {
            let bytes = ip_of(capture);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let repr = Repr::parse(&packet).unwrap();
            assert_eq!(repr.protocol, Protocol::Udp);
            assert_eq!(repr.ttl, 64);
            assert!(repr.dont_frag);
            assert_eq!(repr.payload_len, bytes.len() - HEADER_LEN);
            assert_eq!(packet.payload().len(), repr.payload_len);
            // Same fields (the kernel's IP id included): our header is byte-identical to the kernel's.
            let mut out = [0u8; HEADER_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &bytes[..HEADER_LEN], "capture {capture}");
        }
        let hello = ip_of(KERNEL_UDP_HELLO);
        let repr = Repr::parse(&Packet::new_checked(&hello[..]).unwrap()).unwrap();
        assert_eq!(repr.src_addr, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(repr.dst_addr, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(repr.ident, 0x8229);
    }

    #[test]
    fn truncated_and_lying_lengths_are_refused() {
        let bytes = ip_of(KERNEL_UDP_HELLO);
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&bytes[..len]).unwrap_err(), Error::Truncated);
        }
        // Buffer shorter than the total length.
        assert_eq!(Packet::new_checked(&bytes[..bytes.len() - 1]).unwrap_err(), Error::BadLength);
        // IHL below 5.
        for ihl in 0..5u8 {
            let mut forged = bytes.clone();
            forged[0] = 0x40 | ihl;
            assert_eq!(Packet::new_checked(&forged[..]).unwrap_err(), Error::BadHeaderLen);
        }
        // IHL beyond the buffer.
        let mut forged = bytes[..24].to_vec();
        forged[0] = 0x47;
        assert_eq!(Packet::new_checked(&forged[..]).unwrap_err(), Error::BadHeaderLen);
        // Total length smaller than the header, and larger than the buffer.
        for total in [0u16, 19, 0x2a, 0xffff] {
            let mut forged = bytes.clone();
            forged[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(Packet::new_checked(&forged[..]).unwrap_err(), Error::BadLength, "total {total}");
        }
    }

    #[test]
    fn padding_beyond_total_length_is_not_payload() {
        let mut bytes = ip_of(KERNEL_UDP_EMPTY);
        let unpadded = bytes.len();
        bytes.resize(46, 0xee); // an Ethernet minimum-size frame's worth
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload().len(), unpadded - HEADER_LEN);
        assert!(Repr::parse(&packet).is_ok());
    }

    #[test]
    fn forged_version_and_checksum_are_refused() {
        let bytes = ip_of(KERNEL_UDP_HELLO);
        let mut forged = bytes.clone();
        forged[0] = 0x65;
        assert_eq!(Repr::parse(&Packet::new_checked(&forged[..]).unwrap()).unwrap_err(), Error::BadVersion);
        for i in 0..HEADER_LEN {
            let mut forged = bytes.clone();
            forged[i] ^= 0x10;
            if Packet::new_checked(&forged[..]).is_err() {
                continue; // a length field became inconsistent: refused earlier
            }
            let err = Repr::parse(&Packet::new_checked(&forged[..]).unwrap()).unwrap_err();
            assert!(matches!(err, Error::BadChecksum | Error::BadVersion), "byte {i}: {err:?}");
        }
    }

    #[test]
    fn fragments_are_flagged_and_refused() {
        let bytes = ip_of(KERNEL_UDP_HELLO);
        for (mf, offset) in [(true, 0u16), (false, 8), (true, 1480)] {
            let mut forged = bytes.clone();
            let mut packet = Packet::new_unchecked(&mut forged[..]);
            packet.set_flags_and_offset(false, mf, offset);
            packet.fill_checksum();
            let packet = Packet::new_checked(&forged[..]).unwrap();
            assert!(packet.is_fragment());
            assert_eq!(packet.frag_offset(), offset);
            assert_eq!(Repr::parse(&packet).unwrap_err(), Error::Fragmented);
        }
    }

    #[test]
    fn options_are_skipped() {
        let bytes = ip_of(KERNEL_UDP_HELLO);
        // Rebuild with 8 bytes of options (two 4-byte NOP/EOL words).
        let mut with_opts = Vec::new();
        with_opts.extend_from_slice(&bytes[..HEADER_LEN]);
        with_opts.extend_from_slice(&[1, 1, 1, 0, 0, 0, 0, 0]);
        with_opts.extend_from_slice(&bytes[HEADER_LEN..]);
        let mut packet = Packet::new_unchecked(&mut with_opts[..]);
        packet.set_header_len(28);
        packet.set_total_len(packet.total_len() + 8);
        packet.fill_checksum();
        let packet = Packet::new_checked(&with_opts[..]).unwrap();
        assert_eq!(packet.options(), &[1, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(packet.payload(), &bytes[HEADER_LEN..]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, bytes.len() - HEADER_LEN);
    }

    #[test]
    fn emit_clamps_oversized_payload_length() {
        let repr = Repr {
            src_addr: Ipv4Addr::LOCALHOST,
            dst_addr: Ipv4Addr::LOCALHOST,
            protocol: Protocol::Udp,
            payload_len: 70_000,
            ttl: 1,
            ident: 0,
            dont_frag: false,
            dscp_ecn: 0,
        };
        assert!(!repr.fits());
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(Packet::new_unchecked(&out[..]).total_len(), u16::MAX);
    }
}
