//! `Conn::forward_to` on one shard over scripted sockets: bytes go from one
//! connection's input to another's output in order, the reader stops while
//! the target's output is above the high-water mark and resumes when it
//! drains, and input goes back to `data_received` when the target is gone.

use super::{Driver, FakeSocket, ReadStep};
use crate::api::{ConnId, Settings};
use crate::error::ForwardError;
use crate::reactor::{Conn, Protocol};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

enum Cmd {
    ForwardTo(ConnId),
    Stop,
    Close,
}

#[derive(Default)]
struct Seen {
    received: Vec<u8>,
    results: Vec<Result<(), ForwardError>>,
}

struct End {
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for End {
    type Message = Cmd;
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.seen.borrow_mut().received.extend_from_slice(data);
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, cmd: Cmd) {
        match cmd {
            Cmd::ForwardTo(to) => {
                let r = conn.forward_to(to);
                self.seen.borrow_mut().results.push(r);
            }
            Cmd::Stop => conn.stop_forwarding(),
            Cmd::Close => conn.close(),
        }
    }
}

struct Pair {
    driver: Driver,
    a: (ConnId, FakeSocket, Rc<RefCell<Seen>>),
    b: (ConnId, FakeSocket, Rc<RefCell<Seen>>),
}

fn pair() -> Pair {
    let settings = Settings {
        high_water_mark: 1000,
        low_water_mark: 200,
        ..Settings::default()
    };
    let mut driver = Driver::new(settings, Duration::from_millis(1), 256).unwrap();
    let open = |driver: &mut Driver| {
        let socket = FakeSocket::default();
        let seen = Rc::new(RefCell::new(Seen::default()));
        let id = driver.open(&socket, Box::new(End { seen: seen.clone() }));
        (id, socket, seen)
    };
    let a = open(&mut driver);
    let b = open(&mut driver);
    Pair { driver, a, b }
}

impl Pair {
    fn tell(&mut self, to: ConnId, cmd: Cmd) {
        let _ = self.driver.ctx().handle().send(to, cmd);
        self.driver.settle();
    }
    fn a_sends(&mut self, data: &[u8]) {
        let step = ReadStep::Data(data.to_vec());
        self.a.1.lock().inbound.push_back(step);
        self.driver.ready(self.a.0, true, false);
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 253) as u8).collect()
}

#[test]
fn forwarded_bytes_reach_the_target_in_order_and_skip_data_received() {
    let mut p = pair();
    let b = p.b.0;
    p.tell(p.a.0, Cmd::ForwardTo(b));
    assert_eq!(p.a.2.borrow().results, [Ok(())]);
    let data = pattern(700);
    p.a_sends(&data[..300]);
    p.a_sends(&data[300..]);
    assert_eq!(p.b.1.lock().written, data);
    assert!(p.a.2.borrow().received.is_empty());
    assert!(p.b.2.borrow().received.is_empty());
    assert_eq!(p.driver.ctx().counters.bytes_forwarded, 700);
}

#[test]
fn the_reader_waits_while_the_target_is_full_and_loses_nothing() {
    let mut p = pair();
    let b = p.b.0;
    p.tell(p.a.0, Cmd::ForwardTo(b));
    // B's peer reads nothing: its socket takes 100 bytes, then is full.
    p.b.1.lock().capacity = Some(100);
    let data = pattern(5000);
    p.a.1.lock().inbound.push_back(ReadStep::Data(data.clone()));
    p.driver.ready(p.a.0, true, false);
    // Reading stops once B holds the high-water mark (1000), one read
    // (256) at most past it; B's socket took 100 of it.
    let queued = p.driver.shard_ref().buffered(b);
    let taken = p.b.1.lock().written.len();
    assert_eq!(taken, 100);
    assert!(
        (1000..1000 + 256).contains(&(queued + taken)),
        "stops just past the high-water mark, not at {queued} + {taken}"
    );
    let reads = p.a.1.lock().reads;
    p.driver.ready(p.a.0, true, false);
    assert_eq!(
        p.a.1.lock().reads,
        reads,
        "not read while the target is full"
    );
    // B's peer reads everything, bit by bit.
    for _ in 0..200 {
        let taken = {
            let mut s = p.b.1.lock();
            s.capacity = Some(s.written.len() + 300);
            s.written.len()
        };
        p.driver.ready(b, false, true);
        if taken == data.len() {
            break;
        }
    }
    assert_eq!(p.b.1.lock().written, data);
}

#[test]
fn input_goes_back_to_data_received_when_the_target_is_gone_or_forwarding_stops() {
    let mut p = pair();
    let b = p.b.0;
    p.tell(p.a.0, Cmd::ForwardTo(b));
    p.a_sends(b"one");
    p.tell(p.a.0, Cmd::Stop);
    p.a_sends(b"two");
    p.tell(p.a.0, Cmd::ForwardTo(b));
    p.tell(b, Cmd::Close);
    p.b.1.lock().inbound.push_back(ReadStep::Eof);
    p.driver.ready(b, true, true);
    assert!(!p.driver.shard_ref().is_open(b));
    p.a_sends(b"three");
    assert_eq!(p.b.1.lock().written, b"one");
    assert_eq!(p.a.2.borrow().received, b"twothree");
}

#[test]
fn forwarding_to_itself_or_another_shard_is_refused() {
    let mut p = pair();
    let a = p.a.0;
    p.tell(a, Cmd::ForwardTo(a));
    let elsewhere = ConnId::new(3, p.b.0.slot() as u32, 0);
    p.tell(a, Cmd::ForwardTo(elsewhere));
    assert_eq!(
        p.a.2.borrow().results,
        [Err(ForwardError::ToItself), Err(ForwardError::OtherShard)]
    );
}
