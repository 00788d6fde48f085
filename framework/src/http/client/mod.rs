//! An HTTP/1.1 client for shard tasks: keep-alive connections pooled per
//! origin ([`client::Pool`](crate::client::Pool)), connect and response
//! timeouts, bodies framed by length, chunks or the close, TLS for
//! `https://`. Shard-local: make one per shard (a shard service) and
//! clone it into tasks.
//!
//! ```rust,no_run
//! use shardloop::http::client::{Client, ClientOptions};
//! use shardloop::http::{Body, HttpServer, Method, Reply, Response, Router};
//! use shardloop::ShardCtx;
//!
//! /// One client per shard (a shard service), cloned into each request's task.
//! #[derive(Default)]
//! struct Upstream(Option<Client>);
//!
//! fn main() -> shardloop::Result<()> {
//!     let app = Router::new().route_handler(Method::GET, "/proxy", |_req, ctx: &mut ShardCtx| {
//!         let client = ctx
//!             .service::<Upstream>()
//!             .0
//!             .get_or_insert_with(|| Client::new(ClientOptions::default()))
//!             .clone();
//!         Reply::later(async move {
//!             match client.get("http://127.0.0.1:9000/data").await {
//!                 Ok(r) => Response::new(r.into_body()),
//!                 Err(e) => Response::new(Body::from(format!("upstream: {e}"))),
//!             }
//!         })
//!     });
//!     let http = HttpServer::new(app);
//!     shardloop::Server::builder().listen("127.0.0.1:8080", http.factory()).build()?.start()?.wait();
//!     Ok(())
//! }
//! ```

mod exchange;
mod origin;

use crate::client::{ClientStream, Pool, PoolError, PoolOptions, PoolStats};
use crate::http::{Body, Request, Response};
use crate::tls::TlsClientConfig;
pub use origin::Origin;
use std::rc::Rc;
use std::time::Duration;

/// How a [`Client`] connects, waits and reads.
///
/// ```
/// use shardloop::http::client::ClientOptions;
/// use std::time::Duration;
/// let opts = ClientOptions {
///     response_timeout: Duration::from_secs(2),
///     max_body: 1 << 20,
///     ..ClientOptions::default()
/// };
/// assert_eq!(opts.pool.max_idle, 32);
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    /// The pool of each shard: idle connections kept per origin, open
    /// ones at most per origin, idle timeout, lifetime.
    pub pool: PoolOptions,
    /// Establishing a connection (and its TLS handshake) at most.
    pub connect_timeout: Duration,
    /// From the request's first byte written to the response's last byte
    /// read, at most.
    pub response_timeout: Duration,
    /// A response's head at most.
    pub max_head: usize,
    /// A response's body at most (a larger one fails with
    /// [`ClientError::TooLarge`]).
    pub max_body: u64,
    /// The TLS configuration for `https://` origins (none: they fail).
    pub tls: Option<TlsClientConfig>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pool: PoolOptions::default(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            max_head: 64 << 10,
            max_body: 64 << 20,
            tls: None,
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not an absolute `http://` or `https://` one.
    #[error("bad URL: {0}")]
    Url(String),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {error}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        error: std::io::Error,
    },
    /// No connection could be had (connect error or pool timeout).
    #[error(transparent)]
    Connect(#[from] PoolError),
    /// The exchange took longer than `response_timeout`.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// The connection failed during the exchange.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The response broke HTTP/1.1.
    #[error("malformed response: {0}")]
    Protocol(&'static str),
    /// The response's head or body was over the limit.
    #[error("response over the size limit")]
    TooLarge,
}

struct Shared {
    opts: ClientOptions,
    pool: Pool<Origin, ClientStream>,
}

/// An HTTP/1.1 client of one shard. Cloning shares its pool.
///
/// ```no_run
/// use shardloop::http::client::{Client, ClientOptions};
/// use shardloop::http::{Body, Request};
/// # async fn demo() -> Result<(), shardloop::http::client::ClientError> {
/// let client = Client::new(ClientOptions::default());
/// let resp = client.get("http://127.0.0.1:8080/json").await?;
/// assert!(resp.status().is_success());
/// let req = Request::post("http://127.0.0.1:8080/items")
///     .header("content-type", "application/json")
///     .body(Body::from(r#"{"name":"x"}"#))
///     .unwrap();
/// let created = client.request(req).await?;
/// # let _ = created; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Rc<Shared>,
}

impl Client {
    /// A client with its own (empty) pool.
    pub fn new(opts: ClientOptions) -> Self {
        let pool = Pool::new(opts.pool.clone());
        Client {
            shared: Rc::new(Shared { opts, pool }),
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response<Body>, ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.into()))?;
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = uri;
        self.request(req).await
    }

    /// Sends `req` (its URI absolute) on a pooled connection to its
    /// origin and reads the response whole. A request that fails on a
    /// reused connection before any response byte (the server closed it
    /// while idle) is sent once more on a new connection if its method is
    /// idempotent.
    pub async fn request(&self, req: Request<Body>) -> Result<Response<Body>, ClientError> {
        let origin = Origin::of(req.uri())?;
        let head = exchange::encode_request(&req, &origin);
        let body = req.body().as_bytes();
        let head_only = req.method() == http::Method::HEAD;
        let retry_ok = req.method().is_idempotent();
        let s = &self.shared;
        loop {
            let mut conn = s
                .pool
                .checkout(origin.clone(), || origin.connect(&s.opts))
                .await?;
            let reused = conn.is_reused();
            let outcome = crate::task::timeout(
                s.opts.response_timeout,
                exchange::exchange(&mut conn, &head, body, head_only, &s.opts),
            )
            .await;
            match outcome {
                Err(_) => return Err(ClientError::Timeout(s.opts.response_timeout)),
                Ok(Ok((resp, keep))) => {
                    if keep {
                        conn.release();
                    }
                    return Ok(resp);
                }
                Ok(Err(exchange::Failed { error, answered })) => {
                    // A connection the server closed while it was idle
                    // fails before answering: once more, on a new one.
                    if reused && !answered && retry_ok && matches!(error, ClientError::Io(_)) {
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// The pool's figures on this shard.
    pub fn stats(&self) -> PoolStats {
        self.shared.pool.stats()
    }
}
