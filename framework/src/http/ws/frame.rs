//! WebSocket frames (RFC 6455 §5.2): the header read and written, and the
//! mask applied. Public so that clients (the load generator, tests) use
//! the same codec as the server.

/// Frame opcodes (RFC 6455 §5.2, §11.8).
pub mod opcode {
    /// A continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// The first frame of a text message.
    pub const TEXT: u8 = 0x1;
    /// The first frame of a binary message.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// The largest payload of a control frame (close, ping, pong).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's header, as read from the wire (nothing checked beyond what
/// the encoding itself requires; [`FrameHead::check`] applies the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// The final fragment of its message.
    pub fin: bool,
    /// The three reserved bits (non-zero only with a negotiated extension).
    pub rsv: u8,
    /// The opcode (see [`opcode`]).
    pub opcode: u8,
    /// The masking key (every frame from a client has one).
    pub mask: Option<[u8; 4]>,
    /// The payload's length.
    pub len: u64,
    /// The header's own length in bytes (2 to 14).
    pub header_len: usize,
}

/// Why a frame header is refused: what RFC 6455 §7.4.1 says to close with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A protocol error (1002): reserved bits or opcodes, a fragmented or
    /// oversized control frame, a mask missing or present where it must
    /// not be, a length with its top bit set.
    Protocol(&'static str),
    /// A frame over the configured size (1009).
    TooBig,
}

impl FrameHead {
    /// Reads a header from the start of `buf`; `None` until it is whole.
    ///
    /// ```
    /// use shardloop::http::ws::frame::{self, FrameHead};
    /// let mut wire = Vec::new();
    /// frame::encode_head(true, frame::opcode::TEXT, 5, Some([1, 2, 3, 4]), &mut wire);
    /// let head = FrameHead::parse(&wire).unwrap();
    /// assert_eq!((head.fin, head.opcode, head.len, head.header_len), (true, 1, 5, 6));
    /// assert_eq!(FrameHead::parse(&wire[..1]), None);
    /// ```
    pub fn parse(buf: &[u8]) -> Option<FrameHead> {
        let (&b0, &b1) = (buf.first()?, buf.get(1)?);
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            Some(key)
        } else {
            None
        };
        Some(FrameHead {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0f,
            mask,
            len,
            header_len: at,
        })
    }

    /// True for close, ping and pong.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// Applies RFC 6455 §5 to a frame a server receives (`from_client`:
    /// it must be masked) or a client receives (it must not be), with
    /// frames past `max_frame` bytes refused.
    pub fn check(&self, from_client: bool, max_frame: u64) -> Result<(), FrameError> {
        use FrameError::Protocol;
        if self.rsv != 0 {
            return Err(Protocol("reserved bits set without an extension"));
        }
        match self.opcode {
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !self.fin {
                    return Err(Protocol("fragmented control frame"));
                }
                if self.len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(Protocol("control frame over 125 bytes"));
                }
            }
            _ => return Err(Protocol("reserved opcode")),
        }
        if self.mask.is_some() != from_client {
            return Err(Protocol(if from_client {
                "unmasked frame from a client"
            } else {
                "masked frame from a server"
            }));
        }
        if self.len >> 63 != 0 {
            return Err(Protocol("payload length with its top bit set"));
        }
        if self.len > max_frame {
            return Err(FrameError::TooBig);
        }
        Ok(())
    }
}

/// Appends a frame header to `out`, with the shortest length encoding.
///
/// ```
/// use shardloop::http::ws::frame;
/// let mut out = Vec::new();
/// frame::encode_head(true, frame::opcode::BINARY, 300, None, &mut out);
/// assert_eq!(out, [0x82, 126, 0x01, 0x2c]);
/// ```
pub fn encode_head(fin: bool, opcode: u8, len: u64, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    out.push(u8::from(fin) << 7 | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(m | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `data` with `key`, as if `data` began `offset` bytes into the
/// payload (so a payload can be unmasked in pieces). Masking and
/// unmasking are the same operation.
///
/// ```
/// use shardloop::http::ws::frame::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// apply_mask(&mut data[..2], [0x37, 0xfa, 0x21, 0x3d], 0);
/// apply_mask(&mut data[2..], [0x37, 0xfa, 0x21, 0x3d], 2);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    // Eight bytes at a time: the key repeated twice is a u64.
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Close codes a peer may send (RFC 6455 §7.4.1, §7.4.2): the defined
/// ones that are not reserved for local use, and 3000–4999.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_use_the_shortest_form_and_read_back() {
        for (len, header_len) in [
            (0u64, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let mut out = Vec::new();
                encode_head(false, opcode::BINARY, len, mask, &mut out);
                let extra = if mask.is_some() { 4 } else { 0 };
                assert_eq!(out.len(), header_len + extra);
                let h = FrameHead::parse(&out).unwrap();
                assert_eq!(
                    (h.fin, h.len, h.mask, h.header_len),
                    (false, len, mask, out.len())
                );
                for cut in 0..out.len() {
                    assert_eq!(FrameHead::parse(&out[..cut]), None, "{len} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn the_rules_of_section_5() {
        let head = |b0: u8, b1: u8| FrameHead::parse(&[b0, b1, 1, 2, 3, 4]).unwrap();
        let ok = head(0x81, 0x85);
        assert_eq!(ok.check(true, 100), Ok(()));
        assert!(matches!(ok.check(false, 100), Err(FrameError::Protocol(_))));
        assert!(matches!(
            head(0x81, 0x05).check(true, 100),
            Err(FrameError::Protocol(_))
        ));
        // RSV1, reserved opcodes 3 and 0xB.
        assert!(head(0xC1, 0x85).check(true, 100).is_err());
        assert!(head(0x83, 0x85).check(true, 100).is_err());
        assert!(head(0x8B, 0x85).check(true, 100).is_err());
        // A fragmented ping; a ping of 126 bytes.
        assert!(head(0x09, 0x85).check(true, 100).is_err());
        let mut big = Vec::new();
        encode_head(true, opcode::PING, 126, Some([0; 4]), &mut big);
        assert!(FrameHead::parse(&big).unwrap().check(true, 1000).is_err());
        // Exactly the limit, and one past it.
        assert_eq!(head(0x82, 0x80 | 100).check(true, 100), Ok(()));
        assert_eq!(
            head(0x82, 0x80 | 101).check(true, 100),
            Err(FrameError::TooBig)
        );
        // A 64-bit length with its top bit set.
        let mut huge = vec![0x82, 0xff];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        let h = FrameHead::parse(&huge).unwrap();
        assert!(matches!(
            h.check(true, u64::MAX),
            Err(FrameError::Protocol(_))
        ));
    }

    #[test]
    fn close_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert!(close_code_allowed(c), "{c}");
        }
        for c in [0, 999, 1004, 1005, 1006, 1012, 1015, 2999, 5000, u16::MAX] {
            assert!(!close_code_allowed(c), "{c}");
        }
    }

    proptest! {
        #[test]
        fn masking_in_pieces_equals_masking_whole(
            data in proptest::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            cut in 0usize..100,
        ) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let naive: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
            prop_assert_eq!(&whole, &naive);
            let mut pieces = data.clone();
            apply_mask(&mut pieces[..cut], key, 0);
            apply_mask(&mut pieces[cut..], key, cut);
            prop_assert_eq!(pieces, naive);
        }

        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Some(h) = FrameHead::parse(&bytes) {
                prop_assert!(h.header_len <= bytes.len());
                let _ = h.check(true, 1 << 20);
            }
        }
    }
}
