//! Why a connection ended.

use std::fmt;
use std::io;

/// Why a connection ended; passed to [`Protocol::connection_lost`](crate::Protocol::connection_lost).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We closed it with [`Conn::close`](crate::Conn::close): all output was written, then FIN sent.
    Done,
    /// The peer closed its side (EOF) and we closed ours after flushing.
    PeerClosed,
    /// We aborted it with [`Conn::abort`](crate::Conn::abort): pending output dropped, RST sent.
    Aborted,
    /// A socket error, such as a reset by the peer.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error as text.
        message: String,
    },
    /// Nothing was received for the idle timeout (output was still flushed).
    IdleTimeout,
    /// A callback of this connection's protocol panicked; the connection was aborted.
    CallbackPanic,
    /// The server stopped: the connection was closed gracefully, or aborted
    /// when the stop deadline passed.
    ServerStopped,
    /// The protocol closed the connection because the peer broke its rules
    /// (a line too long, a malformed frame); output was still flushed.
    ProtocolError(String),
    /// A graceful close did not finish flushing within the close timeout
    /// (the peer stopped reading); the connection was aborted.
    CloseTimeout,
    /// A write came while the peer still left more than `max_output_buffer`
    /// bytes unread from earlier iterations (a peer that does not read);
    /// the connection was aborted.
    OutputOverflow,
    /// The protocol's read deadline passed without the progress it waited
    /// for (a complete request, say); output was still flushed.
    ReadTimeout,
    /// The TLS layer failed: the handshake was refused or timed out, a
    /// record did not decrypt, or the peer ended the stream without
    /// `close_notify`. Any alert was sent before the close.
    Tls(TlsFailure),
}

/// How a TLS connection failed (inside [`CloseReason::Tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The handshake failed; the text names the cause (the alert received
    /// or sent, a certificate that did not verify, no shared protocol…).
    Handshake(String),
    /// The handshake did not finish within `Settings::tls_handshake_timeout`.
    HandshakeTimeout,
    /// After the handshake, a record was malformed or did not decrypt, or
    /// the peer sent a fatal alert.
    Protocol(String),
    /// The peer closed the TCP stream without `close_notify`: what it sent
    /// may have been cut short by an attacker.
    Truncated,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Handshake(why) => write!(f, "TLS handshake failed: {why}"),
            TlsFailure::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            TlsFailure::Protocol(why) => write!(f, "TLS error: {why}"),
            TlsFailure::Truncated => f.write_str("TLS stream ended without close_notify"),
        }
    }
}

impl CloseReason {
    pub(crate) fn io(e: &io::Error) -> Self {
        CloseReason::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// True for a close where no output was lost (`Done`, `PeerClosed`,
    /// `IdleTimeout`, `ReadTimeout`, and a graceful `ServerStopped`).
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            CloseReason::Done
                | CloseReason::PeerClosed
                | CloseReason::IdleTimeout
                | CloseReason::ReadTimeout
                | CloseReason::ServerStopped
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Done => f.write_str("closed"),
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Aborted => f.write_str("aborted"),
            CloseReason::Io { message, .. } => write!(f, "I/O error: {message}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::CallbackPanic => f.write_str("protocol callback panicked"),
            CloseReason::ServerStopped => f.write_str("server stopped"),
            CloseReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
            CloseReason::CloseTimeout => f.write_str("close timed out flushing output"),
            CloseReason::OutputOverflow => f.write_str("output buffer limit exceeded"),
            CloseReason::ReadTimeout => f.write_str("read timeout"),
            CloseReason::Tls(why) => why.fmt(f),
        }
    }
}
