//! Per-connection output buffer: a queue of chunks written with one
//! `writev` per flush, recycled through a per-shard pool so a connection that
//! has drained its output holds no buffer memory and the hot path does not
//! allocate.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Small writes are copied into chunks of this size; larger ones get their own.
const CHUNK: usize = 16 * 1024;
/// At most this many chunks go into one `writev`.
const MAX_IOV: usize = 64;

/// Spare chunks kept by one shard.
#[derive(Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

impl BufPool {
    const MAX_KEPT: usize = 256;

    /// A chunk of exactly `CHUNK` capacity: writes of any size are copied
    /// into these, so every chunk goes back to the pool and a large write
    /// costs no allocation once the pool is warm.
    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    fn give(&mut self, mut v: Vec<u8>) {
        if v.capacity() == CHUNK && self.free.len() < Self::MAX_KEPT {
            v.clear();
            self.free.push(v);
        }
    }
}

/// One piece of queued output: bytes the queue owns (pooled when of the
/// pool's size), or a buffer shared with the application (a stored value
/// sent by reference: queueing it copies nothing).
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    /// Owned bytes that a zero-copy send still reads while the rest of
    /// them waits here (see [`WriteBuf::split_sent`]).
    Pinned(Arc<Vec<u8>>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
            Chunk::Pinned(v) => v,
        }
    }

    fn recycle(self, pool: &mut BufPool) {
        match self {
            Chunk::Owned(v) => pool.give(v),
            Chunk::Pinned(v) => {
                // The last holder gives the buffer back.
                if let Ok(v) = Arc::try_unwrap(v) {
                    pool.give(v);
                }
            }
            Chunk::Shared(_) => {}
        }
    }

    /// A second holder of the same bytes (no copy).
    fn share(&mut self) -> Chunk {
        if let Chunk::Owned(v) = self {
            *self = Chunk::Pinned(Arc::new(std::mem::take(v)));
        }
        match self {
            Chunk::Shared(a) => Chunk::Shared(a.clone()),
            Chunk::Pinned(v) => Chunk::Pinned(v.clone()),
            Chunk::Owned(_) => unreachable!("made pinned above"),
        }
    }
}

/// What [`WriteBuf::drop_front`] passes over: a chunk it took out whole,
/// or the front chunk it moved into.
enum Front<'a> {
    Whole(Chunk),
    Part(&'a mut Chunk),
}

#[derive(Default)]
pub(crate) struct WriteBuf {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    head_pos: usize,
    len: usize,
}

impl WriteBuf {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, mut data: &[u8], pool: &mut BufPool) {
        self.len += data.len();
        if let Some(Chunk::Owned(tail)) = self.chunks.back_mut() {
            let room = tail.capacity() - tail.len();
            let n = room.min(data.len());
            tail.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        while !data.is_empty() {
            let mut chunk = pool.take();
            let n = (chunk.capacity() - chunk.len()).min(data.len());
            chunk.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.chunks.push_back(Chunk::Owned(chunk));
        }
    }

    /// Takes ownership of `data` without copying when it is large (the
    /// buffer is freed, not pooled, once written).
    pub(crate) fn push_owned(&mut self, data: Vec<u8>, pool: &mut BufPool) {
        if data.len() < CHUNK {
            self.push(&data, pool);
        } else {
            self.len += data.len();
            self.chunks.push_back(Chunk::Owned(data));
        }
    }

    /// Queues a buffer the application shares (a stored value) by
    /// reference: nothing is copied, however large; small ones are copied
    /// like any write (a reference would cost more than the bytes).
    pub(crate) fn push_shared(&mut self, data: Arc<[u8]>, pool: &mut BufPool) {
        if data.len() < CHUNK {
            self.push(&data, pool);
        } else {
            self.len += data.len();
            self.chunks.push_back(Chunk::Shared(data));
        }
    }

    /// Writes as much as the socket takes. Returns bytes written and whether
    /// the socket refused more (so the caller waits for writability).
    pub(crate) fn flush_to<W: Write>(
        &mut self,
        w: &mut W,
        pool: &mut BufPool,
    ) -> io::Result<(usize, bool)> {
        let mut written = 0;
        while self.len > 0 {
            let (res, attempted) = if self.chunks.len() == 1 {
                // The common case (small replies): a plain write, no iovec array.
                let s = &self.chunks[0].bytes()[self.head_pos..];
                (w.write(s), s.len())
            } else {
                let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
                let mut n_iov = 0;
                let mut attempted = 0;
                for (i, c) in self.chunks.iter().take(MAX_IOV).enumerate() {
                    let c = c.bytes();
                    let s = if i == 0 { &c[self.head_pos..] } else { c };
                    iov[n_iov] = IoSlice::new(s);
                    attempted += s.len();
                    n_iov += 1;
                }
                (w.write_vectored(&iov[..n_iov]), attempted)
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n, pool);
                    if n < attempted {
                        // Short write: the socket buffer is full.
                        return Ok((written, true));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((written, true)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((written, false))
    }

    fn consume(&mut self, n: usize, pool: &mut BufPool) {
        self.drop_front(n, |front| {
            if let Front::Whole(c) = front {
                c.recycle(pool);
            }
        });
    }

    /// Moves past the first `n` bytes (at most all): each chunk they cover
    /// whole goes to `f`, and a chunk they cover in part is shown to it
    /// (it stays, the rest of it still queued).
    #[inline]
    fn drop_front(&mut self, n: usize, mut f: impl FnMut(Front<'_>)) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let front_left = self.chunks[0].bytes().len() - self.head_pos;
            if n >= front_left {
                n -= front_left;
                self.head_pos = 0;
                f(Front::Whole(self.chunks.pop_front().expect("front chunk")));
            } else {
                f(Front::Part(&mut self.chunks[0]));
                self.head_pos += n;
                n = 0;
            }
        }
    }

    /// The queued bytes as slices, front first, at most `max` of them:
    /// for a submission that reads them where they are (the completion
    /// backend hands the queue itself to the kernel's send, so nothing
    /// moves or frees them until it completes).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn slices(&self, max: usize) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().take(max).enumerate().map(|(i, c)| {
            if i == 0 {
                &c.bytes()[self.head_pos..]
            } else {
                c.bytes()
            }
        })
    }

    /// Drops the first `n` bytes (a completed send wrote them).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn advance(&mut self, n: usize, pool: &mut BufPool) {
        self.consume(n, pool);
    }

    /// Takes out what holds the first `n` bytes (a zero-copy send wrote
    /// them, and the kernel may read them until its notification): whole
    /// chunks move to the returned queue, a chunk sent only in part is
    /// held by both (shared, not copied). The returned queue only keeps
    /// the bytes alive; its length is not meaningful.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn split_sent(&mut self, n: usize) -> WriteBuf {
        let mut kept = WriteBuf::default();
        self.drop_front(n, |front| {
            kept.chunks.push_back(match front {
                Front::Whole(c) => c,
                Front::Part(c) => c.share(),
            })
        });
        kept
    }

    /// Queues `later`'s bytes after these (what was written while these
    /// were in a send).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn append(&mut self, mut later: WriteBuf) {
        if later.head_pos > 0 {
            // Its front chunk was partly sent: keep only the rest.
            if let Some(front) = later.chunks.pop_front() {
                let rest = front.bytes()[later.head_pos..].to_vec();
                later.chunks.push_front(Chunk::Owned(rest));
            }
            later.head_pos = 0;
        }
        self.len += later.len;
        self.chunks.append(&mut later.chunks);
    }

    /// Drops all pending output (abort).
    pub(crate) fn clear(&mut self, pool: &mut BufPool) {
        for c in self.chunks.drain(..) {
            c.recycle(pool);
        }
        self.head_pos = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A writer that takes at most `cap` bytes per call, then blocks.
    struct Trickle {
        out: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = buf.len().min(self.per_call);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// `writes` queued in order, copied and owned in turn, and their bytes.
    fn queued(writes: &[Vec<u8>], pool: &mut BufPool) -> (WriteBuf, Vec<u8>) {
        let mut buf = WriteBuf::default();
        for (i, w) in writes.iter().enumerate() {
            if i % 2 == 0 {
                buf.push(w, pool)
            } else {
                buf.push_owned(w.clone(), pool)
            }
        }
        (buf, writes.concat())
    }

    proptest! {
        #[test]
        fn bytes_come_out_in_order(writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40_000), 0..20), per_call in 1usize..100_000) {
            let mut pool = BufPool::default();
            let (mut buf, expected) = queued(&writes, &mut pool);
            prop_assert_eq!(buf.len(), expected.len());
            let mut sink = Trickle { out: Vec::new(), per_call, calls_left: 3 };
            loop {
                let (_, blocked) = buf.flush_to(&mut sink, &mut pool).unwrap();
                if !blocked { break; }
                sink.calls_left = 3;
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(sink.out, expected);
        }
    }

    proptest! {
        #[test]
        fn slices_advance_and_append_keep_the_bytes_in_order(
            first in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40_000), 1..6),
            later in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40_000), 0..6),
            sent_fraction in 0.0f64..=1.0,
        ) {
            // A send takes what `slices` shows, completes part of it, and
            // what was written meanwhile follows the rest.
            let mut pool = BufPool::default();
            let mut inflight = WriteBuf::default();
            let mut expected = Vec::new();
            for w in &first {
                expected.extend_from_slice(w);
                inflight.push(w, &mut pool);
            }
            let shown: Vec<u8> = inflight.slices(usize::MAX).flatten().copied().collect();
            prop_assert_eq!(&shown, &expected);
            let sent = (expected.len() as f64 * sent_fraction) as usize;
            inflight.advance(sent, &mut pool);
            let mut meanwhile = WriteBuf::default();
            for w in &later {
                expected.extend_from_slice(w);
                meanwhile.push_owned(w.clone(), &mut pool);
            }
            inflight.append(meanwhile);
            let rest: Vec<u8> = inflight.slices(usize::MAX).flatten().copied().collect();
            prop_assert_eq!(inflight.len(), expected.len() - sent);
            prop_assert_eq!(&rest[..], &expected[sent..]);
        }
    }

    proptest! {
        #[test]
        fn a_zero_copy_split_keeps_the_sent_bytes_alive_and_the_rest_in_order(
            writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40_000), 1..6),
            already in 0usize..20_000,
            sent_fraction in 0.0f64..=1.0,
        ) {
            let mut pool = BufPool::default();
            let (mut buf, expected) = queued(&writes, &mut pool);
            // Part of the front went out before (a partial send).
            let already = already.min(expected.len());
            buf.advance(already, &mut pool);
            let pooled_before = pool.free.len();
            let sent = ((expected.len() - already) as f64 * sent_fraction) as usize;
            let mut kept = buf.split_sent(sent);
            let rest: Vec<u8> = buf.slices(usize::MAX).flatten().copied().collect();
            prop_assert_eq!(buf.len(), expected.len() - already - sent);
            prop_assert_eq!(&rest[..], &expected[already + sent..]);
            // Every byte sent is in a chunk `kept` holds (its first chunk
            // may also hold bytes sent before, its last bytes not sent).
            let held: Vec<u8> = kept.chunks.iter().flat_map(|c| c.bytes().iter().copied()).collect();
            if sent > 0 {
                let sent_bytes = &expected[already..already + sent];
                prop_assert!(held.windows(sent).any(|w| w == sent_bytes), "sent bytes not held");
            } else {
                prop_assert!(kept.chunks.is_empty());
            }
            // Nothing the send may still read went back to the pool.
            buf.clear(&mut pool);
            let pooled_mid = pool.free.len();
            kept.clear(&mut pool);
            prop_assert!(pool.free.len() >= pooled_mid);
            prop_assert!(pooled_mid >= pooled_before);
        }
    }

    #[test]
    fn a_partly_sent_chunk_is_shared_not_copied_and_pooled_by_its_last_holder() {
        let mut pool = BufPool::default();
        let mut buf = WriteBuf::default();
        buf.push(&[1u8; 100], &mut pool);
        let mut kept = buf.split_sent(40);
        assert_eq!(buf.len(), 60);
        let (Chunk::Pinned(a), Chunk::Pinned(b)) = (&kept.chunks[0], &buf.chunks[0]) else {
            panic!("both hold the chunk, pinned");
        };
        assert!(Arc::ptr_eq(a, b), "the same bytes, not a copy");
        buf.clear(&mut pool);
        assert_eq!(pool.free.len(), 0, "the send still reads it");
        kept.clear(&mut pool);
        assert_eq!(pool.free.len(), 1, "back once both let go");
    }

    #[test]
    fn large_writes_use_pooled_chunks_only() {
        let mut pool = BufPool::default();
        let mut buf = WriteBuf::default();
        let big = vec![7u8; 5 * CHUNK + 123];
        buf.push(&big, &mut pool);
        assert!(buf
            .chunks
            .iter()
            .all(|c| matches!(c, Chunk::Owned(v) if v.capacity() == CHUNK)));
        let mut sink = Vec::new();
        buf.flush_to(&mut sink, &mut pool).unwrap();
        assert_eq!(sink, big);
        assert_eq!(pool.free.len(), 6, "every chunk back in the pool");
        // The same write again allocates nothing new.
        buf.push(&big, &mut pool);
        assert_eq!(pool.free.len(), 0);
    }

    #[test]
    fn drained_buffer_returns_chunks_to_pool() {
        let mut pool = BufPool::default();
        let mut buf = WriteBuf::default();
        buf.push(b"hello", &mut pool);
        let mut sink = Vec::new();
        buf.flush_to(&mut sink, &mut pool).unwrap();
        assert_eq!(sink, b"hello");
        assert_eq!(pool.free.len(), 1);
        assert!(buf.chunks.is_empty());
        buf.push(b"again", &mut pool);
        assert_eq!(pool.free.len(), 0, "chunk reused");
    }

    #[test]
    fn shared_buffers_go_out_by_reference_between_copied_writes() {
        let mut pool = BufPool::default();
        let mut wb = WriteBuf::default();
        let big: Arc<[u8]> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        wb.push(b"head ", &mut pool);
        wb.push_shared(big.clone(), &mut pool);
        wb.push(b" tail", &mut pool);
        wb.push_shared(Arc::from(&b"small"[..]), &mut pool);
        assert_eq!(Arc::strong_count(&big), 2, "queued by reference");
        let mut w = Trickle {
            out: Vec::new(),
            per_call: 7000,
            calls_left: usize::MAX,
        };
        while !wb.is_empty() {
            wb.flush_to(&mut w, &mut pool).unwrap();
        }
        let mut want = b"head ".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b" tailsmall");
        assert_eq!(w.out, want);
        assert_eq!(Arc::strong_count(&big), 1, "released once sent");
    }
}
