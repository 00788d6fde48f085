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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` in the given chunk sizes, as a connection would.
    fn frames_chunked<D: Decoder>(
        d: D,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut sizes = cuts.iter().copied().chain(std::iter::repeat(usize::MAX));
        while pos < input.len() {
            let n = sizes.next().unwrap().max(1).min(input.len() - pos);
            buf.extend_from_slice(&input[pos..pos + n]);
            pos += n;
            while let Some(f) = d.decode(&buf)? {
                out.push(buf[f.start..f.end].to_vec());
                buf.drain(..f.consumed);
            }
        }
        Ok(out)
    }

    fn whole<D: Decoder>(d: D, input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        frames_chunked(d, input, &[usize::MAX])
    }

    proptest! {
        #[test]
        fn lines_same_however_split(lines in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no delimiter bytes", |b| *b != b'\r' && *b != b'\n'), 0..50), 0..20),
                                    cuts in prop::collection::vec(1usize..40, 0..40)) {
            let mut input = Vec::new();
            for l in &lines { input.extend_from_slice(l); input.extend_from_slice(b"\r\n"); }
            let got = frames_chunked(LineDecoder::default(), &input, &cuts).unwrap();
            prop_assert_eq!(&got, &lines);
            prop_assert_eq!(whole(LineDecoder::default(), &input).unwrap(), got);
        }

        #[test]
        fn bare_lf_lines_same_however_split(input in prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..200),
                                            cuts in prop::collection::vec(1usize..10, 0..60)) {
            let mk = || LineDecoder::default().accept_bare_lf(true);
            prop_assert_eq!(frames_chunked(mk(), &input, &cuts), whole(mk(), &input));
        }

        #[test]
        fn multibyte_delimiter_same_however_split(input in prop::collection::vec(prop_oneof![Just(b'<'), Just(b'>'), Just(b'x')], 0..200),
                                                  cuts in prop::collection::vec(1usize..7, 0..80)) {
            let mk = || LineDecoder::new(b"<>>".to_vec(), 1000);
            prop_assert_eq!(frames_chunked(mk(), &input, &cuts), whole(mk(), &input));
        }

        #[test]
        fn length_prefixed_round_trips_however_split(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
                                                      cuts in prop::collection::vec(1usize..50, 0..60),
                                                      width in prop_oneof![Just(PrefixWidth::U16), Just(PrefixWidth::U32)]) {
            let d = LengthPrefixedDecoder::new(width, 1 << 20);
            let mut input = Vec::new();
            for f in &frames { d.encode(f, &mut input).unwrap(); }
            prop_assert_eq!(frames_chunked(d.clone(), &input, &cuts).unwrap(), frames);
        }

        #[test]
        fn netstrings_round_trip_however_split(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
                                               cuts in prop::collection::vec(1usize..50, 0..60)) {
            let mut input = Vec::new();
            for f in &frames { NetstringDecoder::encode(f, &mut input); }
            prop_assert_eq!(frames_chunked(NetstringDecoder::new(1000), &input, &cuts).unwrap(), frames);
        }

        #[test]
        fn decoders_never_panic_on_garbage(input in prop::collection::vec(any::<u8>(), 0..300), cuts in prop::collection::vec(1usize..20, 0..30)) {
            let _ = frames_chunked(LineDecoder::new(b"\n".to_vec(), 64), &input, &cuts);
            let _ = frames_chunked(LengthPrefixedDecoder::new(PrefixWidth::U8, 100), &input, &cuts);
            let _ = frames_chunked(NetstringDecoder::new(50), &input, &cuts);
        }
    }

    #[test]
    fn line_limits() {
        let d = LineDecoder::new(b"\n".to_vec(), 4);
        assert_eq!(d.decode(b"abcd\n").unwrap().unwrap().end, 4);
        let d = LineDecoder::new(b"\n".to_vec(), 4);
        assert!(matches!(
            d.decode(b"abcde\n"),
            Err(FrameError::TooLong { .. })
        ));
        let d = LineDecoder::new(b"\n".to_vec(), 4);
        assert!(
            matches!(d.decode(b"abcdefgh"), Err(FrameError::TooLong { .. })),
            "no delimiter in sight"
        );
        assert_eq!(
            LineDecoder::default().decode(b"abc\n").unwrap(),
            None,
            "bare LF needs the option"
        );
    }

    #[test]
    fn length_prefix_limits() {
        let d = LengthPrefixedDecoder::new(PrefixWidth::U8, 10_000);
        let mut out = Vec::new();
        assert!(
            d.encode(&[0u8; 256], &mut out).is_err(),
            "u8 prefix caps at 255"
        );
        let d = LengthPrefixedDecoder::new(PrefixWidth::U32, 10);
        assert!(matches!(
            d.decode(&[0, 0, 0, 11]),
            Err(FrameError::TooLong { length: 11, .. })
        ));
    }

    #[test]
    fn netstring_errors() {
        let d = NetstringDecoder::new(100);
        assert!(matches!(d.decode(b"x:"), Err(FrameError::Malformed(_))));
        assert!(matches!(d.decode(b"3:abc;"), Err(FrameError::Malformed(_))));
        assert!(matches!(d.decode(b"01:a,"), Err(FrameError::Malformed(_))));
        assert!(matches!(
            d.decode(b"1000:"),
            Err(FrameError::TooLong { .. })
        ));
        assert_eq!(d.decode(b"3:ab").unwrap(), None);
        assert_eq!(
            d.decode(b"0:,").unwrap(),
            Some(Frame {
                start: 2,
                end: 2,
                consumed: 3
            })
        );
    }
}

#[cfg(test)]
mod limits {
    use super::*;

    #[test]
    fn no_limit_means_no_overflow() {
        // "No limit" must not wrap: 2^64 + 5 is not 5.
        let d = NetstringDecoder::new(usize::MAX);
        assert!(matches!(
            d.decode(b"18446744073709551621:hello,"),
            Err(FrameError::TooLong { .. })
        ));
        assert_eq!(d.decode(b"5:hello,").unwrap().unwrap().end, 7);
        let l = LineDecoder::new(b"\r\n".to_vec(), usize::MAX);
        assert_eq!(l.decode(b"abc").unwrap(), None);
        assert_eq!(l.decode_from(b"abc\r\n", 3).unwrap().unwrap().end, 3);
        let p = LengthPrefixedDecoder::new(PrefixWidth::U32, usize::MAX);
        assert_eq!(p.decode(&[0xff, 0xff, 0xff, 0xff]).unwrap(), None);
    }

    #[test]
    fn unterminated_line_limit_is_max_plus_delimiter_exactly() {
        let d = LineDecoder::new(b"\r\n".to_vec(), 4);
        assert_eq!(
            d.decode(b"xxxxx").unwrap(),
            None,
            "max + 1: a CRLF may still come"
        );
        assert!(
            d.decode(b"xxxxxx").is_err(),
            "max + len(delimiter): too long"
        );
        assert_eq!(d.decode(b"xxxx\r\n").unwrap().unwrap().end, 4);
        assert!(d.decode(b"xxxxx\r\n").is_err());
    }
}
