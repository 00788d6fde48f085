//! The shard-local executor's data: tasks in a slab (`!Send` futures, never
//! leave their shard), their wakers, and the queue of tasks to poll.

use super::local::{self, LocalFuture};
use crate::api::ConnId;
use crate::reactor::{Envelope, Inboxes};
use slab::Slab;
use std::collections::VecDeque;
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
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // On the task's own shard: a push onto its ready list. From anywhere
        // else: a bus message, which wakes the shard only if it is parked.
        let local = local::with_shard(self.server, self.shard, |l| l.ready.push(self.id));
        if local.is_none() {
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
        let waker = Waker::from(Arc::new(TaskWaker {
            server: self.server,
            shard: self.shard,
            id,
            inboxes: self.inboxes.clone(),
        }));
        entry.insert(Task {
            generation: id.generation,
            future: Some(future),
            waker,
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
