//! Hierarchical timer wheel: one per shard, millisecond ticks.
//!
//! Four levels of 64 slots cover 64⁴ ms (about 4.6 hours); deadlines further
//! out wait in an overflow list and are moved into the wheel when the wheel's
//! top-level window reaches them, so any `u64` deadline works.
//!
//! Entries live in one slab and are chained into per-slot doubly linked lists
//! by index, so insert, cancel and reschedule are O(1) and allocation-free
//! once the slab has grown. Each level keeps a 64-bit occupancy mask, so
//! advancing over a long idle gap costs a few bit scans, not one step per
//! millisecond.
//!
//! Timers due at the same millisecond fire in insertion order, which is the
//! order a `BinaryHeap` keyed by `(deadline, sequence)` would give; the
//! property tests check exactly that.
//!
//! ```
//! use shardloop::timer_wheel::TimerWheel;
//! let mut wheel = TimerWheel::new(0);
//! let a = wheel.insert(10, "a");
//! let _b = wheel.insert(5, "b");
//! assert_eq!(wheel.cancel(a), Some("a"));
//! let mut fired = Vec::new();
//! // The earliest deadline fired: 95 ticks late at tick 100.
//! assert_eq!(wheel.advance(100, &mut fired), Some(5));
//! assert_eq!(fired.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec!["b"]);
//! ```

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = (SLOTS as u64) - 1;
const LEVELS: usize = 4;
/// Span of the wheel proper, in ticks. Deadlines whose top-level window is
/// beyond the current one go to the overflow list.
pub const WHEEL_SPAN: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);

const NIL: u32 = u32::MAX;

/// Identifies one scheduled timer. Carries a generation so a handle to a timer
/// that already fired or was cancelled never touches a newer timer that reuses
/// the same slab slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(super) index: u32,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Free,
    Wheel { level: u8, slot: u8 },
    Overflow,
}

struct Entry<T> {
    deadline: u64,
    seq: u64,
    prev: u32,
    next: u32,
    generation: u32,
    location: Location,
    value: Option<T>,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

struct Level {
    occupied: u64,
    slots: [List; SLOTS],
}

/// A hierarchical timer wheel holding values of type `T`.
pub struct TimerWheel<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    levels: [Level; LEVELS],
    overflow: List,
    /// Earliest top-level window start among overflow entries.
    overflow_window: u64,
    elapsed: u64,
    next_seq: u64,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock starts at `now` (in ticks).
    pub fn new(now: u64) -> Self {
        TimerWheel {
            entries: Vec::new(),
            free_head: NIL,
            levels: std::array::from_fn(|_| Level {
                occupied: 0,
                slots: [List::EMPTY; SLOTS],
            }),
            overflow: List::EMPTY,
            overflow_window: u64::MAX,
            elapsed: now,
            next_seq: 0,
            len: 0,
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wheel's current time in ticks (the last `advance` target).
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// Schedules `value` at `deadline` (ticks). A deadline in the past fires
    /// on the next `advance`.
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerId {
        let deadline = deadline.max(self.elapsed);
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = self.alloc(Entry {
            deadline,
            seq,
            prev: NIL,
            next: NIL,
            generation: 0,
            location: Location::Free,
            value: Some(value),
        });
        self.link(index);
        self.len += 1;
        TimerId {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Cancels a pending timer, returning its value; `None` if it already
    /// fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        if !self.is_live(id) {
            return None;
        }
        self.unlink(id.index);
        self.len -= 1;
        let value = self.entries[id.index as usize].value.take();
        self.release(id.index);
        value
    }

    /// Moves a pending timer to a new deadline in O(1). It then orders as if
    /// newly inserted. Returns false if the timer is no longer pending.
    pub fn reschedule(&mut self, id: TimerId, deadline: u64) -> bool {
        if !self.is_live(id) {
            return false;
        }
        self.unlink(id.index);
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = &mut self.entries[id.index as usize];
        entry.deadline = deadline.max(self.elapsed);
        entry.seq = seq;
        self.link(id.index);
        true
    }

    /// Deadline of a pending timer.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        self.is_live(id)
            .then(|| self.entries[id.index as usize].deadline)
    }

    /// The earliest tick at which something may need to fire: exact for
    /// timers in the wheel's lowest level, a lower bound otherwise (a slot
    /// start to cascade, or an overflow window). Use it as a poll timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        self.next_expiration().map(|e| e.deadline)
    }

    /// Advances the clock to `now`, appending every timer due at or before
    /// `now` to `fired`, ordered by deadline then insertion order. Returns
    /// the deadline of the earliest timer it fired (`now` minus it is how
    /// late the batch fires: the shard's loop-lag figure), `None` if none.
    pub fn advance(&mut self, now: u64, fired: &mut Vec<(TimerId, T)>) -> Option<u64> {
        if now < self.elapsed {
            return None;
        }
        let mut earliest = None;
        let mut due: Vec<u32> = Vec::new();
        while let Some(exp) = self.next_expiration() {
            if exp.deadline > now {
                break;
            }
            self.elapsed = exp.deadline;
            match exp.kind {
                ExpKind::Slot { level, slot } => {
                    let list = std::mem::replace(&mut self.levels[level].slots[slot], List::EMPTY);
                    self.levels[level].occupied &= !(1u64 << slot);
                    let mut cur = list.head;
                    if level == 0 {
                        // Slots expire in deadline order: the first level-0
                        // slot is the earliest deadline (exact: one tick).
                        earliest = earliest.or(Some(exp.deadline));
                        due.clear();
                        while cur != NIL {
                            due.push(cur);
                            cur = self.entries[cur as usize].next;
                        }
                        // Entries reach a slot by cascading as well as by direct
                        // insertion, so list order is not insertion order.
                        due.sort_unstable_by_key(|&i| self.entries[i as usize].seq);
                        for &i in &due {
                            let e = &mut self.entries[i as usize];
                            e.location = Location::Free;
                            let id = TimerId {
                                index: i,
                                generation: e.generation,
                            };
                            let value = e.value.take().expect("pending timer holds a value");
                            self.release(i);
                            self.len -= 1;
                            fired.push((id, value));
                        }
                    } else {
                        while cur != NIL {
                            let next = self.entries[cur as usize].next;
                            self.link(cur);
                            cur = next;
                        }
                    }
                }
                ExpKind::Overflow => {
                    let list = std::mem::replace(&mut self.overflow, List::EMPTY);
                    self.overflow_window = u64::MAX;
                    let mut cur = list.head;
                    while cur != NIL {
                        let next = self.entries[cur as usize].next;
                        self.link(cur);
                        cur = next;
                    }
                }
            }
        }
        self.elapsed = now;
        earliest
    }

    fn is_live(&self, id: TimerId) -> bool {
        match self.entries.get(id.index as usize) {
            Some(e) => e.generation == id.generation && e.location != Location::Free,
            None => false,
        }
    }

    fn alloc(&mut self, mut entry: Entry<T>) -> u32 {
        if self.free_head != NIL {
            let index = self.free_head;
            let slot = &mut self.entries[index as usize];
            self.free_head = slot.next;
            entry.generation = slot.generation;
            *slot = entry;
            index
        } else {
            let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 timers");
            assert!(index != NIL, "timer wheel full");
            self.entries.push(entry);
            index
        }
    }

    fn release(&mut self, index: u32) {
        let e = &mut self.entries[index as usize];
        e.location = Location::Free;
        e.generation = e.generation.wrapping_add(1);
        e.value = None;
        e.prev = NIL;
        e.next = self.free_head;
        self.free_head = index;
    }

    /// Places entry `index` (already holding its deadline) in the right list.
    fn link(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let masked = (self.elapsed ^ deadline) | SLOT_MASK;
        let list = if masked >= WHEEL_SPAN {
            let window = deadline & !(WHEEL_SPAN - 1);
            self.overflow_window = self.overflow_window.min(window);
            self.entries[index as usize].location = Location::Overflow;
            &mut self.overflow
        } else {
            let significant = 63 - masked.leading_zeros();
            let level = (significant / SLOT_BITS) as usize;
            let slot = ((deadline >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as usize;
            self.entries[index as usize].location = Location::Wheel {
                level: level as u8,
                slot: slot as u8,
            };
            self.levels[level].occupied |= 1u64 << slot;
            &mut self.levels[level].slots[slot]
        };
        let tail = list.tail;
        if tail == NIL {
            list.head = index;
        }
        list.tail = index;
        let e = &mut self.entries[index as usize];
        e.prev = tail;
        e.next = NIL;
        if tail != NIL {
            self.entries[tail as usize].next = index;
        }
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, location) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.location)
        };
        let list = match location {
            Location::Free => return,
            Location::Overflow => &mut self.overflow,
            Location::Wheel { level, slot } => {
                &mut self.levels[level as usize].slots[slot as usize]
            }
        };
        if prev == NIL {
            list.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if let Location::Wheel { level, slot } = location {
            let list = self.levels[level as usize].slots[slot as usize];
            if list.head == NIL {
                self.levels[level as usize].occupied &= !(1u64 << slot);
            }
        } else if self.overflow.head == NIL {
            self.overflow_window = u64::MAX;
        }
        let e = &mut self.entries[index as usize];
        e.prev = NIL;
        e.next = NIL;
        e.location = Location::Free;
    }

    fn next_expiration(&self) -> Option<Expiration> {
        for (level, lv) in self.levels.iter().enumerate() {
            if lv.occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) & SLOT_MASK) as u32;
            let distance = lv.occupied.rotate_right(now_slot).trailing_zeros();
            let slot = (now_slot + distance) as usize % SLOTS;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let level_start = self.elapsed & !(level_range - 1);
            let deadline = level_start + slot as u64 * slot_range;
            // By construction every entry of a level sits in the level's
            // current window at or after `elapsed`'s slot, and no higher level
            // holds anything earlier than a lower level's next slot.
            return Some(Expiration {
                deadline: deadline.max(self.elapsed),
                kind: ExpKind::Slot { level, slot },
            });
        }
        if self.overflow.head != NIL {
            return Some(Expiration {
                deadline: self.overflow_window.max(self.elapsed),
                kind: ExpKind::Overflow,
            });
        }
        None
    }
}

struct Expiration {
    deadline: u64,
    kind: ExpKind,
}

enum ExpKind {
    Slot { level: usize, slot: usize },
    Overflow,
}
