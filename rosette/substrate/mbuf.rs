//! `Mbuf`: an owned handle to one DPDK packet buffer, freed back to its pool on drop.
//!
//! Data access is zero-copy: [`Mbuf::data`] is a slice straight into the mbuf's data room. rosette works
//! on single-segment packets (every PMD it uses produces them with its default settings); for a
//! chained mbuf, `data` covers the first segment only and [`Mbuf::is_contiguous`] says so.

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

    /// A second handle to the same packet (reference count + 1); neither may change it while both live.
    #[inline]
    pub fn share(&self) -> Mbuf {
        // SAFETY: the mbuf is valid; the count is updated atomically, and the new handle owns the new
        // reference.
        unsafe { ffi::rte_mbuf_refcnt_update(self.raw.as_ptr(), 1) };
        Mbuf { raw: self.raw }
    }

    /// Appends `tail` as the next segment(s) of this packet (`rte_pktmbuf_chain`), so headers built in
    /// a fresh mbuf can go in front of a packet that is shared (held for retransmission) without copying
    /// its bytes. The chain owns `tail`'s reference from then on and releases it when dropped. Gives
    /// `tail` back when this mbuf is shared or the chain would exceed DPDK's segment limit.
    #[inline]
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        if self.refcnt() > 1 {
            return Err(tail);
        }
        // SAFETY: both pointers are valid mbufs; this handle is the only one to the head (refcnt 1), and
        // DPDK only rewrites the tail's pkt_len with the value it already has for a one-segment tail (a
        // multi-segment tail is never shared by rosette). On success the head's chain holds the tail's
        // reference, which `tail` gives up below; on failure nothing changed.
        let rc = unsafe { ffi::rte_pktmbuf_chain(self.raw.as_ptr(), tail.raw.as_ptr()) };
        if rc != 0 {
            return Err(tail);
        }
        let _ = tail.into_raw();
        Ok(())
    }

    /// Copies `bytes` into a fresh mbuf of `pool` (for building test or control packets, not the fast
    /// path). `None` if the pool is empty or the bytes do not fit.
    pub fn from_slice(pool: &super::mempool::Mempool, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = pool.alloc()?;
        m.append(bytes.len()).ok()?.copy_from_slice(bytes);
        Some(m)
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
}
