//! A client that reconnects with exponential backoff and jitter, after
//! Twisted's `ReconnectingClientFactory` (whose parameters are the defaults).

use crate::endpoint::Connect;
use crate::reactor::{ConnObserver, ConnectionEnd, Protocol, ShardCtx, TimerHandle};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// When and how often to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first retry (multiplied by `factor` first, as in Twisted).
    pub initial_delay: Duration,
    /// Delays never exceed this.
    pub max_delay: Duration,
    /// Growth of the delay per consecutive failure.
    pub factor: f64,
    /// Each delay is spread by up to ± this fraction, so clients that lost
    /// a server together do not come back together.
    pub jitter: f64,
    /// Give up after this many consecutive failures (None: never).
    pub max_retries: Option<u32>,
    /// Connect timeout of each attempt, where the [`Connect`] gives none.
    pub connect_timeout: Option<Duration>,
}

impl Default for ReconnectPolicy {
    /// Twisted's values: 1 s initial, ×e per failure, ±11.96% jitter,
    /// at most one hour, retry forever; 30 s connect timeout.
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            factor: std::f64::consts::E,
            jitter: 0.119_626_564_72,
            max_retries: None,
            connect_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl ReconnectPolicy {
    /// The delay after `prev`, given a uniform sample `u` in [0, 1).
    pub fn next_delay(&self, prev: Duration, u: f64) -> Duration {
        let grown = (prev.as_secs_f64() * self.factor).min(self.max_delay.as_secs_f64());
        let spread = grown * self.jitter * (2.0 * u - 1.0);
        Duration::from_secs_f64((grown + spread).clamp(0.0, self.max_delay.as_secs_f64()))
    }
}

#[derive(Default)]
struct Shared {
    stopped: Cell<bool>,
    connected: Cell<bool>,
    attempts: Cell<u64>,
    given_up: Cell<bool>,
}

/// Controls a reconnecting client; lives on the shard that made it.
#[derive(Clone)]
pub struct Reconnector {
    shared: Rc<Shared>,
    timer: Rc<Cell<Option<TimerHandle>>>,
}

impl Reconnector {
    /// Stops retrying (Twisted's `stopTrying`); a live connection is left alone.
    pub fn stop_trying(&self, ctx: &mut ShardCtx) {
        self.shared.stopped.set(true);
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
    }

    /// Connection attempts so far.
    pub fn attempts(&self) -> u64 {
        self.shared.attempts.get()
    }

    /// True while a connection is established.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.get()
    }

    /// True once `max_retries` consecutive failures made it stop.
    pub fn gave_up(&self) -> bool {
        self.shared.given_up.get()
    }
}

struct State<P, F> {
    connect: Connect,
    policy: ReconnectPolicy,
    make: F,
    delay: Duration,
    failures: u32,
    rng: fastrand::Rng,
    handle: Reconnector,
    _p: std::marker::PhantomData<fn() -> P>,
}

struct Watch<P, F>(Rc<RefCell<State<P, F>>>);

impl<P: Protocol, F: FnMut() -> P + 'static> ConnObserver for Watch<P, F> {
    fn made(&mut self, _ctx: &mut ShardCtx) {
        let mut s = self.0.borrow_mut();
        s.delay = s.policy.initial_delay;
        s.failures = 0;
        s.handle.shared.connected.set(true);
    }

    fn ended(self: Box<Self>, ctx: &mut ShardCtx, end: ConnectionEnd) {
        let state = self.0;
        let delay = {
            let mut s = state.borrow_mut();
            s.handle.shared.connected.set(false);
            if s.handle.shared.stopped.get() {
                return;
            }
            s.failures += 1;
            if s.policy.max_retries.is_some_and(|m| s.failures > m) {
                tracing::warn!(addr = %s.connect.target(), failures = s.failures - 1, %end, "giving up reconnecting");
                s.handle.shared.given_up.set(true);
                return;
            }
            let u = s.rng.f64();
            s.delay = s.policy.next_delay(s.delay, u);
            tracing::debug!(addr = %s.connect.target(), delay_ms = s.delay.as_millis() as u64, %end, "reconnecting");
            s.delay
        };
        let timer_slot = state.borrow().handle.timer.clone();
        let next = state.clone();
        let t = ctx.call_later(delay, move |ctx| attempt(ctx, next));
        timer_slot.set(Some(t));
    }
}

fn attempt<P: Protocol, F: FnMut() -> P + 'static>(
    ctx: &mut ShardCtx,
    state: Rc<RefCell<State<P, F>>>,
) {
    let pending = {
        let mut s = state.borrow_mut();
        if s.handle.shared.stopped.get() {
            return;
        }
        s.handle.timer.set(None);
        s.handle
            .shared
            .attempts
            .set(s.handle.shared.attempts.get() + 1);
        let proto = (s.make)();
        let watch = Box::new(Watch(state.clone()));
        let mut pending = s
            .connect
            .pending(proto, Some(watch), s.policy.connect_timeout);
        if s.handle.shared.attempts.get() > 1 {
            // A reconnect: the name may point elsewhere now.
            pending.resolve_afresh();
        }
        pending
    };
    ctx.queue_connect(pending);
}

impl ShardCtx {
    /// Connects as `connect` describes (TCP or Unix, TLS, timeout) with a
    /// protocol from `make`, and again with a new
    /// one whenever the connection fails or is lost, waiting by `policy`.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, ShardCtx};
    /// # use shardloop::client::reconnect::ReconnectPolicy;
    /// struct Feed;
    /// impl Protocol for Feed {
    ///     type Message = ();
    ///     fn data_received(&mut self, _c: &mut Conn<'_, Self>, data: &[u8]) { println!("{data:?}"); }
    /// }
    /// fn follow(ctx: &mut ShardCtx) {
    ///     let addr: std::net::SocketAddr = "127.0.0.1:9000".parse().unwrap();
    ///     let r = ctx.connect_reconnecting(addr, ReconnectPolicy::default(), || Feed);
    ///     // later: r.stop_trying(ctx);
    /// }
    /// ```
    pub fn connect_reconnecting<P, F>(
        &mut self,
        connect: impl Into<Connect>,
        policy: ReconnectPolicy,
        make: F,
    ) -> Reconnector
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        let handle = Reconnector {
            shared: Rc::new(Shared::default()),
            timer: Rc::new(Cell::new(None)),
        };
        let state = Rc::new(RefCell::new(State {
            connect: connect.into(),
            delay: policy.initial_delay,
            policy,
            make,
            failures: 0,
            rng: fastrand::Rng::new(),
            handle: handle.clone(),
            _p: std::marker::PhantomData,
        }));
        attempt(self, state);
        handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_factor_cap_and_stay_within_jitter() {
        let p = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            factor: 2.0,
            jitter: 0.1,
            ..ReconnectPolicy::default()
        };
        let no_jitter = |d: Duration| p.next_delay(d, 0.5);
        let mut d = p.initial_delay;
        let mut seq = Vec::new();
        for _ in 0..6 {
            d = no_jitter(d);
            seq.push(d.as_millis());
        }
        assert_eq!(seq, vec![200, 400, 800, 1600, 2000, 2000]);
        let lo = p.next_delay(Duration::from_millis(100), 0.0);
        let hi = p.next_delay(Duration::from_millis(100), 0.999_999);
        assert!((lo.as_secs_f64() - 0.18).abs() < 1e-6, "{lo:?}");
        assert!((hi.as_secs_f64() - 0.22).abs() < 1e-4, "{hi:?}");
    }

    #[test]
    fn twisted_defaults() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.initial_delay, Duration::from_secs(1));
        assert_eq!(p.max_delay, Duration::from_secs(3600));
        assert_eq!(p.factor, std::f64::consts::E, "Twisted uses e");
        assert!((p.jitter - 0.119_626_564_72).abs() < 1e-12);
        assert_eq!(p.max_retries, None);
    }
}
