//! HTTP/1.1 on shardloop: a server ([`HttpServer`], with a [`Router`]),
//! built on the framework's `Protocol` and the ecosystem's types (`http`'s
//! `Request`, `Response`, `HeaderMap`, `Uri`; `httparse` for heads).
//!
//! - Keep-alive and pipelining (responses in request order, at most
//!   `Limits::max_pipelined` owed), HTTP/1.0, HEAD, `Expect: 100-continue`,
//!   a `Date` formatted once a second per shard.
//! - Handlers answer at once ([`Reply::Now`]) or with a future run on the
//!   connection's shard ([`Reply::Later`]).
//! - Message framing exactly per RFC 9112 §6 (the request-smuggling
//!   cases are refused with 400), limits answered as nginx answers them
//!   (414, 431, 413), header, body and keep-alive timeouts, and a shedding
//!   hook answering 503 with `Retry-After`.
//!
//! ```no_run
//! use shardloop::http::{Body, HttpServer, Request, Response, Router};
//! use shardloop::Server;
//!
//! let app = Router::new()
//!     .get("/", |_: &Request<Body>| Response::new(Body::from("Hello, World!")))
//!     .get_async("/later", |_req: Request<Body>| async {
//!         shardloop::task::sleep(std::time::Duration::from_millis(10)).await;
//!         Response::new(Body::from("done"))
//!     });
//! let handle = Server::builder()
//!     .listen("127.0.0.1:8080", HttpServer::new(app).factory())
//!     .build()?
//!     .start()?;
//! handle.wait();
//! # Ok::<(), shardloop::Error>(())
//! ```

mod body;
mod builder;
pub mod chunked;
pub mod client;
mod h2;
mod handler;
pub mod head;
#[cfg(test)]
mod head_tests;
mod limits;
mod request_body;
mod response;
pub mod response_head;
mod router;
mod rules;
mod server;
mod spare;
mod stream;
#[cfg(feature = "tower")]
mod tower;
mod upgrade;
pub mod ws;

pub use body::Body;
pub use builder::{HttpFactory, HttpServer, PeerAddr, Shed};
pub use handler::{Handler, Reply, ResponseFuture};
pub use http::{
    header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
pub use limits::Limits;
pub use request_body::{BodyError, BodyReader};
pub use router::{Params, Router};
pub use server::HttpConnection;
pub use stream::{BodyWriter, StreamClosed, StreamReply};
#[cfg(feature = "tower")]
pub use tower::TowerHandler;
