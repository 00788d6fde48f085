//! `h2` reads and writes through tokio's I/O traits; this gives it a
//! shardloop connection as those traits, for the server (a connection's
//! task handle) and the client (a `ClientStream`) alike: reads from the
//! input the shard routes to the task, writes queued on the connection.

use crate::client::ClientStream;
use crate::reactor::Protocol;
use crate::task::ConnTask;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection read and written by polling: what `h2` runs over. Public
/// (in a private module) only so that [`Http2Io`](crate::http::client::Http2Io)
/// can name it; nothing outside the crate implements it.
pub trait PollIo {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>>;
    fn shutdown_write(&mut self);
}

impl<P: Protocol> PollIo for ConnTask<P> {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        ConnTask::poll_read(self, cx, buf)
    }

    /// Queued on the connection at once (its output cap bounds it; `h2`'s
    /// flow control bounds what it writes per stream and connection).
    fn poll_write(&self, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.write(data);
        Poll::Ready(Ok(data.len()))
    }

    fn shutdown_write(&mut self) {
        ConnTask::shutdown_write(self);
    }
}

impl PollIo for ClientStream {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        ClientStream::poll_read(self, cx, buf)
    }

    /// `Pending` while the output is above its high-water mark (a server
    /// that does not read holds `h2` back).
    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ClientStream::poll_write(self, cx, data)
    }

    fn shutdown_write(&mut self) {
        ClientStream::shutdown_write(self);
    }
}

/// A [`PollIo`] as tokio's `AsyncRead` and `AsyncWrite`.
pub(crate) struct TokioIo<T>(pub(crate) T);

impl<T: PollIo + Unpin> AsyncRead for TokioIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.initialize_unfilled();
        match self.0.poll_read(cx, room) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: PollIo + Unpin> AsyncWrite for TokioIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.shutdown_write();
        Poll::Ready(Ok(()))
    }
}
