//! What answers requests: a [`Handler`] returns a response at once or a
//! future of one (run on the connection's shard, no `Send` needed).

use super::body::Body;
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

/// Answers requests. Shared by every connection of every shard (it is
/// `Sync`; per-shard state belongs in a shard service,
/// `task::with_shard`/`ShardCtx::service`). A [`Router`](super::Router)
/// is one; so is any `Fn(Request<Body>) -> Reply`.
///
/// ```
/// use shardloop::http::{Body, Reply, Request, Response};
/// let hello = |_req: Request<Body>| Reply::Now(Response::new(Body::from("hi")));
/// # fn is_handler(_: impl shardloop::http::Handler) {}
/// is_handler(hello);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request (its body read whole).
    fn call(&self, req: Request<Body>) -> Reply;
}

impl<F> Handler for F
where
    F: Fn(Request<Body>) -> Reply + Send + Sync + 'static,
{
    fn call(&self, req: Request<Body>) -> Reply {
        self(req)
    }
}
