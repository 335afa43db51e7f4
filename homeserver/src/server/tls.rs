//! The federation TLS listener's configuration: the certificate chain and private key of
//! `[federation.tls]`, served with rustls (the same library and crypto provider as the client).

use std::{path::Path, sync::Arc};

use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

use crate::config::FederationTlsConfig;

/// Errors loading the listener's certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("federation.tls.{key} ({path}): {reason}")]
    Pem {
        /// The configuration key.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("federation.tls: {0}")]
    Config(String),
}

/// The acceptor of the TLS listener, serving HTTP/2 and HTTP/1.1.
pub fn acceptor(config: &FederationTlsConfig) -> Result<TlsAcceptor, TlsError> {
    let pem_error = |key, path: &Path, reason: String| TlsError::Pem {
        key,
        path: path.display().to_string(),
        reason,
    };
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&config.certificate)
            .and_then(Iterator::collect)
            .map_err(|e| pem_error("certificate", &config.certificate, e.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error("certificate", &config.certificate, "no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&config.private_key)
        .map_err(|e| pem_error("private_key", &config.private_key, e.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
