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
    /// Answers one request (its body read whole).
    fn call(&self, req: Request<Body>, ctx: &mut ShardCtx) -> Reply;
}

impl<F> Handler for F
where
    F: Fn(Request<Body>, &mut ShardCtx) -> Reply + Send + Sync + 'static,
{
    fn call(&self, req: Request<Body>, ctx: &mut ShardCtx) -> Reply {
        self(req, ctx)
    }
}
