//! Record encryption and protected index terms, under one organisation's data key.
//!
//! From each data key two keys are derived with HKDF-SHA-256, one per use, so that the
//! encryption key and the index key are independent:
//! - `caldicott/v1/record-aead`: AES-256-GCM for record payloads;
//! - `caldicott/v1/index-hmac`: HMAC-SHA-256 for index terms.
//!
//! A record's ciphertext is `0x01 || nonce(12) || AES-256-GCM(0x01 || body) || tag(16)`
//! with a random nonce, and its associated data names the organisation, resource type, id, version,
//! data-key version and tombstone flag. A ciphertext copied to any other row therefore fails
//! authentication instead of decrypting to the wrong patient's record.
//!
//! Random 96-bit nonces are safe for about 2^32 encryptions under one key; data-key
//! rotation (`caldicott keys rotate --data-keys`) starts a fresh key well before that.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::keys::DataKey;

const RECORD_FORMAT_V1: u8 = 1;
const PAYLOAD_FORMAT_V1: u8 = 1;
/// Length of a stored index term: a truncated HMAC-SHA-256 (128 bits leave collisions
/// negligible for any realistic index and keep the index small).
pub const TERM_LEN: usize = 16;

/// A protected index term as stored: an HMAC of the term's name and value.
pub type TermHash = [u8; TERM_LEN];

/// The keys derived from one data key.
pub(crate) struct RecordKeys {
    aead: LessSafeKey,
    index: hmac::Key,
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn derive(dek: &DataKey, info: &[u8]) -> Zeroizing<[u8; 32]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"caldicott vault").extract(dek.bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    // Expanding 32 bytes from SHA-256 HKDF cannot fail (the limit is 255 * 32 bytes).
    if let Ok(okm) = prk.expand(&[info], Len32) {
        let _ = okm.fill(out.as_mut());
    }
    out
}

impl RecordKeys {
    pub(crate) fn derive(dek: &DataKey) -> Self {
        let enc = derive(dek, b"caldicott/v1/record-aead");
        let idx = derive(dek, b"caldicott/v1/index-hmac");
        // AES-256 accepts any 32-byte key.
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, enc.as_ref()).unwrap_or_else(|_| unreachable!()),
        );
        Self {
            aead,
            index: hmac::Key::new(hmac::HMAC_SHA256, idx.as_ref()),
        }
    }

    /// Seals a record's body. The payload is written straight into the output buffer and
    /// encrypted in place: one allocation, and no plaintext copy left behind to wipe.
    pub(crate) fn seal(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = fresh_nonce()?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + 1 + body.len() + 16);
        out.push(RECORD_FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.push(PAYLOAD_FORMAT_V1);
        out.extend_from_slice(body);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| CryptoError)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `sealed` in place and returns where the plaintext lies within it. On
    /// failure the buffer is wiped (it may hold unauthenticated plaintext).
    pub(crate) fn open_in_place(
        &self,
        aad: &[u8],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>, CryptoError> {
        const START: usize = 1 + NONCE_LEN;
        if sealed.len() < START + 16 || sealed[0] != RECORD_FORMAT_V1 {
            return Err(CryptoError);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..START]).map_err(|_| CryptoError)?;
        match self
            .aead
            .open_in_place(nonce, Aad::from(aad), &mut sealed[START..])
        {
            Ok(plain) => Ok(START..START + plain.len()),
            Err(_) => {
                zeroize::Zeroize::zeroize(sealed);
                Err(CryptoError)
            }
        }
    }

    pub(crate) fn term(&self, name: &str, value: &str) -> TermHash {
        let mut ctx = hmac::Context::with_key(&self.index);
        ctx.update(&(name.len() as u32).to_be_bytes());
        ctx.update(name.as_bytes());
        ctx.update(value.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; TERM_LEN];
        out.copy_from_slice(&tag.as_ref()[..TERM_LEN]);
        out
    }
}

/// Authentication failed (or, never in practice, the random generator failed).
#[derive(Debug)]
pub(crate) struct CryptoError;

/// The associated data of one record version.
pub(crate) fn record_aad(
    org: &str,
    rtype: &str,
    id: &str,
    version: u64,
    dek_version: u32,
    deleted: bool,
) -> RecordAad {
    const PREFIX: &[u8] = b"caldicott record v1\0";
    let mut a = RecordAad {
        inline: [0; AAD_INLINE],
        len: 0,
        heap: Vec::new(),
    };
    let total = PREFIX.len() + 6 + org.len() + rtype.len() + id.len() + 8 + 4 + 1;
    if total > AAD_INLINE {
        a.heap.reserve(total);
    }
    a.push(PREFIX);
    for s in [org, rtype, id] {
        // Names longer than 64 KiB never pass validation; truncating the length here
        // could only make authentication fail, never succeed.
        a.push(&(s.len() as u16).to_be_bytes());
        a.push(s.as_bytes());
    }
    a.push(&version.to_be_bytes());
    a.push(&dek_version.to_be_bytes());
    a.push(&[u8::from(deleted)]);
    a
}

/// Associated data fits on the stack for every valid name (ODS code ≤ 10, resource type
/// and id ≤ 64 bytes); longer names (only ever seen in tampered rows) spill to the heap.
const AAD_INLINE: usize = 192;

/// The associated data of one record version, built without allocating.
pub(crate) struct RecordAad {
    inline: [u8; AAD_INLINE],
    len: usize,
    heap: Vec<u8>,
}

impl RecordAad {
    fn push(&mut self, bytes: &[u8]) {
        if self.heap.capacity() > 0 {
            self.heap.extend_from_slice(bytes);
        } else {
            self.inline[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

impl std::ops::Deref for RecordAad {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.heap.capacity() > 0 {
            &self.heap
        } else {
            &self.inline[..self.len]
        }
    }
}

/// A term to index a record under, such as `("identifier", "https://fhir.nhs.uk/Id/nhs-number|9434765919")`.
/// Only its keyed hash is stored. The caller derives terms from the body (the vault asks it
/// again, through an [`Indexer`](crate::Indexer), when a data-key rotation re-hashes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexTerm {
    /// The search parameter, e.g. `identifier` or `patient`.
    pub name: String,
    /// The value, e.g. `system|value` for a token.
    pub value: String,
}

impl IndexTerm {
    /// A term from its parts.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Where the body lies in a decrypted payload (`PAYLOAD_FORMAT_V1 || body`). Only
/// authenticated plaintext reaches this function, so `None` means a format from a newer
/// version of Caldicott.
pub(crate) fn payload_body(p: &[u8]) -> Option<std::ops::Range<usize>> {
    (p.first() == Some(&PAYLOAD_FORMAT_V1)).then_some(1..p.len())
}

/// Random bytes drawn per thread in blocks, so that sealing a batch asks the system's
/// generator once per few hundred records rather than once per record.
const NONCE_BLOCK: usize = NONCE_LEN * 340;

/// A fresh random 96-bit nonce: uniformly random from the system's CSPRNG like any
/// other, only fetched in blocks. Every nonce is handed out once; nonces are public (they
/// are stored beside the ciphertext), so the block needs no wiping. (A process that forked
/// without exec would share the block with its child; Caldicott never does.)
fn fresh_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    thread_local! {
        static BLOCK: std::cell::RefCell<(Vec<u8>, usize)> =
            const { std::cell::RefCell::new((Vec::new(), 0)) };
    }
    BLOCK.with(|b| {
        let mut b = b.borrow_mut();
        let (buf, pos) = &mut *b;
        if *pos + NONCE_LEN > buf.len() {
            buf.resize(NONCE_BLOCK, 0);
            SystemRandom::new().fill(buf).map_err(|_| CryptoError)?;
            *pos = 0;
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&buf[*pos..*pos + NONCE_LEN]);
        *pos += NONCE_LEN;
        Ok(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_never_handed_out_twice() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(NONCE_BLOCK / NONCE_LEN) * 3 + 7 {
            assert!(seen.insert(fresh_nonce().unwrap()));
        }
    }

    fn keys() -> RecordKeys {
        RecordKeys::derive(&DataKey::generate().unwrap())
    }

    #[test]
    fn seal_open_and_aad_binding() {
        let k = keys();
        let aad = record_aad("A81001", "Patient", "p1", 1, 1, false);
        let c = k.seal(&aad, b"hello").unwrap();
        let mut buf = c.clone();
        let range = k.open_in_place(&aad, &mut buf).unwrap();
        let body = payload_body(&buf[range.clone()]).unwrap();
        assert_eq!(&buf[range][body], b"hello");
        for other in [
            record_aad("B82002", "Patient", "p1", 1, 1, false),
            record_aad("A81001", "Observation", "p1", 1, 1, false),
            record_aad("A81001", "Patient", "p2", 1, 1, false),
            record_aad("A81001", "Patient", "p1", 2, 1, false),
            record_aad("A81001", "Patient", "p1", 1, 2, false),
            record_aad("A81001", "Patient", "p1", 1, 1, true),
        ] {
            assert!(k.open_in_place(&other, &mut c.clone()).is_err());
        }
        assert!(
            keys().open_in_place(&aad, &mut c.clone()).is_err(),
            "another key must not open it"
        );
        for i in 0..c.len() {
            let mut t = c.clone();
            t[i] ^= 0x80;
            assert!(
                k.open_in_place(&aad, &mut t).is_err(),
                "flip at byte {i} not detected"
            );
        }
        assert!(
            k.open_in_place(&aad, &mut c[..c.len() - 1].to_vec())
                .is_err()
        );
    }

    #[test]
    fn aad_fields_cannot_be_shifted() {
        // Length prefixes stop ("AB","C") and ("A","BC") from sharing associated data.
        assert_ne!(
            &*record_aad("AB", "C", "x", 1, 1, false),
            &*record_aad("A", "BC", "x", 1, 1, false)
        );
        // Long names spill to the heap and still bind every field.
        let long = "x".repeat(300);
        assert_ne!(
            &*record_aad(&long, "C", "x", 1, 1, false),
            &*record_aad(&long, "C", "x", 2, 1, false)
        );
        assert!(record_aad(&long, "C", "x", 1, 1, false).len() > 300);
    }

    #[test]
    fn terms_are_keyed_and_separated() {
        let k = keys();
        assert_eq!(k.term("identifier", "x|1"), k.term("identifier", "x|1"));
        assert_ne!(
            k.term("identifier", "x|1"),
            keys().term("identifier", "x|1")
        );
        assert_ne!(k.term("ab", "c"), k.term("a", "bc"));
    }
}
