//! `ClientStream`: an outbound connection for shard tasks, read and written
//! with `await` instead of callbacks. Underneath it is an ordinary
//! connection of the shard (same buffers, caps and timers); what it receives
//! waits in a bounded buffer (reading pauses when the task does not keep
//! up), and writes wait while the connection's output is above its high
//! water mark.

use crate::api::{CloseReason, ConnId, TlsInfo};
use crate::endpoint::Connect;
use crate::framing::{Decoder, LineDecoder};
use crate::reactor::exec::input::SharedInput;
use crate::reactor::exec::local;
use crate::reactor::{Conn, Protocol};
use crate::task::input::{Reader, Resume};
use crate::tls::{StartTls, TlsClientConfig};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct State {
    id: Option<ConnId>,
    connected: Option<io::Result<()>>,
    /// What the TLS handshake negotiated (a TLS connection).
    tls: Option<TlsInfo>,
    write_paused: bool,
    /// The task waiting to connect or to write.
    waker: Option<Waker>,
    /// The connect was given up (its future dropped) before it finished:
    /// the connection closes as soon as it is made.
    abandoned: bool,
}

impl State {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The protocol behind a [`ClientStream`].
struct StreamProtocol {
    state: Rc<RefCell<State>>,
    input: SharedInput,
}

impl Protocol for StreamProtocol {
    type Message = ();

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let mut s = self.state.borrow_mut();
        if s.abandoned {
            // Nobody will use it (a timed-out checkout, a dropped task).
            conn.close();
            return;
        }
        s.id = Some(conn.id());
        // A TLS connection is made once its handshake is done.
        s.tls = conn.tls_info();
        s.connected = Some(Ok(()));
        s.wake();
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if self.input.borrow_mut().push(data) {
            conn.pause_reading();
        }
    }

    fn eof_received(&mut self, _conn: &mut Conn<'_, Self>) {
        // Half-close: the task may still write; it closes when it is done.
        self.input.borrow_mut().end();
    }

    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.input.borrow_mut().lose(reason);
        // A writer waiting on backpressure learns it too.
        self.state.borrow_mut().wake();
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

    fn handshake_completed(&mut self, conn: &mut Conn<'_, Self>) {
        let mut s = self.state.borrow_mut();
        s.tls = conn.tls_info();
        s.wake();
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
    input: SharedInput,
    /// The decoder of `read_line`, kept between calls.
    lines: Option<LineDecoder>,
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
        let input = SharedInput::default();
        let proto = StreamProtocol {
            state: state.clone(),
            input: input.clone(),
        };
        let pending = connect.into().pending(proto, None, None);
        let queued = local::with(|l| l.connects.push(pending));
        assert!(
            queued.is_some(),
            "ClientStream::connect called outside a shard"
        );
        // Dropped before the connect finishes: the connection is closed
        // when (if) it is made, not left open with no one to use it.
        let waiting = Abandon(Some(state.clone()));
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
        waiting.disarm();
        Ok(ClientStream {
            state,
            input,
            lines: None,
        })
    }

    /// The connection's id.
    pub fn id(&self) -> Option<ConnId> {
        self.state.borrow().id
    }

    /// What the TLS handshake negotiated (ALPN protocol, version, cipher
    /// suite, the server's certificates); `None` on a plain connection
    /// (and during a [`start_tls`](ClientStream::start_tls) handshake).
    ///
    /// ```no_run
    /// use shardloop::client::ClientStream;
    /// use shardloop::endpoint::Connect;
    /// use shardloop::tls::TlsClientConfig;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = TlsClientConfig::builder().system_roots()?.alpn(["h2", "http/1.1"]).build()?;
    /// let addr = "127.0.0.1:8443".parse::<std::net::SocketAddr>()?;
    /// let s = ClientStream::connect(Connect::tcp(addr).tls(tls, "localhost")).await?;
    /// let h2 = s.tls_info().and_then(|i| i.alpn).as_deref() == Some(&b"h2"[..]);
    /// # let _ = h2; Ok(()) }
    /// ```
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.state.borrow().tls.clone()
    }

    /// Upgrades the connection to TLS (STARTTLS, after the server agreed
    /// in plaintext), verifying the server as `server_name` (also sent as
    /// SNI); completes once the handshake is done, with what it
    /// negotiated. Bytes received and not read yet are taken as the
    /// handshake's first. A failed handshake fails this call (and the
    /// connection).
    ///
    /// ```no_run
    /// use shardloop::client::ClientStream;
    /// use shardloop::endpoint::Connect;
    /// use shardloop::tls::TlsClientConfig;
    /// # async fn demo(tls: TlsClientConfig) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut smtp = ClientStream::connect(Connect::host("mail.example.com", 587)).await?;
    /// smtp.read_line(512).await?; // 220 greeting
    /// smtp.write_all(b"STARTTLS\r\n").await?;
    /// smtp.read_line(512).await?; // 220 ready
    /// let session = smtp.start_tls(&tls, "mail.example.com").await?;
    /// smtp.write_all(b"EHLO me\r\n").await?; // encrypted from here on
    /// # let _ = session; Ok(()) }
    /// ```
    pub async fn start_tls(
        &mut self,
        config: &TlsClientConfig,
        server_name: &str,
    ) -> io::Result<TlsInfo> {
        let (early, resume) = {
            let mut input = self.input.borrow_mut();
            let bytes = input.buffered().to_vec();
            input.consume(bytes.len());
            (bytes, input.should_resume())
        };
        let upgrade = StartTls::client(config, server_name).already_read(&early);
        self.state.borrow_mut().tls = None;
        self.on_conn(move |c| c.start_tls(upgrade));
        if resume {
            // Reading had stopped on a full input: the handshake needs it.
            Resume::resume(self);
        }
        poll_fn(|cx| {
            if let Some(info) = self.state.borrow().tls.clone() {
                return Poll::Ready(Ok(info));
            }
            if let Some(e) = self.gone() {
                return Poll::Ready(Err(e));
            }
            self.state.borrow_mut().waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Runs `f` on the connection once the task yields.
    fn on_conn(&self, f: impl FnOnce(&mut Conn<'_, StreamProtocol>) + 'static) {
        let Some(id) = self.state.borrow().id else {
            return;
        };
        crate::task::ConnTask::<StreamProtocol>::new(id).try_run(move |_, c| f(c));
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            input: &self.input,
            resume: self,
        }
    }

    /// Reads into `buf`; `Ok(0)` at the peer's EOF.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader().read(buf).await
    }

    /// Appends everything received so far (at least one byte) to `buf`;
    /// `Ok(0)` at the peer's EOF.
    pub async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.reader().read_buf(buf).await
    }

    /// Fills `buf` exactly; `UnexpectedEof` if the peer ends first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.reader().read_exact(buf).await
    }

    /// The next frame cut by `decoder` (a line, a length-prefixed message, a
    /// netstring); `Ok(None)` at a clean EOF between frames.
    pub async fn next_frame<D: Decoder>(&mut self, decoder: &D) -> io::Result<Option<Vec<u8>>> {
        self.reader().next_frame(decoder).await
    }

    /// The next `\r\n`- (or `\n`-) terminated line of at most `max` bytes,
    /// without its delimiter; `Ok(None)` at a clean EOF.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut lines = self.lines.take();
        let line = self.reader().read_line(max, &mut lines).await;
        self.lines = lines;
        line
    }

    /// Queues all of `data` for sending, first waiting while the
    /// connection's output is above its high-water mark.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(cx, data)).await.map(drop)
    }

    /// Polls for input into `buf` (for poll-based I/O traits): `Ok(0)` at
    /// the peer's EOF.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.reader().poll_read(cx, buf)
    }

    /// Queues `data` unless the output is above its high-water mark
    /// (then `Pending` until it drains), for poll-based I/O traits.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(e) = self.gone() {
            return Poll::Ready(Err(e));
        }
        let mut s = self.state.borrow_mut();
        if s.write_paused {
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        drop(s);
        let owned = data.to_vec();
        self.on_conn(move |c| c.write_owned(owned));
        Poll::Ready(Ok(data.len()))
    }

    /// An error for writes once the connection is gone.
    fn gone(&self) -> Option<io::Error> {
        let input = self.input.borrow();
        input.lost.as_ref()?;
        Some(
            input.failure().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "connection closed")
            }),
        )
    }

    /// Half-closes: everything written is sent, then FIN; reading goes on.
    pub fn shutdown_write(&mut self) {
        self.on_conn(|c| c.shutdown_write());
    }

    /// True while the connection is up and the peer has not sent EOF.
    pub fn is_open(&self) -> bool {
        let input = self.input.borrow();
        input.lost.is_none() && !input.ended()
    }

    /// Bytes received and not read yet.
    pub(crate) fn has_unread(&self) -> bool {
        !self.input.borrow().buffered().is_empty()
    }

    /// True once the peer sent EOF and all its bytes were read.
    pub fn is_eof(&self) -> bool {
        let input = self.input.borrow();
        input.ended() && input.buffered().is_empty()
    }
}

impl Resume for ClientStream {
    /// Resumes reading once the task has taken most of the buffered input.
    fn resume(&self) {
        self.on_conn(|c| c.resume_reading());
    }
}

/// Marks a connect abandoned unless disarmed.
struct Abandon(Option<Rc<RefCell<State>>>);

impl Abandon {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.borrow_mut().abandoned = true;
        }
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
