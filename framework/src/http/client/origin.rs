//! Where a request goes: its origin (scheme, host, port), and a new
//! connection to it (resolved and raced by the framework's connect).

use super::{ClientError, ClientOptions};
use crate::client::ClientStream;
use crate::endpoint::Connect;
use std::io;

/// An origin (RFC 6454): what a pooled connection can serve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `https`.
    pub tls: bool,
    /// The host, as in the URL (brackets off an IPv6 literal).
    pub host: String,
    /// The port (the scheme's default if the URL gives none).
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http://` or `https://` URI.
    pub fn of(uri: &http::Uri) -> Result<Origin, ClientError> {
        let bad = || ClientError::Url(uri.to_string());
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad()),
        };
        let auth = uri.authority().ok_or_else(bad)?;
        if auth.as_str().contains('@') {
            return Err(bad());
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Origin {
            tls,
            host: host.to_string(),
            port: auth.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }

    /// The `Host` field for it (the port only when not the default).
    pub(crate) fn host_field(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// A new connection: the host's addresses resolved off the shard
    /// (cached per shard) and raced with Happy Eyeballs, by the
    /// framework's connect.
    pub(crate) async fn connect(&self, opts: &ClientOptions) -> io::Result<ClientStream> {
        let mut c = Connect::host(self.host.clone(), self.port).timeout(opts.connect_timeout);
        if self.tls {
            let Some(tls) = &opts.tls else {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "an https:// URL needs ClientOptions::tls",
                ));
            };
            c = c.tls(tls.clone(), self.host.clone());
        }
        ClientStream::connect(c).await.map_err(|e| {
            if crate::reactor::is_unresolved(&e) {
                e
            } else {
                // Named: which origin did not answer.
                io::Error::new(e.kind(), format!("{}: {e}", self.host_field()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_host_fields() {
        let o = |u: &str| Origin::of(&u.parse().unwrap());
        let a = o("http://example.com/x").unwrap();
        assert_eq!((a.tls, a.host.as_str(), a.port), (false, "example.com", 80));
        assert_eq!(a.host_field(), "example.com");
        let b = o("https://[::1]:8443/").unwrap();
        assert_eq!((b.tls, b.host.as_str(), b.port), (true, "::1", 8443));
        assert_eq!(b.host_field(), "[::1]:8443");
        assert!(o("/relative").is_err());
        assert!(o("ftp://h/").is_err());
        assert!(o("http://user@h/").is_err());
    }
}
