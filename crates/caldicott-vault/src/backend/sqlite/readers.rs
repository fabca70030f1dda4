//! The SQLite backend's read-only connections, and the read snapshots they keep open across
//! the audit ledger's commits.
//!
//! Why: SQLite drops a connection's whole page cache when it begins a read transaction
//! and finds that any other connection has committed since its last one. With auditing on,
//! the ledger's committer commits about once per handful of reads, so nearly every
//! statement on a reader began with an empty cache and read its B-tree pages again
//! (`pread` and `getPageNormal` were 14% of the server's CPU under audited reads by id,
//! against 0.06% with auditing off). Those commits add ledger rows only: nothing a read of
//! records, metadata or the directory can see.
//!
//! So a reader may keep one read transaction (a *snapshot*) open across statements and
//! requests, as long as:
//! - no transaction other than the ledger's appends and checkpoints has committed in this
//!   process since it began ([`FileState::writes`], bumped after every such commit, before the
//!   write is acknowledged): a read that starts after a write was acknowledged always sees
//!   it;
//! - it is younger than [`MAX_AGE`]: other processes on the same file (the CLI's
//!   administration commands) are seen within that time;
//! - the WAL is not waiting to restart ([`FileState::draining`], set by the writer's WAL
//!   hook): SQLite copies WAL frames into the database file only up to the oldest reader's
//!   snapshot, and starts the WAL again from its beginning only when no reader uses it.
//!   While draining, readers end their snapshots and read statement by statement, as
//!   SQLite does by default.
//!
//! The write count and the draining flag belong to the database file, not to one backend:
//! every backend this process opens on the same file shares them (the server's and the
//! mail gateway's, say), so within a process a read always sees an acknowledged write.
//!
//! Reads of the audit ledger itself never use a snapshot: they must see the latest commit
//! ([`Readers::fresh`]). What this is not: a cache of rows. Every read still runs its SQL;
//! only SQLite's own page cache survives.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How long a reader's snapshot may serve reads. It bounds how stale a read can be with
/// respect to writes by another process, and how long a reader can hold back the WAL.
pub(super) const MAX_AGE: Duration = Duration::from_millis(20);

/// One read-only connection and the snapshot it holds open, if any.
pub(super) struct Reader {
    conn: Connection,
    snapshot: Option<Snapshot>,
}

/// An open read transaction: when it began, and [`FileState::writes`] read just before.
#[derive(Clone, Copy)]
struct Snapshot {
    since: Instant,
    writes: u64,
}

/// What every backend of this process on one database file shares.
#[derive(Default)]
pub(super) struct FileState {
    /// Commits by this process that a records, metadata or directory read could see: every
    /// writer transaction except the audit ledger's appends and checkpoints.
    writes: AtomicU64,
    /// Set while the WAL is past the writer's checkpoint threshold (see the writer's WAL
    /// hook in `SqliteBackend::open`).
    draining: AtomicBool,
}

impl FileState {
    /// The state of the database file at `path`, shared with every other backend of this
    /// process on the same file (found by its canonical path).
    pub(super) fn of(path: &Path) -> Arc<FileState> {
        static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<FileState>>>> = OnceLock::new();
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut files = FILES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(state) = files.get(&key).and_then(Weak::upgrade) {
            return state;
        }
        files.retain(|_, state| state.strong_count() > 0);
        let state = Arc::new(FileState::default());
        files.insert(key, Arc::downgrade(&state));
        state
    }

    /// Whether the WAL is waiting for readers to let it restart.
    pub(super) fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Release);
    }
}

/// The pool of read-only connections.
pub(super) struct Readers {
    slots: Vec<Mutex<Reader>>,
    next: AtomicUsize,
    file: Arc<FileState>,
}

/// A reader connection, locked for one backend call.
pub(super) struct ReaderGuard<'a> {
    slot: MutexGuard<'a, Reader>,
    readers: &'a Readers,
}

impl Deref for ReaderGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.slot.conn
    }
}

impl Drop for ReaderGuard<'_> {
    /// Ends the snapshot now if it may not serve the next read, so that an idle reader
    /// does not hold back the WAL's checkpoints.
    fn drop(&mut self) {
        if let Some(s) = self.slot.snapshot
            && !self.readers.may_keep(s, Instant::now())
        {
            end_snapshot(&mut self.slot);
        }
    }
}

impl Readers {
    pub(super) fn new(conns: Vec<Connection>, file: Arc<FileState>) -> Self {
        Readers {
            slots: conns
                .into_iter()
                .map(|conn| {
                    Mutex::new(Reader {
                        conn,
                        snapshot: None,
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            file,
        }
    }

    /// Records that a transaction which reads may see has committed (or may have). Called
    /// after the commit, before the write is acknowledged.
    pub(super) fn wrote(&self) {
        self.file.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// A reader whose statements run inside a snapshot: for records, metadata and the
    /// directory, which only non-ledger commits change.
    pub(super) fn snapshot(&self) -> rusqlite::Result<ReaderGuard<'_>> {
        let mut guard = self.lock();
        // Read before the snapshot begins, so that the snapshot is at least this new.
        let writes = self.file.writes.load(Ordering::Acquire);
        let now = Instant::now();
        if let Some(s) = guard.slot.snapshot
            && !self.may_keep(s, now)
        {
            end_snapshot(&mut guard.slot);
        }
        if guard.slot.snapshot.is_none() && !self.file.draining.load(Ordering::Acquire) {
            // Deferred: SQLite takes the snapshot at the first statement that reads.
            guard.slot.conn.execute_batch("BEGIN")?;
            guard.slot.snapshot = Some(Snapshot { since: now, writes });
        }
        Ok(guard)
    }

    /// A reader outside any snapshot, whose every statement sees the latest commit: for
    /// the audit ledger, and for calls that open a transaction of their own.
    pub(super) fn fresh(&self) -> ReaderGuard<'_> {
        let mut guard = self.lock();
        end_snapshot(&mut guard.slot);
        guard
    }

    /// Ends every snapshot that may not serve another read, on readers nobody is using.
    /// Called by the background checkpointer so that readers left idle do not hold the WAL.
    pub(super) fn sweep(&self) {
        let now = Instant::now();
        for slot in &self.slots {
            if let Ok(mut reader) = slot.try_lock()
                && let Some(s) = reader.snapshot
                && !self.may_keep(s, now)
            {
                end_snapshot(&mut reader);
            }
        }
    }

    fn may_keep(&self, s: Snapshot, now: Instant) -> bool {
        s.writes == self.file.writes.load(Ordering::Acquire)
            && now.saturating_duration_since(s.since) < MAX_AGE
            && !self.file.draining.load(Ordering::Acquire)
    }

    /// The first reader free from a rotating start, or a wait on the start's.
    fn lock(&self) -> ReaderGuard<'_> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = (0..n)
            .find_map(|i| self.slots[(start + i) % n].try_lock().ok())
            // A panic while holding a reader cannot leave a write half-done (readers are
            // read-only), so a poisoned lock is safe to reuse.
            .unwrap_or_else(|| {
                self.slots[start % n]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            });
        let mut guard = ReaderGuard {
            slot,
            readers: self,
        };
        // A failed statement can end SQLite's transaction under us (it rolls back on
        // some errors): the snapshot is then gone whatever we recorded.
        if guard.slot.snapshot.is_some() && guard.slot.conn.is_autocommit() {
            guard.slot.snapshot = None;
        }
        guard
    }
}

/// Ends a reader's read transaction, if it has one. Ending a read transaction cannot lose
/// anything; if SQLite refuses, the connection still reports an open transaction and the
/// next [`Readers::snapshot`] call surfaces SQLite's error from `BEGIN`.
fn end_snapshot(reader: &mut Reader) {
    reader.snapshot = None;
    if !reader.conn.is_autocommit()
        && let Err(e) = reader.conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "could not end a SQLite reader's snapshot");
    }
}
