//! The packet-buffer abstraction shared by every layer above the substrate.
//!
//! Wire formats and channels are written against [`PacketBuf`] and [`BufPool`], never against DPDK
//! types, so the same code runs on DPDK mbufs in production (the substrate implements both traits for
//! its `Mbuf` and `Mempool`) and on [`VecBuf`] / [`VecPool`] in deterministic simulation and fuzzing,
//! without EAL.
//!
//! A buffer is one contiguous data region with headroom before it and tailroom after it, like a
//! single-segment `rte_mbuf`: headers are added with [`PacketBuf::prepend`] and removed with
//! [`PacketBuf::adjust`] without moving the payload.
#![forbid(unsafe_code)]

use core::fmt;

/// Why a buffer operation was refused. Buffers never panic on a bad length; they say no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufError {
    /// Not enough headroom to prepend the requested bytes.
    NoHeadroom,
    /// Not enough tailroom to append the requested bytes.
    NoTailroom,
    /// Asked to remove more bytes than the buffer holds.
    TooShort,
    /// The buffer is shared (see [`PacketBuf::share`]) and cannot be changed until the other handle is
    /// gone.
    Shared,
}

impl fmt::Display for BufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BufError::NoHeadroom => "not enough headroom in the packet buffer",
            BufError::NoTailroom => "not enough tailroom in the packet buffer",
            BufError::TooShort => "packet buffer holds fewer bytes than requested",
            BufError::Shared => "packet buffer is shared and cannot be changed",
        })
    }
}

impl std::error::Error for BufError {}

/// An owned packet buffer: one contiguous run of bytes with room to grow at either end.
///
/// Dropping a buffer returns its memory to wherever it came from (for an mbuf, its mempool).
pub trait PacketBuf: Sized {
    /// The bytes of the packet.
    fn data(&self) -> &[u8];
    /// The bytes of the packet, writable. A shared buffer (see [`PacketBuf::is_shared`]) returns an
    /// empty slice: its bytes may be read by the other handle at the same time.
    fn data_mut(&mut self) -> &mut [u8];
    /// Number of bytes in the packet.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes that can still be prepended.
    fn headroom(&self) -> usize;
    /// Bytes that can still be appended.
    fn tailroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front and returns them (uninitialised content).
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Grows the packet by `n` bytes at the back and returns them (uninitialised content).
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Removes `n` bytes from the front (a consumed header).
    fn adjust(&mut self, n: usize) -> Result<(), BufError>;
    /// Removes `n` bytes from the back (padding, a trailer).
    fn trim(&mut self, n: usize) -> Result<(), BufError>;
    /// A second handle to the same packet, used to keep a transmitted packet for retransmission
    /// without copying it. For mbufs this raises the reference count; a buffer type that cannot share
    /// returns a copy. Returns `None` when no copy can be made (pool empty).
    fn share(&self) -> Option<Self>;
    /// True while another handle from [`PacketBuf::share`] still refers to the same bytes; writing
    /// through [`PacketBuf::data_mut`] is only allowed when this is false.
    fn is_shared(&self) -> bool;
    /// True when [`PacketBuf::data`] covers the whole packet (one segment).
    fn is_contiguous(&self) -> bool {
        self.segment_count() == 1
    }

    // --- Chains: a packet (or a message) as several buffers linked behind one handle. ---
    //
    // `data`, `append`, `trim` and friends act on the first segment; a chain is built with
    // `chain`, read with `segment`, and taken apart with `split_first`. Chaining never copies and
    // never allocates from the heap (for mbufs it is DPDK's own segment list).

    /// Appends `tail` (and its own segments) behind this buffer's last segment, taking ownership.
    /// Gives both back when the buffer type cannot chain (the default) or refuses (a shared head, a
    /// segment limit).
    fn chain(self, tail: Self) -> Result<Self, (Self, Self)> {
        Err((self, tail))
    }
    /// Number of segments (1 for a plain buffer).
    fn segment_count(&self) -> usize {
        1
    }
    /// The bytes of segment `index` (0 is [`PacketBuf::data`]), `None` past the last one.
    fn segment(&self, index: usize) -> Option<&[u8]> {
        (index == 0).then(|| self.data())
    }
    /// Bytes in all segments.
    fn total_len(&self) -> usize {
        self.len()
    }
    /// Detaches the first segment: it comes back alone, the rest (if any) as a chain of its own.
    /// Refuses (gives the buffer back unchanged) when the buffer is shared.
    fn split_first(self) -> Result<(Self, Option<Self>), Self> {
        Ok((self, None))
    }
}

/// The segments of a (possibly chained) buffer, in order, as byte slices.
#[derive(Debug, Clone)]
pub struct Segments<'a, B> {
    buf: &'a B,
    next: usize,
}

impl<'a, B: PacketBuf> Segments<'a, B> {
    /// Iterates the segments of `buf`.
    pub fn new(buf: &'a B) -> Self {
        Segments { buf, next: 0 }
    }
}

impl<'a, B: PacketBuf> Iterator for Segments<'a, B> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let seg = self.buf.segment(self.next)?;
        self.next += 1;
        Some(seg)
    }
}

/// A source of empty packet buffers (for mbufs, a mempool).
pub trait BufPool {
    /// The buffers this pool hands out.
    type Buf: PacketBuf;
    /// An empty buffer with the pool's default headroom, or `None` when the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
}

/// Headroom of a [`VecBuf`] from [`VecPool::default`]; the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Data room of a [`VecBuf`] from [`VecPool::default`] (headroom included), as a default DPDK mbuf.
pub const DEFAULT_BUF_SIZE: usize = 2048 + DEFAULT_HEADROOM;

/// A heap-backed packet buffer for simulation, fuzzing and tests. Chains (like an mbuf's segment
/// list) hold their further segments in boxes: simulation is not the allocation-free path.
#[derive(Clone, PartialEq, Eq)]
pub struct VecBuf {
    storage: Box<[u8]>,
    start: usize,
    end: usize,
    next: Option<Box<VecBuf>>,
}

impl VecBuf {
    /// An empty buffer of `capacity` bytes in all, with `headroom` of them before the data.
    ///
    /// `headroom` is clamped to `capacity`.
    pub fn with_capacity(capacity: usize, headroom: usize) -> Self {
        let headroom = headroom.min(capacity);
        VecBuf { storage: vec![0; capacity].into_boxed_slice(), start: headroom, end: headroom, next: None }
    }

    /// A buffer holding a copy of `bytes`, with [`DEFAULT_HEADROOM`] before it and room to append up to
    /// [`DEFAULT_BUF_SIZE`] in all.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let capacity = (DEFAULT_HEADROOM + bytes.len()).max(DEFAULT_BUF_SIZE);
        let mut buf = VecBuf::with_capacity(capacity, DEFAULT_HEADROOM);
        buf.end = buf.start + bytes.len();
        buf.storage[buf.start..buf.end].copy_from_slice(bytes);
        buf
    }
}

impl fmt::Debug for VecBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VecBuf")
            .field("len", &self.len())
            .field("headroom", &self.start)
            .field("segments", &self.segment_count())
            .finish()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.start {
            return Err(BufError::NoHeadroom);
        }
        self.start -= n;
        Ok(&mut self.storage[self.start..self.start + n])
    }
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        // As an mbuf: appending goes to the last segment, so a chain refuses (use `chain`).
        if n > self.tailroom() || self.next.is_some() {
            return Err(BufError::NoTailroom);
        }
        let old_end = self.end;
        self.end += n;
        Ok(&mut self.storage[old_end..self.end])
    }
    fn adjust(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.len() {
            return Err(BufError::TooShort);
        }
        self.start += n;
        Ok(())
    }
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.len() || self.next.is_some() {
            return Err(BufError::TooShort);
        }
        self.end -= n;
        Ok(())
    }
    fn share(&self) -> Option<Self> {
        Some(self.clone())
    }
    fn is_shared(&self) -> bool {
        false
    }
    fn chain(mut self, tail: Self) -> Result<Self, (Self, Self)> {
        let mut last = &mut self;
        while let Some(ref mut next) = last.next {
            last = next;
        }
        last.next = Some(Box::new(tail));
        Ok(self)
    }
    fn segment_count(&self) -> usize {
        1 + self.next.as_ref().map_or(0, |n| n.segment_count())
    }
    fn segment(&self, index: usize) -> Option<&[u8]> {
        let mut seg = self;
        for _ in 0..index {
            seg = seg.next.as_deref()?;
        }
        Some(seg.data())
    }
    fn total_len(&self) -> usize {
        self.len() + self.next.as_ref().map_or(0, |n| n.total_len())
    }
    fn split_first(mut self) -> Result<(Self, Option<Self>), Self> {
        let rest = self.next.take().map(|b| *b);
        Ok((self, rest))
    }
}

/// A pool of [`VecBuf`]s that can be bounded, to exercise pool exhaustion in simulation.
#[derive(Debug, Clone)]
pub struct VecPool {
    buf_size: usize,
    headroom: usize,
    remaining: Option<u64>,
}

impl VecPool {
    /// A pool handing out buffers of `buf_size` bytes with `headroom` reserved at the front, without
    /// limit.
    pub fn new(buf_size: usize, headroom: usize) -> Self {
        VecPool { buf_size, headroom, remaining: None }
    }

    /// Limits the pool to `count` more allocations (then `alloc` returns `None`).
    pub fn with_limit(mut self, count: u64) -> Self {
        self.remaining = Some(count);
        self
    }
}

impl Default for VecPool {
    fn default() -> Self {
        VecPool::new(DEFAULT_BUF_SIZE, DEFAULT_HEADROOM)
    }
}

impl BufPool for VecPool {
    type Buf = VecBuf;
    fn alloc(&mut self) -> Option<VecBuf> {
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.checked_sub(1)?;
        }
        Some(VecBuf::with_capacity(self.buf_size, self.headroom))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adjust_append_trim_keep_payload_in_place() {
        let mut buf = VecBuf::from_slice(b"payload");
        buf.prepend(4).unwrap().copy_from_slice(b"hdr:");
        assert_eq!(buf.data(), b"hdr:payload");
        buf.append(1).unwrap()[0] = b'!';
        assert_eq!(buf.data(), b"hdr:payload!");
        buf.adjust(4).unwrap();
        buf.trim(1).unwrap();
        assert_eq!(buf.data(), b"payload");
    }

    #[test]
    fn out_of_room_is_an_error_not_a_panic() {
        let mut buf = VecBuf::with_capacity(16, 4);
        assert_eq!(buf.prepend(5).unwrap_err(), BufError::NoHeadroom);
        assert_eq!(buf.append(13).unwrap_err(), BufError::NoTailroom);
        assert_eq!(buf.adjust(1).unwrap_err(), BufError::TooShort);
        assert_eq!(buf.trim(1).unwrap_err(), BufError::TooShort);
        assert!(buf.append(12).is_ok());
        assert_eq!(buf.tailroom(), 0);
    }

    #[test]
    fn chains_link_split_and_read_in_order() {
        let a = VecBuf::from_slice(b"ab");
        let chain = a.chain(VecBuf::from_slice(b"cde")).unwrap().chain(VecBuf::from_slice(b"f")).unwrap();
        assert_eq!(chain.segment_count(), 3);
        assert_eq!(chain.total_len(), 6);
        assert_eq!(Segments::new(&chain).collect::<Vec<_>>(), [&b"ab"[..], b"cde", b"f"]);
        let mut c2 = chain.clone();
        assert!(c2.append(1).is_err(), "a chain cannot grow its first segment");
        let (first, rest) = chain.split_first().unwrap();
        assert_eq!((first.data(), first.segment_count()), (&b"ab"[..], 1));
        let rest = rest.unwrap();
        assert_eq!(Segments::new(&rest).collect::<Vec<_>>(), [&b"cde"[..], b"f"]);
        let plain = VecBuf::from_slice(b"x");
        assert_eq!(plain.segment(1), None);
    }

    #[test]
    fn limited_pool_runs_dry() {
        let mut pool = VecPool::default().with_limit(2);
        assert!(pool.alloc().is_some());
        assert!(pool.alloc().is_some());
        assert!(pool.alloc().is_none());
    }
}
