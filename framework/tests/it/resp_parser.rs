//! The resp_kv example's incremental RESP parser: every split of the input
//! gives the same commands, every length a peer sends is checked, the limits
//! hold exactly, and Redis's error texts are kept.
#[path = "../../examples/resp_kv/parser.rs"]
#[allow(dead_code)]
mod parser;
#[path = "../../examples/resp_kv/redis.rs"]
#[allow(dead_code)]
mod redis;

use parser::{Args, ProtocolError, RespParser, MAX_LINE};
use proptest::prelude::*;

/// Feeds `input` in the given piece sizes; returns the commands and the
/// first error.
fn parse_split(input: &[u8], pieces: &[usize]) -> (Vec<Args>, Option<ProtocolError>) {
    let mut p = RespParser::new(1 << 20);
    let mut out = Vec::new();
    let mut rest = input;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        p.feed(&rest[..n]);
        rest = &rest[n..];
        loop {
            match p.next() {
                Ok(Some(a)) => out.push(a),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn args(list: &[&str]) -> Args {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

const SAMPLE: &[u8] =
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhe\r\no\r\nPING\r\n*0\r\n*-1\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n\r\nECHO  a   b\n";

#[test]
fn every_byte_by_byte_and_two_way_split_gives_the_same_commands() {
    let expected = vec![
        args(&["SET", "k", "he\r\no"]),
        args(&["PING"]),
        args(&["GET", ""]),
        args(&["ECHO", "a", "b"]),
    ];
    assert_eq!(
        parse_split(SAMPLE, &[SAMPLE.len()]),
        (expected.clone(), None)
    );
    assert_eq!(parse_split(SAMPLE, &[1]), (expected.clone(), None));
    for cut in 1..SAMPLE.len() {
        assert_eq!(
            parse_split(SAMPLE, &[cut, SAMPLE.len()]),
            (expected.clone(), None),
            "cut at {cut}"
        );
    }
}

proptest! {
    #[test]
    fn any_split_is_the_same(pieces in prop::collection::vec(1usize..20, 1..10)) {
        let whole = parse_split(SAMPLE, &[SAMPLE.len()]);
        prop_assert_eq!(parse_split(SAMPLE, &pieces), whole);
    }
}

fn error_of(input: &[u8]) -> String {
    match parse_split(input, &[input.len()]).1 {
        Some(ProtocolError(why)) => why,
        None => panic!("no error for {:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn overflowing_and_malformed_lengths_are_rejected_with_redis_texts() {
    assert_eq!(
        error_of(b"*18446744073709551621\r\n"),
        "invalid multibulk length"
    );
    assert_eq!(error_of(b"*1048577\r\n"), "invalid multibulk length");
    assert_eq!(error_of(b"*1x\r\n"), "invalid multibulk length");
    assert_eq!(
        error_of(b"*1\r\n$18446744073709551621\r\n"),
        "invalid bulk length"
    );
    assert_eq!(error_of(b"*1\r\n$-1\r\n"), "invalid bulk length");
    assert_eq!(error_of(b"*1\r\n$+5\r\nhello\r\n"), "invalid bulk length");
    assert_eq!(error_of(b"*1\r\nfoo\r\n"), "expected '$', got 'f'");
    // Lengths are read with Redis's string2ll, as redis-server does:
    // no leading zero, no "-0".
    assert_eq!(error_of(b"*05\r\n"), "invalid multibulk length");
    assert_eq!(error_of(b"*-0\r\n"), "invalid multibulk length");
    assert_eq!(error_of(b"*1\r\n$04\r\nPING\r\n"), "invalid bulk length");
    // redis-server skips the two bytes after a bulk string unread.
    let (cmds, e) = parse_split(b"*1\r\n$3\r\nfooXY*1\r\n$4\r\nPING\r\n", &[64]);
    assert_eq!(
        (cmds, e),
        (vec![vec![b"foo".to_vec()], vec![b"PING".to_vec()]], None)
    );
    // At the bulk limit exactly, and one past it.
    let mut at = b"*1\r\n$1048576\r\n".to_vec();
    at.extend(std::iter::repeat_n(b'v', 1 << 20));
    at.extend_from_slice(b"\r\n");
    let (cmds, e) = parse_split(&at, &[65536]);
    assert_eq!((cmds.len(), e), (1, None));
    assert_eq!(error_of(b"*1\r\n$1048577\r\n"), "invalid bulk length");
}

#[test]
fn lines_are_capped_at_the_limit_exactly() {
    // An inline command of exactly MAX_LINE bytes is fine; one more is not.
    let mut ok = vec![b'a'; MAX_LINE];
    ok.push(b'\n');
    let (cmds, e) = parse_split(&ok, &[4096]);
    assert_eq!((cmds.len(), e), (1, None));
    let mut long = vec![b'a'; MAX_LINE + 1];
    long.push(b'\n');
    assert_eq!(error_of(&long), "too big inline request");
    // Unterminated: rejected as soon as it is too long, not buffered on.
    let (_, e) = parse_split(&vec![b'a'; MAX_LINE + 1], &[1000]);
    assert_eq!(e, Some(ProtocolError("too big inline request".into())));
    let (_, e) = parse_split(
        &[b"*".as_slice(), &vec![b'1'; MAX_LINE + 1]].concat(),
        &[777],
    );
    assert_eq!(e, Some(ProtocolError("too big inline request".into())));
}

#[test]
fn a_huge_command_in_tiny_pieces_parses() {
    // 4 MiB value in 16-byte pieces: the parser must not rescan (that would
    // take minutes); correctness here, speed in the benchmarks.
    let n = 4 << 20;
    let mut input = format!("*2\r\n$3\r\nSET\r\n${n}\r\n").into_bytes();
    input.extend(std::iter::repeat_n(b'x', n));
    input.extend_from_slice(b"\r\n");
    let mut p = RespParser::new(8 << 20);
    let mut got = None;
    for piece in input.chunks(16) {
        p.feed(piece);
        if let Some(a) = p.next().unwrap() {
            got = Some(a);
        }
    }
    let got = got.expect("one command");
    assert_eq!(got[1].len(), n);
}

#[test]
fn string2ll_follows_redis() {
    use redis::string2ll;
    assert_eq!(string2ll(b"0"), Some(0));
    assert_eq!(string2ll(b"-5"), Some(-5));
    assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"+5",
        b"05",
        b"-0",
        b" 5",
        b"5 ",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"99999999999999999999999",
        b"1e3",
        b"-",
    ] {
        assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn set_options_validate_syntax_before_numbers() {
    use redis::{parse_set_options, Expiry, SYNTAX_ERROR};
    let o = |v: &[&str]| {
        parse_set_options(
            &v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>(),
            1_000,
        )
    };
    assert_eq!(
        o(&["EX", "abc", "FOO"]),
        Err(SYNTAX_ERROR),
        "syntax first, as Redis"
    );
    assert_eq!(o(&["px", "5"]).unwrap().expiry, Expiry::AtMs(1_005));
    assert_eq!(o(&["EXAT", "7"]).unwrap().expiry, Expiry::AtMs(7_000));
    assert!(
        o(&["EX", "9223372036854775807"]).is_err(),
        "overflow is an invalid expire"
    );
    assert!(o(&["NX", "XX"]).is_err());
    assert!(o(&["GET", "NX"]).unwrap().get);
}

#[test]
fn inline_commands_split_with_redis_quoting() {
    let cmds = |input: &[u8]| parse_split(input, &[1]);
    let args = |v: &[&[u8]]| v.iter().map(|a| a.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        cmds(b"SET \"a b\" c\r\n"),
        (vec![args(&[b"SET", b"a b", b"c"])], None)
    );
    assert_eq!(
        cmds(b"SET 'x y' \"1\\x41\\n\\t\\\"\"\r\n"),
        (vec![args(&[b"SET", b"x y", b"1A\n\t\""])], None)
    );
    assert_eq!(
        cmds(b"ECHO 'it\\'s'\r\n"),
        (vec![args(&[b"ECHO", b"it's"])], None)
    );
    assert_eq!(
        cmds(b"ECHO \"\\xzz\"\r\n"),
        (vec![args(&[b"ECHO", b"xzz"])], None)
    );
    assert_eq!(cmds(b"  \t\r\nPING\n"), (vec![args(&[b"PING"])], None));
    for bad in [
        &b"SET \"a b c\r\n"[..],
        b"SET \"a\"b c\r\n",
        b"ECHO \"a\\\"\r\n",
        b"ECHO 'a\r\n",
    ] {
        let (done, e) = cmds(bad);
        assert!(done.is_empty());
        assert_eq!(
            e,
            Some(ProtocolError("unbalanced quotes in request".into()))
        );
    }
    // A NUL before the line end: redis-server never sees the line complete.
    let (done, e) = cmds(b"PING\0 x\r\nPING\r\n");
    assert_eq!((done.len(), e), (0, None));
    let mut stuck = b"PING\0".to_vec();
    stuck.extend(std::iter::repeat_n(b'x', MAX_LINE));
    let (_, e) = parse_split(&stuck, &[4096]);
    assert_eq!(e, Some(ProtocolError("too big inline request".into())));
}
