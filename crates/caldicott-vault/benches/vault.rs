//! `cargo xtask bench vault`: encrypted against unencrypted puts and gets of 1 KiB records,
//! single and batched, on SQLite and (when the test cluster is up) PostgreSQL.
//!
//! "Unencrypted" is the same kind of backend, in a database of its own with the same
//! organisation, ids and index values, driven directly through the `Backend` trait with the
//! record bytes stored as they are and index terms unhashed, so the ratio isolates what
//! the vault's encryption and keyed hashing cost. Each pair is run alternately (plain,
//! encrypted, plain, encrypted, ...) and the median of the rounds is reported, because
//! these 2-core machines are noisy.
//!
//! Options (after `--`): `--quick` for a short smoke run; `--rounds N`; `--batch N`
//! (records per write transaction, default 5,000); `--control`, an A/A run that drives
//! both databases through the unencrypted path, to measure the comparison's own bias (a
//! ratio far from 1.000 there is not encryption's doing).

use std::sync::Arc;
use std::time::Instant;

use caldicott_core::{OdsCode, ResourceId, ResourceType};
use caldicott_vault::backend::{NewRecord, RowExpect, RowWrite, now_micros};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{
    Backend, Expect, IndexTerm, LocalKek, PostgresBackend, SqliteBackend, Vault, Write,
};

const RECORD: usize = 1024;

struct Sizes {
    single_puts: usize,
    batch_puts: usize,
    batch: usize,
    gets: usize,
    get_batch: usize,
    rounds: usize,
}

fn body(i: usize) -> Vec<u8> {
    let mut b =
        format!("{{\"resourceType\":\"Observation\",\"id\":\"o{i}\",\"note\":\"").into_bytes();
    while b.len() < RECORD - 2 {
        b.push(b'a' + (b.len() % 26) as u8);
    }
    b.extend_from_slice(b"\"}");
    b
}

/// The patient a record belongs to: 1,000 patients with UUID-shaped ids, as in real data.
fn patient_ref(i: usize) -> String {
    let mut x = (i % 1000) as u64 ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!(
        "Patient/{:08x}-{:04x}-{:04x}-{:016x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xffff,
        x.rotate_left(17)
    )
}

/// Records per second for `n` operations taking `secs`.
fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Bench<'a> {
    vault: &'a Vault,
    raw: &'a dyn Backend,
    org: OdsCode,
    rtype: ResourceType,
    run: usize,
}

impl<'a> Bench<'a> {
    fn new(db: &'a (Vault, Box<dyn Backend>), org: &OdsCode, run: usize) -> Self {
        Bench {
            vault: &db.0,
            raw: db.1.as_ref(),
            org: org.clone(),
            rtype: ResourceType::new("Observation").unwrap(),
            run,
        }
    }

    fn ids(&self, tag: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{tag}-{}-{i}", self.run)).collect()
    }

    fn raw_rows<'r>(&'r self, ids: &'r [String]) -> Vec<RowWrite<'r>> {
        let now = now_micros();
        ids.iter()
            .enumerate()
            .map(|(i, id)| RowWrite {
                record: NewRecord {
                    org: self.org.as_str(),
                    rtype: self.rtype.as_str(),
                    id,
                    version: 1,
                    deleted: false,
                    dek_version: 0,
                    ciphertext: body(i),
                    written_at: now,
                },
                expect: RowExpect::Absent,
                terms: {
                    // Unencrypted, the index would hold the value itself: its last 16
                    // bytes (the distinguishing part of the patient id) stand in for it.
                    let s = patient_ref(i);
                    let mut t = [0u8; 16];
                    t.copy_from_slice(&s.as_bytes()[s.len() - 16..]);
                    vec![t]
                },
            })
            .collect()
    }

    fn writes(&self, ids: &[String]) -> Vec<Write> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Write {
                org: self.org.clone(),
                rtype: self.rtype.clone(),
                id: ResourceId::new(id).unwrap(),
                expect: Expect::Absent,
                body: body(i),
                terms: vec![IndexTerm::new("patient", patient_ref(i))],
            })
            .collect()
    }

    /// Writes `ids` in transactions of `batch` records; returns the time taken.
    fn put(&self, ids: &[String], batch: usize, encrypted: bool) -> std::time::Duration {
        let t = Instant::now();
        for chunk in ids.chunks(batch) {
            if encrypted {
                self.vault.put_batch(&self.writes(chunk)).unwrap();
            } else {
                self.raw.write(&self.raw_rows(chunk), &[]).unwrap();
            }
        }
        t.elapsed()
    }

    /// Gets of ids written by the last batched put of the same kind.
    fn get(&self, ids: &[ResourceId], batch: usize, encrypted: bool) -> f64 {
        let t = Instant::now();
        for chunk in ids.chunks(batch) {
            if encrypted {
                let got = self.vault.get_many(&self.org, &self.rtype, chunk).unwrap();
                assert!(
                    got.iter()
                        .all(|r| r.as_ref().is_some_and(|r| r.body.len() == RECORD))
                );
            } else {
                let s: Vec<&str> = chunk.iter().map(ResourceId::as_str).collect();
                let got = self
                    .raw
                    .heads(self.org.as_str(), self.rtype.as_str(), &s)
                    .unwrap();
                assert!(
                    got.iter()
                        .all(|r| r.as_ref().is_some_and(|r| r.ciphertext.len() == RECORD))
                );
            }
        }
        rate(ids.len(), t.elapsed().as_secs_f64())
    }
}

/// Runs every comparison on one kind of backend. There are two databases (two SQLite
/// files, or two PostgreSQL schemas), each reachable both through a vault and directly, and
/// the two sides swap databases every round: whatever one database's position gives it (a
/// control run showed ~15% on single-record puts between two identical databases) falls
/// on both sides alike. Within a round the sides alternate chunk by chunk.
fn run_backend(
    name: &str,
    make_a: &dyn Fn() -> Box<dyn Backend>,
    make_b: &dyn Fn() -> Box<dyn Backend>,
    sizes: &Sizes,
    control: bool,
) {
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    let org = OdsCode::parse("A81001").unwrap();
    let open = |make: &dyn Fn() -> Box<dyn Backend>| {
        let b = make();
        b.migrate().unwrap();
        let vault = Vault::open(b, kek.clone()).unwrap();
        vault.ensure_org(&org).unwrap();
        (vault, make())
    };
    let dbs = [open(make_a), open(make_b)];
    // In a control run the "encrypted" side writes unencrypted rows too.
    let encrypted = !control;

    let mut results: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut record = |label: String, p: f64, e: f64| {
        if let Some(r) = results.iter_mut().find(|r| r.0 == label) {
            r.1.push(p);
            r.2.push(e);
        } else {
            results.push((label, vec![p], vec![e]));
        }
    };
    for round in 0..sizes.rounds {
        let (pdb, edb) = (&dbs[round % 2], &dbs[(round + 1) % 2]);
        let (mut plain, mut enc) = (
            Bench::new(pdb, &org, round * 10),
            Bench::new(edb, &org, round * 10),
        );
        for (label, n, batch, chunk, tag) in [
            (
                "put, one record per transaction".to_string(),
                sizes.single_puts,
                1,
                5,
                "s",
            ),
            (
                format!("put, batches of {}", sizes.batch),
                sizes.batch_puts,
                sizes.batch,
                sizes.batch,
                "b",
            ),
        ] {
            plain.run += 1;
            enc.run += 1;
            let (ids_p, ids_e) = (plain.ids(tag, n), enc.ids(tag, n));
            let (mut tp, mut te) = (0.0, 0.0);
            // Whichever side writes first after the other pays for the switch, so the
            // order alternates too.
            for (k, (cp, ce)) in ids_p.chunks(chunk).zip(ids_e.chunks(chunk)).enumerate() {
                if k % 2 == 0 {
                    tp += plain.put(cp, batch, false).as_secs_f64();
                    te += enc.put(ce, batch, encrypted).as_secs_f64();
                } else {
                    te += enc.put(ce, batch, encrypted).as_secs_f64();
                    tp += plain.put(cp, batch, false).as_secs_f64();
                }
            }
            record(label, rate(n, tp), rate(n, te));
        }
        let ids = |b: &Bench| -> Vec<ResourceId> {
            b.ids("b", sizes.gets)
                .iter()
                .map(|s| ResourceId::new(s).unwrap())
                .collect()
        };
        let (ids_p, ids_e) = (ids(&plain), ids(&enc));
        let p = plain.get(&ids_p, 1, false);
        let e = enc.get(&ids_e, 1, encrypted);
        record("get by id, one at a time".into(), p, e);
        let p = plain.get(&ids_p, sizes.get_batch, false);
        let e = enc.get(&ids_e, sizes.get_batch, encrypted);
        record(format!("get, batches of {}", sizes.get_batch), p, e);
    }
    for (label, p, e) in results {
        let (p, e) = (median(p), median(e));
        println!(
            "| {name} | {label} | {p:.0} | {e:.0} | {:.3} | {:.1}% |",
            e / p,
            (1.0 - e / p) * 100.0
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let control = args.iter().any(|a| a == "--control");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 2 } else { 6 });
    let batch: Option<usize> = args
        .iter()
        .position(|a| a == "--batch")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let mut sizes = if quick {
        Sizes {
            single_puts: 50,
            batch_puts: 2_000,
            batch: 500,
            gets: 2_000,
            get_batch: 100,
            rounds,
        }
    } else {
        Sizes {
            single_puts: 300,
            batch_puts: 100_000,
            batch: 5_000,
            gets: 50_000,
            get_batch: 100,
            rounds,
        }
    };
    if let Some(b) = batch {
        sizes.batch = b;
    }
    println!(
        "records of {RECORD} bytes; median of {rounds} alternating rounds; rates in records/s{}",
        if control {
            " (CONTROL RUN: both sides unencrypted)"
        } else {
            ""
        }
    );
    println!();
    println!("| backend | operation | unencrypted | encrypted | ratio | encryption cost |");
    println!("|---|---|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().unwrap();
    let (plain_db, enc_db) = (dir.path().join("plain.db"), dir.path().join("enc.db"));
    run_backend(
        "SQLite",
        &|| Box::new(SqliteBackend::open(&plain_db, true).unwrap()),
        &|| Box::new(SqliteBackend::open(&enc_db, true).unwrap()),
        &sizes,
        control,
    );
    match (PgSchema::create(), PgSchema::create()) {
        (Some(plain_schema), Some(enc_schema)) => {
            let (plain_url, enc_url) = (plain_schema.url.clone(), enc_schema.url.clone());
            run_backend(
                "PostgreSQL",
                &|| Box::new(PostgresBackend::connect(&plain_url).unwrap()),
                &|| Box::new(PostgresBackend::connect(&enc_url).unwrap()),
                &sizes,
                control,
            );
        }
        _ => println!(
            "| PostgreSQL | skipped: no test cluster (run through `cargo xtask bench vault`) | | | | |"
        ),
    }
}
