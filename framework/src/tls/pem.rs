//! Reading certificates and keys from PEM, with errors naming the source.

use super::TlsConfigError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in `pem`; at least one.
pub(crate) fn certs(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            what: what.to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(what.to_string()));
    }
    Ok(certs)
}

/// The first private key in `pem`.
pub(crate) fn private_key(
    pem: &[u8],
    what: &str,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsConfigError::NoPrivateKey(what.to_string())
        }
        e => TlsConfigError::Pem {
            what: what.to_string(),
            message: e.to_string(),
        },
    })
}

/// A root store holding every certificate in `pem`.
pub(crate) fn roots(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, TlsConfigError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs(pem, what)? {
        store.add(cert).map_err(|source| TlsConfigError::Rustls {
            context: format!("{what}: CA certificate"),
            source,
        })?;
    }
    Ok(store)
}

pub(crate) fn describe(path: &Path) -> String {
    path.display().to_string()
}
