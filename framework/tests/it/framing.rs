//! Framing adapters driven through the testing kit (no sockets, no sleeps).

use proptest::prelude::*;
use shardloop::framing::{
    FrameProtocol, FramedConn, LengthPrefixed, LengthPrefixedDecoder, LineDecoder, LineReceiver,
    NetstringDecoder, NetstringReceiver, PrefixWidth,
};
use shardloop::testing::FakeTransport;
use shardloop::CloseReason;

/// Records events. `RAW n` switches to raw mode for the next n bytes;
/// `PAUSE` pauses reading.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
    raw_left: usize,
    /// Raw bytes of the current segment (recorded as one event when complete).
    raw: Vec<u8>,
}

impl FrameProtocol<LineDecoder> for Recorder {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).to_string();
        if let Some(n) = line.strip_prefix("RAW ") {
            self.raw_left = n.parse().unwrap();
            conn.set_raw_mode();
        } else if line == "PAUSE" {
            conn.pause_reading();
        }
        self.events.push(format!("line:{line}"));
    }
    fn raw_data_received(
        &mut self,
        conn: &mut FramedConn<'_, '_, LineDecoder, Self>,
        data: &[u8],
    ) -> usize {
        let n = data.len().min(self.raw_left);
        self.raw_left -= n;
        self.raw.extend_from_slice(&data[..n]);
        if self.raw_left == 0 {
            let seg = std::mem::take(&mut self.raw);
            self.events
                .push(format!("raw:{}", String::from_utf8_lossy(&seg)));
            conn.set_frame_mode();
        }
        n
    }
    /// Any bus message resumes reading.
    fn message(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, _msg: ()) {
        conn.resume_reading();
    }
}

fn lines() -> FakeTransport<LineReceiver<Recorder>> {
    FakeTransport::new(LineReceiver::new(
        LineDecoder::default(),
        Recorder::default(),
    ))
}

fn events(t: &mut FakeTransport<LineReceiver<Recorder>>) -> Vec<String> {
    t.protocol().unwrap().inner().events.clone()
}

#[test]
fn raw_mode_and_back_mid_buffer_keeps_every_byte_in_order() {
    let mut t = lines();
    t.receive(b"a\r\nRAW 5\r\nhel");
    t.receive(b"lob\r\nc\r\n");
    assert_eq!(
        events(&mut t),
        vec!["line:a", "line:RAW 5", "raw:hello", "line:b", "line:c"]
    );
}

#[test]
fn lines_are_held_while_paused_and_delivered_on_resume() {
    let mut t = lines();
    t.receive(b"one\r\nPAUSE\r\ntwo\r\nthr");
    assert_eq!(events(&mut t), vec!["line:one", "line:PAUSE"]);
    assert!(t.is_reading_paused());
    t.receive(b"ee\r\n");
    assert_eq!(events(&mut t).len(), 2, "nothing while paused");
    t.message(()); // the protocol resumes reading
    assert!(!t.is_reading_paused());
    assert_eq!(
        events(&mut t),
        vec!["line:one", "line:PAUSE", "line:two", "line:three"]
    );
}

#[test]
fn too_long_line_closes_with_a_clear_reason_by_default() {
    let mut t = FakeTransport::new(LineReceiver::new(
        LineDecoder::new(b"\n".to_vec(), 8),
        Recorder::default(),
    ));
    t.receive(b"short\n0123456789abcdef");
    assert!(!t.is_open());
    match t.close_reason() {
        Some(CloseReason::ProtocolError(why)) => {
            assert!(why.contains("exceeds the maximum of 8"), "{why}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(t.fin_sent(), "closed gracefully, not reset");
}

#[test]
fn bare_lf_accepted_when_enabled() {
    let mut t = FakeTransport::new(LineReceiver::new(
        LineDecoder::default().accept_bare_lf(true),
        Recorder::default(),
    ));
    t.receive(b"unix\nwindows\r\n");
    assert_eq!(events(&mut t), vec!["line:unix", "line:windows"]);
}

struct Frames(Vec<Vec<u8>>);
impl FrameProtocol<LengthPrefixedDecoder> for Frames {
    type Message = ();
    fn frame_received(
        &mut self,
        _c: &mut FramedConn<'_, '_, LengthPrefixedDecoder, Self>,
        f: &[u8],
    ) {
        self.0.push(f.to_vec());
    }
}
impl FrameProtocol<NetstringDecoder> for Frames {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, NetstringDecoder, Self>, f: &[u8]) {
        let mut out = Vec::new();
        NetstringDecoder::encode(f, &mut out);
        conn.write(&out);
        self.0.push(f.to_vec());
    }
}

#[test]
fn length_prefixed_and_netstrings_through_the_adapter() {
    let d = LengthPrefixedDecoder::new(PrefixWidth::U16, 1000);
    let mut input = Vec::new();
    d.encode(b"first", &mut input).unwrap();
    d.encode(b"", &mut input).unwrap();
    d.encode(b"third", &mut input).unwrap();
    let mut t = FakeTransport::new(LengthPrefixed::new(d, Frames(Vec::new())));
    for b in input.chunks(3) {
        t.receive(b);
    }
    assert_eq!(
        t.protocol().unwrap().inner().0,
        vec![b"first".to_vec(), vec![], b"third".to_vec()]
    );

    let mut t = FakeTransport::new(NetstringReceiver::new(
        NetstringDecoder::new(100),
        Frames(Vec::new()),
    ));
    t.receive(b"5:hello,0:,");
    assert_eq!(t.take_written(), b"5:hello,0:,");
    t.receive(b"3:abc;");
    assert!(matches!(
        t.close_reason(),
        Some(CloseReason::ProtocolError(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the chunking, the adapter produces the same events, raw
    /// switches and pauses included.
    #[test]
    fn adapter_events_independent_of_chunking(cuts in prop::collection::vec(1usize..12, 1..40)) {
        let input: &[u8] = b"alpha\r\nRAW 7\r\n1234567beta\r\nRAW 3\r\nxyzgamma\r\ndelta\r\n";
        let mut whole = lines();
        whole.receive(input);
        let expected = events(&mut whole);
        let mut t = lines();
        let mut pos = 0;
        for c in cuts.iter().cycle() {
            if pos >= input.len() { break; }
            let end = (pos + c).min(input.len());
            t.receive(&input[pos..end]);
            pos = end;
        }
        prop_assert_eq!(events(&mut t), expected);
    }
}
