//! An incremental RESP request parser: linear in the bytes received however
//! they are split, with every length a peer sends checked and capped.
//!
//! Bytes are appended with [`RespParser::feed`]; [`RespParser::next`]
//! returns complete commands. A partial command keeps its progress (the
//! arguments read so far, where the search for the line end stopped), so
//! nothing is scanned twice, and the buffer is compacted only when the
//! consumed prefix outgrows what is left.

use super::redis::{split_args, string2ll};

/// Longest line accepted: an inline command, or a `*N` / `$N` header
/// (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_LINE: usize = 64 * 1024;
/// Most arguments in one command (Redis: 1024 * 1024).
pub const MAX_ARGS: usize = 1024 * 1024;

/// A command's arguments, the name first.
pub type Args = Vec<Vec<u8>>;

/// A request the parser cannot accept; the connection must be closed after
/// answering `-ERR Protocol error: {message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

fn err<T>(why: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(why.into()))
}

pub struct RespParser {
    buf: Vec<u8>,
    /// Start of the unparsed bytes.
    pos: usize,
    /// Where the search for the next line end resumes (>= pos).
    scan: usize,
    /// A multibulk command in progress.
    partial: Option<Partial>,
    /// Largest bulk string accepted.
    max_bulk: usize,
    /// An inline request holds a NUL before its line end (see `inline`).
    nul_stuck: bool,
}

struct Partial {
    left: usize,
    args: Args,
    /// Length of the bulk string whose `$N` header was read.
    bulk: Option<usize>,
}

impl RespParser {
    pub fn new(max_bulk: usize) -> Self {
        RespParser {
            buf: Vec::new(),
            pos: 0,
            scan: 0,
            partial: None,
            max_bulk,
            nul_stuck: false,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.scan -= self.pos;
            self.pos = 0;
        } else if self.pos > 4096 && self.pos >= self.buf.len() - self.pos {
            // Compact when the consumed prefix is at least as large as what
            // is left: each byte moves O(1) times overall.
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete command, `None` if more bytes are needed.
    pub fn next(&mut self) -> Result<Option<Args>, ProtocolError> {
        loop {
            if let Some(p) = &mut self.partial {
                if p.left == 0 {
                    let p = self.partial.take().expect("partial");
                    return Ok(Some(p.args));
                }
                if let Some(len) = p.bulk {
                    let have = self.buf.len() - self.pos;
                    // Checked: `len` is at most max_bulk, far below usize::MAX.
                    if have < len + 2 {
                        return Ok(None);
                    }
                    // The two bytes after the string are skipped unread, as
                    // redis-server does (`$3\r\nfooXY` is "foo").
                    let start = self.pos;
                    p.args.push(self.buf[start..start + len].to_vec());
                    p.left -= 1;
                    p.bulk = None;
                    self.pos = start + len + 2;
                    self.scan = self.pos;
                    continue;
                }
                let max_bulk = self.max_bulk;
                let Some(line) = self.line()? else {
                    return Ok(None);
                };
                let Some(rest) = line.strip_prefix(b"$") else {
                    let got = line.first().copied().unwrap_or(b'\n') as char;
                    return err(format!("expected '$', got '{got}'"));
                };
                let Some(len) = strip_cr(rest).and_then(|d| length(d, max_bulk)) else {
                    return err("invalid bulk length");
                };
                self.partial.as_mut().expect("partial").bulk = Some(len);
                continue;
            }
            let Some(&first) = self.buf.get(self.pos) else {
                return Ok(None);
            };
            if first != b'*' {
                return self.inline();
            }
            let Some(line) = self.line()? else {
                return Ok(None);
            };
            let Some(count) = strip_cr(&line[1..]).and_then(string2ll) else {
                return err("invalid multibulk length");
            };
            if count <= 0 {
                // `*0` or `*-1` is no command at all: skipped, as Redis does.
                continue;
            }
            let Some(n) = usize::try_from(count).ok().filter(|n| *n <= MAX_ARGS) else {
                return err("invalid multibulk length");
            };
            self.partial = Some(Partial {
                left: n,
                args: Vec::with_capacity(n.min(64)),
                bulk: None,
            });
        }
    }

    /// An inline command (`PING\r\n`, what telnet users type), split with
    /// Redis's quoting rules.
    fn inline(&mut self) -> Result<Option<Args>, ProtocolError> {
        if !self.nul_stuck {
            let next = memchr::memchr2(0, b'\n', &self.buf[self.scan..]);
            self.nul_stuck = next.is_some_and(|i| self.buf[self.scan + i] == 0);
        }
        if self.nul_stuck {
            // redis-server finds an inline line's end with strchr, which
            // stops at a NUL: such a request never completes, and the
            // connection fails once it outgrows the inline limit.
            self.scan = self.buf.len();
            if self.buf.len() - self.pos > MAX_LINE {
                return err("too big inline request");
            }
            return Ok(None);
        }
        let Some(line) = self.line()? else {
            return Ok(None);
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(args) = split_args(line) else {
            return err("unbalanced quotes in request");
        };
        if args.is_empty() {
            // An empty line: nothing to run, keep parsing.
            return self.next();
        }
        Ok(Some(args))
    }

    /// The next line (without `\n`), consumed; `None` if its end has not
    /// arrived. Resumes the search where the previous call stopped.
    fn line(&mut self) -> Result<Option<&[u8]>, ProtocolError> {
        match memchr::memchr(b'\n', &self.buf[self.scan..]) {
            Some(i) => {
                let end = self.scan + i;
                if end - self.pos > MAX_LINE {
                    return err("too big inline request");
                }
                let start = self.pos;
                self.pos = end + 1;
                self.scan = self.pos;
                Ok(Some(&self.buf[start..end]))
            }
            None => {
                self.scan = self.buf.len();
                if self.buf.len() - self.pos > MAX_LINE {
                    err("too big inline request")
                } else {
                    Ok(None)
                }
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> Option<&[u8]> {
    line.strip_suffix(b"\r")
}

/// A bulk length as Redis reads it (its `string2ll`: no sign, no leading
/// zero, no blank) in `0..=max`.
fn length(digits: &[u8], max: usize) -> Option<usize> {
    usize::try_from(string2ll(digits)?)
        .ok()
        .filter(|n| *n <= max)
}
