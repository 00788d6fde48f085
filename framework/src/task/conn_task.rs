//! `ConnTask`: what a task spawned with [`Conn::spawn`](crate::Conn::spawn)
//! uses to act on its connection. Every operation runs on the shard, with
//! the connection's protocol, right after the task yields; the task itself
//! never holds the connection, so it cannot outlive it (the shard drops the
//! task when the connection ends).

use crate::api::ConnId;
use crate::reactor::exec::input::SharedInput;
use crate::reactor::exec::local;
use crate::reactor::{Conn, ConnOp, Protocol};
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// A task's handle on its connection (protocol `P`).
pub struct ConnTask<P> {
    id: ConnId,
    /// The connection's input, when it goes to its tasks
    /// ([`Conn::spawn_stream`]).
    pub(super) input: Option<SharedInput>,
    _protocol: PhantomData<fn(&mut P)>,
}

impl<P> Clone for ConnTask<P> {
    fn clone(&self) -> Self {
        ConnTask {
            id: self.id,
            input: self.input.clone(),
            _protocol: PhantomData,
        }
    }
}

fn queue(id: ConnId, op: ConnOp) {
    let queued = try_queue(id, op);
    assert!(queued, "a ConnTask is only usable in its shard's tasks");
}

/// Queues `op` for connection `id` if this thread runs a shard.
fn try_queue(id: ConnId, op: ConnOp) -> bool {
    local::with(|l| l.conn_ops.push((id, op))).is_some()
}

impl<P: Protocol> ConnTask<P> {
    pub(crate) fn new(id: ConnId) -> Self {
        ConnTask {
            id,
            input: None,
            _protocol: PhantomData,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Runs `f` with the protocol and the connection as soon as the task
    /// yields, and not at all if the connection is gone.
    pub fn run(&self, f: impl FnOnce(&mut P, &mut Conn<'_, P>) + 'static) {
        queue(self.id, Self::op(f));
    }

    /// [`run`](ConnTask::run), doing nothing (and returning false) off the
    /// connection's shard thread, e.g. from a destructor running elsewhere.
    pub(crate) fn try_run(&self, f: impl FnOnce(&mut P, &mut Conn<'_, P>) + 'static) -> bool {
        try_queue(self.id, Self::op(f))
    }

    fn op(f: impl FnOnce(&mut P, &mut Conn<'_, P>) + 'static) -> ConnOp {
        Box::new(move |p, core, ctx| {
            if let Some(p) = p.downcast_mut::<P>() {
                f(p, &mut Conn::new(core, ctx));
            }
        })
    }

    /// Queues bytes for the connection (see [`Conn::write`]).
    pub fn write(&self, data: &[u8]) {
        let data = data.to_vec();
        self.run(move |_, c| c.write_owned(data));
    }

    /// Queues an owned buffer for the connection without copying it (see
    /// [`Conn::write_owned`]): a large value goes out as it is.
    pub fn write_owned(&self, data: Vec<u8>) {
        self.run(move |_, c| c.write_owned(data));
    }

    /// Closes gracefully (see [`Conn::close`]); the task is dropped when
    /// the connection ends.
    pub fn close(&self) {
        self.run(|_, c| c.close());
    }

    /// Aborts the connection (see [`Conn::abort`]).
    pub fn abort(&self) {
        self.run(|_, c| c.abort());
    }

    /// Half-closes (see [`Conn::shutdown_write`]).
    pub fn shutdown_write(&self) {
        self.run(|_, c| c.shutdown_write());
    }

    /// Runs `f` with the protocol and the connection and gives back its
    /// result: how a task reads or changes protocol state.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol};
    /// struct Counter { n: u64 }
    /// impl Protocol for Counter {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.spawn(|task| async move {
    ///             shardloop::task::sleep(std::time::Duration::from_secs(1)).await;
    ///             let n = task.with(|p, _| p.n).await;
    ///             task.write(format!("{n} bytes in the first second\n").as_bytes());
    ///         });
    ///     }
    ///     fn data_received(&mut self, _: &mut Conn<'_, Self>, data: &[u8]) {
    ///         self.n += data.len() as u64;
    ///     }
    /// }
    /// ```
    pub fn with<R: 'static>(
        &self,
        f: impl FnOnce(&mut P, &mut Conn<'_, P>) -> R + 'static,
    ) -> With<R> {
        let slot = Rc::new(RefCell::new(None));
        let id = self.id;
        let out = slot.clone();
        let op = move |waker: std::task::Waker| -> ConnOp {
            Box::new(move |p, core, ctx| {
                if let Some(p) = p.downcast_mut::<P>() {
                    *out.borrow_mut() = Some(f(p, &mut Conn::new(core, ctx)));
                    waker.wake();
                }
            })
        };
        With {
            id,
            slot,
            pending: Some(Box::new(op)),
        }
    }
}

type MakeOp = Box<dyn FnOnce(std::task::Waker) -> ConnOp>;

/// The future returned by [`ConnTask::with`].
pub struct With<R> {
    id: ConnId,
    slot: Rc<RefCell<Option<R>>>,
    pending: Option<MakeOp>,
}

impl<R> Future for With<R> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        if let Some(v) = self.slot.borrow_mut().take() {
            return Poll::Ready(v);
        }
        if let Some(make) = self.pending.take() {
            queue(self.id, make(cx.waker().clone()));
        }
        Poll::Pending
    }
}

impl<P: Protocol> Conn<'_, P> {
    /// Runs a task tied to this connection: `make` gets the task's handle
    /// on the connection ([`ConnTask`](crate::task::ConnTask)) and returns
    /// the future. The task runs on this shard and is dropped, never polled
    /// again, when the connection ends; a panic in it aborts the connection.
    /// Twisted's `inlineCallbacks` on a protocol.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol};
    /// # use std::time::Duration;
    /// struct Slow;
    /// impl Protocol for Slow {
    ///     type Message = ();
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         let line = data.to_vec();
    ///         // Ask shard 0, wait, answer: no hand-written state machine.
    ///         let count = conn.shard().call_on(0, |ctx| ctx.task_count());
    ///         conn.spawn(move |task| async move {
    ///             let n = count.await.unwrap_or(0);
    ///             shardloop::task::sleep(Duration::from_millis(5)).await;
    ///             task.write(format!("{} ({n} tasks on shard 0)\n", line.len()).as_bytes());
    ///         });
    ///     }
    /// }
    /// ```
    pub fn spawn<F, Fut>(&mut self, make: F)
    where
        F: FnOnce(ConnTask<P>) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let future = make(ConnTask::new(self.id()));
        self.spawn_tied(Box::pin(future));
    }

    /// Runs a task tied to this connection that reads it: from now on the
    /// connection's input and its EOF go to the task's
    /// [`read`](ConnTask::read), [`read_exact`](ConnTask::read_exact),
    /// [`read_line`](ConnTask::read_line) and
    /// [`next_frame`](ConnTask::next_frame), not to `data_received`, so a
    /// connection can be written as one `async fn`. Reading from the socket
    /// pauses while more than 1 MiB waits for the task. At the peer's EOF
    /// the connection stays half-open until the task closes it (it may
    /// still answer); the task is dropped when the connection ends.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol};
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.spawn_stream(|task| async move {
    ///             let mut buf = [0u8; 4096];
    ///             while let Ok(n @ 1..) = task.read(&mut buf).await {
    ///                 task.write(&buf[..n]);
    ///             }
    ///             task.close();
    ///         });
    ///     }
    ///     fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {
    ///         unreachable!("the task reads this connection")
    ///     }
    /// }
    /// ```
    pub fn spawn_stream<F, Fut>(&mut self, make: F)
    where
        F: FnOnce(ConnTask<P>) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let mut task = ConnTask::new(self.id());
        task.input = Some(self.route_input_to_task());
        let future = make(task);
        self.spawn_tied(Box::pin(future));
    }
}
