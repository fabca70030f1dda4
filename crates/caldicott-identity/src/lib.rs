//! Credentials of Caldicott's users: password hashing and one-time passwords.
//!
//! Passwords are hashed with Argon2id, using the parameters OWASP recommends as a
//! minimum for Argon2id (19 MiB of memory, 2 passes, 1 lane; about 20–40 ms on the
//! reference 2-core machine), and stored as PHC strings, so parameters can be raised later
//! without invalidating existing hashes. Verification is constant-time (the `argon2`
//! crate compares digests with `subtle`).
//!
//! This crate is not the access policy (who may see what) nor the session layer; it only
//! makes and checks credentials. It grows with MFA and tokens (issue 4).

#![forbid(unsafe_code)]

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Argon2id memory cost in KiB (OWASP minimum recommendation).
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
