//! What answers requests: a [`Handler`] returns a response at once or a
//! future of one (run on the connection's shard, no `Send` needed).

use super::body::Body;
use crate::ShardCtx;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;

/// A response still being computed, on the connection's shard.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>>>>;

/// A handler's answer.
#[non_exhaustive]
pub enum Reply {
    /// The response, computed at once (the fast path: no task, no
    /// allocation beyond the response).
    Now(Response<Body>),
    /// A future resolving to the response, run as a task of the
    /// connection. Responses still leave in request order.
    Later(ResponseFuture),
    /// A WebSocket handshake accepted ([`ws::accept`](super::ws::accept)):
    /// the 101 answer, then the WebSocket handler takes the connection.
    Upgrade(super::ws::Upgrade),
    /// A response whose body a task writes in pieces
    /// ([`Reply::stream`]).
    Stream(super::StreamReply),
}

impl From<Response<Body>> for Reply {
    fn from(r: Response<Body>) -> Self {
        Reply::Now(r)
    }
}

impl Reply {
    /// Wraps a future.
    ///
    /// ```
    /// use shardloop::http::{Body, Reply, Response};
    /// let reply = Reply::later(async { Response::new(Body::from("later")) });
    /// # let _ = reply;
    /// ```
    pub fn later(f: impl Future<Output = Response<Body>> + 'static) -> Self {
        Reply::Later(Box::pin(f))
    }

    /// A response with `head`'s status and fields, whose body `produce`
    /// writes through a [`BodyWriter`](super::BodyWriter), as a task of
    /// the connection started when the response's turn comes: chunked on
    /// the wire (close-delimited to an HTTP/1.0 client), each `send`
    /// waiting while the client reads slower than the body is made. The
    /// body ends when the writer is dropped.
    ///
    /// ```
    /// use shardloop::http::{Reply, Response};
    /// use std::time::Duration;
    /// // A server-sent event a second, five times.
    /// let reply = Reply::stream(Response::new(()), |mut body| async move {
    ///     for i in 0..5 {
    ///         if body.send(format!("data: tick {i}\n\n")).await.is_err() {
    ///             return; // the client left
    ///         }
    ///         shardloop::task::sleep(Duration::from_secs(1)).await;
    ///     }
    /// });
    /// # let _ = reply;
    /// ```
    pub fn stream<F, Fut>(head: Response<()>, produce: F) -> Self
    where
        F: FnOnce(super::BodyWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Reply::Stream(super::StreamReply::new(head, produce))
    }
}

/// Answers requests, on the shard of the connection (`ctx`: its clock,
/// its services, the bus). Shared by every connection of every shard (it
/// is `Sync`; per-shard state belongs in a shard service,
/// `ShardCtx::service`). A [`Router`](super::Router) is one; so is any
/// `Fn(Request<Body>, &mut ShardCtx) -> Reply`.
///
/// ```
/// use shardloop::http::{Body, Reply, Request, Response};
/// use shardloop::ShardCtx;
/// let which = |_req: Request<Body>, ctx: &mut ShardCtx| {
///     Reply::Now(Response::new(Body::from(format!("shard {}", ctx.index()))))
/// };
/// # fn is_handler(_: impl shardloop::http::Handler) {}
/// is_handler(which);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request (its body read whole, or, where
    /// [`streams_body`](Handler::streams_body) said so, arriving through
    /// the [`BodyReader`](super::BodyReader) in its extensions).
    fn call(&self, req: Request<Body>, ctx: &mut ShardCtx) -> Reply;

    /// Asked when a request with a body arrives, before its body is read:
    /// true to get the request at once and its body in pieces (no
    /// `Limits::max_body`: the handler bounds what it keeps). False by
    /// default; [`Router::route_stream`](super::Router::route_stream)
    /// routes say true.
    fn streams_body(&self, _head: &http::request::Parts) -> bool {
        false
    }
}

impl<F> Handler for F
where
    F: Fn(Request<Body>, &mut ShardCtx) -> Reply + Send + Sync + 'static,
{
    fn call(&self, req: Request<Body>, ctx: &mut ShardCtx) -> Reply {
        self(req, ctx)
    }
}
