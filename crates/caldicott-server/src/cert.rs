//! Self-signed certificates for the demo (`caldicott init`).

use std::io::Write;
use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::ServerError;

/// Writes a self-signed certificate and private key (PEM; key file mode 0600) for the given
/// host names / IPs (e.g. "localhost", "127.0.0.1"), valid for 1 year, ECDSA P-256. Used by
/// `caldicott init` for the demo.
///
/// Names that parse as IP addresses become IP subject alternative names, the others DNS
/// names; the first name is also the subject's common name. The certificate is a leaf (not a
/// CA) for server authentication, valid from five minutes ago (clock skew) for 365 days.
///
/// Each file is written to a temporary file beside it and then moved into place, so a reader
/// never sees half a file. Existing files are never overwritten
/// ([`ServerError::FileExists`]); if the certificate cannot be written, the new key is
/// removed again.
pub fn generate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
) -> Result<(), ServerError> {
    let generation = |e: rcgen::Error| ServerError::CertificateGeneration(e.to_string());
    let Some(first) = names.first() else {
        return Err(ServerError::CertificateGeneration(
            "at least one host name or IP address is required".into(),
        ));
    };
    if let Some(bad) = names
        .iter()
        .find(|n| n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ServerError::CertificateGeneration(format!(
            "{bad:?} is not a host name or IP address"
        )));
    }
    for path in [cert_path, key_path] {
        if path.exists() {
            return Err(ServerError::FileExists {
                path: path.to_path_buf(),
            });
        }
    }

    let mut params = CertificateParams::new(names.to_vec()).map_err(generation)?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(365);
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, first.as_str());
    subject.push(DnType::OrganizationName, "Caldicott (self-signed)");
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(random_serial()?);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generation)?;
    let cert = params.self_signed(&key).map_err(generation)?;
    let key_pem = Zeroizing::new(key.serialize_pem());

    write_new(key_path, key_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(cert_path, cert.pem().as_bytes(), 0o644) {
        // Best effort: do not leave a key without its certificate.
        let _ = std::fs::remove_file(key_path);
        return Err(e);
    }
    Ok(())
}

/// A random, positive, 128-bit serial number (browsers reject two certificates with the same
/// issuer and serial, which a fixed serial would produce on re-running `init`).
fn random_serial() -> Result<SerialNumber, ServerError> {
    let mut serial = [0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|_| ServerError::CertificateGeneration("random number generator failed".into()))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&serial))
}

/// Writes `contents` to `path` with `mode` (on Unix) via a temporary file in the same
/// directory, refusing to replace an existing file.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), ServerError> {
    let write_error = |source| ServerError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 on Unix, so the key is never readable by others.
    let mut tmp = tempfile::Builder::new()
        .prefix(".caldicott-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    tmp.write_all(contents).map_err(write_error)?;
    set_mode(tmp.as_file(), mode).map_err(write_error)?;
    tmp.as_file().sync_all().map_err(write_error)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            ServerError::FileExists {
                path: path.to_path_buf(),
            }
        } else {
            write_error(e.error)
        }
    })?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &std::fs::File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
