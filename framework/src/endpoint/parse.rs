//! Splitting an endpoint description into its type, positional and named
//! fields, and reading typed values with errors that name the field.

use super::EndpointError;
use crate::api::{ProxyTrust, UntrustedProxy};
use crate::net::{Keepalive, SocketOptions};
use std::net::IpAddr;
use std::time::Duration;

/// Splits on unescaped `:` and unescapes `\:` and `\\`.
pub(super) fn split(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    parts.last_mut().expect("one part").push(n);
                }
            }
            ':' => parts.push(String::new()),
            _ => parts.last_mut().expect("one part").push(c),
        }
    }
    parts
}

pub(super) struct Parsed<'a> {
    pub(super) input: &'a str,
    pub(super) kind: String,
    pub(super) positional: Vec<String>,
    pub(super) named: Vec<(String, String)>,
}

impl<'a> Parsed<'a> {
    pub(super) fn new(input: &'a str) -> Result<Self, EndpointError> {
        let mut parts = split(input).into_iter();
        let kind = parts.next().unwrap_or_default();
        let mut positional = Vec::new();
        let mut named = Vec::new();
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) => named.push((k.to_string(), v.to_string())),
                None => positional.push(p),
            }
        }
        Ok(Parsed {
            input,
            kind,
            positional,
            named,
        })
    }

    pub(super) fn err(&self, field: &str, reason: impl Into<String>) -> EndpointError {
        EndpointError {
            input: self.input.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// A named value, or the `pos`-th positional one.
    pub(super) fn get(&self, name: &str, pos: Option<usize>) -> Option<&str> {
        self.named
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| pos.and_then(|i| self.positional.get(i).map(|s| s.as_str())))
    }

    pub(super) fn check_names(&self, allowed: &[&str]) -> Result<(), EndpointError> {
        for (k, _) in &self.named {
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(k, format!("unknown field (known: {})", allowed.join(", "))));
            }
        }
        Ok(())
    }

    pub(super) fn port(&self) -> Result<u16, EndpointError> {
        let v = self
            .get("port", Some(0))
            .ok_or_else(|| self.err("port", "missing"))?;
        v.parse()
            .map_err(|_| self.err("port", format!("{v:?} is not a port number (0-65535)")))
    }

    pub(super) fn backlog(&self) -> Result<Option<i32>, EndpointError> {
        self.get("backlog", None)
            .map(|v| {
                v.parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.err("backlog", format!("{v:?} is not a positive number")))
            })
            .transpose()
    }

    pub(super) fn timeout(&self) -> Result<Option<Duration>, EndpointError> {
        self.get("timeout", None)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        self.err(
                            "timeout",
                            format!("{v:?} is not a positive number of seconds"),
                        )
                    })
            })
            .transpose()
    }

    pub(super) fn ip(&self, field: &str, v6: bool) -> Result<Option<IpAddr>, EndpointError> {
        self.get(field, None)
            .map(|v| {
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| self.err(field, format!("{v:?} is not an IP address")))?;
                if ip.is_ipv6() != v6 {
                    return Err(self.err(
                        field,
                        format!(
                            "{v:?} is not an {} address",
                            if v6 { "IPv6" } else { "IPv4" }
                        ),
                    ));
                }
                Ok(ip)
            })
            .transpose()
    }

    fn flag(&self, field: &str) -> Result<Option<bool>, EndpointError> {
        match self.get(field, None) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(self.err(field, format!("{v:?} is not true or false"))),
        }
    }

    fn number<T: std::str::FromStr>(
        &self,
        field: &str,
        what: &str,
    ) -> Result<Option<T>, EndpointError> {
        self.get(field, None)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| self.err(field, format!("{v:?} is not {what}")))
            })
            .transpose()
    }

    fn seconds(&self, field: &str) -> Result<Option<Duration>, EndpointError> {
        let Some(s) = self.number::<f64>(field, "a number of seconds")? else {
            return Ok(None);
        };
        if !(s.is_finite() && s > 0.0 && s <= 1e9) {
            return Err(self.err(field, format!("{s} is not a positive number of seconds")));
        }
        Ok(Some(Duration::from_secs_f64(s)))
    }

    /// `proxyProtocol=true|false`, `proxyTrusted=CIDR,CIDR…` (an address
    /// alone is one host; IPv6 colons escaped as `\:`) and
    /// `proxyUntrusted=refuse|ignore`.
    pub(super) fn proxy(&self) -> Result<Option<ProxyTrust>, EndpointError> {
        let on = self.flag("proxyProtocol")?.unwrap_or(false);
        let from = self
            .get("proxyTrusted", None)
            .map(|list| {
                list.split(',')
                    .map(|n| {
                        let n = n.trim();
                        n.parse::<ipnet::IpNet>()
                            .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| {
                                self.err("proxyTrusted", format!("{n:?} is not an address or CIDR"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let untrusted = match self.get("proxyUntrusted", None) {
            None | Some("refuse") => UntrustedProxy::Refuse,
            Some("ignore") => UntrustedProxy::Ignore,
            Some(v) => {
                return Err(self.err("proxyUntrusted", format!("{v:?} is not refuse or ignore")))
            }
        };
        for field in ["proxyTrusted", "proxyUntrusted"] {
            if !on && self.get(field, None).is_some() {
                return Err(self.err(field, "needs proxyProtocol=true"));
            }
        }
        Ok(on.then_some(ProxyTrust { from, untrusted }))
    }

    /// The socket option fields ([`SOCKET_FIELDS`]).
    pub(super) fn socket_options(&self) -> Result<SocketOptions, EndpointError> {
        let interval = self.seconds("keepAliveInterval")?;
        let count = self.number::<u32>("keepAliveCount", "a count of probes")?;
        let keepalive = match self.seconds("keepAlive")? {
            Some(idle) => Some(Keepalive {
                idle,
                interval,
                count,
            }),
            None if interval.is_some() || count.is_some() => {
                return Err(self.err(
                    "keepAlive",
                    "missing (keepAliveInterval and keepAliveCount need it)",
                ))
            }
            None => None,
        };
        Ok(SocketOptions {
            nodelay: self.flag("noDelay")?,
            keepalive,
            recv_buffer: self.number("rcvBuf", "a size in bytes")?,
            send_buffer: self.number("sndBuf", "a size in bytes")?,
            user_timeout: self.seconds("userTimeout")?,
            fastopen: self.number("fastOpen", "a queue length")?,
            ipv6_only: self.flag("v6Only")?,
            backlog: self.backlog()?,
            reuse_port: self.flag("reusePort")?,
        })
    }
}

/// The socket option fields a TCP or TLS listener takes.
pub(super) const SOCKET_FIELDS: &[&str] = &[
    "proxyProtocol",
    "proxyTrusted",
    "proxyUntrusted",
    "backlog",
    "reusePort",
    "noDelay",
    "keepAlive",
    "keepAliveInterval",
    "keepAliveCount",
    "rcvBuf",
    "sndBuf",
    "userTimeout",
    "fastOpen",
    "v6Only",
];
