//! Per-connection request encoding and response validation for each workload.

use crate::config::{ResponseFrame, Workload};
use crate::recorder::ErrorKind;
use crate::template::{push_int, Draws, Sizes, Template, Vars};
use shardloop::http::response_head::{parse_response, BodyProgress, ResponseFraming};
use shardloop::http::ws::frame::{self, opcode, FrameHead};
use std::sync::Arc;

/// Longest response the parsers buffer before calling it malformed.
pub(crate) const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// The longest response head (status line and headers), or chunk trailers.
const MAX_HEAD: usize = 64 * 1024;

/// Result of looking for one response at the front of the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Need more bytes: nothing can change before `need` bytes are
    /// buffered (in all). Where the search stands is in the `Progress`.
    Incomplete { need: usize },
    /// One response of `consumed` bytes; `Err` if it was wrong but framing
    /// is intact (the connection can go on).
    Done {
        consumed: usize,
        result: Result<(), ErrorKind>,
        /// The HTTP status (0 for other workloads).
        status: u16,
    },
    /// A frame that answers no request (a WebSocket ping or pong) of
    /// `consumed` bytes: skipped.
    Skip { consumed: usize },
    /// Malformed beyond recovery: the connection must be dropped.
    Fatal,
}

/// Where the decoding of one response stands, between reads: the bytes
/// known to hold no frame end, and for HTTP the body read so far (so a
/// response arriving in many pieces costs time linear in its size).
#[derive(Default)]
pub(crate) struct Progress {
    searched: usize,
    http: Option<HttpBody>,
}

/// An HTTP response whose head was read.
struct HttpBody {
    status: u16,
    /// Bytes of the response fed to `body` so far (the head included).
    fed: usize,
    /// Body bytes so far (capped at `MAX_RESPONSE`).
    len: usize,
    body: BodyProgress,
}

pub(crate) struct Codec {
    workload: Workload,
    /// The request bytes for RESP/HTTP/custom, prebuilt.
    fixed: Vec<Vec<u8>>,
    /// Requests that vary: their compiled templates (None: `fixed`).
    templated: Option<Templated>,
    vars: Arc<Vars>,
    /// Echo, line and WebSocket messages of varying sizes (`--sizes`).
    sizes: Option<Arc<Sizes>>,
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

/// A workload's requests as templates (some part names a variable).
enum Templated {
    Http {
        method: Template,
        path: Template,
        host: String,
        headers: Vec<(String, Template)>,
        body: Template,
        /// The headers give a Content-Length of their own.
        has_length: bool,
    },
    /// Each command's arguments.
    Resp(Vec<Vec<Template>>),
    /// A line's text (its newline added).
    Line(Template),
}

impl Templated {
    /// An HTTP or RESP workload's requests as templates (literal where no
    /// variable is declared); `None` for the other workloads.
    fn compile(workload: &Workload, vars: &Vars) -> Result<Option<Templated>, String> {
        let t = |s: &str| {
            if vars.is_empty() {
                Ok(Template::literal_bytes(s.as_bytes()))
            } else {
                Template::compile(s, vars)
            }
        };
        let out = match workload {
            Workload::Http {
                path,
                host,
                headers,
                method,
                body,
            } => {
                let body = match std::str::from_utf8(body) {
                    Ok(text) if !vars.is_empty() => t(text)?,
                    // A binary body has no variables.
                    _ => Template::literal_bytes(body),
                };
                Templated::Http {
                    method: t(method)?,
                    path: t(path)?,
                    host: host.clone(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), t(v)?)))
                        .collect::<Result<_, String>>()?,
                    has_length: headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("content-length")),
                    body,
                }
            }
            Workload::Line {
                text: Some(text), ..
            } => Templated::Line(t(text)?),
            Workload::Resp { commands } => Templated::Resp(
                commands
                    .iter()
                    .map(|args| args.iter().map(|a| t(a)).collect::<Result<_, _>>())
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Ok(None),
        };
        Ok(Some(out))
    }

    /// True when no part names a variable: every request is the same.
    fn is_fixed(&self) -> bool {
        match self {
            Templated::Http {
                method,
                path,
                headers,
                body,
                ..
            } => {
                method.is_fixed()
                    && path.is_fixed()
                    && body.is_fixed()
                    && headers.iter().all(|(_, v)| v.is_fixed())
            }
            Templated::Resp(cmds) => cmds.iter().flatten().all(Template::is_fixed),
            Templated::Line(text) => text.is_fixed(),
        }
    }

    /// Its requests rendered once, when they never change: one for HTTP,
    /// one per command for RESP.
    fn rendered(&self, vars: &Vars) -> Vec<Vec<u8>> {
        let n = match self {
            Templated::Http { .. } | Templated::Line(_) => 1,
            Templated::Resp(cmds) => cmds.len(),
        };
        let mut draws = Draws::default();
        (0..n as u64)
            .map(|seq| {
                let mut r = Vec::new();
                self.encode(seq, vars, &mut draws, &mut r);
                r
            })
            .collect()
    }

    fn max_len(&self, vars: &Vars) -> usize {
        match self {
            Templated::Http {
                method,
                path,
                host,
                headers,
                body,
                ..
            } => {
                let head: usize = headers
                    .iter()
                    .map(|(k, v)| k.len() + 4 + v.max_len(vars))
                    .sum();
                method.max_len(vars)
                    + path.max_len(vars)
                    + host.len()
                    + head
                    + 64
                    + body.max_len(vars)
            }
            Templated::Resp(cmds) => cmds
                .iter()
                .map(|args| 24 + args.iter().map(|a| 26 + a.max_len(vars)).sum::<usize>())
                .max()
                .unwrap_or(0),
            Templated::Line(text) => text.max_len(vars) + 1,
        }
    }

    /// Appends request `seq` to `out`, every variable drawn afresh.
    fn encode(&self, seq: u64, vars: &Vars, draws: &mut Draws, out: &mut Vec<u8>) {
        draws.next_request();
        let mut piece = std::mem::take(&mut draws.piece);
        match self {
            Templated::Http {
                method,
                path,
                host,
                headers,
                body,
                has_length,
            } => {
                method.render(vars, draws, out);
                out.push(b' ');
                path.render(vars, draws, out);
                out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
                out.extend_from_slice(host.as_bytes());
                out.extend_from_slice(b"\r\n");
                for (k, v) in headers {
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b": ");
                    v.render(vars, draws, out);
                    out.extend_from_slice(b"\r\n");
                }
                piece.clear();
                body.render(vars, draws, &mut piece);
                if !piece.is_empty() && !has_length {
                    out.extend_from_slice(b"Content-Length: ");
                    push_int(out, piece.len() as i64);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&piece);
            }
            Templated::Line(text) => {
                let at = out.len();
                text.render(vars, draws, out);
                // A line cannot hold a newline: one a value brought is a space.
                for b in &mut out[at..] {
                    if *b == b'\n' {
                        *b = b' ';
                    }
                }
                out.push(b'\n');
            }
            Templated::Resp(cmds) => {
                let args = &cmds[(seq % cmds.len() as u64) as usize];
                out.push(b'*');
                push_int(out, args.len() as i64);
                out.extend_from_slice(b"\r\n");
                for a in args {
                    piece.clear();
                    a.render(vars, draws, &mut piece);
                    out.push(b'$');
                    push_int(out, piece.len() as i64);
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&piece);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        draws.piece = piece;
    }
}

impl Codec {
    #[cfg(test)]
    pub(crate) fn new(workload: &Workload) -> Self {
        Self::with_vars(workload, Arc::default()).expect("no variables, nothing to refuse")
    }

    /// Checks `workload`'s templates against `vars` (an unknown variable,
    /// a bad column) without building anything else.
    pub(crate) fn check(workload: &Workload, vars: &Vars) -> Result<(), String> {
        Templated::compile(workload, vars).map(drop)
    }

    /// The codec of `workload`, its requests drawing from `vars`; an error
    /// names a template's mistake (an unknown variable, a bad column).
    pub(crate) fn with_vars(workload: &Workload, vars: Arc<Vars>) -> Result<Self, String> {
        let mut templated = Templated::compile(workload, &vars)?;
        let fixed = match workload {
            Workload::Http { .. }
            | Workload::Resp { .. }
            | Workload::Line { text: Some(_), .. } => match &templated {
                // The same bytes every request: built once.
                Some(t) if t.is_fixed() => {
                    let r = t.rendered(&vars);
                    templated = None;
                    r
                }
                _ => Vec::new(),
            },
            Workload::Custom { payload, .. } => vec![payload.clone()],
            Workload::WebSocket { path, host, .. } => {
                // The key need not be secret for a load test, only valid.
                let r = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hhcmRsb29wLWxvYWQtMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                );
                vec![r.into_bytes()]
            }
            Workload::Echo { .. } | Workload::Line { text: None, .. } => Vec::new(),
        };
        let table = match workload {
            Workload::Echo { size }
            | Workload::Line {
                size, text: None, ..
            }
            | Workload::WebSocket { size, .. } => pattern_table(size + OFFSETS),
            _ => Vec::new(),
        };
        Ok(Codec {
            workload: workload.clone(),
            fixed,
            templated,
            vars,
            sizes: None,
            table,
        })
    }

    /// The same, its messages' sizes drawn from `sizes` (echo, line and
    /// WebSocket workloads).
    pub(crate) fn with_sizes(mut self, sizes: Option<Arc<Sizes>>) -> Self {
        if let Some(s) = &sizes {
            if matches!(
                self.workload,
                Workload::Echo { .. } | Workload::Line { .. } | Workload::WebSocket { .. }
            ) && self.table.len() < s.max() + OFFSETS
            {
                self.table = pattern_table(s.max() + OFFSETS);
            }
        }
        self.sizes = sizes;
        self
    }

    /// The size of request `seq`'s message.
    fn size(&self, seq: u64, fixed: usize) -> usize {
        self.sizes.as_ref().map_or(fixed, |s| s.of(seq))
    }

    /// A connection's draws for this codec's variables.
    pub(crate) fn draws(&self, seed: u64) -> Draws {
        Draws::new(&self.vars, seed)
    }

    fn message(&self, seq: u64, len: usize) -> &[u8] {
        let at = offset(seq);
        &self.table[at..at + len]
    }

    /// What a connection sends before its first request (the WebSocket
    /// handshake), answered by a head that [`preamble_done`](Self::preamble_done) reads.
    pub(crate) fn preamble(&self) -> Option<&[u8]> {
        match &self.workload {
            Workload::WebSocket { .. } => Some(&self.fixed[0]),
            _ => None,
        }
    }

    /// The length of the preamble's answer at the start of `buf` once it
    /// is whole (`Ok(None)` before), or an error if it refuses.
    pub(crate) fn preamble_done(&self, buf: &[u8]) -> Result<Option<usize>, ErrorKind> {
        match parse_response(buf, false, MAX_HEAD) {
            Ok(Some(m)) if m.status == 101 => Ok(Some(m.head_len)),
            Ok(Some(_)) => Err(ErrorKind::Status),
            Ok(None) if buf.len() > MAX_HEAD => Err(ErrorKind::Protocol),
            Ok(None) => Ok(None),
            Err(_) => Err(ErrorKind::Protocol),
        }
    }

    /// The longest request this workload sends (RESP cycles through its
    /// commands, which differ in length).
    pub(crate) fn max_request_len(&self) -> usize {
        match &self.workload {
            Workload::Echo { size }
            | Workload::Line {
                size, text: None, ..
            } => (*size).max(self.sizes.as_ref().map_or(0, |s| s.max())),
            Workload::WebSocket { size, .. } => {
                (*size).max(self.sizes.as_ref().map_or(0, |s| s.max())) + 14
            }
            _ => match &self.templated {
                Some(t) => t.max_len(&self.vars),
                None => self.fixed.iter().map(Vec::len).max().unwrap_or(0),
            },
        }
    }

    /// Appends request `seq` to `out` (drawing its variables, if any).
    pub(crate) fn encode(&self, seq: u64, draws: &mut Draws, out: &mut Vec<u8>) {
        if let Some(t) = &self.templated {
            return t.encode(seq, &self.vars, draws, out);
        }
        match &self.workload {
            Workload::Echo { size } => {
                out.extend_from_slice(self.message(seq, self.size(seq, *size)))
            }
            Workload::Line {
                size, text: None, ..
            } => {
                out.extend_from_slice(self.message(seq, self.size(seq, *size) - 1));
                out.push(b'\n');
            }
            Workload::WebSocket { size, .. } => {
                let size = self.size(seq, *size);
                let key = (seq as u32).wrapping_mul(0x9e37_79b9).to_be_bytes();
                frame::encode_head(true, opcode::BINARY, size as u64, Some(key), out);
                let at = out.len();
                out.extend_from_slice(self.message(seq, size));
                frame::apply_mask(&mut out[at..], key, 0);
            }
            _ => out.extend_from_slice(&self.fixed[(seq as usize) % self.fixed.len()]),
        }
    }

    /// Looks for the response to request `seq` at the start of `buf`,
    /// going on from where `progress` stands (from an earlier `Incomplete`
    /// on a prefix of `buf`; a fresh one for a new response): searches
    /// resume there, so a response arriving in many pieces costs linear
    /// time.
    pub(crate) fn decode(&self, buf: &[u8], seq: u64, progress: &mut Progress) -> Decoded {
        let searched = progress.searched;
        let mut more = |s: usize| {
            progress.searched = s;
            Decoded::Incomplete {
                need: buf.len() + 1,
            }
        };
        match &self.workload {
            Workload::Echo { size } => {
                let size = self.size(seq, *size);
                if buf.len() < size {
                    return Decoded::Incomplete { need: size };
                }
                let ok = buf[..size] == *self.message(seq, size);
                Decoded::Done {
                    status: 0,
                    consumed: size,
                    result: if ok { Ok(()) } else { Err(ErrorKind::Protocol) },
                }
            }
            Workload::Line { size, text } => {
                let size = &self.size(seq, *size);
                let from = searched.min(buf.len());
                match buf[from..].iter().position(|&b| b == b'\n') {
                    None if buf.len() > MAX_RESPONSE => Decoded::Fatal,
                    None => more(buf.len()),
                    Some(i) => {
                        let end = from + i;
                        let line = &buf[..end];
                        // A pattern comes back as sent; a template's reply
                        // is the server's business.
                        let ok = text.is_some()
                            || (line.len() == size - 1 && line == self.message(seq, size - 1));
                        Decoded::Done {
                            status: 0,
                            consumed: end + 1,
                            result: if ok { Ok(()) } else { Err(ErrorKind::Protocol) },
                        }
                    }
                }
            }
            Workload::Http { method, .. } => {
                if progress.http.is_none() {
                    // No head end yet: nothing for the parser to do.
                    let from = searched.saturating_sub(3).min(buf.len());
                    if find(&buf[from..], b"\r\n\r\n").is_none() {
                        return if buf.len() > MAX_HEAD {
                            Decoded::Fatal
                        } else {
                            more(buf.len())
                        };
                    }
                }
                decode_http(buf, method == "HEAD", progress)
            }
            Workload::WebSocket { size, .. } => self.decode_ws(buf, seq, self.size(seq, *size)),
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
                        Decoded::Incomplete { need: *n }
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

impl Codec {
    /// An echoed WebSocket message: one unmasked binary frame holding
    /// request `seq`'s bytes; pings and pongs are skipped.
    fn decode_ws(&self, buf: &[u8], seq: u64, size: usize) -> Decoded {
        let Some(h) = FrameHead::parse(buf) else {
            return Decoded::Incomplete {
                need: buf.len() + 1,
            };
        };
        if h.check(false, MAX_RESPONSE as u64).is_err() || h.opcode == opcode::CLOSE {
            return Decoded::Fatal;
        }
        let total = h.header_len + h.len as usize;
        if buf.len() < total {
            return Decoded::Incomplete { need: total };
        }
        if h.is_control() {
            return Decoded::Skip { consumed: total };
        }
        let payload = &buf[h.header_len..total];
        let ok = h.fin && h.opcode == opcode::BINARY && payload == self.message(seq, size);
        Decoded::Done {
            status: 0,
            consumed: total,
            result: if ok { Ok(()) } else { Err(ErrorKind::Protocol) },
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

/// An HTTP response at the start of `buf`, read with the framework's
/// parser (`shardloop::http::response_head`): the head once, then the
/// body's new bytes on each call.
fn decode_http(buf: &[u8], head_request: bool, progress: &mut Progress) -> Decoded {
    if progress.http.is_none() {
        let meta = match parse_response(buf, head_request, MAX_HEAD) {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Decoded::Incomplete {
                    need: buf.len() + 1,
                }
            }
            Err(_) => return Decoded::Fatal,
        };
        match meta.framing {
            // Keep-alive needs framing; a response delimited by close is not
            // something a load test can pipeline.
            ResponseFraming::UntilClose => return Decoded::Fatal,
            ResponseFraming::Length(n) if n > MAX_RESPONSE as u64 => return Decoded::Fatal,
            _ => {}
        }
        progress.http = Some(HttpBody {
            status: meta.status,
            fed: meta.head_len,
            len: 0,
            body: BodyProgress::new(meta.framing, MAX_HEAD, MAX_HEAD),
        });
    }
    let h = progress.http.as_mut().expect("set above");
    let input = &buf[h.fed..];
    #[cfg(test)]
    SCANNED.with(|s| s.set(s.get() + input.len()));
    let mut len = h.len;
    let fed = h.body.feed(input, |d| len += d.len());
    h.len = len;
    let Ok((used, done)) = fed else {
        return Decoded::Fatal;
    };
    h.fed += used;
    let pending = match &h.body {
        BodyProgress::Chunked(d) => d.pending(),
        BodyProgress::Length(left) => *left,
        BodyProgress::UntilClose => 0,
    };
    if h.len as u64 + pending > MAX_RESPONSE as u64 {
        return Decoded::Fatal;
    }
    if !done {
        // A chunk (and its CRLF) or the rest of a length is waited for whole.
        let wait = match &h.body {
            BodyProgress::Chunked(_) if pending > 0 => pending as usize + 2,
            BodyProgress::Length(left) => *left as usize,
            _ => 1,
        };
        return Decoded::Incomplete {
            need: h.fed + wait.max(1),
        };
    }
    let (status, consumed) = (h.status, h.fed);
    Decoded::Done {
        status,
        consumed,
        result: if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ErrorKind::Status)
        },
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

mod h2;
pub(crate) use h2::H2Requests;
