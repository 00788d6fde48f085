//! The HTTP workload's requests for HTTP/2: rendered by the same templates
//! as HTTP/1.1 (so both versions send the same requests), then taken
//! apart into the head and body `h2` sends. A request that never changes
//! is taken apart once.

use super::Codec;
use crate::template::Draws;
use bytes::Bytes;
use shardloop::http::{Body, Request};

/// Builds the HTTP/2 requests of one run.
pub(crate) struct H2Requests {
    /// `http` or `https`: the `:scheme` sent.
    scheme: &'static str,
    /// The request, when every one is the same.
    fixed: Option<Parts>,
}

/// A request taken apart.
#[derive(Clone)]
struct Parts {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Parts {
    fn request(self) -> Request<Body> {
        let mut req = Request::new(Body::from(self.body));
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        req
    }
}

impl H2Requests {
    /// The requests of `codec` (an HTTP workload's) over TLS or not; an
    /// error says why a fixed request cannot go out as HTTP/2.
    pub(crate) fn new(codec: &Codec, tls: bool) -> Result<Self, String> {
        let scheme = if tls { "https" } else { "http" };
        let fixed = if codec.is_fixed() {
            let mut bytes = Vec::new();
            codec.encode(0, &mut Draws::default(), &mut bytes);
            Some(parse(&bytes, scheme)?)
        } else {
            None
        };
        Ok(H2Requests { scheme, fixed })
    }

    /// Request `seq` (its variables drawn from `draws`); `scratch` is
    /// reused between calls.
    pub(crate) fn request(
        &self,
        codec: &Codec,
        seq: u64,
        draws: &mut Draws,
        scratch: &mut Vec<u8>,
    ) -> Result<Request<Body>, String> {
        if let Some(parts) = &self.fixed {
            return Ok(parts.clone().request());
        }
        scratch.clear();
        codec.encode(seq, draws, scratch);
        parse(scratch, self.scheme).map(Parts::request)
    }
}

/// An HTTP/1.1 request's bytes as the parts of an HTTP/2 request: `Host`
/// becomes the URI's authority (`:authority`), the rest stays.
fn parse(bytes: &[u8], scheme: &str) -> Result<Parts, String> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut fields);
    let len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete request".into()),
        Err(e) => return Err(format!("the request does not parse: {e}")),
    };
    let method = http::Method::from_bytes(head.method.unwrap_or("GET").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut headers = http::HeaderMap::with_capacity(head.headers.len());
    let mut host = None;
    for f in head.headers.iter() {
        if f.name.eq_ignore_ascii_case("host") {
            host = Some(String::from_utf8_lossy(f.value).into_owned());
            continue;
        }
        let name = http::HeaderName::from_bytes(f.name.as_bytes()).map_err(|e| e.to_string())?;
        let value = http::HeaderValue::from_bytes(f.value).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    let host = host.ok_or("no Host")?;
    let path = head.path.unwrap_or("/");
    let uri: http::Uri = format!("{scheme}://{host}{path}")
        .parse()
        .map_err(|e| format!("bad request target {path:?}: {e}"))?;
    Ok(Parts {
        method,
        uri,
        headers,
        body: Bytes::copy_from_slice(&bytes[len..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Workload;
    use crate::template::Vars;
    use std::sync::Arc;

    fn workload(path: &str, body: &[u8]) -> Workload {
        Workload::Http {
            path: path.into(),
            host: "example.test:8080".into(),
            headers: vec![("X-Id".into(), "{{id}}".into())],
            method: "POST".into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_templated_request_keeps_method_path_headers_and_body() {
        let vars = Vars::parse(&["id=seq:7".to_string()], &|_| unreachable!()).unwrap();
        let codec = Codec::with_vars(
            &workload("/items/{{id}}?q=1", b"{\"n\":{{id}}}"),
            Arc::new(vars),
        )
        .unwrap();
        let h2 = H2Requests::new(&codec, true).unwrap();
        let mut draws = codec.draws(1);
        let mut scratch = Vec::new();
        for want in [7, 8] {
            let req = h2.request(&codec, 0, &mut draws, &mut scratch).unwrap();
            assert_eq!(req.method(), http::Method::POST);
            assert_eq!(
                req.uri().to_string(),
                format!("https://example.test:8080/items/{want}?q=1")
            );
            assert_eq!(req.headers()["x-id"], want.to_string().as_str());
            assert!(req.headers().get("host").is_none(), "Host is the authority");
            assert_eq!(
                req.body().as_bytes(),
                format!("{{\"n\":{want}}}").as_bytes()
            );
        }
    }

    #[test]
    fn a_fixed_request_is_taken_apart_once_and_repeated() {
        let w = Workload::Http {
            path: "/".into(),
            host: "localhost".into(),
            headers: vec![],
            method: "GET".into(),
            body: vec![],
        };
        let codec = Codec::new(&w);
        let h2 = H2Requests::new(&codec, false).unwrap();
        assert!(h2.fixed.is_some());
        let mut draws = codec.draws(1);
        let req = h2.request(&codec, 5, &mut draws, &mut Vec::new()).unwrap();
        assert_eq!(req.uri().to_string(), "http://localhost/");
        assert!(req.body().is_empty());
    }
}
