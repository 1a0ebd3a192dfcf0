//! Ethernet II parser: checked frames never panic, every checked frame parses, and emitting the parsed
//! header reproduces it byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rosette_proto::wire::ethernet::{Packet, Repr, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(data.len() < HEADER_LEN);
        return;
    };
    let _ = (packet.dst_addr(), packet.src_addr(), packet.ethertype());
    assert_eq!(packet.payload().len(), data.len() - HEADER_LEN);
    let repr = Repr::parse(&packet).expect("every checked frame has a header");
    let mut out = data.to_vec();
    out[..HEADER_LEN].fill(0);
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(out, data);
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(), repr);
});
