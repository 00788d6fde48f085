//! Benchmarks for shardloop: criterion micro-benchmarks (`benches/micro.rs`),
//! peer servers written here for comparison (`peer_mio`, `peer_tokio`), an
//! independent echo client (`echo_client`) and the side-by-side runner
//! (`compare`).
//!
//! The peers answer exactly like shardloop's examples: echo returns every
//! byte; HTTP parses each request with `httparse` (as `http_hello` does) and
//! answers "Hello, World!" with keep-alive and pipelining.

#![forbid(unsafe_code)]

/// The HTTP response every plaintext server in the comparison sends.
pub const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: shardloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// Parses the complete requests at the front of `buf`. Returns how many
/// there were and how many bytes they took; `None` on a malformed request.
pub fn complete_requests(mut buf: &[u8]) -> Option<(usize, usize)> {
    let (mut n, mut used) = (0, 0);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                n += 1;
                used += len;
                buf = &buf[len..];
            }
            Ok(httparse::Status::Partial) => return Some((n, used)),
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pipelined_requests() {
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /par";
        assert_eq!(complete_requests(two), Some((2, 55)));
        assert!(complete_requests(b"\x00\x01 nonsense\r\n\r\n").is_none());
    }
}
