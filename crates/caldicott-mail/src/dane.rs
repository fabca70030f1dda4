//! DANE for SMTP (RFC 7672) with TLSA matching per RFC 6698 and RFC 7671: which TLSA
//! records are usable, whether a certificate matches one, and a rustls
//! [`ServerCertVerifier`] that accepts a next hop's certificate chain only when it does.
//!
//! **Usable records.** Only DANE-TA(2) and DANE-EE(3), selectors Cert(0) and SPKI(1),
//! matching Full(0), SHA2-256(1) and SHA2-512(2) (RFC 7672 §3.1: PKIX-TA(0) and PKIX-EE(1)
//! are not usable for SMTP, where there is no agreed set of public CAs). The records must
//! come from a DNSSEC-validated answer; [`crate::tls_policy`] decides that.
//!
//! **Checks.** DANE-EE: the server's own certificate (or its key) is the one published;
//! names and validity dates are ignored (RFC 7672 §3.1.1). DANE-TA: a certificate of the
//! chain the server sent is the published trust anchor, and the leaf must chain to it with
//! the ordinary checks, names and dates included, the reference identifier being the MX host
//! name (§3.2.2). Either way the handshake signature is verified with the crypto provider's
//! algorithms, so a server must hold the private key of the certificate it shows.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

pub const DANE_TA: u8 = 2;
pub const DANE_EE: u8 = 3;

impl Tlsa {
    /// True for the parameters SMTP clients use (RFC 7672 §3.1), with data of the length
    /// the matching type implies (a SHA2-256 record of 31 bytes can match nothing).
    pub fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE)
            && matches!(self.selector, 0 | 1)
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// `3 1 1 abcd…` as in a zone file (for logs and errors).
    pub fn describe(&self) -> String {
        let hex: String = self
            .data
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!(
            "{} {} {} {hex}{}",
            self.usage,
            self.selector,
            self.matching,
            if self.data.len() > 8 { "…" } else { "" }
        )
    }
}

/// Why a certificate could not be matched.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DaneError {
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
}

/// The part of the certificate a selector names: the whole DER, or its SubjectPublicKeyInfo.
pub fn selected(selector: u8, cert: &[u8]) -> Result<Vec<u8>, DaneError> {
    match selector {
        0 => Ok(cert.to_vec()),
        _ => {
            let der = CertificateDer::from(cert);
            let ee = webpki::EndEntityCert::try_from(&der)
                .map_err(|e| DaneError::BadCertificate(format!("{e:?}")))?;
            Ok(ee.subject_public_key_info().as_ref().to_vec())
        }
    }
}

/// The association data a TLSA record with these parameters would carry for `cert`.
pub fn association(selector: u8, matching: u8, cert: &[u8]) -> Result<Vec<u8>, DaneError> {
    let content = selected(selector, cert)?;
    Ok(match matching {
        1 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &content)
            .as_ref()
            .to_vec(),
        2 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &content)
            .as_ref()
            .to_vec(),
        _ => content,
    })
}

/// True when `record` is usable and matches `cert` (DER).
pub fn matches(record: &Tlsa, cert: &[u8]) -> bool {
    record.usable()
        && association(record.selector, record.matching, cert)
            .is_ok_and(|a| constant_time_eq(&a, &record.data))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts the server's chain only when a usable TLSA record of `host` matches it.
#[derive(Debug)]
pub struct DaneVerifier {
    /// The TLSA base domain (`_25._tcp.<mx>`), for messages.
    base: String,
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    /// `records` should be the usable ones of a validated answer (others are ignored).
    pub fn new(base: String, records: Vec<Tlsa>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            base,
            records: records.into_iter().filter(Tlsa::usable).collect(),
            provider,
        }
    }

    fn fail(&self, why: &str) -> rustls::Error {
        rustls::Error::General(format!("DANE ({} TLSA): {why}", self.base))
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the leaf itself; no name or date checks (RFC 7672 §3.1.1).
        if self
            .records
            .iter()
            .filter(|r| r.usage == DANE_EE)
            .any(|r| matches(r, end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate of the sent chain is the anchor; the leaf must chain to it.
        let mut last_error = None;
        for ta in self.records.iter().filter(|r| r.usage == DANE_TA) {
            for anchor in intermediates.iter().filter(|c| matches(ta, c)) {
                let mut roots = rustls::RootCertStore::empty();
                if roots.add(anchor.clone().into_owned()).is_err() {
                    continue;
                }
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| self.fail(&e.to_string()))?;
                match verifier.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(v) => return Ok(v),
                    Err(e) => last_error = Some(e),
                }
            }
        }
        Err(match last_error {
            Some(e) => self.fail(&format!(
                "the chain has the published trust anchor but does not verify under it: {e}"
            )),
            None => self.fail(&format!(
                "no record matches the certificate presented (published: {})",
                self.records
                    .iter()
                    .map(Tlsa::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client configuration that verifies with DANE `records` of `base`.
pub fn client_config(
    base: String,
    records: Vec<Tlsa>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(DaneVerifier::new(base, records, provider.clone()));
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    use rcgen::PublicKeyData;

    fn cert() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["mx.example".into()]).unwrap()
    }

    #[test]
    fn usable_parameters() {
        let t = |u, s, m, n| Tlsa {
            usage: u,
            selector: s,
            matching: m,
            data: vec![0; n],
        };
        assert!(t(3, 1, 1, 32).usable() && t(2, 0, 2, 64).usable() && t(3, 0, 0, 300).usable());
        // PKIX-TA and PKIX-EE are not for SMTP (RFC 7672 §3.1.3).
        assert!(!t(0, 0, 1, 32).usable() && !t(1, 1, 1, 32).usable());
        assert!(!t(3, 2, 1, 32).usable() && !t(3, 1, 3, 32).usable());
        // A digest of the wrong length can match nothing.
        assert!(!t(3, 1, 1, 31).usable() && !t(3, 1, 2, 32).usable());
    }

    #[test]
    fn sha256_vector() {
        // FIPS 180-2 / RFC 6234 "abc" vector through the same digest the matcher uses.
        assert_eq!(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"abc").as_ref(),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn selectors_and_matching() {
        let c = cert();
        let der = c.cert.der().to_vec();
        // Selector 1 is the DER SubjectPublicKeyInfo, which rcgen also exposes.
        let spki = c.signing_key.subject_public_key_info();
        assert_eq!(selected(1, &der).unwrap(), spki);
        assert_eq!(selected(0, &der).unwrap(), der);
        for (s, m) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)] {
            let data = association(s, m, &der).unwrap();
            let rec = Tlsa {
                usage: 3,
                selector: s,
                matching: m,
                data: data.clone(),
            };
            assert!(matches(&rec, &der), "{s} {m}");
            let mut bad = rec.clone();
            let last = bad.data.len() - 1;
            bad.data[last] ^= 1;
            assert!(!matches(&bad, &der), "{s} {m} flipped");
            let other = cert();
            assert!(!matches(&rec, other.cert.der()), "{s} {m} other cert");
        }
        assert!(association(1, 1, b"not a certificate").is_err());
        let rec = Tlsa {
            usage: 3,
            selector: 1,
            matching: 0,
            data: spki,
        };
        assert!(!matches(&rec, b"garbage"));
    }
}
