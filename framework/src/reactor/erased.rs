//! Object-safe faces of `Protocol` and `Factory`, so one shard can hold
//! connections of several protocol types (several listeners, outbound clients).

use super::conn::Conn;
use super::conn_core::ConnCore;
use super::protocol::{Factory, Protocol};
use super::shard_ctx::ShardCtx;
use crate::api::CloseReason;
use crate::net::Addr;
use std::any::Any;
use std::io;

/// Object-safe face of a protocol, so one shard can hold connections of
/// several protocol types (several listeners, outbound clients).
pub(crate) trait ErasedProto {
    fn connection_made(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn data_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, data: &[u8]);
    fn eof_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn connection_lost(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, reason: &CloseReason);
    /// Returns false if `msg` is not this protocol's message type.
    fn message(
        &mut self,
        core: &mut ConnCore,
        ctx: &mut ShardCtx,
        msg: Box<dyn Any + Send>,
    ) -> bool;
    fn pause_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn reading_resumed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn resume_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn output_flushed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn server_stopping(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn handshake_completed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &io::Error);
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The protocol itself, for `Migrate::pack` (which knows its type).
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<P: Protocol> ErasedProto for P {
    fn connection_made(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::connection_made(self, &mut Conn::new(core, ctx));
    }
    fn data_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, data: &[u8]) {
        Protocol::data_received(self, &mut Conn::new(core, ctx), data);
    }
    fn eof_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::eof_received(self, &mut Conn::new(core, ctx));
    }
    fn connection_lost(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, reason: &CloseReason) {
        Protocol::connection_lost(self, &mut Conn::new(core, ctx), reason);
    }
    fn message(
        &mut self,
        core: &mut ConnCore,
        ctx: &mut ShardCtx,
        msg: Box<dyn Any + Send>,
    ) -> bool {
        match msg.downcast::<P::Message>() {
            Ok(m) => {
                Protocol::message(self, &mut Conn::new(core, ctx), *m);
                true
            }
            Err(_) => false,
        }
    }
    fn pause_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::pause_producing(self, &mut Conn::new(core, ctx));
    }
    fn resume_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::resume_producing(self, &mut Conn::new(core, ctx));
    }
    fn output_flushed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::output_flushed(self, &mut Conn::new(core, ctx));
    }
    fn reading_resumed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::reading_resumed(self, &mut Conn::new(core, ctx));
    }
    fn server_stopping(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::server_stopping(self, &mut Conn::new(core, ctx));
    }
    fn handshake_completed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::handshake_completed(self, &mut Conn::new(core, ctx));
    }
    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &io::Error) {
        Protocol::connect_failed(self, ctx, error);
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Object-safe face of a factory.
pub(crate) trait ErasedFactory {
    fn build(&mut self, peer: Addr) -> Box<dyn ErasedProto>;
}

impl<F: Factory> ErasedFactory for F {
    fn build(&mut self, peer: Addr) -> Box<dyn ErasedProto> {
        Box::new(self.build_protocol(peer))
    }
}

/// Makes a shard's factory for one listener; called once on each shard thread.
pub(crate) type FactoryMaker =
    std::sync::Arc<dyn Fn(usize) -> Box<dyn ErasedFactory> + Send + Sync>;
