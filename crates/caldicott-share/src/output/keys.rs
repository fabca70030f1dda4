//! The release signing key: generation and serialisation for sealing in the vault.
//!
//! The key is a `caldicott-ledger` note key (Ed25519, the golang.org/x/mod/sumdb/note key
//! strings), so releases are signed and verified by the same signed-note code as the audit
//! ledger's checkpoints. The secret form is the `PRIVATE+KEY+<name>+<id>+<base64>` string
//! as bytes, handed over and taken back in buffers zeroised on drop; the verifier key
//! string (`<name>+<id>+<base64>`) is public and is what recipients are given.

use caldicott_ledger::{KeyError, SignerKey};
use zeroize::Zeroizing;

/// Generates a new release signing key named `name` (e.g. `releases.example.nhs.uk`; no
/// spaces or `+`).
///
/// # Errors
/// [`KeyError::InvalidName`], or [`KeyError::Crypto`] if the random generator fails.
pub fn generate_signing_key(name: &str) -> Result<SignerKey, KeyError> {
    SignerKey::generate(name)
}

/// The secret bytes of a signing key, to seal in the vault.
#[must_use]
pub fn signing_key_to_bytes(key: &SignerKey) -> Zeroizing<Vec<u8>> {
    let text = key.to_key_string();
    Zeroizing::new(text.as_bytes().to_vec())
}

/// A signing key from its secret bytes (as [`signing_key_to_bytes`] gave them).
///
/// # Errors
/// A [`KeyError`] naming the defect, never quoting the key.
pub fn signing_key_from_bytes(bytes: &[u8]) -> Result<SignerKey, KeyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KeyError::Malformed)?;
    SignerKey::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_bytes() {
        let key = generate_signing_key("releases.example").unwrap();
        let bytes = signing_key_to_bytes(&key);
        assert!(bytes.starts_with(b"PRIVATE+KEY+releases.example+"));
        let again = signing_key_from_bytes(&bytes).unwrap();
        assert_eq!(again.verifier_key(), key.verifier_key());
        assert_eq!(
            signing_key_from_bytes(&[0xff, 0xfe]).map(|_| ()),
            Err(KeyError::Malformed)
        );
        assert!(generate_signing_key("has space").is_err());
    }
}
