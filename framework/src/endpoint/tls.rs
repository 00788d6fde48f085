//! The TLS parts of endpoint descriptions, Twisted-style:
//! `tls:port=8443:privateKey=key.pem:certKey=cert.pem:alpn=h2,http/1.1:caCerts=clients.pem`
//! for servers (`ssl:` is an alias) and
//! `tls:host=example.com:port=443:caCerts=ca.pem` for clients. The files are
//! read when the server is built (or the client config loaded), so a bad
//! file is reported with its name.

use crate::tls::{TlsClientConfig, TlsConfigError, TlsServerConfig};
use std::path::PathBuf;

/// A TLS listener's settings, as an endpoint string gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsServerSpec {
    /// `privateKey=`: the private key PEM file.
    pub private_key: PathBuf,
    /// `certKey=`: the certificate chain PEM file (default: the key file).
    pub cert_key: PathBuf,
    /// `alpn=h2,http/1.1`: ALPN protocols, most preferred first.
    pub alpn: Vec<String>,
    /// `caCerts=`: verify client certificates against these CAs (mTLS).
    pub ca_certs: Option<PathBuf>,
    /// `clientAuth=optional`: with `caCerts`, allow clients without one.
    pub client_auth_optional: bool,
}

impl TlsServerSpec {
    /// Reads the files and builds the configuration.
    pub fn load(&self) -> Result<TlsServerConfig, TlsConfigError> {
        let mut b = TlsServerConfig::from_pem_files(&self.cert_key, &self.private_key)?
            .alpn(&self.alpn)
            .client_auth_optional(self.client_auth_optional);
        if let Some(ca) = &self.ca_certs {
            b = b.client_ca_file(ca)?;
        }
        b.build()
    }
}

/// An outbound TLS connection's settings, as an endpoint string gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsClientSpec {
    /// `caCerts=`: trust these CAs (default: the system's).
    pub ca_certs: Option<PathBuf>,
    /// `insecure=true`: accept any certificate (tests only).
    pub insecure: bool,
    /// `alpn=`: ALPN protocols, most preferred first.
    pub alpn: Vec<String>,
    /// `certKey=` and `privateKey=`: a client certificate for mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `sni=`: the name to verify and send (default: `host`).
    pub server_name: Option<String>,
}

impl TlsClientSpec {
    /// Reads the files and builds the configuration.
    pub fn load(&self) -> Result<TlsClientConfig, TlsConfigError> {
        let mut b = TlsClientConfig::builder().alpn(&self.alpn);
        b = match (&self.ca_certs, self.insecure) {
            (_, true) => b.insecure_skip_verify(),
            (Some(ca), false) => b.ca_file(ca)?,
            (None, false) => b.system_roots()?,
        };
        if let Some((cert, key)) = &self.client_cert {
            b = b.client_cert_pem_files(cert, key)?;
        }
        b.build()
    }
}

pub(super) fn alpn_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
