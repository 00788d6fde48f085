//! The protocol each load connection runs: sends requests on the closed- or
//! open-loop schedule, matches responses in order, records latency.

mod h2;
mod schedule;
mod shared;

pub(crate) use shared::{ConnPacer, Due, RunShared, UNSET};

use crate::codec::Decoded;
use crate::plan::Schedule;
use crate::recorder::{nanos, recorder, ErrorKind};
use shardloop::endpoint::Connect;
use shardloop::{CloseReason, Conn, Protocol, ShardCtx, TimerHandle};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct InFlight {
    seq: u64,
    intended: Instant,
    /// When its last byte reached the kernel (stamped at the flush).
    sent: Option<Instant>,
    /// Bytes written on this connection up to its end.
    end: u64,
    counted: bool,
}

impl InFlight {
    /// The send time, or (not yet known to have left) the intended one.
    fn sent_or_intended(&self) -> Instant {
        self.sent.unwrap_or(self.intended)
    }
}

pub(crate) struct LoadConn {
    shared: Arc<RunShared>,
    /// `inbuf[in_start..]`: received bytes not yet decoded.
    inbuf: Vec<u8>,
    in_start: usize,
    /// Decoding waits until this many bytes are buffered (from `Incomplete`).
    need: usize,
    /// Where decoding the response in progress stands.
    progress: crate::codec::Progress,
    in_flight: VecDeque<InFlight>,
    /// The last `unstamped` of `in_flight` have not been seen to leave.
    unstamped: usize,
    /// Bytes written on this connection.
    written: u64,
    next_seq: u64,
    /// Open loop: when the next request is due.
    next_intended: Instant,
    send_timer: Option<TimerHandle>,
    /// Why we are closing the connection ourselves, if we are.
    failing: Option<ErrorKind>,
    finished: bool,
    scratch: Vec<u8>,
    /// When the connect began (connect time = until `connection_made`).
    started: Instant,
    /// Responses received on this connection.
    answered: u64,
    /// Closing after `reconnect_every` responses, to be replaced.
    recycling: bool,
    /// The requests due but never sent were counted.
    unsent_counted: bool,
    /// The preamble (a WebSocket handshake) is not answered yet.
    handshaking: bool,
    /// Open loop: this connection's place in the plan (past `next_intended`).
    schedule: Option<Schedule>,
    /// Its draws of the request templates' variables.
    draws: crate::template::Draws,
    /// When the first byte of the response in progress arrived.
    first_byte: Option<Instant>,
    /// Closed loop with think time: no send before this.
    think_until: Option<Instant>,
    /// HTTP/2: what the streams of the connection's task share.
    h2: Option<std::rc::Rc<std::cell::RefCell<h2::Streams>>>,
}

impl LoadConn {
    fn new(shared: Arc<RunShared>, due: Option<Due>) -> Self {
        let (first_due, schedule) = match due {
            Some(d) => (d.next, Some(d.schedule)),
            None => (Instant::now(), None),
        };
        let seed = shared.seeds.fetch_add(1, Ordering::Relaxed);
        let draws = shared
            .codec
            .draws(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ shared.scenario as u64);
        LoadConn {
            draws,
            first_byte: None,
            think_until: None,
            shared,
            inbuf: Vec::new(),
            in_start: 0,
            need: 0,
            progress: Default::default(),
            in_flight: VecDeque::new(),
            unstamped: 0,
            written: 0,
            next_seq: 0,
            next_intended: first_due,
            send_timer: None,
            failing: None,
            finished: false,
            scratch: Vec::new(),
            started: Instant::now(),
            answered: 0,
            recycling: false,
            unsent_counted: false,
            handshaking: false,
            schedule,
            h2: None,
        }
    }

    /// Starts a connection on this shard (and counts it active).
    pub(crate) fn start(ctx: &mut ShardCtx, shared: Arc<RunShared>, due: Option<Due>) {
        shared.active.fetch_add(1, Ordering::AcqRel);
        let timeout = shared.connect_timeout;
        let mut connect = Connect::addr(shared.target.clone()).timeout(timeout);
        if let Some(tls) = &shared.tls {
            // The name was checked with the configuration; a failure would
            // come back as a failed connect.
            connect = connect.tls(tls.config.clone(), tls.server_name.clone());
        }
        ctx.connect(connect, LoadConn::new(shared, due));
    }

    /// Queues one request; its send time is stamped when the flush hands
    /// its bytes to the kernel (`output_flushed`).
    fn send(&mut self, conn: &mut Conn<'_, Self>, intended: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.scratch.clear();
        self.shared
            .codec
            .encode(seq, &mut self.draws, &mut self.scratch);
        conn.write(&self.scratch);
        let counted = intended >= self.shared.measure_from();
        let bytes = self.scratch.len() as u64;
        self.written += bytes;
        if counted {
            recorder(conn.shard(), self.shared.scenario).with(|s| {
                s.sent += 1;
                s.bytes_out += bytes;
            });
        }
        self.in_flight.push_back(InFlight {
            seq,
            intended,
            sent: None,
            end: self.written,
            counted,
        });
        self.unstamped += 1;
    }

    /// Stamps the requests whose bytes have all left; records each one's
    /// queueing delay (intended send to kernel).
    fn stamp_sent(&mut self, conn: &mut Conn<'_, Self>, left: u64) {
        let now = Instant::now();
        let first = self.in_flight.len() - self.unstamped;
        let recorder = recorder(conn.shard(), self.shared.scenario);
        for r in self.in_flight.range_mut(first..) {
            if r.end > left {
                break;
            }
            r.sent = Some(now);
            self.unstamped -= 1;
            if r.counted {
                let lag = nanos(now.saturating_duration_since(r.intended));
                recorder.with(|s| s.send_lag.saturating_record(lag));
            }
        }
    }

    /// Sends whatever the schedule allows now; arms the send timer for later.
    fn pump(&mut self, conn: &mut Conn<'_, Self>) {
        if self.finished || conn.is_closing() {
            return;
        }
        let now = Instant::now();
        if now >= self.shared.end() {
            self.finish(conn);
            return;
        }
        let cap = self.shared.mode.max_in_flight();
        match self.schedule {
            // Closed loop: think time after each answer before the next send.
            None => match self.think_until.filter(|t| *t > now) {
                Some(until) => {
                    if self.send_timer.is_none() {
                        let wait = until - now;
                        self.send_timer = Some(conn.call_later(wait, |p: &mut LoadConn, conn| {
                            p.send_timer = None;
                            p.pump(conn);
                        }));
                    }
                }
                None => {
                    while self.in_flight.len() < cap {
                        self.send(conn, now);
                    }
                }
            },
            Some(_) => {
                while self.in_flight.len() < cap && self.next_intended <= now {
                    let intended = self.next_intended;
                    self.advance();
                    self.send(conn, intended);
                }
                if self.in_flight.len() < cap && self.send_timer.is_none() {
                    let wait = self.next_intended.saturating_duration_since(now);
                    self.send_timer = Some(conn.call_later(wait, |p: &mut LoadConn, conn| {
                        p.send_timer = None;
                        p.pump(conn);
                    }));
                }
            }
        }
        if self.unstamped > 0 {
            conn.notify_flushed();
        }
    }

    /// The run is over for this connection: stop sending, close once drained.
    fn finish(&mut self, conn: &mut Conn<'_, Self>) {
        if !self.recycling {
            self.count_unsent(conn);
        }
        self.finished = true;
        if let Some(t) = self.send_timer.take() {
            conn.cancel_timer(t);
        }
        if self.in_flight.is_empty() {
            conn.close();
        }
    }

    fn fail(&mut self, conn: &mut Conn<'_, Self>, kind: ErrorKind) {
        self.failing = Some(kind);
        conn.abort();
    }

    fn connected(&mut self, conn: &mut Conn<'_, Self>) {
        // Connects of the connect phase are reported too (how long the
        // run's connections took to come up), and those while measuring.
        let in_phase = self.shared.offset.load(Ordering::Acquire) == UNSET;
        self.shared.connected.fetch_add(1, Ordering::AcqRel);
        self.shared.connection_resolved();
        let now = conn.shard().now();
        if in_phase || now >= self.shared.measure_from() {
            // The real clock, as the TLS layer's handshake time reads it
            // (the loop's cached one may lag behind it by an iteration).
            let total = self.started.elapsed();
            let info = conn.tls_info();
            let tls = info.as_ref().and_then(|i| i.handshake_time);
            let resumed = info.is_some_and(|i| i.resumed);
            let (ns, tcp) = (
                nanos(total),
                nanos(total.saturating_sub(tls.unwrap_or_default())),
            );
            recorder(conn.shard(), self.shared.scenario).with(|s| {
                s.connects += 1;
                s.tls_resumed += u64::from(resumed);
                s.connect_time.saturating_record(ns);
                s.tcp_connect.saturating_record(tcp);
                if let Some(t) = tls {
                    s.tls_handshake.saturating_record(nanos(t));
                }
            });
        }
        if self.shared.h2.is_some() {
            // Each stream has its own timeout.
            return self.start_h2(conn);
        }
        // Request timeouts: checked often enough to catch them within a quarter.
        let every = (self.shared.timeout / 4).max(Duration::from_millis(5));
        conn.call_every(every, |p: &mut LoadConn, conn| {
            if let Some(oldest) = p.in_flight.front() {
                if oldest.sent_or_intended().elapsed() > p.shared.timeout {
                    p.fail(conn, ErrorKind::Timeout);
                }
            } else if p.handshaking && p.started.elapsed() > p.shared.timeout {
                p.fail(conn, ErrorKind::Timeout);
            }
        });
        if let Some(preamble) = self.shared.codec.preamble() {
            // Requests wait for the answer (a WebSocket's 101).
            self.handshaking = true;
            conn.write(preamble);
            return;
        }
        self.pump(conn);
    }

    fn received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if !self.handshaking {
            return self.responses(conn, data);
        }
        self.inbuf.extend_from_slice(data);
        match self.shared.codec.preamble_done(&self.inbuf) {
            Ok(None) => {}
            Ok(Some(len)) => {
                self.handshaking = false;
                let rest = self.inbuf.split_off(len);
                self.inbuf.clear();
                self.pump(conn);
                if !rest.is_empty() {
                    self.responses(conn, &rest);
                }
            }
            Err(kind) => {
                recorder(conn.shard(), self.shared.scenario).with(|s| s.errors.add(kind, 1));
                self.fail(conn, kind);
            }
        }
    }

    /// Reads the responses in `data` (after any preamble).
    fn responses(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let now = conn.shard().now();
        if self.first_byte.is_none() && !data.is_empty() {
            self.first_byte = Some(now);
        }
        // Decode straight from `data` when nothing is buffered; otherwise
        // append (compacting rarely) and decode the buffer. Each byte is
        // copied O(1) times and, with the decoder's hints, scanned once.
        let mut work = std::mem::take(&mut self.inbuf);
        let from_data = self.in_start == work.len();
        if from_data {
            work.clear();
            self.in_start = 0;
        } else {
            if self.in_start > 0 && self.in_start >= work.len() - self.in_start {
                work.drain(..self.in_start);
                self.in_start = 0;
            }
            work.extend_from_slice(data);
        }
        let whole: &[u8] = if from_data {
            data
        } else {
            &work[self.in_start..]
        };
        let mut buf = whole;
        if buf.len() < self.need {
            // The response in progress cannot be complete yet.
            self.inbuf = work;
            if from_data {
                self.inbuf.extend_from_slice(data);
            }
            return;
        }
        let mut fatal = false;
        while !buf.is_empty() {
            let Some(head) = self.in_flight.front() else {
                // Bytes nobody asked for.
                fatal = true;
                break;
            };
            match self.shared.codec.decode(buf, head.seq, &mut self.progress) {
                Decoded::Incomplete { need } => {
                    self.need = need;
                    break;
                }
                Decoded::Skip { consumed } => {
                    buf = &buf[consumed..];
                    self.first_byte = (!buf.is_empty()).then_some(now);
                    self.need = 0;
                    self.progress = Default::default();
                }
                Decoded::Fatal => {
                    fatal = true;
                    break;
                }
                Decoded::Done {
                    consumed,
                    result,
                    status,
                } => {
                    let r = self.in_flight.pop_front().expect("head exists");
                    if !self.shared.think.is_zero() {
                        self.think_until = Some(now + self.shared.think);
                    }
                    // Answered before its flush was seen (a TLS queue
                    // counts ciphertext): it had left.
                    self.unstamped = self.unstamped.min(self.in_flight.len());
                    self.answered += 1;
                    buf = &buf[consumed..];
                    self.need = 0;
                    self.progress = Default::default();
                    // The next response's bytes are here already, or not.
                    let first =
                        std::mem::replace(&mut self.first_byte, (!buf.is_empty()).then_some(now));
                    if r.counted {
                        let sent = r.sent_or_intended();
                        // Closed loop: measured from the send, as wrk does.
                        let from = if self.schedule.is_some() {
                            r.intended
                        } else {
                            sent
                        };
                        let latency = nanos(now.saturating_duration_since(from));
                        let service = nanos(now.saturating_duration_since(sent));
                        let ttfb = nanos(first.unwrap_or(now).saturating_duration_since(sent));
                        let n = consumed as u64;
                        recorder(conn.shard(), self.shared.scenario).with(|s| {
                            s.bytes_in += n;
                            if status != 0 {
                                *s.http_status.entry(status).or_insert(0) += 1;
                            }
                            match result {
                                Ok(()) => {
                                    s.ok += 1;
                                    s.record_latency(latency, service);
                                    s.ttfb.saturating_record(ttfb);
                                }
                                Err(kind) => s.errors.add(kind, 1),
                            }
                        });
                    }
                }
            }
        }
        if fatal {
            // Framing is lost: the oldest outstanding request gets the blame,
            // the rest are lost with the connection.
            if let Some(r) = self.in_flight.pop_front() {
                self.unstamped = self.unstamped.min(self.in_flight.len());
                if r.counted {
                    recorder(conn.shard(), self.shared.scenario)
                        .with(|s| s.errors.add(ErrorKind::Protocol, 1));
                }
            }
            self.fail(conn, ErrorKind::Read);
            return;
        }
        let consumed = whole.len() - buf.len();
        if from_data {
            work.extend_from_slice(&data[consumed..]);
        } else {
            self.in_start += consumed;
        }
        if self.in_start == work.len() {
            work.clear();
            self.in_start = 0;
        }
        self.inbuf = work;
        if !self.finished
            && self
                .shared
                .reconnect_every
                .is_some_and(|n| self.answered >= n)
        {
            // Churn: this connection has done its share; a new one replaces it.
            self.recycling = true;
            self.finish(conn);
            return;
        }
        if self.finished {
            if self.in_flight.is_empty() {
                conn.close();
            }
        } else {
            self.pump(conn);
        }
    }
}

impl Protocol for LoadConn {
    type Message = ();

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.connected(conn);
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.received(conn, data);
    }

    fn output_flushed(&mut self, conn: &mut Conn<'_, Self>) {
        // With TLS the queue holds ciphertext (more bytes than written):
        // then this undercounts, and the empty queue stamps the rest.
        let left = self.written.saturating_sub(conn.buffered() as u64);
        self.stamp_sent(conn, left);
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        if !self.in_flight.is_empty() {
            self.failing.get_or_insert(ErrorKind::Read);
        }
        conn.close();
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let kind = self.failing.unwrap_or(match reason {
            CloseReason::Io {
                kind: std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::WriteZero,
                ..
            } => ErrorKind::Write,
            _ => ErrorKind::Read,
        });
        let lost = self.in_flight.iter().filter(|r| r.counted).count() as u64 + self.h2_back();
        if lost > 0 {
            recorder(conn.shard(), self.shared.scenario).with(|s| s.errors.add(kind, lost));
        }
        self.in_flight.clear();
        self.unstamped = 0;
        let run_over = (self.finished && !self.recycling) || Instant::now() >= self.shared.end();
        if run_over && !self.recycling {
            // A connection that never got to `finish` (stuck at its
            // in-flight limit until a timeout) still accounts for its schedule.
            self.count_unsent(conn);
        }
        if run_over {
            self.shared.active.fetch_sub(1, Ordering::AcqRel);
        } else {
            // Keep the configured number of connections: replace this one.
            let counter = if self.recycling && self.failing.is_none() {
                &self.shared.reconnects
            } else {
                &self.shared.replaced
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let shared = self.shared.clone();
            let due = self.schedule.take().map(|schedule| Due {
                next: self.next_intended,
                schedule,
            });
            let ctx = conn.shard();
            shared.active.fetch_sub(1, Ordering::AcqRel);
            match shared.conn_interval {
                None => LoadConn::start(ctx, shared, due),
                Some(interval) => {
                    // --conn-rate: new connections leave in paced slots.
                    let now = Instant::now();
                    let slot = ctx.service::<ConnPacer>().slot(now, interval);
                    ctx.call_later(slot.saturating_duration_since(now), move |ctx| {
                        if Instant::now() < shared.end() {
                            LoadConn::start(ctx, shared, due);
                        }
                    });
                }
            }
        }
    }

    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &std::io::Error) {
        tracing::debug!(%error, "load connection failed to connect");
        let _ = self.shared.first_connect_error.set(error.to_string());
        self.shared.connect_failed.fetch_add(1, Ordering::AcqRel);
        self.shared.connection_resolved();
        recorder(ctx, self.shared.scenario).with(|s| s.errors.add(ErrorKind::Connect, 1));
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}
