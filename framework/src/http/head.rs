//! Request heads: `httparse` reads the syntax; this file checks the
//! request line (its length, the target's form) and turns the head into
//! `http` types without copying header values (they are slices of the
//! head's `Bytes`), while `rules.rs` applies RFC 9112's rules on the fields.

use super::limits::Limits;
use super::rules::Facts;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (no `Content-Length` and no
    /// `Transfer-Encoding` on a request: zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug)]
pub struct Head {
    /// The request without its body.
    pub parts: http::request::Parts,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Why a head was refused, as the status to answer it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 414, 431, 417, 501 or 505.
    pub status: StatusCode,
    /// What was wrong (for logs and the response body).
    pub why: &'static str,
}

pub(crate) fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal { status, why }
}

pub(crate) fn bad(why: &'static str) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, why)
}

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete
/// (and within the limits); `Ok(Some((head, len)))`: the head is
/// `buf[..len]`.
/// The header ranges go into `spans` (cleared first: the caller keeps
/// one, so parsing allocates nothing once it has grown).
pub(crate) fn parse(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<HeaderSpan>,
) -> Result<Option<(Parsed, usize)>, Refusal> {
    // No initialisation cost: httparse writes the headers it finds.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed =
        req.parse_with_uninit_headers(buf, &mut headers[..limits.max_headers.min(MAX_HEADERS)]);
    if parsed.is_err() {
        // Whatever else is wrong, an over-long request line is a 414.
        check_line_length(buf, limits)?;
    }
    let status = match parsed {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(httparse::Error::Version) => return Err(version_refusal(buf)),
        Err(_) => return Err(bad("malformed request head")),
    };
    let len = match status {
        httparse::Status::Partial => {
            check_line_length(buf, limits)?;
            if buf.len() > limits.max_head {
                return Err(refuse(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ));
            }
            return Ok(None);
        }
        httparse::Status::Complete(len) => len,
    };
    // The line is inside the head: a head within the limit needs no search.
    if len > limits.max_request_line {
        check_line_length(buf, limits)?;
    }
    if len > limits.max_head {
        return Err(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| {
        let at = s.as_ptr() as usize - base;
        (at, at + s.len())
    };
    let method = req.method.expect("complete");
    let target = req.path.expect("complete");
    spans.clear();
    spans.extend(
        req.headers
            .iter()
            .map(|h| (span(h.name.as_bytes()), span(h.value))),
    );
    let parsed = Parsed {
        method: span(method.as_bytes()),
        target: span(target.as_bytes()),
        version: if req.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        },
    };
    Ok(Some((parsed, len)))
}

/// Header fields a request may have at most, whatever the limit says (the
/// parser's array lives on the stack).
pub const MAX_HEADERS: usize = 256;

/// A header's name and value, as ranges of the head.
pub(crate) type HeaderSpan = ((usize, usize), (usize, usize));

/// A head's parts, as ranges of the buffer it was read from (so they can
/// be taken from the head's `Bytes` without a copy).
pub(crate) struct Parsed {
    method: (usize, usize),
    target: (usize, usize),
    version: Version,
}

/// The request line may not exceed `max_request_line` (414, as nginx).
fn check_line_length(buf: &[u8], limits: &Limits) -> Result<(), Refusal> {
    let line = match memchr::memchr(b'\n', buf) {
        Some(lf) if lf > 0 && buf[lf - 1] == b'\r' => lf - 1,
        Some(lf) => lf,
        None => buf.len(),
    };
    if line > limits.max_request_line {
        return Err(refuse(StatusCode::URI_TOO_LONG, "request line too long"));
    }
    Ok(())
}

/// `HTTP/2.0` (or later) in an HTTP/1 request line: 505; anything else
/// malformed there: 400.
fn version_refusal(buf: &[u8]) -> Refusal {
    let line = &buf[..memchr::memchr(b'\n', buf).unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.rsplit(|&b| b == b' ').next() {
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() && *major >= b'2' =>
        {
            refuse(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "HTTP version not supported",
            )
        }
        _ => bad("malformed HTTP version"),
    }
}

impl Parsed {
    /// Applies RFC 9112's rules and builds the `http` head from `head`
    /// (the bytes `parse` read, frozen).
    pub(crate) fn into_head(self, head: &Bytes, spans: &[HeaderSpan]) -> Result<Head, Refusal> {
        let slice = |(a, b): (usize, usize)| head.slice(a..b);
        let method = Method::from_bytes(&head[self.method.0..self.method.1])
            .map_err(|_| bad("malformed method"))?;
        let mut headers = super::spare::take(spans.len());
        // The fields the rules read are noted in the one pass that builds
        // the map: no lookup afterwards.
        let mut facts = Facts::default();
        for &(name, value) in spans {
            let name = HeaderName::from_bytes(&head[name.0..name.1])
                .map_err(|_| bad("malformed header name"))?;
            facts.see(&name, &head[value.0..value.1]);
            // httparse already refused control characters in values.
            let value = HeaderValue::from_maybe_shared(slice(value))
                .map_err(|_| bad("malformed header value"))?;
            headers.append(name, value);
        }
        let target = &head[self.target.0..self.target.1];
        let uri = target_uri(&method, target, slice(self.target))?;
        let (framing, keep_alive, expect_continue) = facts.finish(self.version)?;
        let mut req = http::Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = headers;
        let (parts, ()) = req.into_parts();
        Ok(Head {
            parts,
            framing,
            keep_alive,
            expect_continue,
        })
    }
}

/// The request target in one of its four forms (RFC 9112 §3.2): origin
/// (`/path`), absolute (`http://host/path`, any method), authority
/// (`host:port`, CONNECT only) and asterisk (`*`, OPTIONS only).
fn target_uri(method: &Method, raw: &[u8], shared: Bytes) -> Result<Uri, Refusal> {
    let connect = method == Method::CONNECT;
    match raw.first() {
        Some(b'/') if !connect => {
            Uri::from_maybe_shared(shared).map_err(|_| bad("malformed target"))
        }
        Some(b'*') if raw.len() == 1 => {
            if method == Method::OPTIONS {
                Ok(Uri::from_static("*"))
            } else {
                Err(bad("asterisk-form target outside OPTIONS"))
            }
        }
        Some(_) => {
            let uri = Uri::from_maybe_shared(shared).map_err(|_| bad("malformed target"))?;
            let authority_form = uri.scheme().is_none() && uri.authority().is_some();
            let absolute_form = uri.scheme().is_some() && uri.authority().is_some();
            match (connect, authority_form, absolute_form) {
                (true, true, _) => Ok(uri),
                (false, _, true) => Ok(uri),
                _ => Err(bad("target form not allowed for this method")),
            }
        }
        None => Err(bad("empty target")),
    }
}
