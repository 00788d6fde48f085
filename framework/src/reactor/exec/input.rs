//! A connection's input handed to a task instead of `data_received`
//! (`Conn::spawn_stream`, `ClientStream`): the bytes wait here, bounded,
//! until the task reads them; reading from the socket pauses while more
//! than `MAX_INPUT` bytes wait.

use crate::api::CloseReason;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::Waker;

/// Input buffered beyond this pauses reading from the peer.
pub(crate) const MAX_INPUT: usize = 1024 * 1024;

/// Bytes received and not yet read by the task, and how the input ended.
#[derive(Default)]
pub(crate) struct Input {
    buf: Vec<u8>,
    start: usize,
    /// Bytes of the buffered input known to hold no frame end.
    pub(crate) searched: usize,
    /// The peer sent EOF.
    pub(crate) eof: bool,
    /// The connection is gone, and why.
    pub(crate) lost: Option<CloseReason>,
    /// Reading from the socket is paused because the task lags.
    pub(crate) read_paused: bool,
    waker: Option<Waker>,
}

/// The input shared by the shard (which fills it) and the task (which reads it).
pub(crate) type SharedInput = Rc<RefCell<Input>>;

impl Input {
    /// Appends received bytes; true if reading should pause now.
    pub(crate) fn push(&mut self, data: &[u8]) -> bool {
        self.buf.extend_from_slice(data);
        self.wake();
        let pause = self.buffered().len() > MAX_INPUT && !self.read_paused;
        if pause {
            self.read_paused = true;
        }
        pause
    }

    /// The peer's EOF.
    pub(crate) fn end(&mut self) {
        self.eof = true;
        self.wake();
    }

    /// The connection ended for `reason`.
    pub(crate) fn lose(&mut self, reason: &CloseReason) {
        self.lost = Some(reason.clone());
        self.wake();
    }

    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The task waits for more.
    pub(crate) fn wait(&mut self, waker: &Waker) {
        self.waker = Some(waker.clone());
    }

    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The task took `n` bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        self.searched = 0;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() > 2 * MAX_INPUT && self.buf.len() < MAX_INPUT / 4 {
            // A burst is over: give its memory back.
            self.buf.shrink_to(MAX_INPUT / 4);
        }
    }

    /// True when reading paused for the task and it has now caught up.
    pub(crate) fn should_resume(&mut self) -> bool {
        let resume = self.read_paused && self.buffered().len() <= MAX_INPUT / 2;
        if resume {
            self.read_paused = false;
        }
        resume
    }

    /// Nothing more will arrive (EOF or gone).
    pub(crate) fn ended(&self) -> bool {
        self.eof || self.lost.is_some()
    }

    /// Lost for another reason than a clean close: reads fail with this.
    pub(crate) fn failure(&self) -> Option<io::Error> {
        match &self.lost {
            None | Some(CloseReason::PeerClosed | CloseReason::Done) => None,
            Some(CloseReason::Io { kind, message }) => Some(io::Error::new(*kind, message.clone())),
            Some(r) => Some(io::Error::new(io::ErrorKind::NotConnected, r.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_pauses_one_byte_past_the_limit_and_resumes_at_half() {
        let mut i = Input::default();
        assert!(
            !i.push(&vec![1; MAX_INPUT]),
            "exactly the limit: keep reading"
        );
        assert!(i.push(&[2]), "one byte past: pause");
        assert!(!i.push(&[3]), "told once");
        i.consume(MAX_INPUT / 2);
        assert!(!i.should_resume(), "still over half");
        i.consume(2);
        assert!(i.should_resume(), "at half: resume");
        assert!(!i.should_resume(), "told once");
        // Nothing was lost while paused.
        assert_eq!(i.buffered().len(), MAX_INPUT / 2);
        assert_eq!(&i.buffered()[i.buffered().len() - 2..], &[2, 3]);
    }

    #[test]
    fn a_clean_end_is_no_failure_and_a_reset_is() {
        let mut i = Input::default();
        i.end();
        assert!(i.ended() && i.failure().is_none());
        let mut r = Input::default();
        r.lose(&CloseReason::Io {
            kind: io::ErrorKind::ConnectionReset,
            message: "reset".into(),
        });
        assert_eq!(r.failure().unwrap().kind(), io::ErrorKind::ConnectionReset);
    }
}
