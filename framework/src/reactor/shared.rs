//! What the shards of one server share with each other and with the
//! runtime's threads: their inboxes, published counters, settings, the
//! open-connection total, the stop flag, the loop marks, and what every
//! listener makes (protocols, transport layers). The runtime builds it and
//! keeps the threads; the reactor names nothing above itself to reach it.

use super::envelope::Inboxes;
use super::erased::FactoryMaker;
use super::layer::LayerMaker;
use crate::api::{ConnId, Settings, StatsBoard};
use crate::net::{Addr, Resolve, SocketOptions, SystemResolver, VirtualStream};
use crate::sync::marks::Activities;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static NEXT_SERVER_ID: AtomicUsize = AtomicUsize::new(0);

/// What every listener of a server makes, by listener index.
#[derive(Default)]
pub(crate) struct ListenerMakers {
    /// Each listener's protocol factory maker (one factory per shard).
    pub(crate) factories: Vec<FactoryMaker>,
    /// Each listener's transport layers (TLS, PROXY), if any.
    pub(crate) layers: Vec<Option<LayerMaker>>,
}

/// How outbound connections are made: socket options, and how host names
/// become addresses.
#[derive(Clone)]
pub(crate) struct Outbound {
    /// Socket options set before each connect.
    pub(crate) options: SocketOptions,
    /// Host names to addresses (on the worker pool).
    pub(crate) resolver: Arc<dyn Resolve>,
    /// How long a shard reuses an answer, and a failure.
    pub(crate) name_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    /// Happy Eyeballs' connection attempt delay (RFC 8305 §5).
    pub(crate) attempt_delay: Duration,
    /// Outbound connections through a simulated network instead of the
    /// kernel (the testing kit's `sim::World`); `None` in a real server.
    pub(crate) virtual_dial: Option<Arc<dyn VirtualDial>>,
}

/// Opens outbound connections over virtual streams: the simulation's
/// network, which says later (through readiness) whether they connected.
pub(crate) trait VirtualDial: Send + Sync {
    /// A stream for connection `id` to `to`, still connecting.
    fn dial(&self, id: ConnId, to: &Addr) -> std::io::Result<Box<dyn VirtualStream>>;
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            options: SocketOptions::default(),
            resolver: Arc::new(SystemResolver),
            name_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            attempt_delay: Duration::from_millis(250),
            virtual_dial: None,
        }
    }
}

pub(crate) struct Shared {
    /// Unique in the process: tells one server's shards from another's
    /// (tasks check it before touching a thread's shard).
    pub(crate) id: usize,
    pub(crate) inboxes: Inboxes,
    pub(crate) stats: StatsBoard,
    pub(crate) settings: ArcSwap<Settings>,
    /// Open connections over all shards (the acceptor's global limit).
    pub(crate) open_total: AtomicUsize,
    pub(crate) stopping: AtomicBool,
    /// Shards whose thread died (the acceptor skips them).
    pub(crate) dead: Box<[AtomicBool]>,
    pub(crate) listeners: ListenerMakers,
    /// How outbound connections are made.
    pub(crate) outbound: Outbound,
    /// Each shard's loop marks, for the watchdog.
    pub(crate) activity: Activities,
    /// The origin of the marks' timestamps.
    pub(crate) epoch: Instant,
    /// Connections per source address, for the per-address limits.
    pub(crate) per_ip: crate::limit::per_ip::PerIpTable,
    /// Whether (and how) shards move connections among themselves.
    pub(crate) rebalance: Option<super::migrate::Rebalance>,
    /// The shards run the completion backend (decided at start).
    pub(crate) uring: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        inboxes: Inboxes,
        settings: Settings,
        listeners: ListenerMakers,
        outbound: Outbound,
    ) -> Self {
        let shards = inboxes.len();
        Shared {
            id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
            inboxes,
            stats: StatsBoard::new(shards),
            settings: ArcSwap::from_pointee(settings),
            open_total: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            dead: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            listeners,
            outbound,
            activity: (0..shards)
                .map(|_| Default::default())
                .collect::<Vec<_>>()
                .into(),
            epoch: Instant::now(),
            per_ip: Default::default(),
            rebalance: None,
            uring: AtomicBool::new(false),
        }
    }

    /// `t` in nanoseconds since the server's epoch (for the loop marks).
    pub(crate) fn nanos_since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The runtime's handle on the server, carried by each shard for
/// [`ShardCtx::handle`](crate::ShardCtx::handle) without the reactor naming
/// the runtime: runtime/handle.rs gives it its type back.
pub(crate) type ServerHandle = Arc<dyn std::any::Any + Send + Sync>;
