//! `Mbuf`: an owned handle to one DPDK packet buffer, freed back to its pool on drop.
//!
//! Data access is zero-copy: [`Mbuf::data`] is a slice straight into the mbuf's data room. Received
//! packets are single segments (every PMD rosette uses produces them with its default settings); chains
//! carry multi-packet reliable messages (built with [`Mbuf::chain`], read with [`Mbuf::segment`], taken
//! apart with [`Mbuf::split_first`]). For a chain, `data` covers the first segment only and
//! [`Mbuf::is_contiguous`] says so.

use std::ptr::NonNull;

use super::ffi;
use crate::buf::{BufError, PacketBuf};

/// An owned DPDK mbuf. Exactly one `Mbuf` (or one per [`PacketBuf::share`] reference) exists per
/// reference count of the underlying `rte_mbuf`, and dropping it releases that reference.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an Mbuf owns its reference to the rte_mbuf; handing it to another thread moves that ownership.
// Freeing from any thread is allowed by DPDK (mempool put is thread-safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must point to a valid, initialised `rte_mbuf` whose one reference the caller owns and gives
    /// up; nothing else may free it.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership without freeing; the caller must free the mbuf (or hand it to DPDK).
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        core::mem::forget(self);
        raw
    }

    #[inline]
    fn header(&self) -> &ffi::rte_mbuf {
        // SAFETY: the pointer is a valid mbuf owned by this handle for its whole life.
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn header_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: as in header(); &mut self and an unshared mbuf (checked by callers that change it)
        // mean no other handle touches the header.
        unsafe { self.raw.as_mut() }
    }

    /// Bytes in the first (here: only) segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.header().data_len)
    }

    /// Bytes in the whole packet, all segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.header().pkt_len as usize
    }

    /// True when the packet is one segment, so [`Mbuf::data`] covers all of it.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.header().nb_segs == 1
    }

    /// The port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.header().port
    }

    /// The mbuf's reference count.
    #[inline]
    pub fn refcnt(&self) -> u16 {
        // SAFETY: the mbuf is valid; the read is atomic in DPDK.
        unsafe { ffi::rte_mbuf_refcnt_read(self.raw.as_ptr()) }
    }

    /// The packet's bytes (first segment), zero-copy.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let h = self.header();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's data room, which lives as long
        // as this reference; the bytes are initialised (written by the PMD or by us).
        unsafe {
            core::slice::from_raw_parts((h.buf_addr as *const u8).add(usize::from(h.data_off)), usize::from(h.data_len))
        }
    }

    /// The packet's bytes, writable; empty when the mbuf is shared (another handle may be reading).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        if self.refcnt() > 1 {
            return &mut [];
        }
        let h = self.header_mut();
        // SAFETY: as in data(); the handle is unique (refcnt 1) and borrowed mutably, so nothing else
        // reads or writes these bytes.
        unsafe {
            core::slice::from_raw_parts_mut(
                (h.buf_addr as *mut u8).add(usize::from(h.data_off)),
                usize::from(h.data_len),
            )
        }
    }

    /// Room before the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.header().data_off)
    }

    /// Room after the data in the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let h = self.header();
        usize::from(h.buf_len) - usize::from(h.data_off) - usize::from(h.data_len)
    }

    fn check_unshared(&self) -> Result<(), BufError> {
        if self.refcnt() > 1 {
            Err(BufError::Shared)
        } else {
            Ok(())
        }
    }

    /// Grows the packet by `n` bytes at the front and returns them.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        self.check_unshared()?;
        if n > self.headroom() {
            return Err(BufError::NoHeadroom);
        }
        let h = self.header_mut();
        h.data_off -= n as u16;
        h.data_len += n as u16;
        h.pkt_len += n as u32;
        Ok(&mut self.data_mut()[..n])
    }

    /// Grows the packet by `n` bytes at the back and returns them.
    #[inline]
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        self.check_unshared()?;
        if n > self.tailroom() || !self.is_contiguous() {
            return Err(BufError::NoTailroom);
        }
        let old = self.data_len();
        let h = self.header_mut();
        h.data_len += n as u16;
        h.pkt_len += n as u32;
        Ok(&mut self.data_mut()[old..])
    }

    /// Removes `n` bytes from the front.
    #[inline]
    pub fn adjust(&mut self, n: usize) -> Result<(), BufError> {
        self.check_unshared()?;
        if n > self.data_len() {
            return Err(BufError::TooShort);
        }
        let h = self.header_mut();
        h.data_off += n as u16;
        h.data_len -= n as u16;
        h.pkt_len -= n as u32;
        Ok(())
    }

    /// Removes `n` bytes from the back.
    #[inline]
    pub fn trim(&mut self, n: usize) -> Result<(), BufError> {
        self.check_unshared()?;
        if n > self.data_len() || !self.is_contiguous() {
            return Err(BufError::TooShort);
        }
        let h = self.header_mut();
        h.data_len -= n as u16;
        h.pkt_len -= n as u32;
        Ok(())
    }

    /// A second handle to the same packet (reference count + 1 on every segment, since freeing a
    /// packet releases one reference of each of its segments); neither may change it while both live.
    #[inline]
    pub fn share(&self) -> Mbuf {
        let mut seg = self.raw.as_ptr();
        while !seg.is_null() {
            // SAFETY: `seg` walks the valid segment list of a packet this handle keeps alive; the count
            // is updated atomically, and the new handle owns the new references (released together by
            // its drop, which frees one reference per segment).
            seg = unsafe {
                ffi::rte_mbuf_refcnt_update(seg, 1);
                (*seg).next
            };
        }
        Mbuf { raw: self.raw }
    }

    /// Copies `bytes` into a fresh mbuf of `pool` (for building test or control packets, not the fast
    /// path). `None` if the pool is empty or the bytes do not fit.
    pub fn from_slice(pool: &super::mempool::Mempool, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = pool.alloc()?;
        m.append(bytes.len()).ok()?.copy_from_slice(bytes);
        Some(m)
    }
}

impl Mbuf {
    /// Number of segments of the packet (1 for everything rosette receives).
    #[inline]
    pub fn segments(&self) -> u16 {
        self.header().nb_segs
    }

    /// Appends `tail` as the next segment(s) of this packet, which takes ownership of it: the
    /// zero-copy way to put freshly written headers in front of a payload that another handle shares
    /// (a channel keeping a packet for retransmission). Neither packet's bytes are written, so a shared
    /// single-segment `tail` stays valid for its other handles. Gives both back when DPDK refuses (too
    /// many segments), when `self` is shared (its segment list would change under the other handle), or
    /// when `tail` is shared and has several segments.
    pub fn chain(self, tail: Mbuf) -> core::result::Result<Mbuf, (Mbuf, Mbuf)> {
        // A shared tail must be a single segment: DPDK rewrites the tail's pkt_len, which for one
        // segment already equals the value written, but for several would change the other handle's view.
        if self.refcnt() > 1 || (tail.refcnt() > 1 && !tail.is_contiguous()) {
            return Err((self, tail));
        }
        let (head, tail_raw) = (self.raw, tail.raw);
        // rte_pktmbuf_chain only writes the head's last-segment `next`, `nb_segs` and `pkt_len`, and the
        // tail's `pkt_len` (set to its `data_len`, which it already equals for a single-segment tail). On
        // success the chain owns the tail's reference, so the tail handle is forgotten below, not dropped.
        // SAFETY: both pointers are valid mbufs and `self` is the only handle of the head (refcnt 1), so
        // changing its segment list races with nobody; the writes are the ones listed above.
        let rc = unsafe { ffi::rte_pktmbuf_chain(head.as_ptr(), tail_raw.as_ptr()) };
        if rc != 0 {
            return Err((self, tail));
        }
        core::mem::forget(tail);
        Ok(self)
    }

    /// Copies the bytes of every segment, in order, into `out`; returns how many were copied (at most
    /// `out.len()`).
    pub fn read_all(&self, out: &mut [u8]) -> usize {
        let mut off = 0;
        let mut seg = self.raw.as_ptr();
        while !seg.is_null() && off < out.len() {
            // SAFETY: `seg` walks the valid segment list of a packet this handle keeps alive; each
            // segment's data lies at buf_addr + data_off for data_len initialised bytes, and nothing
            // writes them while `&self` is borrowed (writers need `&mut` to the only handle).
            let (bytes, next) = unsafe {
                let h = &*seg;
                let data = (h.buf_addr as *const u8).add(usize::from(h.data_off));
                (core::slice::from_raw_parts(data, usize::from(h.data_len)), h.next)
            };
            let n = bytes.len().min(out.len() - off);
            out[off..off + n].copy_from_slice(&bytes[..n]);
            off += n;
            seg = next;
        }
        off
    }

    /// The bytes of segment `index` (0 is [`Mbuf::data`]), `None` past the last segment. Walks the
    /// segment list from the head.
    pub fn segment(&self, index: usize) -> Option<&[u8]> {
        let mut seg = self.raw.as_ptr();
        for _ in 0..index {
            // SAFETY: `seg` is a valid segment of the packet this handle keeps alive (the head, or a
            // `next` read from a valid segment); reading its `next` field races with no writer, since
            // changing the segment list needs `&mut`/ownership of the only handle.
            seg = unsafe { (*seg).next };
            if seg.is_null() {
                return None;
            }
        }
        // SAFETY: `seg` is a valid segment of this packet (non-null, reached above); its data lies at
        // buf_addr + data_off for data_len initialised bytes, alive and unwritten while `&self` is
        // borrowed.
        Some(unsafe {
            let h = &*seg;
            core::slice::from_raw_parts((h.buf_addr as *const u8).add(usize::from(h.data_off)), usize::from(h.data_len))
        })
    }

    /// Detaches the first segment of a chain: it comes back as a packet of its own, and the rest, if
    /// any, as another packet (no copy). Refuses when the packet is shared (the other handle's segment
    /// list would change) — the packet comes back unchanged.
    pub fn split_first(mut self) -> core::result::Result<(Mbuf, Option<Mbuf>), Mbuf> {
        if self.refcnt() > 1 {
            return Err(self);
        }
        let next = self.header().next;
        let Some(next) = NonNull::new(next) else {
            return Ok((self, None));
        };
        // The rest must not be shared either: its header is rewritten below.
        // SAFETY: `next` is the valid second segment of a packet this unique handle owns; reading its
        // reference count is an atomic read.
        if unsafe { ffi::rte_mbuf_refcnt_read(next.as_ptr()) } > 1 {
            return Err(self);
        }
        let (segs, total) = (self.header().nb_segs, self.header().pkt_len);
        let first_len = self.header().data_len;
        {
            let h = self.header_mut();
            h.next = core::ptr::null_mut();
            h.nb_segs = 1;
            h.pkt_len = u32::from(first_len);
        }
        // The unlinked second segment becomes the head of the rest: its segment count and packet
        // length must describe the remaining segments.
        // SAFETY: `next` is unlinked from the head (which owned it) and unshared (checked), so the
        // new handle owns it alone and nothing else reads the fields written here.
        let rest = unsafe {
            let h = &mut *next.as_ptr();
            h.nb_segs = segs - 1;
            h.pkt_len = total - u32::from(first_len);
            Mbuf::from_raw(next)
        };
        Ok((self, Some(rest)))
    }

    /// A single-segment copy of the whole packet (every segment) in a fresh mbuf of `pool`; `None` when
    /// the pool is empty or the packet does not fit one mbuf. For tools that must write a packet whose
    /// bytes are shared (fault injection), not for the fast path.
    pub fn linearized_copy(&self, pool: &super::mempool::Mempool) -> Option<Mbuf> {
        let mut out = pool.alloc()?;
        let len = self.pkt_len();
        let dst = out.append(len).ok()?;
        (self.read_all(dst) == len).then_some(out)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference to a valid mbuf; freeing releases exactly that one.
        unsafe { ffi::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl core::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.pkt_len())
            .field("segments", &self.header().nb_segs)
            .field("refcnt", &self.refcnt())
            .finish()
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }
    #[inline]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        Mbuf::prepend(self, n)
    }
    #[inline]
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        Mbuf::append(self, n)
    }
    #[inline]
    fn adjust(&mut self, n: usize) -> Result<(), BufError> {
        Mbuf::adjust(self, n)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        Mbuf::trim(self, n)
    }
    #[inline]
    fn share(&self) -> Option<Self> {
        Some(Mbuf::share(self))
    }
    #[inline]
    fn is_shared(&self) -> bool {
        self.refcnt() > 1
    }
    #[inline]
    fn is_contiguous(&self) -> bool {
        Mbuf::is_contiguous(self)
    }
    #[inline]
    fn chain(self, tail: Self) -> Result<Self, (Self, Self)> {
        Mbuf::chain(self, tail)
    }
    #[inline]
    fn segment_count(&self) -> usize {
        usize::from(self.segments())
    }
    #[inline]
    fn segment(&self, index: usize) -> Option<&[u8]> {
        Mbuf::segment(self, index)
    }
    #[inline]
    fn total_len(&self) -> usize {
        self.pkt_len()
    }
    #[inline]
    fn split_first(self) -> Result<(Self, Option<Self>), Self> {
        Mbuf::split_first(self)
    }
}
