//! A small router: method and path, with `{name}` segments captured as
//! [`Params`], and a fallback. A path that matches with another method is
//! answered 405 with `Allow`; HEAD is served by GET routes (the server
//! leaves the body out).

use super::body::Body;
use super::handler::{Handler, Reply};
use super::request_body::BodyReader;
use super::response::error;
use crate::ShardCtx;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use std::future::Future;

type Route = Box<dyn Handler>;

enum Segment {
    Exact(String),
    Param(String),
}

struct Entry {
    method: Method,
    segments: Vec<Segment>,
    run: Route,
    /// The route takes its body in pieces (`route_stream`).
    streams: bool,
}

/// The `{name}` segments a route captured, in the request's extensions.
///
/// ```
/// use shardloop::http::{Body, Params, Request, Response, Router};
/// let router = Router::new().get("/users/{id}", |req: &Request<Body>| {
///     let id = req.extensions().get::<Params>().and_then(|p| p.get("id")).unwrap_or("?");
///     Response::new(Body::from(format!("user {id}")))
/// });
/// # let _ = router;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value captured for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Routes requests by method and path.
///
/// ```
/// use shardloop::http::{Body, HttpServer, Request, Response, Router};
/// let app = Router::new()
///     .get("/", |_: &Request<Body>| Response::new(Body::from("Hello, World!")))
///     .post_async("/echo", |req: Request<Body>| async move {
///         Response::new(req.into_body())
///     });
/// let server = shardloop::Server::builder().listen("127.0.0.1:0", HttpServer::new(app).factory());
/// # let _ = server;
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Entry>,
    fallback: Option<Route>,
}

impl Router {
    /// An empty router (everything is 404 until routes are added).
    pub fn new() -> Self {
        Router::default()
    }

    /// Answers `method` on `path` at once.
    pub fn route(
        self,
        method: Method,
        path: &str,
        f: impl Fn(&Request<Body>) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        self.add(
            method,
            path,
            move |req: Request<Body>, _: &mut ShardCtx| Reply::Now(f(&req)),
            false,
        )
    }

    /// Answers `method` on `path` with a future (a task of the connection).
    pub fn route_async<Fut>(
        self,
        method: Method,
        path: &str,
        f: impl Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: Future<Output = Response<Body>> + 'static,
    {
        self.add(
            method,
            path,
            move |req: Request<Body>, _: &mut ShardCtx| Reply::later(f(req)),
            false,
        )
    }

    /// `route(Method::GET, …)`.
    pub fn get(
        self,
        path: &str,
        f: impl Fn(&Request<Body>) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        self.route(Method::GET, path, f)
    }

    /// `route(Method::POST, …)`.
    pub fn post(
        self,
        path: &str,
        f: impl Fn(&Request<Body>) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        self.route(Method::POST, path, f)
    }

    /// `route_async(Method::GET, …)`.
    pub fn get_async<Fut: Future<Output = Response<Body>> + 'static>(
        self,
        path: &str,
        f: impl Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    ) -> Self {
        self.route_async(Method::GET, path, f)
    }

    /// `route_async(Method::POST, …)`.
    pub fn post_async<Fut: Future<Output = Response<Body>> + 'static>(
        self,
        path: &str,
        f: impl Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    ) -> Self {
        self.route_async(Method::POST, path, f)
    }

    /// Answers `method` on `path` with a full [`Handler`] (one that needs
    /// the shard's context, say).
    pub fn route_handler(self, method: Method, path: &str, h: impl Handler) -> Self {
        self.add(method, path, h, false)
    }

    /// Serves a WebSocket on `path` (GET): each valid handshake gets the
    /// handler `make` builds from the request (its path parameters are in
    /// its extensions, as for any route); an invalid one is answered 400,
    /// 403 or 426 ([`ws::accept`](super::ws::accept)).
    ///
    /// ```
    /// use shardloop::http::ws::{Message, WebSocket, WsConn, WsOptions};
    /// use shardloop::http::Router;
    /// struct Echo;
    /// impl WebSocket for Echo {
    ///     fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
    ///         ws.send(msg);
    ///     }
    /// }
    /// let app = Router::new().websocket("/echo", WsOptions::default(), |_req| Echo);
    /// # let _ = app;
    /// ```
    pub fn websocket<W: super::ws::WebSocket>(
        self,
        path: &str,
        opts: super::ws::WsOptions,
        make: impl Fn(&Request<Body>) -> W + Send + Sync + 'static,
    ) -> Self {
        let opts = std::sync::Arc::new(opts);
        self.route_handler(
            Method::GET,
            path,
            move |req: Request<Body>, _: &mut ShardCtx| super::ws::accept(&req, &opts, make(&req)),
        )
    }

    /// Answers `method` on `path` with a future that gets the request at
    /// once and its body in pieces as they arrive ([`BodyReader`]): for
    /// uploads larger than the server should hold. `Limits::max_body`
    /// does not apply; the connection stops reading while the handler is
    /// behind. (On HTTP/2 the body is read, up to `max_body`, first.)
    ///
    /// ```
    /// use shardloop::http::{Body, BodyReader, Method, Request, Response, Router};
    /// // Counts the bytes of an upload of any size, holding one piece at a time.
    /// let app = Router::new().route_stream(Method::PUT, "/upload", |_req: Request<Body>, body: BodyReader| async move {
    ///     let mut total = 0;
    ///     while let Some(Ok(piece)) = body.next().await {
    ///         total += piece.len();
    ///     }
    ///     Response::new(Body::from(format!("{total} bytes")))
    /// });
    /// # let _ = app;
    /// ```
    pub fn route_stream<Fut>(
        self,
        method: Method,
        path: &str,
        f: impl Fn(Request<Body>, BodyReader) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: Future<Output = Response<Body>> + 'static,
    {
        self.add(
            method,
            path,
            move |mut req: Request<Body>, _: &mut ShardCtx| {
                // No body (or one read whole): an ended reader over it.
                let body = req
                    .extensions_mut()
                    .remove::<BodyReader>()
                    .unwrap_or_else(|| {
                        BodyReader::whole(std::mem::take(req.body_mut()).into_bytes())
                    });
                Reply::later(f(req, body))
            },
            true,
        )
    }

    /// Adds a route (`streams`: it takes its body in pieces).
    fn add(mut self, method: Method, path: &str, run: impl Handler, streams: bool) -> Self {
        self.routes.push(Entry {
            method,
            segments: segments(path),
            run: Box::new(run),
            streams,
        });
        self
    }

    /// The route that serves `method` on `path` and its captures (HEAD is
    /// served by GET routes), or the methods the path has routes for.
    fn find(&self, method: &Method, path: &str) -> Result<(&Entry, Params), Vec<&Method>> {
        let mut allowed = Vec::new();
        for e in &self.routes {
            let Some(params) = matches(&e.segments, path) else {
                continue;
            };
            if *method == e.method || (*method == Method::HEAD && e.method == Method::GET) {
                return Ok((e, params));
            }
            allowed.push(&e.method);
        }
        Err(allowed)
    }

    /// Answers what no route matched (default: 404).
    pub fn fallback(mut self, h: impl Handler) -> Self {
        self.fallback = Some(Box::new(h));
        self
    }
}

fn segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Exact(s.to_string()),
            },
        )
        .collect()
}

/// The captures if `pattern` matches `path`.
fn matches(pattern: &[Segment], path: &str) -> Option<Params> {
    let mut parts = Segments(path);
    let mut params = Vec::new();
    for seg in pattern {
        let part = parts.next()?;
        match seg {
            Segment::Exact(s) if s == part => {}
            Segment::Exact(_) => return None,
            Segment::Param(name) => params.push((name.clone(), part.to_string())),
        }
    }
    parts.next().is_none().then_some(Params(params))
}

/// The non-empty `/`-separated segments of a path (what
/// `path.split('/').filter(|s| !s.is_empty())` gives), found with a byte
/// loop: paths are short, and this runs for each route tried.
struct Segments<'a>(&'a str);

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.0.as_bytes();
        let start = bytes.iter().position(|&b| b != b'/')?;
        let len = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .unwrap_or(bytes.len() - start);
        // '/' is ASCII: these are character boundaries.
        let seg = &self.0[start..start + len];
        self.0 = &self.0[start + len..];
        Some(seg)
    }
}

impl Handler for Router {
    /// Asked of the route `call` will pick, so the two always agree.
    fn streams_body(&self, head: &http::request::Parts) -> bool {
        self.find(&head.method, head.uri.path())
            .is_ok_and(|(e, _)| e.streams)
    }

    fn call(&self, mut req: Request<Body>, ctx: &mut ShardCtx) -> Reply {
        let allowed = match self.find(req.method(), req.uri().path()) {
            Ok((e, params)) => {
                if !params.0.is_empty() {
                    req.extensions_mut().insert(params);
                }
                return e.run.call(req, ctx);
            }
            Err(allowed) => allowed,
        };
        if !allowed.is_empty() {
            let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                r.headers_mut().insert(http::header::ALLOW, v);
            }
            return Reply::Now(r);
        }
        match &self.fallback {
            Some(f) => f.call(req, ctx),
            None => Reply::Now(error(StatusCode::NOT_FOUND, "no such resource")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Segments;
    use proptest::prelude::*;

    proptest! {
        /// The byte loop finds exactly the segments `split` and `filter` do.
        #[test]
        fn segments_are_split_s(path in "[/a-zé{}%]{0,24}") {
            let ours: Vec<&str> = Segments(&path).collect();
            let split: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            prop_assert_eq!(ours, split);
        }
    }
}
