//! Testing kit: run a [`Protocol`] with no socket and no sleep, as Twisted's
//! `StringTransport` and `task.Clock` do.
//!
//! [`FakeTransport`] drives the real shard machinery (the same buffering,
//! close, backpressure, timer and idle-timeout code as production) over a
//! fake socket that records what is written, with a manual clock that only
//! moves when the test says so.
//!
//! ```
//! use shardloop::testing::FakeTransport;
//! use shardloop::{Conn, Protocol};
//! use std::time::Duration;
//!
//! /// Says "bye" and closes after 30 s of silence.
//! struct Greeter;
//! impl Protocol for Greeter {
//!     type Message = ();
//!     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
//!         conn.write(b"hello\n");
//!         conn.call_later(Duration::from_secs(30), |_, conn| {
//!             conn.write(b"bye\n");
//!             conn.close();
//!         });
//!     }
//!     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
//!         conn.write(data);
//!     }
//! }
//!
//! let mut t = FakeTransport::new(Greeter);
//! assert_eq!(t.take_written(), b"hello\n");
//! t.receive(b"ping");
//! assert_eq!(t.take_written(), b"ping");
//! t.advance(Duration::from_secs(29));
//! assert!(t.is_open());
//! t.advance(Duration::from_secs(1));
//! assert_eq!(t.take_written(), b"bye\n");
//! assert!(t.fin_sent());
//! assert_eq!(t.close_reason(), Some(shardloop::CloseReason::Done));
//! ```

#[cfg(all(test, target_os = "linux"))]
mod completion_tests;
#[cfg(test)]
mod conn_machine;
mod driver;
#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)]
mod fake_kernel;
mod fake_socket;
#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod shard_harness;
pub mod sim;

pub(crate) use driver::Driver;
#[cfg(test)]
pub(crate) use fake_socket::WriteStep;
pub(crate) use fake_socket::{FakeSocket, ReadStep};

use crate::api::{CloseReason, ConnId, Settings};
use crate::reactor::{Protocol, ShardCtx};
use std::marker::PhantomData;
use std::time::Duration;

/// One connection of protocol `P` over a fake socket, with a manual clock.
pub struct FakeTransport<P: Protocol> {
    driver: Driver,
    id: ConnId,
    socket: FakeSocket,
    _protocol: PhantomData<P>,
}

impl<P: Protocol> FakeTransport<P> {
    /// Connects `protocol` (its `connection_made` runs) with default settings.
    pub fn new(protocol: P) -> Self {
        Self::with_settings(protocol, Settings::default())
    }

    /// Connects `protocol` with these settings (idle timeout, water marks...).
    ///
    /// # Panics
    /// If the settings are inconsistent or the OS refuses a poller.
    pub fn with_settings(protocol: P, settings: Settings) -> Self {
        settings.validate().expect("valid settings");
        let mut driver = Driver::new(settings, Duration::from_millis(1), 64 * 1024)
            .expect("a detached shard for testing");
        let socket = FakeSocket::default();
        let id = driver.open(&socket, Box::new(protocol));
        FakeTransport {
            driver,
            id,
            socket,
            _protocol: PhantomData,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer sends `data`. While the protocol has paused reading it
    /// waits in the socket, as in a kernel buffer, and is read in order
    /// once reading resumes.
    pub fn receive(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.socket
                .lock()
                .inbound
                .push_back(ReadStep::Data(data.to_vec()));
        }
        self.pump();
    }

    /// Reads while the socket holds input and the connection takes it.
    fn pump(&mut self) {
        self.driver.read_available(self.id, &self.socket);
    }

    /// Everything flushed so far, left in place.
    pub fn written(&self) -> Vec<u8> {
        self.socket.lock().written.clone()
    }

    /// Everything flushed so far; clears the record (the peer "read" it),
    /// which also makes room when a socket capacity is set.
    pub fn take_written(&mut self) -> Vec<u8> {
        let out = std::mem::take(&mut self.socket.lock().written);
        self.driver.ready(self.id, false, true);
        self.pump();
        out
    }

    /// Limits how many unread bytes the fake socket accepts (None: no limit),
    /// to exercise backpressure.
    pub fn set_socket_capacity(&mut self, bytes: Option<usize>) {
        self.socket.lock().capacity = bytes;
        self.driver.ready(self.id, false, true);
    }

    /// Output the connection holds that the socket has not taken yet.
    pub fn buffered(&self) -> usize {
        self.driver.shard_ref().buffered(self.id)
    }

    /// The peer closes its sending side (EOF).
    pub fn peer_close(&mut self) {
        self.socket.lock().inbound.push_back(ReadStep::Eof);
        self.pump();
    }

    /// The peer resets the connection (RST): the next read fails with
    /// `ConnectionReset`, and the protocol is told so.
    pub fn peer_reset(&mut self) {
        self.socket
            .lock()
            .inbound
            .push_back(ReadStep::Error(std::io::ErrorKind::ConnectionReset));
        self.pump();
    }

    /// Moves the manual clock forward, running every timer that falls due.
    pub fn advance(&mut self, by: Duration) {
        self.driver.advance(by);
        self.pump();
    }

    /// Delivers a typed message, as if sent over the bus.
    pub fn message(&mut self, msg: P::Message) {
        // Through the shard's real inbox, drained by the next iteration.
        let sent = self.driver.ctx().handle().send(self.id, msg);
        debug_assert!(sent.is_ok(), "a detached shard's inbox is always open");
        self.driver.settle();
        self.pump();
    }

    /// The protocol, while the connection is open.
    pub fn protocol(&mut self) -> Option<&mut P> {
        self.driver
            .shard()
            .protocol_any(self.id)
            .and_then(|p| p.downcast_mut::<P>())
    }

    /// The shard context (shard timers, services, bus).
    pub fn shard(&mut self) -> &mut ShardCtx {
        self.driver.ctx()
    }

    /// True until `connection_lost` has run.
    pub fn is_open(&self) -> bool {
        self.driver.shard_ref().is_open(self.id)
    }

    /// True while the protocol has paused reading.
    pub fn is_reading_paused(&self) -> bool {
        self.driver.shard_ref().reading_paused(self.id)
    }

    /// The reason given to `connection_lost`, once it ran.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.socket.lock().lost.clone()
    }

    /// True once FIN was sent (a graceful close finished flushing).
    pub fn fin_sent(&self) -> bool {
        self.socket.lock().shutdown_write
    }

    /// True if the connection was aborted (RST).
    pub fn aborted(&self) -> bool {
        self.socket.lock().aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Conn;

    struct Echo {
        paused: u32,
        resumed: u32,
    }
    impl Protocol for Echo {
        type Message = String;
        fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
            if data == b"boom" {
                panic!("test panic");
            }
            if data == b"abort" {
                conn.abort();
            }
            conn.write(data);
        }
        fn message(&mut self, conn: &mut Conn<'_, Self>, msg: String) {
            conn.write(msg.as_bytes());
        }
        fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
            self.paused += 1;
        }
        fn resume_producing(&mut self, _conn: &mut Conn<'_, Self>) {
            self.resumed += 1;
        }
    }

    fn echo() -> Echo {
        Echo {
            paused: 0,
            resumed: 0,
        }
    }

    #[test]
    fn idle_timeout_on_the_manual_clock() {
        let settings = Settings {
            idle_timeout: Some(Duration::from_secs(10)),
            ..Settings::default()
        };
        let mut t = FakeTransport::with_settings(echo(), settings);
        t.advance(Duration::from_secs(6));
        t.receive(b"x"); // resets the idle clock
        t.advance(Duration::from_secs(6));
        assert!(t.is_open(), "12 s after connect but only 6 s idle");
        t.advance(Duration::from_secs(4));
        assert!(!t.is_open());
        assert_eq!(t.close_reason(), Some(CloseReason::IdleTimeout));
        assert!(t.fin_sent() && !t.aborted());
        assert_eq!(t.written(), b"x");
    }

    #[test]
    fn peer_eof_closes_after_flush_and_messages_arrive() {
        let mut t = FakeTransport::new(echo());
        t.message("from the bus".into());
        assert_eq!(t.take_written(), b"from the bus");
        t.receive(b"last words");
        t.peer_close();
        assert_eq!(t.take_written(), b"last words");
        assert_eq!(t.close_reason(), Some(CloseReason::PeerClosed));
        assert!(t.fin_sent());
    }

    #[test]
    fn panic_and_abort_end_the_connection() {
        let mut t = FakeTransport::new(echo());
        t.receive(b"boom");
        assert_eq!(t.close_reason(), Some(CloseReason::CallbackPanic));
        assert!(t.aborted());
        let mut t = FakeTransport::new(echo());
        t.receive(b"abort");
        assert_eq!(t.close_reason(), Some(CloseReason::Aborted));
        assert!(t.written().is_empty(), "aborted output is dropped");
    }

    struct Timed;
    impl Protocol for Timed {
        type Message = ();
        fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
            conn.call_later(Duration::from_secs(3600), |_, _| {});
            conn.call_every(Duration::from_secs(60), |_, _| {});
            conn.set_read_timeout(Some(Duration::from_secs(30)));
            conn.set_idle_timeout(Some(Duration::from_secs(600)));
        }
        fn data_received(&mut self, conn: &mut Conn<'_, Self>, _: &[u8]) {
            conn.abort();
        }
    }

    #[test]
    fn a_released_connection_leaves_no_timer_behind() {
        let mut t = FakeTransport::new(Timed);
        assert_eq!(t.shard().timers.wheel.len(), 4);
        t.receive(b"x");
        assert!(!t.is_open());
        assert_eq!(t.shard().timers.wheel.len(), 0, "all cancelled on release");
        assert!(t.shard().timers.repeats.is_empty());
    }

    #[test]
    fn backpressure_with_a_small_socket() {
        let settings = Settings {
            high_water_mark: 100,
            low_water_mark: 10,
            ..Settings::default()
        };
        let mut t = FakeTransport::with_settings(echo(), settings);
        t.set_socket_capacity(Some(50));
        t.receive(&[1u8; 200]);
        assert_eq!(t.buffered(), 150);
        assert_eq!(t.protocol().unwrap().paused, 1);
        // The peer reads: room appears, output drains, production resumes.
        let mut got = t.take_written();
        while got.len() < 200 {
            got.extend(t.take_written());
        }
        assert_eq!(got.len(), 200);
        assert_eq!(t.buffered(), 0);
        assert_eq!(t.protocol().unwrap().resumed, 1);
    }
}
