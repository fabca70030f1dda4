//! Errors of the directory and of authentication.

use caldicott_vault::VaultError;

/// A directory operation that could not be done. Messages name users and organisations
/// (administrators act on them by name) but never a password or a token.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("organisation {0} already exists")]
    OrganisationExists(String),
    #[error("organisation {0} is not known; add it first with `caldicott org add`")]
    UnknownOrganisation(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("user {0} is not known")]
    UnknownUser(String),
    #[error("user {0} is disabled")]
    UserDisabled(String),
    #[error(
        "{0:?} is not a valid user name (1-64 of a-z, 0-9, '.', '-', '_', starting with a letter or digit)"
    )]
    BadUserName(String),
    #[error("organisation name must be 1-200 characters of text")]
    BadOrganisationName,
    #[error("{0}")]
    Policy(String),
    #[error("token lifetime must be between 1 second and {max} seconds", max = crate::MAX_TOKEN_TTL_SECS)]
    BadTtl,
    #[error("the directory was changed by someone else at the same time; try again")]
    Conflict,
    #[error("a directory entry is damaged: {0}")]
    Damaged(String),
    #[error(transparent)]
    Vault(VaultError),
    #[error(transparent)]
    Identity(#[from] caldicott_identity::IdentityError),
}

impl From<VaultError> for AccessError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Conflict { .. } => AccessError::Conflict,
            other => AccessError::Vault(other),
        }
    }
}

/// Why a request's credentials were refused (HTTP 401). Deliberately coarse: a client
/// learns that its token is unusable, not whether it ever existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send Authorization: Bearer <token> (or sign in for a session)")]
    Missing,
    #[error("the Authorization header is not a bearer token")]
    Malformed,
    #[error("the token is not valid (unknown, revoked or expired)")]
    Invalid,
    #[error("the user is disabled")]
    Disabled,
    /// A browser session past its idle or absolute timeout.
    #[error("session expired: sign in again")]
    SessionExpired,
    /// A browser session that is unknown, ended (logout) or revoked (the password changed
    /// or the authenticator was reset).
    #[error("the session is not valid (unknown, ended or revoked): sign in again")]
    SessionInvalid,
    #[error("the directory could not be read")]
    Unavailable,
}
