//! Splitting an endpoint description into its type, positional and named
//! fields, and reading typed values with errors that name the field.

use super::EndpointError;
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
}
