//! The SQLite WAL stays small under a steady stream of small commits (the audit
//! committer's), with readers reading all the while: it must start again from its beginning
//! now and then, or every commit writes fresh file pages and the file grows without bound
//! until a checkpoint of hundreds of megabytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use caldicott_vault::{Backend, Ledger, LedgerLeaf, LocalKek, SqliteBackend, Vault};

#[test]
fn the_wal_restarts_under_continuous_small_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let b = SqliteBackend::open(&path, true).unwrap();
    b.migrate().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    let vault = Arc::new(Vault::open(Box::new(b), kek).unwrap());
    let ledger = Ledger::open(Arc::clone(&vault), "test.example/audit").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (l, stop) = (Arc::clone(&ledger), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                l.head().unwrap();
                reads += 1;
            }
            reads
        })
    };
    let wal = dir.path().join("vault.db-wal");
    let mut largest = 0u64;
    for c in 0..1_500u64 {
        let leaves = (0..4)
            .map(|j| LedgerLeaf {
                data: format!("event {c}/{j} {}", "x".repeat(300)).into_bytes(),
                at_us: c as i64,
                keys: vec![
                    format!("p:patient{}", (c * 4 + j) % 997),
                    "u:someone".into(),
                ],
            })
            .collect();
        ledger.append(leaves).unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    // ~10 pages per commit: 1,500 commits without restarts would leave ~60 MB of WAL.
    assert!(
        largest < 16 << 20,
        "the WAL grew to {largest} bytes: it is not restarting"
    );
    assert_eq!(ledger.head().unwrap().size, 6_000);
}
