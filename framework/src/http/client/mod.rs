//! An HTTP client for shard tasks: HTTP/1.1 keep-alive connections pooled
//! per origin ([`client::Pool`](crate::client::Pool)), or one HTTP/2
//! connection per origin carrying its requests at once (`h2` chosen by
//! ALPN over TLS, or prior knowledge for `http://`); connect and response
//! timeouts, bodies framed by length, chunks or the close. Shard-local:
//! make one per shard (a shard service) and clone it into tasks.
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

mod body;
mod exchange;
mod h2;
mod origin;
mod upload;

use crate::client::{ClientStream, Pool, PoolError, PoolOptions, PoolStats, Pooled};
use crate::http::{Body, Request, Response};
use crate::tls::TlsClientConfig;
pub use body::ResponseBody;
pub use h2::{Http2Connection, Http2Io};
pub use origin::Origin;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

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
    /// Without ALPN protocols of its own, the client offers `h2` (if
    /// `http2`) and `http/1.1`.
    pub tls: Option<TlsClientConfig>,
    /// Offer HTTP/2 to `https://` origins (ALPN): one connection then
    /// carries every request to the origin at once.
    pub http2: bool,
    /// Speak HTTP/2 to `http://` origins from the first byte (h2c with
    /// prior knowledge, RFC 9113 §3.3), for servers known to take it.
    pub http2_prior_knowledge: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pool: PoolOptions {
                name: "http_client".to_string(),
                ..PoolOptions::default()
            },
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            max_head: 64 << 10,
            max_body: 64 << 20,
            tls: None,
            http2: true,
            http2_prior_knowledge: false,
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
    /// The HTTP/2 connection or stream failed (a reset, a GOAWAY, a
    /// protocol error).
    #[error("HTTP/2: {0}")]
    Http2(String),
}

struct Shared {
    opts: ClientOptions,
    pool: Pool<Origin, ClientStream>,
    /// The HTTP/2 connection of each origin that has one.
    h2: RefCell<HashMap<Origin, H2Conn>>,
}

/// What a request goes out on.
enum Connection {
    H2(h2::Sender),
    H1(Pooled<Origin, ClientStream>),
}

/// An HTTP/2 connection shared by the requests to one origin.
struct H2Conn {
    send: h2::Sender,
    born: Instant,
    used: Instant,
}

/// An HTTP/1.1 and HTTP/2 client of one shard. Cloning shares its pool.
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
    pub fn new(mut opts: ClientOptions) -> Self {
        if let Some(tls) = opts.tls.take() {
            let offer: &[&[u8]] = if opts.http2 {
                &[b"h2", b"http/1.1"]
            } else {
                &[b"http/1.1"]
            };
            opts.tls = Some(tls.with_default_alpn(offer));
        }
        let pool = Pool::new(opts.pool.clone());
        Client {
            shared: Rc::new(Shared {
                opts,
                pool,
                h2: RefCell::new(HashMap::new()),
            }),
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response<Body>, ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.into()))?;
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = uri;
        self.request(req).await
    }

    /// Sends `req` (its URI absolute) and reads the response whole (at
    /// most `max_body` bytes): [`send`](Client::send), then
    /// [`ResponseBody::collect`].
    pub async fn request(&self, req: Request<Body>) -> Result<Response<Body>, ClientError> {
        let within = self.shared.opts.response_timeout;
        let exchange = async {
            let (parts, body) = self.send(req).await?.into_parts();
            let body = body.collect().await?;
            Ok(Response::from_parts(parts, Body::from(body)))
        };
        crate::task::timeout(within, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout(within)))
    }

    /// Sends `req` (its URI absolute) and returns once the response's head
    /// is in; its body is read as the caller asks ([`ResponseBody`]). On
    /// the origin's HTTP/2 connection if it has one, else on a pooled
    /// connection (which becomes the origin's HTTP/2 connection if its TLS
    /// handshake chose `h2`; an HTTP/1.1 one goes back to the pool once
    /// the body was read to its end). A request that fails on a reused
    /// HTTP/1.1 connection before any response byte (the server closed it
    /// while idle) is sent once more on a new connection if its method is
    /// idempotent.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<ResponseBody>, ClientError> {
        let origin = Origin::of(req.uri())?;
        let s = &self.shared;
        let within = s.opts.response_timeout;
        let head = exchange::encode_request(&req, &origin, Some(req.body().len() as u64));
        let body = req.body().as_bytes();
        let head_only = req.method() == http::Method::HEAD;
        let retry_ok = req.method().is_idempotent();
        loop {
            let mut conn = match self.connection(&origin).await? {
                Connection::H2(send) => {
                    let exchange = h2::exchange(send, &req, &s.opts);
                    return crate::task::timeout(within, exchange)
                        .await
                        .unwrap_or(Err(ClientError::Timeout(within)));
                }
                Connection::H1(conn) => conn,
            };
            let reused = conn.is_reused();
            let outcome = crate::task::timeout(
                within,
                exchange::exchange(&mut conn, &head, body, head_only, &s.opts),
            )
            .await;
            match outcome {
                Err(_) => return Err(ClientError::Timeout(within)),
                Ok(Ok(head)) => return Ok(self.with_body(conn, head)),
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

    /// A response whose head was read on `conn`, its body to follow there.
    fn with_body(
        &self,
        conn: Pooled<Origin, ClientStream>,
        mut head: exchange::Head,
    ) -> Response<ResponseBody> {
        let response = std::mem::replace(&mut head.response, Response::new(()));
        let (parts, ()) = response.into_parts();
        let body = ResponseBody::h1(conn, head, &self.shared.opts);
        Response::from_parts(parts, body)
    }

    /// A connection for a request to `origin`: its HTTP/2 connection if it
    /// has a live one (ready for a new stream), else one from the pool (a
    /// new one whose TLS handshake chose `h2`, or any with prior
    /// knowledge, becomes the origin's HTTP/2 connection).
    async fn connection(&self, origin: &Origin) -> Result<Connection, ClientError> {
        let s = &self.shared;
        let within = s.opts.response_timeout;
        if let Some(send) = self.h2_of(origin) {
            match crate::task::timeout(within, send.ready()).await {
                Err(_) => return Err(ClientError::Timeout(within)),
                Ok(Ok(send)) => return Ok(Connection::H2(send)),
                // Gone (a GOAWAY, a close): a new connection below.
                Ok(Err(_)) => {
                    s.h2.borrow_mut().remove(origin);
                }
            }
        }
        let conn = s
            .pool
            .checkout(origin.clone(), || origin.connect(&s.opts))
            .await
            .map_err(|e| match e {
                PoolError::Connect(error) if crate::reactor::is_unresolved(&error) => {
                    ClientError::Resolve {
                        host: origin.host.clone(),
                        error,
                    }
                }
                other => ClientError::Connect(other),
            })?;
        if !self.speaks_h2(&conn, origin) {
            return Ok(Connection::H1(conn));
        }
        let handshake = h2::handshake(conn.detach());
        let send = crate::task::timeout(s.opts.connect_timeout, handshake)
            .await
            .map_err(|_| ClientError::Timeout(s.opts.connect_timeout))??;
        let now = Instant::now();
        let h2 = H2Conn {
            send: send.clone(),
            born: now,
            used: now,
        };
        s.h2.borrow_mut().insert(origin.clone(), h2);
        let ready = crate::task::timeout(within, send.ready())
            .await
            .map_err(|_| ClientError::Timeout(within))?
            .map_err(h2::h2_error)?;
        Ok(Connection::H2(ready))
    }

    /// The origin's HTTP/2 connection, unless it outlived the pool's
    /// idle timeout or lifetime (then it is let go: it closes once its
    /// streams are done).
    fn h2_of(&self, origin: &Origin) -> Option<h2::Sender> {
        let mut conns = self.shared.h2.borrow_mut();
        let c = conns.get_mut(origin)?;
        let now = Instant::now();
        let opts = &self.shared.opts.pool;
        let idle_too_long = opts.idle_timeout.is_some_and(|t| now - c.used > t);
        let too_old = opts.max_lifetime.is_some_and(|t| now - c.born > t);
        if idle_too_long || too_old {
            conns.remove(origin);
            return None;
        }
        c.used = now;
        Some(c.send.clone())
    }

    /// True if a new connection speaks HTTP/2: `h2` chosen by its TLS
    /// handshake, or prior knowledge for `http://`. (A connection from the
    /// pool is an HTTP/1.1 one: HTTP/2 ones leave the pool at once.)
    fn speaks_h2(&self, conn: &ClientStream, origin: &Origin) -> bool {
        if !origin.tls {
            return self.shared.opts.http2_prior_knowledge;
        }
        let alpn = conn.tls_info().and_then(|i| i.alpn);
        alpn.as_deref() == Some(&b"h2"[..])
    }

    /// The pool's figures on this shard.
    pub fn stats(&self) -> PoolStats {
        self.shared.pool.stats()
    }
}
