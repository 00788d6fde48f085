//! HTTP/2 for the client. A connection whose TLS handshake chose `h2`
//! (ALPN), or any `http://` connection with prior knowledge, carries every
//! request to its origin at once: the `h2` crate multiplexes them, its
//! connection driven as a task of the shard, its reads and writes going
//! through the [`ClientStream`] underneath.

use super::{ClientError, ClientOptions, ResponseBody};
use crate::http::h2::io::{PollIo, TokioIo};
use crate::http::h2::CONNECTION_SPECIFIC;
use crate::http::{Body, Request, Response};
use bytes::Bytes;
use http::header::HOST;
use http::HeaderName;

/// A handle on one HTTP/2 connection: cloned for each request.
pub(crate) type Sender = h2::client::SendRequest<Bytes>;

/// What HTTP/2 runs over: a [`ClientStream`](crate::client::ClientStream),
/// or the [`ConnTask`](crate::task::ConnTask) of a connection whose input
/// goes to its tasks ([`Conn::spawn_stream`](crate::Conn::spawn_stream)).
/// Implemented by those two only.
pub trait Http2Io: PollIo + Unpin + 'static {}

impl<T: PollIo + Unpin + 'static> Http2Io for T {}

/// The HTTP/2 handshake on `io`; the connection then runs as a task of
/// the shard until the server or every `Sender` lets it go.
pub(crate) async fn handshake(io: impl Http2Io) -> Result<Sender, ClientError> {
    let (send, conn) = h2::client::Builder::new()
        // Pushed responses have no requester here: refused.
        .enable_push(false)
        .handshake::<_, Bytes>(TokioIo(io))
        .await
        .map_err(h2_error)?;
    crate::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP/2 client connection ended");
        }
    });
    Ok(send)
}

/// An HTTP/2 client connection on a connection of your own, for callers
/// that choose how many connections they open and what runs on each (a
/// load generator, a gateway keeping N connections to a backend): hyper's
/// `client::conn::http2`. [`Client`](super::Client) does this for you,
/// with one shared connection per origin.
///
/// Every request goes out as a stream of the one connection; as many may
/// be in flight at once as the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
/// allows ([`send`](Http2Connection::send) waits for a free stream).
/// Cloning shares the connection.
///
/// ```no_run
/// use shardloop::http::client::{ClientOptions, Http2Connection};
/// use shardloop::http::{Body, Request};
/// use shardloop::{Conn, Protocol};
///
/// struct Probe;
/// impl Protocol for Probe {
///     type Message = ();
///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
///         conn.spawn_stream(|task| async move {
///             let Ok(h2) = Http2Connection::handshake(task.clone(), ClientOptions::default()).await else {
///                 return task.close();
///             };
///             // Ten requests in flight on the one connection.
///             let replies = (0..10).map(|i| {
///                 let h2 = h2.clone();
///                 async move {
///                     let req = Request::get(format!("http://backend/item/{i}"))
///                         .body(Body::empty())
///                         .unwrap();
///                     h2.send(req).await?.into_body().collect().await
///                 }
///             });
///             let bodies = shardloop::task::join_all(replies).await;
///             println!("{} answered", bodies.iter().filter(|b| b.is_ok()).count());
///             task.close();
///         });
///     }
///     fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
/// }
/// ```
#[derive(Clone)]
pub struct Http2Connection {
    send: Sender,
    opts: std::rc::Rc<ClientOptions>,
}

impl Http2Connection {
    /// Speaks HTTP/2 on `io` (prior knowledge: the caller knows the server
    /// speaks it, by ALPN `h2` or by configuration). The connection is
    /// driven by a task of the shard until the server closes it or every
    /// clone of this handle is dropped. `opts` bounds each response
    /// (`max_body`, `response_timeout` for each wait for a piece of the
    /// body); its pool and TLS settings do not apply.
    pub async fn handshake(io: impl Http2Io, opts: ClientOptions) -> Result<Self, ClientError> {
        Ok(Http2Connection {
            send: handshake(io).await?,
            opts: std::rc::Rc::new(opts),
        })
    }

    /// Waits until the server allows one more stream. An error means the
    /// connection is gone (a GOAWAY, an I/O error): nothing more can be
    /// sent on it, where an error from [`send`](Http2Connection::send) may
    /// be one stream's (a reset) on a connection that goes on.
    pub async fn ready(&self) -> Result<(), ClientError> {
        self.send.clone().ready().await.map(drop).map_err(h2_error)
    }

    /// Sends `req` (its URI absolute: the scheme and authority become
    /// `:scheme` and `:authority`) as a new stream, once the server allows
    /// one more, and returns once the response's head is in; its body is
    /// read as the caller asks. Not bounded in time here: wrap it in
    /// [`task::timeout`](crate::task::timeout) (dropping the future resets
    /// the stream).
    pub async fn send(&self, req: Request<Body>) -> Result<Response<ResponseBody>, ClientError> {
        let send = self.send.clone().ready().await.map_err(h2_error)?;
        exchange(send, &req, &self.opts).await
    }
}

/// Fields not sent on HTTP/2: the connection-specific ones, and `Host`
/// (it becomes `:authority`).
fn not_sent(name: &HeaderName) -> bool {
    name == HOST || CONNECTION_SPECIFIC.contains(&name.as_str())
}

/// Sends `req` as a stream of the connection (`send` ready for a new
/// stream); its response, the body to be read as it comes.
pub(crate) async fn exchange(
    mut send: Sender,
    req: &Request<Body>,
    opts: &ClientOptions,
) -> Result<Response<ResponseBody>, ClientError> {
    let body = req.body();
    let (response, mut out) = send
        .send_request(h2_head(req), body.is_empty())
        .map_err(h2_error)?;
    if !body.is_empty() {
        // Shared, not copied; h2 keeps what the peer's window does not
        // take yet.
        out.send_data(body.clone().into_bytes(), true)
            .map_err(h2_error)?;
    }
    respond(response, opts).await
}

/// The response's head; its body to be read as it comes.
async fn respond(
    response: h2::client::ResponseFuture,
    opts: &ClientOptions,
) -> Result<Response<ResponseBody>, ClientError> {
    let resp = response.await.map_err(h2_error)?;
    let (parts, recv) = resp.into_parts();
    let body = ResponseBody::h2(recv, opts);
    Ok(Response::from_parts(parts, body))
}

/// The request's head as HTTP/2 sends it (no connection-specific fields).
fn h2_head<B>(req: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = http::Version::HTTP_2;
    for (name, value) in req.headers() {
        if !not_sent(name) {
            head.headers_mut().append(name.clone(), value.clone());
        }
    }
    head
}

/// Sends `req` with a body `next` produces (`send` ready for a new
/// stream), each piece within the stream's flow-control window (waiting
/// for the server to open it).
pub(crate) async fn upload<F, Fut>(
    mut send: Sender,
    req: &Request<()>,
    mut next: F,
    opts: &ClientOptions,
) -> Result<Response<ResponseBody>, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Bytes>>,
{
    let (response, mut out) = send.send_request(h2_head(req), false).map_err(h2_error)?;
    'body: while let Some(mut piece) = next().await {
        while !piece.is_empty() {
            out.reserve_capacity(piece.len());
            let room = match std::future::poll_fn(|cx| out.poll_capacity(cx)).await {
                Some(room) => room.map_err(h2_error)?,
                // The server ended the stream (answered early, a 413):
                // its answer is the response.
                None => break 'body,
            };
            let n = room.min(piece.len());
            out.send_data(piece.split_to(n), false).map_err(h2_error)?;
        }
    }
    // Ends the body (refused, harmlessly, if the server already ended it).
    let _ = out.send_data(Bytes::new(), true);
    respond(response, opts).await
}

pub(crate) fn h2_error(e: h2::Error) -> ClientError {
    if e.is_io() {
        match e.into_io() {
            Some(io) => ClientError::Io(io),
            None => ClientError::Protocol("HTTP/2 connection failed"),
        }
    } else {
        ClientError::Http2(e.to_string())
    }
}
