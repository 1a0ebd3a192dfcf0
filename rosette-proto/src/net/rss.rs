//! Receive-side scaling: the Toeplitz hash NICs use to spread flows over rx queues, and the
//! queue a hash lands on.
//!
//! rosette spreads connections over lcores by flow hash, with no connection state shared between
//! lcores, so both ends must agree on where a flow goes:
//!
//! - the **receiver**'s NIC hashes every IPv4/UDP packet's 4-tuple with [`Toeplitz`] and picks the rx
//!   queue from its redirection table (RETA); [`queue_of`] computes the same choice in software, so a
//!   test, a tool or a device without RSS can predict it;
//! - a **sender** that wants its flow on a particular queue of the receiver (because the receiver's
//!   device has no RSS, or to place connections deliberately) chooses its source port with
//!   [`source_port_for_queue`].
//!
//! **The RETA assumption.** The substrate programs the RETA of every RSS port itself, entry `i` =
//! `i % rx_queues` (`rosette::substrate::port`), which is also what most PMDs install by default. With
//! such a table the queue of a hash is `reta[hash % reta_size] = (hash % reta_size) % n_queues`. A
//! device's table size is a power of two (64, 128, 512 …); [`queue_of`] takes the common 128, and
//! [`queue_of_reta`] any size. When `n_queues` divides the table size (queue counts that are powers of
//! two) every table size gives the same answer, `hash % n_queues`.
//!
//! The input byte order is the one the NICs (and DPDK's `rte_softrss`) hash: source address,
//! destination address, source port, destination port, each big-endian as on the wire. The hash is
//! checked against Microsoft's RSS verification suite with its key, [`DEFAULT_KEY`], which rosette
//! also programs into its ports.
#![forbid(unsafe_code)]

use core::net::{Ipv4Addr, SocketAddrV4};

/// Length of a Toeplitz key in bytes: 320 bits, enough for an IPv6 4-tuple (36 bytes) plus the
/// 32-bit window.
pub const KEY_LEN: usize = 40;

/// rosette's RSS key: the key of Microsoft's RSS verification suite ("Verifying the RSS Hash
/// Calculation"), which many NICs also use as their default. A published key lets a test check the
/// hash against published vectors and lets two hosts compute each other's queue choice.
pub const DEFAULT_KEY: [u8; KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Redirection-table size [`queue_of`] assumes (the size of the table of most 10G/25G NICs, and the
/// value `ETH_RSS_RETA_SIZE_128` in DPDK).
pub const DEFAULT_RETA_SIZE: u32 = 128;

/// The Toeplitz hash over a 40-byte key.
///
/// Bit `b` of the input (most significant bit of byte 0 first) selects the 32-bit window of the key
/// that starts at key bit `b`; the hash is the XOR of the selected windows. The windows are
/// precomputed per input byte position and bit, so a hash costs one table lookup per set bit and no
/// shifting of a 320-bit key.
#[derive(Clone)]
pub struct Toeplitz {
    /// `windows[i]`: the 32 key bits starting at bit `i`, for every input bit a 40-byte key covers.
    windows: [u32; Self::MAX_INPUT * 8],
    key: [u8; KEY_LEN],
}

impl Toeplitz {
    /// Longest input this key can hash: the key minus the 32-bit window.
    pub const MAX_INPUT: usize = KEY_LEN - 4;

    /// A hasher for `key`.
    pub fn new(key: [u8; KEY_LEN]) -> Self {
        let mut windows = [0u32; Self::MAX_INPUT * 8];
        for (bit, window) in windows.iter_mut().enumerate() {
            // The 32 bits from `bit` lie within the five key bytes from bit / 8 (8 spare bits for the shift).
            let byte = bit / 8;
            let five = key[byte..byte + 5].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            *window = (five >> (8 - bit % 8)) as u32;
        }
        Toeplitz { windows, key }
    }

    /// The key this hasher was built with.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The hash of `input` (at most [`Toeplitz::MAX_INPUT`] bytes; longer input panics, as it would be
    /// a programming error: every RSS input is a fixed-size tuple).
    pub fn hash(&self, input: &[u8]) -> u32 {
        assert!(input.len() <= Self::MAX_INPUT, "a Toeplitz input of {} bytes exceeds the key", input.len());
        let mut hash = 0u32;
        for (i, &byte) in input.iter().enumerate() {
            let mut bits = byte;
            while bits != 0 {
                let high = bits.leading_zeros() as usize;
                hash ^= self.windows[i * 8 + high];
                bits &= !(0x80 >> high);
            }
        }
        hash
    }

    /// The hash a NIC computes for an IPv4 packet without ports (`RTE_ETH_RSS_IPV4`, and what UDP
    /// fragments fall back to): source then destination address.
    pub fn hash_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let mut input = [0u8; 8];
        input[..4].copy_from_slice(&src.octets());
        input[4..].copy_from_slice(&dst.octets());
        self.hash(&input)
    }

    /// The hash a NIC computes for an IPv4/UDP packet (`RTE_ETH_RSS_NONFRAG_IPV4_UDP`): source address,
    /// destination address, source port, destination port, big-endian as in the headers.
    pub fn hash_ipv4_udp(&self, src_ip: Ipv4Addr, dst_ip: Ipv4Addr, src_port: u16, dst_port: u16) -> u32 {
        let mut input = [0u8; 12];
        input[..4].copy_from_slice(&src_ip.octets());
        input[4..8].copy_from_slice(&dst_ip.octets());
        input[8..10].copy_from_slice(&src_port.to_be_bytes());
        input[10..].copy_from_slice(&dst_port.to_be_bytes());
        self.hash(&input)
    }
}

impl Default for Toeplitz {
    /// A hasher for [`DEFAULT_KEY`].
    fn default() -> Self {
        Toeplitz::new(DEFAULT_KEY)
    }
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).finish_non_exhaustive()
    }
}

/// The rx queue (of `n_queues`) a packet with RSS hash `hash` lands on, for a redirection table of
/// [`DEFAULT_RETA_SIZE`] entries programmed `i % n_queues` (see the module docs). `n_queues` 0 or 1
/// is queue 0.
pub fn queue_of(hash: u32, n_queues: u16) -> u16 {
    queue_of_reta(hash, n_queues, DEFAULT_RETA_SIZE)
}

/// [`queue_of`] for a redirection table of `reta_size` entries (a device's `reta_size`), programmed
/// `i % n_queues`. A `reta_size` of 0 (no table) is taken as the default size.
pub fn queue_of_reta(hash: u32, n_queues: u16, reta_size: u32) -> u16 {
    if n_queues <= 1 {
        return 0;
    }
    let reta_size = if reta_size == 0 { DEFAULT_RETA_SIZE } else { reta_size };
    // The NIC indexes the table with the hash's low bits (hash % size for a power-of-two size).
    ((hash % reta_size) % u32::from(n_queues)) as u16
}

/// The first UDP source port `≥ start_port` such that a packet from `local_ip:port` to `remote`
/// lands on rx queue `queue` of `n_queues` **at the receiver** — whose NIC hashes the packet as it
/// arrives: source = this side (`local_ip`, the chosen port), destination = `remote`. Uses
/// [`DEFAULT_KEY`] and [`queue_of`]'s table. `None` when `queue ≥ n_queues` or no port up to 65535
/// qualifies. Port 0 is never chosen (it is not a valid source port).
///
/// For the same flow on the way back (the receiver's replies, hashed by this side's NIC) swap the
/// roles: `local_ip` is the receiver's address.
pub fn source_port_for_queue(
    local_ip: Ipv4Addr,
    remote: SocketAddrV4,
    queue: u16,
    n_queues: u16,
    start_port: u16,
) -> Option<u16> {
    if queue >= n_queues.max(1) {
        return None;
    }
    let toeplitz = Toeplitz::default();
    (start_port.max(1)..=u16::MAX).find(|&port| {
        let hash = toeplitz.hash_ipv4_udp(local_ip, *remote.ip(), port, remote.port());
        queue_of(hash, n_queues) == queue
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Microsoft's RSS verification suite, IPv4 ("Verifying the RSS Hash Calculation"; the same five
    /// rows are the 82599 datasheet's suite and DPDK's `test_thash`): source, destination, IPv4-only
    /// hash, IPv4-with-ports hash. The published table lists the destination first; these rows are
    /// in the order the hash reads them.
    const VECTORS: [(&str, &str, u32, u32); 5] = [
        ("66.9.149.187:2794", "161.142.100.80:1766", 0x323e_8fc2, 0x51cc_c178),
        ("199.92.111.2:14230", "65.69.140.83:4739", 0xd718_262a, 0xc626_b0ea),
        ("24.19.198.95:12898", "12.22.207.184:38024", 0xd2d0_a5de, 0x5c2b_394a),
        ("38.27.205.30:48228", "209.142.163.6:2217", 0x8298_9176, 0xafc7_327f),
        ("153.39.163.191:44251", "202.188.127.2:1303", 0x5d18_09c5, 0x10e8_28a2),
    ];

    #[test]
    fn microsoft_verification_vectors() {
        let t = Toeplitz::default();
        for (src, dst, ip_only, with_ports) in VECTORS {
            let src: SocketAddrV4 = src.parse().unwrap();
            let dst: SocketAddrV4 = dst.parse().unwrap();
            assert_eq!(t.hash_ipv4(*src.ip(), *dst.ip()), ip_only, "{src} -> {dst}, IPv4 only");
            assert_eq!(
                t.hash_ipv4_udp(*src.ip(), *dst.ip(), src.port(), dst.port()),
                with_ports,
                "{src} -> {dst}, with ports"
            );
        }
    }

    /// The precomputed windows against the definition, bit by bit (shift the key left once per input
    /// bit, XOR its leftmost 32 bits for every set bit).
    fn reference_hash(key: &[u8; KEY_LEN], input: &[u8]) -> u32 {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(key);
        let mut hash = 0u32;
        for &byte in input {
            for bit in (0..8).rev() {
                if byte >> bit & 1 == 1 {
                    hash ^= u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
                }
                for i in 0..KEY_LEN {
                    k[i] = (k[i] << 1) | k.get(i + 1).map_or(0, |n| n >> 7);
                }
            }
        }
        hash
    }

    /// A small deterministic generator, so the property tests need no dependency and repeat exactly.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn windows_match_the_definition_for_random_keys_and_inputs() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut key = [0u8; KEY_LEN];
            key.iter_mut().for_each(|b| *b = rng.next() as u8);
            let t = Toeplitz::new(key);
            let len = (rng.next() % (Toeplitz::MAX_INPUT as u64 + 1)) as usize;
            let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(t.hash(&input), reference_hash(&key, &input), "key {key:02x?} input {input:02x?}");
        }
    }

    #[test]
    fn hash_is_linear_over_xor() {
        // Toeplitz is linear over GF(2): h(a ^ b) = h(a) ^ h(b), h(0) = 0.
        let t = Toeplitz::default();
        let mut rng = XorShift(7);
        assert_eq!(t.hash(&[0; 12]), 0);
        for _ in 0..500 {
            let a: Vec<u8> = (0..12).map(|_| rng.next() as u8).collect();
            let b: Vec<u8> = (0..12).map(|_| rng.next() as u8).collect();
            let x: Vec<u8> = a.iter().zip(&b).map(|(a, b)| a ^ b).collect();
            assert_eq!(t.hash(&x), t.hash(&a) ^ t.hash(&b));
        }
    }

    #[test]
    fn queue_of_follows_an_i_mod_n_table() {
        for n in 1..=16u16 {
            let reta: Vec<u16> = (0..DEFAULT_RETA_SIZE).map(|i| (i % u32::from(n)) as u16).collect();
            for hash in [0u32, 1, 2, 127, 128, 129, 0x51cc_c178, 0xffff_ffff, 0x8000_0000] {
                assert_eq!(queue_of(hash, n), reta[(hash % DEFAULT_RETA_SIZE) as usize], "hash {hash:#x}, {n} queues");
            }
        }
        assert_eq!(queue_of(12345, 0), 0);
        // Powers of two divide every table size: the choice does not depend on it.
        for size in [64, 128, 256, 512] {
            assert_eq!(queue_of_reta(0x51cc_c178, 4, size), (0x51cc_c178u32 % 4) as u16);
        }
        assert_eq!(queue_of_reta(200, 3, 0), queue_of(200, 3));
    }

    #[test]
    fn source_port_for_queue_lands_on_the_queue_at_the_receiver() {
        let mut rng = XorShift(42);
        let t = Toeplitz::default();
        for _ in 0..300 {
            let local = Ipv4Addr::from(rng.next() as u32);
            let remote = SocketAddrV4::new(Ipv4Addr::from(rng.next() as u32), rng.next() as u16);
            let n = (rng.next() % 8 + 1) as u16;
            let queue = (rng.next() % u64::from(n)) as u16;
            let start = (rng.next() % 60000) as u16;
            let port = source_port_for_queue(local, remote, queue, n, start).expect("some port lands on every queue");
            assert!(port >= start.max(1));
            // The receiver hashes src = us, dst = it.
            let hash = t.hash_ipv4_udp(local, *remote.ip(), port, remote.port());
            assert_eq!(queue_of(hash, n), queue);
            // It is the first such port.
            for earlier in start.max(1)..port {
                let h = t.hash_ipv4_udp(local, *remote.ip(), earlier, remote.port());
                assert_ne!(queue_of(h, n), queue, "port {earlier} before {port} already lands on {queue}");
            }
        }
    }

    #[test]
    fn source_port_for_queue_rejects_out_of_range_queues_and_never_picks_port_zero() {
        let remote = SocketAddrV4::new(ip("10.0.0.1"), 7000);
        assert_eq!(source_port_for_queue(ip("10.0.0.2"), remote, 2, 2, 1000), None);
        assert_eq!(source_port_for_queue(ip("10.0.0.2"), remote, 0, 1, 0), Some(1));
        assert_eq!(source_port_for_queue(ip("10.0.0.2"), remote, 0, 0, 5), Some(5));
        // Near the top of the port range there may be no port left for a queue.
        let none_left = (0..4u16).any(|q| source_port_for_queue(ip("10.0.0.2"), remote, q, 4, u16::MAX).is_none());
        assert!(none_left, "one port cannot land on all four queues");
    }

    #[test]
    fn spreads_consecutive_source_ports_over_every_queue() {
        // The key must not be singular for the low bits of the source port: 64 consecutive ports
        // reach every queue of 2, 4 and 8.
        let t = Toeplitz::default();
        for n in [2u16, 4, 8] {
            let mut seen = vec![false; usize::from(n)];
            for port in 40000..40064u16 {
                seen[usize::from(queue_of(t.hash_ipv4_udp(ip("10.0.0.2"), ip("10.0.0.1"), port, 7000), n))] = true;
            }
            assert!(seen.iter().all(|&s| s), "{n} queues: {seen:?}");
        }
    }
}
