//! TLS toward destinations for `https` egress ports: the proxy originates TLS for plain-HTTP
//! clients, verifying the upstream certificate against the system roots or `--upstream-ca`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

pub fn connector(upstream_ca: Option<&Path>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = RootCertStore::empty();
    match upstream_ca {
        Some(path) => {
            let mut n = 0;
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("--upstream-ca {}: cannot read it", path.display()))?
            {
                let cert =
                    cert.with_context(|| format!("--upstream-ca {}: not a PEM certificate bundle", path.display()))?;
                roots.add(cert).with_context(|| {
                    format!(
                        "--upstream-ca {}: a certificate cannot be used as a root",
                        path.display()
                    )
                })?;
                n += 1;
            }
            if n == 0 {
                anyhow::bail!("--upstream-ca {}: holds no certificate", path.display());
            }
        }
        None => {
            // Unreadable entries are skipped: one bad file in /etc/ssl/certs must not stop the proxy.
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
