//! Addresses of connections across the whole server.

use std::fmt;

/// Identifies one connection: the shard that owns it, its slot in that shard's
/// connection table, and a generation that is unique per shard. A message or
/// timer addressed to a closed connection finds a different generation in the
/// slot and is dropped, never delivered to the newer connection that reuses it.
///
/// ```
/// use shardloop::ConnId;
/// let id = ConnId::new(2, 17, 5);
/// assert_eq!(id.shard(), 2);
/// assert_eq!(id.to_string(), "2:17#5");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    shard: u16,
    slot: u32,
    generation: u32,
}

impl ConnId {
    /// Builds an id from its parts (useful in tests with the fake transport).
    pub const fn new(shard: u16, slot: u32, generation: u32) -> Self {
        ConnId {
            shard,
            slot,
            generation,
        }
    }

    /// Index of the owning shard.
    pub fn shard(&self) -> usize {
        self.shard as usize
    }

    /// Slot in the owning shard's connection table.
    pub fn slot(&self) -> usize {
        self.slot as usize
    }

    /// Generation: distinguishes connections that reuse a slot.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}#{}", self.shard, self.slot, self.generation)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({self})")
    }
}
