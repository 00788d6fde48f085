//! The HTTP side of the metrics listener: `GET /metrics` with keep-alive,
//! held to the limits of any HTTP listener (a deadline for each request's
//! head, an idle timeout, a cap on the head's size), and kept off the data
//! path: a shard renders the exposition at most once per loop iteration
//! (the counters are published once per iteration, so a second rendering
//! could not say more) and every scrape it answers in that iteration shares
//! it; pipelined scrapes are answered only as fast as the scraper reads.

use super::{render, MetricsExtra, CONTENT_TYPE};
use crate::reactor::{Conn, Protocol};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request's head must be complete this soon after the connection opens
/// or the previous answer (slowloris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// A shard's last rendering: its loop iteration's clock then, and the text.
type Rendering = Option<(Instant, Arc<str>)>;

/// The last rendering of each shard, shared by the listener's connections.
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

    /// The exposition: this iteration's rendering on this shard if there
    /// is one, else a new one.
    fn body(&self, conn: &mut Conn<'_, MetricsHttp>) -> Arc<str> {
        let (shard, now) = (conn.shard().index(), conn.shard().now());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() <= shard {
            last.resize(shard + 1, None);
        }
        if let Some((at, body)) = &last[shard] {
            if *at == now {
                return body.clone();
            }
        }
        let mut text = render(&conn.shard().handle().stats());
        if let Some(extra) = &self.extra {
            extra(&mut text);
        }
        let body: Arc<str> = text.into();
        last[shard] = Some((now, body.clone()));
        body
    }
}

pub(crate) struct MetricsHttp {
    buf: Vec<u8>,
    scrapes: Scrapes,
    /// The head deadline is running (a request is under way).
    deadline: bool,
}

impl MetricsHttp {
    pub(crate) fn new(scrapes: Scrapes) -> Self {
        MetricsHttp {
            buf: Vec::new(),
            scrapes,
            deadline: false,
        }
    }

    /// A head deadline while a request is under way; between requests the
    /// idle timeout rules (a keep-alive scraper waits its interval).
    fn arm_deadline(&mut self, conn: &mut Conn<'_, Self>) {
        let pending = !self.buf.is_empty();
        if pending != self.deadline {
            self.deadline = pending;
            conn.set_read_timeout(pending.then_some(HEAD_TIMEOUT));
        }
    }

    /// Answers the complete requests buffered, while the scraper reads.
    fn answer(&mut self, conn: &mut Conn<'_, Self>) {
        while conn.is_writable() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if self.buf.len() <= MAX_HEAD => return,
                _ => {
                    conn.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    conn.close();
                    return;
                }
            };
            let close = req.version == Some(0)
                || req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
            let (status, ctype, body) = match (req.method, req.path) {
                (Some("GET"), Some(p)) if p == "/metrics" || p.starts_with("/metrics?") => {
                    ("200 OK", CONTENT_TYPE, self.scrapes.body(conn))
                }
                _ => ("404 Not Found", "text/plain", Arc::from("try /metrics\n")),
            };
            self.buf.drain(..n);
            conn.write(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                )
                .as_bytes(),
            );
            conn.write(body.as_bytes());
            if close {
                conn.close();
                return;
            }
            // The next request's head gets its own deadline.
            self.deadline = false;
            conn.set_read_timeout(None);
        }
    }
}

impl Protocol for MetricsHttp {
    type Message = ();

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        // The first request's head is due as soon as the connection opens.
        self.deadline = true;
        conn.set_read_timeout(Some(HEAD_TIMEOUT));
        conn.set_idle_timeout(Some(IDLE_TIMEOUT));
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.answer(conn);
        self.arm_deadline(conn);
    }

    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        // Pipelined scrapes waited for the scraper to read.
        self.answer(conn);
        self.arm_deadline(conn);
    }
}
