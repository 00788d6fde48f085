//! A throw-away certificate authority for TLS tests and benchmarks: a CA,
//! a server certificate for `localhost`, `127.0.0.1` and `::1`, a client
//! certificate, and an unrelated CA (to test rejection). ECDSA P-256 keys.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// PEM texts of a fresh test PKI.
pub struct TestPki {
    /// The CA that signed both leaf certificates.
    pub ca_pem: String,
    /// The server's certificate (signed by the CA).
    pub server_cert_pem: String,
    /// The server's private key (PKCS#8).
    pub server_key_pem: String,
    /// A client certificate (signed by the CA), for mTLS.
    pub client_cert_pem: String,
    /// Its private key.
    pub client_key_pem: String,
    /// A CA that signed nothing here: trusting only it must fail.
    pub other_ca_pem: String,
    /// A client certificate signed by the other CA.
    pub stranger_cert_pem: String,
    /// Its private key.
    pub stranger_key_pem: String,
}

/// Where [`TestPki::write`] put the files.
pub struct PkiFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
    /// The unrelated CA.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).expect("CA certificate"), key)
}

fn leaf(names: &[&str], issuer: &rcgen::Certificate, issuer_key: &KeyPair) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    let cert = params
        .signed_by(&key, issuer, issuer_key)
        .expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Generates a new PKI (a few milliseconds).
    pub fn new() -> Self {
        let (ca_cert, ca_key) = ca("shardloop test CA");
        let (other, other_key) = ca("some other CA");
        let (server_cert_pem, server_key_pem) =
            leaf(&["localhost", "127.0.0.1", "::1"], &ca_cert, &ca_key);
        let (client_cert_pem, client_key_pem) = leaf(&["client.test"], &ca_cert, &ca_key);
        let (stranger_cert_pem, stranger_key_pem) = leaf(&["stranger.test"], &other, &other_key);
        TestPki {
            ca_pem: ca_cert.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_ca_pem: other.pem(),
            stranger_cert_pem,
            stranger_key_pem,
        }
    }

    /// Writes the PEM files into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<PkiFiles> {
        std::fs::create_dir_all(dir)?;
        let put = |name: &str, text: &str| -> std::io::Result<PathBuf> {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            Ok(p)
        };
        Ok(PkiFiles {
            ca: put("ca.pem", &self.ca_pem)?,
            cert: put("cert.pem", &self.server_cert_pem)?,
            key: put("key.pem", &self.server_key_pem)?,
            client_cert: put("client-cert.pem", &self.client_cert_pem)?,
            client_key: put("client-key.pem", &self.client_key_pem)?,
            other_ca: put("other-ca.pem", &self.other_ca_pem)?,
        })
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
