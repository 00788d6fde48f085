//! HTTP/2 for the server (RFC 9113) with the `h2` crate, driven by tasks
//! of the connection on its shard: ALPN `h2` over TLS and prior-knowledge
//! h2c both start here, and every stream is answered by the same handler
//! as HTTP/1.1. Stream limits, the header-list size and the caps on
//! resets (CVE-2023-44487, rapid reset) come from [`Limits`].

pub(crate) mod io;
mod respond;

use super::builder::Shared;
use super::server::HttpConnection;
use super::{Body, Limits, Reply};
use crate::task::ConnTask;
use crate::Conn;
use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use std::sync::Arc;

pub(crate) use respond::send_data;

/// Fields that belong to one HTTP/1.1 connection, never sent on HTTP/2
/// (RFC 9113 §8.2.2): the server's responses and the client's requests
/// drop them.
pub(crate) const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "transfer-encoding",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// What a client sends first on a prior-knowledge HTTP/2 connection.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl HttpConnection {
    /// From now on the connection speaks HTTP/2: its input (with `early`,
    /// the bytes already read) goes to the task that drives `h2`.
    pub(super) fn start_h2(&mut self, conn: &mut Conn<'_, Self>, early: &[u8]) {
        self.keep_alive(conn, false);
        self.set_deadline(conn, None);
        let shared = self.shared().clone();
        // An HTTP/2 connection with no stream open still has a limit.
        conn.set_idle_timeout(shared.limits.keep_alive);
        conn.spawn_stream(move |task| serve(task, shared));
        if !early.is_empty() {
            conn.push_task_input(early);
        }
    }
}

/// The `h2` server options from the limits.
fn builder(limits: &Limits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_head).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(Some(limits.h2_max_pending_resets));
    b
}

/// Drives one HTTP/2 connection: the handshake, then each stream a task
/// of the connection (dropped with it).
async fn serve(task: ConnTask<HttpConnection>, shared: Arc<Shared>) {
    let io = io::TokioIo(task.clone());
    let Ok(mut h2) = builder(&shared.limits).handshake::<_, Bytes>(io).await else {
        return task.close();
    };
    while let Some(next) = h2.accept().await {
        let Ok((req, respond)) = next else {
            break;
        };
        let shared = shared.clone();
        task.run(move |_, conn| {
            conn.spawn(move |t| stream(t, shared, req, respond));
        });
    }
    // GOAWAY sent and every stream finished, or the connection failed.
    task.close();
}

/// Answers one stream: its body read (up to `max_body`), the handler run
/// on the shard, the response sent within the stream's flow control.
async fn stream(
    task: ConnTask<HttpConnection>,
    shared: Arc<Shared>,
    req: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let (parts, mut recv) = req.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let Ok(chunk) = chunk else {
            return; // reset by the client
        };
        let _ = recv.flow_control().release_capacity(chunk.len());
        if (data.len() + chunk.len()) as u64 > shared.limits.max_body {
            let r = super::response::error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            return respond::send(&mut respond, r, false, &shared).await;
        }
        data.extend_from_slice(&chunk);
    }
    let head_only = parts.method == http::Method::HEAD;
    let req = Request::from_parts(parts, Body::from(data.freeze()));
    let reply = task.with(move |p, conn| p.answer(req, conn)).await;
    match reply {
        Reply::Now(r) => respond::send(&mut respond, r, head_only, &shared).await,
        Reply::Later(f) => {
            let r = f.await;
            respond::send(&mut respond, r, head_only, &shared).await;
        }
        Reply::Stream(s) => respond::stream(&mut respond, s, head_only, &shared).await,
        Reply::Upgrade(_) => {
            // WebSocket over HTTP/2 (RFC 8441) is not offered.
            let r = super::response::error(
                StatusCode::NOT_IMPLEMENTED,
                "WebSocket needs HTTP/1.1 here",
            );
            respond::send(&mut respond, r, false, &shared).await;
        }
    }
}
