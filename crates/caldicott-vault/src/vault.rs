//! The vault: records in, ciphertext out, through one organisation's data key at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use caldicott_core::{OdsCode, ResourceId, ResourceType, VersionId};

use crate::backend::{
    Appended, Backend, BackendError, DataKeyRow, DirRow, LedgerLeaf, NewRecord, RawRecord,
    Reencrypted, RowExpect, RowWrite, TermsOf, now_micros,
};
use crate::crypto::{IndexTerm, RecordKeys, TermHash, payload_body, record_aad};
use crate::keys::{DataKey, KeyError, KeyProvider};
use zeroize::Zeroize;

/// How many times a write with [`Expect::Any`] retries after losing a race.
const ANY_RETRIES: u32 = 64;
/// Batches at least this large are sealed in parallel.
const PARALLEL_SEAL_MIN: usize = 256;

/// Everything that can go wrong in the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The storage engine failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A key could not be loaded or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The master key given is not the one that wrapped this database's data keys.
    #[error(
        "the master key given (id {given}) is not the one this database was encrypted with (id {expected}); check --data, the key file or CALDICOTT_MASTER_KEY"
    )]
    WrongMasterKey { given: String, expected: String },
    /// A stored ciphertext failed authentication: it was altered, truncated, or moved
    /// from another row. Nothing of it is returned.
    #[error(
        "integrity check failed for {org}/{rtype}/{id} version {version}: the stored record was altered or moved and will not be returned"
    )]
    Integrity {
        org: String,
        rtype: String,
        id: String,
        version: u64,
    },
    /// A record names a data key that does not exist.
    #[error(
        "record {org}/{rtype}/{id} version {version} needs data key v{dek_version}, which this database does not hold"
    )]
    MissingDataKey {
        org: String,
        rtype: String,
        id: String,
        version: u64,
        dek_version: u32,
    },
    /// The record is not at the version the caller expected.
    #[error("version conflict on {rtype}/{id}: expected {expected}, found {found}")]
    Conflict {
        rtype: String,
        id: String,
        expected: String,
        found: String,
    },
    /// A batch named the same record twice.
    #[error("a batch may write each record once; {rtype}/{id} appears twice")]
    DuplicateInBatch { rtype: String, id: String },
    /// A deletion in a batch must name the version it deletes.
    #[error("the deletion of {rtype}/{id} does not name the version it deletes")]
    DeleteWithoutVersion { rtype: String, id: String },
    /// The record body is larger than the storage format allows.
    #[error("record body of {0} bytes is too large (limit 64 MiB)")]
    TooLarge(usize),
}

/// What a write expects of the record's current state (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The record must not exist yet (create).
    Absent,
    /// The record's current version must be exactly this (update with `If-Match`).
    Version(VersionId),
    /// Whatever is there (create or update).
    Any,
}

/// Derives a record's index terms from its type and body. The vault calls it when a
/// data-key rotation must re-hash the index; it must give the same terms the caller gave
/// when it wrote the record (for FHIR: the search terms of the resource).
pub type Indexer<'a> = &'a (dyn Fn(&ResourceType, &[u8]) -> Vec<IndexTerm> + Sync);

/// One record version to write.
#[derive(Clone, Debug)]
pub struct Write {
    pub org: OdsCode,
    pub rtype: ResourceType,
    pub id: ResourceId,
    pub expect: Expect,
    /// The record's bytes, kept exactly as given.
    pub body: Vec<u8>,
    /// Terms to find the record by; only keyed hashes of them are stored.
    pub terms: Vec<IndexTerm>,
}

/// A record version read back and decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// The organisation whose data key the record is under.
    pub org: OdsCode,
    pub rtype: ResourceType,
    pub id: ResourceId,
    pub version: VersionId,
    /// A tombstone: the record was deleted in this version, and `body` is empty.
    pub deleted: bool,
    pub body: Vec<u8>,
    /// Microseconds since the Unix epoch.
    pub written_at: i64,
}

impl std::fmt::Debug for Record {
    /// Omits the body: it is patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("org", &self.org)
            .field("rtype", &self.rtype)
            .field("id", &self.id)
            .field("version", &self.version)
            .field("deleted", &self.deleted)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Data-key status of one organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    pub org: String,
    pub active_version: u32,
    /// Record versions per data-key version.
    pub records_per_key: BTreeMap<u32, u64>,
}

impl KeyStatus {
    /// Record versions still under an older data key.
    pub fn stale(&self) -> u64 {
        self.records_per_key
            .iter()
            .filter(|(v, _)| **v < self.active_version)
            .map(|(_, n)| n)
            .sum()
    }
}

struct OrgKeys {
    active: u32,
    keys: BTreeMap<u32, Arc<RecordKeys>>,
}

/// The encrypted record vault over one backend.
pub struct Vault {
    backend: Box<dyn Backend>,
    kek: Arc<dyn KeyProvider>,
    keyring: RwLock<HashMap<String, OrgKeys>>,
}

fn key_context(org: &str, version: u32) -> Vec<u8> {
    format!("caldicott data key v1 org={org} version={version}").into_bytes()
}

impl Vault {
    /// Opens a vault on a migrated database, unwrapping every data key with `kek`.
    /// Fails clearly if the schema is old or the master key is not the right one.
    pub fn open(backend: Box<dyn Backend>, kek: Arc<dyn KeyProvider>) -> Result<Self, VaultError> {
        backend.check_schema()?;
        let v = Self {
            backend,
            kek,
            keyring: RwLock::new(HashMap::new()),
        };
        v.reload_keys()?;
        Ok(v)
    }

    /// The storage backend (for health checks and tooling).
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Re-reads the data keys (another process may have rotated one).
    pub fn reload_keys(&self) -> Result<(), VaultError> {
        let rows = self.backend.data_keys()?;
        if let Some(r) = rows.iter().find(|r| r.kek_id != self.kek.kek_id().as_str()) {
            return Err(VaultError::WrongMasterKey {
                given: self.kek.kek_id().to_string(),
                expected: r.kek_id.clone(),
            });
        }
        let mut ring: HashMap<String, OrgKeys> = HashMap::new();
        for r in rows {
            let dek = self
                .kek
                .unwrap(&r.wrapped, &key_context(&r.org, r.version))?;
            let entry = ring.entry(r.org.clone()).or_insert(OrgKeys {
                active: 0,
                keys: BTreeMap::new(),
            });
            if r.state == "active" {
                entry.active = r.version;
            }
            entry
                .keys
                .insert(r.version, Arc::new(RecordKeys::derive(&dek)));
        }
        *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        Ok(())
    }

    /// Makes sure `org` has a data key, creating its first one if needed.
    pub fn ensure_org(&self, org: &OdsCode) -> Result<(), VaultError> {
        if self.active_keys(org.as_str()).is_some() {
            return Ok(());
        }
        match self.add_data_key(org.as_str(), 1) {
            Ok(()) => Ok(()),
            // Another process created it first: use theirs.
            Err(VaultError::Backend(BackendError::Db { .. })) => self.reload_keys(),
            Err(e) => Err(e),
        }
    }

    fn add_data_key(&self, org: &str, version: u32) -> Result<(), VaultError> {
        let dek = DataKey::generate()?;
        let wrapped = self.kek.wrap(&dek, &key_context(org, version))?;
        self.backend.add_data_key(&DataKeyRow {
            org: org.to_owned(),
            version,
            kek_id: self.kek.kek_id().to_string(),
            wrapped,
            state: "active".into(),
            created_at: now_micros(),
        })?;
        self.reload_keys()
    }

    fn active_keys(&self, org: &str) -> Option<(u32, Arc<RecordKeys>)> {
        let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
        let o = ring.get(org)?;
        o.keys.get(&o.active).map(|k| (o.active, Arc::clone(k)))
    }

    fn keys_for(&self, org: &str, version: u32) -> Option<Arc<RecordKeys>> {
        let find = || {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            ring.get(org).and_then(|o| o.keys.get(&version).cloned())
        };
        find().or_else(|| {
            // Possibly rotated by another process since we loaded.
            self.reload_keys().ok()?;
            find()
        })
    }

    /// All live index keys of an organisation (more than one during data-key rotation).
    fn all_keys(&self, org: &str) -> Vec<Arc<RecordKeys>> {
        let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
        ring.get(org)
            .map(|o| o.keys.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Writes one record version and returns its version number.
    pub fn put(&self, w: &Write) -> Result<VersionId, VaultError> {
        Ok(self.put_batch(std::slice::from_ref(w))?[0])
    }

    /// Writes several record versions atomically: all of them or none. Returns the new
    /// versions in order. Each record may appear once per batch.
    pub fn put_batch(&self, writes: &[Write]) -> Result<Vec<VersionId>, VaultError> {
        self.put_batch_at(writes, now_micros())
    }

    /// [`Vault::put_batch`] with the time the versions are recorded as written
    /// (microseconds since the Unix epoch), for callers that put the same instant in the
    /// record itself (FHIR's `meta.lastUpdated`).
    pub fn put_batch_at(
        &self,
        writes: &[Write],
        written_at: i64,
    ) -> Result<Vec<VersionId>, VaultError> {
        self.commit(writes, writes.len(), written_at)
    }

    /// Writes and deletes records atomically, all recorded as written at `written_at`: a
    /// FHIR transaction. `writes[..first_delete]` are new versions; `writes[first_delete..]`
    /// are deletions (their bodies and terms are ignored; each becomes a tombstone and
    /// must expect a version). Returns the new versions in order.
    pub fn commit(
        &self,
        writes: &[Write],
        first_delete: usize,
        written_at: i64,
    ) -> Result<Vec<VersionId>, VaultError> {
        Ok(self
            .commit_audited(writes, first_delete, written_at, &[])?
            .0)
    }

    /// [`Vault::commit`] with the audit-ledger leaves that record it, appended in the same
    /// transaction: the change and its audit entries are durable together or not at all.
    /// Returns the new versions and where the leaves landed.
    pub fn commit_audited(
        &self,
        writes: &[Write],
        first_delete: usize,
        written_at: i64,
        leaves: &[LedgerLeaf],
    ) -> Result<(Vec<VersionId>, Option<Appended>), VaultError> {
        let first_delete = first_delete.min(writes.len());
        if let Some(w) = writes[first_delete..]
            .iter()
            .find(|w| !matches!(w.expect, Expect::Version(_)))
        {
            return Err(VaultError::DeleteWithoutVersion {
                rtype: w.rtype.to_string(),
                id: w.id.to_string(),
            });
        }
        let mut seen = HashSet::with_capacity(writes.len());
        for w in writes {
            if !seen.insert((w.org.as_str(), w.rtype.as_str(), w.id.as_str())) {
                return Err(VaultError::DuplicateInBatch {
                    rtype: w.rtype.to_string(),
                    id: w.id.to_string(),
                });
            }
            if w.body.len() > 64 << 20 {
                return Err(VaultError::TooLarge(w.body.len()));
            }
        }
        for w in writes {
            self.ensure_org(&w.org)?;
        }
        let mut attempt = 0;
        loop {
            let rows = self.prepare_rows(writes, first_delete, written_at)?;
            let versions = rows
                .iter()
                .map(|r| VersionId::new(r.record.version).unwrap_or(VersionId::FIRST))
                .collect();
            match self.backend.write(&rows, leaves) {
                Ok(appended) => return Ok((versions, appended)),
                Err(BackendError::Conflict { rtype, id }) => {
                    let any = writes.iter().any(|w| {
                        w.expect == Expect::Any && w.rtype.as_str() == rtype && w.id.as_str() == id
                    });
                    attempt += 1;
                    if any && attempt <= ANY_RETRIES {
                        // Back off a little (growing, with jitter from the clock) so that
                        // contending writers stop colliding.
                        let jitter = u64::from(now_micros().unsigned_abs() as u32 % 500);
                        let wait = (50u64 << attempt.min(8)) + jitter;
                        std::thread::sleep(std::time::Duration::from_micros(wait));
                        continue;
                    }
                    let w = writes
                        .iter()
                        .find(|w| w.rtype.as_str() == rtype && w.id.as_str() == id);
                    let found = match w {
                        Some(w) => self.head_version(&w.org, &w.rtype, &w.id)?,
                        None => "unknown".into(),
                    };
                    return Err(VaultError::Conflict {
                        expected: w.map_or("unknown".into(), |w| describe_expect(w.expect)),
                        rtype,
                        id,
                        found,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn head_version(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        id: &ResourceId,
    ) -> Result<String, VaultError> {
        let h = self
            .backend
            .heads(org.as_str(), rtype.as_str(), &[id.as_str()])?;
        Ok(match h.first().and_then(|h| h.as_ref()) {
            None => "no record".into(),
            Some(r) if r.deleted => format!("version {} (deleted)", r.version),
            Some(r) => format!("version {}", r.version),
        })
    }

    fn prepare_rows<'w>(
        &self,
        writes: &'w [Write],
        first_delete: usize,
        now: i64,
    ) -> Result<Vec<RowWrite<'w>>, VaultError> {
        // Expect::Any needs the current versions; fetch them per (org, type) in one go.
        let mut current: HashMap<(&str, &str, &str), u64> = HashMap::new();
        let mut groups: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for w in writes.iter().filter(|w| w.expect == Expect::Any) {
            groups
                .entry((w.org.as_str(), w.rtype.as_str()))
                .or_default()
                .push(w.id.as_str());
        }
        for ((org, rtype), ids) in groups {
            for h in self.backend.heads(org, rtype, &ids)?.into_iter().flatten() {
                if let Some(id) = ids.iter().find(|i| **i == h.id) {
                    current.insert((org, rtype, id), h.version);
                }
            }
        }
        // Rows are sealed with their position: from `first_delete` on they are tombstones.
        let seal = |(i, w): (usize, &'w Write)| -> Result<RowWrite<'w>, VaultError> {
            let deleted = i >= first_delete;
            let (dek_version, keys) = self.active_keys(w.org.as_str()).ok_or_else(|| {
                VaultError::Key(KeyError::Malformed {
                    origin: format!("organisation {}", w.org),
                    reason: "no active data key",
                })
            })?;
            let expect = match w.expect {
                Expect::Absent => RowExpect::Absent,
                Expect::Version(v) => RowExpect::Version(v.get()),
                Expect::Any => {
                    match current.get(&(w.org.as_str(), w.rtype.as_str(), w.id.as_str())) {
                        Some(v) => RowExpect::Version(*v),
                        None => RowExpect::Absent,
                    }
                }
            };
            let version = match expect {
                RowExpect::Absent => 1,
                RowExpect::Version(v) => v + 1,
            };
            self.seal_row(&keys, dek_version, w, version, expect, deleted, now)
        };
        // Large batches are sealed on every core: encryption then costs a fraction of the
        // time the database spends writing.
        if writes.len() < PARALLEL_SEAL_MIN || cores() < 2 {
            return writes.iter().enumerate().map(seal).collect();
        }
        let chunk = writes.len().div_ceil(cores());
        std::thread::scope(|s| {
            let handles: Vec<_> = writes
                .chunks(chunk)
                .enumerate()
                .map(|(n, c)| {
                    s.spawn(move || {
                        c.iter()
                            .enumerate()
                            .map(|(i, w)| seal((n * chunk + i, w)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut rows = Vec::with_capacity(writes.len());
            for h in handles {
                // A panic in a sealing thread is a bug; surface it as one here.
                rows.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
            }
            Ok(rows)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn seal_row<'w>(
        &self,
        keys: &RecordKeys,
        dek_version: u32,
        w: &'w Write,
        version: u64,
        expect: RowExpect,
        deleted: bool,
        now: i64,
    ) -> Result<RowWrite<'w>, VaultError> {
        let (org, rtype, id) = (w.org.as_str(), w.rtype.as_str(), w.id.as_str());
        let aad = record_aad(org, rtype, id, version, dek_version, deleted);
        let body: &[u8] = if deleted { &[] } else { &w.body };
        let ciphertext = keys.seal(&aad, body).map_err(|_| KeyError::Random)?;
        let terms = if deleted {
            Vec::new()
        } else {
            w.terms
                .iter()
                .map(|t| keys.term(&t.name, &t.value))
                .collect()
        };
        Ok(RowWrite {
            record: NewRecord {
                org,
                rtype,
                id,
                version,
                deleted,
                dek_version,
                ciphertext,
                written_at: now,
            },
            expect,
            terms,
        })
    }

    /// Deletes a record by writing a tombstone version; history is kept.
    pub fn delete(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        id: &ResourceId,
        expect: Expect,
    ) -> Result<VersionId, VaultError> {
        let Some((dek_version, keys)) = self.active_keys(org.as_str()) else {
            return Err(self.not_found_conflict(rtype, id, expect));
        };
        let head = self
            .backend
            .heads(org.as_str(), rtype.as_str(), &[id.as_str()])?;
        let Some(head) = head.into_iter().next().flatten() else {
            return Err(self.not_found_conflict(rtype, id, expect));
        };
        let current = head.version;
        match expect {
            Expect::Version(v) if v.get() != current => {
                return Err(VaultError::Conflict {
                    rtype: rtype.to_string(),
                    id: id.to_string(),
                    expected: describe_expect(expect),
                    found: format!("version {current}"),
                });
            }
            Expect::Absent => return Err(self.not_found_conflict(rtype, id, expect)),
            _ => {}
        }
        let w = Write {
            org: org.clone(),
            rtype: rtype.clone(),
            id: id.clone(),
            expect,
            body: Vec::new(),
            terms: Vec::new(),
        };
        let row = self.seal_row(
            &keys,
            dek_version,
            &w,
            current + 1,
            RowExpect::Version(current),
            true,
            now_micros(),
        )?;
        match self.backend.write(&[row], &[]) {
            Ok(_) => Ok(VersionId::new(current + 1).unwrap_or(VersionId::FIRST)),
            Err(BackendError::Conflict { .. }) => Err(VaultError::Conflict {
                rtype: rtype.to_string(),
                id: id.to_string(),
                expected: format!("version {current}"),
                found: self.head_version(org, rtype, id)?,
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn not_found_conflict(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        expect: Expect,
    ) -> VaultError {
        VaultError::Conflict {
            rtype: rtype.to_string(),
            id: id.to_string(),
            expected: describe_expect(expect),
            found: "no record".into(),
        }
    }

    /// The current version of a record (a tombstone if deleted), or `None` if it never existed.
    pub fn get(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        id: &ResourceId,
    ) -> Result<Option<Record>, VaultError> {
        Ok(self
            .get_many(org, rtype, std::slice::from_ref(id))?
            .pop()
            .flatten())
    }

    /// The current versions of several records, in the order asked.
    pub fn get_many(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        ids: &[ResourceId],
    ) -> Result<Vec<Option<Record>>, VaultError> {
        let ids: Vec<&str> = ids.iter().map(ResourceId::as_str).collect();
        self.backend
            .heads(org.as_str(), rtype.as_str(), &ids)?
            .into_iter()
            .map(|r| {
                r.map(|r| self.open_known(r, Some((org, rtype))))
                    .transpose()
            })
            .collect()
    }

    /// One version of a record.
    pub fn get_version(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        id: &ResourceId,
        version: VersionId,
    ) -> Result<Option<Record>, VaultError> {
        self.backend
            .version(org.as_str(), rtype.as_str(), id.as_str(), version.get())?
            .map(|r| self.open_record(r))
            .transpose()
    }

    /// Every version of a record, newest first.
    pub fn history(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        id: &ResourceId,
    ) -> Result<Vec<Record>, VaultError> {
        self.backend
            .history(org.as_str(), rtype.as_str(), id.as_str())?
            .into_iter()
            .map(|r| self.open_record(r))
            .collect()
    }

    /// Ids of the current, non-deleted records of `rtype` indexed under `term`.
    pub fn search(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        term: &IndexTerm,
    ) -> Result<Vec<ResourceId>, VaultError> {
        let hashes: Vec<TermHash> = self
            .all_keys(org.as_str())
            .iter()
            .map(|k| k.term(&term.name, &term.value))
            .collect();
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .backend
            .search(org.as_str(), rtype.as_str(), &hashes)?
            .iter()
            .filter_map(|id| ResourceId::new(id).ok())
            .collect())
    }

    /// The organisation that holds a record (deleted or not), if any does. A `(type, id)`
    /// belongs to one organisation of the deployment: the database refuses a second.
    pub fn locate(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
    ) -> Result<Option<OdsCode>, VaultError> {
        Ok(self
            .locate_many(rtype, std::slice::from_ref(id))?
            .pop()
            .flatten())
    }

    /// [`Vault::locate`] for several ids, in the order asked.
    pub fn locate_many(
        &self,
        rtype: &ResourceType,
        ids: &[ResourceId],
    ) -> Result<Vec<Option<OdsCode>>, VaultError> {
        let ids: Vec<&str> = ids.iter().map(ResourceId::as_str).collect();
        Ok(self
            .backend
            .locate(rtype.as_str(), &ids)?
            .into_iter()
            .map(|o| o.and_then(|o| OdsCode::parse(&o).ok()))
            .collect())
    }

    /// Up to `limit` current, non-deleted records of a type, in id order, after `after`:
    /// for searches the index cannot narrow and for bulk export.
    pub fn scan(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        after: Option<&ResourceId>,
        limit: usize,
    ) -> Result<Vec<Record>, VaultError> {
        self.backend
            .scan(
                org.as_str(),
                rtype.as_str(),
                after.map(ResourceId::as_str),
                limit,
            )?
            .into_iter()
            .map(|r| self.open_record(r))
            .collect()
    }

    /// Up to `limit` record versions (tombstones included) of one organisation, of one
    /// type or of all, written in `[since, before)` (microseconds since the epoch), newest
    /// first: history at type and system level.
    pub fn changes(
        &self,
        org: &OdsCode,
        rtype: Option<&ResourceType>,
        since: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Record>, VaultError> {
        self.backend
            .changes(
                org.as_str(),
                rtype.map(ResourceType::as_str),
                since,
                before,
                limit,
            )?
            .into_iter()
            .map(|r| self.open_record(r))
            .collect()
    }

    /// Ids of the current, non-deleted records of `rtype` indexed under any of `terms`,
    /// sorted: one parameter of a search, whose values are alternatives.
    pub fn search_any(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        terms: &[IndexTerm],
    ) -> Result<Vec<ResourceId>, VaultError> {
        let keys = self.all_keys(org.as_str());
        let hashes: Vec<TermHash> = terms
            .iter()
            .flat_map(|t| keys.iter().map(|k| k.term(&t.name, &t.value)))
            .collect();
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<ResourceId> = self
            .backend
            .search(org.as_str(), rtype.as_str(), &hashes)?
            .iter()
            .filter_map(|id| ResourceId::new(id).ok())
            .collect();
        // Sorted here, by bytes: the database's collation may order differently.
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        Ok(ids)
    }

    /// Re-indexes up to `limit` current records of one type after `after`, in id order,
    /// with the terms `indexer` gives now (after the caller changed what it indexes).
    /// Returns the last id done (to pass as `after` next time) and how many records were
    /// re-indexed; `None` when the type is done.
    /// Concurrent writes are safe: a record rewritten meanwhile keeps its own new terms.
    pub fn reindex_step(
        &self,
        org: &OdsCode,
        rtype: &ResourceType,
        after: Option<&ResourceId>,
        limit: usize,
        indexer: Indexer<'_>,
    ) -> Result<Option<(ResourceId, usize)>, VaultError> {
        let records = self.scan(org, rtype, after, limit)?;
        let Some(last) = records.last().map(|r| r.id.clone()) else {
            return Ok(None);
        };
        let keys = self
            .active_keys(org.as_str())
            .map(|(_, k)| k)
            .ok_or_else(|| {
                VaultError::Key(KeyError::Malformed {
                    origin: format!("organisation {org}"),
                    reason: "no active data key",
                })
            })?;
        let rows: Vec<TermsOf> = records
            .iter()
            .map(|r| TermsOf {
                org: org.to_string(),
                rtype: rtype.to_string(),
                id: r.id.to_string(),
                version: r.version.get(),
                terms: indexer(rtype, &r.body)
                    .iter()
                    .map(|t| keys.term(&t.name, &t.value))
                    .collect(),
            })
            .collect();
        self.backend.replace_terms(&rows)?;
        Ok(Some((last, rows.len())))
    }

    /// Number of current, non-deleted records of a type.
    pub fn count(&self, org: &OdsCode, rtype: &ResourceType) -> Result<u64, VaultError> {
        Ok(self.backend.count(org.as_str(), rtype.as_str())?)
    }

    /// Decrypts one stored version (in place, without copying the body) and checks it is
    /// the record it claims to be.
    fn open_record(&self, r: RawRecord) -> Result<Record, VaultError> {
        self.open_known(r, None)
    }

    /// [`Vault::open_record`] for rows the caller asked by organisation and type: those
    /// names are reused rather than parsed again for every record (still checked equal).
    fn open_known(
        &self,
        r: RawRecord,
        known: Option<(&OdsCode, &ResourceType)>,
    ) -> Result<Record, VaultError> {
        let integrity = |r: &RawRecord| VaultError::Integrity {
            org: r.org.clone(),
            rtype: r.rtype.clone(),
            id: r.id.clone(),
            version: r.version,
        };
        let Some(keys) = self.keys_for(&r.org, r.dek_version) else {
            return Err(VaultError::MissingDataKey {
                org: r.org,
                rtype: r.rtype,
                id: r.id,
                version: r.version,
                dek_version: r.dek_version,
            });
        };
        let aad = record_aad(&r.org, &r.rtype, &r.id, r.version, r.dek_version, r.deleted);
        let mut buf = r.ciphertext;
        let (org, rtype) = match known {
            Some((o, t)) if o.as_str() == r.org && t.as_str() == r.rtype => {
                (Ok(o.clone()), Ok(t.clone()))
            }
            _ => (
                OdsCode::parse(&r.org).map_err(|_| ()),
                ResourceType::new(&r.rtype).map_err(|_| ()),
            ),
        };
        let (id, version) = (ResourceId::new(&r.id), VersionId::new(r.version));
        let r = RawRecord {
            ciphertext: Vec::new(),
            ..r
        };
        let plain = keys
            .open_in_place(&aad, &mut buf)
            .map_err(|_| integrity(&r))?;
        let body = payload_body(&buf[plain.clone()]).ok_or_else(|| integrity(&r))?;
        // Keep only the body, moved to the front of the same buffer.
        buf.truncate(plain.start + body.end);
        buf.drain(..plain.start + body.start);
        Ok(Record {
            org: org.map_err(|_| integrity(&r))?,
            rtype: rtype.map_err(|_| integrity(&r))?,
            id: id.map_err(|_| integrity(&r))?,
            version: version.ok_or_else(|| integrity(&r))?,
            deleted: r.deleted,
            body: buf,
            written_at: r.written_at,
        })
    }

    /// Rewraps every data key under `new_kek` in one transaction. Records are untouched.
    /// Returns the number of data keys rewrapped. The vault keeps working with the new key.
    pub fn rotate_master_key(
        &mut self,
        new_kek: Arc<dyn KeyProvider>,
    ) -> Result<usize, VaultError> {
        let rows = self.backend.data_keys()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let ctx = key_context(&r.org, r.version);
            let dek = self.kek.unwrap(&r.wrapped, &ctx)?;
            let wrapped = new_kek.wrap(&dek, &ctx)?;
            out.push(DataKeyRow {
                kek_id: new_kek.kek_id().to_string(),
                wrapped,
                ..r
            });
        }
        self.backend.rewrap_data_keys(&out)?;
        self.kek = new_kek;
        self.reload_keys()?;
        Ok(out.len())
    }

    /// Starts a new data key for `org`; new writes use it at once, and
    /// [`Vault::reencrypt_step`] moves old records to it. Returns the new key's version.
    pub fn rotate_data_key(&self, org: &OdsCode) -> Result<u32, VaultError> {
        self.reload_keys()?;
        let next = {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            ring.get(org.as_str())
                .and_then(|o| o.keys.keys().next_back().copied())
                .unwrap_or(0)
                + 1
        };
        self.add_data_key(org.as_str(), next)?;
        Ok(next)
    }

    /// Re-encrypts up to `limit` record versions of `org` that still use an older data key,
    /// and re-hashes their index terms. Safe to run while serving and to interrupt: each
    /// step is one transaction, and rows changed meanwhile are skipped and found again.
    /// Returns how many rows it re-encrypted; 0 means the organisation is done (and its
    /// old keys have been dropped).
    pub fn reencrypt_step(
        &self,
        org: &OdsCode,
        limit: usize,
        indexer: Indexer<'_>,
    ) -> Result<usize, VaultError> {
        let Some((active, keys)) = self.active_keys(org.as_str()) else {
            return Ok(0);
        };
        let stale = self.backend.stale_records(org.as_str(), active, limit)?;
        if stale.is_empty() {
            let old: Vec<u32> = {
                let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
                ring.get(org.as_str())
                    .map(|o| o.keys.keys().copied().filter(|v| *v < active).collect())
                    .unwrap_or_default()
            };
            let mut dropped = false;
            for v in old {
                dropped |= self.backend.drop_data_key(org.as_str(), v)?;
            }
            if dropped {
                self.reload_keys()?;
            }
            return Ok(0);
        }
        let mut out = Vec::with_capacity(stale.len());
        for r in &stale {
            let rec = self.open_record(r.clone())?;
            let terms = if r.deleted {
                Vec::new()
            } else {
                indexer(&rec.rtype, &rec.body)
            };
            let aad = record_aad(&r.org, &r.rtype, &r.id, r.version, active, r.deleted);
            let ciphertext = keys.seal(&aad, &rec.body).map_err(|_| KeyError::Random)?;
            out.push(Reencrypted {
                org: r.org.clone(),
                rtype: r.rtype.clone(),
                id: r.id.clone(),
                version: r.version,
                old_dek: r.dek_version,
                new_dek: active,
                ciphertext,
                terms: terms.iter().map(|t| keys.term(&t.name, &t.value)).collect(),
            });
        }
        self.backend.apply_reencrypted(&out)?;
        Ok(out.len())
    }

    /// Data-key status of every organisation.
    pub fn key_status(&self) -> Result<Vec<KeyStatus>, VaultError> {
        self.reload_keys()?;
        let counts = self.backend.records_per_key()?;
        let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
        // The directory's key is not an organisation's; its rotation is its own matter.
        let mut out: BTreeMap<String, KeyStatus> = ring
            .iter()
            .filter(|(org, _)| org.as_str() != DIRECTORY_OWNER)
            .map(|(org, k)| {
                (
                    org.clone(),
                    KeyStatus {
                        org: org.clone(),
                        active_version: k.active,
                        records_per_key: BTreeMap::new(),
                    },
                )
            })
            .collect();
        for (org, v, n) in counts {
            if let Some(s) = out.get_mut(&org) {
                s.records_per_key.insert(v, n);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Organisations that have a data key.
    pub fn organisations(&self) -> Vec<String> {
        let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = ring
            .keys()
            .filter(|o| o.as_str() != DIRECTORY_OWNER)
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// The directory's keys, made on first use.
    fn directory_keys(&self) -> Result<(u32, Arc<RecordKeys>), VaultError> {
        if let Some(k) = self.active_keys(DIRECTORY_OWNER) {
            return Ok(k);
        }
        match self.add_data_key(DIRECTORY_OWNER, 1) {
            Ok(()) => {}
            Err(VaultError::Backend(BackendError::Db { .. })) => self.reload_keys()?,
            Err(e) => return Err(e),
        }
        self.active_keys(DIRECTORY_OWNER).ok_or_else(|| {
            VaultError::Key(KeyError::Malformed {
                origin: "the directory".into(),
                reason: "no active data key",
            })
        })
    }

    /// One directory entry (a user, an organisation, a token...), decrypted, with its
    /// version; `None` if there is none.
    pub fn dir_get(&self, kind: &str, key: &str) -> Result<Option<DirEntry>, VaultError> {
        self.backend
            .dir_get(kind, key)?
            .map(|r| self.open_dir(r))
            .transpose()
    }

    /// Writes a directory entry sealed under the directory's data key, if its current
    /// version is `expect` (`None`: it must be new); returns the new version. A lost race
    /// is `VaultError::Conflict`.
    pub fn dir_put(
        &self,
        kind: &str,
        key: &str,
        value: &[u8],
        expect: Option<VersionId>,
    ) -> Result<VersionId, VaultError> {
        let (dek_version, keys) = self.directory_keys()?;
        let version = expect.map_or(VersionId::FIRST, VersionId::next);
        let aad = dir_aad(kind, key, version.get(), dek_version);
        let value = keys.seal(&aad, value).map_err(|_| KeyError::Random)?;
        let row = DirRow {
            kind: kind.to_owned(),
            key: key.to_owned(),
            version: version.get(),
            dek_version,
            value,
            updated_at: now_micros(),
        };
        match self.backend.dir_put(&row, expect.map(VersionId::get)) {
            Ok(()) => Ok(version),
            Err(BackendError::Conflict { .. }) => Err(VaultError::Conflict {
                rtype: kind.to_owned(),
                id: key.to_owned(),
                expected: expect.map_or("no entry".into(), |v| format!("version {v}")),
                found: "another".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A keyed hash of `value` under the directory's index key, as text: for lists kept by
    /// value without the value (opted-out NHS numbers). Stable while the directory's data
    /// key is.
    pub fn dir_keyed_hash(&self, kind: &str, value: &str) -> Result<String, VaultError> {
        let (_, keys) = self.directory_keys()?;
        Ok(keys
            .term(kind, value)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Replaces every entry of `kind` with these `(key, value)` pairs, sealed, in one
    /// transaction.
    pub fn dir_replace_kind(
        &self,
        kind: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), VaultError> {
        let (dek_version, keys) = self.directory_keys()?;
        let now = now_micros();
        let rows = entries
            .iter()
            .map(|(key, value)| {
                let aad = dir_aad(kind, key, 1, dek_version);
                Ok(DirRow {
                    kind: kind.to_owned(),
                    key: key.clone(),
                    version: 1,
                    dek_version,
                    value: keys.seal(&aad, value).map_err(|_| KeyError::Random)?,
                    updated_at: now,
                })
            })
            .collect::<Result<Vec<_>, VaultError>>()?;
        Ok(self.backend.dir_replace_kind(kind, &rows)?)
    }

    /// Deletes a directory entry; whether there was one.
    pub fn dir_delete(&self, kind: &str, key: &str) -> Result<bool, VaultError> {
        Ok(self.backend.dir_delete(kind, key)?)
    }

    /// Up to `limit` entries of a kind in key order, after `after`, decrypted.
    pub fn dir_list(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DirEntry>, VaultError> {
        self.backend
            .dir_list(kind, after, limit)?
            .into_iter()
            .map(|r| self.open_dir(r))
            .collect()
    }

    fn open_dir(&self, r: DirRow) -> Result<DirEntry, VaultError> {
        let integrity = || VaultError::Integrity {
            org: DIRECTORY_OWNER.into(),
            rtype: r.kind.clone(),
            id: r.key.clone(),
            version: r.version,
        };
        let keys = self
            .keys_for(DIRECTORY_OWNER, r.dek_version)
            .ok_or_else(integrity)?;
        let aad = dir_aad(&r.kind, &r.key, r.version, r.dek_version);
        let mut buf = r.value.clone();
        let plain = keys
            .open_in_place(&aad, &mut buf)
            .map_err(|_| integrity())?;
        let body = payload_body(&buf[plain.clone()]).ok_or_else(integrity)?;
        let value = buf[plain.start + body.start..plain.start + body.end].to_vec();
        buf.zeroize();
        let version = VersionId::new(r.version).ok_or_else(integrity)?;
        Ok(DirEntry {
            key: r.key,
            version,
            value: zeroize::Zeroizing::new(value),
            updated_at: r.updated_at,
        })
    }
}

/// The owner name of the directory's data keys: not an ODS code, so no organisation can
/// have it, and never listed among the organisations.
const DIRECTORY_OWNER: &str = "~directory";

fn dir_aad(kind: &str, key: &str, version: u64, dek_version: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + kind.len() + key.len());
    for part in [kind.as_bytes(), key.as_bytes()] {
        a.extend_from_slice(&(part.len() as u32).to_be_bytes());
        a.extend_from_slice(part);
    }
    a.extend_from_slice(b"caldicott directory v1");
    a.extend_from_slice(&version.to_be_bytes());
    a.extend_from_slice(&dek_version.to_be_bytes());
    a
}

/// A directory entry read back and decrypted. The value is wiped from memory when dropped.
pub struct DirEntry {
    pub key: String,
    pub version: VersionId,
    pub value: zeroize::Zeroizing<Vec<u8>>,
    /// Microseconds since the Unix epoch.
    pub updated_at: i64,
}

impl std::fmt::Debug for DirEntry {
    /// Omits the value: it may be a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirEntry")
            .field("key", &self.key)
            .field("version", &self.version)
            .finish()
    }
}

/// The number of cores, asked once: `available_parallelism` reads cgroup files on Linux
/// (~9 µs a call), too slow for every single-record write.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn describe_expect(e: Expect) -> String {
    match e {
        Expect::Absent => "no record".into(),
        Expect::Version(v) => format!("version {v}"),
        Expect::Any => "any version".into(),
    }
}
