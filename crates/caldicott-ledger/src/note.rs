//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and the key strings of
//! golang.org/x/mod/sumdb/note:
//!
//! - verifier key: `<name>+<8 hex key id>+<base64(0x01 ‖ 32-byte public key)>`
//! - signer key: `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ 32-byte seed)>`
//! - key id: the first 4 bytes, big-endian, of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)
//! - a signed note: the text (ending in a newline), a blank line, then one line
//!   `— <name> <base64(key id ‖ signature)>` per signature, each ending in a newline.
//!
//! Ed25519 is aws-lc-rs's. Secret seeds live in [`Zeroizing`] buffers and inside aws-lc
//! (which cleanses key memory when it frees it); no `Debug`, `Display` or error message
//! shows them.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::hash::sha256;

/// Signature type byte of Ed25519 keys and signatures.
pub const ALG_ED25519: u8 = 0x01;

/// Most signatures [`Note::parse`] accepts (the spec requires at least 16; Go's 100).
pub const MAX_SIGNATURES: usize = 100;

/// Length of an Ed25519 public key or seed.
pub const ED25519_KEY_LEN: usize = 32;

/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;

const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key or key string was refused. Never contains secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key name is empty or has a space, a `+` or a control character.
    #[error("invalid key name: it must be non-empty, without spaces, '+' or control characters")]
    InvalidName,
    /// A signer key string does not start with `PRIVATE+KEY+`.
    #[error("a signer key must start with PRIVATE+KEY+")]
    NotASignerKey,
    /// The key string does not have the `<name>+<key id>+<key>` shape.
    #[error("a key string must be <name>+<8 hex digits>+<base64 key>")]
    Malformed,
    /// The key id is not 8 hexadecimal digits.
    #[error("the key id must be 8 hexadecimal digits")]
    MalformedKeyId,
    /// The key material is not standard padded base64.
    #[error("the key material is not standard padded base64")]
    MalformedKeyData,
    /// The signature type byte is not Ed25519's.
    #[error("unsupported signature type 0x{0:02x} (only Ed25519, 0x01)")]
    UnsupportedAlgorithm(u8),
    /// The key material is not 32 bytes after the type byte.
    #[error("an Ed25519 key is 32 bytes, got {0}")]
    WrongKeyLength(usize),
    /// The key id in the string is not the one computed from the name and key.
    #[error("key id {given:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// The id in the string.
        given: u32,
        /// The id computed from the name and public key.
        computed: u32,
    },
    /// aws-lc refused the key or the random generator failed.
    #[error("the cryptographic library refused the key or failed")]
    Crypto,
}

/// Why a note was refused, or could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not valid UTF-8.
    #[error("the note is not valid UTF-8 (byte {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The note holds an ASCII control character other than newline (tab and CR included).
    #[error("the note holds control character U+{code:04X} at byte {offset}")]
    ControlCharacter {
        /// Byte offset.
        offset: usize,
        /// The character.
        code: u32,
    },
    /// The text (or the note) does not end with a newline.
    #[error("the note text must end with a newline")]
    NoFinalNewline,
    /// No blank line separates the text from the signatures.
    #[error("no blank line separates the text from the signatures")]
    NoSignatureBlock,
    /// There is no signature line after the blank line.
    #[error("the note has no signature lines")]
    NoSignatures,
    /// A signature line is malformed.
    #[error("signature line {line} is malformed: {reason}")]
    MalformedSignature {
        /// 1-based number of the signature line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// More than [`MAX_SIGNATURES`] signatures.
    #[error("the note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature from a known key does not verify: the whole note is refused.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key id.
        key_id: u32,
    },
    /// Two different known keys share this name and key id.
    #[error("ambiguous key {name}+{key_id:08x}: several known keys have this name and id")]
    AmbiguousKey {
        /// Key name.
        name: String,
        /// Key id.
        key_id: u32,
    },
    /// No signature is from a known key.
    #[error("the note has no signature from a known key ({unknown} from unknown keys)")]
    NoKnownSignature {
        /// Number of signatures from unknown keys.
        unknown: usize,
    },
    /// Signing was asked with no signer.
    #[error("at least one signer is needed")]
    NoSigners,
}

/// The key id of a key: the first 4 bytes, big-endian, of
/// SHA-256(`name` ‖ 0x0A ‖ `typed_key`), where `typed_key` is the signature type byte
/// followed by the public key.
#[must_use]
pub fn key_id(name: &str, typed_key: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 1 + typed_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(typed_key);
    let h = sha256(&buf);
    let b = h.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn ed25519_key_id(name: &str, public_key: &[u8; ED25519_KEY_LEN]) -> u32 {
    let mut typed = [0u8; 1 + ED25519_KEY_LEN];
    typed[0] = ALG_ED25519;
    typed[1..].copy_from_slice(public_key);
    key_id(name, &typed)
}

/// Whether `name` can be a key name: non-empty, no Unicode white space, no `+`, and (so
/// that it fits in a note) no control character.
#[must_use]
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn parse_key_id(hex: &str) -> Result<u32, KeyError> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::MalformedKeyId);
    }
    u32::from_str_radix(hex, 16).map_err(|_| KeyError::MalformedKeyId)
}

/// Splits `<name>+<key id>+<base64>` (the base64 may itself hold `+`).
fn split_key(s: &str) -> Result<(&str, u32, &str), KeyError> {
    let (name, rest) = s.split_once('+').ok_or(KeyError::Malformed)?;
    let (id, data) = rest.split_once('+').ok_or(KeyError::Malformed)?;
    if !is_valid_key_name(name) {
        return Err(KeyError::InvalidName);
    }
    Ok((name, parse_key_id(id)?, data))
}

/// Decodes `base64(0x01 ‖ 32 bytes)` into a zeroised buffer.
fn decode_typed_key(data: &str) -> Result<Zeroizing<[u8; ED25519_KEY_LEN]>, KeyError> {
    if data.len() > 4 * (ED25519_KEY_LEN + 4) {
        return Err(KeyError::WrongKeyLength(data.len() / 4 * 3));
    }
    let raw = Zeroizing::new(
        STANDARD
            .decode(data)
            .map_err(|_| KeyError::MalformedKeyData)?,
    );
    let (&alg, key) = raw.split_first().ok_or(KeyError::MalformedKeyData)?;
    if alg != ALG_ED25519 {
        return Err(KeyError::UnsupportedAlgorithm(alg));
    }
    let mut out = Zeroizing::new([0u8; ED25519_KEY_LEN]);
    if key.len() != ED25519_KEY_LEN {
        return Err(KeyError::WrongKeyLength(key.len()));
    }
    out.copy_from_slice(key);
    Ok(out)
}

fn encode_typed_key(key: &[u8; ED25519_KEY_LEN]) -> Zeroizing<String> {
    let mut typed = Zeroizing::new([0u8; 1 + ED25519_KEY_LEN]);
    typed[0] = ALG_ED25519;
    typed[1..].copy_from_slice(key);
    Zeroizing::new(STANDARD.encode(&typed[..]))
}

/// A public Ed25519 key that verifies note signatures, with its name and key id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    public_key: [u8; ED25519_KEY_LEN],
}

impl VerifierKey {
    /// The verifier key of `public_key` under `name`; the key id is computed.
    ///
    /// # Errors
    /// [`KeyError::InvalidName`].
    pub fn new(name: &str, public_key: [u8; ED25519_KEY_LEN]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &public_key),
            public_key,
        })
    }

    /// Parses a verifier key string, `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`.
    ///
    /// # Errors
    /// A [`KeyError`] naming what is wrong; [`KeyError::KeyIdMismatch`] when the id does
    /// not belong to the name and key.
    pub fn parse(vkey: &str) -> Result<Self, KeyError> {
        let (name, given, data) = split_key(vkey)?;
        let public_key = *decode_typed_key(data)?;
        let key = Self::new(name, public_key)?;
        if key.key_id != given {
            return Err(KeyError::KeyIdMismatch {
                given,
                computed: key.key_id,
            });
        }
        Ok(key)
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    #[must_use]
    pub fn public_key(&self) -> &[u8; ED25519_KEY_LEN] {
        &self.public_key
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Display for VerifierKey {
    /// The verifier key string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_typed_key(&self.public_key).as_str()
        )
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

/// A private Ed25519 key that signs notes, with its name and key id.
///
/// The seed is kept in a zeroised buffer (for [`SignerKey::to_key_string`]) and in aws-lc's
/// key object, which cleanses it when freed. `Debug` shows only the name and key id;
/// there is no `Display` and no `Clone`.
pub struct SignerKey {
    name: String,
    key_id: u32,
    public_key: [u8; ED25519_KEY_LEN],
    seed: Zeroizing<[u8; ED25519_KEY_LEN]>,
    key_pair: Ed25519KeyPair,
}

impl SignerKey {
    /// A new random key under `name` (seed from aws-lc's system random generator).
    ///
    /// # Errors
    /// [`KeyError::InvalidName`], or [`KeyError::Crypto`] if the generator fails.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; ED25519_KEY_LEN]);
        SystemRandom::new()
            .fill(&mut seed[..])
            .map_err(|_| KeyError::Crypto)?;
        Self::from_seed(name, &seed)
    }

    /// The key with this 32-byte Ed25519 seed (RFC 8032 private key) under `name`.
    ///
    /// # Errors
    /// [`KeyError::InvalidName`], [`KeyError::Crypto`].
    pub fn from_seed(name: &str, seed: &[u8; ED25519_KEY_LEN]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError::Crypto)?;
        let public_key: [u8; ED25519_KEY_LEN] = key_pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Crypto)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &public_key),
            public_key,
            seed: Zeroizing::new(*seed),
            key_pair,
        })
    }

    /// Parses a signer key string,
    /// `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ seed)>`.
    ///
    /// # Errors
    /// A [`KeyError`] naming what is wrong (never quoting the key);
    /// [`KeyError::KeyIdMismatch`] when the id is not that of the derived public key.
    pub fn parse(skey: &str) -> Result<Self, KeyError> {
        let rest = skey
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(KeyError::NotASignerKey)?;
        let (name, given, data) = split_key(rest)?;
        let seed = decode_typed_key(data)?;
        let key = Self::from_seed(name, &seed)?;
        if key.key_id != given {
            return Err(KeyError::KeyIdMismatch {
                given,
                computed: key.key_id,
            });
        }
        Ok(key)
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier key.
    #[must_use]
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: self.public_key,
        }
    }

    /// The signer key string. Secret: it is returned in a buffer zeroised on drop.
    #[must_use]
    pub fn to_key_string(&self) -> Zeroizing<String> {
        let data = encode_typed_key(&self.seed);
        let id = format!("{:08x}", self.key_id);
        // Sized up front, so the secret is never left behind in a reallocated buffer.
        let mut out = Zeroizing::new(String::with_capacity(
            PRIVATE_KEY_PREFIX.len() + self.name.len() + 1 + id.len() + 1 + data.len(),
        ));
        out.push_str(PRIVATE_KEY_PREFIX);
        out.push_str(&self.name);
        out.push('+');
        out.push_str(&id);
        out.push('+');
        out.push_str(&data);
        out
    }

    /// The Ed25519 signature of `message` (deterministic, RFC 8032).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> [u8; ED25519_SIGNATURE_LEN] {
        let sig = self.key_pair.sign(message);
        let mut out = [0u8; ED25519_SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// The key name on the line.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (the first 4 bytes of the decoded signature).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key id.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The line, `— <name> <base64(key id ‖ signature)>` with its newline.
    #[must_use]
    pub fn line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }

    fn parse(line: &str, number: usize) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::MalformedSignature {
            line: number,
            reason,
        };
        let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(bad(
            "it does not start with an em dash (U+2014) and a space",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(bad("no space between the key name and the signature"))?;
        if !is_valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("the signature is not standard padded base64"))?;
        if raw.len() < 5 {
            return Err(bad("the signature is shorter than a key id and one byte"));
        }
        let (id, signature) = raw.split_at(4);
        Ok(Self {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            signature: signature.to_vec(),
        })
    }

    fn same_key(&self, other: &Self) -> bool {
        self.name == other.name && self.key_id == other.key_id
    }
}

/// Checks note bytes are UTF-8 without control characters other than newline.
fn check_note_chars(bytes: &[u8]) -> Result<&str, NoteError> {
    let text = std::str::from_utf8(bytes).map_err(|e| NoteError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some((offset, c)) = text
        .char_indices()
        .find(|&(_, c)| c < '\u{20}' && c != '\n')
    {
        return Err(NoteError::ControlCharacter {
            offset,
            code: u32::from(c),
        });
    }
    Ok(text)
}

/// A parsed signed note: its text and signatures, not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note without verifying it: UTF-8 without control characters other
    /// than newline; the text is everything up to and including the newline before the
    /// last blank line; then 1 to [`MAX_SIGNATURES`] well-formed signature lines, each
    /// ending in a newline.
    ///
    /// # Errors
    /// A [`NoteError`] naming the first defect.
    pub fn parse(msg: &[u8]) -> Result<Self, NoteError> {
        let msg = check_note_chars(msg)?;
        let split = msg.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::NoFinalNewline);
        };
        let mut signatures = Vec::new();
        for (i, line) in sigs.split('\n').enumerate() {
            if i == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(NoteSignature::parse(line, i + 1)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// An unsigned note with this text.
    ///
    /// # Errors
    /// [`NoteError::NoFinalNewline`], [`NoteError::ControlCharacter`].
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_note_chars(text.as_bytes())?;
        if !text.ends_with('\n') {
            return Err(NoteError::NoFinalNewline);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// The signed text, including its final newline.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signatures, in order.
    #[must_use]
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds `signer`'s signature of the text, replacing an earlier one by the same key
    /// (e.g. a witness cosigning a checkpoint).
    pub fn add_signature(&mut self, signer: &SignerKey) {
        let sig = NoteSignature {
            name: signer.name.clone(),
            key_id: signer.key_id,
            signature: signer.sign(self.text.as_bytes()).to_vec(),
        };
        self.signatures.retain(|s| !s.same_key(&sig));
        self.signatures.push(sig);
    }

    /// The signed note: text, blank line, signature lines.
    ///
    /// # Errors
    /// [`NoteError::NoSignatures`] for a note without signatures.
    pub fn encode(&self) -> Result<String, NoteError> {
        if self.signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let mut out = String::with_capacity(self.text.len() + 1 + 100 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        Ok(out)
    }

    /// Verifies the note against the known keys (c2sp.org/signed-note §Signatures):
    /// signatures from unknown keys (no known key with both that name and that id) are
    /// ignored; every signature from a known key must verify; at least one must.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] for a known key's bad signature,
    /// [`NoteError::AmbiguousKey`] when two different known keys share a name and id,
    /// [`NoteError::NoKnownSignature`] when no known key signed.
    pub fn verify(&self, known: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
        let mut verified: Vec<NoteSignature> = Vec::new();
        let mut unverified: Vec<NoteSignature> = Vec::new();
        for sig in &self.signatures {
            let mut matches = known
                .iter()
                .filter(|k| k.name == sig.name && k.key_id == sig.key_id);
            let Some(key) = matches.next() else {
                if !unverified.contains(sig) {
                    unverified.push(sig.clone());
                }
                continue;
            };
            if matches.any(|other| other.public_key != key.public_key) {
                return Err(NoteError::AmbiguousKey {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !key.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !verified.iter().any(|v| v.same_key(sig)) {
                verified.push(sig.clone());
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature {
                unknown: unverified.len(),
            });
        }
        Ok(VerifiedNote {
            text: self.text.clone(),
            verified,
            unverified,
        })
    }
}

/// A note whose signatures from known keys all verified, at least one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    text: String,
    verified: Vec<NoteSignature>,
    unverified: Vec<NoteSignature>,
}

impl VerifiedNote {
    /// The signed text, including its final newline.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signatures that verified, one per key.
    #[must_use]
    pub fn verified(&self) -> &[NoteSignature] {
        &self.verified
    }

    /// The signatures from unknown keys, not checked (duplicates removed).
    #[must_use]
    pub fn unverified(&self) -> &[NoteSignature] {
        &self.unverified
    }
}

/// Signs `text` (which must end with a newline) with each signer, in order, and returns
/// the signed note.
///
/// # Errors
/// [`NoteError::NoSigners`], [`NoteError::NoFinalNewline`], [`NoteError::ControlCharacter`].
pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<String, NoteError> {
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    let mut note = Note::new(text)?;
    for s in signers {
        note.add_signature(s);
    }
    note.encode()
}

/// Parses and verifies a signed note against the known keys: [`Note::parse`] then
/// [`Note::verify`].
///
/// # Errors
/// As those two.
pub fn open(msg: &[u8], known: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
    Note::parse(msg)?.verify(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    #[test]
    fn key_strings_round_trip() {
        let s = SignerKey::parse(SKEY).unwrap();
        assert_eq!(s.to_key_string().as_str(), SKEY);
        assert_eq!(s.verifier_key().to_string(), VKEY);
        assert_eq!(VerifierKey::parse(VKEY).unwrap(), s.verifier_key());
        assert_eq!(s.key_id(), 0xc74f_20a3);
        let debug = format!("{s:?}");
        assert_eq!(
            debug,
            "SignerKey { name: \"PeterNeumann\", key_id: c74f20a3, .. }"
        );
    }

    #[test]
    fn bad_key_strings() {
        assert_eq!(VerifierKey::parse("nope"), Err(KeyError::Malformed));
        assert_eq!(
            VerifierKey::parse("a b+c74f20a3+AQ=="),
            Err(KeyError::InvalidName)
        );
        assert_eq!(
            VerifierKey::parse("PeterNeumann+c74f20a+ARpc"),
            Err(KeyError::MalformedKeyId)
        );
        assert_eq!(
            VerifierKey::parse("PeterNeumann+c74f20a3+!!!!"),
            Err(KeyError::MalformedKeyData)
        );
        assert_eq!(
            VerifierKey::parse(&VKEY.replace("c74f20a3", "c74f20a4")),
            Err(KeyError::KeyIdMismatch {
                given: 0xc74f_20a4,
                computed: 0xc74f_20a3
            })
        );
        assert_eq!(
            VerifierKey::parse("x+00000000+AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(KeyError::UnsupportedAlgorithm(2))
        );
        assert_eq!(
            VerifierKey::parse("x+00000000+AQAA"),
            Err(KeyError::WrongKeyLength(2))
        );
        assert_eq!(
            SignerKey::parse(VKEY).map(|_| ()),
            Err(KeyError::NotASignerKey)
        );
        let err = SignerKey::parse(&SKEY.replace("c74f20a3", "00000000")).unwrap_err();
        assert!(!err.to_string().contains("AYEKFALV"));
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let s = SignerKey::generate("example.com/log").unwrap();
        let v = s.verifier_key();
        let msg = sign("hello\n", &[&s]).unwrap();
        let opened = open(msg.as_bytes(), std::slice::from_ref(&v)).unwrap();
        assert_eq!(opened.text(), "hello\n");
        let again = SignerKey::parse(&s.to_key_string()).unwrap();
        assert_eq!(again.verifier_key(), v);
        assert!(SignerKey::generate("bad name").is_err());
    }
}
