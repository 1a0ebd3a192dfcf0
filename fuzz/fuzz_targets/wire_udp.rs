//! UDP parser. Input: 4 bytes source address, 4 bytes destination address, then the datagram.
//! Checked datagrams never panic; a datagram is accepted only if an independent checksum agrees (or
//! it has none); accepted datagrams round-trip through emit, which never writes a zero checksum.
#![no_main]

#[path = "../common/oracle.rs"]
mod oracle;

use core::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use rosette_proto::wire::udp::{Packet, Repr, HEADER_LEN};
use rosette_proto::wire::{checksum, Error};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let src = [data[0], data[1], data[2], data[3]];
    let dst = [data[4], data[5], data[6], data[7]];
    let (src_addr, dst_addr) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let udp = &data[8..];

    // The optimised sum agrees with the naive one on arbitrary bytes.
    assert_eq!(checksum::data(udp), oracle::naive_sum(&[udp]));

    let packet = match Packet::new_checked(udp) {
        Ok(p) => p,
        Err(Error::Truncated) => return assert!(udp.len() < HEADER_LEN),
        Err(e) => return assert_eq!(e, Error::BadLength),
    };
    let _ = (packet.src_port(), packet.dst_port(), packet.checksum());
    let len = usize::from(packet.len());
    assert!(len >= HEADER_LEN && len <= udp.len());
    assert_eq!(packet.payload().len(), len - HEADER_LEN);
    let oracle_ok = oracle::udp_ok(src, dst, &udp[..len]);
    assert_eq!(packet.verify_checksum(src_addr, dst_addr), oracle_ok);
    let Ok(repr) = Repr::parse(&packet, src_addr, dst_addr) else {
        return assert!(!oracle_ok);
    };
    assert!(oracle_ok);

    let mut out = vec![0xa5u8; repr.buffer_len()];
    out[HEADER_LEN..].copy_from_slice(packet.payload());
    repr.emit(&mut Packet::new_unchecked(&mut out[..]), src_addr, dst_addr);
    let again = Packet::new_checked(&out[..]).expect("emitted datagram is well-formed");
    assert_ne!(again.checksum(), 0, "we always send a checksum");
    assert!(oracle::udp_ok(src, dst, &out));
    assert_eq!(Repr::parse(&again, src_addr, dst_addr).expect("emitted datagram parses"), repr);
    // With a checksum in the input, the emitted datagram is byte-identical: a verifying checksum is
    // unique (a computed zero can only be written as 0xffff, since 0 means "none").
    if packet.checksum() != 0 {
        assert_eq!(&out[..], &udp[..len]);
    }
});
