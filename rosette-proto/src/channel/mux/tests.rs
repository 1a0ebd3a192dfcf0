use super::*;

#[test]
fn siphash_2_4_matches_the_reference_vector() {
    // The paper's appendix A: key 00..0f, message 00..0e.
    let key = [u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]), u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15])];
    let mut h = SipHasher24::new(key);
    h.write(&(0u8..15).collect::<Vec<u8>>());
    assert_eq!(h.finish(), 0xa129_ca61_49be_45e5);
    // The empty message (first entry of the reference implementation's vector table).
    assert_eq!(SipHasher24::new(key).finish(), 0x726f_db47_dd0e_0e31);
}

#[test]
fn dialer_ids_decode_to_their_slot_and_change_with_each_reuse() {
    for (index, generation) in [(0, 0), (1, 0), (MAX_CONNECTIONS as u32 - 1, 7), (5, 4095)] {
        let id = dialer_id(index, generation);
        assert_ne!(id, 0);
        let v = id.wrapping_sub(1);
        assert_eq!(v & ((1 << INDEX_BITS) - 1), index);
        assert_eq!(v >> INDEX_BITS, generation);
    }
    assert_ne!(dialer_id(3, 0), dialer_id(3, 1));
}
