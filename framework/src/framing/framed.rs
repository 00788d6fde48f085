//! `Framed`: a `Protocol` that cuts the byte stream into frames with a
//! [`Decoder`] and hands each to a [`FrameProtocol`]. `LineReceiver`,
//! `Int32Receiver`-style length prefixes and netstrings are all this one
//! adapter with a different decoder.

use super::decoder::{Decoder, FrameError};
use crate::api::CloseReason;
use crate::reactor::{Conn, Protocol, ShardCtx};
use std::ops::{Deref, DerefMut};

/// What a framed protocol sees in its callbacks: the connection (through
/// `Deref`) plus control of the framing mode.
pub struct FramedConn<'a, 'c, D: Decoder, P: FrameProtocol<D>> {
    conn: &'a mut Conn<'c, Framed<D, P>>,
    raw: &'a mut bool,
}

impl<'c, D: Decoder, P: FrameProtocol<D>> FramedConn<'_, 'c, D, P> {
    /// From now on, deliver bytes as they come to `raw_data_received`
    /// (e.g. for a body of known length after a header line).
    pub fn set_raw_mode(&mut self) {
        *self.raw = true;
    }

    /// Back to frames; bytes not consumed by `raw_data_received` are parsed as frames.
    pub fn set_frame_mode(&mut self) {
        *self.raw = false;
    }

    /// True in raw mode.
    pub fn is_raw_mode(&self) -> bool {
        *self.raw
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
    /// netstring). The default closes the connection, after flushing, with
    /// [`CloseReason::ProtocolError`] naming the problem (Twisted's
    /// `lineLengthExceeded`). Buffered input is discarded either way.
    fn frame_error(&mut self, conn: &mut FramedConn<'_, '_, D, Self>, error: &FrameError) {
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
pub struct Framed<D: Decoder, P: FrameProtocol<D>> {
    decoder: D,
    inner: P,
    /// Bytes received but not yet framed.
    buf: Vec<u8>,
    raw: bool,
    /// A frame error ended framing on this connection.
    broken: bool,
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
            raw: false,
            broken: false,
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
        self.buf.len()
    }

    fn with<R>(
        &mut self,
        conn: &mut Conn<'_, Self>,
        f: impl FnOnce(&mut P, &mut FramedConn<'_, '_, D, P>) -> R,
    ) -> R {
        let mut fc = FramedConn {
            conn,
            raw: &mut self.raw,
        };
        f(&mut self.inner, &mut fc)
    }

    /// Frames and delivers `data` (the new bytes) after what is buffered.
    fn process(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if self.broken {
            return;
        }
        // Parse straight from `data` when nothing is buffered: no copy on the
        // common path; only the unframed tail is kept.
        let owned;
        let mut input: &[u8] = if self.buf.is_empty() {
            data
        } else {
            self.buf.extend_from_slice(data);
            owned = std::mem::take(&mut self.buf);
            &owned
        };
        loop {
            if input.is_empty() || conn.is_closing() {
                break;
            }
            if conn.is_reading_paused() {
                break;
            }
            if self.raw {
                let n = self
                    .with(conn, |p, c| p.raw_data_received(c, input))
                    .min(input.len());
                input = &input[n..];
                if self.raw {
                    break;
                }
                continue;
            }
            match self.decoder.decode(input) {
                Ok(Some(f)) => {
                    let frame = &input[f.start..f.end];
                    self.with(conn, |p, c| p.frame_received(c, frame));
                    input = &input[f.consumed..];
                }
                Ok(None) => break,
                Err(e) => {
                    self.broken = true;
                    input = &[];
                    self.with(conn, |p, c| p.frame_error(c, &e));
                    break;
                }
            }
        }
        self.buf.clear();
        self.buf.extend_from_slice(input);
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
    }

    fn server_stopping(&mut self, conn: &mut Conn<'_, Self>) {
        self.with(conn, |p, c| p.server_stopping(c));
    }

    fn connect_failed(&mut self, shard: &mut ShardCtx, error: &std::io::Error) {
        self.inner.connect_failed(shard, error);
    }
}
