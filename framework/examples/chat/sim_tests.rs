//! The chat server under the simulated network: a server of 3 shards and
//! a dozen members who join at random times, talk at random intervals and
//! leave at random (closing, aborting, or cut off by the network), over
//! hundreds of seeds. The server's code is the example's, unchanged.
//!
//! What must hold, whatever the seed:
//! - nobody hears their own lines, nor a line nobody said, nor one twice;
//! - each member hears each other's lines in the order they were said;
//! - a member who stays hears every line said, by a member who stays,
//!   after it was welcomed (it joined before the welcome was sent, and
//!   the line reached the server after it was said);
//! - once everyone has gone, no shard's room keeps a member.

use super::{member, Room};
use shardloop::endpoint::Connect;
use shardloop::framing::{FrameProtocol, FramedConn, LineDecoder, LineReceiver};
use shardloop::testing::sim::{Network, World};
use shardloop::{CloseReason, Conn, Settings, ShardCtx};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What one member did and heard.
#[derive(Default, Debug)]
struct Record {
    welcomed: Option<Instant>,
    /// When it said each of its lines (its line number is the index).
    said: Vec<Instant>,
    /// (who said it, their line number), in the order heard.
    heard: Vec<(usize, usize)>,
    /// Anything else it heard.
    strange: Vec<String>,
    /// It left on purpose (closed or aborted) before the end.
    left: bool,
    lost: Option<CloseReason>,
}

type Records = Rc<RefCell<Vec<Record>>>;

struct Talker {
    me: usize,
    records: Records,
    rng: fastrand::Rng,
    lines_left: usize,
}

type TalkConn<'a, 'c> = FramedConn<'a, 'c, LineDecoder, Talker>;

/// Takes a turn after a random wait.
fn schedule(conn: &mut Conn<'_, LineReceiver<Talker>>, rng: &mut fastrand::Rng) {
    conn.call_later(Duration::from_millis(rng.u64(5..80)), turn);
}

/// Says the next line, or leaves (rarely), until it has said them all.
fn turn(framed: &mut LineReceiver<Talker>, conn: &mut Conn<'_, LineReceiver<Talker>>) {
    let talker = framed.inner_mut();
    if talker.lines_left == 0 {
        return;
    }
    let mut records = talker.records.borrow_mut();
    let rec = &mut records[talker.me];
    match talker.rng.u32(0..200) {
        // Some leave politely, some slam the door.
        0..=1 => {
            rec.left = true;
            conn.close();
        }
        2 => {
            rec.left = true;
            conn.abort();
        }
        _ => {
            let n = rec.said.len();
            rec.said.push(conn.shard().now());
            conn.write(format!("m{}-{n}\n", talker.me).as_bytes());
            talker.lines_left -= 1;
            drop(records);
            schedule(conn, &mut talker.rng);
        }
    }
}

impl FrameProtocol<LineDecoder> for Talker {
    type Message = ();

    fn frame_received(&mut self, conn: &mut TalkConn<'_, '_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        let now = conn.shard().now();
        let mut records = self.records.borrow_mut();
        let rec = &mut records[self.me];
        if line.starts_with("* welcome ") && rec.welcomed.is_none() {
            rec.welcomed = Some(now);
            drop(records);
            return schedule(conn, &mut self.rng);
        }
        let parsed = line
            .split_once(": m")
            .and_then(|(_, said)| said.split_once('-'))
            .and_then(|(who, n)| Some((who.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some(heard) => rec.heard.push(heard),
            None => rec.strange.push(line),
        }
    }

    /// The end of the run: everyone still here leaves.
    fn message(&mut self, conn: &mut TalkConn<'_, '_>, _: ()) {
        conn.close();
    }

    fn connection_lost(&mut self, _conn: &mut TalkConn<'_, '_>, reason: &CloseReason) {
        self.records.borrow_mut()[self.me].lost = Some(reason.clone());
    }

    fn connect_failed(&mut self, _ctx: &mut ShardCtx, error: &std::io::Error) {
        panic!("member {} could not connect: {error}", self.me);
    }
}

const MEMBERS: usize = 12;
const LINES: usize = 15;

/// One seed's run: what each member did and heard, and how many members
/// the server's rooms still held once everyone had gone.
fn run(seed: u64, net: &Network) -> (Vec<Record>, usize) {
    let mut w = World::new(seed, net.clone());
    let chat = w.host("chat.internal", 3, Settings::default());
    let people = w.host("people", 1, Settings::default());
    w.listen(chat, 7001, || member(4096, 256 * 1024));
    let records: Records = Rc::new(RefCell::new(
        (0..MEMBERS).map(|_| Record::default()).collect(),
    ));
    // Members join over the first second, at random times.
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xc4a7);
    let mut joins: Vec<(Duration, usize)> = (0..MEMBERS)
        .map(|me| (Duration::from_millis(rng.u64(0..1000)), me))
        .collect();
    joins.sort();
    for (at, me) in joins {
        w.run_for(at.saturating_sub(w.now()));
        let talker = Talker {
            me,
            records: records.clone(),
            rng: fastrand::Rng::with_seed(rng.u64(..)),
            lines_left: LINES,
        };
        let to = Connect::parse("tcp:host=chat.internal:port=7001").expect("endpoint");
        let line = LineReceiver::new(LineDecoder::new(b"\n".to_vec(), 4096), talker);
        w.on_shard(people, 0, |ctx| ctx.connect(to, line));
    }
    // Time to say everything (15 turns of at most 80 ms after a welcome).
    w.run_for(Duration::from_secs(4).saturating_sub(w.now()));
    let staying = w.connections(people);
    w.on_shard(people, 0, |ctx| {
        for id in staying {
            ctx.send(id, ()).expect("a local message");
        }
    });
    w.run_for(Duration::from_secs(1));
    let kept: usize = (0..3)
        .map(|shard| w.on_shard(chat, shard, |ctx| ctx.service::<Room>().members.len()))
        .sum();
    assert!(
        w.connections(chat).is_empty(),
        "seed {seed}: the server closed every connection"
    );
    let out = records.take();
    (out, kept)
}

/// A member that stayed to the end (closed by the run, not cut off).
fn stayed(r: &Record) -> bool {
    !r.left && r.lost == Some(CloseReason::Done)
}

/// Checks one run's records; what is wrong, if anything.
fn check(records: &[Record]) -> Result<(), String> {
    for (me, r) in records.iter().enumerate() {
        if !r.strange.is_empty() {
            return Err(format!("member {me} heard {:?}", r.strange));
        }
        let mut last: HashMap<usize, usize> = HashMap::new();
        for &(who, n) in &r.heard {
            if who == me {
                return Err(format!("member {me} heard its own line {n}"));
            }
            if who >= records.len() || n >= records[who].said.len() {
                return Err(format!("member {me} heard m{who}-{n}, never said"));
            }
            if last.get(&who).is_some_and(|&before| before >= n) {
                return Err(format!(
                    "member {me} heard m{who}-{n} out of order or twice"
                ));
            }
            last.insert(who, n);
        }
        if stayed(r) && r.welcomed.is_none() {
            return Err(format!("member {me} stayed and was never welcomed"));
        }
    }
    for (me, r) in records.iter().enumerate().filter(|(_, r)| stayed(r)) {
        let welcomed = r.welcomed.expect("checked");
        for (who, s) in records
            .iter()
            .enumerate()
            .filter(|(w, s)| *w != me && stayed(s))
        {
            for (n, said) in s.said.iter().enumerate() {
                if *said >= welcomed && !r.heard.contains(&(who, n)) {
                    return Err(format!(
                        "member {me} missed m{who}-{n}, said after its welcome"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn members_hear_every_line_in_order_under_random_disconnects() {
    // SHARDLOOP_SIM_SEEDS=1000 for a long run.
    let seeds: u64 = std::env::var("SHARDLOOP_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let net = Network {
        max_piece: 48,
        latency: (Duration::from_micros(20), Duration::from_millis(4)),
        reset_chance: 0.001,
        ..Network::default()
    };
    let (mut stayers, mut gone, mut heard) = (0, 0, 0);
    for seed in 0..seeds {
        let (records, kept) = run(seed, &net);
        if let Err(e) = check(&records) {
            panic!("seed {seed}: {e} (replay it: run({seed}, &net))");
        }
        assert_eq!(kept, 0, "seed {seed}: the rooms forgot nobody");
        stayers += records.iter().filter(|r| stayed(r)).count();
        gone += records.iter().filter(|r| !stayed(r)).count();
        heard += records.iter().map(|r| r.heard.len()).sum::<usize>();
    }
    // A seed replays: the same lines heard in the same order, the same
    // members lost the same way.
    let replay = |seed| {
        let (records, _) = run(seed, &net);
        records
            .into_iter()
            .map(|r| (r.heard, r.said.len(), r.lost))
            .collect::<Vec<_>>()
    };
    assert_eq!(replay(7), replay(7));
    println!(
        "{seeds} seeds: {stayers} members stayed, {gone} left or were cut off, {heard} lines heard"
    );
    // The faults happened, and most members still talked to the end.
    assert!(gone > 0 && stayers > gone, "stayed {stayers}, gone {gone}");
}
