//! SHA-256 hashes and the RFC 9162 §2.1.1 (RFC 6962 §2.1) hashing rules.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Length in bytes of every hash in the log (SHA-256).
pub const HASH_LEN: usize = 32;

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// Domain separation byte of a leaf hash.
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation byte of an interior node hash.
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
///
/// Always exactly [`HASH_LEN`] bytes: every parser refuses any other length, so a truncated
/// or padded hash can never reach a proof verifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; HASH_LEN]);

/// Why a byte string or text is not a [`struct@Hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The decoded bytes are not 32 bytes long.
    #[error("a hash must be {HASH_LEN} bytes, got {0}")]
    WrongLength(usize),
    /// The text is not standard, padded, canonical base64 (RFC 4648 §4).
    #[error("a hash in base64 must be standard padded base64")]
    Base64,
    /// The text is not 64 hexadecimal digits.
    #[error("a hash in hex must be 64 hexadecimal digits")]
    Hex,
}

impl Hash {
    /// The hash with these bytes.
    #[must_use]
    pub const fn new(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// The hash's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// The hash's bytes, by value.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; HASH_LEN] {
        self.0
    }

    /// Parses exactly 32 bytes.
    ///
    /// # Errors
    /// [`HashParseError::WrongLength`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashParseError> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| HashParseError::WrongLength(bytes.len()))
    }

    /// Parses standard padded base64 (as in checkpoints and the proof vectors).
    ///
    /// # Errors
    /// [`HashParseError::Base64`] for text that is not canonical base64,
    /// [`HashParseError::WrongLength`] if it does not decode to 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, HashParseError> {
        // 32 bytes are 44 base64 characters; refuse long input before allocating for it.
        if text.len() > 4 * HASH_LEN {
            return Err(HashParseError::WrongLength(text.len() / 4 * 3));
        }
        let bytes = STANDARD.decode(text).map_err(|_| HashParseError::Base64)?;
        Self::from_slice(&bytes)
    }

    /// Standard padded base64 of the hash (44 characters).
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses 64 hexadecimal digits (either case).
    ///
    /// # Errors
    /// [`HashParseError::Hex`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        let text = text.as_bytes();
        if text.len() != 2 * HASH_LEN {
            return Err(HashParseError::Hex);
        }
        let mut out = [0u8; HASH_LEN];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let hi = hex_digit(pair[0]).ok_or(HashParseError::Hex)?;
            let lo = hex_digit(pair[1]).ok_or(HashParseError::Hex)?;
            *byte = (hi << 4) | lo;
        }
        Ok(Self(out))
    }

    /// Lowercase hexadecimal (64 digits).
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }
}

impl From<Hash> for [u8; HASH_LEN] {
    fn from(hash: Hash) -> Self {
        hash.0
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = HashParseError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_slice(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    /// Lowercase hexadecimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> Hash {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// Leaves up to this size are hashed from one stack buffer with aws-lc's one-shot SHA-256;
/// larger ones are streamed through a digest context.
const ONE_SHOT_LEAF_MAX: usize = 1024;

/// The hash of a leaf: SHA-256(0x00 ‖ data) (RFC 9162 §2.1.1).
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    if data.len() <= ONE_SHOT_LEAF_MAX {
        let mut buf = [0u8; 1 + ONE_SHOT_LEAF_MAX];
        buf[0] = LEAF_PREFIX;
        buf[1..=data.len()].copy_from_slice(data);
        sha256(&buf[..=data.len()])
    } else {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&[LEAF_PREFIX]);
        ctx.update(data);
        let d = ctx.finish();
        let mut out = [0u8; HASH_LEN];
        out.copy_from_slice(d.as_ref());
        Hash(out)
    }
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1).
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = NODE_PREFIX;
    buf[1..=HASH_LEN].copy_from_slice(&left.0);
    buf[1 + HASH_LEN..].copy_from_slice(&right.0);
    sha256(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        assert_eq!(sha256(b""), EMPTY_ROOT);
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let big = vec![7u8; 5000];
        let mut pre = vec![0u8];
        pre.extend_from_slice(&big);
        assert_eq!(leaf_hash(&big), sha256(&pre));
        let exact = vec![9u8; ONE_SHOT_LEAF_MAX];
        let mut pre = vec![0u8];
        pre.extend_from_slice(&exact);
        assert_eq!(leaf_hash(&exact), sha256(&pre));
        let (l, r) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut cat = vec![1u8];
        cat.extend_from_slice(l.as_bytes());
        cat.extend_from_slice(r.as_bytes());
        assert_eq!(node_hash(&l, &r), sha256(&cat));
    }

    #[test]
    fn parsing_refuses_wrong_lengths() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Ok(h));
        assert_eq!(
            Hash::from_slice(&[0u8; 31]),
            Err(HashParseError::WrongLength(31))
        );
        assert_eq!(
            Hash::from_slice(&[0u8; 33]),
            Err(HashParseError::WrongLength(33))
        );
        // "don't care 1": 12 bytes, as in the proof vectors.
        assert_eq!(
            Hash::from_base64("ZG9uJ3QgY2FyZSAx"),
            Err(HashParseError::WrongLength(12))
        );
        assert_eq!(
            Hash::from_base64("not base64!"),
            Err(HashParseError::Base64)
        );
        // Unpadded and non-canonical forms are refused.
        let b64 = h.to_base64();
        assert_eq!(
            Hash::from_base64(b64.trim_end_matches('=')),
            Err(HashParseError::Base64)
        );
        assert!(Hash::from_base64(&"A".repeat(10_000)).is_err());
        assert_eq!(Hash::from_hex("00"), Err(HashParseError::Hex));
        assert_eq!(Hash::from_hex(&"g".repeat(64)), Err(HashParseError::Hex));
        assert_eq!(format!("{h:?}"), format!("Hash({})", h.to_hex()));
    }
}
