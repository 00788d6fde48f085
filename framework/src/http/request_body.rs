//! Request bodies delivered in pieces as they arrive ([`BodyReader`]),
//! for handlers that take uploads larger than they want to hold: the
//! connection stops reading the socket while the handler is behind.

use super::server::HttpConnection;
use crate::task::ConnTask;
use crate::ConnId;
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// Bytes of a body waiting for the handler, at most, before the
/// connection stops reading (and resumes below a quarter of it).
const HIGH: usize = 256 * 1024;

/// Why a streamed request body ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The client closed the connection (or it failed) before the end.
    #[error("the client left before the end of the body")]
    Incomplete,
    /// The body broke its framing (a malformed chunk).
    #[error("malformed request body")]
    Malformed,
    /// The body passed the limit given to [`BodyReader::collect`].
    #[error("request body over the limit")]
    TooLarge,
}

#[derive(Default)]
struct State {
    pieces: VecDeque<Bytes>,
    buffered: usize,
    end: Option<Result<(), BodyError>>,
    waker: Option<Waker>,
    /// The connection stopped reading because the handler is behind.
    conn_paused: bool,
}

/// A request body arriving in pieces, in the request's extensions for a
/// route added with [`Router::route_stream`](super::Router::route_stream).
/// Used from the request's task on the connection's shard.
#[derive(Clone)]
pub struct BodyReader {
    state: Arc<Mutex<State>>,
    /// The connection to wake when the handler catches up (none for a
    /// body read whole before the handler ran: HTTP/2, or no body).
    conn: Option<ConnId>,
}

impl BodyReader {
    pub(crate) fn new(conn: Option<ConnId>) -> Self {
        BodyReader {
            state: Arc::default(),
            conn,
        }
    }

    /// A body already whole.
    pub(crate) fn whole(body: Bytes) -> Self {
        let r = BodyReader::new(None);
        r.push(body);
        r.finish(Ok(()));
        r
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next piece; `None` at the body's end.
    pub async fn next(&self) -> Option<Result<Bytes, BodyError>> {
        let got = poll_fn(|cx| {
            let mut s = self.lock();
            if let Some(p) = s.pieces.pop_front() {
                s.buffered -= p.len();
                return Poll::Ready(Some(Ok(p)));
            }
            match s.end {
                Some(Ok(())) => Poll::Ready(None),
                Some(Err(e)) => Poll::Ready(Some(Err(e))),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let resume = {
            let mut s = self.lock();
            let r = s.conn_paused && s.buffered <= HIGH / 4;
            if r {
                s.conn_paused = false;
            }
            r
        };
        if let Some(id) = self.conn.filter(|_| resume) {
            ConnTask::<HttpConnection>::new(id).try_run(|p, conn| p.body_drained(conn));
        }
        got
    }

    /// The whole body, if it is at most `max` bytes.
    pub async fn collect(&self, max: usize) -> Result<Bytes, BodyError> {
        let mut all = Vec::new();
        while let Some(piece) = self.next().await {
            let piece = piece?;
            if all.len() + piece.len() > max {
                return Err(BodyError::TooLarge);
            }
            all.extend_from_slice(&piece);
        }
        Ok(all.into())
    }

    /// Hands a piece to the handler; past the high-water mark the
    /// connection stops reading ([`is_full`](Self::is_full)) until it
    /// catches up.
    pub(crate) fn push(&self, piece: Bytes) {
        let mut s = self.lock();
        if s.end.is_some() || piece.is_empty() {
            return;
        }
        s.buffered += piece.len();
        s.pieces.push_back(piece);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        s.conn_paused = s.buffered > HIGH;
    }

    /// The body ended (`Ok`) or broke off.
    pub(crate) fn finish(&self, end: Result<(), BodyError>) {
        let mut s = self.lock();
        if s.end.is_none() {
            s.end = Some(end);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// True while the connection waits for the handler.
    pub(crate) fn is_full(&self) -> bool {
        self.lock().conn_paused
    }
}
