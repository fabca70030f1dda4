//! The Caldicott vault: patient records kept encrypted, versioned and durable.
//!
//! What it is:
//! - **Envelope encryption.** A master key (KEK) outside the database, reached only through
//!   a [`KeyProvider`], wraps one data key (DEK) per organisation. Each record version is
//!   sealed with AES-256-GCM under a key derived from its organisation's DEK, with
//!   associated data binding it to its organisation, resource type, id and version, so a
//!   ciphertext moved to another row fails to decrypt ([`VaultError::Integrity`]).
//! - **Versioned records** with optimistic concurrency ([`Expect`]), tombstone deletes and
//!   full history, written in atomic batches.
//! - **A protected index**: records are found by [`IndexTerm`]s (for example an NHS
//!   number identifier), stored only as HMACs under a key derived from the DEK.
//! - **Key rotation**: [`Vault::rotate_master_key`] rewraps DEKs without touching data;
//!   [`Vault::rotate_data_key`] and [`Vault::reencrypt_step`] move records to a new DEK
//!   in resumable steps, re-hashing index terms with the caller's [`Indexer`].
//! - **Two backends** behind one [`Backend`] trait: SQLite (embedded default) and
//!   PostgreSQL, passing one conformance suite.
//!
//! What it is not: it knows nothing of FHIR (the caller says which terms to index), of
//! users' rights (the policy layer decides who may call it), or of HTTP. Its API is
//! blocking; async callers run it on a blocking thread pool.

#![forbid(unsafe_code)]

pub mod backend;
mod crypto;
pub mod keys;
mod ledger;
mod vault;

#[cfg(feature = "testing")]
pub mod testing;

pub use backend::postgres::PostgresBackend;
pub use backend::sqlite::SqliteBackend;
pub use backend::{Appended, Backend, BackendError, EpochRow, LedgerLeaf, StoredLeaf, now_micros};
pub use crypto::IndexTerm;
pub use keys::{DataKey, KekId, KeyError, KeyProvider, LocalKek};
pub use ledger::{Done, Ledger, LedgerError, Verification, VerifyError, VerifyReport};
pub use vault::{DirEntry, Expect, Indexer, KeyStatus, Record, Vault, VaultError, Write};

/// Opens a backend from a database location: a `postgres://` or `postgresql://` URL, or
/// else the path of a SQLite file.
pub fn open_backend(location: &str, create: bool) -> Result<Box<dyn Backend>, BackendError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        Ok(Box::new(PostgresBackend::connect(location)?))
    } else {
        Ok(Box::new(SqliteBackend::open(
            std::path::Path::new(location),
            create,
        )?))
    }
}
