//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): a set
//! of equal buffers the kernel picks from when a multishot receive has
//! bytes, so a connection holds no read buffer while it waits. A buffer is
//! the kernel's while it is in the ring, ours from the completion that
//! finishes it until [`recycle`](BufRing::recycle) gives it back.
//!
//! Consumed incrementally (`IOU_PBUF_RING_INC`, Linux 6.12) a buffer is
//! shared by the receives that come while it is at the head of the ring,
//! each taking only the bytes it has: large buffers then cost nothing for
//! small messages, and a burst the size of a read arrives in one piece
//! (one completion, one callback) rather than in several fixed-size ones.
//! Each completion then names a [`Piece`]: where in its buffer its bytes
//! start (we keep the offset: the kernel does not say) and whether the
//! buffer is finished.

use super::kernel::Kernel;
use io_uring::types::BufRingEntry;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// The kernel's limit on a ring's entries.
pub(crate) const MAX_BUFFERS: u16 = 32768;

/// Anonymous, page-aligned memory of `len` bytes (what the kernel wants
/// for the ring of entries; the buffers take it too: no allocator header,
/// nothing else in their pages).
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// `len` bytes, their pages taken now (`MAP_POPULATE`): the buffers'
    /// memory is a fixed cost paid at start, not one a peer's traffic
    /// makes grow later.
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping asks for fresh memory and
        // touches none of ours; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len == 0 {
            // Given up (see `BufRing`'s drop): nothing to unmap.
            return;
        }
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped
        // once; no reference into the mapping outlives its owner.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Bytes a completion put in a buffer: `len` from `at` in buffer `bid`;
/// `last` if the kernel is done with that buffer (then it is ours to
/// [`recycle`](BufRing::recycle) once the bytes were handed on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) bid: u16,
    pub(crate) at: u32,
    pub(crate) len: u32,
    pub(crate) last: bool,
}

/// `count` buffers of `size` bytes registered with a ring as buffer group
/// `bgid`.
pub(crate) struct BufRing {
    entries: Mapping,
    buffers: Mapping,
    count: u16,
    size: usize,
    bgid: u16,
    /// Our tail: entries up to it are filled in; the kernel sees them once
    /// it is published.
    tail: u16,
    /// Still registered with a ring: the kernel may write into the
    /// buffers, so the memory must not be freed (see `Drop`).
    registered: bool,
    /// Consumed incrementally: by buffer, the offset the next piece starts
    /// at (empty otherwise).
    offsets: Vec<u32>,
    /// Buffers given back since [`take_returned`](Self::take_returned).
    returned: usize,
}

impl BufRing {
    /// `count` (a power of two, at most 32,768) buffers of `size` bytes,
    /// registered with `kernel` as group `bgid`, all given to the kernel;
    /// consumed `incremental`ly if asked (a kernel older than 6.12 refuses
    /// that with `EINVAL`).
    pub(crate) fn new(
        kernel: &mut Kernel,
        bgid: u16,
        count: u16,
        size: usize,
        incremental: bool,
    ) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > MAX_BUFFERS || size == 0 || size > u32::MAX as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a buffer ring holds a power of two of buffers (at most 32,768) of 1 byte to 4 GiB",
            ));
        }
        let entries = Mapping::new(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
        let total = usize::from(count)
            .checked_mul(size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffers too large"))?;
        let buffers = Mapping::new(total)?;
        let mut r = BufRing {
            entries,
            buffers,
            count,
            size,
            bgid,
            tail: 0,
            registered: false,
            offsets: if incremental {
                vec![0; usize::from(count)]
            } else {
                Vec::new()
            },
            returned: 0,
        };
        for bid in 0..count {
            r.push(bid);
        }
        r.publish();
        // SAFETY: the ring of entries is page-aligned (mmap) and holds
        // `count` entries; it and the buffers stay mapped while registered:
        // `Drop` keeps them when `release` was not called.
        unsafe {
            kernel.register_buffers(r.entries.ptr.as_ptr() as u64, count, bgid, incremental)?;
        }
        r.registered = true;
        Ok(r)
    }

    /// The buffer group id receives select from.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Each buffer's size.
    #[cfg(test)]
    pub(crate) fn buffer_size(&self) -> usize {
        self.size
    }

    /// True if buffers are consumed incrementally.
    #[cfg(test)]
    pub(crate) fn incremental(&self) -> bool {
        !self.offsets.is_empty()
    }

    /// The piece a completion of `len` bytes in buffer `bid` names, its
    /// buffer's `more` flag (`IORING_CQE_F_BUF_MORE`) telling whether
    /// the kernel goes on filling it. Every completion that names a
    /// buffer comes here, in order (a stale one too: the offset moves).
    /// `None` for an id or a length the ring never gave.
    pub(crate) fn piece(&mut self, bid: u16, len: usize, more: bool) -> Option<Piece> {
        if bid >= self.count || len > self.size {
            return None;
        }
        let len = len as u32;
        let Some(offset) = self.offsets.get_mut(usize::from(bid)) else {
            return Some(Piece {
                bid,
                at: 0,
                len,
                last: true,
            });
        };
        let at = *offset;
        if at as usize + len as usize > self.size {
            return None;
        }
        *offset = if more { at + len } else { 0 };
        Some(Piece {
            bid,
            at,
            len,
            last: !more,
        })
    }

    /// The bytes of `piece` (ours until its buffer is recycled).
    pub(crate) fn filled(&self, piece: Piece) -> &[u8] {
        let (start, len) = (piece.at as usize, piece.len as usize);
        assert!(piece.bid < self.count && start + len <= self.size);
        // SAFETY: checked just above: the bytes lie inside buffer `bid`,
        // inside the mapping; the kernel wrote them before the completion
        // that named them and writes into that buffer again only past
        // them (incremental) or after `recycle`, which needs `&mut self`
        // (so no slice of it is alive).
        unsafe {
            std::slice::from_raw_parts(
                self.buffers
                    .ptr
                    .as_ptr()
                    .add(usize::from(piece.bid) * self.size + start),
                len,
            )
        }
    }

    /// Done with `piece`: its buffer goes back to the kernel (at the next
    /// [`publish`](Self::publish)) if this was its last piece.
    pub(crate) fn recycle(&mut self, piece: Piece) {
        debug_assert!(piece.bid < self.count);
        if piece.last && piece.bid < self.count {
            self.push(piece.bid);
            self.returned += 1;
        }
    }

    /// Buffers given back since the last call.
    pub(crate) fn take_returned(&mut self) -> usize {
        std::mem::take(&mut self.returned)
    }

    /// Lets the kernel see every buffer given back since the last call.
    pub(crate) fn publish(&self) {
        // SAFETY: the tail lives in the first entry's reserved field
        // (the kernel's layout); the entries mapping is valid and aligned
        // for a u16, and the kernel only reads it.
        let tail = unsafe { BufRingEntry::tail(self.entries.ptr.as_ptr().cast::<BufRingEntry>()) };
        // SAFETY: as above; the Release store orders the entries written
        // by `push` before the tail that shows them.
        unsafe { (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release) };
    }

    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot` < count entries in the mapping; the kernel does
        // not read entries past the published tail, so writing this one
        // races with nothing.
        let entry = unsafe { &mut *self.entries.ptr.as_ptr().cast::<BufRingEntry>().add(slot) };
        // SAFETY: buffer `bid` lies inside the buffers' mapping.
        let addr = unsafe { self.buffers.ptr.as_ptr().add(usize::from(bid) * self.size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Unregisters from `kernel` (the one it was registered with) and
    /// frees the memory.
    pub(crate) fn release(mut self, kernel: &mut Kernel) {
        if kernel.unregister_buffers(self.bgid).is_ok() {
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The kernel may still write into these buffers (the ring
            // lives on): leaked rather than freed under it.
            std::mem::forget(std::mem::replace(
                &mut self.buffers,
                Mapping {
                    ptr: NonNull::dangling(),
                    len: 0,
                },
            ));
            std::mem::forget(std::mem::replace(
                &mut self.entries,
                Mapping {
                    ptr: NonNull::dangling(),
                    len: 0,
                },
            ));
        }
    }
}

#[cfg(test)]
#[path = "buf_ring_tests.rs"]
mod tests;
