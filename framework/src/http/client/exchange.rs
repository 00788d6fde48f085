//! One request and its response on a connection: the request written,
//! the response read with the library's head parser and body framing.

use super::{ClientError, ClientOptions, Origin};
use crate::client::ClientStream;
use crate::http::response_head::{parse_response, ResponseError, ResponseFraming};
use crate::http::{Request, Response};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

/// A failed exchange, and whether any of the response had arrived (a
/// request is sent again only if none had).
pub(crate) struct Failed {
    pub(crate) error: ClientError,
    pub(crate) answered: bool,
}

/// The request's head: origin-form target, `Host`, the caller's fields,
/// and the body's framing (the client frames the body itself): its
/// length, or chunked (`None`: a body whose length is not known).
pub(crate) fn encode_request<B>(req: &Request<B>, origin: &Origin, body: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers().contains_key(HOST) {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(origin.host_field().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in req.headers() {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let method_has_body = !matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::DELETE | http::Method::OPTIONS
    );
    match body {
        None => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Some(n) if n > 0 || method_has_body => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        Some(_) => {}
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn io(error: std::io::Error, answered: bool) -> Failed {
    Failed {
        error: ClientError::Io(error),
        answered,
    }
}

fn protocol(why: &'static str, answered: bool) -> Failed {
    Failed {
        error: ClientError::Protocol(why),
        answered,
    }
}

/// A response's head, read; its body follows in `buf[at..]` and on the
/// connection.
pub(crate) struct Head {
    pub(crate) response: Response<()>,
    pub(crate) framing: ResponseFraming,
    pub(crate) keep_alive: bool,
    pub(crate) buf: Vec<u8>,
    pub(crate) at: usize,
}

/// Writes the request and reads the response's head.
pub(crate) async fn exchange(
    conn: &mut ClientStream,
    head: &[u8],
    body: &[u8],
    head_only: bool,
    opts: &ClientOptions,
) -> Result<Head, Failed> {
    conn.write_all(head).await.map_err(|e| io(e, false))?;
    if !body.is_empty() {
        conn.write_all(body).await.map_err(|e| io(e, false))?;
    }
    read_head(conn, head_only, opts).await
}

/// Reads a response's head (after the request was written).
pub(crate) async fn read_head(
    conn: &mut ClientStream,
    head_only: bool,
    opts: &ClientOptions,
) -> Result<Head, Failed> {
    let mut buf = Vec::with_capacity(4096);
    // The final response's head (interim 1xx answers are skipped).
    let meta = loop {
        match parse_response(&buf, head_only, opts.max_head) {
            Ok(Some(m)) if (100..200).contains(&m.status) && m.status != 101 => {
                buf.drain(..m.head_len);
            }
            Ok(Some(m)) => break m,
            Ok(None) if buf.len() > opts.max_head => {
                return Err(Failed {
                    error: ClientError::TooLarge,
                    answered: true,
                })
            }
            Ok(None) => {
                let n = conn
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| io(e, !buf.is_empty()))?;
                if n == 0 {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "closed before a complete response head",
                    );
                    return Err(io(e, !buf.is_empty()));
                }
            }
            Err(ResponseError::TooLarge) => {
                return Err(Failed {
                    error: ClientError::TooLarge,
                    answered: true,
                })
            }
            Err(_) => return Err(protocol("malformed response head", true)),
        }
    };
    if meta.status == 101 {
        return Err(protocol("an upgrade the request did not ask for", true));
    }
    let parts = head_parts(&buf[..meta.head_len]).ok_or(protocol("malformed head", true))?;
    if let ResponseFraming::Length(n) = meta.framing {
        if n > opts.max_body {
            return Err(Failed {
                error: ClientError::TooLarge,
                answered: true,
            });
        }
    }
    let mut response = Response::new(());
    *response.status_mut() = parts.status;
    *response.headers_mut() = parts.headers;
    *response.version_mut() = parts.version;
    Ok(Head {
        response,
        framing: meta.framing,
        keep_alive: meta.keep_alive,
        buf,
        at: meta.head_len,
    })
}

struct Parts {
    status: StatusCode,
    headers: HeaderMap,
    version: Version,
}

/// The status and header fields of a head `parse_response` accepted.
fn head_parts(head: &[u8]) -> Option<Parts> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut fields);
    r.parse(head).ok()?;
    let status = StatusCode::from_u16(r.code?).ok()?;
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    for f in r.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_bytes(f.value).ok()?);
    }
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    Some(Parts {
        status,
        headers,
        version,
    })
}
