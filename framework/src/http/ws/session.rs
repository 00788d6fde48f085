//! A WebSocket connection after the upgrade: frames read from the HTTP
//! connection's buffer, messages assembled and checked, the close
//! handshake, the idle ping, and [`WsConn`], through which a handler
//! sends.

use super::frame::{self, opcode, FrameError, FrameHead};
use super::{close_code, Message, Text, WebSocket, WsOptions};
use crate::http::HttpConnection;
use crate::{Conn, ConnId, ShardCtx, TimerHandle};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;

/// A message whose fragments are arriving.
struct Partial {
    text: bool,
    data: BytesMut,
    /// Bytes of `data` known to be UTF-8 (text only).
    checked: usize,
}

/// What the session knows besides its handler (split so that a handler
/// callback can borrow both).
pub(crate) struct State {
    opts: Arc<WsOptions>,
    protocol: Option<String>,
    partial: Option<Partial>,
    /// Our close frame went out: nothing more is sent.
    close_sent: bool,
    /// `on_close` ran (or is running): the WebSocket is over.
    done: bool,
    /// Input arrived since the last idle tick.
    heard: bool,
    /// An idle ping is unanswered.
    ping_out: bool,
    idle: Option<TimerHandle>,
    scratch: Vec<u8>,
}

/// A WebSocket's handler and state, held by its HTTP connection.
pub(crate) struct Session {
    handler: Box<dyn WebSocket>,
    st: State,
}

/// The connection as a WebSocket handler sees it: send, ping, close, and
/// the shard (for timers and the bus).
pub struct WsConn<'a, 'c> {
    conn: &'a mut Conn<'c, HttpConnection>,
    st: &'a mut State,
}

/// A payload to send: borrowed (copied into the output) or shared.
enum Payload<'p> {
    Borrowed(&'p [u8]),
    Owned(Bytes),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(b) => b,
        }
    }
}

/// Bodies from this size on are written apart from their frame header,
/// not copied behind it.
const COPY_BELOW: usize = 16 * 1024;

impl<'c> WsConn<'_, 'c> {
    /// Sends a message (dropped once the WebSocket is closing: see
    /// [`is_open`](Self::is_open)).
    pub fn send(&mut self, msg: impl Into<Message>) {
        match msg.into() {
            Message::Text(t) => self.frame(opcode::TEXT, Payload::Owned(t.into_bytes())),
            Message::Binary(b) => self.frame(opcode::BINARY, Payload::Owned(b)),
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.frame(opcode::TEXT, Payload::Borrowed(text.as_bytes()));
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) {
        self.frame(opcode::BINARY, Payload::Borrowed(data));
    }

    /// Sends a ping (at most 125 bytes of payload; more is cut there).
    /// The answer arrives in [`WebSocket::on_pong`].
    pub fn ping(&mut self, payload: &[u8]) {
        let n = payload.len().min(frame::MAX_CONTROL_PAYLOAD);
        self.frame(opcode::PING, Payload::Borrowed(&payload[..n]));
    }

    /// Starts the close handshake with `code` (1000, 1001, … or
    /// 3000–4999; another is sent as 1000) and `reason` (cut to 123
    /// bytes at a character boundary). The peer's answer, or
    /// `WsOptions::close_timeout`, ends the connection; `on_close` follows.
    pub fn close(&mut self, code: u16, reason: &str) {
        let code = if frame::close_code_allowed(code) {
            code
        } else {
            close_code::NORMAL
        };
        if self.send_close(code, reason) {
            self.conn
                .call_later(self.st.opts.close_timeout, |_, conn| conn.close());
        }
    }

    /// True until the close handshake starts (ours or the peer's).
    pub fn is_open(&self) -> bool {
        !self.st.close_sent && !self.st.done
    }

    /// The subprotocol chosen in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.st.protocol.as_deref()
    }

    /// The connection's id (where the bus delivers [`Message`]s for it).
    pub fn id(&self) -> ConnId {
        self.conn.id()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &crate::Addr {
        self.conn.peer_addr()
    }

    /// Bytes written and not yet taken by the kernel.
    pub fn buffered(&self) -> usize {
        self.conn.buffered()
    }

    /// False while the output is above its high-water mark:
    /// [`WebSocket::resume_producing`] says when to go on.
    pub fn is_writable(&self) -> bool {
        self.conn.is_writable()
    }

    /// The shard: its clock, services, the bus.
    pub fn shard(&mut self) -> &mut ShardCtx {
        self.conn.shard()
    }

    /// Runs `f` after `delay`, if the WebSocket is still open then. State
    /// the handler shares with it lives in an `Rc` (the closure runs on
    /// this shard).
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut WsConn<'_, '_>) + 'static,
    ) -> TimerHandle {
        self.conn.call_later(delay, move |p, conn| {
            if let Some(s) = p.ws_session().filter(|s| !s.st.done) {
                f(&mut WsConn {
                    conn,
                    st: &mut s.st,
                });
            }
        })
    }

    /// Cancels a timer from [`call_later`](Self::call_later).
    pub fn cancel_timer(&mut self, handle: TimerHandle) -> bool {
        self.conn.cancel_timer(handle)
    }

    fn frame(&mut self, op: u8, payload: Payload<'_>) {
        if !self.is_open() {
            return;
        }
        self.write_frame(op, payload);
    }

    fn write_frame(&mut self, op: u8, payload: Payload<'_>) {
        let bytes = payload.as_slice();
        let out = &mut self.st.scratch;
        out.clear();
        frame::encode_head(true, op, bytes.len() as u64, None, out);
        if bytes.len() < COPY_BELOW {
            out.extend_from_slice(bytes);
            self.conn.write(out);
            return;
        }
        self.conn.write(out);
        match payload {
            Payload::Owned(b) => self.conn.write_owned(Vec::from(b)),
            Payload::Borrowed(b) => self.conn.write(b),
        }
    }

    /// Sends our close frame, once; false if one went out already.
    fn send_close(&mut self, code: u16, reason: &str) -> bool {
        if self.st.close_sent || self.st.done {
            return false;
        }
        let mut cut = reason.len().min(frame::MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = Vec::with_capacity(2 + cut);
        if code != close_code::NO_STATUS {
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(&reason.as_bytes()[..cut]);
        }
        self.write_frame(opcode::CLOSE, Payload::Borrowed(&payload));
        self.st.close_sent = true;
        true
    }
}

impl Session {
    pub(crate) fn new(
        handler: Box<dyn WebSocket>,
        opts: Arc<WsOptions>,
        protocol: Option<String>,
    ) -> Self {
        Session {
            handler,
            st: State {
                opts,
                protocol,
                partial: None,
                close_sent: false,
                done: false,
                heard: false,
                ping_out: false,
                idle: None,
                scratch: Vec::new(),
            },
        }
    }

    fn ws<'a, 'c>(st: &'a mut State, conn: &'a mut Conn<'c, HttpConnection>) -> WsConn<'a, 'c> {
        WsConn { conn, st }
    }

    /// The 101 answer went out: the handler's `on_open`, the idle ping.
    pub(crate) fn open(&mut self, conn: &mut Conn<'_, HttpConnection>) {
        if let Some(every) = self.st.opts.ping_interval {
            self.st.idle = Some(conn.call_every(every, |p, conn| {
                if let Some(s) = p.ws_session() {
                    s.idle_tick(conn);
                }
            }));
        }
        self.handler.on_open(&mut Self::ws(&mut self.st, conn));
    }

    fn idle_tick(&mut self, conn: &mut Conn<'_, HttpConnection>) {
        if self.st.done || self.st.close_sent {
            return;
        }
        if std::mem::take(&mut self.st.heard) {
            self.st.ping_out = false;
        } else if self.st.ping_out {
            self.finish(conn, close_code::ABNORMAL, "no answer to ping");
            conn.close_with_error("WebSocket peer answered no ping");
        } else {
            self.st.ping_out = true;
            Self::ws(&mut self.st, conn).write_frame(opcode::PING, Payload::Borrowed(b""));
        }
    }

    /// Reads the frames in `buf` (leaving a partial one).
    pub(crate) fn feed(&mut self, buf: &mut BytesMut, conn: &mut Conn<'_, HttpConnection>) {
        self.st.heard = true;
        while !self.st.done {
            let Some(h) = FrameHead::parse(buf) else {
                return;
            };
            if let Err(e) = h.check(true, self.st.opts.max_frame) {
                return match e {
                    FrameError::Protocol(why) => self.fail(conn, close_code::PROTOCOL_ERROR, why),
                    FrameError::TooBig => self.fail(conn, close_code::TOO_BIG, "frame too big"),
                };
            }
            // `check` bounded the length by `max_frame`.
            let total = h.header_len + h.len as usize;
            if buf.len() < total {
                // Nothing reserved ahead: the buffer grows only as bytes
                // arrive, whatever length a header claims.
                return;
            }
            let mut payload = buf.split_to(total).split_off(h.header_len);
            if let Some(key) = h.mask {
                frame::apply_mask(&mut payload, key, 0);
            }
            self.frame(conn, h, payload);
        }
        buf.clear();
    }

    fn frame(&mut self, conn: &mut Conn<'_, HttpConnection>, h: FrameHead, payload: BytesMut) {
        match h.opcode {
            opcode::PING => {
                if !self.st.close_sent {
                    Self::ws(&mut self.st, conn)
                        .write_frame(opcode::PONG, Payload::Borrowed(&payload));
                }
            }
            opcode::PONG => {
                self.st.ping_out = false;
                self.handler
                    .on_pong(&mut Self::ws(&mut self.st, conn), &payload);
            }
            opcode::CLOSE => self.close_received(conn, &payload),
            opcode::CONTINUATION => match self.st.partial.take() {
                None => self.fail(conn, close_code::PROTOCOL_ERROR, "continuation of nothing"),
                Some(p) => self.fragment(conn, p, &payload, h.fin),
            },
            _ if self.st.partial.is_some() => self.fail(
                conn,
                close_code::PROTOCOL_ERROR,
                "a new message inside a fragmented one",
            ),
            op if h.fin => {
                if payload.len() > self.st.opts.max_message {
                    return self.fail(conn, close_code::TOO_BIG, "message too big");
                }
                // One frame, one message: the payload is the message.
                let payload = payload.freeze();
                let msg = if op == opcode::TEXT {
                    if std::str::from_utf8(&payload).is_err() {
                        return self.fail(conn, close_code::INVALID_DATA, "text is not UTF-8");
                    }
                    Message::Text(Text::from_checked(payload))
                } else {
                    Message::Binary(payload)
                };
                self.deliver(conn, msg);
            }
            op => {
                let p = Partial {
                    text: op == opcode::TEXT,
                    data: BytesMut::new(),
                    checked: 0,
                };
                self.fragment(conn, p, &payload, false);
            }
        }
    }

    fn fragment(
        &mut self,
        conn: &mut Conn<'_, HttpConnection>,
        mut p: Partial,
        data: &[u8],
        fin: bool,
    ) {
        if p.data.len() + data.len() > self.st.opts.max_message {
            return self.fail(conn, close_code::TOO_BIG, "message too big");
        }
        p.data.extend_from_slice(data);
        if p.text {
            // Checked as it arrives: a bad byte fails the connection at
            // once; a character cut by the fragment's end waits for the
            // next (each byte is looked at at most four times).
            match std::str::from_utf8(&p.data[p.checked..]) {
                Ok(_) => p.checked = p.data.len(),
                Err(e) if e.error_len().is_none() && !fin => p.checked += e.valid_up_to(),
                Err(_) => return self.fail(conn, close_code::INVALID_DATA, "text is not UTF-8"),
            }
        }
        if !fin {
            self.st.partial = Some(p);
            return;
        }
        let data = p.data.freeze();
        let msg = if p.text {
            Message::Text(Text::from_checked(data))
        } else {
            Message::Binary(data)
        };
        self.deliver(conn, msg);
    }

    fn deliver(&mut self, conn: &mut Conn<'_, HttpConnection>, msg: Message) {
        if self.st.close_sent {
            return; // closing: data is discarded (RFC 6455 §5.5.1)
        }
        self.handler
            .on_message(&mut Self::ws(&mut self.st, conn), msg);
    }

    fn close_received(&mut self, conn: &mut Conn<'_, HttpConnection>, payload: &[u8]) {
        let (code, reason) = match payload {
            [] => (close_code::NO_STATUS, ""),
            [_] => return self.fail(conn, close_code::PROTOCOL_ERROR, "close payload of 1 byte"),
            [a, b, rest @ ..] => {
                let code = u16::from_be_bytes([*a, *b]);
                if !frame::close_code_allowed(code) {
                    return self.fail(conn, close_code::PROTOCOL_ERROR, "invalid close code");
                }
                match std::str::from_utf8(rest) {
                    Ok(r) => (code, r),
                    Err(_) => {
                        return self.fail(conn, close_code::INVALID_DATA, "close reason not UTF-8")
                    }
                }
            }
        };
        // Answered with the peer's code; then the server closes the TCP
        // connection first (RFC 6455 §7.1.1), so the TIME_WAIT is ours.
        Self::ws(&mut self.st, conn).send_close(code, "");
        self.finish(conn, code, reason);
        conn.close();
    }

    /// Fails the WebSocket (RFC 6455 §7.1.7): our close frame with
    /// `code`, then the TCP close.
    fn fail(&mut self, conn: &mut Conn<'_, HttpConnection>, code: u16, why: &'static str) {
        Self::ws(&mut self.st, conn).send_close(code, why);
        self.finish(conn, code, why);
        conn.close_with_error(format!("WebSocket: {why}"));
    }

    /// Reports the end to the handler, once.
    fn finish(&mut self, conn: &mut Conn<'_, HttpConnection>, code: u16, reason: &str) {
        if std::mem::replace(&mut self.st.done, true) {
            return;
        }
        self.st.partial = None;
        if let Some(t) = self.st.idle.take() {
            conn.cancel_timer(t);
        }
        self.handler
            .on_close(&mut Self::ws(&mut self.st, conn), code, reason);
    }

    /// The peer's EOF or the connection's end without a close handshake.
    pub(crate) fn ended(&mut self, conn: &mut Conn<'_, HttpConnection>) {
        self.finish(conn, close_code::ABNORMAL, "");
    }

    /// A message from the bus.
    pub(crate) fn push(&mut self, conn: &mut Conn<'_, HttpConnection>, msg: Message) {
        if !self.st.done {
            self.handler.on_push(&mut Self::ws(&mut self.st, conn), msg);
        }
    }

    /// Output drained.
    pub(crate) fn resume_producing(&mut self, conn: &mut Conn<'_, HttpConnection>) {
        if !self.st.done {
            self.handler
                .resume_producing(&mut Self::ws(&mut self.st, conn));
        }
    }

    /// The server is stopping: close with 1001.
    pub(crate) fn stopping(&mut self, conn: &mut Conn<'_, HttpConnection>) {
        if self.st.done {
            return conn.close();
        }
        Self::ws(&mut self.st, conn).close(close_code::GOING_AWAY, "server stopping");
    }
}
