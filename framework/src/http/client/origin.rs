//! Where a request goes: its origin (scheme, host, port), resolved and
//! connected without blocking the shard.

use super::{ClientError, ClientOptions};
use crate::client::ClientStream;
use crate::endpoint::Connect;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

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

/// How long a resolved name is reused on a shard.
const NAME_TTL: Duration = Duration::from_secs(30);

/// Names resolved on a shard: (host, port) → until when, and the addresses.
type NameCache = HashMap<(String, u16), (Instant, Vec<SocketAddr>)>;

thread_local! {
    static NAMES: RefCell<NameCache> = RefCell::new(HashMap::new());
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

    /// The addresses of the host: an IP literal as is; a name from this
    /// shard's cache, or resolved by the system resolver on a thread of
    /// its own (the shard goes on meanwhile).
    async fn addresses(&self) -> Result<Vec<SocketAddr>, ClientError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let key = (self.host.clone(), self.port);
        let now = Instant::now();
        let cached = NAMES.with(|n| {
            n.borrow()
                .get(&key)
                .filter(|(until, _)| *until > now)
                .map(|(_, a)| a.clone())
        });
        if let Some(a) = cached {
            return Ok(a);
        }
        let (promise, resolver) = crate::task::promise();
        let (host, port) = key.clone();
        std::thread::Builder::new()
            .name("shardloop-resolve".into())
            .spawn(move || {
                resolver.resolve((host.as_str(), port).to_socket_addrs().map(Vec::from_iter))
            })
            .map_err(|error| ClientError::Resolve {
                host: self.host.clone(),
                error,
            })?;
        let resolved = promise.await.unwrap_or_else(|_| {
            Err(io::Error::other(
                "the resolver thread ended without an answer",
            ))
        });
        let addrs = resolved
            .and_then(|a| {
                if a.is_empty() {
                    Err(io::Error::new(io::ErrorKind::NotFound, "no address"))
                } else {
                    Ok(a)
                }
            })
            .map_err(|error| ClientError::Resolve {
                host: self.host.clone(),
                error,
            })?;
        NAMES.with(|n| n.borrow_mut().insert(key, (now + NAME_TTL, addrs.clone())));
        Ok(addrs)
    }

    /// A new connection: each address in turn until one answers.
    pub(crate) async fn connect(&self, opts: &ClientOptions) -> io::Result<ClientStream> {
        let addrs = self.addresses().await.map_err(|e| match e {
            ClientError::Resolve { error, .. } => error,
            other => io::Error::other(other.to_string()),
        })?;
        let mut last = None;
        for addr in addrs {
            let mut c = Connect::tcp(addr).timeout(opts.connect_timeout);
            if self.tls {
                let Some(tls) = &opts.tls else {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "an https:// URL needs ClientOptions::tls",
                    ));
                };
                c = c.tls(tls.clone(), self.host.clone());
            }
            match ClientStream::connect(c).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(io::Error::new(e.kind(), format!("{addr}: {e}"))),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no address")))
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
