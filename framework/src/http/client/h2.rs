//! HTTP/2 for the client. A connection whose TLS handshake chose `h2`
//! (ALPN), or any `http://` connection with prior knowledge, carries every
//! request to its origin at once: the `h2` crate multiplexes them, its
//! connection driven as a task of the shard, its reads and writes going
//! through the [`ClientStream`] underneath.

use super::{ClientError, ClientOptions, ResponseBody};
use crate::client::ClientStream;
use crate::http::h2::io::TokioIo;
use crate::http::h2::CONNECTION_SPECIFIC;
use crate::http::{Body, Request, Response};
use bytes::Bytes;
use http::header::HOST;
use http::HeaderName;

/// A handle on one HTTP/2 connection: cloned for each request.
pub(crate) type Sender = h2::client::SendRequest<Bytes>;

/// The HTTP/2 handshake on `stream`; the connection then runs as a task
/// of the shard until the server or every `Sender` lets it go.
pub(crate) async fn handshake(stream: ClientStream) -> Result<Sender, ClientError> {
    let (send, conn) = h2::client::Builder::new()
        // Pushed responses have no requester here: refused.
        .enable_push(false)
        .handshake::<_, Bytes>(TokioIo(stream))
        .await
        .map_err(h2_error)?;
    crate::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP/2 client connection ended");
        }
    });
    Ok(send)
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
