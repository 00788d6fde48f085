//! `ClientStream`: an outbound connection for shard tasks, read and written
//! with `await` instead of callbacks. Underneath it is an ordinary
//! connection of the shard (same buffers, caps and timers); what it receives
//! waits in a bounded buffer (reading pauses when the task does not keep
//! up), and writes wait while the connection's output is above its high
//! water mark.

use crate::api::{CloseReason, ConnId};
use crate::endpoint::Connect;
use crate::framing::Decoder;
use crate::reactor::exec::local;
use crate::reactor::{Conn, Protocol};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Input buffered beyond this pauses reading from the peer.
const MAX_INPUT: usize = 1024 * 1024;

#[derive(Default)]
struct State {
    id: Option<ConnId>,
    connected: Option<io::Result<()>>,
    input: Vec<u8>,
    start: usize,
    /// Bytes of `input[start..]` known to hold no frame end.
    searched: usize,
    eof: bool,
    lost: Option<CloseReason>,
    read_paused: bool,
    write_paused: bool,
    waker: Option<Waker>,
}

impl State {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.input[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.searched = 0;
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start >= self.input.len() - self.start {
            self.input.drain(..self.start);
            self.start = 0;
        }
    }

    /// An error for reads and writes once the connection is gone.
    fn gone(&self) -> io::Error {
        match &self.lost {
            Some(CloseReason::Io { kind, message }) => io::Error::new(*kind, message.clone()),
            Some(r) => io::Error::new(io::ErrorKind::NotConnected, r.to_string()),
            None => io::Error::new(io::ErrorKind::NotConnected, "not connected"),
        }
    }
}

/// The protocol behind a [`ClientStream`].
struct StreamProtocol {
    state: Rc<RefCell<State>>,
}

impl Protocol for StreamProtocol {
    type Message = ();

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let mut s = self.state.borrow_mut();
        s.id = Some(conn.id());
        s.connected = Some(Ok(()));
        s.wake();
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let mut s = self.state.borrow_mut();
        s.input.extend_from_slice(data);
        if s.input.len() - s.start > MAX_INPUT && !s.read_paused {
            s.read_paused = true;
            conn.pause_reading();
        }
        s.wake();
    }

    fn eof_received(&mut self, _conn: &mut Conn<'_, Self>) {
        // Half-close: the task may still write; it closes when it is done.
        let mut s = self.state.borrow_mut();
        s.eof = true;
        s.wake();
    }

    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let mut s = self.state.borrow_mut();
        s.lost = Some(reason.clone());
        s.wake();
    }

    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        self.state.borrow_mut().write_paused = true;
    }

    fn resume_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        let mut s = self.state.borrow_mut();
        s.write_paused = false;
        s.wake();
    }

    fn connect_failed(&mut self, _shard: &mut crate::ShardCtx, error: &io::Error) {
        let mut s = self.state.borrow_mut();
        s.connected = Some(Err(io::Error::new(error.kind(), error.to_string())));
        s.wake();
    }

    fn server_stopping(&mut self, conn: &mut Conn<'_, Self>) {
        conn.close();
    }
}

/// An outbound connection used from a shard task with `await`.
///
/// One task uses a stream at a time (each operation takes `&mut self`).
/// Dropping it closes the connection gracefully.
///
/// ```no_run
/// use shardloop::client::ClientStream;
/// # async fn demo() -> std::io::Result<()> {
/// use shardloop::endpoint::Connect;
/// let addr = "127.0.0.1:6379".parse::<std::net::SocketAddr>().unwrap();
/// let redis_at = Connect::tcp(addr).timeout(std::time::Duration::from_secs(1));
/// let mut redis = ClientStream::connect(redis_at).await?;
/// redis.write_all(b"PING\r\n").await?;
/// let reply = redis.read_line(64).await?;
/// assert_eq!(reply.as_deref(), Some(&b"+PONG"[..]));
/// # Ok(()) }
/// ```
pub struct ClientStream {
    state: Rc<RefCell<State>>,
    /// The decoder of `read_line`, kept between calls.
    lines: Option<crate::framing::LineDecoder>,
}

impl ClientStream {
    /// Opens a connection from the current shard as `connect` describes
    /// (TCP or Unix, TLS, timeout; call it from a shard task or callback);
    /// completes once it is established, or with the connect error
    /// (`TimedOut` after the timeout).
    ///
    /// # Panics
    /// Outside a shard.
    pub async fn connect(connect: impl Into<Connect>) -> io::Result<ClientStream> {
        let state = Rc::new(RefCell::new(State::default()));
        let proto = StreamProtocol {
            state: state.clone(),
        };
        let pending = connect.into().pending(proto, None, None);
        let queued = local::with(|l| l.connects.push(pending));
        assert!(
            queued.is_some(),
            "ClientStream::connect called outside a shard"
        );
        poll_fn(|cx| {
            let mut s = state.borrow_mut();
            match s.connected.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await?;
        Ok(ClientStream { state, lines: None })
    }

    /// The connection's id.
    pub fn id(&self) -> Option<ConnId> {
        self.state.borrow().id
    }

    /// Runs `f` on the connection once the task yields.
    fn on_conn(&self, f: impl FnOnce(&mut Conn<'_, StreamProtocol>) + 'static) {
        let Some(id) = self.state.borrow().id else {
            return;
        };
        crate::task::ConnTask::<StreamProtocol>::new(id).try_run(move |_, c| f(c));
    }

    /// Resumes reading once the task has taken most of the buffered input.
    fn after_take(&self) {
        let resume = {
            let mut s = self.state.borrow_mut();
            let resume = s.read_paused && s.buffered().len() <= MAX_INPUT / 2;
            if resume {
                s.read_paused = false;
            }
            resume
        };
        if resume {
            self.on_conn(|c| c.resume_reading());
        }
    }

    /// Waits until `take` returns a value from the buffered input, EOF
    /// (`take` sees it through `eof`) or a lost connection.
    async fn read_with<R>(
        &mut self,
        mut take: impl FnMut(&mut State) -> Option<io::Result<R>>,
    ) -> io::Result<R> {
        let out = poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if let Some(r) = take(&mut s) {
                return Poll::Ready(r);
            }
            if s.lost.is_some()
                && !matches!(s.lost, Some(CloseReason::PeerClosed | CloseReason::Done))
            {
                return Poll::Ready(Err(s.gone()));
            }
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.after_take();
        out
    }

    /// Reads into `buf`; `Ok(0)` at the peer's EOF.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|s| {
            let have = s.buffered();
            if !have.is_empty() {
                let n = have.len().min(buf.len());
                buf[..n].copy_from_slice(&have[..n]);
                s.consume(n);
                return Some(Ok(n));
            }
            (s.eof || s.lost.is_some()).then_some(Ok(0))
        })
        .await
    }

    /// Fills `buf` exactly; `UnexpectedEof` if the peer ends first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let want = buf.len();
        self.read_with(|s| {
            if s.buffered().len() >= want {
                buf.copy_from_slice(&s.buffered()[..want]);
                s.consume(want);
                return Some(Ok(()));
            }
            (s.eof || s.lost.is_some()).then(|| {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed mid-message",
                ))
            })
        })
        .await
    }

    /// The next frame cut by `decoder` (a line, a length-prefixed message, a
    /// netstring); `Ok(None)` at a clean EOF between frames.
    pub async fn next_frame<D: Decoder>(&mut self, decoder: &D) -> io::Result<Option<Vec<u8>>> {
        self.read_with(|s| {
            let searched = s.searched;
            match decoder.decode_from(s.buffered(), searched) {
                Ok(Some(f)) => {
                    let frame = s.buffered()[f.start..f.end].to_vec();
                    s.consume(f.consumed);
                    Some(Ok(Some(frame)))
                }
                Ok(None) => {
                    s.searched = s.buffered().len();
                    if s.eof || s.lost.is_some() {
                        Some(if s.buffered().is_empty() {
                            Ok(None)
                        } else {
                            Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "peer closed mid-frame",
                            ))
                        })
                    } else {
                        None
                    }
                }
                Err(e) => Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e.to_string(),
                ))),
            }
        })
        .await
    }

    /// The next `\r\n`- (or `\n`-) terminated line of at most `max` bytes,
    /// without its delimiter; `Ok(None)` at a clean EOF.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let d = match self.lines.take() {
            Some(d) if d.max_line_length() == max => d,
            _ => crate::framing::LineDecoder::new(b"\r\n".to_vec(), max).accept_bare_lf(true),
        };
        let line = self.next_frame(&d).await;
        self.lines = Some(d);
        line
    }

    /// Queues all of `data` for sending, first waiting while the
    /// connection's output is above its high-water mark.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if s.lost.is_some() {
                return Poll::Ready(Err(s.gone()));
            }
            if s.write_paused {
                s.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
        .await?;
        let data = data.to_vec();
        self.on_conn(move |c| c.write_owned(data));
        Ok(())
    }

    /// Half-closes: everything written is sent, then FIN; reading goes on.
    pub fn shutdown_write(&mut self) {
        self.on_conn(|c| c.shutdown_write());
    }

    /// True once the peer sent EOF and all its bytes were read.
    pub fn is_eof(&self) -> bool {
        let s = self.state.borrow();
        (s.eof || s.lost.is_some()) && s.buffered().is_empty()
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        self.on_conn(|c| c.close());
    }
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("id", &self.id())
            .finish()
    }
}
