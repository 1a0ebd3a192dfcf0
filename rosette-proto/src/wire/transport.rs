//! rosette's transport header, carried as the payload of a UDP datagram.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-------------------------------+---------------+---------------+
//! |         magic 0x5254          |  version (1)  |  packet type  |
//! +---------------+---------------+-------------------------------+
//! |     flags     |  SACK count   |         payload length        |
//! +---------------+---------------+-------------------------------+
//! |                 source connection id (sender's)               |
//! |              destination connection id (receiver's)           |
//! |                    epoch (sender's incarnation)               |
//! |                     sequence number (packets)                 |
//! |                 cumulative acknowledgement number             |
//! |                 receive window (packets, from ack)            |
//! |       CRC-32C of the whole packet, this field taken as 0      |
//! +---------------------------------------------------------------+
//! |      SACK count × (first sequence, one-past-last sequence)    |
//! +---------------------------------------------------------------+
//! |                            payload                            |
//! ```
//!
//! All fields are big-endian. The payload length must match the bytes that follow the header
//! exactly, so a truncated datagram is recognised as malformed even before the checksum is checked.
//!
//! As in smoltcp, [`Packet`] is a view over a byte buffer: [`Packet::new_checked`] validates the
//! lengths once, after which every accessor is infallible. **A checked packet never panics, whatever
//! its content**; [`Repr::parse`] additionally checks magic, version, type and checksum.
#![forbid(unsafe_code)]

use core::fmt;

/// The first two bytes of every rosette transport packet ("RT").
pub const MAGIC: u16 = 0x5254;
/// The only protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed part of the header (without SACK blocks).
pub const HEADER_LEN: usize = 36;
/// Bytes per SACK block.
pub const SACK_BLOCK_LEN: usize = 8;
/// Most SACK blocks a packet may carry.
pub const MAX_SACK_BLOCKS: usize = 4;
/// Longest possible header (fixed part and all SACK blocks).
pub const MAX_HEADER_LEN: usize = HEADER_LEN + MAX_SACK_BLOCKS * SACK_BLOCK_LEN;

/// Flag: this data packet is the last segment of a message.
pub const FLAG_END_OF_MESSAGE: u8 = 0x01;
/// Flag: the receiver should answer with an acknowledgement at once (window probe).
pub const FLAG_ACK_REQUESTED: u8 = 0x02;
/// Flag: the payload is several whole messages packed as records ([`crate::wire::packed`]).
pub const FLAG_PACKED: u8 = crate::wire::packed::FLAG_PACKED;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const KIND: usize = 3;
    pub const FLAGS: usize = 4;
    pub const SACK_COUNT: usize = 5;
    pub const PAYLOAD_LEN: Range<usize> = 6..8;
    pub const SRC_CONN: Range<usize> = 8..12;
    pub const DST_CONN: Range<usize> = 12..16;
    pub const EPOCH: Range<usize> = 16..20;
    pub const SEQ: Range<usize> = 20..24;
    pub const ACK: Range<usize> = 24..28;
    pub const WINDOW: Range<usize> = 28..32;
    pub const CHECKSUM: Range<usize> = 32..36;
}

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header, or its payload length field disagrees with its size.
    Truncated,
    /// Wrong magic, version or packet type, or too many SACK blocks.
    Malformed,
    /// The CRC-32C does not match.
    Checksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "transport packet truncated",
            Error::Malformed => "malformed transport packet",
            Error::Checksum => "transport packet checksum mismatch",
        })
    }
}

impl std::error::Error for Error {}

/// The packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Connection request (sequence 0 of the initiator).
    Syn,
    /// Connection accept (sequence 0 of the acceptor), acknowledges the Syn.
    SynAck,
    /// Data segment.
    Data,
    /// Pure acknowledgement, may carry SACK blocks; consumes no sequence number.
    Ack,
    /// End of the sender's data (consumes one sequence number).
    Fin,
    /// Abort the connection; consumes no sequence number.
    Reset,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => PacketType::Syn,
            2 => PacketType::SynAck,
            3 => PacketType::Data,
            4 => PacketType::Ack,
            5 => PacketType::Fin,
            6 => PacketType::Reset,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            PacketType::Syn => 1,
            PacketType::SynAck => 2,
            PacketType::Data => 3,
            PacketType::Ack => 4,
            PacketType::Fin => 5,
            PacketType::Reset => 6,
        }
    }

    /// True for the types that occupy a sequence number and are delivered reliably.
    pub fn is_sequenced(self) -> bool {
        matches!(self, PacketType::Syn | PacketType::SynAck | PacketType::Data | PacketType::Fin)
    }
}

/// A read/write view of a transport packet over a byte buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`]; every accessor of the result is panic-free.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header, the announced SACK blocks and exactly the
    /// announced payload.
    pub fn check_len(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let sacks = usize::from(data[field::SACK_COUNT]);
        if sacks > MAX_SACK_BLOCKS {
            return Err(Error::Malformed);
        }
        let header_len = HEADER_LEN + sacks * SACK_BLOCK_LEN;
        let payload_len = usize::from(be16(&data[field::PAYLOAD_LEN]));
        if data.len() != header_len + payload_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The magic field.
    pub fn magic(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::MAGIC])
    }
    /// The version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// The raw packet type.
    pub fn kind_raw(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    /// The flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// Number of SACK blocks.
    pub fn sack_count(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::SACK_COUNT])
    }
    /// Payload length field.
    pub fn payload_len(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::PAYLOAD_LEN]))
    }
    /// Sender's connection id.
    pub fn src_conn(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SRC_CONN])
    }
    /// Receiver's connection id.
    pub fn dst_conn(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::DST_CONN])
    }
    /// Sender's epoch.
    pub fn epoch(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::EPOCH])
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ])
    }
    /// Cumulative acknowledgement.
    pub fn ack(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK])
    }
    /// Advertised window.
    pub fn window(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::WINDOW])
    }
    /// Checksum field.
    pub fn checksum(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::CHECKSUM])
    }
    /// Header length including SACK blocks.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.sack_count().min(MAX_SACK_BLOCKS) * SACK_BLOCK_LEN
    }
    /// SACK block `i` as (first, one past last); `None` past [`Packet::sack_count`].
    pub fn sack_block(&self, i: usize) -> Option<(u32, u32)> {
        if i >= self.sack_count().min(MAX_SACK_BLOCKS) {
            return None;
        }
        let at = HEADER_LEN + i * SACK_BLOCK_LEN;
        let b = self.buffer.as_ref().get(at..at + SACK_BLOCK_LEN)?;
        Some((be32(&b[0..4]), be32(&b[4..8])))
    }
    /// The payload (empty if the header is longer than the buffer).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
    /// Recomputes the CRC-32C and compares it with the checksum field.
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        data.len() >= HEADER_LEN && packet_crc(data) == self.checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn put16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    fn put32(&mut self, r: core::ops::Range<usize>, v: u32) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the cumulative acknowledgement (the checksum must be refilled afterwards).
    pub fn set_ack(&mut self, v: u32) {
        self.put32(field::ACK, v)
    }
    /// Sets the window (the checksum must be refilled afterwards).
    pub fn set_window(&mut self, v: u32) {
        self.put32(field::WINDOW, v)
    }
    /// Computes the CRC-32C over the whole packet and stores it.
    pub fn fill_checksum(&mut self) {
        let crc = packet_crc(self.buffer.as_ref());
        self.put32(field::CHECKSUM, crc);
    }
}

/// CRC-32C of a packet with its checksum field taken as zero.
fn packet_crc(data: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(&data[..field::CHECKSUM.start]);
    crc.update(&[0; 4]);
    crc.update(&data[field::CHECKSUM.end..]);
    crc.finish()
}

/// A plain representation of a transport header (the payload stays in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Packet type.
    pub kind: PacketType,
    /// Flags (`FLAG_*`).
    pub flags: u8,
    /// Sender's connection id.
    pub src_conn: u32,
    /// Receiver's connection id (0 in a Syn: not yet known).
    pub dst_conn: u32,
    /// Sender's epoch.
    pub epoch: u32,
    /// Sequence number.
    pub seq: u32,
    /// Cumulative acknowledgement: every sequence number below it was received.
    pub ack: u32,
    /// Receive window in packets, counted from `ack`.
    pub window: u32,
    /// SACK blocks (first, one past last); only the first `sack_count` are meaningful.
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    /// Number of meaningful SACK blocks.
    pub sack_count: u8,
    /// Length of the payload that follows the header.
    pub payload_len: u16,
}

impl Repr {
    /// A header with the given type and identifiers and everything else zero.
    pub fn new(kind: PacketType, src_conn: u32, dst_conn: u32, epoch: u32) -> Self {
        Repr {
            kind,
            flags: 0,
            src_conn,
            dst_conn,
            epoch,
            seq: 0,
            ack: 0,
            window: 0,
            sack: [(0, 0); MAX_SACK_BLOCKS],
            sack_count: 0,
            payload_len: 0,
        }
    }

    /// Parses and validates a checked packet: magic, version, type, checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.magic() != MAGIC || packet.version() != VERSION {
            return Err(Error::Malformed);
        }
        let kind = PacketType::from_u8(packet.kind_raw()).ok_or(Error::Malformed)?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let mut sack = [(0, 0); MAX_SACK_BLOCKS];
        let sack_count = packet.sack_count();
        for (i, block) in sack.iter_mut().enumerate().take(sack_count) {
            *block = packet.sack_block(i).ok_or(Error::Truncated)?;
        }
        Ok(Repr {
            kind,
            flags: packet.flags(),
            src_conn: packet.src_conn(),
            dst_conn: packet.dst_conn(),
            epoch: packet.epoch(),
            seq: packet.seq(),
            ack: packet.ack(),
            window: packet.window(),
            sack,
            sack_count: sack_count as u8,
            payload_len: packet.payload_len() as u16,
        })
    }

    /// Header length of this representation (fixed part and SACK blocks).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + usize::from(self.sack_count).min(MAX_SACK_BLOCKS) * SACK_BLOCK_LEN
    }

    /// Writes the header into the front of `buf` and fills the checksum over the whole buffer.
    ///
    /// `buf` must be exactly `header_len() + payload_len` bytes with the payload already in place
    /// after the header; otherwise [`Error::Truncated`] is returned and nothing is written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let header_len = self.header_len();
        if buf.len() != header_len + usize::from(self.payload_len) {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.put16(field::MAGIC, MAGIC);
        p.buffer[field::VERSION] = VERSION;
        p.buffer[field::KIND] = self.kind.to_u8();
        p.buffer[field::FLAGS] = self.flags;
        p.buffer[field::SACK_COUNT] = self.sack_count.min(MAX_SACK_BLOCKS as u8);
        p.put16(field::PAYLOAD_LEN, self.payload_len);
        p.put32(field::SRC_CONN, self.src_conn);
        p.put32(field::DST_CONN, self.dst_conn);
        p.put32(field::EPOCH, self.epoch);
        p.put32(field::SEQ, self.seq);
        p.put32(field::ACK, self.ack);
        p.put32(field::WINDOW, self.window);
        let count = usize::from(self.sack_count).min(MAX_SACK_BLOCKS);
        for (i, (first, end)) in self.sack.iter().take(count).enumerate() {
            let at = HEADER_LEN + i * SACK_BLOCK_LEN;
            p.put32(at..at + 4, *first);
            p.put32(at + 4..at + 8, *end);
        }
        p.fill_checksum();
        Ok(())
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
///
/// By default table-driven, slicing by eight bytes ([`crc32c_update_software`]): eight independent
/// table lookups per eight-byte step instead of one dependent lookup per byte, several times faster
/// than the byte-wise table. The hardware `crc32` instruction needs `unsafe` intrinsics, which this
/// module forbids, so a faster implementation is supplied from outside through
/// [`set_crc32c_accelerator`] (the substrate installs an SSE4.2 one when the CPU has it); every
/// [`Crc32c::update`] then goes through it.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

/// `CRC32C_TABLES[0]` is the classic byte-wise table; `CRC32C_TABLES[k][b]` is the CRC of byte `b`
/// followed by `k` zero bytes, so eight lookups combine the contributions of eight bytes at once.
const CRC32C_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// One byte-wise CRC step (the tail that does not fill a whole eight-byte chunk).
#[inline(always)]
fn crc_byte(crc: u32, b: u8) -> u32 {
    CRC32C_TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
}

/// Advances a raw CRC-32C register over `bytes` in software (slicing-by-8) and returns the new register.
///
/// The register is the pre-inverted state [`Crc32c`] keeps: `!0` at the start, inverted once at the end
/// to give the checksum. An accelerator installed with [`set_crc32c_accelerator`] must compute exactly
/// this function; it is public so that such an implementation can be tested against it.
pub fn crc32c_update_software(reg: u32, bytes: &[u8]) -> u32 {
    let t = &CRC32C_TABLES;
    let mut crc = reg;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        // The reflected CRC consumes bytes least significant first: fold the register into the
        // first four bytes, then each byte's table accounts for the bytes that follow it.
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = crc_byte(crc, b);
    }
    crc
}

/// The process-wide CRC-32C register update used instead of the software one, once installed.
static ACCELERATOR: std::sync::OnceLock<fn(u32, &[u8]) -> u32> = std::sync::OnceLock::new();

/// Installs a faster CRC-32C register update for the whole process; every [`Crc32c::update`] uses it
/// from then on.
///
/// `f(reg, bytes)` must return exactly what [`crc32c_update_software`]`(reg, bytes)` returns, for every
/// register and every byte slice (no inversion inside: [`Crc32c`] inverts at the start and the end).
/// Installation happens at most once: returns `true` if `f` was installed by this call, `false` if an
/// accelerator was already in place (which stays).
pub fn set_crc32c_accelerator(f: fn(u32, &[u8]) -> u32) -> bool {
    ACCELERATOR.set(f).is_ok()
}

/// Whether a CRC-32C accelerator is installed (see [`set_crc32c_accelerator`]).
pub fn crc32c_accelerated() -> bool {
    ACCELERATOR.get().is_some()
}

impl Crc32c {
    /// A fresh CRC computation.
    pub fn new() -> Self {
        Crc32c(!0)
    }
    /// Feeds bytes, through the installed accelerator if there is one (see [`set_crc32c_accelerator`]).
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = match ACCELERATOR.get() {
            Some(accelerated) => accelerated(self.0, bytes),
            None => crc32c_update_software(self.0, bytes),
        };
    }
    /// The CRC of everything fed so far.
    pub fn finish(&self) -> u32 {
        !self.0
    }
    /// CRC-32C of one slice.
    pub fn checksum(bytes: &[u8]) -> u32 {
        let mut crc = Crc32c::new();
        crc.update(bytes);
        crc.finish()
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Repr {
        let mut r = Repr::new(PacketType::Ack, 7, 9, 3);
        r.seq = 100;
        r.ack = 42;
        r.window = 64;
        r.flags = FLAG_ACK_REQUESTED;
        r.sack[0] = (44, 47);
        r.sack[1] = (50, 51);
        r.sack_count = 2;
        r.payload_len = 5;
        r
    }

    #[test]
    fn crc32c_known_vector() {
        assert_eq!(Crc32c::checksum(b"123456789"), 0xE306_9283);
        assert_eq!(Crc32c::checksum(b""), 0);
    }

    #[test]
    fn crc32c_software_known_vector() {
        // Whatever accelerator another test in this process may have installed, the software path
        // itself must give the published check value.
        assert_eq!(!crc32c_update_software(!0, b"123456789"), 0xE306_9283);
        assert_eq!(!crc32c_update_software(!0, b""), 0);
        let split = crc32c_update_software(crc32c_update_software(!0, b"1234"), b"56789");
        assert_eq!(!split, 0xE306_9283);
    }

    /// The byte-at-a-time reference the sliced implementation must agree with.
    fn crc32c_bytewise(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |crc, &b| crc_byte(crc, b))
    }

    #[test]
    fn crc32c_sliced_matches_bytewise() {
        // Deterministic pseudo-random data (xorshift), so a failure reproduces.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = (x % 64) as usize;
            let len = ((x >> 8) % 1500) as usize;
            let s = &data[start..start + len];
            assert_eq!(Crc32c::checksum(s), crc32c_bytewise(s), "start {start} len {len}");
            // The sliced software path itself, whether or not an accelerator is installed.
            assert_eq!(!crc32c_update_software(!0, s), crc32c_bytewise(s), "start {start} len {len}");
            // Feeding in two arbitrary pieces must give the same result as one slice.
            let split = ((x >> 24) as usize) % (len + 1);
            let mut c = Crc32c::new();
            c.update(&s[..split]);
            c.update(&s[split..]);
            assert_eq!(c.finish(), crc32c_bytewise(s), "start {start} len {len} split {split}");
        }
        for len in 0..=40 {
            assert_eq!(Crc32c::checksum(&data[..len]), crc32c_bytewise(&data[..len]), "len {len}");
        }
    }

    #[test]
    fn emit_parse_round_trip() {
        let r = sample();
        let mut buf = vec![0u8; r.header_len() + 5];
        buf[r.header_len()..].copy_from_slice(b"hello");
        r.emit(&mut buf).unwrap();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), r);
        assert_eq!(p.payload(), b"hello");
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let r = sample();
        let mut buf = vec![0u8; r.header_len() + 5];
        buf[r.header_len()..].copy_from_slice(b"hello");
        r.emit(&mut buf).unwrap();
        for i in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(Packet::new_checked(&b[..]).and_then(|p| Repr::parse(&p)).is_err(), "bit {i}");
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let r = sample();
        let mut buf = vec![0u8; r.header_len() + 5];
        r.emit(&mut buf).unwrap();
        for len in 0..buf.len() {
            assert_eq!(Packet::new_checked(&buf[..len]).unwrap_err(), Error::Truncated);
        }
        let mut bad = buf.clone();
        bad[5] = 9;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
        let mut bad = buf.clone();
        bad[3] = 0;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn unchecked_accessors_on_checked_view_never_panic() {
        // A tiny deterministic generator of arbitrary buffers.
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 120) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.payload(), p.sack_block(0), p.sack_block(7), Repr::parse(&p));
            }
        }
    }
}
