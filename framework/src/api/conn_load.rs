//! How much of its shard one connection used: the time its callbacks and
//! tasks held the loop in one accounting window. Each shard keeps the
//! figure per connection (4 bytes), publishes its heaviest connections
//! once a window, and starts the next window at zero.

use super::ConnId;
use std::net::SocketAddr;
use std::time::Duration;

/// Connections a shard publishes per window, heaviest first.
pub(crate) const HEAVIEST_PER_SHARD: usize = 8;
/// The accounting window.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// One of a shard's heaviest connections in its last window.
///
/// ```no_run
/// # fn f(handle: shardloop::Handle) {
/// for c in handle.stats().heaviest_connections {
///     println!("{} from {:?}: {:.0} % of its shard", c.conn, c.peer, c.share() * 100.0);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnLoad {
    /// The connection (its shard is `conn.shard()`).
    pub conn: ConnId,
    /// Its peer's address (the one a trusted PROXY header gave, if any);
    /// `None` for a Unix-socket peer.
    pub peer: Option<SocketAddr>,
    /// The time its read callbacks and its tasks held the shard in the window.
    pub busy: Duration,
    /// The window's length.
    pub window: Duration,
}

impl ConnLoad {
    /// The share of its shard's time the connection took (0 to 1).
    pub fn share(&self) -> f64 {
        if self.window.is_zero() {
            0.0
        } else {
            (self.busy.as_secs_f64() / self.window.as_secs_f64()).min(1.0)
        }
    }
}
