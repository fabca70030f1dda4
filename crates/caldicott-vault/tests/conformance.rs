//! One conformance suite, run against both backends: SQLite (always) and PostgreSQL (the
//! cluster `cargo xtask test` starts; skipped visibly without it).

use std::sync::Arc;

use caldicott_core::{OdsCode, ResourceId, ResourceType, VersionId};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{
    Backend, Expect, IndexTerm, KeyProvider, LocalKek, PostgresBackend, SqliteBackend, Vault,
    VaultError, Write,
};

/// A database under test, with raw SQL access for tamper tests.
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

    /// Flips the lowest bit of one byte of a record's stored ciphertext.
    fn flip_byte(&self, id: &str, at: usize) {
        match self {
            Db::Sqlite(_) => self.exec(&format!(
                "UPDATE records SET ciphertext = substr(ciphertext, 1, {at})
                   || CASE WHEN substr(ciphertext, {p}, 1) = X'00' THEN X'01' ELSE X'00' END
                   || substr(ciphertext, {n}) WHERE id = '{id}'",
                p = at + 1,
                n = at + 2
            )),
            Db::Postgres(_) => self.exec(&format!(
                "UPDATE records SET ciphertext = set_byte(ciphertext, {at}, get_byte(ciphertext, {at}) # 1) WHERE id = '{id}'"
            )),
        }
    }

    /// Fails if the bytes appear in any directory value.
    fn exec_check_absent(&self, needle: &[u8]) {
        let values: Vec<Vec<u8>> = match self {
            Db::Sqlite(d) => {
                let c = rusqlite_conn(&d.path().join("vault.db"));
                let mut st = c.prepare("SELECT value FROM directory").unwrap();
                st.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Db::Postgres(s) => {
                let mut c = ::postgres::Client::connect(&s.url, ::postgres::NoTls).unwrap();
                c.query("SELECT value FROM directory", &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            }
        };
        assert!(!values.is_empty());
        for v in values {
            assert!(!v.windows(needle.len()).any(|w| w == needle));
        }
    }

    fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(d) => {
                let c = rusqlite_conn(&d.path().join("vault.db"));
                c.execute_batch(sql).unwrap();
            }
            Db::Postgres(s) => s.exec(sql),
        }
    }
}

fn rusqlite_conn(p: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(p).unwrap()
}

struct Fixture {
    db: Db,
    kek: Arc<LocalKek>,
    vault: Vault,
}

impl Fixture {
    fn reopen(&self, kek: Arc<dyn KeyProvider>) -> Result<Vault, VaultError> {
        Vault::open(self.db.backend(), kek)
    }
}

fn fixture(db: Db) -> Fixture {
    let b = db.backend();
    b.migrate().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    let vault = Vault::open(b, kek.clone()).unwrap();
    Fixture { db, kek, vault }
}

fn org(s: &str) -> OdsCode {
    OdsCode::parse(s).unwrap()
}
fn rt(s: &str) -> ResourceType {
    ResourceType::new(s).unwrap()
}
fn rid(s: &str) -> ResourceId {
    ResourceId::new(s).unwrap()
}
fn v(n: u64) -> VersionId {
    VersionId::new(n).unwrap()
}

fn write(o: &str, t: &str, id: &str, expect: Expect, body: &str, terms: &[(&str, &str)]) -> Write {
    Write {
        org: org(o),
        rtype: rt(t),
        id: rid(id),
        expect,
        body: body.as_bytes().to_vec(),
        terms: terms.iter().map(|(n, v)| IndexTerm::new(*n, *v)).collect(),
    }
}

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number|9990000026";

fn create_and_read_back_exact_bytes(f: &Fixture) {
    let body = r#"{"resourceType":"Observation","valueQuantity":{"value":72.50}}"#;
    let got = f
        .vault
        .put(&write(
            "A81001",
            "Observation",
            "o1",
            Expect::Absent,
            body,
            &[],
        ))
        .unwrap();
    assert_eq!(got, VersionId::FIRST);
    let r = f
        .vault
        .get(&org("A81001"), &rt("Observation"), &rid("o1"))
        .unwrap()
        .unwrap();
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(r.version, VersionId::FIRST);
    assert!(!r.deleted);
    assert!(
        f.vault
            .get(&org("A81001"), &rt("Observation"), &rid("nope"))
            .unwrap()
            .is_none()
    );
}

fn updates_make_versions_and_keep_history(f: &Fixture) {
    let w = |e, b| write("A81001", "Patient", "p1", e, b, &[]);
    f.vault.put(&w(Expect::Absent, "v1")).unwrap();
    assert_eq!(f.vault.put(&w(Expect::Version(v(1)), "v2")).unwrap(), v(2));
    assert_eq!(f.vault.put(&w(Expect::Any, "v3")).unwrap(), v(3));
    let h = f
        .vault
        .history(&org("A81001"), &rt("Patient"), &rid("p1"))
        .unwrap();
    let bodies: Vec<&[u8]> = h.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies, [b"v3".as_slice(), b"v2", b"v1"]);
    let old = f
        .vault
        .get_version(&org("A81001"), &rt("Patient"), &rid("p1"), v(2))
        .unwrap()
        .unwrap();
    assert_eq!(old.body, b"v2");
    assert!(
        f.vault
            .get_version(&org("A81001"), &rt("Patient"), &rid("p1"), v(9))
            .unwrap()
            .is_none()
    );
}

fn optimistic_concurrency_refuses_stale_writes(f: &Fixture) {
    let w = |e, b| write("A81001", "Patient", "p1", e, b, &[]);
    f.vault.put(&w(Expect::Absent, "v1")).unwrap();
    let e = f.vault.put(&w(Expect::Absent, "again")).unwrap_err();
    assert!(matches!(e, VaultError::Conflict { .. }), "{e}");
    f.vault.put(&w(Expect::Version(v(1)), "v2")).unwrap();
    let e = f.vault.put(&w(Expect::Version(v(1)), "stale")).unwrap_err();
    assert!(
        e.to_string()
            .contains("expected version 1, found version 2"),
        "{e}"
    );
    let cur = f
        .vault
        .get(&org("A81001"), &rt("Patient"), &rid("p1"))
        .unwrap()
        .unwrap();
    assert_eq!(cur.body, b"v2");
    assert_eq!(
        f.vault
            .history(&org("A81001"), &rt("Patient"), &rid("p1"))
            .unwrap()
            .len(),
        2
    );
}

fn delete_is_a_tombstone(f: &Fixture) {
    let (o, t, i) = (org("A81001"), rt("Patient"), rid("p1"));
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Absent,
            "v1",
            &[("identifier", NHS)],
        ))
        .unwrap();
    assert_eq!(
        f.vault.delete(&o, &t, &i, Expect::Version(v(1))).unwrap(),
        v(2)
    );
    let r = f.vault.get(&o, &t, &i).unwrap().unwrap();
    assert!(r.deleted && r.body.is_empty() && r.version == v(2));
    assert!(
        f.vault
            .search(&o, &t, &IndexTerm::new("identifier", NHS))
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.vault.count(&o, &t).unwrap(), 0);
    assert_eq!(f.vault.history(&o, &t, &i).unwrap().len(), 2);
    // Recreating after delete continues the version sequence.
    assert_eq!(
        f.vault
            .put(&write("A81001", "Patient", "p1", Expect::Any, "v3", &[]))
            .unwrap(),
        v(3)
    );
    assert!(matches!(
        f.vault.delete(&o, &t, &rid("never"), Expect::Any),
        Err(VaultError::Conflict { .. })
    ));
}

fn batches_are_all_or_nothing(f: &Fixture) {
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "taken",
            Expect::Absent,
            "x",
            &[],
        ))
        .unwrap();
    let batch = vec![
        write(
            "A81001",
            "Patient",
            "b1",
            Expect::Absent,
            "1",
            &[("identifier", NHS)],
        ),
        write("A81001", "Observation", "b2", Expect::Absent, "2", &[]),
        write("A81001", "Patient", "taken", Expect::Absent, "3", &[]),
    ];
    assert!(matches!(
        f.vault.put_batch(&batch),
        Err(VaultError::Conflict { .. })
    ));
    assert!(
        f.vault
            .get(&org("A81001"), &rt("Patient"), &rid("b1"))
            .unwrap()
            .is_none()
    );
    assert!(
        f.vault
            .get(&org("A81001"), &rt("Observation"), &rid("b2"))
            .unwrap()
            .is_none()
    );
    assert!(
        f.vault
            .search(
                &org("A81001"),
                &rt("Patient"),
                &IndexTerm::new("identifier", NHS)
            )
            .unwrap()
            .is_empty()
    );
    let ok = f.vault.put_batch(&batch[..2]).unwrap();
    assert_eq!(ok, [VersionId::FIRST, VersionId::FIRST]);
    // A large batch (sealed in parallel) with its conflict at the very end.
    let mut big: Vec<Write> = (0..600)
        .map(|i| {
            write(
                "A81001",
                "Observation",
                &format!("big{i}"),
                Expect::Absent,
                "x",
                &[],
            )
        })
        .collect();
    big.push(write(
        "A81001",
        "Patient",
        "taken",
        Expect::Absent,
        "3",
        &[],
    ));
    assert!(matches!(
        f.vault.put_batch(&big),
        Err(VaultError::Conflict { .. })
    ));
    assert!(
        f.vault
            .get(&org("A81001"), &rt("Observation"), &rid("big0"))
            .unwrap()
            .is_none()
    );
    big.pop();
    assert_eq!(f.vault.put_batch(&big).unwrap().len(), 600);
    let got = f
        .vault
        .get(&org("A81001"), &rt("Observation"), &rid("big599"))
        .unwrap();
    assert_eq!(got.unwrap().body, b"x");
    let dup = vec![batch[0].clone(), batch[0].clone()];
    assert!(matches!(
        f.vault.put_batch(&dup),
        Err(VaultError::DuplicateInBatch { .. })
    ));
}

fn batched_get_keeps_order(f: &Fixture) {
    let ws: Vec<Write> = (0..50)
        .map(|i| {
            write(
                "A81001",
                "Patient",
                &format!("p{i}"),
                Expect::Absent,
                &format!("body{i}"),
                &[],
            )
        })
        .collect();
    f.vault.put_batch(&ws).unwrap();
    let ids: Vec<ResourceId> = [7, 3, 99, 49]
        .iter()
        .map(|i| rid(&format!("p{i}")))
        .collect();
    let got = f
        .vault
        .get_many(&org("A81001"), &rt("Patient"), &ids)
        .unwrap();
    let bodies: Vec<Option<Vec<u8>>> = got.into_iter().map(|r| r.map(|r| r.body)).collect();
    assert_eq!(
        bodies,
        [
            Some(b"body7".to_vec()),
            Some(b"body3".to_vec()),
            None,
            Some(b"body49".to_vec())
        ]
    );
}

fn protected_index_finds_current_terms_only(f: &Fixture) {
    let (o, t) = (org("A81001"), rt("Patient"));
    let term = IndexTerm::new("identifier", NHS);
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Absent,
            "a",
            &[("identifier", NHS), ("family", "smith")],
        ))
        .unwrap();
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p2",
            Expect::Absent,
            "b",
            &[("family", "smith")],
        ))
        .unwrap();
    assert_eq!(f.vault.search(&o, &t, &term).unwrap(), [rid("p1")]);
    assert_eq!(
        f.vault
            .search(&o, &t, &IndexTerm::new("family", "smith"))
            .unwrap(),
        [rid("p1"), rid("p2")]
    );
    // The term hash is bound to its name: the same value under another name finds nothing.
    assert!(
        f.vault
            .search(&o, &t, &IndexTerm::new("family", NHS))
            .unwrap()
            .is_empty()
    );
    // Other organisations and types see nothing.
    assert!(
        f.vault
            .search(&org("B82002"), &t, &term)
            .unwrap()
            .is_empty()
    );
    assert!(
        f.vault
            .search(&o, &rt("Observation"), &term)
            .unwrap()
            .is_empty()
    );
    // An update replaces the terms.
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Any,
            "a2",
            &[("family", "jones")],
        ))
        .unwrap();
    assert!(f.vault.search(&o, &t, &term).unwrap().is_empty());
    assert_eq!(
        f.vault
            .search(&o, &t, &IndexTerm::new("family", "jones"))
            .unwrap(),
        [rid("p1")]
    );
}

fn organisations_are_isolated(f: &Fixture) {
    f.vault
        .put(&write("A81001", "Patient", "p1", Expect::Absent, "a", &[]))
        .unwrap();
    f.vault
        .put(&write("B82002", "Patient", "p2", Expect::Absent, "b", &[]))
        .unwrap();
    let body = |o: &str, id: &str| {
        f.vault
            .get(&org(o), &rt("Patient"), &rid(id))
            .unwrap()
            .map(|r| r.body)
    };
    assert_eq!(body("A81001", "p1").unwrap(), b"a");
    assert_eq!(body("B82002", "p2").unwrap(), b"b");
    assert!(body("B82002", "p1").is_none());
    assert!(body("A81001", "p2").is_none());
    assert!(body("C83003", "p1").is_none());
    assert_eq!(f.vault.organisations(), ["A81001", "B82002"]);
}

fn an_id_belongs_to_one_organisation(f: &Fixture) {
    f.vault
        .put(&write("A81001", "Patient", "p1", Expect::Absent, "a", &[]))
        .unwrap();
    // The same type and id in another organisation is refused, alone or in a batch, and
    // the batch leaves nothing behind.
    assert!(matches!(
        f.vault
            .put(&write("B82002", "Patient", "p1", Expect::Absent, "b", &[])),
        Err(VaultError::Conflict { .. })
    ));
    assert!(matches!(
        f.vault.put_batch(&[
            write("B82002", "Patient", "p9", Expect::Absent, "ok", &[]),
            write("B82002", "Patient", "p1", Expect::Any, "b", &[]),
        ]),
        Err(VaultError::Conflict { .. })
    ));
    assert!(
        f.vault
            .locate(&rt("Patient"), &rid("p9"))
            .unwrap()
            .is_none()
    );
    // Another type may use the same id.
    f.vault
        .put(&write(
            "B82002",
            "Observation",
            "p1",
            Expect::Absent,
            "o",
            &[],
        ))
        .unwrap();
    let found = f
        .vault
        .locate_many(&rt("Patient"), &[rid("p1"), rid("zz")])
        .unwrap();
    assert_eq!(found, [Some(org("A81001")), None]);
    assert_eq!(
        f.vault.locate(&rt("Observation"), &rid("p1")).unwrap(),
        Some(org("B82002"))
    );
    // A tombstone still holds its id.
    f.vault
        .delete(&org("A81001"), &rt("Patient"), &rid("p1"), Expect::Any)
        .unwrap();
    assert_eq!(
        f.vault.locate(&rt("Patient"), &rid("p1")).unwrap(),
        Some(org("A81001"))
    );
}

fn commits_mix_writes_and_deletions_atomically(f: &Fixture) {
    let (o, t) = (org("A81001"), rt("Patient"));
    f.vault
        .put_batch(&[
            write(
                "A81001",
                "Patient",
                "p1",
                Expect::Absent,
                "1",
                &[("n", "x")],
            ),
            write("A81001", "Patient", "p2", Expect::Absent, "2", &[]),
        ])
        .unwrap();
    let mut del = write("A81001", "Patient", "p1", Expect::Version(v(1)), "", &[]);
    // A stale deletion makes the whole commit fail, the new record included.
    del.expect = Expect::Version(v(7));
    let new = write("A81001", "Patient", "p3", Expect::Absent, "3", &[]);
    assert!(matches!(
        f.vault.commit(&[new.clone(), del.clone()], 1, 5_000),
        Err(VaultError::Conflict { .. })
    ));
    assert!(f.vault.get(&o, &t, &rid("p3")).unwrap().is_none());
    del.expect = Expect::Version(v(1));
    let versions = f.vault.commit(&[new, del], 1, 5_000).unwrap();
    assert_eq!(versions, [v(1), v(2)]);
    let gone = f.vault.get(&o, &t, &rid("p1")).unwrap().unwrap();
    assert!(gone.deleted && gone.body.is_empty());
    assert_eq!(gone.written_at, 5_000);
    assert!(
        f.vault
            .search(&o, &t, &IndexTerm::new("n", "x"))
            .unwrap()
            .is_empty()
    );
    let unversioned = write("A81001", "Patient", "p2", Expect::Any, "", &[]);
    assert!(matches!(
        f.vault.commit(&[unversioned], 0, 6_000),
        Err(VaultError::DeleteWithoutVersion { .. })
    ));
}

fn reindexing_replaces_terms_of_current_records(f: &Fixture) {
    let (o, t) = (org("A81001"), rt("Patient"));
    let writes: Vec<Write> = (0..7)
        .map(|i| {
            write(
                "A81001",
                "Patient",
                &format!("r{i}"),
                Expect::Absent,
                &format!("b{i}"),
                &[("old", "x")],
            )
        })
        .collect();
    f.vault.put_batch(&writes).unwrap();
    f.vault.delete(&o, &t, &rid("r6"), Expect::Any).unwrap();
    let new_terms = |_: &ResourceType, body: &[u8]| -> Vec<IndexTerm> {
        vec![IndexTerm::new(
            "new",
            String::from_utf8_lossy(body).into_owned(),
        )]
    };
    let mut after = None;
    let mut done = 0;
    while let Some((last, n)) = f
        .vault
        .reindex_step(&o, &t, after.as_ref(), 4, &new_terms)
        .unwrap()
    {
        done += n;
        after = Some(last);
    }
    assert_eq!(done, 6, "the deleted record has no terms to rewrite");
    assert!(
        f.vault
            .search(&o, &t, &IndexTerm::new("old", "x"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.vault
            .search(&o, &t, &IndexTerm::new("new", "b3"))
            .unwrap(),
        [rid("r3")]
    );
    assert!(
        f.vault
            .search(&o, &t, &IndexTerm::new("new", "b6"))
            .unwrap()
            .is_empty()
    );
}

fn the_directory_seals_versions_and_lists(f: &Fixture) {
    let v = &f.vault;
    assert!(v.dir_get("user", "ann").unwrap().is_none());
    let v1 = v
        .dir_put("user", "ann", b"{\"role\":\"gp\"}", None)
        .unwrap();
    assert_eq!(v1, VersionId::FIRST);
    // A second create, or an update from a stale version, loses.
    assert!(matches!(
        v.dir_put("user", "ann", b"x", None),
        Err(VaultError::Conflict { .. })
    ));
    let v2 = v
        .dir_put("user", "ann", b"{\"role\":\"nurse\"}", Some(v1))
        .unwrap();
    assert!(matches!(
        v.dir_put("user", "ann", b"y", Some(v1)),
        Err(VaultError::Conflict { .. })
    ));
    let got = v.dir_get("user", "ann").unwrap().unwrap();
    assert_eq!(
        (got.version, got.value.as_slice()),
        (v2, &b"{\"role\":\"nurse\"}"[..])
    );
    for k in ["bob", "cat", "dan"] {
        v.dir_put("user", k, k.as_bytes(), None).unwrap();
    }
    v.dir_put("token", "t1", b"secret", None).unwrap();
    let page: Vec<String> = v
        .dir_list("user", Some("ann"), 2)
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(page, ["bob", "cat"]);
    assert!(v.dir_delete("user", "cat").unwrap());
    assert!(!v.dir_delete("user", "cat").unwrap());
    assert_eq!(v.dir_list("user", None, 10).unwrap().len(), 3);
    // Sealed: the value is not in the database in clear, and the directory's key is not an
    // organisation.
    f.db.exec_check_absent(b"secret");
    assert_eq!(v.organisations(), Vec::<String>::new());
    // A value moved to another key fails its integrity check.
    f.db.exec("UPDATE directory SET value = (SELECT value FROM directory WHERE kind = 'user' AND key = 'bob') WHERE kind = 'user' AND key = 'dan'");
    assert!(matches!(
        v.dir_get("user", "dan"),
        Err(VaultError::Integrity { .. })
    ));
}

fn scans_page_through_current_records(f: &Fixture) {
    let (o, t) = (org("A81001"), rt("Patient"));
    let writes: Vec<Write> = (0..25)
        .map(|i| {
            write(
                "A81001",
                "Patient",
                &format!("s{i:02}"),
                Expect::Absent,
                "v1",
                &[],
            )
        })
        .collect();
    f.vault.put_batch(&writes).unwrap();
    f.vault
        .put(&write("A81001", "Patient", "s03", Expect::Any, "v2", &[]))
        .unwrap();
    f.vault.delete(&o, &t, &rid("s04"), Expect::Any).unwrap();
    f.vault
        .put(&write(
            "A81001",
            "Observation",
            "x",
            Expect::Absent,
            "o",
            &[],
        ))
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f.vault.scan(&o, &t, after.as_ref(), 10).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        seen.extend(page.into_iter().map(|r| (r.id.to_string(), r.body)));
    }
    assert_eq!(seen.len(), 24, "25 written, one deleted");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in id order");
    assert!(
        seen.contains(&("s03".to_string(), b"v2".to_vec())),
        "current version"
    );
    assert!(!seen.iter().any(|(id, _)| id == "s04"));
    assert!(
        f.vault
            .scan(&org("B82002"), &t, None, 10)
            .unwrap()
            .is_empty()
    );
}

fn changes_list_versions_newest_first(f: &Fixture) {
    let o = org("A81001");
    f.vault
        .put_batch_at(
            &[write("A81001", "Patient", "p1", Expect::Absent, "1", &[])],
            1_000,
        )
        .unwrap();
    f.vault
        .put_batch_at(
            &[write(
                "A81001",
                "Observation",
                "o1",
                Expect::Absent,
                "2",
                &[],
            )],
            2_000,
        )
        .unwrap();
    f.vault
        .put_batch_at(
            &[write("A81001", "Patient", "p1", Expect::Any, "3", &[])],
            3_000,
        )
        .unwrap();
    f.vault
        .put_batch_at(
            &[write("B82002", "Patient", "p2", Expect::Absent, "4", &[])],
            4_000,
        )
        .unwrap();
    let all = f.vault.changes(&o, None, 0, i64::MAX, 100).unwrap();
    let got: Vec<(String, u64, i64)> = all
        .iter()
        .map(|r| (r.id.to_string(), r.version.get(), r.written_at))
        .collect();
    assert_eq!(
        got,
        [
            ("p1".to_string(), 2, 3_000),
            ("o1".to_string(), 1, 2_000),
            ("p1".to_string(), 1, 1_000)
        ]
    );
    assert!(all.iter().all(|r| r.org == o));
    let patients = f
        .vault
        .changes(&o, Some(&rt("Patient")), 0, i64::MAX, 100)
        .unwrap();
    assert_eq!(patients.len(), 2);
    let window = f.vault.changes(&o, None, 2_000, 3_000, 100).unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].id, rid("o1"));
    assert_eq!(f.vault.changes(&o, None, 0, i64::MAX, 1).unwrap().len(), 1);
}

fn a_flipped_byte_is_an_integrity_error(f: &Fixture) {
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Absent,
            "secret",
            &[],
        ))
        .unwrap();
    // Flip one byte in the middle of the stored ciphertext, in the database itself.
    f.db.flip_byte("p1", 20);
    let e = f
        .vault
        .get(&org("A81001"), &rt("Patient"), &rid("p1"))
        .unwrap_err();
    match &e {
        VaultError::Integrity {
            org,
            rtype,
            id,
            version,
        } => {
            assert_eq!(
                (org.as_str(), rtype.as_str(), id.as_str(), *version),
                ("A81001", "Patient", "p1", 1)
            );
        }
        other => panic!("expected an integrity error, got {other}"),
    }
    assert!(e.to_string().contains("A81001/Patient/p1 version 1"), "{e}");
    assert!(!e.to_string().contains("secret"));
}

fn swapped_ciphertexts_are_integrity_errors(f: &Fixture) {
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Absent,
            "alice",
            &[],
        ))
        .unwrap();
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p2",
            Expect::Absent,
            "bob",
            &[],
        ))
        .unwrap();
    f.db.exec(
        "CREATE TEMP TABLE swap AS SELECT id, ciphertext FROM records WHERE id IN ('p1', 'p2');
         UPDATE records SET ciphertext = (SELECT s.ciphertext FROM swap s WHERE s.id <> records.id)
         WHERE id IN ('p1', 'p2');",
    );
    for id in ["p1", "p2"] {
        let e = f
            .vault
            .get(&org("A81001"), &rt("Patient"), &rid(id))
            .unwrap_err();
        assert!(matches!(e, VaultError::Integrity { .. }), "{e}");
        assert!(e.to_string().contains(&format!("Patient/{id}")));
    }
}

fn a_moved_version_is_an_integrity_error(f: &Fixture) {
    let w = |e, b| write("A81001", "Patient", "p1", e, b, &[]);
    f.vault.put(&w(Expect::Absent, "old")).unwrap();
    f.vault.put(&w(Expect::Any, "new")).unwrap();
    // Replaying the old version's ciphertext as the current one (a rollback) is caught.
    f.db.exec(
        "UPDATE records SET ciphertext = (SELECT ciphertext FROM records WHERE id = 'p1' AND version = 1)
         WHERE id = 'p1' AND version = 2",
    );
    let e = f
        .vault
        .get(&org("A81001"), &rt("Patient"), &rid("p1"))
        .unwrap_err();
    assert!(matches!(e, VaultError::Integrity { version: 2, .. }), "{e}");
}

fn wrong_master_key_is_refused(f: &Fixture) {
    f.vault
        .put(&write("A81001", "Patient", "p1", Expect::Absent, "x", &[]))
        .unwrap();
    let other: Arc<dyn KeyProvider> = Arc::new(LocalKek::generate().unwrap().0);
    let e = f.reopen(other).err().expect("wrong key must fail");
    assert!(matches!(e, VaultError::WrongMasterKey { .. }), "{e}");
    assert!(e.to_string().contains(f.kek.kek_id().as_str()));
}

fn master_key_rotation_rewraps_without_touching_data(f: &Fixture) {
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Absent,
            "x",
            &[("identifier", NHS)],
        ))
        .unwrap();
    f.vault
        .put(&write("B82002", "Patient", "p2", Expect::Absent, "y", &[]))
        .unwrap();
    let mut v = f.reopen(f.kek.clone()).unwrap();
    let new_kek = Arc::new(LocalKek::generate().unwrap().0);
    assert_eq!(v.rotate_master_key(new_kek.clone()).unwrap(), 2);
    assert_eq!(
        v.get(&org("A81001"), &rt("Patient"), &rid("p1"))
            .unwrap()
            .unwrap()
            .body,
        b"x"
    );
    let reopened = f.reopen(new_kek).unwrap();
    assert_eq!(
        reopened
            .get(&org("B82002"), &rt("Patient"), &rid("p2"))
            .unwrap()
            .unwrap()
            .body,
        b"y"
    );
    assert_eq!(
        reopened
            .search(
                &org("A81001"),
                &rt("Patient"),
                &IndexTerm::new("identifier", NHS)
            )
            .unwrap(),
        [rid("p1")]
    );
    assert!(matches!(
        f.reopen(f.kek.clone()),
        Err(VaultError::WrongMasterKey { .. })
    ));
}

/// The indexer of the rotation test: bodies `b<i>...` are indexed as `n = <i>`, `n` as `n = new`.
fn index_n(_: &ResourceType, body: &[u8]) -> Vec<IndexTerm> {
    let s = std::str::from_utf8(body).unwrap();
    let n = match s.strip_prefix('b') {
        Some(rest) => rest.split('-').next().unwrap().to_owned(),
        None => "new".to_owned(),
    };
    vec![IndexTerm::new("n", n)]
}

fn data_key_rotation_reencrypts_resumably(f: &Fixture) {
    let o = org("A81001");
    let ws: Vec<Write> = (0..30)
        .map(|i| {
            write(
                "A81001",
                "Patient",
                &format!("p{i}"),
                Expect::Absent,
                &format!("b{i}"),
                &[("n", &format!("{i}"))],
            )
        })
        .collect();
    f.vault.put_batch(&ws).unwrap();
    f.vault
        .delete(&o, &rt("Patient"), &rid("p0"), Expect::Any)
        .unwrap();
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "p1",
            Expect::Any,
            "b1-v2",
            &[("n", "1")],
        ))
        .unwrap();
    assert_eq!(f.vault.rotate_data_key(&o).unwrap(), 2);
    // Writes during rotation use the new key at once.
    f.vault
        .put(&write(
            "A81001",
            "Patient",
            "new",
            Expect::Absent,
            "n",
            &[("n", "new")],
        ))
        .unwrap();
    let st = f.vault.key_status().unwrap();
    assert_eq!(st[0].active_version, 2);
    assert_eq!(st[0].stale(), 32);
    // Search works mid-rotation, across both keys.
    assert_eq!(
        f.vault
            .search(&o, &rt("Patient"), &IndexTerm::new("n", "7"))
            .unwrap(),
        [rid("p7")]
    );
    // Steps of 10, as an interrupted background job would run them.
    let mut steps = 0;
    let other = f.reopen(f.kek.clone()).unwrap();
    while other.reencrypt_step(&o, 10, &index_n).unwrap() > 0 {
        steps += 1;
    }
    assert_eq!(steps, 4);
    let st = f.vault.key_status().unwrap();
    assert_eq!(st[0].stale(), 0);
    assert_eq!(
        st[0].records_per_key.keys().copied().collect::<Vec<_>>(),
        [2]
    );
    for i in 1..30 {
        let r = f
            .vault
            .get(&o, &rt("Patient"), &rid(&format!("p{i}")))
            .unwrap()
            .unwrap();
        assert!(r.body.starts_with(format!("b{i}").as_bytes()));
        assert_eq!(
            f.vault
                .search(&o, &rt("Patient"), &IndexTerm::new("n", i.to_string()))
                .unwrap(),
            [rid(&format!("p{i}"))]
        );
    }
    assert_eq!(
        f.vault
            .history(&o, &rt("Patient"), &rid("p1"))
            .unwrap()
            .len(),
        2
    );
    assert!(
        f.vault
            .get(&o, &rt("Patient"), &rid("p0"))
            .unwrap()
            .unwrap()
            .deleted
    );
    // The old data key is gone from the database: a fresh vault only holds version 2.
    let fresh = f.reopen(f.kek.clone()).unwrap();
    assert_eq!(fresh.key_status().unwrap()[0].records_per_key.len(), 1);
}

fn concurrent_writers_serialise(f: &Fixture) {
    f.vault
        .put(&write("A81001", "Patient", "p1", Expect::Absent, "0", &[]))
        .unwrap();
    let vaults: Vec<Vault> = (0..4).map(|_| f.reopen(f.kek.clone()).unwrap()).collect();
    std::thread::scope(|s| {
        for (n, v) in vaults.iter().enumerate() {
            s.spawn(move || {
                for i in 0..10 {
                    v.put(&write(
                        "A81001",
                        "Patient",
                        "p1",
                        Expect::Any,
                        &format!("{n}-{i}"),
                        &[],
                    ))
                    .unwrap();
                }
            });
        }
    });
    let h = f
        .vault
        .history(&org("A81001"), &rt("Patient"), &rid("p1"))
        .unwrap();
    assert_eq!(h.len(), 41);
    assert_eq!(h[0].version, v(41));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::fixture(super::Db::Sqlite(tempfile::tempdir().unwrap())));
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(schema) = caldicott_vault::testing::PgSchema::create() {
                    super::$name(&super::fixture(super::Db::Postgres(schema)));
                }
            })*
        }
    };
}

conformance!(
    create_and_read_back_exact_bytes,
    updates_make_versions_and_keep_history,
    optimistic_concurrency_refuses_stale_writes,
    delete_is_a_tombstone,
    batches_are_all_or_nothing,
    batched_get_keeps_order,
    protected_index_finds_current_terms_only,
    organisations_are_isolated,
    an_id_belongs_to_one_organisation,
    scans_page_through_current_records,
    the_directory_seals_versions_and_lists,
    reindexing_replaces_terms_of_current_records,
    commits_mix_writes_and_deletions_atomically,
    changes_list_versions_newest_first,
    a_flipped_byte_is_an_integrity_error,
    swapped_ciphertexts_are_integrity_errors,
    a_moved_version_is_an_integrity_error,
    wrong_master_key_is_refused,
    master_key_rotation_rewraps_without_touching_data,
    data_key_rotation_reencrypts_resumably,
    concurrent_writers_serialise,
);
