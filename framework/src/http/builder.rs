//! The HTTP/1.1 server as an application configures it: the handler, the
//! limits, what the server says of itself, shedding; and the factory that
//! gives each connection its protocol.

use super::body::Body;
use super::handler::Handler;
use super::head;
use super::limits::Limits;
use super::server::HttpConnection;
use crate::{Addr, ShardCtx};
use http::{HeaderValue, Request};
use std::sync::Arc;
use std::time::Duration;

/// Decides, before a request runs, whether to refuse it for overload:
/// `Some(retry_after)` answers 503 with `Retry-After`.
pub type Shed = dyn Fn(&Request<Body>, &mut ShardCtx) -> Option<Duration> + Send + Sync;

pub(super) struct Shared {
    pub(super) handler: Box<dyn Handler>,
    pub(super) limits: Limits,
    pub(super) server: Option<HeaderValue>,
    pub(super) shed: Option<Box<Shed>>,
    pub(super) peer_addr: bool,
}

/// The client's address, in each request's extensions when the server
/// was built with [`HttpServer::peer_addr`]: the connection's peer, or the
/// client a trusted PROXY header named.
///
/// ```
/// use shardloop::http::{Body, HttpServer, PeerAddr, Request, Response, Router};
/// let app = Router::new().get("/ip", |req: &Request<Body>| {
///     let who = req.extensions().get::<PeerAddr>().map(|p| p.0.to_string());
///     Response::new(Body::from(who.unwrap_or_default()))
/// });
/// let server = HttpServer::new(app).peer_addr(true);
/// # let _ = server;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr(pub Addr);

/// An HTTP/1.1 server: a handler, its limits, and what it says of itself.
/// [`factory`](HttpServer::factory) gives what `ServerBuilder::listen`
/// takes, so it runs on every shard, over TCP, TLS, Unix sockets or behind
/// a PROXY header alike.
///
/// ```no_run
/// use shardloop::http::{Body, HttpServer, Request, Response, Router};
/// use shardloop::Server;
/// let app = Router::new().get("/", |_: &Request<Body>| Response::new(Body::from("Hello")));
/// let handle = Server::builder()
///     .listen("127.0.0.1:8080", HttpServer::new(app).server_name("shardloop").factory())
///     .build()?
///     .start()?;
/// handle.wait();
/// # Ok::<(), shardloop::Error>(())
/// ```
pub struct HttpServer {
    shared: Shared,
}

impl HttpServer {
    /// A server answering with `handler`, with the default [`Limits`].
    pub fn new(handler: impl Handler) -> Self {
        HttpServer {
            shared: Shared {
                handler: Box::new(handler),
                limits: Limits::default(),
                server: None,
                shed: None,
                peer_addr: false,
            },
        }
    }

    /// Replaces the limits. Out-of-range values are brought into range
    /// (`max_headers` to 1..=256, `max_pipelined` to at least 1).
    pub fn limits(mut self, mut limits: Limits) -> Self {
        limits.max_headers = limits.max_headers.clamp(1, head::MAX_HEADERS);
        limits.max_pipelined = limits.max_pipelined.max(1);
        limits.max_head = limits.max_head.max(limits.max_request_line);
        self.shared.limits = limits;
        self
    }

    /// Sends `Server: name` with every response (none by default).
    pub fn server_name(mut self, name: &'static str) -> Self {
        self.shared.server = Some(HeaderValue::from_static(name));
        self
    }

    /// Puts the client's address ([`PeerAddr`]) in each request's
    /// extensions (off by default: it costs an allocation per request).
    pub fn peer_addr(mut self, on: bool) -> Self {
        self.shared.peer_addr = on;
        self
    }

    /// Sheds load: `f` runs before each request's handler, on its shard,
    /// and a `Some(retry_after)` answers 503 with `Retry-After` (whole
    /// seconds, rounded up) instead. Counted by the application (the
    /// closure sees the shard's context).
    ///
    /// ```
    /// use shardloop::http::{Body, HttpServer, Response, Router};
    /// use shardloop::limit::{RateLimit, RateLimiter};
    /// use std::time::Duration;
    /// let app = Router::new().get("/", |_| Response::new(Body::from("ok")));
    /// // At most 10,000 requests a second per shard; past that, 503.
    /// let server = HttpServer::new(app).shed(|_req, ctx| {
    ///     let now = ctx.now();
    ///     let limiter = ctx.service::<Option<RateLimiter>>()
    ///         .get_or_insert_with(|| RateLimiter::new(RateLimit::per_second(10_000), now));
    ///     (!limiter.try_acquire(now)).then(|| limiter.wait_time(now))
    /// });
    /// # let _ = server;
    /// ```
    pub fn shed(
        mut self,
        f: impl Fn(&Request<Body>, &mut ShardCtx) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.shared.shed = Some(Box::new(f));
        self
    }

    /// The per-shard factory maker for `ServerBuilder::listen`.
    pub fn factory(self) -> impl Fn(usize) -> HttpFactory + Send + Sync + Clone + 'static {
        let shared = Arc::new(self.shared);
        move |_shard| HttpFactory {
            shared: shared.clone(),
        }
    }
}

/// Makes the protocol of each HTTP connection (from [`HttpServer::factory`]).
pub struct HttpFactory {
    shared: Arc<Shared>,
}

impl crate::Factory for HttpFactory {
    type Protocol = HttpConnection;
    fn build_protocol(&mut self, _peer: Addr) -> HttpConnection {
        HttpConnection::new(self.shared.clone())
    }
}
