//! The opening handshake (RFC 6455 §4.2): the checks on the client's
//! request, the subprotocol chosen, and the 101 answer.

use super::WsOptions;
use crate::http::rules::elements;
use crate::http::{Body, Request, Response, StatusCode};
use base64::Engine;
use http::header::{self, HeaderValue};
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
///
/// ```
/// use shardloop::http::ws::accept_key;
/// // RFC 6455 §1.3.
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// An accepted handshake: the 101 answer's bytes and the chosen
/// subprotocol.
pub(crate) struct Accepted {
    pub(crate) head: Vec<u8>,
    pub(crate) protocol: Option<String>,
}

/// True if the comma-separated field `name` lists `token` (any case).
fn lists(req: &Request<Body>, name: header::HeaderName, token: &[u8]) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .any(|v| elements(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(token)))
}

fn refuse(status: StatusCode, why: &str) -> Response<Body> {
    crate::http::response::error(status, why)
}

/// Checks an upgrade request; the 101 answer, or the response that
/// refuses it: 400 for a malformed handshake, 426 (with
/// `Sec-WebSocket-Version: 13`) for another version, 403 for an origin
/// the options do not allow.
pub(crate) fn check(req: &Request<Body>, opts: &WsOptions) -> Result<Accepted, Response<Body>> {
    if req.method() != http::Method::GET || req.version() < http::Version::HTTP_11 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake is a GET of HTTP/1.1",
        ));
    }
    if !lists(req, header::UPGRADE, b"websocket") || !lists(req, header::CONNECTION, b"upgrade") {
        let mut r = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this resource speaks WebSocket only",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return Err(r);
    }
    let version = req.headers().get(header::SEC_WEBSOCKET_VERSION);
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        let mut r = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version (13 is)",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(r);
    }
    let mut keys = req.headers().get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.as_bytes(),
        _ => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "one Sec-WebSocket-Key is required",
            ))
        }
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.map(|k| k.len()) != Ok(16) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is not 16 bytes in base64",
        ));
    }
    if let Some(allowed) = &opts.origins {
        let origin = req.headers().get(header::ORIGIN).map(HeaderValue::as_bytes);
        if !origin.is_some_and(|o| allowed.iter().any(|a| a.as_bytes() == o)) {
            return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    // The first of the client's subprotocols (in its order of preference)
    // that the server speaks.
    let protocol = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| elements(v.as_bytes()))
        .find_map(|offered| {
            opts.protocols
                .iter()
                .find(|p| p.as_bytes() == offered)
                .cloned()
        });
    if protocol.is_none() && opts.require_protocol && !opts.protocols.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "no subprotocol this server speaks was offered",
        ));
    }
    let mut head = Vec::with_capacity(160);
    head.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    head.extend_from_slice(accept_key(key).as_bytes());
    if let Some(p) = &protocol {
        head.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        head.extend_from_slice(p.as_bytes());
    }
    head.extend_from_slice(b"\r\n\r\n");
    Ok(Accepted { head, protocol })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::builder().uri("/chat");
        for (k, v) in fields {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    const GOOD: [(&str, &str); 5] = [
        ("host", "server.example.com"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    fn with(change: (&str, &str)) -> Vec<(&'static str, String)> {
        GOOD.iter()
            .map(|(k, v)| {
                if *k == change.0 {
                    (*k, change.1.to_string())
                } else {
                    (*k, v.to_string())
                }
            })
            .collect()
    }

    fn status(fields: Vec<(&'static str, String)>, opts: &WsOptions) -> u16 {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match check(&request(&f), opts) {
            Ok(_) => 101,
            Err(r) => r.status().as_u16(),
        }
    }

    #[test]
    fn the_rfc_example_is_accepted() {
        let a = check(&request(&GOOD), &WsOptions::default()).ok().unwrap();
        let text = String::from_utf8(a.head).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn bad_handshakes_are_refused() {
        let o = WsOptions::default();
        assert_eq!(status(with(("upgrade", "h2c")), &o), 426);
        assert_eq!(status(with(("connection", "keep-alive")), &o), 426);
        assert_eq!(status(with(("sec-websocket-version", "8")), &o), 426);
        assert_eq!(status(with(("sec-websocket-key", "c2hvcnQ=")), &o), 400);
        assert_eq!(status(with(("sec-websocket-key", "!!!")), &o), 400);
        let f: Vec<(&str, &str)> = GOOD.to_vec();
        let mut post = request(&f);
        *post.method_mut() = http::Method::POST;
        assert_eq!(check(&post, &o).err().unwrap().status(), 400);
        let mut two_keys = request(&f);
        two_keys.headers_mut().append(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="),
        );
        assert_eq!(check(&two_keys, &o).err().unwrap().status(), 400);
        let v = check(
            &request(
                &with(("sec-websocket-version", "7"))
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect::<Vec<_>>(),
            ),
            &o,
        )
        .err()
        .unwrap();
        assert_eq!(v.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn subprotocols_and_origins() {
        let opts = WsOptions {
            protocols: vec!["chat.v2".into(), "chat.v1".into()],
            origins: Some(vec!["https://example.com".into()]),
            ..WsOptions::default()
        };
        let mut f: Vec<(&str, &str)> = GOOD.to_vec();
        f.push(("origin", "https://example.com"));
        f.push(("sec-websocket-protocol", "x, chat.v1, chat.v2"));
        let a = check(&request(&f), &opts).ok().unwrap();
        // The client's order of preference.
        assert_eq!(a.protocol.as_deref(), Some("chat.v1"));
        assert!(String::from_utf8(a.head)
            .unwrap()
            .contains("\r\nSec-WebSocket-Protocol: chat.v1\r\n"));
        f[5] = ("origin", "https://evil.example");
        assert_eq!(check(&request(&f), &opts).err().unwrap().status(), 403);
        f.remove(5);
        assert_eq!(check(&request(&f), &opts).err().unwrap().status(), 403);
        let strict = WsOptions {
            protocols: vec!["chat.v2".into()],
            require_protocol: true,
            ..WsOptions::default()
        };
        assert_eq!(status(with(("upgrade", "websocket")), &strict), 400);
    }
}
