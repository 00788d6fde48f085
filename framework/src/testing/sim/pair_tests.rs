//! The simulated pair: determinism (a seed replays exactly), a line
//! protocol's invariants over hundreds of seeds, a planted bug found by
//! the pieces the network cuts, resets from the network, half-close, and
//! timers on the virtual clock.

use super::{connected, Arrival, Network, Side};
use crate::framing::{FrameProtocol, Framed, FramedConn, LineDecoder};
use crate::{CloseReason, Conn, Protocol};
use std::time::Duration;

/// Sends `n` numbered requests (all at once, or each after the answer to
/// the one before), keeps the answers, closes after the last.
struct Asker {
    n: usize,
    pipelined: bool,
    answers: Vec<String>,
}

impl FrameProtocol<LineDecoder> for Asker {
    type Message = ();
    fn connection_made(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>) {
        let first = if self.pipelined { self.n } else { 1 };
        for i in 0..first {
            conn.write(format!("req {i}\r\n").as_bytes());
        }
    }
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        self.answers
            .push(String::from_utf8_lossy(line).into_owned());
        let done = self.answers.len();
        if done == self.n {
            conn.close();
        } else if !self.pipelined {
            conn.write(format!("req {done}\r\n").as_bytes());
        }
    }
}

/// Answers each line with "ok " and the line.
struct Answerer;

impl FrameProtocol<LineDecoder> for Answerer {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        conn.write(b"ok ");
        conn.write(line);
        conn.write(b"\r\n");
    }
}

/// The planted bug: takes each read for a whole line.
struct Careless;

impl Protocol for Careless {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let line = data.strip_suffix(b"\r\n").unwrap_or(data);
        conn.write(b"ok ");
        conn.write(line);
        conn.write(b"\r\n");
    }
}

fn lines() -> LineDecoder {
    LineDecoder::new(b"\r\n".to_vec(), 1024)
}

fn asker(n: usize) -> Framed<LineDecoder, Asker> {
    asking(n, true)
}

fn asking(n: usize, pipelined: bool) -> Framed<LineDecoder, Asker> {
    Framed::new(
        lines(),
        Asker {
            n,
            pipelined,
            answers: Vec::new(),
        },
    )
}

/// The bytes delivered to `side`, in order.
fn received(trace: &[super::Event], side: Side) -> Vec<u8> {
    trace
        .iter()
        .filter(|e| e.to == side)
        .filter_map(|e| match &e.what {
            Arrival::Data(d) => Some(d.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ok req {i}")).collect()
}

#[test]
fn a_seed_replays_exactly_and_seeds_differ() {
    let run = |seed| {
        let mut sim = connected(
            seed,
            asker(30),
            Framed::new(lines(), Answerer),
            Network::default(),
        );
        sim.run_for(Duration::from_secs(2));
        sim.trace().to_vec()
    };
    let a = run(7);
    assert!(a.len() > 30, "pieces were delivered: {}", a.len());
    assert_eq!(a, run(7), "the same seed, the same run");
    assert_ne!(a, run(8), "another seed, another run");
}

#[test]
fn a_line_protocol_keeps_its_invariants_over_many_seeds() {
    for seed in 0..300 {
        let mut sim = connected(
            seed,
            asker(20),
            Framed::new(lines(), Answerer),
            Network::default(),
        );
        sim.run_for(Duration::from_secs(2));
        // The client closed after its last answer (its protocol is gone:
        // what it got is read from the trace).
        assert!(sim.client().fin_sent(), "seed {seed}");
        assert!(
            !sim.server().is_open(),
            "seed {seed}: the server saw the FIN and closed"
        );
        assert_eq!(
            sim.client().close_reason(),
            Some(CloseReason::Done),
            "seed {seed}"
        );
        let to_client = received(sim.trace(), Side::Client);
        let text = String::from_utf8(to_client).unwrap();
        let got: Vec<String> = text.split_terminator("\r\n").map(str::to_string).collect();
        assert_eq!(got, expected(20), "seed {seed}");
    }
}

#[test]
fn cutting_the_stream_into_pieces_finds_a_planted_bug() {
    let answers_of = |seed, net: Network| {
        // One request at a time: a benign network delivers each whole.
        let mut sim = connected(seed, asking(5, false), Careless, net);
        sim.run_for(Duration::from_secs(1));
        let to_client = received(sim.trace(), Side::Client);
        String::from_utf8_lossy(&to_client)
            .split_terminator("\r\n")
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Each request in one piece: the bug hides, whatever the seed.
    let whole = Network {
        max_piece: 1 << 20,
        ..Network::default()
    };
    assert!((0..20).all(|seed| answers_of(seed, whole.clone()) == expected(5)));
    // Pieces of 1 to 7 bytes: a seed shows it (and replays it).
    let failing = (0..20).find(|&seed| answers_of(seed, Network::default()) != expected(5));
    let seed = failing.expect("the careless server is caught");
    assert_eq!(
        answers_of(seed, Network::default()),
        answers_of(seed, Network::default())
    );
}

#[test]
fn the_network_resets_connections_and_both_ends_hear_it() {
    let net = Network {
        reset_chance: 0.05,
        ..Network::default()
    };
    let mut resets = 0;
    for seed in 0..100 {
        let mut sim = connected(seed, asker(40), Framed::new(lines(), Answerer), net.clone());
        sim.run_for(Duration::from_secs(2));
        if sim.trace().last().is_some_and(|e| e.what == Arrival::Reset) {
            resets += 1;
            assert!(
                !sim.client().is_open() && !sim.server().is_open(),
                "seed {seed}"
            );
            let reset = |r: Option<CloseReason>| matches!(r, Some(CloseReason::Io { kind, .. }) if kind == std::io::ErrorKind::ConnectionReset);
            assert!(reset(sim.client().close_reason()), "seed {seed}");
            assert!(reset(sim.server().close_reason()), "seed {seed}");
        }
    }
    assert!(
        resets > 50,
        "80 pieces at 5% each: most runs are cut ({resets})"
    );
}

/// Never answers.
struct Silent;

impl Protocol for Silent {
    type Message = ();
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn eof_received(&mut self, _: &mut Conn<'_, Self>) {}
}

/// Asks once and gives up after 300 ms without an answer.
struct Patient;

impl Protocol for Patient {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"anyone?\r\n");
        conn.set_read_timeout(Some(Duration::from_millis(300)));
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn timers_run_on_the_virtual_clock_and_a_half_close_is_delivered() {
    let mut sim = connected(3, Patient, Silent, Network::default());
    sim.run_for(Duration::from_millis(250));
    assert!(sim.client().is_open());
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.client().close_reason(), Some(CloseReason::ReadTimeout));
    // The client's FIN reached the silent server, which keeps its side open.
    sim.run_for(Duration::from_millis(50));
    assert!(sim
        .trace()
        .iter()
        .any(|e| e.to == Side::Server && e.what == Arrival::Fin));
    assert!(
        sim.server().is_open(),
        "a half-closed server may go on writing"
    );
    assert!(sim.now() >= Duration::from_millis(400));
}
