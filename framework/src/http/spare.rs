//! One spare `HeaderMap` per shard thread. The map of a response just
//! written is cleared and becomes the next request's, so a request and its
//! response cost one map allocation between them instead of two. hyper
//! keeps such a map per connection; one per thread does the same for
//! pipelined and keep-alive traffic alike and holds no memory per idle
//! connection.

use http::HeaderMap;
use std::cell::Cell;

thread_local! {
    static SPARE: Cell<Option<HeaderMap>> = const { Cell::new(None) };
}

/// Maps larger than this (a response with unusually many fields) are
/// freed, not kept: the spare stays small.
const KEEP_UP_TO: usize = 64;

/// An empty map with room for `fields` fields: the spare if there is one.
pub(crate) fn take(fields: usize) -> HeaderMap {
    match SPARE.take() {
        Some(mut m) => {
            m.reserve(fields);
            m
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Keeps `m`, emptied, for the next [`take`].
pub(crate) fn give(mut m: HeaderMap) {
    if m.capacity() == 0 || m.capacity() > KEEP_UP_TO {
        return;
    }
    m.clear();
    SPARE.set(Some(m));
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, HOST};
    use http::HeaderValue;

    #[test]
    fn a_given_map_comes_back_empty_with_its_room() {
        let mut m = HeaderMap::with_capacity(4);
        m.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let room = m.capacity();
        give(m);
        let again = take(2);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
        // The spare was taken: the next map is a new one.
        assert_eq!(take(0).capacity(), 0);
    }

    #[test]
    fn a_large_map_is_not_kept_and_a_small_spare_grows_on_demand() {
        let mut big = HeaderMap::with_capacity(KEEP_UP_TO * 2);
        big.insert(HOST, HeaderValue::from_static("a"));
        give(big);
        assert_eq!(take(0).capacity(), 0);
        give(HeaderMap::with_capacity(2));
        assert!(take(40).capacity() >= 40);
    }
}
