//! Key material: the master key (key-encryption key, KEK) and the data keys (DEKs) it wraps.
//!
//! The KEK never touches the database. It is reached only through [`KeyProvider`], whose
//! two operations are *wrap* and *unwrap*, so a provider backed by a cloud KMS or an HSM,
//! which never releases the key itself, fits the same trait. [`LocalKek`] is the provider
//! for a key file (created by `caldicott init`, mode 0600) or an environment variable.
//!
//! Every key held in memory is zeroised on drop.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::{Zeroize, Zeroizing};

/// The text before the base64 key in a key file or environment variable, so a key of
/// another kind is refused rather than misread.
const KEY_PREFIX: &str = "caldicott-kek-v1:";
/// Format byte of a wrapped data key: AES-256-GCM, 12-byte random nonce.
const WRAP_FORMAT_V1: u8 = 1;

/// Errors from loading or using keys. Messages name files and key ids, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read master key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file can be read by other users.
    #[error(
        "master key file {path} has permissions {mode:o}; it must be readable by its owner only (chmod 600)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    /// The key text is not `caldicott-kek-v1:` followed by 32 bytes in base64url.
    #[error("master key in {origin} is malformed: {reason}")]
    Malformed {
        origin: String,
        reason: &'static str,
    },
    /// The key file exists already (init refuses to overwrite a key).
    #[error("master key file {0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// Writing a new key file failed.
    #[error("cannot write master key file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A wrapped key failed authentication: the wrong master key, or a tampered key row.
    #[error(
        "data key for {context} cannot be unwrapped with master key {kek_id}: wrong master key or tampered key record"
    )]
    Unwrap { context: String, kek_id: KekId },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A short public fingerprint of a KEK, stored beside every data key it wraps so that a
/// wrong key is reported as such. It is a truncated SHA-256 of a domain-separated key, so it
/// reveals nothing usable about the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KekId(String);

impl KekId {
    fn of(key: &[u8; 32]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"caldicott kek id v1\0");
        ctx.update(key);
        let d = ctx.finish();
        Self(d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Wraps a stored id string.
    pub fn from_stored(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The hex fingerprint.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekId({})", self.0)
    }
}

/// Wraps and unwraps data keys under a master key that the caller never sees.
///
/// `context` is bound into the wrapping as associated data (the organisation and data-key
/// version), so a wrapped key copied to another organisation's row fails to unwrap.
pub trait KeyProvider: Send + Sync {
    /// The fingerprint of the master key this provider uses.
    fn kek_id(&self) -> &KekId;
    /// Encrypts a data key.
    fn wrap(&self, dek: &DataKey, context: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Decrypts a data key; fails if the key or the context do not match.
    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<DataKey, KeyError>;
}

/// A 256-bit data-encryption key. Zeroised on drop; `Debug` shows nothing.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(k.as_mut())
            .map_err(|_| KeyError::Random)?;
        Ok(Self(k))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<secret>)")
    }
}

/// A master key held in this process: read from a key file or an environment variable.
pub struct LocalKek {
    key: LessSafeKey,
    id: KekId,
}

impl LocalKek {
    /// Generates a new random master key.
    pub fn generate() -> Result<(Self, Zeroizing<String>), KeyError> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(k.as_mut())
            .map_err(|_| KeyError::Random)?;
        let text = Zeroizing::new(format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(k.as_ref())
        ));
        Ok((Self::from_bytes(&k)?, text))
    }

    /// Loads a key file, refusing one that group or others can read.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let _ = meta;
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?);
        Self::parse(&text, &format!("key file {}", path.display()))
    }

    /// Loads a key from the text of an environment variable (same format as the file).
    pub fn from_env_value(name: &str, value: &str) -> Result<Self, KeyError> {
        Self::parse(value.as_bytes(), &format!("environment variable {name}"))
    }

    fn parse(text: &[u8], origin: &str) -> Result<Self, KeyError> {
        let malformed = |reason| KeyError::Malformed {
            origin: origin.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(text).map_err(|_| malformed("not UTF-8 text"))?;
        let b64 = text
            .trim()
            .strip_prefix(KEY_PREFIX)
            .ok_or(malformed("it does not start with 'caldicott-kek-v1:'"))?;
        let mut raw = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(b64)
                .map_err(|_| malformed("the key is not base64url without padding"))?,
        );
        if raw.len() != 32 {
            raw.zeroize();
            return Err(malformed("the key must be exactly 32 bytes (256 bits)"));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&raw);
        Self::from_bytes(&k)
    }

    fn from_bytes(k: &[u8; 32]) -> Result<Self, KeyError> {
        let key = UnboundKey::new(&AES_256_GCM, k).map_err(|_| KeyError::Random)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            id: KekId::of(k),
        })
    }
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalKek({})", self.id)
    }
}

/// Writes key text to a new file with mode 0600, fsynced, refusing to overwrite.
pub fn write_key_file(path: &Path, text: &str) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_owned())
        } else {
            err(e)
        }
    })?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    // Make the new directory entry durable too.
    if let Some(d) = path.parent().and_then(|dir| std::fs::File::open(dir).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl KeyProvider for LocalKek {
    fn kek_id(&self) -> &KekId {
        &self.id
    }

    fn wrap(&self, dek: &DataKey, context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Random)?;
        let mut buf = Vec::with_capacity(1 + NONCE_LEN + 32 + 16);
        buf.push(WRAP_FORMAT_V1);
        buf.extend_from_slice(&nonce);
        let mut body = dek.bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            )
            .map_err(|_| KeyError::Random)?;
        buf.extend_from_slice(&body);
        body.zeroize();
        Ok(buf)
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<DataKey, KeyError> {
        let fail = || KeyError::Unwrap {
            context: String::from_utf8_lossy(context).into_owned(),
            kek_id: self.id.clone(),
        };
        if wrapped.len() != 1 + NONCE_LEN + 32 + 16 || wrapped[0] != WRAP_FORMAT_V1 {
            return Err(fail());
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&wrapped[1..1 + NONCE_LEN]).map_err(|_| fail())?;
        let mut body = Zeroizing::new(wrapped[1 + NONCE_LEN..].to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .map_err(|_| fail())?;
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(plain);
        Ok(DataKey(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_context_binding() {
        let (kek, _) = LocalKek::generate().unwrap();
        let dek = DataKey::generate().unwrap();
        let w = kek.wrap(&dek, b"org A81001 v1").unwrap();
        assert_eq!(
            kek.unwrap(&w, b"org A81001 v1").unwrap().bytes(),
            dek.bytes()
        );
        assert!(matches!(
            kek.unwrap(&w, b"org B82002 v1"),
            Err(KeyError::Unwrap { .. })
        ));
        let (other, _) = LocalKek::generate().unwrap();
        assert!(other.unwrap(&w, b"org A81001 v1").is_err());
        let mut t = w.clone();
        t[20] ^= 1;
        assert!(kek.unwrap(&t, b"org A81001 v1").is_err());
        assert!(kek.unwrap(&w[..30], b"org A81001 v1").is_err());
    }

    #[test]
    fn key_text_round_trip_and_errors() {
        let (kek, text) = LocalKek::generate().unwrap();
        let again = LocalKek::from_env_value("K", &text).unwrap();
        assert_eq!(kek.kek_id(), again.kek_id());
        assert!(matches!(
            LocalKek::from_env_value("K", "caldicott-kek-v1:AAAA"),
            Err(KeyError::Malformed { .. })
        ));
        assert!(matches!(
            LocalKek::from_env_value("K", &text[3..]),
            Err(KeyError::Malformed { .. })
        ));
        let err = LocalKek::from_env_value("K", "caldicott-kek-v1:!!!")
            .unwrap_err()
            .to_string();
        assert!(err.contains("environment variable K"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_permissions_are_enforced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let (_, text) = LocalKek::generate().unwrap();
        write_key_file(&p, &text).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        LocalKek::from_file(&p).unwrap();
        assert!(matches!(
            write_key_file(&p, &text),
            Err(KeyError::Exists(_))
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = LocalKek::from_file(&p).err().unwrap().to_string();
        assert!(e.contains("644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains(&text[20..]), "error must not contain key text");
    }
}
