//! Reading a connection's input from a task: `read`, `read_exact`,
//! `next_frame`, `read_line`, over the input the shard fills. One
//! implementation for `ConnTask` (an accepted connection written as an
//! `async fn`) and `ClientStream` (an outbound one).

use crate::framing::{Decoder, LineDecoder};
use crate::reactor::exec::input::{Input, SharedInput};
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

/// What reads a connection's input: asks the shard to read from the
/// socket again once the task has caught up.
pub(crate) trait Resume {
    fn resume(&self);
}

/// A task's reading side of one connection.
pub(crate) struct Reader<'a> {
    pub(crate) input: &'a SharedInput,
    pub(crate) resume: &'a dyn Resume,
}

impl Reader<'_> {
    /// Polls `take` on the buffered input (it sees the end of input
    /// through `Input::ended`): its value, the connection's failure, or
    /// `Pending` with the waker kept until more input arrives.
    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        take: impl FnOnce(&mut Input) -> Option<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let mut s = self.input.borrow_mut();
        let out = match take(&mut s) {
            Some(r) => Poll::Ready(r),
            None => match s.failure() {
                Some(e) => Poll::Ready(Err(e)),
                None => {
                    s.wait(cx.waker());
                    Poll::Pending
                }
            },
        };
        // Checked on every poll, not only at the end: a reader that
        // consumes as it goes (`read_exact` of more than the input
        // cap) must get the socket read again while it waits.
        let resume = s.should_resume();
        drop(s);
        if resume {
            self.resume.resume();
        }
        out
    }

    /// Waits until `take` returns a value from the buffered input, or the
    /// connection fails.
    async fn read_with<R>(
        &self,
        mut take: impl FnMut(&mut Input) -> Option<io::Result<R>>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(cx, &mut take)).await
    }

    /// Polls for input into `buf` (for poll-based I/O traits): `Ok(0)` at
    /// the peer's EOF.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |s| read_into(s, buf))
    }

    /// Reads into `buf`; `Ok(0)` at the peer's EOF.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|s| read_into(s, buf)).await
    }

    /// Appends everything buffered (at least one byte) to `buf`; `Ok(0)`
    /// at the peer's EOF. An empty `buf` holds no memory while it waits.
    pub(crate) async fn read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.read_with(|s| {
            let have = s.buffered();
            if !have.is_empty() {
                let n = have.len();
                buf.extend_from_slice(have);
                s.consume(n);
                return Some(Ok(n));
            }
            s.ended().then_some(Ok(0))
        })
        .await
    }

    /// Fills `buf` exactly; `UnexpectedEof` if the peer ends first. Bytes
    /// are taken as they arrive, so `buf` may be larger than the input
    /// buffer's cap (a 60 MiB value); on an error, what `buf` holds is
    /// unspecified.
    pub(crate) async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let want = buf.len();
        let mut filled = 0;
        self.read_with(|s| {
            let have = s.buffered();
            let n = have.len().min(want - filled);
            buf[filled..filled + n].copy_from_slice(&have[..n]);
            s.consume(n);
            filled += n;
            if filled == want {
                return Some(Ok(()));
            }
            s.ended().then(|| {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed mid-message",
                ))
            })
        })
        .await
    }

    /// The next frame cut by `decoder`; `Ok(None)` at a clean EOF between
    /// frames. Each byte is searched once however the input arrives.
    pub(crate) async fn next_frame<D: Decoder>(&self, decoder: &D) -> io::Result<Option<Vec<u8>>> {
        self.read_with(|s| {
            let searched = s.searched;
            match decoder.decode_from(s.buffered(), searched) {
                Ok(Some(f)) => {
                    let frame = s.buffered()[f.start..f.end].to_vec();
                    s.consume(f.consumed);
                    Some(Ok(Some(frame)))
                }
                Ok(None) => {
                    s.searched = s.buffered().len();
                    s.ended().then(|| {
                        if s.buffered().is_empty() {
                            Ok(None)
                        } else {
                            Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "peer closed mid-frame",
                            ))
                        }
                    })
                }
                Err(e) => Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e.to_string(),
                ))),
            }
        })
        .await
    }

    /// The next `\r\n`- (or `\n`-) terminated line of at most `max` bytes,
    /// without its delimiter; `Ok(None)` at a clean EOF. `cache` keeps the
    /// decoder between calls.
    pub(crate) async fn read_line(
        &self,
        max: usize,
        cache: &mut Option<LineDecoder>,
    ) -> io::Result<Option<Vec<u8>>> {
        let d = match cache.take() {
            Some(d) if d.max_line_length() == max => d,
            _ => LineDecoder::new(b"\r\n".to_vec(), max).accept_bare_lf(true),
        };
        let line = self.next_frame(&d).await;
        *cache = Some(d);
        line
    }
}

/// What is buffered, up to `buf`'s size; `Ok(0)` at the end of input.
fn read_into(s: &mut Input, buf: &mut [u8]) -> Option<io::Result<usize>> {
    let have = s.buffered();
    if !have.is_empty() {
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        s.consume(n);
        return Some(Ok(n));
    }
    s.ended().then_some(Ok(0))
}
