//! Time for tasks, on the shard's timer wheel: `sleep` and `timeout`.

use crate::reactor::exec::local;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The future returned by [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    delay: Duration,
    deadline: Option<Instant>,
    registered: bool,
}

/// Completes after `delay` on the shard's clock (the testing kit's manual
/// clock included). Must be awaited in a shard task.
///
/// ```no_run
/// # use shardloop::ShardCtx;
/// # fn f(ctx: &mut ShardCtx) {
/// ctx.spawn_local(async {
///     shardloop::task::sleep(std::time::Duration::from_millis(10)).await;
///     println!("10 ms later");
/// });
/// # }
/// ```
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        delay,
        deadline: None,
        registered: false,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = local::now();
        let delay = self.delay;
        let deadline = *self.deadline.get_or_insert_with(|| {
            now.checked_add(delay)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
        });
        if now >= deadline {
            return Poll::Ready(());
        }
        if !self.registered {
            let waker = cx.waker().clone();
            let registered = local::with(|l| l.timers.push((deadline, waker))).is_some();
            assert!(
                registered,
                "shardloop::task::sleep awaited outside a shard task"
            );
            self.registered = true;
        }
        Poll::Pending
    }
}

/// The deadline of a [`timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

/// The future returned by [`timeout`].
pub struct Timeout<F> {
    // Boxed so any future (async blocks are not `Unpin`) can be polled
    // without unsafe pinning.
    inner: Pin<Box<F>>,
    sleep: Sleep,
}

/// Runs `future`, giving up (and dropping it) after `limit`.
///
/// ```no_run
/// # use shardloop::ShardCtx;
/// # use std::time::Duration;
/// # fn f(ctx: &mut ShardCtx) {
/// let answer = ctx.call_on(1, |ctx| ctx.index());
/// ctx.spawn_local(async move {
///     match shardloop::task::timeout(Duration::from_millis(50), answer).await {
///         Ok(v) => println!("shard 1 answered {v:?}"),
///         Err(shardloop::task::Elapsed) => println!("shard 1 is busy"),
///     }
/// });
/// # }
/// ```
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    Timeout {
        inner: Box::pin(future),
        sleep: sleep(limit),
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
