//! A sharded key-value server speaking RESP (the Redis protocol): PING,
//! ECHO, SET, GET, DEL, INCR, MGET. Each key belongs to one shard (by a
//! stable hash); a request for a key owned by another shard runs there
//! through `ShardCtx::call_on`, and a connection task awaits the answer.
//! Pipelined replies go out in request order even when some are answered
//! locally and some by other shards. No locks anywhere.
//!
//! ```text
//! cargo run --release -p shardloop --example resp_kv -- --port 6380
//! redis-cli -p 6380 SET greeting hello
//! redis-benchmark -p 6380 -t ping,set,get,incr -P 16 -q
//! ```

#[path = "../common/mod.rs"]
mod common;
mod parser;
mod redis;
#[cfg(test)]
mod sim_tests;
mod store;

use store::{bulk, now_ms, owner, run_op, KeyOp, Part, Piece, Reply, Store};

use clap::Parser;
use shardloop::task::PromiseError;
use shardloop::{Conn, LoopOptions, Protocol, Server};
use std::collections::{HashMap, VecDeque};

#[derive(Parser, Debug)]
#[command(about = "shardloop sharded RESP key-value server")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 6380)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Pin shards to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Largest bulk string (key or value) accepted, in bytes (Redis's
    /// `proto-max-bulk-len`).
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    max_bulk: usize,
    /// Allow `DEBUG SLEEP seconds`, which blocks the shard running it (to
    /// test what a frozen shard does to the others), as Redis's
    /// `enable-debug-command yes`.
    #[arg(long)]
    enable_debug_command: bool,
    /// Requests that may wait in one shard's inbox from the others; past
    /// it, cross-shard work is refused at once (never queued without bound).
    #[arg(long, default_value_t = LoopOptions::default().inbox_capacity)]
    inbox_capacity: usize,
    #[command(flatten)]
    serve: common::ServeArgs,
}

/// Replies a connection may have outstanding (waiting for other shards or
/// for the client to read) before it stops taking commands: a client that
/// pipelines without reading is slowed by TCP flow control, not buffered for.
const MAX_PENDING_REPLIES: usize = 1024;

/// A part of a reply, computed here or on the owner shard.
struct PartDone {
    seq: u64,
    index: usize,
    part: Part,
}

/// How the parts of one reply combine.
enum Combine {
    /// One part, sent as is.
    Single,
    /// An array of the parts (MGET).
    Array,
    /// The sum of counts (DEL).
    Sum,
}

struct Pending {
    parts: Vec<Option<Part>>,
    left: usize,
    combine: Combine,
}

struct Kv {
    parser: parser::RespParser,
    /// Replies in request order; `None` until all their parts are in. The
    /// reply numbered `seq` is at `seq - first_seq`: filled in O(1).
    replies: VecDeque<Option<Reply>>,
    first_seq: u64,
    pending: HashMap<u64, Pending>,
    /// Not taking commands: too many replies outstanding, or the output
    /// is backed up. Reading is paused until they drain.
    stalled: bool,
    /// A protocol error was answered: nothing more is read or run.
    failed: bool,
    /// `DEBUG` is allowed (`--enable-debug-command`).
    debug: bool,
}

impl Kv {
    fn new(max_bulk: usize, debug: bool) -> Self {
        Kv {
            parser: parser::RespParser::new(max_bulk),
            replies: VecDeque::new(),
            first_seq: 0,
            pending: HashMap::new(),
            stalled: false,
            failed: false,
            debug,
        }
    }

    /// Reserves the next reply slot.
    fn slot(&mut self) -> u64 {
        self.replies.push_back(None);
        self.first_seq + self.replies.len() as u64 - 1
    }

    fn reply_now(&mut self, reply: impl Into<Reply>) {
        let reply = reply.into();
        let seq = self.slot();
        self.fill(seq, reply);
    }

    fn fill(&mut self, seq: u64, reply: Reply) {
        if let Some(r) = seq
            .checked_sub(self.first_seq)
            .and_then(|i| self.replies.get_mut(i as usize))
        {
            *r = Some(reply);
        }
    }

    /// Writes every reply at the front that is complete.
    fn flush(&mut self, conn: &mut Conn<'_, Self>) {
        while let Some(Some(_)) = self.replies.front() {
            let r = self.replies.pop_front().flatten().expect("complete");
            self.first_seq += 1;
            for piece in r.0 {
                match piece {
                    Piece::Bytes(b) => conn.write(&b),
                    // A stored value by reference: no copy, however large.
                    Piece::Value(v) => conn.write_shared(v),
                }
            }
        }
    }

    /// Runs the commands parsed so far while the connection can take
    /// their replies, then writes what is complete.
    fn run(&mut self, conn: &mut Conn<'_, Self>) {
        while !self.failed {
            if self.replies.len() >= MAX_PENDING_REPLIES {
                self.flush(conn);
            }
            if !conn.is_writable() || self.replies.len() >= MAX_PENDING_REPLIES {
                // Go on once replies drain (`resume_producing`, or a part
                // arriving from another shard).
                self.stalled = true;
                conn.pause_reading();
                break;
            }
            match self.parser.next() {
                Ok(Some(args)) => self.command(conn, args),
                Ok(None) => break,
                Err(parser::ProtocolError(why)) => {
                    // As redis-server: answer, then close once every reply
                    // before it is out; nothing after it is read or run.
                    self.reply_now(format!("-ERR Protocol error: {why}\r\n").into_bytes());
                    self.failed = true;
                    conn.pause_reading();
                    self.flush(conn);
                    conn.close_when_idle();
                    return;
                }
            }
        }
        self.flush(conn);
    }

    /// Replies drained: take commands again if they were stalled.
    fn unstall(&mut self, conn: &mut Conn<'_, Self>) {
        if self.stalled && !self.failed {
            self.stalled = false;
            conn.resume_reading();
            self.run(conn);
        }
    }

    /// Runs `ops` (index, op, key, value) on their owner shards; the reply
    /// completes when every part is back.
    fn dispatch(
        &mut self,
        conn: &mut Conn<'_, Self>,
        combine: Combine,
        ops: Vec<(KeyOp, Vec<u8>, Option<Vec<u8>>)>,
    ) {
        let seq = self.slot();
        self.pending.insert(
            seq,
            Pending {
                parts: (0..ops.len()).map(|_| None).collect(),
                left: ops.len(),
                combine,
            },
        );
        let shards = conn.shard().shards();
        let here = conn.shard().index();
        if ops.iter().any(|(_, key, _)| owner(key, shards) != here) {
            // Parts answered by other shards: `close_when_idle` waits for them.
            conn.hold();
        }
        for (index, (op, key, value)) in ops.into_iter().enumerate() {
            let target = owner(&key, shards);
            if target == here {
                let part = run_op(conn.shard().service::<Store>(), op, key, value);
                let _ = self.part_done(PartDone { seq, index, part });
            } else {
                // Run on the owner, await the answer, fill the reply slot.
                let answer = conn.shard().call_on(target, move |ctx| {
                    run_op(ctx.service::<Store>(), op, key, value)
                });
                conn.spawn(move |task| async move {
                    let part = answer.await.unwrap_or_else(|e| {
                        Part::Resp(match e {
                            // The owner's inbox is full: Redis's word for
                            // "not now", and nothing was run.
                            PromiseError::Overloaded => {
                                format!("-BUSY shard {target} is overloaded, try again\r\n")
                                    .into_bytes()
                                    .into()
                            }
                            _ => b"-ERR shard unavailable\r\n".to_vec().into(),
                        })
                    });
                    task.run(move |kv, conn| {
                        // Each reply with a part from another shard holds
                        // the connection once, until it completes.
                        if kv.part_done(PartDone { seq, index, part }) {
                            conn.unhold();
                        }
                        kv.flush(conn);
                        kv.unstall(conn);
                    });
                });
            }
        }
    }

    /// Records a part; true when it completed its reply.
    fn part_done(&mut self, done: PartDone) -> bool {
        let Some(p) = self.pending.get_mut(&done.seq) else {
            return false;
        };
        p.parts[done.index] = Some(done.part);
        p.left -= 1;
        if p.left > 0 {
            return false;
        }
        let p = self.pending.remove(&done.seq).expect("present");
        let mut out = Reply::default();
        match p.combine {
            Combine::Single | Combine::Array => {
                if matches!(p.combine, Combine::Array) {
                    out.bytes(format!("*{}\r\n", p.parts.len()).as_bytes());
                }
                for part in p.parts.into_iter().flatten() {
                    if let Part::Resp(r) = part {
                        out.append(r);
                    }
                }
            }
            Combine::Sum => {
                let n: i64 = p
                    .parts
                    .into_iter()
                    .flatten()
                    .map(|part| if let Part::Count(c) = part { c } else { 0 })
                    .sum();
                out.bytes(format!(":{n}\r\n").as_bytes());
            }
        }
        self.fill(done.seq, out);
        true
    }

    fn command(&mut self, conn: &mut Conn<'_, Self>, args: Vec<Vec<u8>>) {
        let Some(name) = args.first() else {
            return;
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        const KNOWN: [&str; 10] = [
            "PING", "ECHO", "GET", "SET", "INCR", "DEL", "MGET", "COMMAND", "CONFIG", "DEBUG",
        ];
        if !KNOWN.contains(&name.as_str()) {
            self.reply_now(redis::unknown_command(&args));
            return;
        }
        let arity_err = |n: &str| {
            format!(
                "-ERR wrong number of arguments for '{}' command\r\n",
                n.to_lowercase()
            )
            .into_bytes()
        };
        let mut args = args.into_iter().skip(1);
        let argc = args.len();
        match (name.as_str(), argc) {
            ("PING", 0) => self.reply_now(b"+PONG\r\n".to_vec()),
            ("PING", 1) | ("ECHO", 1) => {
                let mut out = Reply::default();
                bulk(&mut out, args.next().as_deref());
                self.reply_now(out);
            }
            ("GET", 1) => {
                let key = args.next().expect("one arg");
                self.dispatch(conn, Combine::Single, vec![(KeyOp::Get, key, None)]);
            }
            ("SET", n) if n >= 2 => {
                let key = args.next().expect("two args");
                let value = args.next();
                let opts: Vec<Vec<u8>> = args.collect();
                match redis::parse_set_options(&opts, now_ms()) {
                    Ok(o) => {
                        self.dispatch(conn, Combine::Single, vec![(KeyOp::Set(o), key, value)]);
                    }
                    Err(e) => self.reply_now(e.to_vec()),
                }
            }
            ("INCR", 1) => {
                let key = args.next().expect("one arg");
                self.dispatch(conn, Combine::Single, vec![(KeyOp::Incr, key, None)]);
            }
            ("DEL", n) if n >= 1 => {
                let ops = args.map(|k| (KeyOp::Del, k, None)).collect();
                self.dispatch(conn, Combine::Sum, ops);
            }
            ("MGET", n) if n >= 1 => {
                let ops = args.map(|k| (KeyOp::Get, k, None)).collect();
                self.dispatch(conn, Combine::Array, ops);
            }
            ("PING" | "ECHO" | "GET" | "SET" | "INCR" | "DEL" | "MGET", _) => {
                self.reply_now(arity_err(&name))
            }
            ("DEBUG", _) if !self.debug => self.reply_now(redis::DEBUG_NOT_ALLOWED.to_vec()),
            ("DEBUG", 2) => {
                let sub = args.next().expect("two args").to_ascii_uppercase();
                let secs = args.next().expect("two args");
                let secs = std::str::from_utf8(&secs)
                    .ok()
                    .and_then(|v| v.parse::<f64>().ok());
                match (sub.as_slice(), secs) {
                    (b"SLEEP", Some(s)) if s.is_finite() && (0.0..=60.0).contains(&s) => {
                        // Blocks this shard, as redis-server blocks.
                        std::thread::sleep(std::time::Duration::from_secs_f64(s));
                        self.reply_now(b"+OK\r\n".to_vec());
                    }
                    _ => self.reply_now(b"-ERR DEBUG: only SLEEP <seconds> (0 to 60)\r\n".to_vec()),
                }
            }
            ("DEBUG", _) => self.reply_now(arity_err(&name)),
            // Clients probe these at start-up (redis-benchmark: CONFIG GET); nothing to report.
            ("COMMAND" | "CONFIG", _) => self.reply_now(b"*0\r\n".to_vec()),
            _ => unreachable!("known commands are all matched above"),
        }
    }
}

impl Protocol for Kv {
    type Message = ();

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if self.failed {
            return;
        }
        self.parser.feed(data);
        self.run(conn);
    }

    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.unstall(conn);
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        // Replies from other shards may still be on their way: write them
        // all, then close.
        conn.close_when_idle();
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let (max_bulk, debug) = (args.max_bulk, args.enable_debug_command);
    let mut loop_options = LoopOptions::default();
    loop_options.inbox_capacity = args.inbox_capacity;
    let builder = Server::builder().loop_options(loop_options).listen(
        args.serve.listen((args.bind.as_str(), args.port))?,
        move |_shard| move |_peer| Kv::new(max_bulk, debug),
    );
    let handle = common::start(builder, args.shards, &args.cores, &args.serve)?;
    println!(
        "resp_kv listening on {} with {} shards",
        handle.local_addrs()[0],
        handle.shards()
    );
    handle.wait();
    Ok(())
}
