//! The local end the interface fuzz targets (`channel_unordered`, `net_interface`) play: its
//! addresses, the check every frame it transmits must pass, and the "repair" that turns random bytes
//! into a frame addressed to it with correct checksums (so the fuzzer reaches delivery).

use core::net::Ipv4Addr;

use rosette_proto::wire::{arp, ethernet};

use crate::oracle;

pub const MAC: ethernet::Address = ethernet::Address([2, 0, 0, 0, 0, 0x0a]);
pub const ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const PORTS: [u16; 2] = [9000, 9001];

/// Asserts that a frame we transmitted is well-formed ARP or UDP/IPv4 from us with verifying checksums.
pub fn check_transmitted(frame: &[u8]) {
    let eth = ethernet::Packet::new_checked(frame).expect("transmitted frame has an Ethernet header");
    assert_eq!(eth.src_addr(), MAC);
    match eth.ethertype() {
        ethernet::EtherType::Arp => {
            let packet = arp::Packet::new_checked(eth.payload()).expect("ARP long enough");
            let repr = arp::Repr::parse(&packet).expect("ARP parses");
            assert_eq!(repr.source_hardware_addr, MAC);
            assert_eq!(repr.source_protocol_addr, ADDR);
        }
        ethernet::EtherType::Ipv4 => {
            let got = oracle::accept_udp(frame).expect("sent datagrams verify");
            assert_eq!(got.src_ip, ADDR.octets());
            assert!(PORTS.contains(&got.src_port));
            // Our own checksum is never "none".
            assert_ne!(&frame[40..42], &[0, 0]);
        }
        other => panic!("unexpected EtherType {other:?}"),
    }
}

/// Addresses `frame` to us and fixes its checksums, steered by the bits of `op`:
/// bit 2 keeps the IPv4 destination, bit 3 picks the port, bit 4 keeps the IPv4 protocol, bit 5 leaves
/// the UDP checksum alone, bit 6 leaves the IPv4 checksum alone, bit 7 corrupts one byte afterwards.
pub fn repair(op: u8, frame: &mut [u8]) {
    if frame.len() < 14 {
        return;
    }
    frame[..6].copy_from_slice(&MAC.0);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut frame[14..];
    if ip.len() >= 20 {
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if op & 0x04 == 0 {
            ip[16..20].copy_from_slice(&ADDR.octets());
        }
        if op & 0x10 == 0 {
            ip[9] = 17;
        }
        if ihl >= 20 && ihl <= total && total <= ip.len() {
            let (header, rest) = ip.split_at_mut(ihl);
            let udp = &mut rest[..total - ihl];
            if udp.len() >= 8 {
                udp[2..4].copy_from_slice(&PORTS[usize::from(op >> 3 & 1)].to_be_bytes());
                let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
                if op & 0x20 == 0 && (8..=udp.len()).contains(&ulen) {
                    udp[6..8].copy_from_slice(&[0, 0]);
                    let src = [header[12], header[13], header[14], header[15]];
                    let dst = [header[16], header[17], header[18], header[19]];
                    let l = (ulen as u16).to_be_bytes();
                    let pseudo = [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, 17, l[0], l[1]];
                    let sum = !oracle::naive_sum(&[&pseudo, &udp[..ulen]]);
                    let sum = if sum == 0 { 0xffff } else { sum };
                    udp[6..8].copy_from_slice(&sum.to_be_bytes());
                }
            }
            if op & 0x40 == 0 {
                header[10..12].copy_from_slice(&[0, 0]);
                let sum = !oracle::naive_sum(&[header]);
                header[10..12].copy_from_slice(&sum.to_be_bytes());
            }
        }
    }
    if op & 0x80 != 0 {
        // Which byte and bit: from the frame's last byte, so the fuzzer controls it.
        let last = usize::from(frame[frame.len() - 1]);
        let at = last * 131 % frame.len();
        frame[at] ^= 1 << (last % 8);
    }
}
