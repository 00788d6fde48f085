//! Incremental frame decoders: given the bytes buffered so far, find the next
//! complete frame. Pure functions of their input (`&self`, no hidden state),
//! so any split of a stream into chunks yields the same frames (the property
//! tests check exactly that) and a mode switch can never leave a stale
//! position behind. Every length a peer sends is checked: no limit, however
//! large (even `usize::MAX`), can overflow.

use std::fmt;

/// Why a stream cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame (or line) longer than the configured maximum.
    TooLong {
        /// Bytes seen or announced.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes that do not follow the format.
    Malformed(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { length, max } => {
                write!(f, "frame of {length} bytes exceeds the maximum of {max}")
            }
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A complete frame found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Where the payload lies in the buffer.
    pub start: usize,
    /// End of the payload (exclusive).
    pub end: usize,
    /// Bytes to drop from the buffer, framing included.
    pub consumed: usize,
}

/// What happens to buffered input after a [`FrameError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The buffered bytes are handed to `frame_error` and dropped; framing
    /// resumes with the next bytes (Twisted's `LineReceiver`: a protocol
    /// that does not close keeps receiving lines).
    Discard,
    /// The stream cannot be resynchronised: the bytes stay, later input is
    /// not buffered, and every arrival reports the error again until the
    /// protocol closes (Twisted's `IntNStringReceiver`, `NetstringReceiver`).
    Retain,
}

/// Finds frames in a byte stream.
pub trait Decoder: 'static {
    /// Looks for one frame at the start of `buf`. `Ok(None)`: need more bytes.
    fn decode(&self, buf: &[u8]) -> Result<Option<Frame>, FrameError>;

    /// [`decode`](Decoder::decode), knowing that the first `searched` bytes
    /// of `buf` were already examined without finding a frame end (the
    /// caller only appended since): a delimiter search resumes there instead
    /// of rescanning, which keeps a long line arriving in small pieces linear.
    fn decode_from(&self, buf: &[u8], searched: usize) -> Result<Option<Frame>, FrameError> {
        let _ = searched;
        self.decode(buf)
    }

    /// What an error does to the buffered input (default: [`Recovery::Retain`]).
    fn recovery(&self) -> Recovery {
        Recovery::Retain
    }
}

/// Lines ending with a delimiter (default `\r\n`), optionally accepting a
/// bare `\n` too. The delimiter is not part of the line.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    delimiter: Vec<u8>,
    accept_bare_lf: bool,
    max_line_length: usize,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(b"\r\n".to_vec(), 16 * 1024)
    }
}

impl LineDecoder {
    /// Lines ending with `delimiter`, at most `max_line_length` bytes each.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    pub fn new(delimiter: Vec<u8>, max_line_length: usize) -> Self {
        assert!(!delimiter.is_empty(), "line delimiter must not be empty");
        LineDecoder {
            delimiter,
            accept_bare_lf: false,
            max_line_length,
        }
    }

    /// With a `\r\n` delimiter, also end lines at a bare `\n`.
    pub fn accept_bare_lf(mut self, on: bool) -> Self {
        self.accept_bare_lf = on;
        self
    }

    /// The longest line accepted.
    pub fn max_line_length(&self) -> usize {
        self.max_line_length
    }
}

impl Decoder for LineDecoder {
    fn decode(&self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        self.decode_from(buf, 0)
    }

    fn decode_from(&self, buf: &[u8], searched: usize) -> Result<Option<Frame>, FrameError> {
        let d = &self.delimiter;
        // Resume where the last search stopped, backing up so a delimiter
        // split across chunks is still found.
        let from = searched.saturating_sub(d.len() - 1).min(buf.len());
        let found = if self.accept_bare_lf && d.as_slice() == b"\r\n" {
            memchr::memchr(b'\n', &buf[from..]).map(|i| {
                let lf = from + i;
                if lf > 0 && buf[lf - 1] == b'\r' {
                    (lf - 1, lf + 1)
                } else {
                    (lf, lf + 1)
                }
            })
        } else if d.len() == 1 {
            memchr::memchr(d[0], &buf[from..]).map(|i| (from + i, from + i + 1))
        } else {
            // SIMD search for the delimiter's last byte, then compare the rest.
            let last = d[d.len() - 1];
            let mut at = from + d.len() - 1;
            loop {
                match memchr::memchr(last, buf.get(at..).unwrap_or(&[])) {
                    None => break None,
                    Some(i) => {
                        let end = at + i + 1;
                        let start = end - d.len();
                        if &buf[start..end] == d.as_slice() {
                            break Some((start, end));
                        }
                        at = end;
                    }
                }
            }
        };
        match found {
            // Twisted: a complete line longer than MAX_LENGTH is an error.
            Some((end, _)) if end > self.max_line_length => Err(FrameError::TooLong {
                length: end,
                max: self.max_line_length,
            }),
            Some((end, consumed)) => Ok(Some(Frame {
                start: 0,
                end,
                consumed,
            })),
            // Twisted: without a delimiter, MAX_LENGTH + len(delimiter)
            // bytes are already too many (a delimiter could still complete
            // a line of exactly MAX_LENGTH before that).
            None if buf.len() >= self.max_line_length.saturating_add(d.len()) => {
                Err(FrameError::TooLong {
                    length: buf.len(),
                    max: self.max_line_length,
                })
            }
            None => Ok(None),
        }
    }

    fn recovery(&self) -> Recovery {
        Recovery::Discard
    }
}

/// Width of a big-endian length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixWidth {
    /// One byte: frames up to 255 bytes.
    U8,
    /// Two bytes: up to 65 535.
    U16,
    /// Four bytes.
    U32,
}

impl PrefixWidth {
    /// Bytes of the prefix.
    pub fn bytes(self) -> usize {
        match self {
            PrefixWidth::U8 => 1,
            PrefixWidth::U16 => 2,
            PrefixWidth::U32 => 4,
        }
    }

    /// Largest length the prefix can express.
    pub fn max_len(self) -> usize {
        match self {
            PrefixWidth::U8 => u8::MAX as usize,
            PrefixWidth::U16 => u16::MAX as usize,
            PrefixWidth::U32 => u32::MAX as usize,
        }
    }
}

/// Frames preceded by their length as a big-endian integer.
#[derive(Debug, Clone)]
pub struct LengthPrefixedDecoder {
    width: PrefixWidth,
    max_frame_length: usize,
}

impl LengthPrefixedDecoder {
    /// Frames with a `width` prefix, at most `max_frame_length` bytes.
    pub fn new(width: PrefixWidth, max_frame_length: usize) -> Self {
        LengthPrefixedDecoder {
            width,
            max_frame_length: max_frame_length.min(width.max_len()),
        }
    }

    /// Writes `payload` with its prefix into `out`.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if payload.len() > self.max_frame_length {
            return Err(FrameError::TooLong {
                length: payload.len(),
                max: self.max_frame_length,
            });
        }
        let n = payload.len() as u32;
        match self.width {
            PrefixWidth::U8 => out.push(n as u8),
            PrefixWidth::U16 => out.extend_from_slice(&(n as u16).to_be_bytes()),
            PrefixWidth::U32 => out.extend_from_slice(&n.to_be_bytes()),
        }
        out.extend_from_slice(payload);
        Ok(())
    }
}

impl Decoder for LengthPrefixedDecoder {
    fn decode(&self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        let p = self.width.bytes();
        if buf.len() < p {
            return Ok(None);
        }
        let len = buf[..p]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        if len > self.max_frame_length {
            return Err(FrameError::TooLong {
                length: len,
                max: self.max_frame_length,
            });
        }
        // len <= max_frame_length <= u32::MAX: no overflow, but say so.
        let end = p.checked_add(len).ok_or(FrameError::TooLong {
            length: len,
            max: self.max_frame_length,
        })?;
        if buf.len() < end {
            return Ok(None);
        }
        Ok(Some(Frame {
            start: p,
            end,
            consumed: end,
        }))
    }
}

/// Netstrings (`5:hello,`), D. J. Bernstein's format.
#[derive(Debug, Clone)]
pub struct NetstringDecoder {
    max_length: usize,
}

impl NetstringDecoder {
    /// Netstrings of at most `max_length` payload bytes.
    pub fn new(max_length: usize) -> Self {
        NetstringDecoder { max_length }
    }

    /// Writes `payload` as a netstring into `out`.
    pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(payload.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(payload);
        out.push(b',');
    }
}

impl Decoder for NetstringDecoder {
    fn decode(&self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        let too_long = |length| FrameError::TooLong {
            length,
            max: self.max_length,
        };
        // Twisted refuses a length with more digits than MAX_LENGTH has
        // (plus one) before converting it; checked arithmetic does the rest.
        let digits_max = self.max_length.checked_ilog10().unwrap_or(0) as usize + 2;
        let mut len: usize = 0;
        let mut i = 0;
        loop {
            let Some(&b) = buf.get(i) else {
                return Ok(None);
            };
            match b {
                b'0'..=b'9' => {
                    if i == 1 && buf[0] == b'0' {
                        return Err(FrameError::Malformed("leading zero in netstring length"));
                    }
                    i += 1;
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add((b - b'0') as usize))
                        .ok_or_else(|| too_long(usize::MAX))?;
                    if i > digits_max || len > self.max_length {
                        return Err(too_long(len));
                    }
                }
                b':' if i > 0 => break,
                _ => {
                    return Err(FrameError::Malformed(
                        "netstring length must be digits then ':'",
                    ))
                }
            }
        }
        let start = i + 1;
        let end = start.checked_add(len).ok_or_else(|| too_long(len))?;
        match buf.get(end) {
            None => Ok(None),
            Some(b',') => Ok(Some(Frame {
                start,
                end,
                consumed: end + 1,
            })),
            Some(_) => Err(FrameError::Malformed("netstring must end with ','")),
        }
    }
}
