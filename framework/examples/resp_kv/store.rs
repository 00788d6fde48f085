//! One shard's partition of the key space and the single-key operations
//! run on it (on the key's owner shard, whichever shard the client is on).

use super::redis::{string2ll, Expiry, SetOptions};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A stored value and when it expires (Unix ms), if ever. The value is
/// shared: a reply sends it by reference, however large and however slowly
/// the client reads, without a copy.
pub struct Entry {
    pub value: Arc<[u8]>,
    pub expires_at: Option<i64>,
}

/// One shard's partition of the key space. Expired keys are removed when
/// touched (Redis's lazy expiry).
#[derive(Default)]
pub struct Store {
    pub map: HashMap<Vec<u8>, Entry>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// The live entry for `key`, dropping it first if it has expired.
    pub fn live(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let expired = self
            .map
            .get(key)
            .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now_ms()));
        if expired {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }
}

pub fn owner(key: &[u8], shards: usize) -> usize {
    // DefaultHasher::new() has fixed keys: every shard computes the same owner.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

/// A reply: bytes, and stored values by reference (sent without a copy).
#[derive(Default)]
pub struct Reply(pub Vec<Piece>);

pub enum Piece {
    Bytes(Vec<u8>),
    Value(Arc<[u8]>),
}

impl Reply {
    pub fn bytes(&mut self, b: &[u8]) {
        match self.0.last_mut() {
            Some(Piece::Bytes(v)) => v.extend_from_slice(b),
            _ => self.0.push(Piece::Bytes(b.to_vec())),
        }
    }

    pub fn append(&mut self, other: Reply) {
        for piece in other.0 {
            match piece {
                Piece::Bytes(b) => self.bytes(&b),
                Piece::Value(v) => self.0.push(Piece::Value(v)),
            }
        }
    }
}

impl From<Vec<u8>> for Reply {
    fn from(b: Vec<u8>) -> Reply {
        Reply(vec![Piece::Bytes(b)])
    }
}

/// A bulk string of bytes (copied), or nil.
pub fn bulk(out: &mut Reply, v: Option<&[u8]>) {
    match v {
        Some(v) => {
            out.bytes(format!("${}\r\n", v.len()).as_bytes());
            out.bytes(v);
            out.bytes(b"\r\n");
        }
        None => out.bytes(b"$-1\r\n"),
    }
}

/// A stored value as a bulk string (by reference), or nil.
fn bulk_value(out: &mut Reply, v: Option<&Arc<[u8]>>) {
    match v {
        Some(v) => {
            out.bytes(format!("${}\r\n", v.len()).as_bytes());
            out.0.push(Piece::Value(v.clone()));
            out.bytes(b"\r\n");
        }
        None => out.bytes(b"$-1\r\n"),
    }
}

/// A single-key operation, run on the key's owner shard.
#[derive(Clone, Copy)]
pub enum KeyOp {
    Get,
    Set(SetOptions),
    Del,
    Incr,
}

/// What a key operation answers: a RESP value, or a count to be summed (DEL).
pub enum Part {
    Resp(Reply),
    Count(i64),
}

pub fn run_op(store: &mut Store, op: KeyOp, key: Vec<u8>, value: Option<Vec<u8>>) -> Part {
    let mut out = Reply::default();
    match op {
        KeyOp::Get => bulk_value(&mut out, store.live(&key).map(|e| &e.value)),
        KeyOp::Set(o) => {
            let old = store.live(&key);
            let exists = old.is_some();
            let old_ttl = old.as_ref().and_then(|e| e.expires_at);
            if o.get {
                bulk_value(&mut out, old.map(|e| &e.value));
            }
            if (o.nx && exists) || (o.xx && !exists) {
                if !o.get {
                    out.bytes(b"$-1\r\n");
                }
                return Part::Resp(out);
            }
            let expires_at = match o.expiry {
                Expiry::Persist => None,
                Expiry::Keep => old_ttl,
                Expiry::AtMs(t) => Some(t),
            };
            let value: Arc<[u8]> = value.unwrap_or_default().into();
            if expires_at.is_some_and(|t| t <= now_ms()) {
                // Already in the past: Redis deletes the key (and still says OK).
                store.map.remove(&key);
            } else {
                store.map.insert(key, Entry { value, expires_at });
            }
            if !o.get {
                out.bytes(b"+OK\r\n");
            }
        }
        KeyOp::Del => {
            let n = store.live(&key).is_some() as i64;
            store.map.remove(&key);
            return Part::Count(n);
        }
        KeyOp::Incr => match store.live(&key) {
            Some(e) => match string2ll(&e.value).map(|n| n.checked_add(1)) {
                None => out.bytes(b"-ERR value is not an integer or out of range\r\n"),
                Some(None) => out.bytes(b"-ERR increment or decrement would overflow\r\n"),
                Some(Some(n)) => {
                    // INCR keeps the key's time to live, as Redis does.
                    e.value = n.to_string().into_bytes().into();
                    out.bytes(format!(":{n}\r\n").as_bytes());
                }
            },
            None => {
                let entry = Entry {
                    value: Arc::from(&b"1"[..]),
                    expires_at: None,
                };
                store.map.insert(key, entry);
                out.bytes(b":1\r\n");
            }
        },
    }
    Part::Resp(out)
}
