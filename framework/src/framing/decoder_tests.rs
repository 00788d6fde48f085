//! The decoders against every split of their input, their limits to the
//! byte, and overflowing lengths.

mod tests {
    use super::super::decoder::*;
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

mod limits {
    use super::super::decoder::*;

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
