//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: any
//! split of the input gives the same result, each byte is looked at once,
//! and what a peer can make us hold is capped (the size line with its
//! extensions, the trailer section). Line ends must be CRLF: a bare LF or
//! CR is refused, as are sizes over 64 bits.

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not hexadecimal, or does not fit in 64 bits.
    BadSize,
    /// A chunk size line (its extensions) over the cap.
    ExtensionTooLong,
    /// A line end that is not CRLF, or chunk data not followed by CRLF.
    BadLineEnd,
    /// The trailer section over the cap.
    TrailersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits (how many so far).
    Size {
        digits: u8,
    },
    /// After the size: extensions until CR.
    Extension,
    /// CR of the size line seen.
    SizeLf,
    /// Chunk data left.
    Data,
    /// After the data: CR.
    DataCr,
    DataLf,
    /// Start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    TrailerLf,
    /// The final CR seen.
    EndLf,
    Done,
}

/// Decodes one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line: usize,
    trailers: usize,
    max_line: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder allowing size lines (with extensions) of `max_line` bytes
    /// and a trailer section of `max_trailers` bytes.
    pub fn new(max_line: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
            trailers: 0,
            max_line,
            max_trailers,
        }
    }

    /// Data bytes of the current chunk not yet seen (0 between chunks):
    /// what a reader can wait for before looking again, or refuse early.
    pub fn pending(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    /// True once the last chunk and the trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, handing each piece of body data to `data`.
    /// Returns how many bytes of `input` it used: all of them, or fewer
    /// when the body ended (what follows is the next request).
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => match hex(b) {
                    Some(d) => {
                        if digits >= 16 {
                            return Err(ChunkError::BadSize);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                        self.count_line()?;
                    }
                    None if digits == 0 => return Err(ChunkError::BadSize),
                    None if b == b'\n' => return Err(ChunkError::BadLineEnd),
                    None if b == b'\r' => self.state = State::SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.state = State::Extension;
                        self.count_line()?;
                    }
                    None => return Err(ChunkError::BadSize),
                },
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.count_line()?;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.line = 0;
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    data(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else {
                        self.count_trailer()?;
                        self.state = State::Trailer;
                        if b == b'\n' {
                            return Err(ChunkError::BadLineEnd);
                        }
                    }
                }
                State::Trailer => {
                    self.count_trailer()?;
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if b == b'\n' || b == 0 {
                        return Err(ChunkError::BadLineEnd);
                    }
                }
                State::TrailerLf => {
                    self.count_trailer()?;
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::Done => return Ok(i),
            }
            i += 1;
        }
        Ok(i)
    }

    fn count_line(&mut self) -> Result<(), ChunkError> {
        self.line += 1;
        if self.line > self.max_line {
            return Err(ChunkError::ExtensionTooLong);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > self.max_trailers {
            return Err(ChunkError::TrailersTooLarge);
        }
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `data` as one chunk (nothing for empty data).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    use std::io::Write;
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8], splits: &[usize]) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::new(64, 256);
        let mut body = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = splits.iter().map(|&s| s.min(input.len())).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        for cut in cuts {
            if cut < at {
                continue;
            }
            let used = d.decode(&input[at..cut], |b| body.extend_from_slice(b))?;
            at += used;
            if d.is_done() {
                return Ok((body, at));
            }
        }
        Ok((body, at))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers_and_stops_at_the_end() {
        let input = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        let (body, used) = decode_all(input, &[]).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(&input[used..], b"GET /next");
    }

    #[test]
    fn every_split_byte_by_byte_gives_the_same_body() {
        let input = b"A\r\n0123456789\r\n1;a\r\nx\r\n0\r\nT: v\r\n\r\n";
        let whole = decode_all(input, &[]).unwrap();
        let mut d = ChunkedDecoder::new(64, 256);
        let mut body = Vec::new();
        let mut used = 0;
        for i in 0..input.len() {
            used += d
                .decode(&input[i..=i], |b| body.extend_from_slice(b))
                .unwrap();
        }
        assert!(d.is_done());
        assert_eq!((body, used), whole);
    }

    #[test]
    fn hostile_sizes_lines_and_trailers_are_refused() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"ffffffffffffffffff\r\n", ChunkError::BadSize),
            (b"10000000000000000\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"-1\r\n", ChunkError::BadSize),
            (b"0x5\r\n", ChunkError::BadSize),
            (b"5\nhello\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhelloX\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhello\n0\r\n", ChunkError::BadLineEnd),
            (b"1;a\nb\r\n", ChunkError::BadLineEnd),
            (b"0\r\nA: b\nC: d\r\n\r\n", ChunkError::BadLineEnd),
        ];
        for (input, want) in cases {
            assert_eq!(decode_all(input, &[]).err(), Some(*want), "{input:?}");
        }
        let long_ext = [b"1;".as_slice(), &[b'x'; 100], b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(
            decode_all(&long_ext, &[]).err(),
            Some(ChunkError::ExtensionTooLong)
        );
        let flood = [b"0\r\n".as_slice(), &b"A: b\r\n".repeat(60), b"\r\n"].concat();
        assert_eq!(
            decode_all(&flood, &[]).err(),
            Some(ChunkError::TrailersTooLarge)
        );
        // The largest size that fits is accepted (16 hex digits).
        let mut d = ChunkedDecoder::new(64, 256);
        assert!(d.decode(b"7fffffffffffffff\r\nab", |_| {}).is_ok());
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let mut out = Vec::new();
        encode_chunk(b"hello", &mut out);
        encode_chunk(b"", &mut out);
        encode_chunk(&[7u8; 300], &mut out);
        out.extend_from_slice(LAST_CHUNK);
        let (body, used) = decode_all(&out, &[]).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(body, [b"hello".as_slice(), &[7u8; 300]].concat());
    }

    proptest! {
        #[test]
        fn any_split_decodes_any_body(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 0..8),
            splits in proptest::collection::vec(0usize..2000, 0..10),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                encode_chunk(c, &mut wire);
            }
            wire.extend_from_slice(LAST_CHUNK);
            let (body, used) = decode_all(&wire, &splits).unwrap();
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(body, chunks.concat());
        }

        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_all(&input, &[3, 17, 40]);
        }
    }
}
