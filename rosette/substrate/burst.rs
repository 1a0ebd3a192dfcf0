//! Fixed-capacity bursts of mbufs, the unit every poll loop moves.
//!
//! [`Burst<N>`] holds up to `N` mbufs inline — `N` is a typenum constant such as `typenum::U32`, so the
//! capacity is part of the type and no heap is touched. (Stable Rust cannot use a generic typenum as an
//! array length, so the storage is a `hybrid_array::Array`.) Rx fills a burst, stages work on it through
//! a [`Batch`] view, tx drains it; whatever tx did not take stays in the burst, owned, to be retried or
//! freed — dropping a burst frees what is left, so nothing leaks.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use hybrid_array::{Array, ArraySize};

use super::ffi;
use super::mbuf::Mbuf;

/// The type-level burst sizes rosette accepts (`typenum::U1` … `typenum::U1024`).
pub trait BurstSize: ArraySize {}
impl<N: ArraySize> BurstSize for N {}

/// Up to `N` owned mbufs, stored inline.
pub struct Burst<N: BurstSize> {
    slots: Array<*mut ffi::rte_mbuf, N>,
    len: usize,
}

// SAFETY: the burst owns every mbuf in slots[..len]; moving the burst moves that ownership, as for Mbuf.
unsafe impl<N: BurstSize> Send for Burst<N> {}

impl<N: BurstSize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: BurstSize> Burst<N> {
    /// The capacity, `N`.
    pub const CAPACITY: usize = N::USIZE;

    /// An empty burst.
    #[inline]
    pub fn new() -> Self {
        Burst { slots: Array::from_fn(|_| ptr::null_mut()), len: 0 }
    }

    /// A view for stages; see [`Batch`].
    #[inline]
    pub fn batch(&mut self) -> Batch<'_> {
        Batch { slots: self.slots.as_mut_slice(), len: &mut self.len }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the burst holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the burst holds `N` mbufs.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N::USIZE
    }

    /// The mbufs held.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots[..len] are owned, non-null mbuf pointers, and Mbuf is a repr(transparent)
        // NonNull<rte_mbuf>, which has the layout of *mut rte_mbuf.
        unsafe { core::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        self.batch().into_mut_slice()
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        self.batch().push(mbuf)
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        self.batch().pop()
    }

    /// Frees every mbuf held.
    #[inline]
    pub fn clear(&mut self) {
        self.batch().clear()
    }

    /// Keeps the mbufs for which `keep` returns true (in order) and frees the rest; returns how many
    /// were freed.
    #[inline]
    pub fn retain(&mut self, keep: impl FnMut(&mut Mbuf) -> bool) -> usize {
        self.batch().retain(keep)
    }

    /// The free slots, for an rx call to fill: (pointer to the first free slot, number free).
    #[inline]
    pub(crate) fn spare(&mut self) -> (*mut *mut ffi::rte_mbuf, usize) {
        // SAFETY: len <= N, so the offset stays inside (or one past) the array.
        (unsafe { self.slots.as_mut_ptr().add(self.len) }, N::USIZE - self.len)
    }

    /// Records that an rx call filled `n` more slots.
    ///
    /// # Safety
    /// The `n` slots after `len` must now hold owned, valid mbuf pointers.
    #[inline]
    pub(crate) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= N::USIZE);
        self.len += n;
    }

    /// The held mbufs as raw pointers, for a tx call.
    #[inline]
    pub(crate) fn occupied(&mut self) -> (*mut *mut ffi::rte_mbuf, usize) {
        (self.slots.as_mut_ptr(), self.len)
    }

    /// Records that a tx call took ownership of the first `n` mbufs; the rest move to the front.
    #[inline]
    pub(crate) fn consumed_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        let rest = self.len - n;
        if rest > 0 {
            self.slots.copy_within(n..self.len, 0);
        }
        self.len = rest;
    }
}

impl<N: BurstSize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<N: BurstSize> core::fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).field("capacity", &N::USIZE).finish()
    }
}

/// A burst seen without its capacity type: what a stage receives. Object-safe code (`dyn Stage`) and
/// generic code both work on it; it owns nothing itself and borrows the burst's storage.
pub struct Batch<'a> {
    slots: &'a mut [*mut ffi::rte_mbuf],
    len: &'a mut usize,
}

impl<'a> Batch<'a> {
    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        *self.len
    }

    /// True when nothing is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        *self.len == 0
    }

    /// Maximum number of mbufs.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The mbufs held.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots[..len] are owned, non-null mbuf pointers; Mbuf is repr(transparent) over
        // NonNull<rte_mbuf>, layout-identical to *mut rte_mbuf.
        unsafe { core::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), *self.len) }
    }

    /// The mbufs held, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice; &mut self gives exclusive access to the slots.
        unsafe { core::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), *self.len) }
    }

    #[inline]
    fn into_mut_slice(self) -> &'a mut [Mbuf] {
        // SAFETY: as in as_mut_slice, for the full borrow of the burst.
        unsafe { core::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), *self.len) }
    }

    /// Iterates over the mbufs, mutably.
    #[inline]
    pub fn iter_mut(&mut self) -> core::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Adds an mbuf at the end; gives it back when full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if *self.len == self.slots.len() {
            return Err(mbuf);
        }
        self.slots[*self.len] = mbuf.into_raw().as_ptr();
        *self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if *self.len == 0 {
            return None;
        }
        *self.len -= 1;
        let raw = self.slots[*self.len];
        // SAFETY: the slot was below len, so it holds an owned, non-null mbuf, whose ownership now moves
        // out (len no longer covers it).
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(raw)) })
    }

    /// Frees every mbuf held.
    #[inline]
    pub fn clear(&mut self) {
        if *self.len > 0 {
            // SAFETY: slots[..len] are owned mbufs; after the bulk free, len is reset so none is used again.
            unsafe { ffi::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), *self.len as u32) };
            *self.len = 0;
        }
    }

    /// Keeps the mbufs for which `keep` returns true, in order, and frees the rest; returns how many were
    /// freed.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) -> usize {
        let mut dropped = 0;
        self.retain_map(|mut m| {
            if keep(&mut m) {
                Some(m)
            } else {
                dropped += 1;
                None
            }
        });
        dropped
    }

    /// Passes each mbuf by value to `f`, in order. `Some` keeps it in the batch (possibly another mbuf);
    /// `None` means `f` consumed it (stored it, handed it on, or dropped it). The batch is compacted in
    /// place, without allocation.
    #[inline]
    pub fn retain_map(&mut self, mut f: impl FnMut(Mbuf) -> Option<Mbuf>) {
        let len = *self.len;
        // While f runs, the batch must not claim slots whose mbuf has been moved out: if f panics, the
        // batch then owns only the kept prefix (the unvisited rest leaks rather than double-frees).
        *self.len = 0;
        let mut kept = 0;
        for i in 0..len {
            let raw = self.slots[i];
            // SAFETY: slot i < len held an owned non-null mbuf; ownership moves to f.
            let mbuf = unsafe { Mbuf::from_raw(NonNull::new_unchecked(raw)) };
            if let Some(out) = f(mbuf) {
                self.slots[kept] = out.into_raw().as_ptr();
                kept += 1;
                *self.len = kept;
            }
        }
        *self.len = kept;
    }

    /// Moves every mbuf out, in order, leaving the batch empty.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = core::mem::replace(self.len, 0);
        Drain { slots: &self.slots[..len], next: 0, _owns: PhantomData }
    }
}

/// Iterator returned by [`Batch::drain`]; frees whatever it did not yield when dropped.
pub struct Drain<'b> {
    slots: &'b [*mut ffi::rte_mbuf],
    next: usize,
    _owns: PhantomData<Mbuf>,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;
    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        let raw = *self.slots.get(self.next)?;
        self.next += 1;
        // SAFETY: the drained slots were owned, non-null mbufs, each yielded exactly once.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(raw)) })
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}
