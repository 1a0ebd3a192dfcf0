//! ARP parser: checked packets never panic; accepted packets round-trip through emit byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rosette_proto::wire::arp::{Packet, Repr, PACKET_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(data.len() < PACKET_LEN);
        return;
    };
    let _ = (
        packet.hardware_type(),
        packet.protocol_type(),
        packet.hardware_len(),
        packet.protocol_len(),
        packet.operation(),
        packet.source_hardware_addr(),
        packet.source_protocol_addr(),
        packet.target_hardware_addr(),
        packet.target_protocol_addr(),
    );
    let Ok(repr) = Repr::parse(&packet) else {
        // Refused only for foreign hardware/protocol types or lengths.
        assert!(data[..6] != [0, 1, 8, 0, 6, 4]);
        return;
    };
    let mut out = [0u8; PACKET_LEN];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..PACKET_LEN]);
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(), repr);
});
