//! Per-connection request encoding and response validation for each workload.

use crate::config::{ResponseFrame, Workload};
use crate::recorder::ErrorKind;

/// Longest response the parsers buffer before calling it malformed.
pub(crate) const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// The longest response head (status line and headers), or chunk trailers.
const MAX_HEAD: usize = 64 * 1024;

/// Result of looking for one response at the front of the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Need more bytes: nothing can change before `need` bytes are
    /// buffered (in all), and the first `searched` hold no frame end.
    Incomplete { need: usize, searched: usize },
    /// One response of `consumed` bytes; `Err` if it was wrong but framing
    /// is intact (the connection can go on).
    Done {
        consumed: usize,
        result: Result<(), ErrorKind>,
        /// The HTTP status (0 for other workloads).
        status: u16,
    },
    /// Malformed beyond recovery: the connection must be dropped.
    Fatal,
}

pub(crate) struct Codec {
    workload: Workload,
    /// The request bytes for RESP/HTTP/custom, prebuilt.
    fixed: Vec<Vec<u8>>,
    /// Echo/line messages are windows of this random table, one offset per
    /// request: building one is a copy and checking a reply a `memcmp`.
    table: Vec<u8>,
}

/// Distinct offsets into the pattern table (a prime): consecutive requests
/// (up to this many apart) never share one.
const OFFSETS: usize = 251;

/// Where request `seq`'s message starts in the table: a swapped or
/// reordered reply starts elsewhere, and the table has no period, so a
/// shifted or corrupted one does not match either.
fn offset(seq: u64) -> usize {
    ((seq % OFFSETS as u64) as usize * 97) % OFFSETS
}

/// Printable bytes, never a newline, from a fixed seed.
fn pattern_table(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(0x5eed_1e55);
    (0..len).map(|_| b'!' + rng.u8(0..90)).collect()
}

impl Codec {
    pub(crate) fn new(workload: &Workload) -> Self {
        let fixed = match workload {
            Workload::Http {
                path,
                host,
                headers,
                method,
                body,
            } => {
                let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
                for (k, v) in headers {
                    r.push_str(&format!("{k}: {v}\r\n"));
                }
                let has_length = headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
                if !body.is_empty() && !has_length {
                    r.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                r.push_str("\r\n");
                let mut r = r.into_bytes();
                r.extend_from_slice(body);
                vec![r]
            }
            Workload::Resp { commands } => commands
                .iter()
                .map(|args| {
                    let mut r = format!("*{}\r\n", args.len()).into_bytes();
                    for a in args {
                        r.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                        r.extend_from_slice(a.as_bytes());
                        r.extend_from_slice(b"\r\n");
                    }
                    r
                })
                .collect(),
            Workload::Custom { payload, .. } => vec![payload.clone()],
            Workload::Echo { .. } | Workload::Line { .. } => Vec::new(),
        };
        let table = match workload {
            Workload::Echo { size } | Workload::Line { size } => pattern_table(size + OFFSETS),
            _ => Vec::new(),
        };
        Codec {
            workload: workload.clone(),
            fixed,
            table,
        }
    }

    fn message(&self, seq: u64, len: usize) -> &[u8] {
        let at = offset(seq);
        &self.table[at..at + len]
    }

    /// The longest request this workload sends (RESP cycles through its
    /// commands, which differ in length).
    pub(crate) fn max_request_len(&self) -> usize {
        match &self.workload {
            Workload::Echo { size } | Workload::Line { size } => *size,
            _ => self.fixed.iter().map(Vec::len).max().unwrap_or(0),
        }
    }

    /// Appends request `seq` to `out`.
    pub(crate) fn encode(&self, seq: u64, out: &mut Vec<u8>) {
        match &self.workload {
            Workload::Echo { size } => out.extend_from_slice(self.message(seq, *size)),
            Workload::Line { size } => {
                out.extend_from_slice(self.message(seq, size - 1));
                out.push(b'\n');
            }
            _ => out.extend_from_slice(&self.fixed[(seq as usize) % self.fixed.len()]),
        }
    }

    /// Looks for the response to request `seq` at the start of `buf`,
    /// knowing that its first `searched` bytes hold no frame end (from an
    /// earlier `Incomplete` on a prefix of `buf`): delimiter searches resume
    /// there, so a response arriving in many pieces costs linear time.
    pub(crate) fn decode(&self, buf: &[u8], seq: u64, searched: usize) -> Decoded {
        let more = |searched: usize| Decoded::Incomplete {
            need: buf.len() + 1,
            searched,
        };
        match &self.workload {
            Workload::Echo { size } => {
                if buf.len() < *size {
                    return Decoded::Incomplete {
                        need: *size,
                        searched: 0,
                    };
                }
                let ok = buf[..*size] == *self.message(seq, *size);
                Decoded::Done {
                    status: 0,
                    consumed: *size,
                    result: if ok { Ok(()) } else { Err(ErrorKind::Protocol) },
                }
            }
            Workload::Line { size } => {
                let from = searched.min(buf.len());
                match buf[from..].iter().position(|&b| b == b'\n') {
                    None if buf.len() > MAX_RESPONSE => Decoded::Fatal,
                    None => more(buf.len()),
                    Some(i) => {
                        let end = from + i;
                        let line = &buf[..end];
                        let ok = line.len() == size - 1 && line == self.message(seq, size - 1);
                        Decoded::Done {
                            status: 0,
                            consumed: end + 1,
                            result: if ok { Ok(()) } else { Err(ErrorKind::Protocol) },
                        }
                    }
                }
            }
            Workload::Http { .. } => {
                if searched & CHUNKS != 0 {
                    // The head is complete and the body chunked: the chunks
                    // before this offset were checked already.
                    return decode_http(buf, searched & !CHUNKS);
                }
                // No head end yet: nothing for httparse to do.
                let from = searched.saturating_sub(3).min(buf.len());
                if find(&buf[from..], b"\r\n\r\n").is_none() {
                    return if buf.len() > MAX_HEAD {
                        Decoded::Fatal
                    } else {
                        more(buf.len())
                    };
                }
                decode_http(buf, 0)
            }
            Workload::Resp { .. } => match resp_value(buf, 0) {
                Ok(Some((consumed, is_error))) => Decoded::Done {
                    status: 0,
                    consumed,
                    result: if is_error {
                        Err(ErrorKind::Status)
                    } else {
                        Ok(())
                    },
                },
                Ok(None) if buf.len() > MAX_RESPONSE => Decoded::Fatal,
                Ok(None) => more(0),
                Err(()) => Decoded::Fatal,
            },
            Workload::Custom { response, .. } => match response {
                ResponseFrame::Length(n) => {
                    if buf.len() >= *n {
                        Decoded::Done {
                            status: 0,
                            consumed: *n,
                            result: Ok(()),
                        }
                    } else {
                        Decoded::Incomplete {
                            need: *n,
                            searched: 0,
                        }
                    }
                }
                ResponseFrame::Delimiter(d) => {
                    let from = searched.saturating_sub(d.len() - 1).min(buf.len());
                    match find(&buf[from..], d) {
                        Some(at) => Decoded::Done {
                            status: 0,
                            consumed: from + at + d.len(),
                            result: Ok(()),
                        },
                        None if buf.len() > MAX_RESPONSE => Decoded::Fatal,
                        None => more(buf.len()),
                    }
                }
            },
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let at = memchr::memmem::find(hay, needle);
    #[cfg(test)]
    SCANNED.with(|s| s.set(s.get() + at.map_or(hay.len(), |i| i + needle.len())));
    at
}

#[cfg(test)]
thread_local! {
    /// Bytes `find` looked at on this thread: the tests check that decoding
    /// a response costs time linear in its size however it arrives.
    pub(crate) static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// In `Decoded::Incomplete::searched` for HTTP: the head is complete, the
/// body chunked, and the chunk scan resumes at the offset in the low bits
/// (so a body of many small chunks arriving in many reads is scanned once).
const CHUNKS: usize = 1 << (usize::BITS - 1);

/// An HTTP response at the start of `buf`; `resume`: where the chunk scan
/// stopped last time (0: from the body's start).
fn decode_http(buf: &[u8], resume: usize) -> Decoded {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Decoded::Fatal,
        Ok(httparse::Status::Partial) => {
            return Decoded::Incomplete {
                need: buf.len() + 1,
                searched: 0,
            }
        }
        Err(_) => return Decoded::Fatal,
    };
    let status = resp.code.unwrap_or(0);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => content_length = Some(n),
                None => return Decoded::Fatal,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = std::str::from_utf8(h.value)
                .map(|v| v.to_ascii_lowercase().contains("chunked"))
                .unwrap_or(false);
        }
    }
    let body = &buf[head_len..];
    let body_len = if chunked {
        match chunked_len(body, resume.saturating_sub(head_len)) {
            Ok(Chunked::Done(n)) => n,
            Ok(Chunked::Need(n, at)) => {
                return Decoded::Incomplete {
                    need: head_len + n,
                    searched: CHUNKS | (head_len + at),
                }
            }
            Err(()) => return Decoded::Fatal,
        }
    } else if let Some(n) = content_length {
        if n > MAX_RESPONSE {
            return Decoded::Fatal;
        }
        if body.len() < n {
            return Decoded::Incomplete {
                need: head_len + n,
                searched: 0,
            };
        }
        n
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        0
    } else {
        // Keep-alive needs framing; a response delimited by close is not
        // something a load test can pipeline.
        return Decoded::Fatal;
    };
    Decoded::Done {
        status,
        consumed: head_len + body_len,
        result: if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ErrorKind::Status)
        },
    }
}

/// Where a chunked body stands.
enum Chunked {
    /// Complete: its length, trailers included.
    Done(usize),
    /// Incomplete: nothing can be decided before this many body bytes (a
    /// large chunk is waited for whole, not rescanned at every read), and
    /// the chunks before the second offset are complete and checked.
    Need(usize, usize),
}

/// Length of a complete chunked body (trailers included), if all there;
/// the chunks before `from` were checked by an earlier call.
fn chunked_len(body: &[u8], from: usize) -> Result<Chunked, ()> {
    let mut pos = from.min(body.len());
    loop {
        let Some(eol) = find(&body[pos..], b"\r\n") else {
            return if body.len() - pos > 1024 {
                Err(())
            } else {
                Ok(Chunked::Need(body.len() + 1, pos))
            };
        };
        let line = std::str::from_utf8(&body[pos..pos + eol]).map_err(|_| ())?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| ())?;
        if size > MAX_RESPONSE || pos > MAX_RESPONSE {
            return Err(());
        }
        let line_start = pos;
        pos += eol + 2;
        if size == 0 {
            // Trailers end with an empty line (rescanned from the last
            // chunk's line until they do: they are at most MAX_HEAD).
            loop {
                let Some(eol) = find(&body[pos..], b"\r\n") else {
                    return if body.len() - pos > MAX_HEAD {
                        Err(())
                    } else {
                        Ok(Chunked::Need(body.len() + 1, line_start))
                    };
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Chunked::Done(pos));
                }
            }
        }
        if body.len() < pos + size + 2 {
            return Ok(Chunked::Need(pos + size + 2, line_start));
        }
        if &body[pos + size..pos + size + 2] != b"\r\n" {
            return Err(());
        }
        pos += size + 2;
    }
}

/// Parses one RESP value; returns (length, is_error_reply), `None` if incomplete.
fn resp_value(buf: &[u8], depth: usize) -> Result<Option<(usize, bool)>, ()> {
    if depth > 32 {
        return Err(());
    }
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(eol) = find(buf, b"\r\n") else {
        return if buf.len() > 64 * 1024 {
            Err(())
        } else {
            Ok(None)
        };
    };
    let line = &buf[1..eol];
    let num = || -> Result<i64, ()> {
        std::str::from_utf8(line)
            .map_err(|_| ())?
            .parse::<i64>()
            .map_err(|_| ())
    };
    match kind {
        b'+' => Ok(Some((eol + 2, false))),
        b'-' => Ok(Some((eol + 2, true))),
        b':' => num().map(|_| Some((eol + 2, false))),
        b'$' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((eol + 2, false)));
            }
            let n = n as usize;
            if n > MAX_RESPONSE {
                return Err(());
            }
            let end = eol + 2 + n + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(());
            }
            Ok(Some((end, false)))
        }
        b'*' => {
            let n = num()?;
            let mut pos = eol + 2;
            let mut err = false;
            for _ in 0..n.max(0) {
                match resp_value(&buf[pos..], depth + 1)? {
                    Some((len, e)) => {
                        pos += len;
                        err |= e;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((pos, err)))
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests;
