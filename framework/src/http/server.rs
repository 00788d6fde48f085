//! The HTTP/1.1 server: a `Protocol` per connection that reads requests
//! (heads, then bodies by their framing), hands each to the handler, and
//! writes the responses in request order: keep-alive, pipelining,
//! HTTP/1.0, HEAD, `Expect: 100-continue`, limits, timeouts and shedding.

use super::body::Body;
use super::builder::{PeerAddr, Shared};
use super::chunked::ChunkedDecoder;
use super::h2;
use super::handler::Reply;
use super::head::{self, Framing, Head, HeaderSpan, Refusal};
use super::request_body::{BodyError, BodyReader};
use super::response::{self, encode};
use super::stream::{OwedStream, Streaming};
use super::ws::{self, Session};
use crate::{Conn, Protocol};
use bytes::BytesMut;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

impl HttpConnection {
    /// A new connection's protocol (from [`HttpFactory`]).
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        HttpConnection {
            shared,
            buf: BytesMut::new(),
            spans: Vec::new(),
            body: None,
            pending: VecDeque::new(),
            first_owed: 0,
            next_seq: 0,
            closing: false,
            eof: false,
            refused: false,
            deadline: false,
            idle_armed: false,
            paused: false,
            scratch: Vec::new(),
            upgrading: false,
            ws: None,
            streaming: None,
        }
    }
}

/// A request whose body is being read.
struct InBody {
    /// The head, until the body is whole (none for a streamed body: its
    /// request was dispatched at once).
    parts: Option<http::request::Parts>,
    left: BodyLeft,
    body: BytesMut,
    keep_alive: bool,
    /// Where a streamed body's pieces go.
    reader: Option<BodyReader>,
}

enum BodyLeft {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// A response not yet written: its head (with a small body) and a large
/// body once known, and whether the connection closes after it.
pub(super) struct Slot {
    pub(super) bytes: Option<(Vec<u8>, Option<bytes::Bytes>)>,
    pub(super) close: bool,
    /// A WebSocket that takes the connection over once this is written.
    pub(super) upgrade: Option<Box<Session>>,
    /// A streamed response, started when its turn comes.
    pub(super) stream: Option<Box<OwedStream>>,
}

/// One HTTP/1.1 connection (the protocol [`HttpFactory`](super::HttpFactory) builds).
pub struct HttpConnection {
    shared: Arc<Shared>,
    pub(super) buf: BytesMut,
    spans: Vec<HeaderSpan>,
    body: Option<Box<InBody>>,
    /// Responses owed, in request order, the first for request `first_owed`.
    pub(super) pending: VecDeque<Slot>,
    pub(super) first_owed: u64,
    next_seq: u64,
    /// No more requests are read (a close was asked for, an error, or an
    /// upgrade).
    pub(super) closing: bool,
    /// The peer sent EOF: what was read is served, then the close.
    pub(super) eof: bool,
    /// A request was refused (the input after it was never read).
    refused: bool,
    /// A read deadline (header or body timeout) is armed.
    deadline: bool,
    /// The keep-alive (idle) timeout is running.
    idle_armed: bool,
    /// Reading paused because `max_pipelined` responses are owed.
    pub(super) paused: bool,
    scratch: Vec<u8>,
    /// An upgrade is owed: input is kept for the new protocol.
    pub(super) upgrading: bool,
    /// The WebSocket the connection was upgraded to.
    pub(super) ws: Option<Box<Session>>,
    /// The streamed response being written (later answers wait for it).
    pub(super) streaming: Option<Streaming>,
}

impl Protocol for HttpConnection {
    /// Messages for the WebSocket this connection was upgraded to
    /// (dropped by a plain HTTP connection).
    type Message = ws::Message;

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let alpn = conn.tls_info().and_then(|t| t.alpn);
        if alpn.as_deref() == Some(b"h2") {
            return self.start_h2(conn, &[]);
        }
        // The first request's head is due from the start, as for nginx: a
        // connection that sends nothing is closed at the header timeout.
        // The keep-alive timer starts once a request was answered (one
        // timer less for a connection that closes after one request).
        match self.shared.limits.header_timeout {
            Some(t) => self.set_deadline(conn, Some(t)),
            None => self.keep_alive(conn, true),
        }
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if let Some(ws) = &mut self.ws {
            self.buf.extend_from_slice(data);
            return ws.feed(&mut self.buf, conn);
        }
        if self.closing && !self.upgrading && self.body.is_none() {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.next_seq == 0 && self.body.is_none() && self.buf.starts_with(&h2::PREFACE[..4]) {
            // `PRI ` opens a prior-knowledge HTTP/2 connection (h2c).
            let n = self.buf.len().min(h2::PREFACE.len());
            if self.buf[..n] == h2::PREFACE[..n] {
                if n < h2::PREFACE.len() {
                    return; // the rest of the preface is coming
                }
                let early = std::mem::take(&mut self.buf);
                return self.start_h2(conn, &early);
            }
        }
        self.serve(conn);
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        if let Some(ws) = &mut self.ws {
            // The peer left without the close handshake.
            ws.ended(conn);
            return conn.close();
        }
        // The requests already read are still answered, in order; one cut
        // short gets no answer; the connection closes after the last.
        self.eof = true;
        self.serve(conn);
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, _reason: &crate::CloseReason) {
        self.stream_lost();
        self.drop_body(BodyError::Incomplete);
        if let Some(ws) = &mut self.ws {
            ws.ended(conn);
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: ws::Message) {
        if let Some(ws) = &mut self.ws {
            ws.push(conn, msg);
        }
    }

    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        self.stream_pause(true);
    }

    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.stream_pause(false);
        match &mut self.ws {
            Some(ws) => ws.resume_producing(conn),
            None => self.serve(conn),
        }
    }

    fn server_stopping(&mut self, conn: &mut Conn<'_, Self>) {
        match &mut self.ws {
            Some(ws) => ws.stopping(conn),
            None => conn.close(),
        }
    }
}

impl HttpConnection {
    /// Reads and answers the requests in the buffer while the connection
    /// takes output and owes fewer than `max_pipelined` responses.
    pub(super) fn serve(&mut self, conn: &mut Conn<'_, Self>) {
        // A body being read is read to its end even once no further
        // request will be (a streamed body's request was answered first).
        while !self.closing || self.body.is_some() {
            if self.body.is_some() {
                if !self.read_body(conn) {
                    return self.out_of_input(conn);
                }
                continue;
            }
            if self.pending.len() >= self.shared.limits.max_pipelined {
                if !self.paused {
                    self.paused = true;
                    conn.pause_reading();
                }
                return;
            }
            if !conn.is_writable() {
                return; // resume_producing brings us back
            }
            if self.buf.is_empty() {
                self.set_deadline(conn, None);
                // Between requests: the keep-alive timeout rules (after
                // the peer's EOF the close below comes first).
                if self.nothing_owed() && !self.eof {
                    self.keep_alive(conn, true);
                }
                return self.out_of_input(conn);
            }
            match head::parse(&self.buf, &self.shared.limits, &mut self.spans) {
                Err(r) => return self.refuse(conn, r),
                Ok(None) => {
                    let t = self.shared.limits.header_timeout;
                    if !self.deadline {
                        self.set_deadline(conn, t);
                    }
                    return self.out_of_input(conn);
                }
                Ok(Some((parsed, len))) => {
                    let bytes = self.buf.split_to(len).freeze();
                    match parsed.into_head(&bytes, &self.spans) {
                        Ok(head) => self.start(conn, head),
                        Err(r) => return self.refuse(conn, r),
                    }
                }
            }
        }
    }

    /// Nothing more can be served from the input read so far: after the
    /// peer's EOF, that is the end (the close follows the last answer).
    fn out_of_input(&mut self, conn: &mut Conn<'_, Self>) {
        if !self.eof {
            return;
        }
        self.drop_body(BodyError::Incomplete);
        if self.closing {
            return;
        }
        self.closing = true;
        self.set_deadline(conn, None);
        if self.nothing_owed() {
            conn.close();
        }
    }

    /// A head was read: answer it, or start reading its body.
    fn start(&mut self, conn: &mut Conn<'_, Self>, head: Head) {
        let limits = &self.shared.limits;
        if head.framing == Framing::Length(0) {
            let req = Request::from_parts(head.parts, Body::empty());
            return self.dispatch(conn, req, head.keep_alive);
        }
        // A handler that takes the body in pieces gets its request now.
        let streamed = self.shared.handler.streams_body(&head.parts);
        let left = match head.framing {
            Framing::Length(n) if n > limits.max_body && !streamed => {
                return self.refuse(conn, too_large());
            }
            Framing::Length(n) => BodyLeft::Length(n),
            Framing::Chunked => BodyLeft::Chunked(ChunkedDecoder::new(
                limits.max_chunk_line,
                limits.max_trailers,
            )),
        };
        if head.expect_continue && self.nothing_owed() {
            conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let t = limits.body_timeout;
        self.set_deadline(conn, t);
        let keep_alive = head.keep_alive;
        if streamed {
            let r = BodyReader::new(Some(conn.id()));
            let mut req = Request::from_parts(head.parts, Body::empty());
            req.extensions_mut().insert(r.clone());
            // Reading the body goes on while the handler runs.
            self.body = Some(Box::new(InBody {
                parts: None,
                left,
                body: BytesMut::new(),
                keep_alive,
                reader: Some(r),
            }));
            return self.dispatch(conn, req, keep_alive);
        }
        self.body = Some(Box::new(InBody {
            parts: Some(head.parts),
            left,
            body: BytesMut::new(),
            keep_alive,
            reader: None,
        }));
    }

    /// A body that will not be read to its end: a streamed one learns why.
    fn drop_body(&mut self, why: BodyError) {
        if let Some(r) = self.body.take().and_then(|b| b.reader) {
            r.finish(Err(why));
        }
    }

    /// A streamed body's handler caught up: reading goes on.
    pub(super) fn body_drained(&mut self, conn: &mut Conn<'_, Self>) {
        if self.body.is_some() {
            conn.resume_reading();
            self.serve(conn);
        }
    }

    /// Takes body bytes from the buffer; true once the request was answered.
    fn read_body(&mut self, conn: &mut Conn<'_, Self>) -> bool {
        let max = self.shared.limits.max_body;
        let b = self.body.as_mut().expect("reading a body");
        if b.reader.as_ref().is_some_and(BodyReader::is_full) {
            conn.pause_reading();
            return false; // `body_drained` brings us back
        }
        let done = match &mut b.left {
            BodyLeft::Length(left) => {
                let n = (*left).min(self.buf.len() as u64) as usize;
                let piece = self.buf.split_to(n);
                match &b.reader {
                    Some(r) => r.push(piece.freeze()),
                    None => b.body.extend_from_slice(&piece),
                }
                *left -= n as u64;
                *left == 0
            }
            BodyLeft::Chunked(dec) => {
                let (body, reader) = (&mut b.body, &b.reader);
                let decoded = dec.decode(&self.buf, |d| match reader {
                    Some(r) => r.push(bytes::Bytes::copy_from_slice(d)),
                    None => body.extend_from_slice(d),
                });
                match decoded {
                    Ok(used) => {
                        let _ = self.buf.split_to(used);
                        if b.reader.is_none() && b.body.len() as u64 > max {
                            self.body = None;
                            self.refuse(conn, too_large());
                            return false;
                        }
                        dec.is_done()
                    }
                    Err(_) => {
                        self.drop_body(BodyError::Malformed);
                        self.refuse(
                            conn,
                            Refusal {
                                status: StatusCode::BAD_REQUEST,
                                why: "malformed chunked body",
                            },
                        );
                        return false;
                    }
                }
            }
        };
        if !done {
            return false;
        }
        let b = self.body.take().expect("reading a body");
        self.set_deadline(conn, None);
        match (b.parts, b.reader) {
            (_, Some(r)) => r.finish(Ok(())),
            (Some(parts), None) => {
                let req = Request::from_parts(parts, Body::from(b.body.freeze()));
                self.dispatch(conn, req, b.keep_alive);
            }
            (None, None) => {}
        }
        true
    }

    /// Runs the handler (or the shedder) on a complete request.
    fn dispatch(&mut self, conn: &mut Conn<'_, Self>, req: Request<Body>, keep_alive: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let head_only = req.method() == Method::HEAD;
        let version = req.version();
        if !keep_alive {
            self.closing = true;
        }
        match self.answer(req, conn) {
            Reply::Now(r) => self.respond(conn, seq, r, head_only, version, keep_alive),
            Reply::Upgrade(up) => self.upgrade(conn, seq, up),
            Reply::Stream(reply) => {
                let owed = OwedStream {
                    reply,
                    head_only,
                    version,
                    keep_alive,
                };
                if self.nothing_owed() {
                    self.start_stream(conn, owed);
                    if self.streaming.is_none() {
                        self.write_ready(conn);
                    }
                } else {
                    self.owe(conn, seq, None, !keep_alive, None);
                    let i = (seq - self.first_owed) as usize;
                    self.pending[i].stream = Some(Box::new(owed));
                    self.write_ready(conn);
                }
            }
            Reply::Later(fut) => {
                self.owe(conn, seq, None, !keep_alive, None);
                conn.spawn(move |task| async move {
                    let r = fut.await;
                    task.run(move |p, conn| {
                        p.respond(conn, seq, r, head_only, version, keep_alive)
                    });
                });
            }
        }
    }

    /// The shedder's 503, or the handler's answer (HTTP/1.1 and HTTP/2),
    /// with the client's address in the request if the server says so.
    pub(super) fn answer(&mut self, mut req: Request<Body>, conn: &mut Conn<'_, Self>) -> Reply {
        if self.shared.peer_addr {
            req.extensions_mut()
                .insert(PeerAddr(conn.peer_addr().clone()));
        }
        let shed = self
            .shared
            .shed
            .as_ref()
            .and_then(|shed| shed(&req, conn.shard()));
        if let Some(retry) = shed {
            let mut r = response::error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
            let secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            return Reply::Now(r);
        }
        self.shared.handler.call(req, conn.shard())
    }

    /// The server's configuration.
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Writes response `seq` now if every earlier one is out, else keeps it.
    fn respond(
        &mut self,
        conn: &mut Conn<'_, Self>,
        seq: u64,
        r: Response<Body>,
        head_only: bool,
        version: Version,
        keep_alive: bool,
    ) {
        let framing = response::Framing {
            head_only,
            version,
            keep_alive,
            server: self.shared.server.as_ref(),
            now: conn.shard().now(),
            streamed: false,
        };
        if self.nothing_owed() {
            // The fast path: nothing owed before it (no copy kept).
            self.scratch.clear();
            let e = encode(r, &framing, &mut self.scratch);
            conn.write(&self.scratch);
            if let Some(body) = e.body {
                conn.write_owned(Vec::from(body));
            }
            if e.close {
                self.closing = true;
                self.close_after_answer(conn);
            }
            return;
        }
        let mut head = Vec::new();
        let e = encode(r, &framing, &mut head);
        let ready = Some((head, e.body));
        let owed = seq
            .checked_sub(self.first_owed)
            .and_then(|i| self.pending.get_mut(i as usize));
        match owed {
            Some(slot) => {
                slot.bytes = ready;
                slot.close = e.close;
            }
            None => self.owe(conn, seq, ready, e.close, None),
        }
        self.write_ready(conn);
    }

    /// Keeps a place for response `seq` (the newest request's).
    pub(super) fn owe(
        &mut self,
        conn: &mut Conn<'_, Self>,
        seq: u64,
        bytes: Option<(Vec<u8>, Option<bytes::Bytes>)>,
        close: bool,
        upgrade: Option<Box<Session>>,
    ) {
        if self.pending.is_empty() {
            self.first_owed = seq;
            // Waiting on the handler is not idleness.
            self.keep_alive(conn, false);
        }
        self.pending.push_back(Slot {
            bytes,
            close,
            upgrade,
            stream: None,
        });
    }

    /// Writes the owed responses that are ready, in order.
    pub(super) fn write_ready(&mut self, conn: &mut Conn<'_, Self>) {
        while self
            .pending
            .front()
            .is_some_and(|s| s.bytes.is_some() || s.stream.is_some())
        {
            if self.streaming.is_some() {
                return; // its end brings us back
            }
            let slot = self.pending.pop_front().expect("checked");
            self.first_owed += 1;
            if let Some(owed) = slot.stream {
                self.start_stream(conn, *owed);
                if self.closing && self.pending.is_empty() && self.streaming.is_none() {
                    return;
                }
                continue;
            }
            let (head, body) = slot.bytes.expect("checked");
            conn.write_owned(head);
            if let Some(body) = body {
                conn.write_owned(Vec::from(body));
            }
            if let Some(session) = slot.upgrade {
                self.pending.clear();
                return self.switch(conn, session);
            }
            if slot.close {
                self.closing = true;
                self.pending.clear();
                conn.close();
                return;
            }
        }
        if self.streaming.is_some() {
            return;
        }
        if self.pending.is_empty() {
            if self.closing {
                conn.close();
                return;
            }
            self.keep_alive(conn, true);
        }
        if self.paused && self.pending.len() < self.shared.limits.max_pipelined {
            self.paused = false;
            conn.resume_reading();
            self.serve(conn);
        }
    }

    /// Closes after the last answer. When the request that asked for the
    /// close was the last byte read, the client sends nothing more (it
    /// said so): the socket closes once flushed, without waiting for its
    /// FIN (a system call and a wake-up less per connection, which is most
    /// of a `Connection: close` load). Input left over means a client that
    /// went on sending: the close then lingers and drains it, so no reset
    /// destroys the answer.
    fn close_after_answer(&mut self, conn: &mut Conn<'_, Self>) {
        if self.buf.is_empty() && self.body.is_none() && !self.refused {
            conn.close_without_linger();
        } else {
            conn.close();
        }
    }

    /// Answers a request that cannot be served, then closes.
    fn refuse(&mut self, conn: &mut Conn<'_, Self>, r: Refusal) {
        // Whatever the client sends next is unread: linger over it.
        self.refused = true;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.drop_body(BodyError::Malformed);
        self.closing = true;
        self.set_deadline(conn, None);
        let resp = response::error(r.status, r.why);
        self.respond(conn, seq, resp, false, Version::HTTP_11, false);
    }

    /// No answer is owed or being written.
    pub(super) fn nothing_owed(&self) -> bool {
        self.pending.is_empty() && self.streaming.is_none()
    }

    /// The `Server` field the server sends, if any.
    pub(super) fn server_field(&self) -> Option<&HeaderValue> {
        self.shared.server.as_ref()
    }

    /// Starts (or stops) the keep-alive timeout, if it is not so already.
    pub(super) fn keep_alive(&mut self, conn: &mut Conn<'_, Self>, on: bool) {
        if self.idle_armed != on {
            self.idle_armed = on;
            conn.set_idle_timeout(self.shared.limits.keep_alive.filter(|_| on));
        }
    }

    /// Arms (or clears) the deadline for the request being read.
    pub(super) fn set_deadline(&mut self, conn: &mut Conn<'_, Self>, t: Option<Duration>) {
        if t.is_none() && !self.deadline {
            return;
        }
        self.deadline = t.is_some();
        conn.set_read_timeout(t);
    }
}

fn too_large() -> Refusal {
    Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        why: "request body too large",
    }
}
