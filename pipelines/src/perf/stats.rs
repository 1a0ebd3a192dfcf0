//! Message content, digests and latency histograms of `rosette-perf`: everything both sides must agree
//! on, with no allocation after construction.
//!
//! A message of `size` bytes (at least [`MSG_HEADER_LEN`]) is: the sequence number (u64 LE, with
//! [`PING_FLAG`] set for ping-pong messages), the sender's TSC when the message was made (u64 LE), then
//! a pattern derived from the sequence number, so a receiver can check a message alone (unordered) and
//! the whole run can be checked with one [`Digest`] per side (reliable, streaming).

/// Bytes of the sequence number and timestamp at the front of every message.
pub const MSG_HEADER_LEN: usize = 16;

/// Set in the sequence number of ping-pong messages (the receiver echoes them; they are not counted).
pub const PING_FLAG: u64 = 1 << 63;

/// Byte `i` of the pattern is `base ^ (i as u8)`: one period of `i as u8`, so that filling and
/// checking run over fixed-size chunks the compiler turns into vector instructions (the application's
/// own per-byte work must not be what a transport benchmark measures).
const PERIOD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// Writes message `seq` with timestamp `tsc` into `out` (all of it).
#[inline]
pub fn fill_message(out: &mut [u8], seq: u64, tsc: u64) {
    out[..8].copy_from_slice(&seq.to_le_bytes());
    out[8..16].copy_from_slice(&tsc.to_le_bytes());
    let base = seq as u8;
    for chunk in out[MSG_HEADER_LEN..].chunks_mut(PERIOD.len()) {
        for (b, &p) in chunk.iter_mut().zip(PERIOD.iter()) {
            *b = base ^ p;
        }
    }
}

/// Writes bytes `at..at + out.len()` of message `seq` with timestamp `tsc` into `out`: what
/// [`fill_message`] writes there, for a message written in pieces straight into the packets that
/// carry it.
#[inline]
pub fn fill_message_part(out: &mut [u8], seq: u64, tsc: u64, at: usize) {
    let mut header = [0u8; MSG_HEADER_LEN];
    header[..8].copy_from_slice(&seq.to_le_bytes());
    header[8..].copy_from_slice(&tsc.to_le_bytes());
    let head = MSG_HEADER_LEN.saturating_sub(at).min(out.len());
    out[..head].copy_from_slice(&header[at.min(MSG_HEADER_LEN)..at.min(MSG_HEADER_LEN) + head]);
    let (base, body) = (seq as u8, &mut out[head..]);
    // Pattern position of body[0]; first up to a period boundary, then whole periods.
    let phase = (at + head).saturating_sub(MSG_HEADER_LEN) % PERIOD.len();
    let first = (PERIOD.len() - phase).min(body.len());
    let (lead, rest) = body.split_at_mut(first);
    for (b, &p) in lead.iter_mut().zip(PERIOD[phase..].iter()) {
        *b = base ^ p;
    }
    for chunk in rest.chunks_mut(PERIOD.len()) {
        for (b, &p) in chunk.iter_mut().zip(PERIOD.iter()) {
            *b = base ^ p;
        }
    }
}

/// The (sequence number, timestamp) header of a message.
#[inline]
pub fn message_header(msg: &[u8]) -> (u64, u64) {
    let mut seq = [0u8; 8];
    let mut tsc = [0u8; 8];
    seq.copy_from_slice(&msg[..8]);
    tsc.copy_from_slice(&msg[8..16]);
    (u64::from_le_bytes(seq), u64::from_le_bytes(tsc))
}

/// True when the pattern after the header is the one [`fill_message`] writes for `seq`.
#[inline]
pub fn pattern_ok(msg: &[u8], seq: u64) -> bool {
    let base = seq as u8;
    msg[MSG_HEADER_LEN..]
        .chunks(PERIOD.len())
        .all(|chunk| chunk.iter().zip(PERIOD.iter()).fold(0u8, |diff, (&b, &p)| diff | (b ^ base ^ p)) == 0)
}

/// An FNV-1a-style digest over 64-bit words of a byte stream. The result depends only on the bytes
/// and their order, not on how they were split between calls (streams arrive in arbitrary segments),
/// and it costs one multiply per 8 bytes (byte-wise FNV would cost 8 and show up in the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    hash: u64,
    carry: [u8; 8],
    carried: usize,
    len: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Digest {
    fn default() -> Self {
        Digest { hash: FNV_OFFSET, carry: [0; 8], carried: 0, len: 0 }
    }
}

impl Digest {
    /// An empty digest.
    pub fn new() -> Digest {
        Digest::default()
    }

    #[inline]
    fn word(&mut self, w: u64) {
        self.hash = (self.hash ^ w).wrapping_mul(FNV_PRIME);
    }

    /// Feeds the next bytes of the stream.
    #[inline]
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.carried > 0 {
            let take = (8 - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&bytes[..take]);
            self.carried += take;
            bytes = &bytes[take..];
            if self.carried < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    /// The digest of everything fed so far (the bytes left over from the last word and the length
    /// are mixed in).
    pub fn value(&self) -> u64 {
        let mut d = *self;
        if d.carried > 0 {
            let mut w = [0u8; 8];
            w[..d.carried].copy_from_slice(&d.carry[..d.carried]);
            d.word(u64::from_le_bytes(w));
        }
        d.word(d.len);
        d.hash
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Sub-buckets per power of two: values are kept to within 1/32 (about 3 %).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 64 * SUB;

/// A log-linear histogram of nanosecond values with a fixed set of buckets (allocated once), for
/// percentiles of latencies recorded in a poll loop.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl core::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Histogram").field("total", &self.total).finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0 }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let top = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = top - SUB_BITS;
    let sub = ((v >> shift) as usize) & (SUB - 1);
    ((shift + 1) as usize) * SUB + sub
}

fn bucket_value(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let shift = (b / SUB - 1) as u32;
    let sub = (b % SUB) as u64;
    // The middle of the bucket.
    ((SUB as u64 + sub) << shift) + ((1u64 << shift) >> 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value below which a fraction `q` (0..=1) of the recorded values lie (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(b);
            }
        }
        bucket_value(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_how_bytes_are_split() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = Digest::new();
        whole.update(&bytes);
        for split in [1, 3, 7, 8, 13, 64, 999] {
            let mut parts = Digest::new();
            for c in bytes.chunks(split) {
                parts.update(c);
            }
            assert_eq!(parts.value(), whole.value(), "split {split}");
        }
        let mut other = Digest::new();
        other.update(&bytes[..999]);
        assert_ne!(other.value(), whole.value());
    }

    #[test]
    fn a_message_written_in_parts_is_the_whole_message() {
        let mut whole = vec![0u8; 1000];
        fill_message(&mut whole, 300, 77);
        for cut in [1, 5, 16, 17, 255, 256, 257, 999] {
            let mut parts = vec![0u8; 1000];
            let mut at = 0;
            while at < parts.len() {
                let end = (at + cut).min(parts.len());
                fill_message_part(&mut parts[at..end], 300, 77, at);
                at = end;
            }
            assert_eq!(parts, whole, "pieces of {cut}");
        }
    }

    #[test]
    fn messages_check_themselves() {
        let mut m = [0u8; 64];
        fill_message(&mut m, 42, 7);
        assert_eq!(message_header(&m), (42, 7));
        assert!(pattern_ok(&m, 42));
        m[40] ^= 1;
        assert!(!pattern_ok(&m, 42));
    }

    #[test]
    fn histogram_quantiles_are_within_three_percent() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.03, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.03, "{p99}");
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }
}
