//! A response's body as it arrives: pieces read from the connection (an
//! HTTP/1.1 one, decoded by length, chunks or the close; or an HTTP/2
//! stream) when the caller asks, so a large body costs no more memory
//! than the caller keeps. An HTTP/1.1 connection goes back to its pool
//! once its body was read to the end; one dropped before that is closed.

use super::{ClientError, ClientOptions, Origin};
use crate::client::{ClientStream, Pooled};
use crate::http::response_head::{BodyProgress, ResponseFraming};
use bytes::Bytes;
use std::time::Duration;

/// The body of a response from [`Client::send`](super::Client::send):
/// read it in pieces with [`next`](ResponseBody::next), or whole with
/// [`collect`](ResponseBody::collect). At most `ClientOptions::max_body`
/// bytes are taken (past that: [`ClientError::TooLarge`]); each wait for
/// more bytes is bounded by `ClientOptions::response_timeout`.
///
/// ```no_run
/// use shardloop::http::client::{Client, ClientOptions};
/// use shardloop::http::Request;
/// # async fn demo() -> Result<(), shardloop::http::client::ClientError> {
/// let client = Client::new(ClientOptions::default());
/// let req = Request::get("http://127.0.0.1:8080/export").body(Default::default()).unwrap();
/// let mut resp = client.send(req).await?;
/// let mut total = 0;
/// while let Some(piece) = resp.body_mut().next().await {
///     total += piece?.len(); // one piece at a time: nothing else kept
/// }
/// # let _ = total; Ok(()) }
/// ```
pub struct ResponseBody {
    inner: Inner,
    max_body: u64,
    wait: Duration,
    taken: u64,
}

enum Inner {
    Done,
    H1(Box<H1>),
    H2(h2::RecvStream),
}

struct H1 {
    conn: Pooled<Origin, ClientStream>,
    buf: Vec<u8>,
    at: usize,
    progress: BodyProgress,
    keep_alive: bool,
}

impl ResponseBody {
    pub(crate) fn h1(
        conn: Pooled<Origin, ClientStream>,
        head: super::exchange::Head,
        opts: &ClientOptions,
    ) -> Self {
        let framing = head.framing;
        let inner = if framing == ResponseFraming::Length(0) {
            if head.keep_alive && head.at == head.buf.len() {
                conn.release();
            }
            Inner::Done
        } else {
            Inner::H1(Box::new(H1 {
                conn,
                buf: head.buf,
                at: head.at,
                // Trailers are capped as the head is.
                progress: BodyProgress::new(framing, 4096, opts.max_head),
                keep_alive: head.keep_alive,
            }))
        };
        ResponseBody::with(inner, opts)
    }

    pub(crate) fn h2(recv: h2::RecvStream, opts: &ClientOptions) -> Self {
        ResponseBody::with(Inner::H2(recv), opts)
    }

    fn with(inner: Inner, opts: &ClientOptions) -> Self {
        ResponseBody {
            inner,
            max_body: opts.max_body,
            wait: opts.response_timeout,
            taken: 0,
        }
    }

    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Option<Result<Bytes, ClientError>> {
        let piece = match crate::task::timeout(self.wait, self.read()).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(self.wait)),
        };
        let piece = match piece {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                // The connection is out of step: closed, not pooled.
                self.inner = Inner::Done;
                return Some(Err(e));
            }
        };
        self.taken += piece.len() as u64;
        if self.taken > self.max_body {
            self.inner = Inner::Done;
            return Some(Err(ClientError::TooLarge));
        }
        Some(Ok(piece))
    }

    /// The whole body (at most `max_body` bytes).
    pub async fn collect(mut self) -> Result<Bytes, ClientError> {
        let mut all = Vec::new();
        while let Some(piece) = self.next().await {
            all.extend_from_slice(&piece?);
        }
        Ok(Bytes::from(all))
    }

    async fn read(&mut self) -> Result<Option<Bytes>, ClientError> {
        match &mut self.inner {
            Inner::Done => Ok(None),
            Inner::H2(recv) => match recv.data().await {
                None => {
                    self.inner = Inner::Done;
                    Ok(None)
                }
                Some(Ok(piece)) => {
                    let _ = recv.flow_control().release_capacity(piece.len());
                    Ok(Some(piece))
                }
                Some(Err(e)) => Err(super::h2::h2_error(e)),
            },
            Inner::H1(h1) => {
                let piece = h1.next().await?;
                if piece.is_none() {
                    if let Inner::H1(h1) = std::mem::replace(&mut self.inner, Inner::Done) {
                        h1.finish();
                    }
                }
                Ok(piece)
            }
        }
    }
}

impl H1 {
    /// Decodes what is buffered, reading more when that holds no data;
    /// `None` once the body ended.
    async fn next(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let mut data = Vec::new();
            let (used, done) = self
                .progress
                .feed(&self.buf[self.at..], |d| data.extend_from_slice(d))
                .map_err(|_| ClientError::Protocol("malformed chunked body"))?;
            self.at += used;
            if done {
                // The end: what is decoded now is the last piece (then
                // None, from `Length(0)`).
                self.keep_alive &= self.at == self.buf.len();
                self.progress = BodyProgress::Length(0);
            }
            if !data.is_empty() {
                return Ok(Some(Bytes::from(data)));
            }
            if matches!(self.progress, BodyProgress::Length(0)) {
                return Ok(None);
            }
            self.buf.drain(..self.at);
            self.at = 0;
            let n = self.conn.read_buf(&mut self.buf).await?;
            if n == 0 {
                if matches!(self.progress, BodyProgress::UntilClose) {
                    self.keep_alive = false;
                    self.progress = BodyProgress::Length(0);
                    return Ok(None);
                }
                return Err(ClientError::Protocol("closed in the middle of the body"));
            }
        }
    }

    /// The body was read to its end: the connection serves the next
    /// request if the response allowed it (and nothing followed it).
    fn finish(self) {
        if self.keep_alive {
            self.conn.release();
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.inner {
            Inner::Done => "done",
            Inner::H1(_) => "http/1.1",
            Inner::H2(_) => "h2",
        };
        f.debug_struct("ResponseBody")
            .field("state", &state)
            .field("taken", &self.taken)
            .finish()
    }
}
