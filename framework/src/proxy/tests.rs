//! PROXY header parsing: versions 1 and 2, every split of the input, the
//! exact limits, and malformed headers (each with the reason it gives).

use super::header::{parse, Parsed, V1_MAX, V2_MAX, V2_SIGNATURE};
use super::layer::ProxyLayer;
use super::{ProxiedAddrs, ProxyHeader};
use crate::net::{BufPool, WriteBuf};
use crate::reactor::{Layer, WireSink};
use crate::CloseReason;
use std::net::SocketAddr;

/// Feeds `input` to a fresh layer in pieces of `piece` bytes; returns the
/// header and the bytes passed through, or the failure.
fn feed(input: &[u8], piece: usize) -> Result<(ProxyHeader, Vec<u8>), CloseReason> {
    let mut layer = ProxyLayer::new(None, false);
    let (mut out, mut pool) = (WriteBuf::default(), BufPool::default());
    let mut app = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        let mut wire = WireSink {
            out: &mut out,
            pool: &mut pool,
        };
        layer.ingest(chunk, &mut app, &mut wire)?;
    }
    assert!(out.is_empty(), "a server-side PROXY layer never writes");
    match layer.proxy_header() {
        Some(h) => Ok((h.clone(), app)),
        None => Err(CloseReason::ProtocolError("incomplete".into())),
    }
}

fn tcp(src: &str, dst: &str) -> ProxiedAddrs {
    ProxiedAddrs::Tcp {
        source: src.parse::<SocketAddr>().unwrap(),
        destination: dst.parse::<SocketAddr>().unwrap(),
    }
}

fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp4(payload: &[u8]) -> Vec<u8> {
    let mut body = vec![192, 168, 0, 1, 10, 0, 0, 2];
    body.extend_from_slice(&56324u16.to_be_bytes());
    body.extend_from_slice(&443u16.to_be_bytes());
    // A TLV (PP2_TYPE_AUTHORITY "example.com"), which is skipped.
    body.extend_from_slice(&[0x02, 0x00, 0x0b]);
    body.extend_from_slice(b"example.com");
    let mut h = v2(1, 0x11, &body);
    h.extend_from_slice(payload);
    h
}

#[test]
fn valid_headers_in_every_split_give_the_same_result() {
    let mut v6body = Vec::new();
    v6body.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6body.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6body.extend_from_slice(&1234u16.to_be_bytes());
    v6body.extend_from_slice(&80u16.to_be_bytes());
    let mut v6 = v2(1, 0x21, &v6body);
    v6.extend_from_slice(b"GET /");
    let cases: Vec<(Vec<u8>, ProxyHeader, &[u8])> = vec![
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /".to_vec(),
            ProxyHeader {
                version: 1,
                addrs: tcp("192.168.0.1:56324", "192.168.0.11:443"),
            },
            b"GET /",
        ),
        (
            b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\nGET /".to_vec(),
            ProxyHeader {
                version: 1,
                addrs: tcp("[2001:db8::1]:65535", "[::1]:0"),
            },
            b"GET /",
        ),
        (
            b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nGET /".to_vec(),
            ProxyHeader {
                version: 1,
                addrs: ProxiedAddrs::Unknown,
            },
            b"GET /",
        ),
        (
            b"PROXY UNKNOWN\r\n".to_vec(),
            ProxyHeader {
                version: 1,
                addrs: ProxiedAddrs::Unknown,
            },
            b"",
        ),
        (
            v2_tcp4(b"GET /"),
            ProxyHeader {
                version: 2,
                addrs: tcp("192.168.0.1:56324", "10.0.0.2:443"),
            },
            b"GET /",
        ),
        (
            v6,
            ProxyHeader {
                version: 2,
                addrs: tcp("[2001:db8::1]:1234", "[2001:db8::2]:80"),
            },
            b"GET /",
        ),
        // LOCAL (a health check): the proxy's own addresses stay.
        (
            v2(0, 0x00, &[]),
            ProxyHeader {
                version: 2,
                addrs: ProxiedAddrs::Unknown,
            },
            b"",
        ),
        // UDP over v2 is carried but not a TCP peer.
        (
            v2(1, 0x12, &[0; 12]),
            ProxyHeader {
                version: 2,
                addrs: ProxiedAddrs::Unknown,
            },
            b"",
        ),
    ];
    for (input, want, rest) in cases {
        for piece in 1..=input.len() {
            let (h, app) =
                feed(&input, piece).unwrap_or_else(|e| panic!("{input:?} in {piece}s: {e}"));
            assert_eq!(h, want, "{input:?} in pieces of {piece}");
            assert_eq!(app, rest, "{input:?} in pieces of {piece}");
        }
    }
}

fn reason(input: &[u8]) -> String {
    match feed(input, input.len()) {
        Err(CloseReason::ProtocolError(why)) => why,
        other => panic!("{input:?}: {other:?}"),
    }
}

#[test]
fn malformed_headers_are_refused_with_a_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", "no PROXY header"),
        (b"PROXZ TCP4", "no PROXY header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n", "not a port"),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999999999999999999 80\r\n",
            "not a port",
        ),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 80\r\n", "not an IPv4"),
        (b"PROXY TCP4 ::1 ::1 1 80\r\n", "not an IPv4"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 80\r\n", "not an IPv6"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 80\r\n", "unknown protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "needs protocol"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 80\r\n", "needs protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 80\n", "CRLF"),
        (b"\r\n\r\n\0\r\nQUIX\n", "no PROXY header"),
    ];
    for (input, want) in cases {
        let why = reason(input);
        assert!(why.contains(want), "{input:?}: {why}");
    }
    let bad_version = {
        let mut h = v2(1, 0x11, &[0; 12]);
        h[12] = 0x11;
        h
    };
    assert!(reason(&bad_version).contains("version 1 in a version 2"));
    assert!(reason(&v2(2, 0x11, &[0; 12])).contains("unknown command"));
    assert!(reason(&v2(1, 0x41, &[0; 12])).contains("family"));
    assert!(reason(&v2(1, 0x21, &[0; 12])).contains("needs 36"));
}

#[test]
fn the_exact_limits_and_one_past() {
    // Version 1: the longest TCP6 line is 104 bytes; the spec's cap is 107.
    let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), 104);
    assert!(feed(longest, 1).is_ok());
    let mut unknown = b"PROXY UNKNOWN ".to_vec();
    unknown.resize(V1_MAX - 2, b'x');
    unknown.extend_from_slice(b"\r\n");
    assert!(feed(&unknown, 7).is_ok(), "exactly {V1_MAX}");
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(V1_MAX + 5, b'x');
    for piece in [1, 13, too_long.len()] {
        let e = feed(&too_long, piece).unwrap_err();
        assert!(e.to_string().contains("longer than 107"), "{e}");
    }
    // Version 2: the largest accepted header, then one byte more.
    let body = vec![0u8; V2_MAX - 16];
    let max = v2(1, 0x11, &body);
    assert_eq!(
        feed(&max, 1000).unwrap().0.addrs,
        tcp("0.0.0.0:0", "0.0.0.0:0")
    );
    let over = v2(1, 0x11, &vec![0u8; V2_MAX - 15]);
    assert!(reason(&over).contains("at most"));
    // The length field is checked before the body arrives: no buffering of 64 KiB.
    assert!(parse(&over[..16]).is_err());
    assert_eq!(parse(&max[..16]), Ok(Parsed::Need(V2_MAX)));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_never_pass_unchecked(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), piece in 1usize..40) {
        if let Ok((h, rest)) = feed(&data, piece) {
            // Whatever was accepted parses the same in one piece.
            let (h1, rest1) = feed(&data, data.len()).unwrap();
            proptest::prop_assert_eq!(h, h1);
            proptest::prop_assert_eq!(rest, rest1);
        }
    }
}
