//! One shard's partition of the key space and the single-key operations
//! run on it (on the key's owner shard, whichever shard the client is on).

use super::redis::{string2ll, Expiry, SetOptions};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A stored value and when it expires (Unix ms), if ever.
pub struct Entry {
    pub value: Vec<u8>,
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

pub fn bulk(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(v) => {
            out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"$-1\r\n"),
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
    Resp(Vec<u8>),
    Count(i64),
}

pub fn run_op(store: &mut Store, op: KeyOp, key: Vec<u8>, value: Option<Vec<u8>>) -> Part {
    let mut out = Vec::new();
    match op {
        KeyOp::Get => bulk(&mut out, store.live(&key).map(|e| e.value.as_slice())),
        KeyOp::Set(o) => {
            let old = store.live(&key);
            let exists = old.is_some();
            let old_ttl = old.as_ref().and_then(|e| e.expires_at);
            if o.get {
                bulk(&mut out, old.map(|e| e.value.as_slice()));
            }
            if (o.nx && exists) || (o.xx && !exists) {
                if !o.get {
                    out.extend_from_slice(b"$-1\r\n");
                }
                return Part::Resp(out);
            }
            let expires_at = match o.expiry {
                Expiry::Persist => None,
                Expiry::Keep => old_ttl,
                Expiry::AtMs(t) => Some(t),
            };
            let value = value.unwrap_or_default();
            if expires_at.is_some_and(|t| t <= now_ms()) {
                // Already in the past: Redis deletes the key (and still says OK).
                store.map.remove(&key);
            } else {
                store.map.insert(key, Entry { value, expires_at });
            }
            if !o.get {
                out.extend_from_slice(b"+OK\r\n");
            }
        }
        KeyOp::Del => {
            let n = store.live(&key).is_some() as i64;
            store.map.remove(&key);
            return Part::Count(n);
        }
        KeyOp::Incr => match store.live(&key) {
            Some(e) => match string2ll(&e.value).map(|n| n.checked_add(1)) {
                None => out.extend_from_slice(b"-ERR value is not an integer or out of range\r\n"),
                Some(None) => {
                    out.extend_from_slice(b"-ERR increment or decrement would overflow\r\n")
                }
                Some(Some(n)) => {
                    // INCR keeps the key's time to live, as Redis does.
                    e.value = n.to_string().into_bytes();
                    out.extend_from_slice(format!(":{n}\r\n").as_bytes());
                }
            },
            None => {
                let entry = Entry {
                    value: b"1".to_vec(),
                    expires_at: None,
                };
                store.map.insert(key, entry);
                out.extend_from_slice(b":1\r\n");
            }
        },
    }
    Part::Resp(out)
}
