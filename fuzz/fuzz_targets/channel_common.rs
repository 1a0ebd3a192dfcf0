//! Shared pieces of the channel fuzz targets: an input cursor and the simulated peer's data.
// Each target includes this file as its own module and uses part of it.
#![allow(dead_code)]

use rosette_proto::buf::{PacketBuf, VecBuf};
use rosette_proto::channel::conn::Config;
use rosette_proto::wire::transport::{Packet, Repr};

/// Splits the fuzz input into records: `[op][len][len bytes]`.
pub struct Records<'a>(pub &'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&op, rest) = self.0.split_first()?;
        let (&len, rest) = rest.split_first().unwrap_or((&0, &[]));
        let len = usize::from(len).min(rest.len());
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some((op, body))
    }
}

/// Small buffers and windows, so the fuzzer reaches the edges (full windows, wrap) quickly.
pub fn config() -> Config {
    Config { mss: 200, send_capacity: 16, recv_capacity: 8, max_message_size: 7 * 200, ..Config::default() }
}

/// Length of message `i` (0 to 1399 bytes).
pub fn message_len(i: usize) -> usize {
    (i * 379) % 1400
}

/// Packets message `i` takes with [`config`]'s mss.
pub fn message_packets(i: usize) -> usize {
    message_len(i).div_ceil(200).max(1)
}

/// Small pool buffers (mss 200 + header + headroom fit in 512 bytes): cheap to allocate.
pub fn pool() -> rosette_proto::buf::VecPool {
    rosette_proto::buf::VecPool::new(512, 128)
}

/// Message `i` of the simulated peer (content from `i`).
pub fn message(i: usize) -> Vec<u8> {
    let len = message_len(i);
    (0..len).map(|j| (i * 13 + j * 7) as u8).collect()
}

/// Byte `i` of the simulated peer's stream.
pub fn stream_byte(i: usize) -> u8 {
    (i * 31 + (i >> 9)) as u8
}

/// True if `bytes` is a valid transport packet (so injecting it may forge data).
pub fn parses(bytes: &[u8]) -> bool {
    Packet::new_checked(bytes).and_then(|p| Repr::parse(&p)).is_ok()
}

/// XORs `mask` into `buf` at positions chosen by the mask bytes themselves.
pub fn mutate(buf: &mut VecBuf, mask: &[u8]) {
    let len = buf.len();
    if len == 0 {
        return;
    }
    for pair in mask.chunks(2) {
        let at = usize::from(pair[0]) % len;
        buf.data_mut()[at] ^= pair.get(1).copied().unwrap_or(0xff);
    }
}

/// Overwrites bytes of `buf` with `patch` at offset `patch[0]` and fixes the checksum: a
/// well-formed forgery.
pub fn forge(buf: &mut VecBuf, patch: &[u8]) {
    if let Some((&at, body)) = patch.split_first() {
        let data = buf.data_mut();
        for (i, b) in body.iter().enumerate() {
            if let Some(slot) = data.get_mut(usize::from(at) + i) {
                *slot = *b;
            }
        }
    }
    if buf.len() >= rosette_proto::wire::transport::HEADER_LEN {
        Packet::new_unchecked(buf.data_mut()).fill_checksum();
    }
}
