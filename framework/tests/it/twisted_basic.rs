//! Twisted's `twisted/protocols/test/test_basic.py`, ported: the same
//! inputs, split the same ways, with the same expected frames, for
//! `LineReceiver` (and `LineOnlyReceiver` through it), `NetstringReceiver`
//! and `Int8/16/32StringReceiver`. Each test names the Twisted test it ports.
//!
//! Mapping: `lineReceived`/`stringReceived` → `frame_received`;
//! `rawDataReceived` → `raw_data_received`; `setLineMode(extra)` →
//! `set_frame_mode_with(extra)`; `lineLengthExceeded(data)` /
//! `lengthLimitExceeded(n)` → `frame_error(error, data)`; `clearLineBuffer`
//! → `clear_frame_buffer`; `pauseProducing`/`resumeProducing` →
//! `pause_reading`/`resume_reading`; `transport.disconnecting` → the
//! connection is closing or closed. The `recvd` compatibility attribute is
//! expressed with `clear_frame_buffer` + `set_frame_mode_with`.

use shardloop::framing::{
    Decoder, FrameError, FrameProtocol, Framed, FramedConn, LengthPrefixedDecoder, LineDecoder,
    NetstringDecoder, PrefixWidth,
};
use shardloop::testing::FakeTransport;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

type Log = Rc<RefCell<Vec<Vec<u8>>>>;
/// `lengthLimitExceeded` calls: the length and the data buffered then.
type Exceeded = Rc<RefCell<Vec<(usize, Vec<u8>)>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// A framed protocol built by `make` around a fresh log, over a fake socket.
fn recording<D: Decoder, P: FrameProtocol<D>>(
    decoder: D,
    make: impl FnOnce(Log) -> P,
) -> (FakeTransport<Framed<D, P>>, Log) {
    let log = log();
    let p = make(log.clone());
    (FakeTransport::new(Framed::new(decoder, p)), log)
}

fn strs(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.to_vec()).collect()
}

/// Feeds `data` in packets of `size` bytes, as test_basic's loops do.
fn feed<P: shardloop::Protocol>(t: &mut FakeTransport<P>, data: &[u8], size: usize) {
    for chunk in data.chunks(size) {
        t.receive(chunk);
    }
}

/// True once the protocol closed (Twisted: `transport.disconnecting`).
fn disconnecting<P: shardloop::Protocol>(t: &FakeTransport<P>) -> bool {
    t.fin_sent() || t.aborted() || t.close_reason().is_some()
}

// ---- LineTester ------------------------------------------------------------

const LINE_TESTER_MAX: usize = 64;

/// Twisted's `LineTester`: delimiter `\n`, MAX_LENGTH 64.
struct LineTester {
    received: Log,
    length: usize,
}

type Lines<P> = Framed<LineDecoder, P>;

fn line_tester(max: usize) -> (FakeTransport<Lines<LineTester>>, Log) {
    recording(LineDecoder::new(b"\n".to_vec(), max), |received| {
        LineTester {
            received,
            length: 0,
        }
    })
}

impl FrameProtocol<LineDecoder> for LineTester {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        self.received.borrow_mut().push(line.to_vec());
        if line.is_empty() {
            conn.set_raw_mode();
        } else if line == b"pause" {
            conn.pause_reading();
            conn.call_later(Duration::from_millis(1), |_, c| c.resume_reading());
        } else if line == b"rawpause" {
            conn.pause_reading();
            conn.set_raw_mode();
            self.received.borrow_mut().push(Vec::new());
            conn.call_later(Duration::from_millis(1), |_, c| c.resume_reading());
        } else if line == b"stop" {
            conn.close();
        } else if let Some(n) = line.strip_prefix(b"len ") {
            self.length = std::str::from_utf8(n).unwrap().parse().unwrap();
        }
    }

    fn raw_data_received(
        &mut self,
        conn: &mut FramedConn<'_, '_, LineDecoder, Self>,
        data: &[u8],
    ) -> usize {
        let n = self.length.min(data.len());
        self.received
            .borrow_mut()
            .last_mut()
            .unwrap()
            .extend_from_slice(&data[..n]);
        self.length -= n;
        if self.length == 0 {
            conn.set_frame_mode();
        }
        n
    }

    fn frame_error(
        &mut self,
        conn: &mut FramedConn<'_, '_, LineDecoder, Self>,
        _error: &FrameError,
        data: &[u8],
    ) {
        if data.len() > LINE_TESTER_MAX + 1 {
            conn.set_frame_mode_with(&data[LINE_TESTER_MAX + 1..]);
        }
    }
}

/// test_basic's `LineReceiverTests.buffer`, byte for byte.
const BUFFER: &[u8] = b"len 10\n\n0123456789len 5\n\n1234\nlen 20\nfoo 123\n\n0123456789\n012345678len 0\nfoo 5\n\n1234567890123456789012345678901234567890123456789012345678901234567890\nlen 1\n\na";

#[test]
fn line_receiver_test_buffer() {
    let output = strs(&[
        b"len 10",
        b"0123456789",
        b"len 5",
        b"1234\n",
        b"len 20",
        b"foo 123",
        b"0123456789\n012345678",
        b"len 0",
        b"foo 5",
        b"",
        b"67890",
        b"len 1",
        b"a",
    ]);
    for packet_size in 1..10 {
        let (mut t, received) = line_tester(LINE_TESTER_MAX);
        feed(&mut t, BUFFER, packet_size);
        assert_eq!(*received.borrow(), output, "packet size {packet_size}");
    }
}

/// Feeds `buf` at packet sizes 1..10: `out1` while paused, `out2` after the
/// resume timer (test_basic's `clock.advance(0)`).
fn pause_then_resume(buf: &[u8], out1: &[Vec<u8>], out2: &[Vec<u8>]) {
    for packet_size in 1..10 {
        let (mut t, received) = line_tester(LINE_TESTER_MAX);
        feed(&mut t, buf, packet_size);
        assert_eq!(*received.borrow(), out1, "packet size {packet_size}");
        t.advance(Duration::from_millis(1));
        assert_eq!(*received.borrow(), out2, "packet size {packet_size}");
    }
}

#[test]
fn line_receiver_test_pausing() {
    let buf = b"twiddle1\ntwiddle2\npause\ntwiddle3\n";
    let out1 = strs(&[b"twiddle1", b"twiddle2", b"pause"]);
    let mut out2 = out1.clone();
    out2.push(b"twiddle3".to_vec());
    pause_then_resume(buf, &out1, &out2);
}

#[test]
fn line_receiver_test_raw_pausing() {
    let buf = b"twiddle1\ntwiddle2\nlen 5\nrawpause\n12345twiddle3\n";
    let out1 = strs(&[b"twiddle1", b"twiddle2", b"len 5", b"rawpause", b""]);
    let out2 = strs(&[
        b"twiddle1",
        b"twiddle2",
        b"len 5",
        b"rawpause",
        b"12345",
        b"twiddle3",
    ]);
    pause_then_resume(buf, &out1, &out2);
}

#[test]
fn line_receiver_test_stop_producing() {
    let buf = b"twiddle1\ntwiddle2\nstop\nmore\nstuff\n";
    for packet_size in 1..10 {
        let (mut t, received) = line_tester(LINE_TESTER_MAX);
        feed(&mut t, buf, packet_size);
        assert_eq!(
            *received.borrow(),
            strs(&[b"twiddle1", b"twiddle2", b"stop"])
        );
    }
}

#[test]
fn line_receiver_test_line_receiver_as_producer() {
    let (mut t, received) = line_tester(LINE_TESTER_MAX);
    t.receive(b"produce\nhello world\nunproduce\ngoodbye\n");
    assert_eq!(
        *received.borrow(),
        strs(&[b"produce", b"hello world", b"unproduce", b"goodbye"])
    );
}

/// Twisted's `ClearingReceiver`.
struct ClearingReceiver {
    seen: Rc<RefCell<(Vec<u8>, Vec<u8>)>>,
}
impl FrameProtocol<LineDecoder> for ClearingReceiver {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        let rest = conn.clear_frame_buffer();
        *self.seen.borrow_mut() = (line.to_vec(), rest);
    }
}

#[test]
fn line_receiver_test_clear_line_buffer() {
    let seen = Rc::new(RefCell::new((Vec::new(), Vec::new())));
    let p = ClearingReceiver { seen: seen.clone() };
    let mut t = FakeTransport::new(Framed::new(LineDecoder::default(), p));
    t.receive(b"foo\r\nbar\r\nbaz");
    assert_eq!(*seen.borrow(), (b"foo".to_vec(), b"bar\r\nbaz".to_vec()));
    t.receive(b"quux\r\n");
    assert_eq!(*seen.borrow(), (b"quux".to_vec(), Vec::new()));
}

/// Twisted's `FlippingLineTester`: raw mode after each line, back to lines
/// with all but the first raw byte.
struct FlippingLineTester {
    lines: Log,
}
impl FrameProtocol<LineDecoder> for FlippingLineTester {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        self.lines.borrow_mut().push(line.to_vec());
        conn.set_raw_mode();
    }
    fn raw_data_received(
        &mut self,
        conn: &mut FramedConn<'_, '_, LineDecoder, Self>,
        data: &[u8],
    ) -> usize {
        conn.set_frame_mode_with(&data[1..]);
        data.len()
    }
}

#[test]
fn line_receiver_test_stack_recursion() {
    let limit = 1000;
    let lines = log();
    let p = FlippingLineTester {
        lines: lines.clone(),
    };
    let mut t = FakeTransport::new(Framed::new(LineDecoder::new(b"\n".to_vec(), 16384), p));
    t.receive(&b"x\nx".repeat(limit));
    assert_eq!(lines.borrow().concat(), b"x".repeat(limit));
}

/// Twisted's plain `LineReceiver` (MAX_LENGTH 16384, `\r\n`): lines ignored.
struct Plain;
impl FrameProtocol<LineDecoder> for Plain {
    type Message = ();
    fn frame_received(&mut self, _: &mut FramedConn<'_, '_, LineDecoder, Self>, _: &[u8]) {}
}

fn plain() -> FakeTransport<Lines<Plain>> {
    FakeTransport::new(Framed::new(LineDecoder::default(), Plain))
}

const MAX: usize = 16384;

#[test]
fn line_receiver_test_maximum_line_length() {
    let mut t = plain();
    t.receive(&[vec![b'x'; MAX + 1], b"\r\nr".to_vec()].concat());
    assert!(disconnecting(&t));
}

#[test]
fn line_receiver_test_maximum_line_length_partial_delimiter() {
    let (mut t, received) = line_tester(4);
    let line = b"xxx";
    t.receive(line);
    t.receive(b""); // delimiter[:-1] of "\n"
    t.receive(&[b"\n".as_slice(), line].concat());
    assert!(!disconnecting(&t));
    assert_eq!(*received.borrow(), strs(&[line]));
}

#[test]
fn line_receiver_test_not_quite_maximum_line_length_unfinished() {
    let mut t = plain();
    t.receive(&[vec![b'x'; MAX], b"\r".to_vec()].concat());
    assert!(!disconnecting(&t));
}

#[test]
fn line_receiver_test_maximum_line_length_remaining() {
    let mut t = plain();
    t.receive(&vec![b'x'; MAX + 2]);
    assert!(disconnecting(&t));
}

/// Twisted's `ExcessivelyLargeLineCatcher` (MAX_LENGTH 6): records what
/// `lineLengthExceeded` gets and stays connected.
struct Catcher {
    long_lines: Log,
}
impl FrameProtocol<LineDecoder> for Catcher {
    type Message = ();
    fn frame_received(&mut self, _: &mut FramedConn<'_, '_, LineDecoder, Self>, _: &[u8]) {}
    fn frame_error(
        &mut self,
        _: &mut FramedConn<'_, '_, LineDecoder, Self>,
        _: &FrameError,
        data: &[u8],
    ) {
        self.long_lines.borrow_mut().push(data.to_vec());
    }
}

fn catcher() -> (FakeTransport<Lines<Catcher>>, Log) {
    recording(LineDecoder::new(b"\r\n".to_vec(), 6), |long_lines| {
        Catcher { long_lines }
    })
}

#[test]
fn line_length_exceeded_test_long_unended_line() {
    let (mut t, long) = catcher();
    let excessive = vec![b'x'; 6 * 2 + 2];
    t.receive(&excessive);
    assert_eq!(*long.borrow(), vec![excessive]);
}

#[test]
fn line_length_exceeded_test_long_line_after_short_line() {
    let (mut t, long) = catcher();
    let excessive = vec![b'x'; 6 * 2 + 2];
    t.receive(&[b"x\r\n".as_slice(), &excessive].concat());
    assert_eq!(*long.borrow(), vec![excessive]);
}

#[test]
fn line_length_exceeded_test_long_line_with_delimiter() {
    let (mut t, long) = catcher();
    let x = vec![b'x'; 6 * 2 + 2];
    let excessive = [x.as_slice(), b"\r\n", &x].concat();
    t.receive(&excessive);
    assert_eq!(*long.borrow(), vec![excessive]);
}

#[test]
fn line_length_exceeded_test_multiple_long_lines() {
    let (mut t, long) = catcher();
    let excessive = [vec![b'x'; 6 * 2 + 2], b"\r\n".to_vec()].concat().repeat(2);
    t.receive(&excessive);
    assert_eq!(*long.borrow(), vec![excessive]);
}

#[test]
fn line_length_exceeded_keeps_parsing_when_the_protocol_does_not_close() {
    // Twisted keeps the connection and frames later input (SMTP relies on it).
    let (mut t, long) = catcher();
    t.receive(b"xxxxxxxxxx");
    assert_eq!(long.borrow().len(), 1);
    t.receive(b"ok\r\n");
    assert!(!disconnecting(&t));
    assert_eq!(
        long.borrow().len(),
        1,
        "the short line is a line, not an error"
    );
}

// ---- LineOnlyReceiver (a LineReceiver that never enters raw mode) ----------

struct LineOnlyTester {
    received: Log,
}
impl FrameProtocol<LineDecoder> for LineOnlyTester {
    type Message = ();
    fn frame_received(&mut self, _: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        self.received.borrow_mut().push(line.to_vec());
    }
}

fn line_only() -> (FakeTransport<Lines<LineOnlyTester>>, Log) {
    recording(LineDecoder::new(b"\n".to_vec(), 64), |received| {
        LineOnlyTester { received }
    })
}

#[test]
fn line_only_receiver_test_buffer() {
    let buffer = b"foo\n    bleakness\n    desolation\n    plastic forks\n";
    let (mut t, received) = line_only();
    feed(&mut t, buffer, 1);
    let mut expected: Vec<Vec<u8>> = buffer.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    expected.pop();
    assert_eq!(*received.borrow(), expected);
}

#[test]
fn line_only_receiver_test_greater_than_maximum_line_length() {
    let (mut t, _) = line_only();
    t.receive(&[vec![b'x'; 64 + 1 + 1], b"\r\nr".to_vec()].concat());
    assert!(disconnecting(&t));
}

// ---- NetstringReceiver -----------------------------------------------------

/// Twisted's `TestNetstring`: records and echoes each string.
struct TestNetstring {
    received: Log,
}
impl FrameProtocol<NetstringDecoder> for TestNetstring {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, NetstringDecoder, Self>, s: &[u8]) {
        self.received.borrow_mut().push(s.to_vec());
        conn.write(s);
    }
}

fn netstring(max: usize) -> (FakeTransport<Framed<NetstringDecoder, TestNetstring>>, Log) {
    let received = log();
    let p = TestNetstring {
        received: received.clone(),
    };
    (
        FakeTransport::new(Framed::new(NetstringDecoder::new(max), p)),
        received,
    )
}

#[test]
fn netstring_test_buffer() {
    let strings = strs(&[
        b"hello",
        b"world",
        b"how",
        b"are",
        b"you123",
        b":today",
        &[b'a'; 515],
    ]);
    let mut out = Vec::new();
    for s in &strings {
        NetstringDecoder::encode(s, &mut out);
    }
    for packet_size in 1..10 {
        let (mut t, received) = netstring(699);
        feed(&mut t, &out, packet_size);
        assert_eq!(*received.borrow(), strings, "packet size {packet_size}");
    }
}

fn netstring_receives(input: &[u8], expected: &[&[u8]]) {
    let (mut t, received) = netstring(50);
    t.receive(input);
    assert_eq!(*received.borrow(), strs(expected));
}

#[test]
fn netstring_test_receive_empty_one_two_and_nested() {
    netstring_receives(b"0:,", &[b""]);
    netstring_receives(b"1:a,", &[b"a"]);
    netstring_receives(b"2:ab,", &[b"ab"]);
    netstring_receives(b"4:1:a,,", &[b"1:a,"]);
}

#[test]
fn netstring_test_malformed_input_disconnects() {
    // test_moreDataThanSpecified(BorderCase), test_missingNumber,
    // test_missingColon, test_missingNumberAndColon, test_onlyData.
    for input in [&b"2:aaa,"[..], b"0:a,", b":aaa,", b"3aaa,", b"aaa,", b"aaa"] {
        let (mut t, received) = netstring(50);
        t.receive(input);
        assert!(disconnecting(&t), "{:?}", String::from_utf8_lossy(input));
        assert!(received.borrow().is_empty());
    }
}

#[test]
fn netstring_test_receive_portions() {
    for parts in [
        &[&b"4:aa"[..], b"aa,"][..],
        &[b"1", b"0:01234", b"56789", b","],
        &[b"2", b":", b"a", b"b", b","],
    ] {
        let (mut t, received) = netstring(50);
        for p in parts {
            t.receive(p);
        }
        let got = received.borrow().concat();
        assert_eq!(received.borrow().len(), 1);
        assert_eq!(
            got,
            parts.concat()[parts.concat().iter().position(|&b| b == b':').unwrap() + 1
                ..parts.concat().len() - 1]
        );
    }
}

#[test]
fn netstring_test_receive_two_netstrings() {
    let (mut t, received) = netstring(50);
    t.receive(b"1:a,1");
    assert_eq!(*received.borrow(), strs(&[b"a"]));
    t.receive(b":b,");
    assert_eq!(*received.borrow(), strs(&[b"a", b"b"]));
}

#[test]
fn netstring_test_max_receive_limit() {
    let (mut t, _) = netstring(50);
    t.receive(&[b"51:".to_vec(), vec![b'a'; 51]].concat());
    assert!(disconnecting(&t));
}

#[test]
fn netstring_test_consume_length_border_cases() {
    // test_consumeLength, BorderCase1/2/3: "12:" with MAX 12 is fine (wants
    // the payload), with MAX 11 an error, as is "1000:".
    assert_eq!(NetstringDecoder::new(50).decode(b"12:").unwrap(), None);
    assert_eq!(NetstringDecoder::new(12).decode(b"12:").unwrap(), None);
    assert!(NetstringDecoder::new(11).decode(b"12:").is_err());
    assert!(NetstringDecoder::new(11).decode(b"1000:").is_err());
}

#[test]
fn netstring_test_illegal_byte_by_byte() {
    let illegal: [&[u8]; 4] = [
        b"9999999999999999999999",
        b"abc",
        b"4:abcde",
        b"51:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab,",
    ];
    for s in illegal {
        let (mut t, _) = netstring(50);
        feed(&mut t, s, 1);
        assert!(disconnecting(&t), "{:?}", String::from_utf8_lossy(s));
    }
}

// ---- Int8/16/32StringReceiver ----------------------------------------------

/// Twisted's `TestMixin` on an IntN receiver (MAX_LENGTH 50); records
/// `lengthLimitExceeded` lengths and the data buffered then (`recvd`).
struct TestIntN {
    received: Log,
    exceeded: Exceeded,
    close_on_error: bool,
}
impl FrameProtocol<LengthPrefixedDecoder> for TestIntN {
    type Message = ();
    fn frame_received(
        &mut self,
        _: &mut FramedConn<'_, '_, LengthPrefixedDecoder, Self>,
        s: &[u8],
    ) {
        self.received.borrow_mut().push(s.to_vec());
    }
    fn frame_error(
        &mut self,
        conn: &mut FramedConn<'_, '_, LengthPrefixedDecoder, Self>,
        error: &FrameError,
        data: &[u8],
    ) {
        if let FrameError::TooLong { length, .. } = error {
            self.exceeded.borrow_mut().push((*length, data.to_vec()));
        }
        if self.close_on_error {
            conn.close_with_error(error.to_string());
        }
    }
}

struct IntN {
    t: FakeTransport<Framed<LengthPrefixedDecoder, TestIntN>>,
    received: Log,
    exceeded: Exceeded,
}

fn int_n(width: PrefixWidth, max: usize, close_on_error: bool) -> IntN {
    let received = log();
    let exceeded = Rc::new(RefCell::new(Vec::new()));
    let p = TestIntN {
        received: received.clone(),
        exceeded: exceeded.clone(),
        close_on_error,
    };
    IntN {
        t: FakeTransport::new(Framed::new(LengthPrefixedDecoder::new(width, max), p)),
        received,
        exceeded,
    }
}

fn prefixed(width: PrefixWidth, s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    LengthPrefixedDecoder::new(width, usize::MAX)
        .encode(s, &mut out)
        .unwrap();
    out
}

const WIDTHS: [PrefixWidth; 3] = [PrefixWidth::U8, PrefixWidth::U16, PrefixWidth::U32];

#[test]
fn int_n_test_receive_byte_by_byte() {
    for w in WIDTHS {
        let mut r = int_n(w, 50, true);
        let strings = strs(&[b"a", &[b'b'; 16]]);
        for s in &strings {
            feed(&mut r.t, &prefixed(w, s), 1);
        }
        assert_eq!(*r.received.borrow(), strings, "{w:?}");
    }
}

#[test]
fn int_n_test_partial() {
    let partial: [(PrefixWidth, &[&[u8]]); 3] = [
        (PrefixWidth::U8, &[b"\x08", b"dzadz", b""]),
        (PrefixWidth::U16, &[b"\x00", b"hello there", b""]),
        (PrefixWidth::U32, &[b"\x00\x00\x00", b"hello there", b""]),
    ];
    for (w, strings) in partial {
        for s in strings {
            let mut r = int_n(w, 50, true);
            feed(&mut r.t, s, 1);
            assert!(r.received.borrow().is_empty(), "{w:?} {s:?}");
        }
    }
}

#[test]
fn int_n_test_send_and_data() {
    assert_eq!(prefixed(PrefixWidth::U32, b"foo"), b"\x00\x00\x00\x03foo");
    assert_eq!(prefixed(PrefixWidth::U16, b"foo"), b"\x00\x03foo");
    assert_eq!(prefixed(PrefixWidth::U8, b"foo"), b"\x03foo");
    for (w, input) in [
        (PrefixWidth::U32, &b"\x00\x00\x00\x04ubar"[..]),
        (PrefixWidth::U16, b"\x00\x04ubar"),
        (PrefixWidth::U8, b"\x04ubar"),
    ] {
        let mut r = int_n(w, 50, true);
        r.t.receive(input);
        assert_eq!(*r.received.borrow(), strs(&[b"ubar"]));
        let s = [b'b'; 16];
        assert_eq!(prefixed(w, &s)[w.bytes()..], s);
    }
}

#[test]
fn int_n_test_too_long_send() {
    for w in [PrefixWidth::U8, PrefixWidth::U16] {
        let d = LengthPrefixedDecoder::new(w, usize::MAX);
        let too = vec![b'b'; w.max_len() + 2];
        assert!(d.encode(&too, &mut Vec::new()).is_err(), "{w:?}");
    }
}

#[test]
fn int_n_test_length_limit_exceeded_and_long_string_not_delivered() {
    for w in WIDTHS {
        let mut r = int_n(w, 10, false);
        r.t.receive(&prefixed(w, &[b'x'; 11])[..w.bytes()]);
        assert_eq!(r.exceeded.borrow()[0].0, 11, "{w:?}");
        let mut r = int_n(w, 10, false);
        r.t.receive(&prefixed(w, &[b'x'; 11]));
        assert!(r.received.borrow().is_empty(), "{w:?}");
    }
}

#[test]
fn int_n_test_recvd_in_length_limit_exceeded() {
    for w in WIDTHS {
        let data = b"too long";
        let mut r = int_n(w, data.len() - 1, false);
        let message = prefixed(w, data);
        r.t.receive(&message);
        assert_eq!(
            r.exceeded.borrow()[0],
            (data.len(), message.clone()),
            "{w:?}"
        );
        // Twisted keeps the bytes: every later arrival reports it again.
        r.t.receive(b"more");
        assert_eq!(r.exceeded.borrow().len(), 2);
        assert!(r.received.borrow().is_empty());
    }
}

#[test]
fn int_n_test_illegal_byte_by_byte() {
    for (w, s) in [
        (PrefixWidth::U32, &b"\x10\x00\x00\x00aaaaaa"[..]),
        (PrefixWidth::U16, b"\x10\x00aaaaaa"),
        (PrefixWidth::U8, b"\x00\x00aaaaaa"),
    ] {
        let mut r = int_n(w, 50, true);
        feed(&mut r.t, s, 1);
        assert!(disconnecting(&r.t), "{w:?}");
    }
}

/// Replaces the rest of the buffer in `frame_received`, as Twisted's tests
/// do by assigning `recvd`.
struct Recvd {
    received: Log,
    rest_seen: Log,
    replace_with: Option<Vec<u8>>,
    strip: usize,
}
impl FrameProtocol<LengthPrefixedDecoder> for Recvd {
    type Message = ();
    fn frame_received(
        &mut self,
        conn: &mut FramedConn<'_, '_, LengthPrefixedDecoder, Self>,
        s: &[u8],
    ) {
        self.received.borrow_mut().push(s.to_vec());
        let rest = conn.clear_frame_buffer();
        self.rest_seen.borrow_mut().push(rest.clone());
        let new = match self.replace_with.take() {
            Some(v) => v,
            None => rest[self.strip.min(rest.len())..].to_vec(),
        };
        conn.set_frame_mode_with(&new);
    }
}

fn recvd(
    w: PrefixWidth,
    replace_with: Option<Vec<u8>>,
    strip: usize,
) -> (
    FakeTransport<Framed<LengthPrefixedDecoder, Recvd>>,
    Log,
    Log,
) {
    let (received, rest_seen) = (log(), log());
    let p = Recvd {
        received: received.clone(),
        rest_seen: rest_seen.clone(),
        replace_with,
        strip,
    };
    let t = FakeTransport::new(Framed::new(LengthPrefixedDecoder::new(w, 50), p));
    (t, received, rest_seen)
}

#[test]
fn int_n_test_recvd_contains_remaining_data() {
    for w in WIDTHS {
        let (mut t, _, rest_seen) = recvd(w, None, 0);
        let complete = prefixed(w, b"aaaaa");
        let incomplete = &prefixed(w, b"bbbbb")[..w.bytes() + 4];
        t.receive(&[complete.as_slice(), incomplete].concat());
        assert_eq!(*rest_seen.borrow(), vec![incomplete.to_vec()], "{w:?}");
    }
}

#[test]
fn int_n_test_recvd_changed() {
    for w in WIDTHS {
        let message_c = prefixed(w, b"ccccc");
        let (mut t, received, _) = recvd(w, Some(message_c), 0);
        t.receive(&[prefixed(w, b"aaaaa"), prefixed(w, b"bbbbb")].concat());
        assert_eq!(*received.borrow(), strs(&[b"aaaaa", b"ccccc"]), "{w:?}");
    }
}

#[test]
fn int_n_test_switching() {
    let switch = b"\x00\x00\x00\x00";
    for w in WIDTHS {
        let strings = strs(&[b"a", &[b'b'; 16]]);
        let mut mix = Vec::new();
        for s in &strings {
            mix.extend(prefixed(w, s));
            mix.extend_from_slice(switch);
        }
        let (mut t, received, _) = recvd(w, None, switch.len());
        t.receive(&mix);
        t.receive(b"\x01");
        assert_eq!(*received.borrow(), strings, "{w:?}");
        assert_eq!(t.protocol().unwrap().buffered_input(), 1, "{w:?}");
    }
}

// ---- ProducerTests.test_pauseResume ------------------------------------------

/// Twisted's `ConsumingProtocol`: echoes a line, then pauses.
struct Consuming;
impl FrameProtocol<LineDecoder> for Consuming {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        conn.write(line);
        conn.write(b"|");
        conn.pause_reading();
    }
    fn message(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, _: ()) {
        conn.resume_reading();
    }
}

#[test]
fn producer_test_pause_resume() {
    let mut t = FakeTransport::new(Framed::new(LineDecoder::default(), Consuming));
    t.receive(b"hello, ");
    assert_eq!(t.written(), b"");
    assert!(!t.is_reading_paused());
    t.receive(b"world\r\n");
    assert_eq!(t.written(), b"hello, world|");
    assert!(t.is_reading_paused());
    t.message(());
    assert_eq!(t.written(), b"hello, world|");
    assert!(!t.is_reading_paused());
    t.receive(b"hello\r\nworld\r\n");
    assert_eq!(t.written(), b"hello, world|hello|");
    assert!(t.is_reading_paused());
    t.message(());
    assert_eq!(t.written(), b"hello, world|hello|world|");
    assert!(t.is_reading_paused());
    t.receive(b"goodbye\r\n");
    assert_eq!(t.written(), b"hello, world|hello|world|");
    t.message(());
    assert_eq!(t.written(), b"hello, world|hello|world|goodbye|");
    assert!(t.is_reading_paused());
    t.message(());
    assert_eq!(t.written(), b"hello, world|hello|world|goodbye|");
    assert!(!t.is_reading_paused());
}

// ---- Beyond test_basic: the issue's own defects ------------------------------

/// Enters raw mode from a message with a partial line buffered.
struct RawFromMessage {
    raw: Log,
    lines: Log,
}
impl FrameProtocol<LineDecoder> for RawFromMessage {
    type Message = bool;
    fn frame_received(&mut self, _: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        self.lines.borrow_mut().push(line.to_vec());
    }
    fn raw_data_received(
        &mut self,
        _: &mut FramedConn<'_, '_, LineDecoder, Self>,
        data: &[u8],
    ) -> usize {
        self.raw.borrow_mut().push(data.to_vec());
        data.len()
    }
    fn message(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, raw: bool) {
        if raw {
            conn.set_raw_mode();
        } else {
            conn.set_frame_mode();
        }
    }
}

#[test]
fn raw_mode_entered_outside_a_callback_sees_every_buffered_byte() {
    let (raw, lines) = (log(), log());
    let p = RawFromMessage {
        raw: raw.clone(),
        lines: lines.clone(),
    };
    let mut t = FakeTransport::new(Framed::new(LineDecoder::default(), p));
    t.receive(b"abc");
    t.message(true);
    t.receive(b"\r\nxyz\r\n");
    assert_eq!(raw.borrow().concat(), b"abc\r\nxyz\r\n");
    assert!(lines.borrow().is_empty());
    // And back: a partial line searched in line mode, then raw, then line
    // mode again must not reuse a stale search position.
    let (raw, lines) = (log(), log());
    let p = RawFromMessage {
        raw: raw.clone(),
        lines: lines.clone(),
    };
    let mut t = FakeTransport::new(Framed::new(LineDecoder::default(), p));
    t.receive(b"abcdef");
    t.message(false);
    t.receive(b"\r\nxyz\r\n");
    assert_eq!(*lines.borrow(), strs(&[b"abcdef", b"xyz"]));
}

#[test]
fn a_decoder_is_a_pure_function_of_its_input() {
    let d = LineDecoder::default();
    let a = d.decode(b"abc\r\ndef").unwrap();
    let _ = d.decode(b"zzzzzzzzzzzzzzzzzz");
    assert_eq!(d.decode(b"abc\r\ndef").unwrap(), a);
}
