//! Fuzz target: rosette's transport header parser.
//!
//! Any input: the checked view and `Repr::parse` must not panic; a packet that parses must emit back
//! to exactly the same bytes (header, SACK blocks and checksum), payload untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rosette_proto::wire::transport::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    // Every accessor of a checked view is panic-free.
    let _ = (packet.flags(), packet.seq(), packet.ack(), packet.window(), packet.epoch());
    let _ = (packet.sack_block(0), packet.sack_block(3), packet.sack_block(200), packet.payload());
    let _ = packet.verify_checksum();
    let Ok(repr) = Repr::parse(&packet) else {
        return;
    };
    assert_eq!(repr.header_len() + usize::from(repr.payload_len), data.len());
    let mut copy = data.to_vec();
    copy[..repr.header_len()].fill(0);
    repr.emit(&mut copy).expect("a parsed packet re-emits");
    assert_eq!(copy, data, "emit(parse(p)) != p");
});
