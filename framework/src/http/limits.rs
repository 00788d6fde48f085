//! What one HTTP client may ask of the server, and how long it may take:
//! each limit is answered as nginx answers it.

use std::time::Duration;

/// Limits and timeouts of the HTTP/1.1 server (`HttpServer::limits`).
///
/// ```
/// use shardloop::http::Limits;
/// use std::time::Duration;
/// let limits = Limits {
///     max_body: 16 << 20,
///     keep_alive: Some(Duration::from_secs(5)),
///     ..Limits::default()
/// };
/// assert_eq!(limits.max_headers, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// HTTP/2: streams a client may have open at once
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`; nginx: 128).
    pub h2_max_streams: u32,
    /// HTTP/2: streams a client may reset before the server answers them,
    /// and streams the server may reset for a client's errors, before the
    /// connection is closed with `ENHANCE_YOUR_CALM` (the rapid-reset
    /// attack, CVE-2023-44487).
    pub h2_max_pending_resets: usize,
    /// The request line (method, target, version) at most: longer is
    /// answered 414 and closed (nginx: 8 KiB, `large_client_header_buffers`).
    pub max_request_line: usize,
    /// The whole head (request line and header fields) at most: larger is
    /// answered 431 and closed.
    pub max_head: usize,
    /// Header fields at most (up to 256): more is answered 431 and closed.
    pub max_headers: usize,
    /// Request body bytes at most: a larger declared length is answered
    /// 413 at once, a chunked body when it passes the limit; the
    /// connection is then closed (nginx: 1 MiB, `client_max_body_size`).
    pub max_body: u64,
    /// A chunk's size line with its extensions, at most (400 past it).
    pub max_chunk_line: usize,
    /// A chunked body's trailer section, at most (400 past it).
    pub max_trailers: usize,
    /// From the connection's start to the end of its first request's head,
    /// and from the first byte of each later request to the end of its
    /// head; a client slower than that is disconnected without an answer
    /// (nginx: `client_header_timeout`). Between requests the keep-alive
    /// timeout applies instead.
    pub header_timeout: Option<Duration>,
    /// From the end of the head to the end of the body, however the bytes
    /// trickle in; past it the connection is closed without an answer
    /// (nginx's `client_body_timeout` sends 408 first; a client that
    /// stopped sending is rarely reading either).
    pub body_timeout: Option<Duration>,
    /// An idle keep-alive connection is closed after this (nginx:
    /// `keepalive_timeout`, 75 s).
    pub keep_alive: Option<Duration>,
    /// Requests of one connection read ahead of their responses
    /// (pipelining, asynchronous handlers): reading pauses at this many.
    pub max_pipelined: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            h2_max_streams: 128,
            h2_max_pending_resets: 20,
            max_request_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            max_chunk_line: 1024,
            max_trailers: 8 * 1024,
            header_timeout: Some(Duration::from_secs(15)),
            body_timeout: Some(Duration::from_secs(60)),
            keep_alive: Some(Duration::from_secs(75)),
            max_pipelined: 16,
        }
    }
}

impl Limits {
    /// Checks the relations between the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_headers == 0 || self.max_headers > super::head::MAX_HEADERS {
            return Err(format!(
                "max_headers must be 1..={}, got {}",
                super::head::MAX_HEADERS,
                self.max_headers
            ));
        }
        if self.max_request_line > self.max_head {
            return Err("max_request_line must not exceed max_head".into());
        }
        if self.max_pipelined == 0 {
            return Err("max_pipelined must be at least 1".into());
        }
        Ok(())
    }
}
