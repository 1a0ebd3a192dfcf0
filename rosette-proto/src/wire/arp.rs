//! ARP (RFC 826) for IPv4 over Ethernet: requests and replies that map an IPv4 address to a MAC address.
//!
//! Only hardware type 1 (Ethernet, 6-byte addresses) with protocol type 0x0800 (IPv4, 4-byte
//! addresses) is understood; [`Repr::parse`] refuses anything else as [`Error::Unsupported`].

use core::net::Ipv4Addr;

use super::ethernet::{self, EtherType};
use super::{Error, Result};

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Who has the target protocol address? (1)
    Request,
    /// The sender has the sender protocol address. (2)
    Reply,
    /// Any other operation code (RARP and friends).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// Hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    // The address fields below assume HLEN = 6 and PLEN = 4, the only combination we handle.
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// A view of an ARP packet in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic if it is shorter than [`PACKET_LEN`].
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`]; every accessor of the result is panic-free.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer is long enough for the Ethernet/IPv4 address fields, so that no accessor
    /// can panic (the address accessors read fixed offsets whatever the length fields say; only
    /// [`Repr::parse`] checks that those fields are 6 and 4).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }

    /// The protocol type (an EtherType; 0x0800 for IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(self.u16_at(field::PTYPE))
    }

    /// The hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        Operation::from(self.u16_at(field::OPER))
    }

    fn mac_at(&self, range: core::ops::Range<usize>) -> ethernet::Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[range]);
        ethernet::Address(a)
    }

    fn ip_at(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[range];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The sender hardware address.
    pub fn source_hardware_addr(&self) -> ethernet::Address {
        self.mac_at(field::SHA)
    }

    /// The sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        self.ip_at(field::SPA)
    }

    /// The target hardware address.
    pub fn target_hardware_addr(&self) -> ethernet::Address {
        self.mac_at(field::THA)
    }

    /// The target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.ip_at(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.set_u16_at(field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.set_u16_at(field::PTYPE, value.into());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: Operation) {
        self.set_u16_at(field::OPER, value.into());
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, value: ethernet::Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0);
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, value: ethernet::Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets());
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender MAC address.
    pub source_hardware_addr: ethernet::Address,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC address (zero in a request).
    pub target_hardware_addr: ethernet::Address,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads an Ethernet/IPv4 ARP packet; other hardware or protocol types, or address lengths other
    /// than 6 and 4, are [`Error::Unsupported`]. Operations other than request and reply are accepted
    /// (as [`Operation::Unknown`]) so that the caller decides.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Bytes the packet takes: [`PACKET_LEN`].
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet; the buffer must hold at least [`PACKET_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captures::{hex, KERNEL_ARP_REPLY, KERNEL_ARP_REQUEST};
    use crate::wire::ethernet::HEADER_LEN;

    const MAC_A: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0a]);
    const MAC_B: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0b]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    fn kernel_request_repr() -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: MAC_B,
            source_protocol_addr: IP_B,
            target_hardware_addr: ethernet::Address([0; 6]),
            target_protocol_addr: IP_A,
        }
    }

    #[test]
    fn parses_kernel_request_and_reply() {
        let req = hex(KERNEL_ARP_REQUEST);
        let repr = Repr::parse(&Packet::new_checked(&req[HEADER_LEN..]).unwrap()).unwrap();
        assert_eq!(repr, kernel_request_repr());

        let rep = hex(KERNEL_ARP_REPLY);
        let repr = Repr::parse(&Packet::new_checked(&rep[HEADER_LEN..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr {
                operation: Operation::Reply,
                source_hardware_addr: MAC_A,
                source_protocol_addr: IP_A,
                target_hardware_addr: MAC_B,
                target_protocol_addr: IP_B,
            }
        );
    }

    #[test]
    fn emits_byte_identical_to_kernel() {
        for (capture, repr) in [
            (KERNEL_ARP_REQUEST, kernel_request_repr()),
            (
                KERNEL_ARP_REPLY,
                Repr {
                    operation: Operation::Reply,
                    source_hardware_addr: MAC_A,
                    source_protocol_addr: IP_A,
                    target_hardware_addr: MAC_B,
                    target_protocol_addr: IP_B,
                },
            ),
        ] {
            let bytes = hex(capture);
            let mut out = [0xaau8; PACKET_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &bytes[HEADER_LEN..]);
            assert_eq!(repr.buffer_len(), out.len());
        }
    }

    #[test]
    fn truncated_packets_are_refused() {
        let req = hex(KERNEL_ARP_REQUEST);
        for len in 0..PACKET_LEN {
            assert_eq!(Packet::new_checked(&req[HEADER_LEN..HEADER_LEN + len]).unwrap_err(), Error::Truncated);
        }
    }

    #[test]
    fn padded_packets_are_accepted() {
        let mut req = hex(KERNEL_ARP_REQUEST);
        req.resize(60, 0);
        let repr = Repr::parse(&Packet::new_checked(&req[HEADER_LEN..]).unwrap()).unwrap();
        assert_eq!(repr, kernel_request_repr());
    }

    #[test]
    fn foreign_hardware_or_protocol_is_unsupported() {
        let req = hex(KERNEL_ARP_REQUEST);
        // Byte offsets into the ARP packet: htype, ptype, hlen, plen.
        for (offset, value) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut forged = req[HEADER_LEN..].to_vec();
            forged[offset] = value;
            assert_eq!(Repr::parse(&Packet::new_checked(&forged[..]).unwrap()).unwrap_err(), Error::Unsupported);
        }
    }

    #[test]
    fn unknown_operation_is_reported_not_refused() {
        let mut forged = hex(KERNEL_ARP_REQUEST)[HEADER_LEN..].to_vec();
        forged[7] = 3;
        let repr = Repr::parse(&Packet::new_checked(&forged[..]).unwrap()).unwrap();
        assert_eq!(repr.operation, Operation::Unknown(3));
    }
}
