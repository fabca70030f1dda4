//! Outbound DKIM signing (RFC 6376) of mail received on the submission port, so that the
//! organisation's own mail passes DMARC at the receiver.
//!
//! Keys are PEM files named in `[[auth.sign]]` (domain, selector, key): an RSA key (PKCS#1
//! or PKCS#8; at least 1024 bits, 2048 recommended) signs `rsa-sha256`, an Ed25519 key
//! (PKCS#8) signs `ed25519-sha256` (RFC 8463). Several keys for one domain each add a
//! signature (RSA for every receiver, Ed25519 for those that understand it). A message is
//! signed by the keys whose domain is its From domain or a parent of it (what DMARC's relaxed
//! alignment accepts); mail from other domains is left unsigned. Signing uses Stalwart's
//! `mail-auth` with relaxed/relaxed canonicalisation, and [`Signer::dns_record`] gives the
//! exact TXT record to publish at `<selector>._domainkey.<domain>`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

/// One `[[auth.sign]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    /// The signing domain (`d=`), e.g. the organisation's mail domain.
    pub domain: String,
    /// The selector (`s=`): the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM private key (RSA or Ed25519).
    pub key: PathBuf,
}

/// Why a signing key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("DKIM key {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("DKIM key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("DKIM signing for {domain} (selector {selector}) failed: {why}")]
    Sign {
        domain: String,
        selector: String,
        why: String,
    },
}

enum KeyKind {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

fn signer<T: mail_auth::common::crypto::SigningKey>(
    key: T,
    domain: &str,
    selector: &str,
) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// A loaded key with its domain and selector.
pub struct SigningKey {
    domain: String,
    selector: String,
    key: KeyKind,
    /// The public key as published in `p=` (SubjectPublicKeyInfo DER for RSA, the raw 32
    /// bytes for Ed25519).
    public: Vec<u8>,
    bits: usize,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish()
    }
}

/// The header fields signed, when present. From is signed twice ("oversigned") so that a
/// second From cannot be added in transit without breaking the signature.
const SIGNED_HEADERS: [&str; 13] = [
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

impl SigningKey {
    /// Loads `[[auth.sign]]`'s key file.
    pub fn load(config: &SignConfig) -> Result<Self, SignError> {
        let pem = std::fs::read(&config.key).map_err(|source| SignError::Read {
            path: config.key.clone(),
            source,
        })?;
        Self::from_pem(&config.domain, &config.selector, &pem, &config.key)
    }

    /// A key from PEM text; `path` only names it in errors.
    pub fn from_pem(
        domain: &str,
        selector: &str,
        pem: &[u8],
        path: &Path,
    ) -> Result<Self, SignError> {
        let bad = |why: String| SignError::Key {
            path: path.to_owned(),
            why,
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let der = rustls_pemfile::private_key(&mut &pem[..])
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("no private key in the file".into()))?;
        let (key, public, bits) = match der {
            PrivateKeyDer::Pkcs8(p8) if is_ed25519(p8.secret_pkcs8_der()) => {
                let k = Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der())
                    .map_err(|e| bad(format!("not a usable Ed25519 key: {e}")))?;
                let public = k.public_key();
                (KeyKind::Ed25519(signer(k, &domain, selector)), public, 256)
            }
            PrivateKeyDer::Pkcs8(p8) => {
                let k = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(p8.secret_pkcs8_der().to_vec()),
                ))
                .map_err(|e| bad(format!("not a usable RSA or Ed25519 key: {e}")))?;
                rsa_parts(k, &domain, selector)
            }
            PrivateKeyDer::Pkcs1(p1) => {
                let k = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(
                    PrivatePkcs1KeyDer::from(p1.secret_pkcs1_der().to_vec()),
                ))
                .map_err(|e| bad(format!("not a usable RSA key: {e}")))?;
                rsa_parts(k, &domain, selector)
            }
            _ => return Err(bad("only RSA and Ed25519 keys can sign DKIM".into())),
        };
        if matches!(key, KeyKind::Rsa(_)) && bits < 1024 {
            return Err(bad(format!(
                "RSA key of {bits} bits: receivers ignore DKIM keys under 1024 bits (use 2048)"
            )));
        }
        Ok(Self {
            domain,
            selector: selector.to_owned(),
            key,
            public,
            bits,
        })
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            KeyKind::Rsa(_) => "rsa-sha256",
            KeyKind::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The signing domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The key size in bits (256 for Ed25519).
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The public key as it goes in `p=` (DER SubjectPublicKeyInfo for RSA; the raw key for
    /// Ed25519).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// Where the record is published: `<selector>._domainkey.<domain>`.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The exact TXT record text to publish at [`Self::dns_name`].
    pub fn dns_record(&self) -> String {
        let k = match self.key {
            KeyKind::Rsa(_) => "rsa",
            KeyKind::Ed25519(_) => "ed25519",
        };
        format!(
            "v=DKIM1; k={k}; p={}",
            base64::engine::general_purpose::STANDARD.encode(&self.public)
        )
    }

    /// The `DKIM-Signature:` field (CRLF-terminated, folded) for `message`.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignError> {
        let fail = |e: mail_auth::Error| SignError::Sign {
            domain: self.domain.clone(),
            selector: self.selector.clone(),
            why: e.to_string(),
        };
        let sig = match &self.key {
            KeyKind::Rsa(k) => k.sign(message).map_err(fail)?,
            KeyKind::Ed25519(k) => k.sign(message).map_err(fail)?,
        };
        Ok(sig.to_header())
    }
}

fn is_ed25519(pkcs8: &[u8]) -> bool {
    // The algorithm identifier comes within the first few bytes of a PKCS#8 structure.
    pkcs8
        .get(..pkcs8.len().min(24))
        .is_some_and(|head| head.windows(5).any(|w| w == ED25519_OID))
}

fn rsa_parts(k: RsaKey<Sha256>, domain: &str, selector: &str) -> (KeyKind, Vec<u8>, usize) {
    let pkcs1 = k.public_key();
    let bits = rsa_modulus_bits(&pkcs1).unwrap_or(0);
    (
        KeyKind::Rsa(signer(k, domain, selector)),
        spki_from_pkcs1(&pkcs1),
        bits,
    )
}

/// The modulus size of a DER RSAPublicKey (`SEQUENCE { INTEGER n, INTEGER e }`) or of a
/// SubjectPublicKeyInfo holding one.
pub fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (tag, body, _) = der_item(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, first, rest) = der_item(body)?;
    match tag {
        // RSAPublicKey: the modulus.
        0x02 => {
            let n = first
                .iter()
                .position(|&b| b != 0)
                .map_or(&[][..], |i| &first[i..]);
            let lead = n.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
            Some(n.len().saturating_sub(1) * 8 + lead)
        }
        // SubjectPublicKeyInfo: AlgorithmIdentifier, then BIT STRING { 0, RSAPublicKey }.
        0x30 => {
            let (tag, bits, _) = der_item(rest)?;
            if tag != 0x03 || bits.first() != Some(&0) {
                return None;
            }
            rsa_modulus_bits(&bits[1..])
        }
        _ => None,
    }
}

/// One DER item: (tag, contents, what follows).
fn der_item(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let l0 = *der.get(1)?;
    let (len, start) = if l0 & 0x80 == 0 {
        (l0 as usize, 2)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for &b in der.get(2..2 + n)? {
            len = (len << 8) | b as usize;
        }
        (len, 2 + n)
    };
    let end = start.checked_add(len)?;
    Some((tag, der.get(start..end)?, der.get(end..)?))
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (what `openssl rsa -pubout` and
/// OpenDKIM publish, and what every verifier accepts).
fn spki_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bit);
    bit.push(0);
    bit.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(ALG.len() + bit.len(), &mut out);
    out.extend_from_slice(&ALG);
    out.extend_from_slice(&bit);
    out
}

/// The keys of `[[auth.sign]]`, choosing by From domain.
#[derive(Debug, Default)]
pub struct Signer {
    keys: Vec<SigningKey>,
}

impl Signer {
    /// Loads every configured key.
    pub fn load(configs: &[SignConfig]) -> Result<Self, SignError> {
        Ok(Self {
            keys: configs
                .iter()
                .map(SigningKey::load)
                .collect::<Result<_, _>>()?,
        })
    }

    /// A signer from keys already loaded.
    pub fn from_keys(keys: Vec<SigningKey>) -> Self {
        Self { keys }
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `DKIM-Signature:` fields for a message from `from_domain`: one per key whose
    /// domain is that domain or a parent of it. Empty when none applies.
    pub fn sign(&self, from_domain: &str, message: &[u8]) -> Result<String, SignError> {
        let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
        let mut out = String::new();
        for k in &self.keys {
            if from == k.domain || from.ends_with(&format!(".{}", k.domain)) {
                out.push_str(&k.sign(message)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_wrapping_keeps_the_modulus_size() {
        // A toy RSAPublicKey: a 2048-bit modulus (leading 0x00 then 0xC0...) and e = 65537.
        let mut n = vec![0x00, 0xc0];
        n.extend(std::iter::repeat_n(0x11, 255));
        let mut pk = vec![0x02, 0x82, 0x01, 0x01];
        pk.extend_from_slice(&n);
        pk.extend_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut seq = vec![0x30];
        der_len(pk.len(), &mut seq);
        seq.extend_from_slice(&pk);
        assert_eq!(rsa_modulus_bits(&seq), Some(2048));
        assert_eq!(rsa_modulus_bits(&spki_from_pkcs1(&seq)), Some(2048));
        assert_eq!(rsa_modulus_bits(b"\x30\x05garbage"), None);
        assert_eq!(rsa_modulus_bits(b""), None);
    }
}
