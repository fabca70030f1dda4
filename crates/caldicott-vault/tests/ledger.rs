//! The audit ledger as stored, on SQLite and PostgreSQL: appends (grouped and inside
//! record writes), proofs checked against an in-memory model, signed checkpoints, full
//! verification, tamper detection naming the first bad entry, and epochs.

use std::sync::Arc;

use caldicott_core::{OdsCode, ResourceId, ResourceType};
use caldicott_ledger::{Checkpoint, MemoryTree, leaf_hash, verify_consistency, verify_inclusion};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{
    Backend, Expect, Ledger, LedgerLeaf, LocalKek, PostgresBackend, SqliteBackend, Vault,
    VerifyError, Write,
};

enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

impl Db {
    fn backend(&self) -> Box<dyn Backend> {
        match self {
            Db::Sqlite(d) => {
                Box::new(SqliteBackend::open(&d.path().join("vault.db"), true).unwrap())
            }
            Db::Postgres(s) => Box::new(PostgresBackend::connect(&s.url).unwrap()),
        }
    }

    /// Empties the ledger's tables (each backend names its lookup-key tables its own way).
    fn reset_ledger(&self) {
        let keys = match self {
            Db::Sqlite(_) => {
                "DELETE FROM ledger_key_log; DELETE FROM ledger_key_index; DELETE FROM ledger_key_runs;"
            }
            Db::Postgres(_) => "DELETE FROM ledger_keys;",
        };
        self.exec(&format!(
            "DELETE FROM ledger_leaves; DELETE FROM ledger_nodes; DELETE FROM ledger_checkpoints; {keys} DELETE FROM ledger_tiles; UPDATE ledger_epochs SET size = 0"
        ));
    }

    fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(d) => rusqlite::Connection::open(d.path().join("vault.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Db::Postgres(s) => s.exec(sql),
        }
    }
}

fn dbs() -> Vec<Db> {
    let mut v = vec![Db::Sqlite(tempfile::tempdir().unwrap())];
    if let Some(s) = PgSchema::create() {
        v.push(Db::Postgres(s));
    }
    v
}

fn open(db: &Db, kek: &Arc<LocalKek>) -> Arc<Ledger> {
    let b = db.backend();
    b.migrate().unwrap();
    let vault = Arc::new(Vault::open(b, kek.clone()).unwrap());
    Ledger::open(vault, "test.example/audit").unwrap()
}

fn leaf(i: u64) -> LedgerLeaf {
    LedgerLeaf {
        data: format!("event {i}").into_bytes(),
        at_us: 1_000 + i as i64,
        keys: vec![format!("p:patient{}", i % 7), format!("u:user{}", i % 3)],
    }
}

fn no_check(_: &[u8]) -> Result<(), String> {
    Ok(())
}

fn verify(l: &Ledger) -> Result<caldicott_vault::VerifyReport, VerifyError> {
    l.verify(&no_check, &|_| {}).unwrap()
}

#[test]
fn appends_proofs_and_checkpoints_match_the_model() {
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let l = open(&db, &kek);
        let mut model = MemoryTree::new();
        // Empty log: an empty checkpoint.
        let (size, note) = l.publish().unwrap().unwrap();
        assert_eq!(size, 0);
        let (cp, _) = Checkpoint::open(note.as_bytes(), &[l.verifier_key()]).unwrap();
        assert_eq!(cp.root(), &model.root());
        // Concurrent appends are grouped; every leaf lands exactly once.
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for j in 0..25u64 {
                        let i = t * 1000 + j;
                        let a = l.append(vec![leaf(i)]).unwrap();
                        got.push((a.first, i));
                    }
                    got
                })
            })
            .collect();
        let mut placed: Vec<(u64, u64)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        placed.sort();
        assert_eq!(placed.len(), 200);
        for (n, (idx, i)) in placed.iter().enumerate() {
            assert_eq!(*idx, n as u64, "indices are dense and unique");
            model.append(leaf_hash(&leaf(*i).data)).unwrap();
        }
        let head = l.head().unwrap();
        assert_eq!((head.epoch, head.size), (1, 200));
        // Stored leaves come back in index order with their bytes.
        let stored = l.leaves(1, 0, 200).unwrap();
        for (n, s) in stored.iter().enumerate() {
            assert_eq!(s.data, leaf(placed[n].1).data);
        }
        // A checkpoint of the new size, signed, with the model's root.
        let (size, note) = l.publish().unwrap().unwrap();
        assert_eq!(size, 200);
        let (cp, _) = Checkpoint::open(note.as_bytes(), &[l.verifier_key()]).unwrap();
        assert_eq!(cp.root(), &model.root());
        // Proofs for many (index, size) pairs verify against the model's roots.
        for size in [1u64, 2, 3, 7, 64, 100, 199, 200] {
            let root = model.root_at(size).unwrap();
            for index in [0, size / 2, size - 1] {
                let p = l.inclusion(1, index, size).unwrap();
                verify_inclusion(&model.leaf_hashes()[index as usize], index, size, &p, &root)
                    .unwrap();
            }
            for from in [1u64, size / 3 + 1, size] {
                let p = l.consistency(1, from, size).unwrap();
                verify_consistency(from, size, &model.root_at(from).unwrap(), &root, &p).unwrap();
            }
        }
        // Out-of-range requests are errors, not panics.
        assert!(l.inclusion(1, 200, 200).is_err());
        assert!(l.inclusion(1, 0, 201).is_err());
        assert!(l.consistency(1, 5, 4).is_err());
        assert!(l.consistency(1, 0, 4).is_err());
        assert!(l.leaves(1, 10, 201).is_err());
        assert!(l.inclusion(9, 0, 1).is_err());
        // Lookup keys find leaves newest first.
        let found = l.find("p:patient3", None, 1000).unwrap();
        assert!(!found.is_empty());
        assert!(found.windows(2).all(|w| w[0] > w[1]));
        for (_, idx) in &found {
            assert_eq!(placed[*idx as usize].1 % 7, 3);
        }
        let report = verify(&l).unwrap();
        assert_eq!(report.entries, 200);
        assert_eq!(report.checkpoints, 2);
        // Reopening (another process) continues the same log with the same key.
        let l2 = open(&db, &kek);
        assert_eq!(l2.verifier_key(), l.verifier_key());
        let a = l2.append(vec![leaf(9999)]).unwrap();
        assert_eq!(a.first, 200);
        model.append(leaf_hash(&leaf(9999).data)).unwrap();
        assert_eq!(l.root(1, 201).unwrap(), model.root());
        verify(&l2).unwrap();
    }
}

/// Lookups page newest first through everything: on SQLite, keys still waiting in the
/// key log, and several sorted runs (one forms every 16,384 leaves), across a sealed epoch.
#[test]
fn lookups_page_through_key_runs_and_epochs() {
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let l = open(&db, &kek);
        // Leaf i has keys p:patient{i % 7} and u:user{i % 3}; a few have none.
        let mk = |i: u64| LedgerLeaf {
            keys: if i.is_multiple_of(101) {
                vec![]
            } else {
                leaf(i).keys
            },
            ..leaf(i)
        };
        let mut expected: Vec<(u32, u64, u64)> = Vec::new(); // (epoch, idx, i)
        let mut i = 0u64;
        let mut append = |l: &Ledger, n: u64, expected: &mut Vec<(u32, u64, u64)>| {
            let batch: Vec<LedgerLeaf> = (i..i + n).map(mk).collect();
            let a = l.append(batch).unwrap();
            for k in 0..n {
                expected.push((a.epoch, a.first + k, i + k));
            }
            i += n;
        };
        // Batches of odd sizes, so runs end mid-batch's worth.
        for _ in 0..36 {
            append(&l, 997, &mut expected);
        }
        l.seal().unwrap();
        for _ in 0..5 {
            append(&l, 1009, &mut expected);
        }
        for (key, matches) in [
            (
                "p:patient3",
                Box::new(|i: u64| i % 7 == 3) as Box<dyn Fn(u64) -> bool>,
            ),
            ("u:user1", Box::new(|i: u64| i % 3 == 1)),
        ] {
            let want: Vec<(u32, u64)> = expected
                .iter()
                .rev()
                .filter(|(_, _, i)| i % 101 != 0 && matches(*i))
                .map(|(e, idx, _)| (*e, *idx))
                .collect();
            // Page by 1,000 (pages straddle the log, runs and the epoch boundary).
            let mut got = Vec::new();
            let mut before = None;
            loop {
                let page = l.find(key, before, 1000).unwrap();
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= 1000);
                before = page.last().copied();
                got.extend(page);
            }
            assert_eq!(got.len(), want.len(), "{key}");
            assert!(got == want, "{key}: the lookup differs from the model");
        }
        if let Db::Sqlite(d) = &db {
            // The lookups above did read runs and the log: two full runs in epoch 1, its
            // tail merged with epoch 2's first batch, and epoch 2's later keys still waiting.
            let c = rusqlite::Connection::open(d.path().join("vault.db")).unwrap();
            let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
            assert_eq!(count("SELECT count(*) FROM ledger_key_runs"), 3);
            assert!(count("SELECT count(*) FROM ledger_key_log") > 3_000);
        }
        // A key no leaf has finds nothing; a zero limit finds nothing.
        assert!(l.find("p:nobody", None, 10).unwrap().is_empty());
        assert!(l.find("p:patient3", None, 0).unwrap().is_empty());
        verify(&l).unwrap();
    }
}

#[test]
fn leaves_written_with_records_are_atomic_with_them() {
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let l = open(&db, &kek);
        let w = |id: &str, expect| Write {
            org: OdsCode::parse("A81001").unwrap(),
            rtype: ResourceType::new("Patient").unwrap(),
            id: ResourceId::new(id).unwrap(),
            expect,
            body: b"{}".to_vec(),
            terms: vec![],
        };
        let (_, a) = l
            .vault()
            .commit_audited(&[w("a", Expect::Absent)], 1, 5, &[leaf(1), leaf(2)])
            .unwrap();
        assert_eq!(a.unwrap().first, 0);
        // A write that conflicts writes neither the record nor its leaves.
        let err = l
            .vault()
            .commit_audited(&[w("a", Expect::Absent)], 1, 6, &[leaf(3)]);
        assert!(err.is_err());
        assert_eq!(l.head().unwrap().size, 2);
        l.append(vec![leaf(4)]).unwrap();
        assert_eq!(l.head().unwrap().size, 3);
        verify(&l).unwrap();
    }
}

/// Builds a 40-entry log with checkpoints at 10, 25 and 40.
fn tamper_fixture(db: &Db, kek: &Arc<LocalKek>) -> Arc<Ledger> {
    let l = open(db, kek);
    for chunk in [10u64, 15, 15] {
        let start = l.head().unwrap().size;
        l.append((start..start + chunk).map(leaf).collect())
            .unwrap();
        l.publish().unwrap();
    }
    verify(&l).unwrap();
    l
}

fn first_bad(e: VerifyError) -> String {
    e.to_string()
}

#[test]
fn any_tampering_is_caught_and_the_first_bad_entry_named() {
    let blob = |db: &Db, s: &str| match db {
        Db::Sqlite(_) => format!("X'{}'", hex(s.as_bytes())),
        Db::Postgres(_) => format!("'\\x{}'::bytea", hex(s.as_bytes())),
    };
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        // Changing one leaf's bytes.
        let l = tamper_fixture(&db, &kek);
        db.exec(&format!(
            "UPDATE ledger_leaves SET data = {} WHERE idx = 17",
            blob(&db, "event forged")
        ));
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("entry 17"), "{e}");
        db.reset_ledger();

        // Deleting a leaf.
        let l = tamper_fixture(&db, &kek);
        db.exec("DELETE FROM ledger_leaves WHERE idx = 12");
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("entry 12: missing"), "{e}");
        db.reset_ledger();

        // Reordering two leaves.
        let l = tamper_fixture(&db, &kek);
        db.exec(&format!(
            "UPDATE ledger_leaves SET data = {} WHERE idx = 5; UPDATE ledger_leaves SET data = {} WHERE idx = 6",
            blob(&db, "event 6"),
            blob(&db, "event 5")
        ));
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("entry 5"), "{e}");
        db.reset_ledger();

        // Inserting a leaf beyond the end.
        let l = tamper_fixture(&db, &kek);
        db.exec(&format!(
            "INSERT INTO ledger_leaves (epoch, idx, at_us, hash, data) VALUES (1, 40, 1, {}, {})",
            blob(&db, &"h".repeat(32)),
            blob(&db, "event planted")
        ));
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("entry 40"), "{e}");
        db.reset_ledger();

        // Rewriting a leaf and every hash above it consistently: only the signed
        // checkpoints can tell, and they do, naming the range.
        let l = tamper_fixture(&db, &kek);
        let mut model = MemoryTree::new();
        for i in 0..40u64 {
            let data = if i == 30 {
                b"event forged".to_vec()
            } else {
                leaf(i).data
            };
            model.append(leaf_hash(&data)).unwrap();
        }
        db.exec(&format!(
            "UPDATE ledger_leaves SET data = {} WHERE idx = 30; DELETE FROM ledger_nodes",
            blob(&db, "event forged")
        ));
        let mut sql = String::new();
        for level in 0..6u8 {
            let n = 40u64 >> level;
            for idx in 0..n {
                let h = caldicott_ledger::tree_root(
                    &model.leaf_hashes()[(idx << level) as usize..((idx + 1) << level) as usize],
                    1 << level,
                )
                .unwrap();
                let hb = match &db {
                    Db::Sqlite(_) => format!("X'{}'", h.to_hex()),
                    Db::Postgres(_) => format!("'\\x{}'::bytea", h.to_hex()),
                };
                sql.push_str(&if level == 0 {
                    format!("UPDATE ledger_leaves SET hash = {hb} WHERE idx = {idx};")
                } else {
                    format!(
                        "INSERT INTO ledger_nodes (epoch, level, idx, hash) VALUES (1, {level}, {idx}, {hb});"
                    )
                });
            }
        }
        db.exec(&sql);
        let e = first_bad(verify(&l).unwrap_err());
        assert!(
            e.contains("checkpoint of size 40") && e.contains("[25, 40)"),
            "{e}"
        );
        db.reset_ledger();

        // A tile of leaf hashes (what proofs read) altered.
        let l = tamper_fixture(&db, &kek);
        db.exec(&format!(
            "UPDATE ledger_tiles SET hashes = {} WHERE tile = 1",
            blob(&db, &"x".repeat(512))
        ));
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("entry 16") && e.contains("tile"), "{e}");
        db.reset_ledger();

        // A checkpoint altered (signature no longer valid), or one that claims too much.
        let l = tamper_fixture(&db, &kek);
        db.exec("UPDATE ledger_checkpoints SET note = replace(note, '\n25\n', '\n26\n') WHERE size = 25");
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("checkpoint of size 25"), "{e}");
        db.exec("DELETE FROM ledger_checkpoints WHERE size = 25");
        verify(&l).unwrap();
        db.exec("UPDATE ledger_epochs SET size = 30");
        let e = first_bad(verify(&l).unwrap_err());
        assert!(e.contains("entry 30"), "{e}");
    }
}

#[test]
fn sealing_an_epoch_keeps_both_verifiable() {
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let l = open(&db, &kek);
        l.append((0..5).map(leaf).collect()).unwrap();
        let (next, note) = l.seal().unwrap();
        assert_eq!(next, 2);
        let (cp, _) = Checkpoint::open(note.as_bytes(), &[l.verifier_key()]).unwrap();
        assert_eq!(cp.size(), 5);
        let a = l.append(vec![leaf(100)]).unwrap();
        assert_eq!((a.epoch, a.first), (2, 0));
        let (_, note2) = l.publish().unwrap().unwrap();
        let (cp2, _) = Checkpoint::open(note2.as_bytes(), &[l.verifier_key()]).unwrap();
        assert_eq!(cp2.extensions(), ["epoch 2"]);
        let r = verify(&l).unwrap();
        assert_eq!((r.epochs, r.entries), (2, 6));
        // The sealed epoch's proofs still work.
        assert_eq!(l.inclusion(1, 2, 5).unwrap().len(), 3);
    }
}

/// `seal_with` writes the record of the seal as the new epoch's first leaf, in the
/// sealing transaction, from the sealed epoch's number, size and root.
#[test]
fn sealing_with_a_record_puts_it_first() {
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let l = open(&db, &kek);
        l.append((0..7).map(leaf).collect()).unwrap();
        let root = l.root(1, 7).unwrap();
        let (next, note) = l
            .seal_with(|epoch, size, r| LedgerLeaf {
                data: format!("sealed {epoch} {size} {}", r.to_base64()).into_bytes(),
                at_us: 5,
                keys: Vec::new(),
            })
            .unwrap();
        assert_eq!(next, 2);
        let (cp, _) = Checkpoint::open(note.as_bytes(), &[l.verifier_key()]).unwrap();
        assert_eq!((cp.size(), *cp.root()), (7, root));
        let first = l.leaves(2, 0, 1).unwrap();
        assert_eq!(
            first[0].data,
            format!("sealed 1 7 {}", root.to_base64()).into_bytes()
        );
        let a = l.append(vec![leaf(100)]).unwrap();
        assert_eq!((a.epoch, a.first, a.size), (2, 1, 2));
        let r = verify(&l).unwrap();
        assert_eq!((r.epochs, r.entries), (2, 9));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Two servers on one database (two backends, each with its own connections and frontier
/// cache, as two `caldicott serve` processes have) append at the same time: one log, every
/// leaf once, and it verifies.
#[test]
fn two_writers_on_one_database_build_one_log() {
    for db in dbs() {
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let a = open(&db, &kek);
        let b = open(&db, &kek);
        let writers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .flat_map(|(w, l)| {
                (0..3).map(move |t| {
                    let l = Arc::clone(&l);
                    std::thread::spawn(move || {
                        for j in 0..40u64 {
                            let i = (w as u64 * 10 + t) * 1000 + j;
                            if j % 2 == 0 {
                                l.append(vec![leaf(i)]).unwrap();
                            } else {
                                // Leaves in the transaction of a record write.
                                let write = Write {
                                    org: OdsCode::parse("A81001").unwrap(),
                                    rtype: ResourceType::new("Patient").unwrap(),
                                    id: ResourceId::new(&format!("p{i}")).unwrap(),
                                    expect: Expect::Absent,
                                    body: b"{}".to_vec(),
                                    terms: vec![],
                                };
                                l.vault()
                                    .commit_audited(&[write], 1, 1, &[leaf(i)])
                                    .unwrap();
                            }
                        }
                    })
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let head = a.head().unwrap();
        assert_eq!(head.size, 240);
        let mut seen: Vec<Vec<u8>> = a
            .leaves(1, 0, 240)
            .unwrap()
            .into_iter()
            .map(|l| l.data)
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 240, "every leaf exactly once");
        a.publish().unwrap();
        b.publish().unwrap();
        verify(&a).unwrap();
        verify(&b).unwrap();
    }
}

/// A database from before the key log (schema 5, one `ledger_keys` index) keeps its
/// lookups through the upgrade: its keys become run 0.
#[test]
fn sqlite_upgrade_keeps_lookup_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir);
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    {
        let l = open(&db, &kek);
        // One batch of a full run: every key lands in run 0 and the log is empty.
        l.append((0..16_384).map(leaf).collect()).unwrap();
    }
    // Back to schema 5's shape, with the same keys.
    db.exec(
        "CREATE TABLE ledger_keys (
            key INTEGER NOT NULL, epoch INTEGER NOT NULL, idx INTEGER NOT NULL,
            PRIMARY KEY (key, epoch, idx)) WITHOUT ROWID;
         INSERT INTO ledger_keys SELECT key, epoch, idx FROM ledger_key_index;
         DROP TABLE ledger_key_index; DROP TABLE ledger_key_runs; DROP TABLE ledger_key_log;
         DELETE FROM schema_migrations WHERE version = 6;",
    );
    let b = db.backend();
    assert_eq!(b.migrate().unwrap(), vec![6]);
    let vault = Arc::new(Vault::open(b, kek.clone()).unwrap());
    let l = Ledger::open(vault, "test.example/audit").unwrap();
    let a = l.append((16_384..16_400).map(leaf).collect()).unwrap();
    assert_eq!(a.first, 16_384);
    let got = l.find("p:patient3", None, 100_000).unwrap();
    let want: Vec<(u32, u64)> = (0..16_400u64)
        .rev()
        .filter(|i| i % 7 == 3)
        .map(|i| (1, i))
        .collect();
    assert!(got == want, "lookups differ after the upgrade");
    verify(&l).unwrap();
}

/// A damaged lookup-key row (SQLite's `ledger_key_log`) stops the append that would sort it
/// into a run with a clear error, and that append leaves nothing behind.
#[test]
fn a_damaged_lookup_key_row_fails_the_merge_cleanly() {
    let db = Db::Sqlite(tempfile::tempdir().unwrap());
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    let l = open(&db, &kek);
    l.append((0..5).map(leaf).collect()).unwrap();
    db.exec("UPDATE ledger_key_log SET keys = x'0102' WHERE idx = 3");
    l.seal().unwrap();
    // The first append of the new epoch sorts the old epoch's keys into a run.
    let err = l.append(vec![leaf(100)]).unwrap_err().to_string();
    assert!(
        err.contains("lookup-key row of the audit ledger is malformed"),
        "unexpected error: {err}"
    );
    let head = l.head().unwrap();
    assert_eq!(
        (head.epoch, head.size),
        (2, 0),
        "the failed append left a leaf"
    );
}
