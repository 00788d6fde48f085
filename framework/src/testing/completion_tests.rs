//! The shard on the completion backend against the scripted kernel, where
//! that model differs from readiness: the kernel's receive stopped while
//! reading is paused (what it took waits, in order), buffers running out,
//! a close that cancels what the kernel holds, zero-copy sends and their
//! notifications, and output in the kernel's hands counted as unsent.
//! (What both models share runs on both in `shard_harness.rs`.)

use super::fake_kernel::FakeKernel;
use super::{Driver, FakeSocket, ReadStep};
use crate::api::{ConnId, Settings};
use crate::reactor::{Conn, Protocol, ScriptedRing};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn ring(buffers: u16, buffer_size: usize, incremental: bool) -> ScriptedRing {
    ScriptedRing {
        buffers,
        buffer_size,
        incremental,
        zero_copy: false,
    }
}

fn completion(settings: Settings, how: ScriptedRing) -> (Driver, FakeKernel) {
    Driver::completion(settings, Duration::from_millis(1), how).unwrap()
}

/// Echoes, records what it got, pauses reading after each piece when
/// `pause` is set (a message resumes it), aborts on a `!` when `abort`.
#[derive(Default)]
struct Echo {
    got: Rc<RefCell<Vec<u8>>>,
    eof: Rc<RefCell<bool>>,
    pause: bool,
    abort: bool,
}

impl Protocol for Echo {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        if self.abort && data == b"!" {
            return conn.abort();
        }
        conn.write(data);
        if self.pause {
            conn.pause_reading();
        }
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        *self.eof.borrow_mut() = true;
        conn.close();
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, _: ()) {
        conn.resume_reading();
    }
}

/// A connection over a new scripted socket, driven by an `Echo` set up
/// by `setup`; what it receives is recorded in the returned vector.
fn echo(driver: &mut Driver, setup: impl FnOnce(&mut Echo)) -> (ConnId, FakeSocket, Got) {
    let socket = FakeSocket::default();
    let mut proto = Echo::default();
    setup(&mut proto);
    let got = proto.got.clone();
    let id = driver.open(&socket, Box::new(proto));
    (id, socket, got)
}

type Got = Rc<RefCell<Vec<u8>>>;

fn resume(driver: &mut Driver, id: ConnId) {
    driver.ctx().handle().send(id, ()).unwrap();
    driver.settle();
}

#[test]
fn pausing_stops_the_kernels_receive_and_what_it_took_comes_in_order_on_resume() {
    let (mut driver, kernel) = completion(Settings::default(), ring(8, 512, true));
    let socket = FakeSocket::default();
    let got = Rc::new(RefCell::new(Vec::new()));
    let eof = Rc::new(RefCell::new(false));
    let echo = Echo {
        got: got.clone(),
        eof: eof.clone(),
        pause: true,
        ..Echo::default()
    };
    let id = driver.open(&socket, Box::new(echo));
    let fd = driver.fd(id);
    socket
        .lock()
        .inbound
        .extend([ReadStep::Data(pattern(2000)), ReadStep::Eof]);
    driver.ready(id, true, false);
    // The kernel took all of it (its receive runs on), the protocol got
    // the first piece and paused: the rest and the EOF wait, the receive
    // stopped.
    assert_eq!(*got.borrow(), pattern(512));
    assert_eq!(kernel.in_flight(fd), (0, 0), "receive stopped");
    assert!(!*eof.borrow());
    resume(&mut driver, id);
    assert_eq!(*got.borrow(), pattern(2000), "the rest, in order");
    assert_eq!(socket.lock().written, pattern(2000));
    // It paused again with the rest: the EOF waits for the next resume,
    // as a paused epoll connection does not read it.
    assert!(driver.shard_ref().is_open(id) && !*eof.borrow());
    resume(&mut driver, id);
    assert!(*eof.borrow(), "heard after the input before it");
    assert!(socket.lock().shutdown_write, "and closed");
    assert_eq!(kernel.in_flight(fd), (0, 0));
}

#[test]
fn running_out_of_receive_buffers_ends_the_receive_and_loses_nothing() {
    // Two whole 512-byte buffers for 3000 bytes: the receive ends with
    // ENOBUFS twice or more, and is armed again once buffers are back.
    let (mut driver, kernel) = completion(Settings::default(), ring(2, 512, false));
    let (id, socket, got) = echo(&mut driver, |_| {});
    let armed = kernel.receives();
    let data = pattern(3000);
    socket
        .lock()
        .inbound
        .push_back(ReadStep::Data(data.clone()));
    driver.ready(id, true, false);
    assert_eq!(*got.borrow(), data);
    assert_eq!(socket.lock().written, data);
    assert!(kernel.receives() >= armed + 2, "re-armed after ENOBUFS");
    assert_eq!(kernel.in_flight(driver.fd(id)).0, 1, "armed, waiting");
}

#[test]
fn receives_that_ran_out_of_buffers_are_armed_again_as_buffers_come_back() {
    // Twelve connections with 1.5 KiB each, two 512-byte buffers: most
    // receives find the ring empty. Each gets all its bytes in order, and
    // they wait their turn instead of meeting the empty ring again and
    // again (re-armed all at once, as before, they did so about seven
    // times per receive that got bytes).
    let (mut driver, kernel) = completion(Settings::default(), ring(2, 512, false));
    let mut conns = Vec::new();
    for _ in 0..12 {
        conns.push(echo(&mut driver, |_| {}));
    }
    for (i, (_, socket, _)) in conns.iter().enumerate() {
        let data: Vec<u8> = pattern(1500 + i);
        socket.lock().inbound.push_back(ReadStep::Data(data));
    }
    // All readable at once (the kernel's wake-ups), then the loop runs.
    for (id, _, _) in &conns {
        kernel.wake(driver.fd(*id), true, false);
    }
    driver.settle();
    for _ in 0..64 {
        if !driver.has_work() {
            break;
        }
        driver.settle();
    }
    for (i, (_, socket, got)) in conns.iter().enumerate() {
        assert_eq!(*got.borrow(), pattern(1500 + i), "connection {i}");
        assert_eq!(socket.lock().written, pattern(1500 + i));
    }
    let (starved, filled) = kernel.buffer_use();
    assert!(starved > 0, "the ring ran out");
    assert!(
        starved <= filled + conns.len(),
        "{starved} receives met an empty ring for {filled} that got bytes"
    );
}

#[test]
fn a_close_cancels_what_the_kernel_holds_and_the_slot_serves_the_next_connection() {
    let (mut driver, kernel) = completion(Settings::default(), ring(8, 512, true));
    let (id, socket, _) = echo(&mut driver, |e| e.abort = true);
    socket.lock().capacity = Some(0); // a peer that never reads
    let fd = driver.fd(id);
    // An echo for the send that waits, then input that aborts.
    socket
        .lock()
        .inbound
        .push_back(ReadStep::Data(b"hello".to_vec()));
    driver.ready(id, true, false);
    assert_eq!(kernel.in_flight(fd), (1, 1), "a receive and a send wait");
    socket
        .lock()
        .inbound
        .push_back(ReadStep::Data(b"!".to_vec()));
    driver.ready(id, true, false);
    assert!(!driver.shard_ref().live(id));
    assert!(socket.lock().aborted);
    assert_eq!(kernel.in_flight(fd), (0, 0), "nothing left in the kernel");
    assert_eq!(
        kernel.closed(),
        1,
        "closed through the ring, after the cancels"
    );
    // The slot goes to a new connection; the old one's completions, if
    // any came late, cannot be taken for its.
    let (id2, next, _) = echo(&mut driver, |_| {});
    assert_eq!(id2.slot(), id.slot());
    next.lock()
        .inbound
        .push_back(ReadStep::Data(b"hello".to_vec()));
    driver.ready(id2, true, false);
    assert_eq!(next.lock().written, b"hello");
    assert!(socket.lock().written.is_empty());
}

#[test]
fn zero_copy_sends_wait_for_their_notification_and_stop_where_the_kernel_copies() {
    let settings = Settings {
        zero_copy_threshold: Some(1024),
        ..Settings::default()
    };
    let how = ScriptedRing {
        zero_copy: true,
        ..ring(8, 4096, true)
    };
    let (mut driver, kernel) = completion(settings, how);
    kernel.hold_notifications(true);
    kernel.zero_copy_copies(true);
    let (id, socket, _) = echo(&mut driver, |_| {});
    let (a, b, c) = (pattern(2000), vec![7u8; 3000], vec![9u8; 1500]);
    socket.lock().inbound.push_back(ReadStep::Data(a.clone()));
    driver.ready(id, true, false);
    socket.lock().inbound.push_back(ReadStep::Data(b.clone()));
    driver.ready(id, true, false);
    // No notification yet: both went without a copy.
    assert_eq!(kernel.sends(), (2, 0));
    assert_eq!(socket.lock().written, [a.clone(), b.clone()].concat());
    // The notifications say the kernel copied (a local peer): from then
    // on this connection's sends copy.
    kernel.notify();
    driver.settle();
    socket.lock().inbound.push_back(ReadStep::Data(c.clone()));
    driver.ready(id, true, false);
    assert_eq!(kernel.sends(), (2, 1));
    assert_eq!(socket.lock().written, [a, b, c].concat());
}

/// Writes a 1 MiB reply per byte asked, only while the connection is
/// writable; a message asks it to try.
struct Producer {
    asked: Rc<RefCell<usize>>,
    sent: usize,
}

impl Producer {
    fn answer(&mut self, conn: &mut Conn<'_, Self>) {
        while *self.asked.borrow() > 0 && conn.is_writable() {
            *self.asked.borrow_mut() -= 1;
            let reply: Vec<u8> = (0..1 << 20)
                .map(|i| ((self.sent + i) % 251) as u8)
                .collect();
            self.sent += reply.len();
            conn.write(&reply);
        }
    }
}

impl Protocol for Producer {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        *self.asked.borrow_mut() += data.len();
        self.answer(conn);
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, _: ()) {
        self.answer(conn);
    }
    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.answer(conn);
    }
}

#[test]
fn output_in_the_kernels_hands_counts_as_unsent_for_backpressure() {
    let (mut driver, _kernel) = completion(Settings::default(), ring(8, 512, true));
    let socket = FakeSocket::default();
    socket.lock().capacity = Some(100_000); // a slow reader
    let asked = Rc::new(RefCell::new(0));
    let id = driver.open(
        &socket,
        Box::new(Producer {
            asked: asked.clone(),
            sent: 0,
        }),
    );
    socket
        .lock()
        .inbound
        .push_back(ReadStep::Data(b"abc".to_vec()));
    driver.ready(id, true, false);
    // The first reply went straight to the socket in part (a large write
    // to an empty queue), so the second was queued below the mark; both
    // wait now in the send in flight.
    assert_eq!(socket.lock().written.len(), 100_000);
    assert_eq!(*asked.borrow(), 1);
    let unsent = (2 << 20) - 100_000;
    assert_eq!(
        driver.shard_ref().buffered(id),
        unsent,
        "in the send in flight"
    );
    // Asked to write now, it sees the bytes the kernel has not sent: not
    // writable, so it waits instead of piling up another reply.
    driver.run(|ctx| ctx.handle().send(id, ()).unwrap());
    assert_eq!(*asked.borrow(), 1);
    assert!(driver.shard_ref().is_open(id));
    // The peer reads everything: the producer resumes and finishes.
    socket.lock().capacity = None;
    for _ in 0..8 {
        driver.ready(id, false, true);
    }
    assert_eq!(*asked.borrow(), 0);
    let written = socket.lock().written.clone();
    assert_eq!(written.len(), 3 << 20);
    assert!(written
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    assert!(!socket.lock().aborted);
}
