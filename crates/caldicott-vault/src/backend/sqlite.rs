//! The embedded default: one SQLite database file in WAL mode with `synchronous=FULL`.
//!
//! Durability: with WAL and `synchronous=FULL`, a transaction is on stable storage when
//! `COMMIT` returns, so an acknowledged write survives power loss and `kill -9` (with
//! `NORMAL`, SQLite documents that a WAL commit "might roll back following a power loss").
//!
//! Concurrency: one writer connection behind a mutex (SQLite has a single writer anyway)
//! and a few read-only connections that read concurrently under WAL.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::*;

const READERS: usize = 4;

/// The index terms of a record's head are replaced whole, by the write path and by
/// re-encryption alike.
const DELETE_TERMS: &str = "DELETE FROM index_entries WHERE org = ?1 AND rtype = ?2 AND id = ?3";
const INSERT_TERM: &str = "INSERT INTO index_entries (org, rtype, term, id) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";

/// Schema migrations, applied in order; never edit one that has shipped.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE data_keys (
        org TEXT NOT NULL, version INTEGER NOT NULL, kek_id TEXT NOT NULL,
        wrapped BLOB NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL,
        PRIMARY KEY (org, version));
     CREATE TABLE records (
        org TEXT NOT NULL, rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        deleted INTEGER NOT NULL, dek_version INTEGER NOT NULL, ciphertext BLOB NOT NULL,
        written_at INTEGER NOT NULL,
        PRIMARY KEY (org, rtype, id, version));
     CREATE INDEX records_by_key ON records (org, dek_version);
     CREATE TABLE heads (
        org TEXT NOT NULL, rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        PRIMARY KEY (org, rtype, id)) WITHOUT ROWID;
     CREATE TABLE index_entries (
        org TEXT NOT NULL, rtype TEXT NOT NULL, term BLOB NOT NULL, id TEXT NOT NULL,
        PRIMARY KEY (org, rtype, term, id)) WITHOUT ROWID;
     CREATE INDEX index_entries_by_record ON index_entries (org, rtype, id);
     CREATE TABLE users (
        name TEXT PRIMARY KEY, org TEXT NOT NULL, role TEXT NOT NULL,
        password_phc TEXT NOT NULL, created_at INTEGER NOT NULL, disabled INTEGER NOT NULL);",
    ),
    (
        2,
        // A (type, id) names one record in the whole deployment (a FHIR server has one id
        // space), and history is listed by time.
        "CREATE UNIQUE INDEX heads_by_id ON heads (rtype, id);
         CREATE INDEX records_by_time ON records (written_at);",
    ),
    (
        3,
        // The sealed directory: users, organisations, tokens and other small records of
        // the deployment, each encrypted by the vault.
        "CREATE TABLE directory (
            kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
            dek_version INTEGER NOT NULL, value BLOB NOT NULL, updated_at INTEGER NOT NULL,
            PRIMARY KEY (kind, key));",
    ),
    (
        4,
        // Users live in the sealed directory now (`caldicott-access`).
        "DROP TABLE users;",
    ),
    (
        5,
        // The audit ledger (see `backend::ledger`).
        "CREATE TABLE ledger_epochs (
            epoch INTEGER PRIMARY KEY, size INTEGER NOT NULL, sealed_note TEXT);
         INSERT INTO ledger_epochs (epoch, size) VALUES (1, 0);
         CREATE TABLE ledger_leaves (
            epoch INTEGER NOT NULL, idx INTEGER NOT NULL, at_us INTEGER NOT NULL,
            hash BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (epoch, idx)) WITHOUT ROWID;
         CREATE TABLE ledger_nodes (
            epoch INTEGER NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL,
            hash BLOB NOT NULL, PRIMARY KEY (epoch, level, idx)) WITHOUT ROWID;
         CREATE TABLE ledger_tiles (
            epoch INTEGER NOT NULL, tile INTEGER NOT NULL, hashes BLOB NOT NULL,
            PRIMARY KEY (epoch, tile));
         CREATE TABLE ledger_checkpoints (
            epoch INTEGER NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL,
            published_at INTEGER NOT NULL, PRIMARY KEY (epoch, size));
         CREATE TABLE ledger_keys (
            key INTEGER NOT NULL, epoch INTEGER NOT NULL, idx INTEGER NOT NULL,
            PRIMARY KEY (key, epoch, idx)) WITHOUT ROWID;",
    ),
    (
        6,
        // Lookup keys written in log order (see `KEY_RUN_LEAVES`): the new leaves' keys go
        // to `ledger_key_log`, beside each other, and are sorted into a new run of
        // `ledger_key_index` once enough have gathered. The keys indexed so far become run 0.
        "CREATE TABLE ledger_key_log (
            epoch INTEGER NOT NULL, idx INTEGER NOT NULL, keys BLOB NOT NULL,
            PRIMARY KEY (epoch, idx)) WITHOUT ROWID;
         CREATE TABLE ledger_key_runs (
            run INTEGER PRIMARY KEY,
            first_epoch INTEGER NOT NULL, first_idx INTEGER NOT NULL,
            last_epoch INTEGER NOT NULL, last_idx INTEGER NOT NULL);
         CREATE TABLE ledger_key_index (
            run INTEGER NOT NULL, key INTEGER NOT NULL, epoch INTEGER NOT NULL,
            idx INTEGER NOT NULL, PRIMARY KEY (run, key, epoch, idx)) WITHOUT ROWID;
         INSERT INTO ledger_key_runs (run, first_epoch, first_idx, last_epoch, last_idx)
            SELECT 0, f.epoch, f.idx, l.epoch, l.idx
            FROM (SELECT epoch, idx FROM ledger_keys ORDER BY epoch, idx LIMIT 1) f,
                 (SELECT epoch, idx FROM ledger_keys ORDER BY epoch DESC, idx DESC LIMIT 1) l;
         INSERT INTO ledger_key_index (run, key, epoch, idx)
            SELECT 0, key, epoch, idx FROM ledger_keys ORDER BY key, epoch, idx;
         DROP TABLE ledger_keys;",
    ),
];

/// The SQLite backend.
pub struct SqliteBackend {
    path: PathBuf,
    // Field order matters: readers and the checkpointer close first, so the writer is the
    // last connection and checkpoints the WAL into the database file when it closes (a
    // read-only connection cannot).
    readers: Vec<Mutex<Connection>>,
    // Held for its Drop, which stops the thread (before the writer closes).
    _checkpointer: Option<Checkpointer>,
    writer: Mutex<Connection>,
    next_reader: AtomicUsize,
    /// The audit ledger's frontier as of the last append by this process, so an append
    /// need not read it back (checked against the stored size inside each transaction).
    frontier: Mutex<Option<(u32, ledger::Tail)>>,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// The writer checkpoints by itself past this many WAL pages (4 MiB of 4 KiB pages),
/// finishing what the background thread has mostly copied. That is what lets the WAL
/// start again from its beginning: SQLite restarts it only in a write transaction begun
/// when every frame is in the database file, which under a steady stream of audit commits
/// the background thread alone never achieves. Without it the WAL grew by ~40 MB/s under
/// audited reads (270 MB in 8 s) until the old 256 MiB safety net, and every commit wrote
/// fresh file pages (allocated and zeroed by the kernel) instead of overwriting cached
/// ones: the audit committer spent half its time in `pwrite`. Measured with this (the
/// WAL then stays at 4.4 MB): 15.8% more audited reads per second (docs/benchmarks.md).
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 1_024;
/// The writer's page cache in KiB (`PRAGMA cache_size = -N`); see `SqliteBackend::open`.
const WRITER_CACHE_KIB: u32 = 2048;
/// Writes of at least this many rows and leaves together run with [`BIG_WRITE_CACHE_KIB`].
const BIG_WRITE: usize = 1_000;
/// The page cache of a big write, in KiB.
const BIG_WRITE_CACHE_KIB: u32 = 65_536;

/// Copies the WAL into the database file in the background (`PRAGMA
/// wal_checkpoint(PASSIVE)`, which never blocks writers or readers), so that commits do
/// not pay for checkpoints: a write's cost is its own pages and one fsync.
struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, String> {
        let c = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| e.to_string())?;
        c.execute_batch("PRAGMA busy_timeout = 1000; PRAGMA wal_autocheckpoint = 0;")
            .map_err(|e| e.to_string())?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "background WAL checkpoint failed; the writer will checkpoint");
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn db_err(during: &'static str) -> impl Fn(rusqlite::Error) -> BackendError {
    move |e| BackendError::Db {
        during,
        reason: e.to_string(),
    }
}

impl SqliteBackend {
    /// Opens (or, with `create`, creates) the database file at `path`.
    pub fn open(path: &Path, create: bool) -> Result<Self, BackendError> {
        let location = path.display().to_string();
        if !create && !path.exists() {
            return Err(BackendError::Open {
                location,
                reason: "no such file (run `caldicott init` first)".into(),
            });
        }
        check_file_header(path)?;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let open_err = |e: rusqlite::Error| classify(&location, e);
        let writer = Connection::open_with_flags(path, flags).map_err(open_err)?;
        writer
            .execute_batch(
                "PRAGMA busy_timeout = 10000;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;",
            )
            .map_err(open_err)?;
        // A small page cache for the writer: SQLite walks the writer's whole page cache at
        // the end of every write transaction (`pcache1TruncateUnsafe`), so with 64 MiB of
        // cache each small commit cost ~2.5 times the CPU (measured: 500 µs against 190 µs
        // per 10-leaf ledger commit), and the audit committer's commits are what every
        // audited read waits for. Pages it does not keep are still in the OS's page cache.
        writer
            .execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))
            .map_err(open_err)?;
        writer
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"
            ))
            .map_err(open_err)?;
        // Touch the schema so a damaged file fails here, with a clear message.
        writer
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(open_err)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?;
            c.execute_batch(
                "PRAGMA busy_timeout = 10000; PRAGMA query_only = ON; PRAGMA cache_size = -16384;",
            )
            .map_err(open_err)?;
            // Proof queries differ by their number of nodes: room for all their shapes.
            c.set_prepared_statement_cache_capacity(128);
            readers.push(Mutex::new(c));
        }
        // Without the background checkpointer (it could not start) the writer still
        // checkpoints by itself, later.
        let checkpointer = Checkpointer::start(path)
            .map_err(|e| tracing::warn!(error = %e, "no background WAL checkpointer"))
            .ok();
        // Room for every statement the writer uses (records, directory, ledger).
        writer.set_prepared_statement_cache_capacity(256);
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers,
            _checkpointer: checkpointer,
            next_reader: AtomicUsize::new(0),
            frontier: Mutex::new(None),
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (rusqlite
        // rolls back on drop), so a poisoned lock is safe to reuse.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(g) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return g;
            }
        }
        self.readers[start % self.readers.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self, during: &'static str) -> impl Fn(rusqlite::Error) -> BackendError + '_ {
        move |e| match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                classify(&self.path.display().to_string(), e)
            }
            _ => db_err(during)(e),
        }
    }
}

/// Refuses a file that is not SQLite, or whose header promises more pages than the file holds.
fn check_file_header(path: &Path) -> Result<(), BackendError> {
    use std::io::Read;
    let corrupt = |reason: String| BackendError::Corrupt {
        location: path.display().to_string(),
        reason,
    };
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Ok(());
    }
    let mut h = [0u8; 100];
    if len < 100 || f.read_exact(&mut h).is_err() {
        return Err(corrupt(format!("the file is only {len} bytes long")));
    }
    if &h[..16] != b"SQLite format 3\0" {
        return Err(corrupt("the file is not a SQLite database".into()));
    }
    let page_size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536u64,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([h[28], h[29], h[30], h[31]]));
    // The in-header size is valid only when the change counter matches "version-valid-for".
    let header_size_valid = h[24..28] == h[92..96];
    // A crash during a WAL checkpoint can leave page 1 written before the file grew: the
    // WAL still holds every page, and SQLite replays it on open. Only a file without a
    // WAL to recover from is truly truncated.
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if header_size_valid && pages * page_size > len && wal_len == 0 {
        return Err(corrupt(format!(
            "the file is truncated: its header says {} bytes, the file has {len}",
            pages * page_size
        )));
    }
    Ok(())
}

fn classify(location: &str, e: rusqlite::Error) -> BackendError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => BackendError::Corrupt {
            location: location.to_owned(),
            reason: e.to_string(),
        },
        _ => BackendError::Open {
            location: location.to_owned(),
            reason: e.to_string(),
        },
    }
}

fn dir_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DirRow> {
    Ok(DirRow {
        kind: r.get(0)?,
        key: r.get(1)?,
        version: r.get::<_, i64>(2)? as u64,
        dek_version: r.get::<_, i64>(3)? as u32,
        value: match r.get_ref(4)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        },
        updated_at: r.get(5)?,
    })
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        org: r.get(0)?,
        rtype: r.get(1)?,
        id: r.get(2)?,
        version: r.get::<_, i64>(3)? as u64,
        deleted: r.get(4)?,
        dek_version: r.get::<_, i64>(5)? as u32,
        // Read as raw bytes whatever the stored type: a value rewritten as TEXT by
        // tampering must reach the integrity check, not fail as a type error.
        ciphertext: match r.get_ref(6)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        },
        written_at: r.get(7)?,
    })
}

const RECORD_COLUMNS: &str =
    "r.org, r.rtype, r.id, r.version, r.deleted, r.dek_version, r.ciphertext, r.written_at";

fn current_schema(c: &Connection) -> Result<i64, rusqlite::Error> {
    let exists: i64 = c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(0);
    }
    c.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
}

/// Replaces the index terms of one record head: deletes its old terms, inserts the new.
fn replace_head_terms(
    delete: &mut rusqlite::CachedStatement<'_>,
    insert: &mut rusqlite::CachedStatement<'_>,
    (org, rtype, id): (&str, &str, &str),
    terms: &[TermHash],
) -> rusqlite::Result<()> {
    delete.execute(params![org, rtype, id])?;
    for t in terms {
        insert.execute(params![org, rtype, &t[..], id])?;
    }
    Ok(())
}

impl SqliteBackend {
    /// [`Backend::write`]'s transaction, on the writer connection.
    fn write_in(
        &self,
        c: &mut Connection,
        rows: &[RowWrite<'_>],
        leaves: &[LedgerLeaf],
    ) -> Result<Option<Appended>, BackendError> {
        let m = self.map("writing records");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        {
            let mut ins_head = tx
                .prepare_cached(
                    "INSERT INTO heads (org, rtype, id, version, deleted) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .map_err(&m)?;
            let mut upd_head = tx
                .prepare_cached(
                    "UPDATE heads SET version = ?4, deleted = ?5 WHERE org = ?1 AND rtype = ?2 AND id = ?3 AND version = ?6",
                )
                .map_err(&m)?;
            let mut ins_rec = tx
                .prepare_cached(
                    "INSERT INTO records (org, rtype, id, version, deleted, dek_version, ciphertext, written_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(&m)?;
            let mut del_terms = tx.prepare_cached(DELETE_TERMS).map_err(&m)?;
            let mut ins_term = tx.prepare_cached(INSERT_TERM).map_err(&m)?;
            for w in rows {
                let r = &w.record;
                let changed = match w.expect {
                    RowExpect::Absent => ins_head
                        .execute(params![r.org, r.rtype, r.id, r.version as i64, r.deleted])
                        .map_err(&m)?,
                    RowExpect::Version(v) => upd_head
                        .execute(params![
                            r.org,
                            r.rtype,
                            r.id,
                            r.version as i64,
                            r.deleted,
                            v as i64
                        ])
                        .map_err(&m)?,
                };
                if changed != 1 {
                    // Dropping the transaction rolls everything back.
                    return Err(BackendError::Conflict {
                        rtype: r.rtype.to_owned(),
                        id: r.id.to_owned(),
                    });
                }
                ins_rec
                    .execute(params![
                        r.org,
                        r.rtype,
                        r.id,
                        r.version as i64,
                        r.deleted,
                        r.dek_version,
                        r.ciphertext,
                        r.written_at
                    ])
                    .map_err(&m)?;
                if matches!(w.expect, RowExpect::Version(_)) {
                    del_terms
                        .execute(params![r.org, r.rtype, r.id])
                        .map_err(&m)?;
                }
                for t in &w.terms {
                    ins_term
                        .execute(params![r.org, r.rtype, &t[..], r.id])
                        .map_err(&m)?;
                }
            }
        }
        if leaves.is_empty() {
            tx.commit().map_err(&m)?;
            return Ok(None);
        }
        let mut cache = self.frontier.lock().unwrap_or_else(|p| p.into_inner());
        let (appended, frontier) = append_leaves(&tx, cache.take(), leaves)?;
        tx.commit().map_err(&m)?;
        *cache = Some((appended.epoch, frontier));
        Ok(Some(appended))
    }
}

impl Backend for SqliteBackend {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn migrate(&self) -> Result<Vec<i64>, BackendError> {
        let mut c = self.writer();
        let m = self.map("migration");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .map_err(&m)?;
        let current = current_schema(&tx).map_err(&m)?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > latest {
            return Err(BackendError::SchemaVersion {
                found: current,
                expected: latest,
                hint: "the database was written by a newer caldicott; upgrade this one",
            });
        }
        let mut applied = Vec::new();
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.execute_batch(sql).map_err(&m)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![v, now_micros()],
            )
            .map_err(&m)?;
            applied.push(*v);
        }
        tx.commit().map_err(&m)?;
        Ok(applied)
    }

    fn check_schema(&self) -> Result<(), BackendError> {
        let c = self.writer();
        let current = current_schema(&c).map_err(self.map("schema check"))?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current != latest {
            return Err(BackendError::SchemaVersion {
                found: current,
                expected: latest,
                hint: if current < latest {
                    "run `caldicott db migrate`"
                } else {
                    "the database was written by a newer caldicott; upgrade this one"
                },
            });
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.reader()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.map("reading metadata"))
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        self.writer()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(self.map("writing metadata"))
    }

    fn data_keys(&self) -> Result<Vec<DataKeyRow>, BackendError> {
        let c = self.reader();
        let m = self.map("reading data keys");
        let mut st = c
            .prepare("SELECT org, version, kek_id, wrapped, state, created_at FROM data_keys ORDER BY org, version")
            .map_err(&m)?;
        let rows = st
            .query_map([], |r| {
                Ok(DataKeyRow {
                    org: r.get(0)?,
                    version: r.get::<_, i64>(1)? as u32,
                    kek_id: r.get(2)?,
                    wrapped: r.get(3)?,
                    state: r.get(4)?,
                    created_at: r.get(5)?,
                })
            })
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn add_data_key(&self, row: &DataKeyRow) -> Result<(), BackendError> {
        let mut c = self.writer();
        let m = self.map("adding a data key");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        tx.execute(
            "UPDATE data_keys SET state = 'retired' WHERE org = ?1 AND state = 'active'",
            [&row.org],
        )
        .map_err(&m)?;
        tx.execute(
            "INSERT INTO data_keys (org, version, kek_id, wrapped, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![row.org, row.version, row.kek_id, row.wrapped, row.state, row.created_at],
        )
        .map_err(&m)?;
        tx.commit().map_err(&m)
    }

    fn rewrap_data_keys(&self, rows: &[DataKeyRow]) -> Result<(), BackendError> {
        let mut c = self.writer();
        let m = self.map("rewrapping data keys");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        for r in rows {
            let n = tx
                .execute(
                    "UPDATE data_keys SET kek_id = ?3, wrapped = ?4 WHERE org = ?1 AND version = ?2",
                    params![r.org, r.version, r.kek_id, r.wrapped],
                )
                .map_err(&m)?;
            if n != 1 {
                return Err(BackendError::Db {
                    during: "rewrapping data keys",
                    reason: format!("data key {} v{} vanished during rotation", r.org, r.version),
                });
            }
        }
        tx.commit().map_err(&m)
    }

    fn drop_data_key(&self, org: &str, version: u32) -> Result<bool, BackendError> {
        let mut c = self.writer();
        let m = self.map("dropping a data key");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        let used: i64 = tx
            .query_row(
                "SELECT count(*) FROM records WHERE org = ?1 AND dek_version = ?2",
                params![org, version],
                |r| r.get(0),
            )
            .map_err(&m)?;
        if used > 0 {
            return Ok(false);
        }
        let n = tx
            .execute(
                "DELETE FROM data_keys WHERE org = ?1 AND version = ?2 AND state = 'retired'",
                params![org, version],
            )
            .map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(n == 1)
    }

    fn write(
        &self,
        rows: &[RowWrite<'_>],
        leaves: &[LedgerLeaf],
    ) -> Result<Option<Appended>, BackendError> {
        let mut c = self.writer();
        let m = self.map("writing records");
        // A big transaction (an import batch, a bulk append) dirties more pages than the
        // writer's small cache holds: it gets the large cache for its duration (measured:
        // 10,000-leaf appends 91,000/s with the small cache, 120,000/s with the large),
        // and the small one comes back for the commits that follow.
        let big = rows.len() + leaves.len() >= BIG_WRITE;
        if big {
            c.execute_batch(&format!("PRAGMA cache_size = -{BIG_WRITE_CACHE_KIB};"))
                .map_err(&m)?;
        }
        let result = self.write_in(&mut c, rows, leaves);
        // The write's outcome stands whatever happens here: an error after a commit must not
        // make a durable write look failed.
        if big && let Err(e) = c.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))
        {
            tracing::warn!(error = %e, "could not shrink the SQLite writer's page cache again");
        }
        result
    }

    fn heads(
        &self,
        org: &str,
        rtype: &str,
        ids: &[&str],
    ) -> Result<Vec<Option<RawRecord>>, BackendError> {
        let c = self.reader();
        let m = self.map("reading records");
        let mut st = c
            // A subquery, not a join: SQLite propagates the join's `h.org = ?1` into
            // `r.org`, which marks the statement as depending on its parameters' values, and
            // a cached statement so marked is re-prepared on every use (rusqlite clears its
            // bindings when it returns to the cache); that was 10–15% of a read's CPU.
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r
                 WHERE r.org = ?1 AND r.rtype = ?2 AND r.id = ?3
                   AND r.version = (SELECT h.version FROM heads h
                                    WHERE h.org = ?1 AND h.rtype = ?2 AND h.id = ?3)"
            ))
            .map_err(&m)?;
        ids.iter()
            .map(|id| {
                st.query_row(params![org, rtype, id], row_to_record)
                    .optional()
                    .map_err(&m)
            })
            .collect()
    }

    fn version(
        &self,
        org: &str,
        rtype: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<RawRecord>, BackendError> {
        let c = self.reader();
        let m = self.map("reading a record version");
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r WHERE r.org = ?1 AND r.rtype = ?2 AND r.id = ?3 AND r.version = ?4"
            ))
            .map_err(&m)?;
        st.query_row(params![org, rtype, id, version as i64], row_to_record)
            .optional()
            .map_err(&m)
    }

    fn history(&self, org: &str, rtype: &str, id: &str) -> Result<Vec<RawRecord>, BackendError> {
        let c = self.reader();
        let m = self.map("reading record history");
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r WHERE r.org = ?1 AND r.rtype = ?2 AND r.id = ?3 ORDER BY r.version DESC"
            ))
            .map_err(&m)?;
        let rows = st
            .query_map(params![org, rtype, id], row_to_record)
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn search(
        &self,
        org: &str,
        rtype: &str,
        terms: &[TermHash],
    ) -> Result<Vec<String>, BackendError> {
        let c = self.reader();
        let m = self.map("searching the index");
        let mut st = c
            .prepare_cached(
                "SELECT id FROM index_entries WHERE org = ?1 AND rtype = ?2 AND term = ?3",
            )
            .map_err(&m)?;
        let mut ids = Vec::new();
        for t in terms {
            let rows = st
                .query_map(params![org, rtype, &t[..]], |r| r.get::<_, String>(0))
                .map_err(&m)?;
            for id in rows {
                ids.push(id.map_err(&m)?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn count(&self, org: &str, rtype: &str) -> Result<u64, BackendError> {
        self.reader()
            .query_row(
                "SELECT count(*) FROM heads WHERE org = ?1 AND rtype = ?2 AND deleted = 0",
                params![org, rtype],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.map("counting records"))
    }

    fn locate(&self, rtype: &str, ids: &[&str]) -> Result<Vec<Option<String>>, BackendError> {
        let c = self.reader();
        let m = self.map("locating records");
        let mut st = c
            .prepare_cached("SELECT org FROM heads WHERE rtype = ?1 AND id = ?2")
            .map_err(&m)?;
        ids.iter()
            .map(|id| {
                st.query_row(params![rtype, id], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(&m)
            })
            .collect()
    }

    fn scan(
        &self,
        org: &str,
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError> {
        let c = self.reader();
        let m = self.map("scanning records");
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM heads h JOIN records r
                   ON r.org = h.org AND r.rtype = h.rtype AND r.id = h.id AND r.version = h.version
                 WHERE h.org = ?1 AND h.rtype = ?2 AND h.id > ?3 AND h.deleted = 0
                 ORDER BY h.id LIMIT ?4"
            ))
            .map_err(&m)?;
        let rows = st
            .query_map(
                params![org, rtype, after.unwrap_or(""), limit as i64],
                row_to_record,
            )
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn changes(
        &self,
        org: &str,
        rtype: Option<&str>,
        since: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError> {
        let c = self.reader();
        let m = self.map("listing changes");
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r
                 WHERE r.written_at >= ?1 AND r.written_at < ?2 AND r.org = ?3
                   AND (?4 IS NULL OR r.rtype = ?4)
                 ORDER BY r.written_at DESC, r.rtype DESC, r.id DESC, r.version DESC LIMIT ?5"
            ))
            .map_err(&m)?;
        let rows = st
            .query_map(
                params![since, before, org, rtype, limit as i64],
                row_to_record,
            )
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn stale_records(
        &self,
        org: &str,
        dek_version: u32,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError> {
        let c = self.reader();
        let m = self.map("finding records to re-encrypt");
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r WHERE r.org = ?1 AND r.dek_version < ?2 LIMIT ?3"
            ))
            .map_err(&m)?;
        let rows = st
            .query_map(params![org, dek_version, limit as i64], row_to_record)
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn records_per_key(&self) -> Result<Vec<(String, u32, u64)>, BackendError> {
        let c = self.reader();
        let m = self.map("counting records per key");
        let mut st = c
            .prepare("SELECT org, dek_version, count(*) FROM records GROUP BY org, dek_version ORDER BY org, dek_version")
            .map_err(&m)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u32,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn apply_reencrypted(&self, rows: &[Reencrypted]) -> Result<(), BackendError> {
        let mut c = self.writer();
        let m = self.map("re-encrypting records");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        {
            let mut upd = tx
                .prepare_cached(
                    "UPDATE records SET ciphertext = ?6, dek_version = ?5
                     WHERE org = ?1 AND rtype = ?2 AND id = ?3 AND version = ?4 AND dek_version = ?7",
                )
                .map_err(&m)?;
            let mut is_head = tx
                .prepare_cached("SELECT count(*) FROM heads WHERE org = ?1 AND rtype = ?2 AND id = ?3 AND version = ?4")
                .map_err(&m)?;
            let mut del_terms = tx.prepare_cached(DELETE_TERMS).map_err(&m)?;
            let mut ins_term = tx.prepare_cached(INSERT_TERM).map_err(&m)?;
            for r in rows {
                let n = upd
                    .execute(params![
                        r.org,
                        r.rtype,
                        r.id,
                        r.version as i64,
                        r.new_dek,
                        r.ciphertext,
                        r.old_dek
                    ])
                    .map_err(&m)?;
                if n == 0 {
                    continue;
                }
                let head: i64 = is_head
                    .query_row(params![r.org, r.rtype, r.id, r.version as i64], |x| {
                        x.get(0)
                    })
                    .map_err(&m)?;
                if head == 1 {
                    replace_head_terms(
                        &mut del_terms,
                        &mut ins_term,
                        (&r.org, &r.rtype, &r.id),
                        &r.terms,
                    )
                    .map_err(&m)?;
                }
            }
        }
        tx.commit().map_err(&m)
    }

    fn replace_terms(&self, rows: &[TermsOf]) -> Result<(), BackendError> {
        let mut c = self.writer();
        let m = self.map("re-indexing records");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        {
            let mut is_head = tx
                .prepare_cached("SELECT count(*) FROM heads WHERE org = ?1 AND rtype = ?2 AND id = ?3 AND version = ?4 AND deleted = 0")
                .map_err(&m)?;
            let mut del_terms = tx.prepare_cached(DELETE_TERMS).map_err(&m)?;
            let mut ins_term = tx.prepare_cached(INSERT_TERM).map_err(&m)?;
            for r in rows {
                let head: i64 = is_head
                    .query_row(params![r.org, r.rtype, r.id, r.version as i64], |x| {
                        x.get(0)
                    })
                    .map_err(&m)?;
                if head == 1 {
                    replace_head_terms(
                        &mut del_terms,
                        &mut ins_term,
                        (&r.org, &r.rtype, &r.id),
                        &r.terms,
                    )
                    .map_err(&m)?;
                }
            }
        }
        tx.commit().map_err(&m)
    }

    fn dir_get(&self, kind: &str, key: &str) -> Result<Option<DirRow>, BackendError> {
        let c = self.reader();
        let m = self.map("reading the directory");
        let mut st = c
            .prepare_cached("SELECT kind, key, version, dek_version, value, updated_at FROM directory WHERE kind = ?1 AND key = ?2")
            .map_err(&m)?;
        st.query_row(params![kind, key], dir_row)
            .optional()
            .map_err(&m)
    }

    fn dir_put(&self, row: &DirRow, expect: Option<u64>) -> Result<(), BackendError> {
        let c = self.writer();
        let m = self.map("writing the directory");
        let n = match expect {
            None => c
                .prepare_cached("INSERT INTO directory (kind, key, version, dek_version, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING")
                .map_err(&m)?
                .execute(params![row.kind, row.key, row.version as i64, row.dek_version, row.value, row.updated_at])
                .map_err(&m)?,
            Some(v) => c
                .prepare_cached("UPDATE directory SET version = ?3, dek_version = ?4, value = ?5, updated_at = ?6 WHERE kind = ?1 AND key = ?2 AND version = ?7")
                .map_err(&m)?
                .execute(params![row.kind, row.key, row.version as i64, row.dek_version, row.value, row.updated_at, v as i64])
                .map_err(&m)?,
        };
        if n != 1 {
            return Err(BackendError::Conflict {
                rtype: row.kind.clone(),
                id: row.key.clone(),
            });
        }
        Ok(())
    }

    fn dir_delete(&self, kind: &str, key: &str) -> Result<bool, BackendError> {
        self.writer()
            .execute(
                "DELETE FROM directory WHERE kind = ?1 AND key = ?2",
                params![kind, key],
            )
            .map(|n| n == 1)
            .map_err(self.map("deleting from the directory"))
    }

    fn dir_replace_kind(&self, kind: &str, rows: &[DirRow]) -> Result<(), BackendError> {
        let mut c = self.writer();
        let m = self.map("replacing directory entries");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        tx.execute("DELETE FROM directory WHERE kind = ?1", params![kind])
            .map_err(&m)?;
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO directory (kind, key, version, dek_version, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING")
                .map_err(&m)?;
            for r in rows {
                ins.execute(params![
                    kind,
                    r.key,
                    r.version as i64,
                    r.dek_version,
                    r.value,
                    r.updated_at
                ])
                .map_err(&m)?;
            }
        }
        tx.commit().map_err(&m)
    }

    fn dir_list(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DirRow>, BackendError> {
        let c = self.reader();
        let m = self.map("listing the directory");
        let mut st = c
            .prepare_cached("SELECT kind, key, version, dek_version, value, updated_at FROM directory WHERE kind = ?1 AND key > ?2 ORDER BY key LIMIT ?3")
            .map_err(&m)?;
        let rows = st
            .query_map(params![kind, after.unwrap_or(""), limit as i64], dir_row)
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    fn ledger_epochs(&self) -> Result<Vec<EpochRow>, BackendError> {
        let c = self.reader();
        let m = self.map("reading the audit ledger's epochs");
        let mut st = c
            .prepare_cached("SELECT epoch, size, sealed_note FROM ledger_epochs ORDER BY epoch")
            .map_err(&m)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
            })
            .map_err(&m)?;
        let mut out = Vec::new();
        for row in rows {
            let (epoch, size, sealed_note) = row.map_err(&m)?;
            out.push(EpochRow {
                epoch: u32::try_from(epoch)
                    .map_err(|_| ledger_damage("epoch number out of range"))?,
                size: ledger::unsigned(size, "reading the audit ledger's epochs")?,
                sealed_note,
            });
        }
        Ok(out)
    }

    fn ledger_leaves(
        &self,
        epoch: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredLeaf>, BackendError> {
        let c = self.reader();
        let m = self.map("reading audit ledger leaves");
        let mut st = c
            .prepare_cached(
                "SELECT idx, at_us, data FROM ledger_leaves WHERE epoch = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
            )
            .map_err(&m)?;
        let rows = st
            .query_map(params![epoch, clamp(start), clamp(end)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(&m)?;
        let mut out = Vec::new();
        for row in rows {
            let (idx, at_us, data) = row.map_err(&m)?;
            out.push(StoredLeaf {
                idx: ledger::unsigned(idx, "reading audit ledger leaves")?,
                at_us,
                data,
            });
        }
        Ok(out)
    }

    fn ledger_leaves_beyond(&self, epoch: u32, size: u64) -> Result<u64, BackendError> {
        let c = self.reader();
        let m = self.map("reading audit ledger leaves");
        let n: i64 = c
            .prepare_cached("SELECT count(*) FROM ledger_leaves WHERE epoch = ?1 AND idx >= ?2")
            .map_err(&m)?
            .query_row(params![epoch, clamp(size)], |r| r.get(0))
            .map_err(&m)?;
        ledger::unsigned(n, "counting audit ledger leaves")
    }

    fn ledger_nodes(
        &self,
        epoch: u32,
        ids: &[caldicott_ledger::NodeId],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let c = self.reader();
        read_nodes(&c, epoch, ids).map_err(self.map("reading audit ledger nodes"))
    }

    fn ledger_node_range(
        &self,
        epoch: u32,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError> {
        let c = self.reader();
        let m = self.map("reading audit ledger nodes");
        let mut st = c
            .prepare_cached(if level == 0 {
                "SELECT idx, hash FROM ledger_leaves WHERE epoch = ?1 AND ?2 = 0 AND idx >= ?3 AND idx < ?4 ORDER BY idx"
            } else {
                "SELECT idx, hash FROM ledger_nodes WHERE epoch = ?1 AND level = ?2 AND idx >= ?3 AND idx < ?4 ORDER BY idx"
            })
            .map_err(&m)?;
        let rows = st
            .query_map(params![epoch, level, clamp(start), clamp(end)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?))
            })
            .map_err(&m)?;
        let mut out = Vec::new();
        for row in rows {
            let (idx, hash) = row.map_err(&m)?;
            out.push((ledger::unsigned(idx, "reading audit ledger nodes")?, hash));
        }
        Ok(out)
    }

    fn ledger_tiles(
        &self,
        epoch: u32,
        tiles: &[u64],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let c = self.reader();
        let m = self.map("reading audit ledger tiles");
        let mut st = c
            .prepare_cached("SELECT hashes FROM ledger_tiles WHERE epoch = ?1 AND tile = ?2")
            .map_err(&m)?;
        tiles
            .iter()
            .map(|t| {
                st.query_row(params![epoch, clamp(*t)], |r| r.get(0))
                    .optional()
                    .map_err(&m)
            })
            .collect()
    }

    fn ledger_put_checkpoint(&self, epoch: u32, size: u64, note: &str) -> Result<(), BackendError> {
        let c = self.writer();
        c.prepare_cached(
            "INSERT INTO ledger_checkpoints (epoch, size, note, published_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut st| st.execute(params![epoch, clamp(size), note, now_micros()]))
        .map(|_| ())
        .map_err(self.map("storing an audit ledger checkpoint"))
    }

    fn ledger_checkpoints(
        &self,
        epoch: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String)>, BackendError> {
        let c = self.reader();
        let m = self.map("reading audit ledger checkpoints");
        let mut st = c
            .prepare_cached(
                "SELECT size, note FROM ledger_checkpoints WHERE epoch = ?1 AND size >= ?2 AND size <= ?3 ORDER BY size",
            )
            .map_err(&m)?;
        let rows = st
            .query_map(params![epoch, clamp(from), clamp(to)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?))
            })
            .map_err(&m)?;
        let mut out = Vec::new();
        for row in rows {
            let (size, note) = row.map_err(&m)?;
            out.push((
                ledger::unsigned(size, "reading audit ledger checkpoints")?,
                note,
            ));
        }
        Ok(out)
    }

    fn ledger_latest_checkpoint(&self, epoch: u32) -> Result<Option<(u64, String)>, BackendError> {
        let c = self.reader();
        let m = self.map("reading audit ledger checkpoints");
        let row: Option<(i64, String)> = c
            .prepare_cached(
                "SELECT size, note FROM ledger_checkpoints WHERE epoch = ?1 ORDER BY size DESC LIMIT 1",
            )
            .map_err(&m)?
            .query_row(params![epoch], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(&m)?;
        row.map(|(size, note)| {
            Ok((
                ledger::unsigned(size, "reading audit ledger checkpoints")?,
                note,
            ))
        })
        .transpose()
    }

    fn ledger_find(
        &self,
        key: &str,
        before: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<(u32, u64)>, BackendError> {
        let c = self.reader();
        let m = self.map("searching the audit ledger");
        let (be, bi) = before.map_or((i64::MAX, i64::MAX), |(e, i)| (i64::from(e), clamp(i)));
        let want = ledger::key_hash(key);
        // One snapshot for the log and the runs: a merge in between would move keys from
        // one to the other.
        let tx = c.unchecked_transaction().map_err(&m)?;
        let mut found: Vec<(i64, i64)> = Vec::new();
        // Newest first: the keys still waiting in the log come after every run's.
        {
            let mut st = tx
                .prepare_cached(
                    "SELECT epoch, idx, keys FROM ledger_key_log
                     WHERE epoch < ?1 OR (epoch = ?1 AND idx < ?2) ORDER BY epoch DESC, idx DESC",
                )
                .map_err(&m)?;
            let mut q = st.query(params![be, bi]).map_err(&m)?;
            while found.len() < limit {
                let Some(r) = q.next().map_err(&m)? else {
                    break;
                };
                let blob = r.get_ref(2).and_then(|v| Ok(v.as_blob()?)).map_err(&m)?;
                if key_hashes(blob)?.any(|k| k == want) {
                    found.push((r.get(0).map_err(&m)?, r.get(1).map_err(&m)?));
                }
            }
        }
        if found.len() < limit {
            let runs: Vec<i64> = tx
                .prepare_cached(
                    "SELECT run FROM ledger_key_runs
                     WHERE first_epoch < ?1 OR (first_epoch = ?1 AND first_idx < ?2) ORDER BY run DESC",
                )
                .and_then(|mut st| {
                    st.query_map(params![be, bi], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(&m)?;
            let mut st = tx
                .prepare_cached(
                    "SELECT epoch, idx FROM ledger_key_index
                     WHERE run = ?1 AND key = ?2 AND (epoch < ?3 OR (epoch = ?3 AND idx < ?4))
                     ORDER BY epoch DESC, idx DESC LIMIT ?5",
                )
                .map_err(&m)?;
            for run in runs {
                let left = (limit - found.len()) as i64;
                let rows = st
                    .query_map(params![run, want, be, bi, left], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })
                    .map_err(&m)?;
                for row in rows {
                    found.push(row.map_err(&m)?);
                }
                if found.len() >= limit {
                    break;
                }
            }
        }
        drop(tx);
        found
            .into_iter()
            .map(|(e, i)| {
                Ok((
                    u32::try_from(e).map_err(|_| ledger_damage("epoch number out of range"))?,
                    ledger::unsigned(i, "searching the audit ledger")?,
                ))
            })
            .collect()
    }

    fn ledger_seal(
        &self,
        epoch: u32,
        size: u64,
        final_note: &str,
        first: Option<&LedgerLeaf>,
    ) -> Result<u32, BackendError> {
        let mut c = self.writer();
        let m = self.map("sealing an audit ledger epoch");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&m)?;
        let (current, stored): (i64, i64) = tx
            .query_row(
                "SELECT epoch, size FROM ledger_epochs ORDER BY epoch DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&m)?;
        if current != i64::from(epoch) || stored != clamp(size) {
            return Err(BackendError::Conflict {
                rtype: "ledger".into(),
                id: format!("epoch {epoch}"),
            });
        }
        tx.execute(
            "UPDATE ledger_epochs SET sealed_note = ?2 WHERE epoch = ?1",
            params![epoch, final_note],
        )
        .map_err(&m)?;
        tx.execute(
            "INSERT INTO ledger_checkpoints (epoch, size, note, published_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![epoch, clamp(size), final_note, now_micros()],
        )
        .map_err(&m)?;
        let next = epoch + 1;
        tx.execute(
            "INSERT INTO ledger_epochs (epoch, size) VALUES (?1, 0)",
            params![next],
        )
        .map_err(&m)?;
        if let Some(first) = first {
            append_leaves(&tx, None, std::slice::from_ref(first))?;
        }
        tx.commit().map_err(&m)?;
        *self.frontier.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(next)
    }
}

/// A `u64` size or index as the signed column it is stored in (sizes never reach 2^63).
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn ledger_damage(reason: &str) -> BackendError {
    BackendError::Db {
        during: "reading the audit ledger",
        reason: reason.to_owned(),
    }
}

fn read_nodes(
    c: &Connection,
    epoch: u32,
    ids: &[caldicott_ledger::NodeId],
) -> Result<Vec<Option<Vec<u8>>>, rusqlite::Error> {
    // One query for all the nodes of a proof (a point lookup each costs more in statement
    // overhead than in reading). Leaf hashes (level 0) live with the leaves; interior
    // nodes in their own table.
    let leaves: Vec<i64> = ids
        .iter()
        .filter(|id| id.level == 0)
        .map(|id| clamp(id.index))
        .collect();
    let interior: Vec<(i64, i64)> = ids
        .iter()
        .filter(|id| id.level > 0)
        .map(|id| (i64::from(id.level), clamp(id.index)))
        .collect();
    let mut parts = Vec::new();
    if !leaves.is_empty() {
        parts.push(format!(
            "SELECT 0, idx, hash FROM ledger_leaves WHERE epoch = ?1 AND idx IN ({})",
            vec!["?"; leaves.len()].join(", ")
        ));
    }
    // One branch per node, each a primary-key lookup (SQLite plans an OR of them, or a
    // row-value IN list, as a scan of the epoch).
    for _ in &interior {
        parts.push(
            "SELECT level, idx, hash FROM ledger_nodes WHERE epoch = ?1 AND level = ? AND idx = ?"
                .to_owned(),
        );
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let mut st = c.prepare_cached(&parts.join(" UNION ALL "))?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&epoch];
    for i in &leaves {
        values.push(i);
    }
    for (l, i) in &interior {
        values.push(l);
        values.push(i);
    }
    let mut found: std::collections::HashMap<(i64, i64), Vec<u8>> = st
        .query_map(rusqlite::params_from_iter(values), |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(ids
        .iter()
        .map(|id| found.remove(&(i64::from(id.level), clamp(id.index))))
        .collect())
}

/// Rows per multi-row `INSERT` of the ledger: one statement per 50 rows costs far less
/// than one per row.
const MULTI_ROWS: usize = 50;

/// Slices of exactly [`MULTI_ROWS`] rows, then single rows: two statement shapes per
/// table, so the prepared-statement cache always hits (a statement per batch size would
/// be parsed again on almost every commit).
fn fixed_chunks<T>(v: &[T]) -> impl Iterator<Item = &[T]> {
    let full = v.len() / MULTI_ROWS * MULTI_ROWS;
    v[..full].chunks(MULTI_ROWS).chain(v[full..].chunks(1))
}

/// `INSERT … VALUES (?, …), (?, …), …` for `rows` rows of `columns` parameters.
fn multi_insert(head: &str, columns: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(", "));
    format!("{head} VALUES {}", vec![one; rows].join(", "))
}

/// The end of epoch `epoch` of `size` leaves, read back: its stored frontier nodes and the
/// leaf hashes of its last, partial tile.
fn read_tail(
    tx: &rusqlite::Transaction<'_>,
    epoch: u32,
    size: u64,
) -> Result<ledger::Tail, BackendError> {
    let m = db_err("reading the end of the audit ledger");
    let stored = read_nodes(tx, epoch, &ledger::Tail::stored_ids(size)).map_err(&m)?;
    let partial = size % ledger::TILE;
    let mut hashes = Vec::new();
    if partial > 0 {
        let mut st = tx
            .prepare_cached(
                "SELECT hash FROM ledger_leaves WHERE epoch = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
            )
            .map_err(&m)?;
        let rows = st
            .query_map(params![epoch, clamp(size - partial), clamp(size)], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(&m)?;
        for r in rows {
            let b = r.map_err(&m)?;
            hashes.push(
                caldicott_ledger::Hash::from_slice(&b)
                    .map_err(|e| ledger_damage(&e.to_string()))?,
            );
        }
    }
    ledger::Tail::from_parts(size, stored, hashes)
}

/// Appends leaves to the current epoch inside the caller's transaction (which holds
/// SQLite's write lock, so appends are sequenced).
fn append_leaves(
    tx: &rusqlite::Transaction<'_>,
    cached: Option<(u32, ledger::Tail)>,
    leaves: &[LedgerLeaf],
) -> Result<(Appended, ledger::Tail), BackendError> {
    let m = db_err("appending to the audit ledger");
    let (epoch, size): (i64, i64) = tx
        .prepare_cached("SELECT epoch, size FROM ledger_epochs ORDER BY epoch DESC LIMIT 1")
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(&m)?;
    let epoch = u32::try_from(epoch).map_err(|_| ledger_damage("epoch number out of range"))?;
    let size = ledger::unsigned(size, "appending to the audit ledger")?;
    let tail = match cached {
        Some((e, t)) if e == epoch && t.frontier.size() == size => t,
        _ => read_tail(tx, epoch, size)?,
    };
    let plan = ledger::plan_append(tail, leaves)?;
    let leaf_rows: Vec<(i64, &LedgerLeaf, &[u8])> = leaves
        .iter()
        .zip(&plan.leaf_hashes)
        .enumerate()
        .map(|(i, (l, h))| (clamp(size + i as u64), l, &h.as_bytes()[..]))
        .collect();
    for chunk in fixed_chunks(&leaf_rows) {
        let sql = multi_insert(
            "INSERT INTO ledger_leaves (epoch, idx, at_us, hash, data)",
            5,
            chunk.len(),
        );
        let mut st = tx.prepare_cached(&sql).map_err(&m)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 5);
        for (idx, l, h) in chunk {
            values.extend([&epoch as &dyn rusqlite::ToSql, idx, &l.at_us, h, &l.data]);
        }
        st.execute(rusqlite::params_from_iter(values)).map_err(&m)?;
    }
    let nodes: Vec<(i64, i64, &[u8])> = plan
        .nodes
        .iter()
        .map(|(id, h)| (i64::from(id.level), clamp(id.index), &h.as_bytes()[..]))
        .collect();
    for chunk in fixed_chunks(&nodes) {
        let sql = multi_insert(
            "INSERT INTO ledger_nodes (epoch, level, idx, hash)",
            4,
            chunk.len(),
        );
        let mut st = tx.prepare_cached(&sql).map_err(&m)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 4);
        for (level, idx, h) in chunk {
            values.extend([&epoch as &dyn rusqlite::ToSql, level, idx, h]);
        }
        st.execute(rusqlite::params_from_iter(values)).map_err(&m)?;
    }
    let mut ins_tile = tx
        .prepare_cached("INSERT INTO ledger_tiles (epoch, tile, hashes) VALUES (?1, ?2, ?3)")
        .map_err(&m)?;
    for (tile, hashes) in &plan.tiles {
        ins_tile
            .execute(params![epoch, clamp(*tile), hashes])
            .map_err(&m)?;
    }
    // Each leaf's lookup keys, as one row beside the leaf's: appended in log order, so a
    // commit writes them to the last page or two of `ledger_key_log` (one row per key in
    // an index keyed by key would dirty a random page per patient per commit).
    let key_rows: Vec<(i64, Vec<u8>)> = leaf_rows
        .iter()
        .filter(|(_, l, _)| !l.keys.is_empty())
        .map(|(idx, l, _)| (*idx, key_blob(&l.keys)))
        .collect();
    for chunk in fixed_chunks(&key_rows) {
        let sql = multi_insert(
            "INSERT INTO ledger_key_log (epoch, idx, keys)",
            3,
            chunk.len(),
        );
        let mut st = tx.prepare_cached(&sql).map_err(&m)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 3);
        for (idx, keys) in chunk {
            values.extend([&epoch as &dyn rusqlite::ToSql, idx, keys]);
        }
        st.execute(rusqlite::params_from_iter(values)).map_err(&m)?;
    }
    merge_key_log_if_due(tx, epoch, size + leaves.len() as u64)?;
    let new_size = plan.tail.frontier.size();
    tx.prepare_cached("UPDATE ledger_epochs SET size = ?2 WHERE epoch = ?1")
        .and_then(|mut st| st.execute(params![epoch, clamp(new_size)]))
        .map_err(&m)?;
    Ok((
        Appended {
            epoch,
            first: size,
            size: new_size,
        },
        plan.tail,
    ))
}

/// Leaves whose lookup keys wait in `ledger_key_log` before they are sorted into a run of
/// `ledger_key_index`. A run is written in key order after every earlier run (the run
/// number leads the primary key), so merging appends pages instead of touching one random
/// page per key; a lookup reads the log (at most this many rows) and seeks once per run.
/// Measured (`examples/commit_cost`-style, 8-leaf commits): a quarter of each small
/// commit's CPU was the random key pages.
const KEY_RUN_LEAVES: u64 = 16_384;

/// A leaf's lookup keys as stored in `ledger_key_log`: their 8-byte hashes, big-endian,
/// sorted, each once.
fn key_blob(keys: &[String]) -> Vec<u8> {
    let mut hashes: Vec<i64> = keys.iter().map(|k| ledger::key_hash(k)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// The key hashes of a `ledger_key_log` row.
fn key_hashes(blob: &[u8]) -> Result<impl Iterator<Item = i64> + '_, BackendError> {
    if !blob.len().is_multiple_of(8) {
        return Err(ledger_damage(
            "a lookup-key row of the audit ledger is malformed",
        ));
    }
    Ok(blob.chunks_exact(8).map(|c| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        i64::from_be_bytes(b)
    }))
}

/// Sorts the waiting keys into a new run when [`KEY_RUN_LEAVES`] leaves have gathered (or
/// the oldest waiting belong to an earlier epoch), inside the appending transaction.
fn merge_key_log_if_due(
    tx: &rusqlite::Transaction<'_>,
    epoch: u32,
    size: u64,
) -> Result<(), BackendError> {
    let oldest: Option<(i64, i64)> = tx
        .prepare_cached("SELECT epoch, idx FROM ledger_key_log ORDER BY epoch, idx LIMIT 1")
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(db_err("merging the audit ledger's lookup keys"))?;
    let due = match oldest {
        None => false,
        Some((e, i)) => {
            e != i64::from(epoch) || size.saturating_sub(i.max(0) as u64) >= KEY_RUN_LEAVES
        }
    };
    if due { merge_key_log(tx) } else { Ok(()) }
}

/// Moves every key waiting in `ledger_key_log` into a new run of `ledger_key_index`.
fn merge_key_log(tx: &rusqlite::Transaction<'_>) -> Result<(), BackendError> {
    let m = db_err("merging the audit ledger's lookup keys");
    let mut logged: Vec<(i64, i64, Vec<u8>)> = Vec::new();
    {
        let mut st = tx
            .prepare_cached("SELECT epoch, idx, keys FROM ledger_key_log ORDER BY epoch, idx")
            .map_err(&m)?;
        let mut q = st.query([]).map_err(&m)?;
        while let Some(r) = q.next().map_err(&m)? {
            logged.push((
                r.get(0).map_err(&m)?,
                r.get(1).map_err(&m)?,
                r.get(2).map_err(&m)?,
            ));
        }
    }
    let (Some(&(e0, i0, _)), Some(&(e1, i1, _))) = (logged.first(), logged.last()) else {
        return Ok(());
    };
    let (first, last) = ((e0, i0), (e1, i1));
    let mut rows: Vec<(i64, i64, i64)> = Vec::new();
    for (e, i, blob) in &logged {
        rows.extend(key_hashes(blob)?.map(|k| (k, *e, *i)));
    }
    merge_key_rows(tx, rows, first, last).map_err(&m)
}

/// Writes one run of `ledger_key_index` from the logged keys, records it and empties the log.
fn merge_key_rows(
    tx: &rusqlite::Transaction<'_>,
    mut rows: Vec<(i64, i64, i64)>,
    first: (i64, i64),
    last: (i64, i64),
) -> rusqlite::Result<()> {
    rows.sort_unstable();
    rows.dedup();
    let run: i64 = tx.query_row(
        "SELECT coalesce(max(run), -1) + 1 FROM ledger_key_runs",
        [],
        |r| r.get(0),
    )?;
    for chunk in fixed_chunks(&rows) {
        let sql = multi_insert(
            "INSERT INTO ledger_key_index (run, key, epoch, idx)",
            4,
            chunk.len(),
        );
        let mut st = tx.prepare_cached(&sql)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 4);
        for (k, e, i) in chunk {
            values.extend([&run as &dyn rusqlite::ToSql, k, e, i]);
        }
        st.execute(rusqlite::params_from_iter(values))?;
    }
    tx.execute(
        "INSERT INTO ledger_key_runs (run, first_epoch, first_idx, last_epoch, last_idx)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run, first.0, first.1, last.0, last.1],
    )?;
    tx.execute("DELETE FROM ledger_key_log", [])?;
    Ok(())
}
