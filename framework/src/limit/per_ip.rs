//! Connections per source address, across every shard: how many are open
//! and how fast new ones come (a token bucket each), for
//! `Settings::max_connections_per_ip` and `Settings::connection_rate_per_ip`.
//!
//! The table is split into stripes, each a small mutex-guarded map, so
//! shards making connections from different addresses rarely meet; a
//! stripe is locked once when a connection is made and once when it is
//! released, never on its data path. IPv6 addresses count per /64 (one
//! subscriber's prefix: a client owns all of it), IPv4-mapped ones as IPv4.
//! An entry lives while a connection from its address is open or its
//! bucket is refilling; a stripe sweeps the others out when it grows, and
//! past `STRIPE_CAP` entries of live ones new addresses go untracked (the
//! table's memory is bounded; the per-shard and global connection limits
//! still apply).

use super::rate::{RateLimit, RateLimiter};
use crossbeam_utils::CachePadded;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

const STRIPES: usize = 64;
/// Entries one stripe holds at most (64 × 16,384 ≈ 1 M addresses).
const STRIPE_CAP: usize = 16_384;

/// An address as counted: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IpKey(u128);

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(u128::from(u32::from(v4))),
                // The /64, tagged so that it never equals an IPv4 key.
                None => IpKey((u128::from(v6) & !((1u128 << 64) - 1)) | 1),
            },
        }
    }

    fn stripe(self) -> usize {
        // Fold the bits (an address's low bits vary most).
        let h = (self.0 as u64) ^ ((self.0 >> 64) as u64);
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % STRIPES
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpRefusal {
    /// `max_connections_per_ip` are already open from the address.
    TooMany,
    /// The address is connecting faster than `connection_rate_per_ip`.
    TooFast,
}

#[derive(Debug)]
struct Entry {
    open: u32,
    bucket: Option<RateLimiter>,
}

/// One stripe: the addresses that hash to it.
type Stripe = CachePadded<Mutex<HashMap<IpKey, Entry>>>;

/// The table, shared by the shards.
pub(crate) struct PerIpTable {
    stripes: Box<[Stripe]>,
}

impl Default for PerIpTable {
    fn default() -> Self {
        PerIpTable {
            stripes: (0..STRIPES)
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
        }
    }
}

impl PerIpTable {
    /// Admits one more connection from `key` at `now`, or says why not.
    /// `Ok(true)`: counted (call `release` when it ends); `Ok(false)`:
    /// admitted untracked (the table is full).
    pub(crate) fn admit(
        &self,
        key: IpKey,
        now: Instant,
        max: Option<u32>,
        rate: Option<RateLimit>,
    ) -> Result<bool, IpRefusal> {
        let mut map = self.stripes[key.stripe()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= STRIPE_CAP {
            map.retain(|_, e| !idle(e, now));
            if map.len() >= STRIPE_CAP {
                return Ok(false);
            }
        }
        let e = map.entry(key).or_insert_with(|| Entry {
            open: 0,
            bucket: None,
        });
        if max.is_some_and(|m| e.open >= m) {
            return Err(IpRefusal::TooMany);
        }
        if let Some(rate) = rate {
            let bucket = e.bucket.get_or_insert_with(|| RateLimiter::new(rate, now));
            if !bucket.try_acquire(now) {
                // Nothing counted: an entry made just now for this refusal
                // stays (its bucket is what refuses the next one too).
                return Err(IpRefusal::TooFast);
            }
        }
        e.open += 1;
        Ok(true)
    }

    /// A connection counted by `admit` ended.
    pub(crate) fn release(&self, key: IpKey, now: Instant) {
        let mut map = self.stripes[key.stripe()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get_mut(&key) {
            e.open = e.open.saturating_sub(1);
            if idle(e, now) {
                map.remove(&key);
            }
        }
    }

    /// Connections open from `key` (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn open(&self, key: IpKey) -> u32 {
        let map = self.stripes[key.stripe()].lock().unwrap();
        map.get(&key).map_or(0, |e| e.open)
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

/// Nothing open and nothing to remember about the rate.
fn idle(e: &mut Entry, now: Instant) -> bool {
    e.open == 0 && e.bucket.as_mut().is_none_or(|b| b.is_full(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    fn v4(last: u8) -> IpKey {
        IpKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::of(a.into()), IpKey::of(b.into()));
        assert_ne!(IpKey::of(a.into()), IpKey::of(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(IpKey::of(mapped.into()), v4(7));
    }

    #[test]
    fn the_open_limit_counts_per_address_and_frees_on_release() {
        let t = PerIpTable::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.admit(v4(1), now, Some(3), None), Ok(true));
        }
        assert_eq!(t.admit(v4(1), now, Some(3), None), Err(IpRefusal::TooMany));
        assert_eq!(
            t.admit(v4(2), now, Some(3), None),
            Ok(true),
            "another address"
        );
        t.release(v4(1), now);
        assert_eq!(t.open(v4(1)), 2);
        assert_eq!(t.admit(v4(1), now, Some(3), None), Ok(true));
        for _ in 0..3 {
            t.release(v4(1), now);
        }
        t.release(v4(2), now);
        assert_eq!(t.entries(), 0, "nothing left to remember");
    }

    #[test]
    fn the_rate_refuses_a_fast_address_and_forgets_it_once_refilled() {
        let t = PerIpTable::default();
        let t0 = Instant::now();
        let rate = Some(RateLimit::per_second(2).burst(2));
        assert_eq!(t.admit(v4(1), t0, None, rate), Ok(true));
        assert_eq!(t.admit(v4(1), t0, None, rate), Ok(true));
        assert_eq!(t.admit(v4(1), t0, None, rate), Err(IpRefusal::TooFast));
        assert_eq!(
            t.admit(v4(3), t0, None, rate),
            Ok(true),
            "others unaffected"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(t.admit(v4(1), later, None, rate), Ok(true));
        for k in [v4(1), v4(1), v4(1), v4(3)] {
            t.release(k, later);
        }
        // v4(3)'s bucket is full again: forgotten; v4(1)'s is refilling:
        // remembered (a reconnect at once is still refused).
        assert_eq!(t.entries(), 1);
        assert_eq!(t.admit(v4(1), later, None, rate), Err(IpRefusal::TooFast));
        let full = later + Duration::from_secs(2);
        assert_eq!(t.admit(v4(1), full, None, rate), Ok(true));
        // Released once its token has come back: nothing left to remember.
        t.release(v4(1), full + Duration::from_secs(1));
        assert_eq!(t.entries(), 0);
    }

    #[test]
    fn a_full_stripe_sweeps_idle_entries_then_admits_untracked() {
        let t = PerIpTable::default();
        let now = Instant::now();
        let stripe = v4(1).stripe();
        // Fill one stripe with open connections from distinct addresses.
        let mut keys = Vec::new();
        let mut n = 0u32;
        while keys.len() < STRIPE_CAP {
            let k = IpKey::of(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)));
            n += 1;
            if k.stripe() == stripe {
                assert_eq!(t.admit(k, now, Some(1), None), Ok(true));
                keys.push(k);
            }
        }
        let mut extra = IpKey::of(IpAddr::V4(Ipv4Addr::from(0x0b00_0000)));
        let mut m = 0u32;
        while extra.stripe() != stripe || keys.contains(&extra) {
            m += 1;
            extra = IpKey::of(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + m)));
        }
        assert_eq!(t.admit(extra, now, Some(1), None), Ok(false), "untracked");
        t.release(keys[0], now);
        assert_eq!(t.admit(extra, now, Some(1), None), Ok(true), "room again");
    }
}
