//! IPv4 parser: checked packets never panic; a packet is accepted only if an independent checksum
//! agrees; accepted headers round-trip through emit (which writes a valid checksum).
#![no_main]

#[path = "../common/oracle.rs"]
mod oracle;

use libfuzzer_sys::fuzz_target;
use rosette_proto::wire::ipv4::{Packet, Repr, HEADER_LEN};
use rosette_proto::wire::Error;

fuzz_target!(|data: &[u8]| {
    let packet = match Packet::new_checked(data) {
        Ok(p) => p,
        Err(Error::Truncated) => return assert!(data.len() < HEADER_LEN),
        Err(_) => return,
    };
    let _ = (
        packet.version(),
        packet.dscp_ecn(),
        packet.ident(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.is_fragment(),
        packet.ttl(),
        packet.protocol(),
        packet.checksum(),
        packet.src_addr(),
        packet.dst_addr(),
        packet.options().len(),
    );
    let header_len = usize::from(packet.header_len());
    assert!(header_len >= HEADER_LEN && header_len <= data.len());
    assert_eq!(packet.payload().len(), usize::from(packet.total_len()) - header_len);
    assert_eq!(packet.verify_checksum(), oracle::ipv4_header_ok(&data[..header_len]));
    let Ok(repr) = Repr::parse(&packet) else { return };
    assert_eq!(packet.version(), 4);
    assert!(oracle::ipv4_header_ok(&data[..header_len]));
    assert!(!packet.is_fragment());

    let mut out = vec![0u8; HEADER_LEN + repr.payload_len];
    out[HEADER_LEN..].copy_from_slice(packet.payload());
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert!(oracle::ipv4_header_ok(&out[..HEADER_LEN]));
    let again = Packet::new_checked(&out[..]).expect("emitted packet is well-formed");
    assert_eq!(Repr::parse(&again).expect("emitted packet parses"), repr);
    assert_eq!(again.payload(), packet.payload());
});
