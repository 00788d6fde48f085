//! WebSocket (RFC 6455) on the HTTP/1.1 server's upgrade, in Twisted's
//! style: a [`WebSocket`] handler per connection gets `on_open`,
//! `on_message`, `on_close`, and sends with [`WsConn`].
//!
//! - The handshake is checked (version 13, the key, `Upgrade` and
//!   `Connection`, an allowed `Origin` when the options list some) and a
//!   subprotocol is chosen from [`WsOptions::protocols`] in the client's
//!   order of preference. Refusals are answered (400, 403, 426).
//! - Fragmented messages are assembled, with control frames between the
//!   fragments answered at once (pings get their pong). Text is checked
//!   for UTF-8 as it arrives, across fragments (1007 at the first bad
//!   byte). Client frames must be masked (1002), and frames and messages
//!   are capped (1009).
//! - The close handshake: a peer's close is answered with its code, and
//!   the server then closes the TCP connection; a close of ours waits
//!   [`WsOptions::close_timeout`] for the peer's answer. A connection that
//!   ends without one is reported with 1006.
//! - An idle connection is pinged every [`WsOptions::ping_interval`]; one
//!   that answers nothing for another interval is closed.
//! - Other connections, on any shard, send to a WebSocket by its
//!   `ConnId` over the bus (`ShardCtx::send(id, Message)`): the message
//!   arrives in [`WebSocket::on_push`], which sends it on by default.
//! - No extension is negotiated (permessage-deflate is declined, as the
//!   RFC allows): compression on a hostile link is a memory and CPU
//!   lever for the peer, and most traffic on many-core servers is small.
//!
//! ```no_run
//! use shardloop::http::ws::{Message, WebSocket, WsConn, WsOptions};
//! use shardloop::http::{Body, HttpServer, Request, Response, Router};
//! use shardloop::Server;
//!
//! struct Echo;
//! impl WebSocket for Echo {
//!     fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
//!         ws.send(msg);
//!     }
//! }
//!
//! let app = Router::new()
//!     .get("/", |_: &Request<Body>| Response::new(Body::from("see /echo")))
//!     .websocket("/echo", WsOptions::default(), |_req| Echo);
//! Server::builder()
//!     .listen("127.0.0.1:8080", HttpServer::new(app).factory())
//!     .build()?
//!     .start()?
//!     .wait();
//! # Ok::<(), shardloop::Error>(())
//! ```

pub mod frame;
mod handshake;
mod message;
mod session;

use super::{Body, Reply, Request};
pub use handshake::accept_key;
pub use message::{Message, Text};
pub(crate) use session::Session;
pub use session::WsConn;
use std::sync::Arc;
use std::time::Duration;

/// Close codes of RFC 6455 §7.4.1 that applications use most.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (a server stopping, a page left).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED: u16 = 1003;
    /// Reported only: the close frame had no status code.
    pub const NO_STATUS: u16 = 1005;
    /// Reported only: the connection ended without a close frame.
    pub const ABNORMAL: u16 = 1006;
    /// Text that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A message that violates the endpoint's policy.
    pub const POLICY: u16 = 1008;
    /// A frame or message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server met an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// The per-connection handler of a WebSocket, on the connection's shard
/// (it need not be `Send`). Every method but `on_message` has a default.
pub trait WebSocket: 'static {
    /// The handshake was answered: messages may be sent.
    fn on_open(&mut self, _ws: &mut WsConn<'_, '_>) {}

    /// A whole message arrived (fragments assembled, text checked).
    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message);

    /// A pong arrived (an answer to [`WsConn::ping`] or the idle ping).
    fn on_pong(&mut self, _ws: &mut WsConn<'_, '_>, _payload: &[u8]) {}

    /// A message sent to this connection over the bus
    /// (`ShardCtx::send(id, msg)`). The default sends it to the peer.
    fn on_push(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
        ws.send(msg);
    }

    /// The connection's output drained below the low-water mark after
    /// [`WsConn::is_writable`] said false: a producer may go on.
    fn resume_producing(&mut self, _ws: &mut WsConn<'_, '_>) {}

    /// The WebSocket is closed, called exactly once: `code` is the peer's
    /// (its close frame, [`close_code::NO_STATUS`] if it had none), ours if
    /// we closed first or failed the connection, or
    /// [`close_code::ABNORMAL`] if the connection ended without a close
    /// handshake. Nothing more can be sent.
    fn on_close(&mut self, _ws: &mut WsConn<'_, '_>, _code: u16, _reason: &str) {}
}

/// Limits and behaviour of WebSocket connections.
///
/// ```
/// use shardloop::http::ws::WsOptions;
/// use std::time::Duration;
/// let opts = WsOptions {
///     max_message: 64 << 10,
///     protocols: vec!["chat".into()],
///     origins: Some(vec!["https://chat.example.com".into()]),
///     ping_interval: Some(Duration::from_secs(20)),
///     ..WsOptions::default()
/// };
/// assert_eq!(opts.max_frame, 4 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOptions {
    /// A frame's payload at most: past it, the connection is failed with
    /// 1009 (a peer makes the server hold at most this much of one frame).
    pub max_frame: u64,
    /// A message (all its fragments) at most: past it, 1009.
    pub max_message: usize,
    /// Subprotocols the server speaks (`Sec-WebSocket-Protocol`); the
    /// first the client offers is chosen ([`WsConn::protocol`]).
    pub protocols: Vec<String>,
    /// Refuse (400) a client that offers none of `protocols`.
    pub require_protocol: bool,
    /// `Origin` values allowed (exactly, e.g. `https://example.com`);
    /// others are refused with 403. `None` allows any: set it for a
    /// WebSocket that browsers reach with cookies (cross-site WebSocket
    /// hijacking).
    pub origins: Option<Vec<String>>,
    /// After this long without input, the server pings; after another
    /// interval still without input, it closes the connection. `None`:
    /// never.
    pub ping_interval: Option<Duration>,
    /// How long a close of ours waits for the peer's close frame before
    /// the TCP connection is closed anyway.
    pub close_timeout: Duration,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            max_frame: 4 << 20,
            max_message: 4 << 20,
            protocols: Vec::new(),
            require_protocol: false,
            origins: None,
            ping_interval: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// A WebSocket upgrade a handler answers with ([`Reply::Upgrade`]): the
/// 101 answer and the handler that takes the connection over.
pub struct Upgrade {
    pub(crate) head: Vec<u8>,
    pub(crate) session: Box<Session>,
}

/// Answers a WebSocket handshake: the upgrade to `handler` if the request
/// is a valid handshake for `opts`, else the error response (400, 403 or
/// 426). For handlers that decide per request (authentication, the path);
/// `Router::websocket` is the short form.
///
/// ```
/// use shardloop::http::ws::{self, Message, WebSocket, WsConn, WsOptions};
/// use shardloop::http::{Body, Reply, Request, Response, StatusCode};
/// use std::sync::Arc;
///
/// struct Room(String);
/// impl WebSocket for Room {
///     fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
///         ws.send(msg);
///     }
/// }
/// let opts = Arc::new(WsOptions::default());
/// let handler = move |req: Request<Body>, _ctx: &mut shardloop::ShardCtx| {
///     if !req.headers().contains_key("authorization") {
///         let mut r = Response::new(Body::from("who are you?"));
///         *r.status_mut() = StatusCode::UNAUTHORIZED;
///         return Reply::Now(r);
///     }
///     ws::accept(&req, &opts, Room(req.uri().path().to_string()))
/// };
/// # fn is_handler(_: impl shardloop::http::Handler) {}
/// # is_handler(handler);
/// ```
pub fn accept(req: &Request<Body>, opts: &Arc<WsOptions>, handler: impl WebSocket) -> Reply {
    match handshake::check(req, opts) {
        Ok(a) => Reply::Upgrade(Upgrade {
            head: a.head,
            session: Box::new(Session::new(Box::new(handler), opts.clone(), a.protocol)),
        }),
        Err(r) => Reply::Now(r),
    }
}
