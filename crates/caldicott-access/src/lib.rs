//! The directory of a Caldicott deployment: its organisations, their users, and the API
//! tokens those users and machine clients hold; and the authentication of a request's
//! bearer token against it.
//!
//! What it is: typed records ([`Organisation`], [`User`], [`TokenRecord`]) kept as sealed
//! entries of the vault's directory (encrypted under the directory's own data key, so a
//! password hash, a TOTP secret or a token's scopes are never in the database in clear),
//! the rules for changing them (a user belongs to a known organisation and has a known
//! role; disabling a user revokes every token at once, because each request re-reads the
//! user), and token issue and verification. Tokens are opaque random values shown once;
//! only their SHA-256 is stored, as the key of their entry, so a copy of the database
//! holds no usable token. Browser sessions ([`session`]) are kept the same way: an
//! opaque id stored as its hash, with idle and absolute timeouts and a CSRF token bound to
//! it. The National Data Opt-out and Type 1 lists ([`optout`]) are kept
//! as keyed hashes of NHS numbers.
//!
//! What it is not: the access decision (that is `caldicott-policy`, pure), the FHIR facts
//! the decision needs (the API gathers them), password hashing and TOTP (those are
//! `caldicott-identity`), or HTTP.

#![forbid(unsafe_code)]

pub mod breakglass;
mod directory;
mod error;
pub mod optout;
pub mod session;
pub mod signin;

pub use directory::{
    AUTH_CACHE_TTL_US, Authenticated, Directory, MAX_TOKEN_TTL_SECS, Organisation, TOKEN_PREFIX,
    TokenRecord, User,
};
pub use error::{AccessError, AuthError};
