//! A token bucket: `rate` tokens a second, at most `burst` saved up.

use std::time::{Duration, Instant};

/// A rate: `rate` events a second on average, `burst` at once.
///
/// ```
/// use shardloop::limit::RateLimit;
/// let r = RateLimit::per_second(10).burst(20);
/// assert_eq!((r.rate, r.burst), (10, 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Events a second, sustained (at least 1).
    pub rate: u32,
    /// Events allowed at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// `rate` a second with a burst of the same size.
    pub fn per_second(rate: u32) -> Self {
        let rate = rate.max(1);
        RateLimit { rate, burst: rate }
    }

    /// The same rate with a burst of `burst` (at least 1).
    pub fn burst(self, burst: u32) -> Self {
        RateLimit {
            burst: burst.max(1),
            ..self
        }
    }
}

/// A token bucket (shard-local: no atomics). It starts full.
///
/// ```
/// use shardloop::limit::{RateLimit, RateLimiter};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut limiter = RateLimiter::new(RateLimit::per_second(2).burst(3), t0);
/// let allowed = (0..5).filter(|_| limiter.try_acquire(t0)).count();
/// assert_eq!(allowed, 3); // the burst
/// assert_eq!(limiter.wait_time(t0), Duration::from_millis(500));
/// assert!(limiter.try_acquire(t0 + Duration::from_millis(500)));
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        RateLimiter {
            limit,
            tokens: f64::from(limit.burst),
            at: now,
        }
    }

    /// Takes a token if one is there at `now` (the loop's clock:
    /// `ShardCtx::now`); false means over the rate.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long from `now` until a token is there (zero if one is): what to
    /// put in a `Retry-After`.
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / f64::from(self.limit.rate))
        }
    }

    /// True if the bucket is full at `now` (nothing to remember).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= f64::from(self.limit.burst)
    }

    fn refill(&mut self, now: Instant) {
        // A clock that went back (another thread's older reading) adds nothing.
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        if elapsed > 0.0 {
            self.tokens = (self.tokens + elapsed * f64::from(self.limit.rate))
                .min(f64::from(self.limit.burst));
            self.at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(RateLimit::per_second(10).burst(5), t0);
        assert_eq!((0..100).filter(|_| l.try_acquire(t0)).count(), 5);
        // Over one second at 1 ms steps: 10 more.
        let got = (1..=1000)
            .filter(|ms| l.try_acquire(t0 + Duration::from_millis(*ms)))
            .count();
        assert_eq!(got, 10);
        assert!(!l.is_full(t0 + Duration::from_millis(1000)));
        assert!(l.is_full(t0 + Duration::from_millis(1500)));
    }

    proptest! {
        /// Over any sequence of attempts, what is let through never
        /// exceeds burst + rate × elapsed.
        #[test]
        fn never_more_than_burst_plus_rate_times_time(
            rate in 1u32..1000,
            burst in 1u32..100,
            steps in proptest::collection::vec(0u64..50_000, 1..300),
        ) {
            let t0 = Instant::now();
            let mut l = RateLimiter::new(RateLimit::per_second(rate).burst(burst), t0);
            let mut now = t0;
            let mut allowed = 0u64;
            for us in steps {
                now += Duration::from_micros(us);
                if l.try_acquire(now) {
                    allowed += 1;
                }
                let bound = f64::from(burst) + f64::from(rate) * (now - t0).as_secs_f64();
                prop_assert!(allowed as f64 <= bound + 1e-6, "{allowed} > {bound}");
            }
        }
    }
}
