//! Why a TLS configuration could not be built.

use std::io;
use std::path::PathBuf;

/// A TLS configuration error; each names the file or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A PEM file is malformed.
    #[error("{what}: malformed PEM: {message}")]
    Pem {
        /// The file (or "inline PEM").
        what: String,
        /// The parser's message.
        message: String,
    },
    /// A certificate file holds no certificate.
    #[error("{0}: no CERTIFICATE block found")]
    NoCertificate(String),
    /// A key file holds no private key.
    #[error("{0}: no PRIVATE KEY block found (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey(String),
    /// rustls refused the certificate, key or settings (a key that does
    /// not match the certificate, an unsupported key type, …).
    #[error("{context}: {source}")]
    Rustls {
        /// What was being set up.
        context: String,
        /// rustls' error.
        source: rustls::Error,
    },
    /// A setting is invalid (an empty ALPN name, a server name that is not
    /// a DNS name or IP address, …).
    #[error("{0}")]
    Invalid(String),
}
