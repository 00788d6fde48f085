//! Settings that can change while the server runs (through `arc-swap`).

use std::time::Duration;

/// Per-connection and per-shard limits that a running server picks up on its
/// next loop iteration after [`Handle::update_settings`](crate::Handle::update_settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Close a connection that has received nothing for this long
    /// (reason [`CloseReason::IdleTimeout`](crate::CloseReason::IdleTimeout)).
    /// Applies to connections accepted after the change; a protocol can set
    /// its own with [`Conn::set_idle_timeout`](crate::Conn::set_idle_timeout).
    pub idle_timeout: Option<Duration>,
    /// Bytes read from one connection per loop iteration before the shard
    /// moves on to other connections (fairness); the rest is read next turn.
    pub max_read_per_iteration: usize,
    /// Output bytes buffered for a connection at which its protocol gets
    /// `pause_producing`.
    pub high_water_mark: usize,
    /// Output bytes at or below which a paused protocol gets `resume_producing`.
    pub low_water_mark: usize,
    /// A callback that holds the loop longer than this is counted as slow
    /// and logged: it delays every other connection on the shard.
    pub slow_callback_threshold: Duration,
    /// Output bytes a peer may leave unread. A write is refused, and the
    /// connection aborted with
    /// [`CloseReason::OutputOverflow`](crate::CloseReason::OutputOverflow),
    /// when more than this was still unsent at the end of the previous loop
    /// iteration: the peer is not reading what it was sent. What one
    /// iteration writes is accepted at any size, so a reply of any size
    /// streams to a peer that reads (Redis serves 512 MB values). Above
    /// `high_water_mark` the shard stops reading from the peer and
    /// [`Conn::is_writable`](crate::Conn::is_writable) turns false, so a
    /// protocol that honours it (the framing module's do) produces one
    /// reply past the mark at most; a peer that never reads then costs this
    /// cap plus one iteration's output.
    pub max_output_buffer: usize,
    /// How long a graceful close may take to flush its output; a peer that
    /// stops reading is then aborted with
    /// [`CloseReason::CloseTimeout`](crate::CloseReason::CloseTimeout).
    pub close_timeout: Duration,
    /// A shard whose loop has not come back to its poll for this long is
    /// reported by the watchdog while it is stuck (`Handle::stalls`).
    pub stall_threshold: Duration,
    /// After a graceful close has sent FIN, how long the shard keeps
    /// draining the peer's unread input before closing the socket (closing
    /// with unread input would send RST and could destroy data in flight).
    pub close_linger: Duration,
    /// Connections one shard holds at most; further ones handed to it are
    /// closed at once and counted as rejected.
    pub max_connections_per_shard: usize,
    /// Bus messages a shard drains per loop iteration before serving I/O again.
    pub max_bus_messages_per_iteration: usize,
    /// Task polls a shard runs per loop iteration before serving I/O again
    /// (tasks still ready then run in the next iteration).
    pub max_task_polls_per_iteration: usize,
    /// How long a TLS handshake may take, from accept (or connect, or
    /// `start_tls`) to its end; a peer that stalls is closed with
    /// [`TlsFailure::HandshakeTimeout`](crate::TlsFailure::HandshakeTimeout).
    pub tls_handshake_timeout: Duration,
    /// How long a client may take to send its PROXY protocol header on a
    /// listener that requires one.
    pub proxy_header_timeout: Duration,
    /// Accepted connections one source address may hold open at once,
    /// across every shard (`None`: no limit). IPv6 addresses count per /64.
    /// The address is the one a trusted PROXY header gives, else the
    /// peer's. A connection past the limit is closed (RST) before
    /// `connection_made`, counted in
    /// `shardloop_connections_refused_total{reason="per_ip_connections"}`.
    pub max_connections_per_ip: Option<u32>,
    /// How fast one source address may open connections (a token bucket
    /// per address, across every shard; `None`: no limit). Refusals are
    /// counted as `reason="per_ip_rate"`.
    pub connection_rate_per_ip: Option<crate::limit::RateLimit>,
    /// On the io_uring backend, a send of at least this many bytes (one
    /// iteration's output of a connection) goes without a copy into the
    /// kernel (`SENDMSG_ZC`, Linux 6.1); its bytes are kept until the
    /// kernel's notification that it is done with them, so they cost
    /// memory for a round trip longer. `None`: every send copies. The
    /// kernel copies anyway for a local peer (loopback): a connection
    /// whose zero-copy send was copied sends by copy from then on. The
    /// epoll backend always copies.
    pub zero_copy_threshold: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: None,
            max_read_per_iteration: 256 * 1024,
            high_water_mark: 1024 * 1024,
            low_water_mark: 256 * 1024,
            slow_callback_threshold: Duration::from_millis(50),
            max_output_buffer: 4 * 1024 * 1024,
            close_timeout: Duration::from_secs(30),
            stall_threshold: Duration::from_millis(100),
            close_linger: Duration::from_secs(2),
            max_connections_per_shard: 1 << 20,
            max_bus_messages_per_iteration: 4096,
            max_task_polls_per_iteration: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            proxy_header_timeout: Duration::from_secs(5),
            max_connections_per_ip: None,
            connection_rate_per_ip: None,
            // Below ~10 KB, pinning pages costs more than copying them
            // (the kernel's MSG_ZEROCOPY notes); a reply this large gains.
            zero_copy_threshold: Some(64 * 1024),
        }
    }
}

impl Settings {
    /// Checks the relations between fields.
    pub fn validate(&self) -> Result<(), String> {
        if self.low_water_mark > self.high_water_mark {
            return Err(format!(
                "low_water_mark ({}) must not exceed high_water_mark ({})",
                self.low_water_mark, self.high_water_mark
            ));
        }
        if self.max_output_buffer < self.high_water_mark {
            return Err(format!(
                "max_output_buffer ({}) must be at least high_water_mark ({})",
                self.max_output_buffer, self.high_water_mark
            ));
        }
        if self.max_read_per_iteration == 0 {
            return Err("max_read_per_iteration must be at least 1".into());
        }
        if self.max_task_polls_per_iteration == 0 {
            return Err("max_task_polls_per_iteration must be at least 1".into());
        }
        if self.max_bus_messages_per_iteration == 0 {
            return Err("max_bus_messages_per_iteration must be at least 1".into());
        }
        if self.zero_copy_threshold == Some(0) {
            return Err("zero_copy_threshold must be at least 1 (None: never)".into());
        }
        if self.max_connections_per_ip == Some(0) {
            return Err("max_connections_per_ip must be at least 1 (None: no limit)".into());
        }
        Ok(())
    }
}
