//! Streamed response bodies: a producer task writes the body in pieces
//! through a [`BodyWriter`], chunked on the wire (close-delimited for
//! HTTP/1.0), and waits whenever the client reads slower than it writes.

use super::response::{self, encode};
use super::server::HttpConnection;
use super::Body;
use crate::task::ConnTask;
use crate::Conn;
use bytes::Bytes;
use http::{Response, Version};
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Bytes handed to the connection but not yet written by it, at most,
/// before `send` waits (the writes are applied when the task yields).
const MAX_QUEUED: usize = 256 * 1024;

/// The producer of a streamed body, boxed.
type Producer = Box<dyn FnOnce(BodyWriter) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A streamed response: its head, and the producer that writes its body
/// (made by [`Reply::stream`](super::Reply::stream)).
pub struct StreamReply {
    pub(crate) head: Response<()>,
    pub(crate) produce: Producer,
}

impl StreamReply {
    pub(crate) fn new<F, Fut>(head: Response<()>, produce: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        StreamReply {
            head,
            produce: Box::new(move |w| Box::pin(produce(w))),
        }
    }
}

/// Where a stream stands, shared by the connection and its writer.
#[derive(Default)]
pub(crate) struct StreamState {
    /// The connection's output is above its high-water mark.
    pub(crate) paused: bool,
    /// The connection is gone: nothing more can be sent.
    pub(crate) closed: bool,
    /// Bytes sent and not yet written to the connection.
    queued: usize,
    waker: Option<Waker>,
}

impl StreamState {
    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// A streamed response waiting for its turn.
pub(crate) struct OwedStream {
    pub(crate) reply: StreamReply,
    pub(crate) head_only: bool,
    pub(crate) version: Version,
    pub(crate) keep_alive: bool,
}

/// The stream being written on a connection.
pub(crate) struct Streaming {
    pub(crate) state: Rc<RefCell<StreamState>>,
    /// Chunked coding (HTTP/1.1) rather than raw bytes ended by the close.
    chunked: bool,
    /// The connection closes after the body.
    close: bool,
}

/// The connection this stream was on is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client's connection is closed")]
pub struct StreamClosed;

/// Writes a streamed response's body (from [`Reply::stream`](super::Reply::stream)).
/// Dropping it ends the body.
pub struct BodyWriter {
    to: WriterTo,
}

/// Where a body's pieces go.
enum WriterTo {
    /// An HTTP/1.1 connection, in chunks.
    H1 {
        state: Rc<RefCell<StreamState>>,
        task: ConnTask<HttpConnection>,
    },
    /// An HTTP/2 stream, in DATA frames.
    H2 {
        stream: h2::SendStream<Bytes>,
        failed: bool,
    },
}

impl BodyWriter {
    pub(crate) fn h2(stream: h2::SendStream<Bytes>) -> Self {
        BodyWriter {
            to: WriterTo::H2 {
                stream,
                failed: false,
            },
        }
    }

    /// Sends a piece of the body, first waiting while the client reads
    /// slower than the body is written (the connection's output above
    /// its high-water mark). Empty pieces are skipped.
    pub async fn send(&mut self, data: impl Into<Bytes>) -> Result<(), StreamClosed> {
        let (state, task) = match &mut self.to {
            WriterTo::H1 { state, task } => (state, task),
            WriterTo::H2 { stream, failed } => {
                let sent = super::h2::send_data(stream, data.into(), false).await;
                *failed |= sent.is_err();
                return sent;
            }
        };
        poll_fn(|cx| {
            let mut s = state.borrow_mut();
            if s.closed {
                return Poll::Ready(Err(StreamClosed));
            }
            if s.paused || s.queued >= MAX_QUEUED {
                s.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
        .await?;
        let data: Bytes = data.into();
        if data.is_empty() {
            return Ok(());
        }
        state.borrow_mut().queued += data.len();
        task.run(move |p, conn| p.stream_piece(conn, data));
        Ok(())
    }

    /// True once the client's connection (or HTTP/2 stream) is gone.
    pub fn is_closed(&self) -> bool {
        match &self.to {
            WriterTo::H1 { state, .. } => state.borrow().closed,
            WriterTo::H2 { failed, .. } => *failed,
        }
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        match &mut self.to {
            // `try_run`: a writer can be dropped while its shard tears
            // down, where there is no connection left to end.
            WriterTo::H1 { task, .. } => {
                task.try_run(|p, conn| p.stream_end(conn));
            }
            // The end of the stream: an empty DATA frame with END_STREAM.
            WriterTo::H2 { stream, .. } => {
                let _ = stream.send_data(Bytes::new(), true);
            }
        }
    }
}

impl HttpConnection {
    /// Writes a streamed response's head and starts its producer; the
    /// answers after it wait until its body ends.
    pub(super) fn start_stream(&mut self, conn: &mut Conn<'_, Self>, owed: OwedStream) {
        let OwedStream {
            reply,
            head_only,
            version,
            keep_alive,
        } = owed;
        let framing = response::Framing {
            head_only,
            version,
            keep_alive,
            server: self.server_field(),
            now: conn.shard().now(),
            streamed: true,
        };
        let (parts, ()) = reply.head.into_parts();
        let bodiless = head_only || response::bodiless(parts.status);
        let mut head = Vec::new();
        let e = encode(
            Response::from_parts(parts, Body::empty()),
            &framing,
            &mut head,
        );
        conn.write_owned(head);
        let state = Rc::new(RefCell::new(StreamState::default()));
        self.streaming = Some(Streaming {
            state: state.clone(),
            chunked: version != Version::HTTP_10,
            close: e.close,
        });
        if bodiless {
            // Nothing of a body goes out: the producer is not run, and
            // the caller goes on with what is owed after it.
            self.streaming = None;
            if e.close {
                self.closing = true;
                self.pending.clear();
                conn.close();
            }
            return;
        }
        // Waiting on the producer is not idleness.
        self.keep_alive(conn, false);
        let produce = reply.produce;
        conn.spawn(move |task| async move {
            let writer = BodyWriter {
                to: WriterTo::H1 { state, task },
            };
            produce(writer).await;
        });
    }

    /// A piece of the body, written as a chunk.
    fn stream_piece(&mut self, conn: &mut Conn<'_, Self>, data: Bytes) {
        let Some(s) = &self.streaming else {
            return;
        };
        {
            let mut st = s.state.borrow_mut();
            st.queued -= data.len().min(st.queued);
            st.wake();
        }
        if s.chunked {
            conn.write(format!("{:x}\r\n", data.len()).as_bytes());
            conn.write_owned(Vec::from(data));
            conn.write(b"\r\n");
        } else {
            conn.write_owned(Vec::from(data));
        }
    }

    /// The producer is done: the body ends, and the answers owed after it
    /// go out.
    fn stream_end(&mut self, conn: &mut Conn<'_, Self>) {
        let Some(s) = self.streaming.take() else {
            return;
        };
        s.state.borrow_mut().closed = true;
        if s.chunked {
            conn.write(b"0\r\n\r\n");
        }
        if s.close {
            self.closing = true;
            self.pending.clear();
            return conn.close();
        }
        self.write_ready(conn);
    }

    /// The output passed its high-water mark: the producer waits.
    pub(super) fn stream_pause(&mut self, paused: bool) {
        if let Some(s) = &self.streaming {
            let mut st = s.state.borrow_mut();
            st.paused = paused;
            if !paused {
                st.wake();
            }
        }
    }

    /// The connection is gone: the producer's next send fails.
    pub(super) fn stream_lost(&mut self) {
        if let Some(s) = self.streaming.take() {
            let mut st = s.state.borrow_mut();
            st.closed = true;
            st.wake();
        }
    }
}
