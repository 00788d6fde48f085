//! Client-side TLS configuration: which CAs to trust, ALPN, a client
//! certificate for mTLS.

use super::pem::{self, describe, read_file};
use super::server::certified_key;
use super::{provider, TlsConfigError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// TLS settings for outbound connections. Cheap to clone.
///
/// ```no_run
/// use shardloop::tls::TlsClientConfig;
/// let tls = TlsClientConfig::builder()
///     .ca_file("ca.pem")?
///     .alpn(["http/1.1"])
///     .build()?;
/// # Ok::<(), shardloop::tls::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct TlsClientConfig {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("alpn", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TlsClientConfig`].
pub struct TlsClientConfigBuilder {
    roots: rustls::RootCertStore,
    insecure: bool,
    alpn: Vec<Vec<u8>>,
    client_cert: Option<Arc<CertifiedKey>>,
    resumption: bool,
}

/// Where Linux distributions keep the system's CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

impl TlsClientConfig {
    /// Starts a configuration that trusts no CA yet.
    pub fn builder() -> TlsClientConfigBuilder {
        TlsClientConfigBuilder {
            roots: rustls::RootCertStore::empty(),
            insecure: false,
            alpn: Vec::new(),
            client_cert: None,
            resumption: true,
        }
    }

    /// Uses a rustls configuration as it is.
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> Self {
        TlsClientConfig { config }
    }

    /// Checks that `name` can be verified and sent as SNI (a DNS name or
    /// an IP address).
    pub fn check_server_name(name: &str) -> Result<(), TlsConfigError> {
        server_name(name).map(|_| ())
    }

    /// The rustls configuration underneath.
    pub fn rustls_config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// This configuration, offering `protocols` by ALPN if it offers none
    /// of its own (an HTTP client's default: `h2`, `http/1.1`).
    pub(crate) fn with_default_alpn(self, protocols: &[&[u8]]) -> Self {
        if !self.config.alpn_protocols.is_empty() {
            return self;
        }
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        TlsClientConfig {
            config: Arc::new(config),
        }
    }
}

impl TlsClientConfigBuilder {
    /// Trusts the CAs in this PEM file.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let path = path.as_ref();
        let pem = read_file(path)?;
        self.add_roots(&pem, &describe(path))
    }

    /// Trusts the CAs in this PEM.
    pub fn ca_pem(self, pem: &[u8]) -> Result<Self, TlsConfigError> {
        self.add_roots(pem, "CA PEM")
    }

    /// Trusts the system's CAs: the bundle `SSL_CERT_FILE` names, or the
    /// distribution's usual bundle.
    pub fn system_roots(self) -> Result<Self, TlsConfigError> {
        let path = std::env::var_os("SSL_CERT_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                SYSTEM_BUNDLES
                    .iter()
                    .map(std::path::PathBuf::from)
                    .find(|p| p.exists())
            })
            .ok_or_else(|| {
                TlsConfigError::Invalid(
                    "no system CA bundle found (set SSL_CERT_FILE or install ca-certificates)"
                        .into(),
                )
            })?;
        self.ca_file(path)
    }

    fn add_roots(mut self, pem: &[u8], what: &str) -> Result<Self, TlsConfigError> {
        for cert in pem::certs(pem, what)? {
            // A bundle may hold certificates webpki cannot use; skip those
            // as browsers do, but a file of only such is still an error below.
            let _ = self.roots.add(cert);
        }
        if self.roots.is_empty() {
            return Err(TlsConfigError::NoCertificate(format!(
                "{what} (no usable CA)"
            )));
        }
        Ok(self)
    }

    /// Accepts any server certificate (the handshake's signatures are still
    /// checked). For tests and load generation against self-signed servers
    /// only: it gives no protection against an active attacker.
    pub fn insecure_skip_verify(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Whether a new connection resumes an earlier session with the same
    /// server (TLS 1.3 tickets, TLS 1.2 session ids; kept in memory, 256 at
    /// most): on by default, as browsers do. Off, every handshake is a
    /// full one (`openssl s_time -new`): a load generator measuring the
    /// cost of handshakes turns it off.
    ///
    /// ```
    /// use shardloop::tls::TlsClientConfig;
    /// let full_handshakes = TlsClientConfig::builder()
    ///     .insecure_skip_verify()
    ///     .session_resumption(false)
    ///     .build()
    ///     .unwrap();
    /// # let _ = full_handshakes;
    /// ```
    pub fn session_resumption(mut self, on: bool) -> Self {
        self.resumption = on;
        self
    }

    /// Protocols offered through ALPN, most preferred first.
    pub fn alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Presents this certificate (chain) and key when the server asks (mTLS).
    pub fn client_cert_pem_files(
        mut self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let (cert, key) = (cert_chain.as_ref(), key.as_ref());
        let cert_pem = read_file(cert)?;
        let key_pem = read_file(key)?;
        self.client_cert = Some(certified_key(
            &cert_pem,
            &describe(cert),
            &key_pem,
            &describe(key),
        )?);
        Ok(self)
    }

    /// Like [`client_cert_pem_files`](Self::client_cert_pem_files), from PEM in memory.
    pub fn client_cert_pem(
        mut self,
        cert_chain: &[u8],
        key: &[u8],
    ) -> Result<Self, TlsConfigError> {
        self.client_cert = Some(certified_key(
            cert_chain,
            "client certificate PEM",
            key,
            "client key PEM",
        )?);
        Ok(self)
    }

    /// Checks and builds the configuration.
    pub fn build(self) -> Result<TlsClientConfig, TlsConfigError> {
        if self.roots.is_empty() && !self.insecure {
            return Err(TlsConfigError::Invalid(
                "no CA to verify servers with: give ca_file, system_roots or insecure_skip_verify"
                    .into(),
            ));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsConfigError::Rustls {
                context: "protocol versions".into(),
                source,
            })?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
        } else {
            builder.with_root_certificates(self.roots)
        };
        let mut config = match self.client_cert {
            Some(key) => builder.with_client_cert_resolver(Arc::new(OneClientCert(key))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        if !self.resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(TlsClientConfig {
            config: Arc::new(config),
        })
    }
}

/// Parses a server name for SNI and certificate checks: a DNS name or an
/// IP address.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_string()).map_err(|_| {
        TlsConfigError::Invalid(format!("{name:?} is not a DNS name or an IP address"))
    })
}

#[derive(Debug)]
struct OneClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for OneClientCert {
    fn resolve(
        &self,
        _issuers: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any certificate; still verifies the handshake signatures, so the
/// peer holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
