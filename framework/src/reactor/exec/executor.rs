//! The shard-local executor's data: tasks in a slab (`!Send` futures, never
//! leave their shard), their wakers, and the queue of tasks to poll.

use super::local::{self, LocalFuture};
use crate::api::ConnId;
use crate::reactor::{Envelope, Inboxes};
use slab::Slab;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

/// A task on a shard: slot and generation, so a wake-up for a finished task
/// never polls a newer one that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TaskId {
    slot: u32,
    generation: u32,
}

struct TaskWaker {
    server: usize,
    shard: usize,
    id: TaskId,
    inboxes: Inboxes,
    /// A wake-up from another thread is on the bus and not yet taken:
    /// more wake-ups until then add nothing (one bus message per task at
    /// most, however often a thread outside wakes it).
    on_bus: Arc<AtomicBool>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // On the task's own shard: a push onto its ready list. From anywhere
        // else: a bus message, which wakes the shard only if it is parked.
        let local = local::with_shard(self.server, self.shard, |l| l.ready.push(self.id));
        if local.is_none() && !self.on_bus.swap(true, Ordering::AcqRel) {
            if let Some(inbox) = self.inboxes.get(self.shard) {
                inbox.send(Envelope::Wake(self.id));
            }
        }
    }
}

pub(crate) struct Task {
    generation: u32,
    /// Taken out while it is polled.
    future: Option<LocalFuture>,
    waker: Waker,
    /// Its waker's flag: a wake-up from another thread is on the bus.
    on_bus: Arc<AtomicBool>,
    /// The connection it belongs to (dropped when that connection ends).
    pub(crate) conn: Option<ConnId>,
}

/// Every task of one shard.
pub(crate) struct Tasks {
    server: usize,
    shard: usize,
    inboxes: Inboxes,
    slab: Slab<Task>,
    next_generation: u32,
    /// Tasks to poll, in wake-up order.
    pub(crate) queue: VecDeque<TaskId>,
}

impl Tasks {
    pub(crate) fn new(server: usize, shard: usize, inboxes: Inboxes) -> Self {
        Tasks {
            server,
            shard,
            inboxes,
            slab: Slab::new(),
            next_generation: 0,
            queue: VecDeque::new(),
        }
    }

    /// Adds a task; it is polled in this loop iteration.
    pub(crate) fn spawn(&mut self, future: LocalFuture, conn: Option<ConnId>) -> TaskId {
        let entry = self.slab.vacant_entry();
        let id = TaskId {
            slot: entry.key() as u32,
            generation: self.next_generation,
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let on_bus = Arc::new(AtomicBool::new(false));
        let waker = Waker::from(Arc::new(TaskWaker {
            server: self.server,
            shard: self.shard,
            id,
            inboxes: self.inboxes.clone(),
            on_bus: on_bus.clone(),
        }));
        entry.insert(Task {
            generation: id.generation,
            future: Some(future),
            waker,
            on_bus,
            conn,
        });
        self.queue.push_back(id);
        id
    }

    /// Takes a live task's future out to poll it, with its waker.
    pub(crate) fn take(&mut self, id: TaskId) -> Option<(LocalFuture, Waker, Option<ConnId>)> {
        let t = self.slab.get_mut(id.slot as usize)?;
        if t.generation != id.generation {
            return None;
        }
        let f = t.future.take()?;
        Some((f, t.waker.clone(), t.conn))
    }

    /// Puts a pending task's future back (unless the task was cancelled
    /// while it ran).
    pub(crate) fn put_back(&mut self, id: TaskId, future: LocalFuture) {
        if let Some(t) = self.slab.get_mut(id.slot as usize) {
            if t.generation == id.generation {
                t.future = Some(future);
            }
        }
    }

    /// Removes a task (finished, panicked, or cancelled): its future is
    /// dropped here, so its destructors run on its shard.
    pub(crate) fn remove(&mut self, id: TaskId) -> bool {
        match self.slab.get(id.slot as usize) {
            Some(t) if t.generation == id.generation => {
                self.slab.remove(id.slot as usize);
                true
            }
            _ => false,
        }
    }

    /// A wake-up from another thread arrived: the task is ready, and the
    /// next such wake-up goes on the bus again (cleared before the poll,
    /// so a wake-up during it is never lost).
    pub(crate) fn woken_from_bus(&mut self, id: TaskId) {
        if let Some(t) = self.slab.get(id.slot as usize) {
            if t.generation == id.generation {
                t.on_bus.store(false, Ordering::Release);
                self.queue.push_back(id);
            }
        }
    }

    /// True while the task exists.
    pub(crate) fn contains(&self, id: TaskId) -> bool {
        self.slab
            .get(id.slot as usize)
            .is_some_and(|t| t.generation == id.generation)
    }

    /// Tasks alive on this shard.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }
}
