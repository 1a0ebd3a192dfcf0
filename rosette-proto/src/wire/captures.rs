//! Frames captured from the Linux kernel, for tests of the parsers, emitters and channels.
//!
//! Captured on this project's build machine (Debian 12, Linux 6.1) on 2026-11-25:
//! two network namespaces joined by a veth pair, `rvetha` = 02:00:00:00:00:0a / 10.99.0.1 in `rosa`
//! and `rvethb` = 02:00:00:00:00:0b / 10.99.0.2 in `rosb`; `ethtool -K <if> tx off` on both ends so
//! that the kernel computes UDP checksums in software instead of leaving a partial checksum for an
//! offload that veth never performs; IPv6 disabled and neighbour caches flushed. A python3
//! `socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))` bound to `rvetha` recorded every frame as hex while
//! a python3 UDP socket bound to 10.99.0.2:40000 sent `b"hello rosette"`, `b"odd"` and `b""` to
//! 10.99.0.1:9000 and a UDP socket bound to 10.99.0.1:9000 answered `b"reply from kernel"`.
//! veth does not pad frames to 60 bytes, so none has a trailer.
#![cfg(test)]

/// The kernel of 10.99.0.2 asks who has 10.99.0.1 (broadcast).
pub(crate) const KERNEL_ARP_REQUEST: &str =
    "ffffffffffff02000000000b0806000108000604000102000000000b0a6300020000000000000a630001";
/// The kernel of 10.99.0.1 answers it.
pub(crate) const KERNEL_ARP_REPLY: &str =
    "02000000000b02000000000a0806000108000604000202000000000a0a63000102000000000b0a630002";
/// 10.99.0.2:40000 → 10.99.0.1:9000, payload `hello rosette` (IP id 0x8229, DF, TTL 64).
pub(crate) const KERNEL_UDP_HELLO: &str =
    "02000000000a02000000000b080045000029822940004011a3d20a6300020a6300019c4023280015285768656c6c6f20726f7365747465";
/// 10.99.0.2:40000 → 10.99.0.1:9000, payload `odd` (odd length; IP id 0x822a).
pub(crate) const KERNEL_UDP_ODD: &str =
    "02000000000a02000000000b08004500001f822a40004011a3db0a6300020a6300019c402328000b58426f6464";
/// 10.99.0.2:40000 → 10.99.0.1:9000, empty payload (IP id 0x822b).
pub(crate) const KERNEL_UDP_EMPTY: &str =
    "02000000000a02000000000b08004500001c822b40004011a3dd0a6300020a6300019c40232800082bad";
/// 10.99.0.1:9000 → 10.99.0.2:40000, payload `reply from kernel` (IP id 0x09e7).
pub(crate) const KERNEL_UDP_REPLY: &str = "02000000000b02000000000a08004500002d09e7400040111c110a6300010a63000223289c40001999757265706c792066726f6d206b65726e656c";

/// The bytes of a hex string.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
