//! The connection state machine under random events: reads of every size,
//! spurious `WouldBlock`, FIN, RST, short and refused writes, write errors,
//! every close the protocol can ask for, pause/resume, holds and an
//! in-flight limit, timers and
//! the clock, over a plain connection or one behind a PROXY-header layer.
//! After every event the state's invariants hold; at the end, after the
//! connection is driven to its end, `connection_lost` ran exactly once
//! (never for a connection that was never made), the table is empty, the
//! input delivered is a prefix of what the peer sent (all of it if the
//! protocol saw EOF), and on a graceful end (no RST) every write the
//! protocol made while its output was open reached the socket, in order.

use super::{Driver, FakeSocket, ReadStep, WriteStep};
use crate::api::{CloseReason, ConnId, Settings};
use crate::proxy::ProxyLayer;
use crate::reactor::{Conn, Protocol, Readiness};
use proptest::prelude::*;
use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

/// What the protocol does when a message (or a timer) tells it to.
#[derive(Debug, Clone, Copy)]
enum Act {
    Write(usize),
    /// At least 64 KiB: goes straight to the socket when nothing is queued.
    WriteLarge,
    Close,
    CloseWithoutLinger,
    CloseWithError,
    Abort,
    ShutdownWrite,
    Pause,
    Resume,
    Hold,
    Unhold,
    CloseWhenIdle,
    NotifyFlushed,
    /// Close, then write in the same callback (flushed before FIN).
    CloseThenWrite,
    /// Ends every hold (a `close_when_idle` waiting on them closes).
    UnholdAll,
    /// `set_max_in_flight` (0: no limit).
    LimitInFlight(u32),
}

#[derive(Debug, Clone)]
enum Event {
    /// The peer sends the next `n` bytes of its stream.
    PeerSends(usize),
    SpuriousWouldBlock,
    /// The peer's FIN; `flagged`: the poller reports the read side closed.
    PeerFin {
        flagged: bool,
    },
    PeerReset,
    Readable,
    Writable,
    /// The socket will take at most `n` bytes on its next write.
    SocketTakes(usize),
    SocketBlocks,
    SocketFails,
    Proto(Act),
    Later(u64, Act),
    Advance(u64),
}

#[derive(Default)]
struct Log {
    made: u32,
    lost: u32,
    eof: u32,
    delivered: Vec<u8>,
    /// Each write: its bytes' tag, its length, and whether it had to be
    /// accepted (output open when it was made).
    writes: Vec<(u8, usize, bool)>,
    producing_paused: bool,
    violations: Vec<String>,
    close_on_eof: bool,
}

struct Prober {
    log: Rc<RefCell<Log>>,
}

impl Prober {
    fn write(&mut self, conn: &mut Conn<'_, Self>, n: usize) {
        let mut log = self.log.borrow_mut();
        // Tags differ from one write to the next, so the check can tell
        // where each write's bytes begin.
        let tag = (log.writes.len() % 250) as u8 + 1;
        let must = !conn.is_closing() && !conn.is_write_shut();
        log.writes.push((tag, n, must));
        drop(log);
        conn.write(&vec![tag; n]);
    }

    fn act(&mut self, conn: &mut Conn<'_, Self>, act: Act) {
        match act {
            Act::Write(n) => self.write(conn, n),
            Act::WriteLarge => self.write(conn, 70_000),
            Act::Close => conn.close(),
            Act::CloseWithoutLinger => conn.close_without_linger(),
            Act::CloseWithError => conn.close_with_error("bad input"),
            Act::Abort => conn.abort(),
            Act::ShutdownWrite => conn.shutdown_write(),
            Act::Pause => conn.pause_reading(),
            Act::Resume => conn.resume_reading(),
            Act::Hold => conn.hold(),
            Act::Unhold => conn.unhold(),
            Act::CloseWhenIdle => conn.close_when_idle(),
            Act::NotifyFlushed => conn.notify_flushed(),
            Act::LimitInFlight(n) => conn.set_max_in_flight((n > 0).then_some(n)),
            Act::UnholdAll => {
                while conn.holds() > 0 {
                    conn.unhold();
                }
            }
            Act::CloseThenWrite => {
                conn.close();
                self.write(conn, 10);
            }
        }
    }
}

impl Protocol for Prober {
    type Message = Act;
    fn connection_made(&mut self, _conn: &mut Conn<'_, Self>) {
        self.log.borrow_mut().made += 1;
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, data: &[u8]) {
        let mut log = self.log.borrow_mut();
        if log.eof > 0 {
            log.violations.push("data after EOF".into());
        }
        log.delivered.extend_from_slice(data);
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        let close = {
            let mut log = self.log.borrow_mut();
            log.eof += 1;
            log.close_on_eof
        };
        if close {
            conn.close();
        }
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, _reason: &CloseReason) {
        self.log.borrow_mut().lost += 1;
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, act: Act) {
        self.act(conn, act);
    }
    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        let mut log = self.log.borrow_mut();
        if log.producing_paused {
            log.violations.push("pause_producing twice".into());
        }
        log.producing_paused = true;
    }
    fn resume_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        let mut log = self.log.borrow_mut();
        if !log.producing_paused {
            log.violations
                .push("resume_producing without a pause".into());
        }
        log.producing_paused = false;
    }
}

const HEADER: &[u8] = b"PROXY TCP4 10.0.0.1 10.0.0.2 40000 7000\r\n";

struct Run {
    driver: Driver,
    socket: FakeSocket,
    id: ConnId,
    log: Rc<RefCell<Log>>,
    /// What the peer sends, header included; `sent` of it so far.
    stream: Vec<u8>,
    sent: usize,
    header_len: usize,
    /// The peer sent its FIN (it sends nothing after it).
    fin: bool,
}

/// How the shard does the connection's I/O.
#[derive(Debug, Clone, Copy)]
enum Io {
    Readiness,
    /// The io_uring driver over the scripted kernel: receive buffers
    /// consumed incrementally or whole; zero-copy sends (of 100 bytes and
    /// more) or none.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Completion {
        incremental: bool,
        zero_copy: bool,
    },
}

impl Run {
    fn new(io: Io, layered: bool, idle: bool, close_on_eof: bool) -> Run {
        let settings = Settings {
            idle_timeout: idle.then(|| Duration::from_millis(40)),
            high_water_mark: 300,
            low_water_mark: 100,
            max_output_buffer: 200_000,
            close_timeout: Duration::from_millis(100),
            close_linger: Duration::from_millis(100),
            max_read_per_iteration: 128,
            zero_copy_threshold: Some(100),
            ..Settings::default()
        };
        let tick = Duration::from_millis(1);
        let mut driver = match io {
            Io::Readiness => Driver::new(settings, tick, 48).unwrap(),
            #[cfg(target_os = "linux")]
            Io::Completion {
                incremental,
                zero_copy,
            } => {
                let how = crate::reactor::ScriptedRing {
                    buffers: 4,
                    buffer_size: 48,
                    incremental,
                    zero_copy,
                };
                Driver::completion(settings, tick, how).unwrap().0
            }
            #[cfg(not(target_os = "linux"))]
            Io::Completion { .. } => unreachable!("Linux's"),
        };
        let socket = FakeSocket::default();
        let log = Rc::new(RefCell::new(Log {
            close_on_eof,
            ..Log::default()
        }));
        let layer: Option<Box<dyn crate::reactor::Layer>> =
            layered.then(|| Box::new(ProxyLayer::new(None, false)) as _);
        let proto = Box::new(Prober { log: log.clone() });
        let id = driver.open_layered(&socket, proto, layer);
        let header_len = if layered { HEADER.len() } else { 0 };
        let mut stream = HEADER[..header_len].to_vec();
        stream.extend((0..4000u32).map(|i| (i % 241) as u8));
        Run {
            driver,
            socket,
            id,
            log,
            stream,
            sent: 0,
            header_len,
            fin: false,
        }
    }

    fn ready(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.driver.ready_with(
            self.id,
            Readiness {
                readable,
                writable,
                read_closed,
            },
        );
    }

    fn apply(&mut self, e: &Event) {
        match *e {
            Event::PeerSends(_) | Event::PeerFin { .. } if self.fin => {}
            Event::PeerSends(n) => {
                let n = n.min(self.stream.len() - self.sent);
                let data = self.stream[self.sent..self.sent + n].to_vec();
                self.sent += n;
                self.socket.lock().inbound.push_back(ReadStep::Data(data));
                self.ready(true, false, false);
            }
            Event::SpuriousWouldBlock => {
                self.socket.lock().inbound.push_front(ReadStep::WouldBlock);
                self.ready(true, false, false);
            }
            Event::PeerFin { flagged } => {
                self.fin = true;
                self.socket.lock().inbound.push_back(ReadStep::Eof);
                self.ready(true, false, flagged);
            }
            Event::PeerReset => {
                let step = ReadStep::Error(ErrorKind::ConnectionReset);
                self.socket.lock().inbound.push_back(step);
                self.ready(true, false, false);
            }
            Event::Readable => self.ready(true, false, false),
            Event::Writable => self.ready(false, true, false),
            Event::SocketTakes(n) => self.script(WriteStep::Accept(n)),
            Event::SocketBlocks => self.script(WriteStep::WouldBlock),
            Event::SocketFails => self.script(WriteStep::Error(ErrorKind::BrokenPipe)),
            Event::Proto(act) => self.tell(act),
            Event::Later(ms, act) => {
                let id = self.id;
                let ctx = self.driver.ctx();
                ctx.call_later(Duration::from_millis(ms), move |ctx| {
                    // Through the bus, as a timer of the protocol's own would act.
                    let _ = ctx.handle().send(id, act);
                });
            }
            Event::Advance(ms) => self.driver.advance(Duration::from_millis(ms)),
        }
    }

    fn script(&mut self, step: WriteStep) {
        self.socket.lock().write_script.push_back(step);
    }

    fn tell(&mut self, act: Act) {
        let _ = self.driver.ctx().handle().send(self.id, act);
        self.driver.settle();
    }

    /// Invariants that hold between any two events.
    fn check_step(&self) -> Result<(), String> {
        if let Some(Err(e)) = self.driver.shard_ref().check_conn(self.id) {
            return Err(format!("state invariant: {e}"));
        }
        let log = self.log.borrow();
        if let Some(v) = log.violations.first() {
            return Err(v.clone());
        }
        if log.made > 1 || log.lost > 1 || log.lost > log.made {
            return Err(format!("made {} lost {}", log.made, log.lost));
        }
        let app = &self.stream[self.header_len..];
        if !app.starts_with(&log.delivered) {
            return Err("delivered input is not what the peer sent".into());
        }
        Ok(())
    }

    /// Lets the peer read everything, sends its FIN, closes from the
    /// protocol's side and runs the clock until the connection is gone.
    fn finish(&mut self) {
        {
            let mut s = self.socket.lock();
            s.write_script.clear();
            s.capacity = None;
        }
        self.tell(Act::Resume);
        self.tell(Act::UnholdAll);
        self.tell(Act::Close);
        if !self.fin {
            self.fin = true;
            self.socket.lock().inbound.push_back(ReadStep::Eof);
        }
        for _ in 0..8 {
            self.ready(true, true, true);
            self.driver.advance(Duration::from_millis(100));
        }
    }

    /// What must hold once the connection is gone.
    fn check_end(&self) -> Result<(), String> {
        self.check_step()?;
        if self.driver.shard_ref().live(self.id) {
            return Err("still in the table after the close was driven to its end".into());
        }
        let log = self.log.borrow();
        if log.lost != log.made {
            return Err(format!("made {} but lost {}", log.made, log.lost));
        }
        let app = &self.stream[self.header_len..];
        let seen = self.sent.saturating_sub(self.header_len);
        if log.eof > 0 && log.delivered.len() != seen {
            return Err(format!(
                "EOF after {} bytes of the {seen} sent",
                log.delivered.len()
            ));
        }
        debug_assert!(app.len() >= seen);
        let s = self.socket.lock();
        if !s.aborted {
            check_written(&s.written, &log.writes)?;
        }
        Ok(())
    }
}

/// The bytes on the wire are the writes in order, each whole or absent,
/// and every write that had to be accepted is there.
fn check_written(written: &[u8], writes: &[(u8, usize, bool)]) -> Result<(), String> {
    let mut at = 0;
    for (k, &(tag, n, must)) in writes.iter().enumerate() {
        let whole = written.len() >= at + n && written[at..at + n].iter().all(|&b| b == tag);
        if whole {
            at += n;
        } else if must {
            return Err(format!("write {k} ({n} bytes) lost on a graceful close"));
        }
    }
    if at != written.len() {
        return Err(format!(
            "{} bytes on the wire no write made",
            written.len() - at
        ));
    }
    Ok(())
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => (1usize..400).prop_map(Act::Write),
        1 => Just(Act::WriteLarge),
        1 => Just(Act::Close),
        1 => Just(Act::CloseWithoutLinger),
        1 => Just(Act::CloseWithError),
        1 => Just(Act::Abort),
        1 => Just(Act::ShutdownWrite),
        2 => Just(Act::Pause),
        2 => Just(Act::Resume),
        1 => Just(Act::Hold),
        1 => Just(Act::Unhold),
        1 => Just(Act::CloseWhenIdle),
        1 => Just(Act::NotifyFlushed),
        1 => Just(Act::CloseThenWrite),
        1 => (0u32..3).prop_map(Act::LimitInFlight),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (1usize..200).prop_map(Event::PeerSends),
        1 => Just(Event::SpuriousWouldBlock),
        1 => any::<bool>().prop_map(|flagged| Event::PeerFin { flagged }),
        1 => Just(Event::PeerReset),
        2 => Just(Event::Readable),
        3 => Just(Event::Writable),
        3 => (0usize..500).prop_map(Event::SocketTakes),
        2 => Just(Event::SocketBlocks),
        1 => Just(Event::SocketFails),
        10 => act().prop_map(Event::Proto),
        1 => ((1u64..80), act()).prop_map(|(ms, a)| Event::Later(ms, a)),
        2 => (1u64..60).prop_map(Event::Advance),
    ]
}

/// One run of `events`, checked after each and at the end.
fn run_events(
    io: Io,
    layered: bool,
    idle: bool,
    close_on_eof: bool,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let mut run = Run::new(io, layered, idle, close_on_eof);
    if layered {
        // The header comes first, split anywhere.
        run.apply(&Event::PeerSends(7));
    }
    for (i, e) in events.iter().enumerate() {
        run.apply(e);
        if let Err(why) = run.check_step() {
            return Err(TestCaseError::fail(format!("after event {i} {e:?}: {why}")));
        }
    }
    run.finish();
    if let Err(why) = run.check_end() {
        return Err(TestCaseError::fail(format!("at the end: {why}")));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_events_keep_the_connection_state_legal(
        layered in any::<bool>(),
        idle in any::<bool>(),
        close_on_eof in any::<bool>(),
        events in proptest::collection::vec(event(), 1..60),
    ) {
        run_events(Io::Readiness, layered, idle, close_on_eof, &events)?;
    }

    /// The same on the completion backend: the scripted kernel's
    /// receives and sends follow the same socket script.
    #[cfg(target_os = "linux")]
    #[test]
    fn random_events_keep_the_connection_state_legal_on_the_completion_backend(
        incremental in any::<bool>(),
        zero_copy in any::<bool>(),
        layered in any::<bool>(),
        idle in any::<bool>(),
        close_on_eof in any::<bool>(),
        events in proptest::collection::vec(event(), 1..60),
    ) {
        let io = Io::Completion { incremental, zero_copy };
        run_events(io, layered, idle, close_on_eof, &events)?;
    }
}

#[test]
fn the_written_check_accepts_skipped_optional_writes_and_catches_lost_ones() {
    let writes = [(1, 2, true), (2, 3, false), (3, 1, true)];
    assert_eq!(check_written(&[1, 1, 3], &writes), Ok(()));
    assert_eq!(check_written(&[1, 1, 2, 2, 2, 3], &writes), Ok(()));
    assert!(check_written(&[1, 1], &writes).is_err());
    assert!(check_written(&[1, 1, 3, 9], &writes).is_err());
}
