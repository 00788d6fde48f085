//! Server-side TLS configuration: certificate and key, ALPN, client
//! certificates (mTLS), and reloading the certificate while running.

use super::pem::{self, describe, read_file};
use super::{provider, TlsConfigError};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

/// A listener's TLS settings. Cheap to clone: clones share the certificate,
/// so [`reload_pem_files`](TlsServerConfig::reload_pem_files) on any clone
/// changes what every new handshake presents, without a restart.
///
/// ```no_run
/// use shardloop::tls::TlsServerConfig;
/// let tls = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?
///     .alpn(["h2", "http/1.1"])
///     .client_ca_file("clients-ca.pem")?
///     .build()?;
/// // Later, after certbot renewed the files (say, on SIGHUP):
/// tls.reload_pem_files("cert.pem", "key.pem")?;
/// # Ok::<(), shardloop::tls::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct TlsServerConfig {
    config: Arc<rustls::ServerConfig>,
    cert: Option<Arc<ReloadableCert>>,
}

impl std::fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("alpn", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TlsServerConfig`].
pub struct TlsServerConfigBuilder {
    key: Arc<CertifiedKey>,
    alpn: Vec<Vec<u8>>,
    client_roots: Option<rustls::RootCertStore>,
    client_auth_optional: bool,
}

impl TlsServerConfig {
    /// Starts from a certificate chain (leaf first) and its private key,
    /// both PEM.
    pub fn from_pem(
        cert_chain: &[u8],
        key: &[u8],
    ) -> Result<TlsServerConfigBuilder, TlsConfigError> {
        let key = certified_key(cert_chain, "certificate PEM", key, "key PEM")?;
        Ok(TlsServerConfigBuilder::new(key))
    }

    /// Starts from PEM files: the certificate chain (leaf first) and the
    /// private key (PKCS#8, PKCS#1 or SEC1). They may be the same file.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsServerConfigBuilder, TlsConfigError> {
        let key = certified_key_from_files(cert_chain.as_ref(), key.as_ref())?;
        Ok(TlsServerConfigBuilder::new(key))
    }

    /// Uses a rustls configuration as it is (no reloading through
    /// [`reload_pem_files`](TlsServerConfig::reload_pem_files)).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        TlsServerConfig { config, cert: None }
    }

    /// Replaces the certificate and key for every handshake from now on;
    /// connections already made keep theirs. On error nothing changes.
    pub fn reload_pem_files(
        &self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<(), TlsConfigError> {
        let key = certified_key_from_files(cert_chain.as_ref(), key.as_ref())?;
        self.swap(key)
    }

    /// Like [`reload_pem_files`](TlsServerConfig::reload_pem_files), from PEM in memory.
    pub fn reload_pem(&self, cert_chain: &[u8], key: &[u8]) -> Result<(), TlsConfigError> {
        let key = certified_key(cert_chain, "certificate PEM", key, "key PEM")?;
        self.swap(key)
    }

    fn swap(&self, key: Arc<CertifiedKey>) -> Result<(), TlsConfigError> {
        let Some(cert) = &self.cert else {
            return Err(TlsConfigError::Invalid(
                "this configuration came from a rustls ServerConfig; reload it there".into(),
            ));
        };
        cert.current.store(key);
        tracing::info!("TLS certificate reloaded");
        Ok(())
    }

    /// The rustls configuration underneath.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

impl TlsServerConfigBuilder {
    fn new(key: Arc<CertifiedKey>) -> Self {
        TlsServerConfigBuilder {
            key,
            alpn: Vec::new(),
            client_roots: None,
            client_auth_optional: false,
        }
    }

    /// Protocols offered through ALPN, most preferred first
    /// (`["h2", "http/1.1"]`); the client's choice is in
    /// [`TlsInfo::alpn`](super::TlsInfo::alpn). A client that offers ALPN
    /// but none of these protocols is refused (RFC 7301's
    /// `no_application_protocol` alert). A client that offers no ALPN at all
    /// is accepted, with `TlsInfo::alpn` `None` (rustls's behaviour, and
    /// what RFC 7301 allows): a protocol that needs ALPN (HTTP/2 over TLS)
    /// checks it and closes.
    pub fn alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Requires clients to present a certificate signed by one of the CAs
    /// in this PEM file (mutual TLS).
    pub fn client_ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let path = path.as_ref();
        let pem = read_file(path)?;
        self.client_ca_pem_named(&pem, &describe(path))
    }

    /// Like [`client_ca_file`](Self::client_ca_file), from PEM in memory.
    pub fn client_ca_pem(self, pem: &[u8]) -> Result<Self, TlsConfigError> {
        self.client_ca_pem_named(pem, "client CA PEM")
    }

    fn client_ca_pem_named(mut self, pem: &[u8], what: &str) -> Result<Self, TlsConfigError> {
        self.client_roots = Some(pem::roots(pem, what)?);
        Ok(self)
    }

    /// With client CAs set: also accept clients that present no certificate
    /// (one they do present must still verify). Default: required.
    pub fn client_auth_optional(mut self, optional: bool) -> Self {
        self.client_auth_optional = optional;
        self
    }

    /// Checks and builds the configuration.
    pub fn build(self) -> Result<TlsServerConfig, TlsConfigError> {
        if let Some(bad) = self.alpn.iter().find(|p| p.is_empty() || p.len() > 255) {
            return Err(TlsConfigError::Invalid(format!(
                "ALPN protocol names are 1 to 255 bytes; got {} bytes",
                bad.len()
            )));
        }
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsConfigError::Rustls {
                context: "protocol versions".into(),
                source,
            })?;
        let builder = match self.client_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.into(), provider());
                if self.client_auth_optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsConfigError::Invalid(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let cert = Arc::new(ReloadableCert {
            current: ArcSwap::new(self.key),
        });
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = self.alpn;
        Ok(TlsServerConfig {
            config: Arc::new(config),
            cert: Some(cert),
        })
    }
}

/// The certificate every new handshake presents; swapped on reload.
#[derive(Debug)]
struct ReloadableCert {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn certified_key_from_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let cert_pem = read_file(cert)?;
    let key_pem = if key == cert {
        cert_pem.clone()
    } else {
        read_file(key)?
    };
    certified_key(&cert_pem, &describe(cert), &key_pem, &describe(key))
}

pub(crate) fn certified_key(
    cert_pem: &[u8],
    cert_what: &str,
    key_pem: &[u8],
    key_what: &str,
) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let chain = pem::certs(cert_pem, cert_what)?;
    let key = pem::private_key(key_pem, key_what)?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|source| TlsConfigError::Rustls {
            context: format!("{cert_what} with {key_what}"),
            source,
        })
}
