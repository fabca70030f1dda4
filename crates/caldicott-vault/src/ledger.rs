//! The audit ledger as stored in the vault's database: an append-only RFC 9162 Merkle log
//! whose leaves are opaque bytes (the caller's canonical audit events), with signed
//! checkpoints, proofs and a full verification.
//!
//! - **Appends** that record a change go in the change's own transaction
//!   ([`Vault::commit_audited`]). Every other append goes through [`Ledger::append`],
//!   which *group-commits*: callers arriving while a commit is in flight are batched into
//!   the next one (one transaction, one fsync), and each returns only once its leaves are
//!   durable.
//! - **Checkpoints** ([`Ledger::publish`]) are C2SP tlog-checkpoints signed with the
//!   deployment's Ed25519 ledger key, which lives sealed in the vault's directory (so
//!   every process serving one PostgreSQL database signs with the same key).
//! - **Proofs** read the stored complete-subtree hashes: nodes at level 4 and above (one
//!   in sixteen; the only ones stored) are kept in memory once read, as complete nodes
//!   never change; the four levels below are hashed from the block's 16 leaf hashes,
//!   stored together as a tile.
//! - **Epochs**: the log is never edited. Retention splits it: [`Ledger::seal`] signs a
//!   final checkpoint of the current epoch and opens the next; [`Ledger::seal_with`] also
//!   writes, in the same transaction, the new epoch's first leaf (the caller's record of
//!   the sealed epoch's number, size and root), so nothing can come before it. A sealed
//!   epoch stays verifiable on its own.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use caldicott_ledger::{
    Checkpoint, Frontier, Hash, HashSource, NodeId, SignerKey, VerifierKey, consistency_proof,
    inclusion_proof, leaf_hash, tree_root,
};
use zeroize::Zeroizing;

use crate::backend::{Appended, BackendError, EpochRow, LedgerLeaf, StoredLeaf};
use crate::vault::{Vault, VaultError};

/// The directory entry holding the ledger's signing key.
const KEY_KIND: &str = "ledger-key";
const KEY_NAME: &str = "signer";
/// The most leaves one group commit writes.
const MAX_BATCH: usize = 20_000;
/// Nodes at this level and above (one per 16 leaves or fewer) are cached in memory once
/// read: complete nodes never change. For a 10-million-entry log that is 625,000 hashes,
/// 20 MB.
const CACHE_LEVEL: u8 = crate::backend::ledger::STORED_LEVEL;
/// Leaves per tile: the leaf hashes of each complete aligned block of this many leaves are
/// also stored together in one row (`ledger_tiles`), so the lower levels of a proof cost
/// one small read. It is 2^[`CACHE_LEVEL`]: the levels above come from the cache.
pub(crate) const TILE_LEAVES: u64 = 1 << CACHE_LEVEL;
/// The most nodes one cache refill reads.
const CACHE_REFILL: u64 = 1 << 20;

/// A ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("audit ledger storage: {0}")]
    Backend(#[from] BackendError),
    #[error("the audit ledger's signing key is unusable: {0}")]
    Key(String),
    #[error("epoch {0} does not exist")]
    NoEpoch(u32),
    #[error("{0}")]
    Range(String),
    #[error("the audit ledger's stored hashes are damaged: {0}")]
    Damaged(String),
}

/// What a full verification found wrong: the first problem, precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("epoch {epoch}, entry {index}: {problem}")]
    Entry {
        epoch: u32,
        index: u64,
        problem: String,
    },
    #[error("epoch {epoch}, checkpoint of size {size}: {problem}")]
    Checkpoint {
        epoch: u32,
        size: u64,
        problem: String,
    },
    #[error("epoch {epoch}: {problem}")]
    Epoch { epoch: u32, problem: String },
}

/// The result of a full verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub epochs: u32,
    pub entries: u64,
    pub checkpoints: u64,
}

/// A full verification of the ledger and what it found, kept in the vault's directory so
/// that the running system (the console's home page) can say when the ledger was last
/// proved intact. The location of a failure is kept; its wording is not (a leaf checker's
/// message is the caller's, and nothing about an entry's content belongs here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// When it finished (microseconds since the epoch).
    pub at_us: i64,
    /// `None` when the ledger was intact; else where the first problem is, such as
    /// `epoch 1, entry 42`.
    pub failed_at: Option<String>,
    pub entries: u64,
    pub checkpoints: u64,
    pub epochs: u32,
}

impl Verification {
    /// The record of a verification's outcome at `at_us`.
    pub fn of(outcome: &Result<VerifyReport, VerifyError>, at_us: i64) -> Self {
        match outcome {
            Ok(r) => Verification {
                at_us,
                failed_at: None,
                entries: r.entries,
                checkpoints: r.checkpoints,
                epochs: r.epochs,
            },
            Err(e) => Verification {
                at_us,
                failed_at: Some(match e {
                    VerifyError::Entry { epoch, index, .. } => {
                        format!("epoch {epoch}, entry {index}")
                    }
                    VerifyError::Checkpoint { epoch, size, .. } => {
                        format!("epoch {epoch}, checkpoint of size {size}")
                    }
                    VerifyError::Epoch { epoch, .. } => format!("epoch {epoch}"),
                }),
                entries: 0,
                checkpoints: 0,
                epochs: 0,
            },
        }
    }

    /// One line: `v1 AT ENTRIES CHECKPOINTS EPOCHS ok` or `... failed LOCATION`.
    fn encode(&self) -> String {
        let status = match &self.failed_at {
            None => "ok".to_owned(),
            Some(at) => format!("failed {at}"),
        };
        format!(
            "v1 {} {} {} {} {status}",
            self.at_us, self.entries, self.checkpoints, self.epochs
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(7, ' ');
        if parts.next()? != "v1" {
            return None;
        }
        let at_us = parts.next()?.parse().ok()?;
        let entries = parts.next()?.parse().ok()?;
        let checkpoints = parts.next()?.parse().ok()?;
        let epochs = parts.next()?.parse().ok()?;
        let failed_at = match parts.next()? {
            "ok" => None,
            "failed" => Some(parts.next().unwrap_or("").to_owned()),
            _ => return None,
        };
        Some(Verification {
            at_us,
            failed_at,
            entries,
            checkpoints,
            epochs,
        })
    }
}

/// Directory kind of the verification records: keys [`LAST_VERIFICATION`] and
/// [`LAST_GOOD_VERIFICATION`].
const VERIFICATION_KIND: &str = "ledger-verification";
const LAST_VERIFICATION: &str = "last";
const LAST_GOOD_VERIFICATION: &str = "last-intact";

/// The audit ledger of one vault.
pub struct Ledger {
    vault: Arc<Vault>,
    signer: SignerKey,
    queue: Mutex<Queue>,
    /// Wakes the committer when leaves arrive.
    work: Condvar,
    /// This ledger, for the committer thread (which must not keep it alive).
    me: std::sync::Weak<Ledger>,
    /// Per epoch, per level (from [`CACHE_LEVEL`]), the hashes of nodes `0..len`.
    cache: RwLock<HashMap<u32, Vec<Vec<Hash>>>>,
    /// Per epoch, a size it is known to have reached.
    known_sizes: RwLock<HashMap<u32, u64>>,
}

/// What is told when an append is durable (or failed).
pub type Done = Box<dyn FnOnce(Result<Appended, LedgerError>) + Send>;

#[derive(Default)]
struct Queue {
    waiting: Vec<(Vec<LedgerLeaf>, Done)>,
    /// Whether the committer thread is running.
    committer: bool,
    /// Whether it is waiting for work (else it takes what is queued when its commit ends,
    /// and waking it would be a wasted system call per append).
    idle: bool,
}

impl Ledger {
    /// Opens the ledger of a vault, creating its signing key (named `origin`, the log's
    /// checkpoint origin) the first time.
    ///
    /// # Errors
    /// When the directory cannot be read or written, or the stored key is unusable.
    pub fn open(vault: Arc<Vault>, origin: &str) -> Result<Arc<Self>, LedgerError> {
        let signer = match vault.dir_get(KEY_KIND, KEY_NAME)? {
            Some(e) => parse_signer(&e.value)?,
            None => {
                let key =
                    SignerKey::generate(origin).map_err(|e| LedgerError::Key(e.to_string()))?;
                let text = key.to_key_string();
                match vault.dir_put(KEY_KIND, KEY_NAME, text.as_bytes(), None) {
                    Ok(_) => key,
                    // Another process made it first: use theirs.
                    Err(VaultError::Conflict { .. }) => match vault.dir_get(KEY_KIND, KEY_NAME)? {
                        Some(e) => parse_signer(&e.value)?,
                        None => return Err(LedgerError::Key("the key vanished".into())),
                    },
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(Arc::new_cyclic(|me| Self {
            vault,
            signer,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            me: me.clone(),
            cache: RwLock::new(HashMap::new()),
            known_sizes: RwLock::new(HashMap::new()),
        }))
    }

    /// The vault this ledger lives in.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The key checkpoints are verified with.
    pub fn verifier_key(&self) -> VerifierKey {
        self.signer.verifier_key()
    }

    /// The log's origin line (the signing key's name).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// Appends leaves durably, batched with concurrent callers' into one transaction;
    /// returns where they landed once they are committed.
    ///
    /// # Errors
    /// When the commit failed (the leaves are not in the log).
    pub fn append(&self, leaves: Vec<LedgerLeaf>) -> Result<Appended, LedgerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.append_then(
            leaves,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or_else(|_| {
            Err(LedgerError::Damaged(
                "the audit committer stopped before answering".into(),
            ))
        })
    }

    /// Queues leaves for the next group commit and calls `done` once they are durable
    /// (or the commit failed), from the committer thread. The caller does not block:
    /// an async server awaits `done` without holding a thread per request. `done` must
    /// be quick (it runs on the committer thread, between commits).
    pub fn append_then(&self, leaves: Vec<LedgerLeaf>, done: Done) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.waiting.push((leaves, done));
        if !q.committer {
            // The first append starts the committer thread; it lives as long as this
            // ledger has work (it exits when idle and is restarted on demand).
            q.committer = true;
            drop(q);
            let me = self.me.clone();
            let spawned = std::thread::Builder::new()
                .name("audit-committer".into())
                .spawn(move || {
                    if let Some(l) = me.upgrade() {
                        l.commit_loop();
                    }
                });
            if spawned.is_err() {
                // No thread: commit here, on the caller's.
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                q.committer = false;
                drop(q);
                self.commit_waiting();
            }
        } else if q.idle {
            drop(q);
            self.work.notify_one();
        }
    }

    /// The committer: commits whatever is waiting, in one transaction per round, until
    /// nothing has arrived for a while.
    fn commit_loop(&self) {
        loop {
            if !self.commit_waiting() {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                q.idle = true;
                let (mut q, timeout) = self
                    .work
                    .wait_timeout_while(q, std::time::Duration::from_secs(5), |q| {
                        q.waiting.is_empty()
                    })
                    .unwrap_or_else(|p| p.into_inner());
                q.idle = false;
                if timeout.timed_out() && q.waiting.is_empty() {
                    q.committer = false;
                    return;
                }
            }
        }
    }

    /// Commits everything waiting (up to MAX_BATCH leaves) in one transaction and tells
    /// each caller; whether there was anything.
    fn commit_waiting(&self) -> bool {
        let batch: Vec<(Vec<LedgerLeaf>, Done)> = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let mut taken = 0;
            let mut n = 0;
            for (l, _) in &q.waiting {
                if n > 0 && n + l.len() > MAX_BATCH {
                    break;
                }
                n += l.len();
                taken += 1;
            }
            q.waiting.drain(..taken).collect()
        };
        if batch.is_empty() {
            return false;
        }
        let mut all: Vec<LedgerLeaf> = Vec::with_capacity(batch.iter().map(|(l, _)| l.len()).sum());
        let mut waiting: Vec<(usize, Done)> = Vec::with_capacity(batch.len());
        for (l, done) in batch {
            waiting.push((l.len(), done));
            all.extend(l);
        }
        let result = self.vault.backend().write(&[], &all);
        let mut offset = 0u64;
        for (n, done) in waiting {
            let r = match &result {
                Ok(Some(a)) => Ok(Appended {
                    epoch: a.epoch,
                    first: a.first + offset,
                    size: a.size,
                }),
                Ok(None) => Ok(Appended {
                    epoch: 0,
                    first: 0,
                    size: 0,
                }),
                Err(e) => Err(LedgerError::Backend(BackendError::Db {
                    during: "appending to the audit ledger",
                    reason: e.to_string(),
                })),
            };
            offset += n as u64;
            done(r);
        }
        true
    }

    /// The current epoch and its size.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn head(&self) -> Result<EpochRow, LedgerError> {
        self.vault
            .backend()
            .ledger_epochs()?
            .pop()
            .ok_or_else(|| LedgerError::Damaged("the ledger has no epoch".into()))
    }

    /// Every epoch, oldest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn epochs(&self) -> Result<Vec<EpochRow>, LedgerError> {
        Ok(self.vault.backend().ledger_epochs()?)
    }

    fn epoch(&self, epoch: u32) -> Result<EpochRow, LedgerError> {
        self.epochs()?
            .into_iter()
            .find(|e| e.epoch == epoch)
            .ok_or(LedgerError::NoEpoch(epoch))
    }

    /// Signs and stores a checkpoint of the current epoch if it grew since the last one
    /// (an empty epoch gets one too, so a witness can start from it); returns the latest
    /// checkpoint (size and signed note), new or not.
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub fn publish(&self) -> Result<Option<(u64, String)>, LedgerError> {
        let head = self.head()?;
        let latest = self.vault.backend().ledger_latest_checkpoint(head.epoch)?;
        if latest.as_ref().is_some_and(|(s, _)| *s >= head.size) {
            return Ok(latest);
        }
        let note = self.sign(head.epoch, head.size)?;
        self.vault
            .backend()
            .ledger_put_checkpoint(head.epoch, head.size, &note)?;
        Ok(self.vault.backend().ledger_latest_checkpoint(head.epoch)?)
    }

    fn sign(&self, epoch: u32, size: u64) -> Result<String, LedgerError> {
        let root = self.root(epoch, size)?;
        let mut cp = Checkpoint::new(self.origin(), size, root)
            .map_err(|e| LedgerError::Key(e.to_string()))?;
        if epoch > 1 {
            cp = cp
                .with_extension(&format!("epoch {epoch}"))
                .map_err(|e| LedgerError::Key(e.to_string()))?;
        }
        cp.sign(&[&self.signer])
            .map_err(|e| LedgerError::Key(e.to_string()))
    }

    /// The latest checkpoint of the current epoch.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, LedgerError> {
        let head = self.head()?;
        Ok(self.vault.backend().ledger_latest_checkpoint(head.epoch)?)
    }

    /// Stored leaves `[start, end)` of an epoch.
    ///
    /// # Errors
    /// When the range is beyond the epoch or the database cannot be read.
    pub fn leaves(&self, epoch: u32, start: u64, end: u64) -> Result<Vec<StoredLeaf>, LedgerError> {
        if start > end {
            return Err(LedgerError::Range(format!(
                "entries [{start}, {end}) are not a range"
            )));
        }
        self.require_size(epoch, end)?;
        Ok(self.vault.backend().ledger_leaves(epoch, start, end)?)
    }

    /// The root of an epoch's log at `size`.
    ///
    /// # Errors
    /// When `size` is beyond the epoch or a node cannot be read.
    pub fn root(&self, epoch: u32, size: u64) -> Result<Hash, LedgerError> {
        let source = self.source(epoch, size)?;
        tree_root(&source, size).map_err(|e| LedgerError::Damaged(e.to_string()))
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    ///
    /// # Errors
    /// When the index or size is out of range or a node cannot be read.
    pub fn inclusion(&self, epoch: u32, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        if index >= size {
            return Err(LedgerError::Range(format!(
                "index {index} is not below size {size}"
            )));
        }
        let source = self.source(epoch, size)?;
        inclusion_proof(&source, index, size).map_err(|e| LedgerError::Damaged(e.to_string()))
    }

    /// The consistency proof between the trees of `from` and `to` leaves.
    ///
    /// # Errors
    /// When the sizes are out of range or a node cannot be read.
    pub fn consistency(&self, epoch: u32, from: u64, to: u64) -> Result<Vec<Hash>, LedgerError> {
        if from > to {
            return Err(LedgerError::Range(format!(
                "from {from} is larger than to {to}"
            )));
        }
        if from == 0 {
            return Err(LedgerError::Range(
                "from must be at least 1: every log extends the empty one, with no proof".into(),
            ));
        }
        let source = self.source(epoch, to)?;
        consistency_proof(&source, from, to).map_err(|e| LedgerError::Damaged(e.to_string()))
    }

    /// Fails unless `epoch` has at least `size` entries. An epoch only grows, so a size
    /// seen once stays valid: most calls (a proof, a leaf read) need no query.
    fn require_size(&self, epoch: u32, size: u64) -> Result<(), LedgerError> {
        let known = self
            .known_sizes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&epoch)
            .copied();
        if known.is_some_and(|k| size <= k) {
            return Ok(());
        }
        let e = self.epoch(epoch)?;
        self.known_sizes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(epoch, e.size);
        if size > e.size {
            return Err(LedgerError::Range(format!(
                "size {size} is beyond the log's {} entries",
                e.size
            )));
        }
        Ok(())
    }

    fn source(&self, epoch: u32, size: u64) -> Result<Stored<'_>, LedgerError> {
        self.require_size(epoch, size)?;
        Ok(Stored {
            ledger: self,
            epoch,
            size,
        })
    }

    /// Up to `limit` leaves indexed under `key`, newest first, before a position. Keys
    /// are stored as 64-bit hashes, so a leaf of another key may (very rarely) be among
    /// them: check the leaf.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn find(
        &self,
        key: &str,
        before: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<(u32, u64)>, LedgerError> {
        Ok(self.vault.backend().ledger_find(key, before, limit)?)
    }

    /// Seals the current epoch with a final signed checkpoint and opens the next; returns
    /// the new epoch's number and the final checkpoint. The new epoch starts empty: prefer
    /// [`Ledger::seal_with`], which puts the record of the seal first.
    ///
    /// # Errors
    /// When the epoch grew while sealing (try again) or the database fails.
    pub fn seal(&self) -> Result<(u32, String), LedgerError> {
        self.seal_inner(None::<fn(u32, u64, &Hash) -> LedgerLeaf>)
    }

    /// [`Ledger::seal`], with the new epoch's first leaf made by `record` from the sealed
    /// epoch's number, size and root, and appended in the transaction that seals: no other
    /// entry can come before it, so the link between the epochs can be checked (the
    /// remote verifier and witness require the first entry to record the seal).
    ///
    /// # Errors
    /// As [`Ledger::seal`].
    pub fn seal_with(
        &self,
        record: impl FnOnce(u32, u64, &Hash) -> LedgerLeaf,
    ) -> Result<(u32, String), LedgerError> {
        self.seal_inner(Some(record))
    }

    fn seal_inner(
        &self,
        record: Option<impl FnOnce(u32, u64, &Hash) -> LedgerLeaf>,
    ) -> Result<(u32, String), LedgerError> {
        let head = self.head()?;
        let note = self.sign(head.epoch, head.size)?;
        let first = match record {
            Some(make) => Some(make(
                head.epoch,
                head.size,
                &self.root(head.epoch, head.size)?,
            )),
            None => None,
        };
        let next =
            self.vault
                .backend()
                .ledger_seal(head.epoch, head.size, &note, first.as_ref())?;
        Ok((next, note))
    }

    /// Keeps the outcome of a verification: always as the last one, and as the last
    /// intact one when it was.
    ///
    /// # Errors
    /// [`LedgerError`] when the directory cannot be written.
    pub fn record_verification(&self, v: &Verification) -> Result<(), LedgerError> {
        let text = v.encode();
        let mut keys = vec![LAST_VERIFICATION];
        if v.failed_at.is_none() {
            keys.push(LAST_GOOD_VERIFICATION);
        }
        for key in keys {
            // Last writer wins: a lost race means someone else just recorded one.
            for _ in 0..4 {
                let current = self.vault.dir_get(VERIFICATION_KIND, key)?;
                match self.vault.dir_put(
                    VERIFICATION_KIND,
                    key,
                    text.as_bytes(),
                    current.map(|e| e.version),
                ) {
                    Ok(_) => break,
                    Err(VaultError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// The last verification recorded, and the last that found the ledger intact.
    ///
    /// # Errors
    /// [`LedgerError`] when the directory cannot be read.
    pub fn verifications(
        &self,
    ) -> Result<(Option<Verification>, Option<Verification>), LedgerError> {
        let read = |key: &str| -> Result<Option<Verification>, LedgerError> {
            Ok(self.vault.dir_get(VERIFICATION_KIND, key)?.and_then(|e| {
                std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(Verification::decode)
            }))
        };
        Ok((read(LAST_VERIFICATION)?, read(LAST_GOOD_VERIFICATION)?))
    }

    /// Recomputes every hash of every epoch from the leaves, compares them with the stored
    /// nodes, checks every checkpoint's signature and root, and reports the first problem.
    /// `check_leaf` is asked about every leaf's bytes (its format is the caller's);
    /// `progress` hears the number of entries verified so far.
    ///
    /// # Errors
    /// [`LedgerError`] when the database cannot be read; `Ok(Err(VerifyError))` when the
    /// log is not intact.
    pub fn verify(
        &self,
        check_leaf: &dyn Fn(&[u8]) -> Result<(), String>,
        progress: &dyn Fn(u64),
    ) -> Result<Result<VerifyReport, VerifyError>, LedgerError> {
        let key = self.verifier_key();
        let mut report = VerifyReport::default();
        let epochs = self.epochs()?;
        for (n, e) in epochs.iter().enumerate() {
            report.epochs += 1;
            match self.verify_epoch(
                e,
                n + 1 == epochs.len(),
                &key,
                check_leaf,
                progress,
                &mut report,
            )? {
                Ok(()) => {}
                Err(v) => return Ok(Err(v)),
            }
        }
        Ok(Ok(report))
    }

    fn verify_epoch(
        &self,
        e: &EpochRow,
        current: bool,
        key: &VerifierKey,
        check_leaf: &dyn Fn(&[u8]) -> Result<(), String>,
        progress: &dyn Fn(u64),
        report: &mut VerifyReport,
    ) -> Result<Result<(), VerifyError>, LedgerError> {
        const BATCH: u64 = 32_768;
        let b = self.vault.backend();
        let epoch = e.epoch;
        let entry = |index: u64, problem: String| VerifyError::Entry {
            epoch,
            index,
            problem,
        };
        let extra = b.ledger_leaves_beyond(epoch, e.size)?;
        if extra > 0 {
            return Ok(Err(entry(
                e.size,
                format!(
                    "{extra} entries stored beyond the log's recorded size of {}",
                    e.size
                ),
            )));
        }
        // Checkpoints: each must be signed by the ledger key for this origin and size.
        let mut checkpoints = Vec::new();
        for (size, note) in b.ledger_checkpoints(epoch, 0, u64::MAX)? {
            let bad = |problem: String| VerifyError::Checkpoint {
                epoch,
                size,
                problem,
            };
            let (cp, _) = match Checkpoint::open(note.as_bytes(), std::slice::from_ref(key)) {
                Ok(c) => c,
                Err(err) => return Ok(Err(bad(format!("not validly signed: {err}")))),
            };
            if cp.size() != size {
                return Ok(Err(bad(format!(
                    "the signed note is for size {}",
                    cp.size()
                ))));
            }
            if cp.origin() != self.origin() {
                return Ok(Err(bad("the signed note is for another log".into())));
            }
            if size > e.size {
                return Ok(Err(bad(format!(
                    "it covers entries the log does not have (the log has {})",
                    e.size
                ))));
            }
            checkpoints.push((size, *cp.root()));
        }
        if let Some(sealed) = &e.sealed_note {
            match Checkpoint::open(sealed.as_bytes(), std::slice::from_ref(key)) {
                Ok((cp, _)) if cp.size() == e.size => checkpoints.push((e.size, *cp.root())),
                Ok(_) => {
                    return Ok(Err(VerifyError::Epoch {
                        epoch,
                        problem: "the sealing checkpoint is not of the epoch's full size".into(),
                    }));
                }
                Err(err) => {
                    return Ok(Err(VerifyError::Epoch {
                        epoch,
                        problem: format!("the sealing checkpoint is not validly signed: {err}"),
                    }));
                }
            }
        } else if !current {
            return Ok(Err(VerifyError::Epoch {
                epoch,
                problem: "an earlier epoch is not sealed".into(),
            }));
        }
        checkpoints.sort_by_key(|c| c.0);
        let mut next_cp = 0;
        // An empty log's checkpoints.
        while next_cp < checkpoints.len() && checkpoints[next_cp].0 == 0 {
            if checkpoints[next_cp].1 != Frontier::new().root() {
                return Ok(Err(VerifyError::Checkpoint {
                    epoch,
                    size: 0,
                    problem: "its root is not the empty tree's".into(),
                }));
            }
            report.checkpoints += 1;
            next_cp += 1;
        }
        let mut frontier = Frontier::new();
        let mut start = 0u64;
        while start < e.size {
            let end = (start + BATCH).min(e.size);
            let leaves = b.ledger_leaves(epoch, start, end)?;
            let stored0: HashMap<u64, Vec<u8>> = b
                .ledger_node_range(epoch, 0, start, end)?
                .into_iter()
                .collect();
            let mut completed: Vec<(NodeId, Hash)> = Vec::with_capacity((end - start) as usize);
            let mut batch_hashes: Vec<Hash> = Vec::with_capacity((end - start) as usize);
            let mut expected = start;
            for leaf in &leaves {
                if leaf.idx != expected {
                    return Ok(Err(entry(expected, "missing".into())));
                }
                if let Err(why) = check_leaf(&leaf.data) {
                    return Ok(Err(entry(leaf.idx, why)));
                }
                let h = leaf_hash(&leaf.data);
                batch_hashes.push(h);
                match stored0.get(&leaf.idx) {
                    Some(s) if s.as_slice() == h.as_bytes() => {}
                    Some(_) => {
                        return Ok(Err(entry(
                            leaf.idx,
                            "its bytes do not hash to the stored leaf hash (changed or moved)"
                                .into(),
                        )));
                    }
                    None => {
                        return Ok(Err(entry(
                            leaf.idx,
                            "its stored leaf hash is missing".into(),
                        )));
                    }
                }
                frontier
                    .append_with(h, |id, hash| {
                        if id.level >= crate::backend::ledger::STORED_LEVEL {
                            completed.push((id, *hash));
                        }
                    })
                    .map_err(|err| LedgerError::Damaged(err.to_string()))?;
                expected += 1;
                while next_cp < checkpoints.len() && checkpoints[next_cp].0 == frontier.size() {
                    let (size, root) = checkpoints[next_cp];
                    if frontier.root() != root {
                        let from = if next_cp == 0 {
                            0
                        } else {
                            checkpoints[next_cp - 1].0
                        };
                        return Ok(Err(VerifyError::Checkpoint {
                            epoch,
                            size,
                            problem: format!(
                                "the entries do not hash to its signed root: an entry in [{from}, {size}) was rewritten"
                            ),
                        }));
                    }
                    report.checkpoints += 1;
                    next_cp += 1;
                }
            }
            if expected != end {
                return Ok(Err(entry(expected, "missing".into())));
            }
            // The tiles of complete blocks (batches start on a tile boundary) must hold the
            // leaf hashes: proofs are made from them.
            let tiles: Vec<u64> = (start / TILE_LEAVES..end / TILE_LEAVES).collect();
            for (t, stored) in tiles.iter().zip(b.ledger_tiles(epoch, &tiles)?) {
                let from = (t * TILE_LEAVES - start) as usize;
                let want: Vec<u8> = batch_hashes[from..from + TILE_LEAVES as usize]
                    .iter()
                    .flat_map(|h| h.as_bytes().to_vec())
                    .collect();
                if stored.as_deref() != Some(want.as_slice()) {
                    return Ok(Err(entry(
                        t * TILE_LEAVES,
                        "the stored tile of leaf hashes starting here is wrong or missing".into(),
                    )));
                }
            }
            // Interior nodes completed in this batch must match what proofs are made from:
            // the stored ones (the levels below are hashed from the tiles checked above).
            let mut by_level: std::collections::BTreeMap<u8, Vec<(u64, Hash)>> = Default::default();
            for (id, h) in completed {
                by_level.entry(id.level).or_default().push((id.index, h));
            }
            for (level, nodes) in by_level {
                let (lo, hi) = (nodes[0].0, nodes[nodes.len() - 1].0 + 1);
                let stored: HashMap<u64, Vec<u8>> = b
                    .ledger_node_range(epoch, level, lo, hi)?
                    .into_iter()
                    .collect();
                for (idx, h) in nodes {
                    if stored.get(&idx).map(Vec::as_slice) != Some(&h.as_bytes()[..]) {
                        let first = idx << level;
                        return Ok(Err(entry(
                            first,
                            format!(
                                "the stored hash of the subtree at level {level} starting here is wrong"
                            ),
                        )));
                    }
                }
            }
            report.entries += end - start;
            progress(report.entries);
            start = end;
        }
        if next_cp < checkpoints.len() {
            let (size, _) = checkpoints[next_cp];
            return Ok(Err(VerifyError::Checkpoint {
                epoch,
                size,
                problem: "it was never reached by the entries".into(),
            }));
        }
        Ok(Ok(()))
    }
}

fn parse_signer(value: &Zeroizing<Vec<u8>>) -> Result<SignerKey, LedgerError> {
    let text = std::str::from_utf8(value).map_err(|_| LedgerError::Key("not UTF-8".into()))?;
    SignerKey::parse(text).map_err(|e| LedgerError::Key(e.to_string()))
}

/// A stored epoch as a [`HashSource`] of `size` leaves.
struct Stored<'a> {
    ledger: &'a Ledger,
    epoch: u32,
    size: u64,
}

impl HashSource for Stored<'_> {
    type Error = LedgerError;

    fn leaf_count(&self) -> u64 {
        self.size
    }

    fn node_hash(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        Ok(self.node_hashes(&[NodeId::new(level, index)])?[0])
    }

    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LedgerError> {
        let mut out: Vec<Option<Hash>> = vec![None; ids.len()];
        // Levels below CACHE_LEVEL, and cached levels not yet read that far.
        let mut from_db = Vec::new();
        let mut refill: HashMap<u8, u64> = HashMap::new();
        {
            let cache = self.ledger.cache.read().unwrap_or_else(|p| p.into_inner());
            let levels = cache.get(&self.epoch);
            for (i, id) in ids.iter().enumerate() {
                if id.level < CACHE_LEVEL {
                    from_db.push(i);
                    continue;
                }
                let l = usize::from(id.level - CACHE_LEVEL);
                match levels
                    .and_then(|ls| ls.get(l))
                    .and_then(|v| usize::try_from(id.index).ok().and_then(|x| v.get(x)))
                {
                    Some(h) => out[i] = Some(*h),
                    None => {
                        let want = refill.entry(id.level).or_insert(0);
                        *want = (*want).max(id.index + 1);
                    }
                }
            }
        }
        for (level, want) in refill {
            self.refill(level, want)?;
        }
        {
            let cache = self.ledger.cache.read().unwrap_or_else(|p| p.into_inner());
            let levels = cache.get(&self.epoch);
            for (i, id) in ids.iter().enumerate() {
                if out[i].is_some() || id.level < CACHE_LEVEL {
                    continue;
                }
                let l = usize::from(id.level - CACHE_LEVEL);
                match levels
                    .and_then(|ls| ls.get(l))
                    .and_then(|v| usize::try_from(id.index).ok().and_then(|x| v.get(x)))
                {
                    Some(h) => out[i] = Some(*h),
                    None => from_db.push(i),
                }
            }
        }
        // Nodes below the cached levels lie within one aligned block of 2^CACHE_LEVEL
        // leaves (an inclusion proof's all lie in the same block): read the block's leaf
        // hashes in one range and hash the nodes up, rather than look each node up.
        let mut blocks: HashMap<u64, Vec<usize>> = HashMap::new();
        from_db.retain(|&i| {
            let id = ids[i];
            if id.level < CACHE_LEVEL {
                let first_leaf = id.index << id.level;
                blocks.entry(first_leaf >> CACHE_LEVEL).or_default().push(i);
                false
            } else {
                true
            }
        });
        for (block, wanted) in blocks {
            let lo = block << CACHE_LEVEL;
            let hi = (lo + TILE_LEAVES).min(self.size);
            let leaves = self.tile_or_leaves(block, lo, hi)?;
            for i in wanted {
                let id = ids[i];
                let start = usize::try_from((id.index << id.level) - lo).unwrap_or(usize::MAX);
                let end = start.saturating_add(1usize << id.level);
                let slice = leaves.get(start..end).ok_or_else(|| {
                    LedgerError::Damaged(format!(
                        "node (level {}, index {}) of epoch {} is missing leaves",
                        id.level, id.index, self.epoch
                    ))
                })?;
                out[i] = Some(caldicott_ledger::mth(slice));
            }
        }
        if !from_db.is_empty() {
            let ask: Vec<NodeId> = from_db.iter().map(|&i| ids[i]).collect();
            let got = self.ledger.vault.backend().ledger_nodes(self.epoch, &ask)?;
            for (&i, bytes) in from_db.iter().zip(got) {
                out[i] = Some(stored_hash(self.epoch, ids[i], bytes)?);
            }
        }
        Ok(out
            .into_iter()
            .map(|h| h.unwrap_or(Hash::new([0; 32])))
            .collect())
    }
}

impl Stored<'_> {
    /// The leaf hashes `[lo, hi)` of one block: its tile when the block is complete in the
    /// stored log (one small row), else the leaves' own rows.
    fn tile_or_leaves(&self, block: u64, lo: u64, hi: u64) -> Result<Vec<Hash>, LedgerError> {
        let b = self.ledger.vault.backend();
        if hi - lo == TILE_LEAVES
            && let Some(Some(tile)) = b.ledger_tiles(self.epoch, &[block])?.into_iter().next()
        {
            if tile.len() != 32 * TILE_LEAVES as usize {
                return Err(LedgerError::Damaged(format!(
                    "tile {block} of epoch {} has {} bytes",
                    self.epoch,
                    tile.len()
                )));
            }
            return tile
                .chunks(32)
                .map(|c| Hash::from_slice(c).map_err(|e| LedgerError::Damaged(e.to_string())))
                .collect();
        }
        let rows = b.ledger_node_range(self.epoch, 0, lo, hi)?;
        let mut leaves = Vec::with_capacity(rows.len());
        for (n, (idx, bytes)) in rows.into_iter().enumerate() {
            if idx != lo + n as u64 {
                return Err(LedgerError::Damaged(format!(
                    "leaf {} of epoch {} is missing",
                    lo + n as u64,
                    self.epoch
                )));
            }
            leaves.push(stored_hash(self.epoch, NodeId::new(0, idx), Some(bytes))?);
        }
        Ok(leaves)
    }

    /// Extends the cache of `level` to at least `want` nodes (more, up to the nodes
    /// complete in this tree, so that later proofs hit).
    fn refill(&self, level: u8, want: u64) -> Result<(), LedgerError> {
        let complete = self.size >> level;
        let have = {
            let cache = self.ledger.cache.read().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&self.epoch)
                .and_then(|ls| ls.get(usize::from(level - CACHE_LEVEL)))
                .map_or(0, |v| v.len() as u64)
        };
        if have >= want {
            return Ok(());
        }
        let end = complete.min(have + CACHE_REFILL).max(want.min(complete));
        let rows = self
            .ledger
            .vault
            .backend()
            .ledger_node_range(self.epoch, level, have, end)?;
        let mut hashes = Vec::with_capacity(rows.len());
        for (n, (idx, bytes)) in rows.into_iter().enumerate() {
            if idx != have + n as u64 {
                return Err(LedgerError::Damaged(format!(
                    "node (level {level}, index {}) of epoch {} is missing",
                    have + n as u64,
                    self.epoch
                )));
            }
            hashes.push(stored_hash(
                self.epoch,
                NodeId::new(level, idx),
                Some(bytes),
            )?);
        }
        let mut cache = self.ledger.cache.write().unwrap_or_else(|p| p.into_inner());
        let levels = cache.entry(self.epoch).or_default();
        let l = usize::from(level - CACHE_LEVEL);
        if levels.len() <= l {
            levels.resize(l + 1, Vec::new());
        }
        // Another thread may have extended it meanwhile: add only what follows on.
        let v = &mut levels[l];
        let skip = (v.len() as u64).saturating_sub(have) as usize;
        if v.len() as u64 >= have {
            v.extend(hashes.into_iter().skip(skip));
        }
        Ok(())
    }
}

fn stored_hash(epoch: u32, id: NodeId, bytes: Option<Vec<u8>>) -> Result<Hash, LedgerError> {
    let bytes = bytes.ok_or_else(|| {
        LedgerError::Damaged(format!(
            "node (level {}, index {}) of epoch {epoch} is missing",
            id.level, id.index
        ))
    })?;
    Hash::from_slice(&bytes).map_err(|e| LedgerError::Damaged(e.to_string()))
}
