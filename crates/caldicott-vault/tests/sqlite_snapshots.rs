//! SQLite readers keep their read snapshots open across the audit ledger's commits (see
//! `backend/sqlite/readers.rs`). These tests check what that must never cost: a read that
//! starts after a write was acknowledged sees it, whatever the ledger commits meanwhile;
//! ledger reads see the latest append; and a write by another process on the same file is
//! seen shortly after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use caldicott_core::{OdsCode, ResourceId, ResourceType};
use caldicott_vault::{Backend, Expect, Ledger, LedgerLeaf, LocalKek, SqliteBackend, Vault, Write};

fn leaf(i: u64) -> LedgerLeaf {
    LedgerLeaf {
        data: format!("event {i} {}", "x".repeat(200)).into_bytes(),
        at_us: i as i64,
        keys: vec![format!("p:patient{}", i % 101)],
    }
}

/// A vault and its ledger on a new SQLite file, with background threads committing
/// one-leaf appends and reading metadata (so that snapshots are held) until `stop`.
struct Busy {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    vault: Arc<Vault>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Busy {
    fn start() -> Busy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let b = SqliteBackend::open(&path, true).unwrap();
        b.migrate().unwrap();
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let vault = Arc::new(Vault::open(Box::new(b), kek).unwrap());
        let ledger = Ledger::open(Arc::clone(&vault), "test.example/audit").unwrap();
        vault.backend().set_meta("busy", b"yes").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (l, stop) = (Arc::clone(&ledger), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    l.append(vec![leaf(i)]).unwrap();
                    i += 1;
                }
                i
            }));
        }
        for _ in 0..2 {
            let (v, stop) = (Arc::clone(&vault), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    assert!(v.backend().meta("busy").unwrap().is_some());
                    reads += 1;
                }
                reads
            }));
        }
        Busy {
            _dir: dir,
            path,
            vault,
            ledger,
            stop,
            threads,
        }
    }

    /// Stops the threads; each must have done some work.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            assert!(t.join().unwrap() > 0);
        }
    }
}

#[test]
fn a_read_after_an_acknowledged_write_sees_it_while_the_ledger_commits() {
    let busy = Busy::start();
    let backend = busy.vault.backend();
    let org = OdsCode::parse("A81001").unwrap();
    busy.vault.ensure_org(&org).unwrap();
    let rtype = ResourceType::new("Observation").unwrap();
    let id = ResourceId::new("obs-1").unwrap();
    let mut expect = Expect::Absent;
    for i in 0..400u32 {
        // Metadata: one statement each way.
        backend.set_meta("probe", &i.to_be_bytes()).unwrap();
        assert_eq!(
            backend.meta("probe").unwrap().as_deref(),
            Some(&i.to_be_bytes()[..]),
            "write {i} not seen by the next read"
        );
        // A record: its new version, read back through the heads.
        let body = format!(r#"{{"resourceType":"Observation","id":"obs-1","n":{i}}}"#);
        let v = busy
            .vault
            .put(&Write {
                org: org.clone(),
                rtype: rtype.clone(),
                id: id.clone(),
                expect,
                body: body.clone().into_bytes(),
                terms: Vec::new(),
            })
            .unwrap();
        let got = busy.vault.get(&org, &rtype, &id).unwrap().unwrap();
        assert_eq!(got.version, v, "version {v} not seen by the next read");
        assert_eq!(got.body, body.as_bytes());
        expect = Expect::Version(v);
        // The directory.
        let dir_expect =
            (i > 0).then(|| busy.vault.dir_get("probe", "k").unwrap().unwrap().version);
        busy.vault
            .dir_put("probe", "k", &i.to_be_bytes(), dir_expect)
            .unwrap();
        let entry = busy.vault.dir_get("probe", "k").unwrap().unwrap();
        assert_eq!(&entry.value[..], &i.to_be_bytes()[..]);
    }
    busy.finish();
}

#[test]
fn ledger_reads_see_the_latest_append_at_once() {
    let busy = Busy::start();
    for i in 0..300u64 {
        let appended = busy.ledger.append(vec![leaf(1_000_000 + i)]).unwrap();
        let backend = busy.vault.backend();
        let epoch = appended.epoch;
        // Ours and whatever the committer put after it in the same commit.
        let leaves = backend
            .ledger_leaves(epoch, appended.first, appended.size)
            .unwrap();
        assert_eq!(
            leaves.len() as u64,
            appended.size - appended.first,
            "append {i} not yet readable"
        );
        assert_eq!(leaves[0].data, leaf(1_000_000 + i).data);
    }
    busy.finish();
}

#[test]
fn a_write_by_another_backend_in_this_process_is_seen_at_once() {
    let busy = Busy::start();
    // The mail gateway, say, beside the server: backends on one file share their state.
    let other = SqliteBackend::open(&busy.path, false).unwrap();
    for i in 0..200u32 {
        other.set_meta("from-beside", &i.to_be_bytes()).unwrap();
        assert_eq!(
            busy.vault.backend().meta("from-beside").unwrap().as_deref(),
            Some(&i.to_be_bytes()[..]),
            "write {i} by the other backend not seen by the next read"
        );
    }
    busy.finish();
}

/// Set in the child process of `a_write_by_another_process_is_seen_within_moments`: the
/// database file it writes to.
const CHILD_DB: &str = "CALDICOTT_SNAPSHOT_TEST_CHILD_DB";

/// Does nothing unless run as that child: then writes `from-elsewhere` = the value given.
#[test]
fn child_process_writer() {
    let (Ok(path), Ok(value)) = (
        std::env::var(CHILD_DB),
        std::env::var("CALDICOTT_SNAPSHOT_TEST_CHILD_VALUE"),
    ) else {
        return;
    };
    let b = SqliteBackend::open(std::path::Path::new(&path), false).unwrap();
    let v: u32 = value.parse().unwrap();
    b.set_meta("from-elsewhere", &v.to_be_bytes()).unwrap();
}

#[test]
fn a_write_by_another_process_is_seen_within_moments() {
    let busy = Busy::start();
    let exe = std::env::current_exe().unwrap();
    for i in 0..5u32 {
        let status = std::process::Command::new(&exe)
            .args(["--exact", "child_process_writer", "--test-threads=1"])
            .env(CHILD_DB, &busy.path)
            .env("CALDICOTT_SNAPSHOT_TEST_CHILD_VALUE", i.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the writing child process failed");
        let start = Instant::now();
        loop {
            let seen = busy.vault.backend().meta("from-elsewhere").unwrap();
            if seen.as_deref() == Some(&i.to_be_bytes()[..]) {
                break;
            }
            // Snapshots live at most 20 ms; a second allows for a loaded machine.
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "write {i} by another process not seen after {:?}",
                start.elapsed()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    busy.finish();
}
