//! The storage interface the vault is written against, and its two implementations.
//!
//! A backend stores opaque rows: it never sees a key, a plaintext or an index term in
//! clear. It guarantees that every [`Backend::write`] is atomic and durable when it
//! returns, and that an expected-version check and the write it guards happen in the same
//! transaction. The same conformance suite (`tests/conformance.rs`) runs against both.

pub mod ledger;
pub mod postgres;
pub mod sqlite;

pub use ledger::{Appended, EpochRow, LedgerLeaf, StoredLeaf};

use crate::crypto::TermHash;

/// A failure of the storage engine, with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The database could not be opened or reached.
    #[error("cannot open database {location}: {reason}")]
    Open { location: String, reason: String },
    /// The database file is damaged or is not a SQLite database.
    #[error("database {location} is corrupt or not a Caldicott database: {reason}")]
    Corrupt { location: String, reason: String },
    /// The schema is not at the version this build expects.
    #[error(
        "database schema is at version {found}, this build of caldicott needs version {expected}: {hint}"
    )]
    SchemaVersion {
        found: i64,
        expected: i64,
        hint: &'static str,
    },
    /// An expected-version check failed: another writer got there first.
    #[error("write conflict on {rtype}/{id}: the record is not at the expected version")]
    Conflict { rtype: String, id: String },
    /// Any other database error.
    #[error("database error during {during}: {reason}")]
    Db {
        during: &'static str,
        reason: String,
    },
}

/// What a write expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowExpect {
    /// No record with this id exists.
    Absent,
    /// The record's current version is exactly this.
    Version(u64),
}

/// One version of one record, as stored.
#[derive(Clone, Debug)]
pub struct RawRecord {
    pub org: String,
    pub rtype: String,
    pub id: String,
    pub version: u64,
    pub deleted: bool,
    pub dek_version: u32,
    pub ciphertext: Vec<u8>,
    /// Microseconds since the Unix epoch.
    pub written_at: i64,
}

/// One new record version to write, with the index terms of the record's new head. It
/// borrows the names from the caller: writing a batch allocates nothing per row but its
/// ciphertext and terms.
#[derive(Clone, Debug)]
pub struct RowWrite<'a> {
    pub record: NewRecord<'a>,
    pub expect: RowExpect,
    pub terms: Vec<TermHash>,
}

/// A record version about to be written.
#[derive(Clone, Debug)]
pub struct NewRecord<'a> {
    pub org: &'a str,
    pub rtype: &'a str,
    pub id: &'a str,
    pub version: u64,
    pub deleted: bool,
    pub dek_version: u32,
    pub ciphertext: Vec<u8>,
    /// Microseconds since the Unix epoch.
    pub written_at: i64,
}

/// A stored data key.
#[derive(Clone, Debug)]
pub struct DataKeyRow {
    pub org: String,
    pub version: u32,
    pub kek_id: String,
    pub wrapped: Vec<u8>,
    /// `active` for the key new writes use, `retired` for older keys still needed to read.
    pub state: String,
    pub created_at: i64,
}

/// A re-encrypted record version: replace its ciphertext if it still uses `old_dek`.
#[derive(Clone, Debug)]
pub struct Reencrypted {
    pub org: String,
    pub rtype: String,
    pub id: String,
    pub version: u64,
    pub old_dek: u32,
    pub new_dek: u32,
    pub ciphertext: Vec<u8>,
    /// New index terms, applied only if this version is still the record's head.
    pub terms: Vec<TermHash>,
}

/// New index terms for one record's head at `version`.
#[derive(Clone, Debug)]
pub struct TermsOf {
    pub org: String,
    pub rtype: String,
    pub id: String,
    pub version: u64,
    pub terms: Vec<TermHash>,
}

/// One sealed entry of the directory (users, organisations, tokens, opt-outs...): the vault
/// seals `value`; the backend stores it opaquely.
#[derive(Clone, Debug)]
pub struct DirRow {
    pub kind: String,
    pub key: String,
    pub version: u64,
    pub dek_version: u32,
    pub value: Vec<u8>,
    /// Microseconds since the Unix epoch.
    pub updated_at: i64,
}

/// The operations the vault needs from a database.
pub trait Backend: Send + Sync {
    /// A short description for errors and logs (a file path or a URL without password).
    fn location(&self) -> String;
    /// Applies pending schema migrations; returns the versions applied.
    fn migrate(&self) -> Result<Vec<i64>, BackendError>;
    /// Fails unless the schema is exactly at the version this build expects.
    fn check_schema(&self) -> Result<(), BackendError>;
    /// Reads a metadata value.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Writes a metadata value.
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), BackendError>;

    /// All data keys.
    fn data_keys(&self) -> Result<Vec<DataKeyRow>, BackendError>;
    /// Adds a data key; if `retire_others`, the organisation's other keys become `retired`,
    /// in the same transaction.
    fn add_data_key(&self, row: &DataKeyRow) -> Result<(), BackendError>;
    /// Replaces the wrapping of every listed key in one transaction (master-key rotation).
    fn rewrap_data_keys(&self, rows: &[DataKeyRow]) -> Result<(), BackendError>;
    /// Deletes a retired data key once no record uses it.
    fn drop_data_key(&self, org: &str, version: u32) -> Result<bool, BackendError>;

    /// Writes record versions and audit-ledger leaves atomically: all or none. Each row's
    /// `expect` is checked in the same transaction; on a mismatch nothing is written and
    /// `Conflict` is returned. With leaves, returns where they were appended.
    fn write(
        &self,
        rows: &[RowWrite<'_>],
        leaves: &[LedgerLeaf],
    ) -> Result<Option<Appended>, BackendError>;
    /// The current version of each record (tombstones included), in the order asked.
    fn heads(
        &self,
        org: &str,
        rtype: &str,
        ids: &[&str],
    ) -> Result<Vec<Option<RawRecord>>, BackendError>;
    /// One version of a record.
    fn version(
        &self,
        org: &str,
        rtype: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<RawRecord>, BackendError>;
    /// Every version of a record, newest first.
    fn history(&self, org: &str, rtype: &str, id: &str) -> Result<Vec<RawRecord>, BackendError>;
    /// Ids of current, non-deleted records of a type indexed under any of the terms, sorted.
    fn search(
        &self,
        org: &str,
        rtype: &str,
        terms: &[TermHash],
    ) -> Result<Vec<String>, BackendError>;
    /// Number of current, non-deleted records per organisation and type.
    fn count(&self, org: &str, rtype: &str) -> Result<u64, BackendError>;
    /// The organisation holding each record (a `(type, id)` belongs to at most one
    /// organisation of the deployment), in the order asked; tombstones included.
    fn locate(&self, rtype: &str, ids: &[&str]) -> Result<Vec<Option<String>>, BackendError>;
    /// Up to `limit` current, non-deleted records of a type in id order, after `after`.
    fn scan(
        &self,
        org: &str,
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError>;
    /// Up to `limit` record versions (tombstones included) of one organisation, of one
    /// type or all, written in `[since, before)`, newest first (ties by type, id, version
    /// descending).
    fn changes(
        &self,
        org: &str,
        rtype: Option<&str>,
        since: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError>;

    /// Up to `limit` record versions of `org` still encrypted under a data key older than
    /// `dek_version`.
    fn stale_records(
        &self,
        org: &str,
        dek_version: u32,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError>;
    /// Number of record versions per (organisation, data-key version).
    fn records_per_key(&self) -> Result<Vec<(String, u32, u64)>, BackendError>;
    /// Applies re-encrypted rows atomically; rows whose data key changed meanwhile are skipped.
    fn apply_reencrypted(&self, rows: &[Reencrypted]) -> Result<(), BackendError>;

    /// Replaces the index terms of records whose head is still at the given version (the
    /// others were rewritten meanwhile, with terms of their own): re-indexing.
    fn replace_terms(&self, rows: &[TermsOf]) -> Result<(), BackendError>;

    /// One directory entry.
    fn dir_get(&self, kind: &str, key: &str) -> Result<Option<DirRow>, BackendError>;
    /// Writes a directory entry if its current version is `expect` (`None`: it must not
    /// exist); otherwise `Conflict`.
    fn dir_put(&self, row: &DirRow, expect: Option<u64>) -> Result<(), BackendError>;
    /// Deletes a directory entry; whether it existed.
    fn dir_delete(&self, kind: &str, key: &str) -> Result<bool, BackendError>;
    /// Replaces every entry of a kind with `rows`, in one transaction (a list loaded whole,
    /// such as the National Data Opt-out).
    fn dir_replace_kind(&self, kind: &str, rows: &[DirRow]) -> Result<(), BackendError>;
    /// Up to `limit` entries of a kind in key order, after `after`.
    fn dir_list(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DirRow>, BackendError>;

    /// Every epoch of the audit ledger, oldest first (there is always at least one).
    fn ledger_epochs(&self) -> Result<Vec<EpochRow>, BackendError>;
    /// Leaves `[start, end)` of an epoch that are stored, in index order.
    fn ledger_leaves(
        &self,
        epoch: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredLeaf>, BackendError>;
    /// Leaves of an epoch beyond its recorded size (there should be none).
    fn ledger_leaves_beyond(&self, epoch: u32, size: u64) -> Result<u64, BackendError>;
    /// The stored hashes of nodes, in the order asked (`None` where missing).
    fn ledger_nodes(
        &self,
        epoch: u32,
        ids: &[caldicott_ledger::NodeId],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError>;
    /// The stored nodes of one level with index in `[start, end)`, in index order.
    fn ledger_node_range(
        &self,
        epoch: u32,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError>;
    /// The leaf-hash tiles asked for (each the 16 leaf hashes of a complete aligned block,
    /// concatenated), in the order asked (`None` where missing).
    fn ledger_tiles(&self, epoch: u32, tiles: &[u64])
    -> Result<Vec<Option<Vec<u8>>>, BackendError>;
    /// Stores a signed checkpoint (a second one for the same size is ignored).
    fn ledger_put_checkpoint(&self, epoch: u32, size: u64, note: &str) -> Result<(), BackendError>;
    /// Checkpoints of an epoch with size in `[from, to]`, by size.
    fn ledger_checkpoints(
        &self,
        epoch: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String)>, BackendError>;
    /// The largest checkpoint of an epoch.
    fn ledger_latest_checkpoint(&self, epoch: u32) -> Result<Option<(u64, String)>, BackendError>;
    /// Up to `limit` leaves indexed under `key`, newest first, before `before` (an
    /// `(epoch, idx)` position). Keys are stored hashed to 64 bits: a rare leaf of another
    /// key may be among them, so callers check what they read.
    fn ledger_find(
        &self,
        key: &str,
        before: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<(u32, u64)>, BackendError>;
    /// Seals the current epoch `epoch` with its final signed checkpoint (of its whole
    /// size) and opens `epoch + 1`, atomically; `Conflict` if `epoch` is not current or
    /// grew meanwhile (`size` no longer matches). `first`, when given, is appended as the new
    /// epoch's first leaf in the same transaction, so no other entry can come before it.
    fn ledger_seal(
        &self,
        epoch: u32,
        size: u64,
        final_note: &str,
        first: Option<&LedgerLeaf>,
    ) -> Result<u32, BackendError>;
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
