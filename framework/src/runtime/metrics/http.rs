//! The HTTP side of the metrics listener: `GET /metrics` on the library's
//! HTTP/1.1 server (`shardloop::http`: keep-alive, the same limits and
//! timeouts as any HTTP listener), kept off the data path: a shard renders
//! the exposition at most once per loop iteration (the counters are
//! published once per iteration, so a second rendering could not say
//! more) and every scrape it answers in that iteration shares it;
//! pipelined scrapes are answered only as fast as the scraper reads.

use super::{render, MetricsExtra, CONTENT_TYPE};
use crate::http::{header, Body, Handler, HeaderValue, HttpServer, Limits, Method, Reply};
use crate::http::{Request, Response, StatusCode};
use crate::ShardCtx;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shard's last rendering: its loop iteration's clock then, and the text.
type Rendering = Option<(Instant, Bytes)>;

/// Answers scrapes with the last rendering of each shard, shared by the
/// listener's connections.
#[derive(Clone)]
pub(crate) struct Scrapes {
    extra: Option<MetricsExtra>,
    /// By shard.
    last: Arc<Mutex<Vec<Rendering>>>,
}

impl Scrapes {
    pub(crate) fn new(extra: Option<MetricsExtra>) -> Self {
        Scrapes {
            extra,
            last: Arc::default(),
        }
    }

    /// The metrics listener's HTTP server: a request's head is due within
    /// 10 s, an idle scraper connection is closed after 60 s.
    pub(crate) fn server(self) -> HttpServer {
        HttpServer::new(self).limits(Limits {
            header_timeout: Some(Duration::from_secs(10)),
            keep_alive: Some(Duration::from_secs(60)),
            max_body: 64 * 1024,
            ..Limits::default()
        })
    }

    /// The exposition: this iteration's rendering on this shard if there
    /// is one, else a new one.
    fn body(&self, ctx: &mut ShardCtx) -> Bytes {
        let (shard, now) = (ctx.index(), ctx.now());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() <= shard {
            last.resize(shard + 1, None);
        }
        if let Some((at, body)) = &last[shard] {
            if *at == now {
                return body.clone();
            }
        }
        let mut text = render(&ctx.handle().stats());
        if let Some(extra) = &self.extra {
            extra(&mut text);
        }
        let body = Bytes::from(text);
        last[shard] = Some((now, body.clone()));
        body
    }
}

impl Handler for Scrapes {
    fn call(&self, req: Request<Body>, ctx: &mut ShardCtx) -> Reply {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        let (status, ctype, body) = if get && req.uri().path() == "/metrics" {
            (StatusCode::OK, CONTENT_TYPE, self.body(ctx))
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"try /metrics\n"),
            )
        };
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        Reply::Now(r)
    }
}
