//! Chaining asynchronous work: Twisted's Deferred, the Rust way.
//!
//! Each shard runs a local executor for `!Send` futures, inside its loop
//! (no extra thread, no lock): [`ShardCtx::spawn_local`](crate::ShardCtx::spawn_local)
//! for shard tasks, [`Conn::spawn`](crate::Conn::spawn) for a task tied to
//! a connection (dropped, never run again, when the connection ends). A
//! wake-up from the task's own shard is a push onto its ready list; from
//! another thread it is a bus message that wakes a parked shard once. Tasks
//! run after I/O and timers and before the flush, at most
//! `Settings::max_task_polls_per_iteration` polls per iteration, so a busy
//! task cannot starve I/O.
//!
//! | Twisted | shardloop |
//! |---|---|
//! | `Deferred` | [`Promise`] / [`Resolver`] (the resolver is `Send`; dropping it is an error, never a hang) |
//! | `inlineCallbacks` | `async` blocks in [`Conn::spawn`](crate::Conn::spawn) / [`ShardCtx::spawn_local`](crate::ShardCtx::spawn_local) |
//! | `task.deferLater`, `Deferred.addTimeout` | [`sleep`], [`timeout`] |
//! | `DeferredList`, `gatherResults` | [`join_all`] |
//! | `deferToThread` | [`ShardCtx::defer`](crate::ShardCtx::defer) |
//! | `callFromThread` with a result | [`ShardCtx::call_on`](crate::ShardCtx::call_on), [`Handle::call_on`](crate::Handle::call_on) (Seastar's `submit_to`) |
//!
//! A panic in a connection's task aborts that connection (as a callback
//! panic does); in a shard task it is logged and counted.
//!
//! ```no_run
//! use shardloop::client::ClientStream;
//! use shardloop::task::{sleep, timeout};
//! use shardloop::{Conn, Protocol};
//! use std::time::Duration;
//!
//! struct Lookup { backend: std::net::SocketAddr }
//! impl Protocol for Lookup {
//!     type Message = ();
//!     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
//!         let key = data.to_vec();
//!         let backend = self.backend;
//!         // Ask another shard, then a backend, then answer: no state machine.
//!         let owner = conn.shard().call_on(0, |ctx| ctx.index());
//!         conn.spawn(move |task| async move {
//!             let shard = owner.await.unwrap_or(0);
//!             let reply = timeout(Duration::from_secs(2), async {
//!                 let mut redis = ClientStream::connect(backend).await?;
//!                 redis.write_all(&key).await?;
//!                 redis.read_line(1024).await
//!             })
//!             .await;
//!             match reply {
//!                 Ok(Ok(Some(line))) => task.write(&line),
//!                 _ => task.write(b"-ERR backend\r\n"),
//!             }
//!             sleep(Duration::from_millis(1)).await;
//!             task.write(format!(" (via shard {shard})\r\n").as_bytes());
//!         });
//!     }
//! }
//! ```

use crate::reactor::exec::local;
mod conn_read;
mod conn_task;
pub(crate) mod input;
mod time;

pub use crate::sync::promise::{promise, Promise, PromiseError, Resolver};
pub use conn_task::{ConnTask, With};
pub use time::{sleep, timeout, Elapsed, Sleep, Timeout};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Spawns a shard task from inside a running task (the same shard).
///
/// ```no_run
/// # use shardloop::ShardCtx;
/// # fn f(ctx: &mut ShardCtx) {
/// ctx.spawn_local(async {
///     shardloop::task::spawn_local(async { println!("a second task") });
/// });
/// # }
/// ```
///
/// # Panics
/// Outside a shard's task or callback.
pub fn spawn_local(future: impl Future<Output = ()> + 'static) {
    let spawned = local::with(|l| l.spawns.push((Box::pin(future), None))).is_some();
    assert!(
        spawned,
        "shardloop::task::spawn_local called outside a shard"
    );
}

/// Gives the rest of the shard a turn: the task is polled again in the
/// next loop iteration, after the I/O, timers and messages waiting now
/// (tokio's `yield_now`). For a long computation split into steps, so that
/// it does not hold up the shard's connections.
///
/// ```no_run
/// # use shardloop::ShardCtx;
/// # fn f(ctx: &mut ShardCtx) {
/// ctx.spawn_local(async {
///     for chunk in 0..1000 {
///         // ... work on `chunk` ...
///         # let _ = chunk;
///         shardloop::task::yield_now().await;
///     }
/// });
/// # }
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.yielded {
            return std::task::Poll::Ready(());
        }
        self.yielded = true;
        // A wake-up during its own poll: the shard defers the task to the
        // next iteration (reactor/tasks.rs).
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// The future returned by [`join_all`].
pub struct JoinAll<F: Future> {
    futures: Vec<Option<Pin<Box<F>>>>,
    outputs: Vec<Option<F::Output>>,
}

/// Waits for every future and gives their outputs in order (Twisted's
/// `gatherResults`).
///
/// ```no_run
/// # use shardloop::ShardCtx;
/// # fn f(ctx: &mut ShardCtx) {
/// let counts = ctx.call_on_all(|ctx| ctx.task_count());
/// ctx.spawn_local(async move {
///     let total: usize = shardloop::task::join_all(counts)
///         .await
///         .into_iter()
///         .map(|r| r.unwrap_or(0))
///         .sum();
///     println!("{total} tasks on all shards");
/// });
/// # }
/// ```
pub fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    let futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let outputs = futures.iter().map(|_| None).collect();
    JoinAll { futures, outputs }
}

// The futures are boxed and the outputs are plain values: nothing is pinned in place.
impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut pending = false;
        for (slot, out) in this.futures.iter_mut().zip(this.outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(
            this.outputs
                .iter_mut()
                .map(|o| o.take().expect("ready"))
                .collect(),
        )
    }
}
