//! HTTP/2 load: a connection's requests are streams, as many in flight at
//! once as the in-flight limit (h2load's `-m`), each driven by one "lane"
//! of the connection's task. The connection itself (connect, TLS, its
//! replacement when lost) stays the `LoadConn` protocol's; `h2` runs on
//! its input through `Http2Connection`.
//!
//! Timing: a request is stamped sent when its stream is handed to `h2`
//! (its frames leave in the same loop iteration), its first byte when
//! the response head is in, its last when the body ends. The byte counts
//! are the bodies' (HPACK-compressed heads and framing are not counted).

use super::{LoadConn, RunShared};
use crate::plan::Schedule;
use crate::recorder::{nanos, recorder, ErrorKind, Recorder};
use crate::template::Draws;
use shardloop::http::client::{ClientError, ClientOptions, Http2Connection};
use shardloop::task::{join_all, sleep, timeout, yield_now, ConnTask};
use shardloop::Conn;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// What the lanes of one connection share: its place in the plan, its
/// draws, the requests whose answers are awaited. Handed back to the
/// `LoadConn` when the connection ends ([`LoadConn::h2_back`]).
pub(super) struct Streams {
    next_intended: Instant,
    /// Open loop: the connection's share of the plan.
    schedule: Option<Schedule>,
    draws: Draws,
    seq: u64,
    scratch: Vec<u8>,
    /// Measured requests whose answers are awaited (lost with the
    /// connection).
    open: u64,
    answered: u64,
}

impl Streams {
    /// Open loop: moves to the connection's next planned send.
    fn advance(&mut self, shared: &RunShared) {
        if let Some(s) = self.schedule.as_mut() {
            self.next_intended = super::schedule::next_send(shared, s);
        }
    }
}

/// Why a lane stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneEnd {
    /// The run is over.
    Over,
    /// `reconnect_every` answers: the connection is replaced.
    Recycle,
    /// The connection is gone.
    Lost(ErrorKind),
}

impl LoadConn {
    /// The connection is up: its requests go out as HTTP/2 streams.
    pub(super) fn start_h2(&mut self, conn: &mut Conn<'_, Self>) {
        if let Some(tls) = conn.tls_info() {
            if tls.alpn.as_deref() != Some(b"h2".as_slice()) {
                let why = "the server did not choose HTTP/2 (ALPN h2)";
                if self.shared.first_connect_error.set(why.into()).is_ok() {
                    // Said once per run: every connection will hear the same.
                    tracing::warn!(
                        "{why}: its connections are closed and counted as protocol errors"
                    );
                }
                recorder(conn.shard(), self.shared.scenario)
                    .with(|s| s.errors.add(ErrorKind::Protocol, 1));
                return self.fail(conn, ErrorKind::Protocol);
            }
        }
        let streams = Rc::new(RefCell::new(Streams {
            next_intended: self.next_intended,
            schedule: self.schedule.take(),
            draws: std::mem::take(&mut self.draws),
            seq: self.next_seq,
            scratch: Vec::new(),
            open: 0,
            answered: self.answered,
        }));
        self.h2 = Some(streams.clone());
        let shared = self.shared.clone();
        let rec = recorder(conn.shard(), shared.scenario).clone();
        conn.spawn_stream(move |task| drive(task, shared, rec, streams));
    }

    /// Takes back what the lanes held (the plan, the draws); the number of
    /// measured requests still awaiting answers, lost with the connection.
    pub(super) fn h2_back(&mut self) -> u64 {
        let Some(streams) = self.h2.take() else {
            return 0;
        };
        let mut s = streams.borrow_mut();
        self.next_intended = s.next_intended;
        self.schedule = s.schedule.take();
        self.draws = std::mem::take(&mut s.draws);
        self.next_seq = s.seq;
        self.answered = s.answered;
        std::mem::take(&mut s.open)
    }

    /// Every lane stopped: close (the run is over, or the connection did
    /// its share) or fail (it is gone).
    fn h2_ended(&mut self, conn: &mut Conn<'_, Self>, end: LaneEnd) {
        self.h2_back();
        match end {
            LaneEnd::Over => self.finish(conn),
            LaneEnd::Recycle => {
                self.recycling = true;
                self.finish(conn);
            }
            LaneEnd::Lost(kind) => self.fail(conn, kind),
        }
    }
}

/// The connection's task: the HTTP/2 handshake, then one lane per stream
/// allowed in flight, until they all stop.
async fn drive(
    task: ConnTask<LoadConn>,
    shared: Arc<RunShared>,
    rec: Recorder,
    streams: Rc<RefCell<Streams>>,
) {
    let opts = ClientOptions {
        max_body: crate::codec::MAX_RESPONSE as u64,
        response_timeout: shared.timeout,
        ..ClientOptions::default()
    };
    let h2 = match Http2Connection::handshake(task.clone(), opts).await {
        Ok(h2) => h2,
        Err(_) => {
            rec.with(|s| s.errors.add(ErrorKind::Protocol, 1));
            return task.run(|p, c| p.h2_ended(c, LaneEnd::Lost(ErrorKind::Protocol)));
        }
    };
    let lanes = (0..shared.mode.max_in_flight())
        .map(|_| lane(h2.clone(), shared.clone(), rec.clone(), streams.clone()));
    // The connection's end: lost if any lane saw it go, else recycled if
    // any lane did its share, else the run is over.
    let ends = join_all(lanes).await;
    let end = ends
        .iter()
        .find(|e| matches!(e, LaneEnd::Lost(_)))
        .or_else(|| ends.iter().find(|e| **e == LaneEnd::Recycle))
        .copied()
        .unwrap_or(LaneEnd::Over);
    drop(h2);
    task.run(move |p, c| p.h2_ended(c, end));
}

/// The loss a client error stands for.
fn kind_of(e: &ClientError) -> ErrorKind {
    match e {
        ClientError::Timeout(_) => ErrorKind::Timeout,
        ClientError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ErrorKind::Write,
        ClientError::Io(_) => ErrorKind::Read,
        _ => ErrorKind::Protocol,
    }
}

/// One stream at a time, request after request: closed loop, each sent
/// when the last is answered (after the think time); open loop, each at
/// the next time the connection's plan has due.
async fn lane(
    h2: Http2Connection,
    shared: Arc<RunShared>,
    rec: Recorder,
    st: Rc<RefCell<Streams>>,
) -> LaneEnd {
    let requests = shared.h2.as_ref().expect("an HTTP/2 run");
    loop {
        let intended = {
            let mut s = st.borrow_mut();
            if s.schedule.is_some() {
                let t = s.next_intended;
                if t >= shared.end() {
                    return LaneEnd::Over;
                }
                s.advance(&shared);
                t
            } else {
                Instant::now()
            }
        };
        let now = Instant::now();
        if intended > now {
            sleep(intended - now).await;
        } else if now >= shared.end() {
            return LaneEnd::Over;
        }
        let counted = intended >= shared.measure_from();
        if let Err(e) = h2.ready().await {
            // The request due now is lost with the connection.
            if counted {
                rec.with(|s| s.errors.add(kind_of(&e), 1));
            }
            return LaneEnd::Lost(kind_of(&e));
        }
        let req = {
            let mut s = st.borrow_mut();
            s.seq += 1;
            let Streams { draws, scratch, .. } = &mut *s;
            requests.request(draws, scratch)
        };
        let Ok(req) = req else {
            // A template drew what HTTP/2 cannot carry (a header value
            // with a control character): that request fails, the run goes
            // on, the shard is given a turn.
            if counted {
                rec.with(|s| {
                    s.sent += 1;
                    s.errors.add(ErrorKind::Protocol, 1);
                });
            }
            yield_now().await;
            continue;
        };
        let sent = Instant::now();
        if counted {
            let out = req.body().len() as u64;
            let lag = nanos(sent.saturating_duration_since(intended));
            rec.with(|s| {
                s.sent += 1;
                s.bytes_out += out;
                s.send_lag.saturating_record(lag);
            });
            st.borrow_mut().open += 1;
        }
        let outcome = timeout(shared.timeout, exchange(&h2, req)).await;
        let done = Instant::now();
        let answered = {
            let mut s = st.borrow_mut();
            if counted {
                s.open -= 1;
            }
            s.answered += 1;
            s.answered
        };
        if counted {
            // Closed loop: from the send, as wrk does; open loop: from
            // when it was due.
            let from = if st.borrow().schedule.is_some() {
                intended
            } else {
                sent
            };
            rec.with(|s| match &outcome {
                Ok(Ok(r)) => {
                    s.bytes_in += r.bytes;
                    *s.http_status.entry(r.status).or_insert(0) += 1;
                    if (200..300).contains(&r.status) {
                        s.ok += 1;
                        s.record_latency(
                            nanos(done.saturating_duration_since(from)),
                            nanos(done.saturating_duration_since(sent)),
                        );
                        s.ttfb
                            .saturating_record(nanos(r.first.saturating_duration_since(sent)));
                    } else {
                        s.errors.add(ErrorKind::Status, 1);
                    }
                }
                Ok(Err(e)) => s.errors.add(kind_of(e), 1),
                Err(_) => s.errors.add(ErrorKind::Timeout, 1),
            });
        }
        if shared.reconnect_every.is_some_and(|n| answered >= n) {
            return LaneEnd::Recycle;
        }
        if !shared.think.is_zero() && st.borrow().schedule.is_none() {
            sleep(shared.think).await;
        }
    }
}

/// What one response was.
struct Answer {
    status: u16,
    /// When its head arrived.
    first: Instant,
    /// Its body's length.
    bytes: u64,
}

/// One request's stream: the head, then the body read to its end.
async fn exchange(
    h2: &Http2Connection,
    req: shardloop::http::Request<shardloop::http::Body>,
) -> Result<Answer, ClientError> {
    let resp = h2.send(req).await?;
    let first = Instant::now();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(piece) = body.next().await {
        bytes += piece?.len() as u64;
    }
    Ok(Answer {
        status,
        first,
        bytes,
    })
}
