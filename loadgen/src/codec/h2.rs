//! The HTTP workload's requests for HTTP/2: the same templates as
//! HTTP/1.1 (so both versions send the same requests), rendered part by
//! part into the head and body `h2` sends. A request that never changes
//! is rendered once.

use super::{Codec, Templated};
use crate::template::{Draws, Vars};
use bytes::Bytes;
use shardloop::http::{Body, Request};
use std::sync::Arc;

/// Builds the HTTP/2 requests of one run.
pub(crate) struct H2Requests {
    /// `http` or `https`: the `:scheme` sent.
    scheme: &'static str,
    vars: Arc<Vars>,
    template: Templated,
    /// The request, when every one is the same.
    fixed: Option<Parts>,
}

/// A request's parts.
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
        let template = match Templated::compile(&codec.workload, &codec.vars)? {
            Some(t @ Templated::Http { .. }) => t,
            _ => return Err("HTTP/2 is for the http workload".into()),
        };
        let mut h2 = H2Requests {
            scheme,
            vars: codec.vars.clone(),
            template,
            fixed: None,
        };
        if h2.template.is_fixed() {
            h2.fixed = Some(h2.render(&mut Draws::default(), &mut Vec::new())?);
        }
        Ok(h2)
    }

    /// The next request (its variables drawn from `draws`); `scratch` is
    /// reused between calls.
    pub(crate) fn request(
        &self,
        draws: &mut Draws,
        scratch: &mut Vec<u8>,
    ) -> Result<Request<Body>, String> {
        match &self.fixed {
            Some(parts) => Ok(parts.clone().request()),
            None => self.render(draws, scratch).map(Parts::request),
        }
    }

    /// Renders each part; `Host` is the URI's authority (`:authority`).
    fn render(&self, draws: &mut Draws, scratch: &mut Vec<u8>) -> Result<Parts, String> {
        let Templated::Http {
            method,
            path,
            host,
            headers,
            body,
            ..
        } = &self.template
        else {
            unreachable!("checked by new")
        };
        let vars = &self.vars;
        draws.next_request();
        scratch.clear();
        method.render(vars, draws, scratch);
        let method = http::Method::from_bytes(scratch).map_err(|e| e.to_string())?;
        scratch.clear();
        scratch.extend_from_slice(self.scheme.as_bytes());
        scratch.extend_from_slice(b"://");
        scratch.extend_from_slice(host.as_bytes());
        path.render(vars, draws, scratch);
        let uri = http::Uri::try_from(scratch.as_slice())
            .map_err(|e| format!("bad request target: {e}"))?;
        let mut map = http::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("host") {
                continue;
            }
            scratch.clear();
            value.render(vars, draws, scratch);
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = http::HeaderValue::from_bytes(scratch).map_err(|e| e.to_string())?;
            map.append(name, value);
        }
        scratch.clear();
        body.render(vars, draws, scratch);
        Ok(Parts {
            method,
            uri,
            headers: map,
            body: Bytes::copy_from_slice(scratch),
        })
    }
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
            let req = h2.request(&mut draws, &mut scratch).unwrap();
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
        let req = h2.request(&mut draws, &mut Vec::new()).unwrap();
        assert_eq!(req.uri().to_string(), "http://localhost/");
        assert!(req.body().is_empty());
    }
}
