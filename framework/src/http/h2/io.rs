//! `h2` reads and writes through tokio's I/O traits; this gives it a
//! connection's task handle as those traits: reads from the input routed
//! to the task, writes queued on the connection.

use super::HttpConnection;
use crate::task::ConnTask;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(super) struct TaskIo {
    task: ConnTask<HttpConnection>,
}

impl TaskIo {
    pub(super) fn new(task: ConnTask<HttpConnection>) -> Self {
        TaskIo { task }
    }
}

impl AsyncRead for TaskIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.initialize_unfilled();
        match self.task.poll_read(cx, room) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TaskIo {
    /// Queued on the connection at once (its output cap bounds it; `h2`'s
    /// flow control bounds what it writes per stream and connection).
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.task.write(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.task.shutdown_write();
        Poll::Ready(Ok(()))
    }
}
