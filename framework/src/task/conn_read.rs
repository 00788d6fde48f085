//! The reading side of [`ConnTask`], for connections whose input goes to
//! their tasks ([`Conn::spawn_stream`](crate::Conn::spawn_stream)): the
//! same `read`, `read_exact`, `read_line` and `next_frame` as
//! [`ClientStream`](crate::client::ClientStream), one implementation.

use super::conn_task::ConnTask;
use super::input::{Reader, Resume};
use crate::framing::Decoder;
use crate::reactor::exec::input::SharedInput;
use crate::reactor::Protocol;
use std::io;
use std::task::{Context, Poll};

impl<P: Protocol> Resume for ConnTask<P> {
    fn resume(&self) {
        self.run(|_, c| c.resume_reading());
    }
}

impl<P: Protocol> ConnTask<P> {
    /// The connection's input, if it goes to its tasks.
    fn input(&self) -> io::Result<SharedInput> {
        self.input.clone().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "this connection's input goes to data_received: read it from a task started \
                 with Conn::spawn_stream",
            )
        })
    }

    fn reader<'a>(&'a self, input: &'a SharedInput) -> Reader<'a> {
        Reader {
            input,
            resume: self,
        }
    }

    /// Polls for input into `buf`, for adapters to poll-based I/O traits
    /// (an HTTP/2 library's `AsyncRead`): `Ready(Ok(0))` at the peer's EOF,
    /// `Pending` with the waker kept until bytes arrive.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.input() {
            Ok(input) => self.reader(&input).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Reads into `buf`; `Ok(0)` at the peer's EOF.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let input = self.input()?;
        self.reader(&input).read(buf).await
    }

    /// Appends everything received so far (at least one byte) to `buf`;
    /// `Ok(0)` at the peer's EOF. With an empty `Vec`, a connection that
    /// waits holds no read buffer.
    pub async fn read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let input = self.input()?;
        self.reader(&input).read_buf(buf).await
    }

    /// Fills `buf` exactly; `UnexpectedEof` if the peer ends first.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let input = self.input()?;
        self.reader(&input).read_exact(buf).await
    }

    /// The next frame cut by `decoder` (a line, a length-prefixed message,
    /// a netstring); `Ok(None)` at a clean EOF between frames.
    pub async fn next_frame<D: Decoder>(&self, decoder: &D) -> io::Result<Option<Vec<u8>>> {
        let input = self.input()?;
        self.reader(&input).next_frame(decoder).await
    }

    /// The next `\r\n`- (or `\n`-) terminated line of at most `max` bytes,
    /// without its delimiter; `Ok(None)` at a clean EOF.
    pub async fn read_line(&self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let input = self.input()?;
        self.reader(&input).read_line(max, &mut None).await
    }
}
