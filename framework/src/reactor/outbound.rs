//! Outbound connections from a shard: what a protocol asks for (`ShardCtx`
//! connect methods, queued until its callback returns), then the
//! non-blocking connect, noticing when it finishes or fails, and telling
//! the protocol and its observer.

use super::conn_core::{ConnCore, ConnObserver, ConnState, ConnectionEnd};
use super::erased::ErasedProto;
use super::shard::{Connection, Shard};
use super::shard_ctx::{Dest, PendingConnect, ShardCtx};
use super::timers::TimerTask;
use crate::api::ConnId;
use crate::net::{Addr, SocketOptions, Stream};
use mio::{Interest, Token};
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

impl ShardCtx {
    /// Queues a connect to start at the end of this callback.
    pub(crate) fn queue_connect(&mut self, connect: PendingConnect) {
        self.pending_connects.push(connect);
    }
}

/// Starts a non-blocking TCP connect with `options` set first (buffer
/// sizes and Fast Open must be set before the SYN).
fn connect_tcp(addr: SocketAddr, options: &SocketOptions) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    options.apply(&socket, false)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

impl Shard {
    pub(super) fn start_connects(&mut self) {
        if self.ctx.pending_connects.is_empty() {
            return;
        }
        for mut pc in std::mem::take(&mut self.ctx.pending_connects) {
            match std::mem::replace(&mut pc.target, Dest::Addr(Addr::Unix(None))) {
                Dest::Addr(addr) => self.start_connect(pc, addr),
                Dest::Name { host, port, fresh } => self.connect_by_name(pc, host, port, fresh),
                Dest::Answered { host, answer } => self.answered(pc, host, answer),
            }
        }
    }

    /// A connect to one address.
    pub(super) fn start_connect(&mut self, pc: PendingConnect, addr: Addr) {
        let layer = match pc.layer {
            Ok(layer) => layer,
            Err(e) => return self.report_connect_failure(Some(pc.proto), pc.observer, e),
        };
        let id = match self.dial(addr, pc.options.as_ref()) {
            Ok(id) => id,
            Err(e) => return self.report_connect_failure(Some(pc.proto), pc.observer, e),
        };
        let c = &mut self.conns[id.slot()];
        c.proto = Some(pc.proto);
        if let Some(o) = pc.observer {
            c.core.extras().observer = Some(o);
        }
        // Started once the TCP connect finishes.
        c.core.layer = layer;
        if let Some(t) = pc.timeout {
            c.core
                .set_phase_timer(&mut self.ctx.timers, t, TimerTask::ConnectTimeout(id));
        }
    }

    /// Starts a non-blocking connect to `addr` in a new connection slot
    /// with no protocol yet; its id.
    pub(super) fn dial(
        &mut self,
        addr: Addr,
        options: Option<&SocketOptions>,
    ) -> io::Result<ConnId> {
        let entry = self.conns.vacant_entry();
        let id = ConnId::new(
            self.ctx.index as u16,
            entry.key() as u32,
            self.next_generation,
        );
        let connected = match (&addr, &self.shared.outbound.virtual_dial) {
            (_, Some(net)) => net.dial(id, &addr).map(Stream::Virtual),
            (Addr::Tcp(a), None) => {
                let opts = options
                    .unwrap_or(&self.shared.outbound.options)
                    .or(&SocketOptions {
                        nodelay: Some(self.nodelay),
                        ..SocketOptions::default()
                    });
                connect_tcp(*a, &opts).map(Stream::Tcp)
            }
            (Addr::Unix(Some(p)), None) => mio::net::UnixStream::connect(p).map(Stream::Unix),
            (Addr::Unix(None), None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to an unnamed Unix socket",
            )),
        };
        let mut stream = connected?;
        self.poll.registry().register(
            &mut stream,
            Token(id.slot()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.next_generation = self.next_generation.wrapping_add(1);
        let core = ConnCore::new(
            id,
            stream,
            addr,
            None,
            ConnState::outbound(),
            self.ctx.now_tick,
        );
        entry.insert(Connection { core, proto: None });
        self.shared.open_total.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// The poller reported progress on a connecting socket: connected or failed?
    pub(super) fn finish_connect(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        let failed = match c.core.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match c.core.stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failed {
            return self.fail_connect(slot, e);
        }
        if let Some(race) = c.core.extras.as_ref().and_then(|e| e.race) {
            self.win_race(race, slot);
        }
        self.conns[slot].core.state.connected();
        if self.ring_takes(&self.conns[slot].core.stream) {
            // Connected: from now on its I/O goes through the ring.
            let _ = self
                .poll
                .registry()
                .deregister(&mut self.conns[slot].core.stream);
            self.ring_open(slot);
        }
        let c = &mut self.conns[slot];
        if let Some(t) = c.core.phase_timer.take() {
            self.ctx.timers.cancel_id(t);
        }
        let idle = self.default_idle_ticks();
        let c = &mut self.conns[slot];
        c.core.idle_ticks = idle;
        c.core.last_read_tick = self.ctx.now_tick;
        self.ctx.counters.connections_accepted += 1;
        self.ctx.counters.outbound_connected += 1;
        self.ctx.arm_idle(&mut c.core);
        match c.core.layer.take() {
            Some(layer) => self.conns[slot].core.start_layer(layer, &mut self.ctx),
            None => {
                self.make(slot);
            }
        }
    }

    pub(super) fn fail_connect(&mut self, slot: usize, error: io::Error) {
        let race = self.conns[slot].core.extras.as_ref().and_then(|e| e.race);
        if let Some(race) = race {
            return self.attempt_failed(race, slot, error);
        }
        let mut c = self.conns.remove(slot);
        c.core.cancel_timers(&mut self.ctx.timers);
        let _ = self.poll.registry().deregister(&mut c.core.stream);
        self.shared.open_total.fetch_sub(1, Ordering::Relaxed);
        self.report_connect_failure(c.proto.take(), c.core.take_observer(), error);
    }

    /// An outbound connection never came up: count it, then tell its
    /// protocol (`connect_failed`) and its observer (a reconnecting client).
    pub(super) fn report_connect_failure(
        &mut self,
        proto: Option<Box<dyn ErasedProto>>,
        observer: Option<Box<dyn ConnObserver>>,
        error: io::Error,
    ) {
        self.ctx.counters.connect_failures += 1;
        if let Some(mut proto) = proto {
            let ctx = &mut self.ctx;
            // Unwind safety: the protocol never connected and is dropped after this
            // call; the context is left as a returning callback could leave it.
            if catch_unwind(AssertUnwindSafe(|| proto.connect_failed(ctx, &error))).is_err() {
                self.ctx.counters.callback_panics += 1;
                tracing::error!("connect_failed panicked");
            }
        }
        if let Some(o) = observer {
            o.ended(&mut self.ctx, ConnectionEnd::Failed(error));
        }
    }
}
