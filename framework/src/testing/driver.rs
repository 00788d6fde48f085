//! A real shard with no thread and no poller events, driven by hand: the
//! test says when a connection is readable or writable and when the clock
//! moves, and the shard runs exactly the code it runs in production
//! (reads, callbacks, flushes, closes, timers).

use super::fake_socket::FakeSocket;
use crate::api::{ConnId, Settings};
use crate::error::Result;
use crate::net::Stream;
use crate::reactor::{ErasedProto, Outbound, Readiness, Shard, ShardCtx, ShardInit};
use crate::runtime::{Handle, ServerInner};
use std::time::Duration;

/// Rounds of ready work one step runs at most: enough for any cascade of
/// callbacks, bounded so a protocol that messages itself forever cannot hang a test.
const MAX_ROUNDS: usize = 64;

pub(crate) struct Driver {
    shard: Shard,
    /// The completion model: the shard's connections run on this
    /// scripted kernel (see [`Driver::completion`]).
    #[cfg(all(test, target_os = "linux"))]
    kernel: Option<super::fake_kernel::FakeKernel>,
    /// Its connections' sockets' numbers in that kernel.
    #[cfg(all(test, target_os = "linux"))]
    fds: std::collections::HashMap<ConnId, std::os::fd::RawFd>,
}

impl Driver {
    /// A one-shard server's shard on a manual clock. `read_buffer_size` is
    /// the shard's shared read buffer (small ones exercise partial reads).
    pub(crate) fn new(settings: Settings, tick: Duration, read_buffer_size: usize) -> Result<Self> {
        let mut shards = Self::server(settings, 1, Outbound::default(), tick, read_buffer_size)?;
        Ok(shards.remove(0))
    }

    /// The shards of one server of `shards` shards (one bus, one set of
    /// settings, outbound connections as `outbound` says), each on its
    /// own manual clock.
    pub(crate) fn server(
        settings: Settings,
        shards: usize,
        outbound: Outbound,
        tick: Duration,
        read_buffer_size: usize,
    ) -> Result<Vec<Self>> {
        let (inner, parts) = ServerInner::detached(settings, shards, outbound)?;
        let handle = std::sync::Arc::new(Handle { inner });
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(index, (poll, rx))| {
                Self::start(&handle, index, poll, rx, tick, read_buffer_size)
            })
            .collect())
    }

    fn start(
        handle: &std::sync::Arc<Handle>,
        index: usize,
        poll: mio::Poll,
        rx: crossbeam_channel::Receiver<crate::reactor::Envelope>,
        tick: Duration,
        read_buffer_size: usize,
    ) -> Self {
        let mut shard = Shard::new(ShardInit {
            index,
            poll,
            rx,
            shared: handle.inner.shared.clone(),
            handle: handle.clone(),
            read_buffer_size,
            events_capacity: 16,
            nodelay: true,
            timer_tick: tick,
            pool: None,
            listeners: Vec::new(),
            connection_share: usize::MAX,
            udp: Vec::new(),
            udp_max_datagram: 65536,
            uring: false,
        });
        let ctx = shard.ctx_mut();
        ctx.inline_deferred = true;
        let origin = ctx.timers.origin();
        ctx.timers.set_manual_clock(origin);
        ctx.update_clock();
        Driver {
            shard,
            #[cfg(all(test, target_os = "linux"))]
            kernel: None,
            #[cfg(all(test, target_os = "linux"))]
            fds: Default::default(),
        }
    }

    /// Makes this thread run this shard until the guard drops (tasks reach
    /// their shard through it), as a shard thread does for its whole life.
    fn enter(&mut self) -> crate::reactor::exec::local::Entered {
        let (server, index) = (self.shard.shared_ref().id, self.shard.ctx_ref().index);
        crate::reactor::exec::local::enter(server, index, self.shard.ctx_ref().now)
    }

    /// Opens a connection over `socket` driven by `proto`, as an accept would.
    pub(crate) fn open(&mut self, socket: &FakeSocket, proto: Box<dyn ErasedProto>) -> ConnId {
        self.open_layered(socket, proto, None)
    }

    /// Opens a connection whose bytes pass through `layer` (PROXY, TLS).
    pub(crate) fn open_layered(
        &mut self,
        socket: &FakeSocket,
        proto: Box<dyn ErasedProto>,
        layer: Option<Box<dyn crate::reactor::Layer>>,
    ) -> ConnId {
        #[cfg(all(test, target_os = "linux"))]
        let fd = self.kernel.as_ref().map(|k| k.attach(socket));
        let id = {
            let _entered = self.enter();
            self.shard
                .adopt(
                    Stream::Virtual(Box::new(socket.clone())),
                    proto,
                    Some(socket.end_recorder()),
                    layer,
                )
                .expect("a fake socket always has addresses")
        };
        #[cfg(all(test, target_os = "linux"))]
        if let Some(fd) = fd {
            self.fds.insert(id, fd);
        }
        self.settle();
        id
    }

    /// The poller reports the connection readable and/or writable.
    pub(crate) fn ready(&mut self, id: ConnId, readable: bool, writable: bool) {
        self.ready_with(
            id,
            Readiness {
                readable,
                writable,
                read_closed: false,
            },
        );
    }

    /// The poller reports `readiness` for the connection (e.g. the peer's
    /// FIN arrived: `read_closed`).
    /// In the completion model this wakes the socket's waiting
    /// operations in the scripted kernel (its internal poll), which then
    /// do what the socket allows when the loop next waits.
    pub(crate) fn ready_with(&mut self, id: ConnId, readiness: Readiness) {
        #[cfg(all(test, target_os = "linux"))]
        if let (Some(k), Some(&fd)) = (&self.kernel, self.fds.get(&id)) {
            k.wake(
                fd,
                readiness.readable || readiness.read_closed,
                readiness.writable,
            );
            return self.settle();
        }
        let _entered = self.enter();
        if self.shard.live(id) {
            self.shard.on_ready(id.slot(), readiness);
        }
        self.settle();
    }

    /// Lets connection `id` read what its socket holds, while it is open
    /// and reading (as the poller would report it readable); true if it
    /// read anything.
    pub(crate) fn read_available(&mut self, id: ConnId, socket: &FakeSocket) -> bool {
        let mut read = false;
        while socket.lock().has_input() && self.shard.is_open(id) && !self.shard.reading_paused(id)
        {
            let before = socket.lock().reads;
            self.ready(id, true, false);
            if socket.lock().reads == before {
                break;
            }
            read = true;
        }
        read
    }

    /// Moves the manual clock and runs everything that falls due.
    pub(crate) fn advance(&mut self, by: Duration) {
        let _entered = self.enter();
        let ctx = self.shard.ctx_mut();
        let now = ctx.now() + by;
        ctx.timers.set_manual_clock(now);
        ctx.update_clock();
        self.settle();
    }

    /// Runs loop iterations (without polling) until nothing is ready; in
    /// the completion model each iteration also submits and takes the
    /// scripted kernel's completions, as the loop's wait does.
    pub(crate) fn settle(&mut self) {
        let _entered = self.enter();
        for _ in 0..MAX_ROUNDS {
            self.shard.run_ready_work();
            let completed = self.kernel_turn();
            if !self.shard.has_ready_work() && !completed {
                break;
            }
        }
        // What it posted to other shards goes out, as at the top of the
        // real loop.
        self.shard.ctx_mut().flush_outbox();
    }

    /// True if the shard has work to do without I/O: ready work, or
    /// messages other shards left in its inbox.
    pub(crate) fn has_work(&self) -> bool {
        self.shard.has_ready_work() || self.shard.inbox_waiting()
    }

    /// Runs `f` on the shard's context as a callback would, then what it
    /// asked for.
    pub(crate) fn run<R>(&mut self, f: impl FnOnce(&mut ShardCtx) -> R) -> R {
        let r = {
            let _entered = self.enter();
            f(self.shard.ctx_mut())
        };
        self.settle();
        r
    }

    /// The completion model's part of a loop iteration: submit, let the
    /// kernel run, act on its completions. True if it completed anything.
    fn kernel_turn(&mut self) -> bool {
        #[cfg(all(test, target_os = "linux"))]
        if let Some(k) = self.kernel.clone() {
            let before = k.posted();
            if let Err(e) = self.shard.ring_wait(Some(Duration::ZERO)) {
                panic!("a scripted kernel does not fail its waits: {e}");
            }
            self.shard.ring_dispatch();
            return k.posted() != before;
        }
        false
    }

    pub(crate) fn shard(&mut self) -> &mut Shard {
        &mut self.shard
    }

    pub(crate) fn shard_ref(&self) -> &Shard {
        &self.shard
    }

    pub(crate) fn ctx(&mut self) -> &mut ShardCtx {
        self.shard.ctx_mut()
    }
}

#[cfg(all(test, target_os = "linux"))]
impl Driver {
    /// A one-shard server's shard whose connections run on the completion
    /// backend over a scripted kernel (`how` sets its buffers and
    /// features), and that kernel. Sockets opened with [`Driver::open`]
    /// are attached to it.
    pub(crate) fn completion(
        settings: Settings,
        tick: Duration,
        how: crate::reactor::ScriptedRing,
    ) -> Result<(Self, super::fake_kernel::FakeKernel)> {
        let mut driver = Self::new(settings, tick, 64 * 1024)?;
        let kernel = super::fake_kernel::FakeKernel::default();
        driver
            .shard
            .use_scripted_ring(Box::new(kernel.clone()), how)
            .map_err(crate::error::Error::Io)?;
        driver.kernel = Some(kernel.clone());
        Ok((driver, kernel))
    }

    /// The scripted kernel's number for connection `id`'s socket.
    pub(crate) fn fd(&self, id: ConnId) -> std::os::fd::RawFd {
        self.fds[&id]
    }
}
