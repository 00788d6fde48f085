//! RFC 9112's rules on a request's header fields: `Host` (§3.2), message
//! framing (§6: `Transfer-Encoding`, `Content-Length`, and every
//! ambiguity a request smuggler uses), persistence (§9.3) and `Expect`.
//! The fields are noted one by one as the head is built, so the rules
//! cost no lookup in the header map.

use super::head::{bad, refuse, Framing, Refusal};
use http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::{StatusCode, Version};

/// What the rules need to know of a head's fields.
#[derive(Default)]
pub(crate) struct Facts {
    hosts: u32,
    host_ok: bool,
    length: Option<u64>,
    transfer_encoding: bool,
    chunked: u32,
    last_chunked: bool,
    other_coding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    /// The first field that breaks a rule by itself.
    error: Option<Refusal>,
}

impl Facts {
    /// Notes one header field.
    pub(crate) fn see(&mut self, name: &HeaderName, value: &[u8]) {
        if *name == HOST {
            self.hosts += 1;
            self.host_ok = valid_host(value);
        } else if *name == CONTENT_LENGTH {
            self.content_length(value);
        } else if *name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            for coding in elements(value).filter(|c| !c.is_empty()) {
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                self.chunked += u32::from(chunked);
                self.other_coding |= !chunked;
                self.last_chunked = chunked;
            }
        } else if *name == CONNECTION {
            for token in elements(value) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if *name == EXPECT {
            if value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                self.expect_continue = true;
            } else {
                self.fail(refuse(
                    StatusCode::EXPECTATION_FAILED,
                    "unsupported expectation",
                ));
            }
        }
    }

    fn fail(&mut self, r: Refusal) {
        self.error.get_or_insert(r);
    }

    /// Every `Content-Length` value (several fields, or a list in one)
    /// must be the same number, a run of digits that fits in 63 bits.
    fn content_length(&mut self, value: &[u8]) {
        for part in elements(value) {
            let n = match content_length(part) {
                Ok(n) => n,
                Err(why) => return self.fail(bad(why)),
            };
            if self.length.is_some_and(|seen| seen != n) {
                return self.fail(bad("conflicting Content-Length"));
            }
            self.length = Some(n);
        }
    }

    /// Applies the rules: the body's framing, whether the connection
    /// persists, and whether the client waits for `100 Continue`.
    pub(crate) fn finish(self, version: Version) -> Result<(Framing, bool, bool), Refusal> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let http11 = version == Version::HTTP_11;
        match self.hosts {
            0 if http11 => return Err(bad("missing Host")),
            0 => {}
            1 if self.host_ok => {}
            1 => return Err(bad("malformed Host")),
            _ => return Err(bad("more than one Host")),
        }
        let framing = if !self.transfer_encoding {
            Framing::Length(self.length.unwrap_or(0))
        } else if self.length.is_some() {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        } else if !http11 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        } else if !self.last_chunked {
            return Err(bad("Transfer-Encoding does not end with chunked"));
        } else if self.chunked > 1 {
            return Err(bad("chunked applied twice"));
        } else if self.other_coding {
            return Err(refuse(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported transfer coding",
            ));
        } else {
            Framing::Chunked
        };
        // HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`.
        let keep_alive = !self.close && (http11 || self.keep_alive);
        Ok((framing, keep_alive, self.expect_continue && http11))
    }
}

/// The elements of a comma-separated field value, trimmed (empty ones
/// included: a `Content-Length` list must not have any).
pub(crate) fn elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// One `Content-Length` value: a run of digits that fits in 63 bits (past
/// 2^63 - 1 it is malformed, as for nginx: an `off_t`).
pub(crate) fn content_length(v: &[u8]) -> Result<u64, &'static str> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err("malformed Content-Length");
    }
    v.iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or("Content-Length out of range")
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2), or empty: a reg-name or IPv4
/// address (unreserved, sub-delims, pct-encoded) or a bracketed IP
/// literal, then digits after the last colon. Checked byte by byte, with
/// no allocation: it runs for every request.
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.first() {
        Some(b'[') => match v.iter().position(|&b| b == b']') {
            Some(end) => {
                let lit = &v[1..end];
                let ok = !lit.is_empty()
                    && lit.iter().all(|&b| {
                        b.is_ascii_hexdigit() || b == b':' || b == b'.' || b == b'v' || b == b'V'
                    });
                if !ok {
                    return false;
                }
                (&v[..0], &v[end + 1..])
            }
            None => return false,
        },
        _ => match v.iter().rposition(|&b| b == b':') {
            Some(c) => (&v[..c], &v[c..]),
            None => (v, &v[..0]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && host.iter().all(|&b| HOST_BYTE[usize::from(b)])
}

/// The bytes of a reg-name or IPv4 address: unreserved, sub-delims and
/// `%` (a table: one load per byte, for every request's `Host`).
const HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=%";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};
