//! Chat: every line a client sends reaches every other connected client,
//! on every shard, through the bus. Clients speak lines over TCP (`--port`)
//! or WebSocket from a browser (`--web-port`: the page at `/`, the
//! WebSocket at `/ws`), and both kinds share one room. `/nick NAME` sets
//! the sender's name.
//!
//! Each shard keeps the members it owns in a shard-local `Room` service; a
//! line is broadcast to every shard, and each shard hands it to its own
//! members as a typed message (a `Line` to a line client, a WebSocket
//! message to a browser). Nothing is locked.
//!
//! Lines longer than `--max-line` are never relayed (the sender is told and
//! dropped); a member that stops reading is dropped once `--max-backlog`
//! bytes wait for it, so one slow reader cannot grow the server's memory.
//!
//! ```text
//! cargo run --release -p shardloop --example chat -- --shards 2 --port 7001 --web-port 8001
//! # then open http://127.0.0.1:8001/ in two tabs, and `nc 127.0.0.1 7001`
//! ```

#[path = "../common/mod.rs"]
mod common;
#[cfg(test)]
mod sim_tests;
mod web;

use clap::Parser;
use shardloop::framing::{FrameError, FrameProtocol, FramedConn, LineDecoder, LineReceiver};
use shardloop::http::ws::Message;
use shardloop::{CloseReason, ConnId, LogLimit, LoopOptions, Server, ShardCtx};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(about = "shardloop chat server")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 7001)]
    port: u16,
    /// Also serve the web page and its WebSocket on this port (0 picks a
    /// free one; the address is printed).
    #[arg(long)]
    web_port: Option<u16>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Longest line accepted; a client that sends a longer one is disconnected.
    #[arg(long, default_value_t = 4096)]
    max_line: usize,
    /// Bytes of unsent lines a member may have before it is dropped.
    #[arg(long, default_value_t = 256 * 1024)]
    max_backlog: usize,
    /// Requests that may wait in one shard's inbox from the others; past
    /// it, cross-shard work is refused at once (never queued without bound).
    #[arg(long, default_value_t = LoopOptions::default().inbox_capacity)]
    inbox_capacity: usize,
    #[command(flatten)]
    serve: common::ServeArgs,
}

/// Members of the room that live on this shard, and what it could not relay.
struct Room {
    /// Line clients.
    members: HashSet<ConnId>,
    /// WebSocket clients.
    sockets: HashSet<ConnId>,
    /// Lines from this shard's members that a full inbox kept from some shard.
    dropped: u64,
    drop_log: LogLimit,
}

impl Default for Room {
    fn default() -> Self {
        Room {
            members: HashSet::new(),
            sockets: HashSet::new(),
            dropped: 0,
            drop_log: LogLimit::new(1),
        }
    }
}

/// A line to relay, and who sent it (not echoed back to the sender).
struct Line {
    from: ConnId,
    text: Arc<[u8]>,
}

struct Chat {
    name: String,
    /// Unsent output a member may accumulate before it is dropped.
    max_backlog: usize,
}

type ChatConn<'a, 'c> = FramedConn<'a, 'c, LineDecoder, Chat>;

impl FrameProtocol<LineDecoder> for Chat {
    type Message = Line;

    fn connection_made(&mut self, conn: &mut ChatConn<'_, '_>) {
        self.name = format!("user{}", conn.id());
        let id = conn.id();
        conn.shard().service::<Room>().members.insert(id);
        // Sent after joining: once a client reads it, it receives every
        // line broadcast from then on.
        conn.write(format!("* welcome {}\n", self.name).as_bytes());
    }

    fn frame_received(&mut self, conn: &mut ChatConn<'_, '_>, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(nick) = line.strip_prefix(b"/nick ") {
            self.name = String::from_utf8_lossy(nick).trim().to_string();
            return;
        }
        let from = conn.id();
        let said = String::from_utf8_lossy(line);
        if !broadcast(conn.shard(), from, &self.name, &said) {
            conn.write(b"* server busy: your line did not reach everyone\n");
        }
    }

    fn frame_error(&mut self, conn: &mut ChatConn<'_, '_>, error: &FrameError, _data: &[u8]) {
        // The line is never relayed, whatever its size in one read.
        conn.write(b"* line too long; bye\n");
        conn.close_with_error(error.to_string());
    }

    fn message(&mut self, conn: &mut ChatConn<'_, '_>, msg: Line) {
        debug_assert_ne!(msg.from, conn.id());
        if conn.is_closing() {
            return;
        }
        if conn.buffered() + msg.text.len() > self.max_backlog {
            // A member that does not read would make the server hold every
            // line for it: drop it, and say so (it reads this if it ever reads).
            tracing::info!(member = %conn.id(), backlog = conn.buffered(), "dropping a member that does not read");
            conn.write(b"* you are not reading; bye\n");
            conn.close_with_error("member too slow");
            return;
        }
        conn.write(&msg.text);
    }

    fn connection_lost(&mut self, conn: &mut ChatConn<'_, '_>, _reason: &CloseReason) {
        let id = conn.id();
        conn.shard().service::<Room>().members.remove(&id);
    }
}

/// A line client's connection: lines of at most `max_line` bytes; dropped
/// once `max_backlog` bytes of lines wait for it.
fn member(max_line: usize, max_backlog: usize) -> LineReceiver<Chat> {
    LineReceiver::new(
        LineDecoder::new(b"\n".to_vec(), max_line),
        Chat {
            name: String::new(),
            max_backlog,
        },
    )
}

/// Relays `name: text` from member `from` to every other member, on every
/// shard. False if some shard's inbox was full (its members miss it; the
/// drop is counted and logged at a limited rate).
fn broadcast(ctx: &mut ShardCtx, from: ConnId, name: &str, text: &str) -> bool {
    let said = format!("{name}: {text}");
    let line: Arc<[u8]> = format!("{said}\n").into_bytes().into();
    let msg = Message::from(said);
    let sent = ctx.post_to_all(move |ctx| {
        let room = ctx.service::<Room>();
        let lines: Vec<ConnId> = room.members.iter().copied().collect();
        let sockets: Vec<ConnId> = room.sockets.iter().copied().collect();
        // Members of this shard: a local queue, never refused.
        for to in lines.into_iter().filter(|&to| to != from) {
            let text = line.clone();
            let _ = ctx.send(to, Line { from, text });
        }
        for to in sockets.into_iter().filter(|&to| to != from) {
            let _ = ctx.send(to, msg.clone());
        }
    });
    if let Err(e) = sent {
        // A shard's inbox is full (it is far behind): its members miss
        // this line. Dropped, counted, and the sender told.
        let room = ctx.service::<Room>();
        room.dropped += 1;
        let dropped = room.dropped;
        if let Some(suppressed) = room.drop_log.allow() {
            tracing::warn!(error = %e, dropped, suppressed, "line not relayed to every shard");
        }
        return false;
    }
    true
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let max_line = args.max_line;
    let max_backlog = args.max_backlog;
    let mut loop_options = LoopOptions::default();
    loop_options.inbox_capacity = args.inbox_capacity;
    let builder = Server::builder().loop_options(loop_options).listen(
        args.serve.listen((args.bind.as_str(), args.port))?,
        move |_shard| move |_peer| member(max_line, max_backlog),
    );
    let mut builder = builder;
    if let Some(port) = args.web_port {
        let web = web::server(max_line, max_backlog);
        let listen = args.serve.listen((args.bind.as_str(), port))?;
        builder = builder.listen(listen, web.factory());
    }
    let handle = common::start(builder, args.shards, &[], &args.serve)?;
    let web = match args.web_port {
        Some(_) => format!("; web page on http://{}/", handle.tcp_addr(1)),
        None => String::new(),
    };
    println!(
        "chat listening on {} with {} shards{web}",
        handle.tcp_addr(0),
        handle.shards(),
    );
    handle.wait();
    Ok(())
}
