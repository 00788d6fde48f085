//! A server's life as phases (Twisted's system event triggers), and the
//! signals that end it: SIGINT/SIGTERM stop gracefully, a second one stops
//! at once.

use super::handle::Handle;
use std::sync::Mutex;

/// When a trigger runs ([`ServerBuilder::on`](crate::ServerBuilder::on)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LifecyclePhase {
    /// Every thread has started (from `start`, on its caller's thread).
    AfterStartup,
    /// A stop was asked for; nothing has stopped yet (on the stopping thread).
    BeforeShutdown,
    /// The acceptor has stopped and the shards have been told to finish
    /// (after the drain delay, if one is set).
    DuringShutdown,
    /// Every server thread has exited (from `wait`, on its caller's thread).
    AfterShutdown,
}

/// A trigger: runs once, with the server's handle.
pub(crate) type Trigger = Box<dyn FnOnce(&Handle) + Send>;

/// Triggers waiting for their phase.
#[derive(Default)]
pub(crate) struct Triggers {
    pending: Mutex<Vec<(LifecyclePhase, Trigger)>>,
}

impl Triggers {
    pub(crate) fn new(list: Vec<(LifecyclePhase, Trigger)>) -> Self {
        Triggers {
            pending: Mutex::new(list),
        }
    }

    /// Runs (once) every trigger registered for `phase`, in registration
    /// order. A panicking trigger is logged; the others still run.
    pub(crate) fn fire(&self, phase: LifecyclePhase, handle: &Handle) {
        let due: Vec<Trigger> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let (due, rest): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(p, _)| *p == phase);
            *pending = rest;
            due.into_iter().map(|(_, f)| f).collect()
        };
        for f in due {
            // Unwind safety: a trigger owns its state and is consumed here.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(handle))).is_err() {
                tracing::error!(?phase, "lifecycle trigger panicked");
            }
        }
    }
}

/// Listens for SIGINT and SIGTERM until the server has stopped (the first
/// stops gracefully, a second one stops at once), and for SIGHUP, which
/// reloads (`Handle::reload`).
pub(crate) struct SignalWatch {
    close: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl SignalWatch {
    pub(crate) fn start(handle: Handle) -> std::io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let close = signals.handle();
        let thread = std::thread::Builder::new()
            .name(format!("{}signals", handle.thread_name_prefix()))
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        // A server must not die of SIGHUP (its default):
                        // it reloads what can be reloaded.
                        handle.reload();
                    } else if handle.is_stopping() {
                        tracing::warn!(signal, "second stop signal: stopping now");
                        handle.stop_now();
                    } else {
                        tracing::info!(signal, "stop signal: stopping gracefully");
                        handle.stop();
                    }
                }
            })?;
        Ok(SignalWatch { close, thread })
    }

    /// Stops listening (the server has stopped).
    pub(crate) fn finish(self) {
        self.close.close();
        let _ = self.thread.join();
    }
}
