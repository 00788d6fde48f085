//! Responses on an HTTP/2 stream: the head (the fields HTTP/2 forbids
//! taken out, `date`, `server` and `content-length` added), and the body
//! sent within the stream's flow-control window.

use super::super::builder::Shared;
use super::super::response;
use super::super::{Body, BodyWriter, StreamClosed, StreamReply};
use super::CONNECTION_SPECIFIC;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::SendStream;
use http::header::{self, HeaderValue};
use http::Response;
use std::future::poll_fn;
use std::time::Instant;

/// The head to send: the handler's fields less the forbidden ones, with
/// the shard's cached `date` and the server's `server`.
fn head(mut parts: http::response::Parts, shared: &Shared) -> Response<()> {
    let h = &mut parts.headers;
    for name in CONNECTION_SPECIFIC {
        h.remove(name);
    }
    if !h.contains_key(header::DATE) {
        response::with_date(Instant::now(), |d| {
            if let Ok(v) = HeaderValue::from_bytes(d) {
                h.insert(header::DATE, v);
            }
        });
    }
    if let Some(server) = &shared.server {
        h.entry(header::SERVER).or_insert_with(|| server.clone());
    }
    Response::from_parts(parts, ())
}

/// Sends a response with its whole body.
pub(super) async fn send(
    respond: &mut SendResponse<Bytes>,
    resp: Response<Body>,
    head_only: bool,
    shared: &Shared,
) {
    let (parts, body) = resp.into_parts();
    let mut h = head(parts, shared);
    let body = body.into_bytes();
    let bodiless = response::bodiless(h.status());
    if !bodiless {
        h.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let end = head_only || bodiless || body.is_empty();
    let Ok(mut stream) = respond.send_response(h, end) else {
        return; // reset by the client
    };
    if !end {
        let _ = send_data(&mut stream, body, true).await;
    }
}

/// Sends a streamed response: the head, then what the producer writes.
pub(super) async fn stream(
    respond: &mut SendResponse<Bytes>,
    reply: StreamReply,
    head_only: bool,
    shared: &Shared,
) {
    let (parts, ()) = reply.head.into_parts();
    let h = head(parts, shared);
    let Ok(stream) = respond.send_response(h, head_only) else {
        return;
    };
    if !head_only {
        (reply.produce)(BodyWriter::h2(stream)).await;
    }
}

/// Sends `data` as the window allows (waiting for the client's window
/// updates: a client that does not read holds the stream, not memory),
/// ending the stream after it if `end`.
pub(crate) async fn send_data(
    s: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), StreamClosed> {
    if data.is_empty() {
        if end {
            s.send_data(data, true).map_err(|_| StreamClosed)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        s.reserve_capacity(data.len());
        let n = match poll_fn(|cx| s.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            _ => return Err(StreamClosed),
        };
        if n == 0 {
            continue;
        }
        let piece = data.split_to(n.min(data.len()));
        s.send_data(piece, end && data.is_empty())
            .map_err(|_| StreamClosed)?;
    }
    Ok(())
}
