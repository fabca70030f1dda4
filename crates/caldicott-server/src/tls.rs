//! Loading the certificate and key into a rustls server configuration.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ServerError;

const CERT: &str = "certificate";
const KEY: &str = "private key";

/// Builds the server's TLS configuration: aws-lc-rs, TLS 1.3 and 1.2, ALPN `h2` then
/// `http/1.1`, no client certificates.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ServerError> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls_error = |source| ServerError::Tls {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let bytes = std::fs::read(path).map_err(|source| ServerError::ReadFile {
        what: CERT,
        path: path.to_path_buf(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(CERT, path, &e))?;
    if chain.is_empty() {
        return Err(ServerError::InvalidPem {
            what: CERT,
            path: path.to_path_buf(),
            reason: "no PEM CERTIFICATE block found",
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    warn_if_readable_by_others(path);
    // The DER key zeroizes itself on drop; zeroize the PEM text too.
    let bytes =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| ServerError::ReadFile {
            what: KEY,
            path: path.to_path_buf(),
            source,
        })?);
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| invalid(KEY, path, &e))
}

/// Maps a PEM parsing error to a reason that never quotes the file (the PEM parser's own
/// messages may quote a line of it).
fn invalid(what: &'static str, path: &Path, error: &pem::Error) -> ServerError {
    let reason = match error {
        pem::Error::NoItemsFound if what == KEY => {
            "no PEM PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1) found"
        }
        pem::Error::NoItemsFound => "no PEM CERTIFICATE block found",
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "malformed PEM: a section is not valid base64",
        pem::Error::SectionTooLarge => "malformed PEM: a section is too large",
        _ => "malformed PEM",
    };
    ServerError::InvalidPem {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "TLS private key file is accessible to group or others; use mode 0600"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
