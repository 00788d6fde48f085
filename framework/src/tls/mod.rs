//! TLS over any protocol, with `rustls` (the `ring` provider).
//!
//! TLS is a layer between the socket and the [`Protocol`](crate::Protocol):
//! the same echo, `LineReceiver` or HTTP protocol runs over plaintext or
//! TLS unchanged. A TLS connection's `connection_made` runs once the
//! handshake is done, [`Conn::tls_info`](crate::Conn::tls_info) says what
//! was negotiated, a graceful close sends `close_notify`, and the output cap
//! and backpressure count encrypted bytes. A failed or stalled handshake
//! ends with [`CloseReason::Tls`](crate::CloseReason::Tls) and is counted.
//!
//! - Server: a [`Listen`](crate::endpoint::Listen) with
//!   [`tls`](crate::endpoint::Listen::tls), or an endpoint
//!   `tls:port=8443:privateKey=key.pem:certKey=cert.pem`.
//! - Client: a [`Connect`](crate::endpoint::Connect) with
//!   [`tls`](crate::endpoint::Connect::tls) (for [`ShardCtx::connect`](crate::ShardCtx::connect),
//!   the reconnecting client or `ClientStream`), or an endpoint
//!   `tls:host=example.com:port=443:caCerts=ca.pem`.
//! - Upgrade: [`Conn::start_tls`](crate::Conn::start_tls) (Twisted's `startTLS`).
//!
//! ```no_run
//! use shardloop::endpoint::Listen;
//! use shardloop::tls::TlsServerConfig;
//! use shardloop::{Conn, Protocol, Server};
//! struct Echo;
//! impl Protocol for Echo {
//!     type Message = ();
//!     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
//!         conn.write(data);
//!     }
//! }
//! let tls = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?.build()?;
//! Server::builder()
//!     .listen(Listen::from("127.0.0.1:8443").tls(tls), |_| |_| Echo)
//!     .build()?
//!     .run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod conn;
mod info;
mod layer;
mod pem;
mod server;

pub use crate::api::TlsInfo;
pub use crate::error::TlsConfigError;
pub(crate) use client::server_name;
pub use client::{TlsClientConfig, TlsClientConfigBuilder};
pub use conn::StartTls;
pub(crate) use layer::TlsLayer;
pub use server::{TlsServerConfig, TlsServerConfigBuilder};

/// The crypto provider every config uses: `ring` (no C toolchain beyond a
/// compiler, no cmake).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
