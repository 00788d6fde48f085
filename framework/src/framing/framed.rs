//! `Framed`: a `Protocol` that cuts the byte stream into frames with a
//! [`Decoder`] and hands each to a [`FrameProtocol`]. `LineReceiver`,
//! `Int32Receiver`-style length prefixes and netstrings are all this one
//! adapter with a different decoder.

use super::decoder::{Decoder, FrameError, Recovery};
use crate::api::CloseReason;
use crate::reactor::{Conn, Protocol, ShardCtx};
use std::ops::{Deref, DerefMut};

/// Framing state a callback can change (mode, injected bytes, clearing).
#[derive(Default)]
struct Control {
    raw: bool,
    /// Bytes to frame before anything still buffered (`set_frame_mode_with`).
    extra: Vec<u8>,
    /// `clear_frame_buffer` was called: drop what is left of this batch.
    clear: bool,
}

/// What a framed protocol sees in its callbacks: the connection (through
/// `Deref`) plus control of the framing mode and buffer.
pub struct FramedConn<'a, 'c, D: Decoder, P: FrameProtocol<D>> {
    conn: &'a mut Conn<'c, Framed<D, P>>,
    ctl: &'a mut Control,
    /// Input buffered after the current frame.
    rest: &'a [u8],
}

impl<'c, D: Decoder, P: FrameProtocol<D>> FramedConn<'_, 'c, D, P> {
    /// From now on, deliver bytes as they come to `raw_data_received`
    /// (e.g. for a body of known length after a header line). Twisted's
    /// `setRawMode`.
    pub fn set_raw_mode(&mut self) {
        self.ctl.raw = true;
    }

    /// Back to frames; bytes not consumed by `raw_data_received` are parsed
    /// as frames.
    pub fn set_frame_mode(&mut self) {
        self.ctl.raw = false;
    }

    /// Back to frames, parsing `extra` first, before anything still
    /// buffered: Twisted's `setLineMode(extra)`, e.g. from `frame_error` to
    /// resume after the offending part of the discarded bytes.
    pub fn set_frame_mode_with(&mut self, extra: &[u8]) {
        self.ctl.raw = false;
        self.ctl.extra.extend_from_slice(extra);
    }

    /// True in raw mode.
    pub fn is_raw_mode(&self) -> bool {
        self.ctl.raw
    }

    /// Upgrades the connection to TLS ([`Conn::start_tls`]): bytes already
    /// buffered after the frame being delivered (a ClientHello sent right
    /// behind the command) go to TLS, not to the framer, and framing goes on
    /// over the decrypted stream.
    pub fn start_tls(&mut self, upgrade: impl Into<crate::tls::StartTls>) {
        let rest = self.clear_frame_buffer();
        self.conn.start_tls(upgrade.into().already_read(&rest));
    }

    /// Removes and returns every buffered byte not yet framed (after the
    /// frame being delivered): Twisted's `clearLineBuffer`.
    pub fn clear_frame_buffer(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.ctl.extra);
        if !self.ctl.clear {
            out.extend_from_slice(self.rest);
        }
        self.ctl.clear = true;
        out
    }
}

impl<'c, D: Decoder, P: FrameProtocol<D>> Deref for FramedConn<'_, 'c, D, P> {
    type Target = Conn<'c, Framed<D, P>>;
    fn deref(&self) -> &Self::Target {
        self.conn
    }
}

impl<D: Decoder, P: FrameProtocol<D>> DerefMut for FramedConn<'_, '_, D, P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn
    }
}

/// A protocol that receives frames (lines, length-prefixed messages,
/// netstrings) instead of raw bytes.
///
/// ```
/// use shardloop::framing::{FrameProtocol, FramedConn, LineDecoder, LineReceiver};
/// /// Answers every line with its length.
/// struct Lengths;
/// impl FrameProtocol<LineDecoder> for Lengths {
///     type Message = ();
///     fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
///         conn.write(format!("{}\r\n", line.len()).as_bytes());
///     }
/// }
/// let _proto = LineReceiver::new(LineDecoder::default(), Lengths);
/// ```
pub trait FrameProtocol<D: Decoder>: Sized + 'static {
    /// Typed bus messages (see [`Protocol::Message`]).
    type Message: Send + 'static;

    /// The connection is established.
    fn connection_made(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>) {}

    /// One complete frame (for lines: without the delimiter).
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, D, Self>, frame: &[u8]);

    /// Raw-mode bytes. Returns how many were consumed; if the protocol
    /// switched back to frame mode, the rest is parsed as frames, otherwise
    /// the rest is delivered again with the next bytes. The default consumes
    /// nothing and switches back (a protocol that never uses raw mode).
    fn raw_data_received(&mut self, conn: &mut FramedConn<'_, '_, D, Self>, _data: &[u8]) -> usize {
        conn.set_frame_mode();
        0
    }

    /// The stream cannot be framed (a line longer than the maximum, a bad
    /// netstring, a length over the limit): Twisted's `lineLengthExceeded`
    /// / `lengthLimitExceeded`. `data` is the buffered input from the
    /// offending frame on. The default closes the connection, after
    /// flushing, with [`CloseReason::ProtocolError`] naming the problem.
    ///
    /// A protocol that does not close keeps the connection: for lines the
    /// data is dropped and framing resumes with the next bytes (call
    /// [`FramedConn::set_frame_mode_with`] to re-frame part of `data`); for
    /// length prefixes and netstrings the stream cannot be resynchronised,
    /// so each later arrival reports the error again (see
    /// [`Recovery`](super::Recovery)).
    fn frame_error(
        &mut self,
        conn: &mut FramedConn<'_, '_, D, Self>,
        error: &FrameError,
        data: &[u8],
    ) {
        let _ = data;
        conn.close_with_error(error.to_string());
    }

    /// The peer closed its sending side; the default closes ours after flushing.
    fn eof_received(&mut self, conn: &mut FramedConn<'_, '_, D, Self>) {
        conn.close();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>, _reason: &CloseReason) {}

    /// A typed message arrived over the bus.
    fn message(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>, _msg: Self::Message) {}

    /// Output passed the high-water mark.
    fn pause_producing(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>) {}

    /// Output drained to the low-water mark.
    fn resume_producing(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>) {}

    /// Written bytes reached the kernel (see [`Protocol::output_flushed`]).
    fn output_flushed(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>) {}

    /// A TLS handshake begun with `start_tls` finished (see
    /// [`Protocol::handshake_completed`]).
    fn handshake_completed(&mut self, _conn: &mut FramedConn<'_, '_, D, Self>) {}

    /// The server is stopping; the default closes after flushing.
    fn server_stopping(&mut self, conn: &mut FramedConn<'_, '_, D, Self>) {
        conn.close();
    }

    /// An outbound connection could not be established (see
    /// [`Protocol::connect_failed`]); the default logs it.
    fn connect_failed(&mut self, _shard: &mut ShardCtx, error: &std::io::Error) {
        tracing::debug!(%error, "framed outbound connection failed");
    }
}

/// The adapter: a [`Protocol`] wrapping a [`FrameProtocol`].
///
/// Input that does not complete a frame is kept in one buffer with a read
/// offset, compacted only when the consumed part outgrows the rest, and a
/// delimiter search resumes where it stopped: a frame arriving in many
/// small pieces costs time linear in its size.
pub struct Framed<D: Decoder, P: FrameProtocol<D>> {
    decoder: D,
    inner: P,
    /// `buf[start..]`: bytes received but not yet framed.
    buf: Vec<u8>,
    start: usize,
    /// Bytes at the front of `buf[start..]` known to hold no frame end.
    searched: usize,
    ctl: Control,
    /// A `Recovery::Retain` error: reported again on every arrival.
    failed: Option<FrameError>,
}

/// Twisted's `LineReceiver`.
pub type LineReceiver<P> = Framed<super::decoder::LineDecoder, P>;
/// Length-prefixed frames (Twisted's `Int8/16/32StringReceiver`).
pub type LengthPrefixed<P> = Framed<super::decoder::LengthPrefixedDecoder, P>;
/// Netstrings (Twisted's `NetstringReceiver`).
pub type NetstringReceiver<P> = Framed<super::decoder::NetstringDecoder, P>;

impl<D: Decoder, P: FrameProtocol<D>> Framed<D, P> {
    /// Wraps `inner`, framing with `decoder`.
    pub fn new(decoder: D, inner: P) -> Self {
        Framed {
            decoder,
            inner,
            buf: Vec::new(),
            start: 0,
            searched: 0,
            ctl: Control::default(),
            failed: None,
        }
    }

    /// The wrapped protocol (e.g. inside a timer callback).
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped protocol, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Bytes buffered awaiting a complete frame (or held while paused).
    pub fn buffered_input(&self) -> usize {
        self.buf.len() - self.start
    }

    fn with<R>(
        &mut self,
        conn: &mut Conn<'_, Self>,
        f: impl FnOnce(&mut P, &mut FramedConn<'_, '_, D, P>) -> R,
    ) -> R {
        let mut fc = FramedConn {
            conn,
            ctl: &mut self.ctl,
            rest: &[],
        };
        f(&mut self.inner, &mut fc)
    }

    /// Frames and delivers `data` (the new bytes) after what is buffered,
    /// as Twisted's `LineReceiver.dataReceived` does: until the input runs
    /// out, the protocol pauses reading, or the connection starts closing.
    fn process(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if let Some(e) = self.failed.clone() {
            let held = std::mem::take(&mut self.buf);
            self.deliver_error(conn, &e, &held[self.start..]);
            self.buf = held;
            return;
        }
        // Parse straight from `data` when nothing is buffered: no copy on the
        // common path; only the unframed tail is kept.
        let mut work = std::mem::take(&mut self.buf);
        let mut pos = self.start;
        let mut searched = self.searched;
        let mut from_data = pos == work.len();
        if from_data {
            work.clear();
            pos = 0;
        } else {
            if pos > 0 && pos >= work.len() - pos {
                work.drain(..pos);
                pos = 0;
            }
            work.extend_from_slice(data);
        }
        loop {
            if !self.ctl.extra.is_empty() {
                // Injected bytes go first, then whatever is left.
                let input: &[u8] = if from_data { data } else { &work };
                let mut v = std::mem::take(&mut self.ctl.extra);
                v.extend_from_slice(&input[pos..]);
                work = v;
                pos = 0;
                searched = 0;
                from_data = false;
            }
            let input: &[u8] = if from_data { data } else { &work };
            if pos >= input.len() || conn.is_closing() || conn.is_reading_paused() {
                break;
            }
            if conn.output_backed_up() {
                // The peer has not taken the replies so far: the rest waits
                // for `resume_producing`, so a client pipelining large
                // replies gets one past the high-water mark at a time.
                break;
            }
            if self.ctl.raw {
                let rest = &input[pos..];
                let n = self
                    .with_rest(conn, rest, |p, c| p.raw_data_received(c, rest))
                    .min(rest.len());
                pos += n;
                searched = 0;
                if self.ctl.raw && n == 0 && self.ctl.extra.is_empty() {
                    break; // the rest waits for more bytes
                }
                continue;
            }
            match self.decoder.decode_from(&input[pos..], searched) {
                Ok(Some(f)) => {
                    let frame = &input[pos + f.start..pos + f.end];
                    pos += f.consumed;
                    searched = 0;
                    let rest = &input[pos..];
                    self.with_rest(conn, rest, |p, c| p.frame_received(c, frame));
                    if std::mem::take(&mut self.ctl.clear) {
                        pos = input.len();
                    }
                }
                Ok(None) => {
                    searched = input.len() - pos;
                    break;
                }
                Err(e) => match self.decoder.recovery() {
                    Recovery::Discard => {
                        let bad = &input[pos..];
                        pos = input.len();
                        searched = 0;
                        self.deliver_error(conn, &e, bad);
                    }
                    Recovery::Retain => {
                        self.failed = Some(e.clone());
                        self.deliver_error(conn, &e, &input[pos..]);
                        break;
                    }
                },
            }
        }
        self.ctl.clear = false;
        // Keep the unframed tail (and only that when it came from `data`).
        if from_data {
            work.clear();
            work.extend_from_slice(&data[pos..]);
            pos = 0;
        }
        if pos == work.len() {
            work.clear();
            pos = 0;
        }
        self.buf = work;
        self.start = pos;
        self.searched = searched;
    }

    fn with_rest<R>(
        &mut self,
        conn: &mut Conn<'_, Self>,
        rest: &[u8],
        f: impl FnOnce(&mut P, &mut FramedConn<'_, '_, D, P>) -> R,
    ) -> R {
        let mut fc = FramedConn {
            conn,
            ctl: &mut self.ctl,
            rest,
        };
        f(&mut self.inner, &mut fc)
    }

    fn deliver_error(&mut self, conn: &mut Conn<'_, Self>, e: &FrameError, data: &[u8]) {
        if let Some(suppressed) = conn.shard().log_limits.protocol_error.allow() {
            tracing::debug!(conn = %conn.id(), error = %e, suppressed, "frame error");
        }
        self.with(conn, |p, c| p.frame_error(c, e, data));
    }
}

impl<D: Decoder, P: FrameProtocol<D>> Protocol for Framed<D, P> {
    type Message = P::Message;

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.connection_made(c));
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.process(conn, data);
    }

    fn reading_resumed(&mut self, conn: &mut Conn<'_, Self>) {
        // Frames held while paused are delivered now, before new input.
        self.process(conn, &[]);
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.eof_received(c));
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.with(conn, |p, c| p.connection_lost(c, reason));
    }

    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: P::Message) {
        self.with(conn, |p, c| p.message(c, msg));
    }

    fn pause_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.pause_producing(c));
    }

    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.resume_producing(c));
        // Frames held while the output was backed up go on now.
        if self.failed.is_none() && self.start < self.buf.len() {
            self.process(conn, &[]);
        }
    }

    fn output_flushed(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.output_flushed(c));
    }

    fn handshake_completed(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.handshake_completed(c));
    }

    fn server_stopping(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.server_stopping(c));
    }

    fn connect_failed(&mut self, shard: &mut ShardCtx, error: &std::io::Error) {
        self.inner.connect_failed(shard, error);
    }
}
