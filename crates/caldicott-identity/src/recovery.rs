//! Single-use recovery codes, for signing in when the authenticator is lost.
//!
//! [`RecoveryCodes::generate`] makes a set of codes to show the user once; only their
//! hashes ([`StoredRecoveryCodes`]) are kept. A code is `xxxx-xxxx-xxxx-xxxx`: 16
//! characters drawn uniformly from 31 symbols that cannot be mistaken for one another
//! (lower-case letters without `i`, `l` and `o`, and the digits 2–9: no 0/O, 1/l/I), so
//! each code carries 16 × log₂ 31 ≈ 79 bits. (Three groups of four would carry only
//! 59.5 bits from this alphabet, short of the 60 required.)
//!
//! # Why SHA-256 and not Argon2id
//!
//! A slow password hash exists to make guessing *low-entropy, human-chosen* secrets
//! expensive after a database leak. Recovery codes are machine-generated with ~79 bits of
//! entropy: even at 10¹² SHA-256 guesses a second, finding one code from its hash takes
//! ~10¹⁰ years, so a slow hash adds nothing. A fast hash does avoid running Argon2id
//! (19 MiB, ~30 ms) once per stored code on every attempt — ten of them — which would
//! otherwise hand an unauthenticated client a cheap way to load the server. The hash is
//! SHA-256 over a fixed domain-separation prefix and the normalised code; there is no
//! salt, since precomputation over a 2⁷⁹ space is as infeasible as brute force.
//!
//! Verification hashes the typed code once and compares it with every stored hash in
//! constant time, whichever matches; a used code is removed, so each works once.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::IdentityError;

/// Codes in a set unless the caller asks otherwise.
pub const DEFAULT_RECOVERY_CODES: usize = 10;

/// The symbols of a code: no 0/O, 1/l/I (and no `i` or `o` in any case).
const ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 4;
const CODE_SYMBOLS: usize = GROUPS * GROUP_LEN;
/// Prefix of every hash input: a hash of a recovery code is never equal to a hash of
/// anything else this product computes.
const DOMAIN: &[u8] = b"caldicott recovery code v1\0";
/// Prefix of a stored hash's text form.
const STORED_PREFIX: &str = "rc1$sha256$";

/// A freshly generated set of recovery codes in plain text, to show the user once and
/// then drop (the codes are zeroized). `Debug` shows only how many there are.
pub struct RecoveryCodes {
    codes: Vec<Zeroizing<String>>,
}

impl RecoveryCodes {
    /// `n` new codes (usually [`DEFAULT_RECOVERY_CODES`]) from the system's secure
    /// random number generator.
    pub fn generate(n: usize) -> Result<Self, IdentityError> {
        let rng = SystemRandom::new();
        let mut codes = Vec::with_capacity(n);
        while codes.len() < n {
            let code = generate_code(&rng)?;
            // A repeat has probability ~2⁻⁷⁹; checking costs nothing.
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        Ok(Self { codes })
    }

    /// The codes, formatted `xxxx-xxxx-xxxx-xxxx`, to show or print once.
    pub fn codes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.codes.iter().map(|c| c.as_str())
    }

    /// How many codes there are.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The hashes to store in place of the codes.
    pub fn to_stored(&self) -> StoredRecoveryCodes {
        StoredRecoveryCodes {
            hashes: self
                .codes
                .iter()
                .filter_map(|c| normalise(c).map(|n| hash(&n)))
                .collect(),
        }
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("count", &self.codes.len())
            .finish_non_exhaustive()
    }
}

/// The stored form of a user's unused recovery codes: one SHA-256 hash per code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRecoveryCodes {
    hashes: Vec<[u8; 32]>,
}

impl StoredRecoveryCodes {
    /// Unused codes left.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether every code has been used (time to generate a new set).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hashes as text, one per code: `rc1$sha256$` and 64 lower-case hex digits.
    pub fn to_strings(&self) -> Vec<String> {
        self.hashes
            .iter()
            .map(|h| {
                let mut s = String::with_capacity(STORED_PREFIX.len() + 64);
                s.push_str(STORED_PREFIX);
                for byte in h {
                    s.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
                    s.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
                }
                s
            })
            .collect()
    }

    /// Reads hashes written by [`StoredRecoveryCodes::to_strings`].
    pub fn from_strings<I, S>(entries: I) -> Result<Self, IdentityError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut hashes = Vec::new();
        for entry in entries {
            let hex = entry
                .as_ref()
                .strip_prefix(STORED_PREFIX)
                .ok_or(IdentityError::MalformedHash)?;
            let hex = hex.as_bytes();
            if hex.len() != 64 {
                return Err(IdentityError::MalformedHash);
            }
            let mut hash = [0u8; 32];
            for (i, pair) in hex.chunks_exact(2).enumerate() {
                let high = hex_value(pair[0]).ok_or(IdentityError::MalformedHash)?;
                let low = hex_value(pair[1]).ok_or(IdentityError::MalformedHash)?;
                hash[i] = (high << 4) | low;
            }
            hashes.push(hash);
        }
        Ok(Self { hashes })
    }

    /// Checks a typed code against the unused ones and, if it matches, removes it so it
    /// cannot be used again. Case, hyphens and spaces in the typed code do not matter.
    pub fn verify_and_consume(&mut self, code: &str) -> bool {
        let Some(normalised) = normalise(code) else {
            return false;
        };
        let typed = hash(&normalised);
        let mut found = None;
        // Compare against every stored hash, not stopping at a match.
        for (i, stored) in self.hashes.iter().enumerate() {
            let equal = verify_slices_are_equal(stored, &typed).is_ok();
            if equal && found.is_none() {
                found = Some(i);
            }
        }
        match found {
            Some(i) => {
                self.hashes.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Checks `code` against `stored` and consumes it on a match: see
/// [`StoredRecoveryCodes::verify_and_consume`].
pub fn verify_and_consume(stored: &mut StoredRecoveryCodes, code: &str) -> bool {
    stored.verify_and_consume(code)
}

fn generate_code(rng: &SystemRandom) -> Result<Zeroizing<String>, IdentityError> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_SYMBOLS + GROUPS - 1));
    let mut buffer = Zeroizing::new([0u8; 32]);
    let mut used = buffer.len();
    let mut n = 0;
    // Rejection sampling: bytes of 248 and above are dropped, so `byte % 31` is uniform.
    let limit = 256 - 256 % ALPHABET.len();
    while n < CODE_SYMBOLS {
        if used == buffer.len() {
            rng.fill(&mut *buffer).map_err(|_| IdentityError::Random)?;
            used = 0;
        }
        let byte = usize::from(buffer[used]);
        used += 1;
        if byte >= limit {
            continue;
        }
        if n > 0 && n % GROUP_LEN == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[byte % ALPHABET.len()]));
        n += 1;
    }
    Ok(out)
}

/// The code's 16 symbols in lower case, with hyphens and whitespace removed; `None` if
/// anything else is left or the length is wrong.
fn normalise(code: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(CODE_SYMBOLS));
    for c in code.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let lower = u8::try_from(c.to_ascii_lowercase()).ok()?;
        if !ALPHABET.contains(&lower) || out.len() == CODE_SYMBOLS {
            return None;
        }
        out.push(lower);
    }
    (out.len() == CODE_SYMBOLS).then_some(out)
}

fn hash(normalised: &[u8]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(DOMAIN);
    context.update(normalised);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_well_formed_unambiguous_and_distinct() {
        let set = RecoveryCodes::generate(DEFAULT_RECOVERY_CODES).unwrap();
        assert_eq!(set.len(), 10);
        let codes: Vec<&str> = set.codes().collect();
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4);
            assert!(groups.iter().all(|g| g.len() == 4));
            assert!(
                code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)),
                "{code}"
            );
            assert!(!code.contains(['0', 'O', 'o', '1', 'l', 'I', 'i']));
        }
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert!(!format!("{set:?}").contains(codes[0]));
        assert!(RecoveryCodes::generate(0).unwrap().is_empty());
    }

    #[test]
    fn entropy_is_at_least_60_bits() {
        let bits = CODE_SYMBOLS as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 60.0, "{bits}");
        // The alphabet has no repeats, so every symbol is equally likely.
        let mut sorted = ALPHABET.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), ALPHABET.len());
    }

    #[test]
    fn symbols_are_used_uniformly_enough() {
        // 200 codes × 16 symbols = 3200 draws over 31 symbols, ~103 each; a broken
        // sampler (e.g. `byte % 31` without rejection, or a stuck symbol) shows up as
        // a symbol far outside that.
        let mut counts = [0usize; 31];
        let set = RecoveryCodes::generate(200).unwrap();
        for code in set.codes() {
            for b in code.bytes().filter(|&b| b != b'-') {
                counts[ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
            }
        }
        assert!(
            counts.iter().all(|&c| (40..=180).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn each_code_works_once_whatever_its_formatting() {
        let set = RecoveryCodes::generate(DEFAULT_RECOVERY_CODES).unwrap();
        let mut stored = set.to_stored();
        assert_eq!(stored.len(), 10);
        let codes: Vec<String> = set.codes().map(str::to_owned).collect();

        assert!(verify_and_consume(&mut stored, &codes[3]));
        assert_eq!(stored.len(), 9);
        assert!(!verify_and_consume(&mut stored, &codes[3]), "used once");

        let shouted = codes[0].to_uppercase();
        assert!(stored.verify_and_consume(&shouted));
        let squashed = codes[1].replace('-', "");
        assert!(stored.verify_and_consume(&squashed));
        let spaced = format!("  {}  ", codes[2].replace('-', " "));
        assert!(stored.verify_and_consume(&spaced));
        assert_eq!(stored.len(), 6);

        for bad in [
            "",
            "abcd-efgh-jkmn-pqrs",
            &codes[4][..18],
            &format!("{}x", codes[4]),
            &codes[4].replace('-', "_"),
        ] {
            assert!(!stored.verify_and_consume(bad), "{bad:?}");
        }
        assert_eq!(stored.len(), 6);
        for code in &codes[4..] {
            assert!(stored.verify_and_consume(code));
        }
        assert!(stored.is_empty());
        assert!(!stored.verify_and_consume(&codes[9]));
    }

    #[test]
    fn stored_hashes_round_trip_as_text_and_reveal_no_code() {
        let set = RecoveryCodes::generate(3).unwrap();
        let stored = set.to_stored();
        let text = stored.to_strings();
        assert_eq!(text.len(), 3);
        for (line, code) in text.iter().zip(set.codes()) {
            assert!(line.starts_with("rc1$sha256$"));
            assert_eq!(line.len(), 11 + 64);
            assert!(!line.contains(&code.replace('-', "")));
        }
        let back = StoredRecoveryCodes::from_strings(&text).unwrap();
        assert_eq!(back, stored);
        let mut back = back;
        assert!(back.verify_and_consume(set.codes().next().unwrap()));

        for bad in [
            "rc1$sha256$00",
            "sha256$0000000000000000000000000000000000000000000000000000000000000000",
            "rc1$sha256$000000000000000000000000000000000000000000000000000000000000000G",
        ] {
            assert!(matches!(
                StoredRecoveryCodes::from_strings([bad]),
                Err(IdentityError::MalformedHash)
            ));
        }
    }

    #[test]
    fn hash_is_domain_separated_sha256() {
        // SHA-256("caldicott recovery code v1\0" || "2345678923456789"), from Python's
        // hashlib.
        let expected = "5475d78d37ec12a80bb8725a6143e1f41df1f43692785dcc4723d334b3886db8";
        let stored = StoredRecoveryCodes {
            hashes: vec![hash(b"2345678923456789")],
        };
        assert_eq!(stored.to_strings(), [format!("rc1$sha256${expected}")]);
        let mut stored = stored;
        assert!(stored.verify_and_consume("2345-6789-2345-6789"));
    }
}
