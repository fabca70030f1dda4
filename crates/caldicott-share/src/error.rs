//! Errors of the sharing layer. Messages name the agreement, column or rule at fault and
//! never a patient's data.

/// Why an agreement or a release step was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The agreement or dataset says something impossible or incomplete.
    #[error("invalid agreement: {0}")]
    Invalid(String),
    /// A rule forbids it (roles, two-person approval, revoked, expired, frequency).
    #[error("refused: {0}")]
    Refused(String),
    /// No agreement with that id.
    #[error("no agreement {0}")]
    NotFound(String),
    /// Someone else changed the agreement at the same time.
    #[error("{0} was changed by someone else at the same time: read it again and retry")]
    Conflict(String),
    /// The stored agreements cannot be read back.
    #[error("stored agreement {0} is damaged")]
    Damaged(String),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] caldicott_vault::VaultError),
}
