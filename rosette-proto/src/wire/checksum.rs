//! The Internet checksum (RFC 1071), in a form that can be built up piece by piece.
//!
//! A checksum is the ones' complement of the ones' complement sum of 16-bit big-endian words. The sum is
//! associative and commutative, so a header checksum can be computed from independently summed parts
//! (a pseudo-header, a header, a payload that is already in the buffer) with [`combine`], and a
//! header field can be changed without resumming the packet ([`update`], RFC 1624).
//!
//! Every function here returns the *folded sum* (not yet complemented) except [`finish`] and
//! [`update`], which deal in checksum field values. A block summed with [`data`] is treated as if it were
//! padded with a zero byte to an even length, so only the last block of a message may have an odd
//! length.

use core::net::Ipv4Addr;

/// Folds a 64-bit accumulator of 16-bit words into a 16-bit ones' complement sum.
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The ones' complement sum of `data` as 16-bit big-endian words (an odd final byte is padded with zero).
pub fn data(data: &[u8]) -> u16 {
    // Summing 32-bit big-endian chunks into a 64-bit accumulator is equivalent to summing 16-bit words
    // (ones' complement addition is end-around-carry addition, and folding restores the carries), and
    // halves the number of additions.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        acc += u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for word in &mut words {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// The ones' complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The ones' complement sum of the IPv4 pseudo-header used by UDP and TCP checksums (RFC 768, RFC 793):
/// source and destination address, protocol number and the transport length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u64::from(u16::from_be_bytes([s[0], s[1]]))
        + u64::from(u16::from_be_bytes([s[2], s[3]]))
        + u64::from(u16::from_be_bytes([d[0], d[1]]))
        + u64::from(u16::from_be_bytes([d[2], d[3]]))
        + u64::from(protocol)
        + u64::from(length);
    fold(acc)
}

/// The checksum field value for a folded sum: its ones' complement.
#[inline]
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// The new checksum field value after one 16-bit word covered by `old_checksum` changes from `old_word`
/// to `new_word` (RFC 1624, equation 3: `HC' = ~(~HC + ~m + m')`).
pub fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    !combine(&[!old_checksum, !old_word, new_word])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(finish(0xddf2), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), data(&[0x12, 0x34, 0x56, 0x00]));
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn split_sums_combine_to_whole_sum() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let whole = data(&bytes);
        // Any split at an even offset gives the same result.
        for split in (0..bytes.len()).step_by(2) {
            assert_eq!(combine(&[data(&bytes[..split]), data(&bytes[split..])]), whole);
        }
    }

    #[test]
    fn carries_fold_around() {
        assert_eq!(data(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x01]), 0x0001);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut hdr = [0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let ck = finish(data(&hdr));
        hdr[10..12].copy_from_slice(&ck.to_be_bytes());
        // Decrement the TTL as a router would.
        let old = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] -= 1;
        let new = u16::from_be_bytes([hdr[8], hdr[9]]);
        let updated = update(ck, old, new);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(updated, finish(data(&hdr)));
    }
}
