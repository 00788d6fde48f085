//! A cap on work in progress on one shard (tower's `ConcurrencyLimit`, for
//! a shard's protocols): a permit per unit of work, given back when dropped.

use std::cell::Cell;
use std::rc::Rc;

/// At most `max` permits out at once, shared by the protocols of one shard
/// (keep it in a shard service, `ShardCtx::service`). Not `Send`: a shard's
/// limit lives on its shard.
///
/// ```
/// use shardloop::limit::ConcurrencyLimit;
/// let limit = ConcurrencyLimit::new(2);
/// let a = limit.try_acquire().unwrap();
/// let _b = limit.try_acquire().unwrap();
/// assert!(limit.try_acquire().is_none()); // answer "busy", or queue
/// drop(a);
/// assert_eq!(limit.available(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    max: usize,
    used: Rc<Cell<usize>>,
}

/// One unit of work in progress; dropping it gives it back.
#[derive(Debug)]
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit {
    used: Rc<Cell<usize>>,
}

impl ConcurrencyLimit {
    /// At most `max` permits at once.
    pub fn new(max: usize) -> Self {
        ConcurrencyLimit {
            max,
            used: Rc::new(Cell::new(0)),
        }
    }

    /// A permit, or `None` when `max` are out.
    pub fn try_acquire(&self) -> Option<Permit> {
        let used = self.used.get();
        if used >= self.max {
            return None;
        }
        self.used.set(used + 1);
        Some(Permit {
            used: self.used.clone(),
        })
    }

    /// Permits out now.
    pub fn in_use(&self) -> usize {
        self.used.get()
    }

    /// Permits that can be taken now.
    pub fn available(&self) -> usize {
        self.max.saturating_sub(self.used.get())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.used.set(self.used.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_come_back_when_dropped_and_clones_share_the_count() {
        let l = ConcurrencyLimit::new(3);
        let other = l.clone();
        let permits: Vec<_> = (0..5).filter_map(|_| l.try_acquire()).collect();
        assert_eq!(permits.len(), 3);
        assert!(other.try_acquire().is_none());
        assert_eq!((l.in_use(), other.available()), (3, 0));
        drop(permits);
        assert_eq!((l.in_use(), l.available()), (0, 3));
    }
}
