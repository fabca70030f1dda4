//! Authentication primitives for Caldicott's users: password hashing and policy, TOTP
//! second factors, recovery codes and login throttling.
//!
//! # What it is
//!
//! Pure functions and state machines that make and check credentials:
//! - **Password hashing** ([`hash_password`], [`verify_password`]) with Argon2id at the
//!   parameters OWASP's Password Storage Cheat Sheet gives as its first option: m = 19456
//!   KiB (19 MiB) of memory, t = 2 passes, p = 1 lane (about 20–40 ms on the reference
//!   2-core machine). Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`), so the
//!   parameters can be raised later without invalidating stored hashes; verification is
//!   constant-time (the `argon2` crate compares digests with `subtle`).
//!   [`generate_password`] makes random one-time passwords for new accounts.
//! - **Password policy** ([`check_password`]): the NCSC's guidance — 12 to 128
//!   characters, no composition rules, not a commonly used password (an embedded list of
//!   49,233), not containing the user's name.
//! - **TOTP** ([`Totp`], [`TotpSecret`]): RFC 6238 codes over RFC 4226 HOTP, with ±1 step
//!   of clock drift, constant-time comparison and replay refusal; `otpauth://` enrolment
//!   URIs and their QR codes as SVG.
//! - **Recovery codes** ([`RecoveryCodes`], [`StoredRecoveryCodes`]): single-use
//!   high-entropy codes, stored only as SHA-256 hashes.
//! - **Throttling** ([`LoginThrottle`]): per-account and per-address failure counting with
//!   exponential lockouts and bounded memory, with the time passed in.
//!
//! # What it is not
//!
//! It stores nothing (callers persist hashes, TOTP secrets, last-used TOTP steps and
//! stored recovery codes with the user's record, and keep the throttle in memory), issues
//! no sessions or tokens, talks no HTTP and reads no clock: every time is an argument. It
//! is not the access policy (who may see what). The only I/O is the system's secure
//! random number generator (`aws-lc-rs`), for salts, secrets and codes.
//!
//! # Example
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use caldicott_identity::*;
//!
//! // Setting a password: policy first, then the hash to store.
//! assert_eq!(check_password("Password2024!", "jane.smith"), Err(PasswordError::CommonVariant));
//! check_password("thistle harbour magnet", "jane.smith")?;
//! let phc = hash_password("thistle harbour magnet")?;
//!
//! // Enrolling a second factor: store the secret (encrypted) and the recovery hashes;
//! // show the QR code and the recovery codes once.
//! let totp = Totp::new(TotpSecret::generate()?);
//! let _svg = totp.provisioning_qr_svg(DEFAULT_ISSUER, "jane.smith")?;
//! let recovery = RecoveryCodes::generate(DEFAULT_RECOVERY_CODES)?;
//! let mut stored_recovery = recovery.to_stored();
//!
//! // Signing in, with the time passed in.
//! let mut throttle = LoginThrottle::default();
//! let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let now = 1_700_000_000;
//! throttle.begin_attempt("jane.smith", client, now * 1_000_000)?;
//! assert!(verify_password("thistle harbour magnet", &phc)?);
//! let step = totp.verify(&totp.code_at(now), now, None)?; // store `step`
//! assert_eq!(totp.verify(&totp.code_at(now), now, Some(step)), Err(TotpError::Replayed));
//! throttle.record_success("jane.smith", client, now * 1_000_000);
//!
//! // Or with a recovery code instead of the authenticator: each works once.
//! let code = recovery.codes().next().unwrap().to_owned();
//! assert!(verify_and_consume(&mut stored_recovery, &code));
//! assert!(!verify_and_consume(&mut stored_recovery, &code));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

pub mod password_policy;
pub mod recovery;
pub mod throttle;
pub mod totp;

pub use password_policy::{
    MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PasswordError, check_password, common_password_count,
    is_common_password,
};
pub use recovery::{
    DEFAULT_RECOVERY_CODES, RecoveryCodes, StoredRecoveryCodes, verify_and_consume,
};
pub use throttle::{LoginThrottle, ThrottleConfig, Throttled};
pub use totp::{
    ALLOWED_DRIFT_STEPS, DEFAULT_ISSUER, Totp, TotpAlgorithm, TotpError, TotpSecret, hotp,
};

/// Argon2id memory cost in KiB: 19 MiB (OWASP's first recommended configuration).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 1;

/// Errors from credential handling. They never contain a password or hash.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A stored hash is not a valid PHC string.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
}

fn argon2() -> Argon2<'static> {
    // These constants are within Argon2's limits, so construction cannot fail.
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with a fresh random salt into a PHC string.
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| IdentityError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| IdentityError::Hash)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| IdentityError::Hash)
}

/// Checks a password against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, IdentityError> {
    let parsed = PasswordHash::new(phc).map_err(|_| IdentityError::MalformedHash)?;
    Ok(argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A random one-time password: 20 characters from an alphabet without look-alikes
/// (no 0/O, 1/l/I), about 112 bits of entropy, in groups of five for reading aloud.
pub fn generate_password() -> Result<Zeroizing<String>, IdentityError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let rng = SystemRandom::new();
    let mut out = Zeroizing::new(String::with_capacity(23));
    let mut n = 0;
    while n < 20 {
        let mut b = [0u8; 1];
        rng.fill(&mut b).map_err(|_| IdentityError::Random)?;
        // Rejection sampling keeps the distribution uniform.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(b[0]) >= limit {
            continue;
        }
        if n > 0 && n % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(b[0]) % ALPHABET.len()]));
        n += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h).unwrap());
        assert!(!verify_password("correct horse battery stapl", &h).unwrap());
        assert_ne!(
            h,
            hash_password("correct horse battery staple").unwrap(),
            "salted"
        );
        assert!(matches!(
            verify_password("x", "not a hash"),
            Err(IdentityError::MalformedHash)
        ));
    }

    #[test]
    fn generated_passwords_are_well_formed_and_distinct() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 23);
        assert_eq!(a.split('-').count(), 4);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()));
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
    }
}
