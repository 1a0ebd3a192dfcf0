//! UDP headers (RFC 768) with the IPv4 pseudo-header checksum.
//!
//! On receive, a checksum field of zero means "no checksum" and is accepted, as RFC 768 allows over
//! IPv4 and as Linux does. On transmit rosette always computes the checksum, and writes a computed
//! zero as `0xffff` (RFC 768: zero is reserved for "none").

use core::net::Ipv4Addr;

use super::ipv4::Protocol;
use super::{checksum, Error, Result};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram in a buffer.
///
/// The buffer may be longer than the datagram: [`Packet::payload`] and the checksum end at the UDP
/// length field (Linux likewise trims a datagram to its UDP length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer or lying length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`]; every accessor of the result is panic-free.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds a whole header and that the length field covers the header and
    /// fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
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

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)] // a header is never empty; this is a field, not a size
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The checksum field (0 = none).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// True when the checksum verifies against the IPv4 pseudo-header of `src_addr` and `dst_addr`, or
    /// is zero (none).
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(src_addr, dst_addr, Protocol::Udp.into(), len),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        sum == 0xffff
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the checksum field to `value`.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Computes the checksum over the pseudo-header, the header and the payload (as long as the
    /// length field says) and stores it, writing a computed zero as `0xffff`.
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(src_addr, dst_addr, Protocol::Udp.into(), len),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        let value = match checksum::finish(sum) {
            0 => 0xffff,
            v => v,
        };
        self.set_checksum(value);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a checked datagram and verifies its checksum against the pseudo-header of `src_addr` and
    /// `dst_addr` (a zero checksum is accepted as "none").
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::BadChecksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Bytes of header and payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// True when header and payload fit the 16-bit length field.
    pub const fn fits(&self) -> bool {
        self.payload_len <= u16::MAX as usize - HEADER_LEN
    }

    /// Writes the header, including the checksum, in front of a payload **already in place**: the
    /// buffer must hold the header followed by `payload_len` payload bytes (at least
    /// [`Repr::buffer_len`] bytes), and [`Repr::fits`] must hold. Writing the header after the payload
    /// is what lets the channel send without copying the payload.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(self.buffer_len().min(usize::from(u16::MAX)) as u16);
        packet.fill_checksum(src_addr, dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captures::{hex, KERNEL_UDP_EMPTY, KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_REPLY};
    use crate::wire::{ethernet, ipv4};

    const A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    /// (UDP bytes, source address, destination address) of a capture.
    fn udp_of(capture: &str) -> (Vec<u8>, Ipv4Addr, Ipv4Addr) {
        let bytes = hex(capture);
        let ip = ipv4::Packet::new_checked(&bytes[ethernet::HEADER_LEN..]).unwrap();
        (ip.payload().to_vec(), ip.src_addr(), ip.dst_addr())
    }

    #[test]
    fn parses_kernel_datagrams() {
        for (capture, payload, src_port, dst_port) in [
            (KERNEL_UDP_HELLO, &b"hello rosette"[..], 40000, 9000),
            (KERNEL_UDP_ODD, b"odd", 40000, 9000),
            (KERNEL_UDP_EMPTY, b"", 40000, 9000),
            (KERNEL_UDP_REPLY, b"reply from kernel", 9000, 40000),
        ] {
            let (bytes, src, dst) = udp_of(capture);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let repr = Repr::parse(&packet, src, dst).unwrap();
            assert_eq!(repr, Repr { src_port, dst_port, payload_len: payload.len() });
            assert_eq!(packet.payload(), payload);
        }
    }

    #[test]
    fn emits_byte_identical_to_kernel() {
        for capture in [KERNEL_UDP_HELLO, KERNEL_UDP_ODD, KERNEL_UDP_EMPTY, KERNEL_UDP_REPLY] {
            let (bytes, src, dst) = udp_of(capture);
            let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap(), src, dst).unwrap();
            // Payload in place first, header garbage: emit must fill the header around it.
            let mut out = vec![0x5a; repr.buffer_len()];
            out[HEADER_LEN..].copy_from_slice(&bytes[HEADER_LEN..]);
            repr.emit(&mut Packet::new_unchecked(&mut out[..]), src, dst);
            assert_eq!(out, bytes, "capture {capture}");
        }
    }

    #[test]
    fn zero_checksum_means_none() {
        let (mut bytes, src, dst) = udp_of(KERNEL_UDP_HELLO);
        bytes[6..8].copy_from_slice(&[0, 0]);
        bytes[HEADER_LEN] ^= 0xff; // even a corrupted payload passes: there is no checksum to catch it
        assert!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap(), src, dst).is_ok());
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload so that the checksum comes out as zero: sum everything else, then add the
        // word that makes the total 0xffff.
        let repr = Repr { src_port: 1, dst_port: 2, payload_len: 2 };
        let mut buf = [0u8; 10];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), A, B);
        let mut probe = buf;
        probe[6..8].copy_from_slice(&[0, 0]);
        let partial = checksum::combine(&[checksum::pseudo_header_v4(A, B, 17, 10), checksum::data(&probe)]);
        let filler = !partial;
        buf[8..10].copy_from_slice(&filler.to_be_bytes());
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), A, B);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.checksum(), 0xffff);
        assert!(Repr::parse(&packet, A, B).is_ok());
    }

    #[test]
    fn corrupted_datagrams_fail_the_checksum() {
        let (bytes, src, dst) = udp_of(KERNEL_UDP_HELLO);
        for i in 0..bytes.len() {
            if (4..6).contains(&i) {
                continue; // the length field: covered by lying_lengths_are_refused
            }
            let mut forged = bytes.clone();
            forged[i] ^= 0x01;
            let packet = Packet::new_checked(&forged[..]).unwrap();
            assert_eq!(Repr::parse(&packet, src, dst).unwrap_err(), Error::BadChecksum, "byte {i}");
        }
        // Right datagram, wrong pseudo-header (a different destination address).
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet, src, Ipv4Addr::new(10, 99, 0, 3)).unwrap_err(), Error::BadChecksum);
    }

    #[test]
    fn lying_lengths_are_refused() {
        let (bytes, _, _) = udp_of(KERNEL_UDP_HELLO);
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&bytes[..len]).unwrap_err(), Error::Truncated);
        }
        for field in [0u16, 7, bytes.len() as u16 + 1, 0xffff] {
            let mut forged = bytes.clone();
            forged[4..6].copy_from_slice(&field.to_be_bytes());
            assert_eq!(Packet::new_checked(&forged[..]).unwrap_err(), Error::BadLength, "length {field}");
        }
        // A length shorter than the buffer is accepted and ends the payload (the checksum then fails
        // unless recomputed).
        let mut forged = bytes.clone();
        forged[4..6].copy_from_slice(&9u16.to_be_bytes());
        let packet = Packet::new_checked(&forged[..]).unwrap();
        assert_eq!(packet.payload(), b"h");
    }
}
