//! The shard's read/write loop against scripted sockets: partial reads,
//! spurious `WouldBlock`, EOF behind data, resets, short writes, `EPIPE`,
//! and the close paths, with no real socket. Each test drives the real
//! shard code (`on_ready` → `read_conn` → callbacks → `flush_conn`), and
//! those written with `on_both!` drive it on both I/O models: readiness
//! (epoll) and completion (the io_uring backend's driver over a scripted
//! kernel, `fake_kernel.rs`), with the same sockets and the same checks
//! where the models agree.

use super::{Driver, FakeSocket, ReadStep, WriteStep};
use crate::api::{CloseReason, ConnId, Settings};
use crate::reactor::{Conn, Protocol, Readiness};
use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

/// What the protocol saw, kept outside it so it outlives `connection_lost`.
#[derive(Default)]
struct Log {
    chunks: Vec<Vec<u8>>,
    eof: bool,
    lost: Option<CloseReason>,
}

impl Log {
    fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

/// Records everything; writes `greeting` on connect (then closes if
/// `close_after_greeting`); echoes input in `echo_parts` separate writes.
struct Recorder {
    log: Rc<RefCell<Log>>,
    greeting: Vec<u8>,
    close_after_greeting: bool,
    echo_parts: usize,
}

impl Protocol for Recorder {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(&self.greeting);
        if self.close_after_greeting {
            conn.close();
        }
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.log.borrow_mut().chunks.push(data.to_vec());
        if self.echo_parts > 0 {
            let step = data.len().div_ceil(self.echo_parts).max(1);
            for part in data.chunks(step) {
                conn.write(part);
            }
        }
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        self.log.borrow_mut().eof = true;
        conn.close();
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.log.borrow_mut().lost = Some(reason.clone());
    }
}

/// Which of the shard's I/O paths a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Readiness,
    /// Receive buffers of the readiness model's read-buffer size,
    /// consumed incrementally.
    Completion,
}

/// Runs each test body once per model (`readiness` and `completion`).
macro_rules! on_both {
    ($(#[test] fn $name:ident($model:ident: Model) $body:block)*) => {$(
        mod $name {
            use super::*;
            fn run($model: Model) $body
            #[test]
            fn readiness() {
                run(Model::Readiness)
            }
            #[cfg(target_os = "linux")]
            #[test]
            fn completion() {
                run(Model::Completion)
            }
        }
    )*};
}

/// A one-shard driver on `model`, its read buffer (or receive buffers)
/// `read_buf` bytes.
fn driver(model: Model, settings: Settings, read_buf: usize) -> Driver {
    match model {
        Model::Readiness => Driver::new(settings, Duration::from_millis(1), read_buf).unwrap(),
        #[cfg(target_os = "linux")]
        Model::Completion => {
            let how = crate::reactor::ScriptedRing {
                buffers: 8,
                buffer_size: read_buf,
                incremental: true,
                zero_copy: false,
            };
            Driver::completion(settings, Duration::from_millis(1), how)
                .unwrap()
                .0
        }
        #[cfg(not(target_os = "linux"))]
        Model::Completion => unreachable!("the completion model is Linux's"),
    }
}

struct Harness {
    driver: Driver,
    socket: FakeSocket,
    id: ConnId,
    log: Rc<RefCell<Log>>,
}

/// A connection over a scripted socket on a shard whose read buffer is
/// `read_buf` bytes.
fn harness(
    model: Model,
    read_buf: usize,
    greeting: &[u8],
    close: bool,
    echo_parts: usize,
) -> Harness {
    let mut driver = driver(model, Settings::default(), read_buf);
    let socket = FakeSocket::default();
    let log = Rc::new(RefCell::new(Log::default()));
    let proto = Recorder {
        log: log.clone(),
        greeting: greeting.to_vec(),
        close_after_greeting: close,
        echo_parts,
    };
    let id = driver.open(&socket, Box::new(proto));
    Harness {
        driver,
        socket,
        id,
        log,
    }
}

impl Harness {
    fn push(&self, steps: impl IntoIterator<Item = ReadStep>) {
        self.socket.lock().inbound.extend(steps);
    }
    fn script_writes(&self, steps: impl IntoIterator<Item = WriteStep>) {
        self.socket.lock().write_script.extend(steps);
    }
    fn readable(&mut self) {
        self.driver.ready(self.id, true, false);
    }
    fn read_closed(&mut self) {
        self.driver.ready_with(
            self.id,
            Readiness {
                readable: true,
                writable: false,
                read_closed: true,
            },
        );
    }
    fn writable(&mut self) {
        self.driver.ready(self.id, false, true);
    }
    fn reads(&self) -> usize {
        self.socket.lock().reads
    }
    fn writes(&self) -> usize {
        self.socket.lock().writes
    }
    fn written(&self) -> Vec<u8> {
        self.socket.lock().written.clone()
    }
    fn in_table(&self) -> bool {
        self.driver.shard_ref().live(self.id)
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

on_both! {
#[test]
fn input_larger_than_the_read_buffer_arrives_in_buffer_sized_pieces(model: Model) {
    let mut h = harness(model, 512, b"", false, 0);
    let data = pattern(1300);
    h.push([ReadStep::Data(data.clone())]);
    h.readable();
    let sizes: Vec<usize> = h.log.borrow().chunks.iter().map(Vec::len).collect();
    assert_eq!(sizes, [512, 512, 276]);
    assert_eq!(h.log.borrow().bytes(), data);
    // The short read ended the batch: no read just to hear EAGAIN (and
    // the kernel's receive waits for the socket's wake-up).
    assert_eq!(h.reads(), 3);
}

#[test]
fn spurious_would_block_leaves_the_connection_waiting_for_the_next_edge(model: Model) {
    let mut h = harness(model, 512, b"", false, 0);
    h.push([ReadStep::WouldBlock, ReadStep::Data(b"abc".to_vec())]);
    h.readable();
    assert!(h.log.borrow().chunks.is_empty());
    assert!(h.driver.shard_ref().is_open(h.id));
    h.readable();
    assert_eq!(h.log.borrow().bytes(), b"abc");
}

#[test]
fn eof_behind_data_in_one_event_delivers_the_data_then_closes_cleanly(model: Model) {
    let mut h = harness(model, 512, b"", false, 0);
    h.push([ReadStep::Data(b"last words".to_vec()), ReadStep::Eof]);
    h.read_closed();
    let log = h.log.borrow();
    assert_eq!(log.bytes(), b"last words");
    assert!(log.eof);
    assert_eq!(log.lost, Some(CloseReason::PeerClosed));
    let st = h.socket.lock();
    assert!(st.shutdown_write && !st.aborted);
    drop(st);
    drop(log);
    assert!(!h.in_table(), "peer already sent EOF: released at once");
}

#[test]
fn reset_after_data_is_reported_as_a_reset_not_a_close(model: Model) {
    let mut h = harness(model, 512, b"", false, 0);
    h.push([
        ReadStep::Data(b"partial".to_vec()),
        ReadStep::Error(ErrorKind::ConnectionReset),
    ]);
    h.read_closed();
    let log = h.log.borrow();
    assert_eq!(log.bytes(), b"partial");
    assert!(!log.eof, "a reset is not an EOF");
    match &log.lost {
        Some(r @ CloseReason::Io { kind, .. }) => {
            assert_eq!(*kind, ErrorKind::ConnectionReset);
            assert!(!r.is_clean());
        }
        other => panic!("expected an I/O reason, got {other:?}"),
    }
    drop(log);
    assert!(!h.in_table());
}

#[test]
fn short_write_waits_for_writable_then_sends_the_rest_in_order(model: Model) {
    let data = pattern(9000);
    let mut h = harness(model, 16 * 1024, b"", false, 1);
    if model == Model::Completion {
        // The kernel sends again at once after a short send: the socket
        // is full when that finds no room.
        h.script_writes([WriteStep::Accept(3000), WriteStep::WouldBlock]);
    } else {
        h.script_writes([WriteStep::Accept(3000)]);
    }
    h.push([ReadStep::Data(data.clone())]);
    h.readable();
    assert_eq!(h.written(), data[..3000]);
    assert_eq!(h.driver.shard_ref().buffered(h.id), 6000);
    let tries = h.writes();
    assert_eq!(
        tries,
        if model == Model::Completion { 2 } else { 1 },
        "a short write means the socket is full: no retry"
    );
    h.writable();
    assert_eq!(h.written(), data);
    assert_eq!(h.driver.shard_ref().buffered(h.id), 0);
    assert_eq!(h.writes(), tries + 1);
}

#[test]
fn would_block_on_write_keeps_everything_queued(model: Model) {
    let mut h = harness(model, 16 * 1024, b"", false, 1);
    h.script_writes([WriteStep::WouldBlock]);
    h.push([ReadStep::Data(b"hello".to_vec())]);
    h.readable();
    assert!(h.written().is_empty());
    assert_eq!(h.driver.shard_ref().buffered(h.id), 5);
    h.writable();
    assert_eq!(h.written(), b"hello");
}

#[test]
fn broken_pipe_on_write_ends_the_connection_with_that_error(model: Model) {
    let mut h = harness(model, 16 * 1024, b"", false, 1);
    h.script_writes([WriteStep::Error(ErrorKind::BrokenPipe)]);
    h.push([ReadStep::Data(b"hello".to_vec())]);
    h.readable();
    let lost = h.log.borrow().lost.clone();
    assert!(
        matches!(
            lost,
            Some(CloseReason::Io {
                kind: ErrorKind::BrokenPipe,
                ..
            })
        ),
        "{lost:?}"
    );
    assert!(h.socket.lock().aborted);
    assert!(!h.in_table());
}

#[test]
fn writes_of_one_iteration_leave_in_one_syscall(model: Model) {
    let mut h = harness(model, 16 * 1024, b"", false, 5);
    h.push([ReadStep::Data(pattern(100))]);
    h.readable();
    assert_eq!(h.written(), pattern(100));
    assert_eq!(h.writes(), 1);
}

#[test]
fn close_flushes_through_short_writes_then_fin_then_lingers_until_eof(model: Model) {
    let greeting = pattern(5000);
    let mut driver = driver(model, Settings::default(), 512);
    let socket = FakeSocket::default();
    socket
        .lock()
        .write_script
        .extend([WriteStep::Accept(1000), WriteStep::WouldBlock]);
    let log = Rc::new(RefCell::new(Log::default()));
    let id = driver.open(
        &socket,
        Box::new(Recorder {
            log: log.clone(),
            greeting: greeting.clone(),
            close_after_greeting: true,
            echo_parts: 0,
        }),
    );
    assert_eq!(socket.lock().written, greeting[..1000]);
    assert!(
        !socket.lock().shutdown_write,
        "no FIN before the output is out"
    );
    assert!(log.borrow().lost.is_none());
    if model == Model::Readiness {
        // (The kernel met the scripted WouldBlock already, sending the
        // rest of the short send at once.)
        driver.ready(id, false, true); // the scripted WouldBlock
        assert!(!socket.lock().shutdown_write);
    }
    driver.ready(id, false, true);
    assert_eq!(socket.lock().written, greeting);
    assert!(socket.lock().shutdown_write);
    assert_eq!(log.borrow().lost, Some(CloseReason::Done));
    // Lingering: unread input is drained (not reset) until the peer's EOF.
    assert!(driver.shard_ref().live(id));
    socket
        .lock()
        .inbound
        .extend([ReadStep::Data(b"late".to_vec()), ReadStep::Eof]);
    driver.ready_with(
        id,
        Readiness {
            readable: true,
            writable: false,
            read_closed: true,
        },
    );
    assert!(!driver.shard_ref().live(id));
    assert!(!socket.lock().aborted, "a graceful close never resets");
    assert_eq!(
        log.borrow().bytes(),
        b"",
        "input after close is not delivered"
    );
}

#[test]
fn lingering_connection_is_released_at_the_linger_deadline(model: Model) {
    let settings = Settings {
        close_linger: Duration::from_secs(2),
        ..Settings::default()
    };
    let mut driver = driver(model, settings, 512);
    let socket = FakeSocket::default();
    let log = Rc::new(RefCell::new(Log::default()));
    let id = driver.open(
        &socket,
        Box::new(Recorder {
            log: log.clone(),
            greeting: b"bye".to_vec(),
            close_after_greeting: true,
            echo_parts: 0,
        }),
    );
    assert!(socket.lock().shutdown_write);
    assert!(driver.shard_ref().live(id), "lingering for the peer's EOF");
    driver.advance(Duration::from_millis(1999));
    assert!(driver.shard_ref().live(id));
    driver.advance(Duration::from_millis(2));
    assert!(!driver.shard_ref().live(id));
    assert!(!socket.lock().aborted);
}
}

/// (The completion model's pause, which stops the kernel's receive and
/// keeps what it had taken, is in `completion_tests.rs`.)
#[test]
fn paused_reading_leaves_input_in_the_socket() {
    struct Pauser;
    impl Protocol for Pauser {
        type Message = ();
        fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
            conn.write(data);
            conn.pause_reading();
        }
        fn message(&mut self, conn: &mut Conn<'_, Self>, _: ()) {
            conn.resume_reading();
        }
    }
    let mut driver = Driver::new(Settings::default(), Duration::from_millis(1), 512).unwrap();
    let socket = FakeSocket::default();
    let id = driver.open(&socket, Box::new(Pauser));
    socket
        .lock()
        .inbound
        .push_back(ReadStep::Data(pattern(2000)));
    driver.ready(id, true, false);
    assert_eq!(socket.lock().written, pattern(512));
    assert_eq!(socket.lock().reads, 1, "no read while paused");
    driver.ctx().handle().send(id, ()).unwrap();
    driver.settle();
    assert_eq!(socket.lock().written, pattern(1024));
}
