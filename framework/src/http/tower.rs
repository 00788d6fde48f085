//! A `tower::Service` as a handler (feature `tower`), so tower's
//! middleware (timeouts, limits, tracing, auth layers) wraps shardloop
//! handlers and services written for hyper run here.

use super::handler::{Handler, Reply};
use super::{Body, Request, Response};
use crate::ShardCtx;
use std::future::poll_fn;
use tower_service::Service;

/// Serves requests with a `tower::Service<Request<Body>>`: each request
/// gets a clone of the service (as hyper does), awaited for readiness and
/// called on the connection's shard. An error becomes a 500 (its text is
/// not sent: it may hold internals). Middleware that needs tokio's timer
/// (tower's `timeout`, `rate_limit`) needs a tokio runtime, which shards
/// are not: use `Limits`' timeouts, `HttpServer::shed` and
/// `shardloop::task::timeout` instead; the rest (`concurrency_limit`,
/// `map_request`/`map_response`, auth and tracing layers) runs as is.
///
/// ```
/// use shardloop::http::{Body, HttpServer, Request, Response, TowerHandler};
/// use std::convert::Infallible;
///
/// #[derive(Clone)]
/// struct Hello;
/// impl tower_service::Service<Request<Body>> for Hello {
///     type Response = Response<Body>;
///     type Error = Infallible;
///     type Future = std::future::Ready<Result<Response<Body>, Infallible>>;
///     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
///         std::task::Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, _req: Request<Body>) -> Self::Future {
///         std::future::ready(Ok(Response::new(Body::from("hello from tower"))))
///     }
/// }
/// let server = HttpServer::new(TowerHandler::new(Hello));
/// # let _ = server;
/// ```
#[derive(Clone)]
pub struct TowerHandler<S> {
    service: S,
}

impl<S> TowerHandler<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        TowerHandler { service }
    }
}

impl<S> Handler for TowerHandler<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + Sync + 'static,
    S::Error: std::fmt::Display,
    S::Future: 'static,
{
    fn call(&self, req: Request<Body>, _ctx: &mut ShardCtx) -> Reply {
        let mut service = self.service.clone();
        Reply::later(async move {
            let answer = match poll_fn(|cx| service.poll_ready(cx)).await {
                Ok(()) => service.call(req).await,
                Err(e) => Err(e),
            };
            answer.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "tower service failed");
                super::response::error(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "the service failed",
                )
            })
        })
    }
}
