//! The recipient's age X25519 public key (`age1…`), parsed strictly.
//!
//! Every file of a release is encrypted to exactly one recipient: the researcher's or
//! analyst's age key named in the agreement. A mistake here sends patient data to the wrong
//! place or protects it with nothing, so the parser says precisely what is wrong, and it
//! never repeats the string it was given (someone may paste their *secret* key by mistake;
//! it must not end up in a log).
//!
//! It also refuses low-order X25519 points (such as 32 zero bytes, which `age1qqq…q`
//! encodes): age 0.12 panics when asked to encrypt to one, and a shared secret of zero
//! would protect nothing anyway.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::rand::SystemRandom;
use bech32::primitives::decode::CheckedHrpstring;

/// Length of an X25519 public key.
const X25519_KEY_LEN: usize = 32;

/// Why a recipient key was refused. Never contains the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    /// Nothing but white space.
    #[error("the recipient key is empty")]
    Empty,
    /// An age identity (secret key) was given instead of the public key.
    #[error(
        "this is an age secret key (AGE-SECRET-KEY-1…), not a recipient: ask the recipient for \
         their public key (age1…) and treat that secret key as disclosed"
    )]
    SecretKey,
    /// An SSH public key: age can encrypt to one, but releases require an age X25519 key.
    #[error(
        "SSH keys are not accepted as recipients: an age X25519 public key (age1…) is required"
    )]
    SshKey,
    /// Not of the form `age1…`.
    #[error("an age X25519 public key starts with \"age1\"")]
    WrongPrefix,
    /// Another age recipient type (a plugin such as `age1yubikey1…`, or a post-quantum key).
    #[error(
        "this is an age recipient of another type (a plugin or post-quantum key, prefix \
         \"{prefix}1\"): only X25519 keys (age1…) are accepted"
    )]
    OtherType {
        /// The human-readable part before the last `1`, at most 20 characters (not secret:
        /// it names the type, such as `age1yubikey`).
        prefix: PrefixText,
    },
    /// Not valid Bech32: a mistyped, missing or extra character, mixed case, or a wrong
    /// checksum.
    #[error(
        "the recipient key is not valid Bech32 (a character is mistyped, missing or extra, or \
         the case is mixed): its checksum does not match"
    )]
    InvalidBech32,
    /// The key decodes to a number of bytes other than 32.
    #[error("the recipient key holds {0} bytes; an X25519 public key holds 32")]
    WrongLength(usize),
    /// A low-order X25519 point: any shared secret with it is zero.
    #[error(
        "the recipient key is a low-order X25519 point: encrypting to it would protect nothing"
    )]
    LowOrderPoint,
    /// The system random generator failed while checking the key.
    #[error("the random generator failed while checking the recipient key")]
    Random,
}

/// A short, non-secret piece of text kept in an error (the type prefix of a recipient).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PrefixText {
    bytes: [u8; 20],
    len: usize,
}

impl PrefixText {
    fn new(text: &str) -> Self {
        let mut bytes = [0u8; 20];
        // ASCII only (checked by the caller), so any cut is on a character boundary.
        let len = text.len().min(bytes.len());
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        Self { bytes, len }
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Display for PrefixText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PrefixText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A validated age X25519 recipient: the public key every file of a release is encrypted
/// to. `Display` gives the canonical lower-case `age1…` string.
#[derive(Clone)]
pub struct RecipientKey {
    recipient: age::x25519::Recipient,
    text: String,
}

impl RecipientKey {
    /// Parses `age1…` (surrounding white space ignored; lower or upper case, not mixed).
    ///
    /// # Errors
    /// A [`RecipientError`] naming what is wrong.
    pub fn parse(key: &str) -> Result<Self, RecipientError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(RecipientError::Empty);
        }
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("age-secret-key-") {
            return Err(RecipientError::SecretKey);
        }
        if lower.starts_with("ssh-") || lower.starts_with("ecdsa-") {
            return Err(RecipientError::SshKey);
        }
        if !lower.starts_with("age1") || !key.is_ascii() {
            return Err(RecipientError::WrongPrefix);
        }
        // The human-readable part is everything before the last `1`; X25519's is "age".
        if let Some((hrp, _)) = lower.rsplit_once('1')
            && hrp != "age"
        {
            return Err(RecipientError::OtherType {
                prefix: PrefixText::new(hrp),
            });
        }
        let checked = CheckedHrpstring::new::<bech32::Bech32>(key)
            .map_err(|_| RecipientError::InvalidBech32)?;
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let public: [u8; X25519_KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| RecipientError::WrongLength(bytes.len()))?;
        check_not_low_order(&public)?;
        // age's own parser has the last word on what age accepts.
        let recipient =
            age::x25519::Recipient::from_str(&lower).map_err(|_| RecipientError::InvalidBech32)?;
        Ok(Self {
            text: recipient.to_string(),
            recipient,
        })
    }

    pub(crate) fn age(&self) -> &age::x25519::Recipient {
        &self.recipient
    }

    /// The canonical `age1…` string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Refuses a low-order point: X25519 with any clamped scalar gives zero exactly for those,
/// and aws-lc refuses an all-zero shared secret (RFC 7748 §6.1), so one agreement with a
/// throwaway key decides it.
fn check_not_low_order(public: &[u8; X25519_KEY_LEN]) -> Result<(), RecipientError> {
    let rng = SystemRandom::new();
    let ours = EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .map_err(|_| RecipientError::Random)?;
    agreement::agree_ephemeral(
        ours,
        UnparsedPublicKey::new(&agreement::X25519, public),
        RecipientError::LowOrderPoint,
        |secret| {
            // Belt and braces: the same check age makes before it panics.
            if secret.iter().all(|&b| b == 0) {
                Err(RecipientError::LowOrderPoint)
            } else {
                Ok(())
            }
        },
    )
}

impl FromStr for RecipientKey {
    type Err = RecipientError;

    fn from_str(s: &str) -> Result<Self, RecipientError> {
        Self::parse(s)
    }
}

impl fmt::Display for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientKey({})", self.text)
    }
}

impl PartialEq for RecipientKey {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for RecipientKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret as _;

    fn encode(hrp: &str, data: &[u8]) -> String {
        bech32::encode::<bech32::Bech32>(bech32::Hrp::parse(hrp).unwrap(), data).unwrap()
    }

    #[test]
    fn generated_keys_parse_and_round_trip() {
        let id = age::x25519::Identity::generate();
        let text = id.to_public().to_string();
        let key = RecipientKey::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(key.as_str(), text);
        assert_eq!(
            RecipientKey::parse(&text.to_ascii_uppercase()).unwrap(),
            key
        );
    }

    #[test]
    fn refusals_are_precise_and_never_quote_the_key() {
        let id = age::x25519::Identity::generate();
        let secret = id.to_string();
        let err = RecipientKey::parse(secret.expose_secret()).unwrap_err();
        assert_eq!(err, RecipientError::SecretKey);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&secret.expose_secret()[20..]));

        let public = id.to_public().to_string();
        assert_eq!(RecipientKey::parse(" \t"), Err(RecipientError::Empty));
        assert_eq!(
            RecipientKey::parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"),
            Err(RecipientError::SshKey)
        );
        assert_eq!(
            RecipientKey::parse("npub1xyz"),
            Err(RecipientError::WrongPrefix)
        );
        // One character changed: the checksum catches it.
        let mut typo = public.clone().into_bytes();
        typo[10] = if typo[10] == b'q' { b'p' } else { b'q' };
        assert_eq!(
            RecipientKey::parse(std::str::from_utf8(&typo).unwrap()),
            Err(RecipientError::InvalidBech32)
        );
        assert_eq!(
            RecipientKey::parse(&public[..public.len() - 1]),
            Err(RecipientError::InvalidBech32)
        );
        let mixed = format!("AGE1{}", &public[4..]);
        assert_eq!(
            RecipientKey::parse(&mixed),
            Err(RecipientError::InvalidBech32)
        );
        assert_eq!(
            RecipientKey::parse(&encode("age", &[7u8; 31])),
            Err(RecipientError::WrongLength(31))
        );
        match RecipientKey::parse(&encode("age1yubikey", &[7u8; 33])) {
            Err(RecipientError::OtherType { prefix }) => assert_eq!(prefix.as_str(), "age1yubikey"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn low_order_points_are_refused_before_age_can_panic() {
        // 0, 1 and p - 1 are low-order u-coordinates on Curve25519.
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let mut one = [0u8; 32];
        one[0] = 1;
        for point in [[0u8; 32], one, minus_one] {
            assert_eq!(
                RecipientKey::parse(&encode("age", &point)),
                Err(RecipientError::LowOrderPoint)
            );
        }
    }
}
