//! Time-based one-time passwords: TOTP (RFC 6238) over HOTP (RFC 4226).
//!
//! A user enrols by scanning a QR code of the [`Totp::provisioning_uri`] (or typing the
//! secret shown by [`TotpSecret::to_base32`]) into an authenticator app; at login they type
//! the code it shows, checked by [`Totp::verify`]. The defaults (SHA-1, 6 digits, 30 s) are
//! the only parameters every authenticator app supports; SHA-256 and SHA-512 are there
//! for apps and hardware tokens that support them, and for the RFC test vectors.
//!
//! [`Totp::verify`] accepts the codes of the current time step and of one step either side
//! (RFC 6238 §5.2 allows for clock drift and the time a person takes to type), compares in
//! constant time, and refuses a step at or before the last one accepted for the same user,
//! so an observed code cannot be replayed (§5.2: "the verifier MUST NOT accept the second
//! attempt of the OTP after the successful validation has been issued for the first OTP").
//! The caller stores the returned step with the user's record.
//!
//! Guessing is bounded by [`crate::LoginThrottle`]: with three acceptable codes in a
//! million, five guesses per lockout give an attacker about 1.5 × 10⁻⁵ per lockout.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::IdentityError;

/// Issuer shown by authenticator apps when none is given: the product's name.
pub const DEFAULT_ISSUER: &str = "Caldicott";

/// Time steps either side of the current one whose codes are accepted.
pub const ALLOWED_DRIFT_STEPS: u64 = 1;

/// Errors from TOTP handling. None contains a secret or a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The code is not the expected number of decimal digits.
    #[error("the code must be {digits} digits")]
    Malformed {
        /// Digits expected.
        digits: u32,
    },
    /// The code matches no acceptable time step.
    #[error("the code is wrong or has expired")]
    Invalid,
    /// The code is right but for a time step already used: a replay, or the same code
    /// typed twice.
    #[error("the code has already been used; wait for the next one")]
    Replayed,
    /// A secret is too short, too long or not valid base32.
    #[error("the TOTP secret is malformed (base32, 16 to 64 bytes)")]
    InvalidSecret,
    /// Digits or period out of range.
    #[error("TOTP parameters out of range (6 to 8 digits, period 1 to 300 s)")]
    InvalidParameters,
    /// The provisioning URI does not fit in a QR code (the account name is far too long).
    #[error("the provisioning URI is too long for a QR code")]
    QrCode,
}

/// The HMAC function of an HOTP/TOTP generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1: the default and the only one every authenticator app supports.
    /// (HMAC-SHA-1 remains a sound PRF; SHA-1's collision weakness does not apply.)
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The name used in `otpauth://` URIs.
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// A shared TOTP secret: 160 random bits when generated (the length RFC 4226 §4
/// recommends), zeroized on drop, never printed by `Debug`.
///
/// It has no `Display`: [`TotpSecret::to_base32`] is the one deliberate way to show it
/// (for manual entry on the enrolment page, or to store it encrypted).
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// Length of a generated secret, in bytes.
    pub const GENERATED_LEN: usize = 20;
    /// Shortest secret accepted (RFC 4226 §4: at least 128 bits).
    pub const MIN_LEN: usize = 16;
    /// Longest secret accepted (a SHA-512 block's worth).
    pub const MAX_LEN: usize = 64;

    /// A fresh random 160-bit secret from the system's secure random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut bytes = Zeroizing::new(vec![0u8; Self::GENERATED_LEN]);
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| IdentityError::Random)?;
        Ok(Self(bytes))
    }

    /// A secret from raw bytes (16 to 64 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(TotpError::InvalidSecret);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret from base32 (RFC 4648), as [`TotpSecret::to_base32`] writes it. Case,
    /// spaces, hyphens and trailing `=` padding are ignored, as people copy secrets.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let bytes = base32_decode(text).ok_or(TotpError::InvalidSecret)?;
        Self::from_bytes(&bytes)
    }

    /// The secret in upper-case base32 without padding, as authenticator apps expect.
    pub fn to_base32(&self) -> Zeroizing<String> {
        base32_encode(&self.0)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// An HOTP value (RFC 4226 §5.3): HMAC of the big-endian counter, dynamically
/// truncated to 31 bits, reduced to `digits` decimal digits (zero-padded).
///
/// `digits` must be 6 to 8 (RFC 4226 §5.3); anything else is clamped into that range.
pub fn hotp(secret: &TotpSecret, counter: u64, digits: u32, algorithm: TotpAlgorithm) -> String {
    let digits = digits.clamp(Totp::MIN_DIGITS, Totp::MAX_DIGITS);
    let key = hmac::Key::new(algorithm.hmac(), secret.as_bytes());
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // The last nibble picks the offset; every MAC here is at least 20 bytes, so
    // offset + 3 <= 15 + 3 is always in bounds.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// A TOTP generator and verifier for one user (RFC 6238 with T0 = 0).
#[derive(Debug, Clone)]
pub struct Totp {
    secret: TotpSecret,
    digits: u32,
    period: u64,
    algorithm: TotpAlgorithm,
}

impl Totp {
    /// Default code length.
    pub const DEFAULT_DIGITS: u32 = 6;
    /// Default time step, in seconds.
    pub const DEFAULT_PERIOD: u64 = 30;
    /// Shortest code (RFC 4226 §5.3).
    pub const MIN_DIGITS: u32 = 6;
    /// Longest code.
    pub const MAX_DIGITS: u32 = 8;
    /// Longest period accepted, in seconds.
    pub const MAX_PERIOD: u64 = 300;

    /// The usual generator: 6 digits, 30-second steps, HMAC-SHA-1.
    pub fn new(secret: TotpSecret) -> Self {
        Self {
            secret,
            digits: Self::DEFAULT_DIGITS,
            period: Self::DEFAULT_PERIOD,
            algorithm: TotpAlgorithm::Sha1,
        }
    }

    /// A generator with other parameters: 6 to 8 digits, a period of 1 to 300 seconds.
    pub fn with_parameters(
        secret: TotpSecret,
        digits: u32,
        period: u64,
        algorithm: TotpAlgorithm,
    ) -> Result<Self, TotpError> {
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits)
            || !(1..=Self::MAX_PERIOD).contains(&period)
        {
            return Err(TotpError::InvalidParameters);
        }
        Ok(Self {
            secret,
            digits,
            period,
            algorithm,
        })
    }

    /// The shared secret.
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// Code length in digits.
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// Time step in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// HMAC function.
    pub fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    /// The time step containing `unix_seconds`.
    pub fn step_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds / self.period
    }

    /// The code for a time step.
    pub fn code_for_step(&self, step: u64) -> String {
        hotp(&self.secret, step, self.digits, self.algorithm)
    }

    /// The code shown by an authenticator at `unix_seconds`.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.code_for_step(self.step_at(unix_seconds))
    }

    /// Checks a code typed at `unix_seconds`, returning the time step it matched; store
    /// that step and pass it back as `last_used_step` next time.
    ///
    /// Spaces in the code are ignored ("123 456", as apps show it). Codes for the current
    /// step and [`ALLOWED_DRIFT_STEPS`] either side are accepted; every candidate is
    /// computed and compared in constant time, whatever the outcome. A matching step at or
    /// before `last_used_step` is refused as [`TotpError::Replayed`]; if the code matches
    /// more than one acceptable step (a 1-in-10⁶ coincidence), the earliest is returned.
    pub fn verify(
        &self,
        code: &str,
        unix_seconds: u64,
        last_used_step: Option<u64>,
    ) -> Result<u64, TotpError> {
        let typed: Vec<u8> = code.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if typed.len() != self.digits as usize || !typed.iter().all(u8::is_ascii_digit) {
            return Err(TotpError::Malformed {
                digits: self.digits,
            });
        }
        let now = self.step_at(unix_seconds);
        let first = now.saturating_sub(ALLOWED_DRIFT_STEPS);
        let last = now.saturating_add(ALLOWED_DRIFT_STEPS);
        let mut accepted = None;
        let mut replayed = false;
        for step in first..=last {
            let expected = self.code_for_step(step);
            let matches = verify_slices_are_equal(expected.as_bytes(), &typed).is_ok();
            let fresh = last_used_step.is_none_or(|used| step > used);
            if matches && fresh && accepted.is_none() {
                accepted = Some(step);
            }
            replayed |= matches && !fresh;
        }
        match accepted {
            Some(step) => Ok(step),
            None if replayed => Err(TotpError::Replayed),
            None => Err(TotpError::Invalid),
        }
    }

    /// The `otpauth://totp/` URI an authenticator app enrols from (the de facto "Key Uri
    /// Format" of Google Authenticator): label `issuer:account` and the `secret`, `issuer`,
    /// `algorithm`, `digits` and `period` parameters, with issuer and account
    /// percent-encoded. It contains the secret, so it is returned zeroizing.
    ///
    /// `issuer` is usually [`DEFAULT_ISSUER`]; a deployment may add its organisation's
    /// name ("Caldicott (Leeds Teaching Hospitals)") so users can tell accounts apart.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let issuer = percent_encode(issuer);
        let account = percent_encode(account);
        let secret = self.secret.to_base32();
        let mut uri = Zeroizing::new(String::with_capacity(
            64 + 2 * issuer.len() + account.len() + secret.len(),
        ));
        uri.push_str("otpauth://totp/");
        uri.push_str(&issuer);
        uri.push(':');
        uri.push_str(&account);
        uri.push_str("?secret=");
        uri.push_str(&secret);
        uri.push_str("&issuer=");
        uri.push_str(&issuer);
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.uri_name());
        uri.push_str("&digits=");
        uri.push_str(&self.digits.to_string());
        uri.push_str("&period=");
        uri.push_str(&self.period.to_string());
        uri
    }

    /// A QR code of [`Totp::provisioning_uri`] as a standalone SVG document (black on
    /// white, with the standard quiet zone, at least 256 px square, error correction level
    /// M), for the enrolment page. It encodes the secret, so it is returned zeroizing;
    /// serve it with `Cache-Control: no-store`.
    pub fn provisioning_qr_svg(
        &self,
        issuer: &str,
        account: &str,
    ) -> Result<Zeroizing<String>, TotpError> {
        let uri = self.provisioning_uri(issuer, account);
        let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
            .map_err(|_| TotpError::QrCode)?;
        Ok(Zeroizing::new(
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(256, 256)
                .build(),
        ))
    }
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[usize::from((buffer >> bits) & 31)],
            ));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

/// RFC 4648 base32, any case; spaces, hyphens and trailing `=` are ignored. `None` for
/// any other character, or for trailing bits that are not zero (a truncated secret).
fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = text.trim_end_matches(|c: char| c == '=' || c.is_whitespace());
    let mut out = Zeroizing::new(Vec::with_capacity(trimmed.len() * 5 / 8));
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for c in trimmed.chars() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        let upper = c.to_ascii_uppercase();
        let value = BASE32_ALPHABET
            .iter()
            .position(|&a| char::from(a) == upper)?;
        // `value` < 32, so the conversion cannot fail.
        buffer = (buffer << 5) | u16::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
            buffer &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be padding zeros, and fewer than 5 of them.
    if bits >= 5 || buffer != 0 {
        return None;
    }
    Some(out)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so a space is `%20`,
/// `@` is `%40` and `:` is `%3A`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn secret(bytes: &[u8]) -> TotpSecret {
        TotpSecret::from_bytes(bytes).unwrap()
    }

    /// RFC 4226 Appendix D.
    #[test]
    fn hotp_rfc4226_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        let s = secret(SEED_SHA1);
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                hotp(&s, counter as u64, 6, TotpAlgorithm::Sha1),
                *code,
                "counter {counter}"
            );
        }
    }

    /// RFC 6238 Appendix B (8 digits, 30-second steps, T0 = 0).
    #[test]
    fn totp_rfc6238_vectors() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        let sha1 = Totp::with_parameters(secret(SEED_SHA1), 8, 30, TotpAlgorithm::Sha1).unwrap();
        let sha256 =
            Totp::with_parameters(secret(SEED_SHA256), 8, 30, TotpAlgorithm::Sha256).unwrap();
        let sha512 =
            Totp::with_parameters(secret(SEED_SHA512), 8, 30, TotpAlgorithm::Sha512).unwrap();
        for (time, c1, c256, c512) in vectors {
            assert_eq!(sha1.code_at(time), c1, "SHA1 at {time}");
            assert_eq!(sha256.code_at(time), c256, "SHA256 at {time}");
            assert_eq!(sha512.code_at(time), c512, "SHA512 at {time}");
            // And each verifies at that time.
            assert_eq!(sha1.verify(c1, time, None), Ok(time / 30));
            assert_eq!(sha256.verify(c256, time, None), Ok(time / 30));
            assert_eq!(sha512.verify(c512, time, None), Ok(time / 30));
        }
        // The RFC's table also gives the step in hex for 20000000000.
        assert_eq!(sha1.step_at(20_000_000_000), 0x27BC_86AA);
    }

    #[test]
    fn six_digit_codes_are_the_low_digits() {
        let t = Totp::new(secret(SEED_SHA1));
        // The 8-digit SHA-1 code at 59 s is 94287082; 6 digits take the value mod 10^6.
        assert_eq!(t.code_at(59), "287082");
        assert_eq!(t.code_at(1_111_111_109), "081804", "zero-padded");
    }

    #[test]
    fn verify_accepts_one_step_of_drift_either_way() {
        let t = Totp::new(secret(SEED_SHA1));
        let now = 1_700_000_000;
        let step = t.step_at(now);
        assert_eq!(t.verify(&t.code_at(now), now, None), Ok(step));
        assert_eq!(t.verify(&t.code_at(now - 30), now, None), Ok(step - 1));
        assert_eq!(t.verify(&t.code_at(now + 30), now, None), Ok(step + 1));
        assert_eq!(
            t.verify(&t.code_at(now - 60), now, None),
            Err(TotpError::Invalid)
        );
        assert_eq!(
            t.verify(&t.code_at(now + 60), now, None),
            Err(TotpError::Invalid)
        );
        // At time zero there is no earlier step to wrap around to.
        assert_eq!(t.verify(&t.code_at(0), 0, None), Ok(0));
    }

    #[test]
    fn verify_refuses_replays() {
        let t = Totp::new(secret(SEED_SHA1));
        let now = 1_700_000_000;
        let code = t.code_at(now);
        let step = t.verify(&code, now, None).unwrap();
        assert_eq!(t.verify(&code, now, Some(step)), Err(TotpError::Replayed));
        assert_eq!(
            t.verify(&code, now + 20, Some(step)),
            Err(TotpError::Replayed)
        );
        // An older step's code is refused too once a later one was used.
        let earlier = t.code_at(now - 30);
        assert_eq!(
            t.verify(&earlier, now, Some(step)),
            Err(TotpError::Replayed)
        );
        // The next step's code still works.
        assert_eq!(
            t.verify(&t.code_at(now + 30), now + 30, Some(step)),
            Ok(step + 1)
        );
    }

    #[test]
    fn verify_rejects_malformed_codes() {
        let t = Totp::new(secret(SEED_SHA1));
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", "-12345"] {
            assert_eq!(
                t.verify(bad, 59, None),
                Err(TotpError::Malformed { digits: 6 }),
                "{bad:?}"
            );
        }
        let code = t.code_at(59);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(t.verify(&spaced, 59, None), Ok(1));
        assert_eq!(t.verify(&format!(" {code}\n"), 59, None), Ok(1));
    }

    #[test]
    fn parameters_are_validated() {
        let s = || secret(SEED_SHA1);
        assert!(Totp::with_parameters(s(), 5, 30, TotpAlgorithm::Sha1).is_err());
        assert!(Totp::with_parameters(s(), 9, 30, TotpAlgorithm::Sha1).is_err());
        assert!(Totp::with_parameters(s(), 6, 0, TotpAlgorithm::Sha1).is_err());
        assert!(Totp::with_parameters(s(), 6, 301, TotpAlgorithm::Sha1).is_err());
        assert!(Totp::with_parameters(s(), 7, 60, TotpAlgorithm::Sha256).is_ok());
    }

    #[test]
    fn secrets_are_random_redacted_and_round_trip_through_base32() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let text = a.to_base32();
        assert_eq!(text.len(), 32, "160 bits is exactly 32 base32 characters");
        assert!(!text.contains('='));
        assert_eq!(
            TotpSecret::from_base32(&text).unwrap().as_bytes(),
            a.as_bytes()
        );
        let debug = format!("{a:?} {:?}", Totp::new(a.clone()));
        assert!(!debug.contains(text.as_str()), "{debug}");
        assert!(debug.contains("redacted"));
        // Too short or too long.
        assert_eq!(
            TotpSecret::from_bytes(&[0; 15]).unwrap_err(),
            TotpError::InvalidSecret
        );
        assert!(TotpSecret::from_bytes(&[0; 65]).is_err());
    }

    /// RFC 4648 §10 test vectors, and tolerant decoding.
    #[test]
    fn base32_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(*base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap().as_slice(), plain.as_bytes());
        }
        assert_eq!(
            base32_decode("mzxw 6ytb-oi======").unwrap().as_slice(),
            b"foobar"
        );
        assert!(base32_decode("MZXW1").is_none(), "1 is not base32");
        assert!(base32_decode("MZ").is_none(), "non-zero trailing bits");
        assert!(base32_decode("MZXW6YTBO").is_none(), "dangling character");
        // The RFC 6238 SHA-1 seed, as authenticator apps would be given it.
        assert_eq!(
            *base32_encode(SEED_SHA1),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn provisioning_uri_has_the_key_uri_fields() {
        let t = Totp::new(secret(SEED_SHA1));
        let uri = t.provisioning_uri(DEFAULT_ISSUER, "jane.smith@nhs.net");
        assert_eq!(
            *uri,
            "otpauth://totp/Caldicott:jane.smith%40nhs.net?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Caldicott&algorithm=SHA1&digits=6&period=30"
        );
        let t = Totp::with_parameters(secret(SEED_SHA256), 8, 60, TotpAlgorithm::Sha256).unwrap();
        let uri = t.provisioning_uri("St Mary's: Trust & Co", "Dr Ó Briain");
        assert!(
            uri.starts_with(
                "otpauth://totp/St%20Mary%27s%3A%20Trust%20%26%20Co:Dr%20%C3%93%20Briain?secret="
            ),
            "{}",
            *uri
        );
        assert!(
            uri.ends_with(
                "&issuer=St%20Mary%27s%3A%20Trust%20%26%20Co&algorithm=SHA256&digits=8&period=60"
            ),
            "{}",
            *uri
        );
    }

    #[test]
    fn provisioning_qr_code_decodes_to_the_uri() {
        let t = Totp::new(TotpSecret::generate().unwrap());
        let account = "jane.smith@nhs.net";
        let svg = t.provisioning_qr_svg(DEFAULT_ISSUER, account).unwrap();
        assert!(svg.contains("<svg"), "SVG document");
        assert!(svg.ends_with("</svg>"));

        // Read the SVG back: it draws each dark module as `M{x} {y}h..v..H..V..` in a
        // square viewBox. Rasterise those squares and decode them with an independent
        // reader.
        let view_box = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
        let side: usize = view_box.split(' ').next().unwrap().parse().unwrap();
        let path = svg.split(" d=\"").nth(1).unwrap();
        let path = path.split('"').next().unwrap();
        let mut unit = 0;
        let mut dark = Vec::new();
        for command in path.split('M').filter(|c| !c.is_empty()) {
            let (x, rest) = command.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let (w, _) = rest.split_once('v').unwrap();
            unit = w.parse::<usize>().unwrap();
            dark.push((x.parse::<usize>().unwrap(), y.parse::<usize>().unwrap()));
        }
        assert!(
            side >= 256 && unit > 0 && side.is_multiple_of(unit),
            "{side} {unit}"
        );
        let cells = side / unit;
        let mut grid = vec![false; cells * cells];
        for (x, y) in dark {
            grid[(y / unit) * cells + x / unit] = true;
        }
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(cells * 4, cells * 4, |x, y| {
                if grid[(y / 4) * cells + x / 4] {
                    0
                } else {
                    255
                }
            });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_meta, content) = grids[0].decode().unwrap();
        let uri = t.provisioning_uri(DEFAULT_ISSUER, account);
        assert_eq!(content, *uri);
    }
}
