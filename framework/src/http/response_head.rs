//! Response heads, for clients: the status and how the body is delimited
//! (RFC 9112 §6.3), read without building a header map (a load generator
//! reads millions of them a second).

use super::chunked::ChunkedDecoder;
use super::rules::{content_length, elements};

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// Exactly this many bytes (0 for HEAD, 1xx, 204 and 304).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// What a client needs of a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The status code.
    pub status: u16,
    /// The head's length in bytes (the body starts there).
    pub head_len: usize,
    /// How the body is delimited.
    pub framing: ResponseFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

/// Why a response head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not an HTTP/1.x response head.
    #[error("malformed response head")]
    Malformed,
    /// A head longer than the limit.
    #[error("response head too large")]
    TooLarge,
    /// `Content-Length` malformed, out of range or given twice differently.
    #[error("malformed Content-Length")]
    BadLength,
}

/// Header fields read per response at most.
const MAX_RESPONSE_HEADERS: usize = 64;

/// Reads the response head at the start of `buf` (`Ok(None)`: incomplete).
/// `head_request`: the request was HEAD (its response has no body).
///
/// ```
/// use shardloop::http::response_head::{parse_response, ResponseFraming};
/// let meta = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 8192)
///     .unwrap()
///     .unwrap();
/// assert_eq!((meta.status, meta.head_len), (200, 38));
/// assert_eq!(meta.framing, ResponseFraming::Length(5));
/// assert!(meta.keep_alive);
/// ```
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
    max_head: usize,
) -> Result<Option<ResponseMeta>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(ResponseError::TooLarge),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(ResponseError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let (mut length, mut te, mut last_chunked) = (None, false, false);
    let (mut close, mut keep) = (false, false);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in elements(h.value) {
                let n = content_length(part).map_err(|_| ResponseError::BadLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ResponseError::BadLength);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            for c in elements(h.value).filter(|c| !c.is_empty()) {
                last_chunked = c.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in elements(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let bodiless = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if bodiless {
        ResponseFraming::Length(0)
    } else if te && last_chunked {
        // Transfer-Encoding overrides Content-Length (§6.3, rule 3).
        ResponseFraming::Chunked
    } else if te {
        ResponseFraming::UntilClose
    } else if let Some(n) = length {
        ResponseFraming::Length(n)
    } else {
        ResponseFraming::UntilClose
    };
    let keep_alive = framing != ResponseFraming::UntilClose && !close && (http11 || keep);
    Ok(Some(ResponseMeta {
        status,
        head_len,
        framing,
        keep_alive,
    }))
}

/// Where a client stands in one response's body, fed the bytes as they
/// come (any split).
#[derive(Debug, Clone)]
pub enum BodyProgress {
    /// Bytes still to come.
    Length(u64),
    /// The chunked decoder's state.
    Chunked(ChunkedDecoder),
    /// Until the connection closes.
    UntilClose,
}

impl BodyProgress {
    /// The start of a body framed as `framing` (chunk lines and trailers
    /// capped at `max_line` and `max_trailers` bytes).
    pub fn new(framing: ResponseFraming, max_line: usize, max_trailers: usize) -> Self {
        match framing {
            ResponseFraming::Length(n) => BodyProgress::Length(n),
            ResponseFraming::Chunked => {
                BodyProgress::Chunked(ChunkedDecoder::new(max_line, max_trailers))
            }
            ResponseFraming::UntilClose => BodyProgress::UntilClose,
        }
    }

    /// Takes body bytes from `input`, handing the body's data to `data`;
    /// returns how many bytes it used, and whether the body is complete.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), super::chunked::ChunkError> {
        match self {
            BodyProgress::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                data(&input[..n]);
                *left -= n as u64;
                Ok((n, *left == 0))
            }
            BodyProgress::Chunked(d) => {
                let used = d.decode(input, data)?;
                Ok((used, d.is_done()))
            }
            BodyProgress::UntilClose => {
                data(input);
                Ok((input.len(), false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_by_the_rules() {
        let p =
            |raw: &str, head: bool| parse_response(raw.as_bytes(), head, 1024).unwrap().unwrap();
        assert_eq!(
            p(
                "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                false
            )
            .framing,
            ResponseFraming::Length(0)
        );
        assert_eq!(
            p("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).framing,
            ResponseFraming::Length(0)
        );
        let chunked = p(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        );
        assert_eq!(chunked.framing, ResponseFraming::Chunked);
        let close = p("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(
            (close.framing, close.keep_alive),
            (ResponseFraming::UntilClose, false)
        );
        assert!(!p("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).keep_alive);
        assert!(
            p(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert!(
            !p(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false
            )
            .keep_alive
        );
        for bad in ["x", "-1", "1, 2", "18446744073709551616"] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                parse_response(raw.as_bytes(), false, 1024),
                Err(ResponseError::BadLength),
                "{bad}"
            );
        }
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false, 1024),
            Ok(None)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n", false, 10),
            Err(ResponseError::TooLarge)
        );
        assert_eq!(
            parse_response(b"garbage\r\n\r\n", false, 1024),
            Err(ResponseError::Malformed)
        );
    }

    #[test]
    fn bodies_fed_in_pieces() {
        let mut b = BodyProgress::new(ResponseFraming::Chunked, 64, 64);
        let wire = b"3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut got = Vec::new();
        let mut used = 0;
        for i in 0..wire.len() {
            let (n, done) = b.feed(&wire[i..=i], |d| got.extend_from_slice(d)).unwrap();
            used += n;
            if done {
                break;
            }
        }
        assert_eq!((got.as_slice(), used), (b"abc".as_slice(), wire.len() - 4));
        let mut b = BodyProgress::new(ResponseFraming::Length(2), 64, 64);
        assert_eq!(b.feed(b"xyz", |_| {}).unwrap(), (2, true));
    }
}
