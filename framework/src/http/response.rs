//! Writing responses: the status line, the handler's header fields, the
//! fields the server owns (`Date`, `Server`, `Content-Length`,
//! `Connection`), and the body.

use super::body::Body;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, SERVER, TRANSFER_ENCODING};
use http::{HeaderValue, Response, StatusCode, Version};
use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime};

/// What the server knows when it writes a response.
pub(crate) struct Framing<'a> {
    /// The request was HEAD: header fields only.
    pub(crate) head_only: bool,
    /// The request's version (an HTTP/1.0 keep-alive is said explicitly).
    pub(crate) version: Version,
    /// The request allows the connection to persist after this response
    /// (it closes anyway if the handler says `Connection: close`).
    pub(crate) keep_alive: bool,
    /// The `Server` field, if the server sends one.
    pub(crate) server: Option<&'a HeaderValue>,
    /// The shard's clock (for the cached `Date`).
    pub(crate) now: Instant,
    /// The body follows the head as a stream: chunked for HTTP/1.1,
    /// delimited by the close for HTTP/1.0.
    pub(crate) streamed: bool,
}

/// True if `value` (a `Connection` field) lists `close`.
fn lists_close(value: &HeaderValue) -> bool {
    super::rules::elements(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"))
}

/// Writes a header name as nginx does (`Content-Type`): names are
/// case-insensitive, but some clients and scripts look for this form.
fn title_case(name: &[u8], out: &mut Vec<u8>) {
    // Copied once, then cased in place (no capacity check per byte).
    let start = out.len();
    out.extend_from_slice(name);
    let mut up = true;
    for b in &mut out[start..] {
        if up {
            *b = b.to_ascii_uppercase();
        }
        up = *b == b'-';
    }
}

/// Statuses that never carry a body (RFC 9110 §6.4.1).
pub(crate) fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Bodies from this size on are handed to the connection as they are,
/// not copied behind the head.
const COPY_BELOW: usize = 16 * 1024;

/// What `encode` leaves to the caller.
pub(crate) struct Encoded {
    /// The connection closes after this response.
    pub(crate) close: bool,
    /// A large body, to send after `out` without a copy.
    pub(crate) body: Option<bytes::Bytes>,
}

/// Appends the response's head (and a small body) to `out`.
pub(crate) fn encode(resp: Response<Body>, f: &Framing<'_>, out: &mut Vec<u8>) -> Encoded {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    // One allocation for the usual head (status line, a few fields).
    out.reserve(160 + 48 * parts.headers.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let headers = &parts.headers;
    // One pass: the fields the server owns are noted, not looked up.
    let (mut has_date, mut has_server, mut close) = (false, false, !f.keep_alive);
    let mut stated_length = None;
    for (name, value) in headers {
        // The server frames the body and decides the connection's fate.
        if name == CONTENT_LENGTH {
            stated_length = Some(value);
            continue;
        }
        if name == TRANSFER_ENCODING {
            continue;
        }
        if name == CONNECTION {
            close |= lists_close(value);
            continue;
        }
        has_date |= name == DATE;
        has_server |= name == SERVER;
        title_case(name.as_str().as_bytes(), out);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"Date: ");
        with_date(f.now, |d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    if let Some(server) = f.server.filter(|_| !has_server) {
        out.extend_from_slice(b"Server: ");
        out.extend_from_slice(server.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if f.streamed && !bodiless(status) {
        if f.version == Version::HTTP_10 {
            // No chunked coding in HTTP/1.0: the close ends the body.
            close = true;
        } else {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
    } else if !bodiless(status) {
        // A HEAD handler may state the length of the body it leaves out.
        let stated = stated_length.filter(|_| f.head_only && body.is_empty());
        out.extend_from_slice(b"Content-Length: ");
        match stated {
            Some(v) => out.extend_from_slice(v.as_bytes()),
            None => out.extend_from_slice(itoa_buf(body.len() as u64).as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if f.version == Version::HTTP_10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    // The map is the next request's (see `spare`).
    super::spare::give(parts.headers);
    if f.head_only || bodiless(status) || body.is_empty() {
        return Encoded { close, body: None };
    }
    if body.len() < COPY_BELOW {
        out.extend_from_slice(body.as_bytes());
        return Encoded { close, body: None };
    }
    Encoded {
        close,
        body: Some(body.into_bytes()),
    }
}

/// A short plain-text response for a refused request.
pub(crate) fn error(status: StatusCode, why: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut r = Response::new(Body::from(format!("{} {reason}: {why}\n", status.as_u16())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Decimal digits of `n` without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

thread_local! {
    /// The `Date` value, formatted once a second per shard thread, and
    /// when to format it again.
    static CACHED_DATE: RefCell<(Option<Instant>, [u8; 29])> = const { RefCell::new((None, [0; 29])) };
}

/// Calls `f` with the current `Date` value (IMF-fixdate), reformatted at
/// most once a second.
pub(crate) fn with_date(now: Instant, f: impl FnOnce(&[u8])) {
    CACHED_DATE.with(|d| {
        let mut d = d.borrow_mut();
        // One comparison per response; the clock is read once a second.
        if d.0.is_none_or(|next| now >= next) {
            let text = httpdate::fmt_http_date(SystemTime::now());
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
            }
            d.0 = Some(now + Duration::from_secs(1));
        }
        f(&d.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(head_only: bool, close: bool) -> Framing<'static> {
        Framing {
            head_only,
            version: Version::HTTP_11,
            keep_alive: !close,
            server: None,
            now: Instant::now(),
            streamed: false,
        }
    }

    #[test]
    fn a_response_gets_length_date_and_no_handler_framing() {
        let mut r = Response::new(Body::from("hi"));
        r.headers_mut().insert("x-a", HeaderValue::from_static("1"));
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        r.headers_mut()
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let mut out = Vec::new();
        encode(r, &framing(false, false), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nX-A: 1\r\nDate: "),
            "{text}"
        );
        assert!(text.ends_with("\r\nContent-Length: 2\r\n\r\nhi"), "{text}");
        assert!(!text.contains("999") && !text.contains("chunked"));
        let date = text
            .split("Date: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }

    #[test]
    fn head_and_bodiless_statuses_send_no_body() {
        let r = Response::new(Body::from("hello"));
        let mut out = Vec::new();
        encode(r, &framing(true, true), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
        let mut r = Response::new(Body::from("x"));
        *r.status_mut() = StatusCode::NO_CONTENT;
        let mut out = Vec::new();
        encode(r, &framing(false, false), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n") && text.ends_with("\r\n\r\n"));
        assert!(!text.contains("Content-Length"), "{text}");
    }

    #[test]
    fn digits() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            assert_eq!(itoa_buf(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
