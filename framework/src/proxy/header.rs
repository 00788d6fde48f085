//! The PROXY protocol header (HAProxy's spec, versions 1 and 2): a pure,
//! incremental parser. It is given the bytes received so far and says
//! "need more", "here is the header and its length", or why the bytes are
//! not a valid header. Input is capped, numbers are checked, and a header
//! split at any byte parses the same.

use crate::api::{ProxiedAddrs, ProxyHeader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
pub(crate) const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is at most 107 bytes, CRLF included.
pub(crate) const V1_MAX: usize = 107;
/// The largest version 2 header accepted (16-byte prefix plus addresses and
/// TLVs); the format allows 64 KiB, proxies send a few hundred bytes.
pub(crate) const V2_MAX: usize = 16 + 4096;

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PROXY protocol: {0}")]
pub struct ProxyError(pub String);

fn bad<T>(why: impl Into<String>) -> Result<T, ProxyError> {
    Err(ProxyError(why.into()))
}

/// The outcome of looking at the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not enough bytes yet: at least this many are needed in all.
    Need(usize),
    /// A header of this many bytes.
    Done(ProxyHeader, usize),
}

/// Parses the header at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(&first) = buf.first() else {
        return Ok(Parsed::Need(1));
    };
    match first {
        b'P' => parse_v1(buf),
        b'\r' => parse_v2(buf),
        _ => bad("no PROXY header (the connection must start with one)"),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = b"PROXY ";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        return bad("no PROXY header (the connection must start with one)");
    }
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        if buf.len() >= V1_MAX {
            return bad(format!("version 1 header longer than {V1_MAX} bytes"));
        }
        return Ok(Parsed::Need(buf.len() + 1));
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return bad("version 1 header must end with CRLF");
    }
    let line = std::str::from_utf8(&buf[prefix.len()..end - 1])
        .map_err(|_| ProxyError("version 1 header is not ASCII".into()))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let addrs = match fields.as_slice() {
        ["UNKNOWN", ..] => ProxiedAddrs::Unknown,
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *proto == "TCP6";
            ProxiedAddrs::Tcp {
                source: SocketAddr::new(ip(src, v6)?, port(sport)?),
                destination: SocketAddr::new(ip(dst, v6)?, port(dport)?),
            }
        }
        [proto, ..] if !matches!(*proto, "TCP4" | "TCP6") => {
            return bad(format!(
                "unknown protocol {proto:?} (TCP4, TCP6 or UNKNOWN)"
            ))
        }
        _ => return bad("version 1 header needs protocol, two addresses and two ports"),
    };
    Ok(Parsed::Done(ProxyHeader { version: 1, addrs }, end + 1))
}

fn ip(s: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let parsed = if v6 {
        s.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    parsed.map_err(|_| {
        ProxyError(format!(
            "{s:?} is not an {} address",
            if v6 { "IPv6" } else { "IPv4" }
        ))
    })
}

fn port(s: &str) -> Result<u16, ProxyError> {
    let ok = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = s.len() > 1 && s.starts_with('0');
    match s.parse::<u16>() {
        Ok(p) if ok && !leading_zero => Ok(p),
        _ => bad(format!(
            "{s:?} is not a port (0-65535, no sign or leading zero)"
        )),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return bad("no PROXY header (the connection must start with one)");
    }
    if buf.len() < 16 {
        return Ok(Parsed::Need(16));
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return bad(format!("version {} in a version 2 header", ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        c => return bad(format!("unknown command {c} (LOCAL or PROXY)")),
    };
    let fam = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let total = 16 + len;
    if total > V2_MAX {
        return bad(format!(
            "version 2 header of {total} bytes (at most {V2_MAX})"
        ));
    }
    if buf.len() < total {
        return Ok(Parsed::Need(total));
    }
    let body = &buf[16..total];
    let (family, transport) = (fam >> 4, fam & 0x0f);
    if family > 3 || transport > 2 {
        return bad(format!("unknown address family/protocol byte {fam:#04x}"));
    }
    let need = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body.len() < need {
        return bad(format!(
            "address block of {} bytes for family {family} (needs {need})",
            body.len()
        ));
    }
    let addrs = if local || transport != 1 {
        ProxiedAddrs::Unknown
    } else {
        match family {
            1 => {
                let a = |i: usize| Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]);
                let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
                ProxiedAddrs::Tcp {
                    source: SocketAddr::new(a(0).into(), p(8)),
                    destination: SocketAddr::new(a(4).into(), p(10)),
                }
            }
            2 => {
                let a = |i: usize| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&body[i..i + 16]);
                    Ipv6Addr::from(o)
                };
                let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
                ProxiedAddrs::Tcp {
                    source: SocketAddr::new(a(0).into(), p(32)),
                    destination: SocketAddr::new(a(16).into(), p(34)),
                }
            }
            _ => ProxiedAddrs::Unknown,
        }
    };
    Ok(Parsed::Done(ProxyHeader { version: 2, addrs }, total))
}
